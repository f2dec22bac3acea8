"""Losses: values and gradients against PyTorch (float64, 1e-8) and finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.gradcheck import check_loss
from rnncore.nn.layers import mask_from_lengths
from rnncore.nn.losses import CTC, MAE, MSE, BCEWithLogits, CrossEntropy

RNG = np.random.default_rng(99)
TOL = dict(rtol=1e-8, atol=1e-10)


def t64(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def torch_value_grad(fn, x):
    tx = t64(x, True)
    out = fn(tx)
    out.backward()
    return out.item(), tx.grad.numpy()


# -- cross-entropy -----------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_per_sequence_matches_torch(reduction, smoothing):
    logits = RNG.standard_normal((6, 5)) * 3
    target = RNG.integers(0, 5, 6)
    loss = CrossEntropy(reduction=reduction, label_smoothing=smoothing)
    v = loss.forward(logits, target)
    tv, tg = torch_value_grad(
        lambda z: F.cross_entropy(z, torch.tensor(target), reduction=reduction, label_smoothing=smoothing),
        logits)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_per_step_with_lengths_matches_torch_on_valid_steps(reduction):
    B, T, C = 4, 6, 3
    lengths = np.array([6, 1, 4, 2])
    logits = RNG.standard_normal((B, T, C))
    target = RNG.integers(0, C, (B, T))
    target[~mask_from_lengths(lengths, T)] = 99            # padding targets are ignored
    valid = torch.tensor(mask_from_lengths(lengths, T))
    loss = CrossEntropy(reduction=reduction)
    v = loss.forward(logits, target, lengths=lengths)
    tv, tg = torch_value_grad(
        lambda z: F.cross_entropy(z[valid], torch.tensor(target)[valid], reduction=reduction), logits)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)
    assert loss.forward(logits, target, mask=mask_from_lengths(lengths, T)) == v


def test_cross_entropy_gradcheck():
    lengths = np.array([3, 1, 2])
    assert check_loss(CrossEntropy(), RNG.standard_normal((3, 3, 4)), RNG.integers(0, 4, (3, 3)),
                      lengths=lengths).ok
    logits, target = RNG.standard_normal((5, 4)), RNG.integers(0, 4, 5)
    assert check_loss(CrossEntropy(label_smoothing=0.1), logits, target).ok


# -- element-wise ------------------------------------------------------------------------------
ELEMENTWISE = [
    (MSE, lambda z, y, r: F.mse_loss(z, y, reduction=r)),
    (MAE, lambda z, y, r: F.l1_loss(z, y, reduction=r)),
    (BCEWithLogits, lambda z, y, r: F.binary_cross_entropy_with_logits(z, y, reduction=r)),
]


@pytest.mark.parametrize("cls,tfn", ELEMENTWISE)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_elementwise_losses_match_torch(cls, tfn, reduction):
    x = RNG.standard_normal((4, 3, 2)) * 4
    y = RNG.random((4, 3, 2)) if cls is BCEWithLogits else RNG.standard_normal((4, 3, 2))
    x[0, 0, 0] = y[0, 0, 0]                                   # MAE at a kink: torch's gradient is 0
    loss = cls(reduction=reduction)
    v = loss.forward(x, y)
    tv, tg = torch_value_grad(lambda z: tfn(z, t64(y), reduction), x)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)


@pytest.mark.parametrize("cls,tfn", ELEMENTWISE)
def test_elementwise_losses_with_lengths_match_torch_on_valid_steps(cls, tfn):
    lengths = np.array([3, 1, 2, 3])
    x = RNG.standard_normal((4, 3, 2))
    y = RNG.random((4, 3, 2))
    valid = torch.tensor(mask_from_lengths(lengths, 3))
    loss = cls()
    v = loss.forward(x, y, lengths=lengths)
    tv, tg = torch_value_grad(lambda z: tfn(z[valid], t64(y)[valid], "mean"), x)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)


def test_bce_pos_weight_matches_torch():
    x, y = RNG.standard_normal((5, 3)) * 5, RNG.random((5, 3))
    pw = np.array([0.5, 2.0, 3.0])
    loss = BCEWithLogits(pos_weight=pw)
    v = loss.forward(x, y)
    tv, tg = torch_value_grad(lambda z: F.binary_cross_entropy_with_logits(z, t64(y), pos_weight=t64(pw)), x)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)


def test_bce_is_stable_for_huge_logits():
    loss = BCEWithLogits()
    v = loss.forward(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert v == pytest.approx(800.0) and np.all(np.isfinite(loss.backward()))


@pytest.mark.parametrize("cls", [MSE, MAE, BCEWithLogits])
def test_elementwise_gradcheck(cls):
    x = RNG.standard_normal((3, 4, 2))
    assert check_loss(cls(), x, RNG.random((3, 4, 2)), lengths=np.array([4, 2, 1])).ok


def test_float32_gradient_dtype():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    for loss, y in ((MSE(), x * 0), (CrossEntropy(), np.array([0, 1, 2]))):
        loss.forward(x, y)
        assert loss.backward().dtype == np.float32


# -- CTC -----------------------------------------------------------------------------------------
def torch_ctc(logits, targets, in_len, tgt_len, blank, reduction, zero_infinity=False):
    tx = t64(logits, True)
    lp = F.log_softmax(tx, -1).transpose(0, 1)
    out = F.ctc_loss(lp, torch.tensor(targets), torch.tensor(in_len), torch.tensor(tgt_len), blank=blank,
                     reduction=reduction, zero_infinity=zero_infinity)
    out.backward()
    return out.item(), tx.grad.numpy()


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 12), C=st.integers(2, 5), S=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1), reduction=st.sampled_from(["mean", "sum"]), blank_last=st.booleans())
def test_ctc_matches_torch_on_random_lengths(B, T, C, S, seed, reduction, blank_last):
    rng = np.random.default_rng(seed)
    blank = C - 1 if blank_last else 0
    labels = [c for c in range(C) if c != blank]
    logits = rng.standard_normal((B, T, C)) * 2
    in_len = rng.integers(1, T + 1, B)
    tgt_len = np.array([rng.integers(0, min(S, il) + 1) for il in in_len])   # mostly feasible
    targets = rng.choice(labels, (B, S))
    loss = CTC(blank=blank, reduction=reduction, zero_infinity=True)
    v = loss.forward(logits, targets, in_len, tgt_len)
    tv, tg = torch_ctc(logits, targets, in_len, tgt_len, blank, reduction, zero_infinity=True)
    np.testing.assert_allclose(v, tv, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(loss.backward(), tg, rtol=1e-8, atol=1e-9)


def test_ctc_repeated_labels_and_zero_length_targets_match_torch():
    logits = RNG.standard_normal((3, 7, 4))
    targets = np.array([[1, 1, 2], [3, 3, 3], [2, 0, 0]])
    in_len, tgt_len = np.array([7, 6, 5]), np.array([3, 3, 0])
    loss = CTC()
    v = loss.forward(logits, targets, in_len, tgt_len)
    tv, tg = torch_ctc(logits, targets, in_len, tgt_len, 0, "mean")
    np.testing.assert_allclose(v, tv, rtol=1e-8)
    np.testing.assert_allclose(loss.backward(), tg, rtol=1e-8, atol=1e-10)


def test_ctc_impossible_alignment_is_infinite_or_zeroed():
    logits = RNG.standard_normal((2, 3, 3))
    targets = np.array([[1, 1, 1], [1, 2, 0]])               # 1,1,1 needs 5 steps
    in_len, tgt_len = np.array([3, 3]), np.array([3, 2])
    loss = CTC(reduction="sum")
    assert loss.forward(logits, targets, in_len, tgt_len) == np.inf
    assert loss.losses[0] == np.inf and np.isfinite(loss.losses[1])
    zl = CTC(reduction="sum", zero_infinity=True)
    v = zl.forward(logits, targets, in_len, tgt_len)
    tv, tg = torch_ctc(logits, targets, in_len, tgt_len, 0, "sum", zero_infinity=True)
    np.testing.assert_allclose(v, tv, rtol=1e-8)
    np.testing.assert_allclose(zl.backward(), tg, rtol=1e-8, atol=1e-10)
    assert np.all(zl.backward()[0] == 0)


def test_ctc_gradcheck():
    logits = RNG.standard_normal((3, 6, 4))
    rep = check_loss(CTC(blank=0), logits, np.array([[1, 2, 2], [3, 1, 0], [2, 0, 0]]),
                     np.array([6, 5, 4]), np.array([3, 2, 1]))
    assert rep.ok, rep


# -- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    ce = CrossEntropy()
    with pytest.raises(ValueError, match=r"target: expected shape \(3,\)"):
        ce.forward(np.zeros((3, 4)), np.zeros(4, int))
    with pytest.raises(TypeError, match="target: expected integer class indices"):
        ce.forward(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"target: expected class indices in 0..3, got 0..4"):
        ce.forward(np.zeros((3, 4)), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="lengths: expected every length in 1..2"):
        ce.forward(np.zeros((2, 2, 4)), np.zeros((2, 2), int), lengths=np.array([0, 2]))
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropy(reduction="avg")
    with pytest.raises(RuntimeError, match="call forward first"):
        MSE().backward()
    with pytest.raises(ValueError, match=r"target: expected shape \(2, 3\)"):
        MSE().forward(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="input: expected a floating-point array"):
        MAE().forward(np.zeros((2, 3), int), np.zeros((2, 3)))
    ctc = CTC()
    with pytest.raises(ValueError, match=r"logits: expected shape \(batch, time, classes\)"):
        ctc.forward(np.zeros((2, 3)), np.zeros((2, 1), int))
    with pytest.raises(ValueError, match="targets: expected labels in 0..2 other than blank=0"):
        ctc.forward(np.zeros((1, 4, 3)), np.array([[1, 0]]), np.array([4]), np.array([2]))
    with pytest.raises(ValueError, match=r"input_lengths: expected values in 1..4, got 5..5"):
        ctc.forward(np.zeros((1, 4, 3)), np.array([[1, 2]]), np.array([5]), np.array([2]))
    with pytest.raises(ValueError, match=r"target_lengths: expected shape \(1,\)"):
        ctc.forward(np.zeros((1, 4, 3)), np.array([[1, 2]]), np.array([4]), np.array([2, 2]))


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 6), C=st.integers(2, 5), seed=st.integers(0, 2**31 - 1),
       smoothing=st.sampled_from([0.0, 0.1]))
def test_cross_entropy_per_step_matches_torch_on_random_lengths(B, T, C, seed, smoothing):
    rng = np.random.default_rng(seed)
    logits, target = rng.standard_normal((B, T, C)) * 3, rng.integers(0, C, (B, T))
    lengths = rng.integers(1, T + 1, B)
    valid = torch.tensor(mask_from_lengths(lengths, T))
    loss = CrossEntropy(label_smoothing=smoothing)
    v = loss.forward(logits, target, lengths=lengths)
    tv, tg = torch_value_grad(
        lambda z: F.cross_entropy(z[valid], torch.tensor(target)[valid], label_smoothing=smoothing), logits)
    np.testing.assert_allclose(v, tv, **TOL)
    np.testing.assert_allclose(loss.backward(), tg, **TOL)


def test_ctc_trains_a_gru_to_transcribe_a_toy_task():
    """Inputs are one-hot symbols (1..3) each held for 2-3 steps; the target is the symbol string."""
    import rnncore as rc

    rng = np.random.default_rng(0)
    B, S, C = 24, 3, 4
    targets = rng.integers(1, C, (B, S))
    X = np.zeros((B, 4 * S, C))
    in_len = np.zeros(B, np.int64)
    for b in range(B):
        t = 0
        for s in range(S):
            for _ in range(rng.integers(2, 4)):
                X[b, t, targets[b, s]] = 1.0
                t += 1
            t += 1                                                  # a silent step between symbols
        in_len[b] = t - 1
    tgt_len = np.full(B, S)
    model = rc.nn.Sequential(rc.nn.GRU(C, 16, seed=0), rc.nn.Linear(16, C, seed=1))
    opt, loss = rc.nn.Adam(model, lr=0.03), CTC(blank=0)
    values = []
    for _ in range(60):
        model.zero_grad()
        values.append(loss.forward(model.forward(X, lengths=in_len, train=True), targets, in_len, tgt_len))
        model.backward(loss.backward())
        opt.step()
    assert values[-1] < 0.1 * values[0]
    # greedy decoding (collapse repeats, drop blanks) recovers the targets
    best = np.argmax(model.forward(X, lengths=in_len), axis=-1)
    decoded = []
    for b in range(B):
        path = best[b, : in_len[b]]
        decoded.append([int(k) for i, k in enumerate(path) if k != 0 and (i == 0 or k != path[i - 1])])
    assert np.mean([d == list(t) for d, t in zip(decoded, targets, strict=True)]) > 0.9
