"""2-D front-end layers (Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, BatchNorm2d) on (N, C, H, W).

Forward against torch.nn.functional within 1e-12 and backward (input and parameter gradients)
against torch autograd within 1e-10, both in float64; the backward also against central finite
differences (rnncore.gradcheck.check_module); hypothesis draws shapes, strides, pads,
dilations and groups. Asymmetric pads (ONNX's) are checked against torch on an explicitly
padded input.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.gradcheck import check_module
from rnncore.nn import AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, MaxPool2d

FWD, BWD = 1e-12, 1e-10


def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _close(ours, theirs, tol, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, what
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=what)


def _conv_vs_torch(m, x, pads):
    """Our forward/backward against torch's conv2d on x padded by (top, bottom, left, right)."""
    xt, wt = _t(x), _t(m.params["weight"])
    bt = _t(m.params["bias"]) if "bias" in m.params else None
    t, b, left, r = pads
    yt = F.conv2d(F.pad(xt, (left, r, t, b)), wt, bt, m.stride, 0, m.dilation, m.groups)
    y = m.forward(x, train=True)
    _close(y, yt, FWD, "y")
    dy = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    m.zero_grad()
    dx = m.backward(dy)
    _close(dx, xt.grad, BWD, "dx")
    _close(m.grads["weight"], wt.grad, BWD, "dweight")
    if bt is not None:
        _close(m.grads["bias"], bt.grad, BWD, "dbias")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2), g=st.integers(1, 3), cg=st.integers(1, 2), og=st.integers(1, 2),
    h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 3), kw=st.integers(1, 3),
    sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    pads=st.tuples(*[st.integers(0, 2)] * 4), bias=st.booleans(), seed=st.integers(0, 2**31),
)
def test_conv2d_matches_torch(n, g, cg, og, h, w, kh, kw, sh, sw, dh, dw, pads, bias, seed):
    m = Conv2d(g * cg, g * og, (kh, kw), (sh, sw), pads, (dh, dw), groups=g, bias=bias, seed=seed)
    Ho, Wo = m.output_shape(h, w)
    if Ho == 0 or Wo == 0:
        with pytest.raises(ValueError, match="smaller than one window"):
            m.forward(np.zeros((n, g * cg, h, w)))
        return
    x = np.random.default_rng(seed).standard_normal((n, g * cg, h, w))
    _conv_vs_torch(m, x, pads)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("padding", [0, 1, (1, 2), "same", "valid"])
def test_conv2d_symmetric_padding_is_torchs_own(padding):
    m = Conv2d(4, 6, (3, 2), padding=padding, groups=2, seed=3)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5))
    yt = F.conv2d(torch.tensor(x), torch.tensor(m.params["weight"]), torch.tensor(m.params["bias"]),
                  1, padding, 1, 2)
    _close(m.forward(x), yt, FWD, "y")


def test_conv2d_init_and_state_dict_keys_are_torchs():
    tm = torch.nn.Conv2d(6, 4, (3, 5), groups=2)
    m = Conv2d(6, 4, (3, 5), groups=2, seed=0)
    for k, v in tm.state_dict().items():
        assert m.params[k].shape == tuple(v.shape)
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert np.abs(m.params["weight"]).max() <= bound and np.abs(m.params["weight"]).max() > 0.8 * bound


@pytest.mark.parametrize("case", [
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(0, 1, 1, 0), groups=2),
    dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 0, 1, 1), dilation=(1, 2), bias=False),
])
def test_conv2d_gradcheck(case):
    m = Conv2d(4, 2, **case, seed=5)
    rep = check_module(m, np.random.default_rng(2).standard_normal((2, 4, 5, 6)))
    assert rep.ok, rep


