"""Write the integer-cell test vectors (a C header) from the NumPy spec rnncore.quant.integer.

    python3 csrc/tests/gen_int_vectors.py OUT.h [--small]

The header is self-contained C99 (it includes rnncore_int.h) and needs no file I/O, so the same
file drives the x86 test (csrc/tests/test_int_cells.c, ``make -C csrc test-int``) and bare-metal
images. It defines::

    typedef struct {
        const char *name;
        rnc_int_cell cell;       // the cell, pointing at const arrays of this header
        int steps;               // T
        const int8_t *x;         // (T, I) int8 inputs (NULL for an int16-input cell)
        const int16_t *x16;      // (T, I) int16 inputs (cell.input_dtype RNC_INT_IN_S16), else NULL
        const int8_t *h8;        // (T, H) expected h8 after every step
        const int16_t *s16;      // (T, H) expected s16 after every step (NULL for RNNs)
    } rnc_int_vector;
    static const rnc_int_vector rnc_int_vectors[RNC_INT_NVECTORS];

and one linear head case: ``rnc_int_head_vector`` (an ``rnc_int_linear``, 64 -> 12), its
``RNC_INT_HEAD_NX`` inputs ``head_x`` (8 x 64 int8) and expected int32 logits ``head_y`` (8 x 12).

Every case starts from the zero state (``rnc_int_cell_reset``: h8 = h_zp, s16 = 0), batch 1.
The cases cover every cell kind and GRU form, the LSTMs of tests/data/lstm_int8*.tflite (the
parameters LiteRT runs, see tests/test_quant_int.py), saturated int8 inputs, a zero weight row,
multipliers above 1 (positive shifts), a clipped LSTM cell, the H = 64, I = 16 GRU of the
issue's Cortex-M target, and int16-input cells (``input_dtype="int16"``: every kind, I not a
multiple of 4, rows at the int32 accumulation bound with saturated inputs). ``--small`` leaves out the TFLite case (no ai-edge-litert needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rnncore.quant import integer as qi  # noqa: E402

KIND = {"lstm": "RNC_INT_LSTM", "gru": "RNC_INT_GRU", "rnn_tanh": "RNC_INT_RNN_TANH",
        "rnn_relu": "RNC_INT_RNN_RELU"}


def _cell(kind, I, H, seed, *, x_range=(-3.0, 3.0), h_range=(-0.9, 0.9), c_absmax=3.0, pre_absmax=6.0,
          lbr=True, zero_row=False, w_std=0.5, activation="gemmlowp", input_dtype="int8"):
    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3}.get(kind, 1)
    w_ih = rng.standard_normal((G * H, I)) * w_std
    w_hh = rng.standard_normal((G * H, H)) * w_std / np.sqrt(H / 8)
    if zero_row:
        w_ih[1] = 0
    b_ih, b_hh = rng.standard_normal(G * H) * 0.3, rng.standard_normal(G * H) * 0.3
    return qi.quantize_cell(kind, w_ih, w_hh, b_ih, b_hh, x_range=x_range, h_range=h_range,
                            c_absmax=c_absmax, pre_absmax=pre_absmax, linear_before_reset=lbr,
                            activation=activation, input_dtype=input_dtype)


def _inputs(cell, T, seed):
    """Half full-range int8 noise (saturates gates), half data quantised from N(0, 1) (int16
    cells: full-range int16 noise, -32768 included, and quantize_s16 data)."""
    rng = np.random.default_rng(seed)
    if cell.input_dtype == "int16":
        noise = rng.integers(-32768, 32768, (T // 2, cell.input_size))
        data = qi.quantize_s16(rng.standard_normal((T - T // 2, cell.input_size)), cell.x_scale)
        return np.concatenate([noise, data]).astype(np.int16)
    noise = rng.integers(-128, 128, (T // 2, cell.input_size))
    data = qi.quantize_s8(rng.standard_normal((T - T // 2, cell.input_size)), cell.x_scale, cell.x_zp)
    return np.concatenate([noise, data]).astype(np.int8)


def cases(small: bool = False):
    out = []
    if not small:
        from rnncore.quant.tflite import read_tflite_lstm
        cell, _ = read_tflite_lstm(ROOT / "tests" / "data" / "lstm_int8.tflite")
        out.append(("tflite_lstm", cell, _inputs(cell, 12, 1)))
        cell, _ = read_tflite_lstm(ROOT / "tests" / "data" / "lstm_int8_zp.tflite")
        out.append(("tflite_lstm_zp", cell, _inputs(cell, 12, 2)))
    specs = [
        ("lstm_i8_h16", dict(kind="lstm", I=8, H=16, seed=2)),
        ("lstm_clip_shift11", dict(kind="lstm", I=5, H=12, seed=3, c_absmax=12.0, zero_row=True)),
        ("gru_lbr1_i8_h16", dict(kind="gru", I=8, H=16, seed=4)),
        ("gru_lbr0_i8_h16", dict(kind="gru", I=8, H=16, seed=5, lbr=False, h_range=(-0.5, 0.95))),
        ("rnn_tanh_i8_h16", dict(kind="rnn_tanh", I=8, H=16, seed=6)),
        ("rnn_relu_big_scales", dict(kind="rnn_relu", I=8, H=16, seed=7, x_range=(-40.0, 40.0),
                                     h_range=(0.0, 30.0), pre_absmax=20.0)),
        ("gru_kws_i16_h64", dict(kind="gru", I=16, H=64, seed=8, w_std=0.3)),
        # the table activations (IntCell.activation = "table"): both GRU forms, RNN tanh, and
        # the H = 64, I = 16 GRU again
        ("gru_table_lbr1_i8_h16", dict(kind="gru", I=8, H=16, seed=4, activation="table")),
        ("gru_table_lbr0_i8_h16", dict(kind="gru", I=8, H=16, seed=5, lbr=False, h_range=(-0.5, 0.95),
                                       activation="table")),
        ("rnn_tanh_table_i8_h16", dict(kind="rnn_tanh", I=8, H=16, seed=6, activation="table")),
        ("gru_kws_i16_h64_table", dict(kind="gru", I=16, H=64, seed=8, w_std=0.3, activation="table")),
        # int16 inputs (input_dtype = "int16"): every kind, the H = 64 GRU in both families, I = 6
        # (BasicMotions; not a multiple of 4) and I = 7
        ("x16_gru_kws_i16_h64", dict(kind="gru", I=16, H=64, seed=8, w_std=0.3, input_dtype="int16")),
        ("x16_gru_kws_i16_h64_table", dict(kind="gru", I=16, H=64, seed=8, w_std=0.3, activation="table",
                                           input_dtype="int16")),
        ("x16_gru_i6_h64", dict(kind="gru", I=6, H=64, seed=20, x_range=(-16.5, 16.5), input_dtype="int16")),
        ("x16_gru_lbr0_i7_h16", dict(kind="gru", I=7, H=16, seed=21, lbr=False, input_dtype="int16")),
        ("x16_lstm_i6_h16", dict(kind="lstm", I=6, H=16, seed=22, input_dtype="int16")),
        ("x16_rnn_tanh_i8_h16", dict(kind="rnn_tanh", I=8, H=16, seed=23, activation="table",
                                     input_dtype="int16")),
        ("x16_rnn_relu_i5_h12", dict(kind="rnn_relu", I=5, H=12, seed=24, x_range=(-40.0, 40.0),
                                     h_range=(0.0, 30.0), pre_absmax=20.0, input_dtype="int16")),
    ]
    for name, kw in specs:
        cell = _cell(kw.pop("kind"), kw.pop("I"), kw.pop("H"), kw.pop("seed"), **kw)
        if name == "lstm_clip_shift11":
            cell.cell_clip = 9000
        out.append((name, cell, _inputs(cell, 10 if cell.hidden_size > 32 else 24, len(out) + 10)))
    out += [_bound_case("x16_bound_i500_h8", 500, 8, 30), _bound_case("x16_bound_i100_h64", 100, 64, 31)]
    return out


def _bound_case(name, I, H, seed):
    """A GRU whose int16-input rows reach the int32 accumulation bound: W_ih all +-127 (a zero
    bias), so |b_ih| + 2^15 sum |w_ih| = I 127 2^15 (500: 2,080,768,000 <= 2^31 - 1), and inputs
    of +-32767 / -32768 with the rows' signs (the largest sums) and full-range noise."""
    rng = np.random.default_rng(seed)
    cell = _cell("gru", I, H, seed, x_range=(-1.0, 1.0), input_dtype="int16")
    cell.w_ih = np.where(rng.random(cell.w_ih.shape) < 0.5, -127, 127).astype(np.int8)
    cell.b_ih = np.zeros_like(cell.b_ih)
    cell.validate()
    s = cell.w_ih[[0, 1, 2 * H]].astype(np.int64)
    x = np.concatenate([np.where(s > 0, 32767, -32768), np.where(s > 0, -32768, 32767),
                        rng.integers(-32768, 32768, (3, I))])
    return name, cell, x.astype(np.int16)


