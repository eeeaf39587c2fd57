#include "train/bucket.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
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
    for (int64_t b = 0; b < B; b++) {
        const size_t row = (size_t)T * sizeof(int32_t);
        int32_t *i2 = *ids2 + b * T2, *l2 = *labels2 + b * T2;
        memcpy(i2, ids + b * T, row);
        memcpy(l2, labels + b * T, row);
        for (int64_t t = T; t < T2; t++) {
            i2[t] = 0;
            l2[t] = -100;
        }
        if (pos) {
            int32_t *p2 = *pos2 + b * T2;
            memcpy(p2, pos + b * T, row);
            for (int64_t t = T; t < T2; t++)
                p2[t] = p2[t - 1] + 1;
        }
    }
    return LORA_OK;
}
