#include "configuration.h"

#include "apr_lib.h"
#include "apr_strings.h"

#include <errno.h>

#include "broker.h"
#include "handler_registry.h"
#include "trap_limit.h"

extern module AP_MODULE_DECLARE_DATA swiftwebsocket_module;

void *swiftws_create_server_config(apr_pool_t *p, server_rec *s)
{
    swiftws_server_config *conf = apr_pcalloc(p, sizeof(*conf));
    conf->allow_outside_root = -1;
    conf->memory_limit = -1;
    return conf;
}

void *swiftws_merge_server_config(apr_pool_t *p, void *base_, void *vhost_)
{
    swiftws_server_config *base = base_, *vhost = vhost_;
    swiftws_server_config *conf = apr_pcalloc(p, sizeof(*conf));
    conf->handler_root = vhost->handler_root ? vhost->handler_root : base->handler_root;
    conf->scan_directory = vhost->scan_directory ? vhost->scan_directory : base->scan_directory;
    conf->map_file = vhost->map_file ? vhost->map_file : base->map_file;
    conf->allow_outside_root = vhost->allow_outside_root >= 0 ? vhost->allow_outside_root
                                                              : base->allow_outside_root;
    return conf;
}

void *swiftws_create_dir_config(apr_pool_t *p, char *dir)
{
    swiftws_dir_config *conf = apr_pcalloc(p, sizeof(*conf));
#define UNSET(name) conf->options.name = -1;
    SWIFTWS_CONNECTION_OPTIONS(UNSET)
#undef UNSET
    return conf;
}

void *swiftws_merge_dir_config(apr_pool_t *p, void *base_, void *child_)
{
    swiftws_dir_config *base = base_, *child = child_;
    swiftws_dir_config *conf = apr_pcalloc(p, sizeof(*conf));
#define MERGE(name) \
    conf->options.name = child->options.name >= 0 ? child->options.name : base->options.name;
    SWIFTWS_CONNECTION_OPTIONS(MERGE)
#undef MERGE
    conf->allowed_origins = child->allowed_origins ? child->allowed_origins : base->allowed_origins;
    return conf;
}

int swiftws_origin_allowed(const swiftws_dir_config *conf, const char *origin)
{
    int i;
    if (!conf->allowed_origins) {
        return 1;
    }
    for (i = 0; i < conf->allowed_origins->nelts; i++) {
        const char *allowed = APR_ARRAY_IDX(conf->allowed_origins, i, const char *);
        if (strcmp(allowed, "*") == 0
            || (!origin && strcmp(allowed, "none") == 0)
            || (origin && ap_cstr_casecmp(allowed, origin) == 0)) {
            return 1;
        }
    }
    return 0;
}

static swiftws_server_config *server_config(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &swiftwebsocket_module);
}

/* ---- Where handlers come from (server, virtual host) ---- */

static const char *set_handler_root(cmd_parms *cmd, void *dummy, const char *arg)
{
    swiftws_server_config *conf = server_config(cmd);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const char *error = path ? swiftws_canonical_directory(cmd->pool, path, &conf->handler_root)
                             : "not a valid path";
    return error ? apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, arg, error) : NULL;
}

/* Checked against the (merged) handler root when handlers load. */
static const char *set_scan_directory(cmd_parms *cmd, void *dummy, const char *arg)
{
    server_config(cmd)->scan_directory = arg;
    return NULL;
}

static const char *set_map_file(cmd_parms *cmd, void *dummy, const char *arg)
{
    swiftws_server_config *conf = server_config(cmd);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t finfo;
    if (!path || apr_stat(&finfo, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS || finfo.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s %s: not a readable file", cmd->cmd->name, arg);
    }
    conf->map_file = path;
    return NULL;
}

static const char *set_allow_outside_root(cmd_parms *cmd, void *dummy, int on)
{
    server_config(cmd)->allow_outside_root = on;
    return NULL;
}

/* ---- Named groups across processes (main server only: one set of broker
 * connections per child) ---- */

static const char *set_brokers(cmd_parms *cmd, void *dummy, int argc, char *const argv[])
{
    swiftws_server_config *conf = server_config(cmd);
    const char *error = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int i;
    if (error) {
        return error;
    }
    if (argc == 0) {
        return apr_psprintf(cmd->pool, "%s needs at least one redis:// or unix: URL", cmd->cmd->name);
    }
    conf->brokers = apr_array_make(cmd->pool, argc, sizeof(swiftws_broker_address));
    for (i = 0; i < argc; i++) {
        swiftws_broker_address *address = apr_array_push(conf->brokers);
        error = swiftws_parse_broker_url(cmd->pool, argv[i], address);
        if (error) {
            return apr_psprintf(cmd->pool, "%s: \"%s\" %s", cmd->cmd->name, argv[i], error);
        }
    }
    return NULL;
}

static const char *set_broker_prefix(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *error = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *c;
    if (error) {
        return error;
    }
    for (c = arg; *c; c++) {
        if (apr_isspace(*c) || apr_iscntrl(*c)) {
            return apr_psprintf(cmd->pool, "%s: \"%s\" has a space or control character", cmd->cmd->name, arg);
        }
    }
    server_config(cmd)->broker_prefix = arg;
    return NULL;
}

/* A size in bytes, or with K, M or G (binary: 256M is 256 MiB). */
static const char *set_memory_limit(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *error = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end = NULL;
    apr_int64_t value;
    int shift = 0;
    if (error) {
        return error;
    }
    errno = 0;
    value = apr_strtoi64(arg, &end, 10);
    if (end != arg && *end && !end[1]) {
        switch (apr_toupper(*end)) {
        case 'K': shift = 10; end++; break;
        case 'M': shift = 20; end++; break;
        case 'G': shift = 30; end++; break;
        }
    }
    if (end == arg || *end != '\0' || errno == ERANGE || value < 0 || value > (APR_INT64_MAX >> shift)) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a size in bytes (or with K, M or G); 0 for no limit",
                            cmd->cmd->name, arg);
    }
    server_config(cmd)->memory_limit = value << shift;
    return NULL;
}

