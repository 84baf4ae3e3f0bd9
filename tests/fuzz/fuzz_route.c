/* tests/fuzz/fuzz_route.c -- api_route_match (api/routes.c) on any method and path.
 *
 * Input: one byte picks the method, the rest is the path. A match must be a route of that
 * method (HEAD for GET), its captures must lie inside the path buffer, be non-empty and hold
 * no '/', and the pattern with the captures put back must spell the path exactly. A 405
 * (-2) must list methods that do not include the one asked for. */
#include "api/api.h"
#include "tests/fuzz/fuzz.h"

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "TRACE"};

/* The pattern with each "{name}" replaced by the next capture. */
static void fill_pattern(const char *pattern, const char *const *params, char *out, size_t size)
{
    size_t o = 0;
    int k = 0;
    for (const char *p = pattern; *p && o + 1 < size;) {
        if (*p == '{') {
            int n = snprintf(out + o, size - o, "%s", params[k++]);
            o += n > 0 ? (size_t)n : 0;
            p = strchr(p, '}') + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < size ? o : size - 1] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    char *path = fuzz_string(data + 1, size - 1);
    char *original = fuzz_string(data + 1, size - 1);
    size_t len = strlen(original);
    const char *params[API_MAX_PARAMS] = {NULL};
    char allow[64];
    int i = api_route_match(method, path, params, allow, sizeof(allow));
    FUZZ_CHECK(i >= -2 && i < (int)api_routes_count);
    if (i >= 0) {
        const api_route_t *route = &api_routes[i];
        const char *wanted = strcmp(method, "HEAD") == 0 ? "GET" : method;
        FUZZ_CHECK(strcmp(route->method, wanted) == 0);
        int captures = 0;
        for (const char *p = route->pattern; (p = strchr(p, '{')) != NULL; p++)
            captures++;
        for (int k = 0; k < captures; k++) {
            FUZZ_CHECK(params[k] >= path && params[k] + strlen(params[k]) <= path + len);
            FUZZ_CHECK(params[k][0] != '\0' && strchr(params[k], '/') == NULL);
        }
        char rebuilt[4096];
        if (len < sizeof(rebuilt)) {
            fill_pattern(route->pattern, params, rebuilt, sizeof(rebuilt));
            FUZZ_CHECK(strcmp(rebuilt, original) == 0);
        }
    } else if (i == -2) {
        FUZZ_CHECK(allow[0] != '\0');
        char list[sizeof(allow) + 2];
        snprintf(list, sizeof(list), " %s,", allow);
        char needle[16];
        snprintf(needle, sizeof(needle), " %s,", method);
        FUZZ_CHECK(strstr(list, needle) == NULL);
    }
    free(path);
    free(original);
    return 0;
}
