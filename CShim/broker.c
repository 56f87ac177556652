#include "broker.h"
#include "status.h"

#include "http_log.h"
#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_lib.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "swiftwebsocket.h"

APLOG_USE_MODULE(swiftwebsocket);

/* Publishes queued or written and not yet answered, per broker: past this a
 * broker is too far behind (stalled, or a link too slow) and broadcasts
 * reach this child's members only until it catches up. */
#define PUBLISH_BACKLOG_BYTES (64 * 1024 * 1024)
/* Reconnecting backs off from the first to the last delay, doubling. */
#define RETRY_FIRST_MS 100
#define RETRY_LAST_MS 2000

typedef enum { SUBSCRIBE, UNSUBSCRIBE, PUBLISH } command_kind;

/* A request from any thread for the broker thread: one allocation holding
 * the channel name and, for a publish, the payload. */
typedef struct command {
    struct command *next;
    command_kind kind;
    size_t channel_length;
    size_t payload_length;
    char bytes[];
} command;

typedef struct broker broker;

/* One hiredis connection, and what it asks the poll loop to watch. */
typedef struct {
    broker *owner;
    int is_subscriber;
    redisAsyncContext *context;  /* NULL while disconnected */
    int connected;
    int want_read, want_write;
} redis_link;

struct broker {
    const swiftws_broker_address *address;
    redis_link publisher, subscriber;
    /* Broker thread only. */
    apr_hash_t *channels;  /* the channels this child wants: each a malloc'd key */
    apr_time_t retry_at;   /* when to reconnect the links that are down; 0: none are */
    int retry_ms;
    int in_outage;
    apr_time_t outage_since;
    /* Under `mutex`. */
    int up;                 /* both links connected: publishes can go out */
    int behind;             /* the backlog overflowed and has not drained yet */
    size_t backlog_bytes;
    apr_uint64_t lost;      /* broadcasts that reached only their own child, this outage */
    command *head, *tail;
};

static struct {
    server_rec *server;
    const char *prefix;
    size_t prefix_length;
    broker *brokers;
    int count;
    /* The broker thread's own: its allocator is no other thread's. */
    apr_pool_t *pool;
    pthread_mutex_t mutex;
    int wake_fd;
    pthread_t thread;
    int running;
    volatile int stopping;
} brokers;

/* ---- Configuration ---- */

const char *swiftws_parse_broker_url(apr_pool_t *p, const char *url, swiftws_broker_address *address)
{
    static const char form[] = "is not redis://[:password@]host[:port][/db] or unix:/path/to/socket";
    const char *rest, *at, *slash, *hostport, *colon;
    char *end;
    long number;

    memset(address, 0, sizeof(*address));
    address->url = url;
    if (strncmp(url, "unix:", 5) == 0) {
        if (url[5] != '/') {
            return "unix: needs the socket's absolute path, as in unix:/run/redis/redis.sock";
        }
        address->socket_path = url + 5;
        return NULL;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        return form;
    }
    rest = url + 8;
    /* The password may hold '@' and '/': the host follows the last '@'. */
    at = strrchr(rest, '@');
    if (at) {
        if (rest[0] != ':' || at == rest + 1) {
            return "has a user part: write the password as redis://:password@host";
        }
        address->password = apr_pstrndup(p, rest + 1, at - rest - 1);
        address->url = apr_pstrcat(p, "redis://:***@", at + 1, NULL);
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    hostport = slash ? apr_pstrndup(p, rest, slash - rest) : rest;
    if (slash && slash[1] != '\0') {
        errno = 0;
        number = strtol(slash + 1, &end, 10);
        if (!apr_isdigit(slash[1]) || *end != '\0' || errno == ERANGE || number > INT32_MAX) {
            return "has a database that is not a number: redis://host:port/0";
        }
        address->database = (int)number;
    }
    address->port = 6379;
    if (hostport[0] == '[') {  /* an IPv6 literal */
        const char *close = strchr(hostport, ']');
        if (!close || close == hostport + 1) {
            return form;
        }
        address->host = apr_pstrndup(p, hostport + 1, close - hostport - 1);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && !colon) {
            return form;
        }
    }
    else {
        colon = strrchr(hostport, ':');
        address->host = colon ? apr_pstrndup(p, hostport, colon - hostport) : hostport;
    }
    if (address->host[0] == '\0') {
        return "has no host";
    }
    if (colon) {
        errno = 0;
        number = strtol(colon + 1, &end, 10);
        if (!apr_isdigit(colon[1]) || *end != '\0' || number < 1 || number > 65535) {
            return "has a port that is not a number from 1 to 65535";
        }
        address->port = (int)number;
    }
    return NULL;
}

