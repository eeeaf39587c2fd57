/* tokenizer.json: the BPE model (vocab, merges), added tokens, normalizer, pre-tokenizer and
 * decoder, checked key by key. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "tokenizer/bytelevel.h"
#include "tokenizer/internal.h"
#include "util/alloc.h"
#include "util/json_text.h"

/* GPT-2's split, which ByteLevel applies itself when its use_regex is true. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* Digits(individual_digits) then ByteLevel's GPT-2 split (SmolLM, StarCoder) as one regex: a
 * digit is a piece of its own, no other piece holds a digit, and the end of a piece before a
 * digit counts as the end of the text for the whitespace lookahead. */
static const char digits_gpt2_regex[] =
    "\\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?![^\\s\\p{N}])|\\s+";

typedef struct parse_ctx {
    lora_tokenizer *t;
    const char *path;
    const char **vocab_text;  /* (LORA__MAX_TOKEN_ID sized lazily) byte-level text per id */
    size_t vocab_ids;         /* vocab's largest id + 1 */
    size_t tokens;            /* entries of model.vocab and of added_tokens */
} parse_ctx;

/* Ids may leave gaps, but not many: every per-id table is sized by the largest id, so one huge
 * id in a small file would cost its size in memory and time. Checked before any is sized. */
static lora_status check_id_span(const parse_ctx *c, size_t n_ids)
{
    if (n_ids <= 4 * c->tokens + 1024)
        return LORA_OK;
    return lora__error(LORA_ERR_FORMAT, "%s: the largest token id is %zu for %zu tokens: ids "
                       "this sparse are refused (at most 4 x tokens + 1024 ids)", c->path,
                       n_ids - 1, c->tokens);
}

static lora_status bad(const parse_ctx *c, const char *key, const char *what)
{
    return lora__error(LORA_ERR_FORMAT, "%s: key '%s' %s", c->path, key, what);
}

static lora_status unsupported(const parse_ctx *c, const char *key, const char *what)
{
    return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s' %s", c->path, key, what);
}

/* An optional boolean (absent or null: dflt). */
static lora_status get_bool(const parse_ctx *c, const json_t *o, const char *key,
                            const char *where, int dflt, int *out)
{
    const json_t *v = json_object_get(o, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return LORA_OK;
    if (!json_is_boolean(v)) {
        char k[128];
        snprintf(k, sizeof k, "%s.%s", where, key);
        return bad(c, k, "must be true or false");
    }
    *out = json_is_true(v);
    return LORA_OK;
}

static const char *type_of(const json_t *o)
{
    const json_t *v = json_object_get(o, "type");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static lora_status parse_vocab(parse_ctx *c, const json_t *vocab)
{
    if (!json_is_object(vocab))
        return bad(c, "model.vocab", vocab ? "must be an object of token: id" : "is missing");
    lora_tokenizer *t = c->t;
    size_t n = json_object_size(vocab);
    lora_status st = lora__strmap_init(&t->vocab, n);
    if (st)
        return st;
    const char *key;
    json_t *v;
    size_t max_id = 0;
    json_object_foreach((json_t *)vocab, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= LORA__MAX_TOKEN_ID)
            return lora__error(LORA_ERR_FORMAT, "%s: key 'model.vocab' entry '%.64s': id must be "
                               "an integer in 0..%d", c->path, key, LORA__MAX_TOKEN_ID - 1);
        if ((size_t)id + 1 > max_id)
            max_id = (size_t)id + 1;
    }
    c->vocab_ids = max_id;
    c->tokens += n;
    if ((st = check_id_span(c, max_id)))
        return st;
    c->vocab_text = lora__calloc(max_id ? max_id : 1, sizeof *c->vocab_text);
    if (!c->vocab_text)
        return lora__oom("vocabulary", max_id * sizeof *c->vocab_text);
    json_object_foreach((json_t *)vocab, key, v) {
        size_t id = (size_t)json_integer_value(v);
        if (c->vocab_text[id])
            return lora__error(LORA_ERR_FORMAT, "%s: key 'model.vocab': id %zu is given to both "
                               "'%.64s' and '%.64s'", c->path, id, c->vocab_text[id], key);
        c->vocab_text[id] = key;
        if ((st = lora__strmap_put(&t->vocab, key, strlen(key), (int64_t)id, NULL, NULL)))
            return st;
    }
    return LORA_OK;
}

static int32_t vocab_id(const lora_tokenizer *t, const char *s, size_t n)
{
    return (int32_t)lora__strmap_get(&t->vocab, s, n);
}

/* One merge: "a b" or ["a", "b"]. */
static lora_status merge_parts(const parse_ctx *c, const json_t *m, size_t i, const char **a,
                               size_t *na, const char **b, size_t *nb)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        const char *sp = strchr(s, ' ');
        if (sp && !strchr(sp + 1, ' ')) {
            *a = s;
            *na = (size_t)(sp - s);
            *b = sp + 1;
            *nb = strlen(sp + 1);
            return LORA_OK;
        }
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *na = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *nb = json_string_length(json_array_get(m, 1));
        return LORA_OK;
    }
    return lora__error(LORA_ERR_FORMAT, "%s: key 'model.merges' entry %zu must be \"a b\" or "
                       "[\"a\", \"b\"]", c->path, i);
}

