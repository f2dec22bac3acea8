# Bare-metal Cortex-M images run under qemu-system-arm (csrc/mcu, docs/deploy-cortex-m.md):
#   make test-cortex-m     on each core, with GCC and with clang: the integer products' rows
#                          against NumPy's vectors (test_s8), the integer step's rows on the
#                          spec's vectors (test_int_step), the elementwise work of the DSP and
#                          MVE steps on the whole int16 domain (test_act); test_s8 also on the host
#   make bench-cortex-m ICOUNT=/path/libicount.so   executed instructions per call (qemu plugin)
# Needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi; only its libgcc is linked, no libc),
# clang and qemu-system-arm. Each core is a qemu machine with its own memory map (mcu/mps2.ld,
# mcu/mps3.ld).
MCU_CC ?= arm-none-eabi-gcc
MCU_CLANG ?= clang
QEMU_SYSTEM_ARM ?= qemu-system-arm
MCU_BUILD = $(BUILD)/mcu
MCU_CORES = cortex-m4 cortex-m7 cortex-m55
MCU_MACHINE_cortex-m4 = mps2-an386
MCU_MACHINE_cortex-m7 = mps2-an500
MCU_MACHINE_cortex-m55 = mps3-an547
MCU_LD_cortex-m4 = mps2.ld
MCU_LD_cortex-m7 = mps2.ld
MCU_LD_cortex-m55 = mps3.ld
MCU_OPT ?= -O3
MCU_CFLAGS = -std=c99 $(MCU_OPT) -mthumb -mfloat-abi=hard -ffreestanding -ffunction-sections \
    -fdata-sections $(WARN_CFLAGS) -Imcu -Isrc/int -I$(MCU_BUILD) -I$(dir $(INT_VECTORS))
MCU_LDFLAGS = -nostdlib -Lmcu -Wl,--gc-sections
MCU_INT_SRCS = src/int/s8_matvec_generic.c src/int/s8_matvec_dsp.c src/int/s8_matvec_mve.c \
    src/int/s16_act_mve.c src/int/int_cells.c src/int/int_cells_dsp.c src/int/int_cells_mve.c
