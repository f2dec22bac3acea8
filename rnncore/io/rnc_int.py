"""Fully-integer models in ``.rnc`` files (precision 3, ``docs/rnc-format.md``, "Integer models").

A precision-3 file carries an :class:`~rnncore.quant.integer.IntModel` exactly: int8 weights
(row-major, unpadded), int32 biases with the zero points folded in, per-row int32 multipliers and
int8 shifts, zero points, the activation family, the real scales (binary64) and the integer head.
Its records are the version 2 ``recurrent`` and ``linear`` records with one more block each
(``cellint`` / ``linint`` of ``csrc/src/rnc_layout.h``), so the layout has one description.

* :func:`write_int_rnc` -- ``IntModel`` -> ``.rnc`` bytes;
* :func:`read_int_rnc` -- bytes -> ``IntModel`` (through :func:`rnncore.io.rnc.read_rnc`, which
  checks every count, offset and value exactly as the C loader ``rnc_model_init`` does);
* ``load_int_layer`` / ``load_int_head`` -- the reader's checks, a line-by-line mirror of
  ``load_int_layer`` / ``load_int_head`` in ``csrc/src/loader.c`` (same order, same messages).

The host engine runs such a file (``rc.load``: the integer step of ``csrc/src/int/`` as
kernel-table rows, bit for bit the spec); ``rnncore export-c --target cortex-m`` compiles it for a
microcontroller.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from rnncore.io.rnc_layout import LAYOUT

_C = LAYOUT.constants
PRECISION_INT = _C["FILE_PRECISION_INT"]
#: rnc_layout.h cell kinds by IntCell.cell
CELL_KINDS = {"rnn_tanh": 0, "rnn_relu": 1, "gru": 2, "lstm": 3}
_CELL_NAMES = {v: k for k, v in CELL_KINDS.items()}
_GATES = {0: 1, 1: 1, 2: 3, 3: 4}
_HEAD_ACTS = {"none": 0, "softmax": 4}
_MAX_COLS = _C["FILE_INT_MAX_COLS"]
_MAX_BIAS = _C["FILE_INT_MAX_BIAS"]
_I32_TOP = 2**31 - 1


def _s32(v: int) -> int:
    """A U32 field read as int32 (two's complement)."""
    return v - (1 << 32) if v >= 1 << 31 else v


def _u32(v: int) -> int:
    return int(v) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------
# reader: the checks of loader.c's load_int_layer / load_int_head, in their order


def _int_scale(ld, field: str, bits: int, max_exp: int | None = None, what: str = "") -> None:
    v = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if not math.isfinite(v) or not v > 0:
        raise ld.fail(field, "NORM_EPS", bits)
    if max_exp is not None and v > 2.0 ** max_exp:   # loader.c int_scale_max
        raise ld.fail(field, "INT_SCALE_MAX", bits, max_exp, what)


def _int_zero(ld, field: str, bits: int) -> None:
    if bits:
        raise ld.fail(field, "INT_ZERO", bits)


def _int_range(ld, field: str, v: int, lo: int, hi: int) -> None:
    if v < lo or v > hi:
        raise ld.fail(field, "INT_RANGE", v, lo, hi)


def _int_expect(ld, field: str, v: int, want: int) -> None:
    if v != want:
        raise ld.fail(field, "INT_EXPECT", v, want)


def _get_ints(ld, field: str, ref, count: int, size: int, lo: int, hi: int) -> np.ndarray:
    off = ld.get_ref(field, ref, count * size)
    a = np.frombuffer(ld.b, "<i4" if size == 4 else np.int8, count, off)
    bad = (a < lo) | (a > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise ld.fail(field, "INT_VALUE", i, int(a[i]), lo, hi)
    return a.astype(np.int32 if size == 4 else np.int8)


def _get_s8(ld, field: str, ref, count: int) -> np.ndarray:
    return np.frombuffer(ld.b, np.int8, count, ld.get_ref(field, ref, count)).copy()


def load_int_layer(ld, pos: int, size: int) -> None:
    """A precision-3 recurrent record at ``pos`` (the reader ``ld`` is rnc.py's ``_Loader``)."""
    st, cw, ci = LAYOUT["rec_recurrent"], LAYOUT["cellw"], LAYOUT["cellint"]
    want = _C["REC_RECURRENT_DIR0"] + cw.size + ci.size
    if size != want:
        raise ld.fail("size", "EXPECT", size, want)
    w_at = pos + _C["REC_RECURRENT_DIR0"]
    q_at = w_at + cw.size
    ld.check_reserved(st, pos)
    ld.check_reserved(ci, q_at)
    r = ld.unpack(st, pos)   # F32 fields as their bits
    kind, lf, n_in, H = r["cell"], r["flags"], r["input_size"], r["hidden_size"]
    ra = _C["LAYER_FLAG_RESET_AFTER"]
    known = ra | _C["LAYER_FLAG_BIDIR"] | _C["LAYER_FLAG_SPARSE_IH"] | _C["LAYER_FLAG_SPARSE_HH"] | _C[
        "LAYER_FLAG_OPTIONS"]
    if len(ld.layers) >= _C["FILE_MAX_LAYERS"]:
        raise ld.fail("cell", "LAYERS", _C["FILE_MAX_LAYERS"])
    if kind >= _C["FILE_CELL_KINDS"]:
        raise ld.fail("cell", "RANGE", kind, 0, _C["FILE_CELL_KINDS"] - 1)
    if lf & ~known:
        raise ld.fail("flags", "FLAGS", lf, known)
    if lf & ~ra:
        raise ld.fail("flags", "INT_FORM", lf)
    if lf & ra and kind != CELL_KINDS["gru"]:
        raise ld.fail("flags", "RESET_AFTER", lf)
    if n_in != ld.feat:
        raise ld.fail("input_size", "EXPECT", n_in, ld.feat)
    if n_in > _MAX_COLS:
        raise ld.fail("input_size", "RANGE", n_in, 1, _MAX_COLS)
    if H == 0 or H > _MAX_COLS:
        raise ld.fail("hidden_size", "RANGE", H, 1, _MAX_COLS)
    for f in ("x_scale", "h_scale", "h_scale_reverse"):
        _int_zero(ld, f, r[f])
    ld.get_ref("w_hh_sums", r["w_hh_sums"], 0)
    q = ci.unpack(ld.b, q_at)   # F64 as floats; their bits:
    qb = {f: struct.unpack_from("<Q", ld.b, q_at + ci.fields[f].offset)[0]
          for f in ("x_scale", "h_scale", "gate_scale")}
    cf = q["flags"]
    s16 = _C["CELLINT_INPUT_S16"]
    cf_known = _C["CELLINT_TABLE"] | s16
    if cf & ~cf_known:
        raise ld.fail("flags", "FLAGS", cf, cf_known)
    if cf & _C["CELLINT_TABLE"] and kind == CELL_KINDS["lstm"]:
        raise ld.fail("flags", "INT_TABLE_LSTM", cf)
    if cf & s16 and ld.layers:
        raise ld.fail("flags", "INT_S16_LAYER", cf)
    x_zp, h_zp = _s32(q["x_zp"]), _s32(q["h_zp"])
    xs, hs = q["x_scale"], q["h_scale"]
    _int_scale(ld, "x_scale", qb["x_scale"])
    if ld.layers and qb["x_scale"] != ld.int_h_scale:
        raise ld.fail("x_scale", "INT_SAME", qb["x_scale"], ld.int_h_scale)
    _int_scale(ld, "h_scale", qb["h_scale"], _C["FILE_INT_MAX_H_SCALE_EXP"],
               "h_scale (h8 - zp) is a float32 state or output")
    _int_scale(ld, "gate_scale", qb["gate_scale"])
    _int_range(ld, "x_zp", x_zp, -128, 127)
    if ld.layers:
        _int_expect(ld, "x_zp", x_zp, ld.int_h_zp)
    if cf & s16:
        _int_expect(ld, "x_zp", x_zp, 0)
    _int_range(ld, "h_zp", h_zp, -128, 127)
    _int_range(ld, "m_h", _s32(q["m_h"]), 0, _I32_TOP)
    _int_range(ld, "e_h", _s32(q["e_h"]), -31, 30)
    if kind == CELL_KINDS["gru"]:
        _int_range(ld, "m_rh", _s32(q["m_rh"]), 0, _I32_TOP)
        _int_range(ld, "e_rh", _s32(q["e_rh"]), -31, 30)
    else:
        _int_expect(ld, "m_rh", _s32(q["m_rh"]), 0)
        _int_expect(ld, "e_rh", _s32(q["e_rh"]), 0)
    if kind == CELL_KINDS["lstm"]:
        _int_range(ld, "cell_shift", _s32(q["cell_shift"]), -15, -9)
        _int_range(ld, "cell_clip", _s32(q["cell_clip"]), 0, 32767)
    else:
        _int_expect(ld, "cell_shift", _s32(q["cell_shift"]), 0)
        _int_expect(ld, "cell_clip", _s32(q["cell_clip"]), 0)
    rows = _GATES[kind] * H
    w = cw.unpack(ld.b, w_at)
    ld.dir = 0
    w_ih = _get_s8(ld, "w_ih", w["w_ih"], rows * n_in)
    w_hh = _get_s8(ld, "w_hh", w["w_hh"], rows * H)
    ld.get_ref("s_ih", w["s_ih"], 0)
    ld.get_ref("s_hh", w["s_hh"], 0)
    b_ih = _get_ints(ld, "b_ih", w["b_ih"], rows, 4, -_MAX_BIAS, _MAX_BIAS)
    b_hh = _get_ints(ld, "b_hh", w["b_hh"], rows, 4, -_MAX_BIAS, _MAX_BIAS)
    if cf & s16:   # int32 accumulation of int8 W_ih times int16 x
        bound = np.abs(w_ih.reshape(rows, n_in).astype(np.int64)).sum(axis=1) * 32768 + np.abs(
            b_ih.astype(np.int64))
        if np.any(bound > _I32_TOP):
            i = int(np.argmax(bound > _I32_TOP))
            raise ld.fail("w_ih", "INT_S16_BOUND", i, int(bound[i]), _I32_TOP)
    ld.dir = None
    m_ih = _get_ints(ld, "m_ih", q["m_ih"], rows, 4, 0, _I32_TOP)
    e_ih = _get_ints(ld, "e_ih", q["e_ih"], rows, 1, -31, 30)
    m_hh = _get_ints(ld, "m_hh", q["m_hh"], rows, 4, 0, _I32_TOP)
    e_hh = _get_ints(ld, "e_hh", q["e_hh"], rows, 1, -31, 30)
    ld.int_h_scale, ld.int_h_zp = qb["h_scale"], h_zp
    ld.feat = H
    cell = {"cell": _CELL_NAMES[kind], "input_size": n_in, "hidden_size": H,
            "w_ih": w_ih.reshape(rows, n_in), "w_hh": w_hh.reshape(rows, H), "b_ih": b_ih, "b_hh": b_hh,
            "m_ih": m_ih, "e_ih": e_ih.astype(np.int32), "m_hh": m_hh, "e_hh": e_hh.astype(np.int32),
            "m_h": _s32(q["m_h"]), "e_h": _s32(q["e_h"]), "x_scale": xs, "x_zp": x_zp, "h_scale": hs,
            "h_zp": h_zp, "linear_before_reset": bool(lf & ra) or kind != CELL_KINDS["gru"],
            "m_rh": _s32(q["m_rh"]), "e_rh": _s32(q["e_rh"]), "gate_scale": q["gate_scale"],
            "activation": "table" if cf & _C["CELLINT_TABLE"] else "gemmlowp",
            "input_dtype": "int16" if cf & s16 else "int8"}
    if kind == CELL_KINDS["lstm"]:
        cell["cell_shift"], cell["cell_clip"] = _s32(q["cell_shift"]), _s32(q["cell_clip"])
    ld.layers.append({"flags": lf, "int": cell})


def load_int_head(ld, pos: int, size: int) -> None:
    """A precision-3 linear record at ``pos``."""
    st, li = LAYOUT["rec_linear"], LAYOUT["linint"]
    want = st.size + li.size
    if size != want:
        raise ld.fail("size", "EXPECT", size, want)
    q_at = pos + st.size
    ld.check_reserved(st, pos)
    ld.check_reserved(li, q_at)
    r = ld.unpack(st, pos)
    n_in, n_out, act = r["in_features"], r["out_features"], r["activation"]
    if n_in != ld.feat:
        raise ld.fail("in_features", "EXPECT", n_in, ld.feat)
    if n_out == 0 or n_out > _MAX_COLS:
        raise ld.fail("out_features", "RANGE", n_out, 1, _MAX_COLS)
    if act >= _C["FILE_ACTIVATIONS"]:
        raise ld.fail("activation", "RANGE", act, 0, _C["FILE_ACTIVATIONS"] - 1)
    if act not in _HEAD_ACTS.values():
        raise ld.fail("activation", "INT_ACT", act)
    _int_zero(ld, "in_scale", r["in_scale"])
    q = li.unpack(ld.b, q_at)
    _int_scale(ld, "out_scale", struct.unpack_from("<Q", ld.b, q_at + li.fields["out_scale"].offset)[0],
               _C["FILE_INT_MAX_OUT_SCALE_EXP"], "out_scale y_q is a float32 output")
    w = _get_s8(ld, "weight", r["weight"], n_out * n_in)
    ld.get_ref("scale", r["scale"], 0)
    b = _get_ints(ld, "bias", r["bias"], n_out, 4, -_MAX_BIAS, _MAX_BIAS)
    m_o = _get_ints(ld, "m_o", q["m_o"], n_out, 4, 0, _I32_TOP)
    e_o = _get_ints(ld, "e_o", q["e_o"], n_out, 1, -31, 30)
    ld.head = {"in": n_in, "out": n_out, "int": {
        "w": w.reshape(n_out, n_in), "b": b, "m_o": m_o, "e_o": e_o.astype(np.int32),
        "out_scale": q["out_scale"], "activation": {v: k for k, v in _HEAD_ACTS.items()}[act]}}


def describe(ld) -> dict:
    """``read_rnc``'s description of a precision-3 file: ``precision`` ``"int8"``, the sizes, and
    ``int_model``, the :class:`~rnncore.quant.integer.IntModel`."""
    from rnncore.quant.integer import IntCell, IntHead, IntModel

    cells = [IntCell(**lp["int"]) for lp in ld.layers]
    head = None if ld.head is None else IntHead(**ld.head["int"])
    model = IntModel(cells, head, ld.last_step is not None)
    last = cells[-1]
    return {"precision": "int8", "input_size": ld.input_size, "embedding": None,
            "last_step": ld.last_step is not None, "last_step_bidirectional": False,
            "layers": [{"kind": c.cell, "input_size": c.input_size, "hidden_size": c.hidden_size,
                        "bidirectional": False, "activation": c.activation} for c in cells],
            "head": None if head is None else {"in_features": head.in_features,
                                               "out_features": head.out_features,
                                               "activation": head.activation},
            "output_size": head.out_features if head is not None else last.hidden_size,
            "front": [], "post": [], "post_pooled": [], "int_model": model}


# ------------------------------------------------------------------------------------------
# writer


def write_int_rnc(model: Any) -> bytes:
    """The ``.rnc`` bytes (version 2, precision 3) of an integer model.

    Parameters
    ----------
    model : :class:`~rnncore.quant.integer.IntModel` (``quantize_int_model``,
        ``read_int_rnc``): unidirectional cells of sizes ``I, H <= 32768``, optional last-step
        pooling and an integer head (activation ``"none"`` or ``"softmax"``)

    Returns
    -------
    bytes that :func:`read_int_rnc` gives back as an equal model (every array and number).

    Raises
    ------
    ValueError
        naming the layer and the field for a model the format cannot hold.
    """
    from rnncore.io.rnc import ALIGN, RECORD_KINDS, _Blob, _finish, _round_up

    hdr, rec, cw, ci = LAYOUT["hdr2"], LAYOUT["rec_recurrent"], LAYOUT["cellw"], LAYOUT["cellint"]
    lin, li, last = LAYOUT["rec_linear"], LAYOUT["linint"], LAYOUT["rec_last_step"]
    cells, head = list(model.layers), model.head
    if not cells:
        raise ValueError("write_int_rnc: model.layers: expected 1..16 cells, got 0")
    if len(cells) > _C["FILE_MAX_LAYERS"]:
        raise ValueError(f"write_int_rnc: model.layers: expected 1..{_C['FILE_MAX_LAYERS']} cells, "
                         f"got {len(cells)}")
    for k, c in enumerate(cells):
        c.validate()
        for name, v in (("input_size", c.input_size), ("hidden_size", c.hidden_size)):
            if not 1 <= v <= _MAX_COLS:
                raise ValueError(f"write_int_rnc: layer {k} {name}: expected 1..{_MAX_COLS}, got {v}")
        if k and c.input_dtype != "int8":
            raise ValueError(f"write_int_rnc: layer {k} input_dtype: expected 'int8' (an int16 input is "
                             f"for the first layer only), got {c.input_dtype!r}")
        if k and (c.x_scale != cells[k - 1].h_scale or c.x_zp != cells[k - 1].h_zp):
            raise ValueError(f"write_int_rnc: layer {k} x_scale / x_zp: expected the previous layer's "
                             f"h_scale / h_zp ({cells[k - 1].h_scale!r}, {cells[k - 1].h_zp}), got "
                             f"({c.x_scale!r}, {c.x_zp})")
    if head is not None and head.activation not in _HEAD_ACTS:
        raise ValueError(f"write_int_rnc: head activation: expected one of {tuple(_HEAD_ACTS)}, "
                         f"got {head.activation!r}")
    sizes = [rec.size + cw.size + ci.size] * len(cells)
    sizes += [last.size] if model.last_step else []
    sizes += [lin.size + li.size] if head is not None else []
    records_size = sum(sizes)
    blob = _Blob(_round_up(hdr.size + records_size, ALIGN))
    records = []

    def arr(a, dtype) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(a).astype(dtype).reshape(-1))

    for c in cells:
        lstm, gru = c.cell == "lstm", c.cell == "gru"
        t = [blob.add(arr(getattr(c, f), np.int8)) for f in ("w_ih", "w_hh")]
        t += [blob.add(arr(getattr(c, f), np.int32)) for f in ("b_ih", "b_hh")]
        flags = _C["LAYER_FLAG_RESET_AFTER"] if gru and c.linear_before_reset else 0
        r = rec.pack(kind=RECORD_KINDS["recurrent"], size=sizes[0], cell=CELL_KINDS[c.cell], flags=flags,
                     input_size=c.input_size, hidden_size=c.hidden_size)
        r += cw.pack(w_ih=t[0], w_hh=t[1], b_ih=t[2], b_hh=t[3])
        mt = {f: blob.add(arr(getattr(c, f), np.int32 if f[0] == "m" else np.int8))
              for f in ("m_ih", "e_ih", "m_hh", "e_hh")}
        cflags = (_C["CELLINT_TABLE"] if c.activation == "table" else 0) | (
            _C["CELLINT_INPUT_S16"] if c.input_dtype == "int16" else 0)
        r += ci.pack(flags=cflags, x_zp=_u32(c.x_zp),
                     h_zp=_u32(c.h_zp), m_h=_u32(c.m_h), e_h=_u32(c.e_h),
                     m_rh=_u32(c.m_rh if gru else 0), e_rh=_u32(c.e_rh if gru else 0),
                     cell_shift=_u32(c.cell_shift if lstm else 0), cell_clip=_u32(c.cell_clip if lstm else 0),
                     x_scale=c.x_scale, h_scale=c.h_scale, gate_scale=c.gate_scale, **mt)
        records.append(r)
    if model.last_step:
        records.append(last.pack(kind=RECORD_KINDS["last_step"], size=last.size, flags=0))
    if head is not None:
        w = blob.add(arr(head.w, np.int8))
        b = blob.add(arr(head.b, np.int32))
        m_o, e_o = blob.add(arr(head.m_o, np.int32)), blob.add(arr(head.e_o, np.int8))
        records.append(lin.pack(kind=RECORD_KINDS["linear"], size=lin.size + li.size,
                                in_features=head.in_features, out_features=head.out_features,
                                activation=_HEAD_ACTS[head.activation], weight=w, bias=b)
                       + li.pack(out_scale=head.out_scale, m_o=m_o, e_o=e_o))
    assert [len(r) for r in records] == sizes
    header = hdr.pack(magic=_C["MAGIC"], version=_C["V2"], file_size=blob.pos, crc32=0, header_size=hdr.size,
                      precision=PRECISION_INT, input_size=cells[0].input_size, num_records=len(records),
                      records_size=records_size, flags=0)
    body = header + b"".join(records)
    body += b"\0" * (blob.start - len(body))
    data = _finish([body] + blob.parts, blob.pos)
    from rnncore.io.rnc import _Loader

    _Loader(data).load()   # what the writer promises: every check of the C loader passes
    return data


def read_int_rnc(data: bytes) -> Any:
    """The :class:`~rnncore.quant.integer.IntModel` of a precision-3 ``.rnc`` file.

    Raises
    ------
    RncFormatError
        (a ``ValueError``) with the C loader's line for a file it refuses, or a ``ValueError`` for
        a valid file of another precision.
    """
    from rnncore.io.rnc import read_rnc

    d = read_rnc(data)
    if d["precision"] != "int8":
        raise ValueError(f"read_int_rnc: expected an integer (precision int8) file, got {d['precision']}")
    return d["int_model"]
