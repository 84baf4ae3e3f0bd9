/* api/admin.c -- `tidings admin …`: operator commands against the same Redis as the server,
 * run by the same binary with the same flags, and exiting when done.
 *
 *   tidings admin dead-letters list [flags]             one JSON object per line
 *   tidings admin dead-letters redrive ID… | --all [flags]
 *
 * The flags are the server's (--redis, --fanout-shards, their environment twins); without
 * --redis, the embedded Redis of --data-dir (which a running server started) is used.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "api/admin.h"
#include "api/config.h"
#include "storage/storage.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 100
#define ARGS_MAX 64

static const char usage[] =
    "usage: tidings admin dead-letters list [flags]\n"
    "       tidings admin dead-letters redrive (ID... | --all) [flags]\n"
    "\n"
    "list prints every dead letter of the fan-out queue as a JSON object per line; redrive\n"
    "queues the named ones (or all) again on the shard they came from and removes them.\n"
    "Flags are the server's (--redis URL, --fanout-shards N, --data-dir DIR, ...).\n";

static void print_letter(const storage_dead_letter_t *d)
{
    json_t *o = json_pack("{s:s}", "id", d->id);
    for (size_t i = 0; o && i < d->n_fields; i++)
        json_object_set_new(o, d->fields[i].name, json_string(d->fields[i].value));
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (line)
        puts(line);
    free(line);
    json_decref(o);
}

static int fail(const char *what, const char *id, int rc);

/* Walks every dead letter, a page at a time; each is printed, or redriven when redrive (one
 * that cannot be is reported and left, and the walk goes on: *failed counts them). */
static int walk(storage_t *s, bool redrive, size_t *count, size_t *failed)
{
    static storage_dead_letter_t page[PAGE];
    char after[STORAGE_EVENT_ID_MAX] = "";
    for (;;) {
        size_t n;
        int rc = storage_dead_letters_list(s, after, PAGE, page, &n);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            rc = redrive ? storage_dead_letter_redrive(s, page[i].id) : 0;
            if (rc == -EINVAL || rc == -ENOENT) { /* this letter's trouble, not Redis's */
                fail("redriving", page[i].id, rc);
                (*failed)++;
                continue;
            }
            if (rc)
                return rc;
            if (redrive)
                printf("{\"redriven\":\"%s\"}\n", page[i].id);
            else
                print_letter(&page[i]);
            (*count)++;
        }
        if (n < PAGE)
            return 0;
        snprintf(after, sizeof(after), "%s", page[n - 1].id);
    }
}

static int fail(const char *what, const char *id, int rc)
{
    fprintf(stderr, "tidings admin: %s%s%s failed: %s\n", what, id ? " " : "", id ? id : "",
            rc == -ENOENT                      ? "no such dead letter"
            : rc == -EINVAL                    ? "the letter names no job this deployment can run"
            : rc == -EAGAIN || rc == -ENOTCONN ? "Redis is unreachable"
            : rc == -ETIMEDOUT                 ? "Redis did not answer in time"
                                               : strerror(-rc));
    return 1;
}

int api_admin_main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "dead-letters") != 0 ||
        (strcmp(argv[2], "list") != 0 && strcmp(argv[2], "redrive") != 0)) {
        fputs(usage, stderr);
        return 2;
    }
    bool redrive = strcmp(argv[2], "redrive") == 0, all = false;
    /* Positional ids and --all are ours; the rest are the server's flags. */
    char *flags[ARGS_MAX] = {"tidings"}, *ids[ARGS_MAX];
    int n_flags = 1, n_ids = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strncmp(argv[i], "--", 2) != 0 &&
                 (i == 3 || strncmp(argv[i - 1], "--", 2) != 0 || strchr(argv[i - 1], '=')))
            ids[n_ids < ARGS_MAX ? n_ids++ : n_ids] = argv[i];
        else if (n_flags < ARGS_MAX)
            flags[n_flags++] = argv[i];
    }
    if ((!redrive && (all || n_ids)) || (redrive && all == (n_ids > 0))) {
        fputs(usage, stderr);
        return 2;
    }
    api_config_t cfg;
    api_config_defaults(&cfg);
    int rc = api_config_parse(&cfg, n_flags, flags);
    if (rc)
        return rc > 0 ? 0 : 2;
    char url[PATH_MAX + 32], dir[PATH_MAX];
    if (cfg.redis[0])
        snprintf(url, sizeof(url), "%s", cfg.redis);
    else if (realpath(cfg.data_dir, dir))
        snprintf(url, sizeof(url), "unix://%s/redis.sock", dir);
    else
        return fail("finding the embedded Redis in", cfg.data_dir, -errno);
    cfg.storage.url = url;
    cfg.storage.read_cache = 0; /* a one-shot command reads nothing twice */
    storage_t *s = storage_create(&cfg.storage);
    if (!s)
        return fail("connecting to Redis", NULL, -EINVAL);
    size_t count = 0, failed = 0;
    rc = 0;
    if (!redrive || all)
        rc = walk(s, redrive, &count, &failed);
    for (int i = 0; rc == 0 && i < n_ids; i++) {
        int one = storage_dead_letter_redrive(s, ids[i]);
        if (one == 0) {
            printf("{\"redriven\":\"%s\"}\n", ids[i]);
            count++;
        } else {
            fail("redriving", ids[i], one);
            failed++;
            if (one != -EINVAL && one != -ENOENT)
                rc = one;
        }
    }
    storage_destroy(s);
    if (rc && !n_ids)
        return fail(redrive ? "redriving" : "listing", NULL, rc);
    fprintf(stderr, "tidings admin: %zu dead letter%s %s%s\n", count, count == 1 ? "" : "s",
            redrive ? "redriven" : "listed", failed ? ", some could not be" : "");
    return rc || failed ? 1 : 0;
}
