"""Graph plumbing around the recurrent nodes: shapes, constants, transposes, reshapes, slices.

Each handler understands what ``torch.onnx.export`` and friends write around an RNN (zero
initial states built from ``Shape`` / ``ConstantOfShape``, the direction axis moved into the
features, the last step picked, an embedding lookup) and refuses anything else by name.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._registry import register
from rnncore.io.onnx_import._values import (
    _Final,
    _FinalCat,
    _Input,
    _known,
    _Lens,
    _Seq,
    _StateIn,
    _Sym,
    _Zeros,
)


@register("Transpose")
def op_transpose(imp, node, ins, a):
    v = ins[0]
    perm = a.get("perm")
    if isinstance(v, np.ndarray):
        return [np.transpose(v, perm)]
    if isinstance(v, _Final):
        return [_Final(v.entries, tuple(v.axes[p] for p in perm))]
    s = imp.data(v, node)
    perm = perm if perm is not None else list(range(len(s.axes)))[::-1]
    return [_Seq(tuple(s.axes[p] for p in perm), tuple(s.sizes[p] for p in perm), s.pipe, s.integer)]


@register("Squeeze")
def op_squeeze(imp, node, ins, a):
    v, axes = ins[0], imp.axes_arg(node, ins, a)
    if isinstance(v, np.ndarray):
        return [np.squeeze(v, axis=None if axes is None else tuple(axes))]
    if isinstance(v, _Sym):
        return [_Sym(v.items, scalar=True)]
    if isinstance(v, _Zeros):
        return [v]
    if isinstance(v, _Final):
        if axes is None or len(axes) != 1 or v.axes[axes[0] % len(v.axes)] != "S" or len(v.entries) != 1:
            imp.refuse(node, "squeeze of final states other than a single direction's stack axis")
        return [_FinalCat(list(v.entries))]
    s = imp.data(v, node)
    if axes is None:
        axes = [i for i, z in enumerate(s.sizes) if z == 1]
    axes = sorted(x % len(s.axes) for x in axes)
    keep = [i for i in range(len(s.axes)) if i not in axes]
    for i in axes:
        if not (s.axes[i] in ("D", "T1") and s.sizes[i] == 1):
            imp.refuse(node, f"squeezes axis {imp.lab(s.axes[i])!r} of the data")
    new_axes = tuple("F" if s.axes[i] == "H" else s.axes[i] for i in keep)
    return [_Seq(new_axes, tuple(s.sizes[i] for i in keep), s.pipe)]


@register("Unsqueeze")
def op_unsqueeze(imp, node, ins, a):
    v, axes = ins[0], imp.axes_arg(node, ins, a)
    if isinstance(v, np.ndarray):
        out = v
        for ax in sorted(axes):
            out = np.expand_dims(out, ax)
        return [out]
    if isinstance(v, _Sym) and v.scalar and axes in ([0], [-1]):
        return [_Sym(v.items, scalar=False)]
    if isinstance(v, _FinalCat) and len(v.entries) == 1 and axes == [0]:
        return [_Final(v.entries, ("S", "B", "H"))]
    lens = _Lens(v.name) if isinstance(v, _Input) and v.integer and len(v.shape) == 1 else v
    if isinstance(lens, _Lens) and not lens.column and axes in ([1], [-1]):
        return [_Lens(lens.name, column=True)]     # lengths[:, None]
    imp.refuse(node, "unsqueeze of the model's data")


@register("Reshape")
def op_reshape(imp, node, ins, a):
    v, shape = _known(ins[0]), _known(ins[1])
    if isinstance(v, np.ndarray) and isinstance(shape, np.ndarray):
        return [v.reshape(shape)]
    if isinstance(v, _Sym) and isinstance(shape, np.ndarray) and shape.size <= 1:
        return [_Sym(v.items, scalar=shape.size == 0)]
    s = imp.data(v, node)
    items = list(shape.tolist()) if isinstance(shape, np.ndarray) else (
        shape.items if isinstance(shape, _Sym) else imp.refuse(node, "reshape to a computed shape"))
    n = len(s.axes)
    # only: merge the trailing (D, H) axes into one feature axis. The leading items may be 0
    # (copy), the axis' label (from Shape), its size, or one -1; a positive number on a batch
    # or time axis is a size the exporter specialised to (the product still fixes the layout).
    if len(items) == n - 1 and tuple(s.axes[-2:]) == ("D", "H"):
        F = s.sizes[-2] * s.sizes[-1]
        lead = items[:-1]
        ok = items[-1] == F or (items[-1] == -1 and -1 not in lead)
        ok = ok and sum(1 for it in lead if it == -1) <= 1
        for i, it in enumerate(lead):
            if isinstance(it, str):
                ok = ok and imp.lab(it) == imp.lab(s.axes[i])
            elif s.sizes[i] is not None:
                ok = ok and it in (0, -1, s.sizes[i])
            else:
                ok = ok and (it in (0, -1) or it > 0)
        if ok:
            return [_Seq(s.axes[:-2] + ("F",), s.sizes[:-2] + (F,), s.pipe)]
    imp.refuse(node, f"reshape of data with axes {tuple(imp.lab(x) for x in s.axes)} to {items}")


@register("Gather")
def op_gather(imp, node, ins, a):
    data, idx = ins[0], ins[1]
    axis = int(a.get("axis", 0))
    if isinstance(data, np.ndarray) and isinstance(idx, np.ndarray):
        return [np.take(data, idx, axis=axis)]
    if isinstance(data, _Sym) and isinstance(idx, np.ndarray):
        picked = [data.items[int(i)] for i in np.atleast_1d(idx)]
        return [_Sym(picked, scalar=idx.ndim == 0)]
    if isinstance(data, np.ndarray):                       # embedding lookup
        ids = imp.data(idx, node)
        if not ids.integer or axis != 0 or data.ndim != 2:
            imp.refuse(node, "only an embedding lookup (Gather of a (V, E) table by token ids)")
        pipe = imp.add_layer(ids.pipe, {"kind": "embedding", "weight": data})
        return [_Seq(ids.axes + ("F",), ids.sizes + (data.shape[1],), pipe)]
    if isinstance(data, _Final):
        if not isinstance(idx, np.ndarray) or data.axes[axis % 3] != "S":
            imp.refuse(node, "gather of final states other than along the stack axis")
        picked = [data.entries[int(i)] for i in np.atleast_1d(idx)]
        if idx.ndim == 0:
            return [_FinalCat(picked)]
        return [_Final(picked, data.axes)]
    s = imp.data(data, node)
    idx = imp.const(idx, node, "the index")
    if idx.ndim != 0 or imp.lab(s.axes[axis]) != "T" or int(idx) != -1 or len(s.axes) != 3:
        imp.refuse(node, f"gather of index {idx.tolist()} on data axis {imp.lab(s.axes[axis])!r} "
                          "(only the last time step, index -1, is understood)")
    _refuse_padded_last_step(imp, node)
    layer = {"kind": "pool", "pool": "last", "bidirectional": False}
    keep = [i for i in range(3) if i != axis % 3]
    return [_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep),
                 imp.add_layer(s.pipe, layer))]


def _refuse_padded_last_step(imp, node):
    """``y[:, -1]`` is rnncore's ``LastStep`` only when every sequence runs the whole time axis:
    with ``sequence_lens`` it is the zero padding of the shorter sequences."""
    if imp.lengths is not None:
        imp.refuse(node, "the last time step of outputs computed with sequence_lens is the zero padding of "
                          "sequences shorter than the time axis, not their last valid step (rnncore's "
                          "LastStep); use the node's final state Y_h as the features instead")


@register("Shape")
def op_shape(imp, node, ins, a):
    v = ins[0]
    if isinstance(v, np.ndarray):
        items = list(v.shape)
    else:
        s = imp.data(v, node)
        items = [s.sizes[i] if s.sizes[i] is not None else s.axes[i] for i in range(len(s.axes))]
    start, end = a.get("start", 0), a.get("end", None)
    items = items[start:end]
    if all(isinstance(i, int) for i in items):
        return [np.array(items, np.int64)]
    return [_Sym(items)]


@register("Concat")
def op_concat(imp, node, ins, a):
    axis = int(a["axis"])
    if all(isinstance(v, np.ndarray) for v in ins):
        return [np.concatenate(ins, axis=axis)]
    if all(isinstance(v, _Sym | np.ndarray) for v in ins):
        items = []
        for v in ins:
            items += v.items if isinstance(v, _Sym) else [int(x) for x in np.atleast_1d(v)]
        return [_Sym(items)]
    if all(isinstance(v, _Zeros) for v in ins):
        return [_Zeros()]
    if all(isinstance(v, _Final) for v in ins):
        if len({v.axes for v in ins}) != 1 or ins[0].axes[axis % 3] != "S":
            imp.refuse(node, "concat of final states other than along the stack axis")
        return [_Final([e for v in ins for e in v.entries], ins[0].axes)]
    if all(isinstance(v, _FinalCat) for v in ins) and axis in (1, -1):
        return [_FinalCat([e for v in ins for e in v.entries])]
    imp.refuse(node, "concat of the model's data")


@register("Slice")
def op_slice(imp, node, ins, a):
    v = ins[0]
    if isinstance(v, _Zeros):
        return [v]
    if imp.opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = (imp.const(x, node, "starts/ends").tolist() for x in ins[1:3])
        opt = [imp.const(ins[k], node, "axes/steps").tolist() if len(ins) > k and ins[k] is not None
               else None for k in (3, 4)]
        axes, steps = opt
    if isinstance(v, _Sym):
        return [_Sym(v.items[slice(starts[0], ends[0], steps[0] if steps else 1)])]
    if isinstance(v, np.ndarray):
        sl = [slice(None)] * v.ndim
        for i, ax in enumerate(axes if axes is not None else range(len(starts))):
            sl[ax] = slice(starts[i], ends[i], steps[i] if steps else 1)
        return [v[tuple(sl)]]
    if isinstance(v, _Input) and v.name != imp.main and not v.integer and len(v.shape) == 3:
        # rows of an initial-state input (torch slices h0 per layer)
        ax = axes if axes is not None else list(range(len(starts)))
        n_rows = v.shape[ax[0]] if len(ax) == 1 else None
        if n_rows is None or (steps and steps[0] != 1):
            imp.refuse(node, f"slice of graph input {v.name!r} other than a block of rows of one axis")
        return [_StateIn(v.name, list(range(n_rows))[slice(starts[0], ends[0])], ax[0] % 3)]
    if isinstance(v, _Final):
        ax = axes if axes is not None else list(range(len(starts)))
        if len(ax) != 1 or v.axes[ax[0] % 3] != "S":
            imp.refuse(node, "slice of final states other than along the stack axis")
        return [_Final(v.entries[slice(starts[0], ends[0], steps[0] if steps else 1)], v.axes)]
    s = imp.data(v, node)
    ax = [x % len(s.axes) for x in (axes if axes is not None else range(len(starts)))]
    if (len(ax) == 1 and len(s.axes) == 3 and imp.lab(s.axes[ax[0]]) == "T" and starts[0] == -1
            and ends[0] >= 2**31 - 1 and (not steps or steps[0] == 1)):
        # x[:, -1:] (older opsets write y[:, -1] as this Slice + Squeeze): the last step, kept
        # as an axis of size 1 ('T1') until the Squeeze
        _refuse_padded_last_step(imp, node)
        layer = {"kind": "pool", "pool": "last", "bidirectional": False}
        axes_ = tuple("T1" if i == ax[0] else a for i, a in enumerate(s.axes))
        sizes = tuple(1 if i == ax[0] else z for i, z in enumerate(s.sizes))
        return [_Seq(axes_, sizes, imp.add_layer(s.pipe, layer))]
    imp.refuse(node, "slice of the model's data other than its last time step")


@register("ConstantOfShape")
def op_constant_of_shape(imp, node, ins, a):
    from onnx import numpy_helper

    value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1)
    if isinstance(ins[0], np.ndarray):
        return [np.full(ins[0].astype(np.int64), value.reshape(-1)[0], dtype=value.dtype)]
    if value.any():
        imp.refuse(node, "a non-zero ConstantOfShape with a data-dependent shape")
    return [_Zeros()]


@register("Expand")
def op_expand(imp, node, ins, a):
    if isinstance(ins[0], np.ndarray) and not ins[0].any():
        return [_Zeros()] if not isinstance(ins[1], np.ndarray) else [np.zeros(ins[1].astype(int))]
    imp.refuse(node, "expand of anything but zeros")


@register("Constant")
def op_constant(imp, node, ins, a):
    from onnx import numpy_helper

    if "value" in a:
        return [numpy_helper.to_array(a["value"])]
    for k in ("value_float", "value_int"):
        if k in a:
            return [np.array(a[k])]
    for k in ("value_floats", "value_ints"):
        if k in a:
            return [np.array(a[k])]
    imp.refuse(node, "constant of an unsupported kind")


@register("Identity")
def op_identity(imp, node, ins, a):
    return [ins[0]]


@register("Dropout")
def op_dropout(imp, node, ins, a):
    return [ins[0], None][:len(node.output)]


_INT_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)   # TensorProto u8, i8, u16, i16, i32, i64, u32, u64


@register("Cast")
def op_cast(imp, node, ins, a):
    v = ins[0]
    if isinstance(v, np.ndarray):
        from onnx import helper

        return [v.astype(helper.tensor_dtype_to_np_dtype(a["to"]))]
    if isinstance(v, _Sym | _Zeros):
        return [v]
    if isinstance(v, _Input) and v.integer and len(v.shape) == 1 and a["to"] in _INT_TYPES:
        return [v]     # torch's Cast of pack_padded_sequence's lengths to int32 for sequence_lens
    if isinstance(v, _Input) and v.integer and len(v.shape) == 1 and a["to"] in (1, 11, 10):
        return [_Lens(v.name)]        # lengths.float(): the divisor of a mean over the valid steps
    if isinstance(v, _Lens):
        return [v]
    s = imp.data(v, node)
    if a["to"] not in (1, 11, 10):       # float, double, float16
        imp.refuse(node, "cast of the data to a non-float type")
    return [s]
