"""Import Keras 3 recurrent models: ``rc.io.from_keras(model_or_path)``.

Keras stores a recurrent cell as ``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)`` and
``bias``; the importer transposes them into PyTorch's ``weight_ih (G*H, I)`` /
``weight_hh (G*H, H)`` and reorders the gates:

=========  ===================  ====================
cell       Keras gate order     PyTorch / rnncore
=========  ===================  ====================
SimpleRNN  (one)                (one)
GRU        ``z, r, h``          ``r, z, n``
LSTM       ``i, f, c, o``       ``i, f, g, o`` (same)
=========  ===================  ====================

A GRU with ``reset_after=True`` (the Keras default) has a ``(2, 3H)`` bias — input row,
recurrent row — and is PyTorch's form; ``reset_after=False`` has one ``(3H,)`` bias and is
the original form ``n = tanh(W_n x + b_n + R_n (r * h))`` (``reset_after=False`` in rnncore,
``bias_hh = 0``).

Supported layers, in a chain: ``InputLayer``, ``Masking``, ``Embedding``, ``SimpleRNN``,
``GRU``, ``LSTM`` and ``RNN`` of their cells or a list of them (``return_sequences`` either way,
``go_backwards``, ``stateful`` as after ``reset_states()``, any activation that ONNX also has),
``Bidirectional`` (a ``backward_layer`` of the same cell form; the forward layer going backwards
with a forward ``backward_layer`` is the swapped bidirectional layer; ``merge_mode="concat"``,
or ``"sum"`` / ``"ave"``: the ``Linear`` ``s [I I]`` on rnncore's ``[forward | backward]``
output, s = 1 or 0.5, folded into the next recurrent layer's input weights or the next ``Dense``
where one follows — past a
``go_backwards`` reversal or ``GlobalAveragePooling1D``, which it commutes with — else a per-step
``rc.nn.Linear(2H, H)``; ``"mul"``, ``forward * backward``, is the per-step ``rc.nn.MulHalves``
on that output; ``None`` in a functional model, below), ``GlobalAveragePooling1D``,
``GlobalMaxPooling1D`` (``rc.nn.MaskedMax``; after a mask only where Keras's maximum, which reads
the padded steps too, is the maximum over the valid steps: ``_global_max``),
``Dense`` / ``TimeDistributed(Dense)`` (linear or with a relu/sigmoid/tanh/gelu/hard_sigmoid/softmax
activation, imported as a following activation layer, ``rc.nn.Softmax`` for softmax; a final
softmax/sigmoid — in the ``Dense`` or as a following ``Activation`` / ``Softmax`` layer — is
dropped instead with ``strip_final_activation=True``), ``Activation`` / ``ReLU`` / ``Softmax``
(over the features) layers, the front-end layers
``Conv1D``, ``MaxPooling1D``, ``AveragePooling1D``, ``LayerNormalization`` and
``BatchNormalization`` (inference; conversions in ``docs/importers.md``), and
``Dropout``-style layers (ignored). A functional model is read by its wiring
(``get_config()``'s inbound nodes): a chain of those layers, and ``Add()([x, f(x)])`` residuals
(``x`` an earlier output of the chain, ``f`` the per-step layers after it and at most one
recurrent layer) imported as ``rc.nn.Residual(f)``. A recurrent layer of several outputs
(``return_state=True``, ``Bidirectional(merge_mode=None)``) imports when the model reads what one
rnncore layer computes: its output; a unidirectional layer's final state ``h`` (the output of the
last valid step: the layer with ``return_sequences=False``); or ``Concatenate`` (features axis) /
``Add`` / ``Average`` / ``Multiply`` of the two directions' outputs ``[f, b]`` or final states
``[fh, bh]`` (merge_mode concat / sum / ave / mul; ``[b, f]`` concatenated is the halves swapped,
the bias-free permutation ``_swap_halves``); one direction alone is that direction's layer (not
the backward sequence: Keras flips it back in time). Any other wiring (the LSTM cell state ``c``,
several outputs read apart, a state as another layer's ``initial_state``, a model
of several outputs) is refused, naming the layer. Masks (``Masking``,
``Embedding(mask_zero=True)``) become ``lengths``: the model's ``keras_mask`` attribute says how
Keras derived the mask and :func:`keras_lengths` computes the lengths from a padded batch; only
trailing padding is expressible, and :func:`keras_lengths` refuses a batch with padding before a
valid step (Keras skips masked steps anywhere).

Keras is imported only inside the functions; for a path, set ``KERAS_BACKEND`` before
calling (any backend works; the tests use ``torch``).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from rnncore.io import _build
from rnncore.io.files import MAX_MODEL_BYTES, check_file
from rnncore.nn.module import Module
from rnncore.spec import ModelSpec

__all__ = ["from_keras", "keras_lengths"]

# Keras activation name -> ONNX-style (name, alpha, beta)
_ACT = {
    "tanh": ("tanh", None, None),
    "sigmoid": ("sigmoid", None, None),
    "relu": ("relu", None, None),
    "linear": ("affine", 1.0, 0.0),
    "softsign": ("softsign", None, None),
    "softplus": ("softplus", None, None),
    "elu": ("elu", 1.0, None),
    "hard_sigmoid": ("hardsigmoid", 1.0 / 6.0, 0.5),    # Keras 3: relu6(x + 3) / 6
    "leaky_relu": ("leakyrelu", 0.2, None),              # Keras 3's default negative_slope
}
_SKIPPED = {"InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
            "AlphaDropout", "ActivityRegularization"}
_GATE_PERM = {"SimpleRNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 1, 2, 3]}
_MODE = {"SimpleRNN": "RNN", "GRU": "GRU", "LSTM": "LSTM"}
_CELL_KIND = {"SimpleRNNCell": "SimpleRNN", "GRUCell": "GRU", "LSTMCell": "LSTM"}


def _act(layer, fn, arg: str) -> tuple:
    name = getattr(fn, "__name__", str(fn))
    if name not in _ACT:
        raise ValueError(
            f"from_keras: layer {layer.name!r} ({type(layer).__name__}) has {arg}={name!r}; expected one of "
            f"{sorted(_ACT)}")
    return _ACT[name]


def _cells(layer) -> list:
    """The cells of a Keras recurrent layer as ``[(kind, cell)]``: one for ``SimpleRNN`` / ``GRU`` /
    ``LSTM`` and ``RNN(SimpleRNNCell / GRUCell / LSTMCell)``, one per cell for ``RNN([cells])``
    (``StackedRNNCells``); other cells are refused, naming the layer and the cell."""
    kind = type(layer).__name__
    if kind in _MODE:
        return [(kind, layer.cell)]
    if kind != "RNN":
        raise ValueError(f"from_keras: unsupported recurrent layer {layer.name!r} ({kind}); expected "
                         "SimpleRNN, GRU, LSTM or RNN of a SimpleRNNCell/GRUCell/LSTMCell")
    cell = layer.cell
    cells = list(cell.cells) if type(cell).__name__ == "StackedRNNCells" else [cell]
    for c in cells:
        if type(c).__name__ not in _CELL_KIND:
            raise ValueError(f"from_keras: RNN {layer.name!r} has cell={type(c).__name__}; expected a "
                             f"SimpleRNNCell, GRUCell or LSTMCell (or a list of them)")
    return [(_CELL_KIND[type(c).__name__], c) for c in cells]


def _cell_weights(layer, sfx: str, sd: dict, cell=None, kind: str | None = None) -> tuple[int, int]:
    """Convert one Keras recurrent cell's weights into ``sd`` (suffix ``sfx``); return (I, H)."""
    if cell is None:
        (kind, cell), = _cells(layer)
    w = cell.get_weights()
    kernel, rec = w[0], w[1]
    I, GH = kernel.shape
    H = rec.shape[0]
    G = GH // H
    perm = np.concatenate([np.arange(H) + H * k for k in _GATE_PERM[kind]])
    sd[f"weight_ih_l0{sfx}"] = kernel.T[perm]
    sd[f"weight_hh_l0{sfx}"] = rec.T[perm]
    if cell.use_bias:
        b = w[2]
        if b.ndim == 2:             # GRU reset_after: (2, 3H) rows input, recurrent
            bi, bh = b[0], b[1]
        else:
            bi, bh = b, np.zeros_like(b)
    else:
        bi = bh = np.zeros(G * H, kernel.dtype)
    sd[f"bias_ih_l0{sfx}"] = bi[perm]
    sd[f"bias_hh_l0{sfx}"] = bh[perm]
    return I, H


