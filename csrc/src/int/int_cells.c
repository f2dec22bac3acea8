/* The fully-integer cell step (rnncore_int.h), line for line rnncore/quant/fixedpoint.py and
 * rnncore/quant/integer.py. Integer arithmetic only: int32 with int64 products; right shifts of
 * negative values are arithmetic (as on every compiler this project supports). */
#include "rnncore_int.h"

#include <string.h>

#include "int_step_common.h"
#include "s16_table.h"

#define I16_MIN (-32768)
#define I16_MAX 32767
#define I32_MIN (-2147483647 - 1)
#define I32_MAX 2147483647

static inline int32_t sat16(int32_t x) { return x < I16_MIN ? I16_MIN : x > I16_MAX ? I16_MAX : x; }
static inline int32_t sat16_64(int64_t x) { return (int32_t)(x < I16_MIN ? I16_MIN : x > I16_MAX ? I16_MAX : x); }
static inline int32_t sat8(int32_t x) { return x < -128 ? -128 : x > 127 ? 127 : x; }
/* (int16_t)x, two's-complement wrap-around, without implementation-defined conversions */
static inline int32_t wrap16(int32_t x) { return (int32_t)(((uint32_t)x + 32768u) & 0xFFFFu) - 32768; }

/* ---- multiplier + shift (TFLite common.h) -------------------------------------------- */

/* SaturatingRoundingDoublingHighMul(int32 a, int32 b) */
static inline int32_t srdhm(int32_t a, int32_t b) {
    if (a == b && a == I32_MIN) return I32_MAX;
    const int64_t ab = (int64_t)a * b;
    const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* RoundingDivideByPOT(x, e), 0 <= e <= 31: round to nearest, ties away from zero */
static inline int32_t rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (remainder > threshold);
}

/* MultiplyByQuantizedMultiplier(x, m, shift), x * 2^left saturated to int32 */
static inline int32_t mbqm(int32_t x, int32_t m, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    int64_t xl = (int64_t)x * ((int64_t)1 << left);
    xl = xl < I32_MIN ? I32_MIN : xl > I32_MAX ? I32_MAX : xl;
    return rdbpot(srdhm((int32_t)xl, m), right);
}

/* TFLite CwiseMul(int16 a, int16 b, shift): (int16_t)RDBPOT(a b, shift) */
static inline int32_t cwise_mul_shift(int32_t a, int32_t b, int shift) { return wrap16(rdbpot(a * b, shift)); }

/* ---- gemmlowp FixedPoint<int16_t, k> ------------------------------------------------- */

static inline int32_t trunc_div(int32_t a, int32_t d) { return a / d; } /* C division truncates */

/* gemmlowp GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT for int16: RDBPOT(raw32, 16) */
#define C16(raw32) rdbpot((raw32), 16)

static inline int32_t srdhm16(int32_t a, int32_t b) {
    if (a == b && a == I16_MIN) return I16_MAX;
    const int32_t ab = a * b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return wrap16(trunc_div(ab + nudge, 1 << 15));
}

/* SaturatingRoundingMultiplyByPOT<e> on int16 */
static inline int32_t sat_mul_pot16(int32_t x, int e) {
    if (e == 0) return x;
    if (e < 0) return rdbpot(x, -e);
    const int32_t threshold = (1 << (15 - e)) - 1;
    if (x > threshold) return I16_MAX;
    if (x < -threshold) return I16_MIN;
    return wrap16(x * (1 << e));
}

static inline int32_t rounding_half_sum16(int32_t a, int32_t b) {
    const int32_t s = a + b;
    return wrap16(trunc_div(s + (s >= 0 ? 1 : -1), 2));
}

#define ONE_Q15 I16_MAX

/* exp(a) for a in [-1/4, 0), Q0.15 */
static int32_t exp_on_interval_q15(int32_t a) {
    const int32_t constant_term = C16(1895147668);
    const int32_t constant_1_over_3 = C16(715827883);
    const int32_t x = wrap16(a + (1 << 12));
    const int32_t x2 = srdhm16(x, x);
    const int32_t x3 = srdhm16(x2, x);
    const int32_t x4 = srdhm16(x2, x2);
    const int32_t x4_over_4 = sat_mul_pot16(x4, -2);
    const int32_t poly = sat_mul_pot16(wrap16(srdhm16(wrap16(x4_over_4 + x3), constant_1_over_3) + x2), -1);
    return sat16(constant_term + srdhm16(constant_term, wrap16(x + poly)));
}

