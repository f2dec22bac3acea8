/* Every integer-product row this target compiles (src/int/s8_kernel_list.h) against the vectors
 * NumPy wrote (gen_s8_vectors.py, checked in int64): every output bit for bit, and no write
 * past y[rows - 1]. Runs bare metal under qemu-system-arm (semihosting) and on the host. */
#include <stdint.h>

#include "s8_kernel_list.h"
#include "s8_vectors.h"
#include "semihost.h"

#define NCASES ((int)(sizeof s8_cases / sizeof s8_cases[0]))
#define GUARD 4
#define SENTINEL ((int32_t)0x5A5A5A5A)

static int32_t ybuf[256 + GUARD];

static int check(const char *name, rnc_s8_matvec_fn fn) {
    int failed = 0;
    for (int i = 0; i < NCASES; i++) {
        const int32_t *c = s8_cases[i];
        int rows = (int)c[0], cols = (int)c[1], ldw = (int)c[2];
        const int32_t *want = s8_y + c[6];
        if (rows + GUARD > (int)(sizeof ybuf / sizeof ybuf[0])) {
            mcu_puts("test_s8: case too large for ybuf\n");
            return 1;
        }
        for (int r = 0; r < rows + GUARD; r++) ybuf[r] = SENTINEL;
        fn(ybuf, s8_w + c[3], ldw, c[5] < 0 ? (const int32_t *)0 : s8_bias + c[5], s8_x + c[4],
           rows, cols);
        int bad = -1;
        for (int r = 0; r < rows && bad < 0; r++)
            if (ybuf[r] != want[r]) bad = r;
        for (int r = rows; r < rows + GUARD && bad < 0; r++)
            if (ybuf[r] != SENTINEL) bad = r;
        if (bad >= 0) {
            if (failed < 5) {
                mcu_puts("FAIL ");
                mcu_puts(name);
                mcu_puts(" case ");
                mcu_put_int(i);
                mcu_puts(" rows=");
                mcu_put_int(rows);
                mcu_puts(" cols=");
                mcu_put_int(cols);
                mcu_puts(" ldw=");
                mcu_put_int(ldw);
                mcu_puts(" W%16=");
                mcu_put_int(c[3] % 16);
                mcu_puts(" x%16=");
                mcu_put_int(c[4] % 16);
                mcu_puts(": y[");
                mcu_put_int(bad);
                mcu_puts("] = ");
                mcu_put_int(ybuf[bad]);
                mcu_puts(", expected ");
                mcu_put_int(bad < rows ? want[bad] : SENTINEL);
                mcu_puts("\n");
            }
            failed++;
        }
    }
    mcu_puts(failed ? "FAIL " : "ok   ");
    mcu_puts(name);
    mcu_puts(": ");
    mcu_put_int(NCASES - failed);
    mcu_puts("/");
    mcu_put_int(NCASES);
    mcu_puts(" products bit-exact\n");
    return failed;
}

int main(void) {
    int failed = 0, n = 0;
#define RUN(op, fn, isa) failed += check("rnc_s8_matvec_" isa, fn), n++;
    RNC_S8_KERNELS(RUN)
#undef RUN
    mcu_puts(failed ? "test_s8: FAILED\n" : "test_s8: all rows passed\n");
    return failed ? 1 : (n > 0 ? 0 : 1);
}
