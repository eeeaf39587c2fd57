#!/bin/sh
# The GPU suites and golden_check --device cuda (both math modes) on the CUDA emulator
# (tests/cuda_emu, docs/cuda-emulator.md); the op suite (the first of the suites) again with
# blocks and threads started last to first; and lora bench --device cuda in both modes, small,
# as a run of the command line's CUDA path (its timings are the emulator's, not a GPU's); and
# the Python bindings on the emulator's liblora.so.0 (tests/cuda_emu/bindings_smoke.py).
# RESULT_PREFIX-{checks,golden-bf16,golden-fp32,reverse,bench,python} get "passed failed skipped";
# exit 1 if anything failed. The caller sets LD_LIBRARY_PATH to the emulator's libraries.
# Two processes run at once (one per core of CI's two).
# Usage: tests/run_cuda_emu.sh RESULT_PREFIX GOLDEN_CHECK LORA FIXTURES CHECK...
prefix=$1; golden=$2; lora=$3; fixtures=$4; shift 4

# The emulator runs a process on one core: the suites in one process tree and the rest in
# another, side by side, each into its log, printed whole when both are done.
suites() {
    tests/run_checks.sh "$prefix-checks" "$@"
}

others() {
    rc=0
    tests/run_golden.sh "$prefix-golden-bf16" "$golden" "$fixtures" cuda bf16 || rc=1
    tests/run_golden.sh "$prefix-golden-fp32" "$golden" "$fixtures" cuda fp32 || rc=1
    LORA_CUDA_EMU_ORDER=reverse tests/run_checks.sh "$prefix-reverse" "$1" || rc=1
    passed=0; failed=0
    for mode in "train --steps 2 --seq 32 --batch 2" "decode --new 8 --rank 16"; do
        # a train run on the GPU also reports the device memory it held
        want=decode_tokens_per_s=; case $mode in train*) want=peak_device_mib=;; esac
        # shellcheck disable=SC2086 # the mode's words are options
        if out=$("$lora" bench --model "$fixtures/tiny-qwen2" --device cuda --mode $mode 2>&1) &&
           printf '%s\n' "$out" | grep -q "^$want"; then
            echo "ok - lora bench --device cuda --mode $mode (emulated)"; passed=$((passed + 1))
        else
            printf 'FAIL - lora bench --device cuda --mode %s:\n%s\n' "$mode" "$out"
            failed=$((failed + 1)); rc=1
        fi
    done
    echo "$passed $failed 0" > "$prefix-bench"
    # the Python bindings over the emulator's liblora.so.0 (what make parity-cuda-emu loads)
    out=$(tests/cuda_emu/python.sh python3 tests/cuda_emu/bindings_smoke.py \
              "$fixtures/tiny-qwen2" 2>&1) || rc=1
    printf '%s\n' "$out"
    last=$(printf '%s\n' "$out" | tail -n 1)
    case $last in
        *[!0-9\ ]*|'') echo "FAIL - bindings_smoke.py gave no result"; echo "0 1 0" > "$prefix-python"; rc=1 ;;
        *) echo "$last 0" > "$prefix-python" ;;
    esac
    return $rc
}

suites "$@" > "$prefix-suites.log" 2>&1 &
pid=$!
others "$@" > "$prefix-others.log" 2>&1
rc=$?
wait "$pid" || rc=1
cat "$prefix-suites.log" "$prefix-others.log"
rm -f "$prefix-suites.log" "$prefix-others.log"
exit $rc
