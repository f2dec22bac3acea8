"""Lowering a chunk graph to an ``rc.nn.Sequential`` the C engine compiles.

A chunk model (Silero VAD v5's ``silero_vad.onnx``) is called once per chunk of audio: it takes
``input (B, L)`` and the recurrent state stacked in one tensor, ``state (2, B, H)`` (``h`` and
``c``), and returns one probability per chunk ``output (B, 1)`` and ``stateN (2, B, H)``. Fed
back call after call, it is a recurrent model whose step is one chunk. Imported with the chunk's
shape fixed, ``from_onnx(path, constants={"sr": 16000}, input_shapes={"input": (1, 576),
"state": (2, 1, 128)})``, every ``Shape`` of it is a constant and every ``If`` on a shape its
branch, and :func:`lower_chunk_graph` follows what is left:

* the front-end over the chunk's samples as :class:`~rnncore.io.onnx_import._lower._Lower` does
  for frames (``Pad`` + strided ``Conv`` -> ``FrameConv1d``, the magnitude, ``Conv``/``Relu``);
  ``Cast`` to float and ``Identity`` are the identity. A data input read first by a ``Gemm`` /
  ``MatMul`` is the step's features already (Silero v5's decoder alone, ``silero_decoder_v5.onnx``);
* the frame reduced to one position, ``Squeeze`` / ``Gather`` of it, becomes the step's feature
  vector; ``Squeeze`` / ``Unsqueeze`` / ``Reshape`` / ``Flatten`` of a feature vector, and a
  ``ReduceMean`` over axes of size 1, only reshape it (one chunk of batch 1);
* rows of the stacked state (``Gather`` / ``Slice`` on its axis 0) are the initial ``h`` and ``c``;
* an ``LSTM`` node over one step (``(1, 1, F)``) whose initial state is two such rows, or a cell
  written out op by op, read as algebra over the features ``x`` and the state rows: gate
  pre-activations are sums of ``Gemm`` / ``MatMul`` (+ bias) products of ``x``, of an ``h`` row, of
  ``Concat([x, h])`` (its weight columns split into ``W_ih`` / ``W_hh``) or of ``Concat([x, r * h])``,
  ``Split`` on the last axis (before or after their ``Sigmoid`` / ``Tanh``) or ``Slice`` of it, in
  any gate order:

  - an LSTM cell: ``c' = f * c + i * g``, ``h' = o * tanh(c')`` -> ``rc.nn.LSTM`` (the gates
    re-ordered to i, f, g, o, the biases summed; a constant added to one gate, TF's forget bias,
    is its bias);
  - a GRU cell: ``h' = (1 - z) * n + z * h``, also written ``n + z * (h - n)`` (PyTorch's
    ``GRUCell``) or ``z * n + (1 - z) * h`` (z's role swapped: the engine's z gate is then the
    sigmoid of the negated pre-activation, ``1 - sigmoid(a) = sigmoid(-a)``), with
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` -> ``rc.nn.GRU(reset_after=True)`` or
    ``n = tanh(W_in x + W_hn (r * h) + b)`` -> ``rc.nn.GRU(reset_after=False)``;

  the roles are read from how the products and sums combine the gates;
* after it, ``Relu`` / ``Sigmoid`` / ``Tanh``, ``Gemm`` / ``MatMul`` and a ``Conv`` with kernel 1
  over one position: the per-step head;
* ``Concat`` on axis 0 of the new ``h`` and ``c`` (each ``(1, 1, H)``) in the rows the input state
  had: the state output.

The state is either stacked in one input as above, or one input per state tensor, ``h (1, H)``
(and ``c (1, H)``), as ``nn.GRUCell`` / ``nn.LSTMCell`` streaming graphs have it: ``(x, h[, c]) ->
(y, h'[, c'])``, the new ``h'`` (and ``c'``) graph outputs (``h'`` is also the per-step output when
the graph has no other).

The engine runs ``X (B', N, L)``: ``N`` chunks of ``B'`` independent streams, the state
``(h, c)`` = ``(state[0:1], state[1:2])`` (rows as in the graph) and the final state likewise
stacked back. Anything else is refused naming the node and what was expected; before refusing,
:func:`lower_chunk_graph` tries :func:`~rnncore.io.onnx_import._lower_positions.lower_positions_graph`
(a front-end that leaves several positions per chunk, recurrent layers over them: Silero VAD v4)
and raises the refusal of the lowering that followed more of the graph.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._lower import _ACTS, _conv1x1_linear, _ints, _Lower, _run_nodes
from rnncore.io.onnx_import._values import _Refused

_RESHAPES = ("Squeeze", "Unsqueeze", "Reshape", "Flatten", "ReduceMean")
_FLOAT_TO = (1, 10, 11, 16)
_CELL = {"aff", "gact", "gs", "sn", "tc", "cnew", "omz", "hmn", "zhmn", "omzn", "omzh", "cat"}


class _ChunkLower(_Lower):
    def __init__(self, g) -> None:
        super().__init__(g)
        self.rows: dict = {}        # "h" / "c" -> row of the stacked state input
        self.state_in: str | None = None
        self.state_out: str | None = None
        self.H = None
        self.roles: dict = {}       # the written-out cell's "i", "f", "g", "o" / "r", "z", "n" -> its gate
        self.c_row = self.c_new = None

    def refuse(self, why: str):
        s = self.step
        raise _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) {why}; the C engine compiles a "
                       "chunk graph as per-frame layers, one LSTM or GRU (an ONNX node or a cell written "
                       "out; its state one stacked input or one input per tensor) and a per-step head "
                       "(rnncore/io/onnx_import/_lower_chunk.py, docs/importers.md)")

    # -- helpers ---------------------------------------------------------------------------
    def shape_after(self, s, shape: tuple) -> tuple:
        """The step's output shape for an input of ``shape`` (its own NumPy op on zeros)."""
        args = [np.zeros(shape)] + [self.g.consts.get(i) if i else None for i in s.inputs[1:]]
        try:
            return tuple(np.shape(s.fn(args)[0]))
        except (ValueError, IndexError, _Refused) as e:
            self.refuse(f"does not apply to a tensor of shape {shape} ({e})")

    def latest(self, v: dict, what: str) -> None:
        if v.get("at") != len(self.layers):
            self.refuse(f"reads {what} that is not the chain's latest result (a branch or a skip: the engine "
                        "runs one chain of layers)")

    def feat(self, shape: tuple, tag: str | None = None) -> dict:
        return {"k": "feat", "shape": tuple(shape), "F": int(np.prod(shape)), "at": len(self.layers),
                "tag": tag}

    def const_of(self, name: str):
        return self.g.consts.get(name) if name else None

    # -- the nodes -----------------------------------------------------------------------------
    def node(self, s) -> None:
        self.step = s
        op, a = s.op, s.attrs
        ins = [self.val.get(i) if i else None for i in s.inputs]
        x = ins[0] if ins else None
        if op in ("Identity", "Cast"):
            if op == "Cast" and int(a.get("to", 1)) not in _FLOAT_TO:
                self.refuse(f"casts to element type {a.get('to')} (only a cast to float is data movement)")
            self.val[s.outputs[0]] = self.get(s.inputs[0])
            return
        if op in ("Add", "Sub") and len(s.inputs) == 2 and self._adds_zero(s):
            return
        if x is not None and x["k"] == "aff" and set(x["terms"]) == {"x"} and op not in ("Add", "Split"):
            x = ins[0] = self.affine_layer(x)      # a product of the features alone: a per-step Linear
        kinds = {v["k"] for v in ins if v is not None}
        if op == "Split" and x is not None and x["k"] in ("aff", "gact"):
            self.split_node(s, x)
            return
        if op == "Slice" and x is not None and x["k"] == "aff":
            self.slice_node(s, x)
            return
        if kinds & _CELL or (op in ("Gemm", "MatMul") and x is not None and x["k"] in ("feat", "srow")) or (
                op == "Concat" and kinds & {"srow", "gs"} and "feat" in kinds):
            self.cell_node(s, ins)
            return
        if x is not None and x["k"] == "gstate":
            self.state_row(s, x)
            return
        if op in ("Squeeze", "Gather", "Reshape", "Flatten") and x is not None and x["k"] in (
                "frames", "conv"):
            x = self.materialize(x)
            if x["k"] == "frames" and len(x["shape"]) == 1:
                self.refuse(f"reshapes the chunk's samples {x['shape']}: the lowering follows Pad, Unsqueeze "
                            "(axis 1) and a Conv over them")
            if x["k"] != "frames" or len(x["shape"]) != 2 or x["shape"][1] != 1:
                self.refuse(f"turns frames of shape {x.get('shape')} into features: only a frame reduced to "
                            "one position is a step's feature vector (a recurrent layer over the positions "
                            "inside a chunk is not lowered)")
            if op == "Gather" and (int(a.get("axis", 0)) % 3 != 2 or _ints(self.const(s.inputs[1], "indices"))
                                   != [0]):
                self.refuse("gathers other than position 0 of the frame's one position")
            shp = self.shape_after(s, (1,) + x["shape"])
            self.val[s.outputs[0]] = self.feat(shp)
            return
        if x is not None and x["k"] in ("feat", "srow", "state2"):
            self.feat_node(s, ins)
            return
        super().node(s)

    def _adds_zero(self, s) -> bool:
        """``x + 0``, ``0 + x``, ``x - 0`` with a constant zero tensor that does not broadcast ``x`` to a
        larger shape (Silero's ``op15`` graph adds ``sr * 0`` to its state output to keep ``sr`` an
        input): the value is ``x``'s, passed on unchanged."""
        sides = (0, 1) if s.op == "Add" else (1,)
        for k in sides:
            z, other = self.const_of(s.inputs[k]), s.inputs[1 - k]
            if z is None or other in self.g.consts or np.any(np.asarray(z) != 0):
                continue
            v = self.val.get(other)
            shape = v.get("shape") if v is not None else None
            if shape is None:
                continue
            try:
                widened = np.broadcast_shapes(tuple(shape), np.shape(z)) != tuple(shape)
            except ValueError:
                self.refuse(f"adds a zero constant of shape {np.shape(z)} to a value of shape "
                            f"{tuple(shape)}: the shapes do not broadcast")
            if widened:
                continue
            self.val[s.outputs[0]] = v
            return True
        return False

    def state_row(self, s, x: dict) -> None:
        op, a = s.op, s.attrs
        if op == "Gather" and int(a.get("axis", 0)) == 0:
            idx = np.asarray(self.const(s.inputs[1], "the row index"))
            r = int(idx.reshape(-1)[0]) % x["shape"][0] if idx.size == 1 else None
            shp = x["shape"][1:] if idx.ndim == 0 else (1,) + x["shape"][1:]
        elif op == "Slice":
            st, en = _ints(self.const(s.inputs[1], "starts")), _ints(self.const(s.inputs[2], "ends"))
            axes = _ints(self.const(s.inputs[3], "axes")) if len(s.inputs) > 3 and s.inputs[3] else [0]
            steps = _ints(self.const(s.inputs[4], "steps")) if len(s.inputs) > 4 and s.inputs[4] else [1]
            n = x["shape"][0]
            b, e = (st[0] + n if st[0] < 0 else st[0]), min(en[0] + n if en[0] < 0 else en[0], n)
            r = b if axes == [0] and steps == [1] and e == b + 1 else None
            shp = (1,) + x["shape"][1:]
        else:
            r = None
        if r is None:
            self.refuse(f"uses the state input {x['name']!r} other than one row of its axis 0 (Gather / "
                        "Slice)")
        v = {"k": "srow", "row": r, "shape": tuple(shp), "F": int(np.prod(shp)), "at": None}
        self.val[s.outputs[0]] = v

    def feat_node(self, s, ins: list) -> None:
        op, a = s.op, s.attrs
        x = ins[0]
        if op in _RESHAPES:
            if op == "ReduceMean":
                axes = a.get("axes") if "axes" in a else (_ints(self.const(s.inputs[1], "axes"))
                                                           if len(s.inputs) > 1 and s.inputs[1] else None)
                n = len(x["shape"])
                axes = range(n) if axes is None else [int(k) % n for k in axes]
                if any(x["shape"][k] != 1 for k in axes):
                    self.refuse(f"averages axes {list(axes)} of {x['shape']}: only axes of size 1 (one "
                                "chunk, batch 1) are the identity")
            out = dict(x, shape=self.shape_after(s, x["shape"]))
            self.val[s.outputs[0]] = out
            return
        if x["k"] == "srow":
            self.refuse(f"computes with the state ({op}) outside a gate of an LSTM or GRU cell")
        if op == "Concat":
            self.concat_state(s, ins)
            return
        if x["k"] != "feat":
            self.refuse("is not an op on the step's features")
        if op in _ACTS and hasattr(s.fn, "module"):
            if x["tag"] == "c":
                self.refuse("applies an activation to the cell state c (the engine's per-step output is h)")
            self.latest(x, "features")
            self.layers.append(s.fn.module)
            self.val[s.outputs[0]] = self.feat(x["shape"])
            return
        if op == "Conv":
            m = s.fn.module
            if len(x["shape"]) != 3 or x["shape"][2] != 1 or m.kernel_size != 1 or m.stride != 1 or \
                    m.groups != 1 or m.pad_left or m.pad_right or m.dilation != 1:
                self.refuse(f"convolves features of shape {x['shape']} with kernel {m.kernel_size}: only a "
                            "kernel 1 over one position (a per-step Linear)")
            lin = _conv1x1_linear(m)
            self.linear(x, lin)
            self.val[s.outputs[0]] = self.feat((1, m.out_channels, 1))
            return
        if op in ("LSTM", "GRU", "RNN"):
            self.lstm_node(s, x)
            return
        self.refuse("is not an op of the chunk chains this lowering follows")

    def affine_layer(self, v: dict) -> dict:
        from rnncore.nn.layers import Linear

        W = v["terms"]["x"][1]
        lin = Linear(W.shape[1], W.shape[0], dtype=self.g.dtype.name)
        lin.params["weight"] = np.array(W, lin.params["weight"].dtype)
        lin.params["bias"] = np.array(v["b"], lin.params["bias"].dtype)
        self.linear(v["src"], lin)
        return self.feat(v["src"]["shape"][:-1] + (W.shape[0],))

    def linear(self, x: dict, lin) -> None:
        if x["tag"] == "c":
            self.refuse("reads the cell state c as features (the engine's per-step output is h)")
        self.latest(x, "features")
        self.layers.append(lin)

    def lstm_node(self, s, x: dict) -> None:
        m = s.fn.module
        if s.op != "LSTM" or type(m).__name__ != "LSTM" or m.bidirectional or m.num_layers != 1 or \
                getattr(m, "proj_size", 0):
            self.refuse("is not a one-layer unidirectional LSTM without options (the state of a chunk graph "
                        "is h and c)")
        if x["shape"] != (1, 1, m.input_size) or int(s.attrs.get("layout", 0)) != 0:
            self.refuse(f"runs over X of shape {x['shape']}: expected one step of one chunk (1, 1, "
                        f"{m.input_size})")
        if len(s.inputs) > 4 and s.inputs[4]:
            self.refuse("has sequence_lens")
        if self.rnn is not None:
            self.refuse("is a second recurrent layer (one per chunk graph)")
        for k, kind in ((5, "h"), (6, "c")):
            if len(s.inputs) <= k or not s.inputs[k]:
                self.refuse(f"has no initial {kind}: the state input gives both")
            v = self.get(s.inputs[k])
            if v["k"] != "srow" or v["shape"] != (1, 1, m.hidden_size):
                self.refuse(f"takes initial_{kind} from {s.inputs[k]!r}, expected a row (1, 1, "
                            f"{m.hidden_size}) of the stacked state input")
            self.claim(v["row"], kind)
        self.latest(x, "the LSTM's input")
        self.layers.append(m)
        self.rnn = m
        H = m.hidden_size
        outs = list(s.outputs) + ["", "", ""]
        if outs[0]:
            self.val[outs[0]] = self.feat((1, 1, 1, H), "h")
        if outs[1]:
            self.val[outs[1]] = self.feat((1, 1, H), "h")
        if outs[2]:
            self.val[outs[2]] = dict(self.feat((1, 1, H), "c"), at=None)     # state only, not features

    def claim(self, r: int | str, kind: str) -> None:
        """Row ``r`` of the stacked state (an int) or the state input named ``r`` is the engine's ``kind``."""
        if self.rows.get(kind, r) != r or any(k != kind and x == r for k, x in self.rows.items()):
            if isinstance(r, str):
                self.refuse(f"reads the state input {r!r} as {kind}, an input the graph uses otherwise "
                            f"({self.rows})")
            self.refuse(f"reads row {r} of the state as {kind}, a row the graph uses otherwise ({self.rows})")
        self.rows[kind] = r

    def concat_state(self, s, ins: list) -> None:
        if int(s.attrs.get("axis", 0)) != 0 or len(ins) != 2 or any(
                v is None or v["k"] != "feat" or v["tag"] is None or len(v["shape"]) != 3
                or v["shape"][:2] != (1, 1)
                for v in ins):
            self.refuse("concatenates other than the new h and c (1, 1, H) on axis 0 (the stacked state)")
        order = [v["tag"] for v in ins]
        if sorted(order) != ["c", "h"] or [self.rows.get(t) for t in order] != [0, 1]:
            self.refuse(f"stacks the new state as {order}, the input state's rows are {self.rows}: the state "
                        "output must have the input's layout")
        self.val[s.outputs[0]] = {"k": "state2", "shape": (2, 1, ins[0]["shape"][2]), "F": 0, "at": None,
                                  "tag": None}

    # -- the written-out cell -----------------------------------------------------------------
    # Every tensor of a cell being written out is described by what it is in terms of the step's
    # features x and the state rows: "aff" a gate pre-activation sum_k W_k src_k + b whose terms are
    # "x" (the features), "h" (a state row), "rh" (W (r * h), the reset-before GRU) and "rgh"
    # (r * (W h + b), PyTorch's GRU); "gact" a Sigmoid / Tanh of one; "gs" sigma * (state row);
    # "sn" sigmoid * tanh; "omz" 1 - sigma; "omzn" (1 - sigma) * tanh; "omzh" (1 - sigma) * row;
    # "hmn" row - tanh; "zhmn" sigma * (row - tanh); "cnew" an LSTM's c'; "tc" tanh(c'); "cat" the
    # features and a state row concatenated. The roles (i, f, g, o / r, z, n) are read from how
    # the final sums combine them; the layer is written when h' is complete.
    def gate_name(self, g: dict) -> str:
        return f"gate part {g['label']}" if isinstance(g["label"], int) else f"gate {g['label']!r}"

    def aff_of(self, x: dict, W: np.ndarray, b: np.ndarray) -> dict:
        """The product ``W x + b`` of the features, a state row, a gated row or a concatenation."""
        O = W.shape[0]
        if len(x["shape"]) != 2 or x.get("F") != W.shape[1]:
            self.refuse(f"multiplies a tensor of shape {x['shape']} by weights {W.shape[::-1]}")
        if x["k"] == "srow":
            terms = {"h": (x["row"], W)}
        elif x["k"] == "feat":
            terms = {"x": (x, W)}
        elif x["k"] == "gs":
            terms = {"rh": ((x["g"], x["row"]), W)}
        elif x["k"] == "cat":
            terms, at = {}, 0
            for p in x["parts"]:
                Wp = W[:, at:at + p["F"]]
                at += p["F"]
                key, src = {"srow": ("h", p.get("row")), "gs": ("rh", (p.get("g"), p.get("row"))),
                            "feat": ("x", p)}[p["k"]]
                if key in terms:
                    self.refuse("multiplies a concatenation of the same kind of tensor twice")
                terms[key] = (src, Wp)
        else:
            self.refuse("multiplies something other than the features or a state row")
        return {"k": "aff", "terms": terms, "b": np.asarray(b, np.float64).reshape(-1), "O": O,
                "src": terms["x"][0] if "x" in terms else None, "label": None}

    def add_aff(self, u: dict, w: dict) -> dict:
        if u["O"] != w["O"]:
            self.refuse(f"adds gate products of {u['O']} and {w['O']} values")
        terms = dict(u["terms"])
        for k, (src, W) in w["terms"].items():
            if k not in terms:
                terms[k] = (src, W)
            elif k in ("rh", "rgh") or terms[k][0] is not src and terms[k][0] != src:
                self.refuse(f"adds two products of different {'state rows' if k == 'h' else 'tensors'} "
                            f"({k}) into one gate")
            else:
                terms[k] = (src, terms[k][1] + W)
        lab = u["label"] if u["label"] == w["label"] else None
        return dict(u, terms=terms, b=u["b"] + w["b"], src=u["src"] if u["src"] is not None else w["src"],
                    label=lab)

    def cell_node(self, s, ins: list) -> None:
        op = s.op
        x = ins[0]
        out = s.outputs[0]
        if op in ("Gemm", "MatMul"):
            lin = getattr(s.fn, "module", None)
            if lin is None:
                self.refuse("multiplies by something other than a constant matrix")
            W = np.asarray(lin.params["weight"])
            b = np.asarray(lin.params["bias"]) if "bias" in lin.params else np.zeros(W.shape[0])
            if x["k"] == "gs" and x["g"]["act"] != "sig":
                self.refuse("multiplies tanh * h by weights (a GRU's reset-before product is W (r * h))")
            self.val[out] = self.aff_of(x, W, b)
            return
        if op == "Concat":
            axis = int(s.attrs.get("axis", 0))
            ks = sorted(v["k"] if v else "-" for v in ins)
            if len(ins) != 2 or ks[0] != "feat" or ks[1] not in ("gs", "srow") or axis % 2 != 1 or any(
                    len(v["shape"]) != 2 for v in ins):
                self.refuse("concatenates other than the features and one state row (1, H), or r * h, on the "
                            "last axis (the input of a cell's one product)")
            self.val[out] = {"k": "cat", "parts": list(ins), "shape": (1, sum(v["F"] for v in ins)),
                             "F": sum(v["F"] for v in ins)}
            return
        kinds = sorted(v["k"] if v else "-" for v in ins)
        if op == "Add":
            u, w = ins[0], ins[1]
            if u is None and w is not None:
                u, w = w, u
            if u is not None and u["k"] == "aff" and (w is None or w["k"] == "aff"):
                if w is None:                                       # a constant bias
                    c = self.const_of(s.inputs[1]) if ins[0] is u else self.const_of(s.inputs[0])
                    if c is None or np.size(c) not in (1, u["O"]):
                        self.refuse("adds to a gate product something other than a bias of its size")
                    self.val[out] = dict(u, b=u["b"] + np.asarray(c, np.float64).reshape(-1))
                    return
                self.val[out] = self.add_aff(u, w)
                return
            by = {v["k"]: v for v in ins if v}
            if kinds == ["gs", "sn"]:                       # f * c + i * g: an LSTM's c'
                fc, ig = by["gs"], by["sn"]
                self.take("f", fc["g"])
                self.take("i", ig["sig"])
                self.take("g", ig["tanh"])
                self.c_row = fc["row"]
                self.c_new = out
                self.val[out] = {"k": "cnew"}
                return
            if kinds == ["gs", "omzn"]:                     # z * h + (1 - z) * n
                self.gru_out(by["gs"]["g"], by["omzn"]["z"], by["omzn"]["n"], by["gs"]["row"], False, out)
                return
            if kinds == ["omzh", "sn"]:                     # z * n + (1 - z) * h: z's role swapped
                self.gru_out(by["sn"]["sig"], by["omzh"]["z"], by["sn"]["tanh"], by["omzh"]["row"], True, out)
                return
            if kinds == ["gact", "zhmn"]:                   # n + z * (h - n) (PyTorch's GRUCell)
                zh = by["zhmn"]
                self.gru_out(zh["z"], zh["z"], by["gact"], zh["row"], False, out, n2=zh["n"])
                return
            self.refuse(f"adds {kinds}: expected a gate's products, f * c + i * g (an LSTM cell's new c) or "
                        "a GRU's (1 - z) * n + z * h")
        if op == "Sub":
            u, w = ins
            if u is None and w is not None and w["k"] == "gact" and w["act"] == "sig":
                c = self.const_of(s.inputs[0])
                if c is None or np.size(c) != 1 or float(np.asarray(c).reshape(-1)[0]) != 1.0:
                    self.refuse(f"subtracts {self.gate_name(w)} from other than the constant 1")
                self.val[out] = {"k": "omz", "g": w}
                return
            if u is not None and u["k"] == "srow" and w is not None and w["k"] == "gact" and \
                    w["act"] == "tanh":
                self.val[out] = {"k": "hmn", "row": u["row"], "n": w, "shape": u["shape"], "F": u["F"]}
                return
            self.refuse(f"subtracts {kinds}: a GRU cell writes 1 - z or h - n")
        if op in ("Sigmoid", "Tanh"):
            act = "sig" if op == "Sigmoid" else "tanh"
            if x["k"] == "aff":
                self.val[out] = {"k": "gact", "act": act, "pre": x, "id": out,
                                 "label": x["label"] if x["label"] is not None else s.name}
                return
            if x["k"] == "cnew" and op == "Tanh":
                self.val[out] = {"k": "tc"}
                return
            self.refuse(f"applies {op} to {x['k']}: an LSTM cell has sigmoid(i, f, o), tanh(g) and tanh(c'), "
                        "a GRU cell sigmoid(r, z) and tanh(n)")
        if op == "Mul":
            u, w = ins[0], ins[1]
            if u is None or w is None:
                self.refuse("multiplies a gate by a constant (not an LSTM or GRU cell)")
            pair = sorted([u, w], key=lambda v: v["k"])
            ks = [v["k"] for v in pair]
            if ks == ["gact", "srow"]:
                g, r = pair
                if g["act"] != "sig":
                    where = f"row {r['row']}" if isinstance(r["row"], int) else f"input {r['row']!r}"
                    self.refuse(f"multiplies the state's {where} by tanh of {self.gate_name(g)}: the "
                                "forget gate is a sigmoid (f * c in an LSTM, z * h or r * h in a GRU)")
                if len(r["shape"]) != 2 or r["F"] != g["pre"]["O"]:
                    self.refuse(f"multiplies a gate of {g['pre']['O']} units by a state row of shape "
                                f"{r['shape']}")
                self.val[out] = {"k": "gs", "g": g, "row": r["row"], "shape": r["shape"], "F": r["F"]}
                return
            if ks == ["gact", "gact"]:
                sg = [v for v in pair if v["act"] == "sig"]
                th = [v for v in pair if v["act"] == "tanh"]
                if len(sg) != 1 or len(th) != 1:
                    self.refuse(f"multiplies {[v['act'] for v in pair]} gate parts: an LSTM cell multiplies "
                                "sigmoid(i) by tanh(g)")
                self.val[out] = {"k": "sn", "sig": sg[0], "tanh": th[0]}
                return
            if ks == ["gact", "tc"]:
                g = pair[0]
                if g["act"] != "sig":
                    self.refuse("multiplies tanh(c') by other than a sigmoid gate (h' = o * tanh(c'))")
                self.take("o", g)
                self.emit_lstm(out)
                return
            if ks == ["aff", "gact"]:                       # r * (W_hn h + b_hn)
                a, g = pair
                if g["act"] != "sig" or set(a["terms"]) != {"h"}:
                    self.refuse(f"multiplies {self.gate_name(g)} by a product of {sorted(a['terms'])}: a GRU "
                                "multiplies sigmoid(r) by W_hn h + b_hn")
                row, W = a["terms"]["h"]
                self.val[out] = {"k": "aff", "terms": {"rgh": ((g, row), (W, a["b"]))}, "b": np.zeros(a["O"]),
                                 "O": a["O"], "src": None, "label": None}
                return
            if ks == ["gact", "hmn"]:                       # z * (h - n)
                g, d = pair
                if g["act"] != "sig":
                    self.refuse(f"multiplies h - n by tanh of {self.gate_name(g)}: a GRU's z is a sigmoid")
                self.val[out] = {"k": "zhmn", "z": g, "n": d["n"], "row": d["row"]}
                return
            if ks == ["gact", "omz"]:                       # (1 - z) * n
                g, o = pair
                if g["act"] != "tanh":
                    self.refuse(f"multiplies 1 - z by a sigmoid ({self.gate_name(g)}): a GRU multiplies it "
                                "by tanh(n) or h")
                self.val[out] = {"k": "omzn", "z": o["g"], "n": g}
                return
            if ks == ["omz", "srow"]:                       # (1 - z) * h
                o, r = pair
                self.val[out] = {"k": "omzh", "z": o["g"], "row": r["row"]}
                return
            self.refuse(f"multiplies {ks}: not a product of an LSTM cell (f * c, i * g, o * tanh(c')) or a "
                        "GRU cell (r * h, r * (W h + b), z * h, (1 - z) * n)")
        self.refuse(f"reads the parts of a recurrent cell being written out ({kinds}) with {op}")

    def split_node(self, s, x: dict) -> None:
        """A Split of a gate product (or of its Sigmoid / Tanh) on its last axis: one per part."""
        if x["k"] == "gact":
            act = x["act"]
            self.split_node(s, x["pre"])
            for j, o in enumerate(s.outputs):
                if o:
                    self.val[o] = {"k": "gact", "act": act, "pre": self.val[o], "id": o, "label": j}
            return
        axis = int(s.attrs.get("axis", 0)) % 2
        parts = s.fn([np.zeros((1, x["O"]))] + [self.const_of(i) for i in s.inputs[1:]])
        if axis != 1:
            self.refuse(f"splits gate products on axis {axis}: a cell's gates are parts of the last axis")
        at = 0
        for j, (o, p) in enumerate(zip(s.outputs, parts, strict=True)):
            n = np.shape(p)[1]
            sl = slice(at, at + n)
            at += n
            if not o:
                continue
            terms = {k: (src, (W[0][sl], W[1][sl]) if k == "rgh" else W[sl])
                     for k, (src, W) in x["terms"].items()}
            self.val[o] = dict(x, terms=terms, b=x["b"][sl], O=n, label=j)

    def slice_node(self, s, x: dict) -> None:
        """A Slice of a gate product on its last axis, step 1 (Keras's ``inner[:, :H]``): one part."""
        st, en = _ints(self.const(s.inputs[1], "starts")), _ints(self.const(s.inputs[2], "ends"))
        axes = _ints(self.const(s.inputs[3], "axes")) if len(s.inputs) > 3 and s.inputs[3] else [0]
        steps = _ints(self.const(s.inputs[4], "steps")) if len(s.inputs) > 4 and s.inputs[4] else [1]
        keep = [k for k in range(len(axes)) if not (axes[k] % 2 == 0 and st[k] <= 0 and en[k] >= 1)]
        if len(keep) != 1 or axes[keep[0]] % 2 != 1 or steps[keep[0]] != 1:
            self.refuse(f"slices a gate product with starts {st}, ends {en}, axes {axes}, steps "
                        f"{steps}: only a range of its last axis, step 1")
        k = keep[0]
        sl = slice(*slice(st[k], min(en[k], x["O"])).indices(x["O"])[:2])
        n = sl.stop - sl.start
        if n <= 0:
            self.refuse(f"slices an empty range {st[k]}..{en[k]} of a gate product of {x['O']}")
        terms = {k2: (src, (W[0][sl], W[1][sl]) if k2 == "rgh" else W[sl])
                 for k2, (src, W) in x["terms"].items()}
        self.val[s.outputs[0]] = dict(x, terms=terms, b=x["b"][sl], O=n, label=s.name)

    def take(self, role: str, g: dict) -> None:
        if role in self.roles and self.roles[role] is not g or any(
                r != role and v is g for r, v in self.roles.items()):
            have = {r: v["label"] for r, v in self.roles.items()}
            self.refuse(f"uses {self.gate_name(g)} as {role}, the cell already has roles {have}")
        self.roles[role] = g

    def gate_weights(self, g: dict, H: int, F: int, role: str):
        """``(W_ih (H, F), W_hh (H, H), b (H,), h row)`` of a gate whose pre-activation reads x and h."""
        pre = g["pre"]
        extra = sorted(set(pre["terms"]) - {"x", "h"})
        if extra:
            self.refuse(f"completes a cell whose {role} ({self.gate_name(g)}) reads {extra} (r * h belongs "
                        "to a GRU's n only)")
        if pre["O"] != H:
            self.refuse(f"completes a cell of {H} units whose {role} has {pre['O']}")
        Wi = pre["terms"]["x"][1] if "x" in pre["terms"] else np.zeros((H, F))
        row, Wh = pre["terms"]["h"] if "h" in pre["terms"] else (None, np.zeros((H, H)))
        if Wh.shape[1] != H:
            self.refuse(f"completes a cell of {H} units whose recurrent product reads {Wh.shape[1]} values "
                        "of the state")
        return Wi, Wh, pre["b"], row

    def cell_inputs(self, gates: list, H: int) -> tuple:
        """The features every gate's input product reads (one tensor) and the one h row."""
        srcs = [g["pre"]["src"] for g in gates if g["pre"]["src"] is not None]
        if not srcs or any(v is not srcs[0] for v in srcs):
            self.refuse("completes a cell whose gates read no features or different features")
        x = srcs[0]
        self.latest(x, "the cell's features")
        if x["tag"] == "c":
            self.refuse("reads the cell state c as features (the engine's per-step output is h)")
        return x, x["F"]

    def one_row(self, rows: list) -> object:
        rows = [r for r in rows if r is not None]
        if not rows or any(r != rows[0] for r in rows):
            self.refuse(f"completes a cell whose gates read the state rows {rows}: expected one h")
        return rows[0]

    def emit_lstm(self, h_name: str) -> None:
        from rnncore.nn.recurrent import LSTM

        if sorted(self.roles) != ["f", "g", "i", "o"] or self.c_new is None:
            have = {r: v["label"] for r, v in self.roles.items()}
            self.refuse(f"completes an LSTM cell with gate roles {have}")
        if self.rnn is not None:
            self.refuse("is a second recurrent layer (one per chunk graph)")
        gates = [self.roles[r] for r in "ifgo"]
        H = gates[0]["pre"]["O"]
        x, F = self.cell_inputs(gates, H)
        ws = [self.gate_weights(g, H, F, r) for g, r in zip(gates, "ifgo", strict=True)]
        h_row = self.one_row([w[3] for w in ws])
        self.claim(h_row, "h")
        self.claim(self.c_row, "c")
        m = LSTM(F, H, dtype=self.g.dtype.name)
        p = m.params
        p["weight_ih_l0"] = np.ascontiguousarray(np.concatenate([w[0] for w in ws]), p["weight_ih_l0"].dtype)
        p["weight_hh_l0"] = np.ascontiguousarray(np.concatenate([w[1] for w in ws]), p["weight_hh_l0"].dtype)
        p["bias_ih_l0"] = np.concatenate([w[2] for w in ws]).astype(p["bias_ih_l0"].dtype)
        p["bias_hh_l0"][:] = 0
        self.layers.append(m)
        self.rnn = m
        self.val[h_name] = dict(self.feat((1, H), "h"), state=True)
        c_new = dict(self.feat((1, H), "c"), at=None, state=True)
        old = self.val[self.c_new]
        for k in [k for k, v in self.val.items() if v is old]:        # c' and its copies (Cast, Identity)
            self.val[k] = c_new

    def gru_out(self, z: dict, z2: dict, n: dict, row, swapped: bool, h_name: str,
                n2: dict | None = None) -> None:
        """h' = (1 - z) * n + z * h (or, ``swapped``, z * n + (1 - z) * h: the engine's z is 1 - z, the
        sigmoid of the negated pre-activation) -> one ``rc.nn.GRU``."""
        from rnncore.nn.recurrent import GRU

        if z is not z2 or z["act"] != "sig" or (n2 is not None and n2 is not n) or n["act"] != "tanh":
            self.refuse("combines two different gates (or two different tanh(n)) where a GRU has one: h' = "
                        "(1 - z) * n + z * h")
        if self.rnn is not None:
            self.refuse("is a second recurrent layer (one per chunk graph)")
        pre = n["pre"]
        rk = [k for k in ("rgh", "rh") if k in pre["terms"]]
        if len(rk) != 1 or "h" in pre["terms"]:
            self.refuse(f"completes a GRU whose n ({self.gate_name(n)}) reads {sorted(pre['terms'])}: "
                        "expected x and r * (W_hn h + b_hn) (PyTorch) or W_hn (r * h) (reset before)")
        (r, r_row), Wn = pre["terms"][rk[0]]
        reset_after = rk[0] == "rgh"
        self.take("z", z)
        self.take("n", n)
        self.take("r", r)
        H = pre["O"]
        x, F = self.cell_inputs([r, z, n], H)
        wr, wz = self.gate_weights(r, H, F, "r"), self.gate_weights(z, H, F, "z")
        h_row = self.one_row([wr[3], wz[3], r_row, row])
        if row != h_row:
            self.refuse(f"computes h' from state row {row}, its gates read row {h_row}")
        self.claim(h_row, "h")
        W_hn, b_hn = (Wn if reset_after else (Wn, np.zeros(H)))
        W_in = pre["terms"]["x"][1] if "x" in pre["terms"] else np.zeros((H, F))
        if W_hn.shape != (H, H):
            self.refuse(f"completes a GRU of {H} units whose n reads {W_hn.shape[1]} values of the state")
        s = -1.0 if swapped else 1.0
        m = GRU(F, H, dtype=self.g.dtype.name, reset_after=reset_after)
        p = m.params
        dt = p["weight_ih_l0"].dtype
        p["weight_ih_l0"] = np.ascontiguousarray(np.concatenate([wr[0], s * wz[0], W_in]), dt)
        p["weight_hh_l0"] = np.ascontiguousarray(np.concatenate([wr[1], s * wz[1], W_hn]), dt)
        b_n = pre["b"] if reset_after else pre["b"] + b_hn
        p["bias_ih_l0"] = np.concatenate([wr[2], s * wz[2], b_n]).astype(p["bias_ih_l0"].dtype)
        p["bias_hh_l0"][:] = 0
        if reset_after:
            p["bias_hh_l0"][2 * H:] = b_hn
        self.layers.append(m)
        self.rnn = m
        self.val[h_name] = dict(self.feat((1, H), "h"), state=True)


