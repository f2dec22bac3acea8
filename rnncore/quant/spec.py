"""A plain description of an inference model: what the C core runs and the references compute.

A :class:`ModelSpec` is an optional embedding table, a stack of recurrent layers (each one
layer of one cell type, one or two directions), an optional last-step pooling and an optional
linear head. It holds float weights named and shaped as in PyTorch's ``state_dict``;
:func:`spec_from_model` builds it from ``rc.nn`` models and :func:`rnncore.quant.quantize_model`
turns it into the q8 form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: gates per cell type (PyTorch order: GRU r,z,n; LSTM i,f,g,o)
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
HEAD_ACTIVATIONS = ("none", "relu", "sigmoid", "tanh", "softmax")


@dataclass
class CellWeights:
    """One direction of one layer: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, biases ``(G*H,)``."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray


@dataclass
class LayerSpec:
    """One recurrent layer: cell type, sizes, and one :class:`CellWeights` per direction."""

    cell: str
    input_size: int
    hidden_size: int
    directions: list[CellWeights]
    reset_after: bool = True

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def validate(self) -> None:
        if self.cell not in GATES:
            raise ValueError(f"cell: expected one of {sorted(GATES)}, got {self.cell!r}")
        if self.num_directions not in (1, 2):
            raise ValueError(f"directions: expected 1 or 2, got {self.num_directions}")
        g, h, i = GATES[self.cell], self.hidden_size, self.input_size
        for w in self.directions:
            for name, shape in (("weight_ih", (g * h, i)), ("weight_hh", (g * h, h)),
                                ("bias_ih", (g * h,)), ("bias_hh", (g * h,))):
                got = np.shape(getattr(w, name))
                if got != shape:
                    raise ValueError(f"{self.cell} layer {name}: expected shape {shape}, got {got}")


