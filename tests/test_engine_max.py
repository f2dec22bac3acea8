"""Max pooling over time in the C engine (``rc.nn.MaskedMax``: the last_step record with the max
flag 0x8, docs/rnc-format.md): ``run`` pools the maximum over each sequence's valid steps, feature
by feature, ``step`` the maximum over the stream's steps since its reset.

f32 against PyTorch (``nn.GRU`` -> ``masked_fill(~mask, -inf).max(1).values`` -> ``nn.Linear``, the
weights copied from the rc model) and the NumPy model; the pooling alone bit for bit against
``MaskedMax.forward`` of the engine's own per-step outputs (a maximum is exact); q8 against the
NumPy q8 spec bit for bit on every ISA path of this CPU; the stream against the run on the first
t + 1 steps (bit for bit), its state saved and restored; both loaders' refusals; ``export-c``
built and run on this host.
"""

from __future__ import annotations

import os
import pathlib
import re
import struct
import sys

import numpy as np
import pytest
from _helpers import fix_crc, randn32, record_at
from export_c_run import exported_outputs
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

nn = rc.nn
ISAS = rc.isa()["available"]


def max_model(cell=nn.GRU, seed=0, mlp=False, post=False):
    """cell(6, 8) [Linear(8, 8) ReLU per step] MaskedMax [Linear(8, 8) ReLU] Linear(8, 3)."""
    mods = [cell(6, 8, seed=seed)]
    mods += [nn.Linear(8, 8, seed=seed + 1), nn.ReLU()] if post else []
    mods += [nn.MaskedMax()]
    mods += [nn.Linear(8, 8, seed=seed + 2), nn.ReLU()] if mlp else []
    return nn.Sequential(*mods, nn.Linear(8, 3, seed=seed + 3))


def _torch_twin(model):
    """The PyTorch twin of ``max_model(cell)`` without per-step records or MLP: the same weights
    (the rc model's ``state_dict``), the maximum over each sequence's valid steps written as PyTorch
    users write it."""
    import torch

    cell, fc = model[0], model[-1]
    rnn = getattr(torch.nn, type(cell).__name__)(cell.input_size, cell.hidden_size, batch_first=True,
                                                 bidirectional=cell.bidirectional)
    rnn.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in cell.state_dict().items()})
    lin = torch.nn.Linear(fc.in_features, fc.out_features)
    lin.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in fc.state_dict().items()})

    def run(X, lengths):
        with torch.no_grad():
            x = torch.as_tensor(X)
            y = rnn(x)[0]   # a sequence's valid steps do not see its padding (unidirectional)
            mask = torch.arange(x.shape[1])[None, :] < torch.as_tensor(lengths)[:, None]
            return lin(y.masked_fill(~mask[..., None], float("-inf")).max(1).values).numpy()

    return run


# -- f32: independent references ------------------------------------------------------------------
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM, nn.RNN])
def test_f32_matches_a_pytorch_twin_with_the_weights_copied(cell):
    m = max_model(cell, seed=1)
    e = rc.compile(m)
    name = {"GRU": "gru", "LSTM": "lstm", "RNN": "rnn_tanh"}[cell.__name__]
    assert e.describe() == f"{name}(8) > masked_max > linear(8->3)"
    assert e._model.last_step_max and not e._model.last_step_mean
    X = randn32((4, 9, 6), seed=2)
    lengths = np.array([9, 4, 1, 7])
    want = _torch_twin(m)(X, lengths)
    assert np.abs(want).max() > 0.05
    assert np.abs(want - _torch_twin(m)(X, np.full(4, 9))).max() > 1e-3   # the lengths matter
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(e.run(X), _torch_twin(m)(X, np.full(4, 9)), rtol=0, atol=1e-5)
    mask = np.arange(9)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(e.run(X, mask=mask), e.run(X, lengths))


