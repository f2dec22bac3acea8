"""The fully-integer RNN / GRU / LSTM: the executable spec of the C integer step (Cortex-M path).

No float is used inside a step: int8 weights and activations, int32 accumulators, int16
gate pre-activations, int16 cell (LSTM) or state (GRU), and fixed-point requantisation
``MBQM(acc, m, e) ~= acc * M`` (:mod:`rnncore.quant.fixedpoint`). Floats appear only when a
model is quantised (scales -> multipliers) and when int8 values are read back as reals.

Representation (``q`` an integer, ``s`` its real scale, ``zp`` its zero point)::

    x  ~= s_x (x8 - zp_x)          int8, asymmetric (TFLite's activations)
    x  ~= s_x x16                  or, model input only (``input_dtype="int16"``): int16,
                                   symmetric (zp_x = 0, |x16| <= 32767, TFLite's 16x8 activations)
    h  ~= s_h (h8 - zp_h)          int8, asymmetric
    W  ~= s_w[r] W8[r, :]          int8, symmetric, one scale per row r (per-channel)
    gates: int16 Q3.12             value = g16 / 2^12 (TFLite's LSTM gate scale without layer norm)
    sigmoid, tanh outputs: Q0.15   value = a16 / 2^15
    LSTM cell c: int16             value = c16 * 2^cell_shift (a power of two, TFLite's rule)
    GRU state h: int16 Q0.15       value = h16 / 2^15 (|h| < 1); h8 is its int8 image

Products (all through one int8 x int8 -> int32 routine, the C ``rnc_s8_matvec_fn``)::

    acc[r] = b_eff[r] + sum_k W8[r, k] x8[k]
    b_eff[r] = round(b[r] / (s_x s_w[r])) - zp_x sum_k W8[r, k]      (folds the zero point)

so ``acc[r] s_x s_w[r] ~= (W x + b)[r]``. With an int16 input (first layer only) the input
product is the same sum on ``x16``: ``acc_ih[r] = b_ih[r] + sum_k W8[r, k] x16[k]``, ``b_ih[r] =
round(b[r] / (s_x s_w[r]))`` (no zero point), in int32 because every row keeps::

    |b_ih[r]| + 2^15 sum_k |W8[r, k]| <= 2^31 - 1      (I 127 2^15 + |b| < 2^31: I <= 511 at b = 0)

(``IntCell.validate``, the C ``rnc_int_cell_check`` and both file readers refuse a row that does
not). A gate pre-activation sums the input and recurrent
parts, each requantised to Q3.12 with saturation, in TFLite's order::

    g16 = sat16(MBQM(acc_ih, m_ih, e_ih))                M_ih[r] = s_x s_wih[r] / 2^-12
    g16 = sat16(MBQM(acc_hh, m_hh, e_hh) + g16)          M_hh[r] = s_h s_whh[r] / 2^-12

The cells, with ``sig = sigmoid_q15(., 3)``, ``tanh = tanh_q15(., 3)`` (gemmlowp's int16
fixed-point functions, the ones TFLite's integer LSTM calls) and ``a (.) b >> k`` the
rounded product ``RDBPOT(a b, k)``:

* **LSTM** (TFLite's 8x8_16 kernel, ``lstm_eval.cc``, bit for bit)::

      i, f, o = sig(g_i), sig(g_f), sig(g_o);  g = tanh(g_g)
      c' = sat16((f c >> 15) + (i g >> (30 + cell_shift)))
      h8' = sat8(MBQM(o tanh_q15(c', 15 + cell_shift), M_h) + zp_h)   M_h = 2^-30 / s_h

* **GRU** (both forms; state int16 Q0.15)::

      r, z = sig(g_r), sig(g_z)
      linear_before_reset=1 (PyTorch): n = tanh(sat16(g_in + (r g_hn >> 15)))
      linear_before_reset=0 (ONNX default, Keras reset_after=False):
          rh8 = sat8(MBQM(r h16, M_rh) + zp_h)                      M_rh = 2^-30 / s_h
          n = tanh(sat16(MBQM(W_hn rh8 + b_hn_eff, M_hh) + g_in))
      h16' = sat16(((2^15 - z) n + z h16) >> 15)
      h8' = sat8(MBQM(h16', M_h) + zp_h)                            M_h = 2^-15 / s_h

* **RNN**: tanh: ``h8' = sat8(MBQM(tanh(g), M_h) + zp_h)``, ``M_h = 2^-15 / s_h``; ReLU: the
  pre-activation has a calibrated int16 scale ``s_g`` instead of 2^-12, and
  ``h8' = sat8(MBQM(max(g, 0), M_h) + zp_h)``, ``M_h = s_g / s_h``.

Two activation families (``IntCell.activation``): ``"gemmlowp"`` (the default) is the sigmoid /
tanh of TFLite's integer LSTM (the kernel LiteRT runs, ``tensor_utils::ApplySigmoid`` /
``ApplyTanh``), so a TFLite-quantised LSTM is reproduced bit for bit (tests/test_quant_int.py).
``"table"`` (GRU and RNN cells, whose activations all take Q3.12 inputs) reads two 257-entry int16
tables with linear interpolation (:func:`~rnncore.quant.fixedpoint.sigmoid_table_q15`,
``tanh_table_q15``), the kind of table CMSIS-NN and TFLite Micro use: a few instructions per
value on a Cortex-M4 instead of ~120, and closer to the real functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnncore.quant import fixedpoint as fx
from rnncore.spec import ModelSpec, spec_from_model

GATE_SHIFT = -12                     # gate pre-activations: Q3.12
GATE_INT_BITS = 3
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
INPUT_DTYPES = ("int8", "int16")        # IntCell.input_dtype: the first layer's input
INT32_MAX = 2**31 - 1
ACTIVATIONS = ("gemmlowp", "table")     # IntCell.activation: the sigmoid / tanh family
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def s8_matvec(W8: np.ndarray, x8: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``y[b, r] = bias[r] + sum_k W8[r, k] x8[b, k]``, exact int64 (the C ``rnc_s8_matvec_fn``).

    W8 (R, K) int8; x8 (B, K) int8; bias (R,) int32 or None -> (B, R) int64.
    """
    y = np.asarray(x8, np.int64) @ np.asarray(W8, np.int64).T
    return y if bias is None else y + np.asarray(bias, np.int64)


