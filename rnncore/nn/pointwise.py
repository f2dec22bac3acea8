"""Per-step activations and the residual add, each with a hand-written backward.

All act element by element (so per step: streaming is frame by frame without state) and keep
the input's dtype. Equations (``a`` the input, ``y`` the output, ``dy`` the incoming gradient):

============  ==========================================  ==========================================
layer         forward                                     ``dx = dy * ...``
============  ==========================================  ==========================================
ReLU          ``max(a, 0)``                               ``[a > 0]``
Abs           ``|a|``                                     ``sign(a)`` (0 at 0, as PyTorch)
Sigmoid       ``1 / (1 + exp(-a))``                       ``y (1 - y)``
Tanh          ``tanh(a)``                                 ``1 - y^2``
HardSigmoid   ``clip(alpha a + beta, 0, 1)``              ``alpha [0 < alpha a + beta < 1]``
LeakyReLU     ``a >= 0 ? a : alpha a``                    ``a > 0 ? 1 : alpha``
ELU           ``a >= 0 ? a : alpha (exp(a) - 1)``         ``a > 0 ? 1 : alpha exp(a)``
Hardtanh      ``min(max(a, lo), hi)``                     ``[lo < a < hi]``
SiLU          ``a s``, ``s = 1 / (1 + exp(-a))``           ``s (1 + a (1 - s))``
Hardswish     ``a min(max(a + 3, 0), 6) / 6``             ``a < -3: 0; a <= 3: a/3 + 1/2; else 1``
Softplus      ``b a > t ? a : log(1 + exp(b a)) / b``     ``b a > t ? 1 : 1 / (1 + exp(-b a))``
Softsign      ``a / (1 + |a|)``                           ``1 / (1 + |a|)^2``
GELU          ``a Phi(a)``, ``Phi`` the normal CDF        ``Phi(a) + a phi(a)``
GELU tanh     ``a/2 (1 + tanh(u))``,                      ``(1 + t)/2 + a/2 (1 - t^2) du/da``,
              ``u = sqrt(2/pi) (a + 0.044715 a^3)``       ``t = tanh(u)``
============  ==========================================  ==========================================

``Softmax`` and ``LogSoftmax`` are not element by element: they normalise the features of one
step, ``y_i = exp(a_i - m) / sum_k exp(a_k - m)`` (``m = max_j a_j``) and
``y_i = a_i - m - log sum_k exp(a_k - m)``, with the Jacobian-vector products
``dx_i = y_i (dy_i - sum_k y_k dy_k)`` and ``dx_i = dy_i - p_i sum_k dy_k`` (``p = exp(y)``).

``MulHalves`` multiplies the two halves of the features, ``y = a[..., :H] * a[..., H:]``
(``(..., 2H) -> (..., H)``; Keras ``Bidirectional(merge_mode="mul")`` on rnncore's
``[forward | backward]`` output), with ``dx = [dy * a[..., H:] | dy * a[..., :H]]``.

``Hardtanh(min_val=-1, max_val=1)``, ``ReLU6()`` (``Hardtanh(0, 6)``), ``SiLU()``,
``Hardswish()``, ``Softplus(beta=1, threshold=20)`` (``b``, ``t`` above) and ``Softsign()`` are
PyTorch's modules with their names, defaults and derivatives (at the kinks: PyTorch's choices).

``HardSigmoid()`` is PyTorch's (``alpha = 1/6, beta = 1/2``); ONNX's and Keras 2's
``hard_sigmoid`` is ``alpha = 0.2, beta = 0.5``. ``GELU(approximate="none" | "tanh")`` is
PyTorch's ``nn.GELU``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnncore.nn.functional import sigmoid
from rnncore.nn.layers import _check_dy, _need
from rnncore.nn.module import Module

__all__ = ["Abs", "ReLU", "Sigmoid", "Tanh", "HardSigmoid", "LeakyReLU", "ELU", "Hardtanh", "ReLU6", "SiLU",
           "Hardswish", "Softplus", "Softsign", "GELU", "Softmax", "LogSoftmax", "MulHalves", "Residual",
           "erf"]

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(a: np.ndarray) -> np.ndarray:
    """The error function element by element (``math.erf``, correctly rounded to float64),
    returned in ``a``'s dtype."""
    a = np.asarray(a)
    return _erf(a.astype(np.float64)).astype(a.dtype if a.dtype.kind == "f" else np.float64)


def _floating(x: object) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
    return x


