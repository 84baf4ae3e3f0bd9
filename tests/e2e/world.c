/* tests/e2e/world.c -- the server, users and posts most end-to-end tests start from
 * (see world.h); the API calls themselves are tests/support's. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
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

world_t world;

void world_setup(void)
{
    world_start(&world);
}

void world_teardown(void)
{
    world_stop(&world);
}
