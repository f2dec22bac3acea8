/* The cell with options (ONNX RNN/GRU/LSTM attributes: activations with alpha/beta, clip,
 * peepholes, input_forget), f32 and q8, for layers whose record carries a cellopt
 * (docs/rnc-format.md, "Cell options"). Portable C: the products are the plan's table rows (passed
 * in rnc_cell_variant), the cell update is written here once. The default cells never come here:
 * their fused rows (cell_template.h) are untouched.
 *
 * The equations and the float32 operation order are the quantised reference's
 * (rnncore/quant/reference.py, _variant_update), which the q8 path equals bit for bit:
 *
 *   clip(v) = min(max(v, -clip), clip) with the clip flag, else v
 *   RNN   h' = f(clip(gi + gh))
 *   GRU   r = f(clip(gi_r + gh_r)), z = f(clip(gi_z + gh_z))
 *         n = g(clip(gi_n + r * gh_n))           (reset_after; else gh_n from W_hn q(r h))
 *         h' = (1 - z) * n + z * h
 *   LSTM  i = f(clip((gi_i + gh_i) + p_i * c)),  f = 1 - i (input_forget) or f(clip((gi_f + gh_f) + p_f * c))
 *         g = g(clip(gi_g + gh_g)),  c' = f * c + i * g
 *         o = f(clip((gi_o + gh_o) + p_o * c')), h' = o * h(c')
 *         proj_size P: m = o * h(c'), h' = W_hr m (q8: W_hr q(m) * (s_m * s_hr) + 0, m's scale
 *         dynamic); h and W_hh's inputs are then P wide
 * (without peepholes the "+ p * c" terms are absent, not added as zeros).
 *
 * Layer norm (RNC_CELLOPT_LAYER_NORM; GRU reset_after = 1 and LSTM, none of clip, peepholes,
 * input_forget): gi and gh (their biases zero) are replaced by LN(gi; ln_ih) and LN(gh; ln_hh)
 * before the update above, and the LSTM's h(c') is h(LN(c'; ln_c)). LN over n values v, per gate
 * (n = H) or over all gates (n = G*H), in float32 (layer_norm below):
 *   s_j = sum of v_k over the k with k % 8 = j (each gate's units k = 0..H-1, gates in order),
 *         added in that order from 0;  sum = ((s_0 + s_1) + s_2) + ... + s_7
 *   mu = sum(v) / n,  var = sum((v - mu) * (v - mu)) / n (the same lanes),  r = 1 / sqrtf(var + eps)
 *   LN(v)_k = ((v_k - mu) * r) * gain_k + shift_k
 */
#include <math.h>
#include <string.h>

#include "../internal.h"
#include "../rnc_layout.h"
#include "activations.h"

static float act(uint8_t code, float al, float be, float x)
{
    float t;
    switch (code) {
    case RNC_CELLACT_SIGMOID: return rnc_sigmoidf(x);
    case RNC_CELLACT_TANH: return rnc_tanhf(x);
    case RNC_CELLACT_RELU: return rnc_reluf(x);
    case RNC_CELLACT_HARDSIGMOID:
        t = al * x + be;
        t = t > 0.0f ? t : 0.0f;
        return t < 1.0f ? t : 1.0f;
    case RNC_CELLACT_AFFINE: return al * x + be;
    case RNC_CELLACT_LEAKYRELU: return x >= 0.0f ? x : al * x;
    case RNC_CELLACT_THRESHOLDEDRELU: return x > al ? x : 0.0f;
    case RNC_CELLACT_SCALEDTANH: return al * rnc_tanhf(be * x);
    case RNC_CELLACT_ELU: return x >= 0.0f ? x : al * (expf(x) - 1.0f);
    case RNC_CELLACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    default: /* RNC_CELLACT_SOFTPLUS (the loader admits no other code) */
        return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
    }
}

static float clipf(const rnc_cell_variant *v, float x)
{
    if (!(v->flags & RNC_CELLOPT_CLIP)) return x;
    x = x > -v->clip ? x : -v->clip;
    return x < v->clip ? x : v->clip;
}

