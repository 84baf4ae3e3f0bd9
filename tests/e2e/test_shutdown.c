/* tests/e2e/test_shutdown.c -- SIGTERM and SIGINT stop the server promptly with status 0. */
#include "tests/e2e/world.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static ts_server_t srv;

static void stop(void)
{
    ts_server_stop(&srv, 2000);
}

TestSuite(shutdown, .fini = stop, .timeout = 120);

static int exit_after(int sig, uint64_t *took)
{
    uint64_t t0 = ts_now_ms();
    kill(srv.pid, sig);
    int status = ts_proc_wait(srv.pid, 10000);
    *took = ts_now_ms() - t0;
    if (status != -1)
        srv.pid = 0;
    return status;
}

Test(shutdown, sigterm_exits_zero_promptly)
{
    ts_server_start_default(&srv);
    ts_user_t u;
    ts_register(srv.port, "bye", &u);
    uint64_t took;
    int status = exit_after(SIGTERM, &took);
    cr_assert_neq(status, -1, "still running 10 s after SIGTERM");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
    cr_expect_lt(took, 3000, "SIGTERM took %llu ms", (unsigned long long)took);
}

Test(shutdown, sigint_exits_zero_promptly)
{
    ts_server_start_default(&srv);
    uint64_t took;
    int status = exit_after(SIGINT, &took);
    cr_assert_neq(status, -1, "still running 10 s after SIGINT");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
    cr_expect_lt(took, 3000, "SIGINT took %llu ms", (unsigned long long)took);
}

Test(shutdown, idle_keep_alive_connection_does_not_hold_it_up)
{
    ts_server_start_default(&srv);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    char buf[1024];
    cr_assert_gt(recv(fd, buf, sizeof(buf), 0), 0);
    uint64_t took;
    int status = exit_after(SIGTERM, &took);
    close(fd);
    cr_assert_neq(status, -1, "an idle keep-alive connection kept it running 10 s");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
    cr_expect_lt(took, 3000, "SIGTERM took %llu ms", (unsigned long long)took);
}

Test(shutdown, refuses_bad_flags_with_status_2)
{
    char bin[1024];
    snprintf(bin, sizeof(bin), "%s", ts_server_bin());
    char *argv[] = {bin, "--threads", "0", NULL};
    pid_t pid = ts_proc_spawn(argv, "/dev/null");
    int status = ts_proc_wait(pid, 10000);
    cr_assert_neq(status, -1);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "wait status 0x%x", status);
}
