"""Pooling options over time: dilation, ceil_mode, count_include_pad (issue 16).

Forward and gradient against PyTorch's own ``nn.MaxPool1d`` / ``nn.AvgPool1d`` (float64, on
rnncore's (batch, time, features) layout), backward against finite differences, and the
options that need the whole sequence refused by lengths and streaming.
"""

import numpy as np
import pytest
import torch

from rnncore.gradcheck import check_module
from rnncore.nn.conv import AvgPool1d, MaxPool1d, conv_output_length

RNG = np.random.default_rng(1616)


def _torch(m, xt):
    """PyTorch's pooling of ``xt (B, T, C)`` with m's options (symmetric padding)."""
    assert m.pad_left == m.pad_right
    if isinstance(m, MaxPool1d):
        tm = torch.nn.MaxPool1d(m.kernel_size, m.stride, m.pad_left, dilation=m.dilation,
                                ceil_mode=m.ceil_mode)
    else:
        tm = torch.nn.AvgPool1d(m.kernel_size, m.stride, m.pad_left, ceil_mode=m.ceil_mode,
                                count_include_pad=m.count_include_pad)
    return tm(xt.transpose(1, 2)).transpose(1, 2)


MAX_CASES = [  # k, stride, padding, dilation, ceil_mode, T
    (3, 2, 1, 1, True, 10), (3, 2, 0, 1, True, 10), (2, 2, 1, 1, True, 7), (3, 3, 1, 2, True, 11),
    (3, 1, 1, 2, False, 9), (4, 3, 2, 1, True, 8), (2, 3, 0, 1, True, 9), (5, 2, 2, 1, True, 6),
]
AVG_CASES = [  # k, stride, padding, ceil_mode, count_include_pad, T
    (3, 2, 1, True, True, 10), (3, 2, 1, True, False, 10), (3, 2, 1, False, False, 9),
    (4, 3, 2, True, True, 8), (4, 3, 2, True, False, 8), (2, 2, 1, True, True, 7),
    (5, 2, 2, False, False, 6), (2, 3, 0, True, True, 9),
]


@pytest.mark.parametrize("k,s,p,d,ceil,T", MAX_CASES)
def test_maxpool_dilation_and_ceil_mode_match_torch(k, s, p, d, ceil, T):
    m = MaxPool1d(k, 3, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    x = RNG.standard_normal((2, T, 3))
    xt = torch.tensor(x, requires_grad=True)
    ref = _torch(m, xt)
    dy = RNG.standard_normal(ref.shape)
    (ref * torch.tensor(dy)).sum().backward()
    y = m.forward(x, train=True)
    assert y.shape == tuple(ref.shape)
    assert y.shape[1] == conv_output_length(T, k, s, d, p, p, ceil)
    np.testing.assert_array_equal(y, ref.detach().numpy())
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    rep = check_module(m, x)
    assert rep.ok, rep


@pytest.mark.parametrize("k,s,p,ceil,cip,T", AVG_CASES)
def test_avgpool_ceil_mode_and_count_include_pad_match_torch(k, s, p, ceil, cip, T):
    m = AvgPool1d(k, 3, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
    x = RNG.standard_normal((2, T, 3))
    xt = torch.tensor(x, requires_grad=True)
    ref = _torch(m, xt)
    dy = RNG.standard_normal(ref.shape)
    (ref * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    rep = check_module(m, x)
    assert rep.ok, rep


def test_avgpool_count_include_pad_false_hand_computed():
    x = np.array([[[1.0], [2.0], [4.0], [8.0]]])
    m = AvgPool1d(3, 1, stride=1, padding="same", count_include_pad=False)
    np.testing.assert_allclose(m.forward(x)[0, :, 0], [1.5, 7 / 3, 14 / 3, 6.0])
    # padded input [0, 1, 2, 4, 8, 0]; windows at 0, 2, 4 (ceil), the last one holds 8, the right
    # pad 0 (counted) and a tap past the padding (not counted): (8 + 0) / 2
    m = AvgPool1d(3, 1, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_allclose(m.forward(x)[0, :, 0], [1.0, 14 / 3, 4.0])


def test_options_that_need_the_whole_sequence_are_refused():
    x = RNG.standard_normal((2, 6, 2))
    with pytest.raises(ValueError, match="count_include_pad=False"):
        AvgPool1d(3, 2, stride=1, padding="same", count_include_pad=False).forward(x, lengths=[6, 3])
    with pytest.raises(ValueError, match="ceil_mode"):
        MaxPool1d(3, 2, stride=2, ceil_mode=True).stream_state(1)
    with pytest.raises(ValueError, match="count_include_pad=False"):
        AvgPool1d(3, 2, stride=1, padding="causal", count_include_pad=False).stream_state(1)
    with pytest.raises(TypeError, match="ceil_mode"):
        MaxPool1d(3, 2, ceil_mode=1)
    with pytest.raises(ValueError, match="kernel_size // 2"):
        MaxPool1d(3, 2, padding=2)


def test_dilated_causal_maxpool_streams_like_the_whole_sequence():
    m = MaxPool1d(3, 2, stride=1, padding="causal", dilation=2)
    x = RNG.standard_normal((2, 12, 2))
    state, outs = None, []
    for t in range(12):
        y, state = m.stream(x[:, t:t + 1], state)
        outs.append(y)
    np.testing.assert_array_equal(np.concatenate(outs, axis=1), m.forward(x))
