#!/bin/sh
# One call of the device tool: unpacks build/gpu-bundle.tar.xz (tests/gpu/bundle.sh, made here
# and carried) when it travelled, then runs tests/gpu/run_gpu.sh (STAGE check) or run_perf.sh
# (STAGE perf) on the prebuilt files, under a limit that leaves the time to pack the logs.
# The tool brings back at most 8 files from $OUT, so the logs come back as one archive:
# $OUT/STAGE.txt is what the stage printed, $OUT/STAGE-logs.tar.gz its logs.
# Without the bundle the stage builds with nvcc on the GPU machine, which needs liblora's
# Debian dependencies there (its image does not have them).
# Usage: tests/gpu/device_run.sh check|perf [run_perf.sh's peft_compare.py options]
# LIMIT: seconds the stage may run (default: check 300, perf 360); each run's timeout_s must
# leave it about 30 s more.
set -u
cd "$(dirname "$0")/../.." || exit 1
stage=${1:-}
case $stage in
    check) limit=${LIMIT:-300} ;;
    perf) limit=${LIMIT:-360} ;;
    *) echo "usage: tests/gpu/device_run.sh check|perf [options]"; exit 2 ;;
esac
shift
out=${OUT:-build/device}
logs=/tmp/liblora-$stage
rm -rf "$logs"
mkdir -p "$out" "$logs"

{
    if [ -f build/gpu-bundle.tar.xz ]; then
        # python3's tarfile where the image has no xz for tar
        tar -xJf build/gpu-bundle.tar.xz 2> /dev/null ||
            python3 -c 'import tarfile; tarfile.open("build/gpu-bundle.tar.xz").extractall()'
        export LD_LIBRARY_PATH="$PWD/build/gpu-deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LORA_GPU_PREBUILT=1
        # a binary that cannot start here (a library missing, a glibc too old) says so at once
        missing=$(ldd build/tests/check_cuda lib/liblora.so 2>&1 | grep -E 'not found|GLIBC')
        if [ -n "$missing" ]; then
            echo "device_run: the bundle's binaries cannot start here:"; echo "$missing"
        else
            echo "device_run: prebuilt bundle unpacked (libraries from build/gpu-deps)"
        fi
    else
        echo "device_run: no build/gpu-bundle.tar.xz: building here"
    fi
    # the stage's own deadline, for its parts to skip visibly rather than be killed unseen
    export LORA_GPU_DEADLINE=$(($(date +%s) + limit - 20))
    case $stage in
        check) timeout -k 10 "$limit" tests/gpu/run_gpu.sh "$logs" ;;
        perf) PERF_BUDGET=${PERF_BUDGET:-$((limit - 40))} \
                  timeout -k 10 "$limit" tests/gpu/run_perf.sh "$logs" "$@" ;;
    esac
    rc=$?
    [ "$rc" -eq 124 ] && echo "device_run: $stage killed after ${limit}s"
    echo "device_run: $stage exit $rc"
} 2>&1 | tee "$out/$stage.txt"
tar -C /tmp -czf "$out/$stage-logs.tar.gz" "liblora-$stage"
grep -q "^device_run: $stage exit 0$" "$out/$stage.txt"