def _rnn_layers(layer) -> list[dict]:
    """The descriptions of a Keras recurrent layer: one per cell (``RNN([cells])`` stacks them, each
    but the last returning its sequence)."""
    cells = _cells(layer)
    out = []
    for i, (kind, cell) in enumerate(cells):
        L = _rnn_layer(layer, kind, cell)
        if i < len(cells) - 1:
            L["return_sequences"] = True
        out.append(L)
    return out


def _rnn_layer(layer, kind: str | None = None, cell=None) -> dict:
    if cell is None:
        (kind, cell), = _cells(layer)
    if kind == "SimpleRNN":
        acts = [_act(layer, cell.activation, "activation")]
    elif kind == "GRU":
        acts = [_act(layer, cell.recurrent_activation, "recurrent_activation"),
                _act(layer, cell.activation, "activation")]
    else:
        f = _act(layer, cell.recurrent_activation, "recurrent_activation")
        g = _act(layer, cell.activation, "activation")
        acts = [f, g, g]
    sd: dict = {}
    I, H = _cell_weights(layer, "", sd, cell, kind)
    return {"kind": "rnn", "mode": _MODE[kind], "sd": sd, "input_size": I, "hidden_size": H,
            "bidirectional": False, "reverse": False,
            "reset_after": bool(getattr(cell, "reset_after", True)), "activations": acts, "clip": None,
            "input_forget": False, "return_sequences": bool(layer.return_sequences),
            "go_backwards": bool(layer.go_backwards)}


_MERGE_SCALE = {"concat": None, "sum": 1.0, "ave": 0.5, "mul": None}


def _bidirectional(layer, merge: str | None = None) -> dict:
    """The description of a ``Bidirectional`` layer; ``merge`` is the merge of its two outputs read by a
    functional model's ``Concatenate`` / ``Add`` / ``Average`` / ``Multiply`` (``merge_mode=None``)."""
    mode = merge or layer.merge_mode
    if mode not in _MERGE_SCALE:
        raise ValueError(f"from_keras: Bidirectional {layer.name!r} has merge_mode={layer.merge_mode!r}; "
                         "rnncore imports 'concat' (forward | backward features), the linear maps of it "
                         "'sum' and 'ave' ([I I] and 0.5 [I I]) and 'mul' (forward * backward); None (two "
                         "outputs) is supported only in a functional model that merges them at once with "
                         "Concatenate / Add / Average / Multiply")
    fwd, bwd = layer.forward_layer, layer.backward_layer
    cf, cb = _cells(fwd), _cells(bwd)
    if len(cf) != 1 or len(cb) != 1:
        raise ValueError(f"from_keras: Bidirectional {layer.name!r} wraps a stack of {max(len(cf), len(cb))} "
                         "cells; expected one cell per direction")
    (kf, cell_f), (kb, cell_b) = cf[0], cb[0]
    L = _rnn_layer(fwd, kf, cell_f)
    Lb = _rnn_layer(bwd, kb, cell_b)
    form = {"cell": (kf, kb), "units": (L["hidden_size"], Lb["hidden_size"]),
            "activation": (_act_name(cell_f.activation), _act_name(cell_b.activation)),
            "recurrent_activation": (_act_name(getattr(cell_f, "recurrent_activation", None)),
                                     _act_name(getattr(cell_b, "recurrent_activation", None))),
            "reset_after": (L["reset_after"], Lb["reset_after"])}
    for arg, (a, b) in form.items():
        if a != b:
            raise ValueError(f"from_keras: Bidirectional {layer.name!r}: backward_layer {bwd.name!r} has "
                             f"{arg} {b!r}; expected the forward layer's {a!r} (rnncore's bidirectional "
                             "layer runs one cell form in both directions)")
    swapped = bool(fwd.go_backwards)
    if swapped:
        # forward_layer going backwards, backward_layer forwards: rnncore's forward direction is
        # backward_layer, its reverse direction forward_layer; Keras's output is then rnncore's with
        # the halves swapped (``swapped``), reversed in time when it is a sequence
        L["sd"] = {}
        _cell_weights(bwd, "", L["sd"], cell_b, kb)
        _cell_weights(fwd, "_reverse", L["sd"], cell_f, kf)
    else:
        _cell_weights(bwd, "_reverse", L["sd"], cell_b, kb)
    L.update(bidirectional=True, go_backwards=False, keras_go_backwards=swapped, swapped=swapped,
             return_sequences=bool(fwd.return_sequences))
    return L


def _swap_halves(H: int, dtype) -> dict:
    """The per-step Linear ``[a | b] -> [b | a]`` (a permutation, no bias), folded like a merge."""
    eye = np.eye(H, dtype=dtype)
    zero = np.zeros((H, H), dtype)
    return {"kind": "linear", "weight": np.block([[zero, eye], [eye, zero]]), "bias": None, "merge": "swap"}


def _merge(layer, mode: str, H: int, dtype) -> dict:
    """Bidirectional merge ``mode`` "sum" / "ave" as the per-step Linear ``y = s [I I] [f; b]`` on
    rnncore's ``[forward | backward]`` output (no bias; s = 1 or 0.5); "mul" as the per-step
    ``rc.nn.MulHalves`` ``y = f * b``."""
    if mode == "mul":
        from rnncore.nn.pointwise import MulHalves

        return {"kind": "module", "module": MulHalves(), "out": H}
    s = _MERGE_SCALE[mode]
    eye = np.eye(H, dtype=dtype) * np.asarray(s, dtype)
    return {"kind": "linear", "weight": np.concatenate([eye, eye], axis=1), "bias": None,
            "merge": layer.name}


def _per_step(d: dict) -> bool:
    """True for a description that maps each step alone: a Linear, an activation, MulHalves, LayerNorm
    or BatchNorm1d (inference)."""
    from rnncore.nn.norm import BatchNorm1d, LayerNorm
    from rnncore.nn.pointwise import MulHalves, _Activation

    return d["kind"] == "linear" or (d["kind"] == "module" and isinstance(
        d["module"], _Activation | MulHalves | LayerNorm | BatchNorm1d))


def _move_reversals(descr: list[dict]) -> list[dict]:
    """Move each ``ReverseTime`` past the per-step layers after it (they commute with a reversal in
    time), so that it stands before the next recurrent layer (the engine's ``go_backwards``), and
    drop it before a mean or maximum over time (a reversal does not change them). A ``Bidirectional`` whose
    forward layer goes backwards gives such a reversal after its sequence (``_bidirectional``)."""
    out = list(descr)
    i = 0
    while i < len(out):
        if out[i]["kind"] == "reverse_time":
            j = i
            while j + 1 < len(out) and _per_step(out[j + 1]):
                out[j], out[j + 1] = out[j + 1], out[j]
                j += 1
            if j + 1 < len(out) and out[j + 1]["kind"] == "pool" and out[j + 1]["pool"] in ("mean", "max"):
                del out[j]
                continue
            i = j
        i += 1
    return out


def _fold_merges(descr: list[dict]) -> list[dict]:
    """Fold each Bidirectional merge Linear (``_merge``) into what reads it, where that is exact:
    past per-step-commuting layers (``ReverseTime``, the mean over time: it has no bias) into the
    next recurrent layer's input weights or the next ``Dense``; elsewhere it stays a per-step Linear."""
    from types import SimpleNamespace

    from rnncore.io.onnx_import._lower import _compose, _fold_into

    out: list[dict] = []
    for i, d in enumerate(descr):
        if d.get("merge") is None:
            out.append(d)
            continue
        j = i + 1
        while j < len(descr) and (descr[j]["kind"] == "reverse_time"
                                  or (descr[j]["kind"] == "pool" and descr[j]["pool"] == "mean")):
            j += 1
        nxt = descr[j] if j < len(descr) else None
        lin = SimpleNamespace(params={"weight": d["weight"]})
        if nxt is not None and nxt["kind"] == "rnn":
            rec = SimpleNamespace(params=dict(nxt["sd"]), input_size=nxt["input_size"])
            _fold_into(rec, lin)
            descr[j] = {**nxt, "sd": rec.params, "input_size": rec.input_size}
        elif nxt is not None and nxt["kind"] == "linear" and nxt.get("merge") is None:
            head = SimpleNamespace(params={"weight": nxt["weight"]} if nxt["bias"] is None
                                   else {"weight": nxt["weight"], "bias": nxt["bias"]})
            m = _compose(lin, head)
            descr[j] = {**nxt, "weight": m.params["weight"], "bias": m.params["bias"]}
        else:
            out.append(d)
    return out