static const char *set_connection_log(cmd_parms *cmd, void *dir, const char *arg)
{
    const char *error = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (error) {
        return error;
    }
    server_config(cmd)->connection_log = arg;
    return NULL;
}

/* ---- How connections behave (server, virtual host, directory) ---- */

/* A numeric directive: which option it sets and the values it accepts. */
typedef struct {
    size_t offset;
    apr_int64_t min, max;
} number_directive;

static apr_int64_t *option(void *dir_config, const number_directive *spec)
{
    return (apr_int64_t *)((char *)dir_config + spec->offset);
}

static const char *set_number(cmd_parms *cmd, void *dir_config, const char *arg)
{
    const number_directive *spec = cmd->info;
    char *end = NULL;
    apr_int64_t value;
    errno = 0;
    value = apr_strtoi64(arg, &end, 10);
    if (end == arg || *end != '\0' || errno == ERANGE || value < spec->min || value > spec->max) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a whole number from %" APR_INT64_T_FMT
                            " to %" APR_INT64_T_FMT, cmd->cmd->name, arg, spec->min, spec->max);
    }
    *option(dir_config, spec) = value;
    return NULL;
}

/* Digits and at most a unit httpd's own time directives know;
 * ap_timeout_parameter_parse alone looks at the unit's first letter only. */
static int is_time(const char *arg)
{
    const char *unit = arg;
    while (apr_isdigit(*unit)) {
        unit++;
    }
    return unit != arg && (*unit == '\0' || !strcmp(unit, "ms") || !strcmp(unit, "s")
                           || !strcmp(unit, "mi") || !strcmp(unit, "min") || !strcmp(unit, "h"));
}

/* A time in seconds, or with a unit as in httpd's own directives ("500ms",
 * "2min"). cmd->info says whether 0 (off) is allowed. */
static const char *set_duration(cmd_parms *cmd, void *dir_config, const char *arg)
{
    const number_directive *spec = cmd->info;
    apr_interval_time_t duration;
    if (!is_time(arg) || ap_timeout_parameter_parse(arg, &duration, "s") != APR_SUCCESS
        || duration < spec->min * 1000) {
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a time (seconds, or with ms, s, min or h)%s",
                            cmd->cmd->name, arg, spec->min == 0 ? "; 0 turns it off" : " above 0");
    }
    *option(dir_config, spec) = duration / 1000;
    return NULL;
}

static const char *set_deflate(cmd_parms *cmd, void *dir_config, int on)
{
    ((swiftws_dir_config *)dir_config)->options.deflate_enabled = on;
    return NULL;
}

/* An origin as browsers send it: scheme "://" host [":" port], nothing
 * after. */
static int is_origin(const char *value)
{
    const char *host = ap_strstr_c(value, "://");
    return host && host != value && host[3] != '\0' && !ap_strchr_c(host + 3, '/')
           && !ap_strchr_c(value, ' ');
}

static const char *set_allowed_origins(cmd_parms *cmd, void *dir_config, int argc, char *const argv[])
{
    swiftws_dir_config *conf = dir_config;
    int i;
    if (argc == 0) {
        return apr_psprintf(cmd->pool, "%s needs at least one origin", cmd->cmd->name);
    }
    conf->allowed_origins = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "*") != 0 && strcmp(argv[i], "none") != 0 && !is_origin(argv[i])) {
            return apr_psprintf(cmd->pool, "%s: \"%s\" is not an origin (scheme://host[:port], no "
                                "path), \"none\" or \"*\"", cmd->cmd->name, argv[i]);
        }
        APR_ARRAY_PUSH(conf->allowed_origins, const char *) = argv[i];
    }
    return NULL;
}

