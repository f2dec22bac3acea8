/* q4 weights (docs/q8-contract.md, "q4 weights"; docs/rnc-format.md), shared by every ISA's
 * q4_<isa>.c:
 *
 *   Acc[n*ldacc + r] = sum_{k<K} W[r,k] * Q[n*ldq + k]   for r < R, n < N (exact int32)
 *
 * with W[r,k] in -7..7 stored as the nibble W + 8 (1..15), two per byte, in the q8 tile order with
 * two 4-input groups per tile: byte[(b*P + p)*64 + r*4 + j] holds W[16b+r, 8p+j] + 8 in its low
 * nibble and W[16b+r, 8p+4+j] + 8 in its high one, P = round8(K) / 8 (inputs >= K and rows >= R
 * hold nibble 8, weight 0; the loader checks the inputs). Q rows hold round4(K) int8.
 *
 * The SIMD products multiply the unsigned nibbles n = W + 8 (unpacked with a mask and a shift) by
 * the signed activations with the q8 instructions (vpdpbusd, pmaddubsw, sdot) and subtract
 * 8 * sum_k Q[k] once per column:  sum_k n_k q_k - 8 sum_k q_k = sum_k W_k q_k. Every term is exact
 * in int32 (|n q| <= 15 * 127; K <= 131072), so every ISA gives the generic row's integers. Q is
 * read at k < K only: a last partial group is zero-filled (its weights' nibbles then never count),
 * and the correction sums the same k < K. */
#ifndef RNC_Q4_H
#define RNC_Q4_H
#include <string.h>

#include "../internal.h"

/* Tiles (64 bytes, 8 inputs) per 16-row block of a q4 matrix of K inputs. */
static inline int rnc__q4_pairs(int K) { return (K + 7) / 8; }

/* sum_{k < K} q[k]: the column's offset correction (times 8). */
static inline int32_t rnc__q4_qsum(const int8_t *q, int K)
{
    int32_t s = 0;
    for (int k = 0; k < K; ++k) s += q[k];
    return s;
}

/* The 4 bytes of input group g of q (K inputs) as one int32, zero past K. */
static inline int32_t rnc__q4_group(const int8_t *q, int K, int g)
{
    int32_t v = 0;
    const int n = K - 4 * g;
    memcpy(&v, q + 4 * (size_t)g, (size_t)(n >= 4 ? 4 : n > 0 ? n : 0));
    return v;
}

/* The cells of an ISA: cell_template.h with RNC_Q4 defined, after rnc_q4_gemm_<sfx>:
 *   #define RNC_Q4 1  and  #define RNC_SFX <sfx>, then include cell_template.h. */
#endif
