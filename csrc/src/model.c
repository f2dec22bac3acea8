/* The executor: ISA selection and the per-model plan, state, step and run. Steps and runs call
 * kernels only through the plan (kernel-table rows resolved once by rnc_model_set_isa); nothing
 * here names an ISA. No allocation: the model points into the caller's read-only buffer (loaded
 * by loader.c); state and scratch are caller memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/activations.h"
#include "kernels/gemm_deq.h" /* rnc__dequant_in_place: sparse layers' projections */
#include "kernels/logf.h"
#include "rnc_layout.h" /* the layer kinds (RNC_REC_*) of rnc_model.stage */

#define RNC_MODEL_OK 0x524E434Du
#define MAX_BATCH (1u << 24)

/* ------------------------------------------------------------------------------------------
 * the plan
 * ---------------------------------------------------------------------------------------- */
/* Resolve one op of the plan for `isa`: the batch axis cut at every row's bounds, each piece
 * served by rnc__pick_kernel's row (with and without W_hh's kernel sums), equal neighbours merged. */

/* Padding over time (conv_time / pool_time timepad tails: look-ahead, rnc_flush). A build without
 * it (-DRNC_NO_TIMEPAD, the dense deploy build; its loader refuses the tails) has no right pads
 * and no counters, so that code is dead and left out. */
#if defined(RNC_NO_TIMEPAD)
#define TP_ON 0
#define TP_FLUSH(m) ((void)(m), (size_t)0)
#define TP_COUNT(F) ((void)(F), 0u)
#define TP_RIGHT(F) ((void)(F), 0u)
#else
#define TP_ON 1
#define TP_FLUSH(m) ((m)->flush)
#define TP_COUNT(F) ((F)->tcount)
#define TP_RIGHT(F) ((F)->tpad_r)
#endif

/* A frame_conv after the recurrent layers (a per-step Linear): its run of per-step records gives
 * rows of its last record's width, which rnc_run writes apart (in fseq), not in place. A build
 * without it (-DRNC_NO_POST_CONV, the dense deploy build; its loader refuses such files) keeps
 * every record after the recurrent layers at one width, in place. */
#if defined(RNC_NO_POST_CONV)
#define POST_CONV(m) ((void)(m), 0u)
#define POST_W(m, f, n, w) ((void)(f), (void)(n), (size_t)(w))
#else
#define POST_CONV(m) ((m)->post_conv)
#define POST_W(m, f, n, w) ((void)(w), (size_t)(m)->front[(f) + (n) - 1].out_w)
#endif
/* A mul_halves record (2M -> M features): the dense deploy build's loader does not know the kind
 * (-DRNC_NO_POST_CONV) and sets post_conv for it after a recurrent layer otherwise. */
#if defined(RNC_NO_POST_CONV)
#define IS_MUL_HALVES(k) ((void)(k), 0)
#else
#define IS_MUL_HALVES(k) ((k) == RNC_REC_MUL_HALVES)
#endif
/* A concat record (front-end only): a build without it (-DRNC_NO_CHUNK, the dense deploy build;
 * its loader does not know the kind) never meets one. */
#if defined(RNC_NO_CHUNK)
#define IS_CONCAT(k) ((void)(k), 0)
#else
#define IS_CONCAT(k) ((k) == RNC_REC_CONCAT)
#endif
/* instance_norm records (front-end only, rnc_run only): left out with the concat record */
#if defined(RNC_NO_CHUNK)
#define IS_SEQ_NORM(k) ((void)(k), 0)
#define SEQ_NORM(m) ((void)(m), 0u)
#else
#define IS_SEQ_NORM(k) ((k) == RNC_REC_INSTANCE_NORM)
#define SEQ_NORM(m) ((m)->seq_norm)
#endif

static rnc_status plan_op(rnc_plan_op *p, int op, int prec, int isa, int input, int gru_rb)
{
    uint32_t cut[64];
    size_t nc = 0;
    cut[nc++] = 1;
    for (size_t i = 0; i < rnc__kernel_count; ++i) {
        const rnc_kernel *k = &rnc__kernels[i];
        if (k->op != op || k->precision != prec) continue;
        if (k->min_batch > 1 && nc < 64) cut[nc++] = k->min_batch;
        if (k->max_batch && k->max_batch < UINT32_MAX && nc < 64) cut[nc++] = k->max_batch + 1;
    }
    for (size_t i = 1; i < nc; ++i) /* insertion sort */
        for (size_t j = i; j > 0 && cut[j - 1] > cut[j]; --j) {
            const uint32_t t = cut[j];
            cut[j] = cut[j - 1];
            cut[j - 1] = t;
        }
    p->n = 0;
    for (size_t i = 0; i < nc; ++i) {
        if (i && cut[i] == cut[i - 1]) continue;
        size_t e = i + 1;
        while (e < nc && cut[e] == cut[i]) ++e;
        const uint32_t lo = cut[i], hi = e < nc ? cut[e] - 1 : UINT32_MAX;
        const int row = rnc__pick_kernel(op, prec, isa, lo, input, gru_rb, 1);
        const int plain = rnc__pick_kernel(op, prec, isa, lo, input, gru_rb, 0);
        if (row < 0 || plain < 0) return RNC_E_ISA;
        if (p->n && p->pick[p->n - 1].row == row && p->pick[p->n - 1].row_plain == plain) {
            p->pick[p->n - 1].hi = hi;
            continue;
        }
        if (p->n == RNC_PLAN_PICKS) return RNC_E_ISA;
        p->pick[p->n].lo = lo;
        p->pick[p->n].hi = hi;
        p->pick[p->n].row = (int16_t)row;
        p->pick[p->n].row_plain = (int16_t)plain;
        p->n++;
    }
    return RNC_OK;
}

/* The row of a resolved op for `batch` (>= 1) rows or columns, with or without W_hh's kernel
 * sums. */
static const rnc_kernel *plan_pick(const rnc_plan_op *p, size_t batch, int sums)
{
    uint32_t i = 0;
    while (i + 1 < p->n && batch > p->pick[i].hi) ++i;
    return &rnc__kernels[sums ? p->pick[i].row : p->pick[i].row_plain];
}

static int cell_op(uint32_t kind)
{
    return kind == RNC_GRU ? RNC_OP_GRU_STEP : kind == RNC_LSTM ? RNC_OP_LSTM_STEP : RNC_OP_RNN_STEP;
}

/* the cell op of layer L: its block-sparse form when it has block-sparse weights, its gate-shared
 * form when one of them is in the gate-shared layout (GRU and LSTM only: the loader) */
/* the plan's product for layer L's block-sparse W_ih (its layout's) */
#if defined(RNC_NO_SPARSE)
#define RNC_SPGEMV_PLAN(m, L) (&(m)->plan.spgemv)
#else
#define RNC_SPGEMV_PLAN(m, L)                                                                     \
    (((L)->sparse & RNC_LAYER_FLAG_SHARED_IH) ? &(m)->plan.spgemv_shared : &(m)->plan.spgemv)
#endif

static int layer_op(const rnc_layer *L)
{
#if !defined(RNC_NO_SPARSE)
    if (L->sparse & (RNC_LAYER_FLAG_SHARED_IH | RNC_LAYER_FLAG_SHARED_HH))
        return L->kind == RNC_GRU ? RNC_OP_GRU_STEP_SHARED : RNC_OP_LSTM_STEP_SHARED;
#endif
    return cell_op(L->kind) + (L->sparse ? RNC_OP_RNN_STEP_SPARSE - RNC_OP_RNN_STEP : 0);
}

static rnc_status step_work(const rnc_model *m, size_t batch, rnc_step_work *w);

static rnc_status build_plan(const rnc_model *m, int isa, rnc_plan *p)
{
    memset(p, 0, sizeof(*p));
    TRY(plan_op(&p->gemm[RNC_F32], RNC_OP_GEMV, RNC_F32, isa, RNC_IN_X, 0));
    TRY(plan_op(&p->gemm[RNC_Q8], RNC_OP_GEMV, RNC_Q8, isa, RNC_IN_X, 0));
#if !defined(RNC_NO_Q4) /* a build without the q4 rows (its loader refuses q4 files) */
    TRY(plan_op(&p->gemm[RNC_Q4], RNC_OP_GEMV, RNC_Q4, isa, RNC_IN_X, 0));
#endif
    TRY(plan_op(&p->gemm_deq, RNC_OP_GEMM_DEQ, RNC_Q8, isa, RNC_IN_X, 0));
    TRY(plan_op(&p->quantize, RNC_OP_QUANTIZE, RNC_Q8, isa, RNC_IN_X, 0));
#if !defined(RNC_NO_SPARSE) /* likewise without the block-sparse rows */
    TRY(plan_op(&p->spgemv, RNC_OP_SPGEMV, RNC_Q8, isa, RNC_IN_X, 0));
    TRY(plan_op(&p->spgemv_shared, RNC_OP_SPGEMV_SHARED, RNC_Q8, isa, RNC_IN_X, 0));
#endif
#if !defined(RNC_NO_INT)
    if (m->precision == RNC_INT8) { /* the integer products; the cells checked once, here */
        TRY(plan_op(&p->s8_matvec, RNC_OP_S8_MATVEC, RNC_INT8, isa, RNC_IN_X, 0));
        for (uint32_t l = 0; l < m->num_layers; ++l) {
            rnc_int_cell c;
            rnc__int8_cell(&m->layer[l], &c);
            if (rnc_int_cell_check(&c) != RNC_INT_OK) return RNC_E_CORRUPT;
        }
    }
#endif
#if !defined(RNC_NO_FFT)
    TRY(plan_op(&p->rfft, RNC_OP_RFFT_POWER, RNC_F32, isa, RNC_IN_X, 0));
#endif
#if !defined(RNC_NO_Q16)
    TRY(plan_op(&p->gemm_q16, RNC_OP_GEMM_Q16, RNC_Q8, isa, RNC_IN_X, 0));
#endif
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        const int prec = (int)m->precision, rb = L->kind == RNC_GRU && !L->reset_after;
        const int op = m->precision == RNC_INT8 ? RNC_OP_INT_STEP : layer_op(L);
        const int lisa = rnc__layer_isa(isa, L->hidden_size); /* the cells' path for this width */
        TRY(plan_op(&p->cell_x[l], op, prec, lisa, RNC_IN_X, rb));
        TRY(plan_op(&p->cell_gi[l], op, prec, lisa, RNC_IN_GI, rb));
        if (L->dirs == 2) p->bidirectional = 1;
        if (L->opt.flags & RNC_CELLOPT_REVERSE) p->reverse = 1;
        if (L->unbounded) p->unbounded = 1;
    }
    /* a stream's steps read the one-row layout from here instead of working it out per call */
    if (step_work(m, 1, &p->work1) != RNC_OK) p->work1.total = 0;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * ISA selection
 * ---------------------------------------------------------------------------------------- */
rnc_status rnc_isa_default(rnc_isa *isa)
{
    if (!isa) return RNC_E_ARG;
    const char *env = getenv("RNNCORE_ISA");
    if (env && env[0]) {
        rnc_isa want;
        int yes = 0;
        TRY(rnc_isa_from_name(env, &want));
        if (want != RNC_ISA_AUTO) {
            rnc_isa_available(want, &yes);
            if (!yes) return RNC_E_ISA;
            *isa = want;
            return RNC_OK;
        }
    }
    return rnc_isa_best(isa);
}

rnc_status rnc_model_set_isa(rnc_model *m, rnc_isa isa)
{
    if (!m || m->magic_ok != RNC_MODEL_OK) return RNC_E_ARG;
    if (isa == RNC_ISA_AUTO) TRY(rnc_isa_default(&isa));
    int yes = 0;
    TRY(rnc_isa_available(isa, &yes));
    if (!yes) return RNC_E_ISA;
    rnc_plan plan;
    TRY(build_plan(m, (int)isa, &plan));
    m->plan = plan;
    m->isa = (uint32_t)isa;
    return RNC_OK;
}

rnc_status rnc_model_plan_row(const rnc_model *m, uint32_t layer, uint32_t op, uint32_t precision,
                              size_t batch, uint32_t input, int sums, size_t *row)
{
    if (!m || !row || m->magic_ok != RNC_MODEL_OK || batch == 0 || batch > UINT32_MAX)
        return RNC_E_ARG;
    const rnc_plan *p = &m->plan;
    const rnc_plan_op *o = NULL;
    if (layer == RNC_PLAN_MODEL) {
        if (op == RNC_OP_GEMV && precision < RNC_PRECISION_COUNT) o = &p->gemm[precision];
        else if (precision == RNC_Q8 && op == RNC_OP_GEMM_DEQ) o = &p->gemm_deq;
        else if (precision == RNC_Q8 && op == RNC_OP_QUANTIZE) o = &p->quantize;
        else if (precision == RNC_Q8 && op == RNC_OP_SPGEMV) o = &p->spgemv;
#if !defined(RNC_NO_SPARSE)
        else if (precision == RNC_Q8 && op == RNC_OP_SPGEMV_SHARED) o = &p->spgemv_shared;
#endif
        else if (precision == RNC_INT8 && op == RNC_OP_S8_MATVEC && m->precision == RNC_INT8) o = &p->s8_matvec;
        else if (precision == RNC_F32 && op == RNC_OP_RFFT_POWER) o = &p->rfft;
#if !defined(RNC_NO_Q16)
        else if (precision == RNC_Q8 && op == RNC_OP_GEMM_Q16) o = &p->gemm_q16;
#endif
    } else if (layer < m->num_layers &&
               op == (uint32_t)(m->precision == RNC_INT8 ? RNC_OP_INT_STEP : layer_op(&m->layer[layer])) &&
               precision == m->precision && (input == RNC_IN_X || input == RNC_IN_GI)) {
        o = input == RNC_IN_X ? &p->cell_x[layer] : &p->cell_gi[layer];
    }
    if (!o) return RNC_E_ARG;
    *row = (size_t)(plan_pick(o, batch, sums) - rnc__kernels);
    return RNC_OK;
}

rnc_status rnc_model_get_isa(const rnc_model *m, rnc_isa *isa)
{
    if (!m || !isa || m->magic_ok != RNC_MODEL_OK) return RNC_E_ARG;
    *isa = (rnc_isa)m->isa;
    return RNC_OK;
}

rnc_status rnc_model_init(rnc_model *m, const void *buf, size_t len)
{
    if (!m) return RNC_E_ARG;
    memset(m, 0, sizeof(*m));
    if (!buf) return RNC_E_ARG;
    if ((uintptr_t)buf % 4) return RNC_E_ALIGN;
    rnc_status st = rnc__load(m, (const unsigned char *)buf, len);
    if (st != RNC_OK) { /* keep only the loader's reason */
        char why[sizeof(m->error)];
        memcpy(why, m->error, sizeof(why));
        memset(m, 0, sizeof(*m));
        memcpy(m->error, why, sizeof(why));
        return st;
    }
    memset(m->error, 0, sizeof(m->error));
    m->magic_ok = RNC_MODEL_OK;
    st = rnc_model_set_isa(m, RNC_ISA_AUTO);
    if (st != RNC_OK) memset(m, 0, sizeof(*m));
    return st;
}

rnc_status rnc_model_error(const rnc_model *m, const char **text)
{
    if (!m || !text) return RNC_E_ARG;
    *text = m->error;
    return RNC_OK;
}

rnc_status rnc_model_get_info(const rnc_model *m, rnc_model_info *info)
{
    if (!m || !info || m->magic_ok != RNC_MODEL_OK) return RNC_E_ARG;
    /* the fields before last_step_max zeroed (the last one is set below: in an -Os build a memset of
     * the whole struct would be a call, these are a few stores) */
    memset(info, 0, offsetof(rnc_model_info, last_step_max));
    info->precision = m->precision;
    info->num_layers = m->num_layers;
    info->uses_ids = m->uses_ids;
    info->input_size = m->uses_ids ? 1 : m->input_size;
    info->output_size = m->output_size;
    info->bidirectional = m->plan.bidirectional;
    for (uint32_t l = 0; l < m->num_layers; ++l) info->num_states += m->layer[l].dirs;
    info->embed_num = m->embed_num;
    info->has_head = m->head;
    info->head_activation = m->head_act;
    info->h_floats = m->h_floats;
    info->c_floats = m->c_floats;
    info->model_bytes = m->file_size;
    info->last_step = m->last_step;
    info->last_step_bidirectional = m->last_step_bidir;
    info->lookahead = TP_ON ? m->lookahead : 0;
    info->flush_steps = TP_FLUSH(m);
#if !defined(RNC_NO_MEAN)
    info->last_step_mean = m->last_step_mean;
    info->last_step_last = m->last_step_last;
    info->last_step_max = m->last_step_max;
#else
    info->last_step_max = 0;
    info->last_step_last = 0;
#endif
#if !defined(RNC_NO_ATTN)
    info->last_step_attention = m->attn;
#endif
    return RNC_OK;
}

rnc_status rnc_layer_get_info(const rnc_model *m, uint32_t layer, rnc_layer_info *info)
{
    if (!m || !info || m->magic_ok != RNC_MODEL_OK) return RNC_E_ARG;
    if (layer >= m->num_layers) return RNC_E_ARG;
    const rnc_layer *L = &m->layer[layer];
    info->kind = L->kind;
    info->reset_after = L->reset_after;
    info->directions = L->dirs;
    info->input_size = L->input_size;
    info->hidden_size = L->hidden_size;
    info->proj_size = L->proj;
    info->h_offset = L->h_offset;
    info->c_offset = L->c_offset;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * state
 * ---------------------------------------------------------------------------------------- */
/* RNC_INT8 models: the integer areas of a batch of B rows at rnc_step_work.ints (a step and a
 * run hold the state as integers there, from the float state on entry back to it on return):
 * x8 the model input (B x I), h8 and s16 every layer's state (B x H each, at h_offset * B),
 * the step's scratch, the head's int32 outputs (B x O), the pooled last steps (B x H) and the
 * active rows (B). */
typedef struct {
    size_t x8, h8, s16, scr, yq, pooled, active, total, scr_bytes;
} rnc_int_work;

#if !defined(RNC_NO_INT)
static rnc_int_work int_work(const rnc_model *m, uint64_t B)
{
    rnc_int_work w;
    uint64_t o = 0, scr = 0;
    memset(&w, 0, sizeof(w));
    if (m->precision != RNC_INT8 || !m->num_layers) return w;
    const rnc_layer *last = &m->layer[m->num_layers - 1];
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const uint64_t G = m->layer[l].gates, H = m->layer[l].hidden_size;
        const uint64_t n = H * 4u + ((G * H * 2u + H + 3u) & ~(uint64_t)3u); /* RNC_INT_SCRATCH_BYTES */
        if (n > scr) scr = n;
    }
    w.x8 = (size_t)o;     o += RNC_ALIGN_UP(B * m->input_size * (m->layer[0].iq.input_s16 ? 2u : 1u), 64);
    w.h8 = (size_t)o;     o += RNC_ALIGN_UP(B * m->h_floats, 64);
    w.s16 = (size_t)o;    o += RNC_ALIGN_UP(B * m->h_floats * 2, 64);
    w.scr = (size_t)o;    o += RNC_ALIGN_UP(scr, 64);
    w.yq = (size_t)o;     o += RNC_ALIGN_UP(B * m->head_out * 4, 64);
    w.pooled = (size_t)o; o += RNC_ALIGN_UP(B * last->hidden_size, 64);
    w.active = (size_t)o; o += RNC_ALIGN_UP(B, 64);
    w.total = (size_t)o;
    w.scr_bytes = (size_t)scr;
    return w;
}
#endif

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static rnc_status step_work(const rnc_model *m, size_t batch, rnc_step_work *w)
{
    uint64_t o = 0, cell = 0, B = batch;
    /* rnc__cell_work computes in size_t: make sure nothing in it can wrap (32-bit hosts) */
    const uint64_t bound = B * ((uint64_t)m->max_gates_hp * 8 + 4 * RNC_MAX_HIDDEN + 256) +
                           (uint64_t)m->max_gates_hp * 8 + 16 * (uint64_t)RNC_MAX_HIDDEN + 1024;
    if (bound > (uint64_t)SIZE_MAX / 4) return RNC_E_SIZE;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_cell_work cw = rnc__cell_work(m->layer[l].gates, m->layer[l].hidden_size,
                                                (uint32_t)batch);
        if (cw.total > cell) cell = cw.total;
    }
    w->xin = (size_t)o; o += RNC_ALIGN_UP(B * m->embed_dim * 4, 64);
    w->xq = (size_t)o;  o += RNC_ALIGN_UP(B * m->max_kpad, 64);
    w->sx = (size_t)o;  o += RNC_ALIGN_UP(B * 4, 64);
    w->cell = (size_t)o; o += cell;
    w->head = (size_t)o; o += RNC_ALIGN_UP(B * r16(m->head_out) * 4, 64);
    /* the per-step records: two rows of every stream (in, out) and a frame_conv's scratch (both
     * bounded at load: front_w <= 2^20 floats, front_scratch by the weights' size in the file) */
    w->fa = (size_t)o;   o += RNC_ALIGN_UP(B * m->front_w * 4, 64);
    w->fb = (size_t)o;   o += RNC_ALIGN_UP(B * m->front_w * 4, 64);
    w->fr = (size_t)o;   o += RNC_ALIGN_UP(2 * (uint64_t)m->front_w * 4, 64);
    w->fscr = (size_t)o; o += RNC_ALIGN_UP((uint64_t)m->front_scratch * 4, 64);
    w->ints = (size_t)o; /* the integer areas of RNC_INT8 models */
