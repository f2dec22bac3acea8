/* Fused RNN/GRU/LSTM step kernels, q8 and f32, ARM NEON build of cell_template.h (armv7 with
 * -mfpu=neon, aarch64 baseline): products in gemm_neon.c (f32 16-row blocks; q8 smull/smlal +
 * sadalp, exact int32), the float epilogue as in every other ISA (no FP contraction; GCC does not
 * vectorise float32 with armv7 NEON, which is not IEEE-exact, and vectorises it on aarch64 where
 * it is), so q8 outputs equal the generic kernel's bit for bit. */
#include "arm_kernels.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include "../internal.h"

RNC_DECLARE_ISA(neon)

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX neon
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(neon)

#if defined(__aarch64__)
/* The quantiser of the aarch64 NEON path (and of neondot, its child). */
void rnc_q8_quantize_neon(const float *v, size_t n, size_t npad, float static_scale,
                          float static_inv, int8_t *q, float *scale)
{
    rnc_neon_quantize_row(v, n, npad, static_scale, static_inv, q, scale);
}
#endif
#endif
