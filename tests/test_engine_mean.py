"""Mean pooling over time in the C engine (``rc.nn.MaskedMean``: the last_step record with the mean
flag, docs/rnc-format.md): ``run`` pools the mean over each sequence's valid steps, ``step`` the mean
of the stream's steps since its reset.

f32 against PyTorch (``nn.GRU`` -> ``y.mean(1)`` -> ``nn.Linear`` via ``from_torch``), Keras
(``Masking -> GRU -> GlobalAveragePooling1D -> Dense`` on padded inputs), onnxruntime (``ReduceMean``
over time via ``from_onnx``) and the NumPy model; q8 against the NumPy q8 spec bit for bit on every
ISA path of this CPU; the stream against the run on the first t + 1 steps (bit for bit), its state
saved and restored; both loaders' refusals; ``export-c`` built and run on this host.
"""

from __future__ import annotations

import pathlib
import re
import struct
import sys

import numpy as np
import pytest
from _helpers import fix_crc, onnx_export_matches_numpy, randn32, record_at
from export_c_run import exported_outputs

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

nn = rc.nn
ISAS = rc.isa()["available"]


def mean_model(cell=nn.GRU, seed=0, mlp=False, post=False):
    """cell(6, 8) [Linear(8, 8) ReLU per step] MaskedMean [Linear(8, 8) ReLU] Linear(8, 3)."""
    mods = [cell(6, 8, seed=seed)]
    mods += [nn.Linear(8, 8, seed=seed + 1), nn.ReLU()] if post else []
    mods += [nn.MaskedMean()]
    mods += [nn.Linear(8, 8, seed=seed + 2), nn.ReLU()] if mlp else []
    return nn.Sequential(*mods, nn.Linear(8, 3, seed=seed + 3))


# -- f32: independent references ------------------------------------------------------------------
def test_torch_gru_mean_linear_via_from_torch():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.fc = torch.nn.GRU(6, 8, batch_first=True), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.gru(x)[0].mean(1))

    torch.manual_seed(1)
    net = Net().eval()
    model = rc.io.from_torch(net)
    assert [type(m).__name__ for m in model] == ["GRU", "MaskedMean", "Linear"]
    eng = rc.compile(model)
    assert eng.describe() == "gru(8) > masked_mean > linear(8->3)"
    X = randn32((4, 9, 6), seed=2)
    lengths = np.array([9, 4, 1, 7])
    with torch.no_grad():
        want = net(torch.as_tensor(X)).numpy()
        # each sequence alone, cut at its length: the mean over its valid steps
        want_l = np.concatenate([net(torch.as_tensor(X[b:b + 1, :n])).numpy() for b, n in enumerate(lengths)])
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(eng.run(X, lengths), want_l, rtol=0, atol=1e-5)
    # and the NumPy model, within 1e-6
    np.testing.assert_allclose(eng.run(X, lengths), model.forward(X.astype(np.float64), lengths=lengths),
                               rtol=0, atol=1e-6)
    mask = np.arange(9)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(eng.run(X, mask=mask), eng.run(X, lengths))


@pytest.mark.parametrize("batch", [2, 5])   # 5: rnc_run's per-step projection (>= 4 rows)
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM, nn.RNN])
def test_f32_matches_the_numpy_model_with_per_step_records_and_an_mlp_head(cell, batch):
    m = mean_model(cell, seed=3, mlp=True, post=True)
    eng = rc.compile(m)
    assert "frame_conv > pointwise > masked_mean > frame_conv > pointwise > linear" in eng.describe()
    X = randn32((batch, 11, 6), seed=4)
    lengths = np.arange(batch) * 3 % 11 + 1
    want = m.forward(X.astype(np.float64), lengths=lengths)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X, lengths), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)


