"""Lowering a chunk graph whose front-end leaves positions to an ``rc.nn.Sequential`` (NumPy).

Silero VAD v4 (``silero_vad.onnx`` of openwakeword 0.4.0 and faster-whisper) is called once per
chunk ``input (1, L)`` with ``h``, ``c`` ``(layers, 1, H)``: its front-end turns the chunk into a
frame of ``C`` channels over ``P`` positions, its stacked ``LSTM`` nodes run over those ``P``
positions (each from its row of ``h`` / ``c``), a per-position head (``Relu``, a ``Conv`` with
kernel 1, ``Sigmoid``) follows and the chunk's output is the mean over its positions. The layers
are those of :mod:`rnncore.nn.chunk`: ``front-end -> ChunkPositions(C, P) -> LSTM ... -> head ->
ChunkMean(P)``, the engine's time axis being ``N*P`` positions of ``N`` chunks.

:func:`lower_positions_graph` follows the graph with every tensor's shape from one run on zeros and
a description of what it is:

* ``fr``: a frame of the chunk, its data the chain ``path`` of layers applied to the chunk
  (channel-major: every ``Reshape`` / ``Squeeze`` / ``Unsqueeze`` / ``Identity`` of it keeps its
  data); ``Pad`` of its last axis waits for the ``Conv`` (-> ``FrameConv1d``); ``Relu`` /
  ``Sigmoid`` / ``Tanh``; ``Slice`` of a convolution's channel halves, ``Pow`` 2, ``Add``,
  ``Sqrt`` -> ``Magnitude``; ``Mul`` / ``Add`` of a scalar then ``Log`` -> ``LogAffine``;
  ``ReduceMean`` over channels, a padding written as ``Slice`` / ``Concat`` (found by running it on
  a probe), a one-channel ``Conv``, ``ReduceMean`` over positions, ``Neg`` + ``Add`` (or ``Sub``)
  -> ``SmoothedMeanSubtract``; ``Add`` of two frames made from one -> ``FrameResidual``, ``Concat``
  on channels of a frame and one made from it -> ``FrameConcat``;
* ``pos``: per-position values, with each axis labelled (``b`` batch, ``p`` position, ``f``
  features, ``d`` direction, ``1``): a ``Transpose`` of a frame ``(1, C, P)`` starts them
  (``ChunkPositions``); ``LSTM`` over ``(P, 1, F)``, ``Transpose``, ``Squeeze`` / ``Unsqueeze``,
  activations and a ``Conv`` with kernel 1 over ``(1, F, P)`` (-> ``Linear``) follow;
  ``ReduceMean`` over ``p`` -> ``ChunkMean``;
* the state: rows of ``h`` / ``c`` (``Slice`` / ``Gather`` on axis 0) are an ``LSTM``'s initial
  state; ``Concat`` on axis 0 of the ``LSTM`` nodes' final states is a state output, row ``r`` of
  it the final state of the layer that started from row ``r`` of the matching input.

Anything else is refused naming the node. The result runs in NumPy; the C engine does not compile
its layers yet (``rc.compile`` refuses it naming the first node that made one).
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._lower import _conv1x1_linear, _ints, _run_nodes
from rnncore.io.onnx_import._values import _Refused

_RESHAPES = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")
_ACT = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "Tanh"}


class _PosLower:
    def __init__(self, g, shapes: dict) -> None:
        self.g, self.shapes, self.val, self.recs = g, shapes, {}, []
        self.step = None

    def refuse(self, why: str):
        s = self.step
        raise _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) {why}; a chunk graph whose "
                       "front-end leaves positions is lowered as front-end layers, recurrent layers over the "
                       "positions, a per-position head and a mean over the positions "
                       "(rnncore/io/onnx_import/_lower_positions.py)")

    def const(self, name: str | None, what: str):
        if not name or name not in self.g.consts:
            self.refuse(f"takes {what} from the data ({name!r}), expected a constant")
        return np.asarray(self.g.consts[name])

    def get(self, name: str, kinds: tuple) -> dict:
        v = self.val.get(name)
        if v is None or v["k"] not in kinds:
            self.refuse(f"reads {name!r} ({v['k'] if v else 'not a tensor of the chain'}), expected {kinds}")
        return v

    def shape(self, name: str) -> tuple:
        return tuple(self.shapes[name])

    def add(self, v: dict, layer) -> dict:
        return dict(v, path=v["path"] + (layer,))

    def axes_of(self, s, k: int = 1) -> list | None:
        if len(s.inputs) > k and s.inputs[k]:
            return _ints(self.const(s.inputs[k], "axes"))
        return _ints(s.attrs["axes"]) if "axes" in s.attrs else None

    # -- nodes ---------------------------------------------------------------------------------
    def node(self, s) -> None:
        self.step = s
        op = s.op
        ins = [self.val.get(i) if i else None for i in s.inputs]
        kinds = {v["k"] for v in ins if v is not None}
        if not kinds:
            self.refuse("reads nothing of the chunk or the state")
        out = s.outputs[0]
        if op in ("Add", "Mul") and ins[0] is None and len(ins) == 2:     # constant first: commutative
            ins = ins[::-1]
        x = ins[0]
        if "state" in kinds or "srow" in kinds or "sfinal" in kinds or "sstack" in kinds:
            if op not in ("LSTM",):
                self.val[out] = self.state_node(s, ins)
                return
        if x is not None and x["k"] == "fr":
            self.val[out] = self.frame_node(s, x, ins)
            return
        if x is not None and x["k"] in ("pos", "chunk"):
            self.pos_node(s, x, ins)
            return
        if op == "LSTM":
            self.lstm_node(s, ins)
            return
        if x is not None and x["k"] in ("chs", "sq", "sumsq", "aff", "cm", "cmp", "cms", "mu"):
            self.val[out] = self.part_node(s, x, ins)
            return
        self.refuse(f"reads {sorted(kinds)}: not an op of the chains this lowering follows")

    def frame_node(self, s, x: dict, ins: list) -> dict:
        op, a = s.op, s.attrs
        shp = self.shape(s.outputs[0])
        if op in _RESHAPES:
            if x["pad"] is not None and shp[-1] != x["shape"][-1]:
                self.refuse("reshapes a frame whose padding waits for a Conv")
            return dict(x, shape=shp)
        if x["pad"] is not None and op != "Conv":
            self.refuse("uses a padded frame other than in a Conv")
        if op == "Pad":
            mode = a.get("mode", "constant")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            pads = _ints(self.const(s.inputs[1], "pads")) if len(s.inputs) > 1 and s.inputs[1] else _ints(
                a.get("pads", []))
            nd = len(x["shape"])
            value = self.g.consts.get(s.inputs[2]) if len(s.inputs) > 2 and s.inputs[2] else 0
            if len(pads) != 2 * nd or any(pads[i] or pads[nd + i] for i in range(nd - 1)) or mode not in (
                    "constant", "reflect") or (mode == "constant" and np.any(np.asarray(value) != 0)):
                self.refuse(f"pads {pads} ({mode}): only the frame's last axis, constant 0 or reflect")
            return dict(x, shape=shp, pad=(pads[nd - 1], pads[2 * nd - 1],
                                           "zeros" if mode == "constant" else "reflect"))
        if op == "Conv":
            return self.conv(s, x)
        if op in _ACT:
            return self.add(dict(x, shape=shp), s.fn.module)
        if op == "Slice":
            st, en = _ints(self.const(s.inputs[1], "starts")), _ints(self.const(s.inputs[2], "ends"))
            axes = _ints(self.const(s.inputs[3], "axes")) if len(s.inputs) > 3 and s.inputs[3] else [0]
            steps = _ints(self.const(s.inputs[4], "steps")) if len(s.inputs) > 4 and s.inputs[4] else [1]
            n = len(x["shape"])
            if n != 3 or [k % n for k in axes] != [1] or steps != [1]:
                self.refuse(f"slices a frame {x['shape']} on axes {axes}: only channels of (1, C, L), step 1")
            C = x["shape"][1]
            lo, hi = slice(st[0], en[0]).indices(C)[:2]
            return {"k": "chs", "src": x, "ch": (lo, hi)}
        if op == "Mul" or (op == "Add" and (ins[1] is None or ins[1]["k"] not in ("mu", "fr"))):
            k = self.scalar(s, x)
            return {"k": "aff", "src": x, "a": k if op == "Mul" else 1.0, "b": 0.0 if op == "Mul" else k}
        if op == "ReduceMean":
            axes = self.axes_of(s)
            n = len(x["shape"])
            if n != 3 or axes is None or [k % n for k in axes] != [1] or not int(a.get("keepdims", 1)):
                self.refuse(f"averages a frame {x['shape']} over axes {axes}: only over the channels of "
                            "(1, C, L), keepdims")
            return {"k": "cm", "src": x, "fn": lambda m: m, "shape": shp}
        if op in ("Add", "Sub"):
            u = ins[1]
            if u is not None and u["k"] == "mu":
                if u["src"] is not x or (op == "Add") != u["neg"]:
                    self.refuse("subtracts a smoothed mean of another frame")
                from rnncore.nn.chunk import SmoothedMeanSubtract

                C, L = x["shape"][1], x["shape"][2]
                return self.add(dict(x, shape=shp), SmoothedMeanSubtract(C, L, u["conv"]))
            if op == "Add" and u is not None and u["k"] == "fr":
                return self.residual(x, u, shp)
            self.refuse("adds to a frame something other than a frame made from the same input or minus its "
                        "smoothed mean")
        if op == "Concat":
            return self.concat(s, ins, shp)
        if op == "Transpose":
            return self.to_positions(s, x)
        self.refuse("is not an op on a frame this lowering follows")

    def scalar(self, s, x: dict) -> float:
        other = [i for i in s.inputs[:2] if self.val.get(i) is not x]
        c = self.g.consts.get(other[0]) if len(other) == 1 else None
        if c is None or np.size(c) != 1:
            self.refuse("combines a frame with something other than a scalar constant")
        return float(np.asarray(c).reshape(-1)[0])

    def common(self, u: dict, w: dict) -> int:
        n = 0
        while n < min(len(u["path"]), len(w["path"])) and u["path"][n] is w["path"][n]:
            n += 1
        return n

    def residual(self, u: dict, w: dict, shp: tuple) -> dict:
        from rnncore.nn.chunk import FrameResidual
        from rnncore.nn.layers import Sequential

        n = self.common(u, w)
        bu, bw = u["path"][n:], w["path"][n:]
        if len(bu) < len(bw):
            bu, bw = bw, bu
        if not bu or u.get("pad") or w.get("pad"):
            self.refuse("adds two frames that are not two paths from one frame (a residual block)")
        res = FrameResidual(Sequential(*bu), Sequential(*bw) if bw else None)
        return {"k": "fr", "path": u["path"][:n] + (res,), "shape": shp, "pad": None}

    def concat(self, s, ins: list, shp: tuple) -> dict:
        from rnncore.nn.chunk import FrameConcat
        from rnncore.nn.layers import Sequential

        if len(ins) != 2 or any(v is None or v["k"] != "fr" for v in ins) or \
                int(s.attrs.get("axis", 0)) % 3 != 1:
            self.refuse("concatenates other than two frames on the channel axis")
        u, w = ins
        n = self.common(u, w)
        if n != len(u["path"]) or n == len(w["path"]):
            self.refuse("concatenates frames other than a frame and one made from it (in that order)")
        return {"k": "fr", "path": u["path"] + (FrameConcat(Sequential(*w["path"][n:])),), "shape": shp,
                "pad": None}

    def conv(self, s, x: dict) -> dict:
        from rnncore.nn.conv import FrameConv1d

        m = s.fn.module
        shp = x["shape"]
        gpl, gpr, mode = x["pad"] or (0, 0, "zeros")
        if len(shp) != 3 or shp[0] != 1 or shp[1] != m.in_channels:
            self.refuse(f"convolves a frame of shape {shp}, expected (1, {m.in_channels}, L)")
        if m.padding_mode != "zeros" or (mode == "reflect" and (m.pad_left or m.pad_right)):
            self.refuse("mixes reflect and zero padding")
        L = shp[2] - gpl - gpr
        conv = FrameConv1d(m.in_channels, m.out_channels, m.kernel_size, frame_length=L, stride=m.stride,
                           padding=(gpl + m.pad_left, gpr + m.pad_right), padding_mode=mode,
                           dilation=m.dilation, groups=m.groups, bias="bias" in m.params, dtype=m.dtype.name)
        conv.params["weight"] = np.array(m.params["weight"])
        if "bias" in m.params:
            conv.params["bias"] = np.array(m.params["bias"])
        out = self.shape(s.outputs[0])
        if out != (1, m.out_channels, conv.out_length):
            self.refuse(f"gives {out}, its FrameConv1d (1, {m.out_channels}, {conv.out_length})")
        return self.add(dict(x, shape=out, pad=None), conv)

    # -- the parts of a magnitude, a log, a smoothed mean ------------------------------------------
    def part_node(self, s, x: dict, ins: list) -> dict:
        op = s.op
        shp = self.shape(s.outputs[0])
        k = x["k"]
        if k == "chs" and op == "Pow":
            e = self.const(s.inputs[1], "the exponent")
            if np.size(e) != 1 or float(e.reshape(-1)[0]) != 2.0:
                self.refuse("raises channels to a power other than 2")
            return {"k": "sq", "src": x["src"], "ch": x["ch"]}
        if k == "sq" and op == "Add" and ins[1] is not None and ins[1]["k"] == "sq":
            u, w = x, ins[1]
            src = u["src"]
            C = src["shape"][1]
            if u["src"] is not w["src"] or C % 2 or [u["ch"], w["ch"]] != [(0, C // 2), (C // 2, C)]:
                self.refuse("adds squares other than re^2 + im^2 of the two channel halves of one frame")
            return {"k": "sumsq", "src": src}
        if k == "sumsq" and op == "Sqrt":
            from rnncore.nn.conv import Magnitude

            return self.add(dict(x["src"], shape=shp), Magnitude())
        if k == "aff" and op in ("Mul", "Add"):
            c = self.scalar(s, x)
            if op == "Mul":
                return dict(x, a=x["a"] * c, b=x["b"] * c)
            return dict(x, b=x["b"] + c)
        if k == "aff" and op == "Log":
            from rnncore.nn.chunk import LogAffine

            return self.add(dict(x["src"], shape=shp), LogAffine(x["a"], x["b"]))
        if k in ("cm", "cmp") and op in ("Slice", "Concat", "Identity", "Reshape", "Squeeze", "Unsqueeze"):
            parts = [v for v in ins if v is not None]
            if any(v["k"] not in ("cm", "cmp") or v["src"] is not x["src"] for v in parts) or any(
                    self.val.get(i) is None for i in s.inputs[:1 if op != "Concat" else None]):
                self.refuse("pads a channel mean with something other than parts of it")
            fns = [self.part_fn(i) for i in s.inputs]
            return {"k": "cmp", "src": x["src"], "shape": shp,
                    "fn": lambda m, fns=fns, f=s.fn: f([fn(m) for fn in fns])[0]}
        if k in ("cm", "cmp") and op == "Conv":
            return self.smoother(s, x, shp)
        if k == "cms" and op == "ReduceMean":
            axes = self.axes_of(s)
            if axes is None or [a % 3 for a in axes] != [2]:
                self.refuse(f"averages a smoothed channel mean over axes {axes}: expected its positions "
                            "(axis 2)")
            return {"k": "mu", "src": x["src"], "conv": x["conv"], "neg": False}
        if k == "mu" and op == "Neg":
            return dict(x, neg=not x["neg"])
        if k == "mu" and op in _RESHAPES:
            return x
        self.refuse(f"is not an op of a magnitude, a log or a smoothed mean (on a {k})")

    def part_fn(self, name: str):
        """The function of the probe a padded channel mean's input is (a constant: itself)."""
        if name and self.val.get(name):
            return self.val[name]["fn"]
        c = self.g.consts.get(name) if name else None
        return lambda m: c

    def smoother(self, s, x: dict, shp: tuple) -> dict:
        """A one-channel Conv of the channel mean (padded by Slice / Concat, as a probe shows)."""
        from rnncore.nn.conv import FrameConv1d

        m = s.fn.module
        L = x["src"]["shape"][2]
        probe = np.arange(1.0, L + 1).reshape(1, 1, L)
        got = np.asarray(x["fn"](probe))
        pad = None
        for mode in ("reflect", "zeros"):
            for pl in range(got.shape[-1] - L + 1):
                pr = got.shape[-1] - L - pl
                if mode == "reflect" and max(pl, pr) >= L:
                    continue
                want = np.pad(probe, ((0, 0), (0, 0), (pl, pr)), mode="reflect" if mode == "reflect" else
                              "constant")
                if want.shape == got.shape and np.array_equal(want, got):
                    pad = (pl, pr, mode)
                    break
            if pad:
                break
        if pad is None or m.in_channels != 1 or m.out_channels != 1 or m.padding_mode != "zeros" or (
                pad[2] == "reflect" and (m.pad_left or m.pad_right)):
            self.refuse("convolves a channel mean padded other than by reflection or zeros, or with more "
                        "than one channel")
        conv = FrameConv1d(1, 1, m.kernel_size, frame_length=L, stride=m.stride,
                           padding=(pad[0] + m.pad_left, pad[1] + m.pad_right), padding_mode=pad[2],
                           dilation=m.dilation, bias="bias" in m.params, dtype=m.dtype.name)
        conv.params["weight"] = np.array(m.params["weight"])
        if "bias" in m.params:
            conv.params["bias"] = np.array(m.params["bias"])
        return {"k": "cms", "src": x["src"], "conv": conv}

    # -- the positions -----------------------------------------------------------------------------
    def to_positions(self, s, x: dict) -> dict:
        from rnncore.nn.chunk import ChunkPositions

        perm = [int(p) for p in s.attrs.get("perm", [])]
        if len(x["shape"]) != 3 or x["shape"][0] != 1 or sorted(perm) != [0, 1, 2]:
            self.refuse(f"transposes a frame of shape {x['shape']} with perm {perm}: expected (1, C, P)")
        C, P = x["shape"][1], x["shape"][2]
        labels = [["b", "f", "p"][k] for k in perm]
        v = self.add(x, ChunkPositions(C, P))
        return {"k": "pos", "path": v["path"], "axes": labels, "F": C, "P": P}

    def pos_node(self, s, x: dict, ins: list) -> None:
        op, a = s.op, s.attrs
        out = s.outputs[0]
        if op == "LSTM":
            self.lstm_node(s, ins)
            return
        if op in ("Identity",):
            self.val[out] = x
            return
        if op == "Transpose":
            perm = [int(p) for p in a.get("perm", [])]
            self.val[out] = dict(x, axes=[x["axes"][k] for k in perm])
            return
        if op in ("Squeeze", "Unsqueeze"):
            axes = [k % (len(x["axes"]) + (op == "Unsqueeze")) for k in (self.axes_of(s) or [])]
            labels = list(x["axes"])
            if op == "Squeeze":
                if not axes or any(self.size(x, labels[k]) != 1 for k in axes):
                    self.refuse(f"squeezes axes {axes} of {labels}: only axes of size 1")
                labels = [lb for k, lb in enumerate(labels) if k not in axes]
            else:
                for k in sorted(axes):
                    labels.insert(k, "1")
            self.val[out] = dict(x, axes=labels)
            return
        if op in _ACT:
            self.val[out] = self.add(x, s.fn.module)
            return
        if op == "Conv" and x["k"] == "pos":
            m = s.fn.module
            if x["axes"] != ["b", "f", "p"] or m.kernel_size != 1 or m.stride != 1 or m.groups != 1 or \
                    m.pad_left or m.pad_right:
                self.refuse(f"convolves positions laid out {x['axes']} with kernel {m.kernel_size}: only a "
                            "kernel 1 over (1, F, P) (a per-position Linear)")
            lin = _conv1x1_linear(m)
            self.val[out] = dict(self.add(x, lin), F=m.out_channels)
            return
        if op == "ReduceMean" and x["k"] == "pos":
            axes = self.axes_of(s)
            n = len(x["axes"])
            if axes is None or [x["axes"][k % n] for k in axes] != ["p"]:
                self.refuse(f"averages axes {axes} of {x['axes']}: only over the positions")
            from rnncore.nn.chunk import ChunkMean

            labels = [("1" if lb == "p" else lb) for lb in x["axes"]] if int(a.get("keepdims", 1)) else [
                lb for lb in x["axes"] if lb != "p"]
            v = self.add(x, ChunkMean(x["P"]))
            self.val[out] = dict(v, k="chunk", axes=labels)
            return
        self.refuse(f"is not an op on per-position values ({x['axes']}) this lowering follows")

    def size(self, x: dict, label: str) -> int:
        return {"b": 1, "1": 1, "d": 1, "f": x["F"], "p": x["P"] if x["k"] == "pos" else 1}[label]

    # -- the state ---------------------------------------------------------------------------------
    def state_node(self, s, ins: list) -> dict:
        op = s.op
        x = ins[0]
        if x is not None and x["k"] == "state" and op in ("Slice", "Gather"):
            n = x["shape"][0]
            if op == "Gather":
                idx = self.const(s.inputs[1], "the row index")
                if int(s.attrs.get("axis", 0)) != 0 or idx.size != 1:
                    self.refuse("gathers other than one row of the state's axis 0")
                r = int(idx.reshape(-1)[0]) % n
            else:
                st, en = _ints(self.const(s.inputs[1], "starts")), _ints(self.const(s.inputs[2], "ends"))
                axes = _ints(self.const(s.inputs[3], "axes")) if len(s.inputs) > 3 and s.inputs[3] else [0]
                steps = _ints(self.const(s.inputs[4], "steps")) if len(s.inputs) > 4 and s.inputs[4] else [1]
                lo, hi = slice(st[0], en[0]).indices(n)[:2]
                if axes != [0] or steps != [1] or hi != lo + 1:
                    self.refuse(f"slices the state {x['name']!r} other than one row of axis 0")
                r = lo
            return {"k": "srow", "name": x["name"], "row": r}
        if op == "Concat" and all(v is not None and v["k"] == "sfinal" for v in ins) and \
                int(s.attrs.get("axis", 0)) == 0:
            return {"k": "sstack", "rows": [(v["rec"], v["which"]) for v in ins]}
        if op == "Identity" and x is not None and x["k"] in ("sstack", "sfinal"):
            return x
        self.refuse("uses the state other than as rows of an LSTM's initial state and its stacked final "
                    "state")

    def lstm_node(self, s, ins: list) -> None:
        m = s.fn.module
        x = ins[0]
        if x is None or x["k"] != "pos" or type(m).__name__ != "LSTM" or m.bidirectional or \
                m.num_layers != 1 or getattr(m, "proj_size", 0) or int(s.attrs.get("layout", 0)) != 0:
            self.refuse("is not a unidirectional one-layer LSTM (layout 0) over the positions")
        if x["axes"] != ["p", "b", "f"] or x["F"] != m.input_size:
            self.refuse(f"runs over values laid out {x['axes']}: expected (P, 1, {m.input_size})")
        if len(s.inputs) > 4 and s.inputs[4]:
            self.refuse("has sequence_lens")
        init = [ins[k] if len(ins) > k else None for k in (5, 6)]
        if any(v is None or v["k"] != "srow" for v in init):
            self.refuse("does not start from one row of each of the graph's state inputs (h, c)")
        k = len(self.recs)
        self.recs.append({"m": m, "h": (init[0]["name"], init[0]["row"]),
                          "c": (init[1]["name"], init[1]["row"])})
        y = self.add(x, m)
        if s.outputs[0]:
            self.val[s.outputs[0]] = dict(y, axes=["p", "d", "b", "f"], F=m.hidden_size)
        for j, which in ((1, "h"), (2, "c")):
            if len(s.outputs) > j and s.outputs[j]:
                self.val[s.outputs[j]] = {"k": "sfinal", "rec": k, "which": which}


