/* tests/e2e/world.c -- the server, users and posts most end-to-end tests start from
 * (see world.h); the API calls themselves are tests/support's. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

void world_start(world_t *w)
{
    memset(w, 0, sizeof(*w));
    ts_server_start_default(&w->srv);
    ts_register(w->srv.port, "wa", &w->a);
    ts_register(w->srv.port, "wb", &w->b);
    ts_post(w->srv.port, &w->a, "a post by a", w->post_a);
    ts_post(w->srv.port, &w->b, "a post by b", w->post_b);
    cr_assert_str_neq(w->a.id, w->b.id, "two registrations gave one id");
    cr_assert_str_neq(w->post_a, w->post_b, "two posts got one id");
}

void world_stop(world_t *w)
{
    ts_server_stop_clean(&w->srv, 10000);
}

size_t world_walk(const ts_user_t *as, const char *path, int limit, char (*ids)[24], size_t max,
                  int *pages)
{
    size_t n = 0;
    char cursor[32] = "";
    *pages = 0;
    do {
        json_t *page = cursor[0] ? ts_callf(PORT, "GET", as, NULL, 200, "%s?limit=%d&cursor=%s",
                                            path, limit, cursor)
                                 : ts_callf(PORT, "GET", as, NULL, 200, "%s?limit=%d", path, limit);
        json_t *items = json_object_get(page, "items");
        cr_assert(json_is_array(items));
        cr_assert_leq(json_array_size(items), (size_t)limit);
        for (size_t i = 0; i < json_array_size(items); i++) {
            cr_assert_lt(n, max, "more items than exist");
            snprintf(ids[n++], 24, "%s", ts_str(json_array_get(items, i), "id"));
        }
        json_t *next = json_object_get(page, "next_cursor");
        cr_assert(json_is_null(next) || json_is_string(next), "next_cursor is neither");
        snprintf(cursor, sizeof(cursor), "%s", json_is_string(next) ? json_string_value(next) : "");
        json_decref(page);
        (*pages)++;
    } while (cursor[0] && *pages < 100);
    return n;
}

world_t world;

void world_setup(void)
{
    world_start(&world);
}

void world_teardown(void)
{
    world_stop(&world);
}
