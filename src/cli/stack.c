#include "stack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

/* "DIR" or "DIR:SCALE": the scale is what follows the last ':' when it is a number. */
static int split_spec(const char *cmd, const char *spec, char *dir, size_t cap, float *scale)
{
    const char *colon = strrchr(spec, ':');
    char *end = NULL;
    double v = colon ? strtod(colon + 1, &end) : 0;
    size_t n = colon && end != colon + 1 && *end == '\0' && isfinite(v) ? (size_t)(colon - spec)
                                                                      : strlen(spec);
    if (n == 0 || n >= cap)
        return cli_fail(cmd, CLI_USAGE, "--adapter must be DIR or DIR:SCALE, not '%s'", spec);
    memcpy(dir, spec, n);
    dir[n] = '\0';
    *scale = n == strlen(spec) ? 1.0f : (float)v;
    return CLI_OK;
}

int cli_stack_open(const char *cmd, cli_stack *s, const char *model_dir, const char *device,
                   uint64_t threads, const char *const *adapter_specs, int n_specs,
                   int want_tokenizer)
{
    memset(s, 0, sizeof *s);
    if (n_specs > CLI_MAX_ADAPTERS)
        return cli_fail(cmd, CLI_USAGE, "at most %d --adapter options", CLI_MAX_ADAPTERS);
    char cfg[128];
    if (threads)
        snprintf(cfg, sizeof cfg, "{\"device\": \"%s\", \"threads\": %llu}", device,
                 (unsigned long long)threads);
    else
        snprintf(cfg, sizeof cfg, "{\"device\": \"%s\"}", device);
    lora_status st = lora_model_load(model_dir, cfg, &s->model);
    if (st == LORA_OK && want_tokenizer) st = lora_model_tokenizer(s->model, &s->tok);
    if (st == LORA_OK) st = lora_session_create(s->model, NULL, &s->session);
    for (int i = 0; st == LORA_OK && i < n_specs; i++) {
        char dir[4096];
        int rc = split_spec(cmd, adapter_specs[i], dir, sizeof dir, &s->scales[i]);
        if (rc != CLI_OK) {
            cli_stack_close(s);
            return rc;
        }
        s->dirs[i] = adapter_specs[i];
        st = lora_adapter_load(s->model, dir, &s->adapters[i]);
        if (st == LORA_OK) s->n_adapters++;
    }
    if (st == LORA_OK && s->n_adapters)
        st = lora_session_set_adapters(s->session, s->adapters, s->scales, (size_t)s->n_adapters);
    if (st != LORA_OK) {
        int rc = cli_lib_fail(cmd, st);
        cli_stack_close(s);
        return rc;
    }
    return CLI_OK;
}

int cli_stack_use(const char *cmd, cli_stack *s, int i)
{
    lora_status st = i < 0 ? lora_session_set_adapters(s->session, NULL, NULL, 0)
                           : lora_session_set_adapters(s->session, &s->adapters[i],
                                                       &s->scales[i], 1);
    return st == LORA_OK ? CLI_OK : cli_lib_fail(cmd, st);
}

void cli_stack_close(cli_stack *s)
{
    for (int i = 0; i < s->n_adapters; i++) lora_adapter_free(s->adapters[i]);
    lora_session_free(s->session);
    lora_tokenizer_free(s->tok);
    lora_model_free(s->model);
    memset(s, 0, sizeof *s);
}
