"""Test vectors of the integer products (csrc/src/int/s8_matvec.h) for the bare-metal images.

Writes a C header: int8 matrices and vectors, int32 biases and the expected products computed
independently in NumPy with int64 arithmetic (y = bias + W[:, :cols] @ x). Shapes cover rows and
columns that are not multiples of the kernels' steps (4 rows; 4 and 16 columns), leading
dimensions larger than cols (odd ones too, with nonzero bytes between cols and ldw that must not
be read into the sums), matrices and vectors starting at every byte offset modulo 16, no bias, no
columns or no rows, the extremes -128 / 127, the longest rows the contract allows
(RNC_S8_MAX_COLS), and the products of a GRU with H = 64, I = 16.

    python3 gen_s8_vectors.py OUT.h
"""

from __future__ import annotations

import sys

import numpy as np

MAX_COLS = 32768  # RNC_S8_MAX_COLS
BIAS_LIMIT = 2**30  # callers keep |bias| < 2^30 (s8_matvec.h)


class Blob:
    """A byte-offset-controlled array the cases point into."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, a: np.ndarray, misalign: int = 0, align: int = 16) -> int:
        pad = (-self.size + misalign) % align
        if pad:
            self.parts.append(np.full(pad, 0x55, self.dtype))
            self.size += pad
        off = self.size
        self.parts.append(np.asarray(a, self.dtype).ravel())
        self.size += a.size
        return off

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(1, self.dtype)


def c_array(name: str, ctype: str, a: np.ndarray, align: int = 16) -> str:
    lines, cur = [], ""
    for v in a:
        tok = f"{int(v)},"
        if len(cur) + len(tok) > 100:
            lines.append(cur)
            cur = ""
        cur += tok
    lines.append(cur)
    return (f"static const {ctype} {name}[{a.size}] __attribute__((aligned({align}))) = {{\n"
            + "\n".join(lines) + "\n};\n")


def main(path: str) -> None:
    rng = np.random.default_rng(18)
    W, X, B, Y = Blob(np.int8), Blob(np.int8), Blob(np.int32), Blob(np.int32)
    cases: list[tuple[int, int, int, int, int, int, int]] = []

    def case(w: np.ndarray, x: np.ndarray, bias: np.ndarray | None, cols: int, wmis: int,
             xmis: int) -> None:
        rows, ldw = w.shape
        assert ldw >= cols and x.size == cols and cols <= MAX_COLS
        y = w[:, :cols].astype(np.int64) @ x.astype(np.int64)
        if bias is not None:
            assert np.all(np.abs(bias.astype(np.int64)) < BIAS_LIMIT)
            y = y + bias.astype(np.int64)
        assert np.all(np.abs(y) < 2**31), "expected value outside int32"
        cases.append((rows, cols, ldw, W.add(w, wmis), X.add(x, xmis),
                      -1 if bias is None else B.add(bias, 0, 1), Y.add(y.astype(np.int32), 0, 1)))

    def rand8(*shape: int) -> np.ndarray:
        return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)

    rows_set = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 33]
    cols_set = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 31, 32, 33, 47, 64, 65, 80, 127, 129]
    for rows in rows_set:
        for cols in cols_set:
            ldw = cols + int(rng.choice([0, 0, 1, 3, 5, 16]))
            bias = None if rng.random() < 0.25 else rng.integers(
                -BIAS_LIMIT + 1, BIAS_LIMIT, size=rows).astype(np.int32)
            case(rand8(rows, ldw), rand8(cols), bias, cols, int(rng.integers(16)),
                 int(rng.integers(16)))
    # extremes: every product +2^14 or -127*128, short and long rows, biases near +-2^30
    for cols in (1, 3, 4, 7, 8, 15, 16, 17, 33, 100):
        for wv, xv in ((-128, -128), (127, -128), (-128, 127), (127, 127)):
            rows = 5
            w = np.full((rows, cols + 1), wv, np.int8)
            w[:, cols] = 99  # between cols and ldw: never part of a sum
            case(w, np.full(cols, xv, np.int8), None, cols, cols % 16, (cols * 7) % 16)
    for wv, xv, b in ((-128, -128, BIAS_LIMIT - 1), (127, -128, -(BIAS_LIMIT - 1))):
        rows, cols = 2, MAX_COLS
        w = np.full((rows, cols + 3), wv, np.int8)
        w[:, cols:] = -wv // 2
        case(w, np.full(cols, xv, np.int8), np.full(rows, b, np.int32), cols, 3, 1)
    # empty: no columns (y = bias), no rows (nothing written)
    case(rand8(3, 2), rand8(0), np.array([5, -7, 1 << 29], np.int32), 0, 1, 2)
    case(rand8(0, 5), rand8(5), None, 5, 0, 0)
    # the products of a GRU step with H = 64, I = 16: W_ih (3H x I), W_hh (3H x H)
    for cols in (16, 64):
        case(rand8(192, cols), rand8(cols),
             rng.integers(-2**20, 2**20, size=192).astype(np.int32), cols, 0, 0)

    with open(path, "w") as f:
        f.write("/* written by csrc/mcu/gen_s8_vectors.py: products checked in int64 by NumPy */\n")
        f.write("#include <stdint.h>\n")
        f.write(c_array("s8_w", "int8_t", W.array()))
        f.write(c_array("s8_x", "int8_t", X.array()))
        f.write(c_array("s8_bias", "int32_t", B.array(), 4))
        f.write(c_array("s8_y", "int32_t", Y.array(), 4))
        f.write("/* rows, cols, ldw, offsets of W, x, bias (-1: none), y */\n")
        f.write(f"static const int32_t s8_cases[{len(cases)}][7] = {{\n")
        for c in cases:
            f.write("    {" + ", ".join(str(v) for v in c) + "},\n")
        f.write("};\n")


if __name__ == "__main__":
    main(sys.argv[1])
