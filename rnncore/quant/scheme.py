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
* **bounded state scale** (``state_scale="bounded"``): the hidden state of a GRU, LSTM or tanh
  RNN lies in [-1, 1], so it is quantised with the static scale
  :data:`BOUNDED_STATE_SCALE` = float32(1 / 127), whose inverse is exactly 127 in float32:
  ``q = rint(h * 127)``, never clipped (docs/q8-contract.md, "The bounded state scale").
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

#: The static scale of a bounded hidden state (``state_scale="bounded"``): float32(1 / 127),
#: bits 0x3C010204. ``1 / BOUNDED_STATE_SCALE`` is exactly 127.0 in float32, so the quantiser's
#: product is ``h * 127`` and ``|h| <= 1`` gives ``|q| <= 127`` without clipping.
BOUNDED_STATE_SCALE = float(_ONE / _F127)
#: The cells whose hidden state is bounded by its activations (``|h| <= 1``): GRU (a convex mix
#: of tanh and the previous h), LSTM (sigmoid x tanh) and the tanh RNN. A ReLU RNN's is not.
BOUNDED_CELLS = ("gru", "lstm", "rnn_tanh")
#: ``state_scale`` values: None (the default: the calibration's state scales when calibrated,
#: else dynamic), "dynamic" (max-abs per vector) or "bounded" (:data:`BOUNDED_STATE_SCALE`;
#: :func:`activation_scales`).
STATE_SCALES = (None, "dynamic", "bounded")


def activation_scales(cells: list[str], num_directions: list[int], has_head: bool,
                      state_scale: str | None = None, calibration=None):
    """The static scale of every quantised vector of a model (None: dynamic).

    Parameters
    ----------
    cells : each layer's cell ("gru" | "lstm" | "rnn_tanh" | "rnn_relu")
    num_directions : each layer's directions (1 or 2)
    has_head : the model has a linear head
    state_scale : one of :data:`STATE_SCALES`. "bounded" gives every vector that is made of
        bounded states the scale :data:`BOUNDED_STATE_SCALE`: each direction's hidden state
        (and GRU's ``r*h``), every layer's input but the first (the previous layer's output)
        and the head's input; the first layer's input keeps the calibration's scale (or is
        dynamic). "dynamic" makes the states dynamic even when calibrated.
    calibration : a :class:`~rnncore.quant.reference.Calibration` or None

    Returns
    -------
    x_scale : list, one per layer; h_scale : list of lists, one per layer and direction;
    head_scale : float or None

    Raises
    ------
    ValueError
        for an unknown ``state_scale``, or "bounded" with a ReLU RNN layer (unbounded state)
    """
    if state_scale not in STATE_SCALES:
        raise ValueError(f"state_scale: expected one of {STATE_SCALES}, got {state_scale!r}")
    n = len(cells)
    cal = calibration
    x = [None if cal is None else float(cal.x_scale[k]) for k in range(n)]
    h = [[None] * num_directions[k] if cal is None else [float(v) for v in cal.h_scale[k]]
         for k in range(n)]
    head = None if cal is None or not has_head else cal.head_scale
    if state_scale == "dynamic":
        h = [[None] * num_directions[k] for k in range(n)]
    elif state_scale == "bounded":
        for k, cell in enumerate(cells):
            if cell not in BOUNDED_CELLS:
                raise ValueError(f"state_scale='bounded': layer {k} is a {cell!r} layer, whose state is "
                                 f"unbounded; expected only {BOUNDED_CELLS} layers (or state_scale=None "
                                 "or 'dynamic')")
            h[k] = [BOUNDED_STATE_SCALE] * num_directions[k]
            if k:
                x[k] = BOUNDED_STATE_SCALE
        if has_head and n:
            head = BOUNDED_STATE_SCALE
    return x, h, head


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
    return _quantize_rows_symmetric(w, 8, "quantize_weights")


