/* Answer normalisation: LaTeX wrappers, dollar and percent signs and thin spaces come off, and
 * a number gets one spelling, so that a model's "\boxed{\$1,234.00}" and a reference's "1234"
 * compare equal. docs/evaluation.md lists the rules in order. */
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "eval/eval.h"
#include "util/alloc.h"
#include "util/strbuf.h"

/* LaTeX nests no deeper than this in an answer; deeper groups are copied as they are, so
 * hostile input cannot exhaust the stack. */
#define MAX_DEPTH 32
#define UNICODE_MINUS "\xe2\x88\x92"
#define DEGREE_SIGN "\xc2\xb0"

/* A NUL byte counts as a space (the LaTeX pass writes it as one): the answer is a C string, so
 * none may stay in it (a "-0" before one would be returned as "-0", not as "0"). */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           c == '\0';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* The index of the '}' closing the group that s[open] == '{' opens, n if it does not close. */
static size_t group_end(const char *s, size_t open, size_t n)
{
    size_t depth = 0;
    for (size_t j = open; j < n; j++) {
        if (s[j] == '\\') {
            j++; /* \{ \} are literal braces, \\ a line break */
            continue;
        }
        if (s[j] == '{')
            depth++;
        else if (s[j] == '}' && --depth == 0)
            return j;
    }
    return n;
}

static int in_list(const char *name, size_t len, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == len && !memcmp(*list, name, len))
            return 1;
    return 0;
}

/* Commands whose argument is the answer's text. */
static const char *const UNWRAP[] = {
    "text", "textbf", "textit", "textrm", "textsf", "texttt", "textup", "textnormal",
    "mathrm", "mathbf", "mathit", "mathsf", "mathtt", "mathnormal", "mbox", "hbox",
    "boxed", "fbox", NULL,
};
static const char *const FRACTIONS[] = {"frac", "dfrac", "tfrac", "cfrac", NULL};
/* Commands that only size or space things, and degree signs. */
static const char *const DROPPED[] = {
    "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
    "displaystyle", "textstyle", "circ", "degree", NULL,
};

/* The argument of a command, from s[*i] on: a brace group, or one ASCII letter or digit
 * (\frac12). */
static int read_arg(const char *s, size_t n, size_t *i, size_t *b, size_t *e)
{
    size_t j = *i;
    while (j < n && is_space(s[j]))
        j++;
    if (j >= n || (s[j] != '{' && !is_digit(s[j]) && !is_alpha(s[j])))
        return 0;
    if (s[j] == '{') {
        size_t k = group_end(s, j, n);
        if (k >= n)
            return 0;
        *b = j + 1;
        *e = k;
        *i = k + 1;
        return 1;
    }
    *b = j;
    *e = j + 1;
    *i = j + 1;
    return 1;
}

static void latex(lora__strbuf *b, const char *s, size_t n, int depth);

/* One side of a fraction: bare when it is a plain number or name, else in parentheses. */
static void fraction_part(lora__strbuf *b, const char *s, size_t n, int depth)
{
    lora__strbuf part = {0};
    latex(&part, s, n, depth + 1);
    const char *p = part.data ? part.data : "";
    size_t len = part.len;
    while (len && is_space(p[len - 1]))
        len--;
    while (len && is_space(*p)) {
        p++;
        len--;
    }
    int plain = len > 0;
    for (size_t i = 0; i < len && plain; i++)
        plain = is_digit(p[i]) || is_alpha(p[i]) || p[i] == '.' || (i == 0 && p[i] == '-');
    if (!plain)
        lora__strbuf_add(b, "(", 1);
    lora__strbuf_add(b, p, len);
    if (!plain)
        lora__strbuf_add(b, ")", 1);
    if (part.failed && !b->failed)
        b->failed = part.failed;
    lora__strbuf_free(&part);
}

