/* The final answer in a model's output: the last complete \boxed{...}, else a GSM8K "####"
 * line holding a number, else the last number in the text. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "eval/eval.h"
#include "util/alloc.h"

#define UNICODE_MINUS "\xe2\x88\x92"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of "\boxed" or "\fbox" at t[i] (not the start of a longer command name), else 0. */
static size_t box_command(const char *t, size_t n, size_t i)
{
    static const char *const names[] = {"\\boxed", "\\fbox"};
    for (int k = 0; k < 2; k++) {
        size_t len = strlen(names[k]);
        if (n - i >= len && !memcmp(t + i, names[k], len) &&
            (n - i == len || !is_alnum(t[i + len])))
            return len;
    }
    return 0;
}

typedef struct open_brace {
    size_t pos;
    int box; /* the brace opens a \boxed or \fbox argument */
} open_brace;

/* The last box to open among those that close: a box cut off (output truncated) gives way to
 * the complete one before it. One pass with a stack of open braces, so that a text full of
 * unclosed boxes costs linear time. */
static lora_status last_box(const char *t, size_t n, size_t *b, size_t *e)
{
    open_brace *stack = NULL;
    size_t depth = 0, cap = 0;
    *b = *e = n;
    for (size_t i = 0; i < n; i++) {
        int box = 0;
        if (t[i] == '\\') {
            size_t len = box_command(t, n, i), j = i + len;
            while (len && j < n && is_space(t[j]))
                j++;
            if (!len || j >= n || t[j] != '{') {
                i++; /* \{ \} are literal braces */
                continue;
            }
            i = j;
            box = 1;
        }
        if (t[i] == '{') {
            if (depth == cap) {
                size_t want = cap ? 2 * cap : 16;
                open_brace *p = lora__realloc(stack, want * sizeof *p);
                if (!p) {
                    free(stack);
                    return lora__oom("the brace stack", want * sizeof *p);
                }
                stack = p;
                cap = want;
            }
            stack[depth++] = (open_brace){i, box};
        } else if (t[i] == '}' && depth) {
            open_brace o = stack[--depth];
            if (o.box && (*b == n || o.pos + 1 > *b)) {
                *b = o.pos + 1;
                *e = i;
            }
        }
    }
    free(stack);
    return LORA_OK;
}

/* A box whose content normalises to nothing ("\boxed{}") is no answer. */
static lora_status from_boxed(const char *t, size_t n, char **out)
{
    size_t b, e;
    lora_status st = last_box(t, n, &b, &e);
    if (st || b == n)
        return st;
    st = lora__answer_normalize(t + b, e - b, out);
    if (st || **out)
        return st;
    free(*out);
    *out = NULL;
    return LORA_OK;
}

/* GSM8K writes its answers as a last line "#### 72". Markdown headings start with "####"
 * too, so the marker counts only when its line is a number. */
static lora_status from_marker(const char *t, size_t n, char **out)
{
    size_t i = n;
    while (i-- > 0)
        if (n - i >= 4 && !memcmp(t + i, "####", 4))
            break;
    if (i == (size_t)-1)
        return LORA_OK;
    size_t b = i + 4;
    while (b < n && t[b] == '#')
        b++;
    const char *nl = memchr(t + b, '\n', n - b);
    size_t e = nl ? (size_t)(nl - t) : n;
    lora_status st = lora__answer_normalize(t + b, e - b, out);
    if (st || lora__answer_kind(*out) != LORA_ANSWER_TEXT)
        return st;
    free(*out);
    *out = NULL;
    return LORA_OK;
}

/* A number starting at t[i]: *b and *e bound it, with its sign and thousands groups. */
static int number_at(const char *t, size_t n, size_t i, size_t *b, size_t *e)
{
    size_t j = i;
    if (t[j] == '.') {
        /* ".5", but not the ".1" of "2.5.1" or of a word */
        if (j + 1 >= n || !is_digit(t[j + 1]) || (j && (is_alnum(t[j - 1]) || t[j - 1] == '.')))
            return 0;
    } else if (!is_digit(t[j]))
        return 0;
    *b = j;
    if (t[j] != '.') {
        while (j < n && is_digit(t[j]))
            j++;
        if (j - i <= 3 && t[i] != '0')
            while (n - j >= 4 && t[j] == ',' && is_digit(t[j + 1]) && is_digit(t[j + 2]) &&
                   is_digit(t[j + 3]) && (n - j == 4 || !is_digit(t[j + 4])))
                j += 4;
    }
    if (j + 1 < n && t[j] == '.' && is_digit(t[j + 1])) {
        j++;
        while (j < n && is_digit(t[j]))
            j++;
    } else if (j + 1 < n && t[j] == '/' && is_digit(t[j + 1]) && t[i] != '.') {
        j++;
        while (j < n && is_digit(t[j]))
            j++;
    }
    *e = j;
    /* a sign only where it cannot be a binary minus: "x = -5", "(-5)", not "3-5" */
    size_t s = *b;
    if (s >= 1 && (t[s - 1] == '-' || t[s - 1] == '+') && (s == 1 || !is_alnum(t[s - 2])))
        *b = s - 1;
    else if (s >= 3 && !memcmp(t + s - 3, UNICODE_MINUS, 3) && (s == 3 || !is_alnum(t[s - 4])))
        *b = s - 3;
    return 1;
}

static lora_status from_last_number(const char *t, size_t n, char **out)
{
    size_t best_b = n, best_e = n, b, e;
    for (size_t i = 0; i < n;) {
        if (number_at(t, n, i, &b, &e)) {
            best_b = b;
            best_e = e;
            i = e;
        } else
            i++;
    }
    return best_b < n ? lora__answer_normalize(t + best_b, best_e - best_b, out) : LORA_OK;
}

lora_status lora__answer_extract(const char *text, size_t n, char **out)
{
    *out = NULL;
    lora_status st = from_boxed(text, n, out);
    if (st == LORA_OK && !*out)
        st = from_marker(text, n, out);
    if (st == LORA_OK && !*out)
        st = from_last_number(text, n, out);
    return st;
}
