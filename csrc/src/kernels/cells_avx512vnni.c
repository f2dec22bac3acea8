/* Fused RNN/GRU/LSTM step kernels, AVX-512 VNNI build of cell_template.h: q8 products with
 * 512-bit vpdpbusd (q8_gemm_avx512vnni.c); f32 products are the AVX-512F ones (VNNI adds only int8
 * instructions). Cell update and activation quantisation from epilogue_avx512.h; its float32
 * operations are those of every other ISA, so q8 outputs equal the generic kernel's exactly.
 *
 * Batches (>= 16 rows, the input given as quantised x: run()'s per-step
 * mode and rnc_step; not GRU reset_after=0) take a fused q8 step instead of the template's two
 * GEMMs + dequantisation + update: for each block of 16 hidden units, the G gate row blocks of
 * W_ih are run over every batch row (tiles of NB rows: G x NB accumulators in registers), scaled
 * and biased into a small buffer, then those of W_hh, and each tile's cell update follows its
 * recurrent product. A unit block's weights (G x round4(K) x 16 bytes per matrix) stay in L1
 * across all rows of the batch, the products run at the vpdpbusd peak (the offset correction
 * -128 * rowsum is the accumulators' initial value), and no G*Hp-wide int32 / float arrays per
 * row go through memory. Same integers (exact int32 sums), same float32 operations in the same
 * order as the template (acc * (s_v * s_w) + b, then the cell of epilogue_avx512.h), so the
 * outputs are bit-identical to the generic kernel's (csrc/tests/test_vnni_fused.c).
 *
 * Measured (Zen 4, one core, B = 64, T = 100, H = I = 256 / 512): the products alone run at
 * ~240 GMAC/s (the vpdpbusd peak, 64 MAC per cycle); the float32 epilogue (the rational tanh with
 * its division, ~25 vector operations per 16 units per gate) shares the vector pipes with
 * vpdpbusd and does not overlap with it, so it adds ~20-30 % to the product time.
 */
#include "../internal.h"
#include "epilogue_avx512.h"
#include "kernels_avx512.h"

void rnc_f32_gemm_avx512vnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                             int ldy);
void rnc_f32_gemm_avx512vnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                             int ldy)
{
    rnc_f32_gemm_avx512(Wp, R, K, N, X, ldx, Y, ldy);
}

/* intrinsics epilogue (bit-identical, more in flight) through the template's hooks */
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_SFX avx512vnni
#include "cell_template.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>

/* The fused step serves 16 batch rows and more (kernel_list.h; measured on Zen 4: at 4 to 8 rows
 * the template's GEMM, which shares each row block's offset correction across the whole call, is
 * ahead; from 16 rows on the fused step is level or faster, most for LSTM and H = 512). */
/* batch rows per tile: G x NB accumulators (12 for GRU, 16 for LSTM) + G weight vectors */
#define RNC_NB_GRU 4  /* <= 4: fused_acc_tab */
#define RNC_NB_LSTM 4 /* <= 4 */
#define RNC_NB_RNN 8  /* <= 8 */
#define RNC_FA static inline __attribute__((always_inline))

/* One 4-byte group of a quantised vector, broadcast, with the offset 128 (q ^ 0x80 as unsigned).
 * The vectors are zero-padded to round4(K) (x by the caller, h here), so whole groups are read. */
RNC_FA __m512i fused_bcast(const int8_t *q, int g)
{
    int32_t v;
    memcpy(&v, q + 4 * g, 4);
    return _mm512_xor_si512(_mm512_set1_epi32(v), _mm512_set1_epi8((char)0x80));
}

/* (float)acc * (s_v * s_w) + b: the template's rnc_q8_dequant, 16 rows. */
RNC_FA __m512 fused_dequant(__m512i acc, float sv, const float *sw, const float *b)
{
    return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(_mm512_set1_ps(sv), _mm512_loadu_ps(sw))),
                         _mm512_loadu_ps(b));
}

/* The pre-activations of G gate row blocks x NB batch rows: acc[m][n] = init[m] + sum_g dpbusd(q_n ^
 * 0x80, W_m) over ng groups (with init = -128 * rowsum, exactly sum_k W q), then scaled and biased
 * (fused_dequant, row n's scale sv[n], gate m's sw + m * ldw, b + m * ldw) into out + n * ldo + m * 16.
 * A separate (not inlined) function per (G, NB), so that the compiler keeps the G x NB accumulators
 * in registers without copies across the loop; they are scaled straight from the registers instead
 * of going through memory as int32 and being reloaded at once by the caller (512-bit stores
 * reloaded right away forward badly on Zen 4: passing the initial values per (m, n) through memory
 * the same way cost ~2 ms of a 21 ms LSTM H=256 batch-64 run). */
RNC_FA void fused_acc_body(const int8_t *const *W, int ng, const int8_t *const *Q, const __m512i *init,
                           const float *sv, const float *sw, const float *b, size_t ldw, float *out, size_t ldo,
                           const int G, const int NB)
{
    __m512i a[4][8];
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m)
#pragma GCC unroll 8
        for (int n = 0; n < NB; ++n) a[m][n] = init[m];
    const int8_t *q[8];
#pragma GCC unroll 8
    for (int n = 0; n < NB; ++n) q[n] = Q[n];
    const int8_t *w0 = W[0], *w1 = G > 1 ? W[1] : W[0], *w2 = G > 2 ? W[2] : W[0], *w3 = G > 3 ? W[3] : W[0];
    for (int g = 0; g < ng; ++g) {
        __m512i w[4];
        w[0] = _mm512_loadu_si512((const void *)(w0 + (size_t)g * 64));
        if (G > 1) w[1] = _mm512_loadu_si512((const void *)(w1 + (size_t)g * 64));
        if (G > 2) w[2] = _mm512_loadu_si512((const void *)(w2 + (size_t)g * 64));
        if (G > 3) w[3] = _mm512_loadu_si512((const void *)(w3 + (size_t)g * 64));
#pragma GCC unroll 8
        for (int n = 0; n < NB; ++n) {
            const __m512i xu = fused_bcast(q[n], g);
#pragma GCC unroll 4
            for (int m = 0; m < G; ++m) a[m][n] = _mm512_dpbusd_epi32(a[m][n], xu, w[m]);
        }
    }
    /* an empty asm per accumulator: without it GCC copied all G x NB accumulators between
     * registers (and spilled two) in every iteration of the loop above */
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m)
#pragma GCC unroll 8
        for (int n = 0; n < NB; ++n) __asm__("" : "+v"(a[m][n]));
