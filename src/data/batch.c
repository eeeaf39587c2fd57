/* lora_dataset_next_batch and the position it keeps: epoch * size + index. */
#include <string.h>

#include "api/error.h"
#include "api/handle.h"
#include "data/dataset.h"

static void ensure_order(lora_dataset *d, uint64_t epoch)
{
    if (d->perm_valid && d->perm_epoch == epoch)
        return;
    lora__order_epoch(d->perm, d->rows.n, d->cfg.shuffle, d->cfg.seed, epoch);
    d->perm_epoch = epoch;
    d->perm_valid = 1;
}

void lora__pad_row(int32_t *ids, int32_t *labels, int32_t *position_ids, size_t n, size_t seq,
                   int32_t pad_id)
{
    for (size_t j = n; j < seq; j++) {
        ids[j] = pad_id;
        labels[j] = LORA__IGNORE_INDEX;
        /* counting on keeps the row one run of positions for lora_train_step_packed */
        if (position_ids)
            position_ids[j] = position_ids[j - 1] + 1;
    }
}

LORA_API lora_status lora_dataset_next_batch(lora_dataset *dataset, size_t batch, int32_t *ids,
                                             int32_t *labels, int32_t *position_ids, size_t cap,
                                             size_t *seq_out, size_t *rows_out)
{
    lora__error_clear();
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_next_batch", "dataset"))
        return LORA_ERR_INVALID_ARGUMENT;
    if (!ids || !labels || !seq_out || !rows_out)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_next_batch: %s is NULL",
                           !ids ? "ids" : !labels ? "labels" : !seq_out ? "seq_out" : "rows_out");
    if (batch == 0)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_dataset_next_batch: batch is 0");
    lora_dataset *d = dataset;
    size_t size = d->rows.n;
    uint64_t epoch = d->position / size;
    size_t index = (size_t)(d->position % size);
    ensure_order(d, epoch);
    size_t rows = size - index < batch ? size - index : batch, seq = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t n = lora__dataset_row_len(d, d->perm[index + r]);
        seq = n > seq ? n : seq;
    }
    *seq_out = seq;
    *rows_out = rows;
    if (cap / seq < rows)
        return lora__error(LORA_ERR_RANGE, "lora_dataset_next_batch: %zu rows of %zu tokens do "
                           "not fit in cap %zu", rows, seq, cap);
    for (size_t r = 0; r < rows; r++) {
        size_t row = d->perm[index + r], at = r * seq;
        int32_t *p = position_ids ? position_ids + at : NULL;
        lora__dataset_copy_row(d, row, ids + at, labels + at, p);
        lora__pad_row(ids + at, labels + at, p, lora__dataset_row_len(d, row), seq, d->pad_id);
    }
    d->position += rows;
    return LORA_OK;
}

LORA_API uint64_t lora_dataset_position(const lora_dataset *dataset)
{
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_position", "dataset"))
        return 0;
    return dataset->position;
}

LORA_API lora_status lora_dataset_seek(lora_dataset *dataset, uint64_t position)
{
    lora__error_clear();
    if (lora__handle_check(dataset, LORA__KIND_DATASET, "lora_dataset_seek", "dataset"))
        return LORA_ERR_INVALID_ARGUMENT;
    dataset->position = position;
    return LORA_OK;
}
