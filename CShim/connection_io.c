#include "connection_io.h"
#include "broker.h"
#include "trap_report.h"
#include "status.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "ap_mpm.h"
#include "util_filter.h"
#include "apr_portable.h"
#include "apr_strings.h"

#include <malloc.h>

/* ap_get_pollfd_from_conn: httpd 2.4.58 and later. */
#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 129)
#error "mod_swiftwebsocket needs httpd 2.4.58 or later (ap_get_pollfd_from_conn)"
#endif


APLOG_USE_MODULE(swiftwebsocket);

/* Reads at most this much per filter call: one TLS record's worth, the
 * size of the engine's read buffer (WebSocket.readBufferSize). Input past
 * what the caller takes waits in io->in. */
#define READ_SIZE (16 * 1024)

swiftws_io *swiftws_io_create(request_rec *r, apr_pool_t *pool)
{
    swiftws_io *io = apr_pcalloc(pool, sizeof(*io));
    io->r = r;
    io->c = r->connection;
    io->pool = pool;
    io->response_headers = apr_table_make(r->pool, 4);
    return io;
}

void swiftws_io_request_done(swiftws_io *io)
{
    request_rec *r = io->r;
    /* The connection's lines from now on (parked callbacks, timeouts)
     * carry the handshake request's log id as theirs (ErrorLogFormat's
     * %{c}L), the one its access log line has (%L), not one of their own. */
    if (!r->log_id) {
        ap_run_generate_log_id(r->connection, r, &r->log_id);
    }
    if (r->log_id) {
        r->connection->log_id = apr_pstrdup(r->connection->pool, r->log_id);
    }
    io->r = NULL;
}

/* Against the request while there is one: its log id ties the lines to the
 * access log's. */
static void log_io(swiftws_io *io, int level, apr_status_t rv, const char *message)
{
    if (io->r) {
        ap_log_rerror(APLOG_MARK, level, rv, io->r, "%s", message);
    }
    else {
        ap_log_cerror(APLOG_MARK, level, rv, io->c, "%s", message);
    }
}

/* What apr_poll waits on for the client's input: the client socket on an
 * HTTP/1.1 connection, mod_http2's input pipe on an HTTP/2 stream (mod_http2
 * drains that pipe whenever a non-blocking read finds nothing, so it rests
 * once we have read everything). False when there is none to poll; waits
 * then block in the input filter. */
static int poll_input(swiftws_io *io)
{
    memset(&io->input, 0, sizeof(io->input));
    if (ap_get_pollfd_from_conn(io->c, &io->input, NULL) != APR_SUCCESS) {
        return 0;
    }
    io->input.reqevents = APR_POLLIN;
    return io->input.desc_type == APR_POLL_SOCKET || io->input.desc_type == APR_POLL_FILE;
}

/* SwiftWebSocketWriteTimeout's default: a client that takes none of our
 * output for this long has stopped reading (or is gone), and its thread
 * is needed elsewhere. */
#define DEFAULT_WRITE_TIMEOUT_MS 30000

void swiftws_io_start(swiftws_io *io, apr_int64_t write_timeout_ms)
{
    io->in = apr_brigade_create(io->pool, io->c->bucket_alloc);
    io->out = apr_brigade_create(io->pool, io->c->bucket_alloc);
    io->can_poll_input = poll_input(io);
    io->wake_fd = -1;
    /* Reads never block (APR's socket bucket reads non-blocking ones with
     * timeout 0 and restores it), so the socket's timeout now bounds only
     * writes: the core output filter polls for writability with it when the
     * client's window is full. An HTTP/2 stream has no socket of its own;
     * mod_http2 bounds its writes by H2StreamTimeout (or Timeout). */
    if (!io->c->master) {
        apr_socket_t *socket = ap_get_conn_socket(io->c);
        if (socket) {
            apr_socket_timeout_set(socket, apr_time_from_msec(write_timeout_ms >= 0 ? write_timeout_ms
                                                                                    : DEFAULT_WRITE_TIMEOUT_MS));
        }
    }
}

/* Fills io->in from the input filters. Returns APR_SUCCESS with data (or
 * with io->at_end set), APR_EAGAIN when a non-blocking read found nothing,
 * or the error. */
static apr_status_t fill(swiftws_io *io, apr_read_type_e block)
{
    apr_status_t rv = ap_get_brigade(io->c->input_filters, io->in, AP_MODE_READBYTES, block, READ_SIZE);
    if (rv == APR_EOF) {
        apr_brigade_cleanup(io->in);
        io->at_end = 1;
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(io->in)) {
        /* The core input filter's answer to a non-blocking read that would
         * block; mod_ssl answers APR_EAGAIN. */
        return APR_EAGAIN;
    }
    if (rv != APR_SUCCESS) {
        apr_brigade_cleanup(io->in);
    }
    return rv;
}

