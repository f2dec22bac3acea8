"""Whole-graph import: an ONNX graph as a small graph model of rnncore layers.

The pipeline importer (:mod:`._core`) turns a graph that *is* one chain of recurrent layers and
a head into an ``rc.nn`` model the C engine compiles. A real model puts the recurrent layer
between a front-end and a head (Silero VAD: STFT-by-Conv -> Conv/ReLU -> LSTM -> Conv ->
Sigmoid) or between an image CNN and ``view(T*b, h) -> Linear -> view(T, b, -1)`` (CRNN). For
those, :class:`OnnxGraph` keeps the graph's own structure:

* every node whose inputs are all constants (initializers, ``Constant``, and what is computed
  from them) is **folded** at import time;
* the shape arithmetic on the data (``Shape``, ``Gather``, ``Unsqueeze``, ``Concat``, ``Mul``,
  ``Reshape`` ...) is kept as exact integer operations on the data's *actual* shape, evaluated
  when the model runs -- so ``view(T*b, h)`` and ``view(T, b, -1)`` hold for every ``T`` and
  ``b``, not only the export's example sizes;
* the layers become rnncore layers: ``RNN``/``GRU``/``LSTM`` (every ONNX attribute, through
  the same conversion as the pipeline importer), ``Conv`` (1-D: Conv1d; 2-D: :mod:`rnncore.nn.conv2d`),
  ``Gemm`` and ``MatMul`` by a constant (:class:`~rnncore.nn.layers.Linear`),
  ``LayerNormalization`` (:class:`~rnncore.nn.norm.LayerNorm`), ``BatchNormalization``
  (:class:`~rnncore.nn.norm.BatchNorm1d`, inference), ``Relu``/``Sigmoid``/``Tanh``/
  ``HardSigmoid``/``Gelu`` (:mod:`rnncore.nn.pointwise`); the element-wise arithmetic between them
  (``Add``, ``Mul``, ``Pow``, ``Sqrt``, ``Erf``, ``HardSwish``, ``Elu`` ... of the STFT magnitude, a
  residual, a GELU written as nodes) is NumPy.

``OnnxGraph.forward`` takes the graph's inputs (positionally in graph order, or by name) and
returns its outputs in graph order, with the graph's names (:attr:`OnnxGraph.input_names`,
:attr:`OnnxGraph.output_names`) and layouts -- recurrent state inputs and outputs included.
A node rnncore cannot run is refused with its name, its op type and what to do
(``from_onnx(path, inputs=[...], outputs=[...])`` imports the sub-graph between named tensors).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rnncore.io.onnx_import._values import _attrs, _Refused
from rnncore.nn.module import Module, resolve_dtype

# ONNX TensorProto element types -> NumPy (floats become the model's dtype)
_INT_TYPES = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
              9: np.bool_, 12: np.uint32, 13: np.uint64}
_FLOAT_TYPES = (1, 10, 11, 16)


class _Step:
    """One node kept for run time: ``fn(list of input arrays) -> list of output arrays``."""

    __slots__ = ("name", "op", "inputs", "outputs", "fn", "attrs")

    def __init__(self, name: str, op: str, inputs: list, outputs: list, fn: Callable,
                 attrs: dict | None = None) -> None:
        self.name, self.op, self.inputs, self.outputs, self.fn = name, op, inputs, outputs, fn
        self.attrs = {} if attrs is None else attrs   # the node's attributes (lowering reads them)


class OnnxGraph(Module):
    """An imported ONNX (sub-)graph run with rnncore layers (see the module docstring).

    Attributes
    ----------
    input_names, output_names : the graph's input / output tensor names, in graph order
    steps : the nodes kept for run time (constant sub-graphs are folded away)
    """

    def __init__(self, input_names: list, output_names: list, steps: list, consts: dict,
                 dtype: np.dtype) -> None:
        super().__init__()
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.steps = steps
        self.consts = consts
        self.dtype = dtype
        #: the inputs' declared shapes (an int per known axis, None for a symbolic one), where known
        self.input_shapes: dict = {}
        #: the shapes given to ``from_onnx(..., input_shapes=)``: the graph was folded for them and
        #: ``run`` refuses other shapes
        self.fixed_shapes: dict = {}
        #: the inputs' known sizes (declared, or ONNX's shape inference) that shape arithmetic was
        #: folded on (an ``If`` on ``Shape(x)[1] == 1``): ``run`` refuses inputs of other sizes
        self.folded_shapes: dict = {}
        self.unfold_args: tuple = ()     # build_graph's arguments for unfolded()
        self._unfolded = None

    def unfolded(self) -> OnnxGraph:
        """The graph imported without folding on its inputs' declared sizes (its shape arithmetic
        kept at run time, as for a graph whose every size is declared): what ``rc.compile`` lowers
        first, since the C engine runs any batch and length (the folded graph when that one is
        refused); ``self`` when nothing was folded so."""
        if not self.unfold_args:
            return self
        if self._unfolded is None:
            model, dtype, inputs, outputs, constants, shapes = self.unfold_args
            self._unfolded = build_graph(model, dtype, inputs, outputs, constants, shapes,
                                         fold_sizes=False)
        return self._unfolded

    def extra_repr(self) -> str:
        return (f"inputs={self.input_names}, outputs={self.output_names}, "
                f"{len(self.steps)} nodes, dtype='{self.dtype.name}'")

    def run(self, feeds: dict) -> dict:
        """Run the graph: ``feeds`` maps every input name to an array; returns name -> array."""
        missing = [n for n in self.input_names if n not in feeds]
        extra = [n for n in feeds if n not in self.input_names]
        if missing or extra:
            raise ValueError(f"feeds: expected the inputs {self.input_names}, got {sorted(feeds)}"
                             f"{' (missing ' + str(missing) + ')' if missing else ''}")
        vals = dict(self.consts)
        for n in self.input_names:
            v = np.asarray(feeds[n])
            want = self.fixed_shapes.get(n)
            if not _fits(want, v.shape):
                raise ValueError(f"{n}: the graph was imported with input_shapes {{{n!r}: "
                                 f"{tuple('?' if d is None else d for d in want)}}}, got an array of shape "
                                 f"{v.shape}")
            known = self.folded_shapes.get(n)
            if not _fits(known, v.shape):
                raise ValueError(f"{n}: the graph's shape arithmetic was folded for an input of shape "
                                 f"{tuple('?' if d is None else d for d in known)} (its declared sizes), "
                                 f"got an array of shape {v.shape}")
            vals[n] = v.astype(self.dtype) if v.dtype.kind == "f" or v.dtype.name == "bfloat16" else v
        for s in self.steps:
            try:
                outs = s.fn([vals[i] if i else None for i in s.inputs])
            except _Refused:
                raise
            except (ValueError, IndexError) as e:
                raise ValueError(f"OnnxGraph: node {s.name!r} ({s.op}) failed on these inputs: {e}") from e
            for name, v in zip(s.outputs, outs, strict=False):
                if name:
                    vals[name] = v
        return {n: vals[n] for n in self.output_names}

    def forward(self, *args, train: bool = False, **feeds):
        """``forward(*inputs)`` or ``forward(name=array, ...)``: the graph's outputs, in graph order
        (one array when the graph has one output, else a tuple)."""
        if train:
            raise NotImplementedError("OnnxGraph is an inference model (train=False)")
        if args:
            if len(args) > len(self.input_names) or set(self.input_names[:len(args)]) & set(feeds):
                raise TypeError(f"forward: expected the inputs {self.input_names}, got {len(args)} "
                                f"positional and {sorted(feeds)} by name")
            feeds = {**dict(zip(self.input_names, args, strict=False)), **feeds}
        out = self.run(feeds)
        res = tuple(out[n] for n in self.output_names)
        return res[0] if len(res) == 1 else res


# -- NumPy ops on shapes and data ------------------------------------------------------------
def _ints(v) -> list:
    return [int(x) for x in np.atleast_1d(np.asarray(v))]


def _norm_axes(axes, rank: int) -> list:
    return sorted(a + rank if a < 0 else a for a in axes)


class _Builder:
    def __init__(self, model, dtype: str, inputs, outputs, constants=None, input_shapes=None) -> None:
        from onnx import helper, numpy_helper

        self.dt = resolve_dtype(dtype)
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.known: dict = {}
        for v in list(g.input) + list(g.output):
            if v.type.WhichOneof("value") != "tensor_type" or v.type.tensor_type.elem_type == 0:
                raise _Refused(f"from_onnx: graph {'input' if v in g.input else 'output'} {v.name!r} "
                               "must be a tensor of a defined element type")
        self.declared: dict = {}     # tensor name -> declared shape (None for an unknown axis)
        for v in list(g.input) + list(g.value_info) + list(g.output):
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
                self.declared[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                              for d in v.type.tensor_type.shape.dim)
        self.raw: dict = {}          # initializers in their own element type (for type checks)
        for t in g.initializer:
            try:
                self.raw[t.name] = numpy_helper.to_array(t)
                self.known[t.name] = self._const(self.raw[t.name])
            except Exception as e:  # noqa: BLE001 - an unknown element type, data of the wrong size, ...
                raise _Refused(f"from_onnx: initializer {t.name!r} cannot be read "
                               f"({type(e).__name__}: {e})") from e
        init = set(self.known)
        graph_inputs = [i.name for i in g.input if i.name not in init]
        self.constants = dict(constants or {})
        for name, value in (constants or {}).items():    # inputs fixed in use (a sample rate)
            v = next((i for i in g.input if i.name == name and name not in init), None)
            if v is None:
                raise _Refused(f"from_onnx: constants: {name!r} is not an input of the graph (graph inputs: "
                               f"{graph_inputs})")
            arr = np.asarray(value, helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))
            want = self.declared.get(name)
            if want is not None and (len(want) != arr.ndim or any(
                    d not in (None, 0, n) for d, n in zip(want, arr.shape, strict=True))):
                raise _Refused(f"from_onnx: constants: {name!r} is declared of shape "
                               f"{tuple('?' if d is None else d for d in want)}, got an array of shape "
                               f"{arr.shape}")
            self.raw[name] = arr
            self.known[name] = self._const(arr)
            graph_inputs.remove(name)
            init.add(name)
        self.inputs = list(graph_inputs if inputs is None else inputs)
        self.outputs = [o.name for o in g.output] if outputs is None else list(outputs)
        produced = {o for n in g.node for o in n.output if o}
        for name in self.inputs:
            if name not in produced and name not in graph_inputs:
                raise _Refused(f"from_onnx: inputs: {name!r} is no tensor of the graph (graph inputs: "
                               f"{graph_inputs}; or a node's output)")
        for name in self.outputs:
            if name not in produced and name not in graph_inputs and name not in init:
                raise _Refused(f"from_onnx: outputs: {name!r} is no tensor of the graph (graph outputs: "
                               f"{[o.name for o in g.output]}; or a node's output)")
        # the nodes the outputs need, stopping at the chosen inputs
        by_out = {o: n for n in g.node for o in n.output if o}
        need, stack, seen = set(), list(self.outputs), set()
        while stack:
            t = stack.pop()
            if t in seen or t in self.inputs or t in init:
                continue
            seen.add(t)
            n = by_out.get(t)
            if n is None:
                raise _Refused(f"from_onnx: tensor {t!r} is needed for the outputs {self.outputs} but is "
                               f"not computed from the inputs {self.inputs} (add it to inputs=[...])")
            need.add(id(n))
            stack.extend(i for i in list(n.input) + _outer_inputs(n) if i)
        self.nodes = [n for n in g.node if id(n) in need]
        self.steps: list = []
        self.runtime = set(self.inputs)
        self.kept_ops: set = set()      # the op types kept to run on the data, inside If branches too
        # input_shapes=: declared shapes; a graph input whose every axis is fixed gets a probe (a zero
        # tensor of that shape) the kept steps are run on, so that the shape of every tensor computed
        # from it is known and a Shape / Size of it is folded (then an If on the shape is its branch)
        self.fixed: dict = {}
        self.probe: dict = {}
        for name, shape in (input_shapes or {}).items():
            if name not in self.inputs:
                raise _Refused(f"from_onnx: input_shapes: {name!r} is not an input of the model (inputs: "
                               f"{self.inputs})")
            if not isinstance(shape, tuple | list) or any(
                    d is not None and (not isinstance(d, int | np.integer) or isinstance(d, bool) or d < 1)
                    for d in shape):
                raise _Refused(f"from_onnx: input_shapes: {name!r}: expected a tuple of positive ints (None "
                               f"for an axis left open), got {shape!r}")
            shape = tuple(None if d is None else int(d) for d in shape)
            want = self.declared.get(name)
            if want is not None and (len(want) != len(shape) or any(
                    w is not None and d is not None and w != d for w, d in zip(want, shape, strict=True))):
                raise _Refused(f"from_onnx: input_shapes: {name!r} is declared of shape "
                               f"{tuple('?' if d is None else d for d in want)} in the graph, got {shape}")
            self.declared[name] = shape
            self.fixed[name] = shape
            if None not in shape:
                v = next((i for i in g.input if i.name == name), None)
                et = v.type.tensor_type.elem_type if v is not None else 1
                dt = self.dt if et in _FLOAT_TYPES else _INT_TYPES.get(et, np.int64)
                self.probe[name] = np.zeros(shape, dt)
        self.inferred: dict = {}     # tensor name -> shape from ONNX's shape inference (build_graph)
        # tensor name -> shape ONNX's shape inference derives from the graph inputs' declared shapes
        # alone (the exporter's value_info and output shapes dropped): a size there holds in every run
        # whose inputs have their declared sizes (computed when first asked for: pshape)
        self.derived: dict | None = None
        self.model = model
        self.fold_sizes = True
        # runtime integer tensor name -> (object array of its values, int where the known sizes decide
        # it and None where a dynamic size does, element type): Shape of a tensor with dynamic axes
        # and what is computed from it
        self.pval: dict = {}
        self.shape_folds: list = []   # the nodes folded from known sizes of runtime tensors

    def _const(self, a):
        a = np.asarray(a)
        return a.astype(self.dt) if a.dtype.kind == "f" else a

    def refuse(self, node, why: str, hint: str | None = None):
        hint = hint or ("import the part around it: from_onnx(path, inputs=[...], outputs=[...]) with "
                        f"its input {list(node.input)[:1]} as an output or its output "
                        f"{list(node.output)[:1]} as an input")
        raise _Refused(f"from_onnx: node {node.name or '?'!r} ({node.op_type}): {why}; {hint}")

    def shape_of(self, name: str):
        """The tensor's shape where the import knows it (a constant, a declared shape), else None."""
        if name in self.known:
            return tuple(np.shape(self.known[name]))
        return self.declared.get(name)

    def const(self, node, name: str, what: str):
        if name not in self.known:
            self.refuse(node, f"{what} ({name!r}) must be a constant (an initializer or computed from "
                              "constants), rnncore layers hold their weights",
                        "make it an initializer (rnncore.io.onnx_import.weights_to_initializers)")
        return self.known[name]

    def build(self) -> OnnxGraph:
        for node in self.nodes:
            try:
                self._node(node)
            except _Refused:
                raise
            except (TypeError, KeyError, IndexError, AttributeError, ValueError, ArithmeticError) as e:
                # a malformed node (or constants that do not fit it): named, not a crash
                self.refuse(node, f"malformed node ({type(e).__name__}: {e})", "check the model with "
                                  "onnx.checker.check_model(model, full_check=True)")
        return self._model()

    def _node(self, node) -> None:
        if node.domain not in ("", "ai.onnx"):
            self.refuse(node, f"operator domain {node.domain!r} is not ONNX's")
        if node.op_type == "If":
            self._if(node)
            return
        from rnncore.io.onnx_import._core import _Importer

        _Importer.check_attribute_types(self, node)     # what onnxruntime refuses, refused
        a = _attrs(node)
        fn = _PURE.get(node.op_type)
        if fn is None and node.op_type in _FOLD and not any(i in self.runtime for i in node.input if i):
            fn = _FOLD[node.op_type]      # a layer op on constants only: folded with NumPy
        if fn is not None:
            ins_rt = [i for i in node.input if i and i in self.runtime]
            if node.op_type in ("Shape", "Size") and ins_rt == node.input[:1] and ins_rt[0] in self.probe:
                ins_rt = []       # the shape is known (input_shapes=): folded from the probe
            if not ins_rt:        # fold it
                try:
                    outs = fn(self, node, a, [self.probe[i] if i in self.probe and i in self.runtime
                                              else self.known[i] if i else None for i in node.input])
                except KeyError as e:
                    self.refuse(node, f"input {e} is not available")
                for name, v in zip(node.output, outs, strict=False):
                    if name:
                        self.known[name] = v
                return
            try:
                part = self._partial(node, fn, a)
            except Exception:  # noqa: BLE001 - the values are not followed; the node runs as it is
                part = None
            if part is not None and all(None not in p.reshape(-1).tolist() for p, _ in part):
                for name, (p, dt) in zip(node.output, part, strict=False):   # every value known: fold
                    if name:
                        self.known[name] = np.array(p.tolist(), dt).reshape(p.shape)
                self.shape_folds.append(node.name or node.op_type)
                return
            self._keep(node, lambda vals, fn=fn, node=node, a=a: fn(self, node, a, vals))
            for name, pv in zip(node.output, part or [], strict=False):
                if name and pv[0].size <= _PVAL_MAX:
                    self.pval[name] = pv
            return
        maker = _LAYERS.get(node.op_type)
        if maker is None:
            known = ", ".join(sorted(set(_PURE) | set(_LAYERS)))
            self.refuse(node, f"operator not supported by rnncore: no layer or operation for op type "
                              f"{node.op_type!r} (supported: {known})")
        for i in node.input:
            if i and i not in self.runtime and i not in self.known:
                self.refuse(node, f"input {i!r} is not available")
        if node.input and node.input[0] not in self.runtime:
            self.refuse(node, f"its data input {node.input[0]!r} is a constant, not computed from the "
                              f"graph's inputs {self.inputs}", "fix the model's wiring")
        self._keep(node, maker(self, node, a))

    def pshape(self, name: str):
        """A runtime tensor's shape as far as every run knows it: an int per axis whose size is the
        same in every run (a graph input's declared size, ONNX's shape inference from those), None per
        dynamic axis; None when its rank is unknown."""
        if name in self.probe:
            return tuple(np.shape(self.probe[name]))
        if name in self.pval:
            return self.pval[name][0].shape
        if not self.sizes_fold:
            return None
        if name in self.inputs:
            return self.declared.get(name)
        if self.derived is None:
            self.derived = _derived_shapes(self.model, self)
        return self.derived.get(name)

    @property
    def sizes_fold(self) -> bool:
        """Whether the declared sizes are folded on: only in a graph that declares some input axis
        dynamic (an export with ``dynamic_axes``, or ``input_shapes=`` leaving one open). A graph whose
        every axis is declared keeps its shape arithmetic at run time and runs at other sizes (the
        exporter's example sizes are not taken as the model's)."""
        return self.fold_sizes and any(self.declared.get(n) is None or None in self.declared[n]
                                       for n in self.inputs)

    def _partial(self, node, fn, a):
        """The values of a kept node's integer outputs where the known sizes decide them:
        ``[(object array of int | None, element type), ...]`` per output, or None.

        ``Shape`` / ``Size`` read :meth:`pshape`; moving values (``Gather``, ``Slice``, ``Concat``,
        ``Unsqueeze`` ...) runs the op itself on object arrays (the indices, bounds and axes must be
        constants); element-wise ops (``Equal``, ``Greater``, ``Not``, ``Where``, ``Add`` ...) compute
        each element whose operands are all known, the rest stay None. A value is never guessed: a
        None (a dynamic size) makes every value computed from it None."""
        op = node.op_type
        if op in ("Shape", "Size"):
            s = self.pshape(node.input[0])
            if s is None:
                return None
            if op == "Size":
                return [(np.array(None if None in s else math.prod(s), object), np.int64)]
            r = len(s)
            return [(np.array(list(s), object).reshape(r)[a.get("start", 0):a.get("end", r)], np.int64)]
        ins = []
        for i in node.input:
            if not i:
                ins.append(None)
            elif i in self.known:
                v = np.asarray(self.known[i])
                if v.size > _PVAL_MAX:
                    return None
                ins.append((np.array(v.tolist(), object).reshape(v.shape), v.dtype))
            elif i in self.pval:
                ins.append(self.pval[i])
            else:
                return None           # the data, or a value nothing is known of
        if not any(i in self.pval for i in node.input if i):
            return None
        if op in _MOVE:
            if any(i in self.pval for i in node.input[1 if op != "Concat" else len(node.input):] if i):
                return None           # indices, bounds, axes or a shape known only in part
            vals = [None if v is None else v[0] for v in ins]
            if op != "Concat":
                vals[1:] = [None if i == "" else self.known[i] for i in node.input[1:]]
            dt = np.result_type(*[v[1] for v in ins if v is not None]) if op == "Concat" else ins[0][1]
            return [(np.asarray(y, object), dt) for y in fn(self, node, a, vals)]
        if op == "Cast":
            to = int(a["to"])
            if to not in _INT_TYPES and to not in _FLOAT_TYPES:
                return None
            dt = self.dt if to in _FLOAT_TYPES else np.dtype(_INT_TYPES[to])
            p = ins[0][0]
            out = np.array([None if v is None else np.asarray(v, ins[0][1]).astype(dt).item()
                            for v in p.reshape(-1).tolist()], object).reshape(p.shape)
            return [(out, dt)]
        if op not in _ELEMENTWISE or len(node.output) != 1 or any(v is None for v in ins):
            return None
        arrs = np.broadcast_arrays(*[v[0] for v in ins])
        dts = [v[1] for v in ins]
        dt = np.asarray(fn(self, node, a, [np.ones((), d) for d in dts])[0]).dtype
        out = np.empty(arrs[0].shape, object)
        for k in np.ndindex(out.shape):
            items = [x[k] for x in arrs]
            if None not in items:
                args = [np.asarray(v, d) for v, d in zip(items, dts, strict=True)]
                out[k] = np.asarray(fn(self, node, a, args)[0]).item()
        return [(out, dt)]

    def _if(self, node) -> None:
        """An ``If`` whose condition is a constant (computed from constants, or from an input given in
        ``constants=``) is the branch it takes: that branch's nodes are imported in its place."""
        from onnx import numpy_helper

        cond = node.input[0]
        if cond not in self.known:
            self._runtime_if(node)
            return
        c = np.asarray(self.known[cond])
        if c.size != 1:
            self.refuse(node, f"its condition {cond!r} has {c.size} elements, expected one")
        a = {x.name: x.g for x in node.attribute}
        branch = a["then_branch" if bool(c.reshape(-1)[0]) else "else_branch"]
        for t in branch.initializer:
            self.raw[t.name] = numpy_helper.to_array(t)
            self.known[t.name] = self._const(self.raw[t.name])
        for n in branch.node:
            self._node(n)
        if len(branch.output) != len(node.output):
            self.refuse(node, f"its branch has {len(branch.output)} outputs for {len(node.output)}")
        for src, dst in zip(branch.output, node.output, strict=True):
            if not dst:
                continue
            if src.name in self.known:
                self.known[dst] = self.known[src.name]
            elif src.name in self.runtime:
                self.steps.append(_Step(node.name or "?", "Identity", [src.name], [dst],
                                        lambda vals: [vals[0]], {}))
                self.runtime.add(dst)
                if src.name in self.probe:
                    self.probe[dst] = self.probe[src.name]
                if src.name in self.pval:
                    self.pval[dst] = self.pval[src.name]
            else:
                self.refuse(node, f"its branch output {src.name!r} is not computed")

    def _branch(self, node, sub) -> tuple:
        """A branch's nodes as steps of their own: (steps, output names, the constants they read)."""
        from onnx import numpy_helper

        saved, self.steps = self.steps, []
        for t in sub.initializer:
            self.raw[t.name] = numpy_helper.to_array(t)
            self.known[t.name] = self._const(self.raw[t.name])
        for n in sub.node:
            self._node(n)
        steps, self.steps = self.steps, saved
        outs = [o.name for o in sub.output]
        for o in outs:
            if o not in self.known and o not in self.runtime:
                self.refuse(node, f"its branch output {o!r} is not computed")
        need = {i for st in steps for i in st.inputs if i} | set(outs)
        return steps, outs, {i: self.known[i] for i in need if i not in self.runtime}

    def _runtime_if(self, node) -> None:
        """An ``If`` whose condition is computed from the inputs (TorchScript's ``if x.size(0) == 1:``
        on the data's shape): both branches imported, the condition evaluated when the graph runs."""
        a = {x.name: x.g for x in node.attribute}
        then, other = self._branch(node, a["then_branch"]), self._branch(node, a["else_branch"])
        for b_ in (then, other):
            if len(b_[1]) != len(node.output):
                self.refuse(node, f"its branch has {len(b_[1])} outputs for {len(node.output)}")
        ins = [node.input[0]] + sorted({i for i in _outer_inputs(node) if i in self.runtime})

        def run(vals, then=then, other=other, ins=ins):
            c = np.asarray(vals[0])
            if c.size != 1:
                raise ValueError(f"If condition {ins[0]!r} has {c.size} elements, expected one")
            steps, outs, consts = then if bool(c.reshape(-1)[0]) else other
            local = {**consts, **dict(zip(ins, vals, strict=True))}
            for st in steps:
                for name, v in zip(st.outputs, st.fn([local[i] if i else None for i in st.inputs]),
                                   strict=False):
                    if name:
                        local[name] = v
            return [local[o] for o in outs]

        self._keep(node, run)
        self.steps[-1].inputs = ins

    def _model(self) -> OnnxGraph:
        if not self.outputs or not self.steps:
            raise _Refused(f"from_onnx: the graph computes nothing from its inputs (inputs {self.inputs}, "
                           f"outputs {self.outputs}, {len(self.steps)} nodes on the data)")
        if self.shape_folds:
            # the steps left computing nothing used (a Shape whose every read was folded) are dropped
            used, live = set(self.outputs), []
            for s in reversed(self.steps):
                if any(o in used for o in s.outputs if o):
                    live.append(s)
                    used.update(i for i in s.inputs if i)
            self.steps = live[::-1]
        consts = {}
        for s in self.steps:
            for i in s.inputs:
                if i and i not in self.runtime:
                    consts[i] = self.known[i]
        for o in self.outputs:
            if o not in self.runtime:
                consts[o] = self.known[o]
        model = OnnxGraph(self.inputs, self.outputs, self.steps, consts, self.dt)
        model.input_shapes = {n: self.declared.get(n) for n in self.inputs}   # declared (None: unknown)
        model.fixed_shapes = dict(self.fixed)
        if self.shape_folds:      # folded on the inputs' known sizes: run checks them
            shapes = {n: self.pshape(n) for n in self.inputs}
            model.folded_shapes = {n: sh for n, sh in shapes.items()
                                   if sh is not None and sh.count(None) < len(sh)}
            model.unfold_args = (self.model, self.dt.name, self.inputs, self.outputs,
                                 self.constants, self.fixed or None)
        model.op_types = frozenset(self.kept_ops)
        for k, s in enumerate(self.steps):
            m = getattr(s.fn, "module", None)
            if m is not None:
                model.add_module(f"{k}_{s.op.lower()}", m)
        return model

    def _keep(self, node, fn) -> None:
        self.steps.append(_Step(node.name or "?", node.op_type, list(node.input), list(node.output), fn,
                                _attrs(node)))
        self.runtime.update(o for o in node.output if o)
        self.kept_ops.add(node.op_type)
        self._probe(self.steps[-1], node.op_type)

    def _probe(self, step, op: str) -> None:
        """Run a kept step on the probes of its inputs: its outputs' shapes, when they follow from the
        inputs' shapes alone (not when a runtime input gives a shape, axes, pads, sizes or a condition)."""
        if not self.probe:
            return
        ins = step.inputs
        rt = [k for k, i in enumerate(ins) if i and i in self.runtime]
        if any(ins[k] not in self.probe for k in rt):
            return
        if op == "If" or op in _SHAPE_ARGS and any(k > 0 or op in _SHAPE_ARG0 for k in rt):
            return
        try:
            outs = step.fn([self.probe[i] if i in self.probe else self.known.get(i) if i else None
                            for i in ins])
        except Exception:  # noqa: BLE001 - the step fails on zeros: its outputs stay unknown
            return
        for name, v in zip(step.outputs, outs, strict=False):
            if name:
                self.probe[name] = np.asarray(v)


