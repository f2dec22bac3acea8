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

/* tensors of the largest model: 16 bidirectional layers of 6 per direction + W_hh's kernel sums
 * (v2 q8), an embedding and a head (weight, scales, bias) */
#define MAX_TENSORS (RNC_MAX_LAYERS * 16 + 4 + 3 * RNC_MAX_FRONT + 2) /* + 3 of each layer's options (v2), 3 per frame_conv (q8: its scales), 4 of the one log_mel */
#define MAX_PARTS (RNC_MAX_LAYERS + 3 + RNC_MAX_FRONT) /* v2 records: [embedding] recurrent+ ... + per-step */
#define PART_HEADER 0xFFFFFFFFu
#define NO_DIR 0xFFu

/* the ranges of rnc_layout.h are rnncore.h's limits and enumerations */
typedef char rnc_limits_agree[(RNC_FILE_PRECISIONS == RNC_PRECISION_COUNT &&
                               RNC_FILE_CELL_KINDS == RNC_CELL_KIND_COUNT &&
                               RNC_FILE_ACTIVATIONS == RNC_ACTIVATION_COUNT &&
                               RNC_FILE_MAX_LAYERS == RNC_MAX_LAYERS &&
                               RNC_FILE_MAX_HIDDEN == RNC_MAX_HIDDEN &&
                               RNC_FILE_MAX_FEATURES == RNC_MAX_FEATURES &&
                               RNC_FILE_MAX_VOCAB == RNC_MAX_VOCAB && RNC_FILE_Q8_MAX_K == RNC_Q8_MAX_K &&
                               RNC_FILE_MAX_FRONT == RNC_MAX_FRONT)
                                  ? 1
                                  : -1];
/* the executor's precision of integer files is rnc_layout.h's */
typedef char rnc_int8_is_precision_3[RNC_INT8 == RNC_FILE_PRECISION_INT ? 1 : -1];

/* the refusals of rnc_layout.h: text and status by message number */
#define RNC__MSG_ID(n, st, t) MSG_##n,
enum rnc_msg { RNC_MESSAGES(RNC__MSG_ID) MSG_COUNT_ };
#define RNC__MSG_TEXT(n, st, t) t,
static const char *const msg_text[] = {RNC_MESSAGES(RNC__MSG_TEXT)};
#define RNC__MSG_STATUS(n, st, t) RNC_E_##st,
static const rnc_status msg_status[] = {RNC_MESSAGES(RNC__MSG_STATUS)};

/* a field's name, checked at compile time to be a field of structure s */
#define FIELD(s, f) ((void)RNC_AT_##s##_##f, #f)

typedef struct {
    const unsigned char *buf;
    uint64_t size, data_start;
    uint32_t n_refs;
    uint64_t ref_off[MAX_TENSORS], ref_end[MAX_TENSORS];
    const char *ref_field[MAX_TENSORS]; /* where each tensor's reference sits, for the overlap */
    uint8_t ref_part[MAX_TENSORS], ref_dir[MAX_TENSORS]; /* 0xFF: the header / no direction */
    /* running totals over the recurrent layers loaded so far */
    uint64_t feat, hsum, csum, max_kx, max_ghp, max_feat;
    /* where the loader reads: the part (PART_HEADER, v1 descriptor / v2 record number) and the
     * direction (NO_DIR outside a cellw); v2: each part's record kind and layer number */
    uint32_t version, part, dir;
    uint8_t part_kind[MAX_PARTS], part_layer[MAX_PARTS];
    char *err; /* rnc_model.error */
    uint64_t int_h_scale; /* precision 3: the previous layer's h_scale (binary64 bits) and h zero point */
    int32_t int_h_zp;
} rnc_ctx;

/* ---- the refusal's text, without printf (no allocation, no locale) ------------------------- */
typedef struct {
    char *p;
    size_t n, cap;
} text_buf;

static void put_s(text_buf *t, const char *s)
{
    for (; *s && t->n + 1 < t->cap; ++s) t->p[t->n++] = *s;
    t->p[t->n] = 0;
}

static void put_num(text_buf *t, uint64_t v, unsigned base, int negative)
{
    char d[24];
    int k = 0;
    do {
        d[k++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (negative) d[k++] = '-';
    while (k > 0 && t->n + 1 < t->cap) t->p[t->n++] = d[--k];
    t->p[t->n] = 0;
}

/* fmt with %llu %lld %llx (taking a[0], a[1], ... in order) and %s (taking str[0], str[1], ...) */
static void put_fmt(text_buf *t, const char *fmt, const uint64_t *a, const char *const *str)
{
    char one[2] = {0, 0};
    for (const char *f = fmt; *f; ++f) {
        if (f[0] == '%' && f[1] == 's') {
            put_s(t, *str++);
            f += 1;
        } else if (f[0] == '%' && f[1] == 'l' && f[2] == 'l' && (f[3] == 'u' || f[3] == 'x' || f[3] == 'd')) {
            const uint64_t v = *a++;
            if (f[3] == 'd' && (int64_t)v < 0) put_num(t, (uint64_t)0 - v, 10, 1);
            else put_num(t, v, f[3] == 'x' ? 16 : 10, 0);
            f += 3;
        } else {
            one[0] = *f;
            put_s(t, one);
        }
    }
}

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case RNC_REC_EMBEDDING: return "embedding";
    case RNC_REC_RECURRENT: return "recurrent";
    case RNC_REC_LAST_STEP: return "last_step";
    case RNC_REC_LINEAR: return "linear";
    case RNC_REC_FRAME_CONV: return "frame_conv";
    case RNC_REC_POINTWISE: return "pointwise";
    case RNC_REC_MAGNITUDE: return "magnitude";
    case RNC_REC_LAYER_NORM: return "layer_norm";
    case RNC_REC_SCALE_SHIFT: return "scale_shift";
    case RNC_REC_CONV_TIME: return "conv_time";
    case RNC_REC_POOL_TIME: return "pool_time";
    case RNC_REC_LOG_MEL: return "log_mel";
    case RNC_REC_RESIDUAL: return "residual";
#if !defined(RNC_NO_CHUNK)
    case RNC_REC_CONCAT: return "concat";
    case RNC_REC_INSTANCE_NORM: return "instance_norm";
    case RNC_REC_POSITIONS: return "positions";
#endif
#if !defined(RNC_NO_POST_CONV)
    case RNC_REC_MUL_HALVES: return "mul_halves";
#endif
    default: return "unknown";
    }
}

/* "<part>: " of part p, direction dir: header / layer l descriptor / record i (kind[, layer l]) */
static void put_where(text_buf *t, const rnc_ctx *c, uint32_t part, uint32_t dir, const char *field)
{
    const uint64_t a[2] = {part, part < MAX_PARTS ? c->part_layer[part] : 0};
    if (part == PART_HEADER) put_s(t, "header");
    else if (c->version == RNC_V1) put_fmt(t, "layer %llu descriptor", a, NULL);
    else if (part >= MAX_PARTS || c->part_kind[part] == 0) put_fmt(t, "record %llu", a, NULL);
    else if (c->part_kind[part] == RNC_REC_RECURRENT)
        put_fmt(t, "record %llu (recurrent, layer %llu)", a, NULL);
    else {
        const char *k = kind_name(c->part_kind[part]);
        put_fmt(t, "record %llu (%s)", a, &k);
    }
    put_s(t, ": ");
    if (dir != NO_DIR) {
        const uint64_t d = dir;
        put_fmt(t, "dir%llu.", &d, NULL);
    }
    put_s(t, field);
}

/* Refuse: the model's error text "<part>: <field>: <message>" and the message's status. */
static rnc_status fail_with(const rnc_ctx *c, const char *field, enum rnc_msg msg, const uint64_t *a,
                            const char *const *str)
{
    text_buf t = {c->err, 0, RNC_ERROR_TEXT_SIZE};
    t.p[0] = 0;
    put_where(&t, c, c->part, c->dir, field);
    put_s(&t, ": ");
    put_fmt(&t, msg_text[msg], a, str);
    return msg_status[msg];
}

