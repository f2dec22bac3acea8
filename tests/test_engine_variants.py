"""Cell options in the C engine (issue 16): ONNX activations, clip, peepholes, input_forget,
reverse direction and learned initial states, compiled for f32 and q8.

* f32: every ONNX backend node case and every onnxruntime-checked custom case compiles and the
  engine's outputs (Y, Y_h, Y_c through the graph's layouts) match onnxruntime / ONNX's expected
  values;
* q8: bit for bit equal to the quantised NumPy reference (rnncore/quant/reference.py) with the C
  core's activations substituted, as csrc/tests/gen_vectors.py does (tanh, sigmoid; exp and
  log1p are libm's expf/log1pf, called through ctypes);
* streaming, state save/restore, reset() restoring a learned initial state, .rnc round trips,
  old files unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_cases.backend import collect

import rnncore as rc
from rnncore.io.onnx_import import from_onnx, onnx_run
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.nn.extended import ExtendedRecurrent
from rnncore.quant import reference as R
from rnncore.spec import spec_from_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402
from test_import_onnx import CUSTOM  # noqa: E402

F32 = np.float32
BACKEND = [c for op in ("rnn", "gru", "lstm") for c in collect(op)]


class _EngineAsModule:
    """The imported module with ``forward`` run by the compiled engine (what onnx_run calls)."""

    def __init__(self, module, precision="f32"):
        self._m = module
        self.mode = getattr(module, "mode", type(module).__name__).upper()
        self.engine = rc.compile(module, precision=precision)

    def __getattr__(self, name):
        return getattr(self._m, name)

    def forward(self, x, state=None, lengths=None):
        y, st = self.engine.run(np.asarray(x, F32), lengths=lengths, state=state, return_state=True)
        return y, st


def _engine_run(model, feeds):
    imported = from_onnx(model, dtype="float32")
    return onnx_run(_EngineAsModule(imported), feeds)


@pytest.mark.parametrize("case", BACKEND, ids=lambda c: c.name)
def test_onnx_backend_case_through_the_f32_engine(case):
    got = _engine_run(case.model, case.feeds)
    assert set(got) == set(case.expected)
    for name, want in case.expected.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=2e-6, err_msg=f"{case.name}: {name}")


@pytest.mark.parametrize("name", list(CUSTOM))
def test_onnxruntime_case_through_the_f32_engine(name):
    from onnx_cases.custom import make_case, run_onnxruntime

    model, feeds = make_case(**CUSTOM[name][0])
    ref = run_onnxruntime(model, feeds)
    got = _engine_run(model, feeds)
    assert set(got) == set(ref)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-5, err_msg=f"{name}: {k}")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_zero_length_sequences_follow_onnxruntime_through_the_engine(op, direction):
    """A length-0 sequence: rnncore keeps the initial state; onnx_run gives ONNX's zeros."""
    from onnx_cases.custom import make_case, run_onnxruntime

    model, feeds = make_case(op, direction=direction, seq_lens=[0, 5, 3], initial=True, clip=1.5)
    ref = run_onnxruntime(model, feeds)
    assert all(np.abs(ref[k][..., 0, :] if k != "Y" else ref[k][:, :, 0]).max() == 0 for k in ref)
    got = _engine_run(model, feeds)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-5, err_msg=k)
    # the engine itself keeps the initial state of the empty sequence (documented behaviour)
    imported = from_onnx(model, dtype="float32")
    eng = rc.compile(imported, precision="f32")
    h0 = feeds["initial_h"]
    state = (h0, feeds["initial_c"]) if op == "LSTM" else h0
    x = np.swapaxes(feeds["X"], 0, 1)
    _, st = eng.run(x, lengths=np.array([0, 5, 3]), state=state, return_state=True)
    h_n = st[0] if op == "LSTM" else st
    np.testing.assert_array_equal(h_n[:, 0], h0[:, 0])