static lora_status parse_merges(parse_ctx *c, const json_t *merges)
{
    if (!json_is_array(merges))
        return bad(c, "model.merges", merges ? "must be an array" : "is missing");
    lora_tokenizer *t = c->t;
    size_t n = json_array_size(merges);
    if (n >= UINT32_MAX)
        return bad(c, "model.merges", "has too many entries");
    lora_status st = lora__u64map_init(&t->merges, n);
    char *joined = NULL;
    size_t joined_cap = 0;
    for (size_t i = 0; i < n && !st; i++) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if ((st = merge_parts(c, json_array_get(merges, i), i, &a, &na, &b, &nb)))
            break;
        if (na + nb + 1 > joined_cap) {
            joined_cap = 2 * (na + nb + 1);
            free(joined);
            if (!(joined = lora__malloc(joined_cap))) {
                st = lora__oom("merge", joined_cap);
                break;
            }
        }
        memcpy(joined, a, na);
        memcpy(joined + na, b, nb);
        int32_t ia = vocab_id(t, a, na), ib = vocab_id(t, b, nb);
        int32_t im = vocab_id(t, joined, na + nb);
        if (ia < 0 || ib < 0 || im < 0) {
            const char *which = ia < 0 ? a : ib < 0 ? b : joined;
            int wn = (int)(ia < 0 ? na : ib < 0 ? nb : na + nb);
            st = lora__error(LORA_ERR_FORMAT, "%s: key 'model.merges' entry %zu: '%.*s' is not in "
                             "the vocabulary", c->path, i, wn > 64 ? 64 : wn, which);
            break;
        }
        /* a pair listed twice keeps its last rank, as Hugging Face's map does */
        st = lora__u64map_set(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib,
                              (uint64_t)i << 32 | (uint32_t)im);
    }
    free(joined);
    return st;
}

static lora_status parse_model(parse_ctx *c, const json_t *model)
{
    lora_tokenizer *t = c->t;
    if (!json_is_object(model))
        return bad(c, "model", model ? "must be an object" : "is missing");
    const char *type = type_of(model);
    if (!type)
        return bad(c, "model.type", "is missing or not a string");
    if (strcmp(type, "BPE") != 0)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'model.type' = '%.32s': only BPE models "
                           "are supported", c->path, type);
    const json_t *v = json_object_get(model, "dropout");
    if (v && !json_is_null(v))
        return unsupported(c, "model.dropout", "must be null (BPE dropout is not supported)");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(model, affixes[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
            char k[64];
            snprintf(k, sizeof k, "model.%s", affixes[i]);
            return unsupported(c, k, "must be null or \"\"");
        }
    }
    int byte_fallback;
    lora_status st = get_bool(c, model, "byte_fallback", "model", 0, &byte_fallback);
    if (!st && byte_fallback)
        return unsupported(c, "model.byte_fallback", "must be false");
    if (!st)
        st = get_bool(c, model, "fuse_unk", "model", 0, &t->fuse_unk);
    if (!st)
        st = get_bool(c, model, "ignore_merges", "model", 0, &t->ignore_merges);
    if (!st)
        st = parse_vocab(c, json_object_get(model, "vocab"));
    if (!st)
        st = parse_merges(c, json_object_get(model, "merges"));
    if (st)
        return st;
    t->unk_id = -1;
    v = json_object_get(model, "unk_token");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return bad(c, "model.unk_token", "must be a string or null");
        t->unk_id = vocab_id(t, json_string_value(v), json_string_length(v));
        if (t->unk_id < 0)
            return bad(c, "model.unk_token", "is not in the vocabulary");
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t n = lora__bytelevel_encode((const unsigned char *)&b, 1, s);
        t->byte_id[b] = vocab_id(t, s, n);
    }
    return LORA_OK;
}

