"""Static activation scales from data: ``calibrate(model, X)``.

Runs the float model (float32, the precision the engine runs in) over ``X`` and records the
largest magnitude of every vector the q8 kernels quantise: each layer's input, each
direction's hidden state, and the head input. The scale is ``max|v| / 127``, so those
values map onto the full int8 range; larger values at run time clip to +-127.

Static scales are only as good as the data they are measured on. ``calibrate`` raises on
NaN/Inf and warns (:class:`CalibrationWarning`) on data that cannot give usable scales:

* fewer than ``MIN_SEQUENCES`` (16) sequences of non-zero length or fewer than
  ``MIN_VECTORS`` (100) input vectors (valid (sequence, step) pairs): a maximum measured on a
  handful of vectors misses the extremes of real data;
* all zeros (``max |x| == 0``): no input scale can be measured (it defaults to 1/127, so real
  inputs clip at +-1), and the states follow the biases only;
* constant (every valid input vector equal): the states see one trajectory;
* tiny magnitudes (``0 < max |x| < TINY`` = 0.01; inputs normalised as usual reach 2-5):
  real inputs clip at +-max|x|;
* a quantised vector (a deeper layer's input, a hidden state, the head input) that is zero on
  all the data: its scale defaults to 1/127.

docs/q8-contract.md ("Static or dynamic activation scales") has the measured errors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rnncore.progress import Progress
from rnncore.quant.reference import Calibration, forward
from rnncore.spec import ModelSpec, spec_from_model

_F32 = np.float32
MIN_VECTORS = 100      # fewer valid input vectors than this: CalibrationWarning
MIN_SEQUENCES = 16     # fewer sequences (of non-zero length) than this: CalibrationWarning
TINY = 1e-2            # 0 < max |x| below this: CalibrationWarning


class CalibrationWarning(UserWarning):
    """Calibration data that cannot give usable static q8 scales (see the module docstring)."""


def _scale(m: float) -> float:
    # an all-zero activation gets the scale of max-abs 1 (any positive scale quantises 0 to 0)
    m = _F32(m)
    return float(m / _F32(127.0)) if m > 0 else float(_F32(1.0) / _F32(127.0))


def calibrate(model, X: np.ndarray, lengths=None, verbose: bool | None = None, *,
              _stacklevel: int = 2) -> Calibration:
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

    Warns
    -----
    CalibrationWarning
        on degenerate data (too few vectors, all zeros, constant, tiny; the module docstring)
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
        forward(spec, X, lengths, None, np.float32, record, progress=progress.update, per_step_float=True)
    problems = _degenerate(X, lengths, spec.embedding is not None)
    for li, m in enumerate(xmax):
        if li and m == 0:
            problems.append(f"layer {li}'s input (layer {li - 1}'s output) is 0 on all of it")
    for li, hs in enumerate(hmax):
        for d, m in enumerate(hs):
            if m == 0:
                problems.append(f"layer {li}'s hidden state{' (backward)' if d else ''} is 0 on all of it")
    if spec.head is not None and head[0] == 0 and spec.layers:
        problems.append("the head's input is 0 on all of it")
    if problems:
        warnings.warn(
            "calibrate: degenerate calibration data: " + "; ".join(problems) + ". Static scales "
            "measured on it clip real inputs and states (q8 errors of 0.1-0.5 instead of ~0.01, "
            "docs/q8-contract.md). Give a few hundred representative sequences, preprocessed as "
            "at run time, or calibration=None for dynamic scales.", CalibrationWarning,
            stacklevel=_stacklevel)
    return Calibration([_scale(m) for m in xmax], [[_scale(m) for m in hs] for hs in hmax],
                       _scale(head[0]) if spec.head is not None else None)


def _degenerate(X: np.ndarray, lengths, ids: bool) -> list[str]:
    """What makes the calibration inputs X unusable (the module docstring's criteria)."""
    if X.ndim < 2:
        return []
    T = X.shape[1]
    lens = np.full(X.shape[0], T) if lengths is None else np.asarray(lengths).astype(np.int64)
    valid = np.arange(T)[None, :] < lens[:, None]
    v = X[valid]                                     # (vectors, I) or (vectors,) ids
    out = []
    nseq = int(np.sum(lens > 0))
    if v.shape[0] < MIN_VECTORS or nseq < MIN_SEQUENCES:
        out.append(f"only {nseq} sequences, {v.shape[0]} input vectors (sequences x valid steps; at "
                   f"least {MIN_SEQUENCES} sequences and {MIN_VECTORS} vectors expected)")
    if v.shape[0] == 0:
        return out
    if not ids:
        m = float(np.max(np.abs(v)))
        if m == 0:
            return out + ["X is all zeros"]
        if m < TINY:
            out.append(f"X has tiny magnitudes (max |x| = {m:.3g} < {TINY:g})")
    if v.shape[0] > 1 and np.all(v == v[:1]):
        out.append("every input vector is the same (constant X)" if not ids else "every token id is the same")
    return out


@dataclass
class FrontF32Choice:
    """Which convolutions (frame_conv, conv_time) of a q8 model's front-end to keep in float32
    (:func:`choose_front_f32`).

    ``keep``: the items for ``rc.compile(model, "q8", front_f32=keep)`` (an integer: a frame_conv
    number; ``"conv_time:n"``: the n-th conv_time), in the front-end's order; ``errors``: the mean
    ``|y_q8 - y_f32|`` of every configuration measured, keyed by the tuple of records kept in
    float32; ``floor``: the error with every frame_conv and conv_time in float32 (what the
    recurrent layers and the head in int8 cost alone); ``budget``: the factor on ``floor`` allowed.
    """

    keep: list
    errors: dict
    floor: float
    budget: float

    def __str__(self) -> str:
        lines = [f"q8 error floor (every convolution f32): {self.floor:.3g}; budget {self.budget:g} x floor"]
        for k, e in sorted(self.errors.items(), key=lambda kv: (len(kv[0]), kv[1])):
            ratio = f" ({e / self.floor:.2f} x floor)" if self.floor > 0 else ""
            lines.append(f"  f32 {list(k)}: mean |y_q8 - y_f32| {e:.3g}{ratio}")
        lines.append(f"keep in f32: {self.keep}")
        return "\n".join(lines)


def choose_front_f32(model, X: np.ndarray, lengths=None, budget: float = 2.0) -> FrontF32Choice:
    """The fewest front-end convolutions (frame_conv and conv_time records) to keep in float32 so
    that a q8 model's output error stays within ``budget`` times what its int8 recurrent layers and
    head cost alone, measured on ``X``.

    The error of a configuration is the mean ``|y_q8 - y_f32|`` of the compiled engines' outputs
    on ``X`` (the valid steps; every sequence's output for a model with one per sequence).
    ``floor`` is that error with every convolution in float32; from every convolution int8, the
    one whose float32 form lowers the error most is kept, one at a time, until the error is at
    most ``budget * floor`` (greedy; at most n (n + 1) / 2 compiled engines for n convolutions).

    Parameters
    ----------
    model : what ``rc.compile`` takes, with a front-end of frame_conv or conv_time records
    X : (B, T, F) representative inputs, preprocessed as at run time (not the data the model is
        evaluated on afterwards)
    lengths : (B,) valid steps per sequence (None: all T)
    budget : the allowed error, a factor >= 1 on ``floor``

    Returns
    -------
    FrontF32Choice
        ``keep`` for ``rc.compile(model, "q8", front_f32=keep)`` (frame_convs by number,
        conv_times as ``"conv_time:n"``); ``print`` it for the table.
    """
    from rnncore.engine import compile as rc_compile
    from rnncore.io.rnc import read_rnc
    from rnncore.spec import front_conv_records

    if not budget >= 1.0:
        raise ValueError(f"budget: expected a factor >= 1 on the floor error, got {budget!r}")
    X = np.asarray(X, _F32)
    if X.ndim != 3:
        raise ValueError(f"X: expected (batch, time, features), got shape {X.shape}")
    e32 = rc_compile(model, "f32")
    convs = front_conv_records(read_rnc(e32.data)["front"])
    # every convolution as its front_f32 item, in the front-end's order
    at = {i: k for k, i in enumerate(convs["frame_conv"])}
    at.update({i: f"conv_time:{k}" for k, i in enumerate(convs["conv_time"])})
    items = tuple(at[i] for i in sorted(at))
    n = len(items)
    if n == 0:
        raise ValueError("model: no frame_conv or conv_time records in its front-end, nothing to choose")
    valid = np.ones(X.shape[:2], bool) if lengths is None else \
        np.arange(X.shape[1])[None, :] < np.asarray(lengths)[:, None]
    y32 = e32.run(X, lengths)
    if y32.shape[:2] != valid.shape:   # one output per sequence (last_step)
        valid = np.ones(y32.shape[:-1], bool)

    def err(keep: tuple) -> float:
        y = rc_compile(model, "q8", front_f32=list(keep)).run(X, lengths)
        return float(np.abs(y - y32)[valid].mean())

    errors = {items: err(items), (): err(())}
    floor, keep = errors[items], ()
    while errors[keep] > budget * floor and len(keep) < n:
        trial = {}
        for i in items:
            if i not in keep:
                k = tuple(j for j in items if j in keep or j == i)
                errors[k] = trial[k] = errors[k] if k in errors else err(k)
        keep = min(trial, key=trial.get)
    return FrontF32Choice(list(keep), errors, floor, float(budget))
