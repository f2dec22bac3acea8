"""The C engine's Conv1d over time (conv_time records, docs/rnc-format.md): causal, dilated,
grouped, in a front-end before the recurrent layers, f32. Against the NumPy reference (float64),
PyTorch's conv1d + GRU and Keras' Conv1D(padding="causal") + GRU (independent references), the
engine's own stream frame by frame (the same bits as ``run``), the window kept in the stream state
(save/restore, reset, chunked runs), the loader's and the reader's refusals, ``.rnc`` round trips
and ``export-c`` built and run on this host.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from _helpers import randn32
from export_c_run import exported_outputs
from rnc_mutations import edit_first_record

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.spec import spec_from_rnc, to_rnc_spec

nn = rc.nn
ROOT = Path(__file__).resolve().parents[1]


def kws_like(seed: int = 0, cell=nn.GRU) -> nn.Sequential:
    """A streaming keyword-spotter shape: two causal Conv1d over time (dilated; grouped) with
    activations, a recurrent layer, a per-frame head."""
    return nn.Sequential(
        nn.Conv1d(5, 8, 3, padding="causal", dilation=2, seed=seed),
        nn.ReLU(),
        nn.Conv1d(8, 6, 2, padding="causal", groups=2, seed=seed + 1),
        nn.Tanh(),
        cell(6, 16, seed=seed + 2),
        nn.Linear(16, 3, seed=seed + 3),
    )


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_run_matches_the_numpy_model_and_the_stream_gives_the_same_bits(cell):
    m = kws_like(cell=cell)
    X = randn32((3, 17, 5))
    ref = m.forward(X.astype(np.float64))
    eng = rc.compile(m)
    assert eng.describe().startswith("conv_time > pointwise > conv_time > pointwise > ")
    Y = eng.run(X)
    assert np.abs(ref).max() > 0.1   # not a flat model
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-5)
    st = eng.stream(batch=3)
    steps = np.stack([st.step(X[:, t]) for t in range(17)], 1)
    np.testing.assert_array_equal(steps, Y)   # the same products, one column each


def test_the_window_is_part_of_the_state_save_restore_reset_and_chunked_runs():
    eng = rc.compile(kws_like(seed=4))
    X = randn32((2, 12, 5), seed=1)
    Y = eng.run(X)
    st = eng.stream(batch=2)
    got = [st.step(X[:, t]) for t in range(5)]
    saved = st.state
    assert set(saved) == {"recurrent", "windows"}
    assert [w.shape for w in saved["windows"]] == [(2, 4, 5), (2, 1, 8)]   # P = d (k - 1) steps
    np.testing.assert_array_equal(saved["windows"][0][:, -1], X[:, 4])   # the newest input last
    got += [st.step(X[:, t]) for t in range(5, 12)]
    np.testing.assert_array_equal(np.stack(got, 1), Y)
    st.state = saved   # back to after step 5, window included: the same outputs again
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(5, 12)], 1), Y[:, 5:])
    # the recurrent state alone: the windows restart from zeros, as after reset()
    st.state = saved["recurrent"]
    a = st.step(X[:, 5])
    st.reset()
    st.state = {"recurrent": saved["recurrent"], "windows": [np.zeros_like(w) for w in saved["windows"]]}
    np.testing.assert_array_equal(st.step(X[:, 5]), a)
    st.reset()
    np.testing.assert_array_equal(st.step(X[:, 0]), Y[:, 0])
    # Stream.run continues from the state: two chunks give the whole run
    s2 = eng.stream(batch=2)
    np.testing.assert_array_equal(np.concatenate([s2.run(X[:, :7]), s2.run(X[:, 7:])], 1), Y)
    # pickling a stream keeps its window
    import pickle

    s3 = eng.stream(batch=2)
    for t in range(6):
        s3.step(X[:, t])
    s4 = pickle.loads(pickle.dumps(s3))
    np.testing.assert_array_equal(s4.step(X[:, 6]), Y[:, 6])


def test_state_errors_name_what_is_wrong():
    eng = rc.compile(kws_like())
    st = eng.stream(batch=2)
    s = st.state
    with pytest.raises(ValueError,
                       match=r"state\['windows'\]\[1\]: expected shape \(2, 1, 8\), got \(2, 2, 8\)"):
        st.state = {"recurrent": s["recurrent"], "windows": [s["windows"][0], np.zeros((2, 2, 8))]}
    with pytest.raises(ValueError, match="expected the keys 'recurrent' and 'windows'"):
        st.state = {"h": s["recurrent"]}
    bad = [w.copy() for w in s["windows"]]
    bad[0][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        st.state = {"recurrent": s["recurrent"], "windows": bad}
    plain = rc.compile(nn.GRU(3, 4)).stream()
    with pytest.raises(ValueError, match="no Conv1d over time"):
        plain.state = {"recurrent": np.zeros((1, 1, 4)), "windows": []}


def test_lengths_match_the_numpy_model_and_leave_each_sequences_last_inputs_in_the_window():
    m = kws_like(seed=2)
    eng = rc.compile(m)
    X = randn32((3, 10, 5), seed=3)
    L = np.array([10, 6, 1])
    Y, state = eng.run(X, lengths=L, return_state=True)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64), lengths=L), rtol=0, atol=1e-5)
    assert not Y[1, 6:].any() and not Y[2, 1:].any()
    w0 = state["windows"][0]   # P = 4: the last 4 valid inputs, zeros before a short sequence's start
    np.testing.assert_array_equal(w0[1], X[1, 2:6])
    np.testing.assert_array_equal(w0[2, :3], 0)
    np.testing.assert_array_equal(w0[2, 3], X[2, 0])


def test_kernel_one_and_a_conv_time_right_before_the_recurrent_layer():
    m = nn.Sequential(nn.Conv1d(4, 3, 1, padding="causal", seed=0), nn.GRU(3, 5, seed=1))
    eng = rc.compile(m)
    X = randn32((2, 6, 4))
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)
    assert eng.stream(2).state["windows"][0].shape == (2, 0, 4)


def test_matches_torch_conv1d_and_gru():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(5, 8, 3, dilation=2, groups=1)
    gru = torch.nn.GRU(8, 12, batch_first=True)
    head = torch.nn.Linear(12, 2)
    X = randn32((2, 15, 5), seed=5)
    with torch.no_grad():
        xt = torch.nn.functional.pad(torch.as_tensor(X).transpose(1, 2), (4, 0))   # causal: d (k - 1) left
        want = head(gru(conv(xt).transpose(1, 2))[0]).numpy()
    m = nn.Sequential(nn.Conv1d(5, 8, 3, padding="causal", dilation=2), nn.GRU(8, 12), nn.Linear(12, 2))
    m[0].load_state_dict(conv.state_dict())
    m[1].load_state_dict(gru.state_dict())
    m[2].load_state_dict(head.state_dict())
    eng = rc.compile(m)
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    st = eng.stream(2)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(15)], 1), want, rtol=0, atol=1e-5)


def test_keras_causal_conv1d_and_gru_import_compile_and_match_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    km = keras.Sequential([
        keras.Input((None, 4)),
        keras.layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu"),
        keras.layers.Conv1D(6, 2, padding="causal", groups=2),
        keras.layers.GRU(10, return_sequences=True),
        keras.layers.Dense(3),
    ])
    X = randn32((2, 13, 4), seed=6)
    want = np.asarray(km.predict(X, verbose=0))
    path = tmp_path / "kws.keras"
    km.save(path)
    eng = rc.compile(rc.io.from_keras(str(path)))
    assert eng.describe().startswith("conv_time > pointwise > conv_time > gru(10)")
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=2e-5)
    st = eng.stream(2)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(13)], 1), want, rtol=0, atol=2e-5)


def test_rnc_round_trip_and_loaded_engine():
    eng = rc.compile(kws_like(seed=7))
    d = read_rnc(eng.data)
    assert [r["kind"] for r in d["front"]] == ["conv1d", "relu", "conv1d", "tanh"]
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data
    X = randn32((1, 5, 5))
    np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


def test_forms_the_c_core_does_not_run_are_refused_naming_the_field():
    # padding beyond the window (the output would need no input at all) and reflected padding
    # (tests/test_engine_lookahead.py runs the zero paddings up to dilation*(kernel_size-1))
    with pytest.raises(ValueError, match=r"front\[0\] \(conv1d\): padding \(1, 1\); the C core runs Conv1d "
                                         r"over time with each side's zero padding in "
                                         r"0..dilation\*\(kernel_size-1\) = 0"):
        rc.compile(nn.Sequential(nn.Conv1d(3, 3, 1, padding=1), nn.GRU(3, 4)))
    with pytest.raises(ValueError, match=r"front\[0\] \(conv1d\): padding_mode 'reflect'"):
        rc.compile(nn.Sequential(nn.Conv1d(3, 3, 3, padding=1, padding_mode="reflect"), nn.GRU(3, 4)))
    with pytest.raises(ValueError, match=r"front\[0\] \(conv1d\): .*f32 and q8 files only"):
        rc.compile(kws_like(), precision="q4")


def _file(**edit) -> bytes:
    """kws_like's file with record 0 (conv_time) edited, the checksum fixed."""
    return edit_first_record(rc.compile(kws_like()).data, "rec_conv_time", **edit)


