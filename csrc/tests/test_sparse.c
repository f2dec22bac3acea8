/* Block-sparse q8 kernels (kernels/q8_sparse.h) against the dense generic kernels on the same
 * (pruned) weights: every SPGEMV row this CPU runs gives the exact int32 sums of the dense generic
 * product, and every *_STEP_SPARSE row gives the dense generic cell's h, c and y bit for bit (step,
 * whole-sequence and masked forms; 8- and 16-row blocks; random, saturated and empty matrices).
 * The gate-shared layout likewise: every SPGEMV_SHARED row (on gate-shared, per-gate and dense
 * matrices) and every *_STEP_SHARED row (gate-shared W_ih and W_hh, and each with the other
 * matrix per-gate or dense).
 * Built and run by `make test` and, cross-compiled, under qemu (toolchains/cross.mk). */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_common.h"

typedef struct {
    rnc_sparse_q8 s;
    uint32_t *rowptr;
    int32_t *sums;
    uint16_t *cols;
    int8_t *blocks;
} sparse_buf;

/* Zero the blocks of packed P (R rows, K inputs) not drawn with probability `keep_pct`/100 and
 * build its block-sparse form with bh-row blocks. */
static void make_sparse(int8_t *P, int R, int K, uint32_t bh, int keep_pct, sparse_buf *o)
{
    const int groups = (K + 3) / 4, rb = R / (int)bh;
    o->rowptr = zalloc(sizeof(uint32_t) * (size_t)(rb + 1));
    o->sums = zalloc(sizeof(int32_t) * (size_t)R);
    o->cols = zalloc(sizeof(uint16_t) * (size_t)(rb * groups + 1));
    o->blocks = zalloc((size_t)R * (size_t)groups * 4 + 1);
    uint32_t n = 0;
    for (int b = 0; b < rb; ++b) {
        o->rowptr[b] = n;
        for (int g = 0; g < groups; ++g) {
            /* the bh x 4 block (rows bh b .., group g) in the 16-row packed tile */
            int8_t *tile = P + ((size_t)(b * (int)bh / 16) * (size_t)groups + (size_t)g) * 64 + (size_t)(b * (int)bh % 16) * 4;
            if (rnd(0, 99) >= keep_pct) {
                memset(tile, 0, 4 * bh);
                continue;
            }
            int nz = 0;
            for (uint32_t i = 0; i < 4 * bh; ++i) nz |= tile[i] != 0;
            if (!nz) continue;
            memcpy(o->blocks + (size_t)n * 4 * bh, tile, 4 * bh);
            o->cols[n++] = (uint16_t)g;
        }
    }
    o->rowptr[rb] = n;
    rnc_q8_rowsum_generic(P, R, K, o->sums);
    o->s.rowptr = o->rowptr;
    o->s.sums = o->sums;
    o->s.cols = o->cols;
    o->s.blocks = o->blocks;
    o->s.dense = NULL;
    o->s.bh = bh;
    o->s.row_blocks = (uint32_t)rb;
    o->s.nnz = n;
    o->s.gates = 0;
}

/* Zero the 16 x 4 blocks of packed P (G gates of Hp rows, K inputs) of one mask drawn for all
 * gates (keep_pct/100 kept) and build its gate-shared form. */