#pragma GCC unroll 8
    for (int n = 0; n < NB; ++n)
#pragma GCC unroll 4
        for (int m = 0; m < G; ++m)
            _mm512_storeu_ps(out + n * ldo + m * 16, fused_dequant(a[m][n], sv[n], sw + m * ldw, b + m * ldw));
}

#define FUSED_ACC(G, NB)                                                                          \
    static __attribute__((noinline)) void fused_acc_##G##_##NB(                                    \
        const int8_t *const *W, int ng, const int8_t *const *Q, const __m512i *init, const float *sv, \
        const float *sw, const float *b, size_t ldw, float *out, size_t ldo)                       \
    {                                                                                             \
        fused_acc_body(W, ng, Q, init, sv, sw, b, ldw, out, ldo, G, NB);                          \
    }
FUSED_ACC(1, 1)
FUSED_ACC(1, 2)
FUSED_ACC(1, 3)
FUSED_ACC(1, 4)
FUSED_ACC(1, 5)
FUSED_ACC(1, 6)
FUSED_ACC(1, 7)
FUSED_ACC(1, 8)
FUSED_ACC(3, 1)
FUSED_ACC(3, 2)
FUSED_ACC(3, 3)
FUSED_ACC(3, 4)
FUSED_ACC(4, 1)
FUSED_ACC(4, 2)
FUSED_ACC(4, 3)
FUSED_ACC(4, 4)

typedef void (*fused_acc_fn)(const int8_t *const *, int, const int8_t *const *, const __m512i *, const float *,
                             const float *, const float *, size_t, float *, size_t);
/* [G = 1, 3, 4][NB - 1]: the tile widths fused_step uses (RNC_NB_* and every narrower tail) */
static const fused_acc_fn fused_acc_tab[3][8] = {
    {fused_acc_1_1, fused_acc_1_2, fused_acc_1_3, fused_acc_1_4, fused_acc_1_5, fused_acc_1_6, fused_acc_1_7, fused_acc_1_8},
    {fused_acc_3_1, fused_acc_3_2, fused_acc_3_3, fused_acc_3_4, 0, 0, 0, 0},
    {fused_acc_4_1, fused_acc_4_2, fused_acc_4_3, fused_acc_4_4, 0, 0, 0, 0}};

RNC_FA void fused_acc(const int8_t *const *W, int ng, const int8_t *const *Q, const __m512i *init, const float *sv,
                      const float *sw, const float *b, size_t ldw, float *out, size_t ldo, const int G, int NB)
{
    fused_acc_tab[G == 1 ? 0 : G == 3 ? 1 : 2][NB - 1](W, ng, Q, init, sv, sw, b, ldw, out, ldo);
}

/* -128 * rowsum(W) of one row block (the offset's correction), as int32 lanes. */
RNC_FA __m512i fused_corr(const int8_t *W, int ng)
{
    /* four independent chains (exact int32 sums in any order) instead of one chain of ng
     * dependent vpdpbusd (their latency, 8 x 64 per unit block and step at LSTM H=256) */
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
    int g = 0;
    for (; g + 4 <= ng; g += 4) {
        c0 = _mm512_dpbusd_epi32(c0, k80, _mm512_loadu_si512((const void *)(W + (size_t)g * 64)));
        c1 = _mm512_dpbusd_epi32(c1, k80, _mm512_loadu_si512((const void *)(W + (size_t)(g + 1) * 64)));
        c2 = _mm512_dpbusd_epi32(c2, k80, _mm512_loadu_si512((const void *)(W + (size_t)(g + 2) * 64)));
        c3 = _mm512_dpbusd_epi32(c3, k80, _mm512_loadu_si512((const void *)(W + (size_t)(g + 3) * 64)));
    }
    for (; g < ng; ++g) c0 = _mm512_dpbusd_epi32(c0, k80, _mm512_loadu_si512((const void *)(W + (size_t)g * 64)));
    const __m512i c = _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3));
    return _mm512_sub_epi32(_mm512_setzero_si512(), c);
}

/* The cell updates of units u .. u+15 of batch rows n0 .. n0+np-1 (pre in fused_part's layout),
 * gate by gate across the rows, so that the rows' independent float chains (the rational tanh and
 * its division) are in flight together. The float32 operations of each lane are exactly those of
 * rnc_x86_unit16_v (epilogue_avx512.h) in the same order. */
RNC_FA __m512 fused_pre(const float *pre, uint32_t j, int G, int k) { return _mm512_loadu_ps(pre + ((size_t)j * 2 * G + k) * 16); }

