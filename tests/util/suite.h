/* Shared test plumbing: running a Check suite, logits of a checkpoint folder. */
#ifndef LORA_TESTS_UTIL_SUITE_H
#define LORA_TESTS_UTIL_SUITE_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Runs every test of s (each in its own process) and returns the exit status for main(). */
int tu_run_suite(Suite *s);

/* Loads the checkpoint at dir and returns the malloc'd logits (n, V) of one sequence; sets
 * *vocab. Fails the current test on any error. */
float *tu_logits(const char *dir, const int32_t *ids, size_t n, size_t *vocab);

/* max |a - b| / max |b| over n values */
double tu_max_rel_err(const float *a, const float *b, size_t n);

#endif
