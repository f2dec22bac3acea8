/* AVX2 versions of the float32 epilogue pieces of cell_template.h (the cell update and the
 * activation quantiser), written with intrinsics because GCC does not if-convert the scalar
 * clamps (x > C ? C : x) into vector code. Included by cells_avx2.c (-mavx2 -mfma) and plugged
 * into the template through its RNC_CELL_UPDATE / RNC_QUANTIZE_ROW hooks.
 *
 * Bit-identical to the scalar code (activations.h, util.c's rnc_q8_quantize_generic): the same IEEE
 * float32 operations in the same order, no FMA (the file is compiled with -ffp-contract=off and
 * uses separate mul/add intrinsics), each scalar select written as the min/max operand order with
 * the same result, NaN included: x > C ? C : x == vminps(C, x); x < -C ? -C : x == vmaxps(-C, x);
 * a > m ? a : m == vmaxps(a, m); relu keeps NaN in both (rnc_reluf, rnc_avx2_relu8). The C tests
 * compare the AVX2 cells with the generic ones bit for bit.
 *
 * Over-reads: gi/gh (and the q8 accumulators, row scales and biases) are read in 8-lane vectors
 * up to round8(H) <= Hp (in bounds: those arrays have G*Hp entries); h, c, y are accessed with
 * masks past H. */
#ifndef RNC_EPILOGUE_AVX2_H
#define RNC_EPILOGUE_AVX2_H
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../internal.h"
#include "activations.h"

#define RNC_AVX2_AI static inline __attribute__((always_inline))
#define RNC_AVX2_NW 8 /* at most this many 8-unit chunks in lockstep in the cell update */
/* An empty asm that takes v in a ymm register and gives it back: no instruction, but the
 * compiler must have computed v here, so the statements before it stay before it */
#define RNC_AVX2_KEEP(v) __asm__ volatile("" : "+x"(v))
/* rnc_reluf on 8 lanes: max(x, 0) where x is a number (-0 gives +0), x itself where it is NaN */
RNC_AVX2_AI __m256 rnc_avx2_relu8(__m256 x)
{
    return _mm256_blendv_ps(_mm256_max_ps(x, _mm256_setzero_ps()), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

RNC_AVX2_AI __m256 rnc_avx2_tanh8(__m256 x)
{
    const __m256 C = _mm256_set1_ps(7.90531110763549805f);
    x = _mm256_min_ps(C, x);
    x = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), C), x);
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(RNC_TANH_P0);
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P5));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(RNC_TANH_P6));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_set1_ps(RNC_TANH_Q0);
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(RNC_TANH_Q1));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(RNC_TANH_Q2));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(RNC_TANH_Q3));
    /* no final clamp to [-1, 1]: the quotient never leaves it (activations.h) */
    return _mm256_div_ps(p, q);
}

RNC_AVX2_AI __m256 rnc_avx2_sigmoid8(__m256 x)
{
    const __m256 h = _mm256_set1_ps(0.5f);
    return _mm256_add_ps(h, _mm256_mul_ps(h, rnc_avx2_tanh8(_mm256_mul_ps(h, x))));
}

/* The same two functions on N vectors in lockstep (each vector gets exactly the operations of
 * rnc_avx2_tanh8 / rnc_avx2_sigmoid8, so bit-identical): the activations are long dependency
 * chains (a 6-step Horner polynomial and a division), and interleaving N independent chains in
 * program order lets the core overlap them instead of waiting on each one. phased: the
 * denominators' 3-step Horner chains first for all N vectors, then the numerators' 6 steps
 * (2 live vectors per chain instead of 3, so 8 chains stay in the 16 ymm registers), with
 * RNC_AVX2_KEEP after every step to keep that order: without it GCC emitted each chain's whole
 * polynomial before the next chain's (the lockstep undone, the chains left to the out-of-order
 * window, which holds about 4 of them). Not phased: both polynomials step by step together
 * (the GRU's r and z in one lockstep, rnc_avx2_update_n's rz, which ran slower phased). */
