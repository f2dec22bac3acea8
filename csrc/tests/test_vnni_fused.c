/* Exactness of the AVX-512 VNNI fused q8 batch step (src/kernels/cells_avx512vnni.c): for batches
 * large enough to take it (16 rows and more), every q8 cell kernel of the avx512vnni row must give
 * h, c and y bitwise equal to the generic kernel's, over 3 steps with the state carried:
 *   - RNN tanh / relu, GRU (reset_after 1, and 0 which falls back to the template), LSTM;
 *   - H and I not multiples of 16 or 4 (masked unit blocks, padded input groups), H = I = 1;
 *   - batches that are and are not multiples of the tile width, with random `active` rows
 *     (inactive rows must stay untouched) and without;
 *   - random weights and inputs, and extreme ones (every weight and input +-127);
 *   - dynamic and static (calibrated) h scales; y rows with a stride larger than H.
 * The weights are packed here from docs/q8-contract.md's layout formula, independently of the library.
 * Skipped (reported) when the CPU or OS lacks AVX-512 VNNI.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int passed, failed;
static uint32_t rng = 777u;
static int rnd(int lo, int hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (int)((rng >> 8) % (uint32_t)(hi - lo + 1));
}
static float frand(float a) { return a * ((float)rnd(-100000, 100000) / 100000.0f); }

static void *zalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

/* byte[(b*Kp/4 + g)*64 + r*4 + j] = W[16b + r, 4g + j] (zero padding) */
static int8_t *pack_q8(const int8_t *W, uint32_t R, uint32_t K)
{
    const uint32_t Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
    int8_t *p = zalloc((size_t)Rp * Kp);
    for (uint32_t r = 0; r < R; ++r)
        for (uint32_t k = 0; k < K; ++k)
            p[((size_t)(r / 16) * (Kp / 4) + k / 4) * 64 + (r % 16) * 4 + k % 4] = W[(size_t)r * K + k];
    return p;
}

