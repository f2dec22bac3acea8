/* C tests of the rnncore core (plain runner, no framework).
 *
 *   test_rnncore VECTOR_DIR [--fuzz]
 *
 * 1. kernels: every kernel-table row of every ISA this CPU runs against the generic row and
 *    against naive references: q8 GEMM int32 exactly equal (random, all +-127 extremes, sizes
 *    1, odd, not multiples of 4/16, batch > 1), f32 GEMM within tolerance; fused cell kernels
 *    (q8 bit-identical to generic, f32 within tolerance);
 * 2. the fast activations' maximum error over a dense float32 sweep;
 * 3. models written by gen_vectors.py against the NumPy references (step and run paths, lengths,
 *    bidirectional, embedding, head, last-step pooling), on every available ISA; step == run;
 *    state save/restore;
 * 4. hostile buffers: truncated at every byte, every byte flipped, wrong version, oversized
 *    counts/offsets (with a valid checksum), and (--fuzz) random mutations with the checksum
 *    fixed so the parser goes deep; every failure must be a status, never a crash.
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/activations.h"
#include "kernels/logf.h"
#include "rnc_layout.h"
#include "rnncore.h"

static int g_fail = 0, g_checks = 0;
#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        ++g_checks;                                                                               \
        if (!(cond)) {                                                                            \
            ++g_fail;                                                                             \
            if (g_fail < 50) {                                                                    \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
                fprintf(stderr, __VA_ARGS__);                                                     \
                fprintf(stderr, "\n");                                                            \
            }                                                                                     \
        }                                                                                         \
    } while (0)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float rndf(void) { return (float)((double)rnd() / 2097152.0 / 1024.0 * 2.0 - 1.0); }
static int8_t rnd_q(void) { return (int8_t)((int)(rnd() % 255) - 127); }

static void *xmalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(p, 0, n);
    return p;
}

static const char *isa_str(int isa)
{
    const char *s = "?";
    rnc_isa_name((rnc_isa)isa, &s);
    return s;
}

/* ---------------------------------------------------------------------------- packing */
static void pack_q8(const int8_t *w, int R, int K, int8_t *out) /* out: round16(R) x round4(K) */
{
    const int rp = (R + 15) / 16 * 16, kp = (K + 3) / 4 * 4;
    memset(out, 0, (size_t)rp * kp);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k)
            out[((size_t)(r / 16) * (kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4] = w[(size_t)r * K + k];
}

static void pack_f32(const float *w, int R, int K, float *out)
{
    const int rp = (R + 15) / 16 * 16;
    memset(out, 0, sizeof(float) * rp * K);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) out[((size_t)(r / 16) * K + k) * 16 + r % 16] = w[(size_t)r * K + k];
}

/* ------------------------------------------------------------------------- GEMM tests */
static void test_gemm_q8_case(int R, int K, int N, int mode)
{
    const int rp = (R + 15) / 16 * 16, kp = (K + 3) / 4 * 4;
    int8_t *w = xmalloc((size_t)R * K), *wp = xmalloc((size_t)rp * kp), *x = xmalloc((size_t)N * kp);
    int32_t *ref = xmalloc(sizeof(int32_t) * (size_t)N * rp), *got = xmalloc(sizeof(int32_t) * (size_t)N * rp);
    for (int i = 0; i < R * K; ++i)
        w[i] = mode == 0 ? rnd_q() : mode == 1 ? 127 : mode == 2 ? -127 : (i % 2 ? 127 : -127);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < kp; ++k)
            x[(size_t)n * kp + k] = k >= K ? 0
                                    : mode == 0 ? rnd_q()
                                    : mode == 1 ? 127
                                    : mode == 2 ? 127
                                                : (k % 2 ? -127 : 127);
    pack_q8(w, R, K, wp);
    for (int n = 0; n < N; ++n)
        for (int r = 0; r < rp; ++r) {
            int64_t s = 0;
            for (int k = 0; k < K && r < R; ++k) s += (int64_t)w[(size_t)r * K + k] * x[(size_t)n * kp + k];
            ref[(size_t)n * rp + r] = (int32_t)s;
        }
    for (int isa = 0; isa < RNC_ISA_COUNT; ++isa) {
        int avail = 0;
        rnc_isa_available((rnc_isa)isa, &avail);
        if (!avail || rnc__find_kernel(RNC_OP_GEMV, RNC_Q8, isa) < 0) continue;
        memset(got, 0x55, sizeof(int32_t) * (size_t)N * rp);
        rnc_status st = rnc_kernel_q8_gemv((rnc_isa)isa, wp, rp, kp, x, N, got);
        CHECK(st == RNC_OK, "q8 gemv %s: %s", isa_str(isa), rnc_status_str(st));
        int bad = 0;
        for (size_t i = 0; i < (size_t)N * rp; ++i) bad += got[i] != ref[i];
        CHECK(bad == 0, "q8 gemv %s R=%d K=%d N=%d mode=%d: %d accumulators differ", isa_str(isa), R, K,
              N, mode, bad);
        /* the raw kernel with R rows and unpadded K: writes rows < R only, reads k < K only */
        const rnc_kernel *kr = &rnc__kernels[rnc__find_kernel(RNC_OP_GEMV, RNC_Q8, isa)];
        int32_t *got2 = xmalloc(sizeof(int32_t) * (size_t)N * (R + 1));
        int8_t *xu = xmalloc((size_t)N * K);
        for (int n = 0; n < N; ++n) memcpy(xu + (size_t)n * K, x + (size_t)n * kp, (size_t)K);
        for (size_t i = 0; i < (size_t)N * (R + 1); ++i) got2[i] = 0x7777;
        kr->fn.gemm_q8(wp, R, K, N, xu, K, got2, R + 1);
        bad = 0;
        for (int n = 0; n < N; ++n) {
            for (int r = 0; r < R; ++r) bad += got2[(size_t)n * (R + 1) + r] != ref[(size_t)n * rp + r];
            bad += got2[(size_t)n * (R + 1) + R] != 0x7777;
        }
        CHECK(bad == 0, "q8 gemm %s raw R=%d K=%d N=%d: %d differ", isa_str(isa), R, K, N, bad);
        free(got2);
        free(xu);
    }
    free(w), free(wp), free(x), free(ref), free(got);
}

static void test_gemm_f32_case(int R, int K, int N)
{
    const int rp = (R + 15) / 16 * 16;
    float *w = xmalloc(sizeof(float) * R * K), *wp = xmalloc(sizeof(float) * rp * K);
    float *x = xmalloc(sizeof(float) * N * K), *got = xmalloc(sizeof(float) * N * rp);
    double *ref = xmalloc(sizeof(double) * N * rp), *mag = xmalloc(sizeof(double) * N * rp);
    for (int i = 0; i < R * K; ++i) w[i] = rndf();
    for (int i = 0; i < N * K; ++i) x[i] = rndf() * 3.0f;
    pack_f32(w, R, K, wp);
    for (int n = 0; n < N; ++n)
        for (int r = 0; r < rp; ++r) {
            double s = 0, m = 0;
            for (int k = 0; k < K && r < R; ++k) {
                s += (double)w[(size_t)r * K + k] * x[(size_t)n * K + k];
                m += fabs((double)w[(size_t)r * K + k] * x[(size_t)n * K + k]);
            }
            ref[(size_t)n * rp + r] = s;
            mag[(size_t)n * rp + r] = m;
        }
    for (int isa = 0; isa < RNC_ISA_COUNT; ++isa) {
        int avail = 0;
        rnc_isa_available((rnc_isa)isa, &avail);
        if (!avail || rnc__find_kernel(RNC_OP_GEMV, RNC_F32, isa) < 0) continue;
        rnc_status st = rnc_kernel_f32_gemv((rnc_isa)isa, wp, rp, K, x, N, got);
        CHECK(st == RNC_OK, "f32 gemv %s: %s", isa_str(isa), rnc_status_str(st));
        int bad = 0;
        for (size_t i = 0; i < (size_t)N * rp; ++i) {
            /* float32 summation error bound: K * eps * sum |w x| */
            const double tol = (K + 2) * 6e-8 * mag[i] + 1e-30;
            bad += fabs(got[i] - ref[i]) > tol;
        }
        CHECK(bad == 0, "f32 gemv %s R=%d K=%d N=%d: %d outputs off", isa_str(isa), R, K, N, bad);
    }
    free(w), free(wp), free(x), free(got), free(ref), free(mag);
}

static void test_gemm(void)
{
    static const int Rs[] = {1, 5, 16, 17, 31, 48, 64, 65, 100, 129};
    static const int Ks[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 33, 64, 257};
    for (size_t i = 0; i < sizeof(Rs) / sizeof(Rs[0]); ++i)
        for (size_t j = 0; j < sizeof(Ks) / sizeof(Ks[0]); ++j) {
            const int N = 1 + (int)((i + j) % 3);
            test_gemm_q8_case(Rs[i], Ks[j], N, 0);
            test_gemm_f32_case(Rs[i], Ks[j], N);
        }
    for (int mode = 1; mode <= 3; ++mode) { /* all +-127: the maddubs saturation trap */
        test_gemm_q8_case(64, 1024, 2, mode);
        test_gemm_q8_case(17, 130, 1, mode);
        test_gemm_q8_case(48, 4096, 1, mode);
    }
    /* largest exact K: 127*127*K must fit int32 */
    test_gemm_q8_case(16, 131072, 1, 1);
    printf("  gemm: q8 exact and f32 within bound on every available ISA\n");
}

/* The cell rows are tests/test_kernels.c's table-driven loop. */

/* ---------------------------------------------------------------------- activations */
/* rnc_sigmoidf with its last multiply folded into the quotient (rnc_neon_act8's sigmoid): the
 * Horner sum on 2 Q[k] */
static float sigmoid_fold(float x)
{
    x = 0.5f * x;
    x = x > RNC_TANH_CLAMP ? RNC_TANH_CLAMP : x;
    x = x < -RNC_TANH_CLAMP ? -RNC_TANH_CLAMP : x;
    const float x2 = x * x;
    float p = RNC_TANH_P0;
    p = p * x2 + RNC_TANH_P1;
    p = p * x2 + RNC_TANH_P2;
    p = p * x2 + RNC_TANH_P3;
    p = p * x2 + RNC_TANH_P4;
    p = p * x2 + RNC_TANH_P5;
    p = p * x2 + RNC_TANH_P6;
    p = p * x;
    float q = 2.0f * RNC_TANH_Q0;
    q = q * x2 + 2.0f * RNC_TANH_Q1;
    q = q * x2 + 2.0f * RNC_TANH_Q2;
    q = q * x2 + 2.0f * RNC_TANH_Q3;
    return 0.5f + p / q;
}

