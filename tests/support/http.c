/* tests/support/http.c -- a raw-socket HTTP/1.1 client that sends exactly the bytes given.
 *
 * Tests use it to send requests no ordinary client would (malformed, oversize, chunked,
 * invalid UTF-8). It reads one response: the head up to the blank line, then the body by
 * Content-Length, by chunks, or until the server closes. A server may answer before it
 * has read the whole request (413) and close: a failed send is then ignored and the
 * response read anyway. Every wait is bounded by one deadline.
 */
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

void ts_buf_add(ts_buf_t *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ts_buf_puts(ts_buf_t *b, const char *text)
{
    ts_buf_add(b, text, strlen(text));
}

int ts_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0) /* before connecting, so the window is sized for it */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends what it can; stops quietly when the peer stops reading or closes. */
static void send_all(int fd, const char *p, size_t len, uint64_t deadline)
{
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int left = (int)(deadline - ts_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0 || !(pfd.revents & POLLOUT))
            return;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* Reads more into b; 1 when data came, 0 on close, -errno on error or timeout. */
static int read_more(int fd, ts_buf_t *b, uint64_t deadline)
{
    for (;;) {
        int left = (int)(deadline - ts_now_ms());
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : -errno;
        char chunk[16384];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? 0 : -errno;
        if (n == 0)
            return 0;
        ts_buf_add(b, chunk, (size_t)n);
        return 1;
    }
}

static const char *find_header(const char *head, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t n = end ? (size_t)(end - v) : strlen(v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            *vlen = n;
            return v;
        }
    }
    return NULL;
}

