#!/bin/sh
# The shortened demo (tools/demo.sh --quick): every step of make demo runs on fewer questions
# and epochs, and leaves its outputs. The gains themselves are measured by the full demo.
# Usage: tests/run_demo.sh RESULT_FILE
result=$1
passed=0; failed=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok - $1"; passed=$((passed + 1)); else echo "FAIL - $1"; failed=$((failed + 1)); fi; }

sh tools/demo.sh "$tmp/demo" --quick > "$tmp/out" 2>&1
rc=$?
check "demo --quick runs every step" $rc
[ $rc -eq 0 ] || tail -n 20 "$tmp/out"
grep -Eq '^arithmetic accuracy: base [0-9.]+%, adapter [0-9.]+% \([+-][0-9.]+ points\)$' "$tmp/out"
check "demo: the arithmetic summary line" $?
grep -Eq '^forecast base +MSE [0-9.]+  MAE [0-9.]+  R\^2 -?[0-9.]+$' "$tmp/out" &&
    grep -Eq '^forecast adapter +MSE [0-9.]+  MAE [0-9.]+  R\^2 -?[0-9.]+$' "$tmp/out"
check "demo: the forecast summary lines" $?
for f in arith/adapter_config.json arith/adapter_model.safetensors arith/loss.svg \
         lv/adapter/adapter_model.safetensors lv/forecast.svg merged/model.safetensors; do
    [ -s "$tmp/demo/$f" ]; check "demo wrote $f" $?
done
grep -q '^adapter: 2$' "$tmp/out" && grep -q '^adapter: none$' "$tmp/out"
check "demo: adapters swapped at runtime in one process" $?
echo "$passed $failed 0" > "$result"
echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
