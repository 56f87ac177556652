#include "handshake.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "apr_base64.h"
#include "apr_sha1.h"
#include "apr_strings.h"

APLOG_USE_MODULE(swiftwebsocket);

#define WEBSOCKET_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* 16 random bytes in base64: 22 characters and "==". */
#define WEBSOCKET_KEY_LENGTH 24

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
        if (!strchr(alphabet, key[i])) {
            return 0;
        }
    }
    /* The 22nd character's low 4 bits would be a 17th byte. */
    return (strchr(alphabet, key[21]) - alphabet) % 16 == 0;
}

int swiftws_validate_handshake(request_rec *r, const char **key)
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
    else if (!r->connection->master && ap_request_has_body(r)) {
        /* Its bytes would follow the 101 and be read as the client's first
         * frames. (An HTTP/2 stream's data is its WebSocket: mod_http2
         * describes it as a body.) */
        why = "the request has a body";
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

const char *swiftws_accept_value(apr_pool_t *p, const char *key)
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

/* mod_ssl's variables a handler may judge a connection by. */
static const char *const tls_variable_names[] = {
    "SSL_PROTOCOL", "SSL_CIPHER", "SSL_CIPHER_USEKEYSIZE", "SSL_SESSION_RESUMED", "SSL_TLS_SNI",
    "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN", "SSL_CLIENT_S_DN_CN", "SSL_CLIENT_I_DN",
    "SSL_CLIENT_M_SERIAL", "SSL_CLIENT_V_START", "SSL_CLIENT_V_END", "SSL_CLIENT_SAN_Email_0",
    "SSL_CLIENT_SAN_DNS_0", "SSL_CLIENT_CERT", "SSL_SERVER_S_DN",
};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static void describe_tls(request_rec *r, swiftws_request *request)
{
    swiftws_header *variables = apr_pcalloc(r->pool, sizeof(*variables) * COUNT(tls_variable_names));
    size_t i, count = 0;
    for (i = 0; i < COUNT(tls_variable_names); i++) {
        const char *value = ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                                              tls_variable_names[i]);
        if (value && *value) {
            variables[count].name = tls_variable_names[i];
            variables[count].value = value;
            count++;
        }
    }
    request->tls_variables = variables;
    request->tls_variable_count = count;
}

swiftws_request *swiftws_describe_request(request_rec *r, const swiftws_dir_config *conf)
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
    if (request->is_secure) {
        describe_tls(r, request);
    }
    request->options = conf->options;
    return request;
}

/* Hands the connection over from HTTP to WebSocket framing, as mod_proxy
 * does for its tunnels (proxy_util.c, ap_proxy_tunnel_create). */
void swiftws_switch_to_connection_filters(request_rec *r)
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

