/* Run-time detection of ARM SIMD features from the kernel's auxiliary vector (Linux, glibc/musl).
 * aarch64: ASIMD (NEON) is baseline; the dot-product extension is HWCAP_ASIMDDP.
 * armv7  : NEON is HWCAP_NEON (absent on some Cortex-A9 / VFP-only cores).
 * No mutable state: getauxval reads the process's auxv each call (cheap; called at model init). */
#include "../kernels/arm_kernels.h"

#if (defined(__aarch64__) || defined(__arm__)) && defined(__linux__)
#include <sys/auxv.h>
#endif

#if defined(__aarch64__)
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#elif defined(__arm__)
#ifndef HWCAP_ARM_NEON
#define HWCAP_ARM_NEON (1UL << 12)
#endif
#endif

int rnc_arm_has_neon(void)
{
#if defined(__aarch64__)
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
    return 1;
#endif
#elif defined(__arm__) && defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ARM_NEON) != 0;
#else
    return 0;
#endif
}

int rnc_arm_has_dotprod(void)
{
#if defined(__aarch64__) && defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}
