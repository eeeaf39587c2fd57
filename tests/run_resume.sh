#!/bin/sh
# Resuming in a new process is bit-exact: N steps straight equal N/2 steps, a checkpoint, and
# N/2 more in a fresh process that has only the checkpoint. Usage:
#   tests/run_resume.sh RESULT_FILE build/tests/resume_run MODEL_DIR
result=$1; prog=$2; model=$3
passed=0; failed=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" = 0 ]; then echo "ok - $1"; passed=$((passed + 1)); else echo "FAIL - $1"; failed=$((failed + 1)); fi; }

"$prog" "$model" "$tmp/straight" straight 8; check "8 steps straight" $?
"$prog" "$model" "$tmp/ckpt" first 4; check "4 steps, checkpoint" $?
"$prog" "$model" "$tmp/ckpt" rest 4 8 "$tmp/resumed"; check "new process: load, 4 more steps" $?
cmp -s "$tmp/straight/adapter_model.safetensors" "$tmp/resumed/adapter_model.safetensors"
check "resumed adapter equals the straight run, byte for byte" $?
"$prog" "$model" "$tmp/straight4" straight 4
cmp -s "$tmp/straight/adapter_model.safetensors" "$tmp/straight4/adapter_model.safetensors"
[ $? -ne 0 ]; check "the comparison can fail: 4 steps differ from 8" $?
echo "$passed $failed 0" > "$result"
[ "$failed" -eq 0 ]
