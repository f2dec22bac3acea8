/* The 16 x 16 product of a frame_conv, AVX-512 VNNI (q16_avx512.h): the pair sums accumulated by
 * vpdpwssd (exact in int32: q16_avx512.h's bounds). */
#if !defined(RNC_NO_Q16) /* kernel_list.h: a build may leave these kernels out */
#define Q16_DOT(acc, w, x) _mm512_dpwssd_epi32((acc), (w), (x))
#define Q16_NAME rnc_q16_gemm_avx512vnni
#include "q16_avx512.h"
#else
typedef int rnc_q16_avx512vnni_left_out; /* ISO C: a translation unit is not empty */
#endif