/* A command at s[i] == '\\'; returns the index after what it consumed. */
static size_t command(lora__strbuf *b, const char *s, size_t n, size_t i, int depth)
{
    size_t j = i + 1;
    while (j < n && is_alpha(s[j]))
        j++;
    const char *name = s + i + 1;
    size_t len = j - i - 1;
    if (!len) {
        if (j >= n)
            return j;
        char c = s[j];
        if (c == ',' || c == ';' || c == ':' || c == '!' || c == '%' || c == '$')
            return j + 1;
        if (c == ' ' || c == '\0')
            lora__strbuf_add(b, " ", 1);
        else
            lora__strbuf_add(b, s + i, 2);
        return j + 1;
    }
    if (in_list(name, len, DROPPED))
        return j;
    size_t k = j, ab, ae, db, de;
    if (in_list(name, len, UNWRAP) && read_arg(s, n, &k, &ab, &ae)) {
        latex(b, s + ab, ae - ab, depth + 1);
        return k;
    }
    if (in_list(name, len, FRACTIONS) && read_arg(s, n, &k, &ab, &ae) &&
        read_arg(s, n, &k, &db, &de)) {
        fraction_part(b, s + ab, ae - ab, depth);
        lora__strbuf_add(b, "/", 1);
        fraction_part(b, s + db, de - db, depth);
        return k;
    }
    lora__strbuf_add(b, s + i, j - i);
    return j;
}

/* "^\circ" or "^{\circ}" at s[i]: the length, else 0. */
static size_t degree_at(const char *s, size_t n, size_t i)
{
    static const char *const forms[] = {"^\\circ", "^{\\circ}"};
    for (int f = 0; f < 2; f++) {
        size_t len = strlen(forms[f]);
        if (n - i >= len && !memcmp(s + i, forms[f], len) &&
            (f == 1 || n - i == len || !is_alpha(s[i + len])))
            return len;
    }
    return 0;
}

static void latex(lora__strbuf *b, const char *s, size_t n, int depth)
{
    if (depth > MAX_DEPTH) {
        lora__strbuf_add(b, s, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        size_t deg;
        if (c == '\\')
            i = command(b, s, n, i, depth);
        else if (c == '$' || c == '%')
            i++;
        else if (c == '~' || c == '\0') {
            lora__strbuf_add(b, " ", 1);
            i++;
        } else if (c == '^' && (deg = degree_at(s, n, i)))
            i += deg;
        else if (n - i >= 2 && !memcmp(s + i, DEGREE_SIGN, 2))
            i += 2;
        else if (n - i >= 3 && !memcmp(s + i, "{,}", 3)) {
            lora__strbuf_add(b, ",", 1); /* LaTeX's unspaced thousands comma */
            i += 3;
        }
        else {
            lora__strbuf_add(b, s + i, 1);
            i++;
        }
    }
}

/* Whitespace runs to one space, none at the ends; returns the new length. */
static size_t squeeze(char *t, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_space(t[i])) {
            if (o && t[o - 1] != ' ')
                t[o++] = ' ';
        } else
            t[o++] = t[i];
    }
    while (o && t[o - 1] == ' ')
        o--;
    return o;
}

static size_t drop_front(char *t, size_t n, size_t k)
{
    memmove(t, t + k, n - k);
    return n - k;
}

/* Outer braces, "name =" before the value, trailing punctuation; until nothing changes. */
static size_t tidy(char *t, size_t n)
{
    for (;;) {
        size_t before = n;
        n = squeeze(t, n);
        if (n >= 2 && t[0] == '{' && group_end(t, 0, n) == n - 1) {
            n = drop_front(t, n - 1, 1);
            continue;
        }
        char *eq = memrchr(t, '=', n);
        if (eq && eq + 1 < t + n) {
            n = drop_front(t, n, (size_t)(eq + 1 - t));
            continue;
        }
        while (n && t[n - 1] && strchr(".,;:! ", t[n - 1]))
            n--;
        if (n == before)
            return n;
    }
}

/* Letters and single spaces after a space: a unit such as " cm" or " dollars". */
static int is_unit(const char *s, size_t n)
{
    if (n < 2 || s[0] != ' ')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alpha(s[i]) && s[i] != ' ')
            return 0;
    return 1;
}

/* Digits without leading zeros ("0" for none or all zeros) to out; returns the length. */
static size_t canon_integer(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (is_digit(s[i]) && (o || s[i] != '0'))
            out[o++] = s[i];
    if (!o)
        out[o++] = '0';
    return o;
}

/* The canonical spelling of a number s, into out (room for n + 2 bytes); 0 if s is not one.
 * [sign] digits-or-thousands-groups [.digits] | [sign] .digits | [sign] digits/digits, then
 * an optional unit. */
