/* api/handlers_export.c -- GET /v1/me/export: the caller's data as one JSON document.
 *
 * {"exported_at", "user", "posts": [Post…], "following": [id…], "followers": [id…],
 *  "likes": [post id…], "reposts": [post id…]}, newest first in every list.
 *
 * The document is streamed: libmicrohttpd asks for bytes as the socket drains, and each time
 * the text at hand is used up the next page (EXPORT_PAGE ids, one or two round trips) is read
 * and written out, so a large account costs one page of memory, not the whole document. The
 * profile is read before the 200 is sent, so an unknown caller or a Redis failure at the
 * start still gets a problem answer; a failure later can only cut the connection, which
 * leaves the client a document that does not parse rather than one that looks complete.
 */
#include "api/api.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT_PAGE 200
#define EXPORT_BLOCK (16 * 1024) /* the most libmicrohttpd asks for at once */

/* The lists, in the order they appear in the document. */
typedef enum {
    EXPORT_POSTS,
    EXPORT_FOLLOWING,
    EXPORT_FOLLOWERS,
    EXPORT_LIKES,
    EXPORT_REPOSTS,
    EXPORT_LISTS,
} export_list_t;

static const char *const list_names[EXPORT_LISTS] = {"posts", "following", "followers", "likes",
                                                     "reposts"};

typedef struct export_s {
    storage_t *storage;
    storage_user_t user;
    export_list_t list; /* the list being written; EXPORT_LISTS once all are */
    uint64_t cursor;    /* the next page of it; 0 before its first */
    bool list_open;     /* its "[" is written */
    bool first_item;    /* no item of it written yet */
    bool done;          /* the closing "}" is written */
    char *text;         /* written and not yet handed over */
    size_t len, off;
} export_t;

static void export_free(void *cls)
{
    export_t *e = cls;
    free(e->text);
    free(e);
}

/* Replaces the pending text with s (owned). */
static void pend(export_t *e, char *s)
{
    free(e->text);
    e->text = s;
    e->len = s ? strlen(s) : 0;
    e->off = 0;
}

static int read_page(export_t *e, storage_page_t *page)
{
    uint64_t user = e->user.id;
    switch (e->list) {
    case EXPORT_POSTS:
        return storage_author_posts_page(e->storage, user, e->cursor, EXPORT_PAGE, page);
    case EXPORT_FOLLOWING:
        return storage_edges_page(e->storage, STORAGE_FOLLOWING, user, e->cursor, EXPORT_PAGE,
                                  page);
    case EXPORT_FOLLOWERS:
        return storage_edges_page(e->storage, STORAGE_FOLLOWERS, user, e->cursor, EXPORT_PAGE,
                                  page);
    case EXPORT_LIKES:
        return storage_likes_page(e->storage, user, e->cursor, EXPORT_PAGE, page);
    case EXPORT_REPOSTS:
        return storage_reposts_page(e->storage, user, e->cursor, EXPORT_PAGE, page);
    case EXPORT_LISTS:
        break;
    }
    return -EINVAL;
}

/* The items of one page as JSON values: the user's posts whole, every other list as ids. */
static json_t *page_items(export_t *e, const storage_page_t *page)
{
    json_t *items = json_array();
    if (!items || page->n == 0)
        return items;
    if (e->list != EXPORT_POSTS) {
        for (size_t i = 0; i < page->n; i++)
            json_array_append_new(items, api_id_json(page->ids[i]));
        return items;
    }
    storage_post_t *posts = calloc(page->n, sizeof(*posts));
    if (!posts || storage_posts_get(e->storage, page->ids, page->n, posts) != 0) {
        free(posts);
        json_decref(items);
        return NULL;
    }
    for (size_t i = 0; i < page->n; i++) {
        if (posts[i].id && !posts[i].deleted) /* deleted since the page was read */
            json_array_append_new(items, api_post_json(&posts[i], &e->user));
        storage_post_clear(&posts[i]);
    }
    free(posts);
    return items;
}

