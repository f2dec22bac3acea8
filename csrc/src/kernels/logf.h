/* float32 natural logarithm for log_mel's log and dB (model.c log_mel_row), header-only and
 * branch-free so that compilers vectorise the loop over the mel filters (SSE2 on x86-64, NEON on
 * aarch64) with the scalar form's bits.
 *
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)) (read from the bits; subnormals scaled by 2^23 first),
 * f = m - 1, log x = e ln2 + log(1 + f), log(1 + f) = f - f^2/2 + f^3 P(f) with Cephes' logf
 * polynomial P (degree 8) and ln2 split in two (0.693359375 - 2.12194440e-4). Special values as
 * C's logf: log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf, log(NaN) = NaN.
 * Measured over every positive finite float32 against binary64 log (csrc/tests): at most 0.83 ulp
 * (glibc's logf: 0.82).
 *
 * Only IEEE multiply/add and conversions in a fixed order: with -ffp-contract=off every build and
 * vector width gives the same bits.
 */
#ifndef RNC_LOGF_H
#define RNC_LOGF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float rnc_logf(float x)
{
    const int sub = x < 1.17549435e-38f; /* below FLT_MIN: subnormal (zero and negatives: below) */
    const float xs = sub ? x * 8388608.0f : x;
    uint32_t u;
    memcpy(&u, &xs, sizeof u);
    const uint32_t t = u + 0x004afb0du; /* 0x3f800000 - bits(sqrt(1/2)): m's exponent bits 0 */
    const float e = (float)((int32_t)(t >> 23) - 127) - (sub ? 23.0f : 0.0f);
    const uint32_t mu = (t & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &mu, sizeof m);
    const float f = m - 1.0f, z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = p * f * z;
    y = y + e * -2.12194440e-4f;
    y = y - 0.5f * z;
    float r = f + y;
    r = r + e * 0.693359375f;
    r = x == INFINITY ? x : r;
    return x > 0.0f ? r : (x == 0.0f ? -INFINITY : NAN);
}

/* 10 log10(x) = (10 / ln 10) log x */
#define RNC_DB_PER_NEPER 4.34294481903251828f

#endif
