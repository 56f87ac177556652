/*
 * The C ABI between mod_swiftwebsocket (CShim/, C, owns everything Apache)
 * and the Swift bridge (Sources/SwiftWebSocketBridge). Swift cannot include
 * httpd's headers, so everything crosses here as plain C: strings the shim
 * allocates from the request pool, and callbacks through which Swift reads
 * and writes via the connection's filters.
 */
#ifndef SWIFTWEBSOCKET_H
#define SWIFTWEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct swiftws_header {
    const char *name;
    const char *value;
} swiftws_header;

/* How one connection behaves: the per-directory directives
 * (configuration.c) with their values in the form the engine takes. Every
 * option is -1 while unset, for the default (the engine's; the shim's for
 * the write timeout, which the shim alone uses); durations are in
 * milliseconds, and 0 turns the ones that may be off off. Listed once here,
 * the list makes the struct and the shim's unset values and merging. */
#define SWIFTWS_CONNECTION_OPTIONS(X) \
    X(max_message_size)          /* SwiftWebSocketMaxMessageSize, bytes */ \
    X(max_frame_size)            /* SwiftWebSocketMaxFrameSize, bytes */ \
    X(max_fragments)             /* SwiftWebSocketMaxFragments, frames per message */ \
    X(outbox_size)               /* SwiftWebSocketOutboxSize, bytes */ \
    X(ping_interval_ms)          /* SwiftWebSocketPingInterval */ \
    X(ping_timeout_ms)           /* SwiftWebSocketPingTimeout */ \
    X(idle_timeout_ms)           /* SwiftWebSocketIdleTimeout */ \
    X(close_timeout_ms)          /* SwiftWebSocketCloseTimeout */ \
    X(message_timeout_ms)        /* SwiftWebSocketMessageTimeout */ \
    X(write_timeout_ms)          /* SwiftWebSocketWriteTimeout; the shim's */ \
    X(deflate_enabled)           /* SwiftWebSocketDeflate, 0 or 1 */ \
    X(deflate_window_bits)       /* 9..15 */ \
    X(deflate_memory_level)      /* 1..9 */ \
    X(deflate_compression_level) /* 0..9 */ \
    X(deflate_minimum_size)      /* bytes */ \
    X(slow_callback_ms)          /* SwiftWebSocketSlowCallback */

typedef struct swiftws_connection_options {
#define SWIFTWS_OPTION_FIELD(name) int64_t name;
    SWIFTWS_CONNECTION_OPTIONS(SWIFTWS_OPTION_FIELD)
#undef SWIFTWS_OPTION_FIELD
} swiftws_connection_options;

/* What the server counts for each resource, in each child's slot of the
 * shared memory status.c keeps (summed by mod_status, the metrics handler
 * and the live page). Gauges go up and down; the rest only up. Listed once
 * here: the list makes the array indices and status.c's names. The bytes
 * are the WebSocket frames on the wire (after TLS, before HTTP/2 framing);
 * the compression savings are payload bytes minus compressed bytes, and
 * may go down for a message that compressed badly. */
#define SWIFTWS_COUNTERS(X) \
    X(CONNECTIONS, gauge)         /* open WebSockets */ \
    X(CONNECTIONS_PARKED, gauge)  /* ... parked in the event MPM between messages */ \
    X(CONNECTIONS_ON_THREAD, gauge) /* ... holding a thread (blocking handlers, HTTP/2, other MPMs) */ \
    X(CONNECTIONS_HTTP2, gauge)   /* ... over HTTP/2 streams */ \
    X(CONNECTIONS_TLS, gauge)     /* ... over TLS */ \
    X(HANDSHAKES_ACCEPTED, counter) \
    X(MESSAGES_IN, counter)       /* whole data messages from clients */ \
    X(MESSAGES_OUT, counter) \
    X(BYTES_IN, counter) \
    X(BYTES_OUT, counter) \
    X(DEFLATE_SAVED_IN, counter)  /* bytes permessage-deflate saved clients' messages */ \
    X(DEFLATE_SAVED_OUT, counter) \
    X(OUTBOX_CLOSES, counter)     /* closed with 1008: SwiftWebSocketOutboxSize passed */ \
    X(MEMORY_BUDGET_CLOSES, counter) /* closed for the child's memory budget */

