/*
 * mod_swiftwebsocket's directives and the configuration they build.
 *
 * Where handlers come from is per server (virtual host): the handler root,
 * the scanned part of it, the alias map. How connections behave is per
 * directory: limits, compression, keepalive and the Origin allow-list also
 * work in <Location> and <Directory>.
 */
#ifndef SWIFTWS_CONFIGURATION_H
#define SWIFTWS_CONFIGURATION_H

#include "httpd.h"
#include "http_config.h"
#include "apr_hash.h"

#include "swiftwebsocket.h"

typedef struct {
    const char *handler_root;     /* canonical path, NULL when unset */
    const char *scan_directory;   /* as written (relative to the root); NULL: the root */
    const char *map_file;         /* absolute path, NULL when unset */
    int allow_outside_root;       /* -1 unset, 0, 1 */
    apr_hash_t *handlers;         /* resource -> handler type, built in post_config */
    /* The main server's only (GLOBAL_ONLY): */
    apr_array_header_t *brokers;  /* of swiftws_broker_address; NULL: named groups stay per process */
    const char *broker_prefix;    /* NULL: the default */
    apr_int64_t memory_limit;     /* bytes per child, 0: none; -1: unset (the default) */
    int trap_limit;               /* SwiftWebSocketTrapLimit; 0: unset (the default), -1: off */
    apr_interval_time_t trap_period;
    const char *connection_log;   /* SwiftWebSocketConnectionLog as written; NULL: none */
} swiftws_server_config;

/* SwiftWebSocketMemoryLimit's default: room for 16 messages of the
 * default SwiftWebSocketMaxMessageSize at once, per child. */
#define SWIFTWS_DEFAULT_MEMORY_LIMIT (256 * 1024 * 1024)

#define SWIFTWS_DEFAULT_BROKER_PREFIX "swiftws:"

typedef struct {
    swiftws_connection_options options;
    /* Origins, compared without regard to case; NULL when unset. "none" admits
     * requests without an Origin header; "*" admits any. */
    apr_array_header_t *allowed_origins;
} swiftws_dir_config;

extern const command_rec swiftws_commands[];

void *swiftws_create_server_config(apr_pool_t *p, server_rec *s);
void *swiftws_merge_server_config(apr_pool_t *p, void *base, void *vhost);
void *swiftws_create_dir_config(apr_pool_t *p, char *dir);
void *swiftws_merge_dir_config(apr_pool_t *p, void *base, void *child);

/* Whether the request's Origin is admitted where this configuration
 * applies. */
int swiftws_origin_allowed(const swiftws_dir_config *conf, const char *origin);

#endif
