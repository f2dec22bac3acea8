/* Shared helpers: status strings, CRC32, activation quantisation, public kernel entry points. */
#include <string.h>

#include "internal.h"
#include "kernels/activations.h"
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

const char *rnc_status_str(rnc_status s)
{
    switch (s) {
    case RNC_OK: return "ok";
    case RNC_E_ARG: return "invalid argument (NULL pointer, zero size or bad enum)";
    case RNC_E_MAGIC: return "not an .rnc model (bad magic)";
    case RNC_E_VERSION: return "unsupported .rnc format version";
    case RNC_E_TRUNCATED: return "model buffer truncated";
    case RNC_E_CHECKSUM: return "model checksum mismatch (corrupted file)";
    case RNC_E_CORRUPT: return "inconsistent model file (size, offset, count or enum)";
    case RNC_E_UNSUPPORTED: return "not supported by the C core";
    case RNC_E_ALIGN: return "buffer not aligned as required";
    case RNC_E_ISA: return "ISA path unknown, not compiled in, or not supported by this CPU";
    case RNC_E_SIZE: return "caller memory too small or size overflow";
    case RNC_E_VALUE: return "invalid value (NaN/Inf input, token id out of range, bad length)";
    case RNC_E_BIDIRECTIONAL: return "step() needs a unidirectional model (use run())";
    case RNC_E_STATE: return "state not initialised for this model";
    case RNC_E_NONFINITE: return "state or output became NaN/Inf (overflow)";
    case RNC_NO_OUTPUT: return "no output at this step (a strided record over time)";
    default: return "unknown status";
    }
}

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xEE0E612Cu, 0x990951BAu, 0x076DC419u, 0x706AF48Fu,
    0xE963A535u, 0x9E6495A3u, 0x0EDB8832u, 0x79DCB8A4u, 0xE0D5E91Eu, 0x97D2D988u,
    0x09B64C2Bu, 0x7EB17CBDu, 0xE7B82D07u, 0x90BF1D91u, 0x1DB71064u, 0x6AB020F2u,
    0xF3B97148u, 0x84BE41DEu, 0x1ADAD47Du, 0x6DDDE4EBu, 0xF4D4B551u, 0x83D385C7u,
    0x136C9856u, 0x646BA8C0u, 0xFD62F97Au, 0x8A65C9ECu, 0x14015C4Fu, 0x63066CD9u,
    0xFA0F3D63u, 0x8D080DF5u, 0x3B6E20C8u, 0x4C69105Eu, 0xD56041E4u, 0xA2677172u,
    0x3C03E4D1u, 0x4B04D447u, 0xD20D85FDu, 0xA50AB56Bu, 0x35B5A8FAu, 0x42B2986Cu,
    0xDBBBC9D6u, 0xACBCF940u, 0x32D86CE3u, 0x45DF5C75u, 0xDCD60DCFu, 0xABD13D59u,
    0x26D930ACu, 0x51DE003Au, 0xC8D75180u, 0xBFD06116u, 0x21B4F4B5u, 0x56B3C423u,
    0xCFBA9599u, 0xB8BDA50Fu, 0x2802B89Eu, 0x5F058808u, 0xC60CD9B2u, 0xB10BE924u,
    0x2F6F7C87u, 0x58684C11u, 0xC1611DABu, 0xB6662D3Du, 0x76DC4190u, 0x01DB7106u,
    0x98D220BCu, 0xEFD5102Au, 0x71B18589u, 0x06B6B51Fu, 0x9FBFE4A5u, 0xE8B8D433u,
    0x7807C9A2u, 0x0F00F934u, 0x9609A88Eu, 0xE10E9818u, 0x7F6A0DBBu, 0x086D3D2Du,
    0x91646C97u, 0xE6635C01u, 0x6B6B51F4u, 0x1C6C6162u, 0x856530D8u, 0xF262004Eu,
    0x6C0695EDu, 0x1B01A57Bu, 0x8208F4C1u, 0xF50FC457u, 0x65B0D9C6u, 0x12B7E950u,
    0x8BBEB8EAu, 0xFCB9887Cu, 0x62DD1DDFu, 0x15DA2D49u, 0x8CD37CF3u, 0xFBD44C65u,
    0x4DB26158u, 0x3AB551CEu, 0xA3BC0074u, 0xD4BB30E2u, 0x4ADFA541u, 0x3DD895D7u,
    0xA4D1C46Du, 0xD3D6F4FBu, 0x4369E96Au, 0x346ED9FCu, 0xAD678846u, 0xDA60B8D0u,
    0x44042D73u, 0x33031DE5u, 0xAA0A4C5Fu, 0xDD0D7CC9u, 0x5005713Cu, 0x270241AAu,
    0xBE0B1010u, 0xC90C2086u, 0x5768B525u, 0x206F85B3u, 0xB966D409u, 0xCE61E49Fu,
    0x5EDEF90Eu, 0x29D9C998u, 0xB0D09822u, 0xC7D7A8B4u, 0x59B33D17u, 0x2EB40D81u,
    0xB7BD5C3Bu, 0xC0BA6CADu, 0xEDB88320u, 0x9ABFB3B6u, 0x03B6E20Cu, 0x74B1D29Au,
    0xEAD54739u, 0x9DD277AFu, 0x04DB2615u, 0x73DC1683u, 0xE3630B12u, 0x94643B84u,
    0x0D6D6A3Eu, 0x7A6A5AA8u, 0xE40ECF0Bu, 0x9309FF9Du, 0x0A00AE27u, 0x7D079EB1u,
    0xF00F9344u, 0x8708A3D2u, 0x1E01F268u, 0x6906C2FEu, 0xF762575Du, 0x806567CBu,
    0x196C3671u, 0x6E6B06E7u, 0xFED41B76u, 0x89D32BE0u, 0x10DA7A5Au, 0x67DD4ACCu,
    0xF9B9DF6Fu, 0x8EBEEFF9u, 0x17B7BE43u, 0x60B08ED5u, 0xD6D6A3E8u, 0xA1D1937Eu,
    0x38D8C2C4u, 0x4FDFF252u, 0xD1BB67F1u, 0xA6BC5767u, 0x3FB506DDu, 0x48B2364Bu,
    0xD80D2BDAu, 0xAF0A1B4Cu, 0x36034AF6u, 0x41047A60u, 0xDF60EFC3u, 0xA867DF55u,
    0x316E8EEFu, 0x4669BE79u, 0xCB61B38Cu, 0xBC66831Au, 0x256FD2A0u, 0x5268E236u,
    0xCC0C7795u, 0xBB0B4703u, 0x220216B9u, 0x5505262Fu, 0xC5BA3BBEu, 0xB2BD0B28u,
    0x2BB45A92u, 0x5CB36A04u, 0xC2D7FFA7u, 0xB5D0CF31u, 0x2CD99E8Bu, 0x5BDEAE1Du,
    0x9B64C2B0u, 0xEC63F226u, 0x756AA39Cu, 0x026D930Au, 0x9C0906A9u, 0xEB0E363Fu,
    0x72076785u, 0x05005713u, 0x95BF4A82u, 0xE2B87A14u, 0x7BB12BAEu, 0x0CB61B38u,
    0x92D28E9Bu, 0xE5D5BE0Du, 0x7CDCEFB7u, 0x0BDBDF21u, 0x86D3D2D4u, 0xF1D4E242u,
    0x68DDB3F8u, 0x1FDA836Eu, 0x81BE16CDu, 0xF6B9265Bu, 0x6FB077E1u, 0x18B74777u,
    0x88085AE6u, 0xFF0F6A70u, 0x66063BCAu, 0x11010B5Cu, 0x8F659EFFu, 0xF862AE69u,
    0x616BFFD3u, 0x166CCF45u, 0xA00AE278u, 0xD70DD2EEu, 0x4E048354u, 0x3903B3C2u,
    0xA7672661u, 0xD06016F7u, 0x4969474Du, 0x3E6E77DBu, 0xAED16A4Au, 0xD9D65ADCu,
    0x40DF0B66u, 0x37D83BF0u, 0xA9BCAE53u, 0xDEBB9EC5u, 0x47B2CF7Fu, 0x30B5FFE9u,
    0xBDBDF21Cu, 0xCABAC28Au, 0x53B39330u, 0x24B4A3A6u, 0xBAD03605u, 0xCDD70693u,
    0x54DE5729u, 0x23D967BFu, 0xB3667A2Eu, 0xC4614AB8u, 0x5D681B02u, 0x2A6F2B94u,
    0xB40BBE37u, 0xC30C8EA1u, 0x5A05DF1Bu, 0x2D02EF8Du,
};

