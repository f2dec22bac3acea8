"""Attention pooling over time in the C engine (``rc.nn.AttentionPool``: the last_step record with the
attention flag and its attnpool tail, docs/rnc-format.md): ``run`` pools attention over each sequence's
valid steps, ``step`` over the stream's steps since its reset (online softmax, docs/equations.md
"Attention pooling").

f32 against an independent PyTorch module (Linear, tanh, Linear(bias=False), masked softmax, weighted
sum, with the rnncore model's weights) and the NumPy model; q8 against the NumPy q8 spec bit for bit
on every ISA path of this CPU; the stream against the run on the first t + 1 steps (bit for bit), its
state saved and restored; both loaders' refusals; ``export-c`` built and run on this host.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from _helpers import c_equals_q8_reference, fix_crc, onnx_export_matches_numpy, randn32, record_at
from child_env import child_env
from export_c_run import exported_outputs

import rnncore as rc
from rnncore.io.rnc import RECORD_KINDS, RncFormatError, check_rnc, read_rnc, write_rnc

nn = rc.nn
ISAS = rc.isa()["available"]


def attn_model(cell=nn.GRU, seed=0, mlp=False, post=False, attention_size=5):
    """cell(6, 8) [Linear(8, 8) ReLU per step] AttentionPool(8, A) [Linear(8, 8) ReLU] Linear(8, 3)."""
    mods = [cell(6, 8, seed=seed)]
    mods += [nn.Linear(8, 8, seed=seed + 1), nn.ReLU()] if post else []
    mods += [nn.AttentionPool(8, attention_size, seed=seed + 2)]
    mods += [nn.Linear(8, 8, seed=seed + 3), nn.ReLU()] if mlp else []
    return nn.Sequential(*mods, nn.Linear(8, 3, seed=seed + 4))


def _torch_net(m):
    """An independent PyTorch module computing ``m`` (a GRU/LSTM -> AttentionPool -> Linear model)
    with its weights copied: Linear, tanh, Linear(bias=False), masked softmax, weighted sum."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            rnn = torch.nn.GRU if type(m[0]).__name__ == "GRU" else torch.nn.LSTM
            self.rnn = rnn(6, 8, batch_first=True)
            self.proj = torch.nn.Linear(8, m[1].proj.out_features)
            self.score = torch.nn.Linear(m[1].proj.out_features, 1, bias=False)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, x, lengths):
            y = self.rnn(x)[0]
            e = self.score(torch.tanh(self.proj(y)))[..., 0]
            valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
            a = torch.softmax(e.masked_fill(~valid, float("-inf")), dim=1)
            return self.fc((a[..., None] * y).sum(1))

    net = Net().double().eval()
    with torch.no_grad():
        net.rnn.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in m[0].state_dict().items()})
        for name in ("proj", "score"):
            getattr(net, name).load_state_dict(
                {k: torch.as_tensor(np.asarray(v)) for k, v in getattr(m[1], name).state_dict().items()})
        net.fc.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in m[2].state_dict().items()})
    return net


# -- f32: independent references ------------------------------------------------------------------
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_f32_matches_a_torch_attention_module_with_lengths(cell):
    torch = pytest.importorskip("torch")
    m = attn_model(cell, seed=1)
    net = _torch_net(m)
    eng = rc.compile(m)
    assert eng.describe() == f"{cell.__name__.lower()}(8) > attention > linear(8->3)"
    X = randn32((4, 9, 6), seed=2)
    lengths = np.array([9, 4, 1, 7])
    with torch.no_grad():
        want = net(torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(lengths)).numpy()
        want_all = net(torch.as_tensor(X, dtype=torch.float64), torch.full((4,), 9)).numpy()
    assert np.abs(want).max() > 0.05 and np.abs(want - want_all).max() > 1e-3   # the lengths matter
    np.testing.assert_allclose(eng.run(X, lengths), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(eng.run(X), want_all, rtol=0, atol=1e-5)
    mask = np.arange(9)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(eng.run(X, mask=mask), eng.run(X, lengths))


@pytest.mark.parametrize("batch", [2, 5])
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM, nn.RNN])
def test_f32_matches_the_numpy_model_with_per_step_records_and_an_mlp_head(cell, batch):
    m = attn_model(cell, seed=3, mlp=True, post=True, attention_size=7)
    eng = rc.compile(m)
    assert "frame_conv > pointwise > attention > frame_conv > pointwise > linear" in eng.describe()
    X = randn32((batch, 11, 6), seed=4, scale=2.0)
    lengths = np.arange(batch) * 3 % 11 + 1
    want = m.forward(X.astype(np.float64), lengths=lengths)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X, lengths), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)


