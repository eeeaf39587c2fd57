/* lora tokenize -- text to ids line by line, a check against a golden JSONL file, or a speed
 * measurement. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench.h"

static const char help[] =
    "usage: lora tokenize --tokenizer DIR [--special-as-text] [--replace-invalid] [FILE]\n"
    "       lora tokenize --tokenizer DIR --check GOLDEN.jsonl\n"
    "       lora tokenize --tokenizer DIR --bench FILE\n"
    "\n"
    "Prints the ids of each line of FILE (stdin when FILE is absent), comma-separated, one\n"
    "output line per input line (the newline itself is not encoded). Special-token text such\n"
    "as <|im_end|> becomes its special token, as in Hugging Face's tokenizer(text,\n"
    "add_special_tokens=False).\n"
    "\n"
    "  --tokenizer DIR     a folder with tokenizer.json (and tokenizer_config.json), or the\n"
    "                      path of a tokenizer.json (required)\n"
    "  --special-as-text   special-token text is plain text\n"
    "  --replace-invalid   invalid UTF-8 becomes U+FFFD instead of an error\n"
    "  --check FILE        checks each line {\"text\", \"ids\", \"decoded\"} of FILE: the ids of\n"
    "                      text, and the decoding of those ids; prints one line per failing\n"
    "                      case and a closing line 'N passed, M failed'; exit 1 on a failure\n"
    "  --bench FILE        encodes FILE whole, repeatedly for at least a second after one\n"
    "                      untimed run, on one thread; prints bytes=, tokens=, seconds= and\n"
    "                      tokenize_mb_per_s= (MB = 10^6 bytes)\n";

static unsigned encode_flags(const cli_opt *opts)
{
    return (cli_get(opts, "special-as-text") ? LORA_ENCODE_SPECIAL_AS_TEXT : 0) |
           (cli_get(opts, "replace-invalid") ? LORA_ENCODE_UTF8_REPLACE : 0);
}

/* The ids of text[0..len) in a malloc'd array; NULL after printing the error. */
static int32_t *encode(lora_tokenizer *t, const char *text, size_t len, unsigned flags,
                       size_t *n)
{
    lora_status st = lora_tokenizer_encode(t, text, len, flags, NULL, 0, n);
    if (st != LORA_OK && st != LORA_ERR_RANGE) {
        cli_lib_fail("tokenize", st);
        return NULL;
    }
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    if (!ids) {
        cli_fail("tokenize", CLI_RUNTIME, "out of memory");
        return NULL;
    }
    if ((st = lora_tokenizer_encode(t, text, len, flags, ids, *n, n)) != LORA_OK) {
        cli_lib_fail("tokenize", st);
        free(ids);
        return NULL;
    }
    return ids;
}

