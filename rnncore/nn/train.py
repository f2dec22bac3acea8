"""Training: a ``fit`` loop with mini-batches, validation and early stopping, and truncated BPTT.

``fit`` is deliberately small and explicit; one optimisation step is exactly::

    model.zero_grad()
    out = model.forward(xb, lengths=lb, train=True)
    value = loss.forward(out, yb)                  # (+ lengths=lb for per-step outputs)
    model.backward(loss.backward())
    clip_grad_norm_(model, clip)                   # if clip is given
    optimizer.step()

Everything random (the order of the mini-batches) comes from one seeded
``numpy.random.Generator``, so two runs with the same seed and the same initial model
give identical histories.

A batch whose loss or gradient norm is not finite (NaN or Inf, e.g. from one Inf in the
data) never updates the weights: ``fit`` raises :class:`NonFiniteError` naming the epoch
and the batch (``on_nonfinite="raise"``, the default, like PyTorch's
``clip_grad_norm_(error_if_nonfinite=True)`` and Keras' ``TerminateOnNaN``), or skips the
batch with a ``RuntimeWarning`` (``on_nonfinite="skip"``). ``evaluate`` and ``accuracy``
report an accuracy of NaN when an output they count is NaN or Inf (the loss is then NaN
or Inf too): an argmax of NaN logits is not a prediction.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from rnncore import blas
from rnncore.nn.history import CSVLogger
from rnncore.nn.layers import Sequential, check_lengths, mask_from_lengths
from rnncore.nn.optim import Optimizer, _pairs, clip_grad_norm_

__all__ = ["fit", "evaluate", "predict", "truncated_bptt", "accuracy", "NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """A training step met a NaN/Inf loss or gradient norm (``fit(on_nonfinite="raise")``).

    Attributes ``epoch`` and ``batch`` (1-based, as the progress line counts them), ``loss``
    and ``grad_norm`` (the non-finite value(s); ``grad_norm`` is NaN when the loss already
    was not finite and no gradient was computed).
    """

    def __init__(self, message: str, epoch: int, batch: int, loss: float, grad_norm: float) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.loss, self.grad_norm = epoch, batch, loss, grad_norm


# -- metrics -------------------------------------------------------------------------------
def _accuracy_counts(out: np.ndarray, y: np.ndarray, lengths: np.ndarray | None) -> tuple[float, float]:
    """(number correct, number counted) for class logits or binary logits; the number correct
    is NaN when an output that is counted is NaN or Inf (no valid prediction)."""
    if np.issubdtype(np.asarray(y).dtype, np.integer) and out.ndim == np.ndim(y) + 1 and out.shape[-1] > 1:
        correct = np.argmax(out, axis=-1) == y                       # multi-class logits
    elif out.shape == np.shape(y):
        correct = (out > 0) == (np.asarray(y) > 0.5)                 # binary logits
    else:
        raise ValueError(f"metric: cannot compare output of shape {out.shape} with targets of shape "
                         f"{np.shape(y)} (expected class logits (..., C) with int targets, or binary logits)")
    finite = np.isfinite(out)
    if out.ndim > correct.ndim:                                      # class logits: all C finite
        finite = finite.all(axis=-1)
    if lengths is not None and out.ndim >= 3:                        # per-step: valid steps only
        valid = mask_from_lengths(lengths, out.shape[1])
        valid = valid.reshape(valid.shape + (1,) * (correct.ndim - 2))
        valid = np.broadcast_to(valid, correct.shape)
        bad = bool(np.any(valid & ~finite))
        return (float("nan") if bad else float(np.sum(correct & valid))), float(np.sum(valid))
    bad = not bool(np.all(finite))
    return (float("nan") if bad else float(np.sum(correct))), float(correct.size)


def accuracy(out: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> float:
    """Fraction of correct predictions: ``argmax`` of class logits ``(B, C)`` / ``(B, T, C)``
    against int targets, or ``logit > 0`` against binary targets; valid steps only.
    NaN when a counted output is NaN or Inf."""
    c, n = _accuracy_counts(out, y, lengths)
    return c / n if n else float("nan")


# -- the model -------------------------------------------------------------------------------
def _as_model(model: Any) -> Any:
    """A bare recurrent layer returns ``(y, h_n)``; train it as ``Sequential(layer)`` (same arrays)."""
    if not hasattr(model, "forward") or not hasattr(model, "backward"):
        raise TypeError(
            f"model: expected an rnncore.nn module (forward/backward), got {type(model).__name__}")
    if getattr(model, "is_recurrent", False):
        return Sequential(model)
    return model


def _check_optimizer(optimizer: Any, model: Any) -> None:
    """Refuse an optimiser built on other arrays than the model's (it would train nothing)."""
    modules = getattr(optimizer, "modules", None)
    if modules is None or not hasattr(model, "named_parameters"):
        return
    theirs = {id(p) for m in modules for _, p in m.named_parameters()}
    ours = [name for name, p in model.named_parameters() if id(p) not in theirs]
    if ours and len(ours) == len(list(model.named_parameters())):
        raise ValueError(
            "optimizer: built on a different model (none of the model's parameters is in it); "
            f"build it on this one, e.g. {type(optimizer).__name__}(model, lr=...)"
        )