def _global_max(layer, descr: list[dict], mask) -> None:
    """Refuse a ``GlobalMaxPooling1D`` that is not ``rc.nn.MaskedMax`` (``y[b, f] = max_{t < len_b}
    x[b, t, f]``), naming the layer and the reason.

    Keras's layer ignores the mask (``ops.max`` over every step), so after a mask its maximum also
    reads the padded steps' values. A recurrent layer with ``zero_output_for_mask=False`` (the
    default; Keras's generic loop, which every backend runs with a mask except TensorFlow's cuDNN
    kernel on a GPU) writes the previous step's output there: trailing padding repeats the last
    valid output, and per-step layers after it map that copy to a copy, so the maximum is over the
    valid steps. Zeros (``zero_output_for_mask=True``, forced by ``Bidirectional``) or any other
    layer between make it ``max(valid maximum, padding value)``, which lengths cannot say."""
    if layer.keepdims:
        raise ValueError(f"from_keras: GlobalMaxPooling1D {layer.name!r} has keepdims=True; rnncore's "
                         "maximum over time returns (batch, features) (keepdims=False)")
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise ValueError(f"from_keras: GlobalMaxPooling1D {layer.name!r} has data_format={fmt!r}: it takes "
                         "the maximum over the last axis, the features of rnncore's (batch, time, features); "
                         "expected 'channels_last' (the maximum over time)")
    if mask is None:
        return
    # the layer that wrote the padded steps: past per-step layers and a swapped Bidirectional's reversal
    src = next((d for d in reversed(descr) if not _per_step(d) and d["kind"] != "reverse_time"), None)
    why = None
    if src is None:
        why = ("no recurrent layer comes before it: its padded steps hold the padding (the mask_value "
               "steps, token 0's embedding) through per-step layers")
    elif src["kind"] != "rnn":
        what = src.get("module", src["kind"])
        why = f"the layer before it over time is {what if isinstance(what, str) else type(what).__name__}"
    elif src["bidirectional"] or src.get("keras_zero_masked"):
        why = ("the recurrent layer before it writes zeros at the masked steps (Bidirectional, or "
               "zero_output_for_mask=True), so Keras's maximum is max(valid maximum, 0)")
    elif src["go_backwards"]:
        why = ("the recurrent layer before it has go_backwards=True: its masked steps come first and "
               "hold its initial state (zeros)")
    if why is not None:
        raise ValueError(
            f"from_keras: GlobalMaxPooling1D {layer.name!r} after a mask: Keras's GlobalMaxPooling1D ignores "
            f"the mask and takes the maximum over the padded steps too, and here {why}, which rnncore's "
            "maximum over the valid steps (rc.nn.MaskedMax) is not; expected a unidirectional "
            "recurrent layer with zero_output_for_mask=False (then only per-step layers) before it, or "
            "no mask")


def _load(model_or_path, max_bytes: int = MAX_MODEL_BYTES):
    if not isinstance(model_or_path, str | bytes) and not hasattr(model_or_path, "__fspath__"):
        if not hasattr(model_or_path, "get_weights") and not hasattr(model_or_path, "layers"):
            raise TypeError(f"from_keras: expected a keras model or layer, or the path of a .keras file, "
                            f"got {type(model_or_path).__name__}")
        return model_or_path
    path = os.fsdecode(model_or_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"from_keras: no such file: {path!r}")
    check_file(path, max_bytes, "Keras model file")  # a regular file within the limit
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(f"from_keras: {path!r} is not a .keras file (Keras 3 saves a zip archive)")
    try:
        import keras
    except ModuleNotFoundError as e:
        if e.name == "keras" or os.environ.get("KERAS_BACKEND"):
            raise
        raise ImportError(
            f"from_keras: importing keras needs its backend ({e.name!r} is not installed); set "
            "KERAS_BACKEND=torch (or jax/tensorflow, whichever is installed) before keras is imported"
        ) from e
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - zip, JSON, HDF5 and Keras config errors alike
        raise ValueError(f"from_keras: Keras cannot load {path!r} ({type(e).__name__}: {e})") from e


# Keras activation name -> rnncore.io._build.ACTIVATIONS name (a per-step layer)
_ACT_LAYER = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "hard_sigmoid": "hardsigmoid",
              "gelu": "gelu", "softmax": "softmax", "log_softmax": "log_softmax", "elu": "elu",
              "relu6": "relu6", "hard_tanh": "hardtanh", "silu": "silu", "swish": "silu",
              "hard_silu": "hardswish", "hard_swish": "hardswish", "softplus": "softplus_nothreshold",
              "softsign": "softsign", "leaky_relu": "leaky_relu_keras"}
_FRONT = ("Conv1D", "MaxPooling1D", "AveragePooling1D")   # layers over time


def _act_name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def _act_module(layer, name: str) -> dict:
    """The description of a per-step activation layer, or a refusal naming the layer."""
    if name not in _ACT_LAYER:
        raise ValueError(
            f"from_keras: layer {layer.name!r} ({type(layer).__name__}) uses activation {name!r}; supported "
            f"as a layer: {sorted(_ACT_LAYER)} and 'linear' (a final softmax/sigmoid can be dropped with "
            "strip_final_activation=True)")
    return {"kind": "module", "module": _build.activation(_ACT_LAYER[name])}


def _softmax_axis(layer, k: str, seq: bool) -> None:
    """A ``Softmax`` layer must normalise the features (the last axis), as ``rc.nn.Softmax``."""
    axis = getattr(layer, "axis", -1) if k == "Softmax" else -1
    axes = (-1, 2) if seq else (-1, 1)
    if (axis if isinstance(axis, int) else tuple(axis)) not in axes + ((-1,), (axes[1],)):
        raise ValueError(f"from_keras: Softmax {layer.name!r} has axis={axis!r}; expected the features "
                         f"axis, -1 or {axes[1]}")


def _channels_last(layer) -> None:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise ValueError(f"from_keras: {type(layer).__name__} {layer.name!r} has data_format={fmt!r}; "
                         "rnncore reads (batch, time, features), Keras' channels_last")


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()


def _same_padding(layer, k: int, stride: int, dilation: int, pooling: bool):
    """Keras' ``padding="same"`` as rnncore's ``(padding, ceil_mode)``.

    Keras (TensorFlow) pads ``d(k-1)+1 - 1`` in all at stride 1, the odd one on the right (PyTorch's
    ``"same"``); at a larger stride the total depends on the input length: rnncore's ``"same"`` at
    a stride is that rule (:func:`rnncore.nn.conv.same_padding`; the NumPy forward, no stream, no
    C engine record yet), except for the windows that fix it: a window of at most 2 steps never
    pads on the left (``ceil_mode`` without padding for a pooling), and a window of one step never
    pads at all (``ceil(T / s)`` windows, the last starting at ``s (ceil(T / s) - 1) <= T - 1``):
    ``padding="valid"``."""
    if stride == 1:
        return "same", False
    if k == 1:
        return 0, False
    if pooling and k <= 2:
        return 0, True
    return "same", False


