"""The bounded state scale (``state_scale="bounded"``, docs/q8-contract.md "The bounded state
scale"): GRU, LSTM and tanh-RNN states lie in [-1, 1], so q8 quantises them (and every vector
made of them: a deeper layer's input, the head input) with the fixed scale 1/127 instead of a
max-abs scan per vector and step.

Independent checks: the float32 facts the contract rests on (1 / float32(1/127) == 127, the
float32 GRU blend and the C core's activations never leave their bounds), the scales written
by the compiler, every ISA path bit-identical to the generic one, and the documented errors
and behaviour with NaN/Inf inputs and with hostile weights (~1e37).
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc
from rnncore import _kernels
from rnncore import quant as Q
from rnncore.io.rnc import read_rnc
from rnncore.quant.scheme import BOUNDED_STATE_SCALE
from rnncore.spec import spec_from_model

F32 = np.float32
ISAS = rc.isa()["available"]
B = F32(BOUNDED_STATE_SCALE)


def _floats(lo_bits: int, hi_bits: int, stride: int) -> np.ndarray:
    """Every ``stride``-th float32 with bit pattern in [lo_bits, hi_bits], the ends included."""
    bits = np.append(np.arange(lo_bits, hi_bits, stride, dtype=np.uint32), np.uint32(hi_bits))
    return bits.view(F32)


# ------------------------------------------------------------------------------------------
# the float32 facts


def test_the_bounded_scale_is_float32_1_over_127_and_its_inverse_is_exactly_127():
    assert np.array(B).view(np.uint32) == 0x3C010204
    assert F32(1) / B == F32(127)
    assert F32(127) * B == F32(1)


def test_a_bounded_state_is_rint_127h_and_never_clips():
    h = _floats(0, 0x3F800000, 37)                   # [0, 1], ~29M values
    h = np.concatenate([h, -h])
    p = h * F32(127)                                 # the quantiser's float32 product
    assert p.dtype == F32 and np.abs(p).max() == 127  # |h| <= 1 -> |h * 127| <= 127: no clip
    q, s = Q.quantize_activation(h[None, :], BOUNDED_STATE_SCALE)
    np.testing.assert_array_equal(q[0], np.rint(p).astype(np.int8))
    assert s[0] == B
    qc, sc = _kernels.quantize_q8(h[:100003], BOUNDED_STATE_SCALE)   # the C quantiser
    np.testing.assert_array_equal(qc, q[0, :100003])
    assert sc == B


def test_the_float32_gru_blend_stays_in_minus_1_1():
    """h' = (1 - z) n + z h, each operation rounded to float32 (no FMA, as the C core): with
    z in [0, 1] and |n|, |h| <= 1, |h'| <= 1 (the monotone rounding argument of the contract)."""
    z = np.concatenate([_floats(0, 0x3F800000, 61), F32([0, 1, 0.5, np.nextafter(F32(1), F32(0))])])
    one = F32(1)
    for n in (one, -one):
        for h in (one, -one):
            hz = (one - z) * n + z * h
            assert hz.dtype == F32 and np.abs(hz).max() <= 1
    rng = np.random.default_rng(0)
    n, h = (rng.uniform(-1, 1, (2, z.size)).astype(F32))
    assert np.abs((one - z) * n + z * h).max() <= 1


def test_the_c_activations_stay_in_their_ranges_for_every_non_nan_input():
    x = np.concatenate([_floats(0, 0x7F800000, 251), F32([np.inf, 3.4028235e38, 1e-45, 0.0])])
    x = np.concatenate([x, -x])
    t, s = _kernels.fast_tanh(x), _kernels.fast_sigmoid(x)
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))


# ------------------------------------------------------------------------------------------
# which vectors get the scale


def _stack(kind="gru", nonlinearity="tanh"):
    cls = {"gru": rc.nn.GRU, "lstm": rc.nn.LSTM}.get(kind)
    rnn = cls(5, 8, num_layers=2, seed=0) if cls else rc.nn.RNN(5, 8, 2, nonlinearity=nonlinearity, seed=0)
    return rc.nn.Sequential(rnn, rc.nn.Linear(8, 3, seed=1))


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_bounded_scales_every_state_made_vector_but_not_the_first_input(kind):
    spec = spec_from_model(_stack(kind))
    qm = Q.quantize_model(spec, state_scale="bounded")
    assert qm.layers[0].x_scale is None                       # the model's input stays dynamic
    assert qm.layers[1].x_scale == BOUNDED_STATE_SCALE        # layer 0's output
    assert all(layer.h_scale == [BOUNDED_STATE_SCALE] for layer in qm.layers)
    assert qm.head.x_scale == BOUNDED_STATE_SCALE
    d = read_rnc(rc.compile(_stack(kind), "q8", state_scale="bounded").data)   # what the file holds
    assert [layer.get("x_scale") for layer in d["layers"]] == [None, B]
    assert [layer["h_scale"] for layer in d["layers"]] == [[B], [B]]
    assert d["head"]["in_scale"] == B


def test_bounded_with_calibration_keeps_the_calibrated_input_scale():
    m = _stack("lstm")
    X = np.random.default_rng(0).standard_normal((20, 8, 5)).astype(F32)
    cal = Q.calibrate(m, X)
    qm = Q.quantize_model(spec_from_model(m), cal, state_scale="bounded")
    assert qm.layers[0].x_scale == cal.x_scale[0]
    assert qm.layers[1].x_scale == BOUNDED_STATE_SCALE and qm.head.x_scale == BOUNDED_STATE_SCALE
    qd = Q.quantize_model(spec_from_model(m), cal, state_scale="dynamic")
    assert all(v is None for layer in qd.layers for v in layer.h_scale)
    assert qd.layers[1].x_scale == cal.x_scale[1]             # only the states turn dynamic
    qn = Q.quantize_model(spec_from_model(m), cal)            # the default: today's scales
    assert [layer.h_scale for layer in qn.layers] == cal.h_scale and qn.head.x_scale == cal.head_scale