static lora_status parse_added(parse_ctx *c, const json_t *list)
{
    lora_tokenizer *t = c->t;
    if (!list || json_is_null(list))
        return lora__strmap_init(&t->added_map, 1);
    if (!json_is_array(list))
        return bad(c, "added_tokens", "must be an array");
    size_t n = json_array_size(list);
    t->added = lora__calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return lora__oom("added tokens", n * sizeof *t->added);
    lora_status st = lora__strmap_init(&t->added_map, n);
    for (size_t i = 0; i < n && !st; i++) {
        const json_t *o = json_array_get(list, i);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        const json_t *id = json_object_get(o, "id"), *content = json_object_get(o, "content");
        if (!json_is_object(o))
            return bad(c, where, "must be an object");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= LORA__MAX_TOKEN_ID) {
            char k[64];
            snprintf(k, sizeof k, "%s.id", where);
            return bad(c, k, "must be an integer id");
        }
        if (!json_is_string(content) || json_string_length(content) == 0) {
            char k[64];
            snprintf(k, sizeof k, "%s.content", where);
            return bad(c, k, "must be a non-empty string");
        }
        lora__added_token *a = &t->added[t->n_added];
        int flags[5];
        static const char *const names[5] = {"special", "lstrip", "rstrip", "single_word",
                                             "normalized"};
        for (int f = 0; f < 5 && !st; f++)
            st = get_bool(c, o, names[f], where, f == 4, &flags[f]);
        if (st)
            return st;
        a->id = (int32_t)json_integer_value(id);
        a->len = json_string_length(content);
        a->content = lora__malloc(a->len + 1);
        if (!a->content)
            return lora__oom("added token", a->len + 1);
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->special = (unsigned char)flags[0];
        a->lstrip = (unsigned char)flags[1];
        a->rstrip = (unsigned char)flags[2];
        a->single_word = (unsigned char)flags[3];
        a->normalized = (unsigned char)flags[4];
        t->n_added++;
        int inserted;
        int64_t prev;
        st = lora__strmap_put(&t->added_map, a->content, a->len, (int64_t)(t->n_added - 1),
                              &inserted, &prev);
        if (!st && !inserted)
            return lora__error(LORA_ERR_FORMAT, "%s: key '%s': content '%.64s' is listed twice",
                               c->path, where, a->content);
        unsigned char first = (unsigned char)a->content[0];
        t->added_first[first] |= (unsigned char)(1 | (a->special ? 0 : 2));
    }
    for (size_t i = 0; i < t->n_added && !st; i++)
        for (size_t j = 0; j < i; j++)
            if (t->added[i].id == t->added[j].id)
                return lora__error(LORA_ERR_FORMAT, "%s: key 'added_tokens': id %d is given to "
                                   "both '%.64s' and '%.64s'", c->path, (int)t->added[i].id,
                                   t->added[j].content, t->added[i].content);
    return st;
}

/* Per-id tables: kind and the bytes each id decodes to (an added token's content wins over a
 * vocabulary entry with its id). */
