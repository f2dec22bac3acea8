"""Recurrent layers RNN, GRU and LSTM: stacking, bidirectionality, lengths, dropout, BPTT.

A layer runs the single-step cells of :mod:`rnncore.nn.cells` over a whole sequence, for
every layer of a stack and every direction, and back-propagates through time.

Conventions (PyTorch's, see ``docs/equations.md``):

* ``x`` is ``(B, T, I)`` (batch first, always); internally the layer works time-major.
* parameters are named and shaped as in PyTorch's ``state_dict``: ``weight_ih_l{k}``,
  ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}`` (LSTM with
  ``proj_size``), with suffix ``_reverse`` for the backward direction;
* the output is ``[forward | backward]`` along features; final states are ordered
  ``[l0_fwd, l0_bwd, l1_fwd, ...]``;
* ``lengths`` follow packed-sequence semantics: outputs past a sequence's length are zero,
  its state stops changing at its last valid step, and the backward direction starts at
  its last valid step.

State carried across calls: pass ``state=h_n`` (LSTM: ``state=(h_n, c_n)``) returned by the
previous call to continue a stream. ``backward`` then gives the gradient within the current
window only, plus ``dstate0``, the gradient with respect to the state passed in (truncated
backpropagation through time simply ignores it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnncore.nn.cells import (
    gru_cell_backward,
    gru_cell_forward,
    lstm_cell_backward,
    lstm_cell_forward,
    rnn_cell_backward,
    rnn_cell_forward,
)
from rnncore.nn.module import Module, check_int, resolve_dtype

__all__ = ["RNN", "GRU", "LSTM"]


class _Recurrent(Module):
    """Machinery shared by RNN, GRU and LSTM, including the one time loop (:meth:`_scan`,
    :meth:`_scan_backward`); subclasses supply one step of their cell."""

    is_recurrent = True
    takes_lengths = True
    gates = 1  # G: number of gate blocks stacked in weight_ih / weight_hh

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: str | np.dtype = "float64",
        seed: int | None = None,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.proj_size = check_int("proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected < hidden_size={hidden_size}, got {proj_size}")
        if batch_first is not True:
            raise ValueError(
                f"batch_first: rnncore's layout is always (batch, time, features), so only True is "
                f"accepted; got {batch_first!r}"
            )
        if not isinstance(bias, bool | np.bool_):
            raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
        if not isinstance(bidirectional, bool | np.bool_):
            raise TypeError(f"bidirectional: expected a bool, got {type(bidirectional).__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float | np.floating):
            raise TypeError(f"dropout: expected a float in [0, 1), got {type(dropout).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a float in [0, 1), got {dropout}")
        self.bias = bool(bias)
        self.batch_first = True
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dtype = resolve_dtype(dtype)
        self.output_size = self.proj_size or self.hidden_size  # size of h (P)
        self._rng = np.random.default_rng(seed)

        # PyTorch's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), in state_dict order.
        G, H, P, D = self.gates, self.hidden_size, self.output_size, self.num_directions
        k = 1.0 / math.sqrt(H)
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else D * P
            for d in range(D):
                sfx = self._suffix(layer, d)
                shapes = [("weight_ih", (G * H, layer_in)), ("weight_hh", (G * H, P))]
                if self.bias:
                    shapes += [("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
                if self.proj_size:
                    shapes += [("weight_hr", (P, H))]
                for name, shape in shapes:
                    self.params[name + sfx] = self._rng.uniform(-k, k, shape).astype(self.dtype)
        self.zero_grad()
        self._cache: dict[str, Any] | None = None

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer: int, direction: int) -> dict[str, np.ndarray | None]:
        sfx = self._suffix(layer, direction)
        p = self.params
        return {
            "w_ih": p["weight_ih" + sfx],
            "w_hh": p["weight_hh" + sfx],
            "b_ih": p.get("bias_ih" + sfx),
            "b_hh": p.get("bias_hh" + sfx),
            "w_hr": p.get("weight_hr" + sfx),
        }

    def _state_shapes(self, batch: int) -> list[tuple[int, int, int]]:
        """Shapes of the state arrays: ``[h]`` or, for the LSTM, ``[h, c]``."""
        return [(self.num_layers * self.num_directions, batch, self.output_size)]

    def zero_state(self, batch: int) -> Any:
        """The all-zero initial state for ``batch`` sequences (what ``state=None`` means)."""
        arrays = [np.zeros(s, self.dtype) for s in self._state_shapes(batch)]
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    def __repr__(self) -> str:
        extra = self._repr_extra()
        return (
            f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, bias={self.bias}, dropout={self.dropout}, "
            f"bidirectional={self.bidirectional}{extra}, dtype='{self.dtype.name}')"
        )

    def _repr_extra(self) -> str:
        return ""

    # -- validation ------------------------------------------------------------------------
    def _check_x(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            hint = "; convert a torch tensor with x.detach().numpy()" if hasattr(x, "detach") else ""
            if isinstance(x, list | tuple):
                hint = ("; for sequences of different lengths, X, lengths = "
                        "rnncore.datasets.pad_sequences(list_of_(T_i, I)_arrays)")
            raise TypeError(
                f"x: expected a numpy.ndarray of shape (batch, time, {self.input_size}), "
                f"got {type(x).__name__}{hint}"
            )
        if x.ndim != 3:
            hint = "; one sequence (time, features) is x[None]" if x.ndim == 2 else ""
            raise ValueError(
                f"x: expected 3 dimensions (batch, time, {self.input_size}), got shape {x.shape}{hint}"
            )
        if x.dtype.kind != "f":
            raise TypeError(f"x: expected a floating-point array ({self.dtype.name}), got dtype {x.dtype}")
        if x.dtype != self.dtype:
            raise TypeError(
                f"x: dtype {x.dtype} does not match the layer's dtype {self.dtype.name}; "
                f"convert with x.astype('{self.dtype.name}')"
            )
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected {self.input_size} features (last axis), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x: empty batch (shape {x.shape}); need at least one sequence")
        if x.shape[1] == 0:
            raise ValueError(f"x: zero time steps (shape {x.shape}); need at least one step")
        return x

    @staticmethod
    def _resolve_lengths(lengths: Any, mask: Any, batch: int, steps: int) -> np.ndarray | None:
        """Validate ``lengths`` (B,) or a prefix ``mask`` (B, T); return int lengths or None."""
        if lengths is not None and mask is not None:
            raise ValueError("lengths, mask: give one of them, not both")
        if mask is not None:
            if hasattr(mask, "detach"):
                mask = mask.detach().cpu().numpy()
            m = np.asarray(mask)
            if m.dtype != np.bool_:
                raise TypeError(
                    f"mask: expected a boolean array of shape ({batch}, {steps}), got dtype {m.dtype}"
                )
            if m.shape != (batch, steps):
                raise ValueError(f"mask: expected shape ({batch}, {steps}), got {m.shape}")
            lengths = m.sum(axis=1)
            if not np.array_equal(m, np.arange(steps)[None, :] < lengths[:, None]):
                bad = int(np.flatnonzero((m != (np.arange(steps)[None, :] < lengths[:, None])).any(1))[0])
                raise ValueError(
                    f"mask: expected a prefix mask (True for the first lengths[b] steps, then False), "
                    f"sequence {bad} is not: {m[bad].astype(int).tolist()}"
                )
            if lengths.min() < 1:
                raise ValueError(
                    f"mask: every sequence needs at least one valid step, sequence "
                    f"{int(np.argmin(lengths))} has none"
                )
            lengths = lengths.astype(np.int64)
        elif lengths is not None:
            if hasattr(lengths, "detach"):
                lengths = lengths.detach().cpu().numpy()
            lengths = np.asarray(lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(
                    f"lengths: expected an integer array of shape ({batch},), got dtype {lengths.dtype}"
                )
            if lengths.shape != (batch,):
                raise ValueError(
                    f"lengths: expected shape ({batch},) (one per sequence), got {lengths.shape}"
                )
            if lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(
                    f"lengths: expected every length in 1..{steps} (the time axis of x), got "
                    f"min {lengths.min()}, max {lengths.max()}"
                )
            lengths = lengths.astype(np.int64)
        if lengths is not None and lengths.min() == steps:
            return None  # every sequence is full: no masking needed
        return lengths

    def _check_state(
        self, state: Any, batch: int, name: str = "state", cast: bool = False
    ) -> list[np.ndarray]:
        """Validate an initial state (or, with ``cast``, a state gradient of any float dtype, which
        is converted to the layer's dtype); return the list ``[h]`` / ``[h, c]``."""
        shapes = self._state_shapes(batch)
        if state is None:
            return [np.zeros(s, self.dtype) for s in shapes]
        if len(shapes) == 1:
            if isinstance(state, tuple | list):
                raise TypeError(
                    f"{name}: expected one array of shape {shapes[0]}, got a {type(state).__name__}"
                )
            arrays = [state]
        else:
            if not isinstance(state, tuple | list) or len(state) != 2:
                raise TypeError(
                    f"{name}: expected a pair (h, c) of shapes {shapes[0]}, {shapes[1]}, "
                    f"got {type(state).__name__}"
                )
            arrays = list(state)
        out = []
        for what, a, shape in zip(("h", "c"), arrays, shapes, strict=False):
            label = name if len(shapes) == 1 else f"{name}[{0 if what == 'h' else 1}] ({what})"
            if not isinstance(a, np.ndarray):
                hint = "; convert a torch tensor with .detach().numpy()" if hasattr(a, "detach") else ""
                raise TypeError(
                    f"{label}: expected a numpy.ndarray of shape {shape}, got {type(a).__name__}{hint}"
                )
            if a.shape != shape:
                raise ValueError(
                    f"{label}: expected shape {shape} (num_layers*num_directions, batch, size), got {a.shape}"
                )
            if a.dtype.kind != "f":
                raise TypeError(f"{label}: expected a floating-point array, got dtype {a.dtype}")
            if a.dtype != self.dtype and cast:
                a = a.astype(self.dtype)
            elif a.dtype != self.dtype:
                raise TypeError(
                    f"{label}: dtype {a.dtype} does not match the layer's dtype {self.dtype.name}"
                )
            out.append(a)
        return out

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        x: np.ndarray,
        state: Any = None,
        lengths: Any = None,
        train: bool = False,
        *,
        mask: Any = None,
    ) -> tuple[np.ndarray, Any]:
        """Run the stacked (bi)directional layer over whole sequences.

        Parameters
        ----------
        x : (B, T, I) array of the layer's dtype
        state : initial state, ``h0`` (L*D, B, P) -- LSTM: the pair ``(h0, c0)`` with
            ``c0`` (L*D, B, H); None means zeros. Pass the previous call's final state to
            continue a stream.
        lengths : int array (B,), each in 1..T (a list or torch tensor too), or None (all
            sequences have length T)
        train : keep what ``backward`` needs, and apply dropout between layers
        mask : bool array (B, T), a prefix mask (alternative to ``lengths``; keyword only)

        Returns
        -------
        y : (B, T, D*P) outputs of the last layer, ``[forward | backward]``; zero past a length
        h_n : (L*D, B, P) final states (LSTM: ``(h_n, c_n)``), taken at each sequence's last
            valid step
        """
        if not isinstance(train, bool | np.bool_):
            raise TypeError(f"train: expected a bool, got {type(train).__name__} {train!r}")
        x = self._check_x(x)
        B, T, _ = x.shape
        lengths = self._resolve_lengths(lengths, mask, B, T)
        states0 = self._check_state(state, B)
        L, D, P = self.num_layers, self.num_directions, self.output_size

        # time-major working layout; M (T, B, 1) marks valid steps, R (T, B) reverses each
        # sequence within its own length (R is its own inverse)
        if lengths is None:
            M = R = None
            inp = np.ascontiguousarray(x.transpose(1, 0, 2))
        else:
            steps = np.arange(T)[:, None]
            valid = steps < lengths[None, :]                       # (T, B)
            M = valid[:, :, None]
            R = np.where(valid, lengths[None, :] - 1 - steps, steps)
            inp = np.where(M, x.transpose(1, 0, 2), 0).astype(self.dtype, copy=False)
        cols = np.arange(B)[None, :]

        finals: list[list[np.ndarray]] = [[] for _ in states0]
        layer_caches = []
        for layer in range(L):
            drop = None
            if layer > 0 and train and self.dropout > 0.0:
                keep = self._rng.random(inp.shape, dtype=self.dtype) >= self.dropout
                drop = keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)
                inp = inp * drop
            out = np.empty((T, B, D * P), self.dtype)
            dir_caches = []
            for d in range(D):
                w = self._weights(layer, d)
                gx = self._input_projection(inp, w)                # (T, B, G*H)
                if d == 1:
                    gx = gx[::-1] if R is None else gx[R, cols]
                s0 = [s[layer * D + d] for s in states0]          # [h0 (B, P)] (LSTM: + c0 (B, H))
                Y, sT, scan_cache = self._scan(gx, s0, w, M)       # Y (T, B, P) in loop order
                if d == 1:
                    Y = Y[::-1] if R is None else Y[R, cols]
                out[:, :, d * P: (d + 1) * P] = Y
                for k, s in enumerate(sT):
                    finals[k].append(s)
                dir_caches.append(scan_cache)
            if M is not None:
                out *= M  # outputs past each length are zero
            layer_caches.append({"inp": inp, "drop": drop, "dirs": dir_caches})
            inp = out
        y = np.ascontiguousarray(inp.transpose(1, 0, 2))
        final = [np.stack(f) for f in finals]
        self._cache = (
            {"B": B, "T": T, "M": M, "R": R, "cols": cols, "layers": layer_caches} if train else None
        )
        return y, (final[0] if len(final) == 1 else tuple(final))

    def _input_projection(self, inp: np.ndarray, w: dict) -> np.ndarray:
        """``gx = x W_ih^T + b_ih + b_hh`` for all steps at once: (T, B, I) -> (T, B, G*H)."""
        T, B, n_in = inp.shape
        gx = (inp.reshape(T * B, n_in) @ w["w_ih"].T).reshape(T, B, -1)
        if w["b_ih"] is not None:
            gx += w["b_ih"] + w["b_hh"]
        return gx

    # -- backward --------------------------------------------------------------------------
    def backward(self, dy: np.ndarray | None = None, dstate: Any = None) -> tuple[np.ndarray, Any]:
        """Backpropagation through time, accumulating parameter gradients into ``self.grads``.

        Differentiates the last ``forward(..., train=True)``. Calling it again adds the same
        gradients again (like ``retain_graph=True`` in PyTorch); ``zero_grad()`` clears them.

        Parameters
        ----------
        dy : (B, T, D*P) gradient of the loss w.r.t. ``y`` (None: zero)
        dstate : gradient w.r.t. ``h_n`` (L*D, B, P) -- LSTM: the pair ``(dh_n, dc_n)``; None: zero

        Returns
        -------
        dx : (B, T, I) gradient w.r.t. ``x`` (zero past each length)
        dstate0 : gradient w.r.t. the initial state, shaped like it (LSTM: a pair)
        """
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward: no forward pass to differentiate; call "
                f"forward(x, ..., train=True) first (a forward with train=False in between "
                f"drops what backward needs)"
            )
        c = self._cache
        B, T, M, R, cols = c["B"], c["T"], c["M"], c["R"], c["cols"]
        L, D, P = self.num_layers, self.num_directions, self.output_size
        if dy is None:
            dinp = np.zeros((T, B, D * P), self.dtype)
        else:
            if not isinstance(dy, np.ndarray):
                raise TypeError(
                    f"dy: expected a numpy.ndarray of shape ({B}, {T}, {D * P}), got {type(dy).__name__}"
                )
            if dy.shape != (B, T, D * P):
                raise ValueError(f"dy: expected shape ({B}, {T}, {D * P}) like the output y, got {dy.shape}")
            if dy.dtype.kind != "f":
                raise TypeError(f"dy: expected a floating-point array, got dtype {dy.dtype}")
            dinp = np.ascontiguousarray(dy.transpose(1, 0, 2), dtype=self.dtype)
            if M is not None:
                dinp = dinp * M  # outputs past a length are constant zero
        dfinal = self._check_state(dstate, B, name="dstate", cast=True)
        dstate0: list[list[np.ndarray]] = [[None] * (L * D) for _ in dfinal]

        for layer in reversed(range(L)):
            lc = c["layers"][layer]
            inp = lc["inp"]
            dx = np.zeros(inp.shape, self.dtype)
            for d in range(D):
                sfx = self._suffix(layer, d)
                w = self._weights(layer, d)
                dY = dinp[:, :, d * P: (d + 1) * P]
                if d == 1:
                    dY = dY[::-1] if R is None else dY[R, cols]
                ds = [s[layer * D + d] for s in dfinal]
                dgx, ds0, hidden_grads = self._scan_backward(dY, ds, lc["dirs"][d], w, M)
                if d == 1:
                    dgx = dgx[::-1] if R is None else dgx[R, cols]
                for k, s in enumerate(ds0):
                    dstate0[k][layer * D + d] = s
                G_H = dgx.shape[2]
                dgx2 = dgx.reshape(T * B, G_H)
                self.grads["weight_ih" + sfx] += dgx2.T @ inp.reshape(T * B, -1)
                dx += (dgx2 @ w["w_ih"]).reshape(inp.shape)
                if self.bias:
                    self.grads["bias_ih" + sfx] += dgx2.sum(axis=0)
                for name, g in hidden_grads.items():
                    if g is not None:
                        self.grads[name + sfx] += g
            if lc["drop"] is not None:
                dx *= lc["drop"]
            dinp = dx
        if M is not None:
            dinp *= M
        dx_out = np.ascontiguousarray(dinp.transpose(1, 0, 2))
        ds_out = [np.stack(s) for s in dstate0]
        return dx_out, (ds_out[0] if len(ds_out) == 1 else tuple(ds_out))

    # -- the time loop: one scan for every cell type ----------------------------------------
    def _scan(self, gx: np.ndarray, state0: list[np.ndarray], w: dict, M: np.ndarray | None):
        """Run one direction of one layer over time (in loop order).

        Parameters
        ----------
        gx : (T, B, G*H) input projection
        state0 : ``[h0 (B, P)]`` (LSTM: ``[h0, c0 (B, H)]``)
        w : the direction's weights (:meth:`_weights`)
        M : (T, B, 1) bool, valid steps, or None (all valid)

        Returns
        -------
        Y : (T, B, P) the states ``h_1 .. h_T``; the final state list; the cache for
        :meth:`_scan_backward` (``Hs (T+1, B, P)`` with ``Hs[t] = h_{t-1}``, and the cell caches)
        """
        state = list(state0)
        T = gx.shape[0]
        Hs = np.empty((T + 1,) + state[0].shape, self.dtype)  # Hs[t] = h_{t-1}, the state entering step t
        Hs[0] = state[0]
        caches = []
        for t in range(T):
            new, cache = self._cell_forward(gx[t], state, w)
            # past a sequence's length the state stays at its last valid step
            state = new if M is None else [np.where(M[t], n, s) for n, s in zip(new, state, strict=True)]
            Hs[t + 1] = state[0]
            caches.append(cache)
        return Hs[1:], state, (Hs, caches)

    def _scan_backward(self, dY: np.ndarray, dstate: list[np.ndarray], cache: Any, w: dict, M: Any):
        """BPTT through one direction of one layer (in loop order).

        Parameters
        ----------
        dY : (T, B, P) gradient w.r.t. the outputs; dstate : ``[dh_T]`` (LSTM: ``[dh_T, dc_T]``)
        cache : from :meth:`_scan`;  w : the direction's weights;  M : as in :meth:`_scan`

        Returns
        -------
        dgx : (T, B, G*H) gradient w.r.t. the input projection; ``[dstate0]``;
        ``{param name: gradient}`` of the hidden weights, summed over time
        """
        Hs, caches = cache
        ds = list(dstate)                                          # [dh] (LSTM: [dh, dc])
        T = dY.shape[0]
        steps: list[Any] = [None] * T                              # per-step gradients of the cell
        for t in reversed(range(T)):
            ds[0] = ds[0] + dY[t]                                  # dh: output + what step t+1 sent back
            ds_new = ds if M is None else [d * M[t] for d in ds]  # past a length: the state is unchanged
            steps[t], ds_prev = self._cell_backward(ds_new, caches[t], w)
            ds = ds_prev if M is None else [p + (d - n) for p, d, n in zip(ds_prev, ds, ds_new, strict=True)]
        per_step = [np.stack(k).astype(self.dtype, copy=False) for k in zip(*steps, strict=True)]
        dgx, grads = self._hidden_grads(per_step, Hs, caches, w)
        return dgx, ds, grads

    # -- one step of the cell (subclasses) ---------------------------------------------------
    def _cell_forward(self, gx_t: np.ndarray, state: list[np.ndarray], w: dict):
        """One step: ``gx_t (B, G*H)``, ``[h (B, P)(, c (B, H))]`` -> ``([h', (c')], cache)``."""
        raise NotImplementedError

    def _cell_backward(self, ds: list[np.ndarray], cache: Any, w: dict):
        """Backward through one step: ``[dh(, dc)]`` -> ``(per-step gradients, [dh_prev(, dc_prev)])``."""
        raise NotImplementedError

    def _hidden_grads(self, per_step: list[np.ndarray], Hs: np.ndarray, caches: list, w: dict):
        """From the per-step gradients stacked over time (each (T, B, .)): ``(dgx (T, B, G*H),
        {param name: gradient of the hidden weights}``)."""
        raise NotImplementedError


