"""Padding on both sides of the time axis in the C engine (docs/c-api.md, "Look-ahead"): Conv1d
and pooling over time padded as PyTorch (``padding=p``, ``"same"``, ``count_include_pad``,
``ceil_mode``) and Keras (``padding="same"``), streamed with a fixed look-ahead and an explicit
end of input (``rnc_flush`` / ``Stream.flush``).

Against PyTorch and Keras whole-sequence outputs (independent references: their own layers and a
GRU with the same weights), the engine's stream (``None`` at the first ``P - left`` steps and the
strides' steps, then ``flush()``: the bits of ``run``), lengths (each sequence as if alone),
save/restore and pickling mid-stream, the loader's and the reader's identical refusals of
corrupted timepad tails, models without padding (same bytes and state form), q8 and export-c.
"""

from __future__ import annotations

import pickle
import re
import struct

import numpy as np
import pytest
from _helpers import randn32
from export_c_run import exported_outputs
from rnc_mutations import fix_crc
from stream_drive import drive, stream_all

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.io.rnc_layout import LAYOUT
from rnncore.spec import spec_from_rnc, to_rnc_spec

torch = pytest.importorskip("torch")
nn = rc.nn


def _gru_pair(i, h, seed):
    torch.manual_seed(seed)
    tg = torch.nn.GRU(i, h, batch_first=True)
    g = nn.GRU(i, h, dtype="float32")
    g.load_state_dict(tg.state_dict())
    return tg, g


def _conv_pair(cin, cout, k, seed, **kw):
    torch.manual_seed(seed)
    tc = torch.nn.Conv1d(cin, cout, k, **kw)
    c = nn.Conv1d(cin, cout, k, dtype="float32", **kw)
    c.load_state_dict({"weight": tc.weight.detach().numpy(), "bias": tc.bias.detach().numpy()})
    return c, tc


def _torch_out(front, tg, X):
    with torch.no_grad():
        u = front(torch.from_numpy(X).transpose(1, 2)).transpose(1, 2).contiguous()
        return tg(u)[0].numpy()


# (rc layer, torch layer, P - left: the steps before the first output)
CONVS = {
    "k3 padding 1": (dict(k=3, padding=1), 1),
    "k5 same": (dict(k=5, padding="same"), 2),
    "k4 same (odd pad on the right)": (dict(k=4, padding="same"), 2),
    "k3 dilation 2 padding 2": (dict(k=3, padding=2, dilation=2), 2),
    "k3 stride 2 padding 1": (dict(k=3, padding=1, stride=2), 1),
    "k3 padding 2 (over-padded: all on the left's reach)": (dict(k=3, padding=2), 0),
}


@pytest.mark.parametrize("name", list(CONVS))
def test_padded_conv1d_matches_pytorch_and_stream_plus_flush_is_run(name):
    kw, wait = CONVS[name]
    kw = dict(kw)
    k = kw.pop("k")
    c, tc = _conv_pair(4, 6, k, seed=1, **kw)
    tg, g = _gru_pair(6, 5, seed=2)
    eng = rc.compile(nn.Sequential(c, g))
    for T in (9, 12):
        X = randn32((2, T, 4), seed=T)
        want = _torch_out(tc, tg, X)
        Y = eng.run(X)
        assert Y.shape == want.shape   # PyTorch's T_out
        np.testing.assert_allclose(Y, want, rtol=0, atol=2e-6)
        got, none, st = stream_all(eng, X)
        np.testing.assert_array_equal(got, Y)
        stride = kw.get("stride", 1)
        assert none[:wait] == [True] * wait and not none[wait]
        assert [t for t, n in enumerate(none) if not n] == list(range(wait, T, stride))
        assert st.lookahead == wait


