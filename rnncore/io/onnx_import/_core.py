"""The importer core: load the model, walk the graph node by node, dispatch each node to its
op handler (:mod:`~rnncore.io.onnx_import._registry`), then build the rnncore model from the
layers the handlers recorded."""

from __future__ import annotations

import os

import numpy as np

from rnncore.io import _build
from rnncore.io.files import MAX_MODEL_BYTES, check_file

# the handler modules register their ops on import
from rnncore.io.onnx_import import ops_front, ops_graph, ops_head, ops_recurrent  # noqa: F401
from rnncore.io.onnx_import._graph import build_graph
from rnncore.io.onnx_import._registry import OPS
from rnncore.io.onnx_import._unsort import drop_length_sort
from rnncore.io.onnx_import._values import (
    OnnxSignature,
    _attrs,
    _Final,
    _FinalCat,
    _Input,
    _Refused,
    _Seq,
    _SumT,
)
from rnncore.nn.module import Module
from rnncore.spec import ModelSpec


class _Importer:
    def __init__(self, model, dtype: str, strip_final_activation: bool = False):
        from onnx import numpy_helper

        self.dtype = dtype
        self.strip = strip_final_activation
        self.stripped: list = []
        g = model.graph
        self.g = g
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.vals: dict = {}
        for v in list(g.input) + list(g.output):
            if v.type.WhichOneof("value") != "tensor_type" or v.type.tensor_type.elem_type == 0:
                raise _Refused(f"from_onnx: graph {'input' if v in g.input else 'output'} {v.name!r} "
                               "must be a tensor of a defined element type")
        for t in g.initializer:
            try:
                self.vals[t.name] = numpy_helper.to_array(t)
            except Exception as e:  # noqa: BLE001 - an unknown element type, data of the wrong size, ...
                raise _Refused(f"from_onnx: initializer {t.name!r} cannot be read "
                               f"({type(e).__name__}: {e})") from e
        for i in g.input:
            if i.name in self.vals:
                continue
            tt = i.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            integer = tt.elem_type in (6, 7, 2, 3, 4, 5, 12, 13)   # int32/int64/uint8/int8/...
            self.vals[i.name] = _Input(i.name, shape, integer)
        self.layers: list[dict] = []
        self.engine = False              # the model is for the C engine (as_spec, graph=False)
        self.main: str | None = None
        self.alias: dict = {}
        self.lengths: str | None = None
        self.lengths_nodes: list = []
        self.states: list = []
        self.rnn_nodes: list = []        # layer index of each recurrent node, in order
        self.node_pipe: dict = {}        # node index -> pipe of its Y
        self.node_D: dict = {}

    # -- helpers ---------------------------------------------------------------------------
    def check_attribute_types(self, node) -> None:
        """Refuse attributes the operator's schema (at the model's opset) does not declare, or
        declares with another type (what ``onnx.checker`` and onnxruntime refuse too)."""
        from onnx import AttributeProto, defs

        try:
            schema = defs.get_schema(node.op_type, self.opset, "")
        except Exception:  # noqa: BLE001 - no schema at this opset: the handler decides
            return
        for a in node.attribute:
            want = schema.attributes.get(a.name)
            if want is None:
                self.refuse(node, f"attribute {a.name!r} is not an attribute of {node.op_type} "
                                  f"(opset {self.opset})")
            if a.type != want.type:
                self.refuse(node, f"attribute {a.name!r}: expected type "
                                  f"{AttributeProto.AttributeType.Name(want.type)}, got "
                                  f"{AttributeProto.AttributeType.Name(a.type)}")

    def refuse(self, node, why):
        raise _Refused(f"from_onnx: node {node.name or '?'!r} ({node.op_type}): {why}")

    def lab(self, a):
        while a in self.alias:
            a = self.alias[a]
        return a

    def data(self, v, node):
        """The value as model data (turning the graph input it is into the model's input)."""
        if isinstance(v, _Input):
            if self.main is not None and self.main != v.name:
                self.refuse(node, f"a second data input {v.name!r} (the model's input is {self.main!r})")
            self.main = v.name
            if v.integer:
                if len(v.shape) != 2:
                    self.refuse(node, f"integer input {v.name!r} must be (batch, time) token ids")
                s = _Seq(("X0", "X1"), (None, None), (), integer=True)
            else:
                if len(v.shape) != 3:
                    self.refuse(node, f"input {v.name!r} must have 3 axes, got {v.shape}")
                s = _Seq(("X0", "X1", "F"), (None, None, v.shape[2]), ())
            self.vals[v.name] = s
            return s
        if isinstance(v, _FinalCat | _Final):
            return self.pool_from_final(v, node)
        if isinstance(v, _SumT):
            self.refuse(node, f"reads the sum over time from {v.node!r}: expected it divided by the "
                              "recurrent nodes' sequence_lens as a column (sum(1) / lengths[:, None], the "
                              "mean over the valid steps)")
        if not isinstance(v, _Seq):
            self.refuse(node, f"expected the model's data here, got {type(v).__name__.strip('_')}")
        return v

    def const(self, v, node, what):
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, np.generic):
            return np.asarray(v)
        self.refuse(node, f"{what} must be a constant (initializer), got {type(v).__name__.strip('_')}")

    def axes_arg(self, node, ins, a):
        """The ``axes`` of Squeeze / Unsqueeze / ReduceMean: an attribute (old opsets) or input 1."""
        if "axes" in a:
            return list(a["axes"])
        if len(ins) > 1 and ins[1] is not None:
            return [int(x) for x in np.atleast_1d(self.const(ins[1], node, "axes"))]
        return None

    def add_layer(self, pipe, layer):
        self.layers.append(layer)
        return pipe + (len(self.layers) - 1,)

    def pool_from_final(self, v, node):
        """h_n of the last layer, used as features: the same as pooling the last step."""
        if isinstance(v, _Final):
            if len(v.entries) != 1 or len(v.axes) != 3:
                self.refuse(node, "final states of several layers/directions used as features")
            entries = v.entries
        else:
            entries = v.entries
        nodes = {e[0] for e in entries}
        if len(nodes) != 1 or any(e[2] != "h" for e in entries):
            self.refuse(node, "only the hidden final state of one recurrent node can feed a head")
        n = nodes.pop()
        D = self.node_D[n]
        dirs = [e[1] for e in entries]
        if dirs not in ([0], [0, 1]) or len(dirs) != D:
            self.refuse(node, f"final-state directions {dirs} of a {D}-direction node are not a last-step "
                              "pooling (use both, forward first)")
        if self.layers[self.node_pipe[n][-1]].get("reverse"):
            self.refuse(node, "final state of a reverse-only node used as features")
        pipe = self.node_pipe[n]
        H = self.layers[pipe[-1]]["hidden_size"]
        return _Seq(("B", "F"), (None, D * H), self.add_layer(pipe, {"kind": "pool", "pool": "last",
                                                                      "bidirectional": D == 2}))

    def resolve_time(self, s: _Seq, node, want: tuple):
        """Match the first two axes of ``s`` to ``want`` (('T', 'B') or ('B', 'T'))."""
        for a, w in zip(s.axes[:2], want, strict=True):
            a = self.lab(a)
            if a in ("X0", "X1"):
                self.alias[a] = w
            elif a != w:
                self.refuse(node, f"reads its input as {want + ('F',)} but the data is "
                                  f"{tuple(self.lab(x) for x in s.axes)}")

    # -- driver: walk the graph, dispatch every node through the op registry ---------------
    def run(self):
        for node in self.g.node:
            if node.domain not in ("", "ai.onnx"):
                self.refuse(node, f"operator domain {node.domain!r}")
            handler = OPS.get(node.op_type)
            if handler is None:
                self.refuse(node, f"operator not supported by the rnncore importer: no handler for op type "
                                  f"{node.op_type!r} (supported: {', '.join(sorted(OPS))})")
            ins = [self.vals.get(i) if i else None for i in node.input]
            for name, i in zip(node.input, ins, strict=True):
                if name and i is None:
                    self.refuse(node, f"input {name!r} is not available (no graph input, initializer "
                                      "or earlier node output has that name)")
            self.check_attribute_types(node)
            try:
                outs = handler(self, node, ins, _attrs(node))
            except (TypeError, KeyError, IndexError, AttributeError) as e:
                # a malformed node the handler's checks did not anticipate: named, not a crash
                self.refuse(node, f"malformed node ({type(e).__name__}: {e})")
            for name, v in zip(node.output, outs, strict=False):
                if name:
                    self.vals[name] = v
        if any(self.lengths_nodes) and not all(self.lengths_nodes):
            raise _Refused("from_onnx: sequence_lens feeds some recurrent nodes but not others")


