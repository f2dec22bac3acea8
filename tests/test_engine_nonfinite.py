"""The engine never turns a NaN/Inf state into a number (issue 14).

A ReLU RNN's state and a linear head are unbounded and can overflow float32. The NumPy
reference (and PyTorch) then go on with Inf/NaN; the C core used to output Inf once and
restart from 0 (max(x, 0) and the q8 quantiser map NaN to 0), on every ISA and precision.
The contract now (docs/c-api.md, "Non-finite values"): step/run stop with RNC_E_NONFINITE,
a FloatingPointError naming the layer, the sequence and the step, and refuse the state left
behind until it is reset or replaced. Same on every ISA path this CPU runs, f32 and q8.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc

F32 = np.float32
ISAS = rc.isa()["available"]


def overflowing_relu_rnn() -> rc.nn.RNN:
    """h_t = relu(x_t + W_hh h_{t-1}), W_hh = 1e30 [[1, 1], [1, -1]]: from x = 1, h = (1, 1),
    (2e30, 1), (inf, inf), then the reference's (inf, nan), (nan, nan), ...; from x = 0, h = 0."""
    m = rc.nn.RNN(1, 2, nonlinearity="relu", dtype="float32")
    sd = {k: np.zeros_like(v) for k, v in m.state_dict().items()}
    sd["weight_ih_l0"][...] = 1.0
    sd["weight_hh_l0"][...] = np.array([[1e30, 1e30], [1e30, -1e30]], F32)
    m.load_state_dict(sd)
    return m


def _x(batch=3, T=6):
    X = np.zeros((batch, T, 1), F32)
    X[1] = 1.0                                      # only sequence 1 overflows
    return X


