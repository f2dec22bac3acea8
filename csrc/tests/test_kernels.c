/* The kernel table's cell rows, table-driven, on every architecture (native and under qemu for
 * ARM): every RNN/GRU/LSTM step row of every ISA this CPU runs, against its generic twin on the
 * same arguments, at every case within the row's batch range, input mode and GRU forms (a row no
 * case reaches fails). Cases (tests/test_common.h): shapes with H and I not multiples of 16 or 4,
 * 1 to 17 rows, random and saturating weights and inputs, the step form (input given, y
 * written; and without y, as a layer below the last) and the whole-sequence form (projection
 * given, inactive rows, W_hh's kernel sums).
 * q8: h, c and y bitwise equal over 3 steps with the state carried (exact int32 products, the
 * same float32 epilogue); f32: one step within the float32 summation bound (the products' order
 * may differ). Rows of ISAs this CPU lacks are reported as skipped by name. */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_common.h"

#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__)
/* Debian's aarch64-linux-gnu-gcc 12 stops with an internal compiler error vectorising the f32
 * tolerance loop's fmax reductions below (vect_transform_reduction); a test needs no vectors. */
#pragma GCC optimize("no-tree-vectorize")
#endif

static void test_cells(void)
{
    static const uint32_t shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 16}, {1, 32, 32}, {5, 33, 47},
                                         {4, 64, 128}, {1, 256, 256}, {16, 20, 24}, {17, 9, 33},
                                         /* one-row kernels' unit-block tails (AVX2 b1/small,
                                          * NEON 4-lane update): odd and even block counts, partial
                                          * 8- and 4-unit chunks */
                                         {1, 33, 47}, {1, 20, 72}, {1, 9, 100}, {2, 24, 56},
                                         /* the AVX-512 VNNI one-row path for H <= 64 (all
                                          * products, then every block's update): 4 unit blocks,
                                          * whole and with a partial last one */
                                         {1, 70, 64}, {1, 5, 49},
                                         /* the AVX2 update's 8-, 4- and 1-chunk groups and its
                                          * masked tail in one call (the template, 2 rows) */
                                         {2, 9, 100}};
    static const uint32_t ops[][3] = {{RNC_OP_RNN_STEP, RNC_RNN_TANH, 1}, {RNC_OP_RNN_STEP, RNC_RNN_RELU, 1},
                                      {RNC_OP_GRU_STEP, RNC_GRU, 1},      {RNC_OP_GRU_STEP, RNC_GRU, 0},
                                      {RNC_OP_LSTM_STEP, RNC_LSTM, 1}};
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        if (kr->op != RNC_OP_RNN_STEP && kr->op != RNC_OP_GRU_STEP && kr->op != RNC_OP_LSTM_STEP) continue;
        if (kr->isa == RNC_ISA_GENERIC) continue;
        if (kr->precision == RNC_Q4) continue; /* tests/test_q4.c */
        int avail = 0;
        rnc_isa_available((rnc_isa)kr->isa, &avail);
        if (!avail) {
            printf("skipped: %s (CPU/OS lacks the ISA)\n", kr->name);
            continue;
        }
        const int gen = rnc__find_kernel(kr->op, kr->precision, RNC_ISA_GENERIC);
        const int q8 = kr->precision == RNC_Q8;
        int cases = 0, static_differs = 0;
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; ++o) {
            if (ops[o][0] != kr->op) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
                /* modes 2, 3: the sequence form of 0, 1; modes 4, 5: their step form without y;
                 * q8 modes 6-11: 0-5 with h quantised by the bounded state scale 1/127
                 * (docs/q8-contract.md), the static rule with no scan */
                for (int mode = 0; mode < (q8 ? 12 : 6); ++mode) {
                    const int base = mode % 6;
                    const int form = base >= 4 ? RUN_STEP_NOY : base >= 2 ? RUN_SEQ : RUN_STEP;
                    cell_case t;
                    const uint32_t B = shapes[s][0], I = shapes[s][1], H = shapes[s][2];
                    make_case(&t, q8, ops[o][1], ops[o][2], B, I, H, mode & 1);
                    if (mode >= 6) t.h_scale = 1.0f / 127.0f;
                    if (!row_serves_case(kr, &t, form)) { /* outside the row's batches/inputs */
                        free_case(&t);
                        continue;
                    }
                    ++cases;
                    const size_t n = (size_t)B * H;
                    float *h0 = malloc(4 * n), *c0 = malloc(4 * n), *y0 = malloc(4 * n);
                    float *h1 = malloc(4 * n), *c1 = malloc(4 * n), *y1 = malloc(4 * n);
                    /* q8: 3 steps (state carried), bitwise equal. f32: one step (a carried
                     * rounding difference is amplified by W_hh), within the rounding bound of
                     * a K-term sum in another order, K*2^-24*S with S >= sum |w||v|, carried
                     * through the gates (Lipschitz <= 1) and LSTM's c' = f*c + i*g. */
                    const int steps = q8 ? 3 : 1;
                    run_cell(&t, rnc__kernels[gen].fn.cell, q8, steps, h0, c0, y0, form);
                    run_cell(&t, kr->fn.cell, q8, steps, h1, c1, y1, form);
                    int ok = 1;
                    if (q8 && mode >= 6) { /* the static scale is in use: dynamic gives other bits */
                        float *h2 = malloc(4 * n), *c2 = malloc(4 * n), *y2 = malloc(4 * n);
                        t.h_scale = 0.0f;
                        run_cell(&t, rnc__kernels[gen].fn.cell, q8, steps, h2, c2, y2, form);
                        static_differs += memcmp(h0, h2, 4 * n) != 0;
                        free(h2); free(c2); free(y2);
                    }
                    if (q8) {
                        ok = !memcmp(h0, h1, 4 * n) && !memcmp(c0, c1, 4 * n) && !memcmp(y0, y1, 4 * n);
                    } else {
                        const int sat = mode & 1;
                        const double wmax = sat ? 2.0 : 0.3, xmax = sat ? 5.0 : 1.0, bmax = sat ? 6.0 : 0.4;
                        double hmax = 0, cmax = 0;
                        for (size_t i = 0; i < n; ++i) {
                            hmax = fmax(hmax, fabs(t.h[i]));
                            cmax = fmax(cmax, fabs(t.c[i]));
                        }
                        const double S = I * wmax * xmax + H * wmax * hmax + bmax;
                        const double tol = (cmax + 3.0) * ((double)(I + H + 2) * ldexp(1.0, -24) * S) + 1e-6;
                        for (size_t i = 0; i < n; ++i)
                            ok &= fabs(h0[i] - h1[i]) <= tol && fabs(c0[i] - c1[i]) <= tol &&
                                  y1[i] == (form == RUN_STEP ? h1[i] : 0.0f);
                    }
                    char what[160];
                    snprintf(what, sizeof what, "%s kind=%u reset_after=%u vs generic", kr->name,
                             ops[o][1], ops[o][2]);
                    check(ok, what, (int)H, (int)I, (int)B, mode);
                    free(h0); free(c0); free(y0); free(h1); free(c1); free(y1);
                    free_case(&t);
                }
        }
        check(cases > 0, kr->name, 0, 0, 0, 0); /* every row reached */
        if (q8) check(static_differs > 0, kr->name, 0, 0, 0, 8); /* the static-scale cases are not the dynamic ones */
    }
}


