/* lora_device_memory: the CUDA backend's process-wide count of what it holds per device. */
#include "api/error.h"
#include "lora.h"
#ifdef LORA_CUDA
#include "cuda/backend_cuda.h"
#endif

LORA_API lora_status lora_device_memory(const char *device, uint64_t *in_use_out,
                                        uint64_t *peak_out, int reset_peak)
{
    if (!device)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_device_memory: device is NULL");
#ifdef LORA_CUDA
    int ordinal;
    lora_status st = lora__cuda_parse_device(device, &ordinal);
    if (st)
        return lora__error_prefix(LORA_ERR_INVALID_ARGUMENT, "lora_device_memory");
    if (ordinal >= LORA_CUDA_COUNTED_DEVICES)
        return lora__error(LORA_ERR_INVALID_ARGUMENT, "lora_device_memory: device '%.32s': "
                           "memory is counted on cuda:0..cuda:%d", device,
                           LORA_CUDA_COUNTED_DEVICES - 1);
    size_t in_use, peak;
    lora__cuda_device_memory(ordinal, &in_use, &peak, reset_peak != 0);
    if (in_use_out)
        *in_use_out = in_use;
    if (peak_out)
        *peak_out = peak;
    return LORA_OK;
#else
    (void)in_use_out, (void)peak_out, (void)reset_peak;
    return lora__error(LORA_ERR_DEVICE, "lora_device_memory: device '%.32s': this build of "
                       "liblora has no CUDA backend", device);
#endif
}
