#!/bin/sh
# The GPU suites and golden_check --device cuda (both math modes) on the CUDA emulator
# (tests/cuda_emu, docs/cuda-emulator.md), then the op suite (the first of the suites) again with
# blocks and threads started last to first: RESULT_PREFIX-{checks,golden-bf16,golden-fp32,
# reverse} get "passed failed skipped"; exit 1 if anything failed. The caller sets
# LD_LIBRARY_PATH to the emulator's libraries.
prefix=$1; golden=$2; fixtures=$3; shift 3
rc=0
tests/run_checks.sh "$prefix-checks" "$@" || rc=1
tests/run_golden.sh "$prefix-golden-bf16" "$golden" "$fixtures" cuda bf16 || rc=1
tests/run_golden.sh "$prefix-golden-fp32" "$golden" "$fixtures" cuda fp32 || rc=1
LORA_CUDA_EMU_ORDER=reverse tests/run_checks.sh "$prefix-reverse" "$1" || rc=1
exit $rc
