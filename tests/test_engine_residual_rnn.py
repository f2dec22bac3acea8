"""A residual around a recurrent layer, ``y = x + GRU(x)`` (issue 16): ``rnncore.nn.Residual``
with a recurrent ``f`` (GRU / LSTM / RNN, uni- or bidirectional, or a Sequential of per-step layers
and one recurrent layer, DeepFilterNet's ``x + linear_out(gru(linear_in(x)))``). The NumPy
reference against PyTorch run sequence by sequence (an independent reference, lengths included),
its backward against finite differences in float64 (input, parameters and the initial state),
streaming chunk by chunk against the whole run, and the refusals by name."""

import numpy as np
import pytest

import rnncore as rc
from rnncore.gradcheck import check_module

torch = pytest.importorskip("torch")
nn = rc.nn


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _bodies(dtype="float64"):
    """(name, rnncore f, a torch module computing f's output from x (B, T, F))."""
    out = []
    g = nn.GRU(6, 6, dtype=dtype, seed=1)
    out.append(("gru", g, lambda t: t))
    l2 = nn.LSTM(6, 3, bidirectional=True, dtype=dtype, seed=2)
    out.append(("lstm_bidir", l2, lambda t: t))
    r = nn.RNN(6, 6, nonlinearity="relu", dtype=dtype, seed=3)
    out.append(("rnn_relu", r, lambda t: t))
    seq = nn.Sequential(nn.Linear(6, 4, dtype=dtype, seed=4), nn.GRU(4, 5, dtype=dtype, seed=5), nn.Tanh(),
                        nn.Linear(5, 6, dtype=dtype, seed=6))
    out.append(("lin_gru_lin", seq, lambda t: t))
    return out


def _load(t, m):
    t.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in m.state_dict().items()})
    return t


def _torch_rec(m):
    kind = type(m).__name__
    kw = {"bidirectional": m.bidirectional, "batch_first": True}
    if kind == "RNN":
        kw["nonlinearity"] = m.nonlinearity
    return _load(getattr(torch.nn, kind)(m.input_size, m.hidden_size, **kw).double(), m)


def _torch_f(fn):
    """A torch function computing ``f(x)`` for one sequence (1, T, F) with the same weights."""
    if getattr(fn, "is_recurrent", False):
        t = _torch_rec(fn)
        return lambda x: t(x)[0]
    mods = []
    for m in fn:
        if getattr(m, "is_recurrent", False):
            t = _torch_rec(m)
            mods.append(lambda x, t=t: t(x)[0])
        elif type(m).__name__ == "Linear":
            mods.append(_load(torch.nn.Linear(m.in_features, m.out_features).double(), m))
        elif type(m).__name__ == "Tanh":
            mods.append(torch.tanh)
        else:
            raise AssertionError(type(m).__name__)

    def f(x):
        for m in mods:
            x = m(x)
        return x
    return f


@pytest.mark.parametrize("name", [b[0] for b in _bodies()])
def test_numpy_forward_against_torch_with_lengths(name):
    fn = dict((b[0], b[1]) for b in _bodies())[name]
    res = nn.Residual(fn)
    f = _torch_f(fn)
    x = _x((3, 7, 6), seed=1)
    lengths = np.array([7, 4, 1])
    y, _ = res.forward(x, lengths=lengths)
    with torch.no_grad():
        for b in range(3):
            n = lengths[b]
            xb = torch.from_numpy(x[b:b + 1, :n])
            want = (xb + f(xb)).numpy()[0]
            np.testing.assert_allclose(y[b, :n], want, atol=1e-12, rtol=0)
            assert not y[b, n:].any()                       # zeros past the length
        want_full = (torch.from_numpy(x) + f(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(res.forward(x)[0], want_full, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", [b[0] for b in _bodies()])
def test_gradcheck_float64(name):
    fn = dict((b[0], b[1]) for b in _bodies())[name]
    res = nn.Residual(fn)
    x = _x((2, 5, 6), seed=2)
    rep = check_module(res, x, lengths=np.array([5, 3]))
    assert rep.ok, str(rep)
    state = res.zero_state(2)
    state = tuple(_x(s.shape, seed=3 + i) for i, s in enumerate(state)) if isinstance(state, tuple) else \
        _x(state.shape, seed=3)
    rep = check_module(res, x, state=state)
    assert rep.ok, str(rep)
    assert "input" in rep.errors and any(n.startswith("state") for n in rep.errors), rep.errors
    assert any(n.startswith("fn.") for n in rep.errors), rep.errors


def test_backward_is_dy_plus_f_dx():
    g = nn.GRU(4, 4, dtype="float64", seed=7)
    res = nn.Residual(g)
    x = _x((2, 3, 4), seed=4)
    dy = _x((2, 3, 4), seed=5)
    res.forward(x, train=True)
    dx, ds = res.backward(dy)
    g2 = nn.GRU(4, 4, dtype="float64", seed=7)
    g2.forward(x, train=True)
    dfx, ds2 = g2.backward(dy)
    np.testing.assert_array_equal(dx, dy + dfx)
    np.testing.assert_array_equal(ds, ds2)


def test_in_sequential_final_states_and_stream():
    model = nn.Sequential(nn.Linear(5, 6, seed=1), nn.Residual(nn.GRU(6, 6, seed=2)),
                          nn.Residual(nn.Sequential(nn.Linear(6, 4, seed=3), nn.LSTM(4, 6, seed=4))),
                          nn.Linear(6, 2, seed=5))
    assert len(model.recurrent_modules) == 2
    x = _x((2, 9, 5), seed=6, dtype=np.float32)
    whole = model.forward(x)
    h_gru, (h_lstm, c_lstm) = model.final_states
    assert h_gru.shape == (1, 2, 6) and h_lstm.shape == (1, 2, 6) and c_lstm.shape == (1, 2, 6)
    state, parts = None, []
    for a, b in ((0, 1), (1, 1), (1, 5), (5, 9)):        # a zero-step chunk included
        y, state = model.stream(x[:, a:b], state)
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-6, rtol=0)
    np.testing.assert_allclose(state[1], h_gru, atol=1e-6, rtol=0)
    # the final states carried into the next call continue the sequences
    model.forward(x[:, :4])
    y2 = model.forward(x[:, 4:], state=model.final_states)
    np.testing.assert_allclose(y2, whole[:, 4:], atol=1e-6, rtol=0)


def test_bidirectional_does_not_stream():
    model = nn.Sequential(nn.Residual(nn.GRU(4, 2, bidirectional=True)))
    with pytest.raises(TypeError, match="bidirectional"):
        model.stream_state(1)


def test_refusals_name_sizes():
    with pytest.raises(ValueError, match="takes 4 features and gives 5"):
        nn.Residual(nn.GRU(4, 5))
    with pytest.raises(ValueError, match=r"takes 4 features and gives 6 \(2 directions x 3\)"):
        nn.Residual(nn.LSTM(4, 3, bidirectional=True))
    res = nn.Residual(nn.Sequential(nn.Linear(4, 3), nn.GRU(3, 5)))
    with pytest.raises(ValueError, match="gives 5 features per step, x has 4"):
        res.forward(_x((1, 2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="at most one recurrent module, got 2"):
        nn.Residual(nn.Sequential(nn.GRU(4, 4), nn.GRU(4, 4)))
    with pytest.raises(TypeError, match=r"fn\[1\]: expected per-step layers .* got LastStep"):
        nn.Residual(nn.Sequential(nn.GRU(4, 4), nn.LastStep()))
