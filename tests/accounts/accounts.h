/* tests/accounts/accounts.h -- the accounts suites' server (on the fixture Redis) and their
 * problem check. */
#ifndef TESTS_ACCOUNTS_ACCOUNTS_H
#define TESTS_ACCOUNTS_ACCOUNTS_H

#include "tests/support/support.h"

extern ts_server_t accounts_srv;
#define PORT (accounts_srv.port)

void accounts_setup(void);
void accounts_teardown(void);
/* Sends the request (token NULL: none) and expects status with a problem+json body
 * repeating it. */
void accounts_problem(const char *token, const char *method, const char *path, const char *body,
                      int status);

/* Registers a user with exactly this handle (201). */
void accounts_register_handle(const char *handle, ts_user_t *u);

#endif