# (rc pooling, torch pooling)
POOLS = {
    "max k3 s2 p1": (lambda: nn.MaxPool1d(3, channels=4, stride=2, padding=1),
                     lambda: torch.nn.MaxPool1d(3, 2, 1)),
    "max k2 s1 p1": (lambda: nn.MaxPool1d(2, channels=4, stride=1, padding=1),
                     lambda: torch.nn.MaxPool1d(2, 1, 1)),
    "max k2 s3 d2 p1": (lambda: nn.MaxPool1d(2, channels=4, stride=3, padding=1, dilation=2),
                        lambda: torch.nn.MaxPool1d(2, 3, 1, dilation=2)),
    "avg k3 s2 p1": (lambda: nn.AvgPool1d(3, channels=4, stride=2, padding=1),
                     lambda: torch.nn.AvgPool1d(3, 2, 1)),
    "avg k3 s1 p1 exclude": (lambda: nn.AvgPool1d(3, channels=4, stride=1, padding=1,
                                                  count_include_pad=False),
                             lambda: torch.nn.AvgPool1d(3, 1, 1, count_include_pad=False)),
    "avg k4 s3 p2 exclude": (lambda: nn.AvgPool1d(4, channels=4, stride=3, padding=2,
                                                  count_include_pad=False),
                             lambda: torch.nn.AvgPool1d(4, 3, 2, count_include_pad=False)),
    "max k2 s2 ceil": (lambda: nn.MaxPool1d(2, channels=4, stride=2, ceil_mode=True),
                       lambda: torch.nn.MaxPool1d(2, 2, ceil_mode=True)),
    "avg k3 s2 ceil": (lambda: nn.AvgPool1d(3, channels=4, stride=2, ceil_mode=True),
                       lambda: torch.nn.AvgPool1d(3, 2, ceil_mode=True)),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_padded_pooling_matches_pytorch_and_stream_plus_flush_is_run(name):
    mk, tk = POOLS[name]
    tg, g = _gru_pair(4, 5, seed=3)
    eng = rc.compile(nn.Sequential(mk(), g))
    for T in (10, 11, 13):
        X = randn32((2, T, 4), seed=T)
        want = _torch_out(tk(), tg, X)
        Y = eng.run(X)
        assert Y.shape == want.shape
        np.testing.assert_allclose(Y, want, rtol=0, atol=2e-6)
        got, _, _ = stream_all(eng, X)
        np.testing.assert_array_equal(got, Y)


def kws_same(seed=0, cell=nn.GRU):
    """Conv1d(k5, same) > ReLU > MaxPool1d(3, 2, padding 1) > Conv1d(k3, stride 2, padding 1) >
    AvgPool1d(3, 1, padding 1, count_include_pad=False) > GRU > Linear."""
    return nn.Sequential(
        nn.Conv1d(5, 8, 5, padding="same", seed=seed),
        nn.ReLU(),
        nn.MaxPool1d(3, channels=8, stride=2, padding=1),
        nn.Conv1d(8, 6, 3, stride=2, padding=1, seed=seed + 1),
        nn.AvgPool1d(3, channels=6, stride=1, padding=1, count_include_pad=False),
        cell(6, 9, seed=seed + 2),
        nn.Linear(9, 3, seed=seed + 3),
    )


def test_chained_padded_layers_match_numpy_and_report_their_lookahead():
    m = kws_same()
    eng = rc.compile(m)
    X = randn32((2, 37, 5), seed=4)
    ref = m.forward(X.astype(np.float64))
    Y = eng.run(X)
    assert Y.shape == ref.shape == (2, 10, 3)   # 37 -> 37 -> 19 -> 10 -> 10
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-5)
    st = eng.stream(2)
    # look-ahead in input steps: 2 (conv k5 same) + 1 (max, k3 pad 1) + 1 x 2 (conv) + 1 x 4 (avg)
    assert st.lookahead == 2 + 1 + 2 + 4
    assert st.out_steps(37) == 10
    got, none, _ = stream_all(eng, X)
    np.testing.assert_array_equal(got, Y)
    assert none.index(False) == 9   # the first output comes when its look-ahead is in


