/* Model loading (validation of the whole .rnc buffer), ISA selection, state, step and run.
 * No allocation: the model points into the caller's read-only buffer; state and scratch are
 * caller memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/activations.h"
#include "kernels/seq_avx512vnni.h"

#define RNC_MODEL_OK 0x524E434Du
#define HDR 128u
#define DESC 128u
#define MAX_BATCH (1u << 24)

/* ------------------------------------------------------------------------------------------
 * little-endian readers and validation helpers
 * ---------------------------------------------------------------------------------------- */
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float rdf(const unsigned char *p)
{
    const uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int host_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

#define MAX_TENSORS (RNC_MAX_LAYERS * 12 + 4)

typedef struct {
    const unsigned char *buf;
    uint64_t size, data_start;
    uint32_t n_refs;
    uint64_t ref_off[MAX_TENSORS], ref_end[MAX_TENSORS];
} rnc_ctx;

/* A tensor reference at p: absent iff expect == 0; else exact length, 64-aligned, in bounds. */
static rnc_status get_ref(rnc_ctx *c, const unsigned char *p, uint64_t expect, const void **out)
{
    const uint64_t off = rd32(p), n = rd32(p + 4);
    *out = NULL;
    if (expect == 0) return (off || n) ? RNC_E_CORRUPT : RNC_OK;
    if (n != expect || off % 64 || off < c->data_start || off > c->size || n > c->size - off)
        return RNC_E_CORRUPT;
    if (c->n_refs >= MAX_TENSORS) return RNC_E_CORRUPT;
    c->ref_off[c->n_refs] = off;
    c->ref_end[c->n_refs] = off + n;
    c->n_refs++;
    *out = c->buf + off;
    return RNC_OK;
}

/* No two tensors may overlap. */
static rnc_status check_overlap(rnc_ctx *c)
{
    for (uint32_t i = 1; i < c->n_refs; ++i) { /* insertion sort by offset (<= 196 entries) */
        const uint64_t o = c->ref_off[i], e = c->ref_end[i];
        uint32_t j = i;
        for (; j > 0 && c->ref_off[j - 1] > o; --j) {
            c->ref_off[j] = c->ref_off[j - 1];
            c->ref_end[j] = c->ref_end[j - 1];
        }
        c->ref_off[j] = o;
        c->ref_end[j] = e;
    }
    for (uint32_t i = 1; i < c->n_refs; ++i)
        if (c->ref_off[i] < c->ref_end[i - 1]) return RNC_E_CORRUPT;
    return RNC_OK;
}

static int finite_f(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x7F800000u) != 0x7F800000u;
}

static rnc_status check_floats(const void *p, uint64_t count, int nonneg)
{
    const float *f = (const float *)p;
    for (uint64_t i = 0; i < count; ++i)
        if (!finite_f(f[i]) || (nonneg && f[i] < 0.0f)) return RNC_E_CORRUPT;
    return RNC_OK;
}

static rnc_status check_q8(const void *p, uint64_t count)
{
    const int8_t *q = (const int8_t *)p;
    for (uint64_t i = 0; i < count; ++i)
        if (q[i] == -128) return RNC_E_CORRUPT;
    return RNC_OK;
}

static rnc_status check_static_scale(float s, uint32_t precision)
{
    if (!finite_f(s) || s < 0.0f) return RNC_E_CORRUPT;
    if (precision == RNC_F32 && s != 0.0f) return RNC_E_CORRUPT;
    return RNC_OK;
}

static uint64_t r16(uint64_t n) { return (n + 15) & ~(uint64_t)15; }
static uint64_t r4(uint64_t n) { return (n + 3) & ~(uint64_t)3; }

#define TRY(x)                                                                                    \
    do {                                                                                          \
        rnc_status st_ = (x);                                                                     \
        if (st_ != RNC_OK) return st_;                                                            \
    } while (0)