#define ACT(k, x) act(v->act[k], v->alpha[k], v->beta[k], (x))

/* x[0..n) = act(clip(x)) in place: one loop per activation (branch-free bodies the compiler
 * vectorises), the same float32 operations as act(clipf(x)) element by element. */
static void act_vec(const rnc_cell_variant *v, uint32_t k, float *x, uint32_t n)
{
    uint32_t i;
    if (v->flags & RNC_CELLOPT_CLIP) {
        const float lo = -v->clip, hi = v->clip;
        for (i = 0; i < n; ++i) {
            float t = x[i] > lo ? x[i] : lo;
            x[i] = t < hi ? t : hi;
        }
    }
    rnc__cellact_vec(v->act[k], v->alpha[k], v->beta[k], x, n);
}

/* x[0..n) = act(x) in place for one RNC_CELLACT_* code (also a pointwise record's leakyrelu and elu) */
void rnc__cellact_vec(uint8_t code, float al, float be, float *x, uint32_t n)
{
    uint32_t i;
    switch (code) {
    case RNC_CELLACT_SIGMOID: for (i = 0; i < n; ++i) x[i] = rnc_sigmoidf(x[i]); break;
    case RNC_CELLACT_TANH: for (i = 0; i < n; ++i) x[i] = rnc_tanhf(x[i]); break;
    case RNC_CELLACT_RELU: for (i = 0; i < n; ++i) x[i] = rnc_reluf(x[i]); break;
    case RNC_CELLACT_HARDSIGMOID:
        for (i = 0; i < n; ++i) {
            float t = al * x[i] + be;
            t = t > 0.0f ? t : 0.0f;
            x[i] = t < 1.0f ? t : 1.0f;
        }
        break;
    case RNC_CELLACT_AFFINE: for (i = 0; i < n; ++i) x[i] = al * x[i] + be; break;
    case RNC_CELLACT_LEAKYRELU: for (i = 0; i < n; ++i) x[i] = x[i] >= 0.0f ? x[i] : al * x[i]; break;
    case RNC_CELLACT_THRESHOLDEDRELU: for (i = 0; i < n; ++i) x[i] = x[i] > al ? x[i] : 0.0f; break;
    case RNC_CELLACT_SCALEDTANH: for (i = 0; i < n; ++i) x[i] = al * rnc_tanhf(be * x[i]); break;
    default: for (i = 0; i < n; ++i) x[i] = act(code, al, be, x[i]); break; /* exp / log1p */
    }
}

/* lane j of s += x[k] for k % 8 = j, k < n (sq: (x[k] - mu)^2 instead) */
static void lane_sums(const float *x, uint32_t n, float mu, int sq, float *s)
{
    uint32_t k = 0, j;
    if (sq) {
        for (; k + 8 <= n; k += 8)
            for (j = 0; j < 8; ++j) {
                const float d = x[k + j] - mu;
                s[j] += d * d;
            }
        for (j = 0; k + j < n; ++j) {
            const float d = x[k + j] - mu;
            s[j] += d * d;
        }
    } else {
        for (; k + 8 <= n; k += 8)
            for (j = 0; j < 8; ++j) s[j] += x[k + j];
        for (j = 0; k + j < n; ++j) s[j] += x[k + j];
    }
}

static float lane_total(const float *s)
{
    float t = s[0];
    for (uint32_t j = 1; j < 8; ++j) t += s[j];
    return t;
}

/* x (G gates of H values at stride Hp) = LN(x) in place, each gate on its own (per_gate) or all
 * together; gb: the G*H gains then the G*H shifts. */
static void layer_norm(float *x, uint32_t G, uint32_t H, uint32_t Hp, uint32_t per_gate,
                       const float *gb, float eps)
{
    const uint32_t nb = per_gate ? 1 : G;
    const float n = (float)(nb * H);
    for (uint32_t g0 = 0; g0 < G; g0 += nb) {
        float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        uint32_t q, u;
        for (q = g0; q < g0 + nb; ++q) lane_sums(x + (size_t)q * Hp, H, 0.0f, 0, s);
        const float mu = lane_total(s) / n;
        memset(s, 0, sizeof s);
        for (q = g0; q < g0 + nb; ++q) lane_sums(x + (size_t)q * Hp, H, mu, 1, s);
        const float r = 1.0f / sqrtf(lane_total(s) / n + eps);
        for (q = g0; q < g0 + nb; ++q) {
            float *v = x + (size_t)q * Hp;
            const float *gain = gb + (size_t)q * H, *shift = gb + (size_t)G * H + (size_t)q * H;
            for (u = 0; u < H; ++u) v[u] = ((v[u] - mu) * r) * gain[u] + shift[u];
        }
    }
}

