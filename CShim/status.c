#include "status.h"
#include "configuration.h"
#include "connection_log.h"
#include "json.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_ssl.h"
#include "ap_mpm.h"
#include "mod_status.h"
#include "apr_hash.h"
#include "apr_shm.h"
#include "apr_strings.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

APLOG_USE_MODULE(swiftwebsocket);
extern module AP_MODULE_DECLARE_DATA swiftwebsocket_module;

/* The kinds in SWIFTWS_COUNTERS: whether a counter is a gauge. */
#define SWIFTWS_KIND_gauge 1
#define SWIFTWS_KIND_counter 0

/* ---- The shared segment ---- */

/* One child's slot: who owns it, then the broker counters, then one block
 * of counters per resource. */
typedef struct {
    pid_t owner;  /* 0: never claimed */
    uint64_t broker[SWIFTWS_BROKER_COUNTER_COUNT];
    swiftws_resource_counters resources[];
} slot;

/* Set in the parent's post_config, inherited by the children. Resource 0
 * is whatever request reached a handler under a path not in the table
 * (one rewritten after the lookup). */
static struct {
    char *base;                 /* NULL: no segment (config test, first pass) */
    int slots;
    apr_size_t slot_size;
    int resources;
    const char **resource_names;
    apr_hash_t *resource_index;  /* path -> index, as (void *)(intptr_t) */
} segment;

/* This child's slot; until it has one (or if every slot is taken),
 * counts go to a block no one reads. */
static slot *own_slot;
static swiftws_resource_counters uncounted;

static slot *slot_at(int i)
{
    return (slot *)(segment.base + (apr_size_t)i * segment.slot_size);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every resource any server serves, sorted, once each (a path served by
 * several virtual hosts is one resource). */
static void collect_resources(apr_pool_t *p, server_rec *main_server)
{
    apr_hash_t *seen = apr_hash_make(p);
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_hash_index_t *hi;
    server_rec *s;
    int i;
    for (s = main_server; s; s = s->next) {
        swiftws_server_config *conf = ap_get_module_config(s->module_config, &swiftwebsocket_module);
        if (!conf->handlers) {
            continue;
        }
        for (hi = apr_hash_first(p, conf->handlers); hi; hi = apr_hash_next(hi)) {
            const char *path = apr_hash_this_key(hi);
            if (!apr_hash_get(seen, path, APR_HASH_KEY_STRING)) {
                apr_hash_set(seen, path, APR_HASH_KEY_STRING, path);
                APR_ARRAY_PUSH(names, const char *) = path;
            }
        }
    }
    qsort(names->elts, names->nelts, sizeof(const char *), by_name);
    segment.resources = names->nelts + 1;
    segment.resource_names = apr_palloc(p, sizeof(const char *) * segment.resources);
    segment.resource_names[0] = "(other)";
    segment.resource_index = apr_hash_make(p);
    for (i = 0; i < names->nelts; i++) {
        const char *path = APR_ARRAY_IDX(names, i, const char *);
        segment.resource_names[i + 1] = path;
        apr_hash_set(segment.resource_index, path, APR_HASH_KEY_STRING, (void *)(intptr_t)(i + 1));
    }
}

/* After the module's own post_config has loaded the handlers. The first
 * of httpd's two startup passes only checks the configuration: the
 * segment is made on the second, and again on each graceful restart (the
 * old generation keeps its own until it exits). */
static int make_segment(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;
    int servers = 0;
    segment.base = NULL;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    collect_resources(pconf, s);
    /* A slot per process the MPM can hold at once (ServerLimit), and as
     * many spare: an exited child's slot is free once it has been reaped. */
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &servers) != APR_SUCCESS || servers < 1) {
        servers = 1;
    }
    segment.slots = 2 * servers;
    segment.slot_size = APR_ALIGN(sizeof(slot) + sizeof(swiftws_resource_counters) * segment.resources, 64);
    rv = apr_shm_create(&shm, segment.slot_size * segment.slots, NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot make the shared memory for WebSocket counters "
                     "(%" APR_SIZE_T_FMT " bytes)", segment.slot_size * segment.slots);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    segment.base = apr_shm_baseaddr_get(shm);
    memset(segment.base, 0, segment.slot_size * segment.slots);
    return OK;
}

static int is_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A free slot, or one whose owner exited: its gauges are zeroed (its
 * connections are gone), its counts kept, so totals never go back. */