/* A weight matrix of R (padded) rows and K inputs: its packed bytes, scales and value checks. */
static rnc_status get_matrix(rnc_ctx *c, uint32_t prec, const unsigned char *wref,
                             const unsigned char *sref, uint64_t rows, uint64_t k,
                             const void **w, const float **s)
{
    const void *sp = NULL;
    if (prec == RNC_Q8) {
        if (r4(k) > RNC_Q8_MAX_K) return RNC_E_UNSUPPORTED;
        TRY(get_ref(c, wref, rows * r4(k), w));
        TRY(get_ref(c, sref, rows * 4, &sp));
        TRY(check_q8(*w, rows * r4(k)));
        TRY(check_floats(sp, rows, 1));
    } else {
        TRY(get_ref(c, wref, rows * k * 4, w));
        TRY(get_ref(c, sref, 0, &sp));
        TRY(check_floats(*w, rows * k, 0));
    }
    *s = (const float *)sp;
    return RNC_OK;
}

static rnc_status load(rnc_model *m, const unsigned char *b, size_t len)
{
    if (len < 4) return RNC_E_TRUNCATED;
    if (memcmp(b, "RNCM", 4) != 0) return RNC_E_MAGIC;
    if (len < HDR) return RNC_E_TRUNCATED;
    if (rd32(b + 4) != RNC_FORMAT_VERSION) return RNC_E_VERSION;
    const uint32_t file_size = rd32(b + 8);
    if (file_size < HDR) return RNC_E_CORRUPT;
    if (file_size > len) return RNC_E_TRUNCATED;
    uint32_t crc;
    rnc_crc32(b + 16, file_size - 16, &crc);
    if (crc != rd32(b + 12)) return RNC_E_CHECKSUM;
    if (!host_little_endian()) return RNC_E_UNSUPPORTED;

    const uint32_t prec = rd32(b + 20), nl = rd32(b + 24), in_size = rd32(b + 28);
    const uint32_t flags = rd32(b + 32), emb_num = rd32(b + 36), emb_dim = rd32(b + 40);
    const uint32_t head_in = rd32(b + 44), head_out = rd32(b + 48), head_act = rd32(b + 52);
    const float head_scale = rdf(b + 56);
    if (rd32(b + 16) != HDR || rd32(b + 60) != DESC) return RNC_E_CORRUPT;
    if (prec >= RNC_PRECISION_COUNT || (flags & ~15u)) return RNC_E_CORRUPT;
    if (nl == 0) return RNC_E_CORRUPT;
    if (nl > RNC_MAX_LAYERS) return RNC_E_UNSUPPORTED;
    for (unsigned i = 96; i < HDR; ++i)
        if (b[i]) return RNC_E_CORRUPT;
    rnc_ctx c;
    c.n_refs = 0;
    c.buf = b;
    c.size = file_size;
    c.data_start = ((uint64_t)HDR + (uint64_t)DESC * nl + 63) & ~(uint64_t)63;
    if (c.data_start > file_size) return RNC_E_CORRUPT;
    if (in_size == 0 || in_size > RNC_MAX_FEATURES) return RNC_E_CORRUPT;

    m->buf = b;
    m->file_size = file_size;
    m->precision = prec;
    m->num_layers = nl;
    m->input_size = in_size;

    /* embedding */
    const void *p;
    if (flags & 1u) {
        if (emb_num == 0 || emb_num > RNC_MAX_VOCAB || emb_dim != in_size) return RNC_E_CORRUPT;
        TRY(get_ref(&c, b + 64, (uint64_t)emb_num * emb_dim * 4, &p));
        TRY(check_floats(p, (uint64_t)emb_num * emb_dim, 0));
        m->embed = (const float *)p;
        m->uses_ids = 1;
        m->embed_num = emb_num;
        m->embed_dim = emb_dim;
    } else {
        if (emb_num || emb_dim) return RNC_E_CORRUPT;
        TRY(get_ref(&c, b + 64, 0, &p));
    }

    /* layers */
    uint64_t feat = in_size, hsum = 0, csum = 0, max_kx = 0, max_ghp = 0, max_feat = in_size;
    int any_bidir = 0;
    for (uint32_t l = 0; l < nl; ++l) {
        const unsigned char *d = b + HDR + (size_t)DESC * l;
        rnc_layer *L = &m->layer[l];
        const uint32_t kind = rd32(d), lf = rd32(d + 4), I = rd32(d + 8), H = rd32(d + 12);
        if (kind >= RNC_CELL_KIND_COUNT || (lf & ~3u) || rd32(d + 28)) return RNC_E_CORRUPT;
        if ((lf & 1u) && kind != RNC_GRU) return RNC_E_CORRUPT;
        if (I != feat || H == 0 || H > RNC_MAX_HIDDEN) return RNC_E_CORRUPT;
        const uint32_t dirs = (lf & 2u) ? 2 : 1;
        L->kind = kind;
        L->reset_after = (lf & 1u) ? 1 : 0;
        L->dirs = dirs;
        L->input_size = I;
        L->hidden_size = H;
        L->gates = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
        L->hp = (uint32_t)r16(H);
        L->kx = (uint32_t)(prec == RNC_Q8 ? r4(I) : I);
        L->kh = (uint32_t)(prec == RNC_Q8 ? r4(H) : H);
        L->x_scale = rdf(d + 16);
        L->h_scale[0] = rdf(d + 20);
        L->h_scale[1] = rdf(d + 24);
        TRY(check_static_scale(L->x_scale, prec));
        TRY(check_static_scale(L->h_scale[0], prec));
        TRY(check_static_scale(L->h_scale[1], prec));
        if (dirs == 1 && L->h_scale[1] != 0.0f) return RNC_E_CORRUPT;
        const uint64_t rows = (uint64_t)L->gates * L->hp;
        for (uint32_t k = 0; k < 2; ++k) {
            const unsigned char *r = d + 32 + 48 * k;
            if (k >= dirs) {
                for (int j = 0; j < 6; ++j) TRY(get_ref(&c, r + 8 * j, 0, &p));
                memset(&L->dir[k], 0, sizeof(L->dir[k]));
                continue;
            }
            TRY(get_matrix(&c, prec, r, r + 16, rows, I, &L->dir[k].w_ih, &L->dir[k].s_ih));
            TRY(get_matrix(&c, prec, r + 8, r + 24, rows, H, &L->dir[k].w_hh, &L->dir[k].s_hh));
            TRY(get_ref(&c, r + 32, rows * 4, &p));
            TRY(check_floats(p, rows, 0));
            L->dir[k].b_ih = (const float *)p;
            TRY(get_ref(&c, r + 40, rows * 4, &p));
            TRY(check_floats(p, rows, 0));
            L->dir[k].b_hh = (const float *)p;
        }
        L->h_offset = (size_t)hsum;
        hsum += (uint64_t)dirs * H;
        L->c_offset = (size_t)(kind == RNC_LSTM ? csum : 0);
        if (kind == RNC_LSTM) csum += (uint64_t)dirs * H;
        if (L->kx > max_kx) max_kx = L->kx;
        if (rows > max_ghp) max_ghp = rows;
        feat = (uint64_t)dirs * H;
        if (feat > max_feat) max_feat = feat;
        if (dirs == 2) any_bidir = 1;
    }
    if (feat > RNC_MAX_FEATURES) return RNC_E_UNSUPPORTED;

    /* head */
    m->last_step = (flags & 4u) ? 1 : 0;
    m->last_step_bidir = (flags & 8u) ? 1 : 0;
    if (m->last_step_bidir && (!m->last_step || m->layer[nl - 1].dirs != 2)) return RNC_E_CORRUPT;
    if (flags & 2u) {
        if (head_in != feat || head_out == 0 || head_out > RNC_MAX_FEATURES ||
            head_act >= RNC_ACTIVATION_COUNT)
            return RNC_E_CORRUPT;
        TRY(check_static_scale(head_scale, prec));
        const uint64_t op = r16(head_out);
        const float *s;
        TRY(get_matrix(&c, prec, b + 72, b + 80, op, head_in, &m->head_w, &s));
        m->head_s = s;
        TRY(get_ref(&c, b + 88, op * 4, &p));
        TRY(check_floats(p, op, 0));
        m->head_b = (const float *)p;
        m->head = 1;
        m->head_in = head_in;
        m->head_out = head_out;
        m->head_act = head_act;
        m->head_kx = (uint32_t)(prec == RNC_Q8 ? r4(head_in) : head_in);
        m->head_scale = head_scale;
        if (m->head_kx > max_kx) max_kx = m->head_kx;
        m->output_size = head_out;
    } else {
        if (head_in || head_out || head_act || head_scale != 0.0f) return RNC_E_CORRUPT;
        for (int j = 0; j < 3; ++j) TRY(get_ref(&c, b + 72 + 8 * j, 0, &p));
        m->output_size = (uint32_t)feat;
    }
    TRY(check_overlap(&c));
    if (max_kx < r4(in_size)) max_kx = r4(in_size);
    m->h_floats = (size_t)hsum;
    m->c_floats = (size_t)csum;
    m->max_feat = (size_t)max_feat;
    m->max_kpad = (size_t)max_kx;
    m->max_gates_hp = (size_t)max_ghp;
    (void)any_bidir;
    return RNC_OK;
}

