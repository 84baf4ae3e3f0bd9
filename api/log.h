/* api/log.h -- the one place that writes log lines (stderr, text or JSON, one per event). */
#ifndef TIDINGS_API_LOG_H
#define TIDINGS_API_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_setup(int level, bool json);
extern int log_level;
/* Thread: any. Writes one whole line; errnum 0 means none. */
void log_write(int level, const char *module, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* One access-log line per HTTP request. */
void log_access(const char *method, const char *path, int status, double seconds, size_t bytes,
                const char *route);
/* Copies url into out (size bytes) with any password replaced by "***": secrets never reach
 * a log line. */
void log_redact_url(const char *url, char *out, size_t size);
/* Parses "debug" … "error"; -1 when unknown. */
int log_level_parse(const char *name);

/* The level is tested before the arguments are evaluated. */
#define LOG(level, module, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= log_level)                                                                  \
            log_write((level), (module), 0, __VA_ARGS__);                                          \
    } while (0)
#define LOG_ERRNO(level, module, errnum, ...)                                                      \
    do {                                                                                           \
        if ((level) >= log_level)                                                                  \
            log_write((level), (module), (errnum), __VA_ARGS__);                                   \
    } while (0)
/* At most one line per second from this call site; the rest are counted, not written. */
#define LOG_RATELIMITED(level, module, errnum, ...)                                                \
    do {                                                                                           \
        static atomic_llong log_rl_last_;                                                          \
        static atomic_llong log_rl_dropped_;                                                       \
        if ((level) >= log_level) {                                                                \
            if (log_ratelimit_pass(&log_rl_last_, &log_rl_dropped_))                               \
                log_write((level), (module), (errnum), __VA_ARGS__);                               \
        }                                                                                          \
    } while (0)
bool log_ratelimit_pass(atomic_llong *last, atomic_llong *dropped);

#endif
