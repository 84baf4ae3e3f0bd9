/* tests/sse/test_client.c -- the SSE client itself, against canned responses from a loopback
 * listener that writes them in small pieces: the stream tests mean something only if the
 * client parses chunked coding and event-stream framing exactly, wherever the bytes split. */
#include "tests/sse/sx.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(sse_client, .timeout = SX_TIMEOUT);

typedef struct canned_s {
    int listen_fd;
    const char *bytes;
    size_t len, piece;
    pthread_t thread;
} canned_t;

/* Accepts one connection, reads the request head, writes the response piece by piece and
 * closes. No assertions here: this is not the test's thread. */
static void *serve(void *arg)
{
    canned_t *c = arg;
    int fd = accept(c->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char req[4096];
    size_t have = 0;
    while (have < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        req[have] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    for (size_t off = 0; off < c->len; off += c->piece) {
        size_t n = c->len - off < c->piece ? c->len - off : c->piece;
        if (send(fd, c->bytes + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;
        usleep(200);
    }
    close(fd);
    return NULL;
}

/* Serves bytes in pieces of piece bytes and opens the client on them. */
static ts_sse_t *canned_open(canned_t *c, const char *bytes, size_t len, size_t piece)
{
    c->bytes = bytes;
    c->len = len;
    c->piece = piece;
    c->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(c->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    cr_assert(bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(listen(c->listen_fd, 1) == 0);
    cr_assert(getsockname(c->listen_fd, (struct sockaddr *)&a, &alen) == 0);
    cr_assert(pthread_create(&c->thread, NULL, serve, c) == 0);
    return ts_sse_open(ntohs(a.sin_port), NULL, 5000);
}

static void canned_close(canned_t *c, ts_sse_t *s)
{
    ts_sse_close(s);
    pthread_join(c->thread, NULL);
    close(c->listen_fd);
}

/* The event-stream text every framing test sends: every line ending, a multi-line data
 * field, a field without a space, a bare id, a comment and an unknown field. */
static const char stream_text[] = "retry: 3000\n\n"
                                  ": heartbeat\n\n"
                                  "id: 1-0\nevent: feed\ndata: {\"a\":1}\n\n"
                                  "id: 2-0\r\nevent: delete\r\ndata: line1\r\ndata:  line2\r\n\r\n"
                                  "id: 3-0\rdata:nospace\r\r"
                                  "id: 4-0\n\n"
                                  "bogus: x\n\n"
                                  "data\n\n"
                                  ": last\n";

static void expect_items(ts_sse_t *s)
{
    ts_sse_item_t it;
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_RETRY);
    cr_assert_eq(it.retry_ms, 3000);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_COMMENT);
    cr_assert_str_eq(it.text, "heartbeat");
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT);
    cr_assert(it.has_id && it.has_data);
    cr_assert_str_eq(it.id, "1-0");
    cr_assert_str_eq(it.type, "feed");
    cr_assert_str_eq(it.data, "{\"a\":1}");
    ts_sse_item_clear(&it);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT);
    cr_assert_str_eq(it.id, "2-0");
    cr_assert_str_eq(it.type, "delete");
    cr_assert_str_eq(it.data, "line1\n line2"); /* only one leading space is dropped */
    ts_sse_item_clear(&it);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT);
    cr_assert_str_eq(it.id, "3-0");
    cr_assert_str_eq(it.type, "");
    cr_assert_str_eq(it.data, "nospace");
    ts_sse_item_clear(&it);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT);
    cr_assert_str_eq(it.id, "4-0");
    cr_assert(!it.has_data && !it.data);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT); /* "data" alone: an empty data line */
    cr_assert(it.has_data && !it.has_id);
    cr_assert_str_eq(it.data, "");
    ts_sse_item_clear(&it);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_COMMENT);
    cr_assert_str_eq(it.text, "last");
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_END);
    cr_assert_eq(s->unknown_fields, 1);
    cr_assert_str_eq(s->unknown_line, "bogus: x");
    cr_assert_str_eq(s->last_id, "4-0");
}

