/* Gate-shared block-sparse q8 product and cells, aarch64 dot product (`sdot`; q8_sparse.h; flags
 * of AARCH64_NEONDOT_SRCS, run only where getauxval reports HWCAP_ASIMDDP). An entry of a unit
 * block holds the G gates' 16 x 4 blocks of one input group: one index load and one input
 * group load serve its 4G weight registers, one by-element `sdot` and one int32x4 accumulator
 * each (16 for the LSTM: the 4G independent chains hide sdot's latency without a
 * second entry in flight). G is a constant in each inlined copy (3: GRU, 4: LSTM). Exact int32
 * sums, the same integers as every ISA's. A matrix in another layout runs
 * rnc_q8_gemm_sparse_neondot. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#include "q8_sparse.h"

RNC_DECLARE_ISA(neondot)

#define RNC_SAI static inline __attribute__((always_inline))
/* the loops over gates and registers fully unrolled (the counts are constants in each inlined
 * copy), so that the accumulators stay in registers: clang 14 left the gate loop rolled under
 * `#pragma GCC unroll N` (GRU, 3 gates) and kept the accumulators on the stack */
#if defined(__clang__)
#define SH_UNROLL _Pragma("clang loop unroll(full)")
#else
#define SH_UNROLL _Pragma("GCC unroll 16")
#endif

/* Input group g of q in the low 32 bits of a d register (gcc: one `ldr s`), for the by-element
 * `sdot` (vdotq_lane_s32 lane 0: the group broadcast by the instruction, no `dup`) */
RNC_SAI int8x8_t sh_group(const int8_t *q, uint16_t g)
{
    return vreinterpret_s8_u64(vcreate_u64((uint32_t)rnc__group4(q, g)));
}

/* 64 weight bytes from t into w, t advanced past them: one post-indexed 4-register `ld1`. GCC
 * makes the intrinsic's loads of an entry from one base with an `add` each (the asm names the
 * registers of an int8x16x4_t with %S .. %V); clang post-indexes the intrinsic itself. */
#if defined(__GNUC__) && !defined(__clang__)
#define SH_LD64(t, w)                                                                                       \
    __asm__("ld1 {%S0.16b, %T0.16b, %U0.16b, %V0.16b}, [%1], #64"                                           \
            : "=w"(w), "+r"(t)                                                                              \
            : "m"(*(const int8_t(*)[64])(const void *)(t)))
#else
#define SH_LD64(t, w)                                                                                       \
    ((w).val[0] = vld1q_s8(t), (w).val[1] = vld1q_s8((t) + 16), (w).val[2] = vld1q_s8((t) + 32),            \
     (w).val[3] = vld1q_s8((t) + 48), (t) += 64)
#endif

/* The G gates' 4G products of one entry (weights t, G x 64 bytes; t advanced past them) into a. */
RNC_SAI void sh_entry(int32x4_t *a, const int8_t **t, int8x8_t x, const uint32_t G)
{
    const int8_t *p = *t;
SH_UNROLL
    for (uint32_t g = 0; g < G; ++g) {
        int8x16x4_t w;
        SH_LD64(p, w);
        a[4 * g] = vdotq_lane_s32(a[4 * g], w.val[0], x, 0);
        a[4 * g + 1] = vdotq_lane_s32(a[4 * g + 1], w.val[1], x, 0);
        a[4 * g + 2] = vdotq_lane_s32(a[4 * g + 2], w.val[2], x, 0);
        a[4 * g + 3] = vdotq_lane_s32(a[4 * g + 3], w.val[3], x, 0);
    }
    *t = p;
}

/* Unit block b of one column into acc (rows g*hp + 16 b + r, r < 16, g < G): two entries an
 * iteration (one loop test per two), then the last one. */
RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, const uint32_t G)
{
    const size_t ldg = (size_t)16 * S->row_blocks;
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + (size_t)64 * G * S->rowptr[b];
    int32x4_t a[4 * RNC_SPSHARED_MAX_GATES];
SH_UNROLL
    for (uint32_t k = 0; k < 4 * G; ++k) a[k] = vdupq_n_s32(0);
    for (const uint16_t *const c2 = c + ((size_t)(ce - c) & ~(size_t)1); c != c2; c += 2) {
        const int8x8_t x0 = sh_group(q, c[0]), x1 = sh_group(q, c[1]);
        sh_entry(a, &t, x0, G);
        sh_entry(a, &t, x1, G);
    }
    if (c < ce) sh_entry(a, &t, sh_group(q, c[0]), G);
    int32_t *d = acc + 16 * (size_t)b;
SH_UNROLL
    for (uint32_t g = 0; g < G; ++g, d += ldg)
SH_UNROLL
        for (uint32_t k = 0; k < 4; ++k) vst1q_s32(d + 4 * k, a[4 * g + k]);
}

RNC_SPSHARED_GEMM(neondot, rnc_q8_gemm_sparse_neondot)

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX spshared_neondot
#define rnc_f32_gemm_spshared_neondot rnc_f32_gemm_neon
#include "cell_template.h"

#else
typedef int rnc_q8_spshared_neondot_unused;
#endif
#else
typedef int rnc_q8_spshared_neondot_left_out;
#endif
