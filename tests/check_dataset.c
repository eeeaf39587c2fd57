/* lora_dataset: formats and labels against Hugging Face, truncation, padding, packing,
 * shuffling, resume, split, bad lines, statistics, options, misuse. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"
#include "util/suite.h"

#define TOK "tests/fixtures/qwen-tokenizer"
#define DATA "tests/fixtures/data/"
#define IGNORE (-100)
#define PAD_ID 151643  /* <|endoftext|>, tokenizer_config.json's pad_token */

/* ---- helpers ------------------------------------------------------------------------------ */

/* Loaded once in the parent process (an unchecked fixture): every test's child shares it. */
static lora_tokenizer *TOKENIZER;

static void tokenizer_setup(void)
{
    lora_status st = lora_tokenizer_load(TOK, NULL, &TOKENIZER);
    ck_assert_msg(st == LORA_OK, "tokenizer: %s", lora_last_error());
}

static void tokenizer_teardown(void)
{
    lora_tokenizer_free(TOKENIZER);
    TOKENIZER = NULL;
}

static lora_tokenizer *tok(void)
{
    ck_assert_ptr_nonnull(TOKENIZER);
    return TOKENIZER;
}

/* Loads path with options. */
static lora_dataset *load(const char *path, const char *json)
{
    lora_tokenizer *t = tok();
    lora_dataset *d = NULL;
    lora_status st = lora_dataset_load(t, path, json, &d);
    ck_assert_msg(st == LORA_OK, "load %s %s: %s", path, json ? json : "NULL", lora_last_error());
    ck_assert_ptr_nonnull(d);
    return d;
}

/* The status of a load that must fail; *out must come back NULL. */
static lora_status load_fails(const char *path, const char *json)
{
    lora_tokenizer *t = tok();
    lora_dataset *d = (lora_dataset *)1;
    lora_status st = lora_dataset_load(t, path, json, &d);
    ck_assert_msg(st != LORA_OK, "load %s %s succeeded", path, json ? json : "NULL");
    ck_assert_ptr_null(d);
    return st;
}

typedef struct row {
    int32_t *ids, *labels, *pos;
    size_t n;
} row;

static row get_row(const lora_dataset *d, size_t i)
{
    size_t n = 0;
    int32_t dummy;
    lora_status st = lora_dataset_row(d, i, &dummy, &dummy, NULL, 0, &n);
    ck_assert(st == LORA_OK || st == LORA_ERR_RANGE);
    row r = {malloc((n + 1) * 4), malloc((n + 1) * 4), malloc((n + 1) * 4), n};
    st = lora_dataset_row(d, i, r.ids, r.labels, r.pos, n, &r.n);
    ck_assert_msg(st == LORA_OK, "row %zu: %s", i, lora_last_error());
    ck_assert_uint_eq(r.n, n);
    return r;
}

static void free_row(row *r)
{
    free(r->ids);
    free(r->labels);
    free(r->pos);
}

/* A temporary file holding len bytes of content; free with drop_file. */
static char *tmp_file(const char *content, size_t len)
{
    char *path = strdup("/tmp/check_dataset_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *tmp_text(const char *content) { return tmp_file(content, strlen(content)); }

static void drop_file(char *path)
{
    unlink(path);
    free(path);
}

static json_t *stats(const lora_dataset *d)
{
    json_error_t err;
    json_t *o = json_loads(lora_dataset_stats_json(d), 0, &err);
    ck_assert_msg(o != NULL, "stats: %s", err.text);
    return o;
}

static long long stat_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "stats key %s", key);
    return json_integer_value(v);
}

/* n text samples, sample i being digits[i] digits ("1", "22", ...: digit tokens are single,
 * so a sample is digits[i] + 1 tokens with the eos). */
static char *digit_file(const size_t *digits, size_t n)
{
    size_t cap = 64;
    for (size_t i = 0; i < n; i++)
        cap += digits[i] + 16;
    char *s = malloc(cap), *p = s;
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "{\"text\": \"");
        for (size_t k = 0; k < digits[i]; k++)
            *p++ = (char)('0' + (i + k) % 10);
        p += sprintf(p, "\"}\n");
    }
    char *path = tmp_file(s, (size_t)(p - s));
    free(s);
    return path;
}

static int same_row(const row *a, const row *b)
{
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * 4) == 0 &&
           memcmp(a->labels, b->labels, a->n * 4) == 0;
}

/* The index of the dataset row equal to ids/labels (n tokens), or -1. */
static long find_row(const lora_dataset *d, const int32_t *ids, const int32_t *labels, size_t n)
{
    row want = {(int32_t *)ids, (int32_t *)labels, NULL, n};
    for (size_t i = 0; i < lora_dataset_size(d); i++) {
        row r = get_row(d, i);
        int eq = same_row(&r, &want);
        free_row(&r);
        if (eq)
            return (long)i;
    }
    return -1;
}

/* ---- formats and labels ----------------------------------------------------------------- */

/* Every sample of every fixture file matches make_expected.py's Hugging Face output. */
START_TEST(ids_and_labels_match_hf)
{
    FILE *f = fopen(DATA "expected.jsonl", "r");
    ck_assert_ptr_nonnull(f);
    char line[65536], current[256] = "";
    lora_dataset *d = NULL;
    size_t index = 0, checked = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        ck_assert_ptr_nonnull(o);
        const char *file = json_string_value(json_object_get(o, "file"));
        if (strcmp(file, current) != 0) {
            lora_dataset_free(d);
            char path[512];
            snprintf(path, sizeof path, DATA "%s", file);
            d = load(path, "{\"shuffle\": false}");
            snprintf(current, sizeof current, "%s", file);
            index = 0;
        }
        json_t *ids = json_object_get(o, "ids"), *labels = json_object_get(o, "labels");
        row r = get_row(d, index);
        ck_assert_msg(r.n == json_array_size(ids), "%s line %lld: %zu ids, expected %zu", file,
                      (long long)json_integer_value(json_object_get(o, "line")), r.n,
                      json_array_size(ids));
        for (size_t k = 0; k < r.n; k++) {
            ck_assert_msg(r.ids[k] == json_integer_value(json_array_get(ids, k)),
                          "%s row %zu token %zu: id %d", file, index, k, r.ids[k]);
            ck_assert_msg(r.labels[k] == json_integer_value(json_array_get(labels, k)),
                          "%s row %zu token %zu: label %d", file, index, k, r.labels[k]);
            ck_assert_int_eq(r.pos[k], (int32_t)k);
        }
        free_row(&r);
        json_decref(o);
        index++;
        checked++;
    }
    fclose(f);
    lora_dataset_free(d);
    ck_assert_uint_ge(checked, 10);
}
END_TEST

