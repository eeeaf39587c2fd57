#include "st_build.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_st_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint8_t *tu_st_build(const char *header, const void *data, size_t data_len, size_t *size_out)
{
    size_t hlen = strlen(header);
    size_t size = 8 + hlen + data_len;
    uint8_t *buf = malloc(size ? size : 1);
    ck_assert_ptr_nonnull(buf);
    tu_st_put_le64(buf, hlen);
    memcpy(buf + 8, header, hlen);
    if (data)
        memcpy(buf + 8 + hlen, data, data_len);
    else
        memset(buf + 8 + hlen, 0, data_len);
    *size_out = size;
    return buf;
}

int tu_st_write_file(const char *path, const void *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(buf, 1, size, f);
    return fclose(f) == 0 && put == size ? 0 : -1;
}

uint8_t *tu_st_read_file(const char *path, size_t *size_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    *size_out = len;
    return buf;
}

char *tu_st_mkdtemp(void)
{
    char *dir = strdup("/tmp/lora-st-XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

void tu_st_rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
