"""Loss functions with hand-written gradients.

Usage (every loss)::

    value = loss.forward(output, target, ...)   # a Python float
    doutput = loss.backward()                   # d value / d output, same shape as output

Reductions follow PyTorch: ``"mean"`` (the default) averages over the elements (for
per-step losses: over the *valid* steps only), ``"sum"`` adds them up.

Per-step losses take the sequences' ``lengths`` (or a boolean prefix ``mask (B, T)``);
steps past a sequence's length contribute neither to the value nor to the gradient.
"""

from __future__ import annotations

import numpy as np

from rnncore.nn.layers import _float_input, _resolve_lengths, mask_from_lengths

__all__ = ["Loss", "CrossEntropy", "BCEWithLogits", "MSE", "MAE", "CTC", "log_softmax"]


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log(softmax(z))`` along ``axis``."""
    m = np.max(z, axis=axis, keepdims=True)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _check_reduction(reduction: str, allowed=("mean", "sum")) -> str:
    if reduction not in allowed:
        raise ValueError(f"reduction: expected one of {allowed}, got {reduction!r}")
    return reduction


class Loss:
    """Base class: ``forward`` returns a float and keeps what ``backward`` needs."""

    takes_lengths = True

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _check_reduction(reduction)
        self._grad: np.ndarray | None = None

    def __call__(self, *args, **kwargs) -> float:
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """``d loss / d input`` of the last ``forward``, same shape and dtype as the input."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return self._grad

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _step_weights(x: np.ndarray, lengths, mask, who: str) -> np.ndarray | None:
    """Boolean (B, T) validity of the steps, or None when every element counts."""
    if lengths is None and mask is None:
        return None
    if x.ndim < 2:
        raise ValueError(f"{who}: lengths/mask need input with a time axis (batch, time, ...), got {x.shape}")
    lengths = _resolve_lengths(lengths, mask, x.shape[0], x.shape[1])
    return mask_from_lengths(lengths, x.shape[1])