/* An explicit format gives what auto detects. */
START_TEST(explicit_format_equals_auto)
{
    static const char *const CASES[][2] = {
        {DATA "chat.jsonl", "{\"shuffle\": false, \"format\": \"messages\"}"},
        {DATA "prompt_completion.jsonl",
         "{\"shuffle\": false, \"format\": \"prompt_completion\"}"},
        {DATA "text.jsonl", "{\"shuffle\": false, \"format\": \"text\"}"},
    };
    for (size_t c = 0; c < 3; c++) {
        lora_dataset *a = load(CASES[c][0], "{\"shuffle\": false}");
        lora_dataset *b = load(CASES[c][0], CASES[c][1]);
        ck_assert_uint_eq(lora_dataset_size(a), lora_dataset_size(b));
        for (size_t i = 0; i < lora_dataset_size(a); i++) {
            row x = get_row(a, i), y = get_row(b, i);
            ck_assert(same_row(&x, &y));
            free_row(&x);
            free_row(&y);
        }
        lora_dataset_free(a);
        lora_dataset_free(b);
    }
}
END_TEST

START_TEST(loss_all_counts_every_token)
{
    lora_dataset *a = load(DATA "chat.jsonl", "{\"shuffle\": false}");
    lora_dataset *d = load(DATA "chat.jsonl", "{\"shuffle\": false, \"loss\": \"all\"}");
    for (size_t i = 0; i < lora_dataset_size(d); i++) {
        row r = get_row(d, i), x = get_row(a, i);
        ck_assert_uint_eq(r.n, x.n);
        ck_assert_int_eq(memcmp(r.ids, x.ids, r.n * 4), 0);
        size_t masked = 0;
        for (size_t k = 0; k < r.n; k++) {
            ck_assert_int_eq(r.labels[k], r.ids[k]);
            masked += x.labels[k] == IGNORE;
        }
        ck_assert_uint_gt(masked, 0);  /* the default does mask the non-assistant part */
        free_row(&r);
        free_row(&x);
    }
    json_t *s = stats(d);
    ck_assert_int_eq(stat_int(s, "loss_tokens"), stat_int(s, "tokens"));
    json_decref(s);
    lora_dataset_free(a);
    lora_dataset_free(d);
}
END_TEST

/* The "chat" options reach the renderer: the ids are those of lora_chat_render's text. */
START_TEST(chat_options_are_used)
{
    static const char MSGS[] = "[{\"role\": \"user\", \"content\": \"What is 2+2?\"}, "
                               "{\"role\": \"assistant\", \"content\": \"4\"}]";
    static const char OPTS[] = "{\"format\": \"Q: {q} A:\"}";
    char line[512];
    snprintf(line, sizeof line, "{\"messages\": %s}\n", MSGS);
    char *path = tmp_text(line);
    char json[256];
    snprintf(json, sizeof json, "{\"chat\": %s}", OPTS);
    lora_dataset *d = load(path, json);
    lora_tokenizer *t = tok();
    char *text = NULL;
    ck_assert_msg(lora_chat_render(t, MSGS, OPTS, &text) == LORA_OK, "%s", lora_last_error());
    int32_t ids[256];
    size_t n = 0;
    ck_assert(lora_tokenizer_encode(t, text, strlen(text), 0, ids, 256, &n) == LORA_OK);
    row r = get_row(d, 0);
    ck_assert_uint_eq(r.n, n);
    ck_assert_int_eq(memcmp(r.ids, ids, n * 4), 0);
    ck_assert_ptr_nonnull(strstr(text, "Q: What is 2+2? A:"));
    free_row(&r);
    lora_string_free(text);
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

/* CRLF endings, a byte order mark and a last line without a newline read as plain LF. */
START_TEST(crlf_bom_and_last_line)
{
    char *lf = tmp_text("{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
    char *crlf = tmp_text("\xEF\xBB\xBF{\"text\": \"one\"}\r\n\r\n{\"text\": \"two\"}");
    lora_dataset *a = load(lf, "{\"shuffle\": false}");
    lora_dataset *b = load(crlf, "{\"shuffle\": false}");
    ck_assert_uint_eq(lora_dataset_size(a), 2);
    ck_assert_uint_eq(lora_dataset_size(b), 2);
    for (size_t i = 0; i < 2; i++) {
        row x = get_row(a, i), y = get_row(b, i);
        ck_assert(same_row(&x, &y));
        free_row(&x);
        free_row(&y);
    }
    json_t *s = stats(b);
    ck_assert_int_eq(stat_int(s, "lines"), 2);
    json_decref(s);
    lora_dataset_free(a);
    lora_dataset_free(b);
    drop_file(lf);
    drop_file(crlf);
}
END_TEST

/* ---- truncation and padding ------------------------------------------------------------- */

START_TEST(truncation_keeps_the_prefix)
{
    lora_dataset *full = load(DATA "text.jsonl", "{\"shuffle\": false}");
    lora_dataset *cut = load(DATA "text.jsonl", "{\"shuffle\": false, \"max_length\": 6}");
    size_t truncated = 0;
    for (size_t i = 0; i < lora_dataset_size(full); i++) {
        row f = get_row(full, i), c = get_row(cut, i);
        ck_assert_uint_eq(c.n, f.n < 6 ? f.n : 6);
        ck_assert_int_eq(memcmp(c.ids, f.ids, c.n * 4), 0);
        ck_assert_int_eq(memcmp(c.labels, f.labels, c.n * 4), 0);
        truncated += f.n > 6;
        free_row(&f);
        free_row(&c);
    }
    ck_assert_uint_gt(truncated, 0);
    json_t *s = stats(cut);
    ck_assert_int_eq(stat_int(s, "truncated"), (long long)truncated);
    ck_assert_int_eq(stat_int(s, "max_length"), 6);
    ck_assert_int_eq(stat_int(s, "tokens"), 12);
    json_decref(s);
    lora_dataset_free(full);
    lora_dataset_free(cut);
}
END_TEST

/* A conversation cut before its assistant turn has no loss: a bad line. */
START_TEST(truncation_to_no_loss_is_a_bad_line)
{
    const char *json = "{\"max_length\": 8}";
    ck_assert_int_eq(load_fails(DATA "chat.jsonl", json), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), DATA "chat.jsonl:1: no token in the loss"));
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "max_length 8"));
    /* lenient: all three conversations go, so nothing is left */
    ck_assert_int_eq(load_fails(DATA "chat.jsonl", "{\"max_length\": 8, \"strict\": false}"),
                     LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "no usable sample"));
}
END_TEST

