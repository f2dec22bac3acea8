/* aarch64 NEON versions of the float32 epilogue pieces of cell_template.h: the cell update, the
 * q8 dequantisation fused with it, and the activation quantiser. Included on aarch64 only
 * (armv7 NEON float arithmetic flushes denormals and has no division: there the template's scalar
 * C stays) by epilogue_neon_hooks.h, which plugs them into the template through its
 * RNC_CELL_UPDATE / RNC_Q8_UPDATE / RNC_QUANTIZE_ROW hooks for every ARM cells file.
 *
 * Bit-identical to the scalar code (activations.h, util.c's rnc_q8_quantize_generic): the same
 * IEEE float32 operations in the same order, no FMA (separate vmulq/vaddq, -ffp-contract=off),
 * each scalar select as the instruction with the same result, NaN included (a quiet NaN operand
 * is returned as it is by fmin/fmax): x > C ? C : x == vminq(C, x); x < -C ? -C : x ==
 * vmaxq(-C, x); relu x > 0 ? x : (x == x ? 0 : x) == vmaxq(x, 0) (fmax(-0, +0) = +0); the
 * quantiser's NaN-ignoring max on the bit patterns == vmaxq_u32 on the masked patterns. A last
 * group of fewer than 4 units runs the scalar functions of activations.h. One exception to "the
 * same operations", with the same results: the q8 GRU loop's sigmoid computes 0.5 + p / (2 q)
 * for 0.5 + 0.5 * (p / q) (rnc_neon_act8). The C tests compare these cells with the generic ones
 * bit for bit (tests/test_kernels.c, under qemu for ARM).
 *
 * Over-reads: gi/gh (and the q8 accumulators, row scales and biases) are read in 4-lane vectors
 * up to round4(H) <= Hp (in bounds: those arrays have G*Hp entries); h, c, y are written only
 * below H. */
#ifndef RNC_EPILOGUE_NEON_H
#define RNC_EPILOGUE_NEON_H
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../internal.h"
#include "activations.h"

#define RNC_NEON_AI static inline __attribute__((always_inline))
/* The quantiser (rnc_neon_quantize_row): inlined into the q8 cell at -O2/-O3 (clang 14 otherwise
 * calls it, per step), left to the compiler at -Os (two call sites in the cell). */
#if defined(__OPTIMIZE_SIZE__)
#define RNC_NEON_QI static inline
#else
#define RNC_NEON_QI RNC_NEON_AI
#endif
#define RNC_NEON_NW 2 /* 4-unit chunks in lockstep in the cell update */

/* The constants of the vector activations as 4-lane broadcasts, made once per call and passed
 * to them: rnc_tanhf's P[0..6] and Q[0..3] (activations.h), its input clamp +-C, 0.5 and 1. */
typedef struct {
    float32x4_t p[7], q[4], c, nc, half, one;
} rnc_neon_act_c;

RNC_NEON_AI rnc_neon_act_c rnc_neon_act_load(void)
{
    static const float P[7] = {RNC_TANH_P0, RNC_TANH_P1, RNC_TANH_P2,
                               RNC_TANH_P3,  RNC_TANH_P4, RNC_TANH_P5,
                               RNC_TANH_P6};
    static const float Q[4] = {RNC_TANH_Q0, RNC_TANH_Q1, RNC_TANH_Q2,
                               RNC_TANH_Q3};
    rnc_neon_act_c k;
    for (int i = 0; i < 7; ++i) k.p[i] = vdupq_n_f32(P[i]);
    for (int i = 0; i < 4; ++i) k.q[i] = vdupq_n_f32(Q[i]);
    k.c = vdupq_n_f32(RNC_TANH_CLAMP), k.nc = vdupq_n_f32(-RNC_TANH_CLAMP);
    k.half = vdupq_n_f32(0.5f), k.one = vdupq_n_f32(1.0f);
    return k;
}

/* rnc_tanhf on N vectors of 4 lanes in lockstep (the same operations per lane), constants k. */
RNC_NEON_AI void rnc_neon_tanh4n_k(float32x4_t *v, int N, const rnc_neon_act_c *k)
{
    float32x4_t x2[RNC_NEON_NW], p[RNC_NEON_NW], q[RNC_NEON_NW];
    int j, i;
    for (j = 0; j < N; ++j) {
        v[j] = vminq_f32(k->c, v[j]);
        v[j] = vmaxq_f32(k->nc, v[j]);
        x2[j] = vmulq_f32(v[j], v[j]);
        p[j] = k->p[0];
        q[j] = k->q[0];
    }
    for (i = 1; i < 7; ++i) {
        for (j = 0; j < N; ++j) {
            p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p[i]);
            if (i < 4) q[j] = vaddq_f32(vmulq_f32(q[j], x2[j]), k->q[i]);
        }
    }
    /* no final clamp to [-1, 1]: the quotient never leaves it (rnc_tanh_quotient, activations.h),
     * so rnc_tanhf's clamp never changes a bit (NaN stays NaN either way) */
    for (j = 0; j < N; ++j) {
        p[j] = vmulq_f32(p[j], v[j]);
        v[j] = vdivq_f32(p[j], q[j]);
    }
}

/* rnc_sigmoidf: 0.5 + 0.5 * tanh(0.5 x) */
RNC_NEON_AI void rnc_neon_sigmoid4n_k(float32x4_t *v, int N, const rnc_neon_act_c *k)
{
    int j;
    for (j = 0; j < N; ++j) v[j] = vmulq_f32(k->half, v[j]);
    rnc_neon_tanh4n_k(v, N, k);
    for (j = 0; j < N; ++j) v[j] = vaddq_f32(k->half, vmulq_f32(k->half, v[j]));
}

RNC_NEON_AI void rnc_neon_tanh4n(float32x4_t *v, int N)
{
    const rnc_neon_act_c k = rnc_neon_act_load();
    rnc_neon_tanh4n_k(v, N, &k);
}

