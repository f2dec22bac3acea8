/* The integer cell step (rnncore_int.h) for Armv7E-M / Armv8-M cores with the DSP extension
 * (Cortex-M4, M7, M33, M55 without MVE): the products through the caller's rnc_s8_matvec_fn, and
 * the elementwise work written for a 32-bit core with a single-cycle multiplier. When that
 * products row is the DSP row itself (and H % 4 == 0, I <= 2H), the step runs the row's 4-row
 * pass inline (s8_matvec_dsp.h) on x8 and h8 unpacked once into the accumulator scratch, and
 * requantises each pass's sums from registers: the same sums, no int32 sums in memory. Every value is the portable step's (int_cells.c) bit for bit; what
 * changes is how the same fixed-point definitions are computed:
 *
 *   SaturatingRoundingDoublingHighMul = (a b + 2^(n-2)) >> (n-1), the one overflow saturated (a
 *     multiply-add and a shift; gemmlowp's nudge 1 - 2^(n-2) for negative products and
 *     truncating division give the same value for every pair: both are floor((ab + 2^(n-2)) /
 *     2^(n-1)));
 *   SaturatingRoundingMultiplyByPOT<e > 0> on int16 = clamp16(x 2^e);
 *   RoundingHalfSum(e, 1) = (e + 2^15) >> 1 (e = exp(-|x|) >= 0);
 *   the exp barrel's conditional multiplies as selects (no branches).
 *
 * Same arguments, checks, scratch (its layout too) and results as rnc_int_cell_step. */
#include "int_step_common.h"
#include "rnncore_int.h"
#include "s16_table.h"
#include "s8_kernel_list.h"
#include "s8_matvec_dsp.h"

#if defined(RNC_S8_HAVE_DSP)
#include <arm_acle.h>

#define GATE_INT_BITS 3

/* SSAT #16 / #8, and QADD (the int32 sum saturated) */
static inline int32_t clamp16(int32_t x) { return __ssat(x, 16); }
static inline int32_t clamp8(int32_t x) { return __ssat(x, 8); }
static inline int32_t qadd(int32_t a, int32_t b) { return __qadd(a, b); }
static inline int32_t wrap16(int32_t x) { return (int32_t)(int16_t)(uint16_t)(uint32_t)x; }

/* int16 SRDHM without its saturation: the result exceeds int16 only for a = b = -2^15, and every
 * call has an operand that cannot be -2^15 (a positive constant, a square's factor in [-2^12,
 * 2^12), the reciprocal's d in [2^14, 2^15), or its Newton iterate x, which stays positive);
 * csrc/mcu/test_act.c checks every int16 input. */
static inline int32_t srd16(int32_t a, int32_t b) { return (a * b + (1 << 14)) >> 15; }

/* int32 SRDHM for m >= 0 (rnc_int_cell_check): a = m = -2^31, its one overflow, cannot occur */
static inline int32_t srd32(int32_t a, int32_t m) {
    return (int32_t)(((int64_t)a * m + (1 << 30)) >> 31);
}

/* RoundingDivideByPOT(x, e), 0 <= e <= 31, ties away from zero: (x >> e) + 1 when the remainder
 * x & mask exceeds (mask >> 1) + (x < 0); the comparison as the sign of their difference (both
 * in [0, 2^31): no overflow), so no branch and no IT block */
static inline int32_t rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)x >> 31);
    return (x >> e) + (int32_t)((uint32_t)(threshold - (x & mask)) >> 31);
}

/* RoundingDivideByPOT(x, e) for 1 <= e <= 30 and |x| <= 2^30 (products of two int16, the
 * blend): (x + 2^(e-1) - [x < 0]) >> e, the rounding constant being (mask >> 1) + 1 - [x < 0] of
 * rdbpot's threshold test; three instructions, no overflow */
static inline int32_t rdbpot_small(int32_t x, int e) {
    return (x + (1 << (e - 1)) + (x >> 31)) >> e;
}

/* MultiplyByQuantizedMultiplier (m >= 0) as the spec writes it, for what the fast form below
 * leaves out: a left shift (a multiplier of 1 or more, x 2^left saturated to int32), a right
 * shift of 30 or 31, an |x| close to 2^31. Out of line, so that the compiler does not hoist its work into the
 * loops of the common case. */
