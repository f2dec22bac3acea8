/* update-avx2: the AVX2 q8 cell update alone (cells_avx2.c's one-row b1_update_all at H <= 64,
 * b1_update per 32 units at H <= 128, the template's rnc_avx2_q8_update above), from random
 * int32 accumulators, scales and biases: the float32 epilogue without the products around it.
 * Each call is first checked against the scalar formulas (activations.h, the dequantisation
 * acc * (s_x * s_w) + b) bit for bit; then prints the minimum over rounds of the time per call.
 *
 *   cc -std=c99 -O3 -ffp-contract=off -fno-trapping-math -fno-strict-aliasing -mavx2 -mfma \
 *      -Icsrc/include csrc/bench/update_avx2.c csrc/build/librnncore.a -lm -o update-avx2
 *   ./update-avx2 H gru|lstm [rounds]
 *
 * (It includes cells_avx2.c for its static functions; the library supplies the rest.)
 * Alternate two builds of it (before/after) in one run and compare minima: docs/performance.md. */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../src/kernels/cells_avx2.c"

#define HMAX 512
static int32_t acc_i[4 * HMAX], acc_h[4 * HMAX];
static float s_ih[4 * HMAX], b_ih[4 * HMAX], s_hh[4 * HMAX], b_hh[4 * HMAX];
static float h[HMAX], c[HMAX], y[HMAX], h0[HMAX], c0[HMAX];

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 20);
}
static float frnd(float a) { return a * (2.0f * (float)(rnd() & 0xFFFF) / 65535.0f - 1.0f); }
static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void update(uint32_t kind, uint32_t H, uint32_t Hp, float sx, float sh)
{
    const __m256 svi = _mm256_set1_ps(sx), svh = _mm256_set1_ps(sh);
    if (H > RNC_B1_MAX_H(3))
        rnc_avx2_q8_update(kind, H, Hp, acc_i, sx, s_ih, b_ih, NULL, acc_h, sh, s_hh, b_hh, h, c, y);
    else if (H <= 64)
        b1_update_all(kind, H, Hp, acc_i, svi, s_ih, b_ih, NULL, acc_h, svh, s_hh, b_hh, h, c, y);
    else
        for (uint32_t u = 0; u < H; u += 32)
            b1_update(kind, H, Hp, u, acc_i, svi, s_ih, b_ih, NULL, acc_h, svh, s_hh, b_hh, h, c, y);
}

int main(int argc, char **argv)
{
    const uint32_t H = argc > 1 ? (uint32_t)atoi(argv[1]) : 64;
    const uint32_t kind = argc > 2 && argv[2][0] == 'l' ? RNC_LSTM : RNC_GRU;
    const int rounds = argc > 3 ? atoi(argv[3]) : 300;
    if (H < 1 || H > HMAX || rounds < 1) {
        fprintf(stderr, "usage: %s H (1..%d) gru|lstm [rounds >= 1]\n", argv[0], HMAX);
        return 2;
    }
    const uint32_t Hp = (H + 15) / 16 * 16, G = kind == RNC_GRU ? 3 : 4;
    const float sx = 0.0123f, sh = 0.0071f;
    for (uint32_t i = 0; i < 4 * HMAX; ++i) {
        acc_i[i] = (int32_t)(rnd() % 200001u) - 100000;
        acc_h[i] = (int32_t)(rnd() % 200001u) - 100000;
        s_ih[i] = 1e-3f * (1.0f + frnd(0.5f));
        s_hh[i] = 1e-3f * (1.0f + frnd(0.5f));
        b_ih[i] = frnd(0.5f);
        b_hh[i] = frnd(0.5f);
    }
    for (uint32_t i = 0; i < HMAX; ++i) {
        h0[i] = frnd(0.9f);
        c0[i] = frnd(3.0f);
    }
    memcpy(h, h0, sizeof h);
    memcpy(c, c0, sizeof c);
    update(kind, H, Hp, sx, sh);
    int bad = 0;
    for (uint32_t u = 0; u < H; ++u) {
        float pi[4], ph[4], hn, cn = 0.0f;
        for (uint32_t g = 0; g < G; ++g) {
            const size_t o = (size_t)g * Hp + u;
            pi[g] = (float)acc_i[o] * (sx * s_ih[o]) + b_ih[o];
            ph[g] = (float)acc_h[o] * (sh * s_hh[o]) + b_hh[o];
        }
        if (kind == RNC_GRU) {
            const float r = rnc_sigmoidf(pi[0] + ph[0]), z = rnc_sigmoidf(pi[1] + ph[1]);
            const float n = rnc_tanhf(pi[2] + r * ph[2]);
            hn = (1.0f - z) * n + z * h0[u];
        } else {
            const float i = rnc_sigmoidf(pi[0] + ph[0]), f = rnc_sigmoidf(pi[1] + ph[1]);
            const float g = rnc_tanhf(pi[2] + ph[2]), o = rnc_sigmoidf(pi[3] + ph[3]);
            cn = f * c0[u] + i * g;
            hn = o * rnc_tanhf(cn);
            bad += memcmp(&cn, &c[u], sizeof cn) != 0;
        }
        bad += memcmp(&hn, &h[u], sizeof hn) != 0 || memcmp(&hn, &y[u], sizeof hn) != 0;
    }
    if (bad) {
        printf("%s H=%u: %d units differ from the scalar formulas\n", argv[2], H, bad);
        return 1;
    }
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
        memcpy(h, h0, sizeof h);
        memcpy(c, c0, sizeof c);
        const double t0 = now_ns();
        for (int k = 0; k < 100; ++k) update(kind, H, Hp, sx, sh);
        const double t = (now_ns() - t0) / 100.0;
        if (t < best) best = t;
    }
    printf("%s H=%u: bit-identical to the scalar formulas; %.1f ns per update (%.2f per unit)\n",
           kind == RNC_GRU ? "gru" : "lstm", H, best, best / H);
    return 0;
}
