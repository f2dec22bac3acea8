"""ONNX exports with ``dynamic_axes`` (batch and / or time): the shape arithmetic that the static sizes
decide is folded, the rest stays what it was, checked against onnxruntime at batch sizes and lengths
other than the export's.

The classic exporter (``dynamo=False``) writes every ``x.shape[k]`` read as ``Shape -> Gather`` once an
axis is dynamic, and a ``torch.jit.script_if_tracing`` helper's ``if x.shape[1] == 1:`` (asteroid-
filterbanks' test of the channel axis, which pyannote's PyanNet runs) as an ``If`` on them. The
importer folds what the declared sizes (and ONNX's shape inference from them) decide for every value
of the dynamic ones -- an ``If`` on a static size is the branch it takes -- and keeps at run time, or
refuses in ``rc.compile`` by name, what depends on a dynamic size. Each test checks the exported graph
really holds the ``If`` / ``Shape`` it is about, so that it cannot pass on a graph without them.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rnncore as rc
from rnncore.io import from_onnx

SIZES = [(B, T) for B in (2, 3) for T in (37, 90)]    # (batch, length): not the export's (1, 20)


@torch.jit.script_if_tracing
def _mono(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """asteroid-filterbanks' ``multishape_conv1d`` in small: a Conv1d on one channel, the channels
    folded into the batch otherwise."""
    if x.shape[1] == 1:
        return torch.nn.functional.conv1d(x, w, stride=2)
    y = torch.nn.functional.conv1d(x.reshape(-1, 1, x.shape[-1]), w, stride=2)
    return y.reshape(x.shape[0], -1, y.shape[-1])


@torch.jit.script_if_tracing
def _long(x: torch.Tensor) -> torch.Tensor:
    """A branch on the length (a dynamic size): never folded to one side."""
    if x.shape[2] > 64:
        return x[:, :, ::2] * 2.0
    return x + 1.0


class ChannelBranch(torch.nn.Module):
    """(B, 1, T) samples -> If on the channel count -> Conv1d(stride 2) -> GRU -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(6, 1, 5) * 0.4)
        self.gru = torch.nn.GRU(6, 7, batch_first=True)
        self.fc = torch.nn.Linear(7, 3)

    def forward(self, x):
        y = torch.relu(_mono(x, self.w))                   # (B, 6, T')
        y, _ = self.gru(y.transpose(1, 2))
        return self.fc(y)


