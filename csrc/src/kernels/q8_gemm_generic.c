/* q8 GEMM, portable C: Acc[n*ldacc + r] = sum_{k<K} Wq[r,k] * Q[n*ldq + k] (exact int32).
 * Packed layout: byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j], Kp = round4(K). */
#include "../internal.h"

void rnc_q8_gemm_generic(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc)
{
    const int groups = (K + 3) / 4;
    const int nb = (R + 15) / 16;
    for (int n = 0; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        for (int b = 0; b < nb; ++b) {
            const int8_t *wb = Wp + (size_t)b * groups * 64;
            int32_t s[16] = {0};
            for (int g = 0; g < groups; ++g) {
                const int8_t *t = wb + (size_t)g * 64;
                for (int j = 0; j < 4; ++j) {
                    const int k = 4 * g + j;
                    if (k >= K) break;
                    const int32_t xv = q[k];
                    for (int r = 0; r < 16; ++r) s[r] += (int32_t)t[r * 4 + j] * xv;
                }
            }
            const int rows = R - 16 * b < 16 ? R - 16 * b : 16;
            for (int r = 0; r < rows; ++r) acc[16 * b + r] = s[r];
        }
    }
}

/* sums[r] = sum_k Wq[r,k] for r < round16(R) (internal.h): the packed rows summed whole (their
 * padding is zero). */
void rnc_q8_rowsum_generic(const int8_t *Wp, int R, int K, int32_t *sums)
{
    const int groups = (K + 3) / 4;
    const int nb = (R + 15) / 16;
    for (int b = 0; b < nb; ++b) {
        const int8_t *wb = Wp + (size_t)b * groups * 64;
        int32_t s[16] = {0};
        for (int g = 0; g < groups; ++g)
            for (int i = 0; i < 64; ++i) s[i / 4] += wb[(size_t)g * 64 + i];
        for (int r = 0; r < 16; ++r) sums[16 * b + r] = s[r];
    }
}
