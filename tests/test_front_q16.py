"""The 16 x 16 frame_conv's NumPy spec (rnncore.quant.front.frame_conv_q16; docs/q8-contract.md,
"Which to keep"): int16 codes of the row and the weights meet their rounding bounds, the int64
sums equal NumPy's integer arithmetic, float32(acc) is the nearest float32, the convolution is
within its quantisation bound of an independent float64 loop, and Silero VAD v6 with its five
frame_convs in this form (the LSTM and head q8) meets the issue's target on eight variants of a
real recording against onnxruntime."""

import pathlib
import sys

import numpy as np
import pytest

from rnncore.quant.front import frame_conv_q16, step_record
from rnncore.quant.scheme import (
    epilogue,
    int_matmul16,
    quantize_activation16,
    quantize_weights16,
)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))


def test_quantize_activation16_rounding_bound_and_extremes():
    rng = np.random.default_rng(0)
    v = (rng.standard_normal((6, 300)) * np.array([1e-4, 1e-2, 1, 100, 1e4, 0])[:, None]).astype(np.float32)
    q, s = quantize_activation16(v)
    assert q.dtype == np.int16 and s.dtype == np.float32
    m = np.abs(v.astype(np.float64)).max(axis=1)
    np.testing.assert_allclose(s[:5], m[:5] / 32767, rtol=2**-23)
    assert s[5] == 0 and not q[5].any()
    err = np.abs(q.astype(np.float64) * s[:, None] - v)
    assert np.all(err[:5] <= s[:5, None] * (0.5 + 2**-20))    # half a step (+ float32 rounding)
    assert np.all(np.abs(q[:5]).max(axis=1) == 32767) and np.all(np.abs(q) <= 32767)
    # float64 reference of the rule: within one code (the float32 product's rounding)
    ref = np.rint(v[:5].astype(np.float64) * (32767 / m[:5, None]))
    assert np.abs(q[:5] - ref).max() <= 1 and np.mean(q[:5] == ref) > 0.99
    with pytest.raises(ValueError, match="quantize_activation16: input contains NaN"):
        quantize_activation16(np.array([1.0, np.nan], np.float32))


def test_quantize_weights16_per_row():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((7, 50)).astype(np.float32) * np.logspace(-3, 2, 7, dtype=np.float32)[:, None]
    w[3] = 0
    wq, s = quantize_weights16(w)
    assert wq.dtype == np.int16 and s[3] == 0 and not wq[3].any()
    rows = [0, 1, 2, 4, 5, 6]
    assert np.all(np.abs(wq[rows]).max(axis=1) == 32767)
    err = np.abs(wq.astype(np.float64) * s[:, None] - w)
    assert np.all(err <= s[:, None] * (0.5 + 2**-20))


def test_int_matmul16_exact_beyond_int32():
    rng = np.random.default_rng(2)
    K = 387                                               # Silero's conv 1: 129 channels x 3 taps
    q = rng.integers(-32767, 32768, (5, K)).astype(np.int16)
    w = rng.integers(-32767, 32768, (4, K)).astype(np.int16)
    q[0], w[0] = 32767, 32767                             # 387 * 32767**2 > 2**38
    acc = int_matmul16(q, w)
    assert acc.dtype == np.int64
    np.testing.assert_array_equal(acc, np.einsum("nk,rk->nr", q.astype(np.int64), w.astype(np.int64)))
    assert acc[0, 0] == K * 32767 * 32767
    with pytest.raises(TypeError, match="int_matmul16: both operands must be int16, got int8"):
        int_matmul16(q.astype(np.int8), w)


def test_epilogue_rounds_int64_sums_to_the_nearest_float32():
    acc = np.array([2**24 + 1, 2**24 + 3, -(2**31) - 129, 2**38 + 2**14 + 1, 415_558_367_123, 7], np.int64)
    y = epilogue(acc[None], np.ones(1, np.float32), np.ones(len(acc), np.float32), None)[0]
    for a, f in zip(acc.tolist(), y, strict=True):
        lo, hi = np.nextafter(f, np.float32(-np.inf)), np.nextafter(f, np.float32(np.inf))
        d = abs(int(f) - a)                               # float32 of these magnitudes: integers
        assert d <= abs(int(lo) - a) and d <= abs(int(hi) - a), (a, f)


