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

static void product_cases(const char *name, rnc_gemm_q8_fn fn)
{
    static const int shapes[][2] = {{16, 4}, {32, 5}, {48, 37}, {64, 128}, {96, 33}, {256, 259}, {768, 512}, {32, 4101}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (uint32_t bh = 8; bh <= 16; bh += 8)
            for (int mode = 0; mode < 4; ++mode) {
                const int R = shapes[s][0], K = shapes[s][1], kp = (K + 3) / 4 * 4, N = rnd(1, 9);
                int8_t *W = zalloc((size_t)R * (size_t)K), *P = zalloc((size_t)R * (size_t)kp);
                for (size_t i = 0; i < (size_t)R * (size_t)K; ++i)
                    W[i] = mode == 1 ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
                pack_q8(W, R, K, P);
                sparse_buf sb;
                make_sparse(P, R, K, bh, mode == 2 ? 0 : mode == 3 ? 100 : rnd(5, 60), &sb);
                const int ldq = kp + 4 * rnd(0, 2);
                int8_t *Q = zalloc((size_t)N * (size_t)ldq);
                for (int n = 0; n < N; ++n)
                    for (int i = 0; i < kp; ++i) /* the padding past K may hold anything */
                        Q[(size_t)n * ldq + i] = mode == 1 ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
                const int ld = R + 3;
                int32_t *a0 = zalloc(sizeof(int32_t) * (size_t)N * ld), *a1 = zalloc(sizeof(int32_t) * (size_t)N * ld);
                rnc_q8_gemm_generic(P, R, K, N, Q, ldq, a0, ld);
                fn((const int8_t *)(const void *)&sb.s, R, K, N, Q, ldq, a1, ld);
                check(!memcmp(a0, a1, sizeof(int32_t) * (size_t)N * ld), name, R, K, N, mode);
                /* a dense matrix passed as rnc_sparse_q8 (bh = 0): the ISA's dense product */
                rnc_sparse_q8 dense;
                memset(&dense, 0, sizeof dense);
                dense.dense = P;
                memset(a1, 0, sizeof(int32_t) * (size_t)N * ld);
                fn((const int8_t *)(const void *)&dense, R, K, N, Q, ldq, a1, ld);
                check(!memcmp(a0, a1, sizeof(int32_t) * (size_t)N * ld), name, R, K, N, 10 + mode);
                free(W), free(P), free(Q), free(a0), free(a1);
                free_sparse(&sb);
            }
}

static void test_products(void)
{
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (kr->op != RNC_OP_SPGEMV) continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        product_cases(kr->name, kr->fn.gemm_q8);
    }
}

/* Sparse cell `fn` (the op `dense_op` of the dense twin) on every kind and shape it serves
 * (`serves`: the kernel-table row, or NULL for a function outside the table: every batch). */
