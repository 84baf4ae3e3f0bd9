/* storage/redis/slots.h -- Redis Cluster addressing: which slot a key or a command belongs to,
 * and what a redirect error says. Pure functions, no I/O; public so tests can check them
 * against Redis's own vectors. */
#ifndef TIDINGS_STORAGE_REDIS_SLOTS_H
#define TIDINGS_STORAGE_REDIS_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORAGE_SLOTS 16384

/* CRC16-CCITT (XModem), the checksum Redis Cluster hashes keys with. */
uint16_t storage_crc16(const char *buf, size_t len);

/* The slot of key: of the part between the first '{' and the next '}' when that part is
 * not empty (a hash tag), of the whole key otherwise. */
int storage_key_slot(const char *key, size_t len);

/* The slot of the first key a RESP-formatted command (as hiredis formats it) names, or
 * -1 when it names none (PING, SCRIPT LOAD, EVAL with no keys…): any node will do. */
int storage_command_slot(const char *cmd, size_t len);

/* Does a RESP-formatted command only read? True for the reads Tidings sends (GET, HMGET,
 * ZREVRANGEBYSCORE, ZMSCORE, EVAL_RO…), false for anything else, scripts included: a caller
 * that must not write before a check (storage/redis/gate.c) errs on the safe side. */
bool storage_command_reads_only(const char *cmd, size_t len);

typedef enum {
    STORAGE_REDIRECT_NONE,
    STORAGE_REDIRECT_MOVED,
    STORAGE_REDIRECT_ASK
} storage_redirect_t;

/* Parses "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (an error reply's
 * text). host may come back empty (":<port>", sent when the node knows no endpoint for
 * itself): the node that replied, on that port. Anything else, including a malformed
 * redirect, is STORAGE_REDIRECT_NONE. */
storage_redirect_t storage_redirect_parse(const char *err, size_t len, int *slot, char *host,
                                          size_t host_size, int *port);

#endif
