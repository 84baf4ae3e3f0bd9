/* tests/support/server.c -- runs the built tidings binary for end-to-end tests.
 *
 * The server gets a port that was free a moment ago (a clash makes it exit, and we retry
 * with another) and inherits the test's stderr, so a sanitizer report from the server
 * fails the test through ctest's FAIL_REGULAR_EXPRESSION. Two parallel tests may draw the
 * same port; so a server counts as started only when the socket that answers /readyz on
 * that port is one of its own file descriptors, not the other test's server.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#define MAX_ARGS 32
#define START_TIMEOUT_MS 15000

static bool answers(int port, const char *path, int status)
{
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    ts_resp_t r;
    bool ok = ts_http_raw(port, req, (size_t)n, 1000, &r) == 0 && r.status == status;
    ts_resp_free(&r);
    return ok;
}

void ts_server_start(ts_server_t *s, const char *redis_url, const char *const *extra,
                     bool wait_ready)
{
    char bin[1024], redis[256], listen[64];
    snprintf(bin, sizeof(bin), "%s", ts_server_bin());
    snprintf(redis, sizeof(redis), "%s", redis_url);
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = ts_free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
        char *argv[MAX_ARGS] = {bin, "--redis", redis, "--listen", listen, "--log-level", "warn"};
        int argc = 7;
        for (size_t i = 0; extra && extra[i]; i++) {
            cr_assert(argc < MAX_ARGS - 1, "too many server arguments");
            argv[argc++] = (char *)extra[i];
        }
        argv[argc] = NULL;
        s->pid = ts_proc_spawn(argv, NULL);
        uint64_t deadline = ts_now_ms() + START_TIMEOUT_MS;
        while (ts_now_ms() < deadline && ts_proc_alive(s->pid)) {
            if (answers(s->port, wait_ready ? "/readyz" : "/healthz", 200) &&
                ts_proc_listens(s->pid, s->port))
                return;
            ts_sleep_ms(10);
        }
        if (ts_proc_alive(s->pid))
            break; /* running but never ready: retrying will not help */
        ts_proc_wait(s->pid, 0);
        s->pid = 0;
    }
    ts_server_stop(s, 2000);
    cr_assert_fail("tidings did not become %s on 127.0.0.1:%d", wait_ready ? "ready" : "live",
                   s->port);
}

void ts_server_start_default(ts_server_t *s)
{
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    ts_server_start(s, url, NULL, true);
}

int ts_server_stop(ts_server_t *s, int timeout_ms)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int status = ts_proc_wait(s->pid, timeout_ms);
    if (status == -1)
        ts_proc_kill(s->pid);
    s->pid = 0;
    return status;
}

uint64_t ts_server_stop_clean(ts_server_t *s, int timeout_ms)
{
    if (s->pid <= 0)
        return 0;
    uint64_t t0 = ts_now_ms();
    int status = ts_server_stop(s, timeout_ms);
    cr_expect(status != -1, "the server did not exit within %d ms of SIGTERM", timeout_ms);
    cr_expect(status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "the server did not exit cleanly after SIGTERM (wait status 0x%x)", status);
    return ts_now_ms() - t0;
}

void ts_server_kill(ts_server_t *s)
{
    ts_proc_kill(s->pid);
    s->pid = 0;
}
