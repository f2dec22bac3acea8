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
    """Embedding? -> recurrent layers -> last step? -> linear head?"""

    layers: list[LayerSpec]
    embedding: np.ndarray | None = None
    last_step: bool = False
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
            stage = 2
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