static void claim_slot(apr_pool_t *pchild, server_rec *s)
{
    pid_t me = getpid();
    int i, r;
    own_slot = NULL;
    for (i = 0; segment.base && i < segment.slots && !own_slot; i++) {
        slot *candidate = slot_at(i);
        pid_t owner = __atomic_load_n(&candidate->owner, __ATOMIC_ACQUIRE);
        if ((owner == 0 || !is_alive(owner))
            && __atomic_compare_exchange_n(&candidate->owner, &owner, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            own_slot = candidate;
        }
    }
    if (!own_slot) {
        if (segment.base) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "no free slot for this child's WebSocket counters; "
                         "server-status and the metrics leave its connections out");
        }
        return;
    }
    __atomic_store_n(&own_slot->broker[SWIFTWS_BROKER_CONNECTED], 0, __ATOMIC_RELAXED);
    for (r = 0; r < segment.resources; r++) {
#define SWIFTWS_ZERO_GAUGE(name, kind) \
        if (SWIFTWS_KIND_##kind) { \
            __atomic_store_n(&own_slot->resources[r].count[SWIFTWS_COUNT_##name], 0, __ATOMIC_RELAXED); \
        }
        SWIFTWS_COUNTERS(SWIFTWS_ZERO_GAUGE)
#undef SWIFTWS_ZERO_GAUGE
    }
}

static void child_init(apr_pool_t *pchild, server_rec *s)
{
    claim_slot(pchild, s);
}

/* ---- Counting ---- */

static swiftws_resource_counters *counters_for(const char *resource)
{
    intptr_t index;
    if (!own_slot) {
        return &uncounted;
    }
    index = resource ? (intptr_t)apr_hash_get(segment.resource_index, resource, APR_HASH_KEY_STRING) : 0;
    return &own_slot->resources[index];
}

static void add(uint64_t *counter, int64_t amount)
{
    __atomic_fetch_add(counter, (uint64_t)amount, __ATOMIC_RELAXED);
}

static void count_open(swiftws_connection_record *record, int delta)
{
    swiftws_traffic *t = &record->traffic;
    swiftws_count(t, SWIFTWS_COUNT_CONNECTIONS, delta);
    swiftws_count(t, record->parked ? SWIFTWS_COUNT_CONNECTIONS_PARKED : SWIFTWS_COUNT_CONNECTIONS_ON_THREAD, delta);
    if (record->http2) {
        swiftws_count(t, SWIFTWS_COUNT_CONNECTIONS_HTTP2, delta);
    }
    if (record->tls) {
        swiftws_count(t, SWIFTWS_COUNT_CONNECTIONS_TLS, delta);
    }
}

/* After the session's own cleanup (registered later, so run earlier):
 * the handler's onClose has run and nothing counts into it any more. */
static apr_status_t connection_ended(void *record_)
{
    swiftws_connection_record *record = record_;
    if (record->open) {
        record->open = 0;
        count_open(record, -1);
        swiftws_connection_log_write(record);
    }
    return APR_SUCCESS;
}

swiftws_connection_record *swiftws_connection_record_create(request_rec *r, apr_pool_t *pool)
{
    swiftws_connection_record *record = apr_pcalloc(pool, sizeof(*record));
    record->traffic.shared = counters_for(r->uri);
    record->traffic.close_sent_code = record->traffic.close_received_code = -1;
    apr_pool_cleanup_register(pool, record, connection_ended, apr_pool_cleanup_null);
    return record;
}

void swiftws_connection_opened(swiftws_connection_record *record, request_rec *r, int parked)
{
    /* The request's strings, copied: a parked connection outlives it. */
    apr_pool_t *pool = parked ? r->connection->pool : r->pool;
    record->opened = r->request_time;
    record->resource = apr_pstrdup(pool, r->uri);
    record->client = apr_pstrdup(pool, r->useragent_ip);
    record->user = r->user ? apr_pstrdup(pool, r->user) : NULL;
    record->http2 = r->connection->master != NULL;
    record->tls = ap_ssl_conn_is_ssl(r->connection);
    record->parked = parked;
    record->open = 1;
    swiftws_count(&record->traffic, SWIFTWS_COUNT_HANDSHAKES_ACCEPTED, 1);
    count_open(record, 1);
}

static int close_bucket(int code)
{
    if (code >= 1000 && code <= 1015) {
        return code - 1000;
    }
    if (code >= 3000 && code <= 3999) {
        return 16;
    }
    if (code >= 4000 && code <= 4999) {
        return 17;
    }
    return 18;
}

static const char *const close_bucket_names[SWIFTWS_CLOSE_BUCKETS] = {
    "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011",
    "1012", "1013", "1014", "1015", "3xxx", "4xxx", "other"
};

/* The longest prefix of at most `room` bytes that ends between UTF-8
 * sequences (the engine checked the reason is UTF-8). */
static size_t utf8_prefix(const char *text, size_t length, size_t room)
{
    if (length <= room) {
        return length;
    }
    while (room > 0 && ((unsigned char)text[room] & 0xC0) == 0x80) {
        room--;
    }
    return room;
}

void swiftws_count_close(swiftws_traffic *traffic, int sent, int code, const char *reason, size_t length)
{
    int *recorded = sent ? &traffic->close_sent_code : &traffic->close_received_code;
    char *text = sent ? traffic->close_sent_reason : traffic->close_received_reason;
    size_t kept = utf8_prefix(reason ? reason : "", reason ? length : 0, sizeof(traffic->close_sent_reason) - 1);
    if (code < 0) {
        code = SWIFTWS_CLOSE_NONE;
    }
    if (sent && traffic->close_received_code < 0) {
        traffic->server_closed_first = 1;
    }
    *recorded = code;
    memcpy(text, reason ? reason : "", kept);
    text[kept] = '\0';
    add(sent ? &traffic->shared->closes_sent[close_bucket(code)]
             : &traffic->shared->closes_received[close_bucket(code)], 1);
    /* Both drivers close a client that let its outbox overflow so. */
    if (sent && code == 1008 && strcmp(text, "too slow") == 0) {
        swiftws_count(traffic, SWIFTWS_COUNT_OUTBOX_CLOSES, 1);
    }
}

void swiftws_count_broker(int counter, int64_t amount)
{
    if (own_slot) {
        add(&own_slot->broker[counter], amount);
    }
}

static int refused_bucket(int status)
{
    if (status >= 400 && status <= 431) {
        return status - 400;
    }
    if (status >= 500 && status <= 511) {
        return 32 + status - 500;
    }
    return SWIFTWS_REFUSED_BUCKETS - 1;
}

static int refused_bucket_status(int bucket)
{
    return bucket < 32 ? 400 + bucket : bucket < 44 ? 500 + bucket - 32 : 0;
}

/* Every handshake the module claimed (header_parser) that did not end in
 * a 101, whoever refused it: Apache's access control, the handshake's
 * checks, the handler. */
static int count_refusal(request_rec *r)
{
    if (!ap_get_module_config(r->request_config, &swiftwebsocket_module) || r->status == HTTP_SWITCHING_PROTOCOLS) {
        return DECLINED;
    }
    add(&counters_for(r->uri)->refused[refused_bucket(r->status)], 1);
    return DECLINED;
}

/* ---- Summing the slots ---- */

typedef struct {
    /* Per resource (segment.resources of them), then their total. */
    swiftws_resource_counters *resources;
    swiftws_resource_counters total;
    uint64_t broker[SWIFTWS_BROKER_COUNTER_COUNT];
} sums;

static const int counter_is_gauge[SWIFTWS_COUNTER_COUNT] = {
#define SWIFTWS_IS_GAUGE(name, kind) SWIFTWS_KIND_##kind,
    SWIFTWS_COUNTERS(SWIFTWS_IS_GAUGE)
#undef SWIFTWS_IS_GAUGE
};

static void add_block(swiftws_resource_counters *into, const swiftws_resource_counters *from, int alive)
{
    int i;
    for (i = 0; i < SWIFTWS_COUNTER_COUNT; i++) {
        /* An exited child's connections are gone, whatever it left. */
        if (alive || !counter_is_gauge[i]) {
            into->count[i] += __atomic_load_n(&from->count[i], __ATOMIC_RELAXED);
        }
    }
    for (i = 0; i < SWIFTWS_CLOSE_BUCKETS; i++) {
        into->closes_sent[i] += __atomic_load_n(&from->closes_sent[i], __ATOMIC_RELAXED);
        into->closes_received[i] += __atomic_load_n(&from->closes_received[i], __ATOMIC_RELAXED);
    }
    for (i = 0; i < SWIFTWS_REFUSED_BUCKETS; i++) {
        into->refused[i] += __atomic_load_n(&from->refused[i], __ATOMIC_RELAXED);
    }
}

static sums *sum_slots(apr_pool_t *p)
{
    sums *s = apr_pcalloc(p, sizeof(*s));
    int i, r;
    s->resources = apr_pcalloc(p, sizeof(swiftws_resource_counters) * (segment.resources ? segment.resources : 1));
    for (i = 0; segment.base && i < segment.slots; i++) {
        slot *each = slot_at(i);
        pid_t owner = __atomic_load_n(&each->owner, __ATOMIC_ACQUIRE);
        int alive;
        if (owner == 0) {
            continue;
        }
        alive = is_alive(owner);
        for (r = 0; r < segment.resources; r++) {
            add_block(&s->resources[r], &each->resources[r], alive);
        }
        for (r = 0; r < SWIFTWS_BROKER_COUNTER_COUNT; r++) {
            if (alive || r != SWIFTWS_BROKER_CONNECTED) {
                s->broker[r] += __atomic_load_n(&each->broker[r], __ATOMIC_RELAXED);
            }
        }
    }
    for (r = 0; r < segment.resources; r++) {
        add_block(&s->total, &s->resources[r], 1);
    }
    return s;
}

static uint64_t sum_of(const uint64_t *values, int count)
{
    uint64_t total = 0;
    int i;
    for (i = 0; i < count; i++) {
        total += values[i];
    }
    return total;
}

/* Resource 0 is shown only when a request landed there. */
static int shown(const sums *s, int resource)
{
    const swiftws_resource_counters *c = &s->resources[resource];
    return resource > 0 || c->count[SWIFTWS_COUNT_HANDSHAKES_ACCEPTED]
           || sum_of(c->refused, SWIFTWS_REFUSED_BUCKETS);
}

/* ---- Names ---- */

typedef struct {
    const char *key;     /* ?auto and JSON: SwiftWebSocket + key */
    const char *metric;  /* Prometheus: swiftwebsocket_ + metric (+ _total for counters) */
    const char *help;
} counter_name;

static const counter_name counter_names[SWIFTWS_COUNTER_COUNT] = {
    [SWIFTWS_COUNT_CONNECTIONS] = {"Connections", "connections", "Open WebSockets."},
    [SWIFTWS_COUNT_CONNECTIONS_PARKED] = {"ConnectionsParked", "connections_parked",
        "Open WebSockets that wait in the event MPM between messages, without a thread."},
    [SWIFTWS_COUNT_CONNECTIONS_ON_THREAD] = {"ConnectionsOnThread", "connections_on_thread",
        "Open WebSockets that hold a thread."},
    [SWIFTWS_COUNT_CONNECTIONS_HTTP2] = {"ConnectionsHTTP2", "connections_http2",
        "Open WebSockets over HTTP/2 streams."},
    [SWIFTWS_COUNT_CONNECTIONS_TLS] = {"ConnectionsTLS", "connections_tls", "Open WebSockets over TLS."},
    [SWIFTWS_COUNT_HANDSHAKES_ACCEPTED] = {"HandshakesAccepted", "handshakes_accepted",
        "Handshakes answered with 101."},
    [SWIFTWS_COUNT_MESSAGES_IN] = {"MessagesIn", "messages_in", "Whole messages received from clients."},
    [SWIFTWS_COUNT_MESSAGES_OUT] = {"MessagesOut", "messages_out", "Whole messages sent to clients."},
    [SWIFTWS_COUNT_BYTES_IN] = {"BytesIn", "bytes_in", "WebSocket bytes received (frames, after TLS)."},
    [SWIFTWS_COUNT_BYTES_OUT] = {"BytesOut", "bytes_out", "WebSocket bytes sent (frames, before TLS)."},
    [SWIFTWS_COUNT_DEFLATE_SAVED_IN] = {"DeflateSavedIn", "deflate_saved_in_bytes",
        "Payload bytes permessage-deflate saved on clients' messages."},
    [SWIFTWS_COUNT_DEFLATE_SAVED_OUT] = {"DeflateSavedOut", "deflate_saved_out_bytes",
        "Payload bytes permessage-deflate saved on messages sent."},
    [SWIFTWS_COUNT_OUTBOX_CLOSES] = {"OutboxCloses", "outbox_closes",
        "Clients closed with 1008 for more than SwiftWebSocketOutboxSize queued."},
    [SWIFTWS_COUNT_MEMORY_BUDGET_CLOSES] = {"MemoryBudgetCloses", "memory_budget_closes",
        "Connections closed for the child's memory budget."},
};

static const counter_name broker_names[SWIFTWS_BROKER_COUNTER_COUNT] = {
    [SWIFTWS_BROKER_CONNECTED] = {"BrokersConnected", "brokers_connected",
        "Brokers reachable, summed over the children."},
    [SWIFTWS_BROKER_PUBLISHED] = {"BrokerPublished", "broker_published", "Broadcasts the brokers took."},
    [SWIFTWS_BROKER_RECEIVED] = {"BrokerReceived", "broker_received", "Messages received from the brokers."},
    [SWIFTWS_BROKER_LOST] = {"BrokerLost", "broker_lost",
        "Broadcasts that reached only their own child (broker unreachable or behind)."},
};

/* Counters are unsigned in the segment; the compression savings may be
 * net negative. */
static const char *value_text(apr_pool_t *p, int counter, uint64_t value)
{
    if (counter == SWIFTWS_COUNT_DEFLATE_SAVED_IN || counter == SWIFTWS_COUNT_DEFLATE_SAVED_OUT) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)value);
    }
    return apr_psprintf(p, "%" APR_UINT64_T_FMT, value);
}

