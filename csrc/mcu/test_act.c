/* The elementwise work of this target's step rows against NumPy's fixed-point reference
 * (gen_act_vectors.py): sigmoid and tanh on the whole int16 domain for int_bits 0..6 (every 7th
 * output compared, all of them hashed), the requantisation on every tail length. The MVE rows
 * (s16_act.h) and the DSP step's block functions (static in int_cells_dsp.c, included here with
 * its step renamed). */
#include <stdint.h>

#include "act_vectors.h"
#include "s16_act.h"
#include "s16_table.h"
#include "semihost.h"

#if defined(RNC_S8_HAVE_DSP)
#define rnc_int_cell_step_dsp test_act_step_dsp_copy
#define rnc_int_cell_run_dsp test_act_run_dsp_copy
#include "int_cells_dsp.c"
#undef rnc_int_cell_run_dsp
#undef rnc_int_cell_step_dsp
#endif

static int16_t in[65536], out[65536 + 8];

static uint32_t fnv1a(const int16_t *v, int n) {
    uint32_t h = 0x811C9DC5u;
    for (int i = 0; i < n; i++) {
        uint16_t u = (uint16_t)v[i];
        h = (h ^ (u & 0xFFu)) * 0x01000193u;
        h = (h ^ (u >> 8)) * 0x01000193u;
    }
    return h;
}

typedef void (*act_fn)(int16_t *y, const int16_t *x, int n, int int_bits);

/* int_bits 0 .. nk - 1 (the table rows: one, their inputs are Q3.12 whatever int_bits says) */
static int check_act(const char *name, act_fn fn, const int16_t (*sub)[ACT_NSUB], const uint32_t *hash,
                     int nk) {
    int failed = 0;
    for (int k = 0; k < nk; k++) {
        for (int i = 0; i < 8; i++) out[65536 + i] = 0x5A5A;
        fn(out, in, 65536, k);
        int bad = -1;
        for (int j = 0; j < ACT_NSUB && bad < 0; j++) {
            int idx = j < ACT_NSUB - 1 ? j * ACT_STRIDE : 65535;
            if (out[idx] != sub[k][j]) bad = idx;
        }
        for (int i = 0; i < 8 && bad < 0; i++)
            if (out[65536 + i] != 0x5A5A) bad = 65536 + i;
        uint32_t h = fnv1a(out, 65536);
        if (bad >= 0 || h != hash[k]) {
            mcu_puts("FAIL ");
            mcu_puts(name);
            mcu_puts(" int_bits=");
            mcu_put_int(k);
            if (bad >= 0) {
                mcu_puts(": x=");
                mcu_put_int(bad - 32768);
                mcu_puts(" y=");
                mcu_put_int(out[bad]);
                if (bad < 65536) {
                    mcu_puts(", expected ");
                    mcu_put_int(sub[k][bad == 65535 ? ACT_NSUB - 1 : bad / ACT_STRIDE]);
                }
            } else {
                mcu_puts(": outputs off the sampled inputs differ (hash)");
            }
            mcu_puts("\n");
            failed++;
        }
    }
    mcu_puts(failed ? "FAIL " : "ok   ");
    mcu_puts(name);
    mcu_puts(": ");
    mcu_put_int(nk);
    mcu_puts(" x 65536 inputs bit-exact\n");
    return failed;
}

/* the table activations' rows as act_fn */
static void sigmoid_table_portable(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    for (int i = 0; i < n; i++) y[i] = (int16_t)rnc_s16_sigmoid_table_q15(x[i]);
}
static void tanh_table_portable(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    for (int i = 0; i < n; i++) y[i] = (int16_t)rnc_s16_tanh_table_q15(x[i]);
}
#if defined(RNC_S8_HAVE_DSP)
static void sigmoid_table_dsp(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    sigmoid_table_block(y, x, n);
}
static void tanh_table_dsp(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    tanh_table_block(y, x, n);
}
#endif
#if defined(RNC_S8_HAVE_MVE)
static void sigmoid_table_mve(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    rnc_s16_sigmoid_table_mve(y, x, n);
}
static void tanh_table_mve(int16_t *y, const int16_t *x, int n, int k) {
    (void)k;
    rnc_s16_tanh_table_mve(y, x, n);
}
#endif

