"""The q8 (hybrid int8) quantisation rules, bit for bit as the C kernels apply them.

Every rule here is the executable form of ``docs/q8-contract.md``:

* **weights**, one float32 scale per output row ``r`` of ``W (R, K)``::

      m = max_k |W[r, k]|            (float32)
      s_w[r] = m / 127               (float32 division)
      Wq[r, k] = clip(rint(W[r, k] / s_w[r]), -127, 127)      (rint = round half to even)

  a row with ``m == 0`` gets ``s_w = 0`` and ``Wq = 0``. -128 never occurs.
* **activations** (step input ``x``, hidden state ``h``, GRU's ``r*h``, the head input), one
  scale per vector (per batch row, per step), *dynamic*::

      m = max_k |v[k]|;  if m == 0: q = 0, s = 0
      inv = 127 / m;  q[k] = clip(rint(v[k] * inv), -127, 127);  s = m / 127

  all in float32 (the product ``v * inv`` is rounded to float32 first, then to the nearest
  integer, ties to even). A *static* (calibrated) scale ``s`` uses ``inv = 1 / s`` instead.
* **accumulators**: ``acc[r] = sum_k Wq[r, k] * q[k]``, exact int32.
* **epilogue**: ``pre[r] = float32(acc[r]) * (s_v * s_w[r]) + b[r]``, the scale product first,
  all float32.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
QMAX = 127
_F127 = F32(127.0)
_ONE = F32(1.0)


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 quantisation of a weight matrix.

    The only implementation: the ``.rnc`` writer (``rnncore.io.rnc.quantize_rows``) and the
    quantised reference (:class:`~rnncore.quant.reference.QMatrix`) both call it.

    Parameters
    ----------
    w : ndarray (R, K), any float dtype (converted to float32 first)

    Returns
    -------
    wq : ndarray (R, K) int8, values in [-127, 127]
    scale : ndarray (R,) float32, ``w ~= wq * scale[:, None]``; 0 for an all-zero row
    """
    w = np.asarray(w, dtype=F32)
    if w.ndim != 2:
        raise ValueError(f"quantize_weights: w expected a 2-D (rows, cols) array, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("quantize_weights: w contains NaN or Inf")
    m = np.max(np.abs(w), axis=1) if w.shape[1] else np.zeros(w.shape[0], F32)
    scale = (m / _F127).astype(F32)
    wq = np.zeros(w.shape, dtype=np.int8)
    nz = scale > 0
    with np.errstate(over="ignore"):
        wq[nz] = np.clip(np.rint(w[nz] / scale[nz, None]), -QMAX, QMAX).astype(np.int8)
    return wq, scale


def quantize_activation(v: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quantise each vector along the last axis to int8 with one scale per vector.

    Parameters
    ----------
    v : ndarray (..., K), converted to float32; must be finite
    scale : None for dynamic quantisation (one max-abs scale per vector), or a positive static
        (calibrated) scale shared by every vector

    Returns
    -------
    q : ndarray (..., K) int8 in [-127, 127]
    s : ndarray (...,) float32, ``v ~= q * s[..., None]``; 0 for an all-zero vector (dynamic)
    """
    v = np.asarray(v, dtype=F32)
    if not np.all(np.isfinite(v)):
        raise ValueError("quantize_activation: input contains NaN or Inf")
    lead = v.shape[:-1]
    if scale is not None:
        s_static = F32(scale)
        if not (np.isfinite(s_static) and s_static > 0):
            raise ValueError(f"quantize_activation: static scale must be finite and > 0, got {scale!r}")
        inv = _ONE / s_static
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.clip(np.rint(v * inv), -QMAX, QMAX).astype(np.int8)
        return q, np.full(lead, s_static, dtype=F32)
    m = np.max(np.abs(v), axis=-1) if v.shape[-1] else np.zeros(lead, F32)
    m = np.asarray(m, dtype=F32)
    s = (m / _F127).astype(F32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(m > 0, _F127 / np.where(m > 0, m, _ONE), F32(0)).astype(F32)
        prod = (v * inv[..., None]).astype(F32)
        # 127/m overflows to inf only for subnormal m; v*inf for v == 0 is NaN: map it to 0
        prod = np.where(np.isnan(prod), F32(0), prod)
        q = np.clip(np.rint(prod), -QMAX, QMAX).astype(np.int8)
    return q, s


def int_matmul(q: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """Exact integer accumulators ``acc = q @ wq.T``.

    The product is computed in float64: every partial sum is an integer of magnitude at most
    ``127 * 127 * K < 2**53``, so float64 addition is exact in any order (and BLAS-fast); the
    result is checked to fit int32, as the C kernels accumulate in int32.

    Parameters
    ----------
    q : ndarray (..., K) int8
    wq : ndarray (R, K) int8

    Returns
    -------
    acc : ndarray (..., R) int32
    """
    if q.dtype != np.int8 or wq.dtype != np.int8:
        raise TypeError("int_matmul: both operands must be int8")
    k = wq.shape[1]
    if q.shape[-1] != k:
        raise ValueError(f"int_matmul: inner sizes differ: q (..., {q.shape[-1]}) vs wq (R, {k})")
    if 127 * 127 * k >= 2**31:
        raise ValueError(f"int_matmul: K={k} can overflow an int32 accumulator")
    acc = q.astype(np.float64) @ wq.astype(np.float64).T
    return acc.astype(np.int32)


def epilogue(acc: np.ndarray, s_v: np.ndarray, s_w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Dequantise accumulators: ``float32(acc) * (s_v * s_w) + bias``, all float32.

    Parameters
    ----------
    acc : ndarray (..., R) int32
    s_v : ndarray (...,) float32, one activation scale per vector
    s_w : ndarray (R,) float32, one weight scale per row
    bias : ndarray (R,) float32 or None

    Returns
    -------
    ndarray (..., R) float32
    """
    scale = (np.asarray(s_v, F32)[..., None] * np.asarray(s_w, F32)).astype(F32)
    out = (acc.astype(F32) * scale).astype(F32)
    if bias is not None:
        out = (out + np.asarray(bias, F32)).astype(F32)
    return out
