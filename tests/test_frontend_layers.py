"""Front-end and per-step layers (issue 16): finite differences, PyTorch, streaming.

Every layer's backward is checked against central finite differences in float64
(rnncore.gradcheck.check_module), its forward and its gradients against the same PyTorch
module (torch.nn.Conv1d, MaxPool1d, AvgPool1d, ReLU, Sigmoid, Tanh, Hardsigmoid, GELU, LayerNorm,
BatchNorm1d) on rnncore's (batch, time, features) layout, and every layer over time run chunk by
chunk (frame by frame and in uneven chunks) against one forward over the whole sequence.
"""

import numpy as np
import pytest
import torch

from rnncore.gradcheck import check_module
from rnncore.nn import GRU, LSTM, Linear, Sequential
from rnncore.nn.conv import AvgPool1d, Conv1d, FrameConv1d, Magnitude, MaxPool1d
from rnncore.nn.norm import BatchNorm1d, InstanceNorm1d, LayerNorm, fold_batchnorm, fold_batchnorms
from rnncore.nn.pointwise import (
    ELU,
    GELU,
    Abs,
    HardSigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    ReLU6,
    Residual,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)

RNG = np.random.default_rng(16)
CONV_CASES = [  # (padding, stride, dilation, groups)
    ("valid", 1, 1, 1),
    ("same", 1, 2, 1),
    ("causal", 1, 1, 2),
    ("causal", 2, 2, 1),
    (1, 2, 1, 2),
    ((3, 0), 3, 1, 1),
    ((2, 1), 1, 1, 4),
]