static apr_uint64_t fnv1a(const char *bytes, size_t length)
{
    apr_uint64_t hash = APR_UINT64_C(14695981039346656037);
    size_t i;
    for (i = 0; i < length; i++) {
        hash ^= (unsigned char)bytes[i];
        hash *= APR_UINT64_C(1099511628211);
    }
    return hash;
}

/* Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm". */
int swiftws_broker_for_group(const char *group, size_t length, int count)
{
    apr_uint64_t key = fnv1a(group, length);
    apr_int64_t bucket = -1, next = 0;
    while (next < count) {
        bucket = next;
        key = key * APR_UINT64_C(2862933555777941757) + 1;
        next = (apr_int64_t)((double)(bucket + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int)bucket;
}

/* ---- What other threads ask for ---- */

static void wake(void)
{
    eventfd_write(brokers.wake_fd, 1);
}

static broker *broker_for(const char *group, size_t length)
{
    return &brokers.brokers[swiftws_broker_for_group(group, length, brokers.count)];
}

/* A command with its own copy of the channel name and the payload. */
static command *make_command(command_kind kind, const char *group, size_t group_length,
                             const void *payload, size_t payload_length)
{
    command *c = malloc(sizeof(*c) + brokers.prefix_length + group_length + payload_length);
    if (!c) {
        return NULL;
    }
    c->next = NULL;
    c->kind = kind;
    c->channel_length = brokers.prefix_length + group_length;
    c->payload_length = payload_length;
    memcpy(c->bytes, brokers.prefix, brokers.prefix_length);
    memcpy(c->bytes + brokers.prefix_length, group, group_length);
    if (payload_length) {
        memcpy(c->bytes + c->channel_length, payload, payload_length);
    }
    return c;
}

/* Under `mutex`. */
static void push_command(broker *b, command *c)
{
    if (b->tail) {
        b->tail->next = c;
    }
    else {
        b->head = c;
    }
    b->tail = c;
}

static void enqueue(broker *b, command_kind kind, const char *group, size_t length)
{
    command *c = make_command(kind, group, length, NULL, 0);
    if (!c) {
        return;
    }
    pthread_mutex_lock(&brokers.mutex);
    push_command(b, c);
    pthread_mutex_unlock(&brokers.mutex);
    wake();
}

int swiftws_broker_publish(const char *group, size_t group_length, const void *payload, size_t length)
{
    broker *b;
    command *c;
    int accepted, overflowed = 0;
    if (!brokers.running) {
        return SWIFTWS_PUBLISH_LOCAL;
    }
    b = broker_for(group, group_length);
    c = make_command(PUBLISH, group, group_length, payload, length);
    pthread_mutex_lock(&brokers.mutex);
    /* Checked and taken in one go, so concurrent publishes cannot pass
     * the bound together. */
    accepted = c && b->up && b->backlog_bytes + length <= PUBLISH_BACKLOG_BYTES;
    if (accepted) {
        b->backlog_bytes += length;
        push_command(b, c);
    }
    else {
        b->lost++;
        swiftws_count_broker(SWIFTWS_BROKER_LOST, 1);
        if (b->up && !b->behind) {
            overflowed = b->behind = 1;
        }
    }
    pthread_mutex_unlock(&brokers.mutex);
    if (!accepted) {
        free(c);
    }
    if (overflowed) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, brokers.server, "WebSocket broker %s is more than %d MiB "
                     "behind; broadcasts reach this process's members only until it catches up",
                     b->address->url, PUBLISH_BACKLOG_BYTES >> 20);
    }
    if (!accepted) {
        return SWIFTWS_PUBLISH_LOCAL;
    }
    wake();
    return SWIFTWS_PUBLISH_SENT;
}