RNC_NEON_AI void rnc_neon_sigmoid4n(float32x4_t *v, int N)
{
    const rnc_neon_act_c k = rnc_neon_act_load();
    rnc_neon_sigmoid4n_k(v, N, &k);
}

/* The pre-activation of 4 units at offset o: the float f[o] when f is given (f32 cells, and
 * q8's input part in whole-sequence mode); else q8, acc * (s_v * s_w) + b (int32 -> float rounded
 * to nearest, the product s_v * s_w first: rnc_q8_dequant's operations). The callers pass f as a
 * constant NULL or a pointer known to be non-NULL, so the test folds away. */
RNC_NEON_AI float32x4_t rnc_neon_pre4(const int32_t *acc, float32x4_t sv, const float *sw,
                                      const float *b, const float *f, size_t o)
{
    if (f) return vld1q_f32(f + o);
    const float32x4_t a = vcvtq_f32_s32(vld1q_s32(acc + o));
    return vaddq_f32(vmulq_f32(a, vmulq_f32(sv, vld1q_f32(sw + o))), vld1q_f32(b + o));
}

/* N full 4-unit chunks from unit u in lockstep (N <= RNC_NEON_NW), the operations of
 * cell_template.h's update per lane. */
RNC_NEON_AI void rnc_neon_update_n(uint32_t kind, int N, uint32_t Hp, uint32_t u,
                                   const int32_t *acc_i, float32x4_t svi, const float *s_ih,
                                   const float *b_ih, const float *gi, const int32_t *acc_h,
                                   float32x4_t svh, const float *s_hh, const float *b_hh,
                                   const float *gh, float *restrict h, float *restrict c,
                                   float *restrict y)
{
#define RNC_PI(g, j) rnc_neon_pre4(acc_i, svi, s_ih, b_ih, gi, (size_t)(g) * Hp + u + 4 * (j))
#define RNC_PH(g, j) rnc_neon_pre4(acc_h, svh, s_hh, b_hh, gh, (size_t)(g) * Hp + u + 4 * (j))
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t a[RNC_NEON_NW], b[RNC_NEON_NW], t[RNC_NEON_NW];
    int j;
    switch (kind) {
    case RNC_RNN_TANH:
        for (j = 0; j < N; ++j) t[j] = vaddq_f32(RNC_PI(0, j), RNC_PH(0, j));
        rnc_neon_tanh4n(t, N);
        break;
    case RNC_RNN_RELU:
        for (j = 0; j < N; ++j) t[j] = vmaxq_f32(vaddq_f32(RNC_PI(0, j), RNC_PH(0, j)), vdupq_n_f32(0.0f));
        break;
    case RNC_GRU:
        for (j = 0; j < N; ++j) a[j] = vaddq_f32(RNC_PI(0, j), RNC_PH(0, j));
        rnc_neon_sigmoid4n(a, N); /* r */
        for (j = 0; j < N; ++j) b[j] = vaddq_f32(RNC_PI(1, j), RNC_PH(1, j));
        rnc_neon_sigmoid4n(b, N); /* z */
        for (j = 0; j < N; ++j) t[j] = vaddq_f32(RNC_PI(2, j), vmulq_f32(a[j], RNC_PH(2, j)));
        rnc_neon_tanh4n(t, N); /* n */
        for (j = 0; j < N; ++j)
            t[j] = vaddq_f32(vmulq_f32(vsubq_f32(one, b[j]), t[j]), vmulq_f32(b[j], vld1q_f32(h + u + 4 * j)));
        break;
    default: { /* LSTM */
        float32x4_t g[RNC_NEON_NW];
        for (j = 0; j < N; ++j) a[j] = vaddq_f32(RNC_PI(0, j), RNC_PH(0, j));
        rnc_neon_sigmoid4n(a, N); /* i */
        for (j = 0; j < N; ++j) b[j] = vaddq_f32(RNC_PI(1, j), RNC_PH(1, j));
        rnc_neon_sigmoid4n(b, N); /* f */
        for (j = 0; j < N; ++j) g[j] = vaddq_f32(RNC_PI(2, j), RNC_PH(2, j));
        rnc_neon_tanh4n(g, N); /* g */
        for (j = 0; j < N; ++j) { /* c' = f*c + i*g */
            t[j] = vaddq_f32(vmulq_f32(b[j], vld1q_f32(c + u + 4 * j)), vmulq_f32(a[j], g[j]));
            vst1q_f32(c + u + 4 * j, t[j]);
        }
        rnc_neon_tanh4n(t, N);
        for (j = 0; j < N; ++j) a[j] = vaddq_f32(RNC_PI(3, j), RNC_PH(3, j));
        rnc_neon_sigmoid4n(a, N); /* o */
        for (j = 0; j < N; ++j) t[j] = vmulq_f32(a[j], t[j]);
        break;
    }
    }
#undef RNC_PI
#undef RNC_PH
    for (j = 0; j < N; ++j) {
        vst1q_f32(h + u + 4 * j, t[j]);
        if (y) vst1q_f32(y + u + 4 * j, t[j]);
    }
}

/* The last units (fewer than 4): the scalar template code on the same pre-activations. */
RNC_NEON_AI float rnc_neon_pre1(const int32_t *acc, float sv, const float *sw, const float *b,
                                const float *f, size_t o)
{
    return f ? f[o] : (float)acc[o] * (sv * sw[o]) + b[o];
}