/* ---- mod_status ---- */

/* `?auto`: the totals as SwiftWebSocketKEY, then per resource as
 * SwiftWebSocketKEY[/path]; by-code counts only where not zero. */
static void auto_lines(request_rec *r, const swiftws_resource_counters *c, const char *suffix)
{
    int i;
    for (i = 0; i < SWIFTWS_COUNTER_COUNT; i++) {
        ap_rprintf(r, "SwiftWebSocket%s%s: %s\n", counter_names[i].key, suffix, value_text(r->pool, i, c->count[i]));
    }
    ap_rprintf(r, "SwiftWebSocketHandshakesRefused%s: %" APR_UINT64_T_FMT "\n", suffix,
               sum_of(c->refused, SWIFTWS_REFUSED_BUCKETS));
    for (i = 0; i < SWIFTWS_REFUSED_BUCKETS; i++) {
        if (c->refused[i]) {
            int status = refused_bucket_status(i);
            ap_rprintf(r, "SwiftWebSocketHandshakesRefused%s%s: %" APR_UINT64_T_FMT "\n",
                       status ? apr_itoa(r->pool, status) : "Other", suffix, c->refused[i]);
        }
    }
    ap_rprintf(r, "SwiftWebSocketClosesSent%s: %" APR_UINT64_T_FMT "\n", suffix,
               sum_of(c->closes_sent, SWIFTWS_CLOSE_BUCKETS));
    ap_rprintf(r, "SwiftWebSocketClosesReceived%s: %" APR_UINT64_T_FMT "\n", suffix,
               sum_of(c->closes_received, SWIFTWS_CLOSE_BUCKETS));
    for (i = 0; i < SWIFTWS_CLOSE_BUCKETS; i++) {
        if (c->closes_sent[i]) {
            ap_rprintf(r, "SwiftWebSocketClosesSent%s%s: %" APR_UINT64_T_FMT "\n", close_bucket_names[i], suffix,
                       c->closes_sent[i]);
        }
        if (c->closes_received[i]) {
            ap_rprintf(r, "SwiftWebSocketClosesReceived%s%s: %" APR_UINT64_T_FMT "\n", close_bucket_names[i],
                       suffix, c->closes_received[i]);
        }
    }
}

