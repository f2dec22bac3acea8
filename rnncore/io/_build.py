"""Shared by the importers: turn a converted layer description into rnncore modules.

Every importer converts the source framework's weights into PyTorch's ``state_dict``
layout (names, shapes, gate order) and hands them here. Layers that the main
reference covers become ``rc.nn.RNN/GRU/LSTM``; layers that need an ONNX-only option
(other activations, ``clip``, ``input_forget``, peepholes) become
:class:`rnncore.nn.extended.ExtendedRecurrent`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from rnncore.nn.extended import _DEFAULT_ACT, ExtendedRecurrent, make_activation
from rnncore.nn.module import Module, resolve_dtype
from rnncore.spec import ModelSpec, spec_from_model

MODES = ("RNN", "GRU", "LSTM")


def _canonical_activations(mode: str, activations, D: int):
    """Per-direction lists of (name, alpha, beta), or None when they are the defaults."""
    if activations is None:
        return None
    n = len(_DEFAULT_ACT[mode])
    specs = []
    for a in activations:
        if isinstance(a, str):
            specs.append(make_activation(a)[1])
        else:
            name, alpha, beta = (tuple(a) + (None, None))[:3]
            specs.append(make_activation(name, alpha, beta)[1])
    if len(specs) == n:
        specs = specs * D
    if len(specs) != n * D:
        raise ValueError(f"activations: {mode} needs {n} per direction ({n * D} in all), got {len(specs)}")
    return [specs[d * n:(d + 1) * n] for d in range(D)]


def recurrent(mode: str, state_dict: Mapping[str, np.ndarray], *, input_size: int, hidden_size: int,
              num_layers: int = 1, bidirectional: bool = False, proj_size: int = 0,
              nonlinearity: str = "tanh", reset_after: bool = True, activations=None,
              clip: float | None = None, input_forget: bool = False, reverse: bool = False,
              initial_h: np.ndarray | None = None, initial_c: np.ndarray | None = None,
              dtype: str = "float64") -> Module:
    """Build a recurrent layer from a PyTorch-layout ``state_dict``.

    ``activations`` (ONNX form, per direction lists of ``(name, alpha, beta)``), ``clip``,
    ``input_forget`` and ``peephole_l*`` keys in ``state_dict`` select
    :class:`ExtendedRecurrent` unless they are equivalent to the defaults (no clip,
    ``f = sigmoid``, ``g = h = tanh``, zero peepholes). ``initial_h`` / ``initial_c``
    ``(L*D, H)``: a learned initial state (a constant of the source model), the state every
    sequence starts from when none is given (ExtendedRecurrent's ``initial_state``).
    """
    mode = mode.upper()
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    D = 2 if bidirectional else 1
    dt = resolve_dtype(dtype)
    sd = {k: np.asarray(v, dtype=dt) for k, v in state_dict.items()}
    acts = _canonical_activations(mode, activations, D)
    if acts is not None and mode == "RNN":
        names = {tuple(a[0] for a in d) for d in acts}
        if names in ({("tanh",)}, {("relu",)}):
            nonlinearity, acts = next(iter(names))[0], None
    if acts is not None and mode != "RNN":
        default = [make_activation(n)[1] for n in _DEFAULT_ACT[mode]]
        if all(d == default for d in acts):
            acts = None
    peep = [k for k in sd if k.startswith("peephole_")]
    if peep and all(not sd[k].any() for k in peep):
        for k in peep:
            del sd[k]
        peep = []
    init = initial_h is not None or initial_c is not None
    extended = acts is not None or clip is not None or input_forget or peep or reverse or init
    if not extended:
        from rnncore.nn.recurrent import GRU, LSTM, RNN

        classes = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}
        kwargs = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                      bidirectional=bidirectional, dtype=dt.name)
        if mode == "RNN":
            kwargs["nonlinearity"] = nonlinearity
        elif mode == "GRU":
            kwargs["reset_after"] = reset_after
        elif proj_size:
            kwargs["proj_size"] = proj_size
        layer = classes[mode](**kwargs)
    else:
        if acts is None and mode == "RNN":
            acts = [[(nonlinearity, None, None)]] * D
        layer = ExtendedRecurrent(mode, input_size, hidden_size, num_layers, bidirectional, proj_size,
                                  reset_after=reset_after,
                                  activations=None if acts is None else [a for d in acts for a in d],
                                  clip=clip, input_forget=input_forget, peepholes=bool(peep),
                                  reverse=reverse, dtype=dt.name)
    layer.load_state_dict(sd)
    if init:
        D_L = num_layers * D
        h0 = np.zeros((D_L, hidden_size), dt) if initial_h is None else np.asarray(initial_h, dt)
        c0 = np.zeros((D_L, hidden_size), dt) if initial_c is None else np.asarray(initial_c, dt)
        layer.initial_state = (h0, c0) if mode == "LSTM" else h0
    return layer


def linear(weight: np.ndarray, bias: np.ndarray | None, dtype: str = "float64") -> Module:
    """``rc.nn.Linear`` with ``weight (out, in)`` and ``bias (out,)`` (zeros bias when None)."""
    from rnncore.nn.layers import Linear

    weight = np.asarray(weight)
    out_f, in_f = weight.shape
    layer = Linear(in_f, out_f, bias=bias is not None, dtype=dtype)
    sd = {"weight": weight} if bias is None else {"weight": weight, "bias": np.asarray(bias).reshape(out_f)}
    layer.load_state_dict(sd)
    return layer


def one_direction_linear(head: Module, direction: int) -> Module:
    """The ``rc.nn.Linear`` ``head`` (``in_features = H``) reading one direction of a bidirectional
    layer's ``[forward | backward]`` features (``2H``): ``W' = [W | 0]`` (``direction`` 0, forward)
    or ``[0 | W]`` (1, backward), the same bias.

    After ``LastStep(bidirectional=True)`` this is PyTorch's ``Linear(h_n[-2])`` / ``Linear(h_n[-1])``
    exactly: the other half's values are finite and multiplied by zeros.
    """
    W = np.asarray(head.params["weight"])
    out_f, H = W.shape
    wide = np.zeros((out_f, 2 * H), W.dtype)
    wide[:, direction * H:(direction + 1) * H] = W
    bias = head.params.get("bias")
    return linear(wide, None if bias is None else np.asarray(bias), head.dtype.name)


def embedding(weight: np.ndarray, padding_idx: int | None = None, dtype: str = "float64") -> Module:
    from rnncore.nn.layers import Embedding

    weight = np.asarray(weight)
    layer = Embedding(weight.shape[0], weight.shape[1], padding_idx=padding_idx, dtype=dtype)
    layer.load_state_dict({"weight": weight})
    return layer


def pool(kind: str, bidirectional: bool = False) -> Module:
    from rnncore.nn.layers import LastStep, MaskedMax, MaskedMean

    if kind == "last":
        return LastStep(bidirectional=bidirectional)
    if kind == "mean":
        return MaskedMean()
    if kind == "max":
        return MaskedMax()
    raise ValueError(f"pool: expected 'last', 'mean' or 'max', got {kind!r}")


def concat_pool(pools: Sequence[Module]) -> Module:
    """``rc.nn.ConcatPool(*pools)``: the poolings' outputs side by side, in order
    (``(B, T, F) -> (B, len(pools) * F)``), like ``torch.cat([y.mean(1), y.max(1).values], 1)``."""
    from rnncore.nn.layers import ConcatPool

    return ConcatPool(*pools)


def attention(weight: np.ndarray, bias: np.ndarray | None, score: np.ndarray,
              dtype: str = "float64") -> Module:
    """``rc.nn.AttentionPool`` with the projection ``weight (A, F)``, ``bias (A,)`` (zeros when None)
    and the score vector ``score`` (``(A,)`` or ``(1, A)``). A bias of the score (``v . u_t + c``)
    is the same for every step and cancels in the softmax over time, so it is not an argument."""
    from rnncore.nn.layers import AttentionPool

    weight = np.asarray(weight)
    A, F = weight.shape
    score = np.asarray(score)
    if score.size != A:
        raise ValueError(f"attention: the score vector has {score.size} entries, the projection {A} outputs")
    layer = AttentionPool(F, A, dtype=dtype)
    layer.proj.load_state_dict({"weight": weight, "bias": np.zeros(A) if bias is None else
                                np.asarray(bias).reshape(A)})
    layer.score.load_state_dict({"weight": score.reshape(1, A)})
    return layer


def sequential(layers: Sequence[Module]) -> Module:
    """One layer stays itself; several become ``rc.nn.Sequential``."""
    if len(layers) == 1:
        return layers[0]
    from rnncore.nn.layers import Sequential

    return Sequential(*layers)


# -- layer descriptions -> modules ------------------------------------------------------------
# An importer describes each layer as a dict: {"kind": "rnn", "mode", "sd" (PyTorch names, layer
# index 0), "input_size", "hidden_size", "bidirectional", "reverse", "reset_after", "activations",
# "clip", "input_forget", "node"}, {"kind": "linear", "weight", "bias"}, {"kind": "embedding",
# "weight"}, {"kind": "pool", "pool": "last" | "mean", "bidirectional"}, {"kind": "reverse_time"} or
# {"kind": "module", "module": an rnncore layer built by the importer}.
def merge_recurrent(layers: list[dict]) -> list[dict]:
    """Merge consecutive single-layer recurrent nodes of one kind into a stacked layer."""
    def key(L):
        D = 2 if L["bidirectional"] else 1
        acts = _canonical_activations(L["mode"], L["activations"] or _DEFAULT_ACT[L["mode"]], D)
        # a layer with a learned initial state stays on its own (its own module)
        init = id(L) if L.get("initial_h") is not None or L.get("initial_c") is not None else None
        return (L["mode"], L["hidden_size"], L["bidirectional"], L["reset_after"], L["clip"],
                L["input_forget"], L["reverse"], any(k.startswith("peep") for k in L["sd"]),
                tuple(tuple(d) for d in acts), init)

    out = []
    for L in layers:
        prev = out[-1] if out else None
        if prev is not None and L["kind"] == "rnn" and prev["kind"] == "rnn" and key(prev) == key(L):
            k = prev["num_layers"]
            for name, v in L["sd"].items():
                prev["sd"][name.replace("_l0", f"_l{k}")] = v
            prev["num_layers"] += 1
            prev["nodes"].append(L.get("node"))
            continue
        L = dict(L)
        if L["kind"] == "rnn":
            L.update(num_layers=1, nodes=[L.get("node")], sd=dict(L["sd"]))
        out.append(L)
    return out


def build_layers(layers: list[dict], dtype: str) -> tuple[list[Module], dict]:
    """Modules for the layer descriptions, stacked recurrent layers merged.

    Returns the modules and ``{node: (recurrent module index, layer)}``.
    """
    from rnncore.nn.extended import ReverseTime

    modules, node_rows, r = [], {}, 0
    for L in merge_recurrent(layers):
        k = L["kind"]
        if k == "rnn":
            modules.append(recurrent(
                L["mode"], L["sd"], input_size=L["input_size"], hidden_size=L["hidden_size"],
                num_layers=L["num_layers"], bidirectional=L["bidirectional"], reset_after=L["reset_after"],
                activations=L["activations"], clip=L["clip"], input_forget=L["input_forget"],
                reverse=L["reverse"], initial_h=L.get("initial_h"), initial_c=L.get("initial_c"),
                dtype=dtype))
            for j, n in enumerate(L["nodes"]):
                node_rows[n] = (r, j)
            r += 1
        elif k == "linear":
            modules.append(linear(L["weight"], L["bias"], dtype))
        elif k == "embedding":
            modules.append(embedding(L["weight"], L.get("padding_idx"), dtype))
        elif k == "reverse_time":
            modules.append(ReverseTime())
        elif k == "module":     # a layer the importer built itself (convolution, pooling, norm ...)
            modules.append(L["module"])
        else:
            modules.append(pool(L["pool"], L["bidirectional"]))
    return modules, node_rows


def as_spec(model: Module, want: bool) -> Module | ModelSpec:
    """``model``, or with ``want`` its :class:`~rnncore.spec.ModelSpec` (what ``as_spec=True``
    of the importers returns)."""
    return spec_from_model(model) if want else model


# -- front-end and per-step layers (shared by the Keras and PyTorch importers) -----------------
def conv1d(weight: np.ndarray, bias: np.ndarray | None, *, stride: int = 1, padding: object = 0,
           dilation: int = 1, groups: int = 1, padding_mode: str = "zeros",
           dtype: str = "float64") -> Module:
    """``rc.nn.Conv1d`` with PyTorch's ``weight (C_out, C_in/groups, k)`` and ``bias (C_out,)``."""
    from rnncore.nn.conv import Conv1d

    weight = np.asarray(weight)
    c_out, c_g, k = weight.shape
    m = Conv1d(c_g * groups, c_out, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
               bias=bias is not None, dtype=dtype, padding_mode=padding_mode)
    m.load_state_dict({"weight": weight} if bias is None else {"weight": weight, "bias": np.asarray(bias)})
    return m


def layer_norm(weight: np.ndarray | None, bias: np.ndarray | None, eps: float, features: int,
               dtype: str = "float64") -> Module:
    """``rc.nn.LayerNorm`` over the last axis (``weight``/``bias`` None: not learned)."""
    from rnncore.nn.norm import LayerNorm

    m = LayerNorm(features, eps=eps, elementwise_affine=weight is not None or bias is not None,
                  bias=bias is not None, dtype=dtype)
    dt = resolve_dtype(dtype)
    if weight is not None or bias is not None:
        m.params["weight"] = (np.ones(features) if weight is None else np.asarray(weight)).astype(dt)
    if bias is not None:
        m.params["bias"] = np.asarray(bias).astype(dt)
    return m


def batch_norm(mean: np.ndarray, var: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
               eps: float, dtype: str = "float64") -> Module:
    """``rc.nn.BatchNorm1d`` holding the running statistics (the layer in inference)."""
    from rnncore.nn.norm import BatchNorm1d

    dt = resolve_dtype(dtype)
    n = np.asarray(mean).shape[0]
    m = BatchNorm1d(n, eps=eps, dtype=dtype)
    m.params["weight"] = (np.ones(n) if weight is None else np.asarray(weight)).astype(dt)
    m.params["bias"] = (np.zeros(n) if bias is None else np.asarray(bias)).astype(dt)
    m.buffers["running_mean"] = np.asarray(mean).astype(dt)
    m.buffers["running_var"] = np.asarray(var).astype(dt)
    return m


#: activation name -> rnncore.nn.pointwise class name and keyword arguments
ACTIVATIONS = {
    "relu": ("ReLU", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
    "hardsigmoid": ("HardSigmoid", {}),     # PyTorch's and Keras 3's: relu6(x + 3) / 6
    "gelu": ("GELU", {}), "gelu_tanh": ("GELU", {"approximate": "tanh"}),
    "elu": ("ELU", {}),                     # Keras' elu: alpha 1
    "relu6": ("ReLU6", {}), "hardtanh": ("Hardtanh", {}), "silu": ("SiLU", {}),
    "hardswish": ("Hardswish", {}),
    "softplus_nothreshold": ("Softplus", {"threshold": math.inf}),   # Keras' / ONNX's: never linear
    "softsign": ("Softsign", {}),
    "leaky_relu_keras": ("LeakyReLU", {"negative_slope": 0.2}),    # keras.activations.leaky_relu
    "softmax": ("Softmax", {}), "log_softmax": ("LogSoftmax", {}),    # over the features (last axis)
}


def activation(name: str) -> Module:
    """The ``rnncore.nn.pointwise`` layer of an activation of :data:`ACTIVATIONS`."""
    from rnncore.nn import pointwise

    cls, kw = ACTIVATIONS[name]
    return getattr(pointwise, cls)(**kw)
