/* AVX-512 VNNI entry points of the whole-sequence path (model.c's rnc_run), beyond the kernel
 * table's rows (internal). */
#ifndef RNC_SEQ_AVX512VNNI_H
#define RNC_SEQ_AVX512VNNI_H
#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64)
/* The q8 input projection of a sequence with its dequantisation in the GEMM's store (no int32
 * pass through memory): for n < N, r < R,
 *   Y[n*ldy + r] = (float)acc[n][r] * (sx[n] * sw[r]) + bias[r],   acc[n][r] = sum_k W[r,k] Q[n*ldq + k]
 * with rnc_q8_gemm_avx512vnni's exact int32 acc and these float32 operations in this order (those of
 * the portable loop in model.c), so the result is bit-identical to that GEMM + loop. */
void rnc_q8_gemm_deq_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                const float *sx, const float *sw, const float *bias, float *Y, int ldy);
#endif

#endif
