#!/bin/sh
# Adds up the result files of every suite and prints the closing line; exit 1 on any failure.
passed=0; failed=0; skipped=0
for f in "$1"/*; do
    [ -f "$f" ] || continue
    read -r p fl s < "$f"
    echo "  $(basename "$f"): $p passed, $fl failed, $s skipped"
    passed=$((passed + p)); failed=$((failed + fl)); skipped=$((skipped + s))
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
