/*
 * Finding and loading handlers: every <resource>_wsh.so under a handler
 * root, keyed by the resource path it serves. Only files whose canonical
 * path lies inside the root are loaded, so no request path, symlink or
 * encoding trick can reach code outside it: requests are only ever looked
 * up in the table built here.
 */
#ifndef HANDLER_REGISTRY_H
#define HANDLER_REGISTRY_H

#include "httpd.h"
#include "apr_hash.h"

typedef struct {
    const char *resource;   /* "/chat/room" */
    void *handler_type;     /* from the handler's swiftwebsocket_handler_type() */
} swiftws_handler_entry;

/* Resolves `path` to its canonical form and checks it is a readable,
 * searchable directory. Returns NULL, or a message saying what is wrong. */
const char *swiftws_canonical_directory(apr_pool_t *p, const char *path, const char **canonical);

/* Loads the handlers under `root` (canonical). Each failure is logged with
 * the file and the reason; the others still load. */
apr_hash_t *swiftws_load_handlers(apr_pool_t *p, server_rec *s, const char *root);

#endif
