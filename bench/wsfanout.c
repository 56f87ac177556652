/*
 * wsfanout: a WebSocket fan-out load generator (make bench-broadcast).
 * One thread, epoll, non-blocking sockets, like wsload. Members are
 * connections to a group; one member publishes, and every member's receipt
 * is timed against the CLOCK_MONOTONIC time carried in the payload, so a
 * delivery time is exact whoever received it.
 *
 *   wsfanout broadcast PORT PATH MEMBERS ROUNDS [deflate]
 *   wsfanout rooms PORT PATH ROOMS MEMBERS RATE SECONDS
 *
 * broadcast: MEMBERS connections to PATH, one group. ROUNDS times, member 0
 * publishes and waits until every member (itself included) has the
 * message; per round, the delivery time of the first, median and last
 * member. With `deflate` the members offer permessage-deflate with
 * server_no_context_takeover, as wsload does, and inflate what they get.
 *
 * rooms: ROOMS x MEMBERS connections, member m of room r to
 * PATH?room=r<r>. RATE publishes a second for SECONDS, going round the
 * rooms, each from the next member of its room; delivery latency p50, p99
 * and max over every receipt, and delivered, expected, lost. A message
 * from another room stops the run: the server does not keep rooms apart.
 *
 * Nothing is timed until every member has upgraded and then received a
 * warm-up message from its room: servers join a group, and a broker
 * subscribes, after the 101. Prints one JSON object; exit status 0 when
 * every message reached every member of its room exactly once, 1 when not
 * (the JSON's "error" says what went wrong), 2 on a usage or system error.
 * On its standard error it says "wsfanout: joined" once everyone is in (and
 * waits half a second before it publishes) and, in rooms mode, "wsfanout:
 * published" when the publishing (and waiting for its last receipts) is
 * over: at the two, a caller reads the counters of the server and its
 * broker that belong to the publishing alone.
 * Every wait has a deadline, so a server that does not deliver ends the run
 * instead of hanging it.
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
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ws_client.h"

/* Handshakes in flight at once: far below httpd's ListenBacklog (4096), so
 * 10,000 connections never overflow the accept queue (a dropped SYN costs
 * a 1 s retransmit, which would be timed as nothing but would stall). */
#define CONNECT_WINDOW 256
#define CONNECT_ATTEMPTS 5
/* Deadlines grow with the member count: 10,000 handshakes and 10,000
 * deliveries take seconds on 2 cores shared with the server. */
#define DEADLINE_SECONDS(members) (5.0 + (members) / 1000.0)
#define WARMUP_RESEND_SECONDS 0.5
#define ROUND_GAP_SECONDS 0.02  /* lets the last round's work finish first */
/* After "joined": the caller reads its counters meanwhile, not during the
 * first measured message. */
#define JOINED_PAUSE_SECONDS 0.5
#define DRAIN_SECONDS 3.0       /* for late receipts after the last publish */
#define PAYLOAD_SIZE 128        /* above the module's deflate threshold (64 B) */
#define MESSAGE_ROOM 1024       /* a member's received message, compressed or not */
#define READ_BUFFER (256 * 1024)

enum phase { UNOPENED, CONNECTING, HANDSHAKING, JOINED, GONE };

typedef struct {
    int fd;
    enum phase phase;
    int room;
    int attempts;
    int warmed;                  /* has had a warm-up from its room */
    uint32_t last_round;         /* broadcast: the latest round received */
    char *out;                   /* bytes waiting to be written */
    size_t out_length, out_offset, out_room;
    int watching_out;            /* EPOLLOUT is in the interest set */
    char head[1024];             /* the handshake response so far */
    size_t head_length;
    ws_frame_reader frames;      /* the server frame being read */
    int message_compressed;      /* RSV1 of the message's first frame */
    unsigned char message[MESSAGE_ROOM];
    size_t message_length;
    unsigned char control[125];
    size_t control_length;
} member;

/* What a published message carries, at the start of its payload; the
 * rest is words, so compression has something to do. */