static int model_bidir(const rnc_model *m)
{
    for (uint32_t l = 0; l < m->num_layers; ++l)
        if (m->layer[l].dirs == 2) return 1;
    return 0;
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
    int16_t k[4][RNC_PRECISION_COUNT];
    for (int op = 0; op < RNC_OP_COUNT; ++op)
        for (int p = 0; p < RNC_PRECISION_COUNT; ++p) {
            const int row = rnc__resolve_kernel(op, p, isa);
            if (row < 0) return RNC_E_ISA;
            k[op][p] = (int16_t)row;
        }
    memcpy(m->kernel, k, sizeof(k));
    m->isa = (uint32_t)isa;
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
    rnc_status st = load(m, (const unsigned char *)buf, len);
    if (st != RNC_OK) {
        memset(m, 0, sizeof(*m));
        return st;
    }
    m->magic_ok = RNC_MODEL_OK;
    st = rnc_model_set_isa(m, RNC_ISA_AUTO);
    if (st != RNC_OK) memset(m, 0, sizeof(*m));
    return st;
}

rnc_status rnc_model_get_info(const rnc_model *m, rnc_model_info *info)
{
    if (!m || !info || m->magic_ok != RNC_MODEL_OK) return RNC_E_ARG;
    memset(info, 0, sizeof(*info));
    info->precision = m->precision;
    info->num_layers = m->num_layers;
    info->uses_ids = m->uses_ids;
    info->input_size = m->uses_ids ? 1 : m->input_size;
    info->output_size = m->output_size;
    info->bidirectional = (uint32_t)model_bidir(m);
    for (uint32_t l = 0; l < m->num_layers; ++l) info->num_states += m->layer[l].dirs;
    info->embed_num = m->embed_num;
    info->has_head = m->head;
    info->head_activation = m->head_act;
    info->h_floats = m->h_floats;
    info->c_floats = m->c_floats;
    info->model_bytes = m->file_size;
    info->last_step = m->last_step;
    info->last_step_bidirectional = m->last_step_bidir;
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
    info->h_offset = L->h_offset;
    info->c_offset = L->c_offset;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * state
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    size_t xin, xq, sx, cell, head, total;
} rnc_step_work;

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
    uint64_t hc = ((uint64_t)m->h_floats + m->c_floats) * batch * 4;
    uint64_t total = hc + 64 + w.total;
    if (total > (uint64_t)SIZE_MAX / 2) return RNC_E_SIZE;
    *bytes = (size_t)total;
    return RNC_OK;
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
    const uintptr_t end = (uintptr_t)(p + (s->h_count + s->c_count) * 4);
    s->work = p + (RNC_ALIGN_UP(end, 64) - (uintptr_t)p);
    s->work_bytes = need - (size_t)(s->work - p);
    memset(p, 0, (s->h_count + s->c_count) * 4);
    return RNC_OK;
}

