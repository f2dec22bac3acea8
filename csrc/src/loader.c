/* The .rnc loader: validation of the whole buffer (every length, offset, count and value) and the
 * model's fields pointed into it (docs/rnc-format.md). No allocation. */
#include <math.h>
#include <string.h>

#include "internal.h"

#define HDR 128u
#define DESC 128u

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

rnc_status rnc__load(rnc_model *m, const unsigned char *b, size_t len)
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