typedef struct {
    char magic[4];
    uint32_t room;
    uint32_t sequence;           /* 0: warm-up; broadcast rounds and rooms' publishes count from 1 */
    uint32_t padding;            /* sent_ns aligned, and every byte set */
    uint64_t sent_ns;
} stamp;

static const char magic[4] = {'W', 'S', 'F', 'O'};

static member *members;
static int member_count, room_count, members_per_room;
static int deflate_wanted;
static char handshake_path[1024];
static int port;
static struct sockaddr_in server;
static int epoll_fd;
static z_stream deflater, inflater;

static int next_to_open, handshakes_in_flight, joined_count, warmed_count, gone_count;
static long handshake_retries, unexpected_messages, duplicates;
static int *warmed_in_room;
static char error_text[512];

/* broadcast */
static uint32_t current_round;
static double *round_samples;
static int round_received;

/* rooms */
static uint16_t *receipts;       /* per publish: members that have it */
static double *latencies;
static long latency_count, publish_count, delivered;
static int foreign_room_seen;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Room for every member's socket: the default soft limit (1024) would stop
 * at about a thousand. Root may raise the hard limit too. */
static void raise_descriptor_limit(int needed)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) fail("getrlimit");
    if (limit.rlim_cur >= (rlim_t)needed) return;
    if (limit.rlim_max < (rlim_t)needed) limit.rlim_max = (rlim_t)needed;
    limit.rlim_cur = (rlim_t)needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) fail("setrlimit RLIMIT_NOFILE (too many members for this user)");
}

static void append_output(member *m, const void *data, size_t length)
{
    if (m->out_offset == m->out_length) m->out_offset = m->out_length = 0;
    if (m->out_length + length > m->out_room) {
        m->out_room = (m->out_length + length) * 2;
        m->out = realloc(m->out, m->out_room);
        if (!m->out) fail("realloc");
    }
    memcpy(m->out + m->out_length, data, length);
    m->out_length += length;
}

static void watch(member *m, int op)
{
    ws_watch(epoll_fd, op, m->fd, m, &m->watching_out, m->phase == CONNECTING || m->out_offset < m->out_length);
}

/* A masked frame of the payload (RSV1 set when compressed). */
static void send_frame(member *m, int opcode, const unsigned char *payload, size_t size, int compressed)
{
    unsigned char header[14];
    unsigned char masked[MESSAGE_ROOM];
    append_output(m, header, ws_masked_frame_header(header, opcode, compressed, size));
    ws_mask(masked, payload, size);
    append_output(m, masked, size);
}

/* Compressible filler: words picked by a fixed pseudo-random sequence, as
 * in wsload. */
static void fill_words(unsigned char *payload, size_t from, size_t size)
{
    static const char *words[] = {"socket", "apache", "frame", "message", "swift", "group",
                                  "server", "client", "deflate", "stream", "handler", "module"};
    uint32_t state = 12345;
    size_t i = from;
    while (i < size) {
        const char *word;
        state = state * 1103515245 + 12345;
        word = words[(state >> 16) % 12];
        for (; *word && i < size; word++) payload[i++] = (unsigned char)*word;
        if (i < size) payload[i++] = ' ';
    }
}

static void release(member *m, int how);
static int flush(member *m);

/* Publishes from `m`: the stamp is taken as the frame is queued, and the
 * frame is written at once if the socket takes it. Compressed without
 * context (a client may always leave out references to earlier messages). */
static void publish(member *m, uint32_t sequence)
{
    unsigned char payload[PAYLOAD_SIZE];
    stamp s;
    memcpy(s.magic, magic, 4);
    s.room = (uint32_t)m->room;
    s.sequence = sequence;
    s.padding = 0;
    fill_words(payload, sizeof(s), PAYLOAD_SIZE);
    s.sent_ns = now_ns();
    memcpy(payload, &s, sizeof(s));
    if (deflate_wanted) {
        unsigned char compressed[MESSAGE_ROOM];
        deflateReset(&deflater);
        deflater.next_in = payload;
        deflater.avail_in = PAYLOAD_SIZE;
        deflater.next_out = compressed;
        deflater.avail_out = sizeof(compressed);
        if (deflate(&deflater, Z_SYNC_FLUSH) != Z_OK || deflater.avail_in != 0) fail("deflate");
        send_frame(m, 0x2, compressed, sizeof(compressed) - deflater.avail_out - 4, 1);
    } else {
        send_frame(m, 0x2, payload, PAYLOAD_SIZE, 0);
    }
    flush(m);
}

