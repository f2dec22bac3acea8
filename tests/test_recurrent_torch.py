"""rnncore.nn.RNN/GRU/LSTM against torch.nn.RNN/GRU/LSTM (float64, batch_first=True).

Hypothesis draws the configuration (batch, time, sizes, layers, directions, bias,
proj_size, lengths, initial states); the weights come from the torch module's own
initialisation, copied through ``load_state_dict``. Variable lengths go through
``pack_padded_sequence(enforce_sorted=False)`` on the torch side. The loss is a random
linear function of ``y``, ``h_n`` (and ``c_n``), so ``dy``/``dstate`` are its weights;
forward outputs, final states and every gradient (weights, biases, x, h0, c0) must agree
within 1e-8.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc

ATOL = 1e-8
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def configs(draw, kind: str) -> dict:
    cfg = {
        "kind": kind,
        "batch": draw(st.integers(1, 4)),
        "time": draw(st.integers(1, 6)),
        "input_size": draw(st.integers(1, 4)),
        "hidden_size": draw(st.integers(1, 5)),
        "num_layers": draw(st.integers(1, 3)),
        "bidirectional": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "use_lengths": draw(st.booleans()),
        "use_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "extra": {},
    }
    if kind == "RNN":
        cfg["extra"]["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    if kind == "LSTM" and cfg["hidden_size"] > 1:
        cfg["extra"]["proj_size"] = draw(st.integers(0, cfg["hidden_size"] - 1))
    if cfg["use_lengths"]:
        cfg["lengths"] = draw(
            st.lists(st.integers(1, cfg["time"]), min_size=cfg["batch"], max_size=cfg["batch"])
        )
    return cfg


def run_both(cfg: dict) -> None:
    kind, B, T, I, H = cfg["kind"], cfg["batch"], cfg["time"], cfg["input_size"], cfg["hidden_size"]
    L, D = cfg["num_layers"], 2 if cfg["bidirectional"] else 1
    P = cfg["extra"].get("proj_size", 0) or H
    rng = np.random.default_rng(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    common = dict(num_layers=L, bias=cfg["bias"], bidirectional=cfg["bidirectional"], **cfg["extra"])
    tm = getattr(torch.nn, kind)(I, H, batch_first=True, dtype=torch.float64, **common)
    ours = getattr(rc.nn, kind)(I, H, dtype="float64", **common)
    assert list(ours.params) == list(tm.state_dict())
    ours.load_state_dict(tm.state_dict())

    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((L * D, B, P)) if cfg["use_state"] else None
    c0 = rng.standard_normal((L * D, B, H)) if cfg["use_state"] and kind == "LSTM" else None
    lengths = np.array(cfg["lengths"]) if cfg["use_lengths"] else None

    # torch
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True) if h0 is not None else None
    c0t = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    state_t = None if h0 is None else ((h0t, c0t) if kind == "LSTM" else h0t)
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
    yt, hnt = tm(inp, state_t)
    if lengths is not None:
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=True, total_length=T)
    finals_t = list(hnt) if kind == "LSTM" else [hnt]

    # ours
    state = None if h0 is None else ((h0, c0) if kind == "LSTM" else h0)
    y, hn = ours.forward(x, state=state, lengths=lengths, train=True)
    finals = list(hn) if kind == "LSTM" else [hn]

    assert y.shape == (B, T, D * P) and y.dtype == np.float64
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=ATOL)
    for a, b in zip(finals, finals_t, strict=True):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=ATOL)

    # gradients of a random linear loss
    wy = rng.standard_normal(y.shape)
    ws = [rng.standard_normal(f.shape) for f in finals]
    loss = (yt * torch.tensor(wy)).sum()
    loss = loss + sum((f * torch.tensor(w)).sum() for f, w in zip(finals_t, ws, strict=True))
    loss.backward()
    dx, ds0 = ours.backward(wy, tuple(ws) if kind == "LSTM" else ws[0])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=ATOL)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=0, atol=ATOL, err_msg=name)
    ds0 = list(ds0) if kind == "LSTM" else [ds0]
    if h0 is not None:
        np.testing.assert_allclose(ds0[0], h0t.grad.numpy(), rtol=0, atol=ATOL)
        if kind == "LSTM":
            np.testing.assert_allclose(ds0[1], c0t.grad.numpy(), rtol=0, atol=ATOL)


@SETTINGS
@given(configs("RNN"))
def test_rnn_matches_torch(cfg):
    run_both(cfg)


@SETTINGS
@given(configs("GRU"))
def test_gru_matches_torch(cfg):
    run_both(cfg)


@SETTINGS
@given(configs("LSTM"))
def test_lstm_matches_torch(cfg):
    run_both(cfg)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_parameter_names_shapes_and_init_match_torch(kind):
    """Same keys, order and shapes as torch's state_dict; init U(-1/sqrt(H), 1/sqrt(H))."""
    kw = {"proj_size": 3} if kind == "LSTM" else {}
    tm = getattr(torch.nn, kind)(5, 7, num_layers=2, bidirectional=True, batch_first=True, **kw)
    ours = getattr(rc.nn, kind)(5, 7, num_layers=2, bidirectional=True, seed=0, **kw)
    assert [(k, v.shape) for k, v in ours.params.items()] == [
        (k, tuple(v.shape)) for k, v in tm.state_dict().items()
    ]
    bound = 1 / np.sqrt(7)
    for v in ours.params.values():
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound
    no_bias = getattr(rc.nn, kind)(5, 7, bias=False)
    assert not any(k.startswith("bias") for k in no_bias.params)
    assert list(no_bias.params) == list(getattr(torch.nn, kind)(5, 7, bias=False).state_dict())
