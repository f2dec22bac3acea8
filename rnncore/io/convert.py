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
from pathlib import Path

import numpy as np

from rnncore.io.files import MAX_MODEL_BYTES, check_file
from rnncore.spec import ModelSpec, build_rnc

__all__ = ["load_any", "convert", "describe"]


def load_any(source: str | os.PathLike, *, trust_pickle: bool = False, dtype: str = "float32",
             max_bytes: int = MAX_MODEL_BYTES):
    """Import the model in ``source`` (format by extension) into an rnncore reference model.

    ``source`` must be a regular file of at most ``max_bytes`` (default 2 GiB,
    :data:`rnncore.io.files.MAX_MODEL_BYTES`), checked before any importer reads it.
    """
    path = Path(source)
    ext = path.suffix.lower()
    if ext == ".onnx":
        from rnncore.io.onnx_import import from_onnx

        return from_onnx(path, dtype=dtype, max_bytes=max_bytes)
    if ext == ".keras":
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from rnncore.io.keras_import import from_keras

        return from_keras(str(path), dtype=dtype, max_bytes=max_bytes)
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
        return from_torch(obj, dtype=dtype)
    raise ValueError(f"convert: unknown model file type {ext!r} (expected .onnx, .keras, .pt or .pth)")


def convert(source: str | os.PathLike, output: str | os.PathLike, *, precision: str = "f32",
            calibration: str | os.PathLike | np.ndarray | None = None,
            trust_pickle: bool = False, max_bytes: int = MAX_MODEL_BYTES) -> ModelSpec:
    """Import ``source`` and write it as the ``.rnc`` file ``output``.

    Pure Python (:func:`rnncore.spec.build_rnc`: the model's :class:`~rnncore.spec.ModelSpec`,
    the q8 calibration, :func:`rnncore.io.rnc.write_rnc`); the compiled engine is not needed.
    ``calibration`` (q8 only): representative inputs ``(B, T, F)`` -- an array or a ``.npy``
    file -- for static activation scales; None keeps dynamic per-step scales. ``max_bytes``
    bounds both input files (default 2 GiB); larger or non-regular files are refused unread.

    Returns
    -------
    the written model's :class:`~rnncore.spec.ModelSpec`
    """
    model = load_any(source, trust_pickle=trust_pickle, max_bytes=max_bytes)
    if isinstance(calibration, str | os.PathLike):
        check_file(calibration, max_bytes, "calibration file")
        calibration = np.load(calibration)
    if calibration is not None and np.asarray(calibration).dtype.kind == "f":
        calibration = np.asarray(calibration, np.float32)
    data, spec = build_rnc(model, precision, calibration)
    Path(output).write_bytes(data)
    return spec


def describe(spec: ModelSpec, precision: str, nbytes: int) -> str:
    """One line about a written model: layers, precision, sizes, bytes."""
    kinds = "+".join(f"{layer.cell}{'x2' if layer.num_directions == 2 else ''}({layer.hidden_size})"
                     for layer in spec.layers)
    return (f"{kinds}, precision={precision!r}, in={spec.input_size}, out={spec.output_size}, "
            f"bytes={nbytes}")


def add_arguments(p) -> None:
    p.add_argument("source", help="the model file: .onnx, .keras, .pt/.pth")
    p.add_argument("-o", "--output", required=True, help="the .rnc file to write")
    p.add_argument("--precision", choices=("f32", "q8"), default="f32")
    p.add_argument("--calibration", default=None, help="q8: .npy file of inputs (B, T, F) for static scales")
    p.add_argument("--trust-pickle", action="store_true",
                   help=".pt/.pth holding a whole pickled module (unpickling runs code from the file)")
    p.add_argument("--max-bytes", type=int, default=MAX_MODEL_BYTES,
                   help="largest input file read (default 2 GiB); larger and non-regular files are refused")


def run(args) -> None:
    """The command: a user's mistake (missing file, unknown format, a model the importers or the
    engine refuse) ends with one line naming it, not a traceback."""
    if not os.path.exists(args.source):
        raise SystemExit(f"rnncore convert: {args.source}: no such file")
    try:
        spec = convert(args.source, args.output, precision=args.precision, calibration=args.calibration,
                       trust_pickle=args.trust_pickle, max_bytes=args.max_bytes)
    except (OSError, ValueError, TypeError, ImportError) as e:
        why = " ".join(str(e).split()).removeprefix(f"{args.source}: ")
        raise SystemExit(f"rnncore convert: {args.source}: {type(e).__name__}: {why}") from e
    print(f"{args.output}: {describe(spec, args.precision, os.path.getsize(args.output))}")