static void make_shared(int8_t *P, uint32_t G, uint32_t Hp, int K, int keep_pct, sparse_buf *o)
{
    const uint32_t groups = (uint32_t)(K + 3) / 4, units = Hp / 16, R = G * Hp;
    o->rowptr = zalloc(sizeof(uint32_t) * (units + 1));
    o->sums = zalloc(sizeof(int32_t) * R);
    o->cols = zalloc(sizeof(uint16_t) * (units * groups + 1));
    o->blocks = zalloc((size_t)R * groups * 4 + 1);
    uint32_t n = 0;
    for (uint32_t u = 0; u < units; ++u) {
        o->rowptr[u] = n;
        for (uint32_t g = 0; g < groups; ++g) {
            const int keep = rnd(0, 99) < keep_pct;
            for (uint32_t gate = 0; gate < G; ++gate) {
                int8_t *tile = P + ((size_t)(gate * units + u) * groups + g) * 64;
                if (keep) memcpy(o->blocks + ((size_t)n * G + gate) * 64, tile, 64);
                else memset(tile, 0, 64);
            }
            if (keep) o->cols[n++] = (uint16_t)g;
        }
    }
    o->rowptr[units] = n;
    rnc_q8_rowsum_generic(P, (int)R, K, o->sums);
    memset(&o->s, 0, sizeof o->s);
    o->s.rowptr = o->rowptr;
    o->s.sums = o->sums;
    o->s.cols = o->cols;
    o->s.blocks = o->blocks;
    o->s.bh = 16;
    o->s.row_blocks = units;
    o->s.nnz = n;
    o->s.gates = G;
}

/* A dense packed matrix passed as rnc_sparse_q8 (bh = 0: the ISA's dense product). */
static void dense_form(void *P, sparse_buf *o)
{
    memset(o, 0, sizeof *o);
    o->s.dense = P;
}

static void free_sparse(sparse_buf *o)
{
    free(o->rowptr);
    free(o->sums);
    free(o->cols);
    free(o->blocks);
}

static int avail(const rnc_kernel *k)
{
    int yes = 0;
    rnc_isa_available((rnc_isa)k->isa, &yes);
    return yes;
}

/* Every kernel-table row of one of ops[0 .. n) that this CPU runs, in table order, to `run`; the
 * rows it lacks named as skipped. */
static void each_row(const uint8_t *ops, size_t n, void (*run)(const rnc_kernel *kr))
{
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (!memchr(ops, kr->op, n)) continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        run(kr);
    }
}

/* ------------------------------------------------------------------ products */

/* The blocks kept in product mode `mode`: none (2), all (3), else a random share. */
static int keep_pct(int mode) { return mode == 2 ? 0 : mode == 3 ? 100 : rnd(5, 60); }

/* The sparse form of packed P (R rows, K inputs) a product sweep tests in mode `mode` (`arg`: the
 * sweep's block height or gate count). */
typedef void (*sparsify_fn)(int8_t *P, int R, int K, int mode, uint32_t arg, sparse_buf *o);

/* Per-gate blocks of bh = `bh` rows. */
static void sparsify_per_gate(int8_t *P, int R, int K, int mode, uint32_t bh, sparse_buf *o)
{
    make_sparse(P, R, K, bh, keep_pct(mode), o);
}

/* Gate-shared blocks of G = `G` gates; mode 4 per-gate (which a SPGEMV_SHARED row runs too). */
static void sparsify_shared(int8_t *P, int R, int K, int mode, uint32_t G, sparse_buf *o)
{
    if (mode == 4) make_sparse(P, R, K, rnd(0, 1) ? 16 : 8, rnd(5, 60), o);
    else make_shared(P, G, (uint32_t)R / G, K, keep_pct(mode), o);
}

/* One product case: a random R x K matrix (mode 1: every weight at +-127), packed, its sparse form
 * from `sparsify`, and N (1 .. 9) random inputs (mode 1: +-127; any value in the padding past K):
 * `fn` on the sparse form, and on the dense matrix passed as rnc_sparse_q8 (reported as mode
 * 10 + mode), gives the dense generic product's exact int32 sums. */