rnc_status rnc_state_reset(rnc_state *s)
{
    if (!s || !s->model || !s->h) return RNC_E_ARG;
    memset(s->h, 0, s->h_count * 4);
    if (s->c) memset(s->c, 0, s->c_count * 4);
    return RNC_OK;
}

static rnc_status check_state(const rnc_model *m, const rnc_state *s)
{
    if (!m || m->magic_ok != RNC_MODEL_OK || !s) return RNC_E_ARG;
    if (s->model != m || !s->h || s->batch == 0 || s->h_count != m->h_floats * s->batch ||
        s->c_count != m->c_floats * s->batch)
        return RNC_E_STATE;
    /* The same rnc_model re-initialised with another model (e.g. after a firmware update) keeps
     * s->model and may keep h/c counts while needing more scratch: check the work area too. */
    rnc_step_work w;
    if (s->batch > MAX_BATCH || step_work(m, s->batch, &w) != RNC_OK || !s->work ||
        s->work_bytes < w.total)
        return RNC_E_STATE;
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
    case RNC_ACT_SOFTMAX: {
        float mx = y[0], sum = 0.0f;
        for (i = 1; i < n; ++i) mx = y[i] > mx ? y[i] : mx;
        for (i = 0; i < n; ++i) {
            y[i] = expf(y[i] - mx);
            sum += y[i];
        }
        for (i = 0; i < n; ++i) y[i] = y[i] / sum;
        break;
    }
    default: break;
    }
}