def t64(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def to_torch_layout(x):  # (B, T, C) -> (B, C, T)
    return x.transpose(1, 2)


def torch_conv(m):
    tc = torch.nn.Conv1d(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        stride=m.stride,
        dilation=m.dilation,
        groups=m.groups,
        bias="bias" in m.params,
    ).double()
    tc.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
    return tc


# -- Conv1d over time ------------------------------------------------------------------------
@pytest.mark.parametrize("padding,stride,dilation,groups", CONV_CASES)
def test_conv1d_gradcheck(padding, stride, dilation, groups):
    m = Conv1d(4, 4, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, seed=1)
    rep = check_module(m, RNG.standard_normal((2, 7, 4)))
    assert rep.ok and set(rep.errors) == {"input", "weight", "bias"}, rep


@pytest.mark.parametrize("padding,stride,dilation,groups", CONV_CASES)
def test_conv1d_matches_torch(padding, stride, dilation, groups):
    m = Conv1d(4, 8, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, seed=2)
    x = RNG.standard_normal((3, 10, 4))
    xt = t64(x, grad=True)
    xp = torch.nn.functional.pad(to_torch_layout(xt), (m.pad_left, m.pad_right))  # zeros, as Conv1d's padding
    tc = torch_conv(m)
    ref = to_torch_layout(tc(xp))
    dy = RNG.standard_normal(ref.shape)
    (ref * t64(dy)).sum().backward()
    y = m.forward(x, train=True)
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    m.zero_grad()
    dx = m.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.grads["weight"], tc.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.grads["bias"], tc.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv1d_same_and_int_padding_are_torchs_own():
    """PyTorch's padding='same' (odd total on the right) and its int padding, not our own padding."""
    x = RNG.standard_normal((2, 9, 3))
    for padding, d in (("same", 1), ("same", 2), (2, 1)):
        m = Conv1d(3, 5, 4, padding=padding, dilation=d, seed=3)
        tc = torch.nn.Conv1d(3, 5, 4, padding=padding, dilation=d).double()
        tc.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
        ref = to_torch_layout(tc(to_torch_layout(t64(x)))).detach().numpy()
        np.testing.assert_allclose(m.forward(x), ref, rtol=1e-12, atol=1e-12)


def test_conv1d_hand_computed():
    m = Conv1d(1, 1, 2, padding="causal", seed=0)
    m.params["weight"][...] = [[[2.0, 3.0]]]  # y_t = 2 x_{t-1} + 3 x_t + 1
    m.params["bias"][...] = 1.0
    y = m.forward(np.array([[[1.0], [10.0], [100.0]]]))
    np.testing.assert_array_equal(y[0, :, 0], [1 + 3, 1 + 2 + 30, 1 + 20 + 300])


def stream_in_cuts(m, x, cuts):
    """``m.stream`` over the steps of ``x (B, T, ...)`` in chunks of ``cuts`` steps (0: an empty
    chunk), its state carried: the outputs concatenated over time, and the last state."""
    state, outs, t = None, [], 0
    for n in cuts:
        y, state = m.stream(x[:, t : t + n], state)
        outs.append(y)
        t += n
    return np.concatenate(outs, axis=1), state


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize(
    "padding,stride,dilation", [("causal", 1, 1), ("causal", 1, 3), ("valid", 2, 1), ((2, 0), 3, 2)]
)
def test_conv1d_stream_equals_whole_sequence(dtype, tol, padding, stride, dilation):
    m = Conv1d(3, 5, 3, stride=stride, padding=padding, dilation=dilation, dtype=dtype, seed=4)
    x = RNG.standard_normal((2, 17, 3)).astype(dtype)
    whole = m.forward(x)
    for cuts in ([1] * 17, [3, 0, 5, 1, 8]):
        got, state = stream_in_cuts(m, x, cuts)
        assert got.shape == whole.shape and got.dtype == whole.dtype
        np.testing.assert_allclose(got, whole, rtol=tol, atol=tol)
    if stride == 1:  # the state is the last (k - 1) * dilation inputs
        assert state.shape == (2, 2 * dilation, 3)
        np.testing.assert_array_equal(state, x[:, 17 - 2 * dilation :])


def test_conv1d_refuses():
    with pytest.raises(ValueError, match="padding_mode: padding='same' at stride=2 pads with zeros"):
        Conv1d(2, 2, 3, stride=2, padding="same", padding_mode="reflect")
    with pytest.raises(ValueError, match="groups"):
        Conv1d(3, 2, 3, groups=2)
    with pytest.raises(ValueError, match="right"):
        Conv1d(2, 2, 3, padding="same").stream_state(1)
    with pytest.raises(ValueError, match="fewer than one window"):
        Conv1d(2, 2, 5).forward(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, time, 2\)"):
        Conv1d(2, 2, 3).forward(np.zeros((1, 5, 3)))
    with pytest.raises(ValueError, match="lengths"):
        Conv1d(2, 2, 3).forward(np.zeros((2, 5, 2)), lengths=[5, 3])


def test_conv1d_lengths_equal_each_sequence_alone():
    m = Conv1d(2, 3, 3, padding="same", seed=5)
    x = RNG.standard_normal((2, 6, 2))
    y = m.forward(x, lengths=np.array([6, 4]))
    np.testing.assert_allclose(y[1, :4], m.forward(x[1:, :4])[0], rtol=1e-12, atol=1e-12)
    rep = check_module(m, x, lengths=np.array([6, 4]))
    assert rep.ok, rep


# -- pooling ------------------------------------------------------------------------------------
POOL_CASES = [(2, None, 0), (3, 2, 1), (3, 1, "causal"), (4, 3, (2, 0)), (3, 1, "same")]


def torch_pool(cls, k, s, pl, pr, x):
    xp = torch.nn.functional.pad(to_torch_layout(x), (pl, pr), value=-np.inf if cls is MaxPool1d else 0.0)
    tm = torch.nn.MaxPool1d(k, s) if cls is MaxPool1d else torch.nn.AvgPool1d(k, s)
    return to_torch_layout(tm(xp))


@pytest.mark.parametrize("cls", [MaxPool1d, AvgPool1d])
@pytest.mark.parametrize("k,s,padding", POOL_CASES)
def test_pool_matches_torch_and_gradcheck(cls, k, s, padding):
    m = cls(k, 3, stride=s, padding=padding)
    x = RNG.standard_normal((2, 9, 3))
    xt = t64(x, grad=True)
    ref = torch_pool(cls, k, m.stride, m.pad_left, m.pad_right, xt)
    dy = RNG.standard_normal(ref.shape)
    (ref * t64(dy)).sum().backward()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    rep = check_module(m, x)
    assert rep.ok, rep


@pytest.mark.parametrize("cls", [MaxPool1d, AvgPool1d])
def test_pool_symmetric_padding_is_torchs(cls):
    x = RNG.standard_normal((2, 9, 3))
    tm = torch.nn.MaxPool1d(3, 2, 1) if cls is MaxPool1d else torch.nn.AvgPool1d(3, 2, 1)
    ref = to_torch_layout(tm(to_torch_layout(t64(x)))).numpy()
    np.testing.assert_allclose(cls(3, 3, stride=2, padding=1).forward(x), ref, rtol=1e-12, atol=1e-12)


def test_maxpool_ties_go_to_the_first_maximum_as_torch():
    x = np.array([[[1.0], [3.0], [3.0], [0.0]]])
    m = MaxPool1d(2, 1, stride=1)
    m.forward(x, train=True)
    xt = t64(x, grad=True)
    to_torch_layout(torch.nn.MaxPool1d(2, 1)(to_torch_layout(xt))).sum().backward()
    np.testing.assert_array_equal(m.backward(np.ones((1, 3, 1))), xt.grad.numpy())


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("cls", [MaxPool1d, AvgPool1d])
@pytest.mark.parametrize("k,s,padding", [(2, None, 0), (3, 1, "causal"), (4, 3, (2, 0))])
def test_pool_stream_equals_whole_sequence(dtype, tol, cls, k, s, padding):
    m = cls(k, 3, stride=s, padding=padding, dtype=dtype)
    x = RNG.standard_normal((2, 14, 3)).astype(dtype)
    whole = m.forward(x)
    state, outs = None, []
    for t in range(14):
        y, state = m.stream(x[:, t : t + 1], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=tol, atol=tol)


# -- the per-frame convolution (STFT by Conv) and the magnitude ----------------------------------
@pytest.mark.parametrize("padding,mode", [(0, "zeros"), ((0, 3), "reflect"), ((2, 2), "zeros")])
def test_frame_conv_matches_torch_per_frame(padding, mode):
    m = FrameConv1d(2, 6, 4, frame_length=10, stride=2, padding=padding, padding_mode=mode, seed=6)
    x = RNG.standard_normal((3, 5, 2 * 10))
    frames = t64(x.reshape(15, 2, 10), grad=True)
    pl, pr = m.pad_left, m.pad_right
    fp = torch.nn.functional.pad(frames, (pl, pr), mode="reflect" if mode == "reflect" else "constant")
    tc = torch.nn.Conv1d(2, 6, 4, stride=2).double()
    tc.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
    ref = tc(fp)  # (15, 6, L_out)
    dy = RNG.standard_normal(ref.shape)
    (ref * t64(dy)).sum().backward()
    y = m.forward(x, train=True)
    assert y.shape == (3, 5, 6 * m.out_length)
    np.testing.assert_allclose(y, ref.detach().numpy().reshape(3, 5, -1), rtol=1e-12, atol=1e-12)
    dx = m.backward(dy.reshape(3, 5, -1))
    np.testing.assert_allclose(dx, frames.grad.numpy().reshape(3, 5, -1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.grads["weight"], tc.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    rep = check_module(
        FrameConv1d(2, 4, 3, frame_length=6, stride=2, padding=(0, 2), padding_mode=mode, groups=2, seed=7),
        RNG.standard_normal((2, 2, 12)),
    )
    assert rep.ok, rep


def test_stft_by_conv_and_magnitude_equal_torch_stft():
    """Silero's front-end: reflect pad, Conv with cos/-sin DFT rows (stride hop), sqrt(re^2 + im^2)."""
    n_fft, hop, L = 16, 4, 40
    F = n_fft // 2 + 1
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).numpy()
    k, n = np.arange(F)[:, None], np.arange(n_fft)[None, :]
    w = np.concatenate([np.cos(2 * np.pi * k * n / n_fft), -np.sin(2 * np.pi * k * n / n_fft)]) * window
    m = FrameConv1d(
        1,
        2 * F,
        n_fft,
        frame_length=L,
        stride=hop,
        padding=(n_fft // 2, n_fft // 2),
        padding_mode="reflect",
        bias=False,
    )
    m.params["weight"][...] = w[:, None, :]
    x = RNG.standard_normal((2, 3, L))
    mag = Magnitude().forward(m.forward(x)).reshape(2, 3, F, -1)
    ref = (
        torch.stft(
            t64(x.reshape(6, L)),
            n_fft,
            hop,
            window=t64(window),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        .abs()
        .numpy()
        .reshape(2, 3, F, -1)
    )
    np.testing.assert_allclose(mag, ref, rtol=1e-11, atol=1e-11)


def test_magnitude_gradcheck_and_torch():
    x = RNG.standard_normal((2, 3, 8))
    rep = check_module(Magnitude(), x)
    assert rep.ok, rep
    xt = t64(x, grad=True)
    ref = torch.sqrt(xt[..., :4] ** 2 + xt[..., 4:] ** 2)
    ref.sum().backward()
    m = Magnitude()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(m.backward(np.ones((2, 3, 4))), xt.grad.numpy(), rtol=1e-13)
    assert np.array_equal(Magnitude().forward(np.array([3.0, 4.0])), [5.0])
    m.forward(np.zeros((1, 2)), train=True)
    assert np.array_equal(m.backward(np.ones((1, 1))), [[0.0, 0.0]])  # |z| = 0: gradient 0, not NaN


# -- activations, residual ------------------------------------------------------------------------
ACTS = [
    (ReLU(), torch.nn.ReLU()),
    (Sigmoid(), torch.nn.Sigmoid()),
    (Tanh(), torch.nn.Tanh()),
    (HardSigmoid(), torch.nn.Hardsigmoid()),
    (GELU(), torch.nn.GELU()),
    (GELU("tanh"), torch.nn.GELU(approximate="tanh")),
    (HardSigmoid(0.2, 0.5), lambda t: torch.clamp(0.2 * t + 0.5, 0, 1)),
    (LeakyReLU(), torch.nn.LeakyReLU()),
    (LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)),
    (ELU(), torch.nn.ELU()),
    (ELU(0.7), torch.nn.ELU(0.7)),
    (Softmax(), torch.nn.Softmax(dim=-1)),
    (LogSoftmax(), torch.nn.LogSoftmax(dim=-1)),
    (Hardtanh(), torch.nn.Hardtanh()),
    (Hardtanh(-2.5, 4.0), torch.nn.Hardtanh(-2.5, 4.0)),
    (ReLU6(), torch.nn.ReLU6()),
    (SiLU(), torch.nn.SiLU()),
    (Hardswish(), torch.nn.Hardswish()),
    (Softplus(), torch.nn.Softplus()),
    (Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)),
    (Softsign(), torch.nn.Softsign()),
]


@pytest.mark.parametrize("ours,theirs", ACTS, ids=lambda a: repr(a)[:24])
def test_activation_matches_torch_and_gradcheck(ours, theirs):
    rng = np.random.default_rng(16)     # its own data: the same whichever cases run before it
    x = rng.uniform(-5, 5, (3, 4, 5))
    x[0, 0, :3] = [-3.0 + 1e-3, 3.0 - 1e-3, 0.0]
    xt = t64(x, grad=True)
    ref = theirs(xt)
    dy = rng.standard_normal(x.shape)
    (ref * t64(dy)).sum().backward()
    np.testing.assert_allclose(ours.forward(x, train=True), ref.detach().numpy(), rtol=1e-14, atol=1e-15)
    # torch's hardsigmoid backward multiplies by float32(1/6) = 0.1666666716 even in float64
    # (checked: grad at 0.5 is 0.1666666716337204), so ours (1/6 in float64) agrees to 3e-8 relative;
    # the finite differences below hold ours to 1e-6 of the exact derivative.
    rtol = 1e-7 if isinstance(theirs, torch.nn.Hardsigmoid) else 1e-13
    atol = 1e-15
    if isinstance(theirs, torch.nn.GELU) and theirs.approximate == "tanh":
        # both compute sech^2(u) as 1 - t^2 with t = tanh(u) rounded: near t = -1 (x < -4) its
        # absolute error is ~2 eps, whatever the rounding of t, times dy x/2 sqrt(2/pi)(1 + 3 k x^2)
        # (up to 3e-15 here, on gradients of 1e-5): the bound both of them carry, element by element
        u1 = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
        atol = 1e-15 + 4 * np.finfo(np.float64).eps * np.abs(dy * x / 2 * u1)
    np.testing.assert_array_less(np.abs(ours.backward(dy) - xt.grad.numpy()),
                                 rtol * np.abs(xt.grad.numpy()) + atol + 1e-300)
    if isinstance(theirs, torch.nn.Hardsigmoid):
        inside = (x > -3) & (x < 3)
        np.testing.assert_allclose(ours.backward(dy), dy * inside / 6, rtol=1e-15, atol=0)
    xs = x.copy()
    xs[np.abs(xs) < 1e-3] = 0.5  # no kink of ReLU inside the finite difference
    xs[np.abs(np.abs(xs) - 3) < 1e-3] = 1.0
    xs[np.abs(np.abs(xs) - 2.5) < 1e-3] = 1.0
    for kink in (1.0, 1.5, 4.0):   # Hardtanh's bounds, Softplus(2, 3)'s threshold
        xs[np.abs(np.abs(xs) - kink) < 1e-3] = 0.5
    rep = check_module(ours, xs)
    assert rep.ok, rep
    y32 = ours.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_gelu_hand_computed():
    # GELU(1) = Phi(1) = 0.8413447460685429 (the standard normal CDF at 1)
    np.testing.assert_allclose(
        GELU().forward(np.array([1.0, 0.0, -1.0])),
        [0.8413447460685429, 0.0, -0.15865525393145707],
        rtol=1e-15,
    )


def test_residual_gradcheck_torch_and_stream():
    conv = Conv1d(3, 3, 3, padding="causal", seed=8)
    r = Residual(conv)
    x = RNG.standard_normal((2, 7, 3))
    rep = check_module(r, x)
    assert rep.ok and set(rep.errors) == {"input", "fn.weight", "fn.bias"}, rep
    tc = torch_conv(conv)
    xt = t64(x)
    ref = xt + to_torch_layout(tc(torch.nn.functional.pad(to_torch_layout(xt), (2, 0))))
    np.testing.assert_allclose(r.forward(x), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    state, outs = r.stream_state(2), []
    for t in range(7):
        y, state = r.stream(x[:, t : t + 1], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, 1), r.forward(x), rtol=1e-12, atol=1e-12)
    rep = check_module(Residual(Linear(3, 3, seed=1)), x)
    assert rep.ok, rep


# -- LayerNorm, BatchNorm, folding ----------------------------------------------------------------
def test_layernorm_matches_torch_and_gradcheck():
    m = LayerNorm(6)
    m.params["weight"][...] = RNG.standard_normal(6)
    m.params["bias"][...] = RNG.standard_normal(6)
    x = RNG.standard_normal((2, 5, 6)) * 3 + 1
    tm = torch.nn.LayerNorm(6).double()
    tm.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
    xt = t64(x, grad=True)
    ref = tm(xt)
    dy = RNG.standard_normal(x.shape)
    (ref * t64(dy)).sum().backward()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(m.grads["weight"], tm.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.grads["bias"], tm.bias.grad.numpy(), rtol=1e-12)
    for mm in (m, LayerNorm(6, elementwise_affine=False), LayerNorm(6, bias=False)):
        rep = check_module(mm, x)
        assert rep.ok, rep


# -- InstanceNorm1d: each sequence's feature over its own steps -----------------------------------
IRNG = np.random.default_rng(29)   # its own stream: the tests above and below keep their draws


def _inorm(n, affine=True):
    m = InstanceNorm1d(n, affine=affine)
    if affine:
        m.params["weight"][...] = IRNG.standard_normal(n)
        m.params["bias"][...] = IRNG.standard_normal(n)
    return m


@pytest.mark.parametrize("affine", [True, False])
def test_instancenorm_matches_torch_and_gradcheck(affine):
    m = _inorm(4, affine)
    tm = torch.nn.InstanceNorm1d(4, affine=affine).double()
    if affine:
        tm.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
    x = IRNG.standard_normal((3, 9, 4)) * 2.5 + IRNG.standard_normal(4) * 3
    xt = t64(x, grad=True)
    ref = to_torch_layout(tm(to_torch_layout(xt)))
    dy = IRNG.standard_normal(x.shape)
    (ref * t64(dy)).sum().backward()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=0, atol=1e-11)
    if affine:
        np.testing.assert_allclose(m.grads["weight"], tm.weight.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.grads["bias"], tm.bias.grad.numpy(), rtol=1e-12)
    # the same in inference (no running statistics: PyTorch's default) and in float32
    np.testing.assert_allclose(m.forward(x), ref.detach().numpy(), rtol=0, atol=1e-12)
    m32 = InstanceNorm1d(4, affine=affine, dtype="float32")
    for k, v in m.params.items():
        m32.params[k][...] = v
    y32 = m32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref.detach().numpy(), rtol=0, atol=2e-5)
    rep = check_module(_inorm(4, affine), x)
    assert rep.ok, rep


