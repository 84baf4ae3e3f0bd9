/* tests/storage/test_users.c -- profiles, case-insensitive handles, credentials, lookups. */
#include "tests/storage/fixture.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

TestSuite(users, .init = st_setup, .fini = st_teardown, .timeout = 60);

Test(users, create_then_get_with_zero_counts)
{
    char handle[STORAGE_HANDLE_MAX + 1];
    ts_unique(handle, sizeof(handle), "Ann");
    uint8_t hash[32];
    memset(hash, 7, sizeof(hash));
    uint64_t id = storage_id_next(st);
    storage_user_t made, got;
    cr_assert_eq(storage_user_create(st, id, handle, "Ann Example \xc3\xa9", hash, &made), 0);
    cr_expect_eq(made.id, id);
    cr_expect_str_eq(made.handle, handle);
    cr_expect_str_eq(made.display_name, "Ann Example \xc3\xa9");
    cr_expect_eq(made.created_ms, storage_id_time_ms(id));

    cr_assert_eq(storage_user_get(st, id, &got), 0);
    cr_expect_eq(got.id, id);
    cr_expect_str_eq(got.handle, handle, "the handle keeps its case");
    cr_expect_str_eq(got.display_name, "Ann Example \xc3\xa9");
    cr_expect_eq(got.created_ms, made.created_ms);
    cr_expect_eq(got.followers_count, 0);
    cr_expect_eq(got.following_count, 0);
    cr_expect_eq(got.posts_count, 0);
}

Test(users, handle_is_taken_case_insensitively)
{
    storage_user_t u;
    uint64_t first = st_user(st, "Case", &u);
    char upper[STORAGE_HANDLE_MAX + 1];
    for (size_t i = 0; i <= strlen(u.handle); i++)
        upper[i] = (char)toupper((unsigned char)u.handle[i]);
    uint8_t hash[32] = {1};
    uint64_t second = storage_id_next(st);
    storage_user_t dup;
    cr_expect_eq(storage_user_create(st, second, upper, "x", hash, &dup), -EEXIST);
    cr_expect_eq(storage_user_create(st, second, u.handle, "x", hash, &dup), -EEXIST);
    /* The loser leaves nothing behind, and the owner is untouched. */
    cr_expect_eq(storage_user_get(st, second, &dup), -ENOENT);
    storage_user_t owner;
    cr_assert_eq(storage_user_get(st, first, &owner), 0);
    cr_expect_str_eq(owner.handle, u.handle);
}

Test(users, full_length_handle_and_name_roundtrip)
{
    char handle[STORAGE_HANDLE_MAX + 1];
    ts_unique(handle, sizeof(handle), "abcdefghijklmnopqrs");
    cr_assert_eq(strlen(handle), STORAGE_HANDLE_MAX);
    char name[STORAGE_NAME_MAX + 1] = "";
    for (int i = 0; i < 50; i++)
        strcat(name, "\xf0\x9f\x98\x80"); /* 50 four-byte characters: 200 bytes */
    uint8_t hash[32] = {2};
    uint64_t id = storage_id_next(st);
    storage_user_t u;
    cr_assert_eq(storage_user_create(st, id, handle, name, hash, &u), 0);
    cr_assert_eq(storage_user_get(st, id, &u), 0);
    cr_expect_str_eq(u.handle, handle);
    cr_expect_str_eq(u.display_name, name);
}

Test(users, credentials_return_the_token_hash)
{
    char handle[STORAGE_HANDLE_MAX + 1];
    ts_unique(handle, sizeof(handle), "cred");
    uint8_t hash[32], stored[32];
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(i * 37 + 5);
    uint64_t id = storage_id_next(st);
    storage_user_t u;
    cr_assert_eq(storage_user_create(st, id, handle, "Cred", hash, &u), 0);
    memset(&u, 0, sizeof(u));
    cr_assert_eq(storage_user_credentials(st, id, stored, &u), 0);
    cr_expect_arr_eq(stored, hash, 32);
    cr_expect_eq(u.id, id);
    cr_expect_str_eq(u.handle, handle);
    cr_expect_str_eq(u.display_name, "Cred");
}

Test(users, unknown_user_is_enoent)
{
    uint64_t id = st_unknown_id(st);
    storage_user_t u;
    uint8_t hash[32];
    cr_expect_eq(storage_user_get(st, id, &u), -ENOENT);
    cr_expect_eq(storage_user_credentials(st, id, hash, &u), -ENOENT);
}

Test(users, users_get_keeps_order_and_marks_missing_with_id_zero)
{
    storage_user_t a, b;
    uint64_t ids[3] = {st_user(st, "ma", &a), st_unknown_id(st), st_user(st, "mb", &b)};
    storage_user_t out[3];
    memset(out, 0xff, sizeof(out));
    cr_assert_eq(storage_users_get(st, ids, 3, out), 0);
    cr_expect_eq(out[0].id, ids[0]);
    cr_expect_str_eq(out[0].handle, a.handle);
    cr_expect_eq(out[1].id, 0);
    cr_expect_eq(out[2].id, ids[2]);
    cr_expect_str_eq(out[2].handle, b.handle);
    cr_expect_eq(storage_users_get(st, ids, 0, out), 0);
}

Test(users, users_by_handle_ignores_case_and_gives_zero_for_unknown)
{
    storage_user_t a;
    uint64_t id = st_user(st, "Look", &a);
    char upper[STORAGE_HANDLE_MAX + 1], unknown[STORAGE_HANDLE_MAX + 1];
    for (size_t i = 0; i <= strlen(a.handle); i++)
        upper[i] = (char)toupper((unsigned char)a.handle[i]);
    ts_unique(unknown, sizeof(unknown), "nobody");
    const char *handles[3] = {upper, unknown, a.handle};
    uint64_t ids[3] = {9, 9, 9};
    cr_assert_eq(storage_users_by_handle(st, handles, 3, ids), 0);
    cr_expect_eq(ids[0], id);
    cr_expect_eq(ids[1], 0);
    cr_expect_eq(ids[2], id);
}

Test(users, counts_follow_the_graph_and_the_posts)
{
    uint64_t a = st_user(st, "ca", NULL), b = st_user(st, "cb", NULL), c = st_user(st, "cc", NULL);
    bool changed;
    cr_assert_eq(storage_follow(st, b, a, &changed), 0);
    cr_assert_eq(storage_follow(st, c, a, &changed), 0);
    cr_assert_eq(storage_follow(st, a, c, &changed), 0);
    storage_post_t p = {.id = storage_id_next(st), .author = a, .text = "counted"};
    cr_assert_eq(storage_post_create(st, &p, &(bool){false}), 0);
    storage_user_t u;
    cr_assert_eq(storage_user_get(st, a, &u), 0);
    cr_expect_eq(u.followers_count, 2);
    cr_expect_eq(u.following_count, 1);
    cr_expect_eq(u.posts_count, 1);
    cr_assert_eq(storage_post_delete(st, p.id, a), 0);
    cr_assert_eq(storage_user_get(st, a, &u), 0);
    cr_expect_eq(u.posts_count, 0, "a deleted post is still counted");
}