START_TEST(batch_is_right_padded)
{
    lora_dataset *d = load(DATA "prompt_completion.jsonl", "{\"shuffle\": false}");
    row r0 = get_row(d, 0), r1 = get_row(d, 1);
    size_t seq = r0.n > r1.n ? r0.n : r1.n, cap = 2 * 1024;
    int32_t *ids = malloc(cap * 4), *labels = malloc(cap * 4), *pos = malloc(cap * 4);
    size_t s = 0, rows = 0;
    ck_assert(lora_dataset_next_batch(d, 2, ids, labels, pos, cap, &s, &rows) == LORA_OK);
    ck_assert_uint_eq(s, seq);
    ck_assert_uint_eq(rows, 2);
    const row *want[2] = {&r0, &r1};
    for (size_t b = 0; b < 2; b++)
        for (size_t k = 0; k < seq; k++) {
            size_t at = b * seq + k;
            if (k < want[b]->n) {
                ck_assert_int_eq(ids[at], want[b]->ids[k]);
                ck_assert_int_eq(labels[at], want[b]->labels[k]);
            } else {
                ck_assert_int_eq(ids[at], PAD_ID);
                ck_assert_int_eq(labels[at], IGNORE);
            }
            ck_assert_int_eq(pos[at], (int32_t)k);
        }
    ck_assert_uint_ne(r0.n, r1.n);  /* the fixture does need padding */
    free_row(&r0);
    free_row(&r1);
    free(ids);
    free(labels);
    free(pos);
    lora_dataset_free(d);
}
END_TEST

/* ---- packing ---------------------------------------------------------------------------- */

static const size_t DIGITS[] = {5, 3, 9, 1, 7, 2, 2, 6, 4, 8, 3, 1, 5, 9, 2, 6, 4, 7, 1, 3};
#define N_DIGITS (sizeof DIGITS / sizeof DIGITS[0])

START_TEST(packing_never_splits_a_sample)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *plain = load(path, "{\"shuffle\": false, \"loss\": \"all\"}");
    lora_dataset *packed = load(path, "{\"shuffle\": false, \"loss\": \"all\", "
                                      "\"packing\": true, \"max_length\": 16}");
    size_t total = 0, seen[N_DIGITS] = {0}, segments = 0;
    for (size_t i = 0; i < N_DIGITS; i++) {
        row r = get_row(plain, i);
        ck_assert_uint_eq(r.n, DIGITS[i] + 1);  /* one token per digit, then eos */
        total += r.n;
        free_row(&r);
    }
    ck_assert_uint_lt(lora_dataset_size(packed), N_DIGITS);
    for (size_t i = 0; i < lora_dataset_size(packed); i++) {
        row r = get_row(packed, i);
        ck_assert_uint_le(r.n, 16);
        for (size_t a = 0; a < r.n;) {
            ck_assert_int_eq(r.pos[a], 0);
            size_t b = a + 1;
            while (b < r.n && r.pos[b] != 0) {
                ck_assert_int_eq(r.pos[b], (int32_t)(b - a));
                b++;
            }
            ck_assert_int_eq(r.labels[a], IGNORE);
            /* the segment is a whole sample: find it among the unpacked rows */
            int32_t *want = malloc((b - a) * 4);
            memcpy(want, r.labels + a, (b - a) * 4);
            want[0] = r.ids[a];
            long k = find_row(plain, r.ids + a, want, b - a);
            free(want);
            ck_assert_msg(k >= 0, "row %zu segment at %zu is no sample", i, a);
            seen[k]++;
            segments++;
            a = b;
        }
        free_row(&r);
    }
    ck_assert_uint_eq(segments, N_DIGITS);
    for (size_t i = 0; i < N_DIGITS; i++)
        ck_assert_uint_eq(seen[i], 1);
    /* best-fit decreasing fills these rows to the bound */
    ck_assert_uint_eq(lora_dataset_size(packed), (total + 15) / 16);
    json_t *s = stats(packed);
    ck_assert_int_eq(stat_int(s, "rows"), (long long)lora_dataset_size(packed));
    ck_assert_int_eq(stat_int(s, "samples"), N_DIGITS);
    ck_assert_int_eq(stat_int(s, "tokens"), (long long)total);
    ck_assert_int_eq(stat_int(s, "loss_tokens"), (long long)(total - N_DIGITS));
    json_decref(s);
    lora_dataset_free(plain);
    lora_dataset_free(packed);
    drop_file(path);
}
END_TEST

START_TEST(packing_is_deterministic)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    const char *json = "{\"shuffle\": false, \"packing\": true, \"max_length\": 12}";
    lora_dataset *a = load(path, json), *b = load(path, json);
    ck_assert_uint_eq(lora_dataset_size(a), lora_dataset_size(b));
    for (size_t i = 0; i < lora_dataset_size(a); i++) {
        row x = get_row(a, i), y = get_row(b, i);
        ck_assert(same_row(&x, &y));
        ck_assert_int_eq(memcmp(x.pos, y.pos, x.n * 4), 0);
        free_row(&x);
        free_row(&y);
    }
    lora_dataset_free(a);
    lora_dataset_free(b);
    drop_file(path);
}
END_TEST