# -- q8: bit for bit the quantised reference ------------------------------------------------------
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.expf.restype = _libm.log1pf.restype = ctypes.c_float
_libm.expf.argtypes = _libm.log1pf.argtypes = [ctypes.c_float]


def _c_unary(fn, x):
    x = np.asarray(x)
    if x.dtype != F32:
        return None
    flat = [fn(float(v)) for v in x.reshape(-1)]
    return np.asarray(flat, F32).reshape(x.shape)


class _NpAsTheCCore(gen_vectors._NpWithCTanh):
    """numpy with the C core's tanh (gen_vectors) and libm's expf / log1pf on float32."""

    @staticmethod
    def exp(x):
        r = _c_unary(_libm.expf, x)
        return np.exp(x) if r is None else r

    @staticmethod
    def log1p(x):
        r = _c_unary(_libm.log1pf, x)
        return np.log1p(x) if r is None else r


def _q8_reference(qmodel, X, lengths, state=None):
    saved = R.sigmoid, R.np
    R.sigmoid = lambda a: gen_vectors.c_sigmoid(a) if a.dtype == F32 else saved[0](a)
    R.np = _NpAsTheCCore()
    try:
        return R.q8_forward(qmodel, X, lengths, state)
    finally:
        R.sigmoid, R.np = saved


VARIANTS = {
    "lstm_peep_clip_acts": ("LSTM", dict(
        peepholes=True, clip=0.7, activations=[("hardsigmoid", 0.2, 0.5), ("leakyrelu", 0.1), "softsign"])),
    "lstm_input_forget_reverse": ("LSTM", dict(input_forget=True, reverse=True)),
    "lstm_peep_bidir_stack": ("LSTM", dict(peepholes=True, bidirectional=True, num_layers=2)),
    "gru_rb_clip_hardsigmoid_elu": ("GRU", dict(reset_after=False, clip=0.5,
                                                activations=[("hardsigmoid", 0.3, 0.4), ("elu", 0.7)])),
    "gru_ra_hardsigmoid": ("GRU", dict(activations=[("hardsigmoid", 0.2, 0.5), "tanh"])),
    "gru_bidir_softplus": ("GRU", dict(
        bidirectional=True, activations=["sigmoid", "tanh", ("hardsigmoid", 0.2, 0.5), "softplus"])),
    "gru_reverse_thresholded": ("GRU", dict(reverse=True, activations=["sigmoid", ("thresholdedrelu", 0.3)])),
    "rnn_scaledtanh_stack": ("RNN", dict(activations=[("scaledtanh", 1.5, 0.7)], num_layers=2)),
    "rnn_affine": ("RNN", dict(activations=[("affine", 0.5, 0.1)])),
    "rnn_relu_clip": ("RNN", dict(activations=["relu"], clip=2.0)),
}


def _variant(name, seed=0, initial=True):
    mode, kw = VARIANTS[name]
    g = np.random.default_rng(seed)
    m = ExtendedRecurrent(mode, 3, 6, dtype="float32", **kw)
    for v in m.params.values():
        v[...] = g.standard_normal(v.shape) * 0.8
    if initial and mode != "RNN":
        D = 2 if m.bidirectional else 1
        h0 = (g.standard_normal((m.num_layers * D, 6)) * 0.5).astype(F32)
        m.initial_state = (h0, g.standard_normal(h0.shape).astype(F32)) if mode == "LSTM" else h0
    return m


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("isa", ["auto", "generic"])
def test_q8_variant_is_bit_exact_and_f32_matches_the_float_reference(name, isa):
    m = _variant(name)
    g = np.random.default_rng(1)
    x = g.standard_normal((5, 11, 3)).astype(F32)
    lengths = np.array([11, 4, 1, 7, 11])
    spec = spec_from_model(m)
    y64, _ = R.float_forward(spec, x.astype(np.float64), lengths)
    y_np, _ = m.forward(x, lengths=lengths)                       # ExtendedRecurrent itself
    np.testing.assert_allclose(y64, y_np, atol=2e-5)
    for prec in ("f32", "q8"):
        eng = rc.compile(m, precision=prec)
        if isa != "auto":
            eng.set_isa(isa)
        y = eng.run(x, lengths=lengths)
        if prec == "f32":
            np.testing.assert_allclose(y, y64, rtol=1e-5, atol=2e-6)
        else:
            qm = R.qmodel_from_rnc(read_rnc(eng.data))
            want, _ = _q8_reference(qm, x, lengths)
            np.testing.assert_array_equal(y, want)
            assert np.abs(y - y64).max() < 0.1                      # and q8 is still the model


