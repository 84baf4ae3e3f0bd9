/* tests/api/test_post_render.c -- posts written as text (api/post_render.c) are the very
 * JSON that api_post_json and api_post_views_append build with jansson, which the rest of
 * the API (notifications, stream events) still uses: the two must never drift apart. */
#include "api/api.h"
#include "api/text.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The post as jansson builds it, and as text, both parsed: equal as JSON values. */
static void expect_same(const storage_post_view_t *v)
{
    json_t *items = json_array();
    api_post_views_append(v, 1, items);
    cr_assert_eq(json_array_size(items), 1);
    api_text_t t = {0};
    api_post_view_render(&t, v);
    cr_assert_not(t.failed);
    json_error_t err;
    json_t *text = json_loadb(t.buf, t.len, 0, &err);
    cr_assert(text, "the text is not JSON: %s (%s)", err.text, t.buf);
    char *a = json_dumps(json_array_get(items, 0), JSON_SORT_KEYS | JSON_COMPACT);
    char *b = json_dumps(text, JSON_SORT_KEYS | JSON_COMPACT);
    cr_expect_str_eq(b, a);
    free(a);
    free(b);
    json_decref(text);
    json_decref(items);
    api_text_free(&t);
}

static storage_post_view_t view_of(const char *text)
{
    storage_post_view_t v;
    memset(&v, 0, sizeof(v));
    v.post.id = 379054565224513ULL;
    v.post.author = 379054564540480ULL;
    v.post.text = (char *)text;
    v.post.like_count = 12;
    v.post.repost_count = 3;
    v.author.id = v.post.author;
    strcpy(v.author.handle, "ann_b");
    strcpy(v.author.display_name, "Ann \"the\" B\\");
    return v;
}

Test(post_render, a_plain_post_is_what_jansson_writes)
{
    storage_post_view_t v = view_of("hello world");
    expect_same(&v);
}

Test(post_render, replies_mentions_and_reposts_too)
{
    storage_post_view_t v = view_of("@bob and @cy: see above");
    v.post.reply_to = 379054565224000ULL;
    v.post.mentions[0] = 11;
    v.post.mentions[1] = 379054564540999ULL;
    v.post.n_mentions = 2;
    v.reposted_by = 77;
    v.reposter.id = 77;
    strcpy(v.reposter.handle, "rp");
    expect_same(&v);
}

Test(post_render, every_character_that_needs_escaping_is_escaped)
{
    char text[160] = "quote \" backslash \\ slash / tab \t newline \n return \r bell \a "
                     "nul-less controls \x01\x1f del \x7f unicode \xc3\xa9 \xf0\x9f\x98\x80";
    storage_post_view_t v = view_of(text);
    expect_same(&v);
}

Test(post_render, a_page_lists_only_what_may_be_shown)
{
    storage_post_view_t v[3] = {view_of("shown"), view_of("deleted"), view_of("author gone")};
    v[1].post.deleted = true;
    v[2].author.id = 0;
    api_req_t r;
    memset(&r, 0, sizeof(r));
    bool rebuilding = true;
    api_reply_post_page(&r, v, 3, 379054565224001ULL, &rebuilding);
    cr_assert_eq(r.status, 200);
    json_t *page = json_loadb(r.resp_body, r.resp_len, 0, NULL);
    cr_assert(page, "%.*s", (int)r.resp_len, r.resp_body);
    cr_expect_eq(json_array_size(json_object_get(page, "items")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(page, "next_cursor")), "379054565224001");
    cr_expect(json_is_true(json_object_get(page, "rebuilding")));
    json_decref(page);
    free(r.resp_body);
}
