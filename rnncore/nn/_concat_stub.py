"""TEMPORARY stand-in for helper B's ``rc.nn.ConcatPool`` (branch s20-concat-core) until it is merged;
delete this file (and the fallback in ``rnncore/io/_build.py``) at the merge."""

from __future__ import annotations

import numpy as np

from rnncore.nn.layers import _Pool


class ConcatPool(_Pool):
    """``y = concatenate([p(x, lengths) for p in pools], -1)``: ``(B, T, F) -> (B, len(pools) * F)``."""

    def __init__(self, *pools) -> None:
        super().__init__()
        self.pools = list(pools)

    def forward(self, x, lengths=None, train: bool = False, *, mask=None):
        return np.concatenate([p.forward(x, lengths, train, mask=mask) for p in self.pools], -1)
