"""Import a PyTorch module whose ``forward`` is a chain of layers, read with ``torch.fx``.

``from_torch`` sends a container here when it holds front-end layers (``nn.Conv1d``,
``nn.MaxPool1d`` / ``nn.AvgPool1d``, ``nn.BatchNorm1d``, ``nn.LayerNorm``, activations) next to its
recurrent layers. ``torch.fx.symbolic_trace`` records the ``forward`` as a graph of module calls
and tensor operations; the importer walks it as one chain and keeps, for the data, the *meaning*
of each axis (batch ``B``, time ``T``, features ``F``):

* ``x.transpose(1, 2)``, ``x.permute(0, 2, 1)``, ``torch.transpose`` only move the labels (the
  rnncore model always holds ``(B, T, F)``, so a transpose costs nothing there);
* ``nn.Conv1d``, the poolings and a 3-D ``nn.BatchNorm1d`` read PyTorch's ``(B, C, T)``: the data
  must be ``(B, F, T)`` there; ``nn.Linear``, ``nn.LayerNorm`` need the features last; a recurrent
  layer reads ``(B, T, F)`` (``batch_first=True``) or ``(T, B, F)``;
* ``y, h = rnn(x)`` then ``y`` (the per-step outputs), ``y[:, -1]`` (``rc.nn.LastStep``),
  ``y.mean(1)`` (``rc.nn.MaskedMean``), the maximum over time ``y.max(1).values`` / ``y.max(1)[0]``
  / ``torch.amax(y, 1)``, and ``F.adaptive_max_pool1d(y, 1).squeeze(-1)`` / ``nn.AdaptiveMaxPool1d(1)``
  then ``.flatten(1)`` of ``(B, F, T)`` data (``rc.nn.MaskedMax``; ``keepdim=True`` and the indices
  are refused), ``h[-1]`` of a one-direction layer (its last step),
  ``torch.cat((h[-2], h[-1]), -1)`` of a bidirectional one (``LastStep(bidirectional=True)``), and its
  ``h[-1]`` / ``h[-2]`` alone when element-wise activations then an ``nn.Linear`` read it (the
  Linear then reads one half of ``LastStep(bidirectional=True)``: weights ``[0 | W]`` / ``[W | 0]``),
  and when anything else reads it (the output, an ``nn.LayerNorm``, ...): one direction's final
  state, ``LastStep(bidirectional=True, direction="backward")`` (``"forward"`` for ``h[-2]``);
  activations as modules, ``torch.relu(x)`` / ``F.relu`` / ``x.relu()`` (and sigmoid, tanh, gelu,
  hardsigmoid, hardtanh, relu6, silu, hardswish, softplus, softsign; ``torch.clamp`` / ``x.clamp``
  with constant bounds: ``rc.nn.Hardtanh``); ``nn.Softmax`` / ``torch.softmax`` / ``F.softmax`` /
  ``x.softmax()`` over the features (``rc.nn.Softmax``), and the same of ``log_softmax``
  (``rc.nn.LogSoftmax``);
  ``nn.Dropout`` / ``nn.Identity`` / ``.contiguous()`` are skipped;
* attention pooling over time, ``e = v(tanh(W(y)))``, ``a = softmax(e, time)``, ``(a * y).sum(time)``
  or ``torch.bmm(a.transpose(1, 2), y).squeeze(1)`` (:func:`_match_attention`), is
  ``rc.nn.AttentionPool``.

The first layer fixes what the module's input is: a module that starts with ``nn.Conv1d``
reads ``(B, C, T)``, one that transposes first reads ``(B, T, F)``. The imported model reads and
returns rnncore's ``(B, T, F)`` whatever the module's layout; ``model.torch_layout`` says what the
module's input and output axes were (``("BFT", "BTF")``: feed the module ``x.transpose(1, 2)`` of
what you feed rnncore). A residual ``x + f(x)`` (``+``, ``torch.add``; ``f`` the layers between,
which keep the data's shape) becomes ``rc.nn.Residual(f)``. Anything else -- a branch that is not
such a residual, two inputs, an op not listed -- is refused, naming the node; the result is also
run against the module on a random batch.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from rnncore.io import _build
from rnncore.nn.module import Module

_FRONT = {"Conv1d", "ConstantPad1d", "MaxPool1d", "AvgPool1d", "BatchNorm1d", "LayerNorm", "ReLU", "Sigmoid",
          "Tanh", "Hardsigmoid", "GELU", "Softmax", "LogSoftmax",
          "LeakyReLU", "ELU", "Hardtanh", "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign",
          "InstanceNorm1d", "AdaptiveMaxPool1d"}
_ACT_MODULES = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "hardsigmoid"}
#: element-wise functions (F.*, torch.*, x.*) -> (their parameters after the input, PyTorch's defaults)
_ACT_FUNCTIONS = {"hardtanh": (("min_val", "max_val"), (-1.0, 1.0)), "relu6": ((), ()),
                  "clamp": (("min", "max"), (None, None)), "clip": (("min", "max"), (None, None)),
                  "silu": ((), ()), "hardswish": ((), ()), "softsign": ((), ()),
                  "softplus": (("beta", "threshold"), (1.0, 20.0))}
_SUPPORTED = ("nn.RNN/GRU/LSTM, nn.Linear, nn.Embedding, nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d, "
              "nn.BatchNorm1d, nn.LayerNorm, nn.InstanceNorm1d, nn.AdaptiveMaxPool1d(1) (over time), "
              "nn.ReLU/Sigmoid/Tanh/Hardsigmoid/GELU/LeakyReLU/ELU/Hardtanh/ReLU6/SiLU/Hardswish/"
              "Softplus/Softsign, "
              "torch.abs, F.leaky_relu, "
              "nn.Softmax/LogSoftmax (over the features), nn.Dropout/Identity, "
              "nn.ConstantPad1d / F.pad (zeros, before a Conv1d); the 2-D layers (nn.Conv2d, "
              "nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d) convert alone "
              "(from_torch(module.<name>)), or with the whole model through torch.onnx.export and from_onnx")


def needs_fx(module) -> bool:
    """Does the container hold a layer only this importer handles?"""
    return any(type(m).__name__ in _FRONT for m in module.modules())


class _Data:
    """The data: its axis labels (``X0..`` until a layer fixes their meaning, then ``B``/``T``/``F``).

    ``half`` (0 / 1): the data is ``LastStep(bidirectional=True)``'s ``[forward | backward]`` final
    states where the module holds only that direction's (``h_n[-2]`` / ``h_n[-1]``), through
    element-wise layers only; the next ``nn.Linear`` reads that half (zero weights on the other)."""

    half: int | None = None

    def __init__(self, axes: tuple, pad: tuple | None = None) -> None:
        self.axes = axes
        self.pad = pad   # zero padding (left, right) over time the next Conv1d takes (ConstantPad1d)


class _RnnOut:
    """``rnn(x)``: the tuple (outputs, final state)."""

    def __init__(self, axes: tuple, module, rnn) -> None:
        self.axes, self.module, self.rnn = axes, module, rnn


class _State:
    """``h_n`` (or ``(h_n, c_n)`` of an LSTM, ``part`` None) of one recurrent layer."""

    def __init__(self, rnn, part) -> None:
        self.rnn, self.part = rnn, part


class _Pick:
    """``h_n[-2]`` / ``h_n[-1]`` of a bidirectional layer (its last layer's forward / backward final
    state): ``torch.cat((h_n[-2], h_n[-1]), -1)`` is both directions' (:meth:`_Tracer.cat_state`);
    read by element-wise layers then a Linear, the Linear reads one half (:meth:`_Tracer.final_state`);
    read otherwise, one direction's final state (:meth:`_Tracer.one_direction`)."""

    def __init__(self, rnn, idx: int) -> None:
        self.rnn, self.idx = rnn, idx


class _MaxPair:
    """``torch.max(y, dim)`` / ``y.max(dim)`` over time: the pair (values, indices), whose values
    are ``rc.nn.MaskedMax``'s output (added at the ``max`` node); the indices are refused."""

    def __init__(self) -> None:
        self.axes = ("B", "F")


_UNIT = "U"     # the length-1 time axis of adaptive_max_pool1d(x, 1)'s (B, F, 1) output


