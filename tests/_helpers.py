"""Helpers shared by the engine tests."""

from __future__ import annotations

import numpy as np


def randn32(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Standard normal samples of ``np.random.default_rng(seed)`` times ``scale``, as float32, of
    the given shape."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
