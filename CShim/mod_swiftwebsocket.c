/*
 * mod_swiftwebsocket: serves WebSocket endpoints (RFC 6455) from Swift
 * handlers. This file is the whole Apache side: module record, directives,
 * hooks, the opening handshake, and filter I/O for the Swift bridge. The
 * protocol engine and the handler API are Swift (Sources/), reached through
 * CShim/include/swiftwebsocket.h.
 *
 * Request flow:
 *   header_parser  claims an `Upgrade: websocket` request whose path names a
 *                  loaded handler (kept in the request config: later phases
 *                  may rewrite r->handler);
 *   access phases  run as for any request (Require, AuthType, SSL*);
 *   handler        validates the handshake, runs the handler's extra
 *                  handshake, sends the 101 and drives the connection.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "apr_base64.h"
#include "apr_sha1.h"
#include "apr_strings.h"

#include "handler_registry.h"
#include "swiftwebsocket.h"

#include <errno.h>

module AP_MODULE_DECLARE_DATA swiftwebsocket_module;

#define WEBSOCKET_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* 16 random bytes in base64: 22 characters and "==". */
#define WEBSOCKET_KEY_LENGTH 24

/* ---- Configuration ---- */

/* Numbers are -1 while unset: the engine's documented default applies. */
typedef struct {
    const char *handler_root;        /* canonical path, NULL when unset */
    apr_hash_t *handlers;            /* resource -> swiftws_handler_entry */
    apr_int64_t max_message_size;    /* bytes */
    int deflate_enabled;
    int deflate_window_bits;
    int deflate_memory_level;
    int deflate_compression_level;
    apr_int64_t deflate_minimum_size;
} swiftws_server_config;

static void *create_server_config(apr_pool_t *p, server_rec *s)
{
    swiftws_server_config *conf = apr_pcalloc(p, sizeof(*conf));
    conf->max_message_size = -1;
    conf->deflate_enabled = -1;
    conf->deflate_window_bits = -1;
    conf->deflate_memory_level = -1;
    conf->deflate_compression_level = -1;
    conf->deflate_minimum_size = -1;
    return conf;
}

#define MERGE_NUMBER(field) conf->field = vhost->field >= 0 ? vhost->field : base->field

static void *merge_server_config(apr_pool_t *p, void *base_, void *vhost_)
{
    swiftws_server_config *base = base_, *vhost = vhost_;
    swiftws_server_config *conf = apr_pcalloc(p, sizeof(*conf));
    conf->handler_root = vhost->handler_root ? vhost->handler_root : base->handler_root;
    MERGE_NUMBER(max_message_size);
    MERGE_NUMBER(deflate_enabled);
    MERGE_NUMBER(deflate_window_bits);
    MERGE_NUMBER(deflate_memory_level);
    MERGE_NUMBER(deflate_compression_level);
    MERGE_NUMBER(deflate_minimum_size);
    return conf;
}

static const char *set_handler_root(cmd_parms *cmd, void *dummy, const char *arg)
{
    swiftws_server_config *conf =
        ap_get_module_config(cmd->server->module_config, &swiftwebsocket_module);
    const char *canonical = NULL;
    const char *error = swiftws_canonical_directory(cmd->pool, ap_server_root_relative(cmd->pool, arg),
                                                    &canonical);
    if (error) {
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, arg, error);
    }
    conf->handler_root = canonical;
    return NULL;
}

/* A numeric directive: where it is stored and the values it accepts. */
typedef struct {
    size_t offset;
    apr_int64_t min, max;
    int is_int64;
} number_directive;