static void open_member(member *m)
{
    char request[1536], room_target[sizeof(handshake_path) + 32];
    const char *target = handshake_path;
    m->fd = ws_connect(&server);
    m->phase = CONNECTING;
    m->attempts++;
    m->head_length = 0;
    if (room_count > 0) {  /* rooms mode */
        snprintf(room_target, sizeof(room_target), "%s%sroom=r%d", handshake_path,
                 strchr(handshake_path, '?') ? "&" : "?", m->room);
        target = room_target;
    }
    append_output(m, request, ws_upgrade_request(request, sizeof(request), target, port,
        deflate_wanted ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" : ""));
    handshakes_in_flight++;
    watch(m, EPOLL_CTL_ADD);
}

/* Keeps CONNECT_WINDOW handshakes going until every member has been opened. */
static void open_more(void)
{
    while (handshakes_in_flight < CONNECT_WINDOW && next_to_open < member_count) open_member(&members[next_to_open++]);
}

enum release_how { RETRY, LOST };

/* A member whose handshake failed is tried again on a new socket (a few
 * times); one that fails after joining is lost, and the run will say so. */
static void release(member *m, int how)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, m->fd, NULL);
    close(m->fd);
    m->out_length = m->out_offset = 0;
    memset(&m->frames, 0, sizeof(m->frames));
    m->message_length = 0;
    if (m->phase == CONNECTING || m->phase == HANDSHAKING) {
        handshakes_in_flight--;
        if (how == RETRY && m->attempts < CONNECT_ATTEMPTS) {
            handshake_retries++;
            open_member(m);
            return;
        }
    } else if (m->phase == JOINED) {
        joined_count--;
    }
    m->phase = GONE;
    gone_count++;
    open_more();
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The smallest sample at or above the fraction p of all (nearest rank);
 * `samples` sorted. */
static double percentile(const double *samples, long count, double p)
{
    long rank;
    if (count == 0) return 0.0;
    rank = (long)ceil(p * (double)count);
    return samples[rank > 0 ? rank - 1 : 0];
}

/* A whole message has arrived for `m`: inflated if need be, its stamp read. */
static int on_message(member *m)
{
    unsigned char inflated[MESSAGE_ROOM];
    const unsigned char *payload = m->message;
    size_t size = m->message_length;
    stamp s;
    double delay;
    if (m->message_compressed) {
        static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
        if (size + 4 > MESSAGE_ROOM) return -1;
        memcpy(m->message + size, tail, 4);
        inflateReset(&inflater);
        inflater.next_in = m->message;
        inflater.avail_in = (uInt)(size + 4);
        inflater.next_out = inflated;
        inflater.avail_out = sizeof(inflated);
        if (inflate(&inflater, Z_SYNC_FLUSH) != Z_OK || inflater.avail_in != 0) return -1;
        payload = inflated;
        size = sizeof(inflated) - inflater.avail_out;
    }
    if (size != PAYLOAD_SIZE || memcmp(payload, magic, 4) != 0) {
        unexpected_messages++;
        return 0;
    }
    memcpy(&s, payload, sizeof(s));
    delay = (double)(now_ns() - s.sent_ns) / 1e9;
    if ((int)s.room != m->room) {
        foreign_room_seen = 1;
        snprintf(error_text, sizeof(error_text),
                 "a member of room r%d got a message published in room r%u: the server does not keep rooms apart",
                 m->room, s.room);
        return 0;
    }
    if (s.sequence == 0) {
        if (!m->warmed) {
            m->warmed = 1;
            warmed_count++;
            warmed_in_room[m->room]++;
        }
        return 0;
    }
    if (room_count == 0) {  /* broadcast */
        if (s.sequence <= m->last_round || s.sequence > current_round) {
            duplicates += s.sequence <= m->last_round;
            unexpected_messages += s.sequence > current_round;
            return 0;
        }
        m->last_round = s.sequence;
        round_samples[round_received++] = delay;
        return 0;
    }
    if (s.sequence > (uint32_t)publish_count) {
        unexpected_messages++;
        return 0;
    }
    if (++receipts[s.sequence - 1] > members_per_room) {
        duplicates++;
        return 0;
    }
    delivered++;
    latencies[latency_count++] = delay;
    return 0;
}

static void answer_ping(member *m)
{
    send_frame(m, 0xA, m->control, m->control_length, 0);
}

/* Reads server frames; returns 0, or -1 on a protocol error or the
 * server's close. */
static int consume_frames(member *m, const unsigned char *data, size_t length)
{
    ws_frame_reader *frame = &m->frames;
    for (;;) {
        const unsigned char *chunk;
        size_t chunk_length;
        switch (ws_read_frame(frame, &data, &length, &chunk, &chunk_length)) {
        case WS_NEED_MORE:
            return 0;
        case WS_MASKED_FRAME:
            return -1;
        case WS_FRAME_STARTED:
            if (frame->opcode >= 0x8) {
                if (frame->payload_left > sizeof(m->control)) return -1;
                m->control_length = 0;
            } else {
                if (frame->opcode != 0x0) {
                    m->message_length = 0;
                    m->message_compressed = frame->compressed;
                }
                /* Four bytes spare for the DEFLATE tail appended before inflating. */
                if (m->message_length + frame->payload_left + 4 > MESSAGE_ROOM) return -1;
            }
            break;
        case WS_PAYLOAD:
            if (frame->opcode >= 0x8) {
                memcpy(m->control + m->control_length, chunk, chunk_length);
                m->control_length += chunk_length;
            } else {
                memcpy(m->message + m->message_length, chunk, chunk_length);
                m->message_length += chunk_length;
            }
            break;
        case WS_FRAME_ENDED:
            if (frame->opcode == 0x8) return -1;
            if (frame->opcode == 0x9) answer_ping(m);
            if (frame->opcode < 0x8 && frame->fin && on_message(m) < 0) return -1;
            break;
        }
    }
}

/* The handshake response: 101, with the extension when asked for.
 * Returns 1 when complete (*used: its bytes), 0 for more, -1 refused. */
static int consume_handshake(member *m, const unsigned char *data, size_t length, size_t *used)
{
    int upgraded = ws_feed_upgrade_response(m->head, sizeof(m->head), &m->head_length, data, length, used);
    if (upgraded <= 0) return upgraded;
    /* Each compressed message is inflated on its own: the server must not
     * refer back to earlier ones. */
    if (deflate_wanted && !(strcasestr(m->head, "permessage-deflate") && strcasestr(m->head, "server_no_context_takeover"))) {
        fprintf(stderr, "wsfanout: the server did not accept permessage-deflate with server_no_context_takeover\n");
        exit(3);
    }
    m->phase = JOINED;
    handshakes_in_flight--;
    joined_count++;
    open_more();
    return 1;
}

/* Writes what is pending; returns -1 if the member was released. */
static int flush(member *m)
{
    if (m->phase == CONNECTING) {
        if (ws_connect_failed(m->fd)) {
            release(m, RETRY);
            return -1;
        }
        m->phase = HANDSHAKING;
    }
    if (ws_write_pending(m->fd, m->out, m->out_length, &m->out_offset) < 0) {
        release(m, RETRY);
        return -1;
    }
    watch(m, EPOLL_CTL_MOD);
    return 0;
}

static void on_readable(member *m)
{
    static unsigned char buffer[READ_BUFFER];
    for (;;) {
        ssize_t n = read(m->fd, buffer, sizeof(buffer));
        size_t offset = 0;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            release(m, RETRY);
            return;
        }
        if (m->phase == HANDSHAKING) {
            int done = consume_handshake(m, buffer, (size_t)n, &offset);
            if (done < 0) {
                release(m, RETRY);
                return;
            }
            if (!done) continue;
        }
        if (m->phase == JOINED && consume_frames(m, buffer + offset, (size_t)n - offset) < 0) {
            release(m, LOST);
            return;
        }
        if (flush(m) < 0) return;
    }
}

