#include "train/bucket.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "data/dataset.h"
#include "util/alloc.h"

int64_t lora__seq_bucket(int64_t T, int64_t max_T)
{
    if (T <= 8 || T >= max_T)
        return T;
    int64_t p = 1;
    while (p <= T / 2)
        p *= 2;
    int64_t step = p / 8 > 8 ? p / 8 : 8, b = (T + step - 1) / step * step;
    return b < max_T ? b : max_T;
}

lora_status lora__pad_batch(const int32_t *ids, const int32_t *labels, const int32_t *pos,
                            int64_t B, int64_t T, int64_t T2, int32_t **ids2, int32_t **labels2,
                            int32_t **pos2)
{
    size_t n = (size_t)(B * T2) * sizeof(int32_t);
    *ids2 = lora__malloc(n);
    *labels2 = lora__malloc(n);
    *pos2 = pos ? lora__malloc(n) : NULL;
    if (!*ids2 || !*labels2 || (pos && !*pos2)) {
        free(*ids2), free(*labels2), free(*pos2);
        *ids2 = *labels2 = *pos2 = NULL;
        return lora__oom("padded batch", 3 * n);
    }
    const size_t row = (size_t)T * sizeof(int32_t);
    for (int64_t b = 0; b < B; b++) {
        int32_t *p2 = pos ? *pos2 + b * T2 : NULL;
        memcpy(*ids2 + b * T2, ids + b * T, row);
        memcpy(*labels2 + b * T2, labels + b * T, row);
        if (p2)
            memcpy(p2, pos + b * T, row);
        lora__pad_row(*ids2 + b * T2, *labels2 + b * T2, p2, (size_t)T, (size_t)T2, 0);
    }
    return LORA_OK;
}
