/* Integer products (s8_matvec.h) with Armv8.1-M MVE (Helium; Cortex-M55, M85): VMLADAVA.S8
 * multiplies 16 int8 pairs and adds the 16 products to a 32-bit scalar accumulator. The sums are
 * exact and below 2^30 (s8_matvec.h), so the results are the generic twin's bit for bit.
 *
 * Four rows per pass share each 16-byte vector of x; the last cols % 16 columns are loaded with
 * a tail predicate (VCTP.8), which zeroes the inactive lanes and reads no byte past the row or
 * past x. VLDRB needs no alignment, so W, x and ldw need none. */
#include "s8_kernel_list.h"

#if defined(RNC_S8_HAVE_MVE)
#include <arm_mve.h>

void rnc_s8_matvec_mve(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols) {
    const int c16 = cols & ~15;
    const mve_pred16_t tail = vctp8q((uint32_t)(cols - c16));
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const int8_t *w0 = W + (long)r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (bias) {
            a0 = bias[r];
            a1 = bias[r + 1];
            a2 = bias[r + 2];
            a3 = bias[r + 3];
        }
        int c = 0;
        for (; c < c16; c += 16) {
            int8x16_t xv = vld1q_s8(x + c);
            a0 = vmladavaq_s8(a0, vld1q_s8(w0 + c), xv);
            a1 = vmladavaq_s8(a1, vld1q_s8(w1 + c), xv);
            a2 = vmladavaq_s8(a2, vld1q_s8(w2 + c), xv);
            a3 = vmladavaq_s8(a3, vld1q_s8(w3 + c), xv);
        }
        if (c < cols) {
            int8x16_t xv = vldrbq_z_s8(x + c, tail);
            a0 = vmladavaq_s8(a0, vldrbq_z_s8(w0 + c, tail), xv);
            a1 = vmladavaq_s8(a1, vldrbq_z_s8(w1 + c, tail), xv);
            a2 = vmladavaq_s8(a2, vldrbq_z_s8(w2 + c, tail), xv);
            a3 = vmladavaq_s8(a3, vldrbq_z_s8(w3 + c, tail), xv);
        }
        y[r] = a0;
        y[r + 1] = a1;
        y[r + 2] = a2;
        y[r + 3] = a3;
    }
    for (; r < rows; r++) {
        const int8_t *w0 = W + (long)r * ldw;
        int32_t a0 = bias ? bias[r] : 0;
        int c = 0;
        for (; c < c16; c += 16) a0 = vmladavaq_s8(a0, vld1q_s8(w0 + c), vld1q_s8(x + c));
        if (c < cols) a0 = vmladavaq_s8(a0, vldrbq_z_s8(w0 + c, tail), vldrbq_z_s8(x + c, tail));
        y[r] = a0;
    }
}
#else
typedef int rnc_s8_matvec_mve_unavailable;
#endif
