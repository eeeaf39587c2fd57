"""On PYTHONPATH for tests/cuda_emu/python.sh: with the CUDA emulator preloaded, the CUDA
runtime torch calls is the emulator's, which reports a device, and torch (safetensors, PEFT)
would then put tensors there; the oracle must stay on the CPU, so torch sees no device. An
interpreter without torch is left as it is."""
try:
    import torch
except ImportError:
    torch = None

if torch is not None:
    torch.cuda.is_available = lambda: False
    torch.cuda.device_count = lambda: 0