class _Attention:
    """A matched attention pooling: ``x`` (the pooled node), the projection ``W`` and score ``v``
    modules, ``tdim`` (the time axis of ``x``), the nodes between ``x`` and the pooled output."""

    def __init__(self, x, W, v, tdim: int, inner: set) -> None:
        self.x, self.W, self.v, self.tdim, self.inner = x, W, v, tdim, inner


_SOFTMAX = ("softmax",)
_TANH = ("tanh",)


def _fx_name(gm, node) -> str:
    """What a node computes, one name for its module / function / method forms (``"softmax"``,
    ``"tanh"``, ``"Linear"``, ``"mul"``, ...)."""
    if node.op == "call_module":
        kind = type(gm.get_submodule(node.target)).__name__
        return {"Softmax": "softmax", "Tanh": "tanh"}.get(kind, kind)
    if node.op in ("call_function", "call_method"):
        t = node.target
        return t if isinstance(t, str) else getattr(t, "__name__", str(t))
    return node.op


def _fx_arg(node, k: int, key: str, default=None):
    return node.args[k] if len(node.args) > k else node.kwargs.get(key, default)


def _match_attention(gm, sm):
    """The attention pooling around the softmax node ``sm``, or the reason it is not one (a str).

    Recognised (``x`` (B, T, F) or (T, B, F), the same node read twice)::

        e = v(tanh(W(x)))                      # W: Linear(F, A) (any bias), v: Linear(A, 1) (any bias)
        a = softmax(e, dim=t)                  # or softmax(e.squeeze(-1), dim=t).unsqueeze(-1)
        y = (a * x).sum(dim=t)                 # or torch.bmm(a.transpose(1, 2), x).squeeze(1), batch first
    """
    import torch.fx as fx

    def one_user(n) -> bool:
        return len(n.users) == 1

    name = _fx_name(gm, sm)
    if sm.op == "call_module":
        dim = gm.get_submodule(sm.target).dim
    else:
        dim = _fx_arg(sm, 1, "dim")
        if set(sm.kwargs) - {"dim", "_stacklevel", "dtype"} or sm.kwargs.get("dtype") is not None:
            return "softmax with arguments other than dim"
    if name not in _SOFTMAX or not isinstance(dim, int) or not sm.args or not isinstance(sm.args[0], fx.Node):
        return "a softmax with a constant dim"
    e = sm.args[0]
    inner = {sm}
    squeezed = False
    if _fx_name(gm, e) == "squeeze" and _fx_arg(e, 1, "dim") in (-1, 2) and one_user(e):
        inner.add(e)
        e, squeezed = e.args[0], True
    elif _fx_name(gm, e) == "getitem" and e.args[1] in ((Ellipsis, 0), (slice(None), slice(None), 0)) \
            and one_user(e):
        inner.add(e)
        e, squeezed = e.args[0], True
    if _fx_name(gm, e) != "Linear" or gm.get_submodule(e.target).out_features != 1 or not one_user(e):
        return ("the scores e are not v(tanh(W(x))) with v an nn.Linear(A, 1) (optionally .squeeze(-1)), "
                f"got {e.name!r} ({_fx_name(gm, e)})")
    v = gm.get_submodule(e.target)
    u = e.args[0]
    if _fx_name(gm, u) not in _TANH or not one_user(u) or len(u.args) != 1:
        return f"the scores e are not v(tanh(W(x))): v reads {u.name!r} ({_fx_name(gm, u)}), expected a tanh"
    w = u.args[0]
    if _fx_name(gm, w) != "Linear" or not one_user(w):
        return (f"the scores e are not v(tanh(W(x))): tanh reads {w.name!r} ({_fx_name(gm, w)}), expected "
                "an nn.Linear")
    W = gm.get_submodule(w.target)
    x = w.args[0]
    inner |= {e, u, w}
    nd = 2 if squeezed else 3
    if not -nd <= dim < nd:
        return f"softmax over dim={dim} of {nd}-D scores"
    tdim = dim % nd
    # forward: a -> [unsqueeze(-1)] -> a * x -> sum(t)  |  a -> transpose(1, 2) -> bmm(., x) -> squeeze(1)
    a = sm
    if not one_user(a):
        return "the attention weights are used more than once"
    nxt = next(iter(a.users))
    if squeezed:
        ok = (_fx_name(gm, nxt) == "unsqueeze" and _fx_arg(nxt, 1, "dim") in (-1, 2)) or (
            _fx_name(gm, nxt) == "getitem"
            and nxt.args[1] in ((Ellipsis, None), (slice(None), slice(None), None)))
        if not ok or not one_user(nxt):
            return (f"the squeezed attention weights are read by {nxt.name!r} ({_fx_name(gm, nxt)}), "
                    "expected .unsqueeze(-1)")
        inner.add(nxt)
        a, nxt = nxt, next(iter(nxt.users))
    kind = _fx_name(gm, nxt)
    if kind in ("mul", "imul") and len(nxt.args) == 2 and set(nxt.args) == {a, x} and not nxt.kwargs:
        red = next(iter(nxt.users)) if one_user(nxt) else None
        if red is None or _fx_name(gm, red) != "sum" or red.args[0] is not nxt:
            return f"the weighted steps a * x ({nxt.name!r}) are not summed over time (.sum(dim))"
        d = _fx_arg(red, 1, "dim")
        d = d[0] if isinstance(d, tuple | list) and len(d) == 1 else d
        keep = _fx_arg(red, 2, "keepdim", False)
        if not isinstance(d, int) or d % 3 != tdim or keep or red.kwargs.get("dtype"):
            return (f"the weighted steps are summed over dim={d} (keepdim={keep}), expected the softmax's "
                    f"time dim {tdim}, keepdim=False")
        inner.add(nxt)
        return red, _Attention(x, W, v, tdim, inner)
    if kind in ("transpose", "permute") and tdim == 1 and one_user(nxt):
        perm = tuple(int(p) % 3 for p in (nxt.args[1:] if kind == "transpose" else
                                          (nxt.args[1] if len(nxt.args) == 2 else nxt.args[1:])))
        if (kind == "transpose" and sorted(perm) == [1, 2]) or perm == (0, 2, 1):
            mm = next(iter(nxt.users))
            if _fx_name(gm, mm) in ("bmm", "matmul") and tuple(mm.args) == (nxt, x) and one_user(mm):
                sq = next(iter(mm.users))
                if _fx_name(gm, sq) == "squeeze" and _fx_arg(sq, 1, "dim") in (1, -2):
                    inner |= {nxt, mm}
                    return sq, _Attention(x, W, v, tdim, inner)
            return ("the transposed attention weights are not pooled as torch.bmm(a.transpose(1, 2), x)"
                    ".squeeze(1)")
    return (f"the attention weights are read by {nxt.name!r} ({kind}), expected a * x summed over time or "
            "torch.bmm(a.transpose(1, 2), x).squeeze(1)")


_CATS = ("cat", "concat", "concatenate", "hstack")


def _dead_except(node, keep) -> bool:
    """Is ``keep`` the only user of ``node`` that is itself used (``max_pool, _ = torch.max(y, 1)``
    leaves the indices unused)?"""
    return all(u is keep or not u.users for u in node.users)


