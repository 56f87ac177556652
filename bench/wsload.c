/*
 * wsload: a WebSocket echo load generator, one for every server the
 * benchmarks compare (make bench-tools builds it). One thread, epoll, non-blocking sockets;
 * each connection keeps exactly one message in flight: it sends a
 * pre-built (pre-masked, optionally pre-compressed) frame, waits for the
 * whole echo, records the round trip, sends again.
 *
 *   wsload echo PORT PATH CONNECTIONS SIZE SECONDS [deflate]
 *   wsload handshakes PORT PATH CONCURRENCY SECONDS
 *   wsload hold PORT PATH CONNECTIONS SIZE [deflate]
 *
 * echo and handshakes print one JSON object: messages (or handshakes) per
 * second over the measured part of the run, how many round trips ended in
 * it (completed), p50/p99 round trip in
 * microseconds, the errors seen over the whole run, how many
 * connections never got their 101, and wsload's own CPU over the measured
 * part as a share of one core (client_cpu): on a machine it shares with
 * the server, what it takes the server does not get. The measured part starts after a
 * warm-up that begins once every connection has upgraded, so opening
 * 1,000 connections is not measured as echo time.
 *
 * hold opens the connections, has each echo one message (so compression
 * state exists on both sides), then keeps them open and idle: it prints
 * {"held": N, ...} and waits for its standard input to close. The memory
 * benchmark reads the server's size meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "ws_client.h"

#define WARMUP_SECONDS 0.25
/* Past this, a server that has not upgraded every connection is measured
 * with those it did upgrade (never_upgraded says how many it did not). */
#define UPGRADE_DEADLINE_SECONDS 3.0
#define MAX_SAMPLES (4 * 1024 * 1024)
#define READ_BUFFER (256 * 1024)

enum phase { CONNECTING, HANDSHAKING, RUNNING, HELD, CLOSING };

typedef struct {
    int fd;
    enum phase phase;
    size_t out_offset;        /* bytes of the current frame already sent */
    const char *out;          /* what is being sent: handshake or frame */
    size_t out_length;
    char head[4096];          /* the handshake response so far */
    size_t head_length;
    ws_frame_reader frames;   /* the server frame being read: its payload is skipped */
    uint64_t message_bytes;   /* payload of the echo so far */
    double sent_at;
    int watching_out;         /* EPOLLOUT is in the interest set */
    int upgraded;             /* has had a 101 (a reconnect counts once) */
} connection;

/* Compressible text: words picked by a fixed pseudo-random sequence, so
 * every run and every server gets the same bytes. */
static unsigned char *make_payload(size_t size)
{
    static const char *words[] = {"socket", "apache", "frame", "message", "swift", "echo",
                                  "server", "client", "deflate", "stream", "handler", "module"};
    unsigned char *payload = malloc(size ? size : 1);
    uint32_t state = 12345;
    size_t i = 0;
    while (i < size) {
        const char *word;
        state = state * 1103515245 + 12345;
        word = words[(state >> 16) % 12];
        for (; *word && i < size; word++) payload[i++] = (unsigned char)*word;
        if (i < size) payload[i++] = ' ';
    }
    return payload;
}

/* One raw DEFLATE block sequence for the payload, as permessage-deflate
 * sends it (sync flush, its 00 00 FF FF tail removed). No context is kept
 * between messages: a client may always leave out references to earlier
 * messages, whatever was negotiated, so every server can take these. */
static unsigned char *compress_payload(const unsigned char *payload, size_t size, size_t *compressed_size)
{
    z_stream z;
    size_t room = size + size / 100 + 64;
    unsigned char *out = malloc(room);
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) fail("deflateInit2");
    z.next_in = (unsigned char *)payload;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)room;
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0) fail("deflate");
    *compressed_size = room - z.avail_out - 4;
    deflateEnd(&z);
    return out;
}

/* A masked binary frame (RSV1 set when compressed). */
static char *make_frame(const unsigned char *payload, size_t size, int compressed, size_t *frame_size)
{
    unsigned char *frame = malloc(size + 14);
    size_t header_length = ws_masked_frame_header(frame, 0x2, compressed, size);
    ws_mask(frame + header_length, payload, size);
    *frame_size = header_length + size;
    return (char *)frame;
}

