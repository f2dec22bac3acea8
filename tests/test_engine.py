"""The compiled engine (C core through Cython) against the references.

* f32 engine vs the float64 NumPy reference ``rc.nn`` (same float32-representable weights);
* q8 engine vs the quantised reference ``rnncore.quant`` run on the *stored* int8 weights of the
  engine's own ``.rnc`` bytes (and vs float64 within the q8 accuracy bound);
* streaming: step == run, state save/restore, threads, no allocation in ``step(x, out=buf)``.

Stated tolerances (why they are what they are):

* ``F32_TOL = 5e-5``: float32 products/sums of these small models (|pre-activation| < ~10,
  K <= 64: rounding <= ~K * 2^-24 * sum|w x| ~ 1e-5) plus the C core's fast tanh/sigmoid
  (documented max error <= ~1e-6..1e-5), accumulated over <= 12 steps of contractive cells.
* ``Q8_SEQ_TOL = 5e-3``: the C q8 output follows the quantised reference to ~1e-6 per step, but a
  1e-6 difference in h can move one element of q(h) across a rounding boundary on a later step;
  one such flip changes a pre-activation by at most ``127 * s_h * s_w ~ max|h| max|w| <~ 3e-3``
  for these models. Per-step agreement (same state in, see test_kernels_property.py) is tight.
* ``Q8_BOUND_100`` from tests/test_quant.py: q8 vs float64.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import rnncore as rc
from rnncore import quant as Q
from rnncore.nn.layers import Embedding, LastStep, Linear, Sequential

F32 = np.float32
F32_TOL = 5e-5
Q8_SEQ_TOL = 5e-3
Q8_BOUND = 0.05


def _f32_weights(model) -> None:
    """Round every parameter to a float32 value (so f32 engine and float64 reference share weights)."""
    for _, v in model.named_parameters():
        v[...] = v.astype(F32).astype(v.dtype)


def _make(kind: str, i: int, h: int, layers: int = 1, bidir: bool = False, seed: int = 0, **kw):
    if kind.startswith("rnn"):
        m = rc.nn.RNN(i, h, num_layers=layers, nonlinearity=kind[4:], bidirectional=bidir, seed=seed)
    elif kind.startswith("gru"):
        m = rc.nn.GRU(i, h, num_layers=layers, bidirectional=bidir, seed=seed,
                      reset_after=(kind != "gru_rb"))
    else:
        m = rc.nn.LSTM(i, h, num_layers=layers, bidirectional=bidir, seed=seed)
    _f32_weights(m)
    return m


KINDS = ["rnn_tanh", "rnn_relu", "gru", "gru_rb", "lstm"]


def _hn(state):
    return state[0] if isinstance(state, tuple) else state


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, False), (2, True)])
def test_f32_engine_run_equals_float64_reference(kind, layers, bidir):
    m = _make(kind, 5, 9, layers, bidir, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 12, 5)).astype(F32)
    lengths = np.array([12, 7, 1])
    y_ref, st_ref = m.forward(x.astype(np.float64), lengths=lengths)
    eng = rc.compile(m, precision="f32")
    y, st = eng.run(x, lengths, return_state=True)
    assert y.dtype == F32 and y.shape == (3, 12, 9 * (2 if bidir else 1))
    np.testing.assert_allclose(y, y_ref, atol=F32_TOL, rtol=0)
    assert np.all(y[1, 7:] == 0) and np.all(y[2, 1:] == 0)
    np.testing.assert_allclose(_hn(st), _hn(st_ref), atol=F32_TOL, rtol=0)
    if kind == "lstm":
        np.testing.assert_allclose(st[1], st_ref[1], atol=F32_TOL * 10, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, True)])
def test_q8_engine_run_equals_quantised_reference(kind, layers, bidir):
    m = _make(kind, 6, 10, layers, bidir, seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 10, 6)).astype(F32)
    lengths = np.array([10, 4, 0])
    eng = rc.compile(m, precision="q8")
    y, st = eng.run(x, lengths, return_state=True)
    y_q, st_q = Q.q8_forward(eng.reference(), x, lengths)
    np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)
    np.testing.assert_allclose(_hn(st), np.stack([_hn(s) for s in st_q]) if not isinstance(st_q[0], tuple)
                               else np.stack([s[0] for s in st_q]), atol=Q8_SEQ_TOL, rtol=0)
    assert np.all(y[2] == 0)
    y64, _ = m.forward(x[:2].astype(np.float64), lengths=lengths[:2])
    assert np.abs(y[:2] - y64).max() <= Q8_BOUND


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_embedding_recurrent_laststep_head(precision):
    emb = Embedding(30, 8, seed=5)
    gru = rc.nn.GRU(8, 12, num_layers=2, bidirectional=True, seed=6)
    head = Linear(24, 4, seed=7)
    model = Sequential(emb, gru, LastStep(bidirectional=True), head)
    _f32_weights(model)
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 30, (4, 9))
    lengths = np.array([9, 3, 1, 6])
    ref = model.forward(ids, lengths=lengths)
    eng = rc.compile(model, precision=precision)
    assert eng.uses_ids and eng.output_size == 4
    y = eng.run(ids, lengths)
    assert y.shape == (4, 4)
    if precision == "f32":
        np.testing.assert_allclose(y, ref, atol=F32_TOL, rtol=0)
    else:
        y_q, _ = Q.q8_forward(eng.reference(), ids, lengths)
        np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)
        assert np.abs(y - ref).max() <= Q8_BOUND


def test_f32_reference_read_back_from_the_file_keeps_embedding_pooling_and_head():
    # Engine.reference() rebuilds the float model from the .rnc bytes alone; it must be the
    # same model as the rc.nn one it was compiled from (head, pooling and embedding included).
    model = Sequential(Embedding(30, 8, seed=5), rc.nn.GRU(8, 12, bidirectional=True, seed=6),
                       LastStep(bidirectional=True), Linear(24, 4, seed=7))
    _f32_weights(model)
    ids = np.random.default_rng(8).integers(0, 30, (3, 7))
    lengths = np.array([7, 2, 5])
    spec = rc.compile(model, precision="f32").reference()
    assert spec.head is not None and spec.last_step and spec.last_step_bidirectional
    y, _ = Q.float_forward(spec, ids, lengths)
    np.testing.assert_allclose(y, model.forward(ids, lengths=lengths), atol=1e-6, rtol=0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_stream_with_head_equals_run(precision):
    lstm = rc.nn.LSTM(7, 16, num_layers=2, seed=9)
    model = Sequential(lstm, LastStep(), Linear(16, 3, seed=10))
    _f32_weights(model)
    eng = rc.compile(model, precision=precision)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 8, 7)).astype(F32)
    s = eng.stream(batch=2)
    ys = [s.step(x[:, t]) for t in range(8)]
    y_run = eng.run(x)
    assert y_run.shape == (2, 3)
    np.testing.assert_allclose(ys[-1], y_run, atol=1e-6, rtol=0)
    ref = model.forward(x.astype(np.float64))
    np.testing.assert_allclose(ys[-1], ref, atol=F32_TOL if precision == "f32" else Q8_BOUND, rtol=0)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_state_save_and_restore_mid_stream_continues_identically(kind, precision):
    eng = rc.compile(_make(kind, 4, 8, 2, seed=12), precision=precision)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((20, 2, 4)).astype(F32)
    s = eng.stream(batch=2)
    for t in range(10):
        s.step(x[t])
    saved = s.state
    tail1 = [s.step(x[t]).copy() for t in range(10, 20)]
    s.reset()
    assert np.all(_hn(s.state) == 0)
    s.state = saved
    tail2 = [s.step(x[t]).copy() for t in range(10, 20)]
    np.testing.assert_array_equal(np.stack(tail1), np.stack(tail2))
    # and into a fresh stream
    s2 = eng.stream(batch=2)
    s2.state = saved
    np.testing.assert_array_equal(s2.step(x[10]), tail1[0])


def test_state_is_a_copy_in_pytorch_layout():
    m = _make("lstm", 3, 5, 2, seed=14)
    eng = rc.compile(m)
    s = eng.stream(batch=3)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((3, 6, 3)).astype(F32)
    for t in range(6):
        s.step(x[:, t])
    h, c = s.state
    assert h.shape == (2, 3, 5) and c.shape == (2, 3, 5) and h.dtype == F32
    _, (h_ref, c_ref) = m.forward(x.astype(np.float64))
    np.testing.assert_allclose(h, h_ref, atol=F32_TOL)
    np.testing.assert_allclose(c, c_ref, atol=F32_TOL * 10)
    h[...] = 99  # a copy: the stream is unaffected
    assert np.all(s.state[0] != 99)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_two_threads_with_separate_streams_give_the_serial_results(precision):
    eng = rc.compile(_make("gru", 16, 32, 2, seed=16), precision=precision)
    rng = np.random.default_rng(17)
    xs = [rng.standard_normal((200, 1, 16)).astype(F32) for _ in range(2)]

    def run(x):
        s = eng.stream(1)
        return np.stack([s.step(x[t]).copy() for t in range(len(x))])

    serial = [run(x) for x in xs]
    results = [None, None]
    start = threading.Barrier(2)

    def worker(k):
        start.wait()
        results[k] = run(xs[k])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        np.testing.assert_array_equal(results[k], serial[k])


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_step_with_out_allocates_nothing(precision):
    eng = rc.compile(_make("gru", 8, 16, seed=18), precision=precision)
    s = eng.stream(1)
    x = np.random.default_rng(19).standard_normal((1, 8)).astype(F32)
    out = np.empty((1, 16), F32)
    step = s.step
    for _ in range(10):
        step(x, out=out)
    tracemalloc.start()
    try:
        for _ in range(10):
            step(x, out=out)
        loop = itertools.repeat(None, 2000)  # created before the measurement
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for _ in loop:
            step(x, out=out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after == before and peak == before, (before, after, peak)
    assert step(x, out=out) is out
    # control: the same measurement does see the output array allocated without out=
    tracemalloc.start()
    try:
        loop = itertools.repeat(None, 10)
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for _ in loop:
            step(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before >= 16 * 4


# ------------------------------------------------------------------------------------------
# save / load / isa


def test_save_load_roundtrip(tmp_path):
    m = _make("gru", 4, 6, 1, seed=20)
    eng = rc.compile(m, precision="q8")
    p = tmp_path / "m.rnc"
    rc.save(eng, p)
    eng2 = rc.load(p)
    assert eng2.data == eng.data and eng2.precision == "q8"
    x = np.random.default_rng(21).standard_normal((2, 5, 4)).astype(F32)
    np.testing.assert_array_equal(eng.run(x), eng2.run(x))
    rc.save(m, tmp_path / "f.rnc")
    assert rc.load(tmp_path / "f.rnc").precision == "f32"


def test_q8_model_is_about_a_quarter_of_f32():
    m = _make("gru", 256, 256, seed=22)
    f, q = rc.compile(m, "f32").nbytes, rc.compile(m, "q8").nbytes
    assert q <= 0.27 * f, (q, f)


def test_static_calibration_runs_close_to_float():
    m = _make("lstm", 6, 12, 2, seed=23)
    rng = np.random.default_rng(24)
    x = rng.standard_normal((8, 20, 6)).astype(F32)
    eng = rc.compile(m, precision="q8", calibration=x)
    d = __import__("rnncore.io.rnc", fromlist=["read_rnc"]).read_rnc(eng.data)
    assert d["layers"][0]["x_scale"] == pytest.approx(np.abs(x).max() / 127, rel=1e-6)
    y = eng.run(x)
    y_q, _ = Q.q8_forward(eng.reference(), x)
    np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)
    y64, _ = m.forward(x.astype(np.float64))
    assert np.abs(y - y64).max() <= Q8_BOUND


def test_isa_reports_paths_and_set_isa_switches():
    info = rc.isa()
    assert "generic" in info["available"] and info["in_use"] in info["available"]
    assert info["best"] in info["available"]
    eng = rc.compile(_make("gru", 4, 8, seed=25), "q8")
    x = np.random.default_rng(26).standard_normal((2, 7, 4)).astype(F32)
    outs = {}
    try:
        for name in info["available"]:
            rc.set_isa(name)
            assert eng.isa == name and rc.isa()["in_use"] == name
            outs[name] = eng.run(x)
    finally:
        rc.set_isa(None)
    for name, y in outs.items():
        np.testing.assert_allclose(y, outs["generic"], atol=Q8_SEQ_TOL, rtol=0, err_msg=name)
    with pytest.raises(ValueError, match="isa"):
        rc.set_isa("no-such-isa")


def test_rnncore_isa_environment_variable():
    code = "import rnncore as rc; print(rc.isa()['in_use'], rc.compile(rc.nn.GRU(2, 3)).isa)"
    env = dict(os.environ, RNNCORE_ISA="generic")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["generic", "generic"]
    env["RNNCORE_ISA"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "RNNCORE_ISA" in bad.stderr
    code2 = "import rnncore as rc; rc.compile(rc.nn.GRU(2, 3))"
    bad = subprocess.run([sys.executable, "-c", code2], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "ValueError: RNNCORE_ISA='bogus'" in bad.stderr


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_per_step_head_and_mixed_stack(precision):
    """GRU -> LSTM (different sizes) -> Linear at every step; zero output past each length."""
    model = Sequential(rc.nn.GRU(5, 8, seed=27), rc.nn.LSTM(8, 6, seed=28), Linear(6, 3, seed=29))
    _f32_weights(model)
    rng = np.random.default_rng(30)
    x = rng.standard_normal((3, 7, 5)).astype(F32)
    lengths = np.array([7, 2, 5])
    ref = model.forward(x.astype(np.float64), lengths=lengths)
    eng = rc.compile(model, precision=precision)
    y = eng.run(x, lengths)
    assert y.shape == (3, 7, 3)
    tol = F32_TOL if precision == "f32" else Q8_BOUND
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(y[b, :n], ref[b, :n], atol=tol, rtol=0)
        assert np.all(y[b, n:] == 0)
    if precision == "q8":
        y_q, _ = Q.q8_forward(eng.reference(), x, lengths)
        np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)
    # state of a mixed stack: one entry per (layer, direction), LSTM entries are (h, c)
    s = eng.stream(3)
    for t in range(3):
        s.step(x[:, t])
    st = s.state
    assert isinstance(st, list) and st[0].shape == (3, 8) and isinstance(st[1], tuple)
    after = [s.step(x[:, t]).copy() for t in range(3, 7)]
    s.state = st
    again = [s.step(x[:, t]).copy() for t in range(3, 7)]
    np.testing.assert_array_equal(np.stack(after), np.stack(again))
    _, st_ref = Q.forward(Q.spec_from_model(model), x[:, :3], dtype=np.float64)
    np.testing.assert_allclose(st[0], st_ref[0], atol=tol)
    np.testing.assert_allclose(st[1][1], st_ref[1][1], atol=tol * 10)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_token_stream_equals_run(precision):
    model = Sequential(Embedding(12, 5, seed=31), rc.nn.LSTM(5, 7, seed=32), Linear(7, 2, seed=33))
    _f32_weights(model)
    eng = rc.compile(model, precision=precision)
    ids = np.random.default_rng(34).integers(0, 12, (3, 6))
    y_run = eng.run(ids)
    s = eng.stream(3)
    y_step = np.stack([s.step(ids[:, t]).copy() for t in range(6)], axis=1)
    np.testing.assert_allclose(y_step, y_run, atol=2e-6, rtol=0)
    ref = model.forward(ids)
    np.testing.assert_allclose(y_run, ref, atol=F32_TOL if precision == "f32" else Q8_BOUND, rtol=0)