static const char *by_code_html(apr_pool_t *p, const uint64_t *values, int count, int refused)
{
    const char *text = "";
    int i;
    for (i = 0; i < count; i++) {
        if (values[i]) {
            const char *name = refused ? (refused_bucket_status(i) ? apr_itoa(p, refused_bucket_status(i)) : "other")
                                       : close_bucket_names[i];
            text = apr_psprintf(p, "%s%s%s&times;%" APR_UINT64_T_FMT, text, *text ? " " : "", name, values[i]);
        }
    }
    return text;
}

static void html_row(request_rec *r, const char *name, const swiftws_resource_counters *c)
{
    int i;
    ap_rprintf(r, "<tr><td>%s</td>", ap_escape_html(r->pool, name));
    for (i = 0; i < SWIFTWS_COUNTER_COUNT; i++) {
        ap_rprintf(r, "<td>%s</td>", value_text(r->pool, i, c->count[i]));
    }
    ap_rprintf(r, "<td>%s</td><td>%s</td><td>%s</td></tr>\n",
               by_code_html(r->pool, c->refused, SWIFTWS_REFUSED_BUCKETS, 1),
               by_code_html(r->pool, c->closes_sent, SWIFTWS_CLOSE_BUCKETS, 0),
               by_code_html(r->pool, c->closes_received, SWIFTWS_CLOSE_BUCKETS, 0));
}

