"""NumPy recurrent layer with every option of the ONNX RNN/GRU/LSTM operators, forward and BPTT.

The main reference (:mod:`rnncore.nn`) implements the cells that PyTorch and Keras train:
tanh/relu RNN, GRU in both reset forms, LSTM with optional projection. The ONNX operators
allow more: any of the ONNX activation functions (with their ``alpha``/``beta``), clipping
of the gate pre-activations (``clip``), coupled input and forget gates (``input_forget``)
and peephole connections (``P``). :func:`rnncore.io.from_onnx` returns an
:class:`ExtendedRecurrent` for models that use them; it runs with the same calling
convention as ``rc.nn.GRU`` & co. (``forward(..., train=True)`` then ``backward(dy, dstate)``,
gradients in ``grads``, checked against finite differences in ``tests/test_import_extended.py``)
and plugs into ``rc.nn.Sequential``; the C engine does not take it.

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

``f, g, h`` are the per-direction activations (defaults sigmoid/tanh/tanh, RNN: tanh);
sigmoid, tanh and relu and the GRU/LSTM state updates are :mod:`rnncore.nn`'s
(:mod:`rnncore.nn.functional`, :func:`rnncore.nn.cells.gru_blend`,
:func:`rnncore.nn.cells.lstm_state`), the clip and the other activations are added here.
Peepholes are the parameter ``peephole_l{k}{_reverse}`` of shape ``(3, H)``, rows
``p_i, p_f, p_o``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnncore.nn import cells
from rnncore.nn import functional as F
from rnncore.nn.module import Module, resolve_dtype

__all__ = ["ExtendedRecurrent", "ReverseTime", "ACTIVATIONS", "make_activation", "activation_derivative"]

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


def make_activation(name: str, alpha: float | None = None, beta: float | None = None):
    """Return ``(function, (name, alpha, beta))`` for an ONNX activation name (case-insensitive)."""
    key = name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"activation: {name!r} is not an ONNX RNN activation; known: {sorted(ACTIVATIONS)}")
    _, da, db = ACTIVATIONS[key]
    a = da if alpha is None else float(alpha)
    b = db if beta is None else float(beta)
    funcs = {
        "relu": F.relu,
        "tanh": F.tanh,
        "sigmoid": F.sigmoid,
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


def activation_derivative(spec: tuple):
    """``f'(v)`` as a function of the pre-activation ``v`` for a ``(name, alpha, beta)`` spec."""
    key, a, b = spec
    sig = F.sigmoid
    derivs = {
        "relu": lambda v: F.relu_grad(F.relu(v)),
        "tanh": lambda v: F.tanh_grad(F.tanh(v)),
        "sigmoid": lambda v: F.sigmoid_grad(sig(v)),
        "softsign": lambda v: 1 / (1 + np.abs(v)) ** 2,
        "softplus": lambda v: sig(v),
        "affine": lambda v: np.full_like(v, a),
        "leakyrelu": lambda v: np.where(v >= 0, 1.0, a).astype(v.dtype),
        "thresholdedrelu": lambda v: (v > a).astype(v.dtype),
        "elu": lambda v: np.where(v >= 0, 1.0, a * np.exp(np.minimum(v, 0))).astype(v.dtype),
        "scaledtanh": lambda v: a * b * (1 - np.tanh(b * v) ** 2),
        "hardsigmoid": lambda v: np.where((a * v + b > 0) & (a * v + b < 1), a, 0.0).astype(v.dtype),
    }
    return derivs[key]


_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACT = {"RNN": ("tanh",), "GRU": ("sigmoid", "tanh"), "LSTM": ("sigmoid", "tanh", "tanh")}


