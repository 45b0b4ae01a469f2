/*
 * Wall-clock time for policy decisions: time zones, time windows and the
 * clock itself.
 *
 * Owns: a reader of the system tz database (TZif v1-v4 files under
 * /usr/share/zoneinfo, including the POSIX TZ footer used after the last
 * transition), the `window:` policy syntax ("Mon-Fri 08:00-20:00
 * Europe/Berlin") and gw_policy_now(), the one clock policies read.
 *
 * Never touches the TZ environment variable, tzset() or localtime(): the
 * gateway is multi-threaded. A loaded gw_tz or gw_window is immutable and may
 * be shared by any number of threads without locks.
 */
#ifndef GW_CORE_CLOCK_H
#define GW_CORE_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GW_TZ_DIR "/usr/share/zoneinfo"

typedef struct gw_tz gw_tz;

/*
 * Load a zone by its tz database name ("Europe/Berlin"). "UTC", "Etc/UTC" and
 * "Z" need no file. Names with "..", a leading '/' or characters outside
 * [A-Za-z0-9/_+-] are refused, as are right/ zones (leap seconds) and files
 * over 256 KiB. Returns an owned zone, or NULL with a one-line reason in err,
 * e.g. `unknown time zone "Europe/Berln" (no file /usr/share/zoneinfo/...)`.
 */
gw_tz *gw_tz_load(const char *name, char *err, size_t errlen);
/*
 * The same from TZif bytes in memory (data need not outlive the call); name is
 * only kept for gw_tz_name(). For tests and for zones not on disk.
 */
gw_tz *gw_tz_parse(const char *name, const void *data, size_t len, char *err, size_t errlen);
/* NULL is a no-op. */
void gw_tz_free(gw_tz *tz);
/* The name the zone was loaded under. */
const char *gw_tz_name(const gw_tz *tz);
/*
 * Local time in tz at unix time t into out: every struct tm field, with
 * tm_gmtoff (seconds east of UTC), tm_isdst, and tm_zone pointing into tz
 * (valid while tz lives). Returns 0, or -1 when t is beyond about a billion
 * years either way (out is then zeroed).
 */
int gw_tz_local(const gw_tz *tz, int64_t t, struct tm *out);

typedef struct gw_window gw_window;

/*
 * Parse a policy window: DAYS HH:MM-HH:MM [ZONE].
 *   DAYS  "daily", or a comma list of Mon Tue Wed Thu Fri Sat Sun
 *         (case-insensitive) and ranges of them, which may wrap (Fri-Mon);
 *   times local wall-clock (H:MM or HH:MM), start inclusive, end exclusive;
 *         24:00 only as an end (an end of 00:00 means the same midnight);
 *         start == end is an error. A range that crosses midnight
 *         belongs to the day it starts on: "Fri 22:00-06:00" includes Sat
 *         03:00 but not Fri 03:00;
 *   ZONE  a tz database name, UTC when absent.
 * Returns an owned window, or NULL with a one-line reason in err (which names
 * the offending part, e.g. `unknown day "Mnday"`).
 */
gw_window *gw_window_parse(const char *spec, char *err, size_t errlen);
/* NULL is a no-op. */
void gw_window_free(gw_window *w);
/*
 * Is unix time t inside the window? Wall-clock semantics on DST days: a
 * skipped hour is never inside, a repeated hour is inside both times.
 */
bool gw_window_contains(const gw_window *w, int64_t t);
/* The window normalised, e.g. "Mon,Wed-Fri 22:00-06:00 America/New_York". */
const char *gw_window_str(const gw_window *w);

/*
 * "1767225600" (unix seconds) or "2026-01-01T00:00:00Z" into *out. Returns 0,
 * or -1 when malformed.
 */
int gw_clock_parse_instant(const char *s, int64_t *out);
/*
 * Test aid: when the environment has PGMOAT_TEST_NOW (a gw_clock_parse_instant
 * form), gw_policy_now() starts at that instant and keeps advancing with the
 * real clock. Reads the environment once per process; call it at start-up
 * before threads begin (later calls, and gw_policy_now() without it, are
 * safe: initialisation happens exactly once). Returns 0, or -1 when the value
 * is malformed (the real clock is then used).
 */
int gw_clock_init(void);
/* Unix seconds for policy decisions (windows, grant expiry). Thread-safe. */
int64_t gw_policy_now(void);

#endif
