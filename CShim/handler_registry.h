/*
 * Finding and loading handlers: every <resource>_wsh.so under a handler
 * root (or the part of it SwiftWebSocketHandlerScan names), keyed by the
 * resource path it serves, plus the aliases of SwiftWebSocketHandlerMap.
 * Only files whose canonical path lies inside the root are loaded (unless
 * SwiftWebSocketAllowHandlersOutsideRoot), so no request path, symlink or
 * encoding trick can reach code outside it: requests are only ever looked
 * up in the table built here.
 */
#ifndef HANDLER_REGISTRY_H
#define HANDLER_REGISTRY_H

#include "httpd.h"
#include "apr_hash.h"

typedef struct {
    const char *root;             /* canonical */
    const char *scan_directory;   /* canonical, inside root */
    const char *map_file;         /* NULL: none */
    int allow_outside_root;
} swiftws_handler_source;

/* Resolves `path` to its canonical form and checks it is a readable,
 * searchable directory. Returns NULL, or a message saying what is wrong. */
const char *swiftws_canonical_directory(apr_pool_t *p, const char *path, const char **canonical);

/* Resolves SwiftWebSocketHandlerScan's `directory` (relative to `root`, or
 * absolute) to a canonical directory inside `root`. Returns NULL, or what
 * is wrong. */
const char *swiftws_scan_directory(apr_pool_t *p, const char *root, const char *directory,
                                   const char **canonical);

/* Loads the handlers `source` names into *handlers. Each handler that
 * cannot load is logged with the file and the reason, and the others still
 * load. Returns NULL, or why the configuration is unusable (a malformed map
 * file): httpd should not start. */
const char *swiftws_load_handlers(apr_pool_t *p, server_rec *s, const swiftws_handler_source *source,
                                  apr_hash_t **handlers);

#endif
