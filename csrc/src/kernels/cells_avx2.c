/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX2+FMA build of cell_template.h: products in
 * q8_gemm_avx2.c / f32_gemm_avx2.c, the cell update (q8: fused with the dequantisation) and the
 * activation quantisation from epilogue_avx2.h (intrinsics, 8 lanes, bit-identical to the generic
 * code); and the q8 strategies for small batches (the b1 and small rows of kernel_list.h). */
#include "epilogue_avx2.h"
#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_SFX avx2
#include "cell_template.h"

#include "gemm_deq.h"
#include "q8_avx2.h"
RNC_DEFINE_Q8_GEMM_DEQ(avx2)

/* The quantiser of the AVX2 path (and of AVX-VNNI, its child). */
void rnc_q8_quantize_avx2(const float *v, size_t n, size_t npad, float static_scale, float static_inv,
                          int8_t *q, float *scale)
{
    rnc_avx2_quantize_row(v, n, npad, static_scale, static_inv, q, scale);
}

/* ------------------------------------------------------------------------------------------
 * One row (the b1 row: rnc_step, the input vector given; the small row: whole-sequence mode, the
 * input projection given; the code runs any batch row by row). For each block of 16 hidden
 * units, the G gate row blocks of W_ih (step mode) and of W_hh run over the inputs with all 2G
 * accumulators in registers (two independent sets for a one-gate RNN), so the broadcast |x| and
 * sign mask of each 4-input group feed 2G multiply chains; the block's int32 sums are stored and
 * the cell update of the previous block (epilogue_avx2.h's fused dequantisation + update, the
 * template's operations) is issued right after, so that its float chains run under this block's
 * weight loads and products instead of after the whole product as in the template (two GEMM
 * calls, then one update pass). The quantised vectors' |x| and masks are made once per call.
 *
 * Same integers (the xor trick of q8_avx2.h, exact int32) and the same float32 operations on the
 * same operands as the template: bit-identical outputs (csrc/tests/test_kernels.c).
 * ---------------------------------------------------------------------------------------- */
#define RNC_B1_PREP_MAX 1024 /* inputs per prepared vector (stack); larger K: the template */
/* Above this H the template is used: there the products dominate, and the GEMM's four adjacent
 * row blocks (one weight stream) beat the G gate blocks of a unit block read side by side
 * (measured on Zen 4, GRU step, I = H: H = 256 5.06 -> 5.16-5.24 us, H = 384 11.3 -> 11.6 us with
 * this path; H = 128 1.55 -> 1.51 us, H = 64 0.53 -> 0.50 us). A one-gate RNN shares each
 * broadcast input group among 2 vectors only (the GEMM: 8), and hands over from H = 128 on (0.64
 * -> 0.68 us there; H = 64 level, H = 32 0.162 -> 0.141 us). */
#define RNC_B1_MAX_H(G) ((G) == 1 ? 64u : 128u)

/* acc[2m], acc[2m + 1] (rows 0-7, 8-15 of W[m]'s block) += the products of groups 0 .. ng-1 */
RNC_AI void b1_acc(const int8_t *const *W, int ng, const int8_t *xa, const int8_t *xm, __m256i *acc,
                   const int G)
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (G == 1) { /* two sets of chains, even and odd groups */
        __m256i a0 = acc[0], a1 = acc[1], a2 = _mm256_setzero_si256(), a3 = a2;
        int g = 0;
        for (; g + 2 <= ng; g += 2) {
            const __m256i ax = rnc_bcast4(xa + 4 * g), m = rnc_bcast4(xm + 4 * g);
            const __m256i bx = rnc_bcast4(xa + 4 * g + 4), n = rnc_bcast4(xm + 4 * g + 4);
            const int8_t *w = W[0] + (size_t)g * 64;
            RNC_MAC(a0, RNC_LD(w), m, ax);
            RNC_MAC(a1, RNC_LD(w + 32), m, ax);
            RNC_MAC(a2, RNC_LD(w + 64), n, bx);
            RNC_MAC(a3, RNC_LD(w + 96), n, bx);
        }
        if (g < ng) {
            const __m256i ax = rnc_bcast4(xa + 4 * g), m = rnc_bcast4(xm + 4 * g);
            const int8_t *w = W[0] + (size_t)g * 64;
            RNC_MAC(a0, RNC_LD(w), m, ax);
            RNC_MAC(a1, RNC_LD(w + 32), m, ax);
        }
        acc[0] = _mm256_add_epi32(a0, a2);
        acc[1] = _mm256_add_epi32(a1, a3);
        return;
    }
    for (int g = 0; g < ng; ++g) {
        const __m256i ax = rnc_bcast4(xa + 4 * g), m = rnc_bcast4(xm + 4 * g);
#pragma GCC unroll 4
        for (int k = 0; k < G; ++k) {
            const int8_t *w = W[k] + (size_t)g * 64;
            RNC_MAC(acc[2 * k], RNC_LD(w), m, ax);
            RNC_MAC(acc[2 * k + 1], RNC_LD(w + 32), m, ax);
        }
    }
}

