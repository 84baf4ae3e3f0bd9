/* tests/faults/test_order.c -- one author's posts reach a follower's stream in the order they
 * were made however many processes work the queue. Two engines on one Redis used to take
 * consecutive posts of an author at the same time and publish them in either order (seen in
 * about half of the runs of 20 posts: 10, 11 arrived as 11, 10). Each post here is answered
 * before the next is made, so the order is the author's. */
#include "tests/support/sse.h"
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(order, .timeout = 180);

enum { POSTS = 20, ROUNDS = 3 };

Test(order, an_authors_posts_arrive_in_order_across_two_processes)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start_like_fixture(&redis);
    ts_server_t a, b;
    ts_server_start(&a, redis.url, NULL, true);
    ts_server_start(&b, redis.url, NULL, true);
    ts_user_t ana, fan;
    ts_register(a.port, "ordered", &ana);
    ts_register(a.port, "reader", &fan);
    ts_follow(a.port, &fan, &ana);
    ts_feed_t feed;
    memset(&feed, 0, sizeof(feed));
    ts_feed_open(&feed, a.port, &fan);
    char ids[ROUNDS * POSTS][24];
    for (int i = 0; i < ROUNDS * POSTS; i++) {
        char text[32];
        snprintf(text, sizeof(text), "number %d", i);
        ts_post(i % 2 ? b.port : a.port, &ana, text, ids[i]);
    }
    cr_assert_eq(ts_feed_until(&feed, ROUNDS * POSTS, 30000), (size_t)(ROUNDS * POSTS),
                 "not every post reached the stream");
    for (int i = 0; i < ROUNDS * POSTS; i++)
        cr_expect_str_eq(feed.post[i], ids[i], "the stream's event %d is another post", i);
    ts_feed_free(&feed);
    ts_server_stop(&a, 5000);
    ts_server_stop(&b, 5000);
    ts_redis_cleanup(&redis);
}