def quantize_multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row :func:`~rnncore.quant.fixedpoint.quantize_multiplier`: (m int32, shift int32)."""
    pairs = [fx.quantize_multiplier(float(v)) for v in np.ravel(real)]
    return (np.array([p[0] for p in pairs], np.int32).reshape(np.shape(real)),
            np.array([p[1] for p in pairs], np.int32).reshape(np.shape(real)))


@dataclass
class IntCell:
    """One direction of one fully-integer recurrent layer (see the module docstring).

    Rows are gate blocks in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), ``G`` blocks of
    ``H`` rows. ``m_*`` (int32) and ``e_*`` (int32 shifts) are per-row multipliers.
    """

    cell: str
    input_size: int
    hidden_size: int
    w_ih: np.ndarray          # (G*H, I) int8
    w_hh: np.ndarray          # (G*H, H) int8
    b_ih: np.ndarray          # (G*H,) int32, zero point folded in
    b_hh: np.ndarray          # (G*H,) int32, zero point folded in
    m_ih: np.ndarray          # (G*H,) acc_ih -> gate int16
    e_ih: np.ndarray
    m_hh: np.ndarray          # (G*H,) acc_hh -> gate int16
    e_hh: np.ndarray
    m_h: int                  # state -> h8
    e_h: int
    x_scale: float
    x_zp: int
    h_scale: float
    h_zp: int
    linear_before_reset: bool = True
    cell_shift: int = -15     # LSTM: the cell scale is 2^cell_shift
    cell_clip: int = 0        # LSTM: |c| <= cell_clip when > 0
    m_rh: int = 0             # GRU linear_before_reset=0: r h16 (Q0.30) -> rh8
    e_rh: int = 0
    gate_scale: float = 2.0 ** GATE_SHIFT   # RNN ReLU: calibrated; otherwise 2^-12
    activation: str = "gemmlowp"  # sigmoid / tanh: gemmlowp's (TFLite) or "table" (GRU, RNN)
    input_dtype: str = "int8"     # x: "int8" (asymmetric) or "int16" (symmetric, x_zp = 0)

    @property
    def gates(self) -> int:
        return _GATES[self.cell]

    def zero_state(self, batch: int) -> tuple[np.ndarray, ...]:
        """The integer state of real zero: LSTM ``(h8, c16)``, GRU ``(h8, h16)``, RNN ``(h8,)``."""
        h8 = np.full((batch, self.hidden_size), self.h_zp, np.int8)
        if self.cell == "rnn_tanh" or self.cell == "rnn_relu":
            return (h8,)
        return (h8, np.zeros((batch, self.hidden_size), np.int16))

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"IntCell.cell: expected one of {CELLS}, got {self.cell!r}")
        gh, i, h = self.gates * self.hidden_size, self.input_size, self.hidden_size
        for name, want in (("w_ih", (gh, i)), ("w_hh", (gh, h)), ("b_ih", (gh,)), ("b_hh", (gh,)),
                           ("m_ih", (gh,)), ("e_ih", (gh,)), ("m_hh", (gh,)), ("e_hh", (gh,))):
            got = np.shape(getattr(self, name))
            if got != want:
                raise ValueError(f"IntCell.{name}: expected shape {want}, got {got}")
        if not -128 <= self.x_zp <= 127 or not -128 <= self.h_zp <= 127:
            raise ValueError(f"IntCell: zero points must be int8, got x_zp={self.x_zp}, h_zp={self.h_zp}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"IntCell.activation: expected one of {ACTIVATIONS}, got {self.activation!r}")
        if self.activation == "table" and self.cell == "lstm":
            raise ValueError("IntCell.activation: 'table' is for GRU and RNN cells (Q3.12 inputs); "
                             "the LSTM's tanh(c) takes 15 + cell_shift integer bits, expected "
                             "'gemmlowp' for an LSTM")
        if self.input_dtype not in INPUT_DTYPES:
            raise ValueError(f"IntCell.input_dtype: expected one of {INPUT_DTYPES}, got {self.input_dtype!r}")
        if self.input_dtype == "int16":
            if self.x_zp != 0:
                raise ValueError(f"IntCell.x_zp: an int16 input is symmetric, expected 0, got {self.x_zp}")
            bound = (np.abs(np.asarray(self.b_ih, np.int64))
                     + (1 << 15) * np.abs(np.asarray(self.w_ih, np.int64)).sum(axis=1))
            if np.any(bound > INT32_MAX):
                r = int(np.argmax(bound))
                raise ValueError(f"IntCell.w_ih: an int16 input needs |b_ih[r]| + 2^15 sum_k |w_ih[r, k]| "
                                 f"<= {INT32_MAX} (int32 accumulation), row {r} has {int(bound[r])}")
        if self.cell == "lstm" and not -15 <= self.cell_shift <= -9:
            raise ValueError(f"IntCell.cell_shift: expected in [-15, -9] (tanh of the cell takes 0 to 6 "
                             f"integer bits, as TFLite), got {self.cell_shift}")


# ------------------------------------------------------------------------------------------
# one step


def _gates(cell: IntCell, x8: np.ndarray, h8: np.ndarray, rows: slice) -> np.ndarray:
    """Q3.12 pre-activations of ``rows``: input part, then recurrent part added with saturation."""
    acc_ih = s8_matvec(cell.w_ih[rows], x8, cell.b_ih[rows])
    g = fx.sat16(fx.mbqm(acc_ih, cell.m_ih[rows], cell.e_ih[rows]))
    acc_hh = s8_matvec(cell.w_hh[rows], h8, cell.b_hh[rows])
    return fx.sat16(fx.mbqm(acc_hh, cell.m_hh[rows], cell.e_hh[rows]) + g)


def _input(cell: IntCell, x) -> np.ndarray:
    """x as the cell's input dtype (int8, or int16 with ``input_dtype="int16"``)."""
    return np.asarray(x, np.int16 if cell.input_dtype == "int16" else np.int8)


