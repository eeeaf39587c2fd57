/* Chat templates: byte-exact against transformers' Jinja renderings (tests/fixtures/chat/
 * golden.jsonl, made by make_golden.py), assistant spans, recognition, format strings,
 * few-shot prompts, and the errors of malformed conversations and options. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/render.h"
#include "lora.h"
#include "util/file.h"
#include "util/suite.h"

#define DIR "tests/fixtures/chat/"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *read_text(const char *path)
{
    char *s = NULL;
    ck_assert_msg(lora__read_file(path, 1 << 24, &s, NULL) == LORA_OK, "%s", lora_last_error());
    return s;
}

static char *template_file(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, DIR "%s", name);
    return read_text(path);
}

static json_t *parse(const char *json)
{
    json_error_t err;
    json_t *v = json_loads(json, 0, &err);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", json, err.text);
    return v;
}

/* Renders with a source; returns the status, *text (malloc'd) and spans when asked. */
static lora_status render_src(const lora__chat_source *src, const char *messages,
                              const char *options, char **text, lora__span **spans,
                              size_t *n_spans)
{
    json_t *m = parse(messages);
    json_t *o = options ? parse(options) : NULL;
    lora_status st = lora__chat_render_source(src, m, o, text, spans, n_spans);
    json_decref(m);
    json_decref(o);
    return st;
}

static char *render_ok(const lora__chat_source *src, const char *messages, const char *options)
{
    char *text = NULL;
    lora_status st = render_src(src, messages, options, &text, NULL, NULL);
    ck_assert_msg(st == LORA_OK, "render %s %s: %s", messages, options ? options : "",
                  lora_last_error());
    ck_assert_ptr_nonnull(text);
    return text;
}

static void expect_error(const lora__chat_source *src, const char *messages,
                         const char *options, lora_status want, const char *needle)
{
    char *text = (char *)"unset";
    lora__span *spans = (lora__span *)1;
    size_t n = 7;
    lora_status st = render_src(src, messages, options, &text, &spans, &n);
    ck_assert_msg(st == want, "%s %s: status %d, want %d (%s)", messages,
                  options ? options : "", st, want, lora_last_error());
    ck_assert_ptr_null(text);
    ck_assert_ptr_null(spans);
    ck_assert_uint_eq(n, 0);
    ck_assert_msg(strstr(lora_last_error(), needle), "message '%s' lacks '%s'",
                  lora_last_error(), needle);
}

static const lora__chat_source QWEN_NAMED = {.override = "qwen2.5", .eos = "<|im_end|>"};

/* ---- golden renderings ---------------------------------------------------------------------- */

static json_t *golden(void)
{
    json_t *all = json_array();
    char *s = read_text(DIR "golden.jsonl");
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
        json_array_append_new(all, parse(line));
    free(s);
    ck_assert_uint_gt(json_array_size(all), 200);
    return all;
}

static const char *str_or_null(const json_t *o, const char *key)
{
    return json_is_string(json_object_get(o, key)) ? json_string_value(json_object_get(o, key))
                                                    : NULL;
}

/* The spans a golden text must have, found from the text alone: each assistant header
 * followed (before the next header) by an end-of-turn token. */
static size_t expected_spans(const char *text, const char *header, const char *eot,
                             lora__span *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = strstr(text, header); p; p = strstr(p, header)) {
        const char *start = p + strlen(header);
        const char *end = strstr(start, eot);
        const char *next = strstr(start, "<|im_start|>");
        const char *next_l = strstr(start, "<|start_header_id|>");
        if (!next || (next_l && next_l < next))
            next = next_l;
        p = start;
        if (!end || (next && next < end))
            continue; /* the generation prompt */
        ck_assert_uint_lt(n, cap);
        out[n++] = (lora__span){(size_t)(start - text), (size_t)(end + strlen(eot) - text)};
    }
    return n;
}

