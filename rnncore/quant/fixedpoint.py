"""Fixed-point arithmetic of the fully-integer path, bit for bit as TFLite's integer kernels.

Every function works elementwise on integer NumPy arrays (any shape) and returns ``int64``
arrays whose values are those of the C types named in the docstrings; wrap-around and
saturation are written out where the C code has them. Sources (TensorFlow Lite,
``kernels/internal/common.h``, ``quantization_util.cc``, and gemmlowp's ``fixedpoint.h``,
which TFLite's integer LSTM calls for its int16 sigmoid and tanh):

* a real multiplier ``M > 0`` is stored as ``(m, shift)``, ``M ~= m * 2^(shift - 31)``,
  ``m`` in ``[2^30, 2^31)`` (:func:`quantize_multiplier`);
* ``SRDHM(a, b) = round(a * b / 2^31)``, ties upwards (+1/2 -> 1, -1/2 -> 0), saturating the one overflow
  ``a = b = -2^31`` (:func:`srdhm`);
* ``RDBPOT(x, e) = round(x / 2^e)``, ties away from zero (:func:`rdbpot`);
* ``MBQM(x, m, shift) = RDBPOT(SRDHM(sat32(x * 2^max(shift, 0)), m), max(-shift, 0))`` (two
  roundings: TFLite's default, not its ``TFLITE_SINGLE_ROUNDING`` build; TFLite leaves the
  overflow of ``x * 2^shift`` undefined, rnncore saturates it) (:func:`mbqm`);
* ``sigmoid_q15(x, k)`` / ``tanh_q15(x, k)``: the int16 input has ``k`` integer bits (Q k.15-k),
  the output is Q0.15; gemmlowp's ``logistic`` and ``tanh`` on ``FixedPoint<int16_t, k>``.
"""

from __future__ import annotations

import math

import numpy as np

I64 = np.int64
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _a(x) -> np.ndarray:
    return np.asarray(x, dtype=I64)


def wrap16(x) -> np.ndarray:
    """``(int16_t)x``: two's-complement wrap-around."""
    return ((_a(x) + (1 << 15)) & 0xFFFF) - (1 << 15)


def sat16(x) -> np.ndarray:
    """Saturate to ``[-2^15, 2^15 - 1]``."""
    return np.clip(_a(x), INT16_MIN, INT16_MAX)


def sat8(x) -> np.ndarray:
    """Saturate to ``[-128, 127]``."""
    return np.clip(_a(x), -128, 127)


def _trunc_div(a: np.ndarray, d: int) -> np.ndarray:
    """C's integer division (rounds towards zero) by a positive ``d``."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


# ------------------------------------------------------------------------------------------
# multiplier + shift requantisation (int32)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= m * 2^(shift - 31)``, ``2^30 <= m < 2^31``.

    ``real = q * 2^shift`` with ``q`` in ``[0.5, 1)`` (``frexp``), ``m = round(q * 2^31)`` (ties
    away from zero, in double precision); ``m = 2^31`` becomes ``2^30`` with ``shift + 1``. A
    multiplier below ``2^-32`` is 0.
    """
    if not (real >= 0 and math.isfinite(real)):
        raise ValueError(f"quantize_multiplier: real expected finite and >= 0, got {real!r}")
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    m = int(math.floor(q * (1 << 31) + 0.5))          # std::round of a positive double
    if m == 1 << 31:
        m, shift = m // 2, shift + 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"quantize_multiplier: real {real!r} >= 2^30 cannot be represented")
    return m, shift


def srdhm(a, b) -> np.ndarray:
    """``SaturatingRoundingDoublingHighMul(int32 a, int32 b)``: ``(a b + nudge) / 2^31``.

    ``nudge = 2^30`` if ``a b >= 0`` else ``1 - 2^30``; the division truncates; ``a = b = -2^31``
    gives ``2^31 - 1``.
    """
    a, b = _a(a), _a(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div(ab + nudge, 1 << 31)
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, out)


