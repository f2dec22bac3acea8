/* The integer products' kernel list for one target, chosen at compile time: a bare-metal image
 * has no CPU to ask, so the compiler's target (-mcpu) decides which rows exist.
 *
 *   X(op, function, isa)      one row per product this target compiles
 *
 * Names spell datatype, op and ISA: rnc_s8_<op>_<isa>. Every row computes exactly what its
 * _generic twin computes (s8_matvec.h); the tests (csrc/mcu/test_s8.c) run every row of the
 * target against vectors written by NumPy. RNC_S8_MATVEC names the row this target's code calls:
 * the last row of the list, the widest ISA the target has.
 *
 *   generic  portable C (s8_matvec_generic.c), every target
 *   dsp      Armv7E-M / Armv8-M DSP extension (Cortex-M4, M7, M33, M55): SXTB16 + SMLAD
 *   mve      Armv8.1-M MVE integer (Helium, Cortex-M55/M85): VMLADAVA.S8 */
#ifndef RNC_S8_KERNEL_LIST_H
#define RNC_S8_KERNEL_LIST_H

#include "s8_matvec.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__) && !defined(RNC_NO_ARM_DSP)
#define RNC_S8_HAVE_DSP 1
void rnc_s8_matvec_dsp(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols);
#define RNC_S8_KERNELS_DSP(X) X(MATVEC, rnc_s8_matvec_dsp, "dsp")
#else
#define RNC_S8_KERNELS_DSP(X)
#endif

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(RNC_NO_ARM_MVE)
#define RNC_S8_HAVE_MVE 1
void rnc_s8_matvec_mve(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x,
                       int rows, int cols);
#define RNC_S8_KERNELS_MVE(X) X(MATVEC, rnc_s8_matvec_mve, "mve")
#else
#define RNC_S8_KERNELS_MVE(X)
#endif

#define RNC_S8_KERNELS(X)                                                                         \
    X(MATVEC, rnc_s8_matvec_generic, "generic")                                                   \
    RNC_S8_KERNELS_DSP(X)                                                                         \
    RNC_S8_KERNELS_MVE(X)

#if defined(RNC_S8_HAVE_MVE)
#define RNC_S8_MATVEC rnc_s8_matvec_mve
#elif defined(RNC_S8_HAVE_DSP)
#define RNC_S8_MATVEC rnc_s8_matvec_dsp
#else
#define RNC_S8_MATVEC rnc_s8_matvec_generic
#endif

#endif