def test_keras_masking_gru_global_average_pooling_dense(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(4)
    km = keras.Sequential([keras.Input((None, 6)), keras.layers.Masking(0.0),
                           keras.layers.GRU(8, return_sequences=True),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    X = randn32((3, 8, 6), seed=5)
    lengths = np.array([8, 5, 2])
    X[np.arange(8)[None, :] >= lengths[:, None]] = 0.0   # padded with the mask value
    want = np.asarray(km.predict(X, verbose=0))
    km.save(tmp_path / "gap.keras")
    model = rc.io.from_keras(str(tmp_path / "gap.keras"))
    eng = rc.compile(model)
    assert "masked_mean" in eng.describe() and np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X, lengths), want, rtol=0, atol=1e-5)


def test_onnx_reduce_mean_over_time_against_onnxruntime():
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import io

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = torch.nn.LSTM(4, 6, batch_first=True), torch.nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.lstm(x)[0].mean(1))

    torch.manual_seed(6)
    net = Net().eval()
    X = randn32((3, 7, 4), seed=6)
    f = io.BytesIO()
    torch.onnx.export(net, (torch.as_tensor(X),), f, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "t"}})
    data = f.getvalue()
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
    import onnx

    model = rc.io.from_onnx(onnx.load_from_string(data))
    assert [type(m).__name__ for m in model] == ["LSTM", "MaskedMean", "Linear"]
    np.testing.assert_allclose(rc.compile(model).run(X), want, rtol=0, atol=1e-5)