class _Activation(Module):
    per_step = True
    kind = ""

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def record(self) -> dict:
        """The layer as a record description: a future ``.rnc`` kind."""
        return {"kind": self.kind}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (...) -> y (...)``, element by element."""
        x = _floating(x)
        y = self._f(x)
        self._cache = (x, y) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, type(self).__name__)
        x, y = self._cache
        dy = _check_dy(dy, y.shape, y.dtype, type(self).__name__)
        return dy * self._df(x, y)


class ReLU(_Activation):
    """``y = max(x, 0)``; ``dx = dy [x > 0]``."""

    kind = "relu"

    def _f(self, x):
        return np.maximum(x, 0)

    def _df(self, x, y):
        return (x > 0).astype(x.dtype)


class Abs(_Activation):
    """``y = |x|``; ``dx = dy sign(x)`` (0 at ``x = 0``, as PyTorch's ``torch.abs``)."""

    kind = "abs"

    def _f(self, x):
        return np.abs(x)

    def _df(self, x, y):
        return np.sign(x)


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))`` (:func:`rnncore.nn.functional.sigmoid`); ``dx = dy y (1 - y)``."""

    kind = "sigmoid"

    def _f(self, x):
        return sigmoid(x)

    def _df(self, x, y):
        return y * (1 - y)


class Tanh(_Activation):
    """``y = tanh(x)``; ``dx = dy (1 - y^2)``."""

    kind = "tanh"

    def _f(self, x):
        return np.tanh(x)

    def _df(self, x, y):
        return 1 - y * y


class HardSigmoid(_Activation):
    """``y = clip(alpha x + beta, 0, 1)``; ``dx = dy alpha`` inside ``(0, 1)``, else 0.

    Defaults are PyTorch's ``nn.Hardsigmoid`` (``relu6(x + 3) / 6``); ``alpha=0.2, beta=0.5`` is
    ONNX's ``HardSigmoid`` and Keras 2's ``hard_sigmoid``.
    """

    kind = "hard_sigmoid"

    def __init__(self, alpha: float = 1.0 / 6.0, beta: float = 0.5) -> None:
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        if not (math.isfinite(self.alpha) and math.isfinite(self.beta)) or self.alpha == 0:
            raise ValueError(f"alpha, beta: expected finite numbers with alpha != 0, got {alpha!r}, {beta!r}")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def record(self) -> dict:
        return {"kind": self.kind, "alpha": self.alpha, "beta": self.beta}

    def _f(self, x):
        return np.clip(x * x.dtype.type(self.alpha) + x.dtype.type(self.beta), 0, 1)

    def _df(self, x, y):
        a = x * x.dtype.type(self.alpha) + x.dtype.type(self.beta)
        return ((a > 0) & (a < 1)).astype(x.dtype) * x.dtype.type(self.alpha)


class LeakyReLU(_Activation):
    """``y = x`` for ``x >= 0``, else ``alpha x``; ``dx = dy`` for ``x > 0``, else ``dy alpha``
    (PyTorch's choice at 0).

    PyTorch's ``nn.LeakyReLU(negative_slope=0.01)`` and ONNX's ``LeakyRelu`` (``alpha``).
    """

    kind = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(negative_slope)
        if not math.isfinite(self.alpha):
            raise ValueError(f"negative_slope: expected a finite number, got {negative_slope!r}")

    def extra_repr(self) -> str:
        return f"negative_slope={self.alpha}"

    def record(self) -> dict:
        return {"kind": self.kind, "alpha": self.alpha}

    def _f(self, x):
        return np.where(x >= 0, x, x * x.dtype.type(self.alpha))

    def _df(self, x, y):
        return np.where(x > 0, x.dtype.type(1), x.dtype.type(self.alpha))


class ELU(_Activation):
    """``y = x`` for ``x >= 0``, else ``alpha (exp(x) - 1)``; ``dx = dy`` for ``x > 0``, else
    ``dy alpha exp(x)`` (PyTorch's choice at 0).

    PyTorch's ``nn.ELU(alpha=1.0)`` and ONNX's ``Elu``.
    """

    kind = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)
        if not math.isfinite(self.alpha):
            raise ValueError(f"alpha: expected a finite number, got {alpha!r}")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def record(self) -> dict:
        return {"kind": self.kind, "alpha": self.alpha}

    def _f(self, x):
        return np.where(x >= 0, x, x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0)))

    def _df(self, x, y):
        return np.where(x > 0, x.dtype.type(1), x.dtype.type(self.alpha) * np.exp(np.minimum(x, 0)))


class Hardtanh(_Activation):
    """``y = min(max(x, min_val), max_val)``; ``dx = dy`` for ``min_val < x < max_val``, else 0
    (PyTorch's ``nn.Hardtanh``; ONNX ``Clip``, whose missing bound is an infinite one).

    Parameters
    ----------
    min_val, max_val : float
        The bounds, ``min_val <= max_val``, neither NaN (either may be infinite).
    """

    kind = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        self.min_val, self.max_val = float(min_val), float(max_val)
        if math.isnan(self.min_val) or math.isnan(self.max_val) or not self.min_val <= self.max_val \
                or self.min_val == math.inf:
            raise ValueError(f"min_val, max_val: expected min_val <= max_val, neither NaN, got {min_val!r}, "
                             f"{max_val!r}")

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"

    def record(self) -> dict:
        return {"kind": self.kind, "alpha": self.min_val, "beta": self.max_val}

    def _f(self, x):
        t = np.where(x < self.min_val, x.dtype.type(self.min_val), x)
        return np.where(t > self.max_val, x.dtype.type(self.max_val), t)

    def _df(self, x, y):
        return ((x > self.min_val) & (x < self.max_val)).astype(x.dtype)


class ReLU6(Hardtanh):
    """``y = min(max(x, 0), 6)``: PyTorch's ``nn.ReLU6``, ``Hardtanh(0, 6)``."""

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class SiLU(_Activation):
    """``y = x s``, ``s = 1 / (1 + exp(-x))``; ``dx = dy s (1 + x (1 - s))`` (PyTorch's
    ``nn.SiLU``, Keras' ``swish``/``silu``; ONNX ``x * Sigmoid(x)``)."""

    kind = "silu"

    def _f(self, x):
        return x * sigmoid(x)

    def _df(self, x, y):
        s = sigmoid(x)
        return s * (1 + x * (1 - s))


class Hardswish(_Activation):
    """``y = x min(max(x + 3, 0), 6) / 6``; ``dx = dy`` times 0 for ``x < -3``, ``x / 3 + 1/2``
    for ``-3 <= x <= 3``, 1 above (PyTorch's ``nn.Hardswish`` and its backward; ONNX
    ``HardSwish``)."""

    kind = "hardswish"

    def _f(self, x):
        return x * np.clip(x + 3, 0, 6) / 6

    def _df(self, x, y):
        return np.where(x < -3, x.dtype.type(0), np.where(x <= 3, x / 3 + x.dtype.type(0.5), x.dtype.type(1)))


class Softplus(_Activation):
    """``y = x`` where ``beta x > threshold``, else ``log(1 + exp(beta x)) / beta``; ``dx = dy``
    there, else ``dy / (1 + exp(-beta x))`` (PyTorch's ``nn.Softplus``; ONNX ``Softplus`` is
    ``beta = 1``, ``threshold = inf``).

    Parameters
    ----------
    beta : float
        Finite and nonzero.
    threshold : float
        Not NaN (``inf``: never linear).
    """

    kind = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)
        if not math.isfinite(self.beta) or self.beta == 0:
            raise ValueError(f"beta: expected a finite nonzero number, got {beta!r}")
        if math.isnan(self.threshold):
            raise ValueError(f"threshold: expected a number, got {threshold!r}")

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"

    def record(self) -> dict:
        return {"kind": self.kind, "alpha": self.beta, "beta": self.threshold}

    def _f(self, x):
        bx = x * x.dtype.type(self.beta)
        sp = np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))    # log(1 + exp(bx)), stable
        return np.where(bx > self.threshold, x, sp / x.dtype.type(self.beta))

    def _df(self, x, y):
        bx = x * x.dtype.type(self.beta)
        return np.where(bx > self.threshold, x.dtype.type(1), sigmoid(bx))


