"""Model files, importers and the ONNX exporter: the ``.rnc`` format (:mod:`rnncore.io.rnc`),
``from_torch`` / ``from_keras`` / ``from_onnx``, and ``to_onnx`` (:mod:`rnncore.io.onnx_export`)."""

from rnncore.io.keras_import import from_keras
from rnncore.io.onnx_export import to_onnx
from rnncore.io.onnx_import import from_onnx
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.io.torch_import import from_torch

__all__ = ["read_rnc", "check_rnc", "RncFormatError", "write_rnc", "from_torch", "from_keras", "from_onnx",
           "to_onnx"]