/* Echo runs ask the server not to keep its compression context between
 * messages: otherwise each echo of the same message would be a few bytes
 * of back-references to the one before, not a compressed message.
 * (client_no_context_takeover is not offered: pywebsocket3 declines
 * offers that carry it.) Idle connections are held with the offer
 * browsers make, so the memory they cost is what a browser's costs. */
static const char deflate_offer_for_echo[] =
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n";
static const char deflate_offer_of_browsers[] =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

static const unsigned char close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};

static char handshake[1024];
static size_t handshake_length;
static char *frame;
static size_t frame_length;
static int deflate_wanted;
static uint64_t message_size;
static uint64_t compressed_echo_size;  /* of the first compressed echo */
static int measuring_handshakes;
static int holding;
static int upgraded_count, held_count;
static int load_started;

static struct sockaddr_in server;
static int epoll_fd;
static double measure_from, measure_until;
static double *samples;
static size_t sample_count;
static long completed, errors;

static void watch(connection *c, int op)
{
    ws_watch(epoll_fd, op, c->fd, c, &c->watching_out, c->phase == CONNECTING || c->out_offset < c->out_length);
}

static void start_sending(connection *c, const char *data, size_t length)
{
    c->out = data;
    c->out_length = length;
    c->out_offset = 0;
}

static void open_connection(connection *c)
{
    int upgraded = c->upgraded;
    memset(c, 0, sizeof(*c));
    c->upgraded = upgraded;
    c->sent_at = now();  /* a handshake's round trip starts at connect */
    c->fd = ws_connect(&server);
    c->phase = CONNECTING;
    start_sending(c, handshake, handshake_length);
    watch(c, EPOLL_CTL_ADD);
}

/* Starts over on a new socket: in handshake mode each connection lives for
 * one handshake; in echo mode a failure is counted and the slot
 * reconnects. */
static void recycle(connection *c, int failed)
{
    if (failed) errors++;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    open_connection(c);
}

static void send_message(connection *c)
{
    start_sending(c, frame, frame_length);
    c->sent_at = now();
}

/* Round trips that end in the measured window count, whenever they began:
 * with 1,000 connections of 256 KiB messages one round can outlast the
 * window, and counting only those begun in it would count nothing. */
static void record(connection *c)
{
    double t = now();
    if (t >= measure_from && t <= measure_until) {
        completed++;
        if (sample_count < MAX_SAMPLES) samples[sample_count++] = t - c->sent_at;
    }
}

static void handshake_done(connection *c)
{
    if (measuring_handshakes) {
        record(c);
        c->phase = CLOSING;
        start_sending(c, (const char *)close_frame, sizeof(close_frame));
        return;
    }
    if (!c->upgraded) upgraded_count++;
    c->upgraded = 1;
    c->phase = RUNNING;
    /* Echo load starts once every connection is open: otherwise the first
     * connections' messages would starve the handshakes of the rest. */
    if (holding || load_started) send_message(c);
}

/* An echo has arrived whole: -1 when it is not what was sent. */
static int on_echo(connection *c)
{
    /* An uncompressed echo is as long as what was sent; a compressed one
     * (no context kept) as long every time. */
    if (!deflate_wanted && c->message_bytes != message_size) return -1;
    if (deflate_wanted && compressed_echo_size == 0) compressed_echo_size = c->message_bytes;
    if (deflate_wanted && c->message_bytes != compressed_echo_size) return -1;
    c->message_bytes = 0;
    if (holding) {
        c->phase = HELD;
        held_count++;
        return 0;
    }
    record(c);
    send_message(c);
    return 0;
}

/* Parses the bytes of server frames; returns 0, or -1 on a protocol error
 * or the server's close. */
