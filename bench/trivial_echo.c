/*
 * trivial_echo: the least a WebSocket echo server can do (fixed 101
 * answer, unmask, frame back), single-threaded on epoll. Measured
 * first, it shows the load generator's own ceiling: no real
 * server can be measured faster than this.
 *
 *   trivial_echo PORT
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ws_server.h"

#define BUFFER (1024 * 1024)

/* Echoes every complete frame in the buffer; returns -1 to drop. */
static int echo_frames(ws_peer *c)
{
    size_t at = 0;
    ws_client_frame frame;
    while (ws_client_frame_header(c->in.data + at, c->in.length - at, &frame)) {
        unsigned char *f = c->in.data + at, *payload = f + frame.header_length, header[10];
        if (c->in.length - at < frame.header_length + frame.length) break;
        if ((frame.first_byte & 0x0f) == 0x8) return -1;
        ws_unmask_payload(payload, f, &frame);
        if (write_all(c->fd, header, ws_server_frame_header(header, frame.first_byte, frame.length)) < 0 ||
            write_all(c->fd, payload, frame.length) < 0) return -1;
        at += frame.header_length + frame.length;
    }
    ws_input_used(&c->in, at);
    return 0;
}

static void readable(ws_peer *c)
{
    /* An echo compresses nothing: permessage-deflate is never accepted. */
    if (ws_read_peer(c, BUFFER, 0, NULL, echo_frames) < 0) {
        close(c->fd);
        free(c->in.data);
        free(c);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);  /* a peer gone mid-write is an error return, not death */
    ws_serve(atoi(argv[1]), sizeof(ws_peer), readable, NULL);
}
