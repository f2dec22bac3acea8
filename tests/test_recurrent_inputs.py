"""Inputs the way users actually hand them over, checked against torch.nn.RNN/GRU/LSTM.

Lengths as a list or a torch tensor, Fortran-ordered and non-contiguous ``x``, an initial
state for a bidirectional stack, the LSTM state as a tuple or a list, T = 1 and hidden = 1,
``train`` as the fourth positional argument (the order of the issue's signature
``forward(x, state, lengths, train)``), and ``backward`` called twice. Every case must give
torch's numbers (float64, 1e-10) or a clear error naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnncore as rc

ATOL = 1e-10


def torch_run(tm, x, state=None, lengths=None):
    """torch's y (B, T, D*P) and final state(s), with packed-sequence lengths."""
    xt = torch.tensor(np.ascontiguousarray(x))
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=True,
                                                      enforce_sorted=False)
    with torch.no_grad():
        y, hn = tm(inp, state)
    if lengths is not None:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
    hn = tuple(h.numpy() for h in hn) if isinstance(hn, tuple) else hn.numpy()
    return y.numpy(), hn


def pair(kind, I, H, **kw):
    tm = getattr(torch.nn, kind)(I, H, batch_first=True, dtype=torch.float64, **kw)
    ours = getattr(rc.nn, kind)(I, H, **kw)
    ours.load_state_dict(tm.state_dict())
    return tm, ours


