/* Minimal use of the C core without any allocation by the library: load a .rnc file into a
 * static 64-byte-aligned buffer, validate it, lay a state over a static arena, stream steps.
 *
 *   cc -std=c99 -O2 -Icsrc/include csrc/examples/stream.c csrc/build/librnncore.a -lm -o stream
 *   ./stream model.rnc [steps]
 *
 * On a board the buffer would be the model linked into flash (const, aligned) instead of a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnncore.h"

#define MODEL_MAX (8u << 20)
#define ARENA_MAX (1u << 20)
#if defined(__GNUC__)
#define ALIGN64 __attribute__((aligned(64)))
#else
#define ALIGN64
#endif
static ALIGN64 unsigned char model_buf[MODEL_MAX];
static ALIGN64 unsigned char arena[ARENA_MAX];
static float x[4096], y[4096];

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s model.rnc [steps]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    const size_t len = fread(model_buf, 1, MODEL_MAX, f);
    fclose(f);

    rnc_model model;
    rnc_status st = rnc_model_init(&model, model_buf, len);
    if (st != RNC_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], rnc_status_str(st));
        return 1;
    }
    rnc_model_info info;
    rnc_isa isa;
    const char *isa_name;
    rnc_model_get_info(&model, &info);
    rnc_model_get_isa(&model, &isa);
    rnc_isa_name(isa, &isa_name);
    printf("%s: %u layer(s), %s, input %u, output %u, ISA %s\n", argv[1], info.num_layers,
           info.precision == RNC_Q8 ? "q8" : "f32", info.input_size, info.output_size, isa_name);
    if (info.bidirectional) {
        printf("bidirectional: whole sequences only (rnc_run)\n");
        return 0;
    }
    if (info.input_size > 4096 || info.output_size > 4096) return 1;

    size_t bytes;
    rnc_state state;
    if (rnc_state_size(&model, 1, &bytes) != RNC_OK || bytes > ARENA_MAX ||
        rnc_state_init(&model, 1, arena, bytes, &state) != RNC_OK) {
        fprintf(stderr, "state does not fit the arena\n");
        return 1;
    }
    const int steps = argc > 2 ? atoi(argv[2]) : 5;
    for (int t = 0; t < steps; ++t) {
        for (uint32_t i = 0; i < info.input_size; ++i) x[i] = (float)((t + i) % 7) / 7.0f - 0.5f;
        if (info.uses_ids) {
            const int32_t id = (int32_t)(t % info.embed_num);
            st = rnc_step_ids(&model, &state, &id, y);
        } else {
            st = rnc_step(&model, &state, x, y);
        }
        if (st != RNC_OK) {
            fprintf(stderr, "step: %s\n", rnc_status_str(st));
            return 1;
        }
        printf("t=%d y[0]=%.6f\n", t, (double)y[0]);
    }
    return 0;
}