/* Input the caller has no room for stays in io->in for the next call. */
static long host_read(void *io_, void *buffer, size_t length)
{
    swiftws_io *io = io_;
    for (;;) {
        apr_size_t copied = 0;
        if (APR_BRIGADE_EMPTY(io->in)) {
            apr_status_t rv;
            if (io->at_end) {
                return 0;
            }
            rv = fill(io, APR_NONBLOCK_READ);
            if (APR_STATUS_IS_EAGAIN(rv)) {
                return SWIFTWS_READ_AGAIN;
            }
            if (rv != APR_SUCCESS) {
                log_io(io, APLOG_DEBUG, rv, "reading from the WebSocket client failed");
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
                apr_brigade_cleanup(io->in);
                io->at_end = 1;
                return (long)copied;  /* 0 now, or the end comes with the next read */
            }
            if (!APR_BUCKET_IS_METADATA(b)) {
                const char *data;
                apr_size_t n;
                apr_status_t rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
                if (rv != APR_SUCCESS) {
                    apr_brigade_cleanup(io->in);
                    log_io(io, APLOG_DEBUG, rv, "reading a bucket failed");
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
            io->traffic->bytes_in += copied;
            swiftws_count(io->traffic, SWIFTWS_COUNT_BYTES_IN, (int64_t)copied);
            return (long)copied;
        }
    }
}

/* Without a descriptor to poll (mod_http2 built without pipes; only HTTP/2
 * streams get here): block in the input filter until data comes, bounded
 * by H2StreamTimeout (or Timeout). Wakes and
 * deadlines then wait for the client's next input. */
static int wait_by_reading(swiftws_io *io)
{
    apr_status_t rv = fill(io, APR_BLOCK_READ);
    if (rv == APR_SUCCESS) {
        return SWIFTWS_WAIT_READABLE;
    }
    if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
        return SWIFTWS_WAIT_TIMEOUT;
    }
    log_io(io, APLOG_DEBUG, rv, "reading from the WebSocket client failed");
    return SWIFTWS_WAIT_ERROR;
}

static int host_wait(void *io_, int wake_fd, long timeout_ms)
{
    swiftws_io *io = io_;
    apr_pollfd_t fds[2];
    apr_int32_t ready = 0;
    apr_status_t rv;
    if (!APR_BRIGADE_EMPTY(io->in) || io->at_end) {
        return SWIFTWS_WAIT_READABLE;
    }
    if (!io->can_poll_input) {
        return wait_by_reading(io);
    }
    if (io->wake_fd != wake_fd) {
        /* Wrapped once; apr_os_file_put registers no cleanup, so the
         * descriptor stays the bridge's to close. */
        apr_os_file_put(&io->wake, &wake_fd, APR_FOPEN_READ, io->pool);
        io->wake_fd = wake_fd;
    }
    fds[0] = io->input;
    fds[0].rtnevents = 0;
    memset(&fds[1], 0, sizeof(fds[1]));
    fds[1].desc_type = APR_POLL_FILE;
    fds[1].desc.f = io->wake;
    fds[1].reqevents = APR_POLLIN;
    /* A day at most, so far deadlines cannot overflow microseconds; a wait
     * that ends early only makes the driver look at its deadlines again. */
    if (timeout_ms > 86400L * 1000) {
        timeout_ms = 86400L * 1000;
    }
    rv = apr_poll(fds, 2, &ready, timeout_ms < 0 ? -1 : apr_time_from_msec(timeout_ms));
    if (APR_STATUS_IS_TIMEUP(rv)) {
        return SWIFTWS_WAIT_TIMEOUT;
    }
    if (APR_STATUS_IS_EINTR(rv)) {
        return SWIFTWS_WAIT_WOKEN;  /* the caller looks at everything again */
    }
    if (rv != APR_SUCCESS) {
        log_io(io, APLOG_ERR, rv, "poll on the WebSocket connection failed");
        return SWIFTWS_WAIT_ERROR;
    }
    /* Input first: a hang-up or error shows as readable too, and the read
     * that follows reports it. */
    return fds[0].rtnevents ? SWIFTWS_WAIT_READABLE : SWIFTWS_WAIT_WOKEN;
}

/* Passes `first` then `second` (either may be empty) down the output
 * filters as transient buckets, with a FLUSH when `flush`. With the FLUSH
 * the core output filter writes everything before returning, copying only
 * what it cannot write at once; a client that stops reading blocks this
 * for at most SwiftWebSocketWriteTimeout (see swiftws_io_start). Without
 * it the core writes what the socket takes and keeps the rest
 * (c->data_in_output_filters), waiting for the socket only when more than
 * FlushMaxThreshold (64 KiB) would be kept. Returns 0, or -1 when the
 * client is gone. */
static int pass_output(swiftws_io *io, const void *first, size_t first_length,
                       const void *second, size_t second_length, int flush)
{
    apr_bucket_alloc_t *ba = io->c->bucket_alloc;
    apr_status_t rv;
    if (first_length) {
        APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_transient_create(first, first_length, ba));
    }
    if (second_length) {
        APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_transient_create(second, second_length, ba));
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(io->out, apr_bucket_flush_create(ba));
    }
    rv = ap_pass_brigade(io->c->output_filters, io->out);
    apr_brigade_cleanup(io->out);
    if (rv != APR_SUCCESS || io->c->aborted) {
        log_io(io, APLOG_DEBUG, rv, "writing to the WebSocket client failed");
        return -1;
    }
    io->traffic->bytes_out += first_length + second_length;
    swiftws_count(io->traffic, SWIFTWS_COUNT_BYTES_OUT, (int64_t)(first_length + second_length));
    return 0;
}

