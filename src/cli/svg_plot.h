/* Line plots as standalone SVG files, written without any plotting dependency: the loss curve
 * of `lora train`, forecasts against ground truth. */
#ifndef LORA_CLI_SVG_PLOT_H
#define LORA_CLI_SVG_PLOT_H

#include <stddef.h>

typedef struct cli_series {
    const char *name;      /* legend text (escaped on output) */
    const double *x, *y;   /* (n) points; non-finite ones are skipped */
    size_t n;
    const char *color;     /* an SVG colour, e.g. "#1f77b4" */
    int markers;           /* 1: a dot at each point (sparse series such as per-epoch eval) */
} cli_series;

/* Writes the plot to path atomically. Returns 0 or -1 with errno set. */
int cli_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                 const cli_series *series, size_t n_series);

#endif