/* The G gate blocks of unit block u of a packed matrix (ng groups per row block), their sums
 * (starting from the xor trick's correction) stored at acc + g * Hp + u. */
RNC_AI void b1_block(const int8_t *Wp, uint32_t Hp, uint32_t u, int ng, const int8_t *xa,
                     const int8_t *xm, int32_t corr, int32_t *acc, const int G)
{
    const int8_t *W[4];
    __m256i a[8];
#pragma GCC unroll 4
    for (int k = 0; k < G; ++k) {
        W[k] = Wp + (((size_t)k * Hp + u) / 16) * (size_t)ng * 64;
        a[2 * k] = a[2 * k + 1] = _mm256_set1_epi32(corr);
    }
    b1_acc(W, ng, xa, xm, a, G);
#pragma GCC unroll 4
    for (int k = 0; k < G; ++k) {
        _mm256_storeu_si256((__m256i *)(acc + (size_t)k * Hp + u), a[2 * k]);
        _mm256_storeu_si256((__m256i *)(acc + (size_t)k * Hp + u + 8), a[2 * k + 1]);
    }
}

/* The cell update of units u .. min(u + 32, H) - 1 (epilogue_avx2.h: full 8-unit chunks in
 * lockstep, up to 4 of them, then the masked tail). One out-of-line copy per cell
 * kind (b1_update_k below) instead of one inlined per call site and strategy. */
RNC_AI void b1_update_body(uint32_t kind, uint32_t H, uint32_t Hp, uint32_t u, const int32_t *acc_i,
                      __m256 svi, const float *s_ih, const float *b_ih, const float *gi,
                      const int32_t *acc_h, __m256 svh, const float *s_hh, const float *b_hh,
                      float *h, float *c, float *y)
{
    const uint32_t n = H - u >= 32 ? 32 : H - u;
#define RNC_B1_UPD(N)                                                                             \
    rnc_avx2_update_n(kind, N, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, NULL, h, c, y, 0)
    switch (n / 8) {
    case 4: RNC_B1_UPD(4); return;
    case 3: RNC_B1_UPD(3); break;
    case 2: RNC_B1_UPD(2); break;
    case 1: RNC_B1_UPD(1); break;
    default: break;
    }
#undef RNC_B1_UPD
    u += n / 8 * 8;
    if (u < H)
        rnc_avx2_update_tail(kind, H, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, NULL,
                             h, c, y);
}

#define RNC_B1_UPDATE_K(name, KIND)                                                              \
    static __attribute__((noinline)) void name(uint32_t H, uint32_t Hp, uint32_t u,              \
                                               const int32_t *acc_i, __m256 svi, const float *s_ih, \
                                               const float *b_ih, const float *gi,               \
                                               const int32_t *acc_h, __m256 svh,                 \
                                               const float *s_hh, const float *b_hh, float *h,   \
                                               float *c, float *y)                               \
    {                                                                                             \
        b1_update_body(KIND, H, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, h, c, y); \
    }
