"""Keras ``Bidirectional(merge_mode="mul")`` (issue 16): the per-step ``rc.nn.MulHalves``
``y = x[..., :H] * x[..., H:]`` on rnncore's ``[forward | backward]`` output. The NumPy layer
against finite differences (float64); imported GRU / LSTM models against Keras ``predict`` (torch
backend), ``return_sequences`` both ways, with masking; the f32 engine within 1e-5 of Keras, the
q8 engine bit for bit with the NumPy q8 reference on every ISA path of this CPU."""

from __future__ import annotations

import os
import struct
import zlib

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _helpers import (  # noqa: E402
    ISAS,
    assert_stream_restores,
    c_equals_q8_reference,
    randn32,
    refused_alike,
)

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import from_keras, keras_lengths  # noqa: E402
from rnncore.io.rnc import read_rnc, write_rnc  # noqa: E402

L = keras.layers
TOL = dict(rtol=1e-5, atol=1e-5)


def test_mul_halves_forward_backward_finite_differences():
    g = np.random.default_rng(0)
    x = g.standard_normal((2, 3, 8))
    m = rc.nn.MulHalves()
    y = m.forward(x, train=True)
    np.testing.assert_array_equal(y, x[..., :4] * x[..., 4:])
    dy = g.standard_normal(y.shape)
    dx = m.backward(dy)
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = np.sum((m.forward(xp) - m.forward(xm)) * dy) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-9)


def test_mul_halves_refuses_odd_features_naming_the_size():
    with pytest.raises(ValueError, match=r"x: expected an even number of features .* got shape \(2, 5\)"):
        rc.nn.MulHalves().forward(np.zeros((2, 5)))
    with pytest.raises(TypeError, match="x: expected a floating-point array"):
        rc.nn.MulHalves().forward(np.zeros((2, 4), np.int32))
    with pytest.raises(RuntimeError):
        rc.nn.MulHalves().backward(np.zeros((2, 2)))


MUL_MODELS = {
    # name: (layers after Input((None, 3)), expected rnncore structure)
    "gru_seq": (lambda: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="mul")],
                ["GRU", "MulHalves"]),
    "lstm_last": (lambda: [L.Bidirectional(L.LSTM(4), merge_mode="mul")], ["LSTM", "LastStep", "MulHalves"]),
    "gru_last_dense": (lambda: [L.Bidirectional(L.GRU(4), merge_mode="mul"), L.Dense(2)],
                       ["GRU", "LastStep", "MulHalves", "Linear"]),
    "lstm_seq_dense": (lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="mul"),
                                L.Dense(2)], ["LSTM", "MulHalves", "Linear"]),
    # between recurrent layers (the engine's "mid" records)
    "gru_mid_gru": (lambda: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="mul"),
                             L.GRU(3, return_sequences=True)], ["GRU", "MulHalves", "GRU"]),
    "lstm_mid_bidirectional": (lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="mul"),
                                        L.Bidirectional(L.GRU(3), merge_mode="mul")],
                               ["LSTM", "MulHalves", "GRU", "LastStep", "MulHalves"]),
}


def _model(name: str, masked: bool):
    keras.utils.set_random_seed(31)
    layers, structure = MUL_MODELS[name]
    model = keras.Sequential([keras.Input((None, 3))] + ([L.Masking(0.0)] if masked else []) + layers())
    for w in model.weights:
        if "bias" in w.path:
            w.assign(np.random.default_rng(1).uniform(-0.5, 0.5, w.shape).astype("float32"))
    x = np.random.default_rng(32).standard_normal((3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4] if masked else [6, 6, 6])
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    return model, structure, x, lengths


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("name", list(MUL_MODELS))
def test_bidirectional_mul_matches_keras(name, masked):
    """The NumPy model within 1e-5 of Keras predict (float32); with Masking on the valid steps
    (on padding a plain Keras recurrent layer repeats its last output)."""
    model, structure, x, lengths = _model(name, masked)
    ref = model.predict(x, verbose=0)
    ours = from_keras(model, dtype="float32")
    assert [type(m).__name__ for m in ours] == structure
    np.testing.assert_array_equal(keras_lengths(ours, x), lengths)
    valid = (np.arange(6)[None, :] < lengths[:, None]) if ref.ndim == 3 else slice(None)
    np.testing.assert_allclose(ours.forward(x, lengths=lengths)[valid], ref[valid], **TOL)


def test_merge_mode_none_is_still_refused():
    model = keras.Sequential([keras.Input((None, 3)), L.Bidirectional(L.GRU(4), merge_mode=None, name="bi")])
    with pytest.raises(ValueError, match="Bidirectional 'bi' has merge_mode=None; .*None \\(two outputs\\) "
                                         "is supported only in a functional model"):
        from_keras(model)