static void product_case(const char *name, rnc_gemm_q8_fn fn, int R, int K, int mode, sparsify_fn sparsify,
                         uint32_t arg)
{
    const int kp = (K + 3) / 4 * 4, N = rnd(1, 9);
    int8_t *W = zalloc((size_t)R * (size_t)K), *P = zalloc((size_t)R * (size_t)kp);
    for (size_t i = 0; i < (size_t)R * (size_t)K; ++i)
        W[i] = mode == 1 ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
    pack_q8(W, R, K, P);
    sparse_buf sb, dense;
    sparsify(P, R, K, mode, arg, &sb);
    const int ldq = kp + 4 * rnd(0, 2);
    int8_t *Q = zalloc((size_t)N * (size_t)ldq);
    for (int n = 0; n < N; ++n)
        for (int i = 0; i < kp; ++i)
            Q[(size_t)n * ldq + i] = mode == 1 ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
    const int ld = R + 3;
    int32_t *a0 = zalloc(sizeof(int32_t) * (size_t)N * ld), *a1 = zalloc(sizeof(int32_t) * (size_t)N * ld);
    rnc_q8_gemm_generic(P, R, K, N, Q, ldq, a0, ld);
    fn((const int8_t *)(const void *)&sb.s, R, K, N, Q, ldq, a1, ld);
    check(!memcmp(a0, a1, sizeof(int32_t) * (size_t)N * ld), name, R, K, N, mode);
    dense_form(P, &dense);
    memset(a1, 0, sizeof(int32_t) * (size_t)N * ld);
    fn((const int8_t *)(const void *)&dense.s, R, K, N, Q, ldq, a1, ld);
    check(!memcmp(a0, a1, sizeof(int32_t) * (size_t)N * ld), name, R, K, N, 10 + mode);
    free(W), free(P), free(Q), free(a0), free(a1);
    free_sparse(&sb);
}

/* A SPGEMV row: 8- and 16-row blocks, random, saturated (1), empty (2) and full (3) matrices. */
static void product_cases(const char *name, rnc_gemm_q8_fn fn)
{
    static const int shapes[][2] = {{16, 4}, {32, 5}, {48, 37}, {64, 128}, {96, 33}, {256, 259}, {768, 512}, {32, 4101}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (uint32_t bh = 8; bh <= 16; bh += 8)
            for (int mode = 0; mode < 4; ++mode)
                product_case(name, fn, shapes[s][0], shapes[s][1], mode, sparsify_per_gate, bh);
}

/* A SPGEMV_SHARED row: gate-shared matrices (G 3 and 4) in the modes of product_cases, per-gate
 * ones (mode 4), and dense ones (which it runs too). */
static void shared_product_cases(const char *name, rnc_gemm_q8_fn fn)
{
    static const int shapes[][2] = {{16, 4}, {32, 5}, {48, 37}, {64, 128}, {256, 259}, {256, 256}, {512, 512}, {32, 4101}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (uint32_t G = 3; G <= 4; ++G)
            for (int mode = 0; mode < 5; ++mode)
                product_case(name, fn, (int)G * shapes[s][0], shapes[s][1], mode, sparsify_shared, G);
}

/* ------------------------------------------------------------------ cells */

/* B, I, H of the cell cases (the gate-shared rows also on the last, 512 x 512) */
static const uint32_t cell_shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 16}, {1, 32, 32}, {5, 33, 47},
                                          {4, 64, 128}, {1, 256, 256}, {16, 20, 24}, {17, 9, 33},
                                          {1, 40, 72}, {1, 70, 20}, {1, 512, 512}};

/* The sparse forms of case t's W_ih (wi) and W_hh (wh) a cell sweep tests in mode `mode`. */
typedef void (*cell_weights_fn)(cell_case *t, int mode, sparse_buf *wi, sparse_buf *wh);

/* Both per-gate, with one random block height. */
static void per_gate_weights(cell_case *t, int mode, sparse_buf *wi, sparse_buf *wh)
{
    const uint32_t bh = rnd(0, 1) ? 16 : 8, R = t->G * t->Hp;
    (void)mode;
    make_sparse(t->wih, (int)R, (int)t->I, bh, rnd(10, 70), wi);
    make_sparse(t->whh, (int)R, (int)t->H, bh, rnd(10, 70), wh);
}

