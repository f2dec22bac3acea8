"""Optimisers (SGD, Adam, AdamW) and gradient clipping, following PyTorch's update rules.

An optimiser is built on a module (or a list of modules) and updates its parameter
arrays *in place* from the gradients in ``module.grads``::

    opt = Adam(model, lr=1e-3)
    model.zero_grad()                 # or opt.zero_grad()
    loss_value = loss.forward(model.forward(x, train=True), y)
    model.backward(loss.backward())
    clip_grad_norm_(model, 1.0)
    opt.step()

Per-parameter state (momentum buffers, Adam moments) is keyed by the parameter's
``state_dict`` name, so it survives ``zero_grad`` (which replaces the gradient arrays).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from rnncore.nn.module import Module

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_"]


def _modules(modules: Module | Iterable[Module]) -> list[Module]:
    mods = [modules] if isinstance(modules, Module) else list(modules)
    for i, m in enumerate(mods):
        if not isinstance(m, Module):
            raise TypeError(f"module: expected an rnncore.nn.Module (or a list of them), "
                            f"got {type(m).__name__} at position {i}")
    return mods


def _pairs(mods: list[Module]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, param, grad)`` for every parameter (live arrays)."""
    for i, m in enumerate(mods):
        prefix = f"{i}:" if len(mods) > 1 else ""
        grads = m.all_grads()
        for name, p in m.named_parameters():
            g = grads.get(name)
            if g is None or g.shape != p.shape:
                raise RuntimeError(
                    f"{name}: no gradient of the parameter's shape; call zero_grad/backward first"
                )
            yield prefix + name, p, g


def _positive(name: str, value: float, allow_zero: bool = True) -> float:
    value = float(value)
    if not (value >= 0.0 if allow_zero else value > 0.0) or not math.isfinite(value):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name}: expected a {kind} number, got {value}")
    return value


class Optimizer:
    """Base class: holds the modules, the hyper-parameters and the per-parameter state."""

    def __init__(self, module: Module | Iterable[Module], lr: float) -> None:
        self.modules = _modules(module)
        self.lr = _positive("lr", lr)
        self.state: dict[str, dict[str, np.ndarray | int]] = {}
        #: pruning masks by parameter name (True = kept; rnncore.nn.BlockPruning sets them): a
        #: masked entry's gradient, weight and per-weight state stay zero, so it never regrows
        self.masks: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        hyper = {k: v for k, v in vars(self).items() if k not in ("modules", "state")}
        n = sum(m.num_parameters() for m in self.modules)
        return (f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in hyper.items())}; "
                f"{n} parameters)")

    def zero_grad(self) -> None:
        for m in self.modules:
            m.zero_grad()

    def step(self) -> None:
        for name, p, g in _pairs(self.modules):
            mask = self.masks.get(name)
            if mask is None:
                self._update(self.state.setdefault(name, {}), p, g)
                continue
            state = self.state.setdefault(name, {})
            self._update(state, p, g * mask)
            p *= mask
            for v in state.values():  # momentum buffers, Adam moments
                if isinstance(v, np.ndarray) and v.shape == p.shape:
                    v *= mask

    def _update(self, state: dict, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay.

    ``g <- g + wd p``; with momentum ``b <- g`` (first step) else ``b <- mu b + (1 - dampening) g``,
    then ``g <- g + mu b`` (Nesterov) or ``g <- b``; finally ``p <- p - lr g``.
    """

    def __init__(self, module, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(module, lr)
        self.momentum = _positive("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = _positive("weight_decay", weight_decay)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    def _update(self, state, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's defaults and update rule (L2 weight decay added to ``g``).

    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2`` (``v_max <- max(v_max, v)`` with
    ``amsgrad``); ``p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    """

    decoupled = False

    def __init__(self, module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(module, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas}")
        self.betas = (float(b1), float(b2))
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)

    def _update(self, state, p, g):
        b1, b2 = self.betas
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if self.weight_decay:
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)                        # torch: exp_avg.lerp_(grad, 1 - beta1)
        v *= b2
        v += (1.0 - b2) * g * g
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        bias_correction1 = 1.0 - b1**t
        bias_correction2 = 1.0 - b2**t
        step_size = self.lr / bias_correction1
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults
    (``weight_decay=1e-2``): ``p <- p (1 - lr wd)`` before the Adam step."""

    decoupled = True

    def __init__(self, module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(module, lr, betas, eps, weight_decay, amsgrad)


def clip_grad_norm_(module: Module | Iterable[Module], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients of ``module`` in place so their global norm is at most ``max_norm``.

    Like ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all gradients together
    (``norm_type`` 2, 1, ... or ``inf``), the scale is ``max_norm / (norm + 1e-6)`` when that
    is below 1. Returns the total norm *before* clipping.
    """
    max_norm = _positive("max_norm", max_norm)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type}")
    grads = [g for _, _, g in _pairs(_modules(module))]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
