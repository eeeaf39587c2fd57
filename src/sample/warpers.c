/* Logit transforms with Hugging Face's (and, for presence/frequency, OpenAI's) semantics. They
 * work on doubles so that softmax sums of a large vocabulary lose nothing to rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/sampler.h"

/* exp(v - max) with the top value mapped to exactly 1: a +inf logit gets all the mass (shared
 * with other +inf logits) instead of the NaN that inf - inf would give. Removed tokens skip
 * the exp: after top_k they are most of the vocabulary. */
static double weight(double v, double max)
{
    return v == max ? 1.0 : v == -INFINITY ? 0.0 : exp(v - max);
}

static double max_of(const double *work, size_t n)
{
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (work[i] > max)
            max = work[i];
    return max;
}

void lora__warp_repetition(double *work, const float *logits, const int32_t *tokens, size_t n,
                           float penalty)
{
    for (size_t i = 0; i < n; i++) {
        float x = logits[tokens[i]];
        work[tokens[i]] = x < 0 ? (double)x * penalty : (double)x / penalty;
    }
}

void lora__warp_presence_frequency(double *work, size_t *counts, const int32_t *generated,
                                   size_t n, float presence, float frequency)
{
    for (size_t i = 0; i < n; i++)
        counts[generated[i]]++;
    /* The first visit of a token applies both penalties and clears its count, so that later
     * visits skip it and counts is zero again for the next call. */
    for (size_t i = 0; i < n; i++) {
        int32_t t = generated[i];
        if (counts[t] == 0)
            continue;
        work[t] -= (double)frequency * (double)counts[t];
        work[t] -= presence;
        counts[t] = 0;
    }
}

void lora__warp_temperature(double *work, size_t n, float temperature)
{
    for (size_t i = 0; i < n; i++)
        work[i] /= temperature;
}

size_t lora__argmax(const double *work, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (work[i] > work[best])
            best = i;
    return best;
}

static void swap(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

static double median3(double a, double b, double c)
{
    if (a > b)
        swap(&a, &b);
    return c < a ? a : c > b ? b : c;
}

/* The k-th largest of x[0..n) (1 <= k <= n), reordering x. Hoare's selection with a three-way
 * partition: expected linear time, and runs of equal values (masked tokens) end the search
 * instead of degrading it. */
static double kth_largest(double *x, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    for (;;) {
        double pivot = median3(x[lo], x[lo + (hi - lo) / 2], x[hi - 1]);
        /* [lo, a) > pivot, [a, b) == pivot, [b, hi) < pivot */
        size_t a = lo, i = lo, b = hi;
        while (i < b) {
            if (x[i] > pivot)
                swap(&x[a++], &x[i++]);
            else if (x[i] < pivot)
                swap(&x[i], &x[--b]);
            else
                i++;
        }
        if (k - 1 < a)
            hi = a;
        else if (k - 1 >= b)
            lo = b;
        else
            return pivot;
    }
}

void lora__warp_top_k(double *work, size_t n, size_t k, double *scratch)
{
    if (k == 0 || k >= n)
        return;
    memcpy(scratch, work, n * sizeof *work);
    /* TopKLogitsWarper removes values strictly below the k-th largest: its ties stay. */
    double kth = kth_largest(scratch, n, k);
    for (size_t i = 0; i < n; i++)
        if (work[i] < kth)
            work[i] = -INFINITY;
}

/* 1 if a ranks above b: the larger logit, or among equal logits the lower id, matching the
 * argmax's tie rule (ties are cut from the highest ids). */
static int above(const lora__ranked *a, const lora__ranked *b)
{
    return a->value > b->value || (a->value == b->value && a->id < b->id);
}

static void swap_ranked(lora__ranked *a, lora__ranked *b)
{
    lora__ranked t = *a;
    *a = *b;
    *b = t;
}

/* Partitions r[lo..hi) around the median of three: entries ranked above the pivot first, then
 * the pivot, whose index is returned, then the ones below. */
static size_t partition(lora__ranked *r, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (above(&r[mid], &r[lo]))
        swap_ranked(&r[mid], &r[lo]);
    if (above(&r[last], &r[lo]))
        swap_ranked(&r[last], &r[lo]);
    if (above(&r[mid], &r[last]))
        swap_ranked(&r[mid], &r[last]);
    /* r[last] is now the median */
    size_t p = lo;
    for (size_t i = lo; i < last; i++)
        if (above(&r[i], &r[last]))
            swap_ranked(&r[i], &r[p++]);
    swap_ranked(&r[p], &r[last]);
    return p;
}

/* Puts every token but the top one (never removed) into order, skipping those of weight 0,
 * which any top_p < 1 removes. Returns how many. */
static size_t top_p_candidates(double *work, const double *w, size_t n, size_t top,
                               lora__ranked *order)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == top)
            continue;
        if (w[i] > 0.0)
            order[m++] = (lora__ranked){work[i], (int32_t)i};
        else
            work[i] = -INFINITY;
    }
    return m;
}

void lora__warp_top_p(double *work, size_t n, double top_p, double *scratch,
                      lora__ranked *order)
{
    /* Hugging Face leaves the warper out at 1; running it would drop tokens whose probability
     * underflows to 0. */
    if (top_p >= 1.0)
        return;
    double *w = scratch, max = max_of(work, n), z = 0.0;
    for (size_t i = 0; i < n; i++)
        z += w[i] = weight(work[i], max);
    size_t lo = 0, hi = top_p_candidates(work, w, n, lora__argmax(work, n), order), m = hi;
    /* TopPLogitsWarper sorts, then drops every token whose cumulative probability, summed up
     * from the least probable and including itself, is <= 1 - top_p. Those tokens form the
     * bottom of the ranking, so a selection finds where they start without sorting:
     * order[0..lo) stays, order[hi..m) (of total weight `below`) goes. */
    double below = 0.0, cut = (1.0 - top_p) * z;
    while (lo < hi) {
        size_t p = partition(order, lo, hi);
        double cum = below + w[order[p].id];
        for (size_t i = p + 1; i < hi; i++)
            cum += w[order[i].id];
        if (cum <= cut) {
            below = cum;
            hi = p;
        } else {
            lo = p + 1;
        }
    }
    for (size_t i = hi; i < m; i++)
        work[order[i].id] = -INFINITY;
}

void lora__warp_min_p(double *work, size_t n, double min_p)
{
    if (min_p <= 0.0)
        return;
    /* p < min_p * max_p is weight < min_p once both sides are multiplied by the softmax sum;
     * the top token has weight 1 >= min_p, so one always stays. */
    double max = max_of(work, n);
    for (size_t i = 0; i < n; i++)
        if (weight(work[i], max) < min_p)
            work[i] = -INFINITY;
}

size_t lora__sample_softmax(double *work, size_t n, double u)
{
    double max = max_of(work, n), z = 0.0;
    for (size_t i = 0; i < n; i++)
        z += work[i] = weight(work[i], max);
    double target = u * z, cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (work[i] == 0.0)
            continue;
        cum += work[i];
        last = i;
        if (target < cum)
            return i;
    }
    /* Unreached when the two sums agree (u < 1); returns the last possible token otherwise. */
    return last;
}
