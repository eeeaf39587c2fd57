/* The lora_dataset handle: loading, splitting, rows in file order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"
#include "util/alloc.h"

static int32_t pad_id(const lora_tokenizer *t)
{
    int32_t id = lora__tokenizer_special_id(t, LORA__PAD);
    if (id < 0)
        id = lora__tokenizer_special_id(t, LORA__EOS);
    return id < 0 ? 0 : id;
}

size_t lora__dataset_row_len(const lora_dataset *d, size_t r)
{
    size_t n = 0;
    for (size_t k = d->rows.start[r]; k < d->rows.start[r + 1]; k++)
        n += lora__store_len(d->store, d->rows.items[k]);
    return n;
}

void lora__dataset_copy_row(const lora_dataset *d, size_t r, int32_t *ids, int32_t *labels,
                            int32_t *position_ids)
{
    const lora__store *st = d->store;
    size_t at = 0;
    for (size_t k = d->rows.start[r]; k < d->rows.start[r + 1]; k++) {
        size_t s = d->rows.items[k], n = lora__store_len(st, s);
        const int32_t *src = st->ids + st->off[s];
        const unsigned char *loss = st->loss + st->off[s];
        for (size_t j = 0; j < n; j++, at++) {
            if (ids)
                ids[at] = src[j];
            /* a packed sample's first token would be predicted from the sample before it */
            if (labels)
                labels[at] = loss[j] && !(d->cfg.packing && j == 0) ? src[j]
                                                                      : LORA__IGNORE_INDEX;
            if (position_ids)
                position_ids[at] = (int32_t)j;
        }
    }
}

/* The rows, the order buffer and the stats of d, once its samples, store and options are set. */
static lora_status finish(lora_dataset *d)
{
    lora_status st = d->cfg.packing
                         ? lora__rows_pack(d->store, d->samples, d->n_samples,
                                           d->cfg.max_length, &d->rows)
                         : lora__rows_plain(d->samples, d->n_samples, &d->rows);
    if (st != LORA_OK)
        return st;
    d->perm = lora__malloc((d->rows.n ? d->rows.n : 1) * sizeof *d->perm);
    d->stats = d->perm ? lora__dataset_stats(d) : NULL;
    if (!d->stats)
        return lora__oom("the dataset's order and statistics", d->rows.n * sizeof *d->perm);
    return LORA_OK;
}

LORA_API void lora_dataset_free(lora_dataset *dataset)
{
    if (!lora__handle_freeable(dataset, LORA__KIND_DATASET, "lora_dataset_free", "dataset"))
        return;
    lora__handle_remove(dataset);
    lora__rows_free(&dataset->rows);
    lora__store_release(dataset->store);
    lora__dataset_config_release(&dataset->cfg);
    lora_tokenizer_free(dataset->tokenizer);
    free(dataset->samples);
    free(dataset->perm);
    free(dataset->stats);
    free(dataset);
}

/* A dataset over samples (n store indices, taken over) of store, with cfg's options. */
static lora_status make(lora_tokenizer *t, lora__store *store, const lora__dataset_config *cfg,
                        size_t *samples, size_t n, lora_dataset **out)
{
    *out = NULL;
    lora_dataset *d = lora__calloc(1, sizeof *d);
    if (!d) {
        free(samples);
        return lora__oom("a dataset", sizeof *d);
    }
    lora_status st = lora__handle_add(d, LORA__KIND_DATASET);
    if (st) {
        free(samples);
        free(d);
        return st;
    }
    lora__tokenizer_retain(t);
    d->tokenizer = t;
    lora__store_retain(store);
    d->store = store;
    lora__dataset_config_copy(&d->cfg, cfg);
    d->samples = samples;
    d->n_samples = n;
    d->pad_id = pad_id(t);
    st = finish(d);
    if (st != LORA_OK) {
        lora_dataset_free(d);
        return st;
    }
    *out = d;
    return LORA_OK;
}

