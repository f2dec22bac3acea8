"""The compiled engine used the way a hurried edge-ML engineer uses it.

Every case gives either the right answer (checked against the float64 NumPy reference ``rc.nn``
or the quantised reference ``rnncore.quant`` on the engine's stored int8 weights) or a
ValueError/TypeError (RuntimeError for a stream called from two threads at once) that names the
argument, what was expected and what was received.

Tolerances are those of tests/test_engine.py (``F32_TOL``: float32 rounding + the C core's fast
tanh/sigmoid over a few steps; ``Q8_SEQ_TOL``: one int8 rounding flip of q(h) on a later step).
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import rnncore as rc
from rnncore import quant as Q

F32 = np.float32
F32_TOL = 5e-5
Q8_SEQ_TOL = 5e-3


def _f32_weights(model):
    for _, v in model.named_parameters():
        v[...] = v.astype(F32).astype(v.dtype)
    return model


@pytest.fixture(scope="module")
def gru():
    return _f32_weights(rc.nn.GRU(4, 8, num_layers=2, seed=11))


@pytest.fixture(scope="module")
def gru_engine(gru):
    return rc.compile(gru, "f32")


def _ref_steps(model, xs):
    """Reference outputs of the steps xs (B, T, I) from a zero state: (B, T, H)."""
    y, _ = model.forward(np.asarray(xs, np.float64))
    return y


# ------------------------------------------------------------------------------------------
# step / run inputs


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int8, np.uint8])
def test_step_and_run_convert_real_dtypes_like_float32(gru, gru_engine, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, size=(2, 3, 4)).astype(dtype)
    if np.dtype(dtype).kind == "u":
        x = np.abs(x).astype(dtype)
    y_ref = _ref_steps(gru, x.astype(np.float64))
    s = gru_engine.stream(2)
    ys = np.stack([s.step(x[:, t]) for t in range(3)], axis=1)
    np.testing.assert_allclose(ys, y_ref, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(gru_engine.run(x), y_ref, atol=F32_TOL, rtol=0)


@pytest.mark.parametrize("bad,got", [(None, "None"), ("abc", "dtype <U3"), (np.ones((2, 4), bool), "bool"),
                                     (np.ones((2, 4), complex), "complex128"),
                                     (np.array([[object()] * 4] * 2), "object")])
def test_step_and_run_refuse_non_real_inputs_with_a_type_error(gru_engine, bad, got):
    s = gru_engine.stream(2)
    with pytest.raises(TypeError, match=rf"x: expected a float32 array of shape \(2, 4\), got .*{got}"):
        s.step(bad)
    badX = bad if bad is None or isinstance(bad, str) else bad[:, None, :]
    with pytest.raises(TypeError, match=r"X: expected a float array \(batch, T, 4\), got"):
        s.run(badX)
    np.testing.assert_array_equal(s.state, 0)  # nothing ran


def test_non_contiguous_inputs_give_the_contiguous_answer(gru, gru_engine):
    rng = np.random.default_rng(2)
    big = rng.standard_normal((6, 5, 8)).astype(F32)
    X = big[::2, :, ::2]  # (3, 5, 4), strided in batch and features
    assert not X.flags.c_contiguous
    y_ref = _ref_steps(gru, X)
    np.testing.assert_allclose(gru_engine.run(X), y_ref, atol=F32_TOL, rtol=0)
    s = gru_engine.stream(3)
    xt = np.asfortranarray(X[:, 0])
    np.testing.assert_allclose(s.step(xt), y_ref[:, 0], atol=F32_TOL, rtol=0)


def test_wrong_batch_and_bad_out_buffers_leave_the_state(gru_engine):
    s = gru_engine.stream(2)
    s.step(np.ones((2, 4), F32))
    before = s.state
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 4\) \(batch, input_size\), "
                                         r"got shape \(3, 4\)"):
        s.step(np.ones((3, 4), F32))
    x = np.ones((2, 4), F32)
    ro = np.zeros((2, 8), F32)
    ro.setflags(write=False)
    for out in (np.zeros((2, 8)), np.zeros((2, 9), F32), np.zeros((8, 2), F32).T, ro, [0.0] * 16,
                np.zeros((1, 2, 8), F32)):
        with pytest.raises(ValueError, match=r"out: expected a writable, aligned, C-contiguous float32 "
                                             r"array of shape \(2, 8\), got"):
            s.step(x, out=out)
    np.testing.assert_array_equal(s.state, before)


def test_lengths_as_list_mask_and_bad_lengths(gru, gru_engine):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 6, 4)).astype(F32)
    lengths = [6, 2, 4]
    y_ref, h_ref = gru.forward(X.astype(np.float64), lengths=np.array(lengths))
    y, h = gru_engine.run(X, lengths, return_state=True)
    np.testing.assert_allclose(y, y_ref, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(h, h_ref, atol=F32_TOL, rtol=0)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    y_m, h_m = gru_engine.run(X, mask=mask, return_state=True)
    np.testing.assert_array_equal(y_m, y)
    np.testing.assert_array_equal(h_m, h)
    np.testing.assert_array_equal(gru_engine.stream(3).run(X, mask=mask), y)
    with pytest.raises(ValueError, match="lengths, mask: give one of them"):
        gru_engine.run(X, lengths, mask=mask)
    with pytest.raises(TypeError, match="mask: expected a boolean array"):
        gru_engine.run(X, mask=mask.astype(int))
    with pytest.raises(ValueError, match=r"mask: expected shape \(3, 6\)"):
        gru_engine.run(X, mask=mask[:, :5])
    holes = mask.copy()
    holes[0, 2] = False
    with pytest.raises(ValueError, match="mask: expected a prefix mask.*sequence 0"):
        gru_engine.run(X, mask=holes)
    for bad, msg in [([6, 7, 1], r"lengths: expected values in \[0, 6\], got \[1, 7\]"),
                     ([-1, 2, 3], r"lengths: expected values in \[0, 6\]"),
                     ([2**40, 1, 1], r"lengths: expected values in \[0, 6\]"),
                     ([6, 2], "lengths: expected 3 integers"),
                     ([6.0, 2.0, 4.0], "lengths: expected 3 integers")]:
        with pytest.raises(ValueError, match=msg):
            gru_engine.run(X, bad)


def test_empty_batch_and_zero_steps(gru_engine):
    with pytest.raises(ValueError, match=r"X: empty batch"):
        gru_engine.run(np.zeros((0, 5, 4), F32))
    with pytest.raises(ValueError, match="batch: expected a positive integer, got 0"):
        gru_engine.stream(0)
    with pytest.raises(ValueError, match=r"batch: at most 16777216 \(2\*\*24\) streams, got 1099511627776"):
        gru_engine.stream(2**40)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"batch: expected an integer in \[1, 16777216\]"):
            gru_engine.state_bytes(bad)
    # T = 0: no output, the state passes through unchanged
    h0 = np.random.default_rng(4).standard_normal((2, 3, 8)).astype(F32)
    y, h = gru_engine.run(np.zeros((3, 0, 4), F32), state=h0, return_state=True)
    assert y.shape == (3, 0, 8)
    np.testing.assert_array_equal(h, h0)


def test_nan_padding_past_the_lengths_is_ignored_and_nan_inside_is_refused(gru, gru_engine):
    """Positions past a length give zero output and do not change the state (docs/c-api.md), so
    NaN padding (pandas-style) gives the zero-padded answer; NaN within a length is an error."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 4, 4)).astype(F32)
    Xp = X.copy()
    Xp[1, 2:] = np.nan
    Xp[1, 3, 0] = np.inf
    Xz = X.copy()
    Xz[1, 2:] = 0
    y_ref, h_ref = gru.forward(Xz.astype(np.float64), lengths=np.array([4, 2]))
    y, h = gru_engine.run(Xp, [4, 2], return_state=True)
    np.testing.assert_allclose(y, y_ref, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(h, h_ref, atol=F32_TOL, rtol=0)
    assert np.isnan(Xp[1, 2:, 1:]).all()  # the caller's array is not modified
    np.testing.assert_array_equal(gru_engine.run(Xp, mask=np.arange(4)[None, :] < np.array([[4], [2]])), y)
    np.testing.assert_array_equal(y, gru_engine.run(Xz, [4, 2]))
    s = gru_engine.stream(2)
    before = s.state
    for lengths in ([4, 3], None):
        with pytest.raises(ValueError, match="X: contains NaN or Inf"):
            s.run(Xp, lengths)
        np.testing.assert_array_equal(s.state, before)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("batch", [1, 3, 5, 17])
def test_nan_padding_reaches_c_and_gives_the_zero_padded_bits(precision, batch):
    """The C core checks finiteness only within each sequence's length (one call, no NumPy
    fallback): NaN/Inf padding gives exactly the zero-padded outputs and state, in the
    whole-sequence (batch < 4) and per-step (batch >= 4) modes, with and without a head."""
    rng = np.random.default_rng(batch)
    for model in (rc.nn.LSTM(3, 11, num_layers=2, bidirectional=True, seed=1),
                  rc.nn.Sequential(rc.nn.GRU(3, 9, seed=2), rc.nn.Linear(9, 4, seed=3))):
        eng = rc.compile(model, precision=precision)
        X = rng.standard_normal((batch, 6, 3)).astype(F32)
        lengths = rng.integers(0, 7, batch)
        lengths[0] = 6
        pad = np.arange(6)[None, :] >= lengths[:, None]
        Xp, Xz = X.copy(), X.copy()
        Xp[pad] = np.nan
        Xp[pad & (np.arange(6)[None, :] % 2 == 0)] = np.inf
        Xz[pad] = 0
        y, s = eng.run(Xp, lengths, return_state=True)
        y0, s0 = eng.run(Xz, lengths, return_state=True)
        np.testing.assert_array_equal(y, y0)
        for a, a0 in zip(s if isinstance(s, tuple) else (s,), s0 if isinstance(s0, tuple) else (s0,),
                         strict=True):
            np.testing.assert_array_equal(a, a0)


# ------------------------------------------------------------------------------------------
# state


def test_lstm_state_forms_are_checked():
    lstm = _f32_weights(rc.nn.LSTM(3, 5, num_layers=2, seed=12))
    s = rc.compile(lstm, "f32").stream(2)
    h = np.random.default_rng(6).standard_normal((2, 2, 5))
    c = np.random.default_rng(7).standard_normal((2, 2, 5))
    with pytest.raises(ValueError, match=r"state: expected the pair \(h, c\) for this model, got ndarray"):
        s.state = h
    with pytest.raises(ValueError, match=r"state: expected the pair \(h, c\) for this model, got NoneType"):
        s.state = None
    with pytest.raises(ValueError, match=r"h: expected shape \(2, 2, 5\), got \(4, 2, 5\)"):
        s.state = (np.zeros((4, 2, 5)), np.zeros((4, 2, 5)))
    with pytest.raises(TypeError, match="c: expected a float array"):
        s.state = (h, c.astype(int))
    with pytest.raises(ValueError, match=r"state\[0\] \(layer 0\): expected \(h, c\)"):
        s.state = [h[0], h[1]]
    # the list form (one (h, c) per layer) and the pair form set the same state, which the
    # reference continues from
    s.state = [(h[0], c[0]), (h[1], c[1])]
    x = np.random.default_rng(8).standard_normal((2, 1, 3))
    y_ref, _ = lstm.forward(x, state=(h, c))
    np.testing.assert_allclose(s.step(x[:, 0]), y_ref[:, 0], atol=F32_TOL, rtol=0)
    s.state = (h, c)
    np.testing.assert_allclose(s.step(x[:, 0]), y_ref[:, 0], atol=F32_TOL, rtol=0)
    s.state = [h, c]  # PyTorch's [h_n, c_n] as a list: the pair too
    np.testing.assert_allclose(s.step(x[:, 0]), y_ref[:, 0], atol=F32_TOL, rtol=0)
    one = rc.compile(_f32_weights(rc.nn.LSTM(3, 5, seed=17)), "f32").stream(2)
    one.state = [h[:1], c[:1]]
    np.testing.assert_array_equal(one.state[1], c[:1].astype(F32))


# ------------------------------------------------------------------------------------------
# compile / calibration / load


def test_compile_names_the_module_it_cannot_run():
    from rnncore.nn.extended import ExtendedRecurrent, ReverseTime

    # MaskedMean, MaskedMax and AttentionPool compile (tests/test_engine_mean.py, test_engine_max.py,
    # test_engine_attention.py); not a second pooling after one
    for pool in (rc.nn.AttentionPool(8), rc.nn.MaskedMean(), rc.nn.MaskedMax(), rc.nn.LastStep()):
        with pytest.raises(ValueError, match=rf"module '2' \({type(pool).__name__}\) is not supported"):
            rc.compile(rc.nn.Sequential(rc.nn.GRU(4, 8), rc.nn.LastStep(), pool, rc.nn.Linear(8, 2)))
    # the ONNX-option layers compile (issue 16); ReverseTime only right before one forward layer
    with pytest.raises(ValueError, match=r"module '1' \(ReverseTime\) must come right before a recurrent"):
        rc.compile(rc.nn.Sequential(rc.nn.GRU(4, 8), ReverseTime(), rc.nn.Linear(8, 2)))
    with pytest.raises(ValueError, match=r"module '0' \(ReverseTime\) before a stacked, bidirectional"):
        rc.compile(rc.nn.Sequential(ReverseTime(), rc.nn.GRU(4, 8, bidirectional=True)))
    with pytest.raises(ValueError, match=r"module '2' \(ExtendedRecurrent\) is not supported"):
        rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.LastStep(), ExtendedRecurrent("GRU", 4, 4)))
    with pytest.raises(ValueError, match="compile: expected an rc.nn recurrent layer"):
        rc.compile(object())


