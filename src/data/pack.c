/* Rows of samples: one per sample, or packed by best-fit decreasing (TRL's "bfd" strategy):
 * longest sample first, each into the open row whose free space fits it most tightly, a new
 * row when none does. Samples are never split. Ties are broken by file order and by a fixed
 * rule among rows with equal free space, so the packing depends on the data alone. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "data/dataset.h"
#include "util/alloc.h"

#define NONE ((size_t)-1)

void lora__rows_free(lora__rows *r)
{
    free(r->items);
    free(r->start);
    *r = (lora__rows){0};
}

static lora_status rows_alloc(lora__rows *r, size_t n_items, size_t n_rows)
{
    r->items = lora__malloc((n_items ? n_items : 1) * sizeof *r->items);
    r->start = lora__malloc((n_rows + 1) * sizeof *r->start);
    r->n = n_rows;
    if (!r->items || !r->start) {
        lora__rows_free(r);
        return lora__oom("the dataset rows", n_items * sizeof *r->items);
    }
    return LORA_OK;
}

lora_status lora__rows_plain(const size_t *samples, size_t n, lora__rows *out)
{
    lora_status st = rows_alloc(out, n, n);
    if (st != LORA_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        out->items[i] = samples[i];
        out->start[i] = i;
    }
    out->start[n] = n;
    return LORA_OK;
}

typedef struct by_len {
    size_t len, sample;
} by_len;

static int longer_first(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->sample > y->sample) - (x->sample < y->sample);
}

/* Rows by free space: head[c] lists (through next) the rows with exactly c tokens free, and a
 * segment tree over c marks the non-empty lists, to find the tightest fit in O(log L). */
typedef struct bins {
    size_t *head, *next;
    unsigned char *tree;
    size_t leaves, n;
} bins;

static void tree_set(bins *b, size_t c, unsigned char on)
{
    size_t i = b->leaves + c;
    b->tree[i] = on;
    for (i /= 2; i >= 1; i /= 2)
        b->tree[i] = b->tree[2 * i] | b->tree[2 * i + 1];
}

/* The smallest c >= need with a row, or NONE. */
static size_t tree_find(const bins *b, size_t node, size_t lo, size_t hi, size_t need)
{
    if (hi < need || !b->tree[node])
        return NONE;
    if (lo == hi)
        return lo;
    size_t mid = lo + (hi - lo) / 2;
    size_t c = tree_find(b, 2 * node, lo, mid, need);
    return c != NONE ? c : tree_find(b, 2 * node + 1, mid + 1, hi, need);
}

static void push(bins *b, size_t row, size_t c)
{
    b->next[row] = b->head[c];
    if (b->head[c] == NONE)
        tree_set(b, c, 1);
    b->head[c] = row;
}

static size_t pop(bins *b, size_t c)
{
    size_t row = b->head[c];
    b->head[c] = b->next[row];
    if (b->head[c] == NONE)
        tree_set(b, c, 0);
    return row;
}

/* row_of[k] for the k-th of the sorted samples; returns the number of rows. */
static size_t best_fit(bins *b, const by_len *sorted, size_t n, size_t max_length,
                       size_t *row_of)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = sorted[k].len;
        size_t c = tree_find(b, 1, 0, b->leaves - 1, len);
        size_t row = c != NONE ? pop(b, c) : b->n++;
        push(b, row, (c != NONE ? c : max_length) - len);
        row_of[k] = row;
    }
    return b->n;
}

static lora_status pack(const by_len *sorted, size_t n, size_t max_length, lora__rows *out)
{
    bins b = {0};
    b.leaves = 1;
    while (b.leaves < max_length + 1)
        b.leaves *= 2;
    b.head = lora__malloc((max_length + 1) * sizeof *b.head);
    b.next = lora__malloc((n ? n : 1) * sizeof *b.next);
    b.tree = lora__calloc(2 * b.leaves, 1);
    size_t *row_of = lora__malloc((n ? n : 1) * sizeof *row_of);
    lora_status st = LORA_OK;
    if (!b.head || !b.next || !b.tree || !row_of) {
        st = lora__oom("packing", (max_length + 1) * sizeof *b.head);
        goto done;
    }
    for (size_t c = 0; c <= max_length; c++)
        b.head[c] = NONE;
    size_t rows = best_fit(&b, sorted, n, max_length, row_of);
    if ((st = rows_alloc(out, n, rows)) != LORA_OK)
        goto done;
    /* counting sort by row keeps each row's samples in the order they were placed */
    memset(out->start, 0, (rows + 1) * sizeof *out->start);
    for (size_t k = 0; k < n; k++)
        out->start[row_of[k] + 1]++;
    for (size_t r = 0; r < rows; r++)
        out->start[r + 1] += out->start[r];
    for (size_t k = 0; k < n; k++)
        out->items[out->start[row_of[k]]++] = sorted[k].sample;
    for (size_t r = rows; r > 0; r--)
        out->start[r] = out->start[r - 1];
    out->start[0] = 0;
done:
    free(b.head);
    free(b.next);
    free(b.tree);
    free(row_of);
    return st;
}

lora_status lora__rows_pack(const lora__store *st, const size_t *samples, size_t n,
                            size_t max_length, lora__rows *out)
{
    *out = (lora__rows){0};
    by_len *sorted = lora__malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return lora__oom("packing", n * sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        sorted[i] = (by_len){lora__store_len(st, samples[i]), samples[i]};
    qsort(sorted, n, sizeof *sorted, longer_first);
    lora_status s = pack(sorted, n, max_length, out);
    free(sorted);
    return s;
}