static __attribute__((noinline)) int32_t mbqm_rare(int32_t x, int32_t m, int shift) {
    if (shift <= 0) return rdbpot(srd32(x, m), -shift);
    int64_t xl = (int64_t)x * ((int64_t)1 << shift);
    x = xl < -2147483647 - 1 ? -2147483647 - 1 : xl > 2147483647 ? 2147483647 : (int32_t)xl;
    return srd32(x, m);
}

/* MultiplyByQuantizedMultiplier (m >= 0):
 *
 *   a = srd32(x, m) = floor((x m + 2^30) / 2^31) = SMMULR(2x, m) = floor((2x m + 2^31) / 2^32)
 *     for |x| < 2^30, where 2x does not overflow (ADDS sets V otherwise); then |a| < 2^30;
 *   RDBPOT(a, s), 0 <= s <= 29: (a + 2^(s-1) - [a < 0 and s > 0]) >> s, the rounding constant
 *     being (mask >> 1) + 1 - [a < 0] of the spec's threshold test, 2^(s-1) = rc = 2^28 >> (29 - s)
 *     (0 for s = 0) from the range test's e + 29, [a < 0 and s > 0] the sign of e & a (e = -s);
 *     |a| < 2^30 leaves the sum no room to overflow.
 *
 * What this leaves out goes to mbqm_rare: a shift outside [-29, 0], an |x| >= 2^30 (the
 * products' sums of int8 weights and inputs reach 2^30 only in theory, |acc| < 2^30 + 2^29).
 * 12 instructions after the loads where the spec's form (srd32 + rdbpot above) takes 15 and
 * SMMLAR with a correction for m >= 2^30 took 16. */
static inline int32_t mbqm_fast(int32_t x2, int32_t m, int32_t e, int32_t rc) {
    int32_t a;
    __asm__("smmulr %0, %1, %2" : "=r"(a) : "r"(x2), "r"(m));
    return (a + rc + ((e & a) >> 31)) >> -e;
}

static inline int32_t mbqm(int32_t x, int32_t m, int shift) {
    const int32_t t = shift + 29;
    int32_t x2;
    if (__builtin_expect((uint32_t)t > 29u, 0)) return mbqm_rare(x, m, shift);
    if (__builtin_expect(__builtin_add_overflow(x, x, &x2), 0)) return mbqm_rare(x, m, shift);
    return mbqm_fast(x2, m, shift, (int32_t)(0x10000000u >> t));
}

/* exp(a) for a in [-1/4, 0), Q0.15 */
static inline int32_t exp_interval(int32_t a) {
    const int32_t constant_term = 28918, one_third = 10923; /* C16(1895147668), C16(715827883) */
    const int32_t x = wrap16(a + (1 << 12));
    const int32_t x2 = srd16(x, x), x3 = srd16(x2, x), x4 = srd16(x2, x2);
    const int32_t x4_over_4 = rdbpot(x4, 2);
    const int32_t poly = rdbpot(wrap16(srd16(wrap16(x4_over_4 + x3), one_third) + x2), 1);
    return clamp16(constant_term + srd16(constant_term, wrap16(x + poly)));
}

/* exp(-2^e), e = -2..4, as gemmlowp's int16 constants (C16 of the Q0.31 values) */
static const int16_t exp_barrel16[7] = {25520, 19875, 12055, 4435, 600, 11, 0};

/* exp(a) for a <= 0 with k integer bits (0 <= k <= 7), Q0.15 */
static inline int32_t exp_negative(int32_t a, int k) {
    const int frac = 15 - k;
    const int32_t quarter = 1 << (frac - 2);
    const int32_t amq = wrap16((a & (quarter - 1)) - quarter);
    int32_t result = exp_interval(clamp16(amq * (1 << k)));
    const int32_t remainder = wrap16(amq - a);
    for (int e = -2; e <= 4 && e < k; e++) {
        const int32_t scaled = srd16(result, exp_barrel16[e + 2]);
        result = (remainder & (1 << (frac + e))) ? scaled : result;
    }
    if (k > 5 && a < rdbpot(-(1 << (36 - k)), 16)) result = 0;
    return a == 0 ? 32767 : result;
}