def test_q8_calibration_shapes_are_checked_before_any_arithmetic(gru):
    X = np.random.default_rng(9).standard_normal((3, 5, 4)).astype(F32)
    cases = [(np.zeros((3, 5, 3)), ValueError,
              r"calibration: expected X of shape \(batch, T, 4\).*got \(3, 5, 3\)"),
             (np.zeros((5, 4)), ValueError, r"calibration: expected X of shape \(batch, T, 4\)"),
             ([X], ValueError, r"got \(1, 3, 5, 4\)"),
             (np.zeros((0, 5, 4)), ValueError, "no steps to measure"),
             (X.astype(complex), TypeError, "calibration: expected a float array"),
             ((X, [9, 9, 9]), ValueError, r"calibration: lengths: expected values in \[0, 5\]"),
             ((X, [5, 5]), ValueError, "calibration: lengths: expected 3 integers"),
             ((X, [0, 0, 0]), ValueError, "every length is 0")]
    for cal, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            rc.compile(gru, "q8", calibration=cal)
    # a Calibration object measured on another model is refused, not silently misapplied
    from rnncore.quant.calibrate import calibrate

    other = calibrate(rc.nn.GRU(4, 8, num_layers=3, seed=1), X)
    with pytest.raises(ValueError, match=r"calibration: a Calibration for 3 layer\(s\).*this model has 2"):
        rc.compile(gru, "q8", calibration=other)
    with pytest.raises(ValueError, match=r"directions \[1\].*directions \[2\]"):
        rc.compile(rc.nn.GRU(4, 8, bidirectional=True, seed=2), "q8",
                   calibration=calibrate(rc.nn.GRU(4, 8, seed=2), X))
    own = calibrate(gru, X)
    own.x_scale[0] = float("nan")
    with pytest.raises(ValueError, match="scales must be finite and >= 0"):
        rc.compile(gru, "q8", calibration=own)
    # valid calibration with lengths runs and equals the quantised reference of its own bytes
    eng = rc.compile(gru, "q8", calibration=(X, [5, 3, 1]))
    y_q, _ = Q.q8_forward(eng.reference(), X, np.array([5, 3, 1]))
    np.testing.assert_allclose(eng.run(X, [5, 3, 1]), y_q, atol=Q8_SEQ_TOL, rtol=0)