def _match_pool_part(gm, p, attn: dict):
    """One part of a concatenation as a pooling over time: ``(kind, source node, time dim, inner nodes)``
    (``kind`` "mean", "max", "last" (``y[:, -1]`` / ``h_n[-1]``) or "last2" (``cat(h_n[-2], h_n[-1])``),
    ``dim`` None for a final state), or the reason it is not one (a str)."""
    import torch.fx as fx

    if not isinstance(p, fx.Node):
        return f"{p!r} is not a tensor of the model"
    if p in attn:
        return (f"{p.name!r} is an attention pooling; a concatenation holds last-step, mean and max "
                "poolings only (rc.nn.ConcatPool of LastStep, MaskedMean, MaskedMax)")
    name = _fx_name(gm, p)
    if len(p.users) != 1:
        return f"{p.name!r} is also read outside the concatenation"
    if name == "mean" and p.op in ("call_function", "call_method"):
        if set(p.kwargs) - {"dim", "keepdim"} or _fx_arg(p, 2, "keepdim", False) or len(p.args) > 3:
            return f"{p.name!r}: mean with keepdim=True or other arguments"
        return "mean", p.args[0], _fx_arg(p, 1, "dim"), {p}
    if name == "amax" and p.op in ("call_function", "call_method"):
        if set(p.kwargs) - {"dim", "keepdim"} or _fx_arg(p, 2, "keepdim", False) or len(p.args) > 3:
            return f"{p.name!r}: amax with keepdim=True or other arguments"
        return "max", p.args[0], _fx_arg(p, 1, "dim"), {p}
    if (name == "getitem" and p.args[1] == 0) or (name == "getattr" and p.args[1] == "values"):
        m = p.args[0]
        if isinstance(m, fx.Node) and _fx_name(gm, m) == "max" and _dead_except(m, p) \
                and not set(m.kwargs) - {"dim", "keepdim"} and len(m.args) in (1, 2, 3) \
                and not _fx_arg(m, 2, "keepdim", False):
            return "max", m.args[0], _fx_arg(m, 1, "dim"), {p, m}
    if name in ("squeeze", "flatten") or (name == "getitem" and p.args[1] in (
            (slice(None), slice(None), 0), (Ellipsis, 0))):
        if name == "squeeze":
            ok = _fx_arg(p, 1, "dim") in (-1, 2) and len(p.args) <= 2
        elif name == "flatten":
            ok = _fx_arg(p, 1, "start_dim", 0) in (1, -2) and _fx_arg(p, 2, "end_dim", -1) in (-1, 2)
        else:
            ok = True
        q = p.args[0]
        if ok and isinstance(q, fx.Node) and len(q.users) == 1:
            kind, qname = None, _fx_name(gm, q)
            import torch.nn.functional as F

            if q.op == "call_function" and (qname == "adaptive_avg_pool1d"
                                            or q.target is F.adaptive_max_pool1d):
                size = _fx_arg(q, 1, "output_size")
                if not set(q.kwargs) - {"output_size", "return_indices"} and len(q.args) <= 2 \
                        and not q.kwargs.get("return_indices", False):
                    kind = "mean" if qname == "adaptive_avg_pool1d" else "max"
            elif q.op == "call_module" and type(gm.get_submodule(q.target)).__name__ in (
                    "AdaptiveAvgPool1d", "AdaptiveMaxPool1d"):
                m = gm.get_submodule(q.target)
                size = m.output_size
                kind = "mean" if type(m).__name__ == "AdaptiveAvgPool1d" else (
                    None if m.return_indices else "max")
            if kind is not None:
                size = size[0] if isinstance(size, tuple | list) and len(size) == 1 else size
                if size != 1:
                    return f"{q.name!r}: output_size={size!r}; expected 1 (the pooling over all the steps)"
                return kind, q.args[0], 2, {p, q}
    if name == "getitem" and (p.args[1] == -1 or p.args[1] == (slice(None), -1)):
        return "last", p.args[0], 0 if p.args[1] == -1 else 1, {p}
    if name in ("cat", "concat", "concatenate") and p.op == "call_function":
        parts = _fx_arg(p, 0, "tensors")
        if isinstance(parts, tuple | list) and len(parts) == 2 and _fx_arg(p, 1, "dim", 0) in (-1, 1) \
                and all(isinstance(a, fx.Node) and _fx_name(gm, a) == "getitem" and len(a.users) == 1
                        for a in parts) \
                and [a.args[1] for a in parts] == [-2, -1] and parts[0].args[0] is parts[1].args[0]:
            return "last2", parts[0].args[0], None, {p, *parts}
    return (f"{p.name!r} ({name}) is not a pooling over time that rnncore concatenates: the mean "
            "(y.mean(1), F.adaptive_avg_pool1d(y.transpose(1, 2), 1).squeeze(-1)), the maximum "
            "(y.max(1).values, torch.max(y, 1)[0], torch.amax(y, 1), F.adaptive_max_pool1d), the last "
            "step (y[:, -1], h_n[-1]) or torch.cat((h_n[-2], h_n[-1]), -1)")


def _match_concat(gm, node, attn: dict):
    """``torch.cat([pool_1(y), pool_2(y), ...], -1)`` of poolings over time: ``(parts, inner)``, or the
    reason it is not one (a str), or None when no part is a pooling (another concatenation)."""
    parts = _fx_arg(node, 0, "tensors")
    dim = _fx_arg(node, 1, "dim", 1 if _fx_name(gm, node) == "hstack" else 0)
    if not isinstance(parts, tuple | list) or len(parts) < 2:
        return None
    if len(parts) == 2 and all(_fx_name(gm, p) == "getitem" for p in parts) \
            and [p.args[1] for p in parts] == [-2, -1] and parts[0].args[0] is parts[1].args[0]:
        return None     # torch.cat((h_n[-2], h_n[-1]), -1) alone: Tracer.cat_state
    found = [_match_pool_part(gm, p, attn) for p in parts]
    if all(isinstance(f, str) for f in found):
        return None
    import torch.fx as fx

    # a part that is not a pooling is refused at the concatenation too (named in the reason)
    inner = set().union(*(f[3] if not isinstance(f, str) else {p} if isinstance(p, fx.Node) else set()
                          for f, p in zip(found, parts, strict=True)))
    if set(node.kwargs) - {"dim", "tensors"} or dim not in (-1, 1):
        return f"a concatenation of poolings over dim={dim}; expected the features (dim=1 or -1)", inner
    bad = next((f for f in found if isinstance(f, str)), None)
    if bad is not None:
        return bad, inner
    return [f[:3] + (p,) for f, p in zip(found, parts, strict=True)], inner


