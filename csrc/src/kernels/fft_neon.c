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

#define ADD vaddq_f32
#define SUB vsubq_f32
#define MUL vmulq_f32

/* The butterfly of radix P (forward) on the lanes' inputs a[0..P) (twiddles applied), into
 * y[0..P): bf2 .. bf5 of f32_fft_generic.c, operation for operation. */
static inline void bfv(uint32_t P, const float32x4_t *ar, const float32x4_t *ai, float32x4_t *yr,
                       float32x4_t *yi)
{
    if (P == 4) {
        const float32x4_t t0r = ADD(ar[0], ar[2]), t0i = ADD(ai[0], ai[2]);
        const float32x4_t t1r = SUB(ar[0], ar[2]), t1i = SUB(ai[0], ai[2]);
        const float32x4_t t2r = ADD(ar[1], ar[3]), t2i = ADD(ai[1], ai[3]);
        const float32x4_t t3r = SUB(ar[1], ar[3]), t3i = SUB(ai[1], ai[3]);
        yr[0] = ADD(t0r, t2r), yi[0] = ADD(t0i, t2i);
        yr[1] = ADD(t1r, t3i), yi[1] = SUB(t1i, t3r);
        yr[2] = SUB(t0r, t2r), yi[2] = SUB(t0i, t2i);
        yr[3] = SUB(t1r, t3i), yi[3] = ADD(t1i, t3r);
    } else if (P == 2) {
        yr[0] = ADD(ar[0], ar[1]), yi[0] = ADD(ai[0], ai[1]);
        yr[1] = SUB(ar[0], ar[1]), yi[1] = SUB(ai[0], ai[1]);
    } else if (P == 3) {
        const float32x4_t h = vdupq_n_f32(0.866025403784438647f), half = vdupq_n_f32(0.5f);
        const float32x4_t sr = ADD(ar[1], ar[2]), si = ADD(ai[1], ai[2]);
        const float32x4_t dr = SUB(ar[1], ar[2]), di = SUB(ai[1], ai[2]);
        const float32x4_t mr = SUB(ar[0], MUL(half, sr)), mi = SUB(ai[0], MUL(half, si));
        yr[0] = ADD(ar[0], sr), yi[0] = ADD(ai[0], si);
        yr[1] = ADD(mr, MUL(h, di)), yi[1] = SUB(mi, MUL(h, dr));
        yr[2] = SUB(mr, MUL(h, di)), yi[2] = ADD(mi, MUL(h, dr));
    } else { /* 5 */
        const float32x4_t c1 = vdupq_n_f32(0.309016994374947424f), c2 = vdupq_n_f32(-0.809016994374947424f);
        const float32x4_t s1 = vdupq_n_f32(0.951056516295153572f), s2 = vdupq_n_f32(0.587785252292473129f);
        const float32x4_t s14r = ADD(ar[1], ar[4]), s14i = ADD(ai[1], ai[4]);
        const float32x4_t d14r = SUB(ar[1], ar[4]), d14i = SUB(ai[1], ai[4]);
        const float32x4_t s23r = ADD(ar[2], ar[3]), s23i = ADD(ai[2], ai[3]);
        const float32x4_t d23r = SUB(ar[2], ar[3]), d23i = SUB(ai[2], ai[3]);
        const float32x4_t m1r = ADD(ADD(ar[0], MUL(c1, s14r)), MUL(c2, s23r));
        const float32x4_t m1i = ADD(ADD(ai[0], MUL(c1, s14i)), MUL(c2, s23i));
        const float32x4_t m2r = ADD(ADD(ar[0], MUL(c2, s14r)), MUL(c1, s23r));
        const float32x4_t m2i = ADD(ADD(ai[0], MUL(c2, s14i)), MUL(c1, s23i));
        const float32x4_t n1r = ADD(MUL(s1, d14r), MUL(s2, d23r)), n1i = ADD(MUL(s1, d14i), MUL(s2, d23i));
        const float32x4_t n2r = SUB(MUL(s2, d14r), MUL(s1, d23r)), n2i = SUB(MUL(s2, d14i), MUL(s1, d23i));
        yr[0] = ADD(ADD(ar[0], s14r), s23r), yi[0] = ADD(ADD(ai[0], s14i), s23i);
        yr[1] = ADD(m1r, n1i), yi[1] = SUB(m1i, n1r);
        yr[4] = SUB(m1r, n1i), yi[4] = ADD(m1i, n1r);
        yr[2] = ADD(m2r, n2i), yi[2] = SUB(m2i, n2r);
        yr[3] = SUB(m2r, n2i), yi[3] = ADD(m2i, n2r);
    }
}