/* ---- Handlers that trap (main server only: the counts span all children) ---- */

static const char *set_trap_limit(cmd_parms *cmd, void *dummy, const char *count, const char *period)
{
    swiftws_server_config *conf = server_config(cmd);
    const char *error = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end = NULL;
    apr_int64_t traps;
    if (error) {
        return error;
    }
    if (!strcasecmp(count, "off") && !period) {
        conf->trap_limit = -1;
        return NULL;
    }
    traps = apr_strtoi64(count, &end, 10);
    if (end == count || *end || traps < 1 || traps > SWIFTWS_MAX_TRAP_LIMIT || !period || !is_time(period)
        || ap_timeout_parameter_parse(period, &conf->trap_period, "s") != APR_SUCCESS || conf->trap_period <= 0) {
        return apr_psprintf(cmd->pool, "%s: expected \"off\", or a count of traps from 1 to %d and a time above 0 "
                            "(seconds, or with ms, s, min or h), as in \"%s 3 10min\"", cmd->cmd->name,
                            SWIFTWS_MAX_TRAP_LIMIT, cmd->cmd->name);
    }
    conf->trap_limit = (int)traps;
    return NULL;
}

/* The options a number sets: counts and sizes, and durations in
 * milliseconds (min 0 where 0 means "off"). */
#define OPTION(field, min, max) { APR_OFFSETOF(swiftws_dir_config, options.field), min, max }
#define AT_LEAST(field, min) OPTION(field, min, APR_INT64_MAX)

static const number_directive max_message_size = AT_LEAST(max_message_size, 1);
static const number_directive max_frame_size = AT_LEAST(max_frame_size, 1);
static const number_directive max_fragments = AT_LEAST(max_fragments, 1);
static const number_directive outbox_size = AT_LEAST(outbox_size, 1);
static const number_directive deflate_window_bits = OPTION(deflate_window_bits, 9, 15);
static const number_directive deflate_memory_level = OPTION(deflate_memory_level, 1, 9);
static const number_directive deflate_compression_level = OPTION(deflate_compression_level, 0, 9);
static const number_directive deflate_minimum_size = AT_LEAST(deflate_minimum_size, 0);
static const number_directive ping_interval = AT_LEAST(ping_interval_ms, 0);
static const number_directive ping_timeout = AT_LEAST(ping_timeout_ms, 1);
static const number_directive idle_timeout = AT_LEAST(idle_timeout_ms, 0);
static const number_directive close_timeout = AT_LEAST(close_timeout_ms, 1);
static const number_directive message_timeout = AT_LEAST(message_timeout_ms, 0);
static const number_directive write_timeout = AT_LEAST(write_timeout_ms, 1);
static const number_directive slow_callback = AT_LEAST(slow_callback_ms, 0);

#define CONNECTION_CONF (RSRC_CONF | ACCESS_CONF)

/* Defaults are the engine's (Limits.swift, Keepalive.swift,
 * PerMessageDeflate.swift), but SwiftWebSocketWriteTimeout's, which is the
 * shim's (connection_io.c). */
