/* q16-product: what an exact int16 x int16 frame_conv product would cost against the int8 one, on
 * Silero VAD v6's five frame_conv shapes (one frame: R output channels x N window positions, K =
 * C_in/groups * k taps each; 548,352 multiply-accumulates). A measurement of forms that are not in
 * the engine (docs/q8-contract.md, "Which to keep": the 16 x 16 form's NumPy spec,
 * rnncore.quant.front.frame_conv_q16); each product is checked against a scalar int64 loop.
 *
 *   int8:   vpdpbusd on unsigned codes q + 128, minus 128 * sum(W) (64 products per instruction,
 *           int32 sums), the engine's q8 product form
 *   wide:   vpmaddwd (pairs in int32: 2 * 32767^2 < 2^31), each pair widened to int64 and added
 *   split:  q = 256 qh + ql (qh in -128..127, ql in 0..255): vpdpwssd into two int32 sums, which
 *           cannot overflow for K < 4096 taps (|pair| < 2^24), combined as 256 Ah + Al in int64
 *
 * Each form takes two output rows at a time (one load of the input serves both). Prints the
 * minimum over rounds of the time per frame (all five products), the three forms alternated in
 * every round. x86-64 with AVX-512 F/BW/VNNI only.
 *
 *   make -C csrc build/q16-product && csrc/build/q16-product [rounds]
 *       (default 2000; `make -C csrc test` runs it with 1, for the equality check)
 */
#define _POSIX_C_SOURCE 200112L
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NSHAPE 5
static const int SHAPE[NSHAPE][3] = {/* R, K, N */
                                     {258, 256, 4}, {128, 387, 4}, {64, 384, 2}, {64, 192, 1}, {128, 192, 1}};

static int pad64(int k) { return (k + 63) / 64 * 64; }

typedef struct {
    int R, K, Kp, N;
    int8_t *w8;
    int16_t *w16;
    int32_t *wsum8;
    uint8_t *xu8;           /* N x Kp */
    int16_t *x16, *xh, *xl; /* N x Kp */
    int64_t *ref;           /* N x R */
} shape;

static uint32_t rng = 12345u;
static uint32_t next(void) { return rng = rng * 1664525u + 1013904223u; }
static int rand_in(int m) { return (int)(next() >> 8) % (2 * m + 1) - m; }

static void *alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0) exit(2);
    return p;
}

static void make(shape *s, const int *d) {
    s->R = d[0], s->K = d[1], s->N = d[2], s->Kp = pad64(d[1]);
    const size_t w = (size_t)s->R * s->Kp, x = (size_t)s->N * s->Kp;
    s->w8 = alloc(w), s->w16 = alloc(2 * w), s->wsum8 = alloc(4 * (size_t)s->R);
    s->xu8 = alloc(x), s->x16 = alloc(2 * x), s->xh = alloc(2 * x), s->xl = alloc(2 * x);
    s->ref = alloc(8 * (size_t)s->N * s->R);
    for (size_t i = 0; i < w; i++) {
        const int in = (int)(i % s->Kp) < s->K;
        s->w8[i] = (int8_t)(in ? rand_in(127) : 0);
        s->w16[i] = (int16_t)(in ? rand_in(32767) : 0);
    }
    for (int r = 0; r < s->R; r++) {
        int32_t t = 0;
        for (int k = 0; k < s->Kp; k++) t += s->w8[(size_t)r * s->Kp + k];
        s->wsum8[r] = t;
    }
    for (size_t i = 0; i < x; i++) {
        const int in = (int)(i % s->Kp) < s->K;
        const int q = in ? rand_in(32767) : 0;
        s->x16[i] = (int16_t)q;
        s->xh[i] = (int16_t)(q >> 8); /* arithmetic shift: q = 256 qh + ql */
        s->xl[i] = (int16_t)(q & 255);
        s->xu8[i] = (uint8_t)((in ? rand_in(127) : 0) + 128);
    }
}

static int64_t hsum64(__m512i v) { return _mm512_reduce_add_epi64(v); }

static void prod_int8(const shape *s, int32_t *out) {
    for (int n = 0; n < s->N; n++)
        for (int r = 0; r < s->R; r += 2) { /* two rows share the input's loads (every R is even) */
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            const uint8_t *x = s->xu8 + (size_t)n * s->Kp;
            const int8_t *w = s->w8 + (size_t)r * s->Kp;
            for (int k = 0; k < s->Kp; k += 64) {
                const __m512i xv = _mm512_load_si512(x + k);
                a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_load_si512(w + k));
                a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_load_si512(w + s->Kp + k));
            }
            out[n * s->R + r] = _mm512_reduce_add_epi32(a0) - 128 * s->wsum8[r];
            out[n * s->R + r + 1] = _mm512_reduce_add_epi32(a1) - 128 * s->wsum8[r + 1];
        }
}

static __m512i widen_add(__m512i a, __m512i p) {
    a = _mm512_add_epi64(a, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(p)));
    return _mm512_add_epi64(a, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(p, 1)));
}

