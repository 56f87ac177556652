#include "trap_report.h"

#include "http_log.h"
#include "apr_portable.h"
#include "apr_strings.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "elf_symbols.h"
#include "trap_limit.h"

struct swiftws_trap_label {
    int limit_slot;
    char client[80];     /* ip:port */
    char handler[400];   /* "WebSocket handler T (resource /r, log id X)" */
};

#define MAX_FRAMES 48
/* The report is made in one buffer and written at once. */
#define REPORT_SIZE 16384
/* Enough for the report's stack frames and its symbol reads. */
#define SIGNAL_STACK_SIZE (64 * 1024)
/* How much of the error log's end is searched for the runtime's message. */
#define LOG_TAIL 2048

static const int trap_signals[] = { SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP };
static struct sigaction previous_actions[NSIG];
static int log_fd = STDERR_FILENO;
/* The children's stderr opened for reading (it is open for writing only),
 * by the parent, which may read the error log; -1: none. */
static int stderr_reader = -1;
/* Local time's offset from UTC when the child started: localtime_r may
 * take a lock, so the handler adds this instead. */
static long utc_offset_seconds;
static pthread_key_t signal_stack_key;
static char report[REPORT_SIZE];
static atomic_int reporting, reported;

/* initial-exec: the signal handler reads them on any thread, and the
 * dynamic model's first access on a thread may allocate. */
static __thread const swiftws_trap_label *current_label __attribute__((tls_model("initial-exec")));
static __thread int has_signal_stack __attribute__((tls_model("initial-exec")));

/* ---- The label, in normal context ---- */

swiftws_trap_label *swiftws_trap_label_make(request_rec *r, apr_pool_t *pool, const char *handler_name,
                                            int limit_slot)
{
    swiftws_trap_label *label = apr_pcalloc(pool, sizeof(*label));
    /* The id lines about this request carry when ErrorLogFormat asks for
     * %L; made now if nothing has asked yet, so the report can give it. */
    if (!r->log_id) {
        ap_run_generate_log_id(r->connection, r, &r->log_id);
    }
    label->limit_slot = limit_slot;
    apr_snprintf(label->client, sizeof(label->client), "%s:%d", r->useragent_ip,
                 r->connection->client_addr ? r->connection->client_addr->port : 0);
    apr_snprintf(label->handler, sizeof(label->handler), "WebSocket handler %s (resource %s, log id %s)",
                 handler_name, r->uri, r->log_id ? r->log_id : "-");
    return label;
}

static void free_signal_stack(void *stack)
{
    stack_t off = { .ss_flags = SS_DISABLE };
    sigaltstack(&off, NULL);
    free(stack);
}

/* The kernel runs the handler on this stack, so a thread that overflowed
 * its own stack is still reported. */
static void give_thread_signal_stack(void)
{
    stack_t existing, stack;
    has_signal_stack = 1;
    if (sigaltstack(NULL, &existing) == 0 && !(existing.ss_flags & SS_DISABLE)) {
        return;
    }
    stack.ss_sp = malloc(SIGNAL_STACK_SIZE);
    stack.ss_size = SIGNAL_STACK_SIZE;
    stack.ss_flags = 0;
    if (stack.ss_sp && sigaltstack(&stack, NULL) == 0) {
        pthread_setspecific(signal_stack_key, stack.ss_sp);
    }
    else {
        free(stack.ss_sp);
    }
}

const void *swiftws_trap_enter(const swiftws_trap_label *label)
{
    const void *previous = current_label;
    if (!has_signal_stack) {
        give_thread_signal_stack();
    }
    current_label = label;
    return previous;
}

void swiftws_trap_leave(const void *previous)
{
    current_label = previous;
}

/* ---- Formatting without allocation, for the signal handler ---- */

typedef struct {
    char *at;
    char *end;
} text_buffer;

static void add_text(text_buffer *b, const char *text)
{
    while (*text && b->at < b->end) {
        *b->at++ = *text++;
    }
}