/* Runs the event loop until `until`, until `done()` says so or a foreign
 * room's message stops the run; `tick` (if any) runs between batches of
 * events and returns when it next wants to run. Returns whether `done`. */
static int run_loop(double until, int (*done)(void), double (*tick)(double))
{
    struct epoll_event events[256];
    for (;;) {
        double t = now(), wake = until;
        int n, j, wait_ms;
        if (done && done()) return 1;
        if (t >= until || foreign_room_seen) return 0;
        if (tick) {
            double next = tick(t);
            if (next < wake) wake = next;
        }
        wait_ms = (int)ceil((wake - now()) * 1000);
        n = epoll_wait(epoll_fd, events, 256, wait_ms < 0 ? 0 : wait_ms > 50 ? 50 : wait_ms);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (j = 0; j < n; j++) {
            member *m = events[j].data.ptr;
            if (m->phase == GONE) continue;  /* released by an earlier event in this batch */
            if (events[j].events & (EPOLLOUT | EPOLLERR) && flush(m) < 0) continue;
            if (events[j].events & (EPOLLIN | EPOLLHUP)) on_readable(m);
        }
    }
}

/* Every member has upgraded, or no handshake is left that could. */
static int all_joined(void)
{
    return joined_count == member_count || (next_to_open == member_count && handshakes_in_flight == 0);
}

