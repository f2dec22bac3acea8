"""Padded conv_time / pool_time records in q8 files (timepad tails; docs/q8-contract.md, "Per-step
records in a q8 file"; docs/c-api.md, "Look-ahead").

* The NumPy q8 spec (rnncore.quant.front) by hand: a padded window's taps quantised as one vector
  with its pad steps as code 0 and the scale of its real taps; a max that ignores pad steps (all
  inputs negative: a counted zero would win), averages with and without the pad steps counted.
* The spec's output lengths are PyTorch's (Conv1d / MaxPool1d / AvgPool1d, ceil_mode), its float
  pooling equals PyTorch's, its streaming form (RecordStream: look-ahead, flush) gives the bits of
  its whole-sequence form.
* The engine: bit for bit the spec (the cells' C activations swapped in) on every ISA path of
  this CPU, with lengths (each sequence padded after its own last step); the stream's ``None``
  steps are the spec stream's, steps + flush = run, a state saved mid-sequence (during the
  look-ahead and after) resumes with the same bits, pickled too.
* Against PyTorch (an independent float model with the same weights): q8 within the q8 error class
  (a few % of the largest output, as the causal q8 conv_time), the output lengths PyTorch's.
The ONNX import of a padded Conv compiled q8: tests/test_onnx_time_layers.py; the C vector
``lstm_q8_timepad_last`` (csrc/tests/gen_vectors.py) runs on every kernel path and under qemu
(tests/test_arm_qemu.py).
"""

from __future__ import annotations

import pathlib
import pickle
import sys

import numpy as np
import pytest
from _helpers import randn32

import rnncore as rc
from rnncore.io.rnc import read_rnc
from rnncore.quant import front
from rnncore.quant.reference import qmodel_from_rnc
from rnncore.quant.scheme import quantize_weights

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

torch = pytest.importorskip("torch")
nn = rc.nn
ISAS = rc.isa()["available"]
F32 = np.float32


def model(seed=0, cell=nn.GRU):
    """Conv1d(k5, 'same', groups 2) > ReLU > MaxPool1d(3, 2, padding 1) > Conv1d(k3, dilation 2,
    padding (2, 1)) > HardSigmoid > AvgPool1d(3, 1, padding 1, count_include_pad=False) >
    AvgPool1d(2, ceil_mode) > cell > Linear: activations whose float32 form is exact in NumPy."""
    return nn.Sequential(
        nn.Conv1d(6, 8, 5, padding="same", groups=2, seed=seed),
        nn.ReLU(),
        nn.MaxPool1d(3, channels=8, stride=2, padding=1),
        nn.Conv1d(8, 6, 3, dilation=2, padding=(2, 1), seed=seed + 1),
        nn.HardSigmoid(),
        nn.AvgPool1d(3, channels=6, stride=1, padding=1, count_include_pad=False),
        nn.AvgPool1d(2, channels=6, ceil_mode=True),
        cell(6, 9, seed=seed + 2),
        nn.Linear(9, 3, seed=seed + 3),
    )


LOOKAHEAD = 2 + 1 + 2 * 2 + 1 * 2 + 1 * 2   # sum of (P - left) x the strides before each record


# ---- the spec by hand --------------------------------------------------------------------------

