#include "lora.h"

LORA_API int lora_version_major(void) { return LORA_VERSION_MAJOR; }
LORA_API int lora_version_minor(void) { return LORA_VERSION_MINOR; }
LORA_API int lora_version_patch(void) { return LORA_VERSION_PATCH; }
LORA_API const char *lora_version_string(void) { return LORA_VERSION_STRING; }
LORA_API int lora_abi_version(void) { return LORA_ABI_VERSION; }
