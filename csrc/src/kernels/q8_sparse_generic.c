/* Block-sparse q8 product and cells, portable C (q8_sparse.h): the twin of every sparse row. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

void rnc_q8_gemm_sparse_generic(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        rnc_q8_gemm_generic(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    (void)K; /* the blocks' inputs are < round4(K) (loader) */
    const uint32_t bh = S->bh, bytes = 4 * bh;
    for (int n = 0; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        for (uint32_t b = 0; b < S->row_blocks && (int)(bh * b) < R; ++b) {
            int32_t s[16] = {0};
            for (uint32_t i = S->rowptr[b]; i < S->rowptr[b + 1]; ++i) {
                const int8_t *t = S->blocks + (size_t)i * bytes, *x = q + 4 * (size_t)S->cols[i];
                for (uint32_t r = 0; r < bh; ++r)
                    s[r] += (int32_t)t[4 * r] * x[0] + (int32_t)t[4 * r + 1] * x[1] +
                            (int32_t)t[4 * r + 2] * x[2] + (int32_t)t[4 * r + 3] * x[3];
            }
            const int rows = rnc__sparse_rows(S, b, R);
            for (int r = 0; r < rows; ++r) acc[bh * b + (uint32_t)r] = s[r];
        }
    }
}

#define RNC_SFX sparse_generic
#define rnc_f32_gemm_sparse_generic rnc_f32_gemm_generic
#include "cell_template.h"
#else
typedef int rnc_q8_sparse_generic_left_out;
#endif
