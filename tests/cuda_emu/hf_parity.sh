#!/bin/sh
# tests/gpu/hf_parity.py on the CUDA emulator, before a GPU runs it: liblora on "cuda" in both
# math modes against transformers + PEFT on the CPU, every row, from Python. The harness and
# the backend's paths from the bindings are what this proves (the emulator's rounding is not
# the device's: docs/cuda-emulator.md). It needs, in one process beside PyTorch:
# - the emulator's liblora.so.0 (build/emu/lib, the ASan runtimes and libcudaemu preloaded:
#   the kernels are instrumented, and the emulator's thread-local state needs the static block);
# - the emulator's cuBLASLt by path (LORA_CUBLASLT): torch has loaded the real one, which the
#   loader would hand liblora for the soname;
# - torch seeing no device (torch_sees_no_device/sitecustomize.py), the oracle on the CPU.
# Usage: tests/cuda_emu/hf_parity.sh PYTHON [hf_parity.py options]   (make parity-cuda-emu)
set -eu
cd "$(dirname "$0")/../.."
py=$1; shift
emu=$PWD/build/emu/lib
major=$(sed -n 's/^#define CUBLAS_VER_MAJOR //p' "${CUDA_HOME:-/usr/local/cuda}/include/cublas_api.h")
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so):$emu/libcudaemu.so" \
ASAN_OPTIONS=detect_leaks=0 \
LIBLORA_PATH=$emu/liblora.so.0 \
LORA_CUBLASLT=$emu/libcublasLt.so.$major \
LD_LIBRARY_PATH=$emu \
PYTHONPATH=$PWD/tests/cuda_emu/torch_sees_no_device \
PYTHONUNBUFFERED=1 \
    exec "$py" tests/gpu/hf_parity.py "$@"
