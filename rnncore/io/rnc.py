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
             "x_scale": None, "h_scale": None},  # optional static q8 activation scales
        ],                                  # (h_scale: one float, or [fwd, bwd])
        "last_step": False,                 # pool y[b, lengths[b]-1] before the head
        "last_step_bidirectional": False,   # ... with the backward half taken at t = 0
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
``read_rnc(data)`` parses and checks a file of either version and returns the same kind of
description (identical for both versions of one model), unpacked (for q8 also the stored integers
and scales, which the quantised reference uses).
"""

from __future__ import annotations

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
                "last_step": _C["REC_LAST_STEP"], "linear": _C["REC_LINEAR"]}

PRECISIONS = {"f32": 0, "q8": 1}
KINDS = {("rnn", "tanh"): 0, ("rnn", "relu"): 1, ("gru", None): 2, ("lstm", None): 3}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4}
_KIND_NAMES = {0: ("rnn", "tanh"), 1: ("rnn", "relu"), 2: ("gru", None), 3: ("lstm", None)}
_PARAMS = ("weight_ih", "weight_hh", "s_ih", "s_hh", "bias_ih", "bias_hh")

MAX_LAYERS = 16
MAX_HIDDEN = 65536
MAX_FEATURES = 1048576
MAX_VOCAB = 16777216


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
    wq, s = quantize_rows(wp)
    kp = _round_up(k, K_GROUP)
    full = np.zeros((g * hp, kp), np.int8)
    full[:, :k] = wq
    return pack_q8(full), s


def _scale_field(v: Any, precision: str, name: str) -> float:
    if v is None or v == 0:
        return 0.0
    v = float(np.float32(v))
    if precision != "q8":
        raise ValueError(f"{name}: static scales exist only for precision 'q8'")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number")
    return v


def _plan(spec: dict) -> dict[str, Any]:
    """Validate ``spec`` and prepare every tensor in its stored form (padded, quantised, packed).

    Returns a version-independent plan: ``precision``, ``input_size``, ``embedding`` (array or
    None), ``layers`` (``cell``, ``flags``, ``input_size``, ``hidden_size``, ``x_scale``,
    ``h_scale`` [2], ``dirs``: per direction the six arrays ``w_ih, w_hh, s_ih, s_hh, b_ih, b_hh``),
    ``last_step`` (None or the bidirectional flag) and ``head`` (None or ``in``, ``out``,
    ``activation``, ``in_scale``, ``tensors`` = weight, scale, bias).
    """
    precision = spec.get("precision", "f32")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'f32' or 'q8', not {precision!r}")
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

    planned = []
    feat = input_size
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
            if w_ih.shape != (g * h, i) or w_hh.shape != (g * h, h):
                raise ValueError(
                    f"layer {li}: weight_ih{suf} {w_ih.shape} / weight_hh{suf} {w_hh.shape} do not "
                    f"match kind={kind}, input_size={i}, hidden_size={h}"
                )
            if b_ih.shape != (g * h,) or b_hh.shape != (g * h,):
                raise ValueError(f"layer {li}: biases must have shape ({g * h},), got "
                                 f"{b_ih.shape} / {b_hh.shape}")
            p_ih, s_ih = _matrix(w_ih, precision, g, h, hp, i)
            p_hh, s_hh = _matrix(w_hh, precision, g, h, hp, h)
            dirs.append([p_ih, p_hh, s_ih, s_hh, _pad_gates(b_ih, g, h, hp), _pad_gates(b_hh, g, h, hp)])
        hsc = layer.get("h_scale")
        hsc = list(hsc) if isinstance(hsc, (list, tuple)) else [hsc, hsc if bidir else None]
        if len(hsc) == 1:
            hsc.append(None)
        if not bidir:
            hsc[1] = None
        planned.append({
            "cell": KINDS[(kind, nonlin)],
            "flags": (_C["LAYER_FLAG_RESET_AFTER"] if reset_after else 0)
            | (_C["LAYER_FLAG_BIDIR"] if bidir else 0),
            "input_size": i,
            "hidden_size": h,
            "x_scale": _scale_field(layer.get("x_scale"), precision, f"layer {li} x_scale"),
            "h_scale": [_scale_field(hsc[0], precision, f"layer {li} h_scale"),
                        _scale_field(hsc[1], precision, f"layer {li} h_scale (reverse)")],
            "dirs": dirs,
        })
        feat = h * (2 if bidir else 1)

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
        p_w, s_w = _matrix(hw, precision, 1, head_out, op, head_in)
        head_plan = {"in": head_in, "out": head_out, "activation": ACTIVATIONS[act],
                     "in_scale": _scale_field(head.get("in_scale"), precision, "head in_scale"),
                     "tensors": [p_w, s_w, _pad_gates(hb, 1, head_out, op)]}

    last_step = bool(spec.get("last_step", False))
    last_bidir = bool(spec.get("last_step_bidirectional", False))
    if last_bidir and not last_step:
        raise ValueError("last_step_bidirectional needs last_step")
    if last_bidir and not layers[-1].get("bidirectional", False):
        raise ValueError("last_step_bidirectional needs a bidirectional last layer")
    return {"precision": precision, "input_size": input_size, "embedding": emb_w, "layers": planned,
            "last_step": last_bidir if last_step else None, "head": head_plan}


def _finish(parts: list[bytes], file_size: int) -> bytes:
    out = bytearray(b"".join(parts))
    assert len(out) == file_size
    struct.pack_into("<I", out, LAYOUT["hdr1"].fields["crc32"].offset,
                     zlib.crc32(bytes(out[_C["CRC_START"]:])) & 0xFFFFFFFF)
    return bytes(out)


def _emit_v1(plan: dict) -> bytes:
    hdr, desc, cellw = LAYOUT["hdr1"], LAYOUT["desc1"], LAYOUT["cellw"]
    n_layers = len(plan["layers"])
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
        kp = _round_up(lp["hidden_size"], K_GROUP)
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
    sizes += [_C["REC_RECURRENT_DIR0"] + cellw.size * len(lp["dirs"]) for lp in plan["layers"]]
    sizes += [r_last.size] if plan["last_step"] is not None else []
    sizes += [r_lin.size] if head else []
    records_size = sum(sizes)
    data_start = _round_up(hdr.size + records_size, ALIGN)
    blob = _Blob(data_start)
    records = []
    if emb is not None:
        records.append(r_emb.pack(kind=RECORD_KINDS["embedding"], size=r_emb.size, num=emb.shape[0],
                                  dim=emb.shape[1], weight=blob.add(emb.reshape(-1))))
    for lp in plan["layers"]:
        size = _C["REC_RECURRENT_DIR0"] + cellw.size * len(lp["dirs"])
        sums = blob.add(_hh_sums(lp)) if plan["precision"] == "q8" else (0, 0)
        rec = r_rec.pack(kind=RECORD_KINDS["recurrent"], size=size, cell=lp["cell"], flags=lp["flags"],
                         input_size=lp["input_size"], hidden_size=lp["hidden_size"],
                         x_scale=lp["x_scale"], h_scale=lp["h_scale"][0],
                         h_scale_reverse=lp["h_scale"][1], w_hh_sums=sums)
        for d in lp["dirs"]:
            rec += cellw.pack(**dict(zip(_CELLW, [blob.add(t) for t in d], strict=True)))
        records.append(rec)
    if plan["last_step"] is not None:
        records.append(r_last.pack(kind=RECORD_KINDS["last_step"], size=r_last.size,
                                   flags=_C["LAST_STEP_FLAG_BIDIR"] if plan["last_step"] else 0))
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
    return _emit_v1(plan) if version == _C["V1"] else _emit_v2(plan)


# ----------------------------------------------------------------------------------------------
# reader
# ----------------------------------------------------------------------------------------------
class _Reader:
    """Tensor access with the C loader's checks: alignment, bounds, exact length, no overlap,
    finite floats, no int8 -128."""

    def __init__(self, data: bytes, data_start: int) -> None:
        self.data = data
        self.data_start = data_start
        self.spans: list[tuple[int, int, str]] = []

    def tensor(self, ref: tuple[int, int], dtype, count: int, what: str,
               nonneg: bool = False) -> np.ndarray:
        off, n = ref
        size = np.dtype(dtype).itemsize * count
        if n != size or off % ALIGN or off < self.data_start or off + n > len(self.data):
            raise ValueError(
                f"{what}: bad tensor reference (offset {off}, {n} bytes); expected {size} bytes at a "
                f"multiple of {ALIGN} in [{self.data_start}, {len(self.data)})"
            )
        self.spans.append((off, off + n, what))
        arr = np.frombuffer(self.data, dtype=np.dtype(dtype).newbyteorder("<"), count=count,
                            offset=off).astype(dtype)
        if arr.dtype == np.int8:
            if np.any(arr == -128):
                raise ValueError(f"{what}: int8 weight -128 (must be in [-127, 127])")
        elif not np.all(np.isfinite(arr)) or (nonneg and np.any(arr < 0)):
            raise ValueError(f"{what}: non-finite{' or negative' if nonneg else ''} values")
        return arr

    def absent(self, ref: tuple[int, int], what: str) -> None:
        if tuple(ref) != (0, 0):
            raise ValueError(f"{what}: expected an absent tensor (0, 0), got {tuple(ref)}")

    def check_overlap(self) -> None:
        spans = sorted(self.spans)
        for (_, e0, w0), (o1, _, w1) in zip(spans, spans[1:], strict=False):
            if o1 < e0:
                raise ValueError(f"tensors overlap: {w0} ends at {e0}, {w1} starts at {o1}")


def _check_reserved(st, data: bytes, base: int, what: str) -> None:
    bad = st.reserved_nonzero(data, base)
    if bad:
        raise ValueError(f"{what}: reserved bytes must be zero, got nonzero at offsets {bad[:4]}")


def _check_header_common(data: bytes, header_size: int) -> bytes:
    # magic, version, file_size and crc32 sit alike in both (v2's header is shorter than v1's)
    hdr = LAYOUT["hdr1"].unpack(data[:LAYOUT["hdr1"].size].ljust(LAYOUT["hdr1"].size, b"\0"))
    file_size = hdr["file_size"]
    if file_size > len(data) or file_size < header_size:
        raise ValueError(f"truncated .rnc file: file_size {file_size}, buffer {len(data)} bytes, "
                         f"header {header_size} bytes")
    data = data[:file_size]
    crc = zlib.crc32(data[_C["CRC_START"]:]) & 0xFFFFFFFF
    if crc != hdr["crc32"]:
        raise ValueError(f".rnc checksum mismatch: stored {hdr['crc32']:#010x}, computed {crc:#010x}")
    return data


def _parse_v1(data: bytes) -> dict:
    hdr_s, desc_s = LAYOUT["hdr1"], LAYOUT["desc1"]
    if len(data) < hdr_s.size:
        raise ValueError(f"truncated .rnc file: {len(data)} bytes, the v1 header needs {hdr_s.size}")
    data = _check_header_common(data, hdr_s.size)
    h = hdr_s.unpack(data)
    if h["header_size"] != hdr_s.size or h["layer_desc_size"] != desc_s.size:
        raise ValueError(f"bad .rnc header: header_size {h['header_size']} (expected {hdr_s.size}), "
                         f"layer_desc_size {h['layer_desc_size']} (expected {desc_s.size})")
    _check_reserved(hdr_s, data, 0, "v1 header")
    n = h["num_layers"]
    if not 1 <= n <= MAX_LAYERS or hdr_s.size + n * desc_s.size > len(data):
        raise ValueError(f"bad layer count: num_layers {n} (expected 1..{MAX_LAYERS} descriptors "
                         f"within the file)")
    flags = h["flags"]
    known = (_C["V1_FLAG_EMBEDDING"] | _C["V1_FLAG_HEAD"] | _C["V1_FLAG_LAST_STEP"]
             | _C["V1_FLAG_LAST_STEP_BIDIR"])
    if flags & ~known:
        raise ValueError(f"bad header flags {flags:#x} (known bits {known:#x})")
    parts: dict[str, Any] = {"precision": h["precision"], "input_size": h["input_size"],
                             "data_start": _round_up(hdr_s.size + n * desc_s.size, ALIGN)}
    parts["embedding"] = ((h["embed_num"], h["embed_dim"], h["embedding"])
                          if flags & _C["V1_FLAG_EMBEDDING"] else None)
    if parts["embedding"] is None and (h["embed_num"], h["embed_dim"], h["embedding"]) != (0, 0, (0, 0)):
        raise ValueError("embedding fields must be zero without the embedding flag")
    if parts["embedding"] is not None and h["embed_dim"] != h["input_size"]:
        raise ValueError(f"embed_dim {h['embed_dim']} != input_size {h['input_size']}")
    layers = []
    for li in range(n):
        base = hdr_s.size + li * desc_s.size
        _check_reserved(desc_s, data, base, f"layer {li} descriptor")
        d = desc_s.unpack(data, base)
        bidir = bool(d["flags"] & _C["LAYER_FLAG_BIDIR"])
        layers.append({"cell": d["kind"], "flags": d["flags"], "input_size": d["input_size"],
                       "hidden_size": d["hidden_size"], "x_scale": d["x_scale"],
                       "h_scale": [d["h_scale"], d["h_scale_reverse"]],
                       "dirs": [d["dir0"], d["dir1"]] if bidir else [d["dir0"]],
                       "absent_dirs": [] if bidir else [d["dir1"]]})
    parts["layers"] = layers
    parts["last_step"] = None
    if flags & _C["V1_FLAG_LAST_STEP"]:
        parts["last_step"] = bool(flags & _C["V1_FLAG_LAST_STEP_BIDIR"])
    elif flags & _C["V1_FLAG_LAST_STEP_BIDIR"]:
        raise ValueError("flags: last_step_bidirectional without last_step")
    parts["head"] = None
    head_fields = (h["head_in"], h["head_out"], h["head_activation"], h["head_in_scale"])
    head_refs = [h["head_weight"], h["head_scale"], h["head_bias"]]
    if flags & _C["V1_FLAG_HEAD"]:
        parts["head"] = dict(zip(("in", "out", "activation", "in_scale"), head_fields, strict=True),
                             refs=head_refs)
    elif head_fields != (0, 0, 0, 0.0) or any(tuple(r) != (0, 0) for r in head_refs):
        raise ValueError("head fields must be zero without the head flag")
    return data, parts


def _parse_v2(data: bytes) -> dict:
    hdr_s, rec_s = LAYOUT["hdr2"], LAYOUT["rec"]
    if len(data) < hdr_s.size:
        raise ValueError(f"truncated .rnc file: {len(data)} bytes, the v2 header needs {hdr_s.size}")
    data = _check_header_common(data, hdr_s.size)
    h = hdr_s.unpack(data)
    if h["header_size"] != hdr_s.size:
        raise ValueError(f"bad .rnc header: header_size {h['header_size']} (expected {hdr_s.size})")
    if h["flags"] != 0:
        raise ValueError(f"bad .rnc header: flags {h['flags']:#x} (expected 0)")
    _check_reserved(hdr_s, data, 0, "v2 header")
    nrec, rsize = h["num_records"], h["records_size"]
    end = hdr_s.size + rsize
    if nrec == 0 or end > len(data) or _round_up(end, ALIGN) > len(data):
        raise ValueError(f"bad record list: num_records {nrec} (expected >= 1), records_size {rsize} "
                         f"(must fit in the file of {len(data)} bytes)")
    recs = []
    pos = hdr_s.size
    for i in range(nrec):
        if end - pos < rec_s.size:
            raise ValueError(f"record {i}: starts at {pos}, past the record list's end {end}")
        r = rec_s.unpack(data, pos)
        if r["size"] < rec_s.size or r["size"] % 8 or r["size"] > end - pos:
            raise ValueError(f"record {i}: size {r['size']} (expected a multiple of 8, >= {rec_s.size}, "
                             f"<= {end - pos})")
        recs.append((pos, r["kind"], r["size"]))
        pos += r["size"]
    if pos != end:
        raise ValueError(f"bad record list: {nrec} records end at {pos}, records_size says {end}")
    names = {v: k for k, v in RECORD_KINDS.items()}
    seq = [names.get(k, f"unknown kind {k}") for _, k, _ in recs]
    if not re.fullmatch(r"(embedding,)?(recurrent,)+(last_step,)?(linear,)?", "".join(s + "," for s in seq)):
        raise ValueError(f"unsupported record sequence {seq}: the C core runs "
                         "[embedding] recurrent+ [last_step] [linear]")
    parts: dict[str, Any] = {"precision": h["precision"], "input_size": h["input_size"],
                             "data_start": _round_up(end, ALIGN), "embedding": None, "layers": [],
                             "last_step": None, "head": None}
    if (seq[0] == "embedding") != (h["input_size"] == 0):
        raise ValueError(f"input_size {h['input_size']}: expected 0 exactly when an embedding record "
                         "comes first (the input is token ids)")
    for i, (pos, _, size) in enumerate(recs):
        kind = seq[i]
        if kind == "recurrent":
            st = LAYOUT["rec_recurrent"]
            r = st.unpack(data, pos)
            ndir = 2 if r["flags"] & _C["LAYER_FLAG_BIDIR"] else 1
            want = _C["REC_RECURRENT_DIR0"] + LAYOUT["cellw"].size * ndir
        else:
            st = LAYOUT["rec_" + kind]
            r = st.unpack(data, pos) if size >= st.size else None
            want = st.size
        if size != want:
            raise ValueError(f"record {i} ({kind}): size {size}, expected {want}")
        _check_reserved(st, data, pos, f"record {i} ({kind})")
        if kind == "embedding":
            parts["embedding"] = (r["num"], r["dim"], r["weight"])
            parts["input_size"] = r["dim"]
        elif kind == "recurrent":
            d0 = pos + _C["REC_RECURRENT_DIR0"]
            parts["layers"].append({
                "cell": r["cell"], "flags": r["flags"], "input_size": r["input_size"],
                "hidden_size": r["hidden_size"], "x_scale": r["x_scale"],
                "h_scale": [r["h_scale"], r["h_scale_reverse"]],
                "dirs": [d0 + LAYOUT["cellw"].size * d for d in range(ndir)], "absent_dirs": [],
                "hh_sums": r["w_hh_sums"]})
        elif kind == "last_step":
            if r["flags"] & ~_C["LAST_STEP_FLAG_BIDIR"]:
                raise ValueError(f"record {i} (last_step): flags {r['flags']:#x} (known bits "
                                 f"{_C['LAST_STEP_FLAG_BIDIR']:#x})")
            parts["last_step"] = bool(r["flags"] & _C["LAST_STEP_FLAG_BIDIR"])
        else:
            parts["head"] = {"in": r["in_features"], "out": r["out_features"],
                             "activation": r["activation"], "in_scale": r["in_scale"],
                             "refs": [r["weight"], r["scale"], r["bias"]]}
    if len(parts["layers"]) > MAX_LAYERS:
        raise ValueError(f"{len(parts['layers'])} recurrent records (the C core runs 1..{MAX_LAYERS})")
    return data, parts


def read_rnc(data: bytes) -> dict:
    """Parse ``.rnc`` bytes (version 1 or 2) into a description (the shape of :func:`write_rnc`'s
    ``spec``); both versions of one model give the same description.

    Weights are unpacked into PyTorch shapes; for ``"q8"`` files ``weights`` hold the
    dequantised float32 values ``wq * s`` and each layer also has ``qweights`` (int8, PyTorch
    shapes) and ``scales`` (float32 per row); the head likewise ``qweight`` / ``scale``.

    Raises
    ------
    ValueError
        when the bytes are not a valid ``.rnc`` file (magic, version, checksum, sizes), naming the
        field, the expected and the received value.
    """
    data = bytes(data)
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError(f"not an .rnc file (bad magic {data[:4]!r}, expected {MAGIC!r}, or too short)")
    version = LAYOUT["hdr1"].unpack(data[:LAYOUT["hdr1"].size].ljust(LAYOUT["hdr1"].size, b"\0"))["version"]
    if version not in VERSIONS:
        raise ValueError(f"unsupported .rnc version {version} (this reader reads {VERSIONS})")
    data, p = _parse_v1(data) if version == _C["V1"] else _parse_v2(data)
    return _describe(data, p)


def _describe(data: bytes, p: dict) -> dict:
    """The description of a parsed file (version-independent ``p``, see _parse_v1/_parse_v2)."""
    if p["precision"] not in PRECISIONS.values():
        raise ValueError(f"precision {p['precision']}: expected one of {sorted(PRECISIONS.values())}")
    precision = "q8" if p["precision"] == PRECISIONS["q8"] else "f32"
    rd = _Reader(data, p["data_start"])
    if not 1 <= p["input_size"] <= MAX_FEATURES:
        raise ValueError(f"input_size {p['input_size']}: expected 1..{MAX_FEATURES}")
    out: dict[str, Any] = {"precision": precision, "input_size": p["input_size"], "embedding": None,
                           "last_step": p["last_step"] is not None,
                           "last_step_bidirectional": bool(p["last_step"])}
    if p["embedding"] is not None:
        num, dim, ref = p["embedding"]
        if not (1 <= num <= MAX_VOCAB and 1 <= dim <= MAX_FEATURES):
            raise ValueError(f"embedding: num {num} (expected 1..{MAX_VOCAB}), dim {dim} "
                             f"(expected 1..{MAX_FEATURES})")
        out["embedding"] = {"weight": rd.tensor(ref, np.float32, num * dim, "embedding").reshape(num, dim)}

    def matrix(wref, sref, g, h, k, what):
        hp = _round_up(h, ROW_BLOCK)
        if precision == "f32":
            w = unpack_f32(rd.tensor(wref, np.float32, g * hp * k, what), g * hp, k)
            rd.absent(sref, what + " scales")
            return _unpad_gates(w, g, h, hp), None, None
        kp = _round_up(k, K_GROUP)
        wq = unpack_q8(rd.tensor(wref, np.int8, g * hp * kp, what), g * hp, kp)[:, :k]
        s = rd.tensor(sref, np.float32, g * hp, what + " scales", nonneg=True)
        wq, s = _unpad_gates(wq, g, h, hp), _unpad_gates(s, g, h, hp)
        with np.errstate(over="ignore"):  # a (valid) huge scale may dequantise to inf
            return (wq.astype(np.float32) * s[:, None]).astype(np.float32), wq, s

    def static_scale(v, what):
        if not (np.isfinite(v) and v >= 0) or (precision == "f32" and v != 0):
            raise ValueError(f"{what}: static scale {v} (expected finite, >= 0, and 0 in f32 files)")
        return v or None

    layers = []
    feat = out["input_size"]
    for li, lp in enumerate(p["layers"]):
        if lp["cell"] not in _KIND_NAMES:
            raise ValueError(f"layer {li}: cell kind {lp['cell']} (expected one of {sorted(_KIND_NAMES)})")
        kind, nonlin = _KIND_NAMES[lp["cell"]]
        lflags = lp["flags"]
        known = _C["LAYER_FLAG_RESET_AFTER"] | _C["LAYER_FLAG_BIDIR"]
        if lflags & ~known or (lflags & _C["LAYER_FLAG_RESET_AFTER"] and kind != "gru"):
            raise ValueError(f"layer {li}: flags {lflags:#x} (known bits {known:#x}, reset_after for "
                             "GRU only)")
        i, h = lp["input_size"], lp["hidden_size"]
        if i != feat or not 1 <= h <= MAX_HIDDEN:
            raise ValueError(f"layer {li}: input_size {i} (expected {feat}), hidden_size {h} "
                             f"(expected 1..{MAX_HIDDEN})")
        g = GATES[kind]
        bidir = bool(lflags & _C["LAYER_FLAG_BIDIR"])
        xs = static_scale(lp["x_scale"], f"layer {li} x_scale")
        hs = [static_scale(v, f"layer {li} h_scale") for v in lp["h_scale"]]
        if not bidir and hs[1] is not None:
            raise ValueError(f"layer {li}: h_scale_reverse {hs[1]} in a unidirectional layer (expected 0)")
        layer: dict[str, Any] = {
            "kind": kind,
            "input_size": i,
            "hidden_size": h,
            "bidirectional": bidir,
            "x_scale": xs,
            "h_scale": hs if bidir else hs[:1],
            "weights": {},
        }
        if kind == "rnn":
            layer["nonlinearity"] = nonlin
        if kind == "gru":
            layer["reset_after"] = bool(lflags & _C["LAYER_FLAG_RESET_AFTER"])
        if precision == "q8":
            layer["qweights"], layer["scales"] = {}, {}
        hp = _round_up(h, ROW_BLOCK)
        for at in lp["absent_dirs"]:
            for name, ref in LAYOUT["cellw"].unpack(data, at).items():
                rd.absent(ref, f"layer {li} (unidirectional) reverse {name}")
        for d, at in enumerate(lp["dirs"]):
            suf = "_reverse" if d else ""
            r = LAYOUT["cellw"].unpack(data, at)
            pr = {name: r[f] for name, f in zip(_PARAMS, _CELLW, strict=True)}
            for name, k in (("weight_ih", i), ("weight_hh", h)):
                sname = "s_ih" if name == "weight_ih" else "s_hh"
                wf, wq, s = matrix(pr[name], pr[sname], g, h, k, f"layer {li} {name}{suf}")
                layer["weights"][name + suf] = wf
                if wq is not None:
                    layer["qweights"][name + suf] = wq
                    layer["scales"][name + suf] = s
            for name in ("bias_ih", "bias_hh"):
                b = rd.tensor(pr[name], np.float32, g * hp, f"layer {li} {name}{suf}")
                layer["weights"][name + suf] = _unpad_gates(b, g, h, hp)
        if lp.get("hh_sums") is not None:  # v2: W_hh's kernel sums, exactly for q8
            what = f"layer {li} w_hh_sums"
            if precision == "f32":
                rd.absent(lp["hh_sums"], what)
            else:
                ndir = len(lp["dirs"])
                got = rd.tensor(lp["hh_sums"], np.int32, ndir * g * hp, what).reshape(ndir, g * hp)
                for d in range(ndir):
                    wq = layer["qweights"]["weight_hh" + ("_reverse" if d else "")]
                    want = _pad_gates(wq.astype(np.int64).sum(axis=1), g, h, hp)
                    bad = np.flatnonzero(got[d] != want)
                    if bad.size:
                        r = int(bad[0])
                        raise ValueError(f"{what}: direction {d} row {r} is {int(got[d, r])}, expected "
                                         f"{int(want[r])} (the sum of its W_hh row)")
        layers.append(layer)
        feat = h * (2 if bidir else 1)
    out["layers"] = layers
    if p["last_step"] and not layers[-1]["bidirectional"]:
        raise ValueError("last_step_bidirectional needs a bidirectional last layer")
    out["output_size"] = feat
    out["head"] = None
    hp_ = p["head"]
    if hp_ is not None:
        act = {v: k for k, v in ACTIVATIONS.items()}.get(hp_["activation"])
        if act is None:
            raise ValueError(f"head activation {hp_['activation']} (expected one of "
                             f"{sorted(ACTIVATIONS.values())})")
        if hp_["in"] != feat or not 1 <= hp_["out"] <= MAX_FEATURES:
            raise ValueError(f"head: in_features {hp_['in']} (expected {feat}), out_features "
                             f"{hp_['out']} (expected 1..{MAX_FEATURES})")
        wref, sref, bref = hp_["refs"]
        wf, wq, s = matrix(wref, sref, 1, hp_["out"], hp_["in"], "head weight")
        op = _round_up(hp_["out"], ROW_BLOCK)
        hb = rd.tensor(bref, np.float32, op, "head bias")[:hp_["out"]].copy()
        head = {"weight": wf, "bias": hb, "activation": act,
                "in_scale": static_scale(hp_["in_scale"], "head in_scale")}
        if wq is not None:
            head["qweight"], head["scale"] = wq, s
        out["head"] = head
        out["output_size"] = hp_["out"]
    rd.check_overlap()
    return out
