"""Static activation scales from data: ``calibrate(model, X)``.

Runs the float model (float32, the precision the engine runs in) over ``X`` and records the
largest magnitude of every vector the q8 kernels quantise: each layer's input, each
direction's hidden state, and the head input. The scale is ``max|v| / 127``, so those
values map onto the full int8 range; larger values at run time clip to +-127.
"""

from __future__ import annotations

import numpy as np

from rnncore.progress import Progress
from rnncore.quant.reference import Calibration, forward
from rnncore.spec import ModelSpec, spec_from_model

_F32 = np.float32


def _scale(m: float) -> float:
    # an all-zero activation gets the scale of max-abs 1 (any positive scale quantises 0 to 0)
    m = _F32(m)
    return float(m / _F32(127.0)) if m > 0 else float(_F32(1.0) / _F32(127.0))


def calibrate(model, X: np.ndarray, lengths=None, verbose: bool | None = None) -> Calibration:
    """Per-layer static input and hidden-state scales (max-abs / 127) measured on ``X``.

    Parameters
    ----------
    model : an ``rc.nn`` model or a :class:`~rnncore.spec.ModelSpec`
    X : (B, T, I) floats (or (B, T) indices with an embedding), representative inputs
    lengths : (B,) valid lengths (None: all T); padding is ignored
    verbose : a progress line on stderr (:class:`rnncore.progress.Progress`): True always,
        False never, None (default) on a terminal when the calibration takes over a second

    Returns
    -------
    Calibration with ``x_scale[layer]``, ``h_scale[layer][direction]`` and ``head_scale``
    """
    spec: ModelSpec = spec_from_model(model)
    xmax = [0.0] * len(spec.layers)
    hmax = [[0.0] * layer.num_directions for layer in spec.layers]
    head = [0.0]

    def record(kind, li, d, arr, live):
        a = np.abs(np.where(live[..., None], arr, 0))
        m = float(a.max()) if a.size else 0.0
        if not np.isfinite(m):
            raise ValueError("calibrate: the model produced NaN/Inf on the calibration data")
        if kind == "x":
            xmax[li] = max(xmax[li], m)
        elif kind == "h":
            hmax[li][d] = max(hmax[li][d], m)
        else:
            head[0] = max(head[0], m)

    X = np.asarray(X)
    if spec.embedding is None and not np.all(np.isfinite(X)):
        raise ValueError("calibrate: X contains NaN or Inf")
    with Progress(f"calibrating on {X.shape[0]} sequences", verbose) as progress:
        forward(spec, X, lengths, None, np.float32, record, progress=progress.update)
    return Calibration([_scale(m) for m in xmax], [[_scale(m) for m in hs] for hs in hmax],
                       _scale(head[0]) if spec.head is not None else None)