def test_padded_conv_window_by_hand():
    """Output 0 of Conv1d(k3, padding (2, 1)) reads two pad steps and x_0, the last output x_{T-2},
    x_{T-1} and a pad step: one vector each (pads code 0, scale from the real taps)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 2, 3)).astype(F32)   # C_in 2, C_out 4
    wq, s = quantize_weights(w.reshape(4, 6))
    b = rng.standard_normal(4).astype(F32)
    x = rng.standard_normal((1, 5, 2)).astype(F32)
    rec = {"kind": "conv_time", "in_channels": 2, "out_channels": 4, "kernel_size": 3,
           "pad_left": 2, "pad_right": 1, "qweight": wq.reshape(4, 2, 3), "scale": s, "bias": b}
    y = front.conv_time_q8(rec, x)
    assert y.shape == (1, 5 + 2 + 1 - 2, 4)            # PyTorch: T + left + right - (k - 1)
    for n, taps in ((0, [None, None, 0]), (5, [3, 4, None])):
        v = np.array([[0.0 if t is None else x[0, t, c] for t in taps] for c in range(2)], F32).reshape(-1)
        m = np.abs(v).max()
        q = np.rint(v * (F32(127) / m)).astype(np.int64)
        assert np.all(q[[i for i, t in enumerate(taps * 2) if t is None]] == 0)
        sx = F32(m / F32(127))
        for o in range(4):
            acc = int((wq[o].astype(np.int64) * q).sum())
            assert y[0, n, o] == F32(F32(acc) * F32(sx * s[o]) + b[o])
    # the float model it approximates: PyTorch's Conv1d with the padding
    xp = np.concatenate([np.zeros((1, 2, 2), F32), x, np.zeros((1, 1, 2), F32)], 1)
    with torch.no_grad():
        want = torch.nn.functional.conv1d(torch.from_numpy(xp).transpose(1, 2), torch.from_numpy(w),
                                          torch.from_numpy(b)).transpose(1, 2).numpy()
    np.testing.assert_allclose(y, want, rtol=0, atol=0.05)


def test_padded_pooling_by_hand():
    x = -np.arange(1, 6, dtype=F32)[None, :, None] - 0.5       # all negative: -1.5 .. -5.5
    mx = {"kind": "pool_time", "op": "max_pool1d", "kernel_size": 3, "stride": 2, "pad_left": 1,
          "pad_right": 1}
    np.testing.assert_array_equal(front.pool_time_seq(mx, x)[0, :, 0], [-1.5, -2.5, -4.5])   # not 0
    av = {"kind": "pool_time", "op": "avg_pool1d", "kernel_size": 3, "stride": 1, "pad_left": 1,
          "pad_right": 1, "count_include_pad": True}
    y = front.pool_time_seq(av, x)[0, :, 0]
    assert y[0] == F32(F32(-1.5) + F32(-2.5)) / F32(3) and y[-1] == F32(F32(-4.5) + F32(-5.5)) / F32(3)
    y = front.pool_time_seq({**av, "count_include_pad": False}, x)[0, :, 0]
    assert y[0] == F32(-2.0) and y[2] == F32(F32(F32(-2.5) + F32(-3.5)) + F32(-4.5)) / F32(3)


# ---- the spec against PyTorch, and its two forms -------------------------------------------------

POOLS = [
    dict(kind="max_pool1d", kernel_size=3, stride=2, padding=1),
    dict(kind="max_pool1d", kernel_size=4, stride=1, padding=2, dilation=1),
    dict(kind="max_pool1d", kernel_size=3, stride=2, padding=1, dilation=2),
    dict(kind="avg_pool1d", kernel_size=3, stride=1, padding=1, count_include_pad=True),
    dict(kind="avg_pool1d", kernel_size=5, stride=2, padding=2, count_include_pad=False),
    dict(kind="avg_pool1d", kernel_size=3, stride=2, padding=0, ceil_mode=True),
    dict(kind="max_pool1d", kernel_size=2, stride=2, padding=0, ceil_mode=True),
    # ceil_mode with padding or a stride past the window (rnncore.nn.conv.ceil_mode_padding)
    dict(kind="max_pool1d", kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kind="max_pool1d", kernel_size=3, stride=3, padding=1, dilation=2, ceil_mode=True),
    dict(kind="max_pool1d", kernel_size=2, stride=3, padding=0, ceil_mode=True),
    dict(kind="avg_pool1d", kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kind="avg_pool1d", kernel_size=2, stride=3, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kind="avg_pool1d", kernel_size=2, stride=3, padding=0, ceil_mode=True),
]


@pytest.mark.parametrize("cfg", POOLS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_pooling_spec_equals_pytorch(cfg):
    kind, p = cfg["kind"], cfg["padding"]
    rec = {"kind": kind, "kernel_size": cfg["kernel_size"], "stride": cfg["stride"],
           "dilation": cfg.get("dilation", 1), "pad_left": p, "pad_right": p,
           "count_include_pad": cfg.get("count_include_pad", True), "ceil_mode": cfg.get("ceil_mode", False)}
    for T in (1, 2, 5, 8, 13):
        x = randn32((2, T, 3), seed=T)
        with torch.no_grad():
            xt = torch.from_numpy(x).transpose(1, 2)
            if kind == "max_pool1d":
                if T + 2 * p < cfg.get("dilation", 1) * (cfg["kernel_size"] - 1) + 1:
                    continue
                want = torch.nn.functional.max_pool1d(xt, cfg["kernel_size"], cfg["stride"], p,
                                                      cfg.get("dilation", 1), cfg.get("ceil_mode", False))
            else:
                if T + 2 * p < cfg["kernel_size"]:
                    continue
                want = torch.nn.functional.avg_pool1d(xt, cfg["kernel_size"], cfg["stride"], p,
                                                      cfg.get("ceil_mode", False),
                                                      cfg.get("count_include_pad", True))
        want = want.transpose(1, 2).numpy()
        got = front.pool_time_seq(rec, x)
        assert got.shape == want.shape and front.time_out_steps(rec, T) == want.shape[1], (T, got.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k,dl,pl,pr", [(3, 1, 1, 1), (5, 1, 2, 2), (4, 1, 1, 2), (3, 2, 2, 1), (3, 1, 0, 0),
                                        (3, 1, 2, 2), (2, 3, 0, 3)])
def test_conv_spec_length_and_values_equal_pytorch(k, dl, pl, pr):
    rng = np.random.default_rng(k * 10 + dl)
    w = rng.standard_normal((4, 3, k)).astype(F32)
    wq, s = quantize_weights(w.reshape(4, -1))
    b = rng.standard_normal(4).astype(F32)
    rec = {"kind": "conv_time", "in_channels": 3, "out_channels": 4, "kernel_size": k, "dilation": dl,
           "pad_left": pl, "pad_right": pr, "qweight": wq.reshape(w.shape), "scale": s, "bias": b}
    for T in (dl * (k - 1) + 1, 7, 16):
        x = randn32((2, T, 3), seed=T)
        with torch.no_grad():
            xp = torch.nn.functional.pad(torch.from_numpy(x).transpose(1, 2), (pl, pr))
            want = torch.nn.functional.conv1d(xp, torch.from_numpy(w), torch.from_numpy(b),
                                              dilation=dl).transpose(1, 2).numpy()
        got = front.conv_time_q8(rec, x)
        assert got.shape == want.shape and front.time_out_steps(rec, T) == want.shape[1]
        err = np.abs(got - want).max()
        assert err < 0.03 * np.abs(want).max(), err


def _spec_stream_gives_the_spec_run(recs, T, lookahead):
    """The spec's RecordStream over T steps (2 rows of 6 inputs), its first ``lookahead`` steps
    ``None``, then its flush: the bits of its whole-sequence run (of out_lengths' length).
    Returns the stream (flushed), its input and its step outputs."""
    X = randn32((2, T, 6), seed=T)
    run = front.step_records(recs, X)
    assert run.shape[1] == front.out_lengths(recs, [T])[0]
    st = front.RecordStream(recs, 2)
    outs = [st.step(X[:, t]) for t in range(T)]
    rows = [o for o in outs if o is not None] + st.flush()
    assert all(o is None for o in outs[:lookahead])
    got = np.stack(rows, 1) if rows else np.zeros((2, 0, 6), F32)
    np.testing.assert_array_equal(got, run)
    return st, X, outs


def test_spec_stream_and_flush_give_the_bits_of_the_spec_run():
    d = read_rnc(rc.compile(model(seed=3), precision="q8").data)
    for T in (1, 4, 11, 26):
        st, X, outs = _spec_stream_gives_the_spec_run(d["front"], T, LOOKAHEAD)
        outs2 = [st.step(X[:, t]) for t in range(T)]   # after the flush: a fresh sequence
        assert [o is None for o in outs2] == [o is None for o in outs]


# ---- the engine ------------------------------------------------------------------------------------

def _engine_equals_the_spec_on_every_isa(m, T, lengths):
    """``m`` compiled q8 (its Conv1d int8) on 4 sequences of T steps with ``lengths``: on every ISA
    path the bits of the NumPy q8 spec, each padded after its own last step (the third as if
    alone). Returns the file's dict."""
    e = rc.compile(m, precision="q8")
    d = read_rnc(e.data)
    assert all(r["tensors"]["qweight"].dtype == np.int8 for r in d["front"] if r["kind"] == "conv1d")
    X = randn32((4, T, 6), seed=6, scale=1.5)
    lengths = np.array(lengths)
    ref, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(d), X, lengths)
    n = front.out_lengths(d["front"], lengths)
    assert ref.shape[1] == n[0] and np.all(ref[1, n[1]:] == 0) and np.abs(ref[1, :n[1]]).min() > 0
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)
    # each shorter sequence as if alone: its own run (its right padding after its last step)
    alone, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(d), X[2:3, :lengths[2]], None)
    np.testing.assert_array_equal(ref[2:3, :n[2]], alone)
    return d