/* Padding a packed row keeps the positions one run, as lora_train_step_packed requires. */
START_TEST(packed_batch_positions_count_on)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *d = load(path, "{\"packing\": true, \"max_length\": 16, \"seed\": 3}");
    size_t cap = 4 * 16, seq = 0, rows = 0;
    int32_t ids[64], labels[64], pos[64];
    ck_assert(lora_dataset_next_batch(d, 4, ids, labels, pos, cap, &seq, &rows) == LORA_OK);
    ck_assert_uint_le(seq, 16);
    for (size_t b = 0; b < rows; b++) {
        ck_assert_int_eq(pos[b * seq], 0);
        ck_assert_int_eq(labels[b * seq], IGNORE);
        for (size_t k = 1; k < seq; k++)
            ck_assert(pos[b * seq + k] == 0 || pos[b * seq + k] == pos[b * seq + k - 1] + 1);
    }
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

/* ---- order: shuffling, epochs, resume ---------------------------------------------------- */

/* The file-order row index of each row of the next `count` rows from next_batch. */
static void next_rows(lora_dataset *d, size_t batch, size_t count, long *out)
{
    size_t cap = batch * 1024, got = 0;
    int32_t *ids = malloc(cap * 4), *labels = malloc(cap * 4);
    while (got < count) {
        size_t seq = 0, rows = 0;
        ck_assert(lora_dataset_next_batch(d, batch, ids, labels, NULL, cap, &seq, &rows) ==
                  LORA_OK);
        for (size_t b = 0; b < rows && got < count; b++) {
            /* the row's own length: strip the padding (label -100, pad id) at the end */
            size_t n = seq;
            long k = -1;
            for (size_t i = 0; i < lora_dataset_size(d) && k < 0; i++) {
                row r = get_row(d, i);
                if (r.n <= n && memcmp(r.ids, ids + b * seq, r.n * 4) == 0 &&
                    memcmp(r.labels, labels + b * seq, r.n * 4) == 0)
                    k = (long)i;
                free_row(&r);
            }
            ck_assert(k >= 0);
            out[got++] = k;
        }
    }
    free(ids);
    free(labels);
}

static int is_permutation(const long *order, size_t n)
{
    int *seen = calloc(n, sizeof *seen);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (order[i] < 0 || (size_t)order[i] >= n || seen[order[i]]++)
            ok = 0;
    }
    free(seen);
    return ok;
}

START_TEST(shuffle_is_seeded_and_changes_per_epoch)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    long a[2 * N_DIGITS], b[2 * N_DIGITS], c[N_DIGITS], plain[N_DIGITS];
    lora_dataset *d1 = load(path, "{\"seed\": 7}"), *d2 = load(path, "{\"seed\": 7}");
    lora_dataset *d3 = load(path, "{\"seed\": 8}"), *d4 = load(path, "{\"shuffle\": false}");
    next_rows(d1, 3, 2 * N_DIGITS, a);
    next_rows(d2, 5, 2 * N_DIGITS, b);  /* the batch size does not change the order */
    next_rows(d3, 3, N_DIGITS, c);
    next_rows(d4, 4, N_DIGITS, plain);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ck_assert(is_permutation(a, N_DIGITS));
    ck_assert(is_permutation(a + N_DIGITS, N_DIGITS));
    ck_assert(is_permutation(c, N_DIGITS));
    ck_assert_int_ne(memcmp(a, a + N_DIGITS, N_DIGITS * sizeof *a), 0);
    ck_assert_int_ne(memcmp(a, c, sizeof c), 0);
    for (size_t i = 0; i < N_DIGITS; i++)
        ck_assert_int_eq(plain[i], (long)i);
    ck_assert_int_ne(memcmp(a, plain, sizeof plain), 0);
    lora_dataset_free(d1);
    lora_dataset_free(d2);
    lora_dataset_free(d3);
    lora_dataset_free(d4);
    drop_file(path);
}
END_TEST

START_TEST(epoch_end_cuts_the_batch)
{
    lora_dataset *d = load(DATA "chat.jsonl", NULL);
    int32_t ids[2 * 1024], labels[2 * 1024];
    size_t seq, rows;
    ck_assert(lora_dataset_next_batch(d, 2, ids, labels, NULL, 2048, &seq, &rows) == LORA_OK);
    ck_assert_uint_eq(rows, 2);
    ck_assert_uint_eq(lora_dataset_position(d), 2);
    ck_assert(lora_dataset_next_batch(d, 2, ids, labels, NULL, 2048, &seq, &rows) == LORA_OK);
    ck_assert_uint_eq(rows, 1);
    ck_assert_uint_eq(lora_dataset_position(d), 3);
    ck_assert(lora_dataset_next_batch(d, 2, ids, labels, NULL, 2048, &seq, &rows) == LORA_OK);
    ck_assert_uint_eq(rows, 2);
    ck_assert_uint_eq(lora_dataset_position(d), 5);
    lora_dataset_free(d);
}
END_TEST

