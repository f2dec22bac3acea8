"""The ``.rnc`` model file: writer and reader (byte layout in ``docs/rnc-format.md``).

A model is described by a plain ``dict`` (the *spec*)::

    spec = {
        "precision": "f32" | "q8",
        "input_size": 12,                   # features per step (omit with an embedding)
        "embedding": None | {"weight": (num, dim) floats},
        "layers": [
            {"kind": "gru" | "lstm" | "rnn",
             "nonlinearity": "tanh" | "relu",   # rnn only (default tanh)
             "reset_after": True,               # gru only (default True, PyTorch's form)
             "bidirectional": False,
             "weights": {"weight_ih": (G*H, I), "weight_hh": (G*H, H),
                         "bias_ih": (G*H,), "bias_hh": (G*H,),        # optional (zeros)
                         "weight_ih_reverse": ..., ...},              # bidirectional only
             "x_scale": None, "h_scale": None,   # optional static q8 activation scales
             "options": None},                  # optional cell options (CELL_OPTIONS below)
        ],                                  # (h_scale: one float, or [fwd, bwd])
        "last_step": False,                 # pool y[b, lengths[b]-1] before the head
        "last_step_bidirectional": False,   # ... with the backward half taken at t = 0
        "last_step_mean": False,            # ... or pool the mean over the valid steps (v2 only)
        "last_step_max": False,             # ... or their maximum, feature by feature (v2 only)
        "last_step_last": False,            # with mean and/or max: the last step too, the pooled
                                            # row [last | mean | max] of those present (ConcatPool)
        "head": None | {"weight": (O, D), "bias": (O,), "activation": "none" | "relu" | "sigmoid"
                        | "tanh" | "softmax", "in_scale": None},
    }

Weight names follow PyTorch's ``state_dict`` (gate order GRU ``r, z, n``, LSTM ``i, f, g, o``);
a layer suffix such as ``weight_ih_l0`` / ``weight_ih_l0_reverse`` is accepted too.
``write_rnc(spec)`` returns the file bytes, format version 2 (an ordered list of layer records;
``write_rnc(spec, version=1)`` writes the older fixed-header form, which the C core still
reads). Both versions' field offsets come from ``csrc/src/rnc_layout.h`` through
:mod:`rnncore.io.rnc_layout`, the description the C loader is generated from. For ``"q8"`` it
quantises every weight matrix per row exactly as ``docs/q8-contract.md`` fixes (symmetric int8 in
[-127, 127], one float32 scale per row) and stores it in the packed layout the C kernels read.
A layer's ``options`` (format version 2 only) is a dict of the ONNX RNN/GRU/LSTM attributes and
learned initial states: ``reverse``, ``reverse_output`` (with ``reverse``: the outputs in
processing order, Keras' ``go_backwards``), ``input_forget`` (bools), ``clip`` (float or None),
``activations`` (per direction, a list of ``(name, alpha, beta)``, names of
:data:`CELL_ACTIVATIONS`; None: the cell's defaults), ``peepholes`` ``(D, 3, H)`` rows ``p_i, p_f,
p_o``, ``initial_h`` / ``initial_c`` ``(D, H)`` (None: absent), ``proj`` ``(D, P, H)`` (an LSTM's
projection), ``layer_norm`` (a layer-normalised GRU / LSTM, :mod:`rnncore.nn.lncells`: a dict
``per_gate`` (bool), ``eps`` (float), ``ih``, ``hh`` ``(D, 2, G*H)`` and, LSTM, ``c`` ``(D, 2, H)``: per
direction the LayerNorm gains then shifts; the biases are then zero). Options equal to the
defaults are not written (the file is then byte for byte the plain layer's).
``read_rnc(data)`` parses and checks a file of either version and returns the same kind of
description (identical for both versions of one model), unpacked (for q8 also the stored integers
and scales, which the quantised reference uses).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from typing import Any

import numpy as np

from rnncore.io.rnc_layout import LAYOUT  # the byte layout, parsed from csrc/src/rnc_layout.h

_C = LAYOUT.constants
MAGIC = b"RNCM"
VERSION = _C["V2"]  # what write_rnc writes by default
VERSIONS = (_C["V1"], _C["V2"])  # what read_rnc (and the C loader) read
HEADER_SIZE = _C["V1_HEADER_SIZE"]  # version 1
LAYER_DESC_SIZE = _C["V1_DESC_SIZE"]  # version 1
HEADER_SIZE_V2 = _C["V2_HEADER_SIZE"]
ALIGN = _C["ALIGN"]
ROW_BLOCK = 16
K_GROUP = 4
RECORD_KINDS = {"embedding": _C["REC_EMBEDDING"], "recurrent": _C["REC_RECURRENT"],
                "last_step": _C["REC_LAST_STEP"], "linear": _C["REC_LINEAR"],
                "frame_conv": _C["REC_FRAME_CONV"], "pointwise": _C["REC_POINTWISE"],
                "magnitude": _C["REC_MAGNITUDE"], "layer_norm": _C["REC_LAYER_NORM"],
                "scale_shift": _C["REC_SCALE_SHIFT"], "conv_time": _C["REC_CONV_TIME"],
                "residual": _C["REC_RESIDUAL"]}
_STEP_KINDS = ("frame_conv", "pointwise", "magnitude", "layer_norm", "scale_shift", "conv_time", "log_mel",
               "residual", "pool_time", "mul_halves", "concat", "instance_norm")
RECORD_KINDS["pool_time"] = _C["REC_POOL_TIME"]
#: pool_time's op field (rnc_layout.h RNC_POOL_*), by the layers' record() kinds
POOL_OPS = {"max_pool1d": _C["POOL_MAX"], "avg_pool1d": _C["POOL_AVG"]}
RECORD_KINDS["log_mel"] = _C["REC_LOG_MEL"]
RECORD_KINDS["mul_halves"] = _C["REC_MUL_HALVES"]
RECORD_KINDS["concat"] = _C["REC_CONCAT"]
RECORD_KINDS["instance_norm"] = _C["REC_INSTANCE_NORM"]   # front-end only, rnc_run only
RECORD_KINDS["positions"] = _C["REC_POSITIONS"]
_MEL_LOGS = {None: _C["MEL_LOG_NONE"], "log": _C["MEL_LOG"], "db": _C["MEL_LOG_DB"]}
#: the activations of a pointwise record (rnc_layout.h RNC_PW_*), by the layers' record() kinds
POINTWISE = {"relu": _C["PW_RELU"], "sigmoid": _C["PW_SIGMOID"], "tanh": _C["PW_TANH"],
             "hardsigmoid": _C["PW_HARDSIGMOID"], "gelu": _C["PW_GELU"], "gelu_tanh": _C["PW_GELU_TANH"],
             "leakyrelu": _C["PW_LEAKYRELU"], "elu": _C["PW_ELU"],
             "hardtanh": _C["PW_HARDTANH"], "silu": _C["PW_SILU"], "hardswish": _C["PW_HARDSWISH"],
             "softplus": _C["PW_SOFTPLUS"], "softsign": _C["PW_SOFTSIGN"],
             "log_affine": _C["PW_LOG_AFFINE"], "abs": _C["PW_ABS"]}
_POINTWISE_NAMES = {v: k for k, v in POINTWISE.items()}

PRECISIONS = {"f32": 0, "q8": 1, "q4": 2}
KINDS = {("rnn", "tanh"): 0, ("rnn", "relu"): 1, ("gru", None): 2, ("lstm", None): 3}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4, "log_softmax": 5}
_KIND_NAMES = {0: ("rnn", "tanh"), 1: ("rnn", "relu"), 2: ("gru", None), 3: ("lstm", None)}
_PARAMS = ("weight_ih", "weight_hh", "s_ih", "s_hh", "bias_ih", "bias_hh")
#: the cell activations of the options block (rnc_layout.h RNC_CELLACT_*), ONNX names lower-cased
CELL_ACTIVATIONS = {"sigmoid": _C["CELLACT_SIGMOID"], "tanh": _C["CELLACT_TANH"], "relu": _C["CELLACT_RELU"],
                    "hardsigmoid": _C["CELLACT_HARDSIGMOID"], "affine": _C["CELLACT_AFFINE"],
                    "leakyrelu": _C["CELLACT_LEAKYRELU"], "thresholdedrelu": _C["CELLACT_THRESHOLDEDRELU"],
                    "scaledtanh": _C["CELLACT_SCALEDTANH"], "elu": _C["CELLACT_ELU"],
                    "softsign": _C["CELLACT_SOFTSIGN"], "softplus": _C["CELLACT_SOFTPLUS"]}
_CELL_ACT_NAMES = {v: k for k, v in CELL_ACTIVATIONS.items()}
#: activations per cell (ONNX: RNN f; GRU f, g; LSTM f, g, h) and their defaults
CELL_ACT_SLOTS = {"rnn": 1, "gru": 2, "lstm": 3}
_DEFAULT_CELL_ACTS = {("rnn", "tanh"): ["tanh"], ("rnn", "relu"): ["relu"],
                      ("gru", None): ["sigmoid", "tanh"], ("lstm", None): ["sigmoid", "tanh", "tanh"]}

MAX_LAYERS = _C["FILE_MAX_LAYERS"]  # the C core's limits (rnc_layout.h RNC_FILE_*)
MAX_HIDDEN = _C["FILE_MAX_HIDDEN"]
MAX_FEATURES = _C["FILE_MAX_FEATURES"]
MAX_VOCAB = _C["FILE_MAX_VOCAB"]


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _as_f32(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch.Tensor without importing torch
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: weights must be finite")
    return arr


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 quantisation (docs/q8-contract.md).

    Parameters
    ----------
    w : (R, K) float array

    Returns
    -------
    wq : (R, K) int8 in [-127, 127], ``clip(rint(w / s), -127, 127)``
    s : (R,) float32, ``max_k |w[r, k]| / 127`` (0 for an all-zero row, whose ``wq`` is 0)
    """
    from rnncore.quant.scheme import quantize_weights  # the one implementation of the contract

    return quantize_weights(w)