enum {
#define SWIFTWS_COUNTER_INDEX(name, kind) SWIFTWS_COUNT_##name,
    SWIFTWS_COUNTERS(SWIFTWS_COUNTER_INDEX)
#undef SWIFTWS_COUNTER_INDEX
    SWIFTWS_COUNTER_COUNT
};

/* Close codes by code: 1000..1015 each, then 3000-3999 and 4000-4999 as
 * two, then anything else; SWIFTWS_CLOSE_NONE is a close frame without a
 * code (1005 as the receiver reports it). */
enum { SWIFTWS_CLOSE_BUCKETS = 19 };
#define SWIFTWS_CLOSE_NONE 1005
/* Refused handshakes by status: 400..431, 500..511, and any other. */
enum { SWIFTWS_REFUSED_BUCKETS = 32 + 12 + 1 };

typedef struct swiftws_resource_counters {
    uint64_t count[SWIFTWS_COUNTER_COUNT];
    uint64_t closes_sent[SWIFTWS_CLOSE_BUCKETS];
    uint64_t closes_received[SWIFTWS_CLOSE_BUCKETS];
    uint64_t refused[SWIFTWS_REFUSED_BUCKETS];
} swiftws_resource_counters;

/* One WebSocket's traffic, counted as it happens by the thread driving it:
 * its own totals (for its line in SwiftWebSocketConnectionLog) and the
 * shared counters of its resource in this child's slot. The shim makes it
 * before the handshake and reads it when the connection's pool goes. */
typedef struct swiftws_traffic {
    swiftws_resource_counters *shared;  /* never NULL */
    uint64_t messages_in, messages_out, bytes_in, bytes_out;
    /* -1: no close frame that way; SWIFTWS_CLOSE_NONE: one without a code. */
    int close_sent_code, close_received_code;
    int server_closed_first;
    char close_sent_reason[124], close_received_reason[124];
} swiftws_traffic;

/* The hot path's counting: plain adds to the connection's own totals, one
 * atomic add to the shared counter; no lock, no lookup. */
static inline void swiftws_count(swiftws_traffic *traffic, int counter, int64_t amount)
{
    __atomic_fetch_add(&traffic->shared->count[counter], (uint64_t)amount, __ATOMIC_RELAXED);
}

static inline void swiftws_count_message_in(swiftws_traffic *traffic, int64_t bytes, int64_t wire_bytes)
{
    traffic->messages_in++;
    swiftws_count(traffic, SWIFTWS_COUNT_MESSAGES_IN, 1);
    if (wire_bytes != bytes) {
        swiftws_count(traffic, SWIFTWS_COUNT_DEFLATE_SAVED_IN, bytes - wire_bytes);
    }
}

/* `ends_message`: a fragment that is not the last adds its bytes alone. */
static inline void swiftws_count_sent(swiftws_traffic *traffic, int64_t bytes, int64_t wire_bytes, int ends_message)
{
    if (ends_message) {
        traffic->messages_out++;
        swiftws_count(traffic, SWIFTWS_COUNT_MESSAGES_OUT, 1);
    }
    if (wire_bytes != bytes) {
        swiftws_count(traffic, SWIFTWS_COUNT_DEFLATE_SAVED_OUT, bytes - wire_bytes);
    }
}

/* One upgrade request as the shim saw it. Valid until the content handler
 * returns. */
typedef struct swiftws_request {
    const char *resource;        /* the path, %-decoded, without the query */
    const char *query;           /* NULL when absent */
    const swiftws_header *headers;
    size_t header_count;
    const char *remote_address;
    const char *user;            /* r->user, NULL when unauthenticated */
    int is_secure;               /* TLS (mod_ssl) in use */
    const swiftws_header *tls_variables;  /* mod_ssl's SSL_* with a value */
    size_t tls_variable_count;
    swiftws_connection_options options;
    swiftws_traffic *traffic;    /* where the connection's traffic is counted */
} swiftws_request;

/* Services the shim gives Swift. `io` is the shim's per-connection context,
 * handed to swiftws_session_open; only the thread running the handler may
 * pass it. */
enum { SWIFTWS_READ_ERROR = -1, SWIFTWS_READ_AGAIN = -2 };
enum {
    SWIFTWS_WAIT_ERROR = -1,
    SWIFTWS_WAIT_TIMEOUT = 0,
    SWIFTWS_WAIT_READABLE = 1,
    SWIFTWS_WAIT_WOKEN = 2
};