/* A run resumed from a saved position sees the same batches as the uninterrupted one. */
START_TEST(seek_resumes_the_same_order)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *run = load(path, "{\"seed\": 11}");
    size_t cap = 3 * 1024, seq, rows;
    int32_t *ids = malloc(cap * 4), *labels = malloc(cap * 4), *pos = malloc(cap * 4);
    for (int i = 0; i < 8; i++)  /* 24 rows: into the second epoch */
        ck_assert(lora_dataset_next_batch(run, 3, ids, labels, pos, cap, &seq, &rows) ==
                  LORA_OK);
    uint64_t saved = lora_dataset_position(run);
    ck_assert_uint_eq(saved, 8 * 3 - 1);  /* the epoch's last batch held 2 rows */
    long after[3 * N_DIGITS], resumed[3 * N_DIGITS];
    next_rows(run, 3, 3 * N_DIGITS, after);
    lora_dataset *fresh = load(path, "{\"seed\": 11}");
    ck_assert(lora_dataset_seek(fresh, saved) == LORA_OK);
    ck_assert_uint_eq(lora_dataset_position(fresh), saved);
    next_rows(fresh, 3, 3 * N_DIGITS, resumed);
    ck_assert_int_eq(memcmp(after, resumed, sizeof after), 0);
    /* seeking back to 0 replays epoch 0 */
    long first[N_DIGITS], again[N_DIGITS];
    lora_dataset *ref = load(path, "{\"seed\": 11}");
    next_rows(ref, 3, N_DIGITS, first);
    ck_assert(lora_dataset_seek(fresh, 0) == LORA_OK);
    next_rows(fresh, 3, N_DIGITS, again);
    ck_assert_int_eq(memcmp(first, again, sizeof first), 0);
    free(ids);
    free(labels);
    free(pos);
    lora_dataset_free(run);
    lora_dataset_free(fresh);
    lora_dataset_free(ref);
    drop_file(path);
}
END_TEST

/* ---- split ------------------------------------------------------------------------------ */

static void split(const lora_dataset *d, double size, uint64_t seed, lora_dataset **tr,
                  lora_dataset **te)
{
    lora_status st = lora_dataset_split(d, size, seed, tr, te);
    ck_assert_msg(st == LORA_OK, "split %g: %s", size, lora_last_error());
}

/* Each row of part is one row of whole, none twice across parts; returns how many. */
static size_t mark_rows(const lora_dataset *whole, const lora_dataset *part, int *seen)
{
    for (size_t i = 0; i < lora_dataset_size(part); i++) {
        row r = get_row(part, i);
        long k = find_row(whole, r.ids, r.labels, r.n);
        ck_assert(k >= 0);
        ck_assert_int_eq(seen[k]++, 0);
        free_row(&r);
    }
    return lora_dataset_size(part);
}

START_TEST(split_sizes_and_disjoint_parts)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *d = load(path, "{\"shuffle\": false}");
    static const struct {
        double size;
        size_t n_test;
    } CASES[] = {{0.25, 5}, {0.26, 6}, {0.01, 1}, {3, 3}, {19, 19}};
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        lora_dataset *tr, *te;
        split(d, CASES[c].size, 42, &tr, &te);
        ck_assert_uint_eq(lora_dataset_size(te), CASES[c].n_test);
        ck_assert_uint_eq(lora_dataset_size(tr), N_DIGITS - CASES[c].n_test);
        int seen[N_DIGITS] = {0};
        mark_rows(d, tr, seen);
        mark_rows(d, te, seen);
        for (size_t i = 0; i < N_DIGITS; i++)
            ck_assert_int_eq(seen[i], 1);
        json_t *s = stats(te);
        ck_assert_int_eq(stat_int(s, "samples"), (long long)CASES[c].n_test);
        json_decref(s);
        lora_dataset_free(tr);
        lora_dataset_free(te);
    }
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

START_TEST(split_is_seeded)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *d = load(path, "{\"shuffle\": false}");
    lora_dataset *tr1, *te1, *tr2, *te2, *tr3, *te3;
    split(d, 0.3, 5, &tr1, &te1);
    split(d, 0.3, 5, &tr2, &te2);
    split(d, 0.3, 6, &tr3, &te3);
    int same = 1, same3 = 1;
    for (size_t i = 0; i < lora_dataset_size(te1); i++) {
        row a = get_row(te1, i), b = get_row(te2, i), c = get_row(te3, i);
        same &= same_row(&a, &b);
        same3 &= same_row(&a, &c);
        free_row(&a);
        free_row(&b);
        free_row(&c);
    }
    ck_assert(same);
    ck_assert(!same3);
    /* a part is a dataset of its own: it outlives its parent and splits again */
    lora_dataset_free(d);
    lora_dataset_free(tr2);
    lora_dataset_free(te2);
    lora_dataset *a, *b;
    split(tr1, 0.5, 1, &a, &b);
    ck_assert_uint_eq(lora_dataset_size(a) + lora_dataset_size(b), lora_dataset_size(tr1));
    lora_dataset_free(tr1);
    row r = get_row(a, 0);
    free_row(&r);
    lora_dataset_free(a);
    lora_dataset_free(b);
    lora_dataset_free(te1);
    lora_dataset_free(tr3);
    lora_dataset_free(te3);
    drop_file(path);
}
END_TEST

START_TEST(split_keeps_options)
{
    char *path = digit_file(DIGITS, N_DIGITS);
    lora_dataset *d = load(path, "{\"packing\": true, \"max_length\": 16}");
    lora_dataset *tr, *te;
    split(d, 0.5, 0, &tr, &te);
    json_t *s = stats(tr);
    ck_assert_int_eq(stat_int(s, "samples"), 10);
    ck_assert_int_lt(stat_int(s, "rows"), 10);  /* packed */
    ck_assert_int_eq(stat_int(s, "max_length"), 16);
    json_decref(s);
    lora_dataset_free(d);
    lora_dataset_free(tr);
    lora_dataset_free(te);
    drop_file(path);
}
END_TEST

START_TEST(split_bad_sizes)
{
    lora_dataset *d = load(DATA "text.jsonl", NULL), *tr = (lora_dataset *)1, *te = tr;
    const double BAD[] = {0, -0.5, NAN, INFINITY, 1.5, 2, 3};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        ck_assert_int_eq(lora_dataset_split(d, BAD[i], 0, &tr, &te), LORA_ERR_CONFIG);
        ck_assert_ptr_null(tr);
        ck_assert_ptr_null(te);
        ck_assert_ptr_nonnull(strstr(lora_last_error(), "test_size"));
    }
    ck_assert_int_eq(lora_dataset_split(NULL, 0.5, 0, &tr, &te), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_split(d, 0.5, 0, NULL, &te), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_split(d, 0.5, 0, &tr, NULL), LORA_ERR_INVALID_ARGUMENT);
    lora_dataset_free(d);
}
END_TEST

