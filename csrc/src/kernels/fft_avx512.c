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

#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps

/* the input r of lane group k: in[j + r L] times its twiddle (x w_r - y w_i, x w_i + y w_r) */
#define LOAD_TW(r)                                                                                \
    const __m512 xr##r = _mm512_maskz_loadu_ps(mk, ir + j + (r) * L);                            \
    const __m512 xi##r = _mm512_maskz_loadu_ps(mk, ii + j + (r) * L);                            \
    const __m512 wr##r = _mm512_maskz_loadu_ps(mk, twr + ((r) - 1) * Ns + k);                    \
    const __m512 wi##r = _mm512_maskz_loadu_ps(mk, twi + ((r) - 1) * Ns + k);                    \
    const __m512 ar##r = SUB(MUL(xr##r, wr##r), MUL(xi##r, wi##r));                              \
    const __m512 ai##r = ADD(MUL(xr##r, wi##r), MUL(xi##r, wr##r));
#define STORE(r, vr, vi)                                                                          \
    do {                                                                                          \
        _mm512_mask_storeu_ps(yr + (r) * Ns, mk, vr);                                             \
        _mm512_mask_storeu_ps(yi + (r) * Ns, mk, vi);                                             \
    } while (0)

/* blocks j0 = first, first + Ns, ... of a pass with Ns >= 4, 16 lanes k at a time */
static void pass_wide(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir,
                      const float *ii, float *or_, float *oi, uint32_t first)
{
    const uint32_t L = M / p;
    const float *twr = tw, *twi = tw + (size_t)(p - 1) * Ns;
    for (uint32_t j0 = first; j0 < L; j0 += Ns)
        for (uint32_t k = 0; k < Ns; k += 16) {
            const __mmask16 mk = Ns - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (Ns - k)) - 1);
            const uint32_t j = j0 + k;
            float *yr = or_ + (size_t)j0 * p + k, *yi = oi + (size_t)j0 * p + k;
            const __m512 ar0 = _mm512_maskz_loadu_ps(mk, ir + j), ai0 = _mm512_maskz_loadu_ps(mk, ii + j);
            if (p == 4) {
                LOAD_TW(1)
                LOAD_TW(2)
                LOAD_TW(3)
                const __m512 t0r = ADD(ar0, ar2), t0i = ADD(ai0, ai2);
                const __m512 t1r = SUB(ar0, ar2), t1i = SUB(ai0, ai2);
                const __m512 t2r = ADD(ar1, ar3), t2i = ADD(ai1, ai3);
                const __m512 t3r = SUB(ar1, ar3), t3i = SUB(ai1, ai3);
                STORE(0, ADD(t0r, t2r), ADD(t0i, t2i));
                STORE(1, ADD(t1r, t3i), SUB(t1i, t3r));
                STORE(2, SUB(t0r, t2r), SUB(t0i, t2i));
                STORE(3, SUB(t1r, t3i), ADD(t1i, t3r));
            } else if (p == 2) {
                LOAD_TW(1)
                STORE(0, ADD(ar0, ar1), ADD(ai0, ai1));
                STORE(1, SUB(ar0, ar1), SUB(ai0, ai1));
            } else if (p == 3) {
                LOAD_TW(1)
                LOAD_TW(2)
                const __m512 h = _mm512_set1_ps(0.866025403784438647f), half = _mm512_set1_ps(0.5f);
                const __m512 sr = ADD(ar1, ar2), si = ADD(ai1, ai2);
                const __m512 dr = SUB(ar1, ar2), di = SUB(ai1, ai2);
                const __m512 mr = SUB(ar0, MUL(half, sr)), mi = SUB(ai0, MUL(half, si));
                STORE(0, ADD(ar0, sr), ADD(ai0, si));
                STORE(1, ADD(mr, MUL(h, di)), SUB(mi, MUL(h, dr)));
                STORE(2, SUB(mr, MUL(h, di)), ADD(mi, MUL(h, dr)));
            } else { /* 5 */
                LOAD_TW(1)
                LOAD_TW(2)
                LOAD_TW(3)
                LOAD_TW(4)
                const __m512 c1 = _mm512_set1_ps(0.309016994374947424f);
                const __m512 c2 = _mm512_set1_ps(-0.809016994374947424f);
                const __m512 s1 = _mm512_set1_ps(0.951056516295153572f);
                const __m512 s2 = _mm512_set1_ps(0.587785252292473129f);
                const __m512 s14r = ADD(ar1, ar4), s14i = ADD(ai1, ai4);
                const __m512 d14r = SUB(ar1, ar4), d14i = SUB(ai1, ai4);
                const __m512 s23r = ADD(ar2, ar3), s23i = ADD(ai2, ai3);
                const __m512 d23r = SUB(ar2, ar3), d23i = SUB(ai2, ai3);
                const __m512 m1r = ADD(ADD(ar0, MUL(c1, s14r)), MUL(c2, s23r));
                const __m512 m1i = ADD(ADD(ai0, MUL(c1, s14i)), MUL(c2, s23i));
                const __m512 m2r = ADD(ADD(ar0, MUL(c2, s14r)), MUL(c1, s23r));
                const __m512 m2i = ADD(ADD(ai0, MUL(c2, s14i)), MUL(c1, s23i));
                const __m512 n1r = ADD(MUL(s1, d14r), MUL(s2, d23r)), n1i = ADD(MUL(s1, d14i), MUL(s2, d23i));
                const __m512 n2r = SUB(MUL(s2, d14r), MUL(s1, d23r)), n2i = SUB(MUL(s2, d14i), MUL(s1, d23i));
                STORE(0, ADD(ADD(ar0, s14r), s23r), ADD(ADD(ai0, s14i), s23i));
                STORE(1, ADD(m1r, n1i), SUB(m1i, n1r));
                STORE(4, SUB(m1r, n1i), ADD(m1i, n1r));
                STORE(2, ADD(m2r, n2i), SUB(m2i, n2r));
                STORE(3, SUB(m2r, n2i), ADD(m2i, n2r));
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
 * last L mod 16 butterflies one at a time (the generic's operations) */
static void first4(uint32_t M, const float *ir, const float *ii, float *or_, float *oi)
{
    const uint32_t L = M / 4;
    uint32_t j = 0;
    for (; j + 16 <= L; j += 16) {
        const __m512 ar0 = _mm512_loadu_ps(ir + j), ai0 = _mm512_loadu_ps(ii + j);
        const __m512 ar1 = _mm512_loadu_ps(ir + j + L), ai1 = _mm512_loadu_ps(ii + j + L);
        const __m512 ar2 = _mm512_loadu_ps(ir + j + 2 * L), ai2 = _mm512_loadu_ps(ii + j + 2 * L);
        const __m512 ar3 = _mm512_loadu_ps(ir + j + 3 * L), ai3 = _mm512_loadu_ps(ii + j + 3 * L);
        const __m512 t0r = ADD(ar0, ar2), t0i = ADD(ai0, ai2);
        const __m512 t1r = SUB(ar0, ar2), t1i = SUB(ai0, ai2);
        const __m512 t2r = ADD(ar1, ar3), t2i = ADD(ai1, ai3);
        const __m512 t3r = SUB(ar1, ar3), t3i = SUB(ai1, ai3);
        store4(or_ + 4 * (size_t)j, ADD(t0r, t2r), ADD(t1r, t3i), SUB(t0r, t2r), SUB(t1r, t3i));
        store4(oi + 4 * (size_t)j, ADD(t0i, t2i), SUB(t1i, t3r), SUB(t0i, t2i), ADD(t1i, t3r));
    }
    for (; j < L; ++j) {
        const float t0r = ir[j] + ir[j + 2 * L], t0i = ii[j] + ii[j + 2 * L];
        const float t1r = ir[j] - ir[j + 2 * L], t1i = ii[j] - ii[j + 2 * L];
        const float t2r = ir[j + L] + ir[j + 3 * L], t2i = ii[j + L] + ii[j + 3 * L];
        const float t3r = ir[j + L] - ir[j + 3 * L], t3i = ii[j + L] - ii[j + 3 * L];
        float *yr = or_ + 4 * (size_t)j, *yi = oi + 4 * (size_t)j;
        yr[0] = t0r + t2r;
        yi[0] = t0i + t2i;
        yr[1] = t1r + t3i;
        yi[1] = t1i - t3r;
        yr[2] = t0r - t2r;
        yi[2] = t0i - t2i;
        yr[3] = t1r - t3i;
        yi[3] = t1i + t3r;
    }
}

/* A pass of radix 4 or 2 with Ns = 4: four blocks j0 .. j0 + 15 at a time (lane 4 b + k: block b,
 * output k; in[j + r L] contiguous in j, the twiddles of k repeated in each 128-bit lane); block
 * b's outputs out[(j0 + 4 b) p + 4 r + k] are the 128-bit lanes b of y_0 .. y_{p-1} side by side.
 * Returns the first block left (L mod 16 of them) to pass_wide. */
static uint32_t pass_ns4(uint32_t p, uint32_t M, const float *tw, const float *ir, const float *ii,
                         float *or_, float *oi)
{
    const uint32_t L = M / p;
    const float *twr = tw, *twi = tw + (size_t)(p - 1) * 4;
    uint32_t j = 0;
    for (; j + 16 <= L; j += 16) {
#define LOAD4(r)                                                                                  \
    const __m512 xr##r = _mm512_loadu_ps(ir + j + (r) * L), xi##r = _mm512_loadu_ps(ii + j + (r) * L); \
    const __m512 wr##r = _mm512_broadcast_f32x4(_mm_loadu_ps(twr + ((r) - 1) * 4));                \
    const __m512 wi##r = _mm512_broadcast_f32x4(_mm_loadu_ps(twi + ((r) - 1) * 4));                \
    const __m512 ar##r = SUB(MUL(xr##r, wr##r), MUL(xi##r, wi##r));                              \
    const __m512 ai##r = ADD(MUL(xr##r, wi##r), MUL(xi##r, wr##r));
        const __m512 ar0 = _mm512_loadu_ps(ir + j), ai0 = _mm512_loadu_ps(ii + j);
        if (p == 4) {
            LOAD4(1)
            LOAD4(2)
            LOAD4(3)
            const __m512 t0r = ADD(ar0, ar2), t0i = ADD(ai0, ai2);
            const __m512 t1r = SUB(ar0, ar2), t1i = SUB(ai0, ai2);
            const __m512 t2r = ADD(ar1, ar3), t2i = ADD(ai1, ai3);
            const __m512 t3r = SUB(ar1, ar3), t3i = SUB(ai1, ai3);
            const __m512 y[2][4] = {{ADD(t0r, t2r), ADD(t1r, t3i), SUB(t0r, t2r), SUB(t1r, t3i)},
                                    {ADD(t0i, t2i), SUB(t1i, t3r), SUB(t0i, t2i), ADD(t1i, t3r)}};
            for (int c = 0; c < 2; ++c) { /* the 4 x 4 transpose of 128-bit lanes */
                float *out = (c ? oi : or_) + 4 * (size_t)j;
                const __m512 u0 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0x44);
                const __m512 u1 = _mm512_shuffle_f32x4(y[c][2], y[c][3], 0x44);
                const __m512 u2 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0xEE);
                const __m512 u3 = _mm512_shuffle_f32x4(y[c][2], y[c][3], 0xEE);
                _mm512_storeu_ps(out, _mm512_shuffle_f32x4(u0, u1, 0x88));
                _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(u0, u1, 0xDD));
                _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(u2, u3, 0x88));
                _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(u2, u3, 0xDD));
            }
        } else { /* 2 */
            LOAD4(1)
            const __m512 y[2][2] = {{ADD(ar0, ar1), SUB(ar0, ar1)}, {ADD(ai0, ai1), SUB(ai0, ai1)}};
            for (int c = 0; c < 2; ++c) { /* lanes b of y_0, y_1 in the order 0 0 1 1 2 2 3 3 */
                float *out = (c ? oi : or_) + 2 * (size_t)j;
                const __m512 u0 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0x44);
                const __m512 u1 = _mm512_shuffle_f32x4(y[c][0], y[c][1], 0xEE);
                _mm512_storeu_ps(out, _mm512_shuffle_f32x4(u0, u0, 0xD8));
                _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(u1, u1, 0xD8));
            }
        }