static rnc_status fail(const rnc_ctx *c, const char *field, enum rnc_msg msg, uint64_t a0, uint64_t a1,
                       uint64_t a2, const char *str)
{
    const uint64_t a[3] = {a0, a1, a2};
    return fail_with(c, field, msg, a, &str);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Every byte of a structure that no field of rnc_layout.h names must be zero. */
static rnc_status check_reserved(const rnc_ctx *c, const unsigned char *p, uint32_t size,
                                 const rnc_span *spans, size_t n)
{
    for (uint32_t i = 0; i < size; ++i) {
        int named = 0;
        for (size_t k = 0; k < n && !named; ++k)
            named = i >= spans[k].off && i < (uint32_t)spans[k].off + spans[k].size;
        if (!named && p[i]) return fail(c, "reserved", MSG_RESERVED, i, size, p[i], NULL);
    }
    return RNC_OK;
}
#define CHECK_RESERVED(c, s, p)                                                                   \
    do {                                                                                          \
        static const rnc_span spans_[] = {RNC_FIELDS_##s(RNC__SPAN)};                             \
        TRY(check_reserved((c), (p), RNC_SIZE_##s, spans_, sizeof spans_ / sizeof spans_[0]));    \
    } while (0)

/* A tensor reference at p: absent iff expect == 0; else exact length, 64-aligned, in bounds. */
static rnc_status get_ref(rnc_ctx *c, const char *field, const unsigned char *p, uint64_t expect,
                          const void **out)
{
    const uint64_t off = rnc_ref_offset(p), n = rnc_ref_nbytes(p);
    *out = NULL;
    if (expect == 0) return (off || n) ? fail(c, field, MSG_REF_ABSENT, off, n, 0, NULL) : RNC_OK;
    if (n != expect) return fail(c, field, MSG_REF_BYTES, n, expect, 0, NULL);
    if (off % RNC_ALIGN) return fail(c, field, MSG_REF_ALIGN, off, 0, 0, NULL);
    if (off < c->data_start) return fail(c, field, MSG_REF_BEFORE, off, c->data_start, 0, NULL);
    if (off > c->size || n > c->size - off) return fail(c, field, MSG_REF_PAST_END, off, n, c->size, NULL);
    if (c->n_refs >= MAX_TENSORS) return fail(c, field, MSG_REF_COUNT, MAX_TENSORS, 0, 0, NULL);
    c->ref_off[c->n_refs] = off;
    c->ref_end[c->n_refs] = off + n;
    c->ref_field[c->n_refs] = field;
    c->ref_part[c->n_refs] = (uint8_t)(c->part == PART_HEADER ? 0xFFu : c->part); /* < MAX_PARTS */
    c->ref_dir[c->n_refs] = (uint8_t)c->dir;
    c->n_refs++;
    *out = c->buf + off;
    return RNC_OK;
}

/* No two tensors may overlap: the later one (by offset, file order among equal offsets) is named. */
static rnc_status check_overlap(rnc_ctx *c)
{
    for (uint32_t i = 1; i < c->n_refs; ++i) { /* stable insertion sort by offset (<= 196 entries) */
        const uint64_t o = c->ref_off[i], e = c->ref_end[i];
        const char *f = c->ref_field[i];
        const uint8_t pt = c->ref_part[i], d = c->ref_dir[i];
        uint32_t j = i;
        for (; j > 0 && c->ref_off[j - 1] > o; --j) {
            c->ref_off[j] = c->ref_off[j - 1];
            c->ref_end[j] = c->ref_end[j - 1];
            c->ref_field[j] = c->ref_field[j - 1];
            c->ref_part[j] = c->ref_part[j - 1];
            c->ref_dir[j] = c->ref_dir[j - 1];
        }
        c->ref_off[j] = o;
        c->ref_end[j] = e;
        c->ref_field[j] = f;
        c->ref_part[j] = pt;
        c->ref_dir[j] = d;
    }
    for (uint32_t i = 1; i < c->n_refs; ++i) {
        if (c->ref_off[i] >= c->ref_end[i - 1]) continue;
        char other[96];
        text_buf t = {other, 0, sizeof other};
        put_where(&t, c, c->ref_part[i - 1] == 0xFFu ? PART_HEADER : c->ref_part[i - 1], c->ref_dir[i - 1],
                  c->ref_field[i - 1]);
        c->part = c->ref_part[i] == 0xFFu ? PART_HEADER : c->ref_part[i];
        c->dir = c->ref_dir[i];
        const uint64_t a[4] = {c->ref_off[i], c->ref_end[i], c->ref_off[i - 1], c->ref_end[i - 1]};
        const char *o = other;
        return fail_with(c, c->ref_field[i], MSG_OVERLAP, a, &o);
    }
    return RNC_OK;
}

static int finite_f(float f) { return (f32_bits(f) & 0x7F800000u) != 0x7F800000u; }

static rnc_status check_floats(const rnc_ctx *c, const char *field, const void *p, uint64_t count,
                               int nonneg)
{
    const float *f = (const float *)p;
    for (uint64_t i = 0; i < count; ++i) {
        if (!finite_f(f[i])) return fail(c, field, MSG_NOT_FINITE, i, 0, 0, NULL);
        if (nonneg && f[i] < 0.0f) return fail(c, field, MSG_NEGATIVE, i, 0, 0, NULL);
    }
    return RNC_OK;
}

static rnc_status check_q8(const rnc_ctx *c, const char *field, const void *p, uint64_t count)
{
    const int8_t *q = (const int8_t *)p;
    for (uint64_t i = 0; i < count; ++i)
        if (q[i] == -128) return fail(c, field, MSG_Q8_MIN, i, 0, 0, NULL);
    return RNC_OK;
}

/* A packed q4 matrix (docs/rnc-format.md, "q4 weights") of `rows` rows and k inputs: no nibble 0
 * (-8), and the nibbles of inputs >= k are 8 (weight 0), so that every ISA's product (which reads
 * whole 4-input groups) sums exactly the first k inputs. */
static rnc_status check_q4(const rnc_ctx *c, const char *field, const void *p, uint64_t rows, uint64_t k)
{
    const uint8_t *q = (const uint8_t *)p;
    const uint64_t pairs = r8(k) / 8, n = rows * pairs * 4;
    for (uint64_t i = 0; i < n; ++i) {
        const uint32_t lo = q[i] & 15u, hi = q[i] >> 4;
        if (!lo || !hi) return fail(c, field, MSG_Q4_MIN, i, 0, 0, NULL);
        const uint64_t in = (i / 64 % pairs) * 8 + i % 4; /* the low nibble's input */
        if ((in >= k && lo != 8) || (in + 4 >= k && hi != 8))
            return fail(c, field, MSG_Q4_PAD, i, in >= k ? in : in + 4, k, NULL);
    }
    return RNC_OK;
}

static rnc_status check_static_scale(const rnc_ctx *c, const char *field, float s, uint32_t precision)
{
    if (!finite_f(s) || s < 0.0f) return fail(c, field, MSG_SCALE, f32_bits(s), 0, 0, NULL);
    if (precision == RNC_F32 && s != 0.0f) return fail(c, field, MSG_SCALE_F32, f32_bits(s), 0, 0, NULL);
    return RNC_OK;
}

/* The inverse of a static q8 scale, computed once here instead of per quantised vector (the
 * quantisers take it with the scale: docs/q8-contract.md); 0 for a dynamic scale. */
static float static_inv(float s) { return s > 0.0f ? 1.0f / s : 0.0f; }

/* A weight matrix of R (padded) rows and K inputs: its packed bytes, scales and value checks. */
static rnc_status get_matrix(rnc_ctx *c, uint32_t prec, const char *wname, const unsigned char *wref,
                             const char *sname, const unsigned char *sref, uint64_t rows, uint64_t k,
                             const void **w, const float **s)
{
    const void *sp = NULL;
    if (prec == RNC_Q4) { /* nibbles, two per byte: rows x round8(k) / 2 bytes */
        if (r4(k) > RNC_Q8_MAX_K) return fail(c, wname, MSG_Q8_K, r4(k), RNC_Q8_MAX_K, 0, NULL);
        TRY(get_ref(c, wname, wref, rows * (r8(k) / 2), w));
        TRY(get_ref(c, sname, sref, rows * 4, &sp));
        TRY(check_q4(c, wname, *w, rows, k));
        TRY(check_floats(c, sname, sp, rows, 1));
    } else if (prec == RNC_Q8) {
        if (r4(k) > RNC_Q8_MAX_K) return fail(c, wname, MSG_Q8_K, r4(k), RNC_Q8_MAX_K, 0, NULL);
        TRY(get_ref(c, wname, wref, rows * r4(k), w));
        TRY(get_ref(c, sname, sref, rows * 4, &sp));
        TRY(check_q8(c, wname, *w, rows * r4(k)));
        TRY(check_floats(c, sname, sp, rows, 1));
    } else {
        TRY(get_ref(c, wname, wref, rows * k * 4, w));
        TRY(get_ref(c, sname, sref, 0, &sp));
        TRY(check_floats(c, wname, *w, rows * k, 0));
    }
    *s = (const float *)sp;
    return RNC_OK;
}

/* A bias (or any f32 vector) of `count` floats. */
static rnc_status get_vector(rnc_ctx *c, const char *field, const unsigned char *ref, uint64_t count,
                             const float **v)
{
    const void *p;
    TRY(get_ref(c, field, ref, count * 4, &p));
    TRY(check_floats(c, field, p, count, 0));
    *v = (const float *)p;
    return RNC_OK;
}

/* the names of a sparse matrix's fields in refusals: the cellw field, then its spq8 fields */
typedef struct {
    const char *w, *block_rows, *row_blocks, *groups, *nnz, *rowptr, *sums, *cols, *blocks;
} sparse_names;
static const sparse_names sparse_ih = {"w_ih", "w_ih.block_rows", "w_ih.row_blocks", "w_ih.groups",
                                       "w_ih.nnz", "w_ih.rowptr", "w_ih.sums", "w_ih.cols", "w_ih.blocks"};
static const sparse_names sparse_hh = {"w_hh", "w_hh.block_rows", "w_hh.row_blocks", "w_hh.groups",
                                       "w_hh.nnz", "w_hh.rowptr", "w_hh.sums", "w_hh.cols", "w_hh.blocks"};

/* 0 in a build without block-sparse weights (such files are refused before their weights are
 * read): get_sparse is then left out */
#if defined(RNC_NO_SPARSE)
#define LOADER_SPARSE 0
#else
#define LOADER_SPARSE 1
#endif

/* A block-sparse q8 matrix of `rows` (padded) rows and k inputs (rnc_layout.h, spq8): every count
 * and offset of its parts, the row pointers, the block columns, the weights and the row sums.
 * gates > 0: the gate-shared layout of `gates` gates of rows / gates rows each (entries of gates
 * blocks of 16 rows, one row pointer per unit block). */
static rnc_status get_sparse(rnc_ctx *c, const sparse_names *f, const unsigned char *wref,
                             uint64_t rows, uint64_t k, uint64_t gates, rnc_sparse_q8 *S)
{
    (void)RNC_AT_spq8_block_rows;
    const uint64_t kp = r4(k), groups = kp / 4, n = rnc_ref_nbytes(wref);
    if (kp > RNC_Q8_MAX_K) return fail(c, f->w, MSG_Q8_K, kp, RNC_Q8_MAX_K, 0, NULL);
    if (n < RNC_SIZE_spq8) return fail(c, f->w, MSG_SPARSE_SHORT, n, RNC_SIZE_spq8, 0, NULL);
    const void *p;
    TRY(get_ref(c, f->w, wref, n, &p));
    const unsigned char *h = (const unsigned char *)p;
    CHECK_RESERVED(c, spq8, h);
    const uint64_t bh = rnc_spq8_block_rows(h), rb = rnc_spq8_row_blocks(h), nnz = rnc_spq8_nnz(h);
    if (gates && bh != RNC_SPQ8_BLOCK_ROWS_MAX)
        return fail(c, f->block_rows, MSG_EXPECT, bh, RNC_SPQ8_BLOCK_ROWS_MAX, 0, NULL);
    if (bh != RNC_SPQ8_BLOCK_ROWS_MIN && bh != RNC_SPQ8_BLOCK_ROWS_MAX)
        return fail(c, f->block_rows, MSG_RANGE, bh, RNC_SPQ8_BLOCK_ROWS_MIN, RNC_SPQ8_BLOCK_ROWS_MAX, NULL);
    const uint64_t per = gates ? gates : 1; /* blocks per entry */
    if (rb != rows / per / bh) return fail(c, f->row_blocks, MSG_EXPECT, rb, rows / per / bh, 0, NULL);
    if (rnc_spq8_groups(h) != groups) return fail(c, f->groups, MSG_EXPECT, rnc_spq8_groups(h), groups, 0, NULL);
    if (nnz > rb * groups) return fail(c, f->nnz, MSG_RANGE, nnz, 0, rb * groups, NULL);
    const uint64_t sums_off = RNC_SIZE_spq8 + 4 * (rb + 1), cols_off = sums_off + 4 * rows;
    const uint64_t blk_off = RNC_ALIGN_UP(cols_off + 2 * nnz, 64), eb = per * bh * 4, end = blk_off + nnz * eb;
    if (n != end) return fail(c, f->w, MSG_REF_BYTES, n, end, 0, NULL);
    const uint32_t *rowptr = (const uint32_t *)(const void *)(h + RNC_SIZE_spq8);
    const int32_t *sums = (const int32_t *)(const void *)(h + sums_off);
    const uint16_t *cols = (const uint16_t *)(const void *)(h + cols_off);
    const int8_t *blocks = (const int8_t *)(const void *)(h + blk_off);
    if (rowptr[0] != 0) return fail(c, f->rowptr, MSG_SPARSE_ROWPTR, 0, rowptr[0], 0, NULL);
    for (uint64_t b = 0; b < rb; ++b) {
        if (rowptr[b + 1] < rowptr[b])
            return fail(c, f->rowptr, MSG_SPARSE_ROWPTR, b + 1, rowptr[b + 1], rowptr[b], NULL);
        if (rowptr[b + 1] - rowptr[b] > groups)
            return fail(c, f->rowptr, MSG_SPARSE_ROWLEN, b, rowptr[b + 1] - rowptr[b], groups, NULL);
    }
    if (rowptr[rb] != nnz) return fail(c, f->rowptr, MSG_EXPECT, rowptr[rb], nnz, 0, NULL);
    TRY(check_q8(c, f->blocks, blocks, nnz * eb));
    const uint64_t hp = rb * bh; /* gate-shared: the rows of one gate */
    for (uint64_t b = 0; b < rb; ++b) {
        int64_t want[RNC_SPQ8_BLOCK_ROWS_MAX * 4] = {0}; /* entry row e: gate e / bh, row e % bh */
        for (uint64_t i = rowptr[b]; i < rowptr[b + 1]; ++i) {
            const uint64_t lo = i > rowptr[b] ? (uint64_t)cols[i - 1] + 1 : 0;
            if (cols[i] < lo || cols[i] >= groups) {
                const uint64_t a[4] = {i, cols[i], lo, groups - 1};
                return fail_with(c, f->cols, MSG_SPARSE_COL, a, NULL);
            }
            const int8_t *t = blocks + i * eb;
            for (uint64_t r = 0; r < per * bh; ++r)
                for (uint64_t j = 0; j < 4; ++j) {
                    if (4 * (uint64_t)cols[i] + j >= k && t[4 * r + j])
                        return fail(c, f->blocks, MSG_SPARSE_PAD, i, 4 * (uint64_t)cols[i] + j, k, NULL);
                    want[r] += t[4 * r + j];
                }
        }
        for (uint64_t r = 0; r < per * bh; ++r) {
            const uint64_t row = gates ? r / bh * hp + b * bh + r % bh : b * bh + r;
            if (want[r] != sums[row]) {
                const uint64_t a[3] = {row, (uint64_t)(int64_t)sums[row], (uint64_t)want[r]};
                return fail_with(c, f->sums, MSG_SPARSE_SUM, a, NULL);
            }
        }
    }
    S->rowptr = rowptr;
    S->sums = sums;
    S->cols = cols;
    S->blocks = blocks;
    S->dense = NULL;
    S->bh = (uint32_t)bh;
    S->row_blocks = (uint32_t)rb;
    S->nnz = (uint32_t)nnz;
    S->gates = (uint32_t)gates;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * the model's parts, shared by both versions
 * ---------------------------------------------------------------------------------------- */
/* The model's layers in file order, by record kind: what the executor walks (model.c). */
static rnc_status add_stage(rnc_model *m, uint32_t kind)
{
    if (m->num_stages >= sizeof(m->stage)) return RNC_E_UNSUPPORTED; /* bounded by the sequence */
    m->stage[m->num_stages++] = (uint8_t)kind;
    return RNC_OK;
}

/* the names of an embedding's fields: v1 header or v2 record */
typedef struct {
    const char *num, *dim, *weight;
} embed_names;

static rnc_status load_embedding(rnc_ctx *c, rnc_model *m, const embed_names *f, uint32_t num,
                                 uint32_t dim, const unsigned char *ref)
{
    const void *p;
    if (num == 0 || num > RNC_MAX_VOCAB) return fail(c, f->num, MSG_RANGE, num, 1, RNC_MAX_VOCAB, NULL);
    if (dim == 0 || dim > RNC_MAX_FEATURES) return fail(c, f->dim, MSG_RANGE, dim, 1, RNC_MAX_FEATURES, NULL);
    TRY(get_ref(c, f->weight, ref, (uint64_t)num * dim * 4, &p));
    TRY(check_floats(c, f->weight, p, (uint64_t)num * dim, 0));
    m->embed = (const float *)p;
    m->uses_ids = 1;
    m->embed_num = num;
    m->embed_dim = dim;
    return add_stage(m, RNC_REC_EMBEDDING);
}

typedef struct {
    const char *cell_field; /* "kind" (v1 descriptor) or "cell" (v2 record) */
    uint32_t cell, flags, input_size, hidden_size;
    float x_scale, h_scale[2];
    const unsigned char *dir[2]; /* cellw structures; dir[1] NULL when unidirectional (v2) */
    const unsigned char *hh_sums; /* v2: the reference to W_hh's kernel sums; v1: NULL */
    const unsigned char *opt;     /* v2 with RNC_LAYER_FLAG_OPTIONS: the cellopt; else NULL */
    const unsigned char *ln;      /* ... whose flags have RNC_CELLOPT_LAYER_NORM: the cellln; else NULL */
    int v2;
} layer_src;

/* The layer normalisation of a v2 recurrent record (rnc_layout.h, cellln), the checks of
 * rnncore/io/rnc.py's load_layer_norm in its order; f: the cellopt's flags. */
static rnc_status load_layer_norm(rnc_ctx *c, rnc_layer *L, const unsigned char *n, uint32_t f)
{
    static const uint32_t other[3] = {RNC_CELLOPT_INPUT_FORGET, RNC_CELLOPT_CLIP, RNC_CELLOPT_PEEPHOLES};
    static const char *const other_name[3] = {"input_forget", "clip", "peepholes"};
    const uint32_t lf = rnc_cellln_flags(n);
    const float eps = rnc_cellln_eps(n);
    const uint64_t H = L->hidden_size, D = L->dirs, N = (uint64_t)L->gates * H;
    const void *p;
    CHECK_RESERVED(c, cellln, n);
    if (L->kind != RNC_GRU && L->kind != RNC_LSTM)
        return fail(c, "opt.flags", MSG_OPT_LN_FORM, f, 0, 0, "an RNN cell (GRU and LSTM only)");
    if (L->kind == RNC_GRU && !L->reset_after)
        return fail(c, "opt.flags", MSG_OPT_LN_FORM, f, 0, 0, "GRU reset_after = 0");
    for (uint32_t i = 0; i < 3; ++i)
        if (f & other[i]) return fail(c, "opt.flags", MSG_OPT_LN_FORM, f, 0, 0, other_name[i]);
    if (lf & ~RNC_CELLLN_FLAGS_ALL) return fail(c, "ln.flags", MSG_FLAGS, lf, RNC_CELLLN_FLAGS_ALL, 0, NULL);
    if (!(finite_f(eps) && eps > 0.0f)) return fail(c, "ln.eps", MSG_OPT_LN_EPS, f32_bits(eps), 0, 0, NULL);
    TRY(get_vector(c, "ln.ln_ih", rnc_cellln_ln_ih(n), D * 2 * N, &L->opt.ln_ih));
    TRY(get_vector(c, "ln.ln_hh", rnc_cellln_ln_hh(n), D * 2 * N, &L->opt.ln_hh));
    if (L->kind == RNC_LSTM) TRY(get_vector(c, "ln.ln_c", rnc_cellln_ln_c(n), D * 2 * H, &L->opt.ln_c));
    else TRY(get_ref(c, "ln.ln_c", rnc_cellln_ln_c(n), 0, &p));
    L->opt.ln_eps = eps;
    L->opt.ln_flags = lf;
    return RNC_OK;
}

/* The cell options of a v2 recurrent record (rnc_layout.h, cellopt), the checks of
 * rnncore/io/rnc.py's load_options in its order; ln: the cellln when the flags ask for one. */
static rnc_status load_options(rnc_ctx *c, rnc_layer *L, const unsigned char *o, const unsigned char *ln,
                               uint32_t prec)
{
    static const char *const act_f[6] = {"opt.act_d0_0", "opt.act_d0_1", "opt.act_d0_2",
                                         "opt.act_d1_0", "opt.act_d1_1", "opt.act_d1_2"};
    static const char *const alpha_f[6] = {"opt.alpha_d0_0", "opt.alpha_d0_1", "opt.alpha_d0_2",
                                           "opt.alpha_d1_0", "opt.alpha_d1_1", "opt.alpha_d1_2"};
    static const char *const beta_f[6] = {"opt.beta_d0_0", "opt.beta_d0_1", "opt.beta_d0_2",
                                          "opt.beta_d1_0", "opt.beta_d1_1", "opt.beta_d1_2"};
    const uint32_t f = rnc_cellopt_flags(o), lstm = L->kind == RNC_LSTM;
    CHECK_RESERVED(c, cellopt, o);
    if (f & ~RNC_CELLOPT_FLAGS_ALL) return fail(c, "opt.flags", MSG_FLAGS, f, RNC_CELLOPT_FLAGS_ALL, 0, NULL);
    if (!lstm) {
        if (f & RNC_CELLOPT_INPUT_FORGET) return fail(c, "opt.flags", MSG_OPT_LSTM, f, 0, 0, "input_forget");
        if (f & RNC_CELLOPT_PEEPHOLES) return fail(c, "opt.flags", MSG_OPT_LSTM, f, 0, 0, "peepholes");
        if (f & RNC_CELLOPT_INITIAL_C) return fail(c, "opt.flags", MSG_OPT_LSTM, f, 0, 0, "initial_c");
    }
    if ((f & RNC_CELLOPT_REVERSE) && L->dirs == 2)
        return fail(c, "opt.flags", MSG_OPT_REVERSE_BIDIR, f, 0, 0, NULL);
    if ((f & RNC_CELLOPT_REVERSE_OUTPUT) && !(f & RNC_CELLOPT_REVERSE))
        return fail(c, "opt.flags", MSG_OPT_REVERSE_OUTPUT, f, 0, 0, NULL);
    const float clip = rnc_cellopt_clip(o);
    if ((f & RNC_CELLOPT_CLIP) ? !(finite_f(clip) && clip > 0.0f) : f32_bits(clip) != 0)
        return fail(c, "opt.clip", MSG_OPT_CLIP, f32_bits(clip), 0, 0, NULL);
    const uint32_t n = L->kind == RNC_GRU ? 2 : L->kind == RNC_LSTM ? 3 : 1;
    const uint32_t code[6] = {rnc_cellopt_act_d0_0(o), rnc_cellopt_act_d0_1(o), rnc_cellopt_act_d0_2(o),
                              rnc_cellopt_act_d1_0(o), rnc_cellopt_act_d1_1(o), rnc_cellopt_act_d1_2(o)};
    const float al[6] = {rnc_cellopt_alpha_d0_0(o), rnc_cellopt_alpha_d0_1(o), rnc_cellopt_alpha_d0_2(o),
                         rnc_cellopt_alpha_d1_0(o), rnc_cellopt_alpha_d1_1(o), rnc_cellopt_alpha_d1_2(o)};
    const float be[6] = {rnc_cellopt_beta_d0_0(o), rnc_cellopt_beta_d0_1(o), rnc_cellopt_beta_d0_2(o),
                         rnc_cellopt_beta_d1_0(o), rnc_cellopt_beta_d1_1(o), rnc_cellopt_beta_d1_2(o)};
    L->unbounded = L->kind == RNC_RNN_RELU;
    for (uint32_t i = 0; i < 6; ++i) {
        const uint32_t d = i / 3, k = i % 3;
        if (d < L->dirs && k < n) {
            if (code[i] >= RNC_FILE_CELL_ACTIVATIONS)
                return fail(c, act_f[i], MSG_RANGE, code[i], 0, RNC_FILE_CELL_ACTIVATIONS - 1, NULL);
            if (!finite_f(al[i])) return fail(c, alpha_f[i], MSG_OPT_PARAM, f32_bits(al[i]), 0, 0, NULL);
            if (!finite_f(be[i])) return fail(c, beta_f[i], MSG_OPT_PARAM, f32_bits(be[i]), 0, 0, NULL);
            L->opt.act[d][k] = (uint8_t)code[i];
            L->opt.alpha[d][k] = al[i];
            L->opt.beta[d][k] = be[i];
            /* the activations whose output is not bounded by a constant: the state can overflow */
            if (code[i] != RNC_CELLACT_SIGMOID && code[i] != RNC_CELLACT_TANH &&
                code[i] != RNC_CELLACT_HARDSIGMOID && code[i] != RNC_CELLACT_SCALEDTANH &&
                code[i] != RNC_CELLACT_SOFTSIGN)
                L->unbounded = 1;
        } else {
            if (code[i]) return fail(c, act_f[i], MSG_OPT_UNUSED, code[i], 0, 0, NULL);
            if (f32_bits(al[i])) return fail(c, alpha_f[i], MSG_OPT_UNUSED, f32_bits(al[i]), 0, 0, NULL);
            if (f32_bits(be[i])) return fail(c, beta_f[i], MSG_OPT_UNUSED, f32_bits(be[i]), 0, 0, NULL);
        }
    }
    const uint64_t H = L->hidden_size, D = L->dirs;
    const void *p;
    if (f & RNC_CELLOPT_PEEPHOLES) TRY(get_vector(c, "opt.peepholes", rnc_cellopt_peepholes(o), D * 3 * H, &L->opt.peepholes));
    else TRY(get_ref(c, "opt.peepholes", rnc_cellopt_peepholes(o), 0, &p));
    if (f & RNC_CELLOPT_INITIAL_H) TRY(get_vector(c, "opt.initial_h", rnc_cellopt_initial_h(o), D * L->out, &L->opt.initial_h));
    else TRY(get_ref(c, "opt.initial_h", rnc_cellopt_initial_h(o), 0, &p));
    if (f & RNC_CELLOPT_INITIAL_C) TRY(get_vector(c, "opt.initial_c", rnc_cellopt_initial_c(o), D * H, &L->opt.initial_c));
    else TRY(get_ref(c, "opt.initial_c", rnc_cellopt_initial_c(o), 0, &p));
    if (L->proj) {
        TRY(get_matrix(c, prec, "opt.w_hr", rnc_cellopt_w_hr(o), "opt.s_hr", rnc_cellopt_s_hr(o),
                       D * r16(L->proj), H, &L->opt.w_hr, &L->opt.s_hr));
    } else {
        TRY(get_ref(c, "opt.w_hr", rnc_cellopt_w_hr(o), 0, &p));
        TRY(get_ref(c, "opt.s_hr", rnc_cellopt_s_hr(o), 0, &p));
    }
    if (f & RNC_CELLOPT_LAYER_NORM) TRY(load_layer_norm(c, L, ln, f));
    L->opt.flags = f;
    L->opt.clip = clip;
    L->variant = 1;
    return RNC_OK;
}

/* W_hh's kernel sums as stored (v2, q8): every direction's G*Hp int32, each equal to the sum of
 * its packed row (checked here, so a kernel may start its accumulators from them). */
static rnc_status get_hh_sums(rnc_ctx *c, rnc_layer *L, const unsigned char *ref, uint64_t rows)
{
    const char *field = FIELD(rec_recurrent, w_hh_sums);
    const void *p;
    TRY(get_ref(c, field, ref, rows * 4 * L->dirs, &p));
    const int32_t *s = (const int32_t *)p;
    for (uint32_t k = 0; k < L->dirs; ++k, s += rows) {
        if (L->dir[k].sp_hh.bh) { /* block-sparse: its sums, checked against its blocks */
            for (uint64_t r = 0; r < rows; ++r)
                if (L->dir[k].sp_hh.sums[r] != s[r]) {
                    const uint64_t a[4] = {k, r, (uint64_t)(int64_t)s[r], (uint64_t)(int64_t)L->dir[k].sp_hh.sums[r]};
                    return fail_with(c, field, MSG_HH_SUM, a, NULL);
                }
            L->dir[k].hh_sums = s;
            continue;
        }
        int32_t want[16];
        const size_t block = (size_t)L->kh / 4 * 64; /* bytes of 16 packed rows */
        for (uint64_t b = 0; b < rows / 16; ++b) {
            rnc_q8_rowsum_generic((const int8_t *)L->dir[k].w_hh + b * block, 16, (int)L->kh, want);
            for (uint32_t r = 0; r < 16; ++r)
                if (want[r] != s[16 * b + r]) {
                    const uint64_t a[4] = {k, 16 * b + r, (uint64_t)(int64_t)s[16 * b + r],
                                           (uint64_t)(int64_t)want[r]};
                    return fail_with(c, field, MSG_HH_SUM, a, NULL);
                }
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
    const uint32_t sparse_flags = RNC_LAYER_FLAG_SPARSE_IH | RNC_LAYER_FLAG_SPARSE_HH;
    const uint32_t shared_flags = RNC_LAYER_FLAG_SHARED_IH | RNC_LAYER_FLAG_SHARED_HH;
    const uint32_t known = RNC_LAYER_FLAG_RESET_AFTER | RNC_LAYER_FLAG_BIDIR |
                           (s->v2 ? sparse_flags | shared_flags | RNC_LAYER_FLAG_OPTIONS : 0u);
    if (m->num_layers >= RNC_MAX_LAYERS)
        return fail(c, s->cell_field, MSG_LAYERS, RNC_MAX_LAYERS, 0, 0, NULL);
    rnc_layer *L = &m->layer[m->num_layers];
    if (kind >= RNC_CELL_KIND_COUNT)
        return fail(c, s->cell_field, MSG_RANGE, kind, 0, RNC_CELL_KIND_COUNT - 1, NULL);
    if (lf & ~known) return fail(c, FIELD(desc1, flags), MSG_FLAGS, lf, known, 0, NULL);
    if ((lf & RNC_LAYER_FLAG_RESET_AFTER) && kind != RNC_GRU)
        return fail(c, FIELD(desc1, flags), MSG_RESET_AFTER, lf, 0, 0, NULL);
    if (I != c->feat) return fail(c, FIELD(desc1, input_size), MSG_EXPECT, I, c->feat, 0, NULL);
    if (H == 0 || H > RNC_MAX_HIDDEN)
        return fail(c, FIELD(desc1, hidden_size), MSG_RANGE, H, 1, RNC_MAX_HIDDEN, NULL);
#if defined(RNC_NO_SPARSE)
    if (lf & (sparse_flags | shared_flags))
        return fail(c, FIELD(desc1, flags), MSG_LEFT_OUT, lf, 0, 0, "block-sparse weights (built with RNC_NO_SPARSE)");
#else
    /* SHARED_IH / _HH (bits 5, 6) qualify SPARSE_IH / _HH (bits 2, 3) */
    if ((lf & shared_flags) && ((((lf & shared_flags) >> 3) & ~lf) || (kind != RNC_GRU && kind != RNC_LSTM)))
        return fail(c, FIELD(desc1, flags), MSG_SPARSE_SHARED, lf, 0, 0, NULL);
    if ((lf & sparse_flags) && (prec != RNC_Q8 || (lf & RNC_LAYER_FLAG_OPTIONS) ||
                                (kind == RNC_GRU && !(lf & RNC_LAYER_FLAG_RESET_AFTER))))
        return fail(c, FIELD(desc1, flags), MSG_SPARSE_FORM, lf, 0, 0, NULL);
#endif
    if (prec == RNC_Q4 && (lf & RNC_LAYER_FLAG_OPTIONS))
        return fail(c, FIELD(desc1, flags), MSG_Q4_FORM, lf, 0, 0, NULL);
    /* LSTM projection (cell option): h, the output and W_hh's inputs are P wide */
    const uint32_t P = s->opt ? rnc_cellopt_proj_size(s->opt) : 0, HW = P ? P : H;
    if (P && (kind != RNC_LSTM || P >= H)) return fail(c, "opt.proj_size", MSG_OPT_PROJ, P, H - 1, 0, NULL);
    const uint32_t dirs = (lf & RNC_LAYER_FLAG_BIDIR) ? 2 : 1;
    L->sparse = LOADER_SPARSE ? lf & (sparse_flags | shared_flags) : 0; /* else refused above */
    L->kind = kind;
    L->reset_after = (lf & RNC_LAYER_FLAG_RESET_AFTER) ? 1 : 0;
    L->dirs = dirs;
    L->input_size = I;
    L->hidden_size = H;
    L->gates = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    L->hp = (uint32_t)r16(H);
    L->kx = (uint32_t)(prec != RNC_F32 ? r4(I) : I); /* q8 and q4: the quantised inputs' stride */
    L->kh = (uint32_t)(prec != RNC_F32 ? r4(HW) : HW);
    L->proj = P;
    L->out = HW;
    L->x_scale = s->x_scale;
    L->h_scale[0] = s->h_scale[0];
    L->h_scale[1] = s->h_scale[1];
    TRY(check_static_scale(c, FIELD(desc1, x_scale), L->x_scale, prec));
    TRY(check_static_scale(c, FIELD(desc1, h_scale), L->h_scale[0], prec));
    TRY(check_static_scale(c, FIELD(desc1, h_scale_reverse), L->h_scale[1], prec));
    if (dirs == 1 && L->h_scale[1] != 0.0f)
        return fail(c, FIELD(desc1, h_scale_reverse), MSG_SCALE_UNIDIR, f32_bits(L->h_scale[1]), 0, 0, NULL);
    L->x_inv = static_inv(L->x_scale);
    L->h_inv[0] = static_inv(L->h_scale[0]);
    L->h_inv[1] = static_inv(L->h_scale[1]);
    const uint64_t rows = (uint64_t)L->gates * L->hp;
    for (uint32_t k = 0; k < 2; ++k) {
        const unsigned char *w = s->dir[k];
        memset(&L->dir[k], 0, sizeof(L->dir[k]));
        c->dir = k;
        if (k >= dirs) {
            const void *p;
            if (w) { /* v1: the unused direction's references are all absent */
                TRY(get_ref(c, FIELD(cellw, w_ih), rnc_cellw_w_ih(w), 0, &p));
                TRY(get_ref(c, FIELD(cellw, w_hh), rnc_cellw_w_hh(w), 0, &p));
                TRY(get_ref(c, FIELD(cellw, s_ih), rnc_cellw_s_ih(w), 0, &p));
                TRY(get_ref(c, FIELD(cellw, s_hh), rnc_cellw_s_hh(w), 0, &p));
                TRY(get_ref(c, FIELD(cellw, b_ih), rnc_cellw_b_ih(w), 0, &p));
                TRY(get_ref(c, FIELD(cellw, b_hh), rnc_cellw_b_hh(w), 0, &p));
            }
            continue;
        }
        if (LOADER_SPARSE && (L->sparse & RNC_LAYER_FLAG_SPARSE_IH)) {
            const void *sp;
            TRY(get_sparse(c, &sparse_ih, rnc_cellw_w_ih(w), rows, I,
                           (L->sparse & RNC_LAYER_FLAG_SHARED_IH) ? L->gates : 0, &L->dir[k].sp_ih));
            TRY(get_ref(c, FIELD(cellw, s_ih), rnc_cellw_s_ih(w), rows * 4, &sp));
            TRY(check_floats(c, FIELD(cellw, s_ih), sp, rows, 1));
            L->dir[k].s_ih = (const float *)sp;
        } else {
            TRY(get_matrix(c, prec, FIELD(cellw, w_ih), rnc_cellw_w_ih(w), FIELD(cellw, s_ih),
                           rnc_cellw_s_ih(w), rows, I, &L->dir[k].w_ih, &L->dir[k].s_ih));
            L->dir[k].sp_ih.dense = (const int8_t *)L->dir[k].w_ih;
        }
        if (LOADER_SPARSE && (L->sparse & RNC_LAYER_FLAG_SPARSE_HH)) {
            const void *sp;
            TRY(get_sparse(c, &sparse_hh, rnc_cellw_w_hh(w), rows, H,
                           (L->sparse & RNC_LAYER_FLAG_SHARED_HH) ? L->gates : 0, &L->dir[k].sp_hh));
            TRY(get_ref(c, FIELD(cellw, s_hh), rnc_cellw_s_hh(w), rows * 4, &sp));
            TRY(check_floats(c, FIELD(cellw, s_hh), sp, rows, 1));
            L->dir[k].s_hh = (const float *)sp;
        } else {
            TRY(get_matrix(c, prec, FIELD(cellw, w_hh), rnc_cellw_w_hh(w), FIELD(cellw, s_hh),
                           rnc_cellw_s_hh(w), rows, HW, &L->dir[k].w_hh, &L->dir[k].s_hh));
            L->dir[k].sp_hh.dense = (const int8_t *)L->dir[k].w_hh;
        }
        TRY(get_vector(c, FIELD(cellw, b_ih), rnc_cellw_b_ih(w), rows, &L->dir[k].b_ih));
        TRY(get_vector(c, FIELD(cellw, b_hh), rnc_cellw_b_hh(w), rows, &L->dir[k].b_hh));
    }
    c->dir = NO_DIR;
    if (s->hh_sums) { /* v2: present exactly for q8 */
        const void *p;
        if (prec == RNC_Q8) TRY(get_hh_sums(c, L, s->hh_sums, rows));
        else TRY(get_ref(c, FIELD(rec_recurrent, w_hh_sums), s->hh_sums, 0, &p));
    }
    memset(&L->opt, 0, sizeof(L->opt));
    L->variant = 0;
    L->unbounded = kind == RNC_RNN_RELU;
    if (s->opt) TRY(load_options(c, L, s->opt, s->ln, prec));
    L->h_offset = (size_t)c->hsum;
    c->hsum += (uint64_t)dirs * HW;
    L->c_offset = (size_t)(kind == RNC_LSTM ? c->csum : 0);
    if (kind == RNC_LSTM) c->csum += (uint64_t)dirs * H;
    if (L->kx > c->max_kx) c->max_kx = L->kx;
    if (rows > c->max_ghp) c->max_ghp = rows;
    c->feat = (uint64_t)dirs * HW;
    if (c->feat > c->max_feat) c->max_feat = c->feat;
    m->num_layers++;
    return add_stage(m, RNC_REC_RECURRENT);
}

#if !defined(RNC_NO_MEAN) || !defined(RNC_NO_ATTN)
/* A pooling's state row of c->feat floats and `extra` more after the windows of each stream row
 * (rnc_state.win): its offset there. */
static size_t reserve_pool_row(const rnc_ctx *c, rnc_model *m, size_t extra)
{
    const size_t off = m->win_floats;
    m->mean_w = (size_t)c->feat;
    m->win_floats += m->mean_w + extra;
    if (m->mean_w > m->front_w) m->front_w = m->mean_w; /* rnc_step's pooled rows (fa, fb) */
    return off;
}
#endif

static rnc_status load_last_step(rnc_ctx *c, rnc_model *m, const char *field, uint32_t flags, uint32_t bidir)
{
    m->last_step = 1;
    m->last_step_bidir = bidir ? 1 : 0;
    if (bidir && (m->num_layers == 0 || m->layer[m->num_layers - 1].dirs != 2))
        return fail(c, field, MSG_LAST_BIDIR, flags, 0, 0, NULL);
    return add_stage(m, RNC_REC_LAST_STEP);
}

/* the names of a head's fields: v1 header or v2 linear record */
typedef struct {
    const char *in, *out, *act, *scale, *weight, *wscale, *bias;
} head_names;

static rnc_status load_head(rnc_ctx *c, rnc_model *m, const head_names *f, uint32_t in, uint32_t out,
                            uint32_t act, float scale, const unsigned char *wref,
                            const unsigned char *sref, const unsigned char *bref)
{
    const uint32_t prec = m->precision == RNC_Q4 ? RNC_Q8 : m->precision; /* a q4 file's head is q8 */
    if (in != c->feat) return fail(c, f->in, MSG_EXPECT, in, c->feat, 0, NULL);
    if (out == 0 || out > RNC_MAX_FEATURES) return fail(c, f->out, MSG_RANGE, out, 1, RNC_MAX_FEATURES, NULL);
    if (act >= RNC_ACTIVATION_COUNT)
        return fail(c, f->act, MSG_RANGE, act, 0, RNC_ACTIVATION_COUNT - 1, NULL);
    TRY(check_static_scale(c, f->scale, scale, prec));
    const uint64_t op = r16(out);
    const float *s;
    TRY(get_matrix(c, prec, f->weight, wref, f->wscale, sref, op, in, &m->head_w, &s));
    m->head_s = s;
    TRY(get_vector(c, f->bias, bref, op, &m->head_b));
    m->head = 1;
    m->head_in = in;
    m->head_out = out;
    m->head_act = act;
    m->head_kx = (uint32_t)(prec == RNC_Q8 ? r4(in) : in);
    m->head_scale = scale;
    m->head_inv = static_inv(scale);
    if (m->head_kx > c->max_kx) c->max_kx = m->head_kx;
    return add_stage(m, RNC_REC_LINEAR);
}

/* After the last part: the output width, overlap check and the executor's size summaries. */
static rnc_status finish(rnc_ctx *c, rnc_model *m)
{
    c->part = PART_HEADER;
    c->dir = NO_DIR;
    if (c->feat > RNC_MAX_FEATURES)
        return fail(c, "output", MSG_OUTPUT_WIDTH, c->feat, RNC_MAX_FEATURES, 0, NULL);
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

/* Common header checks: file size, checksum, byte order. */
static rnc_status begin(rnc_ctx *c, const unsigned char *b, size_t len, uint32_t header_size)
{
    if (len < header_size) return fail(c, FIELD(hdr1, file_size), MSG_SHORT, len, header_size, 0, NULL);
    const uint32_t file_size = rnc_hdr1_file_size(b); /* same place in every version */
    if (file_size < header_size)
        return fail(c, FIELD(hdr1, file_size), MSG_FILE_SIZE_SMALL, file_size, header_size, 0, NULL);
    if (file_size > len) return fail(c, FIELD(hdr1, file_size), MSG_FILE_SIZE_BIG, file_size, len, 0, NULL);
    uint32_t crc;
    rnc_crc32(b + RNC_CRC_START, file_size - RNC_CRC_START, &crc);
    if (crc != rnc_hdr1_crc32(b))
        return fail(c, FIELD(hdr1, crc32), MSG_CRC, rnc_hdr1_crc32(b), crc, 0, NULL);
    if (!host_little_endian()) return fail(c, FIELD(hdr1, magic), MSG_BIG_ENDIAN, 0, 0, 0, NULL);
    c->size = file_size;
    return RNC_OK;
}

/* ------------------------------------------------------------------------------------------
 * version 1: 128-byte header, 128-byte descriptor per recurrent layer
 * ---------------------------------------------------------------------------------------- */
static rnc_status load_v1(rnc_ctx *c, rnc_model *m, const unsigned char *b, size_t len)
{
    TRY(begin(c, b, len, RNC_SIZE_hdr1));
    const uint32_t prec = rnc_hdr1_precision(b), nl = rnc_hdr1_num_layers(b);
    const uint32_t in_size = rnc_hdr1_input_size(b), flags = rnc_hdr1_flags(b);
    if (rnc_hdr1_header_size(b) != RNC_V1_HEADER_SIZE)
        return fail(c, FIELD(hdr1, header_size), MSG_EXPECT, rnc_hdr1_header_size(b), RNC_V1_HEADER_SIZE, 0,
                    NULL);
    if (rnc_hdr1_layer_desc_size(b) != RNC_V1_DESC_SIZE)
        return fail(c, FIELD(hdr1, layer_desc_size), MSG_EXPECT, rnc_hdr1_layer_desc_size(b),
                    RNC_V1_DESC_SIZE, 0, NULL);
    const uint32_t known = RNC_V1_FLAG_EMBEDDING | RNC_V1_FLAG_HEAD | RNC_V1_FLAG_LAST_STEP |
                           RNC_V1_FLAG_LAST_STEP_BIDIR;
    if (prec >= RNC_PRECISION_COUNT)
        return fail(c, FIELD(hdr1, precision), MSG_RANGE, prec, 0, RNC_PRECISION_COUNT - 1, NULL);
    if (prec == RNC_Q4) return fail(c, FIELD(hdr1, precision), MSG_Q4_V1, prec, 0, 0, NULL);
    if (flags & ~known) return fail(c, FIELD(hdr1, flags), MSG_FLAGS, flags, known, 0, NULL);
    if (nl == 0) return fail(c, FIELD(hdr1, num_layers), MSG_RANGE, nl, 1, RNC_MAX_LAYERS, NULL);
    if (nl > RNC_MAX_LAYERS)
        return fail(c, FIELD(hdr1, num_layers), MSG_RANGE_UNSUPPORTED, nl, 1, RNC_MAX_LAYERS, NULL);
    CHECK_RESERVED(c, hdr1, b);
    c->data_start = ((uint64_t)RNC_SIZE_hdr1 + (uint64_t)RNC_SIZE_desc1 * nl + RNC_ALIGN - 1) &
                    ~(uint64_t)(RNC_ALIGN - 1);
    if (c->data_start > c->size)
        return fail(c, FIELD(hdr1, num_layers), MSG_TENSOR_AREA, c->data_start, c->size, 0, NULL);
    if (in_size == 0 || in_size > RNC_MAX_FEATURES)
        return fail(c, FIELD(hdr1, input_size), MSG_RANGE, in_size, 1, RNC_MAX_FEATURES, NULL);

    m->buf = b;
    m->file_size = c->size;
    m->precision = prec;
    m->input_size = in_size;
    c->feat = c->max_feat = in_size;

    const void *p;
    if (flags & RNC_V1_FLAG_EMBEDDING) {
        static const embed_names en = {"embed_num", "embed_dim", "embedding"};
        if (rnc_hdr1_embed_dim(b) != in_size)
            return fail(c, FIELD(hdr1, embed_dim), MSG_EXPECT, rnc_hdr1_embed_dim(b), in_size, 0, NULL);
        TRY(load_embedding(c, m, &en, rnc_hdr1_embed_num(b), rnc_hdr1_embed_dim(b), rnc_hdr1_embedding(b)));
    } else {
        if (rnc_hdr1_embed_num(b))
            return fail(c, FIELD(hdr1, embed_num), MSG_NONZERO, rnc_hdr1_embed_num(b), 0, 0, "embedding");
        if (rnc_hdr1_embed_dim(b))
            return fail(c, FIELD(hdr1, embed_dim), MSG_NONZERO, rnc_hdr1_embed_dim(b), 0, 0, "embedding");
        TRY(get_ref(c, FIELD(hdr1, embedding), rnc_hdr1_embedding(b), 0, &p));
    }
    for (uint32_t l = 0; l < nl; ++l) {
        const unsigned char *d = b + RNC_SIZE_hdr1 + (size_t)RNC_SIZE_desc1 * l;
        c->part = l;
        CHECK_RESERVED(c, desc1, d);
        const layer_src s = {FIELD(desc1, kind), rnc_desc1_kind(d), rnc_desc1_flags(d),
                             rnc_desc1_input_size(d), rnc_desc1_hidden_size(d), rnc_desc1_x_scale(d),
                             {rnc_desc1_h_scale(d), rnc_desc1_h_scale_reverse(d)},
                             {rnc_desc1_dir0(d), rnc_desc1_dir1(d)},
                             NULL, NULL, NULL, 0};
        TRY(load_layer(c, m, &s));
    }
    c->part = PART_HEADER;
    if (flags & RNC_V1_FLAG_LAST_STEP)
        TRY(load_last_step(c, m, FIELD(hdr1, flags), flags, flags & RNC_V1_FLAG_LAST_STEP_BIDIR));
    else if (flags & RNC_V1_FLAG_LAST_STEP_BIDIR)
        return fail(c, FIELD(hdr1, flags), MSG_LAST_BIDIR_ALONE, flags, 0, 0, NULL);
    if (flags & RNC_V1_FLAG_HEAD) {
        static const head_names hn = {"head_in", "head_out", "head_activation", "head_in_scale",
                                      "head_weight", "head_scale", "head_bias"};
        TRY(load_head(c, m, &hn, rnc_hdr1_head_in(b), rnc_hdr1_head_out(b), rnc_hdr1_head_activation(b),
                      rnc_hdr1_head_in_scale(b), rnc_hdr1_head_weight(b), rnc_hdr1_head_scale(b),
                      rnc_hdr1_head_bias(b)));
    } else {
        if (rnc_hdr1_head_in(b))
            return fail(c, FIELD(hdr1, head_in), MSG_NONZERO, rnc_hdr1_head_in(b), 0, 0, "head");
        if (rnc_hdr1_head_out(b))
            return fail(c, FIELD(hdr1, head_out), MSG_NONZERO, rnc_hdr1_head_out(b), 0, 0, "head");
        if (rnc_hdr1_head_activation(b))
            return fail(c, FIELD(hdr1, head_activation), MSG_NONZERO, rnc_hdr1_head_activation(b), 0, 0,
                        "head");
        if (rnc_hdr1_head_in_scale(b) != 0.0f)
            return fail(c, FIELD(hdr1, head_in_scale), MSG_NONZERO, f32_bits(rnc_hdr1_head_in_scale(b)), 0, 0,
                        "head");
        TRY(get_ref(c, FIELD(hdr1, head_weight), rnc_hdr1_head_weight(b), 0, &p));
        TRY(get_ref(c, FIELD(hdr1, head_scale), rnc_hdr1_head_scale(b), 0, &p));
        TRY(get_ref(c, FIELD(hdr1, head_bias), rnc_hdr1_head_bias(b), 0, &p));
    }
    return finish(c, m);
}

/* ------------------------------------------------------------------------------------------
 * version 2: 64-byte header, then an ordered list of self-sizing records
 * ---------------------------------------------------------------------------------------- */

/* Where record kind `kind` may stand in the sequence the executor runs:
 * [embedding] [front-end*] recurrent (post* recurrent)* post* [last_step post*] [linear], the
 * front-end records being every per-step record, the post records those that map a row alone
 * (frame_conv, pointwise, layer_norm, scale_shift, mul_halves, residual), after a recurrent layer and before
 * the next one too. Stages: 0 start, 1 after the embedding, 2 after a recurrent layer, 3 after
 * last_step, 4 after the linear head, 5 after a front-end record, 6 after a post record following
 * a recurrent layer, 7 after a post record following last_step, 8 after positions (the front-end's
 * last record: a recurrent record follows). Returns the new stage or -1. */
static int next_stage(int stage, uint32_t kind)
{
    /* after an embedding, the front-end records run on the looked-up rows as on input features
     * (not log_mel: it takes samples; instance_norm is refused by load_front); a -DRNC_NO_EMB_FRONT
     * build keeps the sequence [embedding | front-end*] */
    if (EMB_FRONT_ON && stage == 1 && kind != RNC_REC_EMBEDDING && kind != RNC_REC_LOG_MEL) stage = 0;
    switch (kind) {
    case RNC_REC_EMBEDDING: return stage == 0 ? 1 : -1;
    case RNC_REC_RECURRENT: return stage <= 2 || stage == 5 || stage == 6 || (CHUNK_ON && stage == 8) ? 2 : -1;
    case RNC_REC_LAST_STEP: return stage == 2 || stage == 6 ? 3 : -1;
    case RNC_REC_LINEAR: return stage == 2 || stage == 3 || stage == 6 || stage == 7 ? 4 : -1;
    case RNC_REC_CONV_TIME:
    case RNC_REC_POOL_TIME:
#if defined(RNC_NO_POST_CONV) /* a build without frame_conv after the recurrent layers (model.c) */
    case RNC_REC_FRAME_CONV:
#endif
    case RNC_REC_MAGNITUDE: return stage == 0 || stage == 5 ? 5 : -1;
    case RNC_REC_LOG_MEL: return stage == 0 ? 5 : -1; /* the first record only */
#if !defined(RNC_NO_POST_CONV) /* a build without it does not know kind mul_halves */
    case RNC_REC_FRAME_CONV: /* a per-step Linear (frame_length 1) after the recurrent layers too */
    case RNC_REC_MUL_HALVES:
#endif
    case RNC_REC_POINTWISE:
    case RNC_REC_LAYER_NORM:
    case RNC_REC_SCALE_SHIFT:
        return stage == 0 || stage == 5 ? 5 : stage == 2 || stage == 6 ? 6 : stage == 3 || stage == 7 ? 7 : -1;
    case RNC_REC_RESIDUAL: /* after a per-step record of its section (its source), or right after
                              a recurrent record (its span crosses it: y = x + GRU(x)) */
#if !defined(RNC_NO_RESID_RNN)
        if (stage == 2) return 6;
#endif
        return stage == 5 || stage == 6 || stage == 7 ? stage : -1;
#if !defined(RNC_NO_CHUNK) /* a build without it does not know kind concat */
    case RNC_REC_CONCAT: return stage == 5 ? 5 : -1; /* after a front-end record (its source) */
    case RNC_REC_INSTANCE_NORM: return stage == 0 || stage == 5 ? 5 : -1; /* the front-end only */
    case RNC_REC_POSITIONS: return stage == 5 ? 8 : -1; /* the front-end's last: a recurrent record next */
#endif
    default: return -1; /* a kind this loader does not know */
    }
}

static const char *const stage_place[9] = {"first", "after an embedding", "after a recurrent record",
                                           "after last_step", "after linear", "after a front-end record",
                                           "after a per-step record", "after a per-step record",
                                           "after positions"};

/* The source of a residual or concat record spanning the span records right before it: the run of
 * per-step records of its section and, across_rnn (a residual's y = x + GRU(x)), across recurrent
 * records the records before them (not past an embedding, last_step or positions). *src: the front-end record
 * whose input is saved, or RNC_MAX_FRONT + a layer whose input is (a span starting at a recurrent
 * record); *steps: the per-step records spanned. width (0: none) is the source's expected width;
 * no spanned step may be strided or padded on the right (every step gives exactly one output).
 * Returns MSG_COUNT_, or the refusal: its message, with the arguments span, a[0], a[1], *what. */
static enum rnc_msg front_span_source(const rnc_ctx *c, const rnc_model *m, uint64_t span, uint64_t width,
                                      int across_rnn, uint32_t *src, uint64_t *steps, uint64_t a[2],
                                      const char **what)
{
    uint64_t run = 0; /* not back past a positions record (its steps are not the front-end's) */
    while (run < c->part && (c->part_kind[c->part - 1 - run] >= RNC_REC_FRAME_CONV ||
                             (across_rnn && c->part_kind[c->part - 1 - run] == RNC_REC_RECURRENT)) &&
           !(CHUNK_ON && c->part_kind[c->part - 1 - run] == RNC_REC_POSITIONS))
        ++run;
    a[0] = run;
    if (span == 0 || span > run) return MSG_RES_SPAN;
    uint64_t s = span;
    if (across_rnn)
        for (uint64_t j = c->part - span; j < c->part; ++j) s -= c->part_kind[j] == RNC_REC_RECURRENT;
    const uint32_t first = m->num_front - (uint32_t)s;
    *src = first;
    *steps = s;
#if XRES_ON
    const uint32_t layer = c->part_kind[c->part - span] == RNC_REC_RECURRENT; /* the source is a layer */
    if (layer) *src = RNC_MAX_FRONT + c->part_layer[c->part - span];
    a[0] = layer ? m->layer[*src - RNC_MAX_FRONT].input_size : m->front[first].in_w;
#else
    a[0] = m->front[first].in_w;
#endif
    a[1] = width;
    if (width && a[0] != width) return MSG_RES_WIDTH;
    a[0] = a[1] = 0;
    for (uint32_t j = first; j < m->num_front; ++j)
        if (m->front[j].phase || m->front[j].tpad_r) { /* steps without an output, or more */
            *what = kind_name(m->front[j].kind);
            return MSG_RES_STRIDED;
        }
    return MSG_COUNT_;
}

/* A log_mel record (rnc_layout.h): its checks in the order of rnncore/io/rnc.py's load_front. */
static rnc_status load_log_mel(rnc_ctx *c, rnc_model *m, rnc_front_op *F, const unsigned char *r,
                               uint32_t size)
{
    if (size != RNC_SIZE_rec_log_mel) return fail(c, FIELD(rec, size), MSG_EXPECT, size, RNC_SIZE_rec_log_mel, 0, NULL);
    CHECK_RESERVED(c, rec_log_mel, r);
    const uint64_t nfft = rnc_rec_log_mel_n_fft(r), hop = rnc_rec_log_mel_hop_length(r);
    const uint64_t nmel = rnc_rec_log_mel_n_mels(r), pw = rnc_rec_log_mel_power(r), lg = rnc_rec_log_mel_log(r);
    const float off = rnc_rec_log_mel_log_offset(r), amin = rnc_rec_log_mel_amin(r);
    if (nfft < 2 || nfft > RNC_FILE_MAX_KERNEL)
        return fail(c, FIELD(rec_log_mel, n_fft), MSG_RANGE, nfft, 2, RNC_FILE_MAX_KERNEL, NULL);
    if (nfft != c->feat) return fail(c, FIELD(rec_log_mel, n_fft), MSG_EXPECT, nfft, c->feat, 0, NULL);
    if (hop == 0 || hop > RNC_FILE_MAX_KERNEL)
        return fail(c, FIELD(rec_log_mel, hop_length), MSG_RANGE, hop, 1, RNC_FILE_MAX_KERNEL, NULL);
    if (nmel == 0 || nmel > RNC_MAX_FEATURES)
        return fail(c, FIELD(rec_log_mel, n_mels), MSG_RANGE, nmel, 1, RNC_MAX_FEATURES, NULL);
    if (pw < 1 || pw > 2) return fail(c, FIELD(rec_log_mel, power), MSG_RANGE, pw, 1, 2, NULL);
    if (lg >= RNC_FILE_MEL_LOGS)
        return fail(c, FIELD(rec_log_mel, log), MSG_RANGE, lg, 0, RNC_FILE_MEL_LOGS - 1, NULL);
    if (lg == RNC_MEL_LOG ? !finite_f(off) || !(off > 0.0f) : f32_bits(off) != 0)
        return fail(c, FIELD(rec_log_mel, log_offset), lg == RNC_MEL_LOG ? MSG_NORM_EPS : MSG_MEL_UNUSED,
                    f32_bits(off), lg, 0, NULL);
    if (lg == RNC_MEL_LOG_DB ? !finite_f(amin) || !(amin > 0.0f) : f32_bits(amin) != 0)
        return fail(c, FIELD(rec_log_mel, amin), lg == RNC_MEL_LOG_DB ? MSG_NORM_EPS : MSG_MEL_UNUSED,
                    f32_bits(amin), lg, 0, NULL);
    const uint64_t nf = nfft / 2 + 1, rows = 2 * r16(nf); /* the cosines then the sines, nf inputs */
    const void *p;
    TRY(get_vector(c, FIELD(rec_log_mel, window), rnc_rec_log_mel_window(r), nfft, &F->window));
    TRY(get_ref(c, FIELD(rec_log_mel, dft), rnc_rec_log_mel_dft(r), rows * nf * 4, &p));
    TRY(check_floats(c, FIELD(rec_log_mel, dft), p, rows * nf, 0));
    F->dft = (const float *)p;
    TRY(get_ref(c, FIELD(rec_log_mel, fb_span), rnc_rec_log_mel_fb_span(r), nmel * 8, &p));
    F->span = (const uint32_t *)p;
    uint64_t total = 0;
    for (uint64_t i = 0; i < nmel; ++i) {
        const uint64_t first = F->span[2 * i], count = F->span[2 * i + 1];
        if (first + count > nf) {
            const uint64_t a[4] = {i, first, first + count, nf};
            return fail_with(c, FIELD(rec_log_mel, fb_span), MSG_MEL_SPAN, a, NULL);
        }
        total += count;
    }
    TRY(get_ref(c, FIELD(rec_log_mel, fb_weight), rnc_rec_log_mel_fb_weight(r), total * 4, &p));
    TRY(check_floats(c, FIELD(rec_log_mel, fb_weight), p, total, 1));
    F->fbw = (const float *)p;
    F->nfreq = (uint32_t)nf;
    F->power = (uint32_t)pw;
    F->log = (uint32_t)lg;
    F->log_c = lg == RNC_MEL_LOG ? off : amin;
    F->out_w = (uint32_t)nmel;
    const uint64_t need = nfft + 2 * nf + rows; /* model.c log_mel_row: u, v, w, re, im (>= the
                                                   FFT's 2 n_fft + nf: its work and spectrum) */
    if (need > m->front_scratch) m->front_scratch = (size_t)need;
    rnc__fft_plan(F, (uint32_t)nfft);
    m->fft_floats = rnc__fft_tw_floats(F);
    return RNC_OK;
}

/* A per-step record (frame_conv, pointwise, magnitude): its checks against the running width
 * c->feat, in the order of rnncore/io/rnc.py's load_front. */
/* A conv_time / pool_time record's timepad tail (rnc_layout.h): left, right in 0..P; flags 0, or
 * RNC_TIMEPAD_EXCLUDE_PAD for an average pooling (avg). */
static rnc_status load_timepad(rnc_ctx *c, const unsigned char *tp, uint64_t P, int avg, uint64_t *left,
                               uint64_t *right, uint64_t *excl)
{
#if defined(RNC_NO_TIMEPAD) /* a build without padding over time (model.c: its code is dead) */
    (void)P, (void)avg, (void)left, (void)right, (void)excl;
    return fail(c, ((void)RNC_AT_timepad_right, "timepad.right"), MSG_LEFT_OUT, rnc_timepad_right(tp), 0, 0,
                "padding over time (built with RNC_NO_TIMEPAD)");
#else
    CHECK_RESERVED(c, timepad, tp);
    const uint64_t l = rnc_timepad_left(tp), r = rnc_timepad_right(tp), f = rnc_timepad_flags(tp);
    if (l > P) return fail(c, ((void)RNC_AT_timepad_left, "timepad.left"), MSG_RANGE, l, 0, P, NULL);
    if (r > P) return fail(c, ((void)RNC_AT_timepad_right, "timepad.right"), MSG_RANGE, r, 0, P, NULL);
    const uint64_t known = avg ? RNC_TIMEPAD_EXCLUDE_PAD : 0;
    if (f & ~known) return fail(c, ((void)RNC_AT_timepad_flags, "timepad.flags"), MSG_FLAGS, f, known, 0, NULL);
    *left = l;
    *right = r;
    if (excl) *excl = f & RNC_TIMEPAD_EXCLUDE_PAD;
    return RNC_OK;
#endif
}

/* -DRNC_NO_TIMEPAD: a record's timepad tail is refused where it is found (load_timepad), so that
 * the padding code after it is dead */
#if defined(RNC_NO_TIMEPAD)
#define TIMEPAD_LEFT_OUT(tp)                                                  \
    do {                                                                      \
        if (tp) return load_timepad(c, tp, 0, 0, NULL, NULL, NULL);           \
    } while (0)
#else
#define TIMEPAD_LEFT_OUT(tp) ((void)(tp))
#endif

/* Record F's padding over time; the model's look-ahead (input steps: F's P - left at its input's
 * rate, the strides before it) and whether rnc_flush has pad steps to feed. */
static void timepad_set(rnc_model *m, rnc_front_op *F, uint64_t left, uint64_t right)
{
#if defined(RNC_NO_TIMEPAD) /* no tails (load_timepad): no look-ahead, nothing to flush */
    (void)m, (void)F, (void)left, (void)right;
    return;
#endif
    F->tpad_l = (uint32_t)left;
    F->tpad_r = (uint32_t)right;
    if (!m->lookahead_stride) m->lookahead_stride = 1;
    const uint64_t cap = (uint64_t)1 << 30; /* saturates (rnc_model_info.lookahead) */
    uint64_t la = (uint64_t)m->lookahead + (uint64_t)(F->win - left) * m->lookahead_stride;
    uint64_t ls = (uint64_t)m->lookahead_stride * F->stride;
    m->lookahead = (size_t)(la < cap ? la : cap);
    m->lookahead_stride = (size_t)(ls < cap ? ls : cap);
    m->flush += (size_t)right;
}

/* A field that every record over time (conv_time, pool_time) has: its name, checked at compile
 * time to be a field of each */
#define TIME_FIELD(f) ((void)RNC_AT_rec_conv_time_##f, (void)RNC_AT_rec_pool_time_##f, #f)

/* A record over time's window fields: kernel_size, stride and dilation each in 1..RNC_FILE_MAX_KERNEL. */
static rnc_status check_time_fields(const rnc_ctx *c, uint64_t k, uint64_t st, uint64_t dl)
{
    /* the first field out of range is refused (one call of fail: the deploy build's size) */
    const char *f = TIME_FIELD(kernel_size);
    uint64_t v = k;
    if (v - 1 < RNC_FILE_MAX_KERNEL) f = TIME_FIELD(stride), v = st;
    if (v - 1 < RNC_FILE_MAX_KERNEL) f = TIME_FIELD(dilation), v = dl;
    if (v - 1 < RNC_FILE_MAX_KERNEL) return RNC_OK;
    return fail(c, f, MSG_RANGE, v, 1, RNC_FILE_MAX_KERNEL, NULL);
}

/* A record over time's padding and window of P = dilation*(kernel_size-1) steps of ch channels:
 * its timepad tail tp (load_timepad), or none: left P when causal (conv_time), else 0, right 0;
 * the counters kept after the window: *ph a countdown (1) when strided (st) or when the first
 * P - left steps give no output, *nc the two counters of real and pad steps (2) when counters (a
 * pool_time's) and padded, or when padded beyond its reach (left + right > P: its pad steps alone
 * would give outputs, so a flush feeds them only after a real input, model.c rnc_flush); the
 * window and its counters fit RNC_FILE_MAX_WINDOW, alone and after the model's other windows. */
static rnc_status load_time_window(rnc_ctx *c, const rnc_model *m, const unsigned char *tp, uint64_t P, uint64_t ch,
                                   uint64_t st, int causal, int avg, int counters, uint64_t *left, uint64_t *right,
                                   uint64_t *excl, uint64_t *ph, uint64_t *nc)
{
    *left = causal ? P : 0;
    *right = *excl = 0;
    if (tp) TRY(load_timepad(c, tp, P, avg, left, right, excl));
    *ph = st > 1 || *left < P;
#if defined(RNC_NO_TIMEPAD) /* no tails (load_timepad refuses them): no counters */
    (void)counters;
    *nc = 0;
#else
    *nc = (counters && tp && (*left || *right)) || *left + *right > P ? 2 : 0;
#endif
    const uint64_t n = P * ch + *ph + *nc;
    if (n > RNC_FILE_MAX_WINDOW || m->win_floats + n > RNC_FILE_MAX_WINDOW)
        return fail(c, TIME_FIELD(kernel_size), MSG_CONV_WINDOW_SIZE, P, ch, RNC_FILE_MAX_WINDOW, NULL);
    return RNC_OK;
}

#if !defined(RNC_NO_CHUNK)
/* A model with an instance_norm record runs its front-end in parts over whole sequences
 * (model.c seq_front): no residual or concat spans an instance_norm (its source's rows are
 * gone when it runs), and no record over time pads on the right or beyond its window on the
 * left (each part gives at most as many steps as it reads; the end of a sequence feeds no pad
 * steps). F: the record just read (front[num_front]). */
static rnc_status check_seq_norm(const rnc_ctx *c, const rnc_model *m, const rnc_front_op *F)
{
    if ((F->kind == RNC_REC_RESIDUAL || F->kind == RNC_REC_CONCAT) && F->src < m->seq_norm)
        return fail(c, FIELD(rec_residual, span), MSG_SEQ_NORM_SPAN, m->num_front - F->src, 0, 0, NULL);
    for (uint32_t j = 0; j <= m->num_front; ++j) {
        const rnc_front_op *G = &m->front[j];
        if (G->tpad_r || G->tpad_l > G->win)
            return fail(c, FIELD(rec, kind), MSG_SEQ_NORM_PAD, j, G->tpad_l, G->tpad_r, kind_name(G->kind));
    }
    return RNC_OK;
}
#endif

static rnc_status load_front(rnc_ctx *c, rnc_model *m, const unsigned char *r, uint32_t size)
{
    const uint32_t kind = rnc_rec_kind(r);
    const char *fsize = FIELD(rec, size);
    if (m->precision == RNC_Q4) {
        const char *k = kind_name(kind);
        return fail(c, FIELD(rec, kind), MSG_FRONT_Q8, kind, 0, 0, k);
    }
    if (m->num_front >= RNC_MAX_FRONT) return fail(c, FIELD(rec, kind), MSG_FRONT_COUNT, RNC_MAX_FRONT, 0, 0, NULL);
    rnc_front_op *F = &m->front[m->num_front];
    memset(F, 0, sizeof(*F));
    F->kind = kind;
    F->in_w = (uint32_t)c->feat;
    if (kind == RNC_REC_MAGNITUDE) {
        if (size != RNC_SIZE_rec_magnitude) return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_magnitude, 0, NULL);
        CHECK_RESERVED(c, rec_magnitude, r);
        if (c->feat % 2) return fail(c, FIELD(rec, kind), MSG_MAG_ODD, c->feat, 0, 0, NULL);
        F->out_w = F->in_w / 2;
#if !defined(RNC_NO_POST_CONV)
    } else if (kind == RNC_REC_MUL_HALVES) {
        if (size != RNC_SIZE_rec_mul_halves) return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_mul_halves, 0, NULL);
        CHECK_RESERVED(c, rec_mul_halves, r);
        if (c->feat % 2) return fail(c, FIELD(rec, kind), MSG_HALVES_ODD, c->feat, 0, 0, NULL);
        F->out_w = F->in_w / 2;
        m->post_conv |= m->num_layers != 0; /* after a recurrent layer: rows of another width */
#endif
#if !defined(RNC_NO_CHUNK)
    } else if (kind == RNC_REC_INSTANCE_NORM) {
        if (size != RNC_SIZE_rec_instance_norm)
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_instance_norm, 0, NULL);
        CHECK_RESERVED(c, rec_instance_norm, r);
        const uint32_t n = rnc_rec_instance_norm_features(r);
        if (n != c->feat) return fail(c, FIELD(rec_instance_norm, features), MSG_EXPECT, n, c->feat, 0, NULL);
        if (m->embed) return fail(c, FIELD(rec, kind), MSG_EMB_SEQ_NORM, kind, 0, 0, NULL);
        const float eps = rnc_rec_instance_norm_eps(r);
        if (!finite_f(eps) || !(eps > 0.0f))
            return fail(c, FIELD(rec_instance_norm, eps), MSG_NORM_EPS, f32_bits(eps), 0, 0, NULL);
        F->eps = eps;
        TRY(get_vector(c, FIELD(rec_instance_norm, weight), rnc_rec_instance_norm_weight(r), n, &F->w));
        TRY(get_vector(c, FIELD(rec_instance_norm, bias), rnc_rec_instance_norm_bias(r), n, &F->b));
        F->out_w = n;
        m->seq_norm = m->num_front + 1; /* the last one's front[] index + 1 */
        if (n > m->seq_w) m->seq_w = n;
#endif
    } else if (kind == RNC_REC_LAYER_NORM || kind == RNC_REC_SCALE_SHIFT) {
        const int ln = kind == RNC_REC_LAYER_NORM;
        const uint32_t want = ln ? RNC_SIZE_rec_layer_norm : RNC_SIZE_rec_scale_shift;
        if (size != want) return fail(c, fsize, MSG_EXPECT, size, want, 0, NULL);
        if (ln) CHECK_RESERVED(c, rec_layer_norm, r);
        else CHECK_RESERVED(c, rec_scale_shift, r);
        const uint32_t n = ln ? rnc_rec_layer_norm_features(r) : rnc_rec_scale_shift_features(r);
        if (n != c->feat) return fail(c, FIELD(rec_layer_norm, features), MSG_EXPECT, n, c->feat, 0, NULL);
        if (ln) {
            const float eps = rnc_rec_layer_norm_eps(r);
            if (!finite_f(eps) || !(eps > 0.0f))
                return fail(c, FIELD(rec_layer_norm, eps), MSG_NORM_EPS, f32_bits(eps), 0, 0, NULL);
            F->eps = eps;
            TRY(get_vector(c, FIELD(rec_layer_norm, weight), rnc_rec_layer_norm_weight(r), n, &F->w));
            TRY(get_vector(c, FIELD(rec_layer_norm, bias), rnc_rec_layer_norm_bias(r), n, &F->b));
        } else {
            TRY(get_vector(c, FIELD(rec_scale_shift, scale), rnc_rec_scale_shift_scale(r), n, &F->w));
            TRY(get_vector(c, FIELD(rec_scale_shift, shift), rnc_rec_scale_shift_shift(r), n, &F->b));
        }
        F->out_w = n;
    } else if (kind == RNC_REC_POINTWISE) {
        if (size != RNC_SIZE_rec_pointwise) return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_pointwise, 0, NULL);
        CHECK_RESERVED(c, rec_pointwise, r);
        const uint32_t n = rnc_rec_pointwise_features(r), act = rnc_rec_pointwise_activation(r);
        const float al = rnc_rec_pointwise_alpha(r), be = rnc_rec_pointwise_beta(r);
        if (n != c->feat) return fail(c, FIELD(rec_pointwise, features), MSG_EXPECT, n, c->feat, 0, NULL);
#if defined(RNC_NO_PW_EXT) && defined(RNC_NO_CHUNK) /* the dense build: no code for kinds from 8, one check */
        if (act >= RNC_PW_HARDTANH)
            return fail(c, FIELD(rec_pointwise, activation), MSG_LEFT_OUT, act, 0, 0,
                        "a kind from 8 (hardtanh, silu, hardswish, softplus, softsign: RNC_NO_PW_EXT; "
                        "log_affine: RNC_NO_CHUNK)");
        const int two = act == RNC_PW_HARDSIGMOID; /* alpha and beta */
#else
        if (act >= RNC_FILE_PW_KINDS)
            return fail(c, FIELD(rec_pointwise, activation), MSG_RANGE, act, 0, RNC_FILE_PW_KINDS - 1, NULL);
#if defined(RNC_NO_PW_EXT) /* kinds 8..12 left out (model.c has no code for them) */
        if (act >= RNC_PW_HARDTANH && act <= RNC_PW_SOFTSIGN)
            return fail(c, FIELD(rec_pointwise, activation), MSG_LEFT_OUT, act, 0, 0,
                        "a kind from 8 to 12 (hardtanh, silu, hardswish, softplus, softsign; built with RNC_NO_PW_EXT)");
#endif
#if defined(RNC_NO_CHUNK)
        if (act == RNC_PW_LOG_AFFINE)
            return fail(c, FIELD(rec_pointwise, activation), MSG_LEFT_OUT, act, 0, 0,
                        "log_affine (built with RNC_NO_CHUNK)");
        if (act == RNC_PW_ABS)
            return fail(c, FIELD(rec_pointwise, activation), MSG_LEFT_OUT, act, 0, 0, "abs (built with RNC_NO_CHUNK)");
#endif
        const int two = act == RNC_PW_HARDSIGMOID || act == RNC_PW_LOG_AFFINE; /* alpha and beta */
#endif
#if !defined(RNC_NO_PW_EXT)
        if (act == RNC_PW_HARDTANH) { /* min, max: not NaN (a bound may be infinite), min <= max */
            if (al != al || al == INFINITY)
                return fail(c, FIELD(rec_pointwise, alpha), MSG_PW_PARAM, f32_bits(al), 0, 0,
                            "hardtanh's min_val: not NaN, below +inf");
            if (!(be >= al))
                return fail(c, FIELD(rec_pointwise, beta), MSG_PW_PARAM, f32_bits(be), 0, 0,
                            "hardtanh's max_val: not NaN, >= min_val (alpha)");
        } else if (act == RNC_PW_SOFTPLUS) { /* beta: finite, nonzero; threshold: not NaN */
            if (!finite_f(al) || al == 0.0f)
                return fail(c, FIELD(rec_pointwise, alpha), MSG_PW_PARAM, f32_bits(al), 0, 0,
                            "softplus' beta: finite and nonzero");
            if (be != be)
                return fail(c, FIELD(rec_pointwise, beta), MSG_PW_PARAM, f32_bits(be), 0, 0,
                            "softplus' threshold: not NaN");
        } else
#endif
        if (two || act == RNC_PW_LEAKYRELU || act == RNC_PW_ELU) {
            if (!finite_f(al)) return fail(c, FIELD(rec_pointwise, alpha), MSG_OPT_PARAM, f32_bits(al), 0, 0, NULL);
            if (two ? !finite_f(be) : f32_bits(be) != 0)
                return fail(c, FIELD(rec_pointwise, beta), two ? MSG_OPT_PARAM : MSG_OPT_UNUSED,
                            f32_bits(be), 0, 0, NULL);
        } else {
            if (f32_bits(al)) return fail(c, FIELD(rec_pointwise, alpha), MSG_OPT_UNUSED, f32_bits(al), 0, 0, NULL);
            if (f32_bits(be)) return fail(c, FIELD(rec_pointwise, beta), MSG_OPT_UNUSED, f32_bits(be), 0, 0, NULL);
        }
        F->out_w = n;
        F->act = act;
        F->alpha = al;
        F->beta = be;
    } else if (kind == RNC_REC_CONV_TIME) {
        const uint32_t q8 = m->precision == RNC_Q8; /* a q8 file: the fconvq8 tail follows */
        const uint32_t want = RNC_SIZE_rec_conv_time + (q8 ? RNC_SIZE_fconvq8 : 0);
        if (size != want && size != want + RNC_SIZE_timepad)
            return fail(c, fsize, MSG_EXPECT, size, want, 0, NULL);
        const unsigned char *tp = size != want ? r + want : NULL; /* the timepad tail */
        TIMEPAD_LEFT_OUT(tp);
        CHECK_RESERVED(c, rec_conv_time, r);
        if (q8) CHECK_RESERVED(c, fconvq8, r + RNC_SIZE_rec_conv_time);
        const uint64_t ci = rnc_rec_conv_time_in_channels(r), co = rnc_rec_conv_time_out_channels(r);
        const uint64_t k = rnc_rec_conv_time_kernel_size(r), st = rnc_rec_conv_time_stride(r);
        const uint64_t dl = rnc_rec_conv_time_dilation(r), g = rnc_rec_conv_time_groups(r);
        if (ci != c->feat) return fail(c, FIELD(rec_conv_time, in_channels), MSG_EXPECT, ci, c->feat, 0, NULL);
        if (co == 0 || co > RNC_MAX_FEATURES)
            return fail(c, FIELD(rec_conv_time, out_channels), MSG_RANGE, co, 1, RNC_MAX_FEATURES, NULL);
        TRY(check_time_fields(c, k, st, dl));
        if (g == 0 || ci % g || co % g)
            return fail(c, FIELD(rec_conv_time, groups), MSG_CONV_GROUPS, g, ci, co, NULL);
        const uint64_t P = dl * (k - 1), cg = ci / g, cog = co / g;
        uint64_t tl, tr, excl, ph, nc; /* ph: a countdown, strided or the first P - left steps without an output */
        TRY(load_time_window(c, m, tp, P, ci, st, 1, 0, 0, &tl, &tr, &excl, &ph, &nc));
        const void *p;
        const unsigned char *sref = q8 ? rnc_fconvq8_scale(r + RNC_SIZE_rec_conv_time) : NULL;
        if (sref && (rnc_ref_offset(sref) || rnc_ref_nbytes(sref))) { /* int8 weights, row scales */
            TRY(get_matrix(c, RNC_Q8, FIELD(rec_conv_time, weight), rnc_rec_conv_time_weight(r),
                           FIELD(fconvq8, scale), sref, g * r16(cog), cg * k, &p, &F->s));
        } else { /* f32 weights (an f32 file, or a q8 file's record kept in f32) */
            TRY(get_ref(c, FIELD(rec_conv_time, weight), rnc_rec_conv_time_weight(r), g * r16(cog) * cg * k * 4, &p));
            TRY(check_floats(c, FIELD(rec_conv_time, weight), p, g * r16(cog) * cg * k, 0));
        }
        F->w = (const float *)p;
        TRY(get_vector(c, FIELD(rec_conv_time, bias), rnc_rec_conv_time_bias(r), co, &F->b));
        F->cin = (uint32_t)ci;
        F->cout = (uint32_t)co;
        F->k = (uint32_t)k;
        F->stride = (uint32_t)st;
        F->dil = (uint32_t)dl;
        F->groups = (uint32_t)g;
        F->cg = (uint32_t)cg;
        F->cog = (uint32_t)cog;
        F->out_w = (uint32_t)co;
        F->win = (uint32_t)P;
        F->win_off = m->win_floats;
        F->phase = (uint32_t)ph; /* a countdown after the window: steps without an output */
        F->skip0 = (uint32_t)(P - tl);
        F->tcount = nc != 0;
        timepad_set(m, F, tl, tr);
        m->win_floats += (size_t)(P * ci + ph + nc);
        if (F->phase) m->strided = 1;
        /* model.c conv_time_row: one column, its product; q8 (conv_time_row_q8, 64-byte blocks):
         * a group's codes, the product, the taps, their codes, the scale */
        const uint64_t need = F->s ? r16(r4(cg * k) / 4 + 1) + r16(cog) + r16(ci * k) + r16(r4(ci * k) / 4 + 1) + 16
                                   : cg * k + r16(cog);
        if (need > m->front_scratch) m->front_scratch = (size_t)need;
    } else if (kind == RNC_REC_POOL_TIME) {
        if (size != RNC_SIZE_rec_pool_time && size != RNC_SIZE_rec_pool_time + RNC_SIZE_timepad)
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_pool_time, 0, NULL);
        const unsigned char *tp = size != RNC_SIZE_rec_pool_time ? r + RNC_SIZE_rec_pool_time : NULL;
        TIMEPAD_LEFT_OUT(tp);
        CHECK_RESERVED(c, rec_pool_time, r);
        const uint64_t ch = rnc_rec_pool_time_channels(r), k = rnc_rec_pool_time_kernel_size(r);
        const uint64_t st = rnc_rec_pool_time_stride(r), dl = rnc_rec_pool_time_dilation(r);
        const uint64_t op = rnc_rec_pool_time_op(r);
        if (ch != c->feat) return fail(c, FIELD(rec_pool_time, channels), MSG_EXPECT, ch, c->feat, 0, NULL);
        TRY(check_time_fields(c, k, st, dl));
        if (op >= RNC_FILE_POOL_OPS)
            return fail(c, FIELD(rec_pool_time, op), MSG_RANGE, op, 0, RNC_FILE_POOL_OPS - 1, NULL);
        const uint64_t P = dl * (k - 1);
        /* ph: a countdown (the first P - left steps give no output, or strided); padded: 2 counters */
        uint64_t tl, tr, excl, ph, nc;
        TRY(load_time_window(c, m, tp, P, ch, st, 0, op == RNC_POOL_AVG, 1, &tl, &tr, &excl, &ph, &nc));
        F->cin = F->cout = F->out_w = (uint32_t)ch;
        F->k = (uint32_t)k;
        F->stride = (uint32_t)st;
        F->dil = (uint32_t)dl;
        F->pool_op = (uint32_t)op;
        F->win = (uint32_t)P;
        F->win_off = m->win_floats;
        F->phase = (uint32_t)ph;
        F->skip0 = (uint32_t)(P - tl); /* the first output needs k - left inputs */
        F->tcount = nc != 0;
        F->tpad_excl = (uint32_t)excl;
        timepad_set(m, F, tl, tr);
        m->win_floats += (size_t)(P * ch + ph + nc);
        if (F->phase) m->strided = 1;
    } else if (kind == RNC_REC_LOG_MEL) {
        TRY(load_log_mel(c, m, F, r, size));
    } else if (kind == RNC_REC_RESIDUAL) {
        if (size != RNC_SIZE_rec_residual) return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_residual, 0, NULL);
        CHECK_RESERVED(c, rec_residual, r);
        const uint64_t n = rnc_rec_residual_features(r), span = rnc_rec_residual_span(r);
        if (n != c->feat) return fail(c, FIELD(rec_residual, features), MSG_EXPECT, n, c->feat, 0, NULL);
        uint64_t steps = 0, a[2] = {0, 0};
        uint32_t src = 0;
        const char *what = NULL;
        const enum rnc_msg bad = front_span_source(c, m, span, n, XRES_ON, &src, &steps, a, &what);
        if (bad != MSG_COUNT_) return fail(c, FIELD(rec_residual, span), bad, span, a[0], a[1], what);
        F->src = src;
#if XRES_ON
        F->xres = span != steps; /* it spans recurrent records */
        if (F->xres) {
            F->save_off = m->xres_floats;
            m->xres_floats += (size_t)n;
        } else {
            F->save_off = m->res_floats;
            m->res_floats += (size_t)n;
        }
#else
        F->save_off = m->res_floats;
        m->res_floats += (size_t)n;
#endif
        F->out_w = (uint32_t)n;
#if !defined(RNC_NO_CHUNK)
    } else if (kind == RNC_REC_CONCAT) {
        if (size != RNC_SIZE_rec_concat) return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_concat, 0, NULL);
        CHECK_RESERVED(c, rec_concat, r);
        const uint64_t n = rnc_rec_concat_features(r), span = rnc_rec_concat_span(r);
        if (n != c->feat) return fail(c, FIELD(rec_concat, features), MSG_EXPECT, n, c->feat, 0, NULL);
        uint64_t steps = 0, a[2] = {0, 0};
        uint32_t src = 0;
        const char *what = NULL;
        const enum rnc_msg bad = front_span_source(c, m, span, 0, 0, &src, &steps, a, &what);
        if (bad != MSG_COUNT_) return fail(c, FIELD(rec_concat, span), bad, span, a[0], a[1], what);
        const uint64_t w = (uint64_t)m->front[src].in_w + n;
        if (w > RNC_FILE_MAX_FEATURES)
            return fail(c, FIELD(rec_concat, features), MSG_RANGE, w, 1, RNC_FILE_MAX_FEATURES, NULL);
        F->src = src;
        F->save_off = m->res_floats;
        m->res_floats += (size_t)m->front[src].in_w;
        F->out_w = (uint32_t)w;
#endif
    } else { /* RNC_REC_FRAME_CONV */
        const uint32_t q8 = m->precision == RNC_Q8; /* a q8 file: the fconvq8 tail follows */
        const uint32_t want = RNC_SIZE_rec_frame_conv + (q8 ? RNC_SIZE_fconvq8 : 0);
        /* a q8 file's 16 x 16 frame_conv: the fconvq16 tail after fconvq8 */
        const uint32_t q16 = q8 && size == want + RNC_SIZE_fconvq16;
        if (size != want && !q16) return fail(c, fsize, MSG_EXPECT, size, want, 0, NULL);
        CHECK_RESERVED(c, rec_frame_conv, r);
        if (q8) CHECK_RESERVED(c, fconvq8, r + RNC_SIZE_rec_frame_conv);
        const unsigned char *t16 = r + RNC_SIZE_rec_frame_conv + RNC_SIZE_fconvq8;
        if (q16) {
#if defined(RNC_NO_Q16)
            return fail(c, FIELD(fconvq16, bits), MSG_LEFT_OUT, rnc_fconvq16_bits(t16), 0, 0,
                        "16 x 16 frame_convs (built with RNC_NO_Q16)");
#else
            CHECK_RESERVED(c, fconvq16, t16);
            if (rnc_fconvq16_bits(t16) != RNC_FCONV_BITS16)
                return fail(c, FIELD(fconvq16, bits), MSG_EXPECT, rnc_fconvq16_bits(t16), RNC_FCONV_BITS16, 0, NULL);
#endif
        }
        const uint64_t ci = rnc_rec_frame_conv_in_channels(r), co = rnc_rec_frame_conv_out_channels(r);
        const uint64_t k = rnc_rec_frame_conv_kernel_size(r), L = rnc_rec_frame_conv_frame_length(r);
        const uint64_t st = rnc_rec_frame_conv_stride(r), dl = rnc_rec_frame_conv_dilation(r);
        const uint64_t g = rnc_rec_frame_conv_groups(r), pl = rnc_rec_frame_conv_pad_left(r);
        const uint64_t pr = rnc_rec_frame_conv_pad_right(r), mode = rnc_rec_frame_conv_padding_mode(r);
        if (ci == 0 || ci > RNC_MAX_FEATURES)
            return fail(c, FIELD(rec_frame_conv, in_channels), MSG_RANGE, ci, 1, RNC_MAX_FEATURES, NULL);
        if (co == 0 || co > RNC_MAX_FEATURES)
            return fail(c, FIELD(rec_frame_conv, out_channels), MSG_RANGE, co, 1, RNC_MAX_FEATURES, NULL);
        if (k == 0 || k > RNC_FILE_MAX_KERNEL)
            return fail(c, FIELD(rec_frame_conv, kernel_size), MSG_RANGE, k, 1, RNC_FILE_MAX_KERNEL, NULL);
        if (L == 0 || L > RNC_MAX_FEATURES)
            return fail(c, FIELD(rec_frame_conv, frame_length), MSG_RANGE, L, 1, RNC_MAX_FEATURES, NULL);
        if (ci * L != c->feat) return fail(c, FIELD(rec_frame_conv, frame_length), MSG_EXPECT, ci * L, c->feat, 0, NULL);
        if (st == 0 || st > RNC_FILE_MAX_KERNEL)
            return fail(c, FIELD(rec_frame_conv, stride), MSG_RANGE, st, 1, RNC_FILE_MAX_KERNEL, NULL);
        if (dl == 0 || dl > RNC_FILE_MAX_KERNEL)
            return fail(c, FIELD(rec_frame_conv, dilation), MSG_RANGE, dl, 1, RNC_FILE_MAX_KERNEL, NULL);
        if (g == 0 || ci % g || co % g)
            return fail(c, FIELD(rec_frame_conv, groups), MSG_CONV_GROUPS, g, ci, co, NULL);
        if (pl > RNC_FILE_MAX_KERNEL)
            return fail(c, FIELD(rec_frame_conv, pad_left), MSG_RANGE, pl, 0, RNC_FILE_MAX_KERNEL, NULL);
        if (pr > RNC_FILE_MAX_KERNEL)
            return fail(c, FIELD(rec_frame_conv, pad_right), MSG_RANGE, pr, 0, RNC_FILE_MAX_KERNEL, NULL);
        if (mode >= RNC_FILE_PAD_MODES)
            return fail(c, FIELD(rec_frame_conv, padding_mode), MSG_RANGE, mode, 0, RNC_FILE_PAD_MODES - 1, NULL);
        if (mode == RNC_PAD_REFLECT && (pl >= L || pr >= L))
            return fail(c, FIELD(rec_frame_conv, pad_left), MSG_CONV_REFLECT, pl, pr, L, NULL);
        const uint64_t span = dl * (k - 1) + 1, padded = L + pl + pr;
        if (padded < span) {
            const uint64_t a[4] = {L, pl, pr, span};
            return fail_with(c, FIELD(rec_frame_conv, kernel_size), MSG_CONV_WINDOW, a, NULL);
        }
        const uint64_t lout = (padded - span) / st + 1, cg = ci / g, cog = co / g;
        if (co * lout > RNC_MAX_FEATURES)
            return fail(c, FIELD(rec_frame_conv, out_channels), MSG_OUTPUT_WIDTH, co * lout, RNC_MAX_FEATURES, 0, NULL);
        const void *p;
        const unsigned char *sref = q8 ? rnc_fconvq8_scale(r + RNC_SIZE_rec_frame_conv) : NULL;
#if !defined(RNC_NO_Q16)
        if (q16) { /* int16 weights, rows of round16(cg*k), row scales */
            const uint64_t rows = g * r16(cog), kp = r16(cg * k);
            if (kp > RNC_Q8_MAX_K) return fail(c, FIELD(rec_frame_conv, weight), MSG_Q8_K, kp, RNC_Q8_MAX_K, 0, NULL);
            const void *sp;
            TRY(get_ref(c, FIELD(rec_frame_conv, weight), rnc_rec_frame_conv_weight(r), rows * kp * 2, &p));
            TRY(get_ref(c, FIELD(fconvq8, scale), sref, rows * 4, &sp));
            TRY(check_floats(c, FIELD(fconvq8, scale), sp, rows, 1));
            for (uint64_t i = 0; i < rows * kp; ++i) { /* -32767..32767, zero past cg*k */
                int16_t v;
                memcpy(&v, (const unsigned char *)p + 2 * i, 2);
                if (v == INT16_MIN) return fail(c, FIELD(rec_frame_conv, weight), MSG_Q16_MIN, i, 0, 0, NULL);
                if (v && i % kp >= cg * k)
                    return fail(c, FIELD(rec_frame_conv, weight), MSG_Q16_PAD, i / kp, i % kp, cg * k, NULL);
            }
            F->s = (const float *)sp;
            F->q16 = 1;
        } else
#endif
        if (sref && (rnc_ref_offset(sref) || rnc_ref_nbytes(sref))) { /* int8 weights, row scales */
            TRY(get_matrix(c, RNC_Q8, FIELD(rec_frame_conv, weight), rnc_rec_frame_conv_weight(r),
                           FIELD(fconvq8, scale), sref, g * r16(cog), cg * k, &p, &F->s));
        } else { /* f32 weights (an f32 file, or a q8 file's record kept in f32) */
            TRY(get_ref(c, FIELD(rec_frame_conv, weight), rnc_rec_frame_conv_weight(r), g * r16(cog) * cg * k * 4, &p));
            TRY(check_floats(c, FIELD(rec_frame_conv, weight), p, g * r16(cog) * cg * k, 0));
        }
        F->w = (const float *)p;
        TRY(get_vector(c, FIELD(rec_frame_conv, bias), rnc_rec_frame_conv_bias(r), co, &F->b));
        F->cin = (uint32_t)ci;
        F->cout = (uint32_t)co;
        F->k = (uint32_t)k;
        F->L = (uint32_t)L;
        F->stride = (uint32_t)st;
        F->dil = (uint32_t)dl;
        F->groups = (uint32_t)g;
        F->pl = (uint32_t)pl;
        F->pr = (uint32_t)pr;
        F->reflect = mode == RNC_PAD_REFLECT;
        F->lout = (uint32_t)lout;
        F->cg = (uint32_t)cg;
        F->cog = (uint32_t)cog;
        F->out_w = (uint32_t)(co * lout);
#if !defined(RNC_NO_POST_CONV)
        m->post_conv |= m->num_layers != 0;
#endif
        /* model.c frame_conv_row: the windows and their products; q8: the windows' codes (r4(cg*k)
         * bytes each, within cg*k floats) and 64 floats more for the row's codes' alignment and its
         * scale, then the row's codes (ci*L bytes) */
        uint64_t need = RNC_FCONV_BLOCK * (cg * k + r16(cog)) + (F->s ? 64 + (ci * L + 3) / 4 : 0);
#if !defined(RNC_NO_Q16)
        /* q16 (frame_conv_row_q16): the windows' int16 codes (r16(cg*k) each), int64 sums, 64
         * floats (the scale), the row's int16 codes */
        if (F->q16) need = RNC_FCONV_BLOCK * (r16(cg * k) / 2 + 2 * r16(cog)) + 64 + (ci * L + 1) / 2;
#endif
        if (need > m->front_scratch) m->front_scratch = (size_t)need;
    }
#if !defined(RNC_NO_CHUNK)
    if (m->seq_norm) TRY(check_seq_norm(c, m, F));
#endif
    if (F->in_w > m->front_w) m->front_w = F->in_w;
    if (F->out_w > m->front_w) m->front_w = F->out_w;
    c->feat = F->out_w;
    if (c->feat > c->max_feat) c->max_feat = c->feat;
    m->num_front++;
    return add_stage(m, kind);
}

#if !defined(RNC_NO_INT)
/* ------------------------------------------------------------------------------------------
 * precision 3: fully-integer models (rnc_layout.h, "precision 3"), checked in the order of
 * rnncore/io/rnc.py's load_int_layer / load_int_head
 * ---------------------------------------------------------------------------------------- */
static rnc_status int_range(const rnc_ctx *c, const char *field, int64_t v, int64_t lo, int64_t hi)
{
    return v < lo || v > hi ? fail(c, field, MSG_INT_RANGE, (uint64_t)v, (uint64_t)lo, (uint64_t)hi, NULL)
                            : RNC_OK;
}

static rnc_status int_expect(const rnc_ctx *c, const char *field, int64_t v, int64_t want)
{
    return v != want ? fail(c, field, MSG_INT_EXPECT, (uint64_t)v, (uint64_t)want, 0, NULL) : RNC_OK;
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* a binary64 scale of an integer file: finite and > 0 */
static rnc_status int_scale(const rnc_ctx *c, const char *field, double s)
{
    const uint64_t b = f64_bits(s);
    return (b & 0x7FF0000000000000ull) == 0x7FF0000000000000ull || !(s > 0.0)
               ? fail(c, field, MSG_NORM_EPS, b, 0, 0, NULL)
               : RNC_OK;
}

/* a scale the engine dequantises with: also at most 2^max_exp (rnc_layout.h
 * RNC_FILE_INT_MAX_H_SCALE_EXP), so that its float32 outputs stay finite */
static rnc_status int_scale_max(const rnc_ctx *c, const char *field, double s, unsigned max_exp, const char *what)
{
    TRY(int_scale(c, field, s));
    return s > ldexp(1.0, (int)max_exp) ? fail(c, field, MSG_INT_SCALE_MAX, f64_bits(s), max_exp, 0, what) : RNC_OK;
}

/* an f32 field an integer file leaves 0 */
static rnc_status int_zero(const rnc_ctx *c, const char *field, float s)
{
    return f32_bits(s) ? fail(c, field, MSG_INT_ZERO, f32_bits(s), 0, 0, NULL) : RNC_OK;
}

/* A tensor of `count` int8 (size 1) or little-endian int32 (size 4) values, each in lo..hi. */
static rnc_status get_ints(rnc_ctx *c, const char *field, const unsigned char *ref, uint64_t count,
                           unsigned size, int64_t lo, int64_t hi, const void **out)
{
    const void *p;
    TRY(get_ref(c, field, ref, count * size, &p));
    *out = p;
    for (uint64_t i = 0; i < count; ++i) {
        const unsigned char *b = (const unsigned char *)p;
        const int64_t v = size == 1 ? (int64_t)(int8_t)b[i] : (int64_t)(int32_t)rnc__rd32(b + 4 * i);
        if (v < lo || v > hi) {
            const uint64_t a[4] = {i, (uint64_t)v, (uint64_t)lo, (uint64_t)hi};
            return fail_with(c, field, MSG_INT_VALUE, a, NULL);
        }
    }
    return RNC_OK;
}

#define INT32_TOP 2147483647
#define INT_BIAS ((int64_t)RNC_FILE_INT_MAX_BIAS)

static rnc_status load_int_layer(rnc_ctx *c, rnc_model *m, const unsigned char *r, uint32_t size)
{
    const uint32_t want = RNC_REC_RECURRENT_DIR0 + RNC_SIZE_cellw + RNC_SIZE_cellint;
    if (size != want) return fail(c, FIELD(rec, size), MSG_EXPECT, size, want, 0, NULL);
    const unsigned char *w = r + RNC_REC_RECURRENT_DIR0, *q = w + RNC_SIZE_cellw;
    CHECK_RESERVED(c, rec_recurrent, r);
    CHECK_RESERVED(c, cellint, q);
    const uint32_t kind = rnc_rec_recurrent_cell(r), lf = rnc_rec_recurrent_flags(r);
    const uint32_t I = rnc_rec_recurrent_input_size(r), H = rnc_rec_recurrent_hidden_size(r);
    const uint32_t known = RNC_LAYER_FLAG_RESET_AFTER | RNC_LAYER_FLAG_BIDIR | RNC_LAYER_FLAG_SPARSE_IH |
                           RNC_LAYER_FLAG_SPARSE_HH | RNC_LAYER_FLAG_OPTIONS;
    const char *fcell = FIELD(rec_recurrent, cell), *fflags = FIELD(rec_recurrent, flags);
    if (m->num_layers >= RNC_MAX_LAYERS) return fail(c, fcell, MSG_LAYERS, RNC_MAX_LAYERS, 0, 0, NULL);
    if (kind >= RNC_CELL_KIND_COUNT) return fail(c, fcell, MSG_RANGE, kind, 0, RNC_CELL_KIND_COUNT - 1, NULL);
    if (lf & ~known) return fail(c, fflags, MSG_FLAGS, lf, known, 0, NULL);
    if (lf & ~RNC_LAYER_FLAG_RESET_AFTER) return fail(c, fflags, MSG_INT_FORM, lf, 0, 0, NULL);
    if ((lf & RNC_LAYER_FLAG_RESET_AFTER) && kind != RNC_GRU) return fail(c, fflags, MSG_RESET_AFTER, lf, 0, 0, NULL);
    if (I != c->feat) return fail(c, FIELD(rec_recurrent, input_size), MSG_EXPECT, I, c->feat, 0, NULL);
    if (I > RNC_FILE_INT_MAX_COLS)
        return fail(c, FIELD(rec_recurrent, input_size), MSG_RANGE, I, 1, RNC_FILE_INT_MAX_COLS, NULL);
    if (H == 0 || H > RNC_FILE_INT_MAX_COLS)
        return fail(c, FIELD(rec_recurrent, hidden_size), MSG_RANGE, H, 1, RNC_FILE_INT_MAX_COLS, NULL);
    TRY(int_zero(c, FIELD(rec_recurrent, x_scale), rnc_rec_recurrent_x_scale(r)));
    TRY(int_zero(c, FIELD(rec_recurrent, h_scale), rnc_rec_recurrent_h_scale(r)));
    TRY(int_zero(c, FIELD(rec_recurrent, h_scale_reverse), rnc_rec_recurrent_h_scale_reverse(r)));
    const void *p;
    TRY(get_ref(c, FIELD(rec_recurrent, w_hh_sums), rnc_rec_recurrent_w_hh_sums(r), 0, &p));
    /* the cellint's numbers */
    const uint32_t cf = rnc_cellint_flags(q);
    const uint32_t cf_known = RNC_CELLINT_TABLE | RNC_CELLINT_INPUT_S16;
    if (cf & ~cf_known) return fail(c, FIELD(cellint, flags), MSG_FLAGS, cf, cf_known, 0, NULL);
    if ((cf & RNC_CELLINT_TABLE) && kind == RNC_LSTM)
        return fail(c, FIELD(cellint, flags), MSG_INT_TABLE_LSTM, cf, 0, 0, NULL);
    if ((cf & RNC_CELLINT_INPUT_S16) && m->num_layers)
        return fail(c, FIELD(cellint, flags), MSG_INT_S16_LAYER, cf, 0, 0, NULL);
    const int32_t x_zp = (int32_t)rnc_cellint_x_zp(q), h_zp = (int32_t)rnc_cellint_h_zp(q);
    const double xs = rnc_cellint_x_scale(q), hs = rnc_cellint_h_scale(q);
    TRY(int_scale(c, FIELD(cellint, x_scale), xs));
    if (m->num_layers && f64_bits(xs) != c->int_h_scale)
        return fail(c, FIELD(cellint, x_scale), MSG_INT_SAME, f64_bits(xs), c->int_h_scale, 0, NULL);
    TRY(int_scale_max(c, FIELD(cellint, h_scale), hs, RNC_FILE_INT_MAX_H_SCALE_EXP,
                      "h_scale (h8 - zp) is a float32 state or output"));
    TRY(int_scale(c, FIELD(cellint, gate_scale), rnc_cellint_gate_scale(q)));
    TRY(int_range(c, FIELD(cellint, x_zp), x_zp, -128, 127));
    if (m->num_layers) TRY(int_expect(c, FIELD(cellint, x_zp), x_zp, c->int_h_zp));
    if (cf & RNC_CELLINT_INPUT_S16) TRY(int_expect(c, FIELD(cellint, x_zp), x_zp, 0));
    TRY(int_range(c, FIELD(cellint, h_zp), h_zp, -128, 127));
    TRY(int_range(c, FIELD(cellint, m_h), (int32_t)rnc_cellint_m_h(q), 0, INT32_TOP));
    TRY(int_range(c, FIELD(cellint, e_h), (int32_t)rnc_cellint_e_h(q), -31, 30));
    if (kind == RNC_GRU) {
        TRY(int_range(c, FIELD(cellint, m_rh), (int32_t)rnc_cellint_m_rh(q), 0, INT32_TOP));
        TRY(int_range(c, FIELD(cellint, e_rh), (int32_t)rnc_cellint_e_rh(q), -31, 30));
    } else {
        TRY(int_expect(c, FIELD(cellint, m_rh), (int32_t)rnc_cellint_m_rh(q), 0));
        TRY(int_expect(c, FIELD(cellint, e_rh), (int32_t)rnc_cellint_e_rh(q), 0));
    }
    if (kind == RNC_LSTM) {
        TRY(int_range(c, FIELD(cellint, cell_shift), (int32_t)rnc_cellint_cell_shift(q), -15, -9));
        TRY(int_range(c, FIELD(cellint, cell_clip), (int32_t)rnc_cellint_cell_clip(q), 0, 32767));
    } else {
        TRY(int_expect(c, FIELD(cellint, cell_shift), (int32_t)rnc_cellint_cell_shift(q), 0));
        TRY(int_expect(c, FIELD(cellint, cell_clip), (int32_t)rnc_cellint_cell_clip(q), 0));
    }
    /* the tensors */
    const uint32_t G = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    const uint64_t rows = (uint64_t)G * H;
    c->dir = 0;
    const void *t[10];
    TRY(get_ref(c, FIELD(cellw, w_ih), rnc_cellw_w_ih(w), rows * I, &t[0]));
    TRY(get_ref(c, FIELD(cellw, w_hh), rnc_cellw_w_hh(w), rows * H, &t[1]));
    TRY(get_ref(c, FIELD(cellw, s_ih), rnc_cellw_s_ih(w), 0, &p));
    TRY(get_ref(c, FIELD(cellw, s_hh), rnc_cellw_s_hh(w), 0, &p));
    TRY(get_ints(c, FIELD(cellw, b_ih), rnc_cellw_b_ih(w), rows, 4, -INT_BIAS, INT_BIAS, &t[2]));
    TRY(get_ints(c, FIELD(cellw, b_hh), rnc_cellw_b_hh(w), rows, 4, -INT_BIAS, INT_BIAS, &t[3]));
    if (cf & RNC_CELLINT_INPUT_S16) /* int32 accumulation of int8 W_ih times int16 x */
        for (uint64_t i = 0; i < rows; ++i) {
            const int8_t *wr = (const int8_t *)t[0] + i * I;
            int64_t s = 0;
            for (uint32_t k = 0; k < I; ++k) s += wr[k] < 0 ? -(int64_t)wr[k] : wr[k];
            const int32_t b = (int32_t)rnc__rd32((const unsigned char *)t[2] + 4 * i);
            s = s * 32768 + (b < 0 ? -(int64_t)b : b);
            if (s > INT32_TOP) {
                const uint64_t a[3] = {i, (uint64_t)s, INT32_TOP};
                return fail_with(c, FIELD(cellw, w_ih), MSG_INT_S16_BOUND, a, NULL);
            }
        }
    c->dir = NO_DIR;
    TRY(get_ints(c, FIELD(cellint, m_ih), rnc_cellint_m_ih(q), rows, 4, 0, INT32_TOP, &t[4]));
    TRY(get_ints(c, FIELD(cellint, e_ih), rnc_cellint_e_ih(q), rows, 1, -31, 30, &t[5]));
    TRY(get_ints(c, FIELD(cellint, m_hh), rnc_cellint_m_hh(q), rows, 4, 0, INT32_TOP, &t[6]));
    TRY(get_ints(c, FIELD(cellint, e_hh), rnc_cellint_e_hh(q), rows, 1, -31, 30, &t[7]));
    rnc_layer *L = &m->layer[m->num_layers];
    memset(L, 0, sizeof(*L));
    /* what the integer step reads (the host engine runs the model: model.c, "RNC_INT8") */
    L->iq.w_ih = (const int8_t *)t[0];
    L->iq.w_hh = (const int8_t *)t[1];
    L->iq.b_ih = (const int32_t *)t[2];
    L->iq.b_hh = (const int32_t *)t[3];
    L->iq.m_ih = (const int32_t *)t[4];
    L->iq.e_ih = (const int8_t *)t[5];
    L->iq.m_hh = (const int32_t *)t[6];
    L->iq.e_hh = (const int8_t *)t[7];
    L->iq.m_h = (int32_t)rnc_cellint_m_h(q);
    L->iq.e_h = (int32_t)rnc_cellint_e_h(q);
    L->iq.m_rh = (int32_t)rnc_cellint_m_rh(q);
    L->iq.e_rh = (int32_t)rnc_cellint_e_rh(q);
    L->iq.x_zp = x_zp;
    L->iq.h_zp = h_zp;
    L->iq.cell_shift = (int32_t)rnc_cellint_cell_shift(q);
    L->iq.cell_clip = (int32_t)rnc_cellint_cell_clip(q);
    L->iq.table = (cf & RNC_CELLINT_TABLE) ? 1 : 0;
    L->iq.input_s16 = (cf & RNC_CELLINT_INPUT_S16) ? 1 : 0;
    L->iq.x_scale = xs;
    L->iq.h_scale = hs;
    L->h_offset = (size_t)c->hsum;
    c->hsum += H;
    L->c_offset = (size_t)(kind == RNC_LSTM ? c->csum : 0);
    if (kind == RNC_LSTM) c->csum += H;
    if (rows > c->max_ghp) c->max_ghp = rows;
    L->kind = kind;
    L->dirs = 1;
    L->gates = G;
    L->input_size = I;
    L->hidden_size = H;
    L->out = H;
    L->reset_after = (lf & RNC_LAYER_FLAG_RESET_AFTER) ? 1 : 0;
    c->int_h_scale = f64_bits(hs);
    c->int_h_zp = h_zp;
    c->feat = H;
    if (c->feat > c->max_feat) c->max_feat = c->feat;
    m->num_layers++;
    return add_stage(m, RNC_REC_RECURRENT);
}

static rnc_status load_int_head(rnc_ctx *c, rnc_model *m, const unsigned char *r, uint32_t size)
{
    const uint32_t want = RNC_SIZE_rec_linear + RNC_SIZE_linint;
    if (size != want) return fail(c, FIELD(rec, size), MSG_EXPECT, size, want, 0, NULL);
    const unsigned char *q = r + RNC_SIZE_rec_linear;
    CHECK_RESERVED(c, rec_linear, r);
    CHECK_RESERVED(c, linint, q);
    const uint32_t in = rnc_rec_linear_in_features(r), out = rnc_rec_linear_out_features(r);
    const uint32_t act = rnc_rec_linear_activation(r);
    if (in != c->feat) return fail(c, FIELD(rec_linear, in_features), MSG_EXPECT, in, c->feat, 0, NULL);
    if (out == 0 || out > RNC_FILE_INT_MAX_COLS)
        return fail(c, FIELD(rec_linear, out_features), MSG_RANGE, out, 1, RNC_FILE_INT_MAX_COLS, NULL);
    if (act >= RNC_ACTIVATION_COUNT)
        return fail(c, FIELD(rec_linear, activation), MSG_RANGE, act, 0, RNC_ACTIVATION_COUNT - 1, NULL);
    if (act != RNC_ACT_NONE && act != RNC_ACT_SOFTMAX)
        return fail(c, FIELD(rec_linear, activation), MSG_INT_ACT, act, 0, 0, NULL);
    TRY(int_zero(c, FIELD(rec_linear, in_scale), rnc_rec_linear_in_scale(r)));
    TRY(int_scale_max(c, FIELD(linint, out_scale), rnc_linint_out_scale(q), RNC_FILE_INT_MAX_OUT_SCALE_EXP,
                      "out_scale y_q is a float32 output"));
    const void *p;
    const uint64_t o = out;
    const void *t[4];
    TRY(get_ref(c, FIELD(rec_linear, weight), rnc_rec_linear_weight(r), o * in, &t[0]));
    TRY(get_ref(c, FIELD(rec_linear, scale), rnc_rec_linear_scale(r), 0, &p));
    TRY(get_ints(c, FIELD(rec_linear, bias), rnc_rec_linear_bias(r), o, 4, -INT_BIAS, INT_BIAS, &t[1]));
    TRY(get_ints(c, FIELD(linint, m_o), rnc_linint_m_o(q), o, 4, 0, INT32_TOP, &t[2]));
    TRY(get_ints(c, FIELD(linint, e_o), rnc_linint_e_o(q), o, 1, -31, 30, &t[3]));
    m->ihead.w = (const int8_t *)t[0];
    m->ihead.b = (const int32_t *)t[1];
    m->ihead.m = (const int32_t *)t[2];
    m->ihead.e = (const int8_t *)t[3];
    m->ihead.out_scale = rnc_linint_out_scale(q);
    m->head = 1;
    m->head_in = in;
    m->head_out = out;
    m->head_act = act;
    return add_stage(m, RNC_REC_LINEAR);
}
#endif

static rnc_status load_record(rnc_ctx *c, rnc_model *m, const unsigned char *r, uint32_t size)
{
    const char *fsize = FIELD(rec, size);
    switch (rnc_rec_kind(r)) {
    case RNC_REC_EMBEDDING: {
        static const embed_names en = {"num", "dim", "weight"};
        if (size != RNC_SIZE_rec_embedding)
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_embedding, 0, NULL);
        CHECK_RESERVED(c, rec_embedding, r);
        TRY(load_embedding(c, m, &en, rnc_rec_embedding_num(r), rnc_rec_embedding_dim(r),
                           rnc_rec_embedding_weight(r)));
        m->input_size = m->embed_dim;
        c->feat = c->max_feat = m->embed_dim;
        return RNC_OK;
    }
    case RNC_REC_RECURRENT: {
#if !defined(RNC_NO_INT)
        if (m->precision == RNC_FILE_PRECISION_INT) return load_int_layer(c, m, r, size);
#endif
        if (size < RNC_SIZE_rec_recurrent)
            return fail(c, fsize, MSG_EXPECT, size, RNC_REC_RECURRENT_DIR0 + RNC_SIZE_cellw, 0, NULL);
        CHECK_RESERVED(c, rec_recurrent, r);
        const uint32_t flags = rnc_rec_recurrent_flags(r);
        const uint32_t dirs = (flags & RNC_LAYER_FLAG_BIDIR) ? 2 : 1;
        const uint32_t opt = (flags & RNC_LAYER_FLAG_OPTIONS) ? (uint32_t)RNC_SIZE_cellopt : 0u;
        /* the cellopt's flags decide whether a cellln follows: read them only when the record is
         * long enough to hold the cellopt (else the size check below refuses it) */
        const uint32_t opt_at = RNC_REC_RECURRENT_DIR0 + (uint32_t)RNC_SIZE_cellw * dirs;
        const uint32_t ln = opt && size >= opt_at + opt &&
                                    (rnc_cellopt_flags(r + opt_at) & RNC_CELLOPT_LAYER_NORM)
                                ? (uint32_t)RNC_SIZE_cellln
                                : 0u;
        if (size != opt_at + opt + ln)
            return fail(c, fsize, MSG_EXPECT, size, (uint64_t)opt_at + opt + ln, 0, NULL);
        const unsigned char *d0 = r + RNC_REC_RECURRENT_DIR0;
        const layer_src s = {FIELD(rec_recurrent, cell), rnc_rec_recurrent_cell(r), flags,
                             rnc_rec_recurrent_input_size(r), rnc_rec_recurrent_hidden_size(r),
                             rnc_rec_recurrent_x_scale(r),
                             {rnc_rec_recurrent_h_scale(r), rnc_rec_recurrent_h_scale_reverse(r)},
                             {d0, dirs == 2 ? d0 + RNC_SIZE_cellw : NULL},
                             rnc_rec_recurrent_w_hh_sums(r),
                             opt ? d0 + (size_t)RNC_SIZE_cellw * dirs : NULL,
                             ln ? r + opt_at + opt : NULL, 1};
        return load_layer(c, m, &s);
    }
    case RNC_REC_LAST_STEP: {
#if !defined(RNC_NO_CHUNK) /* the output is the mean of each step's positions: nothing to pool */
        if (m->positions) return fail(c, FIELD(rec, kind), MSG_POS_POOL, m->positions, 0, 0, NULL);
#endif
#if defined(RNC_NO_ATTN) /* a 48-byte record (the attention flag's) is refused by its size */
        if (size != RNC_SIZE_rec_last_step)
#else
        if (size < RNC_SIZE_rec_last_step)
#endif
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_last_step, 0, NULL);
        const uint32_t flags = rnc_rec_last_step_flags(r);
#if !defined(RNC_NO_ATTN) /* 16 bytes, 48 with the attention flag (the attnpool tail) */
        const uint32_t want = RNC_SIZE_rec_last_step + (flags & RNC_LAST_STEP_FLAG_ATTN ? RNC_SIZE_attnpool : 0);
        if (size != want) return fail(c, fsize, MSG_EXPECT, size, want, 0, NULL);
#endif
        CHECK_RESERVED(c, rec_last_step, r);
        uint32_t known = RNC_LAST_STEP_FLAG_BIDIR; /* a left-out pooling's flag is an unknown bit */
#if !defined(RNC_NO_MEAN)
        known |= RNC_LAST_STEP_FLAG_MEAN | RNC_LAST_STEP_FLAG_MAX | RNC_LAST_STEP_FLAG_LAST;
#endif
#if !defined(RNC_NO_ATTN)
        known |= RNC_LAST_STEP_FLAG_ATTN;
#endif
        if (flags & ~known) return fail(c, FIELD(rec_last_step, flags), MSG_FLAGS, flags, known, 0, NULL);
#if !defined(RNC_NO_MEAN)
        if (flags & RNC_LAST_STEP_FLAG_LAST && (flags & RNC_LAST_STEP_FLAG_ATTN ||
                                                !(flags & (RNC_LAST_STEP_FLAG_MEAN | RNC_LAST_STEP_FLAG_MAX))))
            return fail(c, FIELD(rec_last_step, flags), MSG_LAST_FLAGS, flags, 0, 0, NULL);
        /* BIDIR is the last step's: with mean or max only when the last step is a part (LAST) */
        const int bidir_alone = (flags & RNC_LAST_STEP_FLAG_BIDIR) && !(flags & RNC_LAST_STEP_FLAG_LAST);
        if (flags & RNC_LAST_STEP_FLAG_MEAN && !(flags & RNC_LAST_STEP_FLAG_ATTN)) {
            if (bidir_alone) return fail(c, FIELD(rec_last_step, flags), MSG_MEAN_BIDIR, flags, 0, 0, NULL);
            if (m->precision == RNC_FILE_PRECISION_INT)
                return fail(c, FIELD(rec_last_step, flags), MSG_MEAN_INT, flags, 0, 0, NULL);
            m->last_step_mean = 1; /* the running sum of c->feat floats, then the step count */
            m->mean_off = reserve_pool_row(c, m, 1);
        }
        if (flags & RNC_LAST_STEP_FLAG_MAX) {
            if (flags & RNC_LAST_STEP_FLAG_ATTN || bidir_alone)
                return fail(c, FIELD(rec_last_step, flags), MSG_MAX_FLAGS, flags, 0, 0, NULL);
            if (m->precision == RNC_FILE_PRECISION_INT)
                return fail(c, FIELD(rec_last_step, flags), MSG_MAX_INT, flags, 0, 0, NULL);
            m->last_step_max = 1; /* the running maxima of c->feat floats, then the seen flag (1: a step) */
            m->max_off = reserve_pool_row(c, m, 1);
        }
        if (m->last_step_mean | m->last_step_max) { /* the parts [last | mean | max] side by side */
            m->last_step_last = (flags & RNC_LAST_STEP_FLAG_LAST) != 0;
            c->feat *= m->last_step_last + m->last_step_mean + m->last_step_max;
            if (c->feat > c->max_feat) c->max_feat = c->feat;
            if (c->feat > m->front_w) m->front_w = (size_t)c->feat; /* rnc_step's pooled rows (fa, fb) */
        }
#endif
#if !defined(RNC_NO_ATTN)
        if (flags & RNC_LAST_STEP_FLAG_ATTN) {
            if (flags & (RNC_LAST_STEP_FLAG_BIDIR | RNC_LAST_STEP_FLAG_MEAN))
                return fail(c, FIELD(rec_last_step, flags), MSG_ATTN_FLAGS, flags, 0, 0, NULL);
            if (m->precision == RNC_FILE_PRECISION_INT)
                return fail(c, FIELD(rec_last_step, flags), MSG_ATTN_INT, flags, 0, 0, NULL);
            const unsigned char *t = r + RNC_SIZE_rec_last_step;
            const uint32_t A = rnc_attnpool_attention_size(t), F = rnc_attnpool_features(t);
            if (A < 1 || A > RNC_FILE_MAX_FEATURES)
                return fail(c, "attnpool.attention_size", MSG_RANGE, A, 1, RNC_FILE_MAX_FEATURES, NULL);
            if (F != c->feat) return fail(c, "attnpool.features", MSG_EXPECT, F, c->feat, 0, NULL);
            TRY(get_vector(c, "attnpool.weight", rnc_attnpool_weight(t), (uint64_t)A * F, &m->attn_w));
            TRY(get_vector(c, "attnpool.bias", rnc_attnpool_bias(t), A, &m->attn_b));
            TRY(get_vector(c, "attnpool.score", rnc_attnpool_score(t), A, &m->attn_v));
            /* the running weighted sum of F floats, the running max and sum of exponentials */
            m->attn = 1;
            m->attn_a = A;
            m->mean_off = reserve_pool_row(c, m, 2);
        }
#endif
        return load_last_step(c, m, FIELD(rec_last_step, flags), flags, flags & RNC_LAST_STEP_FLAG_BIDIR);
    }
    case RNC_REC_LINEAR: {
        static const head_names hn = {"in_features", "out_features", "activation", "in_scale",
                                      "weight", "scale", "bias"};
#if !defined(RNC_NO_INT)
        if (m->precision == RNC_FILE_PRECISION_INT) return load_int_head(c, m, r, size);
#endif
        if (size != RNC_SIZE_rec_linear)
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_linear, 0, NULL);
        CHECK_RESERVED(c, rec_linear, r);
        return load_head(c, m, &hn, rnc_rec_linear_in_features(r), rnc_rec_linear_out_features(r),
                         rnc_rec_linear_activation(r), rnc_rec_linear_in_scale(r), rnc_rec_linear_weight(r),
                         rnc_rec_linear_scale(r), rnc_rec_linear_bias(r));
    }
    case RNC_REC_FRAME_CONV:
    case RNC_REC_POINTWISE:
    case RNC_REC_MAGNITUDE:
    case RNC_REC_LAYER_NORM:
    case RNC_REC_SCALE_SHIFT:
    case RNC_REC_CONV_TIME:
    case RNC_REC_RESIDUAL:
    case RNC_REC_POOL_TIME:
#if !defined(RNC_NO_CHUNK)
    case RNC_REC_CONCAT:
    case RNC_REC_INSTANCE_NORM:
#endif
#if !defined(RNC_NO_POST_CONV)
    case RNC_REC_MUL_HALVES:
#endif
    case RNC_REC_LOG_MEL: return load_front(c, m, r, size);
#if !defined(RNC_NO_CHUNK)
    case RNC_REC_POSITIONS: { /* the front-end's row: P steps of features / P each (no front op) */
        if (size != RNC_SIZE_rec_positions)
            return fail(c, fsize, MSG_EXPECT, size, RNC_SIZE_rec_positions, 0, NULL);
        CHECK_RESERVED(c, rec_positions, r);
        const uint64_t n = rnc_rec_positions_features(r), P = rnc_rec_positions_positions(r);
        if (n != c->feat) return fail(c, FIELD(rec_positions, features), MSG_EXPECT, n, c->feat, 0, NULL);
        if (P < 2 || n % P) return fail(c, FIELD(rec_positions, positions), MSG_POSITIONS, P, n, 0, NULL);
        if (m->seq_norm) return fail(c, FIELD(rec, kind), MSG_POS_SEQ_NORM, P, 0, 0, NULL);
        m->positions = (uint32_t)P;
        c->feat = n / P;
        return RNC_OK;
    }
#endif
    default: return RNC_E_UNSUPPORTED; /* next_stage() refused it already */
    }
}