const char *ts_head_value(const char *head, const char *name, char *buf, size_t size)
{
    size_t n;
    const char *v = head ? find_header(head, name, &n) : NULL;
    if (!v)
        return NULL;
    if (n >= size)
        n = size - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

const char *ts_resp_header(const ts_resp_t *r, const char *name, char *buf, size_t size)
{
    return ts_head_value(r->head, name, buf, size);
}

/* Decodes a complete chunked body from raw into out; returns the bytes it spans, 0 when
 * more are needed, -1 when malformed. */
static long dechunk(const char *raw, size_t len, ts_buf_t *out)
{
    size_t pos = 0;
    out->len = 0;
    for (;;) {
        const char *eol = memmem(raw + pos, len - pos, "\r\n", 2);
        if (!eol)
            return 0;
        char *end;
        unsigned long size = strtoul(raw + pos, &end, 16);
        if (end == raw + pos)
            return -1;
        pos = (size_t)(eol - raw) + 2;
        if (size == 0) { /* no trailers expected: the final CRLF follows */
            if (len - pos < 2)
                return 0;
            return (long)(pos + 2);
        }
        if (len - pos < size + 2)
            return 0;
        ts_buf_add(out, raw + pos, size);
        pos += size + 2;
    }
}

/* Reads the body of the response whose head is b->p[0..head_len) into out; returns the
 * bytes of b it spans, head included. */
static size_t read_body(int fd, ts_buf_t *b, size_t head_len, bool head_only, uint64_t deadline,
                        ts_resp_t *out)
{
    out->head = strndup(b->p, head_len - 4);
    cr_assert(out->head);
    char vbuf[64];
    const char *cl = ts_resp_header(out, "Content-Length", vbuf, sizeof(vbuf));
    char te[64];
    bool chunked =
        ts_resp_header(out, "Transfer-Encoding", te, sizeof(te)) && strcasecmp(te, "chunked") == 0;
    bool no_body = head_only || out->status == 204 || out->status == 304;
    ts_buf_t body = {0};
    ts_buf_add(&body, "", 0);
    int rc = 1;
    size_t used = head_len;
    if (no_body) {
        /* nothing */
    } else if (cl) {
        size_t want = strtoull(cl, NULL, 10);
        while (b->len - head_len < want && (rc = read_more(fd, b, deadline)) > 0)
            ;
        size_t have = b->len - head_len;
        ts_buf_add(&body, b->p + head_len, have < want ? have : want);
        used += have < want ? have : want;
    } else if (chunked) {
        long spans;
        while ((spans = dechunk(b->p + head_len, b->len - head_len, &body)) == 0 &&
               (rc = read_more(fd, b, deadline)) > 0)
            ;
        used += spans > 0 ? (size_t)spans : b->len - head_len;
    } else {
        while ((rc = read_more(fd, b, deadline)) > 0)
            ;
        ts_buf_add(&body, b->p + head_len, b->len - head_len);
        used = b->len;
    }
    out->body = body.p;
    out->body_len = body.len;
    out->closed = rc == 0;
    out->timed_out = rc == -ETIMEDOUT;
    return used;
}

/* Reads one response from fd (b holds bytes already read; what follows the response stays
 * in b for the next). Returns 0 or -errno. */
static int read_one(int fd, ts_buf_t *b, bool head_only, uint64_t deadline, ts_resp_t *out)
{
    memset(out, 0, sizeof(*out));
    for (;;) {
        char *end = b->p ? memmem(b->p, b->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t head_len = (size_t)(end - b->p) + 4;
            int status = 0;
            if (sscanf(b->p, "HTTP/1.%*d %d", &status) != 1)
                return -EPROTO;
            if (status >= 100 && status < 200) { /* interim: drop it and read on */
                memmove(b->p, b->p + head_len, b->len - head_len + 1);
                b->len -= head_len;
                continue;
            }
            out->status = status;
            size_t used = read_body(fd, b, head_len, head_only, deadline, out);
            memmove(b->p, b->p + used, b->len - used + 1);
            b->len -= used;
            return 0;
        }
        int more = read_more(fd, b, deadline);
        if (more <= 0)
            return more == 0 ? -ECONNRESET : more;
    }
}

int ts_http_pipeline(int port, const void *req, size_t len, int timeout_ms, ts_resp_t *out,
                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        memset(&out[i], 0, sizeof(out[i]));
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    int fd = ts_connect(port, 0);
    if (fd < 0)
        return fd;
    send_all(fd, req, len, deadline);
    bool head_only = len >= 5 && memcmp(req, "HEAD ", 5) == 0;
    ts_buf_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = read_one(fd, &b, head_only && i == 0, deadline, &out[i]);
    free(b.p);
    close(fd);
    return rc;
}

int ts_http_raw(int port, const void *req, size_t len, int timeout_ms, ts_resp_t *out)
{
    return ts_http_pipeline(port, req, len, timeout_ms, out, 1);
}

void ts_http(int port, const char *method, const char *path, const char *token,
             const char *extra_headers, const char *body, ts_resp_t *out)
{
    ts_http_within(port, method, path, token, extra_headers, body, 15000, out);
}

void ts_http_within(int port, const char *method, const char *path, const char *token,
                    const char *extra_headers, const char *body, int timeout_ms, ts_resp_t *out)
{
    ts_buf_t req = {0};
    char line[512];
    snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
             method, path, port);
    ts_buf_puts(&req, line);
    if (token) {
        ts_buf_puts(&req, "Authorization: Bearer ");
        ts_buf_puts(&req, token);
        ts_buf_puts(&req, "\r\n");
    }
    if (extra_headers)
        ts_buf_puts(&req, extra_headers);
    if (body) {
        snprintf(line, sizeof(line), "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 strlen(body));
        ts_buf_puts(&req, line);
    }
    ts_buf_puts(&req, "\r\n");
    if (body)
        ts_buf_puts(&req, body);
    int rc = ts_http_raw(port, req.p, req.len, timeout_ms, out);
    free(req.p);
    cr_assert(rc == 0, "%s %s: no response (%s)", method, path, strerror(-rc));
    cr_assert(!out->timed_out, "%s %s: the body was still arriving after %d ms (%zu bytes)", method,
              path, timeout_ms, out->body_len);
}

json_t *ts_resp_json(const ts_resp_t *r)
{
    if (!r->body || r->body_len == 0)
        return NULL;
    return json_loadb(r->body, r->body_len, 0, NULL);
}

char *ts_problem_sans_instance(const ts_resp_t *r)
{
    json_t *j = ts_resp_json(r);
    cr_assert(j, "a problem body: %s", r->body);
    json_object_del(j, "instance");
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

void ts_resp_free(ts_resp_t *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

json_t *ts_call(int port, const char *method, const char *path, const char *token, const char *body,
                int expect_status)
{
    ts_resp_t r;
    ts_http(port, method, path, token, NULL, body, &r);
    cr_assert(r.status == expect_status, "%s %s: expected %d, got %d: %s", method, path,
              expect_status, r.status, r.body);
    json_t *j = ts_resp_json(&r);
    cr_assert(j || r.body_len == 0, "%s %s: body is not JSON: %s", method, path, r.body);
    ts_resp_free(&r);
    return j;
}
