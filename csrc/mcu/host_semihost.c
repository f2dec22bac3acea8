/* The semihosting interface of the bare-metal images (semihost.h) on a hosted C library, so that
 * the same tests run on the build machine (the generic twin on x86-64). */
#include <stdio.h>
#include <stdlib.h>

#include "semihost.h"

void mcu_puts(const char *s) { fputs(s, stdout); }
void mcu_put_int(long v) { printf("%ld", v); }
void mcu_put_hex(uint32_t v) { printf("0x%08lx", (unsigned long)v); }
int mcu_cmdline(char *buf, int len) {
    (void)len;
    buf[0] = 0;
    return -1;
}
void mcu_exit(int status) {
    fflush(stdout);
    exit(status);
}
uint32_t mcu_cycles(void) { return 0; }
