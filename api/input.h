/* api/input.h -- parsing and checking what a client sends, as pure functions: no request,
 * no MHD, no storage. The handlers call them and answer a false with a 400 carrying the
 * detail written here; tests/fuzz feeds them arbitrary bytes.
 *
 * Every parser that fails writes a one-line, NUL-terminated detail into detail (borrowed,
 * detail_size bytes, API_DETAIL_MAX is enough) and leaves its outputs unspecified. Strings
 * returned through out parameters are borrowed from the JSON body they were read from.
 * Thread: any. */
#ifndef TIDINGS_API_INPUT_H
#define TIDINGS_API_INPUT_H

#include "storage/storage.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_DETAIL_MAX 256
#define API_LIMIT_DEFAULT 20
#define API_LIMIT_MAX 100
#define API_TEXT_MAX_CHARS 5000
#define API_DISPLAY_NAME_MAX_CHARS 50
#define API_BIO_MAX_CHARS 160
#define API_IDEMPOTENCY_KEY_MAX 255

/* Is ct (NULL: absent) application/json, with or without parameters? */
bool api_input_is_json(const char *ct);

/* Parses body (len bytes, need not end in NUL) as a JSON object whose keys are all in
 * allowed (NULL-terminated). Returns a new reference, or NULL after writing detail. */
json_t *api_input_object(const char *body, size_t len, const char *const *allowed, char *detail,
                         size_t detail_size);

/* limit (1..API_LIMIT_MAX, API_LIMIT_DEFAULT when NULL) and cursor (NULL: 0, else an id):
 * the query parameters of every list. */
bool api_input_page(const char *limit_text, const char *cursor_text, size_t *limit,
                    uint64_t *cursor, char *detail, size_t detail_size);

/* types ("like,reply"; NULL: every type) into bits 1 << storage_notification_type. */
bool api_input_types(const char *text, unsigned *types, char *detail, size_t detail_size);

/* An Idempotency-Key header: 1..API_IDEMPOTENCY_KEY_MAX visible ASCII characters. */
bool api_input_idempotency_key(const char *key);

/* POST /v1/posts: text (1..API_TEXT_MAX_CHARS code points, not blank) and reply_to (absent
 * or null: 0). */
bool api_input_post(const json_t *body, const char **text, uint64_t *reply_to, char *detail,
                    size_t detail_size);

/* POST /v1/notifications/read: up_to, a notification id. */
bool api_input_read_mark(const json_t *body, uint64_t *up_to, char *detail, size_t detail_size);

/* POST /v1/users: handle (1..30 of [A-Za-z0-9_]) and display_name (absent or null: NULL). */
bool api_input_user(const json_t *body, const char **handle, const char **display_name,
                    char *detail, size_t detail_size);

/* PATCH /v1/me: display_name and/or bio (each NULL when absent; one of them is given). */
bool api_input_me(const json_t *body, const char **display_name, const char **bio, char *detail,
                  size_t detail_size);

#endif
