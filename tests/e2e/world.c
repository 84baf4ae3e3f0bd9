/* tests/e2e/world.c -- users, posts and a server for end-to-end tests (see world.h). */
#include "tests/e2e/world.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *e2e_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    cr_assert(v, "no string '%s' in the answer", key);
    return v;
}

json_t *e2e_call(int port, const char *method, const e2e_user_t *as, const char *body,
                 int expect_status, const char *path_fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    return ts_call(port, method, path, as ? as->token : NULL, body, expect_status);
}

void e2e_register(int port, const char *prefix, e2e_user_t *u)
{
    ts_unique(u->handle, sizeof(u->handle), prefix);
    char body[128];
    snprintf(body, sizeof(body), "{\"handle\":\"%s\"}", u->handle);
    json_t *j = ts_call(port, "POST", "/v1/users", NULL, body, 201);
    const char *id = json_string_value(json_object_get(json_object_get(j, "user"), "id"));
    const char *token = json_string_value(json_object_get(j, "token"));
    snprintf(u->id, sizeof(u->id), "%s", id ? id : "");
    snprintf(u->token, sizeof(u->token), "%s", token ? token : "");
    json_decref(j);
    cr_assert(u->id[0] && u->token[0], "the 201 has no user id or token");
}

void e2e_post(int port, const e2e_user_t *u, const char *text, char id[24])
{
    /* Serialised onto the stack: a failed assertion below must not leak the body. */
    char s[8192];
    json_t *body = json_pack("{s:s}", "text", text);
    size_t n = json_dumpb(body, s, sizeof(s) - 1, JSON_COMPACT);
    json_decref(body);
    cr_assert(n > 0 && n < sizeof(s) - 1, "post text too long for e2e_post");
    s[n] = '\0';
    json_t *j = ts_call(port, "POST", "/v1/posts", u->token, s, 202);
    snprintf(id, 24, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    cr_assert(id[0], "the 202 has no id");
}

void world_start(world_t *w)
{
    memset(w, 0, sizeof(*w));
    ts_server_start_default(&w->srv);
    e2e_register(w->srv.port, "wa", &w->a);
    e2e_register(w->srv.port, "wb", &w->b);
    e2e_post(w->srv.port, &w->a, "a post by a", w->post_a);
    e2e_post(w->srv.port, &w->b, "a post by b", w->post_b);
}

void world_stop(world_t *w)
{
    if (w->srv.pid <= 0)
        return;
    int status = ts_server_stop(&w->srv, 10000);
    cr_expect(status != -1, "the server did not stop within 10 s of SIGTERM");
    cr_expect(status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "the server did not exit cleanly (wait status 0x%x)", status);
}
