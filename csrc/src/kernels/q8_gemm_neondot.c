/* aarch64 dot-product (ARMv8.2-A DotProd, `sdot`) q8 kernels on rnncore's packed q8 layout.
 *
 * This file alone is compiled with -march=armv8.2-a+dotprod; it is only called after run-time
 * detection (getauxval(AT_HWCAP) & HWCAP_ASIMDDP, see arch/arm_cpu.c).
 *
 * Layout: byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j]. One 16-byte register holds 4 rows
 * x 4 inputs, x's 4-byte group is broadcast to every 32-bit lane and `sdot` adds the 4 products of
 * each row into its int32 lane: exact, no horizontal sums, 4 instructions per 64 MACs.
 * Two row blocks are kept in flight (8 independent accumulators) to cover the sdot latency.
 */
#include "arm_kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#include <string.h>

static inline int8x16_t bcast4(const int8_t *q)
{
    int32_t v;
    memcpy(&v, q, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* One 64-byte tile (16 rows x 4 inputs) as 4 registers. gcc: one ld1 {4 registers}. clang 14
 * schedules every vld1q_s8_x4 of an unrolled loop first and spills the 4-register tuples to the
 * stack (dot_block4: ~50 stack loads/stores per iteration); four 16-byte loads it pairs into ldp. */
#if defined(__clang__)
#define TILE4(t)                                                                                   \
    {{vld1q_s8((t) + 0), vld1q_s8((t) + 16), vld1q_s8((t) + 32), vld1q_s8((t) + 48)}}
#else
#define TILE4(t) vld1q_s8_x4(t)
#endif

/* One tile and 4 sdot. */
#define DOT4(a0, a1, a2, a3, t, x)                                                                 \
    do {                                                                                           \
        const int8x16x4_t w_ = TILE4(t);                                                           \
        a0 = vdotq_s32(a0, w_.val[0], (x));                                                        \
        a1 = vdotq_s32(a1, w_.val[1], (x));                                                        \
        a2 = vdotq_s32(a2, w_.val[2], (x));                                                        \
        a3 = vdotq_s32(a3, w_.val[3], (x));                                                        \
    } while (0)

/* The same with the indexed form: x holds 4 groups (16 bytes of q), lane l selects group l. */
#define DOT4L(a0, a1, a2, a3, t, x, l)                                                             \
    do {                                                                                           \
        const int8x16x4_t w_ = TILE4(t);                                                           \
        a0 = vdotq_laneq_s32(a0, w_.val[0], (x), l);                                               \
        a1 = vdotq_laneq_s32(a1, w_.val[1], (x), l);                                               \
        a2 = vdotq_laneq_s32(a2, w_.val[2], (x), l);                                               \
        a3 = vdotq_laneq_s32(a3, w_.val[3], (x), l);                                               \
    } while (0)

/* Two blocks (32 rows) at once, four groups per iteration: one 16-byte load of q feeds 32 sdot
 * (indexed form, no broadcasts), 8 tile loads. Remaining whole groups one at a time (broadcast);
 * a last partial group (K % 4 != 0) reads the zero-padded tail. */
static inline void dot_block2(const int8_t *Wa, const int8_t *Wb, int Gfull, const int8_t *q,
                              const int8_t *tail, int32_t *oa, int32_t *ob)
{
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int g = 0;
    const int8_t *ta = Wa, *tb = Wb; /* advanced tile by tile: post-increment addressing */
    for (; g + 4 <= Gfull; g += 4) {
        const int8x16_t x = vld1q_s8(q + 4 * g);
        DOT4L(a0, a1, a2, a3, ta, x, 0);
        ta += 64;
        DOT4L(b0, b1, b2, b3, tb, x, 0);
        tb += 64;
        DOT4L(a0, a1, a2, a3, ta, x, 1);
        ta += 64;
        DOT4L(b0, b1, b2, b3, tb, x, 1);
        tb += 64;
        DOT4L(a0, a1, a2, a3, ta, x, 2);
        ta += 64;
        DOT4L(b0, b1, b2, b3, tb, x, 2);
        tb += 64;
        DOT4L(a0, a1, a2, a3, ta, x, 3);
        ta += 64;
        DOT4L(b0, b1, b2, b3, tb, x, 3);
        tb += 64;
    }
    for (; g < Gfull; ++g) {
        const int8x16_t x = bcast4(q + 4 * g);
        DOT4(a0, a1, a2, a3, Wa + (size_t)g * 64, x);
        DOT4(b0, b1, b2, b3, Wb + (size_t)g * 64, x);
    }
    if (tail) {
        const int8x16_t x = bcast4(tail);
        DOT4(a0, a1, a2, a3, Wa + (size_t)g * 64, x);
        DOT4(b0, b1, b2, b3, Wb + (size_t)g * 64, x);
    }
    vst1q_s32(oa + 0, a0);
    vst1q_s32(oa + 4, a1);
    vst1q_s32(oa + 8, a2);
    vst1q_s32(oa + 12, a3);
    vst1q_s32(ob + 0, b0);
    vst1q_s32(ob + 4, b1);
    vst1q_s32(ob + 8, b2);
    vst1q_s32(ob + 12, b3);
}

/* Four blocks (64 rows) at once, four groups per iteration: 64 sdot per 16 tile loads and one
 * 16-byte load of q. */
static inline void dot_block4(const int8_t *W0, size_t stride, int Gfull, const int8_t *q,
                              const int8_t *tail, int32_t *o)
{
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int32x4_t c0 = a0, c1 = a0, c2 = a0, c3 = a0, d0 = a0, d1 = a0, d2 = a0, d3 = a0;
    const int8_t *ta = W0, *tb = W0 + stride, *tc = W0 + 2 * stride, *td = W0 + 3 * stride;
    int g = 0;
    for (; g + 4 <= Gfull; g += 4) {
        const int8x16_t x = vld1q_s8(q + 4 * g);
#define RNC_DOT_LANE(l)                                                                            \
    DOT4L(a0, a1, a2, a3, ta, x, l);                                                               \
    ta += 64;                                                                                      \
    DOT4L(b0, b1, b2, b3, tb, x, l);                                                               \
    tb += 64;                                                                                      \
    DOT4L(c0, c1, c2, c3, tc, x, l);                                                               \
    tc += 64;                                                                                      \
    DOT4L(d0, d1, d2, d3, td, x, l);                                                               \
    td += 64;
        RNC_DOT_LANE(0)
        RNC_DOT_LANE(1)
        RNC_DOT_LANE(2)
        RNC_DOT_LANE(3)
#undef RNC_DOT_LANE
    }
    for (; g < Gfull + (tail != NULL); ++g) {
        const int8x16_t x = bcast4(g < Gfull ? q + 4 * g : tail);
        DOT4(a0, a1, a2, a3, ta, x);
        DOT4(b0, b1, b2, b3, tb, x);
        DOT4(c0, c1, c2, c3, tc, x);
        DOT4(d0, d1, d2, d3, td, x);
        ta += 64;
        tb += 64;
        tc += 64;
        td += 64;
    }
    vst1q_s32(o + 0, a0);
    vst1q_s32(o + 4, a1);
    vst1q_s32(o + 8, a2);
    vst1q_s32(o + 12, a3);
    vst1q_s32(o + 16, b0);
    vst1q_s32(o + 20, b1);
    vst1q_s32(o + 24, b2);
    vst1q_s32(o + 28, b3);
    vst1q_s32(o + 32, c0);
    vst1q_s32(o + 36, c1);
    vst1q_s32(o + 40, c2);
    vst1q_s32(o + 44, c3);
    vst1q_s32(o + 48, d0);
    vst1q_s32(o + 52, d1);
    vst1q_s32(o + 56, d2);
    vst1q_s32(o + 60, d3);
}

/* One block, two groups per iteration (two accumulator sets). */
static inline void dot_block1(const int8_t *Wa, int Gfull, const int8_t *q, const int8_t *tail,
                              int32_t *oa)
{
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    int g = 0;
    for (; g + 2 <= Gfull; g += 2) {
        const int8x16_t x = bcast4(q + 4 * g), y = bcast4(q + 4 * g + 4);
        const int8_t *t = Wa + (size_t)g * 64;
        DOT4(a0, a1, a2, a3, t, x);
        DOT4(c0, c1, c2, c3, t + 64, y);
    }
    if (g < Gfull) {
        DOT4(a0, a1, a2, a3, Wa + (size_t)g * 64, bcast4(q + 4 * g));
        ++g;
    }
    if (tail) DOT4(c0, c1, c2, c3, Wa + (size_t)g * 64, bcast4(tail));
    vst1q_s32(oa + 0, vaddq_s32(a0, c0));
    vst1q_s32(oa + 4, vaddq_s32(a1, c1));
    vst1q_s32(oa + 8, vaddq_s32(a2, c2));
    vst1q_s32(oa + 12, vaddq_s32(a3, c3));
}

void rnc_q8_gemv_neondot(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc)
{
    const int G = (K + 3) / 4, nb = (R + 15) / 16, Gfull = K / 4;
    int8_t tb[4] = {0, 0, 0, 0};
    const int8_t *tail = NULL;
    if (K & 3) {
        memcpy(tb, q + 4 * Gfull, (size_t)(K & 3));
        tail = tb;
    }
    const int full = R / 16; /* blocks whose 16 rows are all stored */
    int b = 0;
    for (; b + 4 <= full; b += 4)
        dot_block4(Wp + (size_t)b * G * 64, (size_t)G * 64, Gfull, q, tail, acc + 16 * b);
    for (; b + 2 <= full; b += 2)
        dot_block2(Wp + (size_t)b * G * 64, Wp + (size_t)(b + 1) * G * 64, Gfull, q, tail,
                   acc + 16 * b, acc + 16 * (b + 1));
    for (; b < nb; ++b) {
        const int8_t *Wb = Wp + (size_t)b * G * 64;
        if (b < full) {
            dot_block1(Wb, Gfull, q, tail, acc + 16 * b);
        } else {
            int32_t tmp[16];
            dot_block1(Wb, Gfull, q, tail, tmp);
            memcpy(acc + 16 * b, tmp, sizeof(int32_t) * (size_t)(R - 16 * b));
        }
    }
}

/* Four vectors x one 16-row block: each weight tile is loaded once for four columns. */
static inline void dot_block_n4(const int8_t *Wb, int Gfull, const int8_t *const q[4],
                                const int8_t *const tail[4], int32_t *const o[4], int rows)
{
    int32x4_t c[4][4];
    for (int n = 0; n < 4; ++n)
        for (int i = 0; i < 4; ++i) c[n][i] = vdupq_n_s32(0);
    const int G = Gfull + (tail[0] != NULL);
    for (int g = 0; g < G; ++g) {
        const int8x16x4_t w = TILE4(Wb + (size_t)g * 64);
        for (int n = 0; n < 4; ++n) {
            const int8x16_t x = bcast4(g < Gfull ? q[n] + 4 * g : tail[n]);
            c[n][0] = vdotq_s32(c[n][0], w.val[0], x);
            c[n][1] = vdotq_s32(c[n][1], w.val[1], x);
            c[n][2] = vdotq_s32(c[n][2], w.val[2], x);
            c[n][3] = vdotq_s32(c[n][3], w.val[3], x);
        }
    }
    for (int n = 0; n < 4; ++n) {
        if (rows == 16) {
            for (int i = 0; i < 4; ++i) vst1q_s32(o[n] + 4 * i, c[n][i]);
        } else {
            int32_t tmp[16];
            for (int i = 0; i < 4; ++i) vst1q_s32(tmp + 4 * i, c[n][i]);
            memcpy(o[n], tmp, sizeof(int32_t) * (size_t)rows);
        }
    }
}

void rnc_q8_gemm_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                             int32_t *Acc, int ldacc)
{
    const int G = (K + 3) / 4, nb = (R + 15) / 16, Gfull = K / 4;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
        int8_t tb[4][4];
        const int8_t *q[4], *tail[4];
        for (int j = 0; j < 4; ++j) {
            q[j] = Q + (size_t)(n + j) * ldq;
            tail[j] = NULL;
            if (K & 3) {
                memset(tb[j], 0, 4);
                memcpy(tb[j], q[j] + 4 * Gfull, (size_t)(K & 3));
                tail[j] = tb[j];
            }
        }
        for (int b = 0; b < nb; ++b) {
            int32_t *o[4];
            for (int j = 0; j < 4; ++j) o[j] = Acc + (size_t)(n + j) * ldacc + 16 * b;
            dot_block_n4(Wp + (size_t)b * G * 64, Gfull, q, tail, o, R - 16 * b < 16 ? R - 16 * b : 16);
        }
    }
    for (; n < N; ++n)
        rnc_q8_gemv_neondot(Wp, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#endif /* __aarch64__ && __ARM_FEATURE_DOTPROD */