@dataclass
class LinearSpec:
    """``y = act(x @ weight.T + bias)`` with ``weight (O, F)``, ``bias (O,)``."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    activation: str = "none"


@dataclass
class ModelSpec:
    """Embedding? -> recurrent layers -> last step? -> linear head?

    ``last_step`` pools ``y[b, lengths[b] - 1]`` (with ``last_step_bidirectional`` the backward
    half at ``t = 0``, like ``rc.nn.LastStep(bidirectional=True)``); without it the head, if
    any, applies at every step.
    """

    layers: list[LayerSpec]
    embedding: np.ndarray | None = None
    last_step: bool = False
    #: like ``rc.nn.LastStep(bidirectional=True)``: the backward half is taken at t = 0
    last_step_bidirectional: bool = False
    head: LinearSpec | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def bidirectional(self) -> bool:
        return any(layer.num_directions == 2 for layer in self.layers)

    @property
    def output_size(self) -> int:
        if self.head is not None:
            return int(np.shape(self.head.weight)[0])
        return self.layers[-1].output_size

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("model: at least one recurrent layer is required")
        if self.embedding is not None and np.shape(self.embedding)[1] != self.layers[0].input_size:
            raise ValueError(
                f"embedding dim {np.shape(self.embedding)[1]} != first layer input_size "
                f"{self.layers[0].input_size}")
        prev = None
        for k, layer in enumerate(self.layers):
            layer.validate()
            if prev is not None and layer.input_size != prev:
                raise ValueError(f"layer {k}: input_size {layer.input_size}, previous layer gives {prev}")
            prev = layer.output_size
        if self.head is not None:
            o_f = np.shape(self.head.weight)
            if len(o_f) != 2 or o_f[1] != prev:
                raise ValueError(f"head weight: expected shape (O, {prev}), got {o_f}")
            if self.head.activation not in HEAD_ACTIVATIONS:
                raise ValueError(f"head activation: expected one of {HEAD_ACTIVATIONS}, "
                                 f"got {self.head.activation!r}")


def _np(v: object) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def layers_from_state_dict(cell: str, sd: dict, num_layers: int, bidirectional: bool,
                           reset_after: bool = True, prefix: str = "") -> list[LayerSpec]:
    """Build :class:`LayerSpec` s from PyTorch-named weights (``weight_ih_l0``, ``..._reverse``).

    Missing biases are zeros (PyTorch ``bias=False``).
    """
    layers = []
    for k in range(num_layers):
        dirs = []
        for suffix in ("", "_reverse")[: 2 if bidirectional else 1]:
            key = f"{prefix}%s_l{k}{suffix}"
            if key % "weight_ih" not in sd:
                raise KeyError(f"state_dict: missing {key % 'weight_ih'!r}")
            w_ih, w_hh = _np(sd[key % "weight_ih"]), _np(sd[key % "weight_hh"])
            zeros = np.zeros(w_ih.shape[0])
            b_ih = _np(sd[key % "bias_ih"]) if key % "bias_ih" in sd else zeros
            b_hh = _np(sd[key % "bias_hh"]) if key % "bias_hh" in sd else zeros
            dirs.append(CellWeights(w_ih, w_hh, b_ih, b_hh))
        layers.append(LayerSpec(cell, dirs[0].weight_ih.shape[1], dirs[0].weight_hh.shape[1], dirs,
                                reset_after))
    return layers


def _cell_of(module: object) -> str | None:
    name = type(module).__name__.lower()
    if name in ("gru", "grucell"):
        return "gru"
    if name in ("lstm", "lstmcell"):
        return "lstm"
    if name in ("rnn", "rnncell"):
        nl = getattr(module, "nonlinearity", "tanh")
        return f"rnn_{nl}"
    return None


def _recurrent_layers(module: object) -> list[LayerSpec]:
    cell = _cell_of(module)
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM proj_size is not supported by the compiled engine")
    sd = module.state_dict()
    num_layers = int(getattr(module, "num_layers", 1))
    bidirectional = bool(getattr(module, "bidirectional", False))
    reset_after = bool(getattr(module, "reset_after", True))
    return layers_from_state_dict(cell, sd, num_layers, bidirectional, reset_after)


def spec_from_model(model: object) -> ModelSpec:
    """Describe an ``rc.nn`` model (a recurrent layer, or a Sequential of
    ``[Embedding] + recurrent layer(s) + [LastStep] + [Linear [+ activation]]``).

    Raises ``ValueError`` naming the first module that the C core cannot run.
    """
    if isinstance(model, ModelSpec):
        model.validate()
        return model
    if _cell_of(model) is not None:
        spec = ModelSpec(_recurrent_layers(model))
        spec.validate()
        return spec
    children = list(model.children()) if hasattr(model, "children") else None
    if not children:
        raise ValueError("compile: expected an rc.nn recurrent layer or Sequential, "
                         f"got {type(model).__name__}")
    spec = ModelSpec(layers=[])
    stage = 0  # 0: before recurrent, 1: recurrent, 2: after last-step, 3: after head
    for name, m in children:
        kind = type(m).__name__
        cell = _cell_of(m)
        if kind == "Embedding" and stage == 0 and spec.embedding is None:
            spec.embedding = _np(m.state_dict()["weight"])
        elif cell is not None and stage <= 1:
            spec.layers.extend(_recurrent_layers(m))
            stage = 1
        elif kind == "LastStep" and stage == 1:
            spec.last_step = True
            spec.last_step_bidirectional = bool(getattr(m, "bidirectional", False))
            stage = 2
        elif kind == "Dropout":
            continue  # identity at inference
        elif kind == "Linear" and stage in (1, 2) and spec.head is None:
            sd = m.state_dict()
            spec.head = LinearSpec(_np(sd["weight"]), _np(sd["bias"]) if "bias" in sd else None)
            stage = 3
        elif kind.lower() in HEAD_ACTIVATIONS and stage == 3 and spec.head.activation == "none":
            spec.head.activation = kind.lower()
        else:
            raise ValueError(f"compile: module {name!r} ({kind}) is not supported at this position; "
                             "expected [Embedding] + recurrent layers + [LastStep] + [Linear] + [activation]")
    spec.validate()
    return spec


# ------------------------------------------------------------------------------------------
# the .rnc writer's description (rnncore.io.rnc) <-> ModelSpec

_KIND_TO_RNC = {"rnn_tanh": ("rnn", "tanh"), "rnn_relu": ("rnn", "relu"), "gru": ("gru", None),
                "lstm": ("lstm", None)}


def to_rnc_spec(spec: ModelSpec, precision: str, calibration=None, head: bool = True) -> dict:
    """The ``dict`` that :func:`rnncore.io.rnc.write_rnc` takes.

    Parameters
    ----------
    spec : the float model
    precision : "f32" or "q8"
    calibration : a :class:`~rnncore.quant.Calibration` (static q8 scales) or None (dynamic)
    head : include the linear head (False when the engine applies it after pooling itself)
    """
    spec.validate()
    layers = []
    for k, ls in enumerate(spec.layers):
        kind, nonlin = _KIND_TO_RNC[ls.cell]
        weights = {}
        for d, w in enumerate(ls.directions):
            suf = "_reverse" if d else ""
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                weights[name + suf] = np.asarray(getattr(w, name), np.float32)
        layer = {"kind": kind, "bidirectional": ls.num_directions == 2, "weights": weights,
                 "input_size": ls.input_size, "hidden_size": ls.hidden_size}
        if nonlin:
            layer["nonlinearity"] = nonlin
        if kind == "gru":
            layer["reset_after"] = ls.reset_after
        if calibration is not None:
            layer["x_scale"] = calibration.x_scale[k]
            layer["h_scale"] = list(calibration.h_scale[k])
        layers.append(layer)
    emb = None if spec.embedding is None else {"weight": np.asarray(spec.embedding, np.float32)}
    out = {"precision": precision, "input_size": spec.input_size, "layers": layers, "head": None,
           "embedding": emb, "last_step": spec.last_step,
           "last_step_bidirectional": spec.last_step_bidirectional}
    if head and spec.head is not None:
        w = np.asarray(spec.head.weight, np.float32)
        b = np.zeros(w.shape[0]) if spec.head.bias is None else spec.head.bias
        b = np.asarray(b, np.float32)
        out["head"] = {"weight": w, "bias": b, "activation": spec.head.activation,
                       "in_scale": None if calibration is None else calibration.head_scale}
    return out


def spec_from_rnc(d: dict) -> ModelSpec:
    """A :class:`ModelSpec` from :func:`rnncore.io.rnc.read_rnc`'s description (q8 files give the
    dequantised weights ``wq * s``)."""
    layers = []
    for layer in d["layers"]:
        kind = layer["kind"] if layer["kind"] != "rnn" else "rnn_" + layer.get("nonlinearity", "tanh")
        w = layer["weights"]
        dirs = [CellWeights(w["weight_ih" + suf], w["weight_hh" + suf],
                            w["bias_ih" + suf], w["bias_hh" + suf])
                for suf in ("", "_reverse")[: 2 if layer["bidirectional"] else 1]]
        layers.append(LayerSpec(kind, layer["input_size"], layer["hidden_size"], dirs,
                                bool(layer.get("reset_after", True))))
    emb = d.get("embedding")
    head = d.get("head")
    lin = None if head is None else LinearSpec(head["weight"], head["bias"], head["activation"])
    spec = ModelSpec(layers, embedding=None if emb is None else emb["weight"],
                     last_step=bool(d.get("last_step")),
                     last_step_bidirectional=bool(d.get("last_step_bidirectional")), head=lin)
    spec.validate()
    return spec
