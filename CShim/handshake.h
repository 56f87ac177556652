/*
 * The opening handshake (RFC 6455 4.2): checking the client's request,
 * describing it to the Swift bridge, the 101's Sec-WebSocket-Accept, and
 * handing the connection from HTTP to WebSocket framing after the 101.
 */
#ifndef SWIFTWS_HANDSHAKE_H
#define SWIFTWS_HANDSHAKE_H

#include "httpd.h"

#include "configuration.h"
#include "swiftwebsocket.h"

/* Checks the opening handshake (RFC 6455 4.2.1). Returns OK or the HTTP
 * status to refuse with (logged); *key is the client's key on success. */
int swiftws_validate_handshake(request_rec *r, const char **key);

/* Sec-WebSocket-Accept for the client's key. */
const char *swiftws_accept_value(apr_pool_t *p, const char *key);

/* The request as the bridge takes it (in r->pool). */
swiftws_request *swiftws_describe_request(request_rec *r, const swiftws_dir_config *conf);

/* After the 101: every later read and write goes through the connection's
 * filters. */
void swiftws_switch_to_connection_filters(request_rec *r);

#endif