static lora_status build_ids(parse_ctx *c)
{
    lora_tokenizer *t = c->t;
    size_t n = c->vocab_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > n)
            n = (size_t)t->added[i].id + 1;
    lora_status st = check_id_span(c, n);
    if (st)
        return st;
    t->n_ids = n;
    const char **added_text = lora__calloc(n ? n : 1, sizeof *added_text);
    t->kind = lora__calloc(n ? n : 1, 1);
    t->raw_off = lora__calloc(n + 1, sizeof *t->raw_off);
    if (!added_text || !t->kind || !t->raw_off) {
        free(added_text);
        return lora__oom("token table", n * (1 + 2 * sizeof(size_t)));
    }
    for (size_t i = 0; i < t->n_added; i++) {
        added_text[t->added[i].id] = t->added[i].content;
        t->kind[t->added[i].id] = t->added[i].special ? LORA__ID_SPECIAL : LORA__ID_ADDED;
    }
    size_t total = 0;
    for (size_t id = 0; id < n; id++) {
        const char *s = added_text[id] ? added_text[id] : id < c->vocab_ids ? c->vocab_text[id] : NULL;
        if (s && !t->kind[id])
            t->kind[id] = LORA__ID_VOCAB;
        total += s ? strlen(s) : 0;
    }
    t->raw = lora__malloc(total ? total : 1);
    if (!t->raw) {
        free(added_text);
        return lora__oom("token bytes", total);
    }
    size_t off = 0;
    for (size_t id = 0; id < n; id++) {
        t->raw_off[id] = off;
        if (added_text[id]) {
            size_t k = strlen(added_text[id]);
            memcpy(t->raw + off, added_text[id], k);
            off += k;
        } else if (id < c->vocab_ids && c->vocab_text[id]) {
            off += lora__bytelevel_decode(c->vocab_text[id], strlen(c->vocab_text[id]), t->raw + off);
        }
    }
    t->raw_off[n] = off;
    free(added_text);
    return LORA_OK;
}

static lora_status parse_normalizer(parse_ctx *c, const json_t *n)
{
    if (!n || json_is_null(n))
        return LORA_OK;
    const char *type = type_of(n);
    if (!type)
        return bad(c, "normalizer.type", "is missing or not a string");
    if (strcmp(type, "NFC") != 0)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'normalizer.type' = '%.32s': only NFC "
                           "(or none) is supported", c->path, type);
    c->t->nfc = 1;
    return LORA_OK;
}

/* A ByteLevel pre-tokenizer; *use_regex gets its use_regex (default true, as in HF). */
static lora_status parse_bytelevel(const parse_ctx *c, const json_t *o, const char *where,
                                   int *use_regex)
{
    int prefix;
    lora_status st = get_bool(c, o, "add_prefix_space", where, 1, &prefix);
    if (!st && prefix) {
        char k[96];
        snprintf(k, sizeof k, "%s.add_prefix_space", where);
        return unsupported(c, k, "must be false");
    }
    return st ? st : get_bool(c, o, "use_regex", where, 1, use_regex);
}

static lora_status parse_split(parse_ctx *c, const json_t *o, const char *where)
{
    char k[96];
    const json_t *b = json_object_get(o, "behavior");
    if (!json_is_string(b) || strcmp(json_string_value(b), "Isolated") != 0) {
        snprintf(k, sizeof k, "%s.behavior", where);
        return json_is_string(b) ? unsupported(c, k, "must be \"Isolated\"")
                                 : bad(c, k, "is missing or not a string");
    }
    int invert;
    lora_status st = get_bool(c, o, "invert", where, 0, &invert);
    if (!st && invert) {
        snprintf(k, sizeof k, "%s.invert", where);
        return unsupported(c, k, "must be false");
    }
    if (st)
        return st;
    const json_t *p = json_object_get(o, "pattern");
    const json_t *re = json_object_get(p, "Regex"), *lit = json_object_get(p, "String");
    snprintf(k, sizeof k, "%s.pattern", where);
    if (!json_is_string(re) && !json_is_string(lit))
        return bad(c, k, "must be {\"Regex\": ...} or {\"String\": ...}");
    const json_t *s = json_is_string(re) ? re : lit;
    char w[256];
    snprintf(w, sizeof w, "%s: key '%s'", c->path, k);
    return lora__pretok_compile(&c->t->pre, json_string_value(s), json_string_length(s),
                                !json_is_string(re), w);
}

/* Digits with individual_digits: each digit a piece of its own (merged runs are not supported). */
static lora_status parse_digits(const parse_ctx *c, const json_t *o, const char *where)
{
    int individual;
    lora_status st = get_bool(c, o, "individual_digits", where, 0, &individual);
    if (!st && !individual) {
        char k[96];
        snprintf(k, sizeof k, "%s.individual_digits", where);
        return unsupported(c, k, "must be true");
    }
    return st;
}

