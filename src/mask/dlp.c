/*
 * The Presidio provider: threads, batching, offsets. See dlp.h.
 *
 * A job's values are sent in requests of up to REQ_MAX bytes of text, the
 * values of one request joined by a separator line; each value's start is
 * known in characters, so every result maps back to the value(s) it covers
 * (a result that spans a separator marks both sides). Any failure — the
 * connection, the HTTP status, the body not being Presidio's answer — fails
 * the whole job: the caller then refuses the result (on_error: block) or
 * falls back to the built-in detectors (on_error: builtin).
 */
#include "mask/dlp.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 2
#define REQ_MAX (256u * 1024)    /* text bytes per /analyze request */
#define ANSWER_MAX (8u << 20)    /* an answer larger than this is not Presidio's */
#define MAX_FINDS 256            /* per value; more: the value is masked whole */
#define SEP "\n\n"               /* between values: never part of an entity */

struct gw_dlp {
	const gw_config *cfg;
	pthread_t threads[THREADS];
	int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	gw_dlp_job **q;
	size_t qhead, qn, qcap;
	bool stopping;
	char entities[512];      /* JSON array of the entities asked for, or "" */
};

/* ---- UTF-8 ---- */

/* Characters (code points) in valid UTF-8 p[0..n); -1 when not valid UTF-8. */
static long utf8_chars(const uint8_t *p, size_t n)
{
	long chars = 0;
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (!k || i + k > n || (k == 2 && c < 0xC2))
			return -1;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xC0) != 0x80)
				return -1;
		if (c == 0)
			return -1; /* a NUL cannot travel in a JSON string Presidio reads back the same */
		i += k;
		chars++;
	}
	return chars;
}

/* The byte offset of character ch in valid UTF-8 p[0..n) (n when past the end). */
static size_t utf8_offset(const uint8_t *p, size_t n, long ch)
{
	size_t i = 0;
	for (long c = 0; c < ch && i < n; c++) {
		uint8_t b = p[i];
		i += b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
	}
	return i < n ? i : n;
}

/* ---- one request ---- */


static void add_find(struct gw_dlp_found *f, uint32_t start, uint32_t end, const char *type)
{
	if (f->whole || start >= end)
		return;
	if (f->nspans >= MAX_FINDS) {
		f->whole = true;
		return;
	}
	f->spans = gw_xrealloc(f->spans, (f->nspans + 1) * sizeof(*f->spans));
	struct gw_dlp_span *s = &f->spans[f->nspans++];
	s->start = start;
	s->end = end;
	snprintf(s->type, sizeof(s->type), "%s", type);
}

static int span_cmp(const void *a, const void *b)
{
	const struct gw_dlp_span *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start ? 1 : (int)y->end - (int)x->end;
}

/* Sorted, overlaps merged (the merged span keeps the first one's type). */
static void tidy(struct gw_dlp_found *f)
{
	if (f->nspans < 2)
		return;
	qsort(f->spans, f->nspans, sizeof(*f->spans), span_cmp);
	size_t k = 0;
	for (size_t i = 1; i < f->nspans; i++) {
		if (f->spans[i].start < f->spans[k].end) {
			if (f->spans[i].end > f->spans[k].end)
				f->spans[k].end = f->spans[i].end;
		} else {
			f->spans[++k] = f->spans[i];
		}
	}
	f->nspans = k + 1;
}

/*
 * Analyze values [from, to) of job (all valid UTF-8) in one request.
 * 0, or -1 with job->error set.
 */