/* y (rows x O) = act(W in + b); in: rows x ld_in floats; xq/sx/acc: scratch for `rows`. */
static void apply_head(const rnc_model *m, const float *in, size_t rows, size_t ld_in, float *y,
                       int8_t *xq, float *sx, void *acc)
{
    const uint32_t O = m->head_out, op = (uint32_t)r16(O), K = m->head_in, kx = m->head_kx;
    if (m->precision == RNC_Q8) {
        for (size_t r = 0; r < rows; ++r)
            rnc__quantize_row_isa(m->isa, in + r * ld_in, K, kx, m->head_scale, xq + r * kx,
                                  &sx[r]);
        rnc__kernels[m->kernel[RNC_OP_GEMV][RNC_Q8]].fn.gemm_q8(
            (const int8_t *)m->head_w, (int)O, (int)K, (int)rows, xq, (int)kx, (int32_t *)acc,
            (int)op);
        const int32_t *a = (const int32_t *)acc;
        for (size_t r = 0; r < rows; ++r) {
            float *yr = y + r * O;
            for (uint32_t o = 0; o < O; ++o)
                yr[o] = (float)a[r * op + o] * (sx[r] * m->head_s[o]) + m->head_b[o];
            activation_row(m->head_act, yr, O);
        }
    } else {
        rnc__kernels[m->kernel[RNC_OP_GEMV][RNC_F32]].fn.gemm_f32(
            (const float *)m->head_w, (int)O, (int)K, (int)rows, in, (int)ld_in, (float *)acc,
            (int)op);
        const float *a = (const float *)acc;
        for (size_t r = 0; r < rows; ++r) {
            float *yr = y + r * O;
            for (uint32_t o = 0; o < O; ++o) yr[o] = a[r * op + o] + m->head_b[o];
            activation_row(m->head_act, yr, O);
        }
    }
}

static rnc_cell_fn cell_fn(const rnc_model *m, uint32_t kind)
{
    const int op = kind == RNC_GRU ? RNC_OP_GRU_STEP : kind == RNC_LSTM ? RNC_OP_LSTM_STEP
                                                                         : RNC_OP_RNN_STEP;
    return rnc__kernels[m->kernel[op][m->precision]].fn.cell;
}

static void cell_args_base(const rnc_model *m, const rnc_layer *L, uint32_t d, rnc_state *s,
                           rnc_cell_args *a, void *work)
{
    memset(a, 0, sizeof(*a));
    a->kind = L->kind;
    a->reset_after = L->reset_after;
    a->batch = (uint32_t)s->batch;
    a->I = L->input_size;
    a->H = L->hidden_size;
    a->Hp = L->hp;
    a->G = L->gates;
    a->w_ih = L->dir[d].w_ih;
    a->w_hh = L->dir[d].w_hh;
    a->s_ih = L->dir[d].s_ih;
    a->s_hh = L->dir[d].s_hh;
    a->b_ih = L->dir[d].b_ih;
    a->b_hh = L->dir[d].b_hh;
    a->h_scale = m->precision == RNC_Q8 ? L->h_scale[d] : 0.0f;
    a->h = s->h + (L->h_offset + (size_t)d * L->hidden_size) * s->batch;
    a->c = L->kind == RNC_LSTM ? s->c + (L->c_offset + (size_t)d * L->hidden_size) * s->batch
                               : NULL;
    a->work = work;
}

static rnc_status check_ids(const rnc_model *m, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->embed_num) return RNC_E_VALUE;
    return RNC_OK;
}

static void gather(const rnc_model *m, const int32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; ++i)
        memcpy(out + i * m->embed_dim, m->embed + (size_t)ids[i] * m->embed_dim,
               sizeof(float) * m->embed_dim);
}

/* ------------------------------------------------------------------------------------------
 * step
 * ---------------------------------------------------------------------------------------- */
