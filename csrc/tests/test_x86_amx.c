/* Tests of the AMX-INT8 path (src/kernels/q8_gemm_amx.c) and of its availability check.
 *
 * 1. The tile kernel, built with -DRNC_AMX_EMULATE (the six tile instructions as plain C, the
 *    same kernel body as the real build), against a plain triple loop over the unpacked matrix
 *    (packed here with docs/q8-contract.md's formula): int32 accumulators EQUAL, for extreme
 *    values (every weight and input +-127, alternating signs, zeros) and random ones, over every
 *    edge of the 2 x 2 tile blocking: rows R and columns N below / at / above multiples of 16 and
 *    32, inputs K with partial 4-groups and partial 64-input tiles, strides larger than the
 *    rows, K up to RNC_Q8_MAX_K. Q ends exactly at its allocation and Acc carries sentinels past
 *    every row, so an over-read or over-write is caught (ASan in the sanitizer build).
 * 2. The real kernel (AMX instructions) on the same cases when this CPU and OS grant AMX;
 *    elsewhere its fallback to AVX-512 VNNI for few columns (N < 16), which runs without tiles.
 * 3. The q8 cells of the AMX path (cells_amx.c: the cell template over the tile kernel), built
 *    with the emulated tiles, against the generic cells: h, c and y bitwise equal after 3 steps
 *    with the state carried, for batches below, at and above a tile of 16 rows, every cell kind,
 *    random and saturated weights, and with inactive rows (variable lengths) left untouched.
 *    (`make test-amx-emulated` runs the whole library and its model tests with the emulated
 *    AMX path selected, under ASan/UBSan.) The real cells where AMX is granted; elsewhere their batch
 *    < 16 branch (the avx512vnni cells).
 * 4. rnc__amx_usable: cpuid bits x XCR0 bits x the OS permission (granted / refused), and the
 *    real permission request agreeing with what the CPU reports (refused where there is no AMX),
 *    so dispatch falls back to avx512vnni.
 */
#define _POSIX_C_SOURCE 200112L
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#define RNC_TEST_SEED 777u
#include "test_common.h"

void rnc_q8_gemm_amx_emulated(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                              int32_t *Acc, int ldacc);
void rnc_q8_rnn_step_amx_emulated(const rnc_cell_args *a);
void rnc_q8_gru_step_amx_emulated(const rnc_cell_args *a);
void rnc_q8_lstm_step_amx_emulated(const rnc_cell_args *a);

typedef void (*gemm_q8_fn)(const int8_t *, int, int, int, const int8_t *, int, int32_t *, int);

/* modes: 0 W +127 / q -127; 1 both -127; 2 alternating +-127; 3 random; 4 random with zeros */
static int8_t val(int mode, size_t i, int is_w)
{
    switch (mode) {
    case 0: return is_w ? 127 : -127;
    case 1: return -127;
    case 2: return ((i % (is_w ? 2u : 3u)) != 0) ? 127 : -127;
    case 3: return (int8_t)rnd(-127, 127);
    default: return (int8_t)(rnd(0, 2) ? 0 : rnd(-127, 127));
    }
}

/* One case: W (R x K) and Q (N x K, row stride ldq), the product through `gemm` vs the loop. */
static int one_case(gemm_q8_fn gemm, int R, int K, int N, int mode)
{
    const int Rp = (R + 15) / 16 * 16, Kp = (K + 3) / 4 * 4;
    const int ldq = K + (N > 1 ? 5 : 0), ldacc = R + (N > 1 ? 3 : 0);
    int8_t *W = malloc((size_t)R * K), *P = malloc((size_t)Rp * Kp);
    const size_t qn = (size_t)(N - 1) * ldq + K; /* Q ends exactly at the allocation end */
    int8_t *Q = malloc(qn);
    int32_t *ref = malloc(sizeof(int32_t) * (size_t)N * ldacc);
    int32_t *got = malloc(sizeof(int32_t) * ((size_t)N * ldacc + 1));
    if (!W || !P || !Q || !ref || !got) abort();
    for (size_t i = 0; i < (size_t)R * K; ++i) W[i] = val(mode, i, 1);
    for (size_t i = 0; i < qn; ++i) Q[i] = val(mode, i, 0);
    pack_q8(W, R, K, P);
    for (int n = 0; n < N; ++n)
        for (int r = 0; r < R; ++r) {
            int64_t a = 0;
            for (int k = 0; k < K; ++k) a += (int32_t)W[(size_t)r * K + k] * Q[(size_t)n * ldq + k];
            ref[(size_t)n * ldacc + r] = (int32_t)a;
        }
    for (size_t i = 0; i <= (size_t)N * ldacc; ++i) got[i] = 0x5A5A5A5A;
    gemm(P, R, K, N, Q, ldq, got, ldacc);
    int ok = 1;
    for (int n = 0; n < N; ++n) {
        ok &= memcmp(got + (size_t)n * ldacc, ref + (size_t)n * ldacc, sizeof(int32_t) * R) == 0;
        for (int r = R; r < ldacc; ++r) ok &= got[(size_t)n * ldacc + r] == 0x5A5A5A5A;
    }
    ok &= got[(size_t)N * ldacc] == 0x5A5A5A5A;
    free(W);
    free(P);
    free(Q);
    free(ref);
    free(got);
    return ok;
}