static int print_lines(lora_tokenizer *t, const char *path, unsigned flags)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) return cli_fail("tokenize", CLI_RUNTIME, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = CLI_OK;
    while (rc == CLI_OK && (got = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        size_t n;
        int32_t *ids = encode(t, line, len, flags, &n);
        if (!ids) {
            rc = CLI_RUNTIME;
            break;
        }
        for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", (int)ids[i]);
        putchar('\n');
        free(ids);
    }
    if (rc == CLI_OK && ferror(f)) rc = cli_fail("tokenize", CLI_RUNTIME, "%s: read error",
                                                 path ? path : "stdin");
    free(line);
    if (path) fclose(f);
    return rc;
}

/* One golden case: returns 1 when it passes, else prints why. */
static int check_case(lora_tokenizer *t, const json_t *c, size_t lineno)
{
    const json_t *text = json_object_get(c, "text"), *ids = json_object_get(c, "ids");
    const json_t *decoded = json_object_get(c, "decoded");
    if (!json_is_string(text) || !json_is_array(ids) || !json_is_string(decoded)) {
        printf("line %zu: not a case {\"text\": string, \"ids\": [...], \"decoded\": string}\n",
               lineno);
        return 0;
    }
    size_t n;
    int32_t *got = encode(t, json_string_value(text), json_string_length(text), 0, &n);
    if (!got) {
        printf("line %zu: encode failed: %s\n", lineno, lora_last_error());
        return 0;
    }
    int ok = 1;
    size_t want = json_array_size(ids);
    for (size_t i = 0; ok && i < (n > want ? n : want); i++) {
        const json_t *w = json_array_get(ids, i);
        if (i >= n || i >= want || !json_is_integer(w) || json_integer_value(w) != got[i]) {
            printf("line %zu: ids differ at index %zu: got %s%d, expected %s%lld (%zu ids, "
                   "expected %zu)\n", lineno, i, i < n ? "" : "(none)", i < n ? (int)got[i] : 0,
                   i < want ? "" : "(none)", i < want ? (long long)json_integer_value(w) : 0LL,
                   n, want);
            ok = 0;
        }
    }
    char *text_out = NULL;
    size_t len = 0;
    lora_status st = lora_tokenizer_decode(t, got, n, 0, &text_out, &len);
    if (st != LORA_OK) {
        printf("line %zu: decode failed: %s\n", lineno, lora_last_error());
        ok = 0;
    } else if (len != json_string_length(decoded) ||
               memcmp(text_out, json_string_value(decoded), len) != 0) {
        printf("line %zu: decoded text differs (%zu bytes, expected %zu)\n", lineno, len,
               json_string_length(decoded));
        ok = 0;
    }
    lora_string_free(text_out);
    free(got);
    return ok;
}

static int check(lora_tokenizer *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail("tokenize", CLI_RUNTIME, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0, lineno = 0, passed = 0, failed = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (got <= 1 && (got == 0 || line[0] == '\n')) continue;
        json_error_t jerr;
        json_t *c = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        if (!c) {
            printf("line %zu: not JSON: %s\n", lineno, jerr.text);
            failed++;
            continue;
        }
        if (check_case(t, c, lineno)) passed++;
        else failed++;
        json_decref(c);
    }
    free(line);
    fclose(f);
    printf("%zu passed, %zu failed\n", passed, failed);
    return failed ? CLI_RUNTIME : CLI_OK;
}

static int bench(lora_tokenizer *t, const char *path, unsigned flags)
{
    char *text = cli_read_file(path);
    if (!text) return cli_fail("tokenize", CLI_RUNTIME, "%s: cannot read", path);
    size_t len = strlen(text), n = 0;
    int32_t *ids = encode(t, text, len, flags, &n);
    if (!ids) {
        free(text);
        return CLI_RUNTIME;
    }
    size_t cap = n, runs = 0;
    double start = cli_now(), now = start;
    lora_status st = LORA_OK;
    while (st == LORA_OK && (runs == 0 || now - start < 1.0)) {
        st = lora_tokenizer_encode(t, text, len, flags, ids, cap, &n);
        runs++;
        now = cli_now();
    }
    free(ids);
    free(text);
    if (st != LORA_OK) return cli_lib_fail("tokenize", st);
    double per_run = (now - start) / (double)runs;
    printf("bytes=%zu\ntokens=%zu\nruns=%zu\nseconds=%.4f\ntokenize_mb_per_s=%.2f\n", len, n, runs,
           per_run, (double)len / per_run / 1e6);
    return CLI_OK;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_opt opts[] = {
        {"tokenizer", 0, NULL}, {"check", 0, NULL}, {"bench", 0, NULL},
        {"special-as-text", 1, NULL}, {"replace-invalid", 1, NULL}, {NULL, 0, NULL},
    };
    /* one optional FILE among the options: set it aside for cli_parse */
    char **words = malloc((size_t)(argc + 1) * sizeof *words);
    if (!words) return cli_fail("tokenize", CLI_RUNTIME, "out of memory");
    int nw = 0;
    const char *file = NULL;
    int rc = -1;
    for (int i = 0; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 || strcmp(a, "-h") == 0) {
            words[nw++] = argv[i];
            int takes = strcmp(a, "--tokenizer") == 0 || strcmp(a, "--check") == 0 ||
                        strcmp(a, "--bench") == 0;
            if (takes && i + 1 < argc) words[nw++] = argv[++i];
        } else if (!file) {
            file = a;
        } else {
            rc = cli_fail("tokenize", CLI_USAGE, "unexpected argument '%s' (see lora tokenize "
                          "--help)", a);
        }
    }
    if (rc < 0) rc = cli_parse("tokenize", nw, words, opts, help);
    free(words);
    if (rc >= 0) return rc;
    const char *dir = cli_get(opts, "tokenizer");
    const char *golden = cli_get(opts, "check"), *bench_file = cli_get(opts, "bench");
    if (!dir) return cli_fail("tokenize", CLI_USAGE, "--tokenizer DIR is required");
    if ((golden || bench_file) && file)
        return cli_fail("tokenize", CLI_USAGE, "FILE is not taken with --check or --bench");
    if (golden && bench_file)
        return cli_fail("tokenize", CLI_USAGE, "--check and --bench exclude each other");
    lora_tokenizer *t = NULL;
    lora_status st = lora_tokenizer_load(dir, NULL, &t);
    if (st != LORA_OK) return cli_lib_fail("tokenize", st);
    rc = golden ? check(t, golden)
         : bench_file ? bench(t, bench_file, encode_flags(opts))
                      : print_lines(t, file, encode_flags(opts));
    lora_tokenizer_free(t);
    return rc;
}
