"""Strided time layers in the C engine (f32): pooling over time (pool_time records, max and
average, PyTorch's MaxPool1d / AvgPool1d without padding) and the causal Conv1d over time with a
stride (conv_time), with steps that give no output (docs/c-api.md, "Steps without an output").

Against PyTorch (independent reference: the pooling / the left-padded Conv1d(stride) and a GRU
with the same weights), the NumPy reference, the engine's own stream frame by frame (the same
bits as ``run``, ``None`` at the steps without an output), runs in chunks of any length, lengths
(each sequence as if alone), the countdowns kept in the stream state (save/restore, pickling,
refusals), the q4 refusal and the loader's checks.
"""

from __future__ import annotations

import pathlib
import pickle
import re
import sys

import numpy as np
import pytest
from _helpers import randn32
from rnc_mutations import edit_first_record
from stream_drive import drive

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.spec import spec_from_rnc, to_rnc_spec

torch = pytest.importorskip("torch")
nn = rc.nn


def _torch_gru(i, h, seed):
    torch.manual_seed(seed)
    return torch.nn.GRU(i, h, batch_first=True)


def _rc_gru(tg):
    g = nn.GRU(tg.input_size, tg.hidden_size, dtype="float32")
    g.load_state_dict(tg.state_dict())
    return g


# (rc front layer, torch front function on (B, C, T)) -- PyTorch's own layers as the reference
FRONTS = {
    "max k3 s2": (lambda: nn.MaxPool1d(3, channels=4, stride=2, dtype="float32"),
                  lambda: torch.nn.MaxPool1d(3, stride=2)),
    "avg k2 (s = k)": (lambda: nn.AvgPool1d(2, channels=4, dtype="float32"), lambda: torch.nn.AvgPool1d(2)),
    "avg k4 s1": (lambda: nn.AvgPool1d(4, channels=4, stride=1, dtype="float32"),
                  lambda: torch.nn.AvgPool1d(4, stride=1)),
    "max k2 s3 dilation 2": (lambda: nn.MaxPool1d(2, channels=4, stride=3, dilation=2, dtype="float32"),
                             lambda: torch.nn.MaxPool1d(2, stride=3, dilation=2)),
    "max k1 s1 (identity)": (lambda: nn.MaxPool1d(1, channels=4, stride=1, dtype="float32"),
                             lambda: torch.nn.MaxPool1d(1, stride=1)),
}


def _conv_pair(stride, k=3, dilation=1, seed=5):
    torch.manual_seed(seed)
    tc = torch.nn.Conv1d(4, 6, k, stride=stride, dilation=dilation)
    c = nn.Conv1d(4, 6, k, stride=stride, padding="causal", dilation=dilation, dtype="float32")
    c.load_state_dict({"weight": tc.weight.detach().numpy(), "bias": tc.bias.detach().numpy()})
    pad = dilation * (k - 1)
    return c, lambda u: tc(torch.nn.functional.pad(u, (pad, 0)))


def _torch_run(front, tg, X):
    with torch.no_grad():
        u = front(torch.from_numpy(X).transpose(1, 2)).transpose(1, 2)
        return tg(u.contiguous())[0].numpy()


@pytest.mark.parametrize("name", list(FRONTS))
def test_pooling_then_gru_matches_pytorch_and_the_stream_gives_the_same_bits(name):
    mk_rc, mk_torch = FRONTS[name]
    tg = _torch_gru(4, 8, 1)
    model = nn.Sequential(mk_rc(), _rc_gru(tg))
    X = randn32((3, 17, 4), seed=2)
    want = _torch_run(mk_torch(), tg, X)
    eng = rc.compile(model)
    assert eng.describe() == "pool_time > gru(8)"
    Y = eng.run(X)
    assert Y.shape == want.shape   # T_out as PyTorch's
    np.testing.assert_allclose(Y, want, rtol=0, atol=2e-6)
    np.testing.assert_allclose(Y, model.forward(X), rtol=0, atol=2e-6)
    st = eng.stream(batch=3)
    got, _ = drive(st, X)
    assert len(got) == want.shape[1]
    np.testing.assert_array_equal(np.stack(got, 1), Y)