class RNN(_Recurrent):
    """Elman RNN, ``h_t = phi(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, like ``torch.nn.RNN``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first (must be True), dropout,
    bidirectional : as in PyTorch
    nonlinearity : ``"tanh"`` or ``"relu"``
    dtype : ``"float64"`` or ``"float32"``
    seed : seed of the numpy Generator used for initialisation and dropout
        (the shapes of the inputs and outputs are given by :meth:`forward` and
        :meth:`backward`)
    """

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: str | np.dtype = "float64",
        seed: int | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed)

    def _repr_extra(self) -> str:
        return f", nonlinearity='{self.nonlinearity}'"

    def _cell_forward(self, gx_t, state, w):
        h, cache = rnn_cell_forward(gx_t, state[0], w["w_hh"], self.nonlinearity)
        return [h], cache

    def _cell_backward(self, ds, cache, w):
        da, dh_prev = rnn_cell_backward(ds[0], cache, w["w_hh"])
        return (da,), [dh_prev]

    def _hidden_grads(self, per_step, Hs, caches, w):
        (dA,) = per_step                                           # d(pre-activation) per step
        T, B, H = dA.shape
        dA2 = dA.reshape(T * B, H)
        grads = {"weight_hh": dA2.T @ Hs[:-1].reshape(T * B, H)}
        if self.bias:
            grads["bias_hh"] = dA2.sum(axis=0)
        return dA, grads


