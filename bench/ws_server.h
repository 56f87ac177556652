/*
 * What the trivial servers (trivial_echo.c, trivial_fanout.c) share: a
 * single-threaded epoll loop on 127.0.0.1, a fixed 101 answer, and
 * reading and unmasking client frames. Included by each program, so each
 * stays one compile command; the program says what it does with a
 * client's frames.
 */
#ifndef WS_SERVER_H
#define WS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

/* What a client has sent and the server has not handled yet. */
typedef struct {
    unsigned char *data;
    size_t length, room;
} ws_input;

/* A client as the loop knows it; a program's client type starts with one,
 * so that the loop can allocate it and hand it back. */
typedef struct {
    int fd;
    int upgraded;             /* its 101 is out: the rest of its input is frames */
    ws_input in;
} ws_peer;

/* Reads what the socket has into `in`, with room for at least `chunk`
 * bytes more each time. Returns 1 when it read some, 0 when there is
 * nothing yet, -1 when the client is gone. */
static int ws_read_input(int fd, ws_input *in, size_t chunk)
{
    ssize_t n;
    if (in->room - in->length < chunk) {
        in->room = in->length + chunk;
        in->data = realloc(in->data, in->room);
        if (!in->data) fail("realloc");
    }
    n = read(fd, in->data + in->length, in->room - in->length);
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) return -1;
    in->length += (size_t)n;
    return 1;
}

/* Drops the first `used` bytes of `in`. */
static void ws_input_used(ws_input *in, size_t used)
{
    memmove(in->data, in->data + used, in->length - used);
    in->length -= used;
}

/* Blocking write of everything: the peers read one message at a time,
 * and wsfanout's one thread never stops reading, so this cannot deadlock
 * with the benchmarks' clients. */
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

/* Takes the upgrade request out of `in` once it has all come, whatever it
 * asks: every client of these servers sends the same key. Returns 1 then
 * (*offers_deflate: it offered permessage-deflate), 0 while it has not. */
static int ws_take_upgrade_request(ws_input *in, int *offers_deflate)
{
    unsigned char *end = memmem(in->data, in->length, "\r\n\r\n", 4);
    if (!end) return 0;
    *offers_deflate = memmem(in->data, (size_t)(end - in->data), "permessage-deflate", 18) != NULL;
    ws_input_used(in, (size_t)(end + 4 - in->data));
    return 1;
}

/* The fixed 101 (the accept value of the key the clients send); with
 * permessage-deflate, server_no_context_takeover, so that each message a
 * client compressed on its own can be forwarded as it is. */
static int ws_answer_upgrade(int fd, int with_deflate)
{
    static const char response[] =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static const char response_with_deflate[] =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";
    return with_deflate ? write_all(fd, (const unsigned char *)response_with_deflate, sizeof(response_with_deflate) - 1)
                        : write_all(fd, (const unsigned char *)response, sizeof(response) - 1);
}

/* Reads what `peer` has sent, `chunk` bytes or more at a time: answers its
 * upgrade request (with permessage-deflate if `deflate_accepted` and it
 * offered it), calls `on_upgraded` (if any) once that is out, and then
 * `on_frames` with each new input. Returns 0 once the socket has nothing
 * more, -1 when the peer is to be dropped (gone, or `on_frames` said so). */
static int ws_read_peer(ws_peer *peer, size_t chunk, int deflate_accepted, void (*on_upgraded)(ws_peer *),
                        int (*on_frames)(ws_peer *))
{
    for (;;) {
        int offers_deflate, got = ws_read_input(peer->fd, &peer->in, chunk);
        if (got <= 0) return got;
        if (!peer->upgraded) {
            if (!ws_take_upgrade_request(&peer->in, &offers_deflate)) continue;
            if (ws_answer_upgrade(peer->fd, deflate_accepted && offers_deflate) < 0) return -1;
            peer->upgraded = 1;
            if (on_upgraded) on_upgraded(peer);
        }
        if (on_frames(peer) < 0) return -1;
    }
}

/* A client frame at the start of `data`, if its header has come. */
typedef struct {
    unsigned char first_byte;  /* FIN, RSV1 (compressed) and opcode */
    uint64_t length;           /* of the payload */
    size_t header_length;      /* the mask key included */
} ws_client_frame;

/* Reads the header of the client frame at `data` (`available` bytes);
 * 0 when it has not all come. Its payload may not have either. */
static int ws_client_frame_header(const unsigned char *data, size_t available, ws_client_frame *frame)
{
    size_t head = 2, i;
    uint64_t length;
    if (available < 2) return 0;
    length = data[1] & 0x7f;
    if (length == 126) head += 2;
    if (length == 127) head += 8;
    head += 4;  /* the mask key */
    if (available < head) return 0;
    if (length >= 126) {
        length = 0;
        for (i = 2; i < head - 4; i++) length = (length << 8) | data[i];
    }
    frame->first_byte = data[0];
    frame->length = length;
    frame->header_length = head;
    return 1;
}

/* Copies the payload of a complete client frame at `data` to `out`
 * unmasked (`out` may be the payload itself). */
static void ws_unmask_payload(unsigned char *out, const unsigned char *data, const ws_client_frame *frame)
{
    const unsigned char *key = data + frame->header_length - 4, *payload = data + frame->header_length;
    uint64_t i;
    for (i = 0; i < frame->length; i++) out[i] = payload[i] ^ key[i % 4];
}

/* The header of an unmasked server frame of `length` bytes; returns its
 * length, 10 at most. */
static size_t ws_server_frame_header(unsigned char *header, unsigned char first_byte, uint64_t length)
{
    size_t i;
    header[0] = first_byte;
    if (length < 126) {
        header[1] = (unsigned char)length;
        return 2;
    }
    if (length < 65536) {
        header[1] = 126;
        header[2] = (unsigned char)(length >> 8);
        header[3] = (unsigned char)length;
        return 4;
    }
    header[1] = 127;
    for (i = 0; i < 8; i++) header[2 + i] = (unsigned char)(length >> (56 - 8 * i));
    return 10;
}

/* Serves 127.0.0.1:port for ever, every socket non-blocking, Nagle off
 * (each answer is one small write). A new connection gets a zeroed client
 * of `client_size` bytes (a ws_peer first), `readable` handles one with
 * input, and `batch_handled` (if any) runs after each batch of events. */
_Noreturn static void ws_serve(int port, size_t client_size, void (*readable)(ws_peer *),
                               void (*batch_handled)(void))
{
    struct sockaddr_in address;
    struct epoll_event event, events[256];
    int listener, epoll_fd, one = 1;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0) fail("bind");
    if (listen(listener, 4096) < 0) fail("listen");
    epoll_fd = epoll_create1(0);
    event.events = EPOLLIN;
    event.data.ptr = NULL;  /* the listener: clients are never NULL */
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
    for (;;) {
        int n = epoll_wait(epoll_fd, events, 256, -1), i;
        for (i = 0; i < n; i++) {
            if (events[i].data.ptr) {
                readable(events[i].data.ptr);
            } else {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    ws_peer *peer = calloc(1, client_size);
                    if (!peer) fail("calloc");
                    peer->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    event.events = EPOLLIN;
                    event.data.ptr = peer;
                    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
                }
            }
        }
        if (batch_handled) batch_handled();
    }
}

#endif