RNC_NEON_AI void rnc_neon_update_tail(uint32_t kind, uint32_t H, uint32_t Hp, uint32_t u0,
                                      const int32_t *acc_i, float sxi, const float *s_ih,
                                      const float *b_ih, const float *gi, const int32_t *acc_h,
                                      float sxh, const float *s_hh, const float *b_hh,
                                      const float *gh, float *h, float *c, float *y)
{
#define RNC_SI(g) rnc_neon_pre1(acc_i, sxi, s_ih, b_ih, gi, (size_t)(g) * Hp + u)
#define RNC_SH(g) rnc_neon_pre1(acc_h, sxh, s_hh, b_hh, gh, (size_t)(g) * Hp + u)
    for (uint32_t u = u0; u < H; ++u) {
        float hn;
        switch (kind) {
        case RNC_RNN_TANH: hn = rnc_tanhf(RNC_SI(0) + RNC_SH(0)); break;
        case RNC_RNN_RELU: hn = rnc_reluf(RNC_SI(0) + RNC_SH(0)); break;
        case RNC_GRU: {
            const float r = rnc_sigmoidf(RNC_SI(0) + RNC_SH(0));
            const float z = rnc_sigmoidf(RNC_SI(1) + RNC_SH(1));
            const float n = rnc_tanhf(RNC_SI(2) + r * RNC_SH(2));
            hn = (1.0f - z) * n + z * h[u];
            break;
        }
        default: {
            const float i = rnc_sigmoidf(RNC_SI(0) + RNC_SH(0));
            const float f = rnc_sigmoidf(RNC_SI(1) + RNC_SH(1));
            const float g = rnc_tanhf(RNC_SI(2) + RNC_SH(2));
            const float o = rnc_sigmoidf(RNC_SI(3) + RNC_SH(3));
            const float c2 = f * c[u] + i * g;
            c[u] = c2;
            hn = o * rnc_tanhf(c2);
            break;
        }
        }
        h[u] = hn;
        if (y) y[u] = hn;
    }
#undef RNC_SI
#undef RNC_SH
}

RNC_NEON_AI void rnc_neon_update_k(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                   float sxi, const float *s_ih, const float *b_ih,
                                   const float *gi, const int32_t *acc_h, float sxh,
                                   const float *s_hh, const float *b_hh, const float *gh, float *h,
                                   float *c, float *y)
{
    const float32x4_t svi = vdupq_n_f32(sxi), svh = vdupq_n_f32(sxh);
    uint32_t u = 0;
    for (; u + 4 * RNC_NEON_NW <= H; u += 4 * RNC_NEON_NW)
        rnc_neon_update_n(kind, RNC_NEON_NW, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,
                          b_hh, gh, h, c, y);
    for (; u + 4 <= H; u += 4)
        rnc_neon_update_n(kind, 1, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, gh, h,
                          c, y);
    if (u < H)
        rnc_neon_update_tail(kind, H, Hp, u, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, gh,
                             h, c, y);
}

/* The template's hooks: the cell update from float gi, gh; and the q8 dequantisation fused with
 * it (the pre-activations made in registers from the int32 accumulators; acc_i NULL: the input
 * part is the float gi). One specialised loop per cell kind. */
#define RNC_NEON_BY_KIND(kind, ...)                                                               \
    do {                                                                                          \
        switch (kind) {                                                                           \
        case RNC_RNN_TANH: rnc_neon_update_k(RNC_RNN_TANH, __VA_ARGS__); break;                    \
        case RNC_RNN_RELU: rnc_neon_update_k(RNC_RNN_RELU, __VA_ARGS__); break;                    \
        case RNC_GRU: rnc_neon_update_k(RNC_GRU, __VA_ARGS__); break;                              \
        default: rnc_neon_update_k(RNC_LSTM, __VA_ARGS__); break;                                  \
        }                                                                                         \
    } while (0)

static inline void rnc_neon_cell_update(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi,
                                        const float *gh, float *h, float *c, float *y)
{
    RNC_NEON_BY_KIND(kind, H, Hp, NULL, 0.0f, NULL, NULL, gi, NULL, 0.0f, NULL, NULL, gh, h, c, y);
}

/* Two 4-lane vectors from p, p + 4, and p advanced by st bytes: one `ld1` of two registers
 * post-indexed by a register, so that one pointer walks all the gates of a per-gate stream
 * (gate g + 1 is Hp floats on; the last gate steps back to gate 0 of the next 8 units). GCC
 * keeps a separate address add per load for the intrinsic (the asm names the pair of registers
 * of a float32x4x2_t with %S / %T). Clang has no such operand; it post-indexes the intrinsic's
 * load itself once the new pointer is hidden from it by an empty asm (else its loop strength
 * reduction turns the 6 streams into 18 bases and one index, an `add` before every load). */
#if defined(__GNUC__) && !defined(__clang__)
#define RNC_NEON_LDS(p, st, a, b)                                                                 \
    do {                                                                                          \
        float32x4x2_t t_;                                                                         \
        __asm__("ld1 {%S0.4s, %T0.4s}, [%1], %3"                                                  \
                : "=w"(t_), "+r"(p)                                                               \
                : "m"(*(const float(*)[8])(const void *)(p)), "r"(st));                           \
        a = t_.val[0];                                                                            \
        b = t_.val[1];                                                                            \
    } while (0)
#else
#define RNC_NEON_LDS(p, st, a, b)                                                                 \
    do {                                                                                          \
        const float32x4x2_t t_ = vld1q_f32_x2(p);                                                 \
        a = t_.val[0];                                                                            \
        b = t_.val[1];                                                                            \
        p = (const float *)(const void *)((const char *)(p) + (st));                              \
        __asm__("" : "+r"(p));                                                                    \
    } while (0)
#endif

/* RNC_NEON_LDS by 32 bytes (the next 8 units of the same gate), post-indexed by the immediate
 * (no register for the stride); GCC only (the 16-unit GRU loop). */
#define RNC_NEON_LD32(p, a, b)                                                                    \
    do {                                                                                          \
        float32x4x2_t t_;                                                                         \
        __asm__("ld1 {%S0.4s, %T0.4s}, [%1], #32"                                                 \
                : "=w"(t_), "+r"(p)                                                               \
                : "m"(*(const float(*)[8])(const void *)(p)));                                    \
        a = t_.val[0];                                                                            \
        b = t_.val[1];                                                                            \
    } while (0)

/* Four 4-lane vectors from p .. p + 12, and p advanced by st bytes: one `ld1` of four registers
 * post-indexed by a register (RNC_NEON_LDS for 16 units). */
