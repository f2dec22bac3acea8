"""Layers of a chunk model whose front-end leaves ``P`` positions per chunk (Silero VAD v4).

A chunk model is called once per chunk of samples. Its front-end works inside the chunk, on a frame
of ``C`` channels over ``L`` positions flattened channel-major (``frame[c*L + l]``, as
:class:`~rnncore.nn.conv.FrameConv1d` has it); it may end with ``P > 1`` positions, which the
recurrent layers then step over one after the other (their state carried from chunk to chunk), and
a per-position head whose outputs are averaged over the chunk's positions:

``X (B, N, L_in) -> front-end -> (B, N, C*P) -> ChunkPositions -> (B, N*P, C) -> recurrent layers,
per-position head -> (B, N*P, F) -> ChunkMean -> (B, N, F)``.

Every layer here is an equation in NumPy with a hand-written backward, under the block contract
of :mod:`rnncore.nn.layers`: ``forward(x, train=True)`` keeps an explicit cache, ``backward(dy)``
returns ``dx`` and accumulates the gradients of the modules a layer wraps (the smoother, the bodies,
the projection), so a chunk model trains with :func:`~rnncore.nn.train.fit`. Equations:
``docs/layers.md``.

:class:`ChunkPositions` and :class:`ChunkMean` change the number of steps per sequence (``N`` chunks
<-> ``N*P`` positions), so per-sequence ``lengths``/``mask`` counted on one side would be wrong on
the other: both layers refuse them (train on equal-length sequences).
"""

from __future__ import annotations

import numpy as np

from rnncore.nn.layers import _check_dy, _need
from rnncore.nn.module import Module, check_int


def _frames(x: object, width: int, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != width or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{who}: x: expected floating frames (batch, steps, {width}), got {x.dtype} "
                         f"{x.shape}")
    return x


def _refuse_lengths(lengths: object, mask: object, who: str, what: str) -> None:
    if lengths is not None or mask is not None:
        raise ValueError(f"lengths: {who} turns {what}, so per-sequence lengths of its input do not "
                         f"apply to its output; use equal-length sequences (lengths=None, mask=None)")


