#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cli_opt *find(cli_opt *opts, const char *name, size_t len)
{
    for (cli_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

int cli_parse(const char *cmd, int argc, char **argv, cli_opt *opts, const char *help)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return CLI_OK;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return cli_fail(cmd, CLI_USAGE, "unexpected argument '%s' (see lora %s --help)", arg,
                            cmd);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        cli_opt *o = find(opts, name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o)
            return cli_fail(cmd, CLI_USAGE, "unknown option '--%.*s' (see lora %s --help)",
                            (int)(eq ? eq - name : (long)strlen(name)), name, cmd);
        if (o->is_flag) {
            if (eq) return cli_fail(cmd, CLI_USAGE, "option --%s takes no value", o->name);
            o->value = "";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            o->value = argv[++i];
        } else {
            return cli_fail(cmd, CLI_USAGE, "option --%s needs a value", o->name);
        }
    }
    return -1;
}

const char *cli_get(const cli_opt *opts, const char *name)
{
    for (const cli_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o->value;
    return NULL;
}

int cli_get_all(int argc, char **argv, const char *name, const char **out, int max)
{
    size_t len = strlen(name);
    int n = 0;
    for (int i = 0; i < argc && n < max; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0) continue;
        if (a[2 + len] == '=') out[n++] = a + 3 + len;
        else if (a[2 + len] == '\0' && i + 1 < argc) out[n++] = argv[++i];
    }
    return n;
}

int cli_fail(const char *cmd, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "lora%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", msg);
    return status;
}

int cli_lib_fail(const char *cmd, lora_status st)
{
    const char *msg = lora_last_error();
    return cli_fail(cmd, CLI_RUNTIME, "%s", msg[0] ? msg : lora_status_string(st));
}

int cli_uint(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
             uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || v < min || v > max)
        return cli_fail(cmd, CLI_USAGE, "--%s must be an integer in %llu..%llu, not '%s'", opt,
                        (unsigned long long)min, (unsigned long long)max, s);
    *out = v;
    return 0;
}

int cli_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return cli_fail(cmd, CLI_USAGE, "--%s must be a number, not '%s'", opt, s);
    *out = v;
    return 0;
}

char *cli_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1) break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown) { free(buf); buf = NULL; errno = ENOMEM; }
        else buf = grown;
    }
    int err = ferror(f) ? EIO : 0;
    fclose(f);
    if (buf && err) { free(buf); buf = NULL; errno = err; }
    if (buf) buf[len] = '\0';
    return buf;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *cli_thousands(uint64_t n, char buf[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n), j = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
    return buf;
}