class _Tracer:
    def __init__(self, module, dtype: str) -> None:
        self.root, self.dtype = module, dtype
        self.alias: dict = {}
        self.modules: list[Module] = []
        self.input_axes: tuple = ()
        self.integer = False
        self.unsized: list = []     # poolings that read the input: their channels are the input's
        # the chain's points: every value carries the version of the point it is (``ver``); a layer
        # reads the latest point (``cur``) and makes a new one; ``points[ver]`` = the layers before it
        self.points: dict[int, int] = {0: 0}
        self.cur = self.next_ver = 0

    _PICK_ALONE = ("reads h_n[-2] or h_n[-1] of a bidirectional layer (one direction's final state) "
                   "together with another value; understood: torch.cat((h_n[-2], h_n[-1]), -1) (both "
                   "directions' final states), and h_n[-1] or h_n[-2] read alone")
    #: layers that keep one direction's half apart (element-wise, finite on finite values), and nn.Linear
    _HALF_MODULES = {"ReLU", "Sigmoid", "Tanh", "Hardsigmoid", "GELU", "LeakyReLU", "ELU", "Hardtanh",
                     "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign", "Dropout", "Identity", "Linear"}
    _HALF_FUNCTIONS = {"relu", "sigmoid", "tanh", "hardsigmoid", "gelu", "abs", "leaky_relu", "contiguous",
                       "dropout", *_ACT_FUNCTIONS}

    def keeps_halves(self, node, gm) -> bool:
        """Does ``node`` keep the halves of ``[forward | backward]`` features apart (an element-wise
        layer) or read one half (an ``nn.Linear``)?"""
        if node.op == "call_module":
            return type(gm.get_submodule(node.target)).__name__ in self._HALF_MODULES
        return node.op in ("call_function", "call_method") and self._target(node) in self._HALF_FUNCTIONS

    def final_state(self, pick: _Pick) -> _Data:
        """``h_n[-2]`` / ``h_n[-1]`` read by an element-wise layer or a Linear: both directions' final
        states (``LastStep(bidirectional=True)``), of which the next Linear reads one half."""
        self.add(_build.pool("last", True))
        out = _Data(("B", "F"))
        out.half = 0 if pick.idx == -2 else 1
        out.width = 2 * (getattr(pick.rnn, "proj_size", 0) or pick.rnn.hidden_size)
        return self.new_point(out)

    def one_direction(self, pick: _Pick) -> _Data:
        """``h_n[-2]`` / ``h_n[-1]`` read alone by the output or a layer other than element-wise ones
        and a Linear (a LayerNorm, ...): one direction's final state,
        ``LastStep(bidirectional=True, direction="forward" / "backward")``."""
        from rnncore.nn.layers import LastStep

        self.add(LastStep(bidirectional=True, direction="forward" if pick.idx == -2 else "backward"))
        return self.new_point(_Data(("B", "F")))

    def select_half(self, half: _Data) -> _Data:
        """Element-wise layers' output on both final states (:meth:`final_state`) read by the output or
        a layer that mixes the features: a Linear ``[I | 0]`` / ``[0 | I]`` keeps the module's half."""
        H = half.width // 2
        select = np.zeros((H, 2 * H))
        select[:, half.half * H + np.arange(H)] = np.eye(H)
        self.add(_build.linear(select, None, self.dtype))
        return self.new_point(_Data(half.axes))

    def new_point(self, out):
        """``out`` is the output of the layer just added: a new point of the chain, the latest."""
        self.next_ver += 1
        self.cur = self.next_ver
        self.points[self.cur] = len(self.modules)
        out.ver = self.cur
        return out

    def lab(self, a: str) -> str:
        while a in self.alias:
            a = self.alias[a]
        return a

    def labels(self, axes: tuple) -> str:
        return "".join(self.lab(a) if self.lab(a) in "BTF" else "?" for a in axes)

    def refuse(self, node, why: str):
        if node.op == "call_module":
            what = f"module {node.target!r}, {type(self.root.get_submodule(node.target)).__name__}"
        else:
            what = f"{node.op} {self._target(node)}"
        raise ValueError(f"from_torch: {type(self.root).__name__}: node {node.name!r} ({what}): {why}")

    @staticmethod
    def _target(node) -> str:
        t = node.target
        return t if isinstance(t, str) else getattr(t, "__name__", str(t))

    def need(self, node, v, want: str) -> None:
        """The data ``v`` must have the axes ``want`` (e.g. ``"BFT"``): fix the open labels."""
        if not isinstance(v, _Data):
            self.refuse(node, f"expected the data here, got {type(v).__name__.strip('_')}")
        if len(v.axes) != len(want):
            self.refuse(node, f"expected {len(want)}-D data {tuple(want)}, got {len(v.axes)}-D "
                              f"{tuple(self.labels(v.axes))}")
        for a, w in zip(v.axes, want, strict=True):
            a = self.lab(a)
            if a.startswith("X"):
                if any(self.lab(b) == w for b in v.axes if not self.lab(b).startswith("X")):
                    self.refuse(node, f"reads its data as {tuple(want)}, but it is "
                                      f"{tuple(self.labels(v.axes))}")
                self.alias[a] = w
            elif a != w:
                self.refuse(node, f"reads its data as {tuple(want)}, but it is {tuple(self.labels(v.axes))} "
                                  "(a transpose is missing or too many)")

    def add(self, m: Module) -> None:
        self.modules.append(m)

    # -- the walk ----------------------------------------------------------------------------
    def run(self):
        import torch.fx as fx

        tracer = _path_tracer()
        try:
            gm = fx.GraphModule(self.root, tracer.trace(self.root))
        except Exception as e:  # noqa: BLE001 - fx's TraceError, control flow on tensors, ...
            raise ValueError(
                f"from_torch: {type(self.root).__name__}.forward cannot be traced by torch.fx"
                f"{tracer.where(e)} ({type(e).__name__}: {e}); write it as a plain chain of layers and "
                "transposes, or export it to ONNX and import that with from_onnx (the graph import "
                "evaluates sub-graphs of parameters only, such as a filterbank computed from its "
                "parameters, once)") from e
        vals: dict = {}
        data_node = None
        self.attn, self.attn_why, inner = {}, {}, set()
        for n in gm.graph.nodes:
            if _fx_name(gm, n) in _SOFTMAX:
                found = _match_attention(gm, n)
                if isinstance(found, str):
                    self.attn_why[n] = found
                else:
                    self.attn[found[0]] = found[1]
                    inner |= found[1].inner
        self.concat, self.concat_why = {}, {}
        for n in gm.graph.nodes:
            if n.op == "call_function" and _fx_name(gm, n) in _CATS and n not in inner:
                found = _match_concat(gm, n, self.attn)
                if isinstance(found, tuple) and isinstance(found[0], str):
                    self.concat_why[n] = found[0]       # refused at the concatenation, naming the part
                    inner |= found[1]
                elif isinstance(found, str):
                    self.concat_why[n] = found
                elif found is not None:
                    self.concat[n] = found[0]
                    inner |= found[1]
        live = {n for n in gm.graph.nodes if n.users or n.op == "output"}
        for node in gm.graph.nodes:
            if node not in live or node in inner:
                continue
            if node.op == "placeholder":
                if data_node is not None:
                    if node.args and node.args[0] is None:
                        continue        # an optional argument left at None (e.g. h0=None)
                    self.refuse(node, "a second input; the imported model reads one tensor")
                self.input_axes = ("X0", "X1", "X2")
                vals[node] = _Data(self.input_axes)
                vals[node].ver = 0
                data_node = node
                continue
            if node.op == "output":
                out = node.args[0]
                if isinstance(out, tuple | list):
                    if len(out) != 1:
                        self.refuse(node, "several outputs; the imported model returns one tensor")
                    out = out[0]
                v = vals.get(out)
                if isinstance(v, _Pick):
                    v = self.one_direction(v)
                elif getattr(v, "half", None) is not None:
                    v = self.select_half(v)
                if not isinstance(v, _Data) or v.pad:
                    self.refuse(node, "the output is not the data (a tuple, a state or padded data)")
                return v
            if node in self.concat:
                vals[node] = self.concat_pool(node, self.concat[node], vals)
                continue
            if node in self.concat_why:
                self.refuse(node, self.concat_why[node])
            if self._target(node) in _CATS and node.op == "call_function":
                vals[node] = self.cat_state(node, vals)
                continue
            node_args = (self.attn[node].x,) if node in self.attn else node.args
            picks = [a for a in node_args if isinstance(a, fx.Node) and isinstance(vals.get(a), _Pick)]
            halves = [a for a in node_args if isinstance(a, fx.Node) and
                      getattr(vals.get(a), "half", None) is not None]
            if picks or halves:
                if len(picks) + len(halves) != 1:
                    self.refuse(node, self._PICK_ALONE)
                if picks and self.keeps_halves(node, gm):
                    vals[picks[0]] = self.final_state(vals[picks[0]])
                elif picks:
                    vals[picks[0]] = self.one_direction(vals[picks[0]])
                elif not self.keeps_halves(node, gm):
                    vals[halves[0]] = self.select_half(vals[halves[0]])
            args = [vals.get(a, a) if isinstance(a, fx.Node) else a for a in node_args]
            srcs = [a for a in node_args if isinstance(a, fx.Node)]
            if any(s not in vals for s in srcs):
                self.refuse(node, "reads a value the importer does not track")
            n_data = len([s for s in srcs if isinstance(vals[s], _Data | _RnnOut | _State | _MaxPair)])
            if n_data > 1 and not (self._target(node) in ("add", "iadd") and n_data == 2):
                self.refuse(node, "combines two values of the data (a concatenation, or a residual "
                                  "other than x + f(x))")
            if any(isinstance(vals[s], _Data) and vals[s].pad for s in srcs) and not (
                    node.op == "call_module" and type(gm.get_submodule(node.target)).__name__ == "Conv1d"):
                self.refuse(node, "reads zero-padded data: the importer folds ConstantPad1d / F.pad over "
                                  "time into the Conv1d right after it only")
            inputs = [vals[s] for s in srcs if isinstance(vals[s], _Data | _RnnOut | _State | _MaxPair)]
            n_before = len(self.modules)
            v = self.op(node, args, gm)
            if isinstance(v, _Data) and getattr(v, "fresh", False):   # a residual's output: a new point
                v.fresh = False
            elif isinstance(v, _Data | _RnnOut | _State | _MaxPair):
                if any(v is i for i in inputs):
                    v = copy.copy(v)
                if len(self.modules) != n_before:   # a layer: it must read the latest point
                    if inputs and getattr(inputs[0], "ver", 0) != self.cur:
                        self.refuse(node, "reads the data of an earlier point of the chain (a branch "
                                          "that is not a residual x + f(x))")
                    self.new_point(v)
                elif getattr(v, "ver", None) is None:   # a transpose: the point it reads
                    v.ver = getattr(inputs[0], "ver", self.cur) if inputs else self.cur
            vals[node] = v
        raise AssertionError("torch.fx graph without output")  # pragma: no cover

    def op(self, node, args, gm):
        if node in self.attn:
            return self.attention(node, args[0], self.attn[node])
        if node.op == "call_module":
            return self.call_module(node, gm.get_submodule(node.target), args)
        name = self._target(node)
        x = args[0] if args else None
        kw = node.kwargs
        if name == "getitem" and isinstance(x, _MaxPair):
            return self.max_part(node, x, args[1])
        if name == "getattr" and isinstance(x, _MaxPair) and len(args) == 2:
            return self.max_part(node, x, {"values": 0, "indices": 1}.get(args[1], args[1]))
        if name == "getitem":
            return self.getitem(node, x, args[1])
        if node.op == "call_function" and self._adaptive_max(node.target):
            if len(args) > 2 or set(kw) - {"output_size", "return_indices"}:
                self.refuse(node, f"arguments {list(args[2:]) or sorted(set(kw))}")
            size = args[1] if len(args) > 1 else kw.get("output_size")
            return self.adaptive_max(node, x, size, bool(kw.get("return_indices", False)))
        if name in ("squeeze", "flatten", "view", "reshape") and isinstance(x, _Data) and _UNIT in x.axes:
            return self.drop_unit(node, name, x, args[1:], kw)
        if name in ("max", "amax"):
            return self.max_time(node, name, x, args[1:], kw)
        if name in ("add", "iadd") and len(args) == 2 and all(isinstance(a, _Data) for a in args):
            return self.residual(node, *args)
        if name == "pad":
            pads = args[1] if len(args) > 1 else kw.get("pad")
            mode = args[2] if len(args) > 2 else kw.get("mode", "constant")
            value = args[3] if len(args) > 3 else kw.get("value", None)
            return self.time_pad(node, x, pads, mode == "constant" and not value)
        if name in ("contiguous", "dropout", "float") or (name == "to" and not kw):
            return x
        if name in ("transpose", "swapaxes"):
            if not isinstance(x, _Data):
                self.refuse(node, "transpose of something other than the data")
            a, b = (int(v) % len(x.axes) for v in args[1:3])
            axes = list(x.axes)
            axes[a], axes[b] = axes[b], axes[a]
            return _Data(tuple(axes))
        if name == "permute":
            dims = args[1] if len(args) == 2 and isinstance(args[1], tuple | list) else args[1:]
            n = len(x.axes) if isinstance(x, _Data) else -1
            if n < 0 or sorted(int(d) % n for d in dims) != list(range(n)):
                self.refuse(node, f"permute {dims} of data with {len(getattr(x, 'axes', ()))} axes")
            return _Data(tuple(x.axes[int(d) % len(x.axes)] for d in dims))
        act = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "hardsigmoid": "hardsigmoid",
               "gelu": "gelu"}.get(name)
        if act is not None:
            if not isinstance(x, _Data):
                self.refuse(node, "activation of something other than the data")
            if act == "gelu" and kw.get("approximate", "none") == "tanh":
                act = "gelu_tanh"
            extra = set(kw) - {"approximate", "inplace"}
            if extra:
                self.refuse(node, f"arguments {sorted(extra)}")
            self.add(_build.activation(act))
            return x
        if name in ("abs", "leaky_relu"):
            from rnncore.nn import pointwise

            if not isinstance(x, _Data):
                self.refuse(node, f"{name} of something other than the data")
            extra = set(kw) - {"negative_slope", "inplace"}
            if extra or (name == "abs" and (kw or len(args) > 1)):
                self.refuse(node, f"arguments {sorted(set(kw)) or args[1:]}")
            slope = args[1] if len(args) > 1 else kw.get("negative_slope", 0.01)
            self.add(pointwise.Abs() if name == "abs" else pointwise.LeakyReLU(float(slope)))
            return x
        if name in _ACT_FUNCTIONS:
            return self.act_function(node, name, x, args[1:], kw)
        if name in ("softmax", "log_softmax"):
            extra = set(kw) - {"dim", "dtype", "_stacklevel"}
            if extra or kw.get("dtype") is not None:
                self.refuse(node, f"arguments {sorted(extra) or ['dtype']}")
            dim = args[1] if len(args) > 1 else kw.get("dim")
            return self.softmax(node, x, dim, log=name == "log_softmax")
        if name == "mean":
            dims = args[1] if len(args) > 1 else kw.get("dim")
            dims = dims if isinstance(dims, tuple | list) else (dims,)
            if not isinstance(x, _Data) or len(dims) != 1 or kw.get("keepdim") or len(x.axes) != 3:
                self.refuse(node, "mean other than over the time axis of (B, T, F) data (keepdim=False)")
            d = int(dims[0]) % 3
            self.need(node, x, "BTF" if d == 1 else "TBF" if d == 0 else "BFT")
            self.add(_build.pool("mean"))
            return _Data(("B", "F"))
        self.refuse(node, "not a layer or operation the importer understands; supported: "
                          f"{_SUPPORTED}, transpose/permute, y[:, -1], y.mean(1), y.max(1).values / "
                          "torch.amax(y, 1), F.adaptive_max_pool1d(y, 1).squeeze(-1), h_n[-1], activations")

    @staticmethod
    def _adaptive_max(target) -> bool:
        import torch.nn.functional as F

        return target is F.adaptive_max_pool1d or target is F.adaptive_max_pool1d_with_indices

    def _time_dim(self, node, x, dims, what: str) -> None:
        """``dims`` (an int or a one-element tuple) must be the time axis of 3-D data: fix its labels."""
        dims = dims if isinstance(dims, tuple | list) else (dims,)
        if not isinstance(x, _Data) or len(x.axes) != 3 or len(dims) != 1 or isinstance(dims[0], bool) \
                or not isinstance(dims[0], int):
            self.refuse(node, f"{what} other than over the time axis of (B, T, F) data (one constant dim)")
        d = int(dims[0]) % 3
        self.need(node, x, "BTF" if d == 1 else "TBF" if d == 0 else "BFT")

    def max_time(self, node, name: str, x, args: tuple, kw: dict):
        """``torch.amax(y, 1)`` / ``y.amax(dim=1)`` (the maxima) and ``torch.max(y, 1)`` /
        ``y.max(dim=1)`` (the pair: ``[0]`` / ``.values`` are the maxima) over the time axis:
        ``rc.nn.MaskedMax``. ``keepdim=True``, another axis, ``max(y)`` over every element and
        ``max(a, b)`` (element-wise) are refused."""
        extra = set(kw) - {"dim", "keepdim"}
        if extra or len(args) > 2:
            self.refuse(node, f"{name} with arguments {sorted(extra) or list(args)}; expected "
                              f"{name}(y, dim) over time")
        dim = args[0] if args else kw.get("dim")
        keep = args[1] if len(args) > 1 else kw.get("keepdim", False)
        if dim is None or (isinstance(dim, tuple | list) and name == "max"):
            self.refuse(node, f"{name} without a time dim (the maximum of every element, or an element-wise "
                              "maximum); expected the maximum over the time axis, y.max(1).values")
        if keep:
            self.refuse(node, f"{name} with keepdim=True; expected keepdim=False (rnncore's maximum over "
                              "time returns (B, F))")
        self._time_dim(node, x, dim, name)
        self.add(_build.pool("max"))
        return _MaxPair() if name == "max" else _Data(("B", "F"))

    def max_part(self, node, pair: _MaxPair, idx):
        """``[0]`` / ``.values`` of ``torch.max(y, dim)``: the maxima; the indices are refused."""
        if idx == 0:
            return _Data(pair.axes)
        if idx == 1:
            self.refuse(node, "reads the indices of torch.max over time (the argmax steps) as data; "
                              "rnncore's maximum over time returns the maxima (.values / [0]) only")
        self.refuse(node, f"indexing {idx!r} of torch.max's (values, indices)")

    def adaptive_max(self, node, x, size, return_indices: bool):
        """``F.adaptive_max_pool1d(y, 1)`` / ``nn.AdaptiveMaxPool1d(1)`` of ``(B, F, T)`` data: the maximum
        over time, ``(B, F, 1)`` until ``.squeeze(-1)`` / ``.flatten(1)`` drops the unit axis."""
        if return_indices:
            self.refuse(node, "return_indices=True; rnncore's maximum over time returns the maxima only")
        if (size[0] if isinstance(size, tuple | list) and len(size) == 1 else size) != 1:
            self.refuse(node, f"output_size={size!r}; expected 1 (the maximum over all the steps)")
        self.need(node, x, "BFT")
        self.add(_build.pool("max"))
        return _Data(("B", "F", _UNIT))

    def drop_unit(self, node, name: str, x, args: tuple, kw: dict):
        """``.squeeze(-1)`` / ``.squeeze(2)`` / ``.flatten(1)`` of the ``(B, F, 1)`` maximum: ``(B, F)``."""
        if tuple(self.lab(a) for a in x.axes) != ("B", "F", _UNIT):
            self.refuse(node, f"{name} of data {tuple(self.labels(x.axes))}")
        if name == "squeeze":
            d = args[0] if args else kw.get("dim")
            ok = d in (-1, 2) and not set(kw) - {"dim"} and len(args) <= 1
        elif name == "flatten":
            start = args[0] if args else kw.get("start_dim", 0)
            end = args[1] if len(args) > 1 else kw.get("end_dim", -1)
            ok = start in (1, -2) and end in (-1, 2) and not set(kw) - {"start_dim", "end_dim"}
        else:
            ok = False
        if not ok:
            self.refuse(node, f"{name}{tuple(args)} of the (B, F, 1) maximum over time; expected "
                              ".squeeze(-1) or .flatten(1)")
        return _Data(("B", "F"))

    def act_function(self, node, name: str, x, args: tuple, kw: dict):
        """``F.hardtanh`` / ``F.relu6`` / ``torch.clamp`` (constant bounds), ``F.silu``,
        ``F.hardswish``, ``F.softplus``, ``F.softsign`` (and their ``x.`` methods) as ``rc.nn`` layers."""
        from rnncore.nn import pointwise

        names, defaults = _ACT_FUNCTIONS[name]
        extra = set(kw) - set(names) - {"inplace"}
        if extra or len(args) > len(names) + 1:
            self.refuse(node, f"arguments {sorted(extra) or list(args)}")
        if not isinstance(x, _Data):
            self.refuse(node, "activation of something other than the data")
        vals = [args[k] if k < len(args) else kw.get(n, d) for k, (n, d) in enumerate(zip(names, defaults,
                                                                                         strict=True))]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int | float)) for v in vals):
            self.refuse(node, f"{dict(zip(names, vals, strict=True))}: the bounds/parameters must be "
                              "constant numbers")
        if name in ("clamp", "clip"):
            if vals == [None, None]:
                self.refuse(node, "clamp without bounds")
            lo, hi = (-math.inf if vals[0] is None else vals[0]), (math.inf if vals[1] is None else vals[1])
            if not lo <= hi:
                self.refuse(node, f"min={lo} > max={hi}")
            self.add(pointwise.Hardtanh(lo, hi))
        elif name in ("hardtanh", "hardtanh_"):
            self.add(pointwise.Hardtanh(*vals))
        elif name in ("relu6", "relu6_"):
            self.add(pointwise.ReLU6())
        elif name == "softplus":
            self.add(pointwise.Softplus(*vals))
        else:
            self.add({"silu": pointwise.SiLU, "hardswish": pointwise.Hardswish,
                      "softsign": pointwise.Softsign}[name.rstrip("_")]())
        return x

    def attention(self, node, x, m: _Attention):
        """``(softmax_t(v(tanh(W(x)))) * x).sum(t)``: ``rc.nn.AttentionPool`` (W, v copied; v's bias is
        the same for every step and cancels in the softmax over time, so it is dropped)."""
        self.need(node, x, "BTF" if m.tdim == 1 else "TBF" if m.tdim == 0 else "BFT")
        if m.tdim == 2:
            self.refuse(node, "attention pooling over the last axis: expected the time axis of (B, T, F) or "
                              "(T, B, F) data")
        self.add(_build.attention(_np(m.W.weight), None if m.W.bias is None else _np(m.W.bias),
                                  _np(m.v.weight), self.dtype))
        return _Data(("B", "F"))

    def softmax(self, node, x, dim, log: bool = False):
        """A (log-)softmax over the features (the data's ``F`` axis): ``rc.nn.Softmax`` / ``LogSoftmax``."""
        from rnncore.nn.pointwise import LogSoftmax, Softmax

        if not isinstance(x, _Data):
            self.refuse(node, "softmax of something other than the data")
        labs = self.labels(x.axes)
        if dim is None or not -len(labs) <= int(dim) < len(labs) or labs[int(dim)] != "F":
            why = self.attn_why.get(node)
            att = "" if why is None or log else (
                "; over time, the importer recognises attention pooling (e = v(tanh(W(x))), a = "
                "softmax(e, time), (a * x).sum(time) or torch.bmm(a.transpose(1, 2), x).squeeze(1)), "
                f"but here {why}")
            self.refuse(node, f"softmax over dim={dim} of data {tuple(labs)}; only over the features{att}")
        self.add(LogSoftmax() if log else Softmax())
        return x

    def getitem(self, node, x, idx):
        written = idx
        if isinstance(x, _Data | _State) and isinstance(idx, tuple):
            while len(idx) > 1 and idx[-1] == slice(None):
                idx = idx[:-1]                # y[:, -1, :] is y[:, -1], h_n[-1, :, :] is h_n[-1]
            idx = idx[0] if len(idx) == 1 else idx
        if isinstance(x, _State) and not (x.part is None and type(x.rnn).__name__ == "LSTM") and \
                isinstance(idx, int) and not isinstance(idx, bool):
            # h_n[k] counted from the front: its rows are layers x directions, so for a one-layer
            # network h_n[0] (the tutorials' ``hidden[0]``) is h_n[-1], and h_n[2 L - 2] is h_n[-2]
            rows = x.rnn.num_layers * (2 if x.rnn.bidirectional else 1)
            idx = idx - rows if 0 <= idx < rows else idx
        if isinstance(x, _RnnOut):
            if idx == 0:
                return _Data(x.axes)
            if idx == 1:
                return _State(x.rnn, None)
        if isinstance(x, _State) and x.part is None and type(x.rnn).__name__ == "LSTM" and idx in (0, 1):
            return _State(x.rnn, idx)
        if isinstance(x, _State) and idx in (-2, -1) and x.rnn.bidirectional and x.part != 1 and not (
                x.part is None and type(x.rnn).__name__ == "LSTM"):
            return _Pick(x.rnn, idx)
        if isinstance(x, _State) and idx == -1:
            rnn = x.rnn
            if rnn.bidirectional or x.part == 1 or (x.part is None and type(rnn).__name__ == "LSTM"):
                self.refuse(node, "only h_n[-1] of a one-direction layer is understood (its last step)")
            self.add(_build.pool("last", False))
            return _Data(("B", "F"))
        if isinstance(x, _Data) and len(x.axes) == 3:
            labs = self.labels(x.axes)
            if isinstance(idx, tuple) and len(idx) == 2 and idx[0] == slice(None) and idx[1] == -1:
                self.need(node, x, "BTF")
            elif idx == -1:
                self.need(node, x, "TBF")
            else:
                self.refuse(node, f"indexing {written!r} of data {tuple(labs)} (only the last step, "
                                  "y[:, -1])")
            self.add(_build.pool("last", False))
            return _Data(("B", "F"))
        self.refuse(node, f"indexing {written!r} of {type(x).__name__.strip('_')}")

    def concat_pool(self, node, parts: list, vals: dict):
        """``torch.cat([pool_1(y), pool_2(y), ...], -1)`` of poolings over time of one tensor ``y`` (the
        latest point of the chain): ``rc.nn.ConcatPool(pool_1, pool_2, ...)``, in the same order."""
        pools, seen, vers = [], set(), set()
        for kind, src, dim, part in parts:
            v = vals.get(src)
            if kind in ("mean", "max"):
                self._time_dim(part, v, dim, kind)
                pools.append(_build.pool(kind))
            elif kind == "last" and isinstance(v, _Data):
                self.need(part, v, "BTF" if dim == 1 else "TBF")
                pools.append(_build.pool("last", False))
            elif kind == "last" and isinstance(v, _State):
                if v.rnn.bidirectional or v.part == 1 or (v.part is None and type(v.rnn).__name__ == "LSTM"):
                    self.refuse(part, "only h_n[-1] of a one-direction layer is understood in a "
                                      "concatenation (its last step), or torch.cat((h_n[-2], h_n[-1]), -1) "
                                      "of a bidirectional one")
                pools.append(_build.pool("last", False))
            elif kind == "last2" and isinstance(v, _State) and v.rnn.bidirectional and v.part != 1 and not (
                    v.part is None and type(v.rnn).__name__ == "LSTM"):
                pools.append(_build.pool("last", True))
            else:
                self.refuse(part, f"a pooling of {type(v).__name__.strip('_') if v is not None else src!r} "
                                  "in a concatenation; expected the outputs or the final state of the last "
                                  "recurrent layer")
            key = (kind, getattr(pools[-1], "bidirectional", False))
            if key[0] == "last" or key[0] == "last2":
                key = ("last",)
            if key in seen:
                self.refuse(node, f"concatenates the same pooling twice ({part.name!r}: {kind}); "
                                  "rnncore's ConcatPool holds each of last step, mean and max once")
            seen.add(key)
            vers.add(getattr(v, "ver", None))
        if len(vers) != 1 or vers != {self.cur}:
            self.refuse(node, "concatenates poolings of different tensors "
                              f"({', '.join(repr(p[1].name) for p in parts)}); rnncore's ConcatPool pools "
                              "one tensor, the output of the latest layer")
        self.add(_build.concat_pool(pools))
        return self.new_point(_Data(("B", "F")))

    def cat_state(self, node, vals: dict):
        """``torch.cat((h_n[-2], h_n[-1]), -1)`` of a bidirectional layer: the forward direction's
        last step and the backward direction's first, ``rc.nn.LastStep(bidirectional=True)``."""
        import torch.fx as fx

        parts = _fx_arg(node, 0, "tensors")
        dim = _fx_arg(node, 1, "dim", 0)
        picks = [vals.get(p) if isinstance(p, fx.Node) else p for p in parts] \
            if isinstance(parts, tuple | list) else []
        if len(picks) != 2 or not all(isinstance(p, _Pick) for p in picks) or dim not in (-1, 1) or \
                picks[0].rnn is not picks[1].rnn or [p.idx for p in picks] != [-2, -1] or \
                set(node.kwargs) - {"dim", "tensors"}:
            self.refuse(node, "a concatenation; understood: torch.cat((h_n[-2], h_n[-1]), -1) of a "
                              "bidirectional layer (both directions' final states)")
        self.add(_build.pool("last", True))
        return self.new_point(_Data(("B", "F")))

    def residual(self, node, a, b):
        """``x + f(x)``: the layers between the two points become ``rc.nn.Residual(f)``."""
        from rnncore.nn.layers import Sequential
        from rnncore.nn.pointwise import Residual

        lo, hi = (b, a) if getattr(a, "ver", None) == self.cur else (a, b)
        if hi.ver != self.cur or lo.ver not in self.points or self.points[lo.ver] >= self.points[hi.ver]:
            self.refuse(node, "adds two values of the data that are not x and f(x) (f: the layers after "
                              "x, in a chain)")
        if self.labels(lo.axes) != self.labels(hi.axes) or lo.pad or hi.pad:
            self.refuse(node, f"adds data {tuple(self.labels(lo.axes))} to {tuple(self.labels(hi.axes))}: "
                              "x + f(x) needs f(x) in x's layout")
        start = self.points[lo.ver]
        f = self.modules[start:]
        try:
            res = Residual(f[0] if len(f) == 1 else Sequential(*f))
        except (TypeError, ValueError) as e:
            self.refuse(node, f"x + f(x) around a recurrent layer ({e})")
        del self.modules[start:]
        self.points = {k: v for k, v in self.points.items() if v <= start and k != hi.ver}
        self.add(res)
        out = self.new_point(_Data(hi.axes))
        out.fresh = True
        return out

    def time_pad(self, node, x, pads, zeros: bool):
        """Zero padding (left, right) of the time axis of (B, F, T) data, kept for the next Conv1d."""
        if not isinstance(x, _Data) or not zeros or not isinstance(pads, tuple | list) or len(pads) != 2:
            self.refuse(node, "padding other than zeros (left, right) over the last axis of the data")
        self.need(node, x, "BFT")
        left, right = (int(v) for v in pads)
        if left < 0 or right < 0:
            self.refuse(node, f"negative padding {tuple(pads)}")
        old = x.pad or (0, 0)
        return _Data(x.axes, (old[0] + left, old[1] + right))

    def call_module(self, node, m, args):
        from rnncore.io.torch_import import _convert_leaf

        kind = type(m).__name__
        x = args[0] if args else None
        if len(args) != 1 or node.kwargs:
            if not (kind in ("RNN", "GRU", "LSTM") and len(args) == 2 and args[1] is None):
                self.refuse(node, f"{kind} called with {len(args)} arguments; the importer follows one "
                                  "tensor")
        if kind in ("Dropout", "Identity"):
            return x
        if kind == "ConstantPad1d":
            return self.time_pad(node, x, tuple(m.padding), float(m.value) == 0.0)
        if kind in ("Softmax", "LogSoftmax"):
            return self.softmax(node, x, m.dim, log=kind == "LogSoftmax")
        if kind == "AdaptiveMaxPool1d":
            return self.adaptive_max(node, x, m.output_size, bool(m.return_indices))
        if kind in ("LeakyReLU", "ELU"):
            from rnncore.nn import pointwise

            self.add(pointwise.LeakyReLU(float(m.negative_slope)) if kind == "LeakyReLU"
                     else pointwise.ELU(float(m.alpha)))
            return x
        if kind in ("Hardtanh", "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign"):
            from rnncore.nn import pointwise

            self.add(pointwise.Hardtanh(float(m.min_val), float(m.max_val)) if kind in ("Hardtanh", "ReLU6")
                     else pointwise.Softplus(float(m.beta), float(m.threshold)) if kind == "Softplus"
                     else getattr(pointwise, kind)())
            return x
        if kind in _ACT_MODULES or kind == "GELU":
            self.add(_build.activation(_ACT_MODULES.get(kind) or
                                       ("gelu_tanh" if m.approximate == "tanh" else "gelu")))
            return x
        if kind == "Conv1d":
            self.need(node, x, "BFT")
            if m.padding_mode not in ("zeros", "reflect"):
                self.refuse(node, f"padding_mode={m.padding_mode!r} (rnncore: 'zeros', 'reflect')")
            pad = m.padding if isinstance(m.padding, str) else int(m.padding[0])
            if x.pad:   # a ConstantPad1d / F.pad before it: one padding (causal when all on the left)
                if isinstance(pad, str) and pad != "valid" or m.padding_mode != "zeros":
                    self.refuse(node, f"padding={m.padding!r}, padding_mode={m.padding_mode!r} after a "
                                      "ConstantPad1d / F.pad (rnncore folds them with integer zero padding)")
                p = 0 if isinstance(pad, str) else pad
                pad = (x.pad[0] + p, x.pad[1] + p)
                if pad == (m.dilation[0] * (m.kernel_size[0] - 1), 0):
                    pad = "causal"
            self.add(_build.conv1d(_np(m.weight), None if m.bias is None else _np(m.bias), stride=m.stride[0],
                                   padding=pad, dilation=m.dilation[0], groups=m.groups,
                                   padding_mode=m.padding_mode, dtype=self.dtype))
            return _Data(x.axes)
        if kind in ("MaxPool1d", "AvgPool1d"):
            from rnncore.nn.conv import AvgPool1d, MaxPool1d

            self.need(node, x, "BFT")

            def one(v):
                return int(v[0]) if isinstance(v, tuple | list) else int(v)

            opts = {"kernel_size": one(m.kernel_size), "stride": one(m.stride), "padding": one(m.padding),
                    "ceil_mode": bool(m.ceil_mode), "dtype": self.dtype}
            channels = self._channels(node)
            if kind == "MaxPool1d":
                if m.return_indices:
                    self.refuse(node, "return_indices=True")
                layer = MaxPool1d(channels=channels or 1, dilation=one(m.dilation), **opts)
            else:
                layer = AvgPool1d(channels=channels or 1, count_include_pad=bool(m.count_include_pad), **opts)
            if channels is None:
                self.unsized.append(layer)
            self.add(layer)
            return x
        if kind == "BatchNorm1d":
            if not m.track_running_stats or m.running_mean is None:
                self.refuse(node, "track_running_stats=False normalises with each batch's statistics, "
                                  "also in eval mode")
            self.need(node, x, "BFT" if isinstance(x, _Data) and len(x.axes) == 3 else "BF")
            self.add(_build.batch_norm(_np(m.running_mean), _np(m.running_var),
                                       None if m.weight is None else _np(m.weight),
                                       None if m.bias is None else _np(m.bias), m.eps, self.dtype))
            return x
        if kind == "InstanceNorm1d":
            from rnncore.nn.norm import InstanceNorm1d

            if m.track_running_stats:
                self.refuse(node, "track_running_stats=True normalises with running statistics in eval mode; "
                                  "rnncore's InstanceNorm1d uses each sequence's own (PyTorch's default)")
            self.need(node, x, "BFT")
            layer = InstanceNorm1d(m.num_features, eps=m.eps, affine=m.affine, dtype=self.dtype)
            if m.affine:
                layer.params["weight"] = _np(m.weight).astype(self.dtype)
                layer.params["bias"] = _np(m.bias).astype(self.dtype)
            self.add(layer)
            return x
        if kind == "LayerNorm":
            if len(m.normalized_shape) != 1:
                self.refuse(node, f"normalized_shape={tuple(m.normalized_shape)}: rnncore normalises the "
                                  "last axis only")
            self._features_last(node, x)
            self.add(_build.layer_norm(None if m.weight is None else _np(m.weight),
                                       None if m.bias is None else _np(m.bias), m.eps,
                                       m.normalized_shape[0], self.dtype))
            return x
        if kind == "Linear":
            self._features_last(node, x)
            if x.half is not None:      # one direction's final state: [W | 0] or [0 | W]
                self.add(_build.one_direction_linear(_convert_leaf(m, node.target, self.dtype), x.half))
                return _Data(x.axes)
            self.add(_convert_leaf(m, node.target, self.dtype))
            return x
        if kind == "Embedding":
            if not isinstance(x, _Data) or x.axes != self.input_axes or self.modules:
                self.refuse(node, "an nn.Embedding must read the module's input (token ids)")
            self.integer = True
            self.input_axes = ("X0", "X1")
            self.add(_convert_leaf(m, node.target, self.dtype))
            return _Data(("X0", "X1", "F"))
        if kind in ("RNN", "GRU", "LSTM"):
            self.need(node, x, "BTF" if m.batch_first else "TBF")
            self.add(_convert_leaf(m, node.target, self.dtype))
            return _RnnOut(x.axes, self.modules[-1], m)
        self.refuse(node, f"unsupported module {node.target!r} of type {type(m).__module__}.{kind}; "
                          f"supported: {_SUPPORTED}")

    def _features_last(self, node, x) -> None:
        if not isinstance(x, _Data) or len(x.axes) not in (2, 3):
            self.refuse(node, "expected the data here")
        if len(x.axes) == 2:
            self.need(node, x, "BF")
            return
        last = self.lab(x.axes[-1])
        if last.startswith("X"):
            self.alias[last] = "F"
        elif last != "F":
            self.refuse(node, f"reads the features on the last axis, but the data is "
                              f"{tuple(self.labels(x.axes))}")

    def _channels(self, node) -> int | None:
        """The data's feature count before a pooling: the last sized layer's output, or None for a
        pooling that reads the input (``from_torch_fx`` sets it to the input's feature size, the
        input size of the first sized layer)."""
        for m in reversed(self.modules):
            if m in self.unsized:
                return None
            if type(m).__name__ == "Embedding":    # (vocabulary, features)
                return int(m.params["weight"].shape[1])
            for attr in ("out_channels", "channels", "num_features", "normalized_shape", "out_features"):
                if hasattr(m, attr):
                    return int(getattr(m, attr))
            if hasattr(m, "hidden_size"):
                return int(m.params["weight_hh_l0"].shape[1]) * (2 if m.bidirectional else 1)
        return None