RNC_B1_UPDATE_K(b1_update_rnn_tanh, RNC_RNN_TANH)
RNC_B1_UPDATE_K(b1_update_rnn_relu, RNC_RNN_RELU)
RNC_B1_UPDATE_K(b1_update_gru, RNC_GRU)
RNC_B1_UPDATE_K(b1_update_lstm, RNC_LSTM)
#define b1_update(kind, ...)                                                                      \
    ((kind) == RNC_GRU        ? b1_update_gru(__VA_ARGS__)                                        \
     : (kind) == RNC_LSTM     ? b1_update_lstm(__VA_ARGS__)                                       \
     : (kind) == RNC_RNN_RELU ? b1_update_rnn_relu(__VA_ARGS__)                                   \
                              : b1_update_rnn_tanh(__VA_ARGS__))

/* The cell update of all H <= 64 units at once: the full 8-unit chunks (up to RNC_AVX2_NW = 8) in
 * lockstep, then the masked tail; one out-of-line copy per cell kind. With every unit block's
 * products done first, the update's dependency chains (a rational tanh with its division, two
 * or three of them in a row per unit) run side by side for all units instead of for 32 at a
 * time (one half under the products of the next blocks, the other alone at the end). A GRU
 * with up to 4 chunks runs their r and z as 2N chains in one lockstep (rnc_avx2_update_n's rz);
 * with 5 to 8, r, z and n each as N chains, so that every activation phase has at least 5
 * chains in flight (groups of 4 chunks left n with 4: 0.86x the update's time at H = 64). */
RNC_AI void b1_update_all_body(uint32_t kind, const int rz, uint32_t H, uint32_t Hp,
                               const int32_t *acc_i, __m256 svi,
                               const float *s_ih, const float *b_ih, const float *gi,
                               const int32_t *acc_h, __m256 svh, const float *s_hh, const float *b_hh,
                               float *h, float *c, float *y)
{
    uint32_t u = 0;
#define RNC_B1_UPD(N)                                                                             \
    rnc_avx2_update_n(kind, N, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, NULL, h, c, y, 1)
    if (rz) { /* r and z of up to 4 chunks: 2N chains in one lockstep */
        for (; u + 32 <= H; u += 32) RNC_B1_UPD(4);
        switch ((H - u) / 8) {
        case 3: RNC_B1_UPD(3); break;
        case 2: RNC_B1_UPD(2); break;
        case 1: RNC_B1_UPD(1); break;
        default: break;
        }
    } else {
        switch (H / 8) {
        case 8: RNC_B1_UPD(8); return;
        case 7: RNC_B1_UPD(7); break;
        case 6: RNC_B1_UPD(6); break;
        case 5: RNC_B1_UPD(5); break;
        case 4: RNC_B1_UPD(4); break;
        case 3: RNC_B1_UPD(3); break;
        case 2: RNC_B1_UPD(2); break;
        case 1: RNC_B1_UPD(1); break;
        default: break;
        }
    }
#undef RNC_B1_UPD
    u = H / 8 * 8;
    if (u < H)
        rnc_avx2_update_tail(kind, H, Hp, u, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, NULL,
                             h, c, y);
}

#define RNC_B1_UPDATE_ALL_K(name, KIND, RZ)                                                      \
    static __attribute__((noinline)) void name(uint32_t H, uint32_t Hp, const int32_t *acc_i,    \
                                               __m256 svi, const float *s_ih, const float *b_ih, \
                                               const float *gi, const int32_t *acc_h, __m256 svh, \
                                               const float *s_hh, const float *b_hh, float *h,   \
                                               float *c, float *y)                               \
    {                                                                                             \
        if (KIND != RNC_GRU) /* the GRU: step and whole-sequence mode each its own copy */       \
            b1_update_all_body(KIND, RZ, H, Hp, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,     \
                               b_hh, h, c, y);                                                    \
        else if (!acc_h) /* never (b1_row gives it; tells GCC that gh, NULL, is not read) */      \
            return;                                                                               \
        else if (acc_i)                                                                           \
            b1_update_all_body(KIND, RZ, H, Hp, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,     \
                               b_hh, h, c, y);                                                    \
        else                                                                                      \
            b1_update_all_body(KIND, RZ, H, Hp, NULL, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, \
                               h, c, y);                                                          \
    }