static int status_hook(request_rec *r, int flags)
{
    sums *s;
    int i;
    if (!segment.base) {
        return OK;
    }
    s = sum_slots(r->pool);
    if (flags & AP_STATUS_SHORT) {
        auto_lines(r, &s->total, "");
        for (i = 0; i < SWIFTWS_BROKER_COUNTER_COUNT; i++) {
            ap_rprintf(r, "SwiftWebSocket%s: %" APR_UINT64_T_FMT "\n", broker_names[i].key, s->broker[i]);
        }
        for (i = 0; i < segment.resources; i++) {
            if (shown(s, i)) {
                auto_lines(r, &s->resources[i], apr_pstrcat(r->pool, "[", segment.resource_names[i], "]", NULL));
            }
        }
        return OK;
    }
    ap_rputs("<hr />\n<h2>WebSockets (mod_swiftwebsocket)</h2>\n<table border=\"0\"><tr><th>resource</th>", r);
    for (i = 0; i < SWIFTWS_COUNTER_COUNT; i++) {
        ap_rprintf(r, "<th>%s</th>", counter_names[i].key);
    }
    ap_rputs("<th>HandshakesRefused</th><th>ClosesSent</th><th>ClosesReceived</th></tr>\n", r);
    html_row(r, "all", &s->total);
    for (i = 0; i < segment.resources; i++) {
        if (shown(s, i)) {
            html_row(r, segment.resource_names[i], &s->resources[i]);
        }
    }
    ap_rputs("</table>\n<p>Brokers:", r);
    for (i = 0; i < SWIFTWS_BROKER_COUNTER_COUNT; i++) {
        ap_rprintf(r, " %s %" APR_UINT64_T_FMT "%s", broker_names[i].key, s->broker[i],
                   i + 1 < SWIFTWS_BROKER_COUNTER_COUNT ? "," : "");
    }
    ap_rputs("</p>\n", r);
    return OK;
}