RNC_FA void fused_update_rows(const rnc_cell_args *a, uint32_t kind, const int G, uint32_t u, __mmask16 msk,
                              uint32_t n0, uint32_t np, const float *pre)
{
    const uint32_t H = a->H;
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 hn[8], t0[8], t1[8];
    if (kind == RNC_RNN_TANH) {
        for (uint32_t j = 0; j < np; ++j) hn[j] = rnc_x86_tanh16(_mm512_add_ps(fused_pre(pre, j, G, 0), fused_pre(pre, j, G, 1)));
    } else if (kind == RNC_RNN_RELU) {
        for (uint32_t j = 0; j < np; ++j)
            hn[j] = rnc_x86_relu16(_mm512_add_ps(fused_pre(pre, j, G, 0), fused_pre(pre, j, G, 1)));
    } else if (kind == RNC_GRU) {
        for (uint32_t j = 0; j < np; ++j) {
            t0[j] = rnc_x86_sigmoid16(_mm512_add_ps(fused_pre(pre, j, G, 0), fused_pre(pre, j, G, 3))); /* r */
            t1[j] = rnc_x86_sigmoid16(_mm512_add_ps(fused_pre(pre, j, G, 1), fused_pre(pre, j, G, 4))); /* z */
        }
        for (uint32_t j = 0; j < np; ++j) {
            const __m512 n = rnc_x86_tanh16(_mm512_add_ps(fused_pre(pre, j, G, 2), _mm512_mul_ps(t0[j], fused_pre(pre, j, G, 5))));
            const __m512 h = _mm512_maskz_loadu_ps(msk, a->h + (size_t)(n0 + j) * H + u);
            hn[j] = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, t1[j]), n), _mm512_mul_ps(t1[j], h));
        }
    } else {
        __m512 gg[8], o[8];
        for (uint32_t j = 0; j < np; ++j) {
            t0[j] = rnc_x86_sigmoid16(_mm512_add_ps(fused_pre(pre, j, G, 0), fused_pre(pre, j, G, 4))); /* i */
            t1[j] = rnc_x86_sigmoid16(_mm512_add_ps(fused_pre(pre, j, G, 1), fused_pre(pre, j, G, 5))); /* f */
        }
        for (uint32_t j = 0; j < np; ++j) {
            gg[j] = rnc_x86_tanh16(_mm512_add_ps(fused_pre(pre, j, G, 2), fused_pre(pre, j, G, 6)));   /* g */
            o[j] = rnc_x86_sigmoid16(_mm512_add_ps(fused_pre(pre, j, G, 3), fused_pre(pre, j, G, 7)));  /* o */
        }
        for (uint32_t j = 0; j < np; ++j) {
            const uint32_t b = n0 + j;
            float *c = a->c + (size_t)b * H + u;
            const __m512 c2 = _mm512_add_ps(_mm512_mul_ps(t1[j], _mm512_maskz_loadu_ps(msk, c)), _mm512_mul_ps(t0[j], gg[j]));
            if (!a->active || a->active[b]) _mm512_mask_storeu_ps(c, msk, c2);
            t0[j] = c2;
        }
        for (uint32_t j = 0; j < np; ++j) hn[j] = _mm512_mul_ps(o[j], rnc_x86_tanh16(t0[j]));
    }
    for (uint32_t j = 0; j < np; ++j) {
        const uint32_t b = n0 + j;
        if (a->active && !a->active[b]) continue;
        _mm512_mask_storeu_ps(a->h + (size_t)b * H + u, msk, hn[j]);
        if (a->y) _mm512_mask_storeu_ps(a->y + b * a->ldy + u, msk, hn[j]);
    }
}

/* The input (part 0) or recurrent (part 1) product of one tile: units u .. u+15 (gate row blocks
 * at g*Hp + u) of batch rows n0 .. n0+NB-1, scaled and biased into pre (2G vectors of 16 floats
 * per row: the input parts, then the recurrent parts). */
RNC_FA void fused_part(const rnc_cell_args *a, const int G, int NB, int part, uint32_t u, uint32_t n0,
                       const int8_t *const *W, const __m512i *corr, int ng, const int8_t *q, size_t ldq,
                       const float *sv, float *pre)
{
    const uint32_t Hp = a->Hp;
    const float *sw = part ? a->s_hh : a->s_ih, *bias = part ? a->b_hh : a->b_ih;
    const int8_t *Q[8];
    for (int n = 0; n < NB; ++n) Q[n] = q + (size_t)(n0 + n) * ldq;
    fused_acc(W, ng, Q, corr, sv + n0, sw + u, bias + u, Hp, pre + ((size_t)n0 * 2 * G + (size_t)part * G) * 16,
              (size_t)2 * G * 16, G, NB);
}

/* sums: W_hh's kernel sums (the fused_sums rows) or NULL (computed here per step, fused_corr) */
RNC_FA void fused_step(const rnc_cell_args *a, uint32_t kind, const int G, const int NB, const int32_t *sums)
{
    const uint32_t B = a->batch, H = a->H, Hp = a->Hp;
    const size_t kh = RNC_ALIGN_UP((size_t)H, 4), kx = RNC_ALIGN_UP((size_t)a->I, 4);
    const int gx = (int)(kx / 4), gh = (int)(kh / 4);
    const rnc_cell_work wl = rnc__cell_work(a->G, H, B);
    unsigned char *w = (unsigned char *)a->work;
    int8_t *hq = (int8_t *)(w + wl.hq);
    float *sh = (float *)(w + wl.sh);
    /* B x 2G x 16 floats of one unit block's pre-activations, in acc_i + acc_h (2 x B x G*Hp x 4
     * contiguous bytes, 64-aligned: at least B x 2G x 64) */
    float *pre = (float *)(w + wl.acc_i);
    for (uint32_t b = 0; b < B; ++b)
        rnc_x86_quantize_row_avx512(a->h + (size_t)b * H, H, kh, a->h_scale, a->h_inv, hq + b * kh, &sh[b]);
    const int8_t *wih = (const int8_t *)a->w_ih, *whh = (const int8_t *)a->w_hh;
    for (uint32_t u = 0; u < H; u += 16) {
        const __mmask16 msk = H - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - u)) - 1u);
        const int8_t *Wi[4], *Wh[4];
        __m512i ci[4], ch[4];