/* The stream text in chunks of every size from 1 to 9 bytes, one with an extension. */
static char *chunked(size_t *len)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    size_t n = strlen(stream_text), cap = sizeof(head) + n * 8 + 64, out = 0;
    char *b = malloc(cap);
    cr_assert(b);
    out += (size_t)snprintf(b, cap, "%s", head);
    for (size_t off = 0, size = 1; off < n; off += size, size = size % 9 + 1) {
        if (size > n - off)
            size = n - off;
        out += (size_t)snprintf(b + out, cap - out, off == 0 ? "%zx;ext=1\r\n" : "%zX\r\n", size);
        memcpy(b + out, stream_text + off, size);
        out += size;
        out += (size_t)snprintf(b + out, cap - out, "\r\n");
    }
    out += (size_t)snprintf(b + out, cap - out, "0\r\n\r\n");
    *len = out;
    return b;
}

Test(sse_client, parses_chunked_event_streams_split_anywhere)
{
    size_t len;
    char *bytes = chunked(&len);
    for (size_t piece = 1; piece <= 13; piece += 4) {
        canned_t c;
        ts_sse_t *s = canned_open(&c, bytes, len, piece);
        cr_assert_eq(s->status, 200);
        cr_assert(s->chunked);
        expect_items(s);
        cr_assert_eq(s->bytes, strlen(stream_text), "piece %zu: the chunks decode to %llu bytes",
                     piece, (unsigned long long)s->bytes);
        cr_assert(s->clean_end && !s->framing_error, "piece %zu: %s", piece, s->framing_what);
        canned_close(&c, s);
    }
    free(bytes);
}

Test(sse_client, parses_an_unchunked_stream_until_close)
{
    char bytes[1024];
    int n = snprintf(bytes, sizeof(bytes),
                     "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n%s", stream_text);
    canned_t c;
    ts_sse_t *s = canned_open(&c, bytes, (size_t)n, 5);
    cr_assert_eq(s->status, 200);
    cr_assert(!s->chunked);
    expect_items(s);
    cr_assert_eq(s->bytes, strlen(stream_text));
    cr_assert(s->clean_end, "an orderly close after whole events ends a close-delimited body "
                            "cleanly");
    canned_close(&c, s);

    /* A close in the middle of an event cuts it: not clean, and the half is not an event. */
    n = snprintf(bytes, sizeof(bytes),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Connection: close\r\n\r\nid: 1-0\ndata: a\n\nid: 2-0\ndata: ha");
    s = canned_open(&c, bytes, (size_t)n, 7);
    ts_sse_item_t it;
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_EVENT);
    cr_assert_str_eq(it.id, "1-0");
    ts_sse_item_clear(&it);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_END);
    cr_assert(!s->clean_end && !s->framing_error, "a cut event made a clean end");
    canned_close(&c, s);
}

Test(sse_client, reads_an_error_body_and_reports_broken_chunks)
{
    static const char err[] =
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\n"
        "WWW-Authenticate: Bearer\r\nContent-Length: 14\r\n\r\n{\"status\":401}";
    canned_t c;
    ts_sse_t *s = canned_open(&c, err, sizeof(err) - 1, 3);
    cr_assert_eq(s->status, 401);
    cr_assert_str_eq(s->body, "{\"status\":401}");
    cr_assert_eq(s->body_len, 14);
    char v[64];
    cr_assert_str_eq(ts_sse_header(s, "www-authenticate", v, sizeof(v)), "Bearer");
    canned_close(&c, s);

    static const char broken[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"
                                 "5\r\n: hi\n\r\n3\r\nid:XX\r\n";
    s = canned_open(&c, broken, sizeof(broken) - 1, 64);
    ts_sse_item_t it;
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_COMMENT);
    cr_assert_eq(ts_sse_next(s, &it, 5000), TS_SSE_END);
    cr_assert(s->framing_error && !s->clean_end);
    cr_assert(s->framing_what[0], "a framing error without a description");
    canned_close(&c, s);
}
