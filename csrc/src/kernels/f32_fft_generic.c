/* The log_mel record's power spectrum by a real FFT, portable C (model.c log_mel_row; the plan and
 * its twiddles: rnc__fft_plan, rnc__fft_twiddles below).
 *
 * n = 2M windowed samples u[i] = window[i] x[i] are read as M complex points z[m] = u[2m] +
 * i u[2m+1] (split: re, im), transformed by a complex FFT of M points, Z[k] = sum_m z[m]
 * e^{-2 pi i m k / M}, then split into the spectrum of u: for 0 < k < M, with A = Z[k] and
 * B = conj(Z[M - k]),
 *     Fe = (A + B) / 2,  Fo = -i (A - B) / 2,  X[k] = Fe + w^k Fo,  X[M - k] = conj(Fe - w^k Fo)
 * (w = e^{-2 pi i / n}), X[0] = Re Z[0] + Im Z[0], X[M] = Re Z[0] - Im Z[0]; p[k] = |X[k]|^2
 * (power 2) or |X[k]| (power 1) for k <= M.
 *
 * The complex FFT is Stockham's self-sorting form (no bit reversal), one pass per radix p of the
 * plan (4, then 2, 3, 5), Ns = the product of the radices before it (1 at the first pass), L = M/p:
 * for j < L, k = j mod Ns,
 *     a_r = in[j + r L] e^{-2 pi i r k / (Ns p)}  (r < p),  out[(j - k) p + k + r Ns] = DFT_p(a)_r
 * ping-ponging between two pairs of M-float arrays. Every product is a multiply then an add in
 * this order (no contraction: COMMON_CFLAGS), so every build gives the same bits. */
#include <math.h>

#include "../internal.h"

#if !defined(RNC_NO_FFT) /* a build without the FFT runs log_mel by the tables' product */
/* The butterflies of radix 2, 3, 4, 5 (forward: e^{-2 pi i r s / p}) on a[0..p) (their inputs
 * already multiplied by the twiddles), into y[r * os] (real and imaginary parts apart). */
static inline void bf2(const float *ar, const float *ai, float *yr, float *yi, size_t os)
{
    yr[0] = ar[0] + ar[1];
    yi[0] = ai[0] + ai[1];
    yr[os] = ar[0] - ar[1];
    yi[os] = ai[0] - ai[1];
}

static inline void bf3(const float *ar, const float *ai, float *yr, float *yi, size_t os)
{
    const float h = 0.866025403784438647f; /* sin(2 pi / 3) */
    const float sr = ar[1] + ar[2], si = ai[1] + ai[2];
    const float dr = ar[1] - ar[2], di = ai[1] - ai[2];
    const float mr = ar[0] - 0.5f * sr, mi = ai[0] - 0.5f * si;
    yr[0] = ar[0] + sr;
    yi[0] = ai[0] + si;
    yr[os] = mr + h * di; /* m - i h d */
    yi[os] = mi - h * dr;
    yr[2 * os] = mr - h * di; /* m + i h d */
    yi[2 * os] = mi + h * dr;
}

static inline void bf4(const float *ar, const float *ai, float *yr, float *yi, size_t os)
{
    const float t0r = ar[0] + ar[2], t0i = ai[0] + ai[2];
    const float t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
    const float t2r = ar[1] + ar[3], t2i = ai[1] + ai[3];
    const float t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
    yr[0] = t0r + t2r;
    yi[0] = t0i + t2i;
    yr[os] = t1r + t3i; /* t1 - i t3 */
    yi[os] = t1i - t3r;
    yr[2 * os] = t0r - t2r;
    yi[2 * os] = t0i - t2i;
    yr[3 * os] = t1r - t3i; /* t1 + i t3 */
    yi[3 * os] = t1i + t3r;
}

static inline void bf5(const float *ar, const float *ai, float *yr, float *yi, size_t os)
{
    const float c1 = 0.309016994374947424f, c2 = -0.809016994374947424f; /* cos(2 pi / 5), cos(4 pi / 5) */
    const float s1 = 0.951056516295153572f, s2 = 0.587785252292473129f;  /* sin(2 pi / 5), sin(4 pi / 5) */
    const float s14r = ar[1] + ar[4], s14i = ai[1] + ai[4];
    const float d14r = ar[1] - ar[4], d14i = ai[1] - ai[4];
    const float s23r = ar[2] + ar[3], s23i = ai[2] + ai[3];
    const float d23r = ar[2] - ar[3], d23i = ai[2] - ai[3];
    const float m1r = ar[0] + c1 * s14r + c2 * s23r, m1i = ai[0] + c1 * s14i + c2 * s23i;
    const float m2r = ar[0] + c2 * s14r + c1 * s23r, m2i = ai[0] + c2 * s14i + c1 * s23i;
    const float n1r = s1 * d14r + s2 * d23r, n1i = s1 * d14i + s2 * d23i;
    const float n2r = s2 * d14r - s1 * d23r, n2i = s2 * d14i - s1 * d23i;
    yr[0] = ar[0] + s14r + s23r;
    yi[0] = ai[0] + s14i + s23i;
    yr[os] = m1r + n1i; /* m1 - i n1 */
    yi[os] = m1i - n1r;
    yr[4 * os] = m1r - n1i; /* m1 + i n1 */
    yi[4 * os] = m1i + n1r;
    yr[2 * os] = m2r + n2i; /* m2 - i n2 */
    yi[2 * os] = m2i - n2r;
    yr[3 * os] = m2r - n2i; /* m2 + i n2 */
    yi[3 * os] = m2i + n2r;
}