def rdbpot(x, exponent) -> np.ndarray:
    """``RoundingDivideByPOT(x, e)``: ``x / 2^e`` rounded to nearest, ties away from zero.

    ``mask = 2^e - 1``; ``remainder = x & mask``; ``threshold = mask >> 1`` (+1 if ``x < 0``);
    ``(x >> e) + (remainder > threshold)``.
    """
    x, e = _a(x), _a(exponent)
    mask = (I64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mbqm(x, m, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int32 x, m, shift)`` = ``x * m * 2^(shift - 31)``, rounded.

    ``RDBPOT(SRDHM(sat32(x * 2^left), m), right)`` with ``left = max(shift, 0)``,
    ``right = max(-shift, 0)``.
    """
    x, m, shift = _a(x), _a(m), _a(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(np.clip(x * (I64(1) << left), INT32_MIN, INT32_MAX), m), right)


def cwise_mul_shift(a, b, shift) -> np.ndarray:
    """TFLite's ``CwiseMul(int16 a, int16 b, shift)``: ``(int16_t)RDBPOT(a b, shift)`` (wraps)."""
    return wrap16(rdbpot(_a(a) * _a(b), shift))


# ------------------------------------------------------------------------------------------
# gemmlowp FixedPoint<int16_t, k>: raw int16 values with 15 - k fractional bits


def _c16(raw32: int) -> int:
    """gemmlowp's ``GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT`` for int16: ``RDBPOT(raw32, 16)``."""
    return int(rdbpot(raw32, 16))


def srdhm16(a, b) -> np.ndarray:
    """int16 ``SaturatingRoundingDoublingHighMul``: ``(a b + nudge) / 2^15``, nudge ``2^14`` or
    ``1 - 2^14``, truncated; ``a = b = -2^15`` gives ``2^15 - 1``."""
    a, b = _a(a), _a(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = wrap16(_trunc_div(ab + nudge, 1 << 15))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, out)


def sat_mul_pot16(x, exponent: int) -> np.ndarray:
    """``SaturatingRoundingMultiplyByPOT<e>`` on int16: ``x 2^e``, saturating for ``e > 0``,
    ``RDBPOT(x, -e)`` for ``e < 0``."""
    x = _a(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (15 - exponent)) - 1
    out = wrap16(x << exponent)
    out = np.where(x > threshold, INT16_MAX, out)
    return np.where(x < -threshold, INT16_MIN, out)


def rounding_half_sum16(a, b) -> np.ndarray:
    """int16 ``RoundingHalfSum``: ``(a + b + sign(a + b)) / 2``, truncated (sign(0) = +1)."""
    s = _a(a) + _a(b)
    return wrap16(_trunc_div(s + np.where(s >= 0, 1, -1), 2))


_ONE_Q15 = INT16_MAX                     # FixedPoint<int16_t, 0>::One(): 1 is not representable


def _exp_on_interval_q15(a: np.ndarray) -> np.ndarray:
    """``exp(a)`` for ``a`` in ``[-1/4, 0)``, Q0.15: Taylor series around -1/8 (gemmlowp)."""
    constant_term = _c16(1895147668)               # exp(-1/8)
    constant_1_over_3 = _c16(715827883)
    x = wrap16(a + (1 << 12))                      # x = a + 1/8
    x2 = srdhm16(x, x)
    x3 = srdhm16(x2, x)
    x4 = srdhm16(x2, x2)
    x4_over_4 = sat_mul_pot16(x4, -2)
    poly = sat_mul_pot16(wrap16(srdhm16(wrap16(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return sat16(constant_term + srdhm16(constant_term, wrap16(x + poly)))   # saturating add


_EXP_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242)]    # exp(-2^e) in Q0.31


def exp_on_negative_values_q15(a, int_bits: int) -> np.ndarray:
    """``exp(a)`` for ``a <= 0`` given with ``int_bits`` integer bits; Q0.15 result (gemmlowp).

    ``a = q - r`` with ``q`` in ``[-1/4, 0)`` (``a mod 1/4`` minus 1/4): ``exp(a) = exp(q) *
    prod exp(-2^e)`` over the bits ``2^e`` set in ``r``.
    """
    a = _a(a)
    frac = 15 - int_bits
    quarter = 1 << (frac - 2)
    a_mod_quarter_minus_quarter = wrap16((a & (quarter - 1)) - quarter)
    result = _exp_on_interval_q15(sat_mul_pot16(a_mod_quarter_minus_quarter, int_bits))
    remainder = wrap16(a_mod_quarter_minus_quarter - a)
    for e, mult in _EXP_BARREL:
        if int_bits > e:
            bit = (remainder & (1 << (frac + e))) != 0
            result = np.where(bit, srdhm16(result, _c16(mult)), result)
    if int_bits > 5:
        clamp = _c16(-(1 << (36 - int_bits)))      # -32
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, _ONE_Q15, result)


def _newton_reciprocal_q13(half_denominator: np.ndarray) -> np.ndarray:
    """``1 / half_denominator`` for ``half_denominator`` in [1/2, 1] (Q0.15) by three
    Newton-Raphson steps from ``48/17 - 32/17 d``, Q2.13 (gemmlowp)."""
    one_q13 = 1 << 13
    x = wrap16(_c16(1515870810) + srdhm16(half_denominator, _c16(-1010580540)))
    for _ in range(3):
        one_minus_dx = wrap16(one_q13 - srdhm16(half_denominator, x))
        x = wrap16(x + sat_mul_pot16(srdhm16(x, one_minus_dx), 2))
    return x


def sigmoid_q15(a, int_bits: int = 3) -> np.ndarray:
    """gemmlowp ``logistic``: ``1 / (1 + exp(-|a|))`` mirrored for ``a < 0``; 1/2 at 0; Q0.15.

    For ``a > 0``: ``1 / (1 + e) = (1/2) / ((1 + e) / 2)`` with ``e = exp(-a)``.
    """
    a = _a(a)
    positive = a > 0
    abs_a = np.where(positive, a, wrap16(-a))
    e = exp_on_negative_values_q15(wrap16(-abs_a), int_bits)
    x = _newton_reciprocal_q13(rounding_half_sum16(e, _ONE_Q15))
    if_positive = sat_mul_pot16(x, 1)                    # Rescale<0>(x / 2)
    if_negative = wrap16(_ONE_Q15 - if_positive)
    return np.where(a == 0, 1 << 14, np.where(positive, if_positive, if_negative))


def tanh_q15(a, int_bits: int = 3) -> np.ndarray:
    """gemmlowp ``tanh``: ``(1 - e) / (1 + e)``, ``e = exp(-2|a|)``, odd; Q0.15."""
    a = _a(a)
    negative = a < 0
    n = np.where(negative, a, wrap16(-a))                # -|a|
    e = exp_on_negative_values_q15(n, int_bits + 1)       # the same raw bits, read as 2n
    x = _newton_reciprocal_q13(rounding_half_sum16(e, _ONE_Q15))
    t = sat_mul_pot16(wrap16(x - (1 << 13)), 2)           # Rescale<0>(1/d - 1)
    return np.where(a == 0, 0, np.where(negative, wrap16(-t), t))


# ------------------------------------------------------------------------------------------
# the table activations (IntCell activation="table"): 257-entry int16 tables, interpolated
#
# For a Q3.12 input x (the gate pre-activations), entry j of a table is the function at
# j / 32 (= j 2^7 / 2^12), j = 0..256, so the 256 intervals cover [0, 8]:
#     u = min(|x|, 2^15 - 1),  j = u >> 7,  t = u & 127
#     p = T[j] + ((t (T[j + 1] - T[j]) + 64) >> 7)          (the interval's chord, rounded)
#     sigmoid: x >= 0 -> p, x < 0 -> 2^15 - p                 (sigma(-x) = 1 - sigma(x))
#     tanh:    x >= 0 -> p, x < 0 -> -p                        (odd)
# The same kind of table as CMSIS-NN's int16 activations (a sampled sigmoid with linear
# interpolation), with rnncore's own sampling: both functions have their own table, so tanh
# keeps the full step (2 sigma(2x) - 1 would halve it).

TABLE_SHIFT = 7                       # input bits per table interval (Q3.12: 1/32)
TABLE_SIZE = (1 << (15 - TABLE_SHIFT)) + 1


def _table(fn) -> np.ndarray:
    """``T[j] = min(floor(2^15 fn(j / 32) + 1/2), 2^15 - 1)``, j = 0..256, as int64."""
    vals = [min(math.floor(32768.0 * fn(j / 32.0) + 0.5), INT16_MAX) for j in range(TABLE_SIZE)]
    return np.array(vals, np.int64)


SIGMOID_TABLE = _table(lambda v: 1.0 / (1.0 + math.exp(-v)))
TANH_TABLE = _table(math.tanh)


def _table_interp(x, table: np.ndarray) -> np.ndarray:
    """``T[j] + ((t (T[j + 1] - T[j]) + 64) >> 7)`` at ``u = min(|x|, 2^15 - 1)``."""
    u = np.minimum(np.abs(_a(x)), INT16_MAX)
    j = u >> TABLE_SHIFT
    t = u & ((1 << TABLE_SHIFT) - 1)
    lo = table[j]
    return lo + ((t * (table[j + 1] - lo) + (1 << (TABLE_SHIFT - 1))) >> TABLE_SHIFT)


def sigmoid_table_q15(x) -> np.ndarray:
    """Table sigmoid of a Q3.12 int16 ``x``, Q0.15: ``p`` for ``x >= 0``, ``2^15 - p`` below 0."""
    p = _table_interp(x, SIGMOID_TABLE)
    return np.where(_a(x) < 0, (1 << 15) - p, p)


def tanh_table_q15(x) -> np.ndarray:
    """Table tanh of a Q3.12 int16 ``x``, Q0.15: ``p`` for ``x >= 0``, ``-p`` below 0."""
    p = _table_interp(x, TANH_TABLE)
    return np.where(_a(x) < 0, -p, p)