def int_cell_step(cell: IntCell, x8: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """One integer step: ``x8 (B, I)`` int8 (int16 for ``input_dtype="int16"``) and the state
    -> the new state (``state[0]`` is h8).

    State: LSTM ``(h8 int8, c16 int16)``, GRU ``(h8 int8, h16 int16)``, RNN ``(h8 int8,)``,
    each ``(B, H)``.
    """
    H = cell.hidden_size
    x8 = _input(cell, x8)
    h8 = np.asarray(state[0], np.int8)
    sig, tanh = fx.sigmoid_q15, fx.tanh_q15
    if cell.activation == "table":       # Q3.12 inputs only (GRU, RNN): int_bits is always 3
        def sig(v, int_bits):
            return fx.sigmoid_table_q15(v)

        def tanh(v, int_bits):
            return fx.tanh_table_q15(v)
    if cell.cell == "lstm":
        c = np.asarray(state[1], np.int64)
        g = _gates(cell, x8, h8, slice(0, 4 * H))
        i = sig(g[:, 0 * H:1 * H], GATE_INT_BITS)
        f = sig(g[:, 1 * H:2 * H], GATE_INT_BITS)
        gg = tanh(g[:, 2 * H:3 * H], GATE_INT_BITS)
        o = sig(g[:, 3 * H:4 * H], GATE_INT_BITS)
        c2 = fx.sat16(fx.cwise_mul_shift(f, c, 15) + fx.cwise_mul_shift(i, gg, 30 + cell.cell_shift))
        if cell.cell_clip > 0:
            c2 = np.clip(c2, -cell.cell_clip, cell.cell_clip)
        tc = tanh(c2, 15 + cell.cell_shift)
        h2 = fx.sat8(fx.mbqm(o * tc, cell.m_h, cell.e_h) + cell.h_zp)
        return h2.astype(np.int8), c2.astype(np.int16)
    if cell.cell == "gru":
        h16 = np.asarray(state[1], np.int64)
        g_rz = _gates(cell, x8, h8, slice(0, 2 * H))
        r = sig(g_rz[:, :H], GATE_INT_BITS)
        z = sig(g_rz[:, H:], GATE_INT_BITS)
        n_rows = slice(2 * H, 3 * H)
        g_in = fx.sat16(fx.mbqm(s8_matvec(cell.w_ih[n_rows], x8, cell.b_ih[n_rows]),
                                cell.m_ih[n_rows], cell.e_ih[n_rows]))
        if cell.linear_before_reset:
            g_hn = fx.sat16(fx.mbqm(s8_matvec(cell.w_hh[n_rows], h8, cell.b_hh[n_rows]),
                                    cell.m_hh[n_rows], cell.e_hh[n_rows]))
            n = tanh(fx.sat16(g_in + fx.cwise_mul_shift(r, g_hn, 15)), GATE_INT_BITS)
        else:
            rh8 = fx.sat8(fx.mbqm(r * h16, cell.m_rh, cell.e_rh) + cell.h_zp)
            acc_n = s8_matvec(cell.w_hh[n_rows], rh8, cell.b_hh[n_rows])
            n = tanh(fx.sat16(fx.mbqm(acc_n, cell.m_hh[n_rows], cell.e_hh[n_rows]) + g_in), GATE_INT_BITS)
        h16n = fx.sat16(fx.rdbpot(((1 << 15) - z) * n + z * h16, 15))
        h8n = fx.sat8(fx.mbqm(h16n, cell.m_h, cell.e_h) + cell.h_zp)
        return h8n.astype(np.int8), h16n.astype(np.int16)
    g = _gates(cell, x8, h8, slice(0, H))
    if cell.cell == "rnn_tanh":
        a = tanh(g, GATE_INT_BITS)
    else:
        a = np.maximum(g, 0)
    return (fx.sat8(fx.mbqm(a, cell.m_h, cell.e_h) + cell.h_zp).astype(np.int8),)


def int_cell_sequence(cell: IntCell, x8: np.ndarray, state=None) -> tuple[np.ndarray, tuple]:
    """``x8 (B, T, I)`` int8 (int16 for ``input_dtype="int16"``) -> ``h8 (B, T, H)`` int8 and
    the final state."""
    x8 = _input(cell, x8)
    state = cell.zero_state(x8.shape[0]) if state is None else state
    out = np.zeros((x8.shape[0], x8.shape[1], cell.hidden_size), np.int8)
    for t in range(x8.shape[1]):
        state = int_cell_step(cell, x8[:, t], state)
        out[:, t] = state[0]
    return out, state


# ------------------------------------------------------------------------------------------
# quantising activations and cells


def quantize_s8(v: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """``clamp(round(v / scale) + zp, -128, 127)`` (round half to even), int8 (TFLite's QUANTIZE)."""
    return np.clip(np.rint(np.asarray(v, np.float64) / scale) + zp, -128, 127).astype(np.int8)


def quantize_s16(v: np.ndarray, scale: float) -> np.ndarray:
    """``clamp(round(v / scale), -32767, 32767)`` (round half to even), int16, symmetric: the
    int16 input (TFLite's 16x8 activations, zero point 0, -32768 unused)."""
    return np.clip(np.rint(np.asarray(v, np.float64) / scale), -32767, 32767).astype(np.int16)


def symmetric_params_s16(lo: float, hi: float) -> tuple[float, int]:
    """int16 scale and zero point (always 0) covering ``[lo, hi]``: ``s = max(|lo|, |hi|) / 32767``."""
    m = max(abs(float(lo)), abs(float(hi)))
    return (m / 32767.0 if m > 0 else 1.0 / 32767), 0


def dequantize_s8(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """``scale (q - zp)`` as float64."""
    return scale * (np.asarray(q, np.float64) - zp)


def asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point covering ``[min(lo, 0), max(hi, 0)]`` with 0 exact (TFLite's
    ``ChooseQuantizationParams``: ``s = (hi - lo) / 255``, ``zp = round(-128 - lo / s)``)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0 / 127, 0
    s = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / s), -128, 127))
    return s, zp