def _fits(want: tuple | None, shape: tuple) -> bool:
    """Whether an array of ``shape`` fits the sizes ``want`` (None: any shape; a None size: any)."""
    return want is None or len(want) == len(shape) and all(
        w is None or w == d for w, d in zip(want, shape, strict=True))


def _subgraphs(node) -> list:
    """A node's sub-graphs (``If`` branches, a ``Loop`` / ``Scan`` body), from its attributes."""
    from onnx import AttributeProto

    return [g for at in node.attribute for g in ([at.g] if at.type == AttributeProto.GRAPH else at.graphs)]


def _outer_inputs(node) -> list:
    """The tensors a node's sub-graphs (``If`` branches) read from the graph around them."""
    out = []
    for sub in _subgraphs(node):
        made = {t.name for t in sub.initializer} | {o for n in sub.node for o in n.output}
        for n in sub.node:
            out += [i for i in list(n.input) + _outer_inputs(n) if i and i not in made]
        out += [o.name for o in sub.output if o.name not in made]
    return out


# ops that move the values of their first input (Concat: of every input) without computing new ones:
# run on object arrays where a dynamic size is None (Builder._partial)
_MOVE = {"Identity", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand",
         "Transpose"}
# element-wise ops computed on each element whose operands are known (Builder._partial)
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Equal", "Less", "Greater", "LessOrEqual",
                "GreaterOrEqual", "And", "Or", "Xor", "Not", "Neg", "Abs", "Where"}
