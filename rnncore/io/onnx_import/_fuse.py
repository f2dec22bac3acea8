"""Element-wise sub-graphs of an :class:`OnnxGraph` recognised as one per-step layer, for the lowering.

Exporters write some per-step layers as several nodes: PyTorch's ``nn.GELU()`` as
``Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5`` (``approximate='tanh'``: ``Pow``/``Mul``,
``Tanh``, ... in some order), ``nn.SiLU`` as ``Mul(x, Sigmoid(x))``, ``nn.LayerNorm`` below opset 17
as ``ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div [/ Mul / Add]``. :func:`fuse_steps`
returns the graph's steps with each such sub-graph replaced by one step (the last node's name and
output, the sub-graph's input):

* **element-wise functions.** A sub-graph of element-wise nodes (unary ops and binary ops whose
  other operand is a one-element constant) that reads one tensor ``x``, whose inner results are read
  by its own nodes only, is evaluated on a probe (``x`` from -8 to 8 and random values) and compared
  with the functions below, within ``rtol = 1e-6`` (the exporters' float32 constants, such as
  ``0.70710677`` for ``1/sqrt 2``, are exact to about 1e-8; two different functions of this list
  differ by far more on the probe):

  * ``Gelu``: ``x/2 (1 + erf(x / sqrt 2))`` -> ``rc.nn.GELU()``;
  * ``Gelu`` (tanh): ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` -> ``rc.nn.GELU("tanh")``;
  * ``SiLU``: ``x sigmoid(x)`` -> ``rc.nn.SiLU()``;
  * ``HardSwish``: ``x clip(x/6 + 1/2, 0, 1)`` (``x HardSigmoid(x)`` below opset 14) ->
    ``rc.nn.Hardswish()``;
  * ``Softsign``: ``x / (1 + |x|)`` (PyTorch's ``Abs``, ``Add``, ``Div``) -> ``rc.nn.Softsign()``;
  * ``Softplus``: ``Where(x > 20, x, Softplus(x))`` (PyTorch's dynamo export of ``nn.Softplus()``)
    -> ``rc.nn.Softplus(1, 20)``.

  Anything else is left as its nodes (the lowering then names the first one it does not follow).

* **LayerNorm.** ``m = ReduceMean(x, [-1])``, ``d = Sub(x, m)``, ``Pow(d, 2)`` (or ``Mul(d, d)``),
  ``v = ReduceMean(., [-1])``, ``Sqrt(Add(v, eps))``, ``n = Div(d, .)``, then optionally
  ``Mul(n, w)`` and ``Add(., b)`` by constants: a ``LayerNormalization`` step (attributes
  ``epsilon``; ``scale`` / ``bias`` the constants) the lowering turns into ``rc.nn.LayerNorm``.

The graph's own steps (what ``OnnxGraph.run`` executes) are not changed.
"""

from __future__ import annotations

import math

import numpy as np

from rnncore.io.onnx_import._graph import _Step

_UNARY = {"Erf", "Tanh", "Sigmoid", "Relu", "HardSigmoid", "Exp", "Neg", "Abs", "Sqrt", "Identity",
          "HardSwish", "Elu", "LeakyRelu", "Softplus"}
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Greater"}
_TERNARY = {"Where"}


def _probe() -> np.ndarray:
    rng = np.random.default_rng(20261206)
    return np.concatenate([np.linspace(-8.0, 8.0, 161), 3.0 * rng.standard_normal(96)])[None, :]


def _candidates() -> list:
    from rnncore.nn.pointwise import erf

    c = math.sqrt(2.0 / math.pi)
    return [
        ("Gelu", {"approximate": "none"}, lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))),
        ("Gelu", {"approximate": "tanh"}, lambda x: 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))),
        ("SiLU", {}, lambda x: x / (1.0 + np.exp(-x))),
        ("HardSwish", {}, lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)),
        ("Softsign", {}, lambda x: x / (1.0 + np.abs(x))),
        ("Softplus", {}, lambda x: np.where(x > 20.0, x, np.logaddexp(0.0, x))),
    ]