/* mode / 3: both gate-shared (0), W_ih per-gate (1), W_hh dense (2). */
static void shared_weights(cell_case *t, int mode, sparse_buf *wi, sparse_buf *wh)
{
    const uint32_t R = t->G * t->Hp;
    if (mode / 3 == 1) make_sparse(t->wih, (int)R, (int)t->I, 16, rnd(10, 70), wi);
    else make_shared(t->wih, t->G, t->Hp, (int)t->I, rnd(10, 70), wi);
    if (mode / 3 == 2) dense_form(t->whh, wh);
    else make_shared(t->whh, t->G, t->Hp, (int)t->H, rnd(10, 70), wh);
}

/* Sparse cell `fn` (kind `kind`, the op `dense_op` of the dense twin) against the dense generic
 * cell on the weights `weights` makes sparse: the same h, y (and an LSTM's c) bits, on the first
 * n_shapes cell_shapes in modes 0 .. n_modes-1 (form mode % 3: RUN_STEP, RUN_SEQ,
 * RUN_STEP_MASKED; the modes from `saturated` on saturated) that `serves` serves (the kernel-table
 * row, or NULL for a function outside the table: every batch). */
static void cell_sweep(const char *name, rnc_cell_fn fn, int dense_op, const rnc_kernel *serves, uint32_t kind,
                       size_t n_shapes, int n_modes, int saturated, cell_weights_fn weights)
{
    const rnc_kernel *gen = &rnc__kernels[rnc__find_kernel(dense_op, RNC_Q8, RNC_ISA_GENERIC)];
    for (size_t s = 0; s < n_shapes; ++s)
        for (int mode = 0; mode < n_modes; ++mode) {
            const int form = mode % 3;
            const uint32_t B = cell_shapes[s][0], I = cell_shapes[s][1], H = cell_shapes[s][2];
            if (serves && !rnc__kernel_serves(serves, B, form == RUN_SEQ ? RNC_IN_GI : RNC_IN_X, 0, 1)) continue;
            cell_case t;
            make_case(&t, 1, kind, 1, B, I, H, mode >= saturated);
            sparse_buf wi, wh;
            weights(&t, mode, &wi, &wh);
            rnc_q8_rowsum_generic((const int8_t *)t.whh, (int)(t.G * t.Hp), (int)H, t.sums);
            const size_t n = (size_t)B * H;
            float *h0 = zalloc(4 * n), *c0 = zalloc(4 * n), *y0 = zalloc(4 * n);
            float *h1 = zalloc(4 * n), *c1 = zalloc(4 * n), *y1 = zalloc(4 * n);
            run_cell(&t, gen->fn.cell, 1, 3, h0, c0, y0, form);
            cell_case ts = t;
            ts.wih = &wi.s;
            ts.whh = &wh.s;
            run_cell(&ts, fn, 1, 3, h1, c1, y1, form);
            const int ok = !memcmp(h0, h1, 4 * n) && !memcmp(y0, y1, 4 * n) &&
                           (kind != RNC_LSTM || !memcmp(c0, c1, 4 * n));
            check(ok, name, (int)B, (int)I, (int)H, mode);
            free(h0), free(c0), free(y0), free(h1), free(c1), free(y1);
            free_sparse(&wi);
            free_sparse(&wh);
            free_case(&t);
        }
}

/* A *_STEP_SPARSE row: every kind its dense op serves, per-gate 8- or 16-row blocks, modes 3 .. 5
 * saturated. */
static void cell_cases(const char *name, rnc_cell_fn fn, int dense_op, const rnc_kernel *serves)
{
    static const uint32_t kinds[] = {RNC_RNN_TANH, RNC_RNN_RELU, RNC_GRU, RNC_LSTM};
    for (size_t o = 0; o < sizeof kinds / sizeof kinds[0]; ++o) {
        const uint32_t kind = kinds[o];
        if ((kind == RNC_GRU) != (dense_op == RNC_OP_GRU_STEP) || (kind == RNC_LSTM) != (dense_op == RNC_OP_LSTM_STEP))
            continue;
        cell_sweep(name, fn, dense_op, serves, kind, 11, 6, 3, per_gate_weights);
    }
}

