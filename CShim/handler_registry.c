#include "handler_registry.h"

#include "http_log.h"
#include "apr_file_info.h"
#include "apr_strings.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "swiftwebsocket.h"

APLOG_USE_MODULE(swiftwebsocket);

#define HANDLER_SUFFIX "_wsh.so"

const char *swiftws_canonical_directory(apr_pool_t *p, const char *path, const char **canonical)
{
    char resolved[PATH_MAX];
    apr_finfo_t finfo;
    if (!realpath(path, resolved)) {
        return apr_psprintf(p, "cannot resolve %s: %s", path, strerror(errno));
    }
    if (apr_stat(&finfo, resolved, APR_FINFO_TYPE, p) != APR_SUCCESS || finfo.filetype != APR_DIR) {
        return apr_psprintf(p, "%s is not a directory", resolved);
    }
    if (access(resolved, R_OK | X_OK) != 0) {
        return apr_psprintf(p, "directory %s is not readable: %s", resolved, strerror(errno));
    }
    *canonical = apr_pstrdup(p, resolved);
    return NULL;
}

static int is_inside(const char *root, const char *path)
{
    size_t n = strlen(root);
    return strncmp(root, path, n) == 0 && path[n] == '/';
}

static int has_handler_suffix(const char *name)
{
    size_t n = strlen(name), m = strlen(HANDLER_SUFFIX);
    return n > m && strcmp(name + n - m, HANDLER_SUFFIX) == 0;
}

/* Loads one shared object and returns its handler type, or NULL with
 * *why set. Handlers are never unloaded (RTLD_NODELETE): the Swift runtime
 * keeps pointers into their type metadata for the life of the process. */
static void *load_handler(apr_pool_t *p, const char *path, const char **why)
{
    void *dso = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    swiftws_handler_abi_fn abi;
    swiftws_handler_type_fn type;
    const char *handler_abi;
    if (!dso) {
        *why = apr_pstrdup(p, dlerror());
        return NULL;
    }
    abi = (swiftws_handler_abi_fn)dlsym(dso, SWIFTWS_HANDLER_ABI_SYMBOL);
    type = (swiftws_handler_type_fn)dlsym(dso, SWIFTWS_HANDLER_TYPE_SYMBOL);
    if (!abi || !type) {
        *why = "no handler entry point (" SWIFTWS_HANDLER_TYPE_SYMBOL "); build it with swiftwebsocket-build";
        return NULL;
    }
    handler_abi = abi();
    if (strcmp(handler_abi, SWIFTWS_ENGINE_ABI) != 0) {
        *why = apr_psprintf(p, "built against engine %s, but this module is %s; rebuild it "
                            "with swiftwebsocket-build", handler_abi, SWIFTWS_ENGINE_ABI);
        return NULL;
    }
    return type();
}

/* Deep enough for any real tree; stops a symlink loop inside the root. */
#define MAX_SCAN_DEPTH 16

static void scan(apr_pool_t *p, server_rec *s, const char *root, const char *dir,
                 int depth, apr_hash_t *handlers)
{
    apr_dir_t *handle;
    apr_finfo_t entry;
    apr_status_t rv;
    if (depth > MAX_SCAN_DEPTH) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "not scanning %s: nested deeper than %d directories", dir, MAX_SCAN_DEPTH);
        return;
    }
    rv = apr_dir_open(&handle, dir, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "cannot read handler directory %s", dir);
        return;
    }
    while (apr_dir_read(&entry, APR_FINFO_NAME | APR_FINFO_TYPE, handle) == APR_SUCCESS) {
        const char *path;
        char resolved[PATH_MAX];
        if (entry.name[0] == '.') {
            continue;
        }
        path = apr_pstrcat(p, dir, "/", entry.name, NULL);
        if (!realpath(path, resolved) || !is_inside(root, resolved)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "ignoring %s: it resolves outside the handler root %s", path, root);
            continue;
        }
        if (entry.filetype == APR_LNK) {
            apr_finfo_t target;
            if (apr_stat(&target, resolved, APR_FINFO_TYPE, p) == APR_SUCCESS) {
                entry.filetype = target.filetype;
            }
        }
        if (entry.filetype == APR_DIR) {
            scan(p, s, root, path, depth + 1, handlers);
        }
        else if (has_handler_suffix(entry.name)) {
            const char *why = NULL;
            swiftws_handler_entry *handler = apr_pcalloc(p, sizeof(*handler));
            handler->resource = apr_pstrndup(p, path + strlen(root),
                                             strlen(path) - strlen(root) - strlen(HANDLER_SUFFIX));
            handler->handler_type = load_handler(p, resolved, &why);
            if (!handler->handler_type) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "cannot load WebSocket handler %s: %s",
                             path, why);
                continue;
            }
            apr_hash_set(handlers, handler->resource, APR_HASH_KEY_STRING, handler);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "WebSocket handler %s serves %s",
                         path, handler->resource);
        }
    }
    apr_dir_close(handle);
}

apr_hash_t *swiftws_load_handlers(apr_pool_t *p, server_rec *s, const char *root)
{
    apr_hash_t *handlers = apr_hash_make(p);
    scan(p, s, root, root, 0, handlers);
    return handlers;
}
