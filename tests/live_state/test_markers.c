/* tests/live_state/test_markers.c -- markers over real HTTP and SSE: they never move back,
 * either may be given alone, bad input is a 400; every move reaches the user's streams of
 * other devices (tokens) as a marker event and the moving device's own streams as a bare id;
 * POST /v1/notifications/read moves the notifications marker the same way. */
#include "tests/live_state/ls.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(live_markers, .init = ls_setup, .fini = ls_teardown, .timeout = LS_TIMEOUT);

/* A second device of u: u with a token of its own (POST /v1/tokens). */
static void second_device(const ts_user_t *u, ts_user_t *phone)
{
    *phone = *u;
    json_t *t = ts_callf(PORT, "POST", u, "{\"name\":\"phone\"}", 201, "/v1/tokens");
    snprintf(phone->token, sizeof(phone->token), "%s", ts_str(t, "token"));
    cr_assert(phone->token[0], "POST /v1/tokens gave no token");
    json_decref(t);
}

/* The markers' value for name: the id, or "null". */
static const char *marker(const json_t *m, const char *name)
{
    const json_t *v = json_object_get(m, name);
    cr_assert(v && (json_is_null(v) || json_is_string(v)), "marker %s is neither id nor null",
              name);
    return json_is_null(v) ? "null" : json_string_value(v);
}

static void expect_markers(const json_t *m, const char *home, const char *notifications,
                           const char *what)
{
    cr_assert_str_eq(marker(m, "home"), home, "%s: home", what);
    cr_assert_str_eq(marker(m, "notifications"), notifications, "%s: notifications", what);
    cr_assert_eq(json_object_size(m), 2, "%s: home and notifications alone", what);
}

static json_t *put_markers(const ts_user_t *u, const char *body, int status)
{
    return ts_callf(PORT, "PUT", u, body, status, "/v1/markers");
}

/* The next event on c must be a bare id (the event's id alone): id goes to id. */
static void expect_bare_id(ts_sse_t *c, char id[64], const char *what)
{
    for (;;) {
        ts_sse_item_t it = {0};
        ts_sse_kind_t k = ts_sse_next_event(c, &it, LS_WAIT_MS);
        cr_assert(k == TS_SSE_EVENT, "%s: no event came", what);
        if (strcmp(it.type, "feed") == 0) {
            ts_sse_item_clear(&it);
            continue;
        }
        cr_assert(it.has_id && !it.has_data && it.type[0] == '\0',
                  "%s: expected the id alone, got '%s' (id %s): %s", what, it.type, it.id,
                  it.data ? it.data : "no data");
        snprintf(id, 64, "%s", it.id);
        ts_sse_item_clear(&it);
        return;
    }
}

Test(live_markers, a_move_reaches_the_other_device_and_not_the_one_that_made_it)
{
    ts_user_t laptop, phone;
    ts_register(PORT, "lsm", &laptop);
    second_device(&laptop, &phone);
    ts_sse_t *on_laptop = ts_stream(PORT, &laptop, NULL);
    ts_sse_t *on_phone = ts_stream(PORT, &phone, NULL);

    json_t *m = put_markers(&laptop, "{\"home\":\"374267981733952\"}", 200);
    expect_markers(m, "374267981733952", "null", "the answer to the laptop's PUT");
    json_decref(m);
    char on_phone_id[64], on_laptop_id[64];
    m = ls_expect(on_phone, "marker", on_phone_id, LS_WAIT_MS, "the laptop's move, on the phone");
    expect_markers(m, "374267981733952", "null", "the phone's marker event");
    json_decref(m);
    expect_bare_id(on_laptop, on_laptop_id, "the laptop's own move, on the laptop");
    cr_assert_str_eq(on_laptop_id, on_phone_id, "one logged event, two renderings");

    /* Moved by the phone: now the laptop hears of it. */
    m = put_markers(&phone, "{\"home\":\"374267981734000\"}", 200);
    json_decref(m);
    m = ls_expect(on_laptop, "marker", NULL, LS_WAIT_MS, "the phone's move, on the laptop");
    expect_markers(m, "374267981734000", "null", "the laptop's marker event");
    json_decref(m);
    expect_bare_id(on_phone, on_phone_id, "the phone's own move, on the phone");

    /* Backwards is no move: 200 with the markers as they are, and no event anywhere. */
    m = put_markers(&laptop, "{\"home\":\"374267981733952\"}", 200);
    expect_markers(m, "374267981734000", "null", "a lower home");
    json_decref(m);
    ls_expect_quiet(on_phone, 500, "after a move backwards");
    ls_expect_quiet(on_laptop, 100, "after a move backwards");
    ts_sse_close(on_laptop);
    ts_sse_close(on_phone);
}

Test(live_markers, a_ticket_stream_counts_as_the_token_that_issued_the_ticket)
{
    ts_user_t laptop, phone;
    ts_register(PORT, "lst", &laptop);
    second_device(&laptop, &phone);
    json_t *t = ts_callf(PORT, "POST", &laptop, NULL, 201, "/v1/stream/tickets");
    char path[256];
    snprintf(path, sizeof(path), "/v1/stream?ticket=%s", ts_str(t, "ticket"));
    json_decref(t);
    ts_sse_opts_t o = {.path = path};
    ts_sse_t *by_ticket = ts_stream_opts(PORT, &o);
    ts_sse_t *on_phone = ts_stream(PORT, &phone, NULL);
    json_decref(put_markers(&laptop, "{\"home\":\"374267981733952\"}", 200));
    json_t *m = ls_expect(on_phone, "marker", NULL, LS_WAIT_MS, "the laptop's move, on the phone");
    json_decref(m);
    char id[64];
    expect_bare_id(by_ticket, id, "the laptop's move, on the laptop's ticket stream");
    ts_sse_close(by_ticket);
    ts_sse_close(on_phone);
}

