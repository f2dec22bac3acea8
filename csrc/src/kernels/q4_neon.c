/* q4 product and cells, ARM NEON without the dot product (armv7 -mfpu=neon, aarch64 baseline:
 * e.g. Cortex-A7 / A53; q4.h; flags of ARM_NEON_SRCS).
 *
 * A 64-byte tile (16 rows x 8 inputs) is four q registers of 4 rows x 4 bytes: `and 0x0F` and
 * `ushr 4` give the unsigned nibbles n = W + 8 (0..15) of the tile's two input groups, each
 * multiplied by its group of q broadcast to every 32-bit lane with smull/smlal (int16 lanes, one
 * (row, input) pair each), as the q8 NEON product (gemm_neon.c) does with whole bytes. A lane
 * takes two products per tile, |n q| <= 15 * 128 = 1920, so int16 sums of Q4_RUN = 8 tiles
 * (16 products, |sum| <= 30720 < 32768) are exact before sadalp widens them pairwise into the
 * int32 accumulators (rows as input pairs, reduced as the q8 product's). The accumulators end
 * with - 8 * sum q (q4.h), so every sum is the generic row's integer. */
#if !defined(RNC_NO_Q4) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>

#include "neon_int.h"
#include "q4.h"

#define Q4_RUN 8 /* tiles summed in int16 before widening (see above) */

#if defined(__aarch64__)
#define MLAL_LO(p, w, x) vmlal_s8((p), vget_low_s8(w), vget_low_s8(x))
#define MLAL_HI(p, w, x) vmlal_high_s8((p), (w), (x))
#else
#define MLAL_LO(p, w, x) vmlal_s8((p), vget_low_s8(w), vget_low_s8(x))
#define MLAL_HI(p, w, x) vmlal_s8((p), vget_high_s8(w), vget_low_s8(x))
#endif

/* Rows 4i..4i+3 of one tile (v: its 16 bytes; x0, x1: the tile's two input groups broadcast):
 * lo sums rows (4i, 4i+1), hi rows (4i+2, 4i+3), one int16 lane per (row, input of the group). */
#define Q4_REG(v, lo, hi, x0, x1)                                                                  \
    do {                                                                                           \
        const int8x16_t n0 = vreinterpretq_s8_u8(vandq_u8((v), mask));                             \
        const int8x16_t n1 = vreinterpretq_s8_u8(vshrq_n_u8((v), 4));                              \
        lo = MLAL_LO(MLAL_LO(lo, n0, x0), n1, x1);                                                 \
        hi = MLAL_HI(MLAL_HI(hi, n0, x0), n1, x1);                                                 \
    } while (0)

/* One tile (w: its 64 bytes; x0, x1: its two input groups broadcast) into the int16 sums s0..s7 */
#define Q4_TILE(w, x0, x1)                                                                         \
    do {                                                                                           \
        Q4_REG(vld1q_u8(w), s0, s1, x0, x1);                                                       \
        Q4_REG(vld1q_u8((w) + 16), s2, s3, x0, x1);                                                \
        Q4_REG(vld1q_u8((w) + 32), s4, s5, x0, x1);                                                \
        Q4_REG(vld1q_u8((w) + 48), s6, s7, x0, x1);                                                \
    } while (0)

/* The two int16 sums of rows 4i..4i+3 (lo: rows 4i, 4i+1; hi: 4i+2, 4i+3) as 4 int32 row sums */
static inline int32x4_t rows4(int16x8_t lo, int16x8_t hi)
{
    return rnc_neon_pair_reduce(vpaddlq_s16(lo), vpaddlq_s16(hi));
}

/* One 16-row block of `pairs` tiles against q (full: the pairs whose 8 bytes of q are in bounds;
 * xt: the last partial pair, zero-filled) */
static inline void q4_block(const uint8_t *t, int pairs, int full, const int8_t *q, const int8_t *xt,
                            int32x4_t corr, int32_t *out, int rows)
{
    const uint8x16_t mask = vdupq_n_u8(0x0F);
    int32x4_t a0 = vnegq_s32(corr), a1 = a0, a2 = a0, a3 = a0; /* rows 0-3, 4-7, 8-11, 12-15 */
    for (int p = 0; p < pairs; p += Q4_RUN) {
        const int pe = pairs - p < Q4_RUN ? pairs : p + Q4_RUN, pf = pe < full ? pe : full;
        int16x8_t s0 = vdupq_n_s16(0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        int i = p;
        for (; i + 2 <= pf; i += 2) { /* two tiles, one 16-byte load of q */
            const int32x4_t xq = vreinterpretq_s32_s8(vld1q_s8(q + 8 * (size_t)i));
            const int32x2_t xl = vget_low_s32(xq), xh = vget_high_s32(xq);
            const uint8_t *w = t + 64 * (size_t)i;
            {
                const int8x16_t x0 = vreinterpretq_s8_s32(vdupq_lane_s32(xl, 0));
                const int8x16_t x1 = vreinterpretq_s8_s32(vdupq_lane_s32(xl, 1));
                Q4_TILE(w, x0, x1);
            }
            {
                const int8x16_t x0 = vreinterpretq_s8_s32(vdupq_lane_s32(xh, 0));
                const int8x16_t x1 = vreinterpretq_s8_s32(vdupq_lane_s32(xh, 1));
                Q4_TILE(w + 64, x0, x1);
            }
        }
        for (; i < pe; ++i) { /* an odd last tile of the run, or the partial last pair */
            const int32x2_t xv = vreinterpret_s32_s8(vld1_s8(i < full ? q + 8 * (size_t)i : xt));
            const int8x16_t x0 = vreinterpretq_s8_s32(vdupq_lane_s32(xv, 0));
            const int8x16_t x1 = vreinterpretq_s8_s32(vdupq_lane_s32(xv, 1));
            Q4_TILE(t + 64 * (size_t)i, x0, x1);
        }
        a0 = vaddq_s32(a0, rows4(s0, s1));
        a1 = vaddq_s32(a1, rows4(s2, s3));
        a2 = vaddq_s32(a2, rows4(s4, s5));
        a3 = vaddq_s32(a3, rows4(s6, s7));
    }
    rnc_neon_store_rows4(out, rows, a0);
    rnc_neon_store_rows4(out + 4, rows - 4, a1);
    rnc_neon_store_rows4(out + 8, rows - 8, a2);
    rnc_neon_store_rows4(out + 12, rows - 12, a3);
}

static void q4_col(const uint8_t *W, int R, int K, const int8_t *q, int32_t *acc)
{
    const int pairs = rnc__q4_pairs(K), full = K / 8, nb = (R + 15) / 16;
    const int32x4_t corr = vdupq_n_s32(8 * rnc__q4_qsum(q, K));
    int8_t xt[8] = {0}; /* the last partial pair of q, zero past K (q4.h) */
    if (full < pairs) memcpy(xt, q + 8 * (size_t)full, (size_t)(K - 8 * full));
    for (int b = 0; b < nb; ++b)
        q4_block(W + (size_t)b * pairs * 64, pairs, full, q, xt, corr, acc + 16 * b, R - 16 * b);
}

void rnc_q4_gemm_neon(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc,
                      int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    for (int n = 0; n < N; ++n) q4_col(W, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_Q4 1
#define RNC_SFX neon
#include "cell_template.h"

#else
typedef int rnc_q4_neon_unused;
#endif
#else
typedef int rnc_q4_neon_left_out;
#endif
