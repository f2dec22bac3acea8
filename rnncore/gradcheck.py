"""Finite-difference gradient checking: the calculus test of every hand-written backward.

The central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` has error O(eps^2); in
float64 with ``eps = 1e-6`` it agrees with a correct analytic gradient to about 1e-8
relative, while a wrong backward is typically off by O(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


# -- checkers a learner can point at any layer or loss -----------------------------------
def scaled_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max |a - n| / max(|a|, |n|)`` over the whole tensor: the error relative to the scale
    of the tensor's gradient.

    Unlike the element-wise :func:`max_relative_error`, it is not fooled by elements whose
    true gradient is (nearly) zero, where the finite difference's own rounding error of
    about ``1e-16 / eps`` dominates; a wrong formula still shows up as an O(1) error.
    """
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic: shape {a.shape} differs from numeric {n.shape}")
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(n), initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - n))) / scale


@dataclass
class GradcheckReport:
    """The result of :func:`check_module` / :func:`check_loss`.

    For each checked tensor (``"input"``, ``"state"``, or a parameter name like
    ``"weight_ih_l0"``): ``errors`` is the :func:`scaled_error` between the analytic
    gradient and the central finite difference (the pass criterion: ``ok`` is true when
    every one is below ``tol``), ``rel_errors`` the element-wise :func:`max_relative_error`
    (for information), ``scales`` the largest gradient magnitude, ``shapes`` the shape.
    """

    what: str
    errors: dict[str, float] = field(default_factory=dict)
    rel_errors: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)
    tol: float = 1e-6

    def add(self, name: str, analytic: np.ndarray, numeric: np.ndarray) -> None:
        self.errors[name] = scaled_error(analytic, numeric)
        self.rel_errors[name] = max_relative_error(analytic, numeric)
        self.scales[name] = float(np.max(np.abs(numeric), initial=0.0))
        self.shapes[name] = tuple(np.shape(numeric))

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return all(e < self.tol for e in self.errors.values())

    def __str__(self) -> str:
        width = max([len(k) for k in self.errors] + [6])
        lines = [f"gradient check of {self.what}: max|analytic - numeric| / max|gradient| per tensor "
                 f"(tolerance {self.tol:.0e})",
                 f"  {'tensor':<{width}}  {'shape':<16}{'max|grad|':>10}{'error':>10}  {'elem. rel.':>10}"]
        for k, e in self.errors.items():
            flag = "ok" if e < self.tol else "FAIL"
            lines.append(f"  {k:<{width}}  {str(self.shapes[k]):<16}{self.scales[k]:>10.2e}{e:>10.2e}  "
                         f"{self.rel_errors[k]:>10.2e}  {flag}")
        lines.append(f"  => {'PASS' if self.ok else 'FAIL'} (max error {self.max_error:.2e})")
        return "\n".join(lines)

    __repr__ = __str__


def _generators(module: Any) -> list[np.random.Generator]:
    """Every ``numpy.random.Generator`` attribute of ``module`` and its sub-modules."""
    found, stack, seen = [], [module], set()
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        for v in vars(m).values():
            if isinstance(v, np.random.Generator):
                found.append(v)
        stack.extend(getattr(m, "_modules", {}).values())
    return found


def _split_output(module: Any, out: Any) -> tuple[np.ndarray, Any]:
    """``(y, final_state)`` for recurrent modules, ``(y, None)`` otherwise."""
    if getattr(module, "is_recurrent", False) and isinstance(out, tuple) and len(out) == 2:
        return out[0], out[1]
    return out, None


def _map_state(f: Callable[[np.ndarray], Any], state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple | list):
        return type(state)(f(s) for s in state)
    return f(state)


def _state_leaves(state: Any) -> list[np.ndarray]:
    if state is None:
        return []
    return list(state) if isinstance(state, tuple | list) else [state]


