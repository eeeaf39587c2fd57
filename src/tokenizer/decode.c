/* Ids to bytes: each id's bytes (byte-level characters mapped back, added tokens as written). */
#include "api/error.h"
#include "tokenizer/internal.h"

lora_status lora__decode_bytes(const lora_tokenizer *t, const int32_t *ids, size_t n,
                               int skip_special, lora__bytebuf *out, const char *where)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_ids || t->kind[id] == LORA__ID_NONE)
            return lora__error(LORA_ERR_RANGE, "%s: id %d at index %zu is not a token (vocabulary "
                               "0..%zu)", where, (int)id, i, t->n_ids - 1);
        if (skip_special && t->kind[id] == LORA__ID_SPECIAL)
            continue;
        size_t len;
        const unsigned char *b = lora__id_bytes(t, id, &len);
        lora_status st = lora__bytebuf_append(out, b, len);
        if (st)
            return st;
    }
    return LORA_OK;
}