@pytest.mark.parametrize("stride, k, dilation", [(2, 3, 1), (3, 2, 2), (4, 1, 1), (2, 5, 1)])
def test_strided_causal_conv_matches_pytorch_after_the_left_pad(stride, k, dilation):
    conv, tconv = _conv_pair(stride, k, dilation)
    tg = _torch_gru(6, 7, 3)
    model = nn.Sequential(conv, nn.ReLU(), _rc_gru(tg))
    X = randn32((2, 15, 4), seed=4)
    with torch.no_grad():
        u = torch.relu(tconv(torch.from_numpy(X).transpose(1, 2))).transpose(1, 2).contiguous()
        want = tg(u)[0].numpy()
    assert want.shape[1] == -(-15 // stride)   # ceil(T / s)
    eng = rc.compile(model)
    Y = eng.run(X)
    np.testing.assert_allclose(Y, want, rtol=0, atol=2e-6)
    st = eng.stream(batch=2)
    got, none = drive(st, X)
    # outputs at t = 0, s, 2s, ... (the first step already has one)
    assert [t for t, n in enumerate(none) if not n] == list(range(0, 15, stride))
    np.testing.assert_array_equal(np.stack(got, 1), Y)


def kws_strided(seed=0, cell=nn.GRU):
    """Conv1d(stride 2) > ReLU > MaxPool1d(3, stride 2) > AvgPool1d(2, stride 1) > GRU > Linear."""
    return nn.Sequential(
        nn.Conv1d(5, 6, 3, stride=2, padding="causal", seed=seed),
        nn.ReLU(),
        nn.MaxPool1d(3, channels=6, stride=2),
        nn.AvgPool1d(2, channels=6, stride=1),
        cell(6, 9, seed=seed + 1),
        nn.Linear(9, 3, seed=seed + 2),
    )


def test_chained_strided_layers_match_numpy_in_chunks_of_any_length():
    m = kws_strided()
    eng = rc.compile(m)
    X = randn32((2, 41, 5), seed=6)
    ref = m.forward(X.astype(np.float64))
    Y = eng.run(X)
    assert Y.shape == ref.shape == (2, 9, 3)   # 41 -> 21 (conv) -> 10 (max) -> 9 (avg)
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(6):   # random cuts, empty chunks and chunks without an output included
        cuts = np.sort(rng.integers(0, 42, size=int(rng.integers(1, 8))))
        s = eng.stream(batch=2)
        parts, prev = [], 0
        for c in list(cuts) + [41]:
            n = s.out_steps(int(c) - prev)
            part = s.run(X[:, prev:c])
            assert part.shape == (2, n, 3)
            parts.append(part)
            prev = int(c)
        np.testing.assert_array_equal(np.concatenate(parts, 1), Y)
    st = eng.stream(batch=2)
    got, _ = drive(st, X)
    np.testing.assert_array_equal(np.stack(got, 1), Y)


def test_a_step_without_output_leaves_out_and_the_recurrent_state_untouched():
    eng = rc.compile(nn.Sequential(nn.MaxPool1d(2, channels=3), nn.LSTM(3, 4, seed=0)))
    st = eng.stream(batch=1)
    X = randn32((1, 6, 3), seed=1)
    out = np.full((1, 4), 7.0, np.float32)
    assert st.step(X[:, 0], out=out) is None   # the first window needs 2 inputs
    np.testing.assert_array_equal(out, 7.0)
    h, c = st.state["recurrent"]
    assert not h.any() and not c.any()
    assert st.step(X[:, 1], out=out) is out
    assert st.state["recurrent"][0].any()
    before = st.state
    assert st.step(X[:, 2], out=out) is None
    after = st.state
    np.testing.assert_array_equal(after["recurrent"][0], before["recurrent"][0])
    np.testing.assert_array_equal(after["windows"][0][:, -1], X[:, 2])   # x went into the window
    assert before["countdowns"].tolist() == [[1]] and after["countdowns"].tolist() == [[0]]


def test_lengths_give_each_sequence_its_own_outputs_and_last_step_pools_the_last_one():
    m = kws_strided(seed=3)
    eng = rc.compile(m)
    X = randn32((3, 23, 5), seed=7)
    L = np.array([23, 12, 2])
    Y = eng.run(X, lengths=L)
    for b in range(3):
        alone = eng.run(X[b:b + 1, :L[b]])
        n = alone.shape[1]
        np.testing.assert_array_equal(Y[b, :n], alone[0])
        assert not Y[b, n:].any()
    pooled = nn.Sequential(*[mod for _, mod in m.children()][:-1], nn.LastStep(), nn.Linear(9, 2, seed=9))
    pe = rc.compile(pooled)
    P = pe.run(X, lengths=L)
    np.testing.assert_allclose(P[:2], pooled.forward(X[:1].astype(np.float64))[:1].tolist() + [
        pooled.forward(X[1:2, :12].astype(np.float64))[0]], rtol=0, atol=1e-5)
    # sequence 2 (2 steps) has no output at all: the head of a zero vector, as for length 0
    np.testing.assert_allclose(P[2], pe.run(X[2:3], lengths=np.array([0]))[0], rtol=0, atol=0)


def test_the_countdowns_are_part_of_the_state_save_restore_reset_pickle():
    eng = rc.compile(kws_strided(seed=4, cell=nn.LSTM))
    X = randn32((2, 30, 5), seed=8)
    Y = eng.run(X)
    st = eng.stream(batch=2)
    got, _ = drive(st, X, 0, 7)
    saved = st.state
    assert set(saved) == {"recurrent", "windows", "countdowns"}
    assert saved["countdowns"].shape == (2, 3) and saved["countdowns"].dtype == np.int64
    assert [w.shape for w in saved["windows"]] == [(2, 2, 5), (2, 2, 6), (2, 1, 6)]
    got += drive(st, X, 7)[0]
    np.testing.assert_array_equal(np.stack(got, 1), Y)
    st.state = saved
    rest, _ = drive(st, X, 7)
    np.testing.assert_array_equal(np.stack(rest, 1), Y[:, -len(rest):])
    s3 = eng.stream(batch=2)
    for t in range(11):
        s3.step(X[:, t])
    s4 = pickle.loads(pickle.dumps(s3))
    a, _ = drive(s3, X, 11)
    b, _ = drive(s4, X, 11)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    # the recurrent form alone starts the windows and countdowns afresh, as reset()
    st.state = saved["recurrent"]
    fresh = eng.stream(batch=2).state
    np.testing.assert_array_equal(st.state["countdowns"], fresh["countdowns"])
    assert fresh["countdowns"].tolist() == [[0, 2, 1]] * 2   # conv: 0, max k3: 2, avg k2: 1


def test_bad_countdowns_are_refused_naming_them():
    eng = rc.compile(kws_strided())
    st = eng.stream(batch=2)
    s = st.state
    bad = dict(s, countdowns=np.array([[0, 3, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=re.escape("state['countdowns'][:, 1]: expected values in [0, 2], "
                                                   "got [0, 3]")):
        st.state = bad
    with pytest.raises(TypeError, match=r"state\['countdowns'\]: expected an integer array"):
        st.state = dict(s, countdowns=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected the keys 'recurrent' and 'windows' and 'countdowns'"):
        st.state = {"recurrent": s["recurrent"], "windows": s["windows"]}
    # rows out of step: run takes them (each row its own outputs), step refuses them
    st.state = dict(s, countdowns=np.array([[0, 2, 1], [1, 2, 1]]))
    with pytest.raises(ValueError, match="differ between the stream rows"):
        st.step(randn32((2, 5)))
    X = randn32((2, 9, 5), seed=3)
    Y = st.run(X)
    a, b = eng.stream(1), eng.stream(1)
    b.state = {"recurrent": s["recurrent"][:, 1:], "windows": [w[1:] for w in s["windows"]],
               "countdowns": np.array([[1, 2, 1]])}
    ya, yb = a.run(X[:1]), b.run(X[1:])
    np.testing.assert_array_equal(Y[0, :ya.shape[1]], ya[0])
    np.testing.assert_array_equal(Y[1, :yb.shape[1]], yb[0])
    assert not Y[1, yb.shape[1]:].any()
    # a countdown written in C memory that is not an integer: RNC_E_STATE, never a wrong output
    raw = st._s.raw_window()
    raw[raw.size // 2 - 1] = 0.5
    st._s.set_raw_window(raw)
    with pytest.raises(ValueError, match="countdowns in stream.state are not valid integers"):
        st.run(X)


def test_q4_and_unrunnable_forms_are_refused_naming_the_field():
    # q8 runs them (tests/test_engine_q8_kws.py); q4 files hold no per-step records
    with pytest.raises(ValueError, match=r"front\[0\] \(max_pool1d\): the C core runs per-step records in "
                                         r"f32 and q8 files only"):
        rc.compile(nn.Sequential(nn.MaxPool1d(2, channels=3), nn.GRU(3, 4)), precision="q4")
    # padded pooling: tests/test_engine_lookahead.py
    # ceil_mode: any stride and padding (tests/test_engine_flush.py) but an average counting its pads
    with pytest.raises(ValueError, match=r"front\[0\] \(avg_pool1d\): ceil_mode=True with count_include_pad="
                                         r"True, padding \(1, 1\) and stride 2: the last window counts the "
                                         r"padding"):
        rc.compile(nn.Sequential(nn.AvgPool1d(3, channels=3, stride=2, padding=1, ceil_mode=True),
                                 nn.GRU(3, 4)))


def test_rnc_round_trip():
    eng = rc.compile(kws_strided(seed=7))
    d = read_rnc(eng.data)
    assert [r["kind"] for r in d["front"]] == ["conv1d", "relu", "max_pool1d", "avg_pool1d"]
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data
    X = randn32((1, 20, 5))
    np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


def _pool_file(**edit) -> bytes:
    """A MaxPool1d(3, stride 2) > GRU file with record 0 (pool_time) edited, the checksum fixed."""
    data = rc.compile(nn.Sequential(nn.MaxPool1d(3, channels=4, stride=2), nn.GRU(4, 5))).data
    return edit_first_record(data, "rec_pool_time", **edit)


@pytest.mark.parametrize("edit, status, want", [
    (dict(channels=3), "CORRUPT", "record 0 (pool_time): channels: 3, expected 4"),
    (dict(kernel_size=0), "CORRUPT", "record 0 (pool_time): kernel_size: 0, expected 1..65536"),
    (dict(stride=0), "CORRUPT", "record 0 (pool_time): stride: 0, expected 1..65536"),
    (dict(stride=65537), "CORRUPT", "record 0 (pool_time): stride: 65537, expected 1..65536"),
    (dict(dilation=0), "CORRUPT", "record 0 (pool_time): dilation: 0, expected 1..65536"),
    (dict(op=2), "CORRUPT", "record 0 (pool_time): op: 2, expected 0..1"),
    (dict(kernel_size=65536, dilation=65536), "UNSUPPORTED",
     "record 0 (pool_time): kernel_size: window of 4294901760 steps x 4 channels, the C core keeps at most "
     "1048576 floats per stream"),
    (dict(precision=2), "UNSUPPORTED", "record 0 (pool_time): kind: kind 11 (pool_time) in a q4 file"),
])
def test_corrupted_pool_time_records_are_refused_alike(edit, status, want):
    data = _pool_file(**edit)
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    assert e.value.status == status
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def test_models_without_strided_layers_keep_their_outputs_and_state_form():
    """A stride-1 conv_time keeps no countdown: the state dict and every output as before."""
    m = nn.Sequential(nn.Conv1d(3, 4, 2, padding="causal", seed=1), nn.GRU(4, 5, seed=2))
    eng = rc.compile(m)
    st = eng.stream(batch=1)
    assert set(st.state) == {"recurrent", "windows"}
    X = randn32((1, 6, 3))
    assert st.out_steps(6) == 6
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(6)], 1), eng.run(X))


class _TorchKws(torch.nn.Module):
    """Conv1d(stride 2) after a causal left pad > ReLU > MaxPool1d(3, 2) > AvgPool1d(2) > GRU > Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(5, 6, 3, stride=2)
        self.pool = torch.nn.MaxPool1d(3, stride=2)
        self.avg = torch.nn.AvgPool1d(2)
        self.gru = torch.nn.GRU(6, 7, batch_first=True)
        self.head = torch.nn.Linear(7, 2)

    def forward(self, x):
        y = torch.relu(self.conv(torch.nn.functional.pad(x.transpose(1, 2), (2, 0))))
        y = self.avg(self.pool(y)).transpose(1, 2)
        return self.head(self.gru(y)[0])


def test_torch_fx_import_of_strided_conv_and_pooling_matches_torch_run_and_stream():
    torch.manual_seed(0)
    tm = _TorchKws().eval()
    X = randn32((2, 40, 5), seed=12)
    with torch.no_grad():
        want = tm(torch.as_tensor(X)).numpy()
    assert want.shape == (2, 4, 2)
    eng = rc.compile(rc.io.from_torch(tm))
    assert eng.describe() == "conv_time > pointwise > pool_time > pool_time > gru(7) > linear(7->2)"
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    st = eng.stream(2)
    got, _ = drive(st, X)
    np.testing.assert_allclose(np.stack(got, 1), want, rtol=0, atol=1e-5)


def test_keras_strided_causal_conv1d_and_poolings_match_keras_run_and_stream(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    km = keras.Sequential([
        keras.Input((None, 5)),
        keras.layers.Conv1D(6, 3, strides=2, padding="causal", activation="relu"),
        keras.layers.MaxPooling1D(3, strides=2),
        keras.layers.AveragePooling1D(2),
        keras.layers.GRU(7, return_sequences=True),
        keras.layers.Dense(2),
    ])
    X = randn32((2, 40, 5), seed=13)
    want = np.asarray(km.predict(X, verbose=0))
    assert want.shape == (2, 4, 2)
    path = tmp_path / "strided.keras"
    km.save(path)
    eng = rc.compile(rc.io.from_keras(str(path)))
    assert eng.describe() == "conv_time > pointwise > pool_time > pool_time > gru(7) > linear(7->2)"
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    st = eng.stream(2)
    got, _ = drive(st, X)
    np.testing.assert_allclose(np.stack(got, 1), want, rtol=0, atol=1e-5)


def test_export_c_of_a_strided_model_prints_only_the_steps_with_an_output(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from child_env import child_env

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(["make", "-C", str(root / "csrc"), "lib"], capture_output=True, text=True, timeout=600,
                       env=child_env())
    assert r.returncode == 0, r.stderr[-2000:]
    m = kws_strided(seed=9, cell=nn.LSTM)
    eng = rc.compile(m)
    (tmp_path / "m.rnc").write_bytes(eng.data)
    src = tmp_path / "m.c"
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o", str(src)],
                       capture_output=True, text=True, cwd=root, env=child_env())
    assert r.returncode == 0, r.stderr
    exe = tmp_path / "m"
    r = subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{root / 'csrc' / 'include'}", str(src),
                        str(root / "csrc" / "build" / "librnncore.a"), "-lm", "-o", str(exe)],
                       capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    X = randn32((29, 5), seed=14)
    X.astype("<f4").tofile(tmp_path / "x.f32")
    want = m.forward(X[None].astype(np.float64))[0]
    assert want.shape == (6, 3)   # 29 -> 15 -> 7 -> 6
    for mode in ([], ["--run"]):
        r = subprocess.run([str(exe), *mode, str(tmp_path / "x.f32")], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        got = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()], np.float32)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=str(mode))


@pytest.mark.parametrize("isa", rc.isa()["available"])
def test_every_isa_path_steps_with_the_bits_of_its_run(isa):
    m = kws_strided(seed=5)
    eng = rc.compile(m)
    eng.set_isa(isa)
    X = randn32((2, 25, 5), seed=15)
    Y = eng.run(X)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)
    st = eng.stream(2)
    got, _ = drive(st, X)
    np.testing.assert_array_equal(np.stack(got, 1), Y)


def test_strided_conv_time_with_int8_weights_compiles_and_loads_alike():
    """A q8 conv_time at a stride (its product only at the steps its countdown lets through):
    rc.compile keeps its weights int8, and a stride-1 file edited to stride 2 passes the loader and
    read_rnc alike and runs as the NumPy q8 spec of what read_rnc reads (bit for bit)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
    import gen_vectors

    from rnncore.quant.reference import qmodel_from_rnc

    m = nn.Sequential(nn.Conv1d(5, 6, 3, stride=2, padding="causal", seed=1), nn.GRU(6, 4, seed=2))
    d = read_rnc(rc.compile(m, "q8").data)
    assert d["front"][0]["stride"] == 2 and d["front"][0]["tensors"]["qweight"].dtype == np.int8
    m1 = nn.Sequential(nn.Conv1d(5, 6, 3, padding="causal", seed=1), nn.GRU(6, 4, seed=2))
    data = edit_first_record(rc.compile(m1, "q8").data, "rec_conv_time", stride=2)
    check_rnc(data)
    d = read_rnc(data)
    assert d["front"][0]["stride"] == 2
    X = randn32((2, 9, 5), seed=3)
    got = rc.load(data).run(X)
    assert got.shape == (2, 5, 4)   # ceil(9 / 2) steps
    want, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(d), X, None)
    np.testing.assert_array_equal(got, want)


def test_residual_over_a_strided_record_is_refused_alike():
    """A residual adds equal steps: one spanning a record with a countdown is refused by the loader
    and read_rnc alike (and the f32 stride-1 file it was edited from loads)."""
    m = nn.Sequential(nn.Residual(nn.Conv1d(3, 3, 2, padding="causal", seed=1)), nn.GRU(3, 4, seed=2))
    data = rc.compile(m).data
    check_rnc(data)
    bad = edit_first_record(data, "rec_conv_time", stride=2)
    want = ("record 1 (residual): span: 1: the records it spans include conv_time, which gives no output at "
            "some steps")
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(bad)
    assert e.value.status == "UNSUPPORTED"
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bad)
