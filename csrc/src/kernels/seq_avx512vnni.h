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

/* corr[r] = -128 * sum_k W[r,k] for the rows r < round16(R) of a packed q8 matrix: the row
 * corrections of the offset trick (dpbusd(q ^ 0x80, W) sums W (q + 128)), made once per sequence. */
void rnc_q8_rowcorr_avx512vnni(const int8_t *Wp, int R, int K, int32_t *corr);

struct rnc_cell_args;
/* One step of a q8 cell (any kind) in whole-sequence mode (gi given), as the kernel table's
 * rnc_q8_<cell>_step_avx512vnni, given W_hh's row corrections corr_hh (rnc_q8_rowcorr_avx512vnni
 * of w_hh, G*Hp rows), made by the caller once for the sequence: at batch 2-3 each W_hh vector is
 * then loaded once for all rows (offset trick) instead of once per row. Other batches, or
 * corr_hh NULL: the table's kernel. Bit-identical either way (exact int32 sums, the same float32
 * epilogue). */
void rnc_q8_seq_step_avx512vnni(const struct rnc_cell_args *a, const int32_t *corr_hh);
#endif

#endif
