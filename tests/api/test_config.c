/* tests/api/test_config.c -- api_config_parse: defaults, flags, environment twins, errors. */
#include "api/config.h"
#include "api/log.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Each test runs in its own process: clearing TIDINGS_* here touches no other test. */
static void clean_env(void)
{
    char names[64][128];
    int n = 0;
    for (char **e = environ; *e && n < 64; e++) {
        if (strncmp(*e, "TIDINGS_", 8) != 0)
            continue;
        size_t len = strcspn(*e, "=");
        if (len < sizeof(names[0])) {
            memcpy(names[n], *e, len);
            names[n++][len] = '\0';
        }
    }
    for (int i = 0; i < n; i++)
        unsetenv(names[i]);
}

static void quiet_clean_env(void)
{
    clean_env();
    cr_redirect_stdout();
    cr_redirect_stderr();
}

TestSuite(config, .init = clean_env, .timeout = 10);
TestSuite(config_errors, .init = quiet_clean_env, .timeout = 10);

/* A NULL-terminated argv starting with the program name. */
#define ARGV(...) ((char *[]){"tidings", __VA_ARGS__, NULL})

static int parse(api_config_t *cfg, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    api_config_defaults(cfg);
    return api_config_parse(cfg, argc, argv);
}

Test(config, defaults_without_flags_or_environment)
{
    api_config_t cfg;
    char *argv[] = {"tidings", NULL};
    cr_assert_eq(parse(&cfg, argv), 0);
    cr_expect_str_eq(cfg.listen, "127.0.0.1:8080");
    cr_expect_str_eq(cfg.redis, "");
    cr_expect_str_eq(cfg.data_dir, "./tidings-data");
    cr_expect_str_eq(cfg.redis_server, "redis-server");
    long cores = sysconf(_SC_NPROCESSORS_ONLN); /* one thread per core, two at least */
    cr_expect_eq(cfg.threads, cores < 2 ? 2 : cores > 256 ? 256 : (int)cores);
    cr_expect_eq(cfg.fanout.timeline_max, 800);
    cr_expect_eq(cfg.fanout.notifications_max, 1000);
    cr_expect_eq(cfg.fanout.celebrity_threshold, 10000);
    cr_expect_eq(cfg.max_body, 65536);
    cr_expect_eq(cfg.log_level, LOG_INFO);
    cr_expect_eq(cfg.log_json, 0);
    cr_expect_eq(cfg.shutdown_grace_ms, 10000);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(cfg.stream_writers,
                 cpus < 1    ? 1
                 : cpus > 16 ? 16
                             : cpus,
                 "--stream-writers is one per CPU (%ld) by default, not %d", cpus,
                 cfg.stream_writers);
}

Test(config, stream_writers_takes_0_to_64)
{
    api_config_t cfg;
    cr_assert_eq(parse(&cfg, ARGV("--stream-writers", "0")), 0);
    cr_expect_eq(cfg.stream_writers, 0, "0 leaves every write to libmicrohttpd");
    cr_assert_eq(parse(&cfg, ARGV("--stream-writers", "64")), 0);
    cr_expect_eq(cfg.stream_writers, 64);
    setenv("TIDINGS_STREAM_WRITERS", "3", 1);
    cr_assert_eq(parse(&cfg, ARGV("--threads", "2")), 0);
    cr_expect_eq(cfg.stream_writers, 3);
}