@pytest.mark.parametrize("edit, status, want", [
    (dict(in_channels=4), "CORRUPT", "record 0 (conv_time): in_channels: 4, expected 5"),
    (dict(out_channels=0), "CORRUPT", "record 0 (conv_time): out_channels: 0, expected 1..1048576"),
    (dict(kernel_size=0), "CORRUPT", "record 0 (conv_time): kernel_size: 0, expected 1..65536"),
    (dict(stride=0), "CORRUPT", "record 0 (conv_time): stride: 0, expected 1..65536"),
    (dict(stride=65537), "CORRUPT", "record 0 (conv_time): stride: 65537, expected 1..65536"),
    (dict(dilation=0), "CORRUPT", "record 0 (conv_time): dilation: 0, expected 1..65536"),
    (dict(groups=2), "CORRUPT", "record 0 (conv_time): groups: 2 does not divide in_channels 5 and "
                                "out_channels 8"),
    (dict(kernel_size=65536, dilation=65536), "UNSUPPORTED",
     "record 0 (conv_time): kernel_size: window of 4294901760 steps x 5 channels, the C core keeps at most "
     "1048576 floats per stream"),
    # 16 rows (round16(8)) x 5 channels x k taps x 4 bytes: 960 stored, 1280 for k = 4
    (dict(kernel_size=4), "CORRUPT", "record 0 (conv_time): weight: tensor of 960 bytes, expected 1280"),
    # a q8 file's conv_time is 56 bytes (the fconvq8 tail with its weight scales)
    (dict(precision=1), "CORRUPT", "record 0 (conv_time): size: 48, expected 56"),
    (dict(precision=2), "UNSUPPORTED", "record 0 (conv_time): kind: kind 10 (conv_time) in a q4 file"),
])
def test_corrupted_conv_time_records_are_refused_alike(edit, status, want):
    data = _file(**edit)
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    assert e.value.status == status
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def test_a_conv_time_after_the_recurrent_layer_is_refused_alike():
    spec = to_rnc_spec(rc.spec.spec_from_model(nn.Sequential(nn.GRU(3, 4), nn.ReLU())), "f32")
    spec["post"] = [{"kind": "conv1d", "in_channels": 4, "out_channels": 4, "kernel_size": 1,
                     "tensors": {"weight": np.ones((4, 4, 1), np.float32)}}]
    with pytest.raises(ValueError, match=r"post\[0\]: only records that map each step alone \(frame_conv1d, "
                                         r"activations, layer_norm, scale_shift, mul_halves, residual\) may "
                                         r"follow a recurrent layer, got 'conv1d'"):
        write_rnc(spec)


