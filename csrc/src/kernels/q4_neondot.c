/* q4 product and cells, aarch64 dot product (q4.h; flags of AARCH64_NEONDOT_SRCS).
 *
 * A 64-byte tile (16 rows x 8 inputs) is four q registers of 4 rows each: `and 0x0F` and `ushr 4`
 * give the nibbles of the tile's two input groups, each the first operand of one sdot per register
 * (nibbles 0..15 are valid signed bytes) with the input group broadcast as the second. The
 * accumulators end with - 8 * sum q (q4.h). */
#if !defined(RNC_NO_Q4) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include "neon_int.h"
#include "q4.h"

static void q4_col(const uint8_t *W, int R, int K, const int8_t *q, int32_t *acc)
{
    const int pairs = rnc__q4_pairs(K), full = K / 8, nb = (R + 15) / 16;
    const uint8x16_t mask = vdupq_n_u8(0x0F);
    const int32x4_t corr = vdupq_n_s32(8 * rnc__q4_qsum(q, K));
    int8_t xt[8] = {0}; /* the last partial pair of q, zero past K (q4.h) */
    if (full < pairs) memcpy(xt, q + 8 * (size_t)full, (size_t)(K - 8 * full));
    for (int b = 0; b < nb; ++b) {
        const uint8_t *t = W + (size_t)b * pairs * 64;
        int32x4_t a0 = vnegq_s32(corr), a1 = a0, a2 = a0, a3 = a0;
#define Q4_DOT(a, v, xl, xh)                                                                       \
    a = vdotq_s32(vdotq_s32(a, vreinterpretq_s8_u8(vandq_u8(v, mask)), xl),                        \
                  vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), xh)
#define Q4_TILE(w, xl, xh)                                                                         \
    do {                                                                                           \
        Q4_DOT(a0, vld1q_u8(w), xl, xh);                                                           \
        Q4_DOT(a1, vld1q_u8((w) + 16), xl, xh);                                                    \
        Q4_DOT(a2, vld1q_u8((w) + 32), xl, xh);                                                    \
        Q4_DOT(a3, vld1q_u8((w) + 48), xl, xh);                                                    \
    } while (0)
        int p = 0;
        for (; p + 2 <= full; p += 2) { /* two tiles, one 16-byte load of q */
            const int32x4_t xq = vreinterpretq_s32_s8(vld1q_s8(q + 8 * (size_t)p));
            const uint8_t *w = t + 64 * (size_t)p;
            Q4_TILE(w, vreinterpretq_s8_s32(vdupq_laneq_s32(xq, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(xq, 1)));
            Q4_TILE(w + 64, vreinterpretq_s8_s32(vdupq_laneq_s32(xq, 2)),
                    vreinterpretq_s8_s32(vdupq_laneq_s32(xq, 3)));
        }
        for (; p < pairs; ++p) { /* an odd last full pair, or the partial last pair */
            const int32x2_t xv = vreinterpret_s32_s8(vld1_s8(p < full ? q + 8 * (size_t)p : xt));
            Q4_TILE(t + 64 * (size_t)p, vreinterpretq_s8_s32(vdupq_lane_s32(xv, 0)),
                    vreinterpretq_s8_s32(vdupq_lane_s32(xv, 1)));
        }
#undef Q4_TILE
#undef Q4_DOT
        const int rows = R - 16 * b;
        rnc_neon_store_rows4(acc + 16 * b, rows, a0);
        rnc_neon_store_rows4(acc + 16 * b + 4, rows - 4, a1);
        rnc_neon_store_rows4(acc + 16 * b + 8, rows - 8, a2);
        rnc_neon_store_rows4(acc + 16 * b + 12, rows - 12, a3);
    }
}

void rnc_q4_gemm_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    for (int n = 0; n < N; ++n) q4_col(W, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_Q4 1
#define RNC_SFX neondot
#include "cell_template.h"

#else
typedef int rnc_q4_neondot_unused;
#endif
#else
typedef int rnc_q4_neondot_left_out;
#endif