START_TEST(golden_texts_byte_exact)
{
    json_t *all = golden();
    size_t i;
    json_t *g;
    json_array_foreach(all, i, g) {
        char *tpl = template_file(str_or_null(g, "template"));
        lora__chat_source src = {.template_text = tpl, .bos = str_or_null(g, "bos_token"),
                                 .eos = str_or_null(g, "eos_token")};
        char *text = NULL;
        lora_status st = lora__chat_render_source(&src, json_object_get(g, "messages"),
                                                  json_object_get(g, "options"), &text, NULL,
                                                  NULL);
        ck_assert_msg(st == LORA_OK, "line %zu (%s %s): %s", i + 1, str_or_null(g, "template"),
                      str_or_null(g, "case"), lora_last_error());
        const char *want = str_or_null(g, "text");
        ck_assert_msg(strcmp(text, want) == 0, "line %zu (%s %s): got\n%s\nwant\n%s", i + 1,
                      str_or_null(g, "template"), str_or_null(g, "case"), text, want);
        free(text);
        free(tpl);
    }
    json_decref(all);
}
END_TEST

START_TEST(golden_spans_cover_assistant_turns)
{
    json_t *all = golden();
    size_t i, checked = 0;
    json_t *g;
    json_array_foreach(all, i, g) {
        const char *name = str_or_null(g, "template");
        int llama = strncmp(name, "llama", 5) == 0;
        char *tpl = template_file(name);
        lora__chat_source src = {.template_text = tpl, .bos = str_or_null(g, "bos_token"),
                                 .eos = str_or_null(g, "eos_token")};
        char *text = NULL;
        lora__span *spans = NULL;
        size_t n = 0;
        ck_assert_int_eq(lora__chat_render_source(&src, json_object_get(g, "messages"),
                                                  json_object_get(g, "options"), &text, &spans,
                                                  &n), LORA_OK);
        lora__span want[16];
        size_t n_want = expected_spans(text,
                                       llama ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                             : "<|im_start|>assistant\n",
                                       llama ? "<|eot_id|>" : "<|im_end|>", want, 16);
        size_t assistants = 0, k;
        json_t *m;
        json_array_foreach(json_object_get(g, "messages"), k, m)
            assistants += strcmp(str_or_null(m, "role"), "assistant") == 0;
        ck_assert_msg(n == assistants && n == n_want, "line %zu: %zu spans, %zu assistant "
                      "turns, %zu in the text", i + 1, n, assistants, n_want);
        for (k = 0; k < n; k++)
            ck_assert_msg(spans[k].start == want[k].start && spans[k].end == want[k].end,
                          "line %zu span %zu: [%zu, %zu) want [%zu, %zu)", i + 1, k,
                          spans[k].start, spans[k].end, want[k].start, want[k].end);
        checked += n;
        free(spans);
        free(text);
        free(tpl);
    }
    ck_assert_uint_gt(checked, 300);
    json_decref(all);
}
END_TEST

