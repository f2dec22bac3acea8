/* The fused cell step kernels, written once and compiled per ISA: an ISA file defines RNC_SFX
 * (generic, avx2, ...), provides rnc_q8_gemm_<sfx> and rnc_f32_gemm_<sfx>, and includes this
 * file, which defines rnc_{q8,f32}_{rnn,gru,lstm}_step_<sfx>. The float epilogue below is plain
 * C compiled with that file's flags (vectorised by the compiler); without FP contraction it
 * gives the same float32 results on every ISA, so q8 outputs agree exactly across ISAs whenever
 * the int32 accumulators do (they always do: they are exact).
 *
 * One call = one step of one direction of one layer for the whole batch:
 *   1. q8: quantise each row of h (and, in step mode, the input was quantised by the caller);
 *   2. the products W_ih x (skipped when gi is given: whole-sequence mode) and W_hh h for all
 *      rows of the batch, each one GEMM over all G gates (G*Hp rows: many 16-row blocks);
 *   3. per row: epilogue acc * (s_v * s_w) + b (q8) or acc + b (f32), the cell, the state.
 */
#include <string.h>

#include "../internal.h"
#include "activations.h"

#ifndef RNC_SFX
#error "define RNC_SFX before including cell_template.h"
#endif

#define RNC_CAT_(a, b) a##b
#define RNC_CAT(a, b) RNC_CAT_(a, b)
/* RNC_Q4 (q4_<isa>.c): the quantised cells take int4 weights (rnc_q4_gemm_<sfx>, packed rows of
 * round8(K) / 2 bytes) and are named rnc_q4_<cell>_step_<sfx>; no f32 cells are defined. */
#ifdef RNC_Q4
#define RNC_QPFX rnc_q4_
#define RNC_WROW_BYTES(k) (RNC_ALIGN_UP((size_t)(k), 8) / 2)
#else
#define RNC_QPFX rnc_q8_
#define RNC_WROW_BYTES(k) RNC_ALIGN_UP((size_t)(k), 4)
#endif
#define RNC_GEMM_Q8 RNC_CAT(RNC_CAT(RNC_QPFX, gemm_), RNC_SFX)
#define RNC_GEMM_F32 RNC_CAT(rnc_f32_gemm_, RNC_SFX)
/* Hooks: an ISA file may supply its own (bit-identical) cell update and activation quantiser,
 * with the signatures of rnc_cell_update_<sfx> below and of rnc_q8_quantize_generic; and optionally
 * RNC_Q8_UPDATE, the q8 dequantisation fused with the cell update (all cells but GRU
 * reset_after=0): (kind, H, Hp, acc_i or NULL, s_x, s_ih, b_ih, gi (when acc_i is NULL), acc_h,
 * s_h, s_hh, b_hh, h, c, y), bit-identical to rnc_q8_dequant_<sfx> + the cell update. */
#ifndef RNC_CELL_UPDATE
#define RNC_CELL_UPDATE RNC_CAT(rnc_cell_update_, RNC_SFX)
#endif
#ifndef RNC_QUANTIZE_ROW
#define RNC_QUANTIZE_ROW rnc_q8_quantize_generic
#endif

/* The cell given float pre-activations gi (input part incl. b_ih) and gh (recurrent part incl.
 * b_hh), each G*Hp (gate g unit u at g*Hp + u). GRU reset_after=0 is handled by the caller. */
static inline void RNC_CAT(rnc_cell_update_, RNC_SFX)(uint32_t kind, uint32_t H, uint32_t Hp,
                                                     const float *restrict gi,
                                                     const float *restrict gh, float *restrict h,
                                                     float *restrict c, float *restrict y)
{
    uint32_t u;
    switch (kind) {
    case RNC_RNN_TANH:
        for (u = 0; u < H; ++u) h[u] = rnc_tanhf(gi[u] + gh[u]);
        break;
    case RNC_RNN_RELU:
        for (u = 0; u < H; ++u) h[u] = rnc_reluf(gi[u] + gh[u]);
        break;
    case RNC_GRU:
        for (u = 0; u < H; ++u) {
            const float r = rnc_sigmoidf(gi[u] + gh[u]);
            const float z = rnc_sigmoidf(gi[Hp + u] + gh[Hp + u]);
            const float n = rnc_tanhf(gi[2 * Hp + u] + r * gh[2 * Hp + u]);
            h[u] = (1.0f - z) * n + z * h[u];
        }
        break;
    default: /* RNC_LSTM */
        for (u = 0; u < H; ++u) {
            const float i = rnc_sigmoidf(gi[u] + gh[u]);
            const float f = rnc_sigmoidf(gi[Hp + u] + gh[Hp + u]);
            const float g = rnc_tanhf(gi[2 * Hp + u] + gh[2 * Hp + u]);
            const float o = rnc_sigmoidf(gi[3 * Hp + u] + gh[3 * Hp + u]);
            const float c2 = f * c[u] + i * g;
            c[u] = c2;
            h[u] = o * rnc_tanhf(c2);
        }
        break;
    }
    if (y) memcpy(y, h, sizeof(float) * H);
}

