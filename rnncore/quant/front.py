"""The per-step records of a q8 model in the C core's arithmetic (docs/q8-contract.md, "Per-step
records in a q8 file"): the executable spec of ``csrc/src/model.c``'s front-end in a q8 file.

A step's row ``x (B, F)`` goes through the records in order; each takes and gives float32 rows:

* ``frame_conv`` (int8 weights ``Wq (C_out, C_in/groups, k)``, one float32 scale per output
  channel ``s_w``, float32 bias ``b``): the input row is quantised as ONE vector, exactly as a
  recurrent layer's step input (``q, s_x = quantize_activation(x)``: ``s_x = max|x| / 127``,
  ``q = rint(x * (127 / max|x|))``), the windows are read from the codes (padding: code 0, or the
  mirrored code for reflect padding), the sums are exact int32 and the epilogue is the input
  projection's::

      acc[o, l] = sum_{c, j} Wq[o, c, j] qpad[g(o) C_g + c, l*stride + j*dilation]
      y[o*L_out + l] = float32(acc[o, l]) * (s_x * s_w[o]) + b[o]

* ``frame_conv`` 16 x 16 (``bits = 16``: ``rc.compile(..., "q8", front_bits=16)``;
  :func:`frame_conv_q16`): the same with int16 codes of the row (32767 for 127), int16 weights
  and exact int64 sums;
* ``conv_time`` (a Conv1d over time; int8 weights ``Wq (C_out, C_in/groups, k)``, scales
  ``s_w``, bias ``b``): output ``n`` reads the input with ``left`` zero rows before it and
  ``right`` after it (causal: ``(P, 0)``, ``P = dilation (k - 1)``); the ``k`` taps of every
  channel, ``v[c*k + j] = xpad_{n*stride + j*dilation}[c]``, pad steps zero, are quantised as ONE
  vector (``q, s_x = quantize_activation(v)``: a zero is code 0, the scale that of the real taps;
  a tap that is not finite is refused), at stride ``s`` only for the outputs ``n`` (the steps that
  complete a window at the stride), then per group::

      acc[o] = sum_{c < C_g, j} Wq[o, c, j] q[(g(o) C_g + c) k + j]
      y[o] = float32(acc[o]) * (s_x * s_w[o]) + b[o]

* ``residual``: ``y = x + u`` with ``u`` the input of the record ``span`` records before it;
* ``concat``: ``y = [u ; x]`` with ``u`` the input of the record ``span`` records before it;
* ``magnitude``: ``y[i] = sqrt(x[i]*x[i] + x[M+i]*x[M+i])``;
* ``mul_halves``: ``y[i] = x[i] * x[M+i]`` (``rc.nn.MulHalves``);
* ``pointwise``: relu ``x > 0 ? x : 0``, hardsigmoid ``min(max(alpha x + beta, 0), 1)``,
  sigmoid ``1 / (1 + exp(-x))``, tanh, gelu ``0.5 x (1 + erf(x / sqrt 2))``, gelu tanh,
  leakyrelu ``x >= 0 ? x : alpha x``, elu ``x >= 0 ? x : alpha (exp(x) - 1)``,
  hardtanh ``t = x < alpha ? alpha : x``, ``t > beta ? beta : t``, silu ``x / (1 + exp(-x))``,
  hardswish ``t = min(max(x + 3, 0), 6)``, ``(x * t) / 6``, softplus ``alpha x > beta ? x :
  sp(alpha x) / alpha`` (``sp`` the cell softplus ``max(v, 0) + log1p(exp(-|v|))``), softsign
  ``x / (1 + |x|)``, log_affine ``rnc_logf(alpha x + beta)`` (the C core's own logf, :func:`rnc_logf`);
* ``layer_norm``: ``s`` the left-to-right float32 sum of ``x``, ``mean = s / n``, ``v`` the
  left-to-right sum of ``(x - mean)^2``, ``r = 1 / sqrt(v / n + eps)``,
  ``y = ((x - mean) * r) * w + b``;
* ``scale_shift``: ``y = x * scale + shift``;
* ``log_mel`` (float32, as in an f32 file): the power spectrum of ``window * x`` by the C core's
  real FFT (:func:`log_mel_rows`, its operations in its order), the filters' sums left to right,
  then the C core's own ``logf`` (:func:`rnc_logf`);
* ``pool_time`` (max / average over time; whole sequences): ``y_i[c] = max_j`` or
  ``(sum_j) / k`` of ``x_{i*stride + j*dilation - left}[c]``, the sum in tap order, the pad steps
  left out (an average may divide by the real taps instead, ``count_include_pad=False``; a
  window of pad steps only gives ``-inf`` for a max, as PyTorch, and 0 for that average, as ONNX
  Runtime) (:func:`pool_time_seq`).

The records over time (conv_time, pool_time) give PyTorch's output length
(:func:`time_out_steps`); their streaming form, with the look-ahead of a right padding and the
flush at the end of the input, is :class:`RecordStream` (the same bits).

Every operation is one float32 operation, rounded (the C core: ``-ffp-contract=off``), so the C
rows equal these bit for bit, with one exception: sigmoid, tanh, elu, silu, softplus and the gelus
call the C library's ``expf``/``tanhf``/``erff``/``log1pf``, whose last bit may differ from NumPy's
(relu, leakyrelu, hardsigmoid, hardtanh, hardswish, softsign,
magnitude, mul_halves, layer_norm, scale_shift, pooling, the convolution, log_mel and
log_affine, whose log is the C core's own polynomial, are exact).
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.quant.scheme import (
    F32,
    epilogue,
    int_matmul,
    int_matmul16,
    quantize_activation,
    quantize_activation16,
)

_SQRT_HALF = F32(0.70710678118654752)
_GELU_C = F32(0.79788456080286536)
_GELU_K = F32(0.044715)


def _window_index(L: int, k: int, stride: int, dilation: int, pl: int, pr: int, reflect: bool):
    """``(L_out, k)`` sample positions of every window tap in the frame (-1: a zero pad)."""
    lout = (L + pl + pr - dilation * (k - 1) - 1) // stride + 1
    r = np.arange(lout)[:, None] * stride + np.arange(k)[None, :] * dilation - pl
    if reflect:
        r = np.where(r < 0, -r, np.where(r >= L, 2 * (L - 1) - r, r))
    else:
        r = np.where((r < 0) | (r >= L), -1, r)
    return r, lout


def frame_conv_q8(rec: dict, x: np.ndarray, return_acc: bool = False):
    """A q8 frame_conv: ``x (B, C_in*L)`` float32 -> ``(B, C_out*L_out)`` float32.

    ``rec``: the geometry (``in_channels``, ``out_channels``, ``kernel_size``, ``frame_length``,
    ``stride``, ``dilation``, ``groups``, ``pad_left``, ``pad_right``, ``padding_mode``) and
    ``qweight (C_out, C_in/groups, k)`` int8, ``scale (C_out,)`` and ``bias (C_out,)`` float32.
    """
    return _frame_conv_int(rec, x, np.asarray(rec["qweight"], np.int8), quantize_activation, int_matmul,
                           return_acc)


def frame_conv_q16(rec: dict, x: np.ndarray, return_acc: bool = False):
    """A frame_conv with a 16 x 16 product (docs/q8-contract.md, "A 16-bit product in the frame
    convolutions"; the spec of the C core's ``front_bits=16`` records): :func:`frame_conv_q8` with
    int16 codes of the row (:func:`~rnncore.quant.scheme.quantize_activation16`), int16 weights
    (:func:`~rnncore.quant.scheme.quantize_weights16`, per output channel) and exact int64 sums::

        acc[o, l] = sum_{c, j} Wq[o, c, j] qpad[g(o) C_g + c, l*stride + j*dilation]    (int64)
        y[o*L_out + l] = float32(acc[o, l]) * (s_x * s_w[o]) + b[o]

    ``float32(acc)`` is one rounding to nearest even. ``rec`` as :func:`frame_conv_q8`, with
    ``qweight (C_out, C_in/groups, k)`` int16 in [-32767, 32767].
    """
    return _frame_conv_int(rec, x, np.asarray(rec["qweight"], np.int16), quantize_activation16,
                           int_matmul16, return_acc)


def _frame_conv_int(rec: dict, x: np.ndarray, wq: np.ndarray, quantize, matmul, return_acc: bool):
    """The integer frame_conv of :func:`frame_conv_q8` / :func:`frame_conv_q16`: the row's codes
    by ``quantize``, the windows' sums by ``matmul`` (exact), the q8 epilogue."""
    x = np.asarray(x, F32)
    B = x.shape[0]
    ci, co, k, L = (int(rec[f]) for f in ("in_channels", "out_channels", "kernel_size", "frame_length"))
    st, dl, g = int(rec.get("stride", 1)), int(rec.get("dilation", 1)), int(rec.get("groups", 1))
    pl, pr = int(rec.get("pad_left", 0)), int(rec.get("pad_right", 0))
    reflect = rec.get("padding_mode", "zeros") in ("reflect", 1)
    idx, lout = _window_index(L, k, st, dl, pl, pr, reflect)
    q, sx = quantize(x)                                  # one vector per step: (B, C_in*L), (B,)
    qf = np.concatenate([q.reshape(B, ci, L), np.zeros((B, ci, 1), q.dtype)], axis=2)
    cols = qf[:, :, np.where(idx < 0, L, idx)]           # (B, C_in, L_out, k): -1 reads the zero
    cg, cog = ci // g, co // g
    acc = None
    for gi in range(g):
        c = cols[:, gi * cg:(gi + 1) * cg].transpose(0, 2, 1, 3).reshape(B * lout, cg * k)
        w = wq[gi * cog:(gi + 1) * cog].reshape(cog, cg * k)
        a = matmul(c, w)
        if acc is None:
            acc = np.empty((B, co, lout), a.dtype)
        acc[:, gi * cog:(gi + 1) * cog] = a.reshape(B, lout, cog).transpose(0, 2, 1)
    y = epilogue(acc.transpose(0, 2, 1), np.repeat(sx[:, None], lout, axis=1),
                 np.asarray(rec["scale"], F32), np.asarray(rec["bias"], F32))   # (B, L_out, C_out)
    y = np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(B, co * lout)
    return (y, acc, sx) if return_acc else y


def time_pads(rec: dict, conv: bool | None = None) -> tuple[int, int, int, int, bool]:
    """A conv_time / pool_time record's window over time: ``(P, stride, left, right, exclude)``,
    ``P = dilation (kernel_size - 1)``; ``left``, ``right`` its padding over time (read_rnc's
    ``pad_left`` / ``pad_right``; without them a conv is causal ``(P, 0)`` and a pooling unpadded
    ``(0, 0)``), ``exclude`` an average that leaves the pad steps out of its count
    (``count_include_pad=False``). An ``rc.nn`` pooling record with ``ceil_mode`` is the file's
    record with more right padding (rnncore.nn.conv.ceil_mode_padding, as
    rnncore.io.rnc._plan_pool_time writes it). ``conv``: whether
    ``rec`` is a convolution (None: from its ``kind``)."""
    kind = str(rec.get("kind", "")).lower()
    if conv is None:
        conv = kind in ("conv1d", "conv_time")
    k, dl = int(rec["kernel_size"]), int(rec.get("dilation", 1))
    st = int(rec.get("stride", 1 if conv else k))
    P = dl * (k - 1)
    left, right = int(rec.get("pad_left", P if conv else 0)), int(rec.get("pad_right", 0))
    avg = not conv and str(rec.get("op", kind)).lower() in ("avg_pool1d", "avg")
    excl = avg and not rec.get("count_include_pad", True)
    if not conv and rec.get("ceil_mode", False):
        from rnncore.nn.conv import ceil_mode_padding

        right, excl = ceil_mode_padding(k, st, dl, left, right, avg, bool(rec.get("count_include_pad", True)))
    return P, st, left, right, bool(excl)


def time_out_steps(rec: dict, T, conv: bool | None = None) -> np.ndarray:
    """The output steps of conv_time / pool_time record ``rec`` on ``T`` input steps (PyTorch's
    ``floor((T + left + right - P - 1) / stride) + 1``, 0 when ``T + left + right <= P`` or
    ``T == 0``: a sequence of no steps gives no output)."""
    P, st, left, right, _ = time_pads(rec, conv)
    n = np.asarray(T, np.int64)
    return np.where((n > 0) & (n + left + right > P), (n + left + right - P - 1) // st + 1, 0)


def _time_taps(rec: dict, T: int, conv: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(T_out, k)`` input step of every tap of every output window (output ``n`` reads padded
    steps ``n stride + j dilation``, input step ``n stride + j dilation - left``) and whether it is
    a real step (``0 <= step < T``) rather than a pad step."""
    _, st, left, _, _ = time_pads(rec, conv)
    k, dl = int(rec["kernel_size"]), int(rec.get("dilation", 1))
    n = int(time_out_steps(rec, T, conv))
    pos = np.arange(n)[:, None] * st + np.arange(k)[None, :] * dl - left
    return pos, (pos >= 0) & (pos < T)


def conv_time_q8(rec: dict, x: np.ndarray) -> np.ndarray:
    """A q8 conv_time on whole sequences: ``x (B, T, C_in)`` float32 -> ``(B, T_out, C_out)``
    float32, ``T_out`` = :func:`time_out_steps` (``T`` for a causal conv at stride 1).

    Output ``n`` reads the input with ``left`` zero rows before it and ``right`` after it
    (:func:`time_pads`; causal ``(P, 0)``: zeros before the sequence's start), padded steps
    ``n stride + j dilation``: its ``k`` taps of every channel, ``v[c*k + j]``, pad steps zero, are
    quantised as ONE vector (``q, s_x = quantize_activation(v)``: a zero is code 0, and the scale
    ``max|v| / 127`` is that of the real taps), then per group
    ``acc[o] = sum_{c < C_g, j} Wq[o, c, j] q[(g(o) C_g + c) k + j]`` (exact int32) and
    ``y[o] = float32(acc[o]) * (s_x * s_w[o]) + b[o]``.

    ``rec``: ``in_channels``, ``out_channels``, ``kernel_size``, ``dilation``, ``groups``, optional
    ``stride``, ``pad_left``, ``pad_right`` and ``qweight (C_out, C_in/groups, k)`` int8,
    ``scale (C_out,)`` and ``bias (C_out,)`` float32.
    """
    x = np.asarray(x, F32)
    B, T, ci = x.shape
    co, k = int(rec["out_channels"]), int(rec["kernel_size"])
    g = int(rec.get("groups", 1))
    pos, real = _time_taps(rec, T, conv=True)                            # (T_out, k)
    xz = np.concatenate([x, np.zeros((B, 1, ci), F32)], axis=1)          # step T: a zero row
    taps = xz[:, np.where(real, pos, T)].transpose(0, 1, 3, 2)           # (B, T_out, C_in, k)
    q, sx = quantize_activation(taps.reshape(B, pos.shape[0], ci * k))   # one vector per step
    cg, cog = ci // g, co // g
    wq = np.asarray(rec["qweight"], np.int8).reshape(co, cg * k)
    acc = np.empty((B, pos.shape[0], co), np.int32)
    for gi in range(g):
        acc[..., gi * cog:(gi + 1) * cog] = int_matmul(q[..., gi * cg * k:(gi + 1) * cg * k],
                                                       wq[gi * cog:(gi + 1) * cog])
    return epilogue(acc, sx, np.asarray(rec["scale"], F32), np.asarray(rec["bias"], F32))


# ---- log_mel: the C core's real FFT (csrc/src/kernels/f32_fft_generic.c), operation by operation

_H3 = F32(0.866025403784438647)
_C51, _C52 = F32(0.309016994374947424), F32(-0.809016994374947424)
_S51, _S52 = F32(0.951056516295153572), F32(0.587785252292473129)
_HALF = F32(0.5)
_MAX_PASSES = 16   # rnc_front_op.fft_radix


def fft_plan(n_fft: int, cos: np.ndarray, sin: np.ndarray) -> list | None:
    """rnc__fft_plan: the radices of the complex FFT of ``n_fft / 2`` points (4s, at most one 2,
    3s, 5s), or None when the C core takes the tables' product instead (``n_fft`` odd, a prime
    factor above 5 in ``n_fft / 2``, or tables ``cos, sin (n_fft/2 + 1, n_fft)`` that are not the
    DFT's within the C core's tolerances)."""
    n = int(n_fft)
    nf = n // 2 + 1
    if n % 2 or nf < 2:
        return None
    m, radix = n // 2, []
    for p in (4, 2, 3, 5):
        while m % p == 0 and len(radix) < _MAX_PASSES:
            radix.append(p)
            m //= p
            if p == 2:
                break
    if m != 1:
        return None
    c1, s1 = _roots(cos, sin, n)
    ph = 2 * np.pi * np.arange(nf) / n
    if not (np.all(np.abs(c1[:nf].astype(np.float64) - np.cos(ph)) <= 1e-6)
            and np.all(np.abs(s1[:nf].astype(np.float64) + np.sin(ph)) <= 1e-6)):
        return None
    kj = (np.arange(nf)[:, None] * np.arange(nf)[None, :]) % n
    ok = (np.abs(np.asarray(cos, F32)[:, :nf] - c1[kj]) <= F32(2e-6)) & \
         (np.abs(np.asarray(sin, F32)[:, :nf] - s1[kj]) <= F32(2e-6))
    return radix if ok.all() else None


def _roots(cos: np.ndarray, sin: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``e^{-2 pi i m / n}`` for every ``m < n`` from column 1 of the stored tables (f32_fft_generic.c
    ``root``: rows ``m <= n/2``, the others mirrored)."""
    m = np.arange(n)
    q = np.where(m <= n // 2, m, n - m)
    c = np.asarray(cos, F32)[q, 1]
    s = np.asarray(sin, F32)[q, 1]
    return c, np.where(m <= n // 2, s, -s).astype(F32)


def _butterfly(p: int, ar: list, ai: list) -> tuple[list, list]:
    """bf2 .. bf5 of f32_fft_generic.c (float32, their order of operations)."""
    if p == 2:
        return [ar[0] + ar[1], ar[0] - ar[1]], [ai[0] + ai[1], ai[0] - ai[1]]
    if p == 3:
        sr, si = ar[1] + ar[2], ai[1] + ai[2]
        dr, di = ar[1] - ar[2], ai[1] - ai[2]
        mr, mi = ar[0] - _HALF * sr, ai[0] - _HALF * si
        return [ar[0] + sr, mr + _H3 * di, mr - _H3 * di], [ai[0] + si, mi - _H3 * dr, mi + _H3 * dr]
    if p == 4:
        t0r, t0i = ar[0] + ar[2], ai[0] + ai[2]
        t1r, t1i = ar[0] - ar[2], ai[0] - ai[2]
        t2r, t2i = ar[1] + ar[3], ai[1] + ai[3]
        t3r, t3i = ar[1] - ar[3], ai[1] - ai[3]
        return ([t0r + t2r, t1r + t3i, t0r - t2r, t1r - t3i], [t0i + t2i, t1i - t3r, t0i - t2i, t1i + t3r])
    s14r, s14i = ar[1] + ar[4], ai[1] + ai[4]
    d14r, d14i = ar[1] - ar[4], ai[1] - ai[4]
    s23r, s23i = ar[2] + ar[3], ai[2] + ai[3]
    d23r, d23i = ar[2] - ar[3], ai[2] - ai[3]
    m1r, m1i = ar[0] + _C51 * s14r + _C52 * s23r, ai[0] + _C51 * s14i + _C52 * s23i
    m2r, m2i = ar[0] + _C52 * s14r + _C51 * s23r, ai[0] + _C52 * s14i + _C51 * s23i
    n1r, n1i = _S51 * d14r + _S52 * d23r, _S51 * d14i + _S52 * d23i
    n2r, n2i = _S52 * d14r - _S51 * d23r, _S52 * d14i - _S51 * d23i
    return ([ar[0] + s14r + s23r, m1r + n1i, m2r + n2i, m2r - n2i, m1r - n1i],
            [ai[0] + s14i + s23i, m1i - n1r, m2i - n2r, m2i + n2r, m1i + n1r])


def power_spectrum(x: np.ndarray, window: np.ndarray, cos: np.ndarray, sin: np.ndarray, power: int,
                   radix: list) -> np.ndarray:
    """rnc__rfft_power: rows ``x (N, n_fft)`` float32 -> ``|X[k]|^power (N, n_fft/2 + 1)`` of the DFT
    ``X`` of ``window * x``, by the C core's FFT (Stockham passes of ``radix``, then the split of
    the ``n_fft/2``-point complex transform into the real one), every operation a float32 one."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    M = n // 2
    c, s = _roots(cos, sin, n)
    w = np.asarray(window, F32)
    re, im = w[0::2] * x[:, 0::2], w[1::2] * x[:, 1::2]
    Ns = 1
    for p in radix:
        L = M // p
        j = np.arange(L)
        k = j % Ns
        ar = [re[:, j + r * L] for r in range(p)]
        ai = [im[:, j + r * L] for r in range(p)]
        if Ns > 1:
            step = n // (Ns * p)
            for r in range(1, p):
                wr, wi = c[(r * k * step) % n], s[(r * k * step) % n]
                xr, xi = ar[r], ai[r]
                ar[r], ai[r] = xr * wr - xi * wi, xr * wi + xi * wr
        yr, yi = _butterfly(p, ar, ai)
        re2, im2 = np.empty_like(re), np.empty_like(im)
        base = (j - k) * p + k
        for r in range(p):
            re2[:, base + r * Ns], im2[:, base + r * Ns] = yr[r], yi[r]
        re, im = re2, im2
        Ns *= p
    out = np.empty((x.shape[0], M + 1), F32)
    x0, xm = re[:, 0] + im[:, 0], re[:, 0] - im[:, 0]
    out[:, 0], out[:, M] = x0 * x0, xm * xm
    k = np.arange(1, M // 2 + 1)
    q = M - k
    fer, fei = _HALF * (re[:, k] + re[:, q]), _HALF * (im[:, k] - im[:, q])
    dr, di = _HALF * (re[:, k] - re[:, q]), _HALF * (im[:, k] + im[:, q])
    for_, foi = di, -dr
    wr, wi = c[k], s[k]
    tr, ti = for_ * wr - foi * wi, for_ * wi + foi * wr
    ar_, ai_, br, bi = fer + tr, fei + ti, fer - tr, fei - ti
    out[:, k] = ar_ * ar_ + ai_ * ai_
    out[:, q] = br * br + bi * bi   # k = q = M/2: this one, as in C
    return np.sqrt(out) if int(power) == 1 else out


def rnc_logf(x: np.ndarray) -> np.ndarray:
    """The C core's float32 natural logarithm (csrc/src/kernels/logf.h ``rnc_logf``), elementwise,
    one float32 operation per C operation, so its bits are the C core's on every machine.

    ``x = 2^e m``, ``m`` in ``[sqrt(1/2), sqrt(2))`` from the bits (subnormals scaled by ``2^23``
    first), ``f = m - 1``, ``log x = e ln2 + f - f^2/2 + f^3 P(f)`` with Cephes' degree-8 ``P``
    and ``ln2 = 0.693359375 - 2.12194440e-4``; ``log(+-0) = -inf``, ``log(x < 0) = NaN``,
    ``log(inf) = inf``, ``log(NaN) = NaN``."""
    x = np.asarray(x, F32)
    with np.errstate(all="ignore"):
        sub = x < F32(1.17549435e-38)                 # below FLT_MIN (zero and negatives too)
        xs = np.where(sub, x * F32(8388608.0), x).astype(F32)
        t = xs.view(np.uint32) + np.uint32(0x004AFB0D)
        e = ((t >> np.uint32(23)).astype(np.int32) - 127).astype(F32) - np.where(sub, F32(23), F32(0))
        m = ((t & np.uint32(0x007FFFFF)) + np.uint32(0x3F3504F3)).astype(np.uint32).view(F32)
        f = m - F32(1)
        z = f * f
        p = np.full_like(f, F32(7.0376836292e-2))
        for c in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
            p = p * f + F32(c)
        y = p * f * z
        y = y + e * F32(-2.12194440e-4)
        y = y - F32(0.5) * z
        r = f + y
        r = r + e * F32(0.693359375)
        r = np.where(x == np.inf, x, r)
        return np.where(x > 0, r, np.where(x == 0, F32(-np.inf), F32(np.nan))).astype(F32)


def log_mel_rows(rec: dict, x: np.ndarray) -> np.ndarray:
    """A log_mel record (read_rnc's description: ``window``, ``cos``, ``sin``, ``fb``, ``power``,
    ``log``, ``log_offset``, ``amin``) on frames ``x (N, n_fft)`` float32 -> ``(N, n_mels)``, as
    model.c ``log_mel_row`` by the FFT: ``mel[m] = sum_k fb[k, m] p[k]`` left to right over the
    filter's nonzero span, then ``logf(mel + log_offset)`` or ``(10 / ln 10) logf(max(mel, amin))``
    (``logf`` = :func:`rnc_logf`).
    A size the C core takes by the tables' product (its ISA's f32 GEMM row) has no bit-exact form
    here: ``ValueError``."""
    t = rec.get("tensors", rec)
    cos, sin = np.asarray(t["cos"], F32), np.asarray(t["sin"], F32)
    n = int(rec["n_fft"])
    radix = fft_plan(n, cos, sin)
    if radix is None:
        raise ValueError(f"log_mel: n_fft {n} runs by the tables' product in the C core (the ISA's f32 GEMM "
                         "row: no bit-exact NumPy form); the FFT takes an even n_fft whose half has no prime "
                         "factor above 5")
    p = power_spectrum(x, t["window"], cos, sin, int(rec.get("power", 2)), radix)
    from rnncore.io.rnc import mel_spans

    fb = np.asarray(t["fb"], F32)
    span, _ = mel_spans(fb)
    mel = np.zeros((p.shape[0], fb.shape[1]), F32)
    for m, (first, count) in enumerate(span):
        if count:
            mel[:, m] = _seq_sum(fb[first:first + count, m] * p[:, first:first + count])
    log = rec.get("log", "log")
    if log == "log":
        return rnc_logf(mel + F32(rec.get("log_offset", 1e-6)))
    if log == "db":
        amin = F32(rec.get("amin", 1e-10))
        return F32(4.34294481903251828) * rnc_logf(np.where(mel > amin, mel, amin))   # RNC_DB_PER_NEPER
    return mel


# ---- pooling over time and the output lengths of strided records ------------------------------

def pool_time_seq(rec: dict, x: np.ndarray) -> np.ndarray:
    """model.c ``pool_time_row`` over whole sequences: ``x (B, T, C)`` -> ``(B, T_out, C)``,
    ``T_out`` = :func:`time_out_steps`. Output ``i`` reads input steps
    ``i*stride + j*dilation - left`` (:func:`time_pads`); the pad steps (before step 0, from step
    ``T`` on) take no part: ``y_i[c]`` is the first largest real tap (``-inf`` for a window without
    one, as PyTorch), or the sum of the real taps in tap order from 0 (in ``x``'s dtype) divided by
    ``k``, or by the number of real taps with ``exclude`` (``count_include_pad=False``, ceil_mode's
    last window; 0 for a window without one, as ONNX Runtime). Unpadded:
    ``T_out = (T - P - 1) // stride + 1`` (0 when ``T <= P``), ``P = dilation (k - 1)``."""
    x = np.asarray(x)
    _, _, _, _, excl = time_pads(rec)
    k = int(rec["kernel_size"])
    B, T = x.shape[:2]
    pos, real = _time_taps(rec, T)
    pos = np.where(real, pos, 0)
    kind = str(rec.get("kind", "")).lower()
    if str(rec.get("op", kind)).lower() in ("max_pool1d", "max"):
        y = np.full((B, pos.shape[0]) + x.shape[2:], -np.inf, x.dtype)   # no real tap: -inf (PyTorch)
        for j in range(k):
            v = x[:, pos[:, j]]
            y = np.where(real[None, :, j, None] & (v > y), v, y)   # v > y ? v : y, the first largest
        return y
    acc = np.zeros((B, pos.shape[0]) + x.shape[2:], x.dtype)
    for j in range(k):
        acc = np.where(real[None, :, j, None], acc + x[:, pos[:, j]], acc)
    n = real.sum(axis=1) if excl else np.full(pos.shape[0], k)
    # no real tap (exclude): 0, as ONNX Runtime
    return np.where(n[None, :, None] > 0, acc / np.maximum(n, 1).astype(x.dtype)[None, :, None], acc)


_TIME_KINDS = ("max_pool1d", "avg_pool1d", "pool_time", "conv1d", "conv_time")


def _time_records(records: list) -> list:
    """The conv_time / pool_time records (the ones over time) of ``records``."""
    return [r for r in records if str(r.get("kind", "")).lower() in _TIME_KINDS]


def out_lengths(records: list, lengths: np.ndarray) -> np.ndarray:
    """The output steps per sequence of ``lengths`` input steps through ``records`` (docs/c-api.md,
    "Steps without an output" and "Look-ahead"): each conv_time / pool_time record gives
    :func:`time_out_steps` (a pooling ``(L - P - 1) // stride + 1``, 0 for ``L <= P``; a strided
    causal conv ``ceil(L / stride)``; padded ones PyTorch's length), every other record ``L``."""
    n = np.asarray(lengths, np.int64)
    for r in _time_records(records):
        n = time_out_steps(r, n)
    return n


def _padded(records: list) -> bool:
    """Whether each sequence of a batch must run alone on its own steps (:func:`per_sequence`): a
    conv_time / pool_time record of ``records`` is padded (not causal / unpadded), or an
    instance_norm normalises over the sequence's steps."""
    if any(str(r.get("kind", "")).lower() == "instance_norm" for r in records):
        return True
    for r in _time_records(records):
        P, _, left, right, _ = time_pads(r)
        conv = str(r.get("kind", "")).lower() in ("conv1d", "conv_time")
        if (left, right) != ((P, 0) if conv else (0, 0)) or r.get("ceil_mode", False):
            return True
    return False


def per_sequence(fn, records: list, x: np.ndarray, lengths) -> np.ndarray:
    """``fn(records, x)`` on whole sequences ``x (B, T, F)`` of ``lengths`` steps: with a padded
    record over time, each shorter sequence runs alone on its own steps (its right padding comes
    after its last step, as ``rnc_run`` feeds it), the outputs past its :func:`out_lengths` zero;
    the ``(B, T_out, F_out)`` of the whole batch (``T_out`` that of ``T`` steps)."""
    y = fn(records, x)
    if lengths is None or not _padded(records):
        return y
    lengths = np.asarray(lengths, np.int64)
    n = out_lengths(records, lengths)
    for b in range(x.shape[0]):
        if lengths[b] < x.shape[1]:
            y[b] = 0
            if lengths[b] > 0 and n[b] > 0:
                y[b, :n[b]] = fn(records, x[b:b + 1, :lengths[b]])[0]
    return y


class RecordStream:
    """The streaming form of :func:`step_records` (docs/c-api.md, "Look-ahead"), as ``rnc_step`` and
    ``rnc_flush`` run it: rows one step at a time through ``records`` (read_rnc's descriptions, as
    :func:`step_records` takes them), for ``batch`` rows.

    A conv_time / pool_time record keeps the padded steps it has read, starting with its ``left``
    pad steps; output ``n`` reads padded steps ``n stride .. n stride + P`` and is given as soon as
    the last of them arrives (so the first ``P - left`` steps give none, then one every ``stride``
    steps); its window is computed as in the run (a conv: the ``k`` taps, pads zero, quantised as
    one vector; a pooling: the real taps). :meth:`flush` feeds each record its ``right`` pad steps
    in record order (none to a record that has taken no input: PyTorch gives no output for an
    empty sequence), their outputs through the records after it, then the windows start afresh.
    ``step`` then ``flush`` give the rows of :func:`step_records` on the whole sequence, bit for bit
    (tests/test_engine_q8_timepad.py).
    """

    def __init__(self, records: list, batch: int):
        self.records, self.batch = list(records), int(batch)
        self.reset()

    def reset(self) -> None:
        """A fresh sequence: every record over time holds its left pad steps only."""
        self.buf: dict = {}
        for i, r in enumerate(self.records):
            if str(r.get("kind", "")).lower() in _TIME_KINDS:
                conv = str(r.get("kind", "")).lower() in ("conv1d", "conv_time")
                _, _, left, _, _ = time_pads(r, conv)
                self.buf[i] = {"rows": [None] * left, "n": 0, "conv": conv, "fed": False}

    def _window(self, i: int, rows: list) -> np.ndarray:
        """Record ``i``'s output from the ``P + 1`` padded steps of its window (None: a pad step)."""
        rec, conv = self.records[i], self.buf[i]["conv"]
        ch = next(r.shape[1] for r in rows if r is not None)
        x = np.stack([np.zeros((self.batch, ch), F32) if r is None else r for r in rows], axis=1)
        if conv:
            t = rec.get("tensors", rec)
            full = {**rec, "qweight": t["qweight"], "scale": t["scale"], "bias": t["bias"],
                    "stride": 1, "pad_left": 0, "pad_right": 0}
            return conv_time_q8(full, x)[:, 0]
        k, dl = int(rec["kernel_size"]), int(rec.get("dilation", 1))
        taps = [x[:, j * dl] for j in range(k) if rows[j * dl] is not None]
        if str(rec.get("op", rec.get("kind", ""))).lower() in ("max_pool1d", "max"):
            y = np.full((self.batch, ch), -np.inf, F32)   # no real tap: -inf
            for v in taps:
                y = np.where(v > y, v, y)
            return y
        acc = np.zeros((self.batch, ch), F32)
        for v in taps:
            acc = acc + v
        _, _, _, _, excl = time_pads(rec)
        n = len(taps) if excl else k
        return acc / x.dtype.type(n) if n else acc

    def _run(self, first: int, row) -> np.ndarray | None:
        """``row`` (None: a pad step of record ``first``) through records ``first`` on."""
        inputs: list = [None] * first
        y = row
        for i in range(first, len(self.records)):
            rec = self.records[i]
            inputs.append(y)
            kind = str(rec["kind"]).lower()
            if i in self.buf:
                b = self.buf[i]
                b["rows"].append(None if y is None else np.asarray(y, F32))
                b["fed"] |= y is not None
                P, st, _, _, _ = time_pads(rec, b["conv"])
                start = b["n"] * st
                if start + P >= len(b["rows"]):
                    return None
                y = self._window(i, b["rows"][start:start + P + 1])
                b["n"] += 1
            elif kind == "residual":
                y = y + inputs[len(inputs) - 1 - int(rec["span"])]
            elif kind == "concat":
                y = np.concatenate([inputs[len(inputs) - 1 - int(rec["span"])], y], axis=-1)
            else:
                y = step_record(rec, y)
        return y

    def step(self, x: np.ndarray) -> np.ndarray | None:
        """One step ``x (B, F)`` -> ``(B, F_out)``, or None when a record over time gives no output."""
        return self._run(0, np.asarray(x, F32))

    def flush(self) -> list:
        """The end of the input: each record's ``right`` pad steps in record order; the outputs they
        give (a list of ``(B, F_out)`` rows), then a fresh sequence."""
        out = []
        for i in sorted(self.buf):
            _, _, _, right, _ = time_pads(self.records[i], self.buf[i]["conv"])
            for _ in range(right if self.buf[i]["fed"] else 0):   # no input: no output (PyTorch)
                y = self._run(i, None)
                if y is not None:
                    out.append(y)
        self.reset()
        return out


def _seq_sum(v: np.ndarray) -> np.ndarray:
    """The left-to-right float32 sum along the last axis, from 0 (the C loop's order)."""
    return np.cumsum(v, axis=-1, dtype=F32)[..., -1] if v.shape[-1] else np.zeros(v.shape[:-1], F32)


def pointwise(name: str, x: np.ndarray, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """model.c ``pointwise_row`` in float32."""
    x = np.asarray(x, F32)
    one, half = F32(1), F32(0.5)
    if name == "relu":
        return np.where(x > 0, x, F32(0)).astype(F32)
    if name == "sigmoid":
        return one / (one + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name in ("hardsigmoid", "hard_sigmoid"):
        a = F32(alpha) * x + F32(beta)
        return np.where(a < 0, F32(0), np.where(a > 1, one, a)).astype(F32)
    if name == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return half * x * (one + erf(x * _SQRT_HALF).astype(F32))
    if name == "gelu_tanh":
        u = _GELU_C * (x + _GELU_K * x * x * x)
        return half * x * (one + np.tanh(u))
    if name in ("leakyrelu", "leaky_relu"):   # the cell activations' code (kernels/cells_variant.c)
        return np.where(x >= 0, x, F32(alpha) * x).astype(F32)
    if name == "elu":
        return np.where(x >= 0, x, F32(alpha) * (np.exp(np.minimum(x, F32(0))) - one)).astype(F32)
    if name == "hardtanh":
        t = np.where(x < F32(alpha), F32(alpha), x).astype(F32)
        return np.where(t > F32(beta), F32(beta), t).astype(F32)
    if name == "silu":
        return x / (one + np.exp(-x))
    if name == "hardswish":
        t = x + F32(3)
        t = np.where(t < 0, F32(0), t).astype(F32)
        t = np.where(t > 6, F32(6), t).astype(F32)
        return x * t / F32(6)
    if name == "softplus":   # the cell softplus on alpha x (kernels/cells_variant.c, by the cells' spec)
        from rnncore.quant.reference import variant_activation

        bx = F32(alpha) * x
        sp = variant_activation("softplus", 0.0, 0.0, bx)
        return np.where(bx > F32(beta), x, sp / F32(alpha)).astype(F32)
    if name == "softsign":
        from rnncore.quant.reference import variant_activation

        return variant_activation("softsign", 0.0, 0.0, x)
    if name == "log_affine":   # model.c pointwise_row: rnc_logf(alpha * x + beta)
        return rnc_logf(F32(alpha) * x + F32(beta))
    if name == "abs":   # fabsf
        return np.abs(x)
    raise ValueError(f"pointwise: unknown activation {name!r}")


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """model.c ``layer_norm_row``: sequential float32 sums, ``((x - mean) * r) * w + b``."""
    x = np.asarray(x, F32)
    n = F32(x.shape[-1])
    mean = _seq_sum(x) / n
    d = x - mean[..., None]
    r = F32(1) / np.sqrt(_seq_sum(d * d) / n + F32(eps))
    return (d * r[..., None]) * np.asarray(w, F32) + np.asarray(b, F32)


def instance_norm_seq(rec: dict, x: np.ndarray) -> np.ndarray:
    """model.c ``instance_norm_rows``: each channel of each whole sequence ``x (B, T, C)`` (all ``T``
    steps valid; :func:`per_sequence` cuts shorter ones) normalised over its steps, float32 rows
    with the statistics summed in float64 in step order from 0::

        mu  = (float)((x_0 + x_1 + ... + x_(T-1)) / T)          (float64 sum and division)
        d_t = x_t - mu                                            (float32)
        var = (float)((d_0 d_0 + d_1 d_1 + ...) / T)             (float64: each product exact)
        r   = 1.0f / sqrtf(var + eps);  y_t = ((d_t * r) * w + b)    (float32)

    The same in an f32 and a q8 file (docs/q8-contract.md, "instance_norm"). ``T = 0``: nothing."""
    x = np.asarray(x, F32)
    B, T, C = x.shape
    if T == 0:
        return x.copy()
    t = rec.get("tensors", rec)
    w = np.ones(C, F32) if t.get("weight") is None else np.asarray(t["weight"], F32)
    b = np.zeros(C, F32) if t.get("bias") is None else np.asarray(t["bias"], F32)
    n = np.float64(T)
    mu = (np.cumsum(x.astype(np.float64), axis=1)[:, -1] / n).astype(F32)       # (B, C); cumsum: in order
    d = x - mu[:, None, :]                                                      # (B, T, C) float32
    dd = d.astype(np.float64) * d.astype(np.float64)
    var = (np.cumsum(dd, axis=1)[:, -1] / n).astype(F32)                        # (B, C)
    r = F32(1) / np.sqrt(var + F32(rec["eps"]))
    return (d * r[:, None, :]) * w + b


def _selection_columns(t: dict, width: int) -> np.ndarray | None:
    """The input column each output copies when a float32 frame_conv's weight ``(O, width)`` is a
    selection (each row one weight 1.0, the rest 0, no bias or a zero one: ``LastStep(direction=...)``'s
    ``[I | 0]`` / ``[0 | I]``, rnncore.spec._half_record): then every ISA's f32 product row is that
    input plus exact zeros, in any order of the sums. None for any other weight."""
    w = t.get("weight")
    if w is None:
        return None
    w = np.asarray(w, F32)
    if w.size % width or w.size == 0:
        return None
    w = w.reshape(-1, width)
    b = t.get("bias")
    if (b is not None and np.any(np.asarray(b) != 0)) or np.any((w != 0) & (w != 1)) \
            or np.any(np.count_nonzero(w, axis=1) != 1):
        return None
    return np.argmax(w, axis=1)


def step_record(rec: dict, x: np.ndarray) -> np.ndarray:
    """One per-step record, as :func:`rnncore.io.rnc.read_rnc` describes it (``front``, ``post``,
    ``post_pooled``), on rows ``x (B, F)`` in the C core's float32 arithmetic; a q8 frame_conv
    carries ``tensors["qweight"]`` and ``tensors["scale"]`` (int16 with ``bits = 16``: the 16 x 16
    form, :func:`frame_conv_q16`)."""
    kind = str(rec["kind"]).lower()
    t = rec.get("tensors", rec)
    x = np.asarray(x, F32)
    if kind in ("frame_conv1d", "frame_conv"):
        if t.get("qweight") is None:
            cols = _selection_columns(t, x.shape[-1])
            if cols is None:
                raise ValueError("step_record: a frame_conv kept in float32 has no bit-exact NumPy form "
                                 "(its product is the ISA's f32 GEMM row)")
            return x[..., cols]
        full = {**rec, "qweight": t["qweight"], "scale": t["scale"], "bias": t["bias"]}
        return frame_conv_q16(full, x) if rec.get("bits") == 16 else frame_conv_q8(full, x)
    if kind == "log_mel":
        return log_mel_rows(rec, x)
    if kind == "magnitude":
        M = x.shape[-1] // 2
        re, im = x[..., :M], x[..., M:]
        return np.sqrt(re * re + im * im)
    if kind == "mul_halves":
        M = x.shape[-1] // 2
        return x[..., :M] * x[..., M:]
    if kind == "layer_norm":
        return layer_norm(x, t["weight"], t["bias"], rec["eps"])
    if kind == "instance_norm":
        raise ValueError("step_record: an instance_norm record normalises each channel over the whole "
                         "sequence; it has no per-step form (step_records on whole sequences (B, T, F))")
    if kind == "scale_shift":
        return x * np.asarray(t["scale"], F32) + np.asarray(t["shift"], F32)
    if kind == "gelu" and rec.get("approximate") == "tanh":
        kind = "gelu_tanh"
    if kind == "log_affine" and "scale" in rec:   # rc.nn.LogAffine's record(): log(scale x + offset)
        return pointwise(kind, x, rec["scale"], rec["offset"])
    return pointwise(kind, x, rec.get("alpha", 0.0), rec.get("beta", 0.0))


def _skip_rows(skip: list | None) -> list:
    """The inputs of the records before a list (nearest last) as rows, for a residual whose span
    crosses recurrent layers (``y = x + GRU(x)``: the layer's input is the last of them)."""
    return [None if s is None else np.reshape(s, (-1, np.shape(s)[-1])) for s in skip or []]


def step_records(records: list, x: np.ndarray, lengths=None, skip: list | None = None,
                 collect: list | None = None) -> np.ndarray:
    """Rows ``x (..., F)`` through ``records`` in order (leading axes kept); a conv_time or pooling
    record needs whole sequences, ``x (B, T, F)`` (a step alone has no window: ``ValueError``), and
    leaves ``T_out`` steps (:func:`time_out_steps`). ``lengths (B,)``: each sequence's steps
    (:func:`per_sequence`; the steps past a length must be zeros, as the quantised reference
    gives them). ``skip``: the inputs of the records before the list, nearest last, shaped as
    ``x`` (a residual whose span reaches past the list's start adds one: a residual around a
    recurrent layer); ``collect``: a list each record's input is appended to, shaped as ``x``."""
    if lengths is not None:
        return per_sequence(step_records, records, x, lengths)
    x = np.asarray(x, F32)
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1])
    inputs = _skip_rows(skip)
    for rec in records:
        inputs.append(y)
        if collect is not None:
            collect.append(y.reshape(*lead, y.shape[-1]))
        kind = str(rec["kind"]).lower()
        if kind in ("max_pool1d", "avg_pool1d", "pool_time"):
            if len(lead) != 2:
                raise ValueError("step_records: a pooling over time needs whole sequences (B, T, F), "
                                 f"got {x.shape}")
            y = pool_time_seq(rec, y.reshape(*lead, y.shape[-1]))
            lead = y.shape[:2]
            y = y.reshape(-1, y.shape[-1])
        elif kind == "residual":
            y = y + inputs[len(inputs) - 1 - int(rec["span"])]
        elif kind == "concat":
            y = np.concatenate([inputs[len(inputs) - 1 - int(rec["span"])], y], axis=-1)
        elif kind == "instance_norm":
            if len(lead) != 2:
                raise ValueError("step_records: an instance_norm record needs whole sequences (B, T, F), "
                                 f"got {x.shape}")
            y = instance_norm_seq(rec, y.reshape(*lead, y.shape[-1])).reshape(-1, y.shape[-1])
        elif kind in ("conv1d", "conv_time"):
            if len(lead) != 2:
                raise ValueError("step_records: a conv_time record needs whole sequences (B, T, F), "
                                 f"got {x.shape}")
            t = rec.get("tensors", rec)
            if t.get("qweight") is None:
                raise ValueError("step_records: a conv_time kept in float32 has no bit-exact NumPy form "
                                 "(its product is the ISA's f32 GEMM row)")
            full = {**rec, "qweight": t["qweight"], "scale": t["scale"], "bias": t["bias"]}
            y = conv_time_q8(full, y.reshape(*lead, y.shape[-1]))
            lead = y.shape[:2]
            y = y.reshape(-1, y.shape[-1])
        else:
            y = step_record(rec, y)
    return y.reshape(*lead, y.shape[-1])


def float_step_records(records: list, x: np.ndarray, lengths=None, skip: list | None = None,
                       collect: list | None = None) -> np.ndarray:
    """The per-step records (``rc.nn`` layers' ``record()`` dicts, as a float
    :class:`~rnncore.spec.ModelSpec` holds them) in float64, on ``x (B, T, F)`` (or rows ``(B, F)``
    without conv1d): the float model the records describe, for calibration (rnncore.quant.calibrate
    measures the recurrent layers' and the head's inputs after them); a pooling or a strided conv1d
    leaves fewer steps (:func:`out_lengths`), a padded one more; ``lengths``, ``skip``, ``collect``: as
    :func:`step_records`."""
    if lengths is not None:
        return per_sequence(float_step_records, records, x, lengths)
    y = np.asarray(x, np.float64)
    lead = y.shape[:-1]
    y = y.reshape(-1, y.shape[-1])
    inputs = [None if s is None else np.asarray(s, np.float64) for s in _skip_rows(skip)]
    for rec in records:
        inputs.append(y)
        if collect is not None:
            collect.append(y.reshape(*lead, y.shape[-1]))
        kind = str(rec.get("kind", "")).lower()
        t = rec.get("tensors", rec)
        if kind == "residual":
            y = y + inputs[len(inputs) - 1 - int(rec["span"])]
        elif kind == "concat":
            y = np.concatenate([inputs[len(inputs) - 1 - int(rec["span"])], y], axis=-1)
        elif kind in ("conv1d", "conv_time"):
            if len(lead) != 2:
                raise ValueError(f"a conv1d record needs whole sequences (B, T, F), got {x.shape}")
            B, T = lead
            ci, co, k = int(rec["in_channels"]), int(rec["out_channels"]), int(rec["kernel_size"])
            g = int(rec.get("groups", 1))
            pos, real = _time_taps(rec, T, conv=True)                        # (T_out, k)
            xz = np.concatenate([y.reshape(B, T, ci), np.zeros((B, 1, ci))], axis=1)
            taps = xz[:, np.where(real, pos, T)].transpose(0, 1, 3, 2)       # (B, T_out, C_in, k)
            w = np.asarray(t["weight"], np.float64)
            cg, cog = ci // g, co // g
            out = np.empty((B, pos.shape[0], co))
            for gi in range(g):
                out[..., gi * cog:(gi + 1) * cog] = np.einsum(
                    "btck,ock->bto", taps[:, :, gi * cg:(gi + 1) * cg], w[gi * cog:(gi + 1) * cog])
            b = t.get("bias")
            out = out + (0 if b is None else np.asarray(b, np.float64))
            lead = out.shape[:2]
            y = out.reshape(-1, co)
        elif kind in ("frame_conv1d", "frame_conv"):
            ci, co, k, L = (int(rec[f]) for f in ("in_channels", "out_channels", "kernel_size",
                                                  "frame_length"))
            st, dl, g = int(rec.get("stride", 1)), int(rec.get("dilation", 1)), int(rec.get("groups", 1))
            idx, lout = _window_index(L, k, st, dl, int(rec.get("pad_left", 0)), int(rec.get("pad_right", 0)),
                                      rec.get("padding_mode", "zeros") in ("reflect", 1))
            xf = np.concatenate([y.reshape(-1, ci, L), np.zeros((y.shape[0], ci, 1))], axis=2)
            cols = xf[:, :, np.where(idx < 0, L, idx)]                     # (N, C_in, L_out, k)
            w = np.asarray(t["weight"], np.float64)
            cg, cog = ci // g, co // g
            out = np.empty((y.shape[0], co, lout))
            for gi in range(g):
                out[:, gi * cog:(gi + 1) * cog] = np.einsum(
                    "nclk,ock->nol", cols[:, gi * cg:(gi + 1) * cg], w[gi * cog:(gi + 1) * cog])
            b = t.get("bias")
            y = (out + (0 if b is None else np.asarray(b, np.float64)[:, None])).reshape(y.shape[0], -1)
        elif kind == "instance_norm":
            if len(lead) != 2:
                raise ValueError(f"an instance_norm record needs whole sequences (B, T, F), got {x.shape}")
            v = y.reshape(*lead, y.shape[-1])
            if lead[1]:   # each sequence's T steps (lengths: per_sequence cuts them)
                d = v - v.mean(axis=1, keepdims=True)
                v = d / np.sqrt((d * d).mean(axis=1, keepdims=True) + float(rec["eps"]))
                w, b = t.get("weight"), t.get("bias")
                v = v * (1 if w is None else np.asarray(w, np.float64))
                v = v + (0 if b is None else np.asarray(b, np.float64))
            y = v.reshape(-1, y.shape[-1])
        elif kind == "magnitude":
            M = y.shape[-1] // 2
            y = np.sqrt(y[:, :M] ** 2 + y[:, M:] ** 2)
        elif kind == "mul_halves":
            M = y.shape[-1] // 2
            y = y[:, :M] * y[:, M:]
        elif kind in ("max_pool1d", "avg_pool1d", "pool_time"):
            if len(lead) != 2:
                raise ValueError(f"a pooling over time needs whole sequences (B, T, F), got {x.shape}")
            y = pool_time_seq(rec, y.reshape(*lead, y.shape[-1]))
            lead = y.shape[:2]
            y = y.reshape(-1, y.shape[-1])
        elif kind == "log_mel":
            u = y * np.asarray(t["window"], np.float64)
            re, im = u @ np.asarray(t["cos"], np.float64).T, u @ np.asarray(t["sin"], np.float64).T
            p = re * re + im * im
            mel = (np.sqrt(p) if rec.get("power", 2.0) == 1 else p) @ np.asarray(t["fb"], np.float64)
            log = rec.get("log", "log")
            y = (np.log(mel + float(rec.get("log_offset", 1e-6))) if log == "log" else
                 10 * np.log10(np.maximum(mel, float(rec.get("amin", 1e-10)))) if log == "db" else mel)
        elif kind == "layer_norm":
            w, b = t.get("weight"), t.get("bias")
            mu = y.mean(-1, keepdims=True)
            y = (y - mu) / np.sqrt(((y - mu) ** 2).mean(-1, keepdims=True) + float(rec.get("eps", 1e-5)))
            y = y * (1 if w is None else np.asarray(w, np.float64))
            y = y + (0 if b is None else np.asarray(b, np.float64))
        elif kind == "scale_shift":
            y = y * np.asarray(t["scale"], np.float64) + np.asarray(t["shift"], np.float64)
        elif kind == "relu":
            y = np.maximum(y, 0)
        elif kind == "sigmoid":
            y = 1 / (1 + np.exp(-y))
        elif kind == "tanh":
            y = np.tanh(y)
        elif kind in ("hardsigmoid", "hard_sigmoid"):
            y = np.clip(float(rec.get("alpha", 1 / 6)) * y + float(rec.get("beta", 0.5)), 0, 1)
        elif kind in ("leaky_relu", "leakyrelu"):
            y = np.where(y >= 0, y, float(rec.get("alpha", 0.01)) * y)
        elif kind == "elu":
            y = np.where(y >= 0, y, float(rec.get("alpha", 1.0)) * np.expm1(np.minimum(y, 0)))
        elif kind == "hardtanh":
            y = np.clip(y, float(rec.get("alpha", -1.0)), float(rec.get("beta", 1.0)))
        elif kind == "silu":
            y = y / (1 + np.exp(-y))
        elif kind == "hardswish":
            y = y * np.clip(y + 3, 0, 6) / 6
        elif kind == "softplus":
            b, t = float(rec.get("alpha", 1.0)), float(rec.get("beta", 20.0))
            y = np.where(b * y > t, y, np.logaddexp(0, b * y) / b)
        elif kind == "softsign":
            y = y / (1 + np.abs(y))
        elif kind == "log_affine":
            y = np.log(float(rec["scale"]) * y + float(rec["offset"]))
        elif kind == "abs":
            y = np.abs(y)
        elif kind == "gelu":
            if rec.get("approximate", "none") == "tanh":
                y = 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3)))
            else:
                y = 0.5 * y * (1 + np.vectorize(math.erf, otypes=[np.float64])(y / math.sqrt(2)))
        else:
            raise ValueError(f"float_step_records: unknown per-step record kind {kind!r}")
    return y.reshape(*lead, y.shape[-1])
