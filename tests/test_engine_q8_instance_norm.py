"""instance_norm records (kind 16) in a q8 file (docs/q8-contract.md, "instance_norm"): the record
stays float32, the records around it are int8 as in any q8 front-end. The C engine equals the NumPy
q8 spec (rnncore.quant.front.instance_norm_seq, per_sequence) bit for bit on every ISA path of this
CPU, on small random models (hypothesis over shapes, lengths and where the records sit) and on
pyannote's PyanNet; the spec's record against PyTorch's InstanceNorm1d and against its equations
written out by hand; PyanNet q8 on sample.wav against PyTorch float64 and the f32 engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import ISAS, c_equals_q8_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.quant.front import instance_norm_seq, step_records

F32 = np.float32
HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _by_hand(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """The contract's equations for one sequence ``x (T, C)`` float32, one operation at a time
    (Python floats are float64; np.float32 rounds each float32 operation)."""
    T, C = x.shape
    y = np.empty_like(x)
    for c in range(C):
        s = 0.0
        for t in range(T):
            s += float(x[t, c])
        mu = F32(s / T)
        ss = 0.0
        for t in range(T):
            d = F32(x[t, c] - mu)
            ss += float(d) * float(d)
        r = F32(1) / np.sqrt(F32(ss / T) + F32(eps))
        for t in range(T):
            y[t, c] = F32(F32(F32(x[t, c] - mu) * r) * w[c]) + b[c]
    return y


def test_the_spec_record_is_its_equations_and_pytorch_instance_norm():
    """Bit for bit the equations written out by hand (float64 sums in step order); PyTorch's
    InstanceNorm1d in float64 within the contract's roundings: the mean rounded to float32 moves
    every row by at most half its ulp (times the channel's ``weight / std``: 1e-4 on the channel of
    mean 10 and deviation 1e-3), and the rows' own few float32 operations (8 eps of |y|), twice
    that bound."""
    rng = np.random.default_rng(0)
    x = (rng.normal(0, 1, (2, 37, 3)) * [1.0, 1e3, 1e-3] + [0.5, -2e3, 10.0]).astype(F32)
    w, b = rng.uniform(0.5, 1.5, 3).astype(F32), rng.normal(0, 0.3, 3).astype(F32)
    rec = {"kind": "instance_norm", "features": 3, "eps": F32(1e-5), "tensors": {"weight": w, "bias": b}}
    y = instance_norm_seq(rec, x)
    for n in range(2):
        np.testing.assert_array_equal(y[n], _by_hand(x[n], w, b, 1e-5))
    m = torch.nn.InstanceNorm1d(3, eps=float(F32(1e-5)), affine=True).double()
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w.astype(np.float64)))
        m.bias.copy_(torch.from_numpy(b.astype(np.float64)))
        ref = m(torch.from_numpy(x.astype(np.float64)).transpose(1, 2)).transpose(1, 2).numpy()
    xd = x.astype(np.float64)
    mu = xd.mean(axis=1, keepdims=True)
    r = 1 / np.sqrt(((xd - mu) ** 2).mean(axis=1, keepdims=True) + float(F32(1e-5)))
    bound = np.abs(w) * r * np.spacing(np.abs(mu).astype(F32)) / 2 + 8 * np.finfo(F32).eps * (np.abs(ref) + 1)
    assert np.all(np.abs(y - ref) <= 2 * bound), np.abs(y - ref).max()
    assert np.abs(y - ref)[..., 2].max() > 1e-5     # the rounded mean's share: the bound is not loose
    # lengths: each sequence normalised over its own steps, zeros after them (per_sequence)
    yl = step_records([rec], x, np.array([37, 5]))
    np.testing.assert_array_equal(yl[0], y[0])
    np.testing.assert_array_equal(yl[1, :5], _by_hand(x[1, :5], w, b, 1e-5))
    assert not yl[1, 5:].any()


def test_the_spec_refuses_a_row_alone():
    rec = {"kind": "instance_norm", "features": 2, "eps": 1e-5}
    with pytest.raises(ValueError, match=r"instance_norm record needs whole sequences \(B, T, F\)"):
        step_records([rec], np.zeros((4, 2), F32))


def _model(data, seed: int):
    """A random front-end with one or two InstanceNorm1d (first, after a strided Conv1d, after a max
    pooling, before the recurrent layer), a per-step Linear or not, then a GRU or (bidirectional)
    LSTM and a head."""
    nn = rc.nn
    C = data.draw(st.integers(1, 4), "C")
    C2 = data.draw(st.integers(1, 5), "C2")
    k = data.draw(st.integers(1, 4), "k")
    s = data.draw(st.integers(1, 3), "stride")
    rng = np.random.default_rng(seed)
    layers, feat = [], C
    if data.draw(st.booleans(), "norm first"):
        layers.append(nn.InstanceNorm1d(C, affine=True))
    layers.append(nn.Conv1d(C, C2, k, stride=s, seed=seed))
    feat = C2
    if data.draw(st.booleans(), "abs"):
        layers.append(nn.Abs())
    if data.draw(st.booleans(), "pool"):
        layers.append(nn.MaxPool1d(2, feat, stride=2))
    layers.append(nn.InstanceNorm1d(feat, affine=data.draw(st.booleans(), "affine")))
    layers.append(nn.LeakyReLU())
    if data.draw(st.booleans(), "linear"):
        layers.append(nn.Linear(feat, 6, seed=seed + 1))
        feat = 6
        if data.draw(st.booleans(), "norm last"):
            layers.append(nn.InstanceNorm1d(feat, affine=True))
    H = data.draw(st.integers(1, 9), "H")
    if data.draw(st.booleans(), "lstm"):
        layers.append(nn.LSTM(feat, H, bidirectional=True, seed=seed + 2))
        H *= 2
    else:
        layers.append(nn.GRU(feat, H, seed=seed + 2))
    layers.append(nn.Linear(H, 3, seed=seed + 3))
    m = nn.Sequential(*layers)
    for layer in layers:
        if isinstance(layer, nn.InstanceNorm1d) and "weight" in layer.params:
            layer.params["weight"] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["bias"] = rng.normal(0, 0.3, layer.num_features)
    return m, C


@HYP
@given(data=st.data(), B=st.integers(1, 3), T=st.integers(1, 60), seed=st.integers(0, 2**31 - 8))
def test_random_models_equal_the_numpy_q8_spec_on_every_isa(data, B, T, seed):
    """Lengths from 0 to T (garbage past them); channels of different levels (the records normalise
    them: the int8 conv after reads rows of any scale)."""
    m, C = _model(data, seed)
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 1, (B, T, C)) * rng.uniform(0.01, 100, C) + rng.normal(0, 5, C)).astype(F32)
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B), "lengths"))
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3
    e = rc.compile(m, precision="q8")
    assert "instance_norm" in e.describe()
    c_equals_q8_reference(e, x, lengths)


def test_calibrated_scales_measure_the_rows_after_the_records():
    """rc.compile(..., calibration=X): the float forward the calibration runs normalises each
    sequence over its own steps (float_step_records per sequence); the calibrated engine equals the
    spec on every ISA, and the scales are those of the float model's rows (rc.nn forward)."""
    from test_engine_pyannet import _small

    from rnncore.quant.front import float_step_records

    m = _small(2)
    rng = np.random.default_rng(4)
    x = (rng.normal(0, 1, (16, 90, 3)) * [1.0, 3.0, 0.2] + [0.5, -2.0, 10.0]).astype(F32)
    lengths = rng.integers(10, 91, 16)
    lengths[0] = 90
    front = [m[i].record() for i in range(5)]   # the records before the GRU
    rows = float_step_records(front, x, lengths)
    for b, n in enumerate(lengths):
        want = x[b:b + 1, :n].astype(np.float64)
        for i in range(5):
            want = m[i].forward(want)
        np.testing.assert_allclose(rows[b, :want.shape[1]], want[0], rtol=0, atol=1e-12)
    e = rc.compile(m, precision="q8", calibration=(x, lengths))
    c_equals_q8_reference(e, x, lengths)