def _front_layer(layer, k: str, channels: int | None, dtype: str) -> list[dict]:
    """Descriptions of Conv1D / pooling / normalisation layers (and a fused activation)."""
    if k == "Conv1D":
        _channels_last(layer)
        kernel = layer.get_weights()[0]                      # (k, C_in/groups, C_out)
        bias = layer.get_weights()[1] if layer.use_bias else None
        ks, stride, dil = kernel.shape[0], int(layer.strides[0]), int(layer.dilation_rate[0])
        pad = layer.padding
        if pad == "same":
            pad, _ = _same_padding(layer, ks, stride, dil, False)
        weight = kernel.transpose(2, 1, 0)                   # PyTorch's (C_out, C_in/groups, k)
        groups = int(getattr(layer, "groups", 1))
        out = [{"kind": "module", "module": _build.conv1d(
            weight, bias, stride=stride, padding=pad, dilation=dil, groups=groups, dtype=dtype),
            "in": weight.shape[1] * groups, "out": weight.shape[0]}]
        act = _act_name(layer.activation)
        return out + ([] if act == "linear" else [_act_module(layer, act)])
    if k in ("MaxPooling1D", "AveragePooling1D"):
        from rnncore.nn.conv import AvgPool1d, MaxPool1d

        _channels_last(layer)
        if channels is None:
            raise ValueError(f"from_keras: {k} {layer.name!r}: the number of features before it is unknown")
        ks, stride = int(layer.pool_size[0]), int(layer.strides[0])
        pad, ceil = (0, False) if layer.padding == "valid" else _same_padding(layer, ks, stride, 1, True)
        if k == "MaxPooling1D":
            return [{"kind": "module", "module": MaxPool1d(
                ks, channels, stride=stride, padding=pad, ceil_mode=ceil, dtype=dtype), "out": channels}]
        if pad == "same" and stride != 1 and _keras_backend() == "torch":
            raise ValueError(
                f"from_keras: AveragePooling1D {layer.name!r} has padding='same' with strides={stride} and "
                f"pool_size={ks}: Keras' torch backend pads it by repeating the edge steps where the split "
                "is uneven, where TensorFlow and JAX leave the padding out of the average (rnncore's "
                "rule); the model computes something else under each backend (load it with "
                "KERAS_BACKEND=tensorflow or jax, or use padding='valid')")
        # Keras averages over the real inputs of each window (the padding is not counted)
        return [{"kind": "module", "module": AvgPool1d(
            ks, channels, stride=stride, padding=pad, ceil_mode=ceil, count_include_pad=False, dtype=dtype),
            "out": channels}]
    if k == "LayerNormalization":
        axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)
        rms = bool(getattr(layer, "rms_scaling", False))
        if axis not in (-1, 2, [-1], [2]) or rms:
            raise ValueError(f"from_keras: LayerNormalization {layer.name!r} over axis {layer.axis}"
                             f"{' with rms_scaling' if rms else ''}; rnncore's LayerNorm normalises the "
                             "last axis (mean and variance)")
        beta = _np(layer.beta) if layer.center else None
        gamma = _np(layer.gamma) if layer.scale else None
        n = (gamma if gamma is not None else beta).shape[0] if (layer.scale or layer.center) else channels
        if n is None:
            raise ValueError(f"from_keras: LayerNormalization {layer.name!r}: unknown feature size")
        eps = float(layer.epsilon)
        return [{"kind": "module", "module": _build.layer_norm(
            gamma, beta, eps, n, dtype), "out": n}]
    if k == "BatchNormalization":
        if layer.axis not in (-1, 2, [-1], [2]):
            raise ValueError(f"from_keras: BatchNormalization {layer.name!r} over axis {layer.axis}; rnncore "
                             "normalises the features, the last axis")
        mean, var = _np(layer.moving_mean), _np(layer.moving_variance)
        gamma = _np(layer.gamma) if layer.scale else None
        beta = _np(layer.beta) if layer.center else None
        eps = float(layer.epsilon)
        return [{"kind": "module", "module": _build.batch_norm(mean, var, gamma, beta, eps, dtype),
                 "out": mean.shape[0]}]
    raise AssertionError(k)  # pragma: no cover


def _input_features(model) -> int | None:
    """The feature size of the model's input, where Keras says it."""
    try:
        shape = model.inputs[0].shape
        return int(shape[-1]) if len(shape) == 3 and shape[-1] is not None else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _input_steps(model) -> int | None:
    """The number of steps the model's input is declared with (``Input((T, F))``, the
    forecasting tutorials), or None when it is free (``Input((None, F))``)."""
    try:
        shape = model.inputs[0].shape
        return int(shape[1]) if len(shape) >= 2 and shape[1] is not None else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _np(v) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(v))


def _features(d: dict) -> int | None:
    """The feature size after a layer description, where it says."""
    if d["kind"] == "rnn":
        return d["hidden_size"] * (2 if d["bidirectional"] else 1)
    if d["kind"] == "linear":
        return d["weight"].shape[0]
    if d["kind"] == "embedding":
        return d["weight"].shape[1]
    return d.get("out")



def _wiring(model) -> dict | None:
    """A functional model's wiring: ``{layer name: [(layer, output index) of the tensors it reads]}``
    (its ``get_config()["layers"][...]["inbound_nodes"]``), and ``"<outputs>"``: the model's outputs;
    None for a Sequential model or a layer.
    A layer called more than once (shared weights) is refused, naming it."""
    if type(model).__name__ not in ("Functional", "Model") or not hasattr(model, "get_config"):
        return None
    try:
        cfg = model.get_config()
    except Exception:  # noqa: BLE001 - a subclassed model without a config: no wiring to read
        return None
    if not isinstance(cfg, dict) or "layers" not in cfg:
        return None

    def refs(v) -> list:
        if isinstance(v, dict):
            tensor = v.get("class_name") == "__keras_tensor__"
            h = v.get("config", {}).get("keras_history") if tensor else None
            return [(h[0], int(h[2]))] if h else [n for x in v.values() for n in refs(x)]
        if isinstance(v, list | tuple):
            return [n for x in v for n in refs(x)]
        return []

    def names(v) -> list:
        return [r[0] for r in refs(v)]

    out = {}
    inputs = {lc.get("name") for lc in cfg["layers"] if lc.get("class_name") == "InputLayer"}
    for lc in cfg["layers"]:
        nodes = lc.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"from_keras: layer {lc.get('name')!r} ({lc.get('class_name')}) is called "
                             f"{len(nodes)} times (shared weights); rnncore imports each layer applied once")
        out[lc.get("name")] = refs(nodes[0]["args"]) if nodes else []
        for kw, v in ((nodes[0].get("kwargs") or {}) if nodes else {}).items():
            # the mask Keras propagates (Masking, Embedding(mask_zero=True)) is recorded as a mask
            # kwarg read from an op; a mask given as a model input is refused
            if names(v) and (kw != "mask" or set(names(v)) & inputs):
                raise ValueError(
                    f"from_keras: layer {lc.get('name')!r} ({lc.get('class_name')}) is called with {kw}= the "
                    f"output of {names(v)}; expected no tensor keyword argument (rnncore's layers read one "
                    "input and start from a zero state: an initial_state or mask input is not imported)")
    outs = cfg.get("output_layers") or []
    outs = [outs] if outs and not isinstance(outs[0], list | tuple) else outs
    out[_OUTPUTS] = [(o[0], int(o[2])) for o in outs]
    return out


_GLOBAL_POOLS = {"GlobalAveragePooling1D": "mean", "GlobalMaxPooling1D": "max"}


def _plan_concat_pools(wiring: dict, objs: dict) -> dict:
    """The ``Concatenate`` layers of a functional model that join poolings over time of one tensor,
    ``concatenate([GlobalAveragePooling1D()(x), GlobalMaxPooling1D()(x)])``: ``{concatenate name:
    [pooling layers, in order]}`` (imported as ``rc.nn.ConcatPool``). A ``Concatenate`` of poolings
    of different tensors, of one pooling twice, or of a pooling read elsewhere too is refused,
    naming it."""
    readers: dict = {}
    for name, srcs in wiring.items():
        for r in srcs:
            readers.setdefault(r[0], []).append(name)
    plans = {}
    for name, srcs in wiring.items():
        layer = objs.get(name)
        if type(layer).__name__ != "Concatenate" or not srcs:
            continue
        pools = [objs.get(r[0]) for r in srcs]
        kinds = [_GLOBAL_POOLS.get(type(q).__name__) for q in pools]
        if not any(kinds):
            continue
        where = f"from_keras: Concatenate {name!r} joins {_ref_names(srcs)}"
        if not all(kinds):
            bad = next(r[0] for r, kd in zip(srcs, kinds, strict=True) if kd is None)
            raise ValueError(f"{where}: {bad!r} ({type(objs.get(bad)).__name__}) is not a "
                             "GlobalAveragePooling1D / GlobalMaxPooling1D; rnncore concatenates poolings "
                             "over time of one tensor only (rc.nn.ConcatPool)")
        if layer.axis not in (-1, 1):
            raise ValueError(f"{where} over axis={layer.axis}; expected the features (axis=-1)")
        read = {tuple(wiring.get(q.name, [])) for q in pools}
        if len(read) != 1 or len(next(iter(read))) != 1:
            raise ValueError(f"{where}, poolings of different tensors "
                             f"({[_ref_names(wiring.get(q.name, [])) for q in pools]}); rnncore's "
                             "ConcatPool pools one tensor")
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"{where}: the same pooling twice ({kinds}); rnncore's ConcatPool holds each "
                             "of mean and max once")
        for q in pools:
            if readers.get(q.name, []) != [name]:
                raise ValueError(f"{where}: {q.name!r} is also read by {readers.get(q.name)}; expected the "
                                 "poolings read by the Concatenate only")
        plans[name] = pools
    return plans