#if defined(__GNUC__) && !defined(__clang__)
#define RNC_NEON_LDS4(p, st, v)                                                                   \
    do {                                                                                          \
        float32x4x4_t t_;                                                                         \
        __asm__("ld1 {%S0.4s, %T0.4s, %U0.4s, %V0.4s}, [%1], %3"                                  \
                : "=w"(t_), "+r"(p)                                                               \
                : "m"(*(const float(*)[16])(const void *)(p)), "r"(st));                          \
        (v)[0] = t_.val[0];                                                                       \
        (v)[1] = t_.val[1];                                                                       \
        (v)[2] = t_.val[2];                                                                       \
        (v)[3] = t_.val[3];                                                                       \
    } while (0)
#else
#define RNC_NEON_LDS4(p, st, v)                                                                   \
    do {                                                                                          \
        const float32x4x4_t t_ = vld1q_f32_x4(p);                                                 \
        (v)[0] = t_.val[0];                                                                       \
        (v)[1] = t_.val[1];                                                                       \
        (v)[2] = t_.val[2];                                                                       \
        (v)[3] = t_.val[3];                                                                       \
        p = (const float *)(const void *)((const char *)(p) + (st));                              \
    } while (0)
#endif

/* Two 4-lane vectors stored at p, p + 4, and p advanced by 8 floats: one post-incremented `stp`. */
#define RNC_NEON_STP(p, a, b)                                                                     \
    __asm__("stp %q2, %q3, [%0], #32" : "+r"(p), "=m"(*(float(*)[8])(void *)(p)) : "w"(a), "w"(b))

/* One 8-unit pair read from p without moving p (the fused loops' h and the LSTM's c, stored
 * back by RNC_NEON_STP). */
#define RNC_NEON_LDP0(p, a, b)                                                                    \
    __asm__("ldp %q0, %q1, [%2]" : "=w"(a), "=w"(b) : "r"(p), "m"(*(const float(*)[8])(const void *)(p)))

/* The GRU loop's constants (4-lane broadcasts): P[1..6], Q[1..3], 2 Q[1..3] of rnc_tanhf, +-C,
 * 0.5 and 1, read from one table through a pointer GCC cannot see through (an empty asm), so that
 * they are loaded with `ldp` from one base instead of an address and a load each. */
typedef struct {
    float32x4_t p1, p2, p3, p4, p5, p6, q1, q2, q3, d1, d2, d3, c, nc, half, one;
} rnc_neon_gru_c;

#define RNC_NEON_B4(x) {(x), (x), (x), (x)}
static const float rnc_neon_gru_tab[17][4] __attribute__((aligned(16))) = {
    RNC_NEON_B4(RNC_TANH_P1),         RNC_NEON_B4(RNC_TANH_P2),
    RNC_NEON_B4(RNC_TANH_P3),         RNC_NEON_B4(RNC_TANH_P4),
    RNC_NEON_B4(RNC_TANH_P5),         RNC_NEON_B4(RNC_TANH_P6),
    RNC_NEON_B4(RNC_TANH_Q1),         RNC_NEON_B4(RNC_TANH_Q2),
    RNC_NEON_B4(RNC_TANH_Q3),         RNC_NEON_B4(2.0f * RNC_TANH_Q1),
    RNC_NEON_B4(2.0f * RNC_TANH_Q2),  RNC_NEON_B4(2.0f * RNC_TANH_Q3),
    RNC_NEON_B4(RNC_TANH_CLAMP),                RNC_NEON_B4(-RNC_TANH_CLAMP),
    RNC_NEON_B4(0.5f),                          RNC_NEON_B4(1.0f),
    /* the lane constants (rnc_neon_act8's kl): P[0], Q[0], 2 Q[0], 0.5 */
    {RNC_TANH_P0, RNC_TANH_Q0, 2.0f * RNC_TANH_Q0, 0.5f}};
#undef RNC_NEON_B4

/* rnc_tanhf (sig = 0) or rnc_sigmoidf (sig = 1) on 2 vectors of 4 lanes, the GRU loop's form:
 * kl holds P[0], Q[0], 2 Q[0] and 0.5 in its lanes (multiplied by lane: 4 constants in one
 * register). The sigmoid's last multiply is folded into its quotient: 0.5 * (p / q) == p / (2 q)
 * bit for bit, 2 q being the Horner sum on 2 Q[k] (every partial sum exactly doubled; a term too
 * small to double exactly is absorbed alike by the next coefficient), and p / q exactly halved
 * unless it is below 2^-125 in magnitude, where 0.5 + either is 0.5; so 0.5 + p / (2 q) ==
 * 0.5 + 0.5 * (p / q) for every input, NaN included (checked on all 2^32 float32 inputs; a
 * sweep in test_main's test_activations). One instruction less per 4 sigmoids. */
RNC_NEON_AI void rnc_neon_act8(float32x4_t *v, const rnc_neon_gru_c *k, float32x4_t kl, const int sig)
{
    float32x4_t x2[2], p[2], q[2];
    int j;
    for (j = 0; j < 2; ++j) {
        if (sig) v[j] = vmulq_laneq_f32(v[j], kl, 3); /* 0.5 x */
        v[j] = vminq_f32(k->c, v[j]);
        v[j] = vmaxq_f32(k->nc, v[j]);
        x2[j] = vmulq_f32(v[j], v[j]);
        p[j] = vaddq_f32(vmulq_laneq_f32(x2[j], kl, 0), k->p1);
        p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p2);
        p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p3);
        p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p4);
        p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p5);
        p[j] = vaddq_f32(vmulq_f32(p[j], x2[j]), k->p6);
        if (sig) {
            q[j] = vaddq_f32(vmulq_laneq_f32(x2[j], kl, 2), k->d1);
            q[j] = vaddq_f32(vmulq_f32(q[j], x2[j]), k->d2);
            q[j] = vaddq_f32(vmulq_f32(q[j], x2[j]), k->d3);
        } else {
            q[j] = vaddq_f32(vmulq_laneq_f32(x2[j], kl, 1), k->q1);
            q[j] = vaddq_f32(vmulq_f32(q[j], x2[j]), k->q2);
            q[j] = vaddq_f32(vmulq_f32(q[j], x2[j]), k->q3);
        }
        p[j] = vmulq_f32(p[j], v[j]);
        v[j] = vdivq_f32(p[j], q[j]);
        if (sig) v[j] = vaddq_f32(k->half, v[j]);
    }
}

