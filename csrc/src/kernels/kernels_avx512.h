/* x86 AVX-512 / AVX-512 VNNI / AVX-VNNI matrix kernels (internal). Weights in rnncore's packed
 * layouts (C_CONTRACT.md, docs/rnc-format.md); R = rows actually written, K = inputs (unpadded).
 * Outputs are written for rows 0..R-1 only; inputs are read for 0..K-1 only (no over-read).
 *
 *   gemv: y[r] = sum_k W[r,k] x[k]                         (q8: int32, exact)
 *   gemm: Y[n*ldy + r] = sum_k W[r,k] X[n*ldx + k], n < N  (several columns per weight load)
 *
 * Each ISA lives in its own file compiled with only its own flags; the CPU checks (cpuid +
 * XGETBV for the OS-enabled register state) are in arch/x86_avx512_cpu.c. */
#ifndef RNC_KERNELS_AVX512_H
#define RNC_KERNELS_AVX512_H
#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64)
/* AVX-512 F/BW/VL (Skylake-X and later, Zen 4): f32 FMA kernels; q8 via vpmaddubsw+vpmaddwd. */
void rnc_x86_gemv_f32_avx512(const float *Wp, int R, int K, const float *x, float *y);
void rnc_x86_gemm_f32_avx512(const float *Wp, int R, int K, int N, const float *X, int ldx,
                             float *Y, int ldy);
void rnc_x86_gemv_q8_avx512(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_x86_gemm_q8_avx512(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                            int32_t *Acc, int ldacc);
/* AVX-512 VNNI (512-bit vpdpbusd). */
void rnc_x86_gemv_q8_avx512vnni(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_x86_gemm_q8_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                int32_t *Acc, int ldacc);
/* AVX-VNNI (256-bit VEX vpdpbusd, Alder Lake / Sapphire Rapids / Zen 5). */
void rnc_x86_gemv_q8_avxvnni(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc);
void rnc_x86_gemm_q8_avxvnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                             int32_t *Acc, int ldacc);

/* Run-time CPU + OS support (arch/x86_avx512_cpu.c): 1 when the path can run here. */
int rnc_x86_has_avx512(void);      /* F, BW, VL, DQ + OS saves opmask/ZMM state */
int rnc_x86_has_avx512vnni(void);  /* the above + AVX512_VNNI */
int rnc_x86_has_avxvnni(void);     /* AVX2 + FMA + AVX-VNNI (VEX) + OS saves YMM state */
#endif

#endif