static int consume_frames(connection *c, const unsigned char *data, size_t length)
{
    ws_frame_reader *frame = &c->frames;
    for (;;) {
        const unsigned char *chunk;
        size_t chunk_length;
        switch (ws_read_frame(frame, &data, &length, &chunk, &chunk_length)) {
        case WS_NEED_MORE:
            return 0;
        case WS_MASKED_FRAME:
            return -1;
        case WS_FRAME_STARTED:
            if (frame->opcode < 0x8) c->message_bytes += frame->payload_left;
            break;
        case WS_PAYLOAD:
            break;
        case WS_FRAME_ENDED:
            if (frame->opcode == 0x8) return -1;
            if (frame->opcode >= 0x8 || !frame->fin) break;  /* pings and pongs are skipped */
            if (on_echo(c) < 0) return -1;
            if (c->phase == HELD) return 0;  /* a held connection stops reading here */
            break;
        }
    }
}

/* The handshake response: 101, with the extension when asked for.
 * Returns 1 when complete (*used: its bytes), 0 for more, -1 refused. */
static int consume_handshake(connection *c, const unsigned char *data, size_t length, size_t *used)
{
    int upgraded = ws_feed_upgrade_response(c->head, sizeof(c->head), &c->head_length, data, length, used);
    if (upgraded <= 0) return upgraded;
    if (deflate_wanted && !strcasestr(c->head, "permessage-deflate")) {
        fprintf(stderr, "wsload: the server did not accept permessage-deflate\n");
        exit(3);
    }
    handshake_done(c);
    return 1;
}

/* Writes what is pending; returns -1 if the connection was recycled. */
static int flush(connection *c)
{
    if (c->phase == CONNECTING) {
        if (ws_connect_failed(c->fd)) {
            recycle(c, 1);
            return -1;
        }
        c->phase = HANDSHAKING;
    }
    if (ws_write_pending(c->fd, c->out, c->out_length, &c->out_offset) < 0) {
        recycle(c, 1);
        return -1;
    }
    watch(c, EPOLL_CTL_MOD);
    return 0;
}

static void on_readable(connection *c)
{
    static unsigned char buffer[READ_BUFFER];
    for (;;) {
        ssize_t n = read(c->fd, buffer, sizeof(buffer));
        size_t offset = 0;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0 || c->phase == CLOSING) {
            /* In handshake mode the server's close reply (or its end of
             * the connection) completes the cycle. */
            recycle(c, c->phase != CLOSING);
            return;
        }
        if (c->phase == HANDSHAKING) {
            int done = consume_handshake(c, buffer, (size_t)n, &offset);
            if (done < 0) {
                recycle(c, 1);
                return;
            }
            if (!done) continue;
        }
        if ((c->phase == RUNNING || c->phase == HELD) && consume_frames(c, buffer + offset, (size_t)n - offset) < 0) {
            recycle(c, 1);
            return;
        }
        if (flush(c) < 0) return;
    }
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The smallest sample at or above the fraction p of all (nearest rank). */
/* User and system CPU this process has used. */
static double cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static double percentile(double p)
{
    size_t rank;
    if (sample_count == 0) return 0.0;
    rank = (size_t)ceil(p * (double)sample_count);
    return samples[rank > 0 ? rank - 1 : 0];
}

/* Runs the event loop until `until` or until `done()` says so. */
static void run_loop(int count, double until, int (*done)(int))
{
    struct epoll_event events[256];
    while (now() < until && !(done && done(count))) {
        int n = epoll_wait(epoll_fd, events, 256, 50), j;
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (j = 0; j < n; j++) {
            connection *c = events[j].data.ptr;
            if (events[j].events & (EPOLLOUT | EPOLLERR) && flush(c) < 0) continue;
            if (events[j].events & (EPOLLIN | EPOLLHUP)) on_readable(c);
        }
    }
}

static int all_upgraded(int count) { return upgraded_count == count; }
static int all_held(int count) { return held_count == count; }

static int never_upgraded(connection *connections, int count)
{
    int i, waiting = 0;
    for (i = 0; i < count; i++) {
        if (connections[i].phase == CONNECTING || connections[i].phase == HANDSHAKING) waiting++;
    }
    return waiting;
}

