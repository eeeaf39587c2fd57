#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"
#include "util/sysio.h"

lora_status lora__read_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return lora__error(LORA_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return lora__error(LORA_ERR_IO, "%s: not a regular file", path);
    if ((unsigned long long)st.st_size > max_bytes)
        return lora__error(LORA_ERR_FORMAT, "%s: %lld bytes, more than the %zu allowed", path,
                           (long long)st.st_size, max_bytes);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lora__error(LORA_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n = (size_t)st.st_size;
    char *buf = lora__malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lora__oom(path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return lora__error(LORA_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return LORA_OK;
}

char *lora__path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = lora__malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int lora__is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int lora__is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

lora_status lora__remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT)
        return LORA_OK;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return lora__error(LORA_ERR_IO, "%s: could not remove: %s", path, strerror(errno));
    return LORA_OK;
}

lora_status lora__sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    lora_status st = LORA_OK;
    if (fd < 0 || lora__sys_fsync(fd) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot sync the folder: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return st;
}
