"""ONNX ``Conv`` / ``MaxPool`` / ``AveragePool`` over time compiled to the C engine.

``rc.compile(from_onnx(path))`` lowers a sequence graph (rnncore/io/onnx_import/_lower.py,
``lower_sequence_graph``) whose front-end is a ``Conv`` padded by ``[begin, end]``, each in
``0..d(k-1)`` (its ``pads``, or a ``Pad`` node before an unpadded one: torch's ``F.pad(x, (l, r))``),
and poolings over time with their own ``pads`` / ``auto_pad`` in that range, between the
``Transpose`` nodes to ``(B, C, T)`` and back, into conv_time / pool_time records. The models
are PyTorch modules exported by torch.onnx (classic exporter at opsets 11-18, dynamo at 18);
the references are onnxruntime on the same ``.onnx`` bytes and PyTorch itself:

* the NumPy import (``OnnxGraph.forward``, float64) and the f32 engine's ``run`` within 1e-5;
* ``Stream.step`` frame by frame: ``None`` exactly at the steps where no window ends (worked out
  here from the strides, windows and paddings: a right padding is a look-ahead), the other outputs
  and those of ``Stream.flush()`` the bits of ``run``;
* q8 (convolutions at stride 1 and above, causal or padded): the engine equals the NumPy q8 spec
  bit for bit and is within 2 % of the largest output of onnxruntime;
* what the engine cannot run is refused naming the node, its op, the padding / ``ceil_mode`` /
  ``auto_pad`` it has and the one expected.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.onnx_import import OnnxGraph
from rnncore.io.rnc import read_rnc
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402


class TimeNet(torch.nn.Module):
    """x (B, T, 4) [or (T, B, 4)] -> causal Conv1d (left pad d(k-1)) -> ReLU -> [pooling] -> GRU/LSTM
    -> Linear, with the Transposes to PyTorch's (B, C, T) and back."""

    def __init__(self, k=3, stride=1, dilation=1, groups=1, pool=None, cell="GRU", tbf=False, pad=None,
                 conv_padding=0, pool_pads=None) -> None:
        super().__init__()
        self.pad = (dilation * (k - 1), 0) if pad is None else pad
        self.tbf = tbf
        self.conv = torch.nn.Conv1d(4, 6, k, stride=stride, dilation=dilation, groups=groups,
                                    padding=conv_padding)
        if pool is None:
            self.pool = torch.nn.Identity()
        elif pool[0] == "max":
            self.pool = torch.nn.MaxPool1d(pool[1], pool[2], dilation=pool[3])
        else:
            self.pool = torch.nn.AvgPool1d(pool[1], pool[2])
        self.rnn = getattr(torch.nn, cell)(6, 8, batch_first=not tbf)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        z = x.permute(1, 2, 0) if self.tbf else x.transpose(1, 2)
        if any(self.pad):
            z = F.pad(z, self.pad)
        z = self.pool(torch.relu(self.conv(z)))
        z = z.permute(2, 0, 1) if self.tbf else z.transpose(1, 2)
        return self.fc(self.rnn(z)[0])


def make_net(cfg: dict) -> torch.nn.Module:
    torch.manual_seed(cfg.get("seed", 0))
    return TimeNet(**{k: v for k, v in cfg.items() if k not in ("seed", "opset", "pool_pads")}).eval()