def _path_tracer():
    """A ``torch.fx.Tracer`` that remembers the submodule whose ``forward`` tracing failed in, so a
    refusal names it (``'sincnet.conv1d.0' (Encoder)``) and the source line that broke it
    (``where(error)``); torch is imported here, when from_torch runs."""
    import torch.fx as fx

    class Tracer(fx.Tracer):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list = []
            self.failed: list | None = None

        def call_module(self, m, forward, args, kwargs):
            self.stack.append(f"{self.path_of_module(m) or '?'!r} ({type(m).__name__})")
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception:
                if self.failed is None:
                    self.failed = list(self.stack)
                raise
            finally:
                self.stack.pop()

        def where(self, e: BaseException) -> str:
            import os
            import traceback

            at = ""
            if self.failed:
                at = f" inside the submodule {self.failed[-1]}"
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f"{os.sep}torch{os.sep}"
                      not in f.filename and not f.filename.endswith("torch_fx.py")]
            if frames:
                f = frames[-1]
                line = (f.line or "").strip()
                at += f", at {os.path.basename(f.filename)}:{f.lineno} in {f.name} ({line!r})"
            return at

    return Tracer()


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _in_size(m) -> int | None:
    for attr in ("in_channels", "input_size", "in_features", "normalized_shape", "num_features", "channels"):
        if hasattr(m, attr):
            return int(getattr(m, attr))
    if type(m).__name__ == "Residual":   # x + f(x): f's first layer's
        fn = m.fn
        return _in_size(next(iter(fn)) if type(fn).__name__ == "Sequential" else fn)
    return None


