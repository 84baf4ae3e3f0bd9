/* tests/e2e/test_cases.c -- runs the bad-input table (tests/e2e/cases, format in cases.h). */
#include "tests/e2e/cases.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#define MAX_CASES 512
#define MIN_CASES 60 /* guards against a table that silently went missing */

typedef struct {
    char name[CASE_NAME_MAX];
} case_param_t;

static char names[MAX_CASES][CASE_NAME_MAX];

TestSuite(bad_input, .timeout = 120);

/* One test per case, each against a fresh server, so one failing case hides no other. */
ParameterizedTestParameters(bad_input, answers_as_the_case_expects)
{
    size_t n = cases_list(names, MAX_CASES);
    if (n > MAX_CASES)
        n = MAX_CASES;
    case_param_t *params = cr_malloc(sizeof(*params) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        memcpy(params[i].name, names[i], CASE_NAME_MAX);
    return cr_make_param_array(case_param_t, params, n);
}

ParameterizedTest(case_param_t *c, bad_input, answers_as_the_case_expects)
{
    world_t w;
    world_start(&w);
    cases_run(&w, c->name, true);
    ts_resp_t r;
    ts_http(w.srv.port, "GET", "/healthz", NULL, NULL, NULL, &r);
    cr_expect_eq(r.status, 200, "case %s: /healthz answers %d afterwards", c->name, r.status);
    ts_resp_free(&r);
    world_stop(&w);
}

/* The whole table against one server: it answers every case and is still alive after. */
Test(bad_input, server_survives_the_whole_table)
{
    size_t n = cases_list(names, MAX_CASES);
    cr_assert_geq(n, MIN_CASES, "only %zu cases found under tests/e2e/cases", n);
    cr_assert_leq(n, MAX_CASES);
    world_t w;
    world_start(&w);
    for (size_t i = 0; i < n; i++)
        cases_run(&w, names[i], false);
    ts_resp_t r;
    ts_http(w.srv.port, "GET", "/healthz", NULL, NULL, NULL, &r);
    cr_expect_eq(r.status, 200, "/healthz answers %d after the table", r.status);
    ts_resp_free(&r);
    cr_expect(ts_proc_alive(w.srv.pid), "the server died during the table");
    world_stop(&w);
}