#if !defined(RNC_NO_INT)
    if (m->precision == RNC_INT8) o += int_work(m, B).total;
#endif
    /* a log_mel FFT's twiddles: written by rnc_state_init, read by step and run */
    w->tw = (size_t)o;   o += RNC_ALIGN_UP((uint64_t)m->fft_floats * 4, 64);
    w->fsave = (size_t)o; o += RNC_ALIGN_UP((uint64_t)m->res_floats * 4, 64); /* residuals' inputs, one row */
#if XRES_ON
    /* the inputs residuals across recurrent records add, every row (B <= MAX_BATCH: no wrap) */
    w->xsave = (size_t)o; o += RNC_ALIGN_UP(B * m->xres_floats * 4, 64);
#endif
#if !defined(RNC_NO_CHUNK)
    /* a positions record: the front-end's rows by position, each position's outputs */
    w->pos = (size_t)o;  o += m->positions ? RNC_ALIGN_UP(B * m->front_w * 4, 64) : 0;
    w->ypos = (size_t)o; o += m->positions ? RNC_ALIGN_UP(B * m->output_size * 4, 64) : 0;
#endif
    if (o > (uint64_t)SIZE_MAX / 2) return RNC_E_SIZE;
    w->total = (size_t)o;
    return RNC_OK;
}

rnc_status rnc_state_size(const rnc_model *m, size_t batch, size_t *bytes)
{
    if (!m || !bytes || m->magic_ok != RNC_MODEL_OK || batch == 0) return RNC_E_ARG;
    if (batch > MAX_BATCH) return RNC_E_SIZE;
    rnc_step_work w;
    TRY(step_work(m, batch, &w));
    uint64_t hc = ((uint64_t)m->h_floats + m->c_floats + m->win_floats) * batch * 4;
    uint64_t total = hc + 64 + w.total;
    if (total > (uint64_t)SIZE_MAX / 2) return RNC_E_SIZE;
    *bytes = (size_t)total;
    return RNC_OK;
}

/* One stream row's windows as a sequence starts: zeros (the left pads of a conv_time, the
 * counters of a padded pool_time), the countdowns at skip0. */
static void front_init_row(const rnc_model *m, float *win)
{
    memset(win, 0, m->win_floats * 4);
    for (uint32_t i = 0; i < m->num_front; ++i) {
        const rnc_front_op *F = &m->front[i];
        if (F->phase) win[F->win_off + (size_t)F->win * F->cin] = (float)F->skip0;
    }
}

/* h and c as a sequence starts: zeros, or a layer's learned initial states (cell options) for
 * every batch row. */
static void initial_state(rnc_state *s)
{
    const rnc_model *m = s->model;
    const size_t B = s->batch;
    memset(s->h, 0, s->h_count * 4);
    if (s->c) memset(s->c, 0, s->c_count * 4);
    if (s->win)
        for (size_t b = 0; b < B; ++b) front_init_row(m, s->win + b * m->win_floats);
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        const size_t H = L->hidden_size, W = L->out;
        for (uint32_t d = 0; d < L->dirs; ++d)
            for (size_t b = 0; b < B; ++b) {
                if (L->opt.initial_h)
                    memcpy(s->h + (L->h_offset + d * W) * B + b * W, L->opt.initial_h + d * W, 4 * W);
                if (L->opt.initial_c)
                    memcpy(s->c + (L->c_offset + d * H) * B + b * H, L->opt.initial_c + d * H, 4 * H);
            }
    }
}

rnc_status rnc_state_init(const rnc_model *m, size_t batch, void *mem, size_t bytes, rnc_state *s)
{
    size_t need;
    if (!s) return RNC_E_ARG;
    memset(s, 0, sizeof(*s));
    if (!mem) return RNC_E_ARG;
    TRY(rnc_state_size(m, batch, &need));
    if ((uintptr_t)mem % 4) return RNC_E_ALIGN;
    if (bytes < need) return RNC_E_SIZE;
    unsigned char *p = (unsigned char *)mem;
    s->model = m;
    s->batch = batch;
    s->h = (float *)p;
    s->h_count = m->h_floats * batch;
    s->c = m->c_floats ? (float *)p + s->h_count : NULL;
    s->c_count = m->c_floats * batch;
    s->win = m->win_floats ? (float *)p + s->h_count + s->c_count : NULL;
    s->win_count = m->win_floats * batch;
    const uintptr_t end = (uintptr_t)(p + (s->h_count + s->c_count + s->win_count) * 4);
    s->work = p + (RNC_ALIGN_UP(end, 64) - (uintptr_t)p);
    s->work_bytes = need - (size_t)(s->work - p);
    initial_state(s);
    if (m->fft_floats) { /* the log_mel record is the first */
        rnc_step_work w;
        TRY(step_work(m, batch, &w));
        rnc__fft_twiddles(&m->front[0], (float *)(s->work + w.tw));
    }
    return RNC_OK;
}

rnc_status rnc_state_reset(rnc_state *s)
{
    if (!s || !s->model || !s->h) return RNC_E_ARG;
    initial_state(s);
    return RNC_OK;
}

/* A state usable with m; its step scratch layout in *w (computed once per call). */
static rnc_status check_state(const rnc_model *m, const rnc_state *s, rnc_step_work *w)
{
    if (!m || m->magic_ok != RNC_MODEL_OK || !s) return RNC_E_ARG;
    if (s->model != m || !s->h || s->batch == 0 || s->h_count != m->h_floats * s->batch ||
        s->c_count != m->c_floats * s->batch || s->win_count != m->win_floats * s->batch ||
        (s->win_count && !s->win))
        return RNC_E_STATE;
    /* The same rnc_model re-initialised with another model (e.g. after a firmware update) keeps
     * s->model and may keep h/c counts while needing more scratch: check the work area too. */
    if (s->batch == 1 && m->plan.work1.total)
        *w = m->plan.work1; /* worked out at load */
    else if (s->batch > MAX_BATCH || step_work(m, s->batch, w) != RNC_OK)
        return RNC_E_STATE;
    if (!s->work || s->work_bytes < w->total) return RNC_E_STATE;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * shared pieces of step and run
 * ---------------------------------------------------------------------------------------- */
static void activation_row(uint32_t act, float *y, uint32_t n)
{
    uint32_t i;
    switch (act) {
    case RNC_ACT_RELU:
        for (i = 0; i < n; ++i) y[i] = rnc_reluf(y[i]);
        break;
    case RNC_ACT_SIGMOID:
        for (i = 0; i < n; ++i) y[i] = rnc_sigmoidf(y[i]);
        break;
    case RNC_ACT_TANH:
        for (i = 0; i < n; ++i) y[i] = rnc_tanhf(y[i]);
        break;
    case RNC_ACT_SOFTMAX:
    case RNC_ACT_LOG_SOFTMAX: { /* y - m, then softmax exp(y - m) / sum or log-softmax (y - m) - log(sum) */
        float mx = y[0], sum = 0.0f;
        for (i = 1; i < n; ++i) mx = y[i] > mx ? y[i] : mx;
        for (i = 0; i < n; ++i) {
            y[i] -= mx;
            sum += expf(y[i]);
        }
        const float ls = logf(sum);
        for (i = 0; i < n; ++i) y[i] = act == RNC_ACT_SOFTMAX ? expf(y[i]) / sum : y[i] - ls;
        break;
    }
    default: break;
    }
}

/* y (rows x O) = act(W in + b); in: rows x ld_in floats; xq/sx/acc: scratch for `rows`.
 * Returns `rows`, or the first row whose W in + b is not finite (float32 overflow: a linear head
 * is unbounded; the activations would map NaN to a number), where it stops. */
static size_t apply_head(const rnc_model *m, const float *in, size_t rows, size_t ld_in, float *y,
                         int8_t *xq, float *sx, void *acc)
{
    const uint32_t O = m->head_out, op = (uint32_t)r16(O), K = m->head_in, kx = m->head_kx;
    if (m->precision != RNC_F32) { /* q8, and a q4 model's q8 head */
        const rnc_quantize_fn quantize = plan_pick(&m->plan.quantize, 1, 0)->fn.quantize;
        for (size_t r = 0; r < rows; ++r)
            quantize(in + r * ld_in, K, kx, m->head_scale, m->head_inv, xq + r * kx, &sx[r]);
        plan_pick(&m->plan.gemm[RNC_Q8], rows, 0)->fn.gemm_q8(
            (const int8_t *)m->head_w, (int)O, (int)K, (int)rows, xq, (int)kx, (int32_t *)acc,
            (int)op);
        const int32_t *a = (const int32_t *)acc;
        for (size_t r = 0; r < rows; ++r) {
            float *yr = y + r * O;
            for (uint32_t o = 0; o < O; ++o)
                yr[o] = (float)a[r * op + o] * (sx[r] * m->head_s[o]) + m->head_b[o];
            if (!rnc__all_finite(yr, O)) return r;
            activation_row(m->head_act, yr, O);
        }
    } else {
        plan_pick(&m->plan.gemm[RNC_F32], rows, 0)->fn.gemm_f32(
            (const float *)m->head_w, (int)O, (int)K, (int)rows, in, (int)ld_in, (float *)acc,
            (int)op);
        const float *a = (const float *)acc;
        for (size_t r = 0; r < rows; ++r) {
            float *yr = y + r * O;
            for (uint32_t o = 0; o < O; ++o) yr[o] = a[r * op + o] + m->head_b[o];
            if (!rnc__all_finite(yr, O)) return r;
            activation_row(m->head_act, yr, O);
        }
    }
    return rows;
}

/* ------------------------------------------------------------------------------------------
 * non-finite states (docs/c-api.md, "Non-finite values")
 *
 * GRU and LSTM h and tanh RNN h are bounded by their activations (|h| <= 1) and an LSTM's c
 * grows by at most 1 per step; a ReLU RNN's h and a linear head are not, and can overflow
 * float32. Their next step would turn the Inf into a number (Inf - Inf = NaN, which
 * max(x, 0) and the q8 quantiser map to 0), so they are checked: after every ReLU cell and
 * every head row, and a ReLU layer's state on entry. Other cells pay nothing.
 * ---------------------------------------------------------------------------------------- */
static rnc_status nonfinite(rnc_state *s, uint32_t layer, uint32_t d, size_t row, size_t step)
{
    s->nonfinite.layer = layer;
    s->nonfinite.direction = d;
    s->nonfinite.row = row;
    s->nonfinite.step = step;
    return RNC_E_NONFINITE;
}

/* RNC_E_NONFINITE (with its place) when direction d of ReLU layer l holds NaN/Inf in a row. */
static rnc_status check_relu_state(const rnc_model *m, rnc_state *s, uint32_t l, uint32_t d,
                                   size_t step)
{
    const rnc_layer *L = &m->layer[l];
    const size_t H = L->out, B = s->batch;
    const float *h = s->h + (L->h_offset + (size_t)d * H) * B;
    if (rnc__all_finite(h, B * H)) return RNC_OK;
    for (size_t b = 0; b < B; ++b)
        if (!rnc__all_finite(h + b * H, H)) return nonfinite(s, l, d, b, step);
    return RNC_OK;
}

/* Every ReLU layer's state finite on entry of step/run. */
static rnc_status check_relu_states(const rnc_model *m, rnc_state *s)
{
    for (uint32_t l = 0; l < m->num_layers; ++l)
        if (m->layer[l].unbounded)
            for (uint32_t d = 0; d < m->layer[l].dirs; ++d)
                TRY(check_relu_state(m, s, l, d, RNC_NONFINITE_ON_ENTRY));
    return RNC_OK;
}

static void cell_args_base(const rnc_model *m, const rnc_layer *L, uint32_t d, rnc_state *s,
                           rnc_cell_args *a, void *work)
{
    /* every field of rnc_cell_args set one by one (a memset of the struct is a rep stos, ~10 ns
     * of a 0.1 us step) */
    a->kind = L->kind;
    a->reset_after = L->reset_after;
    a->batch = (uint32_t)s->batch;
    a->I = L->input_size;
    a->H = L->hidden_size;
    a->Hp = L->hp;
    a->G = L->gates;
    a->w_ih = L->sparse ? (const void *)&L->dir[d].sp_ih : L->dir[d].w_ih;
    a->w_hh = L->sparse ? (const void *)&L->dir[d].sp_hh : L->dir[d].w_hh;
    a->s_ih = L->dir[d].s_ih;
    a->s_hh = L->dir[d].s_hh;
    a->b_ih = L->dir[d].b_ih;
    a->b_hh = L->dir[d].b_hh;
    a->h_scale = m->precision != RNC_F32 ? L->h_scale[d] : 0.0f;
    a->h_inv = m->precision != RNC_F32 ? L->h_inv[d] : 0.0f;
    a->x = NULL;
    a->ldx = 0;
    a->xq = NULL;
    a->sx = NULL;
    a->ldxq = 0;
    a->gi = NULL;
    a->ldgi = 0;
    a->h = s->h + (L->h_offset + (size_t)d * L->out) * s->batch;
    a->c = L->kind == RNC_LSTM ? s->c + (L->c_offset + (size_t)d * L->hidden_size) * s->batch
                               : NULL;
    a->y = NULL;
    a->ldy = 0;
    a->active = NULL;
    a->hh_sums = L->dir[d].hh_sums;
    a->work = work;
    a->P = L->proj;
}

/* The variant cell's options for direction d and the plan's product rows for `batch` columns. */
static void cell_variant(const rnc_model *m, const rnc_layer *L, uint32_t d, size_t batch,
                         rnc_cell_variant *v)
{
    memset(v, 0, sizeof(*v));
    v->q8 = m->precision == RNC_Q8;
    v->flags = L->opt.flags;
    v->clip = L->opt.clip;
    v->act = L->opt.act[d];
    v->alpha = L->opt.alpha[d];
    v->beta = L->opt.beta[d];
    v->peep = L->opt.peepholes ? L->opt.peepholes + (size_t)d * 3 * L->hidden_size : NULL;
    if (L->proj) {
        const size_t rows = r16(L->proj), k = m->precision == RNC_Q8 ? r4(L->hidden_size) : L->hidden_size;
        v->w_hr = m->precision == RNC_Q8 ? (const void *)((const int8_t *)L->opt.w_hr + d * rows * k)
                                         : (const void *)((const float *)L->opt.w_hr + d * rows * k);
        v->s_hr = L->opt.s_hr ? L->opt.s_hr + d * rows : NULL;
    }
    if (L->opt.flags & RNC_CELLOPT_LAYER_NORM) {
        const size_t N = (size_t)L->gates * L->hidden_size;
        v->ln_ih = L->opt.ln_ih + d * 2 * N;
        v->ln_hh = L->opt.ln_hh + d * 2 * N;
        v->ln_c = L->opt.ln_c ? L->opt.ln_c + d * 2 * (size_t)L->hidden_size : NULL;
        v->ln_eps = L->opt.ln_eps;
        v->ln_per_gate = (L->opt.ln_flags & RNC_CELLLN_PER_GATE) ? 1u : 0u;
    }
    v->gemm_q8 = plan_pick(&m->plan.gemm[RNC_Q8], batch, 0)->fn.gemm_q8;
    v->gemm_q8_1 = plan_pick(&m->plan.gemm[RNC_Q8], 1, 0)->fn.gemm_q8;
    v->gemm_f32 = plan_pick(&m->plan.gemm[RNC_F32], batch, 0)->fn.gemm_f32;
    v->gemm_f32_1 = plan_pick(&m->plan.gemm[RNC_F32], 1, 0)->fn.gemm_f32;
    v->quantize = plan_pick(&m->plan.quantize, 1, 0)->fn.quantize;
}

static rnc_status check_ids(const rnc_model *m, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->embed_num) return RNC_E_VALUE;
    return RNC_OK;
}

/* The front-end's input row: id i's row of the table after an embedding (the records run on the
 * looked-up rows as on input features; the ids are checked), else x. */
#if EMB_FRONT_ON
#define FRONT_IN(m, ids, i, x) ((ids) ? (m)->embed + (size_t)(ids)[i] * (m)->embed_dim : (x))
#else
#define FRONT_IN(m, ids, i, x) ((void)(ids), (x))
#endif

static void gather(const rnc_model *m, const int32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; ++i)
        memcpy(out + i * m->embed_dim, m->embed + (size_t)ids[i] * m->embed_dim,
               sizeof(float) * m->embed_dim);
}

/* ------------------------------------------------------------------------------------------
 * the per-step records (docs/rnc-format.md, "Per-step records"): one row in, one row out
 * ---------------------------------------------------------------------------------------- */
/* Sample r (-pl <= r < L + pr) of a frame channel xc of L samples: zero outside, or its mirror
 * image (reflect; the loader admits pads < L only, so the image lies in the frame). */
static float frame_tap(const float *xc, int64_t r, int64_t L, uint32_t reflect)
{
    if (r >= 0 && r < L) return xc[r];
    if (!reflect) return 0.0f;
    return xc[r < 0 ? -r : 2 * (L - 1) - r];
}

/* A window starting at position p0 (taps p0 + t d, t < k) of a frame of L samples: taps
 * t_lo .. t_hi - 1 fall inside the frame, the others on the padding. */
static inline void frame_taps(int64_t p0, int64_t d, int64_t L, int64_t k, int64_t *t_lo, int64_t *t_hi)
{
    int64_t lo = p0 >= 0 ? 0 : (-p0 + d - 1) / d, hi = p0 >= L ? 0 : (L - p0 + d - 1) / d;
    if (lo > k) lo = k;
    if (hi > k) hi = k;
    *t_lo = lo;
    *t_hi = hi < lo ? lo : hi;
}

/* y[o*L_out + l] = b[o] + sum_{c, j} W[o, c, j] xpad[g(o) C_g + c, l*stride + j*dilation]: per group
 * and per block of RNC_FCONV_BLOCK output positions, the windows as columns [c][j] (cols) and one
 * product of the plan's f32 GEMM row with the group's packed matrix (prod: position-major). */