static void one_case(uint32_t kind, uint32_t ra, uint32_t B, uint32_t I, uint32_t H, int extreme, int use_active,
                     float h_scale)
{
    const uint32_t G = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1, Hp = (H + 15) / 16 * 16;
    const uint32_t R = G * Hp, kx = (I + 3) / 4 * 4, ldy = H + 3;
    int8_t *wa = zalloc((size_t)R * I), *wb = zalloc((size_t)R * H);
    for (uint32_t g = 0; g < G; ++g)
        for (uint32_t u = 0; u < H; ++u) {
            const size_t r = (size_t)g * Hp + u;
            for (uint32_t k = 0; k < I; ++k) wa[r * I + k] = extreme ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
            for (uint32_t k = 0; k < H; ++k) wb[r * H + k] = extreme ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
        }
    int8_t *wih = pack_q8(wa, R, I), *whh = pack_q8(wb, R, H);
    float *sih = zalloc(4 * R), *shh = zalloc(4 * R), *bih = zalloc(4 * R), *bhh = zalloc(4 * R);
    for (uint32_t r = 0; r < R; ++r) {
        sih[r] = 0.002f + frand(0.001f);
        shh[r] = 0.002f + frand(0.001f);
        bih[r] = frand(0.5f);
        bhh[r] = frand(0.5f);
    }
    int8_t *xq = zalloc((size_t)B * kx);
    float *sx = zalloc(4 * B);
    for (uint32_t b = 0; b < B; ++b) {
        for (uint32_t k = 0; k < I; ++k) xq[(size_t)b * kx + k] = extreme ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
        sx[b] = 0.01f + frand(0.005f);
    }
    uint8_t *active = zalloc(B);
    for (uint32_t b = 0; b < B; ++b) active[b] = (uint8_t)(rnd(0, 3) != 0);
    const size_t n = (size_t)B * H, ny = (size_t)B * ldy;
    float *h0 = zalloc(4 * n), *c0 = zalloc(4 * n);
    for (size_t i = 0; i < n; ++i) {
        h0[i] = frand(1.0f);
        c0[i] = frand(2.0f);
    }
    float *h[2], *c[2], *y[2];
    const rnc_cell_work wl = rnc__cell_work(G, H, B);
    void *work = zalloc(wl.total + 64);
    const int op = kind == RNC_GRU ? RNC_OP_GRU_STEP : kind == RNC_LSTM ? RNC_OP_LSTM_STEP : RNC_OP_RNN_STEP;
    /* the row the avx512vnni plan runs for this batch, the input vector given (fused from 16 rows) */
    const int rows[2] = {rnc__find_kernel(op, RNC_Q8, RNC_ISA_GENERIC),
                         rnc__pick_kernel(op, RNC_Q8, RNC_ISA_AVX512VNNI, B, RNC_IN_X, kind == RNC_GRU && !ra, 0)};
    for (int v = 0; v < 2; ++v) {
        h[v] = zalloc(4 * n);
        c[v] = zalloc(4 * n);
        y[v] = zalloc(4 * ny);
        memcpy(h[v], h0, 4 * n);
        memcpy(c[v], c0, 4 * n);
        for (size_t i = 0; i < ny; ++i) y[v][i] = -7.0f;
        rnc_cell_args a;
        memset(&a, 0, sizeof a);
        a.kind = kind;
        a.reset_after = ra;
        a.batch = B;
        a.I = I;
        a.H = H;
        a.Hp = Hp;
        a.G = G;
        a.w_ih = wih;
        a.w_hh = whh;
        a.s_ih = sih;
        a.s_hh = shh;
        a.b_ih = bih;
        a.b_hh = bhh;
        a.h_scale = h_scale;
        a.h_inv = h_scale > 0.0f ? 1.0f / h_scale : 0.0f;
        a.xq = xq;
        a.sx = sx;
        a.ldxq = kx;
        a.h = h[v];
        a.c = kind == RNC_LSTM ? c[v] : NULL;
        a.y = y[v];
        a.ldy = ldy;
        a.active = use_active ? active : NULL;
        a.work = (void *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
        for (int s = 0; s < 3; ++s) rnc__kernels[rows[v]].fn.cell(&a);
    }
    int ok = !memcmp(h[0], h[1], 4 * n) && !memcmp(c[0], c[1], 4 * n) && !memcmp(y[0], y[1], 4 * ny);
    if (use_active) /* inactive rows untouched */
        for (uint32_t b = 0; b < B; ++b)
            if (!active[b]) ok &= !memcmp(h[1] + (size_t)b * H, h0 + (size_t)b * H, 4 * H);
    if (ok) {
        ++passed;
    } else {
        ++failed;
        printf("FAIL fused q8 kind=%u reset_after=%u B=%u I=%u H=%u extreme=%d active=%d h_scale=%g\n", kind, ra, B,
               I, H, extreme, use_active, (double)h_scale);
    }
    for (int v = 0; v < 2; ++v) {
        free(h[v]);
        free(c[v]);
        free(y[v]);
    }
    void *p[] = {wa, wb, wih, whh, sih, shh, bih, bhh, xq, sx, active, h0, c0, work};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; ++i) free(p[i]);
}

int main(void)
{
    if (!rnc__cpu_supports(RNC_ISA_AVX512VNNI)) {
        printf("skipped: fused q8 batch step (CPU/OS lacks AVX-512 VNNI)\n");
        return 0;
    }
    static const uint32_t shapes[][3] = {{16, 1, 1}, {17, 33, 47}, {23, 5, 16}, {64, 64, 128}, {19, 20, 100},
                                         {33, 130, 40}};
    static const uint32_t kinds[][2] = {{RNC_RNN_TANH, 1}, {RNC_RNN_RELU, 1}, {RNC_GRU, 1}, {RNC_GRU, 0}, {RNC_LSTM, 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int mode = 0; mode < 5; ++mode) /* 3: a static h scale; 4: the bounded one, 1/127 */
                one_case(kinds[k][0], kinds[k][1], shapes[s][0], shapes[s][1], shapes[s][2], mode & 1,
                         (mode >> 1) & 1, mode == 3 ? 0.01f : mode == 4 ? 1.0f / 127.0f : 0.0f);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
