/* The NEON block-sparse rows' shared pieces (q8_sparse_neon.c, q8_spshared_neon.c): the input
 * group broadcast to every 32-bit lane and the exact product-accumulate of one 16-byte weight
 * register (4 rows x 4 inputs): `smull` of its low half gives the 8 products of rows 4k, 4k+1 as
 * int16 and `sadalp` adds their input pairs into int32 lanes [r j01, r j23, r+1 j01, r+1 j23]
 * (the high half: rows 4k+2, 4k+3; rnc_neon_pair_reduce makes the row sums). Two blocks share
 * the int16 step (`smlal`): |w|, |q| <= 127 (the loader refuses -128 weights, the quantiser
 * clamps to -127..127), so two products add to at most 2 * 127^2 = 32258 < 2^15. Include after
 * <arm_neon.h> and q8_sparse.h. */
#ifndef RNC_Q8_SPARSE_NEON_H
#define RNC_Q8_SPARSE_NEON_H

/* the broadcast input group: aarch64 keeps it in both halves of a q register, so the high half of
 * a weight register multiplies with `smull2`/`smlal2` (no extraction); armv7 in a d register, whose
 * q registers' halves are d registers already */
#if defined(__aarch64__)
typedef int8x16_t sp_x;
static inline sp_x sp_bcast(const int8_t *q, uint16_t g)
{
    return vreinterpretq_s8_s32(vdupq_n_s32(rnc__group4(q, g)));
}
#define SP_MULL_LO(w, x) vmull_s8(vget_low_s8(w), vget_low_s8(x))
#define SP_MULL_HI(w, x) vmull_high_s8(w, x)
#define SP_MLAL_LO(a, w, x) vmlal_s8(a, vget_low_s8(w), vget_low_s8(x))
#define SP_MLAL_HI(a, w, x) vmlal_high_s8(a, w, x)
#else
typedef int8x8_t sp_x;
static inline sp_x sp_bcast(const int8_t *q, uint16_t g)
{
    return vreinterpret_s8_s32(vdup_n_s32(rnc__group4(q, g)));
}
#define SP_MULL_LO(w, x) vmull_s8(vget_low_s8(w), x)
#define SP_MULL_HI(w, x) vmull_s8(vget_high_s8(w), x)
#define SP_MLAL_LO(a, w, x) vmlal_s8(a, vget_low_s8(w), x)
#define SP_MLAL_HI(a, w, x) vmlal_s8(a, vget_high_s8(w), x)
#endif

/* rows (r, r+1) of register w (low half) and (r+2, r+3) (high half) times x, input pairs added */
#define SP_ONE(w, x, lo, hi)                                                                       \
    do {                                                                                           \
        lo = vpadalq_s16(lo, SP_MULL_LO(w, x));                                                    \
        hi = vpadalq_s16(hi, SP_MULL_HI(w, x));                                                    \
    } while (0)
/* the same for two blocks (w0 times x0 plus w1 times x1) through one int16 step */
#define SP_TWO(w0, x0, w1, x1, lo, hi)                                                             \
    do {                                                                                           \
        lo = vpadalq_s16(lo, SP_MLAL_LO(SP_MULL_LO(w0, x0), w1, x1));                              \
        hi = vpadalq_s16(hi, SP_MLAL_HI(SP_MULL_HI(w0, x0), w1, x1));                              \
    } while (0)

#endif