# -- the C engine: f32 against Keras, q8 bit for bit with the NumPy q8 reference -------------------
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("name", list(MUL_MODELS))
def test_bidirectional_mul_runs_in_the_engine(name, masked):
    """The f32 engine within 1e-5 of Keras predict; the q8 engine bit for bit with the NumPy q8
    reference of its file on every ISA path (and within 3 % of Keras)."""
    model, _, x, lengths = _model(name, masked)
    ref = model.predict(x, verbose=0)
    ours = from_keras(model, dtype="float32")
    valid = (np.arange(6)[None, :] < lengths[:, None]) if ref.ndim == 3 else slice(None)
    e32 = rc.compile(ours, "f32")
    assert "mul_halves" in str(read_rnc(e32.data))
    np.testing.assert_allclose(e32.run(x, lengths=lengths)[valid], ref[valid], **TOL)
    q8 = c_equals_q8_reference(rc.compile(ours, "q8"), x, lengths)[valid]
    err = np.abs(q8 - ref[valid]).max() / np.abs(ref[valid]).max()
    assert 0 < err < 0.03, err   # measured 0.13 % to 0.46 % (Zen 4, AVX-512)


# the unidirectional-in-time parts, where streaming applies: MulHalves after a (unidirectional)
# layer of 2H features, between two layers, after the last one and after LastStep
STREAM_MODELS = {
    "mid_and_post": lambda: nn.Sequential(nn.GRU(3, 8, seed=0), nn.MulHalves(), nn.LSTM(4, 6, seed=1),
                                          nn.MulHalves()),
    "mid_last_dense": lambda: nn.Sequential(nn.LSTM(3, 6, seed=2), nn.MulHalves(), nn.GRU(3, 10, seed=3),
                                            nn.LastStep(), nn.MulHalves(), nn.Linear(5, 2, seed=4)),
    "post_then_dense": lambda: nn.Sequential(nn.GRU(3, 8, seed=5), nn.MulHalves(), nn.Linear(4, 3, seed=6),
                                             nn.ReLU(), nn.Linear(3, 2, seed=7)),
}
nn = rc.nn


@pytest.mark.parametrize("prec", ["f32", "q8"])
@pytest.mark.parametrize("name", list(STREAM_MODELS))
def test_stream_equals_run_and_the_numpy_model(name, prec):
    m = STREAM_MODELS[name]()
    X = randn32((3, 7, 3), seed=41)
    eng = rc.compile(m, prec)
    whole = eng.run(X)
    if prec == "f32":
        np.testing.assert_allclose(whole, m.forward(X.astype(np.float64)), rtol=1e-5, atol=1e-5)
    else:
        c_equals_q8_reference(eng, X)
        c_equals_q8_reference(eng, X, np.array([7, 2, 5]))
    if whole.ndim == 2:   # a LastStep model: the stream's output after the last step
        s = eng.stream(3)
        for t in range(7):
            out = s.step(X[:, t].copy())
        np.testing.assert_array_equal(out, whole)
        return
    for isa in ISAS:
        eng.set_isa(isa)
        assert_stream_restores(eng, X, eng.run(X), 3, err_msg=isa)


def test_file_round_trip_and_odd_width_refused_alike():
    """read_rnc gives the record back where it stands; an odd width before it is refused by the
    Python reader and the C loader with the same message, naming the size."""
    m = STREAM_MODELS["mid_last_dense"]()
    spec = read_rnc(rc.compile(m).data)
    assert [r["kind"] for r in spec["mid"][0]] == ["mul_halves"]
    assert [r["kind"] for r in spec["post_pooled"]] == ["mul_halves"]
    with pytest.raises(ValueError, match=r"mul_halves\): 5 input features, expected an even number"):
        rc.compile(nn.Sequential(nn.GRU(3, 5, seed=0), nn.MulHalves()))
    rng = np.random.default_rng(0)
    spec = {"precision": "f32", "input_size": 6, "front": [{"kind": "relu"}, {"kind": "mul_halves"}],
            "layers": [{"kind": "rnn", "weights": {"weight_ih": rng.standard_normal((4, 3)),
                                                   "weight_hh": rng.standard_normal((4, 4))}}]}
    data = bytearray(write_rnc(spec))
    struct.pack_into("<I", data, 24, 5)        # header input_size 5
    struct.pack_into("<I", data, 64 + 8, 5)    # the pointwise record's features
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    refused_alike(bytes(data), "record 1 (mul_halves): kind: 5 input features, expected an even number "
                               "(two halves)")
