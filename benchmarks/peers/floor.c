/* Machine floors for the peer benchmark (benchmarks/peers/compare_peers.py), in C with no Python:
 *
 *   - the int8 and fp32 matrix-vector product of one GRU/LSTM step's weights, W_ih (G*H x I) and
 *     W_hh (G*H x H) as ONE G*H x (I+H) product, with an independent best-effort kernel written
 *     here (not rnncore's): AVX-512 VNNI (vpdpbusd, 16-row x 4-input tiles, four row blocks in
 *     flight, x broadcast 4 bytes at a time, u8 activations with a +128 offset corrected by
 *     precomputed row sums), AVX2 (maddubs/madd with the sign trick), plain C; fp32 with zmm / ymm
 *     FMA and plain C. The floor is the best variant this CPU runs;
 *   - beside it, rnncore's own: its GEMM kernel-table rows for the same products (two packed
 *     matrices as in a model, batch 1, no API checks), and with --model a C-only rnc_step of a
 *     .rnc model (no Python);
 *   - the peak multiply-accumulate rates of the core: register-only loops of independent
 *     vpdpbusd (zmm, AVX-512 VNNI), vpmaddubsw+vpmaddwd (ymm, AVX2) and vfmadd231ps (zmm / ymm).
 *
 *   floor --cell gru|lstm|rnn --hidden H [--input I] [--isa NAME] [--variant NAME] [--model F.rnc]
 *   floor --self-test      every variant this CPU runs against a plain C loop, exact
 *
 * Prints one JSON object (times in us; "*_us" the median per-call time over ~20 ms of calls,
 * "*_min_us" the minimum): {"isa", "floor_variant", "q8_gemv_us", "f32_gemv_us" (the independent
 * floor), "rnncore_q8_gemv_us", "rnncore_f32_gemv_us", "rnncore_step_us" (with --model), "peak"}.
 * Weight values do not change the time (no data-dependent paths), so they are a fixed pattern.
 * Built with -DFLOOR_STANDALONE (no C core needed) it has only the independent kernels.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FLOOR_STANDALONE
#include "internal.h" /* the kernel table: rnncore's kernel rows themselves, no API checks */
#include "rnncore.h"
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *amem(size_t n) /* 64-byte aligned, zeroed; exits on failure (a tool, not the core) */
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n + 63) / 64 * 64 + 64) != 0) exit(3);
    memset(p, 0, (n + 63) / 64 * 64 + 64);
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ the independent kernels
 *
 * One GRU/LSTM step's weights as ONE product: W = [W_ih | W_hh], R = G*H rows x K = I+H inputs,
 * y[r] = sum_k W[r,k] v[k] with v = [x | h]. None of this code is rnncore's; it shares only the
 * idea of the 16-row x 4-input tile.
 *
 * int8 layout: rows padded to Rp (multiple of 16), inputs to Kp (multiple of 4), both with zeros.
 * A tile is 16 rows x 4 inputs, 64 bytes, byte 4*r + j = W[16*b + r, 4*k + j] (row block b, input
 * group k). Row blocks go in groups of g = 4 (the last group may hold fewer): the tiles of a group
 * are stored k-major, (k, b) at group_base + (k*g + b)*64, so the four blocks in flight read one
 * sequential stream. fp32 layout: the same with 16-row x 1-input tiles of 64 bytes.
 *
 * Activations are int8 in [-127, 127] (the symmetric quantisation of docs/q8-contract.md; the AVX2
 * sign trick needs x != -128); weights may take all of [-128, 127].
 *   - VNNI: u = x + 128 as u8, vpdpbusd(acc, u broadcast 4 bytes, w tile); y = acc - 128 * rowsum(W).
 *   - AVX2: maddubs(|w|, sign(x, w)) (pairs <= 2*128*127, no saturation), madd with ones, add.
 *   - C: the same loops over the same layout, one int32 per row. */
#define FL_G 4

static size_t fl_group_base(long b, long nk, size_t tile) /* first byte of block b's group */
{
    return (size_t)(b / FL_G) * FL_G * (size_t)nk * tile;
}

/* W row-major R x K -> packed (zeros where padded). rowsum128[r] = 128 * sum_k W[r,k]. */
static void fl_pack_q8(const int8_t *w, long R, long K, long Rp, long Kp, int8_t *p, int32_t *rowsum128)
{
    const long nb = Rp / 16, nk = Kp / 4;
    memset(p, 0, (size_t)Rp * (size_t)Kp);
    for (long b = 0; b < nb; ++b) {
        const long g = nb - b / FL_G * FL_G < FL_G ? nb - b / FL_G * FL_G : FL_G, bi = b % FL_G;
        int8_t *base = p + fl_group_base(b, nk, 64);
        for (long k = 0; k < nk; ++k)
            for (long r = 0; r < 16; ++r)
                for (long j = 0; j < 4; ++j) {
                    const long row = 16 * b + r, col = 4 * k + j;
                    base[(size_t)(k * g + bi) * 64 + (size_t)(4 * r + j)] =
                        row < R && col < K ? w[(size_t)row * (size_t)K + (size_t)col] : 0;
                }
    }
    for (long r = 0; r < Rp; ++r) {
        int32_t s = 0;
        for (long k = 0; r < R && k < K; ++k) s += w[(size_t)r * (size_t)K + (size_t)k];
        rowsum128[r] = 128 * s;
    }
}