class _Index:
    def __init__(self, g, steps: list) -> None:
        self.g, self.steps = g, steps
        self.producer = {o: k for k, s in enumerate(steps) for o in s.outputs if o}
        self.readers: dict = {}
        for k, s in enumerate(steps):
            for i in s.inputs:
                if i:
                    self.readers.setdefault(i, set()).add(k)

    def scalar_const(self, name: str) -> bool:
        return name in self.g.consts and np.size(self.g.consts[name]) == 1

    def elementwise(self, k: int) -> bool:
        s = self.steps[k]
        if s.op in _UNARY:
            return len([i for i in s.inputs if i]) == 1
        if s.op in _BINARY or s.op in _TERNARY:
            ins = [i for i in s.inputs if i]
            return len(ins) == (2 if s.op in _BINARY else 3) and \
                all(i not in self.g.consts or self.scalar_const(i) for i in ins)
        return False

    def runtime_inputs(self, k: int) -> list:
        return [i for i in self.steps[k].inputs if i and i not in self.g.consts]

    def region(self, t: int, src: str) -> list | None:
        """The element-wise steps on the paths from ``src`` to step ``t`` (sorted), if ``src`` is their
        only input from outside and their inner results stay inside; else None."""
        seen, todo = set(), [t]
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            if not self.elementwise(k):
                return None
            seen.add(k)
            for i in self.runtime_inputs(k):
                if i == src:
                    continue
                p = self.producer.get(i)
                if p is None:
                    return None
                todo.append(p)
        outs = self.g.output_names
        for k in seen:
            if k != t and any(o in outs or not self.readers.get(o, set()) <= seen
                              for o in self.steps[k].outputs if o):
                return None
        return sorted(seen)

    def evaluate(self, ks: list, src: str, x: np.ndarray) -> np.ndarray | None:
        vals = dict(self.g.consts)
        vals[src] = x
        try:
            with np.errstate(all="ignore"):
                for k in ks:
                    s = self.steps[k]
                    outs = s.fn([vals[i] if i else None for i in s.inputs])
                    vals[s.outputs[0]] = np.asarray(outs[0], np.float64)
        except Exception:  # noqa: BLE001 - a step that does not run on the probe: no match
            return None
        return vals[self.steps[ks[-1]].outputs[0]]


def _match_function(ix: _Index, t: int):
    """(region, src, op, attrs) of the element-wise sub-graph ending at step ``t`` that computes one of
    the known functions, or None."""
    if not ix.elementwise(t):
        return None
    # the tensors it may start from: every outside input of an element-wise ancestor, nearest first
    anc, todo, srcs = set(), [t], []
    while todo:
        k = todo.pop()
        if k in anc or not ix.elementwise(k):
            continue
        anc.add(k)
        for i in ix.runtime_inputs(k):
            srcs.append(i)
            if i in ix.producer:
                todo.append(ix.producer[i])
    order = sorted(set(srcs), key=lambda i: -ix.producer.get(i, -1))
    x = _probe()
    for src in order:
        ks = ix.region(t, src)
        if ks is None or len(ks) < 2:      # one node is its own op
            continue
        y = ix.evaluate(ks, src, x)
        if y is None or y.shape != x.shape:
            continue
        for op, attrs, f in _candidates():
            if np.allclose(y, f(x), rtol=1e-6, atol=1e-7):
                return ks, src, op, attrs
    return None


def _const_vec(g, name: str):
    v = g.consts.get(name)
    return None if v is None else np.asarray(v, np.float64)


def _last_axis_mean(g, s) -> bool:
    if s.op != "ReduceMean" or not int(s.attrs.get("keepdims", 1)):
        return False
    axes = s.attrs.get("axes")
    if axes is None and len(s.inputs) > 1 and s.inputs[1]:
        axes = g.consts.get(s.inputs[1])
    return axes is not None and [int(a) for a in np.atleast_1d(axes)] == [-1]


