/* Run-time CPU feature detection (no state: computed on every call; called at model init).
 * x86: cpuid for the instruction sets and XGETBV for the register state the OS saves
 * (YMM for AVX2/AVX-VNNI; opmask+ZMM for AVX-512; tile state for AMX).
 * ARM: the auxiliary vector (arch/arm_cpu.c). */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* syscall() under -std=c99 */
#endif
#include "internal.h"

#if RNC_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Linux keeps the AMX tile data state off until a process asks for it (since 5.16); a tile
 * instruction before that raises SIGILL. The request is idempotent and per process. */
#define RNC_ARCH_REQ_XCOMP_PERM 0x1023
#define RNC_XFEATURE_XTILEDATA 18
int rnc__amx_request_permission(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, RNC_ARCH_REQ_XCOMP_PERM, RNC_XFEATURE_XTILEDATA) == 0;
#else
    return 0; /* other systems: not enabled by this library (the AVX-512 VNNI path is used) */
#endif
}

int rnc__amx_usable(uint32_t cpuid7_edx, uint64_t xcr0, int (*request_permission)(void))
{
    const int cpu = (cpuid7_edx & (1u << 24)) && (cpuid7_edx & (1u << 25)); /* AMX-TILE, AMX-INT8 */
    const int os = (xcr0 & 0x60000) == 0x60000;                            /* XTILECFG, XTILEDATA */
    return cpu && os && request_permission && request_permission() == 1;
}

static uint64_t rnc_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

typedef struct {
    uint32_t ecx1, ebx7, ecx7, edx7, eax7_1;
    uint64_t xcr0;
} rnc_cpuid;

static rnc_cpuid rnc_read_cpuid(void)
{
    rnc_cpuid c = {0, 0, 0, 0, 0, 0};
    unsigned a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
    const unsigned max = a;
    if (__get_cpuid(1, &a, &b, &cx, &d)) c.ecx1 = cx;
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, cx, d);
        c.ebx7 = b;
        c.ecx7 = cx;
        c.edx7 = d;
        __cpuid_count(7, 1, a, b, cx, d);
        c.eax7_1 = a;
    }
    if (c.ecx1 & (1u << 27)) c.xcr0 = rnc_xgetbv0(); /* OSXSAVE */
    return c;
}
#elif defined(__arm__) || defined(__aarch64__)
int rnc_arm_has_neon(void);
int rnc_arm_has_dotprod(void);
#endif

/* Bit i set when the CPU (and OS) can run rnc_isa i: one cpuid/xgetbv pass (cpuid is slow in
 * virtual machines, tens of microseconds, so callers query the mask once). The AMX bit is only
 * evaluated when ask_amx is set, because evaluating it asks Linux for the tile state, which is
 * process-wide and not free of side effects (afterwards the kernel refuses sigaltstack() stacks
 * too small for the 8 KiB tile state): a process that forces another path (RNNCORE_ISA, set_isa)
 * and never asks for the best path or for AMX never makes the request. */
static uint32_t isa_mask(int ask_amx)
{
    uint32_t mask = 1u << RNC_ISA_GENERIC;
#if RNC_X86
    const rnc_cpuid c = rnc_read_cpuid();
    const int ymm = (c.xcr0 & 0x6) == 0x6;
    const int zmm = (c.xcr0 & 0xE6) == 0xE6;
    const int avx2 = ymm && (c.ecx1 & (1u << 28)) && (c.ecx1 & (1u << 12)) && (c.ebx7 & (1u << 5));
    const int avx512 = avx2 && zmm && (c.ebx7 & (1u << 16)) && (c.ebx7 & (1u << 17)) &&
                       (c.ebx7 & (1u << 30)) && (c.ebx7 & (1u << 31));
    const int vnni512 = avx512 && (c.ecx7 & (1u << 11));
    const int avxvnni = avx2 && (c.eax7_1 & (1u << 4));
#if defined(RNC_TEST_PRETEND_AMX)
    /* test build only (csrc/Makefile test-amx-emulated): the AMX path's tiles are emulated in C */
    const int amx = vnni512;
    (void)ask_amx;
#else
    const int amx = ask_amx && vnni512 && rnc__amx_usable(c.edx7, c.xcr0, rnc__amx_request_permission);
#endif
    mask |= (uint32_t)avx2 << RNC_ISA_AVX2 | (uint32_t)avx512 << RNC_ISA_AVX512 |
            (uint32_t)vnni512 << RNC_ISA_AVX512VNNI | (uint32_t)avxvnni << RNC_ISA_AVXVNNI |
            (uint32_t)amx << RNC_ISA_AMX;
#elif defined(__arm__) || defined(__aarch64__)
    const int neon = rnc_arm_has_neon();
    mask |= (uint32_t)neon << RNC_ISA_NEON;
    mask |= (uint32_t)(neon && rnc_arm_has_dotprod()) << RNC_ISA_NEONDOT;
    (void)ask_amx;
#else
    (void)ask_amx;
#endif
    return mask;
}

/* Every path the CPU and OS can run (asks for AMX: used to pick the best path). */
uint32_t rnc__cpu_isa_mask(void) { return isa_mask(1); }

int rnc__cpu_supports(int isa)
{
    if (isa == RNC_ISA_GENERIC) return 1;
    if (isa < 0 || isa >= RNC_ISA_COUNT) return 0;
    return (int)((isa_mask(isa == RNC_ISA_AMX) >> isa) & 1u);
}
