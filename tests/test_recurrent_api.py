"""Recurrent layers: float32, state carried across calls, lengths/mask equivalence, and errors."""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc

KINDS = ["RNN", "GRU", "LSTM"]


def make(kind, dtype="float64", **kw):
    return getattr(rc.nn, kind)(3, 5, dtype=dtype, seed=7, **kw)


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32_and_agrees_with_float64(kind):
    kw = dict(num_layers=2, bidirectional=True, **({"proj_size": 2} if kind == "LSTM" else {}))
    m64, m32 = make(kind, **kw), make(kind, "float32", **kw)
    m32.load_state_dict(m64.state_dict())
    assert all(v.dtype == np.float32 for v in m32.params.values())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9, 3))
    lengths = np.array([9, 4, 1, 7])
    y64, s64 = m64.forward(x, lengths=lengths, train=True)
    y32, s32 = m32.forward(x.astype(np.float32), lengths=lengths, train=True)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5)
    for a, b in zip(as_list(s32), as_list(s64), strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    dy = rng.standard_normal(y64.shape)
    dx64, d64 = m64.backward(dy)
    dx32, d32 = m32.backward(dy.astype(np.float32))
    assert dx32.dtype == np.float32 and all(a.dtype == np.float32 for a in as_list(d32))
    assert all(g.dtype == np.float32 for g in m32.grads.values())
    np.testing.assert_allclose(dx32, dx64, rtol=0, atol=1e-4)
    for k in m64.grads:
        np.testing.assert_allclose(m32.grads[k], m64.grads[k], rtol=0, atol=1e-4, err_msg=k)


@pytest.mark.parametrize("kind", KINDS)
def test_state_carried_across_calls_and_truncated_bptt(kind):
    """Two windows with the state passed on equal one call; backward through both windows,
    chaining dstate0 of the second into the first, equals full BPTT (truncation window >= T)."""
    m = make(kind, num_layers=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 10, 3))
    y_full, s_full = m.forward(x, train=True)
    dy = rng.standard_normal(y_full.shape)
    m.zero_grad()
    dx_full, _ = m.backward(dy)
    full_grads = {k: v.copy() for k, v in m.grads.items()}

    y1, s1 = m.forward(x[:, :6])
    y2, s2 = m.forward(x[:, 6:], state=s1, train=True)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_full, rtol=0, atol=1e-12)
    for a, b in zip(as_list(s2), as_list(s_full), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)

    m.zero_grad()
    dx2, ds = m.backward(dy[:, 6:])
    m.forward(x[:, :6], train=True)
    dx1, _ = m.backward(dy[:, :6], dstate=ds)
    np.testing.assert_allclose(np.concatenate([dx1, dx2], axis=1), dx_full, rtol=0, atol=1e-12)
    for k, g in full_grads.items():
        np.testing.assert_allclose(m.grads[k], g, rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_equals_lengths_and_padding_is_ignored(kind):
    m = make(kind, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 3))
    lengths = np.array([5, 2, 3])
    mask = np.arange(5)[None, :] < lengths[:, None]
    y1, s1 = m.forward(x, lengths=lengths)
    x_garbage = x.copy()
    x_garbage[~mask] = 1e6
    y2, s2 = m.forward(x_garbage, mask=mask)
    np.testing.assert_array_equal(y1, y2)
    assert np.all(y1[~mask] == 0)
    for a, b in zip(as_list(s1), as_list(s2), strict=True):
        np.testing.assert_array_equal(a, b)
    # one sequence alone gives the same as inside the padded batch
    y_single, _ = m.forward(x[1:2, :2])
    np.testing.assert_allclose(y1[1:2, :2], y_single, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_flags_and_zero_state(kind):
    m = make(kind, num_layers=2, bidirectional=True)
    assert m.is_recurrent is True and m.takes_lengths is True
    y0, s0 = m.forward(np.ones((2, 3, 3)))
    y1, s1 = m.forward(np.ones((2, 3, 3)), state=m.zero_state(2))
    np.testing.assert_array_equal(y0, y1)
    assert y0.shape == (2, 3, 10)
    assert repr(m).startswith(kind + "(input_size=3")


def test_backward_without_dy_uses_final_state_only():
    m = make("GRU")
    x = np.random.default_rng(3).standard_normal((2, 4, 3))
    m.forward(x, train=True)
    dx_a, _ = m.backward(None, np.ones((1, 2, 5)))
    m.forward(x, train=True)
    dx_b, _ = m.backward(np.zeros((2, 4, 5)), np.ones((1, 2, 5)))
    np.testing.assert_array_equal(dx_a, dx_b)


# -- errors ------------------------------------------------------------------------------


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise_clear_errors(kind):
    m = make(kind)
    x = np.zeros((2, 4, 3))
    _raises(TypeError, "x: expected a numpy.ndarray", m.forward, x.tolist())
    _raises(ValueError, r"x: expected 3 dimensions .* got shape \(4, 3\)", m.forward, x[0])
    _raises(ValueError, r"x: expected 3 features .* got shape \(2, 4, 2\)", m.forward, x[:, :, :2])
    _raises(TypeError, "x: expected a floating-point array .* got dtype int64", m.forward, x.astype(np.int64))
    _raises(TypeError, "x: dtype float32 does not match the layer's dtype float64", m.forward,
            x.astype(np.float32))
    _raises(ValueError, "x: empty batch", m.forward, np.zeros((0, 4, 3)))
    _raises(ValueError, "x: zero time steps", m.forward, np.zeros((2, 0, 3)))
    _raises(ValueError, r"lengths: expected every length in 1..4 .* min 0", m.forward, x, lengths=[0, 2])
    _raises(ValueError, r"lengths: expected every length in 1..4 .* max 5", m.forward, x, lengths=[5, 2])
    _raises(ValueError, r"lengths: expected shape \(2,\)", m.forward, x, lengths=[1, 2, 3])
    _raises(TypeError, "lengths: expected an integer array .* float64", m.forward, x, lengths=[1.0, 2.0])
    _raises(ValueError, "lengths, mask: give one of them", m.forward, x, lengths=[1, 2],
            mask=np.ones((2, 4), bool))
    _raises(ValueError, "mask: expected a prefix mask", m.forward, x,
            mask=np.array([[1, 0, 1, 0], [1, 1, 0, 0]], bool))
    _raises(ValueError, "mask: every sequence needs at least one valid step", m.forward, x,
            mask=np.array([[0, 0, 0, 0], [1, 1, 0, 0]], bool))
    _raises(ValueError, r"mask: expected shape \(2, 4\)", m.forward, x, mask=np.ones((2, 3), bool))
    _raises(TypeError, "mask: expected a boolean array", m.forward, x, mask=np.ones((2, 4)))
    bad_state = np.zeros((1, 3, 5))
    if kind == "LSTM":
        _raises(TypeError, r"state: expected a pair \(h, c\)", m.forward, x, state=np.zeros((1, 2, 5)))
        _raises(ValueError, r"state\[0\] \(h\): expected shape \(1, 2, 5\)", m.forward, x,
                state=(bad_state, np.zeros((1, 2, 5))))
        _raises(ValueError, r"state\[1\] \(c\): expected shape \(1, 2, 5\)", m.forward, x,
                state=(np.zeros((1, 2, 5)), bad_state))
    else:
        _raises(ValueError, r"state: expected shape \(1, 2, 5\) .* got \(1, 3, 5\)", m.forward, x,
                state=bad_state)
        _raises(TypeError, "state: dtype float32 does not match", m.forward, x,
                state=np.zeros((1, 2, 5), np.float32))
    fresh = make(kind)
    _raises(RuntimeError, r"backward: no forward pass .* train=True", fresh.backward, np.zeros((2, 4, 5)))
    fresh.forward(x)  # train=False keeps nothing
    _raises(RuntimeError, "backward: no forward pass", fresh.backward, np.zeros((2, 4, 5)))
    m.forward(x, train=True)
    _raises(ValueError, r"dy: expected shape \(2, 4, 5\) like the output y, got \(2, 4, 4\)", m.backward,
            np.zeros((2, 4, 4)))
    _raises(TypeError, "dy: expected a numpy.ndarray", m.backward, [[0.0]])


def test_bad_constructor_arguments():
    _raises(ValueError, "batch_first: .* only True", rc.nn.GRU, 3, 4, batch_first=False)
    _raises(ValueError, "nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'", rc.nn.RNN, 3, 4,
            nonlinearity="sigmoid")
    _raises(ValueError, "proj_size: expected < hidden_size=4, got 4", rc.nn.LSTM, 3, 4, proj_size=4)
    _raises(ValueError, "hidden_size: expected an int >= 1, got 0", rc.nn.LSTM, 3, 0)
    _raises(TypeError, "input_size: expected an int", rc.nn.LSTM, 3.0, 4)
    _raises(ValueError, r"dropout: expected a float in \[0, 1\), got 1.0", rc.nn.GRU, 3, 4, dropout=1.0)
    _raises(ValueError, "dtype: expected 'float64' or 'float32'", rc.nn.GRU, 3, 4, dtype="float16")
