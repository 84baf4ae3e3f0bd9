/* api/handlers_erase.c -- DELETE /v1/me: the caller leaves.
 *
 * The answer is 202: the erasure itself is a job on the fan-out engine (storage/erase.c),
 * but from the answer on the user is gone for the API: their token is refused, their record
 * and handle are gone, so profiles answer 404 and follows, likes and mentions of them fail as
 * for a user that never was.
 */
#include "api/api.h"
#include "storage/erase.h"
#include "storage/tokens.h"

#include <errno.h>

/* The user's tokens stop verifying at once: here, and on every process that has not cached
 * them. The erasure job announces the revocation when it starts, which empties the other
 * processes' caches and ends the user's streams everywhere. */
static int erase_user_tokens(api_t *api, uint64_t user)
{
    api_auth_forget_user(api, user);
    return storage_tokens_delete_all(api->storage, user, NULL);
}

void api_me_delete(api_req_t *r)
{
    uint64_t user = r->caller.id;
    /* The job is queued before the record goes, so a failure here leaves the account whole
     * and the client may try again. */
    int rc = storage_erase_begin(r->api->storage, user, r->api->cfg->handle_quarantine_s);
    if (rc == -ENOENT) {
        api_problem(r, API_UNAUTHORIZED, "the bearer token is not valid");
        return;
    }
    if (rc) {
        api_storage_problem(r, rc, "user");
        return;
    }
    /* The record is gone: a failure here leaves nothing that verifies. */
    (void)erase_user_tokens(r->api, user);
    api_reply_empty(r, 202);
}