void swiftws_broker_subscribe(const char *group, size_t length)
{
    if (brokers.running) {
        enqueue(broker_for(group, length), SUBSCRIBE, group, length);
    }
}

void swiftws_broker_unsubscribe(const char *group, size_t length)
{
    if (brokers.running) {
        enqueue(broker_for(group, length), UNSUBSCRIBE, group, length);
    }
}

/* ---- The broker thread: hiredis's asynchronous API over poll(2) ---- */

static void want_read(void *link) { ((redis_link *)link)->want_read = 1; }
static void stop_reading(void *link) { ((redis_link *)link)->want_read = 0; }
static void want_write(void *link) { ((redis_link *)link)->want_write = 1; }
static void stop_writing(void *link) { ((redis_link *)link)->want_write = 0; }
static void forget_events(void *link)
{
    ((redis_link *)link)->want_read = ((redis_link *)link)->want_write = 0;
}

static void set_up(broker *b, int up)
{
    pthread_mutex_lock(&brokers.mutex);
    if (b->up != up) {
        swiftws_count_broker(SWIFTWS_BROKER_CONNECTED, up ? 1 : -1);
    }
    b->up = up;
    pthread_mutex_unlock(&brokers.mutex);
}

/* A link failed or closed: publishes stay in this child until both are
 * back; one warning per outage. */
static void link_down(redis_link *link, const char *why)
{
    broker *b = link->owner;
    link->context = NULL;
    link->connected = 0;
    if (brokers.stopping) {
        return;
    }
    set_up(b, 0);
    if (!b->in_outage) {
        b->in_outage = 1;
        b->outage_since = apr_time_now();
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, brokers.server, "WebSocket broker %s unreachable (%s); "
                     "named groups reach this process's members only, retrying", b->address->url, why);
    }
    if (!b->retry_at) {
        b->retry_at = apr_time_now() + apr_time_from_msec(b->retry_ms);
        b->retry_ms = b->retry_ms * 2 > RETRY_LAST_MS ? RETRY_LAST_MS : b->retry_ms * 2;
    }
}

static void send_channel_command(broker *b, const char *verb, const char *channel, size_t length);

/* The link is usable (connected, and AUTH and SELECT accepted): the
 * subscriber subscribes again to the channels this child wants. */
static void link_up(redis_link *link)
{
    broker *b = link->owner;
    apr_uint64_t lost;
    apr_hash_index_t *index;
    link->connected = 1;
    if (link->is_subscriber) {
        for (index = apr_hash_first(NULL, b->channels); index; index = apr_hash_next(index)) {
            const void *channel;
            apr_ssize_t length;
            apr_hash_this(index, &channel, &length, NULL);
            send_channel_command(b, "SUBSCRIBE", channel, (size_t)length);
        }
    }
    if (!b->publisher.connected || !b->subscriber.connected) {
        return;
    }
    b->retry_ms = RETRY_FIRST_MS;
    set_up(b, 1);
    pthread_mutex_lock(&brokers.mutex);
    lost = b->lost;
    b->lost = 0;
    pthread_mutex_unlock(&brokers.mutex);
    if (b->in_outage) {
        b->in_outage = 0;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, brokers.server, "WebSocket broker %s reachable again after "
                     "%.1f s; %" APR_UINT64_T_FMT " broadcasts reached only their own process meanwhile",
                     b->address->url, (double)(apr_time_now() - b->outage_since) / APR_USEC_PER_SEC, lost);
    }
}