rnc_status rnc_crc32(const void *data, size_t len, uint32_t *crc)
{
    if ((!data && len) || !crc) return RNC_E_ARG;
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; ++i) c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    *crc = c ^ 0xFFFFFFFFu;
    return RNC_OK;
}

int rnc__all_finite(const float *v, size_t n)
{
    /* v[i] is NaN or Inf iff its exponent bits are all ones: one exponent step added to them then
     * carries into bit 31, which it does for no finite value (0xFE: 0x7F000000 + 0x00800000).
     * An OR of those sums: an AND, an add and an OR per element, which vectorises with baseline
     * SSE2 and NEON alike (no compare, no unsigned max) */
#if defined(__aarch64__) && defined(__ARM_NEON)
    /* aarch64, 4 floats or more: a + x * 0 (one fused multiply-add per 4 floats) stays +-0 for
     * every finite x and becomes NaN for NaN and +-Inf (a sum of zeros cannot overflow); the
     * last 1..3 floats are checked with the 4 that end at v[n - 1] */
    if (n >= 4) {
        const float32x4_t zero = vdupq_n_f32(0.0f);
        float32x4_t a0 = zero, a1 = zero;
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const float32x4x4_t x = vld1q_f32_x4(v + i);
            a0 = vfmaq_f32(vfmaq_f32(a0, x.val[0], zero), x.val[1], zero);
            a1 = vfmaq_f32(vfmaq_f32(a1, x.val[2], zero), x.val[3], zero);
        }
        for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(v + i), zero);
        if (i < n) a0 = vfmaq_f32(a0, vld1q_f32(v + n - 4), zero);
        a0 = vaddq_f32(a0, a1);
        return vminvq_u32(vceqq_f32(a0, a0)) != 0; /* no NaN lane */
    }