static int all_warmed(void) { return warmed_count == member_count; }
static int round_complete(void) { return round_received == member_count; }

static double last_warmup_sent;

/* Sends a warm-up from the first member of every room some member of which
 * has had none yet; again every WARMUP_RESEND_SECONDS. Room 0 goes first,
 * alone: a server that mixes rooms shows it with one message's fan-out, not
 * with every room's message sent to every member. */
static double warm_up(double t)
{
    int r;
    if (t - last_warmup_sent < WARMUP_RESEND_SECONDS) return last_warmup_sent + WARMUP_RESEND_SECONDS;
    for (r = 0; r < (room_count ? room_count : 1); r++) {
        member *first = &members[r * members_per_room];
        if (r > 0 && warmed_in_room[0] < members_per_room) break;
        if (warmed_in_room[r] < members_per_room && first->phase == JOINED) publish(first, 0);
    }
    last_warmup_sent = t;
    return t + WARMUP_RESEND_SECONDS;
}

static double publish_from, publish_until, publish_rate;
static long publishes_planned;

/* Publishes whatever is due at RATE a second, round the rooms; a publish
 * late because the loop was busy is sent at once, stamped when sent. */
static double publish_due(double t)
{
    while (publish_count < publishes_planned && publish_from + publish_count / publish_rate <= t) {
        int room = (int)(publish_count % room_count);
        int seat = (int)((publish_count / room_count) % members_per_room);
        member *m = &members[room * members_per_room + seat];
        publish_count++;
        if (m->phase == JOINED) publish(m, (uint32_t)publish_count);
    }
    return publish_count < publishes_planned ? publish_from + publish_count / publish_rate : publish_until;
}

/* Everything published has reached every member of its room. */
static int all_delivered(void)
{
    return publish_count == publishes_planned && delivered == publishes_planned * members_per_room;
}

static void print_string_field(const char *name, const char *value)
{
    const char *c;
    printf(", \"%s\": \"", name);
    for (c = value; *c; c++) {
        if (*c == '"' || *c == '\\') putchar('\\');
        putchar(*c);
    }
    putchar('"');
}

/* Opens every member and waits for the warm-ups; 0 when all are in. */
static int join_everyone(double *connect_seconds, double *warmup_seconds)
{
    double started = now();
    open_more();
    run_loop(started + DEADLINE_SECONDS(member_count), all_joined, NULL);
    *connect_seconds = now() - started;
    if (joined_count < member_count) {
        snprintf(error_text, sizeof(error_text), "%d of %d members upgraded (%ld handshakes retried)",
                 joined_count, member_count, handshake_retries);
        return -1;
    }
    started = now();
    run_loop(started + DEADLINE_SECONDS(member_count), all_warmed, warm_up);
    *warmup_seconds = now() - started;
    if (foreign_room_seen) return -1;
    if (warmed_count < member_count) {
        snprintf(error_text, sizeof(error_text),
                 "%d of %d members never got a warm-up message from their room in %.0f s (%d connections lost)",
                 member_count - warmed_count, member_count, DEADLINE_SECONDS(member_count), gone_count);
        return -1;
    }
    fprintf(stderr, "wsfanout: joined\n");
    run_loop(now() + JOINED_PAUSE_SECONDS, NULL, NULL);
    return 0;
}