/* One pass of radix P over blocks of Ns outputs: in (ir, ii) -> out (or_, oi); tw: (P - 1) Ns
 * twiddle real parts then as many imaginary parts (the first pass, Ns = 1, has none). Inputs
 * a_r = in[j + r L] times its twiddle (a multiply then an add: (x w_r - y w_i, x w_i + y w_r)).
 * Called with a constant P (one specialised copy per radix) or, in a build for size, once with P
 * at run time: the same operations either way. */
static inline void pass(uint32_t P, uint32_t M, uint32_t Ns, const float *tw, const float *restrict ir,
                        const float *restrict ii, float *restrict or_, float *restrict oi)
{
    const uint32_t L = M / P;
    const float *restrict twr = tw, *restrict twi = tw + (size_t)(P - 1) * Ns;
    float ar[5], ai[5];
    for (uint32_t j0 = 0; j0 < L; j0 += Ns)
        for (uint32_t k = 0; k < Ns; ++k) {
            const uint32_t j = j0 + k;
            for (uint32_t r = 0; r < P; ++r) {
                ar[r] = ir[j + r * L];
                ai[r] = ii[j + r * L];
            }
            if (Ns > 1) /* invariant: the compiler splits the loop on it */
                for (uint32_t r = 1; r < P; ++r) {
                    const float xr = ar[r], xi = ai[r];
                    const float wr = twr[(r - 1) * Ns + k], wi = twi[(r - 1) * Ns + k];
                    ar[r] = xr * wr - xi * wi;
                    ai[r] = xr * wi + xi * wr;
                }
            float *yr = or_ + (size_t)j0 * P + k, *yi = oi + (size_t)j0 * P + k;
            if (P == 4) bf4(ar, ai, yr, yi, Ns);
            else if (P == 2) bf2(ar, ai, yr, yi, Ns);
            else if (P == 3) bf3(ar, ai, yr, yi, Ns);
            else bf5(ar, ai, yr, yi, Ns);
        }
}

void rnc__fft_pass(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                   float *or_, float *oi)
{
#if defined(__OPTIMIZE_SIZE__) /* -Os: one copy */
    pass(p, M, Ns, tw, ir, ii, or_, oi);
#else
    if (p == 4) pass(4, M, Ns, tw, ir, ii, or_, oi);
    else if (p == 2) pass(2, M, Ns, tw, ir, ii, or_, oi);
    else if (p == 3) pass(3, M, Ns, tw, ir, ii, or_, oi);
    else pass(5, M, Ns, tw, ir, ii, or_, oi);
#endif
}

void rnc_f32_rfft_power_generic(const rnc_fft_args *a) { rnc__rfft_power(a, rnc__fft_pass, NULL, NULL); }

void rnc__rfft_power(const rnc_fft_args *a, rnc_fft_pass_fn pass, rnc_fft_part_fn window, rnc_fft_part_fn split)
{
    const uint32_t M = a->m;
    float *re = a->work, *im = re + M, *re2 = im + M, *im2 = re2 + M;
    for (uint32_t m = window ? window(a, re, im) : 0; m < M; ++m) {
        re[m] = a->window[2 * m] * a->x[2 * m];
        im[m] = a->window[2 * m + 1] * a->x[2 * m + 1];
    }
    const float *tw = a->tw + 2 * (size_t)(M / 2 + 1); /* the passes' twiddles after the split's */
    uint32_t Ns = 1;
    for (uint32_t s = 0; s < a->nst; ++s) {
        const uint32_t p = a->radix[s];
        pass(p, M, Ns, tw, re, im, re2, im2);
        if (s) tw += 2 * (size_t)(p - 1) * Ns;
        float *t = re;
        re = re2;
        re2 = t;
        t = im;
        im = im2;
        im2 = t;
        Ns *= p;
    }
    /* the split into the n/2 + 1 bins; w^k first in the table (real parts then imaginary parts,
     * k <= M/2) */
    const float *wr = a->tw, *wi = wr + M / 2 + 1;
    float *p = a->p;
    const float x0 = re[0] + im[0], xm = re[0] - im[0];
    p[0] = x0 * x0;
    p[M] = xm * xm;
    for (uint32_t k = split ? split(a, re, im) : 1; k <= M / 2; ++k) {
        const uint32_t q = M - k;
        const float fer = 0.5f * (re[k] + re[q]), fei = 0.5f * (im[k] - im[q]);
        const float dr = 0.5f * (re[k] - re[q]), di = 0.5f * (im[k] + im[q]); /* (A - B) / 2 */
        const float for_ = di, foi = -dr;                                        /* -i (A - B) / 2 */
        const float tr = for_ * wr[k] - foi * wi[k], ti = for_ * wi[k] + foi * wr[k];
        const float ar = fer + tr, ai = fei + ti, br = fer - tr, bi = fei - ti;
        p[k] = ar * ar + ai * ai;
        p[q] = br * br + bi * bi;
    }
    if (a->power == 1)
        for (uint32_t k = 0; k <= M; ++k) p[k] = sqrtf(p[k]);
}