_PVAL_MAX = 64        # the largest integer tensor whose known values are tracked (shape vectors)


# each pure op: fn(builder, node, attrs, input arrays) -> list of outputs
def _cast(b, node, a, x):
    to = int(a["to"])
    if to in _FLOAT_TYPES:
        return [np.asarray(x[0]).astype(b.dt)]
    if to not in _INT_TYPES:
        from onnx import TensorProto

        b.refuse(node, f"Cast to element type {to} ({TensorProto.DataType.Name(to)}): expected a float, "
                       "integer or bool type")
    return [np.asarray(x[0]).astype(_INT_TYPES[to])]


def _shape(b, node, a, x):
    s = np.array(np.shape(x[0]), np.int64)
    r = len(s)
    start, end = a.get("start", 0), a.get("end", r)
    return [s[start:end]]


def _gather(b, node, a, x):
    return [np.take(x[0], np.asarray(x[1]).astype(np.int64), axis=int(a.get("axis", 0)))]


def _axes(b, node, a, x, k=1):
    if "axes" in a:
        return list(a["axes"])
    if len(x) > k and x[k] is not None:
        return _ints(x[k])
    return None


def _unsqueeze(b, node, a, x):
    axes = _axes(b, node, a, x)
    y = np.asarray(x[0])
    for ax in _norm_axes(axes, y.ndim + len(axes)):
        y = np.expand_dims(y, ax)
    return [y]


