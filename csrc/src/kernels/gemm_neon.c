/* ARM NEON (armv7 hard-float NEON and aarch64 ASIMD) matrix kernels on rnncore's packed layouts.
 *
 * Compiled only with this file's own flags (armv7: -mfpu=neon -mfloat-abi=hard; aarch64: baseline).
 *
 * Layouts (docs/rnc-format.md, docs/q8-contract.md):
 *   f32: rows padded to 16; float[(b*K + k)*16 + r] = W[16b + r, k].
 *   q8 : rows padded to 16, inputs to Kp = roundup(K, 4);
 *        byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j].
 *
 * q8 arithmetic (exact): within a 16-row x 4-input tile, each 16-byte register holds 4 rows x 4
 * inputs; x's 4-byte group is broadcast to every 32-bit lane. vmull_s8 gives one int16 product per
 * (row, input) lane (|w*x| <= 127*127 = 16129); a second group is added with vmlal_s8 (|sum| <=
 * 32258 < 32767, no overflow), then vpadal_s16 widens pairwise into int32 lanes. Every partial sum
 * is exact, so the int32 accumulators equal the generic kernel's bit for bit.
 */
#include "arm_kernels.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>
#include "neon_int.h"
#include <string.h>

/* ------------------------------------------------------------------ f32 */

#if defined(__aarch64__)
#define RNC_FMA_N(acc, w, s) vfmaq_n_f32((acc), (w), (s))
#else
/* armv7 NEON has no fused multiply-add without VFPv4; multiply then add (two roundings). */
#define RNC_FMA_N(acc, w, s) vmlaq_n_f32((acc), (w), (s))
#endif

/* Every f32 product below computes each output the same way: acc = 0; for k = 0..K-1 ascending:
 * acc = acc + W[r,k] * x[k] (aarch64: fused multiply-add; armv7: multiply, then add), so the
 * result does not depend on how many vectors or row blocks are done together (a step and a
 * whole-sequence run give the same bits). ILP comes from several row blocks / vectors at once. */

/* One 16-row block (4 independent chains). */
static inline void f32_block(const float *Wb, int K, const float *x, float *out16)
{
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
    for (int k = 0; k < K; ++k) {
        const float *w = Wb + (size_t)k * 16;
        const float xk = x[k];
        a0 = RNC_FMA_N(a0, vld1q_f32(w + 0), xk);
        a1 = RNC_FMA_N(a1, vld1q_f32(w + 4), xk);
        a2 = RNC_FMA_N(a2, vld1q_f32(w + 8), xk);
        a3 = RNC_FMA_N(a3, vld1q_f32(w + 12), xk);
    }
    vst1q_f32(out16 + 0, a0);
    vst1q_f32(out16 + 4, a1);
    vst1q_f32(out16 + 8, a2);
    vst1q_f32(out16 + 12, a3);
}

/* Two 16-row blocks (8 independent chains), stride = K*16 floats between them. */
static inline void f32_block2(const float *Wa, size_t stride, int K, const float *x, float *out32)
{
    const float *Wb = Wa + stride;
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int k = 0; k < K; ++k) {
        const float *w = Wa + (size_t)k * 16, *v = Wb + (size_t)k * 16;
        const float xk = x[k];
        a0 = RNC_FMA_N(a0, vld1q_f32(w + 0), xk);
        a1 = RNC_FMA_N(a1, vld1q_f32(w + 4), xk);
        a2 = RNC_FMA_N(a2, vld1q_f32(w + 8), xk);
        a3 = RNC_FMA_N(a3, vld1q_f32(w + 12), xk);
        b0 = RNC_FMA_N(b0, vld1q_f32(v + 0), xk);
        b1 = RNC_FMA_N(b1, vld1q_f32(v + 4), xk);
        b2 = RNC_FMA_N(b2, vld1q_f32(v + 8), xk);
        b3 = RNC_FMA_N(b3, vld1q_f32(v + 12), xk);
    }
    vst1q_f32(out32 + 0, a0);
    vst1q_f32(out32 + 4, a1);
    vst1q_f32(out32 + 8, a2);
    vst1q_f32(out32 + 12, a3);
    vst1q_f32(out32 + 16, b0);
    vst1q_f32(out32 + 20, b1);
    vst1q_f32(out32 + 24, b2);
    vst1q_f32(out32 + 28, b3);
}

