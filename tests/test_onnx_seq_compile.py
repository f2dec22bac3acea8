"""rc.compile of sequence-shaped ONNX graphs (recurrent tails) against onnxruntime.

The lowering (rnncore/io/onnx_import/_lower.py, ``lower_sequence_graph``) turns a graph whose
data is a sequence ``(T, B, F)`` / ``(B, T, F)`` into the C engine's stack. The references are
onnxruntime running the same ``.onnx`` bytes (and PyTorch for the exported modules):

* crnn.pytorch's ``BidirectionalLSTM`` stack, exported by torch.onnx classic and dynamo;
* GRU and RNN variants (stacked, bidirectional, batch-first with a state input, softmax and
  tanh heads, a front-end activation);
* a real trained model: the recurrent tail of ddddocr 1.6.1's OCR CRNN (``common.onnx``, MIT
  licence; ``.ci/run`` installs it with ``pip install --no-deps ddddocr==1.6.1``), fed the CNN's
  own output for an image.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pathlib
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rnncore as rc
from rnncore.io import from_onnx

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import torch_onnx_export  # noqa: E402
from test_onnx_graph import BidirectionalLSTM, _crnn_tail  # noqa: E402
from test_onnx_graph import _export as _export_crnn  # noqa: E402


def _ort(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


def _tbf(eng, x: np.ndarray) -> np.ndarray:
    """The engine on a (T, B, F) graph's data: run() takes and returns (B, T, .)."""
    assert eng.graph_io["input_layout"] == eng.graph_io["output_layout"] == "TBF"
    return eng.run(np.ascontiguousarray(x.transpose(1, 0, 2))).transpose(1, 0, 2)


# -- crnn.pytorch's BidirectionalLSTM stack ------------------------------------------------------
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamo,opset", [(False, 11), (False, 17), (True, 18)])
def test_crnn_tail_compiles_to_the_c_engine_and_matches_onnxruntime(dynamo, opset):
    """recurrent -> Linear -> recurrent -> Linear: the first Linear folded into the second LSTM's
    input weights, the second the engine's per-step head; f32 within 1e-5 of onnxruntime and
    PyTorch for sizes other than the export's."""
    net = _crnn_tail()
    blob = _export_crnn(dynamo, opset)
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "lstmx2(24) > lstmx2(24) > linear(48->37)"
    assert eng.graph_io == {"data_input": "x", "data_output": "y", "input_layout": "TBF",
                            "output_layout": "TBF", "state_inputs": [], "state_outputs": []}
    sess = _ort(blob)
    for T, B in ((7, 3), (15, 5), (1, 1), (40, 2)):
        x = np.random.default_rng(T).standard_normal((T, B, 32)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        got = _tbf(eng, x)
        assert got.shape == ref.shape == (T, B, 37)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(got, net(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-5)


# -- GRU / RNN variants ---------------------------------------------------------------------------
class GRUSoftmax(torch.nn.Module):
    """Two stacked bidirectional GRU layers (one torch module: two ONNX GRU nodes), a per-step
    Linear and a softmax over the classes, on (T, B, F)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(16, 20, num_layers=2, bidirectional=True)
        self.fc = torch.nn.Linear(40, 11)

    def forward(self, x):
        y, _ = self.gru(x)
        T, b, h = y.size()
        return torch.softmax(self.fc(y.view(T * b, h)).view(T, b, -1), dim=-1)


def _gru_softmax() -> torch.nn.Module:
    torch.manual_seed(1)
    return GRUSoftmax().eval()


def _export_gru(dynamo: bool, opset: int) -> bytes:
    return torch_onnx_export("test_onnx_seq_compile:_gru_softmax", (), (6, 2, 16), {0: "T", 1: "b"},
                             dynamo=dynamo, opset=opset, output="p")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamo,opset", [(False, 14), (True, 18)])
def test_stacked_bidirectional_gru_with_softmax_head(dynamo, opset):
    blob = _export_gru(dynamo, opset)
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert ops.count("GRU") == 2 and "Softmax" in ops
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "grux2(20) > grux2(20) > linear(40->11)"
    sess = _ort(blob)
    net = _gru_softmax()
    for T, B in ((6, 2), (13, 4), (1, 3)):
        x = np.random.default_rng(T + B).standard_normal((T, B, 16)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        got = _tbf(eng, x)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=0, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(got, net(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-5)


class BatchFirstGRU(torch.nn.Module):
    """A batch-first GRU with its initial state as an input and its final state as an output,
    a per-step Linear and tanh: (B, T, F) data, as a streaming model exports."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 5)

    def forward(self, x, h):
        y, hn = self.gru(x, h)
        return torch.tanh(self.fc(y)), hn


@pytest.mark.filterwarnings("ignore")
def test_batch_first_gru_with_state_input_runs_as_the_engines_state():
    torch.manual_seed(2)
    net = BatchFirstGRU().eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 9, 8), torch.randn(1, 2, 16)), f, input_names=["x", "h"],
                          output_names=["y", "hn"], dynamo=False, opset_version=17,
                          dynamic_axes={"x": {0: "B", 1: "T"}, "h": {1: "B"}})
    blob = f.getvalue()
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "gru(16) > linear(16->5)"
    assert eng.graph_io == {"data_input": "x", "data_output": "y", "input_layout": "BTF",
                            "output_layout": "BTF", "state_inputs": ["h"], "state_outputs": ["hn"]}
    sess = _ort(blob)
    for B, T in ((2, 9), (5, 21)):
        x = np.random.default_rng(B).standard_normal((B, T, 8)).astype(np.float32)
        h = np.random.default_rng(T).standard_normal((1, B, 16)).astype(np.float32) * 0.5
        y_ref, hn_ref = sess.run(None, {"x": x, "h": h})
        y, hn = eng.run(x, state=h, return_state=True)      # (B, T, F): no transpose
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(hn, hn_ref, rtol=0, atol=1e-5)


