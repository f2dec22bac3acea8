"""The host engine on fully-integer (precision 3) files: ``rc.load`` / ``Engine.run`` /
``Stream.step`` give, bit for bit, the NumPy integer spec (:mod:`rnncore.quant.integer`:
``int_forward`` for the outputs, ``int_cell_sequence`` for the final integer states), on every ISA
path this machine runs (the integer rows are the same generic C on each; the plan must reach them
whatever path is forced), for GRU (both forms), LSTM and RNN tanh / ReLU, stacks, heads (none,
softmax), last-step pooling, batches, lengths; a stream gives what a run gives; states saved and
restored (and pickled) continue exactly; ``rc.compile(precision="int8")`` is ``rnncore quantize
--precision int8``; on ARM (aarch64 and armhf under qemu-user, every ISA path of the CPU) the
exported host program gives the same bits."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from child_env import child_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io.rnc_int import write_int_rnc
from rnncore.quant import fixedpoint as fx
from rnncore.quant import integer as qi

ISAS = rc.isa()["available"]
KINDS = ("gru", "gru_rb", "lstm", "rnn_tanh", "rnn_relu")


def _layer(kind: str, i: int, h: int, seed: int):
    if kind == "gru":
        return rc.nn.GRU(i, h, seed=seed)
    if kind == "gru_rb":
        return rc.nn.GRU(i, h, seed=seed, reset_after=False)
    if kind == "lstm":
        return rc.nn.LSTM(i, h, seed=seed)
    return rc.nn.RNN(i, h, nonlinearity=kind[4:], seed=seed)


def _float_model(kinds, i, h, head, last_step, seed=0):
    mods = [_layer(k, i if n == 0 else h, h, seed + n) for n, k in enumerate(kinds)]
    if last_step:
        mods.append(rc.nn.LastStep())
    if head:
        mods.append(rc.nn.Linear(h, 3, seed=seed + 7))
    return rc.nn.Sequential(*mods)


def _int_model(model, X, activation="gemmlowp", head=None, input_dtype="int8"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # small calibration sets (CalibrationWarning)
        qm = qi.quantize_int_model(model, qi.calibrate_int(model, X, input_dtype=input_dtype),
                                   activation=activation)
    if head == "softmax":
        qm.head.activation = "softmax"
    return qm


def _spec_states(qm, X):
    """The final integer state of every layer: LSTM (h8, c16), GRU (h8, h16), RNN (h8,)."""
    x8 = qm.quantize_input(X)   # int8, or int16 for an int16-input model
    out = []
    for c in qm.layers:
        x8, s = qi.int_cell_sequence(c, x8)
        out.append(s)
    return out


def _entries(state, n):
    """Engine.run's state as one entry per layer: h or (h, c)."""
    if isinstance(state, list):
        return state
    if isinstance(state, tuple):
        return [(state[0][k], state[1][k]) for k in range(n)]
    return [state[k] for k in range(n)]


def _engine_states(qm, state):
    """The float state as the integers it stands for (docs/c-api.md, "Fully-integer models")."""
    out = []
    for c, e in zip(qm.layers, _entries(state, len(qm.layers)), strict=True):
        h = np.asarray(e[0] if isinstance(e, tuple) else e, np.float64)
        if c.cell == "gru":
            h16 = np.rint(h * 2.0 ** 15).astype(np.int64)
            assert np.array_equal(h16 / 2.0 ** 15, h)          # exactly a Q0.15 value
            h8 = fx.sat8(fx.mbqm(h16, c.m_h, c.e_h) + c.h_zp).astype(np.int8)
            out.append((h8, h16.astype(np.int16)))
            continue
        h8 = qi.quantize_s8(h, c.h_scale, c.h_zp)
        assert np.array_equal(np.float32(qi.dequantize_s8(h8, c.h_scale, c.h_zp)), h.astype(np.float32))
        if c.cell == "lstm":
            c16 = np.rint(np.asarray(e[1], np.float64) * 2.0 ** -c.cell_shift)
            assert np.array_equal(c16 * 2.0 ** c.cell_shift, np.asarray(e[1], np.float64))
            out.append((h8, c16.astype(np.int16)))
        else:
            out.append((h8,))
    return out


