/* tests/faults/test_dead_letters.c -- `tidings admin dead-letters`: an operator lists the jobs
 * the engine gave up on and puts them back on their queue, after which they run like any
 * other job. The dead letter is made as the engine makes one (the job's fields, its shard and
 * entry, deliveries and reason), from a real post's queued job. */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(dead_letters, .timeout = 120);

/* Runs `tidings admin dead-letters <args…> --redis url`; its stdout goes to out (NUL-ended).
 * Returns the exit status. */
static int admin(const char *url, char *out, size_t size, const char *const *args)
{
    char log[64];
    snprintf(log, sizeof(log), "/tmp/tidings-admin-%d.out", (int)getpid());
    char *argv[16] = {(char *)ts_server_bin(), "admin", "dead-letters"};
    int argc = 3;
    for (; *args && argc < 12; args++)
        argv[argc++] = (char *)*args;
    argv[argc++] = "--redis";
    argv[argc++] = (char *)url;
    argv[argc] = NULL;
    int status = ts_proc_wait(ts_proc_spawn(argv, log), 15000);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, size - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The JSON lines of admin's output (stdout; its summary on stderr is not JSON): how many, and
 * the first into *first. */
static int json_lines(const char *out, const char **first)
{
    int n = 0;
    *first = NULL;
    for (const char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (*line == '{' && n++ == 0)
            *first = line;
    return n;
}

/* Moves the queued job of post from its stream to fanout:dead, as the engine dead-letters
 * one: returns the dead letter's id into dead_id. */
static void kill_job(redisContext *c, uint64_t post, uint64_t author, char dead_id[64])
{
    int shard = (int)(author % 4); /* the server's default --fanout-shards */
    redisReply *r = ts_redis_cmd_ok(c, "XRANGE fanout:{%d} - +", shard);
    char entry[64] = "";
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (strcmp(f->element[k]->str, "post") == 0 && ts_id(f->element[k + 1]->str) == post)
                snprintf(entry, sizeof(entry), "%s", r->element[i]->element[0]->str);
    }
    freeReplyObject(r);
    cr_assert(entry[0], "the post's job is not queued on shard %d", shard);
    freeReplyObject(ts_redis_cmd_ok(c, "XDEL fanout:{%d} %s", shard, entry));
    r = ts_redis_cmd_ok(c,
                        "XADD fanout:dead * shard %d entry %s kind post post %llu author %llu "
                        "follower 0 followee 0 actor 0 user 0 target 0 at %llu after 0 "
                        "deliveries 6 reason %s",
                        shard, entry, (unsigned long long)post, (unsigned long long)author,
                        (unsigned long long)post, "too-many-attempts");
    snprintf(dead_id, 64, "%s", r->str);
    freeReplyObject(r);
}

Test(dead_letters, are_listed_and_redriven_by_an_operator)
{
    ts_redis_t redis;
    memset(&redis, 0, sizeof(redis));
    ts_redis_start_like_fixture(&redis);
    redisContext *c = ts_redis_connect(redis.port);
    /* No engine yet: the post's job waits in its queue, where the test takes it. */
    ts_server_t quiet;
    ts_server_start(&quiet, redis.url, (const char *const[]){"--engine", "off", NULL}, true);
    ts_user_t ana, bob;
    ts_register(quiet.port, "dl", &ana);
    ts_register(quiet.port, "dl", &bob);
    ts_follow(quiet.port, &bob, &ana);
    char post_text[24];
    uint64_t post = ts_post(quiet.port, &ana, "back from the dead", post_text);
    char dead[64], out[8192];
    kill_job(c, post, ana.num, dead);
    cr_expect_eq(admin(redis.url, out, sizeof(out), (const char *const[]){"list", NULL}), 0);
    const char *first;
    cr_expect_eq(json_lines(out, &first), 1, "one dead letter, one line: %s", out);
    json_error_t err;
    json_t *line = first ? json_loads(first, JSON_DISABLE_EOF_CHECK, &err) : NULL;
    cr_assert(line, "list printed no JSON: %s", out);
    cr_expect_str_eq(ts_str(line, "id"), dead);
    cr_expect_str_eq(ts_str(line, "kind"), "post");
    cr_expect_str_eq(ts_str(line, "post"), post_text);
    cr_expect_str_eq(ts_str(line, "reason"), "too-many-attempts");
    json_decref(line);

    /* A letter that is not there, and a usage error. */
    cr_expect_eq(admin(redis.url, out, sizeof(out), (const char *const[]){"redrive", "1-1", NULL}),
                 1);
    cr_expect_eq(admin(redis.url, out, sizeof(out), (const char *const[]){"redrive", NULL}), 2);

    ts_server_t engine;
    ts_server_start(&engine, redis.url, NULL, true);
    cr_expect_eq(admin(redis.url, out, sizeof(out), (const char *const[]){"redrive", dead, NULL}),
                 0);
    cr_expect(strstr(out, dead) != NULL, "redrive names the letter: %s", out);
    uint64_t ids[4];
    cr_expect_eq(ts_wait_timeline(engine.port, &bob, 1, ids, 4, 10000), 1,
                 "the redriven job reached the follower");
    cr_expect_eq(ids[0], post);
    cr_expect_eq(admin(redis.url, out, sizeof(out), (const char *const[]){"list", NULL}), 0);
    cr_expect_eq(json_lines(out, &first), 0, "the letter is gone once redriven: %s", out);
    ts_server_stop(&engine, 5000);
    ts_server_stop(&quiet, 5000);
    ts_redis_close(c);
    ts_redis_cleanup(&redis);
}
