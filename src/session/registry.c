/*
 * Live sessions, cancel keys and kill routing; see registry.h.
 */
#include "session/registry.h"
#include "core/util.h"
#include "net/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gw_registry {
	pthread_mutex_t lock;
	gw_reg_entry *head;
	int count;
};

gw_registry *gw_registry_new(void)
{
	gw_registry *r = gw_xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void gw_registry_free(gw_registry *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void uuid4(char out[40])
{
	uint8_t b[16];
	gw_random_bytes(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	char h[33];
	gw_hex(b, 16, h);
	snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

gw_reg_entry *gw_registry_add(gw_registry *r, const gw_reg_entry *tmpl)
{
	gw_reg_entry *e = gw_xcalloc(1, sizeof(*e));
	uuid4(e->id);
	memcpy(e->identity, tmpl->identity, sizeof(e->identity));
	memcpy(e->connection, tmpl->connection, sizeof(e->connection));
	memcpy(e->client_addr, tmpl->client_addr, sizeof(e->client_addr));
	memcpy(e->application_name, tmpl->application_name, sizeof(e->application_name));
	memcpy(e->tls, tmpl->tls, sizeof(e->tls));
	memcpy(e->token_id, tmpl->token_id, sizeof(e->token_id));
	e->session = tmpl->session;
	e->loop = tmpl->loop;
	e->started_wall_us = gw_wall_us();
	pthread_mutex_lock(&r->lock);
	for (;;) {
		uint32_t k[2];
		gw_random_bytes(k, sizeof(k));
		e->cancel_pid = (k[0] & 0x7fffffffu) | 1u;
		e->cancel_key = k[1];
		bool dup = false;
		for (gw_reg_entry *x = r->head; x; x = x->next)
			if (x->cancel_pid == e->cancel_pid && x->cancel_key == e->cancel_key)
				dup = true;
		if (!dup)
			break;
	}
	e->next = r->head;
	if (r->head)
		r->head->prev = e;
	r->head = e;
	r->count++;
	pthread_mutex_unlock(&r->lock);
	return e;
}

void gw_registry_remove(gw_registry *r, gw_reg_entry *e)
{
	pthread_mutex_lock(&r->lock);
	if (e->prev)
		e->prev->next = e->next;
	else
		r->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	r->count--;
	pthread_mutex_unlock(&r->lock);
	free(e);
}

void gw_registry_set_upstream(gw_registry *r, gw_reg_entry *e, const gw_conn_cfg *cfg, uint32_t pid, uint32_t key)
{
	pthread_mutex_lock(&r->lock);
	e->upstream = cfg;
	e->upstream_pid = pid;
	e->upstream_key = key;
	pthread_mutex_unlock(&r->lock);
}

bool gw_registry_cancel_target(gw_registry *r, uint32_t pid, uint32_t key, const gw_conn_cfg **cfg,
	uint32_t *upid, uint32_t *ukey)
{
	bool found = false;
	pthread_mutex_lock(&r->lock);
	for (gw_reg_entry *e = r->head; e; e = e->next) {
		if (e->cancel_pid == pid && gw_ct_equal(&e->cancel_key, &key, sizeof(key))) {
			if (e->upstream) {
				*cfg = e->upstream;
				*upid = e->upstream_pid;
				*ukey = e->upstream_key;
				found = true;
			}
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

bool gw_registry_alive(gw_registry *r, const char *id, gw_session *s)
{
	bool alive = false;
	pthread_mutex_lock(&r->lock);
	for (gw_reg_entry *e = r->head; e; e = e->next)
		if (e->session == s && !strcmp(e->id, id)) {
			alive = true;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return alive;
}

bool gw_registry_locate(gw_registry *r, const char *id, gw_loop **loop, gw_session **s)
{
	bool found = false;
	pthread_mutex_lock(&r->lock);
	for (gw_reg_entry *e = r->head; e; e = e->next)
		if (!strcmp(e->id, id)) {
			*loop = e->loop;
			*s = e->session;
			found = true;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return found;
}

int gw_registry_find(gw_registry *r, const char *identity, const char *token_id, char (**out)[40])
{
	pthread_mutex_lock(&r->lock);
	char(*ids)[40] = gw_xcalloc((size_t)r->count + 1, 40);
	int n = 0;
	for (gw_reg_entry *e = r->head; e && n < r->count; e = e->next)
		if ((!identity || !strcmp(e->identity, identity)) && (!token_id || !strcmp(e->token_id, token_id)))
			memcpy(ids[n++], e->id, 40);
	pthread_mutex_unlock(&r->lock);
	*out = ids;
	return n;
}

int gw_registry_snapshot(gw_registry *r, gw_reg_entry **out)
{
	pthread_mutex_lock(&r->lock);
	gw_reg_entry *arr = gw_xcalloc((size_t)r->count + 1, sizeof(gw_reg_entry));
	int n = 0;
	for (gw_reg_entry *e = r->head; e && n < r->count; e = e->next) {
		gw_reg_entry *c = &arr[n++];
		memcpy(c->id, e->id, sizeof(c->id));
		memcpy(c->identity, e->identity, sizeof(c->identity));
		memcpy(c->connection, e->connection, sizeof(c->connection));
		memcpy(c->client_addr, e->client_addr, sizeof(c->client_addr));
		memcpy(c->application_name, e->application_name, sizeof(c->application_name));
		memcpy(c->tls, e->tls, sizeof(c->tls));
		c->started_wall_us = e->started_wall_us;
		atomic_store(&c->bytes_in, atomic_load(&e->bytes_in));
		atomic_store(&c->bytes_out, atomic_load(&e->bytes_out));
		atomic_store(&c->statements, atomic_load(&e->statements));
		atomic_store(&c->state, atomic_load(&e->state));
		c->upstream_pid = e->upstream_pid;
	}
	pthread_mutex_unlock(&r->lock);
	*out = arr;
	return n;
}

int gw_registry_count(gw_registry *r)
{
	pthread_mutex_lock(&r->lock);
	int n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}