_OUTPUTS = "<outputs>"
_MERGE_LAYERS = {"Concatenate": "concat", "Add": "sum", "Average": "ave", "Multiply": "mul"}


def _output_names(layer) -> list[str]:
    """The names of a Keras recurrent layer's outputs, in Keras's order: ``output`` (``forward output``,
    ``backward output`` for ``Bidirectional(merge_mode=None)``), then with ``return_state=True`` the
    final states (``h``, LSTM ``h, c``; ``forward h``, ..., ``backward h``, ... for a Bidirectional)."""
    if type(layer).__name__ == "Bidirectional":
        outs = ["output"] if layer.merge_mode is not None else ["forward output", "backward output"]
        fwd = layer.forward_layer
        if getattr(fwd, "return_state", False):
            st = ["h", "c"] if _cells(fwd)[-1][0] == "LSTM" else ["h"]
            outs += [f"forward {s}" for s in st] + [f"backward {s}" for s in st]
        return outs
    if not getattr(layer, "return_state", False):
        return ["output"]
    return ["output"] + (["h", "c"] if _cells(layer)[-1][0] == "LSTM" else ["h"])


def _plan_outputs(layer, wiring: dict, objs: dict) -> dict | None:
    """How a functional model reads a recurrent layer of several outputs (``return_state=True`` or
    ``Bidirectional(merge_mode=None)``), as ``{"last", "merge", "swap", "absorb", "use", "direction"}``,
    or None for a layer of one output. Equivalent to one rnncore layer:

    - one output read (by any number of layers): ``output``, or a unidirectional layer's final ``h``
      = the ``return_sequences=False`` layer's output (``last``, the last valid step);
    - the two directions merged at once by one ``Concatenate`` (last axis) / ``Add`` / ``Average`` /
      ``Multiply`` (``absorb``, imported as the layer's ``merge``): ``[forward output, backward
      output]`` or ``[forward h, backward h]`` (``last``), the reverse order ``swap`` (the halves
      swapped; a no-op for the symmetric merges);
    - one direction of a Bidirectional alone (``direction``; its output or final ``h``): that
      direction's Keras layer, except the backward sequence (Keras flips it back in time) and a
      swapped layer's directions.

    Anything else (the cell state ``c``, several outputs read apart) is refused, naming the layer and
    what reads which output."""
    names = _output_names(layer)
    if len(names) == 1:
        return None
    k = type(layer).__name__
    # the layers and the model's outputs reading it (not the ops Keras adds to carry masks: a layer
    # reading such an op other than as its mask is refused by the chain's wiring check)
    reads = [(c, [i for n, i in refs if n == layer.name], refs) for c, refs in wiring.items()
             if (c in objs or c == _OUTPUTS) and any(n == layer.name for n, _ in refs)]
    if not reads:
        ops = [c for c, refs in wiring.items() if any(n == layer.name for n, _ in refs)]
        raise ValueError(f"from_keras: {k} {layer.name!r} has outputs {names}, read by no layer of the "
                         f"model, only by the ops {ops}; rnncore imports a chain of layers")
    used = sorted({i for _, idx, _ in reads for i in idx})
    what = "; ".join(f"{'the model' if c == _OUTPUTS else repr(c)} reads {[names[i] for i in idx]}"
                     for c, idx, _ in reads)
    bidir = k == "Bidirectional"
    if not bidir and len(cells := _cells(layer)) > 1 and used != [0]:
        raise ValueError(f"from_keras: {k} {layer.name!r} has return_state=True with a stack of {len(cells)} "
                         "cells, whose states the model reads; rnncore imports the output of a stack, the "
                         "states of one cell")
    plan = {"last": False, "merge": None, "swap": False, "absorb": None, "use": used[0], "direction": None}
    if len(used) == 1 and names[used[0]] in ("output", "h"):
        return {**plan, "last": names[used[0]] == "h"}
    if len(used) == 1 and bidir and not layer.forward_layer.go_backwards:
        # one direction alone: that direction's Keras layer (the backward one goes backwards), where
        # its output is the layer's own (not the backward sequence, which Keras flips back in time)
        direction, part = names[used[0]].split(" ")
        seq = layer.forward_layer.return_sequences and part == "output"
        if part != "c" and not (direction == "backward" and seq):
            return {**plan, "last": part == "h", "direction": direction}
    merger = objs.get(reads[0][0]) if len(reads) == 1 else None
    if type(merger).__name__ in _MERGE_LAYERS and len(reads[0][2]) == 2 and len(reads[0][1]) == 2:
        c, idx, _ = reads[0]
        pair = tuple(names[i] for i in idx)
        for f, b in (("forward output", "backward output"), ("forward h", "backward h")):
            if pair in ((f, b), (b, f)):
                last = f == "forward h"
                mk = type(merger).__name__
                axes = (-1, 1) if last or not layer.forward_layer.return_sequences else (-1, 2)
                if mk == "Concatenate" and merger.axis not in axes:
                    raise ValueError(f"from_keras: Concatenate {c!r} joins the outputs of {k} {layer.name!r} "
                                     f"on axis {merger.axis}; expected the features axis, {axes[0]} or "
                                     f"{axes[1]}")
                return {**plan, "last": last, "merge": _MERGE_LAYERS[mk], "swap": pair == (b, f), "absorb": c,
                        "use": 0}
    kind = "Bidirectional(merge_mode=None)" if bidir and layer.merge_mode is None else "return_state=True"
    raise ValueError(
        f"from_keras: {k} {layer.name!r} ({kind}) has outputs {names}, read as: {what}; rnncore imports "
        "one of: its output, a unidirectional layer's final state h (the output of the last valid step), "
        "or the two directions' outputs or final h merged at once by one Concatenate / Add / Average / "
        "Multiply, or one direction's output or final h (not the backward sequence: Keras flips it back in "
        "time); not the cell state c, or several outputs read apart")


def _ref_names(refs: list) -> list[str]:
    """``(layer, output index)`` references as names: the layer's, ``layer[i]`` for a later output."""
    return [n if i == 0 else f"{n}[{i}]" for n, i in refs]


