# tensorgame build.  `make` builds everything CPU-only where nvcc is missing; `make test` runs
# every test; `make SANITIZE=1` builds into build-san/ with ASan + UBSan.
#
# Layout rules (so modules can be added without touching this file):
#   - every .c under common/ actor/ replay/ learner/ fastmm/ tools/ goes into one static library,
#     except files named main*.c, which are the programs' entry points;
#   - CUDA sources are learner/cuda/*.cu and fastmm/*.cu (built only when USE_CUDA=1);
#   - every tests/test_*.c (and C++ tests/test_*.cpp) is one test program, linked against the
#     library.

PREFIX   ?= /usr/local
CC       ?= gcc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
USE_CUDA ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

PKGS     := hdf5 libzmq libczmq libprotobuf-c openblas yaml-0.1 jansson libisal
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs cmocka 2>/dev/null)

# B=name gives a private build tree (build-name/), so parallel work never shares object files.
ifeq ($(SANITIZE),1)
BUILD    := build-san$(if $(B),-$(B))
BIN      := $(BUILD)/bin
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# HDF5 1.10 leaks internally when it rejects corrupt files, which the tests feed it on purpose
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp
OPT      := -O1
else
BUILD    := build$(if $(B),-$(B))
BIN      := $(if $(B),$(BUILD)/bin,bin)
SANFLAGS :=
OPT      ?= -O2
endif

CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -pthread -fPIC -I. -I$(BUILD)/gen $(PKG_CFLAGS) $(SANFLAGS) \
            -DTG_SOURCE_DIR='"$(CURDIR)"'
LDFLAGS  += -pthread $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lm

ifeq ($(USE_CUDA),1)
CFLAGS   += -DTG_HAVE_CUDA -I$(CUDA_HOME)/include
NVFLAGS  ?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-Wall -I. -I$(BUILD)/gen -DTG_HAVE_CUDA \
            -Wno-deprecated-gpu-targets
# Only programs that run networks or fastmm link CUDA (tg, tg-learner, tests): actors and the
# replay server stay free of the CUDA libraries (about 200 MB less resident memory each).
# net.c refers to the CUDA backend weakly: -u names it so the linker takes it from libtg.a.
CUDA_LD  := -Wl,-u,tg_net_cuda_ops -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
            -lcudnn -lcublasLt -lcublas -lcudart -lstdc++
CU_SRC   := $(wildcard learner/cuda/*.cu fastmm/*.cu)
else
CU_SRC   :=
endif

LIB_DIRS := common actor replay learner fastmm tools
LIB_SRC  := $(filter-out %/main.c %/main_%.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
PROTO    := $(wildcard proto/*.proto)
PROTO_C  := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(PROTO))
PROTO_H  := $(PROTO_C:.c=.h)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(PROTO_C:.c=.o) $(patsubst %.cu,$(BUILD)/%.cu.o,$(CU_SRC))
LIB      := $(BUILD)/libtg.a

PROG_MAIN_tg         := tools/main.c
PROG_MAIN_tg-replay  := replay/main.c
PROG_MAIN_tg-actor   := actor/main.c
PROG_MAIN_tg-learner := learner/main.c
PROG_CUDA_tg         := 1
PROG_CUDA_tg-learner := 1
PROGS    := $(foreach p,tg tg-replay tg-actor tg-learner,$(if $(wildcard $(PROG_MAIN_$(p))),$(BIN)/$(p)))

TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
# C++ tests (tests/test_*.cpp): CUDA kernel sources run on the CPU (std::thread, std::barrier;
# their `#pragma unroll` is nvcc's)
TEST_CXX_SRC := $(wildcard tests/test_*.cpp)
TESTS    += $(patsubst tests/%.cpp,$(BUILD)/tests/%,$(TEST_CXX_SRC))
CXX      ?= g++
CXXFLAGS_TEST := $(OPT) -g -std=c++20 -Wall -Wextra -Werror -Wno-unknown-pragmas -pthread -I. -I$(BUILD)/gen $(PKG_CFLAGS) \
                 $(SANFLAGS) -DTG_SOURCE_DIR='"$(CURDIR)"' $(if $(filter 1,$(USE_CUDA)),-DTG_HAVE_CUDA -I$(CUDA_HOME)/include)

.SECONDARY:
.PHONY: all test unit-test script-test clean format install bench-build
all: $(PROGS) $(TESTS)

$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen/proto
	$(Q)protoc-c --c_out=$(BUILD)/gen proto/$*.proto

# V=1 shows whole command lines
Q := $(if $(filter 1,$(V)),,@)

$(BUILD)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# generated protobuf-c code: protoc-c's output is not -Wextra clean
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(filter-out -Werror -Wextra,$(CFLAGS)) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

# each program depends on its own main file too (secondary expansion names it)
.SECONDEXPANSION:
$(BIN)/%: $$(PROG_MAIN_$$*) $(LIB) $(PROTO_H)
	@mkdir -p $(BIN)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(PROG_MAIN_$*) -o $@ $(LIB) $(LDLIBS) $(if $(PROG_CUDA_$*),$(CUDA_LD))

$(BUILD)/tests/%: tests/%.c tests/test_util.h $(LIB)
	@mkdir -p $(BUILD)/tests
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -o $@ $(LIB) $(LDLIBS) $(CUDA_LD) $(TEST_LIBS)

$(BUILD)/tests/%: tests/%.cpp $(LIB)
	@mkdir -p $(BUILD)/tests
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CXX) $(CXXFLAGS_TEST) -MMD -MP $(LDFLAGS) $< -o $@ $(LIB) $(LDLIBS) $(CUDA_LD) $(TEST_LIBS)

# Unit tests: every tests/test_*.c program (cmocka), run from the repository root.
unit-test: $(TESTS) $(PROGS)
	@pass=0; fail=0; failed=""; \
	for t in $(TESTS); do \
	  echo "== $$t"; \
	  if TG_BIN=$(CURDIR)/$(BIN) $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	done; \
	echo "unit: $$pass passed, $$fail failed"; \
	[ -z "$$failed" ] || { echo "failed:$$failed"; exit 1; }

# Script tests: tests/*.sh and tests/*.py exercise the binaries and scripts end to end.
script-test: $(PROGS)
	@pass=0; fail=0; failed=""; \
	for t in $(sort $(wildcard tests/t_*.sh tests/t_*.py)); do \
	  echo "== $$t"; \
	  if TG_BIN=$(CURDIR)/$(BIN) $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	done; \
	echo "scripts: $$pass passed, $$fail failed"; \
	[ -z "$$failed" ] || { echo "failed:$$failed"; exit 1; }

test: all
	@$(MAKE) --no-print-directory unit-test && $(MAKE) --no-print-directory script-test

clean:
	rm -rf build build-* bin

format:
	clang-format -i $(wildcard */*.c */*.h learner/cuda/*.cu learner/cuda/*.h tests/*.c)

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
