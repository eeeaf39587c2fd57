#include "progress.h"

#include <stdarg.h>
#include "args.h"
#include <unistd.h>

#define BAR 24 /* cells */

void cli_progress_start(cli_progress *p, FILE *out, uint64_t total)
{
    p->out = out;
    p->tty = isatty(fileno(out));
    p->total = total;
    p->every = total >= 50 ? total / 25 : 1; /* about 25 plain lines per run */
    p->t_start = cli_now();
    p->drawn = 0;
}

/* "1h02m", "3m05s", "12s" */
static void duration(char *buf, size_t n, double s)
{
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void cli_progress_step(cli_progress *p, uint64_t step, double loss, double lr, double tok_s)
{
    double elapsed = cli_now() - p->t_start;
    char eta[32] = "?", spent[32];
    duration(spent, sizeof spent, elapsed);
    uint64_t done = step < p->total ? step : p->total;
    if (p->total && step)
        duration(eta, sizeof eta, elapsed / (double)step * (double)(p->total - done));
    if (p->tty) {
        char bar[BAR + 1];
        int filled = p->total ? (int)(BAR * done / p->total) : 0;
        for (int i = 0; i < BAR; i++) bar[i] = i < filled ? '#' : '.';
        bar[BAR] = '\0';
        fprintf(p->out, "\r[%s] %llu/%llu  loss %.4f  lr %.2e  %.0f tok/s  %s elapsed  ETA %s\033[K",
                bar, (unsigned long long)step, (unsigned long long)p->total, loss, lr, tok_s,
                spent, eta);
        p->drawn = 1;
    } else if (step % p->every == 0 || step == p->total || step == 1) {
        fprintf(p->out, "step %llu/%llu loss %.4f lr %.2e tok/s %.0f elapsed %s eta %s\n",
                (unsigned long long)step, (unsigned long long)p->total, loss, lr, tok_s, spent,
                eta);
    }
    fflush(p->out);
}

void cli_progress_note(cli_progress *p, const char *fmt, ...)
{
    if (p->drawn) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    p->drawn = 0;
    fflush(p->out);
}

void cli_progress_end(cli_progress *p)
{
    if (p->drawn) fputc('\n', p->out);
    p->drawn = 0;
    fflush(p->out);
}