/* ---- bad lines ---------------------------------------------------------------------------- */

static const struct {
    const char *line, *message;
} BAD_LINES[] = {
    {"{\"text\": \"abc\"", "invalid JSON: "},
    {"{\"text\": \"a\", \"text\": \"b\"}", "invalid JSON: duplicate object key"},
    {"{\"text\": \"caf\xC3\"}", "invalid UTF-8 at byte 13"},
    {"{\"text\": \"\xED\xA0\x80\"}", "invalid UTF-8 at byte 10"},
    {"[1, 2]", "not a JSON object"},
    {"{\"input\": \"x\"}", "no key 'messages', 'prompt' and 'completion', or 'text'"},
    {"{\"prompt\": \"x\"}", "missing key 'completion'"},
    {"{\"text\": 5}", "key 'text' must be a string"},
    {"{\"prompt\": \"a\", \"completion\": [\"b\"]}", "key 'completion' must be a string"},
    {"{\"messages\": \"hi\"}", "key 'messages' must be a non-empty array"},
    {"{\"messages\": []}", "key 'messages' must be a non-empty array"},
    {"{\"messages\": [\"hi\"]}", "messages[0] is not an object"},
    {"{\"messages\": [{\"content\": \"hi\"}]}", "messages[0]: key 'role' is missing"},
    {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"robot\", "
     "\"content\": \"b\"}]}",
     "messages[1]: unknown role 'robot'"},
    {"{\"messages\": [{\"role\": \"user\"}]}", "messages[0]: key 'content' is missing"},
    {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", "
     "\"content\": \"\"}]}",
     "messages[1]: empty assistant turn"},
    {"{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}",
     "no token in the loss"},
    {"{\"prompt\": \"a question\", \"completion\": \"\"}", NULL},  /* eos alone is the loss */
};
#define N_BAD (sizeof BAD_LINES / sizeof BAD_LINES[0])

static char *file_with(const char *bad)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"text\": \"good\"}\n\n%s\n{\"text\": \"also good\"}\n", bad);
    return tmp_text(text);
}

START_TEST(bad_line_strict)
{
    const char *msg = BAD_LINES[_i].message;
    char *path = file_with(BAD_LINES[_i].line);
    if (!msg) {  /* a near miss that is fine */
        lora_dataset *d = load(path, NULL);
        ck_assert_uint_eq(lora_dataset_size(d), 3);
        lora_dataset_free(d);
        drop_file(path);
        return;
    }
    ck_assert_int_eq(load_fails(path, NULL), LORA_ERR_FORMAT);
    char want[512];
    snprintf(want, sizeof want, "lora_dataset_load: %s:3: %s", path, msg);
    ck_assert_msg(strstr(lora_last_error(), want), "got '%s', want '%s'", lora_last_error(),
                  want);
    drop_file(path);
}
END_TEST

START_TEST(bad_line_lenient)
{
    if (!BAD_LINES[_i].message)
        return;
    char *path = file_with(BAD_LINES[_i].line);
    lora_dataset *d = load(path, "{\"strict\": false, \"shuffle\": false}");
    ck_assert_uint_eq(lora_dataset_size(d), 2);
    ck_assert_str_eq(lora_last_error(), "");
    json_t *s = stats(d);
    ck_assert_int_eq(stat_int(s, "skipped"), 1);
    ck_assert_int_eq(stat_int(s, "samples"), 2);
    ck_assert_int_eq(stat_int(s, "lines"), 3);
    json_t *errors = json_object_get(s, "first_errors");
    ck_assert_uint_eq(json_array_size(errors), 1);
    char want[512];
    snprintf(want, sizeof want, "%s:3: %s", path, BAD_LINES[_i].message);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(errors, 0)), want));
    json_decref(s);
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

START_TEST(long_line_is_bad_and_skipped_whole)
{
    size_t big = ((size_t)4 << 20) + 100;
    char *text = malloc(big + 64);
    size_t n = (size_t)sprintf(text, "{\"text\": \"");
    memset(text + n, 'a', big - n);
    n = big;
    n += (size_t)sprintf(text + n, "\"}\n{\"text\": \"short\"}\n");
    char *path = tmp_file(text, n);
    free(text);
    ck_assert_int_eq(load_fails(path, NULL), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), ":1: line longer than 4194304 bytes"));
    lora_dataset *d = load(path, "{\"strict\": false}");
    ck_assert_uint_eq(lora_dataset_size(d), 1);
    json_t *s = stats(d);
    ck_assert_int_eq(stat_int(s, "skipped"), 1);
    json_decref(s);
    row r = get_row(d, 0);
    ck_assert_uint_eq(r.n, 2);  /* "short" and eos: the next line starts where it should */
    free_row(&r);
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

START_TEST(explicit_format_with_wrong_keys)
{
    ck_assert_int_eq(load_fails(DATA "text.jsonl", "{\"format\": \"messages\"}"),
                     LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "text.jsonl:1: missing key 'messages'"));
    ck_assert_int_eq(load_fails(DATA "chat.jsonl", "{\"format\": \"text\"}"), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "chat.jsonl:1: missing key 'text'"));
    ck_assert_int_eq(load_fails(DATA "auto.jsonl", "{\"format\": \"prompt_completion\"}"),
                     LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "auto.jsonl:1: missing key 'prompt'"));
}
END_TEST

START_TEST(lenient_keeps_the_first_errors)
{
    char text[2048] = "";
    for (int i = 0; i < 7; i++)
        strcat(text, "{oops}\n");
    strcat(text, "{\"text\": \"fine\"}\n");
    char *path = tmp_text(text);
    lora_dataset *d = load(path, "{\"strict\": false}");
    json_t *s = stats(d);
    ck_assert_int_eq(stat_int(s, "skipped"), 7);
    ck_assert_int_eq(stat_int(s, "lines"), 8);
    json_t *errors = json_object_get(s, "first_errors");
    ck_assert_uint_eq(json_array_size(errors), 5);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(errors, 4)), ":5: invalid"));
    json_decref(s);
    lora_dataset_free(d);
    drop_file(path);
}
END_TEST

