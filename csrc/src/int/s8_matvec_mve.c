/* Integer products (s8_matvec.h) with Armv8.1-M MVE (Helium; Cortex-M55, M85): VMLADAVA.S8
 * multiplies 16 int8 pairs and adds the 16 products to a 32-bit scalar accumulator. The sums are
 * exact and below 2^30 (s8_matvec.h), so the results are the generic twin's bit for bit.
 *
 * Four rows per pass share each 16-byte vector of x (rnc_s8_mve_rows4, s8_matvec_mve.h); the
 * last cols % 16 columns are loaded with a tail predicate (VCTP.8), which zeroes the inactive
 * lanes and reads no byte past the row or past x. VLDRB needs no alignment, so W, x and ldw need
 * none. */
#include "s8_kernel_list.h"
#include "s8_matvec_mve.h"

#if defined(RNC_S8_HAVE_MVE)

void rnc_s8_matvec_mve(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols) {
    const int c16 = cols & ~15;
    const mve_pred16_t tail = vctp8q((uint32_t)(cols - c16));
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        rnc_s8_mve_sums4 s = {0, 0, 0, 0};
        if (bias) {
            s.a0 = bias[r];
            s.a1 = bias[r + 1];
            s.a2 = bias[r + 2];
            s.a3 = bias[r + 3];
        }
        s = rnc_s8_mve_rows4(s, W + (long)r * ldw, ldw, x, cols, tail);
        y[r] = s.a0;
        y[r + 1] = s.a1;
        y[r + 2] = s.a2;
        y[r + 3] = s.a3;
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
