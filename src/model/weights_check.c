#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "io/safetensors.h"
#include "model/weights.h"

static lora_status check_tensor(const lora_st_set *set, const lora_weight_slot *s)
{
    const lora_st_tensor *t = lora__st_set_find(set, s->name);
    char want[64], got[64];
    if (!t)
        return lora__error(LORA_ERR_SHAPE, "tensor '%s' %s is missing", s->name,
                           lora__shape_str(s->shape, s->ndim, want, sizeof want));
    const char *file = lora__st_set_file_of(set, s->name);
    if (t->ndim != s->ndim || t->shape[0] != s->shape[0] ||
        (s->ndim == 2 && t->shape[1] != s->shape[1]))
        return lora__error(LORA_ERR_SHAPE, "%s: tensor '%s' has shape %s, config.json implies %s",
                           file, s->name, lora__shape_str(t->shape, t->ndim, got, sizeof got),
                           lora__shape_str(s->shape, s->ndim, want, sizeof want));
    if (t->dtype != LORA_ST_F32 && t->dtype != LORA_ST_BF16 && t->dtype != LORA_ST_F16)
        return lora__error(LORA_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has dtype %s; weights must be F32, BF16 or F16", file,
                           s->name, lora__st_dtype_name(t->dtype));
    return LORA_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const lora_weight_slot *)a)->name, ((const lora_weight_slot *)b)->name);
}

/* A tensor in the files that the config does not account for means the config and the
 * weights disagree (wrong layer count, a bias the architecture lacks...). */
static lora_status refuse_extra(const lora_config *c, const lora_st_set *set,
                                lora_weight_slot *slots, size_t n)
{
    qsort(slots, n, sizeof *slots, cmp_name);
    for (size_t i = 0; i < lora__st_set_count(set); i++) {
        const lora_st_tensor *t = lora__st_set_at(set, i);
        lora_weight_slot key;
        snprintf(key.name, sizeof key.name, "%s", t->name);
        if (strlen(t->name) < sizeof key.name &&
            bsearch(&key, slots, n, sizeof *slots, cmp_name))
            continue;
        if (!lora__weight_ignorable(c, t->name))
            return lora__error(LORA_ERR_SHAPE,
                               "%s: unexpected tensor '%.200s': not part of a %s model with "
                               "this config.json", lora__st_set_file_of(set, t->name), t->name,
                               c->model_type);
    }
    return LORA_OK;
}

lora_status lora__weights_check(const lora_config *c, const lora_st_set *set,
                                lora_weight_slot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lora_status st = check_tensor(set, &slots[i]);
        if (st)
            return st;
    }
    return refuse_extra(c, set, slots, n);
}