# -- batching ------------------------------------------------------------------------------
def _check_data(X: Any, y: Any, lengths: Any, who: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"{who}X: expected a non-empty array (N, T, ...), got shape {X.shape}")
    if y.shape[:1] != X.shape[:1]:
        raise ValueError(
            f"{who}y: expected {X.shape[0]} targets (one per sequence of X), got shape {y.shape}"
        )
    if lengths is not None:
        lengths = check_lengths(lengths, X.shape[0], X.shape[1], f"{who}lengths")
    return X, y, lengths


def _batch(X, y, lengths, idx, trim: bool):
    """Select sequences ``idx``; trim the time axis to the longest of them (when per-step
    targets are present they are trimmed too)."""
    xb, yb = X[idx], y[idx]
    lb = None if lengths is None else lengths[idx]
    if lb is not None and trim:
        Tb = int(lb.max())
        if Tb < X.shape[1]:
            per_step = yb.ndim >= 2 and yb.shape[1] == X.shape[1]
            xb = xb[:, :Tb]
            if per_step:
                yb = yb[:, :Tb]
    return xb, yb, lb


def _loss_value(loss, out, yb, lb) -> float:
    if lb is not None and out.ndim >= 3 and getattr(loss, "takes_lengths", False):
        return loss.forward(out, yb, lengths=lb)
    return loss.forward(out, yb)


def _weight(out, lb) -> float:
    """How many terms the mean of this batch's loss was taken over."""
    if lb is not None and out.ndim >= 3:
        return float(np.sum(lb))
    return float(out.shape[0])


