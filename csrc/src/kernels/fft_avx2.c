/* AVX2 passes of the log_mel real FFT (f32_fft_generic.c has the maths and the driver; the
 * AVX-512 row fft_avx512.c is the same plan at 16 lanes).
 *
 * Compiled only with this file's flags: -mavx2 -mfma (no FMA is used: multiplies and adds apart).
 *
 * A pass whose blocks hold Ns >= 8 outputs runs 8 of them (lanes k .. k + 7, a short last group
 * masked) per instruction: in, twiddles and out are contiguous in k. A pass with Ns = 4 runs two
 * blocks per instruction (lane 4 b + k: block b, output k; the twiddles of k repeated in each
 * 128-bit half), each block's outputs stored by 128-bit halves; Ns = 5 .. 7 runs 8 lanes with the
 * tail masked. A first pass of radix 4 with M/4 >= 8 runs 8 butterflies at a time (outputs
 * interleaved in registers, the last M/4 mod 8 one by one); other passes with Ns < 4 are the
 * generic's. The window (even / odd samples apart by a shuffle) and the split into bins (8 bins k
 * and the 8 mirrored ones M - k, loaded and stored reversed) run 8 at a time as well. Each lane
 * computes the generic code's operations in its order (multiplies and adds apart), so the result
 * is the generic row's bit for bit.
 */
#if !defined(RNC_NO_FFT) /* a build without the FFT (kernel_list.h) */
#include "../internal.h"

#if defined(__AVX2__)
#include <immintrin.h>

#define FFT_V __m256
#define FFT_ADD _mm256_add_ps
#define FFT_SUB _mm256_sub_ps
#define FFT_MUL _mm256_mul_ps
#define FFT_NEG(a) _mm256_xor_ps(a, _mm256_set1_ps(-0.0f))
#define FFT_SET1 _mm256_set1_ps
#include "fft_butterfly.h"

/* 8 floats at p, or the lanes of mk only (the others read as 0, not touched in memory) */
static inline __m256 ld(const float *p, int full, __m256i mk)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mk);
}

static inline void st(float *p, __m256 v, int full, __m256i mk)
{
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mk, v);
}

/* lanes k .. k + 7 of block j0 (the lanes of mk only unless full) */
static inline void group(uint32_t P, size_t L, size_t Ns, const float *twr, const float *twi, const float *ir,
                         const float *ii, float *or_, float *oi, size_t j0, size_t k, int full, __m256i mk)
{
    const size_t j = j0 + k;
    __m256 ar[5], ai[5], yr[5], yi[5];
    ar[0] = ld(ir + j, full, mk), ai[0] = ld(ii + j, full, mk);
    for (uint32_t r = 1; r < P; ++r) {
        const __m256 xr = ld(ir + j + r * L, full, mk), xi = ld(ii + j + r * L, full, mk);
        const __m256 wr = ld(twr + (r - 1) * Ns + k, full, mk), wi = ld(twi + (r - 1) * Ns + k, full, mk);
        fft_twiddle(xr, xi, wr, wi, &ar[r], &ai[r]);
    }
    fft_bf(P, ar, ai, yr, yi, 1);
    float *outr = or_ + j0 * P + k, *outi = oi + j0 * P + k;
    for (uint32_t r = 0; r < P; ++r) {
        st(outr + r * Ns, yr[r], full, mk);
        st(outi + r * Ns, yi[r], full, mk);
    }
}

/* blocks j0 = first, first + Ns, ... of a pass with Ns >= 4, 8 lanes k at a time */
static inline void pass_wide(uint32_t P, uint32_t M, uint32_t ns, const float *tw, const float *ir,
                             const float *ii, float *or_, float *oi, uint32_t first)
{
    const size_t L = M / P, Ns = ns, tail = ns % 8; /* size_t indices: no 32-bit wrap in the addressing */
    const float *twr = tw, *twi = tw + (P - 1) * Ns;
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t j0 = first; j0 < L; j0 += Ns) {
        size_t k = 0;
        for (; k + 8 <= Ns; k += 8) group(P, L, Ns, twr, twi, ir, ii, or_, oi, j0, k, 1, mk);
        if (tail) group(P, L, Ns, twr, twi, ir, ii, or_, oi, j0, k, 0, mk);
    }
}

