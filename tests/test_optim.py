"""Optimisers and clipping, step by step against torch.optim (float64, 1e-8)."""

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.nn.layers import Linear, Sequential
from rnncore.nn.optim import SGD, Adam, AdamW, clip_grad_norm_


def make_pair(seed=0):
    model = Sequential(Linear(4, 3, seed=seed), Linear(3, 2, seed=seed + 1))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).double()
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return model, tmodel


def set_grads(model, tmodel, rng):
    for _, p in tmodel.named_parameters():
        g = rng.standard_normal(tuple(p.shape))
        p.grad = torch.tensor(g)
    model.zero_grad()
    for name, g in model.all_grads().items():
        g[...] = dict(tmodel.named_parameters())[name].grad.numpy()


def assert_same_params(model, tmodel, tol=1e-8):
    for name, p in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], p.numpy(), rtol=tol, atol=1e-12)


CONFIGS = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict()),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, torch.optim.AdamW, dict()),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.parametrize("ours,theirs,kw", CONFIGS)
def test_optimiser_matches_torch_step_by_step(ours, theirs, kw):
    model, tmodel = make_pair()
    opt, topt = ours(model, **kw), theirs(tmodel.parameters(), **kw)
    rng = np.random.default_rng(5)
    for _ in range(6):
        set_grads(model, tmodel, rng)
        opt.step()
        topt.step()
        assert_same_params(model, tmodel)


def test_defaults_are_torchs():
    m = Linear(2, 2)
    for ours, theirs in ((Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW), (SGD, torch.optim.SGD)):
        d = theirs([torch.zeros(1, requires_grad=True)]).defaults
        o = ours(m)
        for k in ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov", "amsgrad"):
            if k in d and hasattr(o, k):
                assert getattr(o, k) == (tuple(d[k]) if k == "betas" else d[k]), k


@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    model, tmodel = make_pair(3)
    set_grads(model, tmodel, np.random.default_rng(2))
    total = clip_grad_norm_(model, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), max_norm, norm_type)
    assert total == pytest.approx(ttotal.item(), rel=1e-12)
    for name, p in tmodel.named_parameters():
        np.testing.assert_allclose(model.all_grads()[name], p.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_gru_classifier_training_steps_match_torch():
    """Three Adam steps with clipping of GRU -> LastStep -> Linear on variable lengths."""
    rng = np.random.default_rng(0)
    B, T, I, H, C = 5, 7, 3, 6, 4
    model = rc.nn.Sequential(rc.nn.GRU(I, H, seed=1), rc.nn.LastStep(), rc.nn.Linear(H, C, seed=2))
    gru = torch.nn.GRU(I, H, batch_first=True).double()
    head = torch.nn.Linear(H, C).double()
    sd = model.state_dict()
    gru.load_state_dict({k[2:]: torch.tensor(v) for k, v in sd.items() if k.startswith("0.")})
    head.load_state_dict({k[2:]: torch.tensor(v) for k, v in sd.items() if k.startswith("2.")})
    params = list(gru.parameters()) + list(head.parameters())
    opt, topt = rc.nn.Adam(model, lr=0.05), torch.optim.Adam(params, lr=0.05)
    x, y = rng.standard_normal((B, T, I)), rng.integers(0, C, B)
    lengths = np.array([7, 2, 5, 1, 6])
    loss = rc.nn.CrossEntropy()
    for _ in range(3):
        model.zero_grad()
        v = loss.forward(model.forward(x, lengths=lengths, train=True), y)
        model.backward(loss.backward())
        norm = clip_grad_norm_(model, 0.1)
        opt.step()
        topt.zero_grad()
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths),
                                                         batch_first=True, enforce_sorted=False)
        _, h_n = gru(packed)
        tv = torch.nn.functional.cross_entropy(head(h_n[-1]), torch.tensor(y))
        tv.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(params, 0.1)
        topt.step()
        assert v == pytest.approx(tv.item(), rel=1e-10)
        assert norm == pytest.approx(tnorm.item(), rel=1e-9)
    got = model.state_dict()
    for k, p in list(gru.state_dict().items()):
        np.testing.assert_allclose(got["0." + k], p.numpy(), rtol=1e-8, atol=1e-11)
    for k, p in list(head.state_dict().items()):
        np.testing.assert_allclose(got["2." + k], p.numpy(), rtol=1e-8, atol=1e-11)


def test_state_survives_zero_grad_and_float32_works():
    m = Linear(3, 2, dtype="float32")
    opt = Adam(m, lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        m.forward(np.ones((1, 3), np.float32), train=True)
        m.backward(np.ones((1, 2), np.float32))
        opt.step()
    assert opt.state["weight"]["step"] == 2
    assert m.params["weight"].dtype == np.float32


def test_bad_arguments():
    m = Linear(2, 2)
    with pytest.raises(ValueError, match="lr: expected a non-negative number, got -1.0"):
        SGD(m, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(m, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(m, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="module: expected an rnncore.nn.Module"):
        Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(m, -1.0)