/* The layer-normalised pre-activations: gh in place, gi into gi_f (a copy unless it is gi_f). */
static const float *ln_pre(const rnc_cell_args *a, const rnc_cell_variant *v, const float *gi,
                           float *gi_f, float *gh)
{
    const size_t ghp = (size_t)a->G * a->Hp;
    if (gi != gi_f) memcpy(gi_f, gi, sizeof(float) * ghp);
    layer_norm(gi_f, a->G, a->H, a->Hp, v->ln_per_gate, v->ln_ih, v->ln_eps);
    layer_norm(gh, a->G, a->H, a->Hp, v->ln_per_gate, v->ln_hh, v->ln_eps);
    return gi_f;
}

/* One row's update given gi and gh (G*Hp, biases included; gh is this row's scratch, overwritten
 * gate by gate); ghn: GRU reset_after = 0's n-gate recurrent term (from r*h), else NULL. LSTM:
 * writes o * h(c') to h (H values: the caller's buffer for m when projecting). */
static void update_row(const rnc_cell_args *a, const rnc_cell_variant *v, const float *gi,
                       float *gh, const float *ghn, float *h, float *c)
{
    const uint32_t H = a->H, Hp = a->Hp;
    uint32_t u;
    switch (a->kind) {
    case RNC_GRU: {
        float *r = gh, *z = gh + Hp, *n = gh + 2 * Hp;
        for (u = 0; u < H; ++u) z[u] = gi[Hp + u] + z[u];
        act_vec(v, 0, z, H);
        if (ghn) {
            for (u = 0; u < H; ++u) n[u] = gi[2 * Hp + u] + ghn[u];
        } else {
            for (u = 0; u < H; ++u) r[u] = gi[u] + r[u];
            act_vec(v, 0, r, H);
            for (u = 0; u < H; ++u) n[u] = gi[2 * Hp + u] + r[u] * n[u];
        }
        act_vec(v, 1, n, H);
        for (u = 0; u < H; ++u) h[u] = (1.0f - z[u]) * n[u] + z[u] * h[u];
        break;
    }
    case RNC_LSTM: {
        const float *p = v->peep;
        float *i = gh, *f = gh + Hp, *g = gh + 2 * Hp, *o = gh + 3 * Hp;
        if (p) {
            for (u = 0; u < H; ++u) i[u] = (gi[u] + i[u]) + p[u] * c[u];
        } else {
            for (u = 0; u < H; ++u) i[u] = gi[u] + i[u];
        }
        act_vec(v, 0, i, H);
        if (v->flags & RNC_CELLOPT_INPUT_FORGET) {
            for (u = 0; u < H; ++u) f[u] = 1.0f - i[u];
        } else {
            if (p) {
                for (u = 0; u < H; ++u) f[u] = (gi[Hp + u] + f[u]) + p[H + u] * c[u];
            } else {
                for (u = 0; u < H; ++u) f[u] = gi[Hp + u] + f[u];
            }
            act_vec(v, 0, f, H);
        }
        for (u = 0; u < H; ++u) g[u] = gi[2 * Hp + u] + g[u];
        act_vec(v, 1, g, H);
        for (u = 0; u < H; ++u) c[u] = f[u] * c[u] + i[u] * g[u];
        if (p) {
            for (u = 0; u < H; ++u) o[u] = (gi[3 * Hp + u] + o[u]) + p[2 * H + u] * c[u];
        } else {
            for (u = 0; u < H; ++u) o[u] = gi[3 * Hp + u] + o[u];
        }
        act_vec(v, 0, o, H);
        /* h(c') without the clip (ONNX clips pre-activations only): into f, then h = o h(c') */
        memcpy(f, c, sizeof(float) * H);
        if (v->ln_c) layer_norm(f, 1, H, H, 1, v->ln_c, v->ln_eps);
        {
            rnc_cell_variant nv = *v;
            nv.flags &= ~RNC_CELLOPT_CLIP;
            act_vec(&nv, 2, f, H);
        }
        for (u = 0; u < H; ++u) h[u] = o[u] * f[u];
        break;
    }
    default: /* RNN */
        for (u = 0; u < H; ++u) gh[u] = gi[u] + gh[u];
        act_vec(v, 0, gh, H);
        memcpy(h, gh, sizeof(float) * H);
        break;
    }
}

