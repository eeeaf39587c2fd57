#!/bin/sh
# A Python script with the bindings' liblora on the CUDA emulator: make parity-cuda-emu runs
# tests/gpu/hf_parity.py so (liblora on "cuda" against transformers + PEFT on the CPU, every
# row, before a GPU runs it), make test tests/cuda_emu/bindings_smoke.py. What this proves is
# the scripts and the backend's paths from Python, not the device's rounding
# (docs/cuda-emulator.md). The process needs:
# - the emulator's liblora.so.0 (build/emu/lib), with the ASan runtimes and libcudaemu
#   preloaded: the kernels are instrumented, and the emulator's thread-local state needs the
#   static block; no leak report (the interpreter's own allocations);
# - the emulator's cuBLASLt by path (LORA_CUBLASLT): a process with PyTorch has loaded the real
#   one, which the loader would hand liblora for the soname;
# - torch, where it is there, seeing no device (torch_sees_no_device/sitecustomize.py): the
#   oracle stays on the CPU.
# Usage: tests/cuda_emu/python.sh PYTHON SCRIPT [ARGS...]
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
PYTHONPATH=$PWD/tests/cuda_emu/torch_sees_no_device:$PWD/bindings/python \
PYTHONUNBUFFERED=1 \
    exec "$py" "$@"