/* 1 / ((1 + e) / 2), Q2.13, e >= 0 in Q0.15: three Newton-Raphson steps */
static inline int32_t reciprocal_q13(int32_t e) {
    const int32_t d = (e + 32768) >> 1;
    int32_t x = wrap16(23130 + srd16(d, -15420)); /* C16(1515870810), C16(-1010580540) */
    for (int i = 0; i < 3; i++) {
        const int32_t one_minus_dx = wrap16((1 << 13) - srd16(d, x));
        x = wrap16(x + clamp16(srd16(x, one_minus_dx) * 4));
    }
    return x;
}

static void sigmoid_block(int16_t *y, const int16_t *x, int n, int k) {
    for (int i = 0; i < n; i++) {
        const int32_t a = x[i];
        const int32_t if_positive = clamp16(reciprocal_q13(exp_negative(a > 0 ? -a : a, k)) * 2);
        y[i] = (int16_t)(a == 0 ? 1 << 14 : a > 0 ? if_positive : wrap16(32767 - if_positive));
    }
}

static void tanh_block(int16_t *y, const int16_t *x, int n, int k) {
    for (int i = 0; i < n; i++) {
        const int32_t a = x[i];
        const int32_t r = reciprocal_q13(exp_negative(a < 0 ? a : -a, k + 1));
        const int32_t t = clamp16(wrap16(r - (1 << 13)) * 4);
        y[i] = (int16_t)(a == 0 ? 0 : a < 0 ? wrap16(-t) : t);
    }
}

/* the table activations (s16_table.h), one value: u = min(|x|, 2^15 - 1) by USAT #15, T[j] and
 * T[j + 1] by one LDR (little-endian: T[j] in the low half; unaligned for odd j, which the M
 * profile's LDR allows), and the interpolation as one SMLAD:
 *
 *   p = T[j] + ((t (T[j + 1] - T[j]) + 64) >> 7) = A >> 7,  A = (128 - t) T[j] + t T[j + 1] + 64
 *
 * (128 T[j] is a multiple of 2^7), the halves (128 - t, t) being the int32 65535 t + 128;
 * table_interp returns A. The sign applied without a branch, s = x >> 31 and (A ^ s) >> 7 = p or
 * ~p = -p - 1: sigmoid ((A ^ s) >> 7) + (s & (2^15 + 1)) = 2^15 - p for x < 0, tanh
 * ((A ^ s) >> 7) - s = -p. */
static inline int32_t table_interp(int32_t x, int32_t s, const int16_t *T) {
    const int32_t u = (int32_t)__usat((x ^ s) - s, 15);
    const int32_t t = u & ((1 << RNC_S16_TABLE_SHIFT) - 1);
    int32_t w;
    __builtin_memcpy(&w, T + (u >> RNC_S16_TABLE_SHIFT), 4);
    return __smlad(w, t * 65535 + (1 << RNC_S16_TABLE_SHIFT), 1 << (RNC_S16_TABLE_SHIFT - 1));
}

static inline int32_t sigmoid_table1(int32_t x) {
    const int32_t s = x >> 31, a = table_interp(x, s, rnc_s16_sigmoid_table);
    return ((a ^ s) >> RNC_S16_TABLE_SHIFT) + (s & 32769);
}

static inline int32_t tanh_table1(int32_t x) {
    const int32_t s = x >> 31, a = table_interp(x, s, rnc_s16_tanh_table);
    return ((a ^ s) >> RNC_S16_TABLE_SHIFT) - s;
}

/* the table activations on a block */
static void sigmoid_table_block(int16_t *y, const int16_t *x, int n) {
    for (int i = 0; i < n; i++) y[i] = (int16_t)sigmoid_table1(x[i]);
}

static void tanh_table_block(int16_t *y, const int16_t *x, int n) {
    for (int i = 0; i < n; i++) y[i] = (int16_t)tanh_table1(x[i]);
}