/* rnc__all_finite (rnc_step's check of x) against isfinite: every exponent, sign and a few
 * mantissas, alone or among finite values at every position of vectors of 1 to 67 floats (the
 * vectorised body and every tail length) */
static int all_finite_ref(const float *v, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static void test_all_finite(void)
{
    static const uint32_t mant[] = {0u, 1u, 0x400000u, 0x7FFFFFu};
    float v[67];
    int bad = 0;
    for (uint32_t e = 0; e < 256; ++e)
        for (uint32_t sgn = 0; sgn < 2; ++sgn)
            for (size_t k = 0; k < sizeof mant / sizeof mant[0]; ++k) {
                const uint32_t u = sgn << 31 | e << 23 | mant[k];
                float f;
                memcpy(&f, &u, 4);
                for (size_t n = 1; n <= 67; n += (e % 7 == 0 ? 1 : 11)) {
                    for (size_t i = 0; i < n; ++i) v[i] = (float)i * 0.5f - 3.0f;
                    for (size_t at = 0; at < n; ++at) {
                        const float keep = v[at];
                        v[at] = f;
                        bad += rnc__all_finite(v, n) != all_finite_ref(v, n);
                        v[at] = keep;
                    }
                }
            }
    if (bad) {
        ++failed; /* (the summary's passed count is the kernel-table cell rows only) */
        printf("FAIL rnc__all_finite: %d vectors disagree with isfinite\n", bad);
    } else {
        printf("rnc__all_finite: every vector agrees with isfinite\n");
    }
}

int main(void)
{
    test_cells();
    test_all_finite();
    printf("kernel-table cells: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