/* blocks of a pass with Ns a multiple of 4, 4 lanes k at a time; inputs in[j + r L] times their
 * twiddles (x w_r - y w_i, x w_i + y w_r) */
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
                ar[r] = SUB(MUL(xr, wr), MUL(xi, wi));
                ai[r] = ADD(MUL(xr, wi), MUL(xi, wr));
            }
            bfv(P, ar, ai, yr, yi);
            float *outr = or_ + j0 * P + k, *outi = oi + j0 * P + k;
            for (uint32_t r = 0; r < P; ++r) {
                vst1q_f32(outr + r * Ns, yr[r]);
                vst1q_f32(outi + r * Ns, yi[r]);
            }
        }
}

/* The first pass (Ns = 1, no twiddles) of radix 4 with L = M/4 >= 4: 4 butterflies j per
 * instruction, their outputs out[4 j + r] interleaved by vst4q; the last L mod 4 butterflies one
 * at a time (the generic's operations) */
static void first4(uint32_t M, const float *ir, const float *ii, float *or_, float *oi)
{
    const size_t L = M / 4;
    size_t j = 0;
    for (; j + 4 <= L; j += 4) {
        float32x4_t ar[4], ai[4];
        float32x4x4_t yr, yi;
        for (uint32_t r = 0; r < 4; ++r) ar[r] = vld1q_f32(ir + j + r * L), ai[r] = vld1q_f32(ii + j + r * L);
        bfv(4, ar, ai, yr.val, yi.val);
        vst4q_f32(or_ + 4 * (size_t)j, yr);
        vst4q_f32(oi + 4 * (size_t)j, yi);
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

static void pass_neon(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                      float *or_, float *oi)
{
    if (Ns >= 4 && Ns % 4 == 0) { /* one specialised copy per radix */
        if (p == 4) pass_wide(4, M, Ns, tw, ir, ii, or_, oi);
        else if (p == 2) pass_wide(2, M, Ns, tw, ir, ii, or_, oi);
        else if (p == 3) pass_wide(3, M, Ns, tw, ir, ii, or_, oi);
        else pass_wide(5, M, Ns, tw, ir, ii, or_, oi);
    } else if (Ns == 1 && p == 4 && M / 4 >= 4) {
        first4(M, ir, ii, or_, oi);
    } else {
        rnc__fft_pass(p, M, Ns, tw, ir, ii, or_, oi);
    }
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
        vst1q_f32(re + m, MUL(w.val[0], x.val[0]));
        vst1q_f32(im + m, MUL(w.val[1], x.val[1]));
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
    const float32x4_t half = vdupq_n_f32(0.5f);
    size_t k = 1;
    for (; k + 3 <= M / 2; k += 4) {
        const size_t q = M - k - 3; /* the first of the 4 mirrored bins */
        const float32x4_t rk = vld1q_f32(re + k), ik = vld1q_f32(im + k);
        const float32x4_t rq = reverse(vld1q_f32(re + q)), iq = reverse(vld1q_f32(im + q));
        const float32x4_t fer = MUL(half, ADD(rk, rq)), fei = MUL(half, SUB(ik, iq));
        const float32x4_t dr = MUL(half, SUB(rk, rq)), di = MUL(half, ADD(ik, iq));
        const float32x4_t for_ = di, foi = vnegq_f32(dr);
        const float32x4_t w_r = vld1q_f32(wr + k), w_i = vld1q_f32(wi + k);
        const float32x4_t tr = SUB(MUL(for_, w_r), MUL(foi, w_i)), ti = ADD(MUL(for_, w_i), MUL(foi, w_r));
        const float32x4_t ar = ADD(fer, tr), ai = ADD(fei, ti), br = SUB(fer, tr), bi = SUB(fei, ti);
        vst1q_f32(p + k, ADD(MUL(ar, ar), MUL(ai, ai)));
        vst1q_f32(p + q, reverse(ADD(MUL(br, br), MUL(bi, bi))));
    }
    return (uint32_t)k;
}

void rnc_f32_rfft_power_neon(const rnc_fft_args *a) { rnc__rfft_power(a, pass_neon, window_neon, split_neon); }

#else
typedef int rnc_fft_neon_unused;
#endif
