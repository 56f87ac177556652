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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER (64 * 1024)

typedef struct {
    int fd;
    int upgraded;
    int dropped;              /* closed; freed once the event batch is done */
    size_t slot;              /* its place in `upgraded_clients` */
    unsigned char *in;        /* received, not yet handled */
    size_t in_length, in_room;
} client;

static const char response[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
static const char response_with_deflate[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";

static client **upgraded_clients;
static size_t upgraded_count, upgraded_room;
/* Clients dropped while handling the current batch of events: a later
 * event in the batch, or the sender whose message is being fanned out,
 * may still point at one. */
static client **dropped_clients;
static size_t dropped_count, dropped_room;

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

/* Blocking write of everything. It cannot deadlock with wsfanout, whose
 * one thread never stops reading; a client that stopped would stall the
 * fan-out, which a trivial server may. */
static int write_all(int fd, const unsigned char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd writable = {.fd = fd, .events = POLLOUT};
            poll(&writable, 1, -1);
            continue;
        }
        if (n <= 0) return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

static void add_upgraded(client *c)
{
    if (upgraded_count == upgraded_room) {
        upgraded_room = upgraded_room ? upgraded_room * 2 : 1024;
        upgraded_clients = realloc(upgraded_clients, upgraded_room * sizeof(client *));
        if (!upgraded_clients) fail("realloc");
    }
    c->slot = upgraded_count;
    upgraded_clients[upgraded_count++] = c;
    c->upgraded = 1;
}

static void drop(client *c)
{
    if (c->dropped) return;
    if (c->upgraded) {
        client *last = upgraded_clients[--upgraded_count];
        upgraded_clients[c->slot] = last;
        last->slot = c->slot;
    }
    close(c->fd);
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
        free(c->in);
        free(c);
    }
}

/* One frame, built once, to every connection. */
static void fan_out(const unsigned char *frame, size_t length)
{
    size_t i = 0;
    while (i < upgraded_count) {
        if (write_all(upgraded_clients[i]->fd, frame, length) < 0) {
            drop(upgraded_clients[i]);  /* the last one moves into slot i */
            continue;
        }
        i++;
    }
}

/* Sends every complete frame in the buffer to everyone; returns -1 to
 * drop the sender (its close, or a frame too long for the buffer). */
static int fan_out_frames(client *c)
{
    static unsigned char frame[BUFFER + 14];
    size_t at = 0;
    while (c->in_length - at >= 2) {
        unsigned char *f = c->in + at;
        uint64_t length = f[1] & 0x7f;
        size_t head = 2, header_length = 2, i;
        if (length == 126) head += 2;
        if (length == 127) head += 8;
        head += 4;  /* the mask key */
        if (c->in_length - at < head) break;
        if (length >= 126) {
            length = 0;
            for (i = 2; i < head - 4; i++) length = (length << 8) | f[i];
        }
        if (length > BUFFER) return -1;
        if (c->in_length - at < head + length) break;
        if ((f[0] & 0x0f) == 0x8) return -1;
        frame[0] = f[0];  /* FIN, RSV1 (compressed) and opcode as sent */
        if (length < 126) {
            frame[1] = (unsigned char)length;
        } else {
            frame[1] = 126;
            frame[2] = (unsigned char)(length >> 8);
            frame[3] = (unsigned char)length;
            header_length = 4;
        }
        for (i = 0; i < length; i++) frame[header_length + i] = f[head + i] ^ f[head - 4 + i % 4];
        at += head + length;
        if ((f[0] & 0x0f) < 0x8) fan_out(frame, header_length + length);  /* pings and pongs are not */
        if (c->dropped) return -1;  /* writing to the sender failed */
    }
    memmove(c->in, c->in + at, c->in_length - at);
    c->in_length -= at;
    return 0;
}

static int on_readable(client *c)
{
    for (;;) {
        ssize_t n;
        if (c->in_room - c->in_length < BUFFER) {
            c->in_room = c->in_length + BUFFER;
            c->in = realloc(c->in, c->in_room);
            if (!c->in) fail("realloc");
        }
        n = read(c->fd, c->in + c->in_length, c->in_room - c->in_length);
        if (n < 0 && errno == EAGAIN) return 0;
        if (n <= 0) return -1;
        c->in_length += (size_t)n;
        if (!c->upgraded) {
            unsigned char *end = memmem(c->in, c->in_length, "\r\n\r\n", 4);
            int deflate;
            if (!end) continue;
            deflate = memmem(c->in, (size_t)(end - c->in), "permessage-deflate", 18) != NULL;
            c->in_length -= (size_t)(end + 4 - c->in);
            memmove(c->in, end + 4, c->in_length);
            if (deflate ? write_all(c->fd, (const unsigned char *)response_with_deflate, sizeof(response_with_deflate) - 1)
                        : write_all(c->fd, (const unsigned char *)response, sizeof(response) - 1)) return -1;
            add_upgraded(c);
        }
        if (fan_out_frames(c) < 0) return -1;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in address;
    struct epoll_event event, events[256];
    struct rlimit limit;
    int listener, epoll_fd, one = 1;
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
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)atoi(argv[1]));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0) fail("bind");
    if (listen(listener, 4096) < 0) fail("listen");
    epoll_fd = epoll_create1(0);
    event.events = EPOLLIN;
    event.data.ptr = NULL;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
    for (;;) {
        int n = epoll_wait(epoll_fd, events, 256, -1), i;
        for (i = 0; i < n; i++) {
            client *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof(*c));
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    event.events = EPOLLIN;
                    event.data.ptr = c;
                    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
                }
            } else if (!c->dropped && on_readable(c) < 0) {
                drop(c);
            }
        }
        free_dropped();
    }
}
