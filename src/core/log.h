/*
 * Structured, line-at-a-time log to stderr. One write(2) per line, so lines
 * from worker threads never interleave. Never pass a password, token or a
 * masked value to these functions.
 */
#ifndef GW_CORE_LOG_H
#define GW_CORE_LOG_H

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

void gw_log_set_level(enum gw_log_level level);
/* "debug", "info", "warn", "error"; returns -1 when unknown. */
int gw_log_level_parse(const char *s);
__attribute__((format(printf, 2, 3))) void gw_log(enum gw_log_level level, const char *fmt, ...);

#define gw_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)

#endif
