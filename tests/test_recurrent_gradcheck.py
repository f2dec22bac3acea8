"""Every gradient of the recurrent layers against central finite differences (float64).

For each configuration, the loss is a fixed random linear function of the outputs and
final states, ``f = sum(wy * y) + sum(wh * h_n) (+ sum(wc * c_n))``; ``backward(wy, wh)``
must give the gradient of ``f`` with respect to every parameter, the input ``x`` and the
initial state(s), which :func:`rnncore.gradcheck.numerical_gradient` estimates by
perturbing each element. Tiny sizes keep it fast; relative error must stay below 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc
from rnncore.gradcheck import max_relative_error, numerical_gradient

TOL = 1e-6
# Central differences: truncation error ~ eps^2, rounding error ~ 1e-16 |f| / eps; eps = 1e-5 is
# near the optimum (cube root of the machine epsilon) and resolves gradients down to ~1e-4 to 1e-6.
EPS = 1e-5

CASES = [
    # (id, kind, constructor kwargs, input mode: None | "lengths" | "mask")
    ("rnn-tanh-2l-bi-lengths", "RNN", dict(num_layers=2, bidirectional=True), "lengths"),
    ("rnn-relu-2l-bi-lengths", "RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu"), "lengths"),
    ("rnn-tanh-1l-full", "RNN", dict(), None),
    ("gru-after-2l-bi-lengths", "GRU", dict(num_layers=2, bidirectional=True), "lengths"),
    ("gru-before-2l-bi-lengths", "GRU", dict(num_layers=2, bidirectional=True, reset_after=False), "lengths"),
    ("gru-before-1l-mask", "GRU", dict(reset_after=False), "mask"),
    ("gru-after-nobias-full", "GRU", dict(bias=False, bidirectional=True), None),
    ("lstm-2l-bi-lengths", "LSTM", dict(num_layers=2, bidirectional=True), "lengths"),
    ("lstm-proj-2l-bi-lengths", "LSTM", dict(num_layers=2, bidirectional=True, proj_size=2), "lengths"),
    ("lstm-proj-1l-mask", "LSTM", dict(proj_size=1), "mask"),
    ("lstm-nobias-full", "LSTM", dict(bias=False), None),
]

B, T, I, H = 3, 4, 2, 3


def _setup(kind, kwargs, mode, seed=0):
    rng = np.random.default_rng(seed)
    layer = getattr(rc.nn, kind)(I, H, seed=seed, **kwargs)
    # weights a bit larger than the default init so that every gate is exercised
    for v in layer.params.values():
        v[...] = rng.uniform(-0.8, 0.8, v.shape)
    L, D = layer.num_layers, layer.num_directions
    P = layer.output_size
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((L * D, B, P))
    c0 = rng.standard_normal((L * D, B, H))
    state = (h0, c0) if kind == "LSTM" else h0
    lengths = np.array([4, 2, 1])
    extra = {}
    if mode == "lengths":
        extra["lengths"] = lengths
    elif mode == "mask":
        extra["mask"] = np.arange(T)[None, :] < lengths[:, None]
    y, hn = layer.forward(x, state=state, train=True, **extra)
    wy = rng.standard_normal(y.shape)
    ws = [rng.standard_normal(a.shape) for a in (hn if kind == "LSTM" else (hn,))]
    return layer, x, state, extra, wy, ws


def _loss(layer, kind, x, state, extra, wy, ws, train=True):
    y, hn = layer.forward(x, state=state, train=train, **extra)
    finals = hn if kind == "LSTM" else (hn,)
    return float(np.sum(wy * y) + sum(np.sum(w * f) for w, f in zip(ws, finals, strict=True)))


@pytest.mark.parametrize("kind,kwargs,mode", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_gradients_match_finite_differences(kind, kwargs, mode):
    layer, x, state, extra, wy, ws = _setup(kind, kwargs, mode)
    layer.zero_grad()
    layer.forward(x, state=state, train=True, **extra)
    dx, dstate0 = layer.backward(wy, tuple(ws) if kind == "LSTM" else ws[0])
    grads = {k: v.copy() for k, v in layer.grads.items()}

    def f():
        return _loss(layer, kind, x, state, extra, wy, ws)

    checked = {}
    for name, p in layer.params.items():
        checked[name] = max_relative_error(grads[name], numerical_gradient(f, p, EPS))
    checked["x"] = max_relative_error(dx, numerical_gradient(f, x, EPS))
    states = state if kind == "LSTM" else (state,)
    dstates = dstate0 if kind == "LSTM" else (dstate0,)
    for label, s, ds in zip(("h0", "c0"), states, dstates, strict=False):
        checked[label] = max_relative_error(ds, numerical_gradient(f, s, EPS))
    bad = {k: e for k, e in checked.items() if not e < TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"
    if mode is not None:  # padded inputs do not influence anything
        lengths = np.array([4, 2, 1])
        pad = np.arange(T)[None, :] >= lengths[:, None]
        assert np.all(dx[pad] == 0)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_dropout_between_layers_gradients(kind):
    """Dropout (train=True) with the Generator re-seeded before every forward: f is deterministic."""
    kwargs = dict(num_layers=3, dropout=0.4, bidirectional=True)
    layer, x, state, extra, wy, ws = _setup(kind, kwargs, "lengths")

    def f():
        layer._rng = np.random.default_rng(123)
        return _loss(layer, kind, x, state, extra, wy, ws)

    layer.zero_grad()
    f()
    dx, _ = layer.backward(wy, tuple(ws) if kind == "LSTM" else ws[0])
    assert max_relative_error(dx, numerical_gradient(f, x, EPS)) < TOL
    for name in ("weight_ih_l1", "weight_hh_l2_reverse", "weight_ih_l2"):
        g = layer.grads[name].copy()
        assert max_relative_error(g, numerical_gradient(f, layer.params[name], EPS)) < TOL, name
    # the masks really drop: train=False output differs from train=True
    y_eval, _ = layer.forward(x, state=state, **extra)
    layer._rng = np.random.default_rng(123)
    y_train, _ = layer.forward(x, state=state, train=True, **extra)
    assert not np.allclose(y_eval, y_train)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_cell_step_gradients(reset_after):
    """The single-step functions of rnncore.nn.cells, checked on their own."""
    from rnncore.nn.cells import gru_cell_backward, gru_cell_forward

    rng = np.random.default_rng(1)
    gx, h = rng.standard_normal((2, 9)), rng.standard_normal((2, 3))
    w_hh, b_hn = rng.standard_normal((9, 3)), rng.standard_normal(3)
    wout = rng.standard_normal((2, 3))

    def f():
        return float(np.sum(wout * gru_cell_forward(gx, h, w_hh, b_hn, reset_after)[0]))

    _, cache = gru_cell_forward(gx, h, w_hh, b_hn, reset_after)
    dgx, dgh, dh_prev = gru_cell_backward(wout, cache, w_hh)
    assert max_relative_error(dgx, numerical_gradient(f, gx, EPS)) < TOL
    assert max_relative_error(dh_prev, numerical_gradient(f, h, EPS)) < TOL
    if reset_after:
        assert max_relative_error(dgh[:, 6:].sum(0), numerical_gradient(f, b_hn, EPS)) < TOL