#pragma GCC unroll 4
        for (int m = 0; m < G; ++m) {
            const size_t blk = ((size_t)m * Hp + u) / 16;
            Wi[m] = wih + blk * (size_t)gx * 64;
            Wh[m] = whh + blk * (size_t)gh * 64;
            ci[m] = fused_corr(Wi[m], gx);
            if (sums) /* -128 * sum: the same int32 lanes as fused_corr's */
                ch[m] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_slli_epi32(_mm512_loadu_si512((const void *)(sums + blk * 16)), 7));
            else
                ch[m] = fused_corr(Wh[m], gh);
        }
        /* W_ih's blocks stay in L1 across every row of the batch, then W_hh's */
        for (uint32_t n0 = 0; n0 < B; n0 += (uint32_t)NB) {
            const int nb = B - n0 >= (uint32_t)NB ? NB : (int)(B - n0);
            fused_part(a, G, nb, 0, u, n0, Wi, ci, gx, a->xq, a->ldxq, a->sx, pre);
        }
        for (uint32_t n0 = 0; n0 < B; n0 += (uint32_t)NB) {
            const int nb = B - n0 >= (uint32_t)NB ? NB : (int)(B - n0);
            fused_part(a, G, nb, 1, u, n0, Wh, ch, gh, hq, kh, sh, pre);
            fused_update_rows(a, kind, G, u, msk, n0, (uint32_t)nb, pre + (size_t)n0 * 2 * G * 16);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Small batches (the small and b1 rows of kernel_list.h), row by row, software-pipelined: the
 * products of unit block j (its G gate row blocks of W_hh; in step mode W_ih's first) run in 8 chunks of input
 * groups, and after each chunk one eighth (a "stage") of the cell update of unit block j - 1.
 *
 * Why: at batch 1 the product streams W_hh from L2 (bandwidth-bound; the vector pipes are half
 * idle), and the cell update of 16 units is ~150 dependent float operations (rational tanh, its
 * division) with a long latency chain. The template runs it after the whole product (GEMM, then
 * a dequantisation pass, then an update pass: nothing overlaps); a block's update placed whole
 * after its product fills the scheduler while it waits on its chain, which stalls the next
 * block's weight loads (measured: little gain). Cut into short stages between the chunks, most
 * of it runs under the next chunk's loads. Measured on Zen 4, one step at H = I = 256, sequence
 * mode: LSTM 2.60 us (the W_hh product alone in this loop 2.34 us; the template ~3.0 us), GRU
 * 1.91 us (1.78; the template 2.24 us). Tried without gain: the offset trick with the row
 * corrections made once per sequence (2.63 us: the vector ALUs are not the limit), software
 * prefetch, smaller LSTM stages.
 *
 * Same integers (the sign trick of q8_gemm_avx512vnni.c: dpbusd(|q|, sign(q) * W), exact int32; in
 * the b1_sums row W_hh's product uses the offset trick instead, dpbusd(q ^ 0x80, W) from
 * -128 * the file's kernel sums, one instruction per weight vector instead of two, which counts
 * where the weights are in L1 and the vector pipes are the limit: small H),
 * and each lane computes exactly the float32 operations of the template's rnc_q8_dequant +
 * rnc_x86_unit16_v (epilogue_avx512.h) with the same operands in the same order; rnc_x86_tanh16
 * is split into stages without changing any operation: bit-identical outputs.
 * ---------------------------------------------------------------------------------------- */
#define RNC_STAGES 8

/* a[m] += sum over groups g0 .. g1-1 of dpbusd(|q_g|, sign(q_g) * W[m]_g) (q zero-padded) */
RNC_FA void small_acc(const int8_t *const *W, int g0, int g1, const int8_t *q, __m512i *a, const int M)
{
    const __m512i zero = _mm512_setzero_si512();
    for (int g = g0; g < g1; ++g) {
        int32_t v;
        memcpy(&v, q + 4 * g, 4);
        const __m512i xb = _mm512_set1_epi32(v);
        const __mmask64 neg = _mm512_movepi8_mask(xb); /* bytes where q < 0 */
        const __m512i xa = _mm512_abs_epi8(xb);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) {
            __m512i w = _mm512_loadu_si512((const void *)(W[m] + (size_t)g * 64));
            w = _mm512_mask_sub_epi8(w, neg, zero, w); /* sign(q) * W, in [-127, 127] */
            a[m] = _mm512_dpbusd_epi32(a[m], xa, w);
        }
    }
    /* as fused_acc_body: without it GCC copied the accumulators between registers every group */
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) __asm__("" : "+v"(a[m]));
}

/* a[m] += sum over groups g0 .. g1-1 of dpbusd(q_g ^ 0x80, W[m]_g): with a[m] started at
 * -128 * rowsum(W[m]) (W_hh's kernel sums), exactly sum_k W q; one instruction per weight vector
 * instead of the sign trick's two (q zero-padded: 0x80 against zero weights adds nothing) */
RNC_FA void small_acc_off(const int8_t *const *W, int g0, int g1, const int8_t *q, __m512i *a, const int M)
{
    for (int g = g0; g < g1; ++g) {
        const __m512i xu = fused_bcast(q, g);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m)
            a[m] = _mm512_dpbusd_epi32(a[m], xu, _mm512_loadu_si512((const void *)(W[m] + (size_t)g * 64)));
    }
    /* as small_acc */
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) __asm__("" : "+v"(a[m]));
}

/* W_hh's product of groups g0 .. g1-1: the offset trick with the kernel sums, else the sign trick */
RNC_FA void small_acc_hh(const int8_t *const *W, int g0, int g1, const int8_t *q, __m512i *a, const int M,
                         const int sums)
{
    if (sums) small_acc_off(W, g0, g1, q, a, M);
    else small_acc(W, g0, g1, q, a, M);
}

/* rnc_x86_tanh16 in stages (the same operations on the same values) */
typedef struct {
    __m512 x, x2, p, q;
} small_tanh;

RNC_FA void th_0(small_tanh *t, __m512 x)
{
    const __m512 C = _mm512_set1_ps(7.90531110763549805f);
    x = _mm512_min_ps(C, x);
    x = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), C), x);
    t->x = x;
    t->x2 = _mm512_mul_ps(x, x);
    t->p = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(RNC_TANH_P0), t->x2), _mm512_set1_ps(RNC_TANH_P1));
    t->q = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(RNC_TANH_Q0), t->x2), _mm512_set1_ps(RNC_TANH_Q1));
}
RNC_FA void th_1(small_tanh *t)
{
    t->p = _mm512_add_ps(_mm512_mul_ps(t->p, t->x2), _mm512_set1_ps(RNC_TANH_P2));
    t->p = _mm512_add_ps(_mm512_mul_ps(t->p, t->x2), _mm512_set1_ps(RNC_TANH_P3));
    t->q = _mm512_add_ps(_mm512_mul_ps(t->q, t->x2), _mm512_set1_ps(RNC_TANH_Q2));
}
RNC_FA void th_2(small_tanh *t)
{
    t->p = _mm512_add_ps(_mm512_mul_ps(t->p, t->x2), _mm512_set1_ps(RNC_TANH_P4));
    t->p = _mm512_add_ps(_mm512_mul_ps(t->p, t->x2), _mm512_set1_ps(RNC_TANH_P5));
    t->q = _mm512_add_ps(_mm512_mul_ps(t->q, t->x2), _mm512_set1_ps(RNC_TANH_Q3));
}
RNC_FA __m512 th_3(small_tanh *t)
{
    __m512 p = _mm512_add_ps(_mm512_mul_ps(t->p, t->x2), _mm512_set1_ps(RNC_TANH_P6));
    p = _mm512_mul_ps(p, t->x);
    /* no final clamp to [-1, 1]: the quotient never leaves it (activations.h) */
    return _mm512_div_ps(p, t->q);
}

/* The cell update of one unit block in flight: its accumulators (recurrent part; the input part
 * as floats in gi) and the values carried from stage to stage. */
typedef struct {
    __m512i acc[4];
    const float *gi; /* G gate vectors, gi + m * ldg */
    size_t ldg;
    uint32_t u;
    __mmask16 msk;
    small_tanh t[4];
    __m512 v[4], gh2;
} small_epi;

