/* q4 kernels (kernels/q4.h): every GEMV row of precision q4 this CPU runs gives the exact int32
 * sums of a plain C product of the unpacked int4 weights, and every q4 cell row gives, bit for
 * bit, the h, c and y of the generic q8 cell on the same integer weights stored as q8 (3 steps,
 * state carried; step, whole-sequence and masked forms; both GRU forms; random and saturated
 * -7/+7 weights and -127/+127 inputs, and products all +7 x -128 or +7 x +127; K of every residue
 * mod 8). So a q4 model is its q8 twin with
 * int4 weights, which the q8 tests tie to the NumPy reference. Built and run by `make test`, and
 * cross-compiled under qemu (toolchains/cross.mk). */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_common.h"

/* q4 (q4.h): byte[(b*P + p)*64 + r*4 + j] = (W[16b+r, 8p+j] + 8) | (W[16b+r, 8p+4+j] + 8) << 4,
 * nibble 8 (weight 0) in the padding */
static void pack_q4(const int8_t *W, int R, int K, uint8_t *P)
{
    const int Rp = (R + 15) / 16 * 16, pairs = (K + 7) / 8;
    memset(P, 0x88, (size_t)Rp * pairs * 4);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) {
            uint8_t *byte = P + ((size_t)(r / 16) * pairs + k / 8) * 64 + (r % 16) * 4 + k % 4;
            const int sh = (k % 8) >= 4 ? 4 : 0;
            *byte = (uint8_t)((*byte & ~(15 << sh)) | ((W[(size_t)r * K + k] + 8) << sh));
        }
}

static int avail(const rnc_kernel *k)
{
    int yes = 0;
    rnc_isa_available((rnc_isa)k->isa, &yes);
    return yes;
}

/* mode 0: random weights; 1: random -7/+7; 2, 3: every weight +7 (the largest nibble, 15) */
static int8_t w4(int mode) { return (int8_t)(mode >= 2 ? 7 : mode ? (rnd(0, 1) ? 7 : -7) : rnd(-7, 7)); }

/* An input of mode 0: random; 1: random -127/+127; 2: every input -128; 3: every input +127 (with
 * mode 2/3 weights every product of a row has the largest magnitude and one sign: the bound of
 * any partial sum a kernel keeps in 16 bits) */
static int8_t q8in(int mode)
{
    return (int8_t)(mode == 2 ? -128 : mode == 3 ? 127 : mode ? (rnd(0, 1) ? 127 : -127) : rnd(-127, 127));
}

static void test_products(void)
{
    static const int shapes[][2] = {{1, 1}, {16, 4}, {17, 5}, {32, 7}, {48, 8}, {33, 9}, {64, 12},
                                    {96, 13}, {16, 14}, {80, 15}, {256, 259}, {768, 512}, {48, 1000}};
    for (size_t i = 0; i < rnc__kernel_count; ++i) {
        const rnc_kernel *kr = &rnc__kernels[i];
        if (kr->op != RNC_OP_GEMV || kr->precision != RNC_Q4) continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        int cases = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int N = 1; N <= 9; N += 4)
                for (int mode = 0; mode < 4; ++mode) {
                    const int R = shapes[s][0], K = shapes[s][1], Rp = (R + 15) / 16 * 16, kp = (K + 3) / 4 * 4;
                    const int ldq = kp + 4 * (N > 1), ldacc = Rp + 16;
                    int8_t *W = zalloc((size_t)R * K), *Q = zalloc((size_t)N * ldq);
                    uint8_t *P = zalloc((size_t)Rp * ((K + 7) / 8) * 4);
                    int32_t *acc = zalloc(sizeof(int32_t) * (size_t)N * ldacc);
                    int32_t *ref = zalloc(sizeof(int32_t) * (size_t)N * ldacc);
                    for (size_t k = 0; k < (size_t)R * K; ++k) W[k] = w4(mode);
                    for (int n = 0; n < N; ++n)
                        for (int k = 0; k < ldq; ++k) /* garbage past K: never read as a product */
                            Q[(size_t)n * ldq + k] = (int8_t)(k < K ? q8in(mode)
                                                                  : (k < kp ? 0 : 99));
                    pack_q4(W, R, K, P);
                    for (int n = 0; n < N; ++n)
                        for (int r = 0; r < R; ++r) {
                            int32_t v = 0;
                            for (int k = 0; k < K; ++k) v += (int32_t)W[(size_t)r * K + k] * Q[(size_t)n * ldq + k];
                            ref[(size_t)n * ldacc + r] = v;
                        }
                    memset(acc, 0x5A, sizeof(int32_t) * (size_t)N * ldacc);
                    kr->fn.gemm_q8((const int8_t *)(const void *)P, R, K, N, Q, ldq, acc, ldacc);
                    int ok = 1;
                    for (int n = 0; n < N; ++n) {
                        for (int r = 0; r < R; ++r) ok &= acc[(size_t)n * ldacc + r] == ref[(size_t)n * ldacc + r];
                        for (int r = R; r < ldacc; ++r) ok &= acc[(size_t)n * ldacc + r] == 0x5A5A5A5A; /* rows >= R untouched */
                    }
                    check(ok, kr->name, R, K, N, mode);
                    ++cases;
                    free(W); free(Q); free(P); free(acc); free(ref);
                }
        check(cases > 0, kr->name, 0, 0, 0, 0);
    }
}

