"""Layers of a chunk model whose front-end leaves ``P`` positions per chunk (Silero VAD v4).

A chunk model is called once per chunk of samples. Its front-end works inside the chunk, on a frame
of ``C`` channels over ``L`` positions flattened channel-major (``frame[c*L + l]``, as
:class:`~rnncore.nn.conv.FrameConv1d` has it); it may end with ``P > 1`` positions, which the
recurrent layers then step over one after the other (their state carried from chunk to chunk), and
a per-position head whose outputs are averaged over the chunk's positions:

``X (B, N, L_in) -> front-end -> (B, N, C*P) -> ChunkPositions -> (B, N*P, C) -> recurrent layers,
per-position head -> (B, N*P, F) -> ChunkMean -> (B, N, F)``.

Every layer here is an equation in NumPy, run in inference (``forward``; no ``backward``).
"""

from __future__ import annotations

import numpy as np

from rnncore.nn.module import Module, check_int


def _frames(x: object, width: int, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != width or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{who}: x: expected floating frames (batch, steps, {width}), got {x.dtype} "
                         f"{x.shape}")
    return x


class LogAffine(Module):
    """``y = log(scale * x + offset)`` elementwise (a log-compressed spectrum).

    Shapes: ``x (..., F) -> y (..., F)``.
    """

    per_step = True

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}, offset={self.offset!r}"

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        return np.log(x * x.dtype.type(self.scale) + x.dtype.type(self.offset))


class SmoothedMeanSubtract(Module):
    """Adaptive normalisation over a frame of ``C`` channels by ``L`` positions:

    ``m[l] = mean_c x[c, l]``, ``s = smoother(m)`` (a one-channel
    :class:`~rnncore.nn.conv.FrameConv1d` over the ``L`` positions, its padding included),
    ``mu = mean_l' s[l']``, ``y[c, l] = x[c, l] - mu``.

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

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _frames(x, self.channels * self.length, "SmoothedMeanSubtract")
        B, T, _ = x.shape
        m = x.reshape(B, T, self.channels, self.length).mean(axis=2)         # (B, T, L)
        mu = self._modules["smoother"].forward(m).mean(axis=2, keepdims=True)   # (B, T, 1)
        return x - mu


class FrameConcat(Module):
    """``y = [x ; body(x)]``: the frame and what ``body`` makes of it, concatenated on the channel
    axis (both over the same ``L`` positions, so the channel-major vectors are concatenated).

    Shapes: ``x (B, T, C1*L) -> y (B, T, (C1 + C2)*L)``.
    """

    per_step = True

    def __init__(self, body: Module) -> None:
        super().__init__()
        self.add_module("body", body)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return np.concatenate([x, self._modules["body"].forward(x)], axis=-1)


class FrameResidual(Module):
    """``y = body(x) + proj(x)`` (``proj`` None: ``y = body(x) + x``), a residual block of frame layers.

    Shapes: ``x (B, T, F_in) -> y (B, T, F_out)``.
    """

    per_step = True

    def __init__(self, body: Module, proj: Module | None = None) -> None:
        super().__init__()
        self.add_module("body", body)
        if proj is not None:
            self.add_module("proj", proj)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        y = self._modules["body"].forward(x)
        p = self._modules["proj"].forward(x) if "proj" in self._modules else x
        if p.shape != y.shape:
            raise ValueError(f"FrameResidual: body gives {y.shape}, the residual path {p.shape}")
        return y + p


class ChunkPositions(Module):
    """A chunk's frame of ``C`` channels over ``P`` positions -> ``P`` steps of ``C`` features:
    ``y[b, n*P + p, c] = x[b, n, c*P + p]``.

    Shapes: ``x (B, N, C*P) -> y (B, N*P, C)``.
    """

    per_step = True

    def __init__(self, channels: int, positions: int) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, 1)
        self.positions = check_int("positions", positions, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, positions={self.positions}"

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _frames(x, self.channels * self.positions, "ChunkPositions")
        B, N, _ = x.shape
        y = x.reshape(B, N, self.channels, self.positions).transpose(0, 1, 3, 2)
        return np.ascontiguousarray(y).reshape(B, N * self.positions, self.channels)


class ChunkMean(Module):
    """The mean over each chunk's ``P`` positions: ``y[b, n] = mean_p x[b, n*P + p]``.

    Shapes: ``x (B, N*P, F) -> y (B, N, F)``.
    """

    per_step = True

    def __init__(self, positions: int) -> None:
        super().__init__()
        self.positions = check_int("positions", positions, 1)

    def extra_repr(self) -> str:
        return f"positions={self.positions}"

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] % self.positions:
            raise ValueError(f"ChunkMean: x: expected (batch, chunks*{self.positions}, features), got "
                             f"{x.shape}")
        B, T, F = x.shape
        return x.reshape(B, T // self.positions, self.positions, F).mean(axis=2)
