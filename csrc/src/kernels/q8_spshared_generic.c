/* Gate-shared block-sparse q8 product and cells, portable C (q8_sparse.h): the twin of every
 * gate-shared row. The product takes a matrix in any layout: gate-shared (S->gates > 0) here, the
 * per-gate layout and the dense one through rnc_q8_gemm_sparse_generic. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

void rnc_q8_gemm_spshared_generic(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                  int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->gates) {
        rnc_q8_gemm_sparse_generic(Wp, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    (void)K; /* the blocks' inputs are < round4(K) (loader) */
    const uint32_t G = S->gates, e = 64 * G; /* bytes of one entry: G blocks of 16 x 4 */
    for (int n = 0; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        for (uint32_t b = 0; b < S->row_blocks; ++b) {
            int32_t s[16 * RNC_SPSHARED_MAX_GATES] = {0}; /* entry row g*16 + r */
            for (uint32_t i = S->rowptr[b]; i < S->rowptr[b + 1]; ++i) {
                const int8_t *t = S->blocks + (size_t)i * e, *x = q + 4 * (size_t)S->cols[i];
                for (uint32_t r = 0; r < 16 * G; ++r)
                    s[r] += (int32_t)t[4 * r] * x[0] + (int32_t)t[4 * r + 1] * x[1] +
                            (int32_t)t[4 * r + 2] * x[2] + (int32_t)t[4 * r + 3] * x[3];
            }
            for (uint32_t g = 0; g < G; ++g)
                for (uint32_t r = 0; r < 16; ++r) {
                    const size_t row = (size_t)g * 16 * S->row_blocks + 16 * (size_t)b + r;
                    if (row < (size_t)R) acc[row] = s[16 * g + r];
                }
        }
    }
}

#define RNC_SFX spshared_generic
#define rnc_f32_gemm_spshared_generic rnc_f32_gemm_generic
#include "cell_template.h"
#else
typedef int rnc_q8_spshared_generic_left_out;
#endif