class ReluRNNStack(torch.nn.Module):
    """ReLU of the input features (a front-end activation), a 2-layer tanh RNN, tanh of its output
    (an activation of every step), a Linear and a sigmoid, written as MatMul + Add by the exporter
    (a 3-D Linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(6, 12, num_layers=2)
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.rnn(torch.relu(x))
        return torch.sigmoid(self.fc(torch.tanh(y)))


@pytest.mark.filterwarnings("ignore")
def test_rnn_stack_with_front_activation_and_matmul_head():
    torch.manual_seed(3)
    net = ReluRNNStack().eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(5, 2, 6),), f, input_names=["x"], output_names=["y"],
                          dynamo=False, opset_version=14, dynamic_axes={"x": {0: "T", 1: "b"}})
    blob = f.getvalue()
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert ops.count("RNN") == 2 and "MatMul" in ops and "Relu" in ops
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "pointwise > rnn_tanh(12) > rnn_tanh(12) > pointwise > linear(12->3)"
    sess = _ort(blob)
    x = np.random.default_rng(4).standard_normal((17, 3, 6)).astype(np.float32)
    np.testing.assert_allclose(_tbf(eng, x), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)


# -- refusals -------------------------------------------------------------------------------------
def _export_net(net, x, **kw) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], dynamo=False, opset_version=14,
                          **kw)
    return f.getvalue()


class _Tail(torch.nn.Module):
    def __init__(self, between=None, after=None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = BidirectionalLSTM(8, 6, 6), BidirectionalLSTM(6, 6, 5)
        self.between, self.after = between, after

    def forward(self, x):
        y = self.a(x)
        if self.between is not None:
            y = self.between(y)
        y = self.b(y)
        return y if self.after is None else self.after(y)


@pytest.mark.filterwarnings("ignore")
def test_refusals_name_the_node_and_what_to_do():
    dyn = {"dynamic_axes": {"x": {0: "T", 1: "b"}}}
    x = torch.randn(4, 2, 8)
    # a final LogSoftmax is the head's activation (5): the engine gives onnxruntime's log-probabilities
    blob = _export_net(_Tail(after=torch.nn.LogSoftmax(dim=-1)).eval(), x, **dyn)
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "lstmx2(6) > lstmx2(6) > linear(12->5)"
    xs = x.numpy()
    np.testing.assert_allclose(_tbf(eng, xs), _ort(blob).run(None, {"x": xs})[0], rtol=0, atol=1e-5)
    # and the graph up to the LogSoftmax's input compiles to the logits
    name = next(n for n in onnx.load_from_string(blob).graph.node if n.op_type == "LogSoftmax").input[0]
    assert rc.compile(from_onnx(blob, outputs=[name])).describe() == "lstmx2(6) > lstmx2(6) > linear(12->5)"
    # a ReLU between the recurrent layers (after the first one's Linear): records between the layers
    blob = _export_net(_Tail(between=torch.nn.ReLU()).eval(), x, **dyn)
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "lstmx2(6) > frame_conv > pointwise > lstmx2(6) > linear(12->5)"
    np.testing.assert_allclose(_tbf(eng, xs), _ort(blob).run(None, {"x": xs})[0], rtol=0, atol=1e-5)
    # exported without dynamic axes: view(T*b, h) is written with the example's sizes
    blob = _export_net(_Tail().eval(), x)
    with pytest.raises(ValueError, match=r"\(Reshape\) reshapes .*export with dynamic axes"):
        rc.compile(from_onnx(blob))


# -- ddddocr 1.6.1: a trained OCR CRNN ---------------------------------------------------------------
DDDDOCR = "ddddocr/common.onnx"


@pytest.fixture(scope="module")
def ddddocr_path() -> str:
    """common.onnx of the installed ``ddddocr`` package (found, not imported: its own dependencies
    are not needed), or read out of a ``ddddocr-1.6.1`` wheel (``$RNNCORE_DDDDOCR_WHEEL``).
    Missing is a failure, not a skip: CI installs the package."""
    spec = importlib.util.find_spec("ddddocr")
    if spec is not None and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            p = pathlib.Path(d) / "common.onnx"
            if p.is_file():
                return str(p)
    w = os.environ.get("RNNCORE_DDDDOCR_WHEEL", "")
    if w and os.path.isfile(w):
        out = pathlib.Path(tempfile.mkdtemp()) / "common.onnx"
        with zipfile.ZipFile(w) as z:
            out.write_bytes(z.read(DDDDOCR))
        return str(out)
    pytest.fail("ddddocr 1.6.1 is not installed: pip install --no-deps ddddocr==1.6.1 (.ci/run does)")


def _strokes(width: int, seed: int) -> np.ndarray:
    """A (1, 1, 64, width) grey image in [0, 1] (ddddocr's input: height 64, /255): dark glyph-like
    strokes on white."""
    rng = np.random.default_rng(seed)
    im = np.ones((64, width), np.float32)
    for _ in range(width // 12):
        x0, y0 = int(rng.integers(4, width - 10)), int(rng.integers(8, 30))
        w, h = int(rng.integers(2, 7)), int(rng.integers(12, 34))
        im[y0:y0 + h, x0:x0 + w] = rng.uniform(0.0, 0.3)
        if rng.random() < 0.5:
            im[y0:y0 + 3, x0:x0 + int(rng.integers(6, 14))] = rng.uniform(0.0, 0.3)
    return im[None, None]


def test_ddddocr_tail_compiles_and_matches_onnxruntime(ddddocr_path):
    """The CNN's output '227' (T, 1, 512) for two images, from onnxruntime running the whole model,
    through the compiled tail: bidirectional LSTM(512) -> Gemm(1024 -> 8210). f32: the recurrent
    output '366' within 1e-5 of onnxruntime; the logits (up to ~50 in size, where one float32 ulp
    is 3.8e-6) within 1e-5 + 1e-5 |logit|, the same class at every step. q8: the same class at
    every step where onnxruntime's top two logits are more than 1 apart."""
    model = onnx.load(ddddocr_path)
    for name in ("366", "227"):
        model.graph.output.insert(0, onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = _ort(model.SerializeToString())
    g = from_onnx(ddddocr_path, inputs=["227"], outputs=["387"], dtype="float32")
    eng, q8 = rc.compile(g), rc.compile(g, precision="q8")
    assert eng.describe() == "lstmx2(512) > linear(1024->8210)"
    rec = rc.compile(from_onnx(ddddocr_path, inputs=["227"], outputs=["366"], dtype="float32"))
    for width, seed in ((160, 0), (260, 1)):
        f227, f366, ref = sess.run(["227", "366", "387"], {"input1": _strokes(width, seed)})
        assert f227.shape[1:] == (1, 512) and ref.shape == (f227.shape[0], 1, 8210)
        np.testing.assert_allclose(_tbf(rec, f227), f366, rtol=0, atol=1e-5)
        got = _tbf(eng, f227)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))
        top2 = np.sort(ref, axis=-1)[..., -2:]
        clear = (top2[..., 1] - top2[..., 0]) > 1.0
        assert clear.mean() > 0.5
        np.testing.assert_array_equal(_tbf(q8, f227).argmax(-1)[clear], ref.argmax(-1)[clear])


