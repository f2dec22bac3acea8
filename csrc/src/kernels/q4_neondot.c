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

#include "q4.h"

static void q4_col(const uint8_t *W, int R, int K, const int8_t *q, int32_t *acc)
{
    const int pairs = rnc__q4_pairs(K), nb = (R + 15) / 16;
    const uint8x16_t mask = vdupq_n_u8(0x0F);
    const int32x4_t corr = vdupq_n_s32(8 * rnc__q4_qsum(q, K));
    for (int b = 0; b < nb; ++b) {
        const uint8_t *t = W + (size_t)b * pairs * 64;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < pairs; ++p) {
            const int8x16_t xl = vreinterpretq_s8_s32(vdupq_n_s32(rnc__q4_group(q, K, 2 * p)));
            const int8x16_t xh = vreinterpretq_s8_s32(vdupq_n_s32(rnc__q4_group(q, K, 2 * p + 1)));
            const uint8x16x4_t w = vld1q_u8_x4(t + 64 * (size_t)p);
#define Q4_DOT(a, v)                                                                               \
    a = vdotq_s32(vdotq_s32(a, vreinterpretq_s8_u8(vandq_u8(v, mask)), xl),                        \
                  vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), xh)
            Q4_DOT(a0, w.val[0]);
            Q4_DOT(a1, w.val[1]);
            Q4_DOT(a2, w.val[2]);
            Q4_DOT(a3, w.val[3]);
#undef Q4_DOT
        }
        int32_t s[16];
        vst1q_s32(s, vsubq_s32(a0, corr));
        vst1q_s32(s + 4, vsubq_s32(a1, corr));
        vst1q_s32(s + 8, vsubq_s32(a2, corr));
        vst1q_s32(s + 12, vsubq_s32(a3, corr));
        const int rows = R - 16 * b < 16 ? R - 16 * b : 16;
        memcpy(acc + 16 * b, s, sizeof(int32_t) * (size_t)rows);
    }
}

void rnc_q4_gemm_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    for (int n = 0; n < N; ++n) q4_col(W, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#include "epilogue_neon.h"
#if !defined(__OPTIMIZE_SIZE__) /* as cells_neondot.c */
#define RNC_CELL_UPDATE rnc_neon_cell_update
#define RNC_Q8_UPDATE rnc_neon_q8_update
#endif
#define RNC_QUANTIZE_ROW rnc_neon_quantize_row
#define RNC_Q4 1
#define RNC_SFX neondot
#include "cell_template.h"

#else
typedef int rnc_q4_neondot_unused;
#endif
#else
typedef int rnc_q4_neondot_left_out;
#endif