def test_instancenorm_lengths_use_the_valid_steps_only():
    m = _inorm(3)
    x = IRNG.standard_normal((3, 6, 3)) * 2 + 1
    lengths = np.array([6, 2, 4])
    y = m.forward(x, lengths=lengths)
    tm = torch.nn.InstanceNorm1d(3, affine=True).double()
    tm.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
    for b, n in enumerate(lengths):   # each sequence alone, through PyTorch
        alone = to_torch_layout(tm(to_torch_layout(t64(x[b : b + 1, :n])))).detach().numpy()
        np.testing.assert_allclose(y[b : b + 1, :n], alone, rtol=0, atol=1e-12)
        assert np.all(y[b, n:] == 0)
    x2 = x.copy()
    x2[1, 2:] = 1e6   # the padding does not reach the statistics
    np.testing.assert_array_equal(m.forward(x2, lengths=lengths), y)
    rep = check_module(_inorm(3), x, lengths=lengths)
    assert rep.ok, rep
    with pytest.raises(ValueError, match=r"lengths: expected every length in 1\.\.6"):
        m.forward(x, lengths=np.array([6, 0, 4]))


def test_instancenorm_refuses_streaming_and_bad_input():
    with pytest.raises(TypeError, match=r"modules\[1\]: InstanceNorm1d needs the whole sequence"):
        Sequential(Conv1d(2, 3, 3), InstanceNorm1d(3)).stream_state(1)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, time, 3\), got \(2, 5, 4\)"):
        InstanceNorm1d(3).forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="track_running_stats: .*expected False"):
        InstanceNorm1d(3, track_running_stats=True)
    assert InstanceNorm1d(3, affine=True).record()["kind"] == "instance_norm"
    assert Abs().record()["kind"] == "abs"