def _squeeze(b, node, a, x):
    axes = _axes(b, node, a, x)
    y = np.asarray(x[0])
    if axes is None:
        return [np.squeeze(y)]
    axes = _norm_axes(axes, y.ndim)
    if any(y.shape[ax] != 1 for ax in axes):
        b.refuse(node, f"squeezes axes {axes} of a tensor of shape {y.shape}")
    return [np.squeeze(y, axis=tuple(axes))]


def _concat(b, node, a, x):
    return [np.concatenate([np.asarray(v) for v in x], axis=int(a["axis"]))]


def _reshape(b, node, a, x):
    y = np.asarray(x[0])
    shape = _ints(x[1]) if len(x) > 1 else list(a["shape"])
    if not int(a.get("allowzero", 0)):
        shape = [y.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [y.reshape(shape)]


def _flatten(b, node, a, x):
    y = np.asarray(x[0])
    ax = int(a.get("axis", 1))
    ax = ax + y.ndim if ax < 0 else ax
    return [y.reshape(int(np.prod(y.shape[:ax])), -1)]


def _slice(b, node, a, x):
    y = np.asarray(x[0])
    if b.opset < 10:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    sl = [slice(None)] * y.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        n = y.shape[ax]
        # ONNX clamps to [0, n] (forward) / [-1, n-1] (backward); INT_MAX-style ends included
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:
            s, e = min(max(s, -1), n - 1), min(max(e, -1), n - 1)
        sl[ax] = slice(s, e if e >= 0 else None, st)
    return [y[tuple(sl)]]


def _transpose(b, node, a, x):
    return [np.transpose(x[0], a.get("perm"))]


def _constant(b, node, a, x):
    from onnx import numpy_helper

    if "value" in a:
        return [b._const(numpy_helper.to_array(a["value"]))]
    for k, dt in (("value_float", b.dt), ("value_int", np.int64)):
        if k in a:
            return [np.asarray(a[k], dt)]
    for k, dt in (("value_floats", b.dt), ("value_ints", np.int64)):
        if k in a:
            return [np.asarray(list(a[k]), dt)]
    b.refuse(node, f"Constant with attributes {sorted(a)}")


def _constant_of_shape(b, node, a, x):
    from onnx import numpy_helper

    v = b._const(numpy_helper.to_array(a["value"])) if "value" in a else np.zeros(1, b.dt)
    return [np.full(_ints(x[0]) if np.size(x[0]) else [], v.reshape(-1)[0], v.dtype)]


def _expand(b, node, a, x):
    y = np.asarray(x[0])
    return [np.broadcast_to(y, np.broadcast_shapes(y.shape, tuple(_ints(x[1])))).copy()]


def _range(b, node, a, x):
    return [np.arange(x[0], x[1], x[2]).astype(np.asarray(x[0]).dtype)]


def _div(p, q):
    p, q = np.asarray(p), np.asarray(q)
    if p.dtype.kind in "iu" and q.dtype.kind in "iu":
        return np.trunc(p / q).astype(np.result_type(p, q))   # ONNX integer Div truncates
    return p / q


def _binary(f):
    def op(b, node, a, x):
        p, q = np.asarray(x[0]), np.asarray(x[1])
        if p.dtype.kind == "f" or q.dtype.kind == "f":
            p, q = p.astype(b.dt, copy=False), q.astype(b.dt, copy=False)
        return [np.asarray(f(p, q))]
    return op


def _variadic(f):
    """``Max`` / ``Min`` of one or more inputs, broadcast together (``f``: ``np.maximum`` ...)."""
    def op(b, node, a, x):
        vals = [np.asarray(v) for v in x if v is not None]
        if any(v.dtype.kind == "f" for v in vals):
            vals = [v.astype(b.dt, copy=False) for v in vals]
        out = vals[0]
        for v in vals[1:]:
            out = f(out, v)
        return [np.asarray(out)]
    return op


def _pow(b, node, a, x):
    """``Pow``: the result has the base's element type (an integer base to a float exponent stays
    an integer, truncated as ONNX's reference casts it)."""
    p, q = np.asarray(x[0]), np.asarray(x[1])
    if p.dtype.kind == "f":
        return [np.power(p.astype(b.dt, copy=False), q.astype(b.dt, copy=False))]
    if q.dtype.kind == "f":
        return [np.power(p.astype(b.dt), q.astype(b.dt)).astype(p.dtype)]
    return [np.power(p, q).astype(p.dtype, copy=False)]


def _unary(f):
    return lambda b, node, a, x: [np.asarray(f(np.asarray(x[0])))]


def _softmax(log: bool):
    def op(b, node, a, x):
        y = np.asarray(x[0])
        ax = int(a.get("axis", -1 if b.opset >= 13 else 1))
        if b.opset < 13:      # opsets 1-12: softmax over the flattened axes from `axis` on
            shp = y.shape
            y2 = y.reshape(int(np.prod(shp[:ax % y.ndim])), -1)
            z = y2 - y2.max(axis=1, keepdims=True)
            out = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return [(out if log else np.exp(out)).reshape(shp)]
        z = y - y.max(axis=ax, keepdims=True)
        out = z - np.log(np.exp(z).sum(axis=ax, keepdims=True))
        return [out if log else np.exp(out)]
    return op


def _pad(b, node, a, x):
    y = np.asarray(x[0])
    mode = a.get("mode", "constant")
    if b.opset < 11:
        pads, value, axes = list(a["pads"]), float(a.get("value", 0.0)), None
    else:
        pads = _ints(x[1])
        value = np.asarray(x[2]).reshape(-1)[0] if len(x) > 2 and x[2] is not None and np.size(x[2]) else 0
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else None
    axes = list(range(y.ndim)) if axes is None else [ax + y.ndim if ax < 0 else ax for ax in axes]
    n = len(axes)
    if len(pads) != 2 * n:
        b.refuse(node, f"pads {pads} do not fit {n} axes")
    width = [(0, 0)] * y.ndim
    for k, ax in enumerate(axes):
        width[ax] = (pads[k], pads[k + n])
    if any(p < 0 for w in width for p in w):
        b.refuse(node, f"negative pads {pads} (cropping)")
    if mode == "constant":
        return [np.pad(y, width, mode="constant", constant_values=value)]
    if mode in ("reflect", "edge", "wrap"):
        return [np.pad(y, width, mode=mode)]
    b.refuse(node, f"mode {mode!r}")


def _split(b, node, a, x):
    """``Split`` along ``axis``: sizes from input 1 (opset 13+) or the ``split`` attribute, else
    ``num_outputs`` (opset 18) / the number of outputs parts of ``ceil(n / parts)``."""
    v = x[0]
    ax = int(a.get("axis", 0)) % np.ndim(v)
    n = np.shape(v)[ax]
    sizes = x[1] if len(x) > 1 and x[1] is not None else a.get("split")
    if sizes is None:
        parts = int(a.get("num_outputs", len(node.output)))
        step = -(-n // parts)
        sizes = [min(step, n - k * step) for k in range(parts)]
    sizes = [int(k) for k in np.atleast_1d(sizes)]
    if sum(sizes) != n or len(sizes) != len(node.output) or min(sizes) < 0:
        raise ValueError(f"split sizes {sizes} for {len(node.output)} outputs of an axis of {n}")
    return np.split(v, np.cumsum(sizes)[:-1], axis=ax)


def _size(b, node, a, x):
    return [np.array(np.size(x[0]), np.int64)]


def _reduce(fn):
    """``ReduceMean`` / ``ReduceSum`` / ``ReduceMax`` / ``ReduceMin`` (``fn``: ``np.mean`` ...): axes
    from input 1 (opsets >= 13 for ReduceSum, >= 18 for the others) or the attribute; none given: every axis
    (``noop_with_empty_axes`` 1: the identity)."""
    def run(b, node, a, x):
        axes = x[1] if len(x) > 1 and x[1] is not None else a.get("axes")
        if axes is None or np.size(axes) == 0:
            if int(a.get("noop_with_empty_axes", 0)):
                return [x[0]]
            axes = range(np.ndim(x[0]))
        axes = tuple(int(k) % np.ndim(x[0]) for k in np.atleast_1d(axes))
        v = np.asarray(x[0])
        extra = {}
        if fn in (np.max, np.min) and v.size == 0:      # the empty set: -inf / +inf (ONNX)
            lo, hi = ((-np.inf, np.inf) if v.dtype.kind == "f" else (False, True) if v.dtype.kind == "b"
                      else (np.iinfo(v.dtype).min, np.iinfo(v.dtype).max))
            extra["initial"] = lo if fn is np.max else hi
        return [fn(v, axis=axes, keepdims=bool(int(a.get("keepdims", 1))), **extra)]
    return run


def _global_max_pool(b, node, a, x):
    """``GlobalMaxPool``: the maximum over every axis after the channels (2 on), kept as size 1."""
    v = np.asarray(x[0])
    return [np.max(v, axis=tuple(range(2, v.ndim)), keepdims=True)]


def _global_average_pool(b, node, a, x):
    """``GlobalAveragePool``: the mean over every axis after the channels (2 on), kept as size 1."""
    v = np.asarray(x[0])
    return [np.mean(v, axis=tuple(range(2, v.ndim)), keepdims=True)]


def _hard_sigmoid_np(b, node, a, x):
    al, be = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    return [np.clip(al * np.asarray(x[0]) + be, 0, 1)]


def _leaky(b, node, a, x):
    from rnncore.nn.pointwise import LeakyReLU

    return [LeakyReLU(float(a.get("alpha", 0.01))).forward(np.asarray(x[0]))]


def _erf_np(v):
    from rnncore.nn.pointwise import erf

    return erf(np.asarray(v))


def _hard_swish(b, node, a, x):     # x * HardSigmoid(x) with alpha 1/6, beta 1/2
    y = np.asarray(x[0])
    return [y * np.clip(y / 6 + 0.5, 0, 1)]


def _elu(b, node, a, x):
    from rnncore.nn.pointwise import ELU

    return [ELU(float(a.get("alpha", 1.0))).forward(np.asarray(x[0]))]


def _clip(b, node, a, x):
    """``Clip``: bounds from inputs 1 and 2 (opset >= 11; either may be absent) or the ``min`` /
    ``max`` attributes (opsets 6-10); an absent bound does not clip."""
    y = np.asarray(x[0])
    if b.opset >= 11:
        lo = x[1] if len(x) > 1 and x[1] is not None else None
        hi = x[2] if len(x) > 2 and x[2] is not None else None
    else:
        lo, hi = a.get("min"), a.get("max")
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, y.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, y.dtype))
    return [y]


