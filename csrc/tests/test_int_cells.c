/* The integer cell step (src/int) against the NumPy spec's vectors (gen_int_vectors.py), with
 * the generic int8 products; and the step's argument checks. Returns nonzero on any mismatch. */
#include <stdio.h>
#include <string.h>

#include "int_vectors.h"
#include "rnncore_int.h"

static int32_t scratch[(RNC_INT_SCRATCH_BYTES(4, 1024) + 3) / 4];

typedef int (*step_fn)(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8, int8_t *h8,
                       int16_t *s16, void *scratch, size_t scratch_bytes);

/* every step of the vector through `step` (rnc_int_cell_step, or rnc_int_cell_run after the
 * one check above) */
/* step t's input: int8, or int16 for an int16-input cell */
static const void *vector_x(const rnc_int_vector *v, int t) {
    const long at = (long)t * v->cell.input_size;
    return v->x16 ? (const void *)(v->x16 + at) : (const void *)(v->x + at);
}

static int run_vector(const rnc_int_vector *v, step_fn step) {
    const rnc_int_cell *c = &v->cell;
    const int H = c->hidden_size;
    int8_t h8[1024];
    int16_t s16[1024];
    if (H > 1024 || rnc_int_cell_check(c) != RNC_INT_OK) {
        printf("FAIL %s: rnc_int_cell_check\n", v->name);
        return 1;
    }
    rnc_int_cell_reset(c, h8, s16);
    const size_t need = RNC_INT_SCRATCH_BYTES(rnc_int_gates(c->cell), H);
    for (int t = 0; t < v->steps; t++) {
        int rc = step(c, rnc_s8_matvec_generic, vector_x(v, t), h8, s16, scratch, need);
        if (rc != RNC_INT_OK) {
            printf("FAIL %s: step %d returned %d\n", v->name, t, rc);
            return 1;
        }
        for (int k = 0; k < H; k++) {
            if (h8[k] != v->h8[(long)t * H + k] || (v->s16 && s16[k] != v->s16[(long)t * H + k])) {
                printf("FAIL %s: step %d unit %d: h8 %d (want %d), s16 %d (want %d)\n", v->name, t, k, h8[k],
                       v->h8[(long)t * H + k], s16[k], v->s16 ? v->s16[(long)t * H + k] : 0);
                return 1;
            }
        }
    }
    return 0;
}

static int check_errors(void) {
    const rnc_int_cell *c = &rnc_int_vectors[0].cell;
    int8_t h8[1024];
    int16_t s16[1024];
    int8_t x8[1024] = {0};
    const size_t need = RNC_INT_SCRATCH_BYTES(rnc_int_gates(c->cell), c->hidden_size);
    int bad = 0;
    rnc_int_cell_reset(c, h8, s16);
    bad |= rnc_int_cell_step(c, rnc_s8_matvec_generic, x8, h8, s16, scratch, need - 1) != RNC_INT_E_SCRATCH;
    bad |= rnc_int_cell_step(c, rnc_s8_matvec_generic, x8, h8, s16, (char *)scratch + 2, need) != RNC_INT_E_SCRATCH;
    bad |= rnc_int_cell_step(c, NULL, x8, h8, s16, scratch, need) != RNC_INT_E_ARG;
    bad |= rnc_int_cell_step(c, rnc_s8_matvec_generic, x8, h8, NULL, scratch, need) != RNC_INT_E_ARG;
    bad |= rnc_int_cell_run(c, rnc_s8_matvec_generic, x8, h8, s16, scratch, need - 1) != RNC_INT_E_SCRATCH;
    bad |= rnc_int_cell_run(NULL, rnc_s8_matvec_generic, x8, h8, s16, scratch, need) != RNC_INT_E_ARG;
    bad |= rnc_int_cell_run(c, rnc_s8_matvec_generic, x8, NULL, s16, scratch, need) != RNC_INT_E_ARG;
    rnc_int_cell broken = *c;
    broken.hidden_size = 0;
    bad |= rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    broken = *c;
    broken.cell = 7;
    bad |= rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    broken = *c;
    broken.e_h = 31;
    bad |= rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    bad |= rnc_int_cell_step(&broken, rnc_s8_matvec_generic, x8, h8, s16, scratch, need) != RNC_INT_E_ARG;
    broken = *c;
    broken.cell_shift = -8;
    bad |= broken.cell == RNC_INT_LSTM && rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    broken = *c;
    broken.activation = 2; /* no such family */
    bad |= rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    broken = *c;
    broken.activation = RNC_INT_ACT_TABLE; /* an LSTM: its tanh(c) is not Q3.12 */
    bad |= broken.cell == RNC_INT_LSTM && rnc_int_cell_check(&broken) != RNC_INT_E_ARG;
    bad |= broken.cell != RNC_INT_LSTM; /* vector 0 is the TFLite LSTM, or the first spec LSTM */
    bad |= rnc_int_cell_check(NULL) != RNC_INT_E_ARG;
    if (bad) printf("FAIL: an invalid argument was accepted\n");
    return bad;
}

static int check_head(void) {
    const rnc_int_linear *l = &rnc_int_head_vector;
    int32_t y[64];
    for (int k = 0; k < RNC_INT_HEAD_NX; k++) {
        if (rnc_int_linear_run(l, rnc_s8_matvec_generic, head_x + k * l->in_features, y) != RNC_INT_OK) {
            printf("FAIL head: rnc_int_linear_run refused the vector\n");
            return 1;
        }
        for (int r = 0; r < l->out_features; r++)
            if (y[r] != head_y[k * l->out_features + r]) {
                printf("FAIL head: input %d output %d: %ld (want %ld)\n", k, r, (long)y[r],
                       (long)head_y[k * l->out_features + r]);
                return 1;
            }
    }
    rnc_int_linear bad = *l;
    bad.in_features = 0;
    if (rnc_int_linear_run(&bad, rnc_s8_matvec_generic, head_x, y) != RNC_INT_E_ARG) {
        printf("FAIL head: in_features 0 accepted\n");
        return 1;
    }
    return 0;
}

int main(void) {
    int fails = check_head(), steps = 0;
    for (int k = 0; k < RNC_INT_NVECTORS; k++) {
        fails += run_vector(&rnc_int_vectors[k], rnc_int_cell_step);
        fails += run_vector(&rnc_int_vectors[k], rnc_int_cell_run);
        steps += rnc_int_vectors[k].steps;
    }
    fails += check_errors();
    printf("integer cells: %d vectors, %d steps, and a linear head: %s\n", RNC_INT_NVECTORS, steps,
           fails ? "MISMATCH" : "bit-exact to the NumPy spec");
    return fails != 0;
}