START_TEST(no_usable_sample)
{
    char *empty = tmp_text(""), *blank = tmp_text("\n  \r\n\t\n"), *bad = tmp_text("{}\n[]\n");
    ck_assert_int_eq(load_fails(empty, NULL), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "no usable sample (0 lines)"));
    ck_assert_int_eq(load_fails(blank, "{\"strict\": false}"), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "no usable sample"));
    ck_assert_int_eq(load_fails(bad, "{\"strict\": false}"), LORA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "2 lines, 2 bad"));
    drop_file(empty);
    drop_file(blank);
    drop_file(bad);
}
END_TEST

START_TEST(missing_file_is_io)
{
    ck_assert_int_eq(load_fails("tests/fixtures/data/no-such.jsonl", NULL), LORA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "tests/fixtures/data/no-such.jsonl"));
}
END_TEST

/* ---- statistics -------------------------------------------------------------------------- */

/* The numbers add up to expected.jsonl's for the same file. */
START_TEST(stats_match_expected)
{
    static const char *const FILES[] = {"chat.jsonl", "prompt_completion.jsonl", "text.jsonl",
                                        "auto.jsonl"};
    for (size_t f = 0; f < 4; f++) {
        long long tokens = 0, loss = 0, samples = 0, lines = 0;
        FILE *e = fopen(DATA "expected.jsonl", "r");
        char line[65536];
        while (fgets(line, sizeof line, e)) {
            json_t *o = json_loads(line, 0, NULL);
            if (strcmp(json_string_value(json_object_get(o, "file")), FILES[f]) == 0) {
                json_t *labels = json_object_get(o, "labels");
                tokens += (long long)json_array_size(labels);
                for (size_t k = 0; k < json_array_size(labels); k++)
                    loss += json_integer_value(json_array_get(labels, k)) != IGNORE;
                samples++;
                lines++;
            }
            json_decref(o);
        }
        fclose(e);
        char path[256];
        snprintf(path, sizeof path, DATA "%s", FILES[f]);
        lora_dataset *d = load(path, NULL);
        json_t *s = stats(d);
        ck_assert_int_eq(stat_int(s, "samples"), samples);
        ck_assert_int_eq(stat_int(s, "rows"), samples);
        ck_assert_int_eq(stat_int(s, "lines"), lines);
        ck_assert_int_eq(stat_int(s, "skipped"), 0);
        ck_assert_int_eq(stat_int(s, "truncated"), 0);
        ck_assert_int_eq(stat_int(s, "tokens"), tokens);
        ck_assert_int_eq(stat_int(s, "loss_tokens"), loss);
        ck_assert_int_eq(stat_int(s, "max_length"), 1024);
        double share = json_real_value(json_object_get(s, "loss_share"));
        ck_assert_double_eq_tol(share, (double)loss / (double)tokens, 1e-12);
        json_decref(s);
        lora_dataset_free(d);
    }
}
END_TEST

/* ---- options ----------------------------------------------------------------------------- */

static const struct {
    const char *json, *names;
} BAD_OPTIONS[] = {
    {"{\"epochs\": 2}", "unknown key 'epochs'"},
    {"{\"max_length\": 0}", "'max_length'"},
    {"{\"max_length\": -3}", "'max_length'"},
    {"{\"max_length\": 10.5}", "'max_length'"},
    {"{\"max_length\": \"10\"}", "'max_length'"},
    {"{\"max_length\": 100000000}", "'max_length'"},
    {"{\"packing\": 1}", "'packing'"},
    {"{\"shuffle\": \"yes\"}", "'shuffle'"},
    {"{\"strict\": 0}", "'strict'"},
    {"{\"seed\": -1}", "'seed'"},
    {"{\"seed\": 1.5}", "'seed'"},
    {"{\"format\": \"csv\"}", "'format'"},
    {"{\"format\": 1}", "'format'"},
    {"{\"loss\": \"completion\"}", "'loss'"},
    {"{\"chat\": \"qwen3\"}", "'chat'"},
    {"[1]", "must be a JSON object"},
    {"{max_length: 3}", "not valid JSON"},
};
#define N_BAD_OPTIONS (sizeof BAD_OPTIONS / sizeof BAD_OPTIONS[0])

START_TEST(bad_option_names_the_key)
{
    ck_assert_int_eq(load_fails(DATA "text.jsonl", BAD_OPTIONS[_i].json), LORA_ERR_CONFIG);
    ck_assert_msg(strstr(lora_last_error(), BAD_OPTIONS[_i].names), "%s: %s",
                  BAD_OPTIONS[_i].json, lora_last_error());
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_dataset_load"));
}
END_TEST

START_TEST(null_options_are_defaults)
{
    lora_dataset *d = load(DATA "text.jsonl", "{\"max_length\": null, \"seed\": null}");
    json_t *s = stats(d);
    ck_assert_int_eq(stat_int(s, "max_length"), 1024);
    json_decref(s);
    lora_dataset_free(d);
}
END_TEST

/* A bad chat option is the configuration's fault, not a line's: it fails lenient loads too. */
START_TEST(bad_chat_option_fails_the_load)
{
    lora_status st =
        load_fails(DATA "chat.jsonl", "{\"strict\": false, \"chat\": {\"colour\": 1}}");
    ck_assert_int_eq(st, LORA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "colour"));
}
END_TEST

/* ---- misuse ------------------------------------------------------------------------------ */