/* A Qwen3 history turn's span is what the template writes, think block included or not. */
START_TEST(qwen3_spans_hold_emitted_turn)
{
    char *tpl = template_file("qwen3.jinja");
    lora__chat_source src = {.template_text = tpl};
    char *text = NULL;
    lora__span *spans = NULL;
    size_t n = 0;
    ck_assert_int_eq(render_src(&src,
                                "[{\"role\":\"user\",\"content\":\"q1\"},"
                                "{\"role\":\"assistant\",\"content\":\"<think>\\nr1\\n</think>\\n\\na1\"},"
                                "{\"role\":\"user\",\"content\":\"q2\"},"
                                "{\"role\":\"assistant\",\"content\":\"<think>\\nr2\\n</think>\\n\\na2\"}]",
                                NULL, &text, &spans, &n), LORA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(text + spans[0].start, "a1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
                     "<|im_start|>assistant\n<think>\nr2\n</think>\n\na2<|im_end|>\n");
    ck_assert_uint_eq(spans[0].end - spans[0].start, strlen("a1<|im_end|>"));
    ck_assert_str_eq(text + spans[1].start, "<think>\nr2\n</think>\n\na2<|im_end|>\n");
    ck_assert_uint_eq(spans[1].end, strlen(text) - 1);
    free(spans);
    free(text);
    free(tpl);
}
END_TEST

/* Llama 3.2's template dates its system header with today (transformers' strftime_now). */
START_TEST(llama32_dates_today)
{
    char *tpl = template_file("llama3.2-instruct.jinja");
    lora__chat_source src = {.template_text = tpl, .bos = "<|begin_of_text|>"};
    static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char want[128];
    snprintf(want, sizeof want, "Today Date: %02d %s %d\n\n", tm.tm_mday, MONTHS[tm.tm_mon],
             tm.tm_year + 1900);
    char *text = render_ok(&src, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL);
    ck_assert_msg(strstr(text, want), "%s lacks %s", text, want);
    free(text);
    /* forcing "llama3" is the 3.1 template: its fixed date */
    text = render_ok(&src, "[{\"role\":\"user\",\"content\":\"hi\"}]",
                     "{\"template\":\"llama3\"}");
    ck_assert_ptr_nonnull(strstr(text, "Today Date: 26 Jul 2024\n\n"));
    free(text);
    free(tpl);
}
END_TEST

/* ---- recognition ---------------------------------------------------------------------------- */

static const struct {
    const char *file;
    lora__chat_kind kind;
    lora__llama3_preamble preamble;
} FILES[] = {
    {"qwen2.5-instruct.jinja", LORA__CHAT_QWEN25, LORA__LLAMA3_NO_PREAMBLE},
    {"qwen3.jinja", LORA__CHAT_QWEN3, LORA__LLAMA3_NO_PREAMBLE},
    {"chatml.jinja", LORA__CHAT_CHATML, LORA__LLAMA3_NO_PREAMBLE},
    {"smollm2-instruct.jinja", LORA__CHAT_SMOLLM2, LORA__LLAMA3_NO_PREAMBLE},
    {"llama3.0-instruct.jinja", LORA__CHAT_LLAMA3, LORA__LLAMA3_NO_PREAMBLE},
    {"llama3.1-instruct.jinja", LORA__CHAT_LLAMA3, LORA__LLAMA3_FIXED_DATE},
    {"llama3.2-instruct.jinja", LORA__CHAT_LLAMA3, LORA__LLAMA3_TODAY},
};

START_TEST(recognises_known_templates)
{
    char *tpl = template_file(FILES[_i].file);
    lora__chat_style st = {LORA__CHAT_FORMAT, LORA__LLAMA3_NO_PREAMBLE};
    ck_assert_msg(lora__chat_style_recognise(tpl, &st), "%s not recognised", FILES[_i].file);
    ck_assert_int_eq(st.kind, FILES[_i].kind);
    if (st.kind == LORA__CHAT_LLAMA3)
        ck_assert_int_eq(st.preamble, FILES[_i].preamble);
    /* surrounding whitespace does not matter */
    size_t n = strlen(tpl);
    char *padded = malloc(n + 4);
    snprintf(padded, n + 4, "\n%s \n", tpl);
    ck_assert(lora__chat_style_recognise(padded, &st));
    /* any other change does: one byte flipped in the middle, or one dropped at the end */
    padded[1 + n / 2] ^= 0x20;
    ck_assert(!lora__chat_style_recognise(padded, &st));
    while (n && strchr(" \t\r\n", tpl[n - 1]))
        n--;
    tpl[n - 1] = '\0';
    ck_assert(!lora__chat_style_recognise(tpl, &st));
    free(padded);
    free(tpl);
}
END_TEST

START_TEST(unrecognised_template_is_unsupported)
{
    char *tpl = template_file("unrecognised-qwq-32b.jinja");
    lora__chat_source src = {.template_text = tpl};
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    expect_error(&src, msgs, NULL, LORA_ERR_UNSUPPORTED, "not one liblora recognises");
    expect_error(&src, msgs, NULL, LORA_ERR_UNSUPPORTED, "qwen2.5, qwen3, llama3, chatml");
    expect_error(&src, msgs, NULL, LORA_ERR_UNSUPPORTED, "\"template\" option");
    expect_error(&src, msgs, NULL, LORA_ERR_UNSUPPORTED, "\"chat_template\" load option");
    expect_error(&src, msgs, NULL, LORA_ERR_UNSUPPORTED, "\"format\" string");
    /* the way out the message names */
    char *text = render_ok(&src, msgs, "{\"template\":\"chatml\"}");
    ck_assert_str_eq(text, "<|im_start|>user\nhi<|im_end|>\n");
    free(text);
    lora__chat_source none = {0};
    expect_error(&none, msgs, NULL, LORA_ERR_UNSUPPORTED, "has no chat template");
    free(tpl);
}
END_TEST

/* Precedence: options' template or format, then the tokenizer's forced name, then the text. */
START_TEST(named_template_overrides)
{
    char *qwen3 = template_file("qwen3.jinja");
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    lora__chat_source src = {.template_text = qwen3, .override = "qwen2.5", .eos = "E"};
    char *text = render_ok(&src, msgs, NULL);
    ck_assert_str_eq(text, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are "
                     "a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
    free(text);
    text = render_ok(&src, msgs, "{\"template\":\"qwen3\",\"add_generation_prompt\":true,"
                     "\"enable_thinking\":false}");
    ck_assert_str_eq(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
                     "<think>\n\n</think>\n\n");
    free(text);
    text = render_ok(&src, msgs, "{\"format\":\"Q: {q} A:\"}");
    ck_assert_str_eq(text, "Q: hi A:");
    free(text);
    lora__chat_source bad = {.template_text = qwen3, .override = "mistral"};
    expect_error(&bad, msgs, NULL, LORA_ERR_CONFIG, "'mistral'");
    free(qwen3);
}
END_TEST

/* ---- format strings ------------------------------------------------------------------------- */

static const lora__chat_source FMT_SRC = {.eos = "</s>"};

START_TEST(format_one_exchange)
{
    char *text = NULL;
    lora__span *spans = NULL;
    size_t n = 0;
    ck_assert_int_eq(render_src(&FMT_SRC,
                                "[{\"role\":\"user\",\"content\":\"Capital of France?\"},"
                                "{\"role\":\"assistant\",\"content\":\"Paris\"}]",
                                "{\"format\":\"Human: {q} Assistant:\"}", &text, &spans, &n),
                     LORA_OK);
    ck_assert_str_eq(text, "Human: Capital of France? Assistant: Paris</s>");
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(spans[0].end, strlen(text));
    ck_assert_str_eq(text + spans[0].start, " Paris</s>");
    free(spans);
    free(text);
}
END_TEST

START_TEST(format_multi_turn_and_system)
{
    const char *msgs = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"a {q} b\"},"
                       "{\"role\":\"assistant\",\"content\":\"one\"},"
                       "{\"role\":\"user\",\"content\":\"c\"}]";
    char *text = render_ok(&FMT_SRC, msgs,
                           "{\"format\":\"[{system}] Human: {q} Assistant:\","
                           "\"add_generation_prompt\":true}");
    /* {system} only in the first exchange; a {q} in the content stays text */
    ck_assert_str_eq(text, "[Be brief.] Human: a {q} b Assistant: one</s>[] Human: c Assistant:");
    free(text);
    text = render_ok(&FMT_SRC, "[{\"role\":\"user\",\"content\":\"x\"}]",
                     "{\"format\":\"{system}|{q}|{q}\"}");
    ck_assert_str_eq(text, "|x|x");
    free(text);
    expect_error(&FMT_SRC, msgs, "{\"format\":\"Human: {q} Assistant:\"}", LORA_ERR_CONFIG,
                 "no {system}");
    expect_error(&FMT_SRC, "[{\"role\":\"system\",\"content\":\"s\"},"
                 "{\"role\":\"assistant\",\"content\":\"a\"}]", "{\"format\":\"{system}{q}\"}",
                 LORA_ERR_FORMAT, "message 0");
    lora__chat_source no_eos = {0};
    expect_error(&no_eos, "[{\"role\":\"user\",\"content\":\"q\"},"
                 "{\"role\":\"assistant\",\"content\":\"a\"}]", "{\"format\":\"{q}\"}",
                 LORA_ERR_CONFIG, "eos");
    text = render_ok(&no_eos, "[{\"role\":\"user\",\"content\":\"q\"}]", "{\"format\":\"{q}:\"}");
    ck_assert_str_eq(text, "q:");
    free(text);
}
END_TEST

/* ---- few-shot prompts (plain text needs no tokenizer) --------------------------------------- */

START_TEST(few_shot_plain)
{
    char *text = NULL;
    const char *ex = "[{\"q\":\"2+2\",\"a\":\"4\"},{\"q\":\"3+3\",\"a\":\"6\"}]";
    ck_assert_int_eq(lora_prompt_few_shot(NULL, ex, "5+5", NULL, &text), LORA_OK);
    ck_assert_str_eq(text, "Question: 2+2\nAnswer: 4\n\nQuestion: 3+3\nAnswer: 6\n\n"
                     "Question: 5+5\nAnswer:");
    lora_string_free(text);
    ck_assert_int_eq(lora_prompt_few_shot(NULL, ex, "5+5", "{\"system\":\"Add.\","
                                          "\"format\":\"Q: {q} => {a}\"}", &text), LORA_OK);
    ck_assert_str_eq(text, "Add.\n\nQ: 2+2 => 4\n\nQ: 3+3 => 6\n\nQ: 5+5 =>");
    lora_string_free(text);
    ck_assert_int_eq(lora_prompt_few_shot(NULL, "[]", "x {a}", "{\"chat\":false}", &text),
                     LORA_OK);
    ck_assert_str_eq(text, "Question: x {a}\nAnswer:");
    lora_string_free(text);
}
END_TEST

static void few_shot_error(const char *ex, const char *q, const char *opts, lora_status want,
                           const char *needle)
{
    char *text = (char *)"unset";
    lora_status st = lora_prompt_few_shot(NULL, ex, q, opts, &text);
    ck_assert_msg(st == want, "%s %s: %d (%s)", ex, opts ? opts : "", st, lora_last_error());
    ck_assert_ptr_null(text);
    ck_assert_msg(strstr(lora_last_error(), "lora_prompt_few_shot: "), "%s", lora_last_error());
    ck_assert_msg(strstr(lora_last_error(), needle), "'%s' lacks '%s'", lora_last_error(),
                  needle);
}

START_TEST(few_shot_errors)
{
    few_shot_error("{}", "q", NULL, LORA_ERR_FORMAT, "must be a JSON array");
    few_shot_error("[{\"q\":\"a\"}]", "q", NULL, LORA_ERR_FORMAT, "example 0");
    few_shot_error("[{\"q\":\"a\",\"a\":\"b\",\"x\":1}]", "q", NULL, LORA_ERR_FORMAT, "'x'");
    few_shot_error("[", "q", NULL, LORA_ERR_FORMAT, "not valid JSON");
    few_shot_error("[]", "q", "{\"formt\":\"x\"}", LORA_ERR_CONFIG, "'formt'");
    few_shot_error("[]", "q", "{\"format\":\"{a} {q}\"}", LORA_ERR_CONFIG, "{q}, then {a}");
    few_shot_error("[]", "q", "{\"format\":\"{q}\"}", LORA_ERR_CONFIG, "{q}, then {a}");
    few_shot_error("[]", "q", "{\"chat\":1}", LORA_ERR_CONFIG, "'chat'");
    few_shot_error("[]", "q", "{\"system\":2}", LORA_ERR_CONFIG, "'system'");
    few_shot_error("[]", "q", "{\"chat\":true}", LORA_ERR_INVALID_ARGUMENT, "tokenizer");
    few_shot_error("[]", "q", "{\"chat\":true,\"format\":\"{q}{a}\"}", LORA_ERR_CONFIG,
                   "plain prompts");
    few_shot_error("[]", "q", "{\"chat\":false,\"template\":\"qwen3\"}", LORA_ERR_CONFIG,
                   "chat prompts");
    few_shot_error("[]", "\xff", NULL, LORA_ERR_FORMAT, "UTF-8");
    char *text = NULL;
    ck_assert_int_eq(lora_prompt_few_shot(NULL, NULL, "q", NULL, &text),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_prompt_few_shot(NULL, "[]", NULL, NULL, &text),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_prompt_few_shot(NULL, "[]", "q", NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- malformed conversations and options ---------------------------------------------------- */

static const struct {
    const char *messages, *options;
    lora_status status;
    const char *needle;
} BAD[] = {
    {"{}", NULL, LORA_ERR_FORMAT, "must be a JSON array"},
    {"[]", NULL, LORA_ERR_FORMAT, "empty"},
    {"[1]", NULL, LORA_ERR_FORMAT, "message 0 is not a JSON object"},
    {"[{\"content\":\"x\"}]", NULL, LORA_ERR_FORMAT, "message 0: 'role' is missing"},
    {"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"bot\",\"content\":\"y\"}]", NULL,
     LORA_ERR_FORMAT, "message 1: unknown role 'bot'"},
    {"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"content\":\"y\"}]", NULL,
     LORA_ERR_UNSUPPORTED, "message 1: role 'tool'"},
    {"[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[]}]", NULL,
     LORA_ERR_UNSUPPORTED, "message 0: 'tool_calls'"},
    {"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]", NULL,
     LORA_ERR_FORMAT, "message 0: 'content' must be a string"},
    {"[{\"role\":\"user\"}]", NULL, LORA_ERR_FORMAT, "message 0: 'content' is missing"},
    {"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"system\",\"content\":\"y\"}]", NULL,
     LORA_ERR_FORMAT, "message 1: a system message may only come first"},
    {"[{\"role\":\"user\",\"content\":\"x\",\"reasoning_content\":\"r\"}]", NULL,
     LORA_ERR_FORMAT, "message 0: 'reasoning_content'"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"temperature\":1}", LORA_ERR_CONFIG,
     "unknown key 'temperature'"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"template\":\"mistral\"}", LORA_ERR_CONFIG,
     "qwen2.5, qwen3, llama3, chatml"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"template\":3}", LORA_ERR_CONFIG,
     "key 'template' must be a string"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"format\":\"Human:\"}", LORA_ERR_CONFIG,
     "key 'format' has no {q}"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"format\":\"{q}\",\"template\":\"qwen3\"}",
     LORA_ERR_CONFIG, "exclude each other"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"add_generation_prompt\":1}",
     LORA_ERR_CONFIG, "key 'add_generation_prompt' must be true or false"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"enable_thinking\":\"no\"}",
     LORA_ERR_CONFIG, "key 'enable_thinking'"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "{\"date_string\":5}", LORA_ERR_CONFIG,
     "key 'date_string'"},
    {"[{\"role\":\"user\",\"content\":\"x\"}]", "[]", LORA_ERR_CONFIG, "JSON object"},
};

START_TEST(bad_input_named)
{
    expect_error(&QWEN_NAMED, BAD[_i].messages, BAD[_i].options, BAD[_i].status,
                 BAD[_i].needle);
    /* internal messages carry no function name: the caller adds its own */
    ck_assert_ptr_null(strstr(lora_last_error(), "lora_"));
}
END_TEST

START_TEST(null_values_are_defaults)
{
    char *text = render_ok(&QWEN_NAMED, "[{\"role\":\"user\",\"content\":\"x\"},"
                           "{\"role\":\"assistant\",\"content\":\"y\",\"tool_calls\":null,"
                           "\"reasoning_content\":null,\"name\":\"ignored\"}]",
                           "{\"template\":null,\"format\":null,\"add_generation_prompt\":null}");
    ck_assert_ptr_nonnull(strstr(text, "<|im_start|>assistant\ny<|im_end|>\n"));
    free(text);
}
END_TEST

START_TEST(public_render_arguments)
{
    char *text = (char *)"unset";
    ck_assert_int_eq(lora_chat_render(NULL, "[]", NULL, &text), LORA_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(text);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_chat_render: tokenizer"));
    ck_assert_int_eq(lora_chat_render((const lora_tokenizer *)1, NULL, NULL, &text),
                     LORA_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lora_chat_render((const lora_tokenizer *)1, "[]", NULL, NULL),
                     LORA_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- with the real Qwen3 tokenizer ------------------------------------------------------------ */

#define QWEN_TOK "tests/fixtures/qwen-tokenizer"

static lora_tokenizer *qwen_tokenizer(const char *config)
{
    lora_tokenizer *t = NULL;
    ck_assert_msg(lora_tokenizer_load(QWEN_TOK, config, &t) == LORA_OK, "%s", lora_last_error());
    return t;
}

START_TEST(public_render_with_tokenizer)
{
    lora_tokenizer *t = qwen_tokenizer(NULL);
    char *text = NULL;
    const char *msgs = "[{\"role\":\"system\",\"content\":\"S\"},"
                       "{\"role\":\"user\",\"content\":\"Q\"}]";
    ck_assert_int_eq(lora_chat_render(t, msgs, "{\"add_generation_prompt\":true,"
                                      "\"enable_thinking\":false}", &text), LORA_OK);
    ck_assert_str_eq(text, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
                     "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    lora_string_free(text);
    /* format strings end replies with the tokenizer's eos text */
    ck_assert_int_eq(lora_chat_render(t, "[{\"role\":\"user\",\"content\":\"Q\"},"
                                      "{\"role\":\"assistant\",\"content\":\"A\"}]",
                                      "{\"format\":\"Human: {q} Assistant:\"}", &text), LORA_OK);
    ck_assert_str_eq(text, "Human: Q Assistant: A<|im_end|>");
    lora_string_free(text);
    text = (char *)"unset";
    ck_assert_int_eq(lora_chat_render(t, "[{\"role\":\"bot\",\"content\":\"x\"}]", NULL, &text),
                     LORA_ERR_FORMAT);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(lora_last_error(), "lora_chat_render: message 0: unknown role 'bot' "
                     "(system, user or assistant)");
    ck_assert_int_eq(lora_chat_render(t, "[{", NULL, &text), LORA_ERR_FORMAT);
    ck_assert_int_eq(lora_chat_render(t, msgs, "{", &text), LORA_ERR_CONFIG);
    ck_assert_int_eq(lora_chat_render(t, msgs, "{\"x\":1}", &text), LORA_ERR_CONFIG);
    ck_assert_str_eq(lora_last_error(), "lora_chat_render: unknown key 'x' (template, format, "
                     "add_generation_prompt, enable_thinking, date_string)");
    lora_tokenizer_free(t);
}
END_TEST

/* The tokenizer's load option forces a built-in over the folder's own template. */
START_TEST(tokenizer_option_forces_template)
{
    lora_tokenizer *t = qwen_tokenizer("{\"chat_template\":\"qwen2.5\"}");
    char *text = NULL;
    ck_assert_int_eq(lora_chat_render(t, "[{\"role\":\"user\",\"content\":\"Q\"}]", NULL,
                                      &text), LORA_OK);
    ck_assert_str_eq(text, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are "
                     "a helpful assistant.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n");
    lora_string_free(text);
    lora_tokenizer_free(t);
}
END_TEST

/* Each span, tokenized, is the reply's tokens and its <|im_end|>: what the dataset trains on. */
START_TEST(spans_align_with_tokens)
{
    lora_tokenizer *t = qwen_tokenizer(NULL);
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"Capital of France?\"},"
                      "{\"role\":\"assistant\",\"content\":\"Paris.\"},"
                      "{\"role\":\"user\",\"content\":\"Italy?\"},"
                      "{\"role\":\"assistant\",\"content\":\"Rome.\"}]");
    char *text = NULL;
    lora__span *spans = NULL;
    size_t n = 0;
    ck_assert_int_eq(lora__chat_render(t, m, NULL, &text, &spans, &n), LORA_OK);
    ck_assert_uint_eq(n, 2);
    int32_t im_end = -1;
    ck_assert_int_eq(lora_tokenizer_token_id(t, "<|im_end|>", &im_end), LORA_OK);
    for (size_t k = 0; k < n; k++) {
        int32_t ids[16];
        size_t got = 0;
        ck_assert_int_eq(lora_tokenizer_encode(t, text + spans[k].start,
                                               spans[k].end - spans[k].start, 0, ids, 16, &got),
                         LORA_OK);
        ck_assert_uint_ge(got, 2);
        ck_assert_int_eq(ids[got - 1], im_end);
        char *dec = NULL;
        ck_assert_int_eq(lora_tokenizer_decode(t, ids, got - 1, 0, &dec, NULL), LORA_OK);
        /* Qwen3 writes an (empty) think block into the final reply, as its template does */
        ck_assert_str_eq(dec, k ? "<think>\n\n</think>\n\nRome." : "Paris.");
        lora_string_free(dec);
    }
    free(spans);
    free(text);
    json_decref(m);
    lora_tokenizer_free(t);
}
END_TEST

START_TEST(few_shot_chat)
{
    lora_tokenizer *t = qwen_tokenizer(NULL);
    char *text = NULL;
    const char *ex = "[{\"q\":\"2+2\",\"a\":\"4\"}]";
    ck_assert_int_eq(lora_prompt_few_shot(t, ex, "3+3", "{\"system\":\"Add.\","
                                          "\"enable_thinking\":false}", &text), LORA_OK);
    ck_assert_str_eq(text, "<|im_start|>system\nAdd.<|im_end|>\n<|im_start|>user\n2+2<|im_end|>\n"
                     "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3<|im_end|>\n"
                     "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    lora_string_free(text);
    ck_assert_int_eq(lora_prompt_few_shot(t, ex, "3+3", "{\"template\":\"llama3\","
                                          "\"date_string\":\"01 Jan 2025\"}", &text), LORA_OK);
    ck_assert_str_eq(text, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                     "December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\n2+2<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\n3+3<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n");
    lora_string_free(text);
    /* a format string means plain text unless chat is asked for */
    ck_assert_int_eq(lora_prompt_few_shot(t, ex, "3+3", "{\"format\":\"{q}={a}\"}", &text),
                     LORA_OK);
    ck_assert_str_eq(text, "2+2=4\n\n3+3=");
    lora_string_free(text);
    ck_assert_int_eq(lora_prompt_few_shot(t, ex, "3+3", "{\"enable_thinking\":1}", &text),
                     LORA_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(lora_last_error(), "lora_prompt_few_shot: key 'enable_thinking'"));
    lora_tokenizer_free(t);
}
END_TEST

static Suite *chat_suite(void)
{
    Suite *suite = suite_create("chat");
    TCase *gold = tcase_create("golden");
    tcase_set_tags(gold, "core");
    tcase_set_timeout(gold, 60);
    tcase_add_test(gold, golden_texts_byte_exact);
    tcase_add_test(gold, golden_spans_cover_assistant_turns);
    tcase_add_test(gold, qwen3_spans_hold_emitted_turn);
    tcase_add_test(gold, llama32_dates_today);
    suite_add_tcase(suite, gold);

    TCase *rec = tcase_create("recognition");
    tcase_set_tags(rec, "core");
    tcase_add_loop_test(rec, recognises_known_templates, 0, (int)(sizeof FILES / sizeof FILES[0]));
    tcase_add_test(rec, unrecognised_template_is_unsupported);
    tcase_add_test(rec, named_template_overrides);
    suite_add_tcase(suite, rec);

    TCase *fmt = tcase_create("format");
    tcase_set_tags(fmt, "core");
    tcase_add_test(fmt, format_one_exchange);
    tcase_add_test(fmt, format_multi_turn_and_system);
    tcase_add_test(fmt, few_shot_plain);
    suite_add_tcase(suite, fmt);

    TCase *tok = tcase_create("tokenizer");
    tcase_set_tags(tok, "core");
    tcase_set_timeout(tok, 60);
    tcase_add_test(tok, public_render_with_tokenizer);
    tcase_add_test(tok, tokenizer_option_forces_template);
    tcase_add_test(tok, spans_align_with_tokens);
    tcase_add_test(tok, few_shot_chat);
    suite_add_tcase(suite, tok);

    TCase *mis = tcase_create("misuse");
    tcase_set_tags(mis, "misuse");
    tcase_add_loop_test(mis, bad_input_named, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(mis, null_values_are_defaults);
    tcase_add_test(mis, few_shot_errors);
    tcase_add_test(mis, public_render_arguments);
    suite_add_tcase(suite, mis);
    return suite;
}

int main(void) { return tu_run_suite(chat_suite()); }