/* A pass with Ns = 4: two blocks j, j + 4 per instruction (in[j + r L] contiguous in j, the
 * twiddles of k in both halves), the 128-bit halves b of y_r to out[(j + 4 b) P + 4 r]. Returns
 * the first block left (L mod 8 = 4: one) to pass_wide. */
static inline uint32_t pass_ns4(uint32_t P, uint32_t M, const float *tw, const float *ir, const float *ii,
                                float *or_, float *oi)
{
    const size_t L = M / P;
    const float *twr = tw, *twi = tw + (P - 1) * 4;
    __m256 wr[5], wi[5];
    for (uint32_t r = 1; r < P; ++r) {
        wr[r] = _mm256_broadcast_ps((const __m128 *)(twr + (r - 1) * 4));
        wi[r] = _mm256_broadcast_ps((const __m128 *)(twi + (r - 1) * 4));
    }
    size_t j = 0;
    for (; j + 8 <= L; j += 8) {
        __m256 ar[5], ai[5], yr[5], yi[5];
        ar[0] = _mm256_loadu_ps(ir + j), ai[0] = _mm256_loadu_ps(ii + j);
        for (uint32_t r = 1; r < P; ++r) {
            const __m256 xr = _mm256_loadu_ps(ir + j + r * L), xi = _mm256_loadu_ps(ii + j + r * L);
            fft_twiddle(xr, xi, wr[r], wi[r], &ar[r], &ai[r]);
        }
        fft_bf(P, ar, ai, yr, yi, 1);
        float *o0r = or_ + j * P, *o0i = oi + j * P;
        float *o1r = o0r + 4 * P, *o1i = o0i + 4 * P;
        for (uint32_t r = 0; r < P; ++r) {
            _mm_storeu_ps(o0r + 4 * r, _mm256_castps256_ps128(yr[r]));
            _mm_storeu_ps(o0i + 4 * r, _mm256_castps256_ps128(yi[r]));
            _mm_storeu_ps(o1r + 4 * r, _mm256_extractf128_ps(yr[r], 1));
            _mm_storeu_ps(o1i + 4 * r, _mm256_extractf128_ps(yi[r], 1));
        }
    }
    return (uint32_t)j;
}

/* y0..y3 (lanes j) to out[4 j + r] for 8 j: pairs interleaved within 128-bit halves, then the
 * halves exchanged */