const command_rec swiftws_commands[] = {
    AP_INIT_TAKE1("SwiftWebSocketHandlerRoot", set_handler_root, NULL, RSRC_CONF,
                  "Directory whose <resource>_wsh.so files serve WebSocket requests"),
    AP_INIT_TAKE1("SwiftWebSocketHandlerScan", set_scan_directory, NULL, RSRC_CONF,
                  "Only load handlers from this directory inside the handler root, relative to it or "
                  "absolute (default: all of it)"),
    AP_INIT_TAKE1("SwiftWebSocketHandlerMap", set_map_file, NULL, RSRC_CONF,
                  "File of \"alias-path existing-path\" lines: more resource paths for loaded handlers"),
    AP_INIT_FLAG("SwiftWebSocketAllowHandlersOutsideRoot", set_allow_outside_root, NULL, RSRC_CONF,
                 "Load handlers whose canonical path (through symlinks) is outside the root (default Off)"),
    AP_INIT_TAKE_ARGV("SwiftWebSocketBroker", set_brokers, NULL, RSRC_CONF,
                      "Redis servers that carry named WebSocketGroups between processes and servers: "
                      "redis://[:password@]host[:port][/db] or unix:/path ...; groups are spread over them "
                      "by a hash of their name (default: none, named groups reach one process)"),
    AP_INIT_TAKE1("SwiftWebSocketMemoryLimit", set_memory_limit, NULL, RSRC_CONF,
                  "Most memory a child holds for its connections' messages (partly received, queued, "
                  "broadcast), in bytes or with K, M, G; the connections holding the most are closed "
                  "past it; 0: no limit (default 256M)"),
    AP_INIT_TAKE1("SwiftWebSocketBrokerPrefix", set_broker_prefix, NULL, RSRC_CONF,
                  "Prefix of the brokers' channel names, so sites can share a Redis (default swiftws:)"),
    AP_INIT_TAKE12("SwiftWebSocketTrapLimit", set_trap_limit, NULL, RSRC_CONF,
                   "COUNT PERIOD: a handler that trapped COUNT times within PERIOD, in any child, is refused "
                   "(503, Retry-After) until PERIOD has passed; off: never (default 3 10min)"),
    AP_INIT_TAKE1("SwiftWebSocketSlowCallback", set_duration, (void *)&slow_callback, CONNECTION_CONF,
                  "Warn when handler code holds its thread this long: a callback, or a blocking handler "
                  "between receive() calls, in seconds; 0: never (default 1)"),
    AP_INIT_TAKE1("SwiftWebSocketConnectionLog", set_connection_log, NULL, RSRC_CONF,
                  "A file, or \"|program\", that gets a JSON line for each closed WebSocket"),
    AP_INIT_TAKE_ARGV("SwiftWebSocketAllowedOrigins", set_allowed_origins, NULL, CONNECTION_CONF,
                      "Origins admitted (403 otherwise): scheme://host[:port] ..., \"none\" for requests "
                      "without Origin, \"*\" for any (default: any)"),
    AP_INIT_TAKE1("SwiftWebSocketMaxMessageSize", set_number, (void *)&max_message_size, CONNECTION_CONF,
                  "Largest message accepted, in bytes (default 16777216); larger ones close with 1009"),
    AP_INIT_TAKE1("SwiftWebSocketMaxFrameSize", set_number, (void *)&max_frame_size, CONNECTION_CONF,
                  "Largest frame accepted, in bytes as sent (default: only SwiftWebSocketMaxMessageSize); "
                  "larger ones close with 1009"),
    AP_INIT_TAKE1("SwiftWebSocketMaxFragments", set_number, (void *)&max_fragments, CONNECTION_CONF,
                  "Most frames one message may arrive in (default 100000); more close with 1009"),
    AP_INIT_TAKE1("SwiftWebSocketOutboxSize", set_number, (void *)&outbox_size, CONNECTION_CONF,
                  "Most bytes of messages queued for a client that has not taken them (default "
                  "16777216); one more closes it with 1008"),
    AP_INIT_TAKE1("SwiftWebSocketPingInterval", set_duration, (void *)&ping_interval, CONNECTION_CONF,
                  "Ping a client that sent nothing for this long, in seconds; 0: never (default 20)"),
    AP_INIT_TAKE1("SwiftWebSocketPingTimeout", set_duration, (void *)&ping_timeout, CONNECTION_CONF,
                  "Close (1011) a client silent this long after a ping, in seconds (default 20)"),
    AP_INIT_TAKE1("SwiftWebSocketIdleTimeout", set_duration, (void *)&idle_timeout, CONNECTION_CONF,
                  "Close (1001) after this long without a message either way, in seconds; 0: never "
                  "(default 0)"),
    AP_INIT_TAKE1("SwiftWebSocketCloseTimeout", set_duration, (void *)&close_timeout, CONNECTION_CONF,
                  "Drop a client that has not answered our close frame after this long, in seconds "
                  "(default 10)"),
    AP_INIT_TAKE1("SwiftWebSocketMessageTimeout", set_duration, (void *)&message_timeout, CONNECTION_CONF,
                  "Close (1008) a client whose message is still incomplete this long after its first "
                  "frame, in seconds; 0: never (default 300)"),
    AP_INIT_TAKE1("SwiftWebSocketWriteTimeout", set_duration, (void *)&write_timeout, CONNECTION_CONF,
                  "Drop a client that has taken none of our output for this long, in seconds "
                  "(default 30)"),
    AP_INIT_FLAG("SwiftWebSocketDeflate", set_deflate, NULL, CONNECTION_CONF,
                 "Negotiate permessage-deflate (RFC 7692) when clients offer it (default On)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateWindowBits", set_number, (void *)&deflate_window_bits, CONNECTION_CONF,
                  "LZ77 window for permessage-deflate, 9-15, both directions where the client allows "
                  "(default 12)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateMemLevel", set_number, (void *)&deflate_memory_level, CONNECTION_CONF,
                  "zlib memLevel for compressing, 1-9 (default 5)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateCompressionLevel", set_number,
                  (void *)&deflate_compression_level, CONNECTION_CONF,
                  "zlib compression level, 0-9 (default 6)"),
    AP_INIT_TAKE1("SwiftWebSocketDeflateMinSize", set_number, (void *)&deflate_minimum_size, CONNECTION_CONF,
                  "Messages shorter than this many bytes are sent uncompressed (default 64)"),
    {NULL}
};