static const char *set_number(cmd_parms *cmd, void *dummy, const char *arg)
{
    const number_directive *spec = cmd->info;
    char *conf = ap_get_module_config(cmd->server->module_config, &swiftwebsocket_module);
    char *end = NULL;
    apr_int64_t value;
    errno = 0;
    value = apr_strtoi64(arg, &end, 10);
    if (end == arg || *end != '\0' || errno == ERANGE || value < spec->min || value > spec->max) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a whole number from %" APR_INT64_T_FMT
                            " to %" APR_INT64_T_FMT, cmd->cmd->name, arg, spec->min, spec->max);
    }
    if (spec->is_int64) {
        *(apr_int64_t *)(conf + spec->offset) = value;
    }
    else {
        *(int *)(conf + spec->offset) = (int)value;
    }
    return NULL;
}

static const char *set_deflate(cmd_parms *cmd, void *dummy, int on)
{
    swiftws_server_config *conf =
        ap_get_module_config(cmd->server->module_config, &swiftwebsocket_module);
    conf->deflate_enabled = on;
    return NULL;
}

#define BYTES(field, min) \
    { APR_OFFSETOF(swiftws_server_config, field), min, APR_INT64_MAX, 1 }
#define RANGE(field, min, max) { APR_OFFSETOF(swiftws_server_config, field), min, max, 0 }

static const number_directive max_message_size = BYTES(max_message_size, 1);
static const number_directive deflate_window_bits = RANGE(deflate_window_bits, 9, 15);
static const number_directive deflate_memory_level = RANGE(deflate_memory_level, 1, 9);
static const number_directive deflate_compression_level = RANGE(deflate_compression_level, 0, 9);
static const number_directive deflate_minimum_size = BYTES(deflate_minimum_size, 0);

/* Defaults are the engine's (Limits.swift, PerMessageDeflate.swift). */
static const command_rec swiftws_commands[] = {
    AP_INIT_TAKE1("SwiftWebSocketHandlerRoot", set_handler_root, NULL, RSRC_CONF,
                  "Directory whose <resource>_wsh.so files serve WebSocket requests"),
    AP_INIT_TAKE1("SwiftWebSocketMaxMessageSize", set_number, (void *)&max_message_size, RSRC_CONF,
                  "Largest message accepted, in bytes (default 16777216); larger ones close with 1009"),
    AP_INIT_FLAG("SwiftWebSocketDeflate", set_deflate, NULL, RSRC_CONF,
                 "Negotiate permessage-deflate (RFC 7692) when clients offer it (default On)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateWindowBits", set_number, (void *)&deflate_window_bits, RSRC_CONF,
                  "LZ77 window for permessage-deflate, 9-15, both directions where the client allows "
                  "(default 12)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateMemLevel", set_number, (void *)&deflate_memory_level, RSRC_CONF,
                  "zlib memLevel for compressing, 1-9 (default 5)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateCompressionLevel", set_number,
                  (void *)&deflate_compression_level, RSRC_CONF,
                  "zlib compression level, 0-9 (default 6)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateMinSize", set_number, (void *)&deflate_minimum_size, RSRC_CONF,
                  "Messages shorter than this many bytes are sent uncompressed (default 64)"),
    {NULL}
};

/* Scans every server's handler root and loads its handlers. Runs in the
 * parent at startup and on each graceful restart, and for configtest. */
static int load_all_handlers(apr_pool_t *pconf, server_rec *main_server)
{
    server_rec *s;
    for (s = main_server; s; s = s->next) {
        swiftws_server_config *conf =
            ap_get_module_config(s->module_config, &swiftwebsocket_module);
        if (!conf->handler_root) {
            continue;
        }
        conf->handlers = swiftws_load_handlers(pconf, s, conf->handler_root);
    }
    return OK;
}

static void test_config(apr_pool_t *pconf, server_rec *s)
{
    load_all_handlers(pconf, s);
}

/* ---- Host services for the Swift bridge ---- */

/* Per-connection state the bridge calls back with. */
typedef struct {
    request_rec *r;
    conn_rec *c;
    apr_bucket_brigade *in;
    apr_bucket_brigade *out;
    apr_table_t *response_headers;  /* collected during the extra handshake */
    int input_seen;                 /* any input bucket read yet */
} swiftws_io;