static void test_activations(int quick)
{
    double et = 0, es = 0;
    float at = 0, as = 0;
    /* every float32 bit pattern in [0, 20] with a stride (the extrema found by the full sweep,
     * 5.82788 for tanh and 11.5491 for sigmoid, are included explicitly), both signs */
    const uint32_t stride = quick ? 4099 : 61;
    float xs[1];
    for (uint32_t u = 0; u <= 0x41A00000u + stride; u += stride) {
        for (int extra = 0; extra < 3; ++extra) {
            float x;
            if (extra == 0) memcpy(&x, &u, 4);
            else x = extra == 1 ? 5.82788f : 11.5491f;
            for (int sgn = 0; sgn < 2; ++sgn) {
                xs[0] = sgn ? -x : x;
                float t, s;
                rnc_fast_tanh(xs, 1, &t);
                rnc_fast_sigmoid(xs, 1, &s);
                const double e1 = fabs((double)t - tanh((double)xs[0]));
                const double e2 = fabs((double)s - 1.0 / (1.0 + exp(-(double)xs[0])));
                if (e1 > et) et = e1, at = xs[0];
                if (e2 > es) es = e2, as = xs[0];
            }
        }
    }
    /* saturation and specials */
    const float big[] = {30.0f, -30.0f, 1e30f, -1e30f, 0.0f};
    for (int i = 0; i < 5; ++i) {
        float t, s;
        rnc_fast_tanh(&big[i], 1, &t);
        rnc_fast_sigmoid(&big[i], 1, &s);
        CHECK(t >= -1.0f && t <= 1.0f && s >= 0.0f && s <= 1.0f, "activation range at %g", big[i]);
    }
    /* the quotient before rnc_tanhf's final clamp stays in [-1, 1] (the NEON and x86 vector
     * tanh leave that clamp out): every float32 from 7.0 up to 8.0 (quick: the top 2^16 below
     * the clamp, where the maximum 1.0f is reached, and above), a stride below, both signs */
    uint32_t lo;
    const float from = quick ? RNC_TANH_CLAMP : 7.0f;
    memcpy(&lo, &from, 4);
    if (quick) lo -= 65536u;
    for (uint32_t u = 0; u <= 0x7F800000u; u += u >= lo ? 1u : (quick ? 8191u : 127u)) {
        float x;
        memcpy(&x, &u, 4);
        const float r = rnc_tanh_quotient(x), rn = rnc_tanh_quotient(-x);
        CHECK(r >= -1.0f && r <= 1.0f && rn == -r, "tanh quotient %g at %g outside [-1, 1]", r, x);
        if (u >= 0x41000000u && u < 0x7F800000u) u = 0x7F7FFFFFu; /* beyond 8: all clamped */
    }
    /* The NEON GRU loop's sigmoid (rnc_neon_act8 in epilogue_neon.h) folds rnc_sigmoidf's last
     * multiply into the quotient, 0.5 + p / (2 q) for 0.5 + 0.5 * (p / q): equal bit for bit on
     * every float32 (checked over all 2^32 once). Here every float32 with a stride, and every one
     * of the lowest 2^16 patterns and of 2^16 around 2^-124 (where the halving is not exact),
     * both signs; NaN in, NaN out. */
    long fold_bad = 0;
    for (int pass = 0; pass < 3; ++pass) {
        const uint32_t from = pass == 1 ? 0x01800000u - 32768u : 0u;
        const uint32_t step = pass ? 1u : (quick ? 40961u : 6101u);
        const uint32_t to = pass ? from + 65536u : 0x7FFFFFFFu;
        for (uint32_t u = from; u < to && u >= from; u += step)
            for (uint32_t sg = 0; sg < 2; ++sg) {
                const uint32_t w = u | sg << 31;
                float x;
                memcpy(&x, &w, 4);
                const float r = rnc_sigmoidf(x), f = sigmoid_fold(x);
                fold_bad += memcmp(&r, &f, 4) != 0 && !(r != r && f != f);
            }
    }
    CHECK(fold_bad == 0, "sigmoid with the folded multiply differs on %ld inputs", fold_bad);
    printf("  activations: max |err| tanh %.3g (at %.6g), sigmoid %.3g (at %.6g)\n", et, at, es, as);
    CHECK(et <= 4.5e-7, "tanh max error %.3g above the documented 4.1e-7 bound", et);
    CHECK(es <= 2.5e-7, "sigmoid max error %.3g above the documented 2.3e-7 bound", es);
}

/* ---------------------------------------------- quantiser, projection, row-correction rows */
/* Every QUANTIZE and GEMM_DEQ row of the kernel table this CPU runs, bitwise against its
 * generic twin, at every shape of its column range; every such row must be reached. */
static void test_table_ops(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {16, 4, 3}, {17, 33, 5}, {48, 100, 16}, {70, 257, 40},
                                    {33, 7, 17}};
    static const float specials[] = {NAN, INFINITY, -INFINITY, 1e-40f, -0.0f, 3e38f};
    for (size_t k = 0; k < rnc__kernel_count; ++k) {
        const rnc_kernel *kr = &rnc__kernels[k];
        int avail = 0, reached = 0;
        rnc_isa_available((rnc_isa)kr->isa, &avail);
        if (!avail || (kr->op != RNC_OP_QUANTIZE && kr->op != RNC_OP_GEMM_DEQ))
            continue;
        const rnc_kernel *gen = &rnc__kernels[rnc__find_kernel(kr->op, kr->precision, RNC_ISA_GENERIC)];
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
            const int R = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            const int rp = (R + 15) / 16 * 16, kp = (K + 3) / 4 * 4, ldy = rp + 3;
            if (!rnc__kernel_serves(kr, kr->op == RNC_OP_GEMM_DEQ ? (uint32_t)N : 1u, RNC_IN_X, 0, 1)) continue;
            ++reached;
            int8_t *w = xmalloc((size_t)R * K), *wp = xmalloc((size_t)rp * kp), *q = xmalloc((size_t)N * kp);
            float *sx = xmalloc(4 * (size_t)N), *sw = xmalloc(4 * (size_t)rp), *b = xmalloc(4 * (size_t)rp);
            float *y0 = xmalloc(4 * (size_t)N * ldy), *y1 = xmalloc(4 * (size_t)N * ldy);
            for (size_t i = 0; i < (size_t)R * K; ++i) w[i] = s % 2 ? (rnd() % 2 ? 127 : -127) : rnd_q();
            pack_q8(w, R, K, wp);
            for (size_t i = 0; i < (size_t)N * kp; ++i) q[i] = (i % kp) < (size_t)K ? rnd_q() : 0;
            for (int n = 0; n < N; ++n) sx[n] = 0.01f + 0.005f * rndf();
            for (int r = 0; r < rp; ++r) sw[r] = 0.002f + 0.001f * rndf(), b[r] = rndf();
            int same = 1;
            if (kr->isa == RNC_ISA_GENERIC && kr->op == RNC_OP_GEMM_DEQ) { /* kernel sums vs the rows */
                int32_t *sums = xmalloc(4 * (size_t)rp);
                rnc_q8_rowsum_generic(wp, R, K, sums);
                for (int r = 0; r < rp; ++r) {
                    int32_t want = 0;
                    for (int k = 0; r < R && k < K; ++k) want += w[(size_t)r * K + k];
                    CHECK(sums[r] == want, "rnc_q8_rowsum_generic R=%d K=%d row %d", R, K, r);
                }
                free(sums);
            }
            if (kr->op == RNC_OP_GEMM_DEQ) {
                gen->fn.gemm_deq(wp, R, K, N, q, kp, sx, sw, b, y0, ldy);
                kr->fn.gemm_deq(wp, R, K, N, q, kp, sx, sw, b, y1, ldy);
                for (int n = 0; n < N; ++n) same &= !memcmp(y0 + (size_t)n * ldy, y1 + (size_t)n * ldy, 4 * (size_t)R);
            } else {
                float *v = xmalloc(4 * (size_t)K);
                int8_t *q0 = xmalloc((size_t)kp + 8), *q1 = xmalloc((size_t)kp + 8);
                /* dynamic, a static scale, the bounded state scale 1/127 (inverse 127) */
                for (int st = 0; st < 3; ++st) {
                    const float sc = st == 0 ? 0.0f : st == 1 ? 0.05f : 1.0f / 127.0f;
                    const float inv = st ? 1.0f / sc : 0.0f;
                    for (int i = 0; i < K; ++i) v[i] = rndf() * (s % 2 && st < 2 ? 1e4f : 1.0f);
                    if (s >= 2) v[rnd() % (uint32_t)K] = specials[rnd() % 6];
                    float s0 = -1, s1 = -2;
                    memset(q1, 0x55, (size_t)kp + 8);
                    gen->fn.quantize(v, (size_t)K, (size_t)kp + 8, sc, inv, q0, &s0);
                    kr->fn.quantize(v, (size_t)K, (size_t)kp + 8, sc, inv, q1, &s1);
                    same &= !memcmp(q0, q1, (size_t)kp + 8) && !memcmp(&s0, &s1, 4);
                    if (st) { /* no precomputed inverse given (0): the row computes it, same bits */
                        memset(q1, 0x55, (size_t)kp + 8);
                        kr->fn.quantize(v, (size_t)K, (size_t)kp + 8, sc, 0.0f, q1, &s1);
                        same &= !memcmp(q0, q1, (size_t)kp + 8) && !memcmp(&s0, &s1, 4);
                    }
                }
                if (K >= 16) {
                    /* NaN products in the vector lanes, codes 0: a NaN input with a static scale;
                     * 0 * inf with a dynamic scale whose inverse overflows (max |v| subnormal) */
                    for (int i = 0; i < K; ++i) v[i] = rndf();
                    v[1] = NAN;
                    v[K / 2] = -NAN;
                    float s0 = -1, s1 = -2;
                    gen->fn.quantize(v, (size_t)K, (size_t)kp + 8, 0.05f, 20.0f, q0, &s0);
                    kr->fn.quantize(v, (size_t)K, (size_t)kp + 8, 0.05f, 20.0f, q1, &s1);
                    same &= !memcmp(q0, q1, (size_t)kp + 8) && !memcmp(&s0, &s1, 4);
                    CHECK(q1[1] == 0 && q1[K / 2] == 0, "%s K=%d: NaN codes %d %d, want 0", kr->name, K,
                          q1[1], q1[K / 2]);
                    for (int i = 0; i < K; ++i) v[i] = 0.0f;
                    v[2] = 1e-45f;
                    v[K - 1] = -1e-45f;
                    gen->fn.quantize(v, (size_t)K, (size_t)kp + 8, 0.0f, 0.0f, q0, &s0);
                    kr->fn.quantize(v, (size_t)K, (size_t)kp + 8, 0.0f, 0.0f, q1, &s1);
                    same &= !memcmp(q0, q1, (size_t)kp + 8) && !memcmp(&s0, &s1, 4);
                    CHECK(q1[0] == 0 && q1[2] == 127 && q1[K - 1] == -127, "%s K=%d: subnormal max: codes %d %d %d",
                          kr->name, K, q1[0], q1[2], q1[K - 1]);
                }
                free(v), free(q0), free(q1);
            }
            CHECK(same, "%s R=%d K=%d N=%d differs from %s", kr->name, R, K, N, gen->name);
            free(w), free(wp), free(q), free(sx), free(sw), free(b), free(y0), free(y1);
        }
        CHECK(reached > 0, "%s: no case within its range", kr->name);
    }
    printf("  quantiser and projection rows: bit-identical to generic on every available ISA\n");
}

/* ------------------------------------------------------------------------ log_mel real FFT */
/* The FFT plan and its rows (kernels/f32_fft_generic.c, fft_avx2.c, fft_avx512.c, fft_neon.c):
 * every even n_fft whose half has no prime factor above 5 is planned, the others are not (the
 * tables' product runs them); tables that are not the DFT's are not planned either; every
 * available row gives the generic row's bits, and the generic row's power spectrum agrees with a
 * double-precision DFT. The sizes reach every vector path of the rows: first radix-4 passes with
 * M/4 a multiple of the lanes or not (400: 50), passes of each radix at Ns = 4 with an odd number
 * of two-block groups (200, 24, 40), at Ns a multiple of 4 but not of 8 or 16 (120: 12, 200: 20),
 * at Ns not a multiple of 4 (60: 6, 150: 15, 250: 5 and 25, 500: 10 and 50), and the split's
 * vector loop with and without a scalar rest. */