def _gru_graph(layout: int) -> bytes:
    """x (B, T, 4) -> bidirectional GRU(5) -> (B, T, 2, 5) -> Reshape (0, 0, -1) -> MatMul + Add ->
    (B, T, 3): with ``layout=1`` on the GRU node, or (onnxruntime's CPU GRU runs layout 0 only) the
    same model with the layout-0 node between Transposes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    H, I, O = 5, 4, 3
    arrays = {"W": rng.standard_normal((2, 3 * H, I)) * 0.5, "R": rng.standard_normal((2, 3 * H, H)) * 0.5,
              "B": rng.standard_normal((2, 6 * H)) * 0.1, "M": rng.standard_normal((2 * H, O)),
              "b": rng.standard_normal(O)}
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shp"))
    gru = dict(hidden_size=H, direction="bidirectional", linear_before_reset=1, name="gru")
    if layout:
        nodes = [helper.make_node("GRU", ["x", "W", "R", "B"], ["y"], layout=1, **gru)]
    else:
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="tx"),
                 helper.make_node("GRU", ["xt", "W", "R", "B"], ["yt"], **gru),
                 helper.make_node("Transpose", ["yt"], ["y"], perm=[2, 0, 1, 3], name="ty")]
    nodes += [helper.make_node("Reshape", ["y", "shp"], ["f"], name="merge"),
              helper.make_node("MatMul", ["f", "M"], ["l"], name="mm"),
              helper.make_node("Add", ["l", "b"], ["out"], name="bias")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", I])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["B", "T", O])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def test_layout_1_gru_node_runs_batch_first():
    ref_blob = _gru_graph(0)
    sess = _ort(ref_blob)
    for blob in (_gru_graph(1), ref_blob):
        # inputs=/outputs= import the graph as an OnnxGraph (the chain importer takes it too)
        eng = rc.compile(from_onnx(blob, inputs=["x"], outputs=["out"]))
        assert eng.describe() == "grux2(5) > linear(10->3)"
        assert eng.graph_io["input_layout"] == eng.graph_io["output_layout"] == "BTF"
        for B, T in ((3, 7), (1, 12)):
            x = np.random.default_rng(B * T).standard_normal((B, T, 4)).astype(np.float32)
            np.testing.assert_allclose(eng.run(x), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)


def test_initial_states_from_inputs_for_some_layers_only_are_refused():
    """Two GRU layers, the first with h from a graph input, the second with zeros: the engine's state
    is both layers', so the graph is refused, not run with a state the user did not give."""

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(5)
            self.a, self.b = torch.nn.GRU(4, 6), torch.nn.GRU(6, 6)

        def forward(self, x, h):
            y, _ = self.a(x, h)
            return self.b(y)[0]

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Two().eval(), (torch.randn(3, 2, 4), torch.randn(1, 2, 6)), f,
                          input_names=["x", "h"], output_names=["y"], dynamo=False, opset_version=14,
                          dynamic_axes={"x": {0: "T", 1: "b"}, "h": {1: "b"}})
    with pytest.raises(ValueError, match=r"\(GRU\) takes some initial states from graph inputs and others as "
                                         r"zeros"):
        rc.compile(from_onnx(f.getvalue(), inputs=["x", "h"], outputs=["y"]))


