/* What the three integer step rows share (int_cells.c portable, int_cells_dsp.c, int_cells_mve.c):
 * the per-call argument checks with the scratch layout, and the gate pre-activations — each gate
 * block's products through the caller's rnc_s8_matvec_fn, then the row's own requantisation (the
 * one part that differs per core) — in TFLite's order:
 *
 *   g = sat16(MBQM(W_ih x8 + b_ih, M_ih))           every gate (x16 for RNC_INT_IN_S16)
 *   g = sat16(MBQM(W_hh h8 + b_hh, M_hh) + g)       the gates that add their recurrent part whole
 *                                                   (LSTM: all four; GRU: r and z; RNN: its one)
 *
 * H rows at a time through acc[H], so the int32 scratch is H words, not G*H. Static inline: each
 * row compiles its own copy, with its requantisation called directly. */
#ifndef RNC_INT_STEP_COMMON_H
#define RNC_INT_STEP_COMMON_H

#include <stdint.h>

#include "rnncore_int.h"

/* g[r] = sat16(MBQM(acc[r], m[r], e[r]) + add[r]) for r < n (add NULL: 0; the sum as in int64) */
typedef void (*rnc_int_requant_fn)(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *e,
                                   const int16_t *add, int n);

/* one step's sizes and its scratch (RNC_INT_SCRATCH_BYTES(G, H) bytes) */
typedef struct {
    int G, H, I;
    int32_t *acc; /* H: one gate block's accumulators */
    int16_t *g;   /* G*H: the pre-activations, then what the row keeps there */
    int8_t *rh8;  /* H: GRU linear_before_reset = 0, r * h as int8 */
} rnc_int_frame;

/* The checks every step row makes on every call (the cell's own fields are rnc_int_cell_check's,
 * once): RNC_INT_OK with f filled in, RNC_INT_E_ARG or RNC_INT_E_SCRATCH. */
static inline int rnc_int_frame_open(rnc_int_frame *f, const rnc_int_cell *c, rnc_s8_matvec_fn matvec,
                                     const void *x8, const int8_t *h8, const int16_t *s16, void *scratch,
                                     size_t scratch_bytes) {
    if (!c || !matvec || !x8 || !h8) return RNC_INT_E_ARG;
    f->G = rnc_int_gates(c->cell);
    f->H = c->hidden_size;
    f->I = c->input_size;
    if ((c->cell == RNC_INT_LSTM || c->cell == RNC_INT_GRU) && !s16) return RNC_INT_E_ARG;
    if (!scratch || ((uintptr_t)scratch & 3u) || scratch_bytes < RNC_INT_SCRATCH_BYTES(f->G, f->H))
        return RNC_INT_E_SCRATCH;
    f->acc = (int32_t *)scratch;
    f->g = (int16_t *)(f->acc + f->H);
    f->rh8 = (int8_t *)(f->g + f->G * f->H);
    return RNC_INT_OK;
}

/* y[r] = bias[r] + sum_c W[r ldw + c] x[c] on an int16 x (s8_matvec.h's rnc_s8s16_matvec_fn),
 * plain C: the int16 input's product of the portable and MVE steps, and of the DSP step when it
 * does not run its own */
static inline void rnc_s8s16_matvec_portable(int32_t *y, const int8_t *W, int ldw, const int32_t *bias,
                                             const int16_t *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const int8_t *w = W + (long)r * ldw;
        int32_t acc = bias[r];
        for (int c = 0; c < cols; c++) acc += (int32_t)w[c] * (int32_t)x[c];
        y[r] = acc;
    }
}

/* g[r] = sat16(MBQM(W[r] v + b[r])) for r < rows or, with add, sat16(MBQM(...) + g[r]); `block`
 * rows per product call */
static inline void rnc_int_gate_part(int16_t *g, int32_t *acc, rnc_s8_matvec_fn matvec, rnc_int_requant_fn requant,
                                     const int8_t *W, int cols, const int32_t *b, const int32_t *m,
                                     const int8_t *e, const int8_t *v, int rows, int block, int add) {
    for (int r0 = 0; r0 < rows; r0 += block) {
        const int n = rows - r0 < block ? rows - r0 : block;
        matvec(acc, W + (long)r0 * cols, cols, b + r0, v, n, cols);
        requant(g + r0, acc, m + r0, e + r0, add ? g + r0 : 0, n);
    }
}

/* The pre-activations of a step (above) into f->g; x (int8, or int16 through matvec16) and h8
 * are only read */
static inline void rnc_int_preactivations(const rnc_int_frame *f, const rnc_int_cell *c, rnc_s8_matvec_fn matvec,
                                          rnc_s8s16_matvec_fn matvec16, rnc_int_requant_fn requant,
                                          const void *x, const int8_t *h8) {
    const int H = f->H;
    const int whole = c->cell == RNC_INT_LSTM ? 4 * H : c->cell == RNC_INT_GRU ? 2 * H : H;
    if (c->input_dtype == RNC_INT_IN_S16)
        for (int r0 = 0; r0 < f->G * H; r0 += H) {
            matvec16(f->acc, c->w_ih + (long)r0 * f->I, f->I, c->b_ih + r0, (const int16_t *)x, H, f->I);
            requant(f->g + r0, f->acc, c->m_ih + r0, c->e_ih + r0, 0, H);
        }
    else
        rnc_int_gate_part(f->g, f->acc, matvec, requant, c->w_ih, f->I, c->b_ih, c->m_ih, c->e_ih,
                          (const int8_t *)x, f->G * H, H, 0);
    rnc_int_gate_part(f->g, f->acc, matvec, requant, c->w_hh, H, c->b_hh, c->m_hh, c->e_hh, h8, whole, H, 1);
}

#endif
