/* rnncore-bench: latency and throughput of the rnncore C core, with no Python.
 *
 * Loads a .rnc model file, or builds a random model of a given cell and size in a static buffer,
 * then times streaming steps (one rnc_step per call, state carried) and whole sequences
 * (rnc_run over T steps), and prints latency percentiles and multiply-accumulates per second as a
 * table, or as JSON with --json. Meant to be cross-compiled and run on a board
 * (docs/deploy-raspberry-pi.md).
 *
 *   rnncore-bench [--model FILE.rnc | --cell gru|lstm|rnn_tanh|rnn_relu --hidden H
 *                  [--input I] [--layers L] [--precision q8|f32]]
 *                 [--isa NAME] [--batch B] [--steps N] [--seq T] [--repeat R] [--warmup W]
 *                 [--breakdown [--part KEY]] [--json]
 *
 * --repeat 0 skips the sequences, --steps 0 the streaming steps (with --warmup 0, e.g. to count
 * the instructions of N steps under qemu: tools/arm_estimates.py).
 *
 * --breakdown (batch 1, unidirectional, no embedding) times the parts of one rnc_step, each
 * through the kernel-table row the model's plan runs (rnc_model_plan_row): the whole step, the
 * quantisation of x and of h (the QUANTIZE row), the products W_ih x and W_hh h (the GEMV row; the
 * SPGEMV row for a layer with block-sparse weights, whose cell row is then its *_sparse one),
 * the cell row (which quantises h, multiplies and updates), the state store (h' copied to y),
 * and by difference the cell update (cell - products - quantise h) and the rest of the step
 * (checks, dispatch: step - quantise x - cells - store). Each part is a loop of --steps calls,
 * timed --repeat times (interleaved with the other parts); the minimum per call is printed.
 * --part KEY (step, quantise_x, quantise_h, products, cell, store) runs only that part, e.g. to
 * count its instructions per call under qemu (N and 2N calls, --warmup 0 --repeat 1).
 *
 * All memory is static (sizes below, overridable with -D at compile time).
 */
#define _POSIX_C_SOURCE 200112L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnncore.h"
#include "../src/rnc_layout.h" /* the .rnc byte layout (src/ is not on the include path) */
#include "../src/internal.h"   /* the kernel table, for --breakdown */

#ifndef RNC_BENCH_MODEL_BYTES
#define RNC_BENCH_MODEL_BYTES (64u << 20) /* largest model file */
#endif
#ifndef RNC_BENCH_ARENA_BYTES
#define RNC_BENCH_ARENA_BYTES (64u << 20) /* state + scratch + inputs + outputs */
#endif
#define MAX_SAMPLES 100000

#if defined(__GNUC__)
#define ALIGN64 __attribute__((aligned(64)))
#else
#define ALIGN64
#endif

static unsigned char g_model[RNC_BENCH_MODEL_BYTES] ALIGN64;
static unsigned char g_arena[RNC_BENCH_ARENA_BYTES] ALIGN64;
static size_t g_arena_used;
static double g_samples[MAX_SAMPLES];

static void *arena(size_t bytes)
{
    size_t off = (g_arena_used + 63u) & ~(size_t)63u;
    if (off > sizeof g_arena || bytes > sizeof g_arena - off) return NULL;
    g_arena_used = off + bytes;
    return g_arena + off;
}