static void fl_pack_f32(const float *w, long R, long K, long Rp, float *p)
{
    const long nb = Rp / 16;
    for (long b = 0; b < nb; ++b) {
        const long g = nb - b / FL_G * FL_G < FL_G ? nb - b / FL_G * FL_G : FL_G, bi = b % FL_G;
        float *base = p + fl_group_base(b, K, 64) / 4;
        for (long k = 0; k < K; ++k)
            for (long r = 0; r < 16; ++r) {
                const long row = 16 * b + r;
                base[(size_t)(k * g + bi) * 16 + (size_t)r] = row < R ? w[(size_t)row * (size_t)K + (size_t)k] : 0.0f;
            }
    }
}

typedef struct {
    long Rp, Kp;
    const int8_t *w;          /* packed int8 */
    const int32_t *rowsum128; /* VNNI offset correction */
    const int8_t *x;          /* Kp int8 activations (zeros past K) */
    const uint8_t *xu;        /* x + 128 as u8 (VNNI) */
    int32_t *y;               /* Rp */
} fl_q8_args;

typedef struct {
    long Rp, K;
    const float *w, *x;
    float *y;
} fl_f32_args;

static void fl_q8_c(const fl_q8_args *a)
{
    const long nb = a->Rp / 16, nk = a->Kp / 4;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const long g = nb - b0 < FL_G ? nb - b0 : FL_G;
        const int8_t *t = a->w + fl_group_base(b0, nk, 64);
        int32_t acc[FL_G * 16] = {0};
        for (long k = 0; k < nk; ++k) {
            const int8_t *xk = a->x + 4 * k;
            for (long bi = 0; bi < g; ++bi, t += 64)
                for (int r = 0; r < 16; ++r)
                    acc[bi * 16 + r] += t[4 * r] * xk[0] + t[4 * r + 1] * xk[1] + t[4 * r + 2] * xk[2] +
                                        t[4 * r + 3] * xk[3];
        }
        memcpy(a->y + 16 * b0, acc, sizeof(int32_t) * 16 * (size_t)g);
    }
}

