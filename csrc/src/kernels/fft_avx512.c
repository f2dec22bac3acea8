/* AVX-512 passes of the log_mel real FFT (f32_fft_generic.c has the maths and the driver).
 *
 * Compiled only with this file's flags: -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma.
 *
 * A pass whose blocks hold Ns >= 4 outputs runs up to 16 of them (lanes k .. k + 15, a short or
 * last group masked) per instruction: in, twiddles and out are contiguous in k. The window (its
 * even / odd samples apart by a permute) and the split into bins (16 bins k and the 16 mirrored
 * ones M - k, loaded and stored reversed) run 16 at a time as well. Each lane computes the
 * generic code's operations in its order (multiplies and adds apart, no FMA), so the result is
 * the generic row's bit for bit. A first pass of radix 4 with M/4 >= 16 runs 16 butterflies at a
 * time (outputs interleaved in registers, the last M/4 mod 16 one by one); a pass of radix 4 or 2
 * with Ns = 4 runs four blocks per instruction (outputs moved into place by 128-bit lane
 * shuffles); other passes with Ns < 4 are the generic's.
 */
#if !defined(RNC_NO_FFT) /* a build without the FFT (kernel_list.h) */
#include "../internal.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#define FFT_V __m512
#define FFT_ADD _mm512_add_ps
#define FFT_SUB _mm512_sub_ps
#define FFT_MUL _mm512_mul_ps
#define FFT_NEG(a) _mm512_xor_ps(a, _mm512_set1_ps(-0.0f))
#define FFT_SET1 _mm512_set1_ps
#include "fft_butterfly.h"

/* blocks j0 = first, first + Ns, ... of a pass with Ns >= 4, 16 lanes k at a time (the lanes of
 * mk: a short last group masked, the lanes off read as 0 and not written) */
static inline void pass_wide(uint32_t P, uint32_t M, uint32_t Ns, const float *tw, const float *ir,
                             const float *ii, float *or_, float *oi, uint32_t first)
{
    const uint32_t L = M / P;
    const float *twr = tw, *twi = tw + (size_t)(P - 1) * Ns;
    for (uint32_t j0 = first; j0 < L; j0 += Ns)
        for (uint32_t k = 0; k < Ns; k += 16) {
            const __mmask16 mk = Ns - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (Ns - k)) - 1);
            const uint32_t j = j0 + k;
            __m512 ar[5], ai[5], yr[5], yi[5];
            ar[0] = _mm512_maskz_loadu_ps(mk, ir + j), ai[0] = _mm512_maskz_loadu_ps(mk, ii + j);
            for (uint32_t r = 1; r < P; ++r)
                fft_twiddle(_mm512_maskz_loadu_ps(mk, ir + j + r * L), _mm512_maskz_loadu_ps(mk, ii + j + r * L),
                            _mm512_maskz_loadu_ps(mk, twr + (r - 1) * Ns + k),
                            _mm512_maskz_loadu_ps(mk, twi + (r - 1) * Ns + k), &ar[r], &ai[r]);
            fft_bf(P, ar, ai, yr, yi, 1);
            float *outr = or_ + (size_t)j0 * P + k, *outi = oi + (size_t)j0 * P + k;
            for (uint32_t r = 0; r < P; ++r) {
                _mm512_mask_storeu_ps(outr + r * Ns, mk, yr[r]);
                _mm512_mask_storeu_ps(outi + r * Ns, mk, yi[r]);
            }
        }
}

/* y0..y3 (lanes j) to out[4 j + r] for 16 j: the pairs interleaved within 128-bit lanes, then the
 * 128-bit lanes transposed */