# kernel 1..5, stride 1..3, dilation 1..2; pool: (kind, kernel, stride, dilation)
CLASSIC = {
    "k3 s1 d1 > max k2 s2, opset 11": dict(k=3, pool=("max", 2, 2, 1), opset=11),
    "k2 s2 d2 > avg k3 s1, LSTM, opset 13": dict(k=2, stride=2, dilation=2, pool=("avg", 3, 1, 1),
                                                cell="LSTM", opset=13),
    "k5 s3 d1 > max k3 s2 d2, opset 14": dict(k=5, stride=3, pool=("max", 3, 2, 2), opset=14),
    "k1 s1 > avg k2 s2, (T, B, C), opset 17": dict(k=1, pool=("avg", 2, 2, 1), tbf=True, opset=17),
    "k4 s1 d2 groups 2, (T, B, C) LSTM, opset 17": dict(k=4, dilation=2, groups=2, cell="LSTM", tbf=True,
                                                       opset=17, seed=3),
    "k3 s2 d1 > max k5 s3, opset 18": dict(k=3, stride=2, pool=("max", 5, 3, 1), opset=18, seed=1),
    "k1 s3 > max k4 s1 d2, opset 17": dict(k=1, stride=3, pool=("max", 4, 1, 2), opset=17, seed=2),
    "k5 s1 d2, opset 11": dict(k=5, dilation=2, opset=11, seed=4),
}
# torch 2.13's dynamo exporter fails in its own GRU decomposition for some strided lengths
# (RuntimeError in fake_impls.infer_size), its LSTM exports them; after a MaxPool1d it exports T
# as a fixed size (the check of the dynamic axes below catches that), so MaxPool is classic-only
DYNAMO = {
    "dynamo: k3 s1 d1 > avg k2 s2": dict(k=3, pool=("avg", 2, 2, 1), cell="LSTM"),
    "dynamo: k2 s2 d2 > avg k3 s1": dict(k=2, stride=2, dilation=2, pool=("avg", 3, 1, 1), cell="LSTM"),
    "dynamo: k4 s1 d1, GRU": dict(k=4, seed=5),
    "dynamo: k3 padding 1 (pads [1, 1])": dict(k=3, pad=(0, 0), conv_padding=1, cell="LSTM", seed=6),
}


def export_classic(cfg: dict) -> bytes:
    net = make_net(cfg)
    x = torch.randn(23, 2, 4) if cfg.get("tbf") else torch.randn(2, 23, 4)
    axes = {0: "T", 1: "B"} if cfg.get("tbf") else {0: "B", 1: "T"}
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], dynamo=False,
                          dynamic_axes={"x": axes}, opset_version=cfg.get("opset", 17))
    return f.getvalue()


def _export_dynamo(i: int, path: str) -> None:
    """DYNAMO model i to path; run in a fresh process each (after one dynamo export, torch 2.13's
    torch.export traces the time axis of the next as a fixed size: see test_onnx_graph._export)."""
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    B, T = torch.export.Dim("B", min=1, max=64), torch.export.Dim("T", min=16, max=4096)
    torch.onnx.export(make_net(list(DYNAMO.values())[i]), (torch.randn(2, 23, 4),), path, input_names=["x"],
                      output_names=["y"], dynamo=True, dynamic_shapes=({0: B, 1: T},), opset_version=18,
                      verbose=False, external_data=False)


@pytest.fixture(scope="module")
def dynamo_blobs() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for i, name in enumerate(DYNAMO):
            code = ("import sys, warnings; warnings.simplefilter('ignore'); sys.path.insert(0, sys.argv[1]); "
                    "import test_onnx_time_layers as t; t._export_dynamo(int(sys.argv[2]), sys.argv[3])")
            path = os.path.join(d, f"{i}.onnx")
            subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), str(i), path], check=True,
                           capture_output=True)
            out[name] = pathlib.Path(path).read_bytes()
    return out


def _window_steps(at: list, reach: int, stride: int, left: int, right: int) -> list:
    """The stream step of each output of a window layer whose inputs come at steps ``at`` (None: at
    the flush): output j spans padded inputs j*s .. j*s + reach, so it comes with input
    j*s + reach - left, or at the flush when that one is in the right padding."""
    L = len(at)
    n = (L + left + right - reach - 1) // stride + 1 if L + left + right > reach else 0
    return [at[i] if (i := j * stride + reach - left) < L else None for j in range(n)]


def output_steps(cfg: dict, T: int) -> tuple[list, int]:
    """(the input steps at which the model has an output, the number of outputs the flush gives)."""
    k, d = cfg.get("k", 3), cfg.get("dilation", 1)
    pad, cp = cfg.get("pad") or (d * (k - 1), 0), cfg.get("conv_padding", 0)
    at = _window_steps(list(range(T)), d * (k - 1), cfg.get("stride", 1), pad[0] + cp, pad[1] + cp)
    if cfg.get("pool"):
        _, k, s, d = cfg["pool"]
        left, right = cfg.get("pool_pads", (0, 0))
        at = _window_steps(at, d * (k - 1), s, left, right)
    return [t for t in at if t is not None], at.count(None)


