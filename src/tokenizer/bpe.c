#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "tokenizer/bytebuf.h"
#include "tokenizer/bytelevel.h"
#include "util/alloc.h"

/* Pieces up to this many bytes are remembered (words; long runs are rarely repeated). */
#define CACHE_MAX_BYTES 64

struct lora__bpe_sym {
    int32_t id;
    int32_t prev, next;  /* -1 at the ends */
    uint32_t len;        /* bytes covered; 0 once merged into its left neighbour */
};

static lora_status out_push(lora__bpe_out *o, int32_t id, uint32_t len)
{
    if (o->n == o->cap) {
        void *a = o->ids, *b = o->lens;
        size_t ca = o->cap, cb = o->cap;
        lora_status st = lora__grow(&a, &ca, o->n + 1, sizeof *o->ids, "token ids");
        o->ids = a;
        if (!st)
            st = lora__grow(&b, &cb, o->n + 1, sizeof *o->lens, "token ids");
        o->lens = b;
        if (st)
            return st;
        o->cap = ca;
    }
    o->ids[o->n] = id;
    o->lens[o->n] = len;
    o->n++;
    return LORA_OK;
}

/* min-heap of rank << 32 | position: lowest rank first, then leftmost */
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = v;
    return top;
}

static inline uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* Pushes the merge of symbol i with its right neighbour, if there is one. */
static void push_pair(const lora_tokenizer *t, lora__bpe_work *w, size_t *hn, int32_t i)
{
    int32_t j = w->syms[i].next;
    if (j < 0)
        return;
    uint64_t m = lora__u64map_get(&t->merges, pair_key(w->syms[i].id, w->syms[j].id));
    if (m != UINT64_MAX)
        heap_push(w->heap, hn, (m & 0xFFFFFFFF00000000ull) | (uint32_t)i);
}

/* The initial symbols: one per byte, unknown bytes dropped or made the unk token. */
static size_t initial_symbols(const lora_tokenizer *t, lora__bpe_sym *s, const unsigned char *b,
                              size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[b[i]];
        if (id < 0) {
            if (t->unk_id < 0)
                continue;
            if (t->fuse_unk && k > 0 && s[k - 1].id == t->unk_id) {
                s[k - 1].len++;
                continue;
            }
            id = t->unk_id;
        }
        s[k] = (lora__bpe_sym){id, (int32_t)k - 1, (int32_t)k + 1, 1};
        k++;
    }
    if (k)
        s[k - 1].next = -1;
    return k;
}

static lora_status merge_all(const lora_tokenizer *t, lora__bpe_work *w, const unsigned char *b,
                             size_t n, lora__bpe_out *out)
{
    void *p = w->syms;
    lora_status st = lora__grow(&p, &w->syms_cap, n, sizeof *w->syms, "BPE symbols");
    w->syms = p;
    if (st)
        return st;
    p = w->heap;
    st = lora__grow(&p, &w->heap_cap, 2 * n, sizeof *w->heap, "BPE merge queue");
    w->heap = p;
    if (st)
        return st;
    lora__bpe_sym *s = w->syms;
    size_t k = initial_symbols(t, s, b, n);
    size_t hn = 0;
    for (size_t i = 0; i + 1 < k; i++)
        push_pair(t, w, &hn, (int32_t)i);
    /* each merge removes a symbol and pushes at most two candidates: the heap stays < 2 n */
    while (hn) {
        uint64_t top = heap_pop(w->heap, &hn);
        int32_t i = (int32_t)(uint32_t)top;
        int32_t j = s[i].next;
        if (s[i].len == 0 || j < 0)
            continue;
        uint64_t m = lora__u64map_get(&t->merges, pair_key(s[i].id, s[j].id));
        if (m == UINT64_MAX || (m >> 32) != top >> 32)
            continue; /* stale: one side has merged since */
        s[i].id = (int32_t)(uint32_t)m;
        s[i].len += s[j].len;
        s[j].len = 0;
        s[i].next = s[j].next;
        if (s[j].next >= 0)
            s[s[j].next].prev = i;
        if (s[i].prev >= 0)
            push_pair(t, w, &hn, s[i].prev);
        push_pair(t, w, &hn, i);
    }
    out->n = 0;
    for (int32_t i = k ? 0 : -1; i >= 0 && !st; i = s[i].next)
        st = out_push(out, s[i].id, s[i].len);
    return st;
}

/* With ignore_merges (Llama 3), a piece that is a vocabulary entry is that one token. */
static int32_t whole_piece(const lora_tokenizer *t, const unsigned char *b, size_t n)
{
    char stack[4 * CACHE_MAX_BYTES];
    char *text = 2 * n <= sizeof stack ? stack : lora__malloc(2 * n);
    if (!text)
        return -2;
    size_t len = lora__bytelevel_encode(b, n, text);
    int64_t id = lora__strmap_get(&t->vocab, text, len);
    if (text != stack)
        free(text);
    return (int32_t)id;
}

static lora_status cache_store(lora__bpe_work *w, const unsigned char *b, size_t n,
                               const lora__bpe_out *out)
{
    if (!w->cache_ready) {
        lora_status st = lora__strmap_init(&w->cache, 1024);
        if (st)
            return st;
        w->cache_ready = 1;
    }
    void *p = w->pool;
    lora_status st = lora__grow(&p, &w->pool_cap, w->pool_n + 1 + 2 * out->n, sizeof *w->pool,
                                "BPE cache");
    w->pool = p;
    if (st)
        return st;
    size_t at = w->pool_n;
    w->pool[w->pool_n++] = (uint32_t)out->n;
    for (size_t i = 0; i < out->n; i++) {
        w->pool[w->pool_n++] = (uint32_t)out->ids[i];
        w->pool[w->pool_n++] = out->lens[i];
    }
    return lora__strmap_put(&w->cache, b, n, (int64_t)at, NULL, NULL);
}

lora_status lora__bpe_encode(const lora_tokenizer *t, lora__bpe_work *w, const unsigned char *b,
                             size_t n, lora__bpe_out *out)
{
    out->n = 0;
    if (n > INT32_MAX)
        return lora__error(LORA_ERR_RANGE, "a pre-token of %zu bytes is more than BPE takes", n);
    if (n == 1 && t->byte_id[b[0]] >= 0)
        return out_push(out, t->byte_id[b[0]], 1);
    int cacheable = n <= CACHE_MAX_BYTES;
    if (cacheable && w->cache_ready) {
        int64_t at = lora__strmap_get(&w->cache, b, n);
        if (at >= 0) {
            const uint32_t *e = w->pool + at;
            lora_status st = LORA_OK;
            for (uint32_t i = 0; i < e[0] && !st; i++)
                st = out_push(out, (int32_t)e[1 + 2 * i], e[2 + 2 * i]);
            return st;
        }
    }
    lora_status st;
    int32_t whole = t->ignore_merges ? whole_piece(t, b, n) : -1;
    if (whole == -2)
        return lora__oom("piece", 2 * n);
    if (whole >= 0)
        st = out_push(out, whole, (uint32_t)n);
    else
        st = merge_all(t, w, b, n, out);
    if (!st && cacheable)
        st = cache_store(w, b, n, out);
    return st;
}

void lora__bpe_work_free(lora__bpe_work *w)
{
    free(w->syms);
    free(w->heap);
    free(w->pool);
    if (w->cache_ready)
        lora__strmap_free(&w->cache);
    memset(w, 0, sizeof *w);
}

void lora__bpe_out_free(lora__bpe_out *o)
{
    free(o->ids);
    free(o->lens);
    memset(o, 0, sizeof *o);
}
