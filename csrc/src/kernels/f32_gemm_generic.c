/* f32 GEMM, portable C: Y[n*ldy + r] = sum_{k<K} W[r,k] * X[n*ldx + k].
 * Packed layout: float[(b*K + k)*16 + r] = W[16b + r, k]. Sums in k order, multiply then add. */
#include "../internal.h"

void rnc_f32_gemm_generic(const float *Wp, int R, int K, int N, const float *X, int ldx,
                          float *Y, int ldy)
{
    const int nb = (R + 15) / 16;
    for (int n = 0; n < N; ++n) {
        const float *x = X + (size_t)n * ldx;
        float *y = Y + (size_t)n * ldy;
        for (int b = 0; b < nb; ++b) {
            const float *wb = Wp + (size_t)b * K * 16;
            float s[16] = {0};
            for (int k = 0; k < K; ++k) {
                const float xv = x[k];
                const float *t = wb + (size_t)k * 16;
                for (int r = 0; r < 16; ++r) s[r] += t[r] * xv;
            }
            const int rows = R - 16 * b < 16 ? R - 16 * b : 16;
            for (int r = 0; r < rows; ++r) y[16 * b + r] = s[r];
        }
    }
}