static void add_bytes(text_buffer *b, const char *bytes, size_t length)
{
    while (length-- && b->at < b->end) {
        *b->at++ = *bytes++;
    }
}

static void add_number(text_buffer *b, unsigned long value, unsigned base, int min_digits)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value || n < min_digits);
    while (n--) {
        if (b->at < b->end) {
            *b->at++ = digits[n];
        }
    }
}

static void add_hex(text_buffer *b, uintptr_t value)
{
    add_text(b, "0x");
    add_number(b, value, 16, 1);
}

/* httpd's error log time: "Wed Dec 02 06:19:52.515037 2026", local time. */
static void add_log_time(text_buffer *b)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct timespec now;
    long seconds, day, second_of_day, era, day_of_era, year_of_era, day_of_year, month_index, year;
    clock_gettime(CLOCK_REALTIME, &now);
    seconds = (long)now.tv_sec + utc_offset_seconds;
    day = seconds / 86400;
    second_of_day = seconds % 86400;
    /* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
    era = (day + 719468) / 146097;
    day_of_era = day + 719468 - era * 146097;
    year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    month_index = (5 * day_of_year + 2) / 153;  /* 0: March */
    year = year_of_era + era * 400 + (month_index >= 10);
    add_text(b, days[(day + 4) % 7]);
    add_text(b, " ");
    add_text(b, months[month_index < 10 ? month_index + 2 : month_index - 10]);
    add_text(b, " ");
    add_number(b, (unsigned long)(day_of_year - (153 * month_index + 2) / 5 + 1), 10, 2);
    add_text(b, " ");
    add_number(b, (unsigned long)(second_of_day / 3600), 10, 2);
    add_text(b, ":");
    add_number(b, (unsigned long)(second_of_day / 60 % 60), 10, 2);
    add_text(b, ":");
    add_number(b, (unsigned long)(second_of_day % 60), 10, 2);
    add_text(b, ".");
    add_number(b, (unsigned long)(now.tv_nsec / 1000), 10, 6);
    add_text(b, " ");
    add_number(b, (unsigned long)year, 10, 4);
}

/* What starts every line of the entry, as httpd's default ErrorLogFormat
 * would write it. */
static void add_line_start(text_buffer *b, const swiftws_trap_label *label)
{
    add_text(b, "[");
    add_log_time(b);
    add_text(b, "] [swiftwebsocket:crit] [pid ");
    add_number(b, (unsigned long)getpid(), 10, 1);
    add_text(b, ":tid ");
    add_number(b, (unsigned long)syscall(SYS_gettid), 10, 1);
    add_text(b, "] ");
    if (label) {
        add_text(b, "[client ");
        add_text(b, label->client);
        add_text(b, "] ");
    }
}

/* "Module.Type.function" from a Swift mangled name ($s6Module4TypeV8functionyyF):
 * the leading run of length-prefixed identifiers, each but the last
 * followed by its kind (V struct, C class, O enum...). Stops at anything
 * more involved (word substitutions, generics); "" when not Swift. */
static void add_swift_path(text_buffer *b, const char *name)
{
    const char *at = name[0] == '_' ? name + 1 : name;
    int words = 0;
    if (at[0] != '$' || at[1] != 's') {
        return;
    }
    at += 2;
    while (*at >= '1' && *at <= '9') {
        size_t length = 0;
        while (*at >= '0' && *at <= '9') {
            length = length * 10 + (size_t)(*at++ - '0');
        }
        /* An identifier followed by a word substitution ("0") is part of
         * something more involved (a protocol conformance); one starting
         * with "_" is a private discriminator. */
        if (strnlen(at, length) < length || at[length] == '0' || at[0] == '_') {
            return;
        }
        if (words++) {
            add_text(b, ".");
        }
        add_bytes(b, at, length);
        at += length;
        if (*at && strchr("VCOPE", *at) && at[1] >= '1' && at[1] <= '9') {
            at++;
        }
    }
}

