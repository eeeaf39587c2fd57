#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"

size_t fz_split(const uint8_t *data, size_t size, fz_part *parts, size_t max)
{
    const size_t sep = sizeof FZ_SEP - 1;
    size_t n = 0, start = 0;
    for (size_t i = 0; n + 1 < max && i + sep <= size; i++)
        if (memcmp(data + i, FZ_SEP, sep) == 0) {
            parts[n++] = (fz_part){data + start, i - start};
            start = i + sep;
            i = start - 1;
        }
    parts[n++] = (fz_part){data + start, size - start};
    return n;
}

_Noreturn void fz_die(const char *what)
{
    fprintf(stderr, "fuzz harness: %s failed (errno: %s; liblora: %s)\n", what, strerror(errno),
            lora_last_error());
    abort();
}

static char tmpdir[4096];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        if (!base || !*base)
            base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/lora-fuzz-XXXXXX", base);
        if (!mkdtemp(tmpdir))
            fz_die("mkdtemp");
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

const char *fz_path(const char *name)
{
    static char buf[4096 + 256];
    snprintf(buf, sizeof buf, "%s/%s", fz_tmpdir(), name);
    return buf;
}

void fz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fz_die(path);
}

void fz_write_part(const char *path, const fz_part *part)
{
    if (part)
        fz_write(path, part->data, part->size);
    else
        unlink(path);
}

const char *fz_fixture(const char *name)
{
    static char buf[4096];
    const char *base = getenv("LORA_FUZZ_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", base && *base ? base : "tests/fixtures", name);
    return buf;
}
