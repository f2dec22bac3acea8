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

/* The sparse cells of an ISA: cell_template.h with the sparse product as its q8 product (the
 * template's f32 products name the ISA's dense ones; a sparse layer is q8, they never run). The
 * ISA file defines rnc_q8_gemm_sparse_<sfx>, its epilogue hooks, then
 *   #define RNC_SFX sparse_<sfx>  and  #define rnc_f32_gemm_sparse_<sfx> rnc_f32_gemm_<sfx>
 * and includes cell_template.h. */
#endif
