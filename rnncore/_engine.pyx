# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""Thin binding of the C core (csrc/include/rnncore.h); the public API is rnncore.engine.

Every call into C that computes runs with the GIL released. ``Stream.step(x, out=buf)`` checks
its arrays with a few pointer comparisons on the fast path (float32, C-contiguous, right shape)
and allocates nothing.
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import numpy as np

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
# status, ISA


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + 1e-9 * <double>ts.tv_nsec


cdef str _status_text(rnc_status st):
    return rnc_status_str(st).decode("utf-8", "replace")


cdef int _raise(rnc_status st, str what) except -1:
    raise ValueError(f"{what}: {_status_text(st)} (rnc_status {<int>st})")


def status_str(int code) -> str:
    """The C core's description of a status code."""
    return _status_text(<rnc_status>code)


def isa_name(int isa) -> str:
    cdef const char *name = NULL
    cdef rnc_status st = rnc_isa_name(<rnc_isa>isa, &name)
    if st != RNC_OK:
        _raise(st, f"isa {isa}")
    return name.decode()


def isa_from_name(str name) -> int:
    cdef rnc_isa isa
    cdef bytes b = name.encode()
    cdef rnc_status st = rnc_isa_from_name(b, &isa)
    if st != RNC_OK:
        known = [isa_name(i) for i in range(<int>RNC_ISA_COUNT)]
        raise ValueError(f"isa: expected one of {known}, got {name!r}")
    return <int>isa


def isa_table() -> list:
    """One dict per ISA path the C core knows: name, compiled, cpu_supported, available."""
    cdef int i, comp, cpu, avail
    out = []
    for i in range(<int>RNC_ISA_COUNT):
        rnc_isa_compiled(<rnc_isa>i, &comp)
        rnc_isa_cpu_supported(<rnc_isa>i, &cpu)
        rnc_isa_available(<rnc_isa>i, &avail)
        out.append({"id": i, "name": isa_name(i), "compiled": bool(comp), "cpu_supported": bool(cpu),
                    "available": bool(avail)})
    return out


def isa_best() -> str:
    cdef rnc_isa isa
    cdef rnc_status st = rnc_isa_best(&isa)
    if st != RNC_OK:
        _raise(st, "isa_best")
    return isa_name(<int>isa)


def isa_default() -> str:
    """The path RNNCORE_ISA asks for, or the best one; ValueError if RNNCORE_ISA is unusable."""
    cdef rnc_isa isa
    cdef rnc_status st = rnc_isa_default(&isa)
    if st != RNC_OK:
        _raise(st, "RNNCORE_ISA")
    return isa_name(<int>isa)


# ----------------------------------------------------------------------------------------------
# kernel table and kernel-level entry points (tests, benchmarks)

_OPS = ("gemv", "rnn_step", "gru_step", "lstm_step", "quantize", "gemm_deq", "rowcorr")
_PRECISIONS = ("f32", "q8")
_INPUTS = ("any", "x", "gi")


