"""A conv_time record kept float32 in a q8 file (docs/q8-contract.md, "A frame_conv or conv_time kept
in float32"): ``rc.compile(model, "q8", front_f32=["conv_time:0"])``, ``rnncore quantize --front-f32
conv_time:0`` and :func:`rnncore.quant.choose_front_f32` measuring conv_time records.

A float32 product has no bit-exact NumPy form in general (the ISA's f32 rows sum in their own
orders), so the engine is checked bit for bit where the sums are exact: the first record a Conv1d
over time whose weights, bias and inputs are multiples of 1/16 small enough that every product and
partial sum is a float32 (about 12 significant bits), which every summation order gives alike. Its
output is then the float64 convolution (checked to be float32), and the rest of the model must be
the NumPy q8 spec of the rest's q8 file fed that output, on every ISA path."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _helpers import ISAS, assert_stream_restores, gen_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.quant.reference import qmodel_from_rnc

F32 = np.float32
#: examples of the random models (CI: 40, about 1 s; RNNCORE_FUZZ_EXAMPLES for a long local campaign)
HYP = settings(max_examples=int(os.environ.get("RNNCORE_FUZZ_EXAMPLES", "40")), deadline=None,
               derandomize=True, suppress_health_check=[HealthCheck.too_slow])
nn = rc.nn


def _dyadic(rng: np.random.Generator, shape, top: int) -> np.ndarray:
    """Integers in [-top, top] over 16: exact in float32, and so are their small sums."""
    return rng.integers(-top, top + 1, shape) / 16.0


def _model(data, seed: int):
    """Conv1d over time (dyadic weights: kept float32) first, then PyanNet-like records (a max
    pooling, an instance_norm, a per-step Linear or a second Conv1d, abs / LeakyReLU), then a GRU or
    a bidirectional LSTM and a head."""
    C = data.draw(st.integers(1, 3), "C")
    C2 = data.draw(st.integers(1, 5), "C2")
    k = data.draw(st.integers(1, 5), "k")
    s = data.draw(st.integers(1, 3), "stride")
    padding = data.draw(st.sampled_from(["valid", "causal"]) if s == 1 else st.just("valid"), "padding")
    rng = np.random.default_rng(seed)
    conv = nn.Conv1d(C, C2, k, stride=s, padding=padding, seed=seed)
    conv.params["weight"] = _dyadic(rng, conv.params["weight"].shape, 8)
    conv.params["bias"] = _dyadic(rng, conv.params["bias"].shape, 8)
    rest, feat = [], C2
    nxt = data.draw(st.sampled_from(["pool", "norm", "linear", "conv"]), "after the conv")
    if nxt == "pool":
        rest.append(nn.MaxPool1d(2, feat, stride=2))
    elif nxt == "norm":
        rest.append(nn.InstanceNorm1d(feat, affine=True))
    elif nxt == "linear":   # a frame_conv after the conv_time
        rest.append(nn.Linear(feat, 6, seed=seed + 1))
        feat = 6
    else:   # a second conv_time, int8
        rest.append(nn.Conv1d(feat, 4, 2, seed=seed + 1))
        feat = 4
    if data.draw(st.booleans(), "abs"):
        rest.append(nn.Abs())
    rest.append(nn.LeakyReLU())
    H = data.draw(st.integers(1, 8), "H")
    if data.draw(st.booleans(), "lstm"):
        rest.append(nn.LSTM(feat, H, bidirectional=True, seed=seed + 2))
        H *= 2
    else:
        rest.append(nn.GRU(feat, H, seed=seed + 2))
    rest.append(nn.Linear(H, 3, seed=seed + 3))
    for layer in rest:
        if isinstance(layer, nn.InstanceNorm1d):
            layer.params["weight"] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["bias"] = rng.normal(0, 0.3, layer.num_features)
    return conv, rest, C


@HYP
@given(data=st.data(), B=st.integers(1, 3), T=st.integers(1, 50), seed=st.integers(0, 2**31 - 8))
def test_a_float32_conv_time_in_q8_equals_its_exact_sums_then_the_q8_spec_on_every_isa(data, B, T, seed):
    """Lengths from 0 to T, garbage (not dyadic) past them; the file's other records are the
    all-int8 file's bytes."""
    conv, rest, C = _model(data, seed)
    m = nn.Sequential(conv, *rest)
    rng = np.random.default_rng(seed)
    x = _dyadic(rng, (B, T, C), 16).astype(F32)
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B), "lengths"))
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3 / 3
    e = rc.compile(m, precision="q8", front_f32=["conv_time:0"])
    d, d8 = read_rnc(e.data), read_rnc(rc.compile(m, precision="q8").data)
    assert d["front"][0].get("precision") == "f32" and "qweight" not in d["front"][0]["tensors"]
    d8["front"][0] = d["front"][0]
    assert write_rnc(d8) == e.data   # everything else as in the all-int8 file
    q_rest = qmodel_from_rnc(read_rnc(rc.compile(nn.Sequential(*rest), precision="q8").data))
    refs = []
    for b, n in enumerate(lengths):
        if n + conv.pad_left < conv.kernel_size:   # fewer steps than one window: no output
            refs.append(np.zeros((0, 3), F32))
            continue
        y1 = conv.forward(x[b:b + 1, :n].astype(np.float64))
        assert np.array_equal(y1.astype(F32), y1)   # the sums are exact: any order gives them
        y1 = y1.astype(F32)
        refs.append(gen_vectors.q8_reference_forward(q_rest, y1, np.array([y1.shape[1]]))[0][0])
    for isa in ISAS:
        e.set_isa(isa)
        y = e.run(x, lengths)
        for b, ref in enumerate(refs):
            np.testing.assert_array_equal(y[b, :len(ref)], ref, err_msg=isa)
            assert not y[b, len(ref):].any(), isa