Test(config, flags_set_their_fields)
{
    api_config_t cfg;
    char **argv = ARGV("--listen", "0.0.0.0:9000", "--redis", "redis://10.0.0.1:6380/2",
                       "--data-dir", "/var/lib/t", "--redis-server", "/opt/redis-server",
                       "--threads", "8", "--timeline-max", "50", "--notifications-max", "60",
                       "--celebrity-threshold", "70", "--max-body", "1024", "--log-level", "debug",
                       "--log-format", "json", "--shutdown-grace", "0");
    cr_assert_eq(parse(&cfg, argv), 0);
    cr_expect_str_eq(cfg.listen, "0.0.0.0:9000");
    cr_expect_str_eq(cfg.redis, "redis://10.0.0.1:6380/2");
    cr_expect_str_eq(cfg.data_dir, "/var/lib/t");
    cr_expect_str_eq(cfg.redis_server, "/opt/redis-server");
    cr_expect_eq(cfg.threads, 8);
    cr_expect_eq(cfg.fanout.timeline_max, 50);
    cr_expect_eq(cfg.fanout.notifications_max, 60);
    cr_expect_eq(cfg.fanout.celebrity_threshold, 70);
    cr_expect_eq(cfg.max_body, 1024);
    cr_expect_eq(cfg.log_level, LOG_DEBUG);
    cr_expect_eq(cfg.log_json, 1);
    cr_expect_eq(cfg.shutdown_grace_ms, 0);
}

Test(config, flags_accept_the_equals_form)
{
    api_config_t cfg;
    char **argv = ARGV("--threads=3", "--redis=unix:///tmp/r.sock");
    cr_assert_eq(parse(&cfg, argv), 0);
    cr_expect_eq(cfg.threads, 3);
    cr_expect_str_eq(cfg.redis, "unix:///tmp/r.sock");
}

Test(config, environment_twins_set_the_same_fields)
{
    setenv("TIDINGS_LISTEN", "127.0.0.1:7000", 1);
    setenv("TIDINGS_REDIS", "redis://127.0.0.1:1", 1);
    setenv("TIDINGS_DATA_DIR", "/tmp/d", 1);
    setenv("TIDINGS_THREADS", "7", 1);
    setenv("TIDINGS_MAX_BODY", "4096", 1);
    setenv("TIDINGS_LOG_LEVEL", "warn", 1);
    setenv("TIDINGS_LOG_FORMAT", "json", 1);
    setenv("TIDINGS_CELEBRITY_THRESHOLD", "5", 1);
    setenv("TIDINGS_SHUTDOWN_GRACE", "250", 1);
    api_config_t cfg;
    char *argv[] = {"tidings", NULL};
    cr_assert_eq(parse(&cfg, argv), 0);
    cr_expect_str_eq(cfg.listen, "127.0.0.1:7000");
    cr_expect_str_eq(cfg.redis, "redis://127.0.0.1:1");
    cr_expect_str_eq(cfg.data_dir, "/tmp/d");
    cr_expect_eq(cfg.threads, 7);
    cr_expect_eq(cfg.max_body, 4096);
    cr_expect_eq(cfg.log_level, LOG_WARN);
    cr_expect_eq(cfg.log_json, 1);
    cr_expect_eq(cfg.fanout.celebrity_threshold, 5);
    cr_expect_eq(cfg.shutdown_grace_ms, 250);
}

Test(config, flag_wins_over_environment)
{
    setenv("TIDINGS_THREADS", "7", 1);
    setenv("TIDINGS_LOG_LEVEL", "error", 1);
    api_config_t cfg;
    char **argv = ARGV("--threads", "3");
    cr_assert_eq(parse(&cfg, argv), 0);
    cr_expect_eq(cfg.threads, 3);
    cr_expect_eq(cfg.log_level, LOG_ERROR, "an unrelated variable was dropped");
}

Test(config_errors, help_and_version_ask_to_exit)
{
    api_config_t cfg;
    cr_expect_eq(parse(&cfg, ARGV("--help")), 1);
    cr_expect_eq(parse(&cfg, ARGV("-h")), 1);
    cr_expect_eq(parse(&cfg, ARGV("--version")), 1);
    cr_expect_eq(parse(&cfg, ARGV("-V")), 1);
}