def _residual(layer, srcs: list, point: dict, cur: tuple, descr: list, dtype: str) -> list:
    """A functional ``Add()([x, f(x)])``: the descriptions after the point ``x`` become
    ``rc.nn.Residual(f)`` (one module description); other wirings are refused, naming the layer."""
    from rnncore.nn.pointwise import Residual

    name = f"Add {layer.name!r}"
    if len(srcs) != 2 or srcs.count(cur) != 1:
        raise ValueError(f"from_keras: {name} adds {_ref_names(srcs)}; rnncore imports a residual x + f(x) "
                         f"of two values, one of them the output of the layer before it ({cur[0]!r}) and the "
                         "other an earlier output of the chain")
    x = (srcs[0] if srcs[1] == cur else srcs[1])[0]
    cur = cur[0]
    if x not in point:
        raise ValueError(f"from_keras: {name} adds {x!r}, which is not an earlier output of the chain of "
                         f"layers leading to {cur!r}")
    body = descr[point[x]:]
    if not body:
        raise ValueError(f"from_keras: {name} adds {x!r} to itself (no layer between): not a residual "
                         "x + f(x)")
    bad = [d["kind"] for d in body if d["kind"] not in ("module", "linear", "rnn")]
    rnns = [d for d in body if d["kind"] == "rnn"]
    if bad or len(rnns) > 1:
        got = f"a {bad[0]} layer" if bad else f"{len(rnns)} recurrent layers"
        raise ValueError(f"from_keras: {name} adds {x!r} to the output of {cur!r}, across {got}; expected "
                         "rnncore's residual x + f(x) around per-step layers (Conv1D, Dense, normalisation, "
                         "activations) and at most one recurrent layer (return_sequences=True, "
                         "go_backwards=False), not poolings or reversals")
    body = _fold_merges(body)
    modules, _ = _build.build_layers(body, dtype)
    width = next((f for f in map(_features, reversed(body)) if f), None)
    try:
        res = Residual(_build.sequential(modules))
    except TypeError as e:
        raise ValueError(f"from_keras: {name}: {e}") from None
    return descr[:point[x]] + [{"kind": "module", "module": res, "out": width}]