def _mixed(seed: int = 0):
    """conv_time, frame_conv (a per-step Linear), conv_time: both kinds in one front-end."""
    return nn.Sequential(nn.Conv1d(3, 5, 4, stride=2, seed=seed), nn.LeakyReLU(),
                         nn.Linear(5, 6, seed=seed + 1), nn.Conv1d(6, 4, 3, seed=seed + 2),
                         nn.GRU(4, 8, seed=seed + 3), nn.Linear(8, 2, seed=seed + 4))


def test_front_f32_items_name_frame_convs_and_conv_times():
    """Integers keep numbering the frame_convs (here front record 2, not the first conv_time);
    ``"conv_time:n"`` the n-th conv_time; the file is write_rnc's of the description by hand."""
    m = _mixed()
    e8, e32 = rc.compile(m, precision="q8"), rc.compile(m)
    kinds = [r["kind"] for r in read_rnc(e8.data)["front"]]
    assert kinds == ["conv1d", "leaky_relu", "frame_conv1d", "conv1d"]

    def marked(e):
        return [i for i, r in enumerate(read_rnc(e.data)["front"]) if r.get("precision") == "f32"]

    assert marked(rc.compile(m, precision="q8", front_f32=[0])) == [2]
    assert rc.compile(m, precision="q8", front_f32=["frame_conv:0"]).data == \
        rc.compile(m, precision="q8", front_f32=[0]).data
    e = rc.compile(m, precision="q8", front_f32=["conv_time:1", 0])
    assert marked(e) == [2, 3]
    assert marked(rc.compile(m, precision="q8", front_f32=("conv_time:0", "conv_time:1", 0))) == [0, 2, 3]
    d8, d32 = read_rnc(e8.data), read_rnc(e32.data)
    for i in (2, 3):
        d8["front"][i] = {**d8["front"][i], "tensors": dict(d32["front"][i]["tensors"]), "precision": "f32"}
    assert write_rnc(d8) == e.data
    x = np.random.default_rng(1).standard_normal((2, 40, 3)).astype(F32)
    y, y8, y32 = e.run(x), e8.run(x), e32.run(x)
    assert np.abs(y - y8).max() > 0 and np.abs(y - y32).max() < 0.1 * np.abs(y32).max()
    with pytest.raises(ValueError, match=r"front_f32: expected conv_time numbers in \[0, 2\) \(the model "
                                         r"has 2 conv_time records\), got 'conv_time:2'"):
        rc.compile(m, precision="q8", front_f32=["conv_time:2"])
    for bad in ("conv_time:-1", "conv_time:", "conv_time:x", "conv_time:\u00b2"):
        with pytest.raises(ValueError, match="front_f32: expected conv_time numbers in"):
            rc.compile(m, precision="q8", front_f32=[bad])
    with pytest.raises(ValueError, match=r"front_f32: expected frame_conv numbers in \[0, 1\) \(the model "
                                         r"has 1 frame_conv records\), or 'conv_time:N' \(2 conv_time "
                                         r"records\), got 1"):
        rc.compile(m, precision="q8", front_f32=[1])
    for bad in ("instance_norm:0", "leaky_relu:0", "conv_time", "0"):
        with pytest.raises(ValueError, match=r"front_f32: expected an integer \(a frame_conv number\) or "
                                             r"'frame_conv:N' / 'conv_time:N'.*, got '"):
            rc.compile(m, precision="q8", front_f32=[bad])
    with pytest.raises(TypeError, match="front_f32: expected None or a sequence"):
        rc.compile(m, precision="q8", front_f32="conv_time:0")
    with pytest.raises(ValueError, match=r"front_f32: .*precision='q8', got precision='q4'"):
        rc.compile(m, precision="q4", front_f32=["conv_time:0"])