def _stream_gives_the_run_and_resumes(m, isa, T, save_at):
    """``m`` compiled q8 on ``isa``, streamed over T steps (2 rows): its ``None`` steps the spec
    stream's, steps + flush its run, a state saved before each step of ``save_at`` resumed (on the
    stream and on a pickled copy) the rest of that run. Returns the stream and the spec's ``None``
    steps."""
    e = rc.compile(m, precision="q8")
    e.set_isa(isa)
    d = read_rnc(e.data)
    X = randn32((2, T, 6), seed=8)
    whole = e.run(X)
    spec = front.RecordStream(d["front"], 2)
    none = [spec.step(X[:, t]) is None for t in range(T)]
    s = e.stream(2)
    saved, outs = {}, []
    for t in range(T):
        if t in save_at:
            saved[t] = (s.state, len([o for o in outs if o is not None]))
        outs.append(s.step(X[:, t].copy()))
    assert [o is None for o in outs] == none
    body = [o for o in outs if o is not None]
    got = np.concatenate([np.stack(body, 1), s.flush()], 1)
    np.testing.assert_array_equal(got, whole)
    for t, (state, k) in saved.items():
        for r in (s, pickle.loads(pickle.dumps(s))):
            r.state = state
            again = [r.step(X[:, u].copy()) for u in range(t, T)]
            again = [o for o in again if o is not None]
            tail = r.flush()
            rest = np.concatenate([np.stack(again, 1), tail], 1) if again else tail
            np.testing.assert_array_equal(rest, whole[:, k:], err_msg=f"restored at step {t}")
    return s, none


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_engine_equals_the_numpy_q8_spec_bit_for_bit_on_every_isa(cell):
    d = _engine_equals_the_spec_on_every_isa(model(seed=5, cell=cell), 29, [29, 17, 4, 1])
    kinds = [r["kind"] for r in d["front"]]
    assert kinds == ["conv1d", "relu", "max_pool1d", "conv1d", "hard_sigmoid", "avg_pool1d", "avg_pool1d"]


