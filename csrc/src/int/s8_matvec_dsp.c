/* Integer products (s8_matvec.h) with the DSP extension of Armv7E-M / Armv8-M (Cortex-M4, M7,
 * M33, M55): SXTB16 + SMLAD, four rows per pass (rnc_s8_dsp_rows4, s8_matvec_dsp.h), so that the
 * rows share each unpacked word of x; with the rows addressed as two pointers plus ldw, the inner
 * loop's pointers, sums and unpacked words fit the 13 usable registers without spills. The rows
 * left over go one at a time. Words are read with __builtin_memcpy (one LDR: the M profile allows
 * unaligned LDR), so W, x and ldw need no alignment; the last cols % 4 columns are done one at a
 * time. Every sum is the generic twin's bit for bit. */
#include "s8_kernel_list.h"
#include "s8_matvec_dsp.h"

#if defined(RNC_S8_HAVE_DSP)
/* one unaligned word: a single LDR, also in -ffreestanding / -fno-builtin firmware builds */
static inline int32_t rd4(const int8_t *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* bytes 0 and 2 as two int16 (SXTB16) */
static inline int32_t lo16x2(int32_t v) {
    int32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}

/* bytes 1 and 3 as two int16 (SXTB16 with the word rotated by 8) */
static inline int32_t hi16x2(int32_t v) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* acc + a.lo * b.lo + a.hi * b.hi (int16 halves); the sum stays in acc's register */
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) {
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

void rnc_s8_matvec_dsp(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols) {
    const int c4 = cols & ~3;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        rnc_s8_dsp_sums4 s = {0, 0, 0, 0};
        if (bias) {
            s.a0 = bias[r];
            s.a1 = bias[r + 1];
            s.a2 = bias[r + 2];
            s.a3 = bias[r + 3];
        }
        s = rnc_s8_dsp_rows4(s, W + (long)r * ldw, ldw, x, cols);
        y[r] = s.a0;
        y[r + 1] = s.a1;
        y[r + 2] = s.a2;
        y[r + 3] = s.a3;
    }
    for (; r < rows; r++) {
        const int8_t *w0 = W + (long)r * ldw;
        int32_t a0 = bias ? bias[r] : 0;
        int c = 0;
        for (; c < c4; c += 4) {
            int32_t xv = rd4(x + c);
            int32_t v = rd4(w0 + c);
            a0 = smlad(lo16x2(v), lo16x2(xv), a0);
            a0 = smlad(hi16x2(v), hi16x2(xv), a0);
        }
        for (; c < cols; c++) a0 += (int32_t)w0[c] * x[c];
        y[r] = a0;
    }
}
#else
typedef int rnc_s8_matvec_dsp_unavailable;
#endif
