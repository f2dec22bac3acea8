/* Integer NEON helpers shared by the q8 products (gemm_neon.c, q8_sparse_neon.c,
 * q8_sparse_neondot.c); armv7 NEON and aarch64. */
#ifndef RNC_NEON_INT_H
#define RNC_NEON_INT_H
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

/* Row sums from the pairwise accumulators of smull + sadalp: lo = [r0 j01, r0 j23, r1 j01,
 * r1 j23], hi = [r2 .., r3 ..] -> [r0, r1, r2, r3]. */
static inline int32x4_t rnc_neon_pair_reduce(int32x4_t lo, int32x4_t hi)
{
#if defined(__aarch64__)
    return vpaddq_s32(lo, hi);
#else
    return vcombine_s32(vpadd_s32(vget_low_s32(lo), vget_high_s32(lo)),
                        vpadd_s32(vget_low_s32(hi), vget_high_s32(hi)));
#endif
}

/* The first `rows` (any int; <= 0 stores nothing) of 4 sums stored at dst. */
static inline void rnc_neon_store_rows4(int32_t *dst, int rows, int32x4_t v)
{
    if (rows >= 4) {
        vst1q_s32(dst, v);
    } else if (rows > 0) {
        int32_t t[4];
        vst1q_s32(t, v);
        memcpy(dst, t, sizeof(int32_t) * (size_t)rows);
    }
}

#endif