def test_bidirectional_max_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(17)
    lstm, fc = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True), torch.nn.Linear(10, 2)
    X = randn32((3, 7, 6), seed=18)
    with torch.no_grad():
        want = fc(lstm(torch.as_tensor(X))[0].amax(1)).numpy()
    m = nn.Sequential(nn.LSTM(6, 5, bidirectional=True), nn.MaskedMax(), nn.Linear(10, 2))
    m[0].load_state_dict(lstm.state_dict())
    m[2].load_state_dict(fc.state_dict())
    np.testing.assert_allclose(rc.compile(m).run(X), want, rtol=0, atol=1e-5)
    e = rc.compile(m, precision="q8")
    lengths = np.array([7, 2, 5])
    ref = _q8_reference(e, X, lengths)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)


@pytest.mark.parametrize("batch", [2, 5])   # 5: rnc_run's per-step projection (>= 4 rows)
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_f32_matches_the_numpy_model_with_per_step_records_and_an_mlp_head(cell, batch):
    m = max_model(cell, seed=3, mlp=True, post=True)
    eng = rc.compile(m)
    assert "frame_conv > pointwise > masked_max > frame_conv > pointwise > linear" in eng.describe()
    X = randn32((batch, 11, 6), seed=4)
    lengths = np.arange(batch) * 3 % 11 + 1
    want = m.forward(X.astype(np.float64), lengths=lengths)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X, lengths), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)


def _pool_alone(cell, F, seed, post):
    """(the engine of cell [Linear ReLU] MaskedMax, that of the same stack without the pooling)."""
    mods = [cell(3, F, seed=seed)] + ([nn.Linear(F, F, seed=seed + 1), nn.ReLU()] if post else [])
    return rc.compile(nn.Sequential(*mods, nn.MaskedMax())), rc.compile(nn.Sequential(*mods))


def _check_pool_bits(pooled, per_step, X, lengths):
    """The pooled engine's output is MaskedMax.forward (float32) of the per-step engine's, bit for
    bit; a sequence without a step pools zeros."""
    got = pooled.run(X, lengths)
    y = per_step.run(X, lengths)
    live = lengths > 0
    if live.any():
        want = nn.MaskedMax().forward(y[live], lengths=lengths[live])
        assert want.dtype == np.float32
        np.testing.assert_array_equal(got[live], want)
    np.testing.assert_array_equal(got[~live], 0)


@pytest.mark.parametrize("post", [False, True])
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM, nn.RNN])
def test_the_pooling_is_the_numpy_maskedmax_of_the_per_step_outputs_bit_for_bit(cell, post):
    pooled, per_step = _pool_alone(cell, 7, 5, post)
    X = randn32((6, 10, 3), seed=6, scale=2.0)
    _check_pool_bits(pooled, per_step, X, np.array([10, 0, 1, 4, 9, 2]))
    _check_pool_bits(pooled, per_step, X, np.full(6, 10))


@settings(max_examples=int(os.environ.get("RNC_MAXPOOL_EXAMPLES", "25")), deadline=None, derandomize=True)
@given(B=st.integers(1, 5), T=st.integers(1, 8), F=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       cell=st.sampled_from([nn.GRU, nn.LSTM]), post=st.booleans())
def test_random_lengths_pool_bit_for_bit(B, T, F, seed, cell, post):
    """Random shapes and lengths (0 included): the pooling equals MaskedMax.forward of the per-step
    outputs exactly, f32 (RNC_MAXPOOL_EXAMPLES sets the examples for a long local run; 25 in CI)."""
    pooled, per_step = _pool_alone(cell, F, seed % 1000, post)
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((B, T, 3)) * 2).astype(np.float32)
    _check_pool_bits(pooled, per_step, X, rng.integers(0, T + 1, B))


