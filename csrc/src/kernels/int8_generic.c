/* The fully-integer rows of the kernel table (kernel_list.h, RNC_INT8): the portable integer
 * products and step of csrc/src/int/ -- the same source files the Cortex-M builds compile, included
 * here so that a build with -DRNC_NO_INT leaves them out -- and the executor's helpers around
 * them (internal.h: the cell of a layer, the float <-> integer state conversions). */
#include "../internal.h"

#if !defined(RNC_NO_INT)
#include <math.h>

#include "../int/int_cells.c"
#include "../int/s8_matvec_generic.c"

void rnc_int8_step_generic(const rnc_int8_args *a)
{
    const size_t H = (size_t)a->cell->hidden_size;
    for (uint32_t b = 0; b < a->batch; ++b) {
        if (a->active && !a->active[b]) continue;
        /* cannot fail: the cell was checked at load, the pointers and the scratch by the executor */
        (void)rnc_int_cell_run(a->cell, a->matvec, (const char *)a->x8 + b * a->ldx, a->h8 + b * H,
                               a->s16 ? a->s16 + b * H : NULL, a->scratch, a->scratch_bytes);
    }
}

void rnc__int8_cell(const rnc_layer *L, rnc_int_cell *c)
{
    static const int32_t kinds[RNC_CELL_KIND_COUNT] = {RNC_INT_RNN_TANH, RNC_INT_RNN_RELU, RNC_INT_GRU,
                                                       RNC_INT_LSTM};
    memset(c, 0, sizeof(*c));
    c->cell = kinds[L->kind];
    c->input_size = (int32_t)L->input_size;
    c->hidden_size = (int32_t)L->hidden_size;
    c->linear_before_reset = L->kind == RNC_GRU ? (int32_t)L->reset_after : 1;
    c->w_ih = L->iq.w_ih;
    c->w_hh = L->iq.w_hh;
    c->b_ih = L->iq.b_ih;
    c->b_hh = L->iq.b_hh;
    c->m_ih = L->iq.m_ih;
    c->m_hh = L->iq.m_hh;
    c->e_ih = L->iq.e_ih;
    c->e_hh = L->iq.e_hh;
    c->m_h = L->iq.m_h;
    c->e_h = L->iq.e_h;
    c->m_rh = L->iq.m_rh;
    c->e_rh = L->iq.e_rh;
    c->h_zp = L->iq.h_zp;
    c->cell_shift = L->iq.cell_shift;
    c->cell_clip = L->iq.cell_clip;
    c->activation = L->iq.table ? RNC_INT_ACT_TABLE : RNC_INT_ACT_GEMMLOWP;
    c->input_dtype = L->iq.input_s16 ? RNC_INT_IN_S16 : RNC_INT_IN_S8;
}

/* clamp(rint(v) + zp, lo, hi), NaN as 0 (round half to even: numpy's rint) */
static int32_t q_round(double v, int32_t zp, int32_t lo, int32_t hi)
{
    const double r = (v == v ? rint(v) : 0.0) + zp;
    return r < lo ? lo : r > hi ? hi : (int32_t)r;
}

void rnc__int8_quantize(const float *x, size_t n, double scale, int32_t zp, int8_t *q)
{
    for (size_t i = 0; i < n; ++i) q[i] = (int8_t)q_round((double)x[i] / scale, zp, -128, 127);
}

void rnc__int_quantize_input(const rnc_layer *L, const float *x, size_t n, void *q)
{
    if (!L->iq.input_s16) {
        rnc__int8_quantize(x, n, L->iq.x_scale, L->iq.x_zp, (int8_t *)q);
        return;
    }
    int16_t *q16 = (int16_t *)q; /* quantize_s16: symmetric, -32768 unused */
    for (size_t i = 0; i < n; ++i) q16[i] = (int16_t)q_round((double)x[i] / L->iq.x_scale, 0, -32767, 32767);
}

void rnc__int8_from_float(const rnc_int_cell *c, const rnc_layer *L, size_t B, const float *h,
                          const float *cst, int8_t *h8, int16_t *s16)
{
    const size_t n = B * L->hidden_size;
    for (size_t i = 0; i < n; ++i) {
        if (c->cell == RNC_INT_GRU) {
            s16[i] = (int16_t)q_round(ldexp((double)h[i], 15), 0, I16_MIN, I16_MAX);
            h8[i] = (int8_t)sat8(mbqm(s16[i], c->m_h, (int)c->e_h) + c->h_zp);
        } else {
            h8[i] = (int8_t)q_round((double)h[i] / L->iq.h_scale, c->h_zp, -128, 127);
            if (c->cell == RNC_INT_LSTM)
                s16[i] = (int16_t)q_round(ldexp((double)cst[i], -c->cell_shift), 0, I16_MIN, I16_MAX);
        }
    }
}

void rnc__int8_to_float(const rnc_int_cell *c, const rnc_layer *L, size_t B, const int8_t *h8,
                        const int16_t *s16, float *h, float *cst)
{
    const size_t n = B * L->hidden_size;
    for (size_t i = 0; i < n; ++i) {
        if (c->cell == RNC_INT_GRU) {
            h[i] = (float)ldexp((double)s16[i], -15);
        } else {
            h[i] = (float)(L->iq.h_scale * (double)(h8[i] - c->h_zp));
            if (c->cell == RNC_INT_LSTM) cst[i] = (float)ldexp((double)s16[i], c->cell_shift);
        }
    }
}
#else
typedef int rnc_int8_generic_left_out; /* -DRNC_NO_INT: no integer rows (an ISO C unit is not empty) */
#endif