def _softplus(v):                   # log(1 + exp(v)), no overflow
    return np.logaddexp(0, v).astype(v.dtype, copy=False)


def _selu(b, node, a, x):
    y = np.asarray(x[0])
    al = float(a.get("alpha", 1.67326319217681884765625))
    ga = float(a.get("gamma", 1.05070102214813232421875))
    return [(ga * np.where(y > 0, y, al * np.expm1(np.minimum(y, 0)))).astype(y.dtype, copy=False)]


def _where(b, node, a, x):
    return [np.where(np.asarray(x[0]).astype(bool), x[1], x[2])]


def _identity(b, node, a, x):
    return [x[0]]


def _dropout(b, node, a, x):
    """``Dropout`` at inference: the identity (and an all-true mask). ``training_mode`` (input 2,
    opset >= 12) true drops at random: refused, so is one computed from the inputs."""
    if len(node.input) > 2 and node.input[2]:
        tm = b.known.get(node.input[2])
        if tm is None:
            b.refuse(node, f"training_mode {node.input[2]!r} is computed from the inputs, expected a "
                           "constant false", "export the model in eval mode")
        if np.any(tm):
            b.refuse(node, "training_mode is true (a random dropout), expected false (inference)",
                     "export the model in eval mode")
    return [x[0], np.ones(np.shape(x[0]), bool)][:len(node.output)]


def _matmul_np(b, node, a, x):
    return [np.matmul(x[0], x[1])]


def _einsum(b, node, a, x):
    """``Einsum``: ONNX's equation language is NumPy's (letters, ``...``, ``->``); ONNX's type
    inference has checked the terms against the inputs' ranks."""
    eq = a["equation"]
    return [np.einsum(eq.decode() if isinstance(eq, bytes) else eq, *x)]


def _sigmoid_np(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))     # = 1 / (1 + exp(-v)), no overflow


_PURE: dict = {
    "Identity": _identity, "Cast": _cast, "Shape": _shape, "Gather": _gather, "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze, "Concat": _concat, "Reshape": _reshape, "Flatten": _flatten, "Slice": _slice,
    "Transpose": _transpose, "Constant": _constant, "ConstantOfShape": _constant_of_shape,
    "Expand": _expand, "Range": _range, "Pad": _pad, "Where": _where, "Dropout": _dropout,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply), "Div": _binary(_div),
    "Pow": _pow, "Max": _variadic(np.maximum), "Min": _variadic(np.minimum),
    "Equal": _binary(np.equal), "Less": _binary(np.less), "Greater": _binary(np.greater),
    "LessOrEqual": _binary(np.less_equal), "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and), "Or": _binary(np.logical_or), "Xor": _binary(np.logical_xor),
    "Sqrt": _unary(np.sqrt), "Neg": _unary(np.negative), "Abs": _unary(np.abs), "Exp": _unary(np.exp),
    "Log": _unary(np.log), "Not": _unary(np.logical_not), "Erf": _unary(_erf_np),
    "Sin": _unary(np.sin), "Cos": _unary(np.cos),
    "Selu": _selu, "Reciprocal": _unary(np.reciprocal),
    "ReduceMax": _reduce(np.max), "ReduceMin": _reduce(np.min), "GlobalMaxPool": _global_max_pool,
    "GlobalAveragePool": _global_average_pool,
    "Softmax": _softmax(False), "LogSoftmax": _softmax(True),
    "Size": _size, "ReduceMean": _reduce(np.mean), "ReduceSum": _reduce(np.sum),
    "Split": _split, "Einsum": _einsum,
}


# -- rnncore layers ------------------------------------------------------------------------
def _with_module(fn, module):
    fn.module = module
    return fn


def _act_layer(cls_name: str):
    def make(b, node, a):
        from rnncore.nn import pointwise

        if cls_name == "GELU":
            approx = a.get("approximate", "none")
            approx = approx.decode() if isinstance(approx, bytes) else approx
            if approx not in ("none", "tanh"):
                b.refuse(node, f"approximate={approx!r}: expected 'none' or 'tanh'")
            m = pointwise.GELU(approximate=approx)
        elif cls_name == "HardSigmoid":
            m = pointwise.HardSigmoid(alpha=float(a.get("alpha", 0.2)), beta=float(a.get("beta", 0.5)))
        elif cls_name == "LeakyReLU":
            m = pointwise.LeakyReLU(float(a.get("alpha", 0.01)))
        elif cls_name == "ELU":
            m = pointwise.ELU(float(a.get("alpha", 1.0)))
        elif cls_name == "Softplus":    # ONNX's: log(exp(x) + 1), never linear
            m = pointwise.Softplus(1.0, math.inf)
        else:
            m = getattr(pointwise, cls_name)()
        return _with_module(lambda x: [m.forward(np.asarray(x[0]).astype(b.dt, copy=False))], m)
    return make


