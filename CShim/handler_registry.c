#include "handler_registry.h"

#include "http_log.h"
#include "apr_file_info.h"
#include "apr_file_io.h"
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
/* Deep enough for any real tree; stops a symlink loop inside the root. */
#define MAX_SCAN_DEPTH 16

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

/* Whether canonical `path` lies strictly inside canonical `root`. */
static int is_inside(const char *root, const char *path)
{
    size_t n = strlen(root);
    return strncmp(root, path, n) == 0 && path[n] == '/';
}

const char *swiftws_scan_directory(apr_pool_t *p, const char *root, const char *directory,
                                   const char **canonical)
{
    const char *path = directory[0] == '/' ? directory : apr_pstrcat(p, root, "/", directory, NULL);
    const char *error = swiftws_canonical_directory(p, path, canonical);
    if (!error && strcmp(*canonical, root) != 0 && !is_inside(root, *canonical)) {
        error = apr_psprintf(p, "%s is not inside the handler root %s", *canonical, root);
    }
    return error ? apr_psprintf(p, "SwiftWebSocketHandlerScan %s: %s", directory, error) : NULL;
}

static int has_handler_suffix(const char *name)
{
    size_t n = strlen(name), m = strlen(HANDLER_SUFFIX);
    return n > m && strcmp(name + n - m, HANDLER_SUFFIX) == 0;
}

/* ---- Loading, and reloading on a graceful restart ----
 *
 * Handlers are never unloaded (RTLD_NODELETE): the Swift runtime keeps
 * pointers into their type metadata for the life of the process. The
 * parent keeps, in its process pool (which outlives this module between
 * restarts), what it loaded from each path. An unchanged file is reused; a
 * changed one must be loaded under a new name, because dlopen answers a
 * name it has seen with the object already loaded: it is copied to a
 * private temporary file, loaded from there, and the copy removed. */

#define LOADED_KEY "swiftwebsocket:loaded-handlers"

typedef struct {
    apr_ino_t inode;
    apr_dev_t device;
    apr_time_t mtime;
    apr_off_t size;
    void *handler_type;   /* NULL: loaded, but refused for `refusal` */
    const char *refusal;
    const char *abi;      /* the handler's engine ABI, NULL if it has none */
} loaded_handler;

static apr_hash_t *loaded_handlers(server_rec *s)
{
    apr_pool_t *process_pool = s->process->pool;
    void *table = NULL;
    apr_pool_userdata_get(&table, LOADED_KEY, process_pool);
    if (!table) {
        table = apr_hash_make(process_pool);
        apr_pool_userdata_set(table, LOADED_KEY, NULL, process_pool);
    }
    return table;
}

/* Copies `path` to a new private file and returns its name, or NULL with
 * *why set. */
static const char *private_copy(apr_pool_t *p, const char *path, const char **why)
{
    const char *temp_dir = NULL;
    char *name = NULL;
    apr_file_t *reserved = NULL;
    apr_status_t rv = apr_temp_dir_get(&temp_dir, p);
    if (rv == APR_SUCCESS) {
        /* A name of our own, created exclusively (mode 0600, which the copy
         * keeps: it fills the file that exists). */
        name = apr_pstrcat(p, temp_dir, "/swiftwebsocket-handler-XXXXXX", NULL);
        rv = apr_file_mktemp(&reserved, name, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, p);
    }
    if (rv == APR_SUCCESS) {
        apr_file_close(reserved);
        rv = apr_file_copy(path, name, APR_FPROT_OS_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            apr_file_remove(name, p);
        }
    }
    if (rv != APR_SUCCESS) {
        char message[120];
        *why = apr_psprintf(p, "cannot copy it to reload it: %s", apr_strerror(rv, message, sizeof(message)));
        return NULL;
    }
    return name;
}

static const char *abi_mismatch(apr_pool_t *p, const char *handler_abi)
{
    return apr_psprintf(p, "built against engine %s, but this module is %s; rebuild it "
                        "with swiftwebsocket-build", handler_abi, SWIFTWS_ENGINE_ABI);
}

/* Loads one shared object and returns its handler type, or NULL with
 * *why set. *mapped says whether the object is now in the process (it may
 * be, and still be refused); *abi is its engine ABI when it has one. */
static void *open_handler(apr_pool_t *p, const char *path, const char **why, int *mapped,
                          const char **abi_found)
{
    void *dso = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    swiftws_handler_abi_fn abi;
    swiftws_handler_type_fn type;
    const char *handler_abi;
    *mapped = dso != NULL;
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
    *abi_found = handler_abi;
    if (strcmp(handler_abi, SWIFTWS_ENGINE_ABI) != 0) {
        *why = abi_mismatch(p, handler_abi);
        return NULL;
    }
    return type();
}

