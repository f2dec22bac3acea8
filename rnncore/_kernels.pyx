# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""The C core's kernel table and kernel-level entry points (csrc/include/rnncore.h), and this
machine's peak multiply-accumulate rates: for the tests and benchmarks, not the public API.

Each call into C that computes runs with the GIL released.
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, uint32_t

from rnncore._engine cimport *

import numpy as np

from rnncore._engine import _OPS, _PRECISIONS, isa_from_name, isa_name

cnp.import_array()

cdef extern from *:
    """
    /* Peak multiply-accumulate loops for the benchmarks (the machine's floor, measured in the
     * same run as the kernels). Each keeps 8-10 independent accumulator chains busy with operands
     * loaded from an L1-resident buffer; the asm memory barrier stops the compiler hoisting the
     * loop-invariant products. Returns the number of MACs done (0 when the ISA is not built). */
    #include <stdint.h>
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    __attribute__((target("avx2,fma")))
    static long long rncpy_peak_i8_avx2(long long iters, int32_t *sink) {
        static __attribute__((aligned(64))) int8_t buf[8 * 32];
        __m256i one = _mm256_set1_epi16(1), x = _mm256_set1_epi8(3);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < 8 * 32; j++) buf[j] = (int8_t)(j % 7 - 3);
        for (long long i = 0; i < iters; i++) {
            __asm__ volatile("" ::: "memory");
    #define RNCPY_I8(acc, j) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, \\
                _mm256_load_si256((const __m256i *)(buf + 32 * (j)))), one))
            RNCPY_I8(a0, 0); RNCPY_I8(a1, 1); RNCPY_I8(a2, 2); RNCPY_I8(a3, 3);
            RNCPY_I8(a4, 4); RNCPY_I8(a5, 5); RNCPY_I8(a6, 6); RNCPY_I8(a7, 7);
        }
        a0 = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                              _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
        *sink = _mm256_extract_epi32(a0, 0);
        return iters * 8 * 32;
    }
    __attribute__((target("avx2,fma")))
    static long long rncpy_peak_f32_avx2(long long iters, float *sink) {
        static __attribute__((aligned(64))) float buf[10 * 8];
        __m256 x = _mm256_set1_ps(1e-3f);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
               a8 = a0, a9 = a0;
        for (int j = 0; j < 10 * 8; j++) buf[j] = (float)(j % 5) * 0.25f;
        for (long long i = 0; i < iters; i++) {
            __asm__ volatile("" ::: "memory");
    #define RNCPY_F(acc, j) acc = _mm256_fmadd_ps(_mm256_load_ps(buf + 8 * (j)), x, acc)
            RNCPY_F(a0, 0); RNCPY_F(a1, 1); RNCPY_F(a2, 2); RNCPY_F(a3, 3); RNCPY_F(a4, 4);
            RNCPY_F(a5, 5); RNCPY_F(a6, 6); RNCPY_F(a7, 7); RNCPY_F(a8, 8); RNCPY_F(a9, 9);
        }
        a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
                                         _mm256_add_ps(a8, a9)));
        *sink = _mm256_cvtss_f32(a0);
        return iters * 10 * 8;
    }
    __attribute__((target("avx2,fma")))
    static long long rncpy_peak_f32_avx2_reg(long long iters, float *sink) {
        /* register-only variant: acc = acc * m + c (loop-carried, so nothing can be hoisted) */
        __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);  /* not 1.0: fma(a, 1, c) may become an add */
        /* distinct starting values: identical chains could be merged by the compiler */
        __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
               a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
               a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
               a9 = _mm256_set1_ps(0.9f), a10 = _mm256_set1_ps(1.1f), a11 = _mm256_set1_ps(1.2f);
        for (long long i = 0; i < iters; i++) {
    #define RNCPY_R(acc) acc = _mm256_fmadd_ps(acc, m, c)
            RNCPY_R(a0); RNCPY_R(a1); RNCPY_R(a2); RNCPY_R(a3); RNCPY_R(a4); RNCPY_R(a5);
            RNCPY_R(a6); RNCPY_R(a7); RNCPY_R(a8); RNCPY_R(a9); RNCPY_R(a10); RNCPY_R(a11);
        }
        a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
                                         _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11))));
        *sink = _mm256_cvtss_f32(a0);
        return iters * 12 * 8;
    }
    __attribute__((target("avx512f,avx512bw,avx512vnni")))
    static long long rncpy_peak_i8_avx512vnni(long long iters, int32_t *sink) {
        static __attribute__((aligned(64))) int8_t buf[8 * 64];
        __m512i x = _mm512_set1_epi8(3);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < 8 * 64; j++) buf[j] = (int8_t)(j % 7 - 3);
        for (long long i = 0; i < iters; i++) {
            __asm__ volatile("" ::: "memory");
    #define RNCPY_V(acc, j) acc = _mm512_dpbusd_epi32(acc, x, _mm512_load_si512((const void *)(buf + 64 * (j))))
            RNCPY_V(a0, 0); RNCPY_V(a1, 1); RNCPY_V(a2, 2); RNCPY_V(a3, 3);
            RNCPY_V(a4, 4); RNCPY_V(a5, 5); RNCPY_V(a6, 6); RNCPY_V(a7, 7);
        }
        a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                              _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
        *sink = _mm512_reduce_add_epi32(a0);
        return iters * 8 * 64;
    }
    __attribute__((target("avx512f,avx512bw")))
    static long long rncpy_peak_i8_avx512(long long iters, int32_t *sink) {
        /* AVX-512BW without VNNI: vpmaddubsw + vpmaddwd + vpaddd on zmm = 64 MACs */
        static __attribute__((aligned(64))) int8_t buf[8 * 64];
        __m512i one = _mm512_set1_epi16(1), x = _mm512_set1_epi8(3);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < 8 * 64; j++) buf[j] = (int8_t)(j % 7 - 3);
        for (long long i = 0; i < iters; i++) {
            __asm__ volatile("" ::: "memory");
    #define RNCPY_W(acc, j) acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(x, \
                _mm512_load_si512((const void *)(buf + 64 * (j)))), one))
            RNCPY_W(a0, 0); RNCPY_W(a1, 1); RNCPY_W(a2, 2); RNCPY_W(a3, 3);
            RNCPY_W(a4, 4); RNCPY_W(a5, 5); RNCPY_W(a6, 6); RNCPY_W(a7, 7);
        }
        a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                              _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
        *sink = _mm512_reduce_add_epi32(a0);
        return iters * 8 * 64;
    }
    __attribute__((target("avx512f")))
    static long long rncpy_peak_f32_avx512_reg(long long iters, float *sink) {
        __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
        __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f),
               a3 = _mm512_set1_ps(0.3f), a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f),
               a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f), a8 = _mm512_set1_ps(0.8f),
               a9 = _mm512_set1_ps(0.9f), a10 = _mm512_set1_ps(1.1f), a11 = _mm512_set1_ps(1.2f);
        for (long long i = 0; i < iters; i++) {
    #define RNCPY_S(acc) acc = _mm512_fmadd_ps(acc, m, c)
            RNCPY_S(a0); RNCPY_S(a1); RNCPY_S(a2); RNCPY_S(a3); RNCPY_S(a4); RNCPY_S(a5);
            RNCPY_S(a6); RNCPY_S(a7); RNCPY_S(a8); RNCPY_S(a9); RNCPY_S(a10); RNCPY_S(a11);
        }
        a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
                                         _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11))));
        *sink = _mm512_reduce_add_ps(a0);
        return iters * 12 * 16;
    }
    __attribute__((target("avx512f")))
    static long long rncpy_peak_f32_avx512(long long iters, float *sink) {
        static __attribute__((aligned(64))) float buf[10 * 16];
        __m512 x = _mm512_set1_ps(1e-3f);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
               a8 = a0, a9 = a0;
        for (int j = 0; j < 10 * 16; j++) buf[j] = (float)(j % 5) * 0.25f;
        for (long long i = 0; i < iters; i++) {
            __asm__ volatile("" ::: "memory");
    #define RNCPY_G(acc, j) acc = _mm512_fmadd_ps(_mm512_load_ps(buf + 16 * (j)), x, acc)
            RNCPY_G(a0, 0); RNCPY_G(a1, 1); RNCPY_G(a2, 2); RNCPY_G(a3, 3); RNCPY_G(a4, 4);
            RNCPY_G(a5, 5); RNCPY_G(a6, 6); RNCPY_G(a7, 7); RNCPY_G(a8, 8); RNCPY_G(a9, 9);
        }
        a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
                                         _mm512_add_ps(a8, a9)));
        *sink = _mm512_reduce_add_ps(a0);
        return iters * 10 * 16;
    }
    #define RNCPY_HAVE_X86 1
    #else
    static long long rncpy_peak_i8_avx2(long long iters, int32_t *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_f32_avx2(long long iters, float *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_i8_avx512vnni(long long iters, int32_t *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_f32_avx512(long long iters, float *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_f32_avx2_reg(long long iters, float *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_i8_avx512(long long iters, int32_t *sink) { (void)iters; *sink = 0; return 0; }
    static long long rncpy_peak_f32_avx512_reg(long long iters, float *sink) { (void)iters; *sink = 0; return 0; }
    #define RNCPY_HAVE_X86 0
    #endif
    """
    long long rncpy_peak_i8_avx2(long long iters, int32_t *sink) nogil
    long long rncpy_peak_f32_avx2(long long iters, float *sink) nogil
    long long rncpy_peak_i8_avx512vnni(long long iters, int32_t *sink) nogil
    long long rncpy_peak_f32_avx512(long long iters, float *sink) nogil
    long long rncpy_peak_f32_avx2_reg(long long iters, float *sink) nogil
    long long rncpy_peak_i8_avx512(long long iters, int32_t *sink) nogil
    long long rncpy_peak_f32_avx512_reg(long long iters, float *sink) nogil