static inline void store4(float *out, __m256 y0, __m256 y1, __m256 y2, __m256 y3)
{
    const __m256 t0 = _mm256_unpacklo_ps(y0, y1), t1 = _mm256_unpackhi_ps(y0, y1);
    const __m256 t2 = _mm256_unpacklo_ps(y2, y3), t3 = _mm256_unpackhi_ps(y2, y3);
    const __m256 u0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    const __m256 u3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

/* The first pass (Ns = 1, no twiddles) of radix 4 with L = M/4 >= 8: 8 butterflies j per
 * instruction, their outputs out[4 j + r] interleaved by store4; the last L mod 8 butterflies by the
 * generic pass */
static void first4(uint32_t M, const float *tw, const float *ir, const float *ii, float *or_, float *oi)
{
    const size_t L = M / 4;
    size_t j = 0;
    for (; j + 8 <= L; j += 8) {
        __m256 ar[4], ai[4], yr[4], yi[4];
        for (uint32_t r = 0; r < 4; ++r) ar[r] = _mm256_loadu_ps(ir + j + r * L), ai[r] = _mm256_loadu_ps(ii + j + r * L);
        fft_bf(4, ar, ai, yr, yi, 1);
        store4(or_ + 4 * (size_t)j, yr[0], yr[1], yr[2], yr[3]);
        store4(oi + 4 * (size_t)j, yi[0], yi[1], yi[2], yi[3]);
    }
    if (j < L) rnc__fft_pass_from(4, (uint32_t)M, 1, (uint32_t)j, tw, ir, ii, or_, oi);
}

/* a pass with Ns >= 4 (one specialised copy per radix: FFT_BY_RADIX) */
static void pass_p(uint32_t P, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                   float *or_, float *oi)
{
    if (Ns == 4) pass_wide(P, M, Ns, tw, ir, ii, or_, oi, pass_ns4(P, M, tw, ir, ii, or_, oi));
    else pass_wide(P, M, Ns, tw, ir, ii, or_, oi, 0);
}

static void pass_avx2(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                      float *or_, float *oi)
{
    if (Ns >= 4) FFT_BY_RADIX(pass_p, p, M, Ns, tw, ir, ii, or_, oi);
    else if (Ns == 1 && p == 4 && M / 4 >= 8) first4(M, tw, ir, ii, or_, oi);
    else rnc__fft_pass(p, M, Ns, tw, ir, ii, or_, oi);
}

/* re[m] = window[2m] x[2m], im[m] = window[2m+1] x[2m+1] for 8 m at a time: the products in
 * sample order, then the even and odd lanes gathered (within 128-bit halves, then the 64-bit
 * quarters put in order) */
static uint32_t window_avx2(const rnc_fft_args *a, float *re, float *im)
{
    const float *win = a->window, *xs = a->x; /* read once: the stores may alias *a */
    const size_t M = a->m;
    size_t m = 0;
    for (; m + 8 <= M; m += 8) {
        const __m256 u0 = FFT_MUL(_mm256_loadu_ps(win + 2 * m), _mm256_loadu_ps(xs + 2 * m));
        const __m256 u1 = FFT_MUL(_mm256_loadu_ps(win + 2 * m + 8), _mm256_loadu_ps(xs + 2 * m + 8));
        const __m256 ev = _mm256_shuffle_ps(u0, u1, 0x88), od = _mm256_shuffle_ps(u0, u1, 0xDD);
        _mm256_storeu_ps(re + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
        _mm256_storeu_ps(im + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
    }
    return (uint32_t)m;
}

/* bins k and M - k for 8 k at a time (k0 .. k0 + 7 <= M/2; the M - k side loaded and stored
 * reversed), the driver's operations lane by lane; returns the first k left to the driver */
static uint32_t split_avx2(const rnc_fft_args *a, float *re, float *im)
{
    const size_t M = a->m;
    const float *wr = a->tw, *wi = wr + M / 2 + 1;
    float *p = a->p; /* read once: the stores may alias *a */
    const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    size_t k = 1;
    for (; k + 7 <= M / 2; k += 8) {
        const size_t q = M - k - 7; /* the first of the 8 mirrored bins */
        const __m256 rk = _mm256_loadu_ps(re + k), ik = _mm256_loadu_ps(im + k);
        const __m256 rq = _mm256_permutevar8x32_ps(_mm256_loadu_ps(re + q), rev);
        const __m256 iq = _mm256_permutevar8x32_ps(_mm256_loadu_ps(im + q), rev);
        __m256 pk, pq;
        fft_split_bins(rk, ik, rq, iq, _mm256_loadu_ps(wr + k), _mm256_loadu_ps(wi + k), &pk, &pq);
        _mm256_storeu_ps(p + k, pk);
        _mm256_storeu_ps(p + q, _mm256_permutevar8x32_ps(pq, rev));
    }
    return (uint32_t)k;
}

void rnc_f32_rfft_power_avx2(const rnc_fft_args *a) { rnc__rfft_power(a, pass_avx2, window_avx2, split_avx2); }

#else
typedef int rnc_fft_avx2_unused;
#endif
#endif
