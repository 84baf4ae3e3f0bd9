/* tests/e2e/test_concurrency.c -- races between requests: one handle, one Idempotency-Key,
 * many registrations at once, and pipelined requests on one connection. */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8

TestSuite(concurrency, .init = world_setup, .fini = world_teardown, .timeout = 120);

typedef struct {
    pthread_barrier_t *go;
    const char *token, *headers, *path, *body;
    int status;
    char id[24];
} call_t;

/* One request per thread, all released at once; no Criterion assertions off the main thread. */
static void *call(void *arg)
{
    call_t *c = arg;
    char req[1024];
    int n =
        snprintf(req, sizeof(req),
                 "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s%s"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 c->path, c->token ? "Authorization: Bearer " : "", c->token ? c->token : "",
                 c->token ? "\r\n" : "", c->headers ? c->headers : "", strlen(c->body), c->body);
    pthread_barrier_wait(c->go);
    ts_resp_t r;
    if (ts_http_raw(PORT, req, (size_t)n, 15000, &r) == 0) {
        c->status = r.status;
        json_t *j = ts_resp_json(&r);
        json_t *id =
            json_object_get(json_object_get(j, "user") ? json_object_get(j, "user") : j, "id");
        snprintf(c->id, sizeof(c->id), "%s", json_is_string(id) ? json_string_value(id) : "");
        json_decref(j);
    }
    ts_resp_free(&r);
    return NULL;
}

static void race(call_t *calls, size_t n)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    pthread_t t[THREADS * 4];
    for (size_t i = 0; i < n; i++) {
        calls[i].go = &go;
        cr_assert_eq(pthread_create(&t[i], NULL, call, &calls[i]), 0);
    }
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
}

Test(concurrency, one_handle_registered_at_once_has_one_winner)
{
    char handle[32], body[96];
    ts_unique(handle, sizeof(handle), "Race");
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", handle);
    call_t calls[THREADS];
    for (int i = 0; i < THREADS; i++)
        calls[i] = (call_t){.path = "/v1/users", .body = body};
    race(calls, THREADS);
    int created = 0, conflicts = 0;
    for (int i = 0; i < THREADS; i++) {
        created += calls[i].status == 201;
        conflicts += calls[i].status == 409;
    }
    cr_expect_eq(created, 1, "%d registrations of one handle succeeded", created);
    cr_expect_eq(conflicts, THREADS - 1, "%d conflicts", conflicts);
}

Test(concurrency, parallel_registrations_get_distinct_ids)
{
    char bodies[THREADS * 4][96];
    call_t calls[THREADS * 4];
    for (int i = 0; i < THREADS * 4; i++) {
        char handle[32];
        ts_unique(handle, sizeof(handle), "par");
        snprintf(bodies[i], sizeof(bodies[i]), "{\"handle\":\"%s\"}", handle);
        calls[i] = (call_t){.path = "/v1/users", .body = bodies[i]};
    }
    race(calls, THREADS * 4);
    for (int i = 0; i < THREADS * 4; i++) {
        cr_expect_eq(calls[i].status, 201, "registration %d: %d", i, calls[i].status);
        for (int j = 0; j < i; j++)
            cr_expect(strcmp(calls[i].id, calls[j].id) != 0 || !calls[i].id[0],
                      "registrations %d and %d got the same id %s", i, j, calls[i].id);
    }
}

Test(concurrency, one_idempotency_key_at_once_makes_one_post)
{
    char key[48], headers[96];
    ts_unique(key, sizeof(key), "racekey");
    snprintf(headers, sizeof(headers), "Idempotency-Key: %s\r\n", key);
    call_t calls[THREADS];
    for (int i = 0; i < THREADS; i++)
        calls[i] = (call_t){.path = "/v1/posts",
                            .token = world.b.token,
                            .headers = headers,
                            .body = "{\"text\":\"only once, however often\"}"};
    race(calls, THREADS);
    for (int i = 0; i < THREADS; i++) {
        cr_expect_eq(calls[i].status, 202, "request %d: %d", i, calls[i].status);
        cr_expect_str_eq(calls[i].id, calls[0].id, "request %d got another post", i);
    }
    json_t *list = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s/posts", world.b.id);
    cr_expect_eq(json_array_size(json_object_get(list, "items")), 2,
                 "b has post_b and one raced post");
    json_t *u = ts_callf(PORT, "GET", &world.a, NULL, 200, "/v1/users/%s", world.b.id);
    cr_expect_eq(json_integer_value(json_object_get(u, "posts_count")), 2);
    json_decref(u);
    json_decref(list);
}

Test(concurrency, pipelined_requests_on_one_connection_all_get_answers)
{
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /v1/users/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                     "GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     world.a.id, world.a.token);
    ts_resp_t r[3];
    int rc = ts_http_pipeline(PORT, req, (size_t)n, 10000, r, 3);
    cr_expect_eq(rc, 0, "not every pipelined request was answered");
    cr_expect_eq(r[0].status, 200, "first answer %d", r[0].status);
    cr_expect_eq(r[1].status, 200, "second answer %d: %s", r[1].status, r[1].body);
    cr_expect_eq(r[2].status, 404, "third answer %d", r[2].status);
    for (int i = 0; i < 3; i++)
        ts_resp_free(&r[i]);
}
