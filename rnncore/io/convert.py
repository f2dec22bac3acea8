"""``rnncore convert``: a model file from PyTorch, Keras or ONNX straight to a ``.rnc`` file.

::

    rnncore convert model.onnx -o model.rnc
    rnncore convert model.keras -o model.rnc --precision q8 --calibration X_train.npy
    rnncore convert gru_state_dict.pt -o model.rnc            # a recurrent layer's state_dict

The source format follows the file extension: ``.onnx`` (:func:`rnncore.io.from_onnx`),
``.keras`` (:func:`rnncore.io.from_keras`, ``KERAS_BACKEND`` defaults to ``torch`` here),
``.pt`` / ``.pth`` (:func:`rnncore.io.from_torch`; by default only a ``state_dict`` is read,
with ``torch.load(weights_only=True)``; a pickled whole module needs ``trust_pickle=True`` /
``--trust-pickle`` because unpickling runs code from the file).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rnncore.io.files import MAX_MODEL_BYTES, check_file
from rnncore.spec import ModelSpec, build_rnc

__all__ = ["load_any", "convert", "describe"]


_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


def load_any(source: str | os.PathLike, *, trust_pickle: bool = False, dtype: str = "float32",
             strip_final_activation: bool = False, max_bytes: int = MAX_MODEL_BYTES):
    """Import the model in ``source`` (format by extension) into an rnncore reference model.

    ``source`` must be a regular file of at most ``max_bytes`` (default 2 GiB,
    :data:`rnncore.io.files.MAX_MODEL_BYTES`), checked before any importer reads it.
    ``strip_final_activation`` (.keras / .onnx): accept a final softmax/sigmoid and drop it, so
    the model outputs the logits. A ``.pt`` training checkpoint (a dict with a ``state_dict`` /
    ``model_state_dict`` entry) is read through that entry.
    """
    path = Path(source)
    ext = path.suffix.lower()
    if ext == ".onnx":
        from rnncore.io.onnx_import import from_onnx

        # graph=False: a file to convert must be a chain the C engine runs, not an OnnxGraph
        return from_onnx(path, dtype=dtype, strip_final_activation=strip_final_activation,
                         max_bytes=max_bytes, graph=False)
    if ext == ".keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from rnncore.io.keras_import import from_keras

        return from_keras(str(path), dtype=dtype, strip_final_activation=strip_final_activation,
                          max_bytes=max_bytes)
    if ext in (".pt", ".pth"):
        check_file(path, max_bytes, "PyTorch model file")  # before torch.load reads it
        import torch

        from rnncore.io.torch_import import from_torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        except pickle.UnpicklingError as e:
            if trust_pickle:
                raise
            raise ValueError(
                f"{path} is not a plain state_dict (torch.load(weights_only=True) refused it: "
                f"{str(e).splitlines()[0]}); if it is a pickled module from a source you trust, "
                "pass trust_pickle=True / --trust-pickle (unpickling runs code from the file)"
            ) from e
        except (AttributeError, ImportError) as e:  # only with trust_pickle: the class is not importable
            raise ValueError(_missing_class(e)) from e
        if isinstance(obj, Mapping):
            for key in _CHECKPOINT_KEYS:  # a training checkpoint: {"epoch": ..., "state_dict": {...}}
                if isinstance(obj.get(key), Mapping):
                    obj = obj[key]
                    break
        return from_torch(obj, dtype=dtype)
    raise ValueError(f"convert: unknown model file type {ext!r} (expected .onnx, .keras, .pt or .pth)")


def stripped_activation(model) -> str | None:
    """The final softmax/sigmoid an importer dropped (``strip_final_activation=True``), or None."""
    keras = getattr(model, "keras_stripped", None)
    if keras is not None:
        return keras
    onnx_io = getattr(model, "onnx_io", None)
    ops = list(getattr(onnx_io, "stripped", None) or [])
    if not ops:
        return None
    return {"Softmax": "softmax", "Sigmoid": "sigmoid", "LogSoftmax": "log_softmax"}[ops[-1]]


def with_final_activation(model, activation: str | None) -> ModelSpec:
    """``model``'s :class:`ModelSpec` with ``activation`` applied to its head's output (the .rnc
    head's activation), as the source model did before it was stripped."""
    from rnncore.spec import spec_from_model

    spec = spec_from_model(model)
    if activation is not None:
        if spec.head is None:  # pragma: no cover - the importers strip only after a Dense/Gemm head
            raise ValueError(f"a final {activation} needs a linear head to keep it on")
        spec.head.activation = activation
    return spec


def _missing_class(e: BaseException) -> str:
    """One line for a pickled module whose class (or its module) cannot be imported here."""
    m = re.search(r"Can't get attribute '([^']+)' on <module '([^']+)'", str(e))
    if m:
        cls, mod = m.group(1), m.group(2)
        if mod == "__main__" or mod.endswith(".__main__"):  # python -m rnncore: rnncore.__main__
            what = (f"the pickled module's class {cls!r} was defined in the script that saved the "
                    "file (__main__), which is not running here")
        else:
            what = f"the pickled module's class {cls!r} is not in module {mod!r} here"
    elif isinstance(e, ImportError) and e.name:
        what = f"the pickled module's class comes from module {e.name!r}, which is not importable here"
    else:
        return f"unpickling the module failed: {e}"
    return (f"{what}; load the file in Python where the class is defined and call "
            "rc.io.from_torch(module), make its module importable (PYTHONPATH), or save "
            "module.state_dict() or an ONNX export (torch.onnx.export) instead")


def convert(source: str | os.PathLike, output: str | os.PathLike, *, precision: str = "f32",
            calibration: str | os.PathLike | np.ndarray | None = None,
            state_scale: str | None = None, trust_pickle: bool = False, strip_final_activation: bool = False,
            max_bytes: int = MAX_MODEL_BYTES) -> ModelSpec:
    """Import ``source`` and write it as the ``.rnc`` file ``output``.

    Pure Python (:func:`rnncore.spec.build_rnc`: the model's :class:`~rnncore.spec.ModelSpec`,
    the q8 calibration, :func:`rnncore.io.rnc.write_rnc`); the compiled engine is not needed.
    ``calibration`` (q8 only): representative inputs ``(B, T, F)`` -- an array or a ``.npy``
    file -- for static activation scales; None keeps dynamic per-step scales. ``state_scale``
    (q8 only): None, "dynamic" or "bounded", as in :func:`rnncore.compile`. ``max_bytes``
    bounds both input files (default 2 GiB); larger or non-regular files are refused unread.

    Returns
    -------
    the written model's :class:`~rnncore.spec.ModelSpec`
    """
    model = load_any(source, trust_pickle=trust_pickle, strip_final_activation=strip_final_activation,
                     max_bytes=max_bytes)
    if isinstance(calibration, str | os.PathLike):
        check_file(calibration, max_bytes, "calibration file")
        calibration = np.load(calibration)
    if calibration is not None and np.asarray(calibration).dtype.kind == "f":
        calibration = np.asarray(calibration, np.float32)
    data, spec = build_rnc(model, precision, calibration, state_scale)
    Path(output).write_bytes(data)
    return spec


def describe(spec: ModelSpec, precision: str, nbytes: int) -> str:
    """One line about a written model: layers, precision, sizes, bytes."""
    kinds = "+".join(f"{layer.cell}{'x2' if layer.num_directions == 2 else ''}({layer.hidden_size})"
                     for layer in spec.layers)
    act = "" if spec.head is None or spec.head.activation == "none" else \
        f", head activation {spec.head.activation}"
    return (f"{kinds}, precision={precision!r}, in={spec.input_size}, out={spec.output_size}{act}, "
            f"bytes={nbytes}")


def add_arguments(p) -> None:
    from rnncore.cli.quantize import add_calibration_arguments

    p.add_argument("source", help="the model file: .onnx, .keras, .pt/.pth")
    p.add_argument("-o", "--output", required=True, help="the .rnc file to write")
    p.add_argument("--precision", choices=("f32", "q8", "q4"), default="f32")
    add_calibration_arguments(p)
    p.add_argument("--trust-pickle", action="store_true",
                   help=".pt/.pth holding a whole pickled module (unpickling runs code from the file)")
    final = p.add_mutually_exclusive_group()
    final.add_argument("--strip-final-activation", action="store_true",
                       help=".keras/.onnx: drop a final softmax/sigmoid (the .rnc outputs the logits)")
    final.add_argument("--keep-final-activation", action="store_true",
                       help=".keras/.onnx: keep a final softmax/sigmoid as the .rnc head's activation "
                            "(the .rnc outputs what the source model does; what the importers do "
                            "without either flag)")
    p.add_argument("--max-bytes", type=int, default=MAX_MODEL_BYTES,
                   help="largest input file read (default 2 GiB); larger and non-regular files are refused")


def run(args) -> None:
    """The command: a user's mistake (missing file, unknown format, a model the importers or the
    engine refuse, bad calibration data) ends with one line naming the file at fault, not a
    traceback."""
    from rnncore.cli._common import CLIError, check_output_path
    from rnncore.cli.quantize import build, load_calibration

    if not os.path.exists(args.source):
        raise CLIError(f"{args.source}: no such file")
    check_output_path(args.output)
    calibration = load_calibration(args, args.precision)
    try:
        model = load_any(args.source, trust_pickle=args.trust_pickle, max_bytes=args.max_bytes,
                         strip_final_activation=args.strip_final_activation or args.keep_final_activation)
        if args.keep_final_activation:
            model = with_final_activation(model, stripped_activation(model))
    except ImportError as e:
        raise CLIError(f"{args.source}: needs a package that is not installed ({e})") from e
    except (OSError, ValueError, TypeError) as e:
        msg = " ".join(str(e).split()).removeprefix(f"{args.source}: ")  # the path is said once
        if "strip_final_activation=True" in msg:
            msg += (" (rnncore convert: --keep-final-activation keeps it as the .rnc head's activation, "
                    "--strip-final-activation outputs the logits)")
        raise CLIError(f"{args.source}: {msg}") from e
    args.model = args.source  # what build() blames for the model's own errors
    data = build(model, args.precision, calibration, args)
    try:
        Path(args.output).write_bytes(data)
    except OSError as e:
        raise CLIError(f"-o {args.output}: {e.strerror or e}") from e
    from rnncore.spec import spec_from_model

    spec = model if isinstance(model, ModelSpec) else spec_from_model(model)
    print(f"{args.output}: {describe(spec, args.precision, len(data))}")
