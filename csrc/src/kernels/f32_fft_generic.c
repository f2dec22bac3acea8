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
 * ping-ponging between two pairs of M-float arrays. The butterflies, the twiddle product and the
 * split's bins are fft_butterfly.h's, over float here and over each vector row's lanes. Every
 * product is a multiply then an add in this order (no contraction: COMMON_CFLAGS), so every build
 * gives the same bits. */
#include <math.h>

#include "../internal.h"

#if !defined(RNC_NO_FFT) /* a build without the FFT runs log_mel by the tables' product */
#define FFT_V float
#define FFT_ADD(a, b) ((a) + (b))
#define FFT_SUB(a, b) ((a) - (b))
#define FFT_MUL(a, b) ((a) * (b))
#define FFT_NEG(a) (-(a))
#define FFT_SET1(c) (c)
#include "fft_butterfly.h"

/* One pass of radix P over blocks j0 = first, first + Ns, ... of Ns outputs: in (ir, ii) -> out
 * (or_, oi); tw: (P - 1) Ns twiddle real parts then as many imaginary parts (the first pass, Ns =
 * 1, has none). Inputs a_r = in[j + r L] times their twiddles, the butterfly into out[(j - k) P + k
 * + r Ns]. Called with a constant P (one specialised copy per radix) or, in a build for size, once
 * with P at run time: the same operations either way. */
static inline void pass(uint32_t P, uint32_t M, uint32_t Ns, uint32_t first, const float *tw,
                        const float *restrict ir, const float *restrict ii, float *restrict or_,
                        float *restrict oi)
{
    const uint32_t L = M / P;
    const float *restrict twr = tw, *restrict twi = tw + (size_t)(P - 1) * Ns;
    float ar[5], ai[5];
    for (uint32_t j0 = first; j0 < L; j0 += Ns)
        for (uint32_t k = 0; k < Ns; ++k) {
            const uint32_t j = j0 + k;
            for (uint32_t r = 0; r < P; ++r) {
                ar[r] = ir[j + r * L];
                ai[r] = ii[j + r * L];
            }
            if (Ns > 1) /* invariant: the compiler splits the loop on it */
                for (uint32_t r = 1; r < P; ++r)
                    fft_twiddle(ar[r], ai[r], twr[(r - 1) * Ns + k], twi[(r - 1) * Ns + k], &ar[r], &ai[r]);
            float *yr = or_ + (size_t)j0 * P + k, *yi = oi + (size_t)j0 * P + k;
            if (P == 4) fft_bf4(ar, ai, yr, yi, Ns); /* the radix's own call: each inlined early */
            else if (P == 2) fft_bf2(ar, ai, yr, yi, Ns);
            else if (P == 3) fft_bf3(ar, ai, yr, yi, Ns);
            else fft_bf5(ar, ai, yr, yi, Ns);
        }
}

void rnc__fft_pass_from(uint32_t p, uint32_t M, uint32_t Ns, uint32_t first, const float *tw, const float *ir,
                        const float *ii, float *or_, float *oi)
{
#if defined(__OPTIMIZE_SIZE__) /* -Os: one copy */
    pass(p, M, Ns, first, tw, ir, ii, or_, oi);
#else
    FFT_BY_RADIX(pass, p, M, Ns, first, tw, ir, ii, or_, oi);
#endif
}

void rnc__fft_pass(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                   float *or_, float *oi)
{
    rnc__fft_pass_from(p, M, Ns, 0, tw, ir, ii, or_, oi);
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
    for (uint32_t k = split ? split(a, re, im) : 1; k <= M / 2; ++k)
        fft_split_bins(re[k], im[k], re[M - k], im[M - k], wr[k], wi[k], &p[k], &p[M - k]);
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