def _quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: ``s[r] = max|W[r]| / 127``, ``W8 = round(W / s)`` (0 rows: s = 1)."""
    w = np.asarray(w, np.float64)
    m = np.max(np.abs(w), axis=1) if w.shape[1] else np.zeros(w.shape[0])
    s = np.where(m > 0, m / 127.0, 1.0)
    return np.clip(np.rint(w / s[:, None]), -127, 127).astype(np.int8), s


def _bias_eff(b: np.ndarray | None, W8: np.ndarray, s_in: float, s_w: np.ndarray, zp: int) -> np.ndarray:
    bq = np.zeros(W8.shape[0]) if b is None else np.rint(np.asarray(b, np.float64) / (s_in * s_w))
    eff = bq - zp * W8.astype(np.int64).sum(axis=1)
    if np.any(np.abs(eff) >= 2 ** 30):
        raise ValueError("quantize: a bias is too large for int32 accumulation at these scales")
    return eff.astype(np.int32)


def quantize_cell(cell: str, weight_ih, weight_hh, bias_ih, bias_hh, *, x_range: tuple[float, float],
                  h_range: tuple[float, float], c_absmax: float = 1.0, pre_absmax: float = 1.0,
                  linear_before_reset: bool = True, activation: str = "gemmlowp",
                  input_dtype: str = "int8") -> IntCell:
    """A float cell (PyTorch layout, ``W (G*H, in)``) as an :class:`IntCell`.

    Parameters
    ----------
    x_range, h_range : calibrated (min, max) of the input and of h
    c_absmax : LSTM, calibrated max |c|: ``cell_shift = ceil(log2(c_absmax)) - 15`` (a power
        of two, as TFLite), clamped to [-15, -9]
    pre_absmax : RNN ReLU, calibrated max |pre-activation|: ``s_g = pre_absmax / 32767``
    activation : ``"gemmlowp"`` (TFLite's int16 sigmoid / tanh, the default) or ``"table"``
        (257-entry interpolated tables, :func:`~rnncore.quant.fixedpoint.sigmoid_table_q15`;
        GRU and RNN only)
    input_dtype : ``"int8"`` (asymmetric, the default) or ``"int16"`` (symmetric,
        :func:`symmetric_params_s16`; the accumulation bound of the module docstring is checked)
    """
    if cell not in CELLS:
        raise ValueError(f"quantize_cell: cell expected one of {CELLS}, got {cell!r}")
    w_ih8, s_wih = _quantize_rows(weight_ih)
    w_hh8, s_whh = _quantize_rows(weight_hh)
    H = w_hh8.shape[1]
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"quantize_cell: input_dtype expected one of {INPUT_DTYPES}, got {input_dtype!r}")
    s_x, zp_x = (symmetric_params_s16 if input_dtype == "int16" else asymmetric_params)(*x_range)
    if cell in ("lstm", "gru", "rnn_tanh"):
        h_range = (max(h_range[0], -1.0), min(h_range[1], 1.0))   # bounded by tanh / the blend
    s_h, zp_h = asymmetric_params(*h_range)
    gate_scale = 2.0 ** GATE_SHIFT
    if cell == "rnn_relu":
        gate_scale = max(float(pre_absmax), 1e-6) / 32767.0
    m_ih, e_ih = quantize_multipliers(s_x * s_wih / gate_scale)
    m_hh, e_hh = quantize_multipliers(s_h * s_whh / gate_scale)
    c = IntCell(cell, w_ih8.shape[1], H, w_ih8, w_hh8,
                _bias_eff(bias_ih, w_ih8, s_x, s_wih, zp_x), _bias_eff(bias_hh, w_hh8, s_h, s_whh, zp_h),
                m_ih, e_ih, m_hh, e_hh, 0, 0, s_x, zp_x, s_h, zp_h, linear_before_reset,
                gate_scale=gate_scale, activation=activation, input_dtype=input_dtype)
    if cell == "lstm":
        c.cell_shift = int(np.clip(math.ceil(math.log2(max(c_absmax, 2.0 ** -15))) - 15, -15, -9))
        c.m_h, c.e_h = fx.quantize_multiplier(2.0 ** -30 / s_h)
    elif cell == "gru":
        c.m_h, c.e_h = fx.quantize_multiplier(2.0 ** -15 / s_h)
        c.m_rh, c.e_rh = fx.quantize_multiplier(2.0 ** -30 / s_h)
    elif cell == "rnn_tanh":
        c.m_h, c.e_h = fx.quantize_multiplier(2.0 ** -15 / s_h)
    else:
        c.m_h, c.e_h = fx.quantize_multiplier(gate_scale / s_h)
    c.validate()
    return c


# ------------------------------------------------------------------------------------------
# whole models: calibration, quantisation, forward; the float model side by side


@dataclass
class IntHead:
    """The linear head on the int8 features, integer logits on one common scale::

        acc[r] = b_eff[r] + sum_k W8[r, k] h8[k]                 (int32; ~ logit / (s_x s_w[r]))
        y[r] = MBQM(acc[r], M_o[r])      M_o[r] = s_x s_w[r] / s_out,  s_out = s_x max_r s_w[r] / 2^8

    so ``logit[r] ~= s_out y[r]`` and the argmax needs no float.
    """

    w: np.ndarray             # (O, F) int8
    b: np.ndarray             # (O,) int32, zero point folded in
    m_o: np.ndarray           # (O,) int32
    e_o: np.ndarray           # (O,) int32
    out_scale: float
    activation: str = "none"

    @property
    def in_features(self) -> int:
        return int(self.w.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.w.shape[0])


def int_linear(head: IntHead, h8: np.ndarray) -> np.ndarray:
    """``h8 (B, F)`` int8 -> integer logits ``y (B, O)`` (int64 holding int32 values)."""
    return fx.mbqm(s8_matvec(head.w, h8, head.b), head.m_o, head.e_o)


@dataclass
class IntModel:
    """A unidirectional stack of :class:`IntCell` (+ optional last-step / per-step head)."""

    layers: list[IntCell]
    head: IntHead | None = None
    last_step: bool = False
    x_scale: float = field(init=False, default=1.0)
    x_zp: int = field(init=False, default=0)
    input_dtype: str = field(init=False, default="int8")

    def __post_init__(self):
        self.x_scale, self.x_zp = self.layers[0].x_scale, self.layers[0].x_zp
        self.input_dtype = self.layers[0].input_dtype

    def quantize_input(self, X: np.ndarray) -> np.ndarray:
        """Float inputs as the first layer's integers: :func:`quantize_s8` or, for
        ``input_dtype="int16"``, :func:`quantize_s16` with the model's input scale."""
        if self.input_dtype == "int16":
            return quantize_s16(X, self.x_scale)
        return quantize_s8(X, self.x_scale, self.x_zp)


@dataclass
class IntCalibration:
    """Ranges measured on the float model: per layer input (min, max), h (min, max), max |c|
    (LSTM), max |pre-activation| (RNN ReLU); ``input_dtype``, the model input's integer type
    the input range was chosen for (``calibrate_int``)."""

    x_range: list[tuple[float, float]]
    h_range: list[tuple[float, float]]
    c_absmax: list[float]
    pre_absmax: list[float]
    input_dtype: str = "int8"


def _float_step(cell: str, lbr: bool, w, x, h, c):
    """One float64 step of a cell (PyTorch equations) returning (h', c', pre)."""
    H = h.shape[1]
    gi = x @ np.asarray(w.weight_ih, np.float64).T + np.asarray(w.bias_ih, np.float64)
    W_hh, b_hh = np.asarray(w.weight_hh, np.float64), np.asarray(w.bias_hh, np.float64)
    gh = h @ W_hh.T + b_hh

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))
    if cell == "lstm":
        g = gi + gh
        i, f, gg, o = sig(g[:, :H]), sig(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]), sig(g[:, 3 * H:])
        c2 = f * c + i * gg
        return o * np.tanh(c2), c2, g
    if cell == "gru":
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        if lbr:
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        else:
            n = np.tanh(gi[:, 2 * H:] + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
        return (1 - z) * n + z * h, None, None
    pre = gi + gh
    return (np.tanh(pre) if cell == "rnn_tanh" else np.maximum(pre, 0)), None, pre


def _check_unidirectional(spec: ModelSpec) -> None:
    if spec.embedding is not None:
        raise ValueError("integer model: an embedding is not supported (give float features)")
    if spec.last_step_attention is not None:
        raise ValueError("integer model: attention pooling over time (AttentionPool) is not supported; "
                         "integer models pool the last step (LastStep) or none")
    if spec.last_step_mean:
        raise ValueError("integer model: mean pooling over time (MaskedMean) is not supported; integer "
                         "models pool the last step (LastStep) or none")
    if spec.last_step_max:
        raise ValueError("integer model: max pooling over time (MaskedMax) is not supported; integer "
                         "models pool the last step (LastStep) or none")
    for k, layer in enumerate(spec.layers):
        if layer.num_directions != 1:
            raise ValueError(f"integer model: layer {k} is bidirectional; only unidirectional "
                             "stacks are supported")
        if layer.cell not in CELLS:
            raise ValueError(f"integer model: layer {k} cell expected one of {CELLS}, got {layer.cell!r}")
        if getattr(layer, "proj_size", 0):
            raise ValueError(f"integer model: layer {k} has an LSTM projection (unsupported)")


def _last(x: np.ndarray, lengths) -> np.ndarray:
    """``x (B, T, F)`` at each sequence's last valid step (``lengths - 1``; all T if None)."""
    if lengths is None:
        return x[:, -1]
    lengths = np.asarray(lengths)
    if np.any(lengths < 1) or np.any(lengths > x.shape[1]):
        raise ValueError(f"lengths: expected values in [1, {x.shape[1]}], "
                         f"got [{lengths.min()}, {lengths.max()}]")
    return x[np.arange(x.shape[0]), lengths - 1]


def float_sequence(spec: ModelSpec, X: np.ndarray, lengths=None, record=None) -> np.ndarray:
    """The float64 model the integer one approximates: ``X (B, T, I)`` -> head output
    ((B, O) with last-step pooling at ``lengths - 1``, else (B, T, O)) or the last layer's h
    sequence. ``record(layer, x, h, c, pre)`` sees the valid rows of every step."""
    spec = spec_from_model(spec)
    _check_unidirectional(spec)
    x = np.asarray(X, np.float64)
    B, T = x.shape[:2]
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    for k, layer in enumerate(spec.layers):
        w = layer.directions[0]
        h = np.zeros((B, layer.hidden_size))
        c = np.zeros_like(h)
        ys = np.zeros((B, T, layer.hidden_size))
        for t in range(T):
            h, c2, pre = _float_step(layer.cell, layer.reset_after, w, x[:, t], h, c)
            c = c if c2 is None else c2
            ys[:, t] = h
            live = t < lens
            if record is not None and live.any():
                record(k, x[live, t], h[live], None if c2 is None else c2[live],
                       None if pre is None else pre[live])
        x = ys
    if spec.last_step:
        x = _last(x, lengths)
    if spec.head is None:
        return x
    y = x @ np.asarray(spec.head.weight, np.float64).T
    if spec.head.bias is not None:
        y = y + np.asarray(spec.head.bias, np.float64)
    return y


INPUT_RANGES = ("mse", "minmax")     # calibrate_int(input_range=...)


def mse_range(v: np.ndarray, candidates: int = 100, max_values: int = 1 << 20,
              dtype: str = "int8") -> tuple[float, float]:
    """The int8 range of the values ``v`` (any shape) whose quantisation error is smallest::

        (lo, hi) = argmin over a in {1/n, 2/n, ..., 1} of  mean((dq(q(v)) - v)^2)
                   with (lo, hi) = a (min v, max v),  q / dq: asymmetric_params(lo, hi)

    Both ends shrink by the same factor (the zero point keeps its place); values outside are
    clipped. ``a = 1`` is min/max, so the result is never worse than min/max on ``v``. More than
    ``max_values`` values are subsampled with a fixed stride.

    ``dtype="int16"``: the same search for the symmetric int16 input (65535 levels,
    :func:`symmetric_params_s16` / :func:`quantize_s16`), over ``(lo, hi) = a (-m, m)``,
    ``m = max |v|``.
    """
    if dtype not in INPUT_DTYPES:
        raise ValueError(f"mse_range: dtype expected one of {INPUT_DTYPES}, got {dtype!r}")
    v = np.asarray(v, np.float64).ravel()
    if v.size == 0:
        raise ValueError("mse_range: v expected at least one value, got an empty array")
    if v.size > max_values:
        v = v[:: -(-v.size // max_values)]
    lo0, hi0 = float(v.min()), float(v.max())
    if dtype == "int16":
        hi0 = max(abs(lo0), abs(hi0))
        lo0 = -hi0
    best = (np.inf, lo0, hi0)
    for a in np.arange(candidates, 0, -1) / candidates:
        if dtype == "int16":
            s, _ = symmetric_params_s16(a * lo0, a * hi0)
            err = float(np.mean((s * quantize_s16(v, s).astype(np.float64) - v) ** 2))
        else:
            s, zp = asymmetric_params(a * lo0, a * hi0)
            err = float(np.mean((dequantize_s8(quantize_s8(v, s, zp), s, zp) - v) ** 2))
        if err < best[0]:
            best = (err, a * lo0, a * hi0)
    return best[1], best[2]


def calibrate_int(model, X: np.ndarray, lengths=None, input_range: str = "mse",
                  input_dtype: str = "int8") -> IntCalibration:
    """Ranges for :func:`quantize_int_model` from representative inputs ``X (B, T, I)`` (valid
    steps ``t < lengths`` only).

    ``input_range``: the model input's int8 range, ``"mse"`` (the default: :func:`mse_range`,
    the range of least squared quantisation error on the valid steps of X, which clips rare
    outliers) or ``"minmax"`` (min and max of X, TFLite's post-training rule). Every other range
    (h, the LSTM cell, ReLU pre-activations) is the min / max seen.

    ``input_dtype``: the model input's integer type the input range is chosen for, ``"int8"``
    (asymmetric, 255 steps) or ``"int16"`` (symmetric, 65534 steps: ``"minmax"`` gives
    ``(-m, m)``, ``m = max |X|``; ``"mse"`` searches ``a (-m, m)`` with the int16 quantiser).
    :func:`quantize_int_model` builds the input layer for it.

    The same data rules as the q8 :func:`~rnncore.quant.calibrate` (its degenerate-data checks
    warn with :class:`~rnncore.quant.CalibrationWarning`).
    """
    if input_range not in INPUT_RANGES:
        raise ValueError(f"calibrate_int: input_range expected one of {INPUT_RANGES}, got {input_range!r}")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"calibrate_int: input_dtype expected one of {INPUT_DTYPES}, got {input_dtype!r}")
    import warnings

    from rnncore.quant.calibrate import CalibrationWarning, _degenerate
    spec = spec_from_model(model)
    _check_unidirectional(spec)
    X = np.asarray(X, np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("calibrate_int: X contains NaN or Inf")
    problems = _degenerate(X, lengths, False)
    if problems:
        warnings.warn("calibrate_int: degenerate calibration data: " + "; ".join(problems),
                      CalibrationWarning, stacklevel=2)
    n = len(spec.layers)
    xr = [(np.inf, -np.inf)] * n
    hr = [(np.inf, -np.inf)] * n
    ca, pa = [0.0] * n, [0.0] * n

    def record(k, x, h, c, pre):
        xr[k] = (min(xr[k][0], float(x.min())), max(xr[k][1], float(x.max())))
        hr[k] = (min(hr[k][0], float(h.min())), max(hr[k][1], float(h.max())))
        if c is not None:
            ca[k] = max(ca[k], float(np.abs(c).max()))
        if pre is not None:
            pa[k] = max(pa[k], float(np.abs(pre).max()))
    float_sequence(spec, X, lengths, record)
    if input_range == "mse":
        T = X.shape[1]
        lens = np.full(X.shape[0], T) if lengths is None else np.asarray(lengths)
        xr[0] = mse_range(X[np.arange(T)[None, :] < lens[:, None]], dtype=input_dtype)
    elif input_dtype == "int16":
        m = max(abs(xr[0][0]), abs(xr[0][1]))
        xr[0] = (-m, m)
    return IntCalibration(xr, hr, ca, pa, input_dtype)


def quantize_int_model(model, calibration: IntCalibration, activation: str = "gemmlowp",
                       input_dtype: str | None = None) -> IntModel:
    """The :class:`IntModel` of a float model (``rc.nn`` model or :class:`ModelSpec`).

    ``activation``: the sigmoid / tanh of every layer, ``"gemmlowp"`` (TFLite's) or ``"table"``
    (GRU and RNN layers only; an LSTM layer is refused). ``input_dtype``: the model input's
    integer type, ``"int8"`` or ``"int16"`` (the first layer's input only; deeper layers take
    the previous layer's int8 h); None takes ``calibration.input_dtype``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"quantize_int_model: activation expected one of {ACTIVATIONS}, got {activation!r}")
    input_dtype = calibration.input_dtype if input_dtype is None else input_dtype
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"quantize_int_model: input_dtype expected one of {INPUT_DTYPES}, "
                         f"got {input_dtype!r}")
    spec = spec_from_model(model)
    _check_unidirectional(spec)
    layers = []
    for k, layer in enumerate(spec.layers):
        w = layer.directions[0]
        # a deeper layer's input is the previous layer's h8: the same scale and zero point
        x_range = calibration.x_range[k] if k == 0 else None
        cell = quantize_cell(layer.cell, w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh,
                             x_range=x_range or (0.0, 1.0), h_range=calibration.h_range[k],
                             c_absmax=calibration.c_absmax[k], pre_absmax=calibration.pre_absmax[k],
                             linear_before_reset=layer.reset_after, activation=activation,
                             input_dtype=input_dtype if k == 0 else "int8")
        if k > 0:
            cell = _requantize_input(cell, layer, layers[-1])
        layers.append(cell)
    head = None
    if spec.head is not None:
        if spec.head.activation not in ("none", "softmax"):
            raise ValueError(f"integer model: head activation {spec.head.activation!r} unsupported")
        w8, s_w = _quantize_rows(spec.head.weight)
        last = layers[-1]
        out_scale = last.h_scale * float(s_w.max()) / 2 ** 8
        m_o, e_o = quantize_multipliers(last.h_scale * s_w / out_scale)
        head = IntHead(w8, _bias_eff(spec.head.bias, w8, last.h_scale, s_w, last.h_zp), m_o, e_o,
                       out_scale, spec.head.activation)
    return IntModel(layers, head, spec.last_step)


def _requantize_input(cell: IntCell, layer, prev: IntCell) -> IntCell:
    """Re-derive the input-side parameters of ``cell`` for the previous layer's h8 scale."""
    w = layer.directions[0]
    s_x, zp_x = prev.h_scale, prev.h_zp
    w_ih8, s_wih = _quantize_rows(w.weight_ih)
    cell.x_scale, cell.x_zp = s_x, zp_x
    cell.b_ih = _bias_eff(w.bias_ih, w_ih8, s_x, s_wih, zp_x)
    cell.m_ih, cell.e_ih = quantize_multipliers(s_x * s_wih / cell.gate_scale)
    return cell


def int_forward(model: IntModel, X: np.ndarray, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    """Integer inference on float inputs ``X (B, T, I)`` (quantised with the model's input scale
    and type, :meth:`IntModel.quantize_input`);
    last-step pooling takes each sequence's step ``lengths - 1``.

    Returns
    -------
    y : the head output as reals (``s_out y_int``; softmax if the head has it) or the last
        layer's h dequantised; (B, O) with last-step pooling, else (B, T, O)
    h8 : the last layer's int8 h sequence (B, T, H)
    """
    x8 = model.quantize_input(X)
    for cell in model.layers:
        x8, _ = int_cell_sequence(cell, x8)
    h8 = x8
    last = model.layers[-1]
    feats = _last(h8, lengths) if model.last_step else h8
    if model.head is None:
        return dequantize_s8(feats, last.h_scale, last.h_zp), h8
    yq = int_linear(model.head, feats.reshape(-1, feats.shape[-1]))
    y = (model.head.out_scale * yq).reshape(feats.shape[:-1] + (-1,))
    if model.head.activation == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
    return y, h8


def error_table(model, X: np.ndarray, calibration_X: np.ndarray | None = None, lengths=None,
                calibration_lengths=None) -> dict:
    """The integer model next to the float one on ``X``: max and mean |y_int - y_float|, the
    float output's max |y|, and (for a head) the argmax agreement.
    """
    spec = spec_from_model(model)
    cal = (calibrate_int(spec, X, lengths) if calibration_X is None
           else calibrate_int(spec, calibration_X, calibration_lengths))
    qm = quantize_int_model(spec, cal)
    yf = float_sequence(spec, X, lengths)
    yq, _ = int_forward(qm, X, lengths)
    err = np.abs(yq - yf)
    out = {"max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
           "max_abs_float": float(np.abs(yf).max())}
    if spec.head is not None:
        out["argmax_agreement"] = float(np.mean(yq.argmax(-1) == yf.argmax(-1)))
    return out
