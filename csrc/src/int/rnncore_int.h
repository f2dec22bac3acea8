/* The fully-integer recurrent step (Cortex-M path): one time step of an LSTM, GRU (both forms)
 * or RNN (tanh / ReLU) cell on int8 inputs, bit for bit the NumPy spec rnncore.quant.integer
 * (its module docstring has the equations; docs/integer.md puts them next to this code).
 *
 * No float anywhere, no allocation, no libc beyond memcpy/memset; freestanding C99. Every
 * int8 x int8 product goes through the rnc_s8_matvec_fn the caller passes (s8_matvec.h: the
 * generic twin or a Cortex-M DSP / MVE row), so the step is the same on every core.
 *
 * Layout (G gate blocks of H rows, PyTorch's gate order: LSTM i, f, g, o; GRU r, z, n):
 *   w_ih (G*H, I) and w_hh (G*H, H) int8 row-major; b_ih, b_hh (G*H) int32 with the zero points
 *   folded in; m_ih, m_hh (G*H) int32 multipliers and e_ih, e_hh (G*H) int8 shifts (per row).
 * Input: x[I] int8 or, with input_dtype RNC_INT_IN_S16 (a model's first layer only), int16
 *   symmetric (TFLite's 16x8 activations): the input product is then int8 W_ih times int16 x in
 *   int32, every row keeping |b_ih[r]| + 2^15 sum_k |w_ih[r, k]| <= 2^31 - 1 (rnc_int_cell_check).
 * State (caller-owned, batch 1): h8[H] int8 (the output; the next step's recurrent input) and
 *   s16[H] int16: the LSTM cell c, the GRU state h16 (Q0.15); unused (may be NULL) for RNNs.
 * Scratch: RNC_INT_SCRATCH_BYTES(G, H) bytes, 4-byte aligned, caller-owned. */
#ifndef RNC_INT_H
#define RNC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "s8_matvec.h"

#define RNC_INT_LSTM 0
#define RNC_INT_GRU 1
#define RNC_INT_RNN_TANH 2
#define RNC_INT_RNN_RELU 3

/* rnc_int_cell.activation: the sigmoid / tanh family */
#define RNC_INT_ACT_GEMMLOWP 0 /* gemmlowp's int16 functions (TFLite's integer LSTM), the default */
#define RNC_INT_ACT_TABLE 1    /* 257-entry interpolated tables (s16_table.h); GRU and RNN only */

/* rnc_int_cell.input_dtype: what x points at */
#define RNC_INT_IN_S8 0  /* int8 x (zero point folded into b_ih), the default */
#define RNC_INT_IN_S16 1 /* int16 x, symmetric (zero point 0) */

#define RNC_INT_OK 0
#define RNC_INT_E_ARG (-1)     /* a NULL pointer, a bad size, a shift out of range */
#define RNC_INT_E_SCRATCH (-2) /* scratch smaller than RNC_INT_SCRATCH_BYTES or misaligned */

/* int32 accumulators of one gate block (H) + int16 pre-activations (G*H) + int8 r*h (H), rounded
 * up to 4 bytes: 704 bytes for the GRU H = 64 (plus the state: 192 bytes). */
#define RNC_INT_SCRATCH_BYTES(G, H) ((size_t)(H) * 4u + (((size_t)(G) * (H) * 2u + (size_t)(H) + 3u) & ~(size_t)3u))

typedef struct {
    int32_t cell;                /* RNC_INT_LSTM / _GRU / _RNN_TANH / _RNN_RELU */
    int32_t input_size;          /* I, 1..RNC_S8_MAX_COLS */
    int32_t hidden_size;         /* H, 1..RNC_S8_MAX_COLS */
    int32_t linear_before_reset; /* GRU: 1 = PyTorch / ONNX lbr=1, 0 = ONNX default / Keras */
    const int8_t *w_ih, *w_hh;
    const int32_t *b_ih, *b_hh;
    const int32_t *m_ih, *m_hh;
    const int8_t *e_ih, *e_hh;   /* shifts in [-31, 30] */
    int32_t m_h, e_h;            /* state -> h8 */
    int32_t m_rh, e_rh;          /* GRU lbr=0: r * h16 (Q0.30) -> int8 */
    int32_t h_zp;                /* zero point of h8, [-128, 127] */
    int32_t cell_shift;          /* LSTM: the cell scale is 2^cell_shift, [-15, -9] */
    int32_t cell_clip;           /* LSTM: |c| <= cell_clip when > 0 */
    int32_t activation;          /* RNC_INT_ACT_GEMMLOWP (0) or RNC_INT_ACT_TABLE (not LSTM) */
    int32_t input_dtype;         /* RNC_INT_IN_S8 (0) or RNC_INT_IN_S16 */
} rnc_int_cell;

/* The linear head: y[r] = MBQM(b[r] + sum_k w[r, k] x8[k], m[r], e[r]), integer logits on one
 * common scale (rnncore.quant.integer.IntHead). */
typedef struct {
    int32_t in_features, out_features; /* 1..RNC_S8_MAX_COLS */
    const int8_t *w;                   /* (out, in) int8 row-major */
    const int32_t *b, *m;              /* (out) */
    const int8_t *e;                   /* (out), shifts in [-31, 30] */
} rnc_int_linear;

/* y[out_features] (int32; also the accumulators, so no scratch). RNC_INT_OK or RNC_INT_E_ARG. */
int rnc_int_linear_run(const rnc_int_linear *l, rnc_s8_matvec_fn matvec, const int8_t *x8, int32_t *y);

/* Number of gate blocks of a cell kind (4, 3, 1, 1), 0 for an unknown kind. */
int rnc_int_gates(int32_t cell);

/* RNC_INT_OK if every field is usable (sizes, pointers, shift ranges, the int16 input's
 * accumulation bound), else RNC_INT_E_ARG. */
int rnc_int_cell_check(const rnc_int_cell *c);

/* One step: x[I] (int8_t, or int16_t for RNC_INT_IN_S16) and the state (h8[H], s16[H]) -> the
 * new state in place. matvec computes the int8 products (the int16 input's product is the row's
 * own). Returns RNC_INT_OK, RNC_INT_E_ARG or RNC_INT_E_SCRATCH (state untouched on error). */
int rnc_int_cell_step(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                      int16_t *s16, void *scratch, size_t scratch_bytes);

/* rnc_int_cell_step without rnc_int_cell_check: for a cell the caller has validated once
 * (rnc_int_cell_check(c) == RNC_INT_OK, e.g. at load) and not changed since; checks only the
 * pointers and the scratch. The per-row check of the multipliers and shifts costs ~5 % of a
 * Cortex-M4 step (docs/deploy-cortex-m.md). Same results bit for bit. */
int rnc_int_cell_run(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                     int16_t *s16, void *scratch, size_t scratch_bytes);

/* The zero state of real 0: h8 = h_zp, s16 = 0. */
void rnc_int_cell_reset(const rnc_int_cell *c, int8_t *h8, int16_t *s16);

#endif
