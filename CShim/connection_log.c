#include "connection_log.h"
#include "configuration.h"
#include "json.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "apr_file_io.h"
#include "apr_strings.h"
#include "apr_time.h"

APLOG_USE_MODULE(swiftwebsocket);
extern module AP_MODULE_DECLARE_DATA swiftwebsocket_module;

/* Opened in the parent, inherited by the children; NULL: no log. */
static apr_file_t *log_file;

/* Like httpd's own logs: in the parent, where the log may be root's, on
 * each real configuration pass (the first, a check, opens nothing). */
static int open_connection_log(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    swiftws_server_config *conf = ap_get_module_config(s->module_config, &swiftwebsocket_module);
    const char *name = conf->connection_log;
    log_file = NULL;
    if (!name || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (*name == '|') {
        piped_log *pipe = ap_open_piped_log(pconf, name + 1);
        if (!pipe) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "SwiftWebSocketConnectionLog: cannot start %s", name + 1);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        log_file = ap_piped_log_write_fd(pipe);
    }
    else {
        const char *path = ap_server_root_relative(pconf, name);
        apr_status_t rv = path ? apr_file_open(&log_file, path, APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                                               APR_OS_DEFAULT, pconf)
                               : APR_EBADPATH;
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "SwiftWebSocketConnectionLog: cannot open %s", name);
            log_file = NULL;
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* Why the connection ended, from whoever closed first and with what: the
 * drivers' own closes carry these reasons. */
static const char *why_it_ended(const swiftws_traffic *t)
{
    static const struct { int code; const char *reason, *why; } server_closes[] = {
        {1008, "too slow", "slow reader"},
        {1001, "idle timeout", "idle timeout"},
        {1011, "keepalive ping timeout", "ping timeout"},
        {1001, "server stopping", "server stopping"},
        {1001, "timeout", "httpd Timeout"},
    };
    size_t i;
    if (!t->server_closed_first) {
        return t->close_received_code >= 0 ? "client close" : "connection lost";
    }
    for (i = 0; i < sizeof(server_closes) / sizeof(server_closes[0]); i++) {
        if (t->close_sent_code == server_closes[i].code && strcmp(t->close_sent_reason, server_closes[i].reason) == 0) {
            return server_closes[i].why;
        }
    }
    switch (t->close_sent_code) {
    case 1002: case 1003: case 1007: case 1009:
        return "protocol violation";
    case 1011:
        return "server error";
    default:
        return "server close";
    }
}

static const char *close_json(apr_pool_t *p, int code, const char *reason)
{
    if (code < 0) {
        return "null";
    }
    return apr_psprintf(p, "{\"code\":%d,\"reason\":%s}", code, swiftws_json_string(p, reason));
}

void swiftws_connection_log_write(const swiftws_connection_record *record)
{
    const swiftws_traffic *t = &record->traffic;
    apr_pool_t *p;
    apr_time_t now = apr_time_now();
    apr_time_exp_t gmt;
    char *line;
    apr_size_t length;
    if (!log_file) {
        return;
    }
    /* Its own pool: the connection's may be in its cleanups. */
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return;
    }
    apr_time_exp_gmt(&gmt, now);
    line = apr_psprintf(p,
        "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"resource\":%s,\"client\":%s,\"user\":%s,"
        "\"protocol\":\"%s\",\"tls\":%s,\"parked\":%s,\"duration\":%.3f,"
        "\"messages_in\":%" APR_UINT64_T_FMT ",\"messages_out\":%" APR_UINT64_T_FMT ","
        "\"bytes_in\":%" APR_UINT64_T_FMT ",\"bytes_out\":%" APR_UINT64_T_FMT ","
        "\"close_sent\":%s,\"close_received\":%s,\"ended\":\"%s\"}\n",
        gmt.tm_year + 1900, gmt.tm_mon + 1, gmt.tm_mday, gmt.tm_hour, gmt.tm_min, gmt.tm_sec, gmt.tm_usec / 1000,
        swiftws_json_string(p, record->resource), swiftws_json_string(p, record->client),
        swiftws_json_string(p, record->user), record->http2 ? "h2" : "http/1.1", record->tls ? "true" : "false",
        record->parked ? "true" : "false", (double)(now - record->opened) / APR_USEC_PER_SEC,
        t->messages_in, t->messages_out, t->bytes_in, t->bytes_out,
        close_json(p, t->close_sent_code, t->close_sent_reason),
        close_json(p, t->close_received_code, t->close_received_reason), why_it_ended(t));
    length = strlen(line);
    /* One write(2): lines of different children never interleave (pipes
     * keep writes under PIPE_BUF whole; O_APPEND files any). */
    apr_file_write(log_file, line, &length);
    apr_pool_destroy(p);
}

void swiftws_connection_log_register_hooks(void)
{
    ap_hook_open_logs(open_connection_log, NULL, NULL, APR_HOOK_MIDDLE);
}
