/*
 * mod_swiftwebsocket: serves WebSocket endpoints (RFC 6455) from Swift
 * handlers. This file is the module record, its hooks and the content
 * handler; handshake.c checks and answers the opening handshake, parking.c
 * has the hooks of connections parked in the event MPM, configuration.c
 * the directives, handler_registry.c finds and loads handlers,
 * connection_io.c is the filter I/O the Swift bridge calls back, broker.c
 * carries named groups over Redis, status.c counts for server-status and
 * the metrics, connection_log.c writes a line for each WebSocket, and
 * trap_report.c and trap_limit.c report and contain handlers that trap.
 * The protocol engine and the handler API are Swift (Sources/), reached
 * through CShim/include/swiftwebsocket.h.
 *
 * Request flow:
 *   header_parser  claims an `Upgrade: websocket` request whose path names a
 *                  loaded handler (kept in the request config: later phases
 *                  may rewrite r->handler);
 *   access phases  run as for any request (Require, AuthType, SSL*);
 *   handler        validates the handshake, runs the handler's extra
 *                  handshake, sends the 101 and drives the connection: on
 *                  this thread to its end, or, for an event-style handler
 *                  on the event MPM, until it parks in the MPM (parking.c).
 */

#include "httpd.h"
#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_ssl.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "util_filter.h"
#include "apr_strings.h"
#include "util_cfgtree.h"

#include <malloc.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "broker.h"
#include "configuration.h"
#include "connection_io.h"
#include "connection_log.h"
#include "handler_registry.h"
#include "handshake.h"
#include "parking.h"
#include "status.h"
#include "swiftwebsocket.h"
#include "trap_limit.h"
#include "trap_report.h"

module AP_MODULE_DECLARE_DATA swiftwebsocket_module;


static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether a virtual host serves exactly the main server's handlers (it
 * inherits or repeats its handler directives): it then shares the main
 * server's table instead of scanning, loading and logging all over again. */
static int same_handler_source(const swiftws_server_config *a, const swiftws_server_config *b)
{
    return same_text(a->handler_root, b->handler_root) && same_text(a->scan_directory, b->scan_directory)
           && same_text(a->map_file, b->map_file) && a->allow_outside_root == b->allow_outside_root;
}

/* Scans every server's handler root and loads its handlers. Runs in the
 * parent at startup and on each graceful restart, and for configtest. */
static int load_all_handlers(apr_pool_t *pconf, server_rec *main_server)
{
    swiftws_server_config *main_conf =
        ap_get_module_config(main_server->module_config, &swiftwebsocket_module);
    server_rec *s;
    for (s = main_server; s; s = s->next) {
        swiftws_server_config *conf =
            ap_get_module_config(s->module_config, &swiftwebsocket_module);
        swiftws_handler_source source;
        const char *error = NULL;
        if (s != main_server && same_handler_source(conf, main_conf)) {
            conf->handlers = main_conf->handlers;
            continue;
        }
        if (!conf->handler_root) {
            if (conf->scan_directory || conf->map_file) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "SwiftWebSocketHandlerScan and "
                             "SwiftWebSocketHandlerMap need a SwiftWebSocketHandlerRoot");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            continue;
        }
        source.root = conf->handler_root;
        source.scan_directory = NULL;
        source.map_file = conf->map_file;
        source.allow_outside_root = conf->allow_outside_root == 1;
        if (conf->scan_directory) {
            error = swiftws_scan_directory(pconf, conf->handler_root, conf->scan_directory,
                                           &source.scan_directory);
        }
        if (!error) {
            error = swiftws_load_handlers(pconf, s, &source, &conf->handlers);
        }
        if (error) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "%s", error);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* `apachectl -t` (and Debian's apache2ctl before a graceful restart) runs
 * no post_config: load the handlers here, so a configuration that would
 * stop httpd fails the test instead of taking a running server down. */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    if (ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST) {
        return OK;
    }
    return load_all_handlers(pconf, s);
}

/* ---- Hooks ---- */

/* AsyncRequestWorkerFactor as configured (the event MPM's default is 2):
 * ap_mpm_query has no code for it, so it is read from the configuration
 * tree, where <IfModule> and Include are already expanded and the directive
 * (server config only) sits at the top level; the last one wins. */
static double async_request_worker_factor(void)
{
    double factor = 2;
    const ap_directive_t *d;
    for (d = ap_conftree; d; d = d->next) {
        if (d->directive && d->args && strcasecmp(d->directive, "AsyncRequestWorkerFactor") == 0) {
            factor = strtod(d->args, NULL);
        }
    }
    return factor;
}

