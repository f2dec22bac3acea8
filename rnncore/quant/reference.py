"""The NumPy quantised reference: the executable spec of the C core's q8 kernels.

It runs a :class:`QModel` (a :class:`~rnncore.spec.ModelSpec` with int8 weights) step by
step exactly as the C kernels do (docs/q8-contract.md):

* int32 accumulators ``W_q @ q(v)``, exact (see :func:`~rnncore.quant.scheme.int_matmul`);
* float32 epilogue ``acc * (s_v * s_w) + b``, then the cell in float32 (``gi`` is the input
  part with ``b_ih``, ``gh`` the recurrent part with ``b_hh``)::

      RNN   h' = act(gi + gh)
      GRU   r = sig(gi_r + gh_r); z = sig(gi_z + gh_z)
            reset_after=True : n = tanh(gi_n + r * gh_n)
            reset_after=False: n = tanh(gi_n + (W_hn q(r*h) * (s_rh * s_w) + b_hn))
            h' = (1 - z) * n + z * h
      LSTM  i, f, g, o = sig, sig, tanh, sig (gi + gh); c' = f c + i g; h' = o tanh(c')

  The cell updates are the float reference's own (:mod:`rnncore.nn.cells`: ``rnn_update``,
  ``gru_gates`` / ``gru_candidate`` / ``gru_blend``, ``lstm_update``; the sigmoid of
  :func:`rnncore.nn.functional.sigmoid`, which documents why it has the C core's form): the
  q8 path differs from the float one only in how the pre-activations are computed.

The same loops also run the float spec (:func:`float_forward`, float32 or float64), which
is what the f32 kernels compute.

States are lists with one entry per (layer, direction), ordered
``[layer0_fwd, layer0_bwd, layer1_fwd, ...]``; each entry is ``h (B, H)`` or, for LSTM,
the pair ``(h, c)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnncore.nn import cells
from rnncore.nn import functional as F
from rnncore.quant.scheme import (
    F32,
    activation_scales,
    epilogue,
    int_matmul,
    quantize_activation,
    quantize_weights,
)
from rnncore.spec import CellWeights, LayerSpec, LinearSpec, ModelSpec, stack_text

# ------------------------------------------------------------------------------------------
# quantised model


@dataclass
class QMatrix:
    """An int8 weight matrix with one float32 scale per row: ``W ~= q * scale[:, None]``."""

    q: np.ndarray  # (R, K) int8
    scale: np.ndarray  # (R,) float32

    @classmethod
    def from_float(cls, w: np.ndarray) -> QMatrix:
        return cls(*quantize_weights(w))

    def dequantize(self) -> np.ndarray:
        return self.q.astype(F32) * self.scale[:, None]

    def __repr__(self) -> str:
        return f"QMatrix(shape={tuple(np.shape(self.q))}, int8, per-row float32 scales)"


@dataclass
class QCell:
    """One direction of one q8 layer."""

    w_ih: QMatrix
    w_hh: QMatrix
    bias_ih: np.ndarray  # (G*H,) float32
    bias_hh: np.ndarray  # (G*H,) float32
    w_hr: QMatrix | None = None  # LSTM projection (P, H), options["proj"]


@dataclass
class QLayer:
    """A q8 recurrent layer; ``x_scale`` / ``h_scale`` are static scales (None: dynamic).

    ``h_scale[d]`` is direction ``d``'s; it serves GRU(reset_after=False)'s ``r*h`` too
    (``|r h| <= |h|``), as in the ``.rnc`` layer descriptor.
    """

    cell: str
    input_size: int
    hidden_size: int
    directions: list[QCell]
    reset_after: bool = True
    x_scale: float | None = None
    h_scale: list[float | None] = field(default_factory=lambda: [None, None])
    #: the cell options (:class:`rnncore.spec.LayerSpec`'s ``options``), None for the plain cell
    options: dict | None = None

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    @property
    def state_size(self) -> int:
        """The width of h: the LSTM projection's P, else H."""
        proj = None if not self.options else self.options.get("proj")
        return self.hidden_size if proj is None else int(np.shape(proj)[1])

    @property
    def output_size(self) -> int:
        return self.state_size * self.num_directions

    def __repr__(self) -> str:
        form = "" if self.cell != "gru" or self.reset_after else ", reset_after=False"
        scales = "static" if self.x_scale is not None else "dynamic"
        if self.h_scale[0] is not None and self.x_scale is None:
            scales = "dynamic input, static state"
        return (f"QLayer({self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"directions={self.num_directions}{form}, {scales} scales)")


@dataclass
class QLinear:
    w: QMatrix
    bias: np.ndarray | None
    activation: str = "none"
    x_scale: float | None = None


@dataclass
class QModel:
    """The q8 form of a :class:`ModelSpec`: int8 weights, float32 biases and embedding table."""

    layers: list[QLayer]
    embedding: np.ndarray | None = None
    last_step: bool = False
    head: QLinear | None = None
    last_step_bidirectional: bool = False
    #: the per-step records (read_rnc's descriptions; :mod:`rnncore.quant.front`): before the
    #: recurrent layers, after them, after last_step
    front: list = field(default_factory=list)
    post: list = field(default_factory=list)
    post_pooled: list = field(default_factory=list)
    #: with ``last_step``: the pooling is the mean over the valid steps (``rc.nn.MaskedMean``)
    last_step_mean: bool = False
    #: with ``last_step``: the pooling is the maximum over the valid steps (``rc.nn.MaskedMax``)
    last_step_max: bool = False
    #: with mean and/or max: the last step too, the pooled row ``[last | mean | max]`` (ConcatPool)
    last_step_last: bool = False
    #: the per-step records between recurrent layers: ``mid[l]`` on layer ``l``'s output
    mid: list = field(default_factory=list)
    #: with ``last_step``: the pooling is attention over the valid steps (``rc.nn.AttentionPool``):
    #: ``{"weight": (A, F), "bias": (A,), "score": (A,)}`` float32, applied in float
    last_step_attention: dict | None = None
    #: the front-end's rows as that many steps each, the output their mean (ModelSpec.positions)
    positions: int = 1

    def __repr__(self) -> str:
        head = None if self.head is None else (np.shape(self.head.w.q), self.head.activation)
        scales = "static" if any(layer.x_scale is not None for layer in self.layers) else "dynamic"
        stack = stack_text(self.embedding, self.layers, self.last_step, head, self.last_step_mean,
                           self.last_step_attention, self.last_step_max, self.last_step_last)
        return (f"QModel({stack}, int8 weights, "
                f"{scales} activation scales)")


