# Bare-metal Cortex-M images run under qemu-system-arm (csrc/mcu, docs/deploy-cortex-m.md):
#   make test-cortex-m     the integer products' rows of each core against NumPy's vectors
#                          (and the same test on the host: the generic twin)
#   make bench-cortex-m ICOUNT=/path/libicount.so   executed instructions per call (qemu plugin)
# Needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi; only its libgcc is linked, no libc) and
# qemu-system-arm. Each core is a qemu machine with its own memory map (mcu/mps2.ld, mps3.ld).
MCU_CC ?= arm-none-eabi-gcc
MCU_SIZE ?= arm-none-eabi-size
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
    -fdata-sections $(WARN_CFLAGS) -Imcu -Isrc/int
MCU_LDFLAGS = -nostdlib -Lmcu -Wl,--gc-sections
MCU_INT_SRCS = src/int/s8_matvec_generic.c src/int/s8_matvec_dsp.c src/int/s8_matvec_mve.c \
    src/int/s16_act_mve.c
MCU_INT_HDRS = $(wildcard src/int/*.h) mcu/semihost.h
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

# one image per core and program: mcu/<program>.c + startup + the integer kernels
$(MCU_BUILD)/%/test_s8.elf: mcu/test_s8.c mcu/startup.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) $(MCU_BUILD)/s8_vectors.h mcu/sections.ld mcu/mps2.ld mcu/mps3.ld | mcu-tools
	@mkdir -p $(dir $@)
	$(MCU_CC) $(MCU_CFLAGS) -mcpu=$* -I$(MCU_BUILD) $(MCU_LDFLAGS) -T$(MCU_LD_$*) -Wl,-Map=$(@:.elf=.map) \
	    mcu/startup.c mcu/test_s8.c $(MCU_INT_SRCS) -lgcc -o $@
$(MCU_BUILD)/%/bench_s8.elf: mcu/bench_s8.c mcu/startup.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) mcu/sections.ld mcu/mps2.ld mcu/mps3.ld | mcu-tools
	@mkdir -p $(dir $@)
	$(MCU_CC) $(MCU_CFLAGS) -mcpu=$* $(MCU_LDFLAGS) -T$(MCU_LD_$*) -Wl,-Map=$(@:.elf=.map) \
	    mcu/startup.c mcu/bench_s8.c $(MCU_INT_SRCS) -lgcc -o $@
# the test image with everything but the link compiled by clang (the kernels' inline assembly and
# MVE intrinsics in both compilers); -fshort-enums: the arm-none-eabi ABI of GCC's libraries
MCU_CLANG ?= clang
MCU_CLANG_SRCS = mcu/startup.c mcu/test_s8.c $(MCU_INT_SRCS)
$(MCU_BUILD)/clang/%/test_s8.elf: mcu/test_s8.c mcu/startup.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) $(MCU_BUILD)/s8_vectors.h mcu/sections.ld mcu/mps2.ld mcu/mps3.ld | mcu-tools
	@mkdir -p $(dir $@)
	$(foreach f,$(MCU_CLANG_SRCS),$(MCU_CLANG) --target=arm-none-eabi -fshort-enums $(MCU_CFLAGS) -mcpu=$* \
	    -I$(MCU_BUILD) -c $(f) -o $(dir $@)$(notdir $(f:.c=.o)) &&) true
	$(MCU_CC) -mcpu=$* -mthumb -mfloat-abi=hard $(MCU_LDFLAGS) -T$(MCU_LD_$*) -Wl,-Map=$(@:.elf=.map) \
	    $(foreach f,$(MCU_CLANG_SRCS),$(dir $@)$(notdir $(f:.c=.o))) -lgcc -o $@

# the same test on the build machine (hosted C library behind semihost.h)
$(MCU_BUILD)/host/test_s8: mcu/test_s8.c mcu/host_semihost.c $(MCU_INT_SRCS) $(MCU_INT_HDRS) $(MCU_BUILD)/s8_vectors.h
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O2 $(WARN_CFLAGS) $(EXTRA_CFLAGS) -Imcu -Isrc/int -I$(MCU_BUILD) mcu/test_s8.c mcu/host_semihost.c \
	    $(MCU_INT_SRCS) -o $@

MCU_TEST_IMAGES = $(foreach c,$(MCU_CORES),$(MCU_BUILD)/$(c)/test_s8.elf $(MCU_BUILD)/clang/$(c)/test_s8.elf)
test-cortex-m: $(MCU_TEST_IMAGES) $(MCU_BUILD)/host/test_s8
	$(MCU_BUILD)/host/test_s8
	@$(foreach c,$(MCU_CORES),$(foreach cc,gcc clang,echo "== $(c) ($(MCU_MACHINE_$(c))), $(cc)" && \
	    $(MCU_QEMU) -M $(MCU_MACHINE_$(c)) -kernel $(MCU_BUILD)/$(if $(filter clang,$(cc)),clang/)$(c)/test_s8.elf && )) true

ICOUNT ?=
bench-cortex-m: $(foreach c,$(MCU_CORES),$(MCU_BUILD)/$(c)/bench_s8.elf)
	$(PYTHON) mcu/bench_cortex_m.py --icount "$(ICOUNT)" --qemu $(QEMU_SYSTEM_ARM) --build $(MCU_BUILD) \
	    $(foreach c,$(MCU_CORES),$(c):$(MCU_MACHINE_$(c)))