def check_against_onnxruntime(blob: bytes, cfg: dict, edited: bool = False) -> rc.Engine:
    """``edited``: the exported node's attributes were changed (onnxruntime is the reference, not
    the torch module)."""
    proto = onnx.load_from_string(blob)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_param") for d in dims] == [True, True, False]   # T and B dynamic
    g = from_onnx(blob)                                                      # float64
    assert isinstance(g, OnnxGraph)
    eng = rc.compile(g)
    kinds = eng.describe().split(" > ")
    assert kinds[0] == "conv_time" and kinds.count("pool_time") == (1 if cfg.get("pool") else 0)
    tbf = bool(cfg.get("tbf"))
    assert eng.graph_io["input_layout"] == eng.graph_io["output_layout"] == ("TBF" if tbf else "BTF")
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    net = make_net(cfg)
    for B, T in ((2, 23), (1, 40), (3, 31)):
        xb = np.random.default_rng(B * T).standard_normal((B, T, 4)).astype(np.float32)   # (B, T, F)
        x = np.ascontiguousarray(xb.transpose(1, 0, 2)) if tbf else xb
        ref = sess.run(None, {"x": x})[0]
        if not edited:
            with torch.no_grad():
                np.testing.assert_allclose(ref, net(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(g(x.astype(np.float64)), ref, rtol=0, atol=1e-5)
        ref_bt = ref.transpose(1, 0, 2) if tbf else ref                   # (B, T_out, 3)
        y = eng.run(xb)
        steps, n_flush = output_steps(cfg, T)
        assert y.shape == ref_bt.shape == (B, len(steps) + n_flush, 3)
        np.testing.assert_allclose(y, ref_bt, rtol=0, atol=1e-5)
        st = eng.stream(batch=B)
        outs = [st.step(xb[:, t]) for t in range(T)]
        assert [t for t, o in enumerate(outs) if o is not None] == steps
        tail = st.flush()
        assert tail.shape == (B, n_flush, 3)
        body = np.stack([o for o in outs if o is not None], 1)
        np.testing.assert_array_equal(np.concatenate([body, tail], 1), y)
    return eng


@pytest.mark.parametrize("name", list(CLASSIC))
def test_classic_export_compiles_and_matches_onnxruntime_run_and_stream(name):
    check_against_onnxruntime(export_classic(CLASSIC[name]), CLASSIC[name])


@pytest.mark.parametrize("name", list(DYNAMO))
def test_dynamo_export_compiles_and_matches_onnxruntime_run_and_stream(name, dynamo_blobs):
    blob = dynamo_blobs[name]
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert "Pad" not in ops          # dynamo folds F.pad into the Conv's pads [d(k-1), 0]
    check_against_onnxruntime(blob, DYNAMO[name])


@pytest.mark.parametrize("name", ["k5 s1 d2, opset 11", "k4 s1 d2 groups 2, (T, B, C) LSTM, opset 17",
                                  "dynamo: k4 s1 d1, GRU", "k2 s2 d2 > avg k3 s1, LSTM, opset 13",
                                  "k5 s3 d1 > max k3 s2 d2, opset 14", "k3 s2 d1 > max k5 s3, opset 18",
                                  "dynamo: k2 s2 d2 > avg k3 s1"])
def test_q8_conv_time_equals_the_numpy_spec_and_is_close_to_onnxruntime(name, dynamo_blobs):
    cfg = CLASSIC.get(name) or DYNAMO[name]
    blob = dynamo_blobs[name] if name in DYNAMO else export_classic(cfg)
    eng = rc.compile(from_onnx(blob), precision="q8")
    assert eng.precision == "q8" and eng.describe().startswith("conv_time > pointwise > ")
    conv = read_rnc(eng.data)["front"][0]["tensors"]
    assert conv["qweight"].dtype == np.int8
    tbf = bool(cfg.get("tbf"))
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    xb = np.random.default_rng(7).standard_normal((3, 30, 4)).astype(np.float32)
    ref = sess.run(None, {"x": np.ascontiguousarray(xb.transpose(1, 0, 2)) if tbf else xb})[0]
    ref = ref.transpose(1, 0, 2) if tbf else ref
    y = eng.run(xb)
    spec, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(eng.data)), xb, None)
    np.testing.assert_array_equal(y, spec)
    err = np.abs(y - ref).max()
    assert 0 < err < 0.02 * np.abs(ref).max(), err
    st = eng.stream(batch=3)
    outs = [st.step(xb[:, t]) for t in range(30)]
    steps, n_flush = output_steps(cfg, 30)   # a strided conv: an output every stride steps
    assert n_flush == 0 and [t for t, o in enumerate(outs) if o is not None] == steps
    np.testing.assert_array_equal(np.stack([o for o in outs if o is not None], 1), y)