def test_lengths_give_each_sequence_its_own_padded_end():
    m = kws_same(seed=5)
    eng = rc.compile(m)
    X = randn32((3, 30, 5), seed=6)
    L = np.array([30, 17, 4])
    Y = eng.run(X, lengths=L)
    for b in range(3):
        alone = eng.run(X[b:b + 1, :L[b]])
        n = alone.shape[1]
        np.testing.assert_allclose(alone[0], m.forward(X[b:b + 1, :L[b]].astype(np.float64))[0], rtol=0,
                                   atol=1e-5)
        np.testing.assert_array_equal(Y[b, :n], alone[0])
        assert not Y[b, n:].any()


def test_random_stream_cuts_save_restore_and_pickle_keep_the_bits():
    eng = rc.compile(kws_same(seed=7, cell=nn.LSTM))
    X = randn32((2, 41, 5), seed=8)
    Y = eng.run(X)
    rng = np.random.default_rng(0)
    for _ in range(4):
        cut = int(rng.integers(0, 41))
        st = eng.stream(2)
        first, _ = drive(st, X, 0, cut)
        saved = st.state
        assert set(saved) == {"recurrent", "windows", "countdowns", "real_steps"}
        assert saved["real_steps"].shape == (2, 2)   # the two padded poolings
        clone = pickle.loads(pickle.dumps(st))
        other = eng.stream(2)
        other.state = saved
        outs = []
        for s in (st, clone, other):
            rest, _ = drive(s, X, cut)
            body = np.stack(first + rest, 1)
            outs.append(np.concatenate([body, s.flush()], 1))
        for o in outs:
            np.testing.assert_array_equal(o, Y)
    # after flush the layers over time start afresh: the next sequence gives run's bits again
    st = eng.stream(2)
    for _ in range(2):
        rec = st.state["recurrent"]
        got, _ = drive(st, X)
        got = np.concatenate([np.stack(got, 1), st.flush()], 1)
        fresh = eng.stream(2)
        fresh.state = rec   # the recurrent state alone: windows and counters afresh
        want = fresh.run(X)
        np.testing.assert_array_equal(got, want)


def test_a_restored_state_with_bad_counters_is_refused():
    eng = rc.compile(nn.Sequential(nn.AvgPool1d(3, channels=2, stride=1, padding=1), nn.GRU(2, 3, seed=0)))
    st = eng.stream(1)
    s = st.state
    bad = dict(s, real_steps=np.array([[3]]))
    with pytest.raises(ValueError, match=r"state\['real_steps'\]\[:, 0\]: expected values in \[0, 2\], "
                                         r"got \[3, 3\]"):
        st.state = bad
    raw = st._s.raw_window()
    raw[-1] = 1.0   # the pad steps' counter is 0 between calls
    st._s.set_raw_window(raw)
    with pytest.raises(ValueError, match="not valid"):
        st.step(randn32((1, 2)))


def test_models_without_padding_keep_their_bytes_and_state_form():
    m = nn.Sequential(nn.Conv1d(3, 4, 3, padding="causal", seed=1), nn.MaxPool1d(2, channels=4),
                      nn.GRU(4, 5, seed=2))
    eng = rc.compile(m)
    d = read_rnc(eng.data)
    sizes = [struct.unpack_from("<I", eng.data, 64 + 4)[0]]
    assert sizes == [LAYOUT["rec_conv_time"].size]   # no timepad tail
    assert set(eng.stream(1).state) == {"recurrent", "windows", "countdowns"}
    assert eng.stream(1).lookahead == 1 and eng.stream(1).flush().shape == (1, 0, 5)
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data


def test_rnc_round_trip_of_padded_layers():
    eng = rc.compile(kws_same(seed=9))
    d = read_rnc(eng.data)
    f = d["front"]
    assert [(r["kind"], r["pad_left"], r["pad_right"]) for r in f if "pad_left" in r] == [
        ("conv1d", 2, 2), ("max_pool1d", 1, 1), ("conv1d", 1, 1), ("avg_pool1d", 1, 1)]
    assert f[-1]["count_include_pad"] is False
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data
    X = randn32((1, 20, 5))
    np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


def _padded_file():
    """AvgPool1d(3, stride 1, padding 1, count_include_pad=False) > GRU: record 0 with a timepad."""
    return rc.compile(nn.Sequential(nn.AvgPool1d(3, channels=4, stride=1, padding=1, count_include_pad=False),
                                    nn.GRU(4, 5, seed=0))).data


