#!/bin/sh
# Runs each libFuzzer target for SECONDS (make fuzz-run FUZZ_SECONDS=N), one after the other,
# and prints its executions and executions per second. Usage: tests/fuzz/run.sh SECONDS NAME...
# The growing corpus lives in build/fuzz/corpus/NAME (the committed seeds are only read); a
# crash, leak, timeout (over 1 s) or out-of-memory input is written to build/fuzz/artifacts/NAME/
# and the script goes on with the next target, exiting 1 at the end.
seconds=$1; shift
status=0
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for name in "$@"; do
    corpus=build/fuzz/corpus/$name; artifacts=build/fuzz/artifacts/$name
    mkdir -p "$corpus" "$artifacts"
    set -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=1 -detect_leaks=1 \
           -print_final_stats=1 -artifact_prefix="$artifacts/"
    [ -f tests/fuzz/dict/"$name".dict ] && set -- "$@" -dict=tests/fuzz/dict/"$name".dict
    log=build/fuzz/$name.log
    build/fuzz/fuzz_"$name" "$@" "$corpus" tests/fuzz/seeds/"$name" > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ "$rc" -ne 0 ]; then
        echo "fuzz $name: FAILED (exit $rc) after ${execs:-?} executions; see $log and $artifacts/"
        status=1
    else
        echo "fuzz $name: $seconds s, $execs executions, $rate exec/s, corpus $(ls "$corpus" | wc -l) inputs"
    fi
done
exit $status