/* the GRU's and RNN's Q3.12 activations on a block, in the cell's family */
static inline void gate_sigmoid(const rnc_int_cell *c, int16_t *y, const int16_t *x, int n) {
    if (c->activation == RNC_INT_ACT_TABLE) sigmoid_table_block(y, x, n);
    else sigmoid_block(y, x, n, GATE_INT_BITS);
}
static inline void gate_tanh(const rnc_int_cell *c, int16_t *y, const int16_t *x, int n) {
    if (c->activation == RNC_INT_ACT_TABLE) tanh_table_block(y, x, n);
    else tanh_block(y, x, n, GATE_INT_BITS);
}

/* g[r] = sat16(MBQM(acc[r], m[r], e[r]) + add[r]) (add NULL: 0; the sum saturated to int32 by
 * QADD first, which gives the same int16: |add| < 2^15) */
static void requant(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *e,
                    const int16_t *add, int n) {
    if (add)
        for (int r = 0; r < n; r++) g[r] = (int16_t)clamp16(qadd(mbqm(acc[r], m[r], e[r]), add[r]));
    else
        for (int r = 0; r < n; r++) g[r] = (int16_t)clamp16(mbqm(acc[r], m[r], e[r]));
}

/* sat16(MBQM(a, m[k], e[k]) (+ g[k] with add)), requant's row k */
static inline int16_t requant1(int32_t a, const int32_t *m, const int8_t *e, const int16_t *g, int k,
                               int add) {
    const int32_t q = mbqm(a, m[k], e[k]);
    return (int16_t)clamp16(add ? qadd(q, g[k]) : q);
}

/* rnc_int_gate_part with the DSP products row's own 4-row pass inline (rows % 4 == 0), v
 * unpacked once into v16 (rnc_s8_dsp_unpack): each pass's four sums are requantised from
 * registers, no int32 sums in memory, no call per block; the same sums and the same
 * requantisation as matvec + requant */
static inline __attribute__((always_inline)) void gate_part4(int16_t *g, const int8_t *W, int cols, const int32_t *b, const int32_t *m,
                              const int8_t *e, const int32_t *v16, const int8_t *v, int rows, int add) {
    for (int r = 0; r < rows; r += 4) {
        rnc_s8_dsp_sums4 s = {b[r], b[r + 1], b[r + 2], b[r + 3]};
        s = rnc_s8_dsp_rows4_x16(s, W + (long)r * cols, cols, v16, v, cols);
        g[r] = requant1(s.a0, m, e, g, r, add);
        g[r + 1] = requant1(s.a1, m, e, g, r + 1, add);
        g[r + 2] = requant1(s.a2, m, e, g, r + 2, add);
        g[r + 3] = requant1(s.a3, m, e, g, r + 3, add);
    }
}

/* an int16 x[0, cols & ~3) in rnc_s8_dsp_unpack's layout: per 4 columns the words (x0, x2) and
 * (x1, x3) of the pairs (x0, x1), (x2, x3) (PKHBT / PKHTB), for rnc_s8_dsp_rows4_x16 */
static inline void unpack_s16(int32_t *x16, const int16_t *x, int cols) {
    for (int c = 0; c + 4 <= cols; c += 4, x16 += 2) {
        uint32_t a, b;
        __builtin_memcpy(&a, x + c, 4);
        __builtin_memcpy(&b, x + c + 2, 4);
        x16[0] = (int32_t)((a & 0xFFFFu) | (b << 16));
        x16[1] = (int32_t)((a >> 16) | (b & 0xFFFF0000u));
    }
}

/* gate_part4 of the int16 input (add 0): its last cols % 4 columns in C, the rest by the same
 * 4-row pass on x unpacked by unpack_s16 (int8 W times int16 x: SMLAD's exact products, the sums
 * within int32 by rnc_int_cell_check's bound) */