static rnc_status step_common(const rnc_model *m, rnc_state *s, const float *x,
                              const int32_t *ids, float *y)
{
    TRY(check_state(m, s));
    if (!y || (!x && !ids)) return RNC_E_ARG;
    if (((uintptr_t)x | (uintptr_t)ids | (uintptr_t)y) & 3u) return RNC_E_ALIGN; /* ARMv7 VFP faults */
    if ((ids != NULL) != (m->uses_ids != 0)) return RNC_E_ARG;
    if (model_bidir(m)) return RNC_E_BIDIRECTIONAL;
    const size_t B = s->batch;
    rnc_step_work w;
    TRY(step_work(m, B, &w));
    unsigned char *wk = s->work;
    const float *in;
    size_t in_w;
    if (ids) {
        TRY(check_ids(m, ids, B));
        gather(m, ids, B, (float *)(wk + w.xin));
        in = (const float *)(wk + w.xin);
        in_w = m->embed_dim;
    } else {
        if (!rnc__all_finite(x, B * m->input_size)) return RNC_E_VALUE;
        in = x;
        in_w = m->input_size;
    }
    int8_t *xq = (int8_t *)(wk + w.xq);
    float *sx = (float *)(wk + w.sx);
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        rnc_cell_args a;
        cell_args_base(m, L, 0, s, &a, wk + w.cell);
        if (m->precision == RNC_Q8) {
            for (size_t b = 0; b < B; ++b)
                rnc__quantize_row_isa(m->isa, in + b * in_w, in_w, L->kx, L->x_scale,
                                      xq + b * L->kx, &sx[b]);
            a.xq = xq;
            a.sx = sx;
            a.ldxq = L->kx;
        } else {
            a.x = in;
            a.ldx = in_w;
        }
        cell_fn(m, L->kind)(&a);
        in = a.h;
        in_w = L->hidden_size;
    }
    if (m->head)
        apply_head(m, in, B, in_w, y, xq, sx, wk + w.head);
    else
        memcpy(y, in, sizeof(float) * B * in_w);
    return RNC_OK;
}

rnc_status rnc_step(const rnc_model *m, rnc_state *s, const float *x, float *y)
{
    if (!x) return RNC_E_ARG;
    return step_common(m, s, x, NULL, y);
}

rnc_status rnc_step_ids(const rnc_model *m, rnc_state *s, const int32_t *ids, float *y)
{
    if (!ids) return RNC_E_ARG;
    return step_common(m, s, NULL, ids, y);
}

/* ------------------------------------------------------------------------------------------
 * run
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    size_t seq_a, seq_b, xq, sx, gi, head, pooled, active, total;
} rnc_run_work;

/* From this many sequences on, run() projects the inputs step by step inside the cell (run_common) */
#define RUN_PER_STEP_MIN_BATCH 4u

