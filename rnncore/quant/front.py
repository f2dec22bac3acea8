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

* ``conv_time`` (a causal Conv1d over time; int8 weights ``Wq (C_out, C_in/groups, k)``, scales
  ``s_w``, bias ``b``): at step ``t`` the ``k`` taps of every channel, ``v[c*k + j] =
  x_{t - P + j*dilation}[c]`` (``P = dilation (k - 1)``, zero before the sequence's start), are
  quantised as ONE vector (``q, s_x = quantize_activation(v)``), then per group::

      acc[o] = sum_{c < C_g, j} Wq[o, c, j] q[(g(o) C_g + c) k + j]
      y[o] = float32(acc[o]) * (s_x * s_w[o]) + b[o]

* ``residual``: ``y = x + u`` with ``u`` the input of the record ``span`` records before it;
* ``magnitude``: ``y[i] = sqrt(x[i]*x[i] + x[M+i]*x[M+i])``;
* ``pointwise``: relu ``x > 0 ? x : 0``, hardsigmoid ``min(max(alpha x + beta, 0), 1)``,
  sigmoid ``1 / (1 + exp(-x))``, tanh, gelu ``0.5 x (1 + erf(x / sqrt 2))``, gelu tanh;
* ``layer_norm``: ``s`` the left-to-right float32 sum of ``x``, ``mean = s / n``, ``v`` the
  left-to-right sum of ``(x - mean)^2``, ``r = 1 / sqrt(v / n + eps)``,
  ``y = ((x - mean) * r) * w + b``;
* ``scale_shift``: ``y = x * scale + shift``.

Every operation is one float32 operation, rounded (the C core: ``-ffp-contract=off``), so the C
rows equal these bit for bit, with one exception: sigmoid, tanh and the gelus call the C
library's ``expf``/``tanhf``/``erff``, whose last bit may differ from NumPy's (relu, hardsigmoid,
magnitude, layer_norm, scale_shift and the convolution are exact).
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.quant.scheme import F32, epilogue, int_matmul, quantize_activation

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
    x = np.asarray(x, F32)
    B = x.shape[0]
    ci, co, k, L = (int(rec[f]) for f in ("in_channels", "out_channels", "kernel_size", "frame_length"))
    st, dl, g = int(rec.get("stride", 1)), int(rec.get("dilation", 1)), int(rec.get("groups", 1))
    pl, pr = int(rec.get("pad_left", 0)), int(rec.get("pad_right", 0))
    reflect = rec.get("padding_mode", "zeros") in ("reflect", 1)
    idx, lout = _window_index(L, k, st, dl, pl, pr, reflect)
    q, sx = quantize_activation(x)                       # one vector per step: (B, C_in*L), (B,)
    qf = np.concatenate([q.reshape(B, ci, L), np.zeros((B, ci, 1), np.int8)], axis=2)
    cols = qf[:, :, np.where(idx < 0, L, idx)]           # (B, C_in, L_out, k): -1 reads the zero
    cg, cog = ci // g, co // g
    wq = np.asarray(rec["qweight"], np.int8)
    acc = np.empty((B, co, lout), np.int32)
    for gi in range(g):
        c = cols[:, gi * cg:(gi + 1) * cg].transpose(0, 2, 1, 3).reshape(B * lout, cg * k)
        w = wq[gi * cog:(gi + 1) * cog].reshape(cog, cg * k)
        acc[:, gi * cog:(gi + 1) * cog] = int_matmul(c, w).reshape(B, lout, cog).transpose(0, 2, 1)
    y = epilogue(acc.transpose(0, 2, 1), np.repeat(sx[:, None], lout, axis=1),
                 np.asarray(rec["scale"], F32), np.asarray(rec["bias"], F32))   # (B, L_out, C_out)
    y = np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(B, co * lout)
    return (y, acc, sx) if return_acc else y


def conv_time_q8(rec: dict, x: np.ndarray) -> np.ndarray:
    """A q8 conv_time on whole sequences: ``x (B, T, C_in)`` float32 (step 0 the start of each
    sequence: zeros before it) -> ``(B, T, C_out)`` float32.

    ``rec``: ``in_channels``, ``out_channels``, ``kernel_size``, ``dilation``, ``groups`` and
    ``qweight (C_out, C_in/groups, k)`` int8, ``scale (C_out,)`` and ``bias (C_out,)`` float32.
    """
    x = np.asarray(x, F32)
    B, T, ci = x.shape
    co, k = int(rec["out_channels"]), int(rec["kernel_size"])
    dl, g = int(rec.get("dilation", 1)), int(rec.get("groups", 1))
    P = dl * (k - 1)
    xp = np.concatenate([np.zeros((B, P, ci), F32), x], axis=1)        # (B, P + T, C_in)
    taps = np.stack([xp[:, j * dl:j * dl + T] for j in range(k)], axis=3)   # (B, T, C_in, k)
    q, sx = quantize_activation(taps.reshape(B, T, ci * k))          # one vector per step
    cg, cog = ci // g, co // g
    wq = np.asarray(rec["qweight"], np.int8).reshape(co, cg * k)
    acc = np.empty((B, T, co), np.int32)
    for gi in range(g):
        acc[..., gi * cog:(gi + 1) * cog] = int_matmul(q[..., gi * cg * k:(gi + 1) * cg * k],
                                                       wq[gi * cog:(gi + 1) * cog])
    return epilogue(acc, sx, np.asarray(rec["scale"], F32), np.asarray(rec["bias"], F32))


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
    raise ValueError(f"pointwise: unknown activation {name!r}")


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """model.c ``layer_norm_row``: sequential float32 sums, ``((x - mean) * r) * w + b``."""
    x = np.asarray(x, F32)
    n = F32(x.shape[-1])
    mean = _seq_sum(x) / n
    d = x - mean[..., None]
    r = F32(1) / np.sqrt(_seq_sum(d * d) / n + F32(eps))
    return (d * r[..., None]) * np.asarray(w, F32) + np.asarray(b, F32)


def step_record(rec: dict, x: np.ndarray) -> np.ndarray:
    """One per-step record, as :func:`rnncore.io.rnc.read_rnc` describes it (``front``, ``post``,
    ``post_pooled``), on rows ``x (B, F)`` in the C core's float32 arithmetic; a q8 frame_conv
    carries ``tensors["qweight"]`` and ``tensors["scale"]``."""
    kind = str(rec["kind"]).lower()
    t = rec.get("tensors", rec)
    x = np.asarray(x, F32)
    if kind in ("frame_conv1d", "frame_conv"):
        if t.get("qweight") is None:
            raise ValueError("step_record: a frame_conv kept in float32 has no bit-exact NumPy form "
                             "(its product is the ISA's f32 GEMM row)")
        return frame_conv_q8({**rec, "qweight": t["qweight"], "scale": t["scale"], "bias": t["bias"]}, x)
    if kind == "magnitude":
        M = x.shape[-1] // 2
        re, im = x[..., :M], x[..., M:]
        return np.sqrt(re * re + im * im)
    if kind == "layer_norm":
        return layer_norm(x, t["weight"], t["bias"], rec["eps"])
    if kind == "scale_shift":
        return x * np.asarray(t["scale"], F32) + np.asarray(t["shift"], F32)
    if kind == "gelu" and rec.get("approximate") == "tanh":
        kind = "gelu_tanh"
    return pointwise(kind, x, rec.get("alpha", 0.0), rec.get("beta", 0.0))


def step_records(records: list, x: np.ndarray) -> np.ndarray:
    """Rows ``x (..., F)`` through ``records`` in order (leading axes kept); a conv_time record
    needs whole sequences, ``x (B, T, F)`` (a step alone has no window: ``ValueError``)."""
    x = np.asarray(x, F32)
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1])
    inputs = []
    for rec in records:
        inputs.append(y)
        kind = str(rec["kind"]).lower()
        if kind == "residual":
            y = y + inputs[len(inputs) - 1 - int(rec["span"])]
        elif kind in ("conv1d", "conv_time"):
            if len(lead) != 2:
                raise ValueError("step_records: a conv_time record needs whole sequences (B, T, F), "
                                 f"got {x.shape}")
            t = rec.get("tensors", rec)
            if t.get("qweight") is None:
                raise ValueError("step_records: a conv_time kept in float32 has no bit-exact NumPy form "
                                 "(its product is the ISA's f32 GEMM row)")
            full = {**rec, "qweight": t["qweight"], "scale": t["scale"], "bias": t["bias"]}
            y = conv_time_q8(full, y.reshape(*lead, -1)).reshape(-1, int(rec["out_channels"]))
        else:
            y = step_record(rec, y)
    return y.reshape(*lead, y.shape[-1])


