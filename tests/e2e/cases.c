/* tests/e2e/cases.c -- loads, fills in, sends and checks the cases of the bad-input table.
 *
 * The format is described in cases.h. A case fails with a message naming it, the request's
 * first line and the answer, so a failing run says what to look at without a debugger.
 */
#include "tests/e2e/cases.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_SIZE 70000 /* over the default --max-body of 65536 */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

size_t cases_list(char (*names)[CASE_NAME_MAX], size_t max)
{
    const char *src = getenv("TIDINGS_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/e2e/cases", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= CASE_NAME_MAX)
            continue;
        if (n < max)
            memcpy(names[n], e->d_name, strlen(e->d_name) + 1); /* fits: checked above */
        n++;
    }
    closedir(d);
    qsort(names, n < max ? n : max, CASE_NAME_MAX, cmp_names);
    return n;
}

static ts_buf_t load(const char *name, const char *file)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/tests/e2e/cases/%s/%s", ts_env("TIDINGS_SOURCE_DIR"), name,
             file);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "case %s: cannot open %s", name, path);
    ts_buf_t s = {0};
    ts_buf_add(&s, "", 0);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ts_buf_add(&s, buf, n);
    fclose(f);
    return s;
}

/* ---- placeholders ------------------------------------------------------------------------ */

static void big_body(ts_buf_t *out)
{
    ts_buf_puts(out, "{\"text\":\"");
    for (int i = 0; i < BIG_SIZE; i++)
        ts_buf_add(out, "a", 1);
    ts_buf_puts(out, "\"}");
}

static void big_chunked(ts_buf_t *out)
{
    ts_buf_t body = {0};
    big_body(&body);
    for (size_t pos = 0; pos < body.len; pos += 4096) {
        size_t n = body.len - pos < 4096 ? body.len - pos : 4096;
        char size[32];
        snprintf(size, sizeof(size), "%zx\r\n", n);
        ts_buf_puts(out, size);
        ts_buf_add(out, body.p + pos, n);
        ts_buf_puts(out, "\r\n");
    }
    ts_buf_puts(out, "0\r\n\r\n");
    free(body.p);
}

static void hex_bytes(const char *name, const char *hex, size_t len, ts_buf_t *out)
{
    cr_assert(len % 2 == 0, "case %s: odd HEX placeholder", name);
    for (size_t i = 0; i < len; i += 2) {
        char byte[3] = {hex[i], hex[i + 1], '\0'};
        char *end;
        unsigned char b = (unsigned char)strtoul(byte, &end, 16);
        cr_assert(*end == '\0', "case %s: bad HEX placeholder", name);
        ts_buf_add(out, &b, 1);
    }
}