/* A publish is done with: its bytes leave the backlog. */
static void publish_done(broker *b, command *c, int published)
{
    pthread_mutex_lock(&brokers.mutex);
    b->backlog_bytes -= c->payload_length;
    if (!published) {
        b->lost++;
    }
    if (b->behind && b->backlog_bytes < PUBLISH_BACKLOG_BYTES / 2) {
        b->behind = 0;
    }
    pthread_mutex_unlock(&brokers.mutex);
    swiftws_count_broker(published ? SWIFTWS_BROKER_PUBLISHED : SWIFTWS_BROKER_LOST, 1);
    free(c);
}

/* A publish that never reached the broker, or that it refused: it reaches
 * this child's members at least, as broadcasts do while a broker is down
 * (and nobody else has it, so none gets it twice). */
static void publish_refused(broker *b, command *c)
{
    swiftws_bridge_group_message(c->bytes + brokers.prefix_length, c->channel_length - brokers.prefix_length,
                                 c->bytes + c->channel_length, c->payload_length);
    publish_done(b, c, 0);
}

static void on_published(redisAsyncContext *context, void *reply_, void *command_)
{
    redisReply *reply = reply_;
    broker *b = ((redis_link *)context->data)->owner;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        publish_refused(b, command_);
    }
    else {
        /* No reply: the link went down with it unanswered; Redis may have
         * delivered it, so it is not delivered here again. */
        publish_done(b, command_, reply != NULL);
    }
}

/* Every reply on the subscribing link: confirmations and the messages. */
static void on_channel_reply(redisAsyncContext *context, void *reply_, void *unused)
{
    redisReply *reply = reply_;
    redisReply *channel, *payload;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "message") != 0) {
        return;
    }
    channel = reply->element[1];
    payload = reply->element[2];
    if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING
        || channel->len < brokers.prefix_length) {
        return;
    }
    swiftws_count_broker(SWIFTWS_BROKER_RECEIVED, 1);
    swiftws_bridge_group_message(channel->str + brokers.prefix_length, channel->len - brokers.prefix_length,
                                 payload->str, payload->len);
}

static void send_channel_command(broker *b, const char *verb, const char *channel, size_t length)
{
    const char *argv[2] = { verb, channel };
    size_t lengths[2] = { strlen(verb), length };
    redisAsyncCommandArgv(b->subscriber.context, on_channel_reply, NULL, 2, argv, lengths);
}

/* AUTH and SELECT, sent ahead of anything else: a refusal is an outage
 * like the link failing; the link is up once the last is accepted
 * (`is_last`). */
static void on_setup_reply(redisAsyncContext *context, void *reply_, void *is_last)
{
    redisReply *reply = reply_;
    redis_link *link = context->data;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, brokers.server, "WebSocket broker %s refused the connection's "
                     "setup: %s", link->owner->address->url, reply->str);
        redisAsyncDisconnect(context);
    }
    else if (reply && is_last) {
        link_up(link);
    }
}

static void on_connected(const redisAsyncContext *context, int status)
{
    redis_link *link = context->data;
    const swiftws_broker_address *address = link->owner->address;
    if (status != REDIS_OK) {
        link_down(link, context->errstr);  /* hiredis frees the context */
        return;
    }
    if (!address->password && !address->database) {
        link_up(link);  /* else when its setup is accepted */
    }
}

static void on_disconnected(const redisAsyncContext *context, int status)
{
    link_down(context->data, status == REDIS_OK ? "closed" : context->errstr);
}