@dataclass
class Calibration:
    """Static activation scales from data (max-abs / 127), one per quantised vector.

    ``x_scale[l]`` is layer ``l``'s input scale, ``h_scale[l][d]`` its hidden-state scale per
    direction, ``head_scale`` the head input's.
    """

    x_scale: list[float]
    h_scale: list[list[float]]
    head_scale: float | None = None


def quantize_model(spec: ModelSpec, calibration: Calibration | None = None,
                   state_scale: str | None = None) -> QModel:
    """Quantise every weight matrix per row (biases and the embedding stay float32).

    Parameters
    ----------
    spec : the float model
    calibration : static activation scales, or None for dynamic quantisation everywhere
    state_scale : the hidden states' scales: None (the calibration's, else dynamic), "dynamic",
        or "bounded" (the fixed :data:`~rnncore.quant.scheme.BOUNDED_STATE_SCALE` = 1/127 of
        GRU, LSTM and tanh-RNN states, which lie in [-1, 1], for every vector made of them:
        the states, the deeper layers' inputs, the head input; a ReLU layer is refused;
        :func:`~rnncore.quant.scheme.activation_scales`)
    """
    spec.validate()
    xs, hs, head_scale = activation_scales([ls.cell for ls in spec.layers],
                                           [ls.num_directions for ls in spec.layers],
                                           spec.head is not None, state_scale, calibration)
    layers = []
    for k, ls in enumerate(spec.layers):
        proj = None if not ls.options else ls.options.get("proj")
        dirs = [QCell(QMatrix.from_float(w.weight_ih), QMatrix.from_float(w.weight_hh),
                      np.asarray(w.bias_ih, F32), np.asarray(w.bias_hh, F32),
                      None if proj is None else QMatrix.from_float(np.asarray(proj[d])))
                for d, w in enumerate(ls.directions)]
        ql = QLayer(ls.cell, ls.input_size, ls.hidden_size, dirs, ls.reset_after, xs[k],
                    options=ls.options or None)
        if any(v is not None for v in hs[k]):
            ql.h_scale = hs[k]
        layers.append(ql)
    head = None
    if spec.head is not None:
        b = None if spec.head.bias is None else np.asarray(spec.head.bias, F32)
        head = QLinear(QMatrix.from_float(spec.head.weight), b, spec.head.activation, head_scale)
    emb = None if spec.embedding is None else np.asarray(spec.embedding, F32)
    return QModel(layers, emb, spec.last_step, head, spec.last_step_bidirectional,
                  last_step_mean=spec.last_step_mean, last_step_max=spec.last_step_max,
                  last_step_last=spec.last_step_last,
                  last_step_attention=None if spec.last_step_attention is None else {
                      k: np.asarray(v, F32) for k, v in spec.last_step_attention.items()})


# ------------------------------------------------------------------------------------------
# activations and cell updates: rnncore.nn's (float32 in the q8 path, the input dtype in the
# float path); only the pre-activations differ between the float and the q8 references

#: the sigmoid of both references (:func:`rnncore.nn.functional.sigmoid`). This module's
#: ``sigmoid`` and ``np.tanh`` are looked up at every step, so the C core's test vectors
#: (csrc/tests/gen_vectors.py) can substitute float32 transcriptions of its fast activations
#: and compare the C q8 outputs with this reference bit for bit.
sigmoid = F.sigmoid


def _activations() -> cells.Activations:
    return cells.Activations(sigmoid=sigmoid, tanh=np.tanh, relu=F.relu)


