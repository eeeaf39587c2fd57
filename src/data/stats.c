/* lora_dataset_stats_json: what the file held and what the dataset's rows hold. */
#include <jansson.h>
#include <stdlib.h>

#include "data/dataset.h"
#include "util/json_text.h"

/* Counted over the rows as lora_dataset_row gives them, so loss_tokens is what training sees
 * (packing drops each sample's first label). */
static void count(const lora_dataset *d, size_t *tokens, size_t *loss, size_t *truncated)
{
    const lora__store *st = d->store;
    *tokens = *loss = *truncated = 0;
    for (size_t i = 0; i < d->n_samples; i++) {
        size_t s = d->samples[i];
        *tokens += lora__store_len(st, s);
        *truncated += st->truncated[s];
        for (size_t k = st->off[s] + (d->cfg.packing ? 1 : 0); k < st->off[s + 1]; k++)
            *loss += st->loss[k];
    }
}

char *lora__dataset_stats(const lora_dataset *d)
{
    const lora__store *st = d->store;
    size_t tokens, loss, truncated;
    count(d, &tokens, &loss, &truncated);
    json_t *errors = json_array();
    for (size_t i = 0; errors && i < st->n_errors; i++)
        if (json_array_append_new(errors, json_string(st->errors[i])) != 0) {
            json_decref(errors);
            errors = NULL;
        }
    if (!errors)
        return NULL;
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:o}",
                          "lines", (json_int_t)st->lines, "samples", (json_int_t)d->n_samples,
                          "skipped", (json_int_t)st->skipped, "truncated", (json_int_t)truncated,
                          "rows", (json_int_t)d->rows.n, "tokens", (json_int_t)tokens,
                          "loss_tokens", (json_int_t)loss, "loss_share",
                          tokens ? (double)loss / (double)tokens : 0.0,
                          "max_length", (json_int_t)d->cfg.max_length, "first_errors", errors);
    if (!o)
        return NULL;
    char *text = lora__json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    return text;
}
