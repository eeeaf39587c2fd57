#!/bin/sh
# Runs COMMAND, then writes the whole seconds it took to SECONDS_FILE, which tests/summary.sh
# prints beside the results (make test on CI's 2 cores must stay well under 15 minutes, and
# this says where the time goes). Exits with COMMAND's status.
# Usage: tests/timed.sh SECONDS_FILE COMMAND [ARGS...]
out=$1; shift
start=$(date +%s)
"$@"; rc=$?
mkdir -p "$(dirname "$out")"
echo $(($(date +%s) - start)) > "$out"
exit "$rc"
