/* Reset, vector table and semihosting of the bare-metal test and bench images (Cortex-M4, M7,
 * M55 on qemu's mps2-an386, mps2-an500, mps3-an547). The linker script (mps2.ld / mps3.ld) places
 * .vectors at the boot address and defines the symbols below. */
#include <stddef.h>
#include <stdint.h>

#include "semihost.h"

extern uint32_t __stack_top[], __data_load[], __data_start[], __data_end[], __bss_start[],
    __bss_end[];
int main(void);

/* The compiler may call these for struct copies and zeroing; the core itself uses only them. */
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void mcu_puts(const char *s) { semihost(0x04, s); /* SYS_WRITE0 */ }

void mcu_put_int(long v) {
    char buf[16], *p = buf + sizeof buf;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    *--p = 0;
    do {
        *--p = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    mcu_puts(p);
}

void mcu_put_hex(uint32_t v) {
    char buf[11] = "0x";
    for (int i = 0; i < 8; i++) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15];
    buf[10] = 0;
    mcu_puts(buf);
}

int mcu_cmdline(char *buf, int len) {
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, (uint32_t)len};
    buf[0] = 0;
    return semihost(0x15, block) == 0 ? 0 : -1; /* SYS_GET_CMDLINE */
}

void mcu_exit(int status) {
    /* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit with the status as qemu's exit code */
    uint32_t block[2] = {0x20026, (uint32_t)status};
    for (;;) semihost(0x20, block);
}

uint32_t mcu_cycles(void) { return *(volatile uint32_t *)0xE0001004u; /* DWT_CYCCNT */ }

void Reset_Handler(void) __attribute__((noreturn));
void Reset_Handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* first, CPACR: full access to CP10/CP11 (the FPU and, on Armv8.1-M, the MVE registers) */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    /* after CPACR: the compiler may vectorise these loops (MVE) */
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;
    /* DWT: enable the cycle counter where a core implements it */
    *(volatile uint32_t *)0xE000EDFCu |= 1u << 24; /* DEMCR.TRCENA */
    *(volatile uint32_t *)0xE0001000u |= 1u;       /* DWT_CTRL.CYCCNTENA */
    mcu_exit(main());
}

static void Fault_Handler(void) {
    uint32_t *scb = (uint32_t *)0xE000ED28u; /* CFSR */
    mcu_puts("FAULT: CFSR=");
    mcu_put_hex(scb[0]);
    mcu_puts(" HFSR=");
    mcu_put_hex(scb[1]);
    mcu_puts("\n");
    mcu_exit(3);
}

typedef void (*vector_fn)(void);
__attribute__((section(".vectors"), used)) static const vector_fn vectors[16] = {
    (vector_fn)(uintptr_t)__stack_top, Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0,
    Fault_Handler, Fault_Handler,
};