RNC_AVX2_AI void rnc_avx2_tanh8n(__m256 *v, int N, const int phased)
{
    static const float P[7] = {RNC_TANH_P0, RNC_TANH_P1, RNC_TANH_P2,
                               RNC_TANH_P3,  RNC_TANH_P4, RNC_TANH_P5,
                               RNC_TANH_P6};
    static const float Q[4] = {RNC_TANH_Q0, RNC_TANH_Q1, RNC_TANH_Q2,
                               RNC_TANH_Q3};
    const __m256 C = _mm256_set1_ps(7.90531110763549805f);
    __m256 x2[RNC_AVX2_NW], p[RNC_AVX2_NW], q[RNC_AVX2_NW];
    int j, k;
    for (j = 0; j < N; ++j) {
        v[j] = _mm256_min_ps(C, v[j]);
        v[j] = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), C), v[j]);
        x2[j] = _mm256_mul_ps(v[j], v[j]);
        p[j] = _mm256_set1_ps(P[0]);
        q[j] = _mm256_set1_ps(Q[0]);
    }
    if (phased) {
#pragma GCC unroll 4
        for (k = 1; k < 4; ++k) {
            for (j = 0; j < N; ++j)
                q[j] = _mm256_add_ps(_mm256_mul_ps(q[j], x2[j]), _mm256_set1_ps(Q[k]));
            for (j = 0; j < N; ++j) RNC_AVX2_KEEP(q[j]);
        }
#pragma GCC unroll 8
        for (k = 1; k < 7; ++k) {
            for (j = 0; j < N; ++j)
                p[j] = _mm256_add_ps(_mm256_mul_ps(p[j], x2[j]), _mm256_set1_ps(P[k]));
            for (j = 0; j < N; ++j) RNC_AVX2_KEEP(p[j]);
        }
    } else {
        for (k = 1; k < 7; ++k) {
            for (j = 0; j < N; ++j) {
                p[j] = _mm256_add_ps(_mm256_mul_ps(p[j], x2[j]), _mm256_set1_ps(P[k]));
                if (k < 4) q[j] = _mm256_add_ps(_mm256_mul_ps(q[j], x2[j]), _mm256_set1_ps(Q[k]));
            }
        }
    }
    for (j = 0; j < N; ++j) {
        p[j] = _mm256_mul_ps(p[j], v[j]);
        /* no final clamp to [-1, 1]: the quotient never leaves it (activations.h) */
        v[j] = _mm256_div_ps(p[j], q[j]);
    }
}

RNC_AVX2_AI void rnc_avx2_sigmoid8n(__m256 *v, int N, const int phased)
{
    const __m256 h = _mm256_set1_ps(0.5f);
    int j;
    for (j = 0; j < N; ++j) v[j] = _mm256_mul_ps(h, v[j]);
    rnc_avx2_tanh8n(v, N, phased);
    for (j = 0; j < N; ++j) v[j] = _mm256_add_ps(h, _mm256_mul_ps(h, v[j]));
}

RNC_AVX2_AI __m256i rnc_avx2_mask(size_t left)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int k = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

/* One 8-unit chunk of the cell update from the pre-activations gi[g], gh[g] of its gates (the
 * scalar formulas of cell_template.h, in the same order); h, c, y masked to the m lanes. */
RNC_AVX2_AI void rnc_avx2_update8(uint32_t kind, const __m256 *gi, const __m256 *gh, __m256i m,
                                  float *restrict h, float *restrict c, float *restrict y)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 hn;
    switch (kind) {
    case RNC_RNN_TANH: hn = rnc_avx2_tanh8(_mm256_add_ps(gi[0], gh[0])); break;
    case RNC_RNN_RELU: hn = rnc_avx2_relu8(_mm256_add_ps(gi[0], gh[0])); break;
    case RNC_GRU: {
        const __m256 r = rnc_avx2_sigmoid8(_mm256_add_ps(gi[0], gh[0]));
        const __m256 z = rnc_avx2_sigmoid8(_mm256_add_ps(gi[1], gh[1]));
        const __m256 n = rnc_avx2_tanh8(_mm256_add_ps(gi[2], _mm256_mul_ps(r, gh[2])));
        hn = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, z), n),
                           _mm256_mul_ps(z, _mm256_maskload_ps(h, m)));
        break;
    }
    default: {
        const __m256 i = rnc_avx2_sigmoid8(_mm256_add_ps(gi[0], gh[0]));
        const __m256 f = rnc_avx2_sigmoid8(_mm256_add_ps(gi[1], gh[1]));
        const __m256 g = rnc_avx2_tanh8(_mm256_add_ps(gi[2], gh[2]));
        const __m256 o = rnc_avx2_sigmoid8(_mm256_add_ps(gi[3], gh[3]));
        const __m256 c2 = _mm256_add_ps(_mm256_mul_ps(f, _mm256_maskload_ps(c, m)), _mm256_mul_ps(i, g));
        _mm256_maskstore_ps(c, m, c2);
        hn = _mm256_mul_ps(o, rnc_avx2_tanh8(c2));
        break;
    }
    }
    _mm256_maskstore_ps(h, m, hn);
    if (y) _mm256_maskstore_ps(y, m, hn);
}