static int host_write(void *io_, const void *first, size_t first_length,
                      const void *second, size_t second_length)
{
    return pass_output(io_, first, first_length, second, second_length, 1);
}

/* A parked connection's writes: never a FLUSH, so they do not wait. */
static int host_write_buffered(void *io_, const void *first, size_t first_length,
                               const void *second, size_t second_length)
{
    return pass_output(io_, first, first_length, second, second_length, 0);
}

/* The end of the output filter chain: the core output filter, which the
 * event MPM itself calls with no brigade to write what it kept. */
static ap_filter_t *core_output_filter(conn_rec *c)
{
    ap_filter_t *f = c->output_filters;
    while (f->next) {
        f = f->next;
    }
    return f;
}

/* Writes what the output filters kept: what the socket takes now, or all
 * of it when `waiting` (a FLUSH, bounded by the write timeout). Returns 1
 * while output is pending, 0 when none is, -1 when the client is gone. */
static int host_flush(void *io_, int waiting)
{
    swiftws_io *io = io_;
    if (waiting) {
        if (pass_output(io, NULL, 0, NULL, 0, 1) != 0) {
            return -1;
        }
    }
    else {
        ap_filter_t *core = core_output_filter(io->c);
        apr_status_t rv = core->frec->filter_func.out_func(core, NULL);
        if (rv != APR_SUCCESS || io->c->aborted) {
            log_io(io, APLOG_DEBUG, rv, "writing to the WebSocket client failed");
            return -1;
        }
    }
    return io->c->data_in_output_filters ? 1 : 0;
}

static void timer_fired(void *baton)
{
    swiftws_bridge_timer_fired(baton);
}

static int host_schedule_timer(long delay_us, void *baton)
{
    return ap_mpm_register_timed_callback(delay_us, timer_fired, baton) == APR_SUCCESS ? 0 : -1;
}

/* Both directions: epoll reports the socket at once, so the MPM resumes the
 * connection, finds it closed and closes it. */
static void host_shutdown(void *io_)
{
    swiftws_io *io = io_;
    apr_socket_t *socket = ap_get_conn_socket(io->c);
    if (socket) {
        apr_socket_shutdown(socket, APR_SHUTDOWN_READWRITE);
    }
}

static void host_log(void *io_, int level, const char *message)
{
    log_io(io_, level, 0, message);
}

static int host_log_level(void *io_)
{
    swiftws_io *io = io_;
    return io->r ? ap_get_request_module_loglevel(io->r, APLOG_MODULE_INDEX)
                 : ap_get_conn_module_loglevel(io->c, APLOG_MODULE_INDEX);
}

static void host_log_server(int level, const char *message)
{
    ap_log_error(APLOG_MARK, level, 0, ap_server_conf, "%s", message);
}

static void host_add_response_header(void *io_, const char *name, const char *value)
{
    swiftws_io *io = io_;
    apr_table_add(io->response_headers, name, value);
}

static void host_return_free_memory(void)
{
    malloc_trim(0);
}

static const void *host_handler_enter(void *io_)
{
    swiftws_io *io = io_;
    return swiftws_trap_enter(io->trap_label);
}

const swiftws_host swiftws_host_services = {
    host_read, host_wait, host_write, host_log, host_log_level, host_log_server,
    host_add_response_header, host_write_buffered, host_flush, host_schedule_timer, host_shutdown,
    swiftws_broker_publish, swiftws_broker_subscribe, swiftws_broker_unsubscribe, host_return_free_memory,
    host_handler_enter, swiftws_trap_leave, swiftws_count_close
};
