/* The four-row pass of the DSP products (s8_matvec_dsp.c), shared with the DSP step
 * (int_cells_dsp.c), which runs it inline between its requantisations: four int8 of a word are
 * sign-extended into two pairs of int16 by SXTB16 (bytes 0, 2) and SXTB16 with ROR #8 (bytes 1,
 * 3), and SMLAD multiplies both pairs and adds the two products to the accumulator. Every product
 * is exact (|w*x| <= 2^14) and the sums stay below 2^30 (s8_matvec.h), so the sums are the
 * generic twin's bit for bit (SMLAD only sets the Q flag on an overflow that cannot happen). */
#ifndef RNC_S8_MATVEC_DSP_H
#define RNC_S8_MATVEC_DSP_H

#include <stdint.h>

#include "s8_kernel_list.h"

#if defined(RNC_S8_HAVE_DSP)
/* Four columns of the rows w0, w0 + ldw, w2, w2 + ldw (sums a0, a1, a2, a3) at xp, advancing xp,
 * w0 and w2 by 4: xv = the word of x, xe = SXTB16(xv) (in xv), xo = SXTB16(xv, ROR #8); per row
 * v = its word, a_k = SMLAD(SXTB16(v, ROR #8), xo, SMLAD(SXTB16(v), xe, a_k)). 5 LDR, 10 SXTB16,
 * 8 SMLAD; each row's load is issued between the previous row's two SMLADs, so that no
 * instruction waits for a load (Cortex-M4: a load's result is ready one cycle after the next). */
#define RNC_DSP_4COLS                               \
    "ldr    %[xv], [%[xp]], #4\n\t"                 \
    "ldr    %[v], [%[w0], %[ldw]]\n\t"              \
    "sxtb16 %[xo], %[xv], ror #8\n\t"               \
    "sxtb16 %[xv], %[xv]\n\t"                       \
    "sxtb16 %[vo], %[v], ror #8\n\t"                \
    "sxtb16 %[v], %[v]\n\t"                         \
    "smlad  %[a1], %[v], %[xv], %[a1]\n\t"          \
    "ldr    %[v], [%[w0]], #4\n\t"                  \
    "smlad  %[a1], %[vo], %[xo], %[a1]\n\t"         \
    "sxtb16 %[vo], %[v], ror #8\n\t"                \
    "sxtb16 %[v], %[v]\n\t"                         \
    "smlad  %[a0], %[v], %[xv], %[a0]\n\t"          \
    "ldr    %[v], [%[w2], %[ldw]]\n\t"              \
    "smlad  %[a0], %[vo], %[xo], %[a0]\n\t"         \
    "sxtb16 %[vo], %[v], ror #8\n\t"                \
    "sxtb16 %[v], %[v]\n\t"                         \
    "smlad  %[a3], %[v], %[xv], %[a3]\n\t"          \
    "ldr    %[v], [%[w2]], #4\n\t"                  \
    "smlad  %[a3], %[vo], %[xo], %[a3]\n\t"         \
    "sxtb16 %[vo], %[v], ror #8\n\t"                \
    "sxtb16 %[v], %[v]\n\t"                         \
    "smlad  %[a2], %[v], %[xv], %[a2]\n\t"          \
    "smlad  %[a2], %[vo], %[xo], %[a2]\n\t"

/* four sums */
typedef struct {
    int32_t a0, a1, a2, a3;
} rnc_s8_dsp_sums4;

/* s + the products of the rows w0, w0 + ldw, w0 + 2 ldw, w0 + 3 ldw with x[0, cols). The columns
 * c4 = cols & ~3 in one loop of 8 columns (RNC_DSP_4COLS twice: one CMP + BLO per 8), entered at
 * its second half when c4 % 8 == 4; the 13 values are pinned to registers because GCC 12 hoists
 * the four row loads and spills two sums and the bound to the stack (6 more instructions per 4
 * columns, 20% more per product). The last cols % 4 columns one at a time. Rows 1 and 3 are
 * addressed as w0 + ldw, w2 + ldw: two pointers fewer to keep. */
static inline rnc_s8_dsp_sums4 rnc_s8_dsp_rows4(rnc_s8_dsp_sums4 s, const int8_t *w0, int ldw,
                                                const int8_t *x, int cols) {
    const int8_t *w2 = w0 + 2 * ldw, *xp = x;
    int32_t a0 = s.a0, a1 = s.a1, a2 = s.a2, a3 = s.a3;
    int32_t xv, xo, v, vo;
    __asm__("subs   %[v], %[xend], %[xp]\n\t"
            "beq    3f\n\t"
            "tst    %[v], #4\n\t"
            "bne    2f\n"
            "1:\n\t" RNC_DSP_4COLS
            "2:\n\t" RNC_DSP_4COLS
            "cmp    %[xp], %[xend]\n\t"
            "blo    1b\n"
            "3:"
            : [xp] "+r"(xp), [w0] "+r"(w0), [w2] "+r"(w2), [a0] "+r"(a0), [a1] "+r"(a1),
              [a2] "+r"(a2), [a3] "+r"(a3), [xv] "=&r"(xv), [xo] "=&r"(xo), [v] "=&r"(v),
              [vo] "=&r"(vo)
            : [xend] "r"(x + (cols & ~3)), [ldw] "r"(ldw)
            : "cc", "memory");
    for (; xp < x + cols; xp++, w0++, w2++) {
        a0 += (int32_t)w0[0] * *xp;
        a1 += (int32_t)w0[ldw] * *xp;
        a2 += (int32_t)w2[0] * *xp;
        a3 += (int32_t)w2[ldw] * *xp;
    }
    s.a0 = a0;
    s.a1 = a1;
    s.a2 = a2;
    s.a3 = a3;
    return s;
}

#endif
#endif
