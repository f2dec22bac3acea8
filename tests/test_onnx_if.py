"""ONNX ``If`` in imported graphs: on an input fixed in use (``from_onnx(path, constants={...})``)
and on the data's shape, against onnxruntime.

Silero VAD v4 and v5 (``silero-vad`` 5.x, ``faster-whisper`` 1.0.x, ``openwakeword`` 0.4.x ship
them) are TorchScript exports whose whole model sits in the two branches of an ``If`` on the sample
rate ``sr``, with ``if x.size(k) == 1: x = x.squeeze(k)`` as nested ``If`` nodes on shapes. The
module here reproduces both patterns (``torch.jit.script``, exported by the classic exporter, the
one that writes ``If`` for TorchScript control flow): an ``If`` on ``sr == 16000`` choosing one of
two LSTMs, and an ``If`` on ``p.size(1) == 1``.
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


class SampleRateModel(torch.nn.Module):
    """(T, B, 8) frames, state (h, c), sample rate -> per-step probability, final state; the 8 kHz
    branch reads the first 4 features with its own LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn16 = torch.nn.LSTM(8, 6)
        self.rnn8 = torch.nn.LSTM(4, 6)
        self.fc = torch.nn.Linear(6, 1)

    def forward(self, x, h, c, sr):
        if bool(sr == 16000):
            y, (hn, cn) = self.rnn16(x, (h, c))
        else:
            y, (hn, cn) = self.rnn8(x[:, :, :4], (h, c))
        p = torch.sigmoid(self.fc(y))
        if p.size(1) == 1:
            p = p.squeeze(1)
        return p, hn, cn


@pytest.fixture(scope="module")
def sr_model() -> bytes:
    torch.manual_seed(0)
    m = torch.jit.script(SampleRateModel().eval())
    f = io.BytesIO()
    x, h = torch.randn(5, 1, 8), torch.zeros(1, 1, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x, h, h, torch.tensor(16000)), f, input_names=["x", "h", "c", "sr"],
                          output_names=["p", "hn", "cn"], opset_version=17, dynamo=False,
                          dynamic_axes={"x": {0: "T", 1: "B"}, "h": {1: "B"}, "c": {1: "B"}})
    blob = f.getvalue()
    assert [n.op_type for n in onnx.load_from_string(blob).graph.node].count("If") == 2
    return blob


def _ort_run(blob: bytes, feeds: dict) -> list:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3        # the squeezed output's declared shape is the 16 kHz, B = 1 one
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("sr", [16000, 8000])
def test_if_on_a_constant_input_imports_the_branch_it_takes(sr_model, sr):
    g = from_onnx(sr_model, constants={"sr": sr})
    assert g.input_names == ["x", "h", "c"] and g.output_names == ["p", "hn", "cn"]
    ops = [s.op for s in g.steps]
    assert ops.count("LSTM") == 1 and ops.count("If") == 1      # the sr If folded, the shape If kept
    rng = np.random.default_rng(sr)
    for B in (1, 3):                   # B = 1 takes the squeeze branch of the shape If
        x = rng.standard_normal((7, B, 8)).astype(np.float32)
        h, c = (rng.standard_normal((1, B, 6)).astype(np.float32) for _ in range(2))
        want = _ort_run(sr_model, {"x": x, "h": h, "c": c, "sr": np.array(sr, np.int64)})
        got = g.forward(x, h, c)
        assert got[0].shape == want[0].shape == ((7, 1) if B == 1 else (7, B, 1))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_if_on_an_input_runs_the_branch_at_run_time(sr_model):
    """Without constants= the sample rate stays an input and both branches are imported."""
    g = from_onnx(sr_model)
    assert g.input_names == ["x", "h", "c", "sr"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 8)).astype(np.float32)
    h, c = (rng.standard_normal((1, 2, 6)).astype(np.float32) for _ in range(2))
    outs = {}
    for sr in (16000, 8000):
        feeds = {"x": x, "h": h, "c": c, "sr": np.array(sr, np.int64)}
        want = _ort_run(sr_model, feeds)
        outs[sr] = g.forward(**feeds)
        for a, b in zip(outs[sr], want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(outs[16000][0] - outs[8000][0]).max() > 1e-3      # the two branches differ


def test_constants_are_checked(sr_model):
    with pytest.raises(ValueError, match=r"constants: 'rate' is not an input of the graph"):
        from_onnx(sr_model, constants={"rate": 16000})
    with pytest.raises(ValueError, match=r"constants: 'sr' is declared of shape \(\), got an array of shape "
                                         r"\(2,\)"):
        from_onnx(sr_model, constants={"sr": [16000, 8000]})


def test_compile_refuses_the_shape_if_by_name(sr_model):
    g = from_onnx(sr_model, constants={"sr": 16000})
    with pytest.raises(ValueError, match=r"node '/Equal_1' \(Equal\) is not an op of the sequence chains"):
        rc.compile(g)


class SpelledOutCell(torch.nn.Module):
    """One LSTM step written with Linear + split (Silero VAD v5's decoder, silero_decoder_v5.onnx in
    faster-whisper 1.1.0, has this form): ``Split`` in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.ih, self.hh = torch.nn.Linear(5, 16), torch.nn.Linear(4, 16)

    def forward(self, x, h, c):
        i, f, g, o = (self.ih(x) + self.hh(h)).split([4, 4, 4, 4], 1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2


@pytest.mark.parametrize("opset", [13, 18])
def test_split_of_a_spelled_out_cell_matches_onnxruntime(opset):
    torch.manual_seed(2)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = (torch.randn(2, 5), torch.randn(2, 4), torch.randn(2, 4))
        torch.onnx.export(SpelledOutCell().eval(), args, f, input_names=["x", "h", "c"],
                          output_names=["hn", "cn"], opset_version=opset, dynamo=False,
                          dynamic_axes={k: {0: "B"} for k in ("x", "h", "c")})
    blob = f.getvalue()
    assert "Split" in [n.op_type for n in onnx.load_from_string(blob).graph.node]
    g = from_onnx(blob)
    rng = np.random.default_rng(3)
    feeds = {k: rng.standard_normal((3, n)).astype(np.float32) for k, n in (("x", 5), ("h", 4), ("c", 4))}
    want = _ort_run(blob, feeds)
    for a, b in zip(g.forward(**feeds), want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