static void test_rfft_rows(void)
{
    static const uint32_t sizes[] = {2, 4, 6, 8, 10, 12, 16, 18, 24, 30, 32, 40, 50, 60, 64, 96, 120, 128,
                                     150, 160, 200, 250, 256, 320, 400, 480, 500, 512, 1000, 1024, 2048,
                                     14, 22, 63, 255, 202};
    const double tau = 6.283185307179586477;
    size_t *compared = calloc(rnc__kernel_count, sizeof *compared); /* per row: cases compared */
    CHECK(compared != NULL, "calloc");
    if (!compared) return;
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; ++t) {
        const uint32_t n = sizes[t], nf = n / 2 + 1, rp = (nf + 15) / 16 * 16;
        uint32_t half = n / 2;
        while (half % 2 == 0 && half > 1) half /= 2;
        while (half % 3 == 0) half /= 3;
        while (half % 5 == 0) half /= 5;
        const int want = n % 2 == 0 && half == 1;
        float *dft = xmalloc(4 * 2 * (size_t)rp * nf), *win = xmalloc(4 * (size_t)n), *x = xmalloc(4 * (size_t)n);
        memset(dft, 0, 4 * 2 * (size_t)rp * nf);
        for (uint32_t k = 0; k < nf; ++k)
            for (uint32_t j = 0; j < nf; ++j) {
                const double a = tau * (double)((uint64_t)k * j % n) / n;
                const size_t at = ((size_t)(k / 16) * nf + j) * 16 + k % 16;
                dft[at] = (float)cos(a);
                dft[(size_t)rp * nf + at] = (float)-sin(a);
            }
        rnc_front_op F;
        memset(&F, 0, sizeof F);
        F.in_w = n;
        F.dft = dft;
        F.window = win;
        CHECK(rnc__fft_plan(&F, n) == want && (F.fft_m != 0) == want, "fft plan n=%u: %u, want %d", n, F.fft_m, want);
        if (!want) {
            free(dft), free(win), free(x);
            continue;
        }
        /* one entry of the sines off by 1e-5: not the DFT's tables, no FFT */
        const size_t bad = ((size_t)((nf - 1) / 16) * nf + nf / 2) * 16 + (nf - 1) % 16 + (size_t)rp * nf;
        const float keep = dft[bad];
        dft[bad] += 1e-5f;
        CHECK(rnc__fft_plan(&F, n) == 0 && F.fft_m == 0, "fft plan n=%u: tables off by 1e-5 planned", n);
        dft[bad] = keep;
        CHECK(rnc__fft_plan(&F, n) == 1, "fft plan n=%u after the fix", n);
        const size_t ntw = rnc__fft_tw_floats(&F);
        float *tw = xmalloc(4 * ntw), *work = xmalloc(4 * 4 * (size_t)F.fft_m);
        float *p0 = xmalloc(4 * (size_t)nf), *p1 = xmalloc(4 * (size_t)nf);
        rnc__fft_twiddles(&F, tw);
        for (uint32_t i = 0; i < n; ++i) win[i] = 0.5f - 0.5f * (float)cos(tau * i / n) + 0.01f, x[i] = rndf();
        for (uint32_t power = 1; power <= 2; ++power) {
            const rnc_fft_args a = {F.fft_m, F.fft_nst, power, F.fft_radix, tw, win, x, work, p0};
            rnc_f32_rfft_power_generic(&a);
            double err = 0, top = 0;
            for (uint32_t k = 0; k < nf; ++k) {
                double re = 0, im = 0;
                for (uint32_t i = 0; i < n; ++i) {
                    const double u = (double)win[i] * x[i], ang = tau * (double)((uint64_t)k * i % n) / n;
                    re += u * cos(ang);
                    im -= u * sin(ang);
                }
                const double pw = power == 2 ? re * re + im * im : sqrt(re * re + im * im);
                err = fmax(err, fabs(pw - p0[k]));
                top = fmax(top, pw);
            }
            CHECK(err <= 2e-6 * top, "rfft n=%u power %u: max error %g of %g against the double DFT", n, power,
                  err, top);
            for (size_t r = 0; r < rnc__kernel_count; ++r) {
                const rnc_kernel *kr = &rnc__kernels[r];
                int avail = 0;
                rnc_isa_available((rnc_isa)kr->isa, &avail);
                if (!avail || kr->op != RNC_OP_RFFT_POWER) continue;
                rnc_fft_args b = a;
                b.p = p1;
                memset(p1, 0x55, 4 * (size_t)nf);
                kr->fn.rfft(&b);
                CHECK(!memcmp(p0, p1, 4 * (size_t)nf), "%s n=%u power %u differs from the generic row", kr->name, n, power);
                ++compared[r];
            }
        }
        free(dft), free(win), free(x), free(tw), free(work), free(p0), free(p1);
    }
    printf("  log_mel FFT: planned sizes agree with a double DFT, every row bit-identical to generic:");
    for (size_t r = 0; r < rnc__kernel_count; ++r) {
        const rnc_kernel *kr = &rnc__kernels[r];
        int avail = 0;
        rnc_isa_available((rnc_isa)kr->isa, &avail);
        if (kr->op != RNC_OP_RFFT_POWER || !avail) continue;
        CHECK(compared[r] > 0, "%s: never compared", kr->name);
        printf(" %s", kr->name);
    }
    printf("\n");
    free(compared);
}

/* log_mel's logarithm (kernels/logf.h) against binary64 log: within 1 ulp on every 61st positive
 * finite float32 (subnormals included; the sweep over all of them measured 0.83 ulp at most), exact
 * at 1, C's logf at the special values. */
static void test_logf(void)
{
    double worst = 0.0;
    for (uint32_t b = 1; b < 0x7f800000u; b += 61) {
        float x;
        memcpy(&x, &b, sizeof x);
        const double want = log((double)x), got = rnc_logf(x);
        if (want == 0.0) continue;
        const double ulp = ldexp(1.0, ilogb((float)want) - 23), err = fabs(got - want) / ulp;
        worst = err > worst ? err : worst;
    }
    CHECK(worst <= 1.0, "rnc_logf: %.3f ulp from binary64 log", worst);
    CHECK(rnc_logf(1.0f) == 0.0f, "rnc_logf(1) = %g", rnc_logf(1.0f));
    CHECK(rnc_logf(0.0f) == -INFINITY && rnc_logf(-0.0f) == -INFINITY, "rnc_logf(+-0) not -inf");
    CHECK(isnan(rnc_logf(-1.0f)) && isnan(rnc_logf(-INFINITY)) && isnan(rnc_logf(NAN)), "rnc_logf: NaN cases");
    CHECK(rnc_logf(INFINITY) == INFINITY, "rnc_logf(inf) = %g", rnc_logf(INFINITY));
    printf("  log_mel logf: %.3f ulp at most on the sweep, special values as C's logf\n", worst);
}

/* ------------------------------------------------------------------------ quantisation */
static void test_quantize(void)
{
    const float v[] = {0.5f, -1.0f, 0.25f, 1.0f / 254.0f, 3.0f / 254.0f, -0.0f};
    int8_t q[6];
    float s;
    CHECK(rnc_quantize_q8(v, 6, 0, q, &s) == RNC_OK, "quantize");
    /* m = 1, inv = 127: 63.5 -> 64 (ties to even), -127, 31.75 -> 32, 0.5 -> 0, 1.5 -> 2 */
    CHECK(q[0] == 64 && q[1] == -127 && q[2] == 32 && q[3] == 0 && q[4] == 2 && q[5] == 0,
          "quantize values %d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5]);
    CHECK(s == 1.0f / 127.0f, "quantize scale");
    const float z[3] = {0, 0, 0};
    CHECK(rnc_quantize_q8(z, 3, 0, q, &s) == RNC_OK && s == 0.0f && !q[0] && !q[1] && !q[2], "zero vector");
    const float nan[2] = {1.0f, NAN};
    CHECK(rnc_quantize_q8(nan, 2, 0, q, &s) == RNC_E_VALUE, "NaN input must fail");
    const float st[3] = {1.0f, -5.0f, 0.3f};
    CHECK(rnc_quantize_q8(st, 3, 0.01f, q, &s) == RNC_OK && q[0] == 100 && q[1] == -127 && q[2] == 30 &&
              s == 0.01f,
          "static scale %d %d %d", q[0], q[1], q[2]);
}

/* ---------------------------------------------------------------------------- vectors */
typedef struct {
    unsigned char *buf;
    size_t len;
} blob;

static blob read_file(const char *path)
{
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) return b;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.buf = xmalloc((size_t)n + 64);
    b.len = fread(b.buf, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return b;
}

typedef struct {
    uint32_t mode, B, T, in_w, out_w, uses_ids, has_len, pooled;
    float atol, rtol;
    const void *x;
    const int32_t *len;
    const float *y, *h, *c;
    uint32_t nh, nc;
} vcase;

static int parse_case(const blob *b, vcase *c)
{
    const unsigned char *p = b->buf;
    uint32_t hd[9];
    if (b->len < 44) return 0;
    memcpy(hd, p, 36);
    if (hd[0] != 0x45534143u) return 0;
    c->mode = hd[1], c->B = hd[2], c->T = hd[3], c->in_w = hd[4], c->out_w = hd[5];
    c->uses_ids = hd[6], c->has_len = hd[7], c->pooled = hd[8];
    memcpy(&c->atol, p + 36, 4);
    memcpy(&c->rtol, p + 40, 4);
    size_t o = 44;
    c->x = p + o;
    o += (size_t)c->B * c->T * c->in_w * 4;
    c->len = c->has_len ? (const int32_t *)(p + o) : NULL;
    o += c->has_len ? (size_t)c->B * 4 : 0;
    c->y = (const float *)(p + o);
    o += (size_t)c->B * (c->pooled ? 1 : c->T) * c->out_w * 4;
    memcpy(&c->nh, p + o, 4);
    c->h = (const float *)(p + o + 4);
    o += 4 + (size_t)c->nh * 4;
    memcpy(&c->nc, p + o, 4);
    c->c = (const float *)(p + o + 4);
    o += 4 + (size_t)c->nc * 4;
    return o == b->len;
}

static int close_enough(const float *got, const float *want, size_t n, float atol, float rtol, double *maxd)
{
    int bad = 0;
    *maxd = 0;
    for (size_t i = 0; i < n; ++i) {
        const double d = fabs((double)got[i] - want[i]);
        if (d > *maxd) *maxd = d;
        if (!(d <= atol + rtol * fabs((double)want[i]))) ++bad;
    }
    return bad;
}

/* The generic path's outputs and final state of one vector case, for the cross-ISA check. */
typedef struct {
    float *y, *h, *c;
} isa_ref;

static float *dup_floats(const float *v, size_t n)
{
    float *p = xmalloc(sizeof(float) * (n + 1));
    memcpy(p, v, sizeof(float) * n);
    return p;
}

/* One vector case on one ISA: against the NumPy reference (tolerance), run == step, and for q8
 * every ISA's outputs and final state bit-identical to the generic path's (`ref`, filled by the
 * generic run, which comes first). `ext` picks the file: ".rnc" (format version 2) or ".v1.rnc"
 * (the same model as version 1). `mine` (optional) receives this run's outputs and final state;
 * with `same`, they must be bit-identical to those (the other version's file on this ISA). */
static void run_vector(const char *dir, const char *name, const char *ext, rnc_isa isa, isa_ref *ref,
                       isa_ref *mine, const isa_ref *same)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    blob mb = read_file(path);
    snprintf(path, sizeof path, "%s/%s.case", dir, name);
    blob cb = read_file(path);
    vcase c;
    CHECK(mb.len && cb.len && parse_case(&cb, &c), "%s: cannot read vectors", name);
    if (!mb.len || !cb.len || !parse_case(&cb, &c)) return;
    rnc_model m;
    rnc_status st = rnc_model_init(&m, mb.buf, mb.len);
    CHECK(st == RNC_OK, "%s: init: %s", name, rnc_status_str(st));
    if (st != RNC_OK) return;
    CHECK(rnc_model_set_isa(&m, isa) == RNC_OK, "%s: set_isa", name);
    rnc_model_info info;
    rnc_model_get_info(&m, &info);
    CHECK(info.output_size == c.out_w && info.uses_ids == c.uses_ids, "%s: info", name);
    CHECK(info.h_floats * c.B == c.nh && info.c_floats * c.B == c.nc, "%s: state sizes", name);
    size_t sbytes, rbytes;
    CHECK(rnc_state_size(&m, c.B, &sbytes) == RNC_OK, "state size");
    CHECK(rnc_run_scratch_size(&m, c.B, c.T, &rbytes) == RNC_OK, "scratch size");
    void *smem = xmalloc(sbytes), *scratch = xmalloc(rbytes);
    rnc_state s;
    CHECK(rnc_state_init(&m, c.B, smem, sbytes, &s) == RNC_OK, "state init");
    const size_t ysize = (size_t)c.B * (c.pooled ? 1 : c.T) * c.out_w;
    float *y = xmalloc(sizeof(float) * (ysize + 1));
    /* NaN, not zeros: run must write every output (zeros past the lengths included); the Python
     * binding hands it uninitialised memory */
    for (size_t i = 0; i < ysize; ++i) y[i] = NAN;
    double maxd;
    int bad;
    if (c.mode == 0) { /* stream: T calls of step */
        float *xt = xmalloc(sizeof(float) * c.B * c.in_w), *yt = xmalloc(sizeof(float) * c.B * c.out_w);
        for (uint32_t t = 0; t < c.T; ++t) {
            for (uint32_t b = 0; b < c.B; ++b)
                memcpy((char *)xt + (size_t)b * c.in_w * 4,
                       (const char *)c.x + ((size_t)b * c.T + t) * c.in_w * 4, (size_t)c.in_w * 4);
            st = c.uses_ids ? rnc_step_ids(&m, &s, (const int32_t *)xt, yt) : rnc_step(&m, &s, xt, yt);
            CHECK(st == RNC_OK, "%s step: %s", name, rnc_status_str(st));
            for (uint32_t b = 0; b < c.B; ++b)
                memcpy(y + ((size_t)b * c.T + t) * c.out_w, yt + (size_t)b * c.out_w, (size_t)c.out_w * 4);
        }
        free(xt), free(yt);
    } else {
        st = c.uses_ids ? rnc_run_ids(&m, &s, c.x, c.len, c.T, y, scratch, rbytes)
                        : rnc_run(&m, &s, c.x, c.len, c.T, y, scratch, rbytes);
        CHECK(st == RNC_OK, "%s run: %s", name, rnc_status_str(st));
    }
    bad = close_enough(y, c.y, ysize, c.atol, c.rtol, &maxd);
    CHECK(bad == 0, "%s [%s]: %d outputs off the reference (max diff %.3g)", name, isa_str(isa), bad, maxd);
    bad = close_enough(s.h, c.h, c.nh, c.atol, c.rtol, &maxd);
    CHECK(bad == 0, "%s [%s]: final h: %d off (max %.3g)", name, isa_str(isa), bad, maxd);
    if (c.nc) {
        bad = close_enough(s.c, c.c, c.nc, c.atol, c.rtol, &maxd);
        CHECK(bad == 0, "%s [%s]: final c: %d off (max %.3g)", name, isa_str(isa), bad, maxd);
    }
    if (mine) {
        mine->y = dup_floats(y, ysize);
        mine->h = dup_floats(s.h, c.nh);
        mine->c = dup_floats(c.nc ? s.c : s.h, c.nc);
    }
    if (same && same->y) {
        CHECK(memcmp(y, same->y, sizeof(float) * ysize) == 0 && memcmp(s.h, same->h, sizeof(float) * c.nh) == 0 &&
                  (!c.nc || memcmp(s.c, same->c, sizeof(float) * c.nc) == 0),
              "%s%s [%s]: outputs or final state differ from the other format version's", name, ext,
              isa_str(isa));
    }
    if (isa == RNC_ISA_GENERIC) {
        ref->y = dup_floats(y, ysize);
        ref->h = dup_floats(s.h, c.nh);
        ref->c = dup_floats(c.nc ? s.c : s.h, c.nc);
    } else if (info.precision == RNC_Q8 && ref->y) {
        CHECK(memcmp(y, ref->y, sizeof(float) * ysize) == 0 && memcmp(s.h, ref->h, sizeof(float) * c.nh) == 0 &&
                  (!c.nc || memcmp(s.c, ref->c, sizeof(float) * c.nc) == 0),
              "%s [%s]: q8 %s outputs or state differ from the generic path's", name, isa_str(isa),
              c.mode == 0 ? "step" : "run");
    }
    if (c.mode == 0) {
        /* run() of the same inputs gives the step path's results exactly */
        float *y2 = xmalloc(sizeof(float) * (ysize + 1));
        for (size_t i = 0; i < ysize; ++i) y2[i] = NAN;
        float *h1 = xmalloc(sizeof(float) * (c.nh + 1));
        memcpy(h1, s.h, sizeof(float) * c.nh);
        rnc_state_reset(&s);
        st = c.uses_ids ? rnc_run_ids(&m, &s, c.x, NULL, c.T, y2, scratch, rbytes)
                        : rnc_run(&m, &s, c.x, NULL, c.T, y2, scratch, rbytes);
        CHECK(st == RNC_OK, "%s run: %s", name, rnc_status_str(st));
        /* q8: bit for bit (same quantisation per vector, exact accumulators, same epilogue).
         * f32: the products may be summed differently for one column and for many (a kernel
         * may block columns), so equal to float rounding; generic/avx2 are column-invariant. */
        const int exact = info.precision == RNC_Q8 || isa == RNC_ISA_GENERIC || isa == RNC_ISA_AVX2;
        if (exact) {
            if (!info.last_step)
                CHECK(memcmp(y, y2, sizeof(float) * ysize) == 0, "%s [%s]: run != step", name,
                      isa_str(isa));
            CHECK(memcmp(h1, s.h, sizeof(float) * c.nh) == 0, "%s [%s]: run state != step state",
                  name, isa_str(isa));
        } else {
            if (!info.last_step) {
                bad = close_enough(y2, y, ysize, 1e-5f, 1e-5f, &maxd);
                CHECK(bad == 0, "%s [%s]: run != step (max %.3g)", name, isa_str(isa), maxd);
            }
            bad = close_enough(s.h, h1, c.nh, 1e-5f, 1e-5f, &maxd);
            CHECK(bad == 0, "%s [%s]: run state != step state (max %.3g)", name, isa_str(isa), maxd);
        }
        free(y2), free(h1);
    } else {
        /* a reverse layer (cell option) runs whole sequences only, as a bidirectional one; a
         * strided model of the vectors gives no output at a fresh stream's first step (its pooling
         * window fills; after the run the rows' countdowns differ with their lengths) */
        if (m.strided) rnc_state_reset(&s);
        const rnc_status want = info.bidirectional || m.plan.reverse ? RNC_E_BIDIRECTIONAL
                                : c.uses_ids                        ? RNC_E_ARG
                                : m.strided                         ? RNC_NO_OUTPUT
                                                                    : RNC_OK;
        CHECK(rnc_step(&m, &s, (const float *)c.x, y) == want, "%s: step status", name);
    }
    free(smem), free(scratch), free(y), free(mb.buf), free(cb.buf);
}