static const int32_t exp_barrel[7][2] = {{-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
                                         {2, 39332535},   {3, 720401},      {4, 242}};

/* exp(a) for a <= 0 with int_bits integer bits, Q0.15 */
static int32_t exp_on_negative_values_q15(int32_t a, int int_bits) {
    const int frac = 15 - int_bits;
    const int32_t quarter = 1 << (frac - 2);
    const int32_t a_mod_quarter_minus_quarter = wrap16((a & (quarter - 1)) - quarter);
    int32_t result = exp_on_interval_q15(sat_mul_pot16(a_mod_quarter_minus_quarter, int_bits));
    const int32_t remainder = wrap16(a_mod_quarter_minus_quarter - a);
    for (int k = 0; k < 7; k++) {
        const int e = (int)exp_barrel[k][0];
        if (int_bits > e && (remainder & (1 << (frac + e)))) result = srdhm16(result, C16(exp_barrel[k][1]));
    }
    if (int_bits > 5 && a < C16(-(1 << (36 - int_bits)))) result = 0;
    return a == 0 ? ONE_Q15 : result;
}

/* 1 / d for d in [1/2, 1] (Q0.15): Newton-Raphson from 48/17 - 32/17 d, Q2.13 */
static int32_t newton_reciprocal_q13(int32_t half_denominator) {
    int32_t x = wrap16(C16(1515870810) + srdhm16(half_denominator, C16(-1010580540)));
    for (int k = 0; k < 3; k++) {
        const int32_t one_minus_dx = wrap16((1 << 13) - srdhm16(half_denominator, x));
        x = wrap16(x + sat_mul_pot16(srdhm16(x, one_minus_dx), 2));
    }
    return x;
}

static int32_t sigmoid_q15(int32_t a, int int_bits) {
    if (a == 0) return 1 << 14;
    const int32_t abs_a = a > 0 ? a : wrap16(-a);
    const int32_t e = exp_on_negative_values_q15(wrap16(-abs_a), int_bits);
    const int32_t if_positive = sat_mul_pot16(newton_reciprocal_q13(rounding_half_sum16(e, ONE_Q15)), 1);
    return a > 0 ? if_positive : wrap16(ONE_Q15 - if_positive);
}

static int32_t tanh_q15(int32_t a, int int_bits) {
    if (a == 0) return 0;
    const int32_t n = a < 0 ? a : wrap16(-a);
    const int32_t e = exp_on_negative_values_q15(n, int_bits + 1);
    const int32_t x = newton_reciprocal_q13(rounding_half_sum16(e, ONE_Q15));
    const int32_t t = sat_mul_pot16(wrap16(x - (1 << 13)), 2);
    return a < 0 ? wrap16(-t) : t;
}

/* ---- the activation tables (s16_table.h): round(2^15 f(j / 32)), j = 0..256, at most 2^15 - 1;
 * rnncore/quant/fixedpoint.py computes them (tests/test_integer_table.py compares) ---------- */

const int16_t rnc_s16_sigmoid_table[RNC_S16_TABLE_SIZE] = {
    16384, 16640, 16896, 17151, 17407, 17661, 17916, 18169, 18421, 18673, 18923, 19173, 19420, 19667,
    19912, 20155, 20397, 20636, 20874, 21110, 21344, 21575, 21804, 22031, 22255, 22477, 22696, 22913,
    23127, 23338, 23547, 23753, 23955, 24155, 24352, 24546, 24737, 24925, 25110, 25292, 25471, 25646,
    25819, 25988, 26155, 26318, 26479, 26636, 26790, 26941, 27090, 27235, 27377, 27516, 27653, 27786,
    27917, 28045, 28169, 28292, 28411, 28528, 28642, 28753, 28862, 28968, 29072, 29173, 29272, 29368,
    29462, 29554, 29644, 29731, 29816, 29899, 29979, 30058, 30135, 30210, 30282, 30353, 30422, 30489,
    30555, 30618, 30680, 30740, 30799, 30856, 30912, 30966, 31018, 31069, 31119, 31167, 31214, 31260,
    31304, 31347, 31389, 31430, 31469, 31508, 31545, 31581, 31616, 31651, 31684, 31716, 31747, 31778,
    31807, 31836, 31864, 31891, 31917, 31943, 31968, 31992, 32015, 32038, 32060, 32081, 32102, 32122,
    32141, 32160, 32179, 32196, 32214, 32231, 32247, 32263, 32278, 32293, 32307, 32321, 32335, 32348,
    32361, 32373, 32385, 32397, 32408, 32419, 32430, 32440, 32450, 32460, 32469, 32478, 32487, 32496,
    32504, 32512, 32520, 32527, 32535, 32542, 32549, 32555, 32562, 32568, 32574, 32580, 32586, 32592,
    32597, 32602, 32607, 32612, 32617, 32622, 32626, 32630, 32635, 32639, 32643, 32647, 32650, 32654,
    32657, 32661, 32664, 32667, 32670, 32673, 32676, 32679, 32682, 32684, 32687, 32689, 32692, 32694,
    32696, 32699, 32701, 32703, 32705, 32707, 32709, 32711, 32712, 32714, 32716, 32717, 32719, 32720,
    32722, 32723, 32725, 32726, 32727, 32728, 32730, 32731, 32732, 32733, 32734, 32735, 32736, 32737,
    32738, 32739, 32740, 32741, 32742, 32742, 32743, 32744, 32745, 32745, 32746, 32747, 32747, 32748,
    32749, 32749, 32750, 32750, 32751, 32752, 32752, 32753, 32753, 32753, 32754, 32754, 32755, 32755,
    32756, 32756, 32756, 32757, 32757};

const int16_t rnc_s16_tanh_table[RNC_S16_TABLE_SIZE] = {
    0, 1024, 2045, 3063, 4075, 5079, 6073, 7056, 8025, 8980, 9919, 10840, 11743, 12625, 13486, 14326,
    15143, 15936, 16706, 17452, 18173, 18870, 19542, 20189, 20813, 21411, 21986, 22538, 23066, 23571,
    24054, 24516, 24956, 25376, 25776, 26157, 26519, 26864, 27191, 27502, 27797, 28076, 28341, 28592,
    28830, 29055, 29268, 29470, 29660, 29840, 30010, 30170, 30322, 30465, 30600, 30727, 30847, 30960,
    31067, 31167, 31262, 31351, 31435, 31515, 31589, 31659, 31726, 31788, 31846, 31901, 31953, 32002,
    32048, 32091, 32132, 32170, 32206, 32240, 32271, 32301, 32329, 32356, 32381, 32404, 32426, 32447,
    32466, 32484, 32501, 32517, 32532, 32547, 32560, 32573, 32584, 32596, 32606, 32616, 32625, 32634,
    32642, 32649, 32657, 32663, 32670, 32676, 32681, 32686, 32691, 32696, 32700, 32704, 32708, 32712,
    32715, 32718, 32721, 32724, 32727, 32729, 32732, 32734, 32736, 32738, 32740, 32741, 32743, 32745,
    32746, 32747, 32749, 32750, 32751, 32752, 32753, 32754, 32755, 32755, 32756, 32757, 32758, 32758,
    32759, 32759, 32760, 32760, 32761, 32761, 32762, 32762, 32762, 32763, 32763, 32763, 32764, 32764,
    32764, 32764, 32765, 32765, 32765, 32765, 32765, 32766, 32766, 32766, 32766, 32766, 32766, 32766,
    32766, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767};

/* ---- the cells ---------------------------------------------------------------------- */

#define GATE_INT_BITS 3

/* the GRU's and RNN's Q3.12 activations in the cell's family */
static inline int32_t gate_sigmoid(const rnc_int_cell *c, int32_t x) {
    return c->activation == RNC_INT_ACT_TABLE ? rnc_s16_sigmoid_table_q15(x) : sigmoid_q15(x, GATE_INT_BITS);
}
static inline int32_t gate_tanh(const rnc_int_cell *c, int32_t x) {
    return c->activation == RNC_INT_ACT_TABLE ? rnc_s16_tanh_table_q15(x) : tanh_q15(x, GATE_INT_BITS);
}

int rnc_int_gates(int32_t cell) {
    switch (cell) {
    case RNC_INT_LSTM: return 4;
    case RNC_INT_GRU: return 3;
    case RNC_INT_RNN_TANH:
    case RNC_INT_RNN_RELU: return 1;
    default: return 0;
    }
}

int rnc_int_cell_check(const rnc_int_cell *c) {
    if (!c) return RNC_INT_E_ARG;
    const int G = rnc_int_gates(c->cell);
    if (!G || c->input_size < 1 || c->input_size > RNC_S8_MAX_COLS || c->hidden_size < 1 ||
        c->hidden_size > RNC_S8_MAX_COLS || (int64_t)G * c->hidden_size > RNC_S8_MAX_COLS * 4)
        return RNC_INT_E_ARG;
    if (!c->w_ih || !c->w_hh || !c->b_ih || !c->b_hh || !c->m_ih || !c->m_hh || !c->e_ih || !c->e_hh)
        return RNC_INT_E_ARG;
    if (c->h_zp < -128 || c->h_zp > 127 || c->e_h < -31 || c->e_h > 30 || c->m_h < 0 || c->m_rh < 0 ||
        c->e_rh < -31 || c->e_rh > 30)
        return RNC_INT_E_ARG;
    if ((c->activation != RNC_INT_ACT_GEMMLOWP && c->activation != RNC_INT_ACT_TABLE) ||
        (c->activation == RNC_INT_ACT_TABLE && c->cell == RNC_INT_LSTM))
        return RNC_INT_E_ARG;
    if (c->cell == RNC_INT_LSTM && (c->cell_shift < -15 || c->cell_shift > -9 || c->cell_clip < 0))
        return RNC_INT_E_ARG;
    if (c->input_dtype != RNC_INT_IN_S8 && c->input_dtype != RNC_INT_IN_S16) return RNC_INT_E_ARG;
    if (c->input_dtype == RNC_INT_IN_S16) { /* int32 accumulation of int8 W_ih times int16 x */
        /* |b| <= lim keeps a row within the bound whatever its weights (I 2^7 2^15 <= sum); the
         * exact sum only for the rows above */
        const int64_t lim = (int64_t)INT32_MAX - ((int64_t)c->input_size << 22);
        for (int r = 0; r < G * c->hidden_size; r++) {
            const int64_t b = c->b_ih[r] < 0 ? -(int64_t)c->b_ih[r] : c->b_ih[r];
            if (b <= lim) continue;
            const int8_t *w = c->w_ih + (long)r * c->input_size;
            int64_t s = 0;
            for (int k = 0; k < c->input_size; k++) s += w[k] < 0 ? -(int64_t)w[k] : w[k];
            if (s * 32768 + b > INT32_MAX) return RNC_INT_E_ARG;
        }
    }
    for (int r = 0; r < G * c->hidden_size; r++)
        if (c->e_ih[r] < -31 || c->e_ih[r] > 30 || c->e_hh[r] < -31 || c->e_hh[r] > 30 || c->m_ih[r] < 0 ||
            c->m_hh[r] < 0)
            return RNC_INT_E_ARG;
    return RNC_INT_OK;
}

void rnc_int_cell_reset(const rnc_int_cell *c, int8_t *h8, int16_t *s16) {
    memset(h8, (int)(int8_t)c->h_zp, (size_t)c->hidden_size);
    if (s16) memset(s16, 0, (size_t)c->hidden_size * sizeof(int16_t));
}

/* g[r] = sat16(MBQM(acc[r], m[r], e[r]) + add[r]) (int_step_common.h's rnc_int_requant_fn; the
 * sum in int64, as the spec's) */
static void requant(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *e, const int16_t *add, int n) {
    if (add)
        for (int r = 0; r < n; r++) g[r] = (int16_t)sat16_64((int64_t)mbqm(acc[r], m[r], e[r]) + add[r]);
    else
        for (int r = 0; r < n; r++) g[r] = (int16_t)sat16(mbqm(acc[r], m[r], e[r]));
}

int rnc_int_cell_run(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                     int16_t *s16, void *scratch, size_t scratch_bytes) {
    rnc_int_frame f;
    const int status = rnc_int_frame_open(&f, c, matvec, x8, h8, s16, scratch, scratch_bytes);
    if (status != RNC_INT_OK) return status;
    const int H = f.H;
    int32_t *acc = f.acc;
    int16_t *g = f.g;
    int8_t *rh8 = f.rh8;

    rnc_int_preactivations(&f, c, matvec, rnc_s8s16_matvec_portable, requant, x8, h8); /* int_step_common.h */
    if (c->cell == RNC_INT_LSTM) {
        const int cell_int_bits = 15 + c->cell_shift;
        for (int k = 0; k < H; k++) {
            const int32_t i = sigmoid_q15(g[k], GATE_INT_BITS);
            const int32_t f = sigmoid_q15(g[H + k], GATE_INT_BITS);
            const int32_t gg = tanh_q15(g[2 * H + k], GATE_INT_BITS);
            const int32_t o = sigmoid_q15(g[3 * H + k], GATE_INT_BITS);
            int32_t c2 = sat16(cwise_mul_shift(f, s16[k], 15) + cwise_mul_shift(i, gg, 30 + c->cell_shift));
            if (c->cell_clip > 0) c2 = c2 < -c->cell_clip ? -c->cell_clip : c2 > c->cell_clip ? c->cell_clip : c2;
            const int32_t tc = tanh_q15(c2, cell_int_bits);
            s16[k] = (int16_t)c2;
            h8[k] = (int8_t)sat8(mbqm(o * tc, c->m_h, (int)c->e_h) + c->h_zp);
        }
        return RNC_INT_OK;
    }
    if (c->cell == RNC_INT_GRU) {
        const int8_t *w_hn = c->w_hh + (long)2 * H * H;
        const int32_t *b_hn = c->b_hh + 2 * H, *m_hn = c->m_hh + 2 * H;
        const int8_t *e_hn = c->e_hh + 2 * H;
        if (c->linear_before_reset) {
            matvec(acc, w_hn, H, b_hn, h8, H, H);
            for (int k = 0; k < H; k++) {
                const int32_t r = gate_sigmoid(c, g[k]);
                const int32_t g_hn = sat16(mbqm(acc[k], m_hn[k], e_hn[k]));
                g[2 * H + k] = (int16_t)gate_tanh(c, sat16(g[2 * H + k] + cwise_mul_shift(r, g_hn, 15)));
            }
        } else {
            for (int k = 0; k < H; k++) {
                const int32_t r = gate_sigmoid(c, g[k]);
                rh8[k] = (int8_t)sat8(mbqm(r * s16[k], c->m_rh, (int)c->e_rh) + c->h_zp);
            }
            matvec(acc, w_hn, H, b_hn, rh8, H, H);
            for (int k = 0; k < H; k++)
                g[2 * H + k] = (int16_t)gate_tanh(c, sat16(mbqm(acc[k], m_hn[k], e_hn[k]) + g[2 * H + k]));
        }
        for (int k = 0; k < H; k++) {
            const int32_t z = gate_sigmoid(c, g[H + k]);
            const int32_t n = g[2 * H + k];
            const int32_t h16 = sat16(rdbpot(((1 << 15) - z) * n + z * s16[k], 15));
            s16[k] = (int16_t)h16;
            h8[k] = (int8_t)sat8(mbqm(h16, c->m_h, (int)c->e_h) + c->h_zp);
        }
        return RNC_INT_OK;
    }
    /* RNN (h8 was read by the recurrent product before it is overwritten here) */
    for (int k = 0; k < H; k++) {
        const int32_t a = c->cell == RNC_INT_RNN_TANH ? gate_tanh(c, g[k]) : (g[k] > 0 ? g[k] : 0);
        h8[k] = (int8_t)sat8(mbqm(a, c->m_h, (int)c->e_h) + c->h_zp);
    }
    return RNC_INT_OK;
}

int rnc_int_cell_step(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                      int16_t *s16, void *scratch, size_t scratch_bytes) {
    if (rnc_int_cell_check(c) != RNC_INT_OK) return RNC_INT_E_ARG;
    return rnc_int_cell_run(c, matvec, x8, h8, s16, scratch, scratch_bytes);
}

int rnc_int_linear_run(const rnc_int_linear *l, rnc_s8_matvec_fn matvec, const int8_t *x8, int32_t *y) {
    if (!l || !matvec || !x8 || !y || !l->w || !l->b || !l->m || !l->e || l->in_features < 1 ||
        l->in_features > RNC_S8_MAX_COLS || l->out_features < 1 || l->out_features > RNC_S8_MAX_COLS)
        return RNC_INT_E_ARG;
    for (int r = 0; r < l->out_features; r++)
        if (l->e[r] < -31 || l->e[r] > 30 || l->m[r] < 0) return RNC_INT_E_ARG;
    matvec(y, l->w, l->in_features, l->b, x8, l->out_features, l->in_features);
    for (int r = 0; r < l->out_features; r++) y[r] = mbqm(y[r], l->m[r], l->e[r]);
    return RNC_INT_OK;
}