int main(int argc, char **argv)
{
    int port, count;
    double seconds = 0;
    const char *path;
    size_t size = 0;
    connection *connections;
    double started, cpu_from, cpu_used;
    int i;

    if (argc >= 6 && strcmp(argv[1], "handshakes") == 0) {
        measuring_handshakes = 1;
        seconds = atof(argv[5]);
    } else if (argc >= 7 && strcmp(argv[1], "echo") == 0) {
        size = (size_t)atol(argv[5]);
        seconds = atof(argv[6]);
        deflate_wanted = argc >= 8 && strcmp(argv[7], "deflate") == 0;
    } else if (argc >= 6 && strcmp(argv[1], "hold") == 0) {
        holding = 1;
        size = (size_t)atol(argv[5]);
        deflate_wanted = argc >= 7 && strcmp(argv[6], "deflate") == 0;
    } else {
        fprintf(stderr, "usage: wsload echo PORT PATH CONNECTIONS SIZE SECONDS [deflate]\n"
                        "       wsload handshakes PORT PATH CONCURRENCY SECONDS\n"
                        "       wsload hold PORT PATH CONNECTIONS SIZE [deflate]\n");
        return 2;
    }
    if (seconds < 0 || (!holding && seconds == 0)) {
        fprintf(stderr, "wsload: SECONDS must be positive\n");
        return 2;
    }
    message_size = size;
    signal(SIGPIPE, SIG_IGN);  /* a peer gone mid-write is an error return, not death */
    port = atoi(argv[2]);
    path = argv[3];
    count = atoi(argv[4]);
    handshake_length = ws_upgrade_request(handshake, sizeof(handshake), path, port,
        !deflate_wanted ? "" : holding ? deflate_offer_of_browsers : deflate_offer_for_echo);
    if (!measuring_handshakes) {
        unsigned char *payload = make_payload(size);
        if (deflate_wanted) {
            size_t compressed_size;
            unsigned char *compressed = compress_payload(payload, size, &compressed_size);
            frame = make_frame(compressed, compressed_size, 1, &frame_length);
            free(compressed);
        } else {
            frame = make_frame(payload, size, 0, &frame_length);
        }
        free(payload);
    }
    server = ws_loopback_address(port);
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) fail("epoll_create1");

    /* Nothing is measured until the warm-up: record() ignores all
     * round trips before measure_from. */
    measure_from = measure_until = HUGE_VAL;
    started = now();
    connections = calloc((size_t)count, sizeof(connection));
    for (i = 0; i < count; i++) open_connection(&connections[i]);

    if (holding) {
        char ignored[256];
        run_loop(count, started + UPGRADE_DEADLINE_SECONDS, all_held);
        printf("{\"held\": %d, \"errors\": %ld, \"never_upgraded\": %d}\n", held_count, errors,
               never_upgraded(connections, count));
        fflush(stdout);
        while (read(STDIN_FILENO, ignored, sizeof(ignored)) > 0) {
        }
        return 0;
    }
    if (!measuring_handshakes) {
        run_loop(count, started + UPGRADE_DEADLINE_SECONDS, all_upgraded);
        load_started = 1;
        for (i = 0; i < count; i++) {
            if (connections[i].phase == RUNNING) {
                send_message(&connections[i]);
                flush(&connections[i]);
            }
        }
    }
    measure_from = now() + WARMUP_SECONDS;
    measure_until = measure_from + seconds;
    run_loop(count, measure_from, NULL);
    cpu_from = cpu_seconds();
    run_loop(count, measure_until, NULL);
    cpu_used = cpu_seconds() - cpu_from;

    qsort(samples, sample_count, sizeof(double), by_value);
    printf("{\"rate\": %.1f, \"completed\": %ld, \"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %ld, "
           "\"never_upgraded\": %d, \"client_cpu\": %.2f}\n",
           completed / seconds, completed, percentile(0.50) * 1e6, percentile(0.99) * 1e6, errors,
           measuring_handshakes ? 0 : never_upgraded(connections, count), cpu_used / seconds);
    return 0;
}