def _match_layer_norm(ix: _Index, k0: int):
    """The steps of a decomposed LayerNorm starting at the ``ReduceMean`` step ``k0``, or None."""
    g, st = ix.g, ix.steps
    s0 = st[k0]
    if not _last_axis_mean(g, s0):
        return None
    x, m = s0.inputs[0], s0.outputs[0]

    def only_reader(name, op, other_ok=None):
        rd = ix.readers.get(name, set())
        ks = [k for k in rd if st[k].op == op]
        return ks[0] if len(ks) == 1 and (other_ok is not None or len(rd) == 1) else None

    k_sub = only_reader(m, "Sub")
    if k_sub is None or st[k_sub].inputs[:2] != [x, m]:
        return None
    d = st[k_sub].outputs[0]
    rd = ix.readers.get(d, set())
    ops = {st[k].op: k for k in rd}
    if len(rd) != 2 or "Div" not in ops or not ({"Pow", "Mul"} & set(ops)):
        return None
    k_sq = ops.get("Pow", ops.get("Mul"))
    sq = st[k_sq]
    p = _const_vec(g, sq.inputs[1]) if sq.op == "Pow" else None
    if sq.op == "Pow" and (sq.inputs[0] != d or p is None or p.size != 1 or float(p.ravel()[0]) != 2.0):
        return None
    if sq.op == "Mul" and sq.inputs[:2] != [d, d]:
        return None
    k_v = only_reader(sq.outputs[0], "ReduceMean")
    if k_v is None or not _last_axis_mean(g, st[k_v]):
        return None
    k_e = only_reader(st[k_v].outputs[0], "Add")
    if k_e is None:
        return None
    e_ins = st[k_e].inputs[:2]
    eps_name = next((i for i in e_ins if i != st[k_v].outputs[0]), None)
    eps = _const_vec(g, eps_name) if eps_name else None
    if eps is None or eps.size != 1 or not float(eps.ravel()[0]) > 0:
        return None
    k_r = only_reader(st[k_e].outputs[0], "Sqrt")
    if k_r is None:
        return None
    k_n = ops["Div"]
    if st[k_n].inputs[:2] != [d, st[k_r].outputs[0]] or ix.readers.get(st[k_r].outputs[0]) != {k_n}:
        return None
    ks = [k0, k_sub, k_sq, k_v, k_e, k_r, k_n]
    out, scale, bias = st[k_n].outputs[0], None, None
    for op in ("Mul", "Add"):
        rd = ix.readers.get(out, set())
        if len(rd) != 1 or out in g.output_names:
            break
        k = next(iter(rd))
        other = [i for i in st[k].inputs[:2] if i != out]
        c = _const_vec(g, other[0]) if len(other) == 1 else None
        if st[k].op != op or c is None or c.ndim > 1:
            break
        if op == "Mul":
            scale = c.ravel()
        else:
            bias = c.ravel()
        ks.append(k)
        out = st[k].outputs[0]
    inner = [o for k in ks for o in st[k].outputs if o and o != out]
    if any(o in g.output_names or not ix.readers.get(o, set()) <= set(ks) for o in inner):
        return None
    attrs = {"epsilon": float(eps.ravel()[0]), "scale": scale, "bias": bias}
    return sorted(ks), x, out, attrs


def fuse_steps(g) -> list:
    """``g.steps`` with the recognised sub-graphs as one step each (module docstring)."""
    steps = list(g.steps)
    # LayerNorm decompositions first (their Sub / Div / Pow are element-wise too)
    ix = _Index(g, steps)
    drop, repl = set(), {}
    for k, s in enumerate(steps):
        if k in drop or s.op != "ReduceMean":
            continue
        hit = _match_layer_norm(ix, k)
        if hit is None:
            continue
        ks, x, out, attrs = hit
        drop.update(ks)
        last = steps[ks[-1]]
        repl[ks[-1]] = _Step(last.name, "LayerNormalization", [x], [out], _fused_fn(ix, ks, x, out), attrs)
    steps = [repl.get(k, s) for k, s in enumerate(steps) if k not in drop or k in repl]
    ix = _Index(g, steps)
    drop, repl = set(), {}
    for t in range(len(steps) - 1, -1, -1):
        if t in drop:
            continue
        hit = _match_function(ix, t)
        if hit is None:
            continue
        ks, src, op, attrs = hit
        drop.update(ks)
        last = steps[t]
        fn = _fused_fn(ix, ks, src, last.outputs[0])
        from rnncore.nn import pointwise

        if op == "Gelu":
            fn.module = pointwise.GELU(approximate=attrs["approximate"])
        else:   # SiLU, HardSwish, Softsign
            fn.module = {"SiLU": pointwise.SiLU, "HardSwish": pointwise.Hardswish,
                         "Softsign": pointwise.Softsign,
                         "Softplus": lambda: pointwise.Softplus(1.0, 20.0)}[op]()
        nodes = " -> ".join(f"{steps[k].op} {steps[k].name!r}" for k in ks)
        repl[t] = _Step(last.name, op, [src], [last.outputs[0]], fn, {**attrs, "nodes": nodes})
    return [repl.get(k, s) for k, s in enumerate(steps) if k not in drop or k in repl]


def _fused_fn(ix: _Index, ks: list, src: str, out: str):
    """The sub-graph's own nodes run in order (what the fused step computes, as the graph did)."""
    sub = [ix.steps[k] for k in ks]
    consts = ix.g.consts

    def run(vals):
        v = dict(consts)
        v[src] = vals[0]
        for s in sub:
            for name, y in zip(s.outputs, s.fn([v[i] if i else None for i in s.inputs]), strict=False):
                if name:
                    v[name] = y
        return [v[out]]
    return run