def test_the_reference_goes_on_with_nan():
    with np.errstate(over="ignore", invalid="ignore"):
        y, _ = overflowing_relu_rnn().forward(_x())
    assert np.all(np.isfinite(y[1, :2])) and np.isinf(y[1, 2]).all()
    assert np.isnan(y[1, 3, 1]) and np.isnan(y[1, 4:]).all()
    assert np.all(y[[0, 2]] == 0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("isa", ISAS)
def test_run_stops_at_the_overflow_naming_layer_sequence_and_step(precision, isa):
    eng = rc.compile(overflowing_relu_rnn(), precision)
    eng.set_isa(isa)
    with pytest.raises(FloatingPointError, match=r"run: layer 0 \(ReLU RNN\) state is NaN/Inf at "
                                                 r"sequence 1, step 2 \(float32 overflow"):
        eng.run(_x())
    # lengths that end before the overflow: finite and equal to the reference
    lengths = np.array([6, 2, 6])
    y = eng.run(_x(), lengths)
    ref, _ = overflowing_relu_rnn().forward(_x(), lengths=lengths)
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    # a stream's run: the state is left as computed (non-finite) and refused afterwards
    s = eng.stream(3)
    with pytest.raises(FloatingPointError, match="step 2"):
        s.run(_x())
    assert not np.all(np.isfinite(s.state))
    with pytest.raises(FloatingPointError, match=r"state passed in \(sequence 1\)"):
        s.run(np.zeros((3, 2, 1), F32))
    s.reset()
    np.testing.assert_array_equal(s.run(np.zeros((3, 2, 1), F32)), 0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("isa", ISAS)
def test_step_stops_at_the_overflow_and_refuses_the_state_left(precision, isa):
    eng = rc.compile(overflowing_relu_rnn(), precision)
    eng.set_isa(isa)
    X = _x()
    ref, _ = overflowing_relu_rnn().forward(X[:, :2])
    s = eng.stream(3)
    for t in range(2):
        np.testing.assert_allclose(s.step(X[:, t]), ref[:, t], rtol=1e-6)
    out = np.full((3, 2), 7.0, F32)
    with pytest.raises(FloatingPointError, match=r"step: layer 0 \(ReLU RNN\) state is NaN/Inf at "
                                                 r"stream row 1 \("):
        s.step(X[:, 2], out=out)
    assert np.all(out == 7.0)                      # no output written
    h = s.state
    assert np.isinf(h[0, 1]).all() and np.all(h[0, [0, 2]] == 0)   # left as computed
    for _ in range(2):                             # used to give 0 (q8) / (inf, 0) (f32) here
        with pytest.raises(FloatingPointError, match=r"state passed in \(stream row 1\)"):
            s.step(X[:, 3])
    s.reset()
    np.testing.assert_allclose(s.step(X[:, 0]), ref[:, 0], rtol=1e-6)
    s.state = ref[:, 1][None]                      # or assign a finite state
    np.testing.assert_allclose(s.state[0], ref[:, 1])


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("isa", ISAS)
def test_a_relu_layer_inside_a_stack_and_bidirectional(precision, isa):
    """The overflowing ReLU layer as layer 1 of a stack (after a GRU), and backward direction."""
    gru = rc.nn.GRU(1, 2, dtype="float32", seed=0)
    relu = overflowing_relu_rnn()
    sd = relu.state_dict()
    sd["weight_ih_l0"] = np.full((2, 2), 10.0, F32)
    relu2 = rc.nn.RNN(2, 2, nonlinearity="relu", dtype="float32")
    relu2.load_state_dict(sd)
    eng = rc.compile(rc.nn.Sequential(gru, relu2), precision)
    eng.set_isa(isa)
    X = np.ones((2, 8, 1), F32)
    with pytest.raises(FloatingPointError, match=r"layer 1 \(ReLU RNN\) state is NaN/Inf at sequence 0"):
        eng.run(X)
    bi = rc.nn.RNN(1, 2, nonlinearity="relu", dtype="float32", bidirectional=True)
    sd = {k: np.zeros_like(v) for k, v in bi.state_dict().items()}
    sd["weight_ih_l0_reverse"][...] = 1.0
    sd["weight_hh_l0_reverse"][...] = np.array([[1e30, 1e30], [1e30, -1e30]], F32)
    bi.load_state_dict(sd)
    eng = rc.compile(bi, precision)
    eng.set_isa(isa)
    with pytest.raises(FloatingPointError, match=r"layer 0 \(ReLU RNN, backward\) state is NaN/Inf at "
                                                 r"sequence 1, step 3"):
        eng.run(_x())


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("isa", ISAS)
def test_a_linear_head_that_overflows(precision, isa):
    """tanh RNN (|h| <= 1) then a head whose weights make W h overflow float32."""
    rnn = rc.nn.RNN(1, 2, dtype="float32")
    sd = {k: np.zeros_like(v) for k, v in rnn.state_dict().items()}
    sd["weight_ih_l0"][...] = 5.0
    rnn.load_state_dict(sd)
    head = rc.nn.Linear(2, 2, dtype="float32")
    head.params["weight"][...] = np.array([[3e38, 3e38], [1.0, 1.0]], F32)
    head.params["bias"][...] = 0
    model = rc.nn.Sequential(rnn, head)
    eng = rc.compile(model, precision)
    eng.set_isa(isa)
    X = np.zeros((2, 3, 1), F32)
    X[1, 1] = 1.0                                  # h = tanh(5) ~ 1: 6e38 overflows
    np.testing.assert_array_equal(eng.run(X[:1]), np.zeros((1, 3, 2)))
    with pytest.raises(FloatingPointError, match=r"run: the head's output \(before its activation\) is "
                                                 r"NaN/Inf at sequence 1, step 1"):
        eng.run(X)
    s = eng.stream(2)
    s.step(X[:, 0])
    with pytest.raises(FloatingPointError, match=r"step: the head's output .* at stream row 1"):
        s.step(X[:, 1])
    last = rc.compile(rc.nn.Sequential(rnn, rc.nn.LastStep(), head), precision)
    last.set_isa(isa)
    with pytest.raises(FloatingPointError, match=r"the head's output .* at sequence 1, step 1"):
        last.run(X, lengths=np.array([3, 2]))


def nan_preactivation_relu_rnn() -> rc.nn.RNN:
    """Step 0 from x = 1: h = relu(b) = (1e30, 1e30); step 1: W_hh h holds 1e60 and -1e60, both
    past float32: Inf - Inf = NaN with separate products, +Inf with a fused multiply-add (the
    exact product is finite), so each ISA path meets NaN or Inf; relu must keep the NaN (the
    old max(x, 0) made it 0 on the generic path, a silent restart the fuzzer found)."""
    m = rc.nn.RNN(1, 2, nonlinearity="relu", dtype="float32")
    sd = {k: np.zeros_like(v) for k, v in m.state_dict().items()}
    sd["weight_ih_l0"][...] = 1e30
    sd["weight_hh_l0"][...] = np.array([[1e30, -1e30], [0.0, 0.0]], F32)
    m.load_state_dict(sd)
    return m


@pytest.mark.parametrize("isa", ISAS)
def test_a_nan_preactivation_is_reported_on_every_path(isa):
    eng = rc.compile(nan_preactivation_relu_rnn(), "f32")
    eng.set_isa(isa)
    X = np.ones((1, 3, 1), F32)
    with np.errstate(over="ignore", invalid="ignore"):
        ref, _ = nan_preactivation_relu_rnn().forward(X)
    assert np.all(np.isfinite(ref[0, 0])) and not np.isfinite(ref[0, 1, 0])  # the reference: NaN/Inf
    s = eng.stream(1)
    np.testing.assert_array_equal(s.step(X[:, 0]), ref[:, 0])
    with pytest.raises(FloatingPointError, match=r"step: layer 0 \(ReLU RNN\) state is NaN/Inf"):
        s.step(X[:, 1])
    with pytest.raises(FloatingPointError, match=r"run: layer 0 \(ReLU RNN\) state is NaN/Inf at "
                                                 r"sequence 0, step 1"):
        eng.run(X)