def kernels() -> list:
    """The C kernel table (csrc/src/kernel_list.h): one dict per row.

    Keys: ``name``, ``op`` (one of ``_OPS``), ``precision``, ``isa``, ``input`` (``"any"``, ``"x"``:
    the input vector given, as in steps and per-step runs; ``"gi"``: its projection given, as in
    whole-sequence runs below 4 sequences), ``corr`` (needs W_hh's row corrections),
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
                    "precision": _PRECISIONS[d.precision] if d.precision < 2 else str(d.precision),
                    "isa": isa_name(d.isa), "input": _INPUTS[d.input] if d.input < 3 else str(d.input),
                    "corr": bool(d.flags & 1), "gru_rb": not (d.flags & 2),
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


# ----------------------------------------------------------------------------------------------
# model and streams


def _aligned_bytes(data) -> cnp.ndarray:
    """A 64-byte aligned, read-only uint8 copy of ``data``."""
    src = np.frombuffer(data, dtype=np.uint8)
    raw = np.empty(src.shape[0] + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    out = raw[off:off + src.shape[0]]
    out[:] = src
    out.flags.writeable = False
    return out


cdef class Model:
    """A validated ``.rnc`` model in the C core (holds an aligned private copy of the bytes)."""

    cdef rnc_model m
    cdef rnc_model_info info
    cdef readonly object buffer
    cdef readonly list layers

    def __cinit__(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"model data: expected bytes, got {type(data).__name__}")
        self.buffer = _aligned_bytes(data)
        cdef cnp.ndarray b = self.buffer
        cdef const void *p = cnp.PyArray_DATA(b)
        cdef size_t n = b.shape[0]
        cdef rnc_status st
        cdef rnc_layer_info li
        cdef uint32_t k
        if n == 0:
            raise ValueError("model data: empty buffer (not an .rnc file)")
        with nogil:
            st = rnc_model_init(&self.m, p, n)
        if st == RNC_E_ISA:
            import os
            _raise(st, f"RNNCORE_ISA={os.environ.get('RNNCORE_ISA')!r} (available: "
                       f"{[t['name'] for t in isa_table() if t['available']]})")
        if st != RNC_OK:
            _raise(st, "invalid .rnc model")
        rnc_model_get_info(&self.m, &self.info)
        self.layers = []
        for k in range(self.info.num_layers):
            rnc_layer_get_info(&self.m, k, &li)
            self.layers.append({"kind": ("rnn_tanh", "rnn_relu", "gru", "lstm")[li.kind],
                                "reset_after": bool(li.reset_after), "directions": li.directions,
                                "input_size": li.input_size, "hidden_size": li.hidden_size,
                                "h_offset": li.h_offset, "c_offset": li.c_offset})

    @property
    def precision(self) -> str:
        return _PRECISIONS[self.info.precision]

    @property
    def uses_ids(self) -> bool:
        return bool(self.info.uses_ids)

    @property
    def input_size(self) -> int:
        return self.info.input_size

    @property
    def output_size(self) -> int:
        return self.info.output_size

    @property
    def bidirectional(self) -> bool:
        return bool(self.info.bidirectional)

    @property
    def num_states(self) -> int:
        return self.info.num_states

    @property
    def embed_num(self) -> int:
        return self.info.embed_num

    @property
    def has_head(self) -> bool:
        return bool(self.info.has_head)

    @property
    def last_step(self) -> bool:
        return bool(self.info.last_step)

    @property
    def model_bytes(self) -> int:
        return self.info.model_bytes

    @property
    def h_floats(self) -> int:
        return self.info.h_floats

    @property
    def c_floats(self) -> int:
        return self.info.c_floats

    def state_bytes(self, size_t batch) -> int:
        cdef size_t n = 0
        cdef rnc_status st = rnc_state_size(&self.m, batch, &n)
        if st != RNC_OK:
            _raise(st, "state_size")
        return n

    @property
    def isa(self) -> str:
        cdef rnc_isa i
        rnc_model_get_isa(&self.m, &i)
        return isa_name(<int>i)

    def set_isa(self, str name):
        """Use the kernels of ISA path ``name`` ("auto": RNNCORE_ISA or the best)."""
        cdef rnc_isa i = RNC_ISA_AUTO if name == "auto" else <rnc_isa><int>isa_from_name(name)
        cdef rnc_status st = rnc_model_set_isa(&self.m, i)
        if st != RNC_OK:
            _raise(st, f"set_isa({name!r})")

    def stream(self, Py_ssize_t batch=1):
        return Stream(self, batch)

    def plan_row(self, int layer, str op, Py_ssize_t batch, str input="x", bint corr=False) -> str:
        """Name of the kernel-table row the model's plan runs: ``layer``'s cell (``op`` its
        ``*_step``, ``input`` ``"x"`` or ``"gi"``) or, with ``layer=-1``, the model-wide ``op``
        (``"gemv"``, ``"gemm_deq"``, ``"quantize"``, ``"rowcorr"``) at ``batch`` rows / columns."""
        cdef size_t row = 0
        cdef uint32_t lay = 0xFFFFFFFF if layer < 0 else <uint32_t>layer
        cdef uint32_t prec = 1 if self.precision == "q8" else 0
        if op not in _OPS:
            raise ValueError(f"op: expected one of {_OPS}, got {op!r}")
        if input not in ("x", "gi"):
            raise ValueError(f"input: expected 'x' or 'gi', got {input!r}")
        if batch < 1:
            raise ValueError(f"batch: expected >= 1, got {batch}")
        cdef rnc_status st = rnc_model_plan_row(&self.m, lay, <uint32_t>_OPS.index(op), prec,
                                                <size_t>batch, 1 if input == "x" else 2, corr, &row)
        if st != RNC_OK:
            _raise(st, f"plan_row({layer}, {op!r}, {batch}, {input!r})")
        return kernels()[row]["name"]


cdef inline bint _fast_f32(object a, Py_ssize_t d0, Py_ssize_t d1) noexcept:
    """True when ``a`` is a C-contiguous float32 ndarray of shape (d0, d1)."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or cnp.PyArray_NDIM(arr) != 2 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        return False
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    return dims[0] == d0 and dims[1] == d1


