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
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._values import _Refused

_ACTS = ("Relu", "Sigmoid", "Tanh", "HardSigmoid")
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
                from rnncore.nn.layers import Linear

                lin = Linear(m.in_channels, m.out_channels, bias="bias" in m.params, dtype=m.dtype.name)
                lin.params["weight"] = np.array(m.params["weight"][:, :, 0])
                if "bias" in m.params:
                    lin.params["bias"] = np.array(m.params["bias"])
                self.layers.append(lin)
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
        elif op in _ACTS:
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


def lower_graph(g):
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

    lw = _Lower(g)
    data_in = g.input_names[0]
    shape = (getattr(g, "input_shapes", {}) or {}).get(data_in)
    if shape is None or len(shape) != 2 or not isinstance(shape[1], int | np.integer):
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