def test_abs_matches_torch_and_gradcheck():
    x = IRNG.uniform(-3, 3, (2, 5, 4))
    x[0, 0, 0] = 0.0
    xt = t64(x, grad=True)
    dy = IRNG.standard_normal(x.shape)
    (torch.abs(xt) * t64(dy)).sum().backward()
    m = Abs()
    np.testing.assert_array_equal(m.forward(x, train=True), np.abs(x))
    np.testing.assert_array_equal(m.backward(dy), xt.grad.numpy())   # 0 at 0, as PyTorch
    xs = np.where(np.abs(x) < 1e-3, 0.5, x)
    rep = check_module(Abs(), xs)
    assert rep.ok, rep


def _bn(n):
    m = BatchNorm1d(n)
    m.params["weight"][...] = RNG.standard_normal(n)
    m.params["bias"][...] = RNG.standard_normal(n)
    return m


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_matches_torch_training_and_inference(momentum):
    m = _bn(4)
    m.momentum = momentum
    tm = torch.nn.BatchNorm1d(4, momentum=momentum).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    for step in range(3):
        x = RNG.standard_normal((3, 5, 4)) * 2 + step
        xt = t64(x, grad=True)
        ref = to_torch_layout(tm(to_torch_layout(xt)))
        dy = RNG.standard_normal(x.shape)
        (ref * t64(dy)).sum().backward()
        m.zero_grad()
        np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(m.grads["weight"], tm.weight.grad.numpy(), rtol=1e-12)
        tm.weight.grad = tm.bias.grad = None
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
    tm.eval()
    x = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(
        m.forward(x), to_torch_layout(tm(to_torch_layout(t64(x)))).detach().numpy(), rtol=1e-12, atol=1e-12
    )


