/* f32 GEMM, AVX2+FMA (compiled with -mavx2 -mfma only): Y[n*ldy + r] = sum_k W[r,k] X[n*ldx+k].
 * Per input k a 16-row block is 16 contiguous floats (two ymm); x[k] is broadcast; four blocks
 * (8 FMA chains) in flight to cover the FMA latency. Differs from the generic sum only by FMA
 * rounding (and the order of the single-block tail's two chains). */
#include <immintrin.h>
#include <string.h>

#include "../internal.h"

static inline void rnc_store16f(float *dst, int rows, __m256 lo, __m256 hi)
{
    if (rows >= 16) {
        _mm256_storeu_ps(dst, lo);
        _mm256_storeu_ps(dst + 8, hi);
    } else {
        float t[16];
        _mm256_storeu_ps(t, lo);
        _mm256_storeu_ps(t + 8, hi);
        memcpy(dst, t, sizeof(float) * (size_t)rows);
    }
}

/* Two columns per weight load (batches, the whole-sequence input projection). Each output row
 * is summed exactly as in the one-column code below (blocks of the first 4*(nb/4): one FMA
 * chain in k order; the remaining blocks: even/odd-k chains, then added), so the result of a
 * column never depends on N (step == run bit for bit). */
static void rnc_f32_gemm2_avx2(const float *Wp, int R, int K, const float *x, const float *x1,
                               float *y, float *y1)
{
    const size_t bstride = (size_t)K * 16;
    const int nb = (R + 15) / 16, nmain = nb / 4 * 4;
    int b = 0;
    for (; b + 2 <= nmain; b += 2) {
        const float *w0 = Wp + (size_t)b * bstride, *w1 = w0 + bstride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int k = 0; k < K; ++k) {
            const __m256 xb = _mm256_broadcast_ss(x + k), yb = _mm256_broadcast_ss(x1 + k);
            const size_t o = (size_t)k * 16;
            const __m256 v0 = _mm256_loadu_ps(w0 + o), v1 = _mm256_loadu_ps(w0 + o + 8);
            const __m256 v2 = _mm256_loadu_ps(w1 + o), v3 = _mm256_loadu_ps(w1 + o + 8);
            a0 = _mm256_fmadd_ps(v0, xb, a0);
            a1 = _mm256_fmadd_ps(v1, xb, a1);
            a2 = _mm256_fmadd_ps(v2, xb, a2);
            a3 = _mm256_fmadd_ps(v3, xb, a3);
            c0 = _mm256_fmadd_ps(v0, yb, c0);
            c1 = _mm256_fmadd_ps(v1, yb, c1);
            c2 = _mm256_fmadd_ps(v2, yb, c2);
            c3 = _mm256_fmadd_ps(v3, yb, c3);
        }
        rnc_store16f(y + 16 * b, R - 16 * b, a0, a1);
        rnc_store16f(y + 16 * (b + 1), R - 16 * (b + 1), a2, a3);
        rnc_store16f(y1 + 16 * b, R - 16 * b, c0, c1);
        rnc_store16f(y1 + 16 * (b + 1), R - 16 * (b + 1), c2, c3);
    }
    for (; b < nb; ++b) { /* tail blocks: even/odd chains, as below */
        const float *w0 = Wp + (size_t)b * bstride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, e0 = a0, e1 = a0, c0 = a0, c1 = a0, f0 = a0, f1 = a0;
        int k = 0;
        for (; k + 2 <= K; k += 2) {
            const size_t o = (size_t)k * 16;
            const __m256 v0 = _mm256_loadu_ps(w0 + o), v1 = _mm256_loadu_ps(w0 + o + 8);
            const __m256 v2 = _mm256_loadu_ps(w0 + o + 16), v3 = _mm256_loadu_ps(w0 + o + 24);
            const __m256 xb = _mm256_broadcast_ss(x + k), xc = _mm256_broadcast_ss(x + k + 1);
            const __m256 yb = _mm256_broadcast_ss(x1 + k), yc = _mm256_broadcast_ss(x1 + k + 1);
            a0 = _mm256_fmadd_ps(v0, xb, a0);
            a1 = _mm256_fmadd_ps(v1, xb, a1);
            e0 = _mm256_fmadd_ps(v2, xc, e0);
            e1 = _mm256_fmadd_ps(v3, xc, e1);
            c0 = _mm256_fmadd_ps(v0, yb, c0);
            c1 = _mm256_fmadd_ps(v1, yb, c1);
            f0 = _mm256_fmadd_ps(v2, yc, f0);
            f1 = _mm256_fmadd_ps(v3, yc, f1);
        }
        if (k < K) {
            const size_t o = (size_t)k * 16;
            const __m256 v0 = _mm256_loadu_ps(w0 + o), v1 = _mm256_loadu_ps(w0 + o + 8);
            const __m256 xb = _mm256_broadcast_ss(x + k), yb = _mm256_broadcast_ss(x1 + k);
            a0 = _mm256_fmadd_ps(v0, xb, a0);
            a1 = _mm256_fmadd_ps(v1, xb, a1);
            c0 = _mm256_fmadd_ps(v0, yb, c0);
            c1 = _mm256_fmadd_ps(v1, yb, c1);
        }
        rnc_store16f(y + 16 * b, R - 16 * b, _mm256_add_ps(a0, e0), _mm256_add_ps(a1, e1));
        rnc_store16f(y1 + 16 * b, R - 16 * b, _mm256_add_ps(c0, f0), _mm256_add_ps(c1, f1));
    }
}

