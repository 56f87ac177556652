#include "elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "apr_strings.h"

/* Symbols read per pread: a few KiB of stack. */
#define SYMBOLS_PER_READ 64
/* Loaded objects with a .symtab kept open; httpd and the handlers need a
 * handful, most system libraries are stripped. */
#define MAX_OPEN_OBJECTS 128

static struct {
    const char *path;
    int fd;
} open_objects[MAX_OPEN_OBJECTS];
static int open_object_count;

static int read_at(int fd, void *buffer, size_t length, off_t offset)
{
    return pread(fd, buffer, length, offset) == (ssize_t)length ? 0 : -1;
}

static int read_section(int fd, const ElfW(Ehdr) *header, unsigned index, ElfW(Shdr) *section)
{
    if (index >= header->e_shnum) {
        return -1;
    }
    return read_at(fd, section, sizeof(*section), (off_t)(header->e_shoff + (ElfW(Off))index * header->e_shentsize));
}

/* The function symbol containing `address`, or else the closest one below
 * it (a function without a size, or padding between functions). */
static int find_function(int fd, const ElfW(Shdr) *symtab, uintptr_t address, ElfW(Sym) *best)
{
    ElfW(Sym) symbols[SYMBOLS_PER_READ];
    size_t count = symtab->sh_size / sizeof(ElfW(Sym)), i = 0;
    int found = 0;
    while (i < count) {
        size_t n = count - i < SYMBOLS_PER_READ ? count - i : SYMBOLS_PER_READ, j;
        if (read_at(fd, symbols, n * sizeof(ElfW(Sym)), (off_t)(symtab->sh_offset + i * sizeof(ElfW(Sym)))) != 0) {
            return -1;
        }
        for (j = 0; j < n; j++) {
            const ElfW(Sym) *symbol = &symbols[j];
            if (ELF64_ST_TYPE(symbol->st_info) != STT_FUNC || symbol->st_value == 0 || symbol->st_value > address) {
                continue;
            }
            if (symbol->st_size && address >= symbol->st_value + symbol->st_size) {
                continue;
            }
            if (!found || symbol->st_value > best->st_value) {
                *best = *symbol;
                found = 1;
            }
        }
        i += n;
    }
    return found ? 0 : -1;
}

/* The .symtab section and the header it was found with. */
static int find_symtab(int fd, ElfW(Ehdr) *header, ElfW(Shdr) *symtab)
{
    unsigned i;
    if (read_at(fd, header, sizeof(*header), 0) != 0 || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0
        || header->e_shentsize != sizeof(ElfW(Shdr))) {
        return -1;
    }
    for (i = 0; i < header->e_shnum; i++) {
        if (read_section(fd, header, i, symtab) != 0) {
            return -1;
        }
        if (symtab->sh_type == SHT_SYMTAB) {
            return 0;
        }
    }
    return -1;
}

static int function_in(int fd, uintptr_t address, char *name, size_t size, uintptr_t *offset)
{
    ElfW(Ehdr) header;
    ElfW(Shdr) symtab, strings;
    ElfW(Sym) function;
    ssize_t n;
    if (size == 0 || find_symtab(fd, &header, &symtab) != 0 || read_section(fd, &header, symtab.sh_link, &strings) != 0
        || find_function(fd, &symtab, address, &function) != 0 || function.st_name >= strings.sh_size) {
        return -1;
    }
    n = pread(fd, name, size - 1, (off_t)(strings.sh_offset + function.st_name));
    if (n <= 0) {
        return -1;
    }
    name[n] = '\0';
    *offset = address - function.st_value;
    return 0;
}

int swiftws_elf_function_at(const char *path, uintptr_t address, char *name, size_t size, uintptr_t *offset)
{
    int i, fd, result;
    for (i = 0; i < open_object_count; i++) {
        if (strcmp(open_objects[i].path, path) == 0) {
            return function_in(open_objects[i].fd, address, name, size, offset);
        }
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    result = function_in(fd, address, name, size, offset);
    close(fd);
    return result;
}

static int keep_if_symbolized(struct dl_phdr_info *info, size_t size, void *pconf)
{
    ElfW(Ehdr) header;
    ElfW(Shdr) symtab;
    int fd;
    if (!info->dlpi_name || !info->dlpi_name[0] || open_object_count == MAX_OPEN_OBJECTS) {
        return 0;
    }
    fd = open(info->dlpi_name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (find_symtab(fd, &header, &symtab) != 0) {
        close(fd);
        return 0;
    }
    open_objects[open_object_count].path = apr_pstrdup(pconf, info->dlpi_name);
    open_objects[open_object_count].fd = fd;
    open_object_count++;
    return 0;
}

static apr_status_t close_objects(void *unused)
{
    while (open_object_count > 0) {
        close(open_objects[--open_object_count].fd);
    }
    return APR_SUCCESS;
}

void swiftws_elf_symbols_open_loaded(apr_pool_t *pconf)
{
    close_objects(NULL);
    dl_iterate_phdr(keep_if_symbolized, pconf);
    apr_pool_cleanup_register(pconf, NULL, close_objects, apr_pool_cleanup_null);
}