/* Stage k (0 .. RNC_STAGES-1) of the update of e (rnc_x86_unit16_v's operations on the same operands),
 * about the same work per stage: 0 the pre-activations, 1-4 the gates' tanh chains (tanh, or the
 * sigmoid's 0.5 + 0.5 tanh(0.5 x)), 5-7 the state: GRU n = tanh(gi_n + r * gh_n),
 * h' = (1 - z) * n + z * h; LSTM c' = f * c + i * g, h' = o * tanh(c'). */
RNC_FA void small_stage(const rnc_cell_args *a, uint32_t kind, const int G, const int k, small_epi *e, float sh,
                        float *h, float *c, float *y)
{
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const uint32_t Hp = a->Hp, u = e->u;
    const __mmask16 msk = e->msk;
    const int nt = kind == RNC_LSTM ? 4 : kind == RNC_GRU ? 2 : 1; /* gate tanh chains */
    if (k == 0) {
#pragma GCC unroll 4
        for (int m = 0; m < G; ++m) {
            const size_t r = (size_t)m * Hp + u;
            const __m512 gh = fused_dequant(e->acc[m], sh, a->s_hh + r, a->b_hh + r);
            const __m512 gi = _mm512_maskz_loadu_ps(msk, e->gi + m * e->ldg);
            if (kind == RNC_GRU && m == 2) {
                e->gh2 = gh;
                e->v[2] = gi;
            } else if (kind == RNC_RNN_RELU) {
                const __m512 hn = rnc_x86_relu16(_mm512_add_ps(gi, gh));
                _mm512_mask_storeu_ps(h + u, msk, hn);
                if (y) _mm512_mask_storeu_ps(y + u, msk, hn);
            } else if (kind == RNC_RNN_TANH || (kind == RNC_LSTM && m == 2)) {
                e->v[m] = _mm512_add_ps(gi, gh);
            } else {
                e->v[m] = _mm512_mul_ps(half, _mm512_add_ps(gi, gh)); /* sigmoid: tanh(0.5 x) */
            }
        }
        return;
    }
    if (kind == RNC_RNN_RELU) return;
    if (k == 1) {
#pragma GCC unroll 4
        for (int m = 0; m < nt; ++m) th_0(&e->t[m], e->v[m]);
    } else if (k == 2) {
#pragma GCC unroll 4
        for (int m = 0; m < nt; ++m) th_1(&e->t[m]);
    } else if (k == 3) {
#pragma GCC unroll 4
        for (int m = 0; m < nt; ++m) th_2(&e->t[m]);
    } else if (k == 4) {
        if (kind == RNC_RNN_TANH) {
            const __m512 hn = th_3(&e->t[0]);
            _mm512_mask_storeu_ps(h + u, msk, hn);
            if (y) _mm512_mask_storeu_ps(y + u, msk, hn);
            return;
        }
        __m512 g[4];
#pragma GCC unroll 4
        for (int m = 0; m < nt; ++m) {
            const __m512 t = th_3(&e->t[m]);
            g[m] = (kind == RNC_LSTM && m == 2) ? t : _mm512_add_ps(half, _mm512_mul_ps(half, t));
        }
        if (kind == RNC_GRU) { /* r = g[0], z = g[1] */
            e->v[1] = g[1];
            th_0(&e->t[0], _mm512_add_ps(e->v[2], _mm512_mul_ps(g[0], e->gh2)));
        } else { /* i, f, g, o */
#pragma GCC unroll 4
            for (int m = 0; m < 4; ++m) e->v[m] = g[m];
        }
    } else if (kind == RNC_RNN_TANH) {
        return;
    } else if (k == 5) {
        if (kind == RNC_GRU) {
            th_1(&e->t[0]);
        } else {
            const __m512 c2 = _mm512_add_ps(_mm512_mul_ps(e->v[1], _mm512_maskz_loadu_ps(msk, c + u)),
                                            _mm512_mul_ps(e->v[0], e->v[2]));
            _mm512_mask_storeu_ps(c + u, msk, c2);
            th_0(&e->t[0], c2);
        }
    } else if (k == 6) {
        if (kind == RNC_GRU) {
            th_2(&e->t[0]);
        } else {
            th_1(&e->t[0]);
            th_2(&e->t[0]);
        }
    } else {
        const __m512 t = th_3(&e->t[0]);
        __m512 hn;
        if (kind == RNC_GRU)
            hn = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, e->v[1]), t),
                               _mm512_mul_ps(e->v[1], _mm512_maskz_loadu_ps(msk, h + u)));
        else
            hn = _mm512_mul_ps(e->v[3], t);
        _mm512_mask_storeu_ps(h + u, msk, hn);
        if (y) _mm512_mask_storeu_ps(y + u, msk, hn);
    }
}

/* Unit block j of a row: its W_hh row-block pointers, zeroed accumulators, and in step mode its
 * input part W_ih x scaled and biased into gbuf (rnc_q8_dequant). */
RNC_FA void small_begin(const rnc_cell_args *a, const int G, const int seq, const int sums, uint32_t u,
                        const int8_t *xq, float sx, int gx, int gh, const int8_t **Wh, __m512i *acc, float *gbuf)
{
    const uint32_t Hp = a->Hp;
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m) {
        Wh[m] = (const int8_t *)a->w_hh + (((size_t)m * Hp + u) / 16) * (size_t)gh * 64;
        acc[m] = sums ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_slli_epi32(_mm512_loadu_si512((const void *)(a->hh_sums + (size_t)m * Hp + u)), 7))
                      : _mm512_setzero_si512();
    }
    if (seq) return;
    const int8_t *Wi[4];
    __m512i ai[4];
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m) {
        Wi[m] = (const int8_t *)a->w_ih + (((size_t)m * Hp + u) / 16) * (size_t)gx * 64;
        ai[m] = _mm512_setzero_si512();
    }
    small_acc(Wi, 0, gx, xq, ai, G);
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m) {
        const size_t r = (size_t)m * Hp + u;
        _mm512_store_ps(gbuf + 16 * m, fused_dequant(ai[m], sx, a->s_ih + r, a->b_ih + r));
    }
}

