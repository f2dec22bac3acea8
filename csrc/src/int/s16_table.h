/* The table activations of the integer step (rnc_int_cell.activation == RNC_INT_ACT_TABLE), bit
 * for bit rnncore/quant/fixedpoint.py (sigmoid_table_q15, tanh_table_q15): for a Q3.12 int16 x,
 *
 *   u = min(|x|, 2^15 - 1), j = u >> 7, t = u & 127
 *   p = T[j] + ((t (T[j + 1] - T[j]) + 64) >> 7)
 *   sigmoid: x >= 0 -> p, x < 0 -> 2^15 - p        tanh: x >= 0 -> p, x < 0 -> -p
 *
 * with T[j] = min(round(2^15 f(j / 32)), 2^15 - 1), j = 0..256 (the tables are defined in
 * int_cells.c). Both tables increase, so t (T[j + 1] - T[j]) >= 0 and fits 2^17. */
#ifndef RNC_S16_TABLE_H
#define RNC_S16_TABLE_H

#include <stdint.h>

#define RNC_S16_TABLE_SHIFT 7
#define RNC_S16_TABLE_SIZE 257

extern const int16_t rnc_s16_sigmoid_table[RNC_S16_TABLE_SIZE];
extern const int16_t rnc_s16_tanh_table[RNC_S16_TABLE_SIZE];

static inline int32_t rnc_s16_table_interp(int32_t x, const int16_t *T) {
    int32_t u = x < 0 ? -x : x;
    u = u > 32767 ? 32767 : u;
    const int32_t j = u >> RNC_S16_TABLE_SHIFT, t = u & ((1 << RNC_S16_TABLE_SHIFT) - 1);
    const int32_t lo = T[j];
    return lo + ((t * (T[j + 1] - lo) + (1 << (RNC_S16_TABLE_SHIFT - 1))) >> RNC_S16_TABLE_SHIFT);
}

static inline int32_t rnc_s16_sigmoid_table_q15(int32_t x) {
    const int32_t p = rnc_s16_table_interp(x, rnc_s16_sigmoid_table);
    return x < 0 ? 32768 - p : p;
}

static inline int32_t rnc_s16_tanh_table_q15(int32_t x) {
    const int32_t p = rnc_s16_table_interp(x, rnc_s16_tanh_table);
    return x < 0 ? -p : p;
}

#endif