# -- q8: the NumPy q8 spec, bit for bit on every ISA ---------------------------------------------
def _q8_reference(e, X, lengths):
    qm = qmodel_from_rnc(read_rnc(e.data))
    assert qm.last_step_max and not qm.last_step_mean
    return gen_vectors.q8_reference_forward(qm, X, lengths)[0]


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
@pytest.mark.parametrize("calibrated", [False, True])
def test_q8_equals_the_numpy_q8_spec_on_every_isa(cell, calibrated):
    m = max_model(cell, seed=7, mlp=True, post=cell is nn.GRU)
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
    m = max_model(nn.GRU, seed=9, mlp=True, post=True)
    e = rc.compile(m, precision=precision)
    X = randn32((3, 8, 6), seed=10)
    for isa in ISAS if precision == "q8" else ISAS[-1:]:
        e.set_isa(isa)
        st_ = e.stream(3)
        got = [st_.step(X[:, t].copy()) for t in range(8)]
        for t in range(8):
            np.testing.assert_array_equal(got[t], e.run(X[:, :t + 1]), err_msg=f"{isa} t={t}")
        saved = st_.state
        assert set(saved) == {"recurrent", "max_value", "max_seen"}
        assert saved["max_seen"].dtype == np.bool_ and saved["max_seen"].all()
        st2 = e.stream(3)
        st2.state = saved
        more = randn32((3, 2, 6), seed=11, scale=3.0)
        whole = e.run(np.concatenate([X, more], 1))
        np.testing.assert_array_equal(st2.step(more[:, 0].copy()), e.run(np.concatenate([X, more[:, :1]], 1)))
        np.testing.assert_array_equal(st2.step(more[:, 1].copy()), whole)
        # run continues a stream as step does: in chunks, the bits of one run
        st3 = e.stream(3)
        st3.run(X[:, :5])
        np.testing.assert_array_equal(st3.run(np.concatenate([X[:, 5:], more], 1)), whole, err_msg=isa)
        # a length of 0 keeps a row's maxima: it pools those of the steps taken
        st4 = e.stream(3)
        st4.run(X[:, :5])
        np.testing.assert_array_equal(st4.run(X[:, 5:], np.array([3, 0, 3])),
                                      np.stack([e.run(X)[0], e.run(X[:, :5])[1], e.run(X)[2]]))
        # reset (and assigning the recurrent state alone) starts the max afresh
        st_.reset()
        np.testing.assert_array_equal(st_.step(X[:, 0].copy()), got[0])
        st_.state = saved["recurrent"]
        assert not st_.state["max_seen"].any() and not st_.state["max_value"].any()


def test_a_stream_without_a_step_pools_zeros():
    m = max_model(nn.GRU, seed=12)
    e = rc.compile(m)
    st_ = e.stream(2)
    zero_head = e.run(randn32((2, 3, 6)), np.array([0, 0]))
    np.testing.assert_array_equal(st_.run(randn32((2, 3, 6)), np.array([0, 0])), zero_head)
    bias = np.broadcast_to(m[-1].state_dict()["bias"], (2, 3))   # the head of a zero vector
    np.testing.assert_allclose(zero_head, bias, rtol=0, atol=1e-7)


def test_state_assignment_checks_the_max_part():
    e = rc.compile(max_model(nn.GRU, seed=12))
    st_ = e.stream(2)
    st_.step(randn32((2, 6), seed=13))
    s = st_.state
    with pytest.raises(ValueError, match=r"expected the keys 'recurrent' and 'max_value' and 'max_seen'"):
        st_.state = {"recurrent": s["recurrent"], "max_value": s["max_value"]}
    with pytest.raises(ValueError, match=r"state\['max_value'\]: expected shape \(2, 8\), got \(2, 7\)"):
        st_.state = {**s, "max_value": s["max_value"][:, :7]}
    with pytest.raises(ValueError, match=r"state\['max_value'\]: contains NaN or Inf"):
        st_.state = {**s, "max_value": np.full((2, 8), -np.inf, np.float32)}
    with pytest.raises(TypeError, match=r"state\['max_seen'\]: expected a bool array"):
        st_.state = {**s, "max_seen": np.ones(2)}
    with pytest.raises(ValueError, match=r"state\['max_seen'\]: expected values in \[0, 1\]"):
        st_.state = {**s, "max_seen": np.array([1, 2])}
    with pytest.raises(ValueError, match=r"state\['max_seen'\]: expected shape \(2,\)"):
        st_.state = {**s, "max_seen": np.array([True])}
    # the C core checks the raw state too: a seen flag other than 0 or 1 (the binding refuses a
    # non-finite window itself)
    for bad in (2.0, 0.5, -1.0):
        raw = st_._s.raw_window().copy()
        raw[8] = bad
        st_._s.set_raw_window(raw)
        with pytest.raises(ValueError, match=r"step: .*\(rnc_status 13\)"):   # RNC_E_STATE
            st_.step(randn32((2, 6), seed=14))
        with pytest.raises(ValueError, match=r"run: .*\(rnc_status 13\)"):
            st_.run(randn32((2, 3, 6), seed=14))
    st_.state = {**s, "max_seen": np.array([1, 0])}   # integers 0/1 are taken too
    assert st_.state["max_seen"].tolist() == [True, False]
    st_.state = s
    np.testing.assert_array_equal(st_.state["max_value"], s["max_value"])
    np.testing.assert_array_equal(st_.step(randn32((2, 6), seed=14)),
                                  e.run(np.stack([randn32((2, 6), seed=13), randn32((2, 6), seed=14)], 1)))


