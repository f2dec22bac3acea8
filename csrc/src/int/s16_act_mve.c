/* Elementwise fixed-point functions of the integer step with Armv8.1-M MVE (Helium), eight int16
 * or four int32 lanes at a time, bit for bit TFLite's / gemmlowp's scalar definitions
 * (rnncore/quant/fixedpoint.py is the reference; s16_act.h states each function):
 *
 *   SaturatingRoundingDoublingHighMul = VQRDMULH (rounds half up, (2ab + 2^(n-1)) >> n with the
 *     one overflow saturated; gemmlowp's nudge 1 - 2^(n-2) for negative products and truncating
 *     division give the same value for every pair);
 *   RoundingDivideByPOT (ties away from zero) = VRSHR / VRSHL after subtracting 1 from negative
 *     values (saturating: -2^(n-1) stays, and still gives the right result);
 *   RoundingHalfSum(e, 1) = VRHADD (both operands >= 0 here: e = exp(-|x|) in [0, 1]).
 */
#include "s16_act.h"

#if defined(RNC_S8_HAVE_MVE)
#include <arm_mve.h>

/* gemmlowp's int16 constant from its int32 raw value: RoundingDivideByPOT(raw, 16) */
static inline int16_t c16(int32_t raw) {
    int32_t mask = 0xFFFF, rem = raw & mask, thr = (mask >> 1) + (raw < 0);
    return (int16_t)((raw >> 16) + (rem > thr));
}

/* RoundingDivideByPOT(x, e) for 1 <= e <= 15 */
#define RDBPOT16(x, e) vrshrq_n_s16(vqaddq_s16((x), vshrq_n_s16((x), 15)), (e))

/* exp(a) for a in [-1/4, 0), Q0.15 (gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl) */
static inline int16x8_t exp_interval(int16x8_t a) {
    const int16_t constant_term = c16(1895147668), one_third = c16(715827883);
    int16x8_t x = vaddq_n_s16(a, 1 << 12);
    int16x8_t x2 = vqrdmulhq_s16(x, x), x3 = vqrdmulhq_s16(x2, x), x4 = vqrdmulhq_s16(x2, x2);
    int16x8_t x4_over_4 = RDBPOT16(x4, 2);
    int16x8_t poly = vaddq_s16(vqrdmulhq_n_s16(vaddq_s16(x4_over_4, x3), one_third), x2);
    poly = RDBPOT16(poly, 1);
    return vqaddq_s16(vdupq_n_s16(constant_term),
                      vqrdmulhq_n_s16(vaddq_s16(x, poly), constant_term));
}

/* exp(a) for a <= 0 with k integer bits (0 <= k <= 7), Q0.15 (gemmlowp exp_on_negative_values) */
static inline int16x8_t exp_negative(int16x8_t a, int k) {
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535,
                                      720401, 242}; /* exp(-2^e), e = -2..4, Q0.31 */
    const int frac = 15 - k;
    const int16_t quarter = (int16_t)(1 << (frac - 2));
    int16x8_t amq = vsubq_s16(vandq_s16(a, vdupq_n_s16((int16_t)(quarter - 1))), vdupq_n_s16(quarter));
    int16x8_t result = exp_interval(vqshlq_r_s16(amq, k));
    int16x8_t rem = vsubq_s16(amq, a);
    for (int e = -2; e <= 4 && e < k; e++) {
        mve_pred16_t bit = vcmpneq_n_s16(vandq_s16(rem, vdupq_n_s16((int16_t)(1 << (frac + e)))), 0);
        result = vpselq_s16(vqrdmulhq_n_s16(result, c16(barrel[e + 2])), result, bit);
    }
    if (k > 5) {
        const int16_t clamp = c16(-(1 << (36 - k)));
        result = vpselq_s16(vdupq_n_s16(0), result, vcmpltq_n_s16(a, clamp));
    }
    return vpselq_s16(vdupq_n_s16(32767), result, vcmpeqq_n_s16(a, 0));
}

/* 1 / ((1 + e) / 2) for e in [0, 1] Q0.15, Q2.13: three Newton-Raphson steps (gemmlowp) */
static inline int16x8_t reciprocal_q13(int16x8_t e) {
    int16x8_t d = vrhaddq_s16(e, vdupq_n_s16(32767));
    int16x8_t x = vaddq_s16(vdupq_n_s16(c16(1515870810)), vqrdmulhq_n_s16(d, c16(-1010580540)));
    for (int i = 0; i < 3; i++) {
        int16x8_t one_minus_dx = vsubq_s16(vdupq_n_s16(1 << 13), vqrdmulhq_s16(d, x));
        x = vaddq_s16(x, vqshlq_n_s16(vqrdmulhq_s16(x, one_minus_dx), 2));
    }
    return x;
}

void rnc_s16_sigmoid_mve(int16_t *y, const int16_t *x, int n, int int_bits) {
    for (int i = 0; i < n; i += 8) {
        mve_pred16_t p = vctp16q((uint32_t)(n - i));
        int16x8_t a = vldrhq_z_s16(x + i, p);
        int16x8_t neg_abs = vminq_s16(a, vnegq_s16(a)); /* -|a|, -2^15 for -2^15 */
        int16x8_t r = reciprocal_q13(exp_negative(neg_abs, int_bits));
        int16x8_t if_pos = vqshlq_n_s16(r, 1);
        int16x8_t if_neg = vsubq_s16(vdupq_n_s16(32767), if_pos);
        int16x8_t out = vpselq_s16(if_pos, if_neg, vcmpgtq_n_s16(a, 0));
        out = vpselq_s16(vdupq_n_s16(1 << 14), out, vcmpeqq_n_s16(a, 0));
        vstrhq_p_s16(y + i, out, p);
    }
}

