"""Export rnncore models as standard ONNX: ``rc.io.to_onnx(model, path)``.

The model is first described as a :class:`~rnncore.spec.ModelSpec` (the one description
that ``rc.compile``, the references and the ``.rnc`` writer read, built by
:func:`~rnncore.spec.spec_from_model` from ``rc.nn`` models and by
:func:`~rnncore.spec.spec_from_rnc` from f32 ``.rnc`` files and engines), then written with
standard ONNX operators only:

* each recurrent layer is one ONNX ``RNN`` / ``GRU`` / ``LSTM`` node (``layout=0``, time-major
  inside the graph), ``direction="bidirectional"`` for two directions. Weights are the exact
  inverse of what :func:`~rnncore.io.from_onnx` reads: gate blocks PyTorch ``r, z, n`` -> ONNX
  ``z, r, h`` (GRU) and ``i, f, g, o`` -> ``i, o, f, c`` (LSTM); ``B = [bias_ih | bias_hh]``;
  the GRU's ``reset_after=True`` form is ``linear_before_reset=1`` and ``reset_after=False``
  is ``linear_before_reset=0``; an RNN with ``relu`` has ``activations=["Relu"]`` (per
  direction);
* the embedding is a ``Gather`` of the table by token ids;
* last-step pooling reads the nodes' final state ``Y_h`` (forward half at each sequence's
  last valid step, backward half at ``t = 0``, like ``rc.nn.LastStep(bidirectional=True)``),
  or ``y[b, lengths[b] - 1]`` with ``Gather`` / ``GatherND`` (``rc.nn.LastStep()`` after a
  bidirectional layer, and any last step taken after per-step layers);
* mean pooling (``rc.nn.MaskedMean``) is ``ReduceMean`` over time, or with ``lengths`` a
  ``ReduceSum`` of the valid steps over ``max(lengths, 1)``; max pooling (``rc.nn.MaskedMax``) is
  ``ReduceMax`` over time, with ``lengths`` of the steps past each length set to ``-inf`` (a
  length of 0 pools zeros); attention pooling
  (``rc.nn.AttentionPool``) is ``e = tanh(x W^T + b) v``, ``Softmax`` over the valid steps and
  the weighted ``ReduceSum`` over time;
* per-step layers (the spec's ``front``, ``mid``, ``post``, ``post_pooled`` records) act on the
  last axis wherever they stand: a per-step Linear is ``MatMul`` + ``Add``, activations are
  ``Relu`` / ``Tanh`` / ``Sigmoid`` / ``HardSigmoid`` / GELU from ``Erf`` (or ``Tanh``),
  ``LayerNorm`` is ``LayerNormalization`` (opset >= 17), an inference ``BatchNorm1d`` ``Mul`` +
  ``Add``, ``MulHalves`` two ``Slice`` + ``Mul``, a ``Residual`` an ``Add``;
* the head is ``Gemm`` (after pooling) or ``MatMul`` + ``Add`` (at every step), followed by
  ``Relu`` / ``Sigmoid`` / ``Tanh`` / ``Softmax`` (last axis).

The graph's interface is rnncore's (batch-major, like ``forward``)::

    x        float32 (batch, time, input_size)       -- or, with an embedding,
    tokens   int64   (batch, time)
    lengths  int32   (batch,)            with lengths=True: valid steps per sequence, in [0, time]
    h0, c0   float32 (L*D, batch, H)     with initial_state=True (c0: LSTM stacks)
    ->
    y        float32 (batch, time, F) per step, or (batch, F) after pooling
    h_n, c_n float32 (L*D, batch, H)     with final_state=True

``batch`` and ``time`` are dynamic. State rows are PyTorch's ``[l0 fwd, l0 bwd, l1 fwd, ...]``
(what ``rc.nn`` layers and engine streams use). A stack whose layers differ in hidden size
or mix LSTM with other cells has one state input / output per layer instead:
``h0_l{k}`` / ``c0_l{k}`` / ``h_n_l{k}`` / ``c_n_l{k}`` of shape ``(D_k, batch, H_k)``.
As in rnncore, outputs past a sequence's length are zero and its state stays at its last
valid step (a length of 0 leaves the initial state and pools zeros).
"""

from __future__ import annotations

import os

import numpy as np

from rnncore.spec import ModelSpec, _front_width, spec_from_model

#: the opset written by default; the ops used exist unchanged from opset 14 on (LayerNormalization:
#: from opset 17)
DEFAULT_OPSET = 17
MIN_OPSET = 14

_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "gru": "GRU", "lstm": "LSTM"}
_ACT_OP = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
           "log_softmax": "LogSoftmax"}