def from_keras(model_or_path, *, dtype: str = "float64", strip_final_activation: bool = False,
               check: bool = True, seed: int = 0, as_spec: bool = False,
               max_bytes: int = MAX_MODEL_BYTES) -> Module | ModelSpec:
    """Convert a Keras 3 model (or a ``.keras`` file) into an rnncore reference model.

    Parameters
    ----------
    model_or_path : a ``keras.Model`` / ``keras.Sequential`` / single recurrent layer, or
        the path of a ``.keras`` file
    dtype : "float64" or "float32"
    strip_final_activation : accept a final ``Dense`` with softmax/sigmoid activation and
        drop it (the imported model then outputs the logits)
    check : run the Keras model and the imported one on a random batch and raise if they
        differ (always on for functional models, whose wiring is not read otherwise)
    seed : seed of that batch
    as_spec : return the model's :class:`~rnncore.spec.ModelSpec` (the description the C core,
        the references and the ``.rnc`` writer read) instead of the ``rc.nn`` model; a model
        the C core cannot run is refused (ValueError naming the module)
    max_bytes : largest ``.keras`` file read from a path (default 2 GiB,
        :data:`rnncore.io.files.MAX_MODEL_BYTES`); a larger or non-regular file (a FIFO,
        ``/dev/zero``) is refused before it is read

    Returns
    -------
    ``rc.nn.RNN/GRU/LSTM`` or ``rc.nn.Sequential`` reading ``x (B, T, F)``; its
    ``keras_mask`` attribute is ``None``, ``("value", mask_value)`` or ``("zero", None)``, its
    ``keras_unpadded`` attribute None or the layer (``go_backwards=True`` and
    ``return_sequences=True`` after a mask) for which :func:`keras_lengths` refuses a padded batch
    (Keras returns its outputs after the reversed padding), its ``keras_stripped`` attribute the
    dropped final activation (``"softmax"``/``"sigmoid"``) or None.

    Raises
    ------
    ValueError
        for a file Keras cannot load (naming the file and Keras's error), a layer or option the
        importer does not support (naming the layer), or an import that does not reproduce Keras.
    FileNotFoundError
        when the path does not exist.
    TypeError
        when ``model_or_path`` is neither a Keras model or layer nor a path.
    """
    model = _load(model_or_path, max_bytes)
    kind = type(model).__name__
    layers = list(model.layers) if hasattr(model, "layers") and kind not in _MODE else [model]
    descr: list[dict] = []
    mask, stripped = None, None
    unpadded = None        # the layer after a mask whose Keras outputs trailing lengths cannot place
    seq = True                      # is the running value still a sequence?
    features = _input_features(model)
    per_step = ("Dense", "Activation", "Softmax", "ReLU", "BatchNormalization", "LayerNormalization",
                "LeakyReLU", "ELU")
    wiring = _wiring(model) if kind not in _MODE else None
    point: dict = {}   # functional: layer name -> the number of descriptions before its output
    cur = prev = None  # functional: the (layer, output index) the chain's value is
    plans: dict = {}   # functional: recurrent layer name -> how its several outputs are read
    if wiring is not None:
        objs = {x.name: x for x in layers}
        plans = {x.name: p for x in layers if type(x).__name__ in _MODE or type(x).__name__ in
                 ("Bidirectional", "RNN") if (p := _plan_outputs(x, wiring, objs)) is not None}
    absorbed = {p["absorb"] for p in plans.values()}
    concats = _plan_concat_pools(wiring, objs) if wiring is not None else {}
    in_concat = {q.name for pools in concats.values() for q in pools}
    for i, layer in enumerate(layers):
        k = type(layer).__name__
        if wiring is not None:   # a functional model: a chain of layers, with Add residuals
            if prev is not None:
                point[prev] = len(descr)
            srcs = wiring.get(layer.name, [])
            if layer.name in in_concat:     # a pooling joined by a Concatenate: imported there
                if srcs != [cur]:
                    raise ValueError(f"from_keras: layer {layer.name!r} ({k}) reads {_ref_names(srcs)}, not "
                                     f"the output of the layer before it ({_ref_names([cur])[0]!r})")
                continue
            if layer.name in concats:
                srcs = [cur]
            prev = layer.name
            if layer.name in absorbed:  # the merge of a layer's two directions, imported with it
                cur = (layer.name, 0)
                continue
            if k == "Add":
                descr = _residual(layer, srcs, point, cur, descr, dtype)
                cur = (layer.name, 0)
                continue
            if k != "InputLayer" and srcs != [cur]:
                raise ValueError(f"from_keras: layer {layer.name!r} ({k}) reads {_ref_names(srcs)}, not the "
                                 f"output of the layer before it ({_ref_names([cur])[0]!r}); rnncore imports "
                                 "a chain of layers, with residuals Add()([x, f(x)])")
            cur = (layer.name, 0)
        inner = type(getattr(layer, "layer", None)).__name__
        if k == "TimeDistributed" and (inner in per_step or inner in _SKIPPED):
            layer, k = layer.layer, inner      # a per-step layer at every step is that layer
        if k in _SKIPPED:
            continue
        if descr:   # the newest layer that states its width (a fused activation after a Conv1D does not)
            features = next((f for f in map(_features, reversed(descr)) if f), None) or features
        if not seq and k == "RepeatVector":
            raise ValueError(f"from_keras: layer {layer.name!r} (RepeatVector) after the sequence was "
                             f"pooled repeats the pooled vector as a new sequence of {layer.n} steps (an "
                             "encoder-decoder, e.g. keras.io's addition_rnn); rnncore's models keep the "
                             "input's time axis (expected per-step outputs of the input's steps or one "
                             "pooled vector): import the encoder (the layers before it) and the decoder "
                             "(an Input((None, F)) model of the layers after it) as two models")
        if not seq and k not in per_step:
            raise ValueError(f"from_keras: layer {layer.name!r} ({k}) after the sequence was pooled (by a "
                             "return_sequences=False layer, GlobalAveragePooling1D or GlobalMaxPooling1D); "
                             "expected a per-step "
                             f"layer there ({', '.join(per_step)})")
        last = all(type(x).__name__ in _SKIPPED for x in layers[i + 1:])
        if k == "Masking":
            if descr:
                raise ValueError(f"from_keras: Masking {layer.name!r} comes after another layer; expected it "
                                 "first (rnncore's lengths describe the model's input)")
            mask = ("value", float(layer.mask_value))
        elif k == "Embedding":
            if descr:
                raise ValueError(f"from_keras: Embedding {layer.name!r} comes after another layer; expected "
                                 "it first (rnncore's embedding reads the model's token ids)")
            if layer.mask_zero:
                mask = ("zero", None)
            descr.append({"kind": "embedding", "weight": layer.get_weights()[0]})
        elif k in _MODE or k in ("Bidirectional", "RNN"):
            plan = plans.get(layer.name)
            if plan is None and (getattr(layer, "return_state", False)
                                 or getattr(getattr(layer, "forward_layer", None), "return_state", False)):
                raise ValueError(f"from_keras: {k} {layer.name!r} has return_state=True; expected "
                                 "return_state=False (rnncore imports the layer's output; its final state "
                                 "h only in a functional model, as `out, h = layer(x)`)")
            plan = plan or {"last": False, "merge": None, "swap": False, "absorb": None, "use": 0,
                            "direction": None}
            merge = plan["merge"] or getattr(layer, "merge_mode", None)
            bidir = k == "Bidirectional" and plan["direction"] is None
            if plan["direction"]:   # one direction of a Bidirectional alone: its Keras layer
                Ls, merge = _rnn_layers(getattr(layer, f"{plan['direction']}_layer")), None
            else:
                Ls = [_bidirectional(layer, merge)] if bidir else _rnn_layers(layer)
            L = Ls[-1]
            if plan["last"]:   # the final state h: the output of the last valid step
                L["return_sequences"] = False
            if wiring is not None:
                cur = (plan["absorb"], 0) if plan["absorb"] else (layer.name, plan["use"])
            if L.get("keras_go_backwards", L["go_backwards"]) and L["return_sequences"] and mask is not None:
                unpadded = unpadded or f"{k} {layer.name!r}"
            if L["go_backwards"]:
                descr.append({"kind": "reverse_time"})
            # what Keras writes at a masked step of the sequence: zeros (zero_output_for_mask, forced by
            # Bidirectional) or the previous step's output (GlobalMaxPooling1D reads it, _global_max)
            L["keras_zero_masked"] = k == "Bidirectional" or bool(getattr(layer, "zero_output_for_mask",
                                                                          False))
            descr += Ls
            if L.get("swapped") and L["return_sequences"]:
                descr.append({"kind": "reverse_time"})
            if not L["return_sequences"]:
                descr.append({"kind": "pool", "pool": "last", "bidirectional": L["bidirectional"]})
                seq = False
            # Keras's halves in rnncore's order [forward | backward]: swapped by a swapped layer and by
            # a Concatenate of [backward, forward] (both: in order)
            if merge == "concat" and bool(L.get("swapped")) != plan["swap"]:
                descr.append(_swap_halves(L["hidden_size"], L["sd"]["weight_ih_l0"].dtype))
            if bidir and merge != "concat":
                descr.append(_merge(layer, merge, L["hidden_size"], L["sd"]["weight_ih_l0"].dtype))
        elif k in _FRONT or k in ("BatchNormalization", "LayerNormalization"):
            if mask is not None and k in _FRONT:
                raise ValueError(f"from_keras: {k} {layer.name!r} after a mask: the lengths of the "
                                 "sequences would not follow the layer over time")
            descr += _front_layer(layer, k, features, dtype)
        elif layer.name in concats:     # concatenate([GlobalAveragePooling1D()(x), GlobalMaxPooling1D()(x)])
            pools = []
            for q in concats[layer.name]:
                qk = type(q).__name__
                if qk == "GlobalMaxPooling1D":
                    _global_max(q, descr, mask)
                elif getattr(q, "data_format", "channels_last") != "channels_last" or q.keepdims:
                    raise ValueError(f"from_keras: {q.name!r} must be channels_last with keepdims=False")
                pools.append(_build.pool(_GLOBAL_POOLS[qk]))
            descr.append({"kind": "module", "module": _build.concat_pool(pools),
                          "out": None if features is None else features * len(pools)})
            seq = False
        elif k == "GlobalAveragePooling1D":
            if getattr(layer, "data_format", "channels_last") != "channels_last":
                raise ValueError(f"from_keras: {layer.name!r} must be channels_last")
            descr.append({"kind": "pool", "pool": "mean", "bidirectional": False})
            seq = False
        elif k == "GlobalMaxPooling1D":
            _global_max(layer, descr, mask)
            descr.append({"kind": "pool", "pool": "max", "bidirectional": False})
            seq = False
        elif k == "Dense" or (k == "TimeDistributed" and type(layer.layer).__name__ == "Dense"):
            dense = layer.layer if k == "TimeDistributed" else layer      # Dense acts per step anyway
            act = _act_name(dense.activation)
            strip = strip_final_activation and last and act in ("softmax", "sigmoid")
            if act not in _ACT_LAYER and act != "linear" and not strip:
                raise ValueError(
                    f"from_keras: Dense {layer.name!r} has activation {act!r}; supported: 'linear', "
                    f"{sorted(_ACT_LAYER)}")
            w = dense.get_weights()
            descr.append({"kind": "linear", "weight": w[0].T, "bias": w[1] if dense.use_bias else None})
            if strip:
                stripped = act
            elif act != "linear":
                descr.append(_act_module(layer, act))
        elif k in ("LeakyReLU", "ELU"):    # Keras' negative_slope (0.3) / alpha (1.0)
            from rnncore.nn import pointwise

            descr.append({"kind": "module", "module": pointwise.LeakyReLU(float(layer.negative_slope))
                          if k == "LeakyReLU" else pointwise.ELU(float(layer.alpha))})
        elif k in ("Activation", "Softmax", "ReLU"):
            act = "softmax" if k == "Softmax" else "relu" if k == "ReLU" else _act_name(layer.activation)
            if k == "ReLU" and (float(layer.negative_slope) != 0 or float(layer.threshold) != 0):
                raise ValueError(f"from_keras: ReLU {layer.name!r} with negative_slope/threshold; "
                                 "rnncore's ReLU is max(x, 0), min(max(x, 0), max_value) with max_value")
            if k == "ReLU" and layer.max_value is not None:   # min(max(x, 0), max_value)
                from rnncore.nn import pointwise

                descr.append({"kind": "module", "module": pointwise.Hardtanh(0.0, float(layer.max_value))})
                continue
            if act == "linear":
                continue
            if (strip_final_activation and last and act in ("softmax", "sigmoid") and descr
                    and descr[-1]["kind"] == "linear" and stripped is None):
                _softmax_axis(layer, k, seq)
                stripped = act
            elif act in _ACT_LAYER:
                _softmax_axis(layer, k, seq)
                descr.append(_act_module(layer, act))
            else:
                raise ValueError(
                    f"from_keras: {k} {layer.name!r} ({act!r}) is not supported; supported activations: "
                    f"{sorted(_ACT_LAYER)}")
        else:
            if k == "TimeDistributed":
                k = f"TimeDistributed({type(layer.layer).__name__})"
            raise ValueError(
                f"from_keras: unsupported layer {layer.name!r} ({type(layer).__module__}.{k}); supported: "
                "InputLayer, Masking, Embedding, SimpleRNN, GRU, LSTM, Bidirectional, Conv1D, MaxPooling1D, "
                "AveragePooling1D, BatchNormalization, LayerNormalization, GlobalAveragePooling1D, "
                "GlobalMaxPooling1D, Dense, "
                "TimeDistributed(Dense), Activation, ReLU, Softmax, Add (a residual x + f(x) of a "
                "functional model), Dropout-style layers")
    if wiring is not None and wiring[_OUTPUTS] != [cur]:
        raise ValueError(f"from_keras: the model's outputs are {_ref_names(wiring[_OUTPUTS])}; expected one, "
                         f"the output of the chain of layers ({_ref_names([cur])[0]!r})")
    if not any(d["kind"] == "rnn" or getattr(d.get("module"), "is_recurrent", False) for d in descr):
        raise ValueError("from_keras: the model has no SimpleRNN/GRU/LSTM layer")
    # go_backwards: Keras returns the outputs in processing order, i.e. ReverseTime + forward layer;
    # with return_sequences=False the last of them is the state after reading x[0].
    descr = _fold_merges(_move_reversals(descr))
    modules, _ = _build.build_layers(descr, dtype)
    out = _build.sequential(modules)
    out.keras_mask = mask
    out.keras_unpadded = unpadded
    out.keras_stripped = stripped  # the final activation dropped by strip_final_activation, or None
    functional = kind not in ("Sequential",) + tuple(_MODE) and hasattr(model, "inputs")
    if check or functional:
        _check(model, out, descr, seed, dtype, stripped)
    return _build.as_spec(out, as_spec)


def _state_variables(model) -> list:
    """The state variables of the ``stateful=True`` recurrent layers of a Keras model (their state
    carried from call to call; rnncore's model starts each run from zero, as Keras after
    ``reset_states()``)."""
    layers = list(model.layers) if hasattr(model, "layers") else [model]
    layers += [getattr(x, w) for x in layers for w in ("forward_layer", "backward_layer") if hasattr(x, w)]
    return [v for x in layers if getattr(x, "stateful", False) for v in (getattr(x, "states", None) or [])]


