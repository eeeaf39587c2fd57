/* Comparing normalised answers: integers digit for digit (any length), other numbers by value
 * (fractions divided out) within a relative 1e-9, text byte for byte. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"

/* The value of a canonical number; digits are read by hand, not by strtod, so that the
 * caller's locale cannot change what "0.5" means. */
static long double value(const char *s)
{
    int neg = *s == '-';
    s += neg;
    long double num = 0, den = 1, scale = 1;
    int frac = 0;
    for (; *s && *s != '/'; s++) {
        if (*s == '.') {
            frac = 1;
            continue;
        }
        num = num * 10 + (*s - '0');
        if (frac)
            scale *= 10;
    }
    if (*s == '/')
        for (den = 0, s++; *s; s++)
            den = den * 10 + (*s - '0');
    long double v = num / scale / den;
    return neg ? -v : v;
}

int lora__answer_equal(const char *a, const char *b)
{
    lora_answer_kind ka = lora__answer_kind(a), kb = lora__answer_kind(b);
    if (ka == LORA_ANSWER_TEXT || kb == LORA_ANSWER_TEXT ||
        (ka == LORA_ANSWER_INTEGER && kb == LORA_ANSWER_INTEGER))
        return !strcmp(a, b);
    long double x = value(a), y = value(b);
    if (!isfinite(x) || !isfinite(y))
        return !strcmp(a, b);
    return x == y || fabsl(x - y) <= 1e-9L * fmaxl(fabsl(x), fabsl(y));
}