static void fl_f32_c(const fl_f32_args *a)
{
    const long nb = a->Rp / 16;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const long g = nb - b0 < FL_G ? nb - b0 : FL_G;
        const float *t = a->w + fl_group_base(b0, a->K, 64) / 4;
        float acc[FL_G * 16] = {0};
        for (long k = 0; k < a->K; ++k)
            for (long bi = 0; bi < g; ++bi, t += 16)
                for (int r = 0; r < 16; ++r) acc[bi * 16 + r] += t[r] * a->x[k];
        memcpy(a->y + 16 * b0, acc, sizeof(float) * 16 * (size_t)g);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FL_HAVE_X86 1

static inline int32_t fl_load4(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define FL_T512 __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define FL_T256 __attribute__((target("avx2,fma")))

/* One group of g row blocks (g a constant after inlining: the accumulators stay in registers).
 * Each block has two accumulators, one for the even and one for the odd input groups, so that
 * up to eight independent dot-product chains hide the instruction latency. */
#define FL_INLINE __attribute__((always_inline)) static inline

FL_T512 FL_INLINE void fl_q8_vnni_group(const int8_t *t, long nk, const uint8_t *xu, const int32_t *rowsum128,
                                        int32_t *y, const int g)
{
    __m512i e[FL_G], o[FL_G];
#pragma GCC unroll 4
    for (int i = 0; i < g; ++i) e[i] = o[i] = _mm512_setzero_si512();
    long k = 0;
    for (; k + 2 <= nk; k += 2, t += 2 * 64 * g) {
        const __m512i xe = _mm512_set1_epi32(fl_load4(xu + 4 * k));
        const __m512i xo = _mm512_set1_epi32(fl_load4(xu + 4 * k + 4));
#pragma GCC unroll 4
        for (int i = 0; i < g; ++i) {
            e[i] = _mm512_dpbusd_epi32(e[i], xe, _mm512_load_si512((const void *)(t + 64 * i)));
            o[i] = _mm512_dpbusd_epi32(o[i], xo, _mm512_load_si512((const void *)(t + 64 * (g + i))));
        }
    }
    if (k < nk) {
        const __m512i xe = _mm512_set1_epi32(fl_load4(xu + 4 * k));
#pragma GCC unroll 4
        for (int i = 0; i < g; ++i) e[i] = _mm512_dpbusd_epi32(e[i], xe, _mm512_load_si512((const void *)(t + 64 * i)));
    }
#pragma GCC unroll 4
    for (int i = 0; i < g; ++i)
        _mm512_storeu_si512((void *)(y + 16 * i),
                            _mm512_sub_epi32(_mm512_add_epi32(e[i], o[i]),
                                             _mm512_loadu_si512((const void *)(rowsum128 + 16 * i))));
}

FL_T512 static void fl_q8_vnni(const fl_q8_args *a)
{
    const long nb = a->Rp / 16, nk = a->Kp / 4;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const int8_t *t = a->w + fl_group_base(b0, nk, 64);
        const int32_t *c = a->rowsum128 + 16 * b0;
        int32_t *y = a->y + 16 * b0;
        switch (nb - b0 < FL_G ? nb - b0 : FL_G) {
        case 1: fl_q8_vnni_group(t, nk, a->xu, c, y, 1); break;
        case 2: fl_q8_vnni_group(t, nk, a->xu, c, y, 2); break;
        case 3: fl_q8_vnni_group(t, nk, a->xu, c, y, 3); break;
        default: fl_q8_vnni_group(t, nk, a->xu, c, y, 4); break;
        }
    }
}

FL_T256 FL_INLINE __m256i fl_dot8(__m256i acc, __m256i xb, const int8_t *t, __m256i ones)
{
    const __m256i w = _mm256_load_si256((const __m256i *)t);
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xb, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
}

FL_T256 FL_INLINE void fl_q8_avx2_group(const int8_t *t, long nk, const int8_t *x, int32_t *y, const int g)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[2 * FL_G];
#pragma GCC unroll 8
    for (int i = 0; i < 2 * g; ++i) acc[i] = _mm256_setzero_si256();
    for (long k = 0; k < nk; ++k, t += 64 * g) {
        const __m256i xb = _mm256_set1_epi32(fl_load4(x + 4 * k));
#pragma GCC unroll 8
        for (int i = 0; i < 2 * g; ++i) acc[i] = fl_dot8(acc[i], xb, t + 32 * i, ones);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 2 * g; ++i) _mm256_storeu_si256((__m256i *)(y + 8 * i), acc[i]);
}

FL_T256 static void fl_q8_avx2(const fl_q8_args *a)
{
    const long nb = a->Rp / 16, nk = a->Kp / 4;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const int8_t *t = a->w + fl_group_base(b0, nk, 64);
        int32_t *y = a->y + 16 * b0;
        switch (nb - b0 < FL_G ? nb - b0 : FL_G) {
        case 1: fl_q8_avx2_group(t, nk, a->x, y, 1); break;
        case 2: fl_q8_avx2_group(t, nk, a->x, y, 2); break;
        case 3: fl_q8_avx2_group(t, nk, a->x, y, 3); break;
        default: fl_q8_avx2_group(t, nk, a->x, y, 4); break;
        }
    }
}

/* fp32: per block an even-k and an odd-k accumulator (eight FMA chains for four blocks). The
 * two are added at the end, so the sum order is not a plain loop's: the self-test uses data whose
 * every partial sum is exact. */
FL_T512 FL_INLINE void fl_f32_avx512_group(const float *t, long K, const float *x, float *y, const int g)
{
    __m512 e[FL_G], o[FL_G];
#pragma GCC unroll 4
    for (int i = 0; i < g; ++i) e[i] = o[i] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 2 <= K; k += 2, t += 32 * g) {
        const __m512 xe = _mm512_set1_ps(x[k]), xo = _mm512_set1_ps(x[k + 1]);
#pragma GCC unroll 4
        for (int i = 0; i < g; ++i) {
            e[i] = _mm512_fmadd_ps(_mm512_load_ps(t + 16 * i), xe, e[i]);
            o[i] = _mm512_fmadd_ps(_mm512_load_ps(t + 16 * (g + i)), xo, o[i]);
        }
    }
    if (k < K) {
        const __m512 xe = _mm512_set1_ps(x[k]);
#pragma GCC unroll 4
        for (int i = 0; i < g; ++i) e[i] = _mm512_fmadd_ps(_mm512_load_ps(t + 16 * i), xe, e[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < g; ++i) _mm512_storeu_ps(y + 16 * i, _mm512_add_ps(e[i], o[i]));
}

FL_T512 static void fl_f32_avx512(const fl_f32_args *a)
{
    const long nb = a->Rp / 16;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const float *t = a->w + fl_group_base(b0, a->K, 64) / 4;
        float *y = a->y + 16 * b0;
        switch (nb - b0 < FL_G ? nb - b0 : FL_G) {
        case 1: fl_f32_avx512_group(t, a->K, a->x, y, 1); break;
        case 2: fl_f32_avx512_group(t, a->K, a->x, y, 2); break;
        case 3: fl_f32_avx512_group(t, a->K, a->x, y, 3); break;
        default: fl_f32_avx512_group(t, a->K, a->x, y, 4); break;
        }
    }
}

