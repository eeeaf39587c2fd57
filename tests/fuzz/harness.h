/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): inputs that stand for several
 * files, a private temporary folder per process, and where the fixtures are. The same code is
 * linked into the libFuzzer binaries (clang) and into the replay driver of `make test` (gcc). */
#ifndef LORA_TESTS_FUZZ_HARNESS_H
#define LORA_TESTS_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points: every target defines the first; a target that needs a model or a
 * tokenizer defines the second to load it before the timer of the first input starts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An input made of several files separates them with this line (it is in every dictionary of
 * a multi-file target, so that mutations can add and remove files). */
#define FZ_SEP "\n--8<--\n"

typedef struct fz_part {
    const uint8_t *data;
    size_t size;
} fz_part;

/* Splits data at each FZ_SEP into at most max parts (the last keeps any further separators);
 * returns the number of parts, at least 1. */
size_t fz_split(const uint8_t *data, size_t size, fz_part *parts, size_t max);

/* A folder of its own for this process, made on first use and removed at exit, under $TMPDIR,
 * else /dev/shm when there is one (files in memory: a target writing its input to disk runs
 * many times slower), else /tmp; and the path of name inside it (a static buffer, valid until
 * the next call). */
const char *fz_tmpdir(void);
const char *fz_path(const char *name);

/* Writes size bytes to path (created or truncated) and aborts on failure; fz_write_part with
 * part NULL removes path instead, so that a file the input does not give is absent. */
void fz_write(const char *path, const void *data, size_t size);
void fz_write_part(const char *path, const fz_part *part);

/* tests/fixtures/NAME, or $LORA_FUZZ_FIXTURES/NAME (the targets run from the repository root). */
const char *fz_fixture(const char *name);

/* Aborts (a failure for libFuzzer and for the replay) with a message naming what failed: a
 * setup step of the harness, or an invariant a target checks. */
_Noreturn void fz_die(const char *what);

#endif