/* Appends the items' text, comma-separated and after any items written before, to buf. */
static bool append_items(export_t *e, json_t *items, char **buf)
{
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        char *one = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!one)
            return false;
        size_t have = *buf ? strlen(*buf) : 0, add = strlen(one);
        char *grown = realloc(*buf, have + add + 2);
        if (!grown) {
            free(one);
            return false;
        }
        if (!e->first_item)
            grown[have++] = ',';
        memcpy(grown + have, one, add + 1);
        *buf = grown;
        e->first_item = false;
        free(one);
    }
    return true;
}

/* Makes the next piece of the document pending. False on a storage or memory failure. */
static bool next_piece(export_t *e)
{
    if (e->list == EXPORT_LISTS) {
        pend(e, strdup("}\n"));
        e->done = true;
        return e->text != NULL;
    }
    char *buf = NULL;
    if (!e->list_open) {
        char head[32];
        snprintf(head, sizeof(head), ",\"%s\":[", list_names[e->list]);
        buf = strdup(head);
        e->list_open = true;
        e->first_item = true;
        if (!buf)
            return false;
    }
    storage_page_t page = {0};
    int rc = read_page(e, &page);
    json_t *items = rc == 0 ? page_items(e, &page) : NULL;
    bool ok = items && append_items(e, items, &buf);
    json_decref(items);
    if (ok && page.next_cursor == 0) {
        size_t have = buf ? strlen(buf) : 0;
        char *closed = realloc(buf, have + 2);
        ok = closed != NULL;
        if (ok) {
            memcpy(closed + have, "]", 2);
            buf = closed;
            e->list++;
            e->list_open = false;
            e->cursor = 0;
        }
    } else if (ok) {
        e->cursor = page.next_cursor;
    }
    storage_page_free(&page);
    if (!ok) {
        free(buf);
        return false;
    }
    pend(e, buf ? buf : strdup(""));
    return e->text != NULL;
}

static ssize_t export_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    export_t *e = cls;
    while (e->off == e->len) {
        if (e->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!next_piece(e))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = e->len - e->off < max ? e->len - e->off : max;
    memcpy(out, e->text + e->off, n);
    e->off += n;
    return (ssize_t)n;
}

/* The document's opening, up to the first list: {"exported_at":…,"user":{…} */
static char *opening(const storage_user_t *user, uint64_t now_ms)
{
    json_t *at = api_time_json(now_ms), *u = api_user_json(user);
    char *at_text = at ? json_dumps(at, JSON_ENCODE_ANY) : NULL;
    char *u_text = u ? json_dumps(u, JSON_COMPACT) : NULL;
    json_decref(at);
    json_decref(u);
    char *text = NULL;
    if (at_text && u_text) {
        size_t n = strlen(at_text) + strlen(u_text) + 32;
        text = malloc(n);
        if (text)
            snprintf(text, n, "{\"exported_at\":%s,\"user\":%s", at_text, u_text);
    }
    free(at_text);
    free(u_text);
    return text;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void api_me_export(api_req_t *r)
{
    export_t *e = calloc(1, sizeof(*e));
    if (!e) {
        api_problem(r, API_UNAVAILABLE, "out of memory");
        return;
    }
    e->storage = r->api->storage;
    int rc = storage_user_get(e->storage, r->caller.id, &e->user);
    if (rc) {
        free(e);
        api_storage_problem(r, rc, "user");
        return;
    }
    pend(e, opening(&e->user, wall_ms()));
    if (!e->text) {
        free(e);
        api_problem(r, API_UNAVAILABLE, "out of memory");
        return;
    }
    r->custom = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EXPORT_BLOCK, export_reader, e,
                                                  export_free);
    if (!r->custom) {
        export_free(e);
        api_problem(r, API_UNAVAILABLE, "out of memory");
        return;
    }
    MHD_add_response_header(r->custom, "Content-Disposition",
                            "attachment; filename=\"tidings-export.json\"");
    r->status = 200;
    r->content_type = "application/json";
}
