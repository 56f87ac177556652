/*
 * trivial_fanout: the least a WebSocket fan-out server can do, single-
 * threaded on epoll. It answers every upgrade with a fixed 101 and,
 * whenever any client sends a message, writes that message as one
 * pre-built unmasked frame to every connection, the sender's included.
 * Measured beside the module by the same client (bench/wsfanout.c), it
 * shows what delivery to N sockets costs by itself.
 *
 * A client offering permessage-deflate is answered with it
 * (server_no_context_takeover), and a compressed message is forwarded as
 * it came (RSV1 kept): compressed once, by its sender, the least a
 * compressing server can do. So members are all plain or all compressed,
 * as in a benchmark run.
 *
 *   trivial_fanout PORT
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ws_server.h"

#define BUFFER (64 * 1024)

typedef struct {
    ws_peer peer;             /* first: the loop hands back a ws_peer */
    int dropped;              /* closed; freed once the event batch is done */
    size_t slot;              /* its place in `upgraded_clients` */
} client;

static client **upgraded_clients;
static size_t upgraded_count, upgraded_room;
/* Clients dropped while handling the current batch of events: a later
 * event in the batch, or the sender whose message is being fanned out,
 * may still point at one. */
static client **dropped_clients;
static size_t dropped_count, dropped_room;

/* Once its 101 is out, a client gets every message. */
static void add_upgraded(ws_peer *peer)
{
    client *c = (client *)peer;
    if (upgraded_count == upgraded_room) {
        upgraded_room = upgraded_room ? upgraded_room * 2 : 1024;
        upgraded_clients = realloc(upgraded_clients, upgraded_room * sizeof(client *));
        if (!upgraded_clients) fail("realloc");
    }
    c->slot = upgraded_count;
    upgraded_clients[upgraded_count++] = c;
}

static void drop(client *c)
{
    if (c->dropped) return;
    if (c->peer.upgraded) {
        client *last = upgraded_clients[--upgraded_count];
        upgraded_clients[c->slot] = last;
        last->slot = c->slot;
    }
    close(c->peer.fd);
    c->dropped = 1;
    if (dropped_count == dropped_room) {
        dropped_room = dropped_room ? dropped_room * 2 : 64;
        dropped_clients = realloc(dropped_clients, dropped_room * sizeof(client *));
        if (!dropped_clients) fail("realloc");
    }
    dropped_clients[dropped_count++] = c;
}

static void free_dropped(void)
{
    while (dropped_count > 0) {
        client *c = dropped_clients[--dropped_count];
        free(c->peer.in.data);
        free(c);
    }
}

/* One frame, built once, to every connection. Written blocking (a
 * client that stopped reading would stall the fan-out, which a trivial
 * server may). */
static void fan_out(const unsigned char *frame, size_t length)
{
    size_t i = 0;
    while (i < upgraded_count) {
        if (write_all(upgraded_clients[i]->peer.fd, frame, length) < 0) {
            drop(upgraded_clients[i]);  /* the last one moves into slot i */
            continue;
        }
        i++;
    }
}

/* Sends every complete frame in the buffer to everyone; returns -1 to
 * drop the sender (its close, or a frame too long for the buffer). */
static int fan_out_frames(ws_peer *sender)
{
    client *c = (client *)sender;
    static unsigned char frame[BUFFER + 10];
    size_t at = 0;
    ws_client_frame received;
    while (ws_client_frame_header(sender->in.data + at, sender->in.length - at, &received)) {
        const unsigned char *f = sender->in.data + at;
        size_t header_length;
        if (received.length > BUFFER) return -1;
        if (sender->in.length - at < received.header_length + received.length) break;
        if ((received.first_byte & 0x0f) == 0x8) return -1;
        /* FIN, RSV1 (compressed) and opcode as sent */
        header_length = ws_server_frame_header(frame, received.first_byte, received.length);
        ws_unmask_payload(frame + header_length, f, &received);
        at += received.header_length + received.length;
        if ((received.first_byte & 0x0f) < 0x8) fan_out(frame, header_length + received.length);  /* pings and pongs are not */
        if (c->dropped) return -1;  /* writing to the sender failed */
    }
    ws_input_used(&sender->in, at);
    return 0;
}

static void readable(ws_peer *peer)
{
    client *c = (client *)peer;
    if (!c->dropped && ws_read_peer(peer, BUFFER, 1, add_upgraded, fan_out_frames) < 0) drop(c);
}

int main(int argc, char **argv)
{
    struct rlimit limit;
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_fanout PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);  /* a peer gone mid-write is an error return, not death */
    /* As many connections as the hard limit allows (10,000 in a benchmark). */
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    ws_serve(atoi(argv[1]), sizeof(client), readable, free_dropped);
}