class StackWithState(torch.nn.Module):
    """A 2-layer (optionally bidirectional) LSTM or GRU taking PyTorch's stacked initial states and
    returning the final ones: the exporter slices h/c per layer and concatenates the layers' final
    states (``Slice`` + ``Concat``)."""

    def __init__(self, cell: str, bidirectional: bool) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.rnn = getattr(torch.nn, cell)(4, 6, num_layers=2, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(12 if bidirectional else 6, 3)

    def forward(self, x, *state):
        y, st = self.rnn(x, state if len(state) == 2 else state[0])
        return (self.fc(y), *st) if isinstance(st, tuple) else (self.fc(y), st)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell,bidirectional", [("LSTM", False), ("GRU", True)])
def test_stacked_layers_with_state_inputs_and_outputs(cell, bidirectional):
    D = 2 if bidirectional else 1
    net = StackWithState(cell, bidirectional).eval()
    names = ["h", "c"] if cell == "LSTM" else ["h"]
    states = tuple(torch.randn(2 * D, 2, 6) for _ in names)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(3, 2, 4), *states), f, input_names=["x", *names],
                          output_names=["y", *[n + "n" for n in names]], dynamo=False, opset_version=14,
                          dynamic_axes={"x": {0: "T", 1: "b"}, **{n: {1: "b"} for n in names}})
    blob = f.getvalue()
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert ops.count(cell) == 2 and "Slice" in ops and "Concat" in ops
    g = from_onnx(blob, inputs=["x", *names], outputs=["y", *[n + "n" for n in names]])
    eng = rc.compile(g)
    assert eng.graph_io["state_inputs"] == names
    assert eng.graph_io["state_outputs"] == [n + "n" for n in names]
    sess = _ort(blob)
    for T, B in ((5, 2), (11, 3)):
        rng = np.random.default_rng(T)
        x = rng.standard_normal((T, B, 4)).astype(np.float32)
        st = [rng.standard_normal((2 * D, B, 6)).astype(np.float32) * 0.5 for _ in names]
        ref = sess.run(None, {"x": x, **dict(zip(names, st, strict=True))})
        y, fin = eng.run(x.transpose(1, 0, 2), state=tuple(st) if len(st) == 2 else st[0], return_state=True)
        np.testing.assert_allclose(y.transpose(1, 0, 2), ref[0], rtol=0, atol=1e-5)
        for got, want in zip(fin if len(st) == 2 else (fin,), ref[1:], strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
