/*
 * What the error log says when handler code traps: a Swift runtime failure
 * (ud2, SIGILL on x86_64), or SIGSEGV, SIGBUS, SIGFPE or SIGTRAP. Before
 * the child dies, one entry names the handler, its resource and the
 * connection (client, log id), says what the signal means (quoting the
 * Swift runtime's message when it wrote one) and gives a backtrace with
 * the functions' names; the trap is counted for SwiftWebSocketTrapLimit.
 * The signal then takes its previous course (httpd's core dump handler,
 * Swift's backtracer if SWIFT_BACKTRACE enabled it, or the default
 * action), and the MPM replaces the child as before.
 *
 * The signal handler uses async-signal-safe calls only, with two
 * documented exceptions that are safe in practice: backtrace(), once
 * its unwinder is loaded (done at child_init, so it never dlopens in the
 * handler), and dladdr(), whose only lock is the dynamic loader's
 * recursive one (a trap inside dlopen on the same thread still gets
 * through). Symbol names come from the objects' .symtab by pread
 * (elf_symbols.c); Swift names are shown mangled, with a readable
 * Module.Type.function prefix taken from them without allocating
 * (swift demangle gives the rest).
 */
#ifndef SWIFTWS_TRAP_REPORT_H
#define SWIFTWS_TRAP_REPORT_H

#include "httpd.h"

/* One connection's description, made before its handler first runs and
 * kept for the connection's life. */
typedef struct swiftws_trap_label swiftws_trap_label;

/* `limit_slot`: the handler's SwiftWebSocketTrapLimit count (-1: none). */
swiftws_trap_label *swiftws_trap_label_make(request_rec *r, apr_pool_t *pool, const char *handler_name,
                                            int limit_slot);

/* Bracket handler code on this thread: a trap in between is reported with
 * `label`. Enter returns what to pass to leave (calls may nest). The first
 * entry on a thread gives it a signal stack, so a handler that overflows
 * its stack is reported too. */
const void *swiftws_trap_enter(const swiftws_trap_label *label);
void swiftws_trap_leave(const void *previous);

/* From post_config, after the handlers loaded (in the parent, which may
 * read the error log and the handlers): a way to read back what the Swift
 * runtime writes to stderr before it traps, and the objects' symbols. */
void swiftws_trap_report_post_config(apr_pool_t *pconf);

/* From child_init: the error log to write to, and the signal handlers. */
void swiftws_trap_report_child_init(apr_pool_t *pchild, server_rec *s);

#endif
