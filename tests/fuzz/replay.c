/* The main() of a fuzz target built without libFuzzer (gcc, ASan+UBSan): runs the target's
 * LLVMFuzzerTestOneInput once on every file given, or on every file of every folder given, so
 * that `make test` replays the seeds and every input that ever failed without needing clang.
 * Prints one line per input that took over a second; exits 0 when all ran (a failure aborts in
 * the sanitizers or the target's own checks). With LORA_FUZZ_VERBOSE set it also prints, per
 * input, the last liblora error it left ("accepted" when none): whether a seed gets past the
 * parsers it aims at. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "api/error.h"
#include "lora.h"

#include "harness.h"

/* as libFuzzer does, call it when the target has one */
#pragma weak LLVMFuzzerInitialize

/* The file in a buffer of exactly its size, so that ASan catches a read one past the end. */
static uint8_t *read_all(const char *path, size_t *size)
{
    struct stat sb = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &sb) == 0 && (buf = malloc(sb.st_size ? (size_t)sb.st_size : 1)) &&
        fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)sb.st_size;
    return buf;
}

static int run_file(const char *path)
{
    size_t size;
    uint8_t *data = read_all(path, &size);
    if (!data) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    struct timespec t0, t1;
    lora__error_clear();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    LLVMFuzzerTestOneInput(data, size);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (getenv("LORA_FUZZ_VERBOSE"))
        printf("replay: %s: %s\n", path, *lora_last_error() ? lora_last_error() : "accepted");
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (s > 1.0)
        printf("replay: %s took %.2f s\n", path, s);
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of a folder, in name order, so that runs are repeatable. */
static int run_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names)))
                abort();
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && (rc = run_file(path)) == 0)
            (*count)++;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(sb.st_mode) ? run_dir(argv[i], &count) : (count++, run_file(argv[i])))
            return 1;
    }
    printf("replay: %zu inputs ran\n", count);
    return 0;
}