static void dequant(uint32_t n, const int32_t *acc, float sv, const float *sw, const float *b, float *out)
{
    for (uint32_t r = 0; r < n; ++r) out[r] = (float)acc[r] * (sv * sw[r]) + b[r];
}

static void addb(uint32_t n, const float *x, const float *b, float *out)
{
    for (uint32_t r = 0; r < n; ++r) out[r] = x[r] + b[r];
}

static void q8_cell(const rnc_cell_args *a, const rnc_cell_variant *v)
{
    const uint32_t B = a->batch, H = a->H, Hp = a->Hp, G = a->G, I = a->I;
    const uint32_t P = a->P, HW = P ? P : H; /* h's width */
    const size_t ghp = (size_t)G * Hp, kh = RNC_ALIGN_UP((size_t)H, 4), khw = RNC_ALIGN_UP((size_t)HW, 4);
    const int rb = a->kind == RNC_GRU && !a->reset_after;
    const rnc_q8_areas ar = rnc__q8_areas(a);
    int32_t *acc_i = ar.acc_i, *acc_h = ar.acc_h, *acc_n = ar.acc_n;
    int8_t *hq = ar.hq, *rq = ar.rq;
    float *sh = ar.sh, *gi_f = ar.gi_f, *gh_f = ar.gh_f, *rh = ar.rh;
    const int8_t *w_hh = (const int8_t *)a->w_hh;

    if (!a->gi)
        v->gemm_q8((const int8_t *)a->w_ih, (int)ghp, (int)I, (int)B, a->xq, (int)a->ldxq, acc_i, (int)ghp);
    rnc__q8_quantize_h(a, v->quantize, HW, hq, sh);
    v->gemm_q8(w_hh, (int)(rb ? 2 * (size_t)Hp : ghp), (int)HW, (int)B, hq, (int)khw, acc_h, (int)ghp);
    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        float *h = a->h + (size_t)b * HW, *c = a->c ? a->c + (size_t)b * H : NULL;
        float *y = a->y ? a->y + b * a->ldy : NULL;
        const float *gi;
        if (a->gi) {
            gi = a->gi + b * a->ldgi;
        } else {
            dequant((uint32_t)ghp, acc_i + b * ghp, a->sx[b], a->s_ih, a->b_ih, gi_f);
            gi = gi_f;
        }
        if (!rb) {
            dequant((uint32_t)ghp, acc_h + b * ghp, sh[b], a->s_hh, a->b_hh, gh_f);
            if (v->ln_ih) gi = ln_pre(a, v, gi, gi_f, gh_f);
            if (P) { /* m = o h(c') into rh, then h = W_hr q(m) */
                float sm;
                update_row(a, v, gi, gh_f, NULL, rh, c);
                v->quantize(rh, H, kh, 0.0f, 0.0f, rq, &sm);
                v->gemm_q8_1((const int8_t *)v->w_hr, (int)P, (int)H, 1, rq, (int)kh, acc_n,
                             (int)RNC_ALIGN_UP((size_t)P, 16));
                for (uint32_t p = 0; p < P; ++p) h[p] = (float)acc_n[p] * (sm * v->s_hr[p]) + 0.0f;
            } else {
                update_row(a, v, gi, gh_f, NULL, h, c);
            }
        } else {
            float srh;
            dequant(2 * Hp, acc_h + b * ghp, sh[b], a->s_hh, a->b_hh, gh_f);
            for (uint32_t u = 0; u < H; ++u) rh[u] = ACT(0, clipf(v, gi[u] + gh_f[u])) * h[u];
            v->quantize(rh, H, kh, a->h_scale, a->h_inv, rq, &srh);
            v->gemm_q8_1(w_hh + 2 * (size_t)Hp * kh, (int)Hp, (int)H, 1, rq, (int)kh, acc_n, (int)Hp);
            dequant(Hp, acc_n, srh, a->s_hh + 2 * Hp, a->b_hh + 2 * Hp, rh);
            update_row(a, v, gi, gh_f, rh, h, c);
        }
        if (y) memcpy(y, h, sizeof(float) * HW);
    }
}