def _export_perm(op: str, hidden: int) -> np.ndarray:
    """Row order that turns PyTorch-ordered gate blocks into ONNX's: the inverse of the
    importer's table (:data:`rnncore.io.onnx_import.ops_recurrent._GATE_PERM`, which lists for
    each PyTorch gate position the ONNX block it comes from)."""
    from rnncore.io.onnx_import.ops_recurrent import _GATE_PERM

    torch_block_of_onnx = np.argsort(_GATE_PERM[op])
    return np.concatenate([np.arange(hidden) + hidden * int(k) for k in torch_block_of_onnx])


def _describe(model: object) -> ModelSpec:
    """The model's ModelSpec, with errors that name the layer and say why ONNX cannot take it."""
    from rnncore.nn.extended import ExtendedRecurrent, ReverseTime

    if isinstance(model, ModelSpec):
        try:
            model.validate()
        except ValueError as e:
            raise ValueError(f"to_onnx: model: {e}") from None
        return model
    if isinstance(model, str | os.PathLike | bytes | bytearray) or type(model).__name__ == "Engine":
        return _spec_of_rnc(model)
    mods = (list(model._modules.items()) if type(model).__name__ == "Sequential"
            and hasattr(model, "_modules") else [("", model)])
    for name, m in mods:
        where = f"module {name!r} ({type(m).__name__})" if name else type(m).__name__
        if isinstance(m, ExtendedRecurrent | ReverseTime):
            raise ValueError(
                f"to_onnx: {where} is not supported: the exporter writes plain RNN/GRU/LSTM layers "
                "(rc.nn.RNN/GRU/LSTM); the ONNX-only options (activations, clip, peepholes, "
                "input_forget, reverse, proj_size) are not exported")
        if getattr(m, "proj_size", 0):
            raise ValueError(
                f"to_onnx: {where} has proj_size={m.proj_size}; the ONNX LSTM operator has no "
                "output projection")
    try:
        return spec_from_model(model)
    except ValueError as e:
        msg = str(e)
        msg = msg[len("compile: "):] if msg.startswith("compile: ") else msg
        raise ValueError(f"to_onnx: {msg}") from None


def _spec_of_rnc(model: object) -> ModelSpec:
    """The float model inside an f32 ``.rnc`` file (a path, its bytes, or an ``rc.Engine``)."""
    from rnncore.io.rnc import read_rnc
    from rnncore.spec import spec_from_rnc

    if isinstance(model, str | os.PathLike):
        with open(model, "rb") as f:
            data, what = f.read(), f"model file {os.fspath(model)!r}"
    elif isinstance(model, bytes | bytearray):
        data, what = bytes(model), "model bytes"
    else:
        data, what = model.data, "engine"
    try:
        d = read_rnc(data)
    except ValueError as e:
        raise ValueError(f"to_onnx: {what}: {e}") from None
    if d["precision"] != "f32":
        raise ValueError(
            f"to_onnx: {what} has precision {d['precision']!r}; only f32 models export (the q8 engine's "
            "int8 arithmetic is not what ONNX's float RNN/GRU/LSTM operators compute). Export the float "
            "model it was compiled from, or an f32 .rnc file")
    return spec_from_rnc(d)


def _uniform_state(spec: ModelSpec) -> bool:
    """One ``h0`` (L*D, B, H) for the whole stack: equal hidden sizes, all LSTM or none (the
    rule of engine streams' ``state``)."""
    return (len({ls.hidden_size for ls in spec.layers}) == 1
            and len({ls.cell == "lstm" for ls in spec.layers}) == 1)


def _places(spec: ModelSpec) -> list[tuple[str, str, list]]:
    """Every list of per-step records: ``(name, where, records)`` (the name prefixes the nodes)."""
    out = [("front", "before the recurrent layers", spec.front)]
    out += [(f"mid{k}", f"between recurrent layers {k} and {k + 1}", m) for k, m in enumerate(spec.mid)]
    return out + [("post", "after the recurrent layers", spec.post),
                  ("post_pooled", "after the pooling", spec.post_pooled)]


def _is_step_linear(r: dict) -> bool:
    """A ``frame_conv1d`` record that is a per-step ``Linear`` (frame and kernel of 1, no padding)."""
    return (all(int(r.get(key, 1)) == 1 for key in ("frame_length", "kernel_size", "stride", "dilation",
                                                     "groups"))
            and int(r.get("pad_left", 0)) == 0 and int(r.get("pad_right", 0)) == 0)


