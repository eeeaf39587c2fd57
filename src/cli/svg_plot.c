#include "svg_plot.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

enum { W = 720, H = 420, LEFT = 70, RIGHT = 20, TOP = 40, BOTTOM = 50 };

typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

static void put_escaped(buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '&': put(b, "&amp;"); break;
        case '"': put(b, "&quot;"); break;
        default: put(b, "%c", *s);
        }
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about five ticks over span. */
static double tick_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void range(const cli_series *s, size_t n, int axis, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            double v = axis ? s[i].y[k] : s[i].x[k], o = axis ? s[i].x[k] : s[i].y[k];
            if (!isfinite(v) || !isfinite(o)) continue;
            *lo = fmin(*lo, v);
            *hi = fmax(*hi, v);
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12 * fmax(1, fabs(*hi))) *lo -= 0.5, *hi += 0.5;
}

int cli_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                 const cli_series *series, size_t n_series)
{
    double x0, x1, y0, y1;
    range(series, n_series, 0, &x0, &x1);
    range(series, n_series, 1, &y0, &y1);
    double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(v) (LEFT + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (TOP + ph - ((v) - y0) / (y1 - y0) * ph)
    buf b = {NULL, 0, 0, 0};
    put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H, W, H);
    put(&b, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    put_escaped(&b, title);
    put(&b, "</text>\n");
    for (int axis = 0; axis < 2; axis++) {
        double lo = axis ? y0 : x0, hi = axis ? y1 : x1, step = tick_step(hi - lo);
        for (double t = ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
            double v = fabs(t) < step * 1e-9 ? 0 : t;
            if (axis)
                put(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                        "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                    LEFT, PY(v), W - RIGHT, PY(v), LEFT - 6, PY(v) + 4, v);
            else
                put(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                        "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                    PX(v), TOP, PX(v), H - BOTTOM, PX(v), H - BOTTOM + 16, v);
        }
    }
    put(&b, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#444\"/>\n", LEFT, TOP, pw, ph);
    put(&b, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">", LEFT + pw / 2, H - 12);
    put_escaped(&b, xlabel);
    put(&b, "</text>\n<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 16 %.0f)\">", TOP + ph / 2, TOP + ph / 2);
    put_escaped(&b, ylabel);
    put(&b, "</text>\n");
    for (size_t i = 0; i < n_series; i++) {
        const cli_series *s = &series[i];
        put(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", s->color);
        for (size_t k = 0; k < s->n; k++)
            if (isfinite(s->x[k]) && isfinite(s->y[k]))
                put(&b, "%.1f,%.1f ", PX(s->x[k]), PY(s->y[k]));
        put(&b, "\"/>\n");
        for (size_t k = 0; s->markers && k < s->n; k++)
            if (isfinite(s->x[k]) && isfinite(s->y[k]))
                put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s->x[k]),
                    PY(s->y[k]), s->color);
        double ly = TOP + 16 + 16.0 * (double)i;
        put(&b, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\" stroke=\"%s\" "
                "stroke-width=\"2\"/><text x=\"%d\" y=\"%.0f\">", W - RIGHT - 190, ly,
            W - RIGHT - 170, ly, s->color, W - RIGHT - 164, ly + 4);
        put_escaped(&b, s->name);
        put(&b, "</text>\n");
    }
    put(&b, "</svg>\n");
#undef PX
#undef PY
    int rc = b.failed ? (errno = ENOMEM, -1) : cli_write_atomic(path, b.p, b.len);
    free(b.p);
    return rc;
}
