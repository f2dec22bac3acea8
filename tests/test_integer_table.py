"""The table activations of the integer path (``IntCell.activation = "table"``): the NumPy spec
(rnncore.quant.fixedpoint) against the real functions, the C tables against the spec's, the C
functions against the spec on every int16 input (the bare-metal rows: ``make -C csrc
test-cortex-m``), and a table GRU / RNN against its float model."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnncore.quant import fixedpoint as fx
from rnncore.quant import integer as qi

ROOT = Path(__file__).resolve().parents[1]
INT_SRC = ROOT / "csrc" / "src" / "int"
CC = shutil.which("cc") or shutil.which("gcc")
X = np.arange(-32768, 32768, dtype=np.int64)


def _real(fn: str, x: np.ndarray) -> np.ndarray:
    v = x / 4096.0
    return 1.0 / (1.0 + np.exp(-v)) if fn == "sigmoid" else np.tanh(v)


def test_tables_are_the_rounded_functions_at_1_32_steps():
    # independent of fixedpoint._table: Python's decimal-free float64 values at j / 32
    for table, f in ((fx.SIGMOID_TABLE, lambda v: 1 / (1 + math.exp(-v))), (fx.TANH_TABLE, math.tanh)):
        assert table.shape == (257,)
        for j in (0, 1, 31, 32, 100, 255, 256):
            want = min(round(32768 * f(j / 32)), 32767)
            assert table[j] == want
    assert fx.SIGMOID_TABLE[0] == 16384 and fx.TANH_TABLE[0] == 0 and fx.TANH_TABLE[-1] == 32767


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_table_functions_are_close_monotone_and_symmetric(fn):
    y = (fx.sigmoid_table_q15 if fn == "sigmoid" else fx.tanh_table_q15)(X)
    err = np.abs(y / 32768.0 - _real(fn, X))
    assert err.max() < (5e-5 if fn == "sigmoid" else 1.5e-4)
    assert np.all(np.diff(y) >= 0)
    assert y.min() >= -32768 and y.max() <= 32767
    inner = X[1:]                                    # -32768 has no int16 mirror image
    if fn == "sigmoid":
        assert np.array_equal(y[1:] + y[1:][::-1], np.full(inner.size, 32768))
        assert y[X == 0][0] == 16384
    else:
        assert np.array_equal(y[1:], -y[1:][::-1])
    # the interpolation at a few hand-computed points: x = 48 (j = 0, t = 48), x = 4096 (j = 32)
    T = fx.SIGMOID_TABLE if fn == "sigmoid" else fx.TANH_TABLE
    assert y[X == 48][0] == T[0] + (48 * (T[1] - T[0]) + 64) // 128
    assert y[X == 4096][0] == T[32]


def test_c_tables_equal_the_spec():
    text = (INT_SRC / "int_cells.c").read_text()
    for name, table in (("rnc_s16_sigmoid_table", fx.SIGMOID_TABLE), ("rnc_s16_tanh_table", fx.TANH_TABLE)):
        m = re.search(name + r"\[RNC_S16_TABLE_SIZE\] = \{([^}]*)\}", text)
        assert m, name
        vals = [int(v) for v in m.group(1).replace("\n", " ").split(",") if v.strip()]
        assert vals == table.tolist(), name


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_c_table_functions_equal_the_spec_on_every_input(tmp_path):
    prog = tmp_path / "t.c"
    prog.write_text('#include <stdio.h>\n#include "s16_table.h"\n'
                    "int main(void) { for (long x = -32768; x < 32768; x++) printf(\"%d %d\\n\", "
                    "(int)rnc_s16_sigmoid_table_q15((int32_t)x), (int)rnc_s16_tanh_table_q15((int32_t)x)); "
                    "return 0; }\n")
    exe = tmp_path / "t"
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{INT_SRC}", str(prog),
                    str(INT_SRC / "int_cells.c"), "-o", str(exe)], check=True)
    out = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(),
                   np.int64).reshape(-1, 2)
    assert np.array_equal(out[:, 0], fx.sigmoid_table_q15(X))
    assert np.array_equal(out[:, 1], fx.tanh_table_q15(X))


def test_table_is_refused_for_the_lstm_and_unknown_families():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'table' is for GRU and RNN"):
        qi.quantize_cell("lstm", rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), None, None,
                         x_range=(-1, 1), h_range=(-1, 1), activation="table")
    with pytest.raises(ValueError, match="activation expected one of"):
        qi.quantize_int_model(object(), None, activation="lut")


@pytest.mark.parametrize("cell,lbr", [("gru", True), ("gru", False), ("rnn_tanh", True)])
def test_table_cells_track_the_float_cell(cell, lbr):
    # a random cell and data; the float64 cell is the reference. The table family must be at least
    # as close to it as gemmlowp's (its functions are closer to the real ones), up to int8 noise.
    rng = np.random.default_rng(5)
    H, I, B, T = 24, 6, 16, 30
    G = 3 if cell == "gru" else 1
    w_ih, w_hh = rng.standard_normal((G * H, I)) * 0.5, rng.standard_normal((G * H, H)) * 0.3
    b_ih, b_hh = rng.standard_normal(G * H) * 0.2, rng.standard_normal(G * H) * 0.2
    x = rng.standard_normal((B, T, I))

    class W:
        weight_ih, weight_hh, bias_ih, bias_hh = w_ih, w_hh, b_ih, b_hh
    h = np.zeros((B, H))
    hs = []
    for t in range(T):
        h, _, _ = qi._float_step(cell, lbr, W, x[:, t], h, None)
        hs.append(h)
    hf = np.stack(hs, 1)
    errs = {}
    for act in qi.ACTIVATIONS:
        c = qi.quantize_cell(cell, w_ih, w_hh, b_ih, b_hh, x_range=(x.min(), x.max()),
                             h_range=(hf.min(), hf.max()), linear_before_reset=lbr, activation=act)
        h8, _ = qi.int_cell_sequence(c, qi.quantize_s8(x, c.x_scale, c.x_zp))
        errs[act] = np.abs(qi.dequantize_s8(h8, c.h_scale, c.h_zp) - hf)
    assert errs["table"].mean() < 0.02                   # ~2 int8 steps of h (2 / 255 each)
    assert errs["table"].mean() <= errs["gemmlowp"].mean() * 1.05
