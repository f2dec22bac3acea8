# Toolchain file: 32-bit ARMv7-A hard-float Linux (Raspberry Pi 2/3/4 with Raspberry Pi OS
# 32-bit, Cortex-A7/A9/A15). Debian/Ubuntu: apt-get install gcc-arm-linux-gnueabihf qemu-user
CROSS_armhf ?= arm-linux-gnueabihf-
# Debian's armhf baseline (ARMv7-A, VFPv3-D16, Thumb-2); only the NEON kernel files get
# -mfpu=neon, and run after HWCAP_NEON is seen at run time.
ARCHFLAGS_armhf ?= -march=armv7-a -mfloat-abi=hard -mfpu=vfpv3-d16
QEMU_armhf ?= qemu-arm
# cortex-a7: NEON; cortex-r5f: ARMv7 with VFPv3-D16 and no NEON (the generic fallback)
QEMU_CPUS_armhf ?= cortex-a7 cortex-r5f
