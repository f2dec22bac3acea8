"""Block-sparse q8 against dense q8: per-step time (batch 1, ``Stream.step``) and a whole-sequence
run (batch 1, T = 100) of a GRU / LSTM layer (input = hidden = H) whose weights keep a share
``density`` of their ``block_rows`` x 4 blocks (random blocks, the rest zero), compiled dense and
with ``sparse=`` (docs/performance.md, "Block-sparse q8").

With ``--shared`` every gate of a matrix keeps the same blocks (one mask per matrix, as
``BlockPruning(shared_gates=True)``), and the same weights are compiled three ways: dense, the
per-gate sparse layout (``shared_gates=False``) and the gate-shared layout; the columns give
each sparse form's speed-up over dense.

Times are process CPU time, the minimum over ``--repeats`` rounds, the engines of one row timed
alternately within each round (the machine may be shared).

    python3 benchmarks/bench_sparse.py [--hidden 256 512 1024] [--density 1 .5 .3 .2]
        [--block-rows 16] [--cells gru lstm] [--isa avx512vnni] [--shared]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore as rc


def pruned_layer(cell: str, h: int, density: float, bh: int, seed: int = 0, shared: bool = False):
    """A ``cell`` layer (I = H = h) keeping about ``density`` of its bh x 4 weight blocks (with
    ``shared``, the same blocks in every gate)."""
    rng = np.random.default_rng(seed)
    m = rc.nn.LSTM(h, h, seed=seed) if cell == "lstm" else rc.nn.GRU(h, h, seed=seed)
    g = 4 if cell == "lstm" else 3
    for _, v in m.named_parameters():
        if v.ndim != 2 or density >= 1.0:
            continue
        hp, kp = -(-h // 16) * 16, -(-h // 4) * 4
        w = np.zeros((g, hp, kp), v.dtype)
        w[:, :h, :h] = v.reshape(g, h, h)
        keep = rng.random((1 if shared else g, hp // bh, kp // 4)) < density
        w *= np.repeat(np.repeat(keep, bh, axis=1), 4, axis=2)
        v[...] = w[:, :h, :h].reshape(g * h, h)
    return m


def _cpu_min(fns, n: int, repeats: int) -> list[float]:
    """Per function, the minimum over ``repeats`` rounds of the CPU time of one of its ``n``
    calls; the functions alternate within each round."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.process_time()
            fn(n)
            best[i] = min(best[i], (time.process_time() - t0) / n)
    return best


def _step_loop(eng, h: int):
    s = eng.stream(1)
    x = np.random.default_rng(1).standard_normal((1, h)).astype(np.float32)
    y = np.zeros((1, h), np.float32)
    step = s.step

    def loop(n):
        for _ in range(n):
            step(x, out=y)

    loop(50)
    return loop


def step_us(engs, h: int, repeats: int) -> list[float]:
    loops = [_step_loop(e, h) for e in engs]
    return [t * 1e6 for t in _cpu_min(loops, max(200, int(2e5 / h)), repeats)]


def _run_loop(eng, h: int, t: int):
    X = np.random.default_rng(2).standard_normal((1, t, h)).astype(np.float32)

    def loop(n):
        for _ in range(n):
            eng.run(X)

    loop(1)
    return loop


def run_us(engs, h: int, repeats: int, t: int = 100) -> list[float]:
    loops = [_run_loop(e, h, t) for e in engs]
    return [x * 1e6 / t for x in _cpu_min(loops, max(3, int(2e4 / h)), repeats)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--density", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.2])
    ap.add_argument("--block-rows", type=int, nargs="+", default=[16])
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--isa", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", action="store_true",
                    help="one block mask for all gates; dense, per-gate and gate-shared layouts")
    a = ap.parse_args()
    print(f"isa {a.isa or rc.isa()['best']}; us per step, process CPU time, min of {a.repeats}")
    if a.shared:
        print(f"{'cell':5} {'H':>5} {'density':>7} | {'dense':>7} {'per-gate':>8} {'x':>5} {'shared':>7}"
              f" {'x':>5} | {'dense run/T':>11} {'per-gate':>8} {'x':>5} {'shared':>7} {'x':>5}")
    else:
        print(f"{'cell':5} {'H':>5} {'bh':>3} {'density':>7} | {'dense step':>10} {'sparse step':>11}"
              f" {'x':>5} | {'dense run/T':>11} {'sparse run/T':>12} {'x':>5}")
    for cell in a.cells:
        for h in a.hidden:
            for bh in [16] if a.shared else a.block_rows:
                for d in a.density:
                    m = pruned_layer(cell, h, d, bh, shared=a.shared)
                    per_gate = {"max_density": 1.0, "block_rows": bh, "shared_gates": False}
                    engs = [rc.compile(m, "q8"), rc.compile(m, "q8", sparse=per_gate)]
                    if a.shared:
                        engs.append(rc.compile(m, "q8", sparse={"max_density": 1.0, "shared_gates": True}))
                    for e in engs:
                        if a.isa:
                            e.set_isa(a.isa)
                    s = step_us(engs, h, a.repeats)
                    r = run_us(engs, h, a.repeats)
                    if a.shared:
                        print(f"{cell:5} {h:5d} {d:7.2f} | {s[0]:7.2f} {s[1]:8.2f} {s[0] / s[1]:5.2f}"
                              f" {s[2]:7.2f} {s[0] / s[2]:5.2f} | {r[0]:11.2f} {r[1]:8.2f}"
                              f" {r[0] / r[1]:5.2f} {r[2]:7.2f} {r[0] / r[2]:5.2f}", flush=True)
                    else:
                        print(f"{cell:5} {h:5d} {bh:3d} {d:7.2f} | {s[0]:10.2f} {s[1]:11.2f}"
                              f" {s[0] / s[1]:5.2f} | {r[0]:11.2f} {r[1]:12.2f} {r[0] / r[1]:5.2f}",
                              flush=True)


if __name__ == "__main__":
    main()
