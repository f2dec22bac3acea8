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
``GRU``, ``LSTM`` (``return_sequences`` either way, ``go_backwards``, any activation that
ONNX also has), ``Bidirectional`` (``merge_mode="concat"``), ``GlobalAveragePooling1D``,
``Dense`` / ``TimeDistributed(Dense)`` (linear; a final softmax/sigmoid — in the ``Dense``
or as a following ``Activation`` / ``Softmax`` layer — only with
``strip_final_activation=True``),
``Dropout``-style layers (ignored). Masks (``Masking``, ``Embedding(mask_zero=True)``)
become ``lengths``: the model's ``keras_mask`` attribute says how Keras derived the mask and
:func:`keras_lengths` computes the lengths from a padded batch; only trailing padding is
expressible (Keras also allows holes in the middle).

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
}
_SKIPPED = {"InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
            "AlphaDropout", "ActivityRegularization"}
_GATE_PERM = {"SimpleRNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 1, 2, 3]}
_MODE = {"SimpleRNN": "RNN", "GRU": "GRU", "LSTM": "LSTM"}


def _act(layer, fn) -> tuple:
    name = getattr(fn, "__name__", str(fn))
    if name not in _ACT:
        raise ValueError(
            f"from_keras: layer {layer.name!r} uses activation {name!r}; supported: {sorted(_ACT)}")
    return _ACT[name]


def _cell_weights(layer, sfx: str, sd: dict) -> tuple[int, int]:
    """Convert one Keras recurrent layer's weights into ``sd`` (suffix ``sfx``); return (I, H)."""
    kind = type(layer).__name__
    cell = layer.cell
    w = layer.get_weights()
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


def _rnn_layer(layer, bidirectional_of=None) -> dict:
    kind = type(layer).__name__
    if kind not in _MODE:
        raise ValueError(f"from_keras: unsupported recurrent layer {layer.name!r} ({kind})")
    cell = layer.cell
    if kind == "SimpleRNN":
        acts = [_act(layer, cell.activation)]
    elif kind == "GRU":
        acts = [_act(layer, cell.recurrent_activation), _act(layer, cell.activation)]
    else:
        f, g = _act(layer, cell.recurrent_activation), _act(layer, cell.activation)
        acts = [f, g, g]
    sd: dict = {}
    I, H = _cell_weights(layer, "", sd)
    return {"kind": "rnn", "mode": _MODE[kind], "sd": sd, "input_size": I, "hidden_size": H,
            "bidirectional": False, "reverse": False,
            "reset_after": bool(getattr(cell, "reset_after", True)), "activations": acts, "clip": None,
            "input_forget": False, "return_sequences": bool(layer.return_sequences),
            "go_backwards": bool(layer.go_backwards)}


def _bidirectional(layer) -> dict:
    if layer.merge_mode != "concat":
        raise ValueError(f"from_keras: Bidirectional {layer.name!r} has merge_mode={layer.merge_mode!r}; "
                         "only 'concat' (forward | backward features) matches rnncore")
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if type(fwd) is not type(bwd) or fwd.units != bwd.units or fwd.go_backwards or not bwd.go_backwards:
        raise ValueError(f"from_keras: Bidirectional {layer.name!r} with a custom backward_layer")
    L = _rnn_layer(fwd)
    Lb = _rnn_layer(bwd)
    if Lb["activations"] != L["activations"] or Lb["reset_after"] != L["reset_after"]:
        raise ValueError(f"from_keras: Bidirectional {layer.name!r}: the two directions differ in form")
    _cell_weights(bwd, "_reverse", L["sd"])
    L.update(bidirectional=True, go_backwards=False, return_sequences=bool(fwd.return_sequences))
    return L


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
    ``keras_stripped`` attribute the dropped final activation (``"softmax"``/``"sigmoid"``) or None.

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
    seq = True                      # is the running value still a sequence?
    for i, layer in enumerate(layers):
        k = type(layer).__name__
        if k in _SKIPPED:
            continue
        if not seq and k not in ("Dense", "Activation", "Softmax"):
            raise ValueError(f"from_keras: layer {layer.name!r} ({k}) after the sequence was pooled")
        if k == "Masking":
            if descr:
                raise ValueError(f"from_keras: Masking {layer.name!r} must come first")
            mask = ("value", float(layer.mask_value))
        elif k == "Embedding":
            if descr:
                raise ValueError(f"from_keras: Embedding {layer.name!r} must come first")
            if layer.mask_zero:
                mask = ("zero", None)
            descr.append({"kind": "embedding", "weight": layer.get_weights()[0]})
        elif k in _MODE or k == "Bidirectional":
            L = _bidirectional(layer) if k == "Bidirectional" else _rnn_layer(layer)
            if getattr(layer, "return_state", False) or getattr(getattr(layer, "forward_layer", None),
                                                                "return_state", False):
                raise ValueError(f"from_keras: {layer.name!r} has return_state=True")
            if L["go_backwards"]:
                descr.append({"kind": "reverse_time"})
            descr.append(L)
            if not L["return_sequences"]:
                descr.append({"kind": "pool", "pool": "last", "bidirectional": L["bidirectional"]})
                seq = False
        elif k == "GlobalAveragePooling1D":
            if getattr(layer, "data_format", "channels_last") != "channels_last":
                raise ValueError(f"from_keras: {layer.name!r} must be channels_last")
            descr.append({"kind": "pool", "pool": "mean", "bidirectional": False})
            seq = False
        elif k == "Dense" or (k == "TimeDistributed" and type(layer.layer).__name__ == "Dense"):
            dense = layer.layer if k == "TimeDistributed" else layer      # Dense acts per step anyway
            act = getattr(dense.activation, "__name__", str(dense.activation))
            last = all(type(x).__name__ in _SKIPPED for x in layers[i + 1:])
            if act != "linear" and not (strip_final_activation and last and act in ("softmax", "sigmoid")):
                raise ValueError(
                    f"from_keras: Dense {layer.name!r} has activation {act!r}; rnncore heads are linear "
                    "(for a final softmax/sigmoid pass strip_final_activation=True to import the logits)")
            stripped = act if act != "linear" else None
            w = dense.get_weights()
            descr.append({"kind": "linear", "weight": w[0].T, "bias": w[1] if dense.use_bias else None})
        elif k in ("Activation", "Softmax"):
            act = "softmax" if k == "Softmax" else getattr(layer.activation, "__name__", "?")
            last = all(type(x).__name__ in _SKIPPED for x in layers[i + 1:])
            if act == "linear":
                continue
            if not (strip_final_activation and last and act in ("softmax", "sigmoid") and descr
                    and descr[-1]["kind"] == "linear" and stripped is None):
                raise ValueError(
                    f"from_keras: {k} {layer.name!r} ({act!r}) is not supported; a final softmax/sigmoid "
                    "after a Dense layer is dropped with strip_final_activation=True")
            if k == "Softmax" and layer.axis not in (-1, 2):
                raise ValueError(f"from_keras: Softmax {layer.name!r} over axis {layer.axis}")
            stripped = act
        else:
            raise ValueError(f"from_keras: unsupported layer {layer.name!r} ({type(layer).__module__}.{k})")
    if not any(d["kind"] == "rnn" for d in descr):
        raise ValueError("from_keras: the model has no SimpleRNN/GRU/LSTM layer")
    # go_backwards: Keras returns the outputs in processing order, i.e. ReverseTime + forward layer;
    # with return_sequences=False the last of them is the state after reading x[0].
    modules, _ = _build.build_layers(descr, dtype)
    out = _build.sequential(modules)
    out.keras_mask = mask
    out.keras_stripped = stripped  # the final activation dropped by strip_final_activation, or None
    functional = kind not in ("Sequential",) + tuple(_MODE) and hasattr(model, "inputs")
    if check or functional:
        _check(model, out, descr, seed, dtype, stripped)
    return _build.as_spec(out, as_spec)


def _check(model, out: Module, descr: list[dict], seed: int, dtype: str, stripped: str | None) -> None:
    import keras

    g = np.random.default_rng(seed)
    B, T = 2, 5
    first = descr[0]
    if first["kind"] == "embedding":
        x = g.integers(1, first["weight"].shape[0], (B, T))
    else:
        r = next(d for d in descr if d["kind"] == "rnn")
        x = g.standard_normal((B, T, r["input_size"])).astype(np.float32)
    ref = keras.ops.convert_to_numpy(model(x))
    xin = x if x.dtype.kind in "iu" else x.astype(dtype)
    y = out.forward(xin)
    y = y[0] if isinstance(y, tuple) else y
    if stripped == "softmax":
        y = np.exp(y - y.max(axis=-1, keepdims=True))
        y = y / y.sum(axis=-1, keepdims=True)
    elif stripped == "sigmoid":
        y = 1 / (1 + np.exp(-y))
    if y.shape != ref.shape or not np.allclose(y, ref, rtol=1e-4, atol=1e-4):
        diff = np.max(np.abs(y - ref)) if y.shape == ref.shape else f"shape {y.shape} vs {ref.shape}"
        raise ValueError(
            f"from_keras: the imported model does not reproduce {model.name!r} on a random batch "
            f"(difference {diff}); is the model a plain chain of the supported layers?")


def keras_lengths(model: Module, x: np.ndarray) -> np.ndarray:
    """The ``lengths`` that reproduce the Keras mask of an imported model on a padded batch.

    ``Masking(mask_value)``: a step is padding when all its features equal ``mask_value``;
    ``Embedding(mask_zero=True)``: when its token is 0. The length is the index of the last
    non-padding step + 1 (rnncore handles trailing padding only).
    """
    mask = getattr(model, "keras_mask", None)
    x = np.asarray(x)
    if mask is None:
        return np.full(x.shape[0], x.shape[1], np.int64)
    valid = (x != 0) if mask[0] == "zero" else np.any(x != mask[1], axis=-1)
    T = x.shape[1]
    last = T - np.argmax(valid[:, ::-1], axis=1)
    return np.where(valid.any(axis=1), last, 0).astype(np.int64)