/* Appends the value of placeholder key (len bytes, between the braces). */
static void expand(const world_t *w, const char *name, const char *key, size_t len, ts_buf_t *out)
{
    char k[64];
    snprintf(k, sizeof(k), "%.*s", (int)(len < 63 ? len : 63), key);
    if (strncmp(key, "REPEAT:", 7) == 0) {
        char *colon;
        long times = strtol(key + 7, &colon, 10);
        cr_assert(*colon == ':' && times >= 0, "case %s: bad REPEAT placeholder", name);
        size_t tlen = len - (size_t)(colon + 1 - key);
        for (long i = 0; i < times; i++)
            ts_buf_add(out, colon + 1, tlen);
    } else if (strncmp(key, "HEX:", 4) == 0) {
        hex_bytes(name, key + 4, len - 4, out);
    } else if (strcmp(k, "BIG_BODY") == 0) {
        big_body(out);
    } else if (strcmp(k, "BIG_CHUNKED") == 0) {
        big_chunked(out);
    } else if (strcmp(k, "TOKEN_A") == 0) {
        ts_buf_puts(out, w->a.token);
    } else if (strcmp(k, "TOKEN_B") == 0) {
        ts_buf_puts(out, w->b.token);
    } else if (strcmp(k, "ID_A") == 0) {
        ts_buf_puts(out, w->a.id);
    } else if (strcmp(k, "ID_B") == 0) {
        ts_buf_puts(out, w->b.id);
    } else if (strcmp(k, "HANDLE_A") == 0) {
        ts_buf_puts(out, w->a.handle);
    } else if (strcmp(k, "HANDLE_A_UPPER") == 0) {
        for (const char *c = w->a.handle; *c; c++) {
            char u = (char)toupper((unsigned char)*c);
            ts_buf_add(out, &u, 1);
        }
    } else if (strcmp(k, "POST_A") == 0) {
        ts_buf_puts(out, w->post_a);
    } else if (strcmp(k, "POST_B") == 0) {
        ts_buf_puts(out, w->post_b);
    } else if (strcmp(k, "WRONG_TOKEN_A") == 0) {
        ts_buf_puts(out, "tdg_");
        ts_buf_puts(out, w->a.id);
        ts_buf_puts(out, "_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    } else if (strcmp(k, "UNKNOWN_ID") == 0) {
        ts_buf_puts(out, "9007199254740991"); /* 2^53 - 1: an id of the year 2093 */
    } else if (strcmp(k, "UNIQUE") == 0) {
        char handle[32];
        ts_unique(handle, sizeof(handle), "u");
        ts_buf_puts(out, handle);
    } else if (strcmp(k, "HOST") == 0) {
        char host[32];
        snprintf(host, sizeof(host), "127.0.0.1:%d", w->srv.port);
        ts_buf_puts(out, host);
    } else {
        cr_assert_fail("case %s: unknown placeholder {{%s}}", name, k);
    }
}

/* Replaces every {{…}} in in[0..len) except {{LENGTH}}, which is kept for later. */
static ts_buf_t substitute(const world_t *w, const char *name, const char *in, size_t len)
{
    ts_buf_t out = {0};
    ts_buf_add(&out, "", 0);
    size_t i = 0;
    while (i < len) {
        const char *open = memmem(in + i, len - i, "{{", 2);
        const char *close = open ? memmem(open + 2, len - (size_t)(open + 2 - in), "}}", 2) : NULL;
        if (!open || !close) {
            ts_buf_add(&out, in + i, len - i);
            break;
        }
        ts_buf_add(&out, in + i, (size_t)(open - (in + i)));
        size_t klen = (size_t)(close - (open + 2));
        if (klen == 6 && memcmp(open + 2, "LENGTH", 6) == 0)
            ts_buf_add(&out, open, klen + 4);
        else
            expand(w, name, open + 2, klen, &out);
        i = (size_t)(close + 2 - in);
    }
    return out;
}

/* The request of case name, ready to send. */
static ts_buf_t build_request(const world_t *w, const char *name)
{
    ts_buf_t file = load(name, "request");
    const char *split = strstr(file.p, "\n\n");
    size_t head_len = split ? (size_t)(split - file.p) : file.len;
    while (head_len && file.p[head_len - 1] == '\n')
        head_len--;
    size_t body_start = split ? head_len + 2 : file.len;
    size_t body_len = file.len - body_start;
    if (body_len && file.p[file.len - 1] == '\n')
        body_len--;

    ts_buf_t head = substitute(w, name, file.p, head_len);
    ts_buf_t body = substitute(w, name, file.p + body_start, body_len);
    ts_buf_t req = {0};
    char length[24], host[48] = "";
    snprintf(length, sizeof(length), "%zu", body.len);
    if (!strcasestr(head.p, "\nHost:"))
        snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", w->srv.port);
    bool auth = !strcasestr(head.p, "\nAuthorization:") &&
                !strcasestr(head.p, "\n-Authorization") && strncmp(head.p, "POST /v1/users ", 15);
    bool json =
        split && !strcasestr(head.p, "\nContent-Type:") && !strcasestr(head.p, "\n-Content-Type");
    bool framed =
        strcasestr(head.p, "\nContent-Length:") || strcasestr(head.p, "\nTransfer-Encoding:");
    for (char *line = head.p; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n && line[n - 1] == '\r')
            n--;
        if (*line == '-') { /* an opt-out, not sent */
            line = nl ? nl + 1 : NULL;
            continue;
        }
        for (size_t j = 0; j < n;) {
            if (n - j >= 10 && memcmp(line + j, "{{LENGTH}}", 10) == 0) {
                ts_buf_puts(&req, length);
                j += 10;
            } else {
                ts_buf_add(&req, line + j, 1);
                j++;
            }
        }
        ts_buf_puts(&req, "\r\n");
        if (line == head.p) {
            ts_buf_puts(&req, host);
            if (auth) {
                ts_buf_puts(&req, "Authorization: Bearer ");
                ts_buf_puts(&req, w->a.token);
                ts_buf_puts(&req, "\r\n");
            }
            if (json)
                ts_buf_puts(&req, "Content-Type: application/json\r\n");
        }
        line = nl ? nl + 1 : NULL;
    }
    if (split && !framed) {
        ts_buf_puts(&req, "Content-Length: ");
        ts_buf_puts(&req, length);
        ts_buf_puts(&req, "\r\n");
    }
    ts_buf_puts(&req, "\r\n");
    ts_buf_add(&req, body.p, body.len);
    free(file.p);
    free(head.p);
    free(body.p);
    return req;
}

/* ---- checks ------------------------------------------------------------------------------- */

/* Does actual contain expected (object members recursively, other values equal)? */
static bool json_contains(const json_t *actual, const json_t *expected)
{
    if (!json_is_object(expected))
        return json_equal(actual, expected);
    if (!json_is_object(actual))
        return false;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)expected, key, value)
    {
        if (!json_contains(json_object_get(actual, key), value))
            return false;
    }
    return true;
}

