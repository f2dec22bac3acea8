"""LayerNorm, BatchNorm1d and InstanceNorm1d with hand-written backward, and BatchNorm folding.

LayerNorm normalises each step's feature vector (per step: streams frame by frame);
BatchNorm1d normalises each feature over the batch and time (training) or with its running
statistics (inference, then also per step); InstanceNorm1d normalises each sequence's feature
over that sequence's steps (a whole-sequence layer: it cannot stream). Equations: ``docs/layers.md``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from rnncore.nn.layers import Linear, _check_dy, _float_input, _need, _resolve_lengths, mask_from_lengths
from rnncore.nn.module import Module, check_int, resolve_dtype

__all__ = [
    "LayerNorm",
    "BatchNorm1d",
    "InstanceNorm1d",
    "layer_norm",
    "layer_norm_backward",
    "fold_batchnorm",
    "fold_batchnorms",
]


# -- the functional form, shared with the layer-normalised cells ----------------------------
def layer_norm(
    a: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float
) -> tuple[np.ndarray, tuple]:
    """Normalise over the last axis: ``y = (a - mu) / sqrt(var + eps) * gamma + beta``.

    ``mu``, ``var`` are the mean and the biased variance of the last axis (as every framework).

    Parameters
    ----------
    a : (..., N); gamma, beta : (N,) or None (no affine)
    eps : added to the variance

    Returns
    -------
    y : (..., N); cache for :func:`layer_norm_backward` (``a_hat``, ``rstd (..., 1)``, ``gamma``)
    """
    mu = a.mean(axis=-1, keepdims=True)
    d = a - mu
    var = np.mean(d * d, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + a.dtype.type(eps))
    a_hat = d * rstd
    y = a_hat if gamma is None else a_hat * gamma
    if beta is not None:
        y = y + beta
    return y, (a_hat, rstd, gamma)


def layer_norm_backward(
    dy: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of :func:`layer_norm`.

    With ``g = dy * gamma``: ``da = rstd (g - mean(g) - a_hat mean(g a_hat))`` (means over the
    last axis); ``dgamma = sum dy a_hat``, ``dbeta = sum dy`` over every leading axis.
    Returns ``(da, dgamma, dbeta)`` (``dgamma`` None without ``gamma``).
    """
    a_hat, rstd, gamma = cache
    g = dy if gamma is None else dy * gamma
    da = rstd * (g - g.mean(axis=-1, keepdims=True) - a_hat * np.mean(g * a_hat, axis=-1, keepdims=True))
    lead = tuple(range(dy.ndim - 1))
    dgamma = None if gamma is None else np.sum(dy * a_hat, axis=lead)
    return da, dgamma, np.sum(dy, axis=lead)


class LayerNorm(Module):
    """Layer normalisation over the last axis, PyTorch's ``nn.LayerNorm(N)``.

    ``y = (x - mu) / sqrt(var + eps) * gamma + beta``, with ``mu = mean_i x_i`` and
    ``var = mean_i (x_i - mu)^2`` over the last axis (``N`` features).

    Parameters
    ----------
    normalized_shape : ``N``, the feature size
    eps : ``epsilon`` (PyTorch's 1e-5; Keras' LayerNormalization uses 1e-3)
    elementwise_affine, bias : learn ``gamma`` (``weight``, init 1) and ``beta`` (``bias``, init 0)
    dtype : "float64" or "float32"

    Notes
    -----
    Shapes: ``x (..., N) -> y (..., N)``; per step.
    """

    per_step = True

    def __init__(
        self,
        normalized_shape: int,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: str = "float64",
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, tuple | list) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]
        self.normalized_shape = check_int("normalized_shape", normalized_shape, 1)
        self.eps = float(eps)
        if not self.eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        self.dtype = resolve_dtype(dtype)
        if elementwise_affine:
            self.params["weight"] = np.ones(self.normalized_shape, self.dtype)
            if bias:
                self.params["bias"] = np.zeros(self.normalized_shape, self.dtype)
        self.zero_grad()
        self._cache = None

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}, elementwise_affine={'weight' in self.params}"

    def record(self) -> dict:
        return {
            "kind": "layer_norm",
            "features": self.normalized_shape,
            "eps": self.eps,
            "tensors": dict(self.params),
        }

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _float_input("x", x, self.dtype)
        if x.shape[-1] != self.normalized_shape:
            raise ValueError(
                f"x: expected last dimension {self.normalized_shape} (normalized_shape), got {x.shape}"
            )
        y, cache = layer_norm(x, self.params.get("weight"), self.params.get("bias"), self.eps)
        self._cache = cache if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "LayerNorm")
        dy = _check_dy(dy, self._cache[0].shape, self.dtype, "LayerNorm")
        dx, dgamma, dbeta = layer_norm_backward(dy, self._cache)
        if "weight" in self.params:
            self.grads["weight"] += dgamma
        if "bias" in self.params:
            self.grads["bias"] += dbeta
        return dx


