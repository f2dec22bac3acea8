/* Fused RNN/GRU/LSTM step kernels, aarch64 NEON + dot product (ARMv8.2-A DotProd), build of
 * cell_template.h compiled with -march=armv8.2-a+dotprod: q8 products with `sdot`
 * (gemv_neondot.c), f32 products as the NEON path's. Chosen only when getauxval reports
 * HWCAP_ASIMDDP (arch/arm_cpu.c). Same float32 epilogue as every ISA. */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include "../internal.h"

RNC_DECLARE_ISA(neondot)

void rnc_q8_gemm_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc)
{
    rnc_arm_gemm_q8_neondot(Wp, R, K, N, Q, ldq, Acc, ldacc);
}

/* not in the kernel table (the NEON row serves NEONDOT through the ISA fallback); the cell
 * template needs the name */
void rnc_f32_gemm_neondot(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                          int ldy)
{
    rnc_arm_gemm_f32_neon(Wp, R, K, N, X, ldx, Y, ldy);
}

#define RNC_SFX neondot
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(neondot)
#endif
