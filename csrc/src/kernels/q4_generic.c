/* q4 product and cells, portable C (q4.h): the twin of every q4 row. */
#if !defined(RNC_NO_Q4) /* kernel_list.h: a build may leave these kernels out */
#include "q4.h"

void rnc_q4_gemm_generic(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    const int pairs = rnc__q4_pairs(K), nb = (R + 15) / 16;
    for (int n = 0; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        for (int b = 0; b < nb; ++b) {
            int32_t s[16] = {0};
            for (int p = 0; p < pairs; ++p) {
                const uint8_t *t = W + ((size_t)b * pairs + p) * 64;
                for (int j = 0; j < 4; ++j) {
                    const int k0 = 8 * p + j, k1 = k0 + 4;
                    for (int r = 0; r < 16; ++r) {
                        const int v = t[r * 4 + j];
                        if (k0 < K) s[r] += ((v & 15) - 8) * (int32_t)q[k0];
                        if (k1 < K) s[r] += ((v >> 4) - 8) * (int32_t)q[k1];
                    }
                }
            }
            const int rows = R - 16 * b < 16 ? R - 16 * b : 16;
            for (int r = 0; r < rows; ++r) acc[16 * b + r] = s[r];
        }
    }
}

#define RNC_Q4 1
#define RNC_SFX generic
#include "cell_template.h"
#else
typedef int rnc_q4_generic_left_out;
#endif