/* Says, once per start or restart, how many connections a child accepts
 * with these settings: on an MPM where event-style WebSockets park, they
 * hold no thread, and what bounds them is the event MPM's accept limit
 * (it stops accepting past ThreadsPerChild + idle workers x the integer
 * part of AsyncRequestWorkerFactor, event.c's connections_above_limit) and
 * the descriptor limit (one per parked WebSocket, two for one holding a
 * thread). Without parking, each WebSocket holds a worker thread. */
static void log_connection_capacity(server_rec *s)
{
    int threads = 0, children = 0, can_waitio = 0;
    struct rlimit files;
    long descriptors = -1;  /* unlimited */
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;  /* prefork: one connection per process */
    }
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &children);
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
        descriptors = (long)files.rlim_cur;
    }
    if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can_waitio) == APR_SUCCESS && can_waitio) {
        long factor = (long)async_request_worker_factor();  /* its integer part */
        long accepted = threads * (1 + factor);
        long held = descriptors >= 0 && descriptors < accepted ? descriptors : accepted;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "a child holds up to about %ld idle event-style WebSockets: the event MPM "
                     "accepts %ld connections while the child's workers are idle (ThreadsPerChild "
                     "%d x (1 + AsyncRequestWorkerFactor %ld)), fewer while they are busy, and a "
                     "parked WebSocket holds one of its %ld descriptors (ulimit -n) and no thread; "
                     "child processes: up to %d (blocking handlers hold a thread each)",
                     held, accepted, threads, factor, descriptors, children);
    } else {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "a child serves up to %d WebSockets at once, one thread each (this MPM "
                     "does not park connections; %ld descriptors per child); child processes: "
                     "up to %d", threads, descriptors, children);
    }
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    const char *error;
    int status;
    /* httpd unloads and reloads this module between configuration passes,
     * so the bridge gets this pass's function addresses every time. */
    swiftws_bridge_init(&swiftws_host_services);
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        log_connection_capacity(s);
    }
    status = load_all_handlers(pconf, s);
    if (status != OK) {
        return status;
    }
    swiftws_trap_report_post_config(pconf);
    error = swiftws_trap_limit_configure(pconf, s);
    if (error) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "%s", error);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* This child is going away gracefully: a graceful restart or graceful-stop,
 * MaxConnectionsPerChild, or the MPM wanting fewer processes. Its
 * WebSockets would otherwise keep it alive for as long as their clients
 * stay (a "G" slot that never ends), so each closes with 1001 Going Away
 * and its client reconnects to a process that stays. An ungraceful stop
 * gets no 1001: the event MPM shuts the connections' sockets as it stops (a
 * close frame written then fails, as tried). */
static void child_stopping(apr_pool_t *pchild, int graceful)
{
    if (graceful) {
        swiftws_bridge_child_stopping();
    }
}

/* The threads of a child start with it, never in the parent (httpd forks
 * after configuring): the one that keeps parked connections' deadlines, on
 * an MPM where connections can park, and the brokers' for named groups. */
static void child_init(apr_pool_t *pchild, server_rec *s)
{
    swiftws_server_config *conf = ap_get_module_config(s->module_config, &swiftwebsocket_module);
    swiftws_dir_config *defaults = ap_get_module_config(s->lookup_defaults, &swiftwebsocket_module);
    int can_waitio = 0, max_children = 1;
    swiftws_trap_report_child_init(pchild, s);
    if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can_waitio) == APR_SUCCESS && can_waitio) {
        swiftws_bridge_child_init();
    }
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &max_children);
    if (conf->brokers) {
        swiftws_brokers_start(pchild, s, conf->brokers,
                              conf->broker_prefix ? conf->broker_prefix : SWIFTWS_DEFAULT_BROKER_PREFIX);
    }
    swiftws_bridge_groups_init(conf->brokers != NULL, defaults->options.max_message_size, max_children);
    swiftws_bridge_memory_init(conf->memory_limit >= 0 ? conf->memory_limit : SWIFTWS_DEFAULT_MEMORY_LIMIT);
    /* A fixed threshold: large message buffers are mapped on their own and
     * go back to the system when freed. glibc's default moves the
     * threshold up to the largest block freed, after which such buffers
     * come from the heap and an attack's peak stays in the RSS. Above the
     * 64 KiB buffers a connection keeps, and zlib's states, so that 10,000
     * connections do not each hold mappings of their own. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

static int is_upgrade_to_websocket(request_rec *r)
{
    const char *upgrade = apr_table_get(r->headers_in, "Upgrade");
    return upgrade && ap_find_list_item(r->pool, upgrade, "websocket");
}

static int header_parser(request_rec *r)
{
    swiftws_server_config *conf;
    void *handler_type;
    if (r->main || !is_upgrade_to_websocket(r)) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->server->module_config, &swiftwebsocket_module);
    if (!conf->handlers) {
        return DECLINED;
    }
    handler_type = apr_hash_get(conf->handlers, r->uri, APR_HASH_KEY_STRING);
    if (!handler_type) {
        return DECLINED;
    }
    ap_set_module_config(r->request_config, &swiftwebsocket_module, handler_type);
    r->handler = "swiftwebsocket";
    return DECLINED;
}

static apr_status_t free_session(void *session)
{
    swiftws_session_free(session);
    return APR_SUCCESS;
}

/* Copies one header as its own line: merging would join two Set-Cookie
 * headers into one. */
