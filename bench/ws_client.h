/*
 * What the load generators (wsload.c, wsfanout.c) share as WebSocket
 * clients on non-blocking sockets: connecting, the upgrade request and its
 * 101, masked frames out and server frames in. Included by each program,
 * so each stays one compile command; the program defines the rest.
 */
#ifndef WS_CLIENT_H
#define WS_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

static struct sockaddr_in ws_loopback_address(int port)
{
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* A non-blocking socket, Nagle off (one small frame at a time is the
 * load), connecting to `server`: the connect ends when the socket turns
 * writable, and ws_connect_failed says how. */
static int ws_connect(const struct sockaddr_in *server)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) fail("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)server, sizeof(*server)) < 0 && errno != EINPROGRESS) fail("connect");
    return fd;
}

static int ws_connect_failed(int fd)
{
    int error = 0;
    socklen_t size = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    return error != 0;
}

/* (Re)registers `fd` for EPOLLIN, and for EPOLLOUT only while `wants_out`
 * (a connect to finish, bytes to write): a socket that can always be
 * written would wake every epoll_wait. A modification that changes nothing
 * costs no system call. */
static void ws_watch(int epoll_fd, int op, int fd, void *owner, int *watching_out, int wants_out)
{
    struct epoll_event event;
    if (op == EPOLL_CTL_MOD && wants_out == *watching_out) return;
    *watching_out = wants_out;
    event.events = EPOLLIN | (wants_out ? EPOLLOUT : 0);
    event.data.ptr = owner;
    if (epoll_ctl(epoll_fd, op, fd, &event) < 0) fail("epoll_ctl");
}

/* Writes from data + *offset as far as the socket takes; -1 when it
 * failed (not merely full). */
static int ws_write_pending(int fd, const char *data, size_t length, size_t *offset)
{
    while (*offset < length) {
        ssize_t n = write(fd, data + *offset, length - *offset);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        *offset += (size_t)n;
    }
    return 0;
}

/* The upgrade request for `target` (path and query), with the
 * Sec-WebSocket-Extensions line `extension_offer` ("" for none). Every
 * request carries the same key: no test here checks the accept value. */
static size_t ws_upgrade_request(char *request, size_t room, const char *target, int port, const char *extension_offer)
{
    return (size_t)snprintf(request, room,
        "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
        target, port, extension_offer);
}

/* Collects the upgrade response into `head` (`size` bytes, *head_length
 * of them so far, kept NUL-terminated for the caller's searches). Returns
 * 1 for a complete 101 (*used: the bytes of `data` that were its end; the
 * rest are frames), 0 while it is incomplete, -1 for another status or a
 * response too long for `head`. */
static int ws_feed_upgrade_response(char *head, size_t size, size_t *head_length, const unsigned char *data,
                                    size_t length, size_t *used)
{
    char *end;
    size_t room = size - 1 - *head_length;
    size_t take = length < room ? length : room;
    size_t before = *head_length;
    memcpy(head + *head_length, data, take);
    *head_length += take;
    head[*head_length] = '\0';
    end = strstr(head, "\r\n\r\n");
    if (!end) {
        *used = take;
        return *head_length == size - 1 ? -1 : 0;
    }
    *used = (size_t)(end + 4 - head) - before;
    return strncmp(head, "HTTP/1.1 101", 12) == 0 ? 1 : -1;
}

static const unsigned char ws_mask_key[4] = {0x12, 0x34, 0x56, 0x78};

/* The header of a final client frame, masked with ws_mask_key (RSV1 set
 * when compressed); returns its length, 14 at most. */
static size_t ws_masked_frame_header(unsigned char *header, int opcode, int compressed, uint64_t size)
{
    size_t n = 0, i;
    header[n++] = (unsigned char)(0x80 | (compressed ? 0x40 : 0) | opcode);
    if (size < 126) {
        header[n++] = (unsigned char)(0x80 | size);
    } else if (size < 65536) {
        header[n++] = 0x80 | 126;
        header[n++] = (unsigned char)(size >> 8);
        header[n++] = (unsigned char)size;
    } else {
        header[n++] = 0x80 | 127;
        for (i = 0; i < 8; i++) header[n++] = (unsigned char)(size >> (56 - 8 * i));
    }
    memcpy(header + n, ws_mask_key, 4);
    return n + 4;
}

static void ws_mask(unsigned char *masked, const unsigned char *payload, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++) masked[i] = payload[i] ^ ws_mask_key[i % 4];
}

/* Server frames as they arrive, in pieces of any size: the header, then
 * the payload. Zeroed, it expects a frame's first byte. */
typedef struct {
    unsigned char header[14];
    size_t header_have;
    int in_payload;
    uint64_t payload_left;    /* from WS_FRAME_STARTED on: the payload still to come */
    int fin, opcode;
    int compressed;           /* RSV1: set on a compressed message's first frame */
} ws_frame_reader;

enum ws_frame_event {
    WS_NEED_MORE,             /* all of the data is used */
    WS_MASKED_FRAME,          /* a protocol error: servers never mask */
    WS_FRAME_STARTED,         /* fin, opcode, compressed and payload_left are the frame's */
    WS_PAYLOAD,               /* *chunk_length bytes of its payload at *chunk */
    WS_FRAME_ENDED
};

/* Advances over `*data` (*length bytes, both moved past what is used) to
 * the next event; called until WS_NEED_MORE. A frame without payload
 * ends without WS_PAYLOAD, at once, even with no data left. */
static enum ws_frame_event ws_read_frame(ws_frame_reader *r, const unsigned char **data, size_t *length,
                                         const unsigned char **chunk, size_t *chunk_length)
{
    size_t need = 2, i;
    int len7;
    if (r->in_payload) {
        size_t take;
        if (r->payload_left == 0) {
            r->in_payload = 0;
            return WS_FRAME_ENDED;
        }
        if (*length == 0) return WS_NEED_MORE;
        take = *length < r->payload_left ? *length : (size_t)r->payload_left;
        *chunk = *data;
        *chunk_length = take;
        r->payload_left -= take;
        *data += take;
        *length -= take;
        return WS_PAYLOAD;
    }
    while (r->header_have < 2 && *length > 0) {
        r->header[r->header_have++] = *(*data)++;
        (*length)--;
    }
    if (r->header_have < 2) return WS_NEED_MORE;
    len7 = r->header[1] & 0x7f;
    if (r->header[1] & 0x80) return WS_MASKED_FRAME;
    need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    while (r->header_have < need && *length > 0) {
        r->header[r->header_have++] = *(*data)++;
        (*length)--;
    }
    if (r->header_have < need) return WS_NEED_MORE;
    r->fin = r->header[0] & 0x80;
    r->compressed = (r->header[0] & 0x40) != 0;
    r->opcode = r->header[0] & 0x0f;
    r->payload_left = (uint64_t)len7;
    if (len7 >= 126) {
        r->payload_left = 0;
        for (i = 2; i < need; i++) r->payload_left = (r->payload_left << 8) | r->header[i];
    }
    r->header_have = 0;
    r->in_payload = 1;
    return WS_FRAME_STARTED;
}

#endif
