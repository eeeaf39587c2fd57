#!/bin/sh
# Crash consistency: saves of an adapter, a model and a training checkpoint are killed with
# SIGKILL at random moments (tests/crash/crash_save.c); after every kill the folder must load and
# hold exactly the version before or the version being saved. Usage:
#   tests/run_crash.sh RESULT_FILE build/tests/crash_save MODEL_DIR [TRIALS [SEED]]
result=$1; prog=$2; model=$3; trials=${4:-210}; seed=${5:-$(date +%s)}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
echo "crash: seed $seed, $trials trials in $tmp"
out=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$prog" run "$model" "$tmp" "$trials" "$seed" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -v '^RESULT '
line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
if [ -z "$line" ] || [ "$rc" -ne 0 ]; then
    passed=$(echo "$line" | awk '{print $2 + 0}'); failed=$(echo "$line" | awk '{print $3 + 0}')
    [ "$failed" -gt 0 ] || failed=1
    echo "FAIL - crash consistency (exit $rc, seed $seed)"
else
    passed=$(echo "$line" | awk '{print $2}'); failed=0
    echo "ok - crash consistency: $passed trials"
fi
echo "$passed $failed 0" > "$result"
[ "$failed" -eq 0 ]