static rnc_status load_v2(rnc_ctx *c, rnc_model *m, const unsigned char *b, size_t len)
{
    TRY(begin(c, b, len, RNC_SIZE_hdr2));
    const uint32_t prec = rnc_hdr2_precision(b), in_size = rnc_hdr2_input_size(b);
    const uint32_t nrec = rnc_hdr2_num_records(b), rsize = rnc_hdr2_records_size(b);
    if (rnc_hdr2_header_size(b) != RNC_V2_HEADER_SIZE)
        return fail(c, FIELD(hdr2, header_size), MSG_EXPECT, rnc_hdr2_header_size(b), RNC_V2_HEADER_SIZE, 0,
                    NULL);
    if (prec >= RNC_PRECISION_COUNT && prec != RNC_FILE_PRECISION_INT)
        return fail(c, FIELD(hdr2, precision), MSG_RANGE, prec, 0, RNC_FILE_PRECISION_INT, NULL);
    if (rnc_hdr2_flags(b) != 0) return fail(c, FIELD(hdr2, flags), MSG_FLAGS, rnc_hdr2_flags(b), 0, 0, NULL);
    CHECK_RESERVED(c, hdr2, b);
    if (nrec == 0) return fail(c, FIELD(hdr2, num_records), MSG_RANGE, nrec, 1, 0xFFFFFFFFu, NULL);
    if (in_size > RNC_MAX_FEATURES)
        return fail(c, FIELD(hdr2, input_size), MSG_RANGE, in_size, 0, RNC_MAX_FEATURES, NULL);
    if (rsize > c->size - RNC_SIZE_hdr2)
        return fail(c, FIELD(hdr2, records_size), MSG_RECORDS_SIZE, rsize, c->size - RNC_SIZE_hdr2, 0, NULL);
    const uint64_t rec_end = (uint64_t)RNC_SIZE_hdr2 + rsize;
    c->data_start = (rec_end + RNC_ALIGN - 1) & ~(uint64_t)(RNC_ALIGN - 1);
    if (c->data_start > c->size)
        return fail(c, FIELD(hdr2, records_size), MSG_TENSOR_AREA, c->data_start, c->size, 0, NULL);

    /* 1. structure: nrec records of size >= 8, multiples of 8, filling records_size exactly */
    uint64_t pos = RNC_SIZE_hdr2;
    for (uint32_t i = 0; i < nrec; ++i) {
        c->part = i;
        if (rec_end - pos < RNC_SIZE_rec)
            return fail(c, FIELD(rec, size), MSG_REC_SHORT, pos, rec_end - pos, 0, NULL);
        const uint32_t size = rnc_rec_size(b + pos);
        if (size < RNC_SIZE_rec || size % 8 || size > rec_end - pos)
            return fail(c, FIELD(rec, size), MSG_REC_SIZE, size, rec_end - pos, 0, NULL);
        pos += size;
    }
    c->part = PART_HEADER;
    if (pos != rec_end) return fail(c, FIELD(hdr2, records_size), MSG_REC_END, rsize, nrec, pos, NULL);

    /* 2. sequence: only what the executor runs; anything else (unknown kinds included) is a file
     * this library cannot run */
    int stage = 0;
    pos = RNC_SIZE_hdr2;
    for (uint32_t i = 0; i < nrec; ++i) {
        const uint32_t kind = rnc_rec_kind(b + pos);
        if (prec == RNC_FILE_PRECISION_INT && kind != RNC_REC_RECURRENT && kind != RNC_REC_LAST_STEP &&
            kind != RNC_REC_LINEAR) { /* an integer model: recurrent+ [last_step] [linear] */
            const char *k = kind_name(kind);
            c->part = i;
            return fail(c, FIELD(rec, kind), MSG_INT_KIND, kind, 0, 0, k);
        }
        const int next = next_stage(stage, kind);
        if (next < 0) {
            const uint64_t a[1] = {kind};
            const char *str[2] = {kind_name(kind), stage_place[stage]};
            c->part = i;
            return fail_with(c, FIELD(rec, kind), MSG_SEQUENCE, a, str);
        }
        stage = next;
        pos += rnc_rec_size(b + pos);
    }
    if (stage < 2 || stage == 5) return fail(c, FIELD(hdr2, num_records), MSG_NO_RECURRENT, nrec, 0, 0, NULL);

    /* 3. contents: the model input is token ids (input_size 0) exactly when an embedding leads */
    const int has_embedding = rnc_rec_kind(b + RNC_SIZE_hdr2) == RNC_REC_EMBEDDING;
    if (has_embedding && in_size != 0)
        return fail(c, FIELD(hdr2, input_size), MSG_INPUT_IDS, in_size, 0, 0, NULL);
    if (!has_embedding && in_size == 0)
        return fail(c, FIELD(hdr2, input_size), MSG_INPUT_FEATURES, RNC_MAX_FEATURES, 0, 0, NULL);
    m->buf = b;
    m->file_size = c->size;
#if defined(RNC_NO_Q4)
    if (prec == RNC_Q4)
        return fail(c, FIELD(hdr2, precision), MSG_LEFT_OUT, prec, 0, 0, "q4 weights (built with RNC_NO_Q4)");
#endif
#if defined(RNC_NO_INT)
    if (prec == RNC_FILE_PRECISION_INT)
        return fail(c, FIELD(hdr2, precision), MSG_LEFT_OUT, prec, 0, 0,
                    "fully-integer models (built with RNC_NO_INT)");
#endif
    m->precision = prec;
    m->input_size = in_size;
    c->feat = c->max_feat = in_size;
    pos = RNC_SIZE_hdr2;
    /* i < MAX_PARTS here: the sequence admits at most 1 embedding, 1 last_step and 1 linear, the
     * 17th recurrent record is refused (MSG_LAYERS) and the 33rd per-step one (MSG_FRONT_COUNT)
     * before any later record is reached */
    for (uint32_t i = 0; i < nrec; ++i) {
        const uint32_t size = rnc_rec_size(b + pos);
        c->part = i;
        c->part_kind[i] = (uint8_t)rnc_rec_kind(b + pos);
        c->part_layer[i] = (uint8_t)m->num_layers;
        TRY(load_record(c, m, b + pos, size));
        pos += size;
    }
    return finish(c, m);
}

rnc_status rnc__load(rnc_model *m, const unsigned char *b, size_t len)
{
    rnc_ctx c;
    memset(&c, 0, sizeof(c));
    c.buf = b;
    c.err = m->error;
    c.part = PART_HEADER;
    c.dir = NO_DIR;
    /* magic and version sit at the same place in every version */
    if (len < 4) return fail(&c, FIELD(hdr1, magic), MSG_SHORT, len, 4, 0, NULL);
    if (rnc_hdr1_magic(b) != RNC_MAGIC)
        return fail(&c, FIELD(hdr1, magic), MSG_MAGIC, rnc_hdr1_magic(b), 0, 0, NULL);
    if (len < 8) return fail(&c, FIELD(hdr1, version), MSG_SHORT, len, 8, 0, NULL);
    c.version = rnc_hdr1_version(b);
    switch (c.version) {
    case RNC_V1: return load_v1(&c, m, b, len);
    case RNC_V2: return load_v2(&c, m, b, len);
    default: return fail(&c, FIELD(hdr1, version), MSG_VERSION, c.version, 0, 0, NULL);
    }
}