static void prod_wide(const shape *s, int64_t *out) {
    for (int n = 0; n < s->N; n++)
        for (int r = 0; r < s->R; r += 2) {
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            const int16_t *x = s->x16 + (size_t)n * s->Kp;
            const int16_t *w = s->w16 + (size_t)r * s->Kp;
            for (int k = 0; k < s->Kp; k += 32) {
                const __m512i xv = _mm512_load_si512(x + k);
                a0 = widen_add(a0, _mm512_madd_epi16(xv, _mm512_load_si512(w + k)));
                a1 = widen_add(a1, _mm512_madd_epi16(xv, _mm512_load_si512(w + s->Kp + k)));
            }
            out[n * s->R + r] = hsum64(a0);
            out[n * s->R + r + 1] = hsum64(a1);
        }
}

static int64_t combine(__m512i ah, __m512i al) { /* 256 Ah + Al in int64 lanes */
    const __m512i h = widen_add(_mm512_setzero_si512(), ah), l = widen_add(_mm512_setzero_si512(), al);
    return hsum64(_mm512_add_epi64(_mm512_slli_epi64(h, 8), l));
}

static void prod_split(const shape *s, int64_t *out) {
    for (int n = 0; n < s->N; n++)
        for (int r = 0; r < s->R; r += 2) {
            __m512i h0 = _mm512_setzero_si512(), l0 = h0, h1 = h0, l1 = h0;
            const int16_t *xh = s->xh + (size_t)n * s->Kp, *xl = s->xl + (size_t)n * s->Kp;
            const int16_t *w = s->w16 + (size_t)r * s->Kp;
            for (int k = 0; k < s->Kp; k += 32) {
                const __m512i hv = _mm512_load_si512(xh + k), lv = _mm512_load_si512(xl + k);
                const __m512i w0 = _mm512_load_si512(w + k), w1 = _mm512_load_si512(w + s->Kp + k);
                h0 = _mm512_dpwssd_epi32(h0, hv, w0);
                l0 = _mm512_dpwssd_epi32(l0, lv, w0);
                h1 = _mm512_dpwssd_epi32(h1, hv, w1);
                l1 = _mm512_dpwssd_epi32(l1, lv, w1);
            }
            out[n * s->R + r] = combine(h0, l0);
            out[n * s->R + r + 1] = combine(h1, l1);
        }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) {
        printf("q16-product: this CPU has no AVX-512 VNNI; nothing run\n");
        return 0;
    }
    if (rounds < 1) {
        fprintf(stderr, "q16-product: expected rounds >= 1, got %d\n", rounds);
        return 2;
    }
    shape S[NSHAPE];
    static int32_t o8[4096];
    static int64_t o16[4096];
    long macs = 0;
    for (int i = 0; i < NSHAPE; i++) {
        make(&S[i], SHAPE[i]);
        macs += (long)S[i].R * S[i].K * S[i].N;
        for (int n = 0; n < S[i].N; n++)
            for (int r = 0; r < S[i].R; r++) {
                int64_t t16 = 0;
                int32_t t8 = 0;
                for (int k = 0; k < S[i].K; k++) {
                    const size_t xi = (size_t)n * S[i].Kp + k, wi = (size_t)r * S[i].Kp + k;
                    t16 += (int64_t)S[i].x16[xi] * S[i].w16[wi];
                    t8 += ((int32_t)S[i].xu8[xi] - 128) * S[i].w8[wi];
                }
                S[i].ref[n * S[i].R + r] = t16;
                o8[n * S[i].R + r] = t8;
            }
        static int32_t c8[4096];
        prod_int8(&S[i], c8);
        for (int j = 0; j < S[i].N * S[i].R; j++)
            if (c8[j] != o8[j]) return printf("int8 product differs (shape %d)\n", i), 1;
        prod_wide(&S[i], o16);
        for (int j = 0; j < S[i].N * S[i].R; j++)
            if (o16[j] != S[i].ref[j]) return printf("wide product differs (shape %d)\n", i), 1;
        prod_split(&S[i], o16);
        for (int j = 0; j < S[i].N * S[i].R; j++)
            if (o16[j] != S[i].ref[j]) return printf("split product differs (shape %d)\n", i), 1;
    }
    double best[3] = {1e9, 1e9, 1e9};
    for (int rd = 0; rd < rounds; rd++)
        for (int f = 0; f < 3; f++) {
            const double t0 = now();
            for (int i = 0; i < NSHAPE; i++) {
                if (f == 0) prod_int8(&S[i], o8);
                else if (f == 1) prod_wide(&S[i], o16);
                else prod_split(&S[i], o16);
            }
            const double t = now() - t0;
            if (t < best[f]) best[f] = t;
        }
    printf("Silero's five frame_conv products, one frame (%ld MACs), minimum of %d rounds:\n", macs, rounds);
    printf("  int8  (vpdpbusd, int32)            %7.2f us\n", best[0] * 1e6);
    printf("  wide  (vpmaddwd, int64 per pair)   %7.2f us  (%.2fx)\n", best[1] * 1e6, best[1] / best[0]);
    printf("  split (2 x vpdpwssd, int32 halves) %7.2f us  (%.2fx)\n", best[2] * 1e6, best[2] / best[0]);
    return 0;
}
