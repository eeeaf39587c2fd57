/* Test helpers for safetensors suites: byte buffers with a chosen header, files, temp folders. */
#ifndef LORA_TESTS_UTIL_ST_BUILD_H
#define LORA_TESTS_UTIL_ST_BUILD_H

#include <stddef.h>
#include <stdint.h>

/* Stores v little-endian at p[0..7]. */
void tu_st_put_le64(uint8_t *p, uint64_t v);

/* A malloc'd safetensors image: length prefix, header text as given (no padding), then
 * data_len bytes copied from data, or zeros when data is NULL. Exactly *size_out bytes long, so
 * that ASan catches any read past the end. Aborts the test if out of memory. */
uint8_t *tu_st_build(const char *header, const void *data, size_t data_len, size_t *size_out);

/* Writes size bytes to path (created or truncated); 0 on success. */
int tu_st_write_file(const char *path, const void *buf, size_t size);

/* Reads a whole file into a malloc'd buffer; NULL on failure. */
uint8_t *tu_st_read_file(const char *path, size_t *size_out);

/* A new empty folder under /tmp (malloc'd path); tu_st_rmtree removes it and its contents. */
char *tu_st_mkdtemp(void);
void tu_st_rmtree(const char *dir);

#endif