#endif
    uint32_t acc = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        acc |= (u & 0x7F800000u) + 0x00800000u;
    }
    return !(acc & 0x80000000u);
}

void rnc_q8_quantize_generic(const float *v, size_t n, size_t npad, float static_scale,
                             float static_inv, int8_t *q, float *scale)
{
    float inv, s;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = static_inv > 0.0f ? static_inv : 1.0f / static_scale; /* a caller without it */
    } else {
        /* max |v| ignoring NaN, on the bit patterns: for non-negative floats (and +Inf) the
         * integer order is the float order; NaN patterns (> 0x7f800000) count as 0. Written so
         * that compilers vectorise it. */
        int32_t mu = 0;
        for (size_t i = 0; i < n; ++i) {
            int32_t u;
            memcpy(&u, &v[i], 4);
            u &= 0x7fffffff;
            u = u > 0x7f800000 ? 0 : u;
            mu = mu > u ? mu : u;
        }
        float m;
        memcpy(&m, &mu, 4);
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    for (size_t i = 0; i < n; ++i) {
        float p = v[i] * inv;
        p = p == p ? p : 0.0f;           /* NaN (0 * inf) -> 0 */
        p = p > 127.0f ? 127.0f : p;
        p = p < -127.0f ? -127.0f : p;
        q[i] = (int8_t)(int32_t)rnc_round_even(p);
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

rnc_status rnc_quantize_q8(const float *v, size_t n, float static_scale, int8_t *q, float *scale)
{
    if ((!v && n) || (!q && n) || !scale) return RNC_E_ARG;
    if (!(static_scale >= 0.0f) || !rnc__all_finite(&static_scale, 1)) return RNC_E_ARG;
    if (!rnc__all_finite(v, n)) return RNC_E_VALUE;
    rnc_q8_quantize_generic(v, n, n, static_scale, static_scale > 0.0f ? 1.0f / static_scale : 0.0f,
                            q, scale);
    return RNC_OK;
}

rnc_status rnc_fast_tanh(const float *x, size_t n, float *y)
{
    if ((!x || !y) && n) return RNC_E_ARG;
    for (size_t i = 0; i < n; ++i) y[i] = rnc_tanhf(x[i]);
    return RNC_OK;
}

rnc_status rnc_fast_sigmoid(const float *x, size_t n, float *y)
{
    if ((!x || !y) && n) return RNC_E_ARG;
    for (size_t i = 0; i < n; ++i) y[i] = rnc_sigmoidf(x[i]);
    return RNC_OK;
}

static rnc_status gemm_row(int op_prec, rnc_isa isa, int *row)
{
    if ((unsigned)isa >= RNC_ISA_COUNT) return RNC_E_ISA;
    const int k = rnc__find_kernel(RNC_OP_GEMV, op_prec, isa);
    if (k < 0 || !rnc__cpu_supports(isa)) return RNC_E_ISA;
    *row = k;
    return RNC_OK;
}

rnc_status rnc_kernel_q8_gemv(rnc_isa isa, const int8_t *packed, size_t rp, size_t kp,
                              const int8_t *xq, size_t batch, int32_t *acc)
{
    int k;
    if (!packed || !xq || !acc || !rp || !kp || !batch || rp % 16 || kp % 4) return RNC_E_ARG;
    if (rp > 0x7FFFFFFF || kp > RNC_Q8_MAX_K || batch > 0x7FFFFFFF) return RNC_E_SIZE;
    rnc_status st = gemm_row(RNC_Q8, isa, &k);
    if (st != RNC_OK) return st;
    rnc__kernels[k].fn.gemm_q8(packed, (int)rp, (int)kp, (int)batch, xq, (int)kp, acc, (int)rp);
    return RNC_OK;
}

rnc_status rnc_kernel_f32_gemv(rnc_isa isa, const float *packed, size_t rp, size_t k_in,
                               const float *x, size_t batch, float *y)
{
    int k;
    if (!packed || !x || !y || !rp || !k_in || !batch || rp % 16) return RNC_E_ARG;
    if (rp > 0x7FFFFFFF || k_in > 0x7FFFFFFF || batch > 0x7FFFFFFF) return RNC_E_SIZE;
    rnc_status st = gemm_row(RNC_F32, isa, &k);
    if (st != RNC_OK) return st;
    rnc__kernels[k].fn.gemm_f32(packed, (int)rp, (int)k_in, (int)batch, x, (int)k_in, y, (int)rp);
    return RNC_OK;
}
