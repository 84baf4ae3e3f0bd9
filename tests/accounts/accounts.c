/* tests/accounts/accounts.c -- see accounts.h. */
#include "tests/accounts/accounts.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

ts_server_t accounts_srv;

void accounts_setup(void)
{
    ts_server_start_default(&accounts_srv);
}

void accounts_teardown(void)
{
    ts_server_stop_clean(&accounts_srv, 10000);
}

void accounts_problem(const char *token, const char *method, const char *path, const char *body,
                      int status)
{
    ts_resp_t r;
    ts_http(PORT, method, path, token, NULL, body, &r);
    cr_expect_eq(r.status, status, "%s %s %s: expected %d, got %d: %s", method, path,
                 body ? body : "", status, r.status, r.body);
    char ct[96];
    const char *got = ts_resp_header(&r, "Content-Type", ct, sizeof(ct));
    cr_expect(got && strncmp(got, "application/problem+json", 24) == 0, "%s %s: Content-Type %s",
              method, path, got ? got : "(none)");
    json_t *j = ts_resp_json(&r);
    cr_expect_eq(ts_int(j, "status"), status, "%s %s: the problem's status", method, path);
    json_decref(j);
    ts_resp_free(&r);
}

void accounts_register_handle(const char *handle, ts_user_t *u)
{
    memset(u, 0, sizeof(*u));
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", handle);
    json_t *j = ts_call(PORT, "POST", "/v1/users", NULL, body, 201);
    snprintf(u->id, sizeof(u->id), "%s", ts_str(json_object_get(j, "user"), "id"));
    snprintf(u->token, sizeof(u->token), "%s", ts_str(j, "token"));
    snprintf(u->handle, sizeof(u->handle), "%s", handle);
    u->num = ts_id(u->id);
    json_decref(j);
    cr_assert(u->num && u->token[0], "registering %s answered no id or token", handle);
}
