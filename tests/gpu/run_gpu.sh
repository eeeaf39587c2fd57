#!/bin/sh
# The CUDA backend's checks in one call, on a machine with a GPU: builds with CUDA=1, runs
# tests/check_cuda.c (every op against the CPU backend) plain and under ASan+UBSan, and fails
# when a GPU case was skipped: on this machine that means the device was not usable.
# Usage: tests/gpu/run_gpu.sh [OUT_DIR]   (logs there; default $OUT, else build/gpu)
set -u
cd "$(dirname "$0")/../.." || exit 1
out=${1:-${OUT:-build/gpu}}
mkdir -p "$out"
fail=0

{ nvidia-smi; echo; make --version | head -n 1; ldconfig -p | grep -E 'libcudnn(_graph)?\.so'; } \
    > "$out/device.txt" 2>&1
start=$(date +%s)
if [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || command -v nvcc > /dev/null; then
    if ! make -j"$(nproc)" CUDA=1 build/tests/check_cuda build/asan-tests/check_cuda \
            > "$out/build.log" 2>&1; then
        tail -n 60 "$out/build.log"; echo "run_gpu: build FAILED"; exit 1
    fi
    echo "run_gpu: built in $(( $(date +%s) - start ))s"
elif [ -x build/tests/check_cuda ] && [ -x build/asan-tests/check_cuda ]; then
    echo "run_gpu: no nvcc here: running the suites built elsewhere (carried in build/)"
else
    echo "run_gpu: no nvcc and no built suites: build with CUDA=1 first and carry"
    echo "  build/tests/check_cuda and build/asan-tests/check_cuda"; exit 1
fi

# one suite run: its log, the runner's result line, and no GPU case skipped
run() {
    name=$1; shift
    start=$(date +%s)
    env "$@" tests/run_checks.sh "$out/$name.result" "$bin" > "$out/$name.log" 2>&1 || fail=1
    grep -E '^[0-9]+%: Checks:|^check_cuda:|skipped:|:[EF]:' "$out/$name.log"
    if grep -q 'skipped: no CUDA device' "$out/$name.log"; then
        echo "run_gpu: $name: GPU cases were skipped on the GPU machine: FAILED"; fail=1
    fi
    echo "run_gpu: $name: $(cat "$out/$name.result") (passed failed skipped)," \
         "$(( $(date +%s) - start ))s"
}

bin=build/tests/check_cuda
run check_cuda
# ASan's shadow gap is address space the CUDA driver maps: protect_shadow_gap=0 leaves it
# usable; the suppressions name only the NVIDIA libraries' own allocations.
bin=build/asan-tests/check_cuda
run check_cuda_asan ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 \
    LSAN_OPTIONS=suppressions=tests/gpu/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

[ "$fail" -eq 0 ] && echo "run_gpu: all passed" || echo "run_gpu: FAILED (logs in $out)"
exit "$fail"
