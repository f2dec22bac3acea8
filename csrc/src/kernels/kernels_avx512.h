/* x86 AVX-512 / AVX-512 VNNI / AVX-VNNI matrix kernels (internal). Weights in rnncore's packed
 * layouts (docs/q8-contract.md, docs/rnc-format.md); R = rows actually written, K = inputs (unpadded).
 * Outputs are written for rows 0..R-1 only; inputs are read for 0..K-1 only (no over-read).
 *
 *   gemm: Y[n*ldy + r] = sum_k W[r,k] X[n*ldx + k], n < N  (q8: int32, exact)
 *   N = 1 is the matrix-vector product of a streaming step; with more columns each weight load
 *   serves several of them (avx512: from N = 2; the VNNI kernels from N = 3, where the offset
 *   trick's row corrections pay off; AMX, q8_gemm_amx.c: tiles from N = 16).
 *
 * Each ISA lives in its own file compiled with only its own flags; the CPU checks (cpuid +
 * XGETBV for the OS-enabled register state) are in cpu.c (rnc__cpu_supports). */
#ifndef RNC_KERNELS_AVX512_H
#define RNC_KERNELS_AVX512_H
#include <stdint.h>

/* Names and signatures follow internal.h's kernel contract (RNC_DECLARE_ISA): a file per ISA
 * provides rnc_q8_gemm_<isa> / rnc_f32_gemm_<isa>; cells_<isa>.c builds the fused cell steps
 * from them with cell_template.h. */
#if defined(__x86_64__) || defined(_M_X64)
/* AVX-512 F/BW/VL/DQ (Skylake-SP/X and later, Zen 4): f32 FMA; q8 via vpmaddubsw + vpmaddwd. */
void rnc_f32_gemm_avx512(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                         int ldy);
void rnc_q8_gemm_avx512(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                        int32_t *Acc, int ldacc);
/* AVX-512 VNNI (512-bit vpdpbusd). */
void rnc_q8_gemm_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                            int32_t *Acc, int ldacc);
/* AVX-VNNI (256-bit VEX vpdpbusd: Alder Lake, Sapphire Rapids, Zen 5). */
void rnc_q8_gemm_avxvnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                         int32_t *Acc, int ldacc);
#endif

#endif
