"""Import ONNX recurrent models: ``rc.io.from_onnx(path_or_model)``.

Two parts:

1. **The operators.** ``RNN``, ``GRU`` and ``LSTM`` nodes with every attribute of the
   ONNX spec: ``direction`` (forward / reverse / bidirectional), ``layout`` 0 and 1,
   ``activations`` with ``activation_alpha`` / ``activation_beta``, ``clip``,
   ``linear_before_reset``, ``input_forget``, peepholes ``P``, ``sequence_lens``,
   ``initial_h`` / ``initial_c`` and the optional outputs. Weights are converted to
   PyTorch's layout: ONNX gate order GRU ``z, r, h`` -> ``r, z, n``, LSTM ``i, o, f, c`` ->
   ``i, f, g, o``; ``B = [Wb | Rb]`` -> ``bias_ih``, ``bias_hh``; ``P = [p_i, p_o, p_f]``
   -> rows ``p_i, p_f, p_o``. ``linear_before_reset=0`` (the ONNX default) is the GRU's
   ``reset_after=False`` form, ``1`` is PyTorch's.

2. **The graph around them.** The importer runs the graph *symbolically*: each value is
   tracked as "the model's data, with these named axes (batch, time, feature, direction,
   hidden), after these layers", "a shape vector", "zeros", "the final states of node k",
   or a constant. So the ``Shape / Gather / Unsqueeze / Concat / ConstantOfShape / Slice``
   nodes that ``torch.onnx.export`` writes to build zero initial states, the ``Transpose`` /
   ``Squeeze`` / ``Reshape`` nodes that move the direction axis into the features, the
   ``Gather`` that picks the last step, an embedding ``Gather`` and a trailing ``Gemm`` or
   ``MatMul`` + ``Add`` head are understood for what they do, whatever order they come in,
   and anything else is refused with the node's name and op type — never guessed.

The result is an rnncore reference model (``rc.nn.GRU`` ... or ``rc.nn.Sequential``) that
reads batch-major ``(B, T, F)`` like every rnncore model. ``model.onnx_io`` records how the
ONNX graph's inputs and outputs map onto it, and :func:`onnx_run` runs the model with ONNX
feeds and returns ONNX-shaped outputs (used by the conformance tests).

Refused on purpose: a non-zero *constant* initial state (rnncore layers have no learned
initial state; feed it as ``state``), a constant ``sequence_lens``, ``sequence_lens`` on
some recurrent nodes but not others, weights that are graph inputs rather than
initializers (use :func:`weights_to_initializers`), and element-wise ops on the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnncore.io import _build
from rnncore.nn.module import Module

__all__ = ["from_onnx", "onnx_run", "weights_to_initializers", "OnnxSignature"]

_GATE_PERM = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 2, 3, 1]}   # ONNX block -> torch position


# -- symbolic values ------------------------------------------------------------------------
@dataclass
class _Seq:
    """The model's data: named axes (sizes where known) after the layers ``pipe``."""
    axes: tuple
    sizes: tuple
    pipe: tuple
    integer: bool = False


@dataclass
class _Sym:
    """An integer vector (or scalar) whose items are ints or axis labels ('X0', 'T', ...)."""
    items: list
    scalar: bool = False


@dataclass
class _Zeros:
    pass


@dataclass
class _Input:
    name: str
    shape: tuple
    integer: bool


@dataclass
class _StateIn:
    """Rows ``rows`` (along ``axis``) of a graph input that feeds initial states."""
    name: str
    rows: list
    axis: int


@dataclass
class _Final:
    """Final states: ``entries[i] = (node, direction, 'h' | 'c')`` stacked on axis 'S'."""
    entries: list
    axes: tuple


@dataclass
class _FinalCat:
    """Final states of single directions concatenated along the feature axis: (B, sum H)."""
    entries: list


@dataclass
class OnnxSignature:
    """How an imported model's forward maps onto the ONNX graph's inputs and outputs."""
    input: str
    input_layout: str                        # "BT" or "TB"
    lengths: str | None = None
    states: list = field(default_factory=list)     # (input name, node, kind, axes, rows or None)
    outputs: list = field(default_factory=list)    # (name, "y", axes) / (name, "state", entries, axes)
    node_rows: dict = field(default_factory=dict)  # node -> (recurrent module index, layer)
    directions: dict = field(default_factory=dict)  # node -> D
    stripped: list = field(default_factory=list)   # final activations dropped (strip_final_activation)