/* The problem type of each status (api/problem.c), so a case need not repeat it. */
static const char *problem_type(int status)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {
        {400, "bad-request"},        {401, "unauthorized"},
        {403, "forbidden"},          {404, "not-found"},
        {405, "method-not-allowed"}, {409, "conflict"},
        {413, "payload-too-large"},  {415, "unsupported-media-type"},
        {422, "unprocessable"},      {429, "too-many-requests"},
        {500, "internal"},           {503, "unavailable"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].status == status)
            return types[i].type;
    return "";
}

static void check_problem(const char *name, const ts_resp_t *r, bool head)
{
    char ct[128];
    cr_expect(ts_resp_header(r, "Content-Type", ct, sizeof(ct)) &&
                  strcmp(ct, "application/problem+json") == 0,
              "case %s: a %d answer is not application/problem+json", name, r->status);
    if (head) /* HEAD: the same headers, no body */
        return;
    json_t *j = ts_resp_json(r);
    cr_expect(json_is_object(j), "case %s: the %d problem is not a JSON object: %s", name,
              r->status, r->body);
    static const char *const fields[] = {"type", "title", "detail"};
    for (size_t i = 0; j && i < 3; i++)
        cr_expect(json_is_string(json_object_get(j, fields[i])),
                  "case %s: the problem has no string '%s': %s", name, fields[i], r->body);
    cr_expect(json_integer_value(json_object_get(j, "status")) == r->status,
              "case %s: the problem's status is not the HTTP status %d: %s", name, r->status,
              r->body);
    char type[64];
    snprintf(type, sizeof(type), "urn:tidings:problem:%s", problem_type(r->status));
    const char *got = json_string_value(json_object_get(j, "type"));
    cr_expect_str_eq(got ? got : "", type, "case %s: a %d problem's type: %s", name, r->status,
                     r->body);
    json_decref(j);
}

static void check(const char *name, const char *first_line, const ts_resp_t *r)
{
    ts_buf_t exp = load(name, "expected");
    char *line = exp.p;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    int want = 0;
    sscanf(strncmp(line, "HTTP/", 5) == 0 ? strchr(line, ' ') : line, "%d", &want);
    cr_assert(want >= 100, "case %s: no status in expected", name);
    cr_expect(r->status == want, "case %s (%s): expected %d, got %d: %s", name, first_line, want,
              r->status, r->body);
    /* headers */
    line = nl ? nl + 1 : NULL;
    while (line && *line && *line != '\n') {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(line, ':');
        cr_assert(colon, "case %s: bad header line '%s' in expected", name, line);
        *colon = '\0';
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        char got[512];
        const char *have = ts_resp_header(r, line, got, sizeof(got));
        cr_expect(have, "case %s: no %s header in the answer", name, line);
        if (have && *value)
            cr_expect(strcmp(have, value) == 0, "case %s: %s is '%s', expected '%s'", name, line,
                      have, value);
        line = nl ? nl + 1 : NULL;
    }
    /* body */
    if (line && *line == '\n') {
        json_error_t err;
        json_t *want_json = json_loads(line + 1, JSON_DECODE_ANY, &err);
        if (strspn(line + 1, " \r\n\t") != strlen(line + 1)) {
            cr_assert(want_json, "case %s: expected body is not JSON: %s", name, err.text);
            json_t *got = ts_resp_json(r);
            cr_expect(got && json_contains(got, want_json),
                      "case %s: the body %s does not contain %s", name, r->body, line + 1);
            json_decref(got);
        }
        json_decref(want_json);
    }
    free(exp.p);
    /* A request line and headers past a connection's memory (4 KiB, about 3.5 for them) are refused
     * by libmicrohttpd itself, before any handler runs: its own 414/431 page, documented
     * in openapi.yaml as the one exception to problem documents. */
    if (r->status == 414 || r->status == 431)
        return;
    char cc[64];
    cr_expect(ts_resp_header(r, "Cache-Control", cc, sizeof(cc)) && strcmp(cc, "no-store") == 0,
              "case %s: no Cache-Control: no-store", name);
    if (r->status >= 400)
        check_problem(name, r, strncmp(first_line, "HEAD ", 5) == 0);
}

void cases_run(const world_t *w, const char *name, bool check_answer)
{
    ts_buf_t req = build_request(w, name);
    char first_line[160];
    snprintf(first_line, sizeof(first_line), "%.*s", (int)strcspn(req.p, "\r\n"), req.p);
    ts_resp_t r;
    int rc = ts_http_raw(w->srv.port, req.p, req.len, 20000, &r);
    free(req.p);
    cr_expect(rc == 0, "case %s (%s): no answer (%s)", name, first_line, strerror(-rc));
    if (rc == 0 && check_answer)
        check(name, first_line, &r);
    ts_resp_free(&r);
}
