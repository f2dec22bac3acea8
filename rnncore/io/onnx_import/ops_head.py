"""Heads and pooling after the recurrent layers: ``Gemm``, ``MatMul`` + ``Add``, ``ReduceMean``
over time, ``ReduceSum`` over time divided by the recurrent nodes' ``sequence_lens`` (the masked
mean; ``GlobalAveragePool`` of channels-first data too), ``ReduceMax`` over time and ``GlobalMaxPool``
of channels-first data (the masked max), a
final ``Softmax`` / ``Sigmoid`` (kept as a layer, or dropped with
``strip_final_activation``), and constant arithmetic."""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._registry import register
from rnncore.io.onnx_import._values import _known, _Lens, _Seq, _SumT, _Sym


def _linear(imp, node, s, weight, bias):
    if s.sizes[-1] is not None and s.sizes[-1] != weight.shape[1]:
        imp.refuse(node, f"weight {weight.shape} does not fit {s.sizes[-1]} features")
    pipe = imp.add_layer(s.pipe, {"kind": "linear", "weight": weight, "bias": bias})
    return _Seq(s.axes, s.sizes[:-1] + (weight.shape[0],), pipe)


@register("Gemm")
def op_gemm(imp, node, ins, a):
    s = imp.data(ins[0], node)
    if a.get("transA", 0):
        imp.refuse(node, "transA=1")
    Bm = imp.const(ins[1], node, "B").astype(np.float64) * float(a.get("alpha", 1.0))
    weight = Bm if a.get("transB", 0) else Bm.T
    bias = None
    if len(ins) > 2 and ins[2] is not None:
        C = imp.const(ins[2], node, "C").astype(np.float64) * float(a.get("beta", 1.0))
        if C.size not in (1, weight.shape[0]) or (C.ndim == 2 and C.shape[0] != 1):
            imp.refuse(node, f"bias C of shape {C.shape} is not per output")
        bias = np.broadcast_to(C.reshape(-1), (weight.shape[0],)).copy()
    return [_linear(imp, node, s, weight, bias)]


@register("MatMul")
def op_mat_mul(imp, node, ins, a):
    s = imp.data(ins[0], node)
    Wm = imp.const(ins[1], node, "the second operand").astype(np.float64)
    if Wm.ndim != 2:
        imp.refuse(node, "matmul with a weight that is not a matrix")
    return [_linear(imp, node, s, Wm.T, None)]


@register("Add")
def op_add(imp, node, ins, a):
    if all(isinstance(v, np.ndarray) for v in ins):
        return [ins[0] + ins[1]]
    if isinstance(ins[0], np.ndarray):
        ins = ins[::-1]
    s, b = imp.data(ins[0], node), imp.const(ins[1], node, "the addend")
    last = imp.layers[s.pipe[-1]] if s.pipe else None
    if last is None or last["kind"] != "linear" or last["bias"] is not None:
        imp.refuse(node, "add that is not the bias of a MatMul")
    b = np.asarray(b, np.float64)
    if b.size not in (1, last["weight"].shape[0]):
        imp.refuse(node, f"bias of shape {b.shape} is not per output")
    layer = dict(last, bias=np.broadcast_to(b.reshape(-1), (last["weight"].shape[0],)).copy())
    return [_Seq(s.axes, s.sizes, imp.add_layer(s.pipe[:-1], layer))]


@register("Softmax", "LogSoftmax", "Sigmoid")
def op_final_activation(imp, node, ins, a):
    s = imp.data(ins[0], node)
    outputs = {o.name for o in imp.g.output}
    axis = int(a.get("axis", -1))
    last_axis = node.op_type == "Sigmoid" or axis in (-1, len(s.axes) - 1)
    head = s.pipe and imp.layers[s.pipe[-1]]["kind"] == "linear"
    if not (node.output[0] in outputs and last_axis and head):
        imp.refuse(node, "activation on the data (only a final softmax/sigmoid over the features "
                          "right after the head is imported)")
    if imp.strip:
        imp.stripped.append(node.op_type)
        return [s]
    from rnncore.nn.pointwise import LogSoftmax, Sigmoid, Softmax

    act = {"Softmax": Softmax, "LogSoftmax": LogSoftmax, "Sigmoid": Sigmoid}[node.op_type]()
    return [_Seq(s.axes, s.sizes, imp.add_layer(s.pipe, {"kind": "module", "module": act}))]