typedef struct swiftws_host {
    /* Reads without blocking. Returns the count, 0 at the end of the
     * stream, SWIFTWS_READ_AGAIN when nothing has arrived, or
     * SWIFTWS_READ_ERROR (already logged). */
    long (*read)(void *io, void *buffer, size_t length);
    /* Blocks until the client's socket is readable, `wake_fd` is, or
     * `timeout_ms` passed (-1: no limit). On an HTTP/2 stream, which has no
     * socket of its own, it reads instead, bounded by httpd's Timeout, and
     * ignores `wake_fd`. Returns a SWIFTWS_WAIT_* value. */
    int (*wait)(void *io, int wake_fd, long timeout_ms);
    /* Writes `first` then `second` (either may be empty) and flushes.
     * Returns 0, or -1 when the peer is gone (already logged). */
    int (*write)(void *io, const void *first, size_t first_length,
                 const void *second, size_t second_length);
    /* Logs to the error log against the request (with its log id); `level`
     * is an APLOG_* value (2 crit ... 7 debug, 8 trace1). */
    void (*log)(void *io, int level, const char *message);
    /* The level the error log keeps for this request and module. */
    int (*log_level)(void *io);
    /* Logs against the server, from any thread. */
    void (*log_server)(int level, const char *message);
    /* Adds a header to the 101 response (or to a rejection). */
    void (*add_response_header)(void *io, const char *name, const char *value);

    /* For connections parked in the event MPM. */

    /* Passes `first` then `second` to the output filters without a flush:
     * they write what the socket takes and keep the rest. Returns 0, or -1
     * when the peer is gone. */
    int (*write_buffered)(void *io, const void *first, size_t first_length,
                          const void *second, size_t second_length);
    /* Writes what the filters kept: what the socket takes now, or all of it
     * when `waiting` (bounded by the write timeout). Returns 1 while output
     * is pending, 0 when none is, -1 when the peer is gone. */
    int (*flush)(void *io, int waiting);
    /* Has a worker call swiftws_bridge_timer_fired(baton) after `delay_us`
     * microseconds (ap_mpm_register_timed_callback; the bridge passes 0 and
     * keeps later deadlines itself, see DeadlineTicker.swift). Any thread.
     * Returns 0, or -1 if the MPM refused (the baton is not called). */
    int (*schedule_timer)(long delay_us, void *baton);
    /* Shuts the socket down both ways, so the MPM resumes the connection
     * at once and finds it closed. */
    void (*shutdown)(void *io);

    /* Named groups over the brokers of SwiftWebSocketBroker (broker.c). Any
     * thread; none of them waits for a broker. */

    /* Queues `payload` for the group's channel. SWIFTWS_PUBLISH_SENT: it
     * comes back through the channel to every subscribed process, this one
     * included. SWIFTWS_PUBLISH_LOCAL: the broker is unreachable or too far
     * behind (counted, logged once per episode); the caller delivers to
     * this process's members itself. */
    int (*broker_publish)(const char *group, size_t group_length, const void *payload, size_t length);
    /* This process has its first member of the group / lost its last. */
    void (*broker_subscribe)(const char *group, size_t length);
    void (*broker_unsubscribe)(const char *group, size_t length);

    /* Hands what malloc holds free back to the system (malloc_trim): after
     * an episode of the memory budget, what the attack left free in the
     * heaps (zlib's states, buffers below the mmap threshold) would
     * otherwise stay in the RSS. */
    void (*return_free_memory)(void);

    /* Bracket handler code on the calling thread: a trap in between is
     * reported against this connection (trap_report.c). `handler_enter`
     * returns what `handler_leave` restores. */
    const void *(*handler_enter)(void *io);
    void (*handler_leave)(const void *previous);

    /* A close frame sent (`sent`) or received, with its code (-1: none)
     * and reason: counted by code, and kept for the connection log. */
    void (*count_close)(swiftws_traffic *traffic, int sent, int code, const char *reason, size_t length);
} swiftws_host;

enum { SWIFTWS_PUBLISH_SENT = 0, SWIFTWS_PUBLISH_LOCAL = 1 };

/* What a parked connection waits for next (swiftws_session_open_parked,
 * swiftws_session_resume). */