static int analyze(gw_dlp *d, CURL *c, gw_dlp_job *job, size_t from, size_t to)
{
	/* the text, and where each value starts in characters and bytes */
	size_t total = 0;
	for (size_t i = from; i < to; i++)
		total += job->lens[i] + strlen(SEP);
	char *text = gw_xmalloc(total + 1);
	long *cstart = gw_xmalloc((to - from) * sizeof(long));
	long *cend = gw_xmalloc((to - from) * sizeof(long));
	size_t off = 0;
	long chars = 0;
	for (size_t i = from; i < to; i++) {
		cstart[i - from] = chars;
		memcpy(text + off, job->vals[i], job->lens[i]);
		off += job->lens[i];
		chars += utf8_chars(job->vals[i], job->lens[i]);
		cend[i - from] = chars;
		memcpy(text + off, SEP, strlen(SEP));
		off += strlen(SEP);
		chars += (long)strlen(SEP);
	}
	json_t *req = json_object();
	json_object_set_new(req, "text", json_stringn(text, off));
	json_object_set_new(req, "language", json_string("en"));
	json_object_set_new(req, "score_threshold", json_real(d->cfg->mask_presidio_score));
	if (d->entities[0])
		json_object_set_new(req, "entities", json_loads(d->entities, 0, NULL));
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	free(text);
	int rc = -1;
	gw_sink a = {.max = ANSWER_MAX};
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, d->cfg->mask_presidio);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "{}");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gw_sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(d->cfg->mask_presidio_timeout_us / 1000));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->cfg->mask_presidio_timeout_us / 1000));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (d->cfg->mask_presidio_ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, d->cfg->mask_presidio_ca);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	json_t *ans = NULL;
	if (cc != CURLE_OK) {
		snprintf(job->error, sizeof(job->error), "the DLP provider (Presidio at %s) did not answer: %s",
			d->cfg->mask_presidio, a.too_big ? "its answer is too large" : curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200) {
		snprintf(job->error, sizeof(job->error), "the DLP provider (Presidio at %s) answered HTTP %ld",
			d->cfg->mask_presidio, status);
		goto out;
	}
	ans = gw_sink_str(&a) ? json_loadb(gw_sink_str(&a), gw_buf_len(&a.buf), 0, NULL) : NULL;
	if (!json_is_array(ans)) {
		snprintf(job->error, sizeof(job->error), "the DLP provider (Presidio at %s) answered something that is "
			"not a list of findings", d->cfg->mask_presidio);
		goto out;
	}
	size_t i;
	json_t *r;
	json_array_foreach(ans, i, r) {
		json_t *t = json_object_get(r, "entity_type"), *s = json_object_get(r, "start"), *e = json_object_get(r, "end");
		if (!json_is_string(t) || !json_is_integer(s) || !json_is_integer(e) || json_integer_value(s) < 0 ||
			json_integer_value(e) < json_integer_value(s) || json_integer_value(e) > chars) {
			snprintf(job->error, sizeof(job->error), "the DLP provider (Presidio at %s) answered a finding "
				"without a valid entity_type/start/end", d->cfg->mask_presidio);
			goto out;
		}
		long fs = (long)json_integer_value(s), fe = (long)json_integer_value(e);
		for (size_t v = from; v < to; v++) {
			long vs = cstart[v - from], ve = cend[v - from];
			if (fe <= vs || fs >= ve)
				continue;
			long a0 = fs > vs ? fs - vs : 0, a1 = (fe < ve ? fe : ve) - vs;
			size_t b0 = utf8_offset(job->vals[v], job->lens[v], a0), b1 = utf8_offset(job->vals[v], job->lens[v], a1);
			add_find(&job->found[v], (uint32_t)b0, (uint32_t)b1, json_string_value(t));
		}
	}
	rc = 0;
out:
	json_decref(ans);
	curl_slist_free_all(h);
	gw_sink_free(&a, false);
	free(body);
	free(cstart);
	free(cend);
	return rc;
}

static bool sendable(const gw_dlp_job *job, size_t i)
{
	return job->lens[i] <= UINT32_MAX && utf8_chars(job->vals[i], job->lens[i]) >= 0;
}

static void run_job(gw_dlp *d, CURL *c, gw_dlp_job *job)
{
	job->found = gw_xcalloc(job->n ? job->n : 1, sizeof(*job->found));
	size_t i = 0;
	while (i < job->n && !job->failed) {
		if (!sendable(job, i)) {
			job->found[i].whole = true; /* not UTF-8 (or absurdly long): masked whole, never sent */
			i++;
			continue;
		}
		/* a request: the next sendable values up to REQ_MAX bytes (at least one) */
		size_t j = i, bytes = 0;
		while (j < job->n && sendable(job, j) && (j == i || bytes + job->lens[j] <= REQ_MAX))
			bytes += job->lens[j++];
		if (analyze(d, c, job, i, j) < 0)
			job->failed = true;
		i = j;
	}
	for (size_t k = 0; k < job->n; k++)
		tidy(&job->found[k]);
}