def test_a_length_of_zero_pools_zeros():
    # the NumPy layer refuses a length of 0 (lengths are 1..T there); the engine pools zeros, then
    # the head, as MaskedMean and LastStep do
    m = attn_model(nn.GRU, seed=5)
    eng = rc.compile(m)
    X = randn32((3, 6, 6), seed=6)
    y = eng.run(X, np.array([6, 0, 2]))
    np.testing.assert_allclose(y[1], m[2].forward(np.zeros((1, 8)))[0], rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="lengths"):
        m.forward(X.astype(np.float64), lengths=np.array([6, 0, 2]))


# -- q8: the NumPy q8 spec, bit for bit on every ISA ---------------------------------------------
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
@pytest.mark.parametrize("calibrated", [False, True])
def test_q8_equals_the_numpy_q8_spec_on_every_isa(cell, calibrated):
    m = attn_model(cell, seed=7, mlp=True, post=cell is nn.GRU)
    X = randn32((5, 9, 6), seed=8, scale=2.0)
    lengths = np.array([9, 3, 0, 1, 6])
    e = rc.compile(m, precision="q8", calibration=(X, lengths) if calibrated else None)
    assert read_rnc(e.data)["last_step_attention"] is not None
    ref = c_equals_q8_reference(e, X, lengths)
    assert np.abs(ref).max() > 0.05
    c_equals_q8_reference(e, X[:2], lengths[:2])
    y32 = rc.compile(m).run(X, lengths)
    assert 0 < np.abs(ref - y32).max() < 0.1 * np.abs(y32).max()   # quantised: close, not equal
    np.testing.assert_array_equal(write_rnc(read_rnc(e.data)), e.data)


# -- streaming -----------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_step_is_the_run_of_the_steps_so_far_and_the_state_saves_and_restores(precision):
    m = attn_model(nn.GRU, seed=9, mlp=True, post=True)
    e = rc.compile(m, precision=precision)
    X = randn32((3, 8, 6), seed=10, scale=2.0)
    for isa in ISAS if precision == "q8" else ISAS[-1:]:
        e.set_isa(isa)
        st = e.stream(3)
        got = [st.step(X[:, t].copy()) for t in range(8)]
        for t in range(8):   # the online softmax of step is the one run computes: the same bits
            np.testing.assert_array_equal(got[t], e.run(X[:, :t + 1]), err_msg=f"{isa} t={t}")
        saved = st.state
        assert set(saved) == {"recurrent", "attn_acc", "attn_max", "attn_sum"}
        assert saved["attn_acc"].shape == (3, 8) and (saved["attn_sum"] >= 1).all()
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
        # reset (and assigning the recurrent state alone) starts the pooling afresh
        st.reset()
        np.testing.assert_array_equal(st.step(X[:, 0].copy()), got[0])
        st.state = saved["recurrent"]
        s = st.state
        assert not s["attn_sum"].any() and not s["attn_acc"].any()


def test_the_online_softmax_equals_the_two_pass_softmax_of_the_numpy_spec_in_float64():
    # the engine's online form against the plain softmax (max, exp, sum, divide) of the float64
    # NumPy layer on the pooled features the f32 engine itself computes: within float32 rounding
    m = attn_model(nn.GRU, seed=12, attention_size=4)
    e = rc.compile(nn.Sequential(m[0], m[1]))   # no head: the pooled features are the output
    X = randn32((4, 30, 6), seed=13, scale=3.0)
    feats = rc.compile(nn.Sequential(m[0])).run(X).astype(np.float64)
    want = m[1].forward(feats)
    got = e.run(X)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-6, err


def test_state_assignment_checks_the_attention_part():
    e = rc.compile(attn_model(nn.GRU, seed=14))
    st = e.stream(2)
    st.step(randn32((2, 6), seed=15))
    s = st.state
    with pytest.raises(ValueError, match=r"expected the keys 'recurrent' and 'attn_acc' and 'attn_max' and "
                                         r"'attn_sum'"):
        st.state = {"recurrent": s["recurrent"], "attn_acc": s["attn_acc"]}
    with pytest.raises(ValueError, match=r"state\['attn_acc'\]: expected shape \(2, 8\), got \(2, 7\)"):
        st.state = {**s, "attn_acc": s["attn_acc"][:, :7]}
    with pytest.raises(ValueError, match=r"state\['attn_max'\]: contains NaN or Inf"):
        st.state = {**s, "attn_max": np.array([0.0, np.inf], np.float32)}
    with pytest.raises(ValueError, match=r"state\['attn_sum'\]: expected 0 \(no step since the reset\) or "
                                         r"values >= 1"):
        st.state = {**s, "attn_sum": np.array([1.0, 0.5], np.float32)}
    st.state = s
    np.testing.assert_array_equal(st.state["attn_acc"], s["attn_acc"])


