/* Run-time detection of the x86 AVX-512 / AVX-512 VNNI / AVX-VNNI / AMX paths.
 *
 * A path can run only when the CPU has the instructions (cpuid) AND the operating system saves
 * the register state they use (XCR0 read with xgetbv, after checking OSXSAVE):
 *   YMM  : XCR0 bits 1-2 (SSE, AVX)
 *   ZMM  : bits 5-7 (opmask k0-k7, upper halves of zmm0-15, zmm16-31) as well
 *   AMX  : bits 17-18 (XTILECFG, XTILEDATA) as well; Linux also requires a per-process
 *          arch_prctl(ARCH_REQ_XCOMP_PERM) before the first tile instruction.
 * No mutable state: cpuid/xgetbv are executed on every call (cheap; called at model init).
 * Compiled without any ISA flag: only cpuid/xgetbv are used. */
#include "../kernels/kernels_avx512.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static int cpuid_regs(unsigned leaf, unsigned sub, unsigned r[4])
{
    unsigned max = __get_cpuid_max(0, 0);
    if (max < leaf) return 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    return 1;
}

static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* OS saves YMM (and, if zmm, ZMM + opmask) state. */
static int os_saves(int zmm)
{
    unsigned r[4];
    if (!cpuid_regs(1, 0, r)) return 0;
    if (!(r[2] & (1u << 27))) return 0;  /* OSXSAVE: xgetbv usable */
    const unsigned long long need = zmm ? 0xE6ull : 0x06ull;
    return (xcr0() & need) == need;
}

int rnc_x86_has_avx512(void)
{
    unsigned r1[4], r7[4];
    if (!cpuid_regs(1, 0, r1) || !cpuid_regs(7, 0, r7)) return 0;
    const int fma = (r1[2] >> 12) & 1, avx = (r1[2] >> 28) & 1;
    const int avx2 = (r7[1] >> 5) & 1, f = (r7[1] >> 16) & 1, dq = (r7[1] >> 17) & 1;
    const int bw = (r7[1] >> 30) & 1, vl = (r7[1] >> 31) & 1;
    return fma && avx && avx2 && f && dq && bw && vl && os_saves(1);
}

int rnc_x86_has_avx512vnni(void)
{
    unsigned r7[4];
    if (!rnc_x86_has_avx512() || !cpuid_regs(7, 0, r7)) return 0;
    return (r7[2] >> 11) & 1;  /* AVX512_VNNI */
}

int rnc_x86_has_avxvnni(void)
{
    unsigned r1[4], r7[4], r71[4];
    if (!cpuid_regs(1, 0, r1) || !cpuid_regs(7, 0, r7)) return 0;
    if (r7[0] < 1 || !cpuid_regs(7, 1, r71)) return 0;  /* leaf 7 sub-leaf 1 present */
    const int fma = (r1[2] >> 12) & 1, avx = (r1[2] >> 28) & 1, avx2 = (r7[1] >> 5) & 1;
    const int avxvnni = (r71[0] >> 4) & 1;
    return fma && avx && avx2 && avxvnni && os_saves(0);
}

#else
int rnc_x86_has_avx512(void) { return 0; }
int rnc_x86_has_avx512vnni(void) { return 0; }
int rnc_x86_has_avxvnni(void) { return 0; }
#endif