def _edit_timepad(data: bytes, **fields) -> bytes:
    b = bytearray(data)
    size = struct.unpack_from("<I", b, 64 + 4)[0]
    at = 64 + size - LAYOUT["timepad"].size
    for name, value in fields.items():
        off = LAYOUT["timepad"].fields[name].offset if name in LAYOUT["timepad"].fields else int(name[1:])
        struct.pack_into("<I", b, at + off, value)
    return fix_crc(b)


@pytest.mark.parametrize("edit, want", [
    (dict(left=3), "record 0 (pool_time): timepad.left: 3, expected 0..2"),
    (dict(right=0xFFFFFFFF), "record 0 (pool_time): timepad.right: 4294967295, expected 0..2"),
    (dict(flags=2), "record 0 (pool_time): timepad.flags: 0x2 has unknown bits (known: 0x1)"),
    ({"_12": 1}, "record 0 (pool_time): reserved: byte 12 of the 16-byte structure is 0x1"),
])
def test_corrupted_timepad_tails_are_refused_alike(edit, want):
    data = _edit_timepad(_padded_file(), **edit)
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    assert e.value.status == "CORRUPT"
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def test_a_timepad_flag_on_a_max_or_a_convolution_and_a_wrong_size_are_refused_alike():
    mx = rc.compile(nn.Sequential(nn.MaxPool1d(3, channels=4, stride=1, padding=1), nn.GRU(4, 5))).data
    cv = rc.compile(nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.GRU(4, 5))).data
    for data, kind in ((mx, "pool_time"), (cv, "conv_time")):
        bad = _edit_timepad(data, flags=1)
        want = f"record 0 ({kind}): timepad.flags: 0x1 has unknown bits (known: 0x0)"
        with pytest.raises(RncFormatError, match=re.escape(want)):
            check_rnc(bad)
        with pytest.raises(ValueError, match=re.escape(want)):
            rc.load(bad)
    b = bytearray(cv)   # the next record then starts 8 bytes early: both name the same refusal
    struct.pack_into("<I", b, 64 + 4, LAYOUT["rec_conv_time"].size + 8)
    with pytest.raises(RncFormatError) as e:
        check_rnc(fix_crc(b))
    with pytest.raises(ValueError, match=re.escape(str(e.value))):
        rc.load(fix_crc(b))


def test_a_residual_around_a_right_padded_record_is_refused():
    with pytest.raises(ValueError, match="conv_time"):
        rc.compile(nn.Sequential(nn.Residual(nn.Conv1d(4, 4, 3, padding=1)), nn.GRU(4, 5)))