static void cell_cases(const char *name, rnc_cell_fn fn, int dense_op, const rnc_kernel *serves)
{
    static const uint32_t shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 16}, {1, 32, 32}, {5, 33, 47},
                                         {4, 64, 128}, {1, 256, 256}, {16, 20, 24}, {17, 9, 33},
                                         {1, 40, 72}, {1, 70, 20}};
    static const uint32_t kinds[] = {RNC_RNN_TANH, RNC_RNN_RELU, RNC_GRU, RNC_LSTM};
    const rnc_kernel *gen = &rnc__kernels[rnc__find_kernel(dense_op, RNC_Q8, RNC_ISA_GENERIC)];
    for (size_t o = 0; o < sizeof kinds / sizeof kinds[0]; ++o) {
        const uint32_t kind = kinds[o];
        if ((kind == RNC_GRU) != (dense_op == RNC_OP_GRU_STEP) || (kind == RNC_LSTM) != (dense_op == RNC_OP_LSTM_STEP))
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int mode = 0; mode < 6; ++mode) {
                const int form = mode % 3; /* RUN_STEP, RUN_SEQ, RUN_STEP_MASKED */
                const uint32_t B = shapes[s][0], I = shapes[s][1], H = shapes[s][2];
                if (serves && !rnc__kernel_serves(serves, B, form == RUN_SEQ ? RNC_IN_GI : RNC_IN_X, 0, 1)) continue;
                cell_case t;
                make_case(&t, 1, kind, 1, B, I, H, mode >= 3);
                const uint32_t bh = rnd(0, 1) ? 16 : 8, R = t.G * t.Hp;
                sparse_buf si, sh;
                make_sparse(t.wih, (int)R, (int)I, bh, rnd(10, 70), &si);
                make_sparse(t.whh, (int)R, (int)H, bh, rnd(10, 70), &sh);
                rnc_q8_rowsum_generic((const int8_t *)t.whh, (int)R, (int)H, t.sums);
                const size_t n = (size_t)B * H;
                float *h0 = zalloc(4 * n), *c0 = zalloc(4 * n), *y0 = zalloc(4 * n);
                float *h1 = zalloc(4 * n), *c1 = zalloc(4 * n), *y1 = zalloc(4 * n);
                run_cell(&t, gen->fn.cell, 1, 3, h0, c0, y0, form);
                cell_case ts = t;
                ts.wih = &si.s;
                ts.whh = &sh.s;
                run_cell(&ts, fn, 1, 3, h1, c1, y1, form);
                const int ok = !memcmp(h0, h1, 4 * n) && !memcmp(y0, y1, 4 * n) &&
                               (kind != RNC_LSTM || !memcmp(c0, c1, 4 * n));
                check(ok, name, (int)B, (int)I, (int)H, mode);
                free(h0), free(c0), free(y0), free(h1), free(c1), free(y1);
                free_sparse(&si);
                free_sparse(&sh);
                free_case(&t);
            }
    }
}

static void test_cells(void)
{
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (kr->op != RNC_OP_RNN_STEP_SPARSE && kr->op != RNC_OP_GRU_STEP_SPARSE && kr->op != RNC_OP_LSTM_STEP_SPARSE)
            continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        cell_cases(kr->name, kr->fn.cell, kr->op - (RNC_OP_RNN_STEP_SPARSE - RNC_OP_RNN_STEP), kr);
    }
}

/* A SPGEMV_SHARED row: gate-shared matrices (G 3 and 4), and per-gate and dense ones (which it
 * runs too), against the dense generic product. */