def lower_chunk_graph(g):
    """The ``rc.nn.Sequential`` of a chunk graph imported with its shapes fixed (module docstring).

    Returns
    -------
    model : ``rc.nn.Sequential`` taking ``(B, N, L)``: ``N`` chunks of each of ``B`` streams
    info : dict: ``data_input``, ``data_output`` (the graph's names), ``state_inputs`` /
        ``state_outputs`` (the stacked state tensors), ``state_rows`` (``{"h": row, "c": row}``:
        the engine's ``(h, c)`` are ``state[row:row + 1]``)
    """
    try:
        return _lower_chunk_graph(g)
    except _Refused as e:       # a front-end that leaves positions? else the refusal of the lowering
        from rnncore.io.onnx_import._lower_positions import lower_positions_graph

        try:                    # that followed more of the graph
            return lower_positions_graph(g)
        except _Refused as e2:
            raise (e2 if getattr(e2, "at", -1) > getattr(e, "at", -1) else e) from None


def _lower_chunk_graph(g):
    from rnncore.nn.layers import Sequential

    lw = _ChunkLower(g)
    data_in = g.input_names[0]
    shape = g.fixed_shapes[data_in]
    first, name = None, data_in
    while True:                                         # the first reader past Cast / Identity
        first = next((s for s in g.steps if name in s.inputs[:1]), None)
        if first is None or first.op not in ("Cast", "Identity"):
            break
        name = first.outputs[0]
    if first is not None and first.op in ("Gemm", "MatMul", "Concat"):    # the features (a decoder alone)
        lw.val[data_in] = lw.feat(tuple(int(d) for d in shape))
    else:
        lw.val[data_in] = {"k": "frames", "shape": (int(shape[1]),), "pad": None}
    for n in g.input_names[1:]:
        shp = g.fixed_shapes.get(n)
        if shp is not None and None not in shp and len(shp) == 2 and shp[0] == 1:
            lw.val[n] = {"k": "srow", "row": n, "shape": (1, int(shp[1])), "F": int(shp[1]), "at": None}
            continue
        if shp is None or None in shp or len(shp) != 3 or shp[1] != 1:
            raise _Refused(f"rc.compile(OnnxGraph): input {n!r} has no fixed shape (state, B, H) with B = 1: "
                           f"import the chunk graph with input_shapes={{{data_in!r}: {tuple(shape)}, {n!r}: "
                           "(rows, 1, H)} (a stacked state), or (1, H) for one state tensor per input")
        lw.val[n] = {"k": "gstate", "name": n, "shape": tuple(shp)}
    _run_nodes(lw, g.steps)
    if lw.rnn is None:
        raise _Refused("rc.compile(OnnxGraph): the chunk graph has no LSTM or GRU (a node or a written-out "
                       "cell)")
    states_in = list(g.input_names[1:])
    stacked = any(lw.val[n]["k"] == "gstate" for n in states_in)
    kinds = ["h", "c"] if type(lw.rnn).__name__ == "LSTM" else ["h"]
    if stacked:
        outs = [o for o in g.output_names if lw.val.get(o, {}).get("k") != "state2"]
        st_out = [o for o in g.output_names if o not in outs]
        ok = len(states_in) == 1 and len(st_out) == 1 and sorted(lw.rows) == ["c", "h"] and \
            g.fixed_shapes[states_in[0]][0] == 2
    else:
        st_by = {}
        for o in g.output_names:
            v = lw.val.get(o, {})
            if v.get("state"):
                st_by.setdefault(v["tag"], o)
        st_out = [st_by.get(k) for k in kinds]
        outs = [o for o in g.output_names if o not in st_out] or [st_out[0]]
        ok = None not in st_out and sorted(lw.rows) == sorted(kinds) and \
            sorted(lw.rows.values()) == sorted(states_in)
    y = lw.val.get(outs[0]) if len(outs) == 1 else None
    if y is not None and y["k"] == "aff" and set(y["terms"]) == {"x"}:      # a head ending in its Gemm
        y = lw.affine_layer(y)
    if not ok or y is None or y["k"] != "feat" or y["at"] != len(lw.layers) or y["tag"] == "c":
        raise _Refused(f"rc.compile(OnnxGraph): outputs {g.output_names} / inputs {g.input_names}: expected "
                       "the chunk input and the state in (one stacked (h, c) tensor, or h and c as tensors "
                       "(1, H) of their own), one per-chunk output of the chain and the new state out")
    if stacked:
        info = {"data_input": data_in, "data_output": outs[0], "state_inputs": states_in,
                "state_outputs": st_out, "state_rows": dict(lw.rows)}
    else:
        info = {"data_input": data_in, "data_output": outs[0], "state_inputs": [lw.rows[k] for k in kinds],
                "state_outputs": st_out, "state_rows": None}
    return Sequential(*lw.layers), info
