/* Block-sparse q8 product and cells, aarch64 dot product (`sdot`; q8_sparse.h; flags of
 * AARCH64_NEONDOT_SRCS, run only where getauxval reports HWCAP_ASIMDDP).
 *
 * A 16 x 4 block is four 16-byte registers (4 rows x 4 inputs each), an 8 x 4 block two; the
 * input group is broadcast to every 32-bit lane and `sdot` (signed x signed) adds the 4 products
 * of each row into its lane: exact int32, no offset correction. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include "neon_int.h"
#include "q8_sparse.h"
#include "q8_sparse_neondot.h"

RNC_DECLARE_ISA(neondot)

static void sp_col(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc)
{
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    const uint32_t bh = S->bh;
    for (uint32_t b = 0; b < S->row_blocks && (int)(bh * b) < R; ++b) {
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, e0 = a0, e1 = a0, e2 = a0, e3 = a0;
        uint32_t i = S->rowptr[b];
        const uint32_t e = S->rowptr[b + 1];
        if (bh == 16) {
            for (; i + 2 <= e; i += 2) {
                const int8x16_t x0 = sp_bcast(q, c[i]), x1 = sp_bcast(q, c[i + 1]);
                const int8x16x4_t w0 = vld1q_s8_x4(w + 64 * (size_t)i), w1 = vld1q_s8_x4(w + 64 * (size_t)i + 64);
                a0 = vdotq_s32(a0, w0.val[0], x0);
                a1 = vdotq_s32(a1, w0.val[1], x0);
                a2 = vdotq_s32(a2, w0.val[2], x0);
                a3 = vdotq_s32(a3, w0.val[3], x0);
                e0 = vdotq_s32(e0, w1.val[0], x1);
                e1 = vdotq_s32(e1, w1.val[1], x1);
                e2 = vdotq_s32(e2, w1.val[2], x1);
                e3 = vdotq_s32(e3, w1.val[3], x1);
            }
            for (; i < e; ++i) {
                const int8x16_t x0 = sp_bcast(q, c[i]);
                const int8x16x4_t w0 = vld1q_s8_x4(w + 64 * (size_t)i);
                a0 = vdotq_s32(a0, w0.val[0], x0);
                a1 = vdotq_s32(a1, w0.val[1], x0);
                a2 = vdotq_s32(a2, w0.val[2], x0);
                a3 = vdotq_s32(a3, w0.val[3], x0);
            }
        } else {
            for (; i + 2 <= e; i += 2) {
                const int8x16_t x0 = sp_bcast(q, c[i]), x1 = sp_bcast(q, c[i + 1]);
                const int8x16x4_t w01 = vld1q_s8_x4(w + 32 * (size_t)i); /* blocks i and i + 1 */
                a0 = vdotq_s32(a0, w01.val[0], x0);
                a1 = vdotq_s32(a1, w01.val[1], x0);
                e0 = vdotq_s32(e0, w01.val[2], x1);
                e1 = vdotq_s32(e1, w01.val[3], x1);
            }
            for (; i < e; ++i) {
                const int8x16_t x0 = sp_bcast(q, c[i]);
                const int8x16x2_t w0 = vld1q_s8_x2(w + 32 * (size_t)i);
                a0 = vdotq_s32(a0, w0.val[0], x0);
                a1 = vdotq_s32(a1, w0.val[1], x0);
            }
        }
        const int rows = rnc__sparse_rows(S, b, R);
        int32_t *dst = acc + bh * b;
        rnc_neon_store_rows4(dst, rows, vaddq_s32(a0, e0));
        rnc_neon_store_rows4(dst + 4, rows - 4, vaddq_s32(a1, e1));
        if (bh == 16) {
            rnc_neon_store_rows4(dst + 8, rows - 8, vaddq_s32(a2, e2));
            rnc_neon_store_rows4(dst + 12, rows - 12, vaddq_s32(a3, e3));
        }
    }
}

void rnc_q8_gemm_sparse_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        rnc_q8_gemm_neondot(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    for (int n = 0; n < N; ++n) sp_col(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX sparse_neondot
#define rnc_f32_gemm_sparse_neondot rnc_f32_gemm_neon
#include "cell_template.h"

#else
typedef int rnc_q8_sparse_neondot_unused;
#endif
#else
typedef int rnc_q8_sparse_neondot_left_out;
#endif
