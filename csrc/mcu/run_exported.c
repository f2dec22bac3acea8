/* Runs a model written by `rnncore export-c --target cortex-m` (export name "m": m.c / m.h) on a
 * bare-metal core under qemu-system-arm: the inputs come from m_inputs.h (M_STEPS rows of
 * M_INPUT_SIZE int8, written by the test), and every step's int8 output (and, with a head, the
 * int32 logits) is printed through semihosting, one line per step, for the test to compare with
 * the NumPy spec (tests/test_export_int_c.py). The first line names the rows compiled in. */
#include <stdint.h>

#include "m.h"
#include "m_inputs.h"
#include "semihost.h"

int main(void) {
    mcu_puts("rows ");
    mcu_puts(m_step_row);
    mcu_puts(" ");
    mcu_puts(m_matvec_row);
    mcu_puts("\n");
    if (m_reset()) {
        mcu_puts("FAIL: m_reset\n");
        return 1;
    }
    for (int t = 0; t < M_STEPS; t++) {
        int rc = m_step(m_inputs + (long)t * M_INPUT_SIZE);
        if (rc) {
            mcu_puts("FAIL: m_step returned ");
            mcu_put_int(rc);
            mcu_puts("\n");
            return 1;
        }
        const int8_t *h = m_output();
        for (int k = 0; k < M_HIDDEN_SIZE; k++) {
            mcu_put_int(h[k]);
            mcu_puts(" ");
        }
#ifdef M_NUM_LOGITS
        int32_t y[M_NUM_LOGITS];
        if (m_head(y)) {
            mcu_puts("FAIL: m_head\n");
            return 1;
        }
        for (int k = 0; k < M_NUM_LOGITS; k++) {
            mcu_put_int(y[k]);
            mcu_puts(" ");
        }
#endif
        mcu_puts("\n");
    }
    return 0;
}