def _check_records(spec: ModelSpec, opset: int) -> None:
    """Refuse, naming the record and where it stands, a per-step record without an ONNX form here."""
    for _, where, recs in _places(spec):
        for n, r in enumerate(recs):
            kind = str(r.get("kind", r))
            why = None
            if kind in ("frame_conv1d", "frame_conv") and not _is_step_linear(r):
                why = ("a convolution within each step's frame (frame_length > 1) does not export; a "
                       "per-step Linear (frame_length = kernel_size = 1) does")
            elif kind == "layer_norm" and opset < 17:
                why = f"ONNX LayerNormalization needs opset >= 17, got opset={opset}"
            elif kind == "residual" and int(r["span"]) > n:
                why = (f"it adds the input of a record {int(r['span'])} back, before this list of records "
                       "(a Residual around a recurrent layer), which the exporter does not write")
            elif kind not in _RECORD_KINDS:
                why = (f"the exporter writes the per-step records {', '.join(_RECORD_KINDS)} "
                       "(Linear, activations, LayerNorm, BatchNorm1d, MulHalves, Residual)")
            if why:
                raise ValueError(f"to_onnx: per-step record {n} ({kind!r}, {where}) does not export: {why}")


_RECORD_KINDS = ("frame_conv1d", "frame_conv", "relu", "sigmoid", "tanh", "hard_sigmoid", "hardsigmoid",
                 "gelu", "layer_norm", "scale_shift", "mul_halves", "residual")


def _emit_records(g: _Graph, recs: list, x: str, width: int, prefix: str) -> str:
    """The per-step records ``recs`` on ``x (..., width)`` (the last axis the features): standard ONNX
    ops, node and initializer names ``{prefix}.{n}.*``; returns the output's name."""
    f32 = np.float32
    inputs: list[str] = []
    for n, r in enumerate(recs):
        inputs.append(x)
        kind, t, p = str(r["kind"]), r.get("tensors", {}), f"{prefix}.{n}"
        if kind == "residual":
            x = g.one("Add", [x, inputs[len(inputs) - 1 - int(r["span"])]], name=f"{p}.residual")
        elif kind in ("frame_conv1d", "frame_conv"):                     # y = x W^T + b
            w = np.asarray(t["weight"], f32)[:, :, 0]
            x = g.one("MatMul", [x, g.const(f"{p}.weight_t", np.ascontiguousarray(w.T))],
                      name=f"{p}.linear")
            if t.get("bias") is not None:
                x = g.one("Add", [x, g.const(f"{p}.bias", np.asarray(t["bias"], f32))],
                          name=f"{p}.linear_bias")
        elif kind in ("relu", "sigmoid", "tanh"):
            x = g.one(_ACT_OP[kind], [x], name=f"{p}.{kind}")
        elif kind in ("hard_sigmoid", "hardsigmoid"):                   # clip(alpha x + beta, 0, 1)
            x = g.one("HardSigmoid", [x], name=f"{p}.hard_sigmoid", alpha=float(r.get("alpha", 1 / 6)),
                      beta=float(r.get("beta", 0.5)))
        elif kind == "gelu":
            half = g.const("gelu.half", np.array(0.5, f32))
            one = g.const("gelu.one", np.array(1.0, f32))
            if r.get("approximate", "none") == "tanh":   # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                cube = g.one("Mul", [g.one("Mul", [x, x], name=f"{p}.x2"), x], name=f"{p}.x3")
                u = g.one("Add", [x, g.one("Mul", [cube, g.const("gelu.c3", np.array(0.044715, f32))],
                                           name=f"{p}.c3x3")], name=f"{p}.poly")
                u = g.one("Mul", [u, g.const("gelu.sqrt_2_over_pi", np.array(np.sqrt(2 / np.pi), f32))],
                          name=f"{p}.u")
                inner = g.one("Tanh", [u], name=f"{p}.tanh")
            else:                                            # x/2 (1 + erf(x / sqrt 2))
                inner = g.one("Erf", [g.one("Mul", [x, g.const("gelu.rsqrt2", np.array(np.sqrt(0.5), f32))],
                                            name=f"{p}.scaled")], name=f"{p}.erf")
            x = g.one("Mul", [g.one("Mul", [x, half], name=f"{p}.half_x"),
                              g.one("Add", [inner, one], name=f"{p}.one_plus")], name=f"{p}.gelu")
        elif kind == "layer_norm":
            feats = int(r["features"])
            w = t.get("weight")
            ins = [x, g.const(f"{p}.scale", np.asarray(np.ones(feats) if w is None else w, f32))]
            if t.get("bias") is not None:
                ins.append(g.const(f"{p}.bias", np.asarray(t["bias"], f32)))
            x = g.one("LayerNormalization", ins, name=f"{p}.layer_norm", axis=-1,
                      epsilon=float(r.get("eps", 1e-5)))
        elif kind == "scale_shift":                                     # x * scale + shift
            x = g.one("Mul", [x, g.const(f"{p}.scale", np.asarray(t["scale"], f32))], name=f"{p}.scale")
            x = g.one("Add", [x, g.const(f"{p}.shift", np.asarray(t["shift"], f32))], name=f"{p}.shift")
        elif kind == "mul_halves":                                      # x[..., :M] * x[..., M:]
            m = _front_width(recs[:n], width) // 2
            ax = g.ints("axes_last", -1)
            a = g.one("Slice", [x, g.ints(f"{p}.first.start", 0), g.ints(f"{p}.first.end", m), ax],
                      name=f"{p}.first_half")
            b = g.one("Slice", [x, g.ints(f"{p}.second.start", m), g.ints(f"{p}.second.end", 2 * m), ax],
                      name=f"{p}.second_half")
            x = g.one("Mul", [a, b], name=f"{p}.mul_halves")
        else:   # _check_records refused it
            raise AssertionError(f"to_onnx: record kind {kind!r}")
    return x


