/* Exactness tests of the x86 AVX-512 / AVX-512 VNNI / AVX-VNNI matrix kernels against plain C
 * loops over the unpacked matrix (an independent reference: the packers below follow
 * C_CONTRACT.md's layout formulas literally).
 *
 * q8: the int32 accumulators must be EQUAL, for extreme values (every weight and input +-127,
 * alternating signs, zeros) and random ones, over shapes with rows not a multiple of 16, inputs
 * not a multiple of 4, K = 1, and batches of 1..9 columns with row strides larger than K.
 * f32: relative error against a double-precision sum, bounded by K * 2^-22 (sums are reordered).
 * Inputs live at the very end of their allocation and are guarded, so an over-read of q past K
 * or a write past R would be caught by ASan (and a guard check without it).
 *
 * Paths the CPU lacks are reported as skipped by name. With -DRNC_TEST_AVXVNNI_EVEX the AVX-VNNI
 * file, rebuilt with its EVEX encoding, is tested too (see gemv_avxvnni.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels/kernels_avx512.h"

#if defined(RNC_TEST_AVXVNNI_EVEX)
void rnc_x86_gemv_q8_avxvnni_evex(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_x86_gemm_q8_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                  int32_t *Acc, int ldacc);
#endif

static int passed, failed;

static void check(int ok, const char *what, int R, int K, int N, int mode)
{
    if (ok) {
        ++passed;
    } else {
        ++failed;
        printf("FAIL %s R=%d K=%d N=%d mode=%d\n", what, R, K, N, mode);
    }
}

static uint32_t rng = 12345u;
static int rnd(int lo, int hi) /* uniform in [lo, hi] */
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (int)((rng >> 8) % (uint32_t)(hi - lo + 1));
}

static void pack_q8(const int8_t *W, int R, int K, int8_t *P)
{
    const int Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
    memset(P, 0, (size_t)Rp * Kp);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k)
            P[((size_t)(r / 16) * (Kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4] = W[(size_t)r * K + k];
}

static void pack_f32(const float *W, int R, int K, float *P)
{
    const int Rp = (R + 15) / 16 * 16;
    memset(P, 0, sizeof(float) * (size_t)Rp * K);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) P[((size_t)(r / 16) * K + k) * 16 + r % 16] = W[(size_t)r * K + k];
}

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

typedef void (*gemv_q8_fn)(const int8_t *, int, int, const int8_t *, int32_t *);
typedef void (*gemm_q8_fn)(const int8_t *, int, int, int, const int8_t *, int, int32_t *, int);

static void test_q8(const char *name, gemv_q8_fn gemv, gemm_q8_fn gemm)
{
    static const int shapes[][2] = {{1, 1},   {1, 4},   {3, 5},    {16, 4},   {17, 7},   {31, 33},
                                    {48, 16}, {64, 64}, {96, 32},  {100, 3},  {191, 129}, {384, 128},
                                    {768, 256}, {1536, 512}, {80, 1025}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < nshapes; ++s) {
        const int R = shapes[s][0], K = shapes[s][1];
        const int Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
        int8_t *W = malloc((size_t)R * K), *P = malloc((size_t)Rp * Kp);
        for (int mode = 0; mode < 6; ++mode) {
            for (size_t i = 0; i < (size_t)R * K; ++i) W[i] = wval(mode, i);
            pack_q8(W, R, K, P);
            for (int N = 1; N <= 9; N += (N < 5 ? 1 : 4)) {
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
                if (N == 1) {
                    for (int i = 0; i <= ldacc; ++i) got[i] = 0x5A5A5A5A;
                    gemv(P, R, K, Q, got);
                    ok = memcmp(got, ref, sizeof(int32_t) * R) == 0 && got[R] == 0x5A5A5A5A;
                    check(ok, name, R, K, N, mode);
                }
                for (size_t i = 0; i <= (size_t)N * ldacc; ++i) got[i] = 0x5A5A5A5A;
                gemm(P, R, K, N, Q, ldq, got, ldacc);
                ok = 1;
                for (int n = 0; n < N; ++n) {
                    ok &= memcmp(got + (size_t)n * ldacc, ref + (size_t)n * ldacc, sizeof(int32_t) * R) == 0;
                    for (int r = R; r < ldacc; ++r) ok &= got[(size_t)n * ldacc + r] == 0x5A5A5A5A;
                }
                check(ok, name, R, K, N, mode + 100);
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
            for (int pass = 0; pass < 2; ++pass) {
                if (pass == 0 && N > 1) continue;
                for (size_t i = 0; i <= (size_t)N * ldy; ++i) Y[i] = 12345.0f;
                if (pass == 0) rnc_x86_gemv_f32_avx512(P, R, K, X, Y);
                else rnc_x86_gemm_f32_avx512(P, R, K, N, X, ldx, Y, ldy);
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
                check(ok, pass ? "f32_gemm_avx512" : "f32_gemv_avx512", R, K, N, 0);
            }
            free(X);
            free(Y);
        }
        free(W);
        free(P);
    }
}

int main(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    if (rnc_x86_has_avx512()) {
        test_f32();
        test_q8("q8_avx512", rnc_x86_gemv_q8_avx512, rnc_x86_gemm_q8_avx512);
    } else {
        printf("skipped: avx512 (CPU/OS lacks AVX-512 F/BW/VL/DQ)\n");
    }
    if (rnc_x86_has_avx512vnni())
        test_q8("q8_avx512vnni", rnc_x86_gemv_q8_avx512vnni, rnc_x86_gemm_q8_avx512vnni);
    else
        printf("skipped: avx512vnni (CPU/OS lacks AVX512_VNNI)\n");
    if (rnc_x86_has_avxvnni())
        test_q8("q8_avxvnni", rnc_x86_gemv_q8_avxvnni, rnc_x86_gemm_q8_avxvnni);
    else
        printf("skipped: avxvnni (CPU/OS lacks AVX-VNNI)\n");
#if defined(RNC_TEST_AVXVNNI_EVEX)
    if (rnc_x86_has_avx512vnni())
        test_q8("q8_avxvnni_evex", rnc_x86_gemv_q8_avxvnni_evex, rnc_x86_gemm_q8_avxvnni_evex);
#endif
#else
    printf("skipped: not x86-64\n");
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