START_TEST(load_misuse)
{
    lora_tokenizer *t = tok();
    lora_dataset *d = (lora_dataset *)1;
    ck_assert_int_eq(lora_dataset_load(NULL, DATA "text.jsonl", NULL, &d),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    d = (lora_dataset *)1;
    ck_assert_int_eq(lora_dataset_load(t, NULL, NULL, &d), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(lora_dataset_load(t, DATA "text.jsonl", NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    lora_dataset_free(NULL);
    ck_assert_uint_eq(lora_dataset_size(NULL), 0);
    ck_assert_ptr_null(lora_dataset_stats_json(NULL));
    ck_assert_uint_eq(lora_dataset_position(NULL), 0);
    ck_assert_int_eq(lora_dataset_seek(NULL, 3), LORA_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(row_misuse)
{
    lora_dataset *d = load(DATA "text.jsonl", NULL);
    int32_t ids[4], labels[4];
    size_t n = 99;
    ck_assert_int_eq(lora_dataset_row(NULL, 0, ids, labels, NULL, 4, &n),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_row(d, 0, NULL, labels, NULL, 4, &n),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_row(d, 0, ids, NULL, NULL, 4, &n), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_row(d, 0, ids, labels, NULL, 4, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_row(d, 2, ids, labels, NULL, 4, &n), LORA_ERR_RANGE);
    ck_assert_int_eq(lora_dataset_row(d, 0, ids, labels, NULL, 4, &n), LORA_ERR_RANGE);
    ck_assert_uint_eq(n, 12);  /* the length comes back when it does not fit */
    lora_dataset_free(d);
}
END_TEST

START_TEST(next_batch_misuse)
{
    lora_dataset *d = load(DATA "text.jsonl", "{\"shuffle\": false}");
    int32_t ids[64], labels[64];
    size_t seq = 0, rows = 0;
    ck_assert_int_eq(lora_dataset_next_batch(NULL, 1, ids, labels, NULL, 64, &seq, &rows),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_next_batch(d, 0, ids, labels, NULL, 64, &seq, &rows),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_next_batch(d, 1, NULL, labels, NULL, 64, &seq, &rows),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_next_batch(d, 1, ids, NULL, NULL, 64, &seq, &rows),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_next_batch(d, 1, ids, labels, NULL, 64, NULL, &rows),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_dataset_next_batch(d, 1, ids, labels, NULL, 64, &seq, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(lora_dataset_position(d), 0);
    ck_assert_int_eq(lora_dataset_next_batch(d, 2, ids, labels, NULL, 23, &seq, &rows),
                     LORA_ERR_RANGE);
    ck_assert_uint_eq(lora_dataset_position(d), 0);  /* the position did not move */
    ck_assert_uint_eq(rows, 2);  /* the shape that did not fit */
    ck_assert_uint_eq(seq, 12);
    ck_assert_int_eq(lora_dataset_next_batch(d, 2, ids, labels, NULL, 24, &seq, &rows), LORA_OK);
    ck_assert_uint_eq(lora_dataset_position(d), 2);
    lora_dataset_free(d);
}
END_TEST

static Suite *dataset_suite(void)
{
    Suite *suite = suite_create("dataset");
    TCase *fmt = tcase_create("formats");
    tcase_add_unchecked_fixture(fmt, tokenizer_setup, tokenizer_teardown);
    tcase_set_tags(fmt, "core");
    tcase_set_timeout(fmt, 60);
    tcase_add_test(fmt, ids_and_labels_match_hf);
    tcase_add_test(fmt, explicit_format_equals_auto);
    tcase_add_test(fmt, loss_all_counts_every_token);
    tcase_add_test(fmt, chat_options_are_used);
    tcase_add_test(fmt, crlf_bom_and_last_line);
    tcase_add_test(fmt, stats_match_expected);
    suite_add_tcase(suite, fmt);

    TCase *len = tcase_create("lengths");
    tcase_add_unchecked_fixture(len, tokenizer_setup, tokenizer_teardown);
    tcase_set_tags(len, "core");
    tcase_set_timeout(len, 60);
    tcase_add_test(len, truncation_keeps_the_prefix);
    tcase_add_test(len, truncation_to_no_loss_is_a_bad_line);
    tcase_add_test(len, batch_is_right_padded);
    tcase_add_test(len, packing_never_splits_a_sample);
    tcase_add_test(len, packing_is_deterministic);
    tcase_add_test(len, packed_batch_positions_count_on);
    suite_add_tcase(suite, len);

    TCase *order = tcase_create("order");
    tcase_add_unchecked_fixture(order, tokenizer_setup, tokenizer_teardown);
    tcase_set_tags(order, "core");
    tcase_set_timeout(order, 60);
    tcase_add_test(order, shuffle_is_seeded_and_changes_per_epoch);
    tcase_add_test(order, epoch_end_cuts_the_batch);
    tcase_add_test(order, seek_resumes_the_same_order);
    tcase_add_test(order, split_sizes_and_disjoint_parts);
    tcase_add_test(order, split_is_seeded);
    tcase_add_test(order, split_keeps_options);
    suite_add_tcase(suite, order);

    TCase *bad = tcase_create("bad_lines");
    tcase_add_unchecked_fixture(bad, tokenizer_setup, tokenizer_teardown);
    tcase_set_tags(bad, "limits");
    tcase_set_timeout(bad, 60);
    tcase_add_loop_test(bad, bad_line_strict, 0, N_BAD);
    tcase_add_loop_test(bad, bad_line_lenient, 0, N_BAD);
    tcase_add_test(bad, long_line_is_bad_and_skipped_whole);
    tcase_add_test(bad, explicit_format_with_wrong_keys);
    tcase_add_test(bad, lenient_keeps_the_first_errors);
    tcase_add_test(bad, no_usable_sample);
    tcase_add_test(bad, missing_file_is_io);
    suite_add_tcase(suite, bad);

    TCase *opt = tcase_create("options");
    tcase_add_unchecked_fixture(opt, tokenizer_setup, tokenizer_teardown);
    tcase_set_tags(opt, "misuse");
    tcase_set_timeout(opt, 60);
    tcase_add_loop_test(opt, bad_option_names_the_key, 0, N_BAD_OPTIONS);
    tcase_add_test(opt, null_options_are_defaults);
    tcase_add_test(opt, bad_chat_option_fails_the_load);
    tcase_add_test(opt, split_bad_sizes);
    tcase_add_test(opt, load_misuse);
    tcase_add_test(opt, row_misuse);
    tcase_add_test(opt, next_batch_misuse);
    suite_add_tcase(suite, opt);
    return suite;
}

int main(void) { return tu_run_suite(dataset_suite()); }