def _load(path_or_model, max_bytes: int = MAX_MODEL_BYTES):
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if not isinstance(path_or_model, str | bytes) and not hasattr(path_or_model, "__fspath__"):
        raise TypeError(f"from_onnx: expected a path, the model's bytes or an onnx.ModelProto, "
                        f"got {type(path_or_model).__name__}")
    if not isinstance(path_or_model, bytes):
        check_file(path_or_model, max_bytes, "ONNX model file")  # before onnx reads it whole
    try:
        if isinstance(path_or_model, bytes):
            return onnx.load_from_string(path_or_model)
        return onnx.load(os.fspath(path_or_model))
    except OSError:
        raise
    except Exception as e:      # protobuf's DecodeError and friends
        raise ValueError(f"from_onnx: not a readable ONNX model ({type(e).__name__}: {e})") from e


def weights_to_initializers(model, names):
    """Copy of ``model`` where the graph inputs ``names`` (a dict name -> array) are initializers.

    ONNX's own backend tests feed ``W``, ``R``, ``B`` and ``P`` as graph inputs; an importer
    needs them as constants.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for n, v in names.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), n))
    return m


def from_onnx(path_or_model, *, dtype: str = "float64", strip_final_activation: bool = False,
              as_spec: bool = False, max_bytes: int = MAX_MODEL_BYTES, inputs: list | None = None,
              outputs: list | None = None, graph: bool = True,
              constants: dict | None = None, input_shapes: dict | None = None) -> Module | ModelSpec:
    """Convert an ONNX model with RNN/GRU/LSTM nodes into an rnncore reference model.

    Parameters
    ----------
    path_or_model : a ``.onnx`` path, the serialized bytes or an ``onnx.ModelProto``
    dtype : "float64" or "float32"
    strip_final_activation : drop a ``Softmax`` / ``LogSoftmax`` / ``Sigmoid`` on the last axis
        right after the head, as the graph's output (the model then returns the head's logits;
        ``model.onnx_io.stripped`` names the dropped op). Without it the final activation is kept
        (``rc.nn.Softmax`` / ``LogSoftmax`` / ``Sigmoid``, the engine's head activation)
    as_spec : return the model's :class:`~rnncore.spec.ModelSpec` (the description the C core,
        the references and the ``.rnc`` writer read) instead of the ``rc.nn`` model; a model
        the C core cannot run is refused (ValueError naming the module)
    max_bytes : largest ``.onnx`` file read from a path (default 2 GiB,
        :data:`rnncore.io.files.MAX_MODEL_BYTES`); a larger or non-regular file (a FIFO,
        ``/dev/zero``) is refused before it is read
    inputs, outputs : tensor names: import the sub-graph that computes ``outputs`` from
        ``inputs`` (default: the graph's own inputs and outputs) as an
        :class:`~rnncore.io.onnx_import._graph.OnnxGraph` (e.g. the recurrent tail after an
        image CNN)
    graph : False: only a chain of recurrent layers and a head (what ``rc.compile``, ``.rnc``
        files and ``rnncore convert`` need); a graph that is not one is refused naming the
        node instead of imported as an ``OnnxGraph``. ``as_spec=True`` implies it.
    constants : ``{input name: value}``: graph inputs fixed in use (Silero VAD's sample rate
        ``sr``), imported as constants: the model no longer takes them, and an ``If`` whose
        condition then is a constant becomes the nodes of the branch it takes (an ``If`` on the
        data is refused naming it). The value gets the input's declared element type and must fit
        its declared shape. Imports an ``OnnxGraph``.
    input_shapes : ``{input name: shape}``: the shapes the model is used with, a tuple with an
        int per axis (``None`` leaves an axis open), checked against the graph's declared shape.
        A chunk model's chunk, ``{"input": (1, 576)}`` (Silero VAD v5: 512 samples and the 64 of
        context its wrapper prepends), makes its front-end per-step records ``rc.compile``
        lowers. An input whose every axis is given fixes the shape of everything computed from it:
        ``Shape`` / ``Size`` of those tensors become constants and an ``If`` on them the branch it
        takes. The model then refuses inputs of other shapes. Imports an ``OnnxGraph``.

    Returns
    -------
    ``rc.nn.RNN/GRU/LSTM``, :class:`rnncore.nn.extended.ExtendedRecurrent` (for ONNX-only
    options) or ``rc.nn.Sequential``; it reads ``x (B, T, F)``. ``model.onnx_io`` is an
    :class:`OnnxSignature` describing how the ONNX inputs and outputs map onto ``forward``.

    A graph that is not one chain of recurrent layers and a head (a front-end before the
    recurrent layer, shape arithmetic, element-wise ops, several inputs and outputs), or any
    graph imported with ``inputs`` / ``outputs``, becomes an
    :class:`~rnncore.io.onnx_import._graph.OnnxGraph`: a graph model of rnncore layers whose
    ``forward`` takes the graph's inputs and returns its outputs (names and layouts as in the
    graph). It runs on the NumPy reference; ``as_spec=True`` refuses it.

    Raises
    ------
    ValueError naming the node (and op type) the importer does not understand.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ImportError("from_onnx needs the 'onnx' package: pip install onnx") from e
    onnx_model = drop_length_sort(_load(path_or_model, max_bytes))
    if inputs is not None or outputs is not None or constants or input_shapes:
        if as_spec:
            raise _Refused("from_onnx: as_spec=True with inputs/outputs/constants/input_shapes: a sub-graph "
                           "imports as an OnnxGraph (rc.compile lowers it)")
        return build_graph(onnx_model, dtype, inputs, outputs, constants, input_shapes)
    try:
        return _from_onnx_pipeline(onnx_model, dtype, strip_final_activation, as_spec,
                                   engine=as_spec or not graph)
    except _Refused as chain_error:
        if as_spec or not graph:
            raise
        try:
            return build_graph(onnx_model, dtype)
        except _Refused as graph_error:
            # a node no rnncore layer runs: the whole-graph message names it and what to do;
            # otherwise both importers' reasons
            if "no layer or operation for op type" in str(graph_error):
                raise graph_error from None
            raise _Refused(f"{chain_error}; imported as a whole graph: "
                           f"{str(graph_error).removeprefix('from_onnx: ')}") from None


