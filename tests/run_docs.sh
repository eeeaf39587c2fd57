#!/bin/sh
# Tests of the documentation: every fenced code block of README.md and docs/*.md is run or
# compared as its marker says (tests/docs/doctest.py; the markers: docs/internals.md,
# "Documentation tests"). Usage, from the repository root: tests/run_docs.sh RESULT_FILE
# Prints "ok - FILE:LINE kind" or "FAIL - FILE:LINE kind: why" per block, writes
# "passed failed skipped" to RESULT_FILE and exits 1 if any block failed.
result=$1
if ! command -v python3 >/dev/null 2>&1; then
    echo "FAIL - python3 not found"
    echo "0 1 0" > "$result"; exit 1
fi
exec python3 tests/docs/doctest.py "$result" README.md docs/*.md