Test(config_errors, bad_flag_values_are_einval)
{
    static const char *const bad[][2] = {
        {"--threads", "0"},
        {"--threads", "257"},
        {"--threads", "abc"},
        {"--threads", ""},
        {"--threads", "4x"},
        {"--threads", "-1"},
        {"--threads", "99999999999999999999"},
        {"--listen", "nocolon"},
        {"--redis", "http://x:1"},
        {"--redis", "localhost:6379"},
        {"--log-level", "loud"},
        {"--log-level", "DEBUGGING"},
        {"--log-format", "xml"},
        {"--max-body", "10"},
        {"--max-body", "1e6"},
        {"--timeline-max", "0"},
        {"--notifications-max", "-5"},
        {"--celebrity-threshold", "0"},
        {"--shutdown-grace", "-1"},
        {"--stream-writers", "-1"},
        {"--stream-writers", "65"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api_config_t cfg;
        char *argv[] = {"tidings", (char *)bad[i][0], (char *)bad[i][1], NULL};
        cr_expect_eq(parse(&cfg, argv), -EINVAL, "%s '%s' was accepted", bad[i][0], bad[i][1]);
    }
}

Test(config_errors, unknown_flags_and_arguments_are_einval)
{
    api_config_t cfg;
    cr_expect_eq(parse(&cfg, ARGV("--nope")), -EINVAL);
    cr_expect_eq(parse(&cfg, ARGV("-x")), -EINVAL);
    cr_expect_eq(parse(&cfg, ARGV("stray")), -EINVAL);
    cr_expect_eq(parse(&cfg, ARGV("--threads")), -EINVAL, "a flag without its value");
}

Test(config_errors, bad_environment_values_are_einval)
{
    static const char *const bad[][2] = {
        {"TIDINGS_THREADS", "abc"},    {"TIDINGS_LISTEN", "nocolon"}, {"TIDINGS_REDIS", "http://x"},
        {"TIDINGS_LOG_LEVEL", "loud"}, {"TIDINGS_MAX_BODY", "1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clean_env();
        setenv(bad[i][0], bad[i][1], 1);
        api_config_t cfg;
        char *argv[] = {"tidings", NULL};
        cr_expect_eq(parse(&cfg, argv), -EINVAL, "%s=%s was accepted", bad[i][0], bad[i][1]);
    }
}

Test(config, log_levels_parse_by_name)
{
    cr_expect_eq(log_level_parse("debug"), LOG_DEBUG);
    cr_expect_eq(log_level_parse("info"), LOG_INFO);
    cr_expect_eq(log_level_parse("warn"), LOG_WARN);
    cr_expect_eq(log_level_parse("error"), LOG_ERROR);
    cr_expect_eq(log_level_parse("verbose"), -1);
    cr_expect_eq(log_level_parse(""), -1);
    cr_expect_eq(log_level_parse("warning"), -1);
}

Test(config, inactive_days_and_the_clock_offset)
{
    api_config_t cfg;
    cr_assert_eq(parse(&cfg, ARGV("--threads", "2")), 0);
    cr_expect_eq(cfg.fanout.inactive_days, 30, "followers go inactive after 30 days by default");
    cr_expect_eq(cfg.clock_offset_ms, 0);
    cr_assert_eq(parse(&cfg, ARGV("--inactive-days", "0", "--clock-offset-ms", "2678400000")), 0);
    cr_expect_eq(cfg.fanout.inactive_days, 0, "0 turns skipping off");
    cr_expect_eq(cfg.clock_offset_ms, 2678400000L, "31 days ahead");
    setenv("TIDINGS_CLOCK_OFFSET_MS", "5000", 1);
    setenv("TIDINGS_INACTIVE_DAYS", "7", 1);
    cr_assert_eq(parse(&cfg, ARGV("--threads", "2")), 0);
    cr_expect_eq(cfg.clock_offset_ms, 5000);
    cr_expect_eq(cfg.fanout.inactive_days, 7);
    clean_env();
    cr_redirect_stderr();
    cr_expect_eq(parse(&cfg, ARGV("--clock-offset-ms", "-1")), -EINVAL,
                 "a clock behind the wall clock would mint ids behind old ones");
    cr_expect_eq(parse(&cfg, ARGV("--inactive-days", "-3")), -EINVAL);
    cr_expect_eq(parse(&cfg, ARGV("--inactive-days", "3651")), -EINVAL);
}