class _Refused(ValueError):
    pass


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


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
        for t in g.initializer:
            self.vals[t.name] = numpy_helper.to_array(t)
        for i in g.input:
            if i.name in self.vals:
                continue
            tt = i.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            integer = tt.elem_type in (6, 7, 2, 3, 4, 5, 12, 13)   # int32/int64/uint8/int8/...
            self.vals[i.name] = _Input(i.name, shape, integer)
        self.layers: list[dict] = []
        self.main: str | None = None
        self.alias: dict = {}
        self.lengths: str | None = None
        self.lengths_nodes: list = []
        self.states: list = []
        self.rnn_nodes: list = []        # layer index of each recurrent node, in order
        self.node_pipe: dict = {}        # node index -> pipe of its Y
        self.node_D: dict = {}

    # -- helpers ---------------------------------------------------------------------------
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
        if not isinstance(v, _Seq):
            self.refuse(node, f"expected the model's data here, got {type(v).__name__.strip('_')}")
        return v

    def const(self, v, node, what):
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, np.generic):
            return np.asarray(v)
        self.refuse(node, f"{what} must be a constant (initializer), got {type(v).__name__.strip('_')}")

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

    # -- the recurrent operators -----------------------------------------------------------
    def op_recurrent(self, node, ins, a):
        mode = node.op_type
        X = self.data(ins[0], node)
        if len(X.axes) != 3 or X.integer:
            self.refuse(node, f"X must be (T, B, F) or (B, T, F) data, got axes {X.axes}")
        layout = int(a.get("layout", 0))
        self.resolve_time(X, node, ("T", "B") if layout == 0 else ("B", "T"))
        W = self.const(ins[1], node, "W").astype(np.float64)
        R = self.const(ins[2], node, "R").astype(np.float64)
        G = {"RNN": 1, "GRU": 3, "LSTM": 4}[mode]
        if W.ndim != 3 or R.ndim != 3:
            self.refuse(node, f"W {W.shape} and R {R.shape} must have 3 axes (directions, gates, ...)")
        D, GH, I = W.shape
        H = int(a.get("hidden_size", R.shape[-1]))
        direction = a.get("direction", "forward")
        if {"forward": 1, "reverse": 1, "bidirectional": 2}.get(direction) != D or GH != G * H:
            self.refuse(node, f"W {W.shape} does not fit direction={direction!r}, hidden_size={H}")
        if R.shape != (D, G * H, H):
            self.refuse(node, f"R has shape {R.shape}, expected {(D, G * H, H)}")
        if X.sizes[2] is not None and X.sizes[2] != I:
            self.refuse(node, f"W expects {I} input features, the data has {X.sizes[2]}")
        Bv = ins[3] if len(ins) > 3 and ins[3] is not None else np.zeros((D, 2 * G * H))
        Bv = self.const(Bv, node, "B").astype(np.float64)
        if Bv.shape != (D, 2 * G * H):
            self.refuse(node, f"B has shape {Bv.shape}, expected {(D, 2 * G * H)}")
        P = None
        if mode == "LSTM" and len(ins) > 7 and ins[7] is not None:
            P = self.const(ins[7], node, "P").astype(np.float64)
            if P.shape != (D, 3 * H):
                self.refuse(node, f"P has shape {P.shape}, expected {(D, 3 * H)}")
        # _GATE_PERM lists, for each torch gate position, the ONNX block it comes from
        perm = np.concatenate([np.arange(H) + H * k for k in _GATE_PERM[mode]])
        sd = {}
        for d in range(D):
            sfx = "_reverse" if (d == 1) else ""
            sd[f"weight_ih_l0{sfx}"] = W[d][perm]
            sd[f"weight_hh_l0{sfx}"] = R[d][perm]
            sd[f"bias_ih_l0{sfx}"] = Bv[d, :G * H][perm]
            sd[f"bias_hh_l0{sfx}"] = Bv[d, G * H:][perm]
            if P is not None:
                p_i, p_o, p_f = P[d].reshape(3, H)
                sd[f"peephole_l0{sfx}"] = np.stack([p_i, p_f, p_o])
        acts = a.get("activations")
        if acts is not None:
            alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
            from rnncore.nn.extended import ACTIVATIONS

            spec = []
            for name in acts:
                n_par = ACTIVATIONS.get(name.lower(), (None,))[0]
                if n_par is None:
                    self.refuse(node, f"unknown activation {name!r}")
                al = alphas.pop(0) if n_par >= 1 and alphas else None
                be = betas.pop(0) if n_par >= 2 and betas else None
                spec.append((name, al, be))
            acts = spec
        layer = {"kind": "rnn", "mode": mode, "sd": sd, "input_size": I, "hidden_size": H,
                 "bidirectional": D == 2, "reverse": direction == "reverse",
                 "reset_after": bool(a.get("linear_before_reset", 0)), "activations": acts,
                 "clip": a.get("clip"), "input_forget": bool(a.get("input_forget", 0)),
                 "node": len(self.rnn_nodes)}
        n = len(self.rnn_nodes)
        lens = ins[4] if len(ins) > 4 else None
        if lens is not None:
            if not isinstance(lens, _Input):
                self.refuse(node, "sequence_lens must be a graph input (a constant one is refused)")
            if self.lengths not in (None, lens.name):
                self.refuse(node, "different sequence_lens inputs on different nodes")
            self.lengths = lens.name
        self.lengths_nodes.append(lens is not None)
        for k, kind in ((5, "h"), (6, "c")):
            v = ins[k] if len(ins) > k else None
            if v is None or isinstance(v, _Zeros):
                continue
            if isinstance(v, np.ndarray):
                if v.any():
                    self.refuse(node, f"a constant non-zero initial_{kind} (feed it as an input instead)")
                continue
            axes = ("S", "B", "H") if layout == 0 else ("B", "S", "H")
            if isinstance(v, _StateIn):
                if v.axis != axes.index("S"):
                    self.refuse(node, f"initial_{kind} sliced along axis {v.axis}, not the direction axis")
                self.states.append((v.name, n, kind, axes, v.rows))
                continue
            if not isinstance(v, _Input):
                self.refuse(node, f"initial_{kind} must be zeros, absent or a graph input (or rows of one)")
            self.states.append((v.name, n, kind, axes, None))
        pipe = self.add_layer(X.pipe, layer)
        self.rnn_nodes.append(len(self.layers) - 1)
        self.node_pipe[n] = pipe
        self.node_D[n] = D
        ax = ("T", "D", "B", "H") if layout == 0 else ("B", "T", "D", "H")
        sz = (None, D, None, H) if layout == 0 else (None, None, D, H)
        fax = ("S", "B", "H") if layout == 0 else ("B", "S", "H")
        outs = [_Seq(ax, sz, pipe),
                _Final([(n, d, "h") for d in range(D)], fax),
                _Final([(n, d, "c") for d in range(D)], fax)]
        return outs[:len(node.output)]

    op_RNN = op_GRU = op_LSTM = op_recurrent

    # -- data movement ---------------------------------------------------------------------
    def op_Transpose(self, node, ins, a):
        v = ins[0]
        perm = a.get("perm")
        if isinstance(v, np.ndarray):
            return [np.transpose(v, perm)]
        if isinstance(v, _Final):
            return [_Final(v.entries, tuple(v.axes[p] for p in perm))]
        s = self.data(v, node)
        perm = perm if perm is not None else list(range(len(s.axes)))[::-1]
        return [_Seq(tuple(s.axes[p] for p in perm), tuple(s.sizes[p] for p in perm), s.pipe, s.integer)]

    def _axes_arg(self, node, ins, a):
        if "axes" in a:
            return list(a["axes"])
        if len(ins) > 1 and ins[1] is not None:
            return [int(x) for x in np.atleast_1d(self.const(ins[1], node, "axes"))]
        return None

    def op_Squeeze(self, node, ins, a):
        v, axes = ins[0], self._axes_arg(node, ins, a)
        if isinstance(v, np.ndarray):
            return [np.squeeze(v, axis=None if axes is None else tuple(axes))]
        if isinstance(v, _Sym):
            return [_Sym(v.items, scalar=True)]
        if isinstance(v, _Zeros):
            return [v]
        if isinstance(v, _Final):
            if axes is None or len(axes) != 1 or v.axes[axes[0] % len(v.axes)] != "S" or len(v.entries) != 1:
                self.refuse(node, "squeeze of final states other than a single direction's stack axis")
            return [_FinalCat(list(v.entries))]
        s = self.data(v, node)
        if axes is None:
            axes = [i for i, z in enumerate(s.sizes) if z == 1]
        axes = sorted(x % len(s.axes) for x in axes)
        keep = [i for i in range(len(s.axes)) if i not in axes]
        for i in axes:
            if not (s.axes[i] in ("D", "T1") and s.sizes[i] == 1):
                self.refuse(node, f"squeezes axis {self.lab(s.axes[i])!r} of the data")
        new_axes = tuple("F" if s.axes[i] == "H" else s.axes[i] for i in keep)
        return [_Seq(new_axes, tuple(s.sizes[i] for i in keep), s.pipe)]

    def op_Unsqueeze(self, node, ins, a):
        v, axes = ins[0], self._axes_arg(node, ins, a)
        if isinstance(v, np.ndarray):
            out = v
            for ax in sorted(axes):
                out = np.expand_dims(out, ax)
            return [out]
        if isinstance(v, _Sym) and v.scalar and axes in ([0], [-1]):
            return [_Sym(v.items, scalar=False)]
        if isinstance(v, _FinalCat) and len(v.entries) == 1 and axes == [0]:
            return [_Final(v.entries, ("S", "B", "H"))]
        self.refuse(node, "unsqueeze of the model's data")

    def op_Reshape(self, node, ins, a):
        v, shape = _known(ins[0]), _known(ins[1])
        if isinstance(v, np.ndarray) and isinstance(shape, np.ndarray):
            return [v.reshape(shape)]
        if isinstance(v, _Sym) and isinstance(shape, np.ndarray) and shape.size <= 1:
            return [_Sym(v.items, scalar=shape.size == 0)]
        s = self.data(v, node)
        items = list(shape.tolist()) if isinstance(shape, np.ndarray) else (
            shape.items if isinstance(shape, _Sym) else self.refuse(node, "reshape to a computed shape"))
        n = len(s.axes)
        # only: merge the trailing (D, H) axes into one feature axis. The leading items may be 0
        # (copy), the axis' label (from Shape), its size, or one -1; a positive number on a batch
        # or time axis is a size the exporter specialised to (the product still fixes the layout).
        if len(items) == n - 1 and tuple(s.axes[-2:]) == ("D", "H"):
            F = s.sizes[-2] * s.sizes[-1]
            lead = items[:-1]
            ok = items[-1] == F or (items[-1] == -1 and -1 not in lead)
            ok = ok and sum(1 for it in lead if it == -1) <= 1
            for i, it in enumerate(lead):
                if isinstance(it, str):
                    ok = ok and self.lab(it) == self.lab(s.axes[i])
                elif s.sizes[i] is not None:
                    ok = ok and it in (0, -1, s.sizes[i])
                else:
                    ok = ok and (it in (0, -1) or it > 0)
            if ok:
                return [_Seq(s.axes[:-2] + ("F",), s.sizes[:-2] + (F,), s.pipe)]
        self.refuse(node, f"reshape of data with axes {tuple(self.lab(x) for x in s.axes)} to {items}")

    def op_Gather(self, node, ins, a):
        data, idx = ins[0], ins[1]
        axis = int(a.get("axis", 0))
        if isinstance(data, np.ndarray) and isinstance(idx, np.ndarray):
            return [np.take(data, idx, axis=axis)]
        if isinstance(data, _Sym) and isinstance(idx, np.ndarray):
            picked = [data.items[int(i)] for i in np.atleast_1d(idx)]
            return [_Sym(picked, scalar=idx.ndim == 0)]
        if isinstance(data, np.ndarray):                       # embedding lookup
            ids = self.data(idx, node)
            if not ids.integer or axis != 0 or data.ndim != 2:
                self.refuse(node, "only an embedding lookup (Gather of a (V, E) table by token ids)")
            pipe = self.add_layer(ids.pipe, {"kind": "embedding", "weight": data})
            return [_Seq(ids.axes + ("F",), ids.sizes + (data.shape[1],), pipe)]
        if isinstance(data, _Final):
            if not isinstance(idx, np.ndarray) or data.axes[axis % 3] != "S":
                self.refuse(node, "gather of final states other than along the stack axis")
            picked = [data.entries[int(i)] for i in np.atleast_1d(idx)]
            if idx.ndim == 0:
                return [_FinalCat(picked)]
            return [_Final(picked, data.axes)]
        s = self.data(data, node)
        idx = self.const(idx, node, "the index")
        if idx.ndim != 0 or self.lab(s.axes[axis]) != "T" or int(idx) != -1 or len(s.axes) != 3:
            self.refuse(node, f"gather of index {idx.tolist()} on data axis {self.lab(s.axes[axis])!r} "
                              "(only the last time step, index -1, is understood)")
        layer = {"kind": "pool", "pool": "last", "bidirectional": False}
        keep = [i for i in range(3) if i != axis % 3]
        return [_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep),
                     self.add_layer(s.pipe, layer))]

    def op_Shape(self, node, ins, a):
        v = ins[0]
        if isinstance(v, np.ndarray):
            items = list(v.shape)
        else:
            s = self.data(v, node)
            items = [s.sizes[i] if s.sizes[i] is not None else s.axes[i] for i in range(len(s.axes))]
        start, end = a.get("start", 0), a.get("end", None)
        items = items[start:end]
        if all(isinstance(i, int) for i in items):
            return [np.array(items, np.int64)]
        return [_Sym(items)]

    def op_Concat(self, node, ins, a):
        axis = int(a["axis"])
        if all(isinstance(v, np.ndarray) for v in ins):
            return [np.concatenate(ins, axis=axis)]
        if all(isinstance(v, _Sym | np.ndarray) for v in ins):
            items = []
            for v in ins:
                items += v.items if isinstance(v, _Sym) else [int(x) for x in np.atleast_1d(v)]
            return [_Sym(items)]
        if all(isinstance(v, _Zeros) for v in ins):
            return [_Zeros()]
        if all(isinstance(v, _Final) for v in ins):
            if len({v.axes for v in ins}) != 1 or ins[0].axes[axis % 3] != "S":
                self.refuse(node, "concat of final states other than along the stack axis")
            return [_Final([e for v in ins for e in v.entries], ins[0].axes)]
        if all(isinstance(v, _FinalCat) for v in ins) and axis in (1, -1):
            return [_FinalCat([e for v in ins for e in v.entries])]
        self.refuse(node, "concat of the model's data")

    def op_Slice(self, node, ins, a):
        v = ins[0]
        if isinstance(v, _Zeros):
            return [v]
        if self.opset < 10:
            starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
        else:
            starts, ends = (self.const(x, node, "starts/ends").tolist() for x in ins[1:3])
            opt = [self.const(ins[k], node, "axes/steps").tolist() if len(ins) > k and ins[k] is not None
                   else None for k in (3, 4)]
            axes, steps = opt
        if isinstance(v, _Sym):
            return [_Sym(v.items[slice(starts[0], ends[0], steps[0] if steps else 1)])]
        if isinstance(v, np.ndarray):
            sl = [slice(None)] * v.ndim
            for i, ax in enumerate(axes if axes is not None else range(len(starts))):
                sl[ax] = slice(starts[i], ends[i], steps[i] if steps else 1)
            return [v[tuple(sl)]]
        if isinstance(v, _Input) and v.name != self.main and not v.integer and len(v.shape) == 3:
            # rows of an initial-state input (torch slices h0 per layer)
            ax = axes if axes is not None else list(range(len(starts)))
            n_rows = v.shape[ax[0]] if len(ax) == 1 else None
            if n_rows is None or (steps and steps[0] != 1):
                self.refuse(node, f"slice of graph input {v.name!r} other than a block of rows of one axis")
            return [_StateIn(v.name, list(range(n_rows))[slice(starts[0], ends[0])], ax[0] % 3)]
        if isinstance(v, _Final):
            ax = axes if axes is not None else list(range(len(starts)))
            if len(ax) != 1 or v.axes[ax[0] % 3] != "S":
                self.refuse(node, "slice of final states other than along the stack axis")
            return [_Final(v.entries[slice(starts[0], ends[0], steps[0] if steps else 1)], v.axes)]
        s = self.data(v, node)
        ax = [x % len(s.axes) for x in (axes if axes is not None else range(len(starts)))]
        if (len(ax) == 1 and len(s.axes) == 3 and self.lab(s.axes[ax[0]]) == "T" and starts[0] == -1
                and ends[0] >= 2**31 - 1 and (not steps or steps[0] == 1)):
            # x[:, -1:] (older opsets write y[:, -1] as this Slice + Squeeze): the last step, kept
            # as an axis of size 1 ('T1') until the Squeeze
            layer = {"kind": "pool", "pool": "last", "bidirectional": False}
            axes_ = tuple("T1" if i == ax[0] else a for i, a in enumerate(s.axes))
            sizes = tuple(1 if i == ax[0] else z for i, z in enumerate(s.sizes))
            return [_Seq(axes_, sizes, self.add_layer(s.pipe, layer))]
        self.refuse(node, "slice of the model's data other than its last time step")

    def op_ConstantOfShape(self, node, ins, a):
        from onnx import numpy_helper

        value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1)
        if isinstance(ins[0], np.ndarray):
            return [np.full(ins[0].astype(np.int64), value.reshape(-1)[0], dtype=value.dtype)]
        if value.any():
            self.refuse(node, "a non-zero ConstantOfShape with a data-dependent shape")
        return [_Zeros()]

    def op_Expand(self, node, ins, a):
        if isinstance(ins[0], np.ndarray) and not ins[0].any():
            return [_Zeros()] if not isinstance(ins[1], np.ndarray) else [np.zeros(ins[1].astype(int))]
        self.refuse(node, "expand of anything but zeros")

    def op_Constant(self, node, ins, a):
        from onnx import numpy_helper

        if "value" in a:
            return [numpy_helper.to_array(a["value"])]
        for k in ("value_float", "value_int"):
            if k in a:
                return [np.array(a[k])]
        for k in ("value_floats", "value_ints"):
            if k in a:
                return [np.array(a[k])]
        self.refuse(node, "constant of an unsupported kind")

    def op_Identity(self, node, ins, a):
        return [ins[0]]

    def op_Dropout(self, node, ins, a):
        return [ins[0], None][:len(node.output)]

    def op_Cast(self, node, ins, a):
        v = ins[0]
        if isinstance(v, np.ndarray):
            from onnx import helper

            return [v.astype(helper.tensor_dtype_to_np_dtype(a["to"]))]
        if isinstance(v, _Sym | _Zeros):
            return [v]
        s = self.data(v, node)
        if a["to"] not in (1, 11, 10):       # float, double, float16
            self.refuse(node, "cast of the data to a non-float type")
        return [s]

    # -- heads -------------------------------------------------------------------------------
    def _linear(self, node, s, weight, bias):
        if s.sizes[-1] is not None and s.sizes[-1] != weight.shape[1]:
            self.refuse(node, f"weight {weight.shape} does not fit {s.sizes[-1]} features")
        pipe = self.add_layer(s.pipe, {"kind": "linear", "weight": weight, "bias": bias})
        return _Seq(s.axes, s.sizes[:-1] + (weight.shape[0],), pipe)

    def op_Gemm(self, node, ins, a):
        s = self.data(ins[0], node)
        if a.get("transA", 0):
            self.refuse(node, "transA=1")
        Bm = self.const(ins[1], node, "B").astype(np.float64) * float(a.get("alpha", 1.0))
        weight = Bm if a.get("transB", 0) else Bm.T
        bias = None
        if len(ins) > 2 and ins[2] is not None:
            C = self.const(ins[2], node, "C").astype(np.float64) * float(a.get("beta", 1.0))
            if C.size not in (1, weight.shape[0]) or (C.ndim == 2 and C.shape[0] != 1):
                self.refuse(node, f"bias C of shape {C.shape} is not per output")
            bias = np.broadcast_to(C.reshape(-1), (weight.shape[0],)).copy()
        return [self._linear(node, s, weight, bias)]

    def op_MatMul(self, node, ins, a):
        s = self.data(ins[0], node)
        Wm = self.const(ins[1], node, "the second operand").astype(np.float64)
        if Wm.ndim != 2:
            self.refuse(node, "matmul with a weight that is not a matrix")
        return [self._linear(node, s, Wm.T, None)]

    def op_Add(self, node, ins, a):
        if all(isinstance(v, np.ndarray) for v in ins):
            return [ins[0] + ins[1]]
        if isinstance(ins[0], np.ndarray):
            ins = ins[::-1]
        s, b = self.data(ins[0], node), self.const(ins[1], node, "the addend")
        last = self.layers[s.pipe[-1]] if s.pipe else None
        if last is None or last["kind"] != "linear" or last["bias"] is not None:
            self.refuse(node, "add that is not the bias of a MatMul")
        b = np.asarray(b, np.float64)
        if b.size not in (1, last["weight"].shape[0]):
            self.refuse(node, f"bias of shape {b.shape} is not per output")
        layer = dict(last, bias=np.broadcast_to(b.reshape(-1), (last["weight"].shape[0],)).copy())
        return [_Seq(s.axes, s.sizes, self.add_layer(s.pipe[:-1], layer))]

    def op_final_activation(self, node, ins, a):
        s = self.data(ins[0], node)
        outputs = {o.name for o in self.g.output}
        axis = int(a.get("axis", -1))
        last_axis = node.op_type == "Sigmoid" or axis in (-1, len(s.axes) - 1)
        head = s.pipe and self.layers[s.pipe[-1]]["kind"] == "linear"
        if not (self.strip and node.output[0] in outputs and last_axis and head):
            self.refuse(node, "activation on the data (a final softmax/sigmoid after the head can be "
                              "dropped with strip_final_activation=True)")
        self.stripped.append(node.op_type)
        return [s]

    op_Softmax = op_LogSoftmax = op_Sigmoid = op_final_activation

    def _const_binary(self, node, ins, fn):
        ins = [_known(v) for v in ins]
        if all(isinstance(v, np.ndarray) for v in ins):
            return [fn(ins[0], ins[1])]
        self.refuse(node, "element-wise arithmetic on the model's data is not supported")

    def op_Sub(self, node, ins, a):
        return self._const_binary(node, ins, np.subtract)

    def op_Mul(self, node, ins, a):
        return self._const_binary(node, ins, np.multiply)

    def op_Div(self, node, ins, a):
        return self._const_binary(node, ins, lambda x, y: x // y if x.dtype.kind in "iu" else x / y)

    def op_ReduceMean(self, node, ins, a):
        s = self.data(ins[0], node)
        axes = self._axes_arg(node, ins, a)
        if (axes is None or len(axes) != 1 or self.lab(s.axes[axes[0] % len(s.axes)]) != "T"
                or a.get("keepdims", 1) or len(s.axes) != 3):
            self.refuse(node, "ReduceMean other than the mean over time (keepdims=0)")
        keep = [i for i in range(3) if i != axes[0] % 3]
        return [_Seq(tuple(s.axes[i] for i in keep), tuple(s.sizes[i] for i in keep),
                     self.add_layer(s.pipe, {"kind": "pool", "pool": "mean", "bidirectional": False}))]

    # -- driver ------------------------------------------------------------------------------
    def run(self):
        for node in self.g.node:
            if node.domain not in ("", "ai.onnx"):
                self.refuse(node, f"operator domain {node.domain!r}")
            fn = getattr(self, f"op_{node.op_type}", None)
            if fn is None:
                self.refuse(node, "operator not supported by the rnncore importer")
            ins = [self.vals[i] if i else None for i in node.input]
            for name, i in zip(node.input, ins, strict=True):
                if name and i is None:
                    self.refuse(node, f"input {name!r} is not available")
            outs = fn(node, ins, _attrs(node))
            for name, v in zip(node.output, outs, strict=False):
                if name:
                    self.vals[name] = v
        if any(self.lengths_nodes) and not all(self.lengths_nodes):
            raise _Refused("from_onnx: sequence_lens feeds some recurrent nodes but not others")


def _known(v):
    """A shape vector whose items are all known becomes a constant."""
    if isinstance(v, _Sym) and all(isinstance(i, int | np.integer) for i in v.items):
        arr = np.array(v.items, np.int64)
        return arr.reshape(()) if v.scalar else arr
    return v


def _load(path_or_model):
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if not isinstance(path_or_model, str | bytes) and not hasattr(path_or_model, "__fspath__"):
        raise TypeError(f"from_onnx: expected a path, the model's bytes or an onnx.ModelProto, "
                        f"got {type(path_or_model).__name__}")
    try:
        if isinstance(path_or_model, bytes):
            return onnx.load_from_string(path_or_model)
        return onnx.load(str(path_or_model))
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


def from_onnx(path_or_model, *, dtype: str = "float64", strip_final_activation: bool = False) -> Module:
    """Convert an ONNX model with RNN/GRU/LSTM nodes into an rnncore reference model.

    Parameters
    ----------
    path_or_model : a ``.onnx`` path, the serialized bytes or an ``onnx.ModelProto``
    dtype : "float64" or "float32"
    strip_final_activation : accept a ``Softmax`` / ``LogSoftmax`` / ``Sigmoid`` on the last
        axis right after the head, as the graph's output, and drop it (the model then returns
        the head's logits; ``model.onnx_io.stripped`` names the dropped op)

    Returns
    -------
    ``rc.nn.RNN/GRU/LSTM``, :class:`rnncore.nn.extended.ExtendedRecurrent` (for ONNX-only
    options) or ``rc.nn.Sequential``; it reads ``x (B, T, F)``. ``model.onnx_io`` is an
    :class:`OnnxSignature` describing how the ONNX inputs and outputs map onto ``forward``.

    Raises
    ------
    ValueError naming the node (and op type) the importer does not understand.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ImportError("from_onnx needs the 'onnx' package: pip install onnx") from e
    imp = _Importer(_load(path_or_model), dtype, strip_final_activation)
    imp.run()
    g = imp.g
    outputs = [o.name for o in g.output]
    # the model is the longest chain of layers that reaches an output
    pipes = []
    for name in outputs:
        v = imp.vals[name]
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
        v = imp.vals[name]
        if isinstance(v, _Seq):
            if v.pipe != pipe:
                raise _Refused(f"from_onnx: output {name!r} is an intermediate result of the model")
            sig.outputs.append((name, "y", tuple(imp.lab(x) for x in v.axes)))
        elif isinstance(v, _Final):
            sig.outputs.append((name, "state", list(v.entries), v.axes))
        else:
            sig.outputs.append((name, "state", list(v.entries), ("B", "H")))
    model.onnx_io = sig
    return model


def onnx_run(model: Module, feeds: dict) -> dict:
    """Run an imported model with the ONNX graph's input names and layouts.

    Returns ``{output name: array}`` shaped as the ONNX graph's outputs.
    """
    sig: OnnxSignature = model.onnx_io
    x = np.asarray(feeds[sig.input])
    if sig.input_layout == "TB":
        x = np.swapaxes(x, 0, 1)
    if x.dtype.kind == "f":
        x = x.astype(_dtype_of(model))
    B = x.shape[0]
    lengths = feeds.get(sig.lengths) if sig.lengths is not None else None
    lengths = None if lengths is None else np.asarray(lengths)
    recs = [m for m in (model if hasattr(model, "recurrent_modules") else [model])
            if getattr(m, "is_recurrent", False)]
    init = [None] * len(recs)
    for name, n, kind, axes, rows in sig.states:
        if feeds.get(name) is None:
            continue
        r, j = sig.node_rows[n]
        m, D = recs[r], sig.directions[n]
        v = np.asarray(feeds[name], _dtype_of(model))
        v = np.transpose(v, [axes.index(a) for a in ("S", "B", "H")])        # (S, B, H)
        if rows is not None:
            v = v[rows]                                                        # (D, B, H)
        if init[r] is None:
            L = m.num_layers * (2 if m.bidirectional else 1)
            P = getattr(m, "proj_size", 0) or m.hidden_size
            dt = _dtype_of(model)
            init[r] = [np.zeros((L, B, P), dt)]
            if _mode_of(m) == "LSTM":
                init[r].append(np.zeros((L, B, m.hidden_size), dt))
        init[r][0 if kind == "h" else 1][j * D:(j + 1) * D] = v
    init = [None if s is None else (tuple(s) if len(s) == 2 else s[0]) for s in init]
    if len(recs) == 1 and recs[0] is model:
        y, h = model.forward(x, state=init[0], lengths=lengths)
        finals = [h]
    else:
        y = model.forward(x, lengths=lengths, state=init)
        finals = model.final_states
    out = {}
    for item in sig.outputs:
        name, kind = item[0], item[1]
        if kind == "y":
            axes = item[2]
            if "D" in axes:
                D = sig.directions[max(sig.node_rows, key=sig.node_rows.get)]
                yy = y.reshape(y.shape[0], y.shape[1], D, -1)
                canon = ("B", "T", "D", "H")
            elif "T1" in axes:                    # the last step kept as an axis of size 1
                yy, canon = y[:, None], ("B", "T1", "F")
            elif len(axes) == 3:
                yy, canon = y, ("B", "T", "F")
            else:
                yy, canon = y, ("B", "F")
            out[name] = np.transpose(yy, [canon.index(a) for a in axes])
        else:
            entries, axes = item[2], item[3]
            rows = []
            for n, d, hc in entries:
                r, j = sig.node_rows[n]
                f = finals[r]
                f = (f[0] if hc == "h" else f[1]) if isinstance(f, tuple) else f
                rows.append(f[j * sig.directions[n] + d])
            st = np.stack(rows)                                             # (S, B, H)
            if axes == ("B", "H"):
                out[name] = np.concatenate(rows, axis=-1)
            else:
                out[name] = np.transpose(st, [("S", "B", "H").index(a) for a in axes])
    return out


def _dtype_of(model: Module):
    return next(v for _, v in model.named_parameters()).dtype


def _mode_of(m: Module) -> str:
    return getattr(m, "mode", type(m).__name__).upper()