static void setup(int members_wanted)
{
    int i;
    member_count = members_wanted;
    raise_descriptor_limit(member_count + 64);
    signal(SIGPIPE, SIG_IGN);  /* a peer gone mid-write is an error return, not death */
    server = ws_loopback_address(port);
    epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) fail("epoll_create1");
    members = calloc((size_t)member_count, sizeof(member));
    warmed_in_room = calloc((size_t)(room_count ? room_count : 1), sizeof(int));
    if (!members || !warmed_in_room) fail("calloc");
    for (i = 0; i < member_count; i++) members[i].room = room_count ? i / members_per_room : 0;
    if (deflateInit2(&deflater, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) fail("deflateInit2");
    if (inflateInit2(&inflater, -15) != Z_OK) fail("inflateInit2");
}

static int broadcast(int rounds)
{
    double connect_seconds = 0, warmup_seconds = 0, *firsts, *medians, *lasts;
    int completed = 0, missing = 0, r;
    int joined = join_everyone(&connect_seconds, &warmup_seconds) == 0;
    round_samples = malloc(sizeof(double) * (size_t)member_count);
    firsts = malloc(sizeof(double) * (size_t)rounds);
    medians = malloc(sizeof(double) * (size_t)rounds);
    lasts = malloc(sizeof(double) * (size_t)rounds);
    printf("{\"mode\": \"broadcast\", \"members\": %d, \"deflate\": %s, \"connect_s\": %.3f, \"warmup_s\": %.3f, "
           "\"rounds\": [", member_count, deflate_wanted ? "true" : "false", connect_seconds, warmup_seconds);
    for (r = 1; joined && r <= rounds; r++) {
        run_loop(now() + ROUND_GAP_SECONDS, NULL, NULL);
        current_round = (uint32_t)r;
        round_received = 0;
        publish(&members[0], current_round);
        if (!run_loop(now() + DEADLINE_SECONDS(member_count), round_complete, NULL)) {
            missing = member_count - round_received;
            snprintf(error_text, sizeof(error_text), "round %d reached %d of %d members in %.0f s (%d connections lost)",
                     r, round_received, member_count, DEADLINE_SECONDS(member_count), gone_count);
            break;
        }
        qsort(round_samples, (size_t)member_count, sizeof(double), by_value);
        firsts[completed] = round_samples[0];
        medians[completed] = percentile(round_samples, member_count, 0.5);
        lasts[completed] = round_samples[member_count - 1];
        printf("%s{\"first_us\": %.1f, \"median_us\": %.1f, \"last_us\": %.1f}", completed ? ", " : "",
               firsts[completed] * 1e6, medians[completed] * 1e6, lasts[completed] * 1e6);
        completed++;
    }
    /* Late or repeated copies of the last round would show up here. */
    if (completed == rounds) run_loop(now() + 0.1, NULL, NULL);
    if (!error_text[0] && (duplicates || unexpected_messages))
        snprintf(error_text, sizeof(error_text), "%ld messages received twice, %ld unexpected", duplicates, unexpected_messages);
    qsort(firsts, (size_t)completed, sizeof(double), by_value);
    qsort(medians, (size_t)completed, sizeof(double), by_value);
    qsort(lasts, (size_t)completed, sizeof(double), by_value);
    printf("], \"rounds_completed\": %d, \"first_us_median\": %.1f, \"median_us_median\": %.1f, \"last_us_median\": %.1f, "
           "\"missing\": %d, \"duplicates\": %ld, \"unexpected\": %ld, \"lost_members\": %d, \"handshake_retries\": %ld",
           completed, percentile(firsts, completed, 0.5) * 1e6, percentile(medians, completed, 0.5) * 1e6,
           percentile(lasts, completed, 0.5) * 1e6, missing, duplicates, unexpected_messages, gone_count,
           handshake_retries);
    if (error_text[0]) print_string_field("error", error_text);
    printf("}\n");
    return error_text[0] ? 1 : 0;
}