#undef LOAD4
    }
    return j;
}

static void pass_avx512(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir,
                        const float *ii, float *or_, float *oi)
{
    if (Ns == 4 && (p == 4 || p == 2)) pass_wide(p, M, Ns, tw, ir, ii, or_, oi, pass_ns4(p, M, tw, ir, ii, or_, oi));
    else if (Ns >= 4) pass_wide(p, M, Ns, tw, ir, ii, or_, oi, 0);
    else if (Ns == 1 && p == 4 && M / 4 >= 16) first4(M, ir, ii, or_, oi);
    else rnc__fft_pass(p, M, Ns, tw, ir, ii, or_, oi);
}

/* re[m] = window[2m] x[2m], im[m] = window[2m+1] x[2m+1] for 16 m at a time */
static uint32_t window_avx512(const rnc_fft_args *a, float *re, float *im)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    uint32_t m = 0;
    for (; m + 16 <= a->m; m += 16) {
        const __m512 u0 = MUL(_mm512_loadu_ps(a->window + 2 * m), _mm512_loadu_ps(a->x + 2 * m));
        const __m512 u1 = MUL(_mm512_loadu_ps(a->window + 2 * m + 16), _mm512_loadu_ps(a->x + 2 * m + 16));
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
    const __m512 half = _mm512_set1_ps(0.5f), sign = _mm512_set1_ps(-0.0f);
    uint32_t k = 1;
    for (; k + 15 <= M / 2; k += 16) {
        const size_t q = M - k - 15; /* the first of the 16 mirrored bins */
        const __m512 rk = _mm512_loadu_ps(re + k), ik = _mm512_loadu_ps(im + k);
        const __m512 rq = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(re + q));
        const __m512 iq = _mm512_permutexvar_ps(rev, _mm512_loadu_ps(im + q));
        const __m512 fer = MUL(half, ADD(rk, rq)), fei = MUL(half, SUB(ik, iq));
        const __m512 dr = MUL(half, SUB(rk, rq)), di = MUL(half, ADD(ik, iq));
        const __m512 for_ = di, foi = _mm512_xor_ps(dr, sign);
        const __m512 w_r = _mm512_loadu_ps(wr + k), w_i = _mm512_loadu_ps(wi + k);
        const __m512 tr = SUB(MUL(for_, w_r), MUL(foi, w_i)), ti = ADD(MUL(for_, w_i), MUL(foi, w_r));
        const __m512 ar = ADD(fer, tr), ai = ADD(fei, ti), br = SUB(fer, tr), bi = SUB(fei, ti);
        _mm512_storeu_ps(a->p + k, ADD(MUL(ar, ar), MUL(ai, ai)));
        _mm512_storeu_ps(a->p + q, _mm512_permutexvar_ps(rev, ADD(MUL(br, br), MUL(bi, bi))));
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
