"""Forward-only NumPy recurrent layer with every option of the ONNX RNN/GRU/LSTM operators.

The main reference (:mod:`rnncore.nn`) implements the cells that PyTorch and Keras train:
tanh/relu RNN, GRU in both reset forms, LSTM with optional projection. The ONNX operators
allow more: any of the ONNX activation functions (with their ``alpha``/``beta``), clipping
of the gate pre-activations (``clip``), coupled input and forget gates (``input_forget``)
and peephole connections (``P``). :func:`rnncore.io.from_onnx` returns an
:class:`ExtendedRecurrent` for models that use them; it runs with the same calling
convention as ``rc.nn.GRU`` & co. and plugs into ``rc.nn.Sequential``.

Equations (PyTorch gate order, ``a_* = x W_*^T + b_i* + h R_*^T + b_h*``,
``clip(v) = min(max(v, -clip), clip)`` when ``clip`` is set, else identity)::

    RNN   h' = f(clip(a))
    GRU   r = f(clip(a_r)),  z = f(clip(a_z))
          n = g(clip(x W_n^T + b_in + r * (h R_n^T + b_hn)))    reset_after=True
          n = g(clip(x W_n^T + b_in + (r * h) R_n^T + b_hn))    reset_after=False
          h' = (1 - z) * n + z * h
    LSTM  i = f(clip(a_i + p_i * c)),  f = f(clip(a_f + p_f * c))  (f = 1 - i with input_forget)
          g = g(clip(a_g)),  c' = f * c + i * g,  o = f(clip(a_o + p_o * c'))
          h' = o * h(c')  (then h' W_hr^T with proj_size)

``f, g, h`` are the per-direction activations (defaults sigmoid/tanh/tanh, RNN: tanh).
Peepholes are the parameter ``peephole_l{k}{_reverse}`` of shape ``(3, H)``, rows
``p_i, p_f, p_o``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnncore.nn.module import Module, resolve_dtype

__all__ = ["ExtendedRecurrent", "ACTIVATIONS", "make_activation"]

# name -> (number of alpha/beta values it takes, default alpha, default beta)
ACTIVATIONS: dict[str, tuple[int, float, float]] = {
    "relu": (0, 0.0, 0.0),
    "tanh": (0, 0.0, 0.0),
    "sigmoid": (0, 0.0, 0.0),
    "softsign": (0, 0.0, 0.0),
    "softplus": (0, 0.0, 0.0),
    "affine": (2, 1.0, 0.0),
    "leakyrelu": (1, 0.01, 0.0),
    "thresholdedrelu": (1, 1.0, 0.0),
    "elu": (1, 1.0, 0.0),
    "scaledtanh": (2, 1.0, 1.0),
    "hardsigmoid": (2, 0.2, 0.5),
}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def make_activation(name: str, alpha: float | None = None, beta: float | None = None):
    """Return ``(function, (name, alpha, beta))`` for an ONNX activation name (case-insensitive)."""
    key = name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"activation: {name!r} is not an ONNX RNN activation; known: {sorted(ACTIVATIONS)}")
    _, da, db = ACTIVATIONS[key]
    a = da if alpha is None else float(alpha)
    b = db if beta is None else float(beta)
    funcs = {
        "relu": lambda v: np.maximum(v, 0),
        "tanh": np.tanh,
        "sigmoid": _sigmoid,
        "softsign": lambda v: v / (1 + np.abs(v)),
        "softplus": lambda v: np.logaddexp(0, v),
        "affine": lambda v: a * v + b,
        "leakyrelu": lambda v: np.where(v >= 0, v, a * v),
        "thresholdedrelu": lambda v: np.where(v > a, v, 0),
        "elu": lambda v: np.where(v >= 0, v, a * (np.exp(np.minimum(v, 0)) - 1)),
        "scaledtanh": lambda v: a * np.tanh(b * v),
        "hardsigmoid": lambda v: np.clip(a * v + b, 0, 1),
    }
    return funcs[key], (key, a, b)


_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACT = {"RNN": ("tanh",), "GRU": ("sigmoid", "tanh"), "LSTM": ("sigmoid", "tanh", "tanh")}


class ExtendedRecurrent(Module):
    """A stacked, optionally bidirectional RNN/GRU/LSTM with the ONNX operator options.

    Parameters
    ----------
    mode : "RNN", "GRU" or "LSTM"
    input_size, hidden_size, num_layers, bidirectional, proj_size : as in PyTorch
    reset_after : GRU form, True = PyTorch / ONNX ``linear_before_reset=1``
    activations : per direction, a sequence of ``(name, alpha, beta)`` (or names) — one per
        activation of the cell (RNN 1, GRU 2, LSTM 3); a single list applies to every direction
    clip : clip threshold for the gate pre-activations, or None
    input_forget : LSTM only, couple the gates: ``f = 1 - i``
    peepholes : LSTM only, add the ``peephole_l*`` parameters ``(3, H)`` (rows i, f, o)
    reverse : single direction that reads the sequence backwards (ONNX ``direction="reverse"``);
        its parameters keep the unsuffixed names
    dtype : "float64" or "float32"

    Shapes: ``x (B, T, I) -> y (B, T, D*P)``, ``h_n (L*D, B, P)`` (LSTM: ``(h_n, c_n)``
    with ``c_n (L*D, B, H)``).
    """

    is_recurrent = True

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, proj_size: int = 0, reset_after: bool = True,
                 activations: Sequence | None = None, clip: float | None = None,
                 input_forget: bool = False, peepholes: bool = False, reverse: bool = False,
                 dtype: str = "float64") -> None:
        super().__init__()
        mode = mode.upper()
        if mode not in _GATES:
            raise ValueError(f"mode: expected 'RNN', 'GRU' or 'LSTM', got {mode!r}")
        if mode != "LSTM" and (input_forget or peepholes or proj_size):
            raise ValueError("input_forget, peepholes and proj_size exist only for an LSTM")
        self.mode, self.input_size, self.hidden_size = mode, int(input_size), int(hidden_size)
        self.num_layers, self.bidirectional = int(num_layers), bool(bidirectional)
        self.proj_size, self.reset_after = int(proj_size), bool(reset_after)
        self.clip = None if clip is None else float(clip)
        self.input_forget, self.peepholes = bool(input_forget), bool(peepholes)
        if reverse and self.bidirectional:
            raise ValueError("reverse: a bidirectional layer already has a reverse direction")
        self.reverse = bool(reverse)
        self.dtype = resolve_dtype(dtype)
        D = 2 if self.bidirectional else 1
        acts = activations if activations is not None else _DEFAULT_ACT[mode]
        per_dir = self._normalise_activations(acts, D)
        self.activations = [[spec for _, spec in d] for d in per_dir]
        self._acts = [[fn for fn, _ in d] for d in per_dir]
        G, H, P = _GATES[mode], self.hidden_size, self.proj_size or self.hidden_size
        for k in range(self.num_layers):
            In = self.input_size if k == 0 else D * P
            for sfx in ("", "_reverse")[:D]:
                self.params[f"weight_ih_l{k}{sfx}"] = np.zeros((G * H, In), self.dtype)
                self.params[f"weight_hh_l{k}{sfx}"] = np.zeros((G * H, P), self.dtype)
                self.params[f"bias_ih_l{k}{sfx}"] = np.zeros(G * H, self.dtype)
                self.params[f"bias_hh_l{k}{sfx}"] = np.zeros(G * H, self.dtype)
                if self.proj_size:
                    self.params[f"weight_hr_l{k}{sfx}"] = np.zeros((P, H), self.dtype)
                if self.peepholes:
                    self.params[f"peephole_l{k}{sfx}"] = np.zeros((3, H), self.dtype)

    def _normalise_activations(self, acts, D: int):
        n = len(_DEFAULT_ACT[self.mode])

        def one(a):
            if isinstance(a, str):
                return make_activation(a)
            name, alpha, beta = (tuple(a) + (None, None))[:3]
            return make_activation(name, alpha, beta)

        flat = [one(a) for a in acts]
        if len(flat) == n:
            flat = flat * D
        if len(flat) != n * D:
            raise ValueError(
                f"activations: expected {n} (or {n * D}) entries for {self.mode}, got {len(acts)}")
        return [flat[d * n:(d + 1) * n] for d in range(D)]

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: np.ndarray, state=None, lengths=None, mask=None, train: bool = False):
        """Run the whole sequence; see the class docstring for shapes.

        ``state``: initial ``h_0 (L*D, B, P)`` (LSTM: ``(h_0, c_0)``), zeros when None.
        ``lengths (B,)`` or ``mask (B, T)``: positions past a sequence's length give zero
        output and leave its state unchanged; the reverse direction starts at each
        sequence's last valid step. ``train`` is accepted for interface compatibility;
        this layer has no backward.
        """
        if train:
            raise NotImplementedError("ExtendedRecurrent is forward-only (an import target)")
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x: expected shape (batch, time, {self.input_size}), got {x.shape}")
        B, T, _ = x.shape
        if mask is not None:
            lengths = np.asarray(mask, bool).sum(axis=1)
        lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
            raise ValueError(f"lengths: expected shape ({B},) with values in 0..{T}, got {lengths}")
        D, H, P = (2 if self.bidirectional else 1), self.hidden_size, self.proj_size or self.hidden_size
        LD = self.num_layers * D
        if state is None:
            h0 = np.zeros((LD, B, P), self.dtype)
            c0 = np.zeros((LD, B, H), self.dtype)
        elif self.mode == "LSTM":
            h0, c0 = (np.asarray(s, self.dtype) for s in state)
        else:
            h0, c0 = np.asarray(state, self.dtype), None
        if h0.shape != (LD, B, P) or (c0 is not None and c0.shape != (LD, B, H)):
            raise ValueError(f"state: expected h_0 ({LD}, {B}, {P}) (and c_0 ({LD}, {B}, {H}))")
        valid = np.arange(T)[None, :] < lengths[:, None]                        # (B, T)
        # reversal of each sequence within its own length (identity on padding)
        t = np.arange(T)[None, :]
        rev = np.where(valid, lengths[:, None] - 1 - t, t)                        # (B, T)
        rows = np.arange(B)[:, None]
        hs, cs, inp = [], [], x
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                i = k * D + d
                sfx = "_reverse" if d else ""
                backwards = bool(d) or self.reverse
                xin = inp[rows, rev] if backwards else inp
                y, h, c = self._run(xin, valid, k, sfx, d, h0[i], None if c0 is None else c0[i])
                outs.append(y[rows, rev] if backwards else y)
                hs.append(h)
                cs.append(c)
            inp = np.concatenate(outs, axis=2) if D == 2 else outs[0]
        h_n = np.stack(hs)
        return inp, ((h_n, np.stack(cs)) if self.mode == "LSTM" else h_n)

    def _run(self, x, valid, k, sfx, d, h, c):
        p = self.params
        W, R = p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"]
        bi, bh = p[f"bias_ih_l{k}{sfx}"], p[f"bias_hh_l{k}{sfx}"]
        acts = self._acts[d]
        H = self.hidden_size
        cl = (lambda v: np.clip(v, -self.clip, self.clip)) if self.clip is not None else (lambda v: v)
        gx = x @ W.T + bi                                                         # (B, T, G*H)
        B, T, _ = x.shape
        ys = np.zeros((B, T, h.shape[1]), self.dtype)
        h, c = h.copy(), (None if c is None else c.copy())
        for t in range(T):
            m = valid[:, t][:, None]
            gh = h @ R.T + bh
            if self.mode == "RNN":
                hn = acts[0](cl(gx[:, t] + gh))
            elif self.mode == "GRU":
                f, g = acts
                r = f(cl(gx[:, t, :H] + gh[:, :H]))
                z = f(cl(gx[:, t, H:2 * H] + gh[:, H:2 * H]))
                if self.reset_after:
                    n = g(cl(gx[:, t, 2 * H:] + r * gh[:, 2 * H:]))
                else:
                    n = g(cl(gx[:, t, 2 * H:] + (r * h) @ R[2 * H:].T + bh[2 * H:]))
                hn = (1 - z) * n + z * h
            else:
                f, g, hact = acts
                a = gx[:, t] + gh
                ph = p[f"peephole_l{k}{sfx}"] if self.peepholes else np.zeros((3, H), self.dtype)
                i_g = f(cl(a[:, :H] + ph[0] * c))
                f_g = 1 - i_g if self.input_forget else f(cl(a[:, H:2 * H] + ph[1] * c))
                g_g = g(cl(a[:, 2 * H:3 * H]))
                cn = f_g * c + i_g * g_g
                o_g = f(cl(a[:, 3 * H:] + ph[2] * cn))
                hn = o_g * hact(cn)
                if self.proj_size:
                    hn = hn @ p[f"weight_hr_l{k}{sfx}"].T
                c = np.where(m, cn, c)
            h = np.where(m, hn, h)
            ys[:, t] = np.where(m, hn, 0)
        return ys, h, c


class ReverseTime(Module):
    """Reverse each sequence in time within its own length: ``y[b, t] = x[b, len_b - 1 - t]``.

    Positions past a sequence's length stay where they are. Keras' ``go_backwards=True``
    is this module followed by an ordinary (forward) recurrent layer: Keras returns the
    outputs in the reversed order too. Shapes: ``x (B, T, F) -> y (B, T, F)``.
    """

    takes_lengths = True

    def forward(self, x: np.ndarray, lengths=None, mask=None, train: bool = False) -> np.ndarray:
        if train:
            raise NotImplementedError("ReverseTime is forward-only (an import target)")
        x = np.asarray(x)
        B, T = x.shape[:2]
        if mask is not None:
            lengths = np.asarray(mask, bool).sum(axis=1)
        lengths = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        t = np.arange(T)[None, :]
        idx = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
        return x[np.arange(B)[:, None], idx]
