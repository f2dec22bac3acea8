"""ONNX's own backend node test cases, regenerated from the installed package.

The ``onnx`` wheel ships the case generators (``onnx/backend/test/case/node/<op>.py``) but not
their data. Each generator method builds a node, computes the expected outputs with NumPy (or
ONNX's reference evaluator) and calls ``expect(node, inputs, outputs, name, **kwargs)``.
:func:`collect` runs every generator of one module with ``np.random`` seeded, intercepts
``expect`` and returns the captured cases as one-node models. Which of the node's inputs become
initializers (constants an importer can read) and which stay graph inputs is chosen by
``initializers``: the recurrent weights (``W``, ``R``, ``B``, ``P``) for RNN/GRU/LSTM, or
:func:`parameters` (the non-float inputs after the first: shapes, axes, pads, indices, bounds
given as integers) for the other operators. :func:`collect_ops` groups the cases of every module
by the node's operator (a module may test several operators).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

WEIGHT_SLOTS = {1: "W", 2: "R", 3: "B", 7: "P"}     # operator input positions that are weights


@dataclass
class Case:
    name: str
    node: object            # onnx.NodeProto (named after the case when the generator left it unnamed)
    model: object           # onnx.ModelProto, the chosen inputs as initializers
    feeds: dict             # graph input name -> array
    expected: dict          # graph output name -> array
    module: str = ""        # the generator module (onnx.backend.test.case.node.<module>)
    raw: tuple = ()         # what the generator gave expect: (inputs, outputs, kwargs)


def parameters(node, k: int, value) -> bool:
    """The default choice of initializers: every input but the first whose values are not floats
    (Reshape's shape, Slice's starts/ends/axes/steps, Pad's pads, Gather's indices ...)."""
    return k > 0 and np.asarray(value).dtype.kind not in "fc"


def all_but_first(node, k: int, value) -> bool:
    """Every input but the first: a layer's weights (Conv's W, Gemm's B and C, a norm's scale)."""
    return k > 0


def _chooser(initializers) -> Callable:
    if callable(initializers):
        return initializers
    slots = set(initializers)
    return lambda node, k, value: k in slots


def _model(node, inputs, outputs, name, initializers, kwargs):
    import onnx
    from onnx import helper

    chosen = _chooser(initializers)
    present = [(k, n) for k, n in enumerate(node.input) if n]
    present_out = [n for n in node.output if n]
    if len(present) != len(inputs) or len(present_out) != len(outputs):
        raise ValueError(f"{name}: {len(inputs)} inputs / {len(outputs)} outputs for the node's "
                         f"{len(present)} / {len(present_out)}")
    weights, feeds = {}, {}
    for (k, n), v in zip(present, inputs, strict=True):
        (weights if chosen(node, k, v) else feeds)[n] = v

    def vi(n, a):
        a = np.asarray(a)
        return helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)

    in_types = kwargs.get("input_type_protos")
    out_types = kwargs.get("output_type_protos")
    if in_types is not None:
        by_name = dict(zip([n for _, n in present], in_types, strict=True))
        graph_in = [helper.make_value_info(n, by_name[n]) for n in feeds]
    else:
        graph_in = [vi(n, a) for n, a in feeds.items()]
    if out_types is not None:
        graph_out = [helper.make_value_info(n, t) for n, t in zip(present_out, out_types, strict=True)]
    else:
        graph_out = [vi(n, a) for n, a in zip(present_out, outputs, strict=True)]
    graph = helper.make_graph(
        [node], name, graph_in, graph_out,
        initializer=[onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in weights.items()],
    )
    opsets = kwargs.get("opset_imports")
    if opsets is None:
        opsets = [helper.make_opsetid("", onnx.defs.get_schema(node.op_type).since_version)]
    model = helper.make_model(graph, opset_imports=opsets)
    return model, feeds, dict(zip(present_out, outputs, strict=True))


def collect(op: str, seed: int = 0, initializers: Collection[int] | Callable = WEIGHT_SLOTS,
            errors: dict | None = None) -> list[Case]:
    """All backend test cases of the generator module ``op`` ("rnn", "gru", "lstm", "reshape" ...).

    ``initializers``: the input positions to make initializers, or ``fn(node, position, value) ->
    bool`` (:func:`parameters`, :func:`all_but_first`); the other inputs stay graph inputs.
    ``errors``: where a generator that raises is recorded (``"module.Class.method" -> error``)
    instead of raising."""
    mod = importlib.import_module(f"onnx.backend.test.case.node.{op}")
    from onnx.backend.test.case.base import Base

    captured: list[Case] = []

    def fake_expect(node, inputs, outputs, name, **kwargs):
        from onnx import TensorProto, numpy_helper

        node = type(node).FromString(node.SerializeToString())      # the generator may reuse it
        # a type NumPy lacks (bfloat16, float8, int4 ...) comes as a TensorProto: as ml_dtypes' array
        inputs = [numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for v in inputs]
        outputs = [numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for v in outputs]
        if not node.name:
            node.name = name
        model, feeds, expected = _model(node, inputs, outputs, name, initializers, kwargs)
        captured.append(Case(name, node, model, feeds, expected, op, (inputs, outputs, kwargs)))

    original = mod.expect
    mod.expect = fake_expect
    try:
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if not issubclass(cls, Base) or cls is Base or cls.__module__ != mod.__name__:
                continue
            for attr in sorted(dir(cls)):
                if attr.startswith("export"):
                    np.random.seed(seed)
                    try:
                        getattr(cls, attr)()
                    except Exception as e:  # noqa: BLE001 - reported to the caller
                        if errors is None:
                            raise
                        errors[f"{op}.{cls.__name__}.{attr}"] = f"{type(e).__name__}: {e}"
    finally:
        mod.expect = original
    return captured


def rebuild(case: Case, initializers: Collection[int] | Callable) -> Case:
    """``case`` with another choice of initializers (no generator is run again)."""
    inputs, outputs, kwargs = case.raw
    model, feeds, expected = _model(case.node, inputs, outputs, case.name, initializers, kwargs)
    return Case(case.name, case.node, model, feeds, expected, case.module, case.raw)


def modules() -> list[str]:
    """The names of every generator module the installed ``onnx`` ships."""
    import onnx.backend.test.case.node as pkg
    from onnx.backend.test.case.base import Base

    out = []
    for m in pkgutil.walk_packages(pkg.__path__):
        if m.ispkg:
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{m.name}")
        if any(issubclass(c, Base) and c is not Base and c.__module__ == mod.__name__
               for _, c in inspect.getmembers(mod, inspect.isclass)):
            out.append(m.name)
    return sorted(out)


def collect_ops(ops: Collection[str], seed: int = 0,
                initializers: Callable | None = None) -> tuple[dict, dict]:
    """The cases of every generator module whose node is one of ``ops``, by operator.

    Returns ``(cases, failed)``: ``cases[op]`` the list of :class:`Case`; ``failed`` the generators
    that do not run with the installed packages (``"module.Class.method" -> error``: reported, not
    dropped). ``initializers(node, position, value)`` defaults to :func:`parameters`."""
    ops = set(ops)
    by_op: dict = {op: [] for op in ops}
    failed: dict = {}
    for name in modules():
        try:
            cases = collect(name, seed, parameters if initializers is None else initializers, failed)
        except Exception as e:  # noqa: BLE001 - a module that does not import
            failed[name] = f"{type(e).__name__}: {e}"
            continue
        for c in cases:
            if c.node.op_type in ops:
                by_op[c.node.op_type].append(c)
    return by_op, failed
