"""Blocks (Linear, Embedding, Dropout, poolings, Sequential): finite differences and PyTorch."""

import numpy as np
import pytest
import torch
from fake_recurrent import FakeRNN
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.gradcheck import check_module
from rnncore.nn import GRU, CrossEntropy
from rnncore.nn.layers import (
    AttentionPool,
    ConcatPool,
    Dropout,
    Embedding,
    LastStep,
    Linear,
    MaskedMax,
    MaskedMean,
    Sequential,
    lengths_from_mask,
    mask_from_lengths,
)

RNG = np.random.default_rng(1234)
LENGTHS = np.array([5, 1, 3, 4])


def t64(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# -- finite differences (float64) ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(shape, bias):
    rep = check_module(Linear(3, 2, bias=bias, seed=0), RNG.standard_normal(shape))
    assert rep.ok, rep
    assert set(rep.errors) == {"input", "weight"} | ({"bias"} if bias else set())


def test_embedding_gradcheck():
    ids = RNG.integers(0, 6, (3, 4))
    rep = check_module(Embedding(6, 3, seed=0), ids)
    assert rep.ok and set(rep.errors) == {"weight"}, rep


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_pooling_gradcheck(lengths):
    x = RNG.standard_normal((4, 5, 6))
    for m in (LastStep(), LastStep(bidirectional=True), LastStep(bidirectional=True, direction="forward"),
              LastStep(bidirectional=True, direction="backward"), MaskedMean(), MaskedMax(),
              AttentionPool(6, 3, seed=1)):
        rep = check_module(m, x, lengths=lengths)
        assert rep.ok, rep


def test_attention_pool_with_mask_equals_lengths():
    x = RNG.standard_normal((4, 5, 6))
    m = AttentionPool(6, 4, seed=2)
    a = m.forward(x, lengths=LENGTHS)
    b = m.forward(x, mask=mask_from_lengths(LENGTHS, 5))
    np.testing.assert_array_equal(a, b)
    assert np.all(m.attention[~mask_from_lengths(LENGTHS, 5)] == 0)
    np.testing.assert_allclose(m.attention.sum(1), 1.0)
    assert set(m.state_dict()) == {"proj.weight", "proj.bias", "score.weight"}


def test_dropout_gradcheck_and_semantics():
    x = RNG.standard_normal((50, 40))
    d = Dropout(0.3, seed=0)
    assert d.forward(x) is x                                   # evaluation: identity
    y = d.forward(x, train=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    assert abs(1 - kept.mean() - 0.3) < 0.03
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), kept / 0.7)
    rep = check_module(Dropout(0.5, seed=3), RNG.standard_normal((3, 4)))
    assert rep.ok, rep
    assert np.all(Dropout(1.0).forward(x, train=True) == 0)


def test_sequential_gradcheck_with_recurrent_layer_and_lengths():
    model = Sequential(FakeRNN(3, 5, seed=1), LastStep(), Linear(5, 4, seed=2))
    assert list(model.state_dict()) == ["0.weight_ih_l0", "0.weight_hh_l0", "2.weight", "2.bias"]
    rep = check_module(model, RNG.standard_normal((4, 6, 3)), lengths=np.array([6, 2, 3, 1]))
    assert rep.ok, rep
    assert set(rep.errors) == {"input", "0.weight_ih_l0", "0.weight_hh_l0", "2.weight", "2.bias"}


def test_sequential_embedding_first_returns_none_and_checks_weights():
    model = Sequential(Embedding(7, 3, seed=0), FakeRNN(3, 4), MaskedMean(), Linear(4, 2))
    ids = RNG.integers(0, 7, (3, 5))
    y = model.forward(ids, lengths=np.array([5, 3, 2]), train=True)
    assert model.backward(np.ones_like(y)) is None
    rep = check_module(model, ids, lengths=np.array([5, 3, 2]))
    assert rep.ok and "0.weight" in rep.errors, rep


def test_sequential_state_carry_equals_one_long_call():
    model = Sequential(FakeRNN(2, 3), Linear(3, 1))
    x = RNG.standard_normal((2, 8, 2))
    full = model.forward(x)
    first = model.forward(x[:, :5])
    second = model.forward(x[:, 5:], state=model.final_states)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, atol=1e-14)
    with pytest.raises(ValueError, match="state"):
        model.forward(x, state=[])


def test_float32_blocks_keep_float32():
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    for m in (Linear(5, 2, dtype="float32"), LastStep(), MaskedMean(), AttentionPool(5, dtype="float32")):
        y = m.forward(x, train=True) if isinstance(m, Linear) else m.forward(x, lengths=[4, 1, 2], train=True)
        assert y.dtype == np.float32
        assert m.backward(np.ones_like(y)).dtype == np.float32
    assert Embedding(4, 3, dtype="float32").forward(np.array([[1, 2]])).dtype == np.float32