cdef inline bint _fast_i32(object a, Py_ssize_t d0) noexcept:
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return cnp.PyArray_TYPE(arr) == cnp.NPY_INT32 and cnp.PyArray_NDIM(arr) == 1 \
        and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr) \
        and cnp.PyArray_DIMS(arr)[0] == d0


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return (f"shape {a.shape}, dtype {a.dtype}" + ("" if a.flags.c_contiguous else ", non-contiguous")
                + ("" if a.flags.aligned else ", misaligned"))
    return f"{type(a).__name__}"


def _real_array(x, str name, str want):
    """``x`` as an ndarray of real numbers (float or integer; a TypeError naming ``name`` for
    None, strings, objects, bool or complex)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (also one that requires grad)
        x = x.detach().cpu().numpy()
    a = x if isinstance(x, np.ndarray) else np.asarray(x) if x is not None else None
    if a is None or a.dtype.kind not in "fiu":
        got = _describe(a) if a is not None else "None"
        raise TypeError(f"{name}: expected {want}, got {got}")
    return a


cdef class Stream:
    """A stateful batch of streams of one model: ``y = s.step(x)``; ``s.reset()``; ``s.state``.

    One stream is one mutable state: calling it from two threads at the same time raises a
    ``RuntimeError`` (use one stream per thread; streams of one model run in parallel).
    """

    cdef Model model
    cdef rnc_state st
    cdef object _mem
    cdef readonly Py_ssize_t batch
    cdef Py_ssize_t nin, nout
    cdef bint ids
    cdef bint busy  # set (with the GIL held) while C runs on this state without the GIL

    def __cinit__(self, Model model, Py_ssize_t batch=1):
        if batch < 1:
            raise ValueError(f"batch: expected a positive integer, got {batch}")
        self.model = model
        self.batch = batch
        self.ids = model.info.uses_ids
        self.nin = model.info.input_size
        self.nout = model.info.output_size
        cdef size_t n = 0
        cdef rnc_status st = rnc_state_size(&model.m, <size_t>batch, &n)
        if st != RNC_OK:
            _raise(st, "state_size")
        raw = np.zeros(n + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        self._mem = raw[off:off + n]
        cdef cnp.ndarray mem = self._mem
        st = rnc_state_init(&model.m, <size_t>batch, cnp.PyArray_DATA(mem), n, &self.st)
        if st != RNC_OK:
            _raise(st, "state_init")

    @property
    def engine_model(self) -> Model:
        return self.model

    @property
    def input_shape(self) -> tuple:
        if self.ids:
            return (self.batch,)
        return (self.batch, self.nin)

    @property
    def output_shape(self) -> tuple:
        return (self.batch, self.nout)

    def _coerce_x(self, x):
        if self.ids:
            a = np.asarray(x)
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"x: expected integer token ids of shape ({self.batch},), got {_describe(a)}")
            if a.shape != (self.batch,):
                raise ValueError(f"x: expected token ids of shape ({self.batch},), got {_describe(a)}")
            if a.size and (a.min() < 0 or a.max() >= self.model.info.embed_num):
                raise ValueError(f"x: token ids must be in [0, {self.model.info.embed_num}), got "
                                 f"[{a.min()}, {a.max()}]")
            return np.require(a, np.int32, ("C", "A"))
        xa = _real_array(x, "x", f"a float32 array of shape ({self.batch}, {self.nin})")
        if xa.shape != (self.batch, self.nin):
            raise ValueError(f"x: expected shape ({self.batch}, {self.nin}) (batch, input_size), got "
                             f"{_describe(xa)}")
        return np.require(xa, np.float32, ("C", "A"))

    def step(self, x, out=None):
        """One time step for every stream of the batch.

        Parameters
        ----------
        x : (batch, input_size) float32 (other float arrays are converted), or (batch,) integer
            token ids for a model with an embedding
        out : optional (batch, output_size) float32 C-contiguous array written in place;
            with it (and a float32 C-contiguous ``x``) the call allocates nothing

        Returns
        -------
        (batch, output_size) float32: ``out`` if given
        """
        cdef rnc_status st
        cdef bint fast_x = _fast_i32(x, self.batch) if self.ids else _fast_f32(x, self.batch, self.nin)
        if not fast_x:
            x = self._coerce_x(x)
        if out is None:
            out = np.empty((self.batch, self.nout), np.float32)
        elif not _fast_f32(out, self.batch, self.nout) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            raise ValueError(f"out: expected a writable, aligned, C-contiguous float32 array of shape "
                             f"({self.batch}, {self.nout}), got {_describe(out)}")
        cdef void *xp = cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
        if self.busy:
            self._raise_busy()
        self.busy = True
        if self.ids:
            with nogil:
                st = rnc_step_ids(&self.model.m, &self.st, <const int32_t *>xp, yp)
        else:
            with nogil:
                st = rnc_step(&self.model.m, &self.st, <const float *>xp, yp)
        self.busy = False
        if st != RNC_OK:
            self._step_error(st, x)
        return out

    def _step_error(self, int st, x):
        if st == RNC_E_VALUE and not self.ids:
            raise ValueError(f"x: contains NaN or Inf ({_status_text(<rnc_status>st)}); the state is unchanged")
        if st == RNC_E_BIDIRECTIONAL:
            raise ValueError("step: the model has a bidirectional layer; use run() on whole sequences")
        _raise(<rnc_status>st, "step")

    def _raise_busy(self):
        raise RuntimeError("stream: already running in another thread; a stream is one state and "
                           "takes one call at a time (give each thread its own engine.stream())")

    def reset(self):
        """Zero every h (and c)."""
        if self.busy:
            self._raise_busy()
        rnc_state_reset(&self.st)

    def run(self, X, lengths=None):
        """Whole sequences from the current state; the final state stays in the stream.

        X : (batch, T, input_size) floats, or (batch, T) token ids; lengths : (batch,) ints in
        [0, T] or None. Returns (batch, T, output_size) float32, or (batch, output_size) for a
        model with last-step pooling.
        """
        cdef Py_ssize_t b = self.batch, t
        if self.ids:
            a = np.asarray(X)
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"X: expected integer token ids of shape ({b}, T), got {_describe(a)}")
            if a.ndim != 2 or a.shape[0] != b:
                raise ValueError(f"X: expected integer token ids of shape ({b}, T), got {_describe(a)}")
            if a.size and (a.min() < 0 or a.max() >= self.model.info.embed_num):
                raise ValueError(f"X: token ids must be in [0, {self.model.info.embed_num}), got "
                                 f"[{a.min()}, {a.max()}]")
            xa = np.require(a, np.int32, ("C", "A"))
        else:
            xr = _real_array(X, "X", f"a float array (batch, T, {self.nin})")
            if xr.ndim != 3 or xr.shape[0] != b or xr.shape[2] != self.nin:
                raise ValueError(f"X: expected shape ({b}, T, {self.nin}) (batch, time, features), "
                                 f"got {_describe(xr)}")
            xa = np.require(xr, np.float32, ("C", "A"))
        t = xa.shape[1]
        cdef cnp.ndarray la
        cdef const int32_t *lp = NULL
        if lengths is not None:
            lraw = np.asarray(lengths)
            if not np.issubdtype(lraw.dtype, np.integer) or lraw.shape != (b,):
                raise ValueError(f"lengths: expected {b} integers (one per sequence), got {_describe(lraw)}")
            if b and (lraw.min() < 0 or lraw.max() > t):
                raise ValueError(f"lengths: expected values in [0, {t}], got [{lraw.min()}, {lraw.max()}]")
            la = np.require(lraw, np.int32, ("C", "A"))
            lp = <const int32_t *>cnp.PyArray_DATA(la)
        # rnc_run writes every element of y (zeros past the lengths included): np.empty, not
        # np.zeros, whose calloc clears a reused block first (6.5 MB at B=64, T=100, H=256)
        if self.model.info.last_step:
            y = np.empty((b, self.nout), np.float32)
        else:
            y = np.empty((b, t, self.nout), np.float32)
        cdef size_t nscratch = 0
        cdef rnc_status st = rnc_run_scratch_size(&self.model.m, <size_t>b, <size_t>t, &nscratch)
        if st != RNC_OK:
            _raise(st, "run_scratch_size")
        raw = np.empty(nscratch + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        cdef cnp.ndarray scratch = raw[off:off + nscratch]
        cdef cnp.ndarray xarr = xa, yarr = y
        cdef void *sp = cnp.PyArray_DATA(scratch)
        cdef void *xp = cnp.PyArray_DATA(xarr)
        cdef float *yp = <float *>cnp.PyArray_DATA(yarr)
        if self.busy:
            self._raise_busy()
        self.busy = True
        if self.ids:
            with nogil:
                st = rnc_run_ids(&self.model.m, &self.st, <const int32_t *>xp, lp, <size_t>t, yp, sp,
                                 nscratch)
        else:
            with nogil:
                st = rnc_run(&self.model.m, &self.st, <const float *>xp, lp, <size_t>t, yp, sp, nscratch)
        self.busy = False
        if st != RNC_OK:
            if st == RNC_E_VALUE and not self.ids:
                raise ValueError("X: contains NaN or Inf within the lengths (the state is unchanged; "
                                 "padding past a length may be anything)")
            _raise(st, "run")
        return y

    # -- state ------------------------------------------------------------------------------
    def raw_state(self):
        """Copies of the flat C state arrays ``(h, c)`` (c is None without an LSTM layer)."""
        if self.busy:
            self._raise_busy()
        h = np.array(<float[:self.st.h_count]>self.st.h) if self.st.h_count else np.zeros(0, np.float32)
        c = np.array(<float[:self.st.c_count]>self.st.c) if self.st.c_count else None
        return h, c

    def set_raw_state(self, h, c=None):
        cdef cnp.ndarray ha = np.require(h, np.float32, ("C", "A")).reshape(-1)
        cdef size_t i
        if <size_t>ha.shape[0] != self.st.h_count:
            raise ValueError(f"state h: expected {self.st.h_count} floats, got {ha.shape[0]}")
        if not np.all(np.isfinite(ha)):
            raise ValueError("state h: contains NaN or Inf")
        cdef cnp.ndarray ca
        if self.st.c_count:
            if c is None:
                raise ValueError("state c: this model has LSTM layers; c is required")
            ca = np.require(c, np.float32, ("C", "A")).reshape(-1)
            if <size_t>ca.shape[0] != self.st.c_count:
                raise ValueError(f"state c: expected {self.st.c_count} floats, got {ca.shape[0]}")
            if not np.all(np.isfinite(ca)):
                raise ValueError("state c: contains NaN or Inf")
        if self.busy:
            self._raise_busy()
        cdef float *hp = <float *>cnp.PyArray_DATA(ha)
        for i in range(self.st.h_count):
            self.st.h[i] = hp[i]
        cdef float *cp
        if self.st.c_count:
            cp = <float *>cnp.PyArray_DATA(ca)
            for i in range(self.st.c_count):
                self.st.c[i] = cp[i]

    def time_step(self, x, out, long long n) -> float:
        """Seconds per ``rnc_step`` call, timed over ``n`` calls in a C loop (no Python)."""
        if self.ids:
            raise ValueError("time_step: float-input models only")
        if n < 1:
            raise ValueError(f"n: expected a positive number of steps, got {n}")
        if not _fast_f32(x, self.batch, self.nin) or not _fast_f32(out, self.batch, self.nout):
            raise ValueError("time_step: x and out must be C-contiguous float32 of the step shapes")
        cdef const float *xp = <const float *>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef long long i
        cdef double t0, t1
        cdef rnc_status st = RNC_OK
        if self.busy:
            self._raise_busy()
        self.busy = True
        with nogil:
            t0 = _now()
            for i in range(n):
                st = rnc_step(&self.model.m, &self.st, xp, yp)
            t1 = _now()
        self.busy = False
        if st != RNC_OK:
            _raise(st, "time_step")
        return (t1 - t0) / n