def predict(model, X: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
    """Model outputs in evaluation mode (no dropout), computed in batches and concatenated."""
    model = _as_model(model)
    X = np.asarray(X)
    outs = []
    for s in range(0, X.shape[0], batch_size):
        lb = None if lengths is None else np.asarray(lengths)[s: s + batch_size]
        xb = X[s: s + batch_size]
        out = model.forward(xb, lengths=lb)
        if out.ndim >= 3 and out.shape[1] < X.shape[1]:                # keep a common time axis
            pad = np.zeros((out.shape[0], X.shape[1] - out.shape[1]) + out.shape[2:], out.dtype)
            out = np.concatenate([out, pad], axis=1)
        outs.append(out)
    return np.concatenate(outs, axis=0)


def evaluate(model, loss, X: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None,
             metric: str | Callable | None = "accuracy", batch_size: int = 256) -> tuple[float, float | None]:
    """Mean loss and metric over a dataset, in evaluation mode. Returns ``(loss, metric)``.

    With ``metric="accuracy"`` the accuracy is NaN when any counted output is NaN or Inf
    (the loss is then not finite either): NaN logits predict nothing. A callable metric
    gets the outputs as they are."""
    model = _as_model(model)
    X, y, lengths = _check_data(X, y, lengths, "")
    tot, wsum, mc, mn = 0.0, 0.0, 0.0, 0.0
    outs = []
    for s in range(0, X.shape[0], batch_size):
        idx = np.arange(s, min(s + batch_size, X.shape[0]))
        xb, yb, lb = _batch(X, y, lengths, idx, trim=True)
        out = model.forward(xb, lengths=lb)
        w = _weight(out, lb)
        tot += _loss_value(loss, out, yb, lb) * w
        wsum += w
        if metric == "accuracy":
            c, n = _accuracy_counts(out, yb, lb)
            mc, mn = mc + c, mn + n
        elif callable(metric):
            outs.append((out, yb, lb))
    if metric is None:
        m = None
    elif metric == "accuracy":
        m = mc / mn
    else:
        m = float(np.mean([metric(o, t, lb) for o, t, lb in outs]))
    return tot / wsum, m


# -- fit -------------------------------------------------------------------------------------
def _with_blas_threads(f: Callable) -> Callable:
    """Run ``f`` with at most ``blas_threads`` BLAS threads (its keyword argument; None: as is)."""
    @functools.wraps(f)
    def run(*args: Any, blas_threads: int | None = 1, **kwargs: Any) -> Any:
        with blas.blas_threads(blas_threads):
            return f(*args, blas_threads=blas_threads, **kwargs)
    return run


@_with_blas_threads
def fit(
    model,
    loss,
    optimizer: Optimizer,
    X: np.ndarray,
    y: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    validation: tuple | None = None,
    metric: str | Callable | None = "accuracy",
    early_stopping: int | None = None,
    restore_best: bool = True,
    clip: float | None = None,
    seed: int = 0,
    shuffle: bool = True,
    trim: bool = True,
    verbose: bool = True,
    print_fn: Callable[[str], Any] = print,
    on_nonfinite: str = "raise",
    history_csv: str | os.PathLike | CSVLogger | None = None,
    blas_threads: int | None = 1,
    prune: Any = None,
) -> dict[str, list]:
    """Train ``model`` with mini-batch gradient descent.

    Parameters
    ----------
    model : a module with ``forward(x, lengths=None, train=False)`` / ``backward(dy)``
        (typically :class:`~rnncore.nn.Sequential`; a bare ``RNN/GRU/LSTM`` is trained on
        its output ``y``)
    loss : an rnncore loss; per-step outputs ``(B, T, F)`` get ``lengths=``
    optimizer : built on ``model``
    X : (N, T, F) inputs (or (N, T) token ids); y : (N,) or (N, T, ...) targets
    lengths : (N,) valid lengths, or None (all T)
    epochs, batch_size : passes over the data and sequences per step
    validation : ``(Xv, yv)`` or ``(Xv, yv, lengths_v)``, evaluated after every epoch
    metric : "accuracy", a callable ``f(out, y, lengths) -> float`` (averaged over
        batches), or None
    early_stopping : stop after this many epochs without improvement of the validation
        loss (the training loss without validation); ``restore_best`` then puts back the
        best epoch's weights
    clip : global gradient-norm clipping threshold (``clip_grad_norm_``), or None
    seed : seed of the ``numpy.random.Generator`` that shuffles the batches
    trim : cut each batch's time axis to its longest sequence (faster; results equal)
    verbose, print_fn : one progress line per epoch
    on_nonfinite : "raise" or "skip". A batch whose loss or gradient norm (before clipping)
        is NaN or Inf never updates the weights. "raise" (default) stops with
        :class:`NonFiniteError` (a ``FloatingPointError``) naming the epoch and batch;
        "skip" leaves the batch out (weights, loss and metric) with a ``RuntimeWarning``
        and goes on; ``history["skipped"]`` counts the skipped batches per epoch.
    history_csv : a path (or a :class:`~rnncore.nn.CSVLogger`): write the history there,
        one row per epoch as it ends (Keras' ``CSVLogger`` columns; ``epoch`` counts from 1)
    blas_threads : run with at most this many BLAS threads, restored afterwards
        (:func:`rnncore.blas.blas_threads`); the default 1 is fastest for small models.
        None leaves numpy's BLAS as it is
    prune : a :class:`~rnncore.nn.BlockPruning` (gradual block-magnitude pruning): its masks
        are updated after every batch at the fractional epoch reached, the pruned weights zeroed
        and the masks handed to the optimiser (so no update regrows them);
        ``history["density"]`` records the mean kept share of blocks after each epoch

    Returns
    -------
    history : dict of per-epoch lists ``epoch``, ``loss``, ``<metric>``, ``val_loss``,
        ``val_<metric>`` (with validation), ``grad_norm`` (mean pre-clipping norm),
        ``time`` (seconds since the start), ``skipped``; and ``best_epoch`` (int).

    Raises
    ------
    NonFiniteError
        with ``on_nonfinite="raise"``, at the first batch with a non-finite loss or gradient
        norm (the weights are those before that batch)
    """
    model = _as_model(model)
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"on_nonfinite: expected 'raise' or 'skip', got {on_nonfinite!r}")
    _check_optimizer(optimizer, model)
    X, y, lengths = _check_data(X, y, lengths, "")
    if not isinstance(epochs, int | np.integer) or epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if early_stopping is not None and early_stopping < 1:
        raise ValueError(
            f"early_stopping: expected a positive number of epochs (patience), got {early_stopping}"
        )
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) not in (2, 3):
            raise ValueError("validation: expected (X_val, y_val) or (X_val, y_val, lengths_val)")
        Xv, yv, lv = (*validation, None)[:3]
        Xv, yv, lv = _check_data(Xv, yv, lv, "validation ")
    if metric is None or isinstance(metric, str):
        mname = metric
    else:
        mname = getattr(metric, "__name__", "metric")
    if isinstance(metric, str) and metric != "accuracy":
        raise ValueError(f"metric: expected 'accuracy', a callable or None, got {metric!r}")

    rng = np.random.default_rng(seed)
    N = X.shape[0]
    history: dict[str, Any] = {"epoch": [], "loss": [], "grad_norm": [], "time": [], "skipped": []}
    if mname:
        history[mname] = []
    if validation is not None:
        history["val_loss"] = []
        if mname:
            history["val_" + mname] = []
    best, best_epoch, best_state, waited = np.inf, 0, None, 0
    csv_log = CSVLogger(history_csv) if isinstance(history_csv, str | os.PathLike) else history_csv
    if csv_log is not None and not isinstance(csv_log, CSVLogger):
        raise TypeError(f"history_csv: expected a path or a CSVLogger, got {type(history_csv).__name__}")
    if csv_log is not None:
        csv_log.on_train_begin(history)
    t0 = time.perf_counter()
    for epoch in range(1, int(epochs) + 1):
        order = rng.permutation(N) if shuffle else np.arange(N)
        tot, wsum, mc, mn, norms, mvals, skipped = 0.0, 0.0, 0.0, 0.0, [], [], 0
        for s in range(0, N, batch_size):
            xb, yb, lb = _batch(X, y, lengths, order[s: s + batch_size], trim)
            model.zero_grad()
            out = model.forward(xb, lengths=lb, train=True)
            value = _loss_value(loss, out, yb, lb)
            gnorm = float("nan")
            if math.isfinite(value):
                model.backward(loss.backward())
                gnorm = _grad_norm(model)
            if not (math.isfinite(value) and math.isfinite(gnorm)):
                what = (f"loss {value}" if not math.isfinite(value)
                        else f"gradient norm {gnorm} (loss {value:.6g})")
                where = (f"epoch {epoch}, batch {s // batch_size + 1} of "
                         f"{-(-N // batch_size)} (sequences {order[s: s + batch_size][:8].tolist()}"
                         f"{', ...' if min(batch_size, N - s) > 8 else ''})")
                if on_nonfinite == "raise":
                    raise NonFiniteError(
                        f"fit: non-finite {what} at {where}; the weights are those before this batch. "
                        "Check the data (np.isfinite(X).all()), lower the learning rate or set clip=, "
                        "or pass on_nonfinite='skip' to skip such batches", epoch, s // batch_size + 1,
                        value, gnorm)
                warnings.warn(f"fit: skipped the batch with non-finite {what} at {where}",
                              RuntimeWarning, stacklevel=2)
                skipped += 1
                continue
            if clip is not None:
                norms.append(clip_grad_norm_(model, clip))
            optimizer.step()
            if prune is not None:
                prune.update(model, optimizer, epoch - 1 + min(s + batch_size, N) / N)
            w = _weight(out, lb)
            tot, wsum = tot + value * w, wsum + w
            if metric == "accuracy":
                c, n = _accuracy_counts(out, yb, lb)
                mc, mn = mc + c, mn + n
            elif callable(metric):
                mvals.append(metric(out, yb, lb))
        epoch_loss = tot / wsum if wsum else float("nan")              # nan: every batch skipped
        history["epoch"].append(epoch)
        history["loss"].append(epoch_loss)
        history["grad_norm"].append(float(np.mean(norms)) if norms else float("nan"))
        history["skipped"].append(skipped)
        if prune is not None:
            dens = [d for v in prune.block_density(model).values() for d in v]
            history.setdefault("density", []).append(float(np.mean(dens)))
        if mname:
            if metric == "accuracy":
                history[mname].append(mc / mn if mn else float("nan"))
            else:
                history[mname].append(float(np.mean(mvals)) if mvals else float("nan"))
        line = f"epoch {epoch:>3}/{epochs}  loss {epoch_loss:.4f}"
        if mname:
            line += f"  {mname} {history[mname][-1]:.4f}"
        if skipped:
            line += f"  skipped {skipped}"
        monitored = epoch_loss
        if validation is not None:
            vloss, vmetric = evaluate(model, loss, Xv, yv, lv, metric=metric)
            history["val_loss"].append(vloss)
            line += f"  val_loss {vloss:.4f}"
            if mname:
                history["val_" + mname].append(vmetric)
                line += f"  val_{mname} {vmetric:.4f}"
            monitored = vloss
        elapsed = time.perf_counter() - t0
        history["time"].append(elapsed)
        if csv_log is not None:
            csv_log.on_epoch_end(history)
        if verbose:
            print_fn(f"{line}  {elapsed:.1f}s")
        if monitored < best:
            best, best_epoch, waited = monitored, epoch, 0
            if early_stopping is not None and restore_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if early_stopping is not None and waited >= early_stopping:
                if verbose:
                    print_fn(f"early stopping: no improvement for {early_stopping} epochs, "
                             f"best epoch {best_epoch}")
                break
    if best_state is not None and best_epoch != history["epoch"][-1]:
        model.load_state_dict(best_state)
    history["best_epoch"] = best_epoch
    return history