def _check(qm, X, isas=ISAS, lengths=None):
    data = write_int_rnc(qm)
    eng = rc.load(data)
    assert eng.precision == "int8"
    want, _ = qi.int_forward(qm, X)
    want = want.astype(np.float32)
    states = _spec_states(qm, X)
    for isa in isas:
        eng.set_isa(isa)
        y, state = eng.run(X, return_state=True)
        if qm.head is not None and qm.head.activation == "softmax":
            np.testing.assert_array_max_ulp(y, want, maxulp=1)   # exp of libm vs numpy's, in binary64
        else:
            assert np.array_equal(y, want), isa
        for k, (a, b) in enumerate(zip(_engine_states(qm, state), states, strict=True)):
            for u, v in zip(a, b, strict=True):
                assert np.array_equal(u, v), (isa, k)
        s = eng.stream(X.shape[0])
        s.run(X)
        for a, b in zip(s.int_state, states, strict=True):   # the raw integers, as the spec's
            for u, v in zip(a, b, strict=True):
                assert u.dtype == v.dtype and np.array_equal(u, v)
        if not qm.last_step:
            s = eng.stream(X.shape[0])
            ys = np.stack([s.step(X[:, t]) for t in range(X.shape[1])], axis=1)
            assert np.array_equal(ys, y), isa   # stream = run, bit for bit
    return eng


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_is_the_integer_spec(data):
    kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=2))
    i, h = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    b, t = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    head = data.draw(st.sampled_from([None, "none", "softmax"]))
    last_step = data.draw(st.booleans())
    act = data.draw(st.sampled_from(["gemmlowp"] if "lstm" in kinds else ["gemmlowp", "table"]))
    seed = data.draw(st.integers(0, 1000))
    input_dtype = data.draw(st.sampled_from(["int8", "int16"]))
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((b, t, i)) * data.draw(st.sampled_from([0.5, 1.0, 3.0]))).astype(np.float32)
    model = _float_model(kinds, i, h, head, last_step, seed)
    qm = _int_model(model, X, act, head, input_dtype)
    assert qm.input_dtype == input_dtype
    # inputs beyond the calibrated range saturate in the spec's quantiser: also give the engine those
    X2 = np.concatenate([X, 4 * X], axis=1)
    _check(qm, X2)
    if head == "softmax":   # the integer logits, bit for bit
        qm.head.activation = "none"
        _check(qm, X2, isas=ISAS[:1])