/* e^{-2 pi i m / n} (m < n) from column 1 of the log_mel tables (packed, nf inputs; rows m <= n/2
 * hold cos(2 pi m / n) and -sin(2 pi m / n); the others mirror them). */
static void root(const float *dft, uint32_t nf, uint32_t n, uint32_t m, float *c, float *s)
{
    const uint32_t q = m <= n / 2 ? m : n - m;
    const size_t at = ((size_t)(q / 16) * nf + 1) * 16 + q % 16, sines = (size_t)r16(nf) * nf;
    *c = dft[at];
    *s = m <= n / 2 ? dft[sines + at] : -dft[sines + at];
}

int rnc__fft_plan(rnc_front_op *F, uint32_t n)
{
    const uint32_t nf = n / 2 + 1;
    F->fft_m = 0;
    if (n % 2 || nf < 2) return 0;
    uint32_t M = n / 2, nst = 0;
    static const uint32_t radices[4] = {4, 2, 3, 5};
    for (uint32_t i = 0; i < 4; ++i)
        while (M % radices[i] == 0 && nst < sizeof(F->fft_radix)) {
            F->fft_radix[nst++] = (uint8_t)radices[i];
            M /= radices[i];
            if (radices[i] == 2) break; /* one radix-2 pass at most: the 4s took the rest */
        }
    if (M != 1) return 0; /* a factor other than 2, 3, 5: the tables' product (model.c) */
    /* The FFT uses column 1 of the tables: it runs them only when they are the DFT's, every entry
     * within 2e-6 of column 1's root of its phase, which is within 1e-6 of cos / -sin. */
    const double tau = 6.283185307179586477;
    for (uint32_t m = 0; m < nf; ++m) {
        float c, s;
        root(F->dft, nf, n, m, &c, &s);
        if (!(fabs(c - cos(tau * m / n)) <= 1e-6 && fabs(s + sin(tau * m / n)) <= 1e-6)) return 0;
    }
    const size_t sines = (size_t)r16(nf) * nf;
    for (uint32_t k = 0; k < nf; ++k)
        for (uint32_t j = 0; j < nf; ++j) {
            float c, s;
            root(F->dft, nf, n, (uint32_t)((uint64_t)k * j % n), &c, &s);
            const size_t at = ((size_t)(k / 16) * nf + j) * 16 + k % 16;
            if (!(fabsf(F->dft[at] - c) <= 2e-6f && fabsf(F->dft[sines + at] - s) <= 2e-6f)) return 0;
        }
    F->fft_m = n / 2;
    F->fft_nst = nst;
    return 1;
}

size_t rnc__fft_tw_floats(const rnc_front_op *F)
{
    if (!F->fft_m) return 0;
    size_t total = 2 * ((size_t)F->fft_m / 2 + 1), Ns = F->fft_radix[0];
    for (uint32_t s = 1; s < F->fft_nst; ++s) {
        total += 2 * (size_t)(F->fft_radix[s] - 1) * Ns;
        Ns *= F->fft_radix[s];
    }
    return total;
}

void rnc__fft_twiddles(const rnc_front_op *F, float *tw)
{
    const uint32_t M = F->fft_m, n = 2 * M, nf = M + 1;
    for (uint32_t k = 0; k <= M / 2; ++k) root(F->dft, nf, n, k, &tw[k], &tw[M / 2 + 1 + k]);
    tw += 2 * (size_t)(M / 2 + 1);
    uint32_t Ns = F->fft_radix[0];
    for (uint32_t s = 1; s < F->fft_nst; ++s) {
        const uint32_t p = F->fft_radix[s], step = n / (Ns * p);
        float *twr = tw, *twi = tw + (size_t)(p - 1) * Ns;
        for (uint32_t r = 1; r < p; ++r)
            for (uint32_t k = 0; k < Ns; ++k)
                root(F->dft, nf, n, r * k * step % n, &twr[(r - 1) * Ns + k], &twi[(r - 1) * Ns + k]);
        tw += 2 * (size_t)(p - 1) * Ns;
        Ns *= p;
    }
}
#else
int rnc__fft_plan(rnc_front_op *F, uint32_t n)
{
    (void)n;
    F->fft_m = 0;
    return 0;
}

size_t rnc__fft_tw_floats(const rnc_front_op *F)
{
    (void)F;
    return 0;
}

void rnc__fft_twiddles(const rnc_front_op *F, float *tw)
{
    (void)F;
    (void)tw;
}
#endif
