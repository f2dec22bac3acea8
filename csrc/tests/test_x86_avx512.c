/* Exactness tests of the x86 AVX-512 / AVX-512 VNNI / AVX-VNNI kernels.
 *
 * Products: against plain C loops over the unpacked matrix (an independent reference: the
 * packers below follow docs/q8-contract.md's layout formulas literally) and the generic kernel.
 * (The fused cells of every ISA are tests/test_kernels.c's table-driven loop.)
 *
 * q8: the int32 accumulators must be EQUAL, for extreme values (every weight and input +-127,
 * alternating signs, zeros) and random ones, over shapes with rows not a multiple of 16, inputs
 * not a multiple of 4, K = 1, and batches of 1..9 columns with row strides larger than K.
 * f32: relative error against a double-precision sum, bounded by K * 2^-22 (sums are reordered).
 * Inputs live at the very end of their allocation and are guarded, so an over-read of q past K
 * or a write past R would be caught by ASan (and a guard check without it).
 *
 * Paths the CPU lacks are reported as skipped by name. With -DRNC_TEST_AVXVNNI_EVEX the AVX-VNNI
 * file, rebuilt with its EVEX encoding, is tested too (see q8_gemm_avxvnni.c).
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_common.h"
#include "kernels/activations.h"
#include "kernels/kernels_avx512.h"

/* tests/test_x86_epilogue_avx2.c (AVX2 build of kernels/epilogue_avx2.h) */
void rnc_test_cell_update_avx2(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi, const float *gh,
                               float *h, float *c, float *y);
void rnc_test_quantize_row_avx2(const float *v, size_t n, size_t npad, float static_scale, int8_t *q,
                                float *scale);

#if defined(RNC_TEST_AVXVNNI_EVEX)
void rnc_q8_gemm_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                              int32_t *Acc, int ldacc);
#endif

/* value generators: mode 0 all +127 / q -127; 1 all -127; 2 alternating +-127; 3 random;
 * 4 random with zeros; 5 W +-127 random signs, q +127 */
static int8_t wval(int mode, size_t i)
{
    switch (mode) {
    case 0: return 127;
    case 1: return -127;
    case 2: return (i & 1) ? 127 : -127;
    case 3: return (int8_t)rnd(-127, 127);
    case 4: return (int8_t)(rnd(0, 2) ? 0 : rnd(-127, 127));
    default: return rnd(0, 1) ? 127 : -127;
    }
}
static int8_t qval(int mode, size_t i)
{
    switch (mode) {
    case 0: return -127;
    case 1: return -127;
    case 2: return (i % 3) ? 127 : -127;
    case 3: return (int8_t)rnd(-127, 127);
    case 4: return (int8_t)(rnd(0, 1) ? 0 : rnd(-127, 127));
    default: return 127;
    }
}

typedef void (*gemm_q8_fn)(const int8_t *, int, int, int, const int8_t *, int, int32_t *, int);

