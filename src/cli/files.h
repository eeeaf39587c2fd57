/* File helpers of the command line. */
#ifndef LORA_CLI_FILES_H
#define LORA_CLI_FILES_H

/* Copies from_dir/name to to_dir/name atomically (temporary file, fsync, rename) when
 * from_dir/name exists. Returns 0 (also when there is nothing to copy) or -1 with errno set. */
int cli_copy_if_present(const char *from_dir, const char *to_dir, const char *name);

/* Writes len bytes to path atomically (temporary file beside it, fsync, rename).
 * Returns 0 or -1 with errno set; on failure path is untouched. */
int cli_write_atomic(const char *path, const char *data, size_t len);

#endif