/* rnc_neon_act8's tanh on v[0..1] (and v[2..3] when n = 4) in the GRU loops, its Q[1..3] read
 * from the table at this point (tab as if changed, so that the loads are not hoisted): no
 * register holds them through the sigmoid gates, and no stack slot (with them and 1, read where
 * h' is made, held in registers through the whole loop, GCC spilled constants). */
#define RNC_NEON_TANH_RQ(v, n)                                                                    \
    do {                                                                                          \
        rnc_neon_gru_c Kq_ = K;                                                                   \
        __asm__("" : "+r"(tab));                                                                  \
        Kq_.q1 = vld1q_f32(tab + 24);                                                             \
        Kq_.q2 = vld1q_f32(tab + 28);                                                             \
        Kq_.q3 = vld1q_f32(tab + 32);                                                             \
        rnc_neon_act8((v), &Kq_, kl, 0);                                                          \
        if ((n) == 4) rnc_neon_act8((v) + 2, &Kq_, kl, 0);                                        \
    } while (0)

/* The fused loops' set-up: the constants K and kl (rnc_neon_gru_tab, read with `ldp` from one
 * base), ks = {sxi, sxh} for the dequantisation, and the 6 per-gate streams (acc, row scale,
 * bias; input and recurrent part), each one pointer at gate 0 that RNC_NEON_GATE8 moves on by
 * the byte strides it is given: ds = Hp floats (the next gate), and back to gate 0 of the next
 * 8 units from the last gate read. */
#define RNC_NEON_FUSED_SETUP()                                                                    \
    const float *tab = rnc_neon_gru_tab[0];                                                       \
    __asm__("" : "+r"(tab));                                                                      \
    const rnc_neon_gru_c K = {vld1q_f32(tab),      vld1q_f32(tab + 4),  vld1q_f32(tab + 8),       \
                              vld1q_f32(tab + 12), vld1q_f32(tab + 16), vld1q_f32(tab + 20),      \
                              vld1q_f32(tab + 24), vld1q_f32(tab + 28), vld1q_f32(tab + 32),      \
                              vld1q_f32(tab + 36), vld1q_f32(tab + 40), vld1q_f32(tab + 44),      \
                              vld1q_f32(tab + 48), vld1q_f32(tab + 52), vld1q_f32(tab + 56),      \
                              vld1q_f32(tab + 60)};                                               \
    float32x4_t kl = vld1q_f32(tab + 64);                                                         \
    float32x2_t ks = vset_lane_f32(sxh, vdup_n_f32(sxi), 1);                                      \
    const float *ai = (const float *)(const void *)acc_i, *si = s_ih, *bi = b_ih;                 \
    const float *ah = (const float *)(const void *)acc_h, *sh = s_hh, *bh = b_hh;                 \
    const ptrdiff_t ds = (ptrdiff_t)Hp * 4

/* The input and recurrent pre-activations of one gate for 8 units, pi and ph (2 vectors each),
 * from the 6 streams (rnc_neon_pre4's operations), each moved on by st bytes. */
#define RNC_NEON_GATE8(pi, ph, st)                                                                \
    do {                                                                                          \
        float32x4_t x0, x1, s0, s1, c0, c1;                                                       \
        RNC_NEON_LDS(ai, st, x0, x1);                                                             \
        RNC_NEON_LDS(si, st, s0, s1);                                                             \
        RNC_NEON_LDS(bi, st, c0, c1);                                                             \
        pi[0] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x0)), vmulq_lane_f32(s0, ks, 0)), c0); \
        pi[1] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x1)), vmulq_lane_f32(s1, ks, 0)), c1); \
        RNC_NEON_LDS(ah, st, x0, x1);                                                             \
        RNC_NEON_LDS(sh, st, s0, s1);                                                             \
        RNC_NEON_LDS(bh, st, c0, c1);                                                             \
        ph[0] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x0)), vmulq_lane_f32(s0, ks, 1)), c0); \
        ph[1] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x1)), vmulq_lane_f32(s1, ks, 1)), c1); \
    } while (0)

/* One gate part's pre-activations for 16 units, o[0..3] = acc * (s * sv) + b (rnc_neon_pre4's
 * operations; sv lane l of ks) from the streams pa, ps, pb (one `ld1` of four registers each),
 * each moved on by st bytes: the bias read after the products, so that at most two of the
 * three 4-register groups are live. */
#define RNC_NEON_PART16(o, pa, ps, pb, st, l)                                                     \
    do {                                                                                          \
        float32x4_t x_[4], s_[4];                                                                 \
        RNC_NEON_LDS4(pa, st, x_);                                                                \
        RNC_NEON_LDS4(ps, st, s_);                                                                \
        for (int j_ = 0; j_ < 4; ++j_)                                                            \
            o[j_] = vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x_[j_])), vmulq_lane_f32(s_[j_], ks, l)); \
        RNC_NEON_LDS4(pb, st, x_);                                                                \
        for (int j_ = 0; j_ < 4; ++j_) o[j_] = vaddq_f32(o[j_], x_[j_]);                          \
    } while (0)

/* The GRU loop's form per compiler: 16 units per iteration with gcc; clang 14 spills that loop's
 * registers, so with clang the 8-unit step is the loop (same operations per unit, same bits). */
#if defined(__clang__)
#define RNC_NEON_GRU16 0
#else
#define RNC_NEON_GRU16 1
#endif