def _const_binary(imp, node, ins, fn):
    ins = [_known(v) for v in ins]
    if all(isinstance(v, np.ndarray) for v in ins):
        return [fn(ins[0], ins[1])]
    imp.refuse(node, "element-wise arithmetic on the model's data is not supported")


@register("Sub")
def op_sub(imp, node, ins, a):
    return _const_binary(imp, node, ins, np.subtract)


@register("Mul")
def op_mul(imp, node, ins, a):
    return _const_binary(imp, node, ins, np.multiply)


@register("Div")
def op_div(imp, node, ins, a):
    if isinstance(ins[0], _SumT):
        return [_masked_mean(imp, node, ins[0], ins[1])]
    return _const_binary(imp, node, ins, lambda x, y: x // y if x.dtype.kind in "iu" else x / y)


@register("ReduceMean")
def op_reduce_mean(imp, node, ins, a):
    s = imp.data(ins[0], node)
    axes = imp.axes_arg(node, ins, a)
    if (axes is None or len(axes) != 1 or imp.lab(s.axes[axes[0] % len(s.axes)]) != "T"
            or a.get("keepdims", 1) or len(s.axes) != 3):
        imp.refuse(node, "ReduceMean other than the mean over time (keepdims=0)")
    keep = [i for i in range(3) if i != axes[0] % 3]
    return [_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep),
                 imp.add_layer(s.pipe, {"kind": "pool", "pool": "mean", "bidirectional": False}))]


def _max_pool(imp, node, s, axis: int, keep: bool, pool: str = "max"):
    """``rc.nn.MaskedMax`` (``pool`` "mean": ``MaskedMean``) over the time axis ``axis`` of ``s``;
    ``keep`` (keepdims=1): the axis stays as one of size 1 (``'T1'``) until a ``Squeeze`` (or
    ``Flatten``) drops it."""
    layer = {"kind": "pool", "pool": pool, "bidirectional": False, "node": node.name or "?",
             "op": node.op_type}
    pipe = imp.add_layer(s.pipe, layer)
    if keep:
        return _Seq(tuple("T1" if i == axis else x for i, x in enumerate(s.axes)),
                    tuple(1 if i == axis else z for i, z in enumerate(s.sizes)), pipe)
    rest = [i for i in range(len(s.axes)) if i != axis]
    return _Seq(tuple(s.axes[i] for i in rest), tuple(s.sizes[i] for i in rest), pipe)


@register("ReduceMax")
def op_reduce_max(imp, node, ins, a):
    """The maximum over time (``axes`` the time axis alone; ``keepdims`` 0, or 1 then a ``Squeeze``):
    ``rc.nn.MaskedMax``, the maximum over each sequence's valid steps (the engine's lengths)."""
    s = imp.data(ins[0], node)
    axes = imp.axes_arg(node, ins, a)
    labels = tuple(imp.lab(x) for x in s.axes)
    if int(a.get("noop_with_empty_axes", 0)):
        imp.refuse(node, "noop_with_empty_axes=1: expected the maximum over the time axis (axes given, "
                         "noop_with_empty_axes=0)")
    if axes is None or len(axes) != 1 or len(s.axes) != 3 or not -3 <= axes[0] < 3 \
            or labels[axes[0] % 3] != "T":
        imp.refuse(node, f"ReduceMax over axes {axes} of data with axes {labels}: expected the maximum over "
                         "the time axis 'T' alone of (B, T, F), (T, B, F) or (B, F, T) data")
    return [_max_pool(imp, node, s, axes[0] % 3, bool(int(a.get("keepdims", 1))))]


@register("GlobalMaxPool")
def op_global_max_pool(imp, node, ins, a):
    """``GlobalMaxPool`` of channels-first ``(N, C, L)`` data whose last axis is time (torch's
    ``F.adaptive_max_pool1d(y.transpose(1, 2), 1)`` exported with a dynamic time axis):
    ``rc.nn.MaskedMax``, the pooled axis kept as one of size 1 until a ``Squeeze``."""
    s = imp.data(ins[0], node)
    labels = tuple(imp.lab(x) for x in s.axes)
    if len(s.axes) != 3 or labels[2] != "T" or labels[1] != "F":
        imp.refuse(node, f"pools data with axes {labels}: expected channels-first (B, F, T) data, its last "
                         "axis the time axis (a Transpose of the recurrent output before it)")
    return [_max_pool(imp, node, s, 2, True)]