def test_onnx_mean_over_padded_outputs_is_not_the_masked_mean():
    """``pad_packed_sequence`` then ``.mean(1)`` averages the padding zeros too (the sum over T
    steps / T): with the lengths as ONNX ``sequence_lens`` that is not rnncore's masked mean (the
    sum over the valid steps / length). The chain import refuses it naming both; the whole-graph
    import runs it as onnxruntime does."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import io
    import warnings

    from torch.nn.utils import rnn as rnn_utils

    from rnncore.io.onnx_import import onnx_run

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.fc = torch.nn.GRU(4, 5, batch_first=True), torch.nn.Linear(5, 2)

        def forward(self, x, lens):
            y, _ = self.gru(rnn_utils.pack_padded_sequence(x, lens, batch_first=True))
            y, _ = rnn_utils.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
            return self.fc(y.mean(1))

    torch.manual_seed(0)
    net = Net().eval()
    X, lens = randn32((3, 6, 4), seed=2), np.array([6, 4, 2], np.int64)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.as_tensor(X), torch.as_tensor(lens)), f, dynamo=False, opset_version=17,
                          input_names=["x", "lens"], output_names=["y"],
                          dynamic_axes={"x": {0: "b", 1: "t"}, "lens": {0: "b"}})
    data = f.getvalue()
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": X, "lens": lens})[0]
    with torch.no_grad():
        np.testing.assert_allclose(want, net(torch.as_tensor(X), torch.as_tensor(lens)).numpy(), atol=1e-6)
    masked = [X[b, :n] for b, n in enumerate(lens)]        # what the masked mean would give differs
    assert not np.allclose(want[1:], [net.fc(net.gru(torch.as_tensor(m)[None])[0].mean(1)).detach().numpy()[0]
                                      for m in masked[1:]], atol=1e-3)
    with pytest.raises(ValueError, match=r"sequence_lens .*ReduceMean averages over time: ONNX divides "
                                         r"the sum of every step, the zeros past a sequence's length "
                                         r"included, by T"):
        rc.io.from_onnx(data, graph=False)
    g = rc.io.from_onnx(data)
    np.testing.assert_allclose(onnx_run(g, {"x": X, "lens": lens})["y"], want, rtol=0, atol=1e-5)



class _SumOverLengths:
    """``pack_padded_sequence -> rnn -> pad_packed_sequence -> out.sum(1) / <divisor> -> Linear``:
    ``divisor`` is how the mean over the valid steps is written (or a wrong divisor)."""

    @staticmethod
    def make(cell: str, divisor: str, bidirectional: bool = False):
        import torch
        from torch.nn.utils import rnn as rnn_utils

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = getattr(torch.nn, cell)(4, 5, batch_first=True, bidirectional=bidirectional)
                self.fc = torch.nn.Linear(10 if bidirectional else 5, 2)

            def forward(self, x, lens):
                packed = rnn_utils.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
                y, _ = self.rnn(packed)
                y, _ = rnn_utils.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
                total = y.sum(1)
                d = {"lens[:, None]": lambda: lens[:, None],
                     "lens.float().unsqueeze(-1)": lambda: lens.float().unsqueeze(-1),
                     "lens (not a column)": lambda: lens.float(),
                     "T": lambda: x.shape[1],
                     "lens + 1": lambda: (lens + 1)[:, None]}[divisor]()
                return self.fc(total / d)

        torch.manual_seed(3)
        return Net().eval()

    @staticmethod
    def export(net, X, lens) -> bytes:
        import io
        import warnings

        import torch

        f = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.as_tensor(X), torch.as_tensor(lens)), f, dynamo=False,
                              opset_version=17, input_names=["x", "lens"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 1: "t"}, "lens": {0: "b"}})
        return f.getvalue()


@pytest.mark.parametrize("cell,divisor,bidirectional", [("GRU", "lens[:, None]", False),
                                                        ("LSTM", "lens.float().unsqueeze(-1)", False),
                                                        ("GRU", "lens[:, None]", True)])
def test_onnx_sum_over_time_divided_by_the_lengths_is_the_masked_mean(cell, divisor, bidirectional):
    """``out.sum(1) / lengths[:, None]`` after nodes that read the lengths as ``sequence_lens``
    (zeros past each length) is the mean over each sequence's valid steps: it imports as
    ``MaskedMean`` and compiles; the engine, given the same lengths, equals onnxruntime and
    PyTorch."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from rnncore.io.onnx_import import onnx_run

    net = _SumOverLengths.make(cell, divisor, bidirectional)
    X, lens = randn32((4, 7, 4), seed=5), np.array([7, 3, 1, 5], np.int64)
    data = _SumOverLengths.export(net, X, lens)
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert "ReduceSum" in ops and "Div" in ops and "ReduceMean" not in ops
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model = rc.io.from_onnx(data, dtype="float32", graph=False)
    assert [type(m).__name__ for m in model][-2:] == ["MaskedMean", "Linear"]
    e, q = rc.compile(model), rc.compile(model, precision="q8")
    for n in (lens, np.array([2, 7, 6, 4], np.int64)):
        want = sess.run(None, {"x": X, "lens": n})[0]
        with torch.no_grad():
            np.testing.assert_allclose(net(torch.as_tensor(X), torch.as_tensor(n)).numpy(), want, atol=1e-6)
        assert np.abs(want - sess.run(None, {"x": X, "lens": np.full(4, 7, np.int64)})[0]).max() > 1e-2
        np.testing.assert_allclose(onnx_run(model, {"x": X, "lens": n})["y"], want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(e.run(X, n), want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(q.run(X, n), want, rtol=0, atol=0.05 * np.abs(want).max())


@pytest.mark.parametrize("divisor,why", [
    ("lens (not a column)", r"by the graph input 'lens' \(batch,\), not a column \(batch, 1\): expected the "
                            r"recurrent nodes' sequence_lens 'lens' as a column"),
    ("T", r"by the shape value \['T'\]: expected the recurrent nodes' sequence_lens 'lens'"),
    ("lens + 1", None),       # refused at its Add
])
def test_onnx_sum_over_time_divided_by_something_else_is_refused(divisor, why):
    """Only the lengths the nodes read, as a column, make the sum the masked mean: another divisor
    is refused by the chain import naming the node; the whole-graph import still runs it as
    onnxruntime does."""
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")

    from rnncore.io.onnx_import import onnx_run

    net = _SumOverLengths.make("GRU", divisor)       # 5 features: (5, 5) / (5,) broadcasts
    X, lens = randn32((5, 6, 4), seed=2), np.array([6, 4, 2, 5, 1], np.int64)
    data = _SumOverLengths.export(net, X, lens)
    with pytest.raises(ValueError, match=r"\(Div\): divides the sum over time from '/ReduceSum' " + why
                       if why else r"\(Add\): a second data input 'lens'"):
        rc.io.from_onnx(data, graph=False)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": X, "lens": lens})[0]
    g = rc.io.from_onnx(data)
    np.testing.assert_allclose(onnx_run(g, {"x": X, "lens": lens})["y"], want, rtol=0, atol=1e-5)


# -- q8: the NumPy q8 spec, bit for bit on every ISA ---------------------------------------------
def _q8_reference(e, X, lengths):
    qm = qmodel_from_rnc(read_rnc(e.data))
    assert qm.last_step_mean
    return gen_vectors.q8_reference_forward(qm, X, lengths)[0]


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
@pytest.mark.parametrize("calibrated", [False, True])
def test_q8_equals_the_numpy_q8_spec_on_every_isa(cell, calibrated):
    m = mean_model(cell, seed=7, mlp=True, post=cell is nn.GRU)
    X = randn32((5, 9, 6), seed=8, scale=2.0)
    lengths = np.array([9, 3, 0, 1, 6])   # 0: the head of a zero vector, as with LastStep
    e = rc.compile(m, precision="q8", calibration=(X, lengths) if calibrated else None)
    ref = _q8_reference(e, X, lengths)
    assert np.abs(ref).max() > 0.05
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)
        np.testing.assert_array_equal(e.run(X[:2], lengths[:2]), ref[:2], err_msg=isa)
    np.testing.assert_array_equal(ref[2], _q8_reference(e, np.zeros((1, 1, 6), np.float32), [0])[0])
    y32 = rc.compile(m).run(X, lengths)
    assert 0 < np.abs(ref - y32).max() < 0.1 * np.abs(y32).max()   # quantised: close, not equal
    np.testing.assert_array_equal(write_rnc(read_rnc(e.data)), e.data)


# -- streaming -----------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_step_is_the_run_of_the_steps_so_far_and_the_state_saves_and_restores(precision):
    m = mean_model(nn.GRU, seed=9, mlp=True, post=True)
    e = rc.compile(m, precision=precision)
    X = randn32((3, 8, 6), seed=10)
    for isa in ISAS if precision == "q8" else ISAS[-1:]:
        e.set_isa(isa)
        st = e.stream(3)
        got = [st.step(X[:, t].copy()) for t in range(8)]
        for t in (0, 3, 7):
            np.testing.assert_array_equal(got[t], e.run(X[:, :t + 1]), err_msg=f"{isa} t={t}")
        saved = st.state
        assert set(saved) == {"recurrent", "mean_sum", "mean_steps"}
        np.testing.assert_array_equal(saved["mean_steps"], [8, 8, 8])
        st2 = e.stream(3)
        st2.state = saved
        more = randn32((3, 2, 6), seed=11)
        whole = e.run(np.concatenate([X, more], 1))
        np.testing.assert_array_equal(st2.step(more[:, 0].copy()), e.run(np.concatenate([X, more[:, :1]], 1)))
        np.testing.assert_array_equal(st2.step(more[:, 1].copy()), whole)
        # run continues a stream as step does: in chunks, the bits of one run
        st3 = e.stream(3)
        st3.run(X[:, :5])
        np.testing.assert_array_equal(st3.run(np.concatenate([X[:, 5:], more], 1)), whole, err_msg=isa)
        # reset (and assigning the recurrent state alone) starts the mean afresh
        st.reset()
        np.testing.assert_array_equal(st.step(X[:, 0].copy()), got[0])
        st.state = saved["recurrent"]
        assert not st.state["mean_steps"].any() and not st.state["mean_sum"].any()


def test_state_assignment_checks_the_mean_part():
    e = rc.compile(mean_model(nn.GRU, seed=12))
    st = e.stream(2)
    st.step(randn32((2, 6), seed=13))
    s = st.state
    with pytest.raises(ValueError, match=r"expected the keys 'recurrent' and 'mean_sum' and 'mean_steps'"):
        st.state = {"recurrent": s["recurrent"], "mean_sum": s["mean_sum"]}
    with pytest.raises(ValueError, match=r"state\['mean_sum'\]: expected shape \(2, 8\), got \(2, 7\)"):
        st.state = {**s, "mean_sum": s["mean_sum"][:, :7]}
    with pytest.raises(ValueError, match=r"state\['mean_sum'\]: contains NaN or Inf"):
        st.state = {**s, "mean_sum": np.full((2, 8), np.inf, np.float32)}
    with pytest.raises(TypeError, match=r"state\['mean_steps'\]: expected an integer array"):
        st.state = {**s, "mean_steps": np.ones(2)}
    with pytest.raises(ValueError, match=r"state\['mean_steps'\]: expected values in \[0, 16777216\]"):
        st.state = {**s, "mean_steps": np.array([1, (1 << 24) + 1])}
    # a count at 2^24 steps: one more would be inexact in the float count, the step is refused
    st.state = {**s, "mean_steps": np.array([1, 1 << 24])}
    with pytest.raises(ValueError, match=r"step: the mean pooling has counted 2\*\*24 steps"):
        st.step(randn32((2, 6), seed=14))
    st.state = {**s, "mean_steps": np.array([1, (1 << 24) - 2])}
    with pytest.raises(ValueError, match=r"run: the mean pooling's count of steps since the reset plus "
                                         r"the 3 steps of X would pass 2\*\*24"):
        st.run(randn32((2, 3, 6), seed=14))
    assert st.state["mean_steps"].tolist() == [1, (1 << 24) - 2]   # refused: nothing changed
    st.state = s
    np.testing.assert_array_equal(st.state["mean_sum"], s["mean_sum"])


def test_a_mean_model_with_a_conv1d_front_end_keeps_windows_and_the_mean():
    m = nn.Sequential(nn.Conv1d(6, 5, 3, padding=(2, 0), seed=1), nn.GRU(5, 8, seed=2), nn.MaskedMean(),
                      nn.Linear(8, 2, seed=3))
    e = rc.compile(m)
    X = randn32((2, 9, 6), seed=15)
    np.testing.assert_allclose(e.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)
    st = e.stream(2)
    got = [st.step(X[:, t].copy()) for t in range(9)]
    np.testing.assert_array_equal(got[-1], e.run(X))
    np.testing.assert_array_equal(got[4], e.run(X[:, :5]))
    s = st.state
    assert set(s) == {"recurrent", "windows", "mean_sum", "mean_steps"}
    st.reset()
    st.state = s
    np.testing.assert_array_equal(st.step(X[:, 0].copy()), e.run(np.concatenate([X, X[:, :1]], 1)))


# -- the file -------------------------------------------------------------------------------------
def _last_step_flags_at(data: bytes) -> int:
    return record_at(data, "last_step") + 8


def test_the_file_round_trips_and_both_loaders_refuse_the_same_bad_flags():
    e = rc.compile(mean_model(nn.GRU, seed=16), precision="q8")
    d = read_rnc(e.data)
    assert d["last_step"] and d["last_step_mean"] and not d["last_step_bidirectional"]
    at = _last_step_flags_at(e.data)
    assert struct.unpack_from("<I", e.data, at)[0] == 2
    # a LastStep model's file is unchanged (flags 0)
    last = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.LastStep(), nn.Linear(8, 3, seed=3)))
    assert struct.unpack_from("<I", last.data, _last_step_flags_at(last.data))[0] == 0
    assert not read_rnc(last.data)["last_step_mean"] and not last._model.last_step_mean
    for flags, want in ((3, "flags: 0x3: mean pooling (0x2) with the bidirectional flag (0x1)"),
                        (9, "flags: 0x9: max pooling (0x8) with the attention flag (0x4), or with the "
                            "bidirectional flag (0x1) without the last-step part (0x10)"),
                        (0x22, "flags: 0x22 has unknown bits (known: 0x1f)")):
        b = bytearray(e.data)
        struct.pack_into("<I", b, at, flags)
        bad = fix_crc(b)
        with pytest.raises(RncFormatError, match=re.escape(want)) as py:
            check_rnc(bad)
        with pytest.raises(ValueError, match=re.escape(want)):
            rc.load(bad)
        assert py.value.status == "CORRUPT"
    with pytest.raises(ValueError, match="version 2 files only"):
        write_rnc(d, version=1)


