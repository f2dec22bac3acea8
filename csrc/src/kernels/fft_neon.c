/* aarch64 NEON passes of the log_mel real FFT (f32_fft_generic.c has the maths and the driver; the
 * x86 rows fft_avx2.c and fft_avx512.c are the same plan at 8 and 16 lanes).
 *
 * aarch64 only: its vector float arithmetic is IEEE (armv7 NEON flushes subnormals to zero, so
 * armhf runs the generic row). A pass whose blocks hold a multiple of 4 outputs (Ns = 4, 8, 12,
 * ...) runs 4 of them (lanes k .. k + 3) per instruction: in, twiddles and out are contiguous in
 * k. A first pass of radix 4 with M/4 >= 4 runs 4 butterflies at a time, their outputs
 * interleaved by vst4q (the last M/4 mod 4 one by one); other passes are the generic's. The window
 * (even / odd samples apart by vld2q) and the split into bins (4 bins k and the 4 mirrored ones
 * M - k, loaded and stored reversed) run 4 at a time as well. Each lane computes the generic
 * code's operations in its order (multiplies and adds apart: no vfmaq, no contraction), so the
 * result is the generic row's bit for bit.
 */
#if !defined(RNC_NO_FFT) && defined(__aarch64__) /* kernel_list.h: RNC_KERNELS_FFT_NEON */
#include <arm_neon.h>

#include "../internal.h"

#define FFT_V float32x4_t
#define FFT_ADD vaddq_f32
#define FFT_SUB vsubq_f32
#define FFT_MUL vmulq_f32
#define FFT_NEG vnegq_f32
#define FFT_SET1 vdupq_n_f32
#include "fft_butterfly.h"

/* blocks of a pass with Ns a multiple of 4, 4 lanes k at a time; inputs in[j + r L] times their
 * twiddles */
static inline void pass_wide(uint32_t P, uint32_t M, uint32_t ns, const float *tw, const float *ir,
                             const float *ii, float *or_, float *oi)
{
    const size_t L = M / P, Ns = ns; /* size_t indices: no 32-bit wrap to keep in the addressing */
    const float *twr = tw, *twi = tw + (P - 1) * Ns;
    for (size_t j0 = 0; j0 < L; j0 += Ns)
        for (size_t k = 0; k < Ns; k += 4) {
            const size_t j = j0 + k;
            float32x4_t ar[5], ai[5], yr[5], yi[5];
            ar[0] = vld1q_f32(ir + j), ai[0] = vld1q_f32(ii + j);
            for (uint32_t r = 1; r < P; ++r) {
                const float32x4_t xr = vld1q_f32(ir + j + r * L), xi = vld1q_f32(ii + j + r * L);
                const float32x4_t wr = vld1q_f32(twr + (r - 1) * Ns + k), wi = vld1q_f32(twi + (r - 1) * Ns + k);
                fft_twiddle(xr, xi, wr, wi, &ar[r], &ai[r]);
            }
            fft_bf(P, ar, ai, yr, yi, 1);
            float *outr = or_ + j0 * P + k, *outi = oi + j0 * P + k;
            for (uint32_t r = 0; r < P; ++r) {
                vst1q_f32(outr + r * Ns, yr[r]);
                vst1q_f32(outi + r * Ns, yi[r]);
            }
        }
}

/* The first pass (Ns = 1, no twiddles) of radix 4 with L = M/4 >= 4: 4 butterflies j per
 * instruction, their outputs out[4 j + r] interleaved by vst4q; the last L mod 4 butterflies by the
 * generic pass */
static void first4(uint32_t M, const float *tw, const float *ir, const float *ii, float *or_, float *oi)
{
    const size_t L = M / 4;
    size_t j = 0;
    for (; j + 4 <= L; j += 4) {
        float32x4_t ar[4], ai[4];
        float32x4x4_t yr, yi;
        for (uint32_t r = 0; r < 4; ++r) ar[r] = vld1q_f32(ir + j + r * L), ai[r] = vld1q_f32(ii + j + r * L);
        fft_bf(4, ar, ai, yr.val, yi.val, 1);
        vst4q_f32(or_ + 4 * (size_t)j, yr);
        vst4q_f32(oi + 4 * (size_t)j, yi);
    }
    if (j < L) rnc__fft_pass_from(4, (uint32_t)M, 1, (uint32_t)j, tw, ir, ii, or_, oi);
}

static void pass_neon(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                      float *or_, float *oi)
{
    if (Ns >= 4 && Ns % 4 == 0) FFT_BY_RADIX(pass_wide, p, M, Ns, tw, ir, ii, or_, oi);
    else if (Ns == 1 && p == 4 && M / 4 >= 4) first4(M, tw, ir, ii, or_, oi);
    else rnc__fft_pass(p, M, Ns, tw, ir, ii, or_, oi);
}

/* re[m] = window[2m] x[2m], im[m] = window[2m+1] x[2m+1] for 4 m at a time (vld2q: even and odd
 * samples apart) */
static uint32_t window_neon(const rnc_fft_args *a, float *re, float *im)
{
    const float *win = a->window, *xs = a->x; /* read once: the stores may alias *a */
    const size_t M = a->m;
    size_t m = 0;
    for (; m + 4 <= M; m += 4) {
        const float32x4x2_t w = vld2q_f32(win + 2 * m), x = vld2q_f32(xs + 2 * m);
        vst1q_f32(re + m, FFT_MUL(w.val[0], x.val[0]));
        vst1q_f32(im + m, FFT_MUL(w.val[1], x.val[1]));
    }
    return (uint32_t)m;
}

static inline float32x4_t reverse(float32x4_t v)
{
    const float32x4_t s = vrev64q_f32(v); /* 1 0 3 2 */
    return vextq_f32(s, s, 2);            /* 3 2 1 0 */
}

/* bins k and M - k for 4 k at a time (k0 .. k0 + 3 <= M/2; the M - k side loaded and stored
 * reversed), the driver's operations lane by lane; returns the first k left to the driver */
static uint32_t split_neon(const rnc_fft_args *a, float *re, float *im)
{
    const size_t M = a->m;
    const float *wr = a->tw, *wi = wr + M / 2 + 1;
    float *p = a->p; /* read once: the stores may alias *a */
    size_t k = 1;
    for (; k + 3 <= M / 2; k += 4) {
        const size_t q = M - k - 3; /* the first of the 4 mirrored bins */
        const float32x4_t rk = vld1q_f32(re + k), ik = vld1q_f32(im + k);
        const float32x4_t rq = reverse(vld1q_f32(re + q)), iq = reverse(vld1q_f32(im + q));
        float32x4_t pk, pq;
        fft_split_bins(rk, ik, rq, iq, vld1q_f32(wr + k), vld1q_f32(wi + k), &pk, &pq);
        vst1q_f32(p + k, pk);
        vst1q_f32(p + q, reverse(pq));
    }
    return (uint32_t)k;
}

void rnc_f32_rfft_power_neon(const rnc_fft_args *a) { rnc__rfft_power(a, pass_neon, window_neon, split_neon); }

#else
typedef int rnc_fft_neon_unused;
#endif