Test(live_markers, either_marker_alone_and_never_back)
{
    ts_user_t u, fan;
    ts_register_all(PORT, "lse", &u, &fan, NULL);
    json_t *m = ts_callf(PORT, "GET", &u, NULL, 200, "/v1/markers");
    expect_markers(m, "null", "null", "a new user");
    json_decref(m);
    /* No notification yet: the notifications marker has nothing to stand on. */
    m = put_markers(&u, "{\"notifications\":\"374267981733952\"}", 200);
    expect_markers(m, "null", "null", "notifications without any notification");
    json_decref(m);

    ts_follow(PORT, &fan, &u);
    ls_wait_idle();
    json_t *page = ts_callf(PORT, "GET", &u, NULL, 200, "/v1/notifications");
    const char *newest = ts_str(json_array_get(json_object_get(page, "items"), 0), "id");
    cr_assert(newest[0], "the follow made no notification");
    char newest_id[24];
    snprintf(newest_id, sizeof(newest_id), "%s", newest);
    json_decref(page);

    /* Beyond the newest notification: the marker stops there. */
    m = put_markers(&u, "{\"notifications\":\"9007199254740000\"}", 200);
    expect_markers(m, "null", newest_id, "notifications alone");
    json_decref(m);
    m = put_markers(&u, "{\"home\":\"42\"}", 200);
    expect_markers(m, "42", newest_id, "home alone");
    json_decref(m);
    m = put_markers(&u, "{\"home\":\"41\",\"notifications\":\"1\"}", 200);
    expect_markers(m, "42", newest_id, "both lower");
    json_decref(m);
    m = ts_callf(PORT, "GET", &u, NULL, 200, "/v1/markers");
    expect_markers(m, "42", newest_id, "GET after moves");
    json_decref(m);
    json_t *unread = ts_callf(PORT, "GET", &u, NULL, 200, "/v1/notifications/unread_count");
    cr_assert_eq(ts_int(unread, "count"), 0, "the notifications marker is the read mark");
    json_decref(unread);
}

Test(live_markers, bad_input_is_a_400_problem)
{
    ts_user_t u;
    ts_register(PORT, "lsx", &u);
    static const char *const bad[] = {
        "{}",
        "{\"home\":5}",
        "{\"home\":\"0\"}",
        "{\"notifications\":\"x\"}",
        "{\"home\":null}",
        "{\"home\":\"01\"}",
        "{\"other\":\"1\"}",
        "[]",
        "{\"home\":\"9007199254740992\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ts_resp_t r = {0};
        ts_http(PORT, "PUT", "/v1/markers", u.token, NULL, bad[i], &r);
        cr_assert_eq(r.status, 400, "PUT /v1/markers %s: %d %s", bad[i], r.status, r.body);
        char ct[64];
        cr_assert_str_eq(ts_resp_header(&r, "Content-Type", ct, sizeof(ct)),
                         "application/problem+json", "PUT /v1/markers %s", bad[i]);
        ts_resp_free(&r);
    }
    json_t *m = ts_callf(PORT, "GET", &u, NULL, 200, "/v1/markers");
    expect_markers(m, "null", "null", "after the 400s");
    json_decref(m);
}

Test(live_markers, marking_notifications_read_moves_the_marker_and_tells_the_other_device)
{
    ts_user_t laptop, phone, fan;
    ts_register_all(PORT, "lsn", &laptop, &fan, NULL);
    second_device(&laptop, &phone);
    ts_follow(PORT, &fan, &laptop);
    ls_wait_idle();
    json_t *page = ts_callf(PORT, "GET", &laptop, NULL, 200, "/v1/notifications");
    char newest[24];
    snprintf(newest, sizeof(newest), "%s",
             ts_str(json_array_get(json_object_get(page, "items"), 0), "id"));
    json_decref(page);
    ts_sse_t *on_laptop = ts_stream(PORT, &laptop, NULL);
    ts_sse_t *on_phone = ts_stream(PORT, &phone, NULL);
    char body[64];
    snprintf(body, sizeof(body), "{\"up_to\":\"%s\"}", newest);
    json_decref(ts_callf(PORT, "POST", &laptop, body, 204, "/v1/notifications/read"));
    json_t *m = ls_expect(on_phone, "marker", NULL, LS_WAIT_MS, "the read mark, on the phone");
    expect_markers(m, "null", newest, "the phone's marker event");
    json_decref(m);
    char id[64];
    expect_bare_id(on_laptop, id, "the read mark, on the laptop");
    m = ts_callf(PORT, "GET", &phone, NULL, 200, "/v1/markers");
    expect_markers(m, "null", newest, "GET /v1/markers after POST /v1/notifications/read");
    json_decref(m);
    ts_sse_close(on_laptop);
    ts_sse_close(on_phone);
}