# ----------------------------------------------------------------------------------------------
# packing
# ----------------------------------------------------------------------------------------------
def pack_q8(wq: np.ndarray) -> np.ndarray:
    """Pack an int8 (Rp, Kp) matrix (Rp % 16 == 0, Kp % 4 == 0) into the q8 layout.

    ``out[(b * Kp/4 + g) * 64 + r * 4 + j] = wq[16 b + r, 4 g + j]``.
    """
    rp, kp = wq.shape
    assert rp % ROW_BLOCK == 0 and kp % K_GROUP == 0
    t = wq.reshape(rp // ROW_BLOCK, ROW_BLOCK, kp // K_GROUP, K_GROUP).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(t).reshape(-1).astype(np.int8)


def unpack_q8(packed: np.ndarray, rp: int, kp: int) -> np.ndarray:
    """Inverse of :func:`pack_q8`: (Rp * Kp,) int8 -> (Rp, Kp)."""
    t = packed.reshape(rp // ROW_BLOCK, kp // K_GROUP, ROW_BLOCK, K_GROUP).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(t).reshape(rp, kp)


def pack_q4(wq: np.ndarray) -> np.ndarray:
    """Pack an int (Rp, Kp) matrix of values in -7..7 (Rp % 16 == 0, Kp % 8 == 0) into the q4 layout.

    ``out[(b * Kp/8 + p) * 64 + r * 4 + j] = (wq[16 b + r, 8 p + j] + 8)
    | (wq[16 b + r, 8 p + 4 + j] + 8) << 4``
    (docs/rnc-format.md, "q4 weights").
    """
    rp, kp = wq.shape
    assert rp % ROW_BLOCK == 0 and kp % 8 == 0
    n = (np.asarray(wq, np.int16) + 8).astype(np.uint8)
    t = n.reshape(rp // ROW_BLOCK, ROW_BLOCK, kp // 8, 2, K_GROUP).transpose(0, 2, 1, 4, 3)
    return np.ascontiguousarray(t[..., 0] | (t[..., 1] << 4)).reshape(-1)


def unpack_q4(packed: np.ndarray, rp: int, kp: int) -> np.ndarray:
    """Inverse of :func:`pack_q4`: (Rp * Kp / 2,) uint8 -> (Rp, Kp) int8 (Kp % 8 == 0)."""
    b = np.asarray(packed, np.uint8).reshape(rp // ROW_BLOCK, kp // 8, ROW_BLOCK, K_GROUP)
    n = np.stack([b & 15, b >> 4], axis=-1).astype(np.int8) - 8   # (.., r, j, half)
    return np.ascontiguousarray(n.transpose(0, 2, 1, 4, 3)).reshape(rp, kp)


def pack_f32(w: np.ndarray) -> np.ndarray:
    """Pack a float32 (Rp, K) matrix (Rp % 16 == 0): ``out[(b*K + k)*16 + r] = w[16 b + r, k]``."""
    rp, k = w.shape
    assert rp % ROW_BLOCK == 0
    t = w.reshape(rp // ROW_BLOCK, ROW_BLOCK, k).transpose(0, 2, 1)
    return np.ascontiguousarray(t).reshape(-1).astype(np.float32)


def unpack_f32(packed: np.ndarray, rp: int, k: int) -> np.ndarray:
    """Inverse of :func:`pack_f32`: (Rp * K,) float32 -> (Rp, K)."""
    t = packed.reshape(rp // ROW_BLOCK, k, ROW_BLOCK).transpose(0, 2, 1)
    return np.ascontiguousarray(t).reshape(rp, k)


def _pad_gates(a: np.ndarray, g: int, h: int, hp: int) -> np.ndarray:
    """(G*H, ...) -> (G*Hp, ...) with each gate's rows padded with zeros to Hp."""
    rest = a.shape[1:]
    out = np.zeros((g, hp) + rest, dtype=a.dtype)
    out[:, :h] = a.reshape((g, h) + rest)
    return out.reshape((g * hp,) + rest)


def _unpad_gates(a: np.ndarray, g: int, h: int, hp: int) -> np.ndarray:
    rest = a.shape[1:]
    return np.ascontiguousarray(a.reshape((g, hp) + rest)[:, :h].reshape((g * h,) + rest))


# ----------------------------------------------------------------------------------------------
# writer
# ----------------------------------------------------------------------------------------------
class _Blob:
    """Tensor area: appends arrays at 64-byte aligned offsets."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.parts: list[bytes] = []
        self.pos = start

    def add(self, arr: np.ndarray | None) -> tuple[int, int]:
        if arr is None:
            return (0, 0)
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        pad = _round_up(self.pos, ALIGN) - self.pos
        self.parts.append(b"\0" * pad)
        self.pos += pad
        off = self.pos
        self.parts.append(data)
        self.pos += len(data)
        return (off, len(data))


def _norm_weights(weights: dict) -> dict[str, Any]:
    out = {}
    for key, val in weights.items():
        m = re.fullmatch(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)(?:_l\d+)?(_reverse)?", key)
        if not m:
            raise ValueError(f"unknown weight name {key!r}")
        out[m.group(1) + (m.group(2) or "")] = val
    if any(k.startswith("weight_hr") for k in out):
        raise ValueError("proj_size (weight_hr) is not supported by the C core")
    return out


def _matrix(w: np.ndarray, precision: str, g: int, h: int, hp: int, k: int):
    """Padded/quantised/packed matrix -> (packed weights, scales or None)."""
    wp = _pad_gates(w, g, h, hp)
    if precision == "f32":
        return pack_f32(wp), None
    if precision == "q4":
        from rnncore.quant.scheme import quantize_weights_q4

        wq, s = quantize_weights_q4(wp)
        full = np.zeros((g * hp, _round_up(k, 8)), np.int8)
        full[:, :k] = wq
        return pack_q4(full), s
    wq, s = quantize_rows(wp)
    kp = _round_up(k, K_GROUP)
    full = np.zeros((g * hp, kp), np.int8)
    full[:, :k] = wq
    return pack_q8(full), s


#: block-sparse q8 weights (docs/rnc-format.md): a q8 matrix is stored block-sparse when the share
#: of its ``block_rows`` x 4 blocks holding a nonzero weight is at most ``max_density``; with
#: ``shared_gates=True`` (the default) a GRU / LSTM matrix whose gates all have the same zero blocks
#: (checked) is written in the gate-shared layout (16-row blocks only), the others in the per-gate
#: one. Every ISA has gate-shared rows, measured at least as fast as the per-gate ones on each
#: (docs/performance.md, "The gate-shared layout"); ``shared_gates=False`` keeps the per-gate
#: layout, which readers that predate the gate-shared flags also load.
SPARSE_DEFAULT = {"max_density": 0.5, "block_rows": 16, "shared_gates": True}


def _sparse_options(sparse: Any) -> dict | None:
    """``sparse`` of a spec / ``write_rnc``: None or False (dense), True (the defaults) or a dict
    with ``max_density`` (0..1), ``block_rows`` (8 or 16) and ``shared_gates`` (bool)."""
    if sparse is None or sparse is False:
        return None
    opts = dict(SPARSE_DEFAULT)
    if sparse is not True:
        if not isinstance(sparse, dict) or set(sparse) - set(opts):
            raise ValueError(f"sparse: expected None, True or a dict with keys {sorted(opts)}, "
                             f"got {sparse!r}")
        opts.update(sparse)
    d, bh = opts["max_density"], opts["block_rows"]
    if not (isinstance(d, (int, float)) and 0.0 <= float(d) <= 1.0):
        raise ValueError(f"sparse['max_density']: expected a number in 0..1, got {d!r}")
    if bh not in (_C["SPQ8_BLOCK_ROWS_MIN"], _C["SPQ8_BLOCK_ROWS_MAX"]):
        raise ValueError(f"sparse['block_rows']: expected 8 or 16, got {bh!r}")
    if not isinstance(opts["shared_gates"], bool):
        raise ValueError(f"sparse['shared_gates']: expected True or False, got {opts['shared_gates']!r}")
    return {"max_density": float(d), "block_rows": int(bh), "shared_gates": opts["shared_gates"]}


def block_density(wq: np.ndarray, block_rows: int) -> float:
    """Share of the ``block_rows`` x 4 blocks of a padded q8 matrix ``(R, Kp)`` holding a nonzero
    weight."""
    r, kp = wq.shape
    nz = wq.reshape(r // block_rows, block_rows, kp // K_GROUP, K_GROUP).any(axis=(1, 3))
    return float(nz.mean()) if nz.size else 0.0


def pack_sparse_q8(wq: np.ndarray, block_rows: int) -> np.ndarray:
    """The block-sparse tensor (rnc_layout.h, spq8) of a padded q8 matrix ``(R, Kp)`` (R a
    multiple of 16, Kp of 4, zero past the inputs): header, row pointers, row sums, block
    columns, blocks; as bytes (uint8)."""
    r, kp = wq.shape
    groups, rb = kp // K_GROUP, r // block_rows
    blocks = wq.reshape(rb, block_rows, groups, K_GROUP).transpose(0, 2, 1, 3)  # (rb, groups, bh, 4)
    nz = blocks.any(axis=(2, 3))
    rowptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype("<u4")
    cols = np.nonzero(nz)[1].astype("<u2")
    data = blocks[nz].reshape(-1).astype(np.int8)
    sums = wq.astype(np.int64).sum(axis=1).astype("<i4")
    head = LAYOUT["spq8"].pack(block_rows=block_rows, row_blocks=rb, groups=groups, nnz=len(cols))
    body = head + rowptr.tobytes() + sums.tobytes() + cols.tobytes()
    body += b"\0" * (_round_up(len(body), ALIGN) - len(body))
    return np.frombuffer(body + data.tobytes(), np.uint8)


def gates_share_blocks(wq: np.ndarray, gates: int) -> bool:
    """Whether every gate of a padded q8 matrix ``(gates * Hp, Kp)`` has the same 16 x 4 blocks
    holding a nonzero weight (the gate-shared layout's condition)."""
    r, kp = wq.shape
    nz = wq.reshape(gates, r // gates // 16, 16, kp // K_GROUP, K_GROUP).any(axis=(2, 4))
    return bool((nz == nz[0]).all())


def pack_shared_q8(wq: np.ndarray, gates: int) -> np.ndarray:
    """The gate-shared block-sparse tensor (rnc_layout.h, spq8, layer flags SHARED_IH/_HH) of a
    padded q8 matrix ``(gates * Hp, Kp)`` whose gates have the same zero 16 x 4 blocks
    (:func:`gates_share_blocks`): one entry per kept (unit block, input group), holding the
    ``gates`` blocks; as bytes (uint8)."""
    r, kp = wq.shape
    if not gates_share_blocks(wq, gates):
        raise ValueError("pack_shared_q8: the gates' block masks differ")
    groups, units = kp // K_GROUP, r // gates // 16
    # (units, groups, gates, 16, 4)
    blocks = wq.reshape(gates, units, 16, groups, K_GROUP).transpose(1, 3, 0, 2, 4)
    nz = blocks.any(axis=(2, 3, 4))
    rowptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype("<u4")
    cols = np.nonzero(nz)[1].astype("<u2")
    data = blocks[nz].reshape(-1).astype(np.int8)
    sums = wq.astype(np.int64).sum(axis=1).astype("<i4")
    head = LAYOUT["spq8"].pack(block_rows=16, row_blocks=units, groups=groups, nnz=len(cols))
    body = head + rowptr.tobytes() + sums.tobytes() + cols.tobytes()
    body += b"\0" * (_round_up(len(body), ALIGN) - len(body))
    return np.frombuffer(body + data.tobytes(), np.uint8)


def unpack_shared_q8(t: np.ndarray, r: int, kp: int, gates: int) -> np.ndarray:
    """Inverse of :func:`pack_shared_q8` (a tensor the reader has checked): ``(R, Kp)`` int8."""
    b = bytes(np.asarray(t, np.uint8))
    h = LAYOUT["spq8"].unpack(b, 0)
    units, nnz = h["row_blocks"], h["nnz"]
    rowptr = np.frombuffer(b, "<u4", units + 1, LAYOUT["spq8"].size)
    cols_off = LAYOUT["spq8"].size + 4 * (units + 1) + 4 * r
    cols = np.frombuffer(b, "<u2", nnz, cols_off)
    blk = np.frombuffer(b, np.int8, nnz * gates * 64, _round_up(cols_off + 2 * nnz, ALIGN))
    out = np.zeros((units, kp // K_GROUP, gates, 16, K_GROUP), np.int8)
    out[np.repeat(np.arange(units), np.diff(rowptr)), cols] = blk.reshape(nnz, gates, 16, K_GROUP)
    return out.transpose(2, 0, 3, 1, 4).reshape(r, kp)


def unpack_sparse_q8(t: np.ndarray, r: int, kp: int) -> np.ndarray:
    """Inverse of :func:`pack_sparse_q8` (a tensor the reader has checked): ``(R, Kp)`` int8."""
    b = bytes(np.asarray(t, np.uint8))
    h = LAYOUT["spq8"].unpack(b, 0)
    bh, rb, nnz = h["block_rows"], h["row_blocks"], h["nnz"]
    rowptr = np.frombuffer(b, "<u4", rb + 1, LAYOUT["spq8"].size)
    cols_off = LAYOUT["spq8"].size + 4 * (rb + 1) + 4 * r
    cols = np.frombuffer(b, "<u2", nnz, cols_off)
    blk = np.frombuffer(b, np.int8, nnz * bh * 4, _round_up(cols_off + 2 * nnz, ALIGN)).reshape(nnz, bh, 4)
    out = np.zeros((rb, kp // K_GROUP, bh, K_GROUP), np.int8)
    rows_of = np.repeat(np.arange(rb), np.diff(rowptr))
    out[rows_of, cols] = blk
    return out.transpose(0, 2, 1, 3).reshape(r, kp)


def _scale_field(v: Any, precision: str, name: str) -> float:
    if v is None or v == 0:
        return 0.0
    v = float(np.float32(v))
    if precision == "f32":
        raise ValueError(f"{name}: static scales exist only for precision 'q8' (and 'q4')")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number")
    return v


def _pointwise_code(r: dict) -> tuple[int, float, float]:
    """A pointwise record description (``rc.nn`` activations' ``record()``) -> (code, alpha, beta)."""
    kind = str(r.get("kind", "")).lower().replace("hard_sigmoid", "hardsigmoid")
    kind = kind.replace("leaky_relu", "leakyrelu")
    if kind == "gelu" and r.get("approximate", "none") == "tanh":
        kind = "gelu_tanh"
    if kind not in POINTWISE:
        raise ValueError(f"per-step record: kind {r.get('kind')!r} is not one the C core runs "
                         f"(frame_conv1d, conv1d, magnitude, {', '.join(POINTWISE)})")
    if kind == "hardsigmoid":
        return POINTWISE[kind], float(r.get("alpha", 1.0 / 6.0)), float(r.get("beta", 0.5))
    if kind in ("leakyrelu", "elu"):
        alpha = float(r.get("alpha", 0.01 if kind == "leakyrelu" else 1.0))
        if not np.isfinite(np.float32(alpha)):
            raise ValueError(f"per-step record {kind}: alpha must be a finite float32, got {alpha!r}")
        return POINTWISE[kind], alpha, 0.0
    if kind == "hardtanh":    # alpha = min_val, beta = max_val (a bound may be infinite)
        lo, hi = float(r.get("alpha", -1.0)), float(r.get("beta", 1.0))
        if math.isnan(lo) or math.isnan(hi) or lo == math.inf or not np.float32(lo) <= np.float32(hi):
            raise ValueError(f"per-step record hardtanh: expected min_val <= max_val, neither NaN, "
                             f"got {lo!r}, {hi!r}")
        return POINTWISE[kind], lo, hi
    if kind == "softplus":    # alpha = beta, beta = threshold
        b, t = float(r.get("alpha", 1.0)), float(r.get("beta", 20.0))
        if not np.isfinite(np.float32(b)) or np.float32(b) == 0 or math.isnan(t):
            raise ValueError(f"per-step record softplus: expected a finite nonzero float32 beta and a "
                             f"threshold that is not NaN, got {b!r}, {t!r}")
        return POINTWISE[kind], b, t
    if kind == "log_affine":   # rc.nn.LogAffine: log(scale x + offset)
        alpha, beta = float(r["scale"]), float(r["offset"])
        if not (np.isfinite(np.float32(alpha)) and np.isfinite(np.float32(beta))):
            raise ValueError(f"per-step record log_affine: scale and offset must be finite float32, got "
                             f"{alpha!r}, {beta!r}")
        return POINTWISE[kind], alpha, beta
    return POINTWISE[kind], 0.0, 0.0


def _check_time_padding(pl: int, pr: int, P: int, where: str, runs: str) -> None:
    """A record over time's padding ``(left, right)``: each side in ``0..P``, ``P =
    dilation*(kernel_size-1)`` the window's reach (loader.c load_timepad); ``runs`` names the
    layer and its padding in the refusal."""
    if not (0 <= pl <= P and 0 <= pr <= P):
        raise ValueError(f"{where}: padding ({pl}, {pr}); the C core runs {runs} in "
                         f"0..dilation*(kernel_size-1) = {P}")


def _plan_conv_time(r: dict, feat: int, where: str, precision: str = "f32") -> dict:
    """A Conv1d over time (``rc.nn.Conv1d.record()``) as a conv_time record: zero padding
    ``(left, right)`` with both at most ``P = dilation*(kernel_size-1)`` (causal ``(P, 0)`` needs
    no timepad tail; others stream with a look-ahead of ``P - left`` steps and ``right`` pad steps
    at the end, docs/c-api.md "Look-ahead"). In a q8 file its weights are int8 with one scale per
    output channel (the fconvq8 tail; a record ``precision="f32"`` keeps them float32)."""
    ci, co, k = (int(r[f]) for f in ("in_channels", "out_channels", "kernel_size"))
    st, dl, g = int(r.get("stride", 1)), int(r.get("dilation", 1)), int(r.get("groups", 1))
    pl, pr = int(r.get("pad_left", dl * (k - 1))), int(r.get("pad_right", 0))
    if ci != feat:
        raise ValueError(f"{where} (conv1d): in_channels {ci}, the previous layer gives {feat}")
    if k < 1 or dl < 1:
        raise ValueError(f"{where} (conv1d): kernel_size and dilation must be >= 1, got {k}, {dl}")
    if not 1 <= st <= _C["FILE_MAX_KERNEL"]:
        raise ValueError(f"{where} (conv1d): stride must be in 1..{_C['FILE_MAX_KERNEL']}, got {st}")
    if r.get("padding_mode", "zeros") != "zeros":
        raise ValueError(f"{where} (conv1d): padding_mode {r.get('padding_mode')!r}; the C core pads over "
                         "time with zeros (a reflected padding reads inputs that have not arrived)")
    _check_time_padding(pl, pr, dl * (k - 1), f"{where} (conv1d)",
                        "Conv1d over time with each side's zero padding")
    if g < 1 or ci % g or co % g:
        raise ValueError(f"{where} (conv1d): groups {g} must divide in_channels {ci} and out_channels {co}")
    t = r.get("tensors", r)
    w = _as_f32(t["weight"], f"{where} weight")
    cg, cog = ci // g, co // g
    if w.shape != (co, cg, k):
        raise ValueError(f"{where} (conv1d): weight must be ({co}, {cg}, {k}), got {w.shape}")
    b = t.get("bias")
    b = np.zeros(co, np.float32) if b is None else _as_f32(b, f"{where} bias")
    if b.shape != (co,):
        raise ValueError(f"{where} (conv1d): bias must be ({co},), got {b.shape}")
    rp = _round_up(cog, ROW_BLOCK)
    packed, scales = _pack_conv_groups(w, t, r.get("precision", precision), precision, g, cog, cg * k, rp,
                                       f"{where} (conv1d)")
    tensors = [np.concatenate(packed), b]
    if precision == "q8":   # the fconvq8 tail: the scales, or absent for f32 weights
        tensors.append(np.concatenate(scales) if scales else None)
    out = {"kind": "conv_time", "fields": {"in_channels": ci, "out_channels": co, "kernel_size": k,
                                           "stride": st, "dilation": dl, "groups": g},
           "tensors": tensors}
    if (pl, pr) != (dl * (k - 1), 0):   # not causal: the timepad tail
        out["timepad"] = {"left": pl, "right": pr, "flags": 0}
    return out


def _pack_conv_groups(w: np.ndarray, t: dict, rec_precision: str, precision: str, g: int, cog: int, kk: int,
                      rp: int, where: str) -> tuple[list, list]:
    """A convolution's weight ``(C_out, C_in/groups, k)`` as ``g`` packed matrices of ``rp`` rows and
    ``kk`` inputs: float32, or (``rec_precision`` q8) int8 per output channel with its scales
    (docs/q8-contract.md; stored integers ``t["qweight"]``, ``t["scale"]`` are kept as they are)."""
    if rec_precision not in ("f32", precision):
        raise ValueError(f"{where}: precision must be 'f32' or the file's {precision!r}, "
                         f"got {rec_precision!r}")
    packed, scales = [], []
    for gi in range(g):
        m = np.zeros((rp, kk), np.float32)
        m[:cog] = w[gi * cog:(gi + 1) * cog].reshape(cog, kk)
        if rec_precision == "q8":
            if t.get("qweight") is not None:
                wq = np.zeros((rp, kk), np.int8)
                wq[:cog] = np.asarray(t["qweight"], np.int8)[gi * cog:(gi + 1) * cog].reshape(cog, -1)
                sc = np.zeros(rp, np.float32)
                sc[:cog] = np.asarray(t["scale"], np.float32)[gi * cog:(gi + 1) * cog]
            else:
                wq, sc = quantize_rows(m)
            full = np.zeros((rp, _round_up(kk, K_GROUP)), np.int8)
            full[:, :kk] = wq
            packed.append(pack_q8(full))
            scales.append(sc)
        else:
            packed.append(pack_f32(m))
    return packed, scales


def _pack_conv_q16(w: np.ndarray, t: dict, g: int, cog: int, kk: int, rp: int,
                   where: str) -> tuple[list, list]:
    """A frame_conv's weight ``(C_out, C_in/groups, k)`` in the 16 x 16 form (rnc_layout.h,
    fconvq16): ``g`` int16 matrices of ``rp`` rows x ``round16(kk)`` inputs, row-major, zero past
    ``kk``, per output channel by :func:`rnncore.quant.scheme.quantize_weights16` (stored int16
    ``t["qweight"]`` with ``t["scale"]`` are kept as they are), and their scales."""
    from rnncore.quant.scheme import quantize_weights16

    kp = _round_up(kk, ROW_BLOCK)
    if kp > _C["FILE_Q8_MAX_K"]:
        raise ValueError(f"{where}: {kp} padded inputs per row, the C core takes at most "
                         f"{_C['FILE_Q8_MAX_K']}")
    stored = t.get("qweight") is not None and np.asarray(t["qweight"]).dtype == np.int16
    packed, scales = [], []
    for gi in range(g):
        full = np.zeros((rp, kp), np.int16)
        sc = np.zeros(rp, np.float32)
        if stored:
            full[:cog, :kk] = np.asarray(t["qweight"], np.int16)[gi * cog:(gi + 1) * cog].reshape(cog, kk)
            sc[:cog] = np.asarray(t["scale"], np.float32)[gi * cog:(gi + 1) * cog]
        else:
            wq, s = quantize_weights16(w[gi * cog:(gi + 1) * cog].reshape(cog, kk))
            full[:cog, :kk], sc[:cog] = wq, s
        packed.append(full.reshape(-1))
        scales.append(sc)
    return packed, scales


def _plan_pool_time(r: dict, feat: int, where: str) -> dict:
    """A pooling over time (``rc.nn.MaxPool1d`` / ``AvgPool1d``'s ``record()``) as a pool_time
    record: padding ``(left, right)`` each at most ``P = dilation*(kernel_size-1)`` (a timepad tail
    when not 0: pad steps take no part in a max, count as zeros in an average or, with
    ``count_include_pad=False``, are left out of it); ``ceil_mode=True`` as more right padding
    (:func:`rnncore.nn.conv.ceil_mode_padding`)."""
    kind = str(r["kind"]).lower()
    ch, k = int(r["channels"]), int(r["kernel_size"])
    st, dl = int(r.get("stride", k)), int(r.get("dilation", 1))
    mk = _C["FILE_MAX_KERNEL"]
    if ch != feat:
        raise ValueError(f"{where} ({kind}): channels {ch}, the previous layer gives {feat}")
    for name, v in (("kernel_size", k), ("stride", st), ("dilation", dl)):
        if not 1 <= v <= mk:
            raise ValueError(f"{where} ({kind}): {name} must be in 1..{mk}, got {v}")
    pl, pr = int(r.get("pad_left", 0)), int(r.get("pad_right", 0))
    _check_time_padding(pl, pr, dl * (k - 1), f"{where} ({kind})",
                        "pooling over time with each side's padding")
    excl = POOL_OPS[kind] == _C["POOL_AVG"] and not r.get("count_include_pad", True)
    if r.get("ceil_mode", False):   # as more right padding (rnncore.nn.conv.ceil_mode_padding)
        from rnncore.nn.conv import ceil_mode_padding

        try:
            pr, excl = ceil_mode_padding(k, st, dl, pl, pr, POOL_OPS[kind] == _C["POOL_AVG"],
                                         bool(r.get("count_include_pad", True)))
        except ValueError as exc:
            raise ValueError(f"{where} ({kind}): {exc}") from None
    out = {"kind": "pool_time", "fields": {"channels": ch, "kernel_size": k, "stride": st, "dilation": dl,
                                           "op": POOL_OPS[kind]}, "tensors": []}
    if (pl, pr) != (0, 0):   # the timepad tail
        out["timepad"] = {"left": pl, "right": pr, "flags": _C["TIMEPAD_EXCLUDE_PAD"] if excl else 0}
    return out


def mel_spans(fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A filterbank ``fb (n_freqs, n_mels)`` as the log_mel record stores it: ``span (n_mels, 2)``
    uint32 (first bin, bin count: from the filter's first to its last nonzero weight; 0, 0 for an
    all-zero filter) and the weights of the spans, filter after filter (float32)."""
    span = np.zeros((fb.shape[1], 2), np.uint32)
    weights = []
    for m in range(fb.shape[1]):
        nz = np.flatnonzero(fb[:, m])
        if nz.size:
            span[m] = (nz[0], nz[-1] - nz[0] + 1)
            weights.append(fb[nz[0]:nz[-1] + 1, m])
    return span, (np.concatenate(weights).astype(np.float32) if weights else np.zeros(0, np.float32))


def dft_tables(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """``cos[k, n] = cos(2 pi k n / n_fft)``, ``sin[k, n] = -sin(2 pi k n / n_fft)`` for
    ``k <= n_fft/2``, float64 with the phase reduced modulo ``n_fft`` (rnncore.nn.melspec's)."""
    k, n = np.arange(n_fft // 2 + 1)[:, None], np.arange(n_fft)[None, :]
    angle = 2 * np.pi * ((k * n) % n_fft) / n_fft
    return np.cos(angle), -np.sin(angle)


def _plan_log_mel(r: dict, feat: int, where: str, n: int) -> dict:
    """A log-mel record (``rc.nn.LogMelSpectrogram.record()``) in stored form."""
    if n != 0:
        raise ValueError(f"{where}: a log_mel record must be the first per-step record")
    if r.get("center", False):
        raise ValueError(f"{where}: center=True pads the whole signal; the C core takes frames of the signal "
                         "as it is (LogMelSpectrogram(center=False))")
    nfft, hop, nmel = int(r["n_fft"]), int(r["hop_length"]), int(r["n_mels"])
    if nfft != feat:
        raise ValueError(f"{where}: n_fft {nfft}, expected the {feat} input features per step (one frame)")
    if not 2 <= nfft <= _C["FILE_MAX_KERNEL"]:
        raise ValueError(f"{where}: n_fft must be in 2..{_C['FILE_MAX_KERNEL']}, got {nfft}")
    power = r.get("power", 2.0)
    if power not in (1, 2):
        raise ValueError(f"{where}: power must be 1 or 2, got {power!r}")
    log = r.get("log", "log")
    if log not in _MEL_LOGS:
        raise ValueError(f"{where}: log must be 'log', 'db' or None, got {log!r}")
    off = float(r.get("log_offset", 1e-6)) if log == "log" else 0.0
    amin = float(r.get("amin", 1e-10)) if log == "db" else 0.0
    for name, v, used in (("log_offset", off, log == "log"), ("amin", amin, log == "db")):
        if used and not (math.isfinite(v) and np.float32(v) > 0):
            raise ValueError(f"{where}: {name} must be a finite number > 0, got {v}")
    t = r.get("tensors", r)
    nf = nfft // 2 + 1
    win = _as_f32(t["window"], f"{where} window")
    cos, sin = _as_f32(t["cos"], f"{where} cos"), _as_f32(t["sin"], f"{where} sin")
    fb = _as_f32(t["fb"], f"{where} fb")
    for name, a, shape in (("window", win, (nfft,)), ("cos", cos, (nf, nfft)), ("sin", sin, (nf, nfft)),
                           ("fb", fb, (nf, nmel))):
        if a.shape != shape:
            raise ValueError(f"{where}: {name} must be {shape}, got {a.shape}")
    if (fb < 0).any():
        raise ValueError(f"{where}: fb must be >= 0 (mel filters)")
    c64, s64 = dft_tables(nfft)
    if np.abs(cos - c64).max() > 1e-6 or np.abs(sin - s64).max() > 1e-6:
        raise ValueError(f"{where}: cos, sin must be the DFT tables of n_fft={nfft} "
                         "(cos(2 pi k n / n_fft), -sin(2 pi k n / n_fft)): the record stores their "
                         "folded halves")
    rp = _round_up(nf, ROW_BLOCK)
    dft = []
    for t in (c64, s64):   # columns j < nf: the others mirror them (rnc_layout.h log_mel)
        a = np.zeros((rp, nf), np.float32)
        a[:nf] = t[:, :nf]
        dft.append(pack_f32(a))
    span, weights = mel_spans(fb)
    return {"kind": "log_mel", "fields": {
        "n_fft": nfft, "hop_length": hop, "n_mels": nmel, "power": int(power), "log": _MEL_LOGS[log],
        "log_offset": off, "amin": amin},
        "tensors": [win, np.concatenate(dft), span.reshape(-1), weights if weights.size else None]}


def _plan_step_records(records: list, feat: int, precision: str, where: str,
                       reach: list | None = None) -> tuple[list, int]:
    """The per-step records (``front``: frame_conv1d / magnitude / activations; ``post``:
    activations) in stored form; returns them and the width they leave. ``reach``: the input widths
    of the records before the list that a residual may span (the recurrent layers' and the
    per-step records' before them, back to the model input or last_step; ``mid`` and ``post``
    only: a residual around a recurrent layer); the list's own are appended to it."""
    out: list = []
    widths: list = [] if reach is None else reach   # each record's input width
    before = len(widths)
    for n, r in enumerate(records or []):
        widths.append(feat)
        kind = str(r.get("kind", "")).lower()
        if precision == "q4":
            raise ValueError(f"{where}[{n}] ({kind}): the C core runs per-step records in f32 and q8 files "
                             "only (precision='f32' or 'q8')")
        if kind in ("conv1d", "conv_time"):
            out.append(_plan_conv_time(r, feat, f"{where}[{n}]", precision))
            feat = int(r["out_channels"])
        elif kind == "residual":
            span = r.get("span")
            if not isinstance(span, (int, np.integer)) or not 1 <= span <= n + before:
                what = (f"the records before it in {where}" if not before else
                        f"the records before it in {where} and, across recurrent layers, before them")
                raise ValueError(f"{where}[{n}] (residual): span must be 1..{n + before} ({what}), "
                                 f"got {span!r}")
            src = widths[before + n - span]
            if src != feat:
                whose = (f"{where}[{n - span}]" if span <= n else
                         f"the record {span} before it (across a recurrent layer: y = x + f(x))")
                raise ValueError(f"{where}[{n}] (residual): the input of {whose} has {src} "
                                 f"features, f gives {feat}; they must agree")
            out.append({"kind": "residual", "fields": {"features": feat, "span": int(span)}, "tensors": []})
        elif kind == "concat":   # y = [u ; x], u the input of the record `span` before (front-end only)
            span = r.get("span")
            if where != "front" or not isinstance(span, (int, np.integer)) or not 1 <= span <= n:
                raise ValueError(f"{where}[{n}] (concat): span must be 1..{n} (the front-end records before "
                                 f"it; concat stands in the front-end only), got {span!r}")
            out.append({"kind": "concat", "fields": {"features": feat, "span": int(span)}, "tensors": []})
            feat += widths[before + n - span]
        elif kind in ("max_pool1d", "avg_pool1d"):
            out.append(_plan_pool_time(r, feat, f"{where}[{n}]"))
        elif kind in ("frame_conv1d", "frame_conv"):
            ci, co, k, L = (int(r[f]) for f in ("in_channels", "out_channels", "kernel_size", "frame_length"))
            st, dl, g = int(r.get("stride", 1)), int(r.get("dilation", 1)), int(r.get("groups", 1))
            pl, pr = int(r.get("pad_left", 0)), int(r.get("pad_right", 0))
            modes = {"zeros": _C["PAD_ZEROS"], "reflect": _C["PAD_REFLECT"]}
            mode = modes.get(r.get("padding_mode", "zeros"))
            if mode is None:
                raise ValueError(f"{where}[{n}]: padding_mode must be 'zeros' or 'reflect', "
                                 f"got {r.get('padding_mode')!r}")
            if ci * L != feat:
                raise ValueError(f"{where}[{n}] (frame_conv1d): in_channels*frame_length = {ci * L}, "
                                 f"the previous layer gives {feat}")
            if g < 1 or ci % g or co % g:
                raise ValueError(f"{where}[{n}]: groups {g} must divide in_channels {ci} and "
                                 f"out_channels {co}")
            span, padded = dl * (k - 1) + 1, L + pl + pr
            if padded < span:
                raise ValueError(f"{where}[{n}]: frame_length {L} + padding is shorter than one "
                                 f"window ({span})")
            if mode == _C["PAD_REFLECT"] and max(pl, pr) >= L:
                raise ValueError(f"{where}[{n}]: reflect padding must be < frame_length {L}, "
                                 f"got ({pl}, {pr})")
            lout = (padded - span) // st + 1
            t = r.get("tensors", r)
            w = _as_f32(t["weight"], f"{where}[{n}] weight")
            cg, cog = ci // g, co // g
            if w.shape != (co, cg, k):
                raise ValueError(f"{where}[{n}]: weight must be ({co}, {cg}, {k}), got {w.shape}")
            b = t.get("bias")
            b = np.zeros(co, np.float32) if b is None else _as_f32(b, f"{where}[{n}] bias")
            if b.shape != (co,):
                raise ValueError(f"{where}[{n}]: bias must be ({co},), got {b.shape}")
            rp = _round_up(cog, ROW_BLOCK)
            bits = r.get("bits", 8)
            if bits not in (8, 16) or isinstance(bits, bool):
                raise ValueError(f"{where}[{n}] (frame_conv1d): bits must be 8 or 16, got {bits!r}")
            if bits == 16 and (precision != "q8" or r.get("precision", precision) != "q8"):
                raise ValueError(f"{where}[{n}] (frame_conv1d): bits=16 (the 16 x 16 product) exists only "
                                 f"for an int8 frame_conv of a precision='q8' file, got precision="
                                 f"{r.get('precision', precision)!r}")
            if bits == 16:
                packed, scales = _pack_conv_q16(w, t, g, cog, cg * k, rp, f"{where}[{n}] (frame_conv1d)")
            else:
                packed, scales = _pack_conv_groups(w, t, r.get("precision", precision), precision, g, cog,
                                                   cg * k, rp, f"{where}[{n}] (frame_conv1d)")
            tensors = [np.concatenate(packed), b]
            if precision == "q8":   # the fconvq8 tail: the scales, or absent for f32 weights
                tensors.append(np.concatenate(scales) if scales else None)
            out.append({"kind": "frame_conv", "fields": {
                "in_channels": ci, "out_channels": co, "kernel_size": k, "frame_length": L, "stride": st,
                "dilation": dl, "groups": g, "pad_left": pl, "pad_right": pr, "padding_mode": mode},
                "tensors": tensors, **({"q16": True} if bits == 16 else {})})
            feat = co * lout
        elif kind in ("layer_norm", "scale_shift", "instance_norm"):
            if kind == "instance_norm" and where != "front":
                raise ValueError(f"{where}[{n}] (instance_norm): normalises over the whole sequence; the C "
                                 "core runs it in the front-end only (before the first recurrent layer)")
            t = r.get("tensors", r)
            norm = kind in ("layer_norm", "instance_norm")
            names = ("weight", "bias") if norm else ("scale", "shift")
            ones = np.ones(feat, np.float32) if norm else None
            vals = []
            for nm, default in zip(names, (ones, np.zeros(feat, np.float32)), strict=True):
                v = t.get(nm)
                if v is None and default is None:
                    raise ValueError(f"{where}[{n}] ({kind}): missing {nm}")
                v = default if v is None else _as_f32(v, f"{where}[{n}] {nm}")
                if v.shape != (feat,):
                    raise ValueError(f"{where}[{n}] ({kind}): {nm} must be ({feat},), got {v.shape}")
                vals.append(v)
            if int(r.get("features", feat)) != feat:
                raise ValueError(f"{where}[{n}] ({kind}): features {r.get('features')}, the previous layer "
                                 f"gives {feat}")
            fields: dict[str, Any] = {"features": feat}
            if norm:
                eps = float(r.get("eps", 1e-5))
                if not (math.isfinite(eps) and np.float32(eps) > 0):
                    raise ValueError(f"{where}[{n}] ({kind}): eps must be a finite number > 0, got {eps}")
                fields["eps"] = eps
            out.append({"kind": kind, "fields": fields, "tensors": vals})
        elif kind == "log_mel":
            out.append(_plan_log_mel(r, feat, f"{where}[{n}] (log_mel)", n))
            feat = out[-1]["fields"]["n_mels"]
        elif kind == "magnitude":
            if feat % 2:
                raise ValueError(f"{where}[{n}] (magnitude): {feat} input features, expected an even number")
            out.append({"kind": "magnitude", "fields": {}, "tensors": []})
            feat //= 2
        elif kind == "mul_halves":
            if feat % 2:
                raise ValueError(f"{where}[{n}] (mul_halves): {feat} input features, expected an even number "
                                 "(two halves)")
            out.append({"kind": "mul_halves", "fields": {}, "tensors": []})
            feat //= 2
        else:
            code, al, be = _pointwise_code(r)
            out.append({"kind": "pointwise", "fields": {"features": feat, "activation": code, "alpha": al,
                                                        "beta": be}, "tensors": []})
    return out, feat


def _check_emb_front(front: list) -> None:
    """The front-end records after an embedding run on the looked-up rows, log_mel and
    instance_norm excepted (they take input features only): raise naming the first of those."""
    for n, r in enumerate(front):
        if str(r.get("kind", "")).lower() in ("log_mel", "instance_norm"):
            raise ValueError(f"front[{n}] ({r.get('kind')}): cannot follow an embedding (the C core runs it "
                             "on input features only; the other front-end records run on the looked-up rows)")


def _plan(spec: dict) -> dict[str, Any]:
    """Validate ``spec`` and prepare every tensor in its stored form (padded, quantised, packed).

    Returns a version-independent plan: ``precision``, ``input_size``, ``embedding`` (array or
    None), ``layers`` (``cell``, ``flags``, ``input_size``, ``hidden_size``, ``x_scale``,
    ``h_scale`` [2], ``dirs``: per direction the six arrays ``w_ih, w_hh, s_ih, s_hh, b_ih, b_hh``),
    ``last_step`` (None or the bidirectional flag) and ``head`` (None or ``in``, ``out``,
    ``activation``, ``in_scale``, ``tensors`` = weight, scale, bias).
    """
    precision = spec.get("precision", "f32")
    sparse_opts = _sparse_options(spec.get("sparse"))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'f32', 'q8' or 'q4', not {precision!r}")
    layers = list(spec.get("layers", []))
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"a model needs 1..{MAX_LAYERS} recurrent layers, got {len(layers)}")

    emb = spec.get("embedding")
    emb_w = None
    if emb is not None:
        emb_w = _as_f32(emb["weight"] if isinstance(emb, dict) else emb, "embedding")
        if emb_w.ndim != 2 or not (1 <= emb_w.shape[0] <= MAX_VOCAB) or not (
            1 <= emb_w.shape[1] <= MAX_FEATURES
        ):
            raise ValueError("embedding weight must be (num, dim) with sizes within the C limits, "
                             f"got {emb_w.shape}")
        input_size = emb_w.shape[1]
    else:
        first = _norm_weights(layers[0]["weights"])
        input_size = int(spec.get("input_size") or np.shape(first["weight_ih"])[1])
    if emb is not None:
        _check_emb_front(spec.get("front") or [])
    reach: list = []   # the input widths of the records so far (a residual around a layer spans them)
    front, feat = _plan_step_records(spec.get("front"), input_size, precision, "front", reach)
    P = spec.get("positions") or 1   # the front-end's row as P steps (rnc_layout.h positions)
    if P != 1:
        if not isinstance(P, (int, np.integer)) or P < 2 or not front or feat % P:
            raise ValueError(f"positions: expected 2 or more dividing the {feat} features the front-end "
                             f"leaves into positions (after a front-end), got {P!r}")
        front.append({"kind": "positions", "fields": {"features": feat, "positions": int(P)}, "tensors": []})
        feat //= int(P)
        reach.clear()   # a residual spans no record before it
    mid_spec = list(spec.get("mid") or [])
    if len(mid_spec) > len(layers) - 1:
        raise ValueError(f"mid: {len(mid_spec)} lists of per-step records, expected at most "
                         f"{len(layers) - 1} (one between each two of the {len(layers)} recurrent layers)")
    mid_spec += [[]] * (len(layers) - 1 - len(mid_spec))

    planned, mid = [], []
    for li, layer in enumerate(layers):
        kind = str(layer["kind"]).lower()
        if kind not in GATES:
            raise ValueError(f"layer {li}: kind must be rnn, gru or lstm, not {kind!r}")
        nonlin = str(layer.get("nonlinearity", "tanh")).lower() if kind == "rnn" else None
        if (kind, nonlin) not in KINDS:
            raise ValueError(f"layer {li}: nonlinearity must be tanh or relu, not {nonlin!r}")
        reset_after = bool(layer.get("reset_after", True)) if kind == "gru" else False
        bidir = bool(layer.get("bidirectional", False))
        w = _norm_weights(layer["weights"])
        g = GATES[kind]
        w_hh0 = _as_f32(w["weight_hh"], f"layer {li} weight_hh")
        h = int(layer.get("hidden_size") or w_hh0.shape[1])
        i = int(layer.get("input_size") or feat)
        if i != feat:
            raise ValueError(f"layer {li}: input_size {i} != previous output size {feat}")
        if not (1 <= h <= MAX_HIDDEN and 1 <= i <= MAX_FEATURES):
            raise ValueError(f"layer {li}: sizes out of range (hidden_size {h} in 1..{MAX_HIDDEN}, "
                             f"input_size {i} in 1..{MAX_FEATURES})")
        hp = _round_up(h, ROW_BLOCK)
        if precision == "q4" and layer.get("options"):
            raise ValueError(f"layer {li}: precision 'q4' runs layers without cell options "
                             "(use 'q8' or 'f32' for this model)")
        proj = None if not layer.get("options") else layer["options"].get("proj")
        hw = h if proj is None else int(np.shape(proj)[1])   # h's width (LSTM projection: P)
        dirs = []
        for d in range(2 if bidir else 1):
            suf = "_reverse" if d else ""
            try:
                w_ih = _as_f32(w["weight_ih" + suf], f"layer {li} weight_ih{suf}")
                w_hh = _as_f32(w["weight_hh" + suf], f"layer {li} weight_hh{suf}")
            except KeyError as e:
                raise ValueError(f"layer {li}: missing {e.args[0]}") from None
            b_ih = _as_f32(w.get("bias_ih" + suf, np.zeros(g * h)), f"layer {li} bias_ih{suf}")
            b_hh = _as_f32(w.get("bias_hh" + suf, np.zeros(g * h)), f"layer {li} bias_hh{suf}")
            if w_ih.shape != (g * h, i) or w_hh.shape != (g * h, hw):
                raise ValueError(
                    f"layer {li}: weight_ih{suf} {w_ih.shape} / weight_hh{suf} {w_hh.shape} do not "
                    f"match kind={kind}, input_size={i}, hidden_size={h}"
                )
            if b_ih.shape != (g * h,) or b_hh.shape != (g * h,):
                raise ValueError(f"layer {li}: biases must have shape ({g * h},), got "
                                 f"{b_ih.shape} / {b_hh.shape}")
            p_ih, s_ih = _matrix(w_ih, precision, g, h, hp, i)
            p_hh, s_hh = _matrix(w_hh, precision, g, h, hp, hw)
            dirs.append([p_ih, p_hh, s_ih, s_hh, _pad_gates(b_ih, g, h, hp), _pad_gates(b_hh, g, h, hp)])
        sp_flags = 0
        sparse_dirs: list[list] = [[None, None] for _ in dirs]
        # not GRU reset_after=False: its r*h product takes a row range of the dense W_hh
        # nor with cell options (the variant cell takes dense products)
        if (sparse_opts and precision == "q8" and not layer.get("options")
                and not (kind == "gru" and not reset_after)):
            for j, (flag, k_in, which) in enumerate(((_C["LAYER_FLAG_SPARSE_IH"], i, 0),
                                                     (_C["LAYER_FLAG_SPARSE_HH"], h, 1))):
                kp = _round_up(k_in, K_GROUP)
                full = [unpack_q8(d[which], g * hp, kp) for d in dirs]
                bh = sparse_opts["block_rows"]
                if max(block_density(f, bh) for f in full) <= sparse_opts["max_density"]:
                    sp_flags |= flag
                    shared = (sparse_opts["shared_gates"] and g > 1 and bh == 16
                              and all(gates_share_blocks(f, g) for f in full))
                    if shared:  # SHARED_IH / _HH: bits 5, 6 over SPARSE_IH / _HH's 2, 3
                        sp_flags |= flag << 3
                    for dd, f in enumerate(full):
                        sparse_dirs[dd][j] = pack_shared_q8(f, g) if shared else pack_sparse_q8(f, bh)
        hsc = layer.get("h_scale")
        hsc = list(hsc) if isinstance(hsc, (list, tuple)) else [hsc, hsc if bidir else None]
        if len(hsc) == 1:
            hsc.append(None)
        if not bidir:
            hsc[1] = None
        opts = _plan_options(layer.get("options"), kind, nonlin, bidir, h, li, precision)
        planned.append({
            "cell": KINDS[(kind, nonlin)],
            "flags": (_C["LAYER_FLAG_RESET_AFTER"] if reset_after else 0)
            | (_C["LAYER_FLAG_BIDIR"] if bidir else 0)
            | (_C["LAYER_FLAG_OPTIONS"] if opts is not None else 0),
            "sparse_flags": sp_flags,
            "sparse": sparse_dirs,
            "options": opts,
            "out": hw,
            "input_size": i,
            "hidden_size": h,
            "x_scale": _scale_field(layer.get("x_scale"), precision, f"layer {li} x_scale"),
            "h_scale": [_scale_field(hsc[0], precision, f"layer {li} h_scale"),
                        _scale_field(hsc[1], precision, f"layer {li} h_scale (reverse)")],
            "dirs": dirs,
        })
        reach.append(i)   # the layer's input: a residual around it adds it
        feat = hw * (2 if bidir else 1)
        if li + 1 < len(layers):   # the per-step records between this layer and the next
            _check_post_kinds(mid_spec[li], f"mid[{li}]")
            recs, feat = _plan_step_records(mid_spec[li], feat, precision, f"mid[{li}]", reach)
            mid.append(recs)

    for key in ("post", "post_pooled"):
        _check_post_kinds(spec.get(key), key)
    post, feat = _plan_step_records(spec.get("post"), feat, precision, "post", reach)
    pool_feat = feat
    pooled = [spec.get(k, False) for k in ("last_step_last", "last_step_mean", "last_step_max")]
    if pooled[0] and not any(pooled[1:]):
        raise ValueError("last_step_last: the last step as a part of [last | mean | max] needs "
                         "last_step_mean and/or last_step_max")
    if any(pooled[1:]):   # the pooled row: the parts [last | mean | max] present, each feat wide
        feat *= sum(bool(p) for p in pooled)
    post_pooled, feat = _plan_step_records(spec.get("post_pooled"), feat, precision, "post_pooled")
    if post_pooled and not spec.get("last_step", False):
        raise ValueError("post_pooled: activations after last_step need last_step")
    if len(front) + sum(map(len, mid)) + len(post) + len(post_pooled) > _C["FILE_MAX_FRONT"]:
        raise ValueError(f"front/mid/post: more than {_C['FILE_MAX_FRONT']} per-step records")
    head = spec.get("head")
    head_plan = None
    if head is not None:
        hw = _as_f32(head["weight"], "head weight")
        if hw.ndim != 2 or hw.shape[1] != feat or not (1 <= hw.shape[0] <= MAX_FEATURES):
            raise ValueError(f"head weight must be (out, {feat}), got {hw.shape}")
        head_out, head_in = hw.shape
        hb = _as_f32(head.get("bias", np.zeros(head_out)), "head bias")
        if hb.shape != (head_out,):
            raise ValueError(f"head bias must have shape ({head_out},), got {hb.shape}")
        act = str(head.get("activation", "none") or "none").lower()
        if act not in ACTIVATIONS:
            raise ValueError(f"head activation must be one of {sorted(ACTIVATIONS)}, not {act!r}")
        op = _round_up(head_out, ROW_BLOCK)
        hprec = "q8" if precision == "q4" else precision  # a q4 model's head is q8
        p_w, s_w = _matrix(hw, hprec, 1, head_out, op, head_in)
        head_plan = {"in": head_in, "out": head_out, "activation": ACTIVATIONS[act],
                     "in_scale": _scale_field(head.get("in_scale"), precision, "head in_scale"),
                     "tensors": [p_w, s_w, _pad_gates(hb, 1, head_out, op)]}

    last_step = bool(spec.get("last_step", False))
    last_bidir = bool(spec.get("last_step_bidirectional", False))
    if last_bidir and not last_step:
        raise ValueError("last_step_bidirectional needs last_step")
    if last_bidir and not layers[-1].get("bidirectional", False):
        raise ValueError("last_step_bidirectional needs a bidirectional last layer")
    last_mean = bool(spec.get("last_step_mean", False))
    last_max = bool(spec.get("last_step_max", False))
    last_last = bool(spec.get("last_step_last", False))
    if last_mean and not last_step:
        raise ValueError("last_step_mean needs last_step")
    if last_max and not last_step:
        raise ValueError("last_step_max needs last_step")
    if last_mean and last_bidir and not last_last:
        raise ValueError("last_step_mean: the mean pools every step of both directions; "
                         "last_step_bidirectional (last-step pooling's) must be False with it "
                         "(unless last_step_last)")
    if last_max and last_bidir and not last_last:
        raise ValueError("last_step_max: the max pools every step of both directions; "
                         "last_step_bidirectional (last-step pooling's) must be False with it "
                         "(unless last_step_last)")
    attn = _plan_attention(spec.get("last_step_attention"), pool_feat)
    if attn is not None and (not last_step or last_bidir or last_mean or last_max or last_last):
        raise ValueError("last_step_attention needs last_step, and none of last_step_bidirectional, "
                         "last_step_mean, last_step_max, last_step_last")
    return {"precision": precision, "input_size": input_size, "embedding": emb_w, "layers": planned,
            "last_step": last_bidir if last_step else None, "last_step_mean": last_mean,
            "last_step_max": last_max, "last_step_last": last_last,
            "last_step_attention": attn, "head": head_plan,
            "front": front, "post": post, "post_pooled": post_pooled, "mid": mid}


def _check_post_kinds(records: list | None, where: str) -> None:
    """Only the per-step records that map each step alone stand after a recurrent layer."""
    for n, r in enumerate(records or []):
        if str(r.get("kind", "")).lower() in ("magnitude", "conv1d", "conv_time", "log_mel", "max_pool1d",
                                              "avg_pool1d"):
            raise ValueError(f"{where}[{n}]: only records that map each step alone (frame_conv1d, "
                             f"activations, layer_norm, scale_shift, mul_halves, residual) may follow a "
                             f"recurrent layer, got {r.get('kind')!r}")


def _plan_attention(attn: dict | None, feat: int) -> dict | None:
    """The attnpool tail's tensors (float32): weight ``(A, feat)`` row-major, bias and score
    ``(A,)``; None without attention pooling."""
    if attn is None:
        return None
    unknown = set(attn) - {"weight", "bias", "score"}
    if unknown:
        raise ValueError(f"last_step_attention: unknown keys {sorted(unknown)} "
                         "(expected weight, bias, score)")
    w = _as_f32(attn["weight"], "last_step_attention weight")
    if w.ndim != 2 or w.shape[1] != feat or not 1 <= w.shape[0] <= MAX_FEATURES:
        raise ValueError(f"last_step_attention weight: expected shape (A, {feat}) with A in "
                         f"1..{MAX_FEATURES} "
                         f"(the pooled features), got {w.shape}")
    a = w.shape[0]
    b = attn.get("bias")
    b = np.zeros(a, np.float32) if b is None else _as_f32(b, "last_step_attention bias")
    v = _as_f32(attn["score"], "last_step_attention score").reshape(-1)
    for name, t in (("bias", b), ("score", v)):
        if t.shape != (a,):
            raise ValueError(f"last_step_attention {name}: expected shape ({a},), got {t.shape}")
    return {"weight": np.ascontiguousarray(w), "bias": b, "score": v}


def _plan_options(opts: dict | None, kind: str, nonlin: str | None, bidir: bool, h: int,
                  li: int, precision: str = "f32") -> dict | None:
    """The options block of one layer (None when every option has its default value)."""
    if not opts:
        return None
    unknown = set(opts) - {"reverse", "reverse_output", "input_forget", "clip", "activations", "peepholes",
                           "initial_h", "initial_c", "proj", "layer_norm"}
    if unknown:
        raise ValueError(f"layer {li} options: unknown {sorted(unknown)}")
    D = 2 if bidir else 1
    n = CELL_ACT_SLOTS[kind]
    flags = 0
    if opts.get("reverse"):
        if bidir:
            raise ValueError(f"layer {li} options: reverse on a bidirectional layer")
        flags |= _C["CELLOPT_REVERSE"]
    if opts.get("reverse_output"):
        if not opts.get("reverse"):
            raise ValueError(f"layer {li} options: reverse_output needs reverse")
        flags |= _C["CELLOPT_REVERSE_OUTPUT"]
    proj, p_size, proj_t = opts.get("proj"), 0, [None, None]
    if proj is not None:
        proj = _as_f32(proj, f"layer {li} proj")
        p_size = proj.shape[1] if proj.ndim == 3 else 0
        if kind != "lstm" or proj.shape != (D, p_size, h) or not 1 <= p_size < h:
            raise ValueError(f"layer {li} options: proj (LSTM projection) must be ({D}, P, {h}) with "
                             f"0 < P < {h}, got {proj.shape} for a {kind}")
        packed = [_matrix(proj[d], precision, 1, p_size, _round_up(p_size, ROW_BLOCK), h) for d in range(D)]
        proj_t = [np.concatenate([p for p, _ in packed]),
                  None if packed[0][1] is None else np.concatenate([s for _, s in packed])]
    hw = p_size or h
    lstm_only = [k for k in ("input_forget", "peepholes", "initial_c") if opts.get(k) is not None
                 and opts.get(k) is not False]
    if lstm_only and kind != "lstm":
        raise ValueError(f"layer {li} options: {', '.join(lstm_only)} exist only for an LSTM")
    if opts.get("input_forget"):
        flags |= _C["CELLOPT_INPUT_FORGET"]
    clip = opts.get("clip")
    if clip is not None:
        clip = float(np.float32(clip))
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"layer {li} options: clip must be a positive finite number, got {clip}")
        flags |= _C["CELLOPT_CLIP"]
    acts = opts.get("activations")
    default = [(a, 0.0, 0.0) for a in _DEFAULT_CELL_ACTS[(kind, nonlin)]]
    if acts is None:
        acts = [default] * D
    acts = [list(d) for d in acts]
    if len(acts) != D or any(len(d) != n for d in acts):
        raise ValueError(f"layer {li} options: activations needs {D} direction(s) of {n}, got "
                         f"{[len(d) for d in acts]}")
    slots = [(0, 0.0, 0.0)] * 6
    for d, row in enumerate(acts):
        for k, a in enumerate(row):
            name, al, be = (tuple(a) + (None, None))[:3] if not isinstance(a, str) else (a, None, None)
            name = str(name).lower()
            if name not in CELL_ACTIVATIONS:
                raise ValueError(f"layer {li} options: activation {name!r} is not one of "
                                 f"{sorted(CELL_ACTIVATIONS)}")
            al, be = float(np.float32(al or 0.0)), float(np.float32(be or 0.0))
            if not (math.isfinite(al) and math.isfinite(be)):
                raise ValueError(f"layer {li} options: activation {name} alpha/beta must be finite")
            slots[3 * d + k] = (CELL_ACTIVATIONS[name], al, be)
    tensors = []
    for key, flag, shape in (("peepholes", "CELLOPT_PEEPHOLES", (D, 3, h)),
                             ("initial_h", "CELLOPT_INITIAL_H", (D, hw)),
                             ("initial_c", "CELLOPT_INITIAL_C", (D, h))):
        v = opts.get(key)
        if v is None:
            tensors.append(None)
            continue
        v = _as_f32(v, f"layer {li} {key}")
        if v.shape != shape:
            raise ValueError(f"layer {li} options: {key} must have shape {shape}, got {v.shape}")
        flags |= _C[flag]
        tensors.append(v.reshape(-1))
    plain = all(slots[3 * d + k] == (CELL_ACTIVATIONS[default[k][0]], 0.0, 0.0)
                for d in range(D) for k in range(n))
    ln = _plan_layer_norm(opts.get("layer_norm"), kind, flags, D, h, li)
    if ln is not None:
        flags |= _C["CELLOPT_LAYER_NORM"]
    if flags == 0 and plain and not p_size:
        return None
    return {"flags": flags, "clip": clip or 0.0, "slots": slots, "tensors": tensors, "proj_size": p_size,
            "proj": proj_t, "layer_norm": ln}


def _plan_layer_norm(ln: dict | None, kind: str, flags: int, D: int, h: int, li: int) -> dict | None:
    """The cellln of a layer-normalised GRU / LSTM (None without ``layer_norm``)."""
    if ln is None:
        return None
    unknown = set(ln) - {"per_gate", "eps", "ih", "hh", "c"}
    if unknown:
        raise ValueError(f"layer {li} options: layer_norm: unknown {sorted(unknown)}")
    if kind not in ("gru", "lstm"):
        raise ValueError(f"layer {li} options: layer_norm exists for a GRU or an LSTM, got {kind}")
    for bit, name in (("CELLOPT_INPUT_FORGET", "input_forget"), ("CELLOPT_CLIP", "clip"),
                      ("CELLOPT_PEEPHOLES", "peepholes")):
        if flags & _C[bit]:
            raise ValueError(f"layer {li} options: layer_norm does not combine with {name}")
    eps = float(np.float32(ln.get("eps", 1e-5)))
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"layer {li} options: layer_norm eps must be a positive finite number, got {eps}")
    n = GATES[kind] * h
    tensors = []
    for key, shape in (("ih", (D, 2, n)), ("hh", (D, 2, n)), ("c", (D, 2, h) if kind == "lstm" else None)):
        v = ln.get(key)
        if shape is None:
            if v is not None:
                raise ValueError(f"layer {li} options: layer_norm {key!r} exists only for an LSTM")
            tensors.append(None)
            continue
        if v is None:
            raise ValueError(f"layer {li} options: layer_norm needs {key!r} of shape {shape}")
        v = _as_f32(v, f"layer {li} layer_norm {key}")
        if v.shape != shape:
            raise ValueError(f"layer {li} options: layer_norm {key!r} must have shape {shape}, got {v.shape}")
        tensors.append(v.reshape(-1))
    return {"flags": _C["CELLLN_PER_GATE"] if ln.get("per_gate", True) else 0, "eps": eps, "tensors": tensors}


def _finish(parts: list[bytes], file_size: int) -> bytes:
    out = bytearray(b"".join(parts))
    assert len(out) == file_size
    struct.pack_into("<I", out, LAYOUT["hdr1"].fields["crc32"].offset,
                     zlib.crc32(bytes(out[_C["CRC_START"]:])) & 0xFFFFFFFF)
    return bytes(out)


def _emit_v1(plan: dict) -> bytes:
    hdr, desc, cellw = LAYOUT["hdr1"], LAYOUT["desc1"], LAYOUT["cellw"]
    n_layers = len(plan["layers"])
    if plan["front"] or plan["post"] or plan["post_pooled"] or any(plan["mid"]):
        raise ValueError("per-step records (front-end, activations) need format version 2")
    if any(lp["options"] is not None for lp in plan["layers"]):
        raise ValueError("cell options (reverse, clip, activations, peepholes, input_forget, initial "
                         "states) need format version 2")
    data_start = _round_up(hdr.size + desc.size * n_layers, ALIGN)
    blob = _Blob(data_start)
    descs = []
    for lp in plan["layers"]:
        refs = [[blob.add(t) for t in d] for d in lp["dirs"]]
        while len(refs) < 2:
            refs.append([(0, 0)] * 6)
        cw = [cellw.pack(**dict(zip(_CELLW, r, strict=True))) for r in refs]
        descs.append(desc.pack(kind=lp["cell"], flags=lp["flags"], input_size=lp["input_size"],
                               hidden_size=lp["hidden_size"], x_scale=lp["x_scale"],
                               h_scale=lp["h_scale"][0], h_scale_reverse=lp["h_scale"][1],
                               dir0=cw[0], dir1=cw[1]))
    emb = plan["embedding"]
    emb_ref = blob.add(emb.reshape(-1) if emb is not None else None)
    head = plan["head"]
    head_refs = [blob.add(t) for t in head["tensors"]] if head else [(0, 0)] * 3
    if blob.pos >= 2**32:
        raise ValueError(f"model too large for the .rnc format: {blob.pos} bytes (limit 4 GiB)")
    flags = (_C["V1_FLAG_EMBEDDING"] if emb is not None else 0) | (_C["V1_FLAG_HEAD"] if head else 0)
    if plan["last_step"] is not None:
        flags |= _C["V1_FLAG_LAST_STEP"] | (_C["V1_FLAG_LAST_STEP_BIDIR"] if plan["last_step"] else 0)
    header = hdr.pack(
        magic=_C["MAGIC"], version=_C["V1"], file_size=blob.pos, crc32=0, header_size=hdr.size,
        precision=PRECISIONS[plan["precision"]], num_layers=n_layers, input_size=plan["input_size"],
        flags=flags, embed_num=emb.shape[0] if emb is not None else 0,
        embed_dim=emb.shape[1] if emb is not None else 0,
        head_in=head["in"] if head else 0, head_out=head["out"] if head else 0,
        head_activation=head["activation"] if head else 0,
        head_in_scale=head["in_scale"] if head else 0.0, layer_desc_size=desc.size,
        embedding=emb_ref, head_weight=head_refs[0], head_scale=head_refs[1], head_bias=head_refs[2],
    )
    body = header + b"".join(descs)
    body += b"\0" * (data_start - len(body))
    return _finish([body] + blob.parts, blob.pos)


def _hh_sums(lp: dict) -> np.ndarray:
    """W_hh's kernel sums of a q8 layer, every direction: ``(D * G*Hp,)`` int32,
    ``sum_k Wq_hh[r, k]`` of each packed row (its padding is zero), as the C core's multi-row cells
    start their accumulators from them (docs/rnc-format.md)."""
    sums = []
    for d in lp["dirs"]:
        packed = np.asarray(d[1], np.int8)  # W_hh: blocks of 16 rows x groups of 4 inputs
        kp = _round_up(lp["out"], K_GROUP)
        blocks = packed.reshape(-1, kp // K_GROUP, ROW_BLOCK, K_GROUP).astype(np.int32)
        sums.append(blocks.sum(axis=(1, 3)).reshape(-1))
    return np.concatenate(sums).astype(np.int32)


def _emit_v2(plan: dict) -> bytes:
    """Header, then records in model order: [embedding] recurrent+ [last_step] [linear]."""
    hdr, cellw = LAYOUT["hdr2"], LAYOUT["cellw"]
    r_emb, r_rec, r_last, r_lin = (LAYOUT[n] for n in ("rec_embedding", "rec_recurrent",
                                                       "rec_last_step", "rec_linear"))
    emb, head = plan["embedding"], plan["head"]
    sizes = [r_emb.size] if emb is not None else []
    sizes += [_step_rec_size(r) for r in plan["front"]]
    for li, lp in enumerate(plan["layers"]):
        sizes.append(_rec_size(lp))
        sizes += [_step_rec_size(r) for r in (plan["mid"][li] if li < len(plan["mid"]) else [])]
    sizes += [_step_rec_size(r) for r in plan["post"]]
    sizes += [r_last.size + (LAYOUT["attnpool"].size if plan["last_step_attention"] is not None else 0)
              ] if plan["last_step"] is not None else []
    sizes += [_step_rec_size(r) for r in plan["post_pooled"]]
    sizes += [r_lin.size] if head else []
    records_size = sum(sizes)
    data_start = _round_up(hdr.size + records_size, ALIGN)
    blob = _Blob(data_start)
    records = []
    if emb is not None:
        records.append(r_emb.pack(kind=RECORD_KINDS["embedding"], size=r_emb.size, num=emb.shape[0],
                                  dim=emb.shape[1], weight=blob.add(emb.reshape(-1))))
    records += [_pack_step_record(r, blob) for r in plan["front"]]
    for li, lp in enumerate(plan["layers"]):
        if li:
            records += [_pack_step_record(r, blob) for r in plan["mid"][li - 1]]
        size = _rec_size(lp)
        sums = blob.add(_hh_sums(lp)) if plan["precision"] == "q8" else (0, 0)
        rec = r_rec.pack(kind=RECORD_KINDS["recurrent"], size=size, cell=lp["cell"],
                         flags=lp["flags"] | lp["sparse_flags"],
                         input_size=lp["input_size"], hidden_size=lp["hidden_size"],
                         x_scale=lp["x_scale"], h_scale=lp["h_scale"][0],
                         h_scale_reverse=lp["h_scale"][1], w_hh_sums=sums)
        for d, sp in zip(lp["dirs"], lp["sparse"], strict=True):
            tensors = [sp[0] if sp[0] is not None else d[0], sp[1] if sp[1] is not None else d[1]] + d[2:]
            rec += cellw.pack(**dict(zip(_CELLW, [blob.add(t) for t in tensors], strict=True)))
        if lp["options"] is not None:
            rec += _pack_options(lp["options"], blob)
        records.append(rec)
    records += [_pack_step_record(r, blob) for r in plan["post"]]
    if plan["last_step"] is not None:
        attn = plan["last_step_attention"]
        tail = b"" if attn is None else LAYOUT["attnpool"].pack(
            attention_size=attn["weight"].shape[0], features=attn["weight"].shape[1],
            weight=blob.add(attn["weight"].reshape(-1)), bias=blob.add(attn["bias"]),
            score=blob.add(attn["score"]))
        records.append(r_last.pack(kind=RECORD_KINDS["last_step"], size=r_last.size + len(tail),
                                   flags=(_C["LAST_STEP_FLAG_BIDIR"] if plan["last_step"] else 0)
                                   | (_C["LAST_STEP_FLAG_MEAN"] if plan["last_step_mean"] else 0)
                                   | (_C["LAST_STEP_FLAG_MAX"] if plan["last_step_max"] else 0)
                                   | (_C["LAST_STEP_FLAG_LAST"] if plan["last_step_last"] else 0)
                                   | (_C["LAST_STEP_FLAG_ATTN"] if attn is not None else 0)) + tail)
    records += [_pack_step_record(r, blob) for r in plan["post_pooled"]]
    if head:
        w, s, b = (blob.add(t) for t in head["tensors"])
        records.append(r_lin.pack(kind=RECORD_KINDS["linear"], size=r_lin.size, in_features=head["in"],
                                  out_features=head["out"], activation=head["activation"],
                                  in_scale=head["in_scale"], weight=w, scale=s, bias=b))
    assert [len(r) for r in records] == sizes
    if blob.pos >= 2**32:
        raise ValueError(f"model too large for the .rnc format: {blob.pos} bytes (limit 4 GiB)")
    header = hdr.pack(
        magic=_C["MAGIC"], version=_C["V2"], file_size=blob.pos, crc32=0, header_size=hdr.size,
        precision=PRECISIONS[plan["precision"]], input_size=0 if emb is not None else plan["input_size"],
        num_records=len(records), records_size=records_size, flags=0,
    )
    body = header + b"".join(records)
    body += b"\0" * (data_start - len(body))
    return _finish([body] + blob.parts, blob.pos)


_CELLW = ("w_ih", "w_hh", "s_ih", "s_hh", "b_ih", "b_hh")  # cellw fields, in _PARAMS order
_OPT_SLOTS = ("d0_0", "d0_1", "d0_2", "d1_0", "d1_1", "d1_2")  # cellopt act_/alpha_/beta_ suffixes


def _pack_step_record(r: dict, blob) -> bytes:
    out = _pack_step_body(r, blob)
    if r.get("timepad") is not None:   # conv_time / pool_time padding over time (after fconvq8)
        out += LAYOUT["timepad"].pack(**r["timepad"])
    return out


def _pack_step_body(r: dict, blob) -> bytes:
    st = LAYOUT["rec_" + r["kind"]]
    vals = dict(r["fields"])
    if r["kind"] == "frame_conv":
        vals["weight"], vals["bias"] = (blob.add(t) for t in r["tensors"][:2])
        if len(r["tensors"]) == 3:   # a q8 file: the fconvq8 tail (and the 16 x 16 form's fconvq16)
            sc = r["tensors"][2]
            tail16 = LAYOUT["fconvq16"].pack(bits=_C["FCONV_BITS16"]) if r.get("q16") else b""
            return st.pack(kind=RECORD_KINDS["frame_conv"], size=_step_rec_size(r), **vals) + LAYOUT[
                "fconvq8"].pack(scale=(0, 0) if sc is None else blob.add(sc)) + tail16
    elif r["kind"] == "conv_time":
        vals["weight"], vals["bias"] = (blob.add(t) for t in r["tensors"][:2])
        if len(r["tensors"]) == 3:   # a q8 file: the fconvq8 tail
            sc = r["tensors"][2]
            return st.pack(kind=RECORD_KINDS["conv_time"], size=_step_rec_size(r), **vals) + LAYOUT[
                "fconvq8"].pack(scale=(0, 0) if sc is None else blob.add(sc))
    elif r["kind"] in ("layer_norm", "instance_norm"):
        vals["weight"], vals["bias"] = (blob.add(t) for t in r["tensors"])
    elif r["kind"] == "scale_shift":
        vals["scale"], vals["shift"] = (blob.add(t) for t in r["tensors"])
    elif r["kind"] == "log_mel":
        vals["window"], vals["dft"], vals["fb_span"], vals["fb_weight"] = (blob.add(t) for t in r["tensors"])
    return st.pack(kind=RECORD_KINDS[r["kind"]], size=_step_rec_size(r), **vals)


def _step_rec_size(r: dict) -> int:
    """A per-step record's size: its structure, and a q8 file's frame_conv its fconvq8 tail."""
    q8conv = r["kind"] in ("frame_conv", "conv_time") and len(r["tensors"]) == 3
    extra = LAYOUT["fconvq8"].size if q8conv else 0
    if r.get("q16"):
        extra += LAYOUT["fconvq16"].size
    if r.get("timepad") is not None:
        extra += LAYOUT["timepad"].size
    return LAYOUT["rec_" + r["kind"]].size + extra


def _rec_size(lp: dict) -> int:
    extra = LAYOUT["cellopt"].size if lp["options"] is not None else 0
    if lp["options"] is not None and lp["options"]["layer_norm"] is not None:
        extra += LAYOUT["cellln"].size
    return _C["REC_RECURRENT_DIR0"] + LAYOUT["cellw"].size * len(lp["dirs"]) + extra


def _pack_options(o: dict, blob) -> bytes:
    vals: dict[str, Any] = {"flags": o["flags"], "clip": o["clip"]}
    for sfx, (code, al, be) in zip(_OPT_SLOTS, o["slots"], strict=True):
        vals["act_" + sfx], vals["alpha_" + sfx], vals["beta_" + sfx] = code, al, be
    for key, t in zip(("peepholes", "initial_h", "initial_c"), o["tensors"], strict=True):
        vals[key] = blob.add(t)
    vals["proj_size"] = o["proj_size"]
    vals["w_hr"], vals["s_hr"] = (blob.add(t) for t in o["proj"])
    out = LAYOUT["cellopt"].pack(**vals)
    ln = o["layer_norm"]
    if ln is not None:
        refs = [blob.add(t) for t in ln["tensors"]]
        out += LAYOUT["cellln"].pack(flags=ln["flags"], eps=ln["eps"], ln_ih=refs[0], ln_hh=refs[1],
                                     ln_c=refs[2])
    return out


def write_rnc(spec: Any, version: int = VERSION, *, precision: str | None = None) -> bytes:
    """Serialise a model description to ``.rnc`` bytes (see module docstring for ``spec``).

    Parameters
    ----------
    spec : dict or rnncore.spec.ModelSpec
        the model description: the file-level dict (module docstring), or the one description
        importers and ``rc.nn`` models give (:class:`rnncore.spec.ModelSpec`, written through
        :func:`rnncore.spec.to_rnc_spec` with ``precision``).
    precision : str, optional
        "f32" or "q8", for a ``ModelSpec`` only (a dict names its own).
    version : int
        file format version: 2 (default, an ordered list of layer records) or 1 (the fixed header
        and layer descriptors; kept so that older readers and the v1 tests have files).

    Returns
    -------
    bytes
        the whole file; the C loader (``rnc_model_init``) and :func:`read_rnc` read both versions.

    Raises
    ------
    ValueError
        on unknown names, inconsistent shapes, non-finite weights, sizes past the C limits or an
        unknown ``version``.
    """
    if version not in VERSIONS:
        raise ValueError(f"version: expected one of {VERSIONS}, got {version!r}")
    from rnncore.spec import ModelSpec, to_rnc_spec

    if isinstance(spec, ModelSpec):
        if precision is None:
            raise ValueError("precision: a ModelSpec is written as 'f32' or 'q8'; got None")
        spec = to_rnc_spec(spec, precision)
    elif precision is not None:
        raise ValueError(f"precision: only for a ModelSpec (a dict names its own), got {precision!r}")
    plan = _plan(spec)
    if version == _C["V1"] and plan["precision"] == "q4":
        raise ValueError("version: q4 models are written as version 2 files only, got version=1")
    if version == _C["V1"] and plan["last_step_mean"]:
        raise ValueError("version: mean pooling (last_step_mean) is written in version 2 files only, "
                         "got version=1")
    if version == _C["V1"] and plan["last_step_max"]:
        raise ValueError("version: max pooling (last_step_max) is written in version 2 files only, "
                         "got version=1")
    if version == _C["V1"] and plan["last_step_attention"] is not None:
        raise ValueError("version: attention pooling (last_step_attention) is written in version 2 files "
                         "only, got version=1")
    return _emit_v1(plan) if version == _C["V1"] else _emit_v2(plan)


# ----------------------------------------------------------------------------------------------
# reader: the C loader's checks (csrc/src/loader.c), in its order, with its messages
# ----------------------------------------------------------------------------------------------
class RncFormatError(ValueError):
    """A refused ``.rnc`` file: the same one line as the C loader's ``rnc_model_error``.

    Attributes
    ----------
    status : str
        ``"MAGIC"``, ``"VERSION"``, ``"TRUNCATED"``, ``"CHECKSUM"``, ``"CORRUPT"`` or
        ``"UNSUPPORTED"`` (the C loader's ``RNC_E_<status>``).
    message : str
        the name of the check's entry in rnc_layout.h's ``RNC_MESSAGES`` (``"REF_PAST_END"``, ...).
    detail : str
        ``"<part>: <field>: <problem>"``, e.g. ``"record 1 (recurrent, layer 0): dir0.w_hh: offset
        1280 + 960 bytes past the end of the file (2048 bytes)"``; also ``str(error)``.
    """

    def __init__(self, status: str, detail: str, message: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.message = message  # the RNC_MESSAGES entry (e.g. "REF_PAST_END")


_HEADER = None  # the part: the header (else the v1 descriptor / v2 record number)
_ERROR_TEXT = 255  # characters the C loader keeps (RNC_ERROR_TEXT_SIZE - 1)
_MAX_TENSORS = _C["FILE_MAX_LAYERS"] * 16 + 4 + 3 * _C["FILE_MAX_FRONT"] + 2  # loader.c MAX_TENSORS
_STAGE_PLACE = ("first", "after an embedding", "after a recurrent record", "after last_step", "after linear",
                "after a front-end record", "after a per-step record", "after a per-step record",
                "after positions")
_KIND_TEXT = {v: k for k, v in RECORD_KINDS.items()}


def _r4(n: int) -> int:
    return (n + 3) & ~3


def _r16(n: int) -> int:
    return (n + 15) & ~15


def _f32(bits: int) -> float:
    """The binary32 value of ``bits`` (the C loader prints the bits of float fields)."""
    return struct.unpack("<f", struct.pack("<I", bits))[0]


class _Loader:
    """A line-by-line mirror of csrc/src/loader.c (same checks, same order, same messages from
    rnc_layout.h's RNC_MESSAGES); tests/test_rnc_agreement.py holds the two to the same verdict
    and the same text on thousands of mutated files. The tensors it returns are views of ``b``."""

    def __init__(self, b: bytes, host: bool = False) -> None:
        self.b = b
        self.host = host   # check_rnc: the engine's verdict (the same as read_rnc's)
        self.int_h_scale, self.int_h_zp = 0, 0   # precision 3: the previous layer's h (rnc_int)
        self.size = 0
        self.data_start = 0
        self.refs: list[tuple[int, int, str, int | None, int | None]] = []  # off, end, field, part, dir
        self.feat = 0
        self.version = 0
        self.part: int | None = _HEADER
        self.dir: int | None = None
        self.part_kind: dict[int, int] = {}
        self.part_layer: dict[int, int] = {}
        self.precision = 0
        self.input_size = 0
        self.embedding: tuple[int, int, np.ndarray] | None = None
        self.layers: list[dict] = []
        self.last_step: bool | None = None
        self.last_step_mean = False
        self.last_step_max = False
        self.last_step_last = False   # with mean and/or max: the last step is a part too
        self.positions = 0   # a positions record's P (the layers step P times per step of the model)
        self.last_step_attention: dict | None = None
        self.head: dict | None = None
        self.steps: list[dict] = []   # per-step records: kind, fields, tensors, place
        self.step_phase: list[int] = []   # per-step records: 1 when it has a countdown
        self.win_floats = 0   # conv_time windows per stream row so far

    # -- the refusal's text ------------------------------------------------------------------
    def where(self, part: int | None, d: int | None, field: str) -> str:
        if part is _HEADER:
            w = "header"
        elif self.version == _C["V1"]:
            w = f"layer {part} descriptor"
        elif part not in self.part_kind:
            w = f"record {part}"
        elif self.part_kind[part] == RECORD_KINDS["recurrent"]:
            w = f"record {part} (recurrent, layer {self.part_layer[part]})"
        else:
            w = f"record {part} ({_KIND_TEXT[self.part_kind[part]]})"
        return f"{w}: " + (f"dir{d}." if d is not None else "") + field

    def fail(self, field: str, msg: str, *args: Any) -> RncFormatError:
        m = LAYOUT.messages[msg]
        text = f"{self.where(self.part, self.dir, field)}: {m.format(*args)}"
        return RncFormatError(m.status, text[:_ERROR_TEXT], msg)

    def u32(self, at: int) -> int:
        return struct.unpack_from("<I", self.b, at)[0]

    def unpack(self, st, base: int = 0) -> dict:
        """The structure's fields, F32 ones as their raw bits (a NaN's payload kept)."""
        r = st.unpack(self.b, base)
        for f in st.fields.values():
            if f.type == "F32":
                r[f.name] = self.u32(base + f.offset)
        return r

    def check_reserved(self, st, base: int) -> None:
        bad = st.reserved_nonzero(self.b, base)
        if bad:
            raise self.fail("reserved", "RESERVED", bad[0], st.size, self.b[base + bad[0]])

    # -- tensors -------------------------------------------------------------------------------
    def get_ref(self, field: str, ref: tuple[int, int], expect: int) -> int | None:
        off, n = ref
        if expect == 0:
            if off or n:
                raise self.fail(field, "REF_ABSENT", off, n)
            return None
        if n != expect:
            raise self.fail(field, "REF_BYTES", n, expect)
        if off % ALIGN:
            raise self.fail(field, "REF_ALIGN", off)
        if off < self.data_start:
            raise self.fail(field, "REF_BEFORE", off, self.data_start)
        if off > self.size or n > self.size - off:
            raise self.fail(field, "REF_PAST_END", off, n, self.size)
        if len(self.refs) >= _MAX_TENSORS:
            raise self.fail(field, "REF_COUNT", _MAX_TENSORS)
        self.refs.append((off, off + n, field, self.part, self.dir))
        return off

    def check_floats(self, field: str, off: int, count: int, nonneg: bool) -> np.ndarray:
        a = np.frombuffer(self.b, "<f4", count, off)
        bad = ~np.isfinite(a) | ((a < 0) if nonneg else False)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.fail(field, "NOT_FINITE" if not np.isfinite(a[i]) else "NEGATIVE", i)
        return a.astype(np.float32)

    def check_q8(self, field: str, off: int, count: int) -> np.ndarray:
        q = np.frombuffer(self.b, np.int8, count, off)
        bad = q == -128
        if bad.any():
            raise self.fail(field, "Q8_MIN", int(np.argmax(bad)))
        return q

    def check_static_scale(self, field: str, bits: int) -> None:
        v = _f32(bits)
        if not math.isfinite(v) or v < 0:
            raise self.fail(field, "SCALE", bits)
        if self.precision == _C_F32 and v != 0:
            raise self.fail(field, "SCALE_F32", bits)

    def get_matrix(self, wname: str, wref, sname: str, sref, rows: int, k: int, prec: int | None = None):
        """(packed weights, scales or None); q4 weights come back in the q8 packed layout."""
        prec = self.precision if prec is None else prec
        if prec == _C_Q4:  # checked as loader.c's check_q4, returned in the q8 layout
            if _r4(k) > _C["FILE_Q8_MAX_K"]:
                raise self.fail(wname, "Q8_K", _r4(k), _C["FILE_Q8_MAX_K"])
            n = rows * _round_up(k, 8) // 2
            w = self.get_ref(wname, wref, n)
            s = self.get_ref(sname, sref, rows * 4)
            raw = np.frombuffer(self.b, np.uint8, n, w)
            i = np.arange(n)
            lo_in = (i // 64 % (_round_up(k, 8) // 8)) * 8 + i % 4
            bad_min = ((raw & 15) == 0) | ((raw >> 4) == 0)
            pad = ((lo_in >= k) & ((raw & 15) != 8)) | ((lo_in + 4 >= k) & ((raw >> 4) != 8))
            bad = bad_min | pad
            if bad.any():   # the first bad byte, nibble 0 checked before the padding (loader.c)
                j = int(np.argmax(bad))
                if bad_min[j]:
                    raise self.fail(wname, "Q4_MIN", j)
                raise self.fail(wname, "Q4_PAD", j, int(lo_in[j] if lo_in[j] >= k else lo_in[j] + 4), k)
            full = unpack_q4(raw, rows, _round_up(k, 8))
            return pack_q8(np.ascontiguousarray(full[:, :_r4(k)])), self.check_floats(sname, s, rows, True)
        if prec == _C_Q8:
            if _r4(k) > _C["FILE_Q8_MAX_K"]:
                raise self.fail(wname, "Q8_K", _r4(k), _C["FILE_Q8_MAX_K"])
            w = self.get_ref(wname, wref, rows * _r4(k))
            s = self.get_ref(sname, sref, rows * 4)
            return self.check_q8(wname, w, rows * _r4(k)), self.check_floats(sname, s, rows, True)
        w = self.get_ref(wname, wref, rows * k * 4)
        self.get_ref(sname, sref, 0)
        return self.check_floats(wname, w, rows * k, False), None

    def get_sparse(self, w: str, wref, rows: int, k: int, gates: int = 0) -> np.ndarray:
        """A block-sparse q8 matrix (loader.c's get_sparse, same checks in the same order): its
        dense packed form. ``gates`` > 0: the gate-shared layout of that many gates."""
        kp = _r4(k)
        groups, n = kp // K_GROUP, wref[1]
        if kp > _C["FILE_Q8_MAX_K"]:
            raise self.fail(w, "Q8_K", kp, _C["FILE_Q8_MAX_K"])
        st = LAYOUT["spq8"]
        if n < st.size:
            raise self.fail(w, "SPARSE_SHORT", n, st.size)
        off = self.get_ref(w, wref, n)
        self.check_reserved(st, off)
        h = st.unpack(self.b, off)
        bh, rb, nnz = h["block_rows"], h["row_blocks"], h["nnz"]
        if gates and bh != _C["SPQ8_BLOCK_ROWS_MAX"]:
            raise self.fail(w + ".block_rows", "EXPECT", bh, _C["SPQ8_BLOCK_ROWS_MAX"])
        if bh not in (_C["SPQ8_BLOCK_ROWS_MIN"], _C["SPQ8_BLOCK_ROWS_MAX"]):
            raise self.fail(w + ".block_rows", "RANGE", bh, _C["SPQ8_BLOCK_ROWS_MIN"],
                            _C["SPQ8_BLOCK_ROWS_MAX"])
        per = gates or 1  # blocks per entry
        if rb != rows // per // bh:
            raise self.fail(w + ".row_blocks", "EXPECT", rb, rows // per // bh)
        if h["groups"] != groups:
            raise self.fail(w + ".groups", "EXPECT", h["groups"], groups)
        if nnz > rb * groups:
            raise self.fail(w + ".nnz", "RANGE", nnz, 0, rb * groups)
        sums_off = st.size + 4 * (rb + 1)
        cols_off = sums_off + 4 * rows
        blk_off = _round_up(cols_off + 2 * nnz, ALIGN)
        eb = per * bh * 4
        end = blk_off + nnz * eb
        if n != end:
            raise self.fail(w, "REF_BYTES", n, end)
        rowptr = np.frombuffer(self.b, "<u4", rb + 1, off + st.size).astype(np.int64)
        sums = np.frombuffer(self.b, "<i4", rows, off + sums_off)
        cols = np.frombuffer(self.b, "<u2", nnz, off + cols_off).astype(np.int64)
        if rowptr[0] != 0:
            raise self.fail(w + ".rowptr", "SPARSE_ROWPTR", 0, int(rowptr[0]), 0)
        for b in range(rb):
            if rowptr[b + 1] < rowptr[b]:
                raise self.fail(w + ".rowptr", "SPARSE_ROWPTR", b + 1, int(rowptr[b + 1]), int(rowptr[b]))
            if rowptr[b + 1] - rowptr[b] > groups:
                raise self.fail(w + ".rowptr", "SPARSE_ROWLEN", b, int(rowptr[b + 1] - rowptr[b]), groups)
        if rowptr[rb] != nnz:
            raise self.fail(w + ".rowptr", "EXPECT", int(rowptr[rb]), nnz)
        blk = self.check_q8(w + ".blocks", off + blk_off, nnz * eb).reshape(nnz, per * bh, 4)
        hp = rb * bh
        for b in range(rb):
            want = np.zeros(per * bh, np.int64)  # entry row e: gate e // bh, row e % bh
            for i in range(int(rowptr[b]), int(rowptr[b + 1])):
                lo = int(cols[i - 1]) + 1 if i > rowptr[b] else 0
                if not lo <= cols[i] < groups:
                    raise self.fail(w + ".cols", "SPARSE_COL", i, int(cols[i]), lo, groups - 1)
                t = blk[i]
                for r in range(per * bh):
                    for j in range(4):
                        if 4 * int(cols[i]) + j >= k and t[r, j]:
                            raise self.fail(w + ".blocks", "SPARSE_PAD", i, 4 * int(cols[i]) + j, k)
                want += t.astype(np.int64).sum(axis=1)
            row_of = (np.arange(per * bh) // bh * hp + b * bh + np.arange(per * bh) % bh if gates
                      else b * bh + np.arange(bh))
            bad = np.flatnonzero(sums[row_of] != want)
            if bad.size:
                r = int(row_of[bad[0]])
                raise self.fail(w + ".sums", "SPARSE_SUM", r, int(sums[r]), int(want[bad[0]]))
        t = np.frombuffer(self.b, np.uint8, n, off)
        dense = unpack_shared_q8(t, rows, kp, gates) if gates else unpack_sparse_q8(t, rows, kp)
        return pack_q8(dense)

    def get_vector(self, field: str, ref, count: int) -> np.ndarray:
        return self.check_floats(field, self.get_ref(field, ref, count * 4), count, False)

    # -- the model's parts ---------------------------------------------------------------------
    def load_attention(self, flags: int, at: int) -> None:
        """The attnpool tail at ``at`` of a last_step record with the attention flag (the C
        loader's checks in its order)."""
        if flags & (_C["LAST_STEP_FLAG_BIDIR"] | _C["LAST_STEP_FLAG_MEAN"]):
            raise self.fail("flags", "ATTN_FLAGS", flags)
        if self.precision == _C_INT:
            raise self.fail("flags", "ATTN_INT", flags)
        r = self.unpack(LAYOUT["attnpool"], at)
        a, f = r["attention_size"], r["features"]
        if not 1 <= a <= _C["FILE_MAX_FEATURES"]:
            raise self.fail("attnpool.attention_size", "RANGE", a, 1, _C["FILE_MAX_FEATURES"])
        if f != self.feat:
            raise self.fail("attnpool.features", "EXPECT", f, self.feat)
        w = self.get_vector("attnpool.weight", r["weight"], a * f)
        b = self.get_vector("attnpool.bias", r["bias"], a)
        v = self.get_vector("attnpool.score", r["score"], a)
        self.last_step_attention = {"weight": w.reshape(a, f), "bias": b, "score": v}

    def load_embedding(self, names: tuple[str, str, str], num: int, dim: int, ref) -> None:
        if not 1 <= num <= _C["FILE_MAX_VOCAB"]:
            raise self.fail(names[0], "RANGE", num, 1, _C["FILE_MAX_VOCAB"])
        if not 1 <= dim <= _C["FILE_MAX_FEATURES"]:
            raise self.fail(names[1], "RANGE", dim, 1, _C["FILE_MAX_FEATURES"])
        off = self.get_ref(names[2], ref, num * dim * 4)
        self.embedding = (num, dim, self.check_floats(names[2], off, num * dim, False))

    def load_layer(self, cell_field: str, r: dict, dirs_at: list[int | None], hh_sums,
                   opt_at: int | None = None) -> None:
        """``r``: the descriptor's / record's fields; ``dirs_at``: each cellw's offset (None: v2
        unidirectional's missing second direction); ``opt_at``: the cellopt's offset (v2 with
        the options flag)."""
        kind, lf, i, h = r[cell_field], r["flags"], r["input_size"], r["hidden_size"]
        sparse_flags = _C["LAYER_FLAG_SPARSE_IH"] | _C["LAYER_FLAG_SPARSE_HH"]
        shared_flags = _C["LAYER_FLAG_SHARED_IH"] | _C["LAYER_FLAG_SHARED_HH"]
        known = _C["LAYER_FLAG_RESET_AFTER"] | _C["LAYER_FLAG_BIDIR"]
        if self.version == _C["V2"]:
            known |= sparse_flags | shared_flags | _C["LAYER_FLAG_OPTIONS"]
        if len(self.layers) >= _C["FILE_MAX_LAYERS"]:
            raise self.fail(cell_field, "LAYERS", _C["FILE_MAX_LAYERS"])
        if kind >= _C["FILE_CELL_KINDS"]:
            raise self.fail(cell_field, "RANGE", kind, 0, _C["FILE_CELL_KINDS"] - 1)
        if lf & ~known:
            raise self.fail("flags", "FLAGS", lf, known)
        if lf & _C["LAYER_FLAG_RESET_AFTER"] and kind != KINDS[("gru", None)]:
            raise self.fail("flags", "RESET_AFTER", lf)
        # SHARED_IH / _HH (bits 5, 6) qualify SPARSE_IH / _HH (bits 2, 3)
        if lf & shared_flags and ((lf & shared_flags) >> 3 & ~lf or kind not in (
                KINDS[("gru", None)], KINDS[("lstm", None)])):
            raise self.fail("flags", "SPARSE_SHARED", lf)
        if lf & sparse_flags and (self.precision != _C_Q8 or lf & _C["LAYER_FLAG_OPTIONS"] or (
                kind == KINDS[("gru", None)] and not lf & _C["LAYER_FLAG_RESET_AFTER"])):
            raise self.fail("flags", "SPARSE_FORM", lf)
        if i != self.feat:
            raise self.fail("input_size", "EXPECT", i, self.feat)
        if not 1 <= h <= _C["FILE_MAX_HIDDEN"]:
            raise self.fail("hidden_size", "RANGE", h, 1, _C["FILE_MAX_HIDDEN"])
        if self.precision == _C_Q4 and lf & _C["LAYER_FLAG_OPTIONS"]:
            raise self.fail("flags", "Q4_FORM", lf)
        p_size = self.u32(opt_at + LAYOUT["cellopt"].fields["proj_size"].offset) if opt_at is not None else 0
        if p_size and (kind != KINDS[("lstm", None)] or p_size >= h):
            raise self.fail("opt.proj_size", "OPT_PROJ", p_size, h - 1)
        hw = p_size or h
        ndir = 2 if lf & _C["LAYER_FLAG_BIDIR"] else 1
        g = GATES[_KIND_NAMES[kind][0]]
        hp = _r16(h)
        kh = _r4(hw) if self.precision != _C_F32 else hw
        self.check_static_scale("x_scale", r["x_scale"])
        self.check_static_scale("h_scale", r["h_scale"])
        self.check_static_scale("h_scale_reverse", r["h_scale_reverse"])
        if ndir == 1 and _f32(r["h_scale_reverse"]) != 0:
            raise self.fail("h_scale_reverse", "SCALE_UNIDIR", r["h_scale_reverse"])
        rows = g * hp
        cw = LAYOUT["cellw"]
        dirs = []
        for k in range(2):
            at = dirs_at[k]
            self.dir = k
            if k >= ndir:
                if at is not None:  # v1: the unused direction's references are all absent
                    refs = cw.unpack(self.b, at)
                    for f in ("w_ih", "w_hh", "s_ih", "s_hh", "b_ih", "b_hh"):
                        self.get_ref(f, refs[f], 0)
                continue
            refs = cw.unpack(self.b, at)
            mats = []
            for wn, sn, flag, kk in (("w_ih", "s_ih", "LAYER_FLAG_SPARSE_IH", i),
                                     ("w_hh", "s_hh", "LAYER_FLAG_SPARSE_HH", hw)):
                if lf & _C[flag]:
                    wd = self.get_sparse(wn, refs[wn], rows, kk, g if lf & _C[flag] << 3 else 0)
                    sv = self.check_floats(sn, self.get_ref(sn, refs[sn], rows * 4), rows, True)
                    mats.append((wd, sv))
                else:
                    mats.append(self.get_matrix(wn, refs[wn], sn, refs[sn], rows, kk))
            (w_ih, s_ih), (w_hh, s_hh) = mats
            b_ih = self.get_vector("b_ih", refs["b_ih"], rows)
            b_hh = self.get_vector("b_hh", refs["b_hh"], rows)
            dirs.append({"w_ih": w_ih, "s_ih": s_ih, "w_hh": w_hh, "s_hh": s_hh, "b_ih": b_ih, "b_hh": b_hh})
        self.dir = None
        if hh_sums is not None:  # v2: present exactly for q8
            if self.precision == _C_Q8:
                off = self.get_ref("w_hh_sums", hh_sums, rows * 4 * ndir)
                got = np.frombuffer(self.b, "<i4", rows * ndir, off).reshape(ndir, rows)
                for k, d in enumerate(dirs):
                    blocks = d["w_hh"].reshape(rows // ROW_BLOCK, kh // K_GROUP, ROW_BLOCK, K_GROUP)
                    want = blocks.astype(np.int64).sum(axis=(1, 3)).reshape(-1)
                    bad = np.flatnonzero(got[k] != want)
                    if bad.size:
                        row = int(bad[0])
                        raise self.fail("w_hh_sums", "HH_SUM", k, row, int(got[k, row]), int(want[row]))
            else:
                self.get_ref("w_hh_sums", hh_sums, 0)
        options = (self.load_options(opt_at, kind, ndir, h, hw, bool(lf & _C["LAYER_FLAG_RESET_AFTER"]))
                   if opt_at is not None else None)
        self.layers.append({"cell": kind, "flags": lf, "input_size": i, "hidden_size": h,
                            "x_scale": _f32(r["x_scale"]),
                            "h_scale": [_f32(r["h_scale"]), _f32(r["h_scale_reverse"])],
                            "dirs": dirs, "options": options, "out": hw})
        self.feat = ndir * hw

    def load_options(self, at: int, kind: int, ndir: int, h: int, hw: int, reset_after: bool = True) -> dict:
        """loader.c load_options: the cellopt of a recurrent record (``hw``: h's width)."""
        st = LAYOUT["cellopt"]
        o = self.unpack(st, at)
        f = o["flags"]
        self.check_reserved(st, at)
        lstm = kind == KINDS[("lstm", None)]
        if f & ~_C["CELLOPT_FLAGS_ALL"]:
            raise self.fail("opt.flags", "FLAGS", f, _C["CELLOPT_FLAGS_ALL"])
        if not lstm:
            for bit, name in (("CELLOPT_INPUT_FORGET", "input_forget"), ("CELLOPT_PEEPHOLES", "peepholes"),
                              ("CELLOPT_INITIAL_C", "initial_c")):
                if f & _C[bit]:
                    raise self.fail("opt.flags", "OPT_LSTM", f, name)
        if f & _C["CELLOPT_REVERSE"] and ndir == 2:
            raise self.fail("opt.flags", "OPT_REVERSE_BIDIR", f)
        if f & _C["CELLOPT_REVERSE_OUTPUT"] and not f & _C["CELLOPT_REVERSE"]:
            raise self.fail("opt.flags", "OPT_REVERSE_OUTPUT", f)
        clip = _f32(o["clip"])
        if (f & _C["CELLOPT_CLIP"] and not (math.isfinite(clip) and clip > 0)) or (
                not f & _C["CELLOPT_CLIP"] and o["clip"] != 0):
            raise self.fail("opt.clip", "OPT_CLIP", o["clip"])
        n = CELL_ACT_SLOTS[_KIND_NAMES[kind][0]]
        acts: list[list[tuple[str, float, float]]] = []
        for d in range(2):
            row = []
            for k in range(3):
                sfx = f"d{d}_{k}"
                code, al, be = o["act_" + sfx], o["alpha_" + sfx], o["beta_" + sfx]
                if d < ndir and k < n:
                    if code >= _C["FILE_CELL_ACTIVATIONS"]:
                        raise self.fail("opt.act_" + sfx, "RANGE", code, 0, _C["FILE_CELL_ACTIVATIONS"] - 1)
                    for name, bits in (("alpha_", al), ("beta_", be)):
                        if not math.isfinite(_f32(bits)):
                            raise self.fail("opt." + name + sfx, "OPT_PARAM", bits)
                    row.append((_CELL_ACT_NAMES[code], _f32(al), _f32(be)))
                else:
                    for name, v in (("act_", code), ("alpha_", al), ("beta_", be)):
                        if v != 0:
                            raise self.fail("opt." + name + sfx, "OPT_UNUSED", v)
            if row:
                acts.append(row)
        out: dict[str, Any] = {"reverse": bool(f & _C["CELLOPT_REVERSE"]),
                               "reverse_output": bool(f & _C["CELLOPT_REVERSE_OUTPUT"]),
                               "input_forget": bool(f & _C["CELLOPT_INPUT_FORGET"]),
                               "clip": clip if f & _C["CELLOPT_CLIP"] else None, "activations": acts}
        for key, bit, count in (("peepholes", "CELLOPT_PEEPHOLES", ndir * 3 * h),
                                ("initial_h", "CELLOPT_INITIAL_H", ndir * hw),
                                ("initial_c", "CELLOPT_INITIAL_C", ndir * h)):
            if f & _C[bit]:
                out[key] = self.get_vector("opt." + key, o[key], count)
            else:
                self.get_ref("opt." + key, o[key], 0)
                out[key] = None
        out["proj"] = None
        if o["proj_size"]:
            out["proj"] = self.get_matrix("opt.w_hr", o["w_hr"], "opt.s_hr", o["s_hr"],
                                          ndir * _r16(o["proj_size"]), h)
        else:
            self.get_ref("opt.w_hr", o["w_hr"], 0)
            self.get_ref("opt.s_hr", o["s_hr"], 0)
        out["layer_norm"] = None
        if f & _C["CELLOPT_LAYER_NORM"]:
            out["layer_norm"] = self.load_layer_norm(at + st.size, f, kind, ndir, h, reset_after)
        return out

    def load_layer_norm(self, at: int, f: int, kind: int, ndir: int, h: int, reset_after: bool) -> dict:
        """loader.c load_layer_norm: the cellln after the cellopt (``f``: the cellopt's flags)."""
        st = LAYOUT["cellln"]
        o = self.unpack(st, at)
        self.check_reserved(st, at)
        if kind not in (KINDS[("gru", None)], KINDS[("lstm", None)]):
            raise self.fail("opt.flags", "OPT_LN_FORM", f, "an RNN cell (GRU and LSTM only)")
        if kind == KINDS[("gru", None)] and not reset_after:
            raise self.fail("opt.flags", "OPT_LN_FORM", f, "GRU reset_after = 0")
        for bit, name in (("CELLOPT_INPUT_FORGET", "input_forget"), ("CELLOPT_CLIP", "clip"),
                          ("CELLOPT_PEEPHOLES", "peepholes")):
            if f & _C[bit]:
                raise self.fail("opt.flags", "OPT_LN_FORM", f, name)
        if o["flags"] & ~_C["CELLLN_FLAGS_ALL"]:
            raise self.fail("ln.flags", "FLAGS", o["flags"], _C["CELLLN_FLAGS_ALL"])
        eps_bits = o["eps"]   # unpack: F32 fields as their bits
        eps = _f32(eps_bits)
        if not (math.isfinite(eps) and eps > 0):
            raise self.fail("ln.eps", "OPT_LN_EPS", eps_bits)
        lstm = kind == KINDS[("lstm", None)]
        n = GATES[_KIND_NAMES[kind][0]] * h
        out: dict[str, Any] = {"per_gate": bool(o["flags"] & _C["CELLLN_PER_GATE"]), "eps": eps}
        for key, count in (("ih", ndir * 2 * n), ("hh", ndir * 2 * n), ("c", ndir * 2 * h if lstm else 0)):
            if count:
                out[key] = self.get_vector("ln.ln_" + key, o["ln_" + key], count)
            else:
                self.get_ref("ln.ln_" + key, o["ln_" + key], 0)
                out[key] = None
        return out

    def load_last_step(self, field: str, flags: int, bidir: bool) -> None:
        self.last_step = bool(bidir)
        if bidir and (not self.layers or not self.layers[-1]["flags"] & _C["LAYER_FLAG_BIDIR"]):
            raise self.fail(field, "LAST_BIDIR", flags)

    def load_head(self, names: tuple[str, ...], vals: tuple, refs: tuple) -> None:
        fin, fout, fact, fscale, fw, fs, fb = names
        n_in, n_out, act, scale = vals
        if n_in != self.feat:
            raise self.fail(fin, "EXPECT", n_in, self.feat)
        if not 1 <= n_out <= _C["FILE_MAX_FEATURES"]:
            raise self.fail(fout, "RANGE", n_out, 1, _C["FILE_MAX_FEATURES"])
        if act >= _C["FILE_ACTIVATIONS"]:
            raise self.fail(fact, "RANGE", act, 0, _C["FILE_ACTIVATIONS"] - 1)
        self.check_static_scale(fscale, scale)
        op = _r16(n_out)
        w, s = self.get_matrix(fw, refs[0], fs, refs[1], op, n_in,
                               _C_Q8 if self.precision == _C_Q4 else None)  # a q4 file's head is q8
        b = self.get_vector(fb, refs[2], op)
        self.head = {"in": n_in, "out": n_out, "activation": act, "in_scale": _f32(scale), "w": w, "s": s,
                     "b": b}

    def finish(self) -> None:
        self.part, self.dir = _HEADER, None
        if self.feat > _C["FILE_MAX_FEATURES"]:
            raise self.fail("output", "OUTPUT_WIDTH", self.feat, _C["FILE_MAX_FEATURES"])
        refs = sorted(self.refs, key=lambda r: r[0])  # stable, as loader.c's insertion sort
        for (o0, e0, f0, p0, d0), (o1, e1, f1, p1, d1) in zip(refs, refs[1:], strict=False):
            if o1 < e0:
                self.part, self.dir = p1, d1
                raise self.fail(f1, "OVERLAP", o1, e1, self.where(p0, d0, f0), o0, e0)

    def begin(self, header_size: int) -> None:
        b = self.b
        if len(b) < header_size:
            raise self.fail("file_size", "SHORT", len(b), header_size)
        file_size = self.u32(8)
        if file_size < header_size:
            raise self.fail("file_size", "FILE_SIZE_SMALL", file_size, header_size)
        if file_size > len(b):
            raise self.fail("file_size", "FILE_SIZE_BIG", file_size, len(b))
        crc = zlib.crc32(b[_C["CRC_START"]:file_size]) & 0xFFFFFFFF
        if crc != self.u32(12):
            raise self.fail("crc32", "CRC", self.u32(12), crc)
        self.size = file_size

    # -- version 1 -----------------------------------------------------------------------------
    def load_v1(self) -> None:
        hs, ds = LAYOUT["hdr1"], LAYOUT["desc1"]
        self.begin(hs.size)
        h = self.unpack(hs)
        prec, nl, in_size, flags = h["precision"], h["num_layers"], h["input_size"], h["flags"]
        if h["header_size"] != _C["V1_HEADER_SIZE"]:
            raise self.fail("header_size", "EXPECT", h["header_size"], _C["V1_HEADER_SIZE"])
        if h["layer_desc_size"] != _C["V1_DESC_SIZE"]:
            raise self.fail("layer_desc_size", "EXPECT", h["layer_desc_size"], _C["V1_DESC_SIZE"])
        known = (_C["V1_FLAG_EMBEDDING"] | _C["V1_FLAG_HEAD"] | _C["V1_FLAG_LAST_STEP"]
                 | _C["V1_FLAG_LAST_STEP_BIDIR"])
        if prec >= _C["FILE_PRECISIONS"]:
            raise self.fail("precision", "RANGE", prec, 0, _C["FILE_PRECISIONS"] - 1)
        if prec == _C_Q4:
            raise self.fail("precision", "Q4_V1", prec)
        if flags & ~known:
            raise self.fail("flags", "FLAGS", flags, known)
        if nl == 0:
            raise self.fail("num_layers", "RANGE", nl, 1, _C["FILE_MAX_LAYERS"])
        if nl > _C["FILE_MAX_LAYERS"]:
            raise self.fail("num_layers", "RANGE_UNSUPPORTED", nl, 1, _C["FILE_MAX_LAYERS"])
        self.check_reserved(hs, 0)
        self.data_start = _round_up(hs.size + ds.size * nl, ALIGN)
        if self.data_start > self.size:
            raise self.fail("num_layers", "TENSOR_AREA", self.data_start, self.size)
        if not 1 <= in_size <= _C["FILE_MAX_FEATURES"]:
            raise self.fail("input_size", "RANGE", in_size, 1, _C["FILE_MAX_FEATURES"])
        self.precision, self.input_size = prec, in_size
        self.feat = in_size
        if flags & _C["V1_FLAG_EMBEDDING"]:
            if h["embed_dim"] != in_size:
                raise self.fail("embed_dim", "EXPECT", h["embed_dim"], in_size)
            self.load_embedding(("embed_num", "embed_dim", "embedding"), h["embed_num"], h["embed_dim"],
                                h["embedding"])
        else:
            for f in ("embed_num", "embed_dim"):
                if h[f]:
                    raise self.fail(f, "NONZERO", h[f], "embedding")
            self.get_ref("embedding", h["embedding"], 0)
        for li in range(nl):
            base = hs.size + ds.size * li
            self.part = li
            self.check_reserved(ds, base)
            d = self.unpack(ds, base)
            self.load_layer("kind", d, [d["dir0"], d["dir1"]], None)
        self.part = _HEADER
        if flags & _C["V1_FLAG_LAST_STEP"]:
            self.load_last_step("flags", flags, bool(flags & _C["V1_FLAG_LAST_STEP_BIDIR"]))
        elif flags & _C["V1_FLAG_LAST_STEP_BIDIR"]:
            raise self.fail("flags", "LAST_BIDIR_ALONE", flags)
        names = ("head_in", "head_out", "head_activation", "head_in_scale", "head_weight", "head_scale",
                 "head_bias")
        if flags & _C["V1_FLAG_HEAD"]:
            self.load_head(names, tuple(h[f] for f in names[:4]), tuple(h[f] for f in names[4:]))
        else:
            for f in names[:4]:
                if (_f32(h[f]) if f == "head_in_scale" else h[f]) != 0:
                    raise self.fail(f, "NONZERO", h[f], "head")
            for f in names[4:]:
                self.get_ref(f, h[f], 0)
        self.finish()

    # -- version 2 -----------------------------------------------------------------------------
    def timepad(self, at: int, P: int, avg: bool) -> tuple[int, int, int]:
        """loader.c load_timepad: a conv_time / pool_time record's timepad tail at ``at``."""
        tp = LAYOUT["timepad"]
        self.check_reserved(tp, at)
        t = self.unpack(tp, at)
        if t["left"] > P:
            raise self.fail("timepad.left", "RANGE", t["left"], 0, P)
        if t["right"] > P:
            raise self.fail("timepad.right", "RANGE", t["right"], 0, P)
        known = _C["TIMEPAD_EXCLUDE_PAD"] if avg else 0
        if t["flags"] & ~known:
            raise self.fail("timepad.flags", "FLAGS", t["flags"], known)
        return t["left"], t["right"], t["flags"] & _C["TIMEPAD_EXCLUDE_PAD"]

    def time_fields(self, k: int, st: int, dl: int) -> None:
        """loader.c check_time_fields: a record over time's kernel_size, stride and dilation each in
        1..FILE_MAX_KERNEL."""
        mk = _C["FILE_MAX_KERNEL"]
        for name, v in (("kernel_size", k), ("stride", st), ("dilation", dl)):
            if not 1 <= v <= mk:
                raise self.fail(name, "RANGE", v, 1, mk)

    def time_window(self, tp: int | None, P: int, ch: int, st: int, causal: bool, avg: bool,
                    counters: bool) -> tuple[int, int, int, int]:
        """loader.c load_time_window: a record over time's padding (its timepad tail at ``tp``, or
        none: left ``P`` when ``causal``, else 0, right 0) and window of ``P`` steps of ``ch``
        channels with its counters ``ph`` (a countdown when strided or when the first ``P - left``
        steps give no output; 2 more when ``counters`` and padded, or when padded beyond its reach,
        ``left + right > P``) within FILE_MAX_WINDOW, alone and after the model's other windows.
        Returns ``(left, right, exclude_pad, ph)``."""
        tl, tr, excl = self.timepad(tp, P, avg) if tp is not None else (P if causal else 0, 0, 0)
        padded = counters and tp is not None and (tl or tr)
        ph = int(st > 1 or tl < P) + (2 if padded or tl + tr > P else 0)
        mw = _C["FILE_MAX_WINDOW"]
        if P * ch + ph > mw or self.win_floats + P * ch + ph > mw:
            raise self.fail("kernel_size", "CONV_WINDOW_SIZE", P, ch, mw)
        return tl, tr, excl, ph

    def load_front(self, pos: int, size: int, kind: int) -> None:
        """loader.c load_front: a per-step record against the running width."""
        if self.precision == _C_Q4:
            raise self.fail("kind", "FRONT_Q8", kind, _KIND_TEXT[kind])
        if len(self.steps) >= _C["FILE_MAX_FRONT"]:
            raise self.fail("kind", "FRONT_COUNT", _C["FILE_MAX_FRONT"])
        name = _KIND_TEXT[kind]
        st = LAYOUT["rec_" + name]
        q8conv = name in ("frame_conv", "conv_time") and self.precision == _C_Q8   # the fconvq8 tail follows
        want = st.size + (LAYOUT["fconvq8"].size if q8conv else 0)
        tp = None   # conv_time / pool_time: the timepad tail's offset
        q16 = name == "frame_conv" and q8conv and size == want + LAYOUT["fconvq16"].size
        if name in ("conv_time", "pool_time") and size == want + LAYOUT["timepad"].size:
            tp = pos + want
        elif size != want and not q16:
            raise self.fail("size", "EXPECT", size, want)
        self.check_reserved(st, pos)
        if q8conv:
            self.check_reserved(LAYOUT["fconvq8"], pos + st.size)
        if q16:   # the 16 x 16 frame_conv's tail
            self.check_reserved(LAYOUT["fconvq16"], pos + want)
            bits = self.unpack(LAYOUT["fconvq16"], pos + want)["bits"]
            if bits != _C["FCONV_BITS16"]:
                raise self.fail("bits", "EXPECT", bits, _C["FCONV_BITS16"])
        r = self.unpack(st, pos)
        place = "front" if not self.layers else "post" if self.last_step is None else "post_pooled"
        # "after": the recurrent layer before the record ("post" records followed by another
        # recurrent layer are the "mid" records between the two)
        rec: dict[str, Any] = {"kind": name, "place": place, "in": self.feat, "after": len(self.layers) - 1}
        if name == "magnitude":
            if self.feat % 2:
                raise self.fail("kind", "MAG_ODD", self.feat)
            out = self.feat // 2
        elif name == "mul_halves":
            if self.feat % 2:
                raise self.fail("kind", "HALVES_ODD", self.feat)
            out = self.feat // 2
        elif name in ("layer_norm", "scale_shift", "instance_norm"):
            n = r["features"]
            if n != self.feat:
                raise self.fail("features", "EXPECT", n, self.feat)
            if name == "instance_norm" and self.embedding is not None:
                raise self.fail("kind", "EMB_SEQ_NORM", kind)
            if name != "scale_shift":
                if not (math.isfinite(_f32(r["eps"])) and _f32(r["eps"]) > 0):
                    raise self.fail("eps", "NORM_EPS", r["eps"])
                rec["eps"] = _f32(r["eps"])
                names = ("weight", "bias")
            else:
                names = ("scale", "shift")
            for nm in names:
                off = self.get_ref(nm, r[nm], n * 4)
                rec[nm] = self.check_floats(nm, off, n, False).copy()
            out = n
        elif name == "pointwise":
            n, act, al, be = r["features"], r["activation"], r["alpha"], r["beta"]
            if n != self.feat:
                raise self.fail("features", "EXPECT", n, self.feat)
            if act >= _C["FILE_PW_KINDS"]:
                raise self.fail("activation", "RANGE", act, 0, _C["FILE_PW_KINDS"] - 1)
            two = act in (_C["PW_HARDSIGMOID"], _C["PW_LOG_AFFINE"])   # alpha and beta
            if act == _C["PW_HARDTANH"]:   # min, max: not NaN (a bound may be infinite), min <= max
                if math.isnan(_f32(al)) or _f32(al) == math.inf:
                    raise self.fail("alpha", "PW_PARAM", al, "hardtanh's min_val: not NaN, below +inf")
                if not _f32(be) >= _f32(al):
                    raise self.fail("beta", "PW_PARAM", be, "hardtanh's max_val: not NaN, >= min_val (alpha)")
            elif act == _C["PW_SOFTPLUS"]:   # beta: finite, nonzero; threshold: not NaN
                if not math.isfinite(_f32(al)) or _f32(al) == 0:
                    raise self.fail("alpha", "PW_PARAM", al, "softplus' beta: finite and nonzero")
                if math.isnan(_f32(be)):
                    raise self.fail("beta", "PW_PARAM", be, "softplus' threshold: not NaN")
            elif two or act in (_C["PW_LEAKYRELU"], _C["PW_ELU"]):
                if not math.isfinite(_f32(al)):
                    raise self.fail("alpha", "OPT_PARAM", al)
                if two and not math.isfinite(_f32(be)):
                    raise self.fail("beta", "OPT_PARAM", be)
                if not two and be:
                    raise self.fail("beta", "OPT_UNUSED", be)
            else:
                if al:
                    raise self.fail("alpha", "OPT_UNUSED", al)
                if be:
                    raise self.fail("beta", "OPT_UNUSED", be)
            rec.update(activation=_POINTWISE_NAMES[act], alpha=_f32(al), beta=_f32(be))
            out = n
        elif name == "conv_time":
            ci, co, k, stv, dl, g = (r[f] for f in ("in_channels", "out_channels", "kernel_size", "stride",
                                                    "dilation", "groups"))
            if ci != self.feat:
                raise self.fail("in_channels", "EXPECT", ci, self.feat)
            if not 1 <= co <= _C["FILE_MAX_FEATURES"]:
                raise self.fail("out_channels", "RANGE", co, 1, _C["FILE_MAX_FEATURES"])
            self.time_fields(k, stv, dl)
            if g == 0 or ci % g or co % g:
                raise self.fail("groups", "CONV_GROUPS", g, ci, co)
            P, cg, cog = dl * (k - 1), ci // g, co // g
            tl, tr, _, ph = self.time_window(tp, P, ci, stv, causal=True, avg=False, counters=False)
            sref = self.unpack(LAYOUT["fconvq8"], pos + st.size)["scale"] if q8conv else (0, 0)
            mats, b = self.conv_weights(r, sref, g, cog, cg * k, co, rec, q8conv)
            self.win_floats += P * ci + ph
            self.step_phase.append(int(ph or tr > 0))   # steps without an output, or more
            rec.update(in_channels=ci, out_channels=co, kernel_size=k, stride=stv, dilation=dl, groups=g,
                       weight=np.concatenate(mats).reshape(co, cg, k), bias=b.copy(), pad_left=tl,
                       pad_right=tr)
            out = co
        elif name == "pool_time":
            ch, k, stv, dl, op = (r[f] for f in ("channels", "kernel_size", "stride", "dilation", "op"))
            if ch != self.feat:
                raise self.fail("channels", "EXPECT", ch, self.feat)
            self.time_fields(k, stv, dl)
            if op >= _C["FILE_POOL_OPS"]:
                raise self.fail("op", "RANGE", op, 0, _C["FILE_POOL_OPS"] - 1)
            P = dl * (k - 1)
            tl, tr, excl, ph = self.time_window(tp, P, ch, stv, causal=False, avg=op == _C["POOL_AVG"],
                                                counters=True)
            self.win_floats += P * ch + ph
            self.step_phase.append(int(P > tl or stv > 1 or tr > 0))   # steps without an output, or more
            rec.update(channels=ch, kernel_size=k, stride=stv, dilation=dl,
                       op={v: kk for kk, v in POOL_OPS.items()}[op], pad_left=tl, pad_right=tr,
                       count_include_pad=not excl)
            out = ch
        elif name == "log_mel":
            out = self.load_log_mel(r, rec)
        elif name == "residual":
            n, span = r["features"], r["span"]
            if n != self.feat:
                raise self.fail("features", "EXPECT", n, self.feat)
            # the records right before this one it may span: the per-step records of its section
            # and, across recurrent records, those before them (not past an embedding or last_step)
            run, kinds = 0, self.part_kind   # not back past a positions record
            while run < self.part and (kinds[self.part - 1 - run] >= RECORD_KINDS["frame_conv"]
                                       or kinds[self.part - 1 - run] == RECORD_KINDS["recurrent"]) and (
                    kinds[self.part - 1 - run] != RECORD_KINDS["positions"]):
                run += 1
            if not 1 <= span <= run:
                raise self.fail("span", "RES_SPAN", span, run)
            spanned = [kinds[j] for j in range(self.part - span, self.part)]
            layers = spanned.count(RECORD_KINDS["recurrent"])
            steps = span - layers
            if spanned[0] == RECORD_KINDS["recurrent"]:   # the source is a layer: its input
                src = self.layers[self.part_layer[self.part - span]]["input_size"]
            else:
                src = self.steps[len(self.steps) - steps]["in"]
            if src != n:
                raise self.fail("span", "RES_WIDTH", span, src, n)
            for j in range(len(self.steps) - steps, len(self.steps)):
                if self.step_phase[j]:
                    raise self.fail("span", "RES_STRIDED", span, self.steps[j]["kind"])
            rec["span"] = span
            out = n
        elif name == "concat":
            n, span = r["features"], r["span"]
            if n != self.feat:
                raise self.fail("features", "EXPECT", n, self.feat)
            run, kinds = 0, self.part_kind   # the per-step records of its section right before it
            while run < self.part and kinds[self.part - 1 - run] >= RECORD_KINDS["frame_conv"]:
                run += 1
            if not 1 <= span <= run:
                raise self.fail("span", "RES_SPAN", span, run)
            for j in range(len(self.steps) - span, len(self.steps)):
                if self.step_phase[j]:
                    raise self.fail("span", "RES_STRIDED", span, self.steps[j]["kind"])
            out = self.steps[len(self.steps) - span]["in"] + n
            if out > _C["FILE_MAX_FEATURES"]:
                raise self.fail("features", "RANGE", out, 1, _C["FILE_MAX_FEATURES"])
            rec["span"] = span
        else:  # frame_conv
            ci, co, k, L = r["in_channels"], r["out_channels"], r["kernel_size"], r["frame_length"]
            stv, dl, g, pl, pr, mode = (r[f] for f in ("stride", "dilation", "groups", "pad_left",
                                                       "pad_right", "padding_mode"))
            mf, mk = _C["FILE_MAX_FEATURES"], _C["FILE_MAX_KERNEL"]
            if not 1 <= ci <= mf:
                raise self.fail("in_channels", "RANGE", ci, 1, mf)
            if not 1 <= co <= mf:
                raise self.fail("out_channels", "RANGE", co, 1, mf)
            if not 1 <= k <= mk:
                raise self.fail("kernel_size", "RANGE", k, 1, mk)
            if not 1 <= L <= mf:
                raise self.fail("frame_length", "RANGE", L, 1, mf)
            if ci * L != self.feat:
                raise self.fail("frame_length", "EXPECT", ci * L, self.feat)
            if not 1 <= stv <= mk:
                raise self.fail("stride", "RANGE", stv, 1, mk)
            if not 1 <= dl <= mk:
                raise self.fail("dilation", "RANGE", dl, 1, mk)
            if g == 0 or ci % g or co % g:
                raise self.fail("groups", "CONV_GROUPS", g, ci, co)
            if pl > mk:
                raise self.fail("pad_left", "RANGE", pl, 0, mk)
            if pr > mk:
                raise self.fail("pad_right", "RANGE", pr, 0, mk)
            if mode >= _C["FILE_PAD_MODES"]:
                raise self.fail("padding_mode", "RANGE", mode, 0, _C["FILE_PAD_MODES"] - 1)
            if mode == _C["PAD_REFLECT"] and (pl >= L or pr >= L):
                raise self.fail("pad_left", "CONV_REFLECT", pl, pr, L)
            span, padded = dl * (k - 1) + 1, L + pl + pr
            if padded < span:
                raise self.fail("kernel_size", "CONV_WINDOW", L, pl, pr, span)
            lout, cg, cog = (padded - span) // stv + 1, ci // g, co // g
            if co * lout > mf:
                raise self.fail("out_channels", "OUTPUT_WIDTH", co * lout, mf)
            sref = self.unpack(LAYOUT["fconvq8"], pos + st.size)["scale"] if q8conv else (0, 0)
            if q16:
                mats, b = self.conv_weights16(r, sref, g, cog, cg * k, co, rec)
            else:
                mats, b = self.conv_weights(r, sref, g, cog, cg * k, co, rec, q8conv)
            rec.update(in_channels=ci, out_channels=co, kernel_size=k, frame_length=L, stride=stv,
                       dilation=dl, groups=g, pad_left=pl, pad_right=pr,
                       padding_mode="reflect" if mode else "zeros",
                       weight=np.concatenate(mats).reshape(co, cg, k), bias=b.copy())
            out = co * lout
        rec["out"] = out
        if name == "instance_norm" or any(x["kind"] == "instance_norm" for x in self.steps):
            self.check_seq_norm(name, rec)
        if len(self.step_phase) == len(self.steps):   # a record without a countdown
            self.step_phase.append(0)
        self.steps.append(rec)
        self.feat = out

    def check_seq_norm(self, name: str, rec: dict) -> None:
        """loader.c check_seq_norm: in a model with instance_norm no residual or concat spans one,
        and no record over time pads on the right or beyond its window on the left."""
        steps = self.steps + [rec]
        last = max(j for j, x in enumerate(steps) if x["kind"] == "instance_norm")
        if name in ("residual", "concat"):
            span = rec["span"]
            spanned = [self.part_kind[j] for j in range(self.part - span, self.part)]
            if spanned[0] != RECORD_KINDS["recurrent"]:   # the source is a per-step record
                src = len(self.steps) - (span - spanned.count(RECORD_KINDS["recurrent"]))
                if src <= last:
                    raise self.fail("span", "SEQ_NORM_SPAN", len(self.steps) - src)
        for j, x in enumerate(steps):
            if x["kind"] in ("conv_time", "pool_time"):
                P = x["dilation"] * (x["kernel_size"] - 1)
                if x["pad_right"] or x["pad_left"] > P:
                    raise self.fail("kind", "SEQ_NORM_PAD", j, x["kind"], x["pad_left"], x["pad_right"])

    def conv_weights16(self, r: dict, sref, g: int, cog: int, kk: int, co: int, rec: dict):
        """A 16 x 16 frame_conv's int16 weight, scales and bias (loader.c's order and checks);
        ``rec`` gets ``qweight`` (int16), ``scale`` and ``bits = 16``."""
        rows, kp = g * _r16(cog), _r16(kk)
        if kp > _C["FILE_Q8_MAX_K"]:
            raise self.fail("weight", "Q8_K", kp, _C["FILE_Q8_MAX_K"])
        woff = self.get_ref("weight", r["weight"], rows * kp * 2)
        soff = self.get_ref("scale", sref, rows * 4)
        sc = self.check_floats("scale", soff, rows, True)
        wq = np.frombuffer(self.b, np.dtype("<i2"), rows * kp, woff).astype(np.int16)
        bad = (wq == -32768) | ((wq != 0) & (np.arange(rows * kp) % kp >= kk))
        if bad.any():
            j = int(np.argmax(bad))
            if wq[j] == -32768:
                raise self.fail("weight", "Q16_MIN", j)
            raise self.fail("weight", "Q16_PAD", j // kp, j % kp, kk)
        boff = self.get_ref("bias", r["bias"], co * 4)
        b = self.check_floats("bias", boff, co, False)
        full = wq.reshape(g, _r16(cog), kp)[:, :cog, :kk]
        scg = np.asarray(sc, np.float32).reshape(g, _r16(cog))[:, :cog].reshape(co).copy()
        rec.update(qweight=full.reshape(co, -1).copy(), scale=scg, bits=16)
        mats = [(full[i].astype(np.float32) * scg[i * cog:(i + 1) * cog, None]).astype(np.float32)
                for i in range(g)]
        return mats, b

    def conv_weights(self, r: dict, sref, g: int, cog: int, kk: int, co: int, rec: dict, q8conv: bool):
        """A frame_conv's or conv_time's weight and bias (loader.c's order): int8 with per-row scales
        when the fconvq8 tail names them (``rec`` gets ``qweight``, ``scale``), else float32 (in a q8
        file ``rec["precision"] = "f32"``); returns the float32 matrices per group and the bias."""
        if sref != (0, 0):   # int8 weights with per-row scales (loader.c: get_matrix)
            rows = g * _r16(cog)
            wq, sc = self.get_matrix("weight", r["weight"], "scale", sref, rows, kk, _C_Q8)
            boff = self.get_ref("bias", r["bias"], co * 4)
            b = self.check_floats("bias", boff, co, False)
            full = unpack_q8(wq, rows, _r4(kk))[:, :kk].reshape(g, _r16(cog), kk)[:, :cog]
            scg = sc.reshape(g, _r16(cog))[:, :cog].reshape(co).copy()
            rec.update(qweight=full.reshape(co, -1).copy(), scale=scg)
            with np.errstate(over="ignore"):
                mats = [(full[i].astype(np.float32) * scg[i * cog:(i + 1) * cog, None]).astype(np.float32)
                        for i in range(g)]
            return mats, b
        n = g * _r16(cog) * kk
        off = self.get_ref("weight", r["weight"], n * 4)
        w = self.check_floats("weight", off, n, False)
        boff = self.get_ref("bias", r["bias"], co * 4)
        b = self.check_floats("bias", boff, co, False)
        per = _r16(cog) * kk
        mats = [unpack_f32(w[i * per:(i + 1) * per], _r16(cog), kk)[:cog] for i in range(g)]
        if q8conv:
            rec["precision"] = "f32"
        return mats, b

    def load_log_mel(self, r: dict, rec: dict) -> int:
        """loader.c load_log_mel (after the size and reserved bytes); returns n_mels."""
        nfft, hop, nmel, pw, lg = (r[f] for f in ("n_fft", "hop_length", "n_mels", "power", "log"))
        mk, mf = _C["FILE_MAX_KERNEL"], _C["FILE_MAX_FEATURES"]
        if not 2 <= nfft <= mk:
            raise self.fail("n_fft", "RANGE", nfft, 2, mk)
        if nfft != self.feat:
            raise self.fail("n_fft", "EXPECT", nfft, self.feat)
        if not 1 <= hop <= mk:
            raise self.fail("hop_length", "RANGE", hop, 1, mk)
        if not 1 <= nmel <= mf:
            raise self.fail("n_mels", "RANGE", nmel, 1, mf)
        if not 1 <= pw <= 2:
            raise self.fail("power", "RANGE", pw, 1, 2)
        if lg >= _C["FILE_MEL_LOGS"]:
            raise self.fail("log", "RANGE", lg, 0, _C["FILE_MEL_LOGS"] - 1)
        for name, used in (("log_offset", _C["MEL_LOG"]), ("amin", _C["MEL_LOG_DB"])):
            v = _f32(r[name])
            if lg == used and not (math.isfinite(v) and v > 0):
                raise self.fail(name, "NORM_EPS", r[name])
            if lg != used and r[name]:
                raise self.fail(name, "MEL_UNUSED", r[name], lg)
        nf = nfft // 2 + 1
        rp = _r16(nf)
        win = self.check_floats("window", self.get_ref("window", r["window"], nfft * 4), nfft, False)
        off = self.get_ref("dft", r["dft"], 2 * rp * nf * 4)
        dft = self.check_floats("dft", off, 2 * rp * nf, False)
        half = [unpack_f32(dft[i * rp * nf:(i + 1) * rp * nf], rp, nf)[:nf] for i in range(2)]
        mirror = nfft - np.arange(nf, nfft)   # column j >= nf is column n_fft - j (< nf), the sines negated
        off = self.get_ref("fb_span", r["fb_span"], nmel * 8)
        span = np.frombuffer(self.b, "<u4", 2 * nmel, off).astype(np.int64).reshape(nmel, 2)
        for i, (first, count) in enumerate(span):
            if first + count > nf:
                raise self.fail("fb_span", "MEL_SPAN", i, first, first + count, nf)
        total = int(span[:, 1].sum())
        off = self.get_ref("fb_weight", r["fb_weight"], total * 4)
        w = self.check_floats("fb_weight", off, total, True) if total else np.zeros(0, np.float32)
        fb = np.zeros((nf, nmel), np.float32)
        o = 0
        for i, (first, count) in enumerate(span):
            fb[first:first + count, i] = w[o:o + count]
            o += count
        logs = {v: k for k, v in _MEL_LOGS.items()}
        rec.update(n_fft=nfft, hop_length=hop, n_mels=nmel, power=float(pw), log=logs[lg],
                   log_offset=_f32(r["log_offset"]), amin=_f32(r["amin"]),
                   window=win, cos=np.concatenate([half[0], half[0][:, mirror]], 1),
                   sin=np.concatenate([half[1], -half[1][:, mirror]], 1), fb=fb)
        return nmel

    def load_record(self, pos: int, size: int) -> None:
        kind = self.u32(pos)
        if self.precision == _C_INT and kind != RECORD_KINDS["last_step"]:   # recurrent or linear
            from rnncore.io import rnc_int
            return (rnc_int.load_int_layer if kind == RECORD_KINDS["recurrent"] else rnc_int.load_int_head)(
                self, pos, size)
        if kind in (RECORD_KINDS[k] for k in _STEP_KINDS):
            self.load_front(pos, size, kind)
        elif kind == RECORD_KINDS["embedding"]:
            st = LAYOUT["rec_embedding"]
            if size != st.size:
                raise self.fail("size", "EXPECT", size, st.size)
            self.check_reserved(st, pos)
            r = self.unpack(st, pos)
            self.load_embedding(("num", "dim", "weight"), r["num"], r["dim"], r["weight"])
            self.input_size = self.feat = r["dim"]
        elif kind == RECORD_KINDS["recurrent"]:
            st, cw, d0 = LAYOUT["rec_recurrent"], LAYOUT["cellw"], _C["REC_RECURRENT_DIR0"]
            if size < st.size:
                raise self.fail("size", "EXPECT", size, d0 + cw.size)
            self.check_reserved(st, pos)
            r = self.unpack(st, pos)
            ndir = 2 if r["flags"] & _C["LAYER_FLAG_BIDIR"] else 1
            opt = LAYOUT["cellopt"].size if r["flags"] & _C["LAYER_FLAG_OPTIONS"] else 0
            opt_at = d0 + cw.size * ndir
            # a cellln follows the cellopt when its flags ask for one (read when the record holds it)
            ln = LAYOUT["cellln"].size if opt and size >= opt_at + opt and self.u32(pos + opt_at) & _C[
                "CELLOPT_LAYER_NORM"] else 0
            if size != opt_at + opt + ln:
                raise self.fail("size", "EXPECT", size, opt_at + opt + ln)
            self.load_layer("cell", r, [pos + d0, pos + d0 + cw.size if ndir == 2 else None], r["w_hh_sums"],
                            pos + d0 + cw.size * ndir if opt else None)
        elif kind == RECORD_KINDS["positions"]:   # the front-end's row as P steps (no per-step record)
            st = LAYOUT["rec_positions"]
            if size != st.size:
                raise self.fail("size", "EXPECT", size, st.size)
            self.check_reserved(st, pos)
            r = self.unpack(st, pos)
            n, P = r["features"], r["positions"]
            if n != self.feat:
                raise self.fail("features", "EXPECT", n, self.feat)
            if P < 2 or n % P:
                raise self.fail("positions", "POSITIONS", P, n)
            if any(x["kind"] == "instance_norm" for x in self.steps):
                raise self.fail("kind", "POS_SEQ_NORM", P)
            self.positions = P
            self.feat = n // P
        elif kind == RECORD_KINDS["last_step"]:
            if self.positions:   # the output is each step's mean over its positions: nothing to pool
                raise self.fail("kind", "POS_POOL", self.positions)
            st, tail = LAYOUT["rec_last_step"], LAYOUT["attnpool"]
            if size < st.size:
                raise self.fail("size", "EXPECT", size, st.size)
            flags = self.unpack(st, pos)["flags"]
            attn = bool(flags & _C["LAST_STEP_FLAG_ATTN"])
            want = st.size + (tail.size if attn else 0)
            if size != want:
                raise self.fail("size", "EXPECT", size, want)
            self.check_reserved(st, pos)
            mean_f, max_f, last_f = (_C["LAST_STEP_FLAG_MEAN"], _C["LAST_STEP_FLAG_MAX"],
                                     _C["LAST_STEP_FLAG_LAST"])
            known = _C["LAST_STEP_FLAG_BIDIR"] | mean_f | _C["LAST_STEP_FLAG_ATTN"] | max_f | last_f
            if flags & ~known:
                raise self.fail("flags", "FLAGS", flags, known)
            if flags & last_f and (attn or not flags & (mean_f | max_f)):   # the C loader's order
                raise self.fail("flags", "LAST_FLAGS", flags)
            bidir_alone = bool(flags & _C["LAST_STEP_FLAG_BIDIR"]) and not flags & last_f
            if flags & mean_f and not attn:
                if bidir_alone:
                    raise self.fail("flags", "MEAN_BIDIR", flags)
                if self.precision == _C_INT:
                    raise self.fail("flags", "MEAN_INT", flags)
                self.last_step_mean = True
            if flags & max_f:
                if attn or bidir_alone:
                    raise self.fail("flags", "MAX_FLAGS", flags)
                if self.precision == _C_INT:
                    raise self.fail("flags", "MAX_INT", flags)
                self.last_step_max = True
            if self.last_step_mean or self.last_step_max:   # the parts [last | mean | max] side by side
                self.last_step_last = bool(flags & last_f)
                self.feat *= self.last_step_last + self.last_step_mean + self.last_step_max
            if attn:
                self.load_attention(flags, pos + st.size)
            self.load_last_step("flags", flags, bool(flags & _C["LAST_STEP_FLAG_BIDIR"]))
        else:  # linear (the sequence admits nothing else)
            st = LAYOUT["rec_linear"]
            if size != st.size:
                raise self.fail("size", "EXPECT", size, st.size)
            self.check_reserved(st, pos)
            r = self.unpack(st, pos)
            names = ("in_features", "out_features", "activation", "in_scale", "weight", "scale", "bias")
            self.load_head(names, (r["in_features"], r["out_features"], r["activation"], r["in_scale"]),
                           (r["weight"], r["scale"], r["bias"]))

    def load_v2(self) -> None:
        hs, rec = LAYOUT["hdr2"], LAYOUT["rec"]
        self.begin(hs.size)
        h = self.unpack(hs)
        prec, in_size, nrec, rsize = h["precision"], h["input_size"], h["num_records"], h["records_size"]
        if h["header_size"] != _C["V2_HEADER_SIZE"]:
            raise self.fail("header_size", "EXPECT", h["header_size"], _C["V2_HEADER_SIZE"])
        if prec >= _C["FILE_PRECISIONS"] and prec != _C_INT:
            raise self.fail("precision", "RANGE", prec, 0, _C_INT)
        if h["flags"] != 0:
            raise self.fail("flags", "FLAGS", h["flags"], 0)
        self.check_reserved(hs, 0)
        if nrec == 0:
            raise self.fail("num_records", "RANGE", nrec, 1, 0xFFFFFFFF)
        if in_size > _C["FILE_MAX_FEATURES"]:
            raise self.fail("input_size", "RANGE", in_size, 0, _C["FILE_MAX_FEATURES"])
        if rsize > self.size - hs.size:
            raise self.fail("records_size", "RECORDS_SIZE", rsize, self.size - hs.size)
        rec_end = hs.size + rsize
        self.data_start = _round_up(rec_end, ALIGN)
        if self.data_start > self.size:
            raise self.fail("records_size", "TENSOR_AREA", self.data_start, self.size)
        # 1. structure
        pos, recs = hs.size, []
        for i in range(nrec):
            self.part = i
            if rec_end - pos < rec.size:
                raise self.fail("size", "REC_SHORT", pos, rec_end - pos)
            size = self.u32(pos + 4)
            if size < rec.size or size % 8 or size > rec_end - pos:
                raise self.fail("size", "REC_SIZE", size, rec_end - pos)
            recs.append((pos, size))
            pos += size
        self.part = _HEADER
        if pos != rec_end:
            raise self.fail("records_size", "REC_END", rsize, nrec, pos)
        # 2. sequence: [embedding] recurrent+ [last_step] [linear]
        stage = 0
        for i, (pos, _) in enumerate(recs):
            kind = self.u32(pos)
            if prec == _C_INT and kind not in (RECORD_KINDS["recurrent"], RECORD_KINDS["last_step"],
                                               RECORD_KINDS["linear"]):   # recurrent+ [last_step] [linear]
                self.part = i
                raise self.fail("kind", "INT_KIND", kind, _KIND_TEXT.get(kind, "unknown"))
            nxt = _next_stage(stage, kind)
            if nxt < 0:
                self.part = i
                raise self.fail("kind", "SEQUENCE", kind, _KIND_TEXT.get(kind, "unknown"),
                                _STAGE_PLACE[stage])
            stage = nxt
        if stage < 2 or stage == 5:
            raise self.fail("num_records", "NO_RECURRENT", nrec)
        # 3. contents
        has_embedding = self.u32(hs.size) == RECORD_KINDS["embedding"]
        if has_embedding and in_size != 0:
            raise self.fail("input_size", "INPUT_IDS", in_size)
        if not has_embedding and in_size == 0:
            raise self.fail("input_size", "INPUT_FEATURES", _C["FILE_MAX_FEATURES"])
        self.precision, self.input_size = prec, in_size
        self.feat = in_size
        for i, (pos, size) in enumerate(recs):
            self.part = i
            self.part_kind[i] = self.u32(pos)
            self.part_layer[i] = len(self.layers)
            self.load_record(pos, size)
        self.finish()

    def load(self) -> None:
        b = self.b
        if len(b) < 4:
            raise self.fail("magic", "SHORT", len(b), 4)
        if self.u32(0) != _C["MAGIC"]:
            raise self.fail("magic", "MAGIC", self.u32(0))
        if len(b) < 8:
            raise self.fail("version", "SHORT", len(b), 8)
        self.version = self.u32(4)
        if self.version == _C["V1"]:
            self.load_v1()
        elif self.version == _C["V2"]:
            self.load_v2()
        else:
            raise self.fail("version", "VERSION", self.version)


def _next_stage(stage: int, kind: int) -> int:
    """loader.c next_stage: where a record kind may stand in
    [embedding] [front-end*] recurrent (post* recurrent)* post* [last_step post*] [linear] (after an
    embedding as first: not log_mel)."""
    k = RECORD_KINDS
    if stage == 1 and kind not in (k["embedding"], k["log_mel"]):   # the front-end on the looked-up rows
        stage = 0
    if kind == k["embedding"]:
        return 1 if stage == 0 else -1
    if kind == k["recurrent"]:
        return 2 if stage <= 2 or stage in (5, 6, 8) else -1
    if kind == k["last_step"]:
        return 3 if stage in (2, 6) else -1
    if kind == k["linear"]:
        return 4 if stage in (2, 3, 6, 7) else -1
    if kind in (k["magnitude"], k["conv_time"], k["pool_time"]):
        return 5 if stage in (0, 5) else -1
    if kind == k["log_mel"]:
        return 5 if stage == 0 else -1
    if kind in (k["frame_conv"], k["pointwise"], k["layer_norm"], k["scale_shift"], k["mul_halves"]):
        return 5 if stage in (0, 5) else 6 if stage in (2, 6) else 7 if stage in (3, 7) else -1
    if kind == k["residual"]:   # after a per-step record of its section (its source), or right
        return 6 if stage == 2 else stage if stage in (5, 6, 7) else -1   # after a recurrent record
    if kind == k["concat"]:   # after a front-end record (its source)
        return 5 if stage == 5 else -1
    if kind == k["instance_norm"]:   # the front-end only
        return 5 if stage in (0, 5) else -1
    if kind == k["positions"]:   # the front-end's last record: a recurrent record follows
        return 8 if stage == 5 else -1
    return -1


_C_F32, _C_Q8, _C_Q4 = PRECISIONS["f32"], PRECISIONS["q8"], PRECISIONS["q4"]
_C_INT = _C["FILE_PRECISION_INT"]   # fully-integer models (rnncore.io.rnc_int)


def check_rnc(data: bytes) -> None:
    """Check ``.rnc`` bytes exactly as the C loader does (``rnc_model_init``), without the engine.

    Raises
    ------
    RncFormatError
        (a ``ValueError``) with the C loader's status and its one line, ``"<part>: <field>:
        <problem>"`` (docs/rnc-format.md, "What the loader checks").
    """
    _Loader(bytes(data), host=True).load()


def read_rnc(data: bytes) -> dict:
    """Parse ``.rnc`` bytes (version 1 or 2) into a description (the shape of :func:`write_rnc`'s
    ``spec``); both versions of one model give the same description.

    Weights are unpacked into PyTorch shapes; for ``"q8"`` files ``weights`` hold the
    dequantised float32 values ``wq * s`` and each layer also has ``qweights`` (int8, PyTorch
    shapes) and ``scales`` (float32 per row); the head likewise ``qweight`` / ``scale``.
    A fully-integer file (precision 3) gives ``precision`` ``"int8"``, the layers' kinds and sizes
    and ``int_model``, the :class:`~rnncore.quant.integer.IntModel` it holds
    (:mod:`rnncore.io.rnc_int`).

    Raises
    ------
    RncFormatError
        (a ``ValueError``) when the bytes are not a file the C loader accepts: the checks are the
        C loader's, in its order, and the message is its one line naming the part, the field, the
        value found and the one expected (``docs/rnc-format.md``).
    """
    ld = _Loader(bytes(data))
    ld.load()
    if ld.precision == _C_INT:
        from rnncore.io import rnc_int
        return rnc_int.describe(ld)
    return _describe(ld)


def _step_description(r: dict) -> dict:
    """A per-step record as ``write_rnc`` takes it (the ``rc.nn`` layers' ``record()`` form)."""
    if r["kind"] in ("magnitude", "mul_halves"):
        return {"kind": r["kind"]}
    if r["kind"] == "log_mel":
        d = {f: r[f] for f in ("n_fft", "hop_length", "n_mels", "power", "log", "log_offset", "amin")}
        d.update(kind="log_mel", center=False,
                 tensors={"window": r["window"], "cos": r["cos"], "sin": r["sin"], "fb": r["fb"]})
        return d
    if r["kind"] in ("layer_norm", "instance_norm"):
        return {"kind": r["kind"], "features": r["in"], "eps": r["eps"],
                "tensors": {"weight": r["weight"], "bias": r["bias"]}}
    if r["kind"] == "scale_shift":
        return {"kind": "scale_shift", "features": r["in"],
                "tensors": {"scale": r["scale"], "shift": r["shift"]}}
    if r["kind"] == "pointwise":
        a = r["activation"]
        if a == "gelu_tanh":
            return {"kind": "gelu", "approximate": "tanh"}
        if a == "gelu":
            return {"kind": "gelu", "approximate": "none"}
        if a == "hardsigmoid":   # rc.nn.HardSigmoid's record() kind
            return {"kind": "hard_sigmoid", "alpha": r["alpha"], "beta": r["beta"]}
        if a == "leakyrelu":     # rc.nn.LeakyReLU's record() kind
            return {"kind": "leaky_relu", "alpha": r["alpha"]}
        if a == "elu":
            return {"kind": "elu", "alpha": r["alpha"]}
        if a in ("hardtanh", "softplus"):   # hardtanh: min_val, max_val; softplus: beta, threshold
            return {"kind": a, "alpha": r["alpha"], "beta": r["beta"]}
        if a == "log_affine":    # rc.nn.LogAffine's record()
            return {"kind": "log_affine", "scale": r["alpha"], "offset": r["beta"]}
        return {"kind": a}
    if r["kind"] == "residual":   # y = x + the input of the record `span` records before
        return {"kind": "residual", "features": r["in"], "span": r["span"]}
    if r["kind"] == "concat":     # [the input of the record `span` records before ; x]
        return {"kind": "concat", "features": r["in"], "span": r["span"]}
    if r["kind"] == "pool_time":   # rc.nn.MaxPool1d / AvgPool1d's record() (ceil_mode as right padding)
        d = {f: r[f] for f in ("channels", "kernel_size", "stride", "dilation", "pad_left", "pad_right")}
        d.update(kind=r["op"], ceil_mode=False)
        if r["op"] == "avg_pool1d":
            d["count_include_pad"] = r["count_include_pad"]
        return d
    if r["kind"] == "conv_time":   # rc.nn.Conv1d's record()
        d = {f: r[f] for f in ("in_channels", "out_channels", "kernel_size", "stride", "dilation", "groups")}
        d.update(kind="conv1d", pad_left=r["pad_left"], pad_right=r["pad_right"],
                 padding_mode="zeros", tensors={"weight": r["weight"], "bias": r["bias"]})
        if r.get("qweight") is not None:   # q8: the stored integers and scales
            d["tensors"].update(qweight=r["qweight"].reshape(r["weight"].shape), scale=r["scale"])
        if r.get("precision") == "f32":
            d["precision"] = "f32"
        return d
    d = {f: r[f] for f in ("in_channels", "out_channels", "kernel_size", "frame_length", "stride", "dilation",
                           "groups", "pad_left", "pad_right", "padding_mode")}
    d["kind"] = "frame_conv1d"
    d["tensors"] = {"weight": r["weight"], "bias": r["bias"]}
    if r.get("qweight") is not None:   # q8: the stored integers and scales (written back as they are)
        d["tensors"].update(qweight=r["qweight"].reshape(r["weight"].shape), scale=r["scale"])
    if r.get("bits") == 16:   # a q8 file's 16 x 16 frame_conv
        d["bits"] = 16
    if r.get("precision") == "f32":   # a q8 file's frame_conv kept in float32
        d["precision"] = "f32"
    return d


def _describe(ld: _Loader) -> dict:
    """The description of a loaded file (version-independent)."""
    precision = {v: k for k, v in PRECISIONS.items()}[ld.precision]
    out: dict[str, Any] = {"precision": precision, "input_size": ld.input_size, "embedding": None,
                           "last_step": ld.last_step is not None,
                           "last_step_bidirectional": bool(ld.last_step),
                           "last_step_mean": ld.last_step_mean,
                           "last_step_max": ld.last_step_max,
                           "last_step_last": ld.last_step_last,
                           "last_step_attention": ld.last_step_attention,
                           "positions": ld.positions or 1}
    if ld.embedding is not None:
        num, dim, w = ld.embedding
        out["embedding"] = {"weight": w.reshape(num, dim)}

    def matrix(w, s, g, h, k):
        hp = _round_up(h, ROW_BLOCK)
        if s is None:
            return _unpad_gates(unpack_f32(w, g * hp, k), g, h, hp), None, None
        kp = _round_up(k, K_GROUP)
        wq = unpack_q8(w, g * hp, kp)[:, :k]
        wq, s = _unpad_gates(wq, g, h, hp), _unpad_gates(s, g, h, hp)
        with np.errstate(over="ignore"):  # a (valid) huge scale may dequantise to inf
            return (wq.astype(np.float32) * s[:, None]).astype(np.float32), wq, s

    layers = []
    feat = out["input_size"]
    for lp in ld.layers:
        kind, nonlin = _KIND_NAMES[lp["cell"]]
        bidir = bool(lp["flags"] & _C["LAYER_FLAG_BIDIR"])
        i, h = lp["input_size"], lp["hidden_size"]
        g, hp = GATES[kind], _round_up(h, ROW_BLOCK)
        hs = [v or None for v in lp["h_scale"]]
        layer: dict[str, Any] = {"kind": kind, "input_size": i, "hidden_size": h, "bidirectional": bidir,
                                 "x_scale": lp["x_scale"] or None, "h_scale": hs if bidir else hs[:1],
                                 "weights": {}}
        if kind == "rnn":
            layer["nonlinearity"] = nonlin
        if kind == "gru":
            layer["reset_after"] = bool(lp["flags"] & _C["LAYER_FLAG_RESET_AFTER"])
        if lp.get("options") is not None:
            o = dict(lp["options"])
            D = 2 if bidir else 1
            if o["peepholes"] is not None:
                o["peepholes"] = o["peepholes"].reshape(D, 3, h).copy()
            hw = lp["out"]
            if o["initial_h"] is not None:
                o["initial_h"] = o["initial_h"].reshape(D, hw).copy()
            if o["initial_c"] is not None:
                o["initial_c"] = o["initial_c"].reshape(D, h).copy()
            if o["proj"] is not None:   # D matrices of round16(P) packed rows, H inputs
                w, s = o["proj"]
                rp = _round_up(hw, ROW_BLOCK)
                per = len(w) // D
                mats = [matrix(w[d * per:(d + 1) * per], None if s is None else s[d * rp:(d + 1) * rp],
                               1, hw, h) for d in range(D)]
                o["proj"] = np.stack([m[0] for m in mats])
                if mats[0][1] is not None:
                    o["proj_q"] = np.stack([m[1] for m in mats])
                    o["proj_scale"] = np.stack([m[2] for m in mats])
            if o.get("layer_norm") is not None:
                ln = dict(o["layer_norm"])
                for key in ("ih", "hh", "c"):
                    if ln[key] is not None:
                        ln[key] = ln[key].reshape(D, 2, -1).copy()
                o["layer_norm"] = ln
            layer["options"] = o
        if precision != "f32":
            layer["qweights"], layer["scales"] = {}, {}
        for d, t in enumerate(lp["dirs"]):
            suf = "_reverse" if d else ""
            for name, w, s, k in (("weight_ih", t["w_ih"], t["s_ih"], i),
                                  ("weight_hh", t["w_hh"], t["s_hh"], lp["out"])):
                wf, wq, sc = matrix(w, s, g, h, k)
                layer["weights"][name + suf] = wf
                if wq is not None:
                    layer["qweights"][name + suf] = wq
                    layer["scales"][name + suf] = sc
            for name, key in (("bias_ih", "b_ih"), ("bias_hh", "b_hh")):
                layer["weights"][name + suf] = _unpad_gates(t[key], g, h, hp)
        layers.append(layer)
        feat = lp["out"] * (2 if bidir else 1)
    out["layers"] = layers
    out["output_size"] = feat
    for place in ("front", "post", "post_pooled"):
        out[place] = [_step_description(r) for r in ld.steps if r["place"] == place
                      and (place != "post" or r["after"] == len(layers) - 1)]
    out["mid"] = [[_step_description(r) for r in ld.steps if r["place"] == "post" and r["after"] == li]
                  for li in range(len(layers) - 1)]
    out["head"] = None
    hd = ld.head
    if hd is not None:
        wf, wq, s = matrix(hd["w"], hd["s"], 1, hd["out"], hd["in"])
        head = {"weight": wf, "bias": hd["b"][:hd["out"]].copy(),
                "activation": {v: k for k, v in ACTIVATIONS.items()}[hd["activation"]],
                "in_scale": hd["in_scale"] or None}
        if wq is not None:
            head["qweight"], head["scale"] = wq, s
        out["head"] = head
        out["output_size"] = hd["out"]
    return out