static void connect_link(redis_link *link)
{
    const swiftws_broker_address *address = link->owner->address;
    redisAsyncContext *context = address->socket_path ? redisAsyncConnectUnix(address->socket_path)
                                                      : redisAsyncConnect(address->host, address->port);
    if (!context || context->err) {
        char why[128];
        apr_cpystrn(why, context ? context->errstr : "out of memory", sizeof(why));
        if (context) {
            redisAsyncFree(context);
        }
        link_down(link, why);
        return;
    }
    link->context = context;
    context->data = link;
    context->ev.data = link;
    context->ev.addRead = want_read;
    context->ev.delRead = stop_reading;
    context->ev.addWrite = want_write;
    context->ev.delWrite = stop_writing;
    context->ev.cleanup = forget_events;
    redisAsyncSetConnectCallback(context, on_connected);
    redisAsyncSetDisconnectCallback(context, on_disconnected);
    if (address->password) {
        const char *argv[2] = { "AUTH", address->password };
        size_t lengths[2] = { 4, strlen(address->password) };
        redisAsyncCommandArgv(context, on_setup_reply, address->database ? NULL : (void *)1, 2, argv, lengths);
    }
    if (address->database) {
        char database[16];
        const char *argv[2] = { "SELECT", database };
        size_t lengths[2] = { 6, 0 };
        lengths[1] = (size_t)apr_snprintf(database, sizeof(database), "%d", address->database);
        redisAsyncCommandArgv(context, on_setup_reply, (void *)1, 2, argv, lengths);
    }
    /* The non-blocking connect completes when the socket turns writable. */
    link->want_write = 1;
}

static void reconnect_due(apr_time_t now)
{
    int i;
    for (i = 0; i < brokers.count; i++) {
        broker *b = &brokers.brokers[i];
        if (b->retry_at && b->retry_at <= now) {
            b->retry_at = 0;
            if (!b->publisher.context) {
                connect_link(&b->publisher);
            }
            if (!b->subscriber.context) {
                connect_link(&b->subscriber);
            }
        }
    }
}

/* A publish is handed to hiredis, which keeps the command until Redis
 * answers (on_published frees it); one that cannot be sent reaches this
 * child's members. */
static void run_publish(broker *b, command *c)
{
    const char *argv[3] = { "PUBLISH", c->bytes, c->bytes + c->channel_length };
    size_t lengths[3] = { 7, c->channel_length, c->payload_length };
    if (!b->publisher.connected
        || redisAsyncCommandArgv(b->publisher.context, on_published, c, 3, argv, lengths) != REDIS_OK) {
        publish_refused(b, c);
    }
}

/* Subscriptions: the set this child wants, and the broker told when the
 * subscriber is up (else link_up subscribes to the whole set). */