def test_rnncore_quantize_writes_the_same_file_as_compile(tmp_path):
    """``rnncore quantize`` of the f32 file: the bytes of ``rc.compile(m, "q8")``, the spec's bits."""
    from test_engine_pyannet import _small

    from rnncore.cli import main

    m = _small(1)
    (tmp_path / "m.rnc").write_bytes(rc.compile(m).data)
    assert main(["quantize", str(tmp_path / "m.rnc"), "-o", str(tmp_path / "q.rnc")]) == 0
    data = (tmp_path / "q.rnc").read_bytes()
    assert data == rc.compile(m, precision="q8").data
    x = np.random.default_rng(0).normal(0, 1, (2, 50, 3)).astype(F32)
    c_equals_q8_reference(rc.load(data), x, np.array([50, 21]))


# ------------------------------------------------------------------------------------------
# PyanNet (whisperx's pyannote segmentation model)

WINDOW = 160000


@pytest.fixture(scope="module")
def pyannet_engines():
    """PyanNet compiled f32 and q8 from the fixed-shape export (tests/test_engine_pyannet.py), and
    its graph."""
    from test_engine_pyannet import _export

    from rnncore.io import from_onnx

    g = from_onnx(_export(False), dtype="float32")
    return rc.compile(g), rc.compile(g, precision="q8"), g


