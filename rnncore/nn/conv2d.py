"""2-D front-ends on images and spectrograms: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, BatchNorm2d.

These layers work on PyTorch's layout ``(N, C, H, W)`` (not rnncore's ``(batch, time,
features)``): they are the convolution stacks that CRNN OCR models and DeepFilterNet put in
front of their recurrent layer, run by the NumPy reference (``rc.compile`` refuses them: the C
engine has no 2-D front-end). Every layer keeps an explicit cache in ``forward(x, train=True)``;
``backward(dy)`` returns ``dx`` and accumulates ``self.grads``.

One gather does every window: with ``x_pad`` the padded input, tap ``(i, j)`` of output
``(h, w)`` reads ``x_pad[h*s_h + i*d_h, w*s_w + j*d_w]``, so

``cols[n, c, i, j, h, w] = x_pad[n, c, h*s_h + i*d_h, w*s_w + j*d_w]``

is ``k_h * k_w`` strided slices of ``x_pad`` (:func:`windows`), and its adjoint
(:func:`windows_adjoint`) adds each slice back; the backward of every layer here goes through it.
A transposed convolution is that adjoint applied to the products of the input and the weight.
"""

from __future__ import annotations

import numpy as np

from rnncore.nn.conv import conv_output_length
from rnncore.nn.layers import _check_dy, _float_input, _need
from rnncore.nn.module import Module, check_int, resolve_dtype
from rnncore.nn.norm import BatchNorm1d


def pool_output_length(length: int, kernel_size: int, stride: int, dilation: int, pad_begin: int,
                       pad_end: int, ceil_mode: bool) -> int:
    """Outputs of a pooling along one axis, PyTorch's ``pooling_output_shape`` (and ONNX's).

    ``n = floor((L + p_b + p_e - span) / s) + 1`` with ``span = d (k - 1) + 1`` (0 if the padded
    input is shorter than one window: :func:`~rnncore.nn.conv.conv_output_length`); with
    ``ceil_mode`` ``n = ceil((L + p_b + p_e - span) / s) + 1``, less one if the last window would
    start in the end padding. So with ``ceil_mode`` an input shorter than one window still gives
    one output when the rounding reaches it (``L = 1, k = 2, s = 2``: ``ceil(-1 / 2) + 1 = 1``),
    its window running past the input."""
    if not ceil_mode:
        return conv_output_length(length, kernel_size, stride, dilation, pad_begin, pad_end)
    if length == 0:
        return 0
    span = dilation * (kernel_size - 1) + 1
    n = -(-(length + pad_begin + pad_end - span) // stride) + 1
    if (n - 1) * stride >= length + pad_begin:
        n -= 1
    return max(n, 0)

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "windows",
    "windows_adjoint",
]


