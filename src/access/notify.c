/*
 * The webhook notifier; see access.h.
 *
 * Callers (the HTTP thread, workers) only build a small JSON body and put it
 * on a bounded queue under a mutex; one thread POSTs the bodies in order with
 * libcurl. A body carries the fields a program needs (event, id, identity,
 * connection, scope or class, reason or statement, times) and a "text" line
 * that a Slack-style incoming webhook shows as it is.
 */
#include "access/access.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_CAP 256
#define ATTEMPTS 4
#define STATEMENT_MAX 1024   /* bytes of statement text sent */

typedef struct note {
	char *body;
	char what[48];           /* "request #12": for log lines */
} note;

struct gw_notifier {
	char *url;               /* never logged: it may carry a secret */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* CLOCK_MONOTONIC */
	note q[QUEUE_CAP];
	size_t head, count;
	bool stop;
	atomic_bool stopping;    /* read by the transfer callback, without the lock */
	unsigned long dropped;
};

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
	return size * nmemb;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	gw_notifier *n = ud;
	return atomic_load(&n->stopping) ? 1 : 0;   /* non-zero aborts the transfer */
}

/* Wait seconds unless stopped meanwhile; false when stopping. */
static bool backoff(gw_notifier *n, int seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&n->lock);
	while (!n->stop && pthread_cond_timedwait(&n->cond, &n->lock, &ts) != ETIMEDOUT)
		;
	bool go_on = !n->stop;
	pthread_mutex_unlock(&n->lock);
	return go_on;
}

static void deliver(gw_notifier *n, const note *nt)
{
	CURL *c = curl_easy_init();
	if (!c) {
		gw_warn("notify: cannot initialise libcurl; %s not sent", nt->what);
		return;
	}
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: pgmoat");
	curl_easy_setopt(c, CURLOPT_URL, n->url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, nt->body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, n);
	for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
		CURLcode rc = curl_easy_perform(c);
		long status = 0;
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (rc == CURLE_OK && status >= 200 && status < 300) {
			gw_debug("notify: %s delivered (HTTP %ld)", nt->what, status);
			break;
		}
		if (atomic_load(&n->stopping))
			break;
		bool retry = rc != CURLE_OK || status == 408 || status == 429 || status >= 500;
		if (rc != CURLE_OK)
			gw_warn("notify: webhook for %s failed: %s (attempt %d of %d)", nt->what, curl_easy_strerror(rc),
				attempt, ATTEMPTS);
		else
			gw_warn("notify: webhook for %s answered HTTP %ld (attempt %d of %d)", nt->what, status, attempt,
				ATTEMPTS);
		if (!retry || attempt == ATTEMPTS) {
			gw_warn("notify: %s not delivered; giving up", nt->what);
			break;
		}
		if (!backoff(n, 1 << (attempt - 1)))
			break;
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void *notify_main(void *arg)
{
	gw_notifier *n = arg;
	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->stop && !n->count)
			pthread_cond_wait(&n->cond, &n->lock);
		if (n->stop)
			break;
		note nt = n->q[n->head];
		n->head = (n->head + 1) % QUEUE_CAP;
		n->count--;
		pthread_mutex_unlock(&n->lock);
		deliver(n, &nt);
		free(nt.body);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

gw_notifier *gw_notifier_start(const gw_config *cfg)
{
	if (!cfg->notify_webhook || !*cfg->notify_webhook)
		return NULL;
	gw_notifier *n = gw_xcalloc(1, sizeof(*n));
	n->url = gw_xstrdup(cfg->notify_webhook);
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&n->stopping, false);
	if (pthread_create(&n->thread, NULL, notify_main, n) != 0) {
		gw_error("notify: cannot start the webhook thread; notifications are off");
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
		free(n->url);
		free(n);
		return NULL;
	}
	gw_info("notify: webhook on for new pending requests and reviews");
	return n;
}

void gw_notifier_stop(gw_notifier *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	atomic_store(&n->stopping, true);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	if (n->count)
		gw_warn("notify: %zu webhook event(s) not sent at shutdown", n->count);
	for (; n->count; n->count--, n->head = (n->head + 1) % QUEUE_CAP)
		free(n->q[n->head].body);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n->url);
	free(n);
}

/* Queue body (owned; freed here when not queued). */
static void enqueue(gw_notifier *n, char *body, const char *what)
{
	if (!n || !body) {
		free(body);
		return;
	}
	pthread_mutex_lock(&n->lock);
	bool full = n->count == QUEUE_CAP;
	unsigned long dropped = 0;
	if (!full && !n->stop) {
		note *nt = &n->q[(n->head + n->count) % QUEUE_CAP];
		nt->body = body;
		snprintf(nt->what, sizeof(nt->what), "%s", what);
		n->count++;
		body = NULL;
		pthread_cond_signal(&n->cond);
	} else if (full) {
		dropped = ++n->dropped;
	}
	pthread_mutex_unlock(&n->lock);
	if (body) {
		free(body);
		if (dropped)
			gw_warn("notify: the webhook queue is full (%d waiting); %s dropped (%lu dropped so far)", QUEUE_CAP,
				what, dropped);
	}
}