static void frame_conv_row(const rnc_model *m, const rnc_front_op *F, const float *x, float *y,
                           float *scratch)
{
    const size_t kk = (size_t)F->cg * F->k, rp = r16(F->cog);
    float *cols = scratch, *prod = scratch + RNC_FCONV_BLOCK * kk;
    for (uint32_t g = 0; g < F->groups; ++g) {
        const float *wg = F->w + (size_t)g * rp * kk;
        for (uint32_t l0 = 0; l0 < F->lout; l0 += RNC_FCONV_BLOCK) {
            const uint32_t n = F->lout - l0 < RNC_FCONV_BLOCK ? F->lout - l0 : RNC_FCONV_BLOCK;
            /* one-sample frames through a 1 x 1 kernel (a per-step Linear over the channels): the
             * one column is the group's channels of x as they are */
            const int whole = F->k == 1 && F->L == 1 && F->lout == 1 && F->pl == 0;
            const float *colp = whole ? x + (size_t)g * F->cg : cols;
            for (uint32_t j = 0; j < (whole ? 0 : n); ++j) {
                float *col = cols + j * kk;
                const int64_t p0 = (int64_t)(l0 + j) * F->stride - (int64_t)F->pl;
                /* taps t_lo .. t_hi-1 read inside the frame (a copy); the others the padding */
                const int64_t d = F->dil, L = F->L, k = F->k;
                int64_t t_lo, t_hi;
                frame_taps(p0, d, L, k, &t_lo, &t_hi);
                for (uint32_t c = 0; c < F->cg; ++c) {
                    const float *xc = x + (size_t)(g * F->cg + c) * F->L;
                    float *cc = col + (size_t)c * F->k;
                    int64_t t;
                    for (t = 0; t < t_lo; ++t) cc[t] = frame_tap(xc, p0 + t * d, L, F->reflect);
                    /* a long run is one copy; a few taps (the encoders' k = 3) a loop: a memcpy
                     * call per channel and window cost more than the product */
                    if (d == 1 && t_hi - t_lo >= 16)
                        memcpy(cc + t_lo, xc + p0 + t_lo, sizeof(float) * (size_t)(t_hi - t_lo));
                    else
                        for (t = t_lo; t < t_hi; ++t) cc[t] = xc[p0 + t * d];
                    for (t = t_hi; t < k; ++t) cc[t] = frame_tap(xc, p0 + t * d, L, F->reflect);
                }
            }
            plan_pick(&m->plan.gemm[RNC_F32], n, 0)->fn.gemm_f32(wg, (int)F->cog, (int)kk, (int)n, colp,
                                                              (int)kk, prod, (int)rp);
            const uint32_t cog = F->cog, lout = F->lout;
            const float *bg = F->b + (size_t)g * cog;
            float *yg = y + (size_t)g * cog * lout + l0;
            for (uint32_t j = 0; j < n; ++j) {
                const float *pj = prod + j * rp;
                for (uint32_t o = 0; o < cog; ++o) yg[(size_t)o * lout + j] = pj[o] + bg[o];
            }
        }
    }
}

/* The windows of the n positions l0 .. l0 + n - 1 of group g of a quantised frame_conv gathered
 * from the row's codes q (element type T: int8_t for q8, int16_t for 16 x 16) as columns of kp
 * codes, cols[j * kp + c * k + t] (padding: code 0, or the mirrored code; zero past kk = cg * k):
 * the same gathering for both forms (dil, len, ksz: F's dilation, frame length and kernel size). */
#define FCONV_GATHER(T, F, q, cols, g, l0, n, kk, kp, dil, len, ksz)                                      \
    do {                                                                                                  \
        for (uint32_t j = 0; j < (n); ++j) {                                                              \
            T *col = (cols) + j * (kp);                                                                   \
            const int64_t p0 = (int64_t)((l0) + j) * (F)->stride - (int64_t)(F)->pl;                      \
            int64_t t_lo, t_hi;                                                                           \
            frame_taps(p0, dil, len, ksz, &t_lo, &t_hi);                                                  \
            for (uint32_t c = 0; c < (F)->cg; ++c) {                                                      \
                const T *qc = (q) + (size_t)((g) * (F)->cg + c) * (F)->L;                                 \
                T *cc = col + (size_t)c * (F)->k;                                                         \
                int64_t t, r;                                                                             \
                for (t = 0; t < t_lo; ++t) {                                                              \
                    r = p0 + t * (dil);                                                                   \
                    cc[t] = (F)->reflect ? qc[r < 0 ? -r : 2 * ((len) - 1) - r] : 0;                      \
                }                                                                                         \
                if ((dil) == 1 && t_hi - t_lo >= 16)                                                      \
                    memcpy(cc + t_lo, qc + p0 + t_lo, sizeof(T) * (size_t)(t_hi - t_lo));                 \
                else /* a few taps: a loop (see frame_conv_row) */                                        \
                    for (t = t_lo; t < t_hi; ++t) cc[t] = qc[p0 + t * (dil)];                             \
                for (t = t_hi; t < (ksz); ++t) {                                                          \
                    r = p0 + t * (dil);                                                                   \
                    cc[t] = !(F)->reflect          ? 0                                                    \
                            : r >= 0 && r < (len) ? qc[r]                                                 \
                                                  : qc[r < 0 ? -r : 2 * ((len) - 1) - r];                 \
                }                                                                                         \
            }                                                                                             \
            for (size_t i = (kk); i < (kp); ++i) col[i] = 0;                                              \
        }                                                                                                 \
    } while (0)

/* The epilogue of a quantised frame_conv's block of n positions l0 .. l0 + n - 1 of group g: the
 * exact sums acc[j * rp + o] (element type T: int32_t for q8, int64_t for 16 x 16), one rounding
 * to float each, into y[(g * cog + o) * L_out + l0 + j] = (float)acc * (s * s_w[o]) + b[o]: the
 * same operations for both forms. */
#define FCONV_EPILOGUE(T, F, acc, rp, s, g, l0, n, y)                                                     \
    do {                                                                                                  \
        const uint32_t cog = (F)->cog, lout = (F)->lout;                                                  \
        const float *sw = (F)->s + (size_t)(g) * (rp), *bg = (F)->b + (size_t)(g) * cog;                  \
        float *yg = (y) + (size_t)(g) * cog * lout + (l0);                                                \
        for (uint32_t j = 0; j < (n); ++j) {                                                              \
            const T *aj = (acc) + j * (rp);                                                               \
            for (uint32_t o = 0; o < cog; ++o)                                                            \
                yg[(size_t)o * lout + j] = (float)aj[o] * ((s) * sw[o]) + bg[o];                          \
        }                                                                                                 \
    } while (0)

/* The q8 frame_conv (docs/q8-contract.md, "Per-step records in a q8 file"): the row x quantised
 * as one vector (the plan's quantiser, dynamic: the recurrent layers' step input rule), the
 * windows of up to RNC_FCONV_BLOCK positions gathered from its codes (padding: code 0, or the
 * mirrored code) as columns of round4(cg*k) codes, one exact int32 product of the plan's q8 row
 * with the group's packed int8 matrix, and the input projection's epilogue
 *   y[o*L_out + l] = (float)acc[l][o] * (s_x * s_w[o]) + b[o]. */
static void frame_conv_row_q8(const rnc_model *m, const rnc_front_op *F, const float *x, float *y,
                              float *scratch)
{
    const size_t kk = (size_t)F->cg * F->k, kp = r4(kk), rp = r16(F->cog), in_w = F->in_w;
    int8_t *cols = (int8_t *)(void *)scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + RNC_FCONV_BLOCK * kk);
    float *sx = scratch + RNC_FCONV_BLOCK * (kk + rp);
    int8_t *q = (int8_t *)(void *)(sx + 64);
    plan_pick(&m->plan.quantize, 1, 0)->fn.quantize(x, in_w, in_w, 0.0f, 0.0f, q, sx);
    const float s = sx[0];
    const int8_t *wq = (const int8_t *)(const void *)F->w;
    const int64_t d = F->dil, L = F->L, k = F->k;
    for (uint32_t g = 0; g < F->groups; ++g) {
        const int8_t *wg = wq + (size_t)g * rp * kp;
        for (uint32_t l0 = 0; l0 < F->lout; l0 += RNC_FCONV_BLOCK) {
            const uint32_t n = F->lout - l0 < RNC_FCONV_BLOCK ? F->lout - l0 : RNC_FCONV_BLOCK;
            FCONV_GATHER(int8_t, F, q, cols, g, l0, n, kk, kp, d, L, k);
            plan_pick(&m->plan.gemm[RNC_Q8], n, 0)->fn.gemm_q8(wg, (int)rp, (int)kk, (int)n, cols, (int)kp,
                                                             acc, (int)rp);
            FCONV_EPILOGUE(int32_t, F, acc, rp, s, g, l0, n, y);
        }
    }
}

#if !defined(RNC_NO_Q16)
/* The 16 x 16 frame_conv (docs/q8-contract.md, "A 16-bit product in the frame convolutions";
 * rnncore.quant.front.frame_conv_q16): the row x quantised as one vector to int16 codes
 * (q8's dynamic rule with 32767 for 127: s_x = m / 32767, q = rint(clip(x * (32767 / m))),
 * m = max|x|, NaN as 0), the windows gathered from the codes as frame_conv_row_q8 does, as columns
 * of round16(cg*k) codes (zero past cg*k), one exact int64 product of the plan's q16 row with the
 * group's int16 matrix, and q8's epilogue with one rounding of the int64 sum:
 *   y[o*L_out + l] = (float)acc[l][o] * (s_x * s_w[o]) + b[o].
 * Scratch (loader.c): the columns, the sums, 64 floats (the scale), the row's codes. */
static void frame_conv_row_q16(const rnc_model *m, const rnc_front_op *F, const float *x, float *y,
                               float *scratch)
{
    const size_t kk = (size_t)F->cg * F->k, kp = r16(kk), rp = r16(F->cog), in_w = F->in_w;
    int16_t *cols = (int16_t *)(void *)scratch;
    int64_t *acc = (int64_t *)(void *)(scratch + RNC_FCONV_BLOCK * kp / 2);
    float *sx = scratch + RNC_FCONV_BLOCK * (kp / 2 + 2 * rp);
    int16_t *q = (int16_t *)(void *)(sx + 64);
    int32_t mu = 0; /* max |x| on the bit patterns, NaN as 0 (rnc_q8_quantize_generic) */
    for (size_t i = 0; i < in_w; ++i) {
        int32_t u;
        memcpy(&u, &x[i], 4);
        u &= 0x7fffffff;
        u = u > 0x7f800000 ? 0 : u;
        mu = mu > u ? mu : u;
    }
    float mx, s = 0.0f;
    memcpy(&mx, &mu, 4);
    if (mx == 0.0f) {
        memset(q, 0, sizeof(int16_t) * in_w);
    } else {
        const float inv = 32767.0f / mx;
        s = mx / 32767.0f;
        for (size_t i = 0; i < in_w; ++i) {
            float p = x[i] * inv;
            p = p == p ? p : 0.0f; /* NaN (0 * inf) -> 0 */
            p = p > 32767.0f ? 32767.0f : p;
            p = p < -32767.0f ? -32767.0f : p;
            q[i] = (int16_t)(int32_t)rnc_round_even(p);
        }
    }
    const int16_t *wq = (const int16_t *)(const void *)F->w;
    const int64_t d = F->dil, L = F->L, k = F->k;
    for (uint32_t g = 0; g < F->groups; ++g) {
        const int16_t *wg = wq + (size_t)g * rp * kp;
        for (uint32_t l0 = 0; l0 < F->lout; l0 += RNC_FCONV_BLOCK) {
            const uint32_t n = F->lout - l0 < RNC_FCONV_BLOCK ? F->lout - l0 : RNC_FCONV_BLOCK;
            FCONV_GATHER(int16_t, F, q, cols, g, l0, n, kk, kp, d, L, k);
            plan_pick(&m->plan.gemm_q16, n, 0)->fn.gemm_q16(wg, (int)F->cog, (int)kk, (int)n, cols, (int)kp, acc,
                                                          (int)rp);
            FCONV_EPILOGUE(int64_t, F, acc, rp, s, g, l0, n, y);
        }
    }
}
#endif

/* y[o] = b[o] + sum_{c, j} W[o, c, j] x_{t - P + j*dilation}[g(o) C_g + c] for the step's input x
 * (cin floats) and the row's window win (the previous P inputs, oldest first): per group one
 * column [c][j] and one product of the plan's f32 GEMM row (the same for rnc_step and rnc_run);
 * then the window moves on by one step (x becomes its newest input). */
static void window_push(const rnc_front_op *F, const float *x, float *win)
{
    const size_t P = F->win, C = F->cin;
    if (P) {
        memmove(win, win + C, sizeof(float) * (P - 1) * C);
        memcpy(win + (P - 1) * C, x, sizeof(float) * C);
    }
}

/* A strided record's countdown (after its window): 1 = this step gives no output (counted down),
 * 0 = it does (the countdown restarts at stride - 1). Records without one always give an output. */
static int window_skip(const rnc_front_op *F, float *win)
{
    if (!F->phase) return 0;
    float *cd = win + (size_t)F->win * F->cin;
    if (*cd > 0.0f) {
        *cd -= 1.0f;
        return 1;
    }
    *cd = (float)(F->stride - 1);
    return 0;
}

/* A record's two counters after its countdown (tcount: a padded pool_time, a conv_time padded
 * beyond P) in its window win: the real steps it has taken (up to P) and the pad steps rnc_flush
 * has fed it; pad: this step is such a pad step. */
static void timepad_count(const rnc_front_op *F, float *win, int pad)
{
    float *cnt = win + (size_t)F->win * F->cin + F->phase;
    if (pad) cnt[1] += 1.0f;
    else if (cnt[0] < (float)F->win) cnt[0] += 1.0f;
}

/* Whether record F has taken a real input since its sequence started (row window row): its first
 * counter; a record without counters counts as fed (its right pad steps alone give no output:
 * right <= P - left, the steps its countdown skips first). */
static int timepad_fed(const rnc_front_op *F, const float *row)
{
    return !TP_COUNT(F) || row[F->win_off + (size_t)F->win * F->cin + F->phase] > 0.0f;
}

static int conv_time_row(const rnc_model *m, const rnc_front_op *F, const float *x, float *y, float *win,
                         float *scratch, int pad)
{
    const size_t kk = (size_t)F->cg * F->k, rp = r16(F->cog), P = F->win, C = F->cin;
    float *col = scratch, *prod = scratch + kk;
    if (TP_COUNT(F)) timepad_count(F, win, pad); /* the output does not read them */
    if (window_skip(F, win)) {
        window_push(F, x, win);
        return 1;
    }
    for (uint32_t g = 0; g < F->groups; ++g) {
        for (uint32_t c = 0; c < F->cg; ++c) {
            const size_t ch = (size_t)g * F->cg + c;
            float *cc = col + (size_t)c * F->k;
            for (uint32_t j = 0; j < F->k; ++j) {
                const size_t q = (size_t)j * F->dil; /* 0 .. P: the window's step q, P = x */
                cc[j] = q < P ? win[q * C + ch] : x[ch];
            }
        }
        plan_pick(&m->plan.gemm[RNC_F32], 1, 0)->fn.gemm_f32(F->w + (size_t)g * rp * kk, (int)F->cog, (int)kk,
                                                          1, col, (int)kk, prod, (int)rp);
        for (uint32_t o = 0; o < F->cog; ++o) {
            const size_t oc = (size_t)g * F->cog + o;
            y[oc] = prod[o] + F->b[oc];
        }
    }
    window_push(F, x, win);
    return 0;
}

/* pool_time (rnc_layout.h): y[c] = max_j or (1/k) sum_j of x_{t - P + j dilation}[c] over the
 * window win (the previous P inputs, oldest first) and x, at the steps the countdown lets
 * through; the window moves on by one step either way. The sum runs in tap order. A padded
 * record (tcount) reads only the real steps of window and x, [lo, hi): its counters (after the
 * countdown) hold the real steps it has taken (up to P) and the pad steps rnc_flush has fed it;
 * pad: x is such a pad step. A max then takes the largest real tap (-inf when the window holds
 * none, as PyTorch), an average divides their sum by k, or by their number (tpad_excl; 0 when
 * there are none, as ONNX Runtime). */
static int pool_time_row(const rnc_front_op *F, const float *x, float *y, float *win, int pad)
{
    const size_t P = F->win, C = F->cin;
    float *cnt = win + P * C + F->phase;
    const int skip = window_skip(F, win);
#if !defined(RNC_NO_CHUNK)
    if (!skip && !TP_COUNT(F) && F->pool_op == RNC_POOL_MAX) { /* the loop below, the taps outside */
        for (size_t c = 0; c < C; ++c) y[c] = -INFINITY;
        for (size_t j = 0; j < F->k; ++j) {
            const size_t q = j * F->dil;
            const float *v = q < P ? win + q * C : x;
            for (size_t c = 0; c < C; ++c) y[c] = v[c] > y[c] ? v[c] : y[c];
        }
        window_push(F, x, win);
        return 0;
    }
#endif
    if (!skip) {
        size_t lo = 0, hi = P + 1, n = F->k;
        if (TP_COUNT(F)) {
            const size_t nr = (size_t)cnt[0], np = (size_t)cnt[1]; /* np <= right <= P */
            lo = P - np > nr ? P - np - nr : 0;
            hi = pad ? P - np : P + 1;
            if (F->tpad_excl) {
                n = 0;
                for (uint32_t j = 0; j < F->k; ++j) n += (size_t)j * F->dil >= lo && (size_t)j * F->dil < hi;
            }
        }
        for (size_t c = 0; c < C; ++c) {
            float acc = F->pool_op == RNC_POOL_MAX ? -INFINITY : 0.0f;
            for (uint32_t j = 0; j < F->k; ++j) {
                const size_t q = (size_t)j * F->dil;
                if (q < lo || q >= hi) continue;
                const float v = q < P ? win[q * C + c] : x[c];
                if (F->pool_op == RNC_POOL_MAX) acc = v > acc ? v : acc;
                else acc += v;
            }
            y[c] = F->pool_op == RNC_POOL_MAX || !n ? acc : acc / (float)n;
        }
    }
    window_push(F, x, win);
    if (TP_COUNT(F)) timepad_count(F, win, pad);
    return skip;
}

/* The q8 conv_time (docs/q8-contract.md, "Per-step records in a q8 file"): at the steps its
 * countdown lets through (strided, or the first P - left steps), the step's k taps of every channel
 * (the window's and x's, [ch][j]) quantised as one vector (the plan's quantiser, dynamic, as a q8
 * frame_conv's row), per group its codes as one column of round4(cg*k) codes, one exact int32
 * product of the plan's q8 row, and the input projection's epilogue
 *   y[o] = (float)acc[o] * (s_x * s_w[o]) + b[o];
 * the window moves on by one step either way, as conv_time_row (its counters too). -1 when a tap is
 * not finite (a padded max pooling's window without a real input, -inf: no codes for it). Scratch
 * in 64-byte blocks (loader.c): the column's codes, the product, the taps, their codes, the scale. */
static int conv_time_row_q8(const rnc_model *m, const rnc_front_op *F, const float *x, float *y, float *win,
                            float *scratch, int pad)
{
    const size_t kk = (size_t)F->cg * F->k, kp = r4(kk), rp = r16(F->cog), P = F->win, C = F->cin;
    const size_t n = C * F->k;
    int8_t *col = (int8_t *)(void *)scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + r16(kp / 4 + 1));
    float *v = scratch + r16(kp / 4 + 1) + rp;
    int8_t *q = (int8_t *)(void *)(v + r16(n));
    float *sx = v + r16(n) + r16(r4(n) / 4 + 1);
    if (TP_COUNT(F)) timepad_count(F, win, pad);
    if (window_skip(F, win)) {
        window_push(F, x, win);
        return 1;
    }
    for (size_t ch = 0; ch < C; ++ch)
        for (uint32_t j = 0; j < F->k; ++j) {
            const size_t t = (size_t)j * F->dil; /* 0 .. P: the window's step t, P = x */
            v[ch * F->k + j] = t < P ? win[t * C + ch] : x[ch];
        }
    if (TP_ON && !rnc__all_finite(v, n)) return -1;
    plan_pick(&m->plan.quantize, 1, 0)->fn.quantize(v, n, r4(n), 0.0f, 0.0f, q, sx);
    const float s = sx[0];
    const int8_t *wq = (const int8_t *)(const void *)F->w;
    for (uint32_t g = 0; g < F->groups; ++g) {
        memcpy(col, q + (size_t)g * kk, kk);
        for (size_t i = kk; i < kp; ++i) col[i] = 0;
        plan_pick(&m->plan.gemm[RNC_Q8], 1, 0)->fn.gemm_q8(wq + (size_t)g * rp * kp, (int)rp, (int)kk, 1, col,
                                                         (int)kp, acc, (int)rp);
        const float *sw = F->s + (size_t)g * rp;
        for (uint32_t o = 0; o < F->cog; ++o) {
            const size_t oc = (size_t)g * F->cog + o;
            y[oc] = (float)acc[o] * (s * sw[o]) + F->b[oc];
        }
    }
    window_push(F, x, win);
    return 0;
}