static void test_state_restore(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/lstm_q8_stack_head.rnc", dir);
    blob mb = read_file(path);
    rnc_model m;
    CHECK(mb.len && rnc_model_init(&m, mb.buf, mb.len) == RNC_OK, "restore: init");
    if (!mb.len) return;
    size_t sb;
    rnc_state_size(&m, 2, &sb);
    void *mem = xmalloc(sb);
    rnc_state s;
    rnc_state_init(&m, 2, mem, sb, &s);
    float x[8], y1[20][6], y2[20][6];
    float *saved_h = xmalloc(sizeof(float) * s.h_count), *saved_c = xmalloc(sizeof(float) * s.c_count);
    uint64_t seed = g_rng;
    for (int t = 0; t < 20; ++t) {
        for (int i = 0; i < 8; ++i) x[i] = rndf();
        if (t == 10) {
            memcpy(saved_h, s.h, sizeof(float) * s.h_count);
            memcpy(saved_c, s.c, sizeof(float) * s.c_count);
        }
        rnc_step(&m, &s, x, y1[t]);
    }
    g_rng = seed;
    rnc_state_reset(&s);
    for (int t = 0; t < 20; ++t) {
        for (int i = 0; i < 8; ++i) x[i] = rndf();
        if (t == 10) {
            memcpy(s.h, saved_h, sizeof(float) * s.h_count);
            memcpy(s.c, saved_c, sizeof(float) * s.c_count);
        }
        if (t >= 10) rnc_step(&m, &s, x, y2[t]);
    }
    CHECK(memcmp(y1[10], y2[10], sizeof(float) * 6 * 10) == 0, "restored state continues identically");
    /* NaN input: error, state untouched */
    memcpy(saved_h, s.h, sizeof(float) * s.h_count);
    x[3] = NAN;
    CHECK(rnc_step(&m, &s, x, y1[0]) == RNC_E_VALUE, "NaN step must fail");
    CHECK(memcmp(saved_h, s.h, sizeof(float) * s.h_count) == 0, "NaN step leaves the state");
    free(mem), free(saved_h), free(saved_c), free(mb.buf);
}

/* ----------------------------------------------------------------------------- hostile */
static void fix_crc(unsigned char *b, size_t len)
{
    uint32_t crc, fs;
    memcpy(&fs, b + 8, 4);
    if (fs > len || fs < 16) return;
    rnc_crc32(b + 16, fs - 16, &crc);
    memcpy(b + 12, &crc, 4);
}