RNC_AVX2_AI uint32_t rnc_avx2_gates(uint32_t kind)
{
    return kind == RNC_GRU ? 3u : kind == RNC_LSTM ? 4u : 1u;
}

/* The pre-activation of 8 units at offset o: q8, acc * (s_v * s_w) + b (int32 -> float with the
 * default rounding, the product s_v * s_w first, no FMA: rnc_q8_dequant's operations); or the
 * float f[o] when acc is NULL (f32 cells, and q8's input part in whole-sequence mode). */
RNC_AVX2_AI __m256 rnc_avx2_pre8(const int32_t *acc, __m256 sv, const float *sw, const float *b,
                                 const float *f, size_t o)
{
    if (!acc) return _mm256_loadu_ps(f + o);
    const __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + o)));
    return _mm256_add_ps(_mm256_mul_ps(a, _mm256_mul_ps(sv, _mm256_loadu_ps(sw + o))),
                         _mm256_loadu_ps(b + o));
}

/* N full 8-unit chunks from unit u in lockstep (N <= RNC_AVX2_NW), each gate's activation done
 * for all N chunks together (with rz and 2N <= RNC_AVX2_NW, a GRU's r and z, independent of each
 * other, as 2N chains in one lockstep); the operations of rnc_avx2_update8 per chunk. */