def _min_steps(modules: list, out_steps: int) -> int:
    """The input steps that give ``out_steps`` output steps through the layers over time (a strided
    Conv1d / pooling needs a window's samples per output): back through each ``L_in = (L_out - 1)
    stride + dilation (k - 1) + 1 - padding``, at least ``out_steps``."""
    n = out_steps
    for m in reversed(modules):
        k = getattr(m, "kernel_size", None)
        if isinstance(k, int) and hasattr(m, "stride") and hasattr(m, "pad_left"):
            n = (n - 1) * m.stride + m.dilation * (k - 1) + 1 - m.pad_left - m.pad_right
            n = max(n, 1)
    return max(n, out_steps)


def from_torch_fx(module, dtype: str, seed: int):
    """The rnncore ``Sequential`` of a traced chain (see the module docstring)."""
    import torch

    tr = _Tracer(module, dtype)
    out = tr.run()
    from rnncore.nn.layers import Sequential

    if not tr.modules:
        raise ValueError(f"from_torch: {type(module).__name__} has no layer to import")
    model = Sequential(*tr.modules)
    in_lab = "".join(tr.lab(a) for a in tr.input_axes)
    out_lab = "".join(tr.lab(a) for a in out.axes)
    if any(c not in "BTF" for c in in_lab + out_lab):
        raise ValueError(f"from_torch: {type(module).__name__}: the meaning of the input axes "
                         f"{in_lab} is not fixed by any layer")
    model.torch_layout = (in_lab, out_lab)
    # run both on a random batch: the chain read from the trace must be the module's function
    g = np.random.default_rng(seed)
    sizes = {"B": 3, "T": _min_steps(tr.modules, 24)}
    first = next(m for m in tr.modules)
    if tr.integer:
        x = g.integers(0, first.params["weight"].shape[0], (3, sizes["T"]))
        xt = torch.as_tensor(x if in_lab == "BT" else x.T)
    else:
        # the first layer that has an input size (the layers before it, activations and poolings,
        # keep the feature count)
        sizes["F"] = next((n for m in tr.modules if m not in tr.unsized and (n := _in_size(m)) is not None),
                          None)
        if sizes["F"] is None:
            raise ValueError(f"from_torch: {type(module).__name__}: cannot tell the input's feature size: "
                             f"none of its layers {[type(m).__name__ for m in tr.modules]} has one")
        for m in tr.unsized:
            m.channels = sizes["F"]
        x = g.standard_normal((3, sizes["T"], sizes["F"]))
        p = next(module.parameters(), None)
        perm = ["BTF".index(c) for c in in_lab]
        xt = torch.as_tensor(x.transpose(perm), dtype=p.dtype if p is not None else torch.float32)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            ref = module(xt)
    finally:
        module.train(was_training)
    ref = _np(ref).astype(np.float64)
    if out_lab in ("BFT", "TBF", "FBT", "FTB", "TFB"):
        ref = ref.transpose([out_lab.index(c) for c in "BTF"])
    y = model.forward(x.astype(dtype) if x.dtype.kind == "f" else x)
    y = y[0] if isinstance(y, tuple) else y
    tol = 1e-4
    from rnncore.io.torch_import import _matches

    if not _matches(y, ref, tol):
        diff = np.max(np.abs(y - ref)) if y.shape == ref.shape else f"shape {y.shape} vs {ref.shape}"
        raise ValueError(f"from_torch: the chain read from {type(module).__name__}.forward does not "
                         f"reproduce its output on a random batch (difference {diff})")
    return model