def _conv(b, node, a):
    from rnncore.nn.conv import Conv1d

    W = b.const(node, node.input[1], "W")
    if W.ndim == 4:
        return _conv2d(b, node, a, W)
    if W.ndim != 3:
        b.refuse(node, f"a {W.ndim - 2}-D convolution (weight {W.shape}); rnncore has Conv1d and Conv2d")
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        b.refuse(node, f"auto_pad={auto!r}: expected NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    O, Cg, k = W.shape
    groups = int(a.get("group", 1))
    shp = b.shape_of(node.input[0])
    if shp is not None and (len(shp) != 3 or shp[1] not in (None, Cg * groups)):
        b.refuse(node, f"X {node.input[0]!r} is declared with shape {shp}; W {W.shape} with group={groups} "
                       f"expects (N, {Cg * groups}, L)", "fix the model's shapes")
    stride, dilation = int(a.get("strides", [1])[0]), int(a.get("dilations", [1])[0])
    pads = [0, 0] if auto == "VALID" else list(a.get("pads", [0, 0]))
    padding: object = (pads[0], pads[1])
    if auto in ("SAME_UPPER", "SAME_LOWER"):   # at stride 1 a fixed split, else per input length
        padding = _same_at_stride(auto, dilation, lambda why: b.refuse(node, why)) if stride != 1 else (
            "same" if auto == "SAME_UPPER" else "same_lower")
    m = Conv1d(Cg * groups, O, k, stride=stride, padding=padding,
               dilation=dilation, groups=groups, bias=len(node.input) > 2
               and bool(node.input[2]), dtype=b.dt.name)
    m.params["weight"] = W.astype(b.dt)
    if "bias" in m.params:
        m.params["bias"] = b.const(node, node.input[2], "B").astype(b.dt)

    def run(x):
        X = np.asarray(x[0])
        if X.ndim != 3:
            raise ValueError(f"X: expected (N, C, L), got shape {X.shape}")
        return [m.forward(X.astype(b.dt, copy=False).transpose(0, 2, 1)).transpose(0, 2, 1)]
    return _with_module(run, m)


def _linear_from(b, weight, bias):
    from rnncore.nn.layers import Linear

    out, inn = weight.shape
    m = Linear(inn, out, bias=bias is not None, dtype=b.dt.name)
    m.params["weight"] = np.ascontiguousarray(weight, dtype=b.dt)
    if bias is not None:
        m.params["bias"] = np.asarray(bias, b.dt)
    return m


def _clip_layer(b, node, a):
    """``Clip`` with constant bounds (attributes before opset 11, inputs after; an absent one is
    infinite): ``rc.nn.Hardtanh``; bounds computed at run time, or min > max: run in NumPy."""
    if b.opset >= 11:
        names = [node.input[k] if len(node.input) > k and node.input[k] else None for k in (1, 2)]
        if any(n is not None and n not in b.known for n in names):
            return lambda x: _clip(b, node, a, x)
        bounds = [None if n is None else np.asarray(b.known[n]) for n in names]
    else:
        bounds = [a.get("min"), a.get("max")]
    if any(v is not None and np.size(v) != 1 for v in bounds):
        return lambda x: _clip(b, node, a, x)
    lo, hi = (d if v is None else float(np.ravel(v)[0]) for v, d in zip(bounds, (-math.inf, math.inf),
                                                                        strict=True))
    if math.isnan(lo) or math.isnan(hi) or not lo <= hi or lo == math.inf:
        return lambda x: _clip(b, node, a, x)
    from rnncore.nn import pointwise

    m = pointwise.Hardtanh(lo, hi)

    def run(x):
        X = np.asarray(x[0])
        if X.dtype.kind != "f":           # integer data stays integer (ONNX's Clip keeps the type)
            return _clip(b, node, a, x)
        return [m.forward(X.astype(b.dt, copy=False))]
    return _with_module(run, m)


def _matmul(b, node, a):
    if node.input[1] not in b.known or np.ndim(b.known[node.input[1]]) != 2:
        return lambda x: _matmul_np(b, node, a, x)
    m = _linear_from(b, b.known[node.input[1]].T, None)
    return _with_module(lambda x: [m.forward(np.asarray(x[0]).astype(b.dt, copy=False))], m)


def _gemm(b, node, a):
    """``Gemm``: ``Y = alpha * A' @ B' + beta * C`` with a constant ``B`` (and ``C``): a
    :class:`~rnncore.nn.layers.Linear` when ``C`` is a bias of the ``N`` outputs (or a scalar) and
    ``transA`` is 0; with ``transA`` 1 or a ``C`` of shape ``(M, N)`` / ``(M, 1)`` the product is
    run in NumPy (no layer: ``rc.compile`` refuses it)."""
    B = b.const(node, node.input[1], "B")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a = int(a.get("transA", 0))
    Wt = (B if int(a.get("transB", 0)) else B.T) * alpha          # (N, K)
    C = None
    if len(node.input) > 2 and node.input[2]:
        C = np.asarray(b.const(node, node.input[2], "C")).astype(b.dt) * beta
    N = Wt.shape[0]
    if not trans_a and (C is None or C.size in (1, N) and C.ndim <= 1 or C.shape in ((1, N), (1, 1))):
        bias = None if C is None else np.broadcast_to(C.reshape(-1), (N,))
        m = _linear_from(b, Wt, bias)
        return _with_module(lambda x: [m.forward(np.asarray(x[0]).astype(b.dt, copy=False))], m)
    W = np.asarray(Wt, b.dt)

    def run(x):
        A = np.asarray(x[0]).astype(b.dt, copy=False)
        if A.ndim != 2:
            raise ValueError(f"A: expected 2 axes, got shape {A.shape}")
        Y = (A.T if trans_a else A) @ W.T                           # (M, N)
        return [Y if C is None else Y + C]        # C broadcasts to (M, N) (ValueError if it cannot)
    return run


def _layer_norm(b, node, a):
    """``LayerNormalization`` over the axes from ``axis`` on: they are flattened into the one
    axis :class:`~rnncore.nn.norm.LayerNorm` normalises (``Scale`` and ``B`` broadcast to their
    shape and flattened alike); the optional outputs ``Mean`` and ``InvStdDev`` (shape
    ``X.shape[:axis] + (1, ...)``) are ``mean`` and ``1 / sqrt(var + epsilon)`` over those axes."""
    from rnncore.nn.norm import LayerNorm

    scale = np.asarray(b.const(node, node.input[1], "Scale"))
    has_b = len(node.input) > 2 and bool(node.input[2])
    bias = np.asarray(b.const(node, node.input[2], "B")) if has_b else None
    axis, eps = int(a.get("axis", -1)), float(a.get("epsilon", 1e-5))
    made: dict = {}

    def module(inner: tuple):
        """The LayerNorm of the flattened axes ``inner`` (one per shape the data has)."""
        if inner not in made:
            n = int(np.prod(inner))
            m = LayerNorm(n, eps=eps, bias=has_b, dtype=b.dt.name)
            m.params["weight"] = np.broadcast_to(scale, inner).reshape(n).astype(b.dt)
            if has_b:
                m.params["bias"] = np.broadcast_to(bias, inner).reshape(n).astype(b.dt)
            made[inner] = m
        return made[inner]

    first = module(tuple(scale.shape) if scale.ndim else (1,))
    n_out = len(node.output)

    def run(x):
        X = np.asarray(x[0]).astype(b.dt, copy=False)
        ax = axis + X.ndim if axis < 0 else axis
        if not 0 <= ax < X.ndim:
            raise ValueError(f"axis={axis} for X of shape {X.shape}")
        inner = tuple(X.shape[ax:])
        Xf = X.reshape(X.shape[:ax] + (-1,))
        outs = [module(inner).forward(Xf).reshape(X.shape)]
        if n_out > 1:
            red = X.shape[:ax] + (1,) * len(inner)
            mean = Xf.mean(axis=-1, keepdims=True)
            var = ((Xf - mean) ** 2).mean(axis=-1, keepdims=True)
            outs += [mean.reshape(red), (1.0 / np.sqrt(var + eps)).reshape(red)]
        return outs[:n_out]
    return _with_module(run, first)


def _batch_norm(b, node, a):
    from rnncore.nn.norm import BatchNorm1d

    if len(node.output) > 1 and any(node.output[1:]):
        b.refuse(node, "training-mode outputs (running mean/var)", "export the model in eval mode")
    sc, bi, mean, var = (b.const(node, node.input[k], n) for k, n in
                         ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")))
    from rnncore.nn.conv2d import BatchNorm2d

    shp = b.shape_of(node.input[0]) or b.inferred.get(node.input[0])
    cls = BatchNorm2d if shp is not None and len(shp) == 4 else BatchNorm1d   # (N, C, H, W): named so
    m = cls(sc.shape[0], eps=float(a.get("epsilon", 1e-5)), dtype=b.dt.name)
    m.params["weight"], m.params["bias"] = sc.astype(b.dt), bi.astype(b.dt)
    m.buffers["running_mean"], m.buffers["running_var"] = mean.astype(b.dt), var.astype(b.dt)

    def run(x):
        X = np.asarray(x[0]).astype(b.dt, copy=False)      # (N, C, ...): channels on axis 1
        if isinstance(m, BatchNorm2d):
            return [m.forward(X)]
        Xl = np.moveaxis(X, 1, -1)
        return [np.moveaxis(m.forward(Xl.reshape(-1, 1, Xl.shape[-1])).reshape(Xl.shape), -1, 1)]
    return _with_module(run, m)


def _instance_norm(b, node, a):
    from rnncore.nn.norm import InstanceNorm1d

    sc, bi = (b.const(node, node.input[k], n) for k, n in ((1, "scale"), (2, "B")))
    if sc.ndim != 1 or bi.shape != sc.shape:
        b.refuse(node, f"scale {sc.shape} and B {bi.shape}: expected two vectors of the channels")
    m = InstanceNorm1d(sc.shape[0], eps=float(a.get("epsilon", 1e-5)), affine=True, dtype=b.dt.name)
    m.params["weight"], m.params["bias"] = sc.astype(b.dt), bi.astype(b.dt)

    def run(x):
        X = np.asarray(x[0]).astype(b.dt, copy=False)      # (N, C, D1, ...): channels on axis 1
        if X.ndim < 3 or X.shape[1] != sc.shape[0]:
            raise ValueError(f"input: expected (N, {sc.shape[0]}, D1, ...) for InstanceNormalization "
                             f"{node.name!r}, got shape {X.shape}")
        X3 = X.reshape(X.shape[0], X.shape[1], -1)          # the spatial axes as one: (N, C, L)
        return [m.forward(X3.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(X.shape)]
    return _with_module(run, m)


def _same_at_stride(auto: str, dilation: int, refuse) -> str:
    """1-D ``auto_pad`` ``SAME_UPPER`` / ``SAME_LOWER`` at a stride above 1 as rnncore's padding
    ``"same"`` / ``"same_lower"`` (:func:`rnncore.nn.conv.same_padding`, per input length)."""
    if dilation != 1:
        refuse(f"auto_pad={auto!r} with dilations [{dilation}] at a stride above 1; expected dilations [1] "
               "(or explicit pads)")
    return "same" if auto == "SAME_UPPER" else "same_lower"


def pool_options(node, a, refuse) -> dict:
    """The options of a 1-D ``MaxPool`` / ``AveragePool`` node as keyword arguments of
    :class:`~rnncore.nn.conv.MaxPool1d` / :class:`~rnncore.nn.conv.AvgPool1d` (without
    ``channels``); ``refuse(why)`` for what they cannot express."""
    k = list(a.get("kernel_shape", []))
    if len(k) != 1:
        refuse(f"a {len(k)}-D pooling (kernel_shape {k}); rnncore pools 1-D X (N, C, L) and 2-D "
               "X (N, C, H, W)")
    k = int(k[0])
    stride = int(list(a.get("strides", [1]))[0])
    dilation = int(list(a.get("dilations", [1]))[0])
    pads = [int(v) for v in a.get("pads", [0, 0])]
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    same = None
    if auto in ("SAME_UPPER", "SAME_LOWER") and stride != 1:   # padded per input length (same_padding)
        same = _same_at_stride(auto, dilation, refuse)
        if int(a.get("ceil_mode", 0)):
            refuse(f"auto_pad={auto!r} with ceil_mode=1 at strides [{stride}]; expected ceil_mode=0 (it "
                   "already gives ceil(L / stride) outputs)")
        if node.op_type == "AveragePool" and int(a.get("count_include_pad", 0)):
            refuse(f"auto_pad={auto!r} with count_include_pad=1 at strides [{stride}]; rnncore averages such "
                   "a padding over the real inputs only (count_include_pad=0, as tf2onnx writes it)")
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        span = dilation * (k - 1)
        pads = [span // 2, span - span // 2] if auto == "SAME_UPPER" else [span - span // 2, span // 2]
    elif auto == "VALID":
        pads = [0, 0]
    elif auto != "NOTSET":
        refuse(f"auto_pad={auto!r}")
    if same is not None:
        pads = [0, 0]
    if len(pads) != 2 or min(pads) < 0:
        refuse(f"pads {pads}: expected [begin, end] >= 0 of the one spatial axis")
    if max(pads) > k // 2:
        refuse(f"pads {pads} larger than kernel_shape[0] // 2 = {k // 2} (PyTorch's limit, which rnncore's "
               "pooling keeps)")
    out = {"kernel_size": k, "stride": stride, "padding": same or (pads[0], pads[1]), "dilation": dilation,
           "ceil_mode": bool(int(a.get("ceil_mode", 0)))}
    if node.op_type == "AveragePool":
        out["count_include_pad"] = bool(int(a.get("count_include_pad", 0)))
    elif len(node.output) > 1 and node.output[1]:
        refuse("the Indices output (argmax positions)")
    return out


def _pool(b, node, a):
    from rnncore.nn.conv import AvgPool1d, MaxPool1d

    if len(list(a.get("kernel_shape", []))) == 2:
        return _pool2d(b, node, a)
    opts = pool_options(node, a, lambda why: b.refuse(node, why, "see docs/importers.md (pooling)"))
    shp = b.shape_of(node.input[0]) or b.inferred.get(node.input[0])
    if shp is not None and len(shp) != 3:
        b.refuse(node, f"X {node.input[0]!r} has shape {shp}; rnncore pools (N, C, L) over L",
                 "see docs/importers.md (pooling)")
    cls = MaxPool1d if node.op_type == "MaxPool" else AvgPool1d
    made: dict = {}

    def module(C: int):
        if C not in made:     # the channels only fix the input check: one module per channel count
            made[C] = cls(channels=C, dtype=b.dt.name, **opts)
        return made[C]

    C = None if shp is None else shp[1]
    m = module(C) if C else None

    def run(x):
        X = np.asarray(x[0])
        if X.ndim != 3:
            raise ValueError(f"X: expected (N, C, L), got shape {X.shape}")
        mod = module(X.shape[1])
        Y = mod.forward(X.astype(b.dt, copy=False).transpose(0, 2, 1)).transpose(0, 2, 1)
        return [_pooled_dtype(node, X, Y)]
    return _with_module(run, m) if m is not None else run


def _pooled_dtype(node, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """ONNX's ``MaxPool`` keeps an int8 / uint8 input's type: the layer's maximum, taken in the
    import's float dtype, holds those values exactly, so it is cast back."""
    if node.op_type == "MaxPool" and X.dtype.kind in "iu":
        return Y.astype(X.dtype)
    return Y


def _auto_pads(node, a, refuse, kernel, stride, dilation, size=None) -> list | None:
    """ONNX's ``pads`` ``[t, l, b, r]`` of a 2-D ``Conv`` / pooling as ``(top, bottom, left, right)``.

    ``auto_pad`` ``SAME_UPPER`` / ``SAME_LOWER`` (dilation 1, as onnxruntime) pads
    ``max(0, (ceil(L / s) - 1) s + k - L)`` per axis (the odd one at the end / the beginning): with
    a stride above 1 it depends on the input size ``size (H, W)``; ``None`` where that size is not
    known yet (computed at run time)."""
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if tuple(dilation) != (1, 1):
            refuse(f"auto_pad={auto!r} with dilations {list(dilation)} (onnxruntime refuses it too)")
        out = []
        for ax in (0, 1):
            k, s = kernel[ax], stride[ax]
            if s == 1:
                total = k - 1
            elif size is None or size[ax] is None:
                return None
            else:
                L = int(size[ax])
                total = max(0, (-(-L // s) - 1) * s + k - L)
            small, big = total // 2, total - total // 2
            out += [small, big] if auto == "SAME_UPPER" else [big, small]
        return out
    if auto != "NOTSET":
        refuse(f"auto_pad={auto!r}: expected NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        refuse(f"pads {pads}: expected [top, left, bottom, right] >= 0 of the two spatial axes")
    return [pads[0], pads[2], pads[1], pads[3]]


def _ints2(a, key: str, default: int) -> tuple[int, int]:
    v = [int(x) for x in a.get(key, [default, default])]
    if len(v) != 2:
        raise ValueError(f"{key} {v}: expected two values (H, W)")
    return v[0], v[1]


def _conv2d(b, node, a, W):
    """A 2-D ``Conv`` (weight ``(M, C/group, kH, kW)``) -> :class:`rnncore.nn.Conv2d` on ``(N, C, H, W)``."""
    from rnncore.nn.conv2d import Conv2d

    O, Cg, kh, kw = W.shape
    groups = int(a.get("group", 1))
    ks = [int(v) for v in a.get("kernel_shape", [kh, kw])]
    if ks != [kh, kw]:
        b.refuse(node, f"kernel_shape {ks} differs from the weight's {[kh, kw]}", "fix the model")
    shp = b.shape_of(node.input[0]) or b.inferred.get(node.input[0])
    if shp is not None and (len(shp) != 4 or shp[1] not in (None, Cg * groups)):
        b.refuse(node, f"X {node.input[0]!r} has shape {shp}; W {W.shape} with group={groups} expects "
                       f"(N, {Cg * groups}, H, W)", "fix the model's shapes")
    stride, dilation = _ints2(a, "strides", 1), _ints2(a, "dilations", 1)
    refuse = lambda why: b.refuse(node, why, "export with explicit pads")  # noqa: E731
    pads = _auto_pads(node, a, refuse, (kh, kw), stride, dilation, None if shp is None else shp[2:])
    has_b = len(node.input) > 2 and bool(node.input[2])
    m = Conv2d(Cg * groups, O, (kh, kw), stride=stride, padding=tuple(pads or (0, 0, 0, 0)),
               dilation=dilation,
               groups=groups, bias=has_b, dtype=b.dt.name)
    m.params["weight"] = W.astype(b.dt)
    if has_b:
        m.params["bias"] = b.const(node, node.input[2], "B").astype(b.dt)

    def run(x):
        X = np.asarray(x[0])
        if X.ndim != 4:
            raise ValueError(f"X: expected (N, C, H, W) for Conv {node.name!r}, got shape {X.shape}")
        if pads is None:      # auto_pad SAME_* at a stride: the padding of this input's size
            m.pads = tuple(_auto_pads(node, a, refuse, (kh, kw), stride, dilation, X.shape[2:]))
        return [m.forward(X.astype(b.dt, copy=False))]
    return _with_module(run, m)


def _conv_transpose(b, node, a):
    """A 2-D ``ConvTranspose`` -> :class:`rnncore.nn.ConvTranspose2d` on ``(N, C, H, W)``."""
    from rnncore.nn.conv2d import ConvTranspose2d

    W = b.const(node, node.input[1], "W")
    if W.ndim != 4:
        b.refuse(node, f"a {W.ndim - 2}-D transposed convolution (weight {W.shape}); rnncore has "
                       "ConvTranspose2d only", "see docs/importers.md")
    C, Og, kh, kw = W.shape
    groups = int(a.get("group", 1))
    if "output_shape" in a:
        b.refuse(node, f"output_shape {list(a['output_shape'])} (the padding computed from it)",
                 "export with explicit pads and output_padding")
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        b.refuse(node, f"auto_pad={auto!r}", "export with explicit pads")
    ks = [int(v) for v in a.get("kernel_shape", [kh, kw])]
    if ks != [kh, kw]:
        b.refuse(node, f"kernel_shape {ks} differs from the weight's {[kh, kw]}", "fix the model")
    shp = b.shape_of(node.input[0]) or b.inferred.get(node.input[0])
    if shp is not None and (len(shp) != 4 or shp[1] not in (None, C)):
        b.refuse(node, f"X {node.input[0]!r} has shape {shp}; W {W.shape} expects (N, {C}, H, W)",
                 "fix the model's shapes")
    pads = [0, 0, 0, 0] if auto == "VALID" else [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        b.refuse(node, f"pads {pads}: expected [top, left, bottom, right] >= 0", "fix the model")
    stride, dilation = _ints2(a, "strides", 1), _ints2(a, "dilations", 1)
    op = _ints2(a, "output_padding", 0)
    has_b = len(node.input) > 2 and bool(node.input[2])
    try:
        m = ConvTranspose2d(C, Og * groups, (kh, kw), stride=stride,
                            padding=(pads[0], pads[2], pads[1], pads[3]),
                            output_padding=op, groups=groups, bias=has_b, dilation=dilation, dtype=b.dt.name)
    except ValueError as e:
        b.refuse(node, str(e), "fix the model")
    m.params["weight"] = W.astype(b.dt)
    if has_b:
        m.params["bias"] = b.const(node, node.input[2], "B").astype(b.dt)

    def run(x):
        X = np.asarray(x[0])
        if X.ndim != 4:
            raise ValueError(f"X: expected (N, C, H, W) for ConvTranspose {node.name!r}, got shape {X.shape}")
        return [m.forward(X.astype(b.dt, copy=False))]
    return _with_module(run, m)


def _pool2d(b, node, a):
    """A 2-D ``MaxPool`` / ``AveragePool`` -> :class:`rnncore.nn.MaxPool2d` / ``AvgPool2d``."""
    from rnncore.nn.conv2d import AvgPool2d, MaxPool2d

    hint = "see docs/importers.md (pooling)"
    refuse = lambda why: b.refuse(node, why, hint)  # noqa: E731
    k = tuple(int(v) for v in a["kernel_shape"])
    stride, dilation = _ints2(a, "strides", 1), _ints2(a, "dilations", 1)
    shp = b.shape_of(node.input[0]) or b.inferred.get(node.input[0])
    if shp is not None and len(shp) != 4:
        refuse(f"X {node.input[0]!r} has shape {shp}; a 2-D pooling takes (N, C, H, W)")
    pads = _auto_pads(node, a, refuse, k, stride, dilation, None if shp is None else shp[2:])
    if pads is None:
        refuse("auto_pad SAME_* at a stride with an input of unknown size (export with explicit pads)")
    for p, kk in zip(pads, (k[0], k[0], k[1], k[1]), strict=True):
        if p > kk // 2:
            refuse(f"pads {pads} (top, bottom, left, right) larger than kernel_shape // 2 (PyTorch's limit, "
                   "which rnncore's pooling keeps)")
    ceil = bool(int(a.get("ceil_mode", 0)))
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            refuse("the Indices output (argmax positions)")
        if int(a.get("storage_order", 0)):
            refuse("storage_order=1")
        m = MaxPool2d(k, stride, tuple(pads), dilation=dilation, ceil_mode=ceil, dtype=b.dt.name)
    else:
        m = AvgPool2d(k, stride, tuple(pads), ceil_mode=ceil,
                      count_include_pad=bool(int(a.get("count_include_pad", 0))), dtype=b.dt.name,
                      dilation=dilation)

    def run(x):
        X = np.asarray(x[0])
        if X.ndim != 4:
            raise ValueError(f"X: expected (N, C, H, W) for {node.op_type} {node.name!r}, got {X.shape}")
        return [_pooled_dtype(node, X, m.forward(X.astype(b.dt, copy=False)))]
    return _with_module(run, m)


class _NodeShim:
    """Just what :func:`ops_recurrent.op_recurrent` asks of the pipeline importer, to convert one
    recurrent node's weights and attributes into a layer description."""

    def __init__(self, b, node) -> None:
        self.b, self.layers, self.rnn_nodes, self.lengths = b, [], [], None
        self.lengths_nodes, self.states, self.node_pipe, self.node_D = [], [], {}, {}

    def data(self, v, node):
        return v

    def resolve_time(self, s, node, want):
        return None

    def const(self, v, node, what):
        if isinstance(v, np.ndarray):
            return v
        self.b.refuse(node, f"{what} must be a constant (initializer)",
                      "make it an initializer (rnncore.io.onnx_import.weights_to_initializers)")

    def refuse(self, node, why):
        self.b.refuse(node, why, "see docs/importers.md for the recurrent attributes rnncore runs")

    def add_layer(self, pipe, layer):
        self.layers.append(layer)
        return pipe + (len(self.layers) - 1,)


def _recurrent(b, node, a):
    from rnncore.io import _build
    from rnncore.io.onnx_import._values import _Seq
    from rnncore.io.onnx_import.ops_recurrent import op_recurrent

    shim = _NodeShim(b, node)
    ins = [_Seq(("T", "B", "F"), (None, None, None), ())]
    def weight(k):    # the initializer as stored (its element type is checked), else the folded value
        name = node.input[k] if len(node.input) > k and node.input[k] else None
        return None if name is None else b.raw.get(name, b.known.get(name))

    ins += [weight(1), weight(2), weight(3), None, None, None]
    if len(node.input) > 7 and node.input[7]:
        b.const(node, node.input[7], "P")
        ins.append(weight(7))
    for k, n in ((1, "W"), (2, "R")):
        if ins[k] is None:
            b.const(node, node.input[k], n)
    if len(node.input) > 3 and node.input[3] and ins[3] is None:
        b.const(node, node.input[3], "B")
    op_recurrent(shim, node, ins, a)
    L = shim.layers[-1]
    shp = b.shape_of(node.input[0])
    if shp is not None and (len(shp) != 3 or shp[2] not in (None, L["input_size"])):
        b.refuse(node, f"X {node.input[0]!r} is declared with shape {shp}; W expects (T, B, "
                       f"{L['input_size']}) data", "fix the model's shapes")
    m = _build.recurrent(L["mode"], L["sd"], input_size=L["input_size"], hidden_size=L["hidden_size"],
                         bidirectional=L["bidirectional"], reset_after=L["reset_after"],
                         activations=L["activations"], clip=L["clip"], input_forget=L["input_forget"],
                         reverse=L["reverse"], dtype=b.dt.name)
    layout = int(a.get("layout", 0))
    lstm = node.op_type == "LSTM"
    D, H = (2 if L["bidirectional"] else 1), L["hidden_size"]
    xb = None if shp is None else shp[1 - layout]          # the data's declared batch size
    for k, kind in ((5, "h"), (6, "c")):
        name = node.input[k] if len(node.input) > k and node.input[k] else None
        st = None if name is None else b.shape_of(name)
        if st is None:
            continue
        want = (D, xb, H) if layout == 0 else (xb, D, H)
        if len(st) != 3 or any(w is not None and v not in (None, w) for v, w in zip(st, want, strict=True)) \
                or (name in b.known and xb is None):
            why = " (a constant state fixes the batch size the data leaves open)" if xb is None else ""
            b.refuse(node, f"initial_{kind} {name!r} has shape {st}, expected {want} for data of shape "
                           f"{shp}{why}",
                     "fix the model's shapes, or feed the state as a graph input")
    n_out = len(node.output)

    def run(x):
        X = np.asarray(x[0]).astype(b.dt, copy=False)
        if X.ndim != 3:
            raise ValueError(f"X: expected 3 axes, got shape {X.shape}")
        Xb = X.transpose(1, 0, 2) if layout == 0 else X                    # (B, T, I)
        B_ = Xb.shape[0]
        lens = x[4] if len(x) > 4 else None
        st = []
        for k in (5, 6):
            v = x[k] if len(x) > k else None
            if v is None:
                v = np.zeros((D, B_, H), b.dt)
            else:
                v = np.asarray(v).astype(b.dt, copy=False)
                if layout == 1:
                    v = v.transpose(1, 0, 2)
            st.append(v)
        state = (st[0], st[1]) if lstm else st[0]
        if lens is not None:
            lens = np.asarray(lens).astype(np.int64)
        y, fin = m.forward(Xb, state=state, lengths=lens)
        hN, cN = fin if lstm else (fin, None)
        Tn = Xb.shape[1]
        Y = y.reshape(B_, Tn, D, H)
        Y = Y.transpose(1, 2, 0, 3) if layout == 0 else Y.transpose(0, 1, 2, 3)
        outs = [Y, hN if layout == 0 else hN.transpose(1, 0, 2)]
        if lstm:
            outs.append(cN if layout == 0 else cN.transpose(1, 0, 2))
        return outs[:n_out]
    return _with_module(run, m)


_LAYERS: dict = {
    "Relu": _act_layer("ReLU"), "Sigmoid": _act_layer("Sigmoid"), "Tanh": _act_layer("Tanh"),
    "HardSigmoid": _act_layer("HardSigmoid"), "Gelu": _act_layer("GELU"), "Conv": _conv, "MatMul": _matmul,
    "LeakyRelu": _act_layer("LeakyReLU"), "Elu": _act_layer("ELU"),
    "InstanceNormalization": _instance_norm,
    "Clip": _clip_layer, "HardSwish": _act_layer("Hardswish"), "Softplus": _act_layer("Softplus"),
    "Softsign": _act_layer("Softsign"),
    "Gemm": _gemm,
    "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
    "RNN": _recurrent, "GRU": _recurrent, "LSTM": _recurrent,
    "MaxPool": _pool, "AveragePool": _pool,
    "ConvTranspose": _conv_transpose,
}
# ops whose output shape a runtime input other than the first gives (its values, not its shape)
_SHAPE_ARGS = {"Reshape", "Slice", "Pad", "Expand", "ConstantOfShape", "Range", "Split", "ReduceMean",
               "ReduceSum", "ReduceMax", "ReduceMin", "Squeeze", "Unsqueeze", "Tile", "Resize", "TopK",
               "OneHot"}
_SHAPE_ARG0 = {"ConstantOfShape", "Range"}     # ... or the first
# constant folding of these needs no layer: fold with NumPy
_FOLD = {"Relu": _unary(lambda v: np.maximum(v, 0)), "Sigmoid": _unary(_sigmoid_np), "Tanh": _unary(np.tanh),
         "HardSigmoid": _hard_sigmoid_np, "MatMul": _matmul_np, "LeakyRelu": _leaky, "Elu": _elu,
         "Clip": _clip, "HardSwish": _hard_swish, "Softplus": _unary(_softplus),
         "Softsign": _unary(lambda v: v / (1 + np.abs(v)))}


def build_graph(model, dtype: str = "float64", inputs=None, outputs=None, constants=None,
                input_shapes=None, fold_sizes: bool = True) -> OnnxGraph:
    """The graph (or the sub-graph from ``inputs`` to ``outputs``) as an :class:`OnnxGraph`
    (``fold_sizes=False``: the shape arithmetic on runtime tensors is not folded on their declared
    sizes, see :meth:`_Builder.pshape`).

    The model must pass ONNX's type inference
    (``onnx.shape_inference.infer_shapes(check_type=True)``): a graph onnxruntime refuses for
    its types is refused here, not run."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError, ...
        msg = str(e).strip().splitlines()
        raise _Refused(f"from_onnx: the graph's types do not check (onnx.shape_inference: "
                       f"{msg[0] if msg else type(e).__name__})") from e
    b = _Builder(model, dtype, inputs, outputs, constants, input_shapes)
    b.fold_sizes = fold_sizes
    b.inferred = {v.name: tuple(d.dim_value if d.HasField("dim_value") else None
                                for d in v.type.tensor_type.shape.dim)
                  for v in inferred.graph.value_info
                  if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
    return b.build()


def _derived_shapes(model, b) -> dict:
    """Tensor name -> shape (None per dynamic axis) that ONNX's shape inference derives from the graph
    inputs' declared shapes (``input_shapes=`` where given) alone: the exporter's ``value_info`` and
    output shapes, which onnxruntime does not check, are dropped first; ``If`` branches included."""
    import onnx

    if any(n not in {v.name for v in model.graph.input} for n in b.inputs):
        return {}         # a sub-graph from inner tensors: their sizes are the caller's, not derived
    m = onnx.ModelProto()
    m.CopyFrom(model)

    def clear(g) -> None:
        del g.value_info[:]
        for o in g.output:
            if o.type.HasField("tensor_type"):
                o.type.tensor_type.ClearField("shape")
        for sub in (sg for n in g.node for sg in _subgraphs(n)):
            clear(sub)

    clear(m.graph)
    for v in m.graph.input:
        shp = b.fixed.get(v.name)
        if shp is not None and v.type.HasField("tensor_type"):
            dims = v.type.tensor_type.shape.dim
            del dims[:]
            for d in shp:
                dim = dims.add()
                if d is not None:
                    dim.dim_value = d
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=True)
    except Exception:  # noqa: BLE001 - the graph checked above; without it nothing is derived
        return {}
    out: dict = {}

    def collect(g) -> None:
        for v in g.value_info:
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
                out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                    for d in v.type.tensor_type.shape.dim)
        for sub in (sg for n in g.node for sg in _subgraphs(n)):
            collect(sub)

    collect(m.graph)
    return out