def _grad_norm(model) -> float:
    """Global L2 norm of all gradients (what ``clip_grad_norm_`` returns), inf on overflow."""
    if not hasattr(model, "all_grads"):     # a duck-typed model: check its loss only
        return 0.0
    total = 0.0
    for _, _, g in _pairs([model]):
        if not np.all(np.isfinite(g)):
            return float("nan")
        total += float(np.sum(np.square(g, dtype=np.float64)))
    return math.sqrt(total)


# -- truncated BPTT --------------------------------------------------------------------------
def _take_state(state: Any, rows: np.ndarray) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)
    return state[:, rows]


def _put_state(full: Any, part: Any, rows: np.ndarray) -> Any:
    if isinstance(full, tuple):
        return tuple(_put_state(f, p, rows) for f, p in zip(full, part, strict=True))
    out = full.copy()
    out[:, rows] = part
    return out


def truncated_bptt(model, loss, X: np.ndarray, y: np.ndarray, window: int, lengths: np.ndarray | None = None,
                   optimizer: Optimizer | None = None, clip: float | None = None, state: list | None = None
                   ) -> tuple[float, list]:
    """Truncated backpropagation through time over long sequences, carrying the state.

    The sequences are cut into windows of ``window`` steps. Each window starts from the
    final state of the previous one (the forward pass is exactly the full-sequence one),
    but no gradient flows back across a window boundary.

    * with an ``optimizer``: one update per window (``zero_grad``, forward, backward,
      clip, step) - the usual way to train on long streams;
    * without: gradients of all windows are *accumulated* into the model's grads (call
      ``model.zero_grad()`` first). With ``window >= T`` this is exactly full BPTT.

    Parameters
    ----------
    model : a :class:`~rnncore.nn.Sequential` (it takes ``state=`` and sets ``final_states``),
        or a bare ``RNN/GRU/LSTM`` (trained on its output ``y``)
    loss : a per-step loss, e.g. ``CrossEntropy()`` on ``(B, T, C)`` outputs
    X : (B, T, F) ; y : (B, T, ...) per-step targets
    window : steps per window (k)
    lengths : (B,) valid lengths, or None; a sequence that has ended is left out of the
        later windows and its state is kept
    state : initial states (one per recurrent module), or None for zeros

    Returns
    -------
    (mean loss over windows weighted by their valid steps, final states)

    Raises
    ------
    NonFiniteError
        with an ``optimizer``, at a window whose loss or gradient norm is NaN/Inf (before its
        update: the weights are those before that window; ``batch`` is the window's number)
    """
    model = _as_model(model)
    if optimizer is not None:
        _check_optimizer(optimizer, model)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or y.shape[:2] != X.shape[:2]:
        raise ValueError(f"y: expected per-step targets of shape {X.shape[:2]} + (...), got {y.shape}")
    if not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window: expected a positive int, got {window!r}")
    B, T = X.shape[:2]
    lengths = np.full(B, T, np.int64) if lengths is None else check_lengths(lengths, B, T)
    n_rec = len(getattr(model, "recurrent_modules", []))
    states = list(state) if state is not None else None
    tot, wsum = 0.0, 0.0
    for s in range(0, T, window):
        wl = np.clip(lengths - s, 0, window)
        rows = np.nonzero(wl > 0)[0]
        if rows.size == 0:
            break
        full_batch = rows.size == B
        xb, yb = X[rows, s: s + window], y[rows, s: s + window]
        lb = wl[rows]
        Tw = int(lb.max())
        xb, yb = xb[:, :Tw], yb[:, :Tw]
        st = None
        if states is not None:
            st = states if full_batch else [_take_state(z, rows) for z in states]
        if optimizer is not None:
            model.zero_grad()
        out = model.forward(xb, lengths=lb, state=st, train=True)
        value = loss.forward(out, yb, lengths=lb)
        model.backward(loss.backward())
        if optimizer is not None:
            gnorm = _grad_norm(model) if math.isfinite(value) else float("nan")
            if not (math.isfinite(value) and math.isfinite(gnorm)):
                raise NonFiniteError(
                    f"truncated_bptt: non-finite loss {value} / gradient norm {gnorm} in the window of "
                    f"steps {s}..{s + Tw - 1}; the weights are those before this window", 0, s // window + 1,
                    value, gnorm)
            if clip is not None:
                clip_grad_norm_(model, clip)
            optimizer.step()
        new = model.final_states
        if states is None:
            if full_batch:
                states = list(new)
            else:  # start the untouched rows at zero
                states = [_put_state(_zeros_like_state(z, B), z, rows) for z in new]
        elif full_batch:
            states = list(new)
        else:
            states = [_put_state(f, p, rows) for f, p in zip(states, new, strict=True)]
        w = float(lb.sum())
        tot, wsum = tot + value * w, wsum + w
    if states is None:
        states = [None] * n_rec
    return tot / max(wsum, 1.0), states


def _zeros_like_state(part: Any, batch: int) -> Any:
    if isinstance(part, tuple):
        return tuple(_zeros_like_state(p, batch) for p in part)
    return np.zeros((part.shape[0], batch) + part.shape[2:], part.dtype)
