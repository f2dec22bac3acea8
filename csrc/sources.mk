# Source lists of the C core, for csrc/Makefile and for setup.py (which may parse this file).
# Every file is C99; the files of one ISA are compiled with only that ISA's flags.
#   CORE_SRCS        no extra flags (portable; cpu.c uses cpuid / getauxval only)
#   GENERIC_SRCS     no extra flags (the portable kernels)
#   X86_AVX2_SRCS    X86_AVX2_FLAGS   (x86-64 builds only)
# Future paths add a list + flags here and rows in src/kernel_table.c, e.g.
#   X86_AVX512_SRCS     -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
#   X86_AVX512VNNI_SRCS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma
#   ARM_SRCS            (aarch64: none; armv7: -mfpu=neon)
CORE_SRCS = src/model.c src/loader.c src/kernel_table.c src/cpu.c src/util.c
GENERIC_SRCS = src/kernels/q8_gemm_generic.c src/kernels/f32_gemm_generic.c src/kernels/cells_generic.c src/kernels/q8_sparse_generic.c src/kernels/q8_spshared_generic.c src/kernels/cells_variant.c src/kernels/q4_generic.c src/kernels/int8_generic.c src/kernels/f32_fft_generic.c src/kernels/q16_generic.c
X86_AVX2_SRCS = src/kernels/q8_gemm_avx2.c src/kernels/f32_gemm_avx2.c src/kernels/cells_avx2.c src/kernels/q8_sparse_avx2.c src/kernels/q8_spshared_avx2.c src/kernels/q4_avx2.c src/kernels/fft_avx2.c src/kernels/q16_avx2.c
X86_AVX2_FLAGS = -mavx2 -mfma
X86_AVX512_SRCS = src/kernels/gemm_avx512.c src/kernels/cells_avx512.c src/kernels/fft_avx512.c src/kernels/q16_avx512.c
X86_AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
X86_AVX512VNNI_SRCS = src/kernels/q8_gemm_avx512vnni.c src/kernels/cells_avx512vnni.c src/kernels/q8_sparse_avx512vnni.c src/kernels/q8_spshared_avx512vnni.c src/kernels/q4_avx512vnni.c src/kernels/q16_avx512vnni.c
X86_AVX512VNNI_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma
X86_AVXVNNI_SRCS = src/kernels/q8_gemm_avxvnni.c src/kernels/cells_avxvnni.c src/kernels/q8_sparse_avxvnni.c
X86_AVXVNNI_FLAGS = -mavx2 -mfma -mavxvnni
X86_AMX_SRCS = src/kernels/q8_gemm_amx.c src/kernels/cells_amx.c
# Groups a compiler may not know (-mavxvnni, -mamx-*: GCC >= 11, clang >= 12): when it rejects a
# group's flags, csrc/Makefile and setup.py leave the group out and define RNC_NO_<GROUP> for every
# file (kernel_table.c then has no rows for it); the other paths are unaffected.
OPTIONAL_GROUPS = X86_AVXVNNI X86_AMX
X86_AMX_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mamx-tile -mamx-int8
# The fully-integer step of the Cortex-M path (rnncore_int.h), built alone by csrc/Makefile
# test-int and firmware (the name does not end in _SRCS); librnncore and the Python extension
# compile the same files through src/kernels/int8_generic.c (the RNC_INT8 kernel-table rows).
INT_CORE = src/int/int_cells.c src/int/s8_matvec_generic.c
ARM_SRCS = src/arch/arm_cpu.c
# ARM NEON (armv7 hard-float with -mfpu=neon, aarch64 baseline) and aarch64 dot product (sdot);
# chosen at run time from getauxval (arch/arm_cpu.c). Cross builds: toolchains/cross.mk.
ARM_NEON_SRCS = src/kernels/gemm_neon.c src/kernels/cells_neon.c src/kernels/q8_sparse_neon.c src/kernels/q8_spshared_neon.c src/kernels/q4_neon.c src/kernels/fft_neon.c src/kernels/q16_neon.c
ARM_NEON_FLAGS =
ARM_NEON_FLAGS_ARMV7 = -march=armv7-a -mfpu=neon
AARCH64_NEONDOT_SRCS = src/kernels/q8_gemm_neondot.c src/kernels/cells_neondot.c src/kernels/q8_sparse_neondot.c src/kernels/q8_spshared_neondot.c src/kernels/q4_neondot.c
AARCH64_NEONDOT_FLAGS = -march=armv8.2-a+dotprod
# Flags every file gets (besides -Iinclude): no fast-math and no FP contraction, so that every
# ISA's epilogue computes the same float32 operations; -fno-strict-aliasing for the in-place
# int32 -> float conversion of accumulators; -fno-trapping-math (FP exceptions are never
# enabled) lets the compiler if-convert the branch-free clamps and vectorise those loops.
COMMON_CFLAGS = -std=c99 -O3 -fPIC -ffp-contract=off -fno-trapping-math -fno-strict-aliasing
WARN_CFLAGS = -Wall -Wextra -Werror