static __attribute__((noinline)) void b1_update_all_gru_rz(uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                                        __m256 svi, const float *s_ih,
                                                        const float *b_ih, const float *gi,
                                                        const int32_t *acc_h, __m256 svh,
                                                        const float *s_hh, const float *b_hh,
                                                        float *h, float *c, float *y)
{
    b1_update_all_body(RNC_GRU, 1, H, Hp, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, h, c, y);
}
RNC_B1_UPDATE_ALL_K(b1_update_all_rnn_tanh, RNC_RNN_TANH, 0)
RNC_B1_UPDATE_ALL_K(b1_update_all_rnn_relu, RNC_RNN_RELU, 0)
RNC_B1_UPDATE_ALL_K(b1_update_all_gru, RNC_GRU, 0)
RNC_B1_UPDATE_ALL_K(b1_update_all_lstm, RNC_LSTM, 0)
/* GRU at H < 40 (up to 4 chunks, r and z in one lockstep): its own function, unspecialised (in
 * one function with the 5-8 chunk cases, or specialised for step and sequence mode like the GRU
 * at H >= 40, the step took 1.07-1.15x the time at H = 32; unspecialised, the GRU at H = 64 took
 * 1.015x: the same operations each time, GCC's allocation of the bigger function; rnncore-bench
 * --part step alternated with the previous build, AMD EPYC Zen 4) */
#define b1_update_all(kind, H, ...)                                                               \
    ((kind) == RNC_GRU && (H) < 40 ? b1_update_all_gru_rz(H, __VA_ARGS__)                         \
     : (kind) == RNC_GRU                        ? b1_update_all_gru(H, __VA_ARGS__)               \
     : (kind) == RNC_LSTM                       ? b1_update_all_lstm(H, __VA_ARGS__)              \
     : (kind) == RNC_RNN_RELU                   ? b1_update_all_rnn_relu(H, __VA_ARGS__)          \
                                                : b1_update_all_rnn_tanh(H, __VA_ARGS__))

/* One row b: unit blocks in order, the update of blocks j - 2 and j - 1 (32 units) issued after
 * the products of j; at H <= 64 (4 blocks or fewer) every block's products, then the update of
 * all units (b1_update_all). seq: the input part is given (gi), else W_ih x from the row's quantised x. */
RNC_AI void b1_row(const rnc_cell_args *a, uint32_t kind, const int G, const int seq, uint32_t b,
                   const int8_t *hq, float sh, int32_t *acc_i, int32_t *acc_h)
{
    const uint32_t H = a->H, Hp = a->Hp, nb = (H + 15) / 16;
    const int kx = (int)RNC_ALIGN_UP((size_t)a->I, 4), kh = (int)RNC_ALIGN_UP((size_t)H, 4);
    int8_t xa[RNC_B1_PREP_MAX], xm[RNC_B1_PREP_MAX], ha[RNC_B1_PREP_MAX], hm[RNC_B1_PREP_MAX];
    const int32_t ch = rnc_q8_prep(hq, kh, ha, hm);
    int32_t cx = 0;
    if (!seq) cx = rnc_q8_prep(a->xq + b * a->ldxq, kx, xa, xm);
    float *h = a->h + (size_t)b * H, *c = a->c ? a->c + (size_t)b * H : NULL;
    float *y = a->y ? a->y + b * a->ldy : NULL;
    const float *gi = seq ? a->gi + b * a->ldgi : NULL;
    const __m256 svi = _mm256_set1_ps(seq ? 0.0f : a->sx[b]), svh = _mm256_set1_ps(sh);
    const int32_t *ai = seq ? NULL : acc_i;
    if (nb <= 4) { /* H <= 64: every block's products, then one update of all chunks in lockstep */
        for (uint32_t j = 0; j < nb; ++j) {
            if (!seq) b1_block((const int8_t *)a->w_ih, Hp, 16 * j, kx / 4, xa, xm, cx, acc_i, G);
            b1_block((const int8_t *)a->w_hh, Hp, 16 * j, kh / 4, ha, hm, ch, acc_h, G);
        }
        b1_update_all(kind, H, Hp, ai, svi, a->s_ih, a->b_ih, gi, acc_h, svh, a->s_hh, a->b_hh, h, c, y);
        return;
    }
    for (uint32_t j = 0; j < nb; ++j) {
        if (!seq) b1_block((const int8_t *)a->w_ih, Hp, 16 * j, kx / 4, xa, xm, cx, acc_i, G);
        b1_block((const int8_t *)a->w_hh, Hp, 16 * j, kh / 4, ha, hm, ch, acc_h, G);
        if (j >= 2 && (j & 1) == 0) /* blocks j - 2, j - 1 */
            b1_update(kind, H, Hp, 16 * (j - 2), ai, svi, a->s_ih, a->b_ih, gi, acc_h, svh,
                      a->s_hh, a->b_hh, h, c, y);
    }
    /* the rest: one or two blocks (nb odd: block nb - 1 alone, nb even: nb - 2 and nb - 1) */
    const uint32_t last = nb >= 2 && (nb & 1) == 0 ? nb - 2 : nb - 1;
    b1_update(kind, H, Hp, 16 * last, ai, svi, a->s_ih, a->b_ih, gi, acc_h, svh, a->s_hh, a->b_hh, h,
              c, y);
}