static void test_q8(const char *name, gemm_q8_fn gemm)
{
    static const int shapes[][2] = {{1, 1},   {1, 4},   {3, 5},    {16, 4},   {17, 7},   {31, 33},
                                    {48, 16}, {64, 64}, {96, 32},  {100, 3},  {191, 129}, {384, 128},
                                    {768, 256}, {1536, 512}, {80, 1025},
                                    /* K around the AVX-512 kernel's 1024-input chunks, K % 64 != 0 */
                                    {16, 1024}, {47, 1028}, {20, 2051}, {33, 4097}, {130, 67}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < nshapes; ++s) {
        const int R = shapes[s][0], K = shapes[s][1];
        const int Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
        int8_t *W = malloc((size_t)R * K), *P = malloc((size_t)Rp * Kp);
        for (int mode = 0; mode < 6; ++mode) {
            for (size_t i = 0; i < (size_t)R * K; ++i) W[i] = wval(mode, i);
            pack_q8(W, R, K, P);
            /* N = 1..9 (every remainder of 4-column panels), and for K > 1000 also 37 */
            for (int N = 1; N <= (K > 1000 ? 37 : 9); N += (N < 9 ? 1 : 28)) {
                const int ldq = K + (N > 1 ? 3 : 0), ldacc = R + (N > 1 ? 5 : 0);
                const size_t qn = (size_t)(N - 1) * ldq + K; /* q ends exactly at the allocation end */
                int8_t *Q = malloc(qn);
                int32_t *ref = malloc(sizeof(int32_t) * ((size_t)N * ldacc + 1));
                int32_t *got = malloc(sizeof(int32_t) * ((size_t)N * ldacc + 1));
                for (size_t i = 0; i < qn; ++i) Q[i] = qval(mode, i);
                for (int n = 0; n < N; ++n)
                    for (int r = 0; r < R; ++r) {
                        int32_t a = 0;
                        for (int k = 0; k < K; ++k) a += (int32_t)W[(size_t)r * K + k] * Q[(size_t)n * ldq + k];
                        ref[(size_t)n * ldacc + r] = a;
                    }
                int ok = 1;
                for (size_t i = 0; i <= (size_t)N * ldacc; ++i) got[i] = 0x5A5A5A5A;
                rnc_q8_gemm_generic(P, R, K, N, Q, ldq, got, ldacc);
                for (int n = 0; n < N; ++n)
                    ok &= memcmp(got + (size_t)n * ldacc, ref + (size_t)n * ldacc, sizeof(int32_t) * R) == 0;
                check(ok, "q8_gemm_generic (reference check)", R, K, N, mode);
                for (size_t i = 0; i <= (size_t)N * ldacc; ++i) got[i] = 0x5A5A5A5A;
                gemm(P, R, K, N, Q, ldq, got, ldacc);
                ok = 1;
                for (int n = 0; n < N; ++n) {
                    ok &= memcmp(got + (size_t)n * ldacc, ref + (size_t)n * ldacc, sizeof(int32_t) * R) == 0;
                    for (int r = R; r < ldacc; ++r) ok &= got[(size_t)n * ldacc + r] == 0x5A5A5A5A;
                }
                check(ok, name, R, K, N, mode);
                free(Q);
                free(ref);
                free(got);
            }
        }
        free(W);
        free(P);
    }
}

static void test_f32(void)
{
    static const int shapes[][2] = {{1, 1}, {3, 5}, {16, 1}, {17, 7}, {64, 64}, {96, 32}, {191, 129},
                                    {768, 256}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < nshapes; ++s) {
        const int R = shapes[s][0], K = shapes[s][1], Rp = (R + 15) / 16 * 16;
        float *W = malloc(sizeof(float) * (size_t)R * K), *P = malloc(sizeof(float) * (size_t)Rp * K);
        for (size_t i = 0; i < (size_t)R * K; ++i) W[i] = (float)rnd(-1000, 1000) / 1000.0f;
        pack_f32(W, R, K, P);
        for (int N = 1; N <= 9; N += (N < 5 ? 1 : 4)) {
            const int ldx = K + 1, ldy = R + 2;
            const size_t xn = (size_t)(N - 1) * ldx + K;
            float *X = malloc(sizeof(float) * xn), *Y = malloc(sizeof(float) * ((size_t)N * ldy + 1));
            for (size_t i = 0; i < xn; ++i) X[i] = (float)rnd(-1000, 1000) / 1000.0f;
            {
                for (size_t i = 0; i <= (size_t)N * ldy; ++i) Y[i] = 12345.0f;
                rnc_f32_gemm_avx512(P, R, K, N, X, ldx, Y, ldy);
                int ok = 1;
                for (int n = 0; n < N; ++n) {
                    for (int r = 0; r < R; ++r) {
                        double a = 0, m = 0;
                        for (int k = 0; k < K; ++k) {
                            const double p = (double)W[(size_t)r * K + k] * X[(size_t)n * ldx + k];
                            a += p;
                            m += fabs(p);
                        }
                        ok &= fabs(Y[(size_t)n * ldy + r] - a) <= (K + 1) * ldexp(1.0, -22) * (m + 1e-30);
                    }
                    for (int r = R; r < ldy; ++r) ok &= Y[(size_t)n * ldy + r] == 12345.0f;
                }
                check(ok, "f32_gemm_avx512", R, K, N, 0);
                /* the same columns one at a time give the same bits (step path == run path) */
                float *Y1 = malloc(sizeof(float) * ((size_t)R + 1));
                ok = 1;
                for (int n = 0; n < N; ++n) {
                    rnc_f32_gemm_avx512(P, R, K, 1, X + (size_t)n * ldx, ldx, Y1, R);
                    ok &= memcmp(Y1, Y + (size_t)n * ldy, sizeof(float) * R) == 0;
                }
                check(ok, "f32_gemm_avx512 independent of N", R, K, N, 0);
                free(Y1);
            }
            free(X);
            free(Y);
        }
        free(W);
        free(P);
    }
}