def test_a_float32_conv_time_streams_as_the_whole_sequence_runs():
    """``run`` takes a float32 conv_time's products over the whole sequence, a stream one step at a
    time: the same sums, bit for bit, on every ISA path; the state saves and restores."""
    m = nn.Sequential(nn.Conv1d(3, 5, 4, padding="causal", seed=0), nn.LeakyReLU(), nn.Linear(5, 6, seed=1),
                      nn.Conv1d(6, 4, 3, padding="causal", seed=2), nn.GRU(4, 8, seed=3),
                      nn.Linear(8, 2, seed=4))
    x = np.random.default_rng(1).standard_normal((2, 40, 3)).astype(F32)
    for keep in (["conv_time:0"], ["conv_time:0", "conv_time:1", 0]):
        e = rc.compile(m, "q8", front_f32=keep)
        for isa in ISAS:
            e.set_isa(isa)
            assert_stream_restores(e, x, e.run(x), 17, f"{keep} {isa}")


def test_cli_quantize_front_f32_conv_time(tmp_path):
    from rnncore.cli import main

    m = _mixed(3)
    m32, out = str(tmp_path / "m32.rnc"), tmp_path / "q.rnc"
    (tmp_path / "m32.rnc").write_bytes(rc.compile(m).data)
    assert main(["quantize", m32, "-o", str(out), "--front-f32", "conv_time:1", "0"]) == 0
    assert out.read_bytes() == rc.compile(m, "q8", front_f32=["conv_time:1", 0]).data
    with pytest.raises(SystemExit, match=r"--front-f32 conv_time:2: expected conv_time numbers in \[0, 2\)"):
        main(["quantize", m32, "-o", str(out), "--front-f32", "conv_time:2"])
    with pytest.raises(SystemExit, match=r"--front-f32 pool_time:0: expected an integer"):
        main(["quantize", m32, "-o", str(out), "--front-f32", "pool_time:0"])


def test_choose_front_f32_measures_conv_time_records():
    """Input channel 0 is always zero and the first conv's weights on it are huge: they set its rows'
    int8 scales, so its live weights round to 0 in int8 while its float32 output is unchanged. That
    conv_time is the one kept in float32."""
    from rnncore.quant import choose_front_f32

    m = _mixed(5)
    w = m[0].params["weight"]   # (5, 3, 4)
    w[:, 0, :] = 500 * np.abs(w).max()
    x = np.random.default_rng(7).standard_normal((4, 40, 3)).astype(F32)
    x[..., 0] = 0
    c = choose_front_f32(m, x)
    assert c.keep == ["conv_time:0"], str(c)
    assert set(c.errors) >= {(), ("conv_time:0", 0, "conv_time:1"), ("conv_time:0",), (0,), ("conv_time:1",)}
    e, e32 = rc.compile(m, "q8", front_f32=c.keep), rc.compile(m)
    assert c.errors[("conv_time:0",)] == pytest.approx(float(np.abs(e.run(x) - e32.run(x)).mean()), rel=1e-6)
    assert c.errors[("conv_time:0",)] <= 2 * c.floor < c.errors[()]
    assert "keep in f32: ['conv_time:0']" in str(c)
