/* The AVX2 block-sparse rows' shared pieces (q8_sparse_avx2.c, q8_spshared_avx2.c): one 32-byte
 * weight load and the exact signed product-accumulate (vpsignb moves x's sign onto W, vpmaddubsw
 * of |x| never saturates, vpmaddwd with ones widens to int32). Include after <immintrin.h> and
 * RNC_SAI. */
#ifndef RNC_Q8_SPARSE_AVX2_H
#define RNC_Q8_SPARSE_AVX2_H

#define SP_LD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

RNC_SAI __m256i sp_mac(__m256i acc, __m256i w, __m256i x, __m256i ax, __m256i ones)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x)), ones));
}

#endif
