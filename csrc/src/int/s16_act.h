/* Elementwise fixed-point functions of the integer step (no float), bit for bit TFLite's and
 * gemmlowp's scalar definitions as rnncore/quant/fixedpoint.py states them:
 *
 *   sigmoid: y[i] = sigmoid_q15(x[i], int_bits)   int16 with int_bits integer bits -> Q0.15
 *   tanh:    y[i] = tanh_q15(x[i], int_bits)
 *   sigmoid_table, tanh_table: y[i] = sigmoid_table_q15(x[i]), tanh_table_q15(x[i]) (Q3.12 in)
 *   requant: g[i] = sat16(MBQM(acc[i], m[i], shift[i]) + add[i])   (add NULL: 0; the sum in
 *            int64, so saturating in int32 first gives the same)
 *
 * This file declares the rows a target has (see s8_kernel_list.h for how rows are chosen); the
 * MVE rows take 0 <= int_bits <= 6; shifts are int8 in [-31, 30], and acc * 2^max(shift, 0)
 * saturates to int32 as in the portable step (src/int/int_cells.c). */
#ifndef RNC_S16_ACT_H
#define RNC_S16_ACT_H

#include "s16_table.h"
#include "s8_kernel_list.h"

#if defined(RNC_S8_HAVE_MVE)
#include <arm_mve.h>
void rnc_s16_sigmoid_mve(int16_t *y, const int16_t *x, int n, int int_bits);
void rnc_s16_tanh_mve(int16_t *y, const int16_t *x, int n, int int_bits);
/* the table activations (s16_table.h; Q3.12 inputs, no int_bits) */
void rnc_s16_sigmoid_table_mve(int16_t *y, const int16_t *x, int n);
void rnc_s16_tanh_table_mve(int16_t *y, const int16_t *x, int n);
void rnc_s32_requant_s16_mve(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *shift,
                             const int16_t *add, int n);
/* MBQM on four int32 lanes (shift in [-31, 30]; x 2^max(shift, 0) saturated to int32) */
int32x4_t rnc_s32_mbqm_mve(int32x4_t x, int32x4_t m, int32x4_t shift);
#endif

#endif
