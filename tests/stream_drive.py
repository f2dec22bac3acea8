"""A stream driven step by step in the tests: a step gives ``None`` where a strided layer or a
look-ahead has no output for it (docs/c-api.md), and ``flush()`` gives the last outputs at the end
of the input."""

from __future__ import annotations

import numpy as np


def drive(st, X: np.ndarray, start: int = 0, stop: int | None = None) -> tuple[list, list]:
    """``st.step`` on each step of ``X[:, start:stop]`` (X (batch, time, features)), in order:
    (the outputs of the steps that gave one, each (batch, out); per step, whether it gave ``None``)."""
    outs = [st.step(X[:, t]) for t in range(start, X.shape[1] if stop is None else stop)]
    return [o for o in outs if o is not None], [o is None for o in outs]


def stream_all(eng, X: np.ndarray) -> tuple[np.ndarray, list, object]:
    """Every step of X through a fresh stream of ``eng``, then flush: (the outputs (batch, n, out),
    per step whether it gave ``None``, the stream)."""
    st = eng.stream(batch=X.shape[0])
    got, none = drive(st, X)
    tail = st.flush()
    body = np.stack(got, 1) if got else np.zeros((X.shape[0], 0, tail.shape[2]), np.float32)
    return np.concatenate([body, tail], 1), none, st