/* Block u's accumulators go in flight (its update runs during the next block's products). */
RNC_FA void small_launch(const rnc_cell_args *a, const int G, const int seq, uint32_t b, uint32_t u,
                         const __m512i *acc, const float *gbuf, small_epi *e)
{
    const uint32_t H = a->H;
#pragma GCC unroll 4
    for (int m = 0; m < G; ++m) e->acc[m] = acc[m];
    e->u = u;
    e->msk = H - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - u)) - 1u);
    e->gi = seq ? a->gi + b * a->ldgi + u : gbuf;
    e->ldg = seq ? a->Hp : 16;
}

/* One row: unit blocks 0 .. nb-1, the update of block j - 1 interleaved with the products of j. */
RNC_FA void small_row(const rnc_cell_args *a, uint32_t kind, const int G, const int seq, const int sums, uint32_t b,
                      const int8_t *hq, float sh, int gx, int gh)
{
    const uint32_t H = a->H, nb = (H + 15) / 16;
    float *h = a->h + (size_t)b * H, *c = a->c ? a->c + (size_t)b * H : NULL;
    float *y = a->y ? a->y + b * a->ldy : NULL;
    const int8_t *xq = seq ? NULL : a->xq + b * a->ldxq;
    const float sx = seq ? 0.0f : a->sx[b];
    float gbuf[2][4 * 16] __attribute__((aligned(64))); /* step mode: blocks j - 1 and j */
    small_epi e;
    const int8_t *Wh[4];
    __m512i acc[4];
    small_begin(a, G, seq, sums, 0, xq, sx, gx, gh, Wh, acc, gbuf[0]);
    small_acc_hh(Wh, 0, gh, hq, acc, G, sums);
    small_launch(a, G, seq, b, 0, acc, gbuf[0], &e);
    for (uint32_t j = 1; j < nb; ++j) {
        small_begin(a, G, seq, sums, 16 * j, xq, sx, gx, gh, Wh, acc, gbuf[j & 1]);
#pragma GCC unroll 8
        for (int k = 0; k < RNC_STAGES; ++k) {
            small_acc_hh(Wh, gh * k / RNC_STAGES, gh * (k + 1) / RNC_STAGES, hq, acc, G, sums);
            small_stage(a, kind, G, k, &e, sh, h, c, y);
        }
        small_launch(a, G, seq, b, 16 * j, acc, gbuf[j & 1], &e);
    }
#pragma GCC unroll 8
    for (int k = 0; k < RNC_STAGES; ++k) small_stage(a, kind, G, k, &e, sh, h, c, y);
}

/* ------------------------------------------------------------------------------------------
 * Step mode at one row and H <= 64 (NBK <= 4 unit blocks): every block's products first, then
 * every block's update, instead of the pipeline above.
 *
 * Why: at small H the products of one block are short chains of dependent vpdpbusd (G
 * accumulators, their latency per input group) and the last block's update (~140 cycles of one
 * dependent float chain at GRU) runs alone after them. Here W_ih's G x NBK row blocks run as
 * G x NBK independent accumulator chains over x (then scaled and biased into pre, as
 * small_begin), W_hh's likewise over h (their accumulators stay in registers into the update),
 * and the NBK updates go stage by stage across the blocks, so that their chains are in flight
 * together. Same integers (exact int32 sums, any order), each lane's float32 operations those of
 * small_stage (rnc_q8_dequant + rnc_x86_unit16_v) on the same operands in the same order:
 * bit-identical outputs.
 * ---------------------------------------------------------------------------------------- */
/* a[i] += sum over groups of dpbusd(|q_g|, sign(q_g) * W[i]_g), M chains (small_acc, unrolled) */
RNC_FA void tiny_acc(const int8_t *const *W, int ng, const int8_t *q, __m512i *a, const int M)
{
    const __m512i zero = _mm512_setzero_si512();
    for (int g = 0; g < ng; ++g) {
        int32_t v;
        memcpy(&v, q + 4 * g, 4);
        const __m512i xb = _mm512_set1_epi32(v);
        const __mmask64 neg = _mm512_movepi8_mask(xb);
        const __m512i xa = _mm512_abs_epi8(xb);
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) {
            __m512i w = _mm512_loadu_si512((const void *)(W[i] + (size_t)g * 64));
            w = _mm512_mask_sub_epi8(w, neg, zero, w);
            a[i] = _mm512_dpbusd_epi32(a[i], xa, w);
        }
    }
    /* as fused_acc_body: without it GCC copied accumulators between registers every group */
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) __asm__("" : "+v"(a[i]));
}

/* a[i] += sum over groups of dpbusd(q_g ^ 0x80, W[i]_g), M chains (small_acc_off, unrolled) */
RNC_FA void tiny_acc_off(const int8_t *const *W, int ng, const int8_t *q, __m512i *a, const int M)
{
    for (int g = 0; g < ng; ++g) {
        const __m512i xu = fused_bcast(q, g);
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i)
            a[i] = _mm512_dpbusd_epi32(a[i], xu, _mm512_loadu_si512((const void *)(W[i] + (size_t)g * 64)));
    }
    /* as fused_acc_body: without it GCC copied accumulators between registers every group */
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) __asm__("" : "+v"(a[i]));
}

RNC_FA void tiny_row(const rnc_cell_args *a, uint32_t kind, const int G, const int sums, const int NBK,
                     const int8_t *hq, float sh)
{
    const uint32_t H = a->H, Hp = a->Hp;
    const int gx = (int)(RNC_ALIGN_UP((size_t)a->I, 4) / 4), gh = (int)(RNC_ALIGN_UP((size_t)H, 4) / 4);
    float *h = a->h, *c = a->c, *y = a->y;
    float pre[4][4 * 16] __attribute__((aligned(64))); /* block j's input parts, gate m at 16 m */
    {
        const int8_t *W[16];
        __m512i acc[16];
#pragma GCC unroll 16
        for (int i = 0; i < G * NBK; ++i) {
            W[i] = (const int8_t *)a->w_ih + (((size_t)(i % G) * Hp + 16u * (uint32_t)(i / G)) / 16) * (size_t)gx * 64;
            acc[i] = _mm512_setzero_si512();
        }
        tiny_acc(W, gx, a->xq, acc, G * NBK);
#pragma GCC unroll 16
        for (int i = 0; i < G * NBK; ++i) {
            const size_t r = (size_t)(i % G) * Hp + 16u * (uint32_t)(i / G);
            _mm512_store_ps(pre[i / G] + 16 * (i % G), fused_dequant(acc[i], a->sx[0], a->s_ih + r, a->b_ih + r));
        }
    }
    small_epi e[4];
    {
        const int8_t *W[16];
        __m512i acc[16];
#pragma GCC unroll 16
        for (int i = 0; i < G * NBK; ++i) {
            const size_t r = (size_t)(i % G) * Hp + 16u * (uint32_t)(i / G);
            W[i] = (const int8_t *)a->w_hh + (r / 16) * (size_t)gh * 64;
            acc[i] = sums ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                             _mm512_slli_epi32(_mm512_loadu_si512((const void *)(a->hh_sums + r)), 7))
                          : _mm512_setzero_si512();
        }
        if (sums) tiny_acc_off(W, gh, hq, acc, G * NBK);
        else tiny_acc(W, gh, hq, acc, G * NBK);
#pragma GCC unroll 4
        for (int j = 0; j < NBK; ++j) {
            const uint32_t u = 16u * (uint32_t)j;
#pragma GCC unroll 4
            for (int m = 0; m < G; ++m) e[j].acc[m] = acc[j * G + m];
            e[j].u = u;
            e[j].msk = H - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - u)) - 1u);
            e[j].gi = pre[j];
            e[j].ldg = 16;
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < RNC_STAGES; ++k)
#pragma GCC unroll 4
        for (int j = 0; j < NBK; ++j) small_stage(a, kind, G, k, &e[j], sh, h, c, y);
}