class BatchNorm1d(Module):
    """Batch normalisation of each feature, PyTorch's ``nn.BatchNorm1d`` on ``(B, T, C)``.

    Training (``train=True``), statistics over the batch and time (the valid steps only, when
    ``lengths`` are given):

    ``mu_c = (1/N) sum_{b,t} x[b, t, c]``, ``var_c = (1/N) sum_{b,t} (x[b, t, c] - mu_c)^2``,
    ``y = (x - mu) / sqrt(var + eps) * gamma + beta``

    and the running statistics move ``r <- (1 - m) r + m s`` with the unbiased variance
    ``N/(N-1) sigma^2`` (``momentum=None``: the cumulative average, as PyTorch). Inference uses
    ``running_mean``/``running_var`` in place of ``mu``/``sigma^2`` (a per-step affine map, so it
    streams and folds into a preceding Conv1d/Linear: :func:`fold_batchnorm`).

    Backward (training), with ``g = dy gamma`` and sums over the ``N`` normalised positions:
    ``dx = rstd (g - mean(g) - x_hat mean(g x_hat))``, ``dgamma = sum dy x_hat``, ``dbeta = sum dy``.

    ``state_dict``: ``weight``, ``bias``, ``running_mean``, ``running_var``,
    ``num_batches_tracked`` (PyTorch's keys). Shapes: ``x (B, T, C)`` or ``(B, C)`` -> same.
    """

    takes_lengths = True
    keeps_time = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        dtype: str = "float64",
    ) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features, 1)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.dtype = resolve_dtype(dtype)
        if affine:
            self.params["weight"] = np.ones(self.num_features, self.dtype)
            self.params["bias"] = np.zeros(self.num_features, self.dtype)
        self.buffers["running_mean"] = np.zeros(self.num_features, self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, self.dtype)
        self.buffers["num_batches_tracked"] = np.zeros((), np.int64)
        self.zero_grad()
        self._cache = None

    @property
    def per_step(self) -> bool:
        return True  # in inference, the only mode that streams

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={'weight' in self.params}"
        )

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The inference map ``y = x * scale + shift``: ``scale = gamma / sqrt(running_var + eps)``,
        ``shift = beta - running_mean * scale``."""
        scale = 1.0 / np.sqrt(self.buffers["running_var"] + self.dtype.type(self.eps))
        if "weight" in self.params:
            scale = scale * self.params["weight"]
        shift = -self.buffers["running_mean"] * scale
        if "bias" in self.params:
            shift = shift + self.params["bias"]
        return scale, shift

    def record(self) -> dict:
        scale, shift = self.scale_shift()
        return {
            "kind": "scale_shift",
            "features": self.num_features,
            "tensors": {"scale": scale, "shift": shift},
        }

    def forward(
        self, x: np.ndarray, lengths: Any = None, train: bool = False, *, mask: Any = None
    ) -> np.ndarray:
        x = _float_input("x", x, self.dtype, min_ndim=2)
        if x.ndim not in (2, 3) or x.shape[-1] != self.num_features:
            raise ValueError(
                f"x: expected shape (batch, time, {self.num_features}) or (batch, {self.num_features}), "
                f"got {x.shape}"
            )
        if not train:
            scale, shift = self.scale_shift()
            self._cache = None
            return x * scale + shift
        valid = None
        if x.ndim == 3:
            lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
            if lengths is not None:
                valid = mask_from_lengths(lengths, x.shape[1])[:, :, None]
        w = np.ones(x.shape[:-1] + (1,), self.dtype) if valid is None else valid.astype(self.dtype)
        axes = tuple(range(x.ndim - 1))
        n = float(w.sum())
        if n < 2:
            raise ValueError(f"x: training BatchNorm1d needs more than 1 value per feature, got {int(n)}")
        mu = np.sum(w * x, axis=axes) / n
        d = (x - mu) * w
        var = np.sum(d * d, axis=axes) / n
        rstd = 1.0 / np.sqrt(var + self.dtype.type(self.eps))
        x_hat = d * rstd
        gamma = self.params.get("weight")
        y = x_hat if gamma is None else x_hat * gamma
        if "bias" in self.params:
            y = y + self.params["bias"] * w
        m = self.momentum
        self.buffers["num_batches_tracked"] += 1
        if m is None:
            m = 1.0 / float(self.buffers["num_batches_tracked"])
        self.buffers["running_mean"] *= 1 - m
        self.buffers["running_mean"] += m * mu
        self.buffers["running_var"] *= 1 - m
        self.buffers["running_var"] += m * var * (n / (n - 1))
        self._cache = (x_hat, rstd, w, n)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "BatchNorm1d")
        x_hat, rstd, w, n = self._cache
        dy = _check_dy(dy, x_hat.shape, self.dtype, "BatchNorm1d") * w
        axes = tuple(range(dy.ndim - 1))
        if "weight" in self.params:
            self.grads["weight"] += np.sum(dy * x_hat, axis=axes)
            self.grads["bias"] += np.sum(dy, axis=axes)
        g = dy if "weight" not in self.params else dy * self.params["weight"]
        return w * rstd * (g - np.sum(g, axis=axes) / n - x_hat * (np.sum(g * x_hat, axis=axes) / n))


class InstanceNorm1d(Module):
    """Instance normalisation over time, PyTorch's ``nn.InstanceNorm1d`` on ``(B, T, C)``.

    Each sequence ``b`` and feature ``c`` is normalised over that sequence's ``n_b`` valid steps
    (``n_b = T``, or ``lengths[b]``):

    ``mu[b, c] = (1/n_b) sum_t x[b, t, c]``, ``var[b, c] = (1/n_b) sum_t (x[b, t, c] - mu[b, c])^2``
    (biased), ``x_hat = (x - mu) / sqrt(var + eps)``, ``y = x_hat * gamma + beta`` (``affine``).

    Backward, with ``g = dy gamma`` and means over the same valid steps:
    ``dx = rstd (g - mean_t(g) - x_hat mean_t(g x_hat))``, ``dgamma = sum_{b,t} dy x_hat``,
    ``dbeta = sum_{b,t} dy``.

    With ``lengths`` (or ``mask``) the statistics use the valid steps only, and the outputs past
    each length are 0. PyTorch's default ``track_running_stats=False`` (the statistics always
    come from the input, in training and inference); running statistics are not supported.

    A whole-sequence layer: a step's output depends on every step of its sequence, so a
    :class:`~rnncore.nn.Sequential` holding it refuses ``stream``, naming it.

    Parameters
    ----------
    num_features : ``C``
    eps : added to the variance (PyTorch's 1e-5)
    affine : learn ``gamma`` (``weight``, init 1) and ``beta`` (``bias``, init 0); PyTorch's
        default is False
    dtype : "float64" or "float32"

    Notes
    -----
    Shapes: ``x (B, T, C) -> y (B, T, C)``.
    """

    takes_lengths = True
    keeps_time = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        affine: bool = False,
        track_running_stats: bool = False,
        dtype: str = "float64",
    ) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features, 1)
        self.eps = float(eps)
        if not self.eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        if track_running_stats:
            raise ValueError("track_running_stats: InstanceNorm1d normalises with each sequence's own "
                             "statistics; expected False (PyTorch's default), got True")
        self.dtype = resolve_dtype(dtype)
        if affine:
            self.params["weight"] = np.ones(self.num_features, self.dtype)
            self.params["bias"] = np.zeros(self.num_features, self.dtype)
        self.zero_grad()
        self._cache = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={'weight' in self.params}"

    def record(self) -> dict:
        t = dict(self.params)   # {} or weight, bias
        return {"kind": "instance_norm", "features": self.num_features, "eps": self.eps, "tensors": t}

    def forward(
        self, x: np.ndarray, lengths: Any = None, train: bool = False, *, mask: Any = None
    ) -> np.ndarray:
        """``x (B, T, C) -> y (B, T, C)``; see the class docstring."""
        x = _float_input("x", x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.num_features:
            raise ValueError(f"x: expected shape (batch, time, {self.num_features}), got {x.shape}")
        lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
        if lengths is None:
            if x.shape[1] == 0:
                raise ValueError("x: 0 time steps; InstanceNorm1d needs at least one step per sequence")
            w = np.ones((x.shape[0], x.shape[1], 1), self.dtype)
        else:   # every length in 1..T (_resolve_lengths)
            w = mask_from_lengths(lengths, x.shape[1])[:, :, None].astype(self.dtype)
        n = np.sum(w, axis=1, keepdims=True)                          # (B, 1, 1)
        mu = np.sum(w * x, axis=1, keepdims=True) / n                 # (B, 1, C)
        d = (x - mu) * w
        var = np.sum(d * d, axis=1, keepdims=True) / n
        rstd = 1.0 / np.sqrt(var + self.dtype.type(self.eps))
        x_hat = d * rstd                                              # 0 past each length
        y = x_hat
        if "weight" in self.params:
            y = x_hat * self.params["weight"] + self.params["bias"] * w
        self._cache = (x_hat, rstd, w, n) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "InstanceNorm1d")
        x_hat, rstd, w, n = self._cache
        dy = _check_dy(dy, x_hat.shape, self.dtype, "InstanceNorm1d") * w
        if "weight" in self.params:
            self.grads["weight"] += np.sum(dy * x_hat, axis=(0, 1))
            self.grads["bias"] += np.sum(dy, axis=(0, 1))
        g = dy if "weight" not in self.params else dy * self.params["weight"]
        mg = np.sum(g, axis=1, keepdims=True) / n
        mgx = np.sum(g * x_hat, axis=1, keepdims=True) / n
        return w * rstd * (g - mg - x_hat * mgx)


# -- folding -----------------------------------------------------------------------------------
def fold_batchnorm(layer: Module, bn: BatchNorm1d) -> Module:
    """A copy of ``layer`` (a :class:`Linear`, :class:`~rnncore.nn.conv.Conv1d`) with the inference
    BatchNorm ``bn`` that follows it folded in: ``W' = W * scale`` (per output row/channel),
    ``b' = b * scale + shift``, so ``layer'(x) = bn(layer(x))`` (``bn`` in inference mode).
    """
    from rnncore.nn.conv import Conv1d

    if type(bn) is not BatchNorm1d:  # (not BatchNorm2d: (N, C, H, W))
        raise TypeError(f"bn: expected a BatchNorm1d, got {type(bn).__name__}")
    if isinstance(layer, Linear):
        out = layer.out_features
    elif isinstance(layer, Conv1d):
        out = layer.out_channels
    else:
        raise TypeError(
            f"layer: expected a Linear or Conv1d to fold a BatchNorm1d into, got {type(layer).__name__}"
        )
    if out != bn.num_features:
        raise ValueError(f"bn: expected num_features = {out} (the layer's outputs), got {bn.num_features}")
    scale, shift = bn.scale_shift()
    new = copy.deepcopy(layer)
    w = new.params["weight"]
    w *= scale.reshape((-1,) + (1,) * (w.ndim - 1)).astype(w.dtype)
    bias = layer.params.get("bias")
    new.params["bias"] = ((0 if bias is None else bias) * scale + shift).astype(w.dtype)
    new.zero_grad()
    return new


def fold_batchnorms(model: Module) -> Module:
    """A copy of a :class:`~rnncore.nn.Sequential` with every BatchNorm1d that directly follows a
    Linear or Conv1d folded into it (:func:`fold_batchnorm`); the same function in inference."""
    from rnncore.nn.conv import Conv1d
    from rnncore.nn.layers import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a Sequential, got {type(model).__name__}")
    out: list[Module] = []
    for m in model:
        if (
            type(m) is BatchNorm1d
            and out
            and isinstance(out[-1], Linear | Conv1d)
            and getattr(out[-1], "out_features", getattr(out[-1], "out_channels", None)) == m.num_features
        ):
            out[-1] = fold_batchnorm(out[-1], m)
        else:
            out.append(copy.deepcopy(m))
    return Sequential(*out)