static void *thread_main(void *arg)
{
	gw_dlp *d = arg;
	CURL *c = curl_easy_init();
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->qn && !d->stopping)
			pthread_cond_wait(&d->cv, &d->mu);
		if (!d->qn && d->stopping) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		gw_dlp_job *job = d->q[d->qhead];
		d->qhead = (d->qhead + 1) % d->qcap;
		d->qn--;
		job->running = true;
		pthread_mutex_unlock(&d->mu);
		if (!c) {
			job->failed = true;
			snprintf(job->error, sizeof(job->error), "the DLP provider's HTTP client could not be set up");
			job->found = gw_xcalloc(job->n ? job->n : 1, sizeof(*job->found));
		} else {
			run_job(d, c, job);
		}
		pthread_mutex_lock(&d->mu);
		job->running = false;
		bool orphan = job->orphan;
		pthread_mutex_unlock(&d->mu);
		if (orphan)
			gw_dlp_job_free(job);
		else
			gw_loop_post(job->loop, job->done, job);
	}
	if (c)
		curl_easy_cleanup(c);
	return NULL;
}

gw_dlp *gw_dlp_new(const gw_config *cfg, char *err, size_t errlen)
{
	if (!cfg->has_masking || !cfg->mask_presidio)
		return NULL;
	gw_dlp *d = gw_xcalloc(1, sizeof(*d));
	d->cfg = cfg;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	if (cfg->mask_detectors_set && cfg->mask_detectors.n) {
		json_t *a = json_array();
		for (size_t i = 0; i < cfg->mask_detectors.n; i++)
			json_array_append_new(a, json_string(cfg->mask_detectors.v[i]));
		char *s = json_dumps(a, JSON_COMPACT);
		json_decref(a);
		if (s && strlen(s) < sizeof(d->entities))
			snprintf(d->entities, sizeof(d->entities), "%s", s);
		free(s);
	}
	for (int i = 0; i < THREADS; i++) {
		if (pthread_create(&d->threads[i], NULL, thread_main, d) != 0) {
			snprintf(err, errlen, "cannot start the DLP provider's threads");
			gw_dlp_free(d);
			return NULL;
		}
		d->nthreads++;
	}
	return d;
}

void gw_dlp_free(gw_dlp *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	/* (the threads drain the queue before they stop; what is left had no thread) */
	for (size_t i = 0; i < d->qn; i++)
		gw_dlp_job_free(d->q[(d->qhead + i) % d->qcap]);
	free(d->q);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}

void gw_dlp_submit(gw_dlp *d, gw_dlp_job *job)
{
	pthread_mutex_lock(&d->mu);
	if (d->qn == d->qcap) {
		size_t cap = d->qcap ? 2 * d->qcap : 64;
		gw_dlp_job **q = gw_xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < d->qn; i++)
			q[i] = d->q[(d->qhead + i) % d->qcap];
		free(d->q);
		d->q = q;
		d->qcap = cap;
		d->qhead = 0;
	}
	d->q[(d->qhead + d->qn) % d->qcap] = job;
	d->qn++;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

gw_dlp_job *gw_dlp_job_new(size_t n, size_t bytes)
{
	gw_dlp_job *job = gw_xcalloc(1, sizeof(*job));
	job->vals = gw_xcalloc(n ? n : 1, sizeof(*job->vals));
	job->lens = gw_xcalloc(n ? n : 1, sizeof(*job->lens));
	job->buf = gw_xmalloc(bytes ? bytes : 1);
	return job;
}

void gw_dlp_job_add(gw_dlp_job *job, const uint8_t *v, size_t len)
{
	/* the values are packed in buf in order: the next one starts where the last one ended */
	size_t off = job->n ? (size_t)(job->vals[job->n - 1] - job->buf) + job->lens[job->n - 1] : 0;
	memcpy(job->buf + off, v, len);
	job->vals[job->n] = job->buf + off;
	job->lens[job->n] = len;
	job->n++;
}

void gw_dlp_orphan(gw_dlp *d, gw_dlp_job *job)
{
	/*
	 * Queued or running: the provider frees it when done. Already posted:
	 * its completion runs on the owner's loop, sees owner == NULL, frees it.
	 */
	pthread_mutex_lock(&d->mu);
	job->orphan = true;
	job->owner = NULL;
	pthread_mutex_unlock(&d->mu);
}

void gw_dlp_job_free(gw_dlp_job *job)
{
	if (!job)
		return;
	for (size_t i = 0; job->found && i < job->n; i++)
		free(job->found[i].spans);
	free(job->found);
	free((void *)job->vals);
	free(job->lens);
	free(job->buf);
	free(job);
}
