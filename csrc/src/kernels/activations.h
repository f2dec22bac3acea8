/* Fast float32 activations shared by every kernel (header-only, static inline, branch-free so
 * that compilers vectorise the epilogue loops with each ISA file's own flags).
 *
 * tanh: odd rational approximation x*P(x^2)/Q(x^2) (degree 13/6, the coefficients of Eigen's
 * fast float tanh), input clamped to +-7.90531 (beyond which float32 tanh rounds to +-1), output
 * clamped to [-1, 1]. sigmoid(x) = 0.5 + 0.5 * tanh(0.5 x).
 * Measured maximum absolute error over every finite float32 (csrc/tests, docs/c-api.md):
 * tanh 4.1e-7, sigmoid 2.3e-7.
 *
 * Only IEEE multiply/add/divide in a fixed order: with -ffp-contract=off the scalar and the
 * vectorised forms give identical results on every ISA.
 */
#ifndef RNC_ACTIVATIONS_H
#define RNC_ACTIVATIONS_H

#define RNC_TANH_CLAMP 7.90531110763549805f

/* The coefficients of the tanh quotient x*P(x^2)/Q(x^2), highest degree first; every scalar
 * and vector form (each ISA's epilogue, the tests) expands these, so there is one list. */
#define RNC_TANH_P0 (-2.76076847742355e-16f)
#define RNC_TANH_P1 2.00018790482477e-13f
#define RNC_TANH_P2 (-8.60467152213735e-11f)
#define RNC_TANH_P3 5.12229709037114e-08f
#define RNC_TANH_P4 1.48572235717979e-05f
#define RNC_TANH_P5 6.37261928875436e-04f
#define RNC_TANH_P6 4.89352455891786e-03f
#define RNC_TANH_Q0 1.19825839466702e-06f
#define RNC_TANH_Q1 1.18534705686654e-04f
#define RNC_TANH_Q2 2.26843463243900e-03f
#define RNC_TANH_Q3 4.89352518554385e-03f

/* The rational part of rnc_tanhf before its final clamp: its value on every float32 input lies
 * in [-1, 1] (the largest is 1.0f, at x = +-RNC_TANH_CLAMP; checked over every float32, and in
 * csrc/tests/test_main.c on a sweep that includes the top 2^16 inputs below the clamp), so the
 * clamp in rnc_tanhf never changes a result and the vector forms may leave it out. */
static inline float rnc_tanh_quotient(float x)
{
    x = x > RNC_TANH_CLAMP ? RNC_TANH_CLAMP : x;
    x = x < -RNC_TANH_CLAMP ? -RNC_TANH_CLAMP : x;
    const float x2 = x * x;
    float p = RNC_TANH_P0;
    p = p * x2 + RNC_TANH_P1;
    p = p * x2 + RNC_TANH_P2;
    p = p * x2 + RNC_TANH_P3;
    p = p * x2 + RNC_TANH_P4;
    p = p * x2 + RNC_TANH_P5;
    p = p * x2 + RNC_TANH_P6;
    p = p * x;
    float q = RNC_TANH_Q0;
    q = q * x2 + RNC_TANH_Q1;
    q = q * x2 + RNC_TANH_Q2;
    q = q * x2 + RNC_TANH_Q3;
    return p / q;
}

static inline float rnc_tanhf(float x)
{
    float r = rnc_tanh_quotient(x);
    r = r > 1.0f ? 1.0f : r;
    r = r < -1.0f ? -1.0f : r;
    return r;
}

static inline float rnc_sigmoidf(float x)
{
    return 0.5f + 0.5f * rnc_tanhf(0.5f * x);
}

/* max(x, 0) that keeps NaN (a NaN pre-activation comes from Inf - Inf: overflow, which the
 * engine must report, not turn into 0; docs/c-api.md "Non-finite values"); -0 gives +0. */
static inline float rnc_reluf(float x)
{
    return x > 0.0f ? x : (x == x ? 0.0f : x);
}

#endif