FL_T256 FL_INLINE void fl_f32_avx2_group(const float *t, long K, const float *x, float *y, const int g)
{
    __m256 acc[2 * FL_G];
#pragma GCC unroll 8
    for (int i = 0; i < 2 * g; ++i) acc[i] = _mm256_setzero_ps();
    for (long k = 0; k < K; ++k, t += 16 * g) {
        const __m256 xb = _mm256_set1_ps(x[k]);
#pragma GCC unroll 8
        for (int i = 0; i < 2 * g; ++i) acc[i] = _mm256_fmadd_ps(_mm256_load_ps(t + 8 * i), xb, acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 2 * g; ++i) _mm256_storeu_ps(y + 8 * i, acc[i]);
}

FL_T256 static void fl_f32_avx2(const fl_f32_args *a)
{
    const long nb = a->Rp / 16;
    for (long b0 = 0; b0 < nb; b0 += FL_G) {
        const float *t = a->w + fl_group_base(b0, a->K, 64) / 4;
        float *y = a->y + 16 * b0;
        switch (nb - b0 < FL_G ? nb - b0 : FL_G) {
        case 1: fl_f32_avx2_group(t, a->K, a->x, y, 1); break;
        case 2: fl_f32_avx2_group(t, a->K, a->x, y, 2); break;
        case 3: fl_f32_avx2_group(t, a->K, a->x, y, 3); break;
        default: fl_f32_avx2_group(t, a->K, a->x, y, 4); break;
        }
    }
}
#endif

/* The variants, best first; `ok` says whether this CPU runs one. */
typedef struct {
    const char *name;
    void (*q8)(const fl_q8_args *);
    void (*f32)(const fl_f32_args *);
    int (*ok)(void);
} fl_variant;

static int fl_ok_c(void) { return 1; }
#ifdef FL_HAVE_X86
static int fl_ok_vnni(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
static int fl_ok_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static const fl_variant fl_variants[] = {
#ifdef FL_HAVE_X86
    {"avx512vnni", fl_q8_vnni, fl_f32_avx512, fl_ok_vnni},
    {"avx2", fl_q8_avx2, fl_f32_avx2, fl_ok_avx2},
#endif
    {"c", fl_q8_c, fl_f32_c, fl_ok_c},
};
#define FL_NVARIANTS (sizeof fl_variants / sizeof fl_variants[0])

/* ------------------------------------------------------------------ self-test */
static uint64_t fl_rng = 0x9E3779B97F4A7C15u;
static uint32_t fl_rand(void)
{
    fl_rng ^= fl_rng << 13;
    fl_rng ^= fl_rng >> 7;
    fl_rng ^= fl_rng << 17;
    return (uint32_t)(fl_rng >> 32);
}

/* Every variant this CPU runs against a plain row-major loop on the unpacked matrix, on random
 * data (int8: all of [-128, 127] for W, [-127, 127] for x, plus rows of extremes; fp32: small
 * integers, so every sum is exact in float and any order gives the same bits): exact equality. */
static int fl_self_test(void)
{
    static const long shapes[][2] = {{1, 1},   {3, 2},    {16, 4},   {17, 5},    {48, 32},  {96, 64},
                                     {64, 63}, {80, 100}, {192, 128}, {300, 301}, {384, 256}, {768, 512},
                                     {1536, 1024}};
    int fails = 0, ran = 0;
    for (size_t v = 0; v < FL_NVARIANTS; ++v) {
        if (!fl_variants[v].ok()) {
            printf("self-test %-10s: not run (this CPU lacks it)\n", fl_variants[v].name);
            continue;
        }
        long checked = 0;
        int bad = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
            for (int rep = 0; rep < 3; ++rep) {
                const long R = shapes[s][0], K = shapes[s][1], Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
                int8_t *w = amem((size_t)R * (size_t)K), *p = amem((size_t)Rp * (size_t)Kp);
                int8_t *x = amem((size_t)Kp);
                uint8_t *xu = amem((size_t)Kp);
                int32_t *rs = amem(4 * (size_t)Rp), *y = amem(4 * (size_t)Rp);
                for (long i = 0; i < R * K; ++i) w[i] = (int8_t)((int)(fl_rand() % 256) - 128);
                for (long k = 0; k < K; ++k) x[k] = (int8_t)((int)(fl_rand() % 255) - 127);
                if (rep == 1) /* extremes: the largest products and sums */
                    for (long i = 0; i < R * K; ++i) w[i] = (fl_rand() & 1) ? -128 : 127;
                if (rep == 1)
                    for (long k = 0; k < K; ++k) x[k] = (fl_rand() & 1) ? -127 : 127;
                for (long k = 0; k < Kp; ++k) xu[k] = (uint8_t)(x[k] + 128);
                fl_pack_q8(w, R, K, Rp, Kp, p, rs);
                const fl_q8_args a = {Rp, Kp, p, rs, x, xu, y};
                fl_variants[v].q8(&a);
                for (long r = 0; r < R; ++r) {
                    int64_t ref = 0;
                    for (long k = 0; k < K; ++k) ref += (int64_t)w[r * K + k] * x[k];
                    if ((int64_t)y[r] != ref && bad++ < 5)
                        printf("self-test %s q8 %ldx%ld row %ld: %ld != %ld\n", fl_variants[v].name, R, K, r,
                               (long)y[r], (long)ref);
                    ++checked;
                }
                float *fw = amem(4 * (size_t)R * (size_t)K), *fp = amem(4 * (size_t)Rp * (size_t)K);
                float *fx = amem(4 * (size_t)K), *fy = amem(4 * (size_t)Rp);
                for (long i = 0; i < R * K; ++i) fw[i] = (float)((int)(fl_rand() % 17) - 8);
                for (long k = 0; k < K; ++k) fx[k] = (float)((int)(fl_rand() % 17) - 8);
                fl_pack_f32(fw, R, K, Rp, fp);
                const fl_f32_args fa = {Rp, K, fp, fx, fy};
                fl_variants[v].f32(&fa);
                for (long r = 0; r < R; ++r) {
                    double ref = 0;
                    for (long k = 0; k < K; ++k) ref += (double)fw[r * K + k] * fx[k];
                    if ((double)fy[r] != ref && bad++ < 5)
                        printf("self-test %s f32 %ldx%ld row %ld: %g != %g\n", fl_variants[v].name, R, K, r,
                               (double)fy[r], ref);
                    ++checked;
                }
                free(w); free(p); free(x); free(xu); free(rs); free(y); free(fw); free(fp); free(fx); free(fy);
            }
        printf("self-test %-10s: %s (%ld int8 and fp32 rows, exact)\n", fl_variants[v].name, bad ? "FAIL" : "ok",
               checked);
        fails += bad != 0;
        ++ran;
    }
    return fails || !ran ? 1 : 0;
}

/* Per-call times of fn(ctx) over ~20 ms of calls, each sample timed on its own (minus the clock's
 * own median cost), so that a preempted call on a busy machine is one outlier and not part of
 * every sample. A sample is one call, or for calls under ~1 us a run of back-to-back calls that
 * takes ~1 us (divided by their count), so that the clock's resolution (tens of ns) does not
 * dominate. Returns the median (seconds); *min_s gets the minimum. */
#define MAX_CALLS 200000
static double g_t[MAX_CALLS];
static double time_calls(void (*fn)(void *), void *ctx, double *min_s)
{
    double c[1001];
    for (int i = 0; i < 1001; ++i) {
        const double t0 = now();
        c[i] = now() - t0;
    }
    qsort(c, 1001, sizeof c[0], cmp_double);
    const double clock_cost = c[500];
    for (int i = 0; i < 10; ++i) fn(ctx); /* warm caches */
    double t0 = now();
    fn(ctx);
    const double one = now() - t0;
    long reps = 1;
    if (one < 1e-6) {
        t0 = now();
        for (int i = 0; i < 1000; ++i) fn(ctx);
        const double per = (now() - t0) / 1000;
        reps = per >= 1e-6 ? 1 : per > 1e-9 ? (long)(1e-6 / per) + 1 : 1000;
    }
    const double sample = one > 1e-8 ? one * (double)reps : 1e-8;
    long n = (long)(0.02 / sample);
    n = n < 101 ? 101 : n > MAX_CALLS ? MAX_CALLS : n;
    for (long i = 0; i < n; ++i) {
        t0 = now();
        for (long r = 0; r < reps; ++r) fn(ctx);
        g_t[i] = (now() - t0 - clock_cost) / (double)reps;
    }
    qsort(g_t, (size_t)n, sizeof g_t[0], cmp_double);
    if (min_s) *min_s = g_t[0];
    return g_t[n / 2];
}

/* ------------------------------------------------------------------ the floor, timed */
static const fl_variant *g_var;
static void fl_q8_call(void *p) { g_var->q8((const fl_q8_args *)p); }
static void fl_f32_call(void *p) { g_var->f32((const fl_f32_args *)p); }

typedef struct {
    double q8, q8_min, f32, f32_min;
} fl_times;

static void floor_times(const fl_variant *v, long R, long K, fl_times *t)
{
    const long Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
    int8_t *w = amem((size_t)R * (size_t)K), *p = amem((size_t)Rp * (size_t)Kp), *x = amem((size_t)Kp);
    uint8_t *xu = amem((size_t)Kp);
    int32_t *rs = amem(4 * (size_t)Rp), *y = amem(4 * (size_t)Rp);
    for (long i = 0; i < R * K; ++i) w[i] = (int8_t)((int)(i * 37 % 255) - 127);
    for (long k = 0; k < K; ++k) x[k] = (int8_t)((int)(k * 11 % 255) - 127);
    for (long k = 0; k < Kp; ++k) xu[k] = (uint8_t)(x[k] + 128);
    fl_pack_q8(w, R, K, Rp, Kp, p, rs);
    fl_q8_args a = {Rp, Kp, p, rs, x, xu, y};
    g_var = v;
    t->q8 = time_calls(fl_q8_call, &a, &t->q8_min);
    free(w); free(p); free(x); free(xu); free(rs); free(y);
    float *fw = amem(4 * (size_t)R * (size_t)K), *fp = amem(4 * (size_t)Rp * (size_t)K);
    float *fx = amem(4 * (size_t)K), *fy = amem(4 * (size_t)Rp);
    for (long i = 0; i < R * K; ++i) fw[i] = (float)(i % 17) * 0.01f;
    for (long k = 0; k < K; ++k) fx[k] = 0.5f;
    fl_pack_f32(fw, R, K, Rp, fp);
    fl_f32_args fa = {Rp, K, fp, fx, fy};
    t->f32 = time_calls(fl_f32_call, &fa, &t->f32_min);
    free(fw); free(fp); free(fx); free(fy);
}

#ifndef FLOOR_STANDALONE
/* ------------------------------------------------------------------ rnncore's, timed */
typedef struct {
    rnc_gemm_q8_fn q8;
    rnc_gemm_f32_fn f32;
    size_t rp, kx, kh;
    const void *wih, *whh;
    const void *x, *h;
    void *out;
} gemv_ctx;

static void q8_step_products(void *p)
{
    gemv_ctx *c = p;
    c->q8(c->wih, (int)c->rp, (int)c->kx, 1, c->x, (int)c->kx, c->out, (int)c->rp);
    c->q8(c->whh, (int)c->rp, (int)c->kh, 1, c->h, (int)c->kh, (int32_t *)c->out + c->rp, (int)c->rp);
}

static void f32_step_products(void *p)
{
    gemv_ctx *c = p;
    c->f32(c->wih, (int)c->rp, (int)c->kx, 1, c->x, (int)c->kx, c->out, (int)c->rp);
    c->f32(c->whh, (int)c->rp, (int)c->kh, 1, c->h, (int)c->kh, (float *)c->out + c->rp, (int)c->rp);
}

typedef struct {
    const rnc_model *m;
    rnc_state *s;
    const float *x;
    float *y;
    int status;
} step_ctx;

static void c_step(void *p)
{
    step_ctx *c = p;
    c->status |= (int)rnc_step(c->m, c->s, c->x, c->y);
}

/* rnc_step of a .rnc model at batch 1 (its default ISA path, or `isa`). 0 on success. */
static int time_model_step(const char *path, const char *isa_name, double *med, double *mn, long *H, long *I)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return 1; }
    const long len = ftell(f);
    if (len <= 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return 1; }
    void *buf = amem((size_t)len);
    const size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    rnc_model m;
    if (got != (size_t)len || rnc_model_init(&m, buf, (size_t)len) != RNC_OK) return 1;
    rnc_isa isa;
    if (isa_name && (rnc_isa_from_name(isa_name, &isa) != RNC_OK || rnc_model_set_isa(&m, isa) != RNC_OK))
        return 1;
    rnc_model_info mi;
    rnc_layer_info li;
    if (rnc_model_get_info(&m, &mi) != RNC_OK || rnc_layer_get_info(&m, 0, &li) != RNC_OK) return 1;
    size_t bytes = 0;
    if (rnc_state_size(&m, 1, &bytes) != RNC_OK) return 1;
    void *mem = amem(bytes);
    rnc_state s;
    if (rnc_state_init(&m, 1, mem, bytes, &s) != RNC_OK) return 1;
    float *x = amem(4 * (size_t)li.input_size), *y = amem(4 * ((size_t)mi.output_size + 16));
    for (uint32_t i = 0; i < li.input_size; ++i) x[i] = (float)((int)(i * 7 % 19) - 9) / 9.0f;
    step_ctx c = {&m, &s, x, y, 0};
    *med = time_calls(c_step, &c, mn);
    *H = (long)li.hidden_size;
    *I = (long)li.input_size;
    free(x); free(y); free(mem); free(buf);
    return c.status != 0;
}
#endif