/* replace case t's q8 weights by int4 ones (q8 layout, for the generic q8 cell) and give their
 * q4 packing in *ih4, *hh4 */
static void make_q4_weights(cell_case *t, int mode, uint8_t **ih4, uint8_t **hh4)
{
    const int R = (int)(t->G * t->Hp), I = (int)t->I, H = (int)t->H;
    int8_t *wa = zalloc((size_t)R * I), *wb = zalloc((size_t)R * H);
    for (uint32_t g = 0; g < t->G; ++g)
        for (uint32_t u = 0; u < t->H; ++u) {
            const size_t r = (size_t)g * t->Hp + u;
            for (int k = 0; k < I; ++k) wa[r * I + k] = w4(mode);
            for (int k = 0; k < H; ++k) wb[r * H + k] = w4(mode);
        }
    pack_q8(wa, R, I, (int8_t *)t->wih);
    pack_q8(wb, R, H, (int8_t *)t->whh);
    rnc_q8_rowsum_generic((const int8_t *)t->whh, R, H, t->sums);
    *ih4 = zalloc((size_t)R * ((I + 7) / 8) * 4);
    *hh4 = zalloc((size_t)R * ((H + 7) / 8) * 4);
    pack_q4(wa, R, I, *ih4);
    pack_q4(wb, R, H, *hh4);
    free(wa);
    free(wb);
}

static void test_cells(void)
{
    static const uint32_t shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 16}, {1, 32, 32}, {5, 33, 47},
                                         {1, 12, 64}, {4, 64, 20}, {17, 9, 24}, {1, 100, 9}, {2, 24, 56}};
    static const uint32_t ops[][3] = {{RNC_OP_RNN_STEP, RNC_RNN_TANH, 1}, {RNC_OP_RNN_STEP, RNC_RNN_RELU, 1},
                                      {RNC_OP_GRU_STEP, RNC_GRU, 1},      {RNC_OP_GRU_STEP, RNC_GRU, 0},
                                      {RNC_OP_LSTM_STEP, RNC_LSTM, 1}};
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (kr->precision != RNC_Q4 || kr->op == RNC_OP_GEMV) continue;
        if (!avail(kr)) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        const rnc_kernel *q8 = &rnc__kernels[rnc__find_kernel(kr->op, RNC_Q8, RNC_ISA_GENERIC)];
        int cases = 0;
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; ++o) {
            if (ops[o][0] != kr->op) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
                for (int mode = 0; mode < 6; ++mode) {
                    const int form = mode / 2, sat = mode & 1;
                    const uint32_t B = shapes[s][0], I = shapes[s][1], H = shapes[s][2];
                    cell_case t;
                    make_case(&t, 1, ops[o][1], ops[o][2], B, I, H, sat);
                    if (!row_serves_case(kr, &t, form)) {
                        free_case(&t);
                        continue;
                    }
                    ++cases;
                    uint8_t *ih4, *hh4;
                    make_q4_weights(&t, sat, &ih4, &hh4);
                    const size_t n = (size_t)B * H;
                    float *h0 = malloc(4 * n), *c0 = malloc(4 * n), *y0 = malloc(4 * n);
                    float *h1 = malloc(4 * n), *c1 = malloc(4 * n), *y1 = malloc(4 * n);
                    run_cell(&t, q8->fn.cell, 1, 3, h0, c0, y0, form);
                    void *wih = t.wih, *whh = t.whh;
                    t.wih = ih4;
                    t.whh = hh4;
                    run_cell(&t, kr->fn.cell, 1, 3, h1, c1, y1, form);
                    t.wih = wih;
                    t.whh = whh;
                    const int ok = !memcmp(h0, h1, 4 * n) && !memcmp(c0, c1, 4 * n) && !memcmp(y0, y1, 4 * n);
                    char what[160];
                    snprintf(what, sizeof what, "%s kind=%u reset_after=%u vs q8 generic", kr->name,
                             ops[o][1], ops[o][2]);
                    check(ok, what, (int)H, (int)I, (int)B, mode);
                    free(h0); free(c0); free(y0); free(h1); free(c1); free(y1);
                    free(ih4);
                    free(hh4);
                    free_case(&t);
                }
        }
        check(cases > 0, kr->name, 0, 0, 0, 0);
    }
}

int main(void)
{
    test_products();
    test_cells();
    printf("q4 kernels: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