static rnc_status run_work(const rnc_model *m, size_t batch, size_t steps, rnc_run_work *w)
{
    uint64_t bt, o = 0, t;
    if (!mul_ok(batch, steps, &bt) || bt > 0x7FFFFFFFu) return RNC_E_SIZE;
    const uint64_t op = r16(m->head_out);
#define ADD(field, a, b_)                                                                         \
    do {                                                                                          \
        if (!mul_ok((a), (b_), &t) || t > ((uint64_t)1 << 60)) return RNC_E_SIZE;                 \
        w->field = (size_t)o;                                                                     \
        o += RNC_ALIGN_UP(t, 64);                                                                 \
    } while (0)
    ADD(seq_a, bt, (uint64_t)m->max_feat * 4);
    ADD(seq_b, bt, (uint64_t)m->max_feat * 4);
    ADD(xq, bt, (uint64_t)m->max_kpad);
    ADD(sx, bt, 4);
    /* per-step mode has no use for gi: no B*T*G*Hp floats (26 MB at B=64, T=100, LSTM H=256),
     * which as part of a > 32 MB scratch made every Python run() map fresh pages (glibc serves
     * such blocks by mmap and unmaps them on free) */
    if (batch >= RUN_PER_STEP_MIN_BATCH) ADD(gi, 0, 4);
    else ADD(gi, bt, (uint64_t)m->max_gates_hp * 4);
    ADD(head, bt, op * 4);
    ADD(pooled, batch, (uint64_t)m->max_feat * 4);
    ADD(active, batch, 1);
#undef ADD
    if (o + 64 > (uint64_t)SIZE_MAX / 2) return RNC_E_SIZE;
    w->total = (size_t)o + 64;
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
    TRY(check_state(m, s));
    if ((ids != NULL) != (m->uses_ids != 0)) return RNC_E_ARG;
    const size_t B = s->batch;
    const size_t out_rows = m->last_step ? B : B * T;
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
    if (ids) {
        TRY(check_ids(m, ids, B * T));
    } else if (T && !rnc__all_finite(x, B * T * m->input_size)) {
        return RNC_E_VALUE;
    }
    unsigned char *base = (unsigned char *)scratch;
    base += RNC_ALIGN_UP((uintptr_t)base, 64) - (uintptr_t)base;
    float *seq_a = (float *)(base + w.seq_a), *seq_b = (float *)(base + w.seq_b);
    int8_t *xq = (int8_t *)(base + w.xq);
    float *sx = (float *)(base + w.sx), *gi = (float *)(base + w.gi);
    float *pooled = (float *)(base + w.pooled);
    uint8_t *active = (uint8_t *)(base + w.active);
#define LEN(b) (lengths ? (size_t)lengths[b] : T)

    const float *cur;
    size_t cur_w;
    if (ids) {
        gather(m, ids, B * T, seq_a);
        cur = seq_a;
        cur_w = m->embed_dim;
    } else {
        cur = x;
        cur_w = m->input_size;
    }
    const size_t BT = B * T;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        const size_t H = L->hidden_size, DH = H * L->dirs, ghp = (size_t)L->gates * L->hp;
        const int direct = (l + 1 == m->num_layers) && !m->head && !m->last_step;
        float *out = direct ? y : (cur == seq_a ? seq_b : seq_a);
        /* positions past a length stay zero; without lengths every (b, t) is written by the
         * steps below (both directions), so the 4*B*T*D*H-byte clear is skipped */
        if (BT && lengths) memset(out, 0, sizeof(float) * BT * DH);
        const int per_step = B >= RUN_PER_STEP_MIN_BATCH; /* see below; run_work sizes gi for it */
        /* per-step mode stores the quantised inputs step-major, row (t, b) at t * B + b: one
         * step's B rows are contiguous (in (b, t) order they sat T * kx bytes apart, at B = 64,
         * T = 100, kx = 256 on only 16 of L1's 64 sets, re-read from L2 for every unit block) */
        if (m->precision == RNC_Q8)
            for (size_t n = 0; n < BT; ++n) {
                const size_t r = per_step ? (n % T) * B + n / T : n;
                rnc__quantize_row_isa(m->isa, cur + n * cur_w, cur_w, L->kx, L->x_scale,
                                      xq + r * L->kx, &sx[r]);
            }
        /* Batches of >= 4 sequences project their inputs step by step inside the cell (one GEMM
         * of B columns per step, like rnc_step): B columns already amortise each weight load,
         * and the B x (G*Hp) pre-activations stay in cache, where the whole-sequence product
         * writes B*T*G*Hp floats (20 MB at B=64, T=100, GRU H=256) and reads them back one
         * scattered row at a time (measured 2-3x slower at B=64 on Zen 4). Fewer sequences
         * keep the single product over all (b, t), whose T columns amortise the weights. Both
         * give the same bits: the same products (exact int32 / an order independent of the
         * column count) and the same float32 epilogue. */
        for (uint32_t d = 0; d < L->dirs; ++d) {
            if (BT && !per_step) {
                /* the input projection of every (b, t) as one matrix product */
#if RNC_X86
                if (m->precision == RNC_Q8 && m->isa == RNC_ISA_AVX512VNNI) {
                    /* the same integers and float32 operations, the scaling in the GEMM's store */
                    rnc_q8_gemm_deq_avx512vnni((const int8_t *)L->dir[d].w_ih, (int)ghp, (int)L->input_size,
                                               (int)BT, xq, (int)L->kx, sx, L->dir[d].s_ih, L->dir[d].b_ih,
                                               gi, (int)ghp);
                } else
#endif
                if (m->precision == RNC_Q8) {
                    int32_t *acc = (int32_t *)gi;
                    rnc__kernels[m->kernel[RNC_OP_GEMV][RNC_Q8]].fn.gemm_q8(
                        (const int8_t *)L->dir[d].w_ih, (int)ghp, (int)L->input_size, (int)BT, xq,
                        (int)L->kx, acc, (int)ghp);
                    const float *sw = L->dir[d].s_ih, *bi = L->dir[d].b_ih;
                    for (size_t n = 0; n < BT; ++n) {
                        const float sv = sx[n];
                        for (size_t r = 0; r < ghp; ++r)
                            gi[n * ghp + r] = (float)acc[n * ghp + r] * (sv * sw[r]) + bi[r];
                    }
                } else {
                    rnc__kernels[m->kernel[RNC_OP_GEMV][RNC_F32]].fn.gemm_f32(
                        (const float *)L->dir[d].w_ih, (int)ghp, (int)L->input_size, (int)BT, cur,
                        (int)cur_w, gi, (int)ghp);
                    const float *bi = L->dir[d].b_ih;
                    for (size_t n = 0; n < BT; ++n)
                        for (size_t r = 0; r < ghp; ++r) gi[n * ghp + r] = gi[n * ghp + r] + bi[r];
                }
            }
            rnc_cell_args a;
            cell_args_base(m, L, d, s, &a, s->work);
            a.ldgi = T * ghp;
            a.ldy = T * DH;
            a.active = active;
            const rnc_cell_fn fn = cell_fn(m, L->kind);
#if RNC_X86
            const int32_t *corr = NULL;
            /* avx512vnni (and amx, whose cells below 16 rows are avx512vnni's) at batch 2-3: W_hh's
             * row corrections (offset trick) made once for the T steps, so that a step loads each
             * weight vector once for all rows; in the sequence buffer this layer no longer reads
             * (its q8 input is in xq; neither x nor out) */
            if (m->precision == RNC_Q8 && (m->isa == RNC_ISA_AVX512VNNI || m->isa == RNC_ISA_AMX) &&
                !per_step && B > 1 && T >= 4) {
                int32_t *buf = (int32_t *)(void *)(cur == seq_a ? seq_a : seq_b);
                if (ghp * 4 <= w.xq - w.seq_b) {
                    rnc_q8_rowcorr_avx512vnni((const int8_t *)L->dir[d].w_hh, (int)ghp, (int)H, buf);
                    corr = buf;
                }
            }
#endif
            for (size_t step = 0; step < T; ++step) {
                const size_t t = d ? T - 1 - step : step;
                int any = 0;
                for (size_t b = 0; b < B; ++b) {
                    active[b] = t < LEN(b);
                    any |= active[b];
                }
                if (!any) continue;
                if (per_step) { /* the cell computes W_ih x_t of every row itself */
                    if (m->precision == RNC_Q8) { /* step t's rows, contiguous (above) */
                        a.xq = xq + t * B * L->kx;
                        a.ldxq = L->kx;
                        a.sx = sx + t * B;
                    } else {
                        a.x = cur + t * cur_w;
                        a.ldx = T * cur_w;
                    }
                } else {
                    a.gi = gi + t * ghp;
                }
                a.y = out + t * DH + d * H;
#if RNC_X86
                if (corr) {
                    rnc_q8_seq_step_avx512vnni(&a, corr);
                    continue;
                }
#endif
                fn(&a);
            }
        }
        cur = out;
        cur_w = DH;
    }
    float *head_acc = (float *)(base + w.head);
    if (m->last_step) {
        for (size_t b = 0; b < B; ++b) {
            float *pr = pooled + b * cur_w;
            const size_t len = LEN(b);
            if (len == 0) {
                memset(pr, 0, sizeof(float) * cur_w);
                continue;
            }
            memcpy(pr, cur + (b * T + len - 1) * cur_w, sizeof(float) * cur_w);
            if (m->last_step_bidir) {
                const size_t half = cur_w / 2;
                memcpy(pr + half, cur + (b * T) * cur_w + half, sizeof(float) * half);
            }
        }
        if (m->head)
            apply_head(m, pooled, B, cur_w, y, xq, sx, head_acc);
        else
            memcpy(y, pooled, sizeof(float) * B * cur_w);
    } else if (m->head && BT) {
        apply_head(m, cur, BT, cur_w, y, xq, sx, head_acc);
        const size_t O = m->head_out;
        for (size_t b = 0; b < B; ++b)
            for (size_t t = LEN(b); t < T; ++t) memset(y + (b * T + t) * O, 0, sizeof(float) * O);
    }
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
