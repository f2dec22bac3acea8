/* Block-sparse q8 products (docs/rnc-format.md, "Block-sparse q8 weights"), shared by every ISA's
 * q8_sparse_<isa>.c:
 *
 *   Acc[n*ldacc + r] = sum_{k<K} W[r,k] * Q[n*ldq + k]   for r < R, n < N (exact int32)
 *
 * where W is an rnc_sparse_q8 (passed as the `Wp` of the q8 product signature, so the cell
 * template runs it unchanged): the stored blocks at their places, zero elsewhere. A structure with
 * bh = 0 stands for its dense packed matrix (the other matrix of a sparse layer), which the ISA's
 * dense product runs. Q rows hold round4(K) bytes: whole 4-input groups are read (the loader
 * checks that a block's weights at inputs >= K are zero, so the padding's values never count).
 * The sums are exact, so every ISA (and the dense product of the same matrix) gives the same
 * integers. */
#ifndef RNC_Q8_SPARSE_H
#define RNC_Q8_SPARSE_H
#include <string.h>

#include "../internal.h"

/* gate-shared layout (rnc_sparse_q8.gates): at most this many gates (LSTM) */
#define RNC_SPSHARED_MAX_GATES 4

static inline const rnc_sparse_q8 *rnc__sparse_of(const int8_t *Wp)
{
    return (const rnc_sparse_q8 *)(const void *)Wp;
}

/* the 4 bytes of input group g of q, as one int32 */
static inline int32_t rnc__group4(const int8_t *q, uint32_t g)
{
    int32_t v;
    memcpy(&v, q + 4 * (size_t)g, 4);
    return v;
}

/* Rows of row block b stored (rows < R). */
static inline int rnc__sparse_rows(const rnc_sparse_q8 *S, uint32_t b, int R)
{
    const int left = R - (int)(S->bh * b);
    return left < (int)S->bh ? left : (int)S->bh;
}

/* The gate-shared product of an ISA whose kernel runs one unit block of one column at a time. The
 * ISA file defines RNC_SAI (static inline, always inlined) and
 *   RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, uint32_t G)
 * (the G gates of unit block b of column q into acc: rows g*hp + 16 b + r, r < 16, g < G), then
 * writes RNC_SPSHARED_GEMM(sfx, per_gate), which defines sh_col_g (every unit block of one column,
 * G a constant in each inlined copy: 3 GRU, 4 LSTM) and
 *   void rnc_q8_gemm_spshared_<sfx>(Wp, R, K, N, Q, ldq, Acc, ldacc)
 * The loader gives R = G*hp for a gate-shared matrix: every unit block's rows are stored. A
 * gate-shared matrix of another G (or a shorter R) runs rnc_q8_gemm_spshared_generic, a matrix in
 * another layout (S->gates == 0) runs per_gate, the ISA's per-gate block-sparse product. */
#define RNC_SPSHARED_GEMM(sfx, per_gate)                                                                    \
    RNC_SAI void sh_col_g(const rnc_sparse_q8 *S, const int8_t *q, int32_t *acc, const uint32_t G)          \
    {                                                                                                       \
        const rnc_sparse_q8 s = *S; /* a local copy: the stores to acc leave its fields in registers */     \
        for (uint32_t b = 0; b < s.row_blocks; ++b) sh_unit(&s, b, q, acc, G);                              \
    }                                                                                                       \
    void rnc_q8_gemm_spshared_##sfx(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,        \
                                    int32_t *Acc, int ldacc)                                                \
    {                                                                                                       \
        const rnc_sparse_q8 *S = rnc__sparse_of(Wp);                                                        \
        if (!S->gates || (size_t)R < (size_t)S->gates * 16 * S->row_blocks ||                               \
            (S->gates != 3 && S->gates != 4)) {                                                             \
            if (S->gates) rnc_q8_gemm_spshared_generic(Wp, R, K, N, Q, ldq, Acc, ldacc);                    \
            else per_gate(Wp, R, K, N, Q, ldq, Acc, ldacc);                                                 \
            return;                                                                                         \
        }                                                                                                   \
        for (int n = 0; n < N; ++n) {                                                                       \
            const int8_t *q = Q + (size_t)n * ldq;                                                          \
            int32_t *acc = Acc + (size_t)n * ldacc;                                                         \
            if (S->gates == 3) sh_col_g(S, q, acc, 3);                                                      \
            else sh_col_g(S, q, acc, 4);                                                                    \
        }                                                                                                   \
    }

/* The sparse cells of an ISA: cell_template.h with the sparse product as its q8 product (the
 * template's f32 products name the ISA's dense ones; a sparse layer is q8, they never run). The
 * ISA file defines rnc_q8_gemm_sparse_<sfx>, its epilogue hooks, then
 *   #define RNC_SFX sparse_<sfx>  and  #define rnc_f32_gemm_sparse_<sfx> rnc_f32_gemm_<sfx>
 * and includes cell_template.h. */
#endif
