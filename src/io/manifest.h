/* Folder saves that are old-or-new as a whole, and files checked against their SHA-256.
 *
 * A folder liblora saves (adapter, model, checkpoint) gets a manifest, liblora_manifest.json:
 *   {"format": "liblora-manifest", "format_version": 1,
 *    "files": {"adapter_model.safetensors": {"bytes": 1234, "sha256": "<64 hex digits>"}, ...}}
 * A save writes every file into the hidden staging folder .liblora-staging/ first (each one
 * atomically and fsynced), then writes the manifest that lists them (the commit point), then
 * renames each staged file into the folder. A crash before the commit leaves the old files and
 * the old manifest; a crash after it leaves a manifest whose files are in the folder or still
 * in the staging folder, and a load takes each from where its checksum matches. The next save
 * first finishes such an interrupted one, then removes what crashed saves left behind.
 *
 * Files the manifest does not list, and folders without one (written by PEFT, transformers or
 * by hand), are read as they are. */
#ifndef LORA_IO_MANIFEST_H
#define LORA_IO_MANIFEST_H

#include <stdint.h>

#include "lora.h"

#define LORA_MANIFEST_NAME "liblora_manifest.json"
#define LORA_STAGING_NAME ".liblora-staging"

/* ---- reading --------------------------------------------------------------------------------- */

typedef struct lora_manifest lora_manifest;

/* Reads dir's manifest; *out is NULL (and LORA_OK) when dir has none. A manifest that is not
 * valid is LORA_ERR_FORMAT naming it and what is wrong (an unknown key, a malformed checksum). */
lora_status lora__manifest_load(const char *dir, lora_manifest **out);
void lora__manifest_free(lora_manifest *m);

/* The path to read dir/name from, malloc'd into *path. Without a manifest, or for a name it
 * does not list, that is dir/name unchecked. A listed file is hashed: dir/name if it matches,
 * else its staged copy if that matches (a save interrupted after its commit); otherwise
 * LORA_ERR_FORMAT naming the file, its size and checksum and what the manifest records. A
 * listed file that is missing gives dir/name, for the caller to report as missing. */
lora_status lora__manifest_resolve(const lora_manifest *m, const char *dir, const char *name,
                                   char **path);

/* The i-th listed file's name, byte count and SHA-256 (NULL past the end), for the writer. */
size_t lora__manifest_count(const lora_manifest *m);
const char *lora__manifest_entry(const lora_manifest *m, size_t i, uint64_t *bytes,
                                 const char **sha256);

/* Size and SHA-256 (lowercase hex) of a file; LORA_ERR_IO naming it if it cannot be read. */
lora_status lora__file_sha256(const char *path, uint64_t *bytes, char hex[65]);

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct lora_txn lora_txn;

/* Starts a save into dir (created if missing): finishes a save that stopped after its commit,
 * removes the staging folder and the temporary files crashed saves left, makes a new staging
 * folder. Failures: LORA_ERR_IO naming the path. */
lora_status lora__txn_begin(const char *dir, lora_txn **out);
/* Where file name (a plain file name) is to be written before the commit, by any atomic
 * writer; the path is owned by t. LORA_ERR_INVALID_ARGUMENT for a name with '/' or a dot
 * name. */
lora_status lora__txn_file(lora_txn *t, const char *name, const char **path);
/* Hashes the staged files, writes the manifest (older entries for files not saved again are
 * kept), moves the files into the folder and removes the staging folder. Frees t. A failure
 * before the manifest is written leaves the folder as it was; after it, the new files are
 * committed and only moving them failed (LORA_ERR_IO). */
lora_status lora__txn_commit(lora_txn *t);
/* Removes the staging folder, leaving the folder as it was; frees t. NULL is a no-op. */
void lora__txn_abort(lora_txn *t);

#endif
