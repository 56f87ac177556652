/*
 * Names code addresses from a shared object's full symbol table (.symtab),
 * for the backtrace of a trap (trap_report.c). dladdr sees only exported
 * symbols, and a handler's own functions (internal to its Swift module)
 * are not exported: dladdr would name the nearest exported one instead,
 * wrongly. Async-signal-safe: pread (and open and close when the file was
 * not opened beforehand) on the file, stack buffers, no allocation.
 */
#ifndef SWIFTWS_ELF_SYMBOLS_H
#define SWIFTWS_ELF_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#include "apr_pools.h"

/* In the parent, after the handlers loaded (post_config): opens every
 * loaded object that has a .symtab and keeps it open for the life of
 * `pconf`. The children run as httpd's User, which may not be allowed to
 * read the handlers' files (the parent loaded them as root). */
void swiftws_elf_symbols_open_loaded(apr_pool_t *pconf);

/* Finds the function in `path` (an ELF shared object or executable) whose
 * code holds `address` (relative to where the object is loaded) and copies
 * its name into `name` (cut to `size` - 1). Returns 0 and sets *offset to
 * the address's distance from the function's start; -1 when the file is
 * gone, has no .symtab or no function there. */
int swiftws_elf_function_at(const char *path, uintptr_t address, char *name, size_t size, uintptr_t *offset);

#endif