@pytest.mark.parametrize("isa", ISAS)
def test_stream_steps_and_flush_give_the_run_and_a_saved_state_resumes(isa):
    # saved during the look-ahead and after it
    s, _ = _stream_gives_the_run_and_resumes(model(seed=7, cell=nn.LSTM), isa, 23, (3, 15))
    assert s.lookahead == LOOKAHEAD


def _with_weights(tl, layer):
    """PyTorch layer ``tl`` with the weight and bias of ``layer`` (an rc.nn Conv1d or Linear)."""
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(np.asarray(layer.params["weight"], F32)))
        tl.bias.copy_(torch.from_numpy(np.asarray(layer.params["bias"], F32)))
    return tl


def _torch_tail(cell, linear):
    """The models' cell (GRU or LSTM, 6 -> 9) and Linear(9, 3) in PyTorch, the weights copied."""
    rnn = (torch.nn.LSTM if isinstance(cell, nn.LSTM) else torch.nn.GRU)(6, 9, batch_first=True)
    rnn.load_state_dict({k: torch.from_numpy(np.asarray(v, F32)) for k, v in cell.state_dict().items()})
    return rnn, _with_weights(torch.nn.Linear(9, 3), linear)


def _q8_is_close_to_pytorch(m, ref, Ts):
    """``m`` compiled f32 gives PyTorch's model ``ref`` (within 1e-5), compiled q8 within 2 % of
    its largest output (not equal: the q8 path ran), both with PyTorch's output lengths, on 3
    sequences of each length in ``Ts``."""
    e8, e32 = rc.compile(m, precision="q8"), rc.compile(m)
    for T in Ts:
        X = randn32((3, T, 6), seed=T)
        want = ref(X)
        y32, y8 = e32.run(X), e8.run(X)
        assert y8.shape == y32.shape == want.shape, (T, y8.shape, want.shape)
        np.testing.assert_allclose(y32, want, rtol=0, atol=1e-5)   # the f32 file: PyTorch's model
        err = np.abs(y8 - want).max()
        assert 0 < err < 0.02 * np.abs(want).max(), err