enum { SWIFTWS_NEXT_INPUT = 0, SWIFTWS_NEXT_OUTPUT = 1, SWIFTWS_NEXT_CLOSED = 2 };

/* ---- Implemented in Swift (SwiftWebSocketBridge) ---- */

/* Called in every post_config: httpd reloads the module between
 * configuration passes, so the function addresses change. */
void swiftws_bridge_init(const swiftws_host *host);

/* From child_init where connections can park: starts the thread that keeps
 * their deadlines. */
void swiftws_bridge_child_init(void);

/* From child_init: whether named groups go through brokers (else they
 * stay in the process), the largest message they may carry (the server's
 * SwiftWebSocketMaxMessageSize, -1 for the engine's default), and how many
 * child processes the MPM may run (a warning names SwiftWebSocketBroker
 * when named groups are used without one and this is more than 1). */
void swiftws_bridge_groups_init(int has_broker, int64_t max_message_size, int max_children);

/* From child_init: what this child may hold for its connections'
 * messages, in bytes (SwiftWebSocketMemoryLimit; 0: no limit). */
void swiftws_bridge_memory_init(int64_t limit);

/* A message on a named group's channel, from the broker thread. */
void swiftws_bridge_group_message(const char *group, size_t group_length, const void *payload, size_t length);

/* From the child_stopping hook: every open connection closes with 1001. */
void swiftws_bridge_child_stopping(void);

/* A timer from schedule_timer fired (on a worker thread). */
void swiftws_bridge_timer_fired(void *baton);

/* Whether the handler is event-style, so its connections can park in the
 * event MPM between messages. */
int swiftws_handler_can_park(void *handler_type);

/* The handler type's name (Module.Type), cut to fit `size`, for the log. */
void swiftws_handler_name(void *handler_type, char *buffer, size_t size);

/* Creates the handler instance and runs its extra handshake. `parking`:
 * the connection will park in the MPM (swiftws_session_open_parked),
 * else it runs on this thread (swiftws_session_run_blocking). Returns the
 * session, or NULL when the handler rejected the request: *status is then
 * the HTTP status to answer. Either way the headers to answer with
 * (Sec-WebSocket-Protocol, Sec-WebSocket-Extensions, the handler's own)
 * have gone through add_response_header. */
void *swiftws_session_open(void *handler_type, const swiftws_request *request,
                           void *io, int parking, int *status);

/* Serves the connection on this thread until it ends, including the close
 * handshake: a blocking handler's transferData, or an event handler's
 * callbacks on a held thread. */
void swiftws_session_run_blocking(void *session);

/* A parking session, after the 101: runs onOpen and handles what already
 * arrived. Returns a SWIFTWS_NEXT_* value: SWIFTWS_NEXT_CLOSED, or the
 * connection waits in the MPM for input. */
int swiftws_session_open_parked(void *session);

/* The MPM resumed a parked connection (process_connection): reads what
 * arrived, runs callbacks, writes what is queued. Returns what to wait for
 * next, a SWIFTWS_NEXT_* value. */
int swiftws_session_resume(void *session);

/* The suspend_connection and resume_connection hooks: between them the
 * connection waits in the MPM and timers may write to it. */
void swiftws_session_parked(void *session);
void swiftws_session_reclaimed(void *session);

/* pre_close_connection: the MPM closes the connection (its Timeout passed);
 * a 1001 if it can be written, and onClose. Nothing if already closed. */
void swiftws_session_abandon(void *session);

/* Ends the session (for a parked one: onClose if it has not run, and no
 * I/O after this) and releases it. */
void swiftws_session_free(void *session);

/* ---- Exported by every handler shared object (generated by
 * swiftwebsocket-build) ---- */

/* The engine ABI the handler was built against, compared by the loader with
 * SWIFTWS_ENGINE_ABI. */
typedef const char *(*swiftws_handler_abi_fn)(void);
#define SWIFTWS_HANDLER_ABI_SYMBOL "swiftwebsocket_handler_abi"

/* A retained opaque reference to the handler type, for swiftws_session_open. */
typedef void *(*swiftws_handler_type_fn)(void);
#define SWIFTWS_HANDLER_TYPE_SYMBOL "swiftwebsocket_handler_type"

#ifdef __cplusplus
}
#endif
#endif