def test_a_model_with_a_conv1d_front_end_keeps_windows_and_the_attention():
    m = nn.Sequential(nn.Conv1d(6, 5, 3, padding=(2, 0), seed=1), nn.GRU(5, 8, seed=2),
                      nn.AttentionPool(8, 3, seed=3), nn.Linear(8, 2, seed=4))
    e = rc.compile(m)
    X = randn32((2, 9, 6), seed=16)
    np.testing.assert_allclose(e.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)
    st = e.stream(2)
    got = [st.step(X[:, t].copy()) for t in range(9)]
    np.testing.assert_array_equal(got[-1], e.run(X))
    np.testing.assert_array_equal(got[4], e.run(X[:, :5]))
    s = st.state
    assert set(s) == {"recurrent", "windows", "attn_acc", "attn_max", "attn_sum"}
    st.reset()
    st.state = s
    np.testing.assert_array_equal(st.step(X[:, 0].copy()), e.run(np.concatenate([X, X[:, :1]], 1)))


# -- the file -------------------------------------------------------------------------------------
def _last_step_at(data: bytes) -> int:
    return record_at(data, "last_step")


def _refused(data: bytes, want: str, status: str = "CORRUPT") -> None:
    with pytest.raises(RncFormatError, match=re.escape(want)) as py:
        check_rnc(data)
    assert py.value.status == status
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def _edit(data: bytes, at: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, *values)
    return fix_crc(b)


def test_the_file_round_trips_and_both_loaders_refuse_the_same_corruptions():
    m = attn_model(nn.GRU, seed=17)
    e = rc.compile(m, precision="q8")
    d = read_rnc(e.data)
    a = d["last_step_attention"]
    proj, score = m[1].proj.state_dict(), m[1].score.state_dict()
    np.testing.assert_array_equal(a["weight"], np.asarray(proj["weight"], np.float32))
    np.testing.assert_array_equal(a["bias"], np.asarray(proj["bias"], np.float32))
    np.testing.assert_array_equal(a["score"], np.asarray(score["weight"], np.float32)[0])
    assert d["last_step"] and not d["last_step_mean"] and not d["last_step_bidirectional"]
    at = _last_step_at(e.data)
    assert struct.unpack_from("<III", e.data, at) == (RECORD_KINDS["last_step"], 48, 4)
    A, F, w_off, w_n, b_off, b_n, v_off, v_n = struct.unpack_from("<8I", e.data, at + 16)
    assert (A, F, w_n, b_n, v_n) == (5, 8, 160, 20, 20)
    # flags that do not combine with attention
    _refused(_edit(e.data, at + 8, "<I", 5),
             "flags: 0x5: attention pooling (0x4) with the bidirectional (0x1) or mean (0x2) flag")
    _refused(_edit(e.data, at + 8, "<I", 6),
             "flags: 0x6: attention pooling (0x4) with the bidirectional (0x1) or mean (0x2) flag")
    _refused(_edit(e.data, at + 8, "<I", 12),
             "flags: 0xc: max pooling (0x8) with the attention flag (0x4)")
    _refused(_edit(e.data, at + 8, "<I", 20), "flags: 0x14: the last-step part (0x10) needs mean (0x2) "
             "and/or max (0x8) pooling and no attention (0x4)")
    _refused(_edit(e.data, at + 8, "<I", 0x24), "flags: 0x24 has unknown bits (known: 0x1f)")
    # the record's size follows the flag
    _refused(_edit(e.data, at + 8, "<I", 0), "size: 48, expected 16")
    # the tail's sizes and tensors
    _refused(_edit(e.data, at + 16, "<I", 0), "attnpool.attention_size: 0, expected 1..1048576")
    _refused(_edit(e.data, at + 20, "<I", 7), "attnpool.features: 7, expected 8")
    _refused(_edit(e.data, at + 16, "<I", 6), "attnpool.weight")   # A * F * 4 bytes != the tensor's
    _refused(_edit(e.data, at + 28, "<I", w_n - 4), "attnpool.weight")
    _refused(_edit(e.data, at + 36, "<I", 0), "attnpool.bias")
    _refused(_edit(e.data, at + 40, "<I", len(e.data)), "attnpool.score")
    _refused(_edit(e.data, v_off + 4, "<f", np.nan), "attnpool.score: value 1 is NaN or Inf")
    # a LastStep file with the attention flag and no tail
    last = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.LastStep(), nn.Linear(8, 3, seed=3))).data
    _refused(_edit(last, _last_step_at(last) + 8, "<I", 4), "size: 16, expected 48")
    with pytest.raises(ValueError, match="version 2 files only"):
        write_rnc(d, version=1)


