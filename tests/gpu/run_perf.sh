#!/bin/sh
# liblora beside transformers + PEFT on a GPU (issue 8): tests/perf/peft_compare.py at
# Qwen2.5-0.5B's and Qwen2.5-1.5B's shapes, its table in OUT_DIR/perf.txt, its figures in
# OUT_DIR/perf.json, the children's stderr in OUT_DIR/perf.log. Apart from run_gpu.sh because
# the two do not fit one 10-minute call. Where torch, transformers or peft do not import
# ($PYTHON, default python3), only liblora's side is measured (checkpoints by liblora's own
# init). Fails when liblora refuses the device (status 2) or a measurement failed.
# Usage: tests/gpu/run_perf.sh [OUT_DIR] [peft_compare.py options]   (default $OUT, else
# build/perf; PERF_BUDGET seconds for the whole comparison, default 480; LORA_GPU_PREBUILT=1:
# no build, tests/gpu/device_run.sh unpacked tests/gpu/bundle.sh's lib/)
set -u
cd "$(dirname "$0")/../.." || exit 1
out=${1:-${OUT:-build/perf}}
. tests/gpu/lib_path.sh
[ $# -gt 0 ] && shift
mkdir -p "$out"
py=${PYTHON:-python3}

nvidia-smi > "$out/device.txt" 2>&1
if [ "${LORA_GPU_PREBUILT:-0}" = 1 ]; then
    [ -e lib/liblora.so ] || { echo "run_perf: LORA_GPU_PREBUILT=1 but no lib/liblora.so"; exit 1; }
    echo "run_perf: the prebuilt lib/liblora.so (tests/gpu/bundle.sh)"
elif [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || command -v nvcc > /dev/null; then
    start=$(date +%s)
    if ! make -j"$(nproc)" CUDA=1 lib/liblora.so > "$out/build.log" 2>&1; then
        tail -n 40 "$out/build.log"; echo "run_perf: build FAILED"; exit 1
    fi
    echo "run_perf: built in $(( $(date +%s) - start ))s"
elif ! [ -e lib/liblora.so ]; then
    echo "run_perf: no nvcc and no lib/liblora.so: build with CUDA=1 first and carry lib/"; exit 1
fi

sides=liblora,peft
if ! "$py" -c "import torch, transformers, peft" > "$out/imports.log" 2>&1; then
    echo "run_perf: $py cannot import torch, transformers and peft ($(tail -n 1 "$out/imports.log")):" \
         "measuring liblora alone"
    sides=liblora
fi
"$py" tests/perf/peft_compare.py --sides "$sides" --budget "${PERF_BUDGET:-480}" \
    --json "$out/perf.json" "$@" > "$out/perf.txt" 2> "$out/perf.log"
rc=$?
cat "$out/perf.txt"
[ "$rc" -ne 0 ] && tail -n 20 "$out/perf.log"
[ "$rc" -eq 0 ] && echo "run_perf: done (in $out)" || echo "run_perf: FAILED ($rc; logs in $out)"
exit "$rc"
