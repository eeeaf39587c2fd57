# Sourced by run_gpu.sh and run_perf.sh: liblora opens cuBLASLt and cuDNN at run time (dlopen).
# Where the loader knows neither libcublasLt.so.13 nor the toolkit's lib64 holds it, or knows no
# libcudnn.so.9 (the GPU machines' image carries cuDNN only inside PyTorch's nvidia-cudnn wheel),
# puts the library folder of python3's nvidia-cublas or nvidia-cudnn wheel on LD_LIBRARY_PATH;
# says which.
# lib_path SONAME MODULE: the wheel's folder for SONAME, where the loader would not find it
lib_path() {
    ldconfig -p 2>/dev/null | grep -q "$1" && return
    [ "$1" = libcublasLt.so.13 ] && [ -f "${CUDA_HOME:-/usr/local/cuda}/lib64/$1" ] && return
    dir=$("${PYTHON:-python3}" -c "import os, nvidia.$2 as m
print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null)
    if [ -n "$dir" ] && [ -f "$dir/$1" ]; then
        export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "lib_path: $1 from $dir"
    else
        echo "lib_path: no $1 known to the loader or in ${PYTHON:-python3}'s nvidia.$2"
    fi
}
lib_path libcublasLt.so.13 cublas
lib_path libcudnn.so.9 cudnn
