# Cross builds of the C core for ARM Linux and their tests under qemu-user.
# Included by csrc/Makefile (after sources.mk). Targets (run from csrc/):
#
#   make cross-aarch64 cross-armhf   static + shared library, rnncore-bench, C test programs
#   make qemu-test                   the C tests (with --fuzz: quick activation sweep + fuzzing)
#                                    under qemu-aarch64 -cpu cortex-a53 / cortex-a76
#                                    and qemu-arm -cpu cortex-a7, every ISA path the CPU has
#   make cross-size                  .text of the static library at -Os per target, full and dense
#                                    (-DRNC_NO_SPARSE -DRNC_NO_Q4)
#   make qemu-test-clang             the aarch64 build made with clang (aarch64-clang: library,
#                                    rnncore-bench, test_main, test_kernels) and its C tests under
#                                    qemu-aarch64 -cpu cortex-a53 / cortex-a76
#
# Toolchains (Debian packages gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, qemu-user) are
# described in toolchains/<triple>.mk; override CROSS_aarch64=... for another compiler prefix.
# Programs are linked statically so qemu needs no target sysroot (-L is not needed).

CROSS_TOOLCHAIN_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
include $(CROSS_TOOLCHAIN_DIR)aarch64-linux-gnu.mk
include $(CROSS_TOOLCHAIN_DIR)arm-linux-gnueabihf.mk

CROSS_TARGETS := aarch64 armhf
# The C compiler of a target (binutils: $(CROSS_<target>)ar, nm, size). aarch64-clang is the aarch64
# build made with clang (its own inline-asm and loop forms, epilogue_neon.h), linked by clang with
# the cross gcc's libraries and crt files.
CROSS_CC_aarch64 ?= $(CROSS_aarch64)gcc
CROSS_CC_armhf ?= $(CROSS_armhf)gcc
CLANG ?= clang
CROSS_aarch64-clang ?= $(CROSS_aarch64)
CROSS_CC_aarch64-clang ?= $(CLANG) --target=aarch64-linux-gnu
ARCHFLAGS_aarch64-clang ?= $(ARCHFLAGS_aarch64)
CROSS_BUILD ?= build/cross
CROSS_WARN ?= -Wall -Wextra -Werror
CROSS_OPT ?= -O3
# ARM kernel lists in sources.mk: ARM_* (both), AARCH64_* (64-bit only), ARMV7_* (32-bit only);
# per list <STEM>_FLAGS, and <STEM>_FLAGS_ARMV7 overriding it on armhf.
CROSS_STEMS := CORE GENERIC $(patsubst %_SRCS,%,$(sort $(filter ARM_SRCS ARM_%_SRCS AARCH64_%_SRCS ARMV7_%_SRCS,$(.VARIABLES))))
cross_stems_for = $(filter-out $(if $(filter aarch64%,$(1)),ARMV7_%,AARCH64_%),$(CROSS_STEMS))
cross_flags = $(if $(and $(filter armhf,$(1)),$($(2)_FLAGS_ARMV7)),$($(2)_FLAGS_ARMV7),$($(2)_FLAGS))
# Test programs: every tests/test_*.c that is not x86-only, nor the integer step's
# (test_int_cells.c links src/int and a generated header: `make test-int`, and the Cortex-M images).
CROSS_TEST_SRCS ?= $(filter-out tests/test_x86% tests/test_int%,$(wildcard tests/test_*.c))

