#include "suite.h"

#include <math.h>
#include <stdlib.h>

#include "lora.h"

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

float *tu_logits(const char *dir, const int32_t *ids, size_t n, size_t *vocab)
{
    lora_model *m;
    lora_session *s;
    ck_assert_msg(lora_model_load(dir, NULL, &m) == LORA_OK, "%s", lora_last_error());
    ck_assert_msg(lora_session_create(m, NULL, &s) == LORA_OK, "%s", lora_last_error());
    *vocab = lora_model_vocab_size(m);
    float *l = malloc(n * *vocab * sizeof *l);
    ck_assert_ptr_nonnull(l);
    ck_assert_msg(lora_session_logits(s, ids, NULL, 1, n, l) == LORA_OK, "%s", lora_last_error());
    lora_session_free(s);
    lora_model_free(m);
    return l;
}

double tu_max_rel_err(const float *a, const float *b, size_t n)
{
    double mref = 0, mdiff = 0;
    for (size_t i = 0; i < n; i++) {
        mref = fmax(mref, fabs(b[i]));
        mdiff = fmax(mdiff, fabs((double)a[i] - b[i]));
    }
    return mdiff / (mref > 0 ? mref : 1);
}
