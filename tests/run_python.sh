#!/bin/sh
# Tests of the Python bindings (bindings/python/tests, unittest). Usage, from the repository root:
#   tests/run_python.sh RESULT_FILE
# Prints unittest's verbose output, then one "skipped: REASON (TEST)" line per skipped test;
# writes "passed failed skipped" to RESULT_FILE and exits 1 if any test failed or errored.
result=$1
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' INT TERM

if ! command -v python3 >/dev/null 2>&1; then
    echo "FAIL - python3 not found"
    echo "0 1 0" > "$result"; exit 1
fi
timeout 900 python3 -m unittest discover -s bindings/python/tests -v >"$tmp" 2>&1
rc=$?
cat "$tmp"

# unittest's closing lines: "Ran N tests in ...", then "OK (skipped=S)" or
# "FAILED (failures=F, errors=E, skipped=S, ...)".
count() { sed -n "s/.*[(, ]$1=\([0-9]*\).*/\1/p" "$tmp" | tail -n 1; }
ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$tmp" | tail -n 1)
failures=$(count failures); errors=$(count errors); skipped=$(count skipped)
unexpected=$(count "unexpected successes")
ran=${ran:-0}; failures=${failures:-0}; errors=${errors:-0}; skipped=${skipped:-0}
unexpected=${unexpected:-0}
failed=$((failures + errors + unexpected))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; echo "FAIL - unittest exited $rc"; fi
passed=$((ran - failures - errors - skipped - unexpected))
[ "$passed" -lt 0 ] && passed=0

sed -n -e "s/^[^ ]* (\([^)]*\)) \.\.\. skipped '\(.*\)'$/skipped: \2 (\1)/p" -e t \
    -e "s/^\(.*\) \.\.\. skipped '\(.*\)'$/skipped: \2 (\1)/p" "$tmp"
echo "python: $passed passed, $failed failed, $skipped skipped"
echo "$passed $failed $skipped" > "$result"
[ "$failed" -eq 0 ]
