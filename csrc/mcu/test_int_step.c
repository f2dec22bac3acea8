/* The integer cell step on the bare-metal cores against the NumPy spec's vectors
 * (tests/gen_int_vectors.py, rnncore.quant.integer): every vector from the zero state, every
 * step's h8 and s16 bit for bit, through every step row x products row this target has — the
 * portable step with each rnc_s8_matvec row, and on MVE targets rnc_int_cell_step_mve with the
 * generic and the MVE products; and the target's rnc_int_cell_run row with its best products. */
#include <stdint.h>

#include "int_kernel_list.h"
#include "int_vectors.h"
#include "semihost.h"

typedef int (*step_fn)(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                       int16_t *s16, void *scratch, size_t scratch_bytes);

#define MAX_H 256
static int32_t scratch[(RNC_INT_SCRATCH_BYTES(4, MAX_H) + 3) / 4];
static int8_t h8[MAX_H];
static int16_t s16[MAX_H];

/* step t's input: int8, or int16 for an int16-input cell */
static const void *vector_x(const rnc_int_vector *v, int t) {
    const long at = (long)t * v->cell.input_size;
    return v->x16 ? (const void *)(v->x16 + at) : (const void *)(v->x + at);
}

static int run_vector(const rnc_int_vector *v, step_fn step, rnc_s8_matvec_fn mv) {
    const rnc_int_cell *c = &v->cell;
    const int H = c->hidden_size;
    if (H > MAX_H) {
        mcu_puts("FAIL: vector larger than MAX_H\n");
        return 1;
    }
    rnc_int_cell_reset(c, h8, s16);
    const size_t need = RNC_INT_SCRATCH_BYTES(rnc_int_gates(c->cell), H);
    for (int t = 0; t < v->steps; t++) {
        int rc = step(c, mv, vector_x(v, t), h8, s16, scratch, need);
        if (rc != RNC_INT_OK) {
            mcu_puts("FAIL ");
            mcu_puts(v->name);
            mcu_puts(": step returned ");
            mcu_put_int(rc);
            mcu_puts("\n");
            return 1;
        }
        for (int k = 0; k < H; k++) {
            if (h8[k] != v->h8[(long)t * H + k] || (v->s16 && s16[k] != v->s16[(long)t * H + k])) {
                mcu_puts("FAIL ");
                mcu_puts(v->name);
                mcu_puts(": step ");
                mcu_put_int(t);
                mcu_puts(" unit ");
                mcu_put_int(k);
                mcu_puts(": h8 ");
                mcu_put_int(h8[k]);
                mcu_puts(" (want ");
                mcu_put_int(v->h8[(long)t * H + k]);
                mcu_puts("), s16 ");
                mcu_put_int(s16[k]);
                mcu_puts(" (want ");
                mcu_put_int(v->s16 ? v->s16[(long)t * H + k] : 0);
                mcu_puts(")\n");
                return 1;
            }
        }
    }
    return 0;
}

static int run_all(const char *step_name, step_fn step, const char *mv_name, rnc_s8_matvec_fn mv) {
    int fails = 0, steps = 0;
    for (int k = 0; k < RNC_INT_NVECTORS; k++) {
        fails += run_vector(&rnc_int_vectors[k], step, mv);
        steps += rnc_int_vectors[k].steps;
    }
    mcu_puts(fails ? "FAIL " : "ok   ");
    mcu_puts(step_name);
    mcu_puts(" + ");
    mcu_puts(mv_name);
    mcu_puts(": ");
    mcu_put_int(RNC_INT_NVECTORS - fails);
    mcu_puts("/");
    mcu_put_int(RNC_INT_NVECTORS);
    mcu_puts(" vectors (");
    mcu_put_int(steps);
    mcu_puts(" steps) bit-exact to the NumPy spec\n");
    return fails;
}

int main(void) {
    int fails = 0;
#define MV(op, mv, mv_isa) fails += run_all(step_name, step, "rnc_s8_matvec_" mv_isa, mv);
#define STEP(fn, isa)                                                                             \
    {                                                                                             \
        const char *step_name = "rnc_int_cell_step (" isa ")";                                    \
        step_fn step = fn;                                                                        \
        RNC_S8_KERNELS(MV)                                                                        \
    }
    RNC_INT_STEPS(STEP)
#undef STEP
#undef MV
    /* the twin without the per-call check (the exported model's call; the vectors' cells are valid) */
    fails += run_all("RNC_INT_CELL_RUN", RNC_INT_CELL_RUN, "RNC_S8_MATVEC", RNC_S8_MATVEC);
    mcu_puts(fails ? "test_int_step: FAILED\n" : "test_int_step: all rows passed\n");
    return fails ? 1 : 0;
}