@pytest.mark.parametrize("input_dtype", ["int8", "int16"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_cell_kind_on_every_isa_batch_3(kind, input_dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 17, 6)).astype(np.float32)
    model = _float_model([kind, kind], 6, 33, True, False)
    _check(_int_model(model, X, input_dtype=input_dtype), X)


@pytest.mark.parametrize("input_dtype", ["int8", "int16"])
@pytest.mark.parametrize("kind", KINDS)
def test_lengths_and_last_step(kind, input_dtype):
    """Rows past their length keep their state and give zeros; last-step pooling takes step
    length - 1: each row is the spec on its own truncated sequence."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 7, 5)).astype(np.float32)
    lengths = np.array([7, 3, 1, 5])
    for last_step in (False, True):
        qm = _int_model(_float_model([kind], 5, 9, True, last_step), X, input_dtype=input_dtype)
        eng = rc.load(write_int_rnc(qm))
        y, state = eng.run(X, lengths, return_state=True)
        got = _engine_states(qm, state)
        for r, n in enumerate(lengths):
            want, _ = qi.int_forward(qm, X[r:r + 1, :n])
            if last_step:
                assert np.array_equal(y[r], want[0].astype(np.float32)), (r, n)
            else:
                assert np.array_equal(y[r, :n], want[0].astype(np.float32)), (r, n)
                assert not y[r, n:].any()
            for a, b in zip(got[0], _spec_states(qm, X[r:r + 1, :n])[0], strict=True):
                assert np.array_equal(a[r], b[0]), (r, n)


def test_state_restore_and_pickle_continue_exactly():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 12, 4)).astype(np.float32)
    qm = _int_model(_float_model(["lstm", "gru"], 4, 10, True, False), X)
    eng = rc.load(write_int_rnc(qm))
    whole = eng.run(X)
    y0, state = eng.run(X[:, :5], return_state=True)
    assert np.array_equal(eng.run(X[:, 5:], state=state), whole[:, 5:])
    s = eng.stream(2)
    s.run(X[:, :5])
    s2 = pickle.loads(pickle.dumps(s))
    assert np.array_equal(s2.run(X[:, 5:]), whole[:, 5:])
    e2 = pickle.loads(pickle.dumps(eng))
    assert e2.precision == "int8" and np.array_equal(e2.run(X), whole)
    s.reset()   # the zero state: h8 = zp, s16 = 0
    assert np.array_equal(s.run(X), whole)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_an_assigned_state_is_quantised_as_the_spec_quantises(kind):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3, 6, 4)).astype(np.float32)
    qm = _int_model(_float_model([kind], 4, 7, False, False), X)
    c = qm.layers[0]
    h0 = rng.uniform(-1, 1, (3, 7)).astype(np.float32)
    c0 = rng.uniform(-2, 2, (3, 7)).astype(np.float32)
    if kind == "gru":
        h16 = np.rint(h0.astype(np.float64) * 2 ** 15).astype(np.int64)
        init = (fx.sat8(fx.mbqm(h16, c.m_h, c.e_h) + c.h_zp).astype(np.int8), h16.astype(np.int16))
    elif kind == "lstm":
        init = (qi.quantize_s8(h0, c.h_scale, c.h_zp),
                np.rint(c0.astype(np.float64) * 2.0 ** -c.cell_shift).astype(np.int16))
    else:
        init = (qi.quantize_s8(h0, c.h_scale, c.h_zp),)
    h8, _ = qi.int_cell_sequence(c, qi.quantize_s8(X, qm.x_scale, qm.x_zp), init)
    eng = rc.load(write_int_rnc(qm))
    y = eng.run(X, state=(h0[None], c0[None]) if kind == "lstm" else h0[None])
    assert np.array_equal(y, qi.dequantize_s8(h8, c.h_scale, c.h_zp).astype(np.float32))


def test_compile_int8_is_quantize_int8():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 9, 5)).astype(np.float32)
    model = _float_model(["gru"], 5, 16, True, True)
    eng = rc.compile(model, precision="int8", calibration=X)
    cal = qi.calibrate_int(model, X)
    assert eng.data == write_int_rnc(qi.quantize_int_model(model, cal))
    lengths = np.full(20, 9)
    assert rc.compile(model, precision="int8", calibration=(X, lengths)).data == eng.data
    assert rc.compile(model, precision="int8", calibration=cal).data == eng.data
    ref = eng.reference()
    assert isinstance(ref, qi.IntModel)
    assert np.array_equal(eng.run(X), qi.int_forward(ref, X)[0].astype(np.float32))
    with pytest.raises(ValueError, match="calibration: precision='int8' needs"):
        rc.compile(model, precision="int8")
    with pytest.raises(ValueError, match="state_scale: q8 and q4 only"):
        rc.compile(model, precision="int8", calibration=X, state_scale="bounded")
    # input_dtype="int16": rnncore quantize --precision int8 --input-dtype int16
    e16 = rc.compile(model, precision="int8", calibration=X, input_dtype="int16")
    cal16 = qi.calibrate_int(model, X, input_dtype="int16")
    assert e16.data == write_int_rnc(qi.quantize_int_model(model, cal16))
    assert rc.compile(model, precision="int8", calibration=cal16).data == e16.data
    assert e16.reference().input_dtype == "int16" and e16.data != eng.data
    assert np.array_equal(e16.run(X), qi.int_forward(e16.reference(), X)[0].astype(np.float32))
    with pytest.raises(ValueError, match="input_dtype: expected one of"):
        rc.compile(model, precision="int8", calibration=X, input_dtype="int4")
    with pytest.raises(ValueError, match="input_dtype: expected None for precision='q8'"):
        rc.compile(model, precision="q8", input_dtype="int16")


def test_nan_input_is_refused_and_the_state_unchanged():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1, 4, 3)).astype(np.float32)
    eng = rc.load(write_int_rnc(_int_model(_float_model(["gru"], 3, 5, False, False), X)))
    s = eng.stream(1)
    s.step(X[:, 0])
    before = s.state
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.step(np.full((1, 3), np.nan, np.float32))
    assert np.array_equal(s.state, before)


ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
# (cross target, qemu, cpu, the ISA paths it runs)
ARM = [("aarch64", "qemu-aarch64", "cortex-a76", ("generic", "neon", "neondot")),
       ("armhf", "qemu-arm", "cortex-a7", ("generic", "neon"))]


@pytest.mark.parametrize("target,qemu,cpu,isas", ARM, ids=[a[0] for a in ARM])
def test_the_integer_engine_on_arm_under_qemu_user(tmp_path, target, qemu, cpu, isas):
    """export-c (host) of integer files, built with the cross library, run step by step and as one
    rnc_run under qemu-user with RNNCORE_ISA forcing each path: the spec's outputs, bit for bit."""
    gcc = {"aarch64": "aarch64-linux-gnu-gcc", "armhf": "arm-linux-gnueabihf-gcc"}[target]
    missing = [t for t in (gcc, qemu) if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing} (apt-get install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf "
                    "qemu-user; .ci/run does this)")
    lib = CSRC / "build" / "cross" / target / "librnncore.a"
    r = subprocess.run(["make", "-C", str(CSRC), "-j2", str(lib.relative_to(CSRC))], capture_output=True,
                       text=True, env=child_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rng = np.random.default_rng(11)
    X = rng.standard_normal((1, 19, 6)).astype(np.float32)
    models = {"gru_lstm_head": (_float_model(["gru", "lstm"], 6, 20, True, False), "gemmlowp"),
              "grurb_relu": (_float_model(["gru_rb", "rnn_relu"], 6, 17, False, False), "table"),
              "tanh_head": (_float_model(["rnn_tanh"], 6, 40, True, False), "table"),
              "x16_gru_head": (_float_model(["gru", "gru"], 6, 20, True, False), "table")}
    for name, (model, act) in models.items():
        qm = _int_model(model, X, act, input_dtype="int16" if name.startswith("x16") else "int8")
        want = qi.int_forward(qm, 2 * X)[0][0].astype(np.float32)
        path = tmp_path / f"{name}.rnc"
        path.write_bytes(write_int_rnc(qm))
        src, exe, inp = tmp_path / f"{name}.c", tmp_path / name, tmp_path / f"{name}.f32"
        r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(path), "-o", str(src)],
                           capture_output=True, text=True, cwd=ROOT, env=child_env())
        assert r.returncode == 0, r.stderr
        r = subprocess.run([gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{CSRC / 'include'}",
                            str(src), str(lib), "-static", "-lm", "-o", str(exe)],
                           capture_output=True, text=True, env=child_env())
        assert r.returncode == 0, r.stderr
        (2 * X[0]).astype("<f4").tofile(inp)
        for isa in isas:
            for mode in ([], ["--run"]):
                r = subprocess.run([qemu, "-cpu", cpu, str(exe), *mode, str(inp)], capture_output=True,
                                   text=True, timeout=300, env=child_env(RNNCORE_ISA=isa))
                assert r.returncode == 0, r.stderr
                got = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()],
                               np.float32)
                np.testing.assert_array_equal(got, want, err_msg=f"{target} {isa} {name} {mode}")