/* Init; if it succeeds, run a step and a short run on whatever the file now says. */
static rnc_status try_model(const unsigned char *buf, size_t len)
{
    rnc_model m;
    rnc_status st = rnc_model_init(&m, buf, len);
    if (st >= RNC_E_MAGIC && st <= RNC_E_UNSUPPORTED) { /* a loader refusal names part and field */
        const char *why = NULL, *sep = NULL;
        const int got = rnc_model_error(&m, &why) == RNC_OK && why;
        if (got) sep = strstr(why, ": ");
        CHECK(got && strlen(why) < RNC_ERROR_TEXT_SIZE && sep && strstr(sep + 2, ": ") &&
                  (!strncmp(why, "header: ", 8) || !strncmp(why, "record ", 7) || !strncmp(why, "layer ", 6)),
              "refusal %s without its '<part>: <field>: <problem>' line: '%s'", rnc_status_str(st),
              got ? why : "(null)");
    }
    if (st != RNC_OK) return st;
    rnc_model_info info;
    rnc_model_get_info(&m, &info);
    size_t sb = 0, rb = 0;
    if (rnc_state_size(&m, 2, &sb) != RNC_OK || rnc_run_scratch_size(&m, 2, 3, &rb) != RNC_OK) return st;
    if (sb > (64u << 20) || rb > (64u << 20)) return st;
    void *mem = xmalloc(sb), *scr = xmalloc(rb);
    float *x = xmalloc(sizeof(float) * 6 * info.input_size), *y = xmalloc(sizeof(float) * 6 * info.output_size);
    int32_t ids[6] = {0, 1, 0, 0, 1, 0}, lens[2] = {3, 1};
    rnc_state s;
    if (rnc_state_init(&m, 2, mem, sb, &s) == RNC_OK) {
        for (uint32_t i = 0; i < 6 * info.input_size; ++i) x[i] = rndf();
        if (info.uses_ids && info.embed_num < 2) ids[1] = ids[4] = 0;
        if (info.uses_ids) {
            rnc_step_ids(&m, &s, ids, y);
            rnc_run_ids(&m, &s, ids, lens, 3, y, scr, rb);
        } else {
            rnc_step(&m, &s, x, y);
            rnc_run(&m, &s, x, lens, 3, y, scr, rb);
        }
    }
    free(mem), free(scr), free(x), free(y);
    return st;
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

typedef struct {
    size_t off;
    uint32_t val;
    rnc_status want; /* RNC_OK here: any failure will do */
} edit;

/* Apply each edit to a copy (checksum fixed; file_size edits: over the buffer), expect a refusal. */
static void check_edits(const char *name, const blob *mb, unsigned char *b, const edit *edits, size_t ne)
{
    const size_t n = mb->len;
    for (size_t e = 0; e < ne; ++e) {
        memcpy(b, mb->buf, n);
        put32(b + edits[e].off, edits[e].val);
        if (edits[e].off != RNC_AT_hdr1_file_size) fix_crc(b, n);
        else {
            uint32_t crc;
            rnc_crc32(b + RNC_CRC_START, n - RNC_CRC_START, &crc);
            put32(b + RNC_AT_hdr1_crc32, crc);
        }
        const rnc_status st = try_model(b, n);
        if (edits[e].want == RNC_OK)
            CHECK(st != RNC_OK, "%s: edit @%zu=%u accepted", name, edits[e].off, edits[e].val);
        else
            CHECK(st == edits[e].want, "%s: edit @%zu=%#x gave %s, expected %s", name, edits[e].off,
                  edits[e].val, rnc_status_str(st), rnc_status_str(edits[e].want));
    }
}

/* Byte offset of record i of a version 2 file (the file must be valid). */
static size_t rec_at(const unsigned char *b, uint32_t i)
{
    size_t pos = RNC_SIZE_hdr2;
    for (uint32_t k = 0; k < i; ++k) pos += rnc_rec_size(b + pos);
    return pos;
}

/* Byte offset of the first record of `kind`, 0 when there is none. */
static size_t rec_find(const unsigned char *b, uint32_t kind)
{
    for (uint32_t i = 0; i < rnc_hdr2_num_records(b); ++i)
        if (rnc_rec_kind(b + rec_at(b, i)) == kind) return rec_at(b, i);
    return 0;
}

/* Version 2 field edits with a valid checksum: each must give exactly its status (structure:
 * RNC_E_CORRUPT; a record sequence the executor cannot run, unknown kinds included:
 * RNC_E_UNSUPPORTED). */
static void hostile_v2_edits(const char *name, const blob *mb, unsigned char *b)
{
    const unsigned char *m = mb->buf;
    const uint32_t nrec = rnc_hdr2_num_records(m), rsize = rnc_hdr2_records_size(m);
    const size_t r0 = rec_at(m, 0), rl = rec_at(m, nrec - 1), rr = rec_find(m, RNC_REC_RECURRENT);
    const size_t lin = rec_find(m, RNC_REC_LINEAR), last = rec_find(m, RNC_REC_LAST_STEP);
    const size_t w0 = rr + RNC_REC_RECURRENT_DIR0; /* direction 0's cellw */
    const uint32_t w_ih_off = rnc_ref_offset(rnc_cellw_w_ih(m + w0));
    const int emb = rnc_rec_kind(m + r0) == RNC_REC_EMBEDDING;
    CHECK(rr && lin, "%s: expected recurrent and linear records", name);
    edit e[64];
    size_t ne = 0;
#define ADD(o, v, w) (e[ne].off = (o), e[ne].val = (v), e[ne].want = (w), ++ne)
    ADD(RNC_AT_hdr2_version, 3, RNC_E_VERSION);
    ADD(RNC_AT_hdr2_file_size, 0xFFFFFFF0u, RNC_E_TRUNCATED);
    ADD(RNC_AT_hdr2_file_size, 20, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_header_size, 128, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_precision, 7, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_input_size, 0xFFFFFFFFu, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_input_size, emb ? 5u : 0u, RNC_E_CORRUPT); /* ids input <=> embedding first */
    ADD(RNC_AT_hdr2_num_records, 0, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_num_records, nrec + 1, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_num_records, nrec - 1, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_num_records, 0x7FFFFFFFu, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_records_size, rsize + 8, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_records_size, rsize - 8, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_records_size, 0xFFFFFFF0u, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_flags, 1, RNC_E_CORRUPT);
    ADD(RNC_AT_hdr2_flags + 4, 1, RNC_E_CORRUPT); /* reserved */
    ADD(RNC_SIZE_hdr2 - 4, 0x100, RNC_E_CORRUPT); /* reserved */
    /* record structure */
    ADD(r0 + RNC_AT_rec_size, 0, RNC_E_CORRUPT);
    ADD(r0 + RNC_AT_rec_size, 4, RNC_E_CORRUPT);
    ADD(r0 + RNC_AT_rec_size, rnc_rec_size(m + r0) + 4, RNC_E_CORRUPT);
    ADD(r0 + RNC_AT_rec_size, rnc_rec_size(m + r0) + 8, RNC_E_CORRUPT);
    ADD(r0 + RNC_AT_rec_size, 0xFFFFFFF8u, RNC_E_CORRUPT);
    ADD(rl + RNC_AT_rec_size, rnc_rec_size(m + rl) - 8, RNC_E_CORRUPT);
    /* unknown kinds (the record sizes still walk): a file this library cannot run */
    ADD(r0 + RNC_AT_rec_kind, 99, RNC_E_UNSUPPORTED);
    ADD(r0 + RNC_AT_rec_kind, 0, RNC_E_UNSUPPORTED);
    ADD(rl + RNC_AT_rec_kind, 0xFFFFFFFFu, RNC_E_UNSUPPORTED);
    /* known kinds in an order the executor does not run */
    ADD(r0 + RNC_AT_rec_kind, RNC_REC_LINEAR, RNC_E_UNSUPPORTED);          /* head first */
    ADD(rr + RNC_AT_rec_kind, RNC_REC_LAST_STEP, RNC_E_UNSUPPORTED);       /* no recurrent before */
    /* a second embedding, or one before last_step; else the header's input_size is not 0 */
    ADD(rr + RNC_AT_rec_kind, RNC_REC_EMBEDDING, emb || last ? RNC_E_UNSUPPORTED : RNC_E_CORRUPT);
    /* the recurrent record */
    ADD(rr + RNC_AT_rec_recurrent_cell, 9, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_flags, 4, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_flags, rnc_rec_recurrent_flags(m + rr) ^ RNC_LAYER_FLAG_BIDIR,
        RNC_E_CORRUPT); /* the record's size no longer matches its directions */
    ADD(rr + RNC_AT_rec_recurrent_input_size, 999, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_hidden_size, 0x40000000u, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_hidden_size, 0, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_x_scale, 0x7FC00000u, RNC_E_CORRUPT);
    ADD(rr + RNC_AT_rec_recurrent_h_scale, 0xBF800000u, RNC_E_CORRUPT); /* -1.0f */
    ADD(rr + RNC_AT_rec_recurrent_h_scale_reverse + 4, 1, RNC_E_CORRUPT); /* reserved */
    ADD(w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, 0xFFFFFFC0u, RNC_E_CORRUPT);
    ADD(w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_nbytes, 0xFFFFFFFFu, RNC_E_CORRUPT);
    ADD(w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, 64, RNC_E_CORRUPT);  /* inside the records */
    ADD(w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, w_ih_off + 4, RNC_E_CORRUPT); /* misaligned */
    ADD(w0 + RNC_AT_cellw_b_hh + RNC_AT_ref_offset, 0, RNC_E_CORRUPT);   /* half absent */
    ADD(w0 + RNC_AT_cellw_s_ih + RNC_AT_ref_nbytes, rnc_ref_nbytes(rnc_cellw_s_ih(m + w0)) + 64,
        RNC_E_CORRUPT);
    {   /* W_hh's kernel sums: present exactly for q8, each the sum of its row */
        const unsigned char *sr = rnc_rec_recurrent_w_hh_sums(m + rr);
        if (rnc_hdr2_precision(m) == RNC_Q8) {
            const uint32_t at = rnc_ref_offset(sr);
            ADD(at, rnc__rd32(m + at) + 1, RNC_E_CORRUPT);                         /* row 0 off by 1 */
            ADD(at + rnc_ref_nbytes(sr) - 4, rnc__rd32(m + at + rnc_ref_nbytes(sr) - 4) ^ 1u,
                RNC_E_CORRUPT);                                                   /* the last row */
            ADD(rr + RNC_AT_rec_recurrent_w_hh_sums + RNC_AT_ref_nbytes, rnc_ref_nbytes(sr) - 4,
                RNC_E_CORRUPT);
            ADD(rr + RNC_AT_rec_recurrent_w_hh_sums + RNC_AT_ref_offset, 0, RNC_E_CORRUPT); /* half absent */
        } else {
            ADD(rr + RNC_AT_rec_recurrent_w_hh_sums + RNC_AT_ref_nbytes, 64, RNC_E_CORRUPT); /* f32: none */
        }
    }
    /* the linear head and the pooling */
    ADD(lin + RNC_AT_rec_linear_activation, 9, RNC_E_CORRUPT);
    ADD(lin + RNC_AT_rec_linear_out_features, 0, RNC_E_CORRUPT);
    ADD(lin + RNC_AT_rec_linear_in_features, 3, RNC_E_CORRUPT);
    ADD(lin + RNC_AT_rec_linear_in_scale, 0x7F800000u, RNC_E_CORRUPT);
    ADD(lin + RNC_AT_rec_linear_bias + RNC_AT_ref_nbytes, 4, RNC_E_CORRUPT);
    if (last) {
        ADD(last + RNC_AT_rec_last_step_flags, 16, RNC_E_CORRUPT); /* bits 1, 2, 3: mean, attention, max */
        ADD(last + RNC_AT_rec_last_step_flags + 4, 1, RNC_E_CORRUPT); /* reserved */
    }
    if (emb) {
        ADD(r0 + RNC_AT_rec_embedding_num, 0, RNC_E_CORRUPT);
        ADD(r0 + RNC_AT_rec_embedding_dim, 7, RNC_E_CORRUPT);
        ADD(r0 + RNC_AT_rec_embedding_weight + RNC_AT_ref_nbytes, 0, RNC_E_CORRUPT);
    }
#undef ADD
    check_edits(name, mb, b, e, ne);

    /* two tensors at one place (b_hh := b_ih's reference, same length): overlap */
    memcpy(b, m, mb->len);
    memcpy(b + w0 + RNC_AT_cellw_b_hh, b + w0 + RNC_AT_cellw_b_ih, RNC_SIZE_ref);
    fix_crc(b, mb->len);
    CHECK(try_model(b, mb->len) == RNC_E_CORRUPT, "%s: overlapping tensors accepted", name);
    /* the last two records swapped (a valid record list in the wrong order) */
    memcpy(b, m, mb->len);
    const size_t rp = rec_at(m, nrec - 2), sp = rnc_rec_size(m + rp), sl = rnc_rec_size(m + rl);
    memcpy(b + rp, m + rl, sl);
    memcpy(b + rp + sl, m + rp, sp);
    fix_crc(b, mb->len);
    CHECK(try_model(b, mb->len) == RNC_E_UNSUPPORTED, "%s: records in the wrong order accepted", name);
}

/* Version 1 header/descriptor edits with a valid checksum: all refused. */
static void hostile_v1_edits(const char *name, const blob *mb, unsigned char *b)
{
    const size_t d = RNC_SIZE_hdr1, w0 = d + RNC_AT_desc1_dir0;
    const edit e[] = {
        {RNC_AT_hdr1_version, 3, RNC_E_VERSION},
        {RNC_AT_hdr1_file_size, 0xFFFFFFF0u, RNC_E_TRUNCATED},
        {RNC_AT_hdr1_file_size, 20, RNC_E_CORRUPT},
        {RNC_AT_hdr1_header_size, 64, RNC_E_CORRUPT},
        {RNC_AT_hdr1_precision, 7, RNC_E_CORRUPT},
        {RNC_AT_hdr1_num_layers, 0, RNC_E_CORRUPT},
        {RNC_AT_hdr1_num_layers, 1000, RNC_E_UNSUPPORTED},
        {RNC_AT_hdr1_num_layers, 15, RNC_OK},
        {RNC_AT_hdr1_input_size, 0xFFFFFFFFu, RNC_E_CORRUPT},
        {RNC_AT_hdr1_flags, 0x10, RNC_E_CORRUPT},
        {RNC_AT_hdr1_layer_desc_size, 64, RNC_E_CORRUPT},
        {RNC_AT_hdr1_head_bias + RNC_SIZE_ref + 4, 1, RNC_E_CORRUPT}, /* reserved */
        {d + RNC_AT_desc1_kind, 9, RNC_E_CORRUPT},
        {d + RNC_AT_desc1_flags, 4, RNC_E_CORRUPT},
        {d + RNC_AT_desc1_input_size, 999, RNC_E_CORRUPT},
        {d + RNC_AT_desc1_hidden_size, 0x40000000u, RNC_E_CORRUPT},
        {d + RNC_AT_desc1_hidden_size, 0, RNC_E_CORRUPT},
        {w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, 0xFFFFFFC0u, RNC_E_CORRUPT},
        {w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_nbytes, 0xFFFFFFFFu, RNC_E_CORRUPT},
        {w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, 64, RNC_E_CORRUPT},
        {w0 + RNC_AT_cellw_w_ih + RNC_AT_ref_offset, 0x10000000u, RNC_E_CORRUPT},
        {d + RNC_AT_desc1_h_scale_reverse + 4, 1, RNC_E_CORRUPT}, /* reserved */
        {d + RNC_AT_desc1_x_scale, 0x7FC00000u, RNC_E_CORRUPT},
    };
    check_edits(name, mb, b, e, sizeof e / sizeof e[0]);
    /* two tensors at one place (b_hh := b_ih's reference, same length): overlap */
    memcpy(b, mb->buf, mb->len);
    memcpy(b + w0 + RNC_AT_cellw_b_hh, b + w0 + RNC_AT_cellw_b_ih, RNC_SIZE_ref);
    fix_crc(b, mb->len);
    CHECK(try_model(b, mb->len) == RNC_E_CORRUPT, "%s: overlapping tensors accepted", name);
}

static void test_hostile(const char *dir, int fuzz)
{
    char path[1024];
    const char *names[] = {"lstm_q8_bidir_run", "gru_f32_bidir_last", "rnn_q8_emb_last"};
    for (int f = 0; f < 6; ++f) {
        const int v1 = f >= 3;
        char name[300];
        snprintf(name, sizeof name, "%s%s", names[f % 3], v1 ? ".v1.rnc" : ".rnc");
        snprintf(path, sizeof path, "%s/%s", dir, name);
        blob mb = read_file(path);
        CHECK(mb.len > 0, "read %s", path);
        if (!mb.len) continue;
        const size_t n = mb.len;
        unsigned char *b = xmalloc(n + 64);
        CHECK(try_model(mb.buf, n) == RNC_OK, "%s valid", name);
        CHECK(rnc_hdr1_version(mb.buf) == (v1 ? RNC_V1 : RNC_V2), "%s: format version", name);
        int ok_trunc = 1, ok_flip = 1;
        for (size_t len = 0; len < n; ++len) { /* truncated at every byte (copied: ASan sees the end) */
            unsigned char *t = xmalloc(len + 1);
            memcpy(t, mb.buf, len);
            if (try_model(t, len) == RNC_OK) ok_trunc = 0;
            free(t);
        }
        CHECK(ok_trunc, "%s: a truncated buffer was accepted", name);
        for (size_t i = 0; i < n; ++i) { /* every byte flipped */
            memcpy(b, mb.buf, n);
            b[i] ^= (unsigned char)(1u << (i % 8));
            if (try_model(b, n) == RNC_OK) ok_flip = 0;
        }
        CHECK(ok_flip, "%s: a flipped byte was accepted", name);
        if (v1) hostile_v1_edits(name, &mb, b);
        else hostile_v2_edits(name, &mb, b);
        /* misaligned buffer, NULLs */
        rnc_model m;
        memcpy(b + 1, mb.buf, n);
        CHECK(rnc_model_init(&m, b + 1, n) == RNC_E_ALIGN, "misaligned buffer");
        CHECK(rnc_model_init(&m, NULL, n) == RNC_E_ARG, "NULL buffer");
        CHECK(rnc_model_init(NULL, mb.buf, n) == RNC_E_ARG, "NULL model");
        if (fuzz) { /* random mutations with the checksum fixed, so validation goes past the CRC */
            int accepted = 0;
            for (int it = 0; it < 4000; ++it) {
                memcpy(b, mb.buf, n);
                const int k = 1 + (int)(rnd() % 6);
                for (int j = 0; j < k; ++j) {
                    const size_t pos = rnd() % (it % 3 == 0 ? 256 : n);
                    b[pos] = (unsigned char)(rnd() % 4 == 0 ? 0xFF : rnd());
                }
                if (rnd() % 2) fix_crc(b, n);
                if (try_model(b, n) == RNC_OK) ++accepted;
            }
            printf("  fuzz %s: 4000 mutations, %d still valid models (ran them), no crash\n", name,
                   accepted);
        }
        free(b), free(mb.buf);
    }
    printf("  hostile (v2 and v1 files): truncation at every byte, every byte flipped, edited fields "
           "(v2: exact statuses), overlaps, records out of order or of unknown kinds: all rejected\n");
}

static void test_api_misuse(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/gru_q8_stream.rnc", dir);
    blob mb = read_file(path);
    rnc_model m;
    if (!mb.len || rnc_model_init(&m, mb.buf, mb.len) != RNC_OK) {
        CHECK(0, "misuse: init");
        return;
    }
    size_t sb;
    CHECK(rnc_state_size(&m, 0, &sb) == RNC_E_ARG, "batch 0");
    CHECK(rnc_state_size(&m, SIZE_MAX / 4, &sb) == RNC_E_SIZE, "huge batch"); /* 32-bit clean */
    CHECK(rnc_run_scratch_size(&m, 1 << 20, SIZE_MAX / 4, &sb) == RNC_E_SIZE, "huge T");
    rnc_state_size(&m, 1, &sb);
    unsigned char *mem = xmalloc(sb + 8);
    rnc_state s;
    CHECK(rnc_state_init(&m, 1, mem, sb - 1, &s) == RNC_E_SIZE, "small state memory");
    CHECK(rnc_state_init(&m, 1, mem + 1, sb, &s) == RNC_E_ALIGN, "misaligned state");
    CHECK(rnc_state_init(&m, 1, mem, sb, &s) == RNC_OK, "state");
    float x[3] = {1, 2, 3}, y[5];
    CHECK(rnc_step(&m, &s, NULL, y) == RNC_E_ARG, "NULL x");
    CHECK(rnc_step_ids(&m, &s, (const int32_t *)x, y) == RNC_E_ARG, "ids to a float model");
    rnc_model m2 = m;
    rnc_state s2 = s;
    s2.model = &m2;
    CHECK(rnc_step(&m, &s2, x, y) == RNC_E_STATE, "state of another model");
    x[1] = INFINITY;
    CHECK(rnc_step(&m, &s, x, y) == RNC_E_VALUE, "Inf input");
    int32_t lens[1] = {5};
    size_t rb;
    rnc_run_scratch_size(&m, 1, 2, &rb);
    void *scr = xmalloc(rb);
    float xs[6] = {0}, ys[10];
    CHECK(rnc_run(&m, &s, xs, lens, 2, ys, scr, rb) == RNC_E_VALUE, "length > T");
    lens[0] = -1;
    CHECK(rnc_run(&m, &s, xs, lens, 2, ys, scr, rb) == RNC_E_VALUE, "negative length");
    CHECK(rnc_run(&m, &s, xs, NULL, 2, ys, scr, rb - 1) == RNC_E_SIZE, "small scratch");
    CHECK(rnc_run(&m, &s, xs, NULL, 0, ys, scr, rb) == RNC_OK, "T = 0");
    CHECK(rnc_model_set_isa(&m, (rnc_isa)77) != RNC_OK, "bad isa");
    rnc_isa isa;
    CHECK(rnc_isa_from_name("sse9", &isa) == RNC_E_ISA, "unknown isa name");
    for (int i = 0; i < RNC_ISA_COUNT; ++i) {
        int av = 0;
        rnc_isa_available((rnc_isa)i, &av);
        CHECK((rnc_model_set_isa(&m, (rnc_isa)i) == RNC_OK) == (av != 0), "set_isa(%s)", isa_str(i));
    }
    CHECK(strcmp(rnc_status_str((rnc_status)999), "unknown status") == 0, "status str");
    free(mem), free(scr), free(mb.buf);
}

/* rnc_run walks the time axis in chunks of steps (model.c): the scratch of a one-layer model does
 * not grow with T, and a run across chunk boundaries gives the bits of T steps (batch 1: one
 * sequence; batch 3: lengths around the chunk size). */
static void test_run_chunks(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/gru_q8_stream.rnc", dir);
    blob mb = read_file(path);
    rnc_model m;
    rnc_model_info info;
    if (!mb.len || rnc_model_init(&m, mb.buf, mb.len) != RNC_OK || rnc_model_get_info(&m, &info) ||
        info.num_layers != 1 || info.bidirectional || info.c_floats || info.last_step) {
        CHECK(0, "chunks: init (a one-layer GRU)");
        return;
    }
    size_t r1 = 0, r2 = 0, r3 = 0;
    CHECK(rnc_run_scratch_size(&m, 1, 1000, &r1) == RNC_OK &&
              rnc_run_scratch_size(&m, 1, 1000000, &r2) == RNC_OK &&
              rnc_run_scratch_size(&m, 1, 0x7FFFFFFF, &r3) == RNC_OK,
          "chunks: scratch sizes");
    CHECK(r1 == r2 && r2 == r3 && r3 < ((size_t)1 << 20),
          "chunks: one-layer scratch independent of T (%zu, %zu, %zu bytes)", r1, r2, r3);
    enum { T = 300, B = 3 };
    const size_t I = info.input_size, O = info.output_size;
    float *x = xmalloc(sizeof(float) * B * T * I), *y = xmalloc(sizeof(float) * B * T * O);
    float *ys = xmalloc(sizeof(float) * T * O), *xt = xmalloc(sizeof(float) * I);
    uint32_t seed = 7;
    for (size_t i = 0; i < (size_t)B * T * I; ++i) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int)(seed >> 9) % 4001 - 2000) / 1000.0f;
    }
    const int32_t lens[B] = {T, 128, 129};
    size_t sb, rb;
    rnc_state_size(&m, B, &sb);
    rnc_run_scratch_size(&m, B, T, &rb);
    void *mem = xmalloc(sb), *mem1 = xmalloc(sb), *scr = xmalloc(rb);
    rnc_state s, s1;
    CHECK(rnc_state_init(&m, B, mem, sb, &s) == RNC_OK && rnc_run(&m, &s, x, lens, T, y, scr, rb) == RNC_OK,
          "chunks: run");
    int same = 1;
    for (size_t b = 0; b < B; ++b) {
        rnc_state_init(&m, 1, mem1, sb, &s1);
        for (int t = 0; t < lens[b]; ++t) {
            memcpy(xt, x + (b * T + (size_t)t) * I, sizeof(float) * I);
            rnc_step(&m, &s1, xt, ys + (size_t)t * O);
        }
        same &= memcmp(ys, y + b * T * O, sizeof(float) * (size_t)lens[b] * O) == 0;
        /* one layer, one direction: h is (B, H), this sequence's row is b */
        same &= memcmp(s1.h, s.h + b * info.h_floats, sizeof(float) * info.h_floats) == 0;
    }
    CHECK(same, "chunks: run over %d steps (lengths %d, %d, %d) == the steps, bit for bit (y, h)", T,
          lens[0], lens[1], lens[2]);
    free(x), free(y), free(ys), free(xt), free(mem), free(mem1), free(scr), free(mb.buf);
}

/* A state made for one model must not run a model with bigger scratch needs loaded later into the
 * same rnc_model (an in-place model update keeps s->model; here the h/c counts even match). Was a
 * heap overflow of the state's work area (ASan), now RNC_E_STATE. */
static void test_state_after_model_reinit(const char *dir)
{
    static const char *pairs[][2] = {{"gru_rb_f32.rnc", "gru_rb_q8_static.rnc"},
                                     {"rnn_f32_emb_last_nohead.rnc", "rnn_q8_emb_last.rnc"},
                                     {"lstm_f32_bidir_run.rnc", "lstm_f32_stack_head.rnc"}};
    for (int k = 0; k < 3; ++k) {
        char pa[1024], pb[1024];
        snprintf(pa, sizeof pa, "%s/%s", dir, pairs[k][0]);
        snprintf(pb, sizeof pb, "%s/%s", dir, pairs[k][1]);
        blob a = read_file(pa), b = read_file(pb);
        rnc_model m;
        rnc_model_info ia, ib;
        size_t sa = 0, sb = 0, rb = 0;
        if (!a.len || !b.len || rnc_model_init(&m, a.buf, a.len) != RNC_OK) {
            CHECK(0, "reinit: load %s", pairs[k][0]);
            free(a.buf), free(b.buf);
            continue;
        }
        rnc_model_get_info(&m, &ia);
        rnc_state_size(&m, 1, &sa);
        unsigned char *mem = xmalloc(sa);
        rnc_state s;
        CHECK(rnc_state_init(&m, 1, mem, sa, &s) == RNC_OK, "reinit: state");
        CHECK(rnc_model_init(&m, b.buf, b.len) == RNC_OK, "reinit: load %s", pairs[k][1]);
        rnc_model_get_info(&m, &ib);
        rnc_state_size(&m, 1, &sb);
        CHECK(ia.h_floats == ib.h_floats && ia.c_floats == ib.c_floats && sb > sa,
              "reinit: %s should match h/c and need more state", pairs[k][1]);
        float x[64] = {0}, y[4096];
        int32_t ids[64] = {0};
        if (!ib.bidirectional) {
            const rnc_status st = ib.uses_ids ? rnc_step_ids(&m, &s, ids, y) : rnc_step(&m, &s, x, y);
            CHECK(st == RNC_E_STATE, "reinit: step with the old state gave %d", (int)st);
        }
        rnc_run_scratch_size(&m, 1, 1, &rb);
        void *scr = xmalloc(rb);
        const rnc_status st = ib.uses_ids ? rnc_run_ids(&m, &s, ids, NULL, 1, y, scr, rb)
                                          : rnc_run(&m, &s, x, NULL, 1, y, scr, rb);
        CHECK(st == RNC_E_STATE, "reinit: run with the old state gave %d", (int)st);
        /* a fresh state for the new model runs */
        unsigned char *mem2 = xmalloc(sb);
        CHECK(rnc_state_init(&m, 1, mem2, sb, &s) == RNC_OK && rnc_run(&m, &s, x, NULL, 1, y, scr, rb) ==
                  (ib.uses_ids ? RNC_E_ARG : RNC_OK), "reinit: new state");
        free(mem), free(mem2), free(scr), free(a.buf), free(b.buf);
    }
}

/* rnc_run with overlapping x / y / scratch (e.g. in place, y = x) computed wrong outputs: layers
 * write y while later steps of x are still to be read. Now RNC_E_ARG. (rnc_step in place, y = x,
 * stays allowed: tests/test_engine_hostile.py checks it against the reference.) */
static void test_run_overlap(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/gru_f32_stream.rnc", dir);
    blob mb = read_file(path);
    rnc_model m;
    rnc_model_info info;
    if (!mb.len || rnc_model_init(&m, mb.buf, mb.len) != RNC_OK) {
        CHECK(0, "overlap: init");
        free(mb.buf);
        return;
    }
    rnc_model_get_info(&m, &info);
    const size_t B = 2, T = 3, I = info.input_size, O = info.output_size, W = I > O ? I : O;
    size_t sb = 0, rb = 0;
    rnc_state_size(&m, B, &sb);
    rnc_run_scratch_size(&m, B, T, &rb);
    unsigned char *mem = xmalloc(sb);
    unsigned char *scr = xmalloc(rb + 4 * B * T * W);
    float *buf = xmalloc(4 * B * T * W), *y = xmalloc(4 * B * T * O);
    for (size_t i = 0; i < B * T * W; ++i) buf[i] = (float)(i % 5) * 0.25f - 0.5f;
    rnc_state s;
    CHECK(rnc_state_init(&m, B, mem, sb, &s) == RNC_OK, "overlap: state");
    CHECK(rnc_run(&m, &s, buf, NULL, T, buf, scr, rb) == RNC_E_ARG, "overlap: run with y == x");
    CHECK(rnc_run(&m, &s, buf, NULL, T, buf + 1, scr, rb) == RNC_E_ARG, "overlap: y inside x");
    CHECK(rnc_run(&m, &s, buf, NULL, T, y, (unsigned char *)buf, rb) == RNC_E_ARG, "overlap: scratch on x");
    CHECK(rnc_run(&m, &s, (float *)(void *)(scr + rb), NULL, T, y, scr, rb + 4) == RNC_E_ARG,
          "overlap: x inside scratch");
    CHECK(rnc_run(&m, &s, buf, NULL, T, y, scr, rb) == RNC_OK, "overlap: separate buffers run");
    CHECK(rnc_run(&m, &s, buf, NULL, 0, buf, scr, rb) == RNC_OK, "overlap: T = 0 has nothing to overlap");
    /* misaligned x / y / lengths (a float read from a byte stream at an odd offset): RNC_E_ALIGN
     * before anything is read or written, not a fault (ARMv7 VFP loads need 4-byte alignment) */
    const float *odd_x = (const float *)(const void *)((const unsigned char *)buf + 1);
    float *odd_y = (float *)(void *)((unsigned char *)y + 2);
    const int32_t lens[2] = {3, 1};
    const int32_t *odd_len = (const int32_t *)(const void *)((const unsigned char *)scr + rb + 1);
    memcpy(scr + rb + 1, lens, sizeof lens);
    rnc_state_reset(&s);
    CHECK(rnc_step(&m, &s, odd_x, y) == RNC_E_ALIGN, "align: step x");
    CHECK(rnc_step(&m, &s, buf, odd_y) == RNC_E_ALIGN, "align: step y");
    CHECK(rnc_run(&m, &s, odd_x, NULL, T, y, scr, rb) == RNC_E_ALIGN, "align: run x");
    CHECK(rnc_run(&m, &s, buf, NULL, T, odd_y, scr, rb) == RNC_E_ALIGN, "align: run y");
    CHECK(rnc_run(&m, &s, buf, odd_len, T, y, scr, rb) == RNC_E_ALIGN, "align: run lengths");
    int zero = 1;
    for (size_t i = 0; i < s.h_count; ++i) zero &= s.h[i] == 0.0f;
    CHECK(zero, "align: the state is untouched");
    free(mem), free(scr), free(buf), free(y), free(mb.buf);
}

/* A ReLU RNN whose state overflows float32 (gen_vectors.py: relu_overflow_*.rnc): on every
 * available ISA and both precisions, rnc_step and rnc_run return RNC_E_NONFINITE at step 2 of
 * row 1 (rows 0 and 2 stay 0), then refuse the state left behind until it is reset; the NumPy
 * reference goes on with Inf/NaN, the kernels used to restart from 0 (docs/c-api.md). */
static void test_nonfinite(const char *dir)
{
    static const char *const prec[2] = {"f32", "q8"};
    int nrun = 0;
    for (int p = 0; p < 2; ++p) {
        char path[1024];
        snprintf(path, sizeof path, "%s/relu_overflow_%s.rnc", dir, prec[p]);
        blob mb = read_file(path);
        rnc_model m;
        CHECK(mb.len && rnc_model_init(&m, mb.buf, mb.len) == RNC_OK, "nonfinite: init %s", path);
        if (!mb.len) continue;
        for (int i = 0; i < RNC_ISA_COUNT; ++i) {
            int av = 0;
            rnc_isa_available((rnc_isa)i, &av);
            if (!av) continue;
            CHECK(rnc_model_set_isa(&m, (rnc_isa)i) == RNC_OK, "nonfinite: set_isa");
            const char *n = isa_str(i);
            size_t sb, rb;
            rnc_state_size(&m, 3, &sb);
            rnc_run_scratch_size(&m, 3, 6, &rb);
            void *mem = xmalloc(sb), *scratch = xmalloc(rb);
            rnc_state s;
            rnc_state_init(&m, 3, mem, sb, &s);
            float x[3][6], xt[3], y[3][2], yr[3][6][2];
            for (int b = 0; b < 3; ++b)
                for (int t = 0; t < 6; ++t) x[b][t] = b == 1 ? 1.0f : 0.0f;
            /* step: (1, 1), (2e30, 1), then the overflow */
            for (int t = 0; t < 2; ++t) {
                for (int b = 0; b < 3; ++b) xt[b] = x[b][t];
                CHECK(rnc_step(&m, &s, xt, &y[0][0]) == RNC_OK, "nonfinite %s %s: step %d", prec[p], n, t);
            }
            CHECK(y[1][0] > 1e30f && y[1][1] == 1.0f && y[0][0] == 0.0f && y[2][1] == 0.0f,
                  "nonfinite %s %s: step 1 gave %g %g", prec[p], n, (double)y[1][0], (double)y[1][1]);
            y[0][0] = 7.0f;
            memset(&s.nonfinite, 0xFF, sizeof s.nonfinite);
            rnc_status st = rnc_step(&m, &s, xt, &y[0][0]);
            CHECK(st == RNC_E_NONFINITE && s.nonfinite.layer == 0 && s.nonfinite.direction == 0 &&
                      s.nonfinite.row == 1 && s.nonfinite.step == 0 && y[0][0] == 7.0f,
                  "nonfinite %s %s: overflowing step gave %d (layer %u row %zu step %zu)", prec[p], n,
                  (int)st, s.nonfinite.layer, s.nonfinite.row, s.nonfinite.step);
            st = rnc_step(&m, &s, xt, &y[0][0]);
            CHECK(st == RNC_E_NONFINITE && s.nonfinite.row == 1 && s.nonfinite.step == RNC_NONFINITE_ON_ENTRY,
                  "nonfinite %s %s: the state left behind must be refused (got %d)", prec[p], n, (int)st);
            CHECK(rnc_run(&m, &s, &x[0][0], NULL, 6, &yr[0][0][0], scratch, rb) == RNC_E_NONFINITE &&
                      s.nonfinite.step == RNC_NONFINITE_ON_ENTRY,
                  "nonfinite %s %s: run from the state left behind", prec[p], n);
            /* run from zero: the overflow at step 2 of row 1 */
            rnc_state_reset(&s);
            memset(&s.nonfinite, 0xFF, sizeof s.nonfinite);
            st = rnc_run(&m, &s, &x[0][0], NULL, 6, &yr[0][0][0], scratch, rb);
            CHECK(st == RNC_E_NONFINITE && s.nonfinite.layer == 0 && s.nonfinite.row == 1 &&
                      s.nonfinite.step == 2,
                  "nonfinite %s %s: run gave %d (row %zu step %zu)", prec[p], n, (int)st, s.nonfinite.row,
                  s.nonfinite.step);
            /* lengths that end before the overflow: ok */
            const int32_t len[3] = {6, 2, 6};
            rnc_state_reset(&s);
            CHECK(rnc_run(&m, &s, &x[0][0], len, 6, &yr[0][0][0], scratch, rb) == RNC_OK &&
                      yr[1][1][0] > 1e30f && yr[1][2][0] == 0.0f && yr[0][5][0] == 0.0f,
                  "nonfinite %s %s: run within the lengths", prec[p], n);
            free(mem), free(scratch);
            ++nrun;
        }
        free(mb.buf);
    }
    printf("  non-finite states: a ReLU RNN overflowing float32, f32 and q8 on %d (precision, ISA) "
           "pairs: RNC_E_NONFINITE at the step, never a number\n", nrun);
}

/* End of input (docs/c-api.md, "Look-ahead"): the padded models of gen_vectors.py
 * (write_flush_models; flush_conv: a conv_time padded beyond its reach, an unpadded pooling and a
 * Conv1d(k=2, padding=1); flush_pool: padded poolings and a ceil_mode one), every available ISA.
 * rnc_run with lengths against the NumPy layers (each row alone, PyTorch's output counts: none for
 * an empty sequence or one shorter than a window somewhere in the chain); per row, T rnc_step then
 * rnc_flush give the bits of rnc_run's row; rnc_flush_out_steps; too small a capacity; a flush with
 * nothing fed (and a second flush) gives 0; a batch of 2 streams; rows whose records are fed
 * differently (RNC_E_STATE) and rnc_run on a stream mid-sequence (RNC_E_STATE). */
static void test_flush_case(const char *dir, const char *name, rnc_isa isa)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.rnc", dir, name);
    blob mb = read_file(path);
    snprintf(path, sizeof path, "%s/%s.flush", dir, name);
    blob vb = read_file(path);
    rnc_model m;
    rnc_model_info info;
    uint32_t hd[5];
    if (!mb.len || vb.len < sizeof hd || rnc_model_init(&m, mb.buf, mb.len) != RNC_OK ||
        rnc_model_set_isa(&m, isa) != RNC_OK || rnc_model_get_info(&m, &info) != RNC_OK) {
        CHECK(0, "flush %s: load (run gen_vectors.py)", name);
        free(mb.buf), free(vb.buf);
        return;
    }
    memcpy(hd, vb.buf, sizeof hd);
    const size_t B = hd[0], T = hd[1], I = hd[2], O = hd[3], TO = hd[4];
    const int32_t *lens = (const int32_t *)(const void *)(vb.buf + 20);
    const uint32_t *nout = (const uint32_t *)(const void *)(vb.buf + 20 + 4 * B);
    const float *x = (const float *)(const void *)(vb.buf + 20 + 8 * B), *want = x + B * T * I;
    CHECK(vb.len == 20 + 8 * B + 4 * (B * T * I + B * TO * O) && info.input_size == I && info.output_size == O &&
              info.flush_steps > 0,
          "flush %s: the vector's sizes", name);
    size_t sb, rb, to = 0, n = 0;
    rnc_state_size(&m, B, &sb);
    rnc_run_scratch_size(&m, B, T, &rb);
    void *mem = xmalloc(sb), *mem1 = xmalloc(sb), *scr = xmalloc(rb);
    float *y = xmalloc(sizeof(float) * B * (TO + 1) * O), *ys = xmalloc(sizeof(float) * (T + info.flush_steps + 1) * O);
    float *xt = xmalloc(sizeof(float) * 2 * I), *yt = xmalloc(sizeof(float) * 2 * O);
    rnc_state s, s1;
    /* rnc_run: every row its sequence alone, PyTorch's output count, zeros after it */
    CHECK(rnc_state_init(&m, B, mem, sb, &s) == RNC_OK && rnc_run_out_steps(&m, &s, T, &to) == RNC_OK && to == TO,
          "flush %s: rnc_run_out_steps(T = %zu) = %zu, expected %zu", name, T, to, TO);
    CHECK(rnc_run(&m, &s, x, lens, T, y, scr, rb) == RNC_OK, "flush %s: run", name);
    double md = 0;
    CHECK(!close_enough(y, want, B * TO * O, 2e-5f, 2e-5f, &md), "flush %s [%s]: run vs NumPy (max diff %g)", name,
          isa_str(isa), md);
    for (size_t b = 0; b < B; ++b) {
        /* row b alone through a stream: never fed -> 0 outputs, its steps, then the flush */
        size_t k = 0, f = 1;
        CHECK(rnc_state_init(&m, 1, mem1, sb, &s1) == RNC_OK && rnc_flush_out_steps(&m, &s1, &f) == RNC_OK && f == 0,
              "flush %s: a fresh stream owes no output (%zu)", name, f);
        CHECK(rnc_flush(&m, &s1, NULL, 0, &f) == RNC_OK && f == 0, "flush %s: flush of a fresh stream gives %zu", name,
              f);
        for (int32_t t = 0; t < lens[b]; ++t) {
            memcpy(xt, x + (b * T + (size_t)t) * I, sizeof(float) * I);
            const rnc_status st = rnc_step(&m, &s1, xt, ys + k * O);
            CHECK(st == RNC_OK || st == RNC_NO_OUTPUT, "flush %s: step %d: %d", name, (int)t, (int)st);
            k += st == RNC_OK;
        }
        CHECK(rnc_flush_out_steps(&m, &s1, &f) == RNC_OK && k + f == nout[b],
              "flush %s row %zu: %zu steps' outputs + rnc_flush_out_steps %zu, expected %u", name, b, k, f, nout[b]);
        if (f) { /* one short: RNC_E_SIZE, nothing fed (the same count after) */
            size_t g = 0, h = 0;
            CHECK(rnc_flush(&m, &s1, ys + k * O, f - 1, &g) == RNC_E_SIZE && g == f &&
                      rnc_flush_out_steps(&m, &s1, &h) == RNC_OK && h == f,
                  "flush %s row %zu: capacity %zu < %zu is RNC_E_SIZE and feeds nothing", name, b, f - 1, f);
        }
        CHECK(rnc_flush(&m, &s1, ys + k * O, f, &n) == RNC_OK && n == f, "flush %s row %zu: flush gave %zu of %zu",
              name, b, n, f);
        CHECK(memcmp(ys, y + b * TO * O, sizeof(float) * nout[b] * O) == 0,
              "flush %s [%s] row %zu: %d steps + flush != run, bit for bit", name, isa_str(isa), b, (int)lens[b]);
        CHECK(rnc_flush_out_steps(&m, &s1, &f) == RNC_OK && f == 0 && rnc_flush(&m, &s1, ys, 0, &n) == RNC_OK && n == 0,
              "flush %s row %zu: a second flush gives nothing", name, b);
    }
    /* two streams in step (rows 0 and 3 over the shorter length): steps + flush == run */
    {
        const size_t L = (size_t)(lens[3] < lens[0] ? lens[3] : lens[0]), rows[2] = {0, 3};
        float *x2 = xmalloc(sizeof(float) * 2 * L * I), *y2 = xmalloc(sizeof(float) * 2 * (L + info.flush_steps) * O);
        float *yst = xmalloc(sizeof(float) * 2 * (L + info.flush_steps) * O);
        for (size_t r = 0; r < 2; ++r) memcpy(x2 + r * L * I, x + rows[r] * T * I, sizeof(float) * L * I);
        size_t L2 = 0, k = 0, rb2 = 0;
        rnc_state_init(&m, 2, mem1, sb, &s1);
        rnc_run_scratch_size(&m, 2, L, &rb2);
        void *scr2 = xmalloc(rb2);
        CHECK(rnc_run_out_steps(&m, &s1, L, &L2) == RNC_OK && rnc_run(&m, &s1, x2, NULL, L, y2, scr2, rb2) == RNC_OK,
              "flush %s: run of 2 rows", name);
        rnc_state_reset(&s1);
        for (size_t t = 0; t < L; ++t) {
            for (size_t r = 0; r < 2; ++r) memcpy(xt + r * I, x2 + (r * L + t) * I, sizeof(float) * I);
            if (rnc_step(&m, &s1, xt, yt) != RNC_OK) continue;
            for (size_t r = 0; r < 2; ++r) memcpy(yst + (r * L2 + k) * O, yt + r * O, sizeof(float) * O);
            ++k;
        }
        float *tail = xmalloc(sizeof(float) * 2 * (info.flush_steps + 1) * O);
        CHECK(rnc_flush(&m, &s1, tail, info.flush_steps, &n) == RNC_OK && k + n == L2, "flush %s: 2 rows flush", name);
        for (size_t j = 0; j < n && k + j < L2; ++j) /* (n, B, O) */
            for (size_t r = 0; r < 2; ++r) memcpy(yst + (r * L2 + k + j) * O, tail + (j * 2 + r) * O, sizeof(float) * O);
        CHECK(memcmp(yst, y2, sizeof(float) * 2 * L2 * O) == 0, "flush %s: 2 streams + flush != run of 2 rows", name);
        /* a stream mid-sequence: rnc_run refuses it (it runs whole sequences) */
        rnc_state_reset(&s1);
        memcpy(xt, x2, sizeof(float) * I), memcpy(xt + I, x2 + L * I, sizeof(float) * I);
        const rnc_status st = rnc_step(&m, &s1, xt, yt);
        CHECK((st == RNC_OK || st == RNC_NO_OUTPUT) && rnc_run(&m, &s1, x2, NULL, L, y2, scr2, rb2) == RNC_E_STATE,
              "flush %s: rnc_run of a stream mid-sequence is RNC_E_STATE", name);
        const int32_t none[2] = {0, 0};
        CHECK(rnc_run(&m, &s1, x2, none, L, y2, scr2, rb2) == RNC_OK, "flush %s: rnc_run of no steps leaves it", name);
        /* row 1 back at the start while row 0 has taken a step: the rows would flush differently */
        rnc_state fresh;
        rnc_state_init(&m, 2, mem, sb, &fresh);
        memcpy(s1.win + m.win_floats, fresh.win + m.win_floats, sizeof(float) * m.win_floats);
        size_t f = 0;
        const rnc_status sf = rnc_flush_out_steps(&m, &s1, &f);
        CHECK(sf == RNC_E_STATE || sf == RNC_OK, "flush %s: rows fed apart: %d", name, (int)sf);
        if (!strcmp(name, "flush_conv")) /* its first record counts its real steps */
            CHECK(sf == RNC_E_STATE && rnc_flush(&m, &s1, tail, info.flush_steps, &n) == RNC_E_STATE,
                  "flush %s: rows fed apart are RNC_E_STATE", name);
        free(x2), free(y2), free(yst), free(tail), free(scr2);
    }
    free(mem), free(mem1), free(scr), free(y), free(ys), free(xt), free(yt), free(mb.buf), free(vb.buf);
}

static void test_flush(const char *dir)
{
    static const char *names[] = {"flush_conv", "flush_pool"};
    for (int i = 0; i < RNC_ISA_COUNT; ++i) {
        int av = 0;
        rnc_isa_available((rnc_isa)i, &av);
        if (av)
            for (size_t k = 0; k < 2; ++k) test_flush_case(dir, names[k], (rnc_isa)i);
    }
    printf("  flush: padded conv_time / pool_time models, T steps + rnc_flush == rnc_run bit for bit, "
           "PyTorch's output counts, capacity, empty and repeated flushes\n");
}

#if !defined(RNC_NO_Q16)
/* Every 16 x 16 frame_conv row (RNC_OP_GEMM_Q16) against an int64 loop: random codes and the
 * extremes +-32767 (sums beyond int32), R and N not multiples of the rows' blocks, K not a multiple
 * of 16 (inputs K..round16(K) zero in both operands), ldacc > R (rows past R not written). */
static void test_gemm_q16(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {16, 16, 2}, {5, 387, 3}, {17, 33, 16}, {64, 128, 7}, {3, 2000, 1},
                                    {2, 5000, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int mode = 0; mode < 3; ++mode) {
            const int R = shapes[s][0], K = shapes[s][1], N = shapes[s][2], kp = (K + 15) / 16 * 16;
            const int ldq = kp + 16, ldacc = R + 3;
            int16_t *w = xmalloc(2 * (size_t)R * kp), *q = xmalloc(2 * (size_t)N * ldq);
            int64_t *ref = xmalloc(8 * (size_t)N * ldacc), *got = xmalloc(8 * (size_t)N * ldacc);
            for (int r = 0; r < R; ++r)
                for (int k = 0; k < kp; ++k)
                    w[(size_t)r * kp + k] = (int16_t)(k >= K ? 0 : mode == 0 ? (int)(rnd() % 65535u) - 32767
                                                            : mode == 1 ? 32767 : (k % 2 ? -32767 : 32767));
            for (int n = 0; n < N; ++n)
                for (int k = 0; k < ldq; ++k)
                    q[(size_t)n * ldq + k] = (int16_t)(k >= K ? (k < kp ? 0 : 12345)
                                                            : mode == 0 ? (int)(rnd() % 65535u) - 32767
                                                            : mode == 1 ? 32767 : -32767);
            for (int n = 0; n < N; ++n)
                for (int r = 0; r < R; ++r) {
                    int64_t a = 0;
                    for (int k = 0; k < K; ++k) a += (int64_t)w[(size_t)r * kp + k] * q[(size_t)n * ldq + k];
                    ref[(size_t)n * ldacc + r] = a;
                }
            int rows = 0;
            for (size_t i = 0; i < rnc__kernel_count; ++i) {
                const rnc_kernel *kr = &rnc__kernels[i];
                int avail = 0;
                rnc_isa_available((rnc_isa)kr->isa, &avail);
                if (!avail || kr->op != RNC_OP_GEMM_Q16) continue;
                ++rows;
                for (size_t j = 0; j < (size_t)N * ldacc; ++j) got[j] = 0x7777;
                kr->fn.gemm_q16(w, R, K, N, q, ldq, got, ldacc);
                int bad = 0;
                for (int n = 0; n < N; ++n) {
                    for (int r = 0; r < R; ++r) bad += got[(size_t)n * ldacc + r] != ref[(size_t)n * ldacc + r];
                    for (int r = R; r < ldacc; ++r) bad += got[(size_t)n * ldacc + r] != 0x7777;
                }
                CHECK(bad == 0, "%s R=%d K=%d N=%d mode=%d: %d sums differ", kr->name, R, K, N, mode, bad);
            }
            CHECK(rows > 0, "no RNC_OP_GEMM_Q16 row runs on this CPU");
            free(w), free(q), free(ref), free(got);
        }
}
#endif

/* The AMX path's cells serve layers of RNC_AMX_MIN_HIDDEN units and more; a narrower layer's batch
 * rows are AVX-512 VNNI's (rnc__layer_isa). Checked on the plan of each model when AMX is available
 * (on an AMX CPU, or the emulated build: make test-amx-emulated). */
static void test_amx_layer_width(const char *dir)
{
    int av = 0;
    rnc_isa_available(RNC_ISA_AMX, &av);
    if (!av) return;
    static const struct { const char *file; uint32_t op, want_isa; } cases[] = {
        {"gru_q8_run_b17.rnc", RNC_OP_GRU_STEP, RNC_ISA_AVX512VNNI},       /* H = 16 */
        {"gru_q8_run_b17_wide.rnc", RNC_OP_GRU_STEP, RNC_ISA_AMX},         /* H = 128 */
        {"lstm_q8_stream_b16_wide.rnc", RNC_OP_LSTM_STEP, RNC_ISA_AMX},    /* H = 128 */
        {"lstm_q8_stream_b16.rnc", RNC_OP_LSTM_STEP, RNC_ISA_AVX512VNNI},  /* H = 20 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].file);
        blob b = read_file(path);
        rnc_model m;
        size_t row = 0;
        rnc_kernel_desc d = {0};
        const int ok = b.len && rnc_model_init(&m, b.buf, b.len) == RNC_OK &&
                       rnc_model_set_isa(&m, RNC_ISA_AMX) == RNC_OK &&
                       rnc_model_plan_row(&m, 0, cases[k].op, RNC_Q8, 16, RNC_IN_X, 1, &row) == RNC_OK &&
                       rnc_kernel_info(row, &d) == RNC_OK;
        CHECK(ok && d.isa == cases[k].want_isa, "amx layer width: %s at 16 rows runs %s (want %s)",
              cases[k].file, ok ? isa_str((int)d.isa) : "?", isa_str((int)cases[k].want_isa));
        free(b.buf);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/vectors";
    int fuzz = 0;
    for (int i = 2; i < argc; ++i)
        if (strcmp(argv[i], "--fuzz") == 0) fuzz = 1;

    printf("rnncore C tests\n  ISA paths:");
    for (int i = 0; i < RNC_ISA_COUNT; ++i) {
        int comp = 0, cpu = 0;
        rnc_isa_compiled((rnc_isa)i, &comp);
        rnc_isa_cpu_supported((rnc_isa)i, &cpu);
        printf(" %s[%s]", isa_str(i), comp && cpu ? "run" : comp ? "compiled, CPU lacks it" : cpu ? "CPU has it, not built" : "absent");
    }
    size_t nk;
    rnc_kernel_count(&nk);
    printf("\n  kernel table: %zu rows\n", nk);
    rnc_isa best;
    rnc_isa_best(&best);
    printf("  best path: %s\n", isa_str(best));

    test_quantize();
    test_table_ops();
    test_rfft_rows();
    test_logf();
    test_gemm();
#if !defined(RNC_NO_Q16)
    test_gemm_q16();
#endif
    test_activations(fuzz);

    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "no %s (run gen_vectors.py)", path);
    int ncases = 0;
    if (f) {
        char name[256];
        while (fscanf(f, "%255s", name) == 1) {
            isa_ref ref = {NULL, NULL, NULL}, ref1 = {NULL, NULL, NULL};
            for (int i = 0; i < RNC_ISA_COUNT; ++i) { /* generic (0) first: the q8 reference */
                int av = 0;
                rnc_isa_available((rnc_isa)i, &av);
                if (!av) continue;
                /* the version 2 file, then the same model as version 1: same outputs, bit for bit */
                isa_ref v2 = {NULL, NULL, NULL};
                run_vector(dir, name, ".rnc", (rnc_isa)i, &ref, &v2, NULL);
                /* models with cell options exist only as version 2 (gen_vectors writes no v1) */
                snprintf(path, sizeof path, "%s/%s.v1.rnc", dir, name);
                FILE *v1 = fopen(path, "rb");
                if (v1) {
                    fclose(v1);
                    run_vector(dir, name, ".v1.rnc", (rnc_isa)i, &ref1, NULL, &v2);
                }
                free(v2.y), free(v2.h), free(v2.c);
            }
            free(ref.y), free(ref.h), free(ref.c), free(ref1.y), free(ref1.h), free(ref1.c);
            ++ncases;
        }
        fclose(f);
    }
    printf("  vectors: %d models vs the NumPy references on every available ISA (q8: bit-identical to "
           "generic), each as a format v2 and (without cell options) a v1 file (outputs bit-identical)\n",
           ncases);
    test_state_restore(dir);
    test_nonfinite(dir);
    test_api_misuse(dir);
    test_run_chunks(dir);
    test_flush(dir);
    test_state_after_model_reinit(dir);
    test_run_overlap(dir);
    test_hostile(dir, fuzz);
    test_amx_layer_width(dir);

    printf("%d checks, %d failures\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