def _check_padding_stays_zero(imp, pipe) -> None:
    """Past a ``sequence_lens`` length the recurrent nodes write zeros, and so does rnncore; a
    per-step layer after the last of them that maps zeros to something else (a Linear's bias, a
    softmax / sigmoid) writes that there in ONNX, and zeros in rnncore: refused. So is a mean over
    time after them: ONNX's ``ReduceMean`` divides the sum, padding zeros included, by ``T``,
    rnncore's masked mean by each sequence's length (a ``ReduceSum`` divided by the lengths is
    rnncore's: accepted)."""
    kinds = [imp.layers[i]["kind"] for i in pipe]
    last_rnn = max(k for k, kind in enumerate(kinds) if kind == "rnn")
    for i in pipe[last_rnn + 1:]:
        layer = imp.layers[i]
        if layer["kind"] == "pool" and layer.get("op") == "GlobalAveragePool":
            raise _Refused(
                f"from_onnx: node {layer['node']!r} (GlobalAveragePool): the recurrent nodes read "
                f"sequence_lens {imp.lengths!r}, and the mean over time takes every step: ONNX divides "
                "the sum of every step, the zeros past a sequence's length included, by T, rnncore's "
                "masked mean by the length (expected the final state or a ReduceSum over time divided by "
                "the lengths after a node with sequence_lens; for the mean over the valid steps import "
                "the model without sequence_lens and pass lengths= to run)")
        if layer["kind"] == "pool" and layer["pool"] == "mean" and layer.get("over") != "lengths":
            raise _Refused(
                f"from_onnx: the recurrent nodes read sequence_lens {imp.lengths!r}, and after them "
                "ReduceMean averages over time: ONNX divides the sum of every step, the zeros past a "
                "sequence's length included, by T, rnncore's masked mean by the length (expected the "
                "final state or the last valid step after a node with sequence_lens; for the mean over "
                "the valid steps import the model without sequence_lens and pass lengths= to run)")
        if layer["kind"] == "pool" and layer["pool"] == "max":
            raise _Refused(
                f"from_onnx: node {layer['node']!r} (ReduceMax/GlobalMaxPool): the recurrent nodes read "
                f"sequence_lens {imp.lengths!r}, and the maximum over time takes every step: ONNX's zeros "
                "past a sequence's length included, where rnncore's masked max takes the valid steps "
                "(expected the final state or a ReduceSum over time divided by the lengths after a node "
                "with sequence_lens; for the max over the valid steps import the model without "
                "sequence_lens and pass lengths= to run)")
        if layer["kind"] == "pool":
            return
        bias = layer.get("bias") if layer["kind"] == "linear" else None
        if layer["kind"] == "module" or (bias is not None and np.any(bias)):
            what = (f"a Linear with bias (up to {float(np.abs(bias).max()):.3g})" if layer["kind"] == "linear"
                    else f"a {type(layer['module']).__name__}")
            raise _Refused(
                f"from_onnx: the recurrent nodes read sequence_lens {imp.lengths!r}, and after them {what} "
                "runs on every step: past a sequence's length ONNX writes its value of zeros there, rnncore "
                "zeros (expected per-step layers that keep zeros zero after a node with sequence_lens, or "
                "a pooling first: the final state, the last valid step)")