static void *load_handler(apr_pool_t *p, server_rec *s, const char *resolved, const char **why)
{
    apr_hash_t *loaded = loaded_handlers(s);
    loaded_handler *previous = apr_hash_get(loaded, resolved, APR_HASH_KEY_STRING);
    loaded_handler *current;
    void *handler_type;
    apr_finfo_t finfo;
    const char *load_from = resolved;
    const char *abi = NULL;
    int mapped = 0;
    apr_status_t rv = apr_stat(&finfo, resolved, APR_FINFO_IDENT | APR_FINFO_MTIME | APR_FINFO_SIZE, p);
    if (rv != APR_SUCCESS) {
        *why = "cannot stat it";
        return NULL;
    }
    if (previous && previous->inode == finfo.inode && previous->device == finfo.device
        && previous->mtime == finfo.mtime && previous->size == finfo.size) {
        /* The module may have been upgraded since: check the ABI again. */
        if (previous->abi && strcmp(previous->abi, SWIFTWS_ENGINE_ABI) != 0) {
            *why = abi_mismatch(p, previous->abi);
            return NULL;
        }
        *why = previous->refusal;
        return previous->handler_type;
    }
    if (previous) {
        load_from = private_copy(p, resolved, why);
        if (!load_from) {
            return NULL;
        }
    }
    handler_type = open_handler(p, load_from, why, &mapped, &abi);
    if (load_from != resolved) {
        apr_file_remove(load_from, p);
    }
    if (!mapped) {
        return NULL;  /* nothing took the name: the next try may use it */
    }
    /* The record outlives this configuration (the process pool): made only
     * for what stays mapped, so failed loads on every restart cost nothing. */
    current = apr_pcalloc(s->process->pool, sizeof(*current));
    current->handler_type = handler_type;
    current->inode = finfo.inode;
    current->device = finfo.device;
    current->mtime = finfo.mtime;
    current->size = finfo.size;
    current->refusal = current->handler_type ? NULL : apr_pstrdup(s->process->pool, *why);
    current->abi = abi ? apr_pstrdup(s->process->pool, abi) : NULL;
    apr_hash_set(loaded, apr_pstrdup(s->process->pool, resolved), APR_HASH_KEY_STRING, current);
    if (previous && current->handler_type) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "reloaded changed WebSocket handler %s", resolved);
    }
    return current->handler_type;
}

/* ---- Scanning ---- */

static void scan(apr_pool_t *p, server_rec *s, const swiftws_handler_source *source, const char *dir,
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
        if (!realpath(path, resolved)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s, "ignoring %s: cannot resolve it", path);
            continue;
        }
        if (!is_inside(source->root, resolved) && !source->allow_outside_root) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "ignoring %s: it resolves outside the handler root %s "
                         "(see SwiftWebSocketAllowHandlersOutsideRoot)", path, source->root);
            continue;
        }
        if (entry.filetype == APR_LNK) {
            apr_finfo_t target;
            if (apr_stat(&target, resolved, APR_FINFO_TYPE, p) == APR_SUCCESS) {
                entry.filetype = target.filetype;
            }
        }
        if (entry.filetype == APR_DIR) {
            scan(p, s, source, path, depth + 1, handlers);
        }
        else if (has_handler_suffix(entry.name)) {
            const char *why = NULL;
            void *handler_type;
            /* Named by where it sits under the root, not where it leads. */
            const char *resource = apr_pstrndup(p, path + strlen(source->root),
                                                strlen(path) - strlen(source->root) - strlen(HANDLER_SUFFIX));
            handler_type = load_handler(p, s, resolved, &why);
            if (!handler_type) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "cannot load WebSocket handler %s: %s",
                             path, why);
                continue;
            }
            apr_hash_set(handlers, resource, APR_HASH_KEY_STRING, handler_type);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "WebSocket handler %s serves %s", path, resource);
        }
    }
    apr_dir_close(handle);
}

/* ---- The alias map (pywebsocket's --websock-handlers-map-file) ---- */

static const char *apply_map(apr_pool_t *p, server_rec *s, const char *map_file, apr_hash_t *handlers)
{
    ap_configfile_t *file;
    char line[MAX_STRING_LEN];
    apr_status_t rv = ap_pcfg_openfile(&file, p, map_file);
    if (rv != APR_SUCCESS) {
        char message[120];
        return apr_psprintf(p, "SwiftWebSocketHandlerMap %s: %s", map_file,
                            apr_strerror(rv, message, sizeof(message)));
    }
    while (ap_cfg_getline(line, sizeof(line), file) == APR_SUCCESS) {
        const char *rest = line;
        const char *alias = ap_getword_conf(p, &rest);
        const char *existing = ap_getword_conf(p, &rest);
        void *target;
        if (alias[0] == '\0' || alias[0] == '#') {
            continue;
        }
        if (alias[0] != '/' || existing[0] != '/' || *ap_getword_conf(p, &rest) != '\0') {
            const char *why = apr_psprintf(p, "SwiftWebSocketHandlerMap %s line %d: expected "
                                           "\"/alias-path /existing-path\"", map_file, file->line_number);
            ap_cfg_closefile(file);
            return why;
        }
        target = apr_hash_get(handlers, existing, APR_HASH_KEY_STRING);
        if (!target) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SwiftWebSocketHandlerMap %s line %d: no handler "
                         "serves %s; %s is not mapped", map_file, file->line_number, existing, alias);
            continue;
        }
        apr_hash_set(handlers, alias, APR_HASH_KEY_STRING, target);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "WebSocket resource %s is served as %s", alias, existing);
    }
    ap_cfg_closefile(file);
    return NULL;
}

const char *swiftws_load_handlers(apr_pool_t *p, server_rec *s, const swiftws_handler_source *source,
                                  apr_hash_t **handlers)
{
    *handlers = apr_hash_make(p);
    scan(p, s, source, source->scan_directory ? source->scan_directory : source->root, 0, *handlers);
    return source->map_file ? apply_map(p, s, source->map_file, *handlers) : NULL;
}
