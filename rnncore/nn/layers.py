"""Feed-forward blocks and sequence pooling, each with a hand-written backward.

Every block follows the same contract as the recurrent layers:

* ``forward(x, ..., train=False)`` computes the output; with ``train=True`` it also
  keeps what ``backward`` needs (and :class:`Dropout` drops);
* ``backward(dy)`` returns ``dx`` and *accumulates* parameter gradients into
  ``self.grads`` (call ``zero_grad()`` between steps, like PyTorch's ``.grad``).

Blocks with ``takes_lengths = True`` receive the sequences' valid ``lengths`` from
:class:`Sequential`. Sequences are ``(batch, time, features)`` and positions past a
sequence's length are padding.
"""

from __future__ import annotations

from collections.abc import Sequence as _Sequence

import numpy as np

from rnncore.nn.module import Module, check_int, resolve_dtype

__all__ = [
    "Linear",
    "Embedding",
    "Dropout",
    "Sequential",
    "LastStep",
    "MaskedMean",
    "AttentionPool",
    "check_lengths",
    "lengths_from_mask",
    "mask_from_lengths",
]


# -- helpers shared with the losses and the training loop ------------------------------
def _float_input(name: str, x: object, dtype: np.dtype, min_ndim: int = 1) -> np.ndarray:
    """Return ``x`` as an array of ``dtype``; floating inputs only (ints are an error)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got shape {x.shape}")
    return x.astype(dtype, copy=False)


def check_lengths(lengths: object, batch: int, time: int, name: str = "lengths") -> np.ndarray:
    """Validate ``lengths``: integer array of shape ``(batch,)`` with values in ``1..time``."""
    lengths = np.asarray(lengths)
    if lengths.dtype == bool or not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer array, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},) (one length per sequence), got {lengths.shape}")
    if batch and (lengths.min() < 1 or lengths.max() > time):
        raise ValueError(
            f"{name}: expected every length in 1..{time} (the time axis), "
            f"got values in {int(lengths.min())}..{int(lengths.max())}"
        )
    return lengths.astype(np.int64, copy=False)


def mask_from_lengths(lengths: np.ndarray, time: int) -> np.ndarray:
    """``mask[b, t] = t < lengths[b]``, shape ``(batch, time)``, bool."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def lengths_from_mask(mask: object, batch: int, time: int, name: str = "mask") -> np.ndarray:
    """Convert a boolean ``(batch, time)`` prefix mask (valid steps first) to lengths."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"{name}: expected a boolean array, got dtype {mask.dtype}")
    if mask.shape != (batch, time):
        raise ValueError(f"{name}: expected shape ({batch}, {time}), got {mask.shape}")
    lengths = mask.sum(axis=1).astype(np.int64)
    if not np.array_equal(mask, mask_from_lengths(lengths, time)):
        raise ValueError(
            f"{name}: expected each row to be True for the valid steps then False (a prefix "
            "mask)"
        )
    return check_lengths(lengths, batch, time, name)


def _resolve_lengths(lengths, mask, batch: int, time: int) -> np.ndarray | None:
    if lengths is not None and mask is not None:
        raise ValueError("lengths, mask: give at most one of them")
    if mask is not None:
        return lengths_from_mask(mask, batch, time)
    if lengths is not None:
        return check_lengths(lengths, batch, time)
    return None


def _need(cache: object, who: str) -> None:
    if cache is None:
        raise RuntimeError(f"{who}.backward: call forward(..., train=True) first")


def _check_dy(dy: object, shape: tuple, dtype: np.dtype, who: str) -> np.ndarray:
    dy = _float_input("dy", dy, dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{who}.backward: dy expected shape {tuple(shape)} (the output's), got {dy.shape}")
    return dy


# -- Linear ------------------------------------------------------------------------------
class Linear(Module):
    """``y = x W^T + b`` on the last axis, like ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : sizes
    bias : whether to add a bias
    dtype : "float64" or "float32"
    seed : seed of the initialisation; weights and bias are drawn from
        ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` as in PyTorch

    Notes
    -----
    Shapes: ``x (..., in_features) -> y (..., out_features)``; ``weight (out, in)``, ``bias (out,)``.
    """

    per_step = True  # acts on each step alone (Sequential.stream runs it on any chunk)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: str = "float64", seed: int | None = None) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.dtype = resolve_dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(in_features)
        self.params["weight"] = rng.uniform(-bound, bound, (out_features, in_features)).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, out_features).astype(self.dtype)
        self.zero_grad()
        self._x: np.ndarray | None = None

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={'bias' in self.params}, dtype='{self.dtype.name}'")

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = _float_input("x", x, self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x: expected last dimension {self.in_features} (in_features), got shape "
                f"{x.shape}"
            )
        y = x @ self.params["weight"].T
        if "bias" in self.params:
            y += self.params["bias"]
        self._x = x if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._x, "Linear")
        x = self._x
        dy = _check_dy(dy, x.shape[:-1] + (self.out_features,), self.dtype, "Linear")
        dy2, x2 = dy.reshape(-1, self.out_features), x.reshape(-1, self.in_features)
        self.grads["weight"] += dy2.T @ x2
        if "bias" in self.params:
            self.grads["bias"] += dy2.sum(axis=0)
        return dy @ self.params["weight"]


# -- Embedding ---------------------------------------------------------------------------
class Embedding(Module):
    """Lookup table ``y[..., :] = weight[ids[...], :]``, like ``torch.nn.Embedding``.

    Shapes: ``ids (...) int -> y (..., embedding_dim)``; ``weight (num_embeddings, embedding_dim)``,
    initialised from ``N(0, 1)``. The row ``padding_idx`` (if given) starts at zero and gets no
    gradient. ``backward`` returns ``None``: integer ids have no gradient.
    """

    per_step = True

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: str = "float64", seed: int | None = None) -> None:
        super().__init__()
        check_int("num_embeddings", num_embeddings, 1)
        check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(
                f"padding_idx: expected in [{-num_embeddings}, {num_embeddings}), got "
                f"{padding_idx}"
            )
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = None if padding_idx is None else int(padding_idx) % num_embeddings
        self.dtype = resolve_dtype(dtype)
        w = np.random.default_rng(seed).standard_normal((num_embeddings, embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        self.params["weight"] = w
        self.zero_grad()
        self._ids: np.ndarray | None = None

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}, dtype='{self.dtype.name}'"

    def forward(self, ids: np.ndarray, train: bool = False) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids: expected an integer array of token ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(
                f"ids: expected values in 0..{self.num_embeddings - 1}, "
                f"got {int(ids.min())}..{int(ids.max())}"
            )
        self._ids = ids if train else None
        return self.params["weight"][ids]

    def backward(self, dy: np.ndarray) -> None:
        _need(self._ids, "Embedding")
        ids = self._ids
        dy = _check_dy(dy, ids.shape + (self.embedding_dim,), self.dtype, "Embedding")
        flat_ids, flat_dy = ids.reshape(-1), dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = flat_ids != self.padding_idx
            flat_ids, flat_dy = flat_ids[keep], flat_dy[keep]
        np.add.at(self.grads["weight"], flat_ids, flat_dy)
        return None


# -- Dropout -----------------------------------------------------------------------------
class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by ``1/(1-p)``; identity otherwise. ``rng`` is a seeded ``numpy.random.Generator``."""

    per_step = True

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
            raise TypeError(f"p: expected a probability in [0, 1], got {type(p).__name__} {p!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self._scale: np.ndarray | float | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
        if not train or self.p == 0.0:
            self._scale = 1.0 if train else None
            return x
        keep = self.rng.random(x.shape) >= self.p
        scale = keep.astype(x.dtype) / (1.0 - self.p) if self.p < 1.0 else np.zeros_like(x)
        self._scale = scale
        return x * scale

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._scale, "Dropout")
        return np.asarray(dy) * self._scale


# -- pooling over time -------------------------------------------------------------------
class _Pool(Module):
    takes_lengths = True

    def _prepare(self, x: object, lengths, mask) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x: expected a numpy array (batch, time, features), got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(f"x: expected shape (batch, time, features), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
        lengths = _resolve_lengths(lengths, mask, B, T)
        if lengths is None:
            lengths = np.full(B, T, np.int64)
        return x, lengths


class LastStep(_Pool):
    """The output at each sequence's last valid step: ``y[b] = x[b, lengths[b] - 1]``.

    With ``bidirectional=True`` the input's features are ``[forward | backward]`` halves of
    ``H`` each and the backward half is taken at ``t = 0``, where the backward direction ends
    (so both halves have read the whole sequence). ``direction`` keeps one of the halves, the
    final state of one direction (PyTorch ``h_n[-2]`` / ``h_n[-1]`` of a bidirectional layer):

    - ``"both"`` (default): ``y[b] = [x[b, len_b - 1, :H] | x[b, 0, H:]]``, ``(B, 2H)``
    - ``"forward"``:        ``y[b] = x[b, len_b - 1, :H]``, ``(B, H)``
    - ``"backward"``:       ``y[b] = x[b, 0, H:]``, ``(B, H)``

    The backward pass puts ``dy`` back at the same positions (zero elsewhere).
    Shapes: ``x (B, T, F) -> y (B, F)``, or ``(B, F / 2)`` with one direction.
    """

    def __init__(self, bidirectional: bool = False, direction: str = "both") -> None:
        super().__init__()
        if not isinstance(direction, str):
            raise TypeError(f"direction: expected 'both', 'forward' or 'backward', got "
                            f"{type(direction).__name__}")
        if direction not in ("both", "forward", "backward"):
            raise ValueError(f"direction: expected 'both', 'forward' or 'backward', got {direction!r}")
        if direction != "both" and not bidirectional:
            raise ValueError(f"direction={direction!r} keeps one half of a bidirectional layer's "
                             "output: it needs bidirectional=True")
        self.bidirectional = bool(bidirectional)
        self.direction = direction
        self._cache = None

    def extra_repr(self) -> str:
        if not self.bidirectional:
            return ""
        return "bidirectional=True" + ("" if self.direction == "both" else f", direction={self.direction!r}")

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        x, lengths = self._prepare(x, lengths, mask)
        B, T, F = x.shape
        rows, last = np.arange(B), lengths - 1
        if self.bidirectional and F % 2:
            raise ValueError(f"x: bidirectional pooling needs an even feature size, got {F}")
        H = F // 2
        self._cache = (x.shape, x.dtype, last) if train else None
        if self.direction == "forward":
            return x[rows, last, :H].copy()          # the forward direction's final state
        if self.direction == "backward":
            return x[:, 0, H:].copy()                # the backward direction's final state
        y = x[rows, last].copy()
        if self.bidirectional:
            y[:, H:] = x[:, 0, H:]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "LastStep")
        shape, dtype, last = self._cache
        B, T, F = shape
        H = F // 2
        dy = _check_dy(dy, (B, F if self.direction == "both" else H), dtype, "LastStep")
        dx = np.zeros(shape, dtype)
        rows = np.arange(B)
        if self.direction == "forward":
            dx[rows, last, :H] = dy
        elif self.direction == "backward":
            dx[:, 0, H:] = dy
        elif self.bidirectional:
            dx[rows, last, :H] = dy[:, :H]
            dx[:, 0, H:] += dy[:, H:]
        else:
            dx[rows, last] = dy
        return dx


class MaskedMean(_Pool):
    """Mean over each sequence's valid steps: ``y[b] = sum_{t < len_b} x[b, t] / len_b``.

    Shapes: ``x (B, T, F) -> y (B, F)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        x, lengths = self._prepare(x, lengths, mask)
        w = mask_from_lengths(lengths, x.shape[1]).astype(x.dtype) / lengths[:, None].astype(x.dtype)
        self._cache = (x.shape, w) if train else None
        return np.einsum("bt,btf->bf", w, x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "MaskedMean")
        shape, w = self._cache
        dy = _check_dy(dy, (shape[0], shape[2]), w.dtype, "MaskedMean")
        return w[:, :, None] * dy[:, None, :]


class MaskedMax(_Pool):
    """Maximum over each sequence's valid steps, feature by feature:
    ``y[b, f] = max_{t < len_b} x[b, t, f]`` (Keras ``GlobalMaxPooling1D``, PyTorch
    ``x.max(dim=1).values`` / ``torch.amax(x, 1)``, ONNX ``ReduceMax`` over time).

    The gradient of each ``y[b, f]`` goes to the first step that holds the maximum
    (``np.argmax``'s choice among ties). Shapes: ``x (B, T, F) -> y (B, F)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        x, lengths = self._prepare(x, lengths, mask)
        valid = mask_from_lengths(lengths, x.shape[1])             # (B, T)
        masked = np.where(valid[:, :, None], x, -np.inf)           # padding never wins
        arg = np.argmax(masked, axis=1)                            # (B, F): the step of each max
        self._cache = (x.shape, x.dtype, arg) if train else None
        return np.take_along_axis(x, arg[:, None, :], axis=1)[:, 0, :]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "MaskedMax")
        shape, dtype, arg = self._cache
        B, T, F = shape
        dy = _check_dy(dy, (B, F), dtype, "MaskedMax")
        dx = np.zeros(shape, dtype)
        np.put_along_axis(dx, arg[:, None, :], dy[:, None, :], axis=1)   # dy to the argmax step
        return dx


class AttentionPool(_Pool):
    """Additive (Bahdanau-style) attention pooling over the valid steps.

    ``u_t = tanh(W x_t + b)``, ``e_t = v . u_t``, ``a = softmax_t(e)`` over ``t < len``
    (padding gets weight 0), ``y = sum_t a_t x_t``.

    Parameters are two sub-layers, keyed like their PyTorch counterparts
    ``proj = nn.Linear(F, A)`` and ``score = nn.Linear(A, 1, bias=False)``:
    ``proj.weight (A, F)``, ``proj.bias (A,)``, ``score.weight (1, A)``.
    After ``forward`` the attention weights are in ``self.attention`` ``(B, T)``.

    Shapes: ``x (B, T, F) -> y (B, F)``.
    """

    def __init__(self, input_size: int, attention_size: int | None = None,
                 dtype: str = "float64", seed: int | None = None) -> None:
        super().__init__()
        A = int(attention_size or input_size)
        rng = np.random.default_rng(seed)
        s1, s2 = (int(s) for s in rng.integers(0, 2**31, 2))
        self.proj = self.add_module("proj", Linear(input_size, A, dtype=dtype, seed=s1))
        self.score = self.add_module("score", Linear(A, 1, bias=False, dtype=dtype, seed=s2))
        self.dtype = resolve_dtype(dtype)
        self.attention: np.ndarray | None = None
        self._cache = None

    def extra_repr(self) -> str:
        return f"input_size={self.proj.in_features}, attention_size={self.proj.out_features}"

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        x, lengths = self._prepare(x, lengths, mask)
        x = x.astype(self.dtype, copy=False)
        valid = mask_from_lengths(lengths, x.shape[1])
        u = np.tanh(self.proj.forward(x, train=train))            # (B, T, A)
        e = self.score.forward(u, train=train)[..., 0]            # (B, T)
        e = np.where(valid, e, -np.inf)
        e = e - e.max(axis=1, keepdims=True)
        a = np.exp(e)
        a /= a.sum(axis=1, keepdims=True)                          # (B, T), 0 on padding
        self.attention = a
        self._cache = (x, u, a) if train else None
        return np.einsum("bt,btf->bf", a, x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "AttentionPool")
        x, u, a = self._cache
        dy = _check_dy(dy, (x.shape[0], x.shape[2]), self.dtype, "AttentionPool")
        dx = a[:, :, None] * dy[:, None, :]                        # through y = sum a_t x_t
        da = np.einsum("btf,bf->bt", x, dy)
        de = a * (da - np.sum(a * da, axis=1, keepdims=True))      # softmax backward
        du = self.score.backward(de[..., None])
        dx += self.proj.backward(du * (1.0 - u * u))               # tanh backward
        return dx


class ConcatPool(_Pool):
    """Concatenation of poolings over time, feature-wise (the classifier head of Kaggle's
    ``torch.cat([y.mean(1), y.max(1).values], 1)``, fastai's ``masked_concat_pool`` and Keras
    ``concatenate([GlobalAveragePooling1D()(x), GlobalMaxPooling1D()(x)])``).

    ``y = [p_1(x, lengths) | p_2(x, lengths) | ... | p_K(x, lengths)]`` along the last axis,
    each ``p_k`` a :class:`LastStep` (bidirectional or not), :class:`MaskedMean` or
    :class:`MaskedMax`, in the order given. The backward is the sum of each pool's backward
    on its slice of ``dy``: ``dx = sum_k p_k.backward(dy[:, (k-1) F : k F])``.

    Shapes: ``x (B, T, F) -> y (B, K * F)`` with ``K = len(pools)``.
    """

    def __init__(self, *pools: _Pool) -> None:
        super().__init__()
        if len(pools) == 1 and isinstance(pools[0], list | tuple):
            pools = tuple(pools[0])
        if not pools:
            raise ValueError("pools: expected at least one LastStep, MaskedMean or MaskedMax, got none")
        for i, p in enumerate(pools):
            if isinstance(p, AttentionPool):
                raise TypeError(f"pools[{i}]: AttentionPool is not supported inside ConcatPool "
                                "(expected LastStep, MaskedMean or MaskedMax)")
            if not isinstance(p, LastStep | MaskedMean | MaskedMax):
                raise TypeError(f"pools[{i}]: expected a LastStep, MaskedMean or MaskedMax, "
                                f"got {type(p).__name__}")
            if isinstance(p, LastStep) and p.direction != "both":
                raise ValueError(f"pools[{i}]: LastStep(direction={p.direction!r}) pools half the "
                                 "features; ConcatPool's parts are each the input's width: expected "
                                 "direction='both'")
            if any(p is q for q in pools[:i]):
                raise ValueError(f"pools[{i}]: the same {type(p).__name__} instance is given twice "
                                 "(its backward cache would be shared); pass a new instance")
        self.pools: tuple[_Pool, ...] = tuple(pools)
        self._cache = None

    def extra_repr(self) -> str:
        return ", ".join(repr(p) for p in self.pools)

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        x, lengths = self._prepare(x, lengths, mask)
        parts = [p.forward(x, lengths, train=train) for p in self.pools]   # K x (B, F)
        y = np.concatenate(parts, axis=-1)                                 # (B, K F)
        self._cache = (x.shape, y.dtype) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _need(self._cache, "ConcatPool")
        (B, _, F), dtype = self._cache
        dy = _check_dy(dy, (B, len(self.pools) * F), dtype, "ConcatPool")
        dx = self.pools[0].backward(dy[:, :F])
        for k, p in enumerate(self.pools[1:], start=1):
            dx = dx + p.backward(dy[:, k * F:(k + 1) * F])
        return dx


# -- Sequential --------------------------------------------------------------------------
class Sequential(Module):
    """Chain of modules; ``state_dict`` keys are prefixed by position (``"0.weight_ih_l0"``,
    ``"2.weight"``) exactly like ``torch.nn.Sequential``.

    ``forward(x, lengths=None, state=None, train=False, *, mask=None)``:

    * a recurrent module (``is_recurrent = True``) gets ``lengths`` and its initial state
      ``state[i]`` (``state`` is a list with one entry per recurrent module, ``None``
      for zeros); its output ``y`` goes on and its final state is kept in
      ``self.final_states`` (same list layout), e.g. to carry into the next call;
    * a module with ``takes_lengths = True`` (the poolings) gets ``lengths``;
    * any other module gets only ``x``.

    ``backward(dy)`` runs the modules in reverse and returns ``dx`` (``None`` when the
    first module is an :class:`Embedding`). No gradient flows into the initial states.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], _Sequence):
            modules = tuple(modules[0])
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"modules[{i}]: expected an rnncore.nn.Module, got {type(m).__name__}")
            self.add_module(str(i), m)
        self.final_states: list = []
        self._valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    @property
    def recurrent_modules(self) -> list[Module]:
        return [m for m in self if getattr(m, "is_recurrent", False)]

    def forward(self, x: np.ndarray, lengths=None, state: list | None = None, train: bool = False,
                *, mask=None) -> np.ndarray:
        n_rec = len(self.recurrent_modules)
        if state is not None and not isinstance(state, list | tuple):
            raise TypeError(
                f"state: expected a list with one entry per recurrent module ({n_rec}), got "
                f"{type(state).__name__}"
            )
        if state is not None and len(state) != n_rec:
            raise ValueError(
                f"state: expected a list with one entry per recurrent module ({n_rec}), got "
                f"a list of {len(state)}"
            )
        if mask is not None or lengths is not None:
            arr = np.asarray(x)
            if arr.ndim < 2:
                raise ValueError(
                    "x: lengths/mask need a time axis (batch, time, ...), got shape "
                    f"{arr.shape}"
                )
            lengths = _resolve_lengths(lengths, mask, arr.shape[0], arr.shape[1])
        finals, r, pooled = [], 0, False
        for m in self:
            if getattr(m, "is_recurrent", False):
                x, h_n = m.forward(x, state=None if state is None else state[r], lengths=lengths, train=train)
                finals.append(h_n)
                r += 1
            elif getattr(m, "takes_lengths", False):
                x = m.forward(x, lengths=lengths, train=train)
                pooled = pooled or not getattr(m, "keeps_time", False)
                if lengths is not None and hasattr(m, "output_lengths"):   # a stride with "same" padding
                    lengths = m.output_lengths(lengths)
            else:
                x = m.forward(x, train=train)
        self.final_states = finals
        # Per-step outputs past a sequence's length are zero (docs/equations.md), also after a head
        # such as Linear that would otherwise put its bias there; the C engine does the same.
        self._valid = None
        if lengths is not None and not pooled and x.ndim >= 3:
            self._valid = np.arange(x.shape[1])[None, :] < lengths[:, None]     # (B, T)
            x = np.where(self._valid.reshape(self._valid.shape + (1,) * (x.ndim - 2)), x, x.dtype.type(0))
        return x

    # -- streaming -----------------------------------------------------------------------------
    def stream_state(self, batch: int) -> list:
        """The initial stream state: one entry per module (None for a module without state).

        A recurrent module's entry is its zero state; a layer over time (Conv1d, pooling,
        LogMelSpectrogram) holds the inputs its next outputs still need. Raises ``TypeError``
        naming the first module that cannot run on a stream (a bidirectional recurrent layer, a
        pooling over the whole sequence, a layer over time with padding on the right).
        """
        batch = check_int("batch", batch, 1)
        states: list = []
        for i, m in enumerate(self):
            if getattr(m, "is_recurrent", False):
                if getattr(m, "bidirectional", False) or getattr(m, "reverse", False):
                    raise TypeError(f"modules[{i}]: a bidirectional or reverse {type(m).__name__} needs the "
                                    "whole sequence; it cannot stream")
                states.append(m.zero_state(batch) if hasattr(m, "zero_state") else None)  # None: zeros
            elif hasattr(m, "stream_state"):
                try:
                    states.append(m.stream_state(batch))
                except ValueError as e:
                    raise TypeError(f"modules[{i}]: {e}") from None
            elif getattr(m, "per_step", False):
                states.append(None)
            else:
                raise TypeError(
                    f"modules[{i}]: {type(m).__name__} needs the whole sequence; it cannot stream")
        return states

    def stream(self, x: np.ndarray, state: list | None = None) -> tuple[np.ndarray, list]:
        """Run the next chunk of a stream: ``x (B, n, ...)`` with ``n >= 0`` steps (one frame:
        ``n = 1``). Returns ``(y (B, n_out, ...), state)``; pass ``state`` to the next call
        (None: :meth:`stream_state`). In inference mode (no dropout, BatchNorm's running
        statistics); the outputs of all chunks, concatenated, equal ``forward`` of the whole
        sequence.
        """
        arr = np.asarray(x)
        if arr.ndim < 2:
            raise ValueError(f"x: expected a chunk (batch, steps, ...), got shape {arr.shape}")
        if state is None:
            state = self.stream_state(arr.shape[0])
        if not isinstance(state, list | tuple) or len(state) != len(self):
            got = f"a list of {len(state)}" if isinstance(state, list | tuple) else type(state).__name__
            raise ValueError(f"state: expected the list from stream_state() ({len(self)} entries), got {got}")
        new: list = []
        for m, s in zip(self, state, strict=True):
            if getattr(m, "is_recurrent", False) and hasattr(m, "stream"):   # Residual(GRU): its own
                x, s = m.stream(x, s)
            elif getattr(m, "is_recurrent", False):
                if x.shape[1] == 0:                                     # nothing arrived: state unchanged
                    width = getattr(m, "output_size", None) or m.proj_size or m.hidden_size  # one direction
                    x = np.zeros((x.shape[0], 0, width), x.dtype)
                else:
                    x, s = m.forward(x, state=s)
            elif hasattr(m, "stream"):
                x, s = m.stream(x, s)
            else:
                x = m.forward(x)
            new.append(s)
        return x, new

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if self._valid is not None:
            dy = np.asarray(dy)
            dy = np.where(self._valid.reshape(self._valid.shape + (1,) * (dy.ndim - 2)), dy, dy.dtype.type(0))
        for m in reversed(list(self)):
            if dy is None:
                raise RuntimeError(
                    f"Sequential.backward: {type(m).__name__} follows a layer with integer "
                    "input"
                )
            if getattr(m, "is_recurrent", False):
                dy, _ = m.backward(dy)
            else:
                dy = m.backward(dy)
        return dy