static lora_status parse_pretokenizer(parse_ctx *c, const json_t *p)
{
    if (!json_is_object(p))
        return unsupported(c, "pre_tokenizer", "must be ByteLevel, Sequence[Split, ByteLevel] or "
                           "Sequence[Digits, ByteLevel]");
    const char *type = type_of(p);
    int use_regex = 0;
    lora_status st;
    if (type && strcmp(type, "ByteLevel") == 0) {
        if ((st = parse_bytelevel(c, p, "pre_tokenizer", &use_regex)))
            return st;
        if (!use_regex)
            return LORA_OK;
        char w[256];
        snprintf(w, sizeof w, "%s: ByteLevel's GPT-2 regex", c->path);
        return lora__pretok_compile(&c->t->pre, gpt2_regex, strlen(gpt2_regex), 0, w);
    }
    if (!type || strcmp(type, "Sequence") != 0)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'pre_tokenizer.type' = '%.32s': only "
                           "ByteLevel, Sequence[Split, ByteLevel] and Sequence[Digits, ByteLevel] "
                           "are supported", c->path,
                           type ? type : "(none)");
    const json_t *list = json_object_get(p, "pretokenizers");
    if (!json_is_array(list))
        return bad(c, "pre_tokenizer.pretokenizers", "must be an array");
    int have_split = 0, have_digits = 0, have_bytelevel = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *o = json_array_get(list, i);
        const char *ty = type_of(o);
        char where[64];
        snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%zu]", i);
        if (ty && strcmp(ty, "Split") == 0 && !have_split && !have_digits && !have_bytelevel) {
            st = parse_split(c, o, where);
            have_split = 1;
        } else if (ty && strcmp(ty, "Digits") == 0 && !have_split && !have_digits &&
                   !have_bytelevel) {
            st = parse_digits(c, o, where);
            have_digits = 1;
        } else if (ty && strcmp(ty, "ByteLevel") == 0 && !have_bytelevel) {
            st = parse_bytelevel(c, o, where, &use_regex);
            if (!st && use_regex != have_digits) {
                char k[96];
                snprintf(k, sizeof k, "%s.use_regex", where);
                st = unsupported(c, k, have_digits ? "must be true after Digits"
                                                   : "must be false after a Split");
            }
            if (!st && have_digits) {
                char w[256];
                snprintf(w, sizeof w, "%s: Digits and ByteLevel's GPT-2 regex", c->path);
                st = lora__pretok_compile(&c->t->pre, digits_gpt2_regex,
                                          strlen(digits_gpt2_regex), 0, w);
            }
            have_bytelevel = 1;
        } else {
            char k[96];
            snprintf(k, sizeof k, "%s.type", where);
            return lora__error(LORA_ERR_UNSUPPORTED, "%s: key '%s' = '%.32s': only one Split "
                               "or Digits followed by one ByteLevel is supported", c->path, k,
                               ty ? ty : "(none)");
        }
        if (st)
            return st;
    }
    if (!have_bytelevel)
        return unsupported(c, "pre_tokenizer.pretokenizers", "lacks a ByteLevel pre-tokenizer");
    return LORA_OK;
}

static lora_status parse_decoder(const parse_ctx *c, const json_t *d)
{
    const char *type = json_is_object(d) ? type_of(d) : NULL;
    if (!type || strcmp(type, "ByteLevel") != 0)
        return lora__error(LORA_ERR_UNSUPPORTED, "%s: key 'decoder.type' = '%.32s': only the "
                           "ByteLevel decoder is supported", c->path, type ? type : "(none)");
    return LORA_OK;
}

lora_status lora__tokenizer_parse(lora_tokenizer *t, const char *text, size_t len,
                                  const char *path)
{
    json_error_t jerr;
    json_t *root = lora__json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lora__error(LORA_ERR_FORMAT, "%s: line %d column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    parse_ctx c = {.t = t, .path = path};
    const json_t *added = json_object_get(root, "added_tokens");
    c.tokens = json_is_array(added) ? json_array_size(added) : 0;
    lora_status st = json_is_object(root) ? LORA_OK
                                          : lora__error(LORA_ERR_FORMAT, "%s: not a JSON object",
                                                        path);
    if (!st)
        st = parse_model(&c, json_object_get(root, "model"));
    if (!st)
        st = parse_added(&c, json_object_get(root, "added_tokens"));
    if (!st)
        st = build_ids(&c);
    if (!st)
        st = parse_normalizer(&c, json_object_get(root, "normalizer"));
    if (!st)
        st = parse_pretokenizer(&c, json_object_get(root, "pre_tokenizer"));
    if (!st)
        st = parse_decoder(&c, json_object_get(root, "decoder"));
    free(c.vocab_text);
    json_decref(root);
    return st;
}