/* ---- SetHandler swiftwebsocket-metrics ---- */

/* A label value: backslash, double quote and newline escaped. */
static const char *label(apr_pool_t *p, const char *value)
{
    char *escaped = apr_palloc(p, strlen(value) * 2 + 1), *out = escaped;
    for (; *value; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            *out++ = '\\';
            *out++ = *value == '\n' ? 'n' : *value;
        }
        else {
            *out++ = *value;
        }
    }
    *out = '\0';
    return escaped;
}

/* The text format names a counter's family as its samples, with _total. */
static void family(request_rec *r, const char *metric, const char *help, int gauge)
{
    const char *suffix = gauge ? "" : "_total";
    ap_rprintf(r, "# HELP swiftwebsocket_%s%s %s\n# TYPE swiftwebsocket_%s%s %s\n", metric, suffix, help, metric,
               suffix, gauge ? "gauge" : "counter");
}

/* Per resource, and by close code or status where the family has one. */
static void by_code_samples(request_rec *r, const sums *s, const char *metric, size_t offset, int refused)
{
    int i, b;
    int buckets = refused ? SWIFTWS_REFUSED_BUCKETS : SWIFTWS_CLOSE_BUCKETS;
    for (i = 0; i < segment.resources; i++) {
        const uint64_t *values = (const uint64_t *)((const char *)&s->resources[i] + offset);
        if (!shown(s, i)) {
            continue;
        }
        for (b = 0; b < buckets; b++) {
            if (values[b]) {
                const char *code = refused ? (refused_bucket_status(b) ? apr_itoa(r->pool, refused_bucket_status(b))
                                                                       : "other")
                                           : close_bucket_names[b];
                ap_rprintf(r, "swiftwebsocket_%s_total{resource=\"%s\",%s=\"%s\"} %" APR_UINT64_T_FMT "\n", metric,
                           label(r->pool, segment.resource_names[i]), refused ? "status" : "code", code, values[b]);
            }
        }
    }
}