void rnc_f32_gemv_neon(const float *Wp, int R, int K, const float *x, float *y)
{
    const int nb = (R + 15) / 16, full = R / 16;
    int b = 0;
    for (; b + 2 <= full; b += 2) f32_block2(Wp + (size_t)b * K * 16, (size_t)K * 16, K, x, y + 16 * b);
    for (; b < nb; ++b) {
        const float *Wb = Wp + (size_t)b * K * 16;
        if (b < full) {
            f32_block(Wb, K, x, y + 16 * b);
        } else {
            float tmp[16];
            f32_block(Wb, K, x, tmp);
            memcpy(y + 16 * b, tmp, sizeof(float) * (size_t)(R - 16 * b));
        }
    }
}

/* Four vectors at once share every weight load: 16 accumulators (aarch64 has 32 registers;
 * on armv7 the compiler spills a little, still fewer loads than four gemv calls). */
static inline void f32_block4(const float *Wb, int K, const float *x0, const float *x1,
                              const float *x2, const float *x3, float *o0, float *o1, float *o2,
                              float *o3)
{
    float32x4_t c[4][4];
    for (int n = 0; n < 4; ++n)
        for (int i = 0; i < 4; ++i) c[n][i] = vdupq_n_f32(0.f);
    for (int k = 0; k < K; ++k) {
        const float *w = Wb + (size_t)k * 16;
        const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4), w2 = vld1q_f32(w + 8),
                          w3 = vld1q_f32(w + 12);
        const float s[4] = {x0[k], x1[k], x2[k], x3[k]};
        for (int n = 0; n < 4; ++n) {
            c[n][0] = RNC_FMA_N(c[n][0], w0, s[n]);
            c[n][1] = RNC_FMA_N(c[n][1], w1, s[n]);
            c[n][2] = RNC_FMA_N(c[n][2], w2, s[n]);
            c[n][3] = RNC_FMA_N(c[n][3], w3, s[n]);
        }
    }
    float *o[4] = {o0, o1, o2, o3};
    for (int n = 0; n < 4; ++n)
        for (int i = 0; i < 4; ++i) vst1q_f32(o[n] + 4 * i, c[n][i]);
}

void rnc_f32_gemm_neon(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                           int ldy)
{
    const int nb = (R + 15) / 16;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
        const float *x0 = X + (size_t)n * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        for (int b = 0; b < nb; ++b) {
            const float *Wb = Wp + (size_t)b * K * 16;
            float t[4][16];
            f32_block4(Wb, K, x0, x1, x2, x3, t[0], t[1], t[2], t[3]);
            const int rows = (16 * b + 16 <= R) ? 16 : R - 16 * b;
            for (int j = 0; j < 4; ++j)
                memcpy(Y + (size_t)(n + j) * ldy + 16 * b, t[j], sizeof(float) * (size_t)rows);
        }
    }
    for (; n < N; ++n) rnc_f32_gemv_neon(Wp, R, K, X + (size_t)n * ldx, Y + (size_t)n * ldy);
}

/* ------------------------------------------------------------------ q8 */

static inline int32x4_t bcast4(const int8_t *q)
{
    int32_t v;
    memcpy(&v, q, 4);
    return vdupq_n_s32(v);
}