def _torch_model(m):
    """The same model in PyTorch (its own layers, the weights copied)."""
    L = [m[i] for i in range(9)]
    convs = [_with_weights(torch.nn.Conv1d(c.in_channels, c.out_channels, c.kernel_size, dilation=c.dilation,
                                           groups=c.groups, padding=pad if pad else 0), c)
             for c, pad in ((L[0], "same"), (L[3], None))]
    rnn, lin = _torch_tail(L[7], L[8])

    def run(X):
        with torch.no_grad():
            u = torch.from_numpy(X).transpose(1, 2)
            u = torch.relu(convs[0](u))
            u = torch.nn.functional.max_pool1d(u, 3, 2, 1)
            u = torch.nn.functional.pad(u, (2, 1))
            u = torch.nn.functional.hardsigmoid(convs[1](u))
            u = torch.nn.functional.avg_pool1d(u, 3, 1, 1, count_include_pad=False)
            u = torch.nn.functional.avg_pool1d(u, 2, 2, 0, ceil_mode=True)
            h, _ = rnn(u.transpose(1, 2))
            return lin(h).numpy()
    return run


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_q8_is_close_to_pytorch_with_its_output_lengths(cell):
    m = model(seed=9, cell=cell)
    # q8 measured 0.25-0.55 % (causal q8 conv: 0.8 %)
    _q8_is_close_to_pytorch(m, _torch_model(m), (9, 30, 41))


def test_the_padded_q8_file_reads_back_its_pads_and_writes_the_same_bytes():
    from rnncore.io.rnc import write_rnc

    e = rc.compile(model(seed=2), precision="q8")
    d = read_rnc(e.data)
    assert write_rnc(d) == e.data
    assert [(r.get("pad_left"), r.get("pad_right")) for r in d["front"] if "pad_left" in r] == \
        [(2, 2), (1, 1), (2, 1), (1, 1), (0, 1)]


def test_export_c_of_a_padded_q8_model_flushes_at_the_end_of_its_input(tmp_path):
    """The program ``rnncore export-c`` writes (built and run on this host): its steps and flush,
    and its run, give the engine's q8 outputs."""
    from export_c_run import exported_outputs

    e = rc.compile(model(seed=12, cell=nn.LSTM), precision="q8")
    X = randn32((27, 6), seed=13)
    want = e.run(X[None])[0]
    assert want.shape == (7, 3)
    out = exported_outputs(tmp_path, e.data, X, "q8pad")
    np.testing.assert_array_equal(out["step"], want)
    np.testing.assert_allclose(out["run"], want, rtol=0, atol=1e-6)


# ---- q8 conv_time at a stride ----------------------------------------------------------------------

