/* The aarch64 dot-product block-sparse rows' shared piece (q8_sparse_neondot.c,
 * q8_spshared_neondot.c): the input group broadcast to every 32-bit lane, so that `sdot` of a
 * 16-byte weight register (4 rows x 4 inputs) adds each row's 4 products into its lane. Include
 * after <arm_neon.h> and q8_sparse.h. */
#ifndef RNC_Q8_SPARSE_NEONDOT_H
#define RNC_Q8_SPARSE_NEONDOT_H

static inline int8x16_t sp_bcast(const int8_t *q, uint16_t g)
{
    return vreinterpretq_s8_s32(vdupq_n_s32(rnc__group4(q, g)));
}

#endif
