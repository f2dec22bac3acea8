/* The q8 activation quantiser on aarch64 Advanced SIMD: util.c's rnc_q8_quantize_generic, bit for
 * bit (docs/q8-contract.md), four floats per instruction where the portable loop converts one
 * at a time (~9 instructions per element under gcc -O3). Included by the aarch64 NEON and
 * NEONDOT cell files (their RNC_QUANTIZE_ROW hook) and by cells_neon.c for the QUANTIZE row.
 *
 * aarch64 only: its Advanced SIMD float operations are IEEE (subnormals kept with the default
 * FPCR), as the scalar code's; ARMv7 NEON flushes subnormals to zero, which would change
 * v * inv for a subnormal v and an infinite inverse, so armhf keeps the portable quantiser.
 *   max |v| ignoring NaN: on the bit patterns (|v| as an integer, NaN patterns > 0x7f800000 count
 *   as 0), the integer order being the float order for non-negative floats and +Inf;
 *   p = v * inv (float32), NaN -> 0, clamp to +-127, round half to even: fcvtns (to nearest, ties
 *   to even, whatever FPCR's rounding mode), the value the scalar code's adding and subtracting
 *   of 1.5 * 2^23 gives in the default mode, for |p| <= 127. */
#ifndef RNC_QUANTIZE_NEON_H
#define RNC_QUANTIZE_NEON_H
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

static inline void rnc_neon_quantize_row(const float *v, size_t n, size_t npad, float static_scale,
                                         float static_inv, int8_t *q, float *scale)
{
    float inv, s;
    size_t i;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = static_inv > 0.0f ? static_inv : 1.0f / static_scale; /* a caller without it */
    } else {
        uint32x4_t mu = vdupq_n_u32(0);
        const uint32x4_t absmask = vdupq_n_u32(0x7fffffffu), inf = vdupq_n_u32(0x7f800000u);
        for (i = 0; i + 4 <= n; i += 4) {
            const uint32x4_t u = vandq_u32(vreinterpretq_u32_f32(vld1q_f32(v + i)), absmask);
            mu = vmaxq_u32(mu, vbicq_u32(u, vcgtq_u32(u, inf))); /* NaN patterns -> 0 */
        }
        uint32_t m_bits = vmaxvq_u32(mu);
        for (; i < n; ++i) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            u &= 0x7fffffffu;
            u = u > 0x7f800000u ? 0 : u;
            m_bits = m_bits > u ? m_bits : u;
        }
        float m;
        memcpy(&m, &m_bits, 4);
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    const float32x4_t vinv = vdupq_n_f32(inv), hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
    for (i = 0; i + 8 <= n; i += 8) {
        int32x4_t r[2];
        for (int j = 0; j < 2; ++j) {
            float32x4_t p = vmulq_f32(vld1q_f32(v + i + 4 * j), vinv);
            p = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(p), vceqq_f32(p, p))); /* NaN -> 0 */
            p = vmaxq_f32(vminq_f32(p, hi), lo);
            r[j] = vcvtnq_s32_f32(p); /* fcvtns: to nearest, ties to even = the scalar rounding */
        }
        const int16x8_t h16 = vcombine_s16(vmovn_s32(r[0]), vmovn_s32(r[1]));
        vst1_s8(q + i, vmovn_s16(h16));
    }
    for (; i < n; ++i) { /* the generic loop's operations, one element */
        float p = v[i] * inv;
        p = p == p ? p : 0.0f;
        p = p > 127.0f ? 127.0f : p;
        p = p < -127.0f ? -127.0f : p;
        const float t = p + 12582912.0f;
        q[i] = (int8_t)(int32_t)(t - 12582912.0f);
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
#endif