def test_a_max_model_with_a_conv1d_front_end_keeps_windows_and_the_max():
    m = nn.Sequential(nn.Conv1d(6, 5, 3, padding=(2, 0), seed=1), nn.GRU(5, 8, seed=2), nn.MaskedMax(),
                      nn.Linear(8, 2, seed=3))
    e = rc.compile(m)
    X = randn32((2, 9, 6), seed=15)
    np.testing.assert_allclose(e.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)
    st_ = e.stream(2)
    got = [st_.step(X[:, t].copy()) for t in range(9)]
    np.testing.assert_array_equal(got[-1], e.run(X))
    np.testing.assert_array_equal(got[4], e.run(X[:, :5]))
    s = st_.state
    assert set(s) == {"recurrent", "windows", "max_value", "max_seen"}
    st_.reset()
    st_.state = s
    np.testing.assert_array_equal(st_.step(X[:, 0].copy()), e.run(np.concatenate([X, X[:, :1]], 1)))


def test_a_model_padded_on_the_right_runs_whole_sequences_and_flush_ends_the_max():
    m = nn.Sequential(nn.Conv1d(6, 5, 3, padding=1, seed=4), nn.GRU(5, 8, seed=5), nn.MaskedMax(),
                      nn.Linear(8, 2, seed=6))
    e = rc.compile(m)
    X, lengths = randn32((3, 8, 6), seed=21), np.array([8, 5, 2])
    want = m.forward(X.astype(np.float64), lengths=lengths)
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-6)
    st_ = e.stream(3)
    steps = [y for y in (st_.step(X[:, t].copy()) for t in range(8)) if y is not None]
    tail = st_.flush()   # the last output step (the right pad): the max of all output steps
    np.testing.assert_array_equal(tail[:, -1], e.run(X))
    assert len(steps) == 7 and not st_.state["max_seen"].any()   # flush ended the sequence


# -- the file -------------------------------------------------------------------------------------
def _last_step_flags_at(data: bytes) -> int:
    return record_at(data, "last_step") + 8


def _both_refuse(data: bytes, at: int, flags: int, want: str, status: str = "CORRUPT") -> None:
    b = bytearray(data)
    struct.pack_into("<I", b, at, flags)
    bad = fix_crc(b)
    with pytest.raises(RncFormatError, match=re.escape(want)) as py:
        check_rnc(bad)
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bad)
    assert py.value.status == status