class GRU(_Recurrent):
    """Gated recurrent unit, like ``torch.nn.GRU`` (gate order r, z, n).

    ``reset_after=True`` (default) is PyTorch's form ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``;
    ``reset_after=False`` is the original form ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``
    (ONNX default, Keras ``reset_after=False``). Both have the same parameters and shapes.
    Other parameters as in :class:`RNN`.
    """

    gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: str | np.dtype = "float64",
        reset_after: bool = True,
        seed: int | None = None,
    ) -> None:
        if not isinstance(reset_after, bool | np.bool_):
            raise TypeError(f"reset_after: expected a bool, got {type(reset_after).__name__}")
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed)

    def _repr_extra(self) -> str:
        return f", reset_after={self.reset_after}"

    def _input_projection(self, inp, w):
        T, B, n_in = inp.shape
        H = self.hidden_size
        gx = (inp.reshape(T * B, n_in) @ w["w_ih"].T).reshape(T, B, 3 * H)
        if w["b_ih"] is not None:
            gx += w["b_ih"]
            if self.reset_after:  # b_hn stays inside r * (W_hn h + b_hn)
                gx[:, :, : 2 * H] += w["b_hh"][: 2 * H]
            else:
                gx += w["b_hh"]
        return gx

    def _cell_forward(self, gx_t, state, w):
        H = self.hidden_size
        b_hn = w["b_hh"][2 * H:] if (self.reset_after and w["b_hh"] is not None) else None
        h, cache = gru_cell_forward(gx_t, state[0], w["w_hh"], b_hn, self.reset_after)
        return [h], cache

    def _cell_backward(self, ds, cache, w):
        dgx, dgh, dh_prev = gru_cell_backward(ds[0], cache, w["w_hh"])
        # in the original form dgh is dgx (the same array)
        return ((dgx, dgh) if self.reset_after else (dgx,)), [dh_prev]

    def _hidden_grads(self, per_step, Hs, caches, w):
        dGX = per_step[0]                                          # d(input projection) per step
        dGH = per_step[1] if self.reset_after else dGX             # d(recurrent pre-activation)
        T, B, H3 = dGX.shape
        H = H3 // 3
        dGH2 = dGH.reshape(T * B, 3 * H)
        Hprev = Hs[:-1].reshape(T * B, H)
        if self.reset_after:
            dW_hh = dGH2.T @ Hprev
        else:  # the n rows of W_hh multiply r * h_prev, not h_prev
            RH = np.stack([c[3] for c in caches]).reshape(T * B, H)
            dW_hh = np.concatenate([dGH2[:, : 2 * H].T @ Hprev, dGH2[:, 2 * H:].T @ RH])
        grads = {"weight_hh": dW_hh}
        if self.bias:
            grads["bias_hh"] = dGH2.sum(axis=0)
        return dGX, grads


