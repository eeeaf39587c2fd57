#!/bin/sh
# The CUDA backend's checks in one call, on a machine with a GPU: builds with CUDA=1 (unless
# LORA_GPU_PREBUILT=1: tests/gpu/device_run.sh unpacked bundle.sh's files), then runs, most
# telling first: tests/check_cuda.c (every op against the CPU backend) and
# tests/check_cuda_model.c (the decoder on the GPU against the CPU), golden_check --device cuda
# on every fixture, tests/gpu/hf_parity.py where torch, transformers and peft import (PYTHON=
# picks the interpreter), lora bench --device cuda (train and decode, on the tiny model and on
# a random checkpoint of Qwen2.5-0.5B's config made in the out folder and removed after), and
# last the two suites again under ASan+UBSan. Fails when a GPU case was skipped (on this
# machine that means the device was not usable), a check or golden check fails, a benchmark
# does not finish, or a part was left out because LORA_GPU_DEADLINE (epoch seconds) had passed.
# Usage: tests/gpu/run_gpu.sh [OUT_DIR]   (logs there; default $OUT, else build/gpu)
set -u
cd "$(dirname "$0")/../.." || exit 1
out=${1:-${OUT:-build/gpu}}
mkdir -p "$out"
fail=0

. tests/gpu/lib_path.sh
{ nvidia-smi; echo; make --version | head -n 1; ldconfig -p | grep -E 'libcudnn(_graph)?\.so'
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; } > "$out/device.txt" 2>&1
built="build/tests/check_cuda build/asan-tests/check_cuda build/tests/check_cuda_model
       build/asan-tests/check_cuda_model tests/golden_check bin/lora"
start=$(date +%s)
if [ "${LORA_GPU_PREBUILT:-0}" = 1 ]; then
    for f in $built; do
        [ -x "$f" ] || { echo "run_gpu: LORA_GPU_PREBUILT=1 but no $f"; exit 1; }
    done
    echo "run_gpu: running the prebuilt suites (tests/gpu/bundle.sh)"
elif [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || command -v nvcc > /dev/null; then
    # shellcheck disable=SC2086
    if ! make -j"$(nproc)" CUDA=1 $built > "$out/build.log" 2>&1; then
        tail -n 60 "$out/build.log"; echo "run_gpu: build FAILED"; exit 1
    fi
    echo "run_gpu: built in $(( $(date +%s) - start ))s"
else
    echo "run_gpu: no nvcc and no prebuilt suites: make them with tests/gpu/bundle.sh and carry"
    echo "  build/gpu-bundle.tar.xz to tests/gpu/device_run.sh"; exit 1
fi

# whether part $1 may start: not once LORA_GPU_DEADLINE has passed (then it is left out,
# visibly, and the run fails: what was not run has not passed)
in_time() {
    if [ -n "${LORA_GPU_DEADLINE:-}" ] && [ "$(date +%s)" -ge "$LORA_GPU_DEADLINE" ]; then
        echo "run_gpu: $1: not run: out of time (LORA_GPU_DEADLINE)"; fail=1; return 1
    fi
}

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
    in_time $suite && run $suite
done

# the fixtures on the GPU: bf16 math with the bf16 tolerances, fp32 math with the CPU's (x4)
for d in tests/fixtures/*/; do
    [ -f "$d/golden.safetensors" ] || continue
    name=$(basename "$d")
    for math in bf16 fp32; do
        in_time "golden_check $name $math" || continue
        log=$out/golden_${name}_$math.log
        if tests/golden_check --device cuda --math $math "$d" > "$log" 2>&1; then r=passed
        else r=FAILED; fail=1; fi
        echo "run_gpu: golden_check --device cuda --math $math $name: $(tail -n 1 "$log") $r"
    done
done

# against transformers + PEFT (tests/gpu/hf_parity.py), where this machine's Python has them
py=${PYTHON:-python3}
if ! "$py" -c 'import torch, transformers, peft' > /dev/null 2>&1; then
    echo "run_gpu: hf_parity: skipped: $py has no torch, transformers and peft"
elif in_time hf_parity; then
    start=$(date +%s)
    if "$py" tests/gpu/hf_parity.py > "$out/hf_parity.log" 2>&1; then r=passed
    else r=FAILED; fail=1; fi
    echo "run_gpu: hf_parity: $(grep -E '^hf_parity' "$out/hf_parity.log" | tr '\n' ' ')$r," \
         "$(( $(date +%s) - start ))s"
fi

# speed on the GPU: the numbers are reported, only a failed run fails
bench() {
    in_time "lora bench $1" || return
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
# the random checkpoint (about 1 GB) outside the out folder, which may be packed and sent back
big=tests/fixtures/qwen2.5-0.5b-config
ckpt=$(mktemp -d)/qwen2.5-0.5b
if [ -f "$big/config.json" ] && in_time "lora init qwen2.5-0.5b" &&
   bin/lora init --config "$big/config.json" --out "$ckpt" --dtype bf16 \
       > "$out/init.log" 2>&1; then
    bench q05_train_cuda --model "$ckpt" --mode train --device cuda --seq 1024 \
        --batch 4 --steps 5
    bench q05_decode_cuda --model "$ckpt" --mode decode --device cuda --new 128
    bench q05_decode_cuda_lora --model "$ckpt" --mode decode --device cuda \
        --new 128 --rank 16
fi
rm -rf "$(dirname "$ckpt")"

# last, the suites under ASan+UBSan: ASan's shadow gap is address space the CUDA driver maps
# (protect_shadow_gap=0 leaves it usable); the suppressions name only the NVIDIA libraries' own
# allocations
for suite in check_cuda check_cuda_model; do
    bin=build/asan-tests/$suite
    in_time ${suite}_asan && run ${suite}_asan ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 \
        LSAN_OPTIONS=suppressions=tests/gpu/lsan.supp \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
done

[ "$fail" -eq 0 ] && echo "run_gpu: all passed" || echo "run_gpu: FAILED (logs in $out)"
exit "$fail"
