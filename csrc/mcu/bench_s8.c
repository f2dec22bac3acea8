/* Executed-instruction bench of the integer products on the bare-metal images. qemu's -append
 * text (semihosting SYS_GET_CMDLINE) names the work and how many times to run it:
 *
 *   bench_s8.elf "WORK REPS"      WORK: one of the names printed by "list"
 *
 * The image is run twice (REPS = 1 and REPS = 1 + N) with the instruction-counting plugin, and
 * the difference / N is the count per call with start-up, set-up and exit cancelled
 * (bench_cortex_m.py does this). The weights are const arrays (flash), x, h and the outputs RAM. */
#include <stdint.h>

#include "s16_act.h"
#include "s8_kernel_list.h"
#include "semihost.h"

#define H 64
#define I 16

/* deterministic pseudo-random int8 (the values do not change the instruction counts: no
 * kernel branches on data) */
static int8_t W_ih[3 * H * I], W_hh[3 * H * H], x[I], h[H];
static int32_t b_ih[3 * H], b_hh[3 * H], gi[3 * H], gh[3 * H];

static void fill(int8_t *p, int n, uint32_t *s) {
    for (int i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = (int8_t)(*s >> 24);
    }
}

/* the products of one GRU step (H = 64, I = 16): W_ih x (3H x I) and W_hh h (3H x H) */
static void gru_products(rnc_s8_matvec_fn mv) {
    mv(gi, W_ih, I, b_ih, x, 3 * H, I);
    mv(gh, W_hh, H, b_hh, h, 3 * H, H);
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

int main(void) {
    char cmd[256], *p = cmd;
    uint32_t seed = 18;
    fill(W_ih, sizeof W_ih, &seed);
    fill(W_hh, sizeof W_hh, &seed);
    fill(x, sizeof x, &seed);
    fill(h, sizeof h, &seed);
    /* qemu's command line: the image's path, then the -append text */
    if (mcu_cmdline(cmd, sizeof cmd) != 0) cmd[0] = 0;
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
    char *work = p;
    while (*p && *p != ' ') p++;
    long reps = 1;
    if (*p == ' ') {
        *p++ = 0;
        reps = 0;
        while (*p >= '0' && *p <= '9') reps = reps * 10 + (*p++ - '0');
    }
    int found = 0;
#define GRU(op, fn, isa)                                                                          \
    if (streq(work, "gru_products_" isa)) {                                                        \
        for (long i = 0; i < reps; i++) gru_products(fn);                                         \
        found = 1;                                                                                \
    }                                                                                             \
    if (streq(work, "list")) mcu_puts("gru_products_" isa "\n"), found = 1;
    RNC_S8_KERNELS(GRU)
#undef GRU
#if defined(RNC_S8_HAVE_MVE)
    /* the elementwise rows on one GRU step's worth: 3 x 64 requantised gates, 2 x 64 sigmoids,
     * 64 tanh */
    static int16_t g16[3 * H], a16[3 * H];
    static int32_t mult[3 * H];
    static int8_t shift[3 * H];
    for (int i = 0; i < 3 * H; i++) mult[i] = 1 << 30, shift[i] = (int8_t)-(i % 9);
    if (streq(work, "act_gru_mve")) {
        for (long i = 0; i < reps; i++) {
            rnc_s32_requant_s16_mve(g16, gi, mult, shift, 0, 3 * H);
            rnc_s32_requant_s16_mve(g16, gh, mult, shift, g16, 3 * H);
            rnc_s16_sigmoid_mve(a16, g16, 2 * H, 3);
            rnc_s16_tanh_mve(a16 + 2 * H, g16 + 2 * H, H, 3);
        }
        found = 1;
    }
    if (streq(work, "list")) mcu_puts("act_gru_mve\n"), found = 1;
#endif
    if (!found) {
        mcu_puts("bench_s8: unknown work '");
        mcu_puts(work);
        mcu_puts("' (try: list)\n");
        return 2;
    }
    /* keep the results observable */
    int32_t sum = 0;
    for (int i = 0; i < 3 * H; i++) sum += gi[i] ^ gh[i];
    return sum == 0x7fffffff ? 1 : 0;
}