/* A *_STEP_SHARED row (GRU reset_after / LSTM): W_ih and W_hh each gate-shared, per-gate or dense
 * (shared_weights). */
static void shared_cell_cases(const char *name, rnc_cell_fn fn, int dense_op, const rnc_kernel *serves)
{
    const uint32_t kind = dense_op == RNC_OP_GRU_STEP ? RNC_GRU : RNC_LSTM;
    cell_sweep(name, fn, dense_op, serves, kind, sizeof cell_shapes / sizeof cell_shapes[0], 9, 9, shared_weights);
}

/* ------------------------------------------------------------------ the kernel-table rows */

static void product_row(const rnc_kernel *kr) { product_cases(kr->name, kr->fn.gemm_q8); }

static void cell_row(const rnc_kernel *kr)
{
    cell_cases(kr->name, kr->fn.cell, kr->op - (RNC_OP_RNN_STEP_SPARSE - RNC_OP_RNN_STEP), kr);
}

static void shared_row(const rnc_kernel *kr)
{
    if (kr->op == RNC_OP_SPGEMV_SHARED) shared_product_cases(kr->name, kr->fn.gemm_q8);
    else
        shared_cell_cases(kr->name, kr->fn.cell,
                          kr->op == RNC_OP_GRU_STEP_SHARED ? RNC_OP_GRU_STEP : RNC_OP_LSTM_STEP, kr);
}

#if defined(RNC_TEST_AVXVNNI_EVEX)
/* q8_sparse_avxvnni.c built with the EVEX encoding of its 256-bit vpdpbusd (Makefile) */
void rnc_q8_gemm_sparse_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                     int32_t *Acc, int ldacc);
void rnc_q8_rnn_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_q8_gru_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_q8_lstm_step_sparse_avxvnni_evex(const rnc_cell_args *a);

static void test_avxvnni_evex(void)
{
    if (!rnc__cpu_supports(RNC_ISA_AVX512VNNI)) {
        printf("skipped: the AVX-VNNI sparse file's EVEX build (CPU lacks AVX-512 VNNI)\n");
        return;
    }
    product_cases("q8_gemm_sparse_avxvnni (EVEX build)", rnc_q8_gemm_sparse_avxvnni_evex);
    cell_cases("q8_rnn_step_sparse_avxvnni (EVEX build)", rnc_q8_rnn_step_sparse_avxvnni_evex, RNC_OP_RNN_STEP, NULL);
    cell_cases("q8_gru_step_sparse_avxvnni (EVEX build)", rnc_q8_gru_step_sparse_avxvnni_evex, RNC_OP_GRU_STEP, NULL);
    cell_cases("q8_lstm_step_sparse_avxvnni (EVEX build)", rnc_q8_lstm_step_sparse_avxvnni_evex, RNC_OP_LSTM_STEP, NULL);
}
#endif

int main(void)
{
    static const uint8_t products[] = {RNC_OP_SPGEMV},
                         cells[] = {RNC_OP_RNN_STEP_SPARSE, RNC_OP_GRU_STEP_SPARSE, RNC_OP_LSTM_STEP_SPARSE},
                         shared[] = {RNC_OP_SPGEMV_SHARED, RNC_OP_GRU_STEP_SHARED, RNC_OP_LSTM_STEP_SHARED};
    each_row(products, sizeof products, product_row);
    each_row(cells, sizeof cells, cell_row);
    each_row(shared, sizeof shared, shared_row);
#if defined(RNC_TEST_AVXVNNI_EVEX)
    test_avxvnni_evex();
#endif
    printf("sparse kernels: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