def test_batchnorm_gradcheck_with_and_without_lengths():
    x = RNG.standard_normal((3, 4, 2))
    rep = check_module(_bn(2), x)
    assert rep.ok, rep
    rep = check_module(_bn(2), x, lengths=np.array([4, 2, 3]))
    assert rep.ok, rep
    # with lengths the statistics are those of the valid steps only
    m = _bn(2)
    lengths = np.array([4, 2, 3])
    y = m.forward(x, lengths=lengths, train=True)
    valid = np.concatenate([x[0, :4], x[1, :2], x[2, :3]])
    ref = (valid - valid.mean(0)) / np.sqrt(valid.var(0) + 1e-5) * m.params["weight"] + m.params["bias"]
    np.testing.assert_allclose(np.concatenate([y[0, :4], y[1, :2], y[2, :3]]), ref, rtol=1e-12)
    assert np.all(y[1, 2:] == 0)


def test_fold_batchnorm_into_conv_and_linear():
    conv, bn = Conv1d(3, 4, 3, padding="causal", seed=9), _bn(4)
    bn.buffers["running_mean"][...] = RNG.standard_normal(4)
    bn.buffers["running_var"][...] = RNG.uniform(0.5, 2, 4)
    x = RNG.standard_normal((2, 6, 3))
    np.testing.assert_allclose(fold_batchnorm(conv, bn).forward(x), bn.forward(conv.forward(x)), rtol=1e-12)
    lin = Linear(3, 4, bias=False, seed=1)
    np.testing.assert_allclose(fold_batchnorm(lin, bn).forward(x), bn.forward(lin.forward(x)), rtol=1e-12)
    model = Sequential(conv, bn, ReLU(), Linear(4, 2, seed=2))
    folded = fold_batchnorms(model)
    assert [type(m).__name__ for m in folded] == ["Conv1d", "ReLU", "Linear"]
    np.testing.assert_allclose(folded.forward(x), model.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match="num_features"):
        fold_batchnorm(conv, _bn(3))


