/* The log_mel real FFT's arithmetic, written once over a row's vector type: the radix 2 .. 5
 * butterflies, the twiddle product and the split into bins (f32_fft_generic.c has the maths).
 * Every row (f32_fft_generic.c over float, fft_avx2.c, fft_avx512.c, fft_neon.c over 8, 16 and 4
 * lanes) defines before including it:
 *     FFT_V            the vector type (float for the generic row)
 *     FFT_ADD(a, b)    a + b, lane by lane
 *     FFT_SUB(a, b)    a - b
 *     FFT_MUL(a, b)    a b
 *     FFT_NEG(a)       -a (the sign flipped)
 *     FFT_SET1(c)      c in every lane
 * and keeps its loads, stores and shuffles; FFT_BY_RADIX specialises its passes per radix. Each lane computes the same float operations in the
 * same order in every row: multiplies and adds apart, never fused (COMMON_CFLAGS:
 * -ffp-contract=off; no FMA primitive here), so every row gives the generic row's bits. */
#ifndef RNC_FFT_BUTTERFLY_H
#define RNC_FFT_BUTTERFLY_H

#include <stddef.h>
#include <stdint.h>

/* f(P, ...) with P the constant p (4, 2, 3, else 5): one specialised copy of an inline pass per
 * radix */
#define FFT_BY_RADIX(f, p, ...)                                                                   \
    do {                                                                                          \
        if ((p) == 4) f(4, __VA_ARGS__);                                                          \
        else if ((p) == 2) f(2, __VA_ARGS__);                                                     \
        else if ((p) == 3) f(3, __VA_ARGS__);                                                     \
        else f(5, __VA_ARGS__);                                                                   \
    } while (0)

/* The butterflies of radix P = 2, 3, 4, 5 (forward: y_s = sum_r a_r e^{-2 pi i r s / P}) on
 * a[0..P) (their twiddles applied), into y[s os] for s < P (real and imaginary parts apart; os: 1
 * into a row's registers, the block's stride into the generic row's memory). */
static inline void fft_bf2(const FFT_V *ar, const FFT_V *ai, FFT_V *yr, FFT_V *yi, size_t os)
{
    yr[0] = FFT_ADD(ar[0], ar[1]), yi[0] = FFT_ADD(ai[0], ai[1]);
    yr[os] = FFT_SUB(ar[0], ar[1]), yi[os] = FFT_SUB(ai[0], ai[1]);
}

static inline void fft_bf3(const FFT_V *ar, const FFT_V *ai, FFT_V *yr, FFT_V *yi, size_t os)
{
    const FFT_V h = FFT_SET1(0.866025403784438647f), half = FFT_SET1(0.5f); /* sin(2 pi / 3) */
    const FFT_V sr = FFT_ADD(ar[1], ar[2]), si = FFT_ADD(ai[1], ai[2]);
    const FFT_V dr = FFT_SUB(ar[1], ar[2]), di = FFT_SUB(ai[1], ai[2]);
    const FFT_V mr = FFT_SUB(ar[0], FFT_MUL(half, sr)), mi = FFT_SUB(ai[0], FFT_MUL(half, si));
    yr[0] = FFT_ADD(ar[0], sr), yi[0] = FFT_ADD(ai[0], si);
    yr[os] = FFT_ADD(mr, FFT_MUL(h, di)), yi[os] = FFT_SUB(mi, FFT_MUL(h, dr)); /* m - i h d */
    yr[2 * os] = FFT_SUB(mr, FFT_MUL(h, di)), yi[2 * os] = FFT_ADD(mi, FFT_MUL(h, dr)); /* m + i h d */
}

static inline void fft_bf4(const FFT_V *ar, const FFT_V *ai, FFT_V *yr, FFT_V *yi, size_t os)
{
    const FFT_V t0r = FFT_ADD(ar[0], ar[2]), t0i = FFT_ADD(ai[0], ai[2]);
    const FFT_V t1r = FFT_SUB(ar[0], ar[2]), t1i = FFT_SUB(ai[0], ai[2]);
    const FFT_V t2r = FFT_ADD(ar[1], ar[3]), t2i = FFT_ADD(ai[1], ai[3]);
    const FFT_V t3r = FFT_SUB(ar[1], ar[3]), t3i = FFT_SUB(ai[1], ai[3]);
    yr[0] = FFT_ADD(t0r, t2r), yi[0] = FFT_ADD(t0i, t2i);
    yr[os] = FFT_ADD(t1r, t3i), yi[os] = FFT_SUB(t1i, t3r); /* t1 - i t3 */
    yr[2 * os] = FFT_SUB(t0r, t2r), yi[2 * os] = FFT_SUB(t0i, t2i);
    yr[3 * os] = FFT_SUB(t1r, t3i), yi[3 * os] = FFT_ADD(t1i, t3r); /* t1 + i t3 */
}

