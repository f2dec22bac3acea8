/* The AVX-512 VNNI block-sparse rows' shared piece (q8_sparse_avx512vnni.c,
 * q8_spshared_avx512vnni.c): an int8 column made unsigned (q ^ 0x80) once into an aligned stack
 * buffer of SP_XBUF bytes, so that each vpdpbusd broadcast is a plain load. Include after
 * <immintrin.h> and RNC_SAI. */
#ifndef RNC_Q8_SPARSE_AVX512VNNI_H
#define RNC_Q8_SPARSE_AVX512VNNI_H

#define SP_XBUF 4096

/* qx[0..kp) = q ^ 0x80 (kp <= SP_XBUF, a multiple of 4; qx 64-aligned) */
RNC_SAI void sp_offset(const int8_t *q, size_t kp, int8_t *qx)
{
    size_t k = 0;
    for (; k + 64 <= kp; k += 64)
        _mm512_store_si512((void *)(qx + k), _mm512_xor_si512(_mm512_loadu_si512((const void *)(q + k)),
                                                               _mm512_set1_epi8((char)0x80)));
    if (k < kp) {
        const __mmask64 mk = ((__mmask64)1 << (kp - k)) - 1;
        _mm512_mask_storeu_epi8(qx + k, mk, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, q + k),
                                                             _mm512_set1_epi8((char)0x80)));
    }
}

#endif