@pytest.fixture(scope="module")
def windows(sample_audio) -> np.ndarray:
    """sample.wav's three 10 s windows as ``(3, 160000, 1)`` steps."""
    return np.ascontiguousarray(sample_audio[:3 * WINDOW].reshape(3, WINDOW, 1), dtype=F32)


def test_pyannet_q8_equals_the_numpy_q8_spec_on_every_isa(pyannet_engines, windows):
    """The whole model (4 instance_norm records, the sinc and two int8 conv_time records, LSTM(60,
    128, 4 layers, bidirectional), the heads) on the first window cut to 3 s and a second sequence of
    1.7 s: bit for bit on every ISA path."""
    _, q8, _ = pyannet_engines
    x = np.ascontiguousarray(windows[:2, :48000])
    c_equals_q8_reference(q8, x, np.array([48000, 27200]))


def test_pyannet_q8_on_sample_wav_against_pytorch_float64(pyannet_engines, windows):
    """Three 10 s windows (589 frames x 3 classes each) against PyTorch float64: per window the
    largest and mean |p - p64|, the class decisions (p > 0.5) and the speech-activity decisions (any
    class) that differ. Measured (AMD EPYC Zen 4; docs/importers.md, "PyanNet in q8"):

    ======  ===================  ==================  ==================  ==============  ==================
    window  q8 max / mean error  q8 class decisions  q8 speech frames    f32 engine      q8, sinc conv f32
    ======  ===================  ==================  ==================  ==============  ==================
    0       0.57 / 0.024         26 of 1767          26 of 589           0, 0 (1.5e-4)   0.0010, 1, 1
    1       0.99 / 0.33          634 of 1767         7 of 589            0, 0 (7.7e-3)   0.050, 121, 0
    2       0.49 / 0.016         6 of 1767           3 of 589            0, 0 (1.7e-4)   0.0036, 3, 0
    ======  ===================  ==================  ==================  ==============  ==================

    Window 1 is the one where every float32 engine is 1e-2 from float64 (tests/test_engine_pyannet.py):
    the model amplifies small changes there, and q8's are not small (the speakers' classes move:
    412 decisions differ with q8's classes in their best order, speech activity hardly). Most of
    q8's error is the int8 sinc convolution on the waveform (its 251 taps as one int8 vector: the
    quantisation noise fills the quiet bands, which the instance_norm after it scales up; with that
    convolution kept float32, ``front_f32=["conv_time:0"]``, the last column: mean error, class
    decisions, speech frames; with the three convolutions 0.0099). The limits are twice the measured
    figures, at least 2 decisions (a change of rounding moves decisions near 0.5; a regression of the
    q8 path moves them all); the f32 engine must have none of those decisions differ, and the sinc
    convolution kept float32 must be closer to float64 than all-int8 on the three windows."""
    from test_pyannet import PyanNet, checkpoint

    m = PyanNet()
    m.load_state_dict(checkpoint()["state_dict"], strict=True)
    m = m.eval().double()
    with torch.no_grad():
        r64 = m(torch.from_numpy(windows.transpose(0, 2, 1).astype(np.float64))).numpy()
    f32, q8, g = pyannet_engines
    sinc = rc.compile(g, precision="q8", front_f32=["conv_time:0"])
    y32, y8, ys = f32.run(windows), q8.run(windows), sinc.run(windows)
    assert y8.shape == y32.shape == ys.shape == r64.shape == (3, 589, 3)
    d64 = r64 > 0.5
    limits = [(0.048, 52, 52), (0.66, 1268, 14), (0.033, 12, 6)]   # mean error, classes, speech frames
    # the sinc convolution kept float32: measured (0.0010, 1, 1), (0.050, 121, 0), (0.0036, 3, 0)
    limits_sinc = [(0.0021, 2, 2), (0.10, 242, 2), (0.0072, 6, 2)]
    for b in range(3):
        stats = {}
        for name, y in (("q8", y8), ("f32", y32), ("q8 sinc f32", ys)):
            e, d = np.abs(y[b] - r64[b]), y[b] > 0.5
            stats[name] = (e.mean(), int((d != d64[b]).sum()), int((d.any(-1) != d64[b].any(-1)).sum()))
            print(f"window {b} {name}: vs PyTorch float64 max {e.max():.3g} mean {e.mean():.3g}; class "
                  f"decisions differing {stats[name][1]} of {d.size}, speech activity {stats[name][2]} of "
                  f"{d.shape[0]} frames")
        assert stats["f32"][1:] == (0, 0)
        assert all(v <= lim for v, lim in zip(stats["q8"], limits[b], strict=True)), (b, stats["q8"])
        assert all(v <= lim for v, lim in zip(stats["q8 sinc f32"], limits_sinc[b], strict=True)), \
            (b, stats["q8 sinc f32"])
    # closer to float64 than all-int8 on the three windows: mean error, class decisions, speech frames
    e8, es = np.abs(y8 - r64).mean(), np.abs(ys - r64).mean()
    assert es < 0.25 * e8, (es, e8)
    assert ((ys > 0.5) != d64).sum() < 0.25 * ((y8 > 0.5) != d64).sum()
    assert ((ys > 0.5).any(-1) != d64.any(-1)).sum() < ((y8 > 0.5).any(-1) != d64.any(-1)).sum()
    assert d64.any(-1).sum() > 100 and (~d64.any(-1)).sum() > 100    # speech and silence both met