def test_the_default_writes_the_same_bytes_as_before():
    m = _stack("gru")
    assert rc.compile(m, "q8").data == rc.compile(m, "q8", state_scale=None).data
    assert rc.compile(m, "q8").data == rc.compile(m, "q8", state_scale="dynamic").data
    layers = read_rnc(rc.compile(m, "q8").data)["layers"]
    assert all(layer.get("x_scale") is None and layer["h_scale"] == [None] for layer in layers)


def test_bounded_is_refused_where_a_state_is_unbounded_or_the_precision_has_no_scales():
    with pytest.raises(ValueError, match=r"state_scale='bounded': layer 0 is a 'rnn_relu' layer"):
        rc.compile(_stack("rnn", "relu"), "q8", state_scale="bounded")
    with pytest.raises(ValueError, match=r"state_scale: .*precision='q8'.*'f32'"):
        rc.compile(_stack("gru"), "f32", state_scale="bounded")
    with pytest.raises(ValueError, match=r"state_scale: expected one of .*got 'fixed'"):
        rc.compile(_stack("gru"), "q8", state_scale="fixed")
    with pytest.raises(ValueError, match=r"state_scale: expected one of"):
        Q.quantize_model(spec_from_model(_stack("gru")), state_scale="static")


# ------------------------------------------------------------------------------------------
# the engine


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_every_isa_is_bit_identical_to_generic_and_follows_the_reference(kind):
    m = _stack(kind)
    eng = rc.compile(m, "q8", state_scale="bounded")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 12, 5)).astype(F32)
    lengths = np.array([12, 7, 1])
    eng.set_isa("generic")
    y0 = eng.run(X, lengths)
    s = eng.stream(3)
    ys0 = np.stack([s.step(X[:, t]).copy() for t in range(12)], 1)
    ref, _ = Q.q8_forward(eng.reference(), X, lengths)
    # the reference's exact tanh/sigmoid differ from the C core's by <= 4.1e-7; a q(h) element
    # may round the other way, which moves a pre-activation by <= max|W| / 127 (see
    # test_kernels_property.py)
    np.testing.assert_allclose(y0, ref, atol=5e-3 * max(1.0, float(np.abs(ref).max())), rtol=0)
    for isa in ISAS:
        eng.set_isa(isa)
        np.testing.assert_array_equal(eng.run(X, lengths), y0, err_msg=isa)
        s = eng.stream(3)
        np.testing.assert_array_equal(np.stack([s.step(X[:, t]).copy() for t in range(12)], 1), ys0,
                                      err_msg=isa)


def _hostile(kind, hidden, w):
    """A layer whose weights and biases are +-(0.5..1) * ``w`` (~1e37 and more): its
    pre-activation sums overflow float32, and Inf - Inf or 0 * Inf make NaN."""
    m = (rc.nn.GRU if kind == "gru" else rc.nn.LSTM)(3, hidden, seed=0, dtype="float32")
    rng = np.random.default_rng(0)
    for _, v in m.named_parameters():
        v[...] = (rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.5, 1, v.shape) * w).astype(F32)
    return m


@pytest.mark.parametrize("state_scale", [None, "bounded"])
@pytest.mark.parametrize("kind, hidden, w", [("gru", 32, 3e37), ("lstm", 16, 1e38)])
def test_hostile_weights_give_the_same_bits_on_every_path_and_a_bounded_or_nan_state(
        kind, hidden, w, state_scale):
    """docs/c-api.md, "Non-finite values": a bounded cell whose pre-activations overflow float32
    may get a NaN state (not checked; q8 quantises it as 0 on the next step). Every path must
    agree bit for bit, and no state or output is ever a number outside [-1, 1]."""
    eng = rc.compile(_hostile(kind, hidden, w), "q8", state_scale=state_scale)
    X = np.random.default_rng(2).standard_normal((2, 10, 3)).astype(F32) * F32(1e3)
    eng.set_isa("generic")
    y0, s0 = eng.run(X, return_state=True)
    assert np.isnan(y0).any()                                # the case this test is about
    finite = y0[np.isfinite(y0)]
    assert finite.size and np.abs(finite).max() <= 1
    h0 = s0[0] if isinstance(s0, tuple) else s0
    assert np.all(np.isnan(h0) | (np.abs(h0) <= 1))
    for isa in ISAS:
        eng.set_isa(isa)
        y, s = eng.run(X, return_state=True)
        np.testing.assert_array_equal(y, y0, err_msg=isa)
        for a, a0 in zip(s if isinstance(s, tuple) else (s,), s0 if isinstance(s0, tuple) else (s0,),
                         strict=True):
            np.testing.assert_array_equal(a, a0, err_msg=isa)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_before_any_step(bad):
    eng = rc.compile(_stack("gru"), "q8", state_scale="bounded")
    X = np.zeros((2, 4, 5), F32)
    X[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        eng.run(X)
    s = eng.stream(2)
    before = s.state.copy()
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.step(X[:, 2])
    np.testing.assert_array_equal(s.state, before)
