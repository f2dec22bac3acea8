"""ONNX MaxPool / AveragePool over time (1-D) in the whole-graph and the chain importer,
against onnxruntime: kernel, strides, pads, ceil_mode, count_include_pad, dilations, auto_pad;
and pooling models exported from PyTorch."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from rnncore.io import from_onnx
from rnncore.io.onnx_import import OnnxGraph
from rnncore.nn import Sequential

RNG = np.random.default_rng(163)


def _pool_model(op: str, opset: int, **attrs) -> bytes:
    node = helper.make_node(op, ["x"], ["y"], name="pool", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "L"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "M"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def _ort(model: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


CASES = [  # kernel, strides, pads, ceil_mode, dilations
    (2, 2, [0, 0], 0, 1), (3, 1, [1, 1], 0, 1), (3, 2, [1, 1], 1, 1), (3, 2, [1, 0], 1, 1),
    (4, 3, [2, 1], 1, 1), (3, 2, [0, 0], 1, 1), (2, 3, [1, 1], 1, 1), (3, 2, [1, 1], 0, 2),
    (3, 1, [1, 1], 1, 2), (5, 2, [2, 2], 1, 1), (3, 3, [0, 1], 1, 1),
]


@pytest.mark.parametrize("k,s,pads,ceil,d", CASES)
@pytest.mark.parametrize("L", [7, 10, 12])
def test_maxpool_matches_onnxruntime(k, s, pads, ceil, d, L):
    model = _pool_model("MaxPool", 13, kernel_shape=[k], strides=[s], pads=pads, ceil_mode=ceil,
                        dilations=[d])
    x = RNG.standard_normal((2, 3, L)).astype(np.float32)
    g = from_onnx(model, dtype="float32")
    assert isinstance(g, OnnxGraph)
    ref = _ort(model, x)
    np.testing.assert_array_equal(g(x), ref)


@pytest.mark.parametrize("k,s,pads,ceil,d", CASES)
@pytest.mark.parametrize("cip", [0, 1])
@pytest.mark.parametrize("L", [7, 10, 12])
def test_averagepool_matches_onnxruntime(k, s, pads, ceil, d, cip, L):
    model = _pool_model("AveragePool", 19, kernel_shape=[k], strides=[s], pads=pads, ceil_mode=ceil,
                        count_include_pad=cip, dilations=[d])
    x = RNG.standard_normal((2, 3, L)).astype(np.float32)
    ref = _ort(model, x)
    np.testing.assert_allclose(from_onnx(model)(x), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_with_stride_one_matches_onnxruntime(op, auto):
    model = _pool_model(op, 13, kernel_shape=[4], strides=[1], auto_pad=auto)
    x = RNG.standard_normal((2, 3, 9)).astype(np.float32)
    np.testing.assert_allclose(from_onnx(model)(x), _ort(model, x), rtol=1e-6, atol=1e-6)


def test_pooling_the_importer_cannot_express_is_refused_by_name():
    cases = [
        (_pool_model("MaxPool", 13, kernel_shape=[3], strides=[2], dilations=[2], auto_pad="SAME_UPPER"),
         "auto_pad"),
        (_pool_model("MaxPool", 13, kernel_shape=[3], pads=[2, 2]), "pads"),
    ]
    for model, what in cases:
        with pytest.raises(ValueError, match=rf"node 'pool' \(MaxPool\).*{what}"):
            from_onnx(model)
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2, 2])
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ValueError, match=r"node 'pool' \(MaxPool\): a 3-D pooling"):
        from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


class _PoolGRU(torch.nn.Module):
    """(B, T, F) -> pooling over time in PyTorch's (B, C, T) -> GRU -> Linear."""

    def __init__(self, pool: torch.nn.Module):
        super().__init__()
        self.pool = pool
        self.gru = torch.nn.GRU(4, 8, batch_first=True)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        z = self.pool(x.transpose(1, 2)).transpose(1, 2)
        return self.fc(self.gru(z)[0])


def _export(net, x) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], dynamo=False,
                          dynamic_axes={"x": {0: "B", 1: "T"}}, opset_version=17)
    return f.getvalue()


@pytest.mark.parametrize("pool", [
    torch.nn.MaxPool1d(3, 2, 1),
    torch.nn.MaxPool1d(2, 2, ceil_mode=True),
    torch.nn.MaxPool1d(3, 1, 1, dilation=2),
    torch.nn.AvgPool1d(3, 2, 1),
    torch.nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    torch.nn.AvgPool1d(2, 1),
], ids=repr)
def test_torch_exported_pooling_models_match_torch_and_onnxruntime(pool):
    torch.manual_seed(0)
    net = _PoolGRU(pool).eval()
    model = _export(net, torch.randn(2, 11, 4))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    chain = from_onnx(model, dtype="float32")              # the chain importer: an rc.nn.Sequential
    assert isinstance(chain, Sequential)
    assert type(chain[0]).__name__ == type(pool).__name__
    graph = from_onnx(model, dtype="float32", inputs=["x"], outputs=["y"])   # the graph importer
    assert isinstance(graph, OnnxGraph)
    for B, T in ((2, 11), (3, 16)):
        x = RNG.standard_normal((B, T, 4)).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        r_ort = sess.run(None, {"x": x})[0]
        for got in (chain.forward(x), graph(x)):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
            np.testing.assert_allclose(got, r_ort, rtol=0, atol=1e-5)
