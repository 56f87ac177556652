/*
 * Named WebSocketGroups across httpd children and servers: each child
 * speaks Redis pub/sub (hiredis) to the brokers of SwiftWebSocketBroker,
 * one group a channel (SwiftWebSocketBrokerPrefix + the group's name), the
 * channels spread over the brokers by a consistent hash of the name.
 *
 * Per child, one thread started in child_init owns every broker
 * connection (a publishing and a subscribing one per broker). Handlers and
 * workers never wait for it: subscribe, unsubscribe and publish are queued
 * (publishes within a bound) and the thread woken through an eventfd.
 * Messages arriving on a channel are handed to the Swift bridge on that
 * thread (swiftws_bridge_group_message), which queues them for the
 * group's members.
 */
#ifndef SWIFTWS_BROKER_H
#define SWIFTWS_BROKER_H

#include "httpd.h"
#include "apr_tables.h"

/* One SwiftWebSocketBroker URL, parsed. */
typedef struct {
    const char *url;      /* as configured, without the password, for logs */
    const char *host;     /* NULL for a Unix socket */
    int port;
    const char *socket_path;  /* NULL for TCP */
    const char *password; /* NULL: no AUTH */
    int database;         /* SELECT, 0 by default */
} swiftws_broker_address;

/* Parses `redis://[:password@]host[:port][/db]` or `unix:/path/to/socket`.
 * Returns NULL and fills *address, or says what is wrong. */
const char *swiftws_parse_broker_url(apr_pool_t *p, const char *url, swiftws_broker_address *address);

/* Which of `count` brokers serves `group` (jump consistent hash of its
 * FNV-1a hash: adding a broker moves only 1/(count+1) of the groups). */
int swiftws_broker_for_group(const char *group, size_t length, int count);

/* child_init: connects to the brokers (an array of swiftws_broker_address)
 * on a thread of this child; stopped when `pchild` goes. An unreachable
 * broker is logged and retried, never fatal. */
void swiftws_brokers_start(apr_pool_t *pchild, server_rec *s, const apr_array_header_t *brokers,
                           const char *prefix);

/* The swiftws_host entries (swiftwebsocket.h): any thread, never blocking. */
int swiftws_broker_publish(const char *group, size_t group_length, const void *payload, size_t length);
void swiftws_broker_subscribe(const char *group, size_t length);
void swiftws_broker_unsubscribe(const char *group, size_t length);

#endif
