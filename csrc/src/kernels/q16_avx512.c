/* The 16 x 16 product of a frame_conv, AVX-512 F/BW (q16_avx512.h): the pair sums by vpmaddwd
 * (exact in int32: q16_avx512.h's bounds), added by vpaddd. */
#if !defined(RNC_NO_Q16) /* kernel_list.h: a build may leave these kernels out */
#define Q16_DOT(acc, w, x) _mm512_add_epi32((acc), _mm512_madd_epi16((w), (x)))
#define Q16_NAME rnc_q16_gemm_avx512
#include "q16_avx512.h"
#else
typedef int rnc_q16_avx512_left_out; /* ISO C: a translation unit is not empty */
#endif
