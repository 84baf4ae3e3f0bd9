/* tests/support/sse.c -- a server-sent events client over a raw loopback socket, and streams
 * checked as the API opens them.
 *
 * Three layers, each incremental: bytes from the socket go to _raw; the chunk decoder moves
 * the payload of complete chunk pieces from _raw to _text (or all of _raw when the body is
 * not chunked); the line parser takes whole lines from _text and builds items. A line may
 * end with CRLF, LF or CR; a CR at the end of what has arrived ends the line at once and
 * the LF that may follow is skipped when it comes (_skip_lf), so no line waits for a byte
 * that may never be sent.
 */
#include "tests/support/sse.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_CRLF, CHUNK_TRAILER, CHUNK_DONE, CHUNK_NONE };

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t cap2 = *cap ? *cap : 4096;
    while (cap2 < need)
        cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p)
        abort();
    *buf = p;
    *cap = cap2;
}

static void add_raw(ts_sse_t *c, const char *p, size_t n)
{
    grow(&c->_raw, &c->_raw_cap, c->_raw_len + n + 1);
    memcpy(c->_raw + c->_raw_len, p, n);
    c->_raw_len += n;
    c->_raw[c->_raw_len] = '\0';
}

static void add_text(ts_sse_t *c, const char *p, size_t n)
{
    if (c->_text_off > 0 && c->_text_off * 2 >= c->_text_len) {
        memmove(c->_text, c->_text + c->_text_off, c->_text_len - c->_text_off);
        c->_text_len -= c->_text_off;
        c->_text_off = 0;
    }
    grow(&c->_text, &c->_text_cap, c->_text_len + n + 1);
    memcpy(c->_text + c->_text_len, p, n);
    c->_text_len += n;
    c->_text[c->_text_len] = '\0';
    c->bytes += n;
}

static void drop_raw(ts_sse_t *c, size_t n)
{
    memmove(c->_raw, c->_raw + n, c->_raw_len - n);
    c->_raw_len -= n;
    if (c->_raw)
        c->_raw[c->_raw_len] = '\0';
}

static void framing(ts_sse_t *c, const char *what)
{
    if (!c->framing_error)
        snprintf(c->framing_what, sizeof(c->framing_what), "%s", what);
    c->framing_error = true;
    c->ended = true;
}

/* Moves what it can from _raw to _text. */
static void dechunk(ts_sse_t *c)
{
    for (;;) {
        switch (c->_chunk_state) {
        case CHUNK_NONE:
            if (c->_raw_len)
                add_text(c, c->_raw, c->_raw_len);
            drop_raw(c, c->_raw_len);
            return;
        case CHUNK_DONE:
            c->_raw_len = 0; /* nothing may follow on this connection: ignore it */
            return;
        case CHUNK_SIZE: {
            char *eol = c->_raw_len ? memmem(c->_raw, c->_raw_len, "\r\n", 2) : NULL;
            if (!eol) {
                if (c->_raw_len > 64)
                    framing(c, "chunk-size line longer than 64 bytes");
                return;
            }
            char *end;
            errno = 0;
            unsigned long long size = strtoull(c->_raw, &end, 16);
            if (end == c->_raw || errno || (end != eol && *end != ';')) {
                framing(c, "malformed chunk-size line");
                return;
            }
            drop_raw(c, (size_t)(eol - c->_raw) + 2);
            c->_chunk_left = (size_t)size;
            c->_chunk_state = size ? CHUNK_DATA : CHUNK_TRAILER;
            break;
        }
        case CHUNK_DATA: {
            size_t n = c->_raw_len < c->_chunk_left ? c->_raw_len : c->_chunk_left;
            if (n == 0)
                return;
            add_text(c, c->_raw, n);
            drop_raw(c, n);
            c->_chunk_left -= n;
            if (c->_chunk_left == 0)
                c->_chunk_state = CHUNK_DATA_CRLF;
            break;
        }
        case CHUNK_DATA_CRLF:
            if (c->_raw_len < 2)
                return;
            if (memcmp(c->_raw, "\r\n", 2) != 0) {
                framing(c, "chunk data not followed by CRLF");
                return;
            }
            drop_raw(c, 2);
            c->_chunk_state = CHUNK_SIZE;
            break;
        case CHUNK_TRAILER: {
            char *eol = c->_raw_len ? memmem(c->_raw, c->_raw_len, "\r\n", 2) : NULL;
            if (!eol)
                return;
            bool blank = eol == c->_raw;
            drop_raw(c, (size_t)(eol - c->_raw) + 2);
            if (blank) {
                c->_chunk_state = CHUNK_DONE;
                c->clean_end = true;
                c->ended = true;
            }
            break;
        }
        }
    }
}