def test_load_of_things_that_are_not_models(tmp_path, gru_engine):
    with pytest.raises(TypeError, match="path: expected a file path or the .rnc bytes, got int"):
        rc.load(3)  # would otherwise read file descriptor 3
    with pytest.raises(IsADirectoryError):
        rc.load(tmp_path)
    (tmp_path / "notes.txt").write_text("hello, not a model")
    with pytest.raises(ValueError, match=r"notes.txt: .*bad magic.*rc.io.from_torch"):
        rc.load(tmp_path / "notes.txt")
    (tmp_path / "empty.rnc").write_bytes(b"")
    with pytest.raises(ValueError, match="empty buffer"):
        rc.load(str(tmp_path / "empty.rnc"))
    (tmp_path / "half.rnc").write_bytes(gru_engine.data[: len(gru_engine.data) // 2])
    with pytest.raises(ValueError, match=r"half.rnc: invalid .rnc model: model buffer truncated"):
        rc.load(tmp_path / "half.rnc")


# ------------------------------------------------------------------------------------------
# ISA selection


def test_set_isa_refuses_unknown_and_unavailable_paths(gru_engine):
    with pytest.raises(ValueError, match=r"isa: expected one of \['generic'.*got 'nonsense'"):
        rc.set_isa("nonsense")
    with pytest.raises(TypeError, match="isa: expected a string, got int"):
        rc.set_isa(3)
    lacking = [n for n in ("neon", "neondot", "amx", "avxvnni") if n not in rc.isa()["available"]]
    assert lacking, "x86 never runs neon"
    with pytest.raises(ValueError, match=rf"'{lacking[0]}' is not available on this machine"):
        rc.set_isa(lacking[0])
    with pytest.raises(ValueError, match="set_isa"):
        gru_engine.set_isa(lacking[0])
    assert rc.isa()["in_use"] == gru_engine.isa  # nothing changed


def test_garbage_rnncore_isa_names_the_variable():
    code = ("import rnncore as rc\n"
            "for f in (rc.isa, lambda: rc.compile(rc.nn.GRU(2, 3))):\n"
            "    try:\n        f()\n    except ValueError as e:\n        print('ERR', e)\n")
    env = dict(os.environ, RNNCORE_ISA="garbage")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ERR")]
    assert len(lines) == 2, out.stdout + out.stderr
    for ln in lines:
        assert "RNNCORE_ISA='garbage'" in ln and "available" in ln and "generic" in ln


# ------------------------------------------------------------------------------------------
# pickling, threads, large sizes


def test_engine_and_stream_pickle_and_deepcopy(gru, gru_engine):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((2, 6, 4)).astype(F32)
    y_ref = _ref_steps(gru, X)
    for eng in (pickle.loads(pickle.dumps(gru_engine)), copy.deepcopy(gru_engine)):
        np.testing.assert_allclose(eng.run(X), y_ref, atol=F32_TOL, rtol=0)
    s = gru_engine.stream(2)
    for t in range(3):
        s.step(X[:, t])
    s2 = pickle.loads(pickle.dumps(s))  # carries the state
    s3 = copy.deepcopy(s)
    for t in range(3, 6):
        for st in (s, s2, s3):
            np.testing.assert_allclose(st.step(X[:, t]), y_ref[:, t], atol=F32_TOL, rtol=0)


def test_one_stream_from_two_threads_at_once_is_refused_and_never_corrupts():
    eng = rc.compile(rc.nn.GRU(4, 4, seed=13), "f32")
    s = eng.stream(1)
    x = np.full((1, 4), 0.1, F32)
    out = np.empty((1, 4), F32)
    n = 300_000
    started = threading.Event()

    def worker():
        started.set()
        s.time_step(x, out, n)  # n steps in one C call without the GIL

    with pytest.raises(ValueError, match="n: expected a positive number of steps, got 0"):
        s.time_step(x, out, 0)
    th = threading.Thread(target=worker)
    th.start()
    started.wait()
    refused = accepted = 0
    while th.is_alive():
        try:
            s.step(x)
            accepted += 1
        except RuntimeError as e:
            assert "already running in another thread" in str(e)
            refused += 1
    th.join()
    assert refused > 0
    # every step has the same input, so n + accepted whole steps from zero, in any order, give
    # one state: bit for bit that of a fresh stream doing them serially (a torn step would not)
    fresh = eng.stream(1)
    fresh.time_step(x, out, n + accepted)
    np.testing.assert_array_equal(s.state, fresh.state)


def test_large_hidden_and_large_batch_equal_the_references():
    rnn = _f32_weights(rc.nn.RNN(4, 4096, seed=14))
    X = np.random.default_rng(11).standard_normal((2, 3, 4)).astype(F32)
    y_ref = _ref_steps(rnn, X)
    np.testing.assert_allclose(rc.compile(rnn, "f32").run(X), y_ref, atol=F32_TOL, rtol=0)
    q = rc.compile(rnn, "q8")
    y_q, _ = Q.q8_forward(q.reference(), X, None)
    np.testing.assert_allclose(q.run(X), y_q, atol=Q8_SEQ_TOL, rtol=0)
    lstm = _f32_weights(rc.nn.LSTM(8, 16, seed=15))
    Xb = np.random.default_rng(12).standard_normal((512, 5, 8)).astype(F32)
    yb_ref = _ref_steps(lstm, Xb)
    eng = rc.compile(lstm, "f32")
    np.testing.assert_allclose(eng.run(Xb), yb_ref, atol=F32_TOL, rtol=0)
    s = eng.stream(512)
    np.testing.assert_allclose(s.step(Xb[:, 0]), yb_ref[:, 0], atol=F32_TOL, rtol=0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_length_zero_with_last_step_pooling_pools_zeros(precision):
    lin = rc.nn.Linear(8, 3, seed=2)
    model = rc.nn.Sequential(rc.nn.GRU(4, 8, seed=1), rc.nn.LastStep(), lin)
    X = np.random.default_rng(13).standard_normal((2, 5, 4)).astype(F32)
    y = rc.compile(model, precision).run(X, [0, 5])
    # head(0) = bias, as docs/c-api.md states (the reference refuses length 0)
    np.testing.assert_allclose(y[0], dict(lin.named_parameters())["bias"], atol=1e-7, rtol=0)
    y_ref = model.forward(X[1:].astype(np.float64))
    y_ref = y_ref[0] if isinstance(y_ref, tuple) else y_ref
    np.testing.assert_allclose(y[1], y_ref[0], atol=F32_TOL if precision == "f32" else 0.05, rtol=0)


# ------------------------------------------------------------------------------------------
# rnncore export-c with files that are not models


def test_export_c_validates_the_whole_model_and_cli_errors_are_one_line(tmp_path, gru_engine):
    from rnncore.io.export_c import export_c

    data = gru_engine.data
    half, flipped = data[: len(data) // 2], bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(ValueError, match="not a valid .rnc model: model buffer truncated"):
        export_c(half, tmp_path / "half.c")
    with pytest.raises(ValueError, match="not a valid .rnc model: .*checksum"):
        export_c(bytes(flipped), tmp_path / "flipped.c")
    assert not (tmp_path / "half.c").exists() and not (tmp_path / "flipped.c").exists()
    (tmp_path / "half.rnc").write_bytes(half)
    (tmp_path / "m.rnc").write_bytes(data)
    cases = [([str(tmp_path / "half.rnc")], "half.rnc: not a valid .rnc model: model buffer truncated"),
             ([str(tmp_path / "missing.rnc")], "missing.rnc: No such file or directory"),
             ([str(tmp_path)], "Is a directory"),
             ([str(tmp_path / "m.rnc"), "-o", str(tmp_path / "no" / "dir.c")], "dir.c: No such file")]
    for args, msg in cases:
        argv = args if "-o" in args else args + ["-o", str(tmp_path / "out.c")]
        r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", *argv], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("rnncore export-c: ") and msg in r.stderr, r.stderr
    assert not (tmp_path / "out.c").exists()


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_step_in_place_out_is_x(precision):
    """``step(x, out=x)`` (input_size == output_size) equals the reference: the C step reads x
    before it writes y. (The C rnc_run refuses overlapping x / y; csrc/tests checks it.)"""
    m = _f32_weights(rc.nn.GRU(8, 8, num_layers=2, seed=16))
    eng = rc.compile(m, precision)
    X = np.random.default_rng(14).standard_normal((3, 4, 8)).astype(F32)
    s1, s2 = eng.stream(3), eng.stream(3)
    for t in range(4):
        want = s1.step(X[:, t])
        buf = X[:, t].copy()
        got = s2.step(buf, out=buf)
        assert got is buf
        np.testing.assert_array_equal(got, want)
    if precision == "f32":
        np.testing.assert_allclose(want, _ref_steps(m, X)[:, -1], atol=F32_TOL, rtol=0)


def test_misaligned_arrays_are_copied_or_refused(gru, gru_engine):
    """A float32 view at an odd byte offset (np.frombuffer of a packet) is copied to an aligned
    array for x / X / lengths / state (right answer) and refused for out= (it cannot be written in
    place); the C core itself answers RNC_E_ALIGN (csrc/tests)."""
    X = np.random.default_rng(15).standard_normal((2, 3, 4)).astype(F32)

    def odd(a):
        raw = bytearray(a.nbytes + 1)
        v = np.frombuffer(raw, a.dtype, count=a.size, offset=1).reshape(a.shape)
        v[...] = a
        assert not v.flags.aligned and v.flags.c_contiguous
        return v

    y_ref = _ref_steps(gru, X)
    s = gru_engine.stream(2)
    np.testing.assert_allclose(s.step(odd(X[:, 0])), y_ref[:, 0], atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(gru_engine.run(odd(X), odd(np.array([3, 3], np.int32))), y_ref,
                               atol=F32_TOL, rtol=0)
    s.state = odd(s.state.astype(F32))
    np.testing.assert_allclose(s.step(X[:, 1]), y_ref[:, 1], atol=F32_TOL, rtol=0)
    with pytest.raises(ValueError, match=r"out: expected a writable, aligned.*misaligned"):
        s.step(X[:, 2], out=odd(np.zeros((2, 8), F32)))


def test_torch_tensors_as_inputs_and_state(gru, gru_engine):
    """What a PyTorch user passes: tensors (requiring grad too) for x, X, lengths, mask and h0."""
    import torch
    rng = np.random.default_rng(18)
    X = rng.standard_normal((2, 4, 4)).astype(F32)
    h0 = rng.standard_normal((2, 2, 8)).astype(F32)
    y_ref, h_ref = gru.forward(X.astype(np.float64), state=h0.astype(np.float64), lengths=np.array([4, 2]))
    Xt = torch.tensor(X, requires_grad=True)
    y, h = gru_engine.run(Xt, torch.tensor([4, 2]), state=torch.tensor(h0), return_state=True)
    np.testing.assert_allclose(y, y_ref, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(h, h_ref, atol=F32_TOL, rtol=0)
    mask = torch.arange(4)[None, :] < torch.tensor([4, 2])[:, None]
    np.testing.assert_array_equal(gru_engine.run(Xt, mask=mask, state=h0), y)
    s = gru_engine.stream(2)
    s.state = torch.tensor(h0)
    np.testing.assert_allclose(s.step(Xt[:, 0]), y_ref[:, 0], atol=F32_TOL, rtol=0)


def test_export_c_compiles_as_strict_c_and_as_cpp_and_runs(tmp_path, gru, gru_engine):
    """The exported file in a C++ firmware project (ESP-IDF, Arduino, Zephyr C++) or built with
    -pedantic -Werror: compiles, links with the host library, and its example main prints the
    engine's step outputs."""
    import shutil

    from rnncore.io.export_c import export_c

    root = os.path.join(os.path.dirname(__file__), "..")
    csrc = os.path.join(root, "csrc")
    r = subprocess.run(["make", "-C", csrc, "lib"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lib = os.path.join(csrc, "build", "librnncore.a")
    inc = os.path.join(csrc, "include")
    src = tmp_path / "model.c"
    export_c(gru_engine.data, src)
    X = np.random.default_rng(19).standard_normal((1, 4, 4)).astype(F32)
    X[0].tofile(tmp_path / "in.f32")
    want = gru_engine.stream(1)
    want = np.stack([want.step(X[:, t])[0] for t in range(4)])
    cxx = shutil.which("g++")
    assert cxx, "g++ is required (installed by .ci/run)"
    builds = [(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", inc, str(src), lib,
                "-lm"], "c"),
              ([cxx, "-x", "c++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-I", inc, str(src),
                "-x", "none", lib, "-lm"], "cpp")]
    for cmd, tag in builds:
        exe = tmp_path / f"demo_{tag}"
        r = subprocess.run([*cmd, "-o", str(exe)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, tag + r.stderr[-3000:]
        out = subprocess.run([str(exe), str(tmp_path / "in.f32")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        got = np.array([[float(v) for v in ln.split()] for ln in out.stdout.strip().splitlines()])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=tag)
        # and against the float64 reference
        np.testing.assert_allclose(got, _ref_steps(gru, X)[0], atol=F32_TOL, rtol=0)


def test_token_models_type_and_shape_errors():
    model = rc.nn.Sequential(rc.nn.layers.Embedding(10, 3, seed=20), rc.nn.GRU(3, 4, seed=21))
    eng = rc.compile(model, "f32")
    with pytest.raises(TypeError, match=r"X: expected integer token ids of shape \(2, T\), got .*float64"):
        eng.run(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"X: expected integer token ids of shape \(2, T\), "
                                         r"got shape \(2, 3, 1\)"):
        eng.stream(2).run(np.zeros((2, 3, 1), int))
    with pytest.raises(TypeError, match="x: expected integer token ids"):
        eng.stream(2).step(None)
    ids = np.array([[1, 9, 0], [4, 4, 2]])
    y_ref = model.forward(ids)
    y_ref = y_ref[0] if isinstance(y_ref, tuple) else y_ref
    np.testing.assert_allclose(eng.run(ids.astype(np.uint8)), y_ref, atol=F32_TOL, rtol=0)
