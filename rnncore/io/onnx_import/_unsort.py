"""The batch sort of ``pack_padded_sequence(..., enforce_sorted=False)`` in a ``torch.onnx.export``
graph, recognised and dropped.

The classic exporter writes, for a packed sequence whose lengths need not be sorted::

    I = TopK(lengths, K = Shape(lengths)[-1]).indices      # a permutation of the batch
    S = TopK(...).values                                   # lengths[I]
    x_sorted = Gather(x, I, axis = batch)
    Y, Y_h = GRU(..x_sorted.., sequence_lens = S)          # Transposes / Reshapes around it
    inv = ScatterElements(zeros(n), I, arange(n))          # inv[I[i]] = i: I's inverse
    y = Gather(Y.., inv, axis = batch);  h_n = Gather(Y_h, inv, axis = 1)

A recurrent node is equivariant under a batch permutation ``P`` that permutes its inputs and its
``sequence_lens`` alike (each sequence is run on its own): ``node(P x, P L) = P node(x, L)``, so
``inv`` applied after it gives ``node(x, L)``, which rnncore runs itself (``sequence_lens`` in any
order). :func:`drop_length_sort` rewrites the Gathers into ``Identity`` nodes and ``S`` into the
lengths, but only when this is proven from the graph's structure:

- the TopK reads a 1-axis integer graph input (through integer ``Cast``\\ s) and its ``K`` is that
  tensor's length (``Gather(Shape(lengths), -1 or 0)``), so ``I`` is a permutation of the batch;
- ``S`` feeds only recurrent nodes' ``sequence_lens`` (through integer ``Cast``\\ s);
- ``I`` feeds only ``Gather``\\ s (the batch in sorted order) and ``ScatterElements(zeros(n), I,
  arange(n), axis=0)`` (the inverse), whose output feeds only ``Gather``\\ s;
- every tensor in sorted order is followed node by node, keeping track of its batch axis,
  through ``Transpose``, ``Squeeze``, ``Unsqueeze``, ``Reshape`` (copying the axes up to the
  batch's), ``Slice`` and ``Concat`` (constant bounds, not on the batch axis), ``Identity`` /
  ``Cast`` / ``Dropout``, and recurrent nodes (its ``X`` with the batch on the node's batch axis,
  its ``sequence_lens`` ``S``, its initial states in sorted order or a ``ConstantOfShape`` fill,
  the same for every sequence); ``Shape`` / ``Size`` of it are order-free. It must reach the
  inverse ``Gather`` on its batch axis.

Anything else is refused naming the node.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._values import _Refused

_RECURRENT = ("RNN", "GRU", "LSTM")
_INT_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)     # TensorProto u8, i8, u16, i16, i32, i64, u32, u64
_PASS = ("Identity", "Cast", "Dropout")


def _refuse(node, why: str):
    raise _Refused(f"from_onnx: node {node.name or '?'!r} ({node.op_type}): {why} (the batch sort "
                   "torch.onnx.export writes for pack_padded_sequence(enforce_sorted=False) is dropped "
                   "only when the graph proves it is undone by its inverse)")


class _Graph:
    def __init__(self, g):
        from onnx import numpy_helper

        self.g = g
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.consumers: dict = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = {i.name: i for i in g.input if i.name not in self.consts}
        self.outputs = {o.name for o in g.output}

    def const(self, name: str):
        """The constant value of ``name`` (an initializer or a ``Constant`` node), else None."""
        from onnx import helper, numpy_helper

        if name in self.consts:
            return self.consts[name]
        n = self.producer.get(name)
        if n is None or n.op_type != "Constant" or len(n.attribute) != 1:
            return None
        a = n.attribute[0]
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(a), dtype=np.int64)
        return None

    def uses(self, name: str) -> list:
        return self.consumers.get(name, [])


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _int_casts_back(G: _Graph, name: str) -> str:
    """Follow integer ``Cast``\\ s (and ``Identity``) back from ``name``."""
    while True:
        n = G.producer.get(name)
        if n is None or n.op_type not in ("Cast", "Identity"):
            return name
        if n.op_type == "Cast" and _attr(n, "to") not in _INT_TYPES:
            return name
        name = n.input[0]


def _int_casts_forward(G: _Graph, name: str) -> tuple[set, list]:
    """``name`` and every tensor computed from it by integer ``Cast``\\ s / ``Identity``; and the
    other nodes reading any of them."""
    names, others, todo = {name}, [], [name]
    while todo:
        for n in G.uses(todo.pop()):
            if n.op_type == "Identity" or (n.op_type == "Cast" and _attr(n, "to") in _INT_TYPES):
                names.add(n.output[0])
                todo.append(n.output[0])
            else:
                others.append(n)
    return names, others


def _is_fill(G: _Graph, name: str) -> bool:
    """``name`` is a ``ConstantOfShape`` fill (through the shape-only ops torch writes after it):
    every batch row the same, whatever the order."""
    while True:
        n = G.producer.get(name)
        if n is None:
            return False
        if n.op_type == "ConstantOfShape":
            return True
        if n.op_type not in ("Slice", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Identity", "Cast"):
            return False
        name = n.input[0]


def _axes(G: _Graph, node) -> list | None:
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = G.const(node.input[1])
        axes = None if v is None else v.reshape(-1).tolist()
    return None if axes is None else [int(a) for a in axes]


def _slice_axes(G: _Graph, node) -> list | None:
    """The axes a ``Slice`` (opset 10+) cuts, all its bounds constant; None if not known."""
    if len(node.input) < 3 or any(G.const(i) is None for i in node.input[1:] if i):
        return None
    if len(node.input) > 3 and node.input[3]:
        axes = [int(a) for a in G.const(node.input[3]).reshape(-1)]
    else:
        axes = list(range(G.const(node.input[1]).size))
    return axes if all(a >= 0 for a in axes) else None


def _one_sort(model, topk) -> None:
    """Check the sort ``topk`` and its inverse (refusing what is not proven) and rewrite them."""
    from onnx import helper

    G = _Graph(model.graph)
    lengths = _int_casts_back(G, topk.input[0])
    li = G.inputs.get(lengths)
    dims = li.type.tensor_type.shape.dim if li is not None else []
    if li is None or li.type.tensor_type.elem_type not in _INT_TYPES or len(dims) != 1:
        _refuse(topk, f"expected it to sort a 1-axis integer graph input (the lengths), received "
                      f"{topk.input[0]!r} computed from {lengths!r}")
    if _attr(topk, "axis", -1) not in (-1, 0):
        _refuse(topk, f"expected axis -1 or 0 of the lengths, received {_attr(topk, 'axis')}")
    # K: the whole length of the lengths, so the indices are a permutation of the batch
    kn = G.producer.get(topk.input[1]) if len(topk.input) > 1 else None
    sn = G.producer.get(kn.input[0]) if kn is not None and kn.op_type == "Gather" else None
    kidx = G.const(kn.input[1]) if sn is not None else None
    if (sn is None or sn.op_type != "Shape" or _int_casts_back(G, sn.input[0]) != lengths
            or kidx is None or kidx.size != 1 or int(kidx.reshape(-1)[0]) not in (-1, 0)
            or _attr(sn, "start") is not None or _attr(sn, "end") is not None):
        _refuse(topk, "expected K = Gather(Shape(lengths), -1): all of the lengths, sorted")
    values, indices = topk.output[0], topk.output[1]
    sorted_lens, others = _int_casts_forward(G, values)
    for n in others:
        if n.op_type not in _RECURRENT or any(i in sorted_lens for k, i in enumerate(n.input) if k != 4):
            _refuse(n, f"reads the sorted lengths {values!r}: expected only recurrent nodes' sequence_lens")
    idx, others = _int_casts_forward(G, indices)
    forward, inverse_nodes = [], []
    shapes = [n for n in others if n.op_type == "Shape" and n.input[0] in idx
              and _attr(n, "start") is None and _attr(n, "end") is None]     # (n,): the batch size
    size_of = {n.output[0] for n in shapes}
    shape_ids = {id(n) for n in shapes}
    for n in others:
        if id(n) in shape_ids:
            continue
        if n.op_type == "Gather" and n.input[1] in idx and n.input[0] not in idx:
            if _attr(n, "axis", 0) < 0:
                _refuse(n, f"expected the batch's axis as a nonnegative number, received {_attr(n, 'axis')}")
            forward.append(n)
        elif n.op_type == "ScatterElements" and n.input[1] in idx and n.input[0] not in idx \
                and n.input[2] not in idx:
            data, upd = G.const(n.input[0]), G.const(n.input[2])
            constant = (data is not None and upd is not None and data.ndim == 1 and upd.shape == data.shape
                        and np.array_equal(upd, np.arange(data.size)))
            dynamic = _fill_of(G, n.input[0], size_of) and _arange_of(G, n.input[2], size_of)
            if (not (constant or dynamic) or _attr(n, "axis", 0) != 0
                    or _attr(n, "reduction", b"none") not in (b"none", "none")):
                _refuse(n, "expected ScatterElements(zeros(n), indices, arange(n), axis=0): the inverse "
                           "of the sort's permutation")
            inverse_nodes.append(n)
        else:
            _refuse(n, f"reads the sort's indices {indices!r}: expected only Gathers of the batch and "
                       "the ScatterElements of their inverse")
    if not forward or not inverse_nodes:
        _refuse(topk, "expected a Gather of the batch by its indices and a ScatterElements of their inverse")
    inverse = {n.output[0] for n in inverse_nodes}
    backward = []
    for v in inverse:
        for n in G.uses(v):
            if n.op_type != "Gather" or n.input[1] != v or n.input[0] == v:
                _refuse(n, f"reads the inverse permutation {v!r}: expected only Gathers of the batch")
            backward.append(n)
    # follow the batch in sorted order: tensor -> its batch axis
    tag = {n.output[0]: _attr(n, "axis", 0) for n in forward}
    back_ids = {id(n) for n in backward}
    fwd_ids = {id(n) for n in forward}
    for n in model.graph.node:
        if id(n) in fwd_ids:
            continue
        ins = [i for i in n.input if i in tag]
        if id(n) in back_ids:
            b = tag.get(n.input[0])
            if b is None or _attr(n, "axis", 0) != b:
                _refuse(n, f"expected the inverse Gather of a tensor in sorted order on its batch axis "
                           f"{b}, received {n.input[0]!r} on axis {_attr(n, 'axis', 0)}")
            continue
        if n.op_type in _RECURRENT:
            _recurrent(G, n, tag, sorted_lens)
            continue
        if not ins:
            continue
        b = tag[ins[0]]
        op = n.op_type
        if op in ("Shape", "Size"):
            continue
        if op in _PASS and n.input[0] in tag:
            tag[n.output[0]] = b
        elif op == "Transpose" and n.input[0] in tag and _attr(n, "perm") is not None:
            tag[n.output[0]] = list(_attr(n, "perm")).index(b)
        elif op == "Squeeze" and n.input[0] in tag and (ax := _axes(G, n)) is not None \
                and all(a >= 0 for a in ax) and b not in ax:
            tag[n.output[0]] = b - sum(a < b for a in ax)
        elif op == "Unsqueeze" and n.input[0] in tag and (ax := _axes(G, n)) is not None \
                and all(a >= 0 for a in ax):
            for a in sorted(ax):
                b += a <= b
            tag[n.output[0]] = b
        elif op == "Reshape" and n.input[0] in tag and not _attr(n, "allowzero", 0) \
                and (s := G.const(n.input[1])) is not None and s.size > b \
                and all(int(v) == 0 for v in s.reshape(-1)[:b + 1]):
            tag[n.output[0]] = b
        elif op == "Slice" and n.input[0] in tag and (ax := _slice_axes(G, n)) is not None and b not in ax:
            tag[n.output[0]] = b
        elif op == "Concat" and all(i in tag and tag[i] == b for i in n.input) \
                and _attr(n, "axis") not in (b, None) and _attr(n, "axis") >= 0:
            tag[n.output[0]] = b
        else:
            _refuse(n, f"reads {ins[0]!r}, the batch in the order of the length sort {topk.name!r}: "
                       "expected Transpose, Squeeze, Unsqueeze, Reshape, Slice or Concat keeping the batch "
                       "axis, Shape or a recurrent node before the inverse Gather")
    left = sorted(set(tag) & G.outputs)
    if left:
        _refuse(topk, f"graph output {left[0]!r} is in the sorted batch order (no inverse Gather)")
    # rewrite: the Gathers become Identity, the sorted lengths the lengths
    for n in forward + backward:
        n.CopyFrom(helper.make_node("Identity", [n.input[0]], [n.output[0]], name=n.name))
    for n in shapes:                # the batch size: the lengths' shape is the indices'
        n.input[0] = topk.input[0]
    topk.CopyFrom(helper.make_node("Identity", [topk.input[0]], [values], name=topk.name))
    _prune(model.graph)


def _fill_of(G: _Graph, name: str, size_of: set) -> bool:
    """``name`` is ``ConstantOfShape(Shape(indices))``: a vector of the batch's size (its values do
    not matter: the scatter of a permutation writes every element)."""
    n = G.producer.get(name)
    return n is not None and n.op_type == "ConstantOfShape" and n.input[0] in size_of


def _arange_of(G: _Graph, name: str, size_of: set) -> bool:
    """``name`` is ``Range(0, n, 1)`` with ``n`` the batch size read from ``Shape(indices)``
    (``ReduceProd`` of it, or its element 0 / -1, through integer casts / ``Squeeze``)."""
    n = G.producer.get(name)
    if n is None or n.op_type != "Range" or len(n.input) != 3:
        return False
    start, delta = G.const(n.input[0]), G.const(n.input[2])
    if start is None or delta is None or start.size != 1 or delta.size != 1 \
            or int(start.reshape(-1)[0]) != 0 or int(delta.reshape(-1)[0]) != 1:
        return False
    limit = n.input[1]
    while (p := G.producer.get(limit)) is not None and p.op_type in ("Cast", "Identity", "Squeeze"):
        limit = p.input[0]
    if p is None:
        return False
    if p.op_type == "ReduceProd":
        return p.input[0] in size_of
    k = G.const(p.input[1]) if p.op_type == "Gather" and len(p.input) > 1 else None
    return k is not None and k.size == 1 and int(k.reshape(-1)[0]) in (0, -1) and p.input[0] in size_of


def _recurrent(G: _Graph, n, tag: dict, sorted_lens: set) -> None:
    layout = _attr(n, "layout", 0)
    xb = 0 if layout else 1
    x_sorted = n.input[0] in tag
    lens = n.input[4] if len(n.input) > 4 and n.input[4] else None
    if not x_sorted:
        if lens in sorted_lens or any(i in tag for i in n.input):
            _refuse(n, "reads the sorted lengths or states but not its X in the sorted batch order")
        return
    if tag[n.input[0]] != xb:
        _refuse(n, f"reads X {n.input[0]!r} sorted along axis {tag[n.input[0]]}, expected its batch "
                   f"axis {xb}")
    if lens not in sorted_lens:
        _refuse(n, f"reads X in the sorted batch order and sequence_lens {lens!r}, expected the sorted "
                   "lengths")
    for k in (1, 2, 3, 7):
        if len(n.input) > k and n.input[k] in tag:
            _refuse(n, f"input {k} {n.input[k]!r} is in the sorted batch order, expected a constant")
    for k in (5, 6):
        v = n.input[k] if len(n.input) > k else ""
        if v and not (tag.get(v) == xb or _is_fill(G, v)):
            _refuse(n, f"initial state {v!r}: expected it in the sorted batch order (batch axis {xb}) or a "
                       "ConstantOfShape fill")
    outs = list(n.output)
    for k, b in ((0, 0 if layout else 2), (1, 0 if layout else 1), (2, 0 if layout else 1)):
        if len(outs) > k and outs[k]:
            tag[outs[k]] = b


def _prune(g) -> None:
    """Drop the nodes no graph output needs any more (the sort's K, casts of its indices, the
    ScatterElements and, in a dynamic-batch export, the ConstantOfShape / Range / ReduceProd of the
    indices' shape it read), keeping every other node."""
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [k for k, n in enumerate(g.node) if not any(o in used for o in n.output if o)
                and n.op_type in ("Shape", "Gather", "Cast", "Constant", "ScatterElements", "Identity",
                                  "ConstantOfShape", "Range", "ReduceProd", "Squeeze")]
        if not dead:
            return
        for k in reversed(dead):
            del g.node[k]


def drop_length_sort(model):
    """``model`` with the batch sort of ``pack_padded_sequence(enforce_sorted=False)`` and its
    inverse dropped (a copy; the model itself when it has no ``TopK``).

    Raises
    ------
    ValueError naming the node when a ``TopK`` whose values feed recurrent nodes' ``sequence_lens``
    is not such a sort provably undone by its inverse.
    """
    import onnx

    if not any(n.op_type == "TopK" for n in model.graph.node):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 1)
    while (topk := next((n for n in m.graph.node if n.op_type == "TopK" and _is_length_sort(m, n)),
                        None)) is not None:
        if opset < 11:
            _refuse(topk, f"a TopK of integer lengths at opset {opset}: TopK reads only floats before "
                          "opset 11 (onnxruntime refuses this graph): export with opset 11 or later")
        if len(topk.output) != 2 or len(topk.input) != 2:
            _refuse(topk, "expected TopK(lengths, K) with values and indices")
        _one_sort(m, topk)
    return m


def _is_length_sort(model, topk) -> bool:
    """The TopK's values feed a recurrent node's ``sequence_lens`` (another TopK is left to the
    importers, which refuse it by name in the graph they import)."""
    names, readers = _int_casts_forward(_Graph(model.graph), topk.output[0])
    return any(n.op_type in _RECURRENT and len(n.input) > 4 and n.input[4] in names for n in readers)