def _shapes(g) -> dict:
    """Every tensor's shape from one run of the graph on zeros (the fixed input shapes)."""
    vals = dict(g.consts)
    for n in g.input_names:
        vals[n] = np.zeros(g.fixed_shapes[n], np.float32)
    for s in g.steps:
        outs = s.fn([vals[i] if i else None for i in s.inputs])
        for o, v in zip(s.outputs, outs, strict=False):
            vals[o] = v
    return {k: np.shape(v) for k, v in vals.items()}


def lower_positions_graph(g):
    """The ``rc.nn.Sequential`` of a chunk graph whose front-end leaves positions (module docstring).

    Returns
    -------
    model : ``rc.nn.Sequential`` taking ``(B, N, L)`` (``N`` chunks of each of ``B`` streams) and
        returning ``(B, N, F)``; its recurrent layers' state ``[(h, c), ...]`` each ``(1, B, H)``
    info : dict: ``data_input``, ``data_output``, ``state_inputs`` / ``state_outputs`` (the graph's
        ``h``, ``c`` names and their outputs), ``positions`` (``P``), ``state_rows`` (for each
        recurrent layer in order, its row of the state inputs)

    Raises
    ------
    ValueError
        naming the first node this lowering does not follow.
    """
    from rnncore.nn.layers import Sequential

    data_in = g.input_names[0]
    for n in g.input_names:
        if None in tuple(g.fixed_shapes.get(n) or (None,)):
            raise _Refused(f"rc.compile(OnnxGraph): input {n!r} has no fixed shape")
    try:
        shapes = _shapes(g)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise _Refused(f"rc.compile(OnnxGraph): the graph does not run on zeros of its fixed input shapes "
                       f"({e})") from None
    lw = _PosLower(g, shapes)
    lw.val[data_in] = {"k": "fr", "path": (), "shape": tuple(g.fixed_shapes[data_in]), "pad": None}
    for n in g.input_names[1:]:
        lw.val[n] = {"k": "state", "name": n, "shape": tuple(g.fixed_shapes[n])}
    _run_nodes(lw, g.steps)
    outs = [o for o in g.output_names if lw.val.get(o, {}).get("k") != "sstack"]
    y = lw.val.get(outs[0]) if len(outs) == 1 else None
    if y is None or y["k"] != "chunk" or not lw.recs:
        raise _Refused(f"rc.compile(OnnxGraph): outputs {g.output_names}: expected one per-chunk output (a "
                       "mean over the positions) and the stacked final states")
    n_rec = len(lw.recs)
    names = {"h": None, "c": None}
    state_out = {}
    for o in g.output_names:
        v = lw.val.get(o)
        if v is None or v["k"] != "sstack":
            continue
        whichs = {w for _, w in v["rows"]}
        if len(whichs) != 1 or len(v["rows"]) != n_rec:
            raise _Refused(f"rc.compile(OnnxGraph): output {o!r} stacks {v['rows']}: expected the final h "
                           "(or c) of every LSTM")
        which = whichs.pop()
        for row, (k, _) in enumerate(v["rows"]):
            name, r = lw.recs[k][which]
            if r != row or (names[which] not in (None, name)):
                raise _Refused(f"rc.compile(OnnxGraph): output {o!r} row {row} is the final {which} of the "
                               f"LSTM that started from row {r} of {name!r}: the rows do not match")
            names[which] = name
        state_out[which] = o
    if sorted(state_out) != ["c", "h"]:
        raise _Refused(f"rc.compile(OnnxGraph): outputs {g.output_names}: expected the stacked final h and c")
    model = Sequential(*y["path"])
    info = {"data_input": data_in, "data_output": outs[0], "state_inputs": [names["h"], names["c"]],
            "state_outputs": [state_out["h"], state_out["c"]], "positions": y["P"],
            "state_rows": [r["h"][1] for r in lw.recs]}
    return model, info
