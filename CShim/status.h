/*
 * The operator's view of the module's WebSockets: counters in shared
 * memory, one slot per child process, summed for mod_status (its
 * status_hook: the HTML table and `?auto` lines), for
 * `SetHandler swiftwebsocket-metrics` (Prometheus' text format, or JSON
 * with ?format=json for the live page) and per connection for the
 * connection log (connection_log.c).
 *
 * The segment is made in post_config, before the fork, with a block of
 * counters per resource (the loaded handlers' paths) in each slot; a
 * child claims a free slot, or one whose owner has exited, in child_init.
 * Counters are atomics, so every count is exact; a graceful restart makes
 * a new segment, and the counts start again from zero.
 */
#ifndef SWIFTWS_STATUS_H
#define SWIFTWS_STATUS_H

#include "httpd.h"
#include "swiftwebsocket.h"

/* A WebSocket's record: its traffic (what the Swift bridge counts into,
 * first so the pointers convert) and what its log line says of it. */
typedef struct {
    swiftws_traffic traffic;
    int open;             /* the 101 went out; it counts as open */
    apr_time_t opened;
    const char *resource, *client, *user;
    int http2, tls, parked;
} swiftws_connection_record;

/* Per child, not per resource: the brokers of SwiftWebSocketBroker. */
enum {
    SWIFTWS_BROKER_CONNECTED,  /* gauge: brokers this child reaches */
    SWIFTWS_BROKER_PUBLISHED,  /* broadcasts Redis took */
    SWIFTWS_BROKER_RECEIVED,   /* messages that came back on a channel */
    SWIFTWS_BROKER_LOST,       /* broadcasts that reached only their own child */
    SWIFTWS_BROKER_COUNTER_COUNT
};

void swiftws_status_register_hooks(void);

/* Before the handshake's handler runs: the connection's record, counting
 * into its resource's counters, in `pool` (the session's). Counts nothing
 * until swiftws_connection_opened; when `pool` goes, an opened
 * connection stops counting as open and is logged. */
swiftws_connection_record *swiftws_connection_record_create(request_rec *r, apr_pool_t *pool);

/* The 101 went out. `parked`: it waits in the MPM between messages. */
void swiftws_connection_opened(swiftws_connection_record *record, request_rec *r, int parked);

/* The swiftws_host entry. */
void swiftws_count_close(swiftws_traffic *traffic, int sent, int code, const char *reason, size_t length);

/* From the broker thread. */
void swiftws_count_broker(int counter, int64_t amount);

#endif