def test_state_dict_carries_batchnorm_buffers_like_torch():
    model = Sequential(Conv1d(2, 3, 3, seed=1), BatchNorm1d(3))
    tm = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.BatchNorm1d(3))
    assert list(model.state_dict()) == list(tm.state_dict())
    model.load_state_dict(tm.state_dict())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in tm.named_parameters()]


# -- the container: a VAD-shaped model streams ------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("cell", [GRU, LSTM])
def test_sequential_streams_frame_by_frame(dtype, tol, cell):
    model = Sequential(
        FrameConv1d(
            1,
            6,
            8,
            frame_length=16,
            stride=4,
            padding=(0, 4),
            padding_mode="reflect",
            bias=False,
            dtype=dtype,
            seed=1,
        ),
        Magnitude(),
        LayerNorm(12, dtype=dtype),
        Conv1d(12, 5, 3, padding="causal", dtype=dtype, seed=2),
        ReLU(),
        MaxPool1d(2, 5, stride=1, padding="causal", dtype=dtype),
        cell(5, 7, dtype=dtype, seed=3),
        Linear(7, 1, dtype=dtype, seed=4),
        Sigmoid(),
    )
    x = RNG.standard_normal((2, 9, 16)).astype(dtype)
    whole = model.forward(x)
    state, outs = model.stream_state(2), []
    for t in range(9):
        y, state = model.stream(x[:, t : t + 1], state)
        assert y.shape == (2, 1, 1)
        outs.append(y)
    got = np.concatenate(outs, axis=1)
    assert got.dtype == whole.dtype
    np.testing.assert_allclose(got, whole, rtol=tol, atol=tol)
    y, _ = model.stream(x[:, :0], model.stream_state(2))
    assert y.shape == (2, 0, 1)


def test_stream_refuses_layers_that_need_the_whole_sequence():
    from rnncore.nn import LastStep

    with pytest.raises(TypeError, match=r"modules\[0\].*bidirectional"):
        Sequential(GRU(2, 3, bidirectional=True)).stream_state(1)
    with pytest.raises(TypeError, match=r"modules\[1\]: LastStep"):
        Sequential(GRU(2, 3), LastStep()).stream_state(1)
    with pytest.raises(TypeError, match=r"modules\[0\].*right"):
        Sequential(Conv1d(2, 2, 3, padding="same")).stream_state(1)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_sequential_streams_with_stride_and_every_per_step_layer(dtype, tol):
    """A stride-2 pooling makes half the steps produce no output: the GRU after it gets empty
    chunks and must keep its state; BatchNorm (inference), GELU, HardSigmoid, Tanh and a residual
    causal Conv1d run per step or with their own state."""
    bn = BatchNorm1d(6, dtype=dtype)
    bn.buffers["running_mean"][...] = RNG.standard_normal(6)
    bn.buffers["running_var"][...] = RNG.uniform(0.5, 2.0, 6)
    model = Sequential(
        Conv1d(4, 6, 3, padding="causal", dilation=2, dtype=dtype, seed=1),
        bn,
        GELU("tanh"),
        Residual(Conv1d(6, 6, 2, padding="causal", dtype=dtype, seed=2)),
        AvgPool1d(2, 6, dtype=dtype),
        GRU(6, 5, dtype=dtype, seed=3),
        Tanh(),
        LayerNorm(5, dtype=dtype),
        Linear(5, 2, dtype=dtype, seed=4),
        HardSigmoid(),
    )
    x = RNG.standard_normal((3, 12, 4)).astype(dtype)
    whole = model.forward(x)
    assert whole.shape == (3, 6, 2)
    state, outs = model.stream_state(3), []
    for t in range(12):
        y, state = model.stream(x[:, t : t + 1], state)
        assert y.shape == (3, t % 2, 2)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=tol, atol=tol)