def _lengths(lengths, mask, B: int, T: int) -> np.ndarray:
    """Integer lengths (B,) from ``lengths`` or a boolean prefix ``mask`` (B, T); 0 is allowed
    (ONNX's ``sequence_lens``), fractions and non-prefix masks are refused, never rounded."""
    if lengths is not None and mask is not None:
        raise ValueError("lengths, mask: give one of them, not both")
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"mask: expected a boolean array of shape ({B}, {T}), got dtype {m.dtype}")
        if m.shape != (B, T):
            raise ValueError(f"mask: expected shape ({B}, {T}), got {m.shape}")
        lengths = m.sum(axis=1)
        if not np.array_equal(m, np.arange(T)[None, :] < lengths[:, None]):
            raise ValueError("mask: expected a prefix mask (True for the first lengths[b] steps, then False)")
    if lengths is None:
        return np.full(B, T, np.int64)
    lengths = np.asarray(lengths)
    if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected an integer array of shape ({B},), got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


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
        self._cache = None
        #: learned initial state (a constant of an imported model): ``h_0 (L*D, P)`` (LSTM: the pair
        #: with ``c_0 (L*D, H)``), the state every sequence starts from when ``forward`` gets
        #: none; None: zeros
        self.initial_state = None
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
    def extra_repr(self) -> str:
        parts = [repr(self.mode), f"input_size={self.input_size}", f"hidden_size={self.hidden_size}",
                 f"num_layers={self.num_layers}", f"bidirectional={self.bidirectional}"]
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        if self.mode == "GRU" and not self.reset_after:
            parts.append("reset_after=False")
        if self.clip is not None:
            parts.append(f"clip={self.clip}")
        for flag in ("input_forget", "peepholes", "reverse"):
            if getattr(self, flag):
                parts.append(f"{flag}=True")
        parts.append(f"activations={self.activations}")
        return ", ".join(parts) + f", dtype='{self.dtype.name}'"

    def forward(self, x: np.ndarray, state=None, lengths=None, train: bool = False, *, mask=None):
        """Run the whole sequence; see the class docstring for shapes.

        ``state``: initial ``h_0 (L*D, B, P)`` (LSTM: ``(h_0, c_0)``), zeros when None.
        ``lengths (B,)`` or ``mask (B, T)``: positions past a sequence's length give zero
        output and leave its state unchanged; the reverse direction starts at each
        sequence's last valid step. ``train=True`` keeps what :meth:`backward` needs.
        """
        if not isinstance(train, bool | np.bool_):
            raise TypeError(f"train: expected a bool, got {type(train).__name__} {train!r}")
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x: expected shape (batch, time, {self.input_size}), got {x.shape}")
        B, T, _ = x.shape
        lengths = _lengths(lengths, mask, B, T)
        if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
            raise ValueError(f"lengths: expected shape ({B},) with values in 0..{T}, got {lengths}")
        D, H, P = (2 if self.bidirectional else 1), self.hidden_size, self.proj_size or self.hidden_size
        LD = self.num_layers * D
        if state is None and self.initial_state is not None:
            init = self.initial_state if self.mode == "LSTM" else (self.initial_state, np.zeros((LD, H)))
            h0 = np.broadcast_to(np.asarray(init[0], self.dtype)[:, None], (LD, B, P)).copy()
            c0 = np.broadcast_to(np.asarray(init[1], self.dtype)[:, None], (LD, B, H)).copy()
            if self.mode != "LSTM":
                c0 = None
        elif state is None:
            h0 = np.zeros((LD, B, P), self.dtype)
            c0 = np.zeros((LD, B, H), self.dtype)
        elif self.mode == "LSTM":
            h0, c0 = (np.asarray(s, self.dtype) for s in state)
        else:
            h0, c0 = np.asarray(state, self.dtype), None
        if h0.shape != (LD, B, P) or (c0 is not None and c0.shape != (LD, B, H)):
            raise ValueError(f"state: expected h_0 ({LD}, {B}, {P}) (and c_0 ({LD}, {B}, {H}))")
        valid = np.arange(T)[None, :] < lengths[:, None]                        # (B, T)
        # reversal of each sequence within its own length (identity on padding); an involution
        t = np.arange(T)[None, :]
        rev = np.where(valid, lengths[:, None] - 1 - t, t)                        # (B, T)
        rows = np.arange(B)[:, None]
        hs, cs, inp, caches = [], [], x, []
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                i = k * D + d
                sfx = "_reverse" if d else ""
                backwards = bool(d) or self.reverse
                xin = inp[rows, rev] if backwards else inp
                y, h, c, cache = self._run(xin, valid, k, sfx, d, h0[i], None if c0 is None else c0[i], train)
                outs.append(y[rows, rev] if backwards else y)
                hs.append(h)
                cs.append(c)
                caches.append(cache)
            inp = np.concatenate(outs, axis=2) if D == 2 else outs[0]
        h_n = np.stack(hs)
        self._cache = dict(caches=caches, rows=rows, rev=rev, valid=valid, shape=(B, T)) if train else None
        return inp, ((h_n, np.stack(cs)) if self.mode == "LSTM" else h_n)

    def _clip(self, v):
        return v if self.clip is None else np.clip(v, -self.clip, self.clip)

    def _dclip(self, v):
        """Derivative of the clip: 1 inside [-clip, clip], 0 outside."""
        return 1.0 if self.clip is None else (np.abs(v) <= self.clip).astype(self.dtype)

    def _run(self, x, valid, k, sfx, d, h, c, train):
        p = self.params
        W, R = p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"]
        bi, bh = p[f"bias_ih_l{k}{sfx}"], p[f"bias_hh_l{k}{sfx}"]
        acts = self._acts[d]
        H = self.hidden_size
        cl = self._clip
        gx = x @ W.T + bi                                                         # (B, T, G*H)
        B, T, _ = x.shape
        ys = np.zeros((B, T, h.shape[1]), self.dtype)
        h, c = h.copy(), (None if c is None else c.copy())
        steps = []
        for t in range(T):
            m = valid[:, t][:, None]
            gh = h @ R.T + bh
            s = {"h": h, "c": c, "m": m}
            if self.mode == "RNN":
                s["a"] = gx[:, t] + gh
                hn = acts[0](cl(s["a"]))
            elif self.mode == "GRU":
                f, g = acts
                s["ar"] = gx[:, t, :H] + gh[:, :H]
                s["az"] = gx[:, t, H:2 * H] + gh[:, H:2 * H]
                r, z = f(cl(s["ar"])), f(cl(s["az"]))
                if self.reset_after:
                    s["ghn"] = gh[:, 2 * H:]
                    s["an"] = gx[:, t, 2 * H:] + r * s["ghn"]
                else:
                    s["an"] = gx[:, t, 2 * H:] + (r * h) @ R[2 * H:].T + bh[2 * H:]
                n = g(cl(s["an"]))
                s.update(r=r, z=z, n=n)
                hn = cells.gru_blend(n, z, h)
            else:
                f, g, hact = acts
                a = gx[:, t] + gh
                # no peephole term without peepholes (not a zero one: 0 * a cell state that overflowed
                # to inf, which a linear gate lets grow and Keras's tanh(c) reads as 1, is NaN)
                ph = p[f"peephole_l{k}{sfx}"] if self.peepholes else None
                s["ai"] = a[:, :H] + ph[0] * c if self.peepholes else a[:, :H]
                i_g = f(cl(s["ai"]))
                if self.input_forget:
                    f_g = 1 - i_g
                else:
                    s["af"] = a[:, H:2 * H] + ph[1] * c if self.peepholes else a[:, H:2 * H]
                    f_g = f(cl(s["af"]))
                s["ag"] = a[:, 2 * H:3 * H]
                g_g = g(cl(s["ag"]))
                cn = cells.lstm_state(i_g, f_g, g_g, c)
                s["ao"] = a[:, 3 * H:] + ph[2] * cn if self.peepholes else a[:, 3 * H:]
                o_g = f(cl(s["ao"]))
                hh = o_g * hact(cn)
                s.update(i=i_g, f=f_g, g=g_g, o=o_g, cn=cn, hh=hh)
                hn = hh @ p[f"weight_hr_l{k}{sfx}"].T if self.proj_size else hh
                c = np.where(m, cn, c)
            h = np.where(m, hn, h)
            ys[:, t] = np.where(m, hn, 0)
            if train:
                steps.append(s)
        cache = {"x": x, "steps": steps, "k": k, "sfx": sfx, "d": d} if train else None
        return ys, h, c, cache

    # -- backward --------------------------------------------------------------------------
    def backward(self, dy: np.ndarray | None = None, dstate=None):
        """Backpropagation through time, accumulating parameter gradients into ``self.grads``.

        Parameters
        ----------
        dy : (B, T, D*P) gradient w.r.t. ``y`` (None: zero)
        dstate : gradient w.r.t. ``h_n`` (LSTM: the pair ``(dh_n, dc_n)``); None: zero

        Returns
        -------
        dx : (B, T, I) gradient w.r.t. ``x``
        dstate0 : gradient w.r.t. the initial state, shaped like it (LSTM: a pair)
        """
        if self._cache is None:
            raise RuntimeError("ExtendedRecurrent.backward: call forward(x, ..., train=True) first")
        if not self.grads:
            self.zero_grad()
        cache = self._cache
        B, T = cache["shape"]
        rows, rev = cache["rows"], cache["rev"]
        D, H, P = (2 if self.bidirectional else 1), self.hidden_size, self.proj_size or self.hidden_size
        LD = self.num_layers * D
        dy = np.zeros((B, T, D * P), self.dtype) if dy is None else np.asarray(dy, self.dtype)
        if dy.shape != (B, T, D * P):
            raise ValueError(f"dy: expected shape ({B}, {T}, {D * P}), got {dy.shape}")
        if dstate is None:
            dhn, dcn = np.zeros((LD, B, P), self.dtype), np.zeros((LD, B, H), self.dtype)
        elif self.mode == "LSTM":
            dhn, dcn = (np.asarray(v, self.dtype) for v in dstate)
        else:
            dhn, dcn = np.asarray(dstate, self.dtype), np.zeros((LD, B, H), self.dtype)
        dh0, dc0 = np.zeros_like(dhn), np.zeros_like(dcn)
        dout = dy
        for k in reversed(range(self.num_layers)):
            dinp = None
            for d in range(D):
                i = k * D + d
                backwards = bool(d) or self.reverse
                dyd = dout[:, :, d * P:(d + 1) * P]
                if backwards:
                    dyd = dyd[rows, rev]
                dx, dh0[i], dc0[i] = self._back(cache["caches"][i], dyd, dhn[i], dcn[i])
                if backwards:
                    dx = dx[rows, rev]
                dinp = dx if dinp is None else dinp + dx
            dout = dinp
        return dout, ((dh0, dc0) if self.mode == "LSTM" else dh0)

    def _back(self, cache, dy, dh, dc):
        """BPTT through one direction of one layer; returns (dx, dh_0, dc_0)."""
        p, g_ = self.params, self.grads
        k, sfx, d, x = cache["k"], cache["sfx"], cache["d"], cache["x"]
        W, R = p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"]
        H = self.hidden_size
        der = [activation_derivative(spec) for spec in self.activations[d]]
        dcl = self._dclip
        cl = self._clip
        B, T, _ = x.shape
        G = _GATES[self.mode]
        dgx = np.zeros((B, T, G * H), self.dtype)
        dR = np.zeros_like(R)
        dbh = np.zeros(G * H, self.dtype)
        dh = dh.copy()
        dc = dc.copy()
        ph = p[f"peephole_l{k}{sfx}"] if self.peepholes else np.zeros((3, H), self.dtype)
        dph = np.zeros((3, H), self.dtype)
        dWhr = np.zeros((self.proj_size, H), self.dtype) if self.proj_size else None
        for t in reversed(range(T)):
            s = cache["steps"][t]
            m, h, c = s["m"], s["h"], s["c"]
            dhn = np.where(m, dy[:, t] + dh, 0)           # gradient reaching this step's new h
            dh = np.where(m, 0, dh)                       # carried past the step where masked
            if self.mode == "RNN":
                da = dhn * der[0](cl(s["a"])) * dcl(s["a"])
                dgh = da
                dgx[:, t] = da
            elif self.mode == "GRU":
                z, r, n = s["z"], s["r"], s["n"]
                dn = dhn * (1 - z)
                dz = dhn * (h - n)
                dh = dh + dhn * z
                dan = dn * der[1](cl(s["an"])) * dcl(s["an"])
                if self.reset_after:
                    dr = dan * s["ghn"]
                    dghn = dan * r
                else:
                    drh = dan @ R[2 * H:]
                    dR[2 * H:] += dan.T @ (r * h)
                    dbh[2 * H:] += dan.sum(0)
                    dr = drh * h
                    dh = dh + drh * r
                    dghn = None
                dar = dr * der[0](cl(s["ar"])) * dcl(s["ar"])
                daz = dz * der[0](cl(s["az"])) * dcl(s["az"])
                dgx[:, t] = np.concatenate([dar, daz, dan], axis=1)
                if dghn is not None:
                    dgh = np.concatenate([dar, daz, dghn], axis=1)
                else:
                    dR[:2 * H] += np.concatenate([dar, daz], axis=1).T @ h
                    dbh[:2 * H] += np.concatenate([dar, daz], axis=1).sum(0)
                    dh = dh + np.concatenate([dar, daz], axis=1) @ R[:2 * H]
                    dgh = None
            else:
                dcn = np.where(m, dc, 0)
                dc = np.where(m, 0, dc)
                if self.proj_size:
                    dWhr += dhn.T @ s["hh"]
                    dhh = dhn @ p[f"weight_hr_l{k}{sfx}"]
                else:
                    dhh = dhn
                hc = self._acts[d][2](s["cn"])
                do = dhh * hc
                dcn = dcn + dhh * s["o"] * der[2](s["cn"])
                dao = do * der[0](cl(s["ao"])) * dcl(s["ao"])
                dph[2] += (dao * s["cn"]).sum(0)
                dcn = dcn + dao * ph[2]
                di = dcn * s["g"]
                dg = dcn * s["i"]
                dc = dc + dcn * s["f"]
                if self.input_forget:
                    di = di - dcn * c
                    daf = np.zeros_like(di)
                else:
                    daf = dcn * c * der[0](cl(s["af"])) * dcl(s["af"])
                    dph[1] += (daf * c).sum(0)
                    dc = dc + daf * ph[1]
                dai = di * der[0](cl(s["ai"])) * dcl(s["ai"])
                dph[0] += (dai * c).sum(0)
                dc = dc + dai * ph[0]
                dag = dg * der[1](cl(s["ag"])) * dcl(s["ag"])
                dgh = np.concatenate([dai, daf, dag, dao], axis=1)
                dgx[:, t] = dgh
            if dgh is not None:
                dR += dgh.T @ h
                dbh += dgh.sum(0)
                dh = dh + dgh @ R
        g_[f"weight_ih_l{k}{sfx}"] += np.einsum("btg,bti->gi", dgx, x)
        g_[f"bias_ih_l{k}{sfx}"] += dgx.sum((0, 1))
        g_[f"weight_hh_l{k}{sfx}"] += dR
        g_[f"bias_hh_l{k}{sfx}"] += dbh
        if self.peepholes:
            g_[f"peephole_l{k}{sfx}"] += dph
        if self.proj_size:
            g_[f"weight_hr_l{k}{sfx}"] += dWhr
        return dgx @ W, dh, dc


class ReverseTime(Module):
    """Reverse each sequence in time within its own length: ``y[b, t] = x[b, len_b - 1 - t]``.

    Positions past a sequence's length stay where they are. Keras' ``go_backwards=True``
    is this module followed by an ordinary (forward) recurrent layer: Keras returns the
    outputs in the reversed order too. Shapes: ``x (B, T, F) -> y (B, T, F)``.
    """

    takes_lengths = True

    def forward(self, x: np.ndarray, lengths=None, train: bool = False, *, mask=None) -> np.ndarray:
        if train:
            raise NotImplementedError("ReverseTime is forward-only (an import target)")
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"x: expected (batch, time, ...), got shape {x.shape}")
        B, T = x.shape[:2]
        lengths = _lengths(lengths, mask, B, T)
        if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
            raise ValueError(f"lengths: expected shape ({B},) with values in 0..{T}, got {lengths}")
        t = np.arange(T)[None, :]
        idx = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
        return x[np.arange(B)[:, None], idx]
