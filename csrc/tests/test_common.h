/* Helpers shared by the x86 kernel tests (test_x86_avx512.c, test_x86_amx.c): pass/fail counting,
 * a deterministic generator, aligned zeroed allocation, and the packers written literally from
 * docs/q8-contract.md's layout formulas (an independent reference for the kernels' layout).
 * Header-only (static inline): each test program includes it once. */
#ifndef RNC_TEST_COMMON_H
#define RNC_TEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RNC_TEST_SEED
#define RNC_TEST_SEED 12345u
#endif

static int passed, failed;

static inline void check(int ok, const char *what, int R, int K, int N, int mode)
{
    if (ok) {
        ++passed;
    } else {
        ++failed;
        printf("FAIL %s R=%d K=%d N=%d mode=%d\n", what, R, K, N, mode);
    }
}

static uint32_t rng = RNC_TEST_SEED;
static inline int rnd(int lo, int hi) /* uniform in [lo, hi] */
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (int)((rng >> 8) % (uint32_t)(hi - lo + 1));
}

static inline float frand(float a) { return a * (float)rnd(-100000, 100000) / 100000.0f; }

/* 64-byte aligned, zeroed, with 64 spare bytes (rounded up to 64) */
static inline void *zalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n + 63) / 64 * 64 + 64) != 0) abort();
    memset(p, 0, (n + 63) / 64 * 64 + 64);
    return p;
}

/* q8: byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j], zero padding */
static inline void pack_q8(const int8_t *W, int R, int K, int8_t *P)
{
    const int Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
    memset(P, 0, (size_t)Rp * Kp);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k)
            P[((size_t)(r / 16) * (Kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4] = W[(size_t)r * K + k];
}

/* f32: float[(b*K + k)*16 + r] = W[16b + r, k], zero padding */
static inline void pack_f32(const float *W, int R, int K, float *P)
{
    const int Rp = (R + 15) / 16 * 16;
    memset(P, 0, sizeof(float) * (size_t)Rp * K);
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) P[((size_t)(r / 16) * K + k) * 16 + r % 16] = W[(size_t)r * K + k];
}

#endif
