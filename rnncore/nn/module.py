"""The base class every layer of the NumPy reference derives from.

A :class:`Module` owns

* ``params``: an ordered dict ``name -> ndarray`` of its own trainable arrays, named and
  shaped exactly as PyTorch's ``state_dict`` names them (``weight_ih_l0``, ``bias``, ...);
* ``grads``: the same keys, filled by ``backward`` (accumulated, like PyTorch's ``.grad``:
  call :meth:`zero_grad` between steps);
* sub-modules, registered with :meth:`add_module`; their keys are prefixed ``"name."``;
* ``buffers``: arrays that are state but not trained (BatchNorm's running statistics), in
  ``state_dict`` after the module's parameters as in PyTorch, never seen by optimisers.

Optimisers update the arrays in ``params`` in place, so a module never has to be
told its weights changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}


def resolve_dtype(dtype: str | np.dtype | type) -> np.dtype:
    """Return the numpy dtype for ``"float64"``/``"float32"`` (or the numpy/torch types themselves)."""
    name = str(dtype).removeprefix("torch.") if type(dtype).__module__ == "torch" else dtype
    try:
        dt = np.dtype(DTYPES.get(name, name)) if isinstance(name, str) else np.dtype(name)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):  # (None == float64!)
        raise ValueError(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    return dt


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int (Python or NumPy integer, not bool) that is ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _as_array(name: str, value: object) -> np.ndarray:
    """Accept numpy arrays and torch tensors (without importing torch); real numbers only."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            value = value.float()  # bfloat16 has no numpy equivalent
        value = value.numpy()
    if not isinstance(value, np.ndarray | np.generic | list | tuple | float | int):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")
    value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {value.dtype}")
    return value


class Module:
    """Base class: parameters, gradients, sub-modules and PyTorch-style ``state_dict``."""

    def __init__(self) -> None:
        self.params: OrderedDict[str, np.ndarray] = OrderedDict()
        self.grads: OrderedDict[str, np.ndarray] = OrderedDict()
        self._modules: OrderedDict[str, Module] = OrderedDict()
        self.buffers: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, *args, **kwargs):
        """``module(x, ...)`` is ``module.forward(x, ...)``, as in PyTorch."""
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - every layer defines it
        raise NotImplementedError(f"{type(self).__name__}.forward")

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

    def named_state(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` for every parameter and buffer, in PyTorch's ``state_dict`` order
        (a module's parameters, its buffers, then its sub-modules)."""
        for k, v in self.params.items():
            yield prefix + k, v
        for k, v in getattr(self, "buffers", {}).items():
            yield prefix + k, v
        for name, m in self._modules.items():
            yield from m.named_state(prefix + name + ".")

    def parameters(self) -> Iterator[np.ndarray]:
        """Yield every parameter array (live), in :meth:`state_dict` order."""
        for _, v in self.named_parameters():
            yield v

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
        """Copies of every parameter (and buffer), keyed and shaped as in PyTorch."""
        return OrderedDict((k, v.copy()) for k, v in self.named_state())

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy values into the parameters (numpy arrays or torch tensors).

        Raises ``TypeError`` if ``state_dict`` is not a mapping, and ``ValueError`` listing
        the missing/unexpected keys (when ``strict``) or naming the key, the expected and the
        received shape. Values are cast to the parameter's dtype (like ``Tensor.copy_``).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict: expected a mapping name -> array (e.g. torch_module.state_dict()), "
                f"got {type(state_dict).__name__}"
            )
        own = OrderedDict(self.named_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"(expected the keys of {type(self).__name__}.state_dict())"
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

    # -- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown between the parentheses of ``repr`` (as in PyTorch)."""
        return ""

    def __repr__(self) -> str:
        """``Name(args)``, with the sub-modules nested one per line, PyTorch's layout."""
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"  {extra}"] if extra else []
        lines += [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def num_parameters(self) -> int:
        return int(sum(v.size for _, v in self.named_parameters()))