/* Reads once more from the socket; false when nothing came before the deadline. */
static bool read_more(ts_sse_t *c, uint64_t deadline)
{
    if (c->ended)
        return false;
    for (;;) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        if (left < 0)
            left = 0; /* still take what has arrived already */
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return false;
        char chunk[16384];
        ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            /* Closed or reset: not clean unless the last chunk came or, for a body the
             * close delimits, the server closed in order (ts_sse_next then checks that no
             * event was cut). */
            c->ended = true;
            c->_orderly_close = n == 0 && !c->chunked;
            return true;
        }
        add_raw(c, chunk, (size_t)n);
        return true;
    }
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert(n > 0, "sending the request failed: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

const char *ts_sse_header(const ts_sse_t *c, const char *name, char *buf, size_t size)
{
    return ts_head_value(c->head, name, buf, size);
}

/* ts_sse_open, or with may_fail NULL where it would fail the test for want of a connection
 * or of a response head. */
static ts_sse_t *open_stream(int port, const ts_sse_opts_t *o, int timeout_ms, bool may_fail)
{
    static const ts_sse_opts_t none = {0};
    if (!o)
        o = &none;
    ts_sse_t *c = calloc(1, sizeof(*c));
    cr_assert(c);
    c->_chunk_state = CHUNK_NONE;
    c->fd = ts_connect(port, o->rcvbuf);
    if (may_fail && c->fd < 0) {
        free(c);
        return NULL;
    }
    cr_assert(c->fd >= 0, "connect to port %d: %s", port, strerror(-c->fd));
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s%s%s%s%s%s%s\r\n",
                     o->method ? o->method : "GET", o->path ? o->path : "/v1/stream", port,
                     o->token ? "Authorization: Bearer " : "", o->token ? o->token : "",
                     o->token ? "\r\n" : "", o->last_event_id ? "Last-Event-ID: " : "",
                     o->last_event_id ? o->last_event_id : "", o->last_event_id ? "\r\n" : "",
                     o->extra_headers ? o->extra_headers : "");
    cr_assert(n > 0 && (size_t)n < sizeof(req), "request too long");
    send_all(c->fd, req, (size_t)n);

    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    char *end;
    while (!(end = c->_raw ? memmem(c->_raw, c->_raw_len, "\r\n\r\n", 4) : NULL)) {
        bool more = read_more(c, deadline);
        if (may_fail && (!more || c->ended)) {
            ts_sse_close(c);
            return NULL;
        }
        cr_assert(more && !c->ended, "%s %s: no response head within %d ms (%zu bytes: %.200s)",
                  o->method ? o->method : "GET", o->path ? o->path : "/v1/stream", timeout_ms,
                  c->_raw_len, c->_raw ? c->_raw : "");
    }
    size_t head_len = (size_t)(end - c->_raw);
    c->head = strndup(c->_raw, head_len);
    cr_assert(c->head);
    cr_assert(sscanf(c->head, "HTTP/1.%*d %d", &c->status) == 1, "bad status line: %.100s",
              c->head);
    drop_raw(c, head_len + 4);
    char v[64];
    c->chunked =
        ts_sse_header(c, "Transfer-Encoding", v, sizeof(v)) && strcasecmp(v, "chunked") == 0;
    c->_chunk_state = c->chunked ? CHUNK_SIZE : CHUNK_NONE;
    bool is_head = o->method && strcmp(o->method, "HEAD") == 0;
    if (c->status == 200)
        return c;

    /* Not a stream: read the whole body. */
    const char *cl = ts_sse_header(c, "Content-Length", v, sizeof(v));
    size_t want = cl ? strtoull(cl, NULL, 10) : 0;
    bool no_body = is_head || c->status == 204 || c->status == 304 || (cl && want == 0);
    for (;;) {
        dechunk(c);
        if (no_body || c->ended || (cl && c->_text_len >= want) || c->_chunk_state == CHUNK_DONE)
            break;
        cr_assert(read_more(c, deadline), "status %d: body not complete within %d ms", c->status,
                  timeout_ms);
    }
    size_t len = cl && c->_text_len > want ? want : c->_text_len;
    if (no_body)
        len = 0;
    c->body = malloc(len + 1);
    cr_assert(c->body);
    if (len)
        memcpy(c->body, c->_text, len);
    c->body[len] = '\0';
    c->body_len = len;
    return c;
}

