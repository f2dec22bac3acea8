/* Machine floors for the peer benchmark (benchmarks/peers/compare_peers.py), in C with no Python:
 *
 *   - the int8 and fp32 matrix-vector products of one GRU/LSTM step's weights (W_ih: G*H x I and
 *     W_hh: G*H x H, two separate packed matrices as in a model) with the C core's GEMM kernel of
 *     the best ISA on this CPU (the kernel-table row itself, batch 1: no API checks), and
 *   - the peak multiply-accumulate rates of the core: register-only loops of independent
 *     vpdpbusd (zmm, AVX-512 VNNI), vpmaddubsw+vpmaddwd (ymm, AVX2) and vfmadd231ps (zmm / ymm).
 *
 *   floor --cell gru|lstm --hidden H [--input I] [--isa NAME] [--json]
 *
 * Prints one JSON object: {"isa", "q8_gemv_us", "f32_gemv_us", "peak": {...}} (median per-call
 * times over ~20 ms of calls). Weight values do not change the time (no
 * data-dependent paths), so they are a fixed pattern.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h" /* the kernel table: the floor calls the kernel itself, no API checks */
#include "rnncore.h"

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

/* median per-call time (seconds) of fn(ctx) over ~20 ms of calls, each call timed on its own
 * (minus the clock's own median cost), so that a preempted call on a busy machine is one outlier
 * and not part of every sample */
#define MAX_CALLS 200000
static double g_t[MAX_CALLS];
static double time_median(void (*fn)(void *), void *ctx)
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
    long n = (long)(0.02 / (one > 1e-8 ? one : 1e-8));
    n = n < 101 ? 101 : n > MAX_CALLS ? MAX_CALLS : n;
    for (long i = 0; i < n; ++i) {
        t0 = now();
        fn(ctx);
        g_t[i] = now() - t0 - clock_cost;
    }
    qsort(g_t, (size_t)n, sizeof g_t[0], cmp_double);
    return g_t[n / 2];
}

typedef struct {
    rnc_isa isa;
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
    const char *cell = "gru", *isa_name = NULL;
    long H = 256, I = -1;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--cell") && i + 1 < argc) cell = argv[++i];
        else if (!strcmp(argv[i], "--hidden") && i + 1 < argc) H = atol(argv[++i]);
        else if (!strcmp(argv[i], "--input") && i + 1 < argc) I = atol(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa_name = argv[++i];
        else if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "--floor")) continue;
        else {
            fprintf(stderr, "usage: floor --cell gru|lstm|rnn --hidden H [--input I] [--isa NAME]\n");
            return 2;
        }
    }
    if (I < 0) I = H;
    const long G = !strcmp(cell, "lstm") ? 4 : !strcmp(cell, "gru") ? 3 : 1;
    if (H <= 0 || I <= 0 || H > 8192 || I > 8192) return 2;
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
    c.isa = isa;
    c.rp = (size_t)((G * H + 15) / 16 * 16);
    const size_t kxq = (size_t)((I + 3) / 4 * 4), khq = (size_t)((H + 3) / 4 * 4);
    /* q8 */
    int8_t *wih = amem((c.rp * kxq + 63) / 64 * 64), *whh = amem((c.rp * khq + 63) / 64 * 64);
    int8_t *xq = amem((kxq + 63) / 64 * 64), *hq = amem((khq + 63) / 64 * 64);
    void *out = amem(2 * c.rp * sizeof(float));
    if (!wih || !whh || !xq || !hq || !out) return 3;
    for (size_t i = 0; i < c.rp * kxq; ++i) wih[i] = (int8_t)((int)(i * 37 % 255) - 127);
    for (size_t i = 0; i < c.rp * khq; ++i) whh[i] = (int8_t)((int)(i * 53 % 255) - 127);
    for (size_t i = 0; i < kxq; ++i) xq[i] = (int8_t)((int)(i * 11 % 255) - 127);
    for (size_t i = 0; i < khq; ++i) hq[i] = (int8_t)((int)(i * 13 % 255) - 127);
    c.q8 = rnc__kernels[rnc__pick_kernel(RNC_OP_GEMV, RNC_Q8, isa, 1, RNC_IN_X, 0, 0)].fn.gemm_q8;
    c.f32 = rnc__kernels[rnc__pick_kernel(RNC_OP_GEMV, RNC_F32, isa, 1, RNC_IN_X, 0, 0)].fn.gemm_f32;
    c.kx = kxq; c.kh = khq; c.wih = wih; c.whh = whh; c.x = xq; c.h = hq; c.out = out;
    if (rnc_kernel_q8_gemv(isa, wih, c.rp, kxq, xq, 1, out) != RNC_OK) return 4;
    const double q8 = time_median(q8_step_products, &c);
    free(wih); free(whh); free(xq); free(hq);
    /* f32 */
    float *fih = amem(c.rp * (size_t)I * 4 + 64), *fhh = amem(c.rp * (size_t)H * 4 + 64);
    float *fx = amem((size_t)I * 4 + 64), *fh = amem((size_t)H * 4 + 64);
    if (!fih || !fhh || !fx || !fh) return 3;
    for (size_t i = 0; i < c.rp * (size_t)I; ++i) fih[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < c.rp * (size_t)H; ++i) fhh[i] = (float)(i % 19) * 0.01f;
    for (long i = 0; i < I; ++i) fx[i] = 0.5f;
    for (long i = 0; i < H; ++i) fh[i] = 0.25f;
    c.kx = (size_t)I; c.kh = (size_t)H; c.wih = fih; c.whh = fhh; c.x = fx; c.h = fh;
    c.isa = fisa;
    if (rnc_kernel_f32_gemv(fisa, fih, c.rp, (size_t)I, fx, 1, out) != RNC_OK) return 4;
    const double f32 = time_median(f32_step_products, &c);
    free(fih); free(fhh); free(fx); free(fh); free(out);

    printf("{\"isa\": \"%s\", \"f32_isa\": \"%s\", \"cell\": \"%s\", \"hidden\": %ld, \"input\": %ld, "
           "\"q8_gemv_us\": %.4f, \"f32_gemv_us\": %.4f, \"macs\": %ld, \"peak\": {",
           name, fname, cell, H, I, q8 * 1e6, f32 * 1e6, G * H * (I + H));
#if defined(__x86_64__) && defined(__GNUC__)
    int first = 1;
    int vnni = 0, avx512 = 0, avx2 = 0;
    rnc_isa_available(RNC_ISA_AVX512VNNI, &vnni);
    rnc_isa_available(RNC_ISA_AVX512, &avx512);
    rnc_isa_available(RNC_ISA_AVX2, &avx2);
    if (vnni) {
        printf("\"int8_vpdpbusd_zmm_gmacs\": %.1f", 10.0 * 1000 * 64 / time_median(peak_vnni_z, NULL) * 1e-9);
        first = 0;
    }
    if (avx512) {
        printf("%s\"fp32_fma_zmm_gmacs\": %.1f", first ? "" : ", ", 10.0 * 1000 * 16 / time_median(peak_fma_z, NULL) * 1e-9);
        first = 0;
    }
    if (avx2) {
        printf("%s\"int8_maddubs_ymm_gmacs\": %.1f, \"fp32_fma_ymm_gmacs\": %.1f", first ? "" : ", ",
               10.0 * 1000 * 32 / time_median(peak_madd_y, NULL) * 1e-9,
               10.0 * 1000 * 8 / time_median(peak_fma_y, NULL) * 1e-9);
    }
#endif
    printf("}}\n");
    return 0;
}
