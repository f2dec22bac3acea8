"""Front-end layers over time: Conv1d, a Conv1d within each step's frame, |complex|, pooling.

Every layer here works on rnncore's layout ``(batch, time, features)`` and follows the block
contract of :mod:`rnncore.nn.layers` (``forward(x, train=...)`` keeps an explicit cache,
``backward(dy)`` returns ``dx`` and accumulates ``self.grads``). Equations: ``docs/layers.md``.

One gather does every window: a padded position ``p`` of a length-``L`` input reads

* ``x[p - pad_left]`` inside the input,
* the *pad slot* (an extra row appended to the input, holding 0, or ``-inf`` for max
  pooling) outside it with ``padding_mode="zeros"``, or the mirrored element
  (``x[-r]`` / ``x[2(L-1) - r]``, PyTorch's ``reflect``) with ``padding_mode="reflect"``,

so ``cols = x_ext[:, index]`` with ``index (L_out, k)`` holds the ``k`` taps
``p = l*stride + j*dilation`` of every output ``l``, and the backward scatters ``dcols``
back through the same index (``np.add.at``: taps may share an element).

Streaming (:meth:`stream`): a layer over time whose padding is on the left only (``"causal"``,
``"valid"``, ``(left, 0)``) keeps the inputs that later outputs still need in its stream
state: the buffer starts as the ``left`` padding (zeros) and after each chunk keeps the inputs
from the first tap of the next output on -- with stride 1 exactly the last
``(k - 1) * dilation`` inputs. Feeding a sequence chunk by chunk (one frame at a time, or any
split) returns the same outputs as one ``forward`` over the whole sequence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnncore.nn.layers import _check_dy, _float_input, _need, _resolve_lengths, mask_from_lengths
from rnncore.nn.module import Module, check_int, resolve_dtype

__all__ = [
    "Conv1d",
    "FrameConv1d",
    "Magnitude",
    "MaxPool1d",
    "AvgPool1d",
    "window_index",
    "conv_output_length",
    "same_padding",
]


# -- the window index shared by every layer here -------------------------------------------
def _pair(name: str, padding: object) -> tuple[int, int]:
    if isinstance(padding, tuple | list) and len(padding) == 2:
        return check_int(f"{name}[0]", padding[0], 0), check_int(f"{name}[1]", padding[1], 0)
    if isinstance(padding, int | np.integer) and not isinstance(padding, bool):
        p = check_int(name, padding, 0)
        return p, p
    raise TypeError(f"{name}: expected an int >= 0 or a pair (left, right), got {padding!r}")


def conv_output_length(
    length: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    pad_left: int = 0,
    pad_right: int = 0,
    ceil_mode: bool = False,
) -> int:
    """``floor((L + left + right - dilation (k - 1) - 1) / stride) + 1``, or 0 if the padded
    input is shorter than one window or the input is empty (``L = 0``: PyTorch's formula, and
    PyTorch refuses both; padding alone makes no output).

    ``ceil_mode=True`` rounds up instead, dropping a last window that would start in the right
    padding (PyTorch's and ONNX's pooling rule).
    """
    span = dilation * (kernel_size - 1) + 1
    padded = length + pad_left + pad_right
    if padded < span or length == 0:
        return 0
    n = (padded - span) // stride + 1
    if ceil_mode and (padded - span) % stride:
        n += 1
        if (n - 1) * stride >= length + pad_left:
            n -= 1
    return n


def same_padding(
    length: int, kernel_size: int, stride: int = 1, dilation: int = 1, lower: bool = False
) -> tuple[int, int]:
    """TensorFlow's ``padding="same"`` (ONNX's ``auto_pad="SAME_UPPER"``; ``lower=True``:
    ``"SAME_LOWER"``) for an input of ``length`` steps: ``(left, right)``.

    With ``P = dilation (kernel_size - 1)`` and ``s = stride``::

        T_out = ceil(L / s)
        total = max((T_out - 1) s + P + 1 - L, 0)
        left  = total // 2            (SAME_LOWER: total - total // 2)
        right = total - left

    At ``s = 1`` the total is ``P`` whatever ``L``: PyTorch's ``padding="same"`` (odd one on the
    right); at ``s > 1`` it depends on ``L``. :func:`conv_output_length` with it gives ``T_out``.
    """
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel_size - 1) + 1 - length, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def ceil_mode_padding(
    kernel_size: int,
    stride: int,
    dilation: int,
    pad_left: int,
    pad_right: int,
    average: bool,
    count_include_pad: bool,
) -> tuple[int, bool]:
    """A pooling's ``ceil_mode=True`` as a ``ceil_mode=False`` one with more right padding:
    ``(right, exclude)``, the right padding ``R`` and whether an average leaves every pad step out
    of its count (the C core's pool_time record with a timepad tail).

    With ``P = dilation (kernel_size - 1)``, ``s = stride``, ``p_l, p_r`` the padding, PyTorch's /
    ONNX's ceil_mode keeps the windows ``ceil((L + p_l + p_r - P - 1) / s) + 1`` rounded up that
    start before the right padding, ``ceil((L + p_l) / s)``: the smaller of the two, which is
    ``floor((L + p_l + R - P - 1) / s) + 1`` with ``R = min(p_r + s - 1, P)`` for every ``L``
    (both are that form, with ``p_r + s - 1`` and ``P`` for ``R``). The steps past ``L + p_l + p_r``
    that the last window reads take no part: a max skips them as it skips padding; an average
    leaves them out of its count, so ``exclude`` is ``True`` for ``count_include_pad=False`` and
    for an unpadded one (its only pad steps are those); an average with ``count_include_pad=True``
    and padding counts its own pad steps but not those, which one ``exclude`` flag cannot say:
    ValueError unless ``R == p_r`` (ceil_mode then changes nothing).
    """
    reach = dilation * (kernel_size - 1)
    right = min(pad_right + stride - 1, reach)
    exclude = average and not count_include_pad
    if average and count_include_pad and right != pad_right:
        if pad_left or pad_right:
            raise ValueError(
                f"ceil_mode=True with count_include_pad=True, padding ({pad_left}, {pad_right}) and stride "
                f"{stride}: the last window counts the padding but not the steps past it, which the C core "
                "does not run; expected count_include_pad=False, no padding, or ceil_mode=False")
        exclude = True
    return right, exclude


def window_index(
    length: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    pad_left: int = 0,
    pad_right: int = 0,
    padding_mode: str = "zeros",
    ceil_mode: bool = False,
) -> np.ndarray:
    """Indices ``(L_out, k)`` into ``x_ext`` (the input with one pad slot appended at index ``L``).

    ``index[l, j]`` is where tap ``j`` of output ``l`` reads: padded position
    ``p = l*stride + j*dilation``, real position ``r = p - pad_left``; ``r`` if ``0 <= r < L``,
    otherwise the pad slot ``L`` (``"zeros"``) or the mirror image of ``r`` (``"reflect"``).
    ``ceil_mode``: the number of outputs of :func:`conv_output_length` with ``ceil_mode``
    (taps past the right padding read the pad slot).
    """
    n_out = conv_output_length(length, kernel_size, stride, dilation, pad_left, pad_right, ceil_mode)
    p = np.arange(n_out)[:, None] * stride + np.arange(kernel_size)[None, :] * dilation
    r = p - pad_left
    if padding_mode == "reflect":
        if length and max(pad_left, pad_right) >= length:
            raise ValueError(
                f"padding: reflect padding must be < the input length {length}, got ({pad_left}, {pad_right})"
            )
        r = np.where(r < 0, -r, r)
        r = np.where(r >= length, 2 * (length - 1) - r, r)
        return r.astype(np.intp)
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode: expected 'zeros' or 'reflect', got {padding_mode!r}")
    return np.where((r >= 0) & (r < length), r, length).astype(np.intp)


def _gather(x: np.ndarray, index: np.ndarray, pad_value: float = 0.0) -> np.ndarray:
    """``x (N, L, C)`` -> ``cols (N, L_out, k, C)``, ``cols[n, l, j] = x_ext[n, index[l, j]]``
    (``index (N, L_out, k)``, one per row: ``x_ext[n, index[n, l, j]]``)."""
    N, _, C = x.shape
    x_ext = np.concatenate([x, np.full((N, 1, C), pad_value, x.dtype)], axis=1)
    if index.ndim == 3:
        return x_ext[np.arange(N)[:, None, None], index]
    return x_ext[:, index]


def _scatter(dcols: np.ndarray, index: np.ndarray, length: int) -> np.ndarray:
    """The adjoint of :func:`_gather`: ``dx (N, L, C)`` summing every tap that read an element."""
    N, _, k, C = dcols.shape
    dx_ext = np.zeros((N, length + 1, C), dcols.dtype)
    rows = np.arange(N)[:, None] if index.ndim == 3 else slice(None)
    for j in range(k):
        np.add.at(dx_ext, (rows, index[..., j]), dcols[:, :, j])
    return dx_ext[:, :length]


def _as_rows(cols: np.ndarray, w: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the windows as rows and the weights as a matrix:
    ``cols (N, L_out, k, C_in) -> (g, N*L_out, k*C_g)`` and ``w (C_out, C_g, k) -> (g, C_out/g, k*C_g)``
    (both ordered tap-major, ``[j, c]``), so that the convolution is one matrix product per group."""
    N, Lo, k, Ci = cols.shape
    Co, Cg = w.shape[0], Ci // groups
    rows = cols.reshape(N * Lo, k, groups, Cg).transpose(2, 0, 1, 3).reshape(groups, N * Lo, k * Cg)
    mat = w.reshape(groups, Co // groups, Cg, k).transpose(0, 1, 3, 2).reshape(groups, Co // groups, k * Cg)
    return rows, mat


def _conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, index: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """``y[n, l, o] = b[o] + sum_{j, c} w[o, c, j] cols[n, l, j, g(o) C_g + c]`` per group.

    ``x (N, L, C_in)``, ``w (C_out, C_in/groups, k)`` -> ``y (N, L_out, C_out)``, ``cols``.
    """
    cols = _gather(x, index)  # (N, L_out, k, C_in)
    N, Lo = cols.shape[:2]
    rows, mat = _as_rows(cols, w, groups)
    y = (rows @ mat.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(N, Lo, w.shape[0])  # (g, NL, Co/g) -> y
    if b is not None:
        y += b
    return y, cols


def _conv_backward(
    dy: np.ndarray, cols: np.ndarray, w: np.ndarray, index: np.ndarray, length: int, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx (N, L, C_in), dw like w, db (C_out,))`` of :func:`_conv_forward`."""
    N, Lo, k, Ci = cols.shape
    Co, Cg = w.shape[0], Ci // groups
    rows, mat = _as_rows(cols, w, groups)
    dyg = dy.reshape(N * Lo, groups, Co // groups).transpose(1, 0, 2)  # (g, N*L_out, C_out/g)
    dmat = dyg.transpose(0, 2, 1) @ rows  # (g, C_out/g, k*C_g)
    dw = dmat.reshape(groups, Co // groups, k, Cg).transpose(0, 1, 3, 2).reshape(w.shape)
    drows = dyg @ mat  # (g, N*L_out, k*C_g)
    dcols = drows.reshape(groups, N, Lo, k, Cg).transpose(1, 2, 3, 0, 4).reshape(cols.shape)
    return _scatter(dcols, index, length), dw, dy.sum(axis=(0, 1))


def _init_conv(
    module: Module,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    groups: int,
    bias: bool,
    seed: int | None,
) -> None:
    """PyTorch's default initialisation: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    ``fan_in = in_channels / groups * kernel_size``, for weight and bias."""
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups: expected a divisor of in_channels={in_channels} and out_channels={out_channels}, "
            f"got {groups}"
        )
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(in_channels // groups * kernel_size)
    module.params["weight"] = rng.uniform(
        -bound, bound, (out_channels, in_channels // groups, kernel_size)
    ).astype(module.dtype)
    if bias:
        module.params["bias"] = rng.uniform(-bound, bound, out_channels).astype(module.dtype)
    module.zero_grad()


class _TimeWindow(Module):
    """Shared by Conv1d and the poolings: windows over the time axis, lengths, streaming.

    A subclass sets its window in ``__init__`` with :meth:`_window` and computes its outputs
    from the windows' indices in ``_apply(x, index, train)`` / ``_backward(dy) -> dx``.
    """

    takes_lengths = True
    keeps_time = True  # Sequential: not a pooling to one vector (its outputs stay per step)
    kernel_size: int
    stride: int
    dilation: int
    pad_value = 0.0
    padding_mode = "zeros"
    ceil_mode = False
    channels: int  # input features C
    same_rule: str | None = None  # "upper" / "lower": TensorFlow's "same" at a stride > 1 (per length)

    def _window(self, kernel_size: int, stride: int, dilation: int, padding: object) -> None:
        """Check and set ``kernel_size``, ``stride``, ``dilation``, ``padding`` and the
        ``(pad_left, pad_right)`` it means (none fixed for ``"same"`` at a stride > 1)."""
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = check_int("stride", stride, 1)
        self.dilation = check_int("dilation", dilation, 1)
        self.padding = padding
        self._pads = self._padding(padding)

    def _padding(self, padding: object) -> tuple[int, int]:
        span = self.dilation * (self.kernel_size - 1)
        if padding == "valid":
            return 0, 0
        if padding == "causal":
            return span, 0
        if padding in ("same", "same_lower"):
            if self.stride == 1:   # d(k-1) whatever the length: PyTorch puts the odd one on the right
                return same_padding(1, self.kernel_size, 1, self.dilation, padding == "same_lower")
            self.same_rule = "upper" if padding == "same" else "lower"
            return 0, 0   # not used: same_padding(T) at each forward
        if isinstance(padding, str):
            raise ValueError(
                "padding: expected 'valid', 'same', 'same_lower', 'causal', an int or (left, right), "
                f"got {padding!r}"
            )
        return _pair("padding", padding)

    def _fixed_pads(self) -> tuple[int, int]:
        span = self.dilation * (self.kernel_size - 1)
        if self.same_rule == "upper" and span <= 1:
            # a window of at most 2 steps never pads on the left (total <= 1): padding (0, span)
            # has the same ceil(T / s) windows for every T, reading its pad step only when "same" does
            return 0, span
        if self.same_rule is not None:
            raise ValueError(
                f"{type(self).__name__}(padding={self.padding!r}, stride={self.stride}) pads by an amount "
                "that depends on each input's length (TensorFlow's 'same' rule, "
                "rnncore.nn.conv.same_padding), which this path needs fixed (the C engine, a stream, an "
                "export): run the model with its NumPy forward"
            )
        return self._pads

    @property
    def pad_left(self) -> int:
        """The padding before the input (ValueError for ``"same"`` at a stride > 1: it depends on T)."""
        return self._fixed_pads()[0]

    @pad_left.setter
    def pad_left(self, value: int) -> None:   # a fixed padding from now on
        self._pads, self.same_rule = (int(value), self._pads[1]), None

    @property
    def pad_right(self) -> int:
        """The padding after the input (ValueError for ``"same"`` at a stride > 1: it depends on T)."""
        return self._fixed_pads()[1]

    @pad_right.setter
    def pad_right(self, value: int) -> None:
        self._pads, self.same_rule = (self._pads[0], int(value)), None

    def pads_for(self, length: int) -> tuple[int, int]:
        """``(left, right)`` for an input of ``length`` steps (:func:`same_padding` for ``"same"``
        at a stride > 1, else the fixed padding)."""
        if self.same_rule is not None:
            lower = self.same_rule == "lower"
            return same_padding(length, self.kernel_size, self.stride, self.dilation, lower)
        return self._pads

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        """Each sequence's number of outputs: ``ceil(L / s)`` for ``"same"`` at a stride > 1; the
        other paddings take lengths at stride 1 with ``d(k-1)`` padding only (the same number)."""
        if self.same_rule is not None:
            return -(-np.asarray(lengths) // self.stride)
        return lengths

    def _check(self, x: object) -> np.ndarray:
        x = _float_input("x", x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.channels:
            raise ValueError(f"x: expected shape (batch, time, {self.channels}), got {x.shape}")
        return x

    def _index(self, length: int, whole: bool) -> np.ndarray:
        """The indices of each output's window (:func:`window_index`): over the whole sequence
        with its padding, or over a stream buffer that already holds the left padding."""
        pl, pr = self.pads_for(length) if whole else (0, 0)
        idx = window_index(
            length, self.kernel_size, self.stride, self.dilation, pl, pr, self.padding_mode,
            self.ceil_mode and whole,
        )
        if whole and length == 0:
            raise ValueError(f"x: 0 time steps; {type(self).__name__} over time gives no output for an empty "
                             "sequence (its padding alone is not an input; PyTorch refuses it too)")
        if whole and idx.shape[0] == 0:
            raise ValueError(
                f"x: {length} time steps are fewer than one window of {type(self).__name__} "
                f"(dilation*(kernel_size-1)+1 = {self.dilation * (self.kernel_size - 1) + 1} with padding "
                f"({pl}, {pr}))"
            )
        return idx

    def _row_index(self, lengths: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``"same"`` at a stride with per-row lengths: each row's windows as if it ran alone at its
        length ``L_b`` (its own :func:`same_padding`), ``index (B, ceil(T/s), k)`` into ``x_ext``
        (the pad slot is ``T``), and ``valid (B, ceil(T/s), 1)``: output ``t < ceil(L_b / s)``."""
        n_out = -(-length // self.stride)
        index = np.full((len(lengths), n_out, self.kernel_size), length, np.intp)
        for b, lb in enumerate(lengths):
            if lb:
                pads = self.pads_for(int(lb))
                idx = window_index(int(lb), self.kernel_size, self.stride, self.dilation, *pads)
                index[b, : idx.shape[0]] = np.where(idx == lb, length, idx)   # its pad slot -> x's
        valid = np.arange(n_out)[None, :] < self.output_lengths(lengths)[:, None]
        return index, valid[:, :, None]

    def _mask_input(self, x: np.ndarray, lengths: Any, mask: Any) -> tuple[np.ndarray, Any]:
        """With lengths: set the input past each length to the pad value (what running each
        sequence alone with its padding sees: 0, or -inf for max pooling); the outputs there are
        then set to 0 (:meth:`_mask_output`). Only when the output keeps the time axis step for step."""
        lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
        if lengths is None:
            return x, None
        if self.padding_mode != "zeros":
            raise ValueError(
                f"lengths: {type(self).__name__} with padding_mode={self.padding_mode!r} would reflect "
                "the padding past each length; use padding_mode='zeros' or equal-length sequences"
            )
        if self.stride != 1 or self.pad_left + self.pad_right != self.dilation * (self.kernel_size - 1):
            raise ValueError(
                f"lengths: {type(self).__name__} changes the number of steps (stride={self.stride}, padding="
                f"({self.pad_left}, {self.pad_right})), so per-sequence lengths cannot follow it; use "
                "equal-length sequences, stride 1 with padding 'same' or 'causal', or padding 'same' "
                "at any stride (TensorFlow's rule, each sequence padded for its own length)"
            )
        self._check_lengths_supported()
        valid = mask_from_lengths(lengths, x.shape[1])[:, :, None]
        return np.where(valid, x, x.dtype.type(self.pad_value)), valid

    def _check_lengths_supported(self) -> None:
        """Refuse ``lengths`` where masking the input is not running each sequence alone."""

    @staticmethod
    def _mask_output(y: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """Outputs past each length are 0 (as every per-step output of rnncore), never -inf."""
        return y if valid is None else np.where(valid, y, y.dtype.type(0))

    def forward(
        self, x: np.ndarray, lengths: Any = None, train: bool = False, *, mask: Any = None
    ) -> np.ndarray:
        """``x (B, T, C) -> y (B, T_out, F)``; see the class docstring."""
        x = self._check(x)
        if self.same_rule is not None:   # each row padded for its own length (same_padding)
            lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
            if lengths is None:
                idx, valid = self._index(x.shape[1], whole=True), None
            else:
                idx, valid = self._row_index(lengths, x.shape[1])
            y = self._apply(x, idx, train)
            self._valid = valid if train else None
            return self._mask_output(y, valid)
        x, valid = self._mask_input(x, lengths, mask)
        y = self._apply(x, self._index(x.shape[1], whole=True), train)
        self._valid = valid if train else None
        return self._mask_output(y, valid)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, T_out, F) -> dx (B, T, C)``; accumulates the parameters' gradients."""
        _need(self._cache, type(self).__name__)
        dy = _check_dy(dy, self._out_shape(), self.dtype, type(self).__name__)
        if self._valid is not None:
            dy = dy * self._valid  # the outputs past each length are constant 0
        dx = self._backward(dy)
        if self._valid is not None and self.same_rule is None:   # (same_rule: no tap reads past L_b)
            dx *= self._valid
        return dx

    # -- streaming ---------------------------------------------------------------------------
    def stream_state(self, batch: int) -> np.ndarray:
        """The initial stream state: the left padding, ``(batch, pad_left, C)`` of the pad value."""
        if self.same_rule is not None:
            raise ValueError(
                f"{type(self).__name__}: streaming needs a fixed padding; padding={self.padding!r} at "
                f"stride={self.stride} pads by an amount that depends on the whole input's length"
            )
        if self.padding_mode != "zeros" and self.pad_left:
            raise ValueError(
                f"{type(self).__name__}: streaming needs padding_mode='zeros' (a reflected left "
                f"padding reads inputs that have not arrived), got {self.padding_mode!r}"
            )
        if self.pad_right or self.ceil_mode:
            raise ValueError(
                f"{type(self).__name__}: streaming needs padding on the left only ('causal', 'valid' or "
                f"(left, 0)) and ceil_mode=False, got ({self.pad_left}, {self.pad_right}), "
                f"ceil_mode={self.ceil_mode}: the right end needs future inputs"
            )
        self._check_stream_supported()
        return np.full((batch, self.pad_left, self.channels), self.pad_value, self.dtype)

    def _check_stream_supported(self) -> None:
        """Refuse streaming where the layer's own options need the whole sequence."""

    def stream(self, x: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Run a chunk ``x (B, n, C)`` (``n >= 0``) of a stream; returns ``(y (B, n_out, F), state)``.

        ``state`` (None: :meth:`stream_state`) holds the inputs the next outputs still need; the
        outputs of all chunks, concatenated, equal ``forward`` of the whole sequence.
        """
        x = self._check(x)
        if state is None:
            state = self.stream_state(x.shape[0])
        buf = np.concatenate([state, x], axis=1)
        idx = self._index(buf.shape[1], whole=False)
        y = self._apply(buf, idx, train=False)
        return y, buf[:, idx.shape[0] * self.stride :].copy()

# -- Conv1d over time -----------------------------------------------------------------------
class Conv1d(_TimeWindow):
    """1-D convolution over time, PyTorch's ``nn.Conv1d`` on rnncore's ``(batch, time, features)``.

    ``y[b, t, o] = bias[o] + sum_{c in g(o)} sum_{j<k} W[o, c, j] x_pad[b, t*s + j*d, c]``

    (cross-correlation, as in every framework); ``x_pad`` is ``x`` with ``pad_left`` zeros before
    and ``pad_right`` after; ``g(o)`` is the ``C_in/groups`` input channels of output ``o``'s
    group.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : ``C_in``, ``C_out``, ``k``
    stride, dilation, groups : ``s``, ``d``, groups (both channel counts divisible by it)
    padding : ``"valid"`` (none), ``"same"``, ``"same_lower"``, ``"causal"`` (``d(k-1)`` on the left:
        output ``t`` sees inputs ``<= t``, streamable), an int (both sides) or ``(left, right)``.
        ``"same"`` is TensorFlow's / Keras' rule (ONNX ``auto_pad="SAME_UPPER"``,
        :func:`same_padding`): ``ceil(T / s)`` outputs, ``total = max((ceil(T/s) - 1) s + d(k-1) + 1
        - T, 0)`` split ``total // 2`` on the left, the rest on the right; at stride 1 that is
        ``d(k-1)``, PyTorch's ``"same"``. PyTorch refuses ``"same"`` at a stride > 1; rnncore
        extends it with TensorFlow's rule, where the padding depends on ``T`` (no stream, and the
        C engine has no such record yet). ``"same_lower"``: ONNX's ``SAME_LOWER`` (the larger
        half on the left)
    bias, dtype, seed : as :class:`rnncore.nn.Linear`; initialisation as PyTorch
    padding_mode : ``"zeros"`` or ``"reflect"`` (PyTorch's ``padding_mode``; reflect does not stream)

    Notes
    -----
    Shapes: ``x (B, T, C_in) -> y (B, T_out, C_out)``, ``T_out = floor((T + left + right -
    d(k-1) - 1)/s) + 1``; ``weight (C_out, C_in/groups, k)`` and ``bias (C_out,)`` exactly as
    PyTorch's ``state_dict`` (so ``torch.nn.Conv1d(...)(x.transpose(1, 2)).transpose(1, 2)`` is
    the same function). With ``lengths`` (stride 1, 'same'/'causal' padding only) the input
    past each length is taken as zero and the outputs there are 0. ``"same"`` at a stride > 1
    takes ``lengths`` at any stride: each sequence is padded as if it ran alone at its length
    ``L_b`` (``ceil(L_b / s)`` outputs, :meth:`output_lengths`; the outputs past them are 0).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: str | int | tuple[int, int] = "valid",
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: str = "float64",
        seed: int | None = None,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if padding_mode not in ("zeros", "reflect"):
            raise ValueError(f"padding_mode: expected 'zeros' or 'reflect', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.in_channels = self.channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self._window(kernel_size, stride, dilation, padding)
        if self.same_rule is not None and padding_mode != "zeros":
            raise ValueError(f"padding_mode: padding={padding!r} at stride={self.stride} pads with zeros; "
                             f"expected 'zeros', got {padding_mode!r}")
        self.groups = check_int("groups", groups, 1)
        self.dtype = resolve_dtype(dtype)
        _init_conv(self, self.in_channels, self.out_channels, self.kernel_size, self.groups, bias, seed)
        self._cache = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={'bias' in self.params}"
        )

    def record(self) -> dict:
        """The layer as a record description (kind, integer fields, tensors): a future ``.rnc`` kind."""
        return {
            "kind": "conv1d",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "dilation": self.dilation,
            "groups": self.groups,
            "pad_left": self.pad_left,
            "pad_right": self.pad_right,
            "padding_mode": self.padding_mode,
            "tensors": dict(self.params),
        }

    def _apply(self, x: np.ndarray, idx: np.ndarray, train: bool) -> np.ndarray:
        y, cols = _conv_forward(x, self.params["weight"], self.params.get("bias"), idx, self.groups)
        self._cache = (cols, idx, x.shape[1]) if train else None
        return y

    def _out_shape(self) -> tuple[int, int, int]:
        cols = self._cache[0]
        return cols.shape[0], cols.shape[1], self.out_channels

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        cols, idx, length = self._cache
        dx, dw, db = _conv_backward(dy, cols, self.params["weight"], idx, length, self.groups)
        self.grads["weight"] += dw
        if "bias" in self.params:
            self.grads["bias"] += db
        return dx


# -- Conv1d within each step's frame --------------------------------------------------------
class FrameConv1d(Module):
    """A Conv1d applied inside every step's frame: the STFT-by-convolution of Silero VAD.

    Each step ``t`` carries a frame of ``C_in`` channels of ``L`` samples, flattened
    channel-major (``frame[c*L + i]``, PyTorch's ``(C, L)`` order); the layer convolves along the
    frame's own sample axis, independently at each step, and returns the ``C_out x L_out``
    result flattened the same way:

    ``Y_t[o, l] = bias[o] + sum_{c in g(o)} sum_{j<k} W[o, c, j] frame_t_pad[c, l*s + j*d]``

    With ``W`` holding ``cos``/``-sin`` rows of a windowed DFT and stride ``hop``, ``Y_t`` is the
    real and imaginary STFT of the frame (follow with :class:`Magnitude`).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype, seed :
        as :class:`Conv1d`
    frame_length : ``L``, the samples per channel of each step's frame
    padding : int or ``(left, right)``, within the frame
    padding_mode : ``"zeros"`` or ``"reflect"`` (``torch.nn.functional.pad(mode="reflect")``)

    Notes
    -----
    Shapes: ``x (B, T, C_in*L) -> y (B, T, C_out*L_out)``; ``weight (C_out, C_in/groups, k)``.
    Per step, so streaming is frame by frame without state.
    """

    per_step = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        frame_length: int,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        padding_mode: str = "zeros",
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: str = "float64",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.frame_length = check_int("frame_length", frame_length, 1)
        self.stride = check_int("stride", stride, 1)
        self.dilation = check_int("dilation", dilation, 1)
        self.groups = check_int("groups", groups, 1)
        self.pad_left, self.pad_right = _pair("padding", padding)
        if padding_mode not in ("zeros", "reflect"):
            raise ValueError(f"padding_mode: expected 'zeros' or 'reflect', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.dtype = resolve_dtype(dtype)
        self.index = window_index(
            self.frame_length,
            self.kernel_size,
            self.stride,
            self.dilation,
            self.pad_left,
            self.pad_right,
            padding_mode,
        )
        self.out_length = self.index.shape[0]
        if self.out_length == 0:
            raise ValueError(
                f"frame_length: {frame_length} (+ padding) is shorter than one window of the kernel"
            )
        _init_conv(self, self.in_channels, self.out_channels, self.kernel_size, self.groups, bias, seed)
        self._cache = None

    @property
    def in_features(self) -> int:
        return self.in_channels * self.frame_length

    @property
    def out_features(self) -> int:
        return self.out_channels * self.out_length

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"frame_length={self.frame_length}, stride={self.stride}, padding=({self.pad_left}, "
            f"{self.pad_right}), padding_mode='{self.padding_mode}', out_length={self.out_length}"
        )

    def record(self) -> dict:
        """The layer as a record description: a future ``.rnc`` kind."""
        return {
            "kind": "frame_conv1d",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "frame_length": self.frame_length,
            "stride": self.stride,
            "dilation": self.dilation,
            "groups": self.groups,
            "pad_left": self.pad_left,
            "pad_right": self.pad_right,
            "padding_mode": self.padding_mode,
            "tensors": dict(self.params),
        }

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (B, T, C_in*L) -> y (B, T, C_out*L_out)``."""
        x = _float_input("x", x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.in_features:
            raise ValueError(
                f"x: expected shape (batch, time, {self.in_features}) = in_channels*frame_length, "
                f"got {x.shape}"
            )
        B, T, _ = x.shape
        frames = x.reshape(B * T, self.in_channels, self.frame_length).transpose(0, 2, 1)  # (BT, L, C_in)
        y, cols = _conv_forward(
            frames, self.params["weight"], self.params.get("bias"), self.index, self.groups
        )
        self._cache = (cols, B, T) if train else None
        return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(B, T, self.out_features)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, T, C_out*L_out) -> dx (B, T, C_in*L)``; accumulates the weight gradients."""
        _need(self._cache, "FrameConv1d")
        cols, B, T = self._cache
        dy = _check_dy(dy, (B, T, self.out_features), self.dtype, "FrameConv1d")
        dyf = dy.reshape(B * T, self.out_channels, self.out_length).transpose(0, 2, 1)
        dx, dw, db = _conv_backward(
            dyf, cols, self.params["weight"], self.index, self.frame_length, self.groups
        )
        self.grads["weight"] += dw
        if "bias" in self.params:
            self.grads["bias"] += db
        return np.ascontiguousarray(dx.transpose(0, 2, 1)).reshape(B, T, self.in_features)


class Magnitude(Module):
    """``|re + i im| = sqrt(re^2 + im^2)`` of features ``[re | im]`` (the two halves of the last axis).

    After a :class:`FrameConv1d` whose first ``C_out/2`` channels are the real and the rest the
    imaginary part, the halves of the channel-major frame are exactly those channels.

    Backward: ``d|z|/d re = re/|z|``, ``d|z|/d im = im/|z|``, taken as 0 where ``|z| = 0``.
    Shapes: ``x (..., 2M) -> y (..., M)``.
    """

    per_step = True

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def record(self) -> dict:
        return {"kind": "magnitude"}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating) or x.ndim < 1 or x.shape[-1] % 2:
            raise ValueError(f"x: expected floating features [re | im] of even size, got {x.dtype} {x.shape}")
        M = x.shape[-1] // 2
        re, im = x[..., :M], x[..., M:]
        y = np.sqrt(re * re + im * im)
        self._cache = (re, im, y) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "Magnitude")
        re, im, y = self._cache
        dy = _check_dy(dy, y.shape, y.dtype, "Magnitude")
        safe = np.where(y > 0, y, 1)
        g = np.where(y > 0, dy / safe, 0)
        return np.concatenate([g * re, g * im], axis=-1)


# -- pooling over time ----------------------------------------------------------------------
class _TimePool(_TimeWindow):
    def __init__(
        self,
        kernel_size: int,
        stride: int | None,
        padding: int | tuple[int, int] | str,
        channels: int,
        dtype: str,
        dilation: int = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self._window(kernel_size, kernel_size if stride is None else stride, dilation, padding)
        self.channels = check_int("channels", channels, 1)
        self.dtype = resolve_dtype(dtype)
        if not isinstance(ceil_mode, bool | np.bool_):
            raise TypeError(f"ceil_mode: expected a bool, got {ceil_mode!r}")
        self.ceil_mode = bool(ceil_mode)
        if self.same_rule is not None and self.ceil_mode:
            raise ValueError(f"ceil_mode: padding={padding!r} at stride={self.stride} already gives ceil(T / "
                             "stride) outputs; expected ceil_mode=False")
        if max(self._pads) > self.kernel_size // 2 and padding != "causal":
            raise ValueError(
                f"padding: expected at most kernel_size // 2 = {self.kernel_size // 2} (as PyTorch), "
                f"got {padding!r}"
            )
        self._cache = None

    def extra_repr(self) -> str:
        extra = f", dilation={self.dilation}" if self.dilation != 1 else ""
        extra += ", ceil_mode=True" if self.ceil_mode else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}{extra}"

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "pad_left": self.pad_left,
            "pad_right": self.pad_right,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }

    def _out_shape(self) -> tuple[int, int, int]:
        shape = self._cache[0]
        return shape[0], shape[1], self.channels

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        _, idx, length, weights = self._cache
        return _scatter(weights * dy[:, :, None, :], idx, length)


class MaxPool1d(_TimePool):
    """Max over windows of time, PyTorch's ``nn.MaxPool1d`` on ``(B, T, C)``.

    ``y[b, t, c] = max_{j<k} x_pad[b, t*s + j*d, c]``

    ``x_pad`` pads with ``-inf``: a window that holds no input (``dilation`` over the padding, tiny
    ``T``) gives ``-inf``, as PyTorch (ONNX Runtime gives the lowest float32). Backward: the
    gradient goes to the first maximum of each window (as PyTorch). ``padding``: int (both sides, ``<= k/2``),
    ``(left, right)``, ``"causal"`` (``d(k-1)`` on the left, streamable), or ``"same"`` /
    ``"same_lower"``: TensorFlow's rule at any stride (Keras' ``padding="same"``, ONNX's
    ``SAME_UPPER`` / ``SAME_LOWER``; see :class:`Conv1d`, :func:`same_padding`; with ``lengths``
    each sequence padded for its own length; not with ``ceil_mode``). ``stride`` defaults
    to ``kernel_size``. ``channels`` is the feature size ``C``. ``dilation`` ``d``; ``ceil_mode``
    rounds the number of outputs up (PyTorch's and ONNX's rule: a last window that would start
    in the right padding is dropped). Shapes: ``x (B, T, C) -> y (B, T_out, C)``.
    """

    kind = "max_pool1d"
    pad_value = -np.inf

    def __init__(
        self,
        kernel_size: int,
        channels: int,
        stride: int | None = None,
        padding: int | tuple[int, int] | str = 0,
        dtype: str = "float64",
        dilation: int = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, channels, dtype, dilation, ceil_mode)

    def _apply(self, x: np.ndarray, idx: np.ndarray, train: bool) -> np.ndarray:
        cols = _gather(x, idx, pad_value=-np.inf)  # (B, T_out, k, C)
        first = np.argmax(cols, axis=2)  # the first maximum, like PyTorch
        y = np.take_along_axis(cols, first[:, :, None, :], axis=2)[:, :, 0]
        if train:
            onehot = (np.arange(self.kernel_size)[None, None, :, None] == first[:, :, None, :]).astype(
                x.dtype
            )
            self._cache = (y.shape, idx, x.shape[1], onehot)
        else:
            self._cache = None
        return y


class AvgPool1d(_TimePool):
    """Mean over windows of time, PyTorch's ``nn.AvgPool1d``.

    ``y[b, t, c] = (1/n_t) sum_{j<k} x_pad[b, t*s + j*d, c]``

    with zero padding. ``n_t`` counts the taps of window ``t``: with ``count_include_pad=True``
    (PyTorch's default) those inside the padded input ``[0, L + left + right)`` (``k`` unless
    ``ceil_mode`` lets the window run past the right padding), with ``count_include_pad=False``
    (Keras' and TFLite's ``"same"``) those inside the input only; a window that holds no input
    (``dilation`` over the padding, tiny ``T``) gives 0, as ONNX Runtime. Backward: ``dx`` receives
    ``dy / n_t`` from every window ``t`` that holds it. Parameters and shapes as
    :class:`MaxPool1d`; ``dilation`` is ONNX's (PyTorch's AvgPool1d has none). ``padding="same"``
    at a stride > 1 (TensorFlow's rule, :func:`same_padding`) needs ``count_include_pad=False``,
    as Keras and ONNX average it.
    """

    kind = "avg_pool1d"

    def __init__(
        self,
        kernel_size: int,
        channels: int,
        stride: int | None = None,
        padding: int | tuple[int, int] | str = 0,
        dtype: str = "float64",
        dilation: int = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, channels, dtype, dilation, ceil_mode)
        if not isinstance(count_include_pad, bool | np.bool_):
            raise TypeError(f"count_include_pad: expected a bool, got {count_include_pad!r}")
        self.count_include_pad = bool(count_include_pad)
        if self.same_rule is not None and self.count_include_pad:
            raise ValueError(
                f"count_include_pad: padding={padding!r} at stride={self.stride} (TensorFlow's rule) "
                "averages over the real inputs only, as Keras and ONNX; expected count_include_pad=False"
            )

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")

    def record(self) -> dict:
        return {**super().record(), "count_include_pad": self.count_include_pad}

    def _check_lengths_supported(self) -> None:
        if not self.count_include_pad:
            raise ValueError(
                "lengths: AvgPool1d with count_include_pad=False divides by the real inputs of each "
                "window, which the padding past each length would change; use equal-length sequences"
            )

    def _check_stream_supported(self) -> None:
        if not self.count_include_pad and self.pad_left:
            raise ValueError(
                "AvgPool1d: streaming with count_include_pad=False and a left padding is not supported "
                "(the stream buffer holds the padding as inputs)"
            )

    def _divisor(self, idx: np.ndarray, length: int) -> np.ndarray:
        """``n_t`` of each window: ``idx (T_out, k)`` -> ``(T_out,)``, see the class docstring.

        (A stream buffer holds its left padding and has no right one, so every window of a
        stream lies inside ``[0, length + left + right)``.)"""
        if not self.count_include_pad:
            return (idx != length).sum(axis=-1)  # taps that read the input, not the pad slot
        taps = np.arange(idx.shape[0])[:, None] * self.stride + np.arange(self.kernel_size) * self.dilation
        return (taps < length + self.pad_left + self.pad_right).sum(axis=1)

    def _apply(self, x: np.ndarray, idx: np.ndarray, train: bool) -> np.ndarray:
        cols = _gather(x, idx)
        n = self._divisor(idx, x.shape[1])
        if np.all(n == self.kernel_size):
            y = cols.mean(axis=2)
            w = np.full((1, 1, self.kernel_size, 1), 1.0 / self.kernel_size, x.dtype)
        else:   # a window without a real input (n_t = 0: dilation over the padding) gives 0, as ORT
            n = n.reshape((-1,) + n.shape[-1:])   # (1 or B, T_out): per-row windows (_row_index) per row
            y = cols.sum(axis=2) / np.maximum(n, 1)[:, :, None].astype(x.dtype)   # its sum is 0
            inv = np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0).astype(x.dtype)
            w = np.broadcast_to(inv[:, :, None, None], n.shape + (self.kernel_size, 1))
        self._cache = (y.shape, idx, x.shape[1], w) if train else None
        return y