static void pointwise_row(const rnc_front_op *F, const float *x, float *y)
{
    const uint32_t n = F->in_w;
    uint32_t i;
    switch (F->act) {
    case RNC_PW_RELU:
        for (i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case RNC_PW_SIGMOID:
        for (i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case RNC_PW_TANH:
        for (i = 0; i < n; ++i) y[i] = tanhf(x[i]);
        break;
    case RNC_PW_HARDSIGMOID:
        for (i = 0; i < n; ++i) {
            const float a = F->alpha * x[i] + F->beta;
            y[i] = a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a;
        }
        break;
    case RNC_PW_GELU:
        for (i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
#if !defined(RNC_NO_CHUNK)
    case RNC_PW_LOG_AFFINE:
        for (i = 0; i < n; ++i) y[i] = rnc_logf(F->alpha * x[i] + F->beta);
        break;
    case RNC_PW_ABS:
        for (i = 0; i < n; ++i) y[i] = fabsf(x[i]);
        break;
#endif
    case RNC_PW_LEAKYRELU:
    case RNC_PW_ELU:
        if (y != x) memmove(y, x, (size_t)n * sizeof *y);
        rnc__cellact_vec(F->act == RNC_PW_ELU ? RNC_CELLACT_ELU : RNC_CELLACT_LEAKYRELU, F->alpha, 0.0f, y, n);
        break;
#if !defined(RNC_NO_PW_EXT)
    case RNC_PW_HARDTANH:
        for (i = 0; i < n; ++i) {
            const float t = x[i] < F->alpha ? F->alpha : x[i];
            y[i] = t > F->beta ? F->beta : t;
        }
        break;
    case RNC_PW_SILU:
        for (i = 0; i < n; ++i) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case RNC_PW_HARDSWISH:
        for (i = 0; i < n; ++i) {
            float t = x[i] + 3.0f;
            t = t < 0.0f ? 0.0f : t;
            t = t > 6.0f ? 6.0f : t;
            y[i] = x[i] * t / 6.0f;
        }
        break;
    case RNC_PW_SOFTPLUS: /* alpha: beta, beta: threshold; the cell softplus on alpha x, by blocks */
        for (i = 0; i < n;) {
            float t[64];
            const uint32_t m = n - i < 64u ? n - i : 64u;
            uint32_t j;
            for (j = 0; j < m; ++j) t[j] = F->alpha * x[i + j];
            rnc__cellact_vec(RNC_CELLACT_SOFTPLUS, 0.0f, 0.0f, t, m);
            for (j = 0; j < m; ++j) y[i + j] = F->alpha * x[i + j] > F->beta ? x[i + j] : t[j] / F->alpha;
            i += m;
        }
        break;
    case RNC_PW_SOFTSIGN:
        if (y != x) memmove(y, x, (size_t)n * sizeof *y);
        rnc__cellact_vec(RNC_CELLACT_SOFTSIGN, 0.0f, 0.0f, y, n);
        break;
#endif
    default: /* RNC_PW_GELU_TANH */
        for (i = 0; i < n; ++i) {
            const float u = 0.79788456080286536f * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
            y[i] = 0.5f * x[i] * (1.0f + tanhf(u));
        }
        break;
    }
}

/* y = (x - mean) / sqrt(var + eps) * w + b over the row (var the biased variance), in float32:
 * the mean, then the mean of the squared deviations, as rnncore.nn.norm.layer_norm. */
static void layer_norm_row(const rnc_front_op *F, const float *x, float *y)
{
    const uint32_t n = F->in_w;
    float s = 0.0f, v = 0.0f;
    for (uint32_t i = 0; i < n; ++i) s += x[i];
    const float mean = s / (float)n;
    for (uint32_t i = 0; i < n; ++i) v += (x[i] - mean) * (x[i] - mean);
    const float rstd = 1.0f / sqrtf(v / (float)n + F->eps);
    for (uint32_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * F->w[i] + F->b[i];
}

/* A record that maps each row alone, in place allowed (pointwise, layer_norm, scale_shift). */
static void rowwise(const rnc_front_op *F, const float *x, float *y)
{
    if (F->kind == RNC_REC_LAYER_NORM) {
        layer_norm_row(F, x, y);
    } else if (F->kind == RNC_REC_SCALE_SHIFT) {
        for (uint32_t i = 0; i < F->in_w; ++i) y[i] = x[i] * F->w[i] + F->b[i];
    } else {
        pointwise_row(F, x, y);
    }
}

/* log_mel (rnc_layout.h), the spectrum by the tables' product (the sizes the FFT does not take,
 * rnc__fft_plan): u = window * x; folded by the DFT's symmetry (columns j and n - j of the
 * cosines are equal, of the sines opposite) into v[j] = u[j] + u[n-j], w[j] = u[j] - u[n-j]
 * (j < N; u[j] alone where n - j <= j, w's terms there have zero sines); re = C v, im = S w by the
 * plan's f32 GEMM row (one column each); p = re^2 + im^2 (power 2) or its square root (power 1),
 * returned (N floats in scratch). */
static float *log_mel_dft(const rnc_model *m, const rnc_front_op *F, const float *x, float *scratch)
{
    const uint32_t n = F->in_w, N = F->nfreq, rp = (uint32_t)r16(N);
    float *u = scratch, *v = u + n, *w = v + N, *re = w + N, *im = re + rp;
    for (uint32_t i = 0; i < n; ++i) u[i] = F->window[i] * x[i];
    v[0] = u[0];
    w[0] = 0.0f;
    for (uint32_t j = 1; j < N; ++j) {
        const uint32_t r = n - j;
        v[j] = r > j ? u[j] + u[r] : u[j];
        w[j] = r > j ? u[j] - u[r] : 0.0f;
    }
    const rnc_gemm_f32_fn gemm = plan_pick(&m->plan.gemm[RNC_F32], 1, 0)->fn.gemm_f32;
    gemm(F->dft, (int)N, (int)N, 1, v, (int)N, re, (int)rp);
    gemm(F->dft + (size_t)rp * N, (int)N, (int)N, 1, w, (int)N, im, (int)rp);
    for (uint32_t k = 0; k < N; ++k) {
        const float p = re[k] * re[k] + im[k] * im[k];
        re[k] = F->power == 1 ? sqrtf(p) : p;
    }
    return re;
}

/* log_mel (rnc_layout.h): the power (or magnitude) spectrum p of the windowed frame, by a real FFT
 * (kernels/f32_fft_generic.c; tw: its twiddles in the state's work) or the tables' product;
 * mel[m] = the filter's weights against its span of p; y = mel, log(mel + log_offset) or
 * 10 log10(max(mel, amin)). */
static void log_mel_row(const rnc_model *m, const rnc_front_op *F, const float *x, float *y, float *scratch,
                        const float *tw)
{
    float *re = scratch + 2 * (size_t)F->in_w;
    if (F->fft_m) {
        const rnc_fft_args a = {F->fft_m, F->fft_nst, F->power, F->fft_radix, tw, F->window, x,
                                scratch, re};
        plan_pick(&m->plan.rfft, 1, 0)->fn.rfft(&a);
    } else {
        re = log_mel_dft(m, F, x, scratch);
    }
    const float *fw = F->fbw, c = F->log_c;
    const uint32_t nm = F->out_w;
    /* four filters at a time, each summed in its own order (k = 0, 1, ...): four independent
     * chains of adds over their common length, then each filter's rest (a build for size: one at
     * a time, the same bits) */
    uint32_t j = 0;
#if !defined(__OPTIMIZE_SIZE__)
    for (; j + 4 <= nm; j += 4) {
        const uint32_t *sp = F->span + 2 * j;
        const float *w0 = fw, *w1 = w0 + sp[1], *w2 = w1 + sp[3], *w3 = w2 + sp[5];
        const float *p0 = re + sp[0], *p1 = re + sp[2], *p2 = re + sp[4], *p3 = re + sp[6];
        uint32_t n = sp[1] < sp[3] ? sp[1] : sp[3];
        n = n < sp[5] ? n : sp[5];
        n = n < sp[7] ? n : sp[7];
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (uint32_t k = 0; k < n; ++k) {
            a0 += w0[k] * p0[k];
            a1 += w1[k] * p1[k];
            a2 += w2[k] * p2[k];
            a3 += w3[k] * p3[k];
        }
        for (uint32_t k = n; k < sp[1]; ++k) a0 += w0[k] * p0[k];
        for (uint32_t k = n; k < sp[3]; ++k) a1 += w1[k] * p1[k];
        for (uint32_t k = n; k < sp[5]; ++k) a2 += w2[k] * p2[k];
        for (uint32_t k = n; k < sp[7]; ++k) a3 += w3[k] * p3[k];
        fw = w3 + sp[7];
        y[j] = a0;
        y[j + 1] = a1;
        y[j + 2] = a2;
        y[j + 3] = a3;
    }
#endif
    for (; j < nm; ++j) {
        const uint32_t first = F->span[2 * j], count = F->span[2 * j + 1];
        float acc = 0.0f;
        for (uint32_t k = 0; k < count; ++k) acc += fw[k] * re[first + k];
        fw += count;
        y[j] = acc;
    }
    /* the log apart: a loop the compiler vectorises (kernels/logf.h), log(max(mel + add, lo)) times
     * scale: log(mel + c) (add c, lo -inf, scale 1: the same bits as the log, NaN stays NaN) or
     * 10 log10(max(mel, c)) = (10 / ln 10) log(max(mel, c)) (add 0, lo c) */
    if (F->log == RNC_MEL_LOG || F->log == RNC_MEL_LOG_DB) {
        const int db = F->log == RNC_MEL_LOG_DB;
        const float scale = db ? RNC_DB_PER_NEPER : 1.0f, add = db ? 0.0f : c, lo = db ? c : -INFINITY;
        for (j = 0; j < nm; ++j) {
            const float v = y[j] + add;
            y[j] = scale * rnc_logf(v > lo ? v : lo);
        }
    }
}

/* One row through per-step record F: x (F->in_w floats) -> y (F->out_w floats), y != x; win: the
 * stream row's windows. 0, or 1 when a strided record gives no output at this step. */
static int front_row(const rnc_model *m, const rnc_front_op *F, const float *x, float *y, float *win,
                     float *scratch, const float *tw, int pad)
{
    if (F->kind == RNC_REC_CONV_TIME) {
        if (!F->s) return conv_time_row(m, F, x, y, win + F->win_off, scratch, pad);
        return conv_time_row_q8(m, F, x, y, win + F->win_off, scratch, pad);
    } else if (F->kind == RNC_REC_POOL_TIME) {
        return pool_time_row(F, x, y, win + F->win_off, pad);
    } else if (F->kind == RNC_REC_FRAME_CONV) {
        if (F->s && TP_ON && !rnc__all_finite(x, F->in_w)) return -1; /* -inf of a padded max pooling */
#if !defined(RNC_NO_Q16)
        if (F->q16) frame_conv_row_q16(m, F, x, y, scratch);
        else
#endif
        if (F->s) frame_conv_row_q8(m, F, x, y, scratch);
        else frame_conv_row(m, F, x, y, scratch);
    } else if (F->kind == RNC_REC_LOG_MEL) {
        log_mel_row(m, F, x, y, scratch, tw);
    } else if (F->kind == RNC_REC_MAGNITUDE) {
        const uint32_t M = F->out_w;
        for (uint32_t i = 0; i < M; ++i) y[i] = sqrtf(x[i] * x[i] + x[M + i] * x[M + i]);
#if !defined(RNC_NO_POST_CONV)
    } else if (F->kind == RNC_REC_MUL_HALVES) {
        const uint32_t M = F->out_w;
        for (uint32_t i = 0; i < M; ++i) y[i] = x[i] * x[M + i];
#endif
    } else {
        rowwise(F, x, y);
    }
    return 0;
}

/* The per-step records before the first recurrent layer (the front-end): how many, the width
 * they leave. */
static uint32_t front_count(const rnc_model *m, size_t *width)
{
    uint32_t n = 0;
    *width = m->input_size;
    for (uint32_t i = 0; i < m->num_stages && m->stage[i] != RNC_REC_RECURRENT; ++i)
        if (m->stage[i] >= RNC_REC_FRAME_CONV) *width = m->front[n++].out_w;
    return n;
}

/* Row x through the per-step records first..first+n-1 (ping-pong in fa / fb, each front_w
 * floats) into out (out may be x when every record maps a row alone), with the stream row's
 * conv_time windows win (moved on by one step) and the residuals' saved inputs in save (a record's
 * input is copied there before it runs when a later residual of the run adds it; a residual
 * y = x + saved), log_mel's FFT twiddles in tw; 0, -1 when the result holds NaN/Inf (float32
 * overflow; or a q8 conv_time's taps or a q8 frame_conv's input do, which have no codes), or 1
 * when a strided record gives no output at this step (out is not written; the records after it do
 * not run). x NULL: record first takes one of its right pad steps (rnc_flush:
 * zeros, which a padded pool_time leaves out). */
#if XRES_ON
#define XS_PARAM , float *xs
#define XS_ARG(a) , (a)
#define XS_ROW xs
#else
#define XS_PARAM
#define XS_ARG(a)
#define XS_ROW ((float *)NULL)
#endif
static int step_rows(const rnc_model *m, uint32_t first, uint32_t n, const float *x, float *out, float *fa,
                     float *fb, float *save, float *win, float *scratch, const float *tw XS_PARAM)
{
    const float *in = x;
    const int pad = TP_ON && x == NULL;
    if (pad) {
        memset(fa, 0, sizeof(float) * m->front[first].in_w);
        in = fa;
    }
    for (uint32_t i = first; i < first + n; ++i) {
        const rnc_front_op *F = &m->front[i];
        float *dst = i + 1 == first + n ? out : (in == fa ? fb : fa);
        /* (a residual across recurrent records may stand in a later run: its copy goes to the
         * row's skip area xs) */
        for (uint32_t j = i + 1; j < (XRES_ON && m->xres_floats ? m->num_front : first + n); ++j)
            if ((m->front[j].kind == RNC_REC_RESIDUAL || IS_CONCAT(m->front[j].kind)) && m->front[j].src == i)
                memcpy((XRES_ON && m->front[j].xres ? XS_ROW : save) + m->front[j].save_off, in,
                       sizeof(float) * F->in_w);
        if (F->kind == RNC_REC_RESIDUAL) {
            const float *u = (XRES_ON && F->xres ? XS_ROW : save) + F->save_off;
            for (uint32_t k = 0; k < F->in_w; ++k) dst[k] = in[k] + u[k];
        } else if (IS_CONCAT(F->kind)) { /* [u ; x] (dst may be in: x moves first) */
            const uint32_t uw = F->out_w - F->in_w;
            memmove(dst + uw, in, sizeof(float) * F->in_w);
            memcpy(dst, save + F->save_off, sizeof(float) * uw);
        } else {
            const int r = front_row(m, F, in, dst, win, scratch, tw, pad && i == first);
            if (r) return r;
        }
        in = dst;
    }
    return rnc__all_finite(out, m->front[first + n - 1].out_w) ? 0 : -1;
}

/* The per-step records from stage i on that follow the recurrent layers (frame_conv, pointwise,
 * layer_norm, scale_shift, mul_halves, residual): how many in a row. */
static uint32_t post_run(const rnc_model *m, uint32_t i)
{
    uint32_t n = 0;
    while (i + n < m->num_stages &&
           (m->stage[i + n] == RNC_REC_POINTWISE || m->stage[i + n] == RNC_REC_LAYER_NORM ||
            m->stage[i + n] == RNC_REC_SCALE_SHIFT || m->stage[i + n] == RNC_REC_RESIDUAL ||
            (POST_CONV(m) && (m->stage[i + n] == RNC_REC_FRAME_CONV || IS_MUL_HALVES(m->stage[i + n])))))
        ++n;
    return n;
}

#if XRES_ON
/* Layer l's input rows (rows of w floats; in NULL: the embeddings of ids) into the skip rows xs
 * (xres_floats a row) of every residual whose span starts at layer l (y = x + GRU(x)). */
static void xres_save_layer(const rnc_model *m, uint32_t l, const float *in, const int32_t *ids, size_t w,
                            size_t rows, float *xs)
{
    for (uint32_t j = 0; j < m->num_front; ++j)
        if (m->front[j].kind == RNC_REC_RESIDUAL && m->front[j].xres && m->front[j].src == RNC_MAX_FRONT + l)
            for (size_t r = 0; r < rows; ++r) {
                float *dst = xs + r * m->xres_floats + m->front[j].save_off;
                if (in) memcpy(dst, in + r * w, sizeof(float) * w);
                else gather(m, ids + r, 1, dst);
            }
}
#endif

#if !defined(RNC_NO_INT)
/* ------------------------------------------------------------------------------------------
 * RNC_INT8: fully-integer models (rnncore.quant.integer: int_forward, bit for bit). The state
 * crosses between calls as floats that map to the integers exactly (internal.h,
 * rnc__int8_from_float); within a call it is integers only, stepped by the plan's INT_STEP row
 * with its S8_MATVEC products. x is quantised with layer 0's input scale; y is the last layer's
 * h8 dequantised, s_h (h8 - zp), or the head's integer logits y_q as out_scale y_q (softmax in
 * binary64 when the head has it), each computed in binary64 and rounded to float32 once.
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    const rnc_model *m;
    rnc_int_work w;
    unsigned char *base;
    rnc_int_cell cell[RNC_MAX_LAYERS];
} int_ctx;

static int8_t *int_h8(const int_ctx *k, size_t B, uint32_t l)
{
    return (int8_t *)(k->base + k->w.h8) + k->m->layer[l].h_offset * B;
}

static int16_t *int_s16(const int_ctx *k, size_t B, uint32_t l)
{
    return (int16_t *)(k->base + k->w.s16) + k->m->layer[l].h_offset * B;
}

/* the context of a call; the float state into the integer areas */
static void int_open(int_ctx *k, const rnc_model *m, const rnc_state *s, unsigned char *base)
{
    const size_t B = s->batch;
    k->m = m;
    k->w = int_work(m, B);
    k->base = base;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        rnc__int8_cell(L, &k->cell[l]);
        rnc__int8_from_float(&k->cell[l], L, B, s->h + L->h_offset * B,
                             L->kind == RNC_LSTM ? s->c + L->c_offset * B : NULL, int_h8(k, B, l),
                             int_s16(k, B, l));
    }
}

/* the integer state back into the float state */
static void int_close(const int_ctx *k, rnc_state *s)
{
    const size_t B = s->batch;
    for (uint32_t l = 0; l < k->m->num_layers; ++l) {
        const rnc_layer *L = &k->m->layer[l];
        rnc__int8_to_float(&k->cell[l], L, B, int_h8(k, B, l), int_s16(k, B, l), s->h + L->h_offset * B,
                           L->kind == RNC_LSTM ? s->c + L->c_offset * B : NULL);
    }
}

/* one step of every layer for the rows of x8 (B x input_size) that are active (NULL: all) */
static void int_layers(const int_ctx *k, size_t B, const void *x8, const uint8_t *active)
{
    const rnc_model *m = k->m;
    const rnc_s8_matvec_fn matvec = plan_pick(&m->plan.s8_matvec, 1, 0)->fn.s8_matvec;
    size_t ldx = m->input_size * (m->layer[0].iq.input_s16 ? 2u : 1u); /* bytes */
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        rnc_int8_args a;
        a.cell = &k->cell[l];
        a.matvec = matvec;
        a.batch = (uint32_t)B;
        a.x8 = x8;
        a.ldx = ldx;
        a.h8 = int_h8(k, B, l);
        a.s16 = L->kind == RNC_LSTM || L->kind == RNC_GRU ? int_s16(k, B, l) : NULL;
        a.active = active;
        a.scratch = k->base + k->w.scr;
        a.scratch_bytes = k->w.scr_bytes;
        plan_pick(&m->plan.cell_x[l], B, 0)->fn.int_step(&a);
        x8 = a.h8;
        ldx = L->hidden_size;
    }
}

/* y (output_size floats) of one row of the last layer's h8 */
static void int_output(const int_ctx *k, const int8_t *h8, float *y)
{
    const rnc_model *m = k->m;
    const rnc_layer *L = &m->layer[m->num_layers - 1];
    if (!m->head) {
        for (uint32_t i = 0; i < L->hidden_size; ++i) y[i] = (float)(L->iq.h_scale * (double)(h8[i] - L->iq.h_zp));
        return;
    }
    int32_t *yq = (int32_t *)(k->base + k->w.yq);
    const rnc_int_linear lin = {(int32_t)m->head_in, (int32_t)m->head_out, m->ihead.w, m->ihead.b, m->ihead.m,
                                m->ihead.e};
    (void)rnc_int_linear_run(&lin, plan_pick(&m->plan.s8_matvec, 1, 0)->fn.s8_matvec, h8, yq); /* checked at load */
    const double os = m->ihead.out_scale;
    const uint32_t O = m->head_out;
    if (m->head_act != RNC_ACT_SOFTMAX) {
        for (uint32_t i = 0; i < O; ++i) y[i] = (float)(os * (double)yq[i]);
        return;
    }
    double mx = os * (double)yq[0], sum = 0.0;
    for (uint32_t i = 1; i < O; ++i) mx = os * (double)yq[i] > mx ? os * (double)yq[i] : mx;
    for (uint32_t i = 0; i < O; ++i) sum += exp(os * (double)yq[i] - mx);
    for (uint32_t i = 0; i < O; ++i) y[i] = (float)(exp(os * (double)yq[i] - mx) / sum);
}

/* rnc_step of an RNC_INT8 model (x checked finite, y may be x) */
static rnc_status int_step(const rnc_model *m, rnc_state *s, const float *x, float *y, unsigned char *base)
{
    int_ctx k;
    const size_t B = s->batch, H = m->layer[m->num_layers - 1].hidden_size;
    int_open(&k, m, s, base);
    void *x8 = base + k.w.x8;
    rnc__int_quantize_input(&m->layer[0], x, B * m->input_size, x8);
    int_layers(&k, B, x8, NULL);
    const int8_t *h8 = int_h8(&k, B, m->num_layers - 1);
    for (size_t b = 0; b < B; ++b) int_output(&k, h8 + b * H, y + b * m->output_size);
    int_close(&k, s);
    return RNC_OK;
}

/* rnc_run of an RNC_INT8 model (arguments checked, x finite within the lengths): step by step,
 * rows past their length inactive (their state kept, their y zero); last-step pooling takes each
 * row's h8 at its step length - 1 (real 0, h8 = zp, for a length of 0). */
static rnc_status int_run(const rnc_model *m, rnc_state *s, const float *x, const int32_t *lengths, size_t T,
                          float *y, unsigned char *base)
{
    int_ctx k;
    const size_t B = s->batch, I = m->input_size, O = m->output_size;
    const uint32_t last = m->num_layers - 1;
    const size_t H = m->layer[last].hidden_size;
    const int8_t zp = (int8_t)m->layer[last].iq.h_zp;
    int_open(&k, m, s, base);
    unsigned char *x8 = base + k.w.x8;
    int8_t *pooled = (int8_t *)(base + k.w.pooled);
    const size_t xb = m->layer[0].iq.input_s16 ? 2u : 1u; /* bytes per input value */
    uint8_t *active = base + k.w.active;
    const int8_t *h8 = int_h8(&k, B, last);
    if (m->last_step) memset(pooled, zp, B * H);
    for (size_t t = 0; t < T; ++t) {
        for (size_t b = 0; b < B; ++b) {
            active[b] = !lengths || t < (size_t)lengths[b];
            if (active[b]) rnc__int_quantize_input(&m->layer[0], x + (b * T + t) * I, I, x8 + b * I * xb);
        }
        int_layers(&k, B, x8, active);
        for (size_t b = 0; b < B; ++b) {
            if (m->last_step) {
                if (active[b] && t + 1 == (lengths ? (size_t)lengths[b] : T))
                    memcpy(pooled + b * H, h8 + b * H, H);
            } else if (active[b]) {
                int_output(&k, h8 + b * H, y + (b * T + t) * O);
            } else {
                memset(y + (b * T + t) * O, 0, O * sizeof(float));
            }
        }
    }
    if (m->last_step)
        for (size_t b = 0; b < B; ++b) int_output(&k, pooled + b * H, y + b * O);
    int_close(&k, s);
    return RNC_OK;
}
#endif

/* The strided records' countdowns of every row: integers in [0, max(skip0, stride - 1)]
 * (RNC_E_STATE otherwise); with `same`, equal in every row (rnc_step runs the rows in step). A
 * padded pool_time's counters: real steps in [0, P], pad steps 0 (within rnc_flush: 0..right). */
static rnc_status check_countdowns(const rnc_model *m, const rnc_state *s, int same, int flushing)
{
    for (uint32_t i = 0; i < m->num_front; ++i) {
        const rnc_front_op *F = &m->front[i];
        if (TP_COUNT(F)) /* a padded pool_time's counters: real steps 0..P, pad steps 0 between calls */
            for (size_t b = 0; b < s->batch; ++b) {
                const float *cnt = s->win + b * m->win_floats + F->win_off + (size_t)F->win * F->cin + F->phase;
                if (!(cnt[0] >= 0.0f && cnt[0] <= (float)F->win) || cnt[0] != (float)(uint32_t)cnt[0] ||
                    (flushing ? !(cnt[1] >= 0.0f && cnt[1] <= (float)TP_RIGHT(F)) || cnt[1] != (float)(uint32_t)cnt[1]
                              : cnt[1] != 0.0f))
                    return RNC_E_STATE;
            }
        if (!F->phase) continue;
        const float hi = (float)(F->skip0 > F->stride - 1 ? F->skip0 : F->stride - 1);
        const size_t at = F->win_off + (size_t)F->win * F->cin;
        for (size_t b = 0; b < s->batch; ++b) {
            const float v = s->win[b * m->win_floats + at];
            if (!(v >= 0.0f && v <= hi) || v != (float)(uint32_t)v) return RNC_E_STATE;
            if (same && v != s->win[at]) return RNC_E_STATE;
        }
    }
    return RNC_OK;
}

#if !defined(RNC_NO_MEAN)
#define MEAN_MAX_STEPS 16777216.0f /* 2^24: the step count, a float, stays exact */
/* The mean pooling's running sums (finite) and step counts (integers in [0, 2^24 - add]) of every
 * row: RNC_E_STATE otherwise (a count past 2^24 would stop growing: a wrong mean). */
static rnc_status check_mean(const rnc_model *m, const rnc_state *s, size_t add)
{
    for (size_t b = 0; b < s->batch; ++b) {
        const float *row = s->win + b * m->win_floats + m->mean_off, n = row[m->mean_w];
        if (!(n >= 0.0f && (double)n + (double)add <= (double)MEAN_MAX_STEPS) || n != (float)(uint32_t)n ||
            !rnc__all_finite(row, m->mean_w))
            return RNC_E_STATE;
    }
    return RNC_OK;
}

/* One step of the mean pooling for row b: v into its running sum and count, the mean in out
 * (equations.md, "Mean pooling": sum + v in float32, then sum / count). */
static void mean_step(const rnc_model *m, rnc_state *s, size_t b, const float *v, float *out)
{
    float *row = s->win + b * m->win_floats + m->mean_off;
    const size_t F = m->mean_w;
    const float n = row[F] + 1.0f;
    row[F] = n;
    for (size_t j = 0; j < F; ++j) {
        row[j] = row[j] + v[j];
        out[j] = row[j] / n;
    }
}

/* The max pooling's running maxima (finite) and seen flags (0: no step since the reset, 1) of
 * every row: RNC_E_STATE otherwise. */
static rnc_status check_max(const rnc_model *m, const rnc_state *s)
{
    for (size_t b = 0; b < s->batch; ++b) {
        const float *row = s->win + b * m->win_floats + m->max_off, seen = row[m->mean_w];
        if (!(seen == 0.0f || seen == 1.0f) || !rnc__all_finite(row, m->mean_w)) return RNC_E_STATE;
    }
    return RNC_OK;
}

/* One step of the max pooling for row b: v into its running maxima (equations.md, "Max pooling":
 * the first step's row, then v[j] where v[j] > max[j], so a tie keeps the earlier step's value). */
static void max_step(const rnc_model *m, rnc_state *s, size_t b, const float *v)
{
    float *row = s->win + b * m->win_floats + m->max_off;
    const size_t F = m->mean_w;
    const int first = row[F] == 0.0f;
    for (size_t j = 0; j < F; ++j)
        if (first || v[j] > row[j]) row[j] = v[j];
    row[F] = 1.0f;
}

/* The pooled row of row b's state: the maxima, or zeros before the first step. */
static void max_out(const rnc_model *m, const rnc_state *s, size_t b, float *out)
{
    const float *row = s->win + b * m->win_floats + m->max_off;
    const float seen = row[m->mean_w];
    for (size_t j = 0; j < m->mean_w; ++j) out[j] = seen > 0.0f ? row[j] : 0.0f;
}
#endif

#if !defined(RNC_NO_ATTN)
/* The attention pooling's state in every row (rnc_state.win from mean_off: the weighted sum acc
 * of F floats, the running max mx, the running sum sm of exponentials): finite, and sm = 0 (no
 * step since the reset) or sm >= 1 (the step at the max adds exp(0) = 1); RNC_E_STATE otherwise. */
static rnc_status check_attn(const rnc_model *m, const rnc_state *s)
{
    for (size_t b = 0; b < s->batch; ++b) {
        const float *row = s->win + b * m->win_floats + m->mean_off;
        const float sm = row[m->mean_w + 1];
        if (!rnc__all_finite(row, m->mean_w + 2) || !(sm == 0.0f || sm >= 1.0f)) return RNC_E_STATE;
    }
    return RNC_OK;
}

/* The score of the pooled row x (equations.md, "Attention pooling"): e = sum_a v[a] u[a],
 * u[a] = tanh(sum_k W[a, k] x[k] + b[a]), every sum in float32 in index order. */
static float attn_score(const rnc_model *m, const float *x)
{
    const size_t F = m->mean_w;
    float e = 0.0f;
    for (size_t a = 0; a < m->attn_a; ++a) {
        const float *w = m->attn_w + a * F;
        float z = 0.0f;
        for (size_t k = 0; k < F; ++k) z = z + w[k] * x[k];
        e = e + m->attn_v[a] * rnc_tanhf(z + m->attn_b[a]);
    }
    return e;
}

/* One step of the online softmax of row b: the step's score e and row x into the row's state
 * (acc, mx, sm; rescaled by exp(mx - e) when e is the new max; exp in double, rounded to float). */
static void attn_update(const rnc_model *m, rnc_state *s, size_t b, float e, const float *x)
{
    float *acc = s->win + b * m->win_floats + m->mean_off;
    const size_t F = m->mean_w;
    float *mx = acc + F, *sm = acc + F + 1;
    if (*sm == 0.0f) { /* the first step since the reset */
        for (size_t j = 0; j < F; ++j) acc[j] = x[j];
        *mx = e;
        *sm = 1.0f;
    } else if (e > *mx) {
        const float c = (float)exp((double)(*mx - e));
        for (size_t j = 0; j < F; ++j) acc[j] = acc[j] * c + x[j];
        *sm = *sm * c + 1.0f;
        *mx = e;
    } else {
        const float p = (float)exp((double)(e - *mx));
        for (size_t j = 0; j < F; ++j) acc[j] = acc[j] + p * x[j];
        *sm = *sm + p;
    }
}

/* The pooled row of row b's state: acc / sm, or zeros before the first step. */
static void attn_out(const rnc_model *m, const rnc_state *s, size_t b, float *out)
{
    const float *acc = s->win + b * m->win_floats + m->mean_off;
    const float sm = acc[m->mean_w + 1];
    for (size_t j = 0; j < m->mean_w; ++j) out[j] = sm > 0.0f ? acc[j] / sm : 0.0f;
}
#endif

/* Row window win's countdowns in cd (0 for records without one). */
static void front_countdowns(const rnc_model *m, const float *win, size_t *cd)
{
    for (uint32_t i = 0; i < m->num_front; ++i) {
        const rnc_front_op *F = &m->front[i];
        cd[i] = F->phase ? (size_t)win[F->win_off + (size_t)F->win * F->cin] : 0;
    }
}

/* Whether row window row is at the start of a sequence (as front_init_row leaves it): zero windows
 * and counters, each countdown at its start. */
static int row_fresh(const rnc_model *m, const float *row)
{
    for (uint32_t i = 0; i < m->num_front; ++i) {
        const rnc_front_op *F = &m->front[i];
        const size_t at = (size_t)F->win * F->cin, n = at + F->phase + (TP_COUNT(F) ? 2u : 0u);
        if (F->kind != RNC_REC_CONV_TIME && F->kind != RNC_REC_POOL_TIME) continue;
        for (size_t k = 0; k < n; ++k)
            if (row[F->win_off + k] != (F->phase && k == at ? (float)F->skip0 : 0.0f)) return 0;
    }
    return 1;
}

/* Row window row's fed flags (timepad_fed) in fed. */
static void front_fed(const rnc_model *m, const float *row, unsigned char *fed)
{
    for (uint32_t i = 0; i < m->num_front; ++i) fed[i] = (unsigned char)timepad_fed(&m->front[i], row);
}

/* n input steps through the front-end from countdowns cd (moved on; fed: the records they reach):
 * the outputs they give. */
static size_t front_advance(const rnc_model *m, size_t *cd, unsigned char *fed, size_t n)
{
    for (uint32_t i = 0; i < m->num_front && n; ++i) {
        const rnc_front_op *F = &m->front[i];
        fed[i] = 1;
        if (!F->phase) continue;
        if (n <= cd[i]) {
            cd[i] -= n;
            n = 0;
        } else {
            const size_t o = 1 + (n - cd[i] - 1) / F->stride;
            cd[i] = F->stride - 1 - (n - cd[i] - 1) % F->stride;
            n = o;
        }
    }
    return n;
}

/* The outputs rnc_flush gives from countdowns cd and fed flags fed (front_fed): each record's
 * right pad steps, in record order, through the records from it on; none for a record that has
 * taken no input (PyTorch gives no output for an empty sequence), which its pad steps' outputs
 * give the records after it. */
static size_t flush_outputs(const rnc_model *m, size_t *cd, unsigned char *fed)
{
    size_t n = 0;
    for (uint32_t i = 0; i < m->num_front; ++i)
        for (uint32_t p = 0; p < TP_RIGHT(&m->front[i]) && fed[i]; ++p) {
            int pass = 1;
            for (uint32_t j = i; j < m->num_front && pass; ++j) {
                const rnc_front_op *F = &m->front[j];
                fed[j] = 1;
                if (!F->phase) continue;
                if (cd[j] > 0) {
                    --cd[j];
                    pass = 0;
                } else {
                    cd[j] = F->stride - 1;
                }
            }
            n += (size_t)pass;
        }
    return n;
}

/* The outputs n input steps give through the front-end from row window win (its countdowns). */
static size_t front_outputs(const rnc_model *m, const float *win, size_t n)
{
    for (uint32_t i = 0; i < m->num_front && n; ++i) {
        const rnc_front_op *F = &m->front[i];
        if (!F->phase) continue;
        const size_t cd = (size_t)win[F->win_off + (size_t)F->win * F->cin];
        n = n <= cd ? 0 : 1 + (n - cd - 1) / F->stride;
    }
    return n;
}

rnc_status rnc_run_out_steps(const rnc_model *m, const rnc_state *s, size_t steps, size_t *out_steps)
{
    rnc_step_work w;
    if (!out_steps) return RNC_E_ARG;
    TRY(check_state(m, s, &w));
    size_t most = 0;
    if (TP_FLUSH(m)) { /* rnc_run flushes: the steps, then the right pads (none without input) */
        TRY(check_countdowns(m, s, 0, 0));
        for (size_t b = 0; b < s->batch; ++b) {
            size_t cd[RNC_MAX_FRONT];
            unsigned char fed[RNC_MAX_FRONT];
            front_countdowns(m, s->win + b * m->win_floats, cd);
            front_fed(m, s->win + b * m->win_floats, fed);
            size_t n = front_advance(m, cd, fed, steps);
            if (steps) n += flush_outputs(m, cd, fed);
            if (n > most) most = n;
        }
    } else if (!m->strided) most = steps;
    else {
        TRY(check_countdowns(m, s, 0, 0));
        for (size_t b = 0; b < s->batch; ++b) {
            const size_t n = front_outputs(m, s->win + b * m->win_floats, steps);
            if (n > most) most = n;
        }
    }
    *out_steps = most;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * step
 * ---------------------------------------------------------------------------------------- */
/* One step of every row; first > 0 (rnc_flush): x and ids NULL, front-end record `first` takes
 * one of its right pad steps and the records before it do not run. */
static rnc_status step_common(const rnc_model *m, rnc_state *s, const float *x,
                              const int32_t *ids, float *y, uint32_t first)
{
    rnc_step_work w;
    const int pad = TP_ON && first > 0;
    first -= (uint32_t)pad;
    TRY(check_state(m, s, &w));
    if (!y || (!x && !ids && !pad)) return RNC_E_ARG;
    if (((uintptr_t)x | (uintptr_t)ids | (uintptr_t)y) & 3u) return RNC_E_ALIGN; /* ARMv7 VFP faults */
    if (!pad && (ids != NULL) != (m->uses_ids != 0)) return RNC_E_ARG;
    if (m->plan.bidirectional || m->plan.reverse) return RNC_E_BIDIRECTIONAL;
    if (SEQ_NORM(m)) return RNC_E_UNSUPPORTED; /* instance_norm: whole sequences (rnc_run) */
    const size_t B = s->batch;
    unsigned char *wk = s->work;
    if (ids) TRY(check_ids(m, ids, B));
    else if (!pad && !rnc__all_finite(x, B * m->input_size)) return RNC_E_VALUE;
#if !defined(RNC_NO_INT)
    if (m->precision == RNC_INT8) return int_step(m, s, x, y, wk + w.ints);
#endif
    if (m->plan.unbounded) TRY(check_relu_states(m, s));
    if (s->win) TRY(check_countdowns(m, s, 1, pad)); /* countdowns, a padded pool_time's counters */
#if !defined(RNC_NO_MEAN)
    if (m->last_step_mean) TRY(check_mean(m, s, 1));
    if (m->last_step_max) TRY(check_max(m, s));
#endif
#if !defined(RNC_NO_ATTN)
    if (m->attn) TRY(check_attn(m, s));
#endif
    const float *in = x;
    size_t in_w = m->input_size;
    int8_t *xq = (int8_t *)(wk + w.xq);
    float *sx = (float *)(wk + w.sx);
    const rnc_quantize_fn quantize = plan_pick(&m->plan.quantize, 1, 0)->fn.quantize;
    int y_written = 0;
    uint32_t l = 0, f = 0;
    float *fa = (float *)(wk + w.fa), *fb = (float *)(wk + w.fb), *fr = (float *)(wk + w.fr);
    float *fscr = (float *)(wk + w.fscr), *fsave = (float *)(wk + w.fsave);
#if XRES_ON
    float *xsave = (float *)(wk + w.xsave);
#endif
    size_t pre_w;
    const uint32_t npre = front_count(m, &pre_w);
    if (npre) { /* the front-end, row by row into fb (rows of pre_w) through the two rows fr */
        float *out = fb;
        int none = 0; /* the countdowns are equal in every row: all rows give an output or none */
        for (size_t b = 0; b < B; ++b) {
            const int r = step_rows(m, first, npre - first, pad ? NULL : FRONT_IN(m, ids, b, x + b * in_w), out + b * pre_w, fr,
                                    fr + m->front_w, fsave, s->win ? s->win + b * m->win_floats : NULL, fscr,
                                    (const float *)(wk + w.tw) XS_ARG(xsave + b * m->xres_floats));
            if (r < 0) return nonfinite(s, m->num_layers + 1, 0, b, 0);
            none |= r;
        }
        if (none) return RNC_NO_OUTPUT;
        in = out;
        in_w = pre_w;
        f = npre;
    }
#if !defined(RNC_NO_CHUNK)
    /* a positions record: the front-end's rows (C x P values, channel c at position p at c*P + p)
     * as P steps of C features, by position in pos; the stages below run on each position in
     * turn (the layers' state carried) into ypos, and y is their mean: the sum in position
     * order, then one division (rnncore.nn.ChunkMean) */
    const uint32_t P = m->positions ? m->positions : 1u;
    float *const y_mean = y, *pos = (float *)(wk + w.pos);
    const size_t pc = in_w / P;
    if (P > 1) {
        for (size_t b = 0; b < B; ++b)
            for (size_t c = 0; c < pc; ++c)
                for (uint32_t p = 0; p < P; ++p) pos[(p * B + b) * pc + c] = in[b * in_w + c * P + p];
        y = (float *)(wk + w.ypos);
    }
    for (uint32_t p = 0; p < P; ++p) { /* (the stage loop below, once per position) */
    if (P > 1) {
        in = pos + p * B * pc;
        in_w = pc;
        l = 0;
        f = npre;
        y_written = 0;
    }
#endif
    for (uint32_t i = 0; i < m->num_stages; ++i) { /* the model's layers, in order */
        switch (m->stage[i]) {
#if defined(RNC_NO_POST_CONV)
        case RNC_REC_FRAME_CONV:
#endif
        case RNC_REC_CONV_TIME:
        case RNC_REC_MAGNITUDE:
        case RNC_REC_LOG_MEL:
        case RNC_REC_POOL_TIME:
#if !defined(RNC_NO_CHUNK)
        case RNC_REC_CONCAT:
#endif
            break; /* the front-end, run above */
#if !defined(RNC_NO_POST_CONV)
        case RNC_REC_FRAME_CONV:
        case RNC_REC_MUL_HALVES:
#endif
        case RNC_REC_POINTWISE:
        case RNC_REC_LAYER_NORM:
        case RNC_REC_SCALE_SHIFT:
        case RNC_REC_RESIDUAL: {
            if (l == 0) break; /* front-end, run above */
            /* the run of per-step records here, row by row (each maps a row alone) into rows of
             * its last record's width */
            const uint32_t n = post_run(m, i);
            const size_t ow = POST_W(m, f, n, in_w);
            float *dst = in == fa ? fb : fa; /* never in place: in may be a layer's state */
            for (size_t b = 0; b < B; ++b)
                (void)step_rows(m, f, n, in + b * in_w, dst + b * ow, fr, fr + m->front_w, fsave, NULL, fscr,
                              NULL XS_ARG(xsave + b * m->xres_floats));
            f += n;
            i += n - 1;
            in = dst;
            in_w = ow;
            break;
        }
        case RNC_REC_EMBEDDING:
            if (EMB_FRONT_ON && npre) break; /* the front-end took the looked-up rows, above */
            gather(m, ids, B, (float *)(wk + w.xin));
            in = (const float *)(wk + w.xin);
            in_w = m->embed_dim;
            break;
        case RNC_REC_RECURRENT: {
            const rnc_layer *L = &m->layer[l];
            rnc_cell_args a;
#if XRES_ON
            if (m->xres_floats) xres_save_layer(m, l, in, NULL, in_w, B, xsave);
#endif
            cell_args_base(m, L, 0, s, &a, wk + w.cell);
            if (m->precision != RNC_F32) {
                for (size_t b = 0; b < B; ++b)
                    quantize(in + b * in_w, in_w, L->kx, L->x_scale, L->x_inv, xq + b * L->kx,
                             &sx[b]);
                a.xq = xq;
                a.sx = sx;
                a.ldxq = L->kx;
            } else {
                a.x = in;
                a.ldx = in_w;
            }
            if (L->variant) {
                rnc_cell_variant v;
                cell_variant(m, L, 0, B, &v);
                rnc__cell_variant(&a, &v);
            } else {
                /* a last layer that nothing but last-step pooling follows stores y with h' in
                 * its update (the cell rows' y output, as in rnc_run), not a copy afterwards;
                 * not a ReLU layer (y stays untouched when its state check fails), and as an
                 * f32 cell reads its input x in its products, only when y is not on it (y may
                 * be x: in place) */
                uint32_t j = i + 1;
                while (j < m->num_stages && m->stage[j] == RNC_REC_LAST_STEP) ++j;
                const uintptr_t y0 = (uintptr_t)y, x0 = (uintptr_t)in;
                const int apart = y0 >= x0 + B * in_w * 4 || x0 >= y0 + B * L->out * 4;
                if (j == m->num_stages && !L->proj && !L->unbounded &&
                    (m->precision != RNC_F32 || apart)) {
                    a.y = y;
                    a.ldy = L->out;
                    y_written = 1;
                }
                plan_pick(&m->plan.cell_x[l], B, L->dir[0].hh_sums != NULL)->fn.cell(&a);
            }
            if (L->unbounded) TRY(check_relu_state(m, s, l, 0, 0));
            in = a.h;
            in_w = L->out;
            ++l;
            break;
        }
        case RNC_REC_LAST_STEP: /* a step is its sequence's last step */
#if !defined(RNC_NO_MEAN)
            if (m->last_step_mean | m->last_step_max) { /* [last | mean | max] of those present, of the
                                                           steps since the reset, into fa / fb */
                float *dst = in == fa ? fb : fa; /* in may be a layer's state */
                const size_t ow = in_w * (m->last_step_last + m->last_step_mean + m->last_step_max);
                for (size_t b = 0; b < B; ++b) {
                    const float *v = in + b * in_w;
                    float *pr = dst + b * ow;
                    if (m->last_step_last) { /* the step itself (rnc_step: unidirectional) */
                        memcpy(pr, v, sizeof(float) * in_w);
                        pr += in_w;
                    }
                    if (m->last_step_mean) {
                        mean_step(m, s, b, v, pr);
                        pr += in_w;
                    }
                    if (m->last_step_max) {
                        max_step(m, s, b, v);
                        max_out(m, s, b, pr);
                    }
                }
                in = dst;
                in_w = ow;
                y_written = 0; /* a last layer may have written y: the pooling replaces it */
            }
#endif
#if !defined(RNC_NO_ATTN)
            if (m->attn) { /* attention over the steps since the reset, into fa / fb */
                float *dst = in == fa ? fb : fa; /* in may be a layer's state */
                for (size_t b = 0; b < B; ++b) {
                    const float e = attn_score(m, in + b * in_w);
                    if (!isfinite(e)) return nonfinite(s, m->num_layers, 0, b, 0);
                    attn_update(m, s, b, e, in + b * in_w);
                    attn_out(m, s, b, dst + b * in_w);
                }
                in = dst;
                y_written = 0; /* a last layer may have written y: the pooling replaces it */
            }
#endif
            break;
        default: { /* RNC_REC_LINEAR, the last (the loader admits no other order) */
            const size_t bad = apply_head(m, in, B, in_w, y, xq, sx, wk + w.head);
            if (bad < B) return nonfinite(s, m->num_layers, 0, bad, 0);
            y_written = 1;
            break;
        }
        }
    }
    if (!y_written) memcpy(y, in, sizeof(float) * B * in_w);
#if !defined(RNC_NO_CHUNK)
    if (P > 1)
        for (size_t k = 0; k < B * m->output_size; ++k) y_mean[k] = p ? y_mean[k] + y[k] : y[k];
    }
    if (P > 1)
        for (size_t k = 0; k < B * m->output_size; ++k) y_mean[k] = y_mean[k] / (float)P;
#endif
    return RNC_OK;
}

rnc_status rnc_step(const rnc_model *m, rnc_state *s, const float *x, float *y)
{
    if (!x) return RNC_E_ARG;
    return step_common(m, s, x, NULL, y, 0);
}

rnc_status rnc_step_ids(const rnc_model *m, rnc_state *s, const int32_t *ids, float *y)
{
    if (!ids) return RNC_E_ARG;
    return step_common(m, s, NULL, ids, y, 0);
}

rnc_status rnc_flush_out_steps(const rnc_model *m, const rnc_state *s, size_t *out_steps)
{
    rnc_step_work w;
    if (!out_steps) return RNC_E_ARG;
    *out_steps = 0;
    TRY(check_state(m, s, &w));
    if (!TP_FLUSH(m)) return RNC_OK;
    TRY(check_countdowns(m, s, 1, 0));
    size_t cd[RNC_MAX_FRONT];
    unsigned char fed[RNC_MAX_FRONT], row[RNC_MAX_FRONT];
    front_countdowns(m, s->win, cd);
    front_fed(m, s->win, fed);
    for (size_t b = 1; b < s->batch; ++b) { /* the rows flush in step: all fed alike (else RNC_E_STATE) */
        front_fed(m, s->win + b * m->win_floats, row);
        if (memcmp(row, fed, m->num_front)) return RNC_E_STATE;
    }
    *out_steps = flush_outputs(m, cd, fed);
    return RNC_OK;
}

rnc_status rnc_flush(const rnc_model *m, rnc_state *s, float *y, size_t capacity, size_t *out_steps)
{
    size_t n;
    TRY(rnc_flush_out_steps(m, s, &n));
    *out_steps = n;
    if (m->plan.bidirectional || m->plan.reverse) return RNC_E_BIDIRECTIONAL;
    if (SEQ_NORM(m)) return RNC_E_UNSUPPORTED;
#if defined(RNC_NO_TIMEPAD) /* no right pads: n = 0, nothing to feed */
    (void)y, (void)capacity;
#else
    if (n > capacity) return RNC_E_SIZE;
    if (n && !y) return RNC_E_ARG;
    if ((uintptr_t)y & 3u) return RNC_E_ALIGN;
    const size_t rows = s->batch * (size_t)m->output_size;
    size_t k = 0;
    for (uint32_t i = 0; i < m->num_front && n; ++i) /* n = 0: the pads reach no state */
        for (uint32_t p = 0; p < TP_RIGHT(&m->front[i]) && timepad_fed(&m->front[i], s->win); ++p) {
            const rnc_status st = step_common(m, s, NULL, NULL, y + k * rows, i + 1);
            if (st == RNC_OK) ++k;
            else if (st != RNC_NO_OUTPUT) return st;
        }
#endif
    if (s->win) /* the next input starts a sequence (h and c stay as the flush left them) */
        for (size_t b = 0; b < s->batch; ++b) front_init_row(m, s->win + b * m->win_floats);
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * run
 * ---------------------------------------------------------------------------------------- */
/* The scratch of rnc_run: the sequences between layers (seq_a, seq_b: B*T rows, only for the
 * recurrent layers whose output is not y), and per chunk of steps the gathered embeddings (emb),
 * the quantised inputs (xq, sx), the input projection (gi) and the head's products (head): a
 * bounded number of rows whatever T is. */
typedef struct {
    size_t seq_a, seq_b, emb, xq, sx, gi, head, pooled, active, fseq, frow, fscr, fsave, xsave, olen, total;
    size_t fpos, ypos; /* a positions record: the rows of the B*T*P steps, their outputs */
    size_t fpa, fpb;  /* instance_norm: two buffers of one sequence's steps (seq_w floats each) */
    size_t fcs;       /* instance_norm: seq_conv's scratch */
    size_t fpost;     /* post_rows: two blocks of RUN_POST_ROWS rows (front_w floats each) */
    size_t chunk;     /* steps per chunk (>= 1) */
    size_t head_rows; /* rows of (b, t) per head product (>= 1) */
} rnc_run_work;

/* From this many sequences on, run() projects the inputs step by step inside the cell (run_common):
 * below it the whole-sequence projection is faster (batches 4-15 measured 0.93-1.42x, mostly
 * 1.03-1.2x, against the per-step path, GRU/LSTM H 32-512, T = 100, q8 and f32, AMD EPYC Zen 4;
 * docs/performance.md "run(): the per-step threshold"), from 16 the fused 16-row cells win. */
#define RUN_PER_STEP_MIN_BATCH 16u
/* Steps per chunk below RUN_PER_STEP_MIN_BATCH sequences: the input projection of a chunk is one
 * product of up to RUN_CHUNK_STEPS columns per sequence (enough to amortise each weight load),
 * and at most RUN_CHUNK_GI_ROWS rows (b, t) of projections per chunk: 128 steps up to 8
 * sequences, 68 at 15 (LSTM H = 1024: at most 1024 x 4096 floats = 16 MB whatever the batch). */
#define RUN_CHUNK_STEPS 128u
#define RUN_CHUNK_GI_ROWS 1024u
/* Rows (b, t) per chunk from RUN_PER_STEP_MIN_BATCH sequences on (at least one step): only their
 * quantised inputs are kept (q8), and quantising many steps ahead of the cells is measurably
 * faster than a few (B = 64, H = 64: 7% slower with 8 steps per chunk). */
#define RUN_CHUNK_ROWS 4096u
/* Rows (b, t) per head product. */
#define RUN_HEAD_ROWS 512u

#if !defined(RNC_NO_CHUNK)
/* instance_norm (rnc_layout.h) over the n rows of x (F->in_w floats each), in place: per channel
 * the mean and the biased variance of its n values, summed in double in order of the rows. */
static void instance_norm_rows(const rnc_front_op *F, float *x, size_t n)
{
    const size_t C = F->in_w;
    for (size_t c = 0; c < C; ++c) {
        double sum = 0.0;
        for (size_t t = 0; t < n; ++t) sum += (double)x[t * C + c];
        const float mu = (float)(sum / (double)n);
        double ss = 0.0;
        for (size_t t = 0; t < n; ++t) {
            const float d = x[t * C + c] - mu;
            ss += (double)d * (double)d;
        }
        const float var = (float)(ss / (double)n);
        const float r = 1.0f / sqrtf(var + F->eps);
        for (size_t t = 0; t < n; ++t) x[t * C + c] = (x[t * C + c] - mu) * r * F->w[c] + F->b[c];
    }
}

/* Output steps per product of seq_conv: the columns of one block share each weight load. */
#define SEQ_CONV_COLS 32u

/* A conv_time record seq_front runs as frame products (seq_conv): f32 weights, no pad counters. */
static int seq_conv_ok(const rnc_front_op *F)
{
    return F->kind == RNC_REC_CONV_TIME && !F->s && !TP_COUNT(F);
}

/* seq_conv's scratch (floats): one block's columns, its product and its output rows. */
static uint64_t seq_conv_floats(const rnc_model *m)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < m->num_front; ++i) {
        const rnc_front_op *F = &m->front[i];
        const uint64_t need = SEQ_CONV_COLS * ((uint64_t)F->cg * F->k + r16(F->cog) + F->out_w);
        if (seq_conv_ok(F) && need > n) n = need;
    }
    return n;
}

/* Output steps j0 .. j0+nb-1 (nb <= SEQ_CONV_COLS) of conv_time record F over a whole sequence x
 * (F->cin floats a row, every row the outputs read), as conv_time_row gives them from a fresh
 * window (zeros: the left pads; the countdown at skip0): output j is step t = t0 + j*s (t0 = skip0,
 * s = stride; t = j without a countdown), whose tap j' reads input row t - P + j'*dil (a zero before the sequence).
 * Per group the block's columns [c][j'] (or, one channel at dilation 1 past the left pads, the
 * input itself: overlapping columns s floats apart) and one product of the plan's f32 GEMM row over
 * them: each column's sums are those of conv_time_row's one-column product (the rows' sums do not
 * depend on the column count), so the outputs are its bits. y: nb rows of F->out_w floats. */
static void seq_conv(const rnc_model *m, const rnc_front_op *F, const float *x, size_t j0, size_t nb, float *y,
                     float *scr)
{
    const size_t cg = F->cg, k = F->k, dil = F->dil, cog = F->cog, ow = F->out_w;
    const size_t kk = cg * k, rp = r16(cog), P = F->win, C = F->cin;
    const size_t t0 = F->phase ? F->skip0 : 0, s = F->phase ? F->stride : 1, t1 = t0 + j0 * s;
    float *col = scr, *prod = scr + SEQ_CONV_COLS * kk;
    const rnc_gemm_f32_fn gemm = plan_pick(&m->plan.gemm[RNC_F32], nb, 0)->fn.gemm_f32;
    for (uint32_t g = 0; g < F->groups; ++g) {
        const float *cols = col;
        size_t ld = kk;
        if (C == 1 && dil == 1 && t1 >= P) { /* the columns are the input's windows */
            cols = x + (t1 - P);
            ld = s;
        } else {
            for (size_t i = 0; i < nb; ++i) {
                const size_t t = t1 + i * s;
                float *cc = col + i * kk;
                if (t >= P) { /* every tap in the sequence: row by row, the channels contiguous */
                    const float *xr = x + (t - P) * C + g * cg;
                    for (size_t j = 0; j < k; ++j, xr += dil * C)
                        for (size_t c = 0; c < cg; ++c) cc[c * k + j] = xr[c];
                    continue;
                }
                for (size_t c = 0; c < cg; ++c) {
                    const float *xc = x + g * cg + c;
                    for (size_t j = 0; j < k; ++j) {
                        const size_t q = t + j * dil; /* < P: a left pad */
                        cc[c * k + j] = q < P ? 0.0f : xc[(q - P) * C];
                    }
                }
            }
        }
        gemm(F->w + (size_t)g * rp * kk, (int)cog, (int)kk, (int)nb, cols, (int)ld, prod, (int)rp);
        const float *bias = F->b + g * cog;
        for (size_t i = 0; i < nb; ++i) {
            float *yo = y + i * ow + g * cog;
            const float *po = prod + i * rp;
            for (size_t o = 0; o < cog; ++o) yo[o] = po[o] + bias[o];
        }
    }
}

typedef struct {
    float *out;       /* the front-end's output rows of this sequence (pre_w floats each) */
    size_t cap_out;   /* rows out may take */
    size_t cap;       /* rows each part buffer may take (the input steps) */
    uint32_t npre;    /* the front-end's records */
    float *fr, *fscr; /* step_rows' two rows, a frame_conv's scratch */
    const float *tw;  /* log_mel's twiddles */
    float *fsave;     /* the residuals' saved inputs (within a part) */
    float *win;       /* the stream row's windows (NULL: none) */
    float *xs;        /* the skip rows of out's rows (a residual across recurrent records), or NULL */
    float *cscr;      /* seq_conv's scratch (seq_conv_floats) */
} seq_front_args;

/* Whether a part (records i..e-1) may run as seq_front_part does: no residual or concat in it nor
 * reading a row of it, and no skip rows to save (the step path's saves). */
static int seq_part_plain(const rnc_model *m, uint32_t i, uint32_t e, const float *xs)
{
    if (xs) return 0;
    for (uint32_t j = 0; j < m->num_front; ++j) {
        const rnc_front_op *G = &m->front[j];
        if ((G->kind == RNC_REC_RESIDUAL || IS_CONCAT(G->kind)) && ((j >= i && j < e) || (G->src >= i && G->src < e)))
            return 0;
    }
    return 1;
}

/* A part whose records are rowwise ones (pointwise, layer_norm, scale_shift: i..c-1), then an f32
 * conv_time (c, seq_conv_ok), then any records (c+1..e-1), over the part's input x (rows of in_w
 * floats): the rowwise records in place over the whole input (xw, x itself when there are any;
 * their output rows are not checked, as step_rows checks only a part's last one), the conv_time
 * by blocks of frame products (seq_conv), each output row through the records after it step by
 * step (step_rows) into dst (rows of dw floats, at most cap). The same outputs as step_rows over
 * the part. 0 (*n: the output rows), -1 when one holds NaN/Inf, 1 when there would be more than
 * cap. */
static int seq_front_part(const rnc_model *m, const seq_front_args *a, uint32_t i, uint32_t c, uint32_t e,
                          const float *x, float *xw, size_t rows, size_t in_w, float *dst, size_t dw, size_t cap,
                          size_t *n)
{
    for (uint32_t p = i; p < c; ++p)
        for (size_t t = 0; t < rows; ++t) rowwise(&m->front[p], xw + t * in_w, xw + t * in_w);
    const rnc_front_op *F = &m->front[c];
    const size_t t0 = F->phase ? F->skip0 : 0, s = F->phase ? F->stride : 1;
    const size_t nout = rows > t0 ? (rows - 1 - t0) / s + 1 : 0;
    float *blk = a->cscr + SEQ_CONV_COLS * ((size_t)F->cg * F->k + r16(F->cog));
    size_t j = 0;
    for (size_t j0 = 0; j0 < nout; j0 += SEQ_CONV_COLS) {
        const size_t nb = nout - j0 < SEQ_CONV_COLS ? nout - j0 : SEQ_CONV_COLS;
        if (c + 1 == e) { /* the conv_time is the part's last record: straight into dst */
            if (j0 + nb > cap) return 1;
            seq_conv(m, F, x, j0, nb, dst + j0 * dw, a->cscr);
            if (!rnc__all_finite(dst + j0 * dw, nb * dw)) return -1;
            j = j0 + nb;
            continue;
        }
        seq_conv(m, F, x, j0, nb, blk, a->cscr);
        for (size_t b = 0; b < nb; ++b) {
            if (j >= cap) return 1;
            const int r = step_rows(m, c + 1, e - c - 1, blk + b * F->out_w, dst + j * dw, a->fr,
                                    a->fr + m->front_w, a->fsave, a->win, a->fscr, a->tw XS_ARG(NULL));
            if (r < 0) return -1;
            j += r == 0;
        }
    }
    *n = j;
    return 0;
}

/* One sequence's front-end when it has instance_norm records: the records between two of them (a
 * part) run step by step over the whole sequence into a part buffer (bufs[0], bufs[1] in turn),
 * which the instance_norm then normalises in place; the last part writes a->out. x: the
 * sequence's *n input rows; *n: its output rows on return. 0, -1 when a row holds NaN/Inf, 1 when
 * a part would give more than a->cap rows (the loader's padding checks rule it out). */
static int seq_front(const rnc_model *m, const seq_front_args *a, const float *x, size_t *n, float *bufs[2])
{
    const float *in = x;
    float *xw = NULL; /* in when it is one of bufs (rowwise records may overwrite it) */
    size_t rows = *n, in_w = m->input_size;
    uint32_t i = 0;
    int which = 0;
    for (;;) {
        uint32_t e = i; /* this part: records i..e-1 (none: the instance_norm reads its input) */
        while (e < a->npre && !IS_SEQ_NORM(m->front[e].kind)) ++e;
        const int last = e == a->npre;
        float *dst = last ? a->out : bufs[which];
        const size_t dw = e > i ? m->front[e - 1].out_w : in_w;
        size_t j = 0;
        uint32_t c = i; /* rowwise records before a conv_time: seq_front_part */
        while (c < e && (m->front[c].kind == RNC_REC_POINTWISE || m->front[c].kind == RNC_REC_LAYER_NORM ||
                         m->front[c].kind == RNC_REC_SCALE_SHIFT))
            ++c;
        if (c < e && seq_conv_ok(&m->front[c]) && (c == i || xw) && seq_part_plain(m, i, e, last ? a->xs : NULL)) {
            const int r = seq_front_part(m, a, i, c, e, in, xw, rows, in_w, dst, dw, last ? a->cap_out : a->cap, &j);
            if (r) return r;
        } else if (e > i) {
            for (size_t t = 0; t < rows; ++t) {
                if (j >= (last ? a->cap_out : a->cap)) return 1;
                const int r = step_rows(m, i, e - i, in + t * in_w, dst + j * dw, a->fr, a->fr + m->front_w,
                                        a->fsave, a->win, a->fscr,
                                        a->tw XS_ARG(last && a->xs ? a->xs + j * m->xres_floats : NULL));
                if (r < 0) return -1;
                j += r == 0;
            }
        } else {
            if (rows > (last ? a->cap_out : a->cap)) return 1;
            memcpy(dst, in, sizeof(float) * rows * in_w);
            j = rows;
        }
        if (last) {
            *n = j;
            return 0;
        }
        if (j) instance_norm_rows(&m->front[e], dst, j);
        if (!rnc__all_finite(dst, j * dw)) return -1;
        in = xw = dst;
        rows = j;
        in_w = dw;
        which ^= 1;
        i = e + 1;
    }
}
#endif

#if !defined(RNC_NO_POST_CONV)
/* Rows per block of post_rows. */
#define RUN_POST_ROWS 64u

/* Whether the per-step records f..f+n-1 after the recurrent layers are all f32 frame_convs of one
 * frame (per-step Linear layers: a 1 x 1 kernel over one sample, no padding) and rowwise records
 * (pointwise, layer_norm, scale_shift): post_rows runs them. */
static int post_rows_ok(const rnc_model *m, uint32_t f, uint32_t n)
{
    for (uint32_t i = f; i < f + n; ++i) {
        const rnc_front_op *F = &m->front[i];
        const int lin = F->kind == RNC_REC_FRAME_CONV && !F->s && !F->q16 && F->k == 1 && F->L == 1 &&
                        F->lout == 1 && F->pl == 0;
        if (!lin && F->kind != RNC_REC_POINTWISE && F->kind != RNC_REC_LAYER_NORM && F->kind != RNC_REC_SCALE_SHIFT)
            return 0;
    }
    return 1;
}

/* The rows (rows of x, w floats each) through records f..f+n-1 (post_rows_ok) into y (rows of the
 * last record's width), by blocks of RUN_POST_ROWS rows (ping-pong in buf: two blocks of front_w
 * floats a row): a frame_conv as one product of the plan's f32 GEMM row over the block's rows (its
 * columns; a column's sums do not depend on how many share the product: frame_conv_row's bits),
 * then its bias; a rowwise record row by row. */
static void post_rows(const rnc_model *m, uint32_t f, uint32_t n, const float *x, size_t rows, size_t w, float *y,
                      float *buf)
{
    for (size_t r0 = 0; r0 < rows; r0 += RUN_POST_ROWS) {
        const size_t nb = rows - r0 < RUN_POST_ROWS ? rows - r0 : RUN_POST_ROWS;
        const float *in = x + r0 * w;
        size_t in_w = w;
        for (uint32_t i = f; i < f + n; ++i) {
            const rnc_front_op *F = &m->front[i];
            const size_t ow = F->out_w;
            float *dst = i + 1 == f + n ? y + r0 * ow : buf + ((i - f) % 2) * RUN_POST_ROWS * m->front_w;
            if (F->kind == RNC_REC_FRAME_CONV) { /* F->cout x in_w, rows padded to 16 per group */
                const size_t kk = F->cg, rp = r16(F->cog);
                for (uint32_t g = 0; g < F->groups; ++g) {
                    plan_pick(&m->plan.gemm[RNC_F32], nb, 0)->fn.gemm_f32(F->w + g * rp * kk, (int)F->cog, (int)kk,
                                                                       (int)nb, in + g * kk, (int)in_w,
                                                                       dst + g * F->cog, (int)ow);
                    const float *bg = F->b + (size_t)g * F->cog;
                    for (size_t j = 0; j < nb; ++j)
                        for (uint32_t o = 0; o < F->cog; ++o) dst[j * ow + g * F->cog + o] += bg[o];
                }
            } else {
                for (size_t j = 0; j < nb; ++j) rowwise(F, in + j * in_w, dst + j * ow);
            }
            in = dst;
            in_w = ow;
        }
    }
}
#endif

static rnc_status run_work(const rnc_model *m, size_t batch, size_t steps, rnc_run_work *w)
{
    uint64_t bt, o = 0, t;
    if (TP_FLUSH(m)) { /* the right pads' outputs (at most TP_FLUSH(m) more steps) */
        if (steps > SIZE_MAX - TP_FLUSH(m)) return RNC_E_SIZE;
        steps += TP_FLUSH(m);
    }
#if !defined(RNC_NO_CHUNK)
    if (m->positions && !mul_ok(steps, m->positions, &t)) return RNC_E_SIZE;
    if (m->positions) steps = (size_t)t; /* the layers' steps (bt below bounds t) */
#endif
    if (!mul_ok(batch, steps, &bt) || bt > 0x7FFFFFFFu) return RNC_E_SIZE;
    const uint64_t op = r16(m->head_out);
    const int per_step = batch >= RUN_PER_STEP_MIN_BATCH;
    uint64_t chunk = (per_step ? RUN_CHUNK_ROWS : RUN_CHUNK_GI_ROWS) / batch;
    if (!per_step && chunk > RUN_CHUNK_STEPS) chunk = RUN_CHUNK_STEPS;
    if (chunk > steps) chunk = steps;
    if (chunk == 0) chunk = 1;
    const uint64_t rows = batch * chunk; /* <= max(batch, RUN_CHUNK_ROWS) */
    uint64_t head_rows = bt < RUN_HEAD_ROWS ? bt : RUN_HEAD_ROWS;
    if (head_rows < batch) head_rows = batch; /* the pooled head: B rows */
    if (!m->head) head_rows = 1;
    const uint64_t qrows = rows > head_rows ? rows : head_rows; /* the head quantises in xq too */
    /* the recurrent layers writing a sequence buffer (not y: every one but a last stage) */
    uint64_t mid = 0, mid_w = 0;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const int to_y = l + 1 == m->num_layers && m->stage[m->num_stages - 1] == RNC_REC_RECURRENT;
        const uint64_t dh = (uint64_t)m->layer[l].out * m->layer[l].dirs;
        if (to_y) continue;
        ++mid;
        if (dh > mid_w) mid_w = dh;
    }
#define ADD(field, a, b_)                                                                         \
    do {                                                                                          \
        if (!mul_ok((a), (b_), &t) || t > ((uint64_t)1 << 60)) return RNC_E_SIZE;                 \
        w->field = (size_t)o;                                                                     \
        o += RNC_ALIGN_UP(t, 64);                                                                 \
    } while (0)
    ADD(seq_a, mid >= 1 ? bt : 0, mid_w * 4);
    ADD(seq_b, mid >= 2 ? bt : 0, mid_w * 4);
    ADD(emb, m->uses_ids ? rows : 0, (uint64_t)m->embed_dim * 4);
    ADD(xq, qrows, (uint64_t)m->max_kpad);
    ADD(sx, qrows, 4);
    /* per-step mode has no use for gi: no B*chunk*G*Hp floats */
    ADD(gi, per_step ? 0 : rows, (uint64_t)m->max_gates_hp * 4);
    ADD(head, head_rows, op * 4);
    ADD(pooled, batch, (uint64_t)m->max_feat * 4);
    ADD(active, batch, 1);
    {   /* the per-step records: the front-end's output sequence, two rows, a frame_conv's scratch */
        size_t pre_w;
        const uint32_t npre = front_count(m, &pre_w);
        /* (a frame_conv after the recurrent layers: its section's output rows too, not in place,
         * rows of the widest layer; at least the B pooled rows, also when T = 0) */
        const uint64_t frows = POST_CONV(m) && bt < batch ? batch : bt;
        ADD(fseq, npre || POST_CONV(m) ? frows : 0, (uint64_t)(POST_CONV(m) ? m->max_feat : pre_w) * 4);
        ADD(frow, 2, (uint64_t)m->front_w * 4);
        ADD(fscr, 1, (uint64_t)m->front_scratch * 4);
        ADD(fsave, 1, (uint64_t)m->res_floats * 4);
        ADD(xsave, XRES_ON ? bt : 0, (uint64_t)m->xres_floats * 4); /* every (b, t): a residual across layers */
        ADD(olen, m->strided || TP_FLUSH(m) || (CHUNK_ON && m->positions) ? batch : 0, 4); /* output steps */
#if !defined(RNC_NO_CHUNK)
        ADD(fpos, m->positions ? bt : 0, (uint64_t)pre_w * 4 / (m->positions ? m->positions : 1));
        ADD(ypos, m->positions ? bt : 0, (uint64_t)m->output_size * 4);
#endif
        ADD(fpa, SEQ_NORM(m) ? steps : 0, (uint64_t)m->seq_w * 4); /* seq_front's parts: at most */
        ADD(fpb, SEQ_NORM(m) ? steps : 0, (uint64_t)m->seq_w * 4); /* `steps` rows each (loader) */
#if !defined(RNC_NO_POST_CONV)
        ADD(fpost, POST_CONV(m) ? 2 * RUN_POST_ROWS : 0, (uint64_t)m->front_w * 4); /* post_rows' blocks */
#endif
#if !defined(RNC_NO_CHUNK)
        ADD(fcs, SEQ_NORM(m) ? 1 : 0, seq_conv_floats(m) * 4);
#endif
    }
#undef ADD
    if (o + 64 > (uint64_t)SIZE_MAX / 2) return RNC_E_SIZE;
    w->total = (size_t)o + 64;
    w->chunk = (size_t)chunk;
    w->head_rows = (size_t)head_rows;
    return RNC_OK;
}

rnc_status rnc_run_scratch_size(const rnc_model *m, size_t batch, size_t steps, size_t *bytes)
{
    rnc_run_work w;
    if (!m || !bytes || m->magic_ok != RNC_MODEL_OK || batch == 0) return RNC_E_ARG;
    if (batch > MAX_BATCH) return RNC_E_SIZE;
    TRY(run_work(m, batch, steps, &w));
    *bytes = w.total;
    return RNC_OK;
}

static int ranges_overlap(const void *a, uint64_t na, const void *b, uint64_t nb)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return na && nb && a && b && pa < pb + nb && pb < pa + na;
}