/* Blocking read through the connection's input filters. Input the caller
 * has no room for stays in io->in for the next call. */
static long host_read(void *io_, void *buffer, size_t length)
{
    swiftws_io *io = io_;
    for (;;) {
        apr_size_t copied = 0;
        if (APR_BRIGADE_EMPTY(io->in)) {
            apr_status_t rv = ap_get_brigade(io->c->input_filters, io->in, AP_MODE_READBYTES,
                                             APR_BLOCK_READ, length);
            if (rv == APR_EOF) {
                apr_brigade_cleanup(io->in);
                return 0;
            }
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(io->in);
                if (APR_STATUS_IS_TIMEUP(rv)) {
                    ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, io->r,
                                  "no data from the WebSocket client within Timeout");
                    return SWIFTWS_READ_TIMEOUT;
                }
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, io->r,
                              "reading from the WebSocket client failed");
                return SWIFTWS_READ_ERROR;
            }
        }
        while (!APR_BRIGADE_EMPTY(io->in) && copied < length) {
            apr_bucket *b = APR_BRIGADE_FIRST(io->in);
            if (APR_BUCKET_IS_EOS(b)) {
                /* mod_http2 opens an upgraded stream with one EOS: skip it. */
                if (io->c->master && !io->input_seen) {
                    io->input_seen = 1;
                    apr_bucket_delete(b);
                    continue;
                }
                if (copied > 0) {
                    return (long)copied;  /* the end comes with the next read */
                }
                apr_brigade_cleanup(io->in);
                return 0;
            }
            if (!APR_BUCKET_IS_METADATA(b)) {
                const char *data;
                apr_size_t n;
                apr_status_t rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
                if (rv != APR_SUCCESS) {
                    apr_brigade_cleanup(io->in);
                    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, io->r, "reading a bucket failed");
                    return SWIFTWS_READ_ERROR;
                }
                if (n > length - copied) {
                    n = length - copied;
                    apr_bucket_split(b, n);  /* the rest waits in io->in */
                }
                memcpy((char *)buffer + copied, data, n);
                copied += n;
                io->input_seen = 1;
            }
            apr_bucket_delete(b);
        }
        if (copied > 0) {
            return (long)copied;
        }
    }
}

static int host_write(void *io_, const void *first, size_t first_length,
                      const void *second, size_t second_length)
{
    swiftws_io *io = io_;
    apr_bucket_alloc_t *ba = io->c->bucket_alloc;
    apr_status_t rv;
    /* Transient buckets: the core output filter writes them out before
     * ap_pass_brigade returns (the FLUSH asks it to), copying only what it
     * cannot write at once. */
    if (first_length) {
        APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_transient_create(first, first_length, ba));
    }
    if (second_length) {
        APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_transient_create(second, second_length, ba));
    }
    APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_flush_create(ba));
    rv = ap_pass_brigade(io->c->output_filters, io->out);
    apr_brigade_cleanup(io->out);
    if (rv != APR_SUCCESS || io->c->aborted) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, io->r, "writing to the WebSocket client failed");
        return -1;
    }
    return 0;
}

static void host_log(void *io_, int level, const char *message)
{
    swiftws_io *io = io_;
    ap_log_rerror(APLOG_MARK, level, 0, io->r, "%s", message);
}

static void host_add_response_header(void *io_, const char *name, const char *value)
{
    swiftws_io *io = io_;
    apr_table_add(io->response_headers, name, value);
}

static const swiftws_host host_services = {
    host_read, host_write, host_log, host_add_response_header
};

/* ---- Hooks ---- */

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    /* httpd unloads and reloads this module between configuration passes,
     * so the bridge gets this pass's function addresses every time. */
    swiftws_bridge_init(&host_services);
    return load_all_handlers(pconf, s);
}