ts_sse_t *ts_sse_open(int port, const ts_sse_opts_t *o, int timeout_ms)
{
    return open_stream(port, o, timeout_ms, false);
}

ts_sse_t *ts_sse_try_open(int port, const ts_sse_opts_t *o, int timeout_ms)
{
    return open_stream(port, o, timeout_ms, true);
}

void ts_sse_item_clear(ts_sse_item_t *it)
{
    free(it->data);
    memset(it, 0, sizeof(*it));
}

static void reset_block(ts_sse_t *c)
{
    memset(&c->_cur, 0, sizeof(c->_cur));
    c->_data_len = 0;
    c->_block = false;
}

/* Handles one line; true when it completed an item (in *it). */
static bool take_line(ts_sse_t *c, const char *line, size_t len, ts_sse_item_t *it)
{
    if (len == 0) {
        if (!c->_block)
            return false;
        *it = c->_cur;
        it->kind = TS_SSE_EVENT;
        if (it->has_data) {
            size_t n = c->_data_len ? c->_data_len - 1 : 0; /* the last LF goes */
            it->data = malloc(n + 1);
            if (!it->data)
                abort();
            memcpy(it->data, c->_data, n);
            it->data[n] = '\0';
            it->data_len = n;
        }
        reset_block(c);
        return true;
    }
    if (line[0] == ':') {
        memset(it, 0, sizeof(*it));
        it->kind = TS_SSE_COMMENT;
        size_t skip = len > 1 && line[1] == ' ' ? 2 : 1;
        snprintf(it->text, sizeof(it->text), "%.*s", (int)(len - skip), line + skip);
        return true;
    }
    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    if (colon && value < line + len && *value == ' ')
        value++;
    size_t vlen = (size_t)(line + len - value);
    if (flen == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(c->_cur.type, sizeof(c->_cur.type), "%.*s", (int)vlen, value);
        c->_block = true;
    } else if (flen == 4 && memcmp(line, "data", 4) == 0) {
        grow(&c->_data, &c->_data_cap, c->_data_len + vlen + 2);
        memcpy(c->_data + c->_data_len, value, vlen);
        c->_data_len += vlen;
        c->_data[c->_data_len++] = '\n';
        c->_cur.has_data = true;
        c->_block = true;
    } else if (flen == 2 && memcmp(line, "id", 2) == 0) {
        if (!memchr(value, '\0', vlen)) {
            snprintf(c->_cur.id, sizeof(c->_cur.id), "%.*s", (int)vlen, value);
            snprintf(c->last_id, sizeof(c->last_id), "%.*s", (int)vlen, value);
            c->_cur.has_id = true;
        }
        c->_block = true;
    } else if (flen == 5 && memcmp(line, "retry", 5) == 0 && vlen > 0 && vlen < 10 &&
               strspn(value, "0123456789") >= vlen) {
        memset(it, 0, sizeof(*it));
        it->kind = TS_SSE_RETRY;
        it->retry_ms = strtol(value, NULL, 10);
        return true;
    } else {
        if (!c->unknown_fields)
            snprintf(c->unknown_line, sizeof(c->unknown_line), "%.*s", (int)len, line);
        c->unknown_fields++;
    }
    return false;
}

/* Takes whole lines from _text until one completes an item; false when more is needed. */
static bool parse(ts_sse_t *c, ts_sse_item_t *it)
{
    for (;;) {
        char *p = c->_text + c->_text_off, *end = c->_text + c->_text_len;
        if (p == end)
            return false;
        if (c->_skip_lf) {
            c->_skip_lf = false;
            if (*p == '\n') {
                c->_text_off++;
                continue;
            }
        }
        char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r')
            eol++;
        if (eol == end)
            return false;
        c->_skip_lf = *eol == '\r';
        c->_text_off = (size_t)(eol - c->_text) + 1;
        if (take_line(c, p, (size_t)(eol - p), it))
            return true;
    }
}

ts_sse_kind_t ts_sse_next(ts_sse_t *c, ts_sse_item_t *it, int timeout_ms)
{
    memset(it, 0, sizeof(*it));
    uint64_t deadline = ts_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        dechunk(c);
        if (parse(c, it))
            return it->kind;
        if (c->ended) {
            if (c->_orderly_close && !c->framing_error)
                c->clean_end = c->_text_off == c->_text_len && !c->_block;
            it->kind = TS_SSE_END;
            return TS_SSE_END;
        }
        if (!read_more(c, deadline)) {
            it->kind = TS_SSE_TIMEOUT;
            return TS_SSE_TIMEOUT;
        }
    }
}

