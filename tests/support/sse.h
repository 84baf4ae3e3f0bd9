/* tests/support/sse.h -- a server-sent events client over a raw loopback socket.
 *
 * It speaks HTTP/1.1 itself, so the test sees exactly what the server sends: the response
 * head, the chunked transfer coding (decoded incrementally; a malformed chunk is a framing
 * error, the zero-length chunk a clean end) or a body the close delimits (an orderly close
 * after a whole event is a clean end), and the text/event-stream framing of the
 * WHATWG HTML standard (§9.2.6): lines ended by CRLF, LF or CR; `:` comments; the fields
 * id, event, data (lines joined by LF) and retry; a blank line ending each event. Unlike a
 * browser it also reports comments, retry and blocks without data (a bare `id:` moves the
 * position on), and counts any field the protocol does not know, so a test can insist on a
 * clean stream.
 *
 * Every wait takes a timeout; nothing here blocks without one. Assertion failures use
 * cr_assert, so call these from the test's own thread only (ts_sse_next never asserts).
 */
#ifndef TIDINGS_TEST_SUPPORT_SSE_H
#define TIDINGS_TEST_SUPPORT_SSE_H

#include "tests/support/support.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a stream's response head may take (the server answers it synchronously). */
#define TS_SSE_OPEN_MS 15000

typedef struct ts_sse_opts_s {
    const char *path;          /* request target; NULL: "/v1/stream" */
    const char *token;         /* Authorization: Bearer <token> unless NULL */
    const char *last_event_id; /* Last-Event-ID header unless NULL */
    const char *extra_headers; /* "Name: value\r\n…" unless NULL */
    const char *method;        /* NULL: GET */
    int rcvbuf;                /* SO_RCVBUF set before connecting (a slow reader); 0: default */
} ts_sse_opts_t;

typedef enum {
    TS_SSE_EVENT = 1, /* a block ended by a blank line: see the event fields */
    TS_SSE_COMMENT,   /* a ':' line: text holds what follows the colon (one space stripped) */
    TS_SSE_RETRY,     /* a retry field: retry_ms */
    TS_SSE_END = 0,   /* the stream ended (see ts_sse_t.clean_end) */
    TS_SSE_TIMEOUT = -1,
} ts_sse_kind_t;

typedef struct ts_sse_item_s {
    ts_sse_kind_t kind;
    bool has_id;
    char id[64];   /* the block's id field (TS_SSE_EVENT) */
    char type[32]; /* the block's event field, "" when absent */
    bool has_data;
    char *data; /* the data lines joined by LF (owned; NULL without a data field) */
    size_t data_len;
    char text[128]; /* TS_SSE_COMMENT */
    long retry_ms;  /* TS_SSE_RETRY */
} ts_sse_item_t;

typedef struct ts_sse_s {
    int fd;
    int status; /* of the response; 0 when none came */
    char *head; /* status line and headers (owned) */
    char *body; /* the whole body when status is not 200 (owned, NUL-terminated) */
    size_t body_len;
    bool chunked;   /* Transfer-Encoding: chunked */
    bool ended;     /* no more bytes will come */
    bool clean_end; /* the terminating zero-length chunk arrived, or (not chunked) the
                         server closed in order after a whole event */
    bool framing_error;
    char framing_what[96];
    int unknown_fields; /* lines naming no SSE field */
    char unknown_line[96];
    char last_id[64]; /* the last id field seen, as a browser keeps it */
    uint64_t bytes;   /* payload bytes decoded */
    /* decoder state (private) */
    char *_raw;
    size_t _raw_len, _raw_cap;
    char *_text;
    size_t _text_len, _text_cap, _text_off;
    int _chunk_state;
    size_t _chunk_left;
    bool _skip_lf;
    bool _block;         /* a field of the current block was seen */
    bool _orderly_close; /* the peer closed (FIN, not reset) */
    ts_sse_item_t _cur;
    char *_data;
    size_t _data_len, _data_cap;
} ts_sse_t;

/* Connects to 127.0.0.1:port, sends the request and reads the response head within
 * timeout_ms (the test fails otherwise). A non-200 response's body is read whole into
 * body. Returns new; free with ts_sse_close. */
ts_sse_t *ts_sse_open(int port, const ts_sse_opts_t *o, int timeout_ms);
/* The same, but NULL (nothing to free) instead of a failed test when the connection or the
 * response head does not come within timeout_ms: for a client that retries, as EventSource
 * does. */
