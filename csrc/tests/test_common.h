/* Helpers shared by the x86 kernel tests (test_x86_avx512.c, test_x86_amx.c): pass/fail counting,
 * a deterministic generator, aligned zeroed allocation, the packers written literally from
 * docs/q8-contract.md's layout formulas (an independent reference for the kernels' layout), and
 * random fused-cell cases run through any cell kernel (include after internal.h).
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

/* ------------------------------------------------------------------ fused cell cases */

typedef struct {
    uint32_t kind, reset_after, B, I, H, G, Hp;
    void *wih, *whh;
    float *sih, *shh, *bih, *bhh, *x, *sx, *h, *c, *y;
    float *gi;        /* sequence mode: precomputed input part, B rows of ldgi = G*Hp + 3 floats */
    uint8_t *active;  /* sequence mode: rows with 0 are left untouched */
    int8_t *xq;
    int32_t *sums;    /* q8: W_hh's kernel sums (rnc_q8_rowsum_generic), for rows that take them */
    void *work;
    float h_scale;    /* q8: h's static scale, its inverse computed as the loader does (0: dynamic) */
} cell_case;

/* Random cell of the given shape; mode 1 saturates (weights and inputs at their extremes).
 * Every third row of a batch > 1 is inactive in the RUN_SEQ / RUN_STEP_MASKED forms. */
static inline void make_case(cell_case *t, int q8, uint32_t kind, uint32_t ra, uint32_t B, uint32_t I,
                      uint32_t H, int mode)
{
    t->kind = kind;
    t->reset_after = ra;
    t->B = B;
    t->I = I;
    t->H = H;
    t->G = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    t->Hp = (H + 15) / 16 * 16;
    const uint32_t R = t->G * t->Hp, kx = (I + 3) / 4 * 4, kh = (H + 3) / 4 * 4;
    if (q8) {
        int8_t *a = zalloc((size_t)R * kx), *b = zalloc((size_t)R * kh);
        int8_t *wa = zalloc((size_t)R * I), *wb = zalloc((size_t)R * H);
        for (uint32_t g = 0; g < t->G; ++g)
            for (uint32_t u = 0; u < H; ++u) {
                const size_t r = (size_t)g * t->Hp + u;
                for (uint32_t k = 0; k < I; ++k) wa[r * I + k] = mode ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
                for (uint32_t k = 0; k < H; ++k) wb[r * H + k] = mode ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
            }
        pack_q8(wa, (int)R, (int)I, a);
        pack_q8(wb, (int)R, (int)H, b);
        free(wa);
        free(wb);
        t->wih = a;
        t->whh = b;
    } else {
        float *a = zalloc(sizeof(float) * R * I), *b = zalloc(sizeof(float) * R * H);
        float *wa = zalloc(sizeof(float) * R * I), *wb = zalloc(sizeof(float) * R * H);
        for (uint32_t g = 0; g < t->G; ++g)
            for (uint32_t u = 0; u < H; ++u) {
                const size_t r = (size_t)g * t->Hp + u;
                for (uint32_t k = 0; k < I; ++k) wa[r * I + k] = frand(mode ? 2.0f : 0.3f);
                for (uint32_t k = 0; k < H; ++k) wb[r * H + k] = frand(mode ? 2.0f : 0.3f);
            }
        pack_f32(wa, (int)R, (int)I, a);
        pack_f32(wb, (int)R, (int)H, b);
        free(wa);
        free(wb);
        t->wih = a;
        t->whh = b;
    }
    t->sih = zalloc(sizeof(float) * R);
    t->shh = zalloc(sizeof(float) * R);
    t->bih = zalloc(sizeof(float) * R);
    t->bhh = zalloc(sizeof(float) * R);
    for (uint32_t r = 0; r < R; ++r) {
        t->sih[r] = 0.002f + frand(0.001f);
        t->shh[r] = 0.002f + frand(0.001f);
        t->bih[r] = frand(mode ? 3.0f : 0.2f);
        t->bhh[r] = frand(mode ? 3.0f : 0.2f);
    }
    t->x = zalloc(sizeof(float) * B * I);
    t->xq = zalloc((size_t)B * kx);
    t->sx = zalloc(sizeof(float) * B);
    for (uint32_t b = 0; b < B; ++b) {
        for (uint32_t k = 0; k < I; ++k) {
            t->x[b * I + k] = frand(mode ? 5.0f : 1.0f);
            t->xq[b * kx + k] = mode ? (rnd(0, 1) ? 127 : -127) : (int8_t)rnd(-127, 127);
        }
        t->sx[b] = 0.01f + frand(0.005f);
    }
    t->h = zalloc(sizeof(float) * B * H);
    t->c = zalloc(sizeof(float) * B * H);
    t->y = zalloc(sizeof(float) * B * H);
    for (size_t i = 0; i < (size_t)B * H; ++i) {
        t->h[i] = frand(1.0f);
        t->c[i] = frand(mode ? 4.0f : 1.0f);
    }
    const size_t ldgi = (size_t)R + 3;
    t->gi = zalloc(sizeof(float) * B * ldgi);
    t->active = zalloc(B);
    for (uint32_t b = 0; b < B; ++b) {
        for (size_t r = 0; r < ldgi; ++r) t->gi[b * ldgi + r] = frand(mode ? 6.0f : 1.0f);
        t->active[b] = (uint8_t)(B == 1 || b % 3 != 1);
    }
    t->work = zalloc(rnc__cell_work(t->G, H, B).total);
    t->sums = zalloc(sizeof(int32_t) * R);
    t->h_scale = 0.0f;
    if (q8) rnc_q8_rowsum_generic((const int8_t *)t->whh, (int)R, (int)H, t->sums);
}