# ----------------------------------------------------------------------------------------------
# kernel table and kernel-level entry points (tests, benchmarks)

_INPUTS = ("any", "x", "gi")


def kernels() -> list:
    """The C kernel table (csrc/src/kernel_list.h): one dict per row.

    Keys: ``name``, ``op`` (one of ``_OPS``), ``precision``, ``isa``, ``input`` (``"any"``, ``"x"``:
    the input vector given, as in steps and per-step runs; ``"gi"``: its projection given, as in
    whole-sequence runs below 4 sequences), ``sums`` (needs W_hh's kernel sums),
    ``gru_rb`` (serves GRU reset_after=False), ``min_batch``, ``max_batch`` (rows for cells,
    columns for products; ``None`` = unbounded).
    """
    cdef size_t n, i
    cdef rnc_kernel_desc d
    rnc_kernel_count(&n)
    out = []
    for i in range(n):
        st = rnc_kernel_info(i, &d)
        if st != RNC_OK:
            _raise(st, f"kernel_info({i})")
        out.append({"name": d.name.decode(), "op": _OPS[d.op] if d.op < len(_OPS) else str(d.op),
                    "precision": _PRECISIONS[d.precision] if d.precision < len(_PRECISIONS) else str(d.precision),
                    "isa": isa_name(d.isa), "input": _INPUTS[d.input] if d.input < 3 else str(d.input),
                    "sums": bool(d.flags & 1), "gru_rb": not (d.flags & 2),
                    "min_batch": d.min_batch, "max_batch": d.max_batch or None})
    return out


