/* The 16 x 16 product of a frame_conv (internal.h, rnc_gemm_q16_fn), portable C: the twin of every
 * q16 row. Each product of two int16 codes (|.| <= 32767) is exact in int32, their sum over the
 * row in int64. */
#if !defined(RNC_NO_Q16) /* kernel_list.h: a build may leave these kernels out */
#include "../internal.h"

void rnc_q16_gemm_generic(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc,
                          int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    for (int n = 0; n < N; ++n) {
        const int16_t *q = Q + (size_t)n * ldq;
        for (int r = 0; r < R; ++r) {
            const int16_t *w = W + (size_t)r * kp;
            int64_t s = 0;
            for (int k = 0; k < K; ++k) s += (int32_t)w[k] * (int32_t)q[k];
            Acc[(size_t)n * ldacc + r] = s;
        }
    }
}
#else
typedef int rnc_q16_generic_left_out; /* ISO C: a translation unit is not empty */
#endif