RNC_AI void b1_step(const rnc_cell_args *a, uint32_t kind, const int G, const int seq)
{
    const uint32_t B = a->batch, H = a->H;
    const size_t kh = RNC_ALIGN_UP((size_t)H, 4), ghp = (size_t)G * a->Hp;
    const rnc_cell_work wl = rnc__cell_work(a->G, H, B);
    unsigned char *w = (unsigned char *)a->work;
    int32_t *acc_i = (int32_t *)(w + wl.acc_i), *acc_h = (int32_t *)(w + wl.acc_h);
    int8_t *hq = (int8_t *)(w + wl.hq);
    float *sh = (float *)(w + wl.sh);
    for (uint32_t b = 0; b < B; ++b) /* every row's h is quantised before any row is updated */
        rnc_avx2_quantize_row(a->h + (size_t)b * H, H, kh, a->h_scale, a->h_inv, hq + b * kh, &sh[b]);
    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        b1_row(a, kind, G, seq, b, hq + b * kh, sh[b], acc_i + b * ghp, acc_h + b * ghp);
    }
}

/* The strategies as kernel-table rows (kernel_list.h); H above RNC_B1_MAX_H(G) and inputs longer
 * than RNC_B1_PREP_MAX take the template (the same results). */
#define RNC_AVX2_STRATEGIES(storage, cell, tmpl, KIND, G)                                         \
    storage void rnc_q8_##cell##_step_small_avx2(const rnc_cell_args *a)                          \
    {                                                                                             \
        if (a->H > RNC_B1_MAX_H(G)) rnc_q8_##tmpl##_step_avx2(a);                                 \
        else b1_step(a, KIND, G, 1);                                                              \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_b1_avx2(const rnc_cell_args *a)                             \
    {                                                                                             \
        if (a->H > RNC_B1_MAX_H(G) || a->I > RNC_B1_PREP_MAX) rnc_q8_##tmpl##_step_avx2(a);       \
        else b1_step(a, KIND, G, 0);                                                              \
    }
RNC_AVX2_STRATEGIES(, gru, gru, RNC_GRU, 3)
RNC_AVX2_STRATEGIES(, lstm, lstm, RNC_LSTM, 4)
RNC_AVX2_STRATEGIES(static, rnn_tanh, rnn, RNC_RNN_TANH, 1)
RNC_AVX2_STRATEGIES(static, rnn_relu, rnn, RNC_RNN_RELU, 1)
#define RNC_AVX2_RNN(strategy)                                                                    \
    void rnc_q8_rnn_step_##strategy##_avx2(const rnc_cell_args *a)                                \
    {                                                                                             \
        if (a->kind == RNC_RNN_RELU) rnc_q8_rnn_relu_step_##strategy##_avx2(a);                   \
        else rnc_q8_rnn_tanh_step_##strategy##_avx2(a);                                           \
    }
RNC_AVX2_RNN(small)
RNC_AVX2_RNN(b1)