def q8_gemv(str isa, packed, size_t rp, size_t kp, xq):
    """Exact int32 ``acc (B, rp) = Wq @ xq`` with the q8 GEMV kernel of exactly ``isa``.

    packed : (rp*kp,) int8, the packed q8 layout; xq : (B, kp) int8
    """
    cdef cnp.ndarray p = np.ascontiguousarray(packed, dtype=np.int8).reshape(-1)
    cdef cnp.ndarray q = np.ascontiguousarray(xq, dtype=np.int8)
    if p.shape[0] != rp * kp or q.ndim != 2 or q.shape[1] != kp:
        raise ValueError(f"q8_gemv: packed ({rp}*{kp},) and xq (B, {kp}) expected, got "
                         f"{np.shape(packed)} and {np.shape(xq)}")
    cdef size_t b = q.shape[0]
    cdef cnp.ndarray acc = np.zeros((b, rp), np.int32)
    cdef rnc_isa i = <rnc_isa><int>isa_from_name(isa)
    cdef rnc_status st
    with nogil:
        st = rnc_kernel_q8_gemv(i, <const int8_t *>cnp.PyArray_DATA(p), rp, kp,
                                <const int8_t *>cnp.PyArray_DATA(q), b, <int32_t *>cnp.PyArray_DATA(acc))
    if st != RNC_OK:
        _raise(st, f"q8_gemv[{isa}]")
    return acc


def f32_gemv(str isa, packed, size_t rp, size_t k, x):
    """``y (B, rp) = W @ x`` with the f32 GEMV kernel of exactly ``isa``; x : (B, k) float32."""
    cdef cnp.ndarray p = np.ascontiguousarray(packed, dtype=np.float32).reshape(-1)
    cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=np.float32)
    if p.shape[0] != rp * k or xa.ndim != 2 or xa.shape[1] != k:
        raise ValueError(f"f32_gemv: packed ({rp}*{k},) and x (B, {k}) expected, got "
                         f"{np.shape(packed)} and {np.shape(x)}")
    cdef size_t b = xa.shape[0]
    cdef cnp.ndarray y = np.zeros((b, rp), np.float32)
    cdef rnc_isa i = <rnc_isa><int>isa_from_name(isa)
    cdef rnc_status st
    with nogil:
        st = rnc_kernel_f32_gemv(i, <const float *>cnp.PyArray_DATA(p), rp, k,
                                 <const float *>cnp.PyArray_DATA(xa), b, <float *>cnp.PyArray_DATA(y))
    if st != RNC_OK:
        _raise(st, f"f32_gemv[{isa}]")
    return y