# -- arguments ------------------------------------------------------------------------------
def _two(name: str, value: object, minimum: int) -> tuple[int, int]:
    """An int (both axes) or a pair ``(h, w)`` of ints ``>= minimum``."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1], minimum)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        v = check_int(name, value, minimum)
        return v, v
    raise TypeError(f"{name}: expected an int >= {minimum} or a pair (h, w), got {value!r}")


def _pads(padding: object) -> tuple[int, int, int, int]:
    """``padding`` as ``(top, bottom, left, right)``: an int (all sides), ``(p_h, p_w)`` (PyTorch's
    pair) or ``(top, bottom, left, right)`` (asymmetric, as ONNX's ``pads [t, l, b, r]`` reordered)."""
    if isinstance(padding, tuple | list) and len(padding) == 4:
        names = ("top", "bottom", "left", "right")
        return tuple(check_int(f"padding[{n}]", p, 0) for n, p in zip(names, padding, strict=True))
    ph, pw = _two("padding", padding, 0)
    return ph, ph, pw, pw


# -- the windows ----------------------------------------------------------------------------
def windows(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    out: tuple[int, int],
) -> np.ndarray:
    """``xp (N, C, H_p, W_p)`` -> ``cols (N, C, k_h, k_w, H_o, W_o)``,
    ``cols[n, c, i, j, h, w] = xp[n, c, h*s_h + i*d_h, w*s_w + j*d_w]``."""
    (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out
    N, C = xp.shape[:2]
    cols = np.empty((N, C, kh, kw, Ho, Wo), xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh: i * dh + sh * (Ho - 1) + 1: sh,
                                  j * dw: j * dw + sw * (Wo - 1) + 1: sw]
    return cols


def windows_adjoint(
    cols: np.ndarray, padded: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> np.ndarray:
    """The adjoint of :func:`windows`: ``cols (N, C, k_h, k_w, H_o, W_o)`` -> ``dxp (N, C, H_p, W_p)``,
    every element the sum of the taps that read it."""
    N, C, kh, kw, Ho, Wo = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    dxp = np.zeros((N, C) + tuple(padded), cols.dtype)
    for i in range(kh):
        for j in range(kw):  # one tap's slice holds each element at most once
            dxp[:, :, i * dh: i * dh + sh * (Ho - 1) + 1: sh,
                j * dw: j * dw + sw * (Wo - 1) + 1: sw] += cols[:, :, i, j]
    return dxp


def _check_nchw(x: object, channels: int, dtype: np.dtype, who: str) -> np.ndarray:
    x = _float_input("x", x, dtype)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{who}: x expected shape (N, {channels}, H, W), got {x.shape}")
    return x


def _init(module: Module, shape: tuple, fan_in: int, bias_size: int | None, seed: int | None) -> None:
    """PyTorch's default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and bias."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(fan_in)
    module.params["weight"] = rng.uniform(-bound, bound, shape).astype(module.dtype)
    if bias_size is not None:
        module.params["bias"] = rng.uniform(-bound, bound, bias_size).astype(module.dtype)
    module.zero_grad()


class _Conv2dBase(Module):
    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, dtype):
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _two("kernel_size", kernel_size, 1)
        self.stride = _two("stride", stride, 1)
        self.dilation = _two("dilation", dilation, 1)
        self.groups = check_int("groups", groups, 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups: expected a divisor of in_channels={self.in_channels} and "
                f"out_channels={self.out_channels}, got {self.groups}"
            )
        self.padding = padding
        self.dtype = resolve_dtype(dtype)
        self._cache = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.pads}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={'bias' in self.params}"
        )


# -- Conv2d ---------------------------------------------------------------------------------
class Conv2d(_Conv2dBase):
    """2-D convolution, PyTorch's ``nn.Conv2d`` on ``(N, C, H, W)`` (and ONNX's 2-D ``Conv``).

    ``y[n, o, h, w] = bias[o] + sum_{c in g(o)} sum_{i<k_h, j<k_w} W[o, c, i, j]
    x_pad[n, c, h*s_h + i*d_h, w*s_w + j*d_w]``

    (cross-correlation); ``x_pad`` is ``x`` with ``top``/``bottom`` zero rows and ``left``/``right``
    zero columns; ``g(o)`` the ``C_in/groups`` input channels of output ``o``'s group.

    Backward, with ``cols`` the windows (module docstring): ``dW[o, c, i, j] = sum_{n,h,w}
    dy[n, o, h, w] cols[n, c, i, j, h, w]``, ``dbias[o] = sum dy[n, o]``, ``dcols[n, c, i, j, h, w] =
    sum_{o in group(c)} W[o, c, i, j] dy[n, o, h, w]`` and ``dx`` the adjoint gather of ``dcols``.

    Parameters
    ----------
    in_channels, out_channels : ``C_in``, ``C_out`` (both divisible by ``groups``)
    kernel_size, stride, dilation : an int or ``(h, w)``
    padding : an int, ``(p_h, p_w)`` (PyTorch), ``(top, bottom, left, right)`` (asymmetric, as ONNX
        pads), ``"valid"`` or ``"same"`` (stride 1; the odd one at the bottom/right, as PyTorch)
    groups, bias, dtype, seed : as PyTorch; initialisation as PyTorch's

    Notes
    -----
    Shapes: ``x (N, C_in, H, W) -> y (N, C_out, H_o, W_o)``, ``H_o = floor((H + top + bottom -
    d_h (k_h - 1) - 1) / s_h) + 1`` (``W_o`` alike); ``weight (C_out, C_in/groups, k_h, k_w)``,
    ``bias (C_out,)`` as PyTorch's ``state_dict``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: str = "float64",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, dtype)
        if padding == "valid":
            self.pads = (0, 0, 0, 0)
        elif padding == "same":
            if self.stride != (1, 1):
                raise ValueError(f"padding: 'same' needs stride=1 (as in PyTorch), got stride={self.stride}")
            sp = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            self.pads = (sp[0] // 2, sp[0] - sp[0] // 2, sp[1] // 2, sp[1] - sp[1] // 2)
        elif isinstance(padding, str):
            raise ValueError(f"padding: expected 'valid', 'same', an int, (h, w) or (top, bottom, left, "
                             f"right), got {padding!r}")
        else:
            self.pads = _pads(padding)
        kh, kw = self.kernel_size
        _init(self, (self.out_channels, self.in_channels // self.groups, kh, kw),
              self.in_channels // self.groups * kh * kw, self.out_channels if bias else None, seed)

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        """``(H_o, W_o)`` of an ``H x W`` input (0 where the padded input is smaller than a window)."""
        t, b_, left, r = self.pads
        return (conv_output_length(H, self.kernel_size[0], self.stride[0], self.dilation[0], t, b_),
                conv_output_length(W, self.kernel_size[1], self.stride[1], self.dilation[1], left, r))

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (N, C_in, H, W) -> y (N, C_out, H_o, W_o)``."""
        x = _check_nchw(x, self.in_channels, self.dtype, "Conv2d")
        N, _, H, W = x.shape
        Ho, Wo = self.output_shape(H, W)
        if Ho == 0 or Wo == 0:
            raise ValueError(f"Conv2d: x of {H} x {W} (padding {self.pads}) is smaller than one window "
                             f"(kernel {self.kernel_size}, dilation {self.dilation})")
        t, b_, left, r = self.pads
        xp = np.pad(x, ((0, 0), (0, 0), (t, b_), (left, r)))
        cols = windows(xp, self.kernel_size, self.stride, self.dilation, (Ho, Wo))
        g, kh, kw = self.groups, *self.kernel_size
        colsg = cols.reshape(N, g, self.in_channels // g, kh, kw, Ho, Wo)
        wg = self.params["weight"].reshape(g, self.out_channels // g, self.in_channels // g, kh, kw)
        y = np.einsum("ngcijhw,gocij->ngohw", colsg, wg, optimize=True).reshape(N, self.out_channels, Ho, Wo)
        if "bias" in self.params:
            y = y + self.params["bias"][:, None, None]
        self._cache = (colsg, xp.shape[2:], (H, W)) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; accumulates ``weight``/``bias`` gradients."""
        _need(self._cache, "Conv2d")
        colsg, padded, (H, W) = self._cache
        N, g, _, kh, kw, Ho, Wo = colsg.shape
        dy = _check_dy(dy, (N, self.out_channels, Ho, Wo), self.dtype, "Conv2d")
        dyg = dy.reshape(N, g, self.out_channels // g, Ho, Wo)
        wg = self.params["weight"].reshape(g, self.out_channels // g, self.in_channels // g, kh, kw)
        self.grads["weight"] += np.einsum("ngohw,ngcijhw->gocij", dyg, colsg, optimize=True).reshape(
            self.params["weight"].shape)
        if "bias" in self.params:
            self.grads["bias"] += dy.sum(axis=(0, 2, 3))
        dcols = np.einsum("ngohw,gocij->ngcijhw", dyg, wg, optimize=True).reshape(
            N, self.in_channels, kh, kw, Ho, Wo)
        dxp = windows_adjoint(dcols, padded, self.stride, self.dilation)
        t, left = self.pads[0], self.pads[2]
        return dxp[:, :, t: t + H, left: left + W]


# -- ConvTranspose2d ------------------------------------------------------------------------
class ConvTranspose2d(_Conv2dBase):
    """Transposed 2-D convolution, PyTorch's ``nn.ConvTranspose2d`` (ONNX's 2-D ``ConvTranspose``).

    Each input element spreads its kernel over the (uncropped) output:

    ``full[n, o, h*s_h + i*d_h, w*s_w + j*d_w] += sum_{c in g(o)} x[n, c, h, w] W[c, o', i, j]``

    (``o'`` is ``o``'s index within its group), ``y = full[top : H_f - bottom, left : W_f - right]
    + bias``, with ``H_f = (H - 1) s_h + d_h (k_h - 1) + 1 + output_padding_h``: the adjoint of
    :class:`Conv2d` with the same weight. Backward: ``dfull`` is ``dy`` placed back into the
    uncropped frame; ``dx[n, c, h, w] = sum_{o, i, j} W[c, o', i, j] dfull[n, o, h*s_h + i*d_h, ...]``
    (a :class:`Conv2d` of ``dfull``), ``dW[c, o', i, j] = sum_{n,h,w} x[n, c, h, w] dfull[...]``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype, seed : as PyTorch
    padding : an int, ``(p_h, p_w)`` or ``(top, bottom, left, right)``: what is cropped from the full output
    output_padding : an int or ``(h, w)``, smaller than the stride or the dilation (PyTorch's rule):
        rows/columns added at the bottom/right

    Notes
    -----
    Shapes: ``x (N, C_in, H, W) -> y (N, C_out, H_o, W_o)``, ``H_o = (H - 1) s_h - top - bottom +
    d_h (k_h - 1) + output_padding_h + 1``; ``weight (C_in, C_out/groups, k_h, k_w)`` as PyTorch's.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        dtype: str = "float64",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, dtype)
        self.pads = _pads(padding)
        self.output_padding = _two("output_padding", output_padding, 0)
        for a, op, s, d in zip("hw", self.output_padding, self.stride, self.dilation, strict=True):
            if op >= max(s, d):
                raise ValueError(f"output_padding: {a} = {op} must be smaller than the stride ({s}) or the "
                                 f"dilation ({d}), as in PyTorch")
        kh, kw = self.kernel_size
        # PyTorch's fan_in for ConvTranspose is weight.size(1) * k_h * k_w
        _init(self, (self.in_channels, self.out_channels // self.groups, kh, kw),
              self.out_channels // self.groups * kh * kw, self.out_channels if bias else None, seed)

    def _full(self, H: int, W: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        oh, ow = self.output_padding
        return (H - 1) * sh + dh * (kh - 1) + 1 + oh, (W - 1) * sw + dw * (kw - 1) + 1 + ow

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        Hf, Wf = self._full(H, W)
        t, b_, left, r = self.pads
        return Hf - t - b_, Wf - left - r

    def _wg(self) -> np.ndarray:
        g, (kh, kw) = self.groups, self.kernel_size
        return self.params["weight"].reshape(g, self.in_channels // g, self.out_channels // g, kh, kw)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (N, C_in, H, W) -> y (N, C_out, H_o, W_o)``."""
        x = _check_nchw(x, self.in_channels, self.dtype, "ConvTranspose2d")
        N, _, H, W = x.shape
        Ho, Wo = self.output_shape(H, W)
        if Ho <= 0 or Wo <= 0 or H == 0 or W == 0:
            raise ValueError(f"ConvTranspose2d: x of {H} x {W} gives an empty output ({Ho} x {Wo}) with "
                             f"padding {self.pads}")
        g, (kh, kw) = self.groups, self.kernel_size
        xg = x.reshape(N, g, self.in_channels // g, H, W)
        cols = np.einsum("ngchw,gcoij->ngoijhw", xg, self._wg(), optimize=True).reshape(
            N, self.out_channels, kh, kw, H, W)
        full = windows_adjoint(cols, self._full(H, W), self.stride, self.dilation)
        t, _, left, _ = self.pads
        y = full[:, :, t: t + Ho, left: left + Wo]
        if "bias" in self.params:
            y = y + self.params["bias"][:, None, None]
        self._cache = (xg, (H, W)) if train else None
        return np.ascontiguousarray(y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (N, C_out, H_o, W_o) -> dx (N, C_in, H, W)``; accumulates ``weight``/``bias`` gradients."""
        _need(self._cache, "ConvTranspose2d")
        xg, (H, W) = self._cache
        N, g = xg.shape[:2]
        Ho, Wo = self.output_shape(H, W)
        dy = _check_dy(dy, (N, self.out_channels, Ho, Wo), self.dtype, "ConvTranspose2d")
        t, _, left, _ = self.pads
        dfull = np.zeros((N, self.out_channels) + self._full(H, W), self.dtype)
        dfull[:, :, t: t + Ho, left: left + Wo] = dy
        dcols = windows(dfull, self.kernel_size, self.stride, self.dilation, (H, W))
        kh, kw = self.kernel_size
        dcolsg = dcols.reshape(N, g, self.out_channels // g, kh, kw, H, W)
        self.grads["weight"] += np.einsum("ngchw,ngoijhw->gcoij", xg, dcolsg, optimize=True).reshape(
            self.params["weight"].shape)
        if "bias" in self.params:
            self.grads["bias"] += dy.sum(axis=(0, 2, 3))
        dx = np.einsum("ngoijhw,gcoij->ngchw", dcolsg, self._wg(), optimize=True)
        return dx.reshape(N, self.in_channels, H, W)


# -- pooling --------------------------------------------------------------------------------
class _Pool2d(Module):
    pad_value = 0.0

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode, dtype) -> None:
        super().__init__()
        self.kernel_size = _two("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _two("stride", stride, 1)
        self.dilation = _two("dilation", dilation, 1)
        self.pads = _pads(padding)
        if not isinstance(ceil_mode, bool | np.bool_):
            raise TypeError(f"ceil_mode: expected a bool, got {ceil_mode!r}")
        self.ceil_mode = bool(ceil_mode)
        for p, k in zip(self.pads, (*[self.kernel_size[0]] * 2, *[self.kernel_size[1]] * 2), strict=True):
            if p > k // 2:
                raise ValueError(f"padding: expected at most kernel_size // 2 on each side (as PyTorch), got "
                                 f"{self.pads} for kernel_size {self.kernel_size}")
        self.dtype = resolve_dtype(dtype)
        self._cache = None

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.pads}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        """``(H_o, W_o)``: PyTorch's formula, rounded up with ``ceil_mode`` (a last window that would
        start in the bottom/right padding is dropped)."""
        t, b_, left, r = self.pads
        return (pool_output_length(H, self.kernel_size[0], self.stride[0], self.dilation[0], t, b_,
                                   self.ceil_mode),
                pool_output_length(W, self.kernel_size[1], self.stride[1], self.dilation[1], left, r,
                                   self.ceil_mode))

    def _cols(self, x: np.ndarray, who: str) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """The windows of ``x`` padded with the pad value (and, with ``ceil_mode``, as far past the
        bottom/right padding as the last window reaches); returns ``cols``, the padded size,
        ``(H_o, W_o)``."""
        x = _float_input("x", x, self.dtype)
        if x.ndim != 4:
            raise ValueError(f"{who}: x expected shape (N, C, H, W), got {x.shape}")
        H, W = x.shape[2:]
        Ho, Wo = self.output_shape(H, W)
        if Ho == 0 or Wo == 0:
            raise ValueError(f"{who}: x of {H} x {W} (padding {self.pads}) is smaller than one window "
                             f"(kernel {self.kernel_size}, dilation {self.dilation})")
        t, b_, left, r = self.pads
        need_h = (Ho - 1) * self.stride[0] + self.dilation[0] * (self.kernel_size[0] - 1) + 1
        need_w = (Wo - 1) * self.stride[1] + self.dilation[1] * (self.kernel_size[1] - 1) + 1
        b_, r = max(b_, need_h - H - t), max(r, need_w - W - left)
        xp = np.pad(x, ((0, 0), (0, 0), (t, b_), (left, r)), constant_values=self.pad_value)
        return windows(xp, self.kernel_size, self.stride, self.dilation, (Ho, Wo)), xp.shape[2:], (Ho, Wo)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (N, C, H_o, W_o) -> dx (N, C, H, W)``: each window's weights times ``dy``, scattered back."""
        _need(self._cache, type(self).__name__)
        weights, padded, (H, W), out_shape = self._cache
        dy = _check_dy(dy, out_shape, self.dtype, type(self).__name__)
        dxp = windows_adjoint(weights * dy[:, :, None, None], padded, self.stride, self.dilation)
        t, left = self.pads[0], self.pads[2]
        return dxp[:, :, t: t + H, left: left + W]


class MaxPool2d(_Pool2d):
    """Max over 2-D windows, PyTorch's ``nn.MaxPool2d`` on ``(N, C, H, W)`` (ONNX's 2-D ``MaxPool``).

    ``y[n, c, h, w] = max_{i<k_h, j<k_w} x_pad[n, c, h*s_h + i*d_h, w*s_w + j*d_w]``

    ``x_pad`` pads with ``-inf``. Backward: the gradient goes to the first maximum of each window
    in row-major tap order (as PyTorch). ``stride`` defaults to ``kernel_size``; ``padding`` an
    int, ``(p_h, p_w)`` or ``(top, bottom, left, right)``, each at most half the kernel (PyTorch's
    limit); ``ceil_mode`` rounds the output size up (a last window that would start in the
    padding is dropped). Shapes: ``x (N, C, H, W) -> y (N, C, H_o, W_o)``.
    """

    pad_value = -np.inf

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
        dtype: str = "float64",
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, dtype)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (N, C, H, W) -> y (N, C, H_o, W_o)``."""
        cols, padded, (Ho, Wo) = self._cols(x, "MaxPool2d")
        N, C, kh, kw = cols.shape[:4]
        flat = cols.reshape(N, C, kh * kw, Ho, Wo)
        first = np.argmax(flat, axis=2)  # the first maximum, like PyTorch
        y = np.take_along_axis(flat, first[:, :, None], axis=2)[:, :, 0]
        if train:
            onehot = (np.arange(kh * kw)[None, None, :, None, None] == first[:, :, None]).astype(self.dtype)
            self._cache = (onehot.reshape(cols.shape), padded, np.shape(x)[2:], y.shape)
        else:
            self._cache = None
        return y


class AvgPool2d(_Pool2d):
    """Mean over 2-D windows, PyTorch's ``nn.AvgPool2d`` (ONNX's 2-D ``AveragePool``).

    ``y[n, c, h, w] = (1 / n_{h,w}) sum_{i<k_h, j<k_w} x_pad[n, c, h*s_h + i*d_h, w*s_w + j*d_w]``

    with zero padding; ``n_{h,w} = n_h * n_w`` counts the taps of the window: with
    ``count_include_pad=True`` (PyTorch's default) those inside the padded input (``k_h k_w`` unless
    ``ceil_mode`` lets the window run past the padding), with ``False`` those inside the input;
    a window that holds no input (dilation over the padding) gives 0, as ONNX Runtime.
    Backward: ``dx`` receives ``dy / n`` from every window that holds it. ``dilation`` is ONNX's
    (PyTorch's AvgPool2d has none). Parameters and shapes as :class:`MaxPool2d`.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        dtype: str = "float64",
        dilation: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, dtype)
        if not isinstance(count_include_pad, bool | np.bool_):
            raise TypeError(f"count_include_pad: expected a bool, got {count_include_pad!r}")
        self.count_include_pad = bool(count_include_pad)

    def _counts(self, axis: int, length: int, n_out: int) -> np.ndarray:
        """``n_h`` (``axis`` 0) or ``n_w`` (1) of each output: the taps inside the input (or the
        padded input with ``count_include_pad``)."""
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        before, after = self.pads[2 * axis], self.pads[2 * axis + 1]
        p = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] * d  # padded positions of the taps
        if self.count_include_pad:
            return (p < length + before + after).sum(axis=1)
        return ((p >= before) & (p < before + length)).sum(axis=1)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (N, C, H, W) -> y (N, C, H_o, W_o)``."""
        cols, padded, (Ho, Wo) = self._cols(x, "AvgPool2d")
        H, W = np.shape(x)[2:]
        n = self._counts(0, H, Ho)[:, None] * self._counts(1, W, Wo)[None, :]  # (H_o, W_o)
        inv = np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0).astype(self.dtype)
        y = cols.sum(axis=(2, 3)) * inv
        if train:
            weights = np.broadcast_to(inv, cols.shape)
            self._cache = (weights, padded, (H, W), y.shape)
        else:
            self._cache = None
        return y


# -- BatchNorm2d ----------------------------------------------------------------------------
class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of each channel, PyTorch's ``nn.BatchNorm2d`` on ``(N, C, H, W)``.

    :class:`BatchNorm1d` over the ``N H W`` positions of each channel: in training
    ``mu_c = mean_{n,h,w} x[n, c, h, w]``, ``var_c`` the biased variance over the same positions,
    ``y = (x - mu) / sqrt(var + eps) * gamma + beta``, running statistics updated with the unbiased
    variance; in inference the running statistics. Backward as :class:`BatchNorm1d` (the channels
    moved last: ``x (N, C, H, W) -> (N, H W, C)``). Parameters, buffers and ``state_dict`` keys as
    PyTorch's. Shapes: ``x (N, C, H, W) -> y`` the same.
    """

    takes_lengths = False
    per_step = False  # type: ignore[assignment]  # (N, C, H, W) has no time steps

    def record(self) -> dict:
        raise ValueError("BatchNorm2d: a 2-D layer on (N, C, H, W); the C engine has no 2-D front-end "
                         "(run it with the NumPy forward)")

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:  # type: ignore[override]
        x = _check_nchw(x, self.num_features, self.dtype, "BatchNorm2d")
        N, C, H, W = x.shape
        y = super().forward(x.reshape(N, C, H * W).transpose(0, 2, 1), train=train)
        return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(N, C, H, W)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = _float_input("dy", dy, self.dtype)
        if dy.ndim != 4:
            raise ValueError(f"BatchNorm2d.backward: dy expected shape (N, C, H, W), got {dy.shape}")
        N, C, H, W = dy.shape
        dx = super().backward(dy.reshape(N, C, H * W).transpose(0, 2, 1))
        return np.ascontiguousarray(dx.transpose(0, 2, 1)).reshape(N, C, H, W)