class _TorchSame(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(5, 6, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(6, 6, 5, padding="same")
        self.pool = torch.nn.MaxPool1d(3, stride=2, padding=1)
        self.avg = torch.nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False)
        self.gru = torch.nn.GRU(6, 7, batch_first=True)
        self.head = torch.nn.Linear(7, 2)

    def forward(self, x):
        y = torch.relu(self.conv(x.transpose(1, 2)))
        y = self.avg(self.pool(self.conv2(y))).transpose(1, 2)
        return self.head(self.gru(y)[0])


def test_torch_fx_import_of_padded_conv_and_pooling_matches_torch_run_and_stream():
    torch.manual_seed(0)
    tm = _TorchSame().eval()
    X = randn32((2, 31, 5), seed=12)
    with torch.no_grad():
        want = tm(torch.as_tensor(X)).numpy()
    assert want.shape == (2, 16, 2)
    eng = rc.compile(rc.io.from_torch(tm))
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    got, _, _ = stream_all(eng, X)
    np.testing.assert_array_equal(got, eng.run(X))


def test_keras_same_padding_matches_keras_run_and_stream(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    km = keras.Sequential([
        keras.Input((None, 5)),
        keras.layers.Conv1D(6, 4, padding="same", activation="relu"),
        keras.layers.MaxPooling1D(2, padding="same"),          # stride 2: ceil(T / 2) outputs
        keras.layers.AveragePooling1D(3, strides=1, padding="same"),
        keras.layers.Conv1D(6, 3, padding="same", dilation_rate=2),
        keras.layers.GRU(7, return_sequences=True),
        keras.layers.Dense(2),
    ])
    path = tmp_path / "same.keras"
    km.save(path)
    eng = rc.compile(rc.io.from_keras(str(path)))
    for T in (30, 31):
        X = randn32((2, T, 5), seed=T)
        want = np.asarray(km.predict(X, verbose=0))
        assert want.shape == (2, -(-T // 2), 2)
        Y = eng.run(X)
        np.testing.assert_allclose(Y, want, rtol=0, atol=1e-5)
        got, _, _ = stream_all(eng, X)
        np.testing.assert_array_equal(got, Y)


@pytest.mark.parametrize("layer", [nn.Conv1d(5, 8, 3, padding=1, seed=1),
                                   nn.Conv1d(5, 8, 3, padding=0, seed=1),
                                   nn.MaxPool1d(3, channels=5, stride=1, padding=1),
                                   nn.AvgPool1d(2, channels=5, ceil_mode=True)])
def test_padding_over_time_in_a_q8_file_runs_as_the_q8_spec_says(layer):
    """A padded conv_time / pool_time in a q8 file (once refused: TIMEPAD_Q8): rc.compile writes
    its timepad tail, the C loader and read_rnc both accept the file and read the same padding, and
    the engine gives the bits of the NumPy q8 spec (rnncore.quant.front, the cells' C activations
    swapped in), with PyTorch's output length, close to the f32 file of the same model
    (tests/test_engine_q8_timepad.py covers the rest)."""
    import gen_vectors
    from rnc_mutations import verdicts

    from rnncore.quant.reference import qmodel_from_rnc

    out = layer.record().get("out_channels", 5)
    m = nn.Sequential(layer, nn.GRU(out, 6, seed=2))
    e8 = rc.compile(m, precision="q8")
    assert e8.precision == "q8" and verdicts(e8.data) == (None, None)
    d = read_rnc(e8.data)
    P = layer.dilation * (layer.kernel_size - 1)
    pads = (layer.pad_left, layer.pad_right) if not layer.ceil_mode else (0, layer.stride - 1)
    assert (d["front"][0]["pad_left"], d["front"][0]["pad_right"]) == pads
    assert e8.stream(1).lookahead == P - pads[0]
    X = randn32((3, 9, 5), seed=21)
    lengths = np.array([9, 5, 2])
    want, _ = gen_vectors.q8_reference_forward(qmodel_from_rnc(d), X, lengths)
    Y = e8.run(X, lengths)
    np.testing.assert_array_equal(Y, want)
    assert Y.shape == m.forward(X.astype(np.float64)).shape   # PyTorch's length (this file's tests)
    y32 = rc.compile(m).run(X, lengths)
    assert Y.shape == y32.shape
    err = np.abs(Y - y32).max()
    assert 0 < err < 0.03 * np.abs(y32).max(), err


@pytest.mark.parametrize("isa", rc.isa()["available"])
def test_every_isa_path_streams_and_flushes_with_the_bits_of_its_run(isa):
    m = kws_same(seed=11)
    eng = rc.compile(m)
    eng.set_isa(isa)
    X = randn32((2, 25, 5), seed=15)
    Y = eng.run(X)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)
    got, _, _ = stream_all(eng, X)
    np.testing.assert_array_equal(got, Y)


def test_export_c_of_a_padded_model_flushes_at_the_end_of_its_input(tmp_path):
    m = kws_same(seed=13, cell=nn.LSTM)
    eng = rc.compile(m)
    X = randn32((29, 5), seed=14)
    want = m.forward(X[None].astype(np.float64))[0]
    assert want.shape == (8, 3)
    out = exported_outputs(tmp_path, eng.data, X, "same")
    for mode in ("step", "run"):
        np.testing.assert_allclose(out[mode], want, rtol=0, atol=1e-5, err_msg=mode)
    np.testing.assert_array_equal(out["step"], eng.run(X[None])[0])