/* GRU reset_after=0, first half: r into rh as r*h, z kept in zs. */
static inline void RNC_CAT(rnc_gru_rb_gates_, RNC_SFX)(uint32_t H, uint32_t Hp,
                                                      const float *restrict gi,
                                                      const float *restrict gh,
                                                      const float *restrict h,
                                                      float *restrict rh)
{
    (void)Hp;
    for (uint32_t u = 0; u < H; ++u) rh[u] = rnc_sigmoidf(gi[u] + gh[u]) * h[u];
}

/* GRU reset_after=0, second half: ghn = the n-gate recurrent term (from r*h). */
static inline void RNC_CAT(rnc_gru_rb_update_, RNC_SFX)(uint32_t H, uint32_t Hp,
                                                       const float *restrict gi,
                                                       const float *restrict gh,
                                                       const float *restrict ghn,
                                                       float *restrict h, float *restrict y)
{
    for (uint32_t u = 0; u < H; ++u) {
        const float z = rnc_sigmoidf(gi[Hp + u] + gh[Hp + u]);
        const float n = rnc_tanhf(gi[2 * Hp + u] + ghn[u]);
        h[u] = (1.0f - z) * n + z * h[u];
    }
    if (y) memcpy(y, h, sizeof(float) * H);
}

/* -------------------------------------------------------------------------------- q8 */
static inline void RNC_CAT(rnc_q8_dequant_, RNC_SFX)(uint32_t n, const int32_t *restrict acc,
                                                    float sv, const float *restrict sw,
                                                    const float *restrict b, float *restrict out)
{
    for (uint32_t r = 0; r < n; ++r) out[r] = (float)acc[r] * (sv * sw[r]) + b[r];
}

static void RNC_CAT(rnc_q8_cell_, RNC_SFX)(const rnc_cell_args *a)
{
    const uint32_t B = a->batch, H = a->H, Hp = a->Hp, G = a->G, I = a->I;
    const size_t ghp = (size_t)G * Hp, kh = RNC_ALIGN_UP((size_t)H, 4);
    const int rb = (a->kind == RNC_GRU && !a->reset_after);
    const rnc_q8_areas ar = rnc__q8_areas(a);
    int32_t *acc_i = ar.acc_i, *acc_h = ar.acc_h, *acc_n = ar.acc_n;
    int8_t *hq = ar.hq, *rq = ar.rq;
    float *sh = ar.sh, *gi_f = ar.gi_f, *gh_f = ar.gh_f, *rh = ar.rh;
    const int8_t *w_hh = (const int8_t *)a->w_hh;

    if (!a->gi)
        RNC_GEMM_Q8((const int8_t *)a->w_ih, (int)ghp, (int)I, (int)B, a->xq, (int)a->ldxq, acc_i,
                    (int)ghp);
    rnc__q8_quantize_h(a, RNC_QUANTIZE_ROW, H, hq, sh);
    RNC_GEMM_Q8(w_hh, (int)(rb ? 2 * (size_t)Hp : ghp), (int)H, (int)B, hq, (int)kh, acc_h,
                (int)ghp);

    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        float *h = a->h + (size_t)b * H;
        float *y = a->y ? a->y + b * a->ldy : NULL;
#ifdef RNC_Q8_UPDATE
        if (!rb) { /* dequantisation fused into the cell update */
            RNC_Q8_UPDATE(a->kind, H, Hp, a->gi ? NULL : acc_i + b * ghp, a->gi ? 0.0f : a->sx[b],
                          a->s_ih, a->b_ih, a->gi ? a->gi + b * a->ldgi : NULL, acc_h + b * ghp,
                          sh[b], a->s_hh, a->b_hh, h, a->c ? a->c + (size_t)b * H : NULL, y);
            continue;
        }
#endif
        const float *gi;
        if (a->gi) {
            gi = a->gi + b * a->ldgi;
        } else {
            RNC_CAT(rnc_q8_dequant_, RNC_SFX)((uint32_t)ghp, acc_i + b * ghp, a->sx[b], a->s_ih,
                                              a->b_ih, gi_f);
            gi = gi_f;
        }
        if (!rb) {
            RNC_CAT(rnc_q8_dequant_, RNC_SFX)((uint32_t)ghp, acc_h + b * ghp, sh[b], a->s_hh,
                                              a->b_hh, gh_f);
            RNC_CELL_UPDATE(a->kind, H, Hp, gi, gh_f, h,
                                               a->c ? a->c + (size_t)b * H : NULL, y);
        } else {
            float srh;
            RNC_CAT(rnc_q8_dequant_, RNC_SFX)(2 * Hp, acc_h + b * ghp, sh[b], a->s_hh, a->b_hh,
                                              gh_f);
            RNC_CAT(rnc_gru_rb_gates_, RNC_SFX)(H, Hp, gi, gh_f, h, rh);
            RNC_QUANTIZE_ROW(rh, H, kh, a->h_scale, a->h_inv, rq, &srh);
            RNC_GEMM_Q8(w_hh + 2 * (size_t)Hp * RNC_WROW_BYTES(H), (int)Hp, (int)H, 1, rq, (int)kh, acc_n,
                        (int)Hp);
            RNC_CAT(rnc_q8_dequant_, RNC_SFX)(Hp, acc_n, srh, a->s_hh + 2 * Hp, a->b_hh + 2 * Hp,
                                              rh);
            RNC_CAT(rnc_gru_rb_update_, RNC_SFX)(H, Hp, gi, gh_f, rh, h, y);
        }
    }
}

