#include "parking.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_log.h"
#include "ap_mpm.h"
#include "mpm_common.h"

#include "swiftwebsocket.h"

extern module AP_MODULE_DECLARE_DATA swiftwebsocket_module;
APLOG_USE_MODULE(swiftwebsocket);

/* Whether this connection can wait in the MPM without a thread: the event
 * MPM with CONN_STATE_ASYNC_WAITIO, and a connection of its own (an HTTP/2
 * stream is mod_http2's, on mod_http2's worker). */
int swiftws_can_park(conn_rec *c)
{
    int can_waitio = 0;
    return !c->master && c->cs && ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can_waitio) == APR_SUCCESS
           && can_waitio;
}

static void *parked_session(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &swiftwebsocket_module);
}

/* After the 101 of a parking session: runs onOpen and what the client sent
 * meanwhile, then hands the connection to the MPM. The request ends when
 * this returns; the connection's first wait is the MPM's write completion,
 * which `clogging_input_filters` makes resume it through
 * process_connection, and `sense` makes wait for input. */
int swiftws_park(request_rec *r, swiftws_io *io, void *session)
{
    conn_rec *c = r->connection;
    int next;
    ap_set_module_config(c->conn_config, &swiftwebsocket_module, session);
    next = swiftws_session_open_parked(session);
    swiftws_io_request_done(io);
    if (next != SWIFTWS_NEXT_CLOSED) {
        c->clogging_input_filters = 1;
        c->cs->sense = CONN_SENSE_WANT_READ;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "WebSocket parked in the MPM");
    }
    return DONE;
}

static int process_connection(conn_rec *c)
{
    void *session = parked_session(c);
    int next;
    if (!session) {
        return DECLINED;
    }
    next = swiftws_session_resume(session);
    if (next == SWIFTWS_NEXT_CLOSED) {
        c->cs->state = CONN_STATE_LINGER;
    }
    else {
        c->cs->state = CONN_STATE_ASYNC_WAITIO;
        c->cs->sense = next == SWIFTWS_NEXT_OUTPUT ? CONN_SENSE_WANT_WRITE : CONN_SENSE_WANT_READ;
    }
    return OK;
}

static void suspend_connection(conn_rec *c, request_rec *r)
{
    void *session = parked_session(c);
    if (session) {
        swiftws_session_parked(session);
    }
}

static void resume_connection(conn_rec *c, request_rec *r)
{
    void *session = parked_session(c);
    if (session) {
        swiftws_session_reclaimed(session);
    }
}

static int pre_close_connection(conn_rec *c)
{
    void *session = parked_session(c);
    if (session) {
        swiftws_session_abandon(session);
    }
    return OK;
}

void swiftws_parking_register_hooks(void)
{
    /* Before the HTTP protocol's own process_connection (REALLY_LAST). */
    ap_hook_process_connection(process_connection, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_suspend_connection(suspend_connection, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_resume_connection(resume_connection, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_close_connection(pre_close_connection, NULL, NULL, APR_HOOK_MIDDLE);
}
