/* The 16 x 16 product of a frame_conv (internal.h, rnc_gemm_q16_fn), aarch64 NEON: smull / smlal2
 * put two products of codes |.| <= 32767 in each int32 lane (their sum below 2^31: exact), and
 * saddw / saddw2 widen those to int64 at every step; 4 rows x 2 columns per block, 8 inputs a
 * step. The same sums as rnc_q16_gemm_generic (integers: any order). aarch64 only (the widening
 * high-half forms); armv7 runs the generic row. */
#if !defined(RNC_NO_Q16) && defined(__aarch64__)
#include <arm_neon.h>

#include "../internal.h"

/* acc += w . x over 8 inputs, two products per int32 lane, widened */
static inline int64x2_t q16_mac(int64x2_t acc, int16x8_t w, int16x8_t x)
{
    const int32x4_t p = vmlal_high_s16(vmull_s16(vget_low_s16(w), vget_low_s16(x)), w, x);
    return vaddw_high_s32(vaddw_s32(acc, vget_low_s32(p)), p);
}

static inline void q16_block(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                             int nc, int64_t *Acc, int ldacc)
{
    int64x2_t a[4][2];
    for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = vdupq_n_s64(0);
    const int16_t *q0 = Q + (size_t)n0 * ldq, *q1 = q0 + (nc > 1 ? (size_t)ldq : 0);
    const int16_t *w[4];
    for (int i = 0; i < 4; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    for (size_t k = 0; k < kp; k += 8) {
        const int16x8_t x0 = vld1q_s16(q0 + k), x1 = vld1q_s16(q1 + k);
        for (int i = 0; i < 4; ++i) {
            const int16x8_t wv = vld1q_s16(w[i] + k);
            a[i][0] = q16_mac(a[i][0], wv, x0);
            a[i][1] = q16_mac(a[i][1], wv, x1);
        }
    }
    for (int j = 0; j < nc; ++j)
        for (int i = 0; i < nr; ++i) Acc[(size_t)(n0 + j) * ldacc + r0 + i] = vaddvq_s64(a[i][j]);
}

void rnc_q16_gemm_neon(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc,
                       int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    for (int n = 0; n < N; n += 2)
        for (int r = 0; r < R; r += 4)
            q16_block(W, kp, r, R - r < 4 ? R - r : 4, Q, ldq, n, N - n < 2 ? N - n : 2, Acc, ldacc);
}
#else
typedef int rnc_q16_neon_left_out; /* ISO C: a translation unit is not empty */
#endif
