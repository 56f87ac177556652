/*
 * Event-style connections parked in the event MPM between messages
 * (CONN_STATE_ASYNC_WAITIO, httpd 2.4.63 and later). The session lives in
 * the connection config:
 *   process_connection    resumes it when the socket is ready;
 *   suspend/resume_connection  bracket its waits in the MPM, when timers
 *                         (keepalive, other threads' messages) may write to it;
 *   pre_close_connection  sends 1001 when httpd's Timeout ends the wait.
 */
#ifndef SWIFTWS_PARKING_H
#define SWIFTWS_PARKING_H

#include "httpd.h"

#include "connection_io.h"

/* Whether this connection can wait in the MPM without a thread. */
int swiftws_can_park(conn_rec *c);

/* After the 101 of a parking session: hands it to the MPM; returns what
 * the content handler returns. */
int swiftws_park(request_rec *r, swiftws_io *io, void *session);

void swiftws_parking_register_hooks(void);

#endif
