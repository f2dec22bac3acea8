/* Integer products of the fully-integer (Cortex-M) path: int8 weights x int8 activations,
 * int32 accumulation, no float anywhere. Every ISA version (generic, Cortex-M DSP, Cortex-M55
 * MVE) computes exactly the same int32 values. No overflow can occur: |w*x| <= 2^14 and
 * cols <= RNC_S8_MAX_COLS = 2^15, so |sum| <= 2^29, and callers keep |bias| < 2^30.
 *
 *   y[r] = bias[r] + sum_{c < cols} W[r*ldw + c] * x[c]        (0 <= r < rows)
 *
 * W is row-major int8 with leading dimension ldw >= cols; bias may be NULL (taken as 0).
 * Pointers need no alignment; y must not alias W, x or bias. */
#ifndef RNC_S8_MATVEC_H
#define RNC_S8_MATVEC_H

#include <stdint.h>

#define RNC_S8_MAX_COLS 32768

typedef void (*rnc_s8_matvec_fn)(int32_t *y, const int8_t *W, int ldw, const int32_t *bias,
                                 const int8_t *x, int rows, int cols);

void rnc_s8_matvec_generic(int32_t *y, const int8_t *W, int ldw, const int32_t *bias,
                           const int8_t *x, int rows, int cols);

/* The same sums on an int16 x (the int16 model input): exact in int32 only while every row keeps
 * |bias[r]| + 2^15 sum_c |W[r, c]| <= 2^31 - 1, which rnc_int_cell_check checks once. The
 * portable one is int_step_common.h's rnc_s8s16_matvec_portable. */
typedef void (*rnc_s8s16_matvec_fn)(int32_t *y, const int8_t *W, int ldw, const int32_t *bias,
                                    const int16_t *x, int rows, int cols);

#endif
