"""Layer-normalised LSTM/GRU (issue 16): finite differences, a PyTorch reference module, streaming.

The PyTorch reference below is written from the equations (Ba et al. 2016, per-gate or joint
LayerNorm through torch.nn.functional.layer_norm) and differentiated by autograd; it shares no
code with rnncore.nn.lncells.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnncore.gradcheck import check_module
from rnncore.nn import Linear, Sequential
from rnncore.nn.lncells import LayerNormGRU, LayerNormLSTM

RNG = np.random.default_rng(1616)


class TorchLNRecurrent(torch.nn.Module):
    """Reference LN-LSTM / LN-GRU cell loop in PyTorch (batch first, one layer)."""

    def __init__(self, cell, sd, per_gate, eps=1e-5):
        super().__init__()
        self.cell, self.per_gate, self.eps = cell, per_gate, eps
        self.p = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v)) for k, v in sd.items()})
        self.H = sd["weight_ih"].shape[0] // (4 if cell == "lstm" else 3)

    def ln(self, a, name):
        G = a.shape[-1] // self.H
        blocks = a.unflatten(-1, (G, self.H)) if self.per_gate else a
        n = F.layer_norm(blocks, blocks.shape[-1:], eps=self.eps).flatten(-2 if self.per_gate else -1)
        return n * self.p[f"ln_{name}_weight"] + self.p[f"ln_{name}_bias"]

    def forward(self, x, h, c=None, lengths=None):
        H, ys = self.H, []
        for t in range(x.shape[1]):
            u = self.ln(x[:, t] @ self.p["weight_ih"].T, "ih")
            v = self.ln(h @ self.p["weight_hh"].T, "hh")
            if self.cell == "lstm":
                i, f, g, o = (u + v).split(H, dim=1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                cn = F.layer_norm(c_new, (H,), self.p["ln_c_weight"], self.p["ln_c_bias"], self.eps)
                h_new = torch.sigmoid(o) * torch.tanh(cn)
                if "weight_hr" in self.p:  # projection, as torch.nn.LSTM(proj_size=...)
                    h_new = h_new @ self.p["weight_hr"].T
            else:
                r = torch.sigmoid(u[:, :H] + v[:, :H])
                z = torch.sigmoid(u[:, H : 2 * H] + v[:, H : 2 * H])
                n = torch.tanh(u[:, 2 * H :] + r * v[:, 2 * H :])
                h_new = (1 - z) * n + z * h
            if lengths is not None:
                keep = torch.tensor(t < lengths)[:, None]
                h_new = torch.where(keep, h_new, h)
                if c is not None:
                    c_new = torch.where(keep, c_new, c)
                ys.append(torch.where(keep, h_new, torch.zeros_like(h_new)))
            else:
                ys.append(h_new)
            h = h_new
            if c is not None:
                c = c_new
        return torch.stack(ys, 1), h, c


def _randomise(m):
    for k, v in m.params.items():
        if "ln_" in k:
            v[...] = (
                RNG.uniform(0.5, 1.5, v.shape) if k.endswith("weight") else RNG.uniform(-0.5, 0.5, v.shape)
            )
    return m


CASES = [(cls, pg) for cls in (LayerNormLSTM, LayerNormGRU) for pg in (True, False)]


@pytest.mark.parametrize("cls,per_gate", CASES)
@pytest.mark.parametrize("lengths", [None, np.array([5, 2, 4])])
def test_matches_torch_reference(cls, per_gate, lengths):
    m = _randomise(cls(3, 4, per_gate=per_gate, seed=1))
    lstm = cls is LayerNormLSTM
    x = RNG.standard_normal((3, 5, 3))
    h0 = RNG.standard_normal((1, 3, 4))
    c0 = RNG.standard_normal((1, 3, 4))
    state = (h0, c0) if lstm else h0
    ref = TorchLNRecurrent("lstm" if lstm else "gru", m.state_dict(), per_gate).double()
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h0[0], c0[0]))
    yr, hr, cr = ref(xt, ht, ct if lstm else None, lengths)
    dy, dh = RNG.standard_normal(yr.shape), RNG.standard_normal((1, 3, 4))
    dc = RNG.standard_normal((1, 3, 4))
    total = (yr * torch.tensor(dy)).sum() + (hr * torch.tensor(dh[0])).sum()
    if lstm:
        total = total + (cr * torch.tensor(dc[0])).sum()
    total.backward()

    y, fin = m.forward(x, state=state, lengths=lengths, train=True)
    np.testing.assert_allclose(y, yr.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fin[0] if lstm else fin, hr.detach().numpy()[None], rtol=1e-12, atol=1e-12)
    if lstm:
        np.testing.assert_allclose(fin[1], cr.detach().numpy()[None], rtol=1e-12, atol=1e-12)
    m.zero_grad()
    dx, ds0 = m.backward(dy, dstate=(dh, dc) if lstm else dh)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ds0[0] if lstm else ds0, ht.grad.numpy()[None], rtol=1e-10, atol=1e-12)
    if lstm:
        np.testing.assert_allclose(ds0[1], ct.grad.numpy()[None], rtol=1e-10, atol=1e-12)
    for k, p in ref.p.items():
        np.testing.assert_allclose(m.grads[k], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("cls,per_gate", CASES)
def test_gradcheck(cls, per_gate):
    m = _randomise(cls(2, 3, per_gate=per_gate, seed=2))
    x = RNG.standard_normal((2, 4, 2))
    h0 = RNG.standard_normal((1, 2, 3))
    state = (h0, RNG.standard_normal((1, 2, 3))) if cls is LayerNormLSTM else h0
    rep = check_module(m, x, state=state, lengths=np.array([4, 3]))
    assert rep.ok, rep
    expected = {"input", "weight_ih", "weight_hh", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias"}
    expected |= {"state[0]", "state[1]", "ln_c_weight", "ln_c_bias"} if cls is LayerNormLSTM else {"state"}
    assert set(rep.errors) == expected


def test_one_step_hand_computed_gru():
    """H = 1: every LayerNorm of a single value is its shift, so the cell is a fixed function."""
    m = LayerNormGRU(1, 1, per_gate=True)
    m.params["ln_ih_bias"][...] = [0.5, -1.0, 0.25]
    m.params["ln_hh_bias"][...] = [0.0, 0.0, 2.0]
    y, h = m.forward(np.array([[[7.0]]]), state=np.array([[[0.3]]]))
    r, z = 1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(1.0))
    n = np.tanh(0.25 + r * 2.0)
    np.testing.assert_allclose(y[0, 0, 0], (1 - z) * n + z * 0.3, rtol=1e-15)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("cls", [LayerNormLSTM, LayerNormGRU])
def test_streams_in_a_sequential(dtype, tol, cls):
    model = Sequential(_randomise(cls(3, 5, dtype=dtype, seed=3)), Linear(5, 2, dtype=dtype, seed=4))
    x = RNG.standard_normal((2, 7, 3)).astype(dtype)
    whole = model.forward(x)
    state, outs = None, []
    for t in range(7):
        y, state = model.stream(x[:, t : t + 1], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, 1), whole, rtol=tol, atol=tol)


@pytest.mark.parametrize("per_gate", [True, False])
def test_projection_matches_torch_reference_and_gradcheck(per_gate):
    m = _randomise(LayerNormLSTM(3, 5, per_gate=per_gate, proj_size=2, seed=4))
    assert m.params["weight_hh"].shape == (20, 2) and m.params["weight_hr"].shape == (2, 5)
    x = RNG.standard_normal((2, 4, 3))
    h0, c0 = RNG.standard_normal((1, 2, 2)), RNG.standard_normal((1, 2, 5))
    ref = TorchLNRecurrent("lstm", m.state_dict(), per_gate).double()
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h0[0], c0[0]))
    yr, hr, cr = ref(xt, ht, ct, np.array([4, 3]))
    dy = RNG.standard_normal(yr.shape)
    ((yr * torch.tensor(dy)).sum() + hr.sum() + cr.sum()).backward()
    y, (h, c) = m.forward(x, state=(h0, c0), lengths=np.array([4, 3]), train=True)
    assert y.shape == (2, 4, 2) and h.shape == (1, 2, 2) and c.shape == (1, 2, 5)
    np.testing.assert_allclose(y, yr.detach().numpy(), rtol=1e-12, atol=1e-12)
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(dy, dstate=(np.ones((1, 2, 2)), np.ones((1, 2, 5))))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0[0], ht.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dc0[0], ct.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, p in ref.p.items():
        np.testing.assert_allclose(m.grads[k], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    rep = check_module(m, np.ascontiguousarray(x[:, :3]), state=(h0, c0))
    assert rep.ok and "weight_hr" in rep.errors, rep
    model = Sequential(m, Linear(2, 1, seed=1))
    whole, state, outs = model.forward(x), None, []
    for t in range(4):
        yy, state = model.stream(x[:, t : t + 1], state)
        outs.append(yy)
    np.testing.assert_allclose(np.concatenate(outs, 1), whole, rtol=1e-12, atol=1e-12)