#ifndef RNC_Q4
/* ------------------------------------------------------------------------------- f32 */
static inline void RNC_CAT(rnc_f32_addb_, RNC_SFX)(uint32_t n, const float *restrict v,
                                                  const float *restrict b, float *restrict out)
{
    for (uint32_t r = 0; r < n; ++r) out[r] = v[r] + b[r];
}

static void RNC_CAT(rnc_f32_cell_, RNC_SFX)(const rnc_cell_args *a)
{
    const uint32_t B = a->batch, H = a->H, Hp = a->Hp, G = a->G, I = a->I;
    const size_t ghp = (size_t)G * Hp;
    const int rb = (a->kind == RNC_GRU && !a->reset_after);
    const rnc_cell_work wl = rnc__cell_work(G, H, B);
    unsigned char *w = (unsigned char *)a->work;
    float *acc_i = (float *)(w + wl.acc_i), *acc_h = (float *)(w + wl.acc_h);
    float *gi_f = (float *)(w + wl.gi_f), *gh_f = (float *)(w + wl.gh_f);
    float *rh = (float *)(w + wl.rh), *acc_n = (float *)(w + wl.acc_n);
    const float *w_hh = (const float *)a->w_hh;

    if (!a->gi)
        RNC_GEMM_F32((const float *)a->w_ih, (int)ghp, (int)I, (int)B, a->x, (int)a->ldx, acc_i,
                     (int)ghp);
    /* h is read by the product for every row before any row is updated */
    RNC_GEMM_F32(w_hh, (int)(rb ? 2 * (size_t)Hp : ghp), (int)H, (int)B, a->h, (int)H, acc_h,
                 (int)ghp);

    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        const float *gi;
        if (a->gi) {
            gi = a->gi + b * a->ldgi;
        } else {
            RNC_CAT(rnc_f32_addb_, RNC_SFX)((uint32_t)ghp, acc_i + b * ghp, a->b_ih, gi_f);
            gi = gi_f;
        }
        float *h = a->h + (size_t)b * H;
        float *y = a->y ? a->y + b * a->ldy : NULL;
        if (!rb) {
            RNC_CAT(rnc_f32_addb_, RNC_SFX)((uint32_t)ghp, acc_h + b * ghp, a->b_hh, gh_f);
            RNC_CELL_UPDATE(a->kind, H, Hp, gi, gh_f, h,
                                               a->c ? a->c + (size_t)b * H : NULL, y);
        } else {
            RNC_CAT(rnc_f32_addb_, RNC_SFX)(2 * Hp, acc_h + b * ghp, a->b_hh, gh_f);
            RNC_CAT(rnc_gru_rb_gates_, RNC_SFX)(H, Hp, gi, gh_f, h, rh);
            RNC_GEMM_F32(w_hh + 2 * (size_t)Hp * H, (int)Hp, (int)H, 1, rh, (int)H, acc_n, (int)Hp);
            RNC_CAT(rnc_f32_addb_, RNC_SFX)(Hp, acc_n, a->b_hh + 2 * Hp, rh);
            RNC_CAT(rnc_gru_rb_update_, RNC_SFX)(H, Hp, gi, gh_f, rh, h, y);
        }
    }
}

#endif

void RNC_CAT(RNC_CAT(RNC_QPFX, rnn_step_), RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_q8_cell_, RNC_SFX)(a); }
void RNC_CAT(RNC_CAT(RNC_QPFX, gru_step_), RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_q8_cell_, RNC_SFX)(a); }
void RNC_CAT(RNC_CAT(RNC_QPFX, lstm_step_), RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_q8_cell_, RNC_SFX)(a); }
#ifndef RNC_Q4
void RNC_CAT(rnc_f32_rnn_step_, RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_f32_cell_, RNC_SFX)(a); }
void RNC_CAT(rnc_f32_gru_step_, RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_f32_cell_, RNC_SFX)(a); }
void RNC_CAT(rnc_f32_lstm_step_, RNC_SFX)(const rnc_cell_args *a) { RNC_CAT(rnc_f32_cell_, RNC_SFX)(a); }
#endif