static int is_upgrade_to_websocket(request_rec *r)
{
    const char *upgrade = apr_table_get(r->headers_in, "Upgrade");
    return upgrade && ap_find_list_item(r->pool, upgrade, "websocket");
}

static int header_parser(request_rec *r)
{
    swiftws_server_config *conf;
    const swiftws_handler_entry *entry;
    if (r->main || !is_upgrade_to_websocket(r)) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->server->module_config, &swiftwebsocket_module);
    if (!conf->handlers) {
        return DECLINED;
    }
    entry = apr_hash_get(conf->handlers, r->uri, APR_HASH_KEY_STRING);
    if (!entry) {
        return DECLINED;
    }
    ap_set_module_config(r->request_config, &swiftwebsocket_module, (void *)entry);
    r->handler = "swiftwebsocket";
    return DECLINED;
}

/* A base64 encoding of 16 bytes: 22 alphabet characters, the last carrying
 * only 2 bits, then "==". apr_base64_decode stops quietly at the first
 * character outside the alphabet, so the characters are checked here. */
static int is_websocket_key(const char *key)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int i;
    if (!key || strlen(key) != WEBSOCKET_KEY_LENGTH || strcmp(key + 22, "==") != 0) {
        return 0;
    }
    for (i = 0; i < 22; i++) {
        if (!strchr(alphabet, key[i]) || key[i] == '\0') {
            return 0;
        }
    }
    /* The 22nd character's low 4 bits would be a 17th byte. */
    return (strchr(alphabet, key[21]) - alphabet) % 16 == 0;
}

/* Checks the opening handshake (RFC 6455 4.2.1). Returns OK or the HTTP
 * status to refuse with; *key is the client's key on success. */
static int validate_handshake(request_rec *r, const char **key)
{
    const char *connection = apr_table_get(r->headers_in, "Connection");
    const char *version = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    const char *k = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    const char *why = NULL;

    if (r->method_number != M_GET || r->header_only) {  /* M_GET covers HEAD */
        why = "method is not GET";
    }
    else if (r->proto_num < HTTP_VERSION(1, 1)) {
        why = "protocol is older than HTTP/1.1";
    }
    else if (!connection || !ap_find_list_item(r->pool, connection, "upgrade")) {
        why = "Connection header lacks the upgrade token";
    }
    else if (!is_websocket_key(k)) {
        /* A repeated header arrives merged with ", " and fails here too. */
        why = "Sec-WebSocket-Key is missing or not 16 bytes in base64";
    }
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "refusing WebSocket handshake: %s", why);
        return HTTP_BAD_REQUEST;
    }
    if (!version || strcmp(version, "13") != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "refusing WebSocket handshake: unsupported Sec-WebSocket-Version %s",
                      version ? version : "(none)");
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return HTTP_UPGRADE_REQUIRED;
    }
    *key = k;
    return OK;
}

static const char *accept_value(apr_pool_t *p, const char *key)
{
    apr_sha1_ctx_t sha1;
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    char *encoded = apr_palloc(p, apr_base64_encode_len(APR_SHA1_DIGESTSIZE));
    apr_sha1_init(&sha1);
    apr_sha1_update(&sha1, key, strlen(key));
    apr_sha1_update(&sha1, WEBSOCKET_GUID, strlen(WEBSOCKET_GUID));
    apr_sha1_final(digest, &sha1);
    apr_base64_encode_binary(encoded, digest, APR_SHA1_DIGESTSIZE);
    return encoded;
}

