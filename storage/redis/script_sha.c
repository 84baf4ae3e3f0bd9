/* storage/redis/script_sha.c -- the scripts the asynchronous side has sent, by SHA1.
 *
 * The engine's scripts are sent as EVAL with their bodies (a few kilobytes: the small post
 * job's is 6 KiB), and Redis reads and hashes the body on every call: about a tenth of its
 * time per post. async_send.c sends EVALSHA instead, loading each script once per
 * connection; this table gives each body (as formatted into a command) a SHA1 and a small
 * index for the connections' loaded-sets. Any thread.
 */
#include "storage/redis/redis_internal.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

typedef struct known_s {
    char *body; /* owned copy */
    size_t len;
    char sha[41];
} known_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static known_t known[STORAGE_REDIS_SCRIPTS_MAX];
static int n_known;

static bool sha1_hex(const char *body, size_t len, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(body, len, md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return false;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
    return true;
}

int storage_redis__script_index(const char *body, size_t len, char sha[41])
{
    pthread_mutex_lock(&mu);
    int found = -1;
    for (int i = 0; i < n_known && found < 0; i++)
        if (known[i].len == len && memcmp(known[i].body, body, len) == 0)
            found = i;
    if (found < 0 && n_known < STORAGE_REDIS_SCRIPTS_MAX) {
        known_t *k = &known[n_known];
        k->body = malloc(len);
        if (k->body && sha1_hex(body, len, k->sha)) {
            memcpy(k->body, body, len);
            k->len = len;
            found = n_known++;
        } else {
            free(k->body);
            k->body = NULL;
        }
    }
    if (found >= 0)
        memcpy(sha, known[found].sha, 41);
    pthread_mutex_unlock(&mu);
    return found;
}