class _Graph:
    """A small helper that names nodes and initializers uniquely."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._consts: dict = {}
        self._names: set = set()
        self._n = 0
        self.opset = DEFAULT_OPSET

    def const(self, name: str, value: np.ndarray) -> str:
        """An initializer (one per name: asking again for the same name and value reuses it)."""
        from onnx import numpy_helper

        value = np.asarray(value)
        if name in self._consts:
            old = self._consts[name]
            if old.dtype != value.dtype or old.shape != value.shape or not np.array_equal(old, value):
                raise AssertionError(f"to_onnx: two different constants named {name!r}")
            return name
        self._consts[name] = value
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list, n_out: int = 1, name: str | None = None, **attrs) -> list[str]:
        from onnx import helper

        self._n += 1
        base = name or f"{op.lower()}_{self._n}"
        if base in self._names:
            raise AssertionError(f"to_onnx: two nodes named {base!r}")
        self._names.add(base)
        outs = [f"{base}_out{i}" if n_out > 1 else f"{base}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=base, **attrs))
        return outs

    def ints(self, name: str, *values: int, scalar: bool = False) -> str:
        """An int64 constant: a vector, or with ``scalar`` a 0-d value."""
        return self.const(name, np.array(values[0] if scalar else list(values), np.int64))

    def one(self, op: str, inputs: list, name: str | None = None, **attrs) -> str:
        return self.node(op, inputs, 1, name, **attrs)[0]

    def rename_output(self, value: str, name: str) -> None:
        """Make the node that writes ``value`` write ``name`` instead (graph outputs get clear names)."""
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o == value:
                    n.output[i] = name
            for i, x in enumerate(n.input):
                if x == value:
                    n.input[i] = name


def to_onnx(model: object, path: str | os.PathLike | None, *, lengths: bool = False,
            initial_state: bool = False, final_state: bool | None = None,
            opset: int = DEFAULT_OPSET, check: bool = True):
    """Write ``model`` as a standard ONNX model (``RNN`` / ``GRU`` / ``LSTM`` nodes).

    Parameters
    ----------
    model : an ``rc.nn.RNN`` / ``GRU`` / ``LSTM``, an ``rc.nn.Sequential`` of
        ``[Embedding] + recurrent layers + [LastStep | MaskedMean | MaskedMax | AttentionPool]
        + [Linear]``
        with per-step layers (``Linear``, activations, ``LayerNorm``, ``BatchNorm1d``,
        ``MulHalves``, ``Residual`` of these) before, between and after the recurrent layers
        and after the pooling (``Dropout`` is skipped), a
        :class:`~rnncore.spec.ModelSpec` (a head may then have an activation: ``relu``,
        ``sigmoid``, ``tanh`` or ``softmax``), or an f32 model file: an ``rc.Engine``, a ``.rnc``
        path or its bytes (q8 models are refused: their int8 arithmetic is not ONNX's)
    path : the ``.onnx`` file to write, or None to only return the model
    lengths : add the graph input ``lengths`` int32 ``(batch,)`` (valid steps per sequence,
        ONNX ``sequence_lens`` of every recurrent node); without it every sequence runs ``time``
        steps
    initial_state : add the graph inputs ``h0`` (and ``c0`` for LSTM stacks), float32
        ``(L*D, batch, H)``; without them the state starts at zero
    final_state : add the graph outputs ``h_n`` (and ``c_n``), float32 ``(L*D, batch, H)``
        (default: the same as ``initial_state``, so ``h_n`` can be fed back as ``h0``)
    opset : the ONNX opset to write, at least 14 (default 17; 17 or later with ``LayerNorm``)
    check : run ``onnx.checker.check_model(full_check=True)`` on the result

    Returns
    -------
    onnx.ModelProto : the exported model (also written to ``path``)

    Raises
    ------
    ImportError : the ``onnx`` package is missing (``pip install "rnncore[onnx]"``)
    ValueError : a module or option ONNX cannot express, naming it (``LSTM proj_size``, the
        ONNX-only options of ``ExtendedRecurrent``, a per-step record without a standard-operator
        form: a frame convolution, ``Magnitude``, a ``Residual`` around a recurrent layer,
        ``LayerNorm`` below opset 17; a module in an unsupported position), or a bad argument
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        raise ImportError("to_onnx needs the 'onnx' package: pip install \"rnncore[onnx]\" "
                          "(or pip install onnx)") from e
    for name, v in (("lengths", lengths), ("initial_state", initial_state), ("check", check)):
        if not isinstance(v, bool | np.bool_):
            raise TypeError(f"to_onnx: {name}: expected a bool, got {type(v).__name__} {v!r}")
    if final_state is None:
        final_state = bool(initial_state)
    elif not isinstance(final_state, bool | np.bool_):
        raise TypeError(f"to_onnx: final_state: expected a bool or None, got {type(final_state).__name__}")
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int | np.integer) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"to_onnx: opset: expected an integer in [{MIN_OPSET}, {top}], got {opset!r}")
    if path is not None and not isinstance(path, str | os.PathLike):
        raise TypeError(f"to_onnx: path: expected a file path or None, got {type(path).__name__}")
    spec = _describe(model)
    for k, ls in enumerate(spec.layers):
        if (ls.options or {}).get("layer_norm") is not None:
            raise ValueError(
                f"to_onnx: layer {k} is a layer-normalised {ls.cell.upper()} (LayerNormGRU/LayerNormLSTM); "
                "the ONNX RNN/GRU/LSTM operators have no layer normalisation, so it does not export")
        if ls.options:   # a compiled layer with cell options (ExtendedRecurrent, initial states, ...)
            used = [key for key, v in ls.options.items() if v is not None and v is not False]
            raise ValueError(
                f"to_onnx: layer {k} ({ls.cell.upper()}) has cell options {used}: the exporter writes "
                "plain RNN/GRU/LSTM layers, and dropping the options would change the outputs")
    _check_records(spec, int(opset))
    F_last = spec.layers[-1].output_size
    if spec.last_step and spec.last_step_bidirectional and F_last % 2:
        raise ValueError(f"to_onnx: bidirectional last-step pooling needs an even feature size, the last "
                         f"recurrent layer gives {F_last}")

    g = _Graph()
    g.opset = int(opset)
    FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
    f32 = np.float32

    # -- inputs ---------------------------------------------------------------------------
    if spec.embedding is not None:
        g.inputs.append(helper.make_tensor_value_info("tokens", INT64, ["batch", "time"]))
        table = g.const("embedding.weight", np.asarray(spec.embedding, f32))
        seq = g.one("Gather", [table, "tokens"], name="embedding", axis=0)        # (B, T, E)
        data_in = "tokens"
    else:
        g.inputs.append(helper.make_tensor_value_info("x", FLOAT, ["batch", "time", spec.input_size]))
        seq, data_in = "x", "x"
    if lengths:
        g.inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
    uniform = _uniform_state(spec)
    S = sum(ls.num_directions for ls in spec.layers)
    if initial_state:
        if uniform:
            H0 = spec.layers[0].hidden_size
            g.inputs.append(helper.make_tensor_value_info("h0", FLOAT, [S, "batch", H0]))
            if spec.layers[0].cell == "lstm":
                g.inputs.append(helper.make_tensor_value_info("c0", FLOAT, [S, "batch", H0]))
        else:
            for k, ls in enumerate(spec.layers):
                shape = [ls.num_directions, "batch", ls.hidden_size]
                g.inputs.append(helper.make_tensor_value_info(f"h0_l{k}", FLOAT, shape))
                if ls.cell == "lstm":
                    g.inputs.append(helper.make_tensor_value_info(f"c0_l{k}", FLOAT, shape))

    def state_in(kind: str, k: int, row: int, D: int) -> str:
        """Initial ``h``/``c`` of layer ``k`` (rows ``row .. row + D`` of the stacked input)."""
        if not initial_state:
            return ""
        if not uniform:
            return f"{kind}0_l{k}"
        if len(spec.layers) == 1:
            return f"{kind}0"
        return g.one("Slice", [f"{kind}0", g.ints(f"rows{k}.start", row), g.ints(f"rows{k}.end", row + D),
                               g.ints("axes_0", 0)], name=f"{kind}0_l{k}_rows")

    if spec.front:
        seq = _emit_records(g, spec.front, seq, spec.input_size, "front")           # (B, T, F')
    # -- recurrent layers (time-major inside: ONNX Runtime runs layout=0 only) --------------
    seq = g.one("Transpose", [seq], name="to_time_major", perm=[1, 0, 2])          # (T, B, F)
    seq_lens = "lengths" if lengths else ""
    finals, row = [], 0
    for k, ls in enumerate(spec.layers):
        op, D, H = _OP[ls.cell], ls.num_directions, ls.hidden_size
        perm = _export_perm(op, H)
        W = np.stack([np.asarray(w.weight_ih, f32)[perm] for w in ls.directions])
        R = np.stack([np.asarray(w.weight_hh, f32)[perm] for w in ls.directions])
        Bv = np.stack([np.concatenate([np.asarray(w.bias_ih, f32)[perm], np.asarray(w.bias_hh, f32)[perm]])
                       for w in ls.directions])
        ins = [seq, g.const(f"layer{k}.W", W), g.const(f"layer{k}.R", R), g.const(f"layer{k}.B", Bv),
               seq_lens, state_in("h", k, row, D)]
        if op == "LSTM":
            ins.append(state_in("c", k, row, D))
        while ins and ins[-1] == "":
            ins.pop()
        attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
        if op == "GRU":
            attrs["linear_before_reset"] = int(ls.reset_after)
        if ls.cell == "rnn_relu":
            attrs["activations"] = ["Relu"] * D
        outs = g.node(op, ins, 3 if op == "LSTM" else 2, name=f"layer{k}_{op}", **attrs)
        Y = outs[0]                                                                  # (T, D, B, H)
        finals.append((k, D, H, ls.cell, outs[1], outs[2] if op == "LSTM" else None))
        last = k == len(spec.layers) - 1
        if not last:
            seq = g.one("Reshape", [g.one("Transpose", [Y], name=f"layer{k}_tbdh", perm=[0, 2, 1, 3]),
                                    g.ints("merge_shape", 0, 0, -1)],
                        name=f"layer{k}_features")                                   # (T, B, D*H)
            if k < len(spec.mid) and spec.mid[k]:
                seq = _emit_records(g, spec.mid[k], seq, ls.output_size, f"mid{k}")   # (T, B, F')
        row += D
    last_D, last_H = spec.layers[-1].num_directions, spec.layers[-1].hidden_size
    Y_h = finals[-1][4]

    post_y: list = []

    def batch_major_y() -> str:
        """The last layer's output (B, T, D*H), then the per-step records after it."""
        if not post_y:
            t = g.one("Transpose", [Y], name="to_batch_major", perm=[2, 0, 1, 3])    # (B, T, D, H)
            y = g.one("Reshape", [t, g.ints("merge_shape", 0, 0, -1)],
                      name="merge_directions")                                     # (B, T, D*H)
            post_y.append(_emit_records(g, spec.post, y, last_D * last_H, "post") if spec.post else y)
        return post_y[0]

    valid: list = []

    def valid_steps() -> str:
        """``t < lengths[b]``, bool (B, T, 1)."""
        if not valid:
            steps = g.one("Gather", [g.one("Shape", [data_in], name="input_shape"),
                                     g.ints("one", 1, scalar=True)], name="time_steps")
            t = g.one("Range", [g.ints("zero", 0, scalar=True), steps, g.ints("one", 1, scalar=True)],
                      name="time_index")                                                   # (T,)
            col = g.one("Unsqueeze", [lengths_i64(), g.ints("axes_1", 1)], name="lengths_col")   # (B, 1)
            mask = g.one("Less", [t, col], name="valid_steps")                             # (B, T)
            valid.append(g.one("Unsqueeze", [mask, g.ints("axes_2", 2)], name="valid_steps_3d"))
        return valid[0]

    has_steps: list = []
    cast: list = []

    def lengths_i64() -> str:
        if not cast:
            cast.append(g.one("Cast", ["lengths"], name="lengths_int64", to=INT64))
        return cast[0]

    def live_rows(v: str, fill: str, batch_axis: int, ndim: int, name: str) -> str:
        """``v`` where ``lengths > 0`` (along its batch axis), else ``fill``: in rnncore a
        length-0 sequence keeps its initial state and pools zeros, where ONNX Runtime writes
        zeros to ``Y_h``."""
        if not has_steps:
            has_steps.append(g.one("Greater", ["lengths", g.const("zero_i32", np.array(0, np.int32))],
                                   name="has_steps"))                                 # (B,)
        shape = [1] * ndim
        shape[batch_axis] = -1
        cond = g.one("Reshape", [has_steps[0], g.ints(f"{name}.shape", *shape)],
                     name=f"{name}_live")
        return g.one("Where", [cond, v, fill], name=name)

    # -- pooling ----------------------------------------------------------------------------
    F_out = _front_width(spec.post, last_D * last_H)

    def zero_f() -> str:
        return g.const("zero_f32", np.array(0, f32))

    def mean_part() -> str:
        yb = batch_major_y()
        if lengths:   # the sum over the valid steps over max(lengths, 1): zeros without a step
            s = g.one("ReduceSum", [g.one("Where", [valid_steps(), yb, zero_f()], name="mean_valid"),
                                    g.ints("axes_1", 1)], name="mean_sum", keepdims=0)       # (B, F)
            n = g.one("Cast", [g.one("Max", [lengths_i64(), g.ints("one", 1, scalar=True)],
                                     name="mean_count")], name="mean_count_f32", to=FLOAT)
            out = g.one("Div", [s, g.one("Unsqueeze", [n, g.ints("axes_1", 1)], name="mean_count_col")],
                        name="mean_pool")
        else:
            ax = {"axes": [1]} if opset < 18 else {}
            ins = [yb] if opset < 18 else [yb, g.ints("axes_1", 1)]
            out = g.one("ReduceMean", ins, name="mean_pool", keepdims=0, **ax)
        return out

    def max_part() -> str:
        yb = batch_major_y()
        if lengths:   # past a length: -inf never wins; a sequence without a step pools zeros
            yb = g.one("Where", [valid_steps(), yb, g.const("max_masked", np.array(-np.inf, f32))],
                       name="max_valid")
        ax = {"axes": [1]} if opset < 18 else {}
        ins = [yb] if opset < 18 else [yb, g.ints("axes_1", 1)]
        out = g.one("ReduceMax", ins, name="max_pool", keepdims=0, **ax)                     # (B, F)
        if lengths:
            out = live_rows(out, zero_f(), 0, 2, "max_pool_live")
        return out

    def last_part() -> str:
        if spec.last_step_bidirectional == (last_D == 2) and not spec.post:
            # the final states are the last step: forward at lengths-1, backward at t = 0
            halves = [g.one("Gather", [Y_h, g.ints(f"direction{d}", d, scalar=True)],
                            name=f"final_h_direction{d}", axis=0) for d in range(last_D)]
            out = halves[0] if last_D == 1 else g.one("Concat", halves, name="last_step", axis=-1)
            if lengths and initial_state:
                out = live_rows(out, zero_f(), 0, 2, "last_step_live")
        else:
            yb = batch_major_y()
            if lengths:
                idx = g.one("Sub", [lengths_i64(), g.ints("one", 1, scalar=True)], name="last_index")
                idx = g.one("Max", [idx, g.ints("zero", 0, scalar=True)], name="last_index_ge0")
                idx = g.one("Unsqueeze", [idx, g.ints("axes_1", 1)], name="last_index_col")   # (B, 1)
                out = g.one("GatherND", [yb, idx], name="last_step", batch_dims=1)     # (B, F)
            else:
                out = g.one("Gather", [yb, g.ints("last_t", -1, scalar=True)], name="last_step", axis=1)
            if spec.last_step_bidirectional:       # second half at t = 0 (a unidirectional layer)
                first = g.one("Gather", [yb, g.ints("zero", 0, scalar=True)], name="first_step", axis=1)
                half, ax = F_out // 2, g.ints("axes_1", 1)
                a = g.one("Slice", [out, g.ints("half0.start", 0), g.ints("half0.end", half), ax],
                          name="first_half")
                b = g.one("Slice", [first, g.ints("half1.start", half), g.ints("half1.end", F_out), ax],
                          name="second_half")
                out = g.one("Concat", [a, b], name="last_step_bidirectional", axis=-1)
            if lengths:
                out = live_rows(out, zero_f(), 0, 2, "last_step_live")
        return out

    if spec.last_step and spec.last_step_attention is not None:
        # e = v . tanh(W x + b) per step; a = softmax over the valid steps; pooled = sum_t a x_t
        at = spec.last_step_attention
        yb = batch_major_y()
        w_t = np.ascontiguousarray(np.asarray(at["weight"], f32).T)
        z = g.one("MatMul", [yb, g.const("attention.weight_t", w_t)], name="attention_proj")
        u = g.one("Tanh", [g.one("Add", [z, g.const("attention.bias", np.asarray(at["bias"], f32))],
                                 name="attention_proj_bias")], name="attention_tanh")       # (B, T, A)
        e = g.one("MatMul", [u, g.const("attention.score", np.asarray(at["score"], f32).reshape(-1, 1))],
                  name="attention_score")                                                   # (B, T, 1)
        if lengths:   # past a length: no weight and a zero row (a sequence without a step pools zeros)
            e = g.one("Where", [valid_steps(), e, g.const("attention.masked", np.array(-3e38, f32))],
                      name="attention_score_valid")
            yb = g.one("Where", [valid_steps(), yb, zero_f()], name="attention_rows_valid")
        a = g.one("Softmax", [e], name="attention_weights", axis=1)
        out = g.one("ReduceSum", [g.one("Mul", [a, yb], name="attention_weighted"), g.ints("axes_1", 1)],
                    name="attention_pool", keepdims=0)                                      # (B, F)
        y, y_shape = out, ["batch", F_out]
    elif spec.last_step:   # [last | mean | max] of the parts present (ConcatPool), or one alone
        parts = [f() for f, on in ((last_part, spec.last_step_last or not (spec.last_step_mean
                                                                           or spec.last_step_max)),
                                   (mean_part, spec.last_step_mean), (max_part, spec.last_step_max)) if on]
        y = parts[0] if len(parts) == 1 else g.one("Concat", parts, name="concat_pool", axis=-1)
        F_out *= len(parts)
        y_shape = ["batch", F_out]
    else:
        y, y_shape = batch_major_y(), ["batch", "time", F_out]

    if spec.post_pooled:
        y = _emit_records(g, spec.post_pooled, y, F_out, "post_pooled")                      # (B, F')
        y_shape = ["batch", _front_width(spec.post_pooled, F_out)]

    # -- head ---------------------------------------------------------------------------------
    if spec.head is not None:
        Wh = np.asarray(spec.head.weight, f32)
        O = Wh.shape[0]
        if spec.last_step:
            ins = [y, g.const("head.weight", Wh)]
            if spec.head.bias is not None:
                ins.append(g.const("head.bias", np.asarray(spec.head.bias, f32)))
            y = g.one("Gemm", ins, name="head", transB=1)
        else:
            y = g.one("MatMul", [y, g.const("head.weight_t", np.ascontiguousarray(Wh.T))], name="head")
            if spec.head.bias is not None:
                y = g.one("Add", [y, g.const("head.bias", np.asarray(spec.head.bias, f32))], name="head_bias")
        act = spec.head.activation
        if act != "none":
            axis = {"axis": -1} if act in ("softmax", "log_softmax") else {}
            y = g.one(_ACT_OP[act], [y], name=f"head_{act}", **axis)
        y_shape = y_shape[:-1] + [O]
    if lengths and not spec.last_step and (spec.head is not None or spec.post):
        # rnncore's outputs past a sequence's length are zero, also after a bias
        y = g.one("Where", [valid_steps(), y, zero_f()], name="zero_past_length")
    g.rename_output(y, "y")
    g.outputs.append(helper.make_tensor_value_info("y", FLOAT, y_shape))

    # -- final states ---------------------------------------------------------------------------
    if final_state:
        def final(kind: str, parts: list, in_name: str, out_name: str, shape: list) -> None:
            v = parts[0] if len(parts) == 1 else g.one("Concat", parts, name=f"{out_name}_stack", axis=0)
            if lengths and initial_state:
                v = live_rows(v, in_name, 1, 3, f"{out_name}_live")
            g.rename_output(v, out_name)
            g.outputs.append(helper.make_tensor_value_info(out_name, FLOAT, shape))

        if uniform:
            H0 = spec.layers[0].hidden_size
            final("h", [f[4] for f in finals], "h0", "h_n", [S, "batch", H0])
            if spec.layers[0].cell == "lstm":
                final("c", [f[5] for f in finals], "c0", "c_n", [S, "batch", H0])
        else:
            for k, D, H, cell, yh, yc in finals:
                final("h", [yh], f"h0_l{k}", f"h_n_l{k}", [D, "batch", H])
                if cell == "lstm":
                    final("c", [yc], f"c0_l{k}", f"c_n_l{k}", [D, "batch", H])

    from rnncore import __version__

    graph = helper.make_graph(g.nodes, "rnncore", g.inputs, g.outputs, g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="rnncore", producer_version=__version__)
    # the IR version that came with the opset, so that runtimes that know the opset read the file
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
    helper.set_model_props(proto, {"rnncore.layout": "batch-major: x (batch, time, features)",
                                   "rnncore.lengths": str(bool(lengths))})
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto

