"""Finite-difference gradient checking: the calculus test of every hand-written backward.

The central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` has error O(eps^2); in
float64 with ``eps = 1e-6`` it agrees with a correct analytic gradient to about 1e-8
relative, while a wrong backward is typically off by O(1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored; ``f`` must read
    ``x`` (for example, a closure over a module whose parameter ``x`` is).

    Parameters
    ----------
    f : callable returning a float
    x : ndarray (float64), any shape
    eps : step size

    Returns
    -------
    ndarray, same shape as ``x``
    """
    if x.dtype != np.float64:
        raise TypeError(f"x: finite differences need float64, got {x.dtype}")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x: must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        f_plus = float(f())
        flat[i] = old - eps
        f_minus = float(f())
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def max_relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-8) -> float:
    """``max |a - n| / max(|a| + |n|, floor)``, the usual gradient-check error measure."""
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic: shape {a.shape} differs from numeric {n.shape}")
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor), initial=0.0))