ts_sse_t *ts_sse_try_open(int port, const ts_sse_opts_t *o, int timeout_ms);
/* The next item within timeout_ms. Never asserts: TS_SSE_TIMEOUT when nothing complete came. */
ts_sse_kind_t ts_sse_next(ts_sse_t *c, ts_sse_item_t *it, int timeout_ms);
/* The next TS_SSE_EVENT, skipping comments and retry, or TS_SSE_END / TS_SSE_TIMEOUT. */
ts_sse_kind_t ts_sse_next_event(ts_sse_t *c, ts_sse_item_t *it, int timeout_ms);
/* Frees what the item owns (safe on a zeroed or already cleared item). */
void ts_sse_item_clear(ts_sse_item_t *it);
/* A copy of the first response header's value (case-insensitive name) into buf; NULL when
 * absent. */
const char *ts_sse_header(const ts_sse_t *c, const char *name, char *buf, size_t size);
/* Reads and drops everything until the stream ends or timeout_ms passes; true when it ended.
 * Counts what it dropped into *events when not NULL. */
bool ts_sse_drain(ts_sse_t *c, int timeout_ms, int *events);
/* Closes the socket (an abrupt client hang-up) and frees c (NULL is fine). */
void ts_sse_close(ts_sse_t *c);

/* ---- streams as the API opens them ------------------------------------------------------ */
/* Opens u's stream (Authorization header; Last-Event-ID header unless NULL) and checks it
 * is one: 200, text/event-stream, and retry: 3000 as its first item. */
ts_sse_t *ts_stream(int port, const ts_user_t *u, const char *last_event_id);
/* The same with any options. */
ts_sse_t *ts_stream_opts(int port, const ts_sse_opts_t *o);
/* The next event (comments skipped) within timeout_ms; it must be of type (NULL: any).
 * counts events are skipped too unless type is "counts": they accompany every change of the
 * unread count, and tests of other events need not list them (tests/live_state reads them). */
void ts_sse_expect(ts_sse_t *c, const char *type, ts_sse_item_t *it, int timeout_ms,
                   const char *what);
/* The event's data as JSON (new reference); fails the test when it is not JSON. */
json_t *ts_sse_data(const ts_sse_item_t *it);
/* The "id" member of the event's JSON data ("" when absent) into buf. */
const char *ts_sse_data_id(const ts_sse_item_t *it, char *buf, size_t size);
/* Compares two event ids numerically ("<ms>-<seq>"). */
int ts_sse_id_cmp(const char *a, const char *b);

/* ---- what one user received over any number of connections (feed.c) --------------------- */
/* Zero it, or ts_feed_open it; every event taken must come after last_id (asserted). */
typedef struct ts_feed_s {
    int port; /* where ts_feed_until (re)opens the stream; a test may move it */
    char token[128];
    ts_sse_t *c;      /* ts_feed_open's connection, NULL between connections */
    char last_id[64]; /* the last event id taken, of any type ("" before any) */
    size_t n, cap;
    char (*event)[64]; /* the feed events' ids, in arrival order */
    char (*post)[24];  /* their post ids */
    char (*text)[64];  /* their texts (truncated) */
    int connections;   /* connections opened, the first included */
    int refused;       /* reopens answered with something other than 200 */
    int ends;          /* times the server ended (or dropped) the stream */
    int other_events;  /* notification, counts and bare-id events skipped */
} ts_feed_t;
void ts_feed_add(ts_feed_t *f, const char *event, const char *post, const char *text);
/* Reads one feed event from c (any connection) into f within timeout_ms. */
void ts_feed_read(ts_sse_t *c, ts_feed_t *f, int timeout_ms, const char *what);
/* Resumes u's stream after f's last event until f holds total feed events, reconnecting
 * with Last-Event-ID whenever the server ends the stream (as EventSource does) -- but each
 * connection must deliver at least one event before it ends: a resume that delivers
 * nothing would repeat forever. Returns the stream, open (the caller closes it). */
ts_sse_t *ts_feed_resume_until(ts_feed_t *f, int port, const ts_user_t *u, size_t total,
                               int wait_ms, const char *what);
/* Opens u's stream on port into f->c (200 with retry: 3000 first). */
void ts_feed_open(ts_feed_t *f, int port, const ts_user_t *u);
/* Takes every event that has arrived on f->c, waiting at most wait_ms for the first. Never
 * reconnects; returns false when the stream has ended (closing it). Fails the test on an
 * event that is neither feed, notification nor counts. */
bool ts_feed_poll(ts_feed_t *f, int wait_ms);
/* Reads until f holds want feed events or timeout_ms passes, reopening the stream on
 * f->port with Last-Event-ID whenever it ends or is not open (a refused reopen is retried
 * every 200 ms). Returns the count held. */
size_t ts_feed_until(ts_feed_t *f, size_t want, int timeout_ms);
/* How many of the feed events carry post id. */
size_t ts_feed_count(const ts_feed_t *f, const char *post);
/* Closes f->c (if open) and frees what f holds. */
void ts_feed_free(ts_feed_t *f);

#endif
