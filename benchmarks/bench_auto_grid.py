"""Issue 17's ``auto`` grid: the engine's default ISA choice against every forced ISA path this CPU
runs, on GRU/LSTM layers (input = hidden = H) at H = 32..512: one ``Stream.step`` at batch 1 and
``Engine.run`` of batch 1/4/8/16/64 sequences of T = 100 steps (docs/performance.md, "Issue 17:
``auto`` against the best ISA").

Every variant of a grid point is its own engine over the same model bytes (``auto``, then one per
forced ISA; ``--self`` adds a second ``auto`` engine, whose ratio to the first is the noise of the
run; ``--split N`` adds ``auto/N``, each run as calls of at most N sequences, checked to give
the one call's bits). They are timed interleaved in one process: each round times every variant once, in a new
random order (so that no two variants are always neighbours when a burst of load comes); a
variant's figure is the minimum over the rounds of its process CPU time per call. A point where
auto looks behind is timed again for ``--recheck`` more rounds (the minimum over all rounds is
kept; ``r`` after the ratio). The table gives each variant's µs per call (a step, or a whole run
of B × T), the fastest forced ISA, auto ÷ best, and ``<<`` where auto is more than ``--tolerance``
behind (3 % by default). ``auto`` builds the plan of one ISA (``rc.isa()["in_use"]``), so where
the best forced ISA is that one, auto runs the very same kernel rows and a gap is the run's noise:
the last line lists those points apart from the ones behind another path. No figure is asserted
anywhere: the machine may be shared.

    python3 benchmarks/bench_auto_grid.py [--cells gru lstm] [--hidden 32 64 128 256 512]
        [--batch step 1 4 8 16 64] [--precision q8 f32] [--isa avx2 avx512 avx512vnni]
        [--rounds 7] [--round-ms 30] [--recheck 0] [--self] [--split 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

import rnncore as rc

try:
    from machine import cpu_name
except ImportError:  # run from the repository root as a module
    from benchmarks.machine import cpu_name

T = 100


def layer(cell: str, h: int, seed: int = 0):
    """One ``cell`` layer with input = hidden = ``h``."""
    return (rc.nn.LSTM if cell == "lstm" else rc.nn.GRU)(h, h, seed=seed)


def call(eng, h: int, batch: str, split: int = 0) -> Callable[[], object]:
    """One timed call on ``eng``: a batch-1 ``Stream.step`` (``batch == "step"``) or a ``run`` of
    ``int(batch)`` sequences of T steps (``split``: as ``run`` calls of at most ``split``
    sequences, whose outputs must be the one call's bits, else a ``RuntimeError``)."""
    rng = np.random.default_rng(1)
    if batch == "step":
        step = eng.stream(1).step
        x = rng.standard_normal((1, h)).astype(np.float32)
        y = np.zeros((1, h), np.float32)
        return lambda: step(x, out=y)
    X = rng.standard_normal((int(batch), T, h)).astype(np.float32)
    if not split:
        return lambda: eng.run(X)
    parts = [X[i:i + split] for i in range(0, len(X), split)]
    if not np.array_equal(np.concatenate([eng.run(p) for p in parts]), eng.run(X)):
        raise RuntimeError(f"run in calls of <= {split} sequences differs from one call (batch {batch})")
    return lambda: [eng.run(p) for p in parts]


def loops(fn: Callable[[], object], round_s: float) -> tuple[Callable[[int], None], int]:
    """``fn`` as a loop of ``n`` calls, and the ``n`` that takes about ``round_s`` CPU seconds."""
    def loop(n: int) -> None:
        for _ in range(n):
            fn()

    loop(3)  # warm: caches, the run's scratch
    t0 = time.process_time()
    loop(3)
    per = max((time.process_time() - t0) / 3, 1e-7)
    return loop, max(1, int(round_s / per))


def time_interleaved(fns: list[Callable[[], object]], rounds: int, round_s: float,
                     seed: int = 0) -> list[float]:
    """Per function, the minimum over ``rounds`` of its process CPU seconds per call; every round
    times each function once, in a random order (``seed``)."""
    prepared = [loops(f, round_s) for f in fns]
    n = min(c for _, c in prepared)  # the same count for all: the same work per round
    best = [float("inf")] * len(fns)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for i in rng.permutation(len(fns)):
            t0 = time.process_time()
            prepared[i][0](n)
            best[i] = min(best[i], (time.process_time() - t0) / n)
    return best


def variants(self_check: bool, split: int, isas: list[str]) -> list[str]:
    """The timed variants' names: auto, auto' (``self_check``), auto/N (``split``), the ISAs."""
    return ["auto"] + (["auto'"] if self_check else []) + ([f"auto/{split}"] if split else []) + isas


def grid_point(cell: str, h: int, batch: str, precision: str, isas: list[str], self_check: bool,
               rounds: int, round_s: float, recheck: int = 0, tolerance: float = 0.03,
               split: int = 0) -> dict:
    """The figures of one grid point: ``us`` maps each variant to µs per call, ``best`` is the
    fastest forced ISA, ``ratio`` auto ÷ best; ``rechecked``: auto looked more than ``tolerance``
    behind after ``rounds`` and ``recheck`` more rounds were timed. ``split``: a variant
    ``auto/N``, the run as calls of at most N sequences (a step: one step, as auto)."""
    model = layer(cell, h)
    names = variants(self_check, split, isas)
    engs = []
    for name in names:
        e = rc.compile(model, precision)
        e.set_isa("auto" if name.startswith("auto") else name)
        engs.append(e)
    fns = [call(e, h, batch, split if n.startswith("auto/") else 0) for n, e in zip(names, engs, strict=True)]
    secs = time_interleaved(fns, rounds, round_s)

    def summary(secs: list[float]) -> dict:
        us = {n: t * 1e6 for n, t in zip(names, secs, strict=True)}
        best = min(isas, key=us.get)
        return {"us": us, "best": best, "ratio": us["auto"] / us[best], "auto_isa": engs[0].isa,
                "rechecked": False}

    res = summary(secs)
    if recheck > 0 and res["ratio"] > 1 + tolerance:
        more = time_interleaved(fns, recheck, round_s, seed=1)
        res = summary([min(a, b) for a, b in zip(secs, more, strict=True)])
        res["rechecked"] = True
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"], choices=["gru", "lstm"])
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--batch", nargs="+", default=["step", "1", "4", "8", "16", "64"],
                    help="'step' (Stream.step, batch 1) and/or run batch sizes (T = 100)")
    ap.add_argument("--precision", nargs="+", default=["q8"], choices=["q8", "f32"])
    ap.add_argument("--isa", nargs="+", default=None,
                    help="forced ISA paths (default: every path this CPU runs but generic)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--round-ms", type=float, default=30.0,
                    help="CPU ms per variant per round (at least one call; default 30)")
    ap.add_argument("--recheck", type=int, default=0,
                    help="rounds more where auto looks behind (the minimum over all is kept)")
    ap.add_argument("--self", dest="self_check", action="store_true",
                    help="a second auto engine: auto / auto' is the run's noise")
    ap.add_argument("--split", type=int, default=0,
                    help="a variant auto/N: each run as calls of at most N sequences (bits checked)")
    ap.add_argument("--tolerance", type=float, default=0.03, help="mark auto / best above 1 + this")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 ms (a smoke run, not figures)")
    a = ap.parse_args(argv)
    for b in a.batch:
        if b != "step" and not (b.isdigit() and int(b) >= 1):
            ap.error(f"--batch: expected 'step' or a positive integer, got {b!r}")
    for h in a.hidden:
        if h < 1:
            ap.error(f"--hidden: expected positive integers, got {h}")
    if a.split < 0:
        ap.error(f"--split: expected a positive number of sequences per call, got {a.split}")
    if a.quick:
        a.rounds, a.round_ms, a.recheck = 2, 2.0, min(a.recheck, 1)
    avail = rc.isa()["available"]
    isas = a.isa or [i for i in avail if i != "generic"] or ["generic"]
    for i in isas:
        if i not in avail:
            ap.error(f"--isa: {i!r} is not a path this machine/build runs (available: {avail})")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"CPU {cpu_name()}; {os.cpu_count()} logical CPUs; load average {load}")
    print(f"auto = {rc.isa()['in_use']}; us per call (step: one batch-1 Stream.step; run B: "
          f"Engine.run of B x T = {T}); process CPU time, min of {a.rounds} interleaved rounds "
          f"of ~{a.round_ms:g} ms per variant (random order)"
          + (f"; {a.recheck} more where auto looks behind (r)" if a.recheck else ""))
    names = variants(a.self_check, a.split, isas)
    head = f"{'prec':4} {'cell':4} {'H':>4} {'batch':>5} |" + "".join(f" {n:>11}" for n in names)
    print(head + f" | {'best':>10} {'auto/best':>9}" + (" auto/auto'" if a.self_check else "")
          + (f" {'one/split':>9}" if a.split else ""))
    behind, same, ratios, noise = [], [], [], []
    for prec in a.precision:
        for cell in a.cells:
            for h in a.hidden:
                for b in a.batch:
                    r = grid_point(cell, h, b, prec, isas, a.self_check, a.rounds, a.round_ms / 1e3,
                                   a.recheck, a.tolerance, a.split)
                    mark = r["ratio"] > 1 + a.tolerance
                    ratios.append(r["ratio"])
                    if mark:  # behind the forced path auto itself runs: the run's noise
                        (same if r["best"] == r["auto_isa"] else behind).append(f"{prec} {cell} H={h} {b}")
                    line = (f"{prec:4} {cell:4} {h:4d} {b:>5} |"
                            + "".join(f" {r['us'][n]:11.3f}" for n in names)
                            + f" | {r['best']:>10} {r['ratio']:8.3f}{'r' if r['rechecked'] else ' '}")
                    if a.self_check:
                        noise.append(r["us"]["auto"] / r["us"]["auto'"])
                        line += f" {noise[-1]:10.3f}"
                    if a.split:
                        line += f" {r['us']['auto'] / r['us'][f'auto/{a.split}']:9.3f}"
                    print(line + ("  <<" if mark else ""), flush=True)
    print(f"{len(ratios)} points; auto / best: max {max(ratios):.3f}, median "
          f"{float(np.median(ratios)):.3f}"
          + (f"; auto / auto': {min(noise):.3f}-{max(noise):.3f}" if noise else "")
          + f"; more than {a.tolerance:.0%} behind another path: "
          + (", ".join(behind) if behind else "none")
          + f"; behind the path auto runs ({len(same)}, noise): " + (", ".join(same) if same else "none"))


if __name__ == "__main__":
    main()