#if defined(__aarch64__)
#define MULL_LO(w, x) vmull_s8(vget_low_s8(w), vget_low_s8(x))
#define MULL_HI(w, x) vmull_high_s8((w), (x))
#define MLAL_LO(p, w, x) vmlal_s8((p), vget_low_s8(w), vget_low_s8(x))
#define MLAL_HI(p, w, x) vmlal_high_s8((p), (w), (x))
#else
#define MULL_LO(w, x) vmull_s8(vget_low_s8(w), vget_low_s8(x))
#define MULL_HI(w, x) vmull_s8(vget_high_s8(w), vget_low_s8(x))
#define MLAL_LO(p, w, x) vmlal_s8((p), vget_low_s8(w), vget_low_s8(x))
#define MLAL_HI(p, w, x) vmlal_s8((p), vget_high_s8(w), vget_low_s8(x))
#endif

/* clang 14 knows x0, x1 are 32-bit broadcasts and turns the high-half products of them
 * (smull2 / smlal2) into an `ext` of the weight register and the low-half product: 20 more
 * instructions per 256 multiply-adds. An empty asm on the broadcast hides its origin. */
#if defined(__clang__)
#define Q8_OPAQUE(x) __asm__("" : "+w"(x))
#else
#define Q8_OPAQUE(x) ((void)0)
#endif

/* Rows 4i..4i+3 of two groups (w0: group g, w1: group g+1): lo accumulates rows (4i, 4i+1) and
 * hi rows (4i+2, 4i+3), as input pairs. */
#define Q8_TWO(w0, w1, lo, hi)                                                                     \
    do {                                                                                           \
        lo = vpadalq_s16(lo, MLAL_LO(MULL_LO(w0, x0), w1, x1));                                    \
        hi = vpadalq_s16(hi, MLAL_HI(MULL_HI(w0, x0), w1, x1));                                    \
    } while (0)
#define Q8_ONE(w0, lo, hi)                                                                         \
    do {                                                                                           \
        lo = vpadalq_s16(lo, MULL_LO(w0, x0));                                                     \
        hi = vpadalq_s16(hi, MULL_HI(w0, x0));                                                     \
    } while (0)

/* A 64-byte tile as four registers (separate loads: GCC pairs them into ldp; ld1 {4 registers}
 * makes it add register moves here). */
static inline int8x16x4_t load_tile(const int8_t *t)
{
    int8x16x4_t w;
    w.val[0] = vld1q_s8(t);
    w.val[1] = vld1q_s8(t + 16);
    w.val[2] = vld1q_s8(t + 32);
    w.val[3] = vld1q_s8(t + 48);
    return w;
}

