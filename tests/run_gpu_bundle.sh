#!/bin/sh
# tests/gpu/bundle.sh's archive works away from this machine's libraries: made, it fits what
# the device tool carries beside the tracked files; unpacked in a copy of the tree, every
# library its binaries need but glibc's and the C++ runtime's comes from build/gpu-deps, and the
# prebuilt check_cuda runs there (its core cases, its GPU cases skipped on a machine without
# one); and tests/gpu/device_run.sh finds the bundle and hands run_gpu.sh the prebuilt files.
# Only in a CUDA build (CUDA=1), from a git checkout; writes "passed failed skipped" to RESULT;
# exits 1 on a failure.
result=$1
passed=0; failed=0; skipped=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "FAIL - $1"; failed=$((failed + 1)); }
if [ "${CUDA:-0}" != 1 ]; then
    echo "skipped: not a CUDA build: tests/gpu/bundle.sh"
    echo "0 0 1" > "$result"; exit 0
fi
# the tree that travels is the tracked files
if ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    echo "skipped: not a git checkout: tests/gpu/bundle.sh"
    echo "0 0 1" > "$result"; exit 0
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

if tests/gpu/bundle.sh "$tmp/bundle.tar.xz" > "$tmp/bundle.log" 2>&1; then ok "bundle.sh"
else bad "bundle.sh"; cat "$tmp/bundle.log"; echo "$passed $failed $skipped" > "$result"; exit 1; fi
# the device tool's limit is 64 MiB for all that travels
tracked=$(git ls-files -z 2>/dev/null | xargs -0 cat 2>/dev/null | wc -c)
size=$(wc -c < "$tmp/bundle.tar.xz")
if [ $((tracked + size)) -lt $((60 * 1048576)) ]; then
    ok "tracked files + bundle: $(((tracked + size) / 1048576)) MiB, under 60 (of 64)"
else bad "tracked files + bundle: $(((tracked + size) / 1048576)) MiB, over 60 (of 64)"; fi

mkdir "$tmp/tree"
tar -C "$tmp/tree" -xJf "$tmp/bundle.tar.xz"
deps=$tmp/tree/build/gpu-deps
for f in build/tests/check_cuda build/asan-tests/check_cuda build/tests/check_cuda_model \
         build/asan-tests/check_cuda_model tests/golden_check bin/lora lib/liblora.so; do
    [ -e "$tmp/tree/$f" ] || { bad "$f in the bundle"; continue; }
    # each library found outside the bundle must be glibc's or the C++ runtime's
    outside=$(LD_LIBRARY_PATH=$deps ldd "$tmp/tree/$f" | awk '$2 == "=>" { print $1, $3 }' |
              grep -v " $deps/" | grep -vE '^(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so')
    if [ -z "$outside" ]; then ok "$f: its libraries from the bundle"
    else bad "$f: libraries from outside the bundle: $(echo "$outside" | tr '\n' ' ')"; fi
done
LD_LIBRARY_PATH=$deps "$tmp/tree/build/tests/check_cuda" > "$tmp/check_cuda.log" 2>&1
if grep -qE '^100%: Checks: [1-9]' "$tmp/check_cuda.log"; then ok "the prebuilt check_cuda runs"
else bad "the prebuilt check_cuda runs"; tail -n 20 "$tmp/check_cuda.log"; fi

# device_run.sh over a copy of the tracked files with the bundle: past its deadline at once, so
# only its unpacking and run_gpu.sh's prebuilt branch run
mkdir "$tmp/src"
git ls-files -z | xargs -0 cp --parents -t "$tmp/src"
mkdir -p "$tmp/src/build"
cp "$tmp/bundle.tar.xz" "$tmp/src/build/gpu-bundle.tar.xz"
OUT=$tmp/out LIMIT=20 "$tmp/src/tests/gpu/device_run.sh" check > "$tmp/device_run.log" 2>&1
if grep -q '^device_run: prebuilt bundle unpacked' "$tmp/device_run.log" &&
   grep -q '^run_gpu: running the prebuilt suites' "$tmp/device_run.log" &&
   grep -q 'not run: out of time' "$tmp/device_run.log" &&
   [ -f "$tmp/out/check.txt" ] && [ -f "$tmp/out/check-logs.tar.gz" ]; then
    ok "device_run.sh check unpacks the bundle and runs the prebuilt files"
else bad "device_run.sh check"; cat "$tmp/device_run.log"; fi
echo "$passed $failed $skipped" > "$result"
[ "$failed" -eq 0 ]