/* The q8 GRU step's update (acc_i given, reset_after=1), the units below H rounded down to 8: 16
 * units per iteration, then 8 when H & 8 (with clang, RNC_NEON_GRU16 0: 8 per iteration). In the
 * 16-unit loop the gates go r, n, z: the 6 streams (acc, row scale, bias; input and recurrent
 * part) of r and of n, and the input part of z, are read with one `ld1` of four registers each
 * (RNC_NEON_PART16); z's recurrent part with one `ld1` of two registers per 8 units (in
 * four-register groups too, with n's 4 vectors live, GCC spilled n), added to z's input part as
 * it is read. h is read with one `ld1` of four registers per 16 units, h' stored with two `stp`
 * (and y with two when with_y, a constant: the loops are compiled with and without the store).
 * In the 8-unit step each of the 18 per-gate pairs of vectors is read with one `ld1` of two
 * registers, h with one `ldp`, h' (and y) stored with one `stp`. tanh's Q[1..3] and the 1 of
 * 1 - z are read from the table where they are used (RNC_NEON_TANH_RQ). Each unit gets the
 * operations of rnc_neon_update_n in the same order (bit-identical). */
RNC_NEON_AI void rnc_neon_gru_q8_body(uint32_t H, uint32_t Hp, const int32_t *acc_i, float sxi,
                                      const float *s_ih, const float *b_ih, const int32_t *acc_h,
                                      float sxh, const float *s_hh, const float *b_hh, float *h,
                                      float *y, const int with_y)
{
    RNC_NEON_FUSED_SETUP();
    float *hw = h, *yw = y;
#if RNC_NEON_GRU16
    /* 16 units per iteration, the gates in the order r, n, z: on by 2 gates, back 1, and from z
     * to r of the next 16 units (z's recurrent part read 8 units at a time: on by 32 bytes, then
     * the rest) */
    const ptrdiff_t d2 = 2 * ds, db = -ds;
    ptrdiff_t dz, dz2; /* 64 - ds and 32 - ds, each in one instruction (GCC's own form takes 2) */
    __asm__("add %0, %1, #64" : "=r"(dz) : "r"(db));
    __asm__("sub %0, %1, #32" : "=r"(dz2) : "r"(dz));
    for (uint32_t n = H / 16; n; --n) {
        float32x4_t r[4], t[4];
        __asm__("" : "+w"(kl), "+w"(ks));
        RNC_NEON_PART16(r, ai, si, bi, d2, 0);
        RNC_NEON_PART16(t, ah, sh, bh, d2, 1);
        for (int j = 0; j < 4; ++j) r[j] = vaddq_f32(r[j], t[j]);
        rnc_neon_act8(r, &K, kl, 1);
        rnc_neon_act8(r + 2, &K, kl, 1);
        RNC_NEON_PART16(t, ah, sh, bh, db, 1);
        for (int j = 0; j < 4; ++j) r[j] = vmulq_f32(r[j], t[j]); /* r gh_n */
        RNC_NEON_PART16(t, ai, si, bi, db, 0);
        for (int j = 0; j < 4; ++j) t[j] = vaddq_f32(t[j], r[j]); /* gi_n + r gh_n */
        RNC_NEON_TANH_RQ(t, 4);
        {
            float32x4_t z[4];
            RNC_NEON_PART16(z, ai, si, bi, dz, 0);
            for (int k = 0; k < 4; k += 2) {
                float32x4_t x0, x1, s0, s1, c0, c1;
                if (k) {
                    RNC_NEON_LDS(ah, dz2, x0, x1);
                    RNC_NEON_LDS(sh, dz2, s0, s1);
                    RNC_NEON_LDS(bh, dz2, c0, c1);
                } else {
                    RNC_NEON_LD32(ah, x0, x1);
                    RNC_NEON_LD32(sh, s0, s1);
                    RNC_NEON_LD32(bh, c0, c1);
                }
                z[k] = vaddq_f32(z[k], vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x0)), vmulq_lane_f32(s0, ks, 1)), c0));
                z[k + 1] = vaddq_f32(z[k + 1], vaddq_f32(vmulq_f32(vcvtq_f32_s32(vreinterpretq_s32_f32(x1)), vmulq_lane_f32(s1, ks, 1)), c1));
            }
            rnc_neon_act8(z, &K, kl, 1);
            rnc_neon_act8(z + 2, &K, kl, 1);
            {
                float32x4x4_t hq;
                __asm__("ld1 {%S0.4s, %T0.4s, %U0.4s, %V0.4s}, [%1]"
                        : "=w"(hq) : "r"(hw), "m"(*(const float(*)[16])(const void *)hw));
                float32x4_t hv[4];
                const float32x4_t one = vld1q_f32(tab + 60); /* 1, read here (RNC_NEON_TANH_RQ) */
                for (int j = 0; j < 4; ++j) /* h' = (1 - z) n + z h */
                    hv[j] = vaddq_f32(vmulq_f32(vsubq_f32(one, z[j]), t[j]), vmulq_f32(z[j], hq.val[j]));
                RNC_NEON_STP(hw, hv[0], hv[1]);
                if (with_y) RNC_NEON_STP(yw, hv[0], hv[1]);
                RNC_NEON_STP(hw, hv[2], hv[3]);
                if (with_y) RNC_NEON_STP(yw, hv[2], hv[3]);
            }
        }
    }
    if (H & 8)
#else
    for (uint32_t n = H / 8; n; --n)
