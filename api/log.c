/* api/log.c -- log lines to stderr: "time level module message", or one JSON object.
 *
 * Each line is formatted into a buffer and written with one write(2), so lines from
 * different threads never interleave. Lower modules do not log: they return codes and
 * main turns those into lines here.
 */
#include "api/log.h"
#include "api/utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_INFO;
static bool log_json;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(int level, bool json)
{
    log_level = level;
    log_json = json;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static void timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void emit(char *line, size_t len)
{
    line[len] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len + 1);
    (void)ignored;
}

static void emit_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s) {
        size_t n = strlen(s);
        char line[8192];
        if (n < sizeof(line) - 1) {
            memcpy(line, s, n);
            emit(line, n);
        }
        free(s);
    }
    json_decref(obj);
}

void log_write(int level, const char *module, int errnum, const char *fmt, ...)
{
    char ts[40], msg[4096];
    timestamp(ts, sizeof(ts));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (errnum)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ": %s", strerror(errnum));
    api_utf8_sanitize(msg); /* a quoted input, or a cut: JSON takes valid UTF-8 only */
    if (log_json) {
        emit_json(json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "level", level_names[level],
                            "module", module, "msg", msg));
        return;
    }
    char line[4400];
    int len =
        snprintf(line, sizeof(line) - 1, "%s %-5s %s: %s", ts, level_names[level], module, msg);
    if (len > 0)
        emit(line, (size_t)len < sizeof(line) - 1 ? (size_t)len : sizeof(line) - 2);
}

void log_access(const char *method, const char *path, int status, double seconds, size_t bytes,
                const char *route)
{
    if (LOG_INFO < log_level)
        return;
    char ts[40];
    timestamp(ts, sizeof(ts));
    if (log_json) {
        emit_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s}", "time", ts, "level",
                            "info", "module", "access", "method", method, "path", path, "status",
                            status, "duration_ms", seconds * 1000.0, "bytes", (json_int_t)bytes,
                            "route", route));
        return;
    }
    char line[2300];
    int len = snprintf(line, sizeof(line) - 1, "%s info  access: %s %.2000s %d %.3fms %zu %s", ts,
                       method, path, status, seconds * 1000.0, bytes, route);
    if (len > 0)
        emit(line, (size_t)len < sizeof(line) - 1 ? (size_t)len : sizeof(line) - 2);
}

bool log_ratelimit_pass(atomic_llong *last, atomic_llong *dropped)
{
    long long now = (long long)time(NULL);
    long long prev = atomic_load(last);
    if (now > prev && atomic_compare_exchange_strong(last, &prev, now)) {
        long long n = atomic_exchange(dropped, 0);
        if (n > 0)
            log_write(LOG_WARN, "log", 0, "%lld similar lines suppressed", n);
        return true;
    }
    atomic_fetch_add(dropped, 1);
    return false;
}

void log_redact_url(const char *url, char *out, size_t size)
{
    /* redis://[user][:password@]host:port[,host:port…]: every "://…@" span loses its secret. */
    size_t o = 0;
    for (const char *p = url; *p && o + 1 < size;) {
        const char *scheme = strstr(p, "://");
        const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
        const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
        const char *until = colon ? colon + 1 : url + strlen(url);
        while (p < until && o + 1 < size)
            out[o++] = *p++;
        if (!colon)
            break;
        for (const char *stars = "***"; *stars && o + 1 < size; stars++)
            out[o++] = *stars;
        p = at;
    }
    out[o] = '\0';
}