/* the b1 rows take tiny_step for one active row of H <= 64 */
static int tiny_ok(const rnc_cell_args *a)
{
    return a->batch == 1 && a->H <= 64 && !(a->active && !a->active[0]);
}

/* one row, H <= 64: tiny_row with its block count as a constant */
RNC_FA void tiny_step(const rnc_cell_args *a, uint32_t kind, const int G, const int sums)
{
    const uint32_t H = a->H;
    const size_t kh = RNC_ALIGN_UP((size_t)H, 4);
    const rnc_cell_work wl = rnc__cell_work(a->G, H, 1);
    unsigned char *w = (unsigned char *)a->work;
    int8_t *hq = (int8_t *)(w + wl.hq);
    float sh;
    rnc_x86_quantize_row_avx512(a->h, H, kh, a->h_scale, a->h_inv, hq, &sh);
    switch ((H + 15) / 16) {
    case 1: tiny_row(a, kind, G, sums, 1, hq, sh); break;
    case 2: tiny_row(a, kind, G, sums, 2, hq, sh); break;
    case 3: tiny_row(a, kind, G, sums, 3, hq, sh); break;
    default: tiny_row(a, kind, G, sums, 4, hq, sh); break;
    }
}

/* seq: the input part is given as float pre-activations (run's whole-sequence mode) */
RNC_FA void small_step_mode(const rnc_cell_args *a, uint32_t kind, const int G, const int seq, const int sums)
{
    const uint32_t B = a->batch, H = a->H;
    const size_t kh = RNC_ALIGN_UP((size_t)H, 4), kx = RNC_ALIGN_UP((size_t)a->I, 4);
    const rnc_cell_work wl = rnc__cell_work(a->G, H, B);
    unsigned char *w = (unsigned char *)a->work;
    int8_t *hq = (int8_t *)(w + wl.hq);
    float *sh = (float *)(w + wl.sh);
    for (uint32_t b = 0; b < B; ++b) /* every row's h is quantised before any row is updated */
        rnc_x86_quantize_row_avx512(a->h + (size_t)b * H, H, kh, a->h_scale, a->h_inv, hq + b * kh, &sh[b]);
    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        small_row(a, kind, G, seq, sums, b, hq + b * kh, sh[b], (int)(kx / 4), (int)(kh / 4));
    }
}

/* Whole-sequence mode (gi given): rows one after the other, each streaming W_hh (measured on Zen 4,
 * T = 100, LSTM H = 256: batch 2 860 -> 785 us, batch 3 1255 -> 1178 us against the template).
 * Step mode only at batch 1: from 2 rows the template's W_ih product shares each weight load
 * across the rows, which this path does not (batch 3, LSTM H = 256: 15.9 -> 16.4 us a step). */
/* ------------------------------------------------------------------------------------------
 * Whole-sequence mode at batch 2-3 with W_hh's kernel sums given (the multi rows; the writer
 * stores them in the file): each weight vector loaded once for all rows, the offset trick (the
 * accumulators start at -128 * sums (|sums| <= 127 * 131072, so the product fits int32);
 * dpbusd(q ^ 0x80, W) per row: exact int32), then each row's cell update of
 * the block (rnc_q8_dequant + rnc_x86_unit16_v, as the template: bit-identical).
 * ---------------------------------------------------------------------------------------- */
RNC_FA void multi_acc(const int8_t *const *W, int ng, const int8_t *const *qx, __m512i *a, const int G, const int NB)
{
    for (int g = 0; g < ng; ++g) {
        __m512i xu[3];
#pragma GCC unroll 3
        for (int n = 0; n < NB; ++n) {
            int32_t v;
            memcpy(&v, qx[n] + 4 * g, 4);
            xu[n] = _mm512_set1_epi32(v);
        }
#pragma GCC unroll 4
        for (int m = 0; m < G; ++m) {
            const __m512i w = _mm512_loadu_si512((const void *)(W[m] + (size_t)g * 64));
#pragma GCC unroll 3
            for (int n = 0; n < NB; ++n) a[m * NB + n] = _mm512_dpbusd_epi32(a[m * NB + n], xu[n], w);
        }
    }
}

RNC_FA void multi_step(const rnc_cell_args *a, uint32_t kind, const int G, const int NB, const int32_t *sums)
{
    const uint32_t H = a->H, Hp = a->Hp;
    const size_t kh = RNC_ALIGN_UP((size_t)H, 4);
    const int gh = (int)(kh / 4);
    const rnc_cell_work wl = rnc__cell_work(a->G, H, a->batch);
    unsigned char *w = (unsigned char *)a->work;
    int8_t *hq = (int8_t *)(w + wl.hq);
    float *sh = (float *)(w + wl.sh);
    const int8_t *qx[3];
    for (int n = 0; n < NB; ++n) { /* every row's h is quantised before any row is updated */
        rnc_x86_quantize_row_avx512(a->h + (size_t)n * H, H, kh, a->h_scale, a->h_inv, hq + n * kh, &sh[n]);
        qx[n] = hq + n * kh;
    }
    /* q ^ 0x80 = q + 128 as an unsigned byte (the zero padding becomes 0x80, against zero weights) */
    for (size_t i = 0; i < (size_t)NB * kh; i += 64) {
        const size_t left = (size_t)NB * kh - i;
        const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        _mm512_mask_storeu_epi8(hq + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, hq + i), _mm512_set1_epi8((char)0x80)));
    }
    for (uint32_t u = 0; u < H; u += 16) {
        const __mmask16 msk = H - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - u)) - 1u);
        const int8_t *W[4];
        __m512i acc[12];