static rnc_status run_common(const rnc_model *m, rnc_state *s, const float *x, const int32_t *ids,
                             const int32_t *lengths, size_t T, float *y, void *scratch,
                             size_t scratch_bytes)
{
    rnc_step_work sw;
    TRY(check_state(m, s, &sw));
    if ((ids != NULL) != (m->uses_ids != 0)) return RNC_E_ARG;
    const size_t B = s->batch;
    size_t T_out = T; /* the output steps (strided records: fewer, rnc_run_out_steps; right pads) */
    if (m->strided || TP_FLUSH(m)) TRY(rnc_run_out_steps(m, s, T, &T_out));
    if (s->win) TRY(check_countdowns(m, s, 0, 0));
#if !defined(RNC_NO_MEAN)
    if (m->last_step_mean) TRY(check_mean(m, s, T_out));
    if (m->last_step_max) TRY(check_max(m, s));
#endif
#if !defined(RNC_NO_ATTN)
    if (m->attn) TRY(check_attn(m, s));
#endif
    const size_t out_rows = m->last_step ? B : B * T_out;
    if (!scratch || (out_rows && !y) || (T && !x && !ids)) return RNC_E_ARG;
    if (((uintptr_t)x | (uintptr_t)ids | (uintptr_t)y | (uintptr_t)lengths) & 3u) return RNC_E_ALIGN;
    rnc_run_work w;
    TRY(run_work(m, B, T, &w));
    if (scratch_bytes < w.total) return RNC_E_SIZE;
    {   /* x (or ids), y and scratch must not overlap: layers write y (and scratch) while later
         * steps of x are still to be read (in-place rnc_run gave wrong outputs) */
        const uint64_t nx = (uint64_t)B * T * (ids ? 1u : m->input_size) * 4u;
        const uint64_t ny = (uint64_t)out_rows * m->output_size * 4u;
        const void *in = ids ? (const void *)ids : (const void *)x;
        if (ranges_overlap(in, nx, y, ny) || ranges_overlap(in, nx, scratch, scratch_bytes) ||
            ranges_overlap(y, ny, scratch, scratch_bytes))
            return RNC_E_ARG;
    }
    if (lengths)
        for (size_t b = 0; b < B; ++b)
            if (lengths[b] < 0 || (size_t)lengths[b] > T) return RNC_E_VALUE;
    if (TP_FLUSH(m)) /* whole sequences: a row mid-sequence (steps, no rnc_flush yet) would be cut */
        for (size_t b = 0; b < B; ++b)
            if ((lengths ? lengths[b] > 0 : T > 0) && !row_fresh(m, s->win + b * m->win_floats)) return RNC_E_STATE;
    if (ids) { /* every id, padding included: all are gathered */
        TRY(check_ids(m, ids, B * T));
    } else { /* within each sequence's length: padding never reaches a state or an output */
        for (size_t b = 0; b < B; ++b)
            if (!rnc__all_finite(x + b * T * m->input_size,
                                 (lengths ? (size_t)lengths[b] : T) * m->input_size))
                return RNC_E_VALUE;
    }
#if !defined(RNC_NO_INT)
    if (m->precision == RNC_INT8) return int_run(m, s, x, lengths, T, y, s->work + sw.ints);
#endif
    if (m->plan.unbounded) TRY(check_relu_states(m, s));
    unsigned char *base = (unsigned char *)scratch;
    base += RNC_ALIGN_UP((uintptr_t)base, 64) - (uintptr_t)base;
    float *seq_a = (float *)(base + w.seq_a), *seq_b = (float *)(base + w.seq_b);
    float *emb = (float *)(base + w.emb);
    int8_t *xq = (int8_t *)(base + w.xq);
    float *sx = (float *)(base + w.sx), *gi = (float *)(base + w.gi);
    float *pooled = (float *)(base + w.pooled);
    uint8_t *active = (uint8_t *)(base + w.active);
#define LEN(b) (lengths ? (size_t)lengths[b] : T)

    /* The layers run one after the other over the whole sequences (a bidirectional layer needs
     * all of its input before its output), each direction over chunks of w.chunk steps (the
     * backward one from the last chunk): per chunk the inputs are gathered (embedding),
     * quantised (q8, per row) and projected, then the cell steps through the chunk. Every
     * (b, t) gets the same per-row quantisation and the same products (exact int32 / a column's
     * sum independent of the column count) as in one product over all steps: the chunk size
     * changes no bit. */
    const float *cur = x;
    size_t cur_w = m->input_size;
    int gather_ids = 0; /* layer 0 gathers its chunks' embeddings */
    size_t BT = B * T, nchunks; /* both set again below for the output steps */
    const size_t C = w.chunk;
    const rnc_quantize_fn quantize = plan_pick(&m->plan.quantize, 1, 0)->fn.quantize;
    /* Batches of >= RUN_PER_STEP_MIN_BATCH sequences project their inputs step by step inside
     * the cell (one GEMM of B columns per step, like rnc_step): B columns already amortise each weight load,
     * and the B x (G*Hp) pre-activations stay in cache, where a product over the chunk's
     * B*C columns would write them all and read them back one scattered row at a time
     * (measured 2-3x slower at B=64 on Zen 4). Fewer sequences project a chunk's C steps per
     * sequence as one product, whose C columns amortise the weights. Both give the same bits:
     * the same products (exact int32 / an order independent of the column count) and the same
     * float32 epilogue. */
    const int per_step = B >= RUN_PER_STEP_MIN_BATCH; /* run_work sizes gi for it */
    float *head_acc = (float *)(base + w.head);
    int pooled_rows = 0; /* cur holds B rows (after last_step), not B*T; the last stage writes y */
    uint32_t l = 0;
    size_t pre_w;
    const uint32_t npre = front_count(m, &pre_w);
    uint32_t f = npre;
    float *fr = (float *)(base + w.frow), *fscr = (float *)(base + w.fscr), *fsave = (float *)(base + w.fsave);
#if XRES_ON
    float *xsave = (float *)(base + w.xsave); /* rows (b, t) of the output steps, xres_floats each */
#endif
    if (npre) { /* the front-end, every valid (b, t) row alone; zero rows past each length */
        float *fseq = (float *)(base + w.fseq);
        int32_t *olen = (int32_t *)(base + w.olen);
        for (size_t b = 0; b < B; ++b) {
#if !defined(RNC_NO_CHUNK)
            if (SEQ_NORM(m)) { /* in parts over the whole sequence, instance_norm between them */
                float *fw = s->win ? s->win + b * m->win_floats : NULL;
                if (fw) front_init_row(m, fw); /* whole sequences: each starts afresh */
                size_t j = LEN(b);
                float *bufs[2] = {(float *)(base + w.fpa), (float *)(base + w.fpb)};
#if XRES_ON
                float *xs = m->xres_floats ? xsave + b * T_out * m->xres_floats : NULL;
#else
                float *xs = NULL;
#endif
                const seq_front_args a = {fseq + b * T_out * pre_w, T_out, T, npre, fr, fscr,
                                          (const float *)(s->work + sw.tw), fsave, fw, xs, (float *)(base + w.fcs)};
                const int r = seq_front(m, &a, x + b * T * m->input_size, &j, bufs);
                if (r < 0) return nonfinite(s, m->num_layers + 1, 0, b, LEN(b) ? LEN(b) - 1 : 0);
                if (r > 0) return RNC_E_SIZE;
                if (fw) front_init_row(m, fw); /* and ends: the state's windows stay fresh */
                memset(fseq + (b * T_out + j) * pre_w, 0, sizeof(float) * (T_out - j) * pre_w);
                if (m->strided) olen[b] = (int32_t)j;
                continue;
            }
#endif
            size_t j = 0; /* output steps of sequence b so far (= t without strided records) */
            for (size_t t = 0; t < LEN(b); ++t) {
                const int r = step_rows(m, 0, npre, FRONT_IN(m, ids, b * T + t, x + (b * T + t) * m->input_size),
                                        fseq + (b * T_out + j) * pre_w,
                                        fr, fr + m->front_w, fsave, s->win ? s->win + b * m->win_floats : NULL, fscr,
                                        (const float *)(s->work + sw.tw) XS_ARG(xsave + (b * T_out + j) * m->xres_floats));
                if (r < 0) return nonfinite(s, m->num_layers + 1, 0, b, t);
                j += r == 0;
            }
            if (TP_FLUSH(m) && LEN(b)) { /* the end of the sequence: each record's right pad steps */
                for (uint32_t i = 0; i < npre; ++i) /* not fed: no output (flush_outputs) */
                    for (uint32_t p = 0; p < TP_RIGHT(&m->front[i]) && timepad_fed(&m->front[i], s->win + b * m->win_floats); ++p) {
                        const int r = step_rows(m, i, npre - i, NULL, fseq + (b * T_out + j) * pre_w, fr,
                                                fr + m->front_w, fsave, s->win + b * m->win_floats, fscr,
                                                (const float *)(s->work + sw.tw) XS_ARG(xsave + (b * T_out + j) * m->xres_floats));
                        if (r < 0) return nonfinite(s, m->num_layers + 1, 0, b, LEN(b) - 1);
                        j += r == 0;
                    }
                front_init_row(m, s->win + b * m->win_floats); /* as rnc_flush leaves it */
            }
            memset(fseq + (b * T_out + j) * pre_w, 0, sizeof(float) * (T_out - j) * pre_w);
            if (m->strided || TP_FLUSH(m)) olen[b] = (int32_t)j;
        }
        if (m->strided || TP_FLUSH(m)) { /* from here on the sequences are the output steps */
            lengths = olen;
            T = T_out;
        }
        cur = fseq;
        cur_w = pre_w;
    }
#if !defined(RNC_NO_CHUNK)
    /* a positions record: step (b, t)'s row (C x P values, channel c at position p at c*P + p) as
     * the P steps (b, t*P + p) of C features, the sequences P times as long; the stages below
     * write the outputs of the B*T*P steps to ypos, and y is each step's mean over its positions
     * (as rnc_step: the sum in position order, then one division) */
    const size_t P = m->positions ? m->positions : 1u, T_chunks = T;
    float *const y_mean = y;
    if (P > 1) {
        float *pos = (float *)(base + w.fpos);
        int32_t *plen = (int32_t *)(base + w.olen);
        const size_t pc = cur_w / P;
        for (size_t r = 0; r < B * T; ++r)
            for (size_t c = 0; c < pc; ++c)
                for (size_t p = 0; p < P; ++p) pos[(r * P + p) * pc + c] = cur[r * cur_w + c * P + p];
        for (size_t b = 0; b < B; ++b) plen[b] = (int32_t)(LEN(b) * P); /* <= B*T*P: run_work bounds it */
        lengths = plen;
        T *= P;
        cur = pos;
        cur_w = pc;
        y = (float *)(base + w.ypos);
    }
#endif
    BT = B * T;
    nchunks = (T + C - 1) / C;
    for (uint32_t i = 0; i < m->num_stages; ++i) { /* the model's layers, in order */
        const int last = i + 1 == m->num_stages;
        if (((m->stage[i] == RNC_REC_FRAME_CONV || IS_MUL_HALVES(m->stage[i])) && !POST_CONV(m)) ||
            m->stage[i] == RNC_REC_CONV_TIME ||
            m->stage[i] == RNC_REC_MAGNITUDE || m->stage[i] == RNC_REC_LOG_MEL ||
            m->stage[i] == RNC_REC_POOL_TIME || IS_CONCAT(m->stage[i]) || IS_SEQ_NORM(m->stage[i]))
            continue; /* the front-end, above */
        if (m->stage[i] == RNC_REC_POINTWISE || m->stage[i] == RNC_REC_LAYER_NORM ||
            m->stage[i] == RNC_REC_SCALE_SHIFT || m->stage[i] == RNC_REC_RESIDUAL ||
            (POST_CONV(m) && (m->stage[i] == RNC_REC_FRAME_CONV || IS_MUL_HALVES(m->stage[i])))) {
            if (l == 0) continue; /* the front-end, above */
            /* after the recurrent layers, the run of per-step records here row by row into rows of
             * its last record's width: y's rows (last), else in place in this call's scratch cur
             * (each maps a row alone), or into fseq (the front-end's, free now) when a post record
             * is a frame_conv */
            const uint32_t n = post_run(m, i);
            const size_t ow = POST_W(m, f, n, cur_w);
            float *dst = i + n == m->num_stages ? y
                         : POST_CONV(m)            ? (float *)(base + w.fseq)
                                                   : (float *)(uintptr_t)cur;
            const size_t rows = pooled_rows ? B : BT;
#if !defined(RNC_NO_POST_CONV)
            if (POST_CONV(m) && post_rows_ok(m, f, n)) { /* every row by blocks; then zeros past the lengths */
                post_rows(m, f, n, cur, rows, cur_w, dst, (float *)(base + w.fpost));
                for (size_t r = 0; r < rows && !pooled_rows; ++r)
                    if (r % T >= LEN(r / T)) memset(dst + r * ow, 0, sizeof(float) * ow);
                f += n;
                i += n - 1;
                cur = dst;
                cur_w = ow;
                continue;
            }
#endif
            for (size_t r = 0; r < rows; ++r) {
                if (pooled_rows || r % T < LEN(r / T))
                    (void)step_rows(m, f, n, cur + r * cur_w, dst + r * ow, fr, fr + m->front_w, fsave, NULL,
                                    fscr, NULL XS_ARG(xsave + r * m->xres_floats));
                else memset(dst + r * ow, 0, sizeof(float) * ow);
            }
            f += n;
            i += n - 1;
            cur = dst;
            cur_w = ow;
            continue;
        }
        if (m->stage[i] == RNC_REC_EMBEDDING) {
            if (EMB_FRONT_ON && npre) continue; /* the front-end took the looked-up rows, above */
            gather_ids = 1;
            cur = NULL;
            cur_w = m->embed_dim;
            continue;
        }
        if (m->stage[i] == RNC_REC_LAST_STEP) { /* each sequence's last valid step */
            float *dst = last ? y : pooled;
#if !defined(RNC_NO_MEAN)
            if (m->last_step_mean | m->last_step_max) { /* or [last | mean | max] of those present, of
                                                           its valid steps, continuing the stream's */
                const size_t F = cur_w, ow = F * (m->last_step_last + m->last_step_mean + m->last_step_max);
                for (size_t b = 0; b < B; ++b) {
                    float *pr = dst + b * ow;
                    const size_t len = LEN(b);
                    if (m->last_step_last) { /* the last valid step, the backward half at t = 0 */
                        if (len == 0) memset(pr, 0, sizeof(float) * F);
                        else memcpy(pr, cur + (b * T + len - 1) * F, sizeof(float) * F);
                        if (len && m->last_step_bidir)
                            memcpy(pr + F / 2, cur + (b * T) * F + F / 2, sizeof(float) * (F / 2));
                        pr += F;
                    }
                    if (m->last_step_mean) { /* mean_step's sums and count, one division */
                        float *row = s->win + b * m->win_floats + m->mean_off;
                        float n = row[F];
                        for (size_t t = 0; t < len; ++t) {
                            const float *v = cur + (b * T + t) * F;
                            for (size_t j = 0; j < F; ++j) row[j] = row[j] + v[j];
                            n += 1.0f;
                        }
                        row[F] = n;
                        for (size_t j = 0; j < F; ++j) pr[j] = n > 0.0f ? row[j] / n : 0.0f; /* no step: 0 */
                        pr += F;
                    }
                    if (m->last_step_max) {
                        for (size_t t = 0; t < len; ++t) max_step(m, s, b, cur + (b * T + t) * F);
                        max_out(m, s, b, pr);
                    }
                }
                cur = dst;
                cur_w = ow;
                pooled_rows = 1;
                continue;
            }
#endif
#if !defined(RNC_NO_ATTN)
            if (m->attn) { /* or attention over its valid steps, continuing the stream's (as step) */
                for (size_t b = 0; b < B; ++b) {
                    for (size_t t = 0; t < LEN(b); ++t) {
                        const float *v = cur + (b * T + t) * cur_w;
                        const float e = attn_score(m, v);
                        if (!isfinite(e)) return nonfinite(s, m->num_layers, 0, b, t);
                        attn_update(m, s, b, e, v);
                    }
                    attn_out(m, s, b, dst + b * cur_w);
                }
                cur = dst;
                pooled_rows = 1;
                continue;
            }
#endif
            for (size_t b = 0; b < B; ++b) {
                float *pr = dst + b * cur_w;
                const size_t len = LEN(b);
                if (len == 0) {
                    memset(pr, 0, sizeof(float) * cur_w);
                    continue;
                }
                memcpy(pr, cur + (b * T + len - 1) * cur_w, sizeof(float) * cur_w);
                if (m->last_step_bidir) { /* the backward half at its first step */
                    const size_t half = cur_w / 2;
                    memcpy(pr + half, cur + (b * T) * cur_w + half, sizeof(float) * half);
                }
            }
            cur = dst;
            pooled_rows = 1;
            continue;
        }
        if (m->stage[i] == RNC_REC_LINEAR) { /* the last (the loader admits no other order) */
            if (pooled_rows) {
                const size_t bad = apply_head(m, cur, B, cur_w, y, xq, sx, head_acc);
                if (bad < B) return nonfinite(s, m->num_layers, 0, bad, LEN(bad) ? LEN(bad) - 1 : 0);
            } else if (BT) { /* per step, w.head_rows rows at a time; zero past each length */
                const size_t O = m->head_out;
                for (size_t n0 = 0; n0 < BT; n0 += w.head_rows) {
                    const size_t rows = BT - n0 < w.head_rows ? BT - n0 : w.head_rows;
                    const size_t bad = apply_head(m, cur + n0 * cur_w, rows, cur_w, y + n0 * O, xq, sx,
                                                  head_acc);
                    if (bad < rows) return nonfinite(s, m->num_layers, 0, (n0 + bad) / T, (n0 + bad) % T);
                }
                for (size_t b = 0; b < B; ++b)
                    for (size_t t = LEN(b); t < T; ++t) memset(y + (b * T + t) * O, 0, sizeof(float) * O);
            }
            continue;
        }
        /* RNC_REC_RECURRENT: layer l */
        const uint32_t li = l++;
        const rnc_layer *L = &m->layer[li];
        const size_t H = L->out, DH = H * L->dirs, ghp = (size_t)L->gates * L->hp;
        const size_t kx = L->kx;
        float *out = last ? y : (cur == seq_a ? seq_b : seq_a);
        /* positions past a length stay zero; without lengths every (b, t) is written by the
         * steps below (both directions), so the 4*B*T*D*H-byte clear is skipped */
        if (BT && lengths) memset(out, 0, sizeof(float) * BT * DH);
#if XRES_ON
        if (m->xres_floats) xres_save_layer(m, li, gather_ids ? NULL : cur, ids, cur_w, BT, xsave);
#endif
        const rnc_plan_op *cells = per_step ? &m->plan.cell_x[li] : &m->plan.cell_gi[li];
        /* cells that start from W_hh's kernel sums run where the file has them (q8, v2) */
        const rnc_cell_fn fn = plan_pick(cells, B, L->dir[0].hh_sums != NULL)->fn.cell;
        for (uint32_t d = 0; d < L->dirs; ++d) {
            /* backwards: the second direction, or a reverse layer's only one */
            const int bw = d || (L->opt.flags & RNC_CELLOPT_REVERSE);
            rnc_cell_args a;
            rnc_cell_variant v;
            cell_args_base(m, L, d, s, &a, s->work);
            if (L->variant) cell_variant(m, L, d, B, &v);
            a.ldy = T * DH;
            a.active = active;
            for (size_t ci = 0; ci < nchunks; ++ci) {
                const size_t t0 = (bw ? nchunks - 1 - ci : ci) * C;
                const size_t n = T - t0 < C ? T - t0 : C;
                int any = 0;
                for (size_t b = 0; b < B; ++b) any |= t0 < LEN(b);
                if (!any) continue;
                /* the chunk's input: row (b, t0 + j) at in + b * ld_in + j * cur_w */
                const float *in;
                size_t ld_in;
                if (gather_ids) {
                    for (size_t b = 0; b < B; ++b) gather(m, ids + b * T + t0, n, emb + b * n * cur_w);
                    in = emb;
                    ld_in = n * cur_w;
                } else {
                    in = cur + t0 * cur_w;
                    ld_in = T * cur_w;
                }
                /* q8: per-step mode stores the quantised inputs step-major, row (j, b) at
                 * j * B + b (one step's B rows contiguous); otherwise (b, j) at b * n + j */
                if (m->precision != RNC_F32)
                    for (size_t b = 0; b < B; ++b)
                        for (size_t j = 0; j < n; ++j) {
                            const size_t r = per_step ? j * B + b : b * n + j;
                            quantize(in + b * ld_in + j * cur_w, cur_w, kx, L->x_scale, L->x_inv,
                                     xq + r * kx, &sx[r]);
                        }
                if (!per_step) { /* the chunk's input projection, one product per sequence */
                    for (size_t b = 0; b < B; ++b) {
                        float *g = gi + b * n * ghp;
                        if (L->sparse & RNC_LAYER_FLAG_SPARSE_IH) { /* gemm_deq.h's order */
                            plan_pick(RNC_SPGEMV_PLAN(m, L), n, 0)->fn.gemm_q8(
                                (const int8_t *)(const void *)&L->dir[d].sp_ih, (int)ghp,
                                (int)L->input_size, (int)n, xq + b * n * kx, (int)kx,
                                (int32_t *)(void *)g, (int)ghp);
                            rnc__dequant_in_place(g, (int)ghp, (int)n, (int)ghp, sx + b * n,
                                                  L->dir[d].s_ih, L->dir[d].b_ih);
                        } else if (m->precision == RNC_Q4) { /* gemm_deq.h's order */
                            plan_pick(&m->plan.gemm[RNC_Q4], n, 0)->fn.gemm_q8(
                                (const int8_t *)L->dir[d].w_ih, (int)ghp, (int)L->input_size, (int)n,
                                xq + b * n * kx, (int)kx, (int32_t *)(void *)g, (int)ghp);
                            rnc__dequant_in_place(g, (int)ghp, (int)n, (int)ghp, sx + b * n,
                                                  L->dir[d].s_ih, L->dir[d].b_ih);
                        } else if (m->precision == RNC_Q8) {
                            plan_pick(&m->plan.gemm_deq, n, 0)->fn.gemm_deq(
                                (const int8_t *)L->dir[d].w_ih, (int)ghp, (int)L->input_size, (int)n,
                                xq + b * n * kx, (int)kx, sx + b * n, L->dir[d].s_ih, L->dir[d].b_ih,
                                g, (int)ghp);
                        } else {
                            plan_pick(&m->plan.gemm[RNC_F32], n, 0)->fn.gemm_f32(
                                (const float *)L->dir[d].w_ih, (int)ghp, (int)L->input_size, (int)n,
                                in + b * ld_in, (int)cur_w, g, (int)ghp);
                            const float *bi = L->dir[d].b_ih;
                            for (size_t j = 0; j < n; ++j)
                                for (size_t r = 0; r < ghp; ++r) g[j * ghp + r] = g[j * ghp + r] + bi[r];
                        }
                    }
                    a.ldgi = n * ghp;
                }
                for (size_t k = 0; k < n; ++k) {
                    const size_t j = bw ? n - 1 - k : k, t = t0 + j;
                    any = 0;
                    for (size_t b = 0; b < B; ++b) {
                        active[b] = t < LEN(b);
                        any |= active[b];
                    }
                    if (!any) continue;
                    if (per_step) { /* the cell computes W_ih x_t of every row itself */
                        if (m->precision != RNC_F32) { /* step t's rows, contiguous (above) */
                            a.xq = xq + j * B * kx;
                            a.ldxq = kx;
                            a.sx = sx + j * B;
                        } else {
                            a.x = in + j * cur_w;
                            a.ldx = ld_in;
                        }
                    } else {
                        a.gi = gi + j * ghp;
                    }
                    a.y = out + t * DH + d * H;
                    if (L->variant) rnc__cell_variant(&a, &v);
                    else fn(&a);
                    if (L->unbounded) TRY(check_relu_state(m, s, li, d, t));
                }
            }
        }
        if ((L->opt.flags & RNC_CELLOPT_REVERSE_OUTPUT) && BT) /* processing order (go_backwards) */
            for (size_t b = 0; b < B; ++b)
                for (size_t i0 = 0, i1 = LEN(b); i0 + 1 < i1; ++i0, --i1) {
                    float *p0 = out + (b * T + i0) * DH, *p1 = out + (b * T + i1 - 1) * DH;
                    for (size_t k = 0; k < DH; ++k) {
                        const float t = p0[k];
                        p0[k] = p1[k];
                        p1[k] = t;
                    }
                }
        gather_ids = 0;
        cur = out;
        cur_w = DH;
    }
#if !defined(RNC_NO_CHUNK)
    if (P > 1) {
        const size_t O = m->output_size;
        for (size_t r = 0; r < B * T_chunks; ++r)
            for (size_t o = 0; o < O; ++o) {
                float acc = y[r * P * O + o];
                for (size_t p = 1; p < P; ++p) acc = acc + y[(r * P + p) * O + o];
                y_mean[r * O + o] = acc / (float)P;
            }
    }
#endif
#undef LEN
    return RNC_OK;
}

rnc_status rnc_run(const rnc_model *m, rnc_state *s, const float *x, const int32_t *lengths,
                   size_t steps, float *y, void *scratch, size_t scratch_bytes)
{
    return run_common(m, s, x, NULL, lengths, steps, y, scratch, scratch_bytes);
}

rnc_status rnc_run_ids(const rnc_model *m, rnc_state *s, const int32_t *ids, const int32_t *lengths,
                       size_t steps, float *y, void *scratch, size_t scratch_bytes)
{
    if (!ids && steps) return RNC_E_ARG;
    return run_common(m, s, NULL, ids ? ids : (const int32_t *)scratch, lengths, steps, y, scratch,
                      scratch_bytes);
}