typedef void (*requant_fn)(int16_t *g, const int32_t *acc, const int32_t *m, const int8_t *shift,
                           const int16_t *add, int n);

static int check_requant(const char *name, requant_fn fn) {
    int failed = 0, n_cases = (int)(sizeof rq_cases / sizeof rq_cases[0]);
    for (int c = 0; c < n_cases; c++) {
        int n = (int)rq_cases[c][0], off = (int)rq_cases[c][2];
        for (int i = 0; i < n + 8; i++) out[i] = 0x5A5A;
        fn(out, rq_acc + off, rq_m + off, rq_shift + off,
           rq_cases[c][1] ? rq_add + off : (const int16_t *)0, n);
        for (int i = 0; i < n + 8; i++) {
            int16_t want = i < n ? rq_want[off + i] : 0x5A5A;
            if (out[i] != want) {
                if (failed < 5) {
                    mcu_puts("FAIL ");
                    mcu_puts(name);
                    mcu_puts(" n=");
                    mcu_put_int(n);
                    mcu_puts(" i=");
                    mcu_put_int(i);
                    mcu_puts(" got ");
                    mcu_put_int(out[i]);
                    mcu_puts(" expected ");
                    mcu_put_int(want);
                    mcu_puts("\n");
                }
                failed++;
                break;
            }
        }
    }
    mcu_puts(failed ? "FAIL " : "ok   ");
    mcu_puts(name);
    mcu_puts(": ");
    mcu_put_int(n_cases - failed);
    mcu_puts("/");
    mcu_put_int(n_cases);
    mcu_puts(" cases bit-exact\n");
    return failed;
}

int main(void) {
    for (int i = 0; i < 65536; i++) in[i] = (int16_t)(i - 32768);
    int failed = 0, rows = 0;
    failed += check_act("rnc_s16_sigmoid_table_q15 (s16_table.h)", sigmoid_table_portable, act_sigmoid_table_sub,
                        act_sigmoid_table_hash, 1);
    failed += check_act("rnc_s16_tanh_table_q15 (s16_table.h)", tanh_table_portable, act_tanh_table_sub,
                        act_tanh_table_hash, 1);
#if defined(RNC_S8_HAVE_DSP)
    failed += check_act("sigmoid_block (int_cells_dsp.c)", sigmoid_block, act_sigmoid_sub, act_sigmoid_hash, 7);
    failed += check_act("tanh_block (int_cells_dsp.c)", tanh_block, act_tanh_sub, act_tanh_hash, 7);
    failed += check_act("sigmoid_table_block (int_cells_dsp.c)", sigmoid_table_dsp, act_sigmoid_table_sub,
                        act_sigmoid_table_hash, 1);
    failed += check_act("tanh_table_block (int_cells_dsp.c)", tanh_table_dsp, act_tanh_table_sub,
                        act_tanh_table_hash, 1);
    failed += check_requant("requant (int_cells_dsp.c)", requant);
    rows += 5;
#endif
#if defined(RNC_S8_HAVE_MVE)
    failed += check_act("rnc_s16_sigmoid_mve", rnc_s16_sigmoid_mve, act_sigmoid_sub, act_sigmoid_hash, 7);
    failed += check_act("rnc_s16_tanh_mve", rnc_s16_tanh_mve, act_tanh_sub, act_tanh_hash, 7);
    failed += check_act("rnc_s16_sigmoid_table_mve", sigmoid_table_mve, act_sigmoid_table_sub,
                        act_sigmoid_table_hash, 1);
    failed += check_act("rnc_s16_tanh_table_mve", tanh_table_mve, act_tanh_table_sub, act_tanh_table_hash, 1);
    failed += check_requant("rnc_s32_requant_s16_mve", rnc_s32_requant_s16_mve);
    rows += 5;
#endif
    if (!rows) {
        mcu_puts("test_act: this target has no elementwise rows\n");
        return 1;
    }
    mcu_puts(failed ? "test_act: FAILED\n" : "test_act: all rows passed\n");
    return failed ? 1 : 0;
}