class Softsign(_Activation):
    """``y = x / (1 + |x|)``; ``dx = dy / (1 + |x|)^2`` (PyTorch's ``nn.Softsign``, ONNX
    ``Softsign``)."""

    kind = "softsign"

    def _f(self, x):
        return x / (1 + np.abs(x))

    def _df(self, x, y):
        d = 1 + np.abs(x)
        return 1 / (d * d)


class GELU(_Activation):
    """Gaussian error linear unit, PyTorch's ``nn.GELU(approximate=...)``.

    ``approximate="none"``: ``y = x Phi(x) = x/2 (1 + erf(x / sqrt 2))``,
    ``dx = dy (Phi(x) + x phi(x))`` with ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``.

    ``approximate="tanh"``: ``y = x/2 (1 + tanh(u))``, ``u = sqrt(2/pi) (x + 0.044715 x^3)``,
    ``dx = dy ((1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))``, ``t = tanh(u)``.
    """

    kind = "gelu"
    _C = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"

    def record(self) -> dict:
        return {"kind": self.kind, "approximate": self.approximate}

    def _f(self, x):
        if self.approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(self._C * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))

    def _df(self, x, y):
        if self.approximate == "tanh":
            t = np.tanh(self._C * (x + 0.044715 * x**3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self._C * (1 + 3 * 0.044715 * x * x)
        cdf = 0.5 * (1 + erf(x / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return (cdf + x * pdf).astype(x.dtype)


class Softmax(_Activation):
    """Softmax over the features of each step, PyTorch's ``nn.Softmax(dim=-1)``.

    ``y_i = exp(x_i - m) / sum_k exp(x_k - m)`` with ``m = max_k x_k`` (the same value without the
    shift, which only keeps ``exp`` from overflowing); ``dx_i = y_i (dy_i - sum_k y_k dy_k)``.
    ``x (..., F) -> y (..., F)``: the last axis is the features (``(B, F)`` after pooling,
    ``(B, T, F)`` per step). The C engine runs it as the activation of a ``Linear`` head.

    Parameters
    ----------
    dim : the axis to normalise, ``-1`` (PyTorch's ``dim`` / Keras' ``axis``); any other axis
        would mix batch or time steps and is refused when the layer is called.
    """

    kind = "softmax"

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
        self.dim = int(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def _check_dim(self, x):
        if self.dim not in (-1, x.ndim - 1):
            raise ValueError(f"{type(self).__name__}: dim: expected -1 (the features, axis {x.ndim - 1} "
                             f"of an input with {x.ndim} axes), got {self.dim}")

    def _f(self, x):
        self._check_dim(x)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, type(self).__name__)
        _, y = self._cache
        dy = _check_dy(dy, y.shape, y.dtype, type(self).__name__)
        return y * (dy - np.sum(y * dy, axis=-1, keepdims=True))


class LogSoftmax(Softmax):
    """Log of the softmax over the features of each step, PyTorch's ``nn.LogSoftmax(dim=-1)``.

    ``y_i = (x_i - m) - log sum_k exp(x_k - m)`` with ``m = max_k x_k``;
    ``dx_i = dy_i - p_i sum_k dy_k`` with ``p = exp(y)`` the softmax. ``x (..., F) -> y (..., F)``.
    The C engine runs it as the activation of a ``Linear`` head (a classifier trained with
    ``NLLLoss``); ``dim`` as :class:`Softmax`.
    """

    kind = "log_softmax"

    def _f(self, x):
        self._check_dim(x)
        z = x - x.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, type(self).__name__)
        _, y = self._cache
        dy = _check_dy(dy, y.shape, y.dtype, type(self).__name__)
        return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


class MulHalves(Module):
    """``y = x[..., :H] * x[..., H:]``: the product of the two halves of the features, element by
    element (Keras ``Bidirectional(merge_mode="mul")`` on ``[forward | backward]`` features).

    Backward: ``dx = [dy * x[..., H:] | dy * x[..., :H]]``. Per step: streams frame by frame
    without state. Shapes: ``x (..., 2H) -> y (..., H)``.
    """

    per_step = True
    kind = "mul_halves"

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def record(self) -> dict:
        return {"kind": self.kind}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x (..., 2H) -> y (..., H)``."""
        x = _floating(x)
        if x.ndim < 1 or x.shape[-1] % 2:
            raise ValueError(f"x: expected an even number of features (two halves) in the last axis, "
                             f"got shape {x.shape}")
        H = x.shape[-1] // 2
        a, b = x[..., :H], x[..., H:]
        self._cache = (a, b) if train else None
        return a * b

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (..., H) -> dx (..., 2H)``."""
        _need(self._cache, "MulHalves")
        a, b = self._cache
        dy = _check_dy(dy, a.shape, a.dtype, "MulHalves")
        return np.concatenate([dy * b, dy * a], axis=-1)


class Residual(Module):
    """``y = x + f(x)`` around a sub-module ``f`` whose output has ``x``'s shape.

    Backward: ``dx = dy + f.backward(dy)``. Streams when ``f`` does (its stream state is the
    residual's), provided each chunk's output has the chunk's length (stride 1, causal).
    ``state_dict`` keys are ``"fn.<name>"``.

    **Around a recurrent layer** (``y = x + GRU(x)``, DeepFilterNet's
    ``x + linear_out(gru(linear_in(x)))``, GNMT's residual LSTMs): ``f`` is a recurrent module
    (GRU, LSTM, RNN, uni- or bidirectional) or a :class:`~rnncore.nn.Sequential` of per-step
    layers and exactly one recurrent module, ``f``'s output as wide as ``x``. The residual is then
    a recurrent module itself (``is_recurrent``), called as one:

    * ``forward(x (B, T, F), lengths=None, train=False, *, mask=None, state=None)`` returns
      ``(y (B, T, F), h_n)``, ``y = x + f(x)`` with zeros past each length (``f``'s output is zero
      there, and the skip carries no padding on); ``state`` / ``h_n`` are the recurrent module's
      initial and final states (its own shapes: LSTM a pair);
    * ``backward(dy, dstate=None)`` returns ``(dx, dstate0)``: ``dx = dy + f``'s ``dx`` (both zero
      past each length), ``dstate0`` the recurrent module's gradient w.r.t. its initial state;
    * streaming (unidirectional, forward-time only): ``zero_state(batch)`` and ``forward`` of a
      chunk with the previous chunk's ``h_n``, as :class:`~rnncore.nn.Sequential` streams its
      recurrent modules (the per-step layers in ``f`` have no state).
    """

    def __init__(self, fn: Module) -> None:
        super().__init__()
        if not isinstance(fn, Module):
            raise TypeError(f"fn: expected an rnncore.nn.Module, got {type(fn).__name__}")
        self.fn = self.add_module("fn", fn)
        self._rec = _recurrent_core(fn)
        self.keeps_time = True
        if self._rec is None:
            self.per_step = bool(getattr(fn, "per_step", False))
            self.takes_lengths = bool(getattr(fn, "takes_lengths", False))
            return
        self.is_recurrent = True
        self.per_step = False
        self.takes_lengths = False
        rec = self._rec
        self.bidirectional = bool(getattr(rec, "bidirectional", False))
        self.reverse = bool(getattr(rec, "reverse", False))
        self.dtype = getattr(rec, "dtype", None)
        self._valid: np.ndarray | None = None

    @property
    def recurrent(self) -> Module | None:
        """The recurrent module inside ``f`` (``f`` itself, or the one in its Sequential), or None."""
        return self._rec

    def zero_state(self, batch: int) -> Any:
        """The recurrent module's all-zero initial state (around a recurrent ``f`` only)."""
        if self._rec is None:
            raise TypeError(f"Residual: {type(self.fn).__name__} has no recurrent state")
        return self._rec.zero_state(batch)

    def record(self) -> dict:
        return {
            "kind": "residual",
            "fn": self.fn.record() if hasattr(self.fn, "record") else type(self.fn).__name__,
        }

    def _add(self, x: np.ndarray, fx: np.ndarray) -> np.ndarray:
        if fx.shape != np.shape(x):
            if self._rec is not None and fx.shape[:-1] == np.shape(x)[:-1]:
                raise ValueError(f"Residual: f(x) gives {fx.shape[-1]} features per step, x has "
                                 f"{np.shape(x)[-1]}; a residual around a recurrent layer needs its "
                                 "output size equal to its input size")
            raise ValueError(f"Residual: f(x) has shape {fx.shape}, x has {np.shape(x)}; they must agree")
        return x + fx

    def forward(
        self, x: np.ndarray, lengths: Any = None, train: bool = False, *, mask: Any = None,
        state: Any = None,
    ) -> Any:
        """``x (B, T, F) -> x + f(x)``; around a recurrent ``f``: ``(y (B, T, F), h_n)``."""
        if self._rec is not None:
            return self._forward_recurrent(x, lengths, train, mask, state)
        if state is not None:
            raise ValueError(f"state: {type(self.fn).__name__} has no recurrent state")
        if self.takes_lengths:
            return self._add(x, self.fn.forward(x, lengths=lengths, train=train, mask=mask))
        if lengths is not None or mask is not None:
            raise ValueError(f"lengths: {type(self.fn).__name__} does not take lengths")
        return self._add(x, self.fn.forward(x, train=train))

    def _forward_recurrent(self, x, lengths, train, mask, state):
        x = _floating(x)
        if x.ndim != 3:
            raise ValueError(f"x: expected 3 dimensions (batch, time, features), got shape {x.shape}")
        if mask is not None or lengths is not None:
            from rnncore.nn.layers import _resolve_lengths
            lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
        if self._rec is self.fn:
            fx, h_n = self.fn.forward(x, state=state, lengths=lengths, train=train)
        else:
            fx = self.fn.forward(x, lengths=lengths, state=[state], train=train)
            h_n = self.fn.final_states[0]
        y = self._add(x, fx)
        self._valid = None
        if lengths is not None:
            self._valid = (np.arange(x.shape[1])[None, :] < lengths[:, None])[:, :, None]
            y = np.where(self._valid, y, y.dtype.type(0))
        return y, h_n

    def backward(self, dy: np.ndarray, dstate: Any = None) -> Any:
        if self._rec is None:
            return dy + self.fn.backward(dy)
        dy = np.asarray(dy)
        if self._valid is not None:
            dy = np.where(self._valid, dy, dy.dtype.type(0))
        if self._rec is self.fn:
            dfx, dstate0 = self.fn.backward(dy, dstate=dstate)
        else:
            dfx, dstate0 = self._sequential_backward(dy, dstate)
        return dy + dfx, dstate0

    def _sequential_backward(self, dy: np.ndarray, dstate: Any) -> tuple[np.ndarray, Any]:
        """Sequential.backward with the recurrent module's state gradient in and out."""
        if self.fn._valid is not None:
            dy = np.where(self.fn._valid[:, :, None], dy, dy.dtype.type(0))
        dstate0 = None
        for m in reversed(list(self.fn)):
            if m is self._rec:
                dy, dstate0 = m.backward(dy, dstate=dstate)
            else:
                dy = m.backward(dy)
        return dy, dstate0

    def stream_state(self, batch: int) -> Any:
        if self._rec is not None:
            return self.zero_state(batch)
        return self.fn.stream_state(batch) if hasattr(self.fn, "stream_state") else None

    def stream(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        if self._rec is not None:
            if self.bidirectional or self.reverse:
                raise TypeError(f"Residual: a bidirectional or reverse {type(self._rec).__name__} needs the "
                                "whole sequence; it cannot stream")
            if np.shape(x)[1] == 0:
                return np.asarray(x), state
            return self.forward(x, state=state)
        if hasattr(self.fn, "stream"):
            fx, state = self.fn.stream(x, state)
        elif self.per_step:
            fx = self.fn.forward(x)
        else:
            raise TypeError(f"Residual: {type(self.fn).__name__} cannot stream")
        return self._add(x, fx), state


def _recurrent_core(fn: Module) -> Module | None:
    """The recurrent module of a residual's ``f``: ``f`` itself, the one recurrent module of a
    Sequential of per-step layers, or None when ``f`` has none; anything else is refused."""
    if getattr(fn, "is_recurrent", False):
        rec = fn
        _check_recurrent_sizes(rec, "fn")
        return rec
    from rnncore.nn.layers import Sequential
    if not isinstance(fn, Sequential):
        return None
    recs = [(i, m) for i, m in enumerate(fn) if getattr(m, "is_recurrent", False)]
    if not recs:
        return None
    if len(recs) > 1:
        raise TypeError(f"fn: a residual's Sequential holds at most one recurrent module, got {len(recs)} "
                        f"(modules {[i for i, _ in recs]})")
    for i, m in enumerate(fn):
        if m is not recs[0][1] and not getattr(m, "per_step", False):
            raise TypeError(f"fn[{i}]: expected per-step layers around the recurrent module of a residual, "
                            f"got {type(m).__name__}")
    if isinstance(recs[0][1], Residual):
        return recs[0][1]
    _check_recurrent_sizes(recs[0][1], f"fn[{recs[0][0]}]", whole=(len(fn) == 1))
    return recs[0][1]


def _check_recurrent_sizes(rec: Module, where: str, whole: bool = True) -> None:
    if isinstance(rec, Residual) or not hasattr(rec, "input_size"):
        return
    d = 2 if getattr(rec, "bidirectional", False) else 1
    out = d * (getattr(rec, "output_size", None) or rec.hidden_size)
    if whole and out != rec.input_size:
        raise ValueError(f"{where}: a residual needs the output size equal to the input size; "
                         f"{type(rec).__name__} takes {rec.input_size} features and gives {out}"
                         + (f" ({d} directions x {out // d})" if d == 2 else ""))