static void add_frame(text_buffer *b, const swiftws_trap_label *label, int number, void *frame, int is_return)
{
    /* A return address may be the first byte after a call at a function's
     * very end: look up the call itself. */
    uintptr_t address = (uintptr_t)frame - (is_return ? 1 : 0);
    char name[512];
    uintptr_t offset = 0;
    const char *object = NULL, *symbol = NULL;
    /* Only the nearest exported symbol is known (a stripped object, as
     * in the package): the frame may be in a function of its own. */
    int approximate = 0;
    Dl_info info;
    if (dladdr((void *)address, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        object = slash ? slash + 1 : info.dli_fname;
        if (swiftws_elf_function_at(info.dli_fname, address - (uintptr_t)info.dli_fbase, name, sizeof(name),
                                    &offset) == 0) {
            symbol = name;
        }
        else if (info.dli_sname) {
            symbol = info.dli_sname;
            offset = address - (uintptr_t)info.dli_saddr;
            approximate = 1;
        }
    }
    add_line_start(b, label);
    add_text(b, "  #");
    add_number(b, (unsigned long)number, 10, 1);
    add_text(b, " ");
    add_hex(b, (uintptr_t)frame);
    if (symbol) {
        char *path_start;
        if (approximate) {
            add_text(b, " near");
        }
        path_start = b->at;
        add_text(b, " ");
        add_swift_path(b, symbol);
        if (b->at == path_start + 1) {
            b->at = path_start;  /* not Swift: the name alone */
        }
        add_text(b, " ");
        add_text(b, symbol);
        add_text(b, "+");
        add_hex(b, offset + (is_return ? 1 : 0));
    }
    if (object) {
        add_text(b, " in ");
        add_text(b, object);
    }
    add_text(b, "\n");
}

static uintptr_t faulting_address(void *context)
{
    const ucontext_t *uc = context;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

/* The last line on stderr that httpd did not write (its lines start with
 * "["): where the Swift runtime put its message just before it trapped.
 * Found only when stderr is the error log file (ErrorLog to a file, which
 * httpd makes the children's stderr). */
static void add_runtime_message(text_buffer *b)
{
    static const char *const elsewhere = "; its message is on httpd's stderr";
    char tail[LOG_TAIL + 1];
    struct stat file;
    ssize_t n;
    char *end, *line;
    if (stderr_reader < 0 || fstat(stderr_reader, &file) != 0 || !S_ISREG(file.st_mode)) {
        add_text(b, elsewhere);
        return;
    }
    n = pread(stderr_reader, tail, LOG_TAIL, file.st_size > LOG_TAIL ? file.st_size - LOG_TAIL : 0);
    end = tail + (n > 0 ? n : 0);
    while (end > tail) {
        while (end > tail && end[-1] == '\n') {
            end--;
        }
        for (line = end; line > tail && line[-1] != '\n'; line--) {
        }
        if (line < end && *line != '[') {
            add_text(b, "; the runtime said: \"");
            add_bytes(b, line, (size_t)(end - line));
            add_text(b, "\"");
            return;
        }
        end = line;
    }
    add_text(b, elsewhere);
}

static void add_cause(text_buffer *b, int signal_number, const siginfo_t *info, uintptr_t pc)
{
    Dl_info where;
    int in_runtime = pc && dladdr((void *)pc, &where) && where.dli_fname
                     && strstr(where.dli_fname, "libswiftCore");
    switch (signal_number) {
    case SIGILL:
    case SIGTRAP:
        if (in_runtime) {
            add_text(b, "a Swift runtime failure (fatalError, try!, a failed check the runtime reports)");
            add_runtime_message(b);
        }
        else {
            add_text(b, "a Swift runtime check failed in optimized code (an index out of range, a nil "
                        "unwrapped, an arithmetic overflow, a failed precondition: -O builds carry no "
                        "message; frame #0 is where)");
        }
        break;
    case SIGSEGV:
        add_text(b, "invalid memory access (SIGSEGV) at ");
        add_hex(b, (uintptr_t)info->si_addr);
        break;
    case SIGBUS:
        add_text(b, "bad memory access (SIGBUS) at ");
        add_hex(b, (uintptr_t)info->si_addr);
        break;
    case SIGFPE:
        add_text(b, "an arithmetic fault (SIGFPE: an integer division by zero?)");
        break;
    }
}

static void write_report(int signal_number, siginfo_t *info, void *context)
{
    const swiftws_trap_label *label = current_label;
    text_buffer b = { report, report + sizeof(report) - 1 };
    void *frames[MAX_FRAMES];
    uintptr_t pc = faulting_address(context);
    int count, first = 0, i;

    add_line_start(&b, label);
    if (label) {
        add_text(&b, "the ");
        add_text(&b, label->handler);
    }
    else {
        add_text(&b, "code outside any WebSocket handler call on this thread (httpd, a module, or a thread "
                     "a handler started)");
    }
    add_text(&b, " trapped: ");
    add_cause(&b, signal_number, info, pc);
    add_text(&b, ". This child process ends, and every connection it serves. Backtrace:\n");

    count = backtrace(frames, MAX_FRAMES);
    /* From the faulting instruction: the frames before it are this
     * handler's and the kernel's signal trampoline. */
    for (i = 0; i < count; i++) {
        if ((uintptr_t)frames[i] == pc) {
            first = i;
            break;
        }
    }
    for (i = first; i < count; i++) {
        add_frame(&b, label, i - first, frames[i], i > first);
    }
    if (write(log_fd, report, (size_t)(b.at - report)) < 0) {
        /* Nowhere else to say it. */
    }
    if (label) {
        swiftws_trap_limit_record(label->limit_slot);
    }
}

static void on_trap(int signal_number, siginfo_t *info, void *context)
{
    if (atomic_fetch_add(&reporting, 1) == 0) {
        write_report(signal_number, info, context);
        atomic_store(&reported, 1);
    }
    else {
        /* Another thread trapped too: let the first report finish. */
        struct timespec pause = { 0, 10 * 1000 * 1000 };
        int waits = 200;
        while (!atomic_load(&reported) && waits--) {
            nanosleep(&pause, NULL);
        }
    }
    /* The signal's previous course, as soon as this handler returns (the
     * signal is blocked until then). Re-raised rather than re-executed:
     * after a SIGTRAP the instruction would not fault again. */
    sigaction(signal_number, &previous_actions[signal_number], NULL);
    raise(signal_number);
}

static apr_status_t close_stderr_reader(void *unused)
{
    close(stderr_reader);
    stderr_reader = -1;
    return APR_SUCCESS;
}

void swiftws_trap_report_post_config(apr_pool_t *pconf)
{
    swiftws_elf_symbols_open_loaded(pconf);
    stderr_reader = open("/proc/self/fd/2", O_RDONLY | O_CLOEXEC);
    if (stderr_reader >= 0) {
        apr_pool_cleanup_register(pconf, NULL, close_stderr_reader, apr_pool_cleanup_null);
    }
}

void swiftws_trap_report_child_init(apr_pool_t *pchild, server_rec *s)
{
    struct sigaction action;
    apr_os_file_t fd;
    void *frame;
    time_t now = time(NULL);
    struct tm local;
    size_t i;
    if (s->error_log && apr_os_file_get(&fd, s->error_log) == APR_SUCCESS) {
        log_fd = fd;
    }
    if (localtime_r(&now, &local)) {
        utc_offset_seconds = local.tm_gmtoff;
    }
    /* backtrace() loads libgcc's unwinder on its first call: now, not in
     * the signal handler. */
    backtrace(&frame, 1);
    pthread_key_create(&signal_stack_key, free_signal_stack);
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_trap;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (i = 0; i < sizeof(trap_signals) / sizeof(trap_signals[0]); i++) {
        sigaction(trap_signals[i], &action, &previous_actions[trap_signals[i]]);
    }
}