LORA_API lora_status lora_dataset_load(lora_tokenizer *tokenizer, const char *path,
                                       const char *config_json, lora_dataset **out)
{
    lora__error_clear();
    if (!out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_load: out is NULL");
    *out = NULL;
    lora_status st = lora__handle_check(tokenizer, LORA__KIND_TOKENIZER, "lora_dataset_load",
                                        "tokenizer");
    if (st)
        return st;
    if (!path)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_load: path is NULL");
    lora__dataset_config cfg;
    st = lora__dataset_config_parse(config_json, &cfg);
    if (st != LORA_OK)
        return st;
    lora__store *store = NULL;
    if ((st = lora__dataset_read(tokenizer, path, &cfg, &store)) == LORA_OK) {
        size_t *samples = lora__malloc(store->n * sizeof *samples);
        if (!samples) {
            st = lora__error_prefix(lora__oom("the sample list", store->n * sizeof *samples),
                                    "lora_dataset_load");
        } else {
            for (size_t i = 0; i < store->n; i++)
                samples[i] = i;
            st = make(tokenizer, store, &cfg, samples, store->n, out);
        }
        lora__store_release(store);
    }
    lora__dataset_config_release(&cfg);
    if (st == LORA_OK)
        lora__error_clear();  /* lenient mode's skipped lines are in the stats, not an error */
    return st;
}

/* Hugging Face's train_test_split sizes: a fraction rounded up, or a count. */
static lora_status test_count(double test_size, size_t n, size_t *n_test)
{
    if (!(test_size > 0) || !isfinite(test_size))
        return lora__error(LORA_ERR_CONFIG, "lora_dataset_split: test_size %g must be a "
                           "fraction in (0, 1) or a count >= 1", test_size);
    if (test_size >= 1 && test_size != floor(test_size))
        return lora__error(LORA_ERR_CONFIG, "lora_dataset_split: test_size %g is above 1 and "
                           "not a whole count", test_size);
    double k = test_size < 1 ? ceil(test_size * (double)n) : test_size;
    if (k >= (double)n)
        return lora__error(LORA_ERR_CONFIG, "lora_dataset_split: test_size %g leaves no "
                           "sample of %zu for the train part", test_size, n);
    *n_test = (size_t)k;
    return LORA_OK;
}

static int ascending(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The store indices of d's samples picked by perm[0..n), in file order; NULL when out of
 * memory. */
static size_t *pick(const lora_dataset *d, const size_t *perm, size_t n)
{
    size_t *s = lora__malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return NULL;
    memcpy(s, perm, n * sizeof *s);
    qsort(s, n, sizeof *s, ascending);
    for (size_t i = 0; i < n; i++)
        s[i] = d->samples[s[i]];
    return s;
}

LORA_API lora_status lora_dataset_split(const lora_dataset *dataset, double test_size,
                                        uint64_t seed, lora_dataset **train_out,
                                        lora_dataset **test_out)
{
    lora__error_clear();
    if (!train_out || !test_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_split: %s is NULL",
                           !train_out ? "train_out" : "test_out");
    *train_out = *test_out = NULL;
    lora_status st = lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_split",
                                        "dataset");
    if (st)
        return st;
    size_t n = dataset->n_samples, n_test = 0;
    st = test_count(test_size, n, &n_test);
    if (st != LORA_OK)
        return st;
    size_t *perm = lora__malloc(n * sizeof *perm);
    if (!perm)
        return lora__error_prefix(lora__oom("the split", n * sizeof *perm),
                                  "lora_dataset_split");
    lora__order_permute(perm, n, seed);
    /* as Hugging Face: the first n_test of the permutation are the test part */
    size_t *test = pick(dataset, perm, n_test), *train = pick(dataset, perm + n_test, n - n_test);
    free(perm);
    if (!test || !train) {
        free(test);
        free(train);
        return lora__error_prefix(lora__oom("the split", n * sizeof *perm),
                                  "lora_dataset_split");
    }
    st = make(dataset->tokenizer, dataset->store, &dataset->cfg, test, n_test, test_out);
    if (st == LORA_OK)
        st = make(dataset->tokenizer, dataset->store, &dataset->cfg, train, n - n_test,
                  train_out);
    else
        free(train);
    if (st != LORA_OK) {
        lora_dataset_free(*test_out);
        *test_out = NULL;
        return lora__error_prefix(st, "lora_dataset_split");
    }
    return LORA_OK;
}

LORA_API size_t lora_dataset_size(const lora_dataset *dataset)
{
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_size", "dataset"))
        return 0;
    return dataset->rows.n;
}

LORA_API const char *lora_dataset_stats_json(const lora_dataset *dataset)
{
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_stats_json", "dataset"))
        return NULL;
    return dataset->stats;
}

LORA_API lora_status lora_dataset_row(const lora_dataset *dataset, size_t i, int32_t *ids,
                                      int32_t *labels, int32_t *position_ids, size_t cap,
                                      size_t *len_out)
{
    lora__error_clear();
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_row", "dataset"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!ids || !labels || !len_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_row: %s is NULL",
                           !ids ? "ids" : !labels ? "labels" : "len_out");
    if (i >= dataset->rows.n)
        return lora__error(LORA_ERR_RANGE, "lora_dataset_row: row %zu of %zu", i,
                           dataset->rows.n);
    size_t n = lora__dataset_row_len(dataset, i);
    *len_out = n;
    if (cap < n)
        return lora__error(LORA_ERR_RANGE, "lora_dataset_row: row %zu has %zu tokens, cap is "
                           "%zu", i, n, cap);
    lora__dataset_copy_row(dataset, i, ids, labels, position_ids);
    return LORA_OK;
}
