"""Lowering a chain-shaped :class:`OnnxGraph` to an ``rc.nn.Sequential`` the C engine compiles.

A streaming audio model exported to ONNX (Silero VAD v6's sequence graph) takes ``N`` frames
``input (N, L)`` and runs per-frame layers (padding, the STFT as a strided ``Conv``, slices and
``Pow``/``Add``/``Sqrt`` for its magnitude, ``Conv``/``Relu`` over each frame's own samples), then
an ``LSTM`` whose time axis is the frame axis (batch 1), then a per-step head (``Relu``, a ``1x1``
``Conv`` over time, ``Sigmoid``) and a ``Reshape`` to ``(N,)``. :func:`lower_graph` follows the
graph's nodes with a description of every tensor -- frames ``(N, *per-frame shape)`` (with a
padding waiting for its convolution), a frame convolution's output whose channels or positions
are still being sliced, the squares and their sum of the magnitude, the sequence ``(N, 1, F)``
and the channels-over-time ``(1, F, N)`` -- and writes the equivalent layers:

* ``Pad`` (last axis, ``constant`` 0 or ``reflect``) + ``Conv`` over the frame ->
  :class:`~rnncore.nn.conv.FrameConv1d` (the graph's padding plus the Conv's own); a ``Slice`` of
  its output positions ``[a, b)`` moves the padding (``pad_left - a*stride``, and the right
  padding that gives ``b - a`` positions), a ``Slice`` of its channels is admitted for the
  magnitude only;
* ``Sqrt(Pow(re, 2) + Pow(im, 2))`` of the two channel halves of one convolution ->
  :class:`~rnncore.nn.conv.Magnitude`;
* ``Relu``/``Sigmoid``/``Tanh``/``HardSigmoid`` -> the layer the graph importer made;
* ``Transpose (0, 2, 1)`` of frames with one position -> the ``LSTM``'s ``(N, 1, F)`` input;
  ``LSTM``/``GRU``/``RNN`` (batch 1, no ``sequence_lens``) -> the recurrent layer the importer made;
  ``Squeeze`` of its direction axis;
* ``Transpose (1, 2, 0)`` + ``Conv`` with kernel 1 over time -> :class:`~rnncore.nn.layers.Linear`;
  ``Reshape`` of ``(1, 1, N)`` to ``(N,)``.

The graph's data input becomes the model's input ``(1, N, L)`` (batch 1, time ``N``); its
recurrent state inputs and outputs (``h``, ``c`` / ``hn``, ``cn``) are the engine's state
(``engine.run(X, state=(h, c), return_state=True)``, the stream's ``state``). Anything else is
refused naming the node and what was expected.

A graph whose data input is a sequence ``(T, B, F)`` / ``(B, T, F)`` (declared 3-D, or not
declared: an intermediate tensor such as a CRNN's CNN output) is followed by the second chain
form, :func:`lower_sequence_graph`: stacked recurrent nodes between per-step Linears, with the
shape arithmetic evaluated over symbolic ``T`` and ``B``.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._fuse import fuse_steps
from rnncore.io.onnx_import._values import _Refused

_ACTS = ("Relu", "Sigmoid", "Tanh", "HardSigmoid", "LeakyRelu", "Elu",
         "Clip", "HardSwish", "SiLU", "Softplus", "Softsign")   # Clip: constant bounds (rc.nn.Hardtanh)
_SEQ_ACTS = _ACTS + ("Gelu",)       # Gelu: the op (opset 20) or its decomposition (_fuse.py)
#: element-wise functions the sequence lowering names when it refuses them
_NO_ENGINE = {"Erf": "an Erf outside a GELU"}
_BIG = 2 ** 62


def _ints(v) -> list:
    return [int(x) for x in np.atleast_1d(np.asarray(v))]


class _Lower:
    def __init__(self, g) -> None:
        self.g, self.layers, self.val, self.rnn = g, [], {}, None
        self.step = None

    def refuse(self, why: str):
        s = self.step
        raise _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) {why}; the C engine compiles a "
                       "chain of per-frame layers, one recurrent layer (batch 1) and a per-step head "
                       "(rnncore/io/onnx_import/_lower.py)")

    def const(self, name: str | None, what: str):
        if not name:
            return None
        if name not in self.g.consts:
            self.refuse(f"takes {what} from the data ({name!r}), expected a constant")
        return self.g.consts[name]

    def get(self, name: str) -> dict:
        v = self.val.get(name)
        if v is None:
            self.refuse(f"reads {name!r}, which is not a tensor of the chain")
        return v

    # -- a frame convolution's output, written out ------------------------------------------
    def materialize(self, v: dict) -> dict:
        """A pending convolution (maybe sliced) becomes a FrameConv1d of the chain."""
        if v["k"] != "conv":
            return v
        if v["ch"] != (0, v["m"].out_channels):
            self.refuse(f"uses channels {v['ch'][0]}..{v['ch'][1] - 1} of a convolution alone (only the "
                        "halves of a magnitude are taken apart)")
        return self.emit_conv(v)

    def emit_conv(self, v: dict) -> dict:
        from rnncore.nn.conv import FrameConv1d

        m, (pl, pr, mode), L = v["m"], v["pad"], v["L"]
        a, b = v["pos"]
        span = m.dilation * (m.kernel_size - 1) + 1
        pl2 = pl - a * m.stride
        pr2 = (b - a - 1) * m.stride + span - L - pl2
        if pl2 < 0 or pr2 < 0 or pr2 > pr:
            self.refuse(f"keeps output positions {a}..{b - 1} of a convolution, which no padding of the "
                        "frame gives")
        if mode == "reflect" and max(pl2, pr2) >= L:
            self.refuse(f"reflect padding ({pl2}, {pr2}) is not shorter than the frame ({L})")
        conv = FrameConv1d(m.in_channels, m.out_channels, m.kernel_size, frame_length=L, stride=m.stride,
                           padding=(pl2, pr2), padding_mode=mode, dilation=m.dilation, groups=m.groups,
                           bias="bias" in m.params, dtype=m.dtype.name)
        conv.params["weight"] = np.array(m.params["weight"])
        if "bias" in m.params:
            conv.params["bias"] = np.array(m.params["bias"])
        assert conv.out_length == b - a
        self.layers.append(conv)
        return {"k": "frames", "shape": (m.out_channels, b - a), "pad": None}

    # -- the nodes -----------------------------------------------------------------------------
    def node(self, s) -> None:
        self.step = s
        op, a = s.op, s.attrs
        x = self.get(s.inputs[0]) if op not in ("Add",) else None
        out = None
        if op == "Pad":
            x = self.materialize(x)
            mode = a.get("mode", "constant")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            pads = _ints(self.const(s.inputs[1], "pads")) if len(s.inputs) > 1 and s.inputs[1] else _ints(
                a.get("pads", []))
            value = self.const(s.inputs[2], "the pad value") if len(s.inputs) > 2 and s.inputs[2] else 0
            axes = self.const(s.inputs[3], "axes") if len(s.inputs) > 3 and s.inputs[3] else None
            nd = 1 + len(x["shape"])
            if x["k"] != "frames" or x["pad"] is not None or axes is not None or len(pads) != 2 * nd:
                self.refuse("pads something other than frames (all axes given, once)")
            if any(pads[i] or pads[nd + i] for i in range(nd - 1)) or mode not in ("constant", "reflect"):
                self.refuse(f"pads {pads} ({mode}): only the last (sample) axis, constant 0 or reflect")
            if mode == "constant" and float(np.asarray(value).reshape(-1)[0] if np.size(value) else 0) != 0:
                self.refuse("pads with a constant other than 0")
            out = dict(x, pad=(pads[nd - 1], pads[2 * nd - 1], "zeros" if mode == "constant" else "reflect"))
        elif op == "Unsqueeze":
            axes = _ints(self.const(s.inputs[1], "axes")) if len(s.inputs) > 1 and s.inputs[1] else _ints(
                a["axes"])
            if x["k"] != "frames" or axes != [1] or len(x["shape"]) != 1:
                self.refuse("unsqueezes something other than axis 1 of frames (N, L)")
            out = dict(x, shape=(1,) + x["shape"])
        elif op == "Conv":
            m = s.fn.module
            if x["k"] == "chan_time":   # a Conv over time with kernel 1: a per-step Linear
                if m.kernel_size != 1 or m.stride != 1 or m.groups != 1 or m.pad_left or m.pad_right:
                    self.refuse("convolves over time with more than a 1x1 kernel (a per-step Linear)")
                self.layers.append(_conv1x1_linear(m))
                out = {"k": "chan_time", "F": m.out_channels}
            else:
                x = self.materialize(x)
                if x["k"] != "frames" or len(x["shape"]) != 2 or x["shape"][0] != m.in_channels:
                    self.refuse(f"convolves a tensor that is not frames of {m.in_channels} channels")
                if m.padding_mode != "zeros":
                    self.refuse("has a padding mode other than zeros")
                L = x["shape"][1]
                gpl, gpr, mode = x["pad"] or (0, 0, "zeros")
                if mode == "reflect" and (m.pad_left or m.pad_right):
                    self.refuse("adds zero padding to a reflect-padded frame")
                pl, pr = gpl + m.pad_left, gpr + m.pad_right
                span = m.dilation * (m.kernel_size - 1) + 1
                lout = (L + pl + pr - span) // m.stride + 1
                out = {"k": "conv", "m": m, "pad": (pl, pr, mode), "L": L, "ch": (0, m.out_channels),
                       "pos": (0, lout)}
        elif op == "Slice":
            if x["k"] != "conv":
                self.refuse("slices something other than a frame convolution's output")
            starts, ends = _ints(self.const(s.inputs[1], "starts")), _ints(self.const(s.inputs[2], "ends"))
            axes = _ints(self.const(s.inputs[3], "axes")) if len(s.inputs) > 3 and s.inputs[3] else [0]
            steps = _ints(self.const(s.inputs[4], "steps")) if len(s.inputs) > 4 and s.inputs[4] else [1]
            out = dict(x)
            for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
                if ax % 3 == 0 and st == 0 and en >= _BIG and sp == 1:
                    continue        # all of the frame axis: no slice
                key = {1: "ch", 2: "pos"}.get(ax % 3)
                if key is None or sp != 1:
                    self.refuse(f"slices axis {ax} with step {sp} (only channels or positions, step 1)")
                lo, hi = out[key]
                n = hi - lo
                st, en = (st + n if st < 0 else st), (en + n if en < 0 else en)
                st, en = min(max(st, 0), n), min(max(en, 0), n)
                out[key] = (lo + st, lo + max(en, st))
        elif op == "Pow":
            e = self.const(s.inputs[1], "the exponent")
            if x["k"] != "conv" or np.size(e) != 1 or float(np.asarray(e).reshape(-1)[0]) != 2.0:
                self.refuse("is not the square of a frame convolution's channels (of a magnitude)")
            out = {"k": "sq", "src": x}
        elif op == "Add":
            u, w = (self.get(i) for i in s.inputs[:2])
            if not (u["k"] == w["k"] == "sq"):
                self.refuse("adds tensors other than the squares of a magnitude (no residual path yet)")
            re_, im = u["src"], w["src"]
            C = re_["m"].out_channels
            if not (re_["m"] is im["m"] and re_["pos"] == im["pos"] and re_["ch"] == (0, C // 2)
                    and im["ch"] == (C // 2, C) and C % 2 == 0):
                self.refuse("adds squares that are not the two channel halves of one convolution (re, im)")
            out = {"k": "sumsq", "src": dict(re_, ch=(0, C))}
        elif op == "Sqrt":
            if x["k"] != "sumsq":
                self.refuse("takes the square root of something other than re^2 + im^2")
            from rnncore.nn.conv import Magnitude

            f = self.emit_conv(x["src"])
            self.layers.append(Magnitude())
            out = {"k": "frames", "shape": (f["shape"][0] // 2, f["shape"][1]), "pad": None}
        elif op in _ACTS and hasattr(s.fn, "module"):   # (a Clip with bounds computed at run time: none)
            x = self.materialize(x)
            if x["k"] == "sq" or x["k"] == "sumsq" or x.get("pad"):
                self.refuse("applies an activation in the middle of a magnitude or a padding")
            self.layers.append(s.fn.module)
            out = x
        elif op == "Transpose":
            perm = list(a.get("perm", []))
            x = self.materialize(x)
            if x["k"] == "frames" and perm == [0, 2, 1] and len(x["shape"]) == 2 and x["shape"][1] == 1:
                out = {"k": "seq", "F": x["shape"][0]}
            elif x["k"] == "seq" and perm == [1, 2, 0] and self.rnn is not None:
                out = {"k": "chan_time", "F": x["F"]}
            else:
                self.refuse(f"transposes with perm {perm}: expected (0, 2, 1) of frames with one position "
                            "(the recurrent input) or (1, 2, 0) of the recurrent output (a Conv over time)")
        elif op in ("LSTM", "GRU", "RNN"):
            if x["k"] != "seq" or self.rnn is not None:
                self.refuse("is not the one recurrent layer over the frame sequence (N, 1, F)")
            if int(a.get("layout", 0)) != 0 or (len(s.inputs) > 4 and s.inputs[4]):
                self.refuse("has layout 1 or sequence_lens")
            m = s.fn.module
            if getattr(m, "bidirectional", False) or getattr(m, "num_layers", 1) != 1:
                self.refuse("is bidirectional or stacked")
            states = [i for i in s.inputs[5:] if i]
            if any(i not in self.g.input_names for i in states):
                self.refuse("takes its initial state from something other than the graph's inputs")
            self.rnn = {"states_in": states, "states_out": [o for o in s.outputs[1:] if o]}
            self.layers.append(m)
            if s.outputs[0]:
                self.val[s.outputs[0]] = {"k": "rnn_y", "F": m.hidden_size}
            return
        elif op == "Squeeze":
            axes = _ints(self.const(s.inputs[1], "axes")) if len(s.inputs) > 1 and s.inputs[1] else _ints(
                a.get("axes", []))
            if x["k"] != "rnn_y" or axes != [1]:
                self.refuse("squeezes something other than the recurrent output's direction axis")
            out = {"k": "seq", "F": x["F"]}
        elif op == "Reshape":
            shape = _ints(self.const(s.inputs[1], "the shape"))
            if x["k"] != "chan_time" or x["F"] != 1 or shape != [-1]:
                self.refuse(f"reshapes to {shape}: expected the head's (1, 1, N) to (N,)")
            out = {"k": "probs", "F": 1}
        else:
            self.refuse("is not an op of the chains this lowering follows")
        for o in s.outputs[:1]:
            if o:
                self.val[o] = out


def _conv1x1_linear(m):
    """The ``Linear`` that a ``Conv`` module ``m`` of kernel 1, stride 1, no groups and no padding is
    over each position: ``y[o] = sum_i W[o, i, 0] x[i] + b[o]``."""
    from rnncore.nn.layers import Linear

    lin = Linear(m.in_channels, m.out_channels, bias="bias" in m.params, dtype=m.dtype.name)
    lin.params["weight"] = np.array(m.params["weight"][:, :, 0])
    if "bias" in m.params:
        lin.params["bias"] = np.array(m.params["bias"])
    return lin


def _run_nodes(lw, steps) -> None:
    """``lw.node(s)`` for each step in order; a refusal carries ``at``, the index of the node it was
    raised at (so that of two lowerings tried, the one that followed more of the graph is named)."""
    for at, s in enumerate(steps):
        try:
            lw.node(s)
        except _Refused as e:
            e.at = at
            raise


def lower_graph(g):
    """The ``rc.nn.Sequential`` of a chain-shaped :class:`OnnxGraph` (module docstring).

    A graph whose shape arithmetic was folded on its inputs' declared sizes (an export with dynamic
    axes: ``OnnxGraph.folded_shapes``) is lowered as imported without that folding first -- its
    sequence and batch axes symbolic, as the engine runs any batch and length -- and folded only
    when that is refused (an ``If`` on a static size: PyanNet's test of the channel axis); when both
    are refused, the unfolded graph's refusal is raised. Returns and raises as :func:`_lower_graph`.
    """
    plain = g.unfolded() if hasattr(g, "unfolded") else g
    if plain is g:
        return _lower_graph(g)
    try:
        return _lower_graph(plain)
    except _Refused as first:
        try:
            return _lower_graph(g)
        except _Refused:
            raise first from None


def _lower_graph(g):
    """The ``rc.nn.Sequential`` of a chain-shaped :class:`OnnxGraph` (module docstring).

    Returns
    -------
    model : ``rc.nn.Sequential`` taking ``(1, N, L)`` frames (the graph's ``input (N, L)`` as one
        sequence of ``N`` steps), returning ``(1, N, out)``
    info : dict: ``data_input``, ``data_output`` (the graph's names), ``state_inputs``,
        ``state_outputs`` (the recurrent layer's initial / final states, the engine's state)

    Raises
    ------
    ValueError
        naming the first node the chain does not admit and why.
    """
    from rnncore.nn.layers import Sequential
    from rnncore.spec import _TWO_D

    for s in g.steps:    # the 2-D layers (CRNN, DeepFilterNet front-ends) run in NumPy only
        kind = type(getattr(s.fn, "module", None)).__name__
        if kind in _TWO_D:
            raise _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) is a 2-D layer ({kind} on "
                           "(N, C, H, W)); the C engine has no 2-D front-end: run the graph with the "
                           "imported graph's NumPy forward (from_onnx(path).forward(x))")
    data_in = g.input_names[0]
    ops = getattr(g, "op_types", None) or {s.op for s in g.steps}
    if len(g.input_names) == 1 and not ops & {"LSTM", "GRU", "RNN", "Loop", "Scan"}:
        raise _Refused("rc.compile(OnnxGraph): the graph has no recurrent node (LSTM, GRU, RNN) and no state "
                       f"input besides its data input {data_in!r}: the C engine compiles recurrent models; "
                       "run this one with the imported graph's NumPy forward (from_onnx(path).forward(x))")
    fixed = (getattr(g, "fixed_shapes", {}) or {}).get(data_in)
    if fixed is not None and len(fixed) == 2 and fixed[0] == 1 and fixed[1] is not None:
        from rnncore.io.onnx_import._lower_chunk import lower_chunk_graph

        return lower_chunk_graph(g)      # one chunk of batch 1 per call: the chunk is the step
    lw = _Lower(g)
    shape = (getattr(g, "input_shapes", {}) or {}).get(data_in)
    if shape is None or len(shape) == 3 or _embedding_gather(g) is not None:
        return lower_sequence_graph(g)      # a sequence (T, B, F) / (B, T, F), or (B, T) token ids
    if len(shape) != 2 or not isinstance(shape[1], int | np.integer):
        raise _Refused(f"rc.compile(OnnxGraph): the data input {data_in!r} is declared {shape}; expected "
                       "frames (N, L) with the frame length L fixed")
    lw.val[data_in] = {"k": "frames", "shape": (int(shape[1]),), "pad": None}
    for s in g.steps:
        lw.node(s)
    if lw.rnn is None:
        raise _Refused("rc.compile(OnnxGraph): the graph has no recurrent layer")
    outs = [o for o in g.output_names if o not in lw.rnn["states_out"]]
    extra_in = [i for i in g.input_names[1:] if i not in lw.rnn["states_in"]]
    if len(outs) != 1 or lw.val.get(outs[0], {}).get("k") not in ("probs", "seq", "chan_time") or extra_in:
        raise _Refused(f"rc.compile(OnnxGraph): outputs {g.output_names} / inputs {g.input_names}: expected "
                       "one data output per step and the recurrent layer's states besides the data input")
    info = {"data_input": data_in, "data_output": outs[0], "state_inputs": lw.rnn["states_in"],
            "state_outputs": lw.rnn["states_out"]}
    return Sequential(*lw.layers), info



# -- convolution and pooling over time: the paddings the C engine runs ---------------------------
def engine_time_padding(op: str, attrs: dict, kernel: int, stride: int, dilation: int,
                        pad_node: tuple | None, refuse) -> str | tuple[int, int]:
    """The ``padding`` of the ``rc.nn`` layer for a ``Conv`` / ``MaxPool`` / ``AveragePool`` node over
    time that the C engine runs, or ``refuse(why, what_to_do)``.

    The one place that decides which paddings over time compile (conv_time / pool_time records,
    docs/rnc-format.md); widen it here when the engine runs more. With ``reach = dilation*(kernel-1)``
    (the window's extent past its first tap) the engine pads each side of time by ``0..reach``
    (a timepad tail: the stream looks ahead ``right`` steps, ``Stream.flush()`` ends it):

    * ``Conv``: zero padding ``[begin, end]`` of the time axis from its ``pads`` / ``auto_pad``
      plus a ``Pad`` node right before it (``pad_node``: ``(begin, end, names)``, torch's
      ``F.pad(x, (left, right))``), each in ``0..reach``; returns ``"causal"`` for ``[reach, 0]``
      (output ``t`` reads inputs ``<= t``), else ``(begin, end)``.
    * ``MaxPool`` / ``AveragePool``: their own ``pads`` / ``auto_pad`` ``[begin, end]``, each in
      ``0..reach`` (a ``Pad`` node before a pooling is refused: its zeros are not the pooling's own
      padding, -inf for a max, left out of an ``count_include_pad=0`` average), ``ceil_mode`` as
      more right padding (:func:`rnncore.nn.conv.ceil_mode_padding`: refused for an average with
      ``count_include_pad`` 1 and pads, where it counts the pads but not the steps past them);
      returns ``(begin, end)``, the pooling's own padding.

    ``auto_pad`` ``SAME_UPPER`` / ``SAME_LOWER`` at stride 1 is the split ``[reach//2, reach - reach//2]``
    (the odd one at the end / the beginning); at a stride it depends on the input length: refused.
    ``attrs`` are the node's attributes (``pads``, ``auto_pad``, ``ceil_mode``); ``kernel``,
    ``stride``, ``dilation`` its window.
    """
    auto = attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    own = [int(v) for v in attrs.get("pads", [0, 0])]
    reach = dilation * (kernel - 1)          # the window's extent past its first tap
    if auto == "VALID":
        own = [0, 0]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        if stride != 1 and reach:
            refuse(f"has auto_pad {auto!r} with strides [{stride}]: expected auto_pad 'NOTSET' with explicit "
                   "pads (SAME_* at a stride pads by an amount that depends on the input length)",
                   "export with explicit padding")
        own = [reach // 2, reach - reach // 2] if auto == "SAME_UPPER" else [reach - reach // 2, reach // 2]
    elif auto != "NOTSET":
        refuse(f"has auto_pad {auto!r}: expected 'NOTSET', 'VALID', 'SAME_UPPER' or 'SAME_LOWER'",
               "fix the model (onnx.checker)")
    if len(own) != 2:
        refuse(f"has pads {own}: expected [begin, end] of the one time axis", "fix the model (onnx.checker)")
    if op != "Conv" and pad_node is not None and (pad_node[0] or pad_node[1]):
        refuse(f"pools data padded by [{pad_node[0]}, {pad_node[1]}] from Pad node {pad_node[2]!r}: expected "
               "no Pad node before a pooling (its zeros are inputs of the pooling, not the pooling's own "
               "padding, which a max skips and an average with count_include_pad 0 leaves out)",
               "give the pooling its own pads (torch: MaxPool1d/AvgPool1d(padding=...)), or run the graph "
               "in NumPy (from_onnx(path).forward)")
    begin, end = own[0] + (pad_node[0] if pad_node else 0), own[1] + (pad_node[1] if pad_node else 0)
    extra = f", auto_pad {auto!r}" if auto != "NOTSET" else ""
    via = f" plus [{pad_node[0]}, {pad_node[1]}] from Pad node {pad_node[2]!r}" if pad_node else ""
    got = f"[{begin}, {end}] (attribute pads {own}{extra}{via})"
    if not (0 <= begin <= reach and 0 <= end <= reach):
        refuse(f"pads the time axis by {got}: expected each of [begin, end] in 0..{reach}, the window's "
               f"reach dilation*(kernel-1) = {dilation}*({kernel}-1) (the C engine pads each side of time "
               "by at most that; the stream looks ahead by the end padding)",
               "export with padding of at most dilation*(kernel-1) on each side (torch: padding='same' or "
               f"padding=p <= {reach}), or run the graph in NumPy (from_onnx(path).forward)")
    if op == "Conv":
        return "causal" if (begin, end) == (reach, 0) else (begin, end)
    if int(attrs.get("ceil_mode", 0)):     # the C core runs it as more right padding
        from rnncore.nn.conv import ceil_mode_padding

        try:
            ceil_mode_padding(kernel, stride, dilation, begin, end, op == "AveragePool",
                              bool(int(attrs.get("count_include_pad", 0))))
        except ValueError:
            refuse(f"has ceil_mode 1 with count_include_pad 1, pads [{begin}, {end}] and strides [{stride}]: "
                   "expected count_include_pad 0, pads [0, 0] or ceil_mode 0 (its last window divides by "
                   "the steps inside the padded input, not by the kernel size nor by the real steps, "
                   "which the C engine does not run)",
                   "export with count_include_pad=False or ceil_mode=False, or run the graph in NumPy "
                   "(from_onnx(path).forward)")
    return (begin, end)


# -- sequences: (T, B, F) or (B, T, F) through recurrent stacks and per-step layers ------------
# A dimension is a monomial ``(c, syms)``: the integer c times the product of the symbols (sorted).
# The data's two sequence axes are the symbols "X0" and "X1" (the data input's axes 0 and 1) until
# the first recurrent node says which one is time. A data tensor is a list of axes: a sequence
# axis ``("s", syms)`` (one symbol, or the row-major merge of both, ``view(T*b, h)``) or a feature
# axis ``("f", n, id)``; the features of one step are the feature axes in increasing ``id`` (the
# order the values were made in: a bidirectional layer's (direction, hidden) is its output
# vector [forward | backward]).
def _mono(c: int, syms=()) -> tuple:
    return (int(c), tuple(sorted(syms)))


def _mul(p: tuple, q: tuple) -> tuple:
    return _mono(p[0] * q[0], p[1] + q[1])


def _divides(p: tuple, q: tuple) -> bool:
    """p divides q (as monomials)."""
    rest = list(q[1])
    for s in p[1]:
        if s not in rest:
            return False
        rest.remove(s)
    return p[0] != 0 and q[0] % p[0] == 0


def _div_mono(q: tuple, p: tuple) -> tuple:
    rest = list(q[1])
    for s in p[1]:
        rest.remove(s)
    return _mono(q[0] // p[0], rest)


def _dim_text(d: tuple) -> str:
    return "*".join(([str(d[0])] if d[0] != 1 or not d[1] else []) + list(d[1]))


def _axis_dim(ax: tuple) -> tuple:
    return _mono(1, ax[1]) if ax[0] == "s" else _mono(ax[1])


def _softmax_module(log: bool = False):
    from rnncore.nn.pointwise import LogSoftmax, Softmax

    return LogSoftmax() if log else Softmax()   # spec_from_model reads the head activation from the class


class _SeqLower:
    """Follows a sequence graph (module docstring of :func:`lower_sequence_graph`)."""

    def __init__(self, g) -> None:
        self.g, self.val, self.ops, self.step = g, {}, [], None
        self.time = None          # the symbol of the data input's time axis, once a layer has read it
        self.tsym = None          # the time axis' symbol now: a new one after each layer that changes
        #                           the number of steps (a strided or unpadded Conv / pooling over time)
        self.nid = 0              # the next feature-axis id
        self.states_in, self.states_out = [], []   # (h|c, graph input, rows or None, layer); (name, layout)
        self.nrec, self.ndir = 0, []              # recurrent nodes so far, their directions
        self.linear_out = None    # the output of the last per-step Linear (a bias Add may follow it)
        self.affine_mod, self.affine_out = None, None   # the last x * scale + shift layer, its output
        self.width = {}           # an activation node -> the features of a step it sees
        self.at = {}              # a data tensor -> the chain's point it is (the ops before it)
        self.op_in = []           # per op: the point its input was (op k reads point k on a chain)
        self.dirax = {}           # a recurrent output's direction-axis id -> (layer, D, H, hidden axis)
        self.kept = {}            # the size-1 axis id a max over time kept (keepdims=1) -> its step
        self.nodes_read = 0       # the graph's nodes followed so far
        self.producer = {}        # a tensor -> the step that wrote it

    def refuse(self, why: str, what: str = "import the part the chain covers with from_onnx(path, "
                                            "inputs=[...], outputs=[...]) and run the rest in NumPy"):
        s = self.step
        err = _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) {why}; the C engine compiles "
                       "a sequence (T, B, F) or (B, T, F) through causal Conv / unpadded MaxPool, "
                       "AveragePool over time, recurrent layers, per-step Linear layers and activations "
                       f"(rnncore/io/onnx_import/_lower.py); {what}")
        err.nodes_read = self.nodes_read      # how far the reading got (lower_sequence_graph)
        raise err

    def fid(self) -> tuple:
        self.nid += 1
        return (self.nid,)

    def get(self, name: str | None, kinds=("data",)) -> dict:
        v = self.val.get(name)
        if v is not None and v["k"] == "padded" and "padded" not in kinds:
            self.refuse(f"reads {name!r}, the zero-padded output of Pad node {v['by']!r}: only a Conv right "
                        "after the Pad takes that padding (as its causal padding)",
                        "pad only before a Conv1d over time (F.pad(x, (dilation*(k-1), 0)))")
        if v is not None and v["k"] == "part" and "part" not in kinds and "data" in kinds:
            return self.resolve(name, v)
        if v is None or v["k"] not in kinds:
            got = "nothing the chain follows" if v is None else f"a {v['k']} value"
            self.refuse(f"reads {name!r}, {got}; expected {' or '.join(kinds)}")
        return v

    def shape_vec(self, name: str) -> list:
        """A shape operand as a list of monomials (a constant, or shape arithmetic on the data)."""
        if name in self.g.consts:
            return [_mono(v) for v in _ints(self.g.consts[name])]
        v = self.get(name, ("shape",))
        return list(v["v"])

    @staticmethod
    def dims(v: dict) -> list:
        return [_axis_dim(ax) for ax in v["axes"]] if v["k"] == "data" else list(v["shape"])

    def features(self, v: dict, what: str) -> int:
        """The step's feature count of data whose only feature axis is the last one."""
        ax = v["axes"]
        if ax[-1][0] != "f" or any(a[0] == "f" for a in ax[:-1]) or ax[-1][1] is None:
            self.refuse(f"takes {what} of shape ({', '.join(map(_dim_text, self.dims(v)))}): expected the "
                        "features of each step on the last axis alone")
        return int(ax[-1][1])

    def seq_axes(self, v: dict) -> list:
        return [a for a in v["axes"] if a[0] == "s"]

    # -- shape arithmetic -------------------------------------------------------------------------
    def shape_node(self, s, op, a) -> dict | None:
        kinds = [self.val.get(i, {}).get("k") for i in s.inputs[:None if op == "Concat" else 1]]
        if op in ("Slice", "Concat", "Gather") and any(k in ("data", "part") for k in kinds):
            return None               # a slice / concatenation of the data: _node's data_slice / data_concat
        if op in ("Unsqueeze", "Concat") and kinds and all(k == "zeros" for k in kinds):
            return self.zeros_node(s, op, a)
        if op == "Concat" and all(self.val.get(i, {}).get("k") == "state" for i in s.inputs):
            parts = [self.val[i] for i in s.inputs]
            if int(a.get("axis", 0)) != 0 or len({p["kind"] for p in parts}) != 1:
                self.refuse("concatenates final states other than one kind's layers along axis 0")
            return {"k": "state", "kind": parts[0]["kind"], "layers": [n for p in parts for n in p["layers"]],
                    "batch": parts[0].get("batch")}
        if op == "Gather" and kinds == ["state"]:
            return self.final_state(s, a)
        if op == "Shape":
            v = self.get(s.inputs[0], ("data", "zeros"))
            d = self.dims(v)
            st, en = int(a.get("start", 0)), int(a.get("end", len(d)))
            return {"k": "shape", "v": d[st:en], "scalar": False}
        if op == "Gather":
            v = self.shape_vec(s.inputs[0])
            idx = self.g.consts.get(s.inputs[1])
            if idx is None or int(a.get("axis", 0)) != 0:
                self.refuse("gathers with indices that are not a constant")
            out = [v[int(i)] for i in np.atleast_1d(idx)]
            return {"k": "shape", "v": out, "scalar": np.ndim(idx) == 0}
        if op == "Unsqueeze" and kinds == ["data"]:
            return self.unsqueeze_data(s, a)
        if op in ("Unsqueeze", "Squeeze"):
            v = self.get(s.inputs[0], ("shape",))
            if op == "Unsqueeze" and v["scalar"]:
                return {"k": "shape", "v": v["v"], "scalar": False}
            if op == "Squeeze" and len(v["v"]) == 1:
                return {"k": "shape", "v": v["v"], "scalar": True}
            self.refuse("reshapes shape arithmetic beyond a scalar <-> a 1-vector")
        if op == "Reshape":           # a scalar or a vector of shape arithmetic, as a vector or scalar
            v = self.get(s.inputs[0], ("shape",))
            to = _ints(self.g.consts[s.inputs[1]]) if s.inputs[1] in self.g.consts else None
            if to is None or to not in ([], [-1], [len(v["v"])]) or (to == [] and len(v["v"]) != 1):
                self.refuse(f"reshapes shape arithmetic to {to}: expected a scalar or a vector")
            return {"k": "shape", "v": v["v"], "scalar": to == []}
        if op == "Concat":
            out = []
            for i in s.inputs:
                out += self.shape_vec(i)
            return {"k": "shape", "v": out, "scalar": False}
        if op == "Mul":
            p, q = (self.shape_vec(i) for i in s.inputs[:2])
            if len(p) != len(q) and 1 not in (len(p), len(q)):
                self.refuse("multiplies shape vectors of different lengths")
            n = max(len(p), len(q))
            p, q = (p * n if len(p) == 1 else p), (q * n if len(q) == 1 else q)
            sc = all(self.val.get(i, {}).get("scalar", True) for i in s.inputs[:2] if i in self.val)
            return {"k": "shape", "v": [_mul(x, y) for x, y in zip(p, q, strict=True)], "scalar": sc}
        if op == "Slice" and self.val.get(s.inputs[0], {}).get("k") == "gstate":
            v = self.val[s.inputs[0]]       # one layer's rows of a stacked state input (L*D, B, H)
            b = [_ints(self.g.consts[i]) if i in self.g.consts else None for i in s.inputs[1:5]]
            b += [None] * (4 - len(b))
            if b[0] is None or b[1] is None or (b[2] or [0]) != [0] or (b[3] or [1]) != [1] \
                    or v["rows"] is not None or not 0 <= b[0][0] < b[1][0] < 2 ** 31:
                self.refuse(f"slices the state input {v['name']!r} other than rows [a, b) of axis 0")
            return {"k": "gstate", "name": v["name"], "rows": (b[0][0], b[1][0])}
        if op == "Slice":
            v = self.get(s.inputs[0], ("shape", "zeros"))
            sl = [_ints(self.g.consts[i]) if i in self.g.consts else None for i in s.inputs[1:5]]
            if any(x is None for x in sl[:2]) or (len(sl) > 2 and sl[2] is None and s.inputs[3]):
                self.refuse("slices with bounds that are not constants")
            axes = sl[2] if len(sl) > 2 and sl[2] is not None else [0]
            steps = sl[3] if len(sl) > 3 and sl[3] is not None else [1]
            d = self.dims(v) if v["k"] == "zeros" else list(v["v"])
            if len(axes) != 1 or steps != [1] or (v["k"] == "shape" and axes != [0]):
                self.refuse("slices more than one axis, or with a step")
            ax = axes[0] % len(d)
            if v["k"] == "shape":
                return {"k": "shape", "v": d[slice(sl[0][0], sl[1][0])], "scalar": False}
            if d[ax][1]:
                self.refuse("slices a zero state along a sequence or batch axis")
            n = d[ax][0]
            lo, hi = (min(max(x + n if x < 0 else x, 0), n) for x in (sl[0][0], sl[1][0]))
            d[ax] = _mono(max(hi - lo, 0))
            return {"k": "zeros", "shape": d}
        if op in ("ConstantOfShape", "Expand"):
            if op == "ConstantOfShape":
                from onnx import numpy_helper

                val = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1)
                shape = self.shape_vec(s.inputs[0])
            else:
                val = self.g.consts.get(s.inputs[0])
                if val is None:
                    return None
                shape = self.shape_vec(s.inputs[1])
                if np.ndim(val) > len(shape):
                    self.refuse("expands a constant to fewer axes than it has")
            if np.any(np.asarray(val) != 0):
                self.refuse("makes a constant tensor other than zeros on the data's shape (a nonzero initial "
                            "state)", "feed the state as a graph input (the engine's state)")
            return {"k": "zeros", "shape": shape}
        return None

    def unsqueeze_data(self, s, a) -> dict:
        """``Unsqueeze`` of the data: new feature axes of size 1 (the dynamo exporter's
        ``adaptive_max_pool1d(y, 1)``: ``(B, F, T) -> (B, F, 1, T)``, a ``ReduceMax`` over the last two
        axes, two ``Squeeze``)."""
        x = self.get(s.inputs[0], ("data",))
        if len(s.inputs) > 1 and s.inputs[1] and s.inputs[1] not in self.g.consts:
            self.refuse(f"takes its axes from the data ({s.inputs[1]!r}), expected a constant")
        axes = _ints(self.g.consts[s.inputs[1]]) if len(s.inputs) > 1 and s.inputs[1] \
            else _ints(a.get("axes", []))
        n = len(x["axes"]) + len(axes)
        if not axes or len(set(k % n for k in axes)) != len(axes) or not all(-n <= k < n for k in axes):
            self.refuse(f"unsqueezes the data at axes {axes}: expected distinct axes of the result")
        out = list(x["axes"])
        for k in sorted(k % n for k in axes):
            out.insert(k, ("f", 1, self.fid()))
        return {"k": "data", "axes": out}

    def zeros_node(self, s, op, a) -> dict:
        """``Unsqueeze`` / ``Concat`` of zero tensors (tf2onnx's initial states: ``Expand(0, (B, H))``,
        ``Unsqueeze`` to ``(1, B, H)``, ``Concat`` of one per direction to ``(D, B, H)``)."""
        parts = [list(self.val[i]["shape"]) for i in s.inputs[:None if op == "Concat" else 1]]
        if op == "Unsqueeze":
            axes = _ints(self.g.consts[s.inputs[1]]) if len(s.inputs) > 1 and s.inputs[1] in self.g.consts \
                else _ints(a.get("axes", []))
            if not axes or (len(s.inputs) > 1 and s.inputs[1] not in self.g.consts):
                self.refuse("unsqueezes a zero state with axes that are not a constant")
            d = parts[0]
            for ax in sorted(x % (len(d) + len(axes)) for x in axes):
                d.insert(ax, _mono(1))
            return {"k": "zeros", "shape": d}
        n = len(parts[0])
        ax = int(a.get("axis", 0)) % n
        if any(len(p) != n or p[:ax] + p[ax + 1:] != parts[0][:ax] + parts[0][ax + 1:] or p[ax][1]
               for p in parts):
            self.refuse("concatenates zero tensors of different shapes, or along a sequence or batch axis")
        size = _mono(sum(p[ax][0] for p in parts))
        return {"k": "zeros", "shape": parts[0][:ax] + [size] + parts[0][ax + 1:]}

    # -- one direction, one time step of a recurrent output ---------------------------------------
    def pick(self, s, x: dict, k: int, lo: int, hi: int, squeeze: bool) -> dict:
        """One direction or one time step of a recurrent layer's output ``x``, sliced ``[lo:hi]`` along
        axis ``k`` (``squeeze``: a ``Gather`` of one index, the axis dropped). Directions: the direction
        axis of ``(T, D, B, H)``, or a ``[d*H:(d+1)*H]`` half of the merged ``(T, B, D*H)``; steps: the
        last (``y[-1]``) or the first (``y[0]``, a backward direction's last). The result is a part
        (``{"k": "part", "dir": d | None, "t": "last" | "first" | None}``) until a ``Concat`` joins the
        directions or another op reads it (:meth:`get`: a last step becomes ``LastStep()``)."""
        n = len(x["axes"])
        A = x["axes"][k]
        part = x if x["k"] == "part" else \
            {"k": "part", "axes": x["axes"], "layer": None, "dir": None, "t": None}
        rec = self.dirax.get(A[2]) if A[0] == "f" else None
        if rec is not None and part["dir"] is None:
            layer, D, H, hax = rec
            if A[1] == D and hi - lo == 1 and 0 <= lo < D:
                new = None if squeeze else ("f", 1, A[2])
            elif A[1] == D * H and not squeeze and lo % H == 0 and 0 <= lo < D * H \
                    and min(hi, D * H) == lo + H:
                lo, new = lo // H, hax
            else:
                self.refuse(f"takes [{lo}:{hi}] of the direction features of a recurrent layer (D = {D}, "
                            f"H = {H}): expected one direction")
            axes = x["axes"][:k] + ([new] if new else []) + x["axes"][k + 1:]
            return {**part, "axes": axes, "layer": layer, "dir": lo, "D": D}
        first, last = (lo, hi) == (0, 1), lo == -1 and hi >= 2 ** 31 - 1 or (squeeze and lo == -1)
        if A[0] == "s" and A[1] == (self.tsym,) and part["t"] is None and (first or last) and n >= 2:
            rec_axes = [r for r in self.dirax.values() if r[0] == self.nrec - 1]
            after = [op[0] for op in self.ops[self.last_rec() + 1:]] if self.nrec else ["none"]
            # poolings of this same data already taken (the parts of a Concat to come) may stand after them
            p0 = len(self.ops)
            while p0 > self.last_rec() + 1 and self.ops[p0 - 1][0] == "pool":
                p0 -= 1
            here = self.at.get(s.inputs[0], -2)
            if p0 < len(self.ops) and all(self.op_in[j] == here == p0 for j in range(p0, len(self.ops))):
                after = after[:len(after) - (len(self.ops) - p0)]
            if last and squeeze and x["k"] == "data" and after and set(after) <= {"act", "linear", "res"}:
                # the last step of per-step layers of the last recurrent layer's output: LastStep()
                # after them (a per-step function of the last step is the last step of its sequence)
                from rnncore.nn.layers import LastStep

                self.ops.append(("pool", LastStep(), s))
                return {"k": "data", "axes": x["axes"][:k] + x["axes"][k + 1:]}
            if part["layer"] not in (None, self.nrec - 1) or not rec_axes or not self.ops \
                    or (self.ops[-1][0] != "rec" and not self.pools_of_last_rec()):
                self.refuse("takes one time step of data that is not the last recurrent layer's output: "
                            "the C engine pools (LastStep) right after the last recurrent layer")
            axes = x["axes"][:k] + ([] if squeeze else [("f", 1, self.fid())]) + x["axes"][k + 1:]
            return {**part, "axes": axes, "layer": self.nrec - 1, "t": "first" if first else "last",
                    "D": rec_axes[0][1]}
        self.refuse(f"takes [{lo}:{hi}] of axis {k} of data ({', '.join(map(_dim_text, self.dims(x)))}): "
                    "expected one direction of a recurrent output, or its last (or, for a backward "
                    "direction, first) time step")

    def final_state(self, s, a) -> dict:
        """``Gather`` of one row of the final hidden states ``Y_h`` (``(D, B, H)``, or the layers' rows
        concatenated: PyTorch's ``h_n[k]``), read right after the last recurrent layer: its row of a
        one-direction layer is ``LastStep()``; of a bidirectional one, one direction's final state,
        ``LastStep(bidirectional=True, direction="forward" (row 0) / "backward" (row 1))``."""
        from rnncore.nn.layers import LastStep

        v = self.val[s.inputs[0]]
        idx = self.g.consts.get(s.inputs[1])
        rows = [(n, d) for n in v["layers"] for d in range(self.ndir[n])]
        if v["kind"] != "h" or idx is None or np.ndim(idx) != 0 or int(a.get("axis", 0)) != 0 \
                or not -len(rows) <= int(idx) < len(rows):
            self.refuse(f"gathers from the final {v['kind']} states other than one row of Y_h (one constant "
                        "index, axis 0)")
        layer, d = rows[int(idx)]
        if layer != self.nrec - 1 or not self.ops or self.ops[-1][0] != "rec" or v.get("batch") is None:
            self.refuse(f"reads the final state of recurrent layer {layer} (direction {d}): expected the "
                        "last recurrent layer's, read right after it (the C engine pools right after it)")
        H = next(r[2] for r in self.dirax.values() if r[0] == layer)
        self.ops.append(("pool", LastStep() if self.ndir[layer] == 1 else
                         LastStep(bidirectional=True, direction=("forward", "backward")[d]), s))
        self.op_in.append(len(self.ops) - 1)      # the point after the recurrent layer
        return {"k": "data", "axes": [v["batch"], ("f", H, self.fid())]}

    def last_rec(self) -> int:
        """The index in ``ops`` of the last recurrent layer (-1: none yet)."""
        return max((k for k, op in enumerate(self.ops) if op[0] in ("rec", "rres")), default=-1)

    def resolve(self, name: str, v: dict) -> dict:
        """A part read as data: a last step of every direction is ``LastStep()``; one direction of a
        bidirectional layer is refused."""
        from rnncore.nn.layers import LastStep

        if self.pools_of_last_rec():     # y[:, -1] next to y.mean(1) ...: a Concat of them only
            pooled = [op[2].name for op in self.ops[self.last_rec() + 1:]]
            self.step = self.producer.get(name, self.step)
            self.refuse(f"reads the last step of a recurrent output also pooled over time by {pooled}: "
                        "expected them joined by one Concat over the features (rc.nn.ConcatPool)")
        if v["dir"] is None and v["t"] == "last" and not any(a[0] == "f" and a[1] == 1 for a in v["axes"]):
            self.ops.append(("pool", LastStep(), self.step))
            self.op_in.append(self.at.get(name, -1))
            self.at[name] = len(self.ops)      # the pooled step: the point after the LastStep
            out = {"k": "data", "axes": v["axes"]}
            self.val[name] = out
            return out
        what = ("one direction" if v["t"] is None else f"the {v['t']} step of one direction") \
            if v["dir"] is not None else f"the {v['t']} step (of every direction)"
        self.refuse(f"reads {name!r}, {what} of a recurrent layer's output: expected every direction, "
                    "concatenated over the features in order ([forward | backward]), or their last step")

    def data_slice(self, s, gather: bool = False) -> dict:
        """``Slice`` (or ``Gather`` of one constant index) of the data: :meth:`pick`."""
        x = self.get(s.inputs[0], ("data", "part"))
        n = len(x["axes"])
        if gather:
            idx = self.g.consts.get(s.inputs[1])
            if idx is None or np.ndim(idx) != 0:
                self.refuse("gathers from the data with indices other than one constant")
            i = int(idx)
            return self.pick(s, x, int(s.attrs.get("axis", 0)) % n, i, i + 1 if i != -1 else 2 ** 31 - 1,
                             True)
        b = [_ints(self.g.consts[i]) if i in self.g.consts else None for i in s.inputs[1:5]]
        b += [None] * (4 - len(b))
        if b[0] is None or b[1] is None or (len(s.inputs) > 3 and s.inputs[3] and b[2] is None) \
                or (len(s.inputs) > 4 and s.inputs[4] and b[3] is None):
            self.refuse("slices the data with bounds that are not constants")
        axes = b[2] if b[2] is not None else list(range(len(b[0])))
        if len(axes) != 1 or (b[3] or [1]) != [1]:
            self.refuse("slices the data along more than one axis, or with a step")
        return self.pick(s, x, axes[0] % n, b[0][0], b[1][0], False)

    def data_concat(self, s, a) -> dict:
        """``Concat`` of a layer's directions over the features, in order: of the sequences
        (``(T, B, H)`` each -> ``(T, B, D*H)``), or of their last steps (``LastStep()``), or of the
        forward direction's last step and the backward direction's first
        (``LastStep(bidirectional=True)``, Keras' ``Bidirectional`` without ``return_sequences``)."""
        from rnncore.nn.layers import LastStep

        if any(self.val.get(i, {}).get("k") == "data" for i in s.inputs):
            return self.concat_pools(s, a)
        parts = [self.get(i, ("part",)) for i in s.inputs]
        n = len(parts[0]["axes"])
        ax = int(a.get("axis", 0)) % n
        D = parts[0].get("D")
        ts = [p["t"] for p in parts]
        if [p["dir"] for p in parts] != list(range(D or 0)) or len({p["layer"] for p in parts}) != 1 \
                or ax != n - 1 or any(p["axes"][:-1] != parts[0]["axes"][:-1] or p["axes"][-1][0] != "f"
                                      or p["axes"][-1][1] != parts[0]["axes"][-1][1] for p in parts) \
                or any(a_[0] == "f" for a_ in parts[0]["axes"][:-1]) or (None in ts and set(ts) != {None}) \
                or ts[0] == "first":
            self.refuse("concatenates parts of recurrent outputs other than every direction of one layer, in "
                        "order, along the features (the last axis, the direction axis squeezed), each the "
                        "whole sequence or the forward direction's last step with the backward's last or "
                        "first")
        H = parts[0]["axes"][-1][1]
        dax = next(i for i, r in self.dirax.items() if r[0] == parts[0]["layer"])
        out = {"k": "data", "axes": parts[0]["axes"][:-1] + [("f", D * H, dax)]}
        if ts[0] is None:
            return out
        self.ops.append(("pool", LastStep(bidirectional=bool(D == 2 and ts[1] == "first")), s))
        return out

    def pools_of_last_rec(self) -> bool:
        """Are the ops after the last recurrent layer poolings of its output alone (the parts of a
        concatenation still to come)?"""
        k = self.last_rec()
        after = self.ops[k + 1:]
        return k >= 0 and self.ops[k][0] == "rec" and bool(after) and all(
            op[0] == "pool" and self.op_in[k + 1 + j] == k + 1 for j, op in enumerate(after))

    _CONCAT_FORMS = ("ReduceMean / ReduceMax over time (keepdims=0, or 1 then Squeeze / Flatten / "
                     "Reshape), GlobalMaxPool / GlobalAveragePool then Squeeze / Flatten, or the last step "
                     "(Gather of index -1 over time)")

    def concat_pools(self, s, a) -> dict:
        """``Concat`` over the features of poolings over time of the last recurrent layer's output
        (``torch.cat([y.mean(1), y.max(1).values, y[:, -1]], 1)`` exported): the poolings, the last
        ops of the chain, each reading that output, become one ``rc.nn.ConcatPool`` in the Concat's
        order."""
        from rnncore.nn.layers import ConcatPool, LastStep, MaskedMax, MaskedMean

        k_rec = self.last_rec()
        if k_rec < 0 or self.ops[k_rec][0] != "rec":
            self.refuse("concatenates data that is not pooled from a recurrent layer's output: expected "
                        f"poolings of the last recurrent layer's output, each {self._CONCAT_FORMS}")
        lo = len(self.ops)      # the poolings: the last ops (after per-step layers of the output, if any)
        while lo > k_rec + 1 and self.ops[lo - 1][0] == "pool":
            lo -= 1
        pools, used, axes = [], set(), []
        for name in s.inputs:
            v = self.val.get(name, {})
            if v.get("k") == "part":
                if lo != k_rec + 1:
                    self.refuse(f"concatenates {name!r}, the last step of the recurrent output, with "
                                "poolings of per-step layers after it: expected poolings of one tensor")
                if v["dir"] is not None or v["t"] != "last" or v["layer"] != self.nrec - 1 \
                        or any(x[0] == "f" and x[1] == 1 for x in v["axes"]):
                    self.refuse(f"concatenates {name!r}, a part of a recurrent output other than its last "
                                "step (of every direction)")
                pools.append(LastStep())
                axes.append(v["axes"])
                continue
            if v.get("k") != "data":
                self.refuse(f"concatenates {name!r}, a {v.get('k', 'untracked')} value, with pooled data")
            st, seen = self.producer.get(name), 0
            while st is not None and st.op in ("Squeeze", "Flatten", "Reshape", "Identity") and seen < 4:
                st, seen = self.producer.get(st.inputs[0]), seen + 1
            k = next((j for j in range(k_rec + 1, len(self.ops)) if self.ops[j][2] is st), None)
            m = self.ops[k][1] if k is not None else None
            if k is None or self.ops[k][0] != "pool" or type(m) not in (MaskedMean, MaskedMax, LastStep) \
                    or getattr(m, "bidirectional", False):
                what = f"{st.name!r} ({st.op})" if st is not None else repr(name)
                if k is not None and type(self.ops[k][1]).__name__ == "AttentionPool":
                    self.refuse(f"concatenates {what}, an attention pooling: rc.nn.ConcatPool holds "
                                "last-step, mean and max poolings only")
                self.refuse(f"concatenates {what}, which is not a pooling over time of the last recurrent "
                            f"layer's output; expected {self._CONCAT_FORMS}")
            if k in used:
                self.refuse(f"concatenates the output of {st.name!r} twice")
            used.add(k)
            pools.append(type(self.ops[k][1])())
            axes.append(v["axes"])
        if used != set(range(lo, len(self.ops))) or any(self.op_in[j] != lo for j in used):
            other = [op[2].name for j, op in enumerate(self.ops[lo:], lo) if j not in used]
            self.refuse("concatenates poolings of different tensors, or other layers come between "
                        f"({other or 'a pooling of another point of the chain'}): expected poolings of the "
                        "last recurrent layer's output only")
        kinds = [type(p).__name__ for p in pools]
        if len(set(kinds)) != len(kinds):
            self.refuse(f"concatenates the same pooling twice ({kinds}): rnncore's ConcatPool holds each of "
                        "LastStep, MaskedMean and MaskedMax once")
        n = len(axes[0])
        if int(a.get("axis", 0)) % n != n - 1 or n != 2 or any(
                [x[:2] for x in ax] != [x[:2] for x in axes[0]] for ax in axes) \
                or axes[0][0][0] != "s" or axes[0][1][0] != "f":
            self.refuse(f"concatenates pooled data along axis {a.get('axis', 0)}: expected (batch, features) "
                        "values of one shape joined along the features (the last axis)")
        del self.ops[lo:], self.op_in[lo:]
        self.ops.append(("pool", ConcatPool(*pools), s))
        self.op_in.append(lo)
        return {"k": "data", "axes": [axes[0][0], ("f", len(pools) * axes[0][1][1], self.fid())]}

    def merge(self, s, op: str) -> dict:
        """``Add`` / ``Mul`` of the two directions of one bidirectional layer (Keras
        ``Bidirectional(merge_mode="sum" / "ave" / "mul")`` as tf2onnx writes it): on rnncore's
        ``[forward | backward]`` features, the per-step Linear ``[I I]`` (no bias; "ave": the ``Div``
        by 2 after it scales it, :meth:`scale`) or ``rc.nn.MulHalves``; of the whole sequences, or of
        the forward direction's last step and the backward's last or first (after
        ``LastStep(bidirectional=...)``, as :meth:`data_concat`)."""
        from rnncore.nn.layers import LastStep, Linear
        from rnncore.nn.pointwise import MulHalves

        parts = sorted((self.val[i] for i in s.inputs[:2]),
                       key=lambda p: -1 if p["dir"] is None else p["dir"])
        ts = [p["t"] for p in parts]
        shape = [[a[:2] for a in p["axes"]] for p in parts]
        if [p["dir"] for p in parts] != [0, 1] or parts[0].get("D") != 2 \
                or parts[0]["layer"] != parts[1]["layer"] or shape[0] != shape[1] \
                or parts[0]["axes"][-1][0] != "f" or (None in ts and set(ts) != {None}) \
                or ts[0] == "first" or any(a[0] == "f" and a[1] != 1 for a in parts[0]["axes"][:-1]):
            self.refuse(f"{'adds' if op == 'Add' else 'multiplies'} parts of recurrent outputs other than "
                        "the two directions of one bidirectional layer, each the whole sequence or the "
                        "forward direction's last step with the backward's last or first, in one layout with "
                        "the features last")
        H = parts[0]["axes"][-1][1]
        if ts[0] is not None:
            self.ops.append(("pool", LastStep(bidirectional=ts[1] == "first"), s))
        rec = [op_[1] for op_ in self.ops if op_[0] == "rec"][parts[0]["layer"]]
        dtype = rec.params["weight_ih_l0"].dtype.name
        if op == "Mul":
            self.ops.append(("act", MulHalves(), s))
        else:
            m = Linear(2 * H, H, bias=False, dtype=dtype)
            eye = np.eye(H, dtype=dtype)
            m.params["weight"] = np.concatenate([eye, eye], axis=1)
            self.ops.append(("linear", m, s))
        return {"k": "data", "axes": parts[0]["axes"][:-1] + [("f", H, self.fid())]}

    def scale(self, s, op: str) -> dict:
        """``Mul`` / ``Div`` of the output of the Linear right before it by a scalar constant (the
        "ave" merge's ``/ 2``): that Linear scaled."""
        names = list(s.inputs[:2])
        consts = [i for i in names if i in self.g.consts]
        c = np.asarray(self.g.consts[consts[0]], np.float64) if len(consts) == 1 else None
        last = self.ops[-1] if self.ops else None
        after_linear = last is not None and last[0] == "linear" and self.linear_out in names
        if c is not None and (c.size != 1 or not after_linear) \
                and not (op == "Div" and names[1] != consts[0]) and np.isfinite(c).all() and np.all(c != 0):
            x_name = next(i for i in names if i not in consts)
            return self.affine(s, x_name, 1.0 / c if op == "Div" else c, None)
        if c is None or c.size != 1 or last is None or last[0] != "linear" or self.linear_out not in names \
                or (op == "Div" and names[1] != consts[0]) or not np.isfinite(c).all() \
                or c.reshape(-1)[0] == 0:
            self.refuse(f"{'multiplies' if op == 'Mul' else 'divides'} the data by something other than one "
                        "nonzero constant right after a Linear (a bidirectional merge's Add)")
        import copy

        k = float(c.reshape(-1)[0]) if op == "Mul" else 1.0 / float(c.reshape(-1)[0])
        lin = copy.deepcopy(last[1])     # (a Gemm's module is the graph's own)
        for key in list(lin.params):
            lin.params[key] = (lin.params[key] * k).astype(lin.params[key].dtype)
        self.ops[-1] = ("linear", lin, s)
        return self.get(next(i for i in names if i not in consts), ("data",))

    def affine(self, s, name: str, scale, shift) -> dict:
        """``x * scale`` or ``x + shift`` by a constant of one value or one per feature (the last axis),
        not a Linear's: a per-step ``rc.nn.BatchNorm1d`` with ``running_mean`` 0, ``running_var`` 1 and
        ``eps`` 0 (its ``scale_shift`` record is ``x * weight + bias`` exactly); a shift right after such a
        scale joins it."""
        from rnncore.nn.norm import BatchNorm1d

        x = self.get(name, ("data",))
        F = self.features(x, "data")
        c = np.asarray(scale if shift is None else shift, np.float64)
        if c.size not in (1, F) or (c.size == F and c.shape[-1] != F) or c.ndim > len(x["axes"]):
            self.refuse(f"{'multiplies' if shift is None else 'adds'} the data by a constant of shape "
                        f"{c.shape}: expected one value or one per feature ({F}) of the last axis")
        c = np.broadcast_to(c.reshape(-1), (F,))
        last = self.ops[-1] if self.ops else None
        if shift is not None and last is not None and last[1] is self.affine_mod \
                and self.affine_out == name:
            bn = last[1]
        else:
            bn = BatchNorm1d(F, eps=0.0, dtype="float64")
            self.ops.append(("act", bn, s))
            self.width[id(s)] = F
            self.affine_mod = bn
        if shift is None:
            bn.params["weight"] = bn.params["weight"] * c
            bn.params["bias"] = bn.params["bias"] * c
        else:
            bn.params["bias"] = bn.params["bias"] + c
        self.affine_out = s.outputs[0]
        return x

    def norm_layer(self, s, op: str) -> dict:
        """``LayerNormalization`` over the features (the last axis), ``BatchNormalization`` (inference) of
        data whose axis 1 is the features, the others sequence axes (``(N, C, T)`` between transposes, or
        ``(N, C)``): per-step ``rc.nn.LayerNorm`` / ``rc.nn.BatchNorm1d``."""
        from rnncore.nn.norm import LayerNorm

        x = self.get(s.inputs[0], ("data",))
        if op == "BatchNormalization":
            ax = x["axes"]
            if len(ax) < 2 or ax[1][0] != "f" or any(a[0] == "f" for k, a in enumerate(ax) if k != 1):
                shape = ", ".join(map(_dim_text, self.dims(x)))
                self.refuse(f"normalises axis 1 of data of shape ({shape}): "
                            "expected the features on axis 1 alone ((N, C) or (N, C, T))")
            m, F = s.fn.module, int(ax[1][1])
            if m.num_features != F:
                self.refuse(f"normalises {m.num_features} channels, the data has {F}")
        else:
            ax, n = int(s.attrs.get("axis", -1)), len(x["axes"])
            if ax % n != n - 1:
                self.refuse(f"normalises the axes from {ax} on of data of {n} axes (the engine's LayerNorm: "
                            "the last axis)")
            if any(s.outputs[1:]):
                self.refuse("has the Mean / InvStdDev outputs (the engine's LayerNorm returns Y alone)")
            F = self.features(x, "data")
            m = getattr(s.fn, "module", None)
            if m is None:            # a decomposed LayerNorm (_fuse.py)
                a = s.attrs
                m = LayerNorm(F, eps=a["epsilon"], bias=a["bias"] is not None, dtype="float64")
                for key, v in (("weight", a["scale"]), ("bias", a["bias"])):
                    if v is not None:
                        if v.size not in (1, F):
                            self.refuse(f"scales by {v.size} values, the data has {F} features")
                        m.params[key] = np.broadcast_to(v, (F,)).astype(np.float64)
            elif m.normalized_shape != F:
                self.refuse(f"normalises {m.normalized_shape} features, the data has {F}")
        self.ops.append(("act", m, s))
        self.width[id(s)] = F
        return x

    def mean_over_time(self, s, a) -> dict:
        """``ReduceMean`` over the time axis (``keepdims=0``) of the last recurrent layer's per-step
        output: ``rc.nn.MaskedMean`` (its ``lengths`` are the engine's). ``keepdims=1``, or the time
        axis with axes of size 1 (the dynamo exporter's ``adaptive_avg_pool1d(y, 1)``: ``Unsqueeze`` to
        ``(B, F, 1, T)``, ``ReduceMean`` over the last two axes, ``Squeeze``), is read as
        :meth:`max_over_time` reads its ``ReduceMax`` twin."""
        from rnncore.nn.layers import MaskedMean

        x = self.get(s.inputs[0], ("data",))
        axes = _ints(self.g.consts[s.inputs[1]]) if len(s.inputs) > 1 and s.inputs[1] in self.g.consts \
            else _ints(a.get("axes", []))
        n = len(x["axes"])
        if len(axes) != 1 or int(a.get("keepdims", 1)) or self.tsym is None \
                or x["axes"][axes[0] % n] != ("s", (self.tsym,)) or n != 3 or self.nrec == 0:
            try:
                return self.max_over_time(s, "ReduceMean", a)
            except _Refused:
                pass
            self.refuse("is a mean other than over the time axis of a recurrent layer's output (keepdims=0)")
        self.ops.append(("pool", MaskedMean(), s))
        return {"k": "data", "axes": [ax for k, ax in enumerate(x["axes"]) if k != axes[0] % n]}

    def max_over_time(self, s, op: str, a) -> dict:
        """``ReduceMax`` over the time axis of the last recurrent layer's per-step output, ``(B, T, F)``,
        ``(T, B, F)`` or channels first ``(B, F, T)``, or ``GlobalMaxPool`` of ``(B, F, T)``:
        ``rc.nn.MaskedMax``, the maximum over each sequence's valid steps (the engine's lengths: a row
        of length ``L`` is the graph on its first ``L`` steps). ``keepdims=1`` (``GlobalMaxPool``'s
        only form) keeps the time axis as a feature axis of size 1 for a ``Squeeze`` / ``Reshape`` /
        ``Flatten`` to drop; reaching the output so is refused naming the node. ``GlobalAveragePool``
        of ``(B, F, T)`` is the same with ``rc.nn.MaskedMean``, the mean over each sequence's valid
        steps."""
        from rnncore.nn.layers import MaskedMax, MaskedMean

        mean = op in ("ReduceMean", "GlobalAveragePool")
        word = "mean" if mean else "maximum"
        x = self.get(s.inputs[0], ("data",))
        n, shape = len(x["axes"]), ", ".join(map(_dim_text, self.dims(x)))
        time = ("s", (self.tsym,))
        rest = [d for d in x["axes"] if d != time]
        if op in ("GlobalMaxPool", "GlobalAveragePool"):
            if n != 3 or x["axes"][2] != time or x["axes"][0][0] != "s" or x["axes"][1][0] != "f" \
                    or self.nrec == 0:
                self.refuse(f"pools data of shape ({shape}): expected channels-first (B, F, T) data of a "
                            "recurrent layer's output, the time axis last (a Transpose before it)")
            ax, keep = 2, True
        else:
            if int(a.get("noop_with_empty_axes", 0)):
                self.refuse(f"has noop_with_empty_axes=1: expected the {word} over the time axis alone")
            if len(s.inputs) > 1 and s.inputs[1] and s.inputs[1] not in self.g.consts:
                self.refuse(f"takes its axes from the data ({s.inputs[1]!r}), expected a constant")
            axes = _ints(self.g.consts[s.inputs[1]]) if len(s.inputs) > 1 and s.inputs[1] \
                else _ints(a.get("axes", []))
            red = sorted({k % n for k in axes if -n <= k < n})
            ones = [k for k in red if x["axes"][k][:2] == ("f", 1)]        # size 1: the same either way
            if len(red) != len(axes) or len(red) != len(ones) + 1 or self.tsym is None \
                    or time not in [x["axes"][k] for k in red] or self.nrec == 0:
                self.refuse(f"takes the {word} over axes {axes} of data ({shape}): expected the time axis "
                            "alone (and axes of size 1) of a recurrent layer's output, (B, T, F), (T, B, F) "
                            "or (B, F, T)")
            ax, keep = next(k for k in red if k not in ones), bool(int(a.get("keepdims", 1)))
            if not keep:
                rest = [d for k, d in enumerate(x["axes"]) if k not in red]
        if [d[0] for d in rest if d[:2] != ("f", 1)] != ["s", "f"]:
            self.refuse(f"takes the {word} over time of data ({shape}) whose other axes are not the batch "
                        "then the features")
        self.ops.append(("pool", MaskedMean() if mean else MaskedMax(), s))
        if not keep:
            return {"k": "data", "axes": rest}
        fid = self.fid()
        self.kept[fid] = s
        return {"k": "data", "axes": [d if k != ax else ("f", 1, fid) for k, d in enumerate(x["axes"])]}

    def flatten(self, s, a) -> dict:
        """``Flatten(axis)``: the data reshaped to ``(prod(d[:axis]), prod(d[axis:]))``."""
        x = self.get(s.inputs[0], ("data",))
        d = self.dims(x)
        k = int(a.get("axis", 1)) % (len(d) + 1)
        lo, hi = _mono(1), _mono(1)
        for i, di in enumerate(d):
            lo, hi = (_mul(lo, di), hi) if i < k else (lo, _mul(hi, di))
        return {"k": "data", "axes": self.reshape(x, [lo, hi], True)}

    def einsum_linear(self, s, a) -> dict:
        """``Einsum`` of the data by a constant as a per-step Linear: ``...i,ih->...h`` (a matrix)
        or the grouped linear ``...gi,gih->...gh`` (DeepFilterNet's): ``Linear(G I, G H)`` whose
        weight is block diagonal, ``W[g H + h, g I + i] = w[g, i, h]``, on the step's features
        ``(G, I)`` flattened row-major; the leading letters name the other axes, unchanged."""
        from rnncore.nn.layers import Linear

        why = ("is an Einsum other than the data's last axes by a constant, '...i,ih->...h' or "
               "'...gi,gih->...gh' (a grouped linear) with the other axes kept in order")
        eq = a["equation"].decode() if isinstance(a["equation"], bytes) else a["equation"]
        eq = eq.replace(" ", "")
        if len(s.inputs) != 2 or s.inputs[1] not in self.g.consts or "->" not in eq or "..." in eq:
            self.refuse(why)
        x = self.get(s.inputs[0], ("data",))
        w = np.asarray(self.g.consts[s.inputs[1]], np.float64)
        (t0, t1), t2 = eq.split("->")[0].split(","), eq.split("->")[1]
        k = len(t1) - 1                   # the data's feature axes the weight reads: i, or g i
        pre = t0[:-k] if k in (1, 2) else ""
        ok = k in (1, 2) and len(t0) == len(x["axes"]) and w.ndim == len(t1)
        ok = ok and len(set(t0 + t1[-1])) == len(t0) + 1
        ok = ok and t0[-k:] == t1[:-1] and t2 == pre + t0[-k:-1] + t1[-1] and not set(pre) & set(t1)
        ax = x["axes"]
        ok = ok and all(d[0] == "f" for d in ax[-k:]) and not any(d[0] == "f" for d in ax[:-k])
        if not ok or tuple(int(d[1]) for d in ax[-k:]) != w.shape[:-1]:
            self.refuse(why + f" (equation {eq!r}, data ({', '.join(map(_dim_text, self.dims(x)))}), "
                              f"weight {w.shape})")
        G, In, H = (1, *w.shape) if k == 1 else w.shape
        W = np.zeros((G * H, G * In))
        for g, block in enumerate(w.reshape(G, In, H)):
            W[g * H:(g + 1) * H, g * In:(g + 1) * In] = block.T
        m = Linear(G * In, G * H, bias=False, dtype=self.g.dtype.name)
        m.params["weight"] = W.astype(self.g.dtype)
        self.ops.append(("linear", m, s))
        fid = self.fid()
        feats = [("f", H, fid)] if k == 1 else [("f", G, fid + (0,)), ("f", H, fid + (1,))]
        return {"k": "data", "axes": ax[:-k] + feats}

    # -- data reshapes ---------------------------------------------------------------------------
    def reshape(self, v: dict, target: list, allowzero: bool) -> list:
        d_in = self.dims(v)
        target = list(target)
        for i, t in enumerate(target):
            if t == _mono(0) and not allowzero:
                target[i] = d_in[i]
        if sum(t == _mono(-1) for t in target) > 1:
            self.refuse("reshapes with more than one -1")
        if _mono(-1) in target:
            total = _mono(1)
            for d in d_in:
                total = _mul(total, d)
            known = _mono(1)
            for t in target:
                if t != _mono(-1):
                    known = _mul(known, t)
            if not _divides(known, total):
                self.refuse(f"reshapes ({', '.join(map(_dim_text, d_in))}) to "
                            f"({', '.join(map(_dim_text, target))}): the sizes do not divide the data's for "
                            "every T and B (a shape written with the export's sizes instead of the data's: "
                            "export with dynamic axes)")
            target[target.index(_mono(-1))] = _div_mono(total, known)
        axes, out, i, j = v["axes"], [], 0, 0
        bad = (f"reshapes ({', '.join(map(_dim_text, d_in))}) to ({', '.join(map(_dim_text, target))}): "
               "expected merges or splits of the sequence axes or of the feature axes, each in order (a "
               "shape written with the export's sizes instead of the data's is refused: export with dynamic "
               "axes)")
        while i < len(axes) or j < len(target):
            if j >= len(target) and all(a[0] == "f" and a[1] == 1 for a in axes[i:]):
                break                     # trailing axes of size 1 dropped ((B, F, 1) -> (B, F))
            if i >= len(axes) or j >= len(target):
                self.refuse(bad)
            gi, gj = [axes[i]], [target[j]]
            pi, pj = d_in[i], target[j]
            while pi != pj:
                if _divides(pi, pj) and i + len(gi) < len(axes):
                    gi.append(axes[i + len(gi)])
                    pi = _mul(pi, d_in[i + len(gi) - 1])
                elif _divides(pj, pi) and j + len(gj) < len(target):
                    gj.append(target[j + len(gj)])
                    pj = _mul(pj, gj[-1])
                else:
                    self.refuse(bad)
            i, j = i + len(gi), j + len(gj)
            kinds = {a[0] for a in gi}
            if len(kinds) != 1 or (len(gi) > 1 and len(gj) > 1):
                self.refuse(bad)
            if len(gi) == 1 and len(gj) == 1:
                out.append(gi[0])
            elif kinds == {"s"}:
                if len(gj) == 1:          # merge, row-major
                    out.append(("s", tuple(x for a in gi for x in a[1])))
                else:                     # split a merge back into its axes, in its order
                    if [_mono(1, (x,)) for x in gi[0][1]] != gj:
                        self.refuse(bad)
                    out += [("s", (x,)) for x in gi[0][1]]
            else:
                if len(gj) == 1:
                    ids = [a[2] for a in gi if a[1] != 1]     # an axis of size 1 has no order
                    if ids != sorted(ids):
                        self.refuse(bad + " (features merged out of their order)")
                    ids = [a[2] for a in gi if a[2] not in self.kept] or ids   # not a pooled time axis
                    out.append(("f", pj[0], gi[0][2] if gi[0][2] not in self.kept else ids[0]))
                else:
                    if any(t[1] for t in gj):
                        self.refuse(bad)
                    out += [("f", t[0], gi[0][2] + (k,)) for k, t in enumerate(gj)]
        return out

    # -- the nodes -------------------------------------------------------------------------------
    def node(self, s) -> None:
        self._node(s)
        self.nodes_read += 1
        for o in s.outputs:
            if o:
                self.producer[o] = s
        while len(self.op_in) < len(self.ops):      # op k reads the point of the node's input
            self.op_in.append(self.at.get(s.inputs[0], -1))
        for o in s.outputs[:1]:
            if o and o not in self.at:
                self.at[o] = len(self.ops)

    def residual(self, s, names: list) -> dict:
        """``x + f(x)``: the activations between the two points become ``rc.nn.Residual(f)``."""
        import copy

        from rnncore.nn.layers import Sequential
        from rnncore.nn.pointwise import Residual

        u, w = (self.get(i, ("data",)) for i in names)
        (lo, vlo), (hi, vhi) = sorted(((self.at.get(n, -1), v) for n, v in zip(names, (u, w), strict=True)),
                                      key=lambda p: p[0])
        if lo < 0 or lo == hi or hi != len(self.ops) or any(self.op_in[k] != k for k in range(lo, hi)):
            self.refuse("adds two data tensors that are not x and a per-step function of it (x + f(x), f the "
                        "layers right after x)")
        f = self.ops[lo:hi]
        nrec = sum(op[0] in ("rec", "rres") for op in f)   # x + GRU(x): around one recurrent layer
        bad = next((op for op in f if op[0] not in ("act", "linear", "res", "rec", "rres")
                    or type(op[1]).__name__ in ("Softmax", "LogSoftmax")), None)
        if bad is not None or nrec > 1:
            bad = bad or [op for op in f if op[0] in ("rec", "rres")][1]
            self.refuse(f"adds x and f(x) where f holds a {bad[2].op} ({bad[2].name!r}): the C engine's "
                        "residual wraps per-step layers (Linear, activations, residuals) and at most one "
                        "recurrent layer")
        if [a[:2] for a in vlo["axes"]] != [a[:2] for a in vhi["axes"]]:   # a Linear in f: a new feature id
            self.refuse("adds x and f(x) in different layouts")
        mods = []
        for kind, m, st in f:   # each activation's record gives its input width (a front-end's first)
            if kind != "act":
                mods.append(m)     # a Linear gives its in_features, a residual its first layer's
                continue
            fm, n = copy.copy(m), self.width[id(st)]
            fm.record = (lambda m=m, n=n: {**m.record(), "features": n})
            mods.append(fm)
        try:
            res = Residual(mods[0] if len(mods) == 1 else Sequential(*mods))
        except (TypeError, ValueError) as e:
            self.refuse(f"adds x and f(x) around a recurrent layer: {e}")
        # around a recurrent layer the residual is one ("rres": no Linear folds into it)
        self.ops[lo:hi] = [("rres" if nrec else "res", res, s)]
        self.op_in[lo:hi] = [lo]
        return vhi

    def _node(self, s) -> None:
        self.step = s
        op, a = s.op, s.attrs
        on_shape = s.inputs[0] in self.val and self.val[s.inputs[0]]["k"] == "shape"
        kinds = [self.val.get(i, {}).get("k") for i in s.inputs[:2]]
        if "attn" in kinds:
            out = self.attention_step(s, op, a)
        elif op in ("Add", "Mul") and kinds == ["part", "part"]:
            out = self.merge(s, op)
        elif op in ("Mul", "Div") and "data" in kinds and any(i in self.g.consts for i in s.inputs[:2]):
            out = self.scale(s, op)
        else:
            out = None
        out = out if out is not None else self.shape_node(s, op, a) if op in (
            "Shape", "Gather", "Unsqueeze", "Concat", "Mul", "Slice", "ConstantOfShape", "Expand") \
            or (op in ("Squeeze", "Reshape") and on_shape) else None
        if out is not None:
            pass
        elif op in ("Slice", "Gather"):
            out = self.data_slice(s, gather=op == "Gather")
        elif op == "Concat":
            out = self.data_concat(s, a)
        elif op in ("Identity", "Cast", "Dropout"):
            out = self.get(s.inputs[0], ("data", "shape", "zeros", "part")
                           + (("state",) if op == "Identity" else ()))
            if op == "Cast" and out["k"] == "data" and int(a.get("to", 1)) not in (1, 10, 11, 16):
                self.refuse("casts the data to an integer type")
        elif op == "Transpose":
            x = self.get(s.inputs[0], ("data",))
            perm = list(a.get("perm", range(len(x["axes"]) - 1, -1, -1)))
            out = {"k": "data", "axes": [x["axes"][p] for p in perm]}
        elif op == "Reshape":
            x = self.get(s.inputs[0], ("data",))
            target = self.shape_vec(s.inputs[1])
            out = {"k": "data", "axes": self.reshape(x, target, bool(int(a.get("allowzero", 0))))}
        elif op == "Squeeze":
            x = self.get(s.inputs[0], ("data", "part"))
            axes = _ints(self.g.consts[s.inputs[1]]) if len(s.inputs) > 1 and s.inputs[1] in self.g.consts \
                else _ints(a.get("axes", []))
            n = len(x["axes"])
            axes = sorted(ax % n for ax in axes)
            if not axes or any(x["axes"][ax] != ("f", 1, x["axes"][ax][2]) for ax in axes if
                               x["axes"][ax][0] == "f") or any(x["axes"][ax][0] != "f" for ax in axes):
                self.refuse(f"squeezes axes {axes}: expected axes of size 1 (a direction axis)")
            out = {**x, "axes": [ax for k, ax in enumerate(x["axes"]) if k not in axes]}
        elif op in ("LSTM", "GRU", "RNN"):
            self.recurrent(s, a)
            return
        elif op == "Pad":
            out = self.time_pad(s, a)
        elif op in ("Conv", "MaxPool", "AveragePool"):
            out = self.time_layer(s, op, a)
        elif op == "Einsum":
            out = self.einsum_linear(s, a)
        elif op in ("Gemm", "MatMul"):
            x = self.get(s.inputs[0], ("data",))
            m = getattr(s.fn, "module", None)
            if m is None:
                self.refuse("multiplies the data by something other than a constant matrix")
            if op == "Gemm" and len(x["axes"]) != 2:
                self.refuse("is a Gemm of data with more than 2 axes")
            F = self.features(x, "data")
            if F != m.in_features:
                self.refuse(f"takes {m.in_features} features, the data has {F}")
            self.ops.append(("linear", m, s))
            out = {"k": "data", "axes": x["axes"][:-1] + [("f", m.out_features, self.fid())]}
        elif op == "Add" and not any(i in self.g.consts for i in s.inputs[:2]):
            out = self.residual(s, list(s.inputs[:2]))
        elif op == "Add":
            names = [i for i in s.inputs[:2]]
            consts = [i for i in names if i in self.g.consts]
            if len(consts) != 1:
                self.refuse("adds two constants")
            x = self.get(next(i for i in names if i not in consts), ("data",))
            b = np.asarray(self.g.consts[consts[0]])
            F = self.features(x, "data")
            last = self.ops[-1] if self.ops else None
            if last is None or last[0] != "linear" or self.linear_out not in names:
                out = self.affine(s, next(i for i in names if i not in consts), None, b)
            else:
                if b.size not in (1, F) or (b.size == F and b.shape[-1] != F) or b.ndim > len(x["axes"]):
                    self.refuse("adds a constant that is not the bias of the Linear (MatMul) right before it")
                lin = last[1]
                bias = np.broadcast_to(b.reshape(-1), (F,)).astype(lin.params["weight"].dtype)
                if "bias" in lin.params:
                    lin.params["bias"] = lin.params["bias"] + bias
                else:
                    from rnncore.nn.layers import Linear

                    dt = lin.params["weight"].dtype.name
                    new = Linear(lin.in_features, lin.out_features, bias=True, dtype=dt)
                    new.params["weight"] = lin.params["weight"]
                    new.params["bias"] = np.array(bias)
                    self.ops[-1] = ("linear", new, last[2])
                out = x
        elif op in ("LayerNormalization", "BatchNormalization"):
            out = self.norm_layer(s, op)
        elif op == "ReduceMean":
            out = self.mean_over_time(s, a)
        elif op in ("ReduceMax", "GlobalMaxPool", "GlobalAveragePool"):
            out = self.max_over_time(s, op, a)
        elif op == "Flatten":
            out = self.flatten(s, a)
        elif op == "InstanceNormalization":
            out = self.instance_norm(s)
        elif op in _NO_ENGINE:
            nodes = f", the nodes {a['nodes']}" if a.get("nodes") else ""
            self.refuse(f"is {_NO_ENGINE[op]}{nodes}: the C engine has no per-step layer for it (its "
                        "per-step activations: Relu, Sigmoid, Tanh, HardSigmoid, LeakyRelu, Elu, "
                        "Clip (constant bounds), HardSwish, x * Sigmoid(x), Softplus, Softsign, "
                        "Gelu (erf or tanh form), "
                        "Softmax last)",
                        "run the model as the imported OnnxGraph (NumPy), or export it with one of those")
        elif (op in _SEQ_ACTS and hasattr(s.fn, "module")) or op == "Abs":
            from rnncore.nn.pointwise import Abs

            x = self.get(s.inputs[0], ("data",))
            self.width[id(s)] = int(np.prod([ax[1] for ax in x["axes"] if ax[0] == "f"]))
            self.ops.append(("act", Abs() if op == "Abs" else s.fn.module, s))
            out = x
        elif op in ("Softmax", "LogSoftmax"):
            x = self.get(s.inputs[0], ("data",))
            n = len(x["axes"])
            opset13 = getattr(self.g, "opset", 13) >= 13
            ax = int(a.get("axis", -1 if opset13 else 1)) % n
            if op == "Softmax" and opset13 and x["axes"][ax][0] == "s":   # over time: attention pooling
                self.val[s.outputs[0]] = self.attention_scores(s, x, ax)
                return
            F = self.features(x, "data")
            if ax != n - 1:
                self.refuse(f"normalises over axis {ax}: expected the features (axis {n - 1})")
            self.ops.append(("act", _softmax_module(op == "LogSoftmax"), s))
            out = x
            assert F
        else:
            extra = next((i for i in s.inputs if self.val.get(i, {}).get("k") == "gstate"), None)
            if extra is not None:     # a graph input other than a recurrent state: a mask, most often
                self.refuse(f"reads the graph input {extra!r}, which is not a recurrent layer's state (a "
                            "mask of the valid steps, e.g. masked_fill before an attention softmax?)",
                            "export without the mask and give the lengths to engine.run(x, lengths)")
            self.refuse("is not an op of the sequence chains this lowering follows")
        if op in ("Gemm", "MatMul", "Add", "Div") or (op == "Mul" and self.ops and self.ops[-1][2] is s
                                                      and self.ops[-1][0] == "linear"):
            self.linear_out = s.outputs[0]
        for o in s.outputs[:1]:
            if o:
                self.val[o] = out

    # -- attention pooling over time -------------------------------------------------------------
    _ATTN = ("attention pooling: scores e = v(tanh(W x)) of the data x (a MatMul by W (F, A) [+ bias], Tanh, "
             "a MatMul by v (A, 1) [+ bias], each reading the one before), a = Softmax(e) over time "
             "[Squeeze / Unsqueeze of e's last axis], then ReduceSum(a * x) over time (keepdims=0) or "
             "Squeeze(MatMul(Transpose(a, (0, 2, 1)), x), 1)")

    def attention_scores(self, s, e: dict, ax: int) -> dict:
        """``Softmax`` of the scores ``e = v(tanh(W x))`` over the time axis: the three ops that made ``e``
        are taken back (they are the pooling's own), and the weights ``a`` are followed to the pooling
        (:meth:`attention_step`)."""
        n = len(e["axes"])
        if e["axes"][ax] != ("s", (self.tsym,)) or not self.nrec:
            self.refuse(f"normalises over axis {ax}, a sequence axis other than the recurrent layers' time "
                        f"axis: expected the features (axis {n - 1}), or {self._ATTN}")
        p = len(self.ops) - 3
        tail = self.ops[max(p, 0):]
        if p < 0 or [t[0] for t in tail] != ["linear", "act", "linear"] or tail[1][2].op != "Tanh" \
                or tail[2][1].out_features != 1 or self.op_in[p:] != [p, p + 1, p + 2]:
            got = ", ".join(f"{t[2].op} {t[2].name!r}" for t in tail)
            self.refuse(f"normalises over the time axis ({ax}) what {got or 'nothing'} made: expected "
                        f"{self._ATTN}")
        x_name = tail[0][2].inputs[0]
        x = self.val.get(x_name)
        squeezed = n == 2
        if x is None or x["k"] != "data" or len(x["axes"]) != 3 or x["axes"][-1][0] != "f" or \
                x["axes"][ax] != ("s", (self.tsym,)) or x["axes"][:2] != e["axes"][:2] or not (
                squeezed or e["axes"][2][:2] == ("f", 1)):
            self.refuse(f"normalises scores of shape ({', '.join(map(_dim_text, self.dims(e)))}) over time: "
                        f"expected {self._ATTN}, with x (B, T, F) or (T, B, F)")
        W, v = tail[0][1], tail[2][1]
        del self.ops[p:], self.op_in[p:]
        self.linear_out = None
        return {"k": "attn", "stage": "a", "axes": e["axes"], "x": x_name, "xaxes": x["axes"], "p": p,
                "tax": ax, "W": W, "v": v}

    def attention_step(self, s, op: str, a) -> dict:
        """The attention weights (``{"k": "attn"}``) on their way to the pooling: ``Unsqueeze`` of the
        last axis, ``Mul`` by ``x`` then ``ReduceSum`` over time, or ``Transpose`` + ``MatMul`` by ``x``
        then ``Squeeze``; the pooling is ``rc.nn.AttentionPool`` (the score's bias, the same for every
        step, cancels in the softmax over time: it is dropped)."""
        from rnncore.io import _build

        names = list(s.inputs[:2])
        att = next(self.val[i] for i in names if self.val.get(i, {}).get("k") == "attn")
        other = [i for i in names if self.val.get(i) is not att]
        st, nd, tax = att["stage"], len(att["axes"]), att["tax"]

        def axes(k: int):
            if len(s.inputs) > k and s.inputs[k]:
                c = self.g.consts.get(s.inputs[k])
                return None if c is None else [int(v) % (nd + (op == "Unsqueeze")) for v in _ints(c)]
            return [int(v) % (nd + (op == "Unsqueeze")) for v in _ints(a.get("axes", []))] or None

        if st == "a" and op == "Unsqueeze" and nd == 2 and axes(1) == [2]:
            return {**att, "axes": att["axes"] + [("f", 1, self.fid())]}
        if st == "a" and op == "Mul" and nd == 3 and other == [att["x"]]:
            return {**att, "stage": "ax", "axes": att["xaxes"]}
        if st == "a" and op == "Transpose" and nd == 3 and list(a.get("perm", [])) == [0, 2, 1] and tax == 1:
            return {**att, "stage": "aT", "axes": [att["axes"][0], att["axes"][2], att["axes"][1]]}
        if st == "aT" and op == "MatMul" and self.val[names[0]] is att and names[1] == att["x"]:
            return {**att, "stage": "bmm", "axes": [att["xaxes"][0], att["axes"][1], att["xaxes"][2]]}
        done = (st == "ax" and op == "ReduceSum" and axes(1) == [tax] and int(a.get("keepdims", 1)) == 0) or (
            st == "bmm" and op == "Squeeze" and axes(1) == [1])
        if not done:
            where = {"a": "the attention weights a", "ax": "a * x", "aT": "a transposed",
                     "bmm": "a^T x"}[st]
            self.refuse(f"reads {where} (from Softmax over time): expected {self._ATTN}")
        if att["p"] != len(self.ops):
            self.refuse("pools with attention weights computed before other layers of the chain")
        W, v = att["W"], att["v"]
        dtype = W.params["weight"].dtype.name
        pool = _build.attention(W.params["weight"], W.params.get("bias"), v.params["weight"], dtype)
        self.ops.append(("pool", pool, s))
        return {"k": "data", "axes": [ax for k, ax in enumerate(att["xaxes"]) if k != tax]}

    # -- convolution and pooling over time ------------------------------------------------------
    def time_axis(self, t_sym: str, why: str) -> None:
        """A layer runs over the sequence axis ``t_sym``: the first one says which axis is time."""
        if self.time is None:
            self.time = self.tsym = t_sym
        elif t_sym != self.tsym:
            self.refuse(why)

    def time_pad(self, s, a) -> dict:
        """``Pad`` of the time axis of ``(N, C, L)`` data with zeros: kept for the ``Conv`` after it."""
        x = self.get(s.inputs[0], ("data", "padded"))
        mode = a.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)

        def operand(k: int, what: str):
            name = s.inputs[k] if len(s.inputs) > k else ""
            if not name:
                return None
            if name not in self.g.consts:
                self.refuse(f"takes its {what} from the data ({name!r}), expected a constant")
            return self.g.consts[name]

        if "pads" in a:          # opsets 1-10: attributes
            pads, value, axes = _ints(a["pads"]), float(a.get("value", 0.0)), None
        else:
            pads = _ints(operand(1, "pads"))
            v = operand(2, "constant_value")
            value = 0.0 if v is None or np.size(v) == 0 else float(np.asarray(v).reshape(-1)[0])
            axes = operand(3, "axes")
        n = len(x["axes"])
        axes = list(range(n)) if axes is None else [ax % n for ax in _ints(axes)]
        if len(pads) != 2 * len(axes):
            self.refuse(f"has {len(pads)} pads for {len(axes)} axes: expected [begins..., ends...]",
                        "fix the model (onnx.checker)")
        n_ax = len(axes)
        per = {ax: (pads[i], pads[n_ax + i]) for i, ax in enumerate(axes) if pads[i] or pads[n_ax + i]}
        if not per:
            return x
        if mode != "constant" or value != 0.0:
            self.refuse(f"pads with mode {mode!r}, value {value:g}: expected mode 'constant', value 0 (the "
                        "zeros of the causal padding of the Conv after it)",
                        "pad with zeros before a Conv1d over time, or run the graph in NumPy "
                        "(from_onnx(path).forward)")
        shape = ", ".join(map(_dim_text, self.dims(x)))
        if n != 3 or list(per) != [2] or x["axes"][2][0] != "s" or min(per[2]) < 0:
            self.refuse(f"pads axes {sorted(per)} by {[per[k] for k in sorted(per)]} of data ({shape}): "
                        "expected the last axis (time) of (N, C, L) only, by [begin, end] >= 0 (torch's "
                        "F.pad(x, (left, right)) before a Conv1d)",
                        "pad only the time axis before a Conv1d over time")
        old = x.get("pad") or (0, 0, ())
        by = tuple(old[2]) + (s.name,)
        return {"k": "padded", "axes": x["axes"], "pad": (old[0] + per[2][0], old[1] + per[2][1], by),
                "by": by[0] if len(by) == 1 else list(by)}

    def time_layer(self, s, op: str, a) -> dict:
        """``Conv`` / ``MaxPool`` / ``AveragePool`` over the time axis of ``(N, C, L)`` data: the
        rc.nn layer the C engine runs as a conv_time / pool_time record (padding decided by
        :func:`engine_time_padding`)."""
        from rnncore.nn.conv import AvgPool1d, Conv1d, MaxPool1d

        x = self.get(s.inputs[0], ("data", "padded"))
        ax = x["axes"]
        if len(ax) != 3 or [t[0] for t in ax] != ["s", "f", "s"] or len(ax[0][1]) != 1 or len(ax[2][1]) != 1 \
                or ax[1][1] is None:
            self.refuse(f"reads data of shape ({', '.join(map(_dim_text, self.dims(x)))}): expected "
                        "(N, C, L) = (batch, features, time), the data's own batch and time axes around its "
                        "features",
                        "transpose the (B, T, F) / (T, B, F) data to (B, F, T) before it (torch's "
                        "x.transpose(1, 2) / x.permute(1, 2, 0))")
        t_sym, C = ax[2][1][0], int(ax[1][1])
        what = "convolves" if op == "Conv" else "pools"
        if op != "Conv" and self.nrec:
            avg = op == "AveragePool"
            self.refuse("is a convolution or pooling over time after a recurrent layer: the C engine runs "
                        f"them before the first recurrent layer (front-end records); a {op} whose kernel "
                        f"is the whole time axis of the export is torch's adaptive_{'avg' if avg else 'max'}"
                        "_pool1d(y, 1) exported with a fixed time axis",
                        "export with a dynamic time axis (dynamic_axes: it becomes "
                        + ("GlobalAveragePool, the mean over time) or write y.mean(dim)" if avg else
                           "GlobalMaxPool, the max over time) or write y.max(dim).values / torch.amax"))
        self.time_axis(t_sym, f"{what} over the batch axis of the data the layers before it ran over in time")
        pad_node = x["pad"] if x["k"] == "padded" else None
        if pad_node is not None:
            pad_node = (pad_node[0], pad_node[1], x["by"])
        if op == "Conv":
            m = getattr(s.fn, "module", None)
            if m is None or m.in_channels != C:
                self.refuse(f"takes {getattr(m, 'in_channels', '?')} channels, the data has {C}",
                            "fix the model's shapes")
            k, stride, dil = m.kernel_size, m.stride, m.dilation
        else:
            k = _ints(a.get("kernel_shape", []))
            if len(k) != 1:
                self.refuse(f"has kernel_shape {k}: expected one axis (time)", "fix the model (onnx.checker)")
            k, stride, dil = k[0], _ints(a.get("strides", [1]))[0], _ints(a.get("dilations", [1]))[0]
        padding = engine_time_padding(op, a, k, stride, dil, pad_node, self.refuse)
        if op == "Conv":
            layer = Conv1d(m.in_channels, m.out_channels, k, stride=stride, padding=padding, dilation=dil,
                           groups=m.groups, bias="bias" in m.params, dtype=m.dtype.name)
            layer.params["weight"] = np.array(m.params["weight"])
            if "bias" in m.params:
                layer.params["bias"] = np.array(m.params["bias"])
            feat = ("f", m.out_channels, self.fid())
        elif op == "MaxPool":
            layer = MaxPool1d(k, C, stride=stride, padding=padding, dilation=dil, dtype=self.g.dtype.name,
                              ceil_mode=bool(int(a.get("ceil_mode", 0))))
            feat = ax[1]
        else:
            layer = AvgPool1d(k, C, stride=stride, padding=padding, dilation=dil, dtype=self.g.dtype.name,
                              ceil_mode=bool(int(a.get("ceil_mode", 0))),
                              count_include_pad=bool(int(a.get("count_include_pad", 0))))   # ONNX: 0
            feat = ax[1]
        if stride != 1 or layer.pad_left + layer.pad_right != dil * (k - 1):   # a new number of steps
            self.tsym = t_sym + "'"
        self.ops.append(("time", layer, s))
        return {"k": "data", "axes": [ax[0], feat, ("s", (self.tsym,))]}

    def instance_norm(self, s) -> dict:
        """``InstanceNormalization`` of ``(N, C, L)`` data over its time axis: ``rc.nn.InstanceNorm1d``,
        an instance_norm record of the front-end (each channel over the whole sequence: engine.run
        only)."""
        x = self.get(s.inputs[0], ("data",))
        ax = x["axes"]
        if len(ax) != 3 or [t[0] for t in ax] != ["s", "f", "s"] or len(ax[0][1]) != 1 \
                or len(ax[2][1]) != 1 or ax[1][1] is None:
            self.refuse(f"normalises data of shape ({', '.join(map(_dim_text, self.dims(x)))}): expected "
                        "(N, C, L) = (batch, features, time), each channel over the time axis",
                        "transpose the (B, T, F) data to (B, F, T) before it (torch's x.transpose(1, 2))")
        self.time_axis(ax[2][1][0], "normalises over the batch axis of the data the layers before it ran "
                       "over in time")
        m = s.fn.module
        if m.num_features != int(ax[1][1]):
            self.refuse(f"normalises {m.num_features} channels, the data has {int(ax[1][1])}",
                        "fix the model's shapes")
        self.ops.append(("seqnorm", m, s))
        return x

    def recurrent(self, s, a) -> None:
        x = self.get(s.inputs[0], ("data",))
        layout = int(a.get("layout", 0))
        if len(s.inputs) > 4 and s.inputs[4]:
            self.refuse("has sequence_lens", "pass lengths= to engine.run instead")
        ax = x["axes"]
        if len(ax) != 3 or ax[0][0] != "s" or ax[1][0] != "s" or len(ax[0][1]) != 1 or len(ax[1][1]) != 1:
            self.refuse(f"reads data of shape ({', '.join(map(_dim_text, self.dims(x)))}): expected "
                        f"{'(T, B, F)' if layout == 0 else '(B, T, F)'} with the data's own sequence axes")
        t_sym, b_sym = (ax[0][1][0], ax[1][1][0]) if layout == 0 else (ax[1][1][0], ax[0][1][0])
        self.time_axis(t_sym, "runs over the batch axis of the data the layers before it ran over in time")
        m = s.fn.module
        F = self.features(x, "X")
        if F != m.input_size:
            self.refuse(f"takes {m.input_size} features per step, the data has {F}")
        D, H = (2 if m.bidirectional else 1), m.hidden_size
        want = [_mono(D), _mono(1, (b_sym,)), _mono(H)] if layout == 0 else \
            [_mono(1, (b_sym,)), _mono(D), _mono(H)]
        had = len(self.states_in)
        for k, kind in ((5, "initial_h"), (6, "initial_c")):
            name = s.inputs[k] if len(s.inputs) > k else ""
            if not name:
                continue
            v = self.val.get(name)
            if v is not None and v["k"] == "gstate":
                if layout != 0:
                    self.refuse(f"takes {kind} {name!r} in layout 1 (B, D, H), the engine's state is "
                                "(D, B, H)", "export the recurrent layer with layout 0")
                rows = v["rows"] if v["rows"] is not None else None
                if rows is not None and rows[1] - rows[0] != D:
                    self.refuse(f"takes {kind} from rows {rows[0]}..{rows[1] - 1} of {v['name']!r}, expected "
                                f"{D} (its directions)")
                self.states_in.append((kind[-1], v["name"], rows, self.nrec))
                continue
            if v is None or v["k"] != "zeros":
                self.refuse(f"takes {kind} from {name!r}, which is neither zeros nor a graph input",
                            "feed the state as a graph input (the engine's state)")
            if list(v["shape"]) != want:
                got, exp = (", ".join(map(_dim_text, d)) for d in (v["shape"], want))
                self.refuse(f"takes a zero {kind} of shape ({got}), expected ({exp})")
        given = len(self.states_in) - had
        earlier = any(op[0] in ("rec", "rres") for op in self.ops)
        if given not in (0, 2 if s.op == "LSTM" else 1) or (earlier and (given > 0) != (had > 0)):
            self.refuse("takes some initial states from graph inputs and others as zeros: the engine's "
                        "state is every layer's", "feed every recurrent node's initial states, or none")
        self.ops.append(("rec", m, s))
        self.ndir.append(D)
        self.nrec += 1
        sa, sb = ax[0], ax[1]
        dax, hax = ("f", D, self.fid()), ("f", H, self.fid())
        self.dirax[dax[2]] = (self.nrec - 1, D, H, hax)
        y = [sa, dax, sb, hax] if layout == 0 else [sa, sb, dax, hax]
        outs = list(s.outputs) + [""] * 3
        if outs[0]:
            self.val[outs[0]] = {"k": "data", "axes": y}
        for o, kind in zip(outs[1:3], "hc", strict=True):
            if o:
                self.val[o] = {"k": "state", "kind": kind, "layers": [self.nrec - 1],
                               "batch": sb if layout == 0 else sa}
                self.states_out.append((o, layout))

    # -- the layers ------------------------------------------------------------------------------
    def layers(self) -> list:
        """The Sequential's layers, in the engine's order ``[front-end: Conv / pooling over time,
        Linear, activations, x + f(x)] recurrent+ [per step: Linear, activations, x + f(x)]
        [LastStep [the same per pooled step]]`` (a Linear followed by more layers is a per-step
        record, the last one the head, a softmax only its activation; per-step Linears and
        activations between two recurrent layers too): a Linear right before a recurrent layer is
        folded into its input weights, consecutive Linears are multiplied out."""
        import copy

        ops = []
        for kind, m, s in self.ops:
            if kind == "linear" and ops and ops[-1][0] == "linear":
                ops[-1] = ("linear", _compose(ops[-1][1], m), s)
            else:
                ops.append((kind, m, s))
        recs = [k for k, op in enumerate(ops) if op[0] in ("rec", "rres")]
        if not recs:
            raise _Refused("rc.compile(OnnxGraph): the graph has no recurrent layer")
        for k, (kind, m, s) in enumerate(ops):
            if kind == "pool" and k and ops[k - 1][0] == "pool":
                self.step = s
                self.refuse(f"pools data already pooled by {ops[k - 1][2].name!r} ({ops[k - 1][2].op}), or "
                            "the same output a second time without a Concat joining the two")
            order = [type(p).__name__ for p in getattr(m, "pools", ())] if kind == "pool" else []
            rank = {"LastStep": 0, "MaskedMean": 1, "MaskedMax": 2}
            nxt = next((op[0] for op in ops[k + 1:] if op[0] != "act"), None)
            if order and order != sorted(order, key=rank.get) and nxt != "linear":
                self.step = s
                self.refuse(f"concatenates the poolings in the order {order} with no Linear after them: the "
                            "C engine computes [last | mean | max] and permutes the next Linear's input "
                            "columns for another order",
                            "concatenate them in the order LastStep, mean, max, or put a Linear after them")
        out, pending = [], None
        for k, (kind, m, s) in enumerate(ops):
            self.step = s
            soft = type(m).__name__ in ("Softmax", "LogSoftmax")
            if kind == "rec":
                out.append(m if pending is None else _fold_into(copy.deepcopy(m), pending))
                pending = None
            elif kind == "rres":           # x + f(x) around a recurrent layer
                out.append(m)
            elif k < recs[-1] and kind == "linear" and ops[k + 1][0] == "rec":
                pending = m
            elif soft:
                if k < recs[-1] or k != len(ops) - 1 or ops[k - 1][0] != "linear":
                    self.refuse(f"is a {type(m).__name__} other than the last layer right after the last "
                                "per-step Linear (the C engine's softmax / log-softmax is its head's "
                                "activation)")
                out.append(m)
            elif k < recs[0] and kind == "act":
                f, n = copy.copy(m), self.width[id(s)]    # a front-end activation: its record gives
                f.record = (lambda m=m, n=n: {**m.record(), "features": n})    # the input width
                out.append(f)
            elif k < recs[0] and kind in ("linear", "res", "time", "seqnorm"):
                out.append(m)              # per-step layers, Conv / pooling / InstanceNorm over time
            elif k > recs[-1] and kind in ("act", "linear", "res", "pool"):
                out.append(m)              # per-step layers, LastStep, per-step layers of the last step
            elif kind in ("act", "linear", "res"):
                out.append(m)              # per-step layers between two recurrent layers (mid records)
            elif kind == "seqnorm":
                self.refuse("is an InstanceNormalization (over the whole sequence) after a recurrent layer: "
                            "the C engine runs it in the front-end only (before the first recurrent layer)",
                            "import the part before it with from_onnx(path, inputs=[...], outputs=[...]) "
                            "and run the rest in NumPy")
            elif kind == "time":
                self.refuse("is a convolution or pooling over time after a recurrent layer: the C engine "
                            "runs them before the first recurrent layer (front-end records)",
                            "import the part before it with from_onnx(path, inputs=[...], outputs=[...]) "
                            "and run the rest in NumPy")
            else:
                if kind == "linear":       # between recurrent layers, not right before one
                    self.step, kind = ops[k + 1][2], ops[k + 1][0]
                what = {"linear": "a Linear", "act": "an activation", "res": "a residual add"}.get(kind, kind)
                self.refuse(f"puts {what} where the C engine runs none: between recurrent layers (there only "
                            "per-step Linears, activations and residual adds within the gap)")
        return out


def _compose(first, second):
    """The Linear ``second(first(x))``."""
    from rnncore.nn.layers import Linear

    W1, W2 = first.params["weight"], second.params["weight"]
    b = np.zeros(W2.shape[0], W2.dtype)
    if "bias" in first.params:
        b = b + W2 @ first.params["bias"]
    if "bias" in second.params:
        b = b + second.params["bias"]
    m = Linear(W1.shape[1], W2.shape[0], bias=True, dtype=W2.dtype.name)
    m.params["weight"], m.params["bias"] = W2 @ W1, b
    return m


def _fold_into(rec, lin):
    """The recurrent layer ``rec`` reading ``lin(x)``: ``W_ih W``, ``b_ih + W_ih b`` (every direction;
    exact in real arithmetic, there is no nonlinearity between the two)."""
    W, b = lin.params["weight"], lin.params.get("bias")
    for key in [k for k in rec.params if k.startswith("weight_ih_l0")]:
        Wih = rec.params[key]
        bkey = key.replace("weight_ih", "bias_ih")
        if b is not None:
            if bkey not in rec.params:
                raise _Refused("rc.compile(OnnxGraph): a Linear with a bias before a recurrent layer "
                               f"without input biases ({key})")
            rec.params[bkey] = rec.params[bkey] + Wih @ b
        rec.params[key] = Wih @ W
    rec.input_size = W.shape[1]
    return rec


def _check_states(lw, g) -> tuple:
    """The graph inputs / outputs that are the engine's state, checked to be all of it in its order
    (PyTorch's ``h_n``: layer by layer, each layer's directions): per kind (h, c), one input for
    every layer, or rows ``[sum D_<l, sum D_<=l)`` of one input; outputs likewise."""
    L = lw.nrec
    ins: list = []
    for kind in "hc":
        e = sorted((x for x in lw.states_in if x[0] == kind), key=lambda x: x[3])
        if not e:
            continue
        off = np.cumsum([0] + lw.ndir)
        names = [x[1] for x in e]
        whole = len(set(names)) == L and all(x[2] is None for x in e)
        rows = len(set(names)) == 1 and all(x[2] == (int(off[x[3]]), int(off[x[3] + 1])) for x in e) \
            or (L == 1 and e[0][2] is None)
        if len(e) != L or not (whole or rows):
            raise _Refused(f"rc.compile(OnnxGraph): the initial {kind} states come from {names} (rows "
                           f"{[x[2] for x in e]}): expected one input per recurrent layer, or one input "
                           "whose rows are the layers' directions in order (PyTorch's h_0)")
        ins += list(dict.fromkeys(names))
    outs = []
    for name in g.output_names:
        v = lw.val.get(name)
        if v is not None and v["k"] == "state":
            outs.append(name)
    for kind in "hc":
        layers = [n for o in outs if lw.val[o]["kind"] == kind for n in lw.val[o]["layers"]]
        if layers and layers != list(range(L)):
            raise _Refused(f"rc.compile(OnnxGraph): the graph outputs the final {kind} states of recurrent "
                           f"layers {layers} of 0..{L - 1}: the engine's state is every layer's, in order")
    return ins, outs


def _embedding_gather(g):
    """The ``Gather`` of a constant ``(V, E)`` table by the data input (token ids): an embedding
    lookup, the sequence's first layer; None if the data input is not read so."""
    data_in = g.input_names[0]
    s = next((s for s in g.steps if data_in in s.inputs), None)
    if getattr(s, "op", None) == "Gather" and list(s.inputs[1:2]) == [data_in] and s.inputs[0] in g.consts \
            and np.ndim(g.consts[s.inputs[0]]) == 2 and int(s.attrs.get("axis", 0)) == 0:
        return s
    return None


def lower_sequence_graph(g):
    """:func:`_lower_sequence_graph`, and for a data input declared with every size fixed (a static
    export) that is refused as ``(T, B, F)`` / ``(B, T, F)``, the same graph read as channels first
    ``(N, C, L)``: its declared shape says nothing of which axis is time (``(1, C, 13)`` is both),
    and a ``Transpose`` reading it first is as much the ``(B, C, T) -> (B, T, C)`` of a
    channels-first model as the reorder of a ``(B, T, F)`` one. The reading that lowers wins; when
    both are refused, the refusal of the reading that followed more of the graph's nodes is raised
    (the first on a tie): the other one stopped at the layout it assumed."""
    try:
        return _lower_sequence_graph(g)
    except _Refused as first:
        shape = (getattr(g, "input_shapes", {}) or {}).get(g.input_names[0])
        if shape is None or len(shape) != 3 or not all(isinstance(d, int | np.integer) for d in shape):
            raise
        try:
            return _lower_sequence_graph(g, channels_first=True)
        except _Refused as second:
            further = getattr(second, "nodes_read", -1) > getattr(first, "nodes_read", -1)
            raise (second if further else first) from None


def _lower_sequence_graph(g, channels_first: bool = False):
    """The ``rc.nn.Sequential`` of a sequence-shaped :class:`OnnxGraph`: recurrent tails (CRNN).

    The graph's data input is a sequence ``(T, B, F)`` (ONNX recurrent ``layout`` 0, what torch
    exports) or ``(B, T, F)`` (batch-first); which axis is time the first ``Conv``/pooling over time
    or ``LSTM``/``GRU``/``RNN`` node says. Its feature count comes from the declared shape, else from
    the layer that reads it. The lowering follows:

    * shape arithmetic on the data (``Shape``, ``Gather``, ``Unsqueeze``, ``Squeeze``, ``Concat``,
      ``Mul``, ``Slice``) as products of the symbols ``T`` and ``B``, so ``view(T*b, h)`` /
      ``view(T, b, -1)`` and ``ConstantOfShape``/``Expand`` zero initial states are recognised
      for every ``T`` and ``B``;
    * ``LSTM``/``GRU``/``RNN`` nodes (uni- or bidirectional, any number stacked, layout 0 or 1,
      zero or graph-input initial states; no ``sequence_lens``);
    * ``Transpose`` and ``Reshape`` that only reorder or merge the sequence axes, or merge / split
      the feature axes in their order (the direction concat ``Transpose(0, 2, 1, 3) + Reshape``
      and the ``Squeeze`` of a one-direction axis);
    * ``Gemm`` / ``MatMul`` (+ ``Add`` of a bias) by constants: a per-step Linear. A Linear right
      before a recurrent layer is folded into its input weights (``W_ih W``, ``b_ih + W_ih b``;
      crnn.pytorch's ``BidirectionalLSTM`` stack), consecutive Linears are multiplied out; any other
      (before the first recurrent layer, after the last or after its last step) is an
      ``rc.nn.Linear`` of the chain, a per-step record when compiled, the last one the head;
    * ``Einsum`` of the data by a constant, ``...i,ih->...h`` or the grouped ``...gi,gih->...gh``
      (DeepFilterNet's grouped linear): a per-step Linear, block diagonal for groups
      (:meth:`_SeqLower.einsum_linear`);
    * before the first recurrent layer, ``Conv`` / ``MaxPool`` / ``AveragePool`` over the time axis
      of ``(N, C, L)`` data (the ``Transpose`` from ``(B, T, F)`` / ``(T, B, F)`` and back are data
      movement): a ``Conv`` padded by ``[begin, end]`` each in ``0..d(k-1)`` (its ``pads``, plus a
      zero ``Pad`` of the time axis before it, torch's ``F.pad(x, (l, r))``; any stride, dilation,
      group) -> ``rc.nn.Conv1d`` (``"causal"`` for ``[d(k-1), 0]``), a pooling with its own pads in
      that range (``ceil_mode`` as more right padding) -> ``rc.nn.MaxPool1d`` / ``AvgPool1d``: conv_time /
      pool_time records. The paddings are decided in one place, :func:`engine_time_padding`; a
      strided layer, or one padded by other than ``d(k-1)`` in all, gives the time axis a new symbol;
    * ``Relu``/``Sigmoid``/``Tanh``/``HardSigmoid``/``Gelu`` before the first or after the last recurrent
      layer, and ``Softmax`` / ``LogSoftmax`` over the features right after the last Linear, last;
    * per-step layers as exporters write them (:func:`~rnncore.io.onnx_import._fuse.fuse_steps` first
      replaces a GELU's element-wise nodes and a decomposed LayerNorm by one step each):
      ``LayerNormalization`` (last axis) -> ``rc.nn.LayerNorm``, ``BatchNormalization`` of data whose
      axis 1 is the features -> ``rc.nn.BatchNorm1d``, ``Mul`` / ``Div`` / ``Add`` of the data by a
      constant (one value or one per feature) that is no Linear's -> :meth:`_SeqLower.affine`, a
      ``ReduceMean`` over time after the last recurrent layer -> ``rc.nn.MaskedMean`` (as ``ReduceMax``:
      ``keepdims=1`` or with axes of size 1 too), ``ReduceMax`` over
      time or ``GlobalMaxPool`` of ``(B, F, T)`` data there -> ``rc.nn.MaskedMax`` (``GlobalAveragePool``
      -> ``rc.nn.MaskedMean``)
      (:meth:`_SeqLower.max_over_time`; ``Flatten`` / ``Squeeze`` / ``Reshape`` drop a kept axis), the
      last step of per-step layers after it -> ``LastStep()``; Elu, LeakyRelu, Clip (constant bounds),
      HardSwish, SiLU, Softplus, Softsign -> their ``rc.nn`` layers; an Erf outside a GELU refused by name;
    * ``Add(x, f(x))``, ``f`` the activations / Linears / residuals right after ``x`` (each op
      reading the latest value): ``rc.nn.Residual(f)``;
    * attention pooling over time after the last recurrent layer (``Softmax`` over the time axis of
      ``v(tanh(W x))``, then ``ReduceSum(a * x)`` or ``Squeeze(MatMul(Transpose(a), x))``, see
      :meth:`_SeqLower.attention_scores`): ``rc.nn.AttentionPool``.

    Returns
    -------
    model : ``rc.nn.Sequential`` taking ``(B, T, F)``, returning ``(B, T, out)``
    info : dict: ``data_input``, ``data_output``, ``input_layout`` / ``output_layout`` (``"TBF"`` or
        ``"BTF"``: the graph's axes; ``engine.run`` takes and returns ``(B, T, .)``, so a ``"TBF"``
        graph's data is passed as ``x.transpose(1, 0, 2)`` (token ids ``(T, B)``: as ``ids.T``) and its
        output read back the same way; ``"BFT"``: channels first, ``x.transpose(0, 2, 1)``; ``"BF"``:
        a pooled output; ``"(TB)F"`` / ``"(BT)F"``: the steps merged into rows, the engine's ``y``
        read back as ``y.transpose(1, 0, 2).reshape(-1, F)`` / ``y.reshape(-1, F)``),
        ``state_inputs`` / ``state_outputs`` (the recurrent nodes' initial / final state tensors
        that are graph inputs / outputs, in layer order: the engine's state)
    """
    from rnncore.nn.layers import Sequential

    lw = _SeqLower(g)
    data_in = g.input_names[0]
    shape = (getattr(g, "input_shapes", {}) or {}).get(data_in)
    F = shape[2] if shape is not None and len(shape) == 3 else None
    emb = _embedding_gather(g)
    if emb is not None:     # token ids (B, T): the looked-up rows (B, T, E) are the sequence
        from rnncore.nn.layers import Embedding

        table = np.asarray(g.consts[emb.inputs[0]])
        embedding = Embedding(table.shape[0], table.shape[1], dtype=str(table.dtype))
        embedding.load_state_dict({"weight": table})
        data_in = emb.outputs[0]
        shape, F = None, int(table.shape[1])
    # channels first, (N, C, L) = (batch, features, time), when a Conv, an InstanceNormalization or
    # a BatchNormalization reads the input (a waveform (N, 1, L): PyanNet), or a Pad then a Conv
    # (torch's F.pad(x, (left, 0)) of a causal Conv1d), or a MaxPool / AveragePool with the channels
    # declared (ONNX's layout for all of them), or when the input is declared (N, C, ?) with C fixed
    # and the last axis not; engine.run takes it as x.transpose(0, 2, 1)
    first = next((s for s in g.steps if data_in in s.inputs[:1]), None)
    if getattr(first, "op", None) == "Pad":
        first = next((s for s in g.steps if first.outputs[0] in s.inputs[:1] and s.op == "Conv"), None)
    m = getattr(getattr(first, "fn", None), "module", None)
    chan = getattr(m, "in_channels", None) or getattr(m, "num_features", None) \
        if getattr(first, "op", None) in ("Conv", "InstanceNormalization", "BatchNormalization") else None
    if getattr(first, "op", None) in ("MaxPool", "AveragePool") and shape is not None and len(shape) == 3:
        chan = shape[1]
    if chan is None and shape is not None and len(shape) == 3 and isinstance(shape[1], int | np.integer) \
            and shape[2] is None:
        chan = shape[1]      # the last axis varies: it is no step's features (a Transpose reads the input)
    chw = chan is not None and (shape is None or (len(shape) == 3 and shape[1] == chan))
    if channels_first:       # lower_sequence_graph's second reading of a static input
        if chw:
            raise _Refused("rc.compile(OnnxGraph): already read as channels first")
        chan, chw = shape[1], True
    if F is None and not chw:     # an intermediate tensor: the features from the first layer that reads it
        first = next((s for s in g.steps if data_in in s.inputs[:1] and hasattr(s.fn, "module")), None)
        m = getattr(getattr(first, "fn", None), "module", None)
        F = getattr(m, "input_size", None) or getattr(m, "in_features", None)
        if F is None:
            raise _Refused(f"rc.compile(OnnxGraph): the data input {data_in!r} is declared {shape}; expected "
                           "frames (N, L) with the frame length L fixed, or a sequence (T, B, F) / (B, T, F) "
                           "read by a recurrent layer or Linear (which gives F)")
    if chw:
        lw.val[data_in] = {"k": "data", "axes": [("s", ("X0",)), ("f", int(chan), lw.fid()), ("s", ("X1",))]}
    else:
        lw.val[data_in] = {"k": "data", "axes": [("s", ("X0",)), ("s", ("X1",)), ("f", int(F), lw.fid())]}
    lw.at[data_in] = 0
    for n in g.input_names[1:]:     # the other inputs: initial states (L*D, B, H), or rows of one
        lw.val[n] = {"k": "gstate", "name": n, "rows": None}
    steps = [s for s in fuse_steps(g) if emb is None or s.name != emb.name]
    for s in steps:
        lw.node(s)
    for o in g.output_names:     # the output is the last step of the last recurrent layer: LastStep()
        if lw.val.get(o, {}).get("k") == "part":
            lw.step = next(s for s in steps if o in s.outputs)
            lw.resolve(o, lw.val[o])
    layers = lw.layers()
    if emb is not None:     # ids (B, T), or time-major (T, B): the caller passes ids.T (input_layout "TBF")
        layers = [embedding, *layers]
        data_in = g.input_names[0]

    def late(e: _Refused) -> _Refused:     # a refusal after every node was followed
        e.nodes_read = lw.nodes_read
        return e

    try:
        state_in, state_out = _check_states(lw, g)
    except _Refused as e:
        raise late(e) from None
    outs = [o for o in g.output_names if o not in state_out]
    extra = [i for i in g.input_names[1:] if i not in state_in]
    if extra or len(outs) != 1:
        raise late(_Refused(f"rc.compile(OnnxGraph): outputs {g.output_names} / inputs {g.input_names}: "
                            "expected one data output and the recurrent layers' states besides the data "
                            "input"))
    y = lw.val.get(outs[0])
    ax = None if y is None or y["k"] != "data" else y["axes"]
    kept = next((lw.kept[a[2]] for a in ax or [] if a[0] == "f" and a[2] in lw.kept), None)
    if kept is not None:
        lw.step = kept
        lw.refuse(f"keeps the time axis it pools (keepdims=1) to the output {outs[0]!r}",
                  "drop it before the output (Squeeze, Flatten, or ReduceMax with keepdims=0)")
    batch = "X1" if lw.time == "X0" else "X0"
    pooled = any(op[0] == "pool" for op in lw.ops)
    lay = {True: "TBF", False: "BTF"}
    if pooled and ax is not None and len(ax) == 2 and ax[0] == ("s", (batch,)) and ax[1][0] == "f":
        info = {"data_input": data_in, "data_output": outs[0],
                "input_layout": "BFT" if chw else lay[lw.time == "X0"],
                "output_layout": "BF", "state_inputs": state_in, "state_outputs": state_out}
        return Sequential(*layers), info
    if ax is not None and len(ax) == 2 and ax[1][0] == "f" and ax[0][0] == "s" \
            and ax[0][1] in ((lw.tsym, batch), (batch, lw.tsym)):
        # the steps merged into rows (the word language model's decoded.view(-1, ntoken)): (T * B, F)
        # or (B * T, F), the engine's (B, T, F) output reshaped so
        info = {"data_input": data_in, "data_output": outs[0],
                "input_layout": "BFT" if chw else lay[lw.time == "X0"],
                "output_layout": "(TB)F" if ax[0][1][0] == lw.tsym else "(BT)F",
                "state_inputs": state_in, "state_outputs": state_out}
        return Sequential(*layers), info
    if ax is None or len(ax) != 3 or [a[0] for a in ax] != ["s", "s", "f"] or \
            {ax[0][1], ax[1][1]} != {(batch,), (lw.tsym,)}:
        raise late(_Refused(f"rc.compile(OnnxGraph): the output {outs[0]!r} is not a sequence (T, B, F) or "
                            "(B, T, F) of the data's axes (reshape it back in the graph, or import up to a "
                            "tensor that is)"))
    info = {"data_input": data_in, "data_output": outs[0],
            "input_layout": "BFT" if chw else lay[lw.time == "X0"],
            "output_layout": lay[ax[0][1] == (lw.tsym,)],
            "state_inputs": state_in, "state_outputs": state_out}
    return Sequential(*layers), info