/* The AVX-512 activation quantisation equals util.c's, bit for bit, including NaN/Inf/-0,
 * denormals, all-zero vectors, static scales and every tail length. */
static void test_quantize(void)
{
    const float specials[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 3.4e38f, -3.4e38f, 1.0f / 0.0f,
                              -1.0f / 0.0f, 0.0f / 0.0f, 0.5f, -0.5f, 127.0f};
    for (int trial = 0; trial < 400; ++trial) {
        const size_t n = (size_t)rnd(0, 70), npad = n + (size_t)rnd(0, 5);
        float v[80];
        for (size_t i = 0; i < n; ++i) {
            const int kind = rnd(0, 9);
            v[i] = kind == 0 ? specials[rnd(0, 11)] : frand(kind == 1 ? 1e-3f : kind == 2 ? 1e6f : 3.0f);
            if (trial % 7 == 0) v[i] = 0.0f;
        }
        const float st = trial % 3 == 0 ? 0.01f + frand(0.005f) : 0.0f;
        int8_t q0[80], q1[80];
        float s0 = -1.0f, s1 = -2.0f;
        memset(q0, 0x55, sizeof q0);
        memset(q1, 0x55, sizeof q1);
        rnc_q8_quantize_generic(v, n, npad, st, st > 0.0f ? 1.0f / st : 0.0f, q0, &s0);
        rnc_q8_quantize_avx512(v, n, npad, st, st > 0.0f ? 1.0f / st : 0.0f, q1, &s1);
        check(!memcmp(q0, q1, sizeof q0) && !memcmp(&s0, &s1, sizeof s0), "quantize_row_avx512", (int)n,
              (int)npad, 1, trial);
    }
}

/* The AVX2 epilogue (used by the AVX-VNNI cells, which this CPU may not run) against the scalar
 * formulas of cell_template.h, compiled here with the same flags: bitwise equal. */
static void ref_update(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi, const float *gh, float *h,
                       float *c, float *y)
{
    for (uint32_t u = 0; u < H; ++u) {
        float hn;
        if (kind == RNC_RNN_TANH) {
            hn = rnc_tanhf(gi[u] + gh[u]);
        } else if (kind == RNC_RNN_RELU) {
            hn = rnc_reluf(gi[u] + gh[u]);
        } else if (kind == RNC_GRU) {
            const float r = rnc_sigmoidf(gi[u] + gh[u]);
            const float z = rnc_sigmoidf(gi[Hp + u] + gh[Hp + u]);
            const float n = rnc_tanhf(gi[2 * Hp + u] + r * gh[2 * Hp + u]);
            hn = (1.0f - z) * n + z * h[u];
        } else {
            const float i = rnc_sigmoidf(gi[u] + gh[u]);
            const float f = rnc_sigmoidf(gi[Hp + u] + gh[Hp + u]);
            const float g = rnc_tanhf(gi[2 * Hp + u] + gh[2 * Hp + u]);
            const float o = rnc_sigmoidf(gi[3 * Hp + u] + gh[3 * Hp + u]);
            c[u] = f * c[u] + i * g;
            hn = o * rnc_tanhf(c[u]);
        }
        h[u] = hn;
        y[u] = hn;
    }
}

static void test_epilogue_avx2(void)
{
    static const uint32_t Hs[] = {1, 5, 8, 15, 16, 17, 31, 33, 64, 100};
    const float specials[] = {0.0f, -0.0f, 1e-40f, 30.0f, -30.0f, 7.9053111f, -7.9053111f, 1e30f, -1e30f};
    for (uint32_t kind = 0; kind < 4; ++kind)
        for (size_t hi = 0; hi < sizeof Hs / sizeof Hs[0]; ++hi)
            for (int mode = 0; mode < 3; ++mode) {
                const uint32_t H = Hs[hi], Hp = (H + 15) / 16 * 16, G = 4;
                float gi[4 * 112], gh[4 * 112], h0[112], c0[112], y0[112], h1[112], c1[112], y1[112];
                for (uint32_t i = 0; i < G * Hp; ++i) {
                    gi[i] = mode == 2 ? specials[rnd(0, 8)] : frand(mode ? 12.0f : 2.0f);
                    gh[i] = frand(mode ? 12.0f : 2.0f);
                }
                for (uint32_t i = 0; i < H; ++i) {
                    h0[i] = h1[i] = frand(1.0f);
                    c0[i] = c1[i] = frand(mode ? 20.0f : 2.0f);
                }
                ref_update(kind, H, Hp, gi, gh, h0, c0, y0);
                rnc_test_cell_update_avx2(kind, H, Hp, gi, gh, h1, c1, y1);
                check(!memcmp(h0, h1, 4 * H) && !memcmp(c0, c1, 4 * H) && !memcmp(y0, y1, 4 * H),
                      "cell_update_avx2 vs scalar", (int)H, (int)kind, 1, mode);
            }
    const float qs[] = {0.0f, -0.0f, 1e-40f, 3.4e38f, -3.4e38f, 1.0f / 0.0f, -1.0f / 0.0f, 0.0f / 0.0f, 0.5f};
    for (int trial = 0; trial < 400; ++trial) {
        const size_t n = (size_t)rnd(0, 70), npad = n + (size_t)rnd(0, 5);
        float v[80];
        for (size_t i = 0; i < n; ++i) v[i] = rnd(0, 9) == 0 ? qs[rnd(0, 8)] : frand(trial % 2 ? 1e4f : 3.0f);
        const float st = trial % 3 == 0 ? 0.01f + frand(0.005f) : 0.0f;
        int8_t q0[80], q1[80];
        float s0 = -1.0f, s1 = -2.0f;
        memset(q0, 0x55, sizeof q0);
        memset(q1, 0x55, sizeof q1);
        rnc_q8_quantize_generic(v, n, npad, st, st > 0.0f ? 1.0f / st : 0.0f, q0, &s0);
        rnc_test_quantize_row_avx2(v, n, npad, st, q1, &s1);
        check(!memcmp(q0, q1, sizeof q0) && !memcmp(&s0, &s1, sizeof s0), "quantize_row_avx2", (int)n,
              (int)npad, 1, trial);
    }
}

int main(void)
{
#if RNC_X86
    if (rnc__cpu_supports(RNC_ISA_AVX512)) {
        test_f32();
        test_q8("q8_gemm_avx512", rnc_q8_gemm_avx512);
        test_quantize();
    } else {
        printf("skipped: avx512 products (CPU/OS lacks AVX-512 F/BW/VL/DQ)\n");
    }
    if (rnc__cpu_supports(RNC_ISA_AVX512VNNI))
        test_q8("q8_gemm_avx512vnni", rnc_q8_gemm_avx512vnni);
    else
        printf("skipped: avx512vnni products (CPU/OS lacks AVX512_VNNI)\n");
#if !defined(RNC_NO_X86_AVXVNNI)
    if (rnc__cpu_supports(RNC_ISA_AVXVNNI))
        test_q8("q8_gemm_avxvnni", rnc_q8_gemm_avxvnni);
    else
        printf("skipped: avxvnni products (CPU/OS lacks AVX-VNNI)\n");
#else
    printf("skipped: avxvnni products (not built: the compiler lacks -mavxvnni)\n");
#endif
#if defined(RNC_TEST_AVXVNNI_EVEX)
    if (rnc__cpu_supports(RNC_ISA_AVX512VNNI)) /* the AVX-VNNI file's logic, EVEX-encoded */
        test_q8("q8_gemm_avxvnni (EVEX build)", rnc_q8_gemm_avxvnni_evex);
#endif
    if (rnc__cpu_supports(RNC_ISA_AVX2))
        test_epilogue_avx2();
    else
        printf("skipped: AVX2 epilogue (CPU/OS lacks AVX2)\n");
#else
    printf("skipped: not x86-64\n");
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