/* ---------------------------------------------------------------- peak MAC rates (x86 only) */
#if defined(__x86_64__) && defined(__GNUC__)
#define R10(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9)
#define VNNI_Z(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define FMA_Z(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define FMA_Y(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define MADD_Y(i) "vpmaddubsw %%ymm14, %%ymm15, %%ymm" #i "\n\tvpmaddwd %%ymm13, %%ymm" #i ", %%ymm" #i "\n\t"
#define CLOB "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9"
static void peak_vnni_z(void *p) { (void)p; for (int i = 0; i < 1000; ++i) __asm__ volatile(R10(VNNI_Z) ::: CLOB); }
static void peak_fma_z(void *p) { (void)p; for (int i = 0; i < 1000; ++i) __asm__ volatile(R10(FMA_Z) ::: CLOB); }
static void peak_fma_y(void *p) { (void)p; for (int i = 0; i < 1000; ++i) __asm__ volatile(R10(FMA_Y) ::: CLOB); }
/* maddubs+maddwd chains are dependent pairs: 10 independent chains hide the latency */
static void peak_madd_y(void *p) { (void)p; for (int i = 0; i < 1000; ++i) __asm__ volatile(R10(MADD_Y) ::: CLOB); }
#endif

int main(int argc, char **argv)
{
    const char *cell = "gru", *isa_name = NULL, *variant = NULL, *model = NULL;
    long H = 256, I = -1;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--cell") && i + 1 < argc) cell = argv[++i];
        else if (!strcmp(argv[i], "--hidden") && i + 1 < argc) H = atol(argv[++i]);
        else if (!strcmp(argv[i], "--input") && i + 1 < argc) I = atol(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa_name = argv[++i];
        else if (!strcmp(argv[i], "--variant") && i + 1 < argc) variant = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--self-test")) return fl_self_test();
        else if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "--floor")) continue;
        else {
            fprintf(stderr, "usage: floor --cell gru|lstm|rnn --hidden H [--input I] [--isa NAME] "
                            "[--variant avx512vnni|avx2|c] [--model F.rnc] | --self-test\n");
            return 2;
        }
    }
    if (I < 0) I = H;
    const long G = !strcmp(cell, "lstm") ? 4 : !strcmp(cell, "gru") ? 3 : 1;
    if (H <= 0 || I <= 0 || H > 8192 || I > 8192) return 2;
    const fl_variant *v = NULL;
    for (size_t i = 0; i < FL_NVARIANTS && !v; ++i)
        if (fl_variants[i].ok() && (!variant || !strcmp(variant, fl_variants[i].name))) v = &fl_variants[i];
    if (!v) {
        fprintf(stderr, "variant %s: unknown or not run by this CPU\n", variant ? variant : "(best)");
        return 2;
    }
    fl_times ft;
    floor_times(v, G * H, I + H, &ft);
    printf("{\"floor_variant\": \"%s\", \"cell\": \"%s\", \"hidden\": %ld, \"input\": %ld, \"macs\": %ld, "
           "\"q8_gemv_us\": %.4f, \"q8_gemv_min_us\": %.4f, \"f32_gemv_us\": %.4f, \"f32_gemv_min_us\": %.4f",
           v->name, cell, H, I, G * H * (I + H), ft.q8 * 1e6, ft.q8_min * 1e6, ft.f32 * 1e6, ft.f32_min * 1e6);