RNC_AVX2_AI void rnc_avx2_update_n(uint32_t kind, int N, uint32_t Hp, uint32_t u,
                                   const int32_t *acc_i, __m256 svi, const float *s_ih,
                                   const float *b_ih, const float *gi, const int32_t *acc_h,
                                   __m256 svh, const float *s_hh, const float *b_hh,
                                   const float *gh, float *restrict h, float *restrict c,
                                   float *restrict y, const int rz)
{
#define RNC_PI(g, j) rnc_avx2_pre8(acc_i, svi, s_ih, b_ih, gi, (size_t)(g) * Hp + u + 8 * (j))
#define RNC_PH(g, j) rnc_avx2_pre8(acc_h, svh, s_hh, b_hh, gh, (size_t)(g) * Hp + u + 8 * (j))
    const __m256 one = _mm256_set1_ps(1.0f);
    /* rnc_avx2_tanh8n's phased: in the template's update (rz 0) and for a GRU of 5-8 chunks in
     * the one-row one; the one-row update of the other cells and of up to 4 GRU chunks keeps the
     * unphased form (phased, their steps measured 1.03-1.15x; the order of the operations on
     * each element is the same either way) */
    const int ph = !rz || (kind == RNC_GRU && 2 * N > RNC_AVX2_NW);
    __m256 a[RNC_AVX2_NW], b[RNC_AVX2_NW], t[RNC_AVX2_NW];
    int j;
    switch (kind) {
    case RNC_RNN_TANH:
        for (j = 0; j < N; ++j) t[j] = _mm256_add_ps(RNC_PI(0, j), RNC_PH(0, j));
        rnc_avx2_tanh8n(t, N, ph);
        break;
    case RNC_RNN_RELU:
        for (j = 0; j < N; ++j)
            t[j] = rnc_avx2_relu8(_mm256_add_ps(RNC_PI(0, j), RNC_PH(0, j)));
        break;
    case RNC_GRU:
        for (j = 0; j < N; ++j) a[j] = _mm256_add_ps(RNC_PI(0, j), RNC_PH(0, j));
        for (j = 0; j < N; ++j) b[j] = _mm256_add_ps(RNC_PI(1, j), RNC_PH(1, j));
        if (rz && 2 * N <= RNC_AVX2_NW) { /* r and z of every chunk: 2N chains in one lockstep */
            __m256 v[RNC_AVX2_NW];
            for (j = 0; j < N; ++j) {
                v[j] = a[j];
                v[N + j] = b[j];
            }
            rnc_avx2_sigmoid8n(v, 2 * N, ph);
            for (j = 0; j < N; ++j) {
                a[j] = v[j];
                b[j] = v[N + j];
            }
        } else {
            rnc_avx2_sigmoid8n(a, N, ph); /* r */
            rnc_avx2_sigmoid8n(b, N, ph); /* z */
        }
        for (j = 0; j < N; ++j) t[j] = _mm256_add_ps(RNC_PI(2, j), _mm256_mul_ps(a[j], RNC_PH(2, j)));
        rnc_avx2_tanh8n(t, N, ph); /* n */
        for (j = 0; j < N; ++j)
            t[j] = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, b[j]), t[j]),
                                 _mm256_mul_ps(b[j], _mm256_loadu_ps(h + u + 8 * j)));
        break;
    default: { /* LSTM */
        __m256 g[RNC_AVX2_NW];
        for (j = 0; j < N; ++j) a[j] = _mm256_add_ps(RNC_PI(0, j), RNC_PH(0, j));
        rnc_avx2_sigmoid8n(a, N, ph); /* i */
        for (j = 0; j < N; ++j) b[j] = _mm256_add_ps(RNC_PI(1, j), RNC_PH(1, j));
        rnc_avx2_sigmoid8n(b, N, ph); /* f */
        for (j = 0; j < N; ++j) g[j] = _mm256_add_ps(RNC_PI(2, j), RNC_PH(2, j));
        rnc_avx2_tanh8n(g, N, ph); /* g */
        for (j = 0; j < N; ++j) { /* c' = f*c + i*g */
            t[j] = _mm256_add_ps(_mm256_mul_ps(b[j], _mm256_loadu_ps(c + u + 8 * j)),
                                 _mm256_mul_ps(a[j], g[j]));
            _mm256_storeu_ps(c + u + 8 * j, t[j]);
        }
        rnc_avx2_tanh8n(t, N, ph);
        for (j = 0; j < N; ++j) a[j] = _mm256_add_ps(RNC_PI(3, j), RNC_PH(3, j));
        rnc_avx2_sigmoid8n(a, N, ph); /* o */
        for (j = 0; j < N; ++j) t[j] = _mm256_mul_ps(a[j], t[j]);
        break;
    }
    }
#undef RNC_PI
#undef RNC_PH
    for (j = 0; j < N; ++j) {
        _mm256_storeu_ps(h + u + 8 * j, t[j]);
        if (y) _mm256_storeu_ps(y + u + 8 * j, t[j]);
    }
}

/* The last chunk of fewer than 8 units: h, c, y masked past H. */
RNC_AVX2_AI void rnc_avx2_update_tail(uint32_t kind, uint32_t H, uint32_t Hp, uint32_t u,
                                      const int32_t *acc_i, __m256 svi, const float *s_ih,
                                      const float *b_ih, const float *gi, const int32_t *acc_h,
                                      __m256 svh, const float *s_hh, const float *b_hh,
                                      const float *gh, float *h, float *c, float *y)
{
    __m256 vi[4], vh[4];
    for (uint32_t g = 0; g < rnc_avx2_gates(kind); ++g) {
        vi[g] = rnc_avx2_pre8(acc_i, svi, s_ih, b_ih, gi, (size_t)g * Hp + u);
        vh[g] = rnc_avx2_pre8(acc_h, svh, s_hh, b_hh, gh, (size_t)g * Hp + u);
    }
    rnc_avx2_update8(kind, vi, vh, rnc_avx2_mask(H - u), h + u, c ? c + u : NULL, y ? y + u : NULL);
}

