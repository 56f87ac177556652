#include "trap_limit.h"

#include "http_log.h"
#include "http_protocol.h"
#include "apr_shm.h"
#include "apr_strings.h"

#include "configuration.h"

#include <stdatomic.h>
#include <time.h>

APLOG_USE_MODULE(swiftwebsocket);
extern module AP_MODULE_DECLARE_DATA swiftwebsocket_module;

/* Handlers loaded at once, and changed handlers reloaded since, that keep
 * a count; when all are taken, slots of handlers no longer configured are
 * reused. */
#define SLOTS 256
#define TABLE_KEY "swiftwebsocket:trap-counts"

typedef struct {
    _Atomic uintptr_t handler_type;  /* 0: free */
    /* Traps counted so far: the next one's place in `at_ms`, modulo its size. */
    atomic_uint count;
    /* When the latest traps happened (CLOCK_MONOTONIC, which all processes
     * share), in milliseconds. */
    _Atomic int64_t at_ms[SWIFTWS_MAX_TRAP_LIMIT];
} trap_slot;

typedef struct {
    atomic_int limit;          /* 0: off */
    _Atomic int64_t period_ms;
    trap_slot slots[SLOTS];
} trap_table;

/* This generation's: set in post_config, before the fork. */
static trap_table *table;
static apr_hash_t *slot_of_handler;  /* handler type -> int slot */
/* Per child: the end of the last refusal period logged as an error, per
 * slot; later refusals of the same period are logged at info. */
static _Atomic int64_t logged_until_ms[SLOTS];

static int64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static trap_table *shared_table(apr_pool_t *process_pool, const char **error)
{
    void *existing = NULL;
    apr_shm_t *shm;
    apr_status_t rv;
    apr_pool_userdata_get(&existing, TABLE_KEY, process_pool);
    if (existing) {
        return existing;
    }
    rv = apr_shm_create(&shm, sizeof(trap_table), NULL, process_pool);
    if (rv != APR_SUCCESS) {
        char message[120];
        *error = apr_psprintf(process_pool, "cannot make shared memory for SwiftWebSocketTrapLimit: %s",
                              apr_strerror(rv, message, sizeof(message)));
        return NULL;
    }
    existing = apr_shm_baseaddr_get(shm);
    memset(existing, 0, sizeof(trap_table));
    apr_pool_userdata_set(existing, TABLE_KEY, NULL, process_pool);
    return existing;
}

static int find_slot(uintptr_t handler_type)
{
    int i;
    for (i = 0; i < SLOTS; i++) {
        if (atomic_load(&table->slots[i].handler_type) == handler_type) {
            return i;
        }
    }
    return -1;
}

/* A free slot, else one whose handler this configuration no longer has. */
static int take_slot(uintptr_t handler_type, apr_hash_t *configured)
{
    int i = find_slot(0);
    if (i < 0) {
        for (i = 0; i < SLOTS; i++) {
            uintptr_t owner = atomic_load(&table->slots[i].handler_type);
            if (!apr_hash_get(configured, &owner, sizeof(owner))) {
                break;
            }
        }
        if (i == SLOTS) {
            return -1;
        }
    }
    atomic_store(&table->slots[i].count, 0);
    memset((void *)table->slots[i].at_ms, 0, sizeof(table->slots[i].at_ms));
    atomic_store(&table->slots[i].handler_type, handler_type);
    return i;
}

