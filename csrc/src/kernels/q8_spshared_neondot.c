/* Gate-shared block-sparse q8 product and cells, aarch64 dot product (`sdot`; q8_sparse.h; flags
 * of AARCH64_NEONDOT_SRCS, run only where getauxval reports HWCAP_ASIMDDP). An entry of a unit
 * block holds the G gates' 16 x 4 blocks of one input group: one index load and one input
 * broadcast (q8_sparse_neondot.h) serve its 4G weight registers, one `sdot` and one int32x4
 * accumulator each (16 for the LSTM: the 4G independent chains hide sdot's latency without a
 * second entry in flight). G is a constant in each inlined copy (3: GRU, 4: LSTM). Exact int32
 * sums, the same integers as every ISA's. A matrix in another layout runs
 * rnc_q8_gemm_sparse_neondot. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include "q8_sparse.h"
#include "q8_sparse_neondot.h"

RNC_DECLARE_ISA(neondot)

#define RNC_SAI static inline __attribute__((always_inline))

/* Unit block b of one column into acc (rows g*hp + 16 b + r, r < 16, g < G). */
RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, const uint32_t G)
{
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + (size_t)64 * G * S->rowptr[b];
    int32x4_t a[4 * RNC_SPSHARED_MAX_GATES];
#pragma GCC unroll 16
    for (uint32_t k = 0; k < 4 * G; ++k) a[k] = vdupq_n_s32(0);
    for (; c < ce; ++c, t += 64 * G) {
        const int8x16_t x = sp_bcast(q, *c);
#pragma GCC unroll 4
        for (uint32_t g = 0; g < G; ++g) {
            const int8x16x4_t w = vld1q_s8_x4(t + 64 * g);
            a[4 * g] = vdotq_s32(a[4 * g], w.val[0], x);
            a[4 * g + 1] = vdotq_s32(a[4 * g + 1], w.val[1], x);
            a[4 * g + 2] = vdotq_s32(a[4 * g + 2], w.val[2], x);
            a[4 * g + 3] = vdotq_s32(a[4 * g + 3], w.val[3], x);
        }
    }
#pragma GCC unroll 4
    for (uint32_t g = 0; g < G; ++g) {
        int32_t *d = acc + (size_t)g * 16 * S->row_blocks + 16 * (size_t)b;
#pragma GCC unroll 4
        for (uint32_t k = 0; k < 4; ++k) vst1q_s32(d + 4 * k, a[4 * g + k]);
    }
}

RNC_SPSHARED_GEMM(neondot, rnc_q8_gemm_sparse_neondot)

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX spshared_neondot
#define rnc_f32_gemm_spshared_neondot rnc_f32_gemm_neon
#include "cell_template.h"

#else
typedef int rnc_q8_spshared_neondot_unused;
#endif
#else
typedef int rnc_q8_spshared_neondot_left_out;
#endif
