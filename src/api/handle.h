/* The registry of live handles: what every public entry point checks its handle arguments
 * against, so that NULL, a freed handle or a handle of another kind is LORA_ERR_INVALID_ARGUMENT
 * instead of undefined behaviour. The registry holds addresses only and never reads a handle's
 * memory, so a freed handle is recognised without touching freed memory. Best effort: once a
 * freed handle's address is reused by a new handle of the same kind, the stale pointer names
 * the new handle. */
#ifndef LORA_API_HANDLE_H
#define LORA_API_HANDLE_H

#include "lora.h"

typedef enum lora__kind {
    LORA__KIND_MODEL = 1,
    LORA__KIND_SESSION,
    LORA__KIND_SAMPLER,
    LORA__KIND_ADAPTER,
    LORA__KIND_OPTIMIZER,
    LORA__KIND_TOKENIZER,
    LORA__KIND_DETOKENIZER,
    LORA__KIND_DATASET
} lora__kind;

/* Records p as a live handle of kind k, right after its allocation (LORA_ERR_OUT_OF_MEMORY
 * when the registry cannot grow; the handle is then not live). */
lora_status lora__handle_add(const void *p, lora__kind k);

/* Forgets p (no-op when p is NULL or not recorded), right before its memory is released. */
void lora__handle_remove(const void *p);

/* LORA_OK when p is a live handle of kind k; otherwise LORA_ERR_INVALID_ARGUMENT with a message
 * "fn: arg is NULL", "fn: arg is a lora_session, not a lora_model" or "fn: arg is not a live
 * lora_model (freed, or not made by liblora)". */
lora_status lora__handle_check(const void *p, lora__kind k, const char *fn, const char *arg);

/* For the _free functions: 1 when p is a live handle of kind k; 0 for NULL (no message) and,
 * with lora__handle_check's message, for anything else (a double free is then a no-op). */
int lora__handle_freeable(const void *p, lora__kind k, const char *fn, const char *arg);

#endif
