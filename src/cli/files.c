#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "files.h"

int cli_write_atomic(const char *path, const char *data, size_t len)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return errno = ENOMEM, -1;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = fd < 0 ? errno : 0;
    for (size_t done = 0; !err && done < len;) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno != EINTR) err = errno;
        else if (w > 0) done += (size_t)w;
    }
    if (!err && fsync(fd) != 0) err = errno;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) unlink(tmp);
    free(tmp);
    return err ? (errno = err, -1) : 0;
}

int cli_copy_if_present(const char *from_dir, const char *to_dir, const char *name)
{
    char src[4096], dst[4096];
    if (snprintf(src, sizeof src, "%s/%s", from_dir, name) >= (int)sizeof src ||
        snprintf(dst, sizeof dst, "%s/%s", to_dir, name) >= (int)sizeof dst)
        return errno = ENAMETOOLONG, -1;
    struct stat st;
    if (stat(src, &st) != 0) return errno == ENOENT ? 0 : -1;
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    int err = !buf ? ENOMEM : (got != (size_t)st.st_size || ferror(f)) ? EIO : 0;
    fclose(f);
    int rc = err ? (errno = err, -1) : cli_write_atomic(dst, buf, got);
    free(buf);
    return rc;
}
