"""Per-step layers between and after recurrent layers, as PyTorch's exporters write them, imported by
``rc.io.from_onnx`` and compiled by ``rc.compile``; and ``rc.io.to_onnx`` files of every per-step layer
read back.

PyTorch's exporters write ``nn.LayerNorm`` as ``LayerNormalization`` (opset >= 17) or decomposed
(``ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div / Mul / Add``, opset 14), ``nn.GELU`` as
``Erf`` or ``Tanh`` arithmetic (or the opset-20 ``Gelu`` op), ``nn.BatchNorm1d`` (eval) as
``BatchNormalization`` of ``(N, C, T)`` between two ``Transpose``, ``nn.Dropout`` (eval) as nothing
or ``Identity``. The lowering (rnncore/io/onnx_import/_lower.py, _fuse.py) turns them into
``rc.nn.LayerNorm`` / ``GELU`` / ``BatchNorm1d`` / ``HardSigmoid`` / ``LeakyReLU`` / ``ELU`` /
``SiLU`` (``x * Sigmoid(x)``) / ``Hardswish`` / ``Hardtanh`` (``Clip``) / ``Softplus`` / ``Softsign``
per-step layers.

Checked, f32: the imported model and the compiled engine within 1e-5 of onnxruntime running the same
bytes (and of PyTorch), for exports by torch.onnx classic (opsets 14, 17) and dynamo (opset 18, and 20 for
the GELUs: its ``Gelu`` op; in a subprocess, as tests/test_onnx_seq_linear.py). ``x + GELU(x)`` compiles to
a residual around the GELU; ``x/2 (1 + erf(x / 1.5))``, GELU's nodes with another constant, is not taken
for a GELU (refused by name).
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

import rnncore as rc  # noqa: E402

TOL = 1e-5


class Net(torch.nn.Module):
    """``rec1 -> mid -> [rec2] -> post -> Linear``, batch first; ``mid`` / ``post`` per-step layers."""

    def __init__(self, mid: list, post: list, two: bool = False, lstm: bool = False) -> None:
        super().__init__()
        cls = torch.nn.LSTM if lstm else torch.nn.GRU
        self.rec1 = cls(5, 8, batch_first=True)
        self.mid = torch.nn.Sequential(*mid)
        self.rec2 = cls(8, 6, batch_first=True) if two else None
        self.post = torch.nn.Sequential(*post)
        self.fc = torch.nn.Linear(6 if two else 8, 3)

    def forward(self, x):
        y, _ = self.rec1(x)
        y = self.mid(y)
        if self.rec2 is not None:
            y, _ = self.rec2(y)
        return self.fc(self.post(y))


class NCT(torch.nn.Module):
    """``inner`` on ``(N, C, T)``: a BatchNorm1d over the channels of a batch-first sequence."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.transpose(1, 2)).transpose(1, 2)


class ResidualGelu(torch.nn.Module):
    """``x + GELU(x)``: the fused GELU inside a residual add."""

    def forward(self, x):
        return x + torch.nn.functional.gelu(x)


class NotGelu(torch.nn.Module):
    """``x/2 (1 + erf(x / 1.5))``: GELU's nodes with another constant, which must not become a GELU."""

    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / 1.5))


def _bn(n: int):
    b = torch.nn.BatchNorm1d(n)
    with torch.no_grad():
        b.running_mean.uniform_(-1, 1)
        b.running_var.uniform_(0.5, 2)
        b.weight.uniform_(-2, 2)
        b.bias.uniform_(-1, 1)
    return b


def _ln(n: int):
    m = torch.nn.LayerNorm(n)
    with torch.no_grad():
        m.weight.uniform_(-2, 2)
        m.bias.uniform_(-1, 1)
    return m


nn = torch.nn
#: name -> (factory, what rc.compile does: None = compiles, else the refusal's pattern)
MODELS = {
    "layernorm": (lambda: Net([], [_ln(8)], lstm=True), None),
    "gelu": (lambda: Net([], [nn.GELU()]), None),
    "gelu_tanh": (lambda: Net([], [nn.GELU(approximate="tanh")]), None),
    "batchnorm_nct": (lambda: Net([], [NCT(_bn(8))]), None),
    "hardsigmoid": (lambda: Net([], [nn.Hardsigmoid()]), None),
    "dropout": (lambda: Net([], [nn.Dropout(0.3), nn.Tanh()]), None),
    "between": (lambda: Net([_ln(8), nn.GELU(), nn.Dropout(0.2)], [nn.GELU(approximate="tanh")], two=True,
                            lstm=True), None),
    "between_linear": (lambda: Net([nn.Linear(8, 8), nn.Hardsigmoid()], [_ln(6)], two=True), None),
    "between_batchnorm": (lambda: Net([NCT(_bn(8)), nn.GELU()], [nn.Dropout(0.1)], two=True,
                                                    lstm=True), None),
    "residual_gelu": (lambda: Net([], [ResidualGelu()]), None),
    "not_gelu": (lambda: Net([], [NotGelu()]), r"an Erf outside a GELU"),
    "silu": (lambda: Net([nn.SiLU()], [nn.SiLU()], two=True), None),
    "hardswish": (lambda: Net([nn.Hardswish()], [nn.Hardswish()], two=True), None),
    "hardtanh": (lambda: Net([nn.Hardtanh(-0.5, 0.25)], [nn.ReLU6()], two=True), None),
    "softplus_softsign": (lambda: Net([nn.Softsign()], [nn.Softplus()], two=True), None),
    "leakyrelu": (lambda: Net([nn.LeakyReLU(0.1)], [nn.LeakyReLU(0.1)], two=True), None),
    "elu": (lambda: Net([nn.ELU(0.7)], [nn.ELU()], two=True), None),
}


