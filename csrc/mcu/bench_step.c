/* Executed-instruction bench of the integer cell step (see bench_s8.c for how it is driven):
 * WORK = <vector name>_<variant>, one step per repetition on the vector's inputs in turn, the
 * state carried. Variants: "generic" = the portable step with the generic products (the generic
 * integer path); "<isa>" = the portable step with that products row; "step_dsp" / "step_mve" =
 * the DSP / MVE step with the DSP / MVE products (RNC_INT_CELL_STEP + RNC_S8_MATVEC); "run_dsp" /
 * "run_mve" = their twins without the per-call cell check (RNC_INT_CELL_RUN, what the exported
 * model calls after validating at reset). The state and scratch of the GRU H = 64, I = 16 cell are their own
 * arrays (kws_*), so that the map file gives its RAM. */
#include <stdint.h>

#include "int_kernel_list.h"
#include "int_vectors.h"
#include "semihost.h"

#define MAX_H 256
static int32_t scratch[(RNC_INT_SCRATCH_BYTES(4, MAX_H) + 3) / 4];
static int8_t h8[MAX_H];
static int16_t s16[MAX_H];
/* the keyword-spotting GRU (H = 64, I = 16): its state and scratch, exactly */
static int8_t kws_h8[64];
static int16_t kws_s16[64];
static int32_t kws_scratch[RNC_INT_SCRATCH_BYTES(3, 64) / 4];

typedef int (*step_fn)(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                       int16_t *s16, void *scratch, size_t scratch_bytes);

static int match(const char *work, const char *name, const char *variant) {
    while (*name && *work == *name) work++, name++;
    if (*name || *work != '_') return 0;
    work++;
    while (*variant && *work == *variant) work++, variant++;
    return !*variant && !*work;
}

static int run(const rnc_int_vector *v, step_fn step, rnc_s8_matvec_fn mv, long reps) {
    const rnc_int_cell *c = &v->cell;
    const int kws = c->hidden_size == 64 && c->input_size == 16 && c->cell == RNC_INT_GRU;
    int8_t *h = kws ? kws_h8 : h8;
    int16_t *s = kws ? kws_s16 : s16;
    void *scr = kws ? (void *)kws_scratch : (void *)scratch;
    const size_t need = RNC_INT_SCRATCH_BYTES(rnc_int_gates(c->cell), c->hidden_size);
    /* the inputs as bytes: int8, or int16 for an int16-input cell */
    const char *x = v->x16 ? (const char *)v->x16 : (const char *)v->x;
    const long row = (long)c->input_size * (v->x16 ? 2 : 1);
    rnc_int_cell_reset(c, h, s);
    for (long i = 0; i < reps; i++)
        if (step(c, mv, x + (i % v->steps) * row, h, s, scr, need) != RNC_INT_OK)
            return 1;
    return 0;
}

int main(void) {
    char cmd[256], *p = cmd;
    if (mcu_cmdline(cmd, sizeof cmd) != 0) cmd[0] = 0;
    while (*p && *p != ' ') p++; /* the image's path */
    while (*p == ' ') p++;
    char *work = p;
    while (*p && *p != ' ') p++;
    long reps = 1;
    if (*p == ' ') {
        *p++ = 0;
        reps = 0;
        while (*p >= '0' && *p <= '9') reps = reps * 10 + (*p++ - '0');
    }
    const int list = work[0] == 'l' && work[1] == 'i' && work[2] == 's' && work[3] == 't' && !work[4];
    for (int k = 0; k < RNC_INT_NVECTORS; k++) {
        const rnc_int_vector *v = &rnc_int_vectors[k];
#define ROW(op, fn, isa)                                                                          \
    if (list) mcu_puts(v->name), mcu_puts("_" isa "\n");                                         \
    else if (match(work, v->name, isa)) return run(v, rnc_int_cell_step, fn, reps);
        RNC_S8_KERNELS(ROW)
#undef ROW
#if defined(RNC_S8_HAVE_DSP)
        if (list) mcu_puts(v->name), mcu_puts("_step_dsp\n");
        else if (match(work, v->name, "step_dsp"))
            return run(v, rnc_int_cell_step_dsp, rnc_s8_matvec_dsp, reps);
        if (list) mcu_puts(v->name), mcu_puts("_run_dsp\n");
        else if (match(work, v->name, "run_dsp"))
            return run(v, rnc_int_cell_run_dsp, rnc_s8_matvec_dsp, reps);
#endif
#if defined(RNC_S8_HAVE_MVE)
        if (list) mcu_puts(v->name), mcu_puts("_step_mve\n");
        else if (match(work, v->name, "step_mve"))
            return run(v, rnc_int_cell_step_mve, rnc_s8_matvec_mve, reps);
        if (list) mcu_puts(v->name), mcu_puts("_run_mve\n");
        else if (match(work, v->name, "run_mve"))
            return run(v, rnc_int_cell_run_mve, rnc_s8_matvec_mve, reps);
#endif
    }
    if (list) return 0;
    mcu_puts("bench_step: unknown work '");
    mcu_puts(work);
    mcu_puts("' (try: list)\n");
    return 2;
}
