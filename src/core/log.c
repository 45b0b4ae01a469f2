/*
 * Line-at-a-time logging to stderr; see log.h.
 */
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum gw_log_level min_level = GW_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level level) { min_level = level; }

int gw_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char line[2048];
	char ts[40];
	gw_format_ts(gw_wall_us(), ts, sizeof(ts));
	int n = snprintf(line, sizeof(line), "%s %s ", ts, names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/*
	 * Messages quote what clients send (user names, application_name...): a
	 * control character there must not start a forged line or drive a terminal.
	 */
	for (size_t i = (size_t)n; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