void rnc_s16_tanh_mve(int16_t *y, const int16_t *x, int n, int int_bits) {
    for (int i = 0; i < n; i += 8) {
        mve_pred16_t p = vctp16q((uint32_t)(n - i));
        int16x8_t a = vldrhq_z_s16(x + i, p);
        int16x8_t neg_abs = vminq_s16(a, vnegq_s16(a));
        int16x8_t r = reciprocal_q13(exp_negative(neg_abs, int_bits + 1));
        int16x8_t t = vqshlq_n_s16(vsubq_s16(r, vdupq_n_s16(1 << 13)), 2);
        int16x8_t out = vpselq_s16(vnegq_s16(t), t, vcmpltq_n_s16(a, 0));
        out = vpselq_s16(vdupq_n_s16(0), out, vcmpeqq_n_s16(a, 0));
        vstrhq_p_s16(y + i, out, p);
    }
}

/* MultiplyByQuantizedMultiplier on four lanes: RDBPOT(SRDHM(x 2^left, m), right), x 2^left
 * saturated to int32 (VQSHL) */
int32x4_t rnc_s32_mbqm_mve(int32x4_t x, int32x4_t m, int32x4_t shift) {
    int32x4_t left = vmaxq_s32(shift, vdupq_n_s32(0));
    int32x4_t neg_right = vminq_s32(shift, vdupq_n_s32(0)); /* -right */
    int32x4_t v = vqrdmulhq_s32(vqshlq_s32(x, left), m);
    /* -1 for negative values when right > 0 (neg_right's sign bit set), else 0 */
    int32x4_t fixup = vshrq_n_s32(vandq_s32(v, neg_right), 31);
    return vrshlq_s32(vqaddq_s32(v, fixup), neg_right);
}

/* The table activations (s16_table.h) on eight lanes: u = min(|x|, 2^15 - 1) is VQABS, the two
 * entries two gathers, and (t d + 64) >> 7 = VQRDMULH(d, t 2^8) = (2 d t 2^8 + 2^15) >> 16 (d =
 * T[j + 1] - T[j] in [0, 2^11), t 2^8 <= 32512: no saturation). */
static inline int16x8_t table_interp8(int16x8_t x, const int16_t *T, mve_pred16_t p) {
    int16x8_t u = vqabsq_s16(x);
    uint16x8_t j = vreinterpretq_u16_s16(vshrq_n_s16(u, RNC_S16_TABLE_SHIFT));
    int16x8_t t = vandq_s16(u, vdupq_n_s16((1 << RNC_S16_TABLE_SHIFT) - 1));
    int16x8_t lo = vldrhq_gather_shifted_offset_z_s16(T, j, p);
    int16x8_t hi = vldrhq_gather_shifted_offset_z_s16(T + 1, j, p);
    return vaddq_s16(lo, vqrdmulhq_s16(vsubq_s16(hi, lo), vshlq_n_s16(t, 15 - RNC_S16_TABLE_SHIFT)));
}

void rnc_s16_sigmoid_table_mve(int16_t *y, const int16_t *x, int n) {
    for (int i = 0; i < n; i += 8) {
        mve_pred16_t p = vctp16q((uint32_t)(n - i));
        int16x8_t a = vldrhq_z_s16(x + i, p);
        int16x8_t v = table_interp8(a, rnc_s16_sigmoid_table, p);
        /* 2^15 - v for x < 0: -2^15 - v wraps to it (v in [2^14, 2^15)) */
        vstrhq_p_s16(y + i, vpselq_s16(vsubq_s16(vdupq_n_s16(-32768), v), v, vcmpltq_n_s16(a, 0)), p);
    }
}

void rnc_s16_tanh_table_mve(int16_t *y, const int16_t *x, int n) {
    for (int i = 0; i < n; i += 8) {
        mve_pred16_t p = vctp16q((uint32_t)(n - i));
        int16x8_t a = vldrhq_z_s16(x + i, p);
        int16x8_t v = table_interp8(a, rnc_s16_tanh_table, p);
        vstrhq_p_s16(y + i, vpselq_s16(vnegq_s16(v), v, vcmpltq_n_s16(a, 0)), p);
    }
}

void rnc_s32_requant_s16_mve(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *shift,
                             const int16_t *add, int n) {
    const int32x4_t lo = vdupq_n_s32(-32768), hi = vdupq_n_s32(32767);
    for (int i = 0; i < n; i += 4) {
        mve_pred16_t p = vctp32q((uint32_t)(n - i));
        int32x4_t v = rnc_s32_mbqm_mve(vldrwq_z_s32(acc + i, p), vldrwq_z_s32(m + i, p),
                                       vldrbq_z_s32(shift + i, p));
        if (add) v = vqaddq_s32(v, vldrhq_z_s32(add + i, p)); /* |sum| < 2^31 + 2^15: saturate */
        v = vminq_s32(vmaxq_s32(v, lo), hi);
        vstrhq_p_s32(g + i, v, p);
    }
}
#else
typedef int rnc_s16_act_mve_unavailable;
#endif