def test_the_file_round_trips_and_both_loaders_refuse_the_same_bad_flags():
    e = rc.compile(max_model(nn.GRU, seed=16), precision="q8")
    d = read_rnc(e.data)
    assert d["last_step"] and d["last_step_max"] and not d["last_step_mean"]
    assert not d["last_step_bidirectional"] and d["last_step_attention"] is None
    at = _last_step_flags_at(e.data)
    assert struct.unpack_from("<I", e.data, at)[0] == 8
    np.testing.assert_array_equal(write_rnc(d), e.data)
    # a LastStep or MaskedMean model's file does not have the bit
    last = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.LastStep(), nn.Linear(8, 3, seed=3)))
    assert struct.unpack_from("<I", last.data, _last_step_flags_at(last.data))[0] == 0
    assert not read_rnc(last.data)["last_step_max"] and not last._model.last_step_max
    mean = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.MaskedMean(), nn.Linear(8, 3, seed=3)))
    assert struct.unpack_from("<I", mean.data, _last_step_flags_at(mean.data))[0] == 2
    for flags, want in ((9, "flags: 0x9: max pooling (0x8) with the attention flag (0x4), or with the "
                            "bidirectional flag (0x1) without the last-step part (0x10)"),
                        (0xb, "flags: 0xb: mean pooling (0x2) with the bidirectional flag (0x1)"),
                        (0x28, "flags: 0x28 has unknown bits (known: 0x1f)")):
        _both_refuse(e.data, at, flags, want)
    # with the attention flag the record is 48 bytes: an attention model's file with the max bit too
    attn = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.AttentionPool(8, 3, seed=1), nn.Linear(8, 3)))
    _both_refuse(attn.data, _last_step_flags_at(attn.data), 0xc, "flags: 0xc: max pooling (0x8) with the")
    with pytest.raises(ValueError, match=r"max pooling \(last_step_max\) is written in version 2 files only"):
        write_rnc(d, version=1)
    with pytest.raises(ValueError, match="last_step_last: the last step as a part"):
        write_rnc({**d, "last_step_last": True, "last_step_max": False})


def test_an_integer_file_with_the_max_flag_is_refused_by_both():
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    m = nn.Sequential(nn.GRU(3, 4, seed=0), nn.LastStep(), nn.Linear(4, 2, seed=1))
    cal = qi.IntCalibration([(-2.0, 2.0)], [(-0.9, 0.95)], [3.0], [4.0], "int8")
    data = write_int_rnc(qi.quantize_int_model(m, cal, "gemmlowp"))
    _both_refuse(data, _last_step_flags_at(data), 8,
                 "flags: 0x8: max pooling (0x8) in an integer file (integer models pool the last step)",
                 "UNSUPPORTED")
    with pytest.raises(ValueError, match=r"integer model: max pooling over time \(MaskedMax\)"):
        rc.compile(max_model(nn.GRU), precision="int8", calibration=randn32((2, 5, 6)))


def test_what_stays_refused():
    with pytest.raises(ValueError, match=r"module '2' \(MaskedMax\) is not supported"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.MaskedMax(), nn.MaskedMax(), nn.Linear(8, 2)))
    with pytest.raises(ValueError, match=r"module '2' \(MaskedMax\) is not supported"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.MaskedMean(), nn.MaskedMax(), nn.Linear(8, 2)))
    with pytest.raises(ValueError, match="stream: the model has a bidirectional layer"):
        rc.compile(nn.Sequential(nn.GRU(6, 4, bidirectional=True), nn.MaskedMax())).stream(1)


def test_cli_info_names_the_pooling(tmp_path):
    from rnncore.cli.info import describe, format_text

    path = tmp_path / "max.rnc"
    path.write_bytes(rc.compile(max_model(nn.GRU)).data)
    info = describe(str(path), [1], 4)
    assert info["last_step"] == "max"
    assert "last_step: the maximum over each sequence's valid steps (MaskedMax)" in format_text(info)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_steps_the_running_max_and_runs_the_pooled_one(tmp_path, precision):
    e = rc.compile(max_model(nn.GRU, seed=19, mlp=True), precision=precision)
    X = randn32((6, 6), seed=20)
    out = exported_outputs(tmp_path, e.data, X, "max")
    assert out["run"].shape == (1, 3) and out["step"].shape == (6, 3)
    want = np.concatenate([e.run(X[None, :t + 1]) for t in range(6)])
    np.testing.assert_allclose(out["step"], want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["run"], want[-1:], rtol=0, atol=1e-6)
