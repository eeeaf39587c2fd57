/* JSON text in and out, whole or not at all, also when memory runs out (jansson 2.14 gets both
 * directions wrong then, akheron/jansson#362 and #655).
 *
 * json_dumps ignores a failed append while writing an object key and can return text with the
 * key missing; json_dumpb into a buffer of the measured size cannot fail that way.
 * json_loads ignores a failed append to its token buffer and then asserts or reads past it, so
 * the parse is not exposed to injected allocation failures (see util/alloc.h); a real failure
 * there is jansson's to handle. */
#ifndef LORA_UTIL_JSON_TEXT_H
#define LORA_UTIL_JSON_TEXT_H

#include <jansson.h>

/* As json_dumps: a malloc'd NUL-terminated text, NULL when out of memory. */
char *lora__json_dumps(const json_t *j, size_t flags);
/* As json_loads / json_loadb. */
json_t *lora__json_loads(const char *text, size_t flags, json_error_t *err);
json_t *lora__json_loadb(const char *text, size_t len, size_t flags, json_error_t *err);

#endif
