#!/bin/sh
# The CUDA backend's checks in one call, on a machine with a GPU: builds with CUDA=1, runs
# tests/check_cuda.c (every op against the CPU backend) and tests/check_cuda_model.c (the
# decoder on the GPU against the CPU) plain and under ASan+UBSan, golden_check --device cuda on
# every fixture, and lora bench --device cuda (train and decode, on the tiny model and on a
# random checkpoint of Qwen2.5-0.5B's config made in the out folder and removed after), and
# tests/gpu/hf_parity.py where torch, transformers and peft import (PYTHON= picks the
# interpreter); fails
# when a GPU case was skipped (on this machine that means the device was not usable), a golden
# check fails or a benchmark does not finish.
# Usage: tests/gpu/run_gpu.sh [OUT_DIR]   (logs there; default $OUT, else build/gpu)
set -u
cd "$(dirname "$0")/../.." || exit 1
out=${1:-${OUT:-build/gpu}}
mkdir -p "$out"
fail=0

. tests/gpu/cudnn_path.sh
{ nvidia-smi; echo; make --version | head -n 1; ldconfig -p | grep -E 'libcudnn(_graph)?\.so'
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; } > "$out/device.txt" 2>&1
start=$(date +%s)
if [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || command -v nvcc > /dev/null; then
    if ! make -j"$(nproc)" CUDA=1 build/tests/check_cuda build/asan-tests/check_cuda \
            build/tests/check_cuda_model build/asan-tests/check_cuda_model tests/golden_check \
            bin/lora > "$out/build.log" 2>&1; then
        tail -n 60 "$out/build.log"; echo "run_gpu: build FAILED"; exit 1
    fi
    echo "run_gpu: built in $(( $(date +%s) - start ))s"
elif [ -x build/tests/check_cuda ] && [ -x build/asan-tests/check_cuda ] &&
     [ -x build/tests/check_cuda_model ] && [ -x tests/golden_check ] && [ -x bin/lora ]; then
    echo "run_gpu: no nvcc here: running the suites built elsewhere (carried in build/)"
else
    echo "run_gpu: no nvcc and no built suites: build with CUDA=1 first and carry"
    echo "  build/tests/check_cuda*, build/asan-tests/check_cuda*, tests/golden_check, bin/lora"; exit 1
fi

# one suite run: its log, the runner's result line, and no GPU case skipped
run() {
    name=$1; shift
    start=$(date +%s)
    env "$@" tests/run_checks.sh "$out/$name.result" "$bin" > "$out/$name.log" 2>&1 || fail=1
    grep -E '^[0-9]+%: Checks:|^check_cuda[a-z_]*:|skipped:|:[EF]:' "$out/$name.log"
    if grep -q 'skipped: no CUDA device' "$out/$name.log"; then
        echo "run_gpu: $name: GPU cases were skipped on the GPU machine: FAILED"; fail=1
    fi
    echo "run_gpu: $name: $(cat "$out/$name.result") (passed failed skipped)," \
         "$(( $(date +%s) - start ))s"
}

for suite in check_cuda check_cuda_model; do
    bin=build/tests/$suite
    run $suite
    # ASan's shadow gap is address space the CUDA driver maps: protect_shadow_gap=0 leaves it
    # usable; the suppressions name only the NVIDIA libraries' own allocations.
    if [ -x build/asan-tests/$suite ]; then
        bin=build/asan-tests/$suite
        run ${suite}_asan ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 \
            LSAN_OPTIONS=suppressions=tests/gpu/lsan.supp \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    fi
done

# the fixtures on the GPU: bf16 math with the bf16 tolerances, fp32 math with the CPU's (x4)
for d in tests/fixtures/*/; do
    [ -f "$d/golden.safetensors" ] || continue
    name=$(basename "$d")
    for math in bf16 fp32; do
        log=$out/golden_${name}_$math.log
        if tests/golden_check --device cuda --math $math "$d" > "$log" 2>&1; then r=passed
        else r=FAILED; fail=1; fi
        echo "run_gpu: golden_check --device cuda --math $math $name: $(tail -n 1 "$log") $r"
    done
done

# speed on the GPU: the numbers are reported, only a failed run fails
bench() {
    log=$out/bench_$1.log; shift
    if bin/lora bench "$@" > "$log" 2>&1; then
        echo "run_gpu: lora bench $*: $(grep -Eo '(train|decode)_tokens_per_s=[0-9.]+' "$log")"
    else
        echo "run_gpu: lora bench $*: FAILED: $(tail -n 1 "$log")"; fail=1
    fi
}
bench tiny_train_cuda --model tests/fixtures/tiny-qwen2 --mode train --device cuda --steps 10
bench tiny_decode_cuda --model tests/fixtures/tiny-qwen2 --mode decode --device cuda --new 64
bench tiny_decode_cuda_lora --model tests/fixtures/tiny-qwen2 --mode decode --device cuda \
    --new 64 --rank 16
big=tests/fixtures/qwen2.5-0.5b-config
if [ -f "$big/config.json" ] &&
   bin/lora init --config "$big/config.json" --out "$out/qwen2.5-0.5b" --dtype bf16 \
       > "$out/init.log" 2>&1; then
    bench q05_train_cuda --model "$out/qwen2.5-0.5b" --mode train --device cuda --seq 1024 \
        --batch 4 --steps 5
    bench q05_decode_cuda --model "$out/qwen2.5-0.5b" --mode decode --device cuda --new 128
    bench q05_decode_cuda_lora --model "$out/qwen2.5-0.5b" --mode decode --device cuda \
        --new 128 --rank 16
    rm -rf "$out/qwen2.5-0.5b"
fi

# against transformers + PEFT (tests/gpu/hf_parity.py), where this machine's Python has them
py=${PYTHON:-python3}
if "$py" -c 'import torch, transformers, peft' > /dev/null 2>&1; then
    start=$(date +%s)
    if "$py" tests/gpu/hf_parity.py > "$out/hf_parity.log" 2>&1; then r=passed
    else r=FAILED; fail=1; fi
    echo "run_gpu: hf_parity: $(grep -E '^hf_parity' "$out/hf_parity.log" | tr '\n' ' ')$r," \
         "$(( $(date +%s) - start ))s"
else
    echo "run_gpu: hf_parity: skipped: $py has no torch, transformers and peft"
fi

[ "$fail" -eq 0 ] && echo "run_gpu: all passed" || echo "run_gpu: FAILED (logs in $out)"
exit "$fail"
