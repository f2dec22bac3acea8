/* Opus 1.5's int8 GRU (xiph/opus dnn/nnet.c compute_generic_gru, built from an Opus checkout with
 * its AVX2 kernels) timed interleaved with rnc_step on a .rnc GRU of the same shape, batch 1.
 * Contains no Opus code: LinearLayer and compute_generic_gru come from the checkout's dnn/nnet.h
 * and object files (build lines: benchmarks/README.md, "How to compare against Opus").
 *
 *   opus_gru MODEL.rnc ISA [STEPS ROUNDS]
 *
 * MODEL.rnc: a one-layer q8 GRU with I = H (H a multiple of 8, Opus's cgemv8x4 blocks); ISA: the
 * rnncore path to force (avx2, avx512vnni, ...). Opus gets random int8 weights of the same shape
 * (3H x I and 3H x H, |w| <= 63: its pair sums never saturate, as its trained weights) with its
 * scales and biases; both step the same inputs. ROUNDS rounds of STEPS steps of each, alternating;
 * printed: the minimum per step of each over the rounds and their ratio rnncore / Opus. */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnet.h"    /* Opus: dnn/nnet.h */
#include "rnncore.h" /* csrc/include */

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 20);
}
static float frnd(float a) { return a * (2.0f * (float)(rnd() & 0xFFFF) / 65535.0f - 1.0f); }

/* a dense int8 LinearLayer of `out` x `in` with random weights, scales and biases */
static LinearLayer int8_layer(int in, int out)
{
    LinearLayer L;
    opus_int8 *w = malloc((size_t)in * out);
    float *b = malloc(sizeof(float) * out), *sb = malloc(sizeof(float) * out), *s = malloc(sizeof(float) * out);
    if (!w || !b || !sb || !s) exit(1);
    for (size_t i = 0; i < (size_t)in * out; ++i) w[i] = (opus_int8)((int)(rnd() % 127u) - 63);
    for (int i = 0; i < out; ++i) {
        b[i] = frnd(0.1f);
        sb[i] = frnd(0.1f);
        s[i] = 1.0f / (128.0f * (float)in);
    }
    memset(&L, 0, sizeof L);
    L.bias = b;
    L.subias = sb;
    L.weights = w;
    L.scale = s;
    L.nb_inputs = in;
    L.nb_outputs = out;
    return L;
}

static unsigned char g_model[64u << 20] __attribute__((aligned(64)));

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.rnc ISA [STEPS ROUNDS]\n", argv[0]);
        return 2;
    }
    const int steps = argc > 3 ? atoi(argv[3]) : 200, rounds = argc > 4 ? atoi(argv[4]) : 300;
    FILE *f = fopen(argv[1], "rb");
    if (!f || steps < 1 || rounds < 1) return 2;
    const size_t len = fread(g_model, 1, sizeof g_model, f);
    fclose(f);
    static rnc_model m;
    rnc_isa isa;
    rnc_model_info mi;
    rnc_layer_info li;
    if (rnc_model_init(&m, g_model, len) != RNC_OK || rnc_isa_from_name(argv[2], &isa) != RNC_OK ||
        rnc_model_set_isa(&m, isa) != RNC_OK || rnc_model_get_info(&m, &mi) != RNC_OK ||
        rnc_layer_get_info(&m, 0, &li) != RNC_OK) {
        fprintf(stderr, "opus_gru: cannot load %s for ISA %s\n", argv[1], argv[2]);
        return 1;
    }
    const int H = (int)li.hidden_size, I = (int)mi.input_size;
    if (mi.num_layers != 1 || li.kind != RNC_GRU || H % 8 || I % 8) {
        fprintf(stderr, "opus_gru: needs a one-layer GRU with H and I multiples of 8\n");
        return 1;
    }
    size_t sbytes;
    rnc_state st;
    if (rnc_state_size(&m, 1, &sbytes) != RNC_OK) return 1;
    void *smem = malloc(sbytes);
    if (!smem || rnc_state_init(&m, 1, smem, sbytes, &st) != RNC_OK) return 1;
    const LinearLayer in = int8_layer(I, 3 * H), rec = int8_layer(H, 3 * H);
    float *x = malloc(sizeof(float) * 1024 * (size_t)I), *y = malloc(sizeof(float) * (size_t)H),
          *h = malloc(sizeof(float) * (size_t)H);
    if (!x || !y || !h) return 1;
    for (size_t i = 0; i < 1024 * (size_t)I; ++i) x[i] = frnd(1.0f);
    for (int i = 0; i < H; ++i) h[i] = frnd(0.5f);
    double best_opus = 1e30, best_rnc = 1e30;
    for (int r = 0; r < rounds; ++r) {
        const double t0 = now_us();
        for (int i = 0; i < steps; ++i) compute_generic_gru(&in, &rec, h, x + (size_t)(i & 1023) * I, 0);
        const double t1 = now_us();
        for (int i = 0; i < steps; ++i)
            if (rnc_step(&m, &st, x + (size_t)(i & 1023) * I, y) != RNC_OK) return 1;
        const double t2 = now_us();
        if ((t1 - t0) / steps < best_opus) best_opus = (t1 - t0) / steps;
        if ((t2 - t1) / steps < best_rnc) best_rnc = (t2 - t1) / steps;
    }
    printf("H=%d I=%d isa=%s opus_us=%.4f rnncore_us=%.4f rnncore/opus=%.3f\n", H, I, argv[2], best_opus,
           best_rnc, best_rnc / best_opus);
    return 0;
}
