"""On PYTHONPATH for tests/cuda_emu/hf_parity.sh: with the CUDA emulator preloaded, the CUDA
runtime torch calls is the emulator's, which reports a device, and torch (safetensors, PEFT)
would then put tensors there; the oracle must stay on the CPU, so torch sees no device."""
import torch

torch.cuda.is_available = lambda: False
torch.cuda.device_count = lambda: 0
