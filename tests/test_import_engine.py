"""Imported models compiled for the C engine (f32) against the source frameworks (torch, ORT, Keras)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.io.onnx_import import from_onnx
from rnncore.io.torch_import import from_torch


def _close(got, ref, tol=1e-5):
    # float32 on both sides: the absolute error grows with the size of the values
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


class _Classifier(torch.nn.Module):
    def __init__(self, kind="GRU", layers=2, bidirectional=False, embedding=False, nonlinearity=None):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 5) if embedding else None
        kw = {"nonlinearity": nonlinearity} if nonlinearity else {}
        self.rnn = getattr(torch.nn, kind)(5, 8, num_layers=layers, batch_first=True,
                                           bidirectional=bidirectional, **kw)
        self.bi = bidirectional
        self.fc = torch.nn.Linear(16 if bidirectional else 8, 4)

    def forward(self, x, lengths=None):
        if self.emb is not None:
            x = self.emb(x)
        if lengths is not None:
            x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=True,
                                                        enforce_sorted=False)
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(torch.cat([h[-2], h[-1]], 1) if self.bi else h[-1])


TORCH_MODELS = {
    "gru2": dict(),
    "lstm2_bidir": dict(kind="LSTM", bidirectional=True),
    "rnn_relu": dict(kind="RNN", layers=1, nonlinearity="relu"),
    "embedding_gru_bidir": dict(embedding=True, bidirectional=True, layers=1),
}


def _inputs(cfg, g, B=4, T=9):
    if cfg.get("embedding"):
        return g.integers(0, 20, (B, T))
    return g.standard_normal((B, T, 5)).astype(np.float32)


@pytest.mark.parametrize("name", list(TORCH_MODELS))
def test_torch_model_through_the_f32_engine(name):
    cfg = TORCH_MODELS[name]
    torch.manual_seed(0)
    m = _Classifier(**cfg).eval()
    g = np.random.default_rng(0)
    x = _inputs(cfg, g)
    lengths = np.array([9, 3, 6, 1])
    with torch.no_grad():
        ref = m(torch.as_tensor(x), lengths).numpy()
    engine = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    _close(engine.run(x, lengths=lengths), ref)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["gru2", "lstm2_bidir"])
def test_onnx_export_through_the_f32_engine(name):
    import onnx
    import onnxruntime as ort

    cfg = TORCH_MODELS[name]
    torch.manual_seed(1)
    m = _Classifier(**cfg).eval()
    x = _inputs(cfg, np.random.default_rng(1))
    f = io.BytesIO()
    torch.onnx.export(m, (torch.as_tensor(x),), f, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "t"}})
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    ref = sess.run(["y"], {"x": x})[0]
    model = from_onnx(onnx.load_from_string(f.getvalue()), dtype="float32")
    _close(rc.compile(model, precision="f32").run(x), ref)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_model_through_the_f32_engine(reset_after):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    from rnncore.io.keras_import import from_keras

    L = keras.layers
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((None, 5)), L.Masking(0.0),
                              L.Bidirectional(L.GRU(6, return_sequences=True, reset_after=reset_after)),
                              L.LSTM(7), L.Dense(3)])
    for w in model.weights:
        if "bias" in w.path:
            w.assign(np.random.default_rng(3).uniform(-0.5, 0.5, w.shape).astype("float32"))
    x = np.random.default_rng(4).standard_normal((3, 8, 5)).astype(np.float32)
    lengths = np.array([8, 5, 2])
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    ref = keras.ops.convert_to_numpy(model(x))
    imported = from_keras(model, dtype="float32")
    _close(rc.compile(imported, precision="f32").run(x, lengths=lengths), ref)