def _edit_node(blob: bytes, op: str, **attrs) -> bytes:
    """The model with the attributes of its (only) ``op`` node replaced (None: removed)."""
    m = onnx.load_from_string(blob)
    node = next(n for n in m.graph.node if n.op_type == op)
    keep = [a for a in node.attribute if a.name not in attrs]
    del node.attribute[:]
    node.attribute.extend(keep)
    node.attribute.extend(onnx.helper.make_attribute(k, v) for k, v in attrs.items() if v is not None)
    return m.SerializeToString()


def test_ceil_mode_at_stride_one_and_auto_pad_valid_compile():
    cfg = dict(k=3, pool=("max", 3, 1, 1))
    blob = _edit_node(export_classic(cfg), "MaxPool", ceil_mode=1)
    check_against_onnxruntime(blob, cfg)
    blob = _edit_node(export_classic(cfg), "MaxPool", pads=None, auto_pad="VALID")
    check_against_onnxruntime(blob, cfg)


# the paddings the engine runs besides the causal one: torch's padding / F.pad (classic exporter:
# Conv pads, or a Pad node), and poolings whose exported node gets pads / auto_pad / count_include_pad
# (torch's padded AvgPool1d exports a Pad node, which stays refused); pool_pads: what the edit means
PADDED = {
    "conv pads [1, 1] (torch padding=1)": (dict(k=3, pad=(0, 0), conv_padding=1), None),
    "conv k4 d2 pads [3, 3], LSTM, opset 13": (dict(k=4, dilation=2, pad=(0, 0), conv_padding=3, cell="LSTM",
                                                    opset=13), None),
    "valid conv k3 s2": (dict(k=3, stride=2, pad=(0, 0)), None),
    "Pad node [0, 2] before the conv": (dict(k=3, pad=(0, 2)), None),
    "Pad [1, 0] + conv padding 1, k3 s2, (T, B, C)": (
        dict(k=3, stride=2, pad=(1, 0), conv_padding=1, tbf=True, opset=17), None),
    "avg k3 s2 pads [1, 1], count_include_pad 0 (ONNX default)": (
        dict(k=3, pool=("avg", 3, 2, 1), pool_pads=(1, 1)), dict(pads=[1, 1])),
    "avg k3 s1 pads [1, 1], count_include_pad 1": (
        dict(k=3, pool=("avg", 3, 1, 1), pool_pads=(1, 1)), dict(pads=[1, 1], count_include_pad=1)),
    "avg k5 s1 pads [0, 2], count_include_pad 0": (
        dict(k=3, pad=(0, 0), conv_padding=1, pool=("avg", 5, 1, 1), pool_pads=(0, 2)), dict(pads=[0, 2])),
    "max k3 s1 auto_pad SAME_UPPER": (dict(k=3, pool=("max", 3, 1, 1), pool_pads=(1, 1)),
                                      dict(pads=None, auto_pad="SAME_UPPER")),
    "max k4 s1 auto_pad SAME_LOWER (odd pad first)": (dict(k=3, pool=("max", 4, 1, 1), pool_pads=(2, 1)),
                                                      dict(pads=None, auto_pad="SAME_LOWER")),
    "max k3 s2 d2 pads [1, 1] after conv padding 1": (
        dict(k=3, pad=(0, 0), conv_padding=1, pool=("max", 3, 2, 2), pool_pads=(1, 1)), dict(pads=[1, 1])),
    # ceil_mode at a stride: the engine's right padding min(end + stride - 1, d(k-1)) (pool_pads)
    "max k3 s2 pads [1, 1] ceil_mode": (dict(k=3, pool=("max", 3, 2, 1), pool_pads=(1, 2)),
                                        dict(pads=[1, 1], ceil_mode=1)),
    "max k2 s3 ceil_mode (stride past the window)": (dict(k=3, pool=("max", 2, 3, 1), pool_pads=(0, 1)),
                                                     dict(ceil_mode=1)),
    "avg k3 s2 pads [1, 0] ceil_mode, count_include_pad 0": (
        dict(k=3, pool=("avg", 3, 2, 1), pool_pads=(1, 1)),
        dict(pads=[1, 0], ceil_mode=1, count_include_pad=0)),
    "avg k3 s2 ceil_mode, count_include_pad 1": (
        dict(k=3, pool=("avg", 3, 2, 1), pool_pads=(0, 1)), dict(ceil_mode=1, count_include_pad=1)),
}


