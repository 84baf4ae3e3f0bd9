/* bench/bench_lib.h -- what the C load generators (load.c, sse_load.c, abuse_load.c) share.
 *
 * Both are single-process clients of a tidings on 127.0.0.1: they read bearer tokens from a
 * file, open TCP connections to loopback, write HTTP/1.1 requests by hand and parse the
 * answers' heads themselves, time with clock_gettime and report their own CPU time. What
 * they do with the bytes (a keep-alive request loop; SSE streams and a publisher) stays in
 * each program. Nothing here keeps state but the name bench_die() prefixes; every function
 * may be called from any thread (load.c runs two workers), bench_die() ends the process.
 */
#ifndef BENCH_BENCH_LIB_H
#define BENCH_BENCH_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

/* ---- errors and inputs ------------------------------------------------------------------ */

/* The program's name, the prefix of bench_die()'s messages ("load"); main sets it first. */
extern const char *bench_prog;

/* Prints "<bench_prog>: <message>" to stderr and exits with status 2 (a usage or setup error). */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The non-empty lines of path (CR/LF stripped, at most 1023 bytes each), in order, as a new
 * array of new strings; *n is set to their count. Dies when the file cannot be read, has no
 * such line, or memory runs out. Free with bench_free_lines(). */
char **bench_read_lines(const char *path, size_t *n);

/* Frees what bench_read_lines() returned (takes v). */
void bench_free_lines(char **v, size_t n);

typedef enum {
    BENCH_OPT_INT,    /* int *, atoi */
    BENCH_OPT_DOUBLE, /* double *, strtod */
    BENCH_OPT_U64,    /* uint64_t *, strtoull base 10 */
    BENCH_OPT_STR,    /* const char **: borrows argv */
    BENCH_OPT_TRUE,   /* bool *, no argument: set to true */
    BENCH_OPT_FALSE,  /* bool *, no argument: set to false */
} bench_opt_kind_t;

typedef struct {
    const char *name; /* without the leading "--" */
    bench_opt_kind_t kind;
    void *dst;
} bench_opt_t;

/* Reads argv's long options into their destinations (opts ends with a NULL name; it is
 * borrowed); -h and --help ask for help. Numbers are not validated here: the caller checks
 * the values it cares about. Returns 1 as soon as help is asked, 0 when every option was
 * read (optind is then the first positional argument), -EINVAL on an unknown option or a
 * missing value (getopt_long has printed which). */
int bench_parse_args(int argc, char **argv, const bench_opt_t *opts);

/* ---- time ----------------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: intervals and deadlines. */
uint64_t bench_mono_ns(void);

/* CLOCK_REALTIME in ns: the clock of the kernel's receive timestamps (SO_TIMESTAMPNS). */
uint64_t bench_real_ns(void);

/* User plus system CPU seconds this process used since getrusage(RUSAGE_SELF) filled ru0. */
double bench_cpu_since(const struct rusage *ru0);

/* ---- sockets and HTTP ------------------------------------------------------------------- */

/* A new close-on-exec TCP socket with TCP_NODELAY, non-blocking when asked. Returns the fd
 * (the caller owns it) or a negative errno. */
int bench_tcp_socket(bool nonblock);

/* connect()s fd to 127.0.0.1:port; on a non-blocking socket a connect under way (EINPROGRESS)
 * counts as success, the outcome shows as writability. Returns 0 or a negative errno. */
int bench_connect_loopback(int fd, int port);

/* Writes "METHOD PATH HTTP/1.1" with Host: 127.0.0.1:port and Authorization: Bearer token,
 * then headers (whole lines, each ending in CRLF; "" for none), and when body is not NULL
 * Content-Type: application/json before them and Content-Length after them, the blank line
 * and the body. Returns the request's length (buf is NUL-terminated), or -EMSGSIZE when it
 * does not fit in cap bytes. Borrows every string. */
int bench_http_request(char *buf, size_t cap, const char *method, const char *path, int port,
                       const char *token, const char *headers, const char *body);

/* The body of a post: {"text":"<text_json> #<n>"}; text_json must be escaped for JSON
 * already. Returns its length, or -EMSGSIZE when it does not fit in cap bytes. */
int bench_post_body(char *buf, size_t cap, const char *text_json, unsigned long long n);

/* Looks for a response head in buf (NUL-terminated). Returns 0 while its blank line has not
 * arrived; 1 when it has, with *hlen its length (blank line included) and *status the status
 * code, or 0 in *status when the status line is not "HTTP/1.x NNN" with NNN in 100..599. */
int bench_http_head(const char *buf, int *status, size_t *hlen);

/* The value of header name (case-insensitive) in head[0..hlen): a pointer past the colon and
 * any blanks, into head, ending at the line's CRLF (not NUL-terminated there); NULL when the
 * head has no such line. The first such line wins. */
const char *bench_http_header(const char *head, size_t hlen, const char *name);

#endif