def test_export_c_of_a_conv_time_model_runs_on_this_host(tmp_path):
    eng = rc.compile(kws_like(seed=9, cell=nn.LSTM))
    X = randn32((13, 5), seed=11)
    got = exported_outputs(tmp_path, eng.data, X, "kws")
    want = kws_like(seed=9, cell=nn.LSTM).forward(X[None].astype(np.float64))[0]   # the NumPy model
    for mode, y in got.items():
        np.testing.assert_allclose(y, want, rtol=0, atol=1e-5, err_msg=mode)


def test_torch_fx_folds_a_left_zero_padding_into_a_causal_conv1d_and_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    class Kws(torch.nn.Module):
        def __init__(self, functional_pad: bool) -> None:
            super().__init__()
            self.functional_pad = functional_pad
            self.pad = torch.nn.ConstantPad1d((4, 0), 0.0)
            self.conv = torch.nn.Conv1d(5, 8, 3, dilation=2)
            self.conv2 = torch.nn.Conv1d(8, 6, 2, groups=2)
            self.gru = torch.nn.GRU(6, 12, batch_first=True)
            self.head = torch.nn.Linear(12, 2)

        def forward(self, x):
            x = x.transpose(1, 2)
            y = F.pad(x, (4, 0)) if self.functional_pad else self.pad(x)
            y = torch.relu(self.conv(y))
            y = self.conv2(F.pad(y, (1, 0))).transpose(1, 2)
            return self.head(self.gru(y)[0])

    torch.manual_seed(3)
    X = randn32((2, 11, 5), seed=8)
    for functional_pad in (False, True):
        tm = Kws(functional_pad).eval()
        with torch.no_grad():
            want = tm(torch.as_tensor(X)).numpy()
        m = rc.io.from_torch(tm)
        assert (m[0].padding, m[2].padding) == ("causal", "causal")
        eng = rc.compile(m)
        assert eng.describe() == "conv_time > pointwise > conv_time > gru(12) > linear(12->2)"
        np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
        st = eng.stream(2)
        steps = np.stack([st.step(X[:, t]) for t in range(11)], 1)
        np.testing.assert_allclose(steps, want, rtol=0, atol=1e-5)

    class PadThenRelu(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(5, 5, 2)
            self.gru = torch.nn.GRU(5, 4, batch_first=True)

        def forward(self, x):
            y = torch.relu(F.pad(x.transpose(1, 2), (1, 0)))
            return self.gru(self.conv(y).transpose(1, 2))[0]

    with pytest.raises(ValueError, match="folds ConstantPad1d / F.pad over time into the Conv1d right after"):
        rc.io.from_torch(PadThenRelu())


@pytest.mark.parametrize("isa", rc.isa()["available"])
def test_every_isa_path_steps_with_the_bits_of_its_run(isa):
    m = kws_like(seed=5)
    eng = rc.compile(m)
    eng.set_isa(isa)
    X = randn32((2, 9, 5), seed=9)
    Y = eng.run(X)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)
    st = eng.stream(2)
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(9)], 1), Y)
