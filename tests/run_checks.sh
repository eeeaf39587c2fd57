#!/bin/sh
# Runs Check suites; writes "passed failed skipped" to RESULT; exits 1 if any test failed.
# Check's CK_FORK mode runs each test in a child, so a crash or a leak report fails one test.
# CHECK_WRAPPER, when set, is a command each suite runs under (make test-valgrind's valgrind).
result=$1; shift
passed=0; failed=0; skipped=0
for t in "$@"; do
    out=$($CHECK_WRAPPER "$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL: $t produced no Check summary (exit $rc)"; failed=$((failed + 1)); continue
    fi
    n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    s=$(printf '%s\n' "$out" | grep -c 'skipped: ')
    passed=$((passed + n - f - e)); failed=$((failed + f + e)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ]; then
        echo "FAIL: $t exited $rc"; failed=$((failed + 1))
    fi
done
echo "$passed $failed $skipped" > "$result"
[ "$failed" -eq 0 ]