def quantize_q8(v, float static_scale=0.0):
    """The C activation quantisation of one vector: ``(q int8 (n,), scale float)``."""
    cdef cnp.ndarray a = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
    cdef size_t n = a.shape[0]
    cdef cnp.ndarray q = np.zeros(n, np.int8)
    cdef float s = 0
    cdef rnc_status st
    with nogil:
        st = rnc_quantize_q8(<const float *>cnp.PyArray_DATA(a), n, static_scale,
                             <int8_t *>cnp.PyArray_DATA(q), &s)
    if st != RNC_OK:
        _raise(st, "quantize_q8")
    return q, np.float32(s)


def fast_tanh(x):
    cdef cnp.ndarray a = np.ascontiguousarray(x, dtype=np.float32)
    cdef cnp.ndarray y = np.empty_like(a)
    cdef size_t n = a.size
    with nogil:
        rnc_fast_tanh(<const float *>cnp.PyArray_DATA(a), n, <float *>cnp.PyArray_DATA(y))
    return y


def fast_sigmoid(x):
    cdef cnp.ndarray a = np.ascontiguousarray(x, dtype=np.float32)
    cdef cnp.ndarray y = np.empty_like(a)
    cdef size_t n = a.size
    with nogil:
        rnc_fast_sigmoid(<const float *>cnp.PyArray_DATA(a), n, <float *>cnp.PyArray_DATA(y))
    return y


def crc32(data) -> int:
    cdef const unsigned char[::1] mv = memoryview(bytes(data))
    cdef uint32_t c = 0
    cdef size_t n = mv.shape[0]
    with nogil:
        rnc_crc32(&mv[0] if n else NULL, n, &c)
    return c


def peak_macs(str kind, double seconds=0.05) -> float:
    """Measured multiply-accumulates per second of a tight loop: kind = "i8_avx2" (vpmaddubsw +
    vpmaddwd + vpaddd, 32 MACs), "f32_avx2" (8-wide FMA), "i8_avx512vnni" (vpdpbusd, 64 MACs),
    "f32_avx512" (16-wide FMA), "f32_avx2_reg" / "f32_avx512_reg" (FMA on registers only),
    "i8_avx512" (vpmaddubsw + vpmaddwd + vpaddd on zmm, 64 MACs). Returns 0.0 when this build
    has no such loop or this CPU cannot run it. Best of the runs."""
    cdef long long iters = 1 << 16, macs = 0
    cdef int32_t si = 0
    cdef float sf = 0
    cdef double t0, t1, best = 0.0
    cdef int which
    which = {"i8_avx2": 0, "f32_avx2": 1, "i8_avx512vnni": 2, "f32_avx512": 3, "f32_avx2_reg": 4,
             "i8_avx512": 5, "f32_avx512_reg": 6}[kind]
    # never run a loop this CPU (or OS) cannot execute: ask the C core's cpuid + XGETBV checks
    need = {0: "avx2", 1: "avx2", 4: "avx2", 2: "avx512vnni", 3: "avx512", 5: "avx512", 6: "avx512"}[which]
    cdef int yes = 0
    if rnc_isa_cpu_supported(<rnc_isa><int>isa_from_name(need), &yes) != RNC_OK or not yes:
        return 0.0
    for rep in range(7):
        with nogil:
            t0 = _now()
            if which == 0:
                macs = rncpy_peak_i8_avx2(iters, &si)
            elif which == 1:
                macs = rncpy_peak_f32_avx2(iters, &sf)
            elif which == 2:
                macs = rncpy_peak_i8_avx512vnni(iters, &si)
            elif which == 4:
                macs = rncpy_peak_f32_avx2_reg(iters, &sf)
            elif which == 5:
                macs = rncpy_peak_i8_avx512(iters, &si)
            elif which == 6:
                macs = rncpy_peak_f32_avx512_reg(iters, &sf)
            else:
                macs = rncpy_peak_f32_avx512(iters, &sf)
            t1 = _now()
        if macs == 0:
            return 0.0
        if t1 - t0 < seconds / 5 and rep < 3:
            iters *= 4
            continue
        best = max(best, macs / (t1 - t0))
    return best
