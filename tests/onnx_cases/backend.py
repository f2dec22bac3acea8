"""ONNX's own backend node test cases for RNN, GRU and LSTM, regenerated from the installed package.

The ``onnx`` wheel ships the case generators (``onnx/backend/test/case/node/{rnn,gru,lstm}.py``)
but not their data. Each generator method builds a node, computes the expected outputs with
ONNX's NumPy helper and calls ``expect(node, inputs, outputs, name)``. :func:`collect` runs
every generator of one operator with ``np.random`` seeded, intercepts ``expect`` and returns
the captured cases; the weights (``W``, ``R``, ``B``, ``P``) are moved from graph inputs to
initializers so that an importer sees them as constants.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import numpy as np

WEIGHT_SLOTS = {1: "W", 2: "R", 3: "B", 7: "P"}     # operator input positions that are weights


@dataclass
class Case:
    name: str
    node: object            # onnx.NodeProto
    model: object           # onnx.ModelProto, weights as initializers
    feeds: dict             # graph input name -> array
    expected: dict          # graph output name -> array


def _model(node, inputs, outputs, name):
    import onnx
    from onnx import helper

    present_in = [n for n in node.input if n]
    present_out = [n for n in node.output if n]
    by_name = dict(zip(present_in, inputs, strict=True))
    weights = {node.input[k]: by_name[node.input[k]] for k in WEIGHT_SLOTS
               if k < len(node.input) and node.input[k]}
    feeds = {n: v for n, v in by_name.items() if n not in weights}

    def vi(n, a):
        return helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)

    graph = helper.make_graph(
        [node], name, [vi(n, a) for n, a in feeds.items()],
        [vi(n, a) for n, a in zip(present_out, outputs, strict=True)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    version = onnx.defs.get_schema(node.op_type).since_version
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", version)])
    return model, feeds, dict(zip(present_out, outputs, strict=True))


def collect(op: str, seed: int = 0) -> list[Case]:
    """All backend test cases of ``op`` ("rnn", "gru" or "lstm")."""
    mod = importlib.import_module(f"onnx.backend.test.case.node.{op}")
    from onnx.backend.test.case.base import Base

    captured: list[Case] = []

    def fake_expect(node, inputs, outputs, name, **kwargs):
        model, feeds, expected = _model(node, inputs, outputs, name)
        captured.append(Case(name, node, model, feeds, expected))

    original = mod.expect
    mod.expect = fake_expect
    try:
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if not issubclass(cls, Base) or cls is Base or cls.__module__ != mod.__name__:
                continue
            for attr in sorted(dir(cls)):
                if attr.startswith("export"):
                    np.random.seed(seed)
                    getattr(cls, attr)()
    finally:
        mod.expect = original
    return captured
