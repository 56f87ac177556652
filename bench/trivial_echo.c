/*
 * trivial_echo: the least a WebSocket echo server can do (fixed 101
 * answer, unmask, frame back), single-threaded on epoll. Measured
 * first, it shows the load generator's own ceiling: no real
 * server can be measured faster than this.
 *
 *   trivial_echo PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER (1024 * 1024)

typedef struct {
    int fd;
    int upgraded;
    unsigned char *in;        /* received, not yet handled */
    size_t in_length, in_room;
} client;

static const char response[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

/* Blocking write of everything: the peer reads one message at a time. */
static int write_all(int fd, const unsigned char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EAGAIN) {
            fd_set writable;
            FD_ZERO(&writable);
            FD_SET(fd, &writable);
            select(fd + 1, NULL, &writable, NULL, NULL);
            continue;
        }
        if (n <= 0) return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Echoes every complete frame in the buffer; returns -1 to drop. */
static int echo_frames(client *c)
{
    size_t at = 0;
    while (c->in_length - at >= 2) {
        unsigned char *f = c->in + at, header[10];
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
        if (c->in_length - at < head + length) break;
        if ((f[0] & 0x0f) == 0x8) return -1;
        for (i = 0; i < length; i++) f[head + i] ^= f[head - 4 + i % 4];
        header[0] = f[0];
        if (length < 126) {
            header[1] = (unsigned char)length;
        } else if (length < 65536) {
            header[1] = 126;
            header[2] = (unsigned char)(length >> 8);
            header[3] = (unsigned char)length;
            header_length = 4;
        } else {
            header[1] = 127;
            for (i = 0; i < 8; i++) header[2 + i] = (unsigned char)(length >> (56 - 8 * i));
            header_length = 10;
        }
        if (write_all(c->fd, header, header_length) < 0 || write_all(c->fd, f + head, length) < 0) return -1;
        at += head + length;
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
        }
        n = read(c->fd, c->in + c->in_length, c->in_room - c->in_length);
        if (n < 0 && errno == EAGAIN) return 0;
        if (n <= 0) return -1;
        c->in_length += (size_t)n;
        if (!c->upgraded) {
            unsigned char *end = memmem(c->in, c->in_length, "\r\n\r\n", 4);
            if (!end) continue;
            c->in_length -= (size_t)(end + 4 - c->in);
            memmove(c->in, end + 4, c->in_length);
            if (write_all(c->fd, (const unsigned char *)response, sizeof(response) - 1) < 0) return -1;
            c->upgraded = 1;
        }
        if (echo_frames(c) < 0) return -1;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in address;
    struct epoll_event event, events[256];
    int listener, epoll_fd, one = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);  /* a peer gone mid-write is an error return, not death */
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
            } else if (on_readable(c) < 0) {
                close(c->fd);
                free(c->in);
                free(c);
            }
        }
    }
}
