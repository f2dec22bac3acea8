"""The base class every layer of the NumPy reference derives from.

A :class:`Module` owns

* ``params``: an ordered dict ``name -> ndarray`` of its own trainable arrays, named and
  shaped exactly as PyTorch's ``state_dict`` names them (``weight_ih_l0``, ``bias``, ...);
* ``grads``: the same keys, filled by ``backward`` (accumulated, like PyTorch's ``.grad``:
  call :meth:`zero_grad` between steps);
* sub-modules, registered with :meth:`add_module`; their keys are prefixed ``"name."``.

Optimisers update the arrays in ``params`` in place, so a module never has to be
told its weights changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}


def resolve_dtype(dtype: str | np.dtype | type) -> np.dtype:
    """Return the numpy dtype for ``"float64"``/``"float32"`` (or the numpy types themselves)."""
    dt = np.dtype(dtype) if not isinstance(dtype, str) else np.dtype(DTYPES.get(dtype, dtype))
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    return dt


def _as_array(name: str, value: object) -> np.ndarray:
    """Accept numpy arrays and torch tensors (without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray | np.generic | list | tuple | float | int):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")
    return np.asarray(value)


class Module:
    """Base class: parameters, gradients, sub-modules and PyTorch-style ``state_dict``."""

    def __init__(self) -> None:
        self.params: OrderedDict[str, np.ndarray] = OrderedDict()
        self.grads: OrderedDict[str, np.ndarray] = OrderedDict()
        self._modules: OrderedDict[str, Module] = OrderedDict()

    # -- structure ---------------------------------------------------------------------
    def add_module(self, name: str, module: Module) -> Module:
        self._modules[name] = module
        return module

    def children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` for every parameter, the live arrays (not copies)."""
        for k, v in self.params.items():
            yield prefix + k, v
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def named_grads(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, gradient)`` in the order of :meth:`named_parameters`."""
        for k in self.params:
            yield prefix + k, self.grads[k]
        for name, m in self._modules.items():
            yield from m.named_grads(prefix + name + ".")

    def all_grads(self) -> OrderedDict[str, np.ndarray]:
        """All gradients of this module and its children, keyed like :meth:`state_dict`."""
        return OrderedDict(self.named_grads())

    def zero_grad(self) -> None:
        for k, v in self.params.items():
            self.grads[k] = np.zeros_like(v)
        for m in self._modules.values():
            m.zero_grad()

    # -- state_dict ----------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter, keyed and shaped as in PyTorch."""
        return OrderedDict((k, v.copy()) for k, v in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy values into the parameters (numpy arrays or torch tensors).

        Raises ``KeyError`` listing missing/unexpected keys (when ``strict``) and
        ``ValueError`` naming the key, the expected and the received shape.
        """
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = _as_array(k, state_dict[k])
            if value.shape != target.shape:
                raise ValueError(
                    f"load_state_dict: {k!r} expected shape {target.shape}, got {value.shape}"
                )
            target[...] = value.astype(target.dtype, copy=False)

    def num_parameters(self) -> int:
        return int(sum(v.size for _, v in self.named_parameters()))