@pytest.mark.parametrize("name", [n for n in VARIANTS if not VARIANTS[n][1].get("reverse")
                                  and not VARIANTS[n][1].get("bidirectional")])
@pytest.mark.parametrize("prec", ["f32", "q8"])
def test_streaming_equals_run_and_reset_restores_the_learned_initial_state(name, prec):
    m = _variant(name)
    x = np.random.default_rng(2).standard_normal((2, 9, 3)).astype(F32)
    eng = rc.compile(m, precision=prec)
    whole = eng.run(x)
    s = eng.stream(batch=2)
    start = s.state
    steps = [s.step(x[:, t]).copy() for t in range(9)]
    if prec == "q8":
        np.testing.assert_array_equal(np.stack(steps, 1), whole)
    else:
        np.testing.assert_allclose(np.stack(steps, 1), whole, rtol=1e-6, atol=1e-6)
    # save after 4 steps, restore, same continuation; reset gives the learned initial state back
    s.reset()
    for t in range(4):
        s.step(x[:, t])
    saved = s.state
    tail1 = [s.step(x[:, t]).copy() for t in range(4, 9)]
    s.state = saved
    tail2 = [s.step(x[:, t]).copy() for t in range(4, 9)]
    np.testing.assert_array_equal(np.stack(tail1), np.stack(tail2))
    s.reset()
    after = s.state
    for a, b in zip(start if isinstance(start, tuple) else (start,),
                    after if isinstance(after, tuple) else (after,), strict=True):
        np.testing.assert_array_equal(a, b)
    init = m.initial_state
    if init is not None:
        h0 = init[0] if isinstance(init, tuple) else init
        h = after[0] if isinstance(after, tuple) else after
        np.testing.assert_array_equal(h, np.broadcast_to(h0[:, None], h.shape).astype(F32))


def test_reverse_models_refuse_to_stream_and_say_why():
    eng = rc.compile(_variant("lstm_input_forget_reverse"), precision="f32")
    with pytest.raises(ValueError, match="reverse layer"):
        eng.stream()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_options_survive_the_rnc_round_trip_and_the_readers_agree(name, tmp_path):
    m = _variant(name)
    spec = spec_from_model(m)
    for prec in ("f32", "q8"):
        data = write_rnc(spec, precision=prec)
        d = read_rnc(data)
        o = d["layers"][0]["options"]
        assert o is not None
        want = spec.layers[0].options
        assert bool(o["reverse"]) == bool(want.get("reverse"))
        assert (o["clip"] is None) == (want.get("clip") is None)
        if want.get("peepholes") is not None:
            np.testing.assert_array_equal(o["peepholes"], np.asarray(want["peepholes"], F32))
        eng = rc.load(data)                                  # the C loader takes what we wrote
        p = tmp_path / f"{name}_{prec}.rnc"
        rc.save(eng, p)
        assert p.read_bytes() == data
        with pytest.raises(ValueError, match="version 2"):
            write_rnc(spec, version=1, precision=prec)


def test_default_options_write_the_plain_file():
    """An ExtendedRecurrent whose options are all defaults gives the plain layer's bytes."""
    g = np.random.default_rng(3)
    ext = ExtendedRecurrent("GRU", 3, 5, dtype="float32")
    for v in ext.params.values():
        v[...] = g.standard_normal(v.shape)
    plain = rc.nn.GRU(3, 5, dtype="float32")
    plain.load_state_dict(ext.state_dict())
    for prec in ("f32", "q8"):
        assert rc.compile(ext, precision=prec).data == rc.compile(plain, precision=prec).data