static void test_gemm(const char *name, gemm_q8_fn gemm, int max_n)
{
    static const int Rs[] = {1, 15, 16, 17, 32, 33, 48, 100};
    static const int Ks[] = {1, 3, 4, 5, 63, 64, 65, 128, 130, 256};
    static const int Ns[] = {1, 2, 15, 16, 17, 31, 32, 33, 47, 64, 100};
    for (size_t r = 0; r < sizeof Rs / sizeof Rs[0]; ++r)
        for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; ++k)
            for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; ++n) {
                if (Ns[n] > max_n) continue;
                const int mode = (int)((r + k + n) % 5);
                check(one_case(gemm, Rs[r], Ks[k], Ns[n], mode), name, Rs[r], Ks[k], Ns[n], mode);
            }
    /* every value mode on a shape with every edge at once, and the layer shapes of GRU/LSTM 256 */
    for (int mode = 0; mode < 5; ++mode) {
        check(one_case(gemm, 49, 131, max_n < 37 ? max_n : 37, mode), name, 49, 131, 37, mode);
        check(one_case(gemm, 768, 256, max_n < 40 ? max_n : 40, mode), name, 768, 256, 40, mode);
    }
    /* the largest K the format allows, all +-127: sums near 2^31 stay exact */
    check(one_case(gemm, 16, (int)RNC_Q8_MAX_K, max_n < 17 ? max_n : 17, 0), name, 16,
          (int)RNC_Q8_MAX_K, 17, 0);
    check(one_case(gemm, 17, (int)RNC_Q8_MAX_K - 3, max_n < 2 ? max_n : 2, 1), name, 17,
          (int)RNC_Q8_MAX_K - 3, 2, 1);
}

/* ------------------------------------------------------------------ cells */
/* One random q8 layer (kind, reset_after, B, I, H; test_common.h's make_case); mode 1 saturates
 * weights and inputs, mode 2 leaves every third row inactive (a variable-length batch: those rows
 * must stay untouched). `fn` and the generic kernel each run 3 steps from the same state; h, c,
 * y bitwise equal. */
static int cell_vs_generic(rnc_cell_fn fn, rnc_cell_fn gen, uint32_t kind, uint32_t ra, uint32_t B,
                     uint32_t I, uint32_t H, int mode)
{
    cell_case t;
    make_case(&t, 1, kind, ra, B, I, H, mode == 1);
    const size_t n = (size_t)B * H;
    const int form = mode == 2 ? RUN_STEP_MASKED : RUN_STEP;
    float *h0 = malloc(4 * n), *c0 = malloc(4 * n), *y0 = malloc(4 * n);
    float *h1 = malloc(4 * n), *c1 = malloc(4 * n), *y1 = malloc(4 * n);
    run_cell(&t, gen, 1, 3, h0, c0, y0, form);
    run_cell(&t, fn, 1, 3, h1, c1, y1, form);
    int ok = !memcmp(h0, h1, 4 * n) && !memcmp(c0, c1, 4 * n) && !memcmp(y0, y1, 4 * n);
    if (mode == 2) /* inactive rows kept their state */
        for (uint32_t b = 0; b < B; ++b)
            if (!t.active[b]) ok &= memcmp(h1 + (size_t)b * H, t.h + (size_t)b * H, 4 * (size_t)H) == 0;
    free(h0), free(c0), free(y0), free(h1), free(c1), free(y1);
    free_case(&t);
    return ok;
}

static void test_cells(const char *name, rnc_cell_fn rnn, rnc_cell_fn gru, rnc_cell_fn lstm,
                       uint32_t max_b)
{
    static const uint32_t shapes[][3] = {{1, 5, 3}, {3, 17, 16}, {15, 33, 47}, {16, 32, 32},
                                         {17, 64, 33}, {40, 70, 64}};
    static const uint32_t kinds[][2] = {{RNC_RNN_TANH, 1}, {RNC_RNN_RELU, 1}, {RNC_GRU, 1},
                                        {RNC_GRU, 0}, {RNC_LSTM, 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
        const uint32_t kind = kinds[k][0], ra = kinds[k][1];
        const int op = kind == RNC_GRU ? RNC_OP_GRU_STEP : kind == RNC_LSTM ? RNC_OP_LSTM_STEP : RNC_OP_RNN_STEP;
        const rnc_cell_fn gen = rnc__kernels[rnc__find_kernel(op, RNC_Q8, RNC_ISA_GENERIC)].fn.cell;
        const rnc_cell_fn fn = kind == RNC_GRU ? gru : kind == RNC_LSTM ? lstm : rnn;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
            if (shapes[s][0] > max_b) continue;
            for (int mode = 0; mode < 3; ++mode) {
                char what[120];
                snprintf(what, sizeof what, "%s kind=%u reset_after=%u vs generic", name, kind, ra);
                check(cell_vs_generic(fn, gen, kind, ra, shapes[s][0], shapes[s][1], shapes[s][2], mode), what,
                      (int)shapes[s][2], (int)shapes[s][1], (int)shapes[s][0], mode);
            }
        }
    }
}