def test_an_integer_file_with_the_mean_flag_is_refused_by_both():
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    m = nn.Sequential(nn.GRU(3, 4, seed=0), nn.LastStep(), nn.Linear(4, 2, seed=1))
    cal = qi.IntCalibration([(-2.0, 2.0)], [(-0.9, 0.95)], [3.0], [4.0], "int8")
    data = write_int_rnc(qi.quantize_int_model(m, cal, "gemmlowp"))
    b = bytearray(data)
    struct.pack_into("<I", b, _last_step_flags_at(data), 2)
    bad = fix_crc(b)
    want = "flags: 0x2: mean pooling (0x2) in an integer file (integer models pool the last step)"
    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(bad)
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bad)
    with pytest.raises(ValueError, match=r"integer model: mean pooling over time \(MaskedMean\)"):
        rc.compile(mean_model(nn.GRU), precision="int8", calibration=randn32((2, 5, 6)))


def test_what_stays_refused():
    with pytest.raises(ValueError, match=r"module '2' \(MaskedMean\) is not supported"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.MaskedMean(), nn.MaskedMean(), nn.Linear(8, 2)))
    with pytest.raises(ValueError, match="stream: the model has a bidirectional layer"):
        rc.compile(nn.Sequential(nn.GRU(6, 4, bidirectional=True), nn.MaskedMean())).stream(1)

