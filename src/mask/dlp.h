/*
 * The external DLP provider: a Microsoft Presidio analyzer over HTTP
 * (masking.provider: {presidio: URL}).
 *
 * Owns: the provider's threads and their HTTP connections (libcurl, kept
 * alive), the request queue, batching several values into one /analyze
 * request and mapping the answer's character offsets back to each value's
 * bytes. A worker never blocks on the network: it submits a job and gets it
 * back on its own loop (gw_loop_post) when the analyzer answered, failed or
 * timed out.
 *
 * Presidio's analyzer: POST /analyze {"text", "language": "en", "entities"?,
 * "score_threshold"?} answers [{"entity_type", "start", "end", "score"}] with
 * offsets in characters (Unicode code points) of text.
 */
#ifndef GW_MASK_DLP_H
#define GW_MASK_DLP_H

#include "core/config.h"
#include "net/loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_dlp gw_dlp;

typedef struct gw_dlp_job {
	/* in: the values (bytes; valid UTF-8 is sent, anything else is reported whole) */
	size_t n;
	const uint8_t **vals;
	size_t *lens;
	/* out: per value, what the analyzer found: byte spans, sorted and merged, with Presidio's entity_type */
	struct gw_dlp_found {
		struct gw_dlp_span {
			uint32_t start, end;
			char type[32];
		} *spans;
		size_t nspans;
		bool whole;        /* mask the value whole (not UTF-8, or too many finds) */
	} *found;
	bool failed;
	char error[240];
	/* completion: done(job) runs on loop */
	gw_loop *loop;
	gw_task_fn done;
	void *owner;           /* the caller's (a session); NULL once orphaned */
	/* the provider's */
	bool orphan;           /* the owner is gone: whoever holds the job last frees it */
	bool running;
	uint8_t *buf;          /* the values' bytes, owned by the job */
} gw_dlp_job;

/* The provider of cfg (NULL when masking uses the built-in detectors only). */
gw_dlp *gw_dlp_new(const gw_config *cfg, char *err, size_t errlen);
void gw_dlp_free(gw_dlp *d);
/*
 * A job for n values, their bytes copied (gw_dlp_job_add). Owned by the
 * caller until submitted; after gw_dlp_submit, job->done(job) is posted to
 * job->loop when it is answered, and the caller frees it there.
 */
gw_dlp_job *gw_dlp_job_new(size_t n, size_t bytes);
void gw_dlp_job_add(gw_dlp_job *job, const uint8_t *v, size_t len);
void gw_dlp_submit(gw_dlp *d, gw_dlp_job *job);
/*
 * The owner is going away while the job may be in flight: the provider (or
 * the completion, if already posted: it must then call gw_dlp_job_free)
 * frees it. Call from the owner's loop thread.
 */
void gw_dlp_orphan(gw_dlp *d, gw_dlp_job *job);
void gw_dlp_job_free(gw_dlp_job *job);

#endif