class ReshapeView(torch.nn.Module):
    """(B, T, 12) -> Linear -> ``reshape(x.shape[0], -1, C)`` / ``view(B, T, C)`` with B, T, C from
    ``Shape`` -> GRU -> Linear scaled by ``1 / x.size(-1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(12, 8)
        self.gru = torch.nn.GRU(8, 5, batch_first=True)
        self.fc = torch.nn.Linear(5, 4)

    def forward(self, x):
        y = self.inp(x)
        y = y.reshape(y.shape[0], -1, y.shape[2])
        B, T, C = y.shape
        y = y.view(B, T, C)
        y, _ = self.gru(y)
        return self.fc(y) * (4.0 / x.size(-1))


class ReshapeOnly(ReshapeView):
    """ReshapeView without the scale by ``x.size(-1)`` (which the lowering does not follow unfolded)."""

    def forward(self, x):
        y = self.inp(x)
        y, _ = self.gru(y.reshape(y.shape[0], -1, y.shape[2]))
        return self.fc(y)


class ConvGruLinear(torch.nn.Module):
    """(B, 4, T) -> Conv1d -> ReLU -> GRU (its input's feature count from ``x.size(1)``) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 3, padding=1)
        self.gru = torch.nn.GRU(6, 5, batch_first=True)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = y.permute(0, 2, 1).reshape(x.size(0), -1, y.size(1))
        y, _ = self.gru(y)
        return self.fc(y)


class LengthBranch(torch.nn.Module):
    """(B, 4, T) -> Conv1d -> If on its length > 64 -> GRU -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 3)
        self.gru = torch.nn.GRU(6, 5, batch_first=True)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        y, _ = self.gru(_long(torch.relu(self.conv(x))).transpose(1, 2))
        return self.fc(y)


def _export(module: torch.nn.Module, shape: tuple, axes: dict) -> bytes:
    torch.manual_seed(0)
    m = module().eval() if isinstance(module, type) else module
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(*shape),), f, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={"x": axes, "y": {0: "batch", 1: "frames"}})
    return f.getvalue()


def _ops(blob: bytes) -> list:
    return [n.op_type for n in onnx.load_from_string(blob).graph.node]


def _ort(blob: bytes, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


CHANNELS_FIRST = {0: "batch", 2: "time"}
CASES = {
    "channel_branch": (ChannelBranch, (1, 1, 20), CHANNELS_FIRST, 1),
    "reshape_view": (ReshapeView, (1, 20, 12), {0: "batch", 1: "time"}, 12),
    "conv_gru_linear": (ConvGruLinear, (1, 4, 20), CHANNELS_FIRST, 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_static_shape_logic_folds_and_compiles(case):
    module, shape, axes, F = CASES[case]
    blob = _export(module, shape, axes)
    ops = _ops(blob)
    assert "Shape" in ops                              # the shape logic is in the graph ...
    if case == "channel_branch":
        assert ops.count("If") == 1
    g = from_onnx(blob, dtype="float32")
    kept = [s.op for s in g.steps]
    assert "If" not in kept and "Equal" not in kept    # ... and folded on the static sizes
    assert g.folded_shapes == {"x": tuple(shape[k] if k not in axes else None for k in range(3))}
    eng = rc.compile(g)
    rng = np.random.default_rng(1)
    channels_first = axes is CHANNELS_FIRST
    for B, T in SIZES:
        x = rng.standard_normal((B, F, T) if channels_first else (B, T, F)).astype(np.float32)
        want = _ort(blob, x)
        np.testing.assert_allclose(g.forward(x), want, rtol=1e-5, atol=1e-5)
        got = eng.run(np.ascontiguousarray(x.transpose(0, 2, 1)) if channels_first else x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_fold_on_a_static_size_checks_it_at_run_time():
    """The channel If was folded for the declared channel count 1: two channels are refused (as
    onnxruntime refuses them), not run through the one-channel branch."""
    blob = _export(ChannelBranch, (1, 1, 20), CHANNELS_FIRST)
    g = from_onnx(blob, dtype="float32")
    with pytest.raises(ValueError, match=r"x: the graph's shape arithmetic was folded for an input of shape "
                                         r"\('\?', 1, '\?'\) \(its declared sizes\), got an array of shape "
                                         r"\(2, 2, 30\)"):
        g.forward(np.zeros((2, 2, 30), np.float32))
    with pytest.raises(Exception, match="dimensions"):
        _ort(blob, np.zeros((2, 2, 30), np.float32))


def test_an_if_on_a_dynamic_size_is_kept_and_refused_by_compile():
    """``if x.shape[2] > 64`` (the length, dynamic): the NumPy graph evaluates it at every run (both
    branches checked against onnxruntime); rc.compile refuses it by name."""
    blob = _export(LengthBranch, (1, 4, 20), CHANNELS_FIRST)
    assert _ops(blob).count("If") == 1
    g = from_onnx(blob, dtype="float32")
    kept = [s.op for s in g.steps]
    assert "If" in kept and "Greater" in kept
    rng = np.random.default_rng(2)
    outs = []
    for B, T in [(2, 40), (3, 90)]:                    # the else branch, then the then branch
        x = rng.standard_normal((B, 4, T)).astype(np.float32)
        want = _ort(blob, x)
        outs.append(g.forward(x))
        assert outs[-1].shape == want.shape == (B, T - 2 if T - 2 <= 64 else (T - 1) // 2, 2)
        np.testing.assert_allclose(outs[-1], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"node '[^']*' \((Greater|If)\)"):
        rc.compile(g)


def test_a_declared_but_mismatching_output_shape_is_not_trusted():
    """The exporter's output shapes (onnxruntime only warns on them) are not sizes to fold on: only
    the inputs' declared sizes and ONNX's shape inference from them are."""
    blob = _export(ChannelBranch, (1, 1, 20), CHANNELS_FIRST)
    m = onnx.load_from_string(blob)
    dims = m.graph.output[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_param")
    dims[2].dim_value = 99                           # wrong: the Linear gives 3
    g = from_onnx(m.SerializeToString(), dtype="float32")
    x = np.random.default_rng(3).standard_normal((2, 1, 30)).astype(np.float32)
    assert g.forward(x).shape == (2, 13, 3)


def _branch(op: str, ins: list):
    from onnx import helper

    return helper.make_graph([helper.make_node(op, ins, [op + "_y"])], op, [],
                             [helper.make_tensor_value_info(op + "_y", 1, None)])


def _logic_graph() -> bytes:
    """x (B, 3, T), B and T dynamic: ``Shape`` with start / end, ``Size``, ``Slice``, ``Gather``,
    ``Equal``, ``Less``, ``Not``, ``And``, ``Or``, ``Where``, ``Cast`` and arithmetic on them; the If
    on the channel count, ``y = x * scale`` with ``scale`` from the static size, ``z`` an Or of a
    static and a dynamic test (unknown: kept), ``w`` the element count (dynamic: kept)."""
    from onnx import TensorProto, helper

    def c(name, v):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                                   np.shape(v), np.ravel(v)))

    nodes = [
        c("one", [1]), c("two", [2]), c("k3", [3]), c("k100", 100), c("zero", [0]),
        helper.make_node("Shape", ["x"], ["s1"], start=1, end=2),                       # [3]
        helper.make_node("Equal", ["s1", "k3"], ["is3"]),
        helper.make_node("Not", ["is3"], ["not3"]),
        helper.make_node("Not", ["not3"], ["is3b"]),
        helper.make_node("And", ["is3", "is3b"], ["both"]),
        helper.make_node("Shape", ["x"], ["s"]),                                        # [B?, 3, T?]
        helper.make_node("Slice", ["s", "one", "two"], ["s_mid"]),                      # [3]
        helper.make_node("Mul", ["s_mid", "two"], ["six"]),
        helper.make_node("Where", ["both", "six", "s_mid"], ["pick"]),                  # [6]
        helper.make_node("Cast", ["pick"], ["pickf"], to=TensorProto.FLOAT),
        helper.make_node("Squeeze", ["both", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=_branch("Mul", ["x", "pickf"]),
                         else_branch=_branch("Neg", ["x"])),
        helper.make_node("Gather", ["s", "two"], ["t1"], axis=0),                       # [T?]
        helper.make_node("Less", ["t1", "k100"], ["short"]),
        helper.make_node("Or", ["short", "is3"], ["z"]),       # True whatever T, but not folded: T unknown
        helper.make_node("Size", ["x"], ["w"]),
    ]
    g = helper.make_graph(nodes, "logic", [helper.make_tensor_value_info("x", 1, ["B", 3, "T"])],
                          [helper.make_tensor_value_info("y", 1, None),
                           helper.make_tensor_value_info("z", TensorProto.BOOL, None),
                           helper.make_tensor_value_info("w", TensorProto.INT64, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_shape_logic_ops_fold_on_static_sizes_only():
    blob = _logic_graph()
    g = from_onnx(blob, dtype="float32")
    kept = [s.op for s in g.steps]
    assert "If" not in kept and "Where" not in kept and "Equal" not in kept     # the static logic folded
    assert {"Less", "Or", "Size"} <= set(kept)                                   # the dynamic logic kept
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    for B, T in [(1, 5), (2, 100), (3, 140)]:
        x = rng.standard_normal((B, 3, T)).astype(np.float32)
        want = sess.run(None, {"x": x})
        got = g.forward(x)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1].dtype == want[1].dtype and np.array_equal(got[1], want[1])
        assert int(got[2]) == int(want[2]) == B * 3 * T


def test_a_static_batch_is_not_folded_into_the_engine():
    """An export with the length dynamic and the batch declared 1: the NumPy graph folds on batch 1
    and refuses another (as onnxruntime does); rc.compile lowers the graph unfolded first (the engine
    runs any batch), so a batch of two is each sequence's onnxruntime result."""
    blob = _export(ReshapeOnly, (1, 20, 12), {1: "time"})
    g = from_onnx(blob, dtype="float32")
    assert g.folded_shapes == {"x": (1, None, 12)}
    x = np.random.default_rng(5).standard_normal((2, 37, 12)).astype(np.float32)
    with pytest.raises(ValueError, match=r"folded for an input of shape \(1, '\?', 12\)"):
        g.forward(x)
    want = np.concatenate([_ort(blob, x[b:b + 1]) for b in range(2)])
    np.testing.assert_allclose(g.forward(x[:1]), want[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rc.compile(g).run(x), want, rtol=1e-5, atol=1e-5)
    from rnncore.io.onnx_import._lower import _lower_graph

    with pytest.raises(ValueError, match=r"\(Reshape\) reshapes \(X0, X1, 8\) to \(1, X0\*X1, 8\)"):
        _lower_graph(g)           # the folded graph alone: batch 1 written into the Reshape, refused