def test_choose_front_f32_keeps_pyannets_sinc_convolution(pyannet_engines, windows):
    """On the first 3 s of the first window, keeping the sinc convolution float32 brings the q8
    error within the budget (measured on the whole first window: 1.3 x the floor of the three
    convolutions float32, all-int8 31 x); the others alone do not."""
    from rnncore.quant import choose_front_f32

    _, _, g = pyannet_engines
    ch = choose_front_f32(g, np.ascontiguousarray(windows[:1, :48000]))
    assert ch.keep == ["conv_time:0"], str(ch)
    assert ch.errors[("conv_time:1",)] > 2 * ch.floor and ch.errors[("conv_time:2",)] > 2 * ch.floor, str(ch)


def test_pyannet_q8_lengths_run_each_sequence_alone(pyannet_engines, windows):
    """A padded batch (garbage past the lengths) gives each sequence's rows of its cut window run
    alone, bit for bit, zeros after them, on every ISA path."""
    _, q8, _ = pyannet_engines
    lengths = np.array([64000, 40000], np.int32)
    x = np.ascontiguousarray(windows[1:3, :64000]).copy()
    x[1, 40000:] = 0.7
    for isa in ISAS:
        q8.set_isa(isa)
        y = q8.run(x, lengths)
        for b, n in enumerate(lengths):
            alone = q8.run(np.ascontiguousarray(x[b:b + 1, :n]))[0]
            assert np.array_equal(y[b, :len(alone)], alone) and not y[b, len(alone):].any(), isa
