/* Whole-file reads, path joining and folder housekeeping with errors as values. */
#ifndef LORA_UTIL_FILE_H
#define LORA_UTIL_FILE_H

#include <stddef.h>

#include "lora.h"

/* Reads a regular file into a NUL-terminated malloc'd buffer. LORA_ERR_IO names the path;
 * files over max_bytes are LORA_ERR_FORMAT. */
lora_status lora__read_file(const char *path, size_t max_bytes, char **out, size_t *len);
/* malloc'd "dir/name"; NULL when out of memory. */
char *lora__path_join(const char *dir, const char *name);
/* 1 if path names an existing regular file / directory. */
int lora__is_file(const char *path);
int lora__is_dir(const char *path);
/* Removes a file or a folder with everything in it; a missing path is LORA_OK. */
lora_status lora__remove_tree(const char *path);
/* fsync of a folder, so that renames and new entries in it are durable. */
lora_status lora__sync_dir(const char *dir);

#endif