#pragma GCC unroll 4
        for (int m = 0; m < G; ++m) {
            W[m] = (const int8_t *)a->w_hh + (((size_t)m * Hp + u) / 16) * (size_t)gh * 64;
            const __m512i s = _mm512_loadu_si512((const void *)(sums + (size_t)m * Hp + u));
            const __m512i c0 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, 7));
#pragma GCC unroll 3
            for (int n = 0; n < NB; ++n) acc[m * NB + n] = c0;
        }
        multi_acc(W, gh, qx, acc, G, NB);
        for (int n = 0; n < NB; ++n) {
            if (a->active && !a->active[n]) continue;
            const float *gi = a->gi + n * a->ldgi;
            __m512 vi[4], vh[4];
#pragma GCC unroll 4
            for (int m = 0; m < G; ++m) {
                const size_t r = (size_t)m * Hp + u;
                vi[m] = _mm512_maskz_loadu_ps(msk, gi + r);
                vh[m] = fused_dequant(acc[m * NB + n], sh[n], a->s_hh + r, a->b_hh + r);
            }
            rnc_x86_unit16_v(kind, u, msk, vi, vh, a->h + (size_t)n * H, a->c ? a->c + (size_t)n * H : NULL,
                             a->y ? a->y + n * a->ldy : NULL);
        }
    }
}

/* The strategies as kernel-table rows (kernel_list.h: which batches, inputs and GRU forms each
 * serves; the plan calls a row only there, as do the tests). Each is bit-identical to the
 * template (exact int32 sums, the same float32 epilogue). The b1 rows call tiny_step out of line
 * (rnc_vnni_tiny_*): inlined beside small_step_mode's pipeline, its arrays and four block counts
 * slow the H >= 128 path (docs/performance.md, "Where the LSTM gap came from"). */
#define RNC_VNNI_STRATEGIES(storage, cell, KIND, G, NB)                                           \
    storage void rnc_q8_##cell##_step_multi_avx512vnni(const rnc_cell_args *a)                    \
    {                                                                                             \
        if (a->batch == 2) multi_step(a, KIND, G, 2, a->hh_sums);                                 \
        else multi_step(a, KIND, G, 3, a->hh_sums);                                               \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_small_avx512vnni(const rnc_cell_args *a)                    \
    {                                                                                             \
        small_step_mode(a, KIND, G, 1, 0);                                                        \
    }                                                                                             \
    static __attribute__((noinline)) void rnc_vnni_tiny_##cell(const rnc_cell_args *a)            \
    {                                                                                             \
        tiny_step(a, KIND, G, 0);                                                                 \
    }                                                                                             \
    static __attribute__((noinline)) void rnc_vnni_tiny_sums_##cell(const rnc_cell_args *a)       \
    {                                                                                             \
        tiny_step(a, KIND, G, 1);                                                                 \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_b1_avx512vnni(const rnc_cell_args *a)                       \
    {                                                                                             \
        if (tiny_ok(a)) rnc_vnni_tiny_##cell(a);                                                  \
        else small_step_mode(a, KIND, G, 0, 0);                                                   \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_b1_sums_avx512vnni(const rnc_cell_args *a)                  \
    {                                                                                             \
        if (tiny_ok(a)) rnc_vnni_tiny_sums_##cell(a);                                             \
        else small_step_mode(a, KIND, G, 0, 1);                                                   \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_fused_sums_avx512vnni(const rnc_cell_args *a)               \
    {                                                                                             \
        fused_step(a, KIND, G, NB, a->hh_sums);                                                   \
    }                                                                                             \
    storage void rnc_q8_##cell##_step_fused_avx512vnni(const rnc_cell_args *a)                    \
    {                                                                                             \
        fused_step(a, KIND, G, NB, NULL);                                                         \
    }
RNC_VNNI_STRATEGIES(, gru, RNC_GRU, 3, RNC_NB_GRU)
RNC_VNNI_STRATEGIES(, lstm, RNC_LSTM, 4, RNC_NB_LSTM)
/* RNN: tanh and relu share the row; each kind gets its own inlined body */
RNC_VNNI_STRATEGIES(static, rnn_tanh, RNC_RNN_TANH, 1, RNC_NB_RNN)
RNC_VNNI_STRATEGIES(static, rnn_relu, RNC_RNN_RELU, 1, RNC_NB_RNN)
#define RNC_VNNI_RNN(strategy)                                                                    \
    void rnc_q8_rnn_step_##strategy##_avx512vnni(const rnc_cell_args *a)                          \
    {                                                                                             \
        if (a->kind == RNC_RNN_RELU) rnc_q8_rnn_relu_step_##strategy##_avx512vnni(a);             \
        else rnc_q8_rnn_tanh_step_##strategy##_avx512vnni(a);                                     \
    }
RNC_VNNI_RNN(multi)
RNC_VNNI_RNN(small)
RNC_VNNI_RNN(b1)
RNC_VNNI_RNN(b1_sums)
RNC_VNNI_RNN(fused_sums)
RNC_VNNI_RNN(fused)

#else
/* Built without AVX-512 VNNI (only the emulated-AMX test build's headers reach here): the
 * strategies' names as the template. */
#define RNC_VNNI_AS_TEMPLATE(cell)                                                                \
    void rnc_q8_##cell##_step_multi_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); } \
    void rnc_q8_##cell##_step_small_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); } \
    void rnc_q8_##cell##_step_b1_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); }    \
    void rnc_q8_##cell##_step_b1_sums_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); } \
    void rnc_q8_##cell##_step_fused_sums_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); } \
    void rnc_q8_##cell##_step_fused_avx512vnni(const rnc_cell_args *a) { rnc_q8_##cell##_step_avx512vnni(a); }
RNC_VNNI_AS_TEMPLATE(rnn)
RNC_VNNI_AS_TEMPLATE(gru)
RNC_VNNI_AS_TEMPLATE(lstm)
#endif