/* ------------------------------------------------------------------ random model writer */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float rndf(float a) /* uniform in [-a, a] */
{
    return a * (2.0f * (float)(rnd32() & 0xFFFFFF) / 16777215.0f - 1.0f);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void put_f32(unsigned char *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(p, v);
}
/* r16, r4: internal.h */
static size_t r64(size_t n) { return (n + 63u) & ~(size_t)63u; }

typedef struct {
    unsigned kind, gates, hidden, input, layers, q8;
} bench_cfg;

/* Appends a tensor of n bytes at the 64-aligned end; writes its (offset, nbytes) ref at ref. */
static unsigned char *alloc_tensor(size_t *end, size_t n, unsigned char *ref)
{
    size_t off = r64(*end);
    if (off + n > sizeof g_model || off > 0xFFFFFFFFu) return NULL;
    put_u32(ref + RNC_AT_ref_offset, (uint32_t)off);
    put_u32(ref + RNC_AT_ref_nbytes, (uint32_t)n);
    *end = off + n;
    return g_model + off;
}

/* A random matrix of `gates` gates of `h` units (each gate padded to hp rows) x k inputs, in the
 * packed layout of the model's precision, with its per-row scales (q8) and a bias. */
static int write_matrix(const bench_cfg *c, size_t *end, unsigned char *ref_w, unsigned char *ref_s,
                        unsigned char *ref_b, size_t k)
{
    const size_t hp = r16(c->hidden), rows = c->gates * hp;
    const float a = 1.0f / sqrtf((float)k);
    if (c->q8) {
        const size_t kp = r4(k);
        int8_t *w = (int8_t *)alloc_tensor(end, rows * kp, ref_w);
        unsigned char *s = alloc_tensor(end, rows * 4, ref_s);
        if (!w || !s) return -1;
        memset(w, 0, rows * kp);
        for (size_t r = 0; r < rows; ++r) {
            const int real = (r % hp) < c->hidden;
            put_f32(s + 4 * r, real ? a / 127.0f : 0.0f);
            if (!real) continue;
            for (size_t j = 0; j < k; ++j) {
                int v = (int)(rnd32() % 255u) - 127;
                w[((r / 16) * (kp / 4) + j / 4) * 64 + (r % 16) * 4 + j % 4] = (int8_t)v;
            }
        }
    } else {
        unsigned char *w = alloc_tensor(end, rows * k * 4, ref_w);
        if (!w) return -1;
        memset(w, 0, rows * k * 4);
        for (size_t r = 0; r < rows; ++r) {
            if ((r % hp) >= c->hidden) continue;
            for (size_t j = 0; j < k; ++j) put_f32(w + 4 * (((r / 16) * k + j) * 16 + r % 16), rndf(a));
        }
    }
    unsigned char *b = alloc_tensor(end, rows * 4, ref_b);
    if (!b) return -1;
    for (size_t r = 0; r < rows; ++r) put_f32(b + 4 * r, (r % hp) < c->hidden ? rndf(0.1f) : 0.0f);
    return 0;
}

static int build_random_model(const bench_cfg *c, size_t *file_size)
{
    /* a format version 1 file (the loader reads 1 and 2), fields placed by src/rnc_layout.h */
    memset(g_model, 0, sizeof g_model);
    unsigned char *h = g_model;
    memcpy(h, "RNCM", 4);
    put_u32(h + RNC_AT_hdr1_version, RNC_V1);
    put_u32(h + RNC_AT_hdr1_header_size, RNC_SIZE_hdr1);
    put_u32(h + RNC_AT_hdr1_precision, c->q8 ? RNC_Q8 : RNC_F32);
    put_u32(h + RNC_AT_hdr1_num_layers, c->layers);
    put_u32(h + RNC_AT_hdr1_input_size, c->input);
    put_u32(h + RNC_AT_hdr1_layer_desc_size, RNC_SIZE_desc1);
    size_t end = r64(RNC_SIZE_hdr1 + RNC_SIZE_desc1 * (size_t)c->layers);
    for (unsigned l = 0; l < c->layers; ++l) {
        unsigned char *d = g_model + RNC_SIZE_hdr1 + RNC_SIZE_desc1 * l;
        const size_t in = l == 0 ? c->input : c->hidden;
        put_u32(d + RNC_AT_desc1_kind, c->kind);
        /* GRU: reset_after (PyTorch's form) */
        put_u32(d + RNC_AT_desc1_flags, c->kind == RNC_GRU ? RNC_LAYER_FLAG_RESET_AFTER : 0u);
        put_u32(d + RNC_AT_desc1_input_size, (uint32_t)in);
        put_u32(d + RNC_AT_desc1_hidden_size, c->hidden);
        unsigned char *w = d + RNC_AT_desc1_dir0; /* direction 0's tensor references */
        if (write_matrix(c, &end, w + RNC_AT_cellw_w_ih, w + RNC_AT_cellw_s_ih, w + RNC_AT_cellw_b_ih, in) ||
            write_matrix(c, &end, w + RNC_AT_cellw_w_hh, w + RNC_AT_cellw_s_hh, w + RNC_AT_cellw_b_hh,
                         c->hidden))
            return -1;
    }
    put_u32(h + RNC_AT_hdr1_file_size, (uint32_t)end);
    uint32_t crc = 0;
    if (rnc_crc32(g_model + RNC_CRC_START, end - RNC_CRC_START, &crc) != RNC_OK) return -1;
    put_u32(h + RNC_AT_hdr1_crc32, crc);
    *file_size = end;
    return 0;
}

static int load_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rnncore-bench: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(g_model, 1, sizeof g_model, f);
    if (ferror(f)) { /* e.g. a directory: fopen succeeds, reading fails (EISDIR) */
        fprintf(stderr, "rnncore-bench: cannot read %s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        fprintf(stderr, "rnncore-bench: %s is larger than %u bytes (rebuild with a larger "
                        "-DRNC_BENCH_MODEL_BYTES)\n", path, (unsigned)sizeof g_model);
        return -1;
    }
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------ timing */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    size_t n;
    double min, p50, p90, p99, max, mean;
} stats;

static stats summarize(double *v, size_t n)
{
    stats s;
    double sum = 0;
    qsort(v, n, sizeof *v, cmp_double);
    for (size_t i = 0; i < n; ++i) sum += v[i];
    s.n = n;
    s.min = v[0];
    s.max = v[n - 1];
    s.p50 = v[(n - 1) * 50 / 100];
    s.p90 = v[(n - 1) * 90 / 100];
    s.p99 = v[(n - 1) * 99 / 100];
    s.mean = sum / (double)n;
    return s;
}

/* Multiply-accumulates of one time step for one stream (all layers, both directions, head). */
static double macs_per_step(const rnc_model *m)
{
    rnc_model_info mi;
    double macs = 0;
    rnc_model_get_info(m, &mi);
    for (uint32_t l = 0; l < mi.num_layers; ++l) {
        rnc_layer_info li;
        rnc_layer_get_info(m, l, &li);
        const double g = li.kind == RNC_GRU ? 3 : li.kind == RNC_LSTM ? 4 : 1;
        macs += li.directions * g * li.hidden_size * (double)(li.input_size + li.hidden_size);
    }
    if (mi.has_head) {
        rnc_layer_info li;
        rnc_layer_get_info(m, mi.num_layers - 1, &li);
        macs += (double)mi.output_size * li.directions * li.hidden_size;
    }
    return macs;
}

static const char *kind_name(uint32_t k)
{
    static const char *names[] = {"rnn_tanh", "rnn_relu", "gru", "lstm"};
    return k < 4 ? names[k] : "?";
}

static const char *prec_name(uint32_t p)
{
    return p == RNC_F32 ? "f32" : p == RNC_Q8 ? "q8" : p == RNC_Q4 ? "q4" : p == RNC_INT8 ? "int8" : "?";
}

static int usage(void)
{
    fprintf(stderr,
            "usage: rnncore-bench [--model FILE.rnc | --cell gru|lstm|rnn_tanh|rnn_relu --hidden H\n"
            "                      [--input I] [--layers L] [--precision q8|f32]]\n"
            "                     [--isa NAME] [--batch B] [--steps N] [--seq T] [--repeat R]"
            " [--warmup W] [--breakdown [--part KEY]] [--json]\n");
    return 2;
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        rnc_status st_ = (call);                                                                   \
        if (st_ != RNC_OK) {                                                                       \
            fprintf(stderr, "rnncore-bench: %s: %s\n", #call, rnc_status_str(st_));                \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ --breakdown */

enum { P_STEP, P_QX, P_QH, P_PROD, P_CELL, P_STORE, P_TIMED, P_UPDATE = P_TIMED, P_REST, P_COUNT };
static const char *const part_name[P_COUNT] = {
    "step (rnc_step)", "quantise x", "quantise h", "products W_ih x + W_hh h", "cell (whole row)",
    "state store (h' -> y)", "cell update (by difference)", "rest: checks, dispatch (by difference)"};
static const char *const part_key[P_COUNT] = {"step", "quantise_x", "quantise_h", "products",
                                              "cell", "store", "update", "rest"};

typedef struct {
    const rnc_model *m;
    rnc_state *s;
    const float *x;
    float *y;
    int8_t *xq[RNC_MAX_LAYERS], *hq;
    float sx[RNC_MAX_LAYERS], sh;
    void *acc, *acc2, *work;
    int q8;
    const rnc_kernel *quant, *gemv, *spgemv, *cell[RNC_MAX_LAYERS];
    rnc_cell_args args[RNC_MAX_LAYERS];
} bd_ctx;

/* one call of part p (every layer's share of it) */
static int bd_part(bd_ctx *c, int p)
{
    const rnc_model *m = c->m;
    const float *in = c->x;
    size_t in_w = m->input_size;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        const int R = (int)(L->gates * L->hp);
        rnc_cell_args *a = &c->args[l];
        switch (p) {
        case P_QX:
            if (c->q8) c->quant->fn.quantize(in, in_w, L->kx, L->x_scale, L->x_inv, c->xq[l], &c->sx[l]);
            break;
        case P_QH:
            if (c->q8) c->quant->fn.quantize(a->h, L->hidden_size, L->kh, L->h_scale[0], L->h_inv[0], c->hq,
                                             &c->sh);
            break;
        case P_PROD:
            if (L->sparse) { /* rnc_sparse_q8 of each matrix (bh 0: its dense packed form) */
                c->spgemv->fn.gemm_q8((const int8_t *)(const void *)&L->dir[0].sp_ih, R, (int)L->kx, 1,
                                      c->xq[l], (int)L->kx, (int32_t *)c->acc, R);
                c->spgemv->fn.gemm_q8((const int8_t *)(const void *)&L->dir[0].sp_hh, R, (int)L->kh, 1,
                                      c->hq, (int)L->kh, (int32_t *)c->acc2, R);
            } else if (c->q8) {
                c->gemv->fn.gemm_q8((const int8_t *)L->dir[0].w_ih, R, (int)L->kx, 1, c->xq[l],
                                    (int)L->kx, (int32_t *)c->acc, R);
                c->gemv->fn.gemm_q8((const int8_t *)L->dir[0].w_hh, R, (int)L->kh, 1, c->hq,
                                    (int)L->kh, (int32_t *)c->acc2, R);
            } else {
                c->gemv->fn.gemm_f32((const float *)L->dir[0].w_ih, R, (int)L->input_size, 1, in,
                                     (int)in_w, (float *)c->acc, R);
                c->gemv->fn.gemm_f32((const float *)L->dir[0].w_hh, R, (int)L->hidden_size, 1,
                                     a->h, (int)L->hidden_size, (float *)c->acc2, R);
            }
            break;
        case P_CELL:
            c->cell[l]->fn.cell(a);
            break;
        default:
            break;
        }
        in = a->h;
        in_w = L->hidden_size;
    }
    if (p == P_STORE) memcpy(c->y, in, sizeof(float) * in_w);
    if (p == P_STEP) return rnc_step(m, c->s, c->x, c->y) != RNC_OK;
    return 0;
}

static int run_breakdown(const rnc_model *m, rnc_state *s, const float *x, float *y, size_t iters,
                         size_t rounds, size_t warmup, int json, const char *isa_str, int only)
{
    bd_ctx c;
    memset(&c, 0, sizeof c);
    rnc_model_info mi;
    rnc_model_get_info(m, &mi);
    if (s->batch != 1 || mi.bidirectional || mi.uses_ids || mi.has_head) {
        fprintf(stderr, "rnncore-bench: --breakdown needs batch 1 and a unidirectional model "
                        "without embedding or head\n");
        return 1;
    }
    if (!iters) iters = 1;
    if (!rounds) rounds = 1;
    c.m = m, c.s = s, c.x = x, c.y = y, c.q8 = m->precision == RNC_Q8;
    size_t row, gemv_row, quant_row = 0, spgemv_row = 0, cell_rows[RNC_MAX_LAYERS];
    int any_sparse = 0, any_shared = 0;
    const uint32_t shared_flags = RNC_LAYER_FLAG_SHARED_IH | RNC_LAYER_FLAG_SHARED_HH;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        any_sparse |= m->layer[l].sparse != 0;
        any_shared |= (m->layer[l].sparse & shared_flags) != 0;
    }
    CHECK(rnc_model_plan_row(m, RNC_PLAN_MODEL, RNC_OP_GEMV, m->precision, 1, RNC_IN_X, 0, &gemv_row));
    c.gemv = &rnc__kernels[gemv_row];
    if (c.q8) {
        CHECK(rnc_model_plan_row(m, RNC_PLAN_MODEL, RNC_OP_QUANTIZE, RNC_Q8, 1, RNC_IN_X, 0, &quant_row));
        c.quant = &rnc__kernels[quant_row];
    }
    if (any_sparse) { /* block-sparse layers: the SPGEMV(_SHARED) row and the *_SPARSE / _SHARED cells */
        CHECK(rnc_model_plan_row(m, RNC_PLAN_MODEL, any_shared ? RNC_OP_SPGEMV_SHARED : RNC_OP_SPGEMV, RNC_Q8, 1,
                                 RNC_IN_X, 0, &spgemv_row));
        c.spgemv = &rnc__kernels[spgemv_row];
    }
    size_t max_r = 0, work = 0;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        static const uint32_t ops[] = {RNC_OP_RNN_STEP, RNC_OP_RNN_STEP, RNC_OP_GRU_STEP, RNC_OP_LSTM_STEP};
        const uint32_t op = (L->sparse & shared_flags) ? (L->kind == RNC_GRU ? RNC_OP_GRU_STEP_SHARED
                                                                              : RNC_OP_LSTM_STEP_SHARED)
                            : ops[L->kind & 3u] + (L->sparse ? RNC_OP_RNN_STEP_SPARSE - RNC_OP_RNN_STEP : 0);
        CHECK(rnc_model_plan_row(m, l, op, m->precision, 1, RNC_IN_X,
                                 L->dir[0].hh_sums != NULL, &row));
        cell_rows[l] = row;
        c.cell[l] = &rnc__kernels[row];
        const rnc_cell_work cw = rnc__cell_work(L->gates, L->hidden_size, 1);
        if (cw.total > work) work = cw.total;
        if ((size_t)L->gates * L->hp > max_r) max_r = (size_t)L->gates * L->hp;
        c.xq[l] = arena(L->kx + 64);
        if (!c.xq[l]) return 1;
    }
    c.hq = arena(m->max_kpad + 64);
    c.acc = arena(4 * max_r);
    c.acc2 = arena(4 * max_r);
    c.work = arena(work);
    if (!c.hq || !c.acc || !c.acc2 || !c.work) {
        fprintf(stderr, "rnncore-bench: working memory exceeds the static arena\n");
        return 1;
    }
    /* the cells' arguments as rnc_step builds them (model.c: cell_args_base) */
    for (uint32_t l = 0; l < m->num_layers; ++l) {
        const rnc_layer *L = &m->layer[l];
        rnc_cell_args *a = &c.args[l];
        a->kind = L->kind;
        a->reset_after = L->reset_after;
        a->batch = 1;
        a->I = L->input_size;
        a->H = L->hidden_size;
        a->Hp = L->hp;
        a->G = L->gates;
        a->w_ih = L->sparse ? (const void *)&L->dir[0].sp_ih : L->dir[0].w_ih;
        a->w_hh = L->sparse ? (const void *)&L->dir[0].sp_hh : L->dir[0].w_hh;
        a->s_ih = L->dir[0].s_ih;
        a->s_hh = L->dir[0].s_hh;
        a->b_ih = L->dir[0].b_ih;
        a->b_hh = L->dir[0].b_hh;
        a->h_scale = c.q8 ? L->h_scale[0] : 0.0f;
        a->h_inv = c.q8 ? L->h_inv[0] : 0.0f;
        a->h = s->h + L->h_offset;
        a->c = L->kind == RNC_LSTM ? s->c + L->c_offset : NULL;
        a->hh_sums = L->dir[0].hh_sums;
        a->work = c.work;
        if (c.q8) {
            a->xq = c.xq[l];
            a->sx = &c.sx[l];
            a->ldxq = L->kx;
        } else {
            a->x = l == 0 ? x : c.args[l - 1].h;
            a->ldx = l == 0 ? m->input_size : m->layer[l - 1].hidden_size;
        }
    }
    double best[P_COUNT];
    for (int p = 0; p < P_COUNT; ++p) best[p] = 1e300;
    for (int p = 0; p < P_TIMED; ++p)
        for (size_t i = 0; i < warmup; ++i)
            if (bd_part(&c, p)) return 1;
    /* a state in its working range (a zero h is quantised by a shortcut), and the quantised x
     * the cells read */
    for (int i = 0; i < 8; ++i)
        if (bd_part(&c, P_STEP)) return 1;
    bd_part(&c, P_QX);
    for (size_t r = 0; r < rounds; ++r)
        for (int p = 0; p < P_TIMED; ++p) {
            if (only >= 0 && p != only) continue;
            if (!c.q8 && (p == P_QX || p == P_QH)) {
                best[p] = 0;
                continue;
            }
            const double t0 = now_us();
            for (size_t i = 0; i < iters; ++i)
                if (bd_part(&c, p)) {
                    fprintf(stderr, "rnncore-bench: step failed\n");
                    return 1;
                }
            const double dt = (now_us() - t0) / (double)iters;
            if (dt < best[p]) best[p] = dt;
        }
    if (only >= 0) {
        printf(json ? "{\"part\": \"%s\", \"us\": %.5f}\n" : "%s %.5f us per call\n",
               part_key[only], best[only]);
        return 0;
    }
    best[P_UPDATE] = best[P_CELL] - best[P_PROD] - best[P_QH];
    best[P_REST] = best[P_STEP] - best[P_QX] - best[P_CELL] - best[P_STORE];
    const char *rows[P_COUNT];
    for (int p = 0; p < P_COUNT; ++p) rows[p] = "";
    rows[P_QX] = rows[P_QH] = c.q8 ? rnc__kernels[quant_row].name : "-";
    rows[P_PROD] = rnc__kernels[any_sparse ? spgemv_row : gemv_row].name;
    rows[P_CELL] = rnc__kernels[cell_rows[0]].name;
    rows[P_STEP] = "rnc_step";
    rows[P_STORE] = "memcpy";
    rnc_layer_info l0;
    rnc_layer_get_info(m, 0, &l0);
    if (json) {
        printf("{\"isa\": \"%s\", \"precision\": \"%s\", \"cell\": \"%s\", \"hidden\": %u, "
               "\"input\": %u, \"layers\": %u, \"iters\": %zu, \"rounds\": %zu, \"parts\": [",
               isa_str, c.q8 ? "q8" : "f32", kind_name(l0.kind), l0.hidden_size, mi.input_size,
               mi.num_layers, iters, rounds);
        for (int p = 0; p < P_COUNT; ++p)
            printf("%s{\"part\": \"%s\", \"row\": \"%s\", \"row_index\": %d, \"us\": %.5f, "
                   "\"share\": %.4f}",
                   p ? ", " : "", part_key[p], rows[p],
                   p == P_QX || p == P_QH ? (c.q8 ? (int)quant_row : -1)
                   : p == P_PROD          ? (int)(any_sparse ? spgemv_row : gemv_row)
                   : p == P_CELL          ? (int)cell_rows[0]
                                          : -1,
                   best[p], best[p] / best[P_STEP]);
        printf("]}\n");
        return 0;
    }
    printf("rnncore-bench --breakdown: %s %s H=%u I=%u layers=%u, isa %s, batch 1\n",
           kind_name(l0.kind), c.q8 ? "q8" : "f32", l0.hidden_size, mi.input_size, mi.num_layers,
           isa_str);
    printf("(minimum over %zu rounds of %zu calls, all layers)\n\n", rounds, iters);
    printf("%-40s %-36s %10s %7s\n", "part", "kernel-table row", "us/step", "share");
    for (int p = 0; p < P_COUNT; ++p)
        printf("%-40s %-36s %10.4f %6.1f%%\n", part_name[p], rows[p], best[p],
               100.0 * best[p] / best[P_STEP]);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *isa_name = NULL;
    bench_cfg cfg = {RNC_GRU, 3, 128, 0, 1, 1};
    size_t batch = 1, steps = 1000, seq = 100, repeat = 20, warmup = 20;
    int json = 0, breakdown = 0, only_part = -1;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--breakdown")) { breakdown = 1; continue; }
        if (!v) return usage();
        ++i;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--isa")) isa_name = v;
        else if (!strcmp(a, "--part")) {
            for (int p = 0; p < P_TIMED; ++p)
                if (!strcmp(v, part_key[p])) only_part = p;
            if (only_part < 0) return usage();
        }
        else if (!strcmp(a, "--cell")) {
            if (!strcmp(v, "gru")) cfg.kind = RNC_GRU, cfg.gates = 3;
            else if (!strcmp(v, "lstm")) cfg.kind = RNC_LSTM, cfg.gates = 4;
            else if (!strcmp(v, "rnn_tanh") || !strcmp(v, "rnn")) cfg.kind = RNC_RNN_TANH, cfg.gates = 1;
            else if (!strcmp(v, "rnn_relu")) cfg.kind = RNC_RNN_RELU, cfg.gates = 1;
            else return usage();
        } else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "q8")) cfg.q8 = 1;
            else if (!strcmp(v, "f32")) cfg.q8 = 0;
            else return usage();
        } else {
            char *e;
            unsigned long n = strtoul(v, &e, 10);
            const int zero_ok = !strcmp(a, "--steps") || !strcmp(a, "--repeat") || !strcmp(a, "--warmup");
            if (*e || (n == 0 && !zero_ok) || n > 100000000ul) return usage();
            if (!strcmp(a, "--hidden")) cfg.hidden = (unsigned)n;
            else if (!strcmp(a, "--input")) cfg.input = (unsigned)n;
            else if (!strcmp(a, "--layers")) cfg.layers = (unsigned)n;
            else if (!strcmp(a, "--batch")) batch = n;
            else if (!strcmp(a, "--steps")) steps = n;
            else if (!strcmp(a, "--seq")) seq = n;
            else if (!strcmp(a, "--repeat")) repeat = n;
            else if (!strcmp(a, "--warmup")) warmup = n;
            else return usage();
        }
    }
    if (steps > MAX_SAMPLES || repeat > MAX_SAMPLES) return usage();
    if (!cfg.input) cfg.input = cfg.hidden;

    size_t len = 0;
    if (model_path) {
        if (load_file(model_path, &len)) return 1;
    } else if (build_random_model(&cfg, &len)) {
        fprintf(stderr, "rnncore-bench: model too large for the static buffer\n");
        return 1;
    }
    static rnc_model model;
    {
        const rnc_status st = rnc_model_init(&model, g_model, len);
        if (st != RNC_OK) { /* the loader's one-line reason */
            const char *why = "";
            rnc_model_error(&model, &why);
            fprintf(stderr, "rnncore-bench: rnc_model_init(%s): %s\n", model_path ? model_path : "model",
                    why[0] ? why : rnc_status_str(st));
            return 1;
        }
    }
    if (isa_name) {
        rnc_isa isa;
        CHECK(rnc_isa_from_name(isa_name, &isa));
        CHECK(rnc_model_set_isa(&model, isa));
    }
    rnc_isa isa;
    const char *isa_str = "?";
    CHECK(rnc_model_get_isa(&model, &isa));
    rnc_isa_name(isa, &isa_str);
    rnc_model_info mi;
    CHECK(rnc_model_get_info(&model, &mi));
    rnc_layer_info l0;
    CHECK(rnc_layer_get_info(&model, 0, &l0));

    size_t state_bytes, scratch_bytes;
    CHECK(rnc_state_size(&model, batch, &state_bytes));
    CHECK(rnc_run_scratch_size(&model, batch, seq, &scratch_bytes));
    void *state_mem = arena(state_bytes), *scratch = arena(scratch_bytes);
    const size_t in_feat = mi.uses_ids ? 1 : mi.input_size;
    float *x = arena(sizeof(float) * batch * seq * in_feat);
    int32_t *ids = arena(sizeof(int32_t) * batch * seq);
    float *y = arena(sizeof(float) * batch * seq * mi.output_size);
    if (!state_mem || !scratch || !x || !ids || !y) {
        fprintf(stderr, "rnncore-bench: working memory exceeds the static arena\n");
        return 1;
    }
    for (size_t i = 0; i < batch * seq * in_feat; ++i) x[i] = rndf(1.0f);
    for (size_t i = 0; i < batch * seq; ++i) ids[i] = (int32_t)(rnd32() % (mi.embed_num ? mi.embed_num : 1));
    rnc_state state;
    CHECK(rnc_state_init(&model, batch, state_mem, state_bytes, &state));
    if (breakdown)
        return run_breakdown(&model, &state, x, y, steps, repeat, warmup, json, isa_str, only_part);

    /* streaming steps: x_t taken from the sequence buffer in turn */
    const int bidir = mi.bidirectional != 0;
    stats st_step = {0, 0, 0, 0, 0, 0, 0};
    if (!bidir && steps) {
        for (size_t i = 0; i < warmup; ++i)
            CHECK(mi.uses_ids ? rnc_step_ids(&model, &state, ids, y) : rnc_step(&model, &state, x, y));
        for (size_t i = 0; i < steps; ++i) {
            const size_t t = i % seq;
            const double t0 = now_us();
            rnc_status s = mi.uses_ids ? rnc_step_ids(&model, &state, ids + t * batch, y)
                                       : rnc_step(&model, &state, x + t * batch * in_feat, y);
            g_samples[i] = now_us() - t0;
            if (s != RNC_OK) {
                fprintf(stderr, "rnncore-bench: step: %s\n", rnc_status_str(s));
                return 1;
            }
        }
        st_step = summarize(g_samples, steps);
    }
    /* whole sequences (two warm-up runs when warmup > 0) */
    const size_t seq_warm = warmup ? 2 : 0;
    for (size_t i = 0; repeat && i < repeat + seq_warm; ++i) {
        CHECK(rnc_state_reset(&state));
        const double t0 = now_us();
        rnc_status s = mi.uses_ids ? rnc_run_ids(&model, &state, ids, NULL, seq, y, scratch, scratch_bytes)
                                   : rnc_run(&model, &state, x, NULL, seq, y, scratch, scratch_bytes);
        const double dt = now_us() - t0;
        if (s != RNC_OK) {
            fprintf(stderr, "rnncore-bench: run: %s\n", rnc_status_str(s));
            return 1;
        }
        if (i >= seq_warm) g_samples[i - seq_warm] = dt;
    }
    stats st_seq = {0, 0, 0, 0, 0, 0, 0};
    if (repeat) st_seq = summarize(g_samples, repeat);

    const double macs = macs_per_step(&model);
    const double step_rate = st_step.n ? macs * (double)batch / st_step.p50 : 0; /* MAC/us = MMAC/s */
    const double seq_rate = st_seq.n ? macs * (double)batch * (double)seq / st_seq.p50 : 0;
    if (json) {
        printf("{\"model\": {\"source\": \"%s\", \"precision\": \"%s\", \"layers\": %u, "
               "\"cell0\": \"%s\", \"hidden0\": %u, \"input_size\": %u, \"output_size\": %u, "
               "\"model_bytes\": %zu, \"macs_per_step\": %.0f},\n",
               model_path ? model_path : "random", prec_name(mi.precision),
               mi.num_layers, kind_name(l0.kind), l0.hidden_size, mi.input_size, mi.output_size,
               len, macs);
        printf(" \"isa\": \"%s\", \"batch\": %zu, \"state_bytes\": %zu, \"scratch_bytes\": %zu,\n",
               isa_str, batch, state_bytes, scratch_bytes);
        if (st_step.n)
            printf(" \"step\": {\"n\": %zu, \"min_us\": %.3f, \"p50_us\": %.3f, \"p90_us\": %.3f, "
                   "\"p99_us\": %.3f, \"max_us\": %.3f, \"mean_us\": %.3f, \"mmac_per_s\": %.1f},\n",
                   st_step.n, st_step.min, st_step.p50, st_step.p90, st_step.p99, st_step.max,
                   st_step.mean, step_rate);
        else
            printf(" \"step\": null,\n");
        printf(" \"sequence\": {\"steps\": %zu, \"n\": %zu, \"min_us\": %.3f, \"p50_us\": %.3f, "
               "\"p90_us\": %.3f, \"p99_us\": %.3f, \"max_us\": %.3f, \"mean_us\": %.3f, "
               "\"mmac_per_s\": %.1f}}\n",
               seq, st_seq.n, st_seq.min, st_seq.p50, st_seq.p90, st_seq.p99, st_seq.max,
               st_seq.mean, seq_rate);
    } else {
        printf("rnncore-bench  model: %s  %s %s H=%u I=%u layers=%u  (%zu bytes, %.0f MAC/step)\n",
               model_path ? model_path : "random", prec_name(mi.precision),
               kind_name(l0.kind), l0.hidden_size, mi.input_size, mi.num_layers, len, macs);
        printf("isa: %s  batch: %zu  state: %zu bytes  run scratch (T=%zu): %zu bytes\n\n", isa_str,
               batch, state_bytes, seq, scratch_bytes);
        printf("%-16s %7s %10s %10s %10s %10s %10s %10s\n", "what", "n", "min_us", "p50_us",
               "p90_us", "p99_us", "mean_us", "MMAC/s");
        if (st_step.n)
            printf("%-16s %7zu %10.2f %10.2f %10.2f %10.2f %10.2f %10.1f\n", "step", st_step.n,
                   st_step.min, st_step.p50, st_step.p90, st_step.p99, st_step.mean, step_rate);
        else
            printf("%-16s (bidirectional model: no streaming step)\n", "step");
        char what[32];
        snprintf(what, sizeof what, "sequence T=%zu", seq);
        printf("%-16s %7zu %10.2f %10.2f %10.2f %10.2f %10.2f %10.1f\n", what, st_seq.n, st_seq.min,
               st_seq.p50, st_seq.p90, st_seq.p99, st_seq.mean, seq_rate);
        printf("\n(MMAC/s from the p50 latency; %s)\n",
               mi.precision == RNC_F32 ? "f32 multiply-accumulates" : "int8 multiply-accumulates");
    }
    return 0;
}