/* Does kernel-table row k serve this case in this form (its batch range, input, GRU form)? */
enum { RUN_STEP = 0, RUN_SEQ = 1, RUN_STEP_MASKED = 2, RUN_STEP_NOY = 3 };
static inline int row_serves_case(const rnc_kernel *k, const cell_case *t, int form)
{
    return rnc__kernel_serves(k, t->B, form == RUN_SEQ ? RNC_IN_GI : RNC_IN_X,
                              t->kind == RNC_GRU && !t->reset_after, 1);
}

static inline void free_case(cell_case *t)
{
    void *p[] = {t->wih, t->whh, t->sih, t->shh, t->bih, t->bhh, t->x,  t->xq,
                 t->sx,  t->h,   t->c,   t->y,   t->gi,  t->active, t->work, t->sums};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; ++i) free(p[i]);
}

/* Run kernel `fn` for `steps` steps (h, c carried) on a copy of the state; results in h, c, y.
 * form RUN_STEP: input x / xq, every row active, y written. RUN_SEQ: the whole-sequence form
 * (input part given as float gi, inactive rows, no y). RUN_STEP_MASKED: input x / xq with the
 * inactive rows of `active` (a variable-length batch), y written. RUN_STEP_NOY: RUN_STEP without
 * y (a layer below the last: h' only). */
static inline void run_cell(const cell_case *t, rnc_cell_fn fn, int q8, int steps, float *h, float *c,
                            float *y, int form)
{
    memcpy(h, t->h, sizeof(float) * t->B * t->H);
    memcpy(c, t->c, sizeof(float) * t->B * t->H);
    rnc_cell_args a;
    memset(&a, 0, sizeof a);
    a.kind = t->kind;
    a.reset_after = t->reset_after;
    a.batch = t->B;
    a.I = t->I;
    a.H = t->H;
    a.Hp = t->Hp;
    a.G = t->G;
    a.w_ih = t->wih;
    a.w_hh = t->whh;
    a.s_ih = t->sih;
    a.s_hh = t->shh;
    a.b_ih = t->bih;
    a.b_hh = t->bhh;
    if (q8) {
        a.xq = t->xq;
        a.sx = t->sx;
        a.ldxq = (t->I + 3) / 4 * 4;
    } else {
        a.x = t->x;
        a.ldx = t->I;
    }
    a.h = h;
    a.c = t->kind == RNC_LSTM ? c : NULL;
    a.y = y;
    a.ldy = t->H;
    a.work = t->work;
    a.hh_sums = t->sums;
    a.h_scale = t->h_scale;
    a.h_inv = t->h_scale > 0.0f ? 1.0f / t->h_scale : 0.0f;
    if (form == RUN_STEP_MASKED) {
        a.active = t->active;
        memset(y, 0, sizeof(float) * t->B * t->H);
    }
    if (form == RUN_STEP_NOY) {
        a.y = NULL;
        memset(y, 0, sizeof(float) * t->B * t->H);
    }
    if (form == RUN_SEQ) {
        a.x = NULL;
        a.xq = NULL;
        a.gi = t->gi;
        a.ldgi = (size_t)t->G * t->Hp + 3;
        a.active = t->active;
        a.y = NULL;
        memset(y, 0, sizeof(float) * t->B * t->H);
    }
    for (int s = 0; s < steps; ++s) fn(&a);
}

#endif