static void prometheus(request_rec *r, const sums *s)
{
    int c, i;
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    for (c = 0; c < SWIFTWS_COUNTER_COUNT; c++) {
        family(r, counter_names[c].metric, counter_names[c].help, counter_is_gauge[c]);
        for (i = 0; i < segment.resources; i++) {
            if (shown(s, i)) {
                ap_rprintf(r, "swiftwebsocket_%s%s{resource=\"%s\"} %s\n", counter_names[c].metric,
                           counter_is_gauge[c] ? "" : "_total", label(r->pool, segment.resource_names[i]),
                           value_text(r->pool, c, s->resources[i].count[c]));
            }
        }
    }
    family(r, "handshakes_refused", "Handshakes not answered with 101, by status.", 0);
    by_code_samples(r, s, "handshakes_refused", APR_OFFSETOF(swiftws_resource_counters, refused), 1);
    family(r, "closes_sent", "Close frames sent, by code (1005: one without a code).", 0);
    by_code_samples(r, s, "closes_sent", APR_OFFSETOF(swiftws_resource_counters, closes_sent), 0);
    family(r, "closes_received", "Close frames received, by code (1005: without one).", 0);
    by_code_samples(r, s, "closes_received", APR_OFFSETOF(swiftws_resource_counters, closes_received), 0);
    for (c = 0; c < SWIFTWS_BROKER_COUNTER_COUNT; c++) {
        int gauge = c == SWIFTWS_BROKER_CONNECTED;
        family(r, broker_names[c].metric, broker_names[c].help, gauge);
        ap_rprintf(r, "swiftwebsocket_%s%s %" APR_UINT64_T_FMT "\n", broker_names[c].metric, gauge ? "" : "_total",
                   s->broker[c]);
    }
}

static void json_counters(request_rec *r, const swiftws_resource_counters *c)
{
    int i;
    ap_rputs("{", r);
    for (i = 0; i < SWIFTWS_COUNTER_COUNT; i++) {
        ap_rprintf(r, "\"%s\":%s,", counter_names[i].key, value_text(r->pool, i, c->count[i]));
    }
    ap_rprintf(r, "\"HandshakesRefused\":%" APR_UINT64_T_FMT ",\"ClosesSent\":{", sum_of(c->refused, SWIFTWS_REFUSED_BUCKETS));
    for (i = 0; i < SWIFTWS_CLOSE_BUCKETS; i++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, i ? "," : "", close_bucket_names[i], c->closes_sent[i]);
    }
    ap_rputs("},\"ClosesReceived\":{", r);
    for (i = 0; i < SWIFTWS_CLOSE_BUCKETS; i++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, i ? "," : "", close_bucket_names[i], c->closes_received[i]);
    }
    ap_rputs("}}", r);
}

/* For the live page: the ?auto keys without their prefix, in one object. */
static void json(request_rec *r, const sums *s)
{
    int i, first = 1;
    ap_set_content_type(r, "application/json");
    ap_rprintf(r, "{\"time\":%.3f,\"total\":", (double)apr_time_now() / APR_USEC_PER_SEC);
    json_counters(r, &s->total);
    ap_rputs(",\"broker\":{", r);
    for (i = 0; i < SWIFTWS_BROKER_COUNTER_COUNT; i++) {
        ap_rprintf(r, "%s\"%s\":%" APR_UINT64_T_FMT, i ? "," : "", broker_names[i].key, s->broker[i]);
    }
    ap_rputs("},\"resources\":{", r);
    for (i = 0; i < segment.resources; i++) {
        if (shown(s, i)) {
            ap_rprintf(r, "%s%s:", first ? "" : ",", swiftws_json_string(r->pool, segment.resource_names[i]));
            json_counters(r, &s->resources[i]);
            first = 0;
        }
    }
    ap_rputs("}}\n", r);
}

static int metrics_handler(request_rec *r)
{
    sums *s;
    if (!r->handler || strcmp(r->handler, "swiftwebsocket-metrics") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    s = sum_slots(r->pool);
    if (r->args && strcmp(r->args, "format=json") == 0) {
        json(r, s);
    }
    else {
        prometheus(r, s);
    }
    return OK;
}

void swiftws_status_register_hooks(void)
{
    /* After the module's post_config, which loads the handlers. */
    ap_hook_post_config(make_segment, NULL, NULL, APR_HOOK_LAST);
    /* Before the brokers' thread starts counting. */
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_log_transaction(count_refusal, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
