"""Test vectors of the elementwise fixed-point rows (csrc/src/int/s16_act.h) for the bare-metal
images, from the NumPy reference rnncore.quant.fixedpoint (TFLite's / gemmlowp's definitions).

sigmoid_q15 and tanh_q15 for every int16 input and int_bits 0..6 (and the table sigmoid and tanh,
which take Q3.12 inputs only): the output at every 7th input
(and the last), and a 32-bit FNV-1a hash of all 65536 outputs in input order (-32768 first), so
the image checks the whole domain without storing it. requant (MBQM + saturation, with and
without the added int16): random and extreme int32 accumulators, multipliers in [2^30, 2^31),
shifts -31..30 (left shifts only where acc * 2^shift fits int32, the routine's contract), lengths
1..37 (every tail of the 4- and 8-lane loops), and exact ties of the final rounding.

    python3 gen_act_vectors.py OUT.h
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rnncore.quant import fixedpoint as fx  # noqa: E402

STRIDE = 7
INT_BITS = range(7)


def fnv1a(values: np.ndarray) -> int:
    h = 0x811C9DC5
    for b in np.asarray(values, np.int16).astype("<i2").tobytes():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def c_list(a) -> str:
    out, cur = [], ""
    for v in np.ravel(a):
        tok = f"{int(v)},"
        if len(cur) + len(tok) > 100:
            out.append(cur)
            cur = ""
        cur += tok
    out.append(cur)
    return "\n".join(out)


def main(path: str) -> None:
    rng = np.random.default_rng(1818)
    x = np.arange(-32768, 32768, dtype=np.int64)
    sub = np.r_[x[::STRIDE], x[-1:]]
    lines = ["/* written by csrc/mcu/gen_act_vectors.py from rnncore.quant.fixedpoint */",
             "#include <stdint.h>", f"#define ACT_STRIDE {STRIDE}", f"#define ACT_NSUB {sub.size}"]
    for name, fn in (("sigmoid", fx.sigmoid_q15), ("tanh", fx.tanh_q15)):
        hashes = []
        lines.append(f"static const int16_t act_{name}_sub[{len(INT_BITS)}][{sub.size}] = {{")
        for k in INT_BITS:
            y = fn(x, k)
            assert y.min() >= -32768 and y.max() <= 32767
            hashes.append(fnv1a(y))
            lines.append("{" + c_list(y[(sub + 32768)]) + "},")
        lines.append("};")
        lines.append(f"static const uint32_t act_{name}_hash[{len(INT_BITS)}] = {{"
                     + ",".join(f"0x{h:08x}u" for h in hashes) + "};")

    # the table activations (Q3.12 inputs only): one row each
    for name, fn in (("sigmoid_table", fx.sigmoid_table_q15), ("tanh_table", fx.tanh_table_q15)):
        y = fn(x)
        assert y.min() >= -32768 and y.max() <= 32767
        lines.append(f"static const int16_t act_{name}_sub[1][{sub.size}] = {{")
        lines.append("{" + c_list(y[(sub + 32768)]) + "},")
        lines.append("};")
        lines.append(f"static const uint32_t act_{name}_hash[1] = {{0x{fnv1a(y):08x}u}};")

    # requant cases: n, with_add, then n values each of acc, m, shift, add, expected
    acc, m, sh, add, want, cases = [], [], [], [], [], []
    for n in list(range(1, 38)) + [64, 192]:
        for with_add in (0, 1):
            s = rng.integers(-31, 31, size=n)
            a = rng.integers(-2**31, 2**31, size=n)
            a[: min(n, 2)] = [2**31 - 1, -2**31][: min(n, 2)]
            pos = s > 0
            lim = (2**31 - 1) >> np.maximum(s, 0)
            a = np.where(pos, rng.integers(-2**31, 2**31, size=n) % (2 * lim + 1) - lim, a)
            mm = rng.integers(2**30, 2**31, size=n)
            ad = rng.integers(-32768, 32768, size=n) if with_add else np.zeros(n, np.int64)
            y = fx.mbqm(a, mm, s) + ad
            y = fx.sat16(y)
            cases.append((n, with_add, len(acc)))
            acc += list(a)
            m += list(mm)
            sh += list(s)
            add += list(ad)
            want += list(y)
    # multipliers below 2^30 too (any m >= 0 is valid), shifts of the fast path [-29, 0] and
    # beyond, and accumulators at the DSP step's |acc| < 2^30 boundary of its fast path
    edge = [2**30 - 1, -(2**30 - 1), 2**30, -2**30, -2**30 - 1, 2**30 + 1, 0, -1, 1]
    for with_add in (0, 1):
        n = 96
        a = np.concatenate([edge * 4, rng.integers(-2**30, 2**30, size=n - 4 * len(edge))])
        s = np.concatenate([np.repeat([0, -1, -29, -30], len(edge)),
                            rng.integers(-31, 1, size=n - 4 * len(edge))])
        mm = np.concatenate([rng.integers(0, 2**31, size=n // 2), rng.integers(0, 2**12, size=n - n // 2)])
        ad = rng.integers(-32768, 32768, size=n) if with_add else np.zeros(n, np.int64)
        cases.append((n, with_add, len(acc)))
        acc += list(a)
        m += list(mm)
        sh += list(s)
        add += list(ad)
        want += list(fx.sat16(fx.mbqm(a, mm, s) + ad))
    # exact ties of the final rounding (m = 2^30 halves exactly; acc = +-(2j + 1) 2^r): the
    # rounding of negative ties away from zero is what these check
    for with_add in (0, 1):
        n = 24
        r = rng.integers(1, 20, size=n)
        j = rng.integers(0, 1000, size=n)
        a = (2 * j + 1) * (np.int64(1) << r) * np.where(np.arange(n) % 2, 1, -1)
        s = -r
        mm = np.full(n, 2**30)
        ad = rng.integers(-32768, 32768, size=n) if with_add else np.zeros(n, np.int64)
        cases.append((n, with_add, len(acc)))
        acc += list(a)
        m += list(mm)
        sh += list(s)
        add += list(ad)
        want += list(fx.sat16(fx.mbqm(a, mm, s) + ad))
    lines.append(f"static const int32_t rq_acc[{len(acc)}] = {{" + c_list(acc) + "};")
    lines.append(f"static const int32_t rq_m[{len(m)}] = {{" + c_list(m) + "};")
    lines.append(f"static const int8_t rq_shift[{len(sh)}] = {{" + c_list(sh) + "};")
    lines.append(f"static const int16_t rq_add[{len(add)}] = {{" + c_list(add) + "};")
    lines.append(f"static const int16_t rq_want[{len(want)}] = {{" + c_list(want) + "};")
    lines.append(f"static const int32_t rq_cases[{len(cases)}][3] = {{"
                 + ",".join(f"{{{c[0]},{c[1]},{c[2]}}}" for c in cases) + "};")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
