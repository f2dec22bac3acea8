"""A tiny recurrent Module used to test the containers independently of rnncore.nn.RNN.

``h_t = tanh(W_ih x_t + W_hh h_{t-1})``, one layer, one direction, following the
recurrent-layer interface of rnncore.nn (docs/equations.md):
``forward(x, state=None, lengths=None, train=False) -> (y, h_n)`` with ``y (B, T, H)`` zero past
each length and ``h_n (1, B, H)`` taken at the last valid step;
``backward(dy, dstate=None) -> (dx, dstate0)``.
"""

from __future__ import annotations

import numpy as np

from rnncore.nn.module import Module


class FakeRNN(Module):
    is_recurrent = True
    takes_lengths = True

    def __init__(self, input_size: int, hidden_size: int, seed: int = 0, dtype=np.float64) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden_size = hidden_size
        self.params["weight_ih_l0"] = (rng.standard_normal((hidden_size, input_size)) * 0.5).astype(dtype)
        self.params["weight_hh_l0"] = (rng.standard_normal((hidden_size, hidden_size)) * 0.5).astype(dtype)
        self.zero_grad()

    def forward(self, x, state=None, lengths=None, mask=None, train=False):
        B, T, _ = x.shape
        H = self.hidden_size
        lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
        h = np.zeros((B, H), x.dtype) if state is None else state[0].copy()
        h0 = h.copy()
        hs, ys = [], np.zeros((B, T, H), x.dtype)
        for t in range(T):
            live = (t < lengths)[:, None]
            hn = np.tanh(x[:, t] @ self.params["weight_ih_l0"].T + h @ self.params["weight_hh_l0"].T)
            hs.append(hn)
            h = np.where(live, hn, h)
            ys[:, t] = np.where(live, hn, 0)
        self._cache = (x, lengths, h0, hs) if train else None
        return ys, h[None]

    def backward(self, dy, dstate=None):
        x, lengths, h0, hs = self._cache
        B, T, _ = x.shape
        Wih, Whh = self.params["weight_ih_l0"], self.params["weight_hh_l0"]
        dh = np.zeros_like(h0) if dstate is None else dstate[0].copy()
        dx = np.zeros_like(x)
        for t in range(T - 1, -1, -1):
            live = (t < lengths)[:, None]
            # state before step t: h0 carried through the steps < t that were live
            h_prev = self._state_before(t, h0, hs, lengths)
            g = np.where(live, dh + dy[:, t], 0)
            da = g * (1 - hs[t] ** 2)
            self.grads["weight_ih_l0"] += da.T @ x[:, t]
            self.grads["weight_hh_l0"] += da.T @ h_prev
            dx[:, t] = da @ Wih
            dh = np.where(live, da @ Whh, dh)
        return dx, dh[None]

    @staticmethod
    def _state_before(t, h0, hs, lengths):
        h = h0
        for s in range(t):
            h = np.where((s < lengths)[:, None], hs[s], h)
        return h