static size_t canon_number(const char *s, size_t n, char *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    } else if (n >= 3 && !memcmp(s, UNICODE_MINUS, 3)) {
        neg = 1;
        i = 3;
    }
    size_t ib = i;
    while (i < n && is_digit(s[i]))
        i++;
    if (i - ib >= 1 && i - ib <= 3 && s[ib] != '0')
        while (n - i >= 4 && s[i] == ',' && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
               is_digit(s[i + 3]) && (n - i == 4 || !is_digit(s[i + 4])))
            i += 4;
    size_t ie = i, fb = i, fe = i, db = i, de = i;
    if (i < n && s[i] == '.') {
        fb = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        fe = i;
    } else if (i < n && s[i] == '/' && ie > ib) {
        db = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        de = i;
        if (de == db)
            return 0;
    }
    if (ie == ib && fe == fb)
        return 0;
    if (i < n && !is_unit(s + i, n - i))
        return 0;
    char *p = out + 1;
    size_t len = canon_integer(s + ib, ie - ib, p);
    while (fe > fb && s[fe - 1] == '0')
        fe--;
    int zero = len == 1 && p[0] == '0' && fe == fb;
    if (fe > fb) {
        p[len++] = '.';
        memcpy(p + len, s + fb, fe - fb);
        len += fe - fb;
    }
    if (de > db) {
        char den[32];
        if (de - db >= sizeof den - 1)
            return 0;
        size_t dl = canon_integer(s + db, de - db, den);
        if (dl == 1 && den[0] == '0')
            return 0;
        p[len++] = '/';
        memcpy(p + len, den, dl);
        len += dl;
    }
    if (neg && !zero) {
        out[0] = '-';
        return len + 1;
    }
    memmove(out, p, len);
    return len;
}

/* The LaTeX pass, repeated until its output is its input: one pass can make text that a second
 * simplifies (a wrapper whose argument was "\ x" becomes one whose argument is "x"), and then
 * normalising a normalised answer would change it. Every pass after the first that changes
 * something consumes a command, so MAX_PASSES settles any answer of fewer commands; a longer
 * chain stops there rather than cost a pass per command. */
#define MAX_PASSES 8

static lora_status latex_settled(const char *s, size_t n, lora__strbuf *out)
{
    lora__strbuf b = {0};
    latex(&b, s, n, 0);
    lora__strbuf_add(&b, "", 0);
    for (int pass = 1; pass < MAX_PASSES && !b.failed; pass++) {
        lora__strbuf next = {0};
        latex(&next, b.data, b.len, 0);
        lora__strbuf_add(&next, "", 0);
        int same = next.len == b.len && !memcmp(next.data, b.data, b.len);
        lora__strbuf_free(&b);
        b = next;
        if (same)
            break;
    }
    lora_status st = lora__strbuf_status(&b, "the normalised answer");
    if (st)
        lora__strbuf_free(&b);
    *out = b;
    return st;
}

lora_status lora__answer_normalize(const char *s, size_t n, char **out)
{
    *out = NULL;
    lora__strbuf b;
    lora_status st = latex_settled(s, n, &b);
    if (st)
        return st;
    size_t len = tidy(b.data, b.len);
    char *num = lora__malloc(len + 3);
    if (!num) {
        lora__strbuf_free(&b);
        return lora__oom("the normalised answer", len + 3);
    }
    size_t k = canon_number(b.data, len, num);
    if (k) {
        num[k] = '\0';
        lora__strbuf_free(&b);
        *out = num;
        return LORA_OK;
    }
    free(num);
    b.data[len] = '\0';
    *out = b.data;
    return LORA_OK;
}

lora_answer_kind lora__answer_kind(const char *s)
{
    size_t i = s[0] == '-';
    size_t b = i;
    while (is_digit(s[i]))
        i++;
    if (i == b)
        return LORA_ANSWER_TEXT;
    if (!s[i])
        return LORA_ANSWER_INTEGER;
    char sep = s[i++];
    size_t c = i;
    while (is_digit(s[i]))
        i++;
    if (s[i] || i == c)
        return LORA_ANSWER_TEXT;
    return sep == '.' ? LORA_ANSWER_DECIMAL : sep == '/' ? LORA_ANSWER_FRACTION
                                                         : LORA_ANSWER_TEXT;
}
