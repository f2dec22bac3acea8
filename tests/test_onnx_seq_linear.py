"""Per-step Linear layers (``Gemm`` / ``MatMul`` + ``Add``) around the recurrent nodes of ONNX
sequence graphs, compiled to the C engine, against onnxruntime running the same bytes.

The lowering (rnncore/io/onnx_import/_lower.py, ``_SeqLower.layers``) turns them into ``rc.nn.Linear``
modules of the chain, which ``rc.compile`` runs as per-step records (rnncore/spec.py
``linear_step_record``): a projection before the first recurrent node, an MLP head per step or
after the last step, and ``x + f(x)`` with a Linear in ``f``. Each model is exported by torch.onnx
classic (opsets 14, 17) and dynamo (opset 18); checked: the f32 engine within 1e-5 of onnxruntime
(and of PyTorch), the q8 engine (int8 Linear records) close to onnxruntime, and ``stream.step``
step by step equal to ``run`` (q8: bit for bit). The q8 records' bits against the NumPy q8 spec are
tests/test_engine_linear_step.py's.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _helpers import torch_onnx_export

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.rnc import read_rnc


class ProjLSTM(torch.nn.Module):
    """A projection layer before the LSTM (Linear -> Tanh), a per-step Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(10, 16)
        self.lstm = torch.nn.LSTM(16, 12, batch_first=True)
        self.fc = torch.nn.Linear(12, 4)

    def forward(self, x):
        y, _ = self.lstm(torch.tanh(self.proj(x)))
        return self.fc(y)


class MLPHead(torch.nn.Module):
    """A batch-first GRU, then an MLP per step: Linear -> ReLU -> Linear -> Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(10, 16, batch_first=True)
        self.fc1 = torch.nn.Linear(16, 24)
        self.fc2 = torch.nn.Linear(24, 4)

    def forward(self, x):
        y, _ = self.gru(x)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(y))))


class ResidualLinear(torch.nn.Module):
    """``x + tanh(W x + b)`` before the GRU, ``y + W2 relu(W1 y)`` after it, a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.front = torch.nn.Linear(10, 10)
        self.gru = torch.nn.GRU(10, 16, batch_first=True)
        self.fc1 = torch.nn.Linear(16, 8)
        self.fc2 = torch.nn.Linear(8, 16)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        x = x + torch.tanh(self.front(x))
        y, _ = self.gru(x)
        y = y + self.fc2(torch.relu(self.fc1(y)))
        return self.head(y)


class LastStepMLP(torch.nn.Module):
    """A batch-first LSTM's last step ``y[:, -1]``, then ``z + W2 relu(W1 z)``, Linear -> Tanh -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(10, 16, batch_first=True)
        self.fc1 = torch.nn.Linear(16, 8)
        self.fc2 = torch.nn.Linear(8, 16)
        self.fc3 = torch.nn.Linear(16, 12)
        self.fc4 = torch.nn.Linear(12, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        z = y[:, -1]
        z = z + self.fc2(torch.relu(self.fc1(z)))
        return self.fc4(torch.tanh(self.fc3(z)))


class BetweenLinearTanh(torch.nn.Module):
    """Linear -> Tanh between two GRUs (per-step records between the recurrent layers), a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.GRU(10, 8, batch_first=True), torch.nn.GRU(6, 8, batch_first=True)
        self.fc, self.head = torch.nn.Linear(8, 6), torch.nn.Linear(8, 4)

    def forward(self, x):
        y, _ = self.a(x)
        y, _ = self.b(torch.tanh(self.fc(y)))
        return self.head(y)


class SoftmaxThenRelu(torch.nn.Module):
    """A softmax that is not the last layer: the C engine runs softmax only as the head's activation."""

    def __init__(self) -> None:
        super().__init__()
        self.gru, self.fc = torch.nn.GRU(10, 8, batch_first=True), torch.nn.Linear(8, 4)

    def forward(self, x):
        y, _ = self.gru(x)
        return torch.relu(torch.softmax(self.fc(y), dim=-1))


MODELS = {"proj": ProjLSTM, "mlp": MLPHead, "residual": ResidualLinear, "last_step": LastStepMLP,
          "between": BetweenLinearTanh, "softmax_mid": SoftmaxThenRelu}
#: the engine's chain each model compiles to
DESCRIBE = {
    "proj": "frame_conv > pointwise > lstm(12) > linear(12->4)",
    "mlp": "gru(16) > frame_conv > pointwise > linear(24->4)",
    "residual": "frame_conv > pointwise > residual > gru(16) > frame_conv > pointwise > frame_conv "
                "> residual > linear(16->4)",
    "last_step": "lstm(16) > last_step > frame_conv > pointwise > frame_conv > residual > frame_conv "
                 "> pointwise > linear(12->4)",
    "between": "gru(8) > frame_conv > pointwise > gru(8) > linear(8->4)",
}


def _make(name: str) -> torch.nn.Module:
    torch.manual_seed(sorted(MODELS).index(name) + 11)
    return MODELS[name]().eval()


def _example(name: str) -> torch.Tensor:
    return torch.randn(2, 5, 10)


def _axes(name: str) -> dict:
    """(B, T, F) data: torch.onnx dynamo writes the export's T into the Reshape after a (T, B, F)
    LSTM/GRU node (onnxruntime then fails for other T), so the models are batch-first."""
    return {0: "b", 1: "T"}


def _export(name: str, dynamo: bool, opset: int) -> bytes:
    return torch_onnx_export("test_onnx_seq_linear:_make", (name,), tuple(_example(name).shape), _axes(name),
                             dynamo=dynamo, opset=opset)


