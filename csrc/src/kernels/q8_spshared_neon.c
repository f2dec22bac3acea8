/* Gate-shared block-sparse q8 product and cells, ARM NEON without the dot product (q8_sparse.h;
 * flags of ARM_NEON_SRCS: armv7 with -mfpu=neon, aarch64 baseline, e.g. Cortex-A53/A72). An entry
 * of a unit block holds the G gates' 16 x 4 blocks of one input group; each 16-byte register of a
 * block goes through q8_sparse_neon.h's smull + sadalp, two entries through one int16 step
 * (`smlal`), as in q8_sparse_neon.c. A 16 x 4 block needs 8 int32 accumulators, so one walk of a
 * unit block's index list serves SH_NG gates (aarch64 2: 16 accumulators of its 32 registers;
 * armv7 1: 8 of its 16): the index loads and input broadcasts are shared by those gates. Exact
 * int32 sums, the same integers as every ISA's. A matrix in another layout runs
 * rnc_q8_gemm_sparse_neon. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>

#include "neon_int.h"
#include "q8_sparse.h"
#include "q8_sparse_neon.h"

RNC_DECLARE_ISA(neon)

#if defined(__aarch64__)
#define SH_NG 2
#else
#define SH_NG 1
#endif
/* a block's 4 weight registers: with GCC on aarch64 one 4-register `ld1` (armv7's GCC has no
 * vld1q_s8_x4; clang's register allocator copies 4-register groups around) */
#if defined(__aarch64__) && !defined(__clang__)
#define SH_LD64(p) vld1q_s8_x4(p)
#else
static inline int8x16x4_t SH_LD64(const int8_t *p)
{
    const int8x16x4_t w = {{vld1q_s8(p), vld1q_s8(p + 16), vld1q_s8(p + 32), vld1q_s8(p + 48)}};
    return w;
}
#endif
#define RNC_SAI static inline __attribute__((always_inline))
/* the loops over gates and registers fully unrolled (the counts are constants in each inlined
 * copy), so that the accumulators stay in registers: clang 14 left the gate loop rolled under
 * `#pragma GCC unroll N` (GRU, 3 gates) and kept the accumulators on the stack */
#if defined(__clang__)
#define SH_UNROLL _Pragma("clang loop unroll(full)")
#else
#define SH_UNROLL _Pragma("GCC unroll 16")
#endif

/* GCC's first instruction scheduler moves the weight loads of a walk's gates ahead of their use and
 * spills accumulators to the stack (aarch64: 16 of them live): off for the product (GCC only). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-schedule-insns")
#endif

/* Gates g0 .. g0 + ng - 1 (ng <= SH_NG) of unit block b of one column into acc (rows
 * g*hp + 16 b + r, r < 16). */
RNC_SAI void sh_gates(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, uint32_t g0,
                      const uint32_t ng, const uint32_t G)
{
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + (size_t)64 * G * S->rowptr[b] + 64 * (size_t)g0;
    int32x4_t lo[SH_NG][4], hi[SH_NG][4];
SH_UNROLL
    for (uint32_t g = 0; g < ng; ++g)
SH_UNROLL
        for (uint32_t k = 0; k < 4; ++k) lo[g][k] = hi[g][k] = vdupq_n_s32(0);
    for (; ce - c >= 2; c += 2, t += 128 * G) {
        const sp_x x0 = sp_bcast(q, c[0]), x1 = sp_bcast(q, c[1]);
SH_UNROLL
        for (uint32_t g = 0; g < ng; ++g) {
            const int8x16x4_t w0 = SH_LD64(t + 64 * g), w1 = SH_LD64(t + 64 * (G + g));
SH_UNROLL
            for (uint32_t k = 0; k < 4; ++k) SP_TWO(w0.val[k], x0, w1.val[k], x1, lo[g][k], hi[g][k]);
        }
    }
    if (c < ce) {
        const sp_x x0 = sp_bcast(q, c[0]);
SH_UNROLL
        for (uint32_t g = 0; g < ng; ++g)
SH_UNROLL
            for (uint32_t k = 0; k < 4; ++k) SP_ONE(vld1q_s8(t + 64 * g + 16 * k), x0, lo[g][k], hi[g][k]);
    }
SH_UNROLL
    for (uint32_t g = 0; g < ng; ++g) {
        int32_t *d = acc + (size_t)(g0 + g) * 16 * S->row_blocks + 16 * (size_t)b;
SH_UNROLL
        for (uint32_t k = 0; k < 4; ++k) vst1q_s32(d + 4 * k, rnc_neon_pair_reduce(lo[g][k], hi[g][k]));
    }
}

/* Unit block b of one column: SH_NG gates a walk of its index list, the remaining gates one by one
 * (G a constant in each inlined copy: 3 GRU, 4 LSTM) */
RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, const uint32_t G)
{
    uint32_t g = 0;
    for (; g + SH_NG <= G; g += SH_NG) sh_gates(S, b, q, acc, g, SH_NG, G);
    for (; g < G; ++g) sh_gates(S, b, q, acc, g, 1, G);
}

RNC_SPSHARED_GEMM(neon, rnc_q8_gemm_sparse_neon)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX spshared_neon
#define rnc_f32_gemm_spshared_neon rnc_f32_gemm_neon
#include "cell_template.h"

#else
typedef int rnc_q8_spshared_neon_unused;
#endif
#else
typedef int rnc_q8_spshared_neon_left_out;
#endif