def strided_model(seed=0, cell=nn.GRU):
    """Conv1d(k3, stride 2, causal, groups 2) > ReLU > Conv1d(k3, stride 2, dilation 2, padding
    (2, 1)) > HardSigmoid > Conv1d(k2, stride 3, padding 1: both sides together beyond P = 1) >
    cell > Linear, every Conv1d int8 in a q8 file."""
    return nn.Sequential(
        nn.Conv1d(6, 8, 3, stride=2, padding="causal", groups=2, seed=seed),
        nn.ReLU(),
        nn.Conv1d(8, 6, 3, stride=2, dilation=2, padding=(2, 1), seed=seed + 1),
        nn.HardSigmoid(),
        nn.Conv1d(6, 6, 2, stride=3, padding=1, seed=seed + 2),
        cell(6, 9, seed=seed + 3),
        nn.Linear(9, 3, seed=seed + 4),
    )


@pytest.mark.parametrize("k,dl,st,pl,pr", [(3, 1, 2, 2, 0), (3, 1, 2, 1, 1), (4, 1, 3, 3, 0),
                                           (3, 2, 2, 2, 1), (2, 1, 3, 1, 1), (5, 1, 4, 2, 2),
                                           (3, 1, 2, 0, 0), (2, 3, 2, 0, 3)])
def test_strided_conv_spec_length_and_values_equal_pytorch(k, dl, st, pl, pr):
    """conv_time_q8 at stride s: PyTorch's Conv1d(stride=s) on the padded input, its length and its
    values within the q8 error class."""
    rng = np.random.default_rng(k * 100 + dl * 10 + st)
    w = rng.standard_normal((4, 3, k)).astype(F32)
    wq, s = quantize_weights(w.reshape(4, -1))
    b = rng.standard_normal(4).astype(F32)
    rec = {"kind": "conv_time", "in_channels": 3, "out_channels": 4, "kernel_size": k, "dilation": dl,
           "stride": st, "pad_left": pl, "pad_right": pr, "qweight": wq.reshape(w.shape), "scale": s,
           "bias": b}
    for T in (max(1, dl * (k - 1) + 1 - pl - pr), 7, 16, 17):
        x = randn32((2, T, 3), seed=T)
        with torch.no_grad():
            xp = torch.nn.functional.pad(torch.from_numpy(x).transpose(1, 2), (pl, pr))
            want = torch.nn.functional.conv1d(xp, torch.from_numpy(w), torch.from_numpy(b), stride=st,
                                              dilation=dl).transpose(1, 2).numpy()
        got = front.conv_time_q8(rec, x)
        assert got.shape == want.shape and front.time_out_steps(rec, T) == want.shape[1], (T, got.shape)
        err = np.abs(got - want).max()
        assert err < 0.03 * np.abs(want).max(), err


def test_strided_spec_stream_and_flush_give_the_bits_of_the_spec_run():
    d = read_rnc(rc.compile(strided_model(seed=3), precision="q8").data)
    assert [r.get("stride") for r in d["front"] if r["kind"] == "conv1d"] == [2, 2, 3]
    for T in (1, 2, 5, 12, 27):
        _spec_stream_gives_the_spec_run(d["front"], T, 0)


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_strided_engine_equals_the_numpy_q8_spec_bit_for_bit_on_every_isa(cell):
    _engine_equals_the_spec_on_every_isa(strided_model(seed=5, cell=cell), 31, [31, 18, 5, 2])


@pytest.mark.parametrize("isa", ISAS)
def test_strided_stream_steps_and_flush_give_the_run_and_a_saved_state_resumes(isa):
    T = 29   # states saved between the outputs of each stride
    _, none = _stream_gives_the_run_and_resumes(strided_model(seed=7, cell=nn.LSTM), isa, T, (2, 13, 22))
    assert 0 < sum(not v for v in none) < T // 4   # one output per 12 steps, and the flush's