def test_mean_model_exports_to_onnx():
    """rc.io.to_onnx of the module and of its f32 .rnc file: onnxruntime gives the NumPy model's
    outputs (the pooling written with standard ops; tests/test_onnx_export_steps.py covers more)."""
    onnx_export_matches_numpy(mean_model(nn.GRU, post=True, mlp=True))


def test_bidirectional_mean_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(17)
    lstm, fc = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True), torch.nn.Linear(10, 2)
    X = randn32((3, 7, 6), seed=18)
    with torch.no_grad():
        want = fc(lstm(torch.as_tensor(X))[0].mean(1)).numpy()
    m = nn.Sequential(nn.LSTM(6, 5, bidirectional=True), nn.MaskedMean(), nn.Linear(10, 2))
    m[0].load_state_dict(lstm.state_dict())
    m[2].load_state_dict(fc.state_dict())
    np.testing.assert_allclose(rc.compile(m).run(X), want, rtol=0, atol=1e-5)
    e = rc.compile(m, precision="q8")
    lengths = np.array([7, 2, 5])
    ref = _q8_reference(e, X, lengths)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_steps_the_running_mean_and_runs_the_pooled_one(tmp_path, precision):
    e = rc.compile(mean_model(nn.GRU, seed=19, mlp=True), precision=precision)
    X = randn32((6, 6), seed=20)
    out = exported_outputs(tmp_path, e.data, X, "mean")
    assert out["run"].shape == (1, 3) and out["step"].shape == (6, 3)
    want = np.concatenate([e.run(X[None, :t + 1]) for t in range(6)])
    np.testing.assert_allclose(out["step"], want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["run"], want[-1:], rtol=0, atol=1e-6)