static inline void fft_bf5(const FFT_V *ar, const FFT_V *ai, FFT_V *yr, FFT_V *yi, size_t os)
{
    /* cos(2 pi / 5), cos(4 pi / 5), sin(2 pi / 5), sin(4 pi / 5) */
    const FFT_V c1 = FFT_SET1(0.309016994374947424f), c2 = FFT_SET1(-0.809016994374947424f);
    const FFT_V s1 = FFT_SET1(0.951056516295153572f), s2 = FFT_SET1(0.587785252292473129f);
    const FFT_V s14r = FFT_ADD(ar[1], ar[4]), s14i = FFT_ADD(ai[1], ai[4]);
    const FFT_V d14r = FFT_SUB(ar[1], ar[4]), d14i = FFT_SUB(ai[1], ai[4]);
    const FFT_V s23r = FFT_ADD(ar[2], ar[3]), s23i = FFT_ADD(ai[2], ai[3]);
    const FFT_V d23r = FFT_SUB(ar[2], ar[3]), d23i = FFT_SUB(ai[2], ai[3]);
    const FFT_V m1r = FFT_ADD(FFT_ADD(ar[0], FFT_MUL(c1, s14r)), FFT_MUL(c2, s23r));
    const FFT_V m1i = FFT_ADD(FFT_ADD(ai[0], FFT_MUL(c1, s14i)), FFT_MUL(c2, s23i));
    const FFT_V m2r = FFT_ADD(FFT_ADD(ar[0], FFT_MUL(c2, s14r)), FFT_MUL(c1, s23r));
    const FFT_V m2i = FFT_ADD(FFT_ADD(ai[0], FFT_MUL(c2, s14i)), FFT_MUL(c1, s23i));
    const FFT_V n1r = FFT_ADD(FFT_MUL(s1, d14r), FFT_MUL(s2, d23r));
    const FFT_V n1i = FFT_ADD(FFT_MUL(s1, d14i), FFT_MUL(s2, d23i));
    const FFT_V n2r = FFT_SUB(FFT_MUL(s2, d14r), FFT_MUL(s1, d23r));
    const FFT_V n2i = FFT_SUB(FFT_MUL(s2, d14i), FFT_MUL(s1, d23i));
    yr[0] = FFT_ADD(FFT_ADD(ar[0], s14r), s23r), yi[0] = FFT_ADD(FFT_ADD(ai[0], s14i), s23i);
    yr[os] = FFT_ADD(m1r, n1i), yi[os] = FFT_SUB(m1i, n1r); /* m1 - i n1 */
    yr[4 * os] = FFT_SUB(m1r, n1i), yi[4 * os] = FFT_ADD(m1i, n1r); /* m1 + i n1 */
    yr[2 * os] = FFT_ADD(m2r, n2i), yi[2 * os] = FFT_SUB(m2i, n2r); /* m2 - i n2 */
    yr[3 * os] = FFT_SUB(m2r, n2i), yi[3 * os] = FFT_ADD(m2i, n2r); /* m2 + i n2 */
}

/* the butterfly of radix P (a constant where the caller is specialised) */
static inline void fft_bf(uint32_t P, const FFT_V *ar, const FFT_V *ai, FFT_V *yr, FFT_V *yi, size_t os)
{
    if (P == 4) fft_bf4(ar, ai, yr, yi, os);
    else if (P == 2) fft_bf2(ar, ai, yr, yi, os);
    else if (P == 3) fft_bf3(ar, ai, yr, yi, os);
    else fft_bf5(ar, ai, yr, yi, os);
}

/* (x + i y)(w_r + i w_i) = (x w_r - y w_i) + i (x w_i + y w_r) into *outr, *outi */
static inline void fft_twiddle(FFT_V xr, FFT_V xi, FFT_V wr, FFT_V wi, FFT_V *outr, FFT_V *outi)
{
    *outr = FFT_SUB(FFT_MUL(xr, wr), FFT_MUL(xi, wi));
    *outi = FFT_ADD(FFT_MUL(xr, wi), FFT_MUL(xi, wr));
}

/* Bins k and M - k of the split from A = Z[k] = (rk, ik) and Z[M - k] = (rq, iq), w^k = (wr, wi):
 * with B = conj(Z[M - k]), Fe = (A + B) / 2, Fo = -i (A - B) / 2, X[k] = Fe + w^k Fo,
 * X[M - k] = conj(Fe - w^k Fo); *pk = |X[k]|^2, *pq = |X[M - k]|^2. */
static inline void fft_split_bins(FFT_V rk, FFT_V ik, FFT_V rq, FFT_V iq, FFT_V wr, FFT_V wi, FFT_V *pk,
                                  FFT_V *pq)
{
    const FFT_V half = FFT_SET1(0.5f);
    const FFT_V fer = FFT_MUL(half, FFT_ADD(rk, rq)), fei = FFT_MUL(half, FFT_SUB(ik, iq));
    const FFT_V dr = FFT_MUL(half, FFT_SUB(rk, rq)), di = FFT_MUL(half, FFT_ADD(ik, iq)); /* (A - B) / 2 */
    FFT_V tr, ti;
    fft_twiddle(di, FFT_NEG(dr), wr, wi, &tr, &ti); /* Fo = -i (A - B) / 2 = (di, -dr), times w^k */
    const FFT_V ar = FFT_ADD(fer, tr), ai = FFT_ADD(fei, ti), br = FFT_SUB(fer, tr), bi = FFT_SUB(fei, ti);
    *pk = FFT_ADD(FFT_MUL(ar, ar), FFT_MUL(ai, ai));
    *pq = FFT_ADD(FFT_MUL(br, br), FFT_MUL(bi, bi));
}

#endif
