/* The four-row passes of the MVE products, shared by the int8 input's product (s8_matvec_mve.c)
 * and the int16 input's (int_cells_mve.c): four rows per pass share each vector of x, and the
 * last columns are loaded with a tail predicate (VCTP: the inactive lanes read as zero, no
 * element is read past a row or past x). VLDRB needs no alignment, so W, x and ldw need none.
 * Every product is exact and the sums stay within int32 (s8_matvec.h; rnc_int_cell_check's
 * bound for the int16 input), so they are the portable twins' bit for bit. */
#ifndef RNC_S8_MATVEC_MVE_H
#define RNC_S8_MATVEC_MVE_H

#include <stdint.h>

#include "s8_kernel_list.h"

#if defined(RNC_S8_HAVE_MVE)
#include <arm_mve.h>

/* four sums */
typedef struct {
    int32_t a0, a1, a2, a3;
} rnc_s8_mve_sums4;

/* s + the products of the rows w0, w0 + ldw, w0 + 2 ldw, w0 + 3 ldw with int8 x[0, cols):
 * VMLADAVA.S8 adds sixteen int8 products to each row's 32-bit sum; the last cols % 16 columns
 * under tail = VCTP.8(cols % 16) (the caller's, made once for all rows). */
static inline rnc_s8_mve_sums4 rnc_s8_mve_rows4(rnc_s8_mve_sums4 s, const int8_t *w0, int ldw, const int8_t *x,
                                                int cols, mve_pred16_t tail) {
    const int8_t *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    const int c16 = cols & ~15;
    int c = 0;
    for (; c < c16; c += 16) {
        const int8x16_t xv = vld1q_s8(x + c);
        s.a0 = vmladavaq_s8(s.a0, vld1q_s8(w0 + c), xv);
        s.a1 = vmladavaq_s8(s.a1, vld1q_s8(w1 + c), xv);
        s.a2 = vmladavaq_s8(s.a2, vld1q_s8(w2 + c), xv);
        s.a3 = vmladavaq_s8(s.a3, vld1q_s8(w3 + c), xv);
    }
    if (c < cols) {
        const int8x16_t xv = vldrbq_z_s8(x + c, tail);
        s.a0 = vmladavaq_s8(s.a0, vldrbq_z_s8(w0 + c, tail), xv);
        s.a1 = vmladavaq_s8(s.a1, vldrbq_z_s8(w1 + c, tail), xv);
        s.a2 = vmladavaq_s8(s.a2, vldrbq_z_s8(w2 + c, tail), xv);
        s.a3 = vmladavaq_s8(s.a3, vldrbq_z_s8(w3 + c, tail), xv);
    }
    return s;
}

/* s + the products of the rows w0, w0 + ldw, w0 + 2 ldw, w0 + 3 ldw with int16 x[0, cols):
 * VLDRB.S16 widens eight int8 weights to int16 lanes and VMLADAVA.S16 adds their eight products
 * with x to each row's 32-bit sum; the last cols % 8 columns under tail = VCTP.16(cols % 8) (the
 * caller's, made once for all rows). */
static inline rnc_s8_mve_sums4 rnc_s8s16_mve_rows4(rnc_s8_mve_sums4 s, const int8_t *w0, int ldw,
                                                   const int16_t *x, int cols, mve_pred16_t tail) {
    const int8_t *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    const int c8 = cols & ~7;
    int c = 0;
    for (; c < c8; c += 8) {
        const int16x8_t xv = vld1q_s16(x + c);
        s.a0 = vmladavaq_s16(s.a0, vldrbq_s16(w0 + c), xv);
        s.a1 = vmladavaq_s16(s.a1, vldrbq_s16(w1 + c), xv);
        s.a2 = vmladavaq_s16(s.a2, vldrbq_s16(w2 + c), xv);
        s.a3 = vmladavaq_s16(s.a3, vldrbq_s16(w3 + c), xv);
    }
    if (c < cols) {
        const int16x8_t xv = vldrhq_z_s16(x + c, tail);
        s.a0 = vmladavaq_s16(s.a0, vldrbq_z_s16(w0 + c, tail), xv);
        s.a1 = vmladavaq_s16(s.a1, vldrbq_z_s16(w1 + c, tail), xv);
        s.a2 = vmladavaq_s16(s.a2, vldrbq_z_s16(w2 + c, tail), xv);
        s.a3 = vmladavaq_s16(s.a3, vldrbq_z_s16(w3 + c, tail), xv);
    }
    return s;
}
#endif
#endif
