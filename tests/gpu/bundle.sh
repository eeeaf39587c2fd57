#!/bin/sh
# Builds here, with CUDA=1, what tests/gpu/run_gpu.sh and run_perf.sh run on a GPU machine, and
# packs it into one file (default build/gpu-bundle.tar.xz) for the device tool's carry, with the
# shared libraries it needs besides glibc's and the C++ runtime's. The GPU machines' image has
# nvcc but neither the headers of OpenBLAS, jansson, PCRE2, utf8proc, libcrypto and Check nor a
# package archive to install them from; and a build there would spend minutes of a short lease.
# tests/gpu/device_run.sh unpacks it there. The archive holds the files at their paths in the
# repository, and the libraries in build/gpu-deps/ (device_run.sh puts that on
# LD_LIBRARY_PATH; the binaries' run path into /usr/lib/.../openblas-openmp is missing there).
# Prints the archive's size: the tree that travels has a 64 MiB limit, the repository's tracked
# files taking about half of it.
# Usage: tests/gpu/bundle.sh [FILE]
set -eu
cd "$(dirname "$0")/../.."
file=${1:-build/gpu-bundle.tar.xz}
bins="build/tests/check_cuda build/asan-tests/check_cuda build/tests/check_cuda_model
      build/asan-tests/check_cuda_model tests/golden_check bin/lora"
make -j"$(nproc)" CUDA=1 $bins lib/liblora.so > build/gpu-bundle.log 2>&1 ||
    { tail -n 40 build/gpu-bundle.log; echo "bundle: build FAILED"; exit 1; }
lib=$(readlink -f lib/liblora.so)

stage=build/gpu-bundle
rm -rf "$stage"
mkdir -p "$stage/build/gpu-deps"
for f in $bins lib/liblora.so*; do
    mkdir -p "$stage/$(dirname "$f")"
    cp -P "$f" "$stage/$f"
done
# Every library the loader resolves for them but glibc's and libstdc++/libgcc_s: a newer glibc
# and C++ runtime (the GPU machine's) serve binaries built against older ones; the others
# (OpenBLAS and its Fortran runtime, gcc 12's sanitizer runtimes among them) may be missing or
# of another version there.
# shellcheck disable=SC2086
ldd $bins "$lib" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
while read -r name path; do
    case $name in
        libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libstdc++.so.*|\
        libgcc_s.so.*) ;;
        *) cp -L "$path" "$stage/build/gpu-deps/$name" ;;
    esac
done
tar -C "$stage" -cJf "$file" .
rm -rf "$stage"
echo "bundle: $file, $(($(wc -c < "$file") / 1048576)) MiB:" \
     "$(tar -tJf "$file" | grep -c 'gpu-deps/.') libraries, carry it to tests/gpu/device_run.sh"
