#!/bin/sh
# The tree builds and its C suites pass without the CUDA backend (make CUDA=0), which a CUDA
# build's own make test never compiles: code of the CUDA build outside its #ifdef LORA_CUDA
# guards breaks only there. Built at -O0 (a few seconds) in a copy of the tracked files under
# build/nocuda, since the build folders are the CUDA build's. Only in a CUDA build, from a git
# checkout; writes "passed failed skipped" to RESULT; exits 1 on a failure.
result=$1
if [ "${CUDA:-0}" != 1 ]; then
    echo "skipped: CUDA=0 already: make test is the CUDA=0 build's"
    echo "0 0 1" > "$result"; exit 0
fi
if ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    echo "skipped: not a git checkout: make CUDA=0 test-c"
    echo "0 0 1" > "$result"; exit 0
fi
dir=build/nocuda
rm -rf "$dir"
mkdir -p "$dir"
git ls-files -z | xargs -0 cp --parents -t "$dir"
if make -C "$dir" -j"$(nproc)" CUDA=0 CFLAGS=-O0 test-c > build/nocuda.log 2>&1; then
    rc=0
else
    rc=1
    grep -E 'error|FAIL|:[EF]:' build/nocuda.log | head -n 40
fi
if [ -f "$dir/build/results/c" ]; then
    cp "$dir/build/results/c" "$result"
    echo "make CUDA=0 test-c: $(cat "$result") (passed failed skipped)"
else
    echo "FAIL - make CUDA=0 test-c did not build (build/nocuda.log)"
    echo "0 1 0" > "$result"
fi
rm -rf "$dir"
[ "$rc" -eq 0 ]