static json_t *ts_json(int64_t unix_s)
{
	char b[40];
	gw_format_ts((uint64_t)unix_s * 1000000u, b, sizeof(b));
	return json_string(b);
}

/* "1h30m", "45s". */
static void fmt_duration(int64_t s, char *out, size_t cap)
{
	out[0] = 0;
	int64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
	size_t l = 0;
	if (d)
		l += (size_t)snprintf(out + l, cap - l, "%lldd", (long long)d);
	if (h && l < cap)
		l += (size_t)snprintf(out + l, cap - l, "%lldh", (long long)h);
	if (m && l < cap)
		l += (size_t)snprintf(out + l, cap - l, "%lldm", (long long)m);
	if ((sec || !s) && l < cap)
		snprintf(out + l, cap - l, "%llds", (long long)sec);
}

/* Slack's mrkdwn gives &, < and > a meaning: escape them (into a malloc'd string). */
static char *slack_escape(const char *s)
{
	gw_buf b = {0};
	for (; *s; s++) {
		const char *r = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
		if (r)
			gw_buf_append(&b, r, strlen(r));
		else
			gw_buf_put_u8(&b, (uint8_t)*s);
	}
	gw_buf_put_u8(&b, 0);
	char *out = gw_xstrdup((const char *)gw_buf_rd(&b));
	gw_buf_free(&b);
	return out;
}

static json_t *tables_json(const char *tables)
{
	json_t *a = json_array();
	for (const char *p = tables; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l)
			json_array_append_new(a, json_stringn(p, l));
		p = e ? e + 1 : p + l;
	}
	return a;
}

void gw_notify_request(gw_notifier *n, const gw_request_rec *req)
{
	if (!n)
		return;
	char reason[sizeof(req->reason)], dur[40];
	gw_access_clean_text(req->reason, strlen(req->reason), reason, sizeof(reason));
	fmt_duration(req->duration_s, dur, sizeof(dur));
	char *text = gw_xasprintf("pgmoat: request #%lld: %s asks for %s access to %s%s%s for %s (policy %s, %d "
		"approval%s needed). Reason: %s. Approve: pgmoat approve %lld / deny: pgmoat deny %lld",
		(long long)req->id, req->identity, gw_access_scope_str(req->scope), req->connection,
		*req->tables ? " on " : "", req->tables, dur, req->policy, req->required, req->required == 1 ? "" : "s",
		reason, (long long)req->id, (long long)req->id);
	char *esc = slack_escape(text);
	free(text);
	json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:o,s:I,s:s,s:s,s:i,s:o,s:I,s:s}",
		"event", "request.pending", "id", (json_int_t)req->id, "identity", req->identity,
		"connection", req->connection, "policy", req->policy, "scope", gw_access_scope_str(req->scope),
		"tables", tables_json(req->tables), "duration_s", (json_int_t)req->duration_s, "duration", dur,
		"reason", reason, "required", req->required, "created_at", ts_json(req->created_at),
		"created_at_unix", (json_int_t)req->created_at, "text", esc);
	free(esc);
	char what[48];
	snprintf(what, sizeof(what), "request #%lld", (long long)req->id);
	enqueue(n, o ? json_dumps(o, JSON_COMPACT) : NULL, what);
	json_decref(o);
}

void gw_notify_review(gw_notifier *n, const gw_review_rec *rev)
{
	if (!n)
		return;
	char stmt[STATEMENT_MAX + 1];
	size_t full = strlen(rev->statement);
	gw_access_clean_text(rev->statement, full, stmt, sizeof(stmt));
	bool cut = strlen(stmt) < full;
	char shortst[301];
	gw_access_clean_text(stmt, strlen(stmt), shortst, sizeof(shortst));
	for (char *p = shortst; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	char *text = gw_xasprintf("pgmoat: review #%lld: %s wants to run a %s statement on %s (policy %s): %s%s "
		"Approve: pgmoat review approve %lld / deny: pgmoat review deny %lld", (long long)rev->id, rev->identity,
		gw_access_scope_str(rev->cls), rev->connection, rev->policy, shortst,
		strlen(shortst) < full ? "..." : "", (long long)rev->id, (long long)rev->id);
	char *esc = slack_escape(text);
	free(text);
	json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:o,s:I,s:s}",
		"event", "review.pending", "id", (json_int_t)rev->id, "identity", rev->identity,
		"connection", rev->connection, "policy", rev->policy, "class", gw_access_scope_str(rev->cls),
		"statement", stmt, "statement_truncated", cut, "session", rev->session, "created_at",
		ts_json(rev->created_at), "created_at_unix", (json_int_t)rev->created_at, "text", esc);
	free(esc);
	char what[48];
	snprintf(what, sizeof(what), "review #%lld", (long long)rev->id);
	enqueue(n, o ? json_dumps(o, JSON_COMPACT) : NULL, what);
	json_decref(o);
}
