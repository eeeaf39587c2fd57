"""Device memory: what liblora holds on a GPU."""

from ctypes import byref, c_uint64

from ._lib import check, lib


def device_memory(device="cuda", reset_peak=False):
    """(in_use, peak) bytes liblora's allocations hold on device ("cuda" or "cuda:N") over the
    whole process, the peak since the start or the last reset_peak=True, which restarts it at
    the current use (lora_device_memory). The CUDA context and cuBLAS/cuDNN's own memory are
    not counted. LoraDeviceError in a build without the CUDA backend."""
    used, peak = c_uint64(), c_uint64()
    check(lib.lora_device_memory(str(device).encode(), byref(used), byref(peak),
                                 1 if reset_peak else 0))
    return used.value, peak.value