class LogAffine(Module):
    """``y = log(scale * x + offset)`` elementwise (a log-compressed spectrum).

    Backward: ``u = scale * x + offset``, ``dx = dy * scale / u``.
    Shapes: ``x (..., F) -> y (..., F)``.
    """

    per_step = True

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)
        self._cache = None

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}, offset={self.offset!r}"

    def record(self) -> dict:
        """The layer as a per-step record description (a pointwise record, kind log_affine)."""
        return {"kind": "log_affine", "scale": self.scale, "offset": self.offset}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        u = x * x.dtype.type(self.scale) + x.dtype.type(self.offset)
        self._cache = u if train else None
        return np.log(u)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (..., F) -> dx (..., F)``: ``dx = dy * scale / u``."""
        _need(self._cache, "LogAffine")
        u = self._cache
        dy = _check_dy(dy, u.shape, u.dtype, "LogAffine")
        return dy * u.dtype.type(self.scale) / u


class SmoothedMeanSubtract(Module):
    """Adaptive normalisation over a frame of ``C`` channels by ``L`` positions:

    ``m[l] = mean_c x[c, l]``, ``s = smoother(m)`` (a one-channel
    :class:`~rnncore.nn.conv.FrameConv1d` over the ``L`` positions, its padding included),
    ``mu = mean_l' s[l']``, ``y[c, l] = x[c, l] - mu``.

    Backward (``L_s`` the smoother's output positions):
    ``dmu = -sum_{c, l} dy[c, l]``, ``ds[l'] = dmu / L_s``, ``dm = smoother.backward(ds)``
    (which accumulates the smoother's gradients), ``dx[c, l] = dy[c, l] + dm[l] / C``.

    Shapes: ``x (B, T, C*L) -> y (B, T, C*L)`` (channel-major frames).
    """

    per_step = True

    def __init__(self, channels: int, length: int, smoother: Module) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, 1)
        self.length = check_int("length", length, 1)
        if getattr(smoother, "in_features", None) != self.length or smoother.out_channels != 1:
            raise ValueError(f"smoother: expected a FrameConv1d of one channel over {self.length} positions, "
                             f"got {smoother!r}")
        self.add_module("smoother", smoother)
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _frames(x, self.channels * self.length, "SmoothedMeanSubtract")
        B, T, _ = x.shape
        m = x.reshape(B, T, self.channels, self.length).mean(axis=2)         # (B, T, L)
        s = self._modules["smoother"].forward(m, train=train)                 # (B, T, L_s)
        mu = s.mean(axis=2, keepdims=True)                                    # (B, T, 1)
        self._cache = (x.shape, x.dtype, s.shape[2]) if train else None
        return x - mu

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, T, C*L) -> dx (B, T, C*L)``; accumulates the smoother's gradients."""
        _need(self._cache, "SmoothedMeanSubtract")
        shape, dtype, Ls = self._cache
        dy = _check_dy(dy, shape, dtype, "SmoothedMeanSubtract")
        B, T, _ = shape
        dmu = -dy.sum(axis=2, keepdims=True)                                   # (B, T, 1)
        ds = np.repeat(dmu / dtype.type(Ls), Ls, axis=2)                      # (B, T, L_s)
        dm = self._modules["smoother"].backward(ds)                           # (B, T, L)
        dx = dy.reshape(B, T, self.channels, self.length) + dm[:, :, None, :] / dtype.type(self.channels)
        return dx.reshape(shape)


class FrameConcat(Module):
    """``y = [x ; body(x)]``: the frame and what ``body`` makes of it, concatenated on the channel
    axis (both over the same ``L`` positions, so the channel-major vectors are concatenated).

    Backward: ``dx = dy[..., :C1*L] + body.backward(dy[..., C1*L:])``.

    Shapes: ``x (B, T, C1*L) -> y (B, T, (C1 + C2)*L)``.
    """

    per_step = True

    def __init__(self, body: Module) -> None:
        super().__init__()
        self.add_module("body", body)
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        y = np.concatenate([x, self._modules["body"].forward(x, train=train)], axis=-1)
        self._cache = (y.shape, y.dtype, x.shape[-1]) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, T, (C1 + C2)*L) -> dx (B, T, C1*L)``; accumulates the body's gradients."""
        _need(self._cache, "FrameConcat")
        shape, dtype, F1 = self._cache
        dy = _check_dy(dy, shape, dtype, "FrameConcat")
        return dy[..., :F1] + self._modules["body"].backward(dy[..., F1:])


class FrameResidual(Module):
    """``y = body(x) + proj(x)`` (``proj`` None: ``y = body(x) + x``), a residual block of frame layers.

    Backward: ``dx = body.backward(dy) + proj.backward(dy)`` (``proj`` None: ``+ dy``).

    Shapes: ``x (B, T, F_in) -> y (B, T, F_out)``.
    """

    per_step = True

    def __init__(self, body: Module, proj: Module | None = None) -> None:
        super().__init__()
        self.add_module("body", body)
        if proj is not None:
            self.add_module("proj", proj)
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        y = self._modules["body"].forward(x, train=train)
        p = self._modules["proj"].forward(x, train=train) if "proj" in self._modules else x
        if p.shape != y.shape:
            raise ValueError(f"FrameResidual: body gives {y.shape}, the residual path {p.shape}")
        out = y + p
        self._cache = (out.shape, out.dtype) if train else None
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, T, F_out) -> dx (B, T, F_in)``; accumulates the body's and the projection's gradients."""
        _need(self._cache, "FrameResidual")
        shape, dtype = self._cache
        dy = _check_dy(dy, shape, dtype, "FrameResidual")
        dx = self._modules["body"].backward(dy)
        return dx + (self._modules["proj"].backward(dy) if "proj" in self._modules else dy)


class ChunkPositions(Module):
    """A chunk's frame of ``C`` channels over ``P`` positions -> ``P`` steps of ``C`` features:
    ``y[b, n*P + p, c] = x[b, n, c*P + p]``.

    Backward (a permutation, so its transpose): ``dx[b, n, c*P + p] = dy[b, n*P + p, c]``.

    Shapes: ``x (B, N, C*P) -> y (B, N*P, C)``. ``lengths``/``mask`` (counted in chunks, wrong for
    the ``N*P`` positions after it) are refused.
    """

    per_step = True
    takes_lengths = True  # to refuse them: Sequential passes lengths here
    keeps_time = True

    def __init__(self, channels: int, positions: int) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, 1)
        self.positions = check_int("positions", positions, 1)
        self._cache = None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, positions={self.positions}"

    def forward(self, x: np.ndarray, lengths: object = None, train: bool = False, *,
                mask: object = None) -> np.ndarray:
        """``x (B, N, C*P) -> y (B, N*P, C)`` (``lengths``/``mask``: refused)."""
        _refuse_lengths(lengths, mask, "ChunkPositions", "each chunk into P positions")
        x = _frames(x, self.channels * self.positions, "ChunkPositions")
        B, N, _ = x.shape
        y = x.reshape(B, N, self.channels, self.positions).transpose(0, 1, 3, 2)
        self._cache = (B, N, x.dtype) if train else None
        return np.ascontiguousarray(y).reshape(B, N * self.positions, self.channels)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, N*P, C) -> dx (B, N, C*P)``."""
        _need(self._cache, "ChunkPositions")
        B, N, dtype = self._cache
        C, P = self.channels, self.positions
        dy = _check_dy(dy, (B, N * P, C), dtype, "ChunkPositions")
        dx = dy.reshape(B, N, P, C).transpose(0, 1, 3, 2)                     # (B, N, C, P)
        return np.ascontiguousarray(dx).reshape(B, N, C * P)


class ChunkMean(Module):
    """The mean over each chunk's ``P`` positions: ``y[b, n] = mean_p x[b, n*P + p]``.

    Backward: ``dx[b, n*P + p] = dy[b, n] / P``.

    Shapes: ``x (B, N*P, F) -> y (B, N, F)``. ``lengths``/``mask`` (counted in positions, wrong for
    the ``N`` chunks after it) are refused.
    """

    per_step = True
    takes_lengths = True  # to refuse them: Sequential passes lengths here
    keeps_time = True

    def __init__(self, positions: int) -> None:
        super().__init__()
        self.positions = check_int("positions", positions, 1)
        self._cache = None

    def extra_repr(self) -> str:
        return f"positions={self.positions}"

    def forward(self, x: np.ndarray, lengths: object = None, train: bool = False, *,
                mask: object = None) -> np.ndarray:
        """``x (B, N*P, F) -> y (B, N, F)`` (``lengths``/``mask``: refused)."""
        _refuse_lengths(lengths, mask, "ChunkMean", "P positions into one chunk")
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] % self.positions:
            raise ValueError(f"ChunkMean: x: expected (batch, chunks*{self.positions}, features), got "
                             f"{x.shape}")
        B, T, F = x.shape
        self._cache = (x.shape, x.dtype) if train else None
        return x.reshape(B, T // self.positions, self.positions, F).mean(axis=2)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, N, F) -> dx (B, N*P, F)``."""
        _need(self._cache, "ChunkMean")
        (B, T, F), dtype = self._cache
        P = self.positions
        dy = _check_dy(dy, (B, T // P, F), dtype, "ChunkMean")
        return np.repeat(dy / dtype.type(P), P, axis=1)                       # (B, N*P, F)