def test_a_model_padded_on_the_right_runs_whole_sequences_and_flush_ends_the_mean():
    m = nn.Sequential(nn.Conv1d(6, 5, 3, padding=1, seed=4), nn.GRU(5, 8, seed=5), nn.MaskedMean(),
                      nn.Linear(8, 2, seed=6))
    e = rc.compile(m)
    X, lengths = randn32((3, 8, 6), seed=21), np.array([8, 5, 2])
    want = m.forward(X.astype(np.float64), lengths=lengths)
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-6)
    st = e.stream(3)
    st.run(X[:, ::-1].copy())   # another sequence first: run starts each sequence's mean afresh
    s = st.state
    assert s["mean_steps"].tolist() == [8, 8, 8]
    s["recurrent"] = np.zeros_like(s["recurrent"])   # h carries over: zero it, keep the mean's sums
    st.state = s
    np.testing.assert_array_equal(st.run(X, lengths), e.run(X, lengths))
    st = e.stream(3)
    steps = [y for y in (st.step(X[:, t].copy()) for t in range(8)) if y is not None]
    tail = st.flush()   # the last output step (the right pad): the mean of all output steps
    np.testing.assert_array_equal(tail[:, -1], e.run(X))
    assert len(steps) == 7 and not st.state["mean_steps"].any()   # flush ended the sequence
