"""Block-sparse q8 against dense q8: per-step time (batch 1, ``Stream.step``) and a whole-sequence
run (batch 1, T = 100) of a GRU / LSTM layer (input = hidden = H) whose weights keep a share
``density`` of their ``block_rows`` x 4 blocks (random blocks, the rest zero), compiled dense and
with ``sparse=`` (docs/performance.md, "Block-sparse q8").

Times are process CPU time, the minimum over ``--repeats`` rounds (the machine may be shared).

    python3 benchmarks/bench_sparse.py [--hidden 256 512 1024] [--density 1 .5 .3 .2]
        [--block-rows 16] [--cells gru lstm] [--isa avx512vnni]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore as rc


def pruned_layer(cell: str, h: int, density: float, bh: int, seed: int = 0):
    """A ``cell`` layer (I = H = h) keeping about ``density`` of its bh x 4 weight blocks."""
    rng = np.random.default_rng(seed)
    m = rc.nn.LSTM(h, h, seed=seed) if cell == "lstm" else rc.nn.GRU(h, h, seed=seed)
    g = 4 if cell == "lstm" else 3
    for _, v in m.named_parameters():
        if v.ndim != 2 or density >= 1.0:
            continue
        hp, kp = -(-h // 16) * 16, -(-h // 4) * 4
        w = np.zeros((g, hp, kp), v.dtype)
        w[:, :h, :h] = v.reshape(g, h, h)
        keep = rng.random((g, hp // bh, kp // 4)) < density
        w *= np.repeat(np.repeat(keep, bh, axis=1), 4, axis=2)
        v[...] = w[:, :h, :h].reshape(g * h, h)
    return m


def _cpu_min(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn(n)
        best = min(best, (time.process_time() - t0) / n)
    return best


def step_us(eng, h: int, repeats: int) -> float:
    s = eng.stream(1)
    x = np.random.default_rng(1).standard_normal((1, h)).astype(np.float32)
    y = np.zeros((1, h), np.float32)
    step = s.step

    def loop(n):
        for _ in range(n):
            step(x, out=y)

    loop(50)
    n = max(200, int(2e5 / h))
    return _cpu_min(loop, n, repeats) * 1e6


def run_us(eng, h: int, repeats: int, t: int = 100) -> float:
    X = np.random.default_rng(2).standard_normal((1, t, h)).astype(np.float32)

    def loop(n):
        for _ in range(n):
            eng.run(X)

    loop(1)
    return _cpu_min(loop, max(3, int(2e4 / h)), repeats) * 1e6 / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--density", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.2])
    ap.add_argument("--block-rows", type=int, nargs="+", default=[16])
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--isa", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"isa {a.isa or rc.isa()['best']}; us per step, process CPU time, min of {a.repeats}")
    print(f"{'cell':5} {'H':>5} {'bh':>3} {'density':>7} | {'dense step':>10} {'sparse step':>11} {'x':>5} |"
          f" {'dense run/T':>11} {'sparse run/T':>12} {'x':>5}")
    for cell in a.cells:
        for h in a.hidden:
            for bh in a.block_rows:
                for d in a.density:
                    m = pruned_layer(cell, h, d, bh)
                    dense = rc.compile(m, "q8")
                    sp = rc.compile(m, "q8", sparse={"max_density": 1.0, "block_rows": bh})
                    if a.isa:
                        dense.set_isa(a.isa)
                        sp.set_isa(a.isa)
                    s0, s1 = step_us(dense, h, a.repeats), step_us(sp, h, a.repeats)
                    r0, r1 = run_us(dense, h, a.repeats), run_us(sp, h, a.repeats)
                    print(f"{cell:5} {h:5d} {bh:3d} {d:7.2f} | {s0:10.2f} {s1:11.2f} {s0 / s1:5.2f} |"
                          f" {r0:11.2f} {r1:12.2f} {r0 / r1:5.2f}", flush=True)


if __name__ == "__main__":
    main()