def _from_onnx_pipeline(onnx_model, dtype, strip_final_activation, as_spec, engine=False):
    imp = _Importer(onnx_model, dtype, strip_final_activation)
    imp.engine = engine      # for the C engine: its limits are refused naming the node (ops_front)
    imp.run()
    g = imp.g
    outputs = [o.name for o in g.output]
    # the model is the longest chain of layers that reaches an output
    pipes = []
    for name in outputs:
        v = imp.vals.get(name)
        if v is None:
            raise _Refused(f"from_onnx: graph output {name!r} is produced by no node, initializer "
                           "or input")
        if isinstance(v, _Seq):
            pipes.append(v.pipe)
        elif isinstance(v, _Final | _FinalCat):
            pipes.append(imp.node_pipe[v.entries[0][0]])
    if not pipes or not imp.rnn_nodes:
        raise _Refused("from_onnx: no recurrent node reaches a graph output")
    pipe = max(pipes, key=len)
    for p in pipes:
        if p != pipe[:len(p)]:
            raise _Refused("from_onnx: the graph outputs come from different branches")
    if imp.lengths is not None:
        _check_padding_stays_zero(imp, pipe)
    modules, node_rows = _build.build_layers([imp.layers[i] for i in pipe], dtype)
    model = _build.sequential(modules)
    lay = imp.lab("X0")
    sig = OnnxSignature(input=imp.main, input_layout="TB" if lay == "T" else "BT", lengths=imp.lengths,
                        node_rows=node_rows, directions=dict(imp.node_D), stripped=imp.stripped)
    for name, n, kind, axes, rows in imp.states:
        if n not in node_rows:
            raise _Refused(f"from_onnx: initial state {name!r} feeds a node outside the model")
        sig.states.append((name, n, kind, axes, rows))
    for name in outputs:
        v = imp.vals.get(name)
        if v is None:
            raise _Refused(f"from_onnx: graph output {name!r} is produced by no node, initializer "
                           "or input")
        if isinstance(v, _Seq):
            if v.pipe != pipe:
                raise _Refused(f"from_onnx: output {name!r} is an intermediate result of the model")
            kept = next((imp.layers[i] for i in pipe if "op" in imp.layers[i]), None)
            if "T1" in v.axes and kept is not None:
                op = "ReduceMax/GlobalMaxPool" if kept["pool"] == "max" else kept["op"]
                raise _Refused(f"from_onnx: node {kept['node']!r} ({op}) keeps the time "
                               f"axis (keepdims) to the output {name!r}: expected it squeezed (Squeeze, "
                               "Flatten) before the output")
            sig.outputs.append((name, "y", tuple(imp.lab(x) for x in v.axes)))
        elif isinstance(v, _Final):
            sig.outputs.append((name, "state", list(v.entries), v.axes))
        else:
            sig.outputs.append((name, "state", list(v.entries), ("B", "H")))
    model.onnx_io = sig
    return _build.as_spec(model, as_spec)


