"""Time per input step of the C engine's stream (f32, batch 1) with strided time layers in front of
a GRU: the recurrent layer then runs only at the steps that give an output.

Rows: ``GRU(40 -> 64) > Linear(64 -> 2)`` at every step; ``Conv1d(40 -> 64, k=3, stride=2, causal) >
ReLU > GRU(64) > Linear``; ``MaxPool1d(2) > GRU(40 -> 64) > Linear``; ``Conv1d(40 -> 64, k=3,
causal) > ReLU > MaxPool1d(3, stride=2) > GRU(64) > Linear``. Each the minimum over ``--repeats``
runs of ``Stream.time_step`` (``--steps`` calls of ``rnc_step`` in a C loop, no Python per step:
the mean over the steps with and without an output), and its ratio to the first row, taken in
one run (the machine may be shared).

    python benchmarks/bench_pool_time.py [--steps 20000] [--repeats 7] [--isa avx512vnni]
"""

from __future__ import annotations

import argparse

import numpy as np
from machine import cpu_name

import rnncore as rc

nn = rc.nn

ROWS = {
    "GRU(40->64) > linear": lambda: [nn.GRU(40, 64, seed=1)],
    "conv_time(40->64, k3, s2) > relu > GRU(64) > linear": lambda: [
        nn.Conv1d(40, 64, 3, stride=2, padding="causal", seed=0), nn.ReLU(), nn.GRU(64, 64, seed=1)],
    "pool_time(max k2) > GRU(40->64) > linear": lambda: [
        nn.MaxPool1d(2, channels=40), nn.GRU(40, 64, seed=1)],
    "conv_time(40->64, k3) > relu > pool_time(max k3 s2) > GRU(64) > linear": lambda: [
        nn.Conv1d(40, 64, 3, padding="causal", seed=0), nn.ReLU(), nn.MaxPool1d(3, channels=64, stride=2),
        nn.GRU(64, 64, seed=1)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--isa", default=None, help="an ISA path (rc.isa()); default: the best")
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((1, 40)).astype(np.float32)
    out = np.empty((1, 2), np.float32)
    t = {}
    for name, layers in ROWS.items():
        e = rc.compile(nn.Sequential(*layers(), nn.Linear(64, 2, seed=2)))
        if args.isa:
            e.set_isa(args.isa)
        s = e.stream(1)
        t[name] = min(s.time_step(x, out, args.steps) for _ in range(args.repeats))
    base = t[next(iter(ROWS))]
    print(f"# {cpu_name()}, isa {e.isa}, batch 1, min of {args.repeats} x {args.steps} steps")
    for name, v in t.items():
        print(f"{name:72s} {v * 1e6:7.2f} us per input step ({v / base:.2f}x)")


if __name__ == "__main__":
    main()
