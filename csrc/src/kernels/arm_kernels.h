/* ARM NEON / dot-product matrix kernels (internal). Weights in rnncore's packed layouts
 * (see gemm_neon.c); R = rows actually written, K = inputs (unpadded). Outputs are written for
 * rows 0..R-1 only; inputs are read for 0..K-1 only. */
#ifndef RNC_ARM_KERNELS_H
#define RNC_ARM_KERNELS_H
#include <stdint.h>

#if defined(__arm__) || defined(__aarch64__)
/* y[r] = sum_k W[r,k] x[k] */
void rnc_f32_gemv_neon(const float *Wp, int R, int K, const float *x, float *y);
/* Y[n*ldy + r] = sum_k W[r,k] X[n*ldx + k], n < N */
void rnc_f32_gemm_neon(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                           int ldy);
/* acc[r] = sum_k Wq[r,k] q[k] (int32, exact) */
void rnc_q8_gemv_neon(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_q8_gemm_neon(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                          int32_t *Acc, int ldacc);
#endif
#if defined(__aarch64__)
void rnc_q8_gemv_neondot(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_q8_gemm_neondot(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                             int32_t *Acc, int ldacc);
#endif

/* Run-time CPU features (arch/arm_cpu.c); 0 on other architectures. */
int rnc_arm_has_neon(void);
int rnc_arm_has_dotprod(void);

#endif
