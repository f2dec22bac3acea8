/* Output and exit of the bare-metal images through Arm semihosting (BKPT 0xAB on the M profile):
 * qemu-system-arm serves the calls with -semihosting-config enable=on,target=native. No libc. */
#ifndef RNC_MCU_SEMIHOST_H
#define RNC_MCU_SEMIHOST_H

#include <stdint.h>

void mcu_puts(const char *s);        /* the string as is (no newline added) */
void mcu_put_int(long v);            /* decimal */
void mcu_put_hex(uint32_t v);        /* 0x%08x */
int mcu_cmdline(char *buf, int len); /* qemu's -append text, 0-terminated; -1 if none */
void mcu_exit(int status) __attribute__((noreturn));
/* the cycle counter if the core has one (DWT CYCCNT; qemu's cores read 0) */
uint32_t mcu_cycles(void);

#endif