MCU_INT_HDRS = $(wildcard src/int/*.h) mcu/semihost.h mcu/sections.ld mcu/mps2.ld mcu/mps3.ld
# semihosting output through a stdio chardev (without it qemu writes to the terminal, not stdout)
MCU_QEMU = timeout 300 $(QEMU_SYSTEM_ARM) -nographic -monitor none -serial none -chardev stdio,id=sh0 \
    -semihosting-config enable=on,target=native,chardev=sh0

.PHONY: test-cortex-m bench-cortex-m mcu-tools
mcu-tools:
	@command -v $(MCU_CC) >/dev/null || { echo "test-cortex-m: $(MCU_CC) not found (Debian: apt-get install gcc-arm-none-eabi)"; exit 1; }
	@command -v $(QEMU_SYSTEM_ARM) >/dev/null || { echo "test-cortex-m: $(QEMU_SYSTEM_ARM) not found (Debian: apt-get install qemu-system-arm)"; exit 1; }

$(MCU_BUILD)/s8_vectors.h: mcu/gen_s8_vectors.py
	@mkdir -p $(dir $@)
	$(PYTHON) mcu/gen_s8_vectors.py $@
$(MCU_BUILD)/act_vectors.h: mcu/gen_act_vectors.py ../rnncore/quant/fixedpoint.py
	@mkdir -p $(dir $@)
	$(PYTHON) mcu/gen_act_vectors.py $@

# One image per program and core: mcu/<program>.c + start-up + the integer sources, compiled by
# GCC, or by clang (--target=arm-none-eabi; -fshort-enums: the ABI of GCC's arm-none-eabi
# libraries; newlib's headers for <string.h>) and linked by GCC. $(1): the program, $(2): the
# headers it includes that are built.
MCU_NEWLIB_INC = $(abspath $(dir $(shell $(MCU_CC) -print-file-name=libc.a 2>/dev/null))../include)
MCU_CLANG_FLAGS = --target=arm-none-eabi -fshort-enums -isystem $(MCU_NEWLIB_INC)
define MCU_PROGRAM
$(MCU_BUILD)/%/$(1).elf: mcu/$(1).c mcu/startup.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) $(2) | mcu-tools
	@mkdir -p $$(dir $$@)
	$(MCU_CC) $(MCU_CFLAGS) -mcpu=$$* $(MCU_LDFLAGS) -T$$(MCU_LD_$$*) -Wl,-Map=$$(@:.elf=.map) \
	    mcu/startup.c mcu/$(1).c $(MCU_INT_SRCS) -lgcc -o $$@
$(MCU_BUILD)/clang/%/$(1).elf: mcu/$(1).c mcu/startup.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) $(2) | mcu-tools
	@mkdir -p $$(dir $$@)obj-$(1)
	$$(foreach f,mcu/startup.c mcu/$(1).c $(MCU_INT_SRCS),$(MCU_CLANG) $(MCU_CLANG_FLAGS) $(MCU_CFLAGS) \
	    -mcpu=$$* -c $$(f) -o $$(dir $$@)obj-$(1)/$$(notdir $$(f:.c=.o)) &&) true
	$(MCU_CC) -mcpu=$$* -mthumb -mfloat-abi=hard $(MCU_LDFLAGS) -T$$(MCU_LD_$$*) -Wl,-Map=$$(@:.elf=.map) \
	    $$(dir $$@)obj-$(1)/*.o -lgcc -o $$@
endef
$(eval $(call MCU_PROGRAM,test_s8,$(MCU_BUILD)/s8_vectors.h))
$(eval $(call MCU_PROGRAM,test_act,$(MCU_BUILD)/act_vectors.h))
$(eval $(call MCU_PROGRAM,test_int_step,$(INT_VECTORS)))
$(eval $(call MCU_PROGRAM,bench_s8,))
$(eval $(call MCU_PROGRAM,bench_step,$(INT_VECTORS)))

# the products' test on the build machine (hosted C library behind semihost.h)
$(MCU_BUILD)/host/test_s8: mcu/test_s8.c mcu/host_semihost.c $(MCU_INT_HDRS) src/int/s8_matvec_generic.c $(MCU_BUILD)/s8_vectors.h
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O2 $(WARN_CFLAGS) $(EXTRA_CFLAGS) -Imcu -Isrc/int -I$(MCU_BUILD) mcu/test_s8.c mcu/host_semihost.c \
	    src/int/s8_matvec_generic.c -o $@

# (core, program) pairs: every program on every core
MCU_TESTS = $(foreach c,$(MCU_CORES),$(c):test_s8 $(c):test_act $(c):test_int_step)
mcu_core = $(word 1,$(subst :, ,$(1)))
mcu_prog = $(word 2,$(subst :, ,$(1)))
MCU_TEST_IMAGES = $(foreach t,$(MCU_TESTS),$(foreach d,$(MCU_BUILD) $(MCU_BUILD)/clang,$(d)/$(call mcu_core,$(t))/$(call mcu_prog,$(t)).elf))
test-cortex-m: $(MCU_TEST_IMAGES) $(MCU_BUILD)/host/test_s8
	$(MCU_BUILD)/host/test_s8
	@$(foreach t,$(MCU_TESTS),$(foreach cc,gcc clang,echo "== $(call mcu_prog,$(t)) on $(call mcu_core,$(t)) ($(MCU_MACHINE_$(call mcu_core,$(t)))), $(cc)" && \
	    $(MCU_QEMU) -M $(MCU_MACHINE_$(call mcu_core,$(t))) \
	        -kernel $(MCU_BUILD)/$(if $(filter clang,$(cc)),clang/)$(call mcu_core,$(t))/$(call mcu_prog,$(t)).elf && )) true

ICOUNT ?=
MCU_BENCH_CORES = $(foreach c,$(MCU_CORES),$(c):$(MCU_MACHINE_$(c)))
bench-cortex-m: $(foreach c,$(MCU_CORES),$(MCU_BUILD)/$(c)/bench_s8.elf $(MCU_BUILD)/$(c)/bench_step.elf)
	$(PYTHON) mcu/bench_cortex_m.py --icount "$(ICOUNT)" --qemu $(QEMU_SYSTEM_ARM) --build $(MCU_BUILD) \
	    --image bench_s8.elf $(MCU_BENCH_CORES)
	$(PYTHON) mcu/bench_cortex_m.py --icount "$(ICOUNT)" --qemu $(QEMU_SYSTEM_ARM) --build $(MCU_BUILD) \
	    --image bench_step.elf --only gru_kws_i16_h64,tflite_lstm --memory gru_kws_i16_h64 \
	    --vectors $(INT_VECTORS) $(MCU_BENCH_CORES)
