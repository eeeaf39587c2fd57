/* What a merge changed, so that unmerge can put it back bit for bit. */
#ifndef LORA_ADAPTER_MERGE_H
#define LORA_ADAPTER_MERGE_H

struct lora_merge;
void lora__merge_free(struct lora_merge *mg); /* NULL is a no-op */

#endif