static inline void store4(float *out, __m512 y0, __m512 y1, __m512 y2, __m512 y3)
{
    const __m512 t0 = _mm512_unpacklo_ps(y0, y1), t1 = _mm512_unpackhi_ps(y0, y1);
    const __m512 t2 = _mm512_unpacklo_ps(y2, y3), t3 = _mm512_unpackhi_ps(y2, y3);
    const __m512 u0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    const __m512 u1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    const __m512 u2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    const __m512 u3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    const __m512 v0 = _mm512_shuffle_f32x4(u0, u1, 0x44), v1 = _mm512_shuffle_f32x4(u2, u3, 0x44);
    const __m512 v2 = _mm512_shuffle_f32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_f32x4(u2, u3, 0xEE);
    _mm512_storeu_ps(out, _mm512_shuffle_f32x4(v0, v1, 0x88));
    _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(v0, v1, 0xDD));
    _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(v2, v3, 0x88));
    _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(v2, v3, 0xDD));
}

/* The first pass (Ns = 1, no twiddles) of radix 4 with L = M/4 >= 16: 16 butterflies j per
 * instruction (in[j + r L] contiguous in j), their outputs out[4 j + r] interleaved by store4; the
 * last L mod 16 butterflies by the generic pass */
static void first4(uint32_t M, const float *tw, const float *ir, const float *ii, float *or_, float *oi)
{
    const uint32_t L = M / 4;
    uint32_t j = 0;
    for (; j + 16 <= L; j += 16) {
        __m512 ar[4], ai[4], yr[4], yi[4];
        for (uint32_t r = 0; r < 4; ++r) ar[r] = _mm512_loadu_ps(ir + j + r * L), ai[r] = _mm512_loadu_ps(ii + j + r * L);
        fft_bf(4, ar, ai, yr, yi, 1);
        store4(or_ + 4 * (size_t)j, yr[0], yr[1], yr[2], yr[3]);
        store4(oi + 4 * (size_t)j, yi[0], yi[1], yi[2], yi[3]);
    }
    if (j < L) rnc__fft_pass_from(4, M, 1, j, tw, ir, ii, or_, oi);
}

/* A pass of radix 4 or 2 with Ns = 4: four blocks j0 .. j0 + 15 at a time (lane 4 b + k: block b,
 * output k; in[j + r L] contiguous in j, the twiddles of k repeated in each 128-bit lane); block
 * b's outputs out[(j0 + 4 b) p + 4 r + k] are the 128-bit lanes b of y_0 .. y_{p-1} side by side.
 * Returns the first block left (L mod 16 of them) to pass_wide. */
static inline uint32_t pass_ns4(uint32_t p, uint32_t M, const float *tw, const float *ir, const float *ii,
                                float *or_, float *oi)
{
    const uint32_t L = M / p;
    const float *twr = tw, *twi = tw + (size_t)(p - 1) * 4;
    __m512 wr[5], wi[5];
    for (uint32_t r = 1; r < p; ++r) {
        wr[r] = _mm512_broadcast_f32x4(_mm_loadu_ps(twr + (r - 1) * 4));
        wi[r] = _mm512_broadcast_f32x4(_mm_loadu_ps(twi + (r - 1) * 4));
    }
    uint32_t j = 0;
    for (; j + 16 <= L; j += 16) {
        __m512 ar[5], ai[5], y[2][5];
        ar[0] = _mm512_loadu_ps(ir + j), ai[0] = _mm512_loadu_ps(ii + j);
        for (uint32_t r = 1; r < p; ++r)
            fft_twiddle(_mm512_loadu_ps(ir + j + r * L), _mm512_loadu_ps(ii + j + r * L), wr[r], wi[r], &ar[r],
                        &ai[r]);
        fft_bf(p, ar, ai, y[0], y[1], 1);
        for (int c = 0; c < 2; ++c) {
            float *out = (c ? oi : or_) + (size_t)p * j;
            if (p == 4) { /* the 4 x 4 transpose of 128-bit lanes */
                const __m512 u0 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0x44);
                const __m512 u1 = _mm512_shuffle_f32x4(y[c][2], y[c][3], 0x44);
                const __m512 u2 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0xEE);
                const __m512 u3 = _mm512_shuffle_f32x4(y[c][2], y[c][3], 0xEE);
                _mm512_storeu_ps(out, _mm512_shuffle_f32x4(u0, u1, 0x88));
                _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(u0, u1, 0xDD));
                _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(u2, u3, 0x88));
                _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(u2, u3, 0xDD));
            } else { /* 2: lanes b of y_0, y_1 in the order 0 0 1 1 2 2 3 3 */
                const __m512 u0 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0x44);
                const __m512 u1 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0xEE);
                _mm512_storeu_ps(out, _mm512_shuffle_f32x4(u0, u0, 0xD8));
                _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(u1, u1, 0xD8));
            }
        }
    }
    return j;
}

