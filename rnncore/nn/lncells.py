"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1).

The input and the recurrent projections are each layer-normalised before they are added,
and the LSTM's cell state is normalised before its ``tanh``. ``per_gate=True`` (default)
normalises every gate's block of ``H`` pre-activations on its own (as TensorFlow's
``LayerNormBasicLSTMCell`` and Keras' ``LayerNormLSTMCell`` do); ``per_gate=False`` normalises
the ``G*H`` pre-activations of all gates together (the paper's and PyTorch's ``fastrnns``
``LayerNormLSTMCell``). ``LN(a; gamma, beta)`` is :func:`rnncore.nn.norm.layer_norm`.

LSTM (gates ``i, f, g, o``, ``G = 4``)::

    a_t = LN(x_t W_ih^T; gamma_ih, beta_ih) + LN(h_{t-1} W_hh^T; gamma_hh, beta_hh)      (B, 4H)
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN(c_t; gamma_c, beta_c))              (proj_size P: h_t = (o * tanh(...)) W_hr^T)

GRU (gates ``r, z, n``, ``G = 3``; PyTorch's form, the reset gate scales the normalised
recurrent part of ``n``)::

    u_t = LN(x_t W_ih^T; gamma_ih, beta_ih),   v_t = LN(h_{t-1} W_hh^T; gamma_hh, beta_hh)
    r = sigmoid(u_r + v_r),  z = sigmoid(u_z + v_z),  n = tanh(u_n + r * v_n)
    h_t = (1 - z) * n + z * h_{t-1}

