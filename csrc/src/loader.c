/* The .rnc loader: validation of the whole buffer (every length, offset, count and value) and the
 * model's fields pointed into it (docs/rnc-format.md). Versions 1 (fixed header + layer
 * descriptors) and 2 (header + ordered list of layer records) fill the same rnc_model. Every field
 * is read through the accessors of rnc_layout.h. No allocation. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "rnc_layout.h"

/* the versions rnc__load() reads are the ones rnncore.h announces */
typedef char rnc_newest_version_is_v2[RNC_FORMAT_VERSION == RNC_V2 ? 1 : -1];
typedef char rnc_oldest_version_is_v1[RNC_FORMAT_VERSION_MIN == RNC_V1 ? 1 : -1];

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
    /* running totals over the recurrent layers loaded so far */
    uint64_t feat, hsum, csum, max_kx, max_ghp, max_feat;
} rnc_ctx;

/* Every byte of a structure that no field of rnc_layout.h names must be zero. */
static rnc_status check_reserved(const unsigned char *p, uint32_t size, const rnc_span *spans, size_t n)
{
    for (uint32_t i = 0; i < size; ++i) {
        int named = 0;
        for (size_t k = 0; k < n && !named; ++k)
            named = i >= spans[k].off && i < (uint32_t)spans[k].off + spans[k].size;
        if (!named && p[i]) return RNC_E_CORRUPT;
    }
    return RNC_OK;
}
#define CHECK_RESERVED(s, p)                                                                      \
    do {                                                                                          \
        static const rnc_span spans_[] = {RNC_FIELDS_##s(RNC__SPAN)};                             \
        TRY(check_reserved((p), RNC_SIZE_##s, spans_, sizeof spans_ / sizeof spans_[0]));         \
    } while (0)

/* A tensor reference at p: absent iff expect == 0; else exact length, 64-aligned, in bounds. */
static rnc_status get_ref(rnc_ctx *c, const unsigned char *p, uint64_t expect, const void **out)
{
    const uint64_t off = rnc_ref_offset(p), n = rnc_ref_nbytes(p);
    *out = NULL;
    if (expect == 0) return (off || n) ? RNC_E_CORRUPT : RNC_OK;
    if (n != expect || off % RNC_ALIGN || off < c->data_start || off > c->size || n > c->size - off)
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

/* A bias (or any f32 vector) of `count` floats. */
static rnc_status get_vector(rnc_ctx *c, const unsigned char *ref, uint64_t count, const float **v)
{
    const void *p;
    TRY(get_ref(c, ref, count * 4, &p));
    TRY(check_floats(p, count, 0));
    *v = (const float *)p;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * the model's parts, shared by both versions
 * ---------------------------------------------------------------------------------------- */
/* The model's layers in file order, by record kind: what the executor walks (model.c). */
static rnc_status add_stage(rnc_model *m, uint32_t kind)
{
    if (m->num_stages >= sizeof(m->stage)) return RNC_E_UNSUPPORTED;
    m->stage[m->num_stages++] = (uint8_t)kind;
    return RNC_OK;
}

static rnc_status load_embedding(rnc_ctx *c, rnc_model *m, uint32_t num, uint32_t dim,
                                 const unsigned char *ref)
{
    const void *p;
    if (num == 0 || num > RNC_MAX_VOCAB || dim == 0 || dim > RNC_MAX_FEATURES) return RNC_E_CORRUPT;
    TRY(get_ref(c, ref, (uint64_t)num * dim * 4, &p));
    TRY(check_floats(p, (uint64_t)num * dim, 0));
    m->embed = (const float *)p;
    m->uses_ids = 1;
    m->embed_num = num;
    m->embed_dim = dim;
    return add_stage(m, RNC_REC_EMBEDDING);
}

typedef struct {
    uint32_t cell, flags, input_size, hidden_size;
    float x_scale, h_scale[2];
    const unsigned char *dir[2]; /* cellw structures; dir[1] NULL when unidirectional (v2) */
    const unsigned char *hh_sums; /* v2: the reference to W_hh's kernel sums; v1: NULL */
} layer_src;

/* W_hh's kernel sums as stored (v2, q8): every direction's G*Hp int32, each equal to the sum of
 * its packed row (checked here, so a kernel may start its accumulators from them). */
static rnc_status get_hh_sums(rnc_ctx *c, rnc_layer *L, const unsigned char *ref, uint64_t rows)
{
    const void *p;
    TRY(get_ref(c, ref, rows * 4 * L->dirs, &p));
    const int32_t *s = (const int32_t *)p;
    for (uint32_t k = 0; k < L->dirs; ++k, s += rows) {
        int32_t want[16];
        const size_t block = (size_t)L->kh / 4 * 64; /* bytes of 16 packed rows */
        for (uint64_t b = 0; b < rows / 16; ++b) {
            rnc_q8_rowsum_generic((const int8_t *)L->dir[k].w_hh + b * block, 16, (int)L->kh, want);
            if (memcmp(want, s + 16 * b, sizeof(want)) != 0) return RNC_E_CORRUPT;
        }
        L->dir[k].hh_sums = s;
    }
    return RNC_OK;
}

/* Recurrent layer number m->num_layers: checks against the running feature width c->feat. */
static rnc_status load_layer(rnc_ctx *c, rnc_model *m, const layer_src *s)
{
    const uint32_t prec = m->precision, kind = s->cell, lf = s->flags, I = s->input_size;
    const uint32_t H = s->hidden_size;
    if (m->num_layers >= RNC_MAX_LAYERS) return RNC_E_UNSUPPORTED;
    rnc_layer *L = &m->layer[m->num_layers];
    if (kind >= RNC_CELL_KIND_COUNT || (lf & ~(RNC_LAYER_FLAG_RESET_AFTER | RNC_LAYER_FLAG_BIDIR)))
        return RNC_E_CORRUPT;
    if ((lf & RNC_LAYER_FLAG_RESET_AFTER) && kind != RNC_GRU) return RNC_E_CORRUPT;
    if (I != c->feat || H == 0 || H > RNC_MAX_HIDDEN) return RNC_E_CORRUPT;
    const uint32_t dirs = (lf & RNC_LAYER_FLAG_BIDIR) ? 2 : 1;
    L->kind = kind;
    L->reset_after = (lf & RNC_LAYER_FLAG_RESET_AFTER) ? 1 : 0;
    L->dirs = dirs;
    L->input_size = I;
    L->hidden_size = H;
    L->gates = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    L->hp = (uint32_t)r16(H);
    L->kx = (uint32_t)(prec == RNC_Q8 ? r4(I) : I);
    L->kh = (uint32_t)(prec == RNC_Q8 ? r4(H) : H);
    L->x_scale = s->x_scale;
    L->h_scale[0] = s->h_scale[0];
    L->h_scale[1] = s->h_scale[1];
    TRY(check_static_scale(L->x_scale, prec));
    TRY(check_static_scale(L->h_scale[0], prec));
    TRY(check_static_scale(L->h_scale[1], prec));
    if (dirs == 1 && L->h_scale[1] != 0.0f) return RNC_E_CORRUPT;
    const uint64_t rows = (uint64_t)L->gates * L->hp;
    for (uint32_t k = 0; k < 2; ++k) {
        const unsigned char *w = s->dir[k];
        memset(&L->dir[k], 0, sizeof(L->dir[k]));
        if (k >= dirs) {
            const void *p;
            if (w) { /* v1: the unused direction's references are all absent */
                TRY(get_ref(c, rnc_cellw_w_ih(w), 0, &p));
                TRY(get_ref(c, rnc_cellw_w_hh(w), 0, &p));
                TRY(get_ref(c, rnc_cellw_s_ih(w), 0, &p));
                TRY(get_ref(c, rnc_cellw_s_hh(w), 0, &p));
                TRY(get_ref(c, rnc_cellw_b_ih(w), 0, &p));
                TRY(get_ref(c, rnc_cellw_b_hh(w), 0, &p));
            }
            continue;
        }
        TRY(get_matrix(c, prec, rnc_cellw_w_ih(w), rnc_cellw_s_ih(w), rows, I, &L->dir[k].w_ih,
                       &L->dir[k].s_ih));
        TRY(get_matrix(c, prec, rnc_cellw_w_hh(w), rnc_cellw_s_hh(w), rows, H, &L->dir[k].w_hh,
                       &L->dir[k].s_hh));
        TRY(get_vector(c, rnc_cellw_b_ih(w), rows, &L->dir[k].b_ih));
        TRY(get_vector(c, rnc_cellw_b_hh(w), rows, &L->dir[k].b_hh));
    }
    if (s->hh_sums) { /* v2: present exactly for q8 */
        const void *p;
        if (prec == RNC_Q8) TRY(get_hh_sums(c, L, s->hh_sums, rows));
        else TRY(get_ref(c, s->hh_sums, 0, &p));
    }
    L->h_offset = (size_t)c->hsum;
    c->hsum += (uint64_t)dirs * H;
    L->c_offset = (size_t)(kind == RNC_LSTM ? c->csum : 0);
    if (kind == RNC_LSTM) c->csum += (uint64_t)dirs * H;
    if (L->kx > c->max_kx) c->max_kx = L->kx;
    if (rows > c->max_ghp) c->max_ghp = rows;
    c->feat = (uint64_t)dirs * H;
    if (c->feat > c->max_feat) c->max_feat = c->feat;
    m->num_layers++;
    return add_stage(m, RNC_REC_RECURRENT);
}

static rnc_status load_last_step(rnc_model *m, uint32_t bidir)
{
    m->last_step = 1;
    m->last_step_bidir = bidir ? 1 : 0;
    if (bidir && (m->num_layers == 0 || m->layer[m->num_layers - 1].dirs != 2)) return RNC_E_CORRUPT;
    return add_stage(m, RNC_REC_LAST_STEP);
}

static rnc_status load_head(rnc_ctx *c, rnc_model *m, uint32_t in, uint32_t out, uint32_t act,
                            float scale, const unsigned char *wref, const unsigned char *sref,
                            const unsigned char *bref)
{
    const uint32_t prec = m->precision;
    if (in != c->feat || out == 0 || out > RNC_MAX_FEATURES || act >= RNC_ACTIVATION_COUNT)
        return RNC_E_CORRUPT;
    TRY(check_static_scale(scale, prec));
    const uint64_t op = r16(out);
    const float *s;
    TRY(get_matrix(c, prec, wref, sref, op, in, &m->head_w, &s));
    m->head_s = s;
    TRY(get_vector(c, bref, op, &m->head_b));
    m->head = 1;
    m->head_in = in;
    m->head_out = out;
    m->head_act = act;
    m->head_kx = (uint32_t)(prec == RNC_Q8 ? r4(in) : in);
    m->head_scale = scale;
    if (m->head_kx > c->max_kx) c->max_kx = m->head_kx;
    return add_stage(m, RNC_REC_LINEAR);
}

/* After the last part: the output width, overlap check and the executor's size summaries. */
static rnc_status finish(rnc_ctx *c, rnc_model *m)
{
    if (c->feat > RNC_MAX_FEATURES) return RNC_E_UNSUPPORTED;
    m->output_size = m->head ? m->head_out : (uint32_t)c->feat;
    TRY(check_overlap(c));
    if (c->max_kx < r4(m->input_size)) c->max_kx = r4(m->input_size);
    m->h_floats = (size_t)c->hsum;
    m->c_floats = (size_t)c->csum;
    m->max_feat = (size_t)c->max_feat;
    m->max_kpad = (size_t)c->max_kx;
    m->max_gates_hp = (size_t)c->max_ghp;
    return RNC_OK;
}

/* Common header checks: file size, checksum, byte order; starts the context. */
static rnc_status begin(rnc_ctx *c, const unsigned char *b, size_t len, uint32_t file_size,
                        uint32_t crc_field, uint32_t header_size)
{
    if (file_size < header_size) return RNC_E_CORRUPT;
    if (file_size > len) return RNC_E_TRUNCATED;
    uint32_t crc;
    rnc_crc32(b + RNC_CRC_START, file_size - RNC_CRC_START, &crc);
    if (crc != crc_field) return RNC_E_CHECKSUM;
    if (!host_little_endian()) return RNC_E_UNSUPPORTED;
    memset(c, 0, sizeof(*c));
    c->buf = b;
    c->size = file_size;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * version 1: 128-byte header, 128-byte descriptor per recurrent layer
 * ---------------------------------------------------------------------------------------- */
static rnc_status load_v1(rnc_model *m, const unsigned char *b, size_t len)
{
    rnc_ctx c;
    if (len < RNC_SIZE_hdr1) return RNC_E_TRUNCATED;
    TRY(begin(&c, b, len, rnc_hdr1_file_size(b), rnc_hdr1_crc32(b), RNC_SIZE_hdr1));
    const uint32_t prec = rnc_hdr1_precision(b), nl = rnc_hdr1_num_layers(b);
    const uint32_t in_size = rnc_hdr1_input_size(b), flags = rnc_hdr1_flags(b);
    if (rnc_hdr1_header_size(b) != RNC_V1_HEADER_SIZE || rnc_hdr1_layer_desc_size(b) != RNC_V1_DESC_SIZE)
        return RNC_E_CORRUPT;
    const uint32_t known = RNC_V1_FLAG_EMBEDDING | RNC_V1_FLAG_HEAD | RNC_V1_FLAG_LAST_STEP |
                           RNC_V1_FLAG_LAST_STEP_BIDIR;
    if (prec >= RNC_PRECISION_COUNT || (flags & ~known)) return RNC_E_CORRUPT;
    if (nl == 0) return RNC_E_CORRUPT;
    if (nl > RNC_MAX_LAYERS) return RNC_E_UNSUPPORTED;
    CHECK_RESERVED(hdr1, b);
    c.data_start = ((uint64_t)RNC_SIZE_hdr1 + (uint64_t)RNC_SIZE_desc1 * nl + RNC_ALIGN - 1) &
                   ~(uint64_t)(RNC_ALIGN - 1);
    if (c.data_start > c.size) return RNC_E_CORRUPT;
    if (in_size == 0 || in_size > RNC_MAX_FEATURES) return RNC_E_CORRUPT;

    m->buf = b;
    m->file_size = c.size;
    m->precision = prec;
    m->input_size = in_size;
    c.feat = c.max_feat = in_size;

    const void *p;
    if (flags & RNC_V1_FLAG_EMBEDDING) {
        if (rnc_hdr1_embed_dim(b) != in_size) return RNC_E_CORRUPT;
        TRY(load_embedding(&c, m, rnc_hdr1_embed_num(b), rnc_hdr1_embed_dim(b), rnc_hdr1_embedding(b)));
    } else {
        if (rnc_hdr1_embed_num(b) || rnc_hdr1_embed_dim(b)) return RNC_E_CORRUPT;
        TRY(get_ref(&c, rnc_hdr1_embedding(b), 0, &p));
    }
    for (uint32_t l = 0; l < nl; ++l) {
        const unsigned char *d = b + RNC_SIZE_hdr1 + (size_t)RNC_SIZE_desc1 * l;
        CHECK_RESERVED(desc1, d);
        const layer_src s = {rnc_desc1_kind(d), rnc_desc1_flags(d), rnc_desc1_input_size(d),
                             rnc_desc1_hidden_size(d), rnc_desc1_x_scale(d),
                             {rnc_desc1_h_scale(d), rnc_desc1_h_scale_reverse(d)},
                             {rnc_desc1_dir0(d), rnc_desc1_dir1(d)},
                             NULL};
        TRY(load_layer(&c, m, &s));
    }
    if (flags & RNC_V1_FLAG_LAST_STEP)
        TRY(load_last_step(m, flags & RNC_V1_FLAG_LAST_STEP_BIDIR));
    else if (flags & RNC_V1_FLAG_LAST_STEP_BIDIR)
        return RNC_E_CORRUPT;
    if (flags & RNC_V1_FLAG_HEAD) {
        TRY(load_head(&c, m, rnc_hdr1_head_in(b), rnc_hdr1_head_out(b), rnc_hdr1_head_activation(b),
                      rnc_hdr1_head_in_scale(b), rnc_hdr1_head_weight(b), rnc_hdr1_head_scale(b),
                      rnc_hdr1_head_bias(b)));
    } else {
        if (rnc_hdr1_head_in(b) || rnc_hdr1_head_out(b) || rnc_hdr1_head_activation(b) ||
            rnc_hdr1_head_in_scale(b) != 0.0f)
            return RNC_E_CORRUPT;
        TRY(get_ref(&c, rnc_hdr1_head_weight(b), 0, &p));
        TRY(get_ref(&c, rnc_hdr1_head_scale(b), 0, &p));
        TRY(get_ref(&c, rnc_hdr1_head_bias(b), 0, &p));
    }
    return finish(&c, m);
}

/* ------------------------------------------------------------------------------------------
 * version 2: 64-byte header, then an ordered list of self-sizing records
 * ---------------------------------------------------------------------------------------- */

/* Where record kind `kind` may stand in the sequence the executor runs:
 * [embedding] recurrent+ [last_step] [linear]. Stages: 0 start, 1 after the embedding, 2 after a
 * recurrent layer, 3 after last_step, 4 after the linear head. Returns the new stage or -1. */
static int next_stage(int stage, uint32_t kind)
{
    switch (kind) {
    case RNC_REC_EMBEDDING: return stage == 0 ? 1 : -1;
    case RNC_REC_RECURRENT: return stage <= 2 ? 2 : -1;
    case RNC_REC_LAST_STEP: return stage == 2 ? 3 : -1;
    case RNC_REC_LINEAR: return stage == 2 || stage == 3 ? 4 : -1;
    default: return -1; /* a kind this loader does not know */
    }
}

static rnc_status load_record(rnc_ctx *c, rnc_model *m, const unsigned char *r, uint32_t size)
{
    switch (rnc_rec_kind(r)) {
    case RNC_REC_EMBEDDING:
        if (size != RNC_SIZE_rec_embedding) return RNC_E_CORRUPT;
        CHECK_RESERVED(rec_embedding, r);
        TRY(load_embedding(c, m, rnc_rec_embedding_num(r), rnc_rec_embedding_dim(r),
                           rnc_rec_embedding_weight(r)));
        m->input_size = m->embed_dim;
        c->feat = c->max_feat = m->embed_dim;
        return RNC_OK;
    case RNC_REC_RECURRENT: {
        if (size < RNC_SIZE_rec_recurrent) return RNC_E_CORRUPT;
        CHECK_RESERVED(rec_recurrent, r);
        const uint32_t flags = rnc_rec_recurrent_flags(r);
        const uint32_t dirs = (flags & RNC_LAYER_FLAG_BIDIR) ? 2 : 1;
        if (size != RNC_REC_RECURRENT_DIR0 + (uint32_t)RNC_SIZE_cellw * dirs) return RNC_E_CORRUPT;
        const unsigned char *d0 = r + RNC_REC_RECURRENT_DIR0;
        const layer_src s = {rnc_rec_recurrent_cell(r), flags, rnc_rec_recurrent_input_size(r),
                             rnc_rec_recurrent_hidden_size(r), rnc_rec_recurrent_x_scale(r),
                             {rnc_rec_recurrent_h_scale(r), rnc_rec_recurrent_h_scale_reverse(r)},
                             {d0, dirs == 2 ? d0 + RNC_SIZE_cellw : NULL},
                             rnc_rec_recurrent_w_hh_sums(r)};
        return load_layer(c, m, &s);
    }
    case RNC_REC_LAST_STEP: {
        if (size != RNC_SIZE_rec_last_step) return RNC_E_CORRUPT;
        CHECK_RESERVED(rec_last_step, r);
        const uint32_t flags = rnc_rec_last_step_flags(r);
        if (flags & ~RNC_LAST_STEP_FLAG_BIDIR) return RNC_E_CORRUPT;
        return load_last_step(m, flags & RNC_LAST_STEP_FLAG_BIDIR);
    }
    case RNC_REC_LINEAR:
        if (size != RNC_SIZE_rec_linear) return RNC_E_CORRUPT;
        CHECK_RESERVED(rec_linear, r);
        return load_head(c, m, rnc_rec_linear_in_features(r), rnc_rec_linear_out_features(r),
                         rnc_rec_linear_activation(r), rnc_rec_linear_in_scale(r),
                         rnc_rec_linear_weight(r), rnc_rec_linear_scale(r), rnc_rec_linear_bias(r));
    default: return RNC_E_UNSUPPORTED; /* next_stage() refused it already */
    }
}

static rnc_status load_v2(rnc_model *m, const unsigned char *b, size_t len)
{
    rnc_ctx c;
    if (len < RNC_SIZE_hdr2) return RNC_E_TRUNCATED;
    TRY(begin(&c, b, len, rnc_hdr2_file_size(b), rnc_hdr2_crc32(b), RNC_SIZE_hdr2));
    const uint32_t prec = rnc_hdr2_precision(b), in_size = rnc_hdr2_input_size(b);
    const uint32_t nrec = rnc_hdr2_num_records(b), rsize = rnc_hdr2_records_size(b);
    if (rnc_hdr2_header_size(b) != RNC_V2_HEADER_SIZE || prec >= RNC_PRECISION_COUNT ||
        rnc_hdr2_flags(b) != 0)
        return RNC_E_CORRUPT;
    CHECK_RESERVED(hdr2, b);
    if (nrec == 0 || in_size > RNC_MAX_FEATURES) return RNC_E_CORRUPT;
    if (rsize > c.size - RNC_SIZE_hdr2) return RNC_E_CORRUPT;
    const uint64_t rec_end = (uint64_t)RNC_SIZE_hdr2 + rsize;
    c.data_start = (rec_end + RNC_ALIGN - 1) & ~(uint64_t)(RNC_ALIGN - 1);
    if (c.data_start > c.size) return RNC_E_CORRUPT;

    /* 1. structure: nrec records of size >= 8, multiples of 8, filling records_size exactly */
    uint64_t pos = RNC_SIZE_hdr2;
    for (uint32_t i = 0; i < nrec; ++i) {
        if (rec_end - pos < RNC_SIZE_rec) return RNC_E_CORRUPT;
        const uint32_t size = rnc_rec_size(b + pos);
        if (size < RNC_SIZE_rec || size % 8 || size > rec_end - pos) return RNC_E_CORRUPT;
        pos += size;
    }
    if (pos != rec_end) return RNC_E_CORRUPT;

    /* 2. sequence: only what the executor runs; anything else (unknown kinds included) is a file
     * this library cannot run */
    int stage = 0;
    pos = RNC_SIZE_hdr2;
    for (uint32_t i = 0; i < nrec; ++i) {
        stage = next_stage(stage, rnc_rec_kind(b + pos));
        if (stage < 0) return RNC_E_UNSUPPORTED;
        pos += rnc_rec_size(b + pos);
    }
    if (stage < 2) return RNC_E_UNSUPPORTED; /* no recurrent layer */

    /* 3. contents: the model input is token ids (input_size 0) exactly when an embedding leads */
    const int has_embedding = rnc_rec_kind(b + RNC_SIZE_hdr2) == RNC_REC_EMBEDDING;
    if (has_embedding != (in_size == 0)) return RNC_E_CORRUPT;
    m->buf = b;
    m->file_size = c.size;
    m->precision = prec;
    m->input_size = in_size;
    c.feat = c.max_feat = in_size;
    pos = RNC_SIZE_hdr2;
    for (uint32_t i = 0; i < nrec; ++i) {
        const uint32_t size = rnc_rec_size(b + pos);
        TRY(load_record(&c, m, b + pos, size));
        pos += size;
    }
    return finish(&c, m);
}

rnc_status rnc__load(rnc_model *m, const unsigned char *b, size_t len)
{
    /* magic and version sit at the same place in every version */
    if (len < 4) return RNC_E_TRUNCATED;
    if (rnc_hdr1_magic(b) != RNC_MAGIC) return RNC_E_MAGIC;
    if (len < 8) return RNC_E_TRUNCATED;
    switch (rnc_hdr1_version(b)) {
    case RNC_V1: return load_v1(m, b, len);
    case RNC_V2: return load_v2(m, b, len);
    default: return RNC_E_VERSION;
    }
}
