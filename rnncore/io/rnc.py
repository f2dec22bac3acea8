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
``write_rnc(spec)`` returns the file bytes: for ``"q8"`` it quantises every weight matrix per
row exactly as ``docs/q8-contract.md`` fixes (symmetric int8 in [-127, 127], one float32 scale per
row) and stores it in the packed layout the C kernels read. ``read_rnc(data)`` parses and checks a
file and returns the same kind of description, unpacked (for q8 also the stored integers and
scales, which the quantised reference uses).
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"RNCM"
VERSION = 1
HEADER_SIZE = 128
LAYER_DESC_SIZE = 128
ALIGN = 64
ROW_BLOCK = 16
K_GROUP = 4

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


def write_rnc(spec: dict) -> bytes:
    """Serialise a model description to ``.rnc`` bytes (see module docstring for ``spec``).

    Raises
    ------
    ValueError
        on unknown names, inconsistent shapes, non-finite weights or sizes past the C limits.
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
            raise ValueError("embedding weight must be (num, dim) with sizes within the C limits")
        input_size = emb_w.shape[1]
    else:
        first = _norm_weights(layers[0]["weights"])
        input_size = int(spec.get("input_size") or np.shape(first["weight_ih"])[1])

    n_layers = len(layers)
    data_start = _round_up(HEADER_SIZE + LAYER_DESC_SIZE * n_layers, ALIGN)
    blob = _Blob(data_start)
    layer_descs = []
    feat = input_size
    for li, layer in enumerate(layers):
        kind = str(layer["kind"]).lower()
        if kind not in GATES:
            raise ValueError(f"layer {li}: kind must be rnn, gru or lstm, not {kind!r}")
        nonlin = str(layer.get("nonlinearity", "tanh")).lower() if kind == "rnn" else None
        if (kind, nonlin) not in KINDS:
            raise ValueError(f"layer {li}: nonlinearity must be tanh or relu")
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
            raise ValueError(f"layer {li}: sizes out of range")
        hp = _round_up(h, ROW_BLOCK)
        refs = []
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
                raise ValueError(f"layer {li}: biases must have shape ({g * h},)")
            p_ih, s_ih = _matrix(w_ih, precision, g, h, hp, i)
            p_hh, s_hh = _matrix(w_hh, precision, g, h, hp, h)
            refs.append(
                [
                    blob.add(p_ih),
                    blob.add(p_hh),
                    blob.add(s_ih),
                    blob.add(s_hh),
                    blob.add(_pad_gates(b_ih, g, h, hp)),
                    blob.add(_pad_gates(b_hh, g, h, hp)),
                ]
            )
        while len(refs) < 2:
            refs.append([(0, 0)] * 6)
        flags = (1 if reset_after else 0) | (2 if bidir else 0)
        hsc = layer.get("h_scale")
        hsc = list(hsc) if isinstance(hsc, (list, tuple)) else [hsc, hsc if bidir else None]
        if len(hsc) == 1:
            hsc.append(None)
        if not bidir:
            hsc[1] = None
        desc = struct.pack(
            "<IIIIfffI",
            KINDS[(kind, nonlin)],
            flags,
            i,
            h,
            _scale_field(layer.get("x_scale"), precision, f"layer {li} x_scale"),
            _scale_field(hsc[0], precision, f"layer {li} h_scale"),
            _scale_field(hsc[1], precision, f"layer {li} h_scale (reverse)"),
            0,
        )
        for dref in refs:
            for off, n in dref:
                desc += struct.pack("<II", off, n)
        assert len(desc) == LAYER_DESC_SIZE
        layer_descs.append(desc)
        feat = h * (2 if bidir else 1)

    emb_ref = blob.add(emb_w.reshape(-1) if emb_w is not None else None)

    head = spec.get("head")
    head_refs = [(0, 0)] * 3
    head_in = head_out = head_act = 0
    head_scale = 0.0
    if head is not None:
        hw = _as_f32(head["weight"], "head weight")
        if hw.ndim != 2 or hw.shape[1] != feat or not (1 <= hw.shape[0] <= MAX_FEATURES):
            raise ValueError(f"head weight must be (out, {feat}), got {hw.shape}")
        head_out, head_in = hw.shape
        hb = _as_f32(head.get("bias", np.zeros(head_out)), "head bias")
        if hb.shape != (head_out,):
            raise ValueError(f"head bias must have shape ({head_out},)")
        act = str(head.get("activation", "none") or "none").lower()
        if act not in ACTIVATIONS:
            raise ValueError(f"head activation must be one of {sorted(ACTIVATIONS)}")
        head_act = ACTIVATIONS[act]
        head_scale = _scale_field(head.get("in_scale"), precision, "head in_scale")
        op = _round_up(head_out, ROW_BLOCK)
        p_w, s_w = _matrix(hw, precision, 1, head_out, op, head_in)
        hbp = _pad_gates(hb, 1, head_out, op)
        head_refs = [blob.add(p_w), blob.add(s_w), blob.add(hbp)]

    file_size = blob.pos
    if file_size >= 2**32:
        raise ValueError("model too large for the .rnc format (4 GiB)")
    last_step = bool(spec.get("last_step", False))
    last_bidir = bool(spec.get("last_step_bidirectional", False))
    if last_bidir and not last_step:
        raise ValueError("last_step_bidirectional needs last_step")
    if last_bidir and not layers[-1].get("bidirectional", False):
        raise ValueError("last_step_bidirectional needs a bidirectional last layer")
    flags = (1 if emb_w is not None else 0) | (2 if head is not None else 0)
    flags |= (4 if last_step else 0) | (8 if last_bidir else 0)
    header = MAGIC + struct.pack(
        "<IIIIIIIIIIIIIfI",
        VERSION,
        file_size,
        0,
        HEADER_SIZE,
        PRECISIONS[precision],
        n_layers,
        input_size,
        flags,
        emb_w.shape[0] if emb_w is not None else 0,
        emb_w.shape[1] if emb_w is not None else 0,
        head_in,
        head_out,
        head_act,
        head_scale,
        LAYER_DESC_SIZE,
    )
    for off, n in [emb_ref] + head_refs:
        header += struct.pack("<II", off, n)
    header += b"\0" * (HEADER_SIZE - len(header))
    body = header + b"".join(layer_descs)
    body += b"\0" * (data_start - len(body))
    out = bytearray(body + b"".join(blob.parts))
    assert len(out) == file_size
    struct.pack_into("<I", out, 12, zlib.crc32(bytes(out[16:])) & 0xFFFFFFFF)
    return bytes(out)


# ----------------------------------------------------------------------------------------------
# reader
# ----------------------------------------------------------------------------------------------
def _tensor(data: bytes, ref: tuple[int, int], dtype, count: int, what: str,
            nonneg: bool = False) -> np.ndarray:
    """A tensor by reference, with the C loader's value checks (finite floats, no int8 -128)."""
    off, n = ref
    size = np.dtype(dtype).itemsize * count
    if n != size or off % ALIGN or off + n > len(data) or off < HEADER_SIZE:
        raise ValueError(f"bad tensor reference for {what}: offset {off}, {n} bytes (expected {size})")
    arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=off).astype(dtype)
    if arr.dtype == np.int8:
        if np.any(arr == -128):
            raise ValueError(f"{what}: int8 weight -128 (must be in [-127, 127])")
    elif not np.all(np.isfinite(arr)) or (nonneg and np.any(arr < 0)):
        raise ValueError(f"{what}: non-finite{' or negative' if nonneg else ''} values")
    return arr


