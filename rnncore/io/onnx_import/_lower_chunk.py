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
* an ``LSTM`` node over one step (``(1, 1, F)``) whose initial state is two such rows, or an LSTM
  cell written out op by op (:class:`_Cell`): ``Gemm`` / ``MatMul`` (+ bias) of the features and of
  the ``h`` row, added, ``Split`` into four equal gates, ``Sigmoid`` / ``Tanh`` of each,
  ``c' = f * c + i * g``, ``h' = o * tanh(c')`` -> one ``rc.nn.LSTM`` layer (the gates
  re-ordered to i, f, g, o);
* after it, ``Relu`` / ``Sigmoid`` / ``Tanh``, ``Gemm`` / ``MatMul`` and a ``Conv`` with kernel 1
  over one position: the per-step head;
* ``Concat`` on axis 0 of the new ``h`` and ``c`` (each ``(1, 1, H)``) in the rows the input state
  had: the state output.

The engine runs ``X (B', N, L)``: ``N`` chunks of ``B'`` independent streams, the state
``(h, c)`` = ``(state[0:1], state[1:2])`` (rows as in the graph) and the final state likewise
stacked back. Anything else is refused naming the node and what was expected.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._lower import _ACTS, _ints, _Lower
from rnncore.io.onnx_import._values import _Refused

_RESHAPES = ("Squeeze", "Unsqueeze", "Reshape", "Flatten", "ReduceMean")
_FLOAT_TO = (1, 10, 11, 16)


class _Cell:
    """An LSTM cell written out op by op, collected node by node until ``h'`` is computed."""

    def __init__(self, node: str) -> None:
        self.node = node            # the Split that made the gates
        self.x = None               # the feature vector the input product reads
        self.w_ih = self.w_hh = None
        self.b = None
        self.H = 0
        self.act: dict = {}         # gate chunk -> "sig" / "tanh"
        self.roles: dict = {}       # "i", "f", "g", "o" -> gate chunk
        self.c_new = None           # the name of c'


class _ChunkLower(_Lower):
    def __init__(self, g) -> None:
        super().__init__(g)
        self.rows: dict = {}        # "h" / "c" -> row of the stacked state input
        self.state_in: str | None = None
        self.state_out: str | None = None
        self.H = None

    def refuse(self, why: str):
        s = self.step
        raise _Refused(f"rc.compile(OnnxGraph): node {s.name!r} ({s.op}) {why}; the C engine compiles a "
                       "chunk graph as per-frame layers, one LSTM over the chunk (its state rows of one "
                       "stacked input) and a per-step head (rnncore/io/onnx_import/_lower_chunk.py)")

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
        if x is not None and x["k"] == "aff" and set(x["terms"]) == {"x"} and op not in ("Add", "Split"):
            x = ins[0] = self.affine_layer(x)      # a product of the features alone: a per-step Linear
        kinds = {v["k"] for v in ins if v is not None}
        if kinds & {"aff", "gate", "gact", "fc", "ig", "cnew", "tc"} or (
                op in ("Gemm", "MatMul") and x is not None and x["k"] in ("feat", "srow")):
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
            self.refuse(f"computes with a row of the state input ({op}) outside an LSTM")
        if op == "Concat":
            self.concat_state(s, ins)
            return
        if x["k"] != "feat":
            self.refuse("is not an op on the step's features")
        if op in _ACTS:
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
            from rnncore.nn.layers import Linear

            lin = Linear(m.in_channels, m.out_channels, bias="bias" in m.params, dtype=m.dtype.name)
            lin.params["weight"] = np.array(m.params["weight"][:, :, 0])
            if "bias" in m.params:
                lin.params["bias"] = np.array(m.params["bias"])
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

    def claim(self, r: int, kind: str) -> None:
        if self.rows.get(kind, r) != r or any(k != kind and x == r for k, x in self.rows.items()):
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
    def cell_node(self, s, ins: list) -> None:
        op = s.op
        x = ins[0]
        if op in ("Gemm", "MatMul"):
            lin = getattr(s.fn, "module", None)
            if lin is None:
                self.refuse("multiplies by something other than a constant matrix")
            W = np.asarray(lin.params["weight"])
            b = np.asarray(lin.params["bias"]) if "bias" in lin.params else np.zeros(W.shape[0])
            if x["k"] == "srow":
                src = ("h", x["row"])
            elif x["k"] == "feat":
                src = ("x", s.inputs[0])
            else:
                self.refuse("multiplies something other than the features or a state row")
            if x["F"] != W.shape[1] or len(x["shape"]) != 2:
                self.refuse(f"multiplies a tensor of shape {x['shape']} by weights {W.shape[::-1]}")
            self.val[s.outputs[0]] = {"k": "aff", "terms": {src[0]: (src, W)}, "b": b, "src": x,
                                      "O": W.shape[0]}
            return
        if op == "Add":
            u, w = ins[0], ins[1]
            if u is None and w is not None:
                u, w = w, u
            if u is not None and u["k"] == "aff" and (w is None or w["k"] == "aff"):
                if w is None:                                       # a constant bias
                    c = self.const_of(s.inputs[1]) if ins[0] is u else self.const_of(s.inputs[0])
                    if c is None or np.size(c) not in (1, u["O"]):
                        self.refuse("adds to a gate product something other than a bias of its size")
                    self.val[s.outputs[0]] = dict(u, b=u["b"] + np.asarray(c).reshape(-1))
                    return
                if set(u["terms"]) & set(w["terms"]) or u["O"] != w["O"]:
                    self.refuse("adds two products of the same source, or of different sizes")
                self.val[s.outputs[0]] = dict(u, terms={**u["terms"], **w["terms"]}, b=u["b"] + w["b"],
                                              src=u["src"] if "x" in u["terms"] else w["src"])
                return
            kinds = sorted(v["k"] if v else "-" for v in ins)
            if kinds == ["fc", "ig"]:
                fc, ig = (ins[0], ins[1]) if ins[0]["k"] == "fc" else (ins[1], ins[0])
                cell = fc["cell"]
                if ig["cell"] is not cell:
                    self.refuse("adds gate terms of two different cells")
                cell.c_new = s.outputs[0]
                self.val[s.outputs[0]] = {"k": "cnew", "cell": cell}
                return
            self.refuse(f"adds {kinds}: expected f * c + i * g (an LSTM cell's new c)")
        if op == "Split":
            if x["k"] != "aff" or set(x["terms"]) != {"x", "h"}:
                self.refuse("splits gates that are not the sum of a product of the features and one of the "
                            "state's h row (an LSTM cell's gates)")
            axis = int(s.attrs.get("axis", 0)) % len(x["src"]["shape"])
            parts = s.fn([np.zeros(x["src"]["shape"][:-1] + (x["O"],))] +
                         [self.const_of(i) for i in s.inputs[1:]])
            sizes = [np.shape(p)[axis] for p in parts]
            if axis != len(x["src"]["shape"]) - 1 or len(sizes) != 4 or len(set(sizes)) != 1:
                self.refuse(f"splits the gates into {sizes} on axis {axis}: an LSTM cell's are four equal "
                            "parts of the last axis")
            cell = _Cell(s.name)
            cell.H = sizes[0]
            cell.x = x["src"]
            cell.w_ih, cell.w_hh, cell.b = x["terms"]["x"][1], x["terms"]["h"][1], x["b"]
            cell.h_row = x["terms"]["h"][0][1]
            for j, o in enumerate(s.outputs):
                if o:
                    self.val[o] = {"k": "gate", "cell": cell, "j": j}
            return
        if op in ("Sigmoid", "Tanh"):
            if x["k"] == "gate":
                cell, j = x["cell"], x["j"]
                act = "sig" if op == "Sigmoid" else "tanh"
                if cell.act.get(j, act) != act:
                    self.refuse(f"applies {op} to gate part {j}, which the cell also reads through another "
                                "activation")
                cell.act[j] = act
                self.val[s.outputs[0]] = {"k": "gact", "cell": cell, "j": j, "act": act}
                return
            if x["k"] == "cnew" and op == "Tanh":
                self.val[s.outputs[0]] = {"k": "tc", "cell": x["cell"]}
                return
            self.refuse(f"applies {op} to {x['k']}: an LSTM cell has sigmoid(i, f, o), tanh(g) and tanh(c')")
        if op == "Mul":
            u, w = ins[0], ins[1]
            if u is None or w is None:
                self.refuse("multiplies a gate by a constant (not an LSTM cell)")
            pair = sorted([u, w], key=lambda v: v["k"])
            ks = [v["k"] for v in pair]
            if ks == ["gact", "srow"]:
                g, r = pair
                if g["act"] != "sig":
                    self.refuse(f"multiplies the state's row {r['row']} by tanh of gate part {g['j']}: the "
                                "forget gate is a sigmoid")
                if r["F"] != g["cell"].H or len(r["shape"]) != 2:
                    self.refuse(f"multiplies the forget gate ({g['cell'].H} units) by a state row of shape "
                                f"{r['shape']}")
                self.take(g["cell"], "f", g["j"])
                g["cell"].c_row = r["row"]
                self.val[s.outputs[0]] = {"k": "fc", "cell": g["cell"]}
                return
            if ks == ["gact", "gact"]:
                sg = [v for v in pair if v["act"] == "sig"]
                th = [v for v in pair if v["act"] == "tanh"]
                if len(sg) != 1 or len(th) != 1 or sg[0]["cell"] is not th[0]["cell"]:
                    self.refuse(f"multiplies {[v['act'] for v in pair]} gate parts: an LSTM cell multiplies "
                                "sigmoid(i) by tanh(g)")
                self.take(sg[0]["cell"], "i", sg[0]["j"])
                self.take(sg[0]["cell"], "g", th[0]["j"])
                self.val[s.outputs[0]] = {"k": "ig", "cell": sg[0]["cell"]}
                return
            if ks == ["gact", "tc"]:
                g, t = pair
                if g["act"] != "sig" or g["cell"] is not t["cell"]:
                    self.refuse("multiplies tanh(c') by other than a sigmoid gate of the same cell (h' = "
                                "o * tanh(c'))")
                self.take(g["cell"], "o", g["j"])
                self.emit_cell(g["cell"], s.outputs[0])
                return
            self.refuse(f"multiplies {ks}: not a product of an LSTM cell (f * c, i * g, o * tanh(c'))")
        self.refuse(f"reads the parts of an LSTM cell being written out ({sorted(v['k'] for v in ins if v)}) "
                    f"with {op}")

    def take(self, cell: _Cell, role: str, j: int) -> None:
        if cell.roles.get(role, j) != j or any(r != role and k == j for r, k in cell.roles.items()):
            self.refuse(f"uses gate part {j} as {role}, the cell already has roles {cell.roles}")
        cell.roles[role] = j

    def emit_cell(self, cell: _Cell, h_name: str) -> None:
        from rnncore.nn.recurrent import LSTM

        if sorted(cell.roles) != ["f", "g", "i", "o"] or cell.c_new is None:
            self.refuse(f"completes an LSTM cell with gate roles {cell.roles}")
        if self.rnn is not None:
            self.refuse("is a second recurrent layer (one per chunk graph)")
        self.claim(cell.h_row, "h")
        self.claim(cell.c_row, "c")
        H = cell.H
        if cell.w_hh.shape[1] != H:
            self.refuse(f"completes an LSTM cell of {H} units whose recurrent product reads "
                        f"{cell.w_hh.shape[1]} values of the state")
        order = [cell.roles[r] for r in "ifgo"]
        idx = np.concatenate([np.arange(j * H, (j + 1) * H) for j in order])
        x = cell.x
        self.latest(x, "the cell's features")
        m = LSTM(x["F"], H, dtype=self.g.dtype.name)
        m.params["weight_ih_l0"] = np.ascontiguousarray(cell.w_ih[idx], m.params["weight_ih_l0"].dtype)
        m.params["weight_hh_l0"] = np.ascontiguousarray(cell.w_hh[idx], m.params["weight_hh_l0"].dtype)
        m.params["bias_ih_l0"] = np.asarray(cell.b[idx], m.params["bias_ih_l0"].dtype)
        m.params["bias_hh_l0"][:] = 0
        self.layers.append(m)
        self.rnn = m
        self.val[h_name] = self.feat((1, H), "h")
        self.val[cell.c_new] = dict(self.feat((1, H), "c"), at=None)


def lower_chunk_graph(g):
    """The ``rc.nn.Sequential`` of a chunk graph imported with its shapes fixed (module docstring).

    Returns
    -------
    model : ``rc.nn.Sequential`` taking ``(B, N, L)``: ``N`` chunks of each of ``B`` streams
    info : dict: ``data_input``, ``data_output`` (the graph's names), ``state_inputs`` /
        ``state_outputs`` (the stacked state tensors), ``state_rows`` (``{"h": row, "c": row}``:
        the engine's ``(h, c)`` are ``state[row:row + 1]``)
    """
    from rnncore.nn.layers import Sequential

    lw = _ChunkLower(g)
    data_in = g.input_names[0]
    shape = g.fixed_shapes[data_in]
    first = next((s for s in g.steps if data_in in s.inputs[:1]), None)
    if first is not None and first.op in ("Gemm", "MatMul"):     # the chunk's features (a decoder alone)
        lw.val[data_in] = lw.feat(tuple(int(d) for d in shape))
    else:
        lw.val[data_in] = {"k": "frames", "shape": (int(shape[1]),), "pad": None}
    for n in g.input_names[1:]:
        shp = g.fixed_shapes.get(n)
        if shp is None or None in shp or len(shp) != 3 or shp[1] != 1:
            raise _Refused(f"rc.compile(OnnxGraph): input {n!r} has no fixed shape (state, B, H) with B = 1: "
                           f"import the chunk graph with input_shapes={{{data_in!r}: {tuple(shape)}, {n!r}: "
                           "(rows, 1, H)}")
        lw.val[n] = {"k": "gstate", "name": n, "shape": tuple(shp)}
    for s in g.steps:
        lw.node(s)
    if lw.rnn is None:
        raise _Refused("rc.compile(OnnxGraph): the chunk graph has no LSTM (a node or a written-out cell)")
    states_in = [n for n in g.input_names[1:]]
    outs = [o for o in g.output_names if lw.val.get(o, {}).get("k") != "state2"]
    st_out = [o for o in g.output_names if o not in outs]
    y = lw.val.get(outs[0]) if len(outs) == 1 else None
    if len(states_in) != 1 or len(st_out) != 1 or y is None or y["k"] != "feat" or y["at"] != len(lw.layers) \
            or y["tag"] == "c" \
            or sorted(lw.rows) != ["c", "h"] or g.fixed_shapes[states_in[0]][0] != 2:
        raise _Refused(f"rc.compile(OnnxGraph): outputs {g.output_names} / inputs {g.input_names}: expected "
                       "the chunk input and one stacked state (h, c) in, one per-chunk output of the chain "
                       "and the new state out")
    info = {"data_input": data_in, "data_output": outs[0], "state_inputs": states_in, "state_outputs": st_out,
            "state_rows": dict(lw.rows)}
    return Sequential(*lw.layers), info