def _pool_op(cfg: dict) -> str:
    return "MaxPool" if cfg["pool"][0] == "max" else "AveragePool"


@pytest.mark.parametrize("name", list(PADDED))
def test_padded_conv_and_pooling_match_onnxruntime_and_stream_plus_flush_is_run(name):
    cfg, edit = PADDED[name]
    blob = export_classic(cfg)
    if edit:
        blob = _edit_node(blob, _pool_op(cfg), **edit)
    check_against_onnxruntime(blob, cfg, edited=bool(edit))


@pytest.mark.parametrize("name", ["conv pads [1, 1] (torch padding=1)",
                                  "conv k4 d2 pads [3, 3], LSTM, opset 13", "valid conv k3 s2",
                                  "Pad node [0, 2] before the conv",
                                  "avg k5 s1 pads [0, 2], count_include_pad 0",
                                  "max k3 s2 d2 pads [1, 1] after conv padding 1"])
def test_q8_compile_of_a_padded_onnx_conv_equals_the_numpy_spec_and_is_close_to_onnxruntime(name):
    """A padded Conv (and pooling) compiled q8 (docs/q8-contract.md: the pad steps are zero taps of
    the window's one quantised vector): the bits of the NumPy q8 spec, onnxruntime's output length,
    within 2 % of its largest output, the stream's outputs at the f32 steps and flush() = run."""
    cfg, edit = PADDED[name]
    blob = export_classic(cfg)
    if edit:
        blob = _edit_node(blob, _pool_op(cfg), **edit)
    eng = rc.compile(from_onnx(blob), precision="q8")
    assert eng.precision == "q8" and read_rnc(eng.data)["front"][0]["tensors"]["qweight"].dtype == np.int8
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    for B, T in ((3, 30), (1, 17)):
        xb = np.random.default_rng(T).standard_normal((B, T, 4)).astype(np.float32)
        ref = sess.run(None, {"x": xb})[0]
        y = eng.run(xb)
        steps, n_flush = output_steps(cfg, T)
        assert y.shape == ref.shape == (B, len(steps) + n_flush, 3)
        spec, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(eng.data)), xb, None)
        np.testing.assert_array_equal(y, spec)
        err = np.abs(y - ref).max()
        assert 0 < err < 0.02 * np.abs(ref).max(), err
        st = eng.stream(batch=B)
        outs = [st.step(xb[:, t]) for t in range(T)]
        assert [t for t, o in enumerate(outs) if o is not None] == steps
        body = np.stack([o for o in outs if o is not None], 1)
        np.testing.assert_array_equal(np.concatenate([body, st.flush()], 1), y)


REFUSED = [
    ("too much left pad", dict(k=2, dilation=2, pad=(3, 0)), None,
     r"\(Conv\) pads the time axis by \[3, 0\] \(attribute pads \[0, 0\] plus \[3, 0\] from Pad node "
     r"'[^']*'\): expected each of \[begin, end\] in 0\.\.2, the window's reach dilation\*\(kernel-1\) = "
     r"2\*\(2-1\).*padding=p <= 2\)"),
    ("too much right pad", dict(k=3, pad=(0, 0), conv_padding=3), None,
     r"\(Conv\) pads the time axis by \[3, 3\] \(attribute pads \[3, 3\]\): expected each of \[begin, end\] "
     r"in 0\.\.2"),
    ("ceil_mode at stride 2, count_include_pad 1 with pads", dict(k=3, pool=("avg", 3, 2, 1)),
     dict(ceil_mode=1, pads=[1, 1], count_include_pad=1),
     r"\(AveragePool\) has ceil_mode 1 with count_include_pad 1, pads \[1, 1\] and strides \[2\]: expected "
     r"count_include_pad 0, pads \[0, 0\] or ceil_mode 0.*export with count_include_pad=False"),
]