/* a pass with Ns >= 4 (one specialised copy per radix: FFT_BY_RADIX) */
static void pass_p(uint32_t P, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                   float *or_, float *oi)
{
    if (Ns == 4 && (P == 4 || P == 2)) pass_wide(P, M, Ns, tw, ir, ii, or_, oi, pass_ns4(P, M, tw, ir, ii, or_, oi));
    else pass_wide(P, M, Ns, tw, ir, ii, or_, oi, 0);
}

static void pass_avx512(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir,
                        const float *ii, float *or_, float *oi)
{
    if (Ns >= 4) FFT_BY_RADIX(pass_p, p, M, Ns, tw, ir, ii, or_, oi);
    else if (Ns == 1 && p == 4 && M / 4 >= 16) first4(M, tw, ir, ii, or_, oi);
    else rnc__fft_pass(p, M, Ns, tw, ir, ii, or_, oi);
}

/* re[m] = window[2m] x[2m], im[m] = window[2m+1] x[2m+1] for 16 m at a time */
static uint32_t window_avx512(const rnc_fft_args *a, float *re, float *im)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    uint32_t m = 0;
    for (; m + 16 <= a->m; m += 16) {
        const __m512 u0 = FFT_MUL(_mm512_loadu_ps(a->window + 2 * m), _mm512_loadu_ps(a->x + 2 * m));
        const __m512 u1 = FFT_MUL(_mm512_loadu_ps(a->window + 2 * m + 16), _mm512_loadu_ps(a->x + 2 * m + 16));
        _mm512_storeu_ps(re + m, _mm512_permutex2var_ps(u0, even, u1));
        _mm512_storeu_ps(im + m, _mm512_permutex2var_ps(u0, odd, u1));
    }
    return m;
}

/* bins k and M - k for 16 k at a time (k0 .. k0 + 15 <= M/2; the M - k side loaded and stored
 * reversed), the driver's operations lane by lane; returns the first k left to the driver */
static uint32_t split_avx512(const rnc_fft_args *a, float *re, float *im)
{
    const uint32_t M = a->m;
    const float *wr = a->tw, *wi = wr + M / 2 + 1;
    const __m512i rev = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    uint32_t k = 1;
    for (; k + 15 <= M / 2; k += 16) {
        const size_t q = M - k - 15; /* the first of the 16 mirrored bins */
        const __m512 rk = _mm512_loadu_ps(re + k), ik = _mm512_loadu_ps(im + k);
        const __m512 rq = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(re + q));
        const __m512 iq = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(im + q));
        __m512 pk, pq;
        fft_split_bins(rk, ik, rq, iq, _mm512_loadu_ps(wr + k), _mm512_loadu_ps(wi + k), &pk, &pq);
        _mm512_storeu_ps(a->p + k, pk);
        _mm512_storeu_ps(a->p + q, _mm512_permutexvar_ps(rev, pq));
    }
    return k;
}

void rnc_f32_rfft_power_avx512(const rnc_fft_args *a)
{
    rnc__rfft_power(a, pass_avx512, window_avx512, split_avx512);
}

#else
typedef int rnc_fft_avx512_unused;
#endif
#endif
