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
/* The four rows' products once x's word is unpacked into xv (SXTB16(x): columns 0, 2) and xo
 * (SXTB16(x, ROR #8): columns 1, 3) and the first row's word (w0 + ldw) is in v: per row
 * a_k = SMLAD(SXTB16(v, ROR #8), xo, SMLAD(SXTB16(v), xv, a_k)), each next row's load issued
 * between the previous row's two SMLADs; w0 and w2 advance by 4. Shared by RNC_DSP_4COLS and
 * RNC_DSP_4COLS_X16, which differ only in how x gets into xv, xo. */
#define RNC_DSP_4ROWS                               \
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
    RNC_DSP_4ROWS

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


/* x[0, c4) (c4 = cols & ~3) unpacked for rnc_s8_dsp_rows4_x16: per 4 columns the two words
 * SXTB16(v) = (x0, x2) and SXTB16(v, ROR #8) = (x1, x3) of v = x[c, c + 4); x16 4-byte aligned,
 * c4 / 2 words */
static inline void rnc_s8_dsp_unpack(int32_t *x16, const int8_t *x, int cols) {
    for (int c = 0; c + 4 <= cols; c += 4, x16 += 2) {
        int32_t v, e, o;
        __builtin_memcpy(&v, x + c, 4);
        __asm__("sxtb16 %0, %1" : "=r"(e) : "r"(v));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(o) : "r"(v));
        x16[0] = e;
        x16[1] = o;
    }
}

/* RNC_DSP_4COLS with x unpacked once (rnc_s8_dsp_unpack) for every pass: one LDRD of its two
 * words instead of LDR + 2 SXTB16. 4 LDR + 1 LDRD, 8 SXTB16, 8 SMLAD; the first row's load goes
 * before the LDRD so that its SXTB16s do not wait for it. */
#define RNC_DSP_4COLS_X16                           \
    "ldr    %[v], [%[w0], %[ldw]]\n\t"              \
    "ldrd   %[xv], %[xo], [%[xp]], #8\n\t"          \
    RNC_DSP_4ROWS

/* rnc_s8_dsp_rows4 with x[0, cols & ~3) read from x16 = rnc_s8_dsp_unpack(x, cols); the same
 * sums */
static inline rnc_s8_dsp_sums4 rnc_s8_dsp_rows4_x16(rnc_s8_dsp_sums4 s, const int8_t *w0, int ldw,
                                                    const int32_t *x16, const int8_t *x, int cols) {
    const int8_t *w2 = w0 + 2 * ldw;
    const int32_t *xp = x16;
    int32_t a0 = s.a0, a1 = s.a1, a2 = s.a2, a3 = s.a3;
    /* the last cols % 4 columns first (exact int32 sums: the order does not matter), so that
     * nothing but the sums is live after the asm */
    for (int c = cols & ~3; c < cols; c++) {
        a0 += (int32_t)w0[c] * x[c];
        a1 += (int32_t)w0[ldw + c] * x[c];
        a2 += (int32_t)w2[c] * x[c];
        a3 += (int32_t)w2[ldw + c] * x[c];
    }
    int32_t xv, xo, v, vo;
    __asm__("subs   %[v], %[xend], %[xp]\n\t"
            "beq    3f\n\t"
            "tst    %[v], #8\n\t"
            "bne    2f\n"
            "1:\n\t" RNC_DSP_4COLS_X16
            "2:\n\t" RNC_DSP_4COLS_X16
            "cmp    %[xp], %[xend]\n\t"
            "blo    1b\n"
            "3:"
            : [xp] "+r"(xp), [w0] "+r"(w0), [w2] "+r"(w2), [a0] "+r"(a0), [a1] "+r"(a1),
              [a2] "+r"(a2), [a3] "+r"(a3), [xv] "=&r"(xv), [xo] "=&r"(xo), [v] "=&r"(v),
              [vo] "=&r"(vo)
            : [xend] "r"(x16 + (cols & ~3) / 2), [ldw] "r"(ldw)
            : "cc", "memory");
    s.a0 = a0;
    s.a1 = a1;
    s.a2 = a2;
    s.a3 = a3;
    return s;
}

#endif
#endif