static inline void gate_part4_s16(int16_t *g, const int8_t *W, int cols, const int32_t *b, const int32_t *m,
                                  const int8_t *e, const int32_t *v16, const int16_t *x, int rows) {
    const int c4 = cols & ~3;
    for (int r = 0; r < rows; r += 4) {
        const int8_t *w = W + (long)r * cols;
        rnc_s8_dsp_sums4 s = {b[r], b[r + 1], b[r + 2], b[r + 3]};
        if (c4 != cols)
            for (int k = c4; k < cols; k++) {
                s.a0 += (int32_t)w[k] * x[k];
                s.a1 += (int32_t)w[cols + k] * x[k];
                s.a2 += (int32_t)w[2 * cols + k] * x[k];
                s.a3 += (int32_t)w[3 * cols + k] * x[k];
            }
        s = rnc_s8_dsp_rows4_x16(s, w, cols, v16, (const int8_t *)0, c4);
        g[r] = requant1(s.a0, m, e, g, r, 0);
        g[r + 1] = requant1(s.a1, m, e, g, r + 1, 0);
        g[r + 2] = requant1(s.a2, m, e, g, r + 2, 0);
        g[r + 3] = requant1(s.a3, m, e, g, r + 3, 0);
    }
}

/* The pre-activations (int_step_common.h's rnc_int_preactivations, same order and values) with
 * gate_part4, x8 and then h8 unpacked into f->acc (I <= 2H, H % 4 == 0); h8's unpacked words
 * are left there */
static __attribute__((noinline)) void preactivations4(const rnc_int_frame *f, const rnc_int_cell *c,
                                                      const int8_t *x8, const int8_t *h8) {
    const int H = f->H;
    const int whole = c->cell == RNC_INT_LSTM ? 4 * H : c->cell == RNC_INT_GRU ? 2 * H : H;
    rnc_s8_dsp_unpack(f->acc, x8, f->I);
    gate_part4(f->g, c->w_ih, f->I, c->b_ih, c->m_ih, c->e_ih, f->acc, x8, f->G * H, 0);
    rnc_s8_dsp_unpack(f->acc, h8, H);
    gate_part4(f->g, c->w_hh, H, c->b_hh, c->m_hh, c->e_hh, f->acc, h8, whole, 1);
}

/* preactivations4 with an int16 x (RNC_INT_IN_S16): x rearranged by unpack_s16 for the same
 * pass (with I % 4 == 0 gate_part4 itself, whose int8 x is then never read; else
 * gate_part4_s16), then h8 as there */
static __attribute__((noinline)) void preactivations4_s16(const rnc_int_frame *f, const rnc_int_cell *c,
                                                          const int16_t *x16, const int8_t *h8) {
    const int H = f->H;
    const int whole = c->cell == RNC_INT_LSTM ? 4 * H : c->cell == RNC_INT_GRU ? 2 * H : H;
    unpack_s16(f->acc, x16, f->I);
    if (f->I & 3) gate_part4_s16(f->g, c->w_ih, f->I, c->b_ih, c->m_ih, c->e_ih, f->acc, x16, f->G * H);
    else gate_part4(f->g, c->w_ih, f->I, c->b_ih, c->m_ih, c->e_ih, f->acc, (const int8_t *)x16, f->G * H, 0);
    rnc_s8_dsp_unpack(f->acc, h8, H);
    gate_part4(f->g, c->w_hh, H, c->b_hh, c->m_hh, c->e_hh, f->acc, h8, whole, 1);
}

/* rnc_int_preactivations with any other products row (or shapes the fused pass does not take),
 * out of line so that the fused path's caller stays as it was */
static __attribute__((noinline)) void preactivations_any(const rnc_int_frame *f, const rnc_int_cell *c,
                                                         rnc_s8_matvec_fn matvec, const void *x, const int8_t *h8) {
    rnc_int_preactivations(f, c, matvec, rnc_s8s16_matvec_portable, requant, x, h8); /* int_step_common.h */
}

/* TFLite CwiseMul(a, b, shift) = (int16_t)RDBPOT(a b, shift) */
static inline int32_t cwise_mul_shift(int32_t a, int32_t b, int shift) {
    return wrap16(rdbpot_small(a * b, shift));
}

/* the int8 output; the callers keep m_h, e_h, h_zp in locals: their int8 stores (h8) may alias
 * the cell as far as the compiler knows, which would reload the fields every unit */
static inline int8_t out8(int32_t v, int32_t m_h, int e_h, int32_t h_zp) {
    return (int8_t)clamp8(mbqm(v, m_h, e_h) + h_zp);
}

/* the GRU's update of unit k: h16 = sat16(RDBPOT((2^15 - z) n + z h16, 15)), z = sigmoid(gz[k])
 * from the table (table) or gz[k] already activated */
