# Toolchain file: 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS, Jetson, Cortex-A5x/A7x).
# Debian/Ubuntu: apt-get install gcc-aarch64-linux-gnu qemu-user
CROSS_aarch64 ?= aarch64-linux-gnu-
# Baseline ARMv8-A: NEON (ASIMD) is always present; the dot-product file adds its own flag.
ARCHFLAGS_aarch64 ?= -march=armv8-a
QEMU_aarch64 ?= qemu-aarch64
# CPU models the tests run on: no dot product / dot product (qemu 7.2 knows both)
QEMU_CPUS_aarch64 ?= cortex-a53 cortex-a76
