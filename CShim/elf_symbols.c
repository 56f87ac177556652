#include "elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

/* Symbols read per pread: a few KiB of stack. */
#define SYMBOLS_PER_READ 64

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

int swiftws_elf_function_at(const char *path, uintptr_t address, char *name, size_t size, uintptr_t *offset)
{
    ElfW(Ehdr) header;
    ElfW(Shdr) section, strings;
    ElfW(Sym) function;
    unsigned i;
    ssize_t n;
    int result = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || size == 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (read_at(fd, &header, sizeof(header), 0) != 0 || memcmp(header.e_ident, ELFMAG, SELFMAG) != 0
        || header.e_shentsize != sizeof(ElfW(Shdr))) {
        goto done;
    }
    for (i = 0; i < header.e_shnum; i++) {
        if (read_section(fd, &header, i, &section) != 0) {
            goto done;
        }
        if (section.sh_type == SHT_SYMTAB) {
            break;
        }
    }
    if (i == header.e_shnum || read_section(fd, &header, section.sh_link, &strings) != 0
        || find_function(fd, &section, address, &function) != 0 || function.st_name >= strings.sh_size) {
        goto done;
    }
    n = pread(fd, name, size - 1, (off_t)(strings.sh_offset + function.st_name));
    if (n <= 0) {
        goto done;
    }
    name[n] = '\0';
    *offset = address - function.st_value;
    result = 0;
done:
    close(fd);
    return result;
}
