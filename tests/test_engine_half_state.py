"""One direction's final state of a bidirectional layer (PyTorch ``h_n[-2]`` / ``h_n[-1]``):
``rc.nn.LastStep(bidirectional=True, direction="forward" | "backward")`` against PyTorch, finite
differences, and in the engine (f32 vs PyTorch, q8 bit for bit vs the NumPy q8 spec, stream vs run)."""

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.gradcheck import check_module
from rnncore.nn.layers import ConcatPool, LastStep

CELLS = {"gru": (torch.nn.GRU, rc.nn.GRU), "lstm": (torch.nn.LSTM, rc.nn.LSTM)}


def _twins(cell, layers, seed, I=3, H=5, dtype=torch.float64):
    """A PyTorch bidirectional GRU/LSTM and its rc.nn twin (same weights)."""
    torch.manual_seed(seed)
    tm = CELLS[cell][0](I, H, num_layers=layers, batch_first=True, bidirectional=True).to(dtype)
    m = CELLS[cell][1](I, H, num_layers=layers, bidirectional=True,
                       dtype="float64" if dtype == torch.float64 else "float32")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, m


def _h_n(tm, x, lengths):
    """PyTorch's final states of a packed batch, ``(layers * 2, B, H)``."""
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    _, h = tm(packed)
    return h[0] if isinstance(h, tuple) else h


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("layers", [1, 2])
def test_layer_equals_torch_h_n_of_a_packed_bidirectional_layer(cell, layers):
    rng = np.random.default_rng(layers)
    x, lengths = rng.standard_normal((4, 6, 3)), np.array([6, 2, 5, 1])
    tm, m = _twins(cell, layers, seed=3)
    h_n = _h_n(tm, x, lengths).detach().numpy()
    for direction, want in (("backward", h_n[-1]), ("forward", h_n[-2])):
        y = rc.nn.Sequential(m, LastStep(bidirectional=True, direction=direction)).forward(x, lengths=lengths)
        np.testing.assert_allclose(y, want, atol=1e-12)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_layer_backward_equals_torch_and_finite_differences(direction):
    rng = np.random.default_rng(5)
    x, lengths, dy = rng.standard_normal((4, 5, 6)), np.array([5, 1, 3, 4]), rng.standard_normal((4, 3))
    m = LastStep(bidirectional=True, direction=direction)
    tx = torch.tensor(x, requires_grad=True)
    rows = torch.arange(4)
    ty = tx[rows, torch.as_tensor(lengths) - 1, :3] if direction == "forward" else tx[:, 0, 3:]
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(m.forward(x, lengths=lengths, train=True), ty.detach().numpy(), atol=0)
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=0)
    rep = check_module(m, x, lengths=lengths)
    assert rep.ok, rep


def test_layer_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="direction: expected 'both', 'forward' or 'backward', got 'last'"):
        LastStep(bidirectional=True, direction="last")
    with pytest.raises(TypeError, match="direction: expected"):
        LastStep(bidirectional=True, direction=1)
    with pytest.raises(ValueError, match="direction='backward' .* needs bidirectional=True"):
        LastStep(direction="backward")
    with pytest.raises(ValueError, match=r"pools\[0\]: LastStep\(direction='forward'\)"):
        ConcatPool(LastStep(bidirectional=True, direction="forward"), rc.nn.MaskedMean())
    with pytest.raises(ValueError, match="even feature size, got 5"):
        LastStep(bidirectional=True, direction="forward").forward(np.zeros((1, 2, 5)))
    assert "direction='backward'" in repr(LastStep(bidirectional=True, direction="backward"))