def check_module(module: Any, x: np.ndarray, *, eps: float = 1e-6, tol: float = 1e-6, seed: int = 0,
                 check_input: bool = True, check_params: bool = True, **forward_kwargs: Any
                 ) -> GradcheckReport:
    """Compare a module's backward against central finite differences, tensor by tensor.

    The scalar checked is ``L = sum(R * y)`` (+ ``sum(Q * final_state)`` for recurrent
    modules) with fixed random projections ``R``, ``Q``, so every output element matters.
    ``backward(R)`` (``backward(R, dstate=Q)`` for recurrent modules) must then give
    ``dL/dx`` and fill ``module.grads`` with ``dL/dparam``.

    Parameters
    ----------
    module : a float64 rnncore module (``forward(x, ..., train=True)`` / ``backward``)
    x : its input, float64 (an integer input, e.g. token ids, is not differentiated)
    eps, tol : finite-difference step and pass threshold of the relative error
    seed : seed of the projections
    check_input, check_params : which gradients to check
    **forward_kwargs : passed to ``forward`` (``lengths=``, ``state=`` ...); a float64
        ``state`` (or ``(h, c)`` pair) is checked too, as ``"state"`` / ``"state[0]"``...

    Returns
    -------
    GradcheckReport, printable (``print(report)``), with ``.ok`` and ``.errors``.

    Modules that draw random numbers in training (dropout) are handled by restoring
    every ``numpy.random.Generator`` they hold before each forward pass.
    """
    params = list(module.named_parameters()) if check_params else []
    for name, p in params:
        if p.dtype != np.float64:
            raise TypeError(f"module: gradient checks need float64 parameters, {name} is {p.dtype}")
    gens = _generators(module)
    snapshot = [g.bit_generator.state for g in gens]

    def run() -> Any:
        for g, s in zip(gens, snapshot, strict=True):
            g.bit_generator.state = s
        return module.forward(x, train=True, **forward_kwargs)

    y, st = _split_output(module, run())
    rng = np.random.default_rng(seed)
    R = rng.standard_normal(np.shape(y))
    Q = _map_state(lambda s: rng.standard_normal(np.shape(s)), st)

    def scalar() -> float:
        yy, ss = _split_output(module, run())
        total = float(np.sum(R * yy))
        for q, s in zip(_state_leaves(Q), _state_leaves(ss), strict=True):
            total += float(np.sum(q * s))
        return total

    module.zero_grad()
    run()
    if getattr(module, "is_recurrent", False):
        dx, dstate = module.backward(R.astype(y.dtype), dstate=Q)
    else:
        dx, dstate = module.backward(R.astype(y.dtype)), None
    grads = module.all_grads() if hasattr(module, "all_grads") else module.grads
    report = GradcheckReport(f"{type(module).__name__}", tol=tol)

    targets: list[tuple[str, np.ndarray, np.ndarray]] = []
    if check_input and isinstance(x, np.ndarray) and x.dtype == np.float64:
        if dx is None:
            raise ValueError("module: backward returned no input gradient for a float64 input")
        targets.append(("input", x, dx))
    state0 = forward_kwargs.get("state")
    if check_input and state0 is not None and dstate is not None:
        s_leaves, d_leaves = _state_leaves(state0), _state_leaves(dstate)
        for i, (s, d) in enumerate(zip(s_leaves, d_leaves, strict=True)):
            if isinstance(s, np.ndarray) and s.dtype == np.float64:
                targets.append(("state" if len(s_leaves) == 1 else f"state[{i}]", s, d))
    for name, p in params:
        targets.append((name, p, grads[name].copy()))
    for name, arr, analytic in targets:
        report.add(name, analytic, numerical_gradient(scalar, arr, eps))
    return report


def check_loss(loss: Any, inputs: np.ndarray, *args: Any, eps: float = 1e-6, tol: float = 1e-6,
               **kwargs: Any) -> GradcheckReport:
    """Compare ``loss.backward()`` with the finite-difference gradient of ``loss.forward``.

    ``loss.forward(inputs, *args, **kwargs)`` must return a float; ``inputs`` must be
    float64. Example: ``check_loss(CrossEntropy(), logits, targets, lengths=lengths)``.
    """
    if not isinstance(inputs, np.ndarray) or inputs.dtype != np.float64:
        got = getattr(inputs, "dtype", type(inputs).__name__)
        raise TypeError(f"inputs: expected a float64 numpy array, got {got}")
    loss.forward(inputs, *args, **kwargs)
    analytic = np.array(loss.backward(), copy=True)
    numeric = numerical_gradient(lambda: loss.forward(inputs, *args, **kwargs), inputs, eps)
    report = GradcheckReport(type(loss).__name__, tol=tol)
    report.add("input", analytic, numeric)
    return report
