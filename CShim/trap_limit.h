/*
 * SwiftWebSocketTrapLimit: a handler that has trapped COUNT times within
 * PERIOD, in any child, gets no new connections (503 with Retry-After)
 * until PERIOD has passed since the oldest of those traps. A client that
 * found the input that crashes a handler could otherwise kill child after
 * child, and every connection they serve.
 *
 * The counts live in shared memory made in the parent before it forks
 * (anonymous, in the process pool, so they outlive graceful restarts),
 * one slot per loaded handler. A graceful restart that loads a changed
 * handler file gives it a new slot: the new code starts with no traps.
 */
#ifndef SWIFTWS_TRAP_LIMIT_H
#define SWIFTWS_TRAP_LIMIT_H

#include "httpd.h"
#include "apr_hash.h"

#define SWIFTWS_DEFAULT_TRAP_LIMIT 3
#define SWIFTWS_DEFAULT_TRAP_PERIOD apr_time_from_sec(600)
/* The most traps the shared memory remembers per handler. */
#define SWIFTWS_MAX_TRAP_LIMIT 64

/* In post_config, after the handlers loaded: makes the shared counts on
 * the first pass, gives every handler of every server a slot, and keeps
 * the main server's limit. Returns why not, or NULL. */
const char *swiftws_trap_limit_configure(apr_pool_t *pconf, server_rec *main_server);

/* The slot counting `handler_type`'s traps, or -1 when it has none (the
 * table is full). */
int swiftws_trap_limit_slot(void *handler_type);

/* Counts a trap now. Async-signal-safe: the trap report calls it. */
void swiftws_trap_limit_record(int slot);

/* OK, or HTTP_SERVICE_UNAVAILABLE with Retry-After set and the refusal
 * logged, when the request's handler is over its limit. */
int swiftws_trap_limit_check(request_rec *r, int slot, const char *handler_name);

#endif