ts_sse_kind_t ts_sse_next_event(ts_sse_t *c, ts_sse_item_t *it, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        ts_sse_kind_t k = ts_sse_next(c, it, left > 0 ? (int)left : 0);
        if (k == TS_SSE_EVENT || k == TS_SSE_END || k == TS_SSE_TIMEOUT)
            return k;
        ts_sse_item_clear(it);
    }
}

bool ts_sse_drain(ts_sse_t *c, int timeout_ms, int *events)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int64_t left = (int64_t)deadline - (int64_t)ts_now_ms();
        ts_sse_item_t it;
        ts_sse_kind_t k = ts_sse_next(c, &it, left > 0 ? (int)left : 0);
        if (k == TS_SSE_EVENT && events)
            (*events)++;
        ts_sse_item_clear(&it);
        if (k == TS_SSE_END)
            return true;
        if (k == TS_SSE_TIMEOUT)
            return false;
    }
}

void ts_sse_close(ts_sse_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->head);
    free(c->body);
    free(c->_raw);
    free(c->_text);
    free(c->_data);
    free(c);
}

/* ---- streams as the API opens them ------------------------------------------------------ */

ts_sse_t *ts_stream_opts(int port, const ts_sse_opts_t *o)
{
    ts_sse_t *c = ts_sse_open(port, o, TS_SSE_OPEN_MS);
    cr_assert_eq(c->status, 200, "GET %s answered %d, not a stream: %s",
                 o->path ? o->path : "/v1/stream", c->status, c->body);
    char ct[128];
    cr_assert(ts_sse_header(c, "Content-Type", ct, sizeof(ct)), "the stream has no Content-Type");
    cr_assert(strncmp(ct, "text/event-stream", 17) == 0, "the stream's Content-Type is %s", ct);
    ts_sse_item_t it;
    ts_sse_kind_t k = ts_sse_next(c, &it, TS_SSE_OPEN_MS);
    cr_assert(k == TS_SSE_RETRY && it.retry_ms == 3000,
              "the stream did not start with retry: 3000 (item kind %d, retry %ld, type '%s', "
              "comment '%s')",
              k, it.retry_ms, it.type, it.text);
    ts_sse_item_clear(&it);
    return c;
}

ts_sse_t *ts_stream(int port, const ts_user_t *u, const char *last_event_id)
{
    ts_sse_opts_t o = {.token = u->token, .last_event_id = last_event_id};
    return ts_stream_opts(port, &o);
}

void ts_sse_expect(ts_sse_t *c, const char *type, ts_sse_item_t *it, int timeout_ms,
                   const char *what)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    ts_sse_kind_t k;
    for (;;) {
        uint64_t now = ts_now_ms();
        k = ts_sse_next_event(c, it, now < deadline ? (int)(deadline - now) : 0);
        if (k != TS_SSE_EVENT || strcmp(it->type, "counts") != 0 ||
            (type && strcmp(type, "counts") == 0))
            break;
        ts_sse_item_clear(it); /* the unread count rides along with notification changes */
    }
    cr_assert(k != TS_SSE_TIMEOUT, "%s: no event within %d ms", what, timeout_ms);
    cr_assert(k != TS_SSE_END, "%s: the stream ended (%s%s)", what,
              c->clean_end ? "clean end" : "connection closed",
              c->framing_error ? ", framing error" : "");
    cr_assert(it->has_id && it->id[0], "%s: an event without id (type '%s')", what, it->type);
    if (type)
        cr_assert_str_eq(it->type, type, "%s: expected a '%s' event, got '%s' (id %s, data %.300s)",
                         what, type, it->type, it->id, it->data ? it->data : "(none)");
}

json_t *ts_sse_data(const ts_sse_item_t *it)
{
    json_error_t err;
    json_t *j = it->data ? json_loads(it->data, 0, &err) : NULL;
    cr_assert(j, "event %s (%s): data is not JSON: %.300s", it->id, it->type,
              it->data ? it->data : "(none)");
    return j;
}

const char *ts_sse_data_id(const ts_sse_item_t *it, char *buf, size_t size)
{
    json_t *j = ts_sse_data(it);
    snprintf(buf, size, "%s", ts_str(j, "id"));
    json_decref(j);
    return buf;
}

int ts_sse_id_cmp(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    sscanf(a, "%llu-%llu", &ams, &aseq);
    sscanf(b, "%llu-%llu", &bms, &bseq);
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}
