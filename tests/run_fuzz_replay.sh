#!/bin/sh
# Replays every seed and regression input of each fuzz target through its replay build (gcc,
# ASan+UBSan, tests/fuzz/replay.c); one check per target. Usage:
#   tests/run_fuzz_replay.sh RESULT_FILE build/fuzz-replay/fuzz_NAME...
result=$1; shift
passed=0; failed=0
for prog in "$@"; do
    name=${prog##*/fuzz_}
    set --
    for d in tests/fuzz/seeds/"$name" tests/fuzz/regressions/"$name"; do
        [ -d "$d" ] && set -- "$@" "$d"
    done
    if [ $# -eq 0 ]; then
        echo "FAIL - fuzz $name: no seeds or regressions"; failed=$((failed + 1)); continue
    fi
    if out=$("$prog" "$@" 2>&1); then
        echo "ok - fuzz $name: $(printf '%s\n' "$out" | tail -n 1)"; passed=$((passed + 1))
    else
        printf '%s\n' "$out" | tail -n 40
        echo "FAIL - fuzz $name"; failed=$((failed + 1))
    fi
done
echo "$passed $failed 0" > "$result"
[ "$failed" -eq 0 ]