# -- PyTorch --------------------------------------------------------------------------------
def test_linear_matches_torch():
    lin = Linear(7, 5, seed=3)
    tl = torch.nn.Linear(7, 5).double()
    tl.load_state_dict({k: torch.tensor(v) for k, v in lin.state_dict().items()})
    x = RNG.standard_normal((3, 4, 7))
    dy = RNG.standard_normal((3, 4, 5))
    tx = t64(x, True)
    ty = tl(tx)
    ty.backward(t64(dy))
    y = lin.forward(x, train=True)
    dx = lin.backward(dy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(lin.grads["weight"], tl.weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(lin.grads["bias"], tl.bias.grad.numpy(), rtol=0, atol=1e-12)


def test_linear_init_range_like_torch():
    w = Linear(100, 50, seed=0).params["weight"]
    assert np.abs(w).max() <= 0.1 and np.abs(w).max() > 0.09


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_matches_torch(padding_idx):
    emb = Embedding(6, 4, padding_idx=padding_idx, seed=1)
    te = torch.nn.Embedding(6, 4, padding_idx=padding_idx).double()
    te.load_state_dict({"weight": torch.tensor(emb.params["weight"])})
    ids = RNG.integers(0, 6, (5, 7))
    ids[0, :3] = 2
    dy = RNG.standard_normal((5, 7, 4))
    out = te(torch.tensor(ids))
    out.backward(t64(dy))
    np.testing.assert_array_equal(emb.forward(ids, train=True), out.detach().numpy())
    emb.backward(dy)
    np.testing.assert_allclose(emb.grads["weight"], te.weight.grad.numpy(), rtol=0, atol=1e-12)
    if padding_idx is not None:
        assert np.all(emb.params["weight"][padding_idx] == 0)


def _torch_poolings(x, lengths, which, sd=None):
    B, T, F = x.shape
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    if which == "last":
        return x[torch.arange(B), torch.tensor(lengths) - 1]
    if which == "mean":
        return (x * mask[..., None]).sum(1) / torch.tensor(lengths, dtype=x.dtype)[:, None]
    if which == "max":
        return x.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    u = torch.tanh(x @ sd["proj.weight"].T + sd["proj.bias"])
    e = (u @ sd["score.weight"].T)[..., 0].masked_fill(~mask, float("-inf"))
    return (torch.softmax(e, 1)[..., None] * x).sum(1)


@pytest.mark.parametrize("which", ["last", "mean", "max", "attention"])
def test_poolings_match_torch(which):
    x = RNG.standard_normal((4, 5, 6))
    dy = RNG.standard_normal((4, 6))
    m = {"last": LastStep(), "mean": MaskedMean(), "max": MaskedMax(),
         "attention": AttentionPool(6, 3, seed=5)}[which]
    sd = {k: t64(v, True) for k, v in m.state_dict().items()}
    tx = t64(x, True)
    ty = _torch_poolings(tx, LENGTHS, which, sd)
    ty.backward(t64(dy))
    np.testing.assert_allclose(m.forward(x, lengths=LENGTHS, train=True), ty.detach().numpy(), atol=1e-12)
    m.zero_grad()
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=1e-12)
    for k, g in m.all_grads().items():
        np.testing.assert_allclose(g, sd[k].grad.numpy(), atol=1e-12)


def test_bidirectional_last_step_takes_backward_half_at_t0():
    x = RNG.standard_normal((4, 5, 6))
    y = LastStep(bidirectional=True).forward(x, lengths=LENGTHS)
    np.testing.assert_array_equal(y[:, :3], x[np.arange(4), LENGTHS - 1, :3])
    np.testing.assert_array_equal(y[:, 3:], x[:, 0, 3:])


# -- bad input -------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    lin = Linear(3, 2)
    with pytest.raises(ValueError, match=r"x: expected last dimension 3"):
        lin.forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match=r"x: expected a floating-point array, got dtype int64"):
        lin.forward(np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="x: expected a numpy array"):
        lin.forward([[1.0, 2.0, 3.0]])
    with pytest.raises(RuntimeError, match="train=True"):
        Linear(3, 2).backward(np.zeros((1, 2)))
    lin.forward(np.zeros((2, 3)), train=True)
    with pytest.raises(ValueError, match=r"dy expected shape \(2, 2\)"):
        lin.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 2)
    with pytest.raises(ValueError, match="dtype"):
        Linear(2, 2, dtype="float16")
    emb = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"ids: expected values in 0..4, got 0..5"):
        emb.forward(np.array([0, 5]))
    with pytest.raises(TypeError, match="ids: expected an integer array"):
        emb.forward(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"p: expected a probability"):
        Dropout(1.5)
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"lengths: expected every length in 1..3"):
        LastStep().forward(x, lengths=np.array([0, 3]))
    with pytest.raises(ValueError, match=r"lengths: expected every length in 1..3"):
        MaskedMean().forward(x, lengths=np.array([2, 4]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\)"):
        LastStep().forward(x, lengths=np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths: expected an integer array"):
        LastStep().forward(x, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, time, features\)"):
        MaskedMean().forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="prefix mask"):
        lengths_from_mask(np.array([[True, False, True], [True, True, True]]), 2, 3)
    with pytest.raises(TypeError, match="modules\\[1\\]"):
        Sequential(Linear(2, 2), "relu")


def test_bidirectional_last_step_equals_torch_final_states_of_packed_gru():
    import rnncore as rc

    rng = np.random.default_rng(6)
    x, lengths = rng.standard_normal((4, 6, 3)), np.array([6, 2, 5, 1])
    gru = rc.nn.GRU(3, 5, bidirectional=True, seed=2)
    tg = torch.nn.GRU(3, 5, batch_first=True, bidirectional=True).double()
    tg.load_state_dict({k: torch.tensor(v) for k, v in gru.state_dict().items()})
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    _, h_n = tg(packed)
    pooled = Sequential(gru, LastStep(bidirectional=True)).forward(x, lengths=lengths)
    np.testing.assert_allclose(pooled, torch.cat([h_n[0], h_n[1]], 1).detach().numpy(), atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 6), F=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_poolings_match_torch_on_random_lengths(B, T, F, seed):
    rng = np.random.default_rng(seed)
    x, dy = rng.standard_normal((B, T, F)), rng.standard_normal((B, F))
    lengths = rng.integers(1, T + 1, B)
    blocks = (("last", LastStep()), ("mean", MaskedMean()), ("max", MaskedMax()),
              ("attention", AttentionPool(F, 3, seed=seed)))
    for which, m in blocks:
        sd = {k: t64(v, True) for k, v in m.state_dict().items()}
        tx = t64(x, True)
        ty = _torch_poolings(tx, lengths, which, sd)
        ty.backward(t64(dy))
        np.testing.assert_allclose(m.forward(x, lengths=lengths, train=True), ty.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=1e-12)
        for k, g in m.all_grads().items():
            np.testing.assert_allclose(g, sd[k].grad.numpy(), atol=1e-12)


def test_constructor_sizes_and_sequential_state_errors_name_the_argument():
    with pytest.raises(TypeError, match="in_features: expected an int >= 1, got float 3.5"):
        Linear(3.5, 2)
    with pytest.raises(ValueError, match="out_features: expected an int >= 1, got 0"):
        Linear(3, 0)
    with pytest.raises(TypeError, match="embedding_dim: expected an int >= 1, got str '4'"):
        Embedding(5, "4")
    seq = Sequential(GRU(3, 4), LastStep(), Linear(4, 2))
    x = np.zeros((2, 5, 3))
    with pytest.raises(TypeError, match=r"state: expected a list with one entry per recurrent module \(1\), "
                                        r"got ndarray"):
        seq.forward(x, state=np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"state: expected a list .* got a list of 2"):
        seq.forward(x, state=[None, None])
    with pytest.raises(TypeError, match=r"p: expected a probability in \[0, 1\], got str '0.5'"):
        Dropout("0.5")
    with pytest.raises(ValueError, match=r"logits: empty input \(shape \(0, 3\)\)"):
        CrossEntropy().forward(np.zeros((0, 3)), np.zeros(0, int))


def test_per_step_head_is_zero_past_each_length_and_equals_torch_before():
    # docs/equations.md: positions past a sequence's length give zero output -- also after a Linear
    # head, which on torch's padded output would put its bias there. Valid steps equal torch.
    import rnncore as rc

    rng = np.random.default_rng(11)
    x, lengths = rng.standard_normal((3, 5, 2)), np.array([5, 2, 1])
    gru, head = rc.nn.GRU(2, 4, seed=3), Linear(4, 3, seed=4)
    model = Sequential(gru, head)
    y = model.forward(x, lengths=lengths, train=True)
    tg, tl = torch.nn.GRU(2, 4, batch_first=True).double(), torch.nn.Linear(4, 3).double()
    tg.load_state_dict({k: torch.tensor(v) for k, v in gru.state_dict().items()})
    tl.load_state_dict({k: torch.tensor(v) for k, v in head.state_dict().items()})
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(tg(packed)[0], batch_first=True, total_length=5)
    ref = tl(out).detach().numpy()
    valid = np.arange(5)[None, :] < lengths[:, None]
    np.testing.assert_allclose(y[valid], ref[valid], atol=1e-12)
    assert np.all(y[~valid] == 0) and np.abs(ref[~valid]).min() > 0
    # the gradient of anything placed on the padded positions is zero
    model.zero_grad()
    dy = rng.standard_normal(y.shape) * ~valid[..., None]
    model.backward(dy)
    assert all(np.all(g == 0) for g in model.all_grads().values())
    rep = check_module(model, x, lengths=lengths)
    assert rep.ok, rep


# -- ConcatPool ------------------------------------------------------------------------------
def _concat_pools():
    return {"last": LastStep, "bilast": lambda: LastStep(bidirectional=True), "mean": MaskedMean,
            "max": MaskedMax}


def _torch_concat(tx, lengths, parts):
    out = []
    for which in parts:
        if which == "bilast":
            F = tx.shape[2]
            last = _torch_poolings(tx, lengths, "last", {})
            out.append(torch.cat([last[:, : F // 2], tx[:, 0, F // 2:]], 1))
        else:
            out.append(_torch_poolings(tx, lengths, which, {}))
    return torch.cat(out, -1)


@pytest.mark.parametrize("parts", [("mean", "max"), ("max", "mean"), ("last", "max", "mean"),
                                   ("bilast", "mean"), ("max",), ("last", "mean", "max")])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_concat_pool_gradcheck_and_torch(parts, lengths):
    x = RNG.standard_normal((4, 5, 6))
    dy = RNG.standard_normal((4, 6 * len(parts)))
    m = ConcatPool(*(_concat_pools()[p]() for p in parts))
    rep = check_module(m, x, lengths=lengths)
    assert rep.ok, rep
    tx = t64(x, True)
    ty = _torch_concat(tx, np.full(4, 5) if lengths is None else lengths, parts)
    ty.backward(t64(dy))
    y = m.forward(x, lengths=lengths, train=True)
    assert y.shape == (4, 6 * len(parts))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 6), F=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       parts=st.lists(st.sampled_from(["last", "mean", "max"]), min_size=1, max_size=3, unique=True))
def test_concat_pool_matches_torch_on_random_lengths(B, T, F, seed, parts):
    rng = np.random.default_rng(seed)
    x, dy = rng.standard_normal((B, T, F)), rng.standard_normal((B, F * len(parts)))
    lengths = rng.integers(1, T + 1, B)
    m = ConcatPool([_concat_pools()[p]() for p in parts])
    tx = t64(x, True)
    ty = _torch_concat(tx, lengths, parts)
    ty.backward(t64(dy))
    np.testing.assert_allclose(m.forward(x, lengths=lengths, train=True), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=1e-12)
    mask = mask_from_lengths(lengths, T)
    np.testing.assert_array_equal(m.forward(x, mask=mask), m.forward(x, lengths=lengths))


def test_concat_pool_float32_and_errors_name_the_argument():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    y = ConcatPool(MaskedMean(), MaskedMax()).forward(x)
    assert y.dtype == np.float32 and y.shape == (2, 8)
    with pytest.raises(ValueError, match="pools: expected at least one"):
        ConcatPool()
    with pytest.raises(TypeError, match=r"pools\[1\]: expected a LastStep, MaskedMean or MaskedMax, got Lin"):
        ConcatPool(MaskedMean(), Linear(2, 2))
    with pytest.raises(TypeError, match=r"pools\[0\]: AttentionPool is not supported inside ConcatPool"):
        ConcatPool(AttentionPool(4, 2))
    p = MaskedMax()
    with pytest.raises(ValueError, match=r"pools\[1\]: the same MaskedMax instance"):
        ConcatPool(p, p)
    m = ConcatPool(MaskedMean(), MaskedMax())
    with pytest.raises(RuntimeError, match="ConcatPool.backward: call forward"):
        m.backward(np.zeros((2, 8)))
    m.forward(x, train=True)
    with pytest.raises(ValueError, match=r"ConcatPool.backward: dy expected shape \(2, 8\)"):
        m.backward(np.zeros((2, 4), np.float32))
    seq = Sequential(Linear(4, 4), ConcatPool(LastStep(), MaskedMax()))
    assert seq.forward(RNG.standard_normal((2, 3, 4)), lengths=np.array([3, 1])).shape == (2, 8)
