/* The integer cell step (rnncore_int.h) with Armv8.1-M MVE (Cortex-M55): the products through
 * the caller's rnc_s8_matvec_fn as in the portable step (int_cells.c), and the elementwise work
 * on whole gate blocks, eight int16 or four int32 lanes at a time: requantisation
 * (rnc_s32_requant_s16_mve), sigmoid and tanh (rnc_s16_sigmoid_mve, rnc_s16_tanh_mve; in place,
 * each block read before it is written), and the cell updates below. Every value is the portable
 * step's bit for bit (the same fixed-point definitions, lane by lane); the tests run both on the
 * NumPy spec's vectors. Same arguments, checks, scratch (its layout too) and results as
 * rnc_int_cell_step. */
#include "int_step_common.h"
#include "rnncore_int.h"
#include "s16_act.h"
#include "s8_matvec_mve.h"

#if defined(RNC_S8_HAVE_MVE)

#define GATE_INT_BITS 3

/* the GRU's and RNN's Q3.12 activations, in place or not, in the cell's family */
static inline void gate_sigmoid(const rnc_int_cell *c, int16_t *y, const int16_t *x, int n) {
    if (c->activation == RNC_INT_ACT_TABLE) rnc_s16_sigmoid_table_mve(y, x, n);
    else rnc_s16_sigmoid_mve(y, x, n, GATE_INT_BITS);
}
static inline void gate_tanh(const rnc_int_cell *c, int16_t *y, const int16_t *x, int n) {
    if (c->activation == RNC_INT_ACT_TABLE) rnc_s16_tanh_table_mve(y, x, n);
    else rnc_s16_tanh_mve(y, x, n, GATE_INT_BITS);
}

/* The int16 input's product (s8_matvec.h's rnc_s8s16_matvec_fn): four rows per pass
 * (rnc_s8s16_mve_rows4, s8_matvec_mve.h: VLDRB.S16 + VMLADAVA.S16, the sums within int32 by
 * rnc_int_cell_check's bound), the rows left one at a time; the last cols % 8 columns through a
 * tail predicate (VCTP.16: no element read past a row or past x) */
static __attribute__((noinline)) void s8s16_matvec_mve(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int16_t *x,
                             int rows, int cols) {
    const int c8 = cols & ~7;
    const mve_pred16_t tail = vctp16q((uint32_t)(cols - c8));
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        rnc_s8_mve_sums4 s = {bias[r], bias[r + 1], bias[r + 2], bias[r + 3]};
        s = rnc_s8s16_mve_rows4(s, W + (long)r * ldw, ldw, x, cols, tail);
        y[r] = s.a0;
        y[r + 1] = s.a1;
        y[r + 2] = s.a2;
        y[r + 3] = s.a3;
    }
    for (; r < rows; r++) {
        const int8_t *w0 = W + (long)r * ldw;
        int32_t a0 = bias[r];
        int c = 0;
        for (; c < c8; c += 8) a0 = vmladavaq_s16(a0, vldrbq_s16(w0 + c), vld1q_s16(x + c));
        if (c < cols) a0 = vmladavaq_s16(a0, vldrbq_z_s16(w0 + c, tail), vldrhq_z_s16(x + c, tail));
        y[r] = a0;
    }
}

/* TFLite CwiseMul(a, b, shift) = (int16_t)RDBPOT(a b, shift), 1 <= shift <= 31, on four lanes
 * (the int16 wrap is the caller's truncating store or an explicit one) */
static inline int32x4_t cwise_mul_shift4(int32x4_t a, int32x4_t b, int shift) {
    int32x4_t ab = vmulq_s32(a, b);
    return vrshlq_n_s32(vqaddq_s32(ab, vshrq_n_s32(ab, 31)), -shift);
}

/* (int16_t)x on four int32 lanes: sign-extend the low half */
static inline int32x4_t wrap16x4(int32x4_t x) { return vshrq_n_s32(vshlq_n_s32(x, 16), 16); }

static inline int32x4_t sat16x4(int32x4_t x) {
    return vminq_s32(vmaxq_s32(x, vdupq_n_s32(-32768)), vdupq_n_s32(32767));
}

/* h8[k] = sat8(MBQM(v[k], m_h, e_h) + h_zp) */
static inline void store_h8(int8_t *h8, int32x4_t v, const rnc_int_cell *c, mve_pred16_t p) {
    int32x4_t y = rnc_s32_mbqm_mve(v, vdupq_n_s32(c->m_h), vdupq_n_s32(c->e_h));
    y = vaddq_n_s32(y, c->h_zp);
    y = vminq_s32(vmaxq_s32(y, vdupq_n_s32(-128)), vdupq_n_s32(127));
    vstrbq_p_s32(h8, y, p);
}