# -- ConvTranspose2d ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2), g=st.integers(1, 2), cg=st.integers(1, 2), og=st.integers(1, 3),
    h=st.integers(1, 5), w=st.integers(1, 5), kh=st.integers(1, 3), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    ph=st.integers(0, 2), pw=st.integers(0, 2), oph=st.integers(0, 2), opw=st.integers(0, 2),
    bias=st.booleans(), seed=st.integers(0, 2**31),
)
def test_conv_transpose2d_matches_torch(n, g, cg, og, h, w, kh, kw, sh, sw, dh, dw, ph, pw, oph, opw, bias,
                                        seed):
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        with pytest.raises(ValueError, match="output_padding"):
            ConvTranspose2d(g * cg, g * og, (kh, kw), (sh, sw), (ph, pw), (oph, opw), dilation=(dh, dw))
        return
    m = ConvTranspose2d(g * cg, g * og, (kh, kw), (sh, sw), (ph, pw), (oph, opw), groups=g, bias=bias,
                        dilation=(dh, dw), seed=seed)
    Ho, Wo = m.output_shape(h, w)
    x = np.random.default_rng(seed).standard_normal((n, g * cg, h, w))
    if Ho <= 0 or Wo <= 0:
        with pytest.raises(ValueError, match="empty output"):
            m.forward(x)
        return
    xt, wt = _t(x), _t(m.params["weight"])
    bt = _t(m.params["bias"]) if bias else None
    yt = F.conv_transpose2d(xt, wt, bt, (sh, sw), (ph, pw), (oph, opw), g, (dh, dw))
    y = m.forward(x, train=True)
    _close(y, yt, FWD, "y")
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    m.zero_grad()
    _close(m.backward(dy), xt.grad, BWD, "dx")
    _close(m.grads["weight"], wt.grad, BWD, "dweight")
    if bias:
        _close(m.grads["bias"], bt.grad, BWD, "dbias")


def test_conv_transpose2d_asymmetric_pads_crop_the_full_output():
    """(top, bottom, left, right) pads (ONNX's) crop the full output: torch's with padding 0, cropped."""
    m = ConvTranspose2d(2, 3, (3, 4), (2, 2), (1, 0, 0, 2), seed=1)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 3))
    w, b = torch.tensor(m.params["weight"]), torch.tensor(m.params["bias"])
    full = F.conv_transpose2d(torch.tensor(x), w, b, 2)
    _close(m.forward(x), full[:, :, 1:, : full.shape[3] - 2], FWD, "y")


def test_conv_transpose2d_gradcheck():
    m = ConvTranspose2d(4, 2, (2, 3), (2, 1), (1, 0), (1, 0), groups=2, seed=4)
    rep = check_module(m, np.random.default_rng(3).standard_normal((2, 4, 3, 4)))
    assert rep.ok, rep


# -- pooling ------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    kh=st.integers(1, 3), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), h=st.integers(1, 8), w=st.integers(1, 8),
    ceil=st.booleans(), include=st.booleans(), dil=st.integers(1, 2), seed=st.integers(0, 2**31),
)
def test_pool2d_matches_torch(kh, kw, sh, sw, ph, pw, h, w, ceil, include, dil, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    if ph > kh // 2 or pw > kw // 2:
        with pytest.raises(ValueError, match="kernel_size // 2"):
            MaxPool2d((kh, kw), (sh, sw), (ph, pw))
        return
    for m, f in (
        (MaxPool2d((kh, kw), (sh, sw), (ph, pw), dilation=dil, ceil_mode=ceil),
         lambda t: F.max_pool2d(t, (kh, kw), (sh, sw), (ph, pw), dil, ceil)),
        (AvgPool2d((kh, kw), (sh, sw), (ph, pw), ceil, include),
         lambda t: F.avg_pool2d(t, (kh, kw), (sh, sw), (ph, pw), ceil, include)),
    ):
        Ho, Wo = m.output_shape(h, w)
        if Ho == 0 or Wo == 0:
            with pytest.raises(ValueError, match="smaller than one window"):
                m.forward(x)
            with pytest.raises(RuntimeError):
                f(torch.tensor(x))
            continue
        xt = _t(x)
        yt = f(xt)
        y = m.forward(x, train=True)
        _close(y, yt, FWD, type(m).__name__)
        if not np.isfinite(y).all():
            # a dilated window with no tap in the input (all padding): -inf in both, a constant
            # (dx 0 here); PyTorch's backward writes that window's gradient past its input plane
            # (into the next channel's, or out of the tensor: an abort), so it is not compared
            assert isinstance(m, MaxPool2d) and dil > 1 and (ph or pw)
            continue
        dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        _close(m.backward(dy), xt.grad, BWD, type(m).__name__ + " dx")


@pytest.mark.parametrize("cls", ["max", "avg"])
@pytest.mark.parametrize("h, k, s", [(1, 2, 2), (1, 3, 3), (2, 3, 2), (1, 2, 1)])
def test_pool2d_ceil_mode_on_an_input_shorter_than_one_window_as_torch(cls, h, k, s):
    """With ceil_mode PyTorch rounds ``(h - k) / s`` up: an input shorter than one window still
    gives one output when that reaches 0 (h = 1, k = 2, s = 2), its window running past the input;
    otherwise (h = 1, k = 2, s = 1) both refuse. (Found by hypothesis in CI.)"""
    x = np.random.default_rng(h + k + s).standard_normal((2, 3, h, 4))
    m, f = ((MaxPool2d((k, 1), (s, 1), ceil_mode=True), lambda t: F.max_pool2d(t, (k, 1), (s, 1), 0, 1, True))
            if cls == "max" else
            (AvgPool2d((k, 1), (s, 1), ceil_mode=True), lambda t: F.avg_pool2d(t, (k, 1), (s, 1), 0, True)))
    try:
        yt = f(torch.tensor(x))
    except RuntimeError:
        with pytest.raises(ValueError, match="smaller than one window"):
            m.forward(x)
        return
    _close(m.forward(x), yt, FWD, cls)


def test_maxpool2d_ties_go_to_the_first_maximum_as_torch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = x[0, 0, 1, 0] = 2.0
    m = MaxPool2d(2, 2)
    m.forward(x, train=True)
    xt = _t(x)
    F.max_pool2d(xt, 2, 2).sum().backward()
    np.testing.assert_array_equal(m.backward(np.ones((1, 1, 2, 2))), xt.grad.numpy())


@pytest.mark.parametrize("m", [MaxPool2d((2, 3), (1, 2), (1, 0, 1, 1)),
                               AvgPool2d((3, 2), (2, 1), (0, 1, 1, 0), count_include_pad=False)])
def test_pool2d_asymmetric_pads_gradcheck(m):
    rep = check_module(m, np.random.default_rng(5).standard_normal((2, 2, 5, 4)))
    assert rep.ok, rep


def test_avgpool2d_asymmetric_pads_equal_torch_on_padded_input():
    """count_include_pad=True with (top, bottom, left, right) pads: the mean over the zero-padded input."""
    m = AvgPool2d((3, 2), (2, 1), (1, 0, 0, 1))
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 4))
    yt = F.avg_pool2d(F.pad(torch.tensor(x), (0, 1, 1, 0)), (3, 2), (2, 1))
    _close(m.forward(x), yt, FWD, "y")


