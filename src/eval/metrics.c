/* Errors of a forecast against the truth: MSE, MAE and the coefficient of determination R^2,
 * in double whatever the inputs' precision. */
#include <math.h>

#include "api/error.h"
#include "eval/eval.h"

lora_status lora__forecast_metrics(const float *pred, const float *truth, size_t n,
                                   double *mse, double *mae, double *r2)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pred[i]) || !isfinite(truth[i]))
            return lora__error(LORA_ERR_NUMERIC, "%s[%zu] = %g is not finite",
                               isfinite(pred[i]) ? "truth" : "pred", i,
                               (double)(isfinite(pred[i]) ? truth[i] : pred[i]));
    double mean = 0;
    int constant = 1;
    for (size_t i = 0; i < n; i++) {
        mean += (double)truth[i];
        constant &= truth[i] == truth[0];
    }
    mean /= (double)n;
    /* two passes: the sum of squares around the mean, not E[y^2] - mean^2, which cancels */
    double ss_res = 0, ss_tot = 0, abs_sum = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)pred[i] - (double)truth[i], d = (double)truth[i] - mean;
        ss_res += e * e;
        abs_sum += fabs(e);
        ss_tot += d * d;
    }
    if (mse)
        *mse = ss_res / (double)n;
    if (mae)
        *mae = abs_sum / (double)n;
    /* a constant truth leaves R^2 undefined: scikit-learn's r2_score (force_finite) gives 1
     * for a perfect forecast and 0 otherwise. The rounded mean of a constant need not equal
     * it, so constancy is tested on the values. */
    if (constant)
        ss_tot = 0;
    if (r2)
        *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : ss_res == 0 ? 1.0 : 0.0;
    return LORA_OK;
}