def test_unbounded_activation_overflow_is_reported():
    """An affine RNN that grows without bound stops with the engine's non-finite error."""
    m = ExtendedRecurrent("RNN", 1, 2, dtype="float32", activations=[("affine", 1.0, 0.0)])
    m.params["weight_hh_l0"][...] = np.eye(2) * 1e4
    m.params["weight_ih_l0"][...] = 1.0
    eng = rc.compile(m, precision="f32")
    with pytest.raises(FloatingPointError):
        eng.run(np.ones((1, 20, 1), F32))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("clip", [None, 1.5])
def test_every_direction_and_clip_through_the_f32_engine(op, direction, clip):
    from onnx_cases.custom import make_case, run_onnxruntime

    kw = dict(seq_lens=[3, 5, 2], initial=True, scale=1.5, seed=4)
    if clip is not None:
        kw["clip"] = clip
    if op == "LSTM":
        kw["peepholes"] = True
    model, feeds = make_case(op, direction=direction, **kw)
    ref = run_onnxruntime(model, feeds)
    got = _engine_run(model, feeds)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-5, err_msg=k)


# -- Keras: go_backwards and hard_sigmoid through the engine ---------------------------------------
@pytest.mark.parametrize("cell", ["GRU", "LSTM", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_keras_go_backwards_and_hard_sigmoid_through_the_engine(cell, return_sequences):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    from rnncore.io.keras_import import from_keras

    L = keras.layers
    keras.utils.set_random_seed(5)
    kw = {} if cell == "SimpleRNN" else {"recurrent_activation": "hard_sigmoid"}
    model = keras.Sequential([keras.Input((None, 4)), L.Masking(0.0),
                              getattr(L, cell)(6, go_backwards=True, return_sequences=return_sequences, **kw),
                              L.Dense(3)])
    x = np.random.default_rng(6).standard_normal((3, 7, 4)).astype(F32)
    # Keras reverses the padded sequence (its outputs in processing order start with the padding),
    # rnncore each sequence within its length (ReverseTime): the sequences of outputs agree on
    # unpadded batches, the last outputs on padded ones too
    lengths = np.array([7, 7, 7]) if return_sequences else np.array([7, 4, 2])
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    ref = keras.ops.convert_to_numpy(model(x))
    imported = from_keras(model, dtype="float32")
    eng = rc.compile(imported, precision="f32")
    got = eng.run(x, lengths=lengths)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, imported.forward(x, lengths=lengths), rtol=1e-5, atol=1e-6)
    spec = spec_from_model(imported)
    assert spec.layers[0].options["reverse"] and spec.layers[0].options["reverse_output"]
    q = rc.compile(imported, precision="q8")
    want, _ = _q8_reference(R.qmodel_from_rnc(read_rnc(q.data)), x, lengths)
    np.testing.assert_array_equal(q.run(x, lengths=lengths), want)


# -- LSTM with projection (PyTorch's proj_size) ----------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_lstm_proj_size_through_the_engine(bidirectional):
    import torch

    from rnncore.io.torch_import import from_torch

    torch.manual_seed(7)
    m = torch.nn.LSTM(5, 12, num_layers=2, proj_size=4, batch_first=True, bidirectional=bidirectional).eval()
    g = np.random.default_rng(8)
    x = g.standard_normal((3, 8, 5)).astype(F32)
    h0 = g.standard_normal((2 * (2 if bidirectional else 1), 3, 4)).astype(F32)
    c0 = g.standard_normal((h0.shape[0], 3, 12)).astype(F32)
    with torch.no_grad():
        y, (h, c) = m(torch.as_tensor(x), (torch.as_tensor(h0), torch.as_tensor(c0)))
    imported = from_torch(m, dtype="float32")
    eng = rc.compile(imported, precision="f32")
    got, (hn, cn) = eng.run(x, state=(h0, c0), return_state=True)
    np.testing.assert_allclose(got, y.numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(hn, h.numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(cn, c.numpy(), rtol=1e-5, atol=2e-6)
    lengths = np.array([8, 3, 5])
    q = rc.compile(imported, precision="q8")
    qm = R.qmodel_from_rnc(read_rnc(q.data))
    want, final = _q8_reference(qm, x, lengths, state=(h0, c0))
    yq, (hq, cq) = q.run(x, lengths=lengths, state=(h0, c0), return_state=True)
    np.testing.assert_array_equal(yq, want)
    np.testing.assert_array_equal(hq, np.stack([s[0] for s in final]))
    np.testing.assert_array_equal(cq, np.stack([s[1] for s in final]))
    assert np.abs(yq[0] - y.numpy()[0]).max() < 0.02


@pytest.mark.parametrize("prec", ["f32", "q8"])
def test_proj_lstm_with_options_streams_like_it_runs(prec):
    g = np.random.default_rng(9)
    m = ExtendedRecurrent("LSTM", 3, 10, proj_size=4, peepholes=True, clip=1.0, dtype="float32")
    for v in m.params.values():
        v[...] = g.standard_normal(v.shape) * 0.6
    m.initial_state = ((g.standard_normal((1, 4)) * 0.5).astype(F32),
                       (g.standard_normal((1, 10)) * 0.5).astype(F32))
    x = g.standard_normal((2, 7, 3)).astype(F32)
    y_np, _ = m.forward(x)
    eng = rc.compile(m, precision=prec)
    whole = eng.run(x)
    s = eng.stream(batch=2)
    steps = np.stack([s.step(x[:, t]).copy() for t in range(7)], 1)
    if prec == "q8":
        np.testing.assert_array_equal(steps, whole)
        want, _ = _q8_reference(R.qmodel_from_rnc(read_rnc(eng.data)), x, None)
        np.testing.assert_array_equal(whole, want)
    else:
        np.testing.assert_allclose(steps, whole, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(whole, y_np, rtol=1e-5, atol=2e-6)
    h, c = s.state
    assert h.shape == (1, 2, 4) and c.shape == (1, 2, 10)
    s.reset()
    np.testing.assert_array_equal(s.state[0], np.broadcast_to(m.initial_state[0][:, None], (1, 2, 4)))


@pytest.mark.parametrize("name", ["lstm_peep_clip_acts", "lstm_input_forget_reverse"])
def test_export_c_runs_models_with_cell_options(tmp_path, name):
    """export-c: the exported program (the library built by csrc/Makefile) prints the engine's
    outputs: steps, or one rnc_run for a reverse layer."""
    from export_c_run import exported_outputs

    eng = rc.compile(_variant(name), precision="q8")
    x = np.random.default_rng(11).standard_normal((1, 6, 3)).astype(F32)
    got = exported_outputs(tmp_path, eng.data, x[0])["step"]
    np.testing.assert_allclose(got, eng.run(x)[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["lstm_peep_clip_acts", "gru_rb_clip_hardsigmoid_elu",
                                  "rnn_scaledtanh_stack"])
def test_q8_static_scales_with_cell_options_are_bit_exact(name):
    m = _variant(name)
    g = np.random.default_rng(12)
    cal = g.standard_normal((16, 10, 3)).astype(F32)
    eng = rc.compile(m, precision="q8", calibration=cal)
    d = read_rnc(eng.data)
    assert d["layers"][0]["x_scale"] is not None and d["layers"][0]["h_scale"][0] is not None
    x = g.standard_normal((3, 9, 3)).astype(F32)
    lengths = np.array([9, 5, 2])
    want, _ = _q8_reference(R.qmodel_from_rnc(d), x, lengths)
    np.testing.assert_array_equal(eng.run(x, lengths=lengths), want)
