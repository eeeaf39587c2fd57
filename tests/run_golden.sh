#!/bin/sh
# Runs tests/golden_check on every fixture folder that has a golden.safetensors; a fourth and a
# fifth argument are the device and the CUDA math mode (golden_check --device, --math).
result=$1; golden=$2; dir=$3; device=${4:-cpu}
# the math mode is the CUDA backend's: only a cuda device takes one
case $device in cuda*) opts="--device $device --math ${5:-bf16}" ;; *) opts="--device $device" ;; esac
passed=0; failed=0; skipped=0
for d in "$dir"/*/; do
    [ -f "$d/golden.safetensors" ] || continue
    echo "== golden_check $opts $d"
    # shellcheck disable=SC2086 # opts is a list of options
    out=$("$golden" $opts "$d" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then echo "FAIL: no summary from $d (exit $rc)"; failed=$((failed + 1)); continue; fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(printf '%s\n' "$out" | grep -c ' skipped: ')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
done
echo "$passed $failed $skipped" > "$result"
[ "$failed" -eq 0 ]
