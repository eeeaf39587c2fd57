/* Lines of a JSONL file with their numbers, bounded in length; UTF-8 validation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "data/dataset.h"
#include "util/alloc.h"

lora_status lora__jsonl_open(lora__jsonl *r, const char *path)
{
    *r = (lora__jsonl){0};
    r->f = fopen(path, "rb");
    if (!r->f)
        return lora__error(LORA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return LORA_OK;
}

void lora__jsonl_close(lora__jsonl *r)
{
    if (r->f)
        fclose(r->f);
    free(r->buf);
    *r = (lora__jsonl){0};
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Reads one physical line into r->buf. Past the limit, bytes are read and dropped so that the
 * next line starts in the right place. */
static lora_status read_line(lora__jsonl *r, size_t *len, int *too_long)
{
    size_t n = 0;
    int c;
    *too_long = 0;
    while ((c = getc_unlocked(r->f)) != EOF && c != '\n') {
        if (n >= LORA__MAX_LINE_BYTES) {
            *too_long = 1;
            continue;
        }
        if (n + 2 > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            char *b = lora__realloc(r->buf, cap);
            if (!b)
                return lora__oom("a JSONL line", cap);
            r->buf = b;
            r->cap = cap;
        }
        r->buf[n++] = (char)c;
    }
    if (ferror(r->f))
        return lora__error(LORA_ERR_IO, "line %zu: read error", r->line + 1);
    if (c == EOF)
        r->eof = 1;
    *len = n;
    return LORA_OK;
}

lora_status lora__jsonl_next(lora__jsonl *r, const char **line, size_t *len,
                             lora__line_kind *kind)
{
    while (!r->eof) {
        size_t n = 0;
        int too_long = 0;
        lora_status st = read_line(r, &n, &too_long);
        if (st != LORA_OK)
            return st;
        if (r->eof && n == 0 && !too_long)
            break;
        r->line++;
        char *s = r->buf;
        /* A byte order mark some editors write at the start of a file. */
        if (r->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
        if (too_long) {
            *kind = LORA__LINE_TOO_LONG;
            *line = "";
            *len = 0;
            return LORA_OK;
        }
        if (is_blank(s, n))
            continue;
        if (s[n - 1] == '\r')
            n--;
        s[n] = '\0';
        *kind = LORA__LINE_OK;
        *line = s;
        *len = n;
        return LORA_OK;
    }
    *kind = LORA__LINE_END;
    *line = NULL;
    *len = 0;
    return LORA_OK;
}

size_t lora__utf8_invalid_at(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= need)
            return i;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return len;
}