def read_rnc(data: bytes) -> dict:
    """Parse ``.rnc`` bytes into a description (the shape of :func:`write_rnc`'s ``spec``).

    Weights are unpacked into PyTorch shapes; for ``"q8"`` files ``weights`` hold the
    dequantised float32 values ``wq * s`` and each layer also has ``qweights`` (int8, PyTorch
    shapes) and ``scales`` (float32 per row); the head likewise ``qweight`` / ``scale``.

    Raises
    ------
    ValueError
        when the bytes are not a valid ``.rnc`` file (magic, version, checksum, sizes).
    """
    data = bytes(data)
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        raise ValueError("not an .rnc file (bad magic or too short)")
    (version, file_size, crc, header_size, prec, n_layers, input_size, flags, emb_num, emb_dim,
     head_in, head_out, head_act, head_scale, desc_size) = struct.unpack_from("<IIIIIIIIIIIIIfI", data, 4)
    if version != VERSION:
        raise ValueError(f"unsupported .rnc version {version}")
    if file_size > len(data) or file_size < HEADER_SIZE:
        raise ValueError("truncated .rnc file")
    data = data[:file_size]
    if zlib.crc32(data[16:]) & 0xFFFFFFFF != crc:
        raise ValueError(".rnc checksum mismatch")
    if header_size != HEADER_SIZE or desc_size != LAYER_DESC_SIZE or prec not in (0, 1):
        raise ValueError("bad .rnc header")
    if not 1 <= n_layers <= MAX_LAYERS or HEADER_SIZE + n_layers * LAYER_DESC_SIZE > file_size:
        raise ValueError("bad layer count")
    precision = "q8" if prec == 1 else "f32"
    refs = struct.unpack_from("<8I", data, 64)
    emb_ref, hw_ref, hs_ref, hb_ref = (refs[0:2], refs[2:4], refs[4:6], refs[6:8])

    if flags & ~15:
        raise ValueError("bad header flags")
    out: dict[str, Any] = {"precision": precision, "input_size": input_size, "embedding": None,
                           "last_step": bool(flags & 4), "last_step_bidirectional": bool(flags & 8)}
    if flags & 1:
        out["embedding"] = {"weight": _tensor(data, emb_ref, np.float32, emb_num * emb_dim,
                                              "embedding").reshape(emb_num, emb_dim)}

    def matrix(wref, sref, g, h, k, what):
        hp = _round_up(h, ROW_BLOCK)
        if precision == "f32":
            w = unpack_f32(_tensor(data, wref, np.float32, g * hp * k, what), g * hp, k)
            return _unpad_gates(w, g, h, hp), None, None
        kp = _round_up(k, K_GROUP)
        wq = unpack_q8(_tensor(data, wref, np.int8, g * hp * kp, what), g * hp, kp)[:, :k]
        s = _tensor(data, sref, np.float32, g * hp, what + " scales", nonneg=True)
        wq, s = _unpad_gates(wq, g, h, hp), _unpad_gates(s, g, h, hp)
        with np.errstate(over="ignore"):  # a (valid) huge scale may dequantise to inf
            return (wq.astype(np.float32) * s[:, None]).astype(np.float32), wq, s

    layers = []
    for li in range(n_layers):
        base = HEADER_SIZE + li * LAYER_DESC_SIZE
        kind_id, lflags, i, h, xs, hs, hs2 = struct.unpack_from("<IIIIfff", data, base)
        if not all(np.isfinite(v) and v >= 0 for v in (xs, hs, hs2)):
            raise ValueError(f"layer {li}: bad static scale")
        if kind_id not in _KIND_NAMES:
            raise ValueError(f"layer {li}: bad kind {kind_id}")
        kind, nonlin = _KIND_NAMES[kind_id]
        g = GATES[kind]
        bidir = bool(lflags & 2)
        layer: dict[str, Any] = {
            "kind": kind,
            "input_size": i,
            "hidden_size": h,
            "bidirectional": bidir,
            "x_scale": xs or None,
            "h_scale": [hs or None, hs2 or None] if bidir else [hs or None],
            "weights": {},
        }
        if kind == "rnn":
            layer["nonlinearity"] = nonlin
        if kind == "gru":
            layer["reset_after"] = bool(lflags & 1)
        if precision == "q8":
            layer["qweights"], layer["scales"] = {}, {}
        hp = _round_up(h, ROW_BLOCK)
        for d in range(2 if bidir else 1):
            suf = "_reverse" if d else ""
            r = struct.unpack_from("<12I", data, base + 32 + 48 * d)
            pr = {name: (r[2 * j], r[2 * j + 1]) for j, name in enumerate(_PARAMS)}
            for name, k in (("weight_ih", i), ("weight_hh", h)):
                sname = "s_ih" if name == "weight_ih" else "s_hh"
                wf, wq, s = matrix(pr[name], pr[sname], g, h, k, f"layer {li} {name}{suf}")
                layer["weights"][name + suf] = wf
                if wq is not None:
                    layer["qweights"][name + suf] = wq
                    layer["scales"][name + suf] = s
            for name in ("bias_ih", "bias_hh"):
                b = _tensor(data, pr[name], np.float32, g * hp, f"layer {li} {name}{suf}")
                layer["weights"][name + suf] = _unpad_gates(b, g, h, hp)
        layers.append(layer)
    out["layers"] = layers
    last = layers[-1]
    out["output_size"] = last["hidden_size"] * (2 if last["bidirectional"] else 1)
    out["head"] = None
    if flags & 2:
        act = {v: k for k, v in ACTIVATIONS.items()}.get(head_act)
        if act is None:
            raise ValueError("bad head activation")
        wf, wq, s = matrix(hw_ref, hs_ref, 1, head_out, head_in, "head weight")
        op = _round_up(head_out, ROW_BLOCK)
        hb = _tensor(data, hb_ref, np.float32, op, "head bias")[:head_out].copy()
        head = {"weight": wf, "bias": hb, "activation": act, "in_scale": head_scale or None}
        if wq is not None:
            head["qweight"], head["scale"] = wq, s
        out["head"] = head
        out["output_size"] = head_out
    return out