int rnc_int_cell_run_mve(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                         int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes) {
    rnc_int_frame f;
    const int status = rnc_int_frame_open(&f, c, matvec, x8, h8, s16, scratch, scratch_bytes);
    if (status != RNC_INT_OK) return status;
    const int H = f.H;
    int32_t *acc = f.acc;
    int16_t *g = f.g;
    int8_t *rh8 = f.rh8;

    rnc_int_preactivations(&f, c, matvec, s8s16_matvec_mve, rnc_s32_requant_s16_mve, x8, h8); /* int_step_common.h */
    if (c->cell == RNC_INT_LSTM) {
        int16_t *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
        rnc_s16_sigmoid_mve(gi, gi, 2 * H, GATE_INT_BITS); /* i, f */
        rnc_s16_tanh_mve(gg, gg, H, GATE_INT_BITS);
        rnc_s16_sigmoid_mve(go, go, H, GATE_INT_BITS);
        const int cs = 30 + c->cell_shift;
        for (int k = 0; k < H; k += 4) {
            mve_pred16_t p = vctp32q((uint32_t)(H - k));
            int32x4_t fc = wrap16x4(cwise_mul_shift4(vldrhq_z_s32(gf + k, p), vldrhq_z_s32(s16 + k, p), 15));
            int32x4_t ig = wrap16x4(cwise_mul_shift4(vldrhq_z_s32(gi + k, p), vldrhq_z_s32(gg + k, p), cs));
            int32x4_t c2 = sat16x4(vaddq_s32(fc, ig));
            if (c->cell_clip > 0)
                c2 = vminq_s32(vmaxq_s32(c2, vdupq_n_s32(-c->cell_clip)), vdupq_n_s32(c->cell_clip));
            vstrhq_p_s32(s16 + k, c2, p);
        }
        rnc_s16_tanh_mve(gg, s16, H, 15 + c->cell_shift); /* tanh(c'), over g's consumed block */
        for (int k = 0; k < H; k += 4) {
            mve_pred16_t p = vctp32q((uint32_t)(H - k));
            store_h8(h8 + k, vmulq_s32(vldrhq_z_s32(go + k, p), vldrhq_z_s32(gg + k, p)), c, p);
        }
        return RNC_INT_OK;
    }
    if (c->cell == RNC_INT_GRU) {
        const int8_t *w_hn = c->w_hh + (long)2 * H * H;
        const int32_t *b_hn = c->b_hh + 2 * H, *m_hn = c->m_hh + 2 * H;
        const int8_t *e_hn = c->e_hh + 2 * H;
        int16_t *gr = g, *gz = g + H, *gn = g + 2 * H;
        gate_sigmoid(c, gr, gr, 2 * H); /* r, z */
        if (c->linear_before_reset) {
            /* n's pre-activation: sat16(g_in + CwiseMul(r, sat16(MBQM(acc_hn)), 15)) */
            matvec(acc, w_hn, H, b_hn, h8, H, H);
            for (int k = 0; k < H; k += 4) {
                mve_pred16_t p = vctp32q((uint32_t)(H - k));
                int32x4_t g_hn = sat16x4(rnc_s32_mbqm_mve(vldrwq_z_s32(acc + k, p),
                                                          vldrwq_z_s32(m_hn + k, p),
                                                          vldrbq_z_s32(e_hn + k, p)));
                int32x4_t rg = wrap16x4(cwise_mul_shift4(vldrhq_z_s32(gr + k, p), g_hn, 15));
                vstrhq_p_s32(gn + k, sat16x4(vaddq_s32(vldrhq_z_s32(gn + k, p), rg)), p);
            }
        } else {
            /* rh8 = sat8(MBQM(r h16, m_rh, e_rh) + h_zp); n's recurrent product on it */
            for (int k = 0; k < H; k += 4) {
                mve_pred16_t p = vctp32q((uint32_t)(H - k));
                int32x4_t y = rnc_s32_mbqm_mve(vmulq_s32(vldrhq_z_s32(gr + k, p), vldrhq_z_s32(s16 + k, p)),
                                               vdupq_n_s32(c->m_rh), vdupq_n_s32(c->e_rh));
                y = vminq_s32(vmaxq_s32(vaddq_n_s32(y, c->h_zp), vdupq_n_s32(-128)), vdupq_n_s32(127));
                vstrbq_p_s32(rh8 + k, y, p);
            }
            matvec(acc, w_hn, H, b_hn, rh8, H, H);
            rnc_s32_requant_s16_mve(gn, acc, m_hn, e_hn, gn, H);
        }
        gate_tanh(c, gn, gn, H);
        /* h16' = sat16(RDBPOT((2^15 - z) n + z h16, 15)) (|sum| <= 2^30), h8' from it */
        for (int k = 0; k < H; k += 4) {
            mve_pred16_t p = vctp32q((uint32_t)(H - k));
            int32x4_t z = vldrhq_z_s32(gz + k, p), n = vldrhq_z_s32(gn + k, p);
            int32x4_t sum = vaddq_s32(vmulq_s32(vsubq_s32(vdupq_n_s32(1 << 15), z), n),
                                      vmulq_s32(z, vldrhq_z_s32(s16 + k, p)));
            int32x4_t h16 = sat16x4(vrshlq_n_s32(vqaddq_s32(sum, vshrq_n_s32(sum, 31)), -15));
            vstrhq_p_s32(s16 + k, h16, p);
            store_h8(h8 + k, h16, c, p);
        }
        return RNC_INT_OK;
    }
    /* RNN (h8 was read by the recurrent product before it is overwritten here) */
    if (c->cell == RNC_INT_RNN_TANH) gate_tanh(c, g, g, H);
    for (int k = 0; k < H; k += 4) {
        mve_pred16_t p = vctp32q((uint32_t)(H - k));
        int32x4_t a = vldrhq_z_s32(g + k, p);
        if (c->cell == RNC_INT_RNN_RELU) a = vmaxq_s32(a, vdupq_n_s32(0));
        store_h8(h8 + k, a, c, p);
    }
    return RNC_INT_OK;
}

int rnc_int_cell_step_mve(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                          int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes) {
    if (rnc_int_cell_check(c) != RNC_INT_OK) return RNC_INT_E_ARG;
    return rnc_int_cell_run_mve(c, matvec, x8, h8, s16, scratch, scratch_bytes);
}
#else
typedef int rnc_int_cells_mve_unavailable;
#endif