def test_every_layer_describes_itself_as_a_record():
    layers = [
        Conv1d(2, 4, 3, padding="causal", seed=1),
        FrameConv1d(1, 4, 3, frame_length=8),
        Magnitude(),
        MaxPool1d(2, 3),
        AvgPool1d(2, 3),
        ReLU(),
        Sigmoid(),
        Tanh(),
        HardSigmoid(0.2, 0.5),
        GELU("tanh"),
        LayerNorm(3),
        BatchNorm1d(3),
        Residual(Linear(3, 3)),
    ]
    kinds = [m.record()["kind"] for m in layers]
    assert kinds == [
        "conv1d",
        "frame_conv1d",
        "magnitude",
        "max_pool1d",
        "avg_pool1d",
        "relu",
        "sigmoid",
        "tanh",
        "hard_sigmoid",
        "gelu",
        "layer_norm",
        "scale_shift",
        "residual",
    ]
    rec = layers[0].record()
    assert (rec["pad_left"], rec["pad_right"], rec["kernel_size"]) == (2, 0, 3)
    assert rec["tensors"]["weight"] is layers[0].params["weight"]
    assert layers[8].record()["alpha"] == 0.2


def test_sequential_with_lengths_equals_each_sequence_alone_and_trains_with_batchnorm():
    from rnncore.nn import MSE, Adam
    from rnncore.nn.train import fit

    model = Sequential(
        Conv1d(3, 5, 3, padding="causal", bias=False, seed=1),
        BatchNorm1d(5),
        ReLU(),
        GRU(5, 4, seed=2),
        Linear(4, 1, seed=3),
    )
    x = RNG.standard_normal((3, 7, 3))
    lengths = np.array([7, 4, 2])
    model.forward(x, lengths=lengths, train=True)  # moves the running statistics
    y = model.forward(x, lengths=lengths)  # inference: per step, per sequence
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(y[b, :n], model.forward(x[b : b + 1, :n])[0], rtol=1e-12, atol=1e-12)
        assert np.all(y[b, n:] == 0)
    rep = check_module(model, x, lengths=lengths)  # (a conv bias before BatchNorm has gradient 0: none here)
    assert rep.ok, rep
    biased = Sequential(Conv1d(3, 5, 3, padding="causal", seed=1), BatchNorm1d(5), Linear(5, 1, seed=3))
    biased.forward(x, lengths=lengths, train=True)
    biased.backward(RNG.standard_normal((3, 7, 1)))
    assert np.abs(biased[0].grads["bias"]).max() < 1e-14  # BatchNorm subtracts every per-channel shift
    X = RNG.standard_normal((40, 7, 3))
    target = np.cumsum(X[:, :, :1], axis=1) * 0.3  # a running sum: needs the recurrence
    hist = fit(
        model,
        MSE(),
        Adam(model, lr=1e-2),
        X,
        target,
        lengths=np.full(40, 7),
        epochs=15,
        batch_size=8,
        metric=None,
        verbose=False,
    )
    assert hist["loss"][-1] < 0.5 * hist["loss"][0], hist["loss"]