def assert_same(ours_out, torch_out):
    (y, hn), (yt, hnt) = ours_out, torch_out
    np.testing.assert_allclose(y, yt, rtol=0, atol=ATOL)
    for a, b in zip(hn if isinstance(hn, tuple) else (hn,), hnt if isinstance(hnt, tuple) else (hnt,),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_lengths_as_list_numpy_or_torch_tensor(kind):
    tm, ours = pair(kind, 3, 4, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((3, 5, 3))
    ref = torch_run(tm, x, lengths=[5, 2, 3])
    for lengths in ([5, 2, 3], (5, 2, 3), np.array([5, 2, 3], np.int32), np.array([5, 2, 3], np.uint8),
                    torch.tensor([5, 2, 3])):
        assert_same(ours.forward(x, lengths=lengths), ref)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_fortran_ordered_and_strided_x(kind):
    tm, ours = pair(kind, 3, 4, bidirectional=True)
    base = np.random.default_rng(1).standard_normal((4, 12, 6))
    for x in (np.asfortranarray(base[:, :5, :3]), base[::2, ::2, 1::2], base[:, ::-1, :3][:, :6]):
        assert not x.flags.c_contiguous
        B, T = x.shape[:2]
        lengths = [T] + [1 + b % T for b in range(1, B)]
        assert_same(ours.forward(x), torch_run(tm, x))
        assert_same(ours.forward(x, lengths=lengths), torch_run(tm, x, lengths=lengths))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_initial_state_for_a_bidirectional_stack(kind):
    tm, ours = pair(kind, 2, 3, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 2))
    h0, c0 = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    if kind == "LSTM":
        ref = torch_run(tm, x, (torch.tensor(h0), torch.tensor(c0)), lengths=[4, 3])
        assert_same(ours.forward(x, state=(h0, c0), lengths=[4, 3]), ref)
        assert_same(ours.forward(x, state=[h0, c0], lengths=[4, 3]), ref)   # a list works too
        with pytest.raises(ValueError, match=r"state\[0\] \(h\): expected shape \(4, 2, 3\)"):
            ours.forward(x, state=(h0[:2], c0))  # a state for one direction only
    else:
        assert_same(ours.forward(x, state=h0, lengths=[4, 3]), torch_run(tm, x, torch.tensor(h0), [4, 3]))
        with pytest.raises(ValueError, match=r"state: expected shape \(4, 2, 3\) .* got \(2, 2, 3\)"):
            ours.forward(x, state=h0[:2])


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_one_step_and_one_hidden_unit(kind):
    tm, ours = pair(kind, 1, 1, num_layers=2, bidirectional=True)
    x = np.random.default_rng(3).standard_normal((2, 1, 1))
    assert_same(ours.forward(x), torch_run(tm, x))
    assert_same(ours.forward(x, lengths=[1, 1]), torch_run(tm, x, lengths=[1, 1]))


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_train_is_the_fourth_positional_argument_and_mask_is_keyword_only(kind):
    tm, ours = pair(kind, 3, 4)
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    y, _ = ours.forward(x, None, [5, 3], True)
    assert ours._cache is not None  # train=True kept what backward needs
    np.testing.assert_allclose(y, torch_run(tm, x, lengths=[5, 3])[0], rtol=0, atol=ATOL)
    with pytest.raises(TypeError):
        ours.forward(x, None, None, None, np.ones((2, 5), bool))  # mask only by name
    with pytest.raises(TypeError, match="train: expected a bool, got str 'no'"):
        ours.forward(x, train="no")


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_backward_twice_adds_the_gradients_again(kind):
    """Like torch's backward(retain_graph=True) twice: .grad holds twice the gradient, dx is the same."""
    tm, ours = pair(kind, 3, 4, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt, _ = tm(xt)
    w = rng.standard_normal(yt.shape)
    loss = (yt * torch.tensor(w)).sum()
    loss.backward(retain_graph=True)
    dx_t = xt.grad.numpy().copy()
    loss.backward()
    ours.forward(x, train=True)
    dx1, _ = ours.backward(w)
    dx2, _ = ours.backward(w)
    np.testing.assert_allclose(dx1, dx_t, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(dx1, dx2)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=0, atol=1e-9, err_msg=name)


def test_torch_tensors_where_arrays_are_expected_get_a_hint():
    ours = rc.nn.GRU(3, 4)
    with pytest.raises(ValueError, match=r"got shape \(5, 3\); one sequence \(time, features\) is x\[None\]"):
        ours.forward(np.zeros((5, 3)))  # torch would take it as one unbatched sequence
    x = torch.zeros(2, 5, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray .* got Tensor; convert .*numpy\(\)"):
        ours.forward(x)
    with pytest.raises(TypeError, match=r"state: expected a numpy.ndarray .* got Tensor; convert"):
        ours.forward(x.numpy(), state=torch.zeros(1, 2, 4, dtype=torch.float64))


def test_float32_layer_fed_float64_is_an_error_like_torch():
    """torch refuses a float64 input to a float32 GRU (ValueError in torch 2.13); so do we, with a
    TypeError (Python's convention for a wrong type) that says what to do."""
    tm = torch.nn.GRU(3, 4, batch_first=True)
    with pytest.raises((ValueError, RuntimeError), match="dtype"):
        tm(torch.zeros(1, 2, 3, dtype=torch.float64))
    ours = rc.nn.GRU(3, 4, dtype="float32")
    with pytest.raises(TypeError, match=r"x: dtype float64 does not match the layer's dtype float32; "
                                        r"convert with x.astype\('float32'\)"):
        ours.forward(np.zeros((1, 2, 3)))


def test_modules_are_callable_like_torch_modules():
    tm, ours = pair("LSTM", 3, 4, num_layers=2)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    assert_same(ours(x, lengths=[5, 2]), torch_run(tm, x, lengths=[5, 2]))
    head = rc.nn.Linear(4, 2)
    tl = torch.nn.Linear(4, 2, dtype=torch.float64)
    head.load_state_dict(tl.state_dict())
    z = np.random.default_rng(7).standard_normal((3, 4))
    np.testing.assert_allclose(head(z), tl(torch.tensor(z)).detach().numpy(), rtol=0, atol=ATOL)
    seq = rc.nn.Sequential(ours, rc.nn.LastStep(), head)
    np.testing.assert_array_equal(seq(x, lengths=[5, 2]), seq.forward(x, lengths=[5, 2]))


def test_a_list_of_ragged_sequences_is_pointed_to_pad_sequences_which_matches_torch_packing():
    from rnncore.datasets import pad_sequences

    tm, ours = pair("GRU", 3, 4, bidirectional=True)
    rng = np.random.default_rng(8)
    seqs = [rng.standard_normal((n, 3)) for n in (5, 2, 4)]
    with pytest.raises(TypeError, match=r"got list; for sequences of different lengths, .*pad_sequences"):
        ours.forward(seqs)
    X, lengths = pad_sequences(seqs)
    packed = torch.nn.utils.rnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    with torch.no_grad():
        yt, ht = tm(packed)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=True)
    assert_same(ours(X, lengths=lengths), (yt.numpy(), ht.numpy()))