RNC_AVX2_AI void rnc_avx2_update_k(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                   float sxi, const float *s_ih, const float *b_ih,
                                   const float *gi, const int32_t *acc_h, float sxh,
                                   const float *s_hh, const float *b_hh, const float *gh, float *h,
                                   float *c, float *y)
{
    const __m256 svi = _mm256_set1_ps(sxi), svh = _mm256_set1_ps(sxh);
    uint32_t u = 0;
    for (; u + 8 * 8 <= H; u += 8 * 8) /* 8 chunks at a time: 8 chains per activation */
        rnc_avx2_update_n(kind, 8, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,
                          b_hh, gh, h, c, y, 0);
    for (; u + 8 * 4 <= H; u += 8 * 4) /* then 4 */
        rnc_avx2_update_n(kind, 4, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,
                          b_hh, gh, h, c, y, 0);
    for (; u + 8 <= H; u += 8)
        rnc_avx2_update_n(kind, 1, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, gh, h,
                          c, y, 0);
    if (u < H)
        rnc_avx2_update_tail(kind, H, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, gh,
                             h, c, y);
}

/* The cell update (cell_template.h's RNC_CELL_UPDATE hook) from float gi, gh; and the q8
 * epilogue fused with it (the RNC_Q8_UPDATE hook): the pre-activations of each chunk of units
 * are made in registers from the int32 accumulators and go straight into the update, instead of
 * a pass writing gi/gh to memory and one reading them back; acc_i NULL: the input part is the
 * float gi (whole-sequence mode). One specialised loop per cell kind. */
#define RNC_AVX2_BY_KIND(kind, ...)                                                               \
    do {                                                                                          \
        switch (kind) {                                                                           \
        case RNC_RNN_TANH: rnc_avx2_update_k(RNC_RNN_TANH, __VA_ARGS__); break;                    \
        case RNC_RNN_RELU: rnc_avx2_update_k(RNC_RNN_RELU, __VA_ARGS__); break;                    \
        case RNC_GRU: rnc_avx2_update_k(RNC_GRU, __VA_ARGS__); break;                              \
        default: rnc_avx2_update_k(RNC_LSTM, __VA_ARGS__); break;                                  \
        }                                                                                         \
    } while (0)

static inline void rnc_avx2_cell_update(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi,
                                        const float *gh, float *h, float *c, float *y)
{
    RNC_AVX2_BY_KIND(kind, H, Hp, NULL, 0.0f, NULL, NULL, gi, NULL, 0.0f, NULL, NULL, gh, h, c, y);
}

static inline void rnc_avx2_q8_update(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                      float sxi, const float *s_ih, const float *b_ih,
                                      const float *gi, const int32_t *acc_h, float sxh,
                                      const float *s_hh, const float *b_hh, float *h, float *c,
                                      float *y)
{
    RNC_AVX2_BY_KIND(kind, H, Hp, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, NULL, h, c, y);
}

/* util.c's rnc_q8_quantize_generic, bit for bit. */
static inline void rnc_avx2_quantize_row(const float *v, size_t n, size_t npad, float static_scale,
                                         float static_inv, int8_t *q, float *scale)
{
    float inv, s;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = static_inv > 0.0f ? static_inv : 1.0f / static_scale; /* a caller without it */
    } else {
        __m256 mv = _mm256_setzero_ps();
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        size_t i = 0;
        for (; i + 8 <= n; i += 8) /* a > m ? a : m: NaN never wins */
            mv = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(v + i), absmask), mv);
        if (i < n)
            mv = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(v + i, rnc_avx2_mask(n - i)), absmask), mv);
        /* the lanes' largest value (no lane is NaN, none negative: any order gives the same) */
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float m = _mm_cvtss_f32(m4);
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    const __m256 vinv = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    for (size_t i = 0; i < n; i += 8) {
        const __m256 vi = n - i >= 8 ? _mm256_loadu_ps(v + i) : _mm256_maskload_ps(v + i, rnc_avx2_mask(n - i));
        __m256 p = _mm256_mul_ps(vi, vinv);
        p = _mm256_and_ps(p, _mm256_cmp_ps(p, p, _CMP_ORD_Q)); /* NaN -> 0 */
        p = _mm256_min_ps(hi, p);
        p = _mm256_max_ps(lo, p);
        p = _mm256_sub_ps(_mm256_add_ps(p, magic), magic);
        const __m256i w = _mm256_cvtps_epi32(p);
        const __m128i h16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        const __m128i b8 = _mm_packs_epi16(h16, h16);
        if (n - i >= 8) {
            _mm_storel_epi64((__m128i *)(q + i), b8);
        } else {
            int8_t t[16];
            _mm_storeu_si128((__m128i *)t, b8);
            memcpy(q + i, t, n - i);
        }
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
