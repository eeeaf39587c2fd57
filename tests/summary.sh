#!/bin/sh
# Adds up the result files of every suite and prints the closing line; exit 1 on any failure.
# Usage: tests/summary.sh RESULTS_DIR [TIMES_DIR]: with TIMES_DIR (tests/timed.sh's files), each
# runner's seconds too, beside its result, or on a line of its own for a runner that writes
# several results (NAME-PART), and their sum.
passed=0; failed=0; skipped=0
times=${2:-}
for f in "$1"/*; do
    [ -f "$f" ] || continue
    read -r p fl s < "$f"
    name=$(basename "$f")
    took=
    [ -n "$times" ] && [ -f "$times/$name" ] && took=" ($(cat "$times/$name") s)"
    echo "  $name: $p passed, $fl failed, $s skipped$took"
    passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + s))
done
if [ -n "$times" ] && [ -d "$times" ]; then
    total=0
    for t in "$times"/*; do
        [ -f "$t" ] || continue
        total=$((total + $(cat "$t")))
        name=$(basename "$t")
        [ -f "$1/$name" ] || echo "  $name (its $(ls "$1" | grep -c "^$name-") parts): $(cat "$t") s"
    done
    echo "  time in the runners: $total s"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