static void shared_product_cases(const char *name, rnc_gemm_q8_fn fn)
{
    static const int shapes[][2] = {{16, 4}, {32, 5}, {48, 37}, {64, 128}, {256, 259}, {256, 256}, {512, 512}, {32, 4101}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (uint32_t G = 3; G <= 4; ++G)
            for (int mode = 0; mode < 5; ++mode) {
                const uint32_t Hp = (uint32_t)shapes[s][0];
                const int R = (int)(G * Hp), K = shapes[s][1], kp = (K + 3) / 4 * 4, N = rnd(1, 9);
                int8_t *W = zalloc((size_t)R * (size_t)K), *P = zalloc((size_t)R * (size_t)kp);
                for (size_t i = 0; i < (size_t)R * (size_t)K; ++i)
                    W[i] = mode == 1 ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
                pack_q8(W, R, K, P);
                sparse_buf sb;
                if (mode == 4) make_sparse(P, R, K, rnd(0, 1) ? 16 : 8, rnd(5, 60), &sb); /* per-gate */
                else make_shared(P, G, Hp, K, mode == 2 ? 0 : mode == 3 ? 100 : rnd(5, 60), &sb);
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
                rnc_sparse_q8 dense;
                memset(&dense, 0, sizeof dense);
                dense.dense = P;
                memset(a1, 0, sizeof(int32_t) * (size_t)N * ld);
                fn((const int8_t *)(const void *)&dense, R, K, N, Q, ldq, a1, ld);
                check(!memcmp(a0, a1, sizeof(int32_t) * (size_t)N * ld), name, R, K, N, 10 + mode);
                free(W), free(P), free(Q), free(a0), free(a1);
                free_sparse(&sb);
            }
}

/* A *_STEP_SHARED row (GRU reset_after / LSTM) against the dense generic cell: W_ih and W_hh each
 * gate-shared, per-gate or dense (mode / 3: both shared, W_ih per-gate, W_hh dense). */
static void shared_cell_cases(const char *name, rnc_cell_fn fn, int dense_op, const rnc_kernel *serves)
{
    static const uint32_t shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 16}, {1, 32, 32}, {5, 33, 47},
                                         {4, 64, 128}, {1, 256, 256}, {16, 20, 24}, {17, 9, 33},
                                         {1, 40, 72}, {1, 70, 20}, {1, 512, 512}};
    const uint32_t kind = dense_op == RNC_OP_GRU_STEP ? RNC_GRU : RNC_LSTM;
    const rnc_kernel *gen = &rnc__kernels[rnc__find_kernel(dense_op, RNC_Q8, RNC_ISA_GENERIC)];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int mode = 0; mode < 9; ++mode) {
            const int form = mode % 3; /* RUN_STEP, RUN_SEQ, RUN_STEP_MASKED */
            const uint32_t B = shapes[s][0], I = shapes[s][1], H = shapes[s][2];
            if (serves && !rnc__kernel_serves(serves, B, form == RUN_SEQ ? RNC_IN_GI : RNC_IN_X, 0, 1)) continue;
            cell_case t;
            make_case(&t, 1, kind, 1, B, I, H, 0);
            const uint32_t R = t.G * t.Hp;
            sparse_buf si, sh;
            int have_i = 1, have_h = 1;
            if (mode / 3 == 1) make_sparse(t.wih, (int)R, (int)I, 16, rnd(10, 70), &si);
            else make_shared(t.wih, t.G, t.Hp, (int)I, rnd(10, 70), &si);
            if (mode / 3 == 2) have_h = 0;
            else make_shared(t.whh, t.G, t.Hp, (int)H, rnd(10, 70), &sh);
            rnc_q8_rowsum_generic((const int8_t *)t.whh, (int)R, (int)H, t.sums);
            const size_t n = (size_t)B * H;
            float *h0 = zalloc(4 * n), *c0 = zalloc(4 * n), *y0 = zalloc(4 * n);
            float *h1 = zalloc(4 * n), *c1 = zalloc(4 * n), *y1 = zalloc(4 * n);
            run_cell(&t, gen->fn.cell, 1, 3, h0, c0, y0, form);
            cell_case ts = t;
            rnc_sparse_q8 dh;
            memset(&dh, 0, sizeof dh);
            dh.dense = (const int8_t *)t.whh;
            ts.wih = &si.s;
            ts.whh = have_h ? &sh.s : &dh;
            run_cell(&ts, fn, 1, 3, h1, c1, y1, form);
            const int ok = !memcmp(h0, h1, 4 * n) && !memcmp(y0, y1, 4 * n) &&
                           (kind != RNC_LSTM || !memcmp(c0, c1, 4 * n));
            check(ok, name, (int)B, (int)I, (int)H, mode);
            free(h0), free(c0), free(y0), free(h1), free(c1), free(y1);
            if (have_i) free_sparse(&si);
            if (have_h) free_sparse(&sh);
            free_case(&t);
        }
}

static void test_shared(void)
{
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (kr->op != RNC_OP_SPGEMV_SHARED && kr->op != RNC_OP_GRU_STEP_SHARED && kr->op != RNC_OP_LSTM_STEP_SHARED)
            continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        if (kr->op == RNC_OP_SPGEMV_SHARED) shared_product_cases(kr->name, kr->fn.gemm_q8);
        else
            shared_cell_cases(kr->name, kr->fn.cell,
                              kr->op == RNC_OP_GRU_STEP_SHARED ? RNC_OP_GRU_STEP : RNC_OP_LSTM_STEP, kr);
    }
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
    test_products();
    test_cells();
    test_shared();
#if defined(RNC_TEST_AVXVNNI_EVEX)
    test_avxvnni_evex();
#endif
    printf("sparse kernels: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
