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

# jansson parses JSON; the tokenizer's pre-tokenizer regex runs on PCRE2, its NFC on utf8proc.
DEPS_PC := jansson libpcre2-8 libutf8proc
DEP_CFLAGS := $(shell pkg-config --cflags $(DEPS_PC) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(DEPS_PC) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

OPT ?= -O2
CFLAGS ?= $(OPT) -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -pthread -fopenmp -Iinclude -Isrc -I$(BLAS_INC) \
              $(DEP_CFLAGS) $(CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LIBS := $(BLAS_LIBS) $(DEP_LIBS) -lm -pthread

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

LIB_SRC := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
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

SONAME := liblora.so.$(ABI)
SHARED := lib/liblora.so.$(VERSION)
STATIC := lib/liblora.a
CLI := bin/lora
GOLDEN := tests/golden_check

.PHONY: demo tiny-model all deps test test-all test-c test-asan test-tsan test-valgrind test-cli test-python test-docs test-install golden check-build install uninstall abi-check \
        abi-update clean help bench

all: $(SHARED) lib/$(SONAME) lib/liblora.so $(STATIC) $(CLI) $(EXAMPLES)

help:
	@echo "make            shared + static library and bin/lora"
	@echo "make deps       install missing Debian packages (root), else print the command"
	@echo "make demo       the main job on the embedded model (installs, builds, runs)"
	@echo "make test       every test suite (C suites, golden fixtures, CLI, ASan+UBSan)"
	@echo "make test-asan  the C suites under ASan+UBSan"
	@echo "make test-tsan  the C suites under ThreadSanitizer (build/tsan-tests)"
	@echo "make test-valgrind  the C suites under valgrind memcheck (slow; VALGRIND_CHECKS= a subset)"
	@echo "make test-docs  every code block of README.md and docs/*.md (tests/run_docs.sh)"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=   (and uninstall)"
	@echo "make abi-check  exported symbols against src/api/abi.symbols"

# --- dependencies ------------------------------------------------------------------------------
DEB_PKGS := gcc make pkg-config check libsubunit-dev libopenblas-openmp-dev libpcre2-dev \
            libutf8proc-dev libjansson-dev python3

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

$(SHARED): $(LIB_OBJ) src/api/liblora.map
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/api/liblora.map \
	    -Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIBS)

lib/$(SONAME): $(SHARED)
	ln -sf $(notdir $(SHARED)) $@

lib/liblora.so: lib/$(SONAME)
	ln -sf $(SONAME) $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p lib
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

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

build/asan/liblora.a: $(ASAN_OBJ)
	rm -f $@
	ar rcs $@ $(ASAN_OBJ)

build/asan-tests/%: tests/%.c build/asan/liblora.a $(TEST_UTIL_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(SAN_FLAGS) -o $@ $< $(TEST_UTIL_SRC) \
	    build/asan/liblora.a $(CHECK_LIBS) $(LIBS)

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

build/tsan/liblora.a: $(TSAN_OBJ)
	rm -f $@
	ar rcs $@ $(TSAN_OBJ)

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

check-build: all $(CHECKS) $(GOLDEN) $(RESUME)

# `make test` installs what is missing first, then runs everything in a fresh make (whose
# pkg-config flags see the new packages). Every suite runs even when an earlier one fails; the
# summary's exit status is the verdict.
test: deps
	@$(MAKE) --no-print-directory test-all

test-all: check-build abi-check $(ASAN_CHECKS)
	@rm -rf build/results && mkdir -p build/results
	@tests/run_checks.sh build/results/c $(CHECKS) || true
	@tests/run_golden.sh build/results/golden $(GOLDEN) tests/fixtures || true
	@tests/run_resume.sh build/results/resume $(RESUME) tests/fixtures/tiny-qwen2 || true
	@tests/run_cli.sh build/results/cli $(CLI) || true
	@tests/run_examples.sh build/results/examples $(CLI) || true
	@tests/run_demo.sh build/results/demo || true
	@tests/run_python.sh build/results/python || true
	@tests/run_docs.sh build/results/docs || true
	@tests/run_install.sh build/results/install || true
	@$(ASAN_ENV) tests/run_checks.sh build/results/asan $(ASAN_CHECKS) || true
	@tests/summary.sh build/results

test-c: $(CHECKS)
	@mkdir -p build/results
	@tests/run_checks.sh build/results/c $(CHECKS)

golden: $(GOLDEN)
	@mkdir -p build/results
	@tests/run_golden.sh build/results/golden $(GOLDEN) tests/fixtures

test-cli: $(CLI)
	@mkdir -p build/results
	@tests/run_cli.sh build/results/cli $(CLI)

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

test-tsan: $(TSAN_CHECKS)
	@mkdir -p build/results
	@$(TSAN_ENV) tests/run_checks.sh build/results/tsan $(TSAN_CHECKS)

test-valgrind: $(VALGRIND_CHECKS)
	@mkdir -p build/results
	@$(VALGRIND_ENV) tests/run_checks.sh build/results/valgrind $(VALGRIND_CHECKS)

# --- the embedded default model (models/tiny), pretrained from scratch by liblora ---------------
# Writes the corpus, tokenizer, config and task data (seeded), then `lora init` and a full
# pretraining run with `lora train --full` (idle threads sleep, so other work can share the
# machine), then a second epoch. About 25 minutes on 2 quiet cores.
TINY := models/tiny
TINY_BUILD := build/tiny
TINY_TRAIN := --full --packing --max-length 512 --batch-size 8 --grad-accum 1 --lr 2e-3 \
              --weight-decay 0.1 --max-grad-norm 1 --epochs 1 --warmup-ratio 0.02 --seed 1
# a second epoch from the first's weights, in another order, at a lower learning rate
TINY_STAGE2 := $(subst --lr 2e-3,--lr 1e-3,$(subst --seed 1,--seed 2,$(TINY_TRAIN)))

tiny-model: $(CLI)
	rm -rf $(TINY_BUILD) && mkdir -p $(TINY_BUILD)
	python3 tools/tiny_model/make_tiny.py $(TINY) $(TINY)/data $(TINY_BUILD)/corpus.jsonl
	$(CLI) init --config $(TINY)/config.json --out $(TINY_BUILD)/init --seed 1
	cp $(TINY)/tokenizer.json $(TINY)/tokenizer_config.json $(TINY)/generation_config.json \
	    $(TINY_BUILD)/init/
	OMP_WAIT_POLICY=PASSIVE $(CLI) train --model $(TINY_BUILD)/init --data $(TINY_BUILD)/corpus.jsonl \
	    --out $(TINY_BUILD)/pretrained $(TINY_TRAIN)
	OMP_WAIT_POLICY=PASSIVE $(CLI) train --model $(TINY_BUILD)/pretrained --data $(TINY_BUILD)/corpus.jsonl \
	    --out $(TINY_BUILD)/stage2 $(TINY_STAGE2)
	cp $(TINY_BUILD)/stage2/model.safetensors $(TINY)/model.safetensors
	cat $(TINY_BUILD)/pretrained/metrics.jsonl $(TINY_BUILD)/stage2/metrics.jsonl > $(TINY)/pretrain_metrics.jsonl

# --- the main job: make demo (tools/demo.sh; outputs in build/demo) --------------------------
demo: deps
	@$(MAKE) --no-print-directory all
	sh tools/demo.sh build/demo

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
	    -e 's|@DEPS_PC@|$(DEPS_PC)|' pkgconfig/lora.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/lora.pc

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

abi-update: $(SHARED)
	nm -D --defined-only $(SHARED) | awk '$$2 == "T" {print $$3}' | sort > src/api/abi.symbols

# keep test helper objects between runs
.SECONDARY:

clean:
	rm -rf build lib bin $(GOLDEN)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(TSAN_OBJ:.o=.d)
