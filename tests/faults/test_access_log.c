/* tests/faults/test_access_log.c -- the JSON access log writes every request, including one
 * whose percent-decoded path is not valid UTF-8 (JSON strings must be, and the line used to be
 * dropped). */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(access_log, .timeout = 60);

Test(access_log, a_path_that_is_not_utf8_is_logged_too)
{
    char log[64], listen[32];
    snprintf(log, sizeof(log), "/tmp/tidings-access-%d.log", (int)getpid());
    int port = ts_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char url[256];
    ts_redis_fixture_url(url, sizeof(url));
    char *argv[] = {(char *)ts_server_bin(), "--redis", url,           "--listen", listen,
                    "--log-format",          "json",    "--log-level", "info",     NULL};
    pid_t pid = ts_proc_spawn(argv, log);
    bool up = false;
    for (int i = 0; i < 300 && !up; i++) {
        ts_resp_t r;
        const char ping[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        up = ts_http_raw(port, ping, sizeof(ping) - 1, 1000, &r) == 0 && r.status == 200;
        ts_resp_free(&r);
        if (!up)
            ts_sleep_ms(20);
    }
    cr_assert(up, "the server did not start");
    const char *paths[] = {"/v1/%FF%FEbad", "/v1/caf%C3", "/v1/ok-\xc3\xa9"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char req[256];
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", paths[i]);
        ts_resp_t r;
        cr_expect_eq(ts_http_raw(port, req, (size_t)n, 2000, &r), 0);
        ts_resp_free(&r);
    }
    ts_sleep_ms(200);
    ts_proc_kill(pid);
    FILE *f = fopen(log, "r");
    cr_assert(f);
    char line[4096];
    int access = 0, bad = 0;
    while (fgets(line, sizeof(line), f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        bad += !o;
        if (o && strcmp(ts_str(o, "module"), "access") == 0 &&
            strncmp(ts_str(o, "path"), "/v1/", 4) == 0)
            access++;
        json_decref(o);
    }
    fclose(f);
    unlink(log);
    cr_expect_eq(bad, 0, "every log line is one JSON object");
    cr_expect_eq(access, 3, "every request has its access line");
}
