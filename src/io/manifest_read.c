/* Manifests read strictly (any unknown key or malformed value refuses the folder, so that a
 * damaged manifest cannot pass for a valid one), and files checked against them. */
#include "io/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json_text.h"

#define FORMAT_NAME "liblora-manifest"
#define MAX_MANIFEST_BYTES (1u << 20)
#define HASH_CHUNK (1u << 20)

typedef struct manifest_entry {
    const char *name;   /* owned by root */
    uint64_t bytes;
    char sha256[65];
} manifest_entry;

struct lora_manifest {
    char *path;
    json_t *root;
    size_t n;
    manifest_entry *entries;    /* in the order of the file, which the writer sorts */
};

static lora_status hash_fd(int fd, const char *path, uint64_t *bytes, char hex[65])
{
    unsigned char *buf = lora__malloc(HASH_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    lora_status st = LORA_OK;
    uint64_t total = 0;
    if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        st = lora__oom("SHA-256 state", HASH_CHUNK);
    while (!st) {
        ssize_t r = read(fd, buf, HASH_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            st = lora__error(LORA_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        else if (r == 0)
            break;
        else if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1)
            st = lora__error(LORA_ERR_INTERNAL, "%s: SHA-256 update failed", path);
        else
            total += (uint64_t)r;
    }
    unsigned char md[32];
    unsigned int len = 0;
    if (!st && (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != sizeof md))
        st = lora__error(LORA_ERR_INTERNAL, "%s: SHA-256 final failed", path);
    for (unsigned i = 0; !st && i < sizeof md; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (!st)
        *bytes = total;
    EVP_MD_CTX_free(ctx);
    free(buf);
    return st;
}

lora_status lora__file_sha256(const char *path, uint64_t *bytes, char hex[65])
{
    /* O_NONBLOCK: a FIFO must fail the regular-file check, not hang the open */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return lora__error(LORA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    lora_status st;
    if (fstat(fd, &sb) != 0)
        st = lora__error(LORA_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = lora__error(LORA_ERR_IO, "%s: not a regular file", path);
    else
        st = hash_fd(fd, path, bytes, hex);
    close(fd);
    return st;
}

/* A plain name inside the folder: the staged copy's path is built from it. */
static int plain_name(const char *name)
{
    return name[0] != '\0' && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

static int lower_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

static lora_status parse_entry(const char *path, const char *name, json_t *v, manifest_entry *e)
{
    const char *key;
    json_t *x;
    if (!plain_name(name))
        return lora__error(LORA_ERR_FORMAT, "%s: file name '%s' is not a plain file name", path,
                           name);
    if (!json_is_object(v))
        return lora__error(LORA_ERR_FORMAT, "%s: the entry of '%s' is not an object", path, name);
    json_object_foreach(v, key, x)
        if (strcmp(key, "bytes") != 0 && strcmp(key, "sha256") != 0)
            return lora__error(LORA_ERR_FORMAT, "%s: the entry of '%s' has an unknown key '%s'",
                               path, name, key);
    json_t *bytes = json_object_get(v, "bytes"), *sha = json_object_get(v, "sha256");
    if (!json_is_integer(bytes) || json_integer_value(bytes) < 0)
        return lora__error(LORA_ERR_FORMAT, "%s: the entry of '%s' has no byte count", path,
                           name);
    if (!json_is_string(sha) || !lower_hex64(json_string_value(sha)))
        return lora__error(LORA_ERR_FORMAT, "%s: the sha256 of '%s' is not 64 lowercase hex "
                           "digits", path, name);
    e->name = name;
    e->bytes = (uint64_t)json_integer_value(bytes);
    memcpy(e->sha256, json_string_value(sha), 65);
    return LORA_OK;
}

static lora_status parse(lora_manifest *m, const char *text, size_t len)
{
    json_error_t err;
    const char *key;
    json_t *v;
    m->root = lora__json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(m->root))
        return lora__error(LORA_ERR_FORMAT, "%s: not a JSON object%s%s", m->path,
                           m->root ? "" : ": ", m->root ? "" : err.text);
    json_object_foreach(m->root, key, v)
        if (strcmp(key, "format") != 0 && strcmp(key, "format_version") != 0 &&
            strcmp(key, "files") != 0)
            return lora__error(LORA_ERR_FORMAT, "%s: unknown key '%s'", m->path, key);
    const char *format = json_string_value(json_object_get(m->root, "format"));
    json_t *version = json_object_get(m->root, "format_version");
    json_t *files = json_object_get(m->root, "files");
    if (!format || strcmp(format, FORMAT_NAME) != 0)
        return lora__error(LORA_ERR_FORMAT, "%s: \"format\" is not \"%s\"", m->path,
                           FORMAT_NAME);
    if (!json_is_integer(version) || json_integer_value(version) != 1)
        return lora__error(LORA_ERR_FORMAT, "%s: \"format_version\" is not 1 (written by a "
                           "newer liblora?)", m->path);
    if (!json_is_object(files))
        return lora__error(LORA_ERR_FORMAT, "%s: \"files\" is not an object", m->path);
    m->entries = lora__calloc(json_object_size(files) + 1, sizeof *m->entries);
    if (!m->entries)
        return lora__oom("manifest entries", json_object_size(files) * sizeof *m->entries);
    json_object_foreach(files, key, v) {
        lora_status st = parse_entry(m->path, key, v, &m->entries[m->n]);
        if (st)
            return st;
        m->n++;
    }
    return LORA_OK;
}

lora_status lora__manifest_load(const char *dir, lora_manifest **out)
{
    *out = NULL;
    lora_manifest *m = lora__calloc(1, sizeof *m);
    if (!m || !(m->path = lora__path_join(dir, LORA_MANIFEST_NAME))) {
        free(m);
        return lora__oom("manifest", strlen(dir) + sizeof LORA_MANIFEST_NAME);
    }
    if (access(m->path, F_OK) != 0 && errno == ENOENT) {
        lora__manifest_free(m);
        return LORA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    lora_status st = lora__read_file(m->path, MAX_MANIFEST_BYTES, &text, &len);
    if (!st)
        st = parse(m, text, len);
    free(text);
    if (st) {
        lora__manifest_free(m);
        return st;
    }
    *out = m;
    return LORA_OK;
}

void lora__manifest_free(lora_manifest *m)
{
    if (!m)
        return;
    json_decref(m->root);
    free(m->entries);
    free(m->path);
    free(m);
}

size_t lora__manifest_count(const lora_manifest *m) { return m ? m->n : 0; }

const char *lora__manifest_entry(const lora_manifest *m, size_t i, uint64_t *bytes,
                                 const char **sha256)
{
    if (!m || i >= m->n)
        return NULL;
    *bytes = m->entries[i].bytes;
    *sha256 = m->entries[i].sha256;
    return m->entries[i].name;
}

static const manifest_entry *find(const lora_manifest *m, const char *name)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (strcmp(m->entries[i].name, name) == 0)
            return &m->entries[i];
    return NULL;
}

/* 1 if path holds what e records, 0 if not (with its size and hash in bytes and hex). */
static lora_status matches(const manifest_entry *e, const char *path, int *yes, uint64_t *bytes,
                           char hex[65])
{
    lora_status st = lora__file_sha256(path, bytes, hex);
    *yes = !st && *bytes == e->bytes && strcmp(hex, e->sha256) == 0;
    return st;
}

static lora_status mismatch(const lora_manifest *m, const manifest_entry *e, const char *path,
                            uint64_t bytes, const char *hex)
{
    static const char hint[] = "changed since liblora saved it; delete " LORA_MANIFEST_NAME
                               " to load the folder unchecked";
    if (bytes != e->bytes)
        return lora__error(LORA_ERR_FORMAT, "%s: %llu bytes, but %s records %llu (truncated or "
                           "%s)", path, (unsigned long long)bytes, m->path,
                           (unsigned long long)e->bytes, hint);
    return lora__error(LORA_ERR_FORMAT, "%s: SHA-256 %s, but %s records %s (corrupted or %s)",
                       path, hex, m->path, e->sha256, hint);
}

lora_status lora__manifest_resolve(const lora_manifest *m, const char *dir, const char *name,
                                   char **path)
{
    *path = lora__path_join(dir, name);
    if (!*path)
        return lora__oom("path", strlen(dir) + strlen(name) + 2);
    const manifest_entry *e = find(m, name);
    if (!e)
        return LORA_OK;
    int final_exists = lora__is_file(*path), ok = 0;
    uint64_t bytes = 0, staged_bytes;
    char hex[65] = "", staged_hex[65];
    lora_status st = final_exists ? matches(e, *path, &ok, &bytes, hex) : LORA_OK;
    if (st || ok)
        goto done;
    char *staging = lora__path_join(dir, LORA_STAGING_NAME);
    char *staged = staging ? lora__path_join(staging, name) : NULL;
    free(staging);
    if (!staged) {
        st = lora__oom("path", strlen(dir) + strlen(name) + sizeof LORA_STAGING_NAME + 2);
        goto done;
    }
    if (lora__is_file(staged) && !(st = matches(e, staged, &ok, &staged_bytes, staged_hex)) &&
        ok) {
        free(*path);
        *path = staged;
        return LORA_OK;
    }
    free(staged);
    if (!st && final_exists)
        st = mismatch(m, e, *path, bytes, hex);
done:
    if (st) {
        free(*path);
        *path = NULL;
    }
    return st;
}