static inline void q8_block(const int8_t *Wb, int G, const int8_t *q, const int8_t *qtail,
                            int32_t *out16)
{
    /* a0: rows 0,1 (as input pairs), a1: rows 2,3, a2: rows 4,5, ... a7: rows 14,15. */
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const int Gfull = qtail ? G - 1 : G; /* groups whose 4 bytes of q are in bounds */
    int g = 0;
    for (; g + 4 <= Gfull; g += 4) { /* one 16-byte load of q for four groups */
        const int32x4_t xq = vreinterpretq_s32_s8(vld1q_s8(q + 4 * g));
        const int32x2_t xl = vget_low_s32(xq), xh = vget_high_s32(xq);
        const int8x16x4_t u = load_tile(Wb + (size_t)g * 64), v = load_tile(Wb + (size_t)g * 64 + 64);
        const int8x16x4_t s = load_tile(Wb + (size_t)g * 64 + 128), t = load_tile(Wb + (size_t)g * 64 + 192);
        {
            int8x16_t x0 = vreinterpretq_s8_s32(vdupq_lane_s32(xl, 0));
            int8x16_t x1 = vreinterpretq_s8_s32(vdupq_lane_s32(xl, 1));
            Q8_OPAQUE(x0);
            Q8_OPAQUE(x1);
            Q8_TWO(u.val[0], v.val[0], a0, a1);
            Q8_TWO(u.val[1], v.val[1], a2, a3);
            Q8_TWO(u.val[2], v.val[2], a4, a5);
            Q8_TWO(u.val[3], v.val[3], a6, a7);
        }
        {
            int8x16_t x0 = vreinterpretq_s8_s32(vdupq_lane_s32(xh, 0));
            int8x16_t x1 = vreinterpretq_s8_s32(vdupq_lane_s32(xh, 1));
            Q8_OPAQUE(x0);
            Q8_OPAQUE(x1);
            Q8_TWO(s.val[0], t.val[0], a0, a1);
            Q8_TWO(s.val[1], t.val[1], a2, a3);
            Q8_TWO(s.val[2], t.val[2], a4, a5);
            Q8_TWO(s.val[3], t.val[3], a6, a7);
        }
    }
    for (; g + 2 <= Gfull; g += 2) {
        int8x16_t x0 = vreinterpretq_s8_s32(bcast4(q + 4 * g));
        int8x16_t x1 = vreinterpretq_s8_s32(bcast4(q + 4 * g + 4));
        Q8_OPAQUE(x0);
        Q8_OPAQUE(x1);
        const int8x16x4_t u = load_tile(Wb + (size_t)g * 64), v = load_tile(Wb + (size_t)g * 64 + 64);
        Q8_TWO(u.val[0], v.val[0], a0, a1);
        Q8_TWO(u.val[1], v.val[1], a2, a3);
        Q8_TWO(u.val[2], v.val[2], a4, a5);
        Q8_TWO(u.val[3], v.val[3], a6, a7);
    }
    for (; g < G; ++g) { /* last odd group, or the zero-padded tail group */
        int8x16_t x0 = vreinterpretq_s8_s32(bcast4(g < Gfull ? q + 4 * g : qtail));
        Q8_OPAQUE(x0);
        const int8x16x4_t u = load_tile(Wb + (size_t)g * 64);
        Q8_ONE(u.val[0], a0, a1);
        Q8_ONE(u.val[1], a2, a3);
        Q8_ONE(u.val[2], a4, a5);
        Q8_ONE(u.val[3], a6, a7);
    }
    vst1q_s32(out16 + 0, rnc_neon_pair_reduce(a0, a1));
    vst1q_s32(out16 + 4, rnc_neon_pair_reduce(a2, a3));
    vst1q_s32(out16 + 8, rnc_neon_pair_reduce(a4, a5));
    vst1q_s32(out16 + 12, rnc_neon_pair_reduce(a6, a7));
}

/* The last partial group of q (K % 4 != 0) copied into a zero-padded 4-byte buffer, so no read
 * goes past q[K-1]. Returns NULL when K is a multiple of 4. */
static inline const int8_t *q_tail(const int8_t *q, int K, int8_t buf[4])
{
    if ((K & 3) == 0) return NULL;
    memset(buf, 0, 4);
    memcpy(buf, q + (K & ~3), (size_t)(K & 3));
    return buf;
}

/* GCC's first instruction scheduler raises the register pressure of q8_block's 4-group loop
 * (the broadcasts hoisted over the products) until two accumulators are copied in and out of
 * other registers every iteration: 71 instead of 67 instructions per 256 multiply-adds on
 * aarch64 (gcc 12; executed per step under qemu, GRU H = 64 on a Cortex-A53: -384). The second
 * scheduler, after register allocation, still runs. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-schedule-insns")))
#endif
void rnc_q8_gemv_neon(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc)
{
    const int G = (K + 3) / 4, nb = (R + 15) / 16;
    int8_t tb[4];
    const int8_t *tail = q_tail(q, K, tb);
    for (int b = 0; b < nb; ++b) {
        const int8_t *Wb = Wp + (size_t)b * G * 64;
        if (16 * b + 16 <= R) {
            q8_block(Wb, G, q, tail, acc + 16 * b);
        } else {
            int32_t tmp[16];
            q8_block(Wb, G, q, tail, tmp);
            memcpy(acc + 16 * b, tmp, sizeof(int32_t) * (size_t)(R - 16 * b));
        }
    }
}

void rnc_q8_gemm_neon(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                          int32_t *Acc, int ldacc)
{
    for (int n = 0; n < N; ++n)
        rnc_q8_gemv_neon(Wp, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#endif /* NEON */
