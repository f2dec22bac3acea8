"""Gradual block-magnitude pruning of recurrent weights during training (issue 17 item 1).

The C core runs a q8 weight matrix block-sparse (``rc.compile(..., sparse=...)``) when whole
``block_rows`` x 4 blocks of it are zero. :class:`BlockPruning` makes them zero while training,
the way RNNoise / Opus (``dnn/torch``) and TensorFlow Model Optimization's
``prune_low_magnitude`` with ``PolynomialDecay`` do:

* per gate of every ``weight_ih`` / ``weight_hh`` of the recurrent layers, the blocks are scored
  by their squared L2 norm and the ``ceil(d * n_blocks)`` largest kept, the others zeroed (the
  blocks are those of the C core's gate-padded layout: rows ``16 b' ...`` of each gate, inputs
  ``4 g ... 4 g + 3``);
* the density ``d`` falls from 1 to the target along the cubic schedule
  ``d(t) = target + (1 - target) (1 - p)^3``, ``p = (t - start) / (end - start)`` clipped to
  0..1, ``t`` in (fractional) epochs: pruning ramps over the first epochs and training goes on
  (fine-tuning) with the final masks;
* ``shared_gates``: one mask for every gate of a matrix instead of one per gate: a block place
  (rows ``16 b' ...`` of each gate, inputs ``4 g ...``) is scored by the sum over the gates of
  their blocks' squared L2 norms, and the gates keep or drop it together (the same density for
  every gate; the layout docs/performance.md weighs for the GRU/LSTM step at H = 256);
* ``keep_diagonal``: the blocks holding a diagonal entry of a gate's ``weight_hh`` (unit u's weight
  on its own previous state) are always kept (RNNoise keeps that diagonal dense); they count
  toward the density;
* the masks are handed to the optimiser (:attr:`rnncore.nn.optim.Optimizer.masks`): every
  optimiser zeroes the masked gradients, weights and per-weight state (momentum buffer, Adam
  moments), so a pruned weight never grows back.

Pass it to :func:`rnncore.nn.train.fit` as ``prune=``, or call :meth:`BlockPruning.update` after
each ``optimizer.step()`` in a hand-written loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from rnncore.nn.module import Module
from rnncore.nn.recurrent import GRU, LSTM, RNN

__all__ = ["BlockPruning", "block_mask"]

_GATES = {GRU: ("r", "z", "n"), LSTM: ("i", "f", "g", "o"), RNN: ("h",)}


def _gate_names(layer: Module) -> tuple[str, ...]:
    for cls, names in _GATES.items():
        if isinstance(layer, cls):
            return names
    raise TypeError(f"not a recurrent layer: {type(layer).__name__}")


def block_mask(w: np.ndarray, density: float, block_rows: int = 16,
               keep: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of one gate's weights ``w`` (H, K): the ``ceil(density * n)`` bh x 4 blocks
    (rows padded to a multiple of ``block_rows``, inputs to a multiple of 4) of largest squared
    L2 norm kept, and every block where ``keep`` (H, K) is True. Ties go to the first block."""
    h, k = w.shape
    hp, kp = -(-h // block_rows) * block_rows, -(-k // 4) * 4
    sq = np.zeros((hp, kp))
    sq[:h, :k] = np.asarray(w, np.float64) ** 2
    score = sq.reshape(hp // block_rows, block_rows, kp // 4, 4).sum(axis=(1, 3)).reshape(-1)
    forced = np.zeros(score.shape, bool)
    if keep is not None:
        kk = np.zeros((hp, kp), bool)
        kk[:h, :k] = keep
        forced = kk.reshape(hp // block_rows, block_rows, kp // 4, 4).any(axis=(1, 3)).reshape(-1)
    n_keep = min(score.size, math.ceil(density * score.size - 1e-9))
    order = np.argsort(-np.where(forced, np.inf, score), kind="stable")
    kept = np.zeros(score.size, bool)
    kept[order[:max(n_keep, int(forced.sum()))]] = True
    m = np.repeat(np.repeat(kept.reshape(hp // block_rows, kp // 4), block_rows, axis=0), 4, axis=1)
    return m[:h, :k]


class BlockPruning:
    """Gradual block-magnitude pruning of a model's recurrent weights (module docstring).

    Parameters
    ----------
    model : the module being trained (an RNN / GRU / LSTM or a Sequential holding them)
    density : the final share of kept blocks: one number for every gate, a sequence with one
        number per gate (GRU r, z, n; LSTM i, f, g, o; e.g. RNNoise's (0.3, 0.2, 0.5)... in its
        gate order), or a mapping ``{"ih": ..., "hh": ...}`` of either, per matrix
    start_epoch, end_epoch : the ramp, in epochs (fractional: ``fit`` updates after every batch);
        the density is 1 before ``start_epoch`` and the target from ``end_epoch`` on
    block_rows : 16 (the C core's AVX-512 tile; measured fastest) or 8
    keep_diagonal : keep the blocks holding each gate's recurrent diagonal
    shared_gates : one mask shared by every gate of a matrix (module docstring); needs the same
        density for every gate of the matrix
    matrices : "both", "hh" (recurrent weights only) or "ih"
    """

    def __init__(self, model: Module, density: float | Sequence[float] | Mapping[str, object] = 0.3,
                 start_epoch: float = 0.0, end_epoch: float = 5.0, block_rows: int = 16,
                 keep_diagonal: bool = False, matrices: str = "both", shared_gates: bool = False) -> None:
        if block_rows not in (8, 16):
            raise ValueError(f"block_rows: expected 8 or 16, got {block_rows!r}")
        if not 0 <= start_epoch < end_epoch:
            raise ValueError("start_epoch, end_epoch: expected 0 <= start < end, "
                             f"got {start_epoch}, {end_epoch}")
        if matrices not in ("both", "hh", "ih"):
            raise ValueError(f"matrices: expected 'both', 'hh' or 'ih', got {matrices!r}")
        self.block_rows, self.keep_diagonal = block_rows, bool(keep_diagonal)
        self.shared_gates = bool(shared_gates)
        self.start_epoch, self.end_epoch = float(start_epoch), float(end_epoch)
        # name -> (layer, is W_hh, per-gate target density)
        self.targets: dict[str, tuple[Module, bool, np.ndarray]] = {}
        for prefix, layer in self._recurrent(model, ""):
            gates = _gate_names(layer)
            for name, _ in layer.named_parameters():
                which = {"weight_ih": "ih", "weight_hh": "hh"}.get(name[:9])
                if which is None or (matrices != "both" and matrices != which):
                    continue
                d = density[which] if isinstance(density, Mapping) else density
                dv = np.asarray(d, np.float64)
                if dv.ndim == 0:
                    dv = np.full(len(gates), float(dv))
                if dv.shape != (len(gates),) or not np.all((dv > 0) & (dv <= 1)):
                    raise ValueError(f"density: expected numbers in (0, 1], one or one per gate {gates} of "
                                     f"{type(layer).__name__}, got {d!r}")
                if self.shared_gates and not np.all(dv == dv[0]):
                    raise ValueError(f"density: shared_gates=True needs one density for every gate of "
                                     f"{prefix}{name}, got {d!r}")
                self.targets[prefix + name] = (layer, which == "hh", dv)
        if not self.targets:
            raise ValueError("model: no recurrent weight matrix to prune")
        self.masks: dict[str, np.ndarray] = {}

    @staticmethod
    def _recurrent(m: Module, prefix: str):
        if isinstance(m, tuple(_GATES)):
            yield prefix, m
            return
        mods = getattr(m, "_modules", None) or {}
        for key, sub in mods.items():
            yield from BlockPruning._recurrent(sub, f"{prefix}{key}.")

    def density_at(self, epoch: float) -> float:
        """The schedule's progress factor: 1 before the ramp, 0 at its end (``d = target +
        (1 - target) * density_at(t)``)."""
        p = min(1.0, max(0.0, (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)))
        return (1.0 - p) ** 3

    def update(self, model: Module, optimizer=None, epoch: float = 0.0) -> None:
        """Recompute the masks for (fractional) ``epoch``, zero the pruned weights of ``model`` and
        hand the masks to ``optimizer`` (which then zeroes their gradients and state)."""
        params = dict(model.named_parameters())
        f = self.density_at(epoch)
        for name, (layer, hh, target) in self.targets.items():
            w = params[name]
            h, g = layer.hidden_size, len(target)
            mask = np.ones(w.shape, bool)
            keep = np.eye(h, dtype=bool) if hh and self.keep_diagonal else None
            if self.shared_gates:
                d = float(target[0] + (1.0 - target[0]) * f)
                if d < 1.0:   # sqrt of the gates' summed squares: its block norms are the sums
                    comb = np.sqrt(np.sum(np.asarray(w, np.float64).reshape(g, h, -1) ** 2, axis=0))
                    mask = np.tile(block_mask(comb, d, self.block_rows, keep), (g, 1))
            for gi in [] if self.shared_gates else range(g):
                d = float(target[gi] + (1.0 - target[gi]) * f)
                if d >= 1.0:
                    continue
                rows = slice(gi * h, (gi + 1) * h)
                mask[rows] = block_mask(w[rows], d, self.block_rows, keep)
            w *= mask
            self.masks[name] = mask
        if optimizer is not None:
            mods = getattr(optimizer, "modules", None)
            if not mods or len(mods) != 1 or mods[0] is not model:
                raise ValueError("optimizer: expected an optimiser built on this model alone (its masks "
                                 "are keyed by the model's parameter names)")
            optimizer.masks = dict(self.masks)

    def block_density(self, model: Module) -> dict[str, list[float]]:
        """Per pruned matrix, each gate's share of nonzero blocks (the C core's gate-padded blocks)."""
        params = dict(model.named_parameters())
        out = {}
        for name, (layer, _hh, target) in self.targets.items():
            w, h, bh = params[name], layer.hidden_size, self.block_rows
            res = []
            for gi in range(len(target)):
                wg = w[gi * h:(gi + 1) * h]
                hp, kp = -(-h // bh) * bh, -(-wg.shape[1] // 4) * 4
                z = np.zeros((hp, kp), bool)
                z[:h, :wg.shape[1]] = wg != 0
                res.append(float(z.reshape(hp // bh, bh, kp // 4, 4).any(axis=(1, 3)).mean()))
            out[name] = res
        return out