static void f32_cell(const rnc_cell_args *a, const rnc_cell_variant *v)
{
    const uint32_t B = a->batch, H = a->H, Hp = a->Hp, G = a->G, I = a->I;
    const uint32_t P = a->P, HW = P ? P : H; /* h's width */
    const size_t ghp = (size_t)G * Hp;
    const int rb = a->kind == RNC_GRU && !a->reset_after;
    const rnc_cell_work wl = rnc__cell_work(G, H, B);
    unsigned char *w = (unsigned char *)a->work;
    float *acc_i = (float *)(w + wl.acc_i), *acc_h = (float *)(w + wl.acc_h);
    float *gi_f = (float *)(w + wl.gi_f), *gh_f = (float *)(w + wl.gh_f);
    float *rh = (float *)(w + wl.rh), *acc_n = (float *)(w + wl.acc_n);
    const float *w_hh = (const float *)a->w_hh;

    if (!a->gi)
        v->gemm_f32((const float *)a->w_ih, (int)ghp, (int)I, (int)B, a->x, (int)a->ldx, acc_i, (int)ghp);
    /* h is read by the product for every row before any row is updated */
    v->gemm_f32(w_hh, (int)(rb ? 2 * (size_t)Hp : ghp), (int)HW, (int)B, a->h, (int)HW, acc_h, (int)ghp);
    for (uint32_t b = 0; b < B; ++b) {
        if (a->active && !a->active[b]) continue;
        float *h = a->h + (size_t)b * HW, *c = a->c ? a->c + (size_t)b * H : NULL;
        float *y = a->y ? a->y + b * a->ldy : NULL;
        const float *gi;
        if (a->gi) {
            gi = a->gi + b * a->ldgi;
        } else {
            addb((uint32_t)ghp, acc_i + b * ghp, a->b_ih, gi_f);
            gi = gi_f;
        }
        if (!rb) {
            addb((uint32_t)ghp, acc_h + b * ghp, a->b_hh, gh_f);
            if (v->ln_ih) gi = ln_pre(a, v, gi, gi_f, gh_f);
            if (P) { /* m = o h(c') into rh, then h = W_hr m */
                update_row(a, v, gi, gh_f, NULL, rh, c);
                v->gemm_f32_1((const float *)v->w_hr, (int)P, (int)H, 1, rh, (int)H, acc_n,
                              (int)RNC_ALIGN_UP((size_t)P, 16));
                memcpy(h, acc_n, sizeof(float) * P);
            } else {
                update_row(a, v, gi, gh_f, NULL, h, c);
            }
        } else {
            addb(2 * Hp, acc_h + b * ghp, a->b_hh, gh_f);
            for (uint32_t u = 0; u < H; ++u) rh[u] = ACT(0, clipf(v, gi[u] + gh_f[u])) * h[u];
            v->gemm_f32_1(w_hh + 2 * (size_t)Hp * H, (int)Hp, (int)H, 1, rh, (int)H, acc_n, (int)Hp);
            addb(Hp, acc_n, a->b_hh + 2 * Hp, rh);
            update_row(a, v, gi, gh_f, rh, h, c);
        }
        if (y) memcpy(y, h, sizeof(float) * HW);
    }
}

void rnc__cell_variant(const rnc_cell_args *a, const rnc_cell_variant *v)
{
    if (v->q8) q8_cell(a, v);
    else f32_cell(a, v);
}
