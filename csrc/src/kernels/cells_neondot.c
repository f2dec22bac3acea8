/* Fused RNN/GRU/LSTM step kernels, aarch64 NEON + dot product (ARMv8.2-A DotProd), build of
 * cell_template.h compiled with -march=armv8.2-a+dotprod: q8 products with `sdot`
 * (q8_gemm_neondot.c), f32 products as the NEON path's. Chosen only when getauxval reports
 * HWCAP_ASIMDDP (arch/arm_cpu.c). Same float32 epilogue as every ISA. */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include "../internal.h"

RNC_DECLARE_ISA(neondot)

/* the f32 product is NEON's (no neondot row: the plan falls back to neon); the cell template
 * names it after its suffix */
#define rnc_f32_gemm_neondot rnc_f32_gemm_neon

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX neondot
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(neondot)
#endif
