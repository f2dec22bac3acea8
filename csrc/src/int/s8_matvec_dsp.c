/* Integer products (s8_matvec.h) with the DSP extension of Armv7E-M / Armv8-M (Cortex-M4, M7,
 * M33, M55): four int8 of a word are sign-extended into two pairs of int16 by SXTB16 (bytes 0, 2)
 * and SXTB16 with ROR #8 (bytes 1, 3), and SMLAD multiplies both pairs and adds the two products
 * to the accumulator. Every product is exact (|w*x| <= 2^14) and, as in the generic twin, the
 * sums stay below 2^30, so the int32 results are the twin's bit for bit (SMLAD only sets the Q
 * flag on an overflow that cannot happen here).
 *
 * Four rows per pass share each unpacked word of x; with the rows addressed as two pointers plus
 * ldw, the inner loop's pointers, sums and unpacked words fit the 13 usable registers without
 * spills. The rows left over go one at a time. Words are read with __builtin_memcpy (one LDR: the
 * M profile allows unaligned LDR), so W, x and ldw need no alignment; the last cols % 4 columns
 * are done one at a time. */
#include "s8_kernel_list.h"

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

void rnc_s8_matvec_dsp(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols) {
    const int c4 = cols & ~3;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        /* rows r + 1 and r + 3 addressed as w0 + ldw, w2 + ldw: two pointers fewer to keep */
        const int8_t *w0 = W + (long)r * ldw, *w2 = w0 + 2 * ldw;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (bias) {
            a0 = bias[r];
            a1 = bias[r + 1];
            a2 = bias[r + 2];
            a3 = bias[r + 3];
        }
        const int8_t *xp = x;
        /* The columns c4 = cols & ~3 in one loop of 8 columns (RNC_DSP_4COLS twice: one CMP +
         * BLO per 8), entered at its second half when c4 % 8 == 4; the 13 values are pinned to
         * registers because GCC 12 hoists the four row loads and spills two sums and the bound
         * to the stack (6 more instructions per 4 columns, 20% more per product). */
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
                : [xend] "r"(x + c4), [ldw] "r"(ldw)
                : "cc", "memory");
        for (; xp < x + cols; xp++, w0++, w2++) {
            a0 += (int32_t)w0[0] * *xp;
            a1 += (int32_t)w0[ldw] * *xp;
            a2 += (int32_t)w2[0] * *xp;
            a3 += (int32_t)w2[ldw] * *xp;
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