The shifts ``beta_ih + beta_hh`` play the role of the biases (``beta_hh``'s ``n`` block is
PyTorch's ``b_hn``). Parameters (``state_dict`` keys): ``weight_ih (G*H, I)``,
``weight_hh (G*H, H)``, ``ln_ih_weight``, ``ln_ih_bias``, ``ln_hh_weight``, ``ln_hh_bias``
``(G*H,)``; LSTM also ``ln_c_weight``, ``ln_c_bias (H,)``. Gains start at 1, shifts at 0 (the
LSTM's forget block of ``ln_ih_bias`` at ``forget_bias``, default 0), weights
``U(-1/sqrt(H), 1/sqrt(H))``.

One layer, one direction (stack them in a :class:`~rnncore.nn.Sequential`); ``lengths``,
``state`` and streaming behave as for :class:`rnncore.nn.LSTM` / :class:`rnncore.nn.GRU`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnncore.nn.functional import sigmoid
from rnncore.nn.module import Module, check_int, resolve_dtype
from rnncore.nn.norm import layer_norm, layer_norm_backward
from rnncore.nn.recurrent import _Recurrent

__all__ = ["LayerNormLSTM", "LayerNormGRU"]


class _LayerNormRecurrent(_Recurrent):
    """Shared machinery: parameters, the normalised projections, the time loop with lengths."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        per_gate: bool = True,
        eps: float = 1e-5,
        dtype: str | np.dtype = "float64",
        seed: int | None = None,
        proj_size: int = 0,
    ) -> None:
        Module.__init__(self)
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers, self.num_directions = 1, 1
        self.proj_size = check_int("proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected < hidden_size={hidden_size}, got {proj_size}")
        self.bidirectional, self.batch_first, self.bias, self.dropout = False, True, True, 0.0
        self.output_size = self.proj_size or self.hidden_size  # size of h (P)
        self.per_gate = bool(per_gate)
        self.eps = float(eps)
        if not self.eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        self.dtype = resolve_dtype(dtype)
        self._rng = np.random.default_rng(seed)
        G, H = self.gates, self.hidden_size
        k = 1.0 / math.sqrt(H)
        self.params["weight_ih"] = self._rng.uniform(-k, k, (G * H, self.input_size)).astype(self.dtype)
        self.params["weight_hh"] = self._rng.uniform(-k, k, (G * H, self.output_size)).astype(self.dtype)
        if self.proj_size:
            self.params["weight_hr"] = self._rng.uniform(-k, k, (self.proj_size, H)).astype(self.dtype)
        for name in ("ih", "hh"):
            self.params[f"ln_{name}_weight"] = np.ones(G * H, self.dtype)
            self.params[f"ln_{name}_bias"] = np.zeros(G * H, self.dtype)
        self.zero_grad()
        self._cache: dict | None = None

    def _repr_extra(self) -> str:
        proj = f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"{proj}, per_gate={self.per_gate}, eps={self.eps}"

    def record(self) -> dict:
        """The layer as a record description: a future ``.rnc`` kind."""
        return {
            "kind": "ln_" + type(self).__name__[9:].lower(),
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "proj_size": self.proj_size,
            "per_gate": self.per_gate,
            "eps": self.eps,
            "tensors": dict(self.params),
        }

    # -- LN of a projection (gates per block or all together) --------------------------------
    def _ln(self, a: np.ndarray, name: str) -> tuple[np.ndarray, tuple]:
        """``LN(a)`` of pre-activations ``a (..., G*H)`` with ``ln_<name>_weight/bias``."""
        G, H = self.gates, self.hidden_size
        shape = a.shape
        blocks = a.reshape(shape[:-1] + ((G, H) if self.per_gate else (G * H,)))
        a_hat, cache = layer_norm(blocks, None, None, self.eps)
        a_hat = a_hat.reshape(shape)
        return a_hat * self.params[f"ln_{name}_weight"] + self.params[f"ln_{name}_bias"], (a_hat, cache)

    def _ln_backward(self, dy: np.ndarray, ln_cache: tuple, name: str) -> np.ndarray:
        """Backward of :meth:`_ln`: returns ``da``, accumulates the gain and shift gradients."""
        a_hat, cache = ln_cache
        lead = tuple(range(dy.ndim - 1))
        self.grads[f"ln_{name}_weight"] += np.sum(dy * a_hat, axis=lead)
        self.grads[f"ln_{name}_bias"] += np.sum(dy, axis=lead)
        G, H = self.gates, self.hidden_size
        g = dy * self.params[f"ln_{name}_weight"]
        blocks = g.reshape(dy.shape[:-1] + ((G, H) if self.per_gate else (G * H,)))
        return layer_norm_backward(blocks, cache)[0].reshape(dy.shape)

    # -- forward over the sequence --------------------------------------------------------------
    def forward(
        self, x: np.ndarray, state: Any = None, lengths: Any = None, train: bool = False, *, mask: Any = None
    ) -> tuple[np.ndarray, Any]:
        """Run the sequence.

        Parameters
        ----------
        x : (B, T, I); state : ``h0`` (1, B, H) -- LSTM ``(h0, c0)``; None: zeros
        lengths, mask : valid steps per sequence (packed-sequence semantics), or None
        train : keep what :meth:`backward` needs

        Returns
        -------
        y : (B, T, H), zero past each length; the final state (at each sequence's last valid step)
        """
        x = self._check_x(x)
        B, T, _ = x.shape
        lengths = self._resolve_lengths(lengths, mask, B, T)
        s = [a[0] for a in self._check_state(state, B)]  # [h (B, H)] (LSTM: + c)
        M = None if lengths is None else (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, I)
        u, ln_x = self._ln(xt @ self.params["weight_ih"].T, "ih")  # (T, B, G*H), every step at once
        Y = np.empty((T, B, self.output_size), self.dtype)
        caches = []
        for t in range(T):
            new, cache = self._step(u[t], s)
            s = new if M is None else [np.where(M[t], n, o) for n, o in zip(new, s, strict=True)]
            Y[t] = s[0]
            caches.append(cache)
        if M is not None:
            Y *= M
        self._cache = {"x": xt, "ln_x": ln_x, "M": M, "steps": caches} if train else None
        final = [a[None] for a in s]
        return np.ascontiguousarray(Y.transpose(1, 0, 2)), (final[0] if len(final) == 1 else tuple(final))

    def backward(self, dy: np.ndarray | None = None, dstate: Any = None) -> tuple[np.ndarray, Any]:
        """BPTT: ``dy (B, T, H)`` (and ``dstate`` like the final state) -> ``(dx (B, T, I), dstate0)``;
        accumulates every parameter's gradient."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward(..., train=True) first")
        c = self._cache
        xt, M, steps = c["x"], c["M"], c["steps"]
        T, B, _ = xt.shape
        dY = (
            np.zeros((T, B, self.output_size), self.dtype)
            if dy is None
            else np.ascontiguousarray(np.asarray(dy, self.dtype).transpose(1, 0, 2))
        )
        if dY.shape != (T, B, self.output_size):
            raise ValueError(
                f"dy: expected shape ({B}, {T}, {self.output_size}) like the output y, got {np.shape(dy)}"
            )
        if M is not None:
            dY = dY * M
        ds = [a[0] for a in self._check_state(dstate, B, name="dstate", cast=True)]
        du = np.empty((T, B, self.gates * self.hidden_size), self.dtype)
        for t in reversed(range(T)):
            ds[0] = ds[0] + dY[t]
            ds_new = ds if M is None else [d * M[t] for d in ds]
            du[t], ds_prev = self._step_backward(ds_new, steps[t])
            ds = ds_prev if M is None else [p + (d - n) for p, d, n in zip(ds_prev, ds, ds_new, strict=True)]
        da = self._ln_backward(du, c["ln_x"], "ih")  # (T, B, G*H)
        self.grads["weight_ih"] += da.reshape(T * B, -1).T @ xt.reshape(T * B, -1)
        dx = da @ self.params["weight_ih"]
        if M is not None:
            dx *= M
        d0 = [a[None] for a in ds]
        return np.ascontiguousarray(dx.transpose(1, 0, 2)), (d0[0] if len(d0) == 1 else tuple(d0))

    def _recurrent(self, h: np.ndarray) -> tuple[np.ndarray, tuple]:
        return self._ln(h @ self.params["weight_hh"].T, "hh")

    def _recurrent_backward(self, dv: np.ndarray, ln_h: tuple, h: np.ndarray) -> np.ndarray:
        da = self._ln_backward(dv, ln_h, "hh")
        self.grads["weight_hh"] += da.T @ h
        return da @ self.params["weight_hh"]


class LayerNormLSTM(_LayerNormRecurrent):
    """Layer-normalised LSTM, one layer (equations in the module docstring).

    Shapes: ``x (B, T, I) -> y (B, T, P)``, state ``(h (1, B, P), c (1, B, H))``, ``P = proj_size or H``.

    Parameters
    ----------
    input_size, hidden_size : ``I``, ``H``
    per_gate : normalise each gate's ``H`` pre-activations separately (True) or all ``4H`` together
    eps : LayerNorm's epsilon
    forget_bias : initial value of the forget block of ``ln_ih_bias``
    proj_size : ``P > 0`` projects the output as PyTorch's LSTM does,
        ``h_t = (o * tanh(LN(c_t))) W_hr^T`` with ``weight_hr (P, H)``; ``weight_hh`` is then ``(4H, P)``
    dtype, seed : as :class:`rnncore.nn.LSTM`
    """

    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        per_gate: bool = True,
        eps: float = 1e-5,
        forget_bias: float = 0.0,
        dtype: str | np.dtype = "float64",
        seed: int | None = None,
        proj_size: int = 0,
    ) -> None:
        super().__init__(input_size, hidden_size, per_gate, eps, dtype, seed, proj_size)
        H = self.hidden_size
        self.params["ln_ih_bias"][H : 2 * H] = forget_bias
        self.params["ln_c_weight"] = np.ones(H, self.dtype)
        self.params["ln_c_bias"] = np.zeros(H, self.dtype)
        self.zero_grad()

    def _state_shapes(self, batch):
        return [(1, batch, self.output_size), (1, batch, self.hidden_size)]

    def _step(self, u_t: np.ndarray, s: list[np.ndarray]):
        h, c = s
        H = self.hidden_size
        v, ln_h = self._recurrent(h)
        a = u_t + v
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 3 * H :])
        g = np.tanh(a[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        cn, ln_c = layer_norm(c_new, self.params["ln_c_weight"], self.params["ln_c_bias"], self.eps)
        tc = np.tanh(cn)
        m = o * tc
        h_new = m @ self.params["weight_hr"].T if self.proj_size else m  # projection (P, H)
        return [h_new, c_new], (h, c, i, f, g, o, tc, ln_c, ln_h, m)

    def _step_backward(self, ds: list[np.ndarray], cache: tuple):
        dh, dc = ds
        h, c, i, f, g, o, tc, ln_c, ln_h, m = cache
        if self.proj_size:  # h = m W_hr^T
            self.grads["weight_hr"] += dh.T @ m
            dh = dh @ self.params["weight_hr"]
        do = dh * tc
        dcn = dh * o * (1 - tc * tc)
        dc_ln, dgc, dbc = layer_norm_backward(dcn, ln_c)
        self.grads["ln_c_weight"] += dgc
        self.grads["ln_c_bias"] += dbc
        dc = dc + dc_ln
        da = np.concatenate(
            [dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], axis=1
        )
        dh_prev = self._recurrent_backward(da, ln_h, h)
        return da, [dh_prev, dc * f]


class LayerNormGRU(_LayerNormRecurrent):
    """Layer-normalised GRU, one layer (equations in the module docstring).

    Parameters as :class:`LayerNormLSTM` (no ``forget_bias``). Shapes: ``x (B, T, I) -> y (B, T, H)``,
    state ``h (1, B, H)``.
    """

    gates = 3

    def _step(self, u_t: np.ndarray, s: list[np.ndarray]):
        (h,) = s
        H = self.hidden_size
        v, ln_h = self._recurrent(h)
        r = sigmoid(u_t[:, :H] + v[:, :H])
        z = sigmoid(u_t[:, H : 2 * H] + v[:, H : 2 * H])
        vn = v[:, 2 * H :]
        n = np.tanh(u_t[:, 2 * H :] + r * vn)
        return [(1 - z) * n + z * h], (h, r, z, n, vn, ln_h)

    def _step_backward(self, ds: list[np.ndarray], cache: tuple):
        (dh,) = ds
        h, r, z, n, vn, ln_h = cache
        dan = dh * (1 - z) * (1 - n * n)
        daz = dh * (h - n) * z * (1 - z)
        dar = dan * vn * r * (1 - r)
        du = np.concatenate([dar, daz, dan], axis=1)
        dv = np.concatenate([dar, daz, dan * r], axis=1)
        dh_prev = dh * z + self._recurrent_backward(dv, ln_h, h)
        return du, [dh_prev]
