/* sparse-layout: the block-sparse q8 products of one GRU / LSTM step (W_ih x and W_hh h, batch 1,
 * I = H) in the layout the engine stores (docs/rnc-format.md: one index list per 16-row block of
 * the G*Hp gate rows) against a gate-shared layout that is not in the format: per 16-unit block
 * one index list, each entry holding the G gate blocks of that input group together, so one
 * index load and one input broadcast serve G blocks. A gate-shared layout needs one block mask
 * for every gate (BlockPruning(shared_gates=True)); both layouts here hold the same such weights.
 *
 * Prints the minimum over rounds of the time per step (both matrices) of: the engine's SPGEMV row
 * (rnc_q8_gemm_sparse_avx512vnni), the gate-shared product, and the gate-shared product with the
 * per-row correction and store only (no blocks: the fixed part of the walk); checks that both
 * products give the same int32 sums (exit status 1 otherwise). x86-64 with AVX-512 VNNI only.
 * The figures in docs/performance.md are GCC 12's build: clang 14 keeps the gate-shared walk's
 * accumulator array in memory (about 1.5x slower there).
 *
 *   make -C csrc build/sparse-layout && csrc/build/sparse-layout [H] [G] [density] [rounds]
 *       (defaults 256 3 0.5 300; `make -C csrc test` runs it small, for the equality check)
 */
#define _POSIX_C_SOURCE 200112L
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnncore.h"

void rnc_q8_gemm_sparse_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                   int32_t *Acc, int ldacc);

#define MAXG 4

typedef struct {              /* the gate-shared layout of one G*Hp x K matrix */
    uint32_t G, Hp, units;    /* units = Hp / 16 */
    uint32_t *uptr;           /* units + 1 */
    uint16_t *cols;           /* per entry: its input group */
    int8_t *blocks;           /* per entry: G blocks of 64 bytes (gate 0 first) */
    int32_t *sums;            /* G*Hp */
} shared_q8;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static void *amalloc(size_t n) /* 64-aligned; exits on failure */
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) {
        fprintf(stderr, "sparse-layout: out of memory\n");
        exit(2);
    }
    return p;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* acc[g*Hp + 16u + r] = W q for rows of unit block u; qx = q ^ 0x80 (offset trick, as the engine's
 * sparse rows: dpbusd(q ^ 0x80, W) = W q + 128 rowsum). Two entries in flight: 2G accumulators,
 * kept in registers (G a constant: the function is inlined into one copy per G). */
static inline __attribute__((always_inline)) void shared_gemv_g(const shared_q8 *S, const int8_t *qx,
                                                                int32_t *acc, const uint32_t G)
{
    for (uint32_t u = 0; u < S->units; ++u) {
        const uint16_t *c = S->cols + S->uptr[u], *const ce = S->cols + S->uptr[u + 1];
        const int8_t *t = S->blocks + (size_t)64 * G * S->uptr[u];
        __m512i a[2 * MAXG];
#pragma GCC unroll 8
        for (uint32_t g = 0; g < 2 * G; ++g) a[g] = _mm512_setzero_si512();
        for (; ce - c >= 2; c += 2, t += 128 * G) {
            int32_t v0, v1;
            memcpy(&v0, qx + 4 * (size_t)c[0], 4);
            memcpy(&v1, qx + 4 * (size_t)c[1], 4);
            const __m512i x0 = _mm512_set1_epi32(v0), x1 = _mm512_set1_epi32(v1);
#pragma GCC unroll 4
            for (uint32_t g = 0; g < G; ++g) {
                a[g] = _mm512_dpbusd_epi32(a[g], x0, _mm512_loadu_si512((const void *)(t + 64 * g)));
                a[G + g] = _mm512_dpbusd_epi32(a[G + g], x1, _mm512_loadu_si512((const void *)(t + 64 * (G + g))));
            }
        }
        for (; c < ce; ++c, t += 64 * G) {
            int32_t v0;
            memcpy(&v0, qx + 4 * (size_t)c[0], 4);
            const __m512i x0 = _mm512_set1_epi32(v0);
#pragma GCC unroll 4
            for (uint32_t g = 0; g < G; ++g)
                a[g] = _mm512_dpbusd_epi32(a[g], x0, _mm512_loadu_si512((const void *)(t + 64 * g)));
        }
#pragma GCC unroll 4
        for (uint32_t g = 0; g < G; ++g) {
            const size_t r0 = (size_t)g * S->Hp + 16 * (size_t)u;
            const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(S->sums + r0)), 7);
            _mm512_storeu_si512((void *)(acc + r0), _mm512_sub_epi32(_mm512_add_epi32(a[g], a[G + g]), corr));
        }
    }
}