def _conv_loop(x, w, b, ci, L, k, stride, dilation, groups, pl, pr, reflect):
    """An independent float64 Conv1d of one frame per row (a loop over taps)."""
    co = w.shape[0]
    xs = x.reshape(len(x), ci, L).astype(np.float64)
    lout = (L + pl + pr - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((len(x), co, lout))
    cg, cog = ci // groups, co // groups
    for o in range(co):
        g = o // cog
        for lo in range(lout):
            for c in range(cg):
                for j in range(k):
                    p = lo * stride + j * dilation - pl
                    if reflect:
                        p = -p if p < 0 else (2 * (L - 1) - p if p >= L else p)
                    elif p < 0 or p >= L:
                        continue
                    y[:, o, lo] += w[o, c, j] * xs[:, g * cg + c, p]
    return y + b[None, :, None]


@pytest.mark.parametrize("geom", [
    dict(ci=1, co=6, L=64, k=16, stride=4, dilation=1, groups=1, pl=0, pr=0, reflect=False),
    dict(ci=4, co=6, L=20, k=3, stride=2, dilation=1, groups=2, pl=1, pr=1, reflect=False),
    dict(ci=3, co=5, L=17, k=3, stride=1, dilation=2, groups=1, pl=2, pr=2, reflect=True),
])
def test_frame_conv_q16_within_its_quantisation_bound(geom):
    rng = np.random.default_rng(3)
    ci, co, L, k, g = geom["ci"], geom["co"], geom["L"], geom["k"], geom["groups"]
    w = rng.standard_normal((co, ci // g, k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    x = (rng.standard_normal((8, ci * L)) * np.logspace(-3, 1, 8)[:, None]).astype(np.float32)
    x[3] = 0
    wq, sw = quantize_weights16(w.reshape(co, -1))
    rec = dict(in_channels=ci, out_channels=co, kernel_size=k, frame_length=L, stride=geom["stride"],
               dilation=geom["dilation"], groups=g, pad_left=geom["pl"], pad_right=geom["pr"],
               padding_mode="reflect" if geom["reflect"] else "zeros",
               qweight=wq.reshape(w.shape), scale=sw, bias=b)
    y, acc, sx = frame_conv_q16(rec, x, return_acc=True)
    geo = (ci, L, k, geom["stride"], geom["dilation"], g, geom["pl"], geom["pr"], geom["reflect"])
    w64, x64, zero = w.astype(np.float64), x.astype(np.float64), np.zeros(co)
    ref = _conv_loop(x64, w64, b.astype(np.float64), *geo)
    lout = ref.shape[2]
    # |sum W x - sum (Wq sw)(q sx)| <= sum |W| ex + sum |x| ew + taps ew ex over the taps read
    # (e: half a step); the float32 epilogue: a few roundings of |y|
    ex = (np.abs(x64).max(axis=1) / 32767 / 2 * (1 + 2**-20))[:, None, None]
    ew = (np.abs(w64).reshape(co, -1).max(axis=1) / 32767 / 2 * (1 + 2**-20))[None, :, None]
    sum_w = _conv_loop(np.ones_like(x64), np.abs(w64), zero, *geo)
    sum_x = _conv_loop(np.abs(x64), np.ones_like(w64), zero, *geo)
    taps = _conv_loop(np.ones_like(x64), np.ones_like(w64), zero, *geo)
    absref = _conv_loop(np.abs(x64), np.abs(w64), np.abs(b.astype(np.float64)), *geo)
    bound = sum_w * ex + sum_x * ew + taps * ex * ew + absref * 2**-22
    err = np.abs(y.reshape(8, co, lout) - ref)
    assert np.all(err <= bound), float((err / bound).max())
    assert not np.all(err <= bound / 64)                 # the bound is not loose by orders
    np.testing.assert_array_equal(y[3].reshape(co, lout), np.repeat(b[:, None], lout, axis=1))
    assert acc.dtype == np.int64 and sx[3] == 0


def test_silero_16x16_frame_convs_meet_the_target_on_every_variant(silero, sample_audio):
    """Silero VAD v6 with its five frame_convs 16 x 16 (weights by quantize_weights16 from the f32
    compile, frame_conv_q16), magnitude and ReLU in the C core's float32 arithmetic, the q8
    engine's LSTM and head behind it: at most 1 flip (p > 0.5) against onnxruntime in each of the
    eight 937-frame variants of pyannote's sample.wav (the all-int8 default: 22 at gain 0.1)."""
    from bench_vad_q8_layers import setup

    d8, d32, back, data = setup(silero, sample_audio, more=True)
    recs = []
    for r in d32["front"]:
        if r["kind"] == "frame_conv1d":
            w = np.asarray(r["tensors"]["weight"], np.float32)
            wq, sw = quantize_weights16(w.reshape(w.shape[0], -1))
            recs.append(("q16", {**r, "qweight": wq.reshape(w.shape), "scale": sw,
                                 "bias": r["tensors"]["bias"]}))
        else:
            recs.append(("step", r))
    assert [k for k, _ in recs].count("q16") == 5
    flips = {}
    for name, (fr, p_ort) in data.items():
        x = fr
        for kind, r in recs:
            x = frame_conv_q16(r, x) if kind == "q16" else step_record(r, x)
        p = back.run(x[None])[0, :, 0]
        flips[name] = int(((p > 0.5) != (p_ort > 0.5)).sum())
        assert len(fr) >= 900
    assert all(f <= 1 for f in flips.values()), flips
    assert sum(flips.values()) <= 7496 / 500 / 2, flips