# -- cross-entropy -----------------------------------------------------------------------
class CrossEntropy(Loss):
    """Softmax cross-entropy with integer class targets, like ``F.cross_entropy`` on logits.

    * per sequence: ``logits (B, C)``, ``target (B,)``;
    * per step: ``logits (B, T, C)``, ``target (B, T)`` with ``lengths (B,)`` or ``mask (B, T)``;
      ``"mean"`` averages over the valid steps (targets at padded steps are ignored).

    ``label_smoothing`` is PyTorch's (mixes the one-hot target with the uniform distribution).
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: np.ndarray, target: np.ndarray, lengths=None, mask=None) -> float:
        if not isinstance(logits, np.ndarray):
            raise TypeError(f"logits: expected a numpy array, got {type(logits).__name__}")
        logits = _float_input("logits", logits, logits.dtype if logits.dtype.kind == "f" else np.float64)
        if logits.ndim not in (2, 3):
            raise ValueError(
                "logits: expected shape (batch, classes) or (batch, time, classes), got "
                f"{logits.shape}"
            )
        target = np.asarray(target)
        if target.dtype == bool or not np.issubdtype(target.dtype, np.integer):
            raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
        if target.shape != logits.shape[:-1]:
            raise ValueError(
                f"target: expected shape {logits.shape[:-1]} (logits without classes), got "
                f"{target.shape}"
            )
        if logits.ndim == 2 and (lengths is not None or mask is not None):
            raise ValueError("lengths/mask: only for per-step logits (batch, time, classes), got 2-D logits")
        C = logits.shape[-1]
        valid = _step_weights(logits, lengths, mask, "CrossEntropy")
        if valid is None:
            valid = np.ones(target.shape, bool)
        t = np.where(valid, target, 0)
        if t.size and (t.min() < 0 or t.max() >= C):
            raise ValueError(
                f"target: expected class indices in 0..{C - 1}, got "
                f"{int(t.min())}..{int(t.max())}"
            )
        logp = log_softmax(logits)
        onehot = np.zeros_like(logp)
        np.put_along_axis(onehot, t[..., None], 1.0, axis=-1)
        eps = self.label_smoothing
        q = (1.0 - eps) * onehot + eps / C                          # the target distribution
        per = -np.sum(q * logp, axis=-1) * valid                    # per example / per step
        n = valid.sum()
        if n == 0:
            what = "lengths/mask: no valid step" if lengths is not None or mask is not None else \
                f"logits: empty input (shape {logits.shape})"
            raise ValueError(f"{what}; nothing to average over")
        denom = float(n) if self.reduction == "mean" else 1.0
        grad = (np.exp(logp) - q) * (valid[..., None] / denom)
        self._grad = grad.astype(logits.dtype, copy=False)
        return float(per.sum() / denom)


# -- element-wise losses -----------------------------------------------------------------
class _Elementwise(Loss):
    """Shared machinery: element-wise loss ``l(x, y)``, optional step validity, reduction."""

    def _value_and_grad(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def forward(self, input: np.ndarray, target: np.ndarray, lengths=None, mask=None) -> float:
        if not isinstance(input, np.ndarray):
            raise TypeError(f"input: expected a numpy array, got {type(input).__name__}")
        x = _float_input("input", input, input.dtype if input.dtype.kind == "f" else np.float64)
        if not isinstance(target, np.ndarray):
            target = np.asarray(target)
        if target.dtype == bool or not np.issubdtype(target.dtype, np.number):
            raise TypeError(f"target: expected a numeric array, got dtype {target.dtype}")
        if target.shape != x.shape:
            raise ValueError(f"target: expected shape {x.shape} (the input's), got {target.shape}")
        y = target.astype(x.dtype, copy=False)
        name = type(self).__name__
        valid = _step_weights(x, lengths, mask, name)
        value, grad = self._value_and_grad(x, y)
        if valid is not None:
            w = valid.reshape(valid.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
            w = np.broadcast_to(w, x.shape)
            value, grad = value * w, grad * w
            count = float(w.sum())
        else:
            count = float(x.size)
        if self.reduction == "mean":
            if count == 0:
                raise ValueError(f"input: {name} of an empty input (no element to average over)")
            value, grad = value / count, grad / count
        self._grad = np.ascontiguousarray(grad, dtype=x.dtype)
        return float(value.sum())


class BCEWithLogits(_Elementwise):
    """Binary cross-entropy on logits, like ``F.binary_cross_entropy_with_logits``:
    ``l = max(x, 0) - x y + log(1 + exp(-|x|))`` (stable); ``dl/dx = sigmoid(x) - y``.
    Targets are probabilities in [0, 1]; optional ``pos_weight`` (broadcast on the last axis)."""

    def __init__(self, reduction: str = "mean", pos_weight: np.ndarray | float | None = None) -> None:
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, np.float64)

    def _value_and_grad(self, x, y):
        sp_neg = np.logaddexp(0.0, -x)                 # softplus(-x) = -log sigmoid(x)
        sig = np.exp(-sp_neg)                          # sigmoid(x)
        if self.pos_weight is None:
            return (1.0 - y) * x + sp_neg, sig - y
        pw = self.pos_weight.astype(x.dtype)
        # l = pw y softplus(-x) + (1 - y) softplus(x), softplus(x) = x + softplus(-x)
        value = pw * y * sp_neg + (1.0 - y) * (x + sp_neg)
        grad = -pw * y * (1.0 - sig) + (1.0 - y) * sig
        return value, grad


class MSE(_Elementwise):
    """Mean squared error ``(x - y)^2``, like ``F.mse_loss``."""

    def _value_and_grad(self, x, y):
        d = x - y
        return d * d, 2.0 * d


class MAE(_Elementwise):
    """Mean absolute error ``|x - y|`` (L1), like ``F.l1_loss``; the gradient at 0 is 0."""

    def _value_and_grad(self, x, y):
        d = x - y
        return np.abs(d), np.sign(d)


L1 = MAE


# -- CTC -----------------------------------------------------------------------------------
def _logsumexp3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    m = np.maximum(np.maximum(a, b), c)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m_safe + np.log(np.exp(a - m_safe) + np.exp(b - m_safe) + np.exp(c - m_safe))


class CTC(Loss):
    """Connectionist temporal classification loss on logits (log-space forward-backward).

    ``forward(logits, targets, input_lengths, target_lengths)``:

    * ``logits (B, T, C)`` - unnormalised scores; a log-softmax over ``C`` is applied inside,
      so the gradient returned is with respect to the logits;
    * ``targets (B, S)`` int, padded (entries past ``target_lengths[b]`` are ignored), no
      entry equal to ``blank``;
    * ``input_lengths (B,)`` in ``1..T``, ``target_lengths (B,)`` in ``0..S``.

    The per-sequence loss is ``-log p(target | x)`` summed over all alignments.
    ``reduction="mean"`` divides each by its target length (at least 1) and averages over
    the batch, like ``torch.nn.functional.ctc_loss``; ``"sum"`` adds them.
    ``zero_infinity=True`` replaces infinite losses (impossible alignments: input too short)
    and their gradients by zero. The result equals
    ``F.ctc_loss(F.log_softmax(logits, -1).transpose(0, 1), ...)``.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction)
        self.blank = int(blank)
        self.zero_infinity = bool(zero_infinity)
        self.losses: np.ndarray | None = None  # per-sequence -log p, after forward

    def forward(self, logits: np.ndarray, targets: np.ndarray, input_lengths=None,
                target_lengths=None) -> float:
        if not isinstance(logits, np.ndarray):
            raise TypeError(f"logits: expected a numpy array, got {type(logits).__name__}")
        logits = _float_input("logits", logits, logits.dtype if logits.dtype.kind == "f" else np.float64)
        if logits.ndim != 3:
            raise ValueError(f"logits: expected shape (batch, time, classes), got {logits.shape}")
        B, T, C = logits.shape
        if not 0 <= self.blank < C:
            raise ValueError(f"blank: expected a class index in 0..{C - 1}, got {self.blank}")
        input_lengths = np.full(B, T) if input_lengths is None else np.asarray(input_lengths)
        targets = np.asarray(targets)
        if targets.dtype == bool or not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"targets: expected integer labels, got dtype {targets.dtype}")
        if targets.ndim != 2 or targets.shape[0] != B:
            raise ValueError(f"targets: expected shape ({B}, max_target_length), got {targets.shape}")
        S = targets.shape[1]
        target_lengths = np.full(B, S) if target_lengths is None else np.asarray(target_lengths)
        checks = (("input_lengths", input_lengths, 1, T), ("target_lengths", target_lengths, 0, S))
        for name, arr, lo, hi in checks:
            if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"{name}: expected an integer array, got dtype {arr.dtype}")
            if arr.shape != (B,):
                raise ValueError(f"{name}: expected shape ({B},), got {arr.shape}")
            if B and (arr.min() < lo or arr.max() > hi):
                raise ValueError(
                    f"{name}: expected values in {lo}..{hi}, got "
                    f"{int(arr.min())}..{int(arr.max())}"
                )
        input_lengths = input_lengths.astype(np.int64)
        target_lengths = target_lengths.astype(np.int64)
        in_target = np.arange(S)[None, :] < target_lengths[:, None]
        lab = np.where(in_target, targets, 0)
        if np.any(in_target & ((lab < 0) | (lab >= C) | (lab == self.blank))):
            raise ValueError(f"targets: expected labels in 0..{C - 1} other than blank={self.blank}")

        logp = log_softmax(logits.astype(np.float64))               # (B, T, C)
        # extended label sequence l' = blank, l1, blank, l2, ..., blank: length 2S+1
        L = 2 * S + 1
        ext = np.full((B, L), self.blank, np.int64)
        ext[:, 1::2] = lab
        ext_len = 2 * target_lengths + 1
        s_idx = np.arange(L)
        valid_s = s_idx[None, :] < ext_len[:, None]
        # the skip transition s-2 -> s is allowed onto a non-blank that differs from l'_{s-2}
        can_skip = np.zeros((B, L), bool)
        can_skip[:, 2:] = (ext[:, 2:] != self.blank) & (ext[:, 2:] != ext[:, :-2])
        # emit[b, t, s] = log y_t(l'_s)
        emit = np.take_along_axis(logp, np.broadcast_to(ext[:, None, :], (B, T, L)), axis=2)
        ninf = -np.inf

        # forward variables alpha_t(s) = log sum over prefixes ending in state s at time t
        alpha = np.full((B, T, L), ninf)
        alpha[:, 0, 0] = emit[:, 0, 0]
        if L > 1:
            alpha[:, 0, 1] = np.where(target_lengths > 0, emit[:, 0, 1], ninf)
        for t in range(1, T):
            prev = alpha[:, t - 1]
            a1 = np.concatenate([np.full((B, 1), ninf), prev[:, :-1]], axis=1)
            a2 = np.concatenate([np.full((B, 2), ninf), prev[:, :-2]], axis=1)[:, :L]
            a2 = np.where(can_skip, a2, ninf)
            alpha[:, t] = np.where(valid_s, _logsumexp3(prev, a1, a2) + emit[:, t], ninf)

        # backward variables beta_t(s) (including the emission at t), started at each T_b - 1
        beta = np.full((B, T, L), ninf)
        last_t = input_lengths - 1
        end = np.full((B, L), ninf)                     # a path may end in the last blank or label
        end[np.arange(B), ext_len - 1] = 0.0
        has_label = target_lengths > 0
        end[np.arange(B)[has_label], ext_len[has_label] - 2] = 0.0
        can_skip_next = np.zeros((B, L), bool)          # may s jump to s+2 ?
        can_skip_next[:, :-2] = can_skip[:, 2:]
        for t in range(T - 1, -1, -1):
            if t + 1 < T:
                nxt = beta[:, t + 1]
                b1 = np.concatenate([nxt[:, 1:], np.full((B, 1), ninf)], axis=1)
                b2 = np.concatenate([nxt[:, 2:], np.full((B, 2), ninf)], axis=1)[:, :L]
                b2 = np.where(can_skip_next, b2, ninf)
                rec = _logsumexp3(nxt, b1, b2)
            else:
                rec = np.full((B, L), ninf)
            start = np.where((t == last_t)[:, None], end, rec)
            beta[:, t] = np.where(valid_s & (t <= last_t)[:, None], start + emit[:, t], ninf)

        # log p = logsumexp over the two end states at T_b - 1
        bi = np.arange(B)
        a_end = alpha[bi, last_t]
        lp_last = a_end[bi, ext_len - 1]
        lp_prev = np.where(target_lengths > 0, a_end[bi, np.maximum(ext_len - 2, 0)], ninf)
        log_p = np.logaddexp(lp_last, lp_prev)                       # (B,)
        nll = -log_p

        # gradient wrt logits: softmax - posterior occupancy of each class at each step
        with np.errstate(invalid="ignore", over="ignore"):
            post_ext = np.exp(alpha + beta - emit - log_p[:, None, None])   # (B, T, L)
        post_ext = np.where(np.isfinite(post_ext), post_ext, 0.0)
        onehot_ext = np.zeros((B, L, C))
        np.put_along_axis(onehot_ext, ext[:, :, None], 1.0, axis=2)
        onehot_ext *= valid_s[:, :, None]
        post = np.einsum("btl,blc->btc", post_ext, onehot_ext)
        step_valid = (np.arange(T)[None, :] < input_lengths[:, None])[:, :, None]
        grad = (np.exp(logp) - post) * step_valid                  # d nll_b / d logits_b

        infinite = ~np.isfinite(nll)
        if self.zero_infinity:
            nll = np.where(infinite, 0.0, nll)
            grad[infinite] = 0.0
        if self.reduction == "mean":
            scale = 1.0 / (np.maximum(target_lengths, 1) * B)
        else:
            scale = np.ones(B)
        self.losses = nll
        self._grad = (grad * scale[:, None, None]).astype(logits.dtype)
        return float(np.sum(nll * scale))
