#include "tokenizer/pretokenize.h"

#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "util/alloc.h"

/* The match limit: generous for any real text (a piece costs a few dozen steps), yet it keeps
 * a pathological pattern's backtracking linear in the text. */
#define MATCH_LIMIT_BASE 10000000u
#define MATCH_LIMIT_PER_BYTE 64u
#define DEPTH_LIMIT 10000u
#define JIT_STACK_MAX (8u << 20)

/* Hugging Face runs these patterns with Oniguruma, whose \s is Unicode White_Space: unlike
 * PCRE2's it includes U+0085 (NEL). Rewrites \s and \S outside classes, and \s inside them, so
 * that the two engines agree. */
static char *oniguruma_spaces(const char *pat, size_t len, size_t *out_len)
{
    char *o = lora__malloc(len * 11 + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char e = pat[i + 1];
            const char *rep = NULL;
            if (e == 's')
                rep = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
            else if (e == 'S' && !in_class)
                rep = "[^\\s\\x{85}]";
            if (rep) {
                memcpy(o + k, rep, strlen(rep));
                k += strlen(rep);
            } else {
                o[k++] = c;
                o[k++] = e;
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            o[k++] = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < len && pat[i + 1] == '^')
                o[k++] = pat[++i];
            if (i + 1 < len && pat[i + 1] == ']')
                o[k++] = pat[++i];
            continue;
        }
        if (c == ']' && in_class)
            in_class = 0;
        o[k++] = c;
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

lora_status lora__pretok_compile(lora__pretok *p, const char *pattern, size_t len, int literal,
                                 const char *where)
{
    p->re = NULL;
    p->jit = 0;
    size_t plen = len;
    char *pat = literal ? NULL : oniguruma_spaces(pattern, len, &plen);
    p->gc = pcre2_general_context_create(lora__pcre2_malloc, lora__pcre2_free, NULL);
    pcre2_compile_context *cc = p->gc ? pcre2_compile_context_create(p->gc) : NULL;
    if ((!literal && !pat) || !cc) {
        pcre2_compile_context_free(cc);
        free(pat);
        lora__pretok_free(p);
        return lora__oom("regex", len * 11 + 1);
    }
    int err = 0;
    PCRE2_SIZE off = 0;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
    p->re = pcre2_compile((PCRE2_SPTR)(literal ? pattern : pat), plen, opts, &err, &off, cc);
    pcre2_compile_context_free(cc);
    free(pat);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        lora__pretok_free(p);
        return lora__error(err == PCRE2_ERROR_HEAP_FAILED ? LORA_ERR_OUT_OF_MEMORY
                                                          : LORA_ERR_FORMAT,
                           "%s: regex does not compile: %s (at offset %zu)", where,
                           (const char *)msg, (size_t)off);
    }
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    return LORA_OK;
}

void lora__pretok_free(lora__pretok *p)
{
    pcre2_code_free(p->re);
    pcre2_general_context_free(p->gc);
    p->re = NULL;
    p->gc = NULL;
}

lora_status lora__pretok_run_init(lora__pretok_run *r, const lora__pretok *p)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    if (!p->re)
        return LORA_OK;
    r->md = pcre2_match_data_create_from_pattern(p->re, NULL);
    r->mc = pcre2_match_context_create(p->gc);
    if (!r->md || !r->mc) {
        lora__pretok_run_free(r);
        return lora__oom("regex match data", 1024);
    }
    pcre2_set_depth_limit(r->mc, DEPTH_LIMIT);
    return LORA_OK;
}

void lora__pretok_run_reset(lora__pretok_run *r, const unsigned char *text, size_t len)
{
    r->text = text;
    r->len = len;
    r->pos = 0;
    r->have_match = 0;
    if (r->mc) {
        size_t lim = MATCH_LIMIT_BASE + MATCH_LIMIT_PER_BYTE * len;
        pcre2_set_match_limit(r->mc, lim > UINT32_MAX ? UINT32_MAX : (uint32_t)lim);
    }
}

static int run_match(lora__pretok_run *r, size_t from)
{
    if (!r->p->jit)
        return pcre2_match(r->p->re, r->text, r->len, from, PCRE2_NO_UTF_CHECK, r->md, r->mc);
    int rc = pcre2_jit_match(r->p->re, r->text, r->len, from, 0, r->md, r->mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !r->stack) {
        r->stack = pcre2_jit_stack_create(64u << 10, JIT_STACK_MAX, r->p->gc);
        if (!r->stack)
            return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(r->mc, NULL, r->stack);
        rc = pcre2_jit_match(r->p->re, r->text, r->len, from, 0, r->md, r->mc);
    }
    return rc;
}

/* Finds the next non-empty match at or after from; sets have_match. */
static lora_status search(lora__pretok_run *r, size_t from)
{
    r->have_match = 0;
    while (from < r->len) {
        int rc = run_match(r, from);
        if (rc == PCRE2_ERROR_NOMATCH)
            return LORA_OK;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lora__error(rc == PCRE2_ERROR_NOMEMORY ? LORA_ERR_OUT_OF_MEMORY : LORA_ERR_RANGE,
                               "pre-tokenizer regex gave up at byte %zu of a %zu-byte piece: %s",
                               from, r->len, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        if (ov[1] > ov[0]) {
            r->match_start = ov[0];
            r->match_end = ov[1];
            r->have_match = 1;
            return LORA_OK;
        }
        /* an empty match splits nothing: look again one character further on */
        from = ov[0] + 1;
        while (from < r->len && (r->text[from] & 0xC0) == 0x80)
            from++;
    }
    return LORA_OK;
}

lora_status lora__pretok_next(lora__pretok_run *r, size_t *start, size_t *end, int *done)
{
    *done = 0;
    if (r->pos >= r->len) {
        *done = 1;
        return LORA_OK;
    }
    if (!r->p->re) {
        *start = 0;
        *end = r->pos = r->len;
        return LORA_OK;
    }
    if (!r->have_match) {
        lora_status st = search(r, r->pos);
        if (st)
            return st;
    }
    *start = r->pos;
    if (!r->have_match) {
        *end = r->pos = r->len;
    } else if (r->match_start > r->pos) {
        *end = r->pos = r->match_start;
    } else {
        *end = r->pos = r->match_end;
        r->have_match = 0;
    }
    return LORA_OK;
}

void lora__pretok_run_free(lora__pretok_run *r)
{
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mc);
    pcre2_jit_stack_free(r->stack);
    memset(r, 0, sizeof *r);
}