#: q4 weights: int4 in [-Q4MAX, Q4MAX] (symmetric like q8's -127..127: the row's max |W| maps to
#: +-7 and -8 is never written, so the grid has no one-sided level; docs/q8-contract.md, "q4 weights")
Q4MAX = 7


def quantize_weights_q4(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int4 quantisation of a weight matrix (the q4 weights).

    The rule of :func:`quantize_weights` with 7 levels a side::

        m = max_k |W[r, k]|;  s_w[r] = m / 7  (float32);  Wq[r, k] = clip(rint(W[r, k] / s_w[r]), -7, 7)

    a row with ``m == 0`` gets ``s_w = 0`` and ``Wq = 0``. The ``.rnc`` writer stores ``Wq + 8``
    as nibbles (docs/rnc-format.md); activations, accumulators and the epilogue are q8's.

    Parameters
    ----------
    w : ndarray (R, K), any float dtype (converted to float32 first)

    Returns
    -------
    wq : ndarray (R, K) int8, values in [-7, 7]
    scale : ndarray (R,) float32, ``w ~= wq * scale[:, None]``; 0 for an all-zero row
    """
    return _quantize_rows_symmetric(w, 4, "quantize_weights_q4")


#: 16-bit codes (the 16 x 16 frame_conv form, docs/q8-contract.md "Which to keep"): symmetric,
#: -32768 never occurs, so a pair of products fits int32 (2 * 32767**2 < 2**31)
Q16MAX = 32767


def quantize_weights16(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int16 quantisation of a weight matrix (the 16 x 16 frame_conv form).

    The rule of :func:`quantize_weights` with 32767 levels a side::

        m = max_k |W[r, k]|;  s_w[r] = m / 32767  (float32)
        Wq[r, k] = clip(rint(W[r, k] / s_w[r]), -32767, 32767)

    Parameters
    ----------
    w : ndarray (R, K), any float dtype (converted to float32 first)

    Returns
    -------
    wq : ndarray (R, K) int16, values in [-32767, 32767]
    scale : ndarray (R,) float32, ``w ~= wq * scale[:, None]``; 0 for an all-zero row
    """
    return _quantize_rows_symmetric(w, 16, "quantize_weights16")


def _quantize_rows_symmetric(w: np.ndarray, bits: int, who: str) -> tuple[np.ndarray, np.ndarray]:
    """The per-row symmetric rule of q8 (``bits = 8``) and q4 (``bits = 4``) weights::

        qmax = 2**(bits - 1) - 1;  m = max_k |W[r, k]|;  s_w[r] = m / qmax  (float32)
        Wq[r, k] = clip(rint(W[r, k] / s_w[r]), -qmax, qmax);  m == 0: s_w = 0, Wq = 0

    Parameters
    ----------
    w : ndarray (R, K), any float dtype (converted to float32 first)
    bits : int, 8 or 4 (int8 codes) or 16 (int16 codes)
    who : str, the public function named in errors

    Returns
    -------
    wq : ndarray (R, K) int8 (int16 for 16 bits), values in [-qmax, qmax]
    scale : ndarray (R,) float32
    """
    qmax = (1 << (bits - 1)) - 1
    w = np.asarray(w, dtype=F32)
    if w.ndim != 2:
        raise ValueError(f"{who}: w expected a 2-D (rows, cols) array, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{who}: w contains NaN or Inf")
    m = np.max(np.abs(w), axis=1) if w.shape[1] else np.zeros(w.shape[0], F32)
    scale = (m / F32(qmax)).astype(F32)
    dtype = np.int16 if bits > 8 else np.int8
    wq = np.zeros(w.shape, dtype=dtype)
    nz = scale > 0
    with np.errstate(over="ignore"):
        wq[nz] = np.clip(np.rint(w[nz] / scale[nz, None]), -qmax, qmax).astype(dtype)
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
    return _quantize_dynamic(v, QMAX, np.int8)


def _quantize_dynamic(v: np.ndarray, qmax: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The dynamic rule of :func:`quantize_activation` (``qmax = 127``, int8) and
    :func:`quantize_activation16` (``qmax = 32767``, int16) on finite float32 ``v (..., K)``."""
    lead = v.shape[:-1]
    fq = F32(qmax)
    m = np.max(np.abs(v), axis=-1) if v.shape[-1] else np.zeros(lead, F32)
    m = np.asarray(m, dtype=F32)
    s = (m / fq).astype(F32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(m > 0, fq / np.where(m > 0, m, _ONE), F32(0)).astype(F32)
        prod = (v * inv[..., None]).astype(F32)
        # qmax/m overflows to inf only for subnormal m; v*inf for v == 0 is NaN: map it to 0
        prod = np.where(np.isnan(prod), F32(0), prod)
        q = np.clip(np.rint(prod), -qmax, qmax).astype(dtype)
    return q, s


def quantize_activation16(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantise each vector along the last axis to int16, one dynamic max-abs scale per vector
    (the 16 x 16 frame_conv form): :func:`quantize_activation`'s dynamic rule with 32767 levels
    a side, all in float32::

        m = max_k |v[k]|;  if m == 0: q = 0, s = 0
        inv = 32767 / m;  q[k] = clip(rint(v[k] * inv), -32767, 32767);  s = m / 32767

    Parameters
    ----------
    v : ndarray (..., K), converted to float32; must be finite

    Returns
    -------
    q : ndarray (..., K) int16 in [-32767, 32767]
    s : ndarray (...,) float32, ``v ~= q * s[..., None]``; 0 for an all-zero vector
    """
    v = np.asarray(v, dtype=F32)
    if not np.all(np.isfinite(v)):
        raise ValueError("quantize_activation16: input contains NaN or Inf")
    return _quantize_dynamic(v, Q16MAX, np.int16)


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


def int_matmul16(q: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """Exact int64 accumulators ``acc = q @ wq.T`` of int16 codes in [-32767, 32767].

    Computed in float64 as :func:`int_matmul`: every partial sum is an integer of magnitude at
    most ``32767**2 * K < 2**53`` (checked), so exact in any order.

    Parameters
    ----------
    q : ndarray (..., K) int16
    wq : ndarray (R, K) int16

    Returns
    -------
    acc : ndarray (..., R) int64
    """
    if q.dtype != np.int16 or wq.dtype != np.int16:
        raise TypeError(f"int_matmul16: both operands must be int16, got {q.dtype} and {wq.dtype}")
    k = wq.shape[1]
    if q.shape[-1] != k:
        raise ValueError(f"int_matmul16: inner sizes differ: q (..., {q.shape[-1]}) vs wq (R, {k})")
    if Q16MAX * Q16MAX * k >= 2**53:
        raise ValueError(f"int_matmul16: K={k} can exceed float64's exact integers")
    acc = q.astype(np.float64) @ wq.astype(np.float64).T
    return acc.astype(np.int64)


def epilogue(acc: np.ndarray, s_v: np.ndarray, s_w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Dequantise accumulators: ``float32(acc) * (s_v * s_w) + bias``, all float32.

    Parameters
    ----------
    acc : ndarray (..., R) int32, or int64 of magnitude < 2**53 (converted with one rounding,
        round to nearest even, as C's ``(float)`` of an int64)
    s_v : ndarray (...,) float32, one activation scale per vector
    s_w : ndarray (R,) float32, one weight scale per row
    bias : ndarray (R,) float32 or None

    Returns
    -------
    ndarray (..., R) float32
    """
    scale = (np.asarray(s_v, F32)[..., None] * np.asarray(s_w, F32)).astype(F32)
    out = (acc.astype(np.float64).astype(F32) * scale).astype(F32)
    if bias is not None:
        out = (out + np.asarray(bias, F32)).astype(F32)
    return out
