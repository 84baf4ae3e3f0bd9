/* api/post_render.c -- posts as JSON text, written straight into the answer.
 *
 * A timeline page or a post is the hottest answer there is. Built as a jansson tree per post
 * (json_pack parses its format on every call), dumped and freed, it was half the CPU of a
 * timeline read once the read cache had taken most of Redis' part away. The shape is
 * api_post_json's (openapi.yaml's Post), with reposted_by as api_post_views_append adds it;
 * jansson stays for everything else. Strings are escaped as jansson escapes them by
 * default: '"', '\\' and control characters; other bytes pass through (stored text is
 * valid UTF-8, checked when it came in).
 */
#include "api/api.h"
#include "api/text.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void put(api_text_t *t, const char *s, size_t n)
{
    api_text_append(t, s, n);
}

#define PUT_LIT(t, lit) put(t, lit, sizeof(lit) - 1)

static void put_str(api_text_t *t, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    PUT_LIT(t, "\"");
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(t, run, (size_t)(s - run));
        run = s + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"':
            PUT_LIT(t, "\\\"");
            break;
        case '\\':
            PUT_LIT(t, "\\\\");
            break;
        case '\b':
            PUT_LIT(t, "\\b");
            break;
        case '\f':
            PUT_LIT(t, "\\f");
            break;
        case '\n':
            PUT_LIT(t, "\\n");
            break;
        case '\r':
            PUT_LIT(t, "\\r");
            break;
        case '\t':
            PUT_LIT(t, "\\t");
            break;
        default:
            put(t, esc, sizeof(esc));
            break;
        }
    }
    put(t, run, (size_t)(s - run));
    PUT_LIT(t, "\"");
}

/* Decimal digits of v at the end of buf (24 bytes); returns where they start. */
static char *digits(char *buf, uint64_t v)
{
    char *p = buf + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put_u64(api_text_t *t, uint64_t v)
{
    char buf[24];
    char *p = digits(buf, v);
    put(t, p, (size_t)(buf + 24 - p));
}

static void put_count(api_text_t *t, int64_t v)
{
    if (v < 0) {
        PUT_LIT(t, "-");
        v = -v;
    }
    put_u64(t, (uint64_t)v);
}

/* An id as the API writes ids: a decimal string. */
static void put_id(api_text_t *t, uint64_t id)
{
    PUT_LIT(t, "\"");
    put_u64(t, id);
    PUT_LIT(t, "\"");
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ", as api_time_json writes it. */
static void put_time(api_text_t *t, uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    unsigned f[] = {(unsigned)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday,
                    (unsigned)tm.tm_hour,        (unsigned)tm.tm_min,     (unsigned)tm.tm_sec,
                    (unsigned)(ms % 1000)};
    static const char sep[] = "--T::.Z";
    static const int width[] = {4, 2, 2, 2, 2, 2, 3};
    char buf[32], *p = buf;
    *p++ = '"';
    for (int i = 0; i < 7; i++) {
        for (int d = width[i] - 1; d >= 0; d--) {
            p[d] = (char)('0' + f[i] % 10);
            f[i] /= 10;
        }
        p += width[i];
        *p++ = sep[i];
    }
    *p++ = '"';
    put(t, buf, (size_t)(p - buf));
}

bool api_post_view_shown(const storage_post_view_t *v)
{
    return v->post.id && !v->post.deleted && v->author.id && (!v->reposted_by || v->reposter.id);
}

void api_post_view_render(api_text_t *t, const storage_post_view_t *v)
{
    const storage_post_t *p = &v->post;
    PUT_LIT(t, "{\"id\":");
    put_id(t, p->id);
    PUT_LIT(t, ",\"author\":{\"id\":");
    put_id(t, v->author.id);
    PUT_LIT(t, ",\"handle\":");
    put_str(t, v->author.handle);
    PUT_LIT(t, ",\"display_name\":");
    put_str(t, v->author.display_name);
    PUT_LIT(t, "},\"text\":");
    put_str(t, p->text ? p->text : "");
    PUT_LIT(t, ",\"reply_to\":");
    if (p->reply_to)
        put_id(t, p->reply_to);
    else
        PUT_LIT(t, "null");
    PUT_LIT(t, ",\"mentions\":[");
    for (size_t i = 0; i < p->n_mentions; i++) {
        if (i)
            PUT_LIT(t, ",");
        put_id(t, p->mentions[i]);
    }
    PUT_LIT(t, "],\"created_at\":");
    put_time(t, storage_id_time_ms(p->id));
    PUT_LIT(t, ",\"like_count\":");
    put_count(t, p->like_count);
    PUT_LIT(t, ",\"repost_count\":");
    put_count(t, p->repost_count);
    if (v->reposted_by) {
        PUT_LIT(t, ",\"reposted_by\":{\"id\":");
        put_id(t, v->reposter.id);
        PUT_LIT(t, ",\"handle\":");
        put_str(t, v->reposter.handle);
        PUT_LIT(t, "}");
    }
    PUT_LIT(t, "}");
}

/* The answer is the text (the reply takes its buffer), or a 503 when memory ran out. */
static void reply(api_req_t *r, api_text_t *t)
{
    if (t->failed || !t->buf) {
        api_text_free(t);
        api_reply_json(r, 503, NULL);
        return;
    }
    api_reply_owned(r, 200, "application/json", t->buf, t->len);
}

void api_reply_post_page(api_req_t *r, const storage_post_view_t *v, size_t n, uint64_t next_cursor,
                         const bool *rebuilding)
{
    api_text_t t = {0};
    PUT_LIT(&t, "{\"items\":[");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!api_post_view_shown(&v[i]))
            continue;
        if (!first)
            PUT_LIT(&t, ",");
        first = false;
        api_post_view_render(&t, &v[i]);
    }
    PUT_LIT(&t, "],\"next_cursor\":");
    if (next_cursor)
        put_id(&t, next_cursor);
    else
        PUT_LIT(&t, "null");
    if (rebuilding && *rebuilding)
        PUT_LIT(&t, ",\"rebuilding\":true");
    else if (rebuilding)
        PUT_LIT(&t, ",\"rebuilding\":false");
    PUT_LIT(&t, "}");
    reply(r, &t);
}

void api_reply_post_view(api_req_t *r, const storage_post_view_t *v)
{
    api_text_t t = {0};
    api_post_view_render(&t, v);
    reply(r, &t);
}