static inline int32_t gru_h16(const int16_t *gz, const int16_t *gn, const int16_t *s16, int k, int table) {
    const int32_t z = table ? sigmoid_table1(gz[k]) : gz[k];
    return clamp16(rdbpot_small(((1 << 15) - z) * gn[k] + z * s16[k], 15));
}

/* The GRU's update and int8 output of every unit; with the output's shift in [-29, 0] (the
 * common case) MBQM of the int16 h16 (|2 h16| < 2^16: mbqm's fast path, always) with the shift's
 * test and rounding constant taken out of the loop */
static inline void gru_update(int16_t *s16, int8_t *h8, const int16_t *gz, const int16_t *gn, int H, int table,
                              int32_t m_h, int e_h, int32_t h_zp) {
    const uint32_t t = (uint32_t)(e_h + 29);
    if (t <= 29u) {
        const int32_t rc = (int32_t)(0x10000000u >> t);
        for (int k = 0; k < H; k++) {
            const int32_t h16 = gru_h16(gz, gn, s16, k, table);
            s16[k] = (int16_t)h16;
            h8[k] = (int8_t)clamp8(mbqm_fast(h16 * 2, m_h, e_h, rc) + h_zp);
        }
    } else {
        for (int k = 0; k < H; k++) {
            const int32_t h16 = gru_h16(gz, gn, s16, k, table);
            s16[k] = (int16_t)h16;
            h8[k] = out8(h16, m_h, e_h, h_zp);
        }
    }
}

/* the table GRU's n (linear_before_reset) of unit k from its recurrent sum a:
 * tanh(n_i + r * sat16(MBQM(a))) */
static inline int16_t n_table_lbr(int32_t a, const int16_t *gr, const int16_t *gn, const int32_t *m_hn,
                                  const int8_t *e_hn, int k) {
    const int32_t g_hn = clamp16(mbqm(a, m_hn[k], e_hn[k]));
    const int32_t r = sigmoid_table1(gr[k]);
    return (int16_t)tanh_table1(clamp16(gn[k] + cwise_mul_shift(r, g_hn, 15)));
}