def _ort(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


EXPORTS = [(False, 14), (False, 17), (True, 18)]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamo,opset", EXPORTS)
@pytest.mark.parametrize("name", sorted(DESCRIBE))
def test_per_step_linears_compile_and_match_onnxruntime(name, dynamo, opset):
    blob = _export(name, dynamo, opset)
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert ops.count("MatMul") + ops.count("Gemm") >= 2
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == DESCRIBE[name]
    assert eng.graph_io["input_layout"] == "BTF"
    assert eng.graph_io["output_layout"] == ("BF" if name == "last_step" else "BTF")
    sess, net = _ort(blob), _make(name)
    for T, B in ((5, 2), (13, 3), (1, 1)):
        xb = np.random.default_rng(T + B).standard_normal((B, T, 10)).astype(np.float32)
        ref = sess.run(None, {"x": xb})[0]
        y = eng.run(xb)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(y, net(torch.as_tensor(xb)).numpy(), rtol=0,
                                       atol=1e-5)
        st = eng.stream(batch=B)
        outs = [st.step(xb[:, t]) for t in range(T)]
        if name == "last_step":
            np.testing.assert_allclose(outs[-1], y, rtol=0, atol=1e-6)
        else:
            np.testing.assert_allclose(np.stack(outs, 1), y, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(DESCRIBE))
def test_q8_equals_the_numpy_spec_and_is_close_to_onnxruntime(name):
    blob = _export(name, False, 17)
    eng = rc.compile(from_onnx(blob), precision="q8")
    assert eng.precision == "q8" and eng.describe() == DESCRIBE[name]
    sess = _ort(blob)
    B, T = 3, 20
    xb = np.random.default_rng(7).standard_normal((B, T, 10)).astype(np.float32)
    ref = sess.run(None, {"x": xb})[0]
    y = eng.run(xb)
    d = read_rnc(eng.data)
    first = (d["front"] if name in ("proj", "residual") else d["post_pooled"] if name == "last_step"
             else d["mid"][0] if name == "between" else d["post"])[0]
    assert first["tensors"]["qweight"].dtype == np.int8
    err = np.abs(y - ref).max()
    assert 0 < err < 0.03 * np.abs(ref).max(), err
    st = eng.stream(batch=B)
    outs = [st.step(xb[:, t]) for t in range(T)]
    np.testing.assert_array_equal(outs[-1] if name == "last_step" else np.stack(outs, 1), y)


def _tf2onnx_mlp_head(cell: str) -> bytes:
    """test_onnx_last_step's tf2onnx form of Keras ``Bidirectional(cell) -> Bidirectional(cell, last
    step)``, its ``Dense(1, sigmoid)`` replaced by ``Dense(8, relu) -> Dense(1, sigmoid)`` as tf2onnx
    writes them (``MatMul`` + ``Add`` each)."""
    from onnx import helper, numpy_helper
    from test_onnx_last_step import _tf2onnx_graph

    m = onnx.load_from_string(_tf2onnx_graph(cell, F=12, H1=10, H2=6, seed=5))
    g = m.graph
    k = next(i for i, n in enumerate(g.node) if n.op_type == "MatMul")
    del g.node[k:]
    keep = [t for t in g.initializer if t.name not in ("Wd", "bd")]
    del g.initializer[:]
    rng = np.random.default_rng(8)
    g.initializer.extend(keep + [
        numpy_helper.from_array((rng.standard_normal((12, 8)) * 0.4).astype(np.float32), "Wd1"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "bd1"),
        numpy_helper.from_array((rng.standard_normal((8, 1)) * 0.4).astype(np.float32), "Wd2"),
        numpy_helper.from_array(np.array([0.05], np.float32), "bd2")])
    g.node.extend([helper.make_node("MatMul", ["feat", "Wd1"], ["mm1"]),
                   helper.make_node("Add", ["mm1", "bd1"], ["a1"]),
                   helper.make_node("Relu", ["a1"], ["r1"]),
                   helper.make_node("MatMul", ["r1", "Wd2"], ["mm2"]),
                   helper.make_node("Add", ["mm2", "bd2"], ["logit"]),
                   helper.make_node("Sigmoid", ["logit"], ["dense"])])
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_tf2onnx_keras_last_step_mlp_head_compiles(cell):
    blob = _tf2onnx_mlp_head(cell)
    eng = rc.compile(from_onnx(blob))
    x2 = "lstmx2" if cell == "LSTM" else "grux2"
    assert eng.describe() == f"{x2}(10) > {x2}(6) > last_step > frame_conv > pointwise > linear(8->1)"
    assert eng.graph_io["input_layout"] == "BTF" and eng.graph_io["output_layout"] == "BF"
    X = np.random.default_rng(1).standard_normal((5, 16, 12)).astype(np.float32)
    (want,) = _ort(blob).run(None, {"input_1": X})
    y = eng.run(X)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
    q = rc.compile(from_onnx(blob), precision="q8").run(X)
    assert 0 < np.abs(q - want).max() < 0.03
    with pytest.raises(ValueError, match="bidirectional layer, which needs whole sequences"):
        eng.stream(batch=5)      # the graph's layers are bidirectional: no stream


@pytest.mark.filterwarnings("ignore")
def test_softmax_before_another_layer_is_refused_by_name():
    blob = _export("softmax_mid", False, 17)
    node = next(n.name for n in onnx.load_from_string(blob).graph.node if n.op_type == "Softmax")
    with pytest.raises(ValueError, match=rf"node '{node}' \(Softmax\) is a Softmax other than the last layer "
                                         r"right after the last per-step Linear"):
        rc.compile(from_onnx(blob))