static int websocket_handler(request_rec *r)
{
    void *handler_type = ap_get_module_config(r->request_config, &swiftwebsocket_module);
    swiftws_dir_config *conf;
    swiftws_io *io;
    const char *key = NULL;
    const char *origin;
    void *session;
    int status;
    int parking;
    int trap_slot;
    char handler_name[200];
    apr_pool_t *session_pool;
    swiftws_connection_record *record;
    swiftws_request *request;

    if (!handler_type) {
        return DECLINED;
    }
    status = swiftws_validate_handshake(r, &key);
    if (status != OK) {
        return status;
    }
    conf = ap_get_module_config(r->per_dir_config, &swiftwebsocket_module);
    origin = apr_table_get(r->headers_in, "Origin");
    if (!swiftws_origin_allowed(conf, origin)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "refusing WebSocket handshake: Origin %s is not "
                      "in SwiftWebSocketAllowedOrigins", origin ? origin : "(none)");
        return HTTP_FORBIDDEN;
    }

    swiftws_handler_name(handler_type, handler_name, sizeof(handler_name));
    trap_slot = swiftws_trap_limit_slot(handler_type);
    status = swiftws_trap_limit_check(r, trap_slot, handler_name);
    if (status != OK) {
        return status;
    }

    /* A parked session outlives the request: it lives in the connection's pool. */
    parking = swiftws_handler_can_park(handler_type) && swiftws_can_park(r->connection);
    session_pool = parking ? r->connection->pool : r->pool;
    io = swiftws_io_create(r, session_pool);
    io->trap_label = swiftws_trap_label_make(r, session_pool, handler_name, trap_slot);
    /* Before the session, so that its cleanup runs after the session's. */
    record = swiftws_connection_record_create(r, session_pool);
    io->traffic = &record->traffic;
    request = swiftws_describe_request(r, conf);
    request->traffic = io->traffic;
    session = swiftws_session_open(handler_type, request, io, parking, &status);
    if (!session) {
        r->err_headers_out = apr_table_overlay(r->pool, r->err_headers_out, io->response_headers);
        return status;
    }
    apr_pool_cleanup_register(session_pool, session, free_session, apr_pool_cleanup_null);

    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->headers_out = apr_table_overlay(r->pool, r->headers_out, io->response_headers);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", swiftws_accept_value(r->pool, key));
    ap_send_interim_response(r, 1);
    swiftws_switch_to_connection_filters(r);
    swiftws_connection_opened(record, r, parking);

    swiftws_io_start(io, conf->options.write_timeout_ms);
    if (parking) {
        return swiftws_park(r, io, session);
    }
    swiftws_session_run_blocking(session);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "WebSocket closed");
    /* Never an HTTP status after the 101: the stream is WebSocket now. */
    return DONE;
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    /* First: a WebSocket request is ours whatever r->handler says by now. */
    ap_hook_handler(websocket_handler, NULL, NULL, APR_HOOK_FIRST);
    swiftws_parking_register_hooks();
    swiftws_status_register_hooks();
    swiftws_connection_log_register_hooks();
}

AP_DECLARE_MODULE(swiftwebsocket) = {
    STANDARD20_MODULE_STUFF,
    swiftws_create_dir_config,
    swiftws_merge_dir_config,
    swiftws_create_server_config,
    swiftws_merge_server_config,
    swiftws_commands,
    register_hooks
};
