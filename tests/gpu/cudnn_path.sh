# Sourced by run_gpu.sh and run_perf.sh: where the loader knows no libcudnn.so.9 (the GPU
# machines' image carries cuDNN only inside PyTorch's nvidia-cudnn wheel), puts that wheel's
# library folder on LD_LIBRARY_PATH, so that cuda/cudnn.c's dlopen finds it; says which.
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.9'; then
    cudnn_dir=$("${PYTHON:-python3}" -c 'import os, nvidia.cudnn as c
print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null)
    if [ -n "$cudnn_dir" ] && [ -f "$cudnn_dir/libcudnn.so.9" ]; then
        export LD_LIBRARY_PATH="$cudnn_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "cudnn_path: libcudnn.so.9 from $cudnn_dir"
    else
        echo "cudnn_path: no libcudnn.so.9 known to the loader or in ${PYTHON:-python3}'s nvidia-cudnn"
    fi
fi