static swiftws_request *describe_request(request_rec *r, const swiftws_server_config *conf)
{
    swiftws_request *request = apr_pcalloc(r->pool, sizeof(*request));
    const apr_array_header_t *fields = apr_table_elts(r->headers_in);
    const apr_table_entry_t *entries = (const apr_table_entry_t *)fields->elts;
    swiftws_header *headers = apr_pcalloc(r->pool, sizeof(*headers) * (fields->nelts + 1));
    int i;
    for (i = 0; i < fields->nelts; i++) {
        headers[i].name = entries[i].key;
        headers[i].value = entries[i].val ? entries[i].val : "";
    }
    request->resource = r->uri;
    request->query = r->args;
    request->headers = headers;
    request->header_count = (size_t)fields->nelts;
    request->remote_address = r->useragent_ip;
    request->user = r->user;
    request->is_secure = ap_ssl_conn_is_ssl(r->connection);
    request->max_message_size = conf->max_message_size;
    request->deflate_enabled = conf->deflate_enabled;
    request->deflate_window_bits = conf->deflate_window_bits;
    request->deflate_memory_level = conf->deflate_memory_level;
    request->deflate_compression_level = conf->deflate_compression_level;
    request->deflate_minimum_size = conf->deflate_minimum_size;
    return request;
}

static apr_status_t free_session(void *session)
{
    swiftws_session_free(session);
    return APR_SUCCESS;
}

/* Hands the connection over from HTTP to WebSocket framing, as mod_proxy
 * does for its tunnels (proxy_util.c, ap_proxy_tunnel_create). */
static void switch_to_connection_filters(request_rec *r)
{
    conn_rec *c = r->connection;
    /* reqtimeout would drop a WebSocket idle for its header/body timeout;
     * the coalescing filter would hold back small frames. */
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    ap_remove_output_filter_byhandle(c->output_filters, "SSL/TLS Coalescing Filter");
    /* The EOS Apache sends when the handler returns then meets only
     * connection filters: no second HTTP header block on the stream. */
    r->input_filters = r->proto_input_filters = c->input_filters;
    r->output_filters = r->proto_output_filters = c->output_filters;
    c->keepalive = AP_CONN_CLOSE;
}

static int websocket_handler(request_rec *r)
{
    const swiftws_handler_entry *entry =
        ap_get_module_config(r->request_config, &swiftwebsocket_module);
    swiftws_server_config *conf;
    swiftws_io *io;
    const char *key = NULL;
    const char *subprotocol = NULL;
    void *session;
    int status;

    if (!entry) {
        return DECLINED;
    }
    status = validate_handshake(r, &key);
    if (status != OK) {
        return status;
    }

    conf = ap_get_module_config(r->server->module_config, &swiftwebsocket_module);
    io = apr_pcalloc(r->pool, sizeof(*io));
    io->r = r;
    io->c = r->connection;
    io->response_headers = apr_table_make(r->pool, 4);

    session = swiftws_session_open(entry->handler_type, describe_request(r, conf), io,
                                   &status, &subprotocol);
    if (!session) {
        apr_table_overlap(r->err_headers_out, io->response_headers, APR_OVERLAP_TABLES_MERGE);
        return status;
    }
    apr_pool_cleanup_register(r->pool, session, free_session, apr_pool_cleanup_null);

    r->status = HTTP_SWITCHING_PROTOCOLS;
    apr_table_overlap(r->headers_out, io->response_headers, APR_OVERLAP_TABLES_MERGE);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", accept_value(r->pool, key));
    if (subprotocol) {
        apr_table_set(r->headers_out, "Sec-WebSocket-Protocol", subprotocol);
    }
    ap_send_interim_response(r, 1);
    switch_to_connection_filters(r);

    io->in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    io->out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    swiftws_session_run_blocking(session);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "WebSocket closed");
    /* Never an HTTP status after the 101: the stream is WebSocket now. */
    return DONE;
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    /* First: a WebSocket request is ours whatever r->handler says by now. */
    ap_hook_handler(websocket_handler, NULL, NULL, APR_HOOK_FIRST);
}

AP_DECLARE_MODULE(swiftwebsocket) = {
    STANDARD20_MODULE_STUFF,
    NULL,                  /* per-directory config */
    NULL,                  /* merge per-directory config */
    create_server_config,
    merge_server_config,
    swiftws_commands,
    register_hooks
};
