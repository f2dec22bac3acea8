/* Portable twin of the integer products (s8_matvec.h): plain C, no float, no libc. */
#include "s8_matvec.h"

void rnc_s8_matvec_generic(int32_t *y, const int8_t *W, int ldw, const int32_t *bias,
                           const int8_t *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const int8_t *w = W + (long)r * ldw;
        int32_t acc = bias ? bias[r] : 0;
        for (int c = 0; c < cols; c++) acc += (int32_t)w[c] * (int32_t)x[c];
        y[r] = acc;
    }
}