int rnc_int_cell_run_dsp(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                         int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes) {
    rnc_int_frame f;
    const int status = rnc_int_frame_open(&f, c, matvec, x8, h8, s16, scratch, scratch_bytes);
    if (status != RNC_INT_OK) return status;
    const int H = f.H;
    int32_t *acc = f.acc;
    int16_t *g = f.g;
    int8_t *rh8 = f.rh8;
    const int32_t m_h = c->m_h, h_zp = c->h_zp;
    const int e_h = (int)c->e_h;

    /* the DSP products row itself: its 4-row passes inline (gate_part4) */
    const int fused = matvec == rnc_s8_matvec_dsp && H % 4 == 0 && f.I <= 2 * H;
    if (!fused) preactivations_any(&f, c, matvec, x8, h8);
    else if (c->input_dtype == RNC_INT_IN_S16) preactivations4_s16(&f, c, (const int16_t *)x8, h8);
    else preactivations4(&f, c, (const int8_t *)x8, h8);
    if (c->cell == RNC_INT_LSTM) {
        int16_t *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
        sigmoid_block(gi, gi, 2 * H, GATE_INT_BITS); /* i, f */
        tanh_block(gg, gg, H, GATE_INT_BITS);
        sigmoid_block(go, go, H, GATE_INT_BITS);
        for (int k = 0; k < H; k++) {
            int32_t c2 = clamp16(cwise_mul_shift(gf[k], s16[k], 15) +
                                 cwise_mul_shift(gi[k], gg[k], 30 + c->cell_shift));
            if (c->cell_clip > 0) c2 = c2 < -c->cell_clip ? -c->cell_clip : c2 > c->cell_clip ? c->cell_clip : c2;
            s16[k] = (int16_t)c2;
        }
        tanh_block(gg, s16, H, 15 + c->cell_shift); /* tanh(c'), over g's consumed block */
        for (int k = 0; k < H; k++) h8[k] = out8(go[k] * gg[k], m_h, e_h, h_zp);
        return RNC_INT_OK;
    }
    if (c->cell == RNC_INT_GRU) {
        const int8_t *w_hn = c->w_hh + (long)2 * H * H;
        const int32_t *b_hn = c->b_hh + 2 * H, *m_hn = c->m_hh + 2 * H;
        const int8_t *e_hn = c->e_hh + 2 * H;
        int16_t *gr = g, *gz = g + H, *gn = g + 2 * H;
        if (c->activation == RNC_INT_ACT_TABLE) {
            /* the table family: each activation where its value is used, no block passes; n in
             * one loop (into gn), the update in another, so that neither loop's values spill */
            if (c->linear_before_reset && fused) {
                for (int k = 0; k < H; k += 4) {
                    rnc_s8_dsp_sums4 s = {b_hn[k], b_hn[k + 1], b_hn[k + 2], b_hn[k + 3]};
                    s = rnc_s8_dsp_rows4_x16(s, w_hn + (long)k * H, H, acc, h8, H); /* h8 in acc */
                    gn[k] = n_table_lbr(s.a0, gr, gn, m_hn, e_hn, k);
                    gn[k + 1] = n_table_lbr(s.a1, gr, gn, m_hn, e_hn, k + 1);
                    gn[k + 2] = n_table_lbr(s.a2, gr, gn, m_hn, e_hn, k + 2);
                    gn[k + 3] = n_table_lbr(s.a3, gr, gn, m_hn, e_hn, k + 3);
                }
            } else if (c->linear_before_reset) {
                matvec(acc, w_hn, H, b_hn, h8, H, H);
                for (int k = 0; k < H; k++) gn[k] = n_table_lbr(acc[k], gr, gn, m_hn, e_hn, k);
            } else {
                const int32_t m_rh = c->m_rh;
                const int e_rh = (int)c->e_rh;
                for (int k = 0; k < H; k++) rh8[k] = out8(sigmoid_table1(gr[k]) * s16[k], m_rh, e_rh, h_zp);
                matvec(acc, w_hn, H, b_hn, rh8, H, H);
                for (int k = 0; k < H; k++)
                    gn[k] = (int16_t)tanh_table1(clamp16(qadd(mbqm(acc[k], m_hn[k], e_hn[k]), gn[k])));
            }
            gru_update(s16, h8, gz, gn, H, 1, m_h, e_h, h_zp);
            return RNC_INT_OK;
        }
        gate_sigmoid(c, gr, gr, 2 * H); /* r, z */
        if (c->linear_before_reset) {
            matvec(acc, w_hn, H, b_hn, h8, H, H);
            for (int k = 0; k < H; k++) {
                const int32_t g_hn = clamp16(mbqm(acc[k], m_hn[k], e_hn[k]));
                gn[k] = (int16_t)clamp16(gn[k] + cwise_mul_shift(gr[k], g_hn, 15));
            }
        } else {
            const int32_t m_rh = c->m_rh;
            const int e_rh = (int)c->e_rh;
            for (int k = 0; k < H; k++) rh8[k] = out8(gr[k] * s16[k], m_rh, e_rh, h_zp);
            matvec(acc, w_hn, H, b_hn, rh8, H, H);
            requant(gn, acc, m_hn, e_hn, gn, H);
        }
        gate_tanh(c, gn, gn, H);
        gru_update(s16, h8, gz, gn, H, 0, m_h, e_h, h_zp);
        return RNC_INT_OK;
    }
    /* RNN (h8 was read by the recurrent product before it is overwritten here) */
    if (c->cell == RNC_INT_RNN_TANH) gate_tanh(c, g, g, H);
    const int relu = c->cell == RNC_INT_RNN_RELU;
    for (int k = 0; k < H; k++) h8[k] = out8(relu && g[k] < 0 ? 0 : g[k], m_h, e_h, h_zp);
    return RNC_INT_OK;
}

int rnc_int_cell_step_dsp(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                          int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes) {
    if (rnc_int_cell_check(c) != RNC_INT_OK) return RNC_INT_E_ARG;
    return rnc_int_cell_run_dsp(c, matvec, x8, h8, s16, scratch, scratch_bytes);
}
#else
typedef int rnc_int_cells_dsp_unavailable;
#endif