@pytest.mark.parametrize("act", [Sigmoid(), ReLU(), Tanh()], ids=lambda a: type(a).__name__)
def test_activation_layers_after_the_head_compile_into_the_engine(act):
    """rc.compile reads ReLU/Sigmoid/Tanh after the Linear head as the head's activation (the engine
    has it); after an activation the head has not (HardSigmoid, GELU) the Linear runs as a per-step
    record and the activation after it; a layer after a softmax is refused by name."""
    import rnncore as rc

    model = Sequential(GRU(3, 5, dtype="float32", seed=1), Linear(5, 2, dtype="float32", seed=2), act)
    x = RNG.standard_normal((2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(rc.compile(model).run(x), model.forward(x), rtol=1e-6, atol=1e-6)
    for other in (HardSigmoid(), GELU()):
        m = Sequential(GRU(3, 5, dtype="float32", seed=1), Linear(5, 2, dtype="float32", seed=2), other)
        np.testing.assert_allclose(rc.compile(m).run(x), m.forward(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"module '3' \(ReLU\) follows a softmax"):
        rc.compile(Sequential(GRU(3, 5, dtype="float32"), Linear(5, 2, dtype="float32"), Softmax(), ReLU()))
    # a Conv1d over time compiles (conv_time records; "same": tests/test_engine_lookahead.py), padding
    # beyond its window is refused
    causal = Sequential(Conv1d(3, 3, 2, padding="causal", dtype="float32", seed=3),
                        GRU(3, 5, dtype="float32"))
    np.testing.assert_allclose(rc.compile(causal).run(x), causal.forward(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"front\[0\] \(conv1d\): padding \(2, 0\); the C core runs"):
        rc.compile(Sequential(Conv1d(3, 3, 2, padding=(2, 0), dtype="float32"), GRU(3, 5, dtype="float32")))


def test_extended_recurrent_streams_and_reverse_is_refused():
    from rnncore.nn.extended import ExtendedRecurrent

    rec = ExtendedRecurrent("LSTM", 3, 4, peepholes=True, clip=2.0)
    for v in rec.params.values():
        v[...] = RNG.uniform(-0.5, 0.5, v.shape)
    model = Sequential(Conv1d(2, 3, 2, padding="causal", seed=1), rec, Linear(4, 1, seed=2))
    x = RNG.standard_normal((2, 8, 2))
    whole = model.forward(x)
    state, outs = model.stream_state(2), []
    for n in (3, 0, 1, 4):
        y, state = model.stream(x[:, sum(o.shape[1] for o in outs) :][:, :n], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match=r"modules\[0\]: a bidirectional or reverse ExtendedRecurrent"):
        Sequential(ExtendedRecurrent("GRU", 2, 3, reverse=True)).stream_state(1)


@pytest.mark.parametrize("padding,dilation", [(2, 1), ("same", 2), ((3, 1), 1)])
def test_conv1d_reflect_padding_matches_torch(padding, dilation):
    m = Conv1d(3, 4, 3, padding=padding, dilation=dilation, padding_mode="reflect", seed=3)
    x = RNG.standard_normal((2, 8, 3))
    xt = t64(x, grad=True)
    xp = torch.nn.functional.pad(to_torch_layout(xt), (m.pad_left, m.pad_right), mode="reflect")
    ref = to_torch_layout(torch_conv(m)(xp))
    dy = RNG.standard_normal(ref.shape)
    (ref * t64(dy)).sum().backward()
    np.testing.assert_allclose(m.forward(x, train=True), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if padding == 2:  # PyTorch's own padding_mode="reflect"
        tc = torch.nn.Conv1d(3, 4, 3, padding=2, padding_mode="reflect").double()
        tc.load_state_dict({k: t64(v) for k, v in m.state_dict().items()})
        np.testing.assert_allclose(
            m.forward(x),
            to_torch_layout(tc(to_torch_layout(t64(x)))).detach().numpy(),
            rtol=1e-12,
            atol=1e-12,
        )
    rep = check_module(m, x)
    assert rep.ok, rep
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        Conv1d(3, 4, 3, padding="causal", padding_mode="reflect").stream_state(1)


@pytest.mark.parametrize(
    "layer",
    [
        MaxPool1d(3, 2, stride=1, padding="same"),
        MaxPool1d(3, 2, stride=1, padding="causal"),
        AvgPool1d(3, 2, stride=1, padding="same"),
        Conv1d(2, 3, 3, padding="causal", seed=4),
    ],
    ids=repr,
)
def test_layers_over_time_with_lengths_equal_each_sequence_alone(layer):
    x = -np.abs(RNG.standard_normal((3, 6, 2))) - 1.0  # all negative: a 0 padding would win a max
    lengths = np.array([6, 4, 1])
    y = layer.forward(x, lengths=lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(y[b, :n], layer.forward(x[b : b + 1, :n])[0], rtol=1e-12, atol=1e-12)
        assert np.all(y[b, n:] == 0)
    rep = check_module(layer, x, lengths=lengths)
    assert rep.ok, rep
    model = Sequential(layer, Linear(layer.channels if not isinstance(layer, Conv1d) else 3, 2, seed=1))
    model.forward(x, lengths=lengths, train=True)
    assert np.all(np.isfinite(model.backward(np.ones((3, 6, 2)))))
    assert all(np.all(np.isfinite(g)) for _, g in model.named_grads())


def test_softmax_refuses_other_axes():
    """rc.nn.Softmax normalises the features (the last axis), as the engine's softmax head."""
    with pytest.raises(ValueError, match=r"Softmax: dim: expected -1 \(the features, axis 2 of an input "
                                         r"with 3 axes\), got 1"):
        Softmax(dim=1).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"LogSoftmax: dim: expected -1 \(the features"):
        LogSoftmax(dim=0).forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="dim: expected an int, got float"):
        Softmax(dim=1.0)
    np.testing.assert_allclose(Softmax(dim=1).forward(np.log([[1.0, 3.0]])), [[0.25, 0.75]], rtol=1e-15)
