"""Time of one streaming step of the C engine (f32, batch 1) with a causal Conv1d over time in
front of a GRU, against the same GRU reading the input directly (the issue's "the front-end must
not dominate" target: within 2x).

Rows: ``Conv1d(40 -> 64, k=3, causal) > ReLU > GRU(64) > Linear(64 -> 2)`` (a keyword-spotter's
front-end on 40 log-mel features) and ``GRU(40 -> 64) > Linear(64 -> 2)``; each the minimum over
``--repeats`` runs of ``Stream.time_step`` (``--steps`` calls of ``rnc_step`` in a C loop, no
Python per step), and their ratio, taken in one run (the machine may be shared). A third row adds
a residual block ``Residual(Conv1d(64 -> 64, k=3, dilation 2, causal) > ReLU)`` after the ReLU.
``--precision q8``: the same models in q8 (int8 conv_time weights, docs/q8-contract.md).

    python benchmarks/bench_conv_time.py [--steps 20000] [--repeats 7] [--isa avx512vnni] [--precision q8]
"""

from __future__ import annotations

import argparse

import numpy as np
from machine import cpu_name

import rnncore as rc

nn = rc.nn


def engine(front: int, precision: str = "f32") -> rc.engine.Engine:
    """front 0: none; 1: conv_time > relu; 2: and a residual conv_time block."""
    res = [nn.Residual(nn.Sequential(nn.Conv1d(64, 64, 3, padding="causal", dilation=2, seed=3), nn.ReLU()))]
    layers = ([nn.Conv1d(40, 64, 3, padding="causal", seed=0), nn.ReLU(), *(res if front == 2 else []),
               nn.GRU(64, 64, seed=1)] if front else [nn.GRU(40, 64, seed=1)])
    return rc.compile(nn.Sequential(*layers, nn.Linear(64, 2, seed=2)), precision)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--isa", default=None, help="an ISA path (rc.isa()); default: the best")
    ap.add_argument("--precision", default="f32", choices=("f32", "q8"))
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((1, 40)).astype(np.float32)
    out = np.empty((1, 2), np.float32)
    t = {}
    for front in (0, 1, 2):
        e = engine(front, args.precision)
        if args.isa:
            e.set_isa(args.isa)
        s = e.stream(1)
        t[front] = min(s.time_step(x, out, args.steps) for _ in range(args.repeats))
    print(f"# {cpu_name()}, isa {e.isa}, {args.precision}, batch 1, "
          f"min of {args.repeats} x {args.steps} steps")
    print(f"GRU(40->64) > linear                          {t[0] * 1e6:7.2f} us per step")
    print(f"conv_time(40->64, k3) > relu > GRU(64) > linear {t[1] * 1e6:7.2f} us per step "
          f"({t[1] / t[0]:.2f}x)")
    print(f"  ... > residual(conv_time(64->64, k3, d2) > relu) > GRU(64) > linear {t[2] * 1e6:7.2f} us "
          f"per step ({t[2] / t[0]:.2f}x)")


if __name__ == "__main__":
    main()