def float_step_records(records: list, x: np.ndarray) -> np.ndarray:
    """The per-step records (``rc.nn`` layers' ``record()`` dicts, as a float
    :class:`~rnncore.spec.ModelSpec` holds them) in float64, on ``x (B, T, F)`` (or rows ``(B, F)``
    without conv1d): the float model the records describe, for calibration (rnncore.quant.calibrate
    measures the recurrent layers' and the head's inputs after them)."""
    y = np.asarray(x, np.float64)
    lead = y.shape[:-1]
    y = y.reshape(-1, y.shape[-1])
    inputs = []
    for rec in records:
        inputs.append(y)
        kind = str(rec.get("kind", "")).lower()
        t = rec.get("tensors", rec)
        if kind == "residual":
            y = y + inputs[len(inputs) - 1 - int(rec["span"])]
        elif kind in ("conv1d", "conv_time"):
            if len(lead) != 2:
                raise ValueError(f"a conv1d record needs whole sequences (B, T, F), got {x.shape}")
            B, T = lead
            ci, co, k = int(rec["in_channels"]), int(rec["out_channels"]), int(rec["kernel_size"])
            dl, g = int(rec.get("dilation", 1)), int(rec.get("groups", 1))
            P = dl * (k - 1)
            xp = np.concatenate([np.zeros((B, P, ci)), y.reshape(B, T, ci)], axis=1)
            taps = np.stack([xp[:, j * dl:j * dl + T] for j in range(k)], axis=3)   # (B, T, C_in, k)
            w = np.asarray(t["weight"], np.float64)
            cg, cog = ci // g, co // g
            out = np.empty((B, T, co))
            for gi in range(g):
                out[..., gi * cog:(gi + 1) * cog] = np.einsum(
                    "btck,ock->bto", taps[:, :, gi * cg:(gi + 1) * cg], w[gi * cog:(gi + 1) * cog])
            b = t.get("bias")
            y = out.reshape(-1, co) + (0 if b is None else np.asarray(b, np.float64))
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
        elif kind == "magnitude":
            M = y.shape[-1] // 2
            y = np.sqrt(y[:, :M] ** 2 + y[:, M:] ** 2)
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
        elif kind == "gelu":
            if rec.get("approximate", "none") == "tanh":
                y = 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3)))
            else:
                y = 0.5 * y * (1 + np.vectorize(math.erf, otypes=[np.float64])(y / math.sqrt(2)))
        else:
            raise ValueError(f"float_step_records: unknown per-step record kind {kind!r}")
    return y.reshape(*lead, y.shape[-1])