static int rooms(double rate, double seconds)
{
    double connect_seconds = 0, warmup_seconds = 0, published_seconds = 0;
    long expected, lost;
    int joined = join_everyone(&connect_seconds, &warmup_seconds) == 0;
    publishes_planned = (long)(rate * seconds);
    receipts = calloc((size_t)publishes_planned + 1, sizeof(uint16_t));
    latencies = malloc(sizeof(double) * (size_t)(publishes_planned * members_per_room + 1));
    if (!receipts || !latencies) fail("malloc");
    if (joined) {
        publish_rate = rate;
        publish_from = now();
        publish_until = publish_from + seconds;
        run_loop(publish_until + DRAIN_SECONDS, all_delivered, publish_due);
        published_seconds = now() - publish_from;
        fprintf(stderr, "wsfanout: published\n");
    }
    expected = publish_count * members_per_room;
    lost = expected - delivered;
    if (!error_text[0] && (lost || duplicates || unexpected_messages))
        snprintf(error_text, sizeof(error_text), "%ld of %ld deliveries lost, %ld duplicated, %ld unexpected (%d connections lost)",
                 lost, expected, duplicates, unexpected_messages, gone_count);
    qsort(latencies, (size_t)latency_count, sizeof(double), by_value);
    printf("{\"mode\": \"rooms\", \"rooms\": %d, \"members\": %d, \"rate\": %.1f, \"connect_s\": %.3f, "
           "\"warmup_s\": %.3f, \"published\": %ld, \"publishing_s\": %.3f, \"expected\": %ld, \"delivered\": %ld, "
           "\"lost\": %ld, \"duplicates\": %ld, \"unexpected\": %ld, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"lost_members\": %d, \"handshake_retries\": %ld",
           room_count, members_per_room, rate, connect_seconds, warmup_seconds, publish_count, published_seconds,
           expected, delivered, lost, duplicates, unexpected_messages, percentile(latencies, latency_count, 0.5) * 1e6,
           percentile(latencies, latency_count, 0.99) * 1e6, latency_count ? latencies[latency_count - 1] * 1e6 : 0.0,
           gone_count, handshake_retries);
    if (error_text[0]) print_string_field("error", error_text);
    printf("}\n");
    return error_text[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "broadcast") == 0) {
        int rounds = atoi(argv[5]);
        deflate_wanted = argc >= 7 && strcmp(argv[6], "deflate") == 0;
        port = atoi(argv[2]);
        snprintf(handshake_path, sizeof(handshake_path), "%s", argv[3]);
        members_per_room = atoi(argv[4]);
        if (members_per_room < 1 || rounds < 1) {
            fprintf(stderr, "wsfanout: MEMBERS and ROUNDS must be positive\n");
            return 2;
        }
        setup(members_per_room);
        return broadcast(rounds);
    }
    if (argc >= 8 && strcmp(argv[1], "rooms") == 0) {
        double rate = atof(argv[6]), seconds = atof(argv[7]);
        port = atoi(argv[2]);
        snprintf(handshake_path, sizeof(handshake_path), "%s", argv[3]);
        room_count = atoi(argv[4]);
        members_per_room = atoi(argv[5]);
        /* A publish's receipts are counted in 16 bits. */
        if (room_count < 1 || members_per_room < 1 || members_per_room > 60000 || rate <= 0 || seconds <= 0) {
            fprintf(stderr, "wsfanout: ROOMS, MEMBERS (up to 60,000), RATE and SECONDS must be positive\n");
            return 2;
        }
        setup(room_count * members_per_room);
        return rooms(rate, seconds);
    }
    fprintf(stderr, "usage: wsfanout broadcast PORT PATH MEMBERS ROUNDS [deflate]\n"
                    "       wsfanout rooms PORT PATH ROOMS MEMBERS RATE SECONDS\n");
    return 2;
}