@pytest.mark.parametrize("what,cfg,edit,want", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_the_engine_cannot_run_is_refused_naming_node_attribute_expected_and_received(what, cfg, edit,
                                                                                          want):
    blob = export_classic(cfg)
    if edit:
        blob = _edit_node(blob, "MaxPool" if cfg["pool"][0] == "max" else "AveragePool", **edit)
    g = from_onnx(blob)             # the NumPy graph runs it, as onnxruntime does
    x = np.random.default_rng(0).standard_normal((2, 12, 4)).astype(np.float32)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(g(x.astype(np.float64)), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"rc.compile\(OnnxGraph\): node '[^']+' " + want):
        rc.compile(g)


class _Later(torch.nn.Module):
    """A Pad that does not feed a Conv (reflect, before a pooling) and a Conv after the GRU."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which
        self.conv = torch.nn.Conv1d(4, 4, 2)
        self.gru = torch.nn.GRU(4, 4, batch_first=True)

    def forward(self, x):
        z = x.transpose(1, 2)
        if self.which == "reflect":
            z = self.conv(F.pad(z, (1, 0), mode="reflect"))
        elif self.which == "pad > pool":
            z = F.max_pool1d(F.pad(z, (1, 0)), 2, 1)
        else:
            y = self.gru(z.transpose(1, 2))[0]
            return self.conv(F.pad(y.transpose(1, 2), (1, 0))).transpose(1, 2)
        return self.gru(z.transpose(1, 2))[0]


@pytest.mark.parametrize("which,want", [
    ("reflect", r"\(Pad\) pads with mode 'reflect', value 0: expected mode 'constant', value 0"),
    ("pad > pool", r"\(MaxPool\) pools data padded by \[1, 0\] from Pad node '[^']+': expected no Pad node "
                   r"before a pooling.*give the pooling its own pads"),
    ("conv after the GRU", r"\(Conv\) is a convolution or pooling over time after a recurrent layer"),
])
def test_pads_and_time_layers_the_chain_does_not_admit_are_refused_by_node(which, want):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Later(which).eval(), (torch.randn(2, 9, 4),), f, input_names=["x"],
                          output_names=["y"], dynamo=False, dynamic_axes={"x": {0: "B", 1: "T"}},
                          opset_version=17)
    with pytest.raises(ValueError, match=r"rc.compile\(OnnxGraph\): node '[^']+' " + want):
        rc.compile(from_onnx(f.getvalue()))


def test_the_padding_check_is_one_function():
    """Both the Conv and the pooling paddings are decided by engine_time_padding: each side in
    0..dilation*(kernel-1), [reach, 0] of a Conv is "causal", SAME_* split at stride 1 only."""
    from rnncore.io.onnx_import._lower import engine_time_padding

    def refuse(why, what):
        raise ValueError(f"{why}; {what}")

    assert engine_time_padding("Conv", {"pads": [4, 0]}, 3, 1, 2, None, refuse) == "causal"
    assert engine_time_padding("Conv", {"pads": [0, 0]}, 3, 2, 2, (4, 0, "p"), refuse) == "causal"
    assert engine_time_padding("Conv", {"auto_pad": "SAME_LOWER"}, 1, 3, 1, None, refuse) == "causal"
    assert engine_time_padding("MaxPool", {"ceil_mode": 1}, 3, 1, 1, None, refuse) == (0, 0)
    assert engine_time_padding("Conv", {"pads": [2, 2]}, 3, 1, 2, None, refuse) == (2, 2)
    assert engine_time_padding("Conv", {"pads": [0, 0]}, 3, 1, 2, (0, 4, "p"), refuse) == (0, 4)
    assert engine_time_padding("Conv", {"auto_pad": "VALID", "pads": [9, 9]}, 3, 2, 1, None, refuse) == (0, 0)
    assert engine_time_padding("Conv", {"auto_pad": "SAME_UPPER"}, 4, 1, 1, None, refuse) == (1, 2)
    assert engine_time_padding("AveragePool", {"auto_pad": "SAME_LOWER"}, 4, 1, 1, None, refuse) == (2, 1)
    assert engine_time_padding("MaxPool", {"pads": [1, 1]}, 3, 2, 1, None, refuse) == (1, 1)
    with pytest.raises(ValueError, match=re.escape("pads the time axis by [5, 0] (attribute pads [5, 0]): "
                                                   "expected each of [begin, end] in 0..4")):
        engine_time_padding("Conv", {"pads": [5, 0]}, 3, 1, 2, None, refuse)
    with pytest.raises(ValueError, match=re.escape("by [0, 3] (attribute pads [0, 3]): expected each of")):
        engine_time_padding("MaxPool", {"pads": [0, 3]}, 3, 1, 1, None, refuse)
    with pytest.raises(ValueError, match=re.escape("pools data padded by [1, 0] from Pad node 'p'")):
        engine_time_padding("AveragePool", {}, 3, 1, 1, (1, 0, "p"), refuse)
    # ceil_mode: the pooling's own pads (the C core's extra right padding is the pool_time record's)
    assert engine_time_padding("MaxPool", {"ceil_mode": 1, "pads": [1, 1]}, 3, 2, 1, None, refuse) == (1, 1)
    assert engine_time_padding("AveragePool", {"ceil_mode": 1, "count_include_pad": 1}, 3, 2, 1, None,
                               refuse) == (0, 0)
    with pytest.raises(ValueError, match=re.escape("has ceil_mode 1 with count_include_pad 1, pads [0, 1] "
                                                   "and strides [2]")):
        engine_time_padding("AveragePool", {"ceil_mode": 1, "count_include_pad": 1, "pads": [0, 1]}, 3, 2,
                            1, None, refuse)
    with pytest.raises(ValueError, match=re.escape("has auto_pad 'SAME_UPPER' with strides [2]")):
        engine_time_padding("AveragePool", {"auto_pad": "SAME_UPPER"}, 3, 2, 1, None, refuse)


class _PoolOnly(torch.nn.Module):
    """Pooling over time and a GRU: the chain importer's form (an rc.nn.Sequential)."""

    def __init__(self, pool: torch.nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.gru = torch.nn.GRU(4, 5, batch_first=True)

    def forward(self, x):
        return self.gru(self.pool(x.transpose(1, 2)).transpose(1, 2))[0]


def _export_pool_only(pool) -> bytes:
    torch.manual_seed(0)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_PoolOnly(pool).eval(), (torch.randn(2, 12, 4),), f, input_names=["x"],
                          output_names=["y"], dynamo=False, dynamic_axes={"x": {0: "B", 1: "T"}},
                          opset_version=17)
    return f.getvalue()


def test_the_chain_importer_for_the_engine_runs_padded_pooling_and_refuses_by_node():
    """from_onnx(as_spec=True) / graph=False (rnncore convert): the same check, by node; a padded
    pooling (within the window's reach) and ceil_mode (at stride 1, at a stride, with pads) give the
    pool_time record; ceil_mode at a stride of an average counting its pads is refused."""
    x = np.random.default_rng(1).standard_normal((2, 15, 4)).astype(np.float32)
    for pool in (torch.nn.MaxPool1d(3, 2, padding=1), torch.nn.AvgPool1d(3, 1, ceil_mode=True),
                 torch.nn.MaxPool1d(3, 2, padding=1, ceil_mode=True),
                 torch.nn.AvgPool1d(2, 2, ceil_mode=True)):
        blob = _export_pool_only(pool)
        ref = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for kw in ({"as_spec": True}, {"graph": False}):
            eng = rc.compile(from_onnx(blob, **kw))
            assert eng.describe() == "pool_time > gru(5)"
            y = eng.run(x)
            np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)
            st = eng.stream(batch=2)
            outs = [o for o in (st.step(x[:, t]) for t in range(15)) if o is not None]
            np.testing.assert_array_equal(np.concatenate([np.stack(outs, 1), st.flush()], 1), y)
    blob = _export_pool_only(torch.nn.AvgPool1d(3, 2, padding=1, ceil_mode=True))   # count_include_pad
    assert type(from_onnx(blob)).__name__ == "Sequential"      # the NumPy model runs it
    for kw in ({"as_spec": True}, {"graph": False}):
        with pytest.raises(ValueError, match=r"node '[^']+' \(AveragePool\): has ceil_mode 1 with "
                                             r"count_include_pad 1, pads \[1, 1\] and strides \[2\]"):
            from_onnx(blob, **kw)