def _make(name: str):
    torch.manual_seed(sorted(MODELS).index(name) + 3)
    return MODELS[name][0]().eval()


def _example():
    return torch.randn(2, 4, 5)


def _export(name: str, dynamo: bool, opset: int) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not dynamo:
            f = io.BytesIO()
            torch.onnx.export(_make(name), (_example(),), f, input_names=["x"], output_names=["y"],
                              dynamo=False, dynamic_axes={"x": {0: "b", 1: "T"}}, opset_version=opset)
            return f.getvalue()
        with tempfile.TemporaryDirectory() as d:     # a fresh process (test_onnx_seq_linear's export)
            out = os.path.join(d, "m.onnx")
            code = ("import logging, sys, torch; sys.path.insert(0, sys.argv[1]); "
                    "from test_onnx_step_layers import _make, _example; "
                    "logging.getLogger('torch.onnx').setLevel(logging.ERROR); n = sys.argv[4]; "
                    "torch.onnx.export(_make(n), (_example(),), sys.argv[2], input_names=['x'], "
                    "output_names=['y'], dynamo=True, dynamic_shapes=({0: 'b', 1: 'T'},), "
                    "opset_version=int(sys.argv[3]), verbose=False, external_data=False)")
            subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), out, str(opset), name],
                           check=True, capture_output=True)
            return pathlib.Path(out).read_bytes()


#: classic opsets 14 and 17 and dynamo 18 for every model; dynamo 20 (its Gelu op) for the GELUs
CASES = [(n, d, o) for n in sorted(MODELS) for d, o in ((False, 14), (False, 17), (True, 18))] + \
    [(n, True, 20) for n in ("gelu", "gelu_tanh", "between")]
#: (model, dynamo, opset) -> an op type the export must hold (the form the case is for)
FORMS = {("layernorm", False, 14): "ReduceMean", ("layernorm", False, 17): "LayerNormalization",
         ("gelu", False, 14): "Erf", ("gelu", True, 18): "Erf", ("gelu", True, 20): "Gelu",
         ("gelu_tanh", False, 17): "Tanh", ("gelu_tanh", True, 20): "Gelu",
         ("batchnorm_nct", False, 17): "BatchNormalization", ("silu", False, 17): "Sigmoid",
         ("hardswish", False, 14): "HardSwish", ("hardtanh", False, 17): "Clip",
         ("softplus_softsign", False, 17): "Softplus"}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name,dynamo,opset", CASES)
def test_torch_exports_import_and_compile(name, dynamo, opset):
    blob = _export(name, dynamo, opset)
    ops = {n.op_type for n in onnx.load_from_string(blob).graph.node}
    assert FORMS.get((name, dynamo, opset), "MatMul") in ops
    if (name, dynamo, opset) == ("layernorm", False, 14):
        assert "LayerNormalization" not in ops          # the decomposed form
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    net = _make(name)
    imp = rc.io.from_onnx(blob, dtype="float32")
    refused = MODELS[name][1]
    if refused is None:
        eng = rc.compile(rc.io.from_onnx(blob))
    else:
        with pytest.raises(ValueError, match=r"rc\.compile\(OnnxGraph\): node '[^']*' \(\w+\) is " + refused):
            rc.compile(rc.io.from_onnx(blob))
        eng = None
    for B, T in ((2, 4), (3, 9), (1, 1)):
        x = np.random.default_rng(B * 10 + T).standard_normal((B, T, 5)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        with torch.no_grad():
            np.testing.assert_allclose(net(torch.as_tensor(x)).numpy(), ref, rtol=0, atol=TOL)
        np.testing.assert_allclose(imp.forward(x), ref, rtol=0, atol=TOL)
        if eng is not None:
            np.testing.assert_allclose(eng.run(x), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("op,alpha", [("LeakyRelu", None), ("LeakyRelu", 0.3), ("Elu", None), ("Elu", 0.7)])
def test_leaky_relu_and_elu_on_constants_fold_as_onnxruntime(op, alpha):
    """``LeakyRelu`` / ``Elu`` of an initializer are folded by the graph importer with the
    ``rc.nn.LeakyReLU`` / ``ELU`` layers' function: ``y = x + act(c)`` equals onnxruntime's."""
    from onnx import TensorProto, helper, numpy_helper

    c = np.array([-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 2.0], np.float32)
    attrs = {} if alpha is None else {"alpha": alpha}
    g = helper.make_graph(
        [helper.make_node(op, ["c"], ["a"], **attrs), helper.make_node("Add", ["x", "a"], ["y"])], "fold",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 7])], [numpy_helper.from_array(c, "c")])
    blob = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = np.random.default_rng(3).standard_normal((2, 7)).astype(np.float32)
    ref = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(ref - x).max() > 0.3        # the activation's value is in the sum
    got = rc.io.from_onnx(blob, dtype="float32", inputs=["x"], outputs=["y"]).forward(x)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