class LSTM(_Recurrent):
    """Long short-term memory, like ``torch.nn.LSTM`` (gate order i, f, g, o), with ``proj_size``.

    The state is the pair ``(h, c)``: ``h`` (L*D, B, P) with ``P = proj_size or hidden_size``,
    ``c`` (L*D, B, H). With ``proj_size > 0``, ``h_t = (o_t * tanh(c_t)) W_hr^T`` and the
    parameters include ``weight_hr_l{k}`` (P, H). Other parameters as in :class:`RNN`.
    """

    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: str | np.dtype = "float64",
        seed: int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed, proj_size=proj_size)

    def _repr_extra(self) -> str:
        return f", proj_size={self.proj_size}" if self.proj_size else ""

    def _state_shapes(self, batch):
        LD = self.num_layers * self.num_directions
        return [(LD, batch, self.output_size), (LD, batch, self.hidden_size)]

    def _cell_forward(self, gx_t, state, w):
        h, c, cache = lstm_cell_forward(gx_t, state[0], state[1], w["w_hh"], w["w_hr"])
        return [h, c], cache

    def _cell_backward(self, ds, cache, w):
        da, dh_prev, dc_prev = lstm_cell_backward(ds[0], ds[1], cache, w["w_hh"], w["w_hr"])
        # with a projection also d(h_t), for dW_hr = sum_t dh_t^T m_t
        return ((da, ds[0]) if w["w_hr"] is not None else (da,)), [dh_prev, dc_prev]

    def _hidden_grads(self, per_step, Hs, caches, w):
        dA = per_step[0]                                           # d(pre-activation) per step
        T, B, H4 = dA.shape
        H, P = H4 // 4, Hs.shape[2]
        dA2 = dA.reshape(T * B, 4 * H)
        grads = {"weight_hh": dA2.T @ Hs[:-1].reshape(T * B, P)}
        if self.bias:
            grads["bias_hh"] = dA2.sum(axis=0)
        if w["w_hr"] is not None:
            dHnew = per_step[1]
            Mout = np.stack([c[3] for c in caches]).reshape(T * B, H)  # m_t = o_t * tanh(c_t)
            grads["weight_hr"] = dHnew.reshape(T * B, P).T @ Mout
        return dA, grads