@register("GlobalAveragePool")
def op_global_average_pool(imp, node, ins, a):
    """``GlobalAveragePool`` of channels-first ``(N, C, L)`` data whose last axis is time (torch's
    ``F.adaptive_avg_pool1d(y.transpose(1, 2), 1)`` / ``nn.AdaptiveAvgPool1d(1)`` exported with a
    dynamic time axis): ``rc.nn.MaskedMean``, the pooled axis kept as one of size 1 until a
    ``Squeeze``. After nodes run with ``sequence_lens`` it is refused naming the node
    (:func:`~rnncore.io.onnx_import._core._check_padding_stays_zero`)."""
    s = imp.data(ins[0], node)
    labels = tuple(imp.lab(x) for x in s.axes)
    if len(s.axes) != 3 or labels[2] != "T" or labels[1] != "F":
        imp.refuse(node, f"pools data with axes {labels}: expected channels-first (B, F, T) data, its last "
                         "axis the time axis (a Transpose of the recurrent output before it)")
    return [_max_pool(imp, node, s, 2, True, "mean")]


@register("Flatten")
def op_flatten(imp, node, ins, a):
    """Only ``Flatten(axis=1)`` of pooled ``(B, F, 1)`` / ``(B, 1, F)`` data (the time axis a pooling
    kept, ``'T1'``): ``(B, F)``."""
    v = ins[0]
    if isinstance(v, np.ndarray):
        k = int(a.get("axis", 1)) % (v.ndim or 1)
        return [v.reshape(int(np.prod(v.shape[:k])), -1)]
    s = imp.data(v, node)
    labels = tuple(imp.lab(x) for x in s.axes)
    if len(s.axes) != 3 or int(a.get("axis", 1)) != 1 or "T1" not in labels or labels[0] != "B":
        imp.refuse(node, f"flattens data with axes {labels} from axis {int(a.get('axis', 1))}: expected "
                         "(B, F, 1) or (B, 1, F) data, a pooling's kept time axis, from axis 1")
    keep = [i for i in range(3) if labels[i] != "T1"]
    return [_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep), s.pipe)]


@register("ReduceSum")
def op_reduce_sum(imp, node, ins, a):
    """Only as the numerator of the masked mean (``Div`` by the lengths, :func:`_masked_mean`)."""
    s = imp.data(ins[0], node)
    axes = imp.axes_arg(node, ins, a)
    if (axes is None or len(axes) != 1 or imp.lab(s.axes[axes[0] % len(s.axes)]) != "T"
            or a.get("keepdims", 1) or len(s.axes) != 3):
        imp.refuse(node, "ReduceSum other than the sum over time (keepdims=0)")
    keep = [i for i in range(3) if i != axes[0] % 3]
    return [_SumT(_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep), s.pipe), node.name)]


def _masked_mean(imp, node, total, by):
    """``ReduceSum`` over time of the last recurrent node's output (zeros past each sequence's
    length: the nodes read ``sequence_lens``) divided by those lengths as a column ``(B, 1)``: the
    mean over each sequence's valid steps, rnncore's masked mean with the engine's lengths."""
    if not isinstance(by, _Lens) or imp.lengths is None or by.name != imp.lengths or not by.column:
        if isinstance(by, _Lens):
            got = f"the graph input {by.name!r}" + ("" if by.column else " (batch,), not a column (batch, 1)")
        elif isinstance(by, _Sym):
            got = f"the shape value {[imp.lab(i) if isinstance(i, str) else i for i in by.items]}"
        elif isinstance(by, np.ndarray | np.generic):
            got = f"a constant of shape {np.shape(by)}"
        else:
            got = f"a {type(by).__name__.strip('_')} value"
        want = (f"the recurrent nodes' sequence_lens {imp.lengths!r} as a column (lengths[:, None])"
                if imp.lengths is not None else "the recurrent nodes' sequence_lens (they read none)")
        imp.refuse(node, f"divides the sum over time from {total.node!r} by {got}: expected {want}, "
                         "the mean over each sequence's valid steps")
    if not any(imp.layers[i]["kind"] == "rnn" for i in total.seq.pipe):
        imp.refuse(node, f"divides the sum over time from {total.node!r} of data no recurrent node "
                         "produced by the lengths: expected a recurrent node's output, zero past each length")
    s = total.seq
    layer = {"kind": "pool", "pool": "mean", "bidirectional": False, "over": "lengths"}
    return _Seq(s.axes, s.sizes, imp.add_layer(s.pipe, layer))