void rnc_f32_gemm_avx2(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                       int ldy)
{
    const size_t bstride = (size_t)K * 16;
    const int nb = (R + 15) / 16;
    int n0 = 0;
    for (; n0 + 2 <= N; n0 += 2)
        rnc_f32_gemm2_avx2(Wp, R, K, X + (size_t)n0 * ldx, X + (size_t)(n0 + 1) * ldx,
                           Y + (size_t)n0 * ldy, Y + (size_t)(n0 + 1) * ldy);
    for (int n = n0; n < N; ++n) {
        const float *x = X + (size_t)n * ldx;
        float *y = Y + (size_t)n * ldy;
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            const float *w0 = Wp + (size_t)b * bstride;
            const float *w1 = w0 + bstride, *w2 = w1 + bstride, *w3 = w2 + bstride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
                   a7 = a0;
            for (int k = 0; k < K; ++k) {
                const __m256 xb = _mm256_broadcast_ss(x + k);
                const size_t o = (size_t)k * 16;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o), xb, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o + 8), xb, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + o), xb, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + o + 8), xb, a3);
                a4 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + o), xb, a4);
                a5 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + o + 8), xb, a5);
                a6 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + o), xb, a6);
                a7 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + o + 8), xb, a7);
            }
            rnc_store16f(y + 16 * b, R - 16 * b, a0, a1);
            rnc_store16f(y + 16 * (b + 1), R - 16 * (b + 1), a2, a3);
            rnc_store16f(y + 16 * (b + 2), R - 16 * (b + 2), a4, a5);
            rnc_store16f(y + 16 * (b + 3), R - 16 * (b + 3), a6, a7);
        }
        for (; b < nb; ++b) {
            const float *w0 = Wp + (size_t)b * bstride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
            int k = 0;
            for (; k + 2 <= K; k += 2) {
                const __m256 xb = _mm256_broadcast_ss(x + k), xc = _mm256_broadcast_ss(x + k + 1);
                const size_t o = (size_t)k * 16;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o), xb, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o + 8), xb, a1);
                c0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o + 16), xc, c0);
                c1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o + 24), xc, c1);
            }
            if (k < K) {
                const __m256 xb = _mm256_broadcast_ss(x + k);
                const size_t o = (size_t)k * 16;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o), xb, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + o + 8), xb, a1);
            }
            rnc_store16f(y + 16 * b, R - 16 * b, _mm256_add_ps(a0, c0), _mm256_add_ps(a1, c1));
        }
    }
}
