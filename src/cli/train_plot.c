/* The loss curve of a run, drawn from its metrics log. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svg_plot.h"
#include "train.h"

typedef struct points {
    double *x, *y;
    size_t n, cap;
} points;

static int push(points *p, double x, double y)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        double *nx = realloc(p->x, cap * sizeof *nx);
        if (!nx) return -1;
        p->x = nx;
        double *ny = realloc(p->y, cap * sizeof *ny);
        if (!ny) return -1;
        p->y = ny;
        p->cap = cap;
    }
    p->x[p->n] = x;
    p->y[p->n++] = y;
    return 0;
}

int train_plot(const char *out_dir)
{
    char path[4096], svg[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    snprintf(svg, sizeof svg, "%s/loss.svg", out_dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    points train = {0}, eval = {0};
    char line[4096];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *step = json_object_get(o, "step");
        json_t *loss = json_object_get(o, "loss"), *el = json_object_get(o, "eval_loss");
        if (json_is_number(step) && json_is_number(loss))
            rc = push(&train, json_number_value(step), json_number_value(loss));
        else if (json_is_number(step) && json_is_number(el))
            rc = push(&eval, json_number_value(step), json_number_value(el));
        json_decref(o);
    }
    fclose(f);
    cli_series s[2] = {{"train loss", train.x, train.y, train.n, "#1f77b4", 0},
                       {"eval loss (each epoch)", eval.x, eval.y, eval.n, "#d62728", 1}};
    if (rc == 0)
        rc = cli_svg_plot(svg, "lora train: loss", "optimizer step", "loss", s, eval.n ? 2 : 1);
    else
        errno = ENOMEM;
    free(train.x), free(train.y), free(eval.x), free(eval.y);
    return rc;
}
