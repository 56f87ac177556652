/*
 * SwiftWebSocketConnectionLog: one JSON object per line for each closed
 * WebSocket (where, who, how long, the traffic each way, the close frames
 * and why it ended), to a file or a piped-log program, as httpd's own logs
 * take them ("|program", "|$shell command").
 */
#ifndef SWIFTWS_CONNECTION_LOG_H
#define SWIFTWS_CONNECTION_LOG_H

#include "status.h"

void swiftws_connection_log_register_hooks(void);

/* The connection's line, if there is a log; any thread, one write. */
void swiftws_connection_log_write(const swiftws_connection_record *record);

#endif
