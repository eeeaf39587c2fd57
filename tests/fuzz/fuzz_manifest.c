/* liblora_manifest.json: the reader, then every listed file resolved against the folder (hashed
 * there, else its staged copy). The input is the manifest, then (separated by FZ_SEP) the bytes
 * of a.bin and of the staged .liblora-staging/a.bin; a part the input leaves out is absent.
 * Invariants: a listed name is a plain file name, and every path resolved is inside the folder
 * or its staging folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "io/manifest.h"

static void check_inside(const char *path, const char *dir, const char *name)
{
    char staged[4096 + 64];
    snprintf(staged, sizeof staged, "%s/%s/", dir, LORA_STAGING_NAME);
    size_t n = strlen(dir);
    int in_dir = strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
    int in_staging = strncmp(path, staged, strlen(staged)) == 0 &&
                     !strchr(path + strlen(staged), '/');
    if (!in_dir && !in_staging)
        fz_die("lora__manifest_resolve gave a path outside the folder");
    if (strcmp(strrchr(path, '/') + 1, name) != 0)
        fz_die("lora__manifest_resolve gave a path to another file");
}

static void resolve(const lora_manifest *m, const char *dir, const char *name)
{
    char *path = NULL;
    if (lora__manifest_resolve(m, dir, name, &path) == LORA_OK) {
        check_inside(path, dir, name);
    } else if (path)
        fz_die("lora__manifest_resolve failed and left a path");
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part parts[3];
    size_t n = fz_split(data, size, parts, 3);
    char dir[4096], path[4096 + 64];
    snprintf(dir, sizeof dir, "%s", fz_path("saved"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s", dir, LORA_STAGING_NAME);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s", dir, LORA_MANIFEST_NAME);
    fz_write_part(path, &parts[0]);
    snprintf(path, sizeof path, "%s/a.bin", dir);
    fz_write_part(path, n > 1 ? &parts[1] : NULL);
    snprintf(path, sizeof path, "%s/%s/a.bin", dir, LORA_STAGING_NAME);
    fz_write_part(path, n > 2 ? &parts[2] : NULL);

    lora_manifest *m = NULL;
    if (lora__manifest_load(dir, &m) != LORA_OK || !m)
        return 0;
    for (size_t i = 0; i < lora__manifest_count(m); i++) {
        uint64_t bytes;
        const char *sha, *name = lora__manifest_entry(m, i, &bytes, &sha);
        if (!name || !name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            fz_die("the manifest lists a name that is not a plain file name");
        if (!sha || strlen(sha) != 64)
            fz_die("the manifest lists a checksum that is not 64 hex digits");
        resolve(m, dir, name);
    }
    if (lora__manifest_entry(m, lora__manifest_count(m), NULL, NULL))
        fz_die("lora__manifest_entry past the end is not NULL");
    resolve(m, dir, "a.bin");
    resolve(m, dir, "unlisted.bin");
    lora__manifest_free(m);
    return 0;
}
