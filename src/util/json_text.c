#include "util/json_text.h"

#include <stdlib.h>

#include "util/alloc.h"

char *lora__json_dumps(const json_t *j, size_t flags)
{
    /* 0 is never the size of a valid text: it means the walk itself ran out of memory */
    size_t n = json_dumpb(j, NULL, 0, flags);
    char *text = n ? lora__malloc(n + 1) : NULL;
    if (text && json_dumpb(j, text, n, flags) != n) {
        free(text);
        return NULL;
    }
    if (text)
        text[n] = '\0';
    return text;
}

json_t *lora__json_loadb(const char *text, size_t len, size_t flags, json_error_t *err)
{
    lora__fault_hold(1);
    json_t *j = json_loadb(text, len, flags, err);
    lora__fault_hold(-1);
    return j;
}

json_t *lora__json_loads(const char *text, size_t flags, json_error_t *err)
{
    lora__fault_hold(1);
    json_t *j = json_loads(text, flags, err);
    lora__fault_hold(-1);
    return j;
}