def _arr(ctype: str, name: str, a) -> str:
    vals = ", ".join(str(int(v)) for v in np.ravel(a))
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def random_cases(seed: int, n: int):
    """``n`` random cells: every kind and GRU form (GRU and RNN in both activation families), I in
    1..24, H in 1..40, input and state ranges from tiny to large (multipliers far below and above
    1), weights of random size."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = ("lstm", "gru", "rnn_tanh", "rnn_relu")[k % 4]
        lo, hi = sorted(rng.uniform(-1, 1, 2) * 10.0 ** rng.uniform(-2, 2))
        hscale = 10.0 ** rng.uniform(-1, 1.5) if kind == "rnn_relu" else 1.0
        # odd cases: a random (often narrow: saturating) state range; even: the whole range
        hlo, hhi = sorted(rng.uniform(-1, 1, 2) * hscale) if k % 2 else (-hscale, hscale)
        kw = dict(x_range=(lo, hi), h_range=(hlo, hhi), c_absmax=float(10.0 ** rng.uniform(-1, 2)),
                  pre_absmax=float(10.0 ** rng.uniform(-1, 2)), lbr=bool(k % 8 < 4),
                  w_std=float(10.0 ** rng.uniform(-2, 0.5)),
                  activation="table" if kind != "lstm" and k % 3 == 1 else "gemmlowp")
        args = (kind, int(rng.integers(1, 25)), int(rng.integers(1, 41)), int(rng.integers(1 << 30)))
        T = int(rng.integers(1, 12))
        cell = None
        if k % 5 == 2:   # an int16 input, unless its bias does not fit int32 at these scales
            try:
                cell = _cell(*args, **kw, input_dtype="int16")
            except ValueError:
                cell = None
        cell = cell or _cell(*args, **kw)
        if kind == "lstm" and k % 3 == 0:
            cell.cell_clip = int(rng.integers(1, 32768))
        x = (rng.integers(-32768, 32768, (T, cell.input_size)).astype(np.int16) if cell.input_dtype == "int16"
             else rng.integers(-128, 128, (T, cell.input_size)).astype(np.int8))
        out.append((f"random_{k}_{kind}{'_x16' if cell.input_dtype == 'int16' else ''}", cell, x))
    return out


def header(small: bool = False, case_list=None) -> str:
    lines = ["/* Generated by csrc/tests/gen_int_vectors.py from rnncore.quant.integer; do not edit. */\n",
             "#ifndef RNC_INT_VECTORS_H\n#define RNC_INT_VECTORS_H\n#include \"rnncore_int.h\"\n\n",
             "typedef struct {\n    const char *name;\n    rnc_int_cell cell;\n    int steps;\n"
             "    const int8_t *x;\n    const int16_t *x16;\n    const int8_t *h8;\n    const int16_t *s16;\n"
             "} rnc_int_vector;\n\n"]
    entries = []
    for k, (name, cell, x8) in enumerate(cases(small) if case_list is None else case_list):
        cell.validate()
        y8, _ = qi.int_cell_sequence(cell, x8[None])
        state = cell.zero_state(1)
        s16 = []
        for t in range(x8.shape[0]):
            state = qi.int_cell_step(cell, x8[None, t], state)
            if len(state) > 1:
                s16.append(state[1][0])
        x16 = cell.input_dtype == "int16"
        p = f"v{k}_"
        lines += [_arr("int8_t", p + "w_ih", cell.w_ih), _arr("int8_t", p + "w_hh", cell.w_hh),
                  _arr("int32_t", p + "b_ih", cell.b_ih), _arr("int32_t", p + "b_hh", cell.b_hh),
                  _arr("int32_t", p + "m_ih", cell.m_ih), _arr("int32_t", p + "m_hh", cell.m_hh),
                  _arr("int8_t", p + "e_ih", cell.e_ih), _arr("int8_t", p + "e_hh", cell.e_hh),
                  _arr("int16_t" if x16 else "int8_t", p + "x", x8), _arr("int8_t", p + "h8", y8[0])]
        if s16:
            lines.append(_arr("int16_t", p + "s16", np.stack(s16)))
        entries.append(
            f"    {{\"{name}\", {{{KIND[cell.cell]}, {cell.input_size}, {cell.hidden_size}, "
            f"{int(cell.linear_before_reset)}, {p}w_ih, {p}w_hh, {p}b_ih, {p}b_hh, {p}m_ih, {p}m_hh, "
            f"{p}e_ih, {p}e_hh, {cell.m_h}, {cell.e_h}, {cell.m_rh}, {cell.e_rh}, {cell.h_zp}, "
            f"{cell.cell_shift}, {cell.cell_clip}, {int(cell.activation == 'table')}, "
            f"{'RNC_INT_IN_S16' if x16 else 'RNC_INT_IN_S8'}}}, "
            f"{x8.shape[0]}, {'NULL, ' + p + 'x' if x16 else p + 'x, NULL'}, {p}h8, "
            f"{p + 's16' if s16 else 'NULL'}}}")
    lines.append(f"\n#define RNC_INT_NVECTORS {len(entries)}\n")
    lines.append("static const rnc_int_vector rnc_int_vectors[RNC_INT_NVECTORS] = {\n")
    lines.append(",\n".join(entries) + "\n};\n\n")
    lines.append(_head_vector())
    lines.append("#endif\n")
    return "".join(lines)


def _head_vector() -> str:
    """One linear head (rnc_int_linear_run): 12 outputs of 64 int8 features, 8 input vectors."""
    rng = np.random.default_rng(99)
    w8, s_w = qi._quantize_rows(rng.standard_normal((12, 64)))
    s_x, zp_x = 0.02, -3
    out_scale = s_x * float(s_w.max()) / 2 ** 8
    m_o, e_o = qi.quantize_multipliers(s_x * s_w / out_scale)
    head = qi.IntHead(w8, qi._bias_eff(rng.standard_normal(12), w8, s_x, s_w, zp_x), m_o, e_o, out_scale)
    x8 = rng.integers(-128, 128, (8, 64)).astype(np.int8)
    y = qi.int_linear(head, x8)
    return ("".join([_arr("int8_t", "head_w", head.w), _arr("int32_t", "head_b", head.b),
                     _arr("int32_t", "head_m", head.m_o), _arr("int8_t", "head_e", head.e_o),
                     _arr("int8_t", "head_x", x8), _arr("int32_t", "head_y", y)])
            + "/* rnc_int_linear_run(&rnc_int_head_vector, mv, head_x + 64 k, y) == head_y + 12 k, k < 8 */\n"
            "#define RNC_INT_HEAD_NX 8\n"
            "static const rnc_int_linear rnc_int_head_vector = {64, 12, head_w, head_b, head_m, head_e};\n\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: gen_int_vectors.py OUT.h [--small]")
    Path(args[0]).parent.mkdir(parents=True, exist_ok=True)
    Path(args[0]).write_text(header("--small" in sys.argv))
