/*
 * The services the Swift bridge calls back for one connection: reads,
 * waits, writes through the connection's filters (so mod_ssl, mod_http2 and
 * bytes the core already buffered are honoured) and logging against the
 * request.
 */
#ifndef SWIFTWS_CONNECTION_IO_H
#define SWIFTWS_CONNECTION_IO_H

#include "httpd.h"
#include "apr_tables.h"
#include "apr_poll.h"
#include "swiftwebsocket.h"

typedef struct {
    request_rec *r;                 /* NULL once a parked connection's request ended */
    conn_rec *c;
    apr_pool_t *pool;               /* the request's, or the connection's when parked */
    apr_bucket_brigade *in;
    apr_bucket_brigade *out;
    apr_table_t *response_headers;  /* collected during the extra handshake */
    int input_seen;                 /* any input bucket read yet */
    int at_end;                     /* the input stream ended */
    apr_pollfd_t input;             /* what apr_poll watches for input (ap_get_pollfd_from_conn) */
    int can_poll_input;             /* 0: none to poll (a read waits instead) */
    apr_file_t *wake;               /* the connection's wake-up eventfd, for apr_poll */
    int wake_fd;                    /* the descriptor `wake` wraps; -1 before the first wait */
    const struct swiftws_trap_label *trap_label;  /* what a trap in its handler reports */
    swiftws_traffic *traffic;       /* where the bytes each way are counted */
} swiftws_io;

extern const swiftws_host swiftws_host_services;

/* `pool` is the request's for a connection served on this thread, the
 * connection's for one that parks in the MPM (it outlives the request). */
swiftws_io *swiftws_io_create(request_rec *r, apr_pool_t *pool);

/* After the 101: the brigades the data transfer uses, made once, and the
 * bound on a blocked write (milliseconds; -1 for the default). */
void swiftws_io_start(swiftws_io *io, apr_int64_t write_timeout_ms);

/* A parked connection's request is over: log against the connection. */
void swiftws_io_request_done(swiftws_io *io);

#endif