def test_the_loaders_name_the_same_error_for_every_tail_offset_edit():
    # every u32 of the tail set to a few values: both loaders accept or refuse alike, with one text
    e = rc.compile(attn_model(nn.LSTM, seed=18))
    at = _last_step_at(e.data) + 16
    for off in range(0, 32, 4):
        for value in (0, 1, 3, 64, 0xFFFFFFFF):
            bad = _edit(e.data, at + off, "<I", value)
            try:
                check_rnc(bad)
                py = None
            except RncFormatError as err:
                py = str(err)
            try:
                rc.load(bad)
                c = None
            except ValueError as err:
                c = str(err)
            assert (py is None) == (c is None), (off, value, py, c)
            if py is not None:
                assert py in c, (off, value, py, c)


def test_what_stays_refused():
    from rnncore.quant import integer as qi  # noqa: F401 - the int8 path names the pooling

    with pytest.raises(ValueError, match=r"integer model: attention pooling over time \(AttentionPool\)"):
        rc.compile(attn_model(nn.GRU), precision="int8", calibration=randn32((2, 5, 6)))
    with pytest.raises(ValueError, match=r"module '2' \(AttentionPool\) is not supported"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.AttentionPool(8), nn.AttentionPool(8), nn.Linear(8, 2)))

def test_attention_model_exports_to_onnx():
    """rc.io.to_onnx of the module and of its f32 .rnc file: onnxruntime gives the NumPy model's
    outputs (the pooling written with standard ops; tests/test_onnx_export_steps.py covers more)."""
    onnx_export_matches_numpy(attn_model(nn.GRU, post=True, mlp=True))


def test_bidirectional_attention_matches_the_numpy_model_and_the_q8_spec():
    m = nn.Sequential(nn.LSTM(6, 5, bidirectional=True, seed=1), nn.AttentionPool(10, 4, seed=2),
                      nn.Linear(10, 2, seed=3))
    X = randn32((3, 7, 6), seed=19)
    lengths = np.array([7, 2, 5])
    want = m.forward(X.astype(np.float64), lengths=lengths)
    np.testing.assert_allclose(rc.compile(m).run(X, lengths), want, rtol=0, atol=1e-6)
    c_equals_q8_reference(rc.compile(m, precision="q8"), X, lengths)


def test_info_names_the_attention(tmp_path):
    e = rc.compile(attn_model(nn.GRU, seed=20))
    p = tmp_path / "attn.rnc"
    p.write_bytes(e.data)
    r = subprocess.run([sys.executable, "-m", "rnncore", "info", str(p), "--json"], capture_output=True,
                       text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["last_step"] == "attention" and info["attention_size"] == 5
    # GRU 3*8*(6+8) + 2*3*8, the attention 5*8 + 5 + 5, the head 3*8 + 3
    assert info["parameters"] == 3 * 8 * 14 + 48 + 50 + 27
    r = subprocess.run([sys.executable, "-m", "rnncore", "info", str(p)], capture_output=True, text=True,
                       env=child_env())
    assert "last_step: attention over each sequence's valid steps (AttentionPool, 5 units)" in r.stdout


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_steps_the_online_attention_and_runs_the_pooled_one(tmp_path, precision):
    e = rc.compile(attn_model(nn.GRU, seed=21, mlp=True), precision=precision)
    X = randn32((6, 6), seed=22)
    out = exported_outputs(tmp_path, e.data, X, "attn")
    assert out["run"].shape == (1, 3) and out["step"].shape == (6, 3)
    want = np.concatenate([e.run(X[None, :t + 1]) for t in range(6)])
    np.testing.assert_allclose(out["step"], want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["run"], want[-1:], rtol=0, atol=1e-6)