# $(1) = target, $(2) = optimisation flags, $(3) = build dir
define CROSS_template
$(3)/obj/%.o: %.c $$(wildcard include/*.h src/*.h src/kernels/*.h src/int/*.h src/int/*.c) sources.mk $(CROSS_TOOLCHAIN_DIR)cross.mk | $(3)/obj
	@mkdir -p $$(dir $$@)
	$$(CROSS_CC_$(1)) $$(COMMON_CFLAGS) $(2) $$(ARCHFLAGS_$(1)) $$(CROSS_WARN) -Iinclude -Isrc $$(XFLAGS) -c $$< -o $$@
$(3)/obj:
	@mkdir -p $$@
$(foreach s,$(call cross_stems_for,$(1)),$(foreach f,$($(s)_SRCS),
$(3)/obj/$(f:.c=.o): XFLAGS := $(call cross_flags,$(1),$(s))))
$(1)_OBJS_$(notdir $(3)) := $(foreach s,$(call cross_stems_for,$(1)),$(patsubst %.c,$(3)/obj/%.o,$($(s)_SRCS)))
$(3)/librnncore.a: $$($(1)_OBJS_$(notdir $(3)))
	rm -f $$@ && $$(CROSS_$(1))ar rcs $$@ $$^
$(3)/librnncore.so: $$($(1)_OBJS_$(notdir $(3)))
	$$(CROSS_CC_$(1)) -shared -o $$@ $$^ -lm
endef

$(foreach t,$(CROSS_TARGETS),$(eval $(call CROSS_template,$(t),$(CROSS_OPT),$(CROSS_BUILD)/$(t))))
$(foreach t,$(CROSS_TARGETS),$(eval $(call CROSS_template,$(t),-Os,$(CROSS_BUILD)/$(t)-Os)))
# The dense deploy build: -Os without the optional block-sparse and q4 kernel groups
# (kernel_list.h), without the fully-integer rows and file checks (export-c --target cortex-m
# compiles those models; the loader refuses such files naming what the build leaves out) and without
# log_mel's FFT (the log_mel record runs by its tables' product), nor mean or max pooling over time.
CROSS_DENSE_FLAGS := -Os -DRNC_NO_SPARSE -DRNC_NO_Q4 -DRNC_NO_INT -DRNC_NO_FFT -DRNC_NO_TIMEPAD -DRNC_NO_Q16 -DRNC_NO_POST_CONV -DRNC_NO_MEAN -DRNC_NO_RESID_RNN -DRNC_NO_ATTN -DRNC_NO_PW_EXT -DRNC_NO_CHUNK -DRNC_NO_EMB_FRONT
$(foreach t,$(CROSS_TARGETS),$(eval $(call CROSS_template,$(t),$(CROSS_DENSE_FLAGS),$(CROSS_BUILD)/$(t)-Os-dense)))

# Programs (static): rnncore-bench and the C tests.
define CROSS_prog_template
$(CROSS_BUILD)/$(1)/rnncore-bench: bench/rnncore_bench.c $(CROSS_BUILD)/$(1)/librnncore.a
	$$(CROSS_CC_$(1)) $$(COMMON_CFLAGS) $$(CROSS_OPT) $$(ARCHFLAGS_$(1)) $$(CROSS_WARN) -Iinclude $$< -static -L$(CROSS_BUILD)/$(1) -lrnncore -lm -o $$@
$(CROSS_BUILD)/$(1)/tests/%: tests/%.c $(CROSS_BUILD)/$(1)/librnncore.a
	@mkdir -p $$(dir $$@)
	$$(CROSS_CC_$(1)) $$(COMMON_CFLAGS) $$(CROSS_OPT) $$(ARCHFLAGS_$(1)) $$(CROSS_WARN) -Iinclude -Isrc $$< -static -L$(CROSS_BUILD)/$(1) -lrnncore -lm -o $$@
cross-$(1): $(CROSS_BUILD)/$(1)/librnncore.a $(CROSS_BUILD)/$(1)/librnncore.so $(CROSS_BUILD)/$(1)/rnncore-bench $(patsubst tests/%.c,$(CROSS_BUILD)/$(1)/tests/%,$(CROSS_TEST_SRCS))
endef
$(foreach t,$(CROSS_TARGETS),$(eval $(call CROSS_prog_template,$(t))))
$(eval $(call CROSS_template,aarch64-clang,$(CROSS_OPT),$(CROSS_BUILD)/aarch64-clang))
$(eval $(call CROSS_prog_template,aarch64-clang))

# rnncore-bench for this host
.PHONY: bench
bench: $(BUILD)/rnncore-bench
$(BUILD)/rnncore-bench: bench/rnncore_bench.c $(BUILD)/librnncore.a
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/librnncore.a -lm -o $@

# the block-sparse layouts' product on this host (x86-64, AVX-512 VNNI; bench/sparse_layout.c)
$(BUILD)/sparse-layout: bench/sparse_layout.c $(BUILD)/librnncore.a
	$(CC) $(CFLAGS_ALL) $(X86_AVX512VNNI_FLAGS) $< $(BUILD)/librnncore.a -lm -o $@

# the 16 x 16 frame_conv product forms against the int8 one (x86-64, AVX-512 VNNI; bench/q16_product.c)
$(BUILD)/q16-product: bench/q16_product.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(X86_AVX512VNNI_FLAGS) $< -o $@

# Standalone shared library for this host (the objects of `make lib`, which are -fPIC), as an
# embedded user or an FFI (tests/test_cffi.py) loads it.
.PHONY: shared
shared: $(BUILD)/librnncore.so
$(BUILD)/librnncore.so: $(OBJS)
	$(CC) -shared -o $@ $^ -lm

.PHONY: cross cross-aarch64 cross-armhf cross-aarch64-clang cross-size qemu-test qemu-test-clang
cross: cross-aarch64 cross-armhf

# Every test program on every CPU model, forcing each ISA path the model supports
# (RNNCORE_ISA=generic|neon|neondot); a CPU without the path must be refused, not crash.
qemu-test: cross-aarch64 cross-armhf $(VECTORS)
	@set -e; \
	for t in $(CROSS_TARGETS); do \
	  if [ $$t = aarch64 ]; then q="$(QEMU_aarch64)"; cpus="$(QEMU_CPUS_aarch64)"; \
	  else q="$(QEMU_armhf)"; cpus="$(QEMU_CPUS_armhf)"; fi; \
	  for cpu in $$cpus; do \
	    for p in $(patsubst tests/%.c,%,$(CROSS_TEST_SRCS)); do \
	      echo "== $$t $$cpu $$p"; \
	      $$q -cpu $$cpu $(CROSS_BUILD)/$$t/tests/$$p $(BUILD)/vectors --fuzz; \
	    done; \
	  done; \
	done

# The aarch64 build made with clang: its C tests under qemu on both CPU models (every ISA path the
# CPU has against the generic kernels, bit for bit; the models against the NumPy references)
CROSS_CLANG_TESTS := test_main test_kernels test_sparse
qemu-test-clang: $(CROSS_BUILD)/aarch64-clang/librnncore.a $(CROSS_BUILD)/aarch64-clang/rnncore-bench $(patsubst %,$(CROSS_BUILD)/aarch64-clang/tests/%,$(CROSS_CLANG_TESTS)) $(VECTORS)
	@set -e; \
	for cpu in $(QEMU_CPUS_aarch64); do \
	  for p in $(CROSS_CLANG_TESTS); do \
	    echo "== aarch64-clang $$cpu $$p"; \
	    $(QEMU_aarch64) -cpu $$cpu $(CROSS_BUILD)/aarch64-clang/tests/$$p $(BUILD)/vectors --fuzz; \
	  done; \
	done

cross-size: $(foreach t,$(CROSS_TARGETS),$(CROSS_BUILD)/$(t)-Os/librnncore.a $(CROSS_BUILD)/$(t)-Os-dense/librnncore.a)
	@for t in $(CROSS_TARGETS); do \
	  p=$$( [ $$t = aarch64 ] && echo "$(CROSS_aarch64)" || echo "$(CROSS_armhf)" ); \
	  echo "== $$t -Os"; $${p}size -t $(CROSS_BUILD)/$$t-Os/librnncore.a | tail -1; \
	  echo "== $$t -Os -DRNC_NO_SPARSE -DRNC_NO_Q4 -DRNC_NO_INT -DRNC_NO_FFT -DRNC_NO_TIMEPAD -DRNC_NO_Q16 -DRNC_NO_POST_CONV -DRNC_NO_MEAN -DRNC_NO_RESID_RNN -DRNC_NO_ATTN -DRNC_NO_PW_EXT -DRNC_NO_CHUNK -DRNC_NO_EMB_FRONT"; $${p}size -t $(CROSS_BUILD)/$$t-Os-dense/librnncore.a | tail -1; \
	done