static void run_subscription(broker *b, command *c)
{
    char *channel = c->bytes;
    if (c->kind == SUBSCRIBE) {
        if (apr_hash_get(b->channels, channel, c->channel_length)) {
            return;
        }
        char *key = malloc(c->channel_length);
        if (!key) {
            return;
        }
        memcpy(key, channel, c->channel_length);
        apr_hash_set(b->channels, key, c->channel_length, key);
    }
    else {
        char *key = apr_hash_get(b->channels, channel, c->channel_length);
        if (!key) {
            return;
        }
        apr_hash_set(b->channels, channel, c->channel_length, NULL);
        free(key);
    }
    if (b->subscriber.connected) {
        send_channel_command(b, c->kind == SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE", channel, c->channel_length);
    }
}

static void run_command(broker *b, command *c)
{
    if (c->kind == PUBLISH) {
        run_publish(b, c);  /* which owns it from now on */
        return;
    }
    run_subscription(b, c);
    free(c);
}

static void run_commands(void)
{
    int i;
    for (i = 0; i < brokers.count; i++) {
        broker *b = &brokers.brokers[i];
        command *c;
        pthread_mutex_lock(&brokers.mutex);
        c = b->head;
        b->head = b->tail = NULL;
        pthread_mutex_unlock(&brokers.mutex);
        while (c) {
            command *next = c->next;
            run_command(b, c);
            c = next;
        }
    }
}

/* The poll timeout: until the first reconnect is due, or none. */
static int poll_timeout(apr_time_t now)
{
    apr_time_t first = 0;
    int i;
    for (i = 0; i < brokers.count; i++) {
        apr_time_t at = brokers.brokers[i].retry_at;
        if (at && (!first || at < first)) {
            first = at;
        }
    }
    if (!first) {
        return -1;
    }
    return first <= now ? 0 : (int)apr_time_as_msec(first - now) + 1;
}

static void *run(void *unused)
{
    struct pollfd *fds = calloc(1 + 2 * brokers.count, sizeof(*fds));
    redis_link **links = calloc(1 + 2 * brokers.count, sizeof(*links));
    int i;
    for (i = 0; i < brokers.count; i++) {
        connect_link(&brokers.brokers[i].publisher);
        connect_link(&brokers.brokers[i].subscriber);
    }
    while (!brokers.stopping) {
        int count = 1;
        fds[0].fd = brokers.wake_fd;
        fds[0].events = POLLIN;
        for (i = 0; i < brokers.count; i++) {
            redis_link *pair[2] = { &brokers.brokers[i].publisher, &brokers.brokers[i].subscriber };
            int j;
            for (j = 0; j < 2; j++) {
                if (pair[j]->context) {
                    fds[count].fd = pair[j]->context->c.fd;
                    fds[count].events = (pair[j]->want_read ? POLLIN : 0) | (pair[j]->want_write ? POLLOUT : 0);
                    links[count++] = pair[j];
                }
            }
        }
        if (poll(fds, count, poll_timeout(apr_time_now())) < 0 && errno != EINTR) {
            ap_log_error(APLOG_MARK, APLOG_ERR, errno, brokers.server, "WebSocket broker thread: poll failed");
            break;
        }
        if (fds[0].revents) {
            eventfd_t ignored;
            eventfd_read(brokers.wake_fd, &ignored);
        }
        for (i = 1; i < count; i++) {
            redisAsyncContext *context = links[i]->context;
            /* A callback of an earlier link may not touch this one, but a
             * read that ends in a disconnect frees the context. */
            if (context && (fds[i].revents & (POLLIN | POLLERR | POLLHUP))) {
                redisAsyncHandleRead(context);
            }
            if (links[i]->context == context && context && (fds[i].revents & POLLOUT)) {
                redisAsyncHandleWrite(context);
            }
        }
        run_commands();
        reconnect_due(apr_time_now());
    }
    for (i = 0; i < brokers.count; i++) {
        if (brokers.brokers[i].publisher.context) {
            redisAsyncFree(brokers.brokers[i].publisher.context);
        }
        if (brokers.brokers[i].subscriber.context) {
            redisAsyncFree(brokers.brokers[i].subscriber.context);
        }
    }
    free(fds);
    free(links);
    return NULL;
}

static apr_status_t stop_brokers(void *unused)
{
    brokers.stopping = 1;
    wake();
    pthread_join(brokers.thread, NULL);
    brokers.running = 0;
    return APR_SUCCESS;
}

void swiftws_brokers_start(apr_pool_t *pchild, server_rec *s, const apr_array_header_t *addresses,
                           const char *prefix)
{
    apr_allocator_t *allocator;
    int i, error = 0;
    brokers.server = s;
    brokers.prefix = prefix;
    brokers.prefix_length = strlen(prefix);
    brokers.count = addresses->nelts;
    brokers.brokers = apr_pcalloc(pchild, sizeof(broker) * addresses->nelts);
    apr_allocator_create(&allocator);
    apr_pool_create_ex(&brokers.pool, NULL, NULL, allocator);
    apr_allocator_owner_set(allocator, brokers.pool);
    for (i = 0; i < addresses->nelts; i++) {
        broker *b = &brokers.brokers[i];
        b->address = &APR_ARRAY_IDX(addresses, i, swiftws_broker_address);
        b->publisher.owner = b->subscriber.owner = b;
        b->subscriber.is_subscriber = 1;
        b->retry_ms = RETRY_FIRST_MS;
        b->channels = apr_hash_make(brokers.pool);
    }
    pthread_mutex_init(&brokers.mutex, NULL);
    brokers.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (brokers.wake_fd < 0) {
        error = errno;
    }
    else {
        error = pthread_create(&brokers.thread, NULL, run, NULL);
    }
    if (error) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, error, s, "could not start the WebSocket broker thread; named "
                     "groups reach this process's members only");
        return;
    }
    brokers.running = 1;
    apr_pool_cleanup_register(pchild, NULL, stop_brokers, apr_pool_cleanup_null);
}