def _check(model, out: Module, descr: list[dict], seed: int, dtype: str, stripped: str | None) -> None:
    """Compare on a random batch; a stateful model runs from a zero state, its own state put back after."""
    states = _state_variables(model)
    saved = [np.array(_np(v)) for v in states]
    try:
        for v, a in zip(states, saved, strict=True):
            v.assign(np.zeros_like(a))
        _compare(model, out, descr, seed, dtype, stripped, saved[0].shape[0] if saved else 2)
    finally:
        for v, a in zip(states, saved, strict=True):
            v.assign(a)


def _compare(model, out: Module, descr: list[dict], seed: int, dtype: str, stripped: str | None,
             B: int) -> None:
    """Compare ``out`` with Keras on a random batch of 24 steps, else of 12, else of 6 steps (of the
    input's declared number of steps, when ``Input((T, F))`` fixes it: a functional model refuses
    any other).

    The difference is taken relative to ``max(1, max |Keras|)`` (Keras's float32 rounds each entry at
    the scale of the values it is computed from: an entry near 0 of an output of 1e4 is off by ~1e-3)
    and must be within ``1e-4`` or 20 times the imported model's own sensitivity to float32 rounding
    (its output's change when the input moves by float32's half ulp) where that is larger: Keras
    computes in float32, so a model whose update is not contractive (linear gates) is off by about
    that much whatever the import. A batch on which Keras's output is not finite (an unbounded
    recurrence overflowing float32) or on which that sensitivity exceeds 1e-2 (a wrong import is off
    by the order of the output; the check could not tell it) proves nothing: the next, shorter batch
    is used, and if none is left the import is refused, naming the recurrent layers. A difference
    on a batch that can be checked is never retried.
    """
    import keras

    g = np.random.default_rng(seed)
    fixed = _input_steps(model)
    T = fixed or 24
    first = descr[0]
    if first["kind"] == "embedding":
        x = g.integers(1, first["weight"].shape[0], (B, T))
    else:
        F = _input_features(model)
        if F is None:   # the first description that states its input width (go_backwards: past ReverseTime)
            d = next(d for d in descr if d["kind"] != "reverse_time")
            F = d.get("in") or d.get("input_size") or d.get("out")
            F = F or (d["weight"].shape[1] if d["kind"] == "linear" else None)
        x = g.standard_normal((B, T, F)).astype(np.float32)
    noise = g.standard_normal(x.shape)

    def run(v):
        y = out.forward(v)
        y = y[0] if isinstance(y, tuple) else y
        if stripped == "softmax":
            y = np.exp(y - y.max(axis=-1, keepdims=True))
            y = y / y.sum(axis=-1, keepdims=True)
        elif stripped == "sigmoid":
            y = 1 / (1 + np.exp(-y))
        return y

    why = []
    for steps in (T,) if fixed else (24, 12, 6):
        xt = x[:, :steps]
        for v in _state_variables(model):    # each batch from a zero state (stateful=True)
            v.assign(np.zeros(tuple(v.shape), v.dtype))
        try:
            ref = keras.ops.convert_to_numpy(model(xt))
        except Exception:  # noqa: BLE001 - a shorter batch a strided front-end leaves no step of
            if steps == T:
                raise
            why.append(f"{steps} steps: Keras cannot run it")
            break
        if not np.all(np.isfinite(ref)):
            why.append(f"{steps} steps: Keras's output is not finite")
            continue
        xin = xt if xt.dtype.kind in "iu" else xt.astype(dtype)
        y = run(xin)
        scale = max(1.0, float(np.max(np.abs(ref))))
        limit = 1e-4
        if xt.dtype.kind not in "iu" and y.shape == ref.shape:   # token ids: no input to perturb
            nudged = xt.astype(np.float64) * (1 + 6e-8 * noise[:, :steps])
            moved = np.max(np.abs(run(nudged.astype(dtype)) - y))
            if np.isfinite(moved):
                limit = max(limit, 20 * float(moved) / scale)
        if limit > 1e-2:
            why.append(f"{steps} steps: the output moves by {limit / 20:.2g} of its size when the input "
                       "moves by float32's half ulp")
            continue
        # (written "not <=" so that a NaN fails)
        if y.shape != ref.shape or not np.max(np.abs(y - ref)) <= limit * scale:
            diff = np.max(np.abs(y - ref)) if y.shape == ref.shape else f"shape {y.shape} vs {ref.shape}"
            raise ValueError(
                f"from_keras: the imported model does not reproduce {model.name!r} on a random batch of "
                f"{steps} steps (difference {diff}, limit {limit * scale:.3g}); is the model a plain chain "
                "of the supported layers?")
        return
    layers = list(model.layers) if hasattr(model, "layers") else [model]
    rnns = [f"{x.name!r} ({type(x).__name__})" for x in layers
            if type(x).__name__ in ("SimpleRNN", "GRU", "LSTM", "Bidirectional", "RNN")]
    raise ValueError(
        f"from_keras: cannot check the import of {model.name!r} against Keras: expected a random batch on "
        f"which Keras's float32 output is finite and not ill-conditioned, got {'; '.join(why)} (its "
        f"recurrent layers: {', '.join(rnns) or 'none'}: an unbounded recurrence, e.g. a linear "
        "recurrent_activation, grows with the number of steps)")


def keras_lengths(model: Module, x: np.ndarray) -> np.ndarray:
    """The ``lengths`` that reproduce the Keras mask of an imported model on a padded batch.

    ``Masking(mask_value)``: a step is padding when all its features equal ``mask_value``;
    ``Embedding(mask_zero=True)``: when its token is 0. The length is the index of the last
    non-padding step + 1 (rnncore handles trailing padding only).

    Parameters
    ----------
    model : a model returned by :func:`from_keras`
    x : the padded batch, ``(B, T, F)`` for ``Masking`` or ``(B, T)`` token ids for an ``Embedding``

    Returns
    -------
    lengths : ``(B,)`` int64

    Raises
    ------
    ValueError
        when a sequence has a padding step before a valid one (``pad_sequences``' default
        ``padding="pre"``, or a hole): Keras skips such steps, which trailing lengths cannot say;
        when the batch is padded and the model has a ``go_backwards=True``,
        ``return_sequences=True`` layer after its mask (``keras_unpadded``): Keras returns that
        layer's outputs of a padded sequence at the end of the time axis, after its reversed
        padding, which rnncore's lengths cannot place.
    """
    mask = getattr(model, "keras_mask", None)
    x = np.asarray(x)
    if mask is None:
        return np.full(x.shape[0], x.shape[1], np.int64)
    valid = (x != 0) if mask[0] == "zero" else np.any(x != mask[1], axis=-1)
    T = x.shape[1]
    last = T - np.argmax(valid[:, ::-1], axis=1)
    lengths = np.where(valid.any(axis=1), last, 0).astype(np.int64)
    holes = np.arange(T)[None, :] < lengths[:, None]
    holes &= ~valid
    if holes.any():
        b, t = np.argwhere(holes)[0]
        what = "token 0" if mask[0] == "zero" else f"all features equal to mask_value {mask[1]!r}"
        raise ValueError(
            f"keras_lengths: x: sequence {b} has a padding step ({what}) at t={t}, before its valid step "
            f"t={lengths[b] - 1}; expected trailing padding only (pad_sequences(..., padding='post')): "
            "Keras skips every masked step, rnncore's lengths only the steps at the end")
    layer = getattr(model, "keras_unpadded", None)
    if layer is not None and (lengths < T).any():
        b = int(np.argmax(lengths < T))
        raise ValueError(
            f"keras_lengths: x: sequence {b} is padded (length {lengths[b]} of {T}) and the model's {layer} "
            "has go_backwards=True and return_sequences=True after its mask: Keras returns a padded "
            "sequence's outputs of that layer at the end of the time axis, after its reversed padding, "
            "which rnncore's lengths cannot place; expected unpadded sequences (or go_backwards=False / "
            "return_sequences=False in that layer)")
    return lengths