const char *swiftws_trap_limit_configure(apr_pool_t *pconf, server_rec *main_server)
{
    const swiftws_server_config *main_conf =
        ap_get_module_config(main_server->module_config, &swiftwebsocket_module);
    const char *error = NULL;
    apr_hash_t *configured = apr_hash_make(pconf);
    apr_hash_index_t *entry;
    server_rec *s;
    table = shared_table(main_server->process->pool, &error);
    if (!table) {
        return error;
    }
    atomic_store(&table->limit, main_conf->trap_limit == 0 ? SWIFTWS_DEFAULT_TRAP_LIMIT
                                : main_conf->trap_limit < 0 ? 0 : main_conf->trap_limit);
    atomic_store(&table->period_ms, (int64_t)apr_time_as_msec(main_conf->trap_limit == 0 ? SWIFTWS_DEFAULT_TRAP_PERIOD
                                                                                          : main_conf->trap_period));
    for (s = main_server; s; s = s->next) {
        const swiftws_server_config *conf = ap_get_module_config(s->module_config, &swiftwebsocket_module);
        for (entry = conf->handlers ? apr_hash_first(pconf, conf->handlers) : NULL; entry; entry = apr_hash_next(entry)) {
            uintptr_t *key = apr_palloc(pconf, sizeof(*key));
            *key = (uintptr_t)apr_hash_this_val(entry);
            apr_hash_set(configured, key, sizeof(*key), key);
        }
    }
    slot_of_handler = apr_hash_make(pconf);
    for (entry = apr_hash_first(pconf, configured); entry; entry = apr_hash_next(entry)) {
        uintptr_t handler_type = *(const uintptr_t *)apr_hash_this_val(entry);
        int *slot = apr_palloc(pconf, sizeof(*slot));
        *slot = find_slot(handler_type);
        if (*slot < 0) {
            *slot = take_slot(handler_type, configured);
        }
        if (*slot < 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server, "more than %d WebSocket handlers: "
                         "SwiftWebSocketTrapLimit does not count the traps of some", SLOTS);
            continue;
        }
        apr_hash_set(slot_of_handler, apr_hash_this_key(entry), sizeof(uintptr_t), slot);
    }
    return NULL;
}

int swiftws_trap_limit_slot(void *handler_type)
{
    uintptr_t key = (uintptr_t)handler_type;
    int *slot = slot_of_handler ? apr_hash_get(slot_of_handler, &key, sizeof(key)) : NULL;
    return slot ? *slot : -1;
}

void swiftws_trap_limit_record(int slot)
{
    trap_slot *counts;
    unsigned place;
    if (!table || slot < 0 || slot >= SLOTS) {
        return;
    }
    counts = &table->slots[slot];
    place = atomic_fetch_add(&counts->count, 1) % SWIFTWS_MAX_TRAP_LIMIT;
    atomic_store(&counts->at_ms[place], now_ms());
}

int swiftws_trap_limit_check(request_rec *r, int slot, const char *handler_name)
{
    int limit = table ? atomic_load(&table->limit) : 0;
    int64_t period_ms, oldest_ms, until_ms, now;
    unsigned count;
    int level;
    if (limit <= 0 || slot < 0) {
        return OK;
    }
    count = atomic_load(&table->slots[slot].count);
    if (count < (unsigned)limit) {
        return OK;
    }
    /* The oldest of the latest `limit` traps: while it is within the
     * period, so are they all. */
    period_ms = atomic_load(&table->period_ms);
    oldest_ms = atomic_load(&table->slots[slot].at_ms[(count - (unsigned)limit) % SWIFTWS_MAX_TRAP_LIMIT]);
    until_ms = oldest_ms + period_ms;
    now = now_ms();
    if (now >= until_ms) {
        return OK;
    }
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (until_ms - now + 999) / 1000));
    /* Outside the call: ap_log_rerror evaluates its level twice. */
    level = atomic_exchange(&logged_until_ms[slot], until_ms) == until_ms ? APLOG_INFO : APLOG_ERR;
    ap_log_rerror(APLOG_MARK, level, 0, r, "refusing WebSocket handshake for %s with 503: its handler %s trapped %d times within "
                  "%" APR_INT64_T_FMT " s (SwiftWebSocketTrapLimit); served again in %" APR_INT64_T_FMT " s",
                  r->uri, handler_name, limit, period_ms / 1000, (until_ms - now + 999) / 1000);
    return HTTP_SERVICE_UNAVAILABLE;
}