#endif
    {
        float32x4_t r[2], z[2], n2[2], ph2[2], pi[2], ph[2], hv[2];
        /* gate 2 -> gate 0 of the next 8 units: 32 - 2 ds, with gcc made in the step from the
         * 16-unit loop's 32 - ds in one instruction (so not at all when that loop leaves no 8
         * units; GCC's own form takes 3) */
        ptrdiff_t dn;
#if RNC_NEON_GRU16 && defined(__GNUC__)
        __asm__("sub %0, %1, %2" : "=r"(dn) : "r"(dz2), "r"(ds));
#else
        dn = 32 - 2 * ds;
#endif
        /* kl and ks as if changed every iteration: GCC then multiplies by their lanes instead of
         * keeping a broadcast register per lane */
        __asm__("" : "+w"(kl), "+w"(ks));
        RNC_NEON_GATE8(pi, ph, ds);
        r[0] = vaddq_f32(pi[0], ph[0]);
        r[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(r, &K, kl, 1);
        RNC_NEON_GATE8(pi, ph, ds);
        z[0] = vaddq_f32(pi[0], ph[0]);
        z[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(z, &K, kl, 1);
        RNC_NEON_GATE8(n2, ph2, dn);
        for (int j = 0; j < 2; ++j) n2[j] = vaddq_f32(n2[j], vmulq_f32(r[j], ph2[j]));
        RNC_NEON_TANH_RQ(n2, 2);
        RNC_NEON_LDP0(hw, hv[0], hv[1]);
        const float32x4_t one = vld1q_f32(tab + 60); /* 1, read here (RNC_NEON_TANH_RQ) */
        for (int j = 0; j < 2; ++j) /* h' = (1 - z) n + z h */
            n2[j] = vaddq_f32(vmulq_f32(vsubq_f32(one, z[j]), n2[j]), vmulq_f32(z[j], hv[j]));
        RNC_NEON_STP(hw, n2[0], n2[1]);
        if (with_y) RNC_NEON_STP(yw, n2[0], n2[1]);
    }
}
/* gcc 12: without TER (-fno-tree-ter: expressions are not moved to their use when expanded) and
 * its first scheduler, the register groups of the strided loads are not spilled: 451
 * instructions per 16 units, nothing on the stack (532 with TER and the scheduler in an earlier
 * form of the loop, 513 with TER alone); no alignment padding before the loop. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("-falign-loops=4", "no-schedule-insns", "no-tree-ter")))
#endif
static __attribute__((noinline)) void rnc_neon_gru_q8_main(uint32_t H, uint32_t Hp,
                                                          const int32_t *acc_i, float sxi,
                                                          const float *s_ih, const float *b_ih,
                                                          const int32_t *acc_h, float sxh,
                                                          const float *s_hh, const float *b_hh,
                                                          float *h, float *y)
{
    if (y) rnc_neon_gru_q8_body(H, Hp, acc_i, sxi, s_ih, b_ih, acc_h, sxh, s_hh, b_hh, h, y, 1);
    else rnc_neon_gru_q8_body(H, Hp, acc_i, sxi, s_ih, b_ih, acc_h, sxh, s_hh, b_hh, h, y, 0);
}

/* The q8 LSTM step's update in the GRU loop's form, the units below H rounded down to 8: the 24
 * per-gate pairs read with one `ld1` each from the 6 stream pointers (gates in the order i, g,
 * f, o), c read with one `ldp` and c' stored over it, h' and y stored with one `stp` each
 * (without y, h' is stored to h twice: one copy of the loop); i g is formed before f's
 * activation (two registers fewer live across it). rnc_neon_update_n's operations, bit-identical.
 * gcc 12: TER and the first scheduler off as for the GRU loop (352 instructions per 8 units,
 * none on the stack; 400 with the scheduler on). clang 14: `minsize` (364 per 8 units; 387
 * without it, its machine scheduler's order needing more registers than the loop has). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-schedule-insns", "no-tree-ter")))
#elif defined(__clang__)
__attribute__((minsize))
#endif
static __attribute__((noinline)) void rnc_neon_lstm_q8_main(uint32_t H, uint32_t Hp,
                                                           const int32_t *acc_i, float sxi,
                                                           const float *s_ih, const float *b_ih,
                                                           const int32_t *acc_h, float sxh,
                                                           const float *s_hh, const float *b_hh,
                                                           float *h, float *c, float *y)
{
    RNC_NEON_FUSED_SETUP();
    /* the gates in the order i, g, f, o: on by 2 gates, back 1, on by 2, to i of the next units */
    const ptrdiff_t d2 = 2 * ds, db = -ds, dn = 32 - 3 * ds;
    float *cw = c, *hw = h, *yw = y ? y : h;
    for (uint32_t n = H / 8; n; --n) {
        float32x4_t ig[2], gg[2], cv[2], pi[2], ph[2];
        __asm__("" : "+w"(kl), "+w"(ks));
        RNC_NEON_GATE8(pi, ph, d2);
        ig[0] = vaddq_f32(pi[0], ph[0]);
        ig[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(ig, &K, kl, 1); /* i */
        RNC_NEON_GATE8(pi, ph, db);
        gg[0] = vaddq_f32(pi[0], ph[0]);
        gg[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(gg, &K, kl, 0); /* g */
        for (int j = 0; j < 2; ++j) ig[j] = vmulq_f32(ig[j], gg[j]); /* i g, before f: fewer live */
        RNC_NEON_GATE8(pi, ph, d2);
        gg[0] = vaddq_f32(pi[0], ph[0]);
        gg[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(gg, &K, kl, 1); /* f */
        RNC_NEON_LDP0(cw, cv[0], cv[1]);
        for (int j = 0; j < 2; ++j) /* c' = f c + i g */
            cv[j] = vaddq_f32(vmulq_f32(gg[j], cv[j]), ig[j]);
        RNC_NEON_STP(cw, cv[0], cv[1]);
        rnc_neon_act8(cv, &K, kl, 0); /* tanh(c') */
        RNC_NEON_GATE8(pi, ph, dn);
        ig[0] = vaddq_f32(pi[0], ph[0]);
        ig[1] = vaddq_f32(pi[1], ph[1]);
        rnc_neon_act8(ig, &K, kl, 1); /* o */
        for (int j = 0; j < 2; ++j) cv[j] = vmulq_f32(ig[j], cv[j]);
        RNC_NEON_STP(hw, cv[0], cv[1]);
        RNC_NEON_STP(yw, cv[0], cv[1]);
    }
}
#undef RNC_NEON_GATE8
#undef RNC_NEON_TANH_RQ
#undef RNC_NEON_FUSED_SETUP

static void rnc_neon_q8_update_any(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                   float sxi, const float *s_ih, const float *b_ih,
                                   const float *gi, const int32_t *acc_h, float sxh,
                                   const float *s_hh, const float *b_hh, float *h, float *c,
                                   float *y)
{
    if (gi) /* whole-sequence mode: the input part given */
        RNC_NEON_BY_KIND(kind, H, Hp, NULL, 0.0f, NULL, NULL, gi, acc_h, sxh, s_hh, b_hh, NULL, h, c, y);
    else
        RNC_NEON_BY_KIND(kind, H, Hp, acc_i, sxi, s_ih, b_ih, NULL, acc_h, sxh, s_hh, b_hh, NULL, h, c,
                         y);
}

/* The q8 step's GRU and LSTM (acc_i given) go straight to their 8-unit loops, the last 1..7 units
 * and every other case to the general loops. */
RNC_NEON_AI void rnc_neon_q8_update(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                    float sxi, const float *s_ih, const float *b_ih,
                                    const float *gi, const int32_t *acc_h, float sxh,
                                    const float *s_hh, const float *b_hh, float *h, float *c,
                                    float *y)
{
    uint32_t u = 0;
    if (!gi && (kind == RNC_GRU || kind == RNC_LSTM)) {
        if (kind == RNC_GRU)
            rnc_neon_gru_q8_main(H, Hp, acc_i, sxi, s_ih, b_ih, acc_h, sxh, s_hh, b_hh, h, y);
        else
            rnc_neon_lstm_q8_main(H, Hp, acc_i, sxi, s_ih, b_ih, acc_h, sxh, s_hh, b_hh, h, c, y);
        if (!(H & 7)) return;
        u = H & ~7u; /* the units the 8-unit loop left */
    }
    rnc_neon_q8_update_any(kind, H - u, Hp, acc_i ? acc_i + u : NULL, sxi, s_ih ? s_ih + u : NULL,
                           b_ih ? b_ih + u : NULL, gi, acc_h + u, sxh, s_hh + u, b_hh + u, h + u,
                           c ? c + u : NULL, y ? y + u : NULL);
}

/* 4 values of the quantiser's second pass: v * inv clamped to [-127, 127] and rounded to nearest
 * even; a NaN product stays NaN through fmin / fmax (they return the NaN operand) and fcvtns
 * converts NaN to 0, the generic code's NaN -> 0 without a mask (clang 14 makes the mask's
 * p == p three instructions: fcmge, fcmlt, orr). */
RNC_NEON_AI int32x4_t rnc_neon_q4(const float *v, float32x4_t inv, float32x4_t lo, float32x4_t hi)
{
    const float32x4_t p = vmulq_f32(vld1q_f32(v), inv);
    return vcvtnq_s32_f32(vmaxq_f32(lo, vminq_f32(hi, p)));
}

/* util.c's rnc_q8_quantize_generic, bit for bit: the maximum of the |v| bit patterns with NaN
 * patterns as 0 (vmaxq_u32), then v * inv with NaN -> 0, clamped to [-127, 127] and rounded to
 * nearest even (fcvtns; the generic code's 1.5 * 2^23 addition gives the same integer for
 * |p| <= 127). */
RNC_NEON_QI void rnc_neon_quantize_row(const float *v, size_t n, size_t npad, float static_scale,
                                       float static_inv, int8_t *q, float *scale)
{
    float inv, s;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = static_inv > 0.0f ? static_inv : 1.0f / static_scale; /* a caller without it */
    } else {
        const uint32x4_t absm = vdupq_n_u32(0x7fffffffu), inf = vdupq_n_u32(0x7f800000u);
        uint32x4_t m0 = vdupq_n_u32(0), m1 = m0, m2 = m0, m3 = m0;
        size_t i = 0;
#define RNC_NEON_MAXABS(m, o)                                                                     \
    do {                                                                                          \
        const uint32x4_t a_ = vandq_u32(vld1q_u32((const uint32_t *)(const void *)(v + i + (o))), absm); \
        m = vmaxq_u32(m, vbicq_u32(a_, vcgtq_u32(a_, inf)));                                      \
    } while (0)
        for (; i + 16 <= n; i += 16) {
            RNC_NEON_MAXABS(m0, 0);
            RNC_NEON_MAXABS(m1, 4);
            RNC_NEON_MAXABS(m2, 8);
            RNC_NEON_MAXABS(m3, 12);
        }
        for (; i + 4 <= n; i += 4) RNC_NEON_MAXABS(m0, 0);
#undef RNC_NEON_MAXABS
        uint32_t mu = vmaxvq_u32(vmaxq_u32(vmaxq_u32(m0, m1), vmaxq_u32(m2, m3)));
        for (; i < n; ++i) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            u &= 0x7fffffffu;
            u = u > 0x7f800000u ? 0 : u;
            mu = mu > u ? mu : u;
        }
        float m;
        memcpy(&m, &mu, 4);
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    const float32x4_t vinv = vdupq_n_f32(inv), hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const int16x8_t w0 = vcombine_s16(vmovn_s32(rnc_neon_q4(v + i, vinv, lo, hi)),
                                          vmovn_s32(rnc_neon_q4(v + i + 4, vinv, lo, hi)));
        const int16x8_t w1 = vcombine_s16(vmovn_s32(rnc_neon_q4(v + i + 8, vinv, lo, hi)),
                                          vmovn_s32(rnc_neon_q4(v + i + 12, vinv, lo, hi)));
        vst1q_s8(q + i, vcombine_s8(vmovn_s16(w0), vmovn_s16(w1)));
    }
    for (; i + 8 <= n; i += 8) {
        const int16x8_t w = vcombine_s16(vmovn_s32(rnc_neon_q4(v + i, vinv, lo, hi)),
                                         vmovn_s32(rnc_neon_q4(v + i + 4, vinv, lo, hi)));
        vst1_s8(q + i, vmovn_s16(w));
    }
    for (; i < n; ++i) {
        float p = v[i] * inv;
        p = p == p ? p : 0.0f;
        p = p > 127.0f ? 127.0f : p;
        p = p < -127.0f ? -127.0f : p;
        q[i] = (int8_t)vcvtns_s32_f32(p);
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
