/*
 * The recorder on its own: how many statement records per second the audit
 * writer commits into SQLite on this machine, with the gateway's own code
 * (event building, queue, group commit, hash chain, checkpoint).
 *
 *   audit_bench [--records N] [--sessions S] [--window W] DIR
 *
 * Groups of S x W statement events are committed as a worker commits the
 * events of one batch of socket events (S sessions, W statements each);
 * the writer thread moves them into SQLite. Prints records/s through to
 * SQLite (the clock stops once the last record is in SQLite) and the verify
 * rate.
 */
#include "audit/audit.h"
#include "core/config.h"
#include "core/util.h"
#include "state/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gw_audit_ev *statement(uint64_t i, int session)
{
	gw_buf b = {0};
	uint64_t wall = gw_wall_us();
	char sid[40];
	snprintf(sid, sizeof(sid), "6f1c0b1e-0000-4000-8000-%012d", session);
	gw_audit_ev_begin(&b, wall, "statement");
	char tail[512];
	int n = snprintf(tail, sizeof(tail), ",\"session\":\"%s\",\"n\":%llu,\"identity\":\"agent-%d\",\"connection\":"
		"\"bench\",\"grant\":null,\"protocol\":\"simple\",\"statement\":\"SELECT abalance FROM pgbench_accounts WHERE "
		"aid = %llu\",\"fingerprint\":\"348bee4e67e86ca6\",\"class\":\"read\",\"decision\":\"allow\",\"rule\":"
		"\"agents-read\"", sid, (unsigned long long)i, session % 8, (unsigned long long)(i * 7919 % 100000));
	gw_buf_append(&b, tail, (size_t)n);
	gw_audit_ev *e = gw_audit_ev_new(GW_AUD_STATEMENT, wall, sid, "agent", (uint32_t)i, &b);
	gw_buf_free(&b);
	return e;
}

int main(int argc, char **argv)
{
	long records = 200000;
	int sessions = 32, window = 1;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--records") && i + 1 < argc)
			records = atol(argv[++i]);
		else if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
			sessions = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--window") && i + 1 < argc)
			window = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: audit_bench [--records N] [--sessions S] [--window W] DIR\n");
			return 0;
		} else
			dir = argv[i];
	}
	if (!dir || sessions < 1 || window < 1 || records < 1) {
		fprintf(stderr, "usage: audit_bench [--records N] [--sessions S] [--window W] DIR\n");
		return 2;
	}
	char path[4096], err[512] = "";
	snprintf(path, sizeof(path), "%s/state.db", dir);
	gw_store *st = gw_store_open(path, err, sizeof(err)); /* as the gateway does: the store makes the file */
	if (!st) {
		fprintf(stderr, "audit_bench: %s\n", err);
		return 1;
	}
	gw_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_path = path;
	cfg.audit_queue_max = 1000000;
	cfg.audit_checkpoint_key = (char *)"bench-checkpoint-key-0123456789";
	cfg.audit_checkpoint_key_len = strlen(cfg.audit_checkpoint_key);
	gw_audit *a = gw_audit_open(&cfg, err, sizeof(err));
	if (!a) {
		fprintf(stderr, "audit_bench: %s\n", err);
		return 1;
	}
	/*
	 * As workers do: each round, every session adds one statement event to
	 * the group, which is committed with one append; the writer thread moves
	 * the records into SQLite meanwhile.
	 */
	long sent = 0;
	uint64_t t0 = gw_mono_us();
	char why[400];
	while (sent < records) {
		gw_audit_ev *head = NULL, **tail = &head;
		for (int s = 0; s < sessions && sent < records; s++) {
			for (int k = 0; k < window && sent < records; k++) {
				*tail = statement((uint64_t)sent++, s);
				tail = &(*tail)->next;
			}
		}
		if (gw_audit_append(a, head, why, sizeof(why)) < 0) {
			fprintf(stderr, "audit_bench: %s\n", why);
			return 1;
		}
	}
	uint64_t append_us = gw_mono_us() - t0;
	gw_audit_stats stt;
	gw_audit_get_stats(a, &stt);
	gw_audit_close(a); /* includes moving the last records into SQLite */
	uint64_t us = gw_mono_us() - t0;
	gw_store_close(st);
	gw_audit_verify_result res;
	uint64_t v0 = gw_mono_us();
	int vr = gw_audit_verify(path, cfg.audit_checkpoint_key, cfg.audit_checkpoint_key_len, &res, NULL, NULL, err,
		sizeof(err));
	uint64_t vus = gw_mono_us() - v0;
	printf("recorder: %ld statement records in %.2f s = %.0f records/s committed (journal, %.0f per group) "
		"and stored in SQLite; appends alone %.0f records/s; %llu SQLite transactions so far (%.1f us each)\n",
		records, us / 1e6, records / (us / 1e6), (double)sessions * window, records / (append_us / 1e6),
		(unsigned long long)stt.batches, stt.batches ? (double)stt.commit_us_total / (double)stt.batches : 0.0);
	printf("verify: %s, %lld records in %.2f s = %.0f records/s\n", vr == 0 && res.ok ? "chain ok" : "FAILED",
		(long long)res.records, vus / 1e6, res.records / (vus / 1e6 + 1e-9));
	return vr == 0 && res.ok ? 0 : 1;
}