static void shared_gemv(const shared_q8 *S, const int8_t *qx, int32_t *acc)
{
    if (S->G == 3) shared_gemv_g(S, qx, acc, 3);
    else shared_gemv_g(S, qx, acc, 4);
}

int main(int argc, char **argv)
{
    const uint32_t H = argc > 1 ? (uint32_t)atoi(argv[1]) : 256;
    const uint32_t G = argc > 2 ? (uint32_t)atoi(argv[2]) : 3;
    const double d = argc > 3 ? atof(argv[3]) : 0.5;
    const int rounds = argc > 4 ? atoi(argv[4]) : 300;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) {
        printf("sparse-layout: this CPU has no AVX-512 VNNI; nothing run\n");
        return 0;
    }
    if (H % 16 || H < 16 || H > 4096 || (G != 3 && G != 4) || d <= 0 || d > 1 || rounds < 1) {
        fprintf(stderr, "sparse-layout: expected H a multiple of 16 in 16..4096, G 3 or 4, 0 < density <= 1\n");
        return 2;
    }
    const uint32_t Hp = H, K = H, groups = K / 4, units = Hp / 16, R = G * Hp;
    const size_t cells = (size_t)units * groups;
    rnc_sparse_q8 eng[2];
    shared_q8 sh[2];
    int8_t *q = amalloc(K + 64), *qx = amalloc(K + 64);
    int32_t *acc0 = amalloc(4 * (size_t)R), *acc1 = amalloc(4 * (size_t)R);
    for (uint32_t k = 0; k < K; ++k) q[k] = (int8_t)((int)(rnd() % 255) - 127), qx[k] = (int8_t)(q[k] ^ 0x80);
    size_t nnz_total = 0;
    for (int m = 0; m < 2; ++m) {
        /* one mask for every gate: unit block u, group g kept with probability d */
        uint8_t *keep = amalloc(cells);
        size_t n = 0;
        for (size_t i = 0; i < cells; ++i) n += keep[i] = (double)rnd() / 4294967296.0 < d;
        int8_t *w = amalloc((size_t)R * K); /* row-major dense, zero outside the kept blocks */
        for (uint32_t r = 0; r < R; ++r)
            for (uint32_t k = 0; k < K; ++k)
                w[(size_t)r * K + k] = keep[(r % Hp) / 16 * groups + k / 4] ? (int8_t)((int)(rnd() % 255) - 127) : 0;
        int32_t *sums = amalloc(4 * (size_t)R);
        for (uint32_t r = 0; r < R; ++r) {
            int32_t s = 0;
            for (uint32_t k = 0; k < K; ++k) s += w[(size_t)r * K + k];
            sums[r] = s;
        }
        /* the engine's layout: row block b = g * units + u */
        uint32_t *rowptr = amalloc(4 * ((size_t)G * units + 1));
        uint16_t *cols = amalloc(2 * n * G + 2);
        int8_t *blocks = amalloc(64 * n * G + 64);
        size_t i = 0;
        for (uint32_t b = 0; b < G * units; ++b) {
            rowptr[b] = (uint32_t)i;
            const uint32_t u = b % units;
            for (uint32_t gr = 0; gr < groups; ++gr) {
                if (!keep[(size_t)u * groups + gr]) continue;
                cols[i] = (uint16_t)gr;
                for (int r = 0; r < 16; ++r)
                    for (int j = 0; j < 4; ++j) blocks[64 * i + 4 * r + j] = w[(size_t)(16 * b + r) * K + 4 * gr + j];
                ++i;
            }
        }
        rowptr[G * units] = (uint32_t)i;
        eng[m] = (rnc_sparse_q8){rowptr, sums, cols, blocks, NULL, 16, G * units, (uint32_t)i, 0};
        /* the gate-shared layout */
        uint32_t *uptr = amalloc(4 * ((size_t)units + 1));
        uint16_t *ucols = amalloc(2 * n + 2);
        int8_t *ublocks = amalloc(64 * n * G + 64);
        i = 0;
        for (uint32_t u = 0; u < units; ++u) {
            uptr[u] = (uint32_t)i;
            for (uint32_t gr = 0; gr < groups; ++gr) {
                if (!keep[(size_t)u * groups + gr]) continue;
                ucols[i] = (uint16_t)gr;
                for (uint32_t g = 0; g < G; ++g)
                    for (int r = 0; r < 16; ++r)
                        for (int j = 0; j < 4; ++j)
                            ublocks[64 * (G * i + g) + 4 * r + j] = w[(size_t)(g * Hp + 16 * u + r) * K + 4 * gr + j];
                ++i;
            }
        }
        uptr[units] = (uint32_t)i;
        sh[m] = (shared_q8){G, Hp, units, uptr, ucols, ublocks, sums};
        nnz_total += G * n;
        free(keep);
        free(w);
    }
    /* same sums */
    for (int m = 0; m < 2; ++m) {
        rnc_q8_gemm_sparse_avx512vnni((const int8_t *)(const void *)&eng[m], (int)R, (int)K, 1, q, (int)K, acc0, (int)R);
        shared_gemv(&sh[m], qx, acc1);
        if (memcmp(acc0, acc1, 4 * (size_t)R)) {
            fprintf(stderr, "sparse-layout: the gate-shared product differs from the engine's\n");
            return 1;
        }
    }
    /* empty walk: the same unit blocks without entries */
    uint32_t *zptr = calloc(units + 1, 4);
    shared_q8 z[2] = {sh[0], sh[1]};
    z[0].uptr = z[1].uptr = zptr;
    const int iters = 200;
    double best[3] = {1e300, 1e300, 1e300};
    for (int rd = 0; rd < rounds; ++rd)
        for (int v = 0; v < 3; ++v) {
            const double t0 = now_us();
            for (int it = 0; it < iters; ++it)
                for (int m = 0; m < 2; ++m) {
                    if (v == 0)
                        rnc_q8_gemm_sparse_avx512vnni((const int8_t *)(const void *)&eng[m], (int)R, (int)K, 1, q,
                                                      (int)K, acc0, (int)R);
                    else { /* q ^ 0x80 made per call, as the engine's row does */
                        for (uint32_t k = 0; k < K; k += 64)
                            _mm512_store_si512((void *)(qx + k), _mm512_xor_si512(_mm512_load_si512((const void *)(q + k)),
                                                                                 _mm512_set1_epi8((char)0x80)));
                        shared_gemv(v == 1 ? &sh[m] : &z[m], qx, acc1);
                    }
                    __asm__ volatile("" ::: "memory");
                }
            const double dt = (now_us() - t0) / iters;
            if (dt < best[v]) best[v] = dt;
        }
    printf("G=%u H=I=%u density %.2f (one mask for the gates): %zu blocks of 64 bytes in W_ih + W_hh\n", G, H, d,
           nnz_total);
    printf("us per step (both products), min of %d rounds of %d:\n", rounds, iters);
    printf("  engine layout (rnc_q8_gemm_sparse_avx512vnni)   %.4f  (%.3f ns per block)\n", best[0],
           1e3 * best[0] / (double)nnz_total);
    printf("  gate-shared layout                               %.4f  (%.3f ns per block)\n", best[1],
           1e3 * best[1] / (double)nnz_total);
    printf("  gate-shared, no entries (fixed part of the walk) %.4f\n", best[2]);
    return 0;
}