# -- BatchNorm2d --------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_matches_torch_training_and_inference(momentum):
    rng = np.random.default_rng(7)
    m = BatchNorm2d(3, momentum=momentum)
    m.params["weight"][:] = rng.standard_normal(3)
    m.params["bias"][:] = rng.standard_normal(3)
    tm = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.params["weight"]))
        tm.bias.copy_(torch.tensor(m.params["bias"]))
    for _ in range(2):
        x = rng.standard_normal((2, 3, 4, 5)) * 2 + 1
        xt = _t(x)
        yt = tm(xt)
        y = m.forward(x, train=True)
        _close(y, yt, FWD, "train y")
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        m.zero_grad()
        _close(m.backward(dy), xt.grad, BWD, "dx")
        _close(m.grads["weight"], tm.weight.grad, BWD, "dweight")
        _close(m.grads["bias"], tm.bias.grad, BWD, "dbias")
        tm.weight.grad = tm.bias.grad = None
    for k in ("running_mean", "running_var"):
        _close(m.buffers[k], getattr(tm, k), FWD, k)
    tm.eval()
    x = rng.standard_normal((1, 3, 2, 6))
    _close(m.forward(x), tm(torch.tensor(x)), FWD, "eval y")


def test_batchnorm2d_gradcheck():
    m = BatchNorm2d(2)
    m.params["weight"][:] = [0.5, -1.5]
    rep = check_module(m, np.random.default_rng(8).standard_normal((2, 2, 3, 3)))
    assert rep.ok, rep


def test_2d_layers_refuse_bad_input():
    with pytest.raises(ValueError, match=r"Conv2d: x expected shape \(N, 4, H, W\)"):
        Conv2d(4, 2, 3).forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="groups"):
        Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="'same' needs stride=1"):
        Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(TypeError, match="padding"):
        Conv2d(1, 1, 3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d: x expected shape \(N, 3, H, W\)"):
        BatchNorm2d(3).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"MaxPool2d: x expected shape \(N, C, H, W\)"):
        MaxPool2d(2).forward(np.zeros((2, 3, 4)))
    with pytest.raises(RuntimeError, match="train=True"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))