#ifndef FLOOR_STANDALONE
    rnc_isa isa;
    if (isa_name ? rnc_isa_from_name(isa_name, &isa) : rnc_isa_best(&isa)) {
        fprintf(stderr, "unknown or unavailable ISA\n");
        return 2;
    }
    const char *name = "?", *fname = "?";
    rnc_isa_name(isa, &name);
    /* f32 products of a path without its own f32 row (the VNNI paths add only int8
     * instructions) are its parent's: take the first ISA down the list that has the row. */
    static const rnc_isa f32_order[] = {RNC_ISA_AMX, RNC_ISA_AVX512VNNI, RNC_ISA_AVX512, RNC_ISA_AVXVNNI,
                                        RNC_ISA_AVX2, RNC_ISA_NEONDOT, RNC_ISA_NEON, RNC_ISA_GENERIC};
    rnc_isa fisa = RNC_ISA_GENERIC;
    {
        float w[16 * 4] = {0}, xv[4] = {0}, yv[16];
        int seen = 0;
        for (size_t i = 0; i < sizeof f32_order / sizeof f32_order[0]; ++i) {
            if (f32_order[i] == isa) seen = 1;
            if (seen && rnc_kernel_f32_gemv(f32_order[i], w, 16, 4, xv, 1, yv) == RNC_OK) {
                fisa = f32_order[i];
                break;
            }
        }
    }
    rnc_isa_name(fisa, &fname);

    gemv_ctx c;
    c.rp = (size_t)((G * H + 15) / 16 * 16);
    const size_t kxq = (size_t)((I + 3) / 4 * 4), khq = (size_t)((H + 3) / 4 * 4);
    /* q8 */
    int8_t *wih = amem((c.rp * kxq + 63) / 64 * 64), *whh = amem((c.rp * khq + 63) / 64 * 64);
    int8_t *xq = amem((kxq + 63) / 64 * 64), *hq = amem((khq + 63) / 64 * 64);
    void *out = amem(2 * c.rp * sizeof(float));
    for (size_t i = 0; i < c.rp * kxq; ++i) wih[i] = (int8_t)((int)(i * 37 % 255) - 127);
    for (size_t i = 0; i < c.rp * khq; ++i) whh[i] = (int8_t)((int)(i * 53 % 255) - 127);
    for (size_t i = 0; i < kxq; ++i) xq[i] = (int8_t)((int)(i * 11 % 255) - 127);
    for (size_t i = 0; i < khq; ++i) hq[i] = (int8_t)((int)(i * 13 % 255) - 127);
    c.q8 = rnc__kernels[rnc__pick_kernel(RNC_OP_GEMV, RNC_Q8, isa, 1, RNC_IN_X, 0, 0)].fn.gemm_q8;
    c.f32 = rnc__kernels[rnc__pick_kernel(RNC_OP_GEMV, RNC_F32, fisa, 1, RNC_IN_X, 0, 0)].fn.gemm_f32;
    c.kx = kxq; c.kh = khq; c.wih = wih; c.whh = whh; c.x = xq; c.h = hq; c.out = out;
    if (rnc_kernel_q8_gemv(isa, wih, c.rp, kxq, xq, 1, out) != RNC_OK) return 4;
    double rq8_min, rf32_min;
    const double rq8 = time_calls(q8_step_products, &c, &rq8_min);
    free(wih); free(whh); free(xq); free(hq);
    /* f32 */
    float *fih = amem(c.rp * (size_t)I * 4 + 64), *fhh = amem(c.rp * (size_t)H * 4 + 64);
    float *fx = amem((size_t)I * 4 + 64), *fh = amem((size_t)H * 4 + 64);
    for (size_t i = 0; i < c.rp * (size_t)I; ++i) fih[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < c.rp * (size_t)H; ++i) fhh[i] = (float)(i % 19) * 0.01f;
    for (long i = 0; i < I; ++i) fx[i] = 0.5f;
    for (long i = 0; i < H; ++i) fh[i] = 0.25f;
    c.kx = (size_t)I; c.kh = (size_t)H; c.wih = fih; c.whh = fhh; c.x = fx; c.h = fh;
    if (rnc_kernel_f32_gemv(fisa, fih, c.rp, (size_t)I, fx, 1, out) != RNC_OK) return 4;
    const double rf32 = time_calls(f32_step_products, &c, &rf32_min);
    free(fih); free(fhh); free(fx); free(fh); free(out);
    printf(", \"isa\": \"%s\", \"f32_isa\": \"%s\", \"rnncore_q8_gemv_us\": %.4f, \"rnncore_q8_gemv_min_us\": %.4f, "
           "\"rnncore_f32_gemv_us\": %.4f, \"rnncore_f32_gemv_min_us\": %.4f",
           name, fname, rq8 * 1e6, rq8_min * 1e6, rf32 * 1e6, rf32_min * 1e6);
    if (model) {
        double sm = 0, smin = 0;
        long mh = 0, mi = 0;
        if (time_model_step(model, isa_name, &sm, &smin, &mh, &mi) != 0) {
            fprintf(stderr, "--model %s: cannot load or step it\n", model);
            return 4;
        }
        if (mh != H || mi != I) {
            fprintf(stderr, "--model %s: layer 0 is H=%ld I=%ld, expected H=%ld I=%ld\n", model, mh, mi, H, I);
            return 2;
        }
        printf(", \"rnncore_step_us\": %.4f, \"rnncore_step_min_us\": %.4f", sm * 1e6, smin * 1e6);
    }
#else
    (void)isa_name;
    (void)model;
#endif
    printf(", \"peak\": {");
#if defined(__x86_64__) && defined(__GNUC__)
    int first = 1;
    if (fl_ok_vnni()) {
        printf("\"int8_vpdpbusd_zmm_gmacs\": %.1f", 10.0 * 1000 * 64 / time_calls(peak_vnni_z, NULL, NULL) * 1e-9);
        first = 0;
    }
    if (fl_ok_vnni()) { /* AVX-512F is part of the VNNI check */
        printf("%s\"fp32_fma_zmm_gmacs\": %.1f", first ? "" : ", ", 10.0 * 1000 * 16 / time_calls(peak_fma_z, NULL, NULL) * 1e-9);
        first = 0;
    }
    if (fl_ok_avx2()) {
        printf("%s\"int8_maddubs_ymm_gmacs\": %.1f, \"fp32_fma_ymm_gmacs\": %.1f", first ? "" : ", ",
               10.0 * 1000 * 32 / time_calls(peak_madd_y, NULL, NULL) * 1e-9,
               10.0 * 1000 * 8 / time_calls(peak_fma_y, NULL, NULL) * 1e-9);
    }
#endif
    printf("}}\n");
    return 0;
}