def _torch_strided(m):
    """strided_model in PyTorch (its own Conv1d(stride=s) after F.pad, the weights copied)."""
    convs = [(_with_weights(torch.nn.Conv1d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride,
                                            dilation=c.dilation, groups=c.groups), c),
              (c.pad_left, c.pad_right)) for c in (m[0], m[2], m[4])]
    rnn, lin = _torch_tail(m[5], m[6])

    def run(X):
        with torch.no_grad():
            u = torch.from_numpy(X).transpose(1, 2)
            (c0, p0), (c1, p1), (c2, p2) = convs
            u = torch.relu(c0(torch.nn.functional.pad(u, p0)))
            u = torch.nn.functional.hardsigmoid(c1(torch.nn.functional.pad(u, p1)))
            u = c2(torch.nn.functional.pad(u, p2))
            h, _ = rnn(u.transpose(1, 2))
            return lin(h).numpy()
    return run


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_strided_q8_is_close_to_pytorch_with_its_output_lengths(cell):
    m = strided_model(seed=9, cell=cell)
    _q8_is_close_to_pytorch(m, _torch_strided(m), (9, 30, 61))


# ---- pooling windows that hold no real input (dilation over the padding, few steps) ----------------

# k, d, p, s
EMPTY_POOLS = [(2, 2, 1, 1), (2, 3, 1, 1), (2, 3, 1, 2), (2, 4, 1, 1), (2, 5, 1, 3), (2, 2, 1, 2)]
# (padding <= k // 2: only k = 2 has a window between the pads, on T = d - 1 steps)


def _empty_windows(k, d, p, s, T):
    """Whether some output window of the padded input reads only padding (independent of rnncore)."""
    n = (T + 2 * p - d * (k - 1) - 1) // s + 1
    return any(all(not 0 <= i * s + j * d - p < T for j in range(k)) for i in range(max(n, 0)))


@pytest.mark.parametrize("k,d,p,s", EMPTY_POOLS)
def test_a_max_window_without_input_is_minus_inf_as_pytorch(k, d, p, s):
    """PyTorch's max_pool1d gives -inf there (ONNX Runtime the lowest float32): the rc.nn layer and
    the C core's spec (pool_time_seq, the f32 and q8 files' pooling) give -inf, never 0."""
    rec = {"kind": "max_pool1d", "kernel_size": k, "stride": s, "dilation": d, "pad_left": p, "pad_right": p}
    seen = 0
    for T in range(1, d + 3):
        if T + 2 * p < d * (k - 1) + 1:
            continue
        x = randn32((2, T, 3), seed=T) - 5.0   # all negative: a 0 would win
        with torch.no_grad():
            want = torch.nn.functional.max_pool1d(torch.from_numpy(x).transpose(1, 2), k, s, p, d)
        want = want.transpose(1, 2).numpy()
        seen += _empty_windows(k, d, p, s, T) and bool(np.isneginf(want).any())
        np.testing.assert_array_equal(nn.MaxPool1d(k, 3, stride=s, padding=p, dilation=d, dtype="float32")
                                      .forward(x), want)
        np.testing.assert_array_equal(front.pool_time_seq(rec, x), want)
    assert seen   # the sweep holds windows without an input