/* ------------------------------------------------------------------ availability */
static int calls;
static int grant(void) { ++calls; return 1; }
static int refuse(void) { ++calls; return 0; }

static void test_usable(void)
{
    const uint32_t tile = 1u << 24, int8 = 1u << 25;
    const uint64_t xtile = 0x60000;
    struct { uint32_t edx; uint64_t xcr0; int (*perm)(void); int want, want_calls; } cases[] = {
        {tile | int8, xtile | 0xE7, grant, 1, 1},  /* everything there */
        {tile | int8, xtile | 0xE7, refuse, 0, 1}, /* the OS refuses the tile data: fall back */
        {tile | int8, xtile, NULL, 0, 0},          /* no way to ask */
        {tile, xtile, grant, 0, 0},                /* AMX-TILE without AMX-INT8 */
        {int8, xtile, grant, 0, 0},
        {tile | int8, 0x20000, grant, 0, 0},       /* XTILECFG without XTILEDATA in XCR0 */
        {tile | int8, 0x40000, grant, 0, 0},
        {tile | int8, 0xE7, grant, 0, 0},          /* OS without tile state */
        {0, xtile, grant, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        calls = 0;
        const int got = rnc__amx_usable(cases[i].edx, cases[i].xcr0, cases[i].perm);
        check(got == cases[i].want && calls == cases[i].want_calls, "rnc__amx_usable", (int)i, 0, 0, 0);
    }
}

/* The real request on this machine: granted exactly when the CPU has AMX-TILE (Linux refuses
 * XFEATURE_XTILEDATA where the CPU or kernel lacks it), and the AMX path is available exactly
 * when the request is granted (and AVX-512 VNNI is there: AMX's other ops are that path's). */
static void test_this_machine(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    int cpu_amx = 0;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        cpu_amx = (d & (1u << 24)) && (d & (1u << 25));
    }
    const int granted = rnc__amx_request_permission();
    int avail = -1, vnni = -1;
    rnc_isa_available(RNC_ISA_AMX, &avail);
    rnc_isa_available(RNC_ISA_AVX512VNNI, &vnni);
    printf("this machine: cpuid AMX-TILE+INT8 %d, tile data permission %s, amx path %s\n", cpu_amx,
           granted ? "granted" : "refused", avail ? "available" : "unavailable (falls back)");
    check(!granted || cpu_amx, "permission granted only with AMX in cpuid", 0, 0, 0, 0);
    check(avail == (granted && vnni && cpu_amx), "amx available iff granted", 0, 0, 0, 0);
    /* a model asked to use AMX where it is unavailable is refused, the best path never picks it */
    rnc_isa best;
    check(rnc_isa_best(&best) == RNC_OK && (avail || best != RNC_ISA_AMX), "best path", 0, 0, 0, 0);
}

int main(void)
{
    test_usable();
    test_this_machine();
    test_gemm("rnc_q8_gemm_amx_emulated", rnc_q8_gemm_amx_emulated, 1000);
    if (rnc__cpu_supports(RNC_ISA_AMX)) {
        test_gemm("rnc_q8_gemm_amx", rnc_q8_gemm_amx, 1000);
    } else if (rnc__cpu_supports(RNC_ISA_AVX512VNNI)) {
        printf("skipped: rnc_q8_gemm_amx with >= 16 columns (CPU/OS lacks AMX); its < 16-column "
               "fallback to avx512vnni is tested\n");
        test_gemm("rnc_q8_gemm_amx (N < 16: avx512vnni)", rnc_q8_gemm_amx, 15);
    } else {
        printf("skipped: rnc_q8_gemm_amx (CPU lacks AMX and AVX-512 VNNI)\n");
    }
    if (rnc__cpu_supports(RNC_ISA_AVX512)) /* the emulated cells use the AVX-512 epilogue */
        test_cells("rnc_q8_*_step_amx_emulated", rnc_q8_rnn_step_amx_emulated,
                   rnc_q8_gru_step_amx_emulated, rnc_q8_lstm_step_amx_emulated, 1000);
    else
        printf("skipped: the emulated AMX cells (CPU lacks AVX-512)\n");
    if (rnc__cpu_supports(RNC_ISA_AMX))
        test_cells("rnc_q8_*_step_amx", rnc_q8_rnn_step_amx, rnc_q8_gru_step_amx, rnc_q8_lstm_step_amx, 1000);
    else
        printf("skipped: rnc_q8_*_step_amx (CPU/OS lacks AMX; below 16 rows the plan takes avx512vnni's)\n");
    printf("x86 amx: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