def _act(name: str, a: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return F.relu(a)
    if name == "sigmoid":
        return sigmoid(a)
    # the sum of the exponentials is taken from 0 in index order (a cumulative sum's last entry), as
    # the C core's loop: NumPy's .sum adds 8 partial sums pairwise from 8 classes on, another float32
    if name == "softmax":
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return (e / np.cumsum(e, axis=-1)[..., -1:]).astype(a.dtype)
    if name == "log_softmax":
        z = a - a.max(axis=-1, keepdims=True)
        return (z - np.log(np.cumsum(np.exp(z), axis=-1)[..., -1:])).astype(a.dtype)
    if name == "none":
        return a
    raise ValueError(f"activation: unknown {name!r}")


# ------------------------------------------------------------------------------------------
# one step of one cell


def _cell_update(cell: str, hsz: int, gi: np.ndarray, gh: np.ndarray, h: np.ndarray,
                 c: np.ndarray | None, gh_n_fn=None):
    """The cell equations given the gate pre-activations (shared by float and q8).

    ``gi (B, G*H)`` is the input part with ``b_ih``, ``gh (B, G*H)`` the recurrent part with
    ``b_hh``; ``gh_n_fn(r)`` computes GRU(reset_after=False)'s recurrent n-gate term from ``r``.
    The updates are :mod:`rnncore.nn.cells`' (the float reference's).
    """
    act = _activations()
    if cell in ("rnn_tanh", "rnn_relu"):
        return cells.rnn_update(gi + gh, cell[4:], act), None
    if cell == "gru":
        rz = cells.gru_gates(gi[:, :2 * hsz] + gh[:, :2 * hsz], act)
        r = rz[:, :hsz]
        gh_n = r * gh[:, 2 * hsz:] if gh_n_fn is None else gh_n_fn(r)
        n = cells.gru_candidate(gi[:, 2 * hsz:], gh_n, act)
        return cells.gru_blend(n, rz[:, hsz:], h), None
    if cell == "lstm":
        _, c2, _, m = cells.lstm_update(gi + gh, c, act)
        return m, c2
    raise ValueError(f"cell: unknown {cell!r}")


# ------------------------------------------------------------------------------------------
# the cell options (LayerSpec.options): ONNX activations, clip, peepholes, input_forget. The
# equations are rnncore.nn.extended.ExtendedRecurrent's; written here in the C core's operation
# order (csrc/src/kernels/cells_variant.c), with this module's ``sigmoid`` and ``np`` hooks.

_DEFAULT_OPT_ACTS = {"rnn_tanh": ["tanh"], "rnn_relu": ["relu"], "gru": ["sigmoid", "tanh"],
                     "lstm": ["sigmoid", "tanh", "tanh"]}


def variant_activation(name: str, alpha: float, beta: float, v: np.ndarray) -> np.ndarray:
    """One ONNX cell activation in ``v``'s dtype (``alpha``/``beta`` rounded to it, as stored)."""
    dt = v.dtype.type
    a, b = dt(alpha), dt(beta)
    zero, one = dt(0), dt(1)
    if name == "sigmoid":
        return sigmoid(v)
    if name == "tanh":
        return np.tanh(v)
    if name == "relu":
        return F.relu(v)
    if name == "hardsigmoid":
        return np.minimum(np.maximum(a * v + b, zero), one)
    if name == "affine":
        return a * v + b
    if name == "leakyrelu":
        return np.where(v >= zero, v, a * v)
    if name == "thresholdedrelu":
        return np.where(v > a, v, zero)
    if name == "scaledtanh":
        return a * np.tanh(b * v)
    if name == "elu":
        return np.where(v >= zero, v, a * (np.exp(np.minimum(v, zero)) - one))
    if name == "softsign":
        return v / (one + np.abs(v))
    if name == "softplus":
        return np.maximum(v, zero) + np.log1p(np.exp(-np.abs(v)))
    raise ValueError(f"activation: unknown {name!r}")


def _variant_acts(layer, d: int) -> list:
    acts = (layer.options or {}).get("activations")
    if acts is None:
        return [(n, 0.0, 0.0) for n in _DEFAULT_OPT_ACTS[layer.cell]]
    return [(n.lower(), float(a or 0.0), float(b or 0.0)) for n, a, b in
            ((tuple(x) + (None, None))[:3] if not isinstance(x, str) else (x, None, None) for x in acts[d])]


def _lane_sums(blocks: np.ndarray, mu: np.ndarray | None) -> np.ndarray:
    """``(B, 8)``: lane ``j`` adds ``v[..., k]`` (``mu`` given: ``(v - mu)^2``) for ``k % 8 == j``
    over ``blocks (B, nb, H)``, block after block, from 0 (the C core's order)."""
    B, nb, H = blocks.shape
    lanes = np.zeros((B, 8), blocks.dtype)
    for q in range(nb):
        for k in range(0, H, 8):
            v = blocks[:, q, k:k + 8]
            if mu is not None:
                v = v - mu[:, None]
                v = v * v
            lanes[:, :v.shape[1]] += v
    return lanes


def _lane_total(lanes: np.ndarray) -> np.ndarray:
    t = lanes[:, 0]
    for j in range(1, 8):
        t = t + lanes[:, j]
    return t


def layer_norm_c(v: np.ndarray, gates: int, per_gate: bool, gb: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm of pre-activations ``v (B, gates*H)`` in the C core's float operation order
    (csrc/src/kernels/cells_variant.c, ``layer_norm``; docs/q8-contract.md): per gate's ``H`` values
    or all together, ``mu = sum / n``, ``r = 1 / sqrt(sum((v - mu)^2) / n + eps)`` with the sums in
    8 lanes, ``((v - mu) * r) * gain + shift``; ``gb (2, gates*H)``: gains, shifts."""
    dt = v.dtype.type
    B = v.shape[0]
    H = v.shape[1] // gates
    gb = np.asarray(gb, v.dtype).reshape(2, gates, H)
    blocks = v.reshape(B, gates, H)
    out = np.empty_like(blocks)
    nb = 1 if per_gate else gates
    n = dt(nb * H)
    for g0 in range(0, gates, nb):
        grp = blocks[:, g0:g0 + nb]
        mu = _lane_total(_lane_sums(grp, None)) / n
        r = dt(1) / np.sqrt(_lane_total(_lane_sums(grp, mu)) / n + dt(eps))
        gain, shift = gb[0, g0:g0 + nb], gb[1, g0:g0 + nb]
        out[:, g0:g0 + nb] = ((grp - mu[:, None, None]) * r[:, None, None]) * gain + shift
    return out.reshape(B, gates * H)


def _variant_update(layer, d: int, gi: np.ndarray, gh: np.ndarray, h: np.ndarray, c, gh_n_fn=None):
    """The cell with options (``layer.options``): ``gi``/``gh`` as in :func:`_cell_update`.

    With ``layer_norm`` (:mod:`rnncore.nn.lncells`; no clip, peepholes, input_forget):
    ``gi, gh = LN(gi; ih), LN(gh; hh)`` (:func:`layer_norm_c`), the LSTM's ``h(c')`` is
    ``h(LN(c'; c))``."""
    o = layer.options or {}
    hsz = layer.hidden_size
    dt = gi.dtype.type
    acts = _variant_acts(layer, d)
    ln = o.get("layer_norm")
    if ln is not None:
        gates = gi.shape[1] // hsz
        gi = layer_norm_c(gi, gates, ln["per_gate"], ln["ih"][d], ln["eps"])
        gh = layer_norm_c(gh, gates, ln["per_gate"], ln["hh"][d], ln["eps"])

    def act(k, v):
        return variant_activation(*acts[k], v)

    clip = o.get("clip")

    def cl(v):
        if clip is None:
            return v
        c_ = dt(clip)
        return np.minimum(np.maximum(v, -c_), c_)

    if layer.cell in ("rnn_tanh", "rnn_relu"):
        return act(0, cl(gi + gh)), None
    if layer.cell == "gru":
        r = act(0, cl(gi[:, :hsz] + gh[:, :hsz]))
        z = act(0, cl(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz]))
        gh_n = r * gh[:, 2 * hsz:] if gh_n_fn is None else gh_n_fn(r)
        n = act(1, cl(gi[:, 2 * hsz:] + gh_n))
        return cells.gru_blend(n, z, h), None
    a = gi + gh
    peep = o.get("peepholes")
    p = None if peep is None else np.asarray(peep[d], gi.dtype)
    ai = a[:, :hsz] if p is None else a[:, :hsz] + p[0] * c
    i = act(0, cl(ai))
    if o.get("input_forget"):
        f = 1 - i
    else:
        af = a[:, hsz:2 * hsz] if p is None else a[:, hsz:2 * hsz] + p[1] * c
        f = act(0, cl(af))
    g = act(1, cl(a[:, 2 * hsz:3 * hsz]))
    c2 = cells.lstm_state(i, f, g, c)
    ao = a[:, 3 * hsz:] if p is None else a[:, 3 * hsz:] + p[2] * c2
    og = act(0, cl(ao))
    cn = c2 if ln is None else layer_norm_c(c2, 1, True, ln["c"][d], ln["eps"])
    return og * act(2, cn), c2


def _update(layer, d: int, gi, gh, h, c, gh_n_fn=None):
    if layer.options:
        return _variant_update(layer, d, gi, gh, h, c, gh_n_fn)
    return _cell_update(layer.cell, layer.hidden_size, gi, gh, h, c, gh_n_fn)


def float_cell_step(layer: LayerSpec, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray | None = None,
                    dtype=np.float64):
    """One float step of direction ``d`` of ``layer``: ``x (B, I), h (B, H)[, c] -> h'[, c']``."""
    w: CellWeights = layer.directions[d]
    dt = np.dtype(dtype)
    x, h = np.asarray(x, dt), np.asarray(h, dt)
    w_ih, w_hh = np.asarray(w.weight_ih, dt), np.asarray(w.weight_hh, dt)
    b_ih, b_hh = np.asarray(w.bias_ih, dt), np.asarray(w.bias_hh, dt)
    hs = layer.hidden_size
    gi = x @ w_ih.T + b_ih
    if layer.cell == "gru" and not layer.reset_after:
        gh = h @ w_hh.T + b_hh  # the n part is recomputed from r*h below
        def gh_n(r):
            return (r * h) @ w_hh[2 * hs:].T + b_hh[2 * hs:]
        return _update(layer, d, gi, gh, h, None, gh_n)
    gh = h @ w_hh.T + b_hh
    h2, c2 = _update(layer, d, gi, gh, h, None if c is None else np.asarray(c, dt))
    proj = None if not layer.options else layer.options.get("proj")
    if proj is not None:   # LSTM projection: h = m W_hr^T
        h2 = h2 @ np.asarray(proj[d], dt).T
    return h2, c2


def q8_cell_step(layer: QLayer, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray | None = None,
                 return_acc: bool = False):
    """One q8 step of direction ``d`` of ``layer``.

    Parameters
    ----------
    x : (B, I) float32 step input; h : (B, H) float32; c : (B, H) float32 (LSTM only)
    return_acc : also return the int32 accumulators and the activation scales

    Returns
    -------
    h' (B, H) float32, c' (B, H) float32 or None[, acc] where ``acc`` is a dict:
    ``ih`` (B, G*H) int32 = W_ih_q @ q(x); ``hh`` (B, G*H) int32 = W_hh_q @ q(h) (for GRU
    reset_after=False, rows 2H..3H are W_hn_q @ q(r*h)); ``x_scale``, ``h_scale`` (B,) float32
    (and ``rh_scale``).
    """
    w = layer.directions[d]
    hs = layer.hidden_size
    x, h = np.asarray(x, F32), np.asarray(h, F32)
    qx, sx = quantize_activation(x, layer.x_scale)
    acc_ih = int_matmul(qx, w.w_ih.q)
    gi = epilogue(acc_ih, sx, w.w_ih.scale, w.bias_ih)
    qh, sh = quantize_activation(h, layer.h_scale[d])
    info = {"ih": acc_ih, "x_scale": sx, "h_scale": sh}
    if layer.cell == "gru" and not layer.reset_after:
        acc_rz = int_matmul(qh, w.w_hh.q[:2 * hs])
        gh = np.zeros((x.shape[0], 3 * hs), F32)
        gh[:, :2 * hs] = epilogue(acc_rz, sh, w.w_hh.scale[:2 * hs], w.bias_hh[:2 * hs])
        acc_n = []

        def gh_n(r):
            qrh, srh = quantize_activation(r * h, layer.h_scale[d])
            a = int_matmul(qrh, w.w_hh.q[2 * hs:])
            acc_n.append(a)
            info["rh_scale"] = srh
            return epilogue(a, srh, w.w_hh.scale[2 * hs:], w.bias_hh[2 * hs:])

        h2, c2 = _update(layer, d, gi, gh, h, None, gh_n)
        info["hh"] = np.concatenate([acc_rz, acc_n[0]], axis=1)
    else:
        acc_hh = int_matmul(qh, w.w_hh.q)
        gh = epilogue(acc_hh, sh, w.w_hh.scale, w.bias_hh)
        h2, c2 = _update(layer, d, gi, gh, h, None if c is None else np.asarray(c, F32))
        info["hh"] = acc_hh
        if w.w_hr is not None:   # LSTM projection: h = W_hr q(m) * (s_m s_hr) + 0, m's scale dynamic
            qm, sm = quantize_activation(np.asarray(h2, F32), None)
            acc_hr = int_matmul(qm, w.w_hr.q)
            h2 = epilogue(acc_hr, sm, w.w_hr.scale, np.zeros(w.w_hr.q.shape[0], F32))
            info["hr"] = acc_hr
    h2 = h2.astype(F32)
    c2 = None if c2 is None else c2.astype(F32)
    return (h2, c2, info) if return_acc else (h2, c2)


def q8_linear(head: QLinear, x: np.ndarray, return_acc: bool = False):
    """The q8 head: ``act(W_q q(x) * (s_x s_w) + b)``; ``x (..., F)`` -> ``(..., O)`` float32."""
    qx, sx = quantize_activation(np.asarray(x, F32), head.x_scale)
    acc = int_matmul(qx, head.w.q)
    y = _act(head.activation, epilogue(acc, sx, head.w.scale, head.bias))
    return (y, acc) if return_acc else y


def float_linear(head: LinearSpec, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    dt = np.dtype(dtype)
    y = np.asarray(x, dt) @ np.asarray(head.weight, dt).T
    if head.bias is not None:
        y = y + np.asarray(head.bias, dt)
    return _act(head.activation, y.astype(dt))


# ------------------------------------------------------------------------------------------
# sequences and whole models (shared loops)


def _is_q8(model) -> bool:
    return isinstance(model, QModel)


def _zero_state(model, batch: int, dt) -> list:
    """The state a sequence starts from when none is given: zeros, or the layer's learned
    ``initial_h`` / ``initial_c`` (options) for every batch row."""
    state = []
    for layer in model.layers:
        o = getattr(layer, "options", None) or {}
        for d in range(layer.num_directions):
            h = np.zeros((batch, getattr(layer, "state_size", layer.hidden_size)), dt)
            c = np.zeros((batch, layer.hidden_size), dt)
            if o.get("initial_h") is not None:
                h[:] = np.asarray(o["initial_h"][d], dt)
            if o.get("initial_c") is not None:
                c[:] = np.asarray(o["initial_c"][d], dt)
            state.append((h, c) if layer.cell == "lstm" else h)
    return state


def _reverse(layer) -> bool:
    return bool((getattr(layer, "options", None) or {}).get("reverse"))


def normalize_state(model, state, batch: int, dtype=F32) -> list:
    """Accept ``None``, a list of per-(layer, direction) entries, or PyTorch-style arrays
    ``h (L*D, B, H)`` / ``(h, c)``; return the list form (copies, ``dtype``)."""
    dt = np.dtype(dtype)
    if state is None:
        return _zero_state(model, batch, dt)
    if isinstance(state, list):
        return [tuple(np.array(a, dt) for a in s) if isinstance(s, tuple) else np.array(s, dt)
                for s in state]
    has_c = isinstance(state, tuple)
    h_all = np.asarray(state[0] if has_c else state, dt)
    c_all = np.asarray(state[1], dt) if has_c else None
    out, k = [], 0
    for layer in model.layers:
        for _ in range(layer.num_directions):
            if layer.cell == "lstm":
                out.append((h_all[k].copy(), c_all[k].copy()))
            else:
                out.append(h_all[k].copy())
            k += 1
    return out


def stack_state(state: list):
    """The list form -> PyTorch-style ``h (L*D, B, H)`` or ``(h, c)`` (uniform hidden sizes)."""
    if isinstance(state[0], tuple):
        return np.stack([s[0] for s in state]), np.stack([s[1] for s in state])
    return np.stack(state)


def _step_dir(model, layer, li, d, x, s, dtype):
    h, c = (s if isinstance(s, tuple) else (s, None))
    if _is_q8(model):
        h2, c2 = q8_cell_step(layer, d, x, h, c)
    else:
        h2, c2 = float_cell_step(layer, d, x, h, c, dtype)
    return (h2, c2) if c2 is not None else h2


def _steps(model, place: str, x: np.ndarray, per_step_float: bool = False, lengths=None) -> np.ndarray:
    """A q8 model's per-step records at ``place`` ("front", "post", "post_pooled") on ``x``; a float
    model's with ``per_step_float`` (in float64, cast to x's dtype), else none. ``lengths``: whole
    sequences ``x (B, T, F)`` of these lengths (rnncore.quant.front.per_sequence)."""
    records = getattr(model, place, None) if _is_q8(model) or per_step_float else None
    if not records:
        return x
    from rnncore.quant.front import float_step_records, step_records

    if not _is_q8(model):
        return float_step_records(records, x, lengths).astype(x.dtype)
    return step_records(records, x, lengths)


def _mid(model, li: int, x: np.ndarray, reach: list | None = None) -> np.ndarray:
    """The per-step records between layer ``li`` and the next (``model.mid[li]``) on ``x``: a q8
    model's in the C core's arithmetic (the next layer quantises their float output), a float
    model's in float64 cast to x's dtype (always: they are part of the recurrent stack).
    ``reach``: the inputs of the records so far (:func:`_reach`); the list's own are appended."""
    mid = getattr(model, "mid", None) or []
    records = mid[li] if li < len(mid) else None
    if not records:
        return x
    return _records(model, records, x, reach)


def _records(model, records: list, x: np.ndarray, reach: list | None) -> np.ndarray:
    from rnncore.quant.front import float_step_records, step_records

    if not _is_q8(model):
        return float_step_records(records, x, skip=reach, collect=reach).astype(x.dtype)
    return step_records(records, x, skip=reach, collect=reach)


def _crosses(model) -> bool:
    """Some residual's span crosses a recurrent layer (``y = x + GRU(x)``: a residual in ``mid``
    or ``post`` whose span reaches past its list's start)."""
    lists = list(getattr(model, "mid", None) or []) + [getattr(model, "post", None) or []]
    return any(str(r.get("kind")) == "residual" and int(r["span"]) > n
               for recs in lists for n, r in enumerate(recs))


def _front_inputs(model, x: np.ndarray, per_step_float: bool, lengths=None) -> list:
    """The input of each front-end record (the front-end's prefixes on the model input ``x``), for
    a residual around a recurrent layer whose span reaches back into the front-end."""
    records = model.front if _is_q8(model) or per_step_float else []
    from rnncore.quant.front import float_step_records, step_records

    run = step_records if _is_q8(model) else float_step_records
    return [np.asarray(run(records[:r], x, lengths), x.dtype) if r else x for r in range(len(records))]


def _embed(model, x: np.ndarray, dt) -> np.ndarray:
    if model.embedding is None:
        return np.asarray(x, dt)
    idx = np.asarray(x)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"embedding input: expected integer indices, got dtype {idx.dtype}")
    n = model.embedding.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"embedding input: indices must be in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return np.asarray(model.embedding, dt)[idx]


def _head(model, y: np.ndarray, dt) -> np.ndarray:
    if model.head is None:
        return y
    if _is_q8(model):
        return q8_linear(model.head, y)
    return float_linear(model.head, y, dt)


def model_step(model, x: np.ndarray, state, dtype=np.float64):
    """One streaming step of a unidirectional model (float spec or :class:`QModel`).

    Parameters
    ----------
    x : (B, I) floats, or (B,) integer indices with an embedding
    state : as :func:`normalize_state` accepts (None: zeros)

    Returns
    -------
    y : (B, O) output (head output, or the last layer's h)
    state : the new state, list form
    """
    dt = F32 if _is_q8(model) else np.dtype(dtype)
    x = _embed(model, x, dt)
    reach = _front_inputs(model, x, False) if _crosses(model) else None
    x = _steps(model, "front", x)
    if any(layer.num_directions != 1 or _reverse(layer) for layer in model.layers):
        raise ValueError("model_step: a bidirectional or reverse model cannot stream; use the whole-sequence "
                         "forward")
    state = normalize_state(model, state, x.shape[0], dt)
    new = []
    for li, layer in enumerate(model.layers):
        if reach is not None:
            reach.append(x)
        s = _step_dir(model, layer, li, 0, x, state[li], dt)
        new.append(s)
        x = _mid(model, li, s[0] if isinstance(s, tuple) else s, reach)
    if reach is not None and model.post and _is_q8(model):
        return _head(model, _records(model, model.post, x, reach), dt), new
    return _head(model, _steps(model, "post", x), dt), new


def forward(model, X: np.ndarray, lengths=None, state=None, dtype=np.float64, record=None, progress=None,
            per_step_float: bool = False):
    """Whole sequences through a float spec or a :class:`QModel`.

    Parameters
    ----------
    X : (B, T, I) floats, or (B, T) integer indices with an embedding
    lengths : (B,) ints in [0, T] (None: all T); positions t >= lengths[b] give zero output
        and leave the state unchanged
    state : initial state (None: zeros)
    record : optional callback ``record(kind, layer, direction, array, live)`` seeing every
        layer input (``"x"``), every direction's output (``"h"``) and the head input
        (``"head"``); ``live`` masks the valid positions (used by calibration)
    progress : optional callback ``progress(done, total)`` after every time step of every
        layer and direction (``total`` = T x the number of layer directions)
    per_step_float : a float model's per-step records (``front``, ``post``, ``post_pooled``) run
        too (rnncore.quant.front.float_step_records; a q8 model's always run)

    Returns
    -------
    y : (B, T, O) (or (B, O) with last-step pooling): head output, or the last layer's output
    state : the final state, list form
    """
    dt = F32 if _is_q8(model) else np.dtype(dtype)
    x = _embed(model, X, dt)
    bsz, steps = x.shape[:2]
    lengths = np.full(bsz, steps) if lengths is None else np.asarray(lengths)
    reach = None   # the inputs of the records so far: a residual around a recurrent layer adds one
    pos = 1   # positions per step (after a front-end that runs here)
    if _crosses(model):
        valid = (np.arange(steps)[None, :] < lengths[:, None])[..., None]
        reach = _front_inputs(model, np.where(valid, x, 0).astype(dt), per_step_float, lengths)
    if (_is_q8(model) or per_step_float) and model.front:   # the valid steps, zero rows past a length
        from rnncore.quant.front import out_lengths

        valid = (np.arange(steps)[None, :] < lengths[:, None])[..., None]
        x = _steps(model, "front", np.where(valid, x, 0), per_step_float, lengths)
        lengths = out_lengths(model.front, lengths)   # a pooling or strided conv: its output steps
        steps = x.shape[1]
        x = np.where((np.arange(steps)[None, :] < lengths[:, None])[..., None], x, 0).astype(dt)
        pos = getattr(model, "positions", 1)
        if pos > 1:   # row (b, t): C x P values, channel c at position p at c*P + p -> steps (b, t*P + p)
            x = x.reshape(bsz, steps, -1, pos).transpose(0, 1, 3, 2).reshape(bsz, steps * pos, -1)
            lengths, steps = lengths * pos, steps * pos
    state = normalize_state(model, state, bsz, dt)
    final, k = [], 0
    valid = np.arange(steps)[None, :] < lengths[:, None]
    total, done = steps * sum(layer.num_directions for layer in model.layers), 0
    for li, layer in enumerate(model.layers):
        if record is not None:
            record("x", li, None, x, valid)
        if reach is not None:
            reach.append(x)
        outs = []
        for d in range(layer.num_directions):
            s = state[k]
            y = np.zeros((bsz, steps, getattr(layer, "state_size", layer.hidden_size)), dt)
            backwards = d == 1 or _reverse(layer)
            order = range(steps) if not backwards else range(steps - 1, -1, -1)
            for t in order:
                live = (t < lengths)[:, None]
                s2 = _step_dir(model, layer, li, d, x[:, t], s, dt)
                if isinstance(s2, tuple):
                    s = (np.where(live, s2[0], s[0]), np.where(live, s2[1], s[1]))
                    y[:, t] = np.where(live, s2[0], 0)
                else:
                    s = np.where(live, s2, s)
                    y[:, t] = np.where(live, s2, 0)
                if progress is not None:
                    done += 1
                    progress(done, total)
            if (getattr(layer, "options", None) or {}).get("reverse_output"):
                # processing order (Keras go_backwards): reverse each sequence within its length
                tt = np.arange(steps)[None, :]
                idx = np.where(tt < lengths[:, None], lengths[:, None] - 1 - tt, tt)
                y = y[np.arange(bsz)[:, None], idx]
            outs.append(y)
            if record is not None:
                record("h", li, d, y, valid)
            final.append(s)
            k += 1
        x = np.concatenate(outs, axis=2) if len(outs) > 1 else outs[0]
        if li + 1 < len(model.layers):   # the records between this layer and the next; zero past a length
            x = np.where(valid[..., None], _mid(model, li, x, reach), 0).astype(dt)
    if (_is_q8(model) or per_step_float) and model.post:   # per step, the steps past a length at zero
        post = (_steps(model, "post", x, per_step_float) if reach is None else
                _records(model, model.post, x, reach))
        x = np.where(valid[..., None], post, 0).astype(dt)
    attn = getattr(model, "last_step_attention", None) if model.last_step else None
    if attn is not None:
        pooled = attention_pool(attn, x, valid, dt)
        pooled = _steps(model, "post_pooled", pooled, per_step_float)
        if record is not None:
            record("head", None, None, pooled, lengths > 0)
        return _head(model, pooled, dt), final
    if model.last_step:
        mean, maxp = getattr(model, "last_step_mean", False), getattr(model, "last_step_max", False)
        # the parts [last | mean | max] of those present (ConcatPool; one of them alone otherwise)
        parts = []
        if getattr(model, "last_step_last", False) or not (mean or maxp):
            idx = np.clip(lengths - 1, 0, None)
            xs = x if steps else np.zeros((bsz, 1, x.shape[2]), x.dtype)   # no step: zeros
            last = xs[np.arange(bsz), idx]
            if model.last_step_bidirectional:
                half = x.shape[2] // 2
                last[:, half:] = xs[:, 0, half:]
            parts.append(last)
        if mean:
            # the mean over the valid steps (docs/equations.md, "Mean pooling"): the sum in step order
            # in the model's dtype (float32: what the C core adds), then one division by the count
            acc = np.zeros((bsz, x.shape[2]), dt)
            for t in range(steps):
                acc = np.where(valid[:, t, None], acc + x[:, t], acc)
            count = np.maximum(lengths, 1).astype(dt)[:, None]
            parts.append(acc / count)
        if maxp:
            # the maximum over the valid steps (docs/equations.md, "Max pooling"): the first step's
            # row, then a step's value where it is greater (a tie keeps the earlier step's, as
            # np.argmax and the C core)
            acc = np.zeros((bsz, x.shape[2]), dt)
            for t in range(steps):
                acc = np.where(valid[:, t, None] & ((t == 0) | (x[:, t] > acc)), x[:, t], acc)
            parts.append(acc)
        pooled = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        pooled = np.where((lengths > 0)[:, None], pooled, 0).astype(dt)   # no step: a zero vector
        pooled = _steps(model, "post_pooled", pooled, per_step_float)
        if record is not None:
            record("head", None, None, pooled, lengths > 0)
        return _head(model, pooled, dt), final
    if model.head is None:
        return _position_mean(x, pos, dt), final
    if record is not None:
        record("head", None, None, x, valid)
    y = _head(model, x, dt)
    live = (np.arange(steps)[None, :] < lengths[:, None])[..., None]
    return _position_mean(np.where(live, y, 0).astype(dt), pos, dt), final


def _position_mean(y: np.ndarray, P: int, dt) -> np.ndarray:
    """With ``P`` > 1 positions per step: each step's output, the mean of its P positions'
    ``y (B, T*P, O) -> (B, T, O)``: the sum in position order, then one division, in ``dt``
    (float32: csrc/src/model.c, rnc_step and rnc_run)."""
    if P == 1:
        return y
    y = y.reshape(y.shape[0], -1, P, y.shape[2])
    acc = y[:, :, 0]
    for p in range(1, P):
        acc = (acc + y[:, :, p]).astype(dt)
    return (acc / np.dtype(dt).type(P)).astype(dt)


def float_forward(spec: ModelSpec, X, lengths=None, state=None, dtype=np.float64):
    """:func:`forward` of the float spec in ``dtype`` (float64: the accuracy reference)."""
    return forward(spec, X, lengths, state, dtype)


def q8_forward(qmodel: QModel, X, lengths=None, state=None):
    """:func:`forward` of the q8 model (float32 epilogue, exact int accumulators)."""
    return forward(qmodel, X, lengths, state)


def attention_score(attn: dict, x: np.ndarray, dt) -> np.ndarray:
    """The scores ``e (B,)`` of rows ``x (B, F)``: ``e = sum_a v[a] tanh(z[a] + b[a])``,
    ``z[a] = sum_k W[a, k] x[k]``, every sum in ``dt`` in index order (float32: csrc/src/model.c
    ``attn_score``, one rounding per operation)."""
    dt = np.dtype(dt)
    w, b, v = (np.asarray(attn[k], dt) for k in ("weight", "bias", "score"))
    z = np.zeros((x.shape[0], w.shape[0]), dt)
    for k in range(w.shape[1]):
        z = (z + (w[:, k][None, :] * x[:, k, None]).astype(dt)).astype(dt)
    u = np.tanh((z + b).astype(dt))
    e = np.zeros(x.shape[0], dt)
    for a in range(w.shape[0]):
        e = (e + (v[a] * u[:, a]).astype(dt)).astype(dt)
    return e


def attention_pool(attn: dict, x: np.ndarray, valid: np.ndarray, dt) -> np.ndarray:
    """Attention pooling (docs/equations.md, "Attention pooling") of ``x (B, T, F)`` over the steps
    ``valid (B, T)``, by the online softmax the C core runs, in ``dt``: per valid step, with the
    step's score ``e`` and the row's running max ``m``, sum ``s`` and weighted sum ``acc`` (all
    zero before the first step, which sets ``m = e, s = 1, acc = x_t``)::

        e > m:  c = exp(m - e); acc = acc * c + x_t; s = s * c + 1; m = e
        else:   p = exp(e - m); acc = acc + p * x_t; s = s + p

    ``exp`` in float64, rounded to ``dt``; the pooled row is ``acc / s`` (zeros without a step).
    Returns ``(B, F)``."""
    dt = np.dtype(dt)
    one = dt.type(1)
    bsz, steps, f = x.shape
    acc = np.zeros((bsz, f), dt)
    mx = np.zeros(bsz, dt)
    sm = np.zeros(bsz, dt)
    for t in range(steps):
        xt = np.asarray(x[:, t], dt)
        e = attention_score(attn, xt, dt)
        first = sm == 0
        grow = ~first & (e > mx)
        d = np.where(first, 0, np.where(grow, mx - e, e - mx)).astype(dt)
        g = np.exp(d.astype(np.float64)).astype(dt)
        gc = g[:, None]
        new_acc = np.where(first[:, None], xt,
                           np.where(grow[:, None], ((acc * gc).astype(dt) + xt).astype(dt),
                                    (acc + (gc * xt).astype(dt)).astype(dt)))
        new_sm = np.where(first, one, np.where(grow, ((sm * g).astype(dt) + one).astype(dt),
                                                (sm + g).astype(dt))).astype(dt)
        new_mx = np.where(first | grow, e, mx).astype(dt)
        ok = np.asarray(valid[:, t]).reshape(bsz)
        acc = np.where(ok[:, None], new_acc, acc)
        sm = np.where(ok, new_sm, sm)
        mx = np.where(ok, new_mx, mx)
    out = np.zeros((bsz, f), dt)
    has = sm > 0
    out[has] = (acc[has] / sm[has, None]).astype(dt)
    return out


def qmodel_from_rnc(d: dict) -> QModel:
    """The :class:`QModel` of a q8 (or q4: int4 values, the same arithmetic) ``.rnc`` file, from
    :func:`rnncore.io.rnc.read_rnc`'s description: the *stored* integer weights and scales, so the
    reference computes exactly the integers the C core computes from that file."""
    if d["precision"] not in ("q8", "q4"):
        raise ValueError(f"qmodel_from_rnc: expected a q8 or q4 model, got precision {d['precision']!r}")
    layers = []
    for layer in d["layers"]:
        kind = layer["kind"] if layer["kind"] != "rnn" else "rnn_" + layer.get("nonlinearity", "tanh")
        qw, sc, w = layer["qweights"], layer["scales"], layer["weights"]
        o = layer.get("options") or {}
        dirs = [QCell(QMatrix(qw["weight_ih" + suf], sc["weight_ih" + suf]),
                      QMatrix(qw["weight_hh" + suf], sc["weight_hh" + suf]),
                      np.asarray(w["bias_ih" + suf], F32), np.asarray(w["bias_hh" + suf], F32),
                      None if o.get("proj_q") is None else QMatrix(o["proj_q"][d], o["proj_scale"][d]))
                for d, suf in enumerate(("", "_reverse")[: 2 if layer["bidirectional"] else 1])]
        layers.append(QLayer(kind, layer["input_size"], layer["hidden_size"], dirs,
                             bool(layer.get("reset_after", True)), layer.get("x_scale"),
                             list(layer.get("h_scale") or [None, None]), layer.get("options")))
    emb = d.get("embedding")
    head = d.get("head")
    qhead = None
    if head is not None:
        qhead = QLinear(QMatrix(head["qweight"], head["scale"]), np.asarray(head["bias"], F32),
                        head["activation"], head.get("in_scale"))
    return QModel(layers, None if emb is None else np.asarray(emb["weight"], F32), bool(d.get("last_step")),
                  qhead, bool(d.get("last_step_bidirectional")), list(d.get("front") or []),
                  list(d.get("post") or []), list(d.get("post_pooled") or []),
                  last_step_mean=bool(d.get("last_step_mean")), last_step_max=bool(d.get("last_step_max")),
                  last_step_last=bool(d.get("last_step_last")),
                  last_step_attention=d.get("last_step_attention"), mid=[list(m) for m in d.get("mid") or []],
                  positions=int(d.get("positions") or 1))