@pytest.mark.parametrize("k,d,p,s", EMPTY_POOLS)
def test_an_average_window_without_input_is_zero_as_onnxruntime(k, d, p, s):
    """count_include_pad=False with dilation over the padding only: ONNX Runtime's AveragePool gives
    0 (PyTorch's AvgPool1d has no dilation); the rc.nn layer and pool_time_seq give 0, not NaN."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    def ort_avg(x):
        g = helper.make_graph(
            [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[k], strides=[s], pads=[p, p],
                              dilations=[d], count_include_pad=0)], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
        sess = ort.InferenceSession(mdl.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]

    rec = {"kind": "avg_pool1d", "kernel_size": k, "stride": s, "dilation": d, "pad_left": p, "pad_right": p,
           "count_include_pad": False}
    seen = 0
    for T in range(1, d + 3):
        if T + 2 * p < d * (k - 1) + 1:
            continue
        x = randn32((2, T, 3), seed=T) + 5.0
        want = ort_avg(np.ascontiguousarray(x.transpose(0, 2, 1))).transpose(0, 2, 1)
        seen += _empty_windows(k, d, p, s, T) and bool((want == 0).any())
        layer = nn.AvgPool1d(k, 3, stride=s, padding=p, dilation=d, count_include_pad=False, dtype="float32")
        with np.errstate(all="raise"):
            np.testing.assert_allclose(layer.forward(x), want, rtol=1e-6, atol=0)
            np.testing.assert_allclose(front.pool_time_seq(rec, x), want, rtol=1e-6, atol=0)
    assert seen


def _empty_pool_model(op, then, seed=0):
    pool = (nn.MaxPool1d(2, 4, stride=1, padding=1, dilation=3) if op == "max" else
            nn.AvgPool1d(2, 4, stride=1, padding=1, dilation=3, count_include_pad=False))
    return nn.Sequential(pool, *then, nn.GRU(4, 5, seed=seed), nn.Linear(5, 2, seed=seed + 1))


def test_engine_max_window_without_input_gives_minus_inf_through_relu_as_pytorch():
    """MaxPool1d(2, dilation 3, padding 1) on 2 steps: its one window reads two pad steps (-inf, as
    PyTorch), ReLU makes it 0; the f32 engine equals PyTorch, the q8 engine its spec bit for bit."""
    m = _empty_pool_model("max", [nn.ReLU()], seed=2)
    tg = torch.nn.GRU(4, 5, batch_first=True)
    tg.load_state_dict({k: torch.from_numpy(np.asarray(v, F32)) for k, v in m[2].state_dict().items()})
    tl = torch.nn.Linear(5, 2)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(np.asarray(m[3].params["weight"], F32)))
        tl.bias.copy_(torch.from_numpy(np.asarray(m[3].params["bias"], F32)))
    e32, e8 = rc.compile(m), rc.compile(m, precision="q8")
    d = read_rnc(e8.data)
    for T in (2, 3, 6):
        X = randn32((2, T, 4), seed=T) - 3.0
        with torch.no_grad():
            u = torch.relu(torch.nn.functional.max_pool1d(torch.from_numpy(X).transpose(1, 2), 2, 1, 1, 3))
            want = tl(tg(u.transpose(1, 2))[0]).numpy()
        np.testing.assert_allclose(e32.run(X), want, rtol=0, atol=1e-5)
        ref, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(d), X, None)
        for isa in ISAS:
            e8.set_isa(isa)
            np.testing.assert_array_equal(e8.run(X), ref, err_msg=isa)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_engine_refuses_minus_inf_it_cannot_carry(precision):
    """-inf reaching the recurrent layer (PyTorch: NaN from there on), or a q8 Conv1d's quantiser: a
    FloatingPointError naming the cause, never a silent 0; the spec refuses the quantisation too."""
    for then in ([], [nn.Conv1d(4, 4, 1, seed=3)]):
        e = rc.compile(_empty_pool_model("max", then), precision=precision)
        X = randn32((1, 2, 4), seed=1)
        with pytest.raises(FloatingPointError, match="max pooling window that holds no input"):
            e.run(X)
        assert e.run(randn32((1, 3, 4), seed=1)).shape == (1, 2, 2)   # 3 steps: no empty window
        if precision == "q8" and then:
            with pytest.raises(ValueError, match="NaN or Inf"):
                front.step_records(read_rnc(e.data)["front"], X)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_engine_average_window_without_input_is_zero(precision):
    """AvgPool1d(count_include_pad=False, dilation 3, padding 1) on 2 steps: its window holds no
    input, 0 (ONNX Runtime's value) rather than the non-finite error; f32 as the rc.nn model,
    q8 bit for bit its spec."""
    m = _empty_pool_model("avg", [], seed=4)
    e = rc.compile(m, precision=precision)
    for T in (2, 5):
        X = randn32((3, T, 4), seed=T)
        if precision == "f32":
            np.testing.assert_allclose(e.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)
        else:
            ref, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(e.data)), X, None)
            np.testing.assert_array_equal(e.run(X), ref)
