"""q4 (int4 weights) against dense q8: per-step time (batch 1, ``Stream.step``) and a whole-sequence
run (batch 1, T = 100) of a GRU / LSTM layer (input = hidden = H) and of a stack of ``--stacked``
such layers, on each ISA path asked for (docs/performance.md, "q4 weights"). The weights are the
layers' random initialisation, the same model compiled twice ("q8" and "q4"); the activations and
the epilogue are the same, so the difference is the weight stream (q4: half the bytes).

Times are process CPU time, the minimum over ``--repeats`` rounds (the machine may be shared).

    python3 benchmarks/bench_q4.py [--hidden 128 256 512 1024] [--cells gru lstm]
        [--isa avx512vnni avx2] [--stacked 2] [--repeats 5]
"""

from __future__ import annotations

import argparse

import rnncore as rc

try:
    from bench_sparse import run_us, step_us
    from machine import cpu_name
except ImportError:  # run from the repository root as a module
    from benchmarks.bench_sparse import run_us, step_us
    from benchmarks.machine import cpu_name


def layer(cell: str, h: int, layers: int, seed: int = 0):
    """A ``cell`` stack (I = H = h) of ``layers`` layers."""
    return (rc.nn.LSTM if cell == "lstm" else rc.nn.GRU)(h, h, num_layers=layers, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--isa", nargs="+", default=None,
                    help="ISA paths (default: avx512vnni avx2 where available)")
    ap.add_argument("--stacked", type=int, nargs="+", default=[1, 2], help="layers per model (default 1 2)")
    ap.add_argument("--no-run", action="store_true", help="step times only")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    avail = rc.isa()["available"]
    isas = a.isa or [i for i in ("avx512vnni", "avx2", "neondot") if i in avail] or [rc.isa()["best"]]
    print(f"CPU {cpu_name()}; us per step (batch 1) and per step of a T = 100 run, process CPU time, "
          f"min of {a.repeats}")
    print(f"{'isa':10} {'cell':5} {'L':>2} {'H':>5} {'q8 KiB':>7} {'q4 KiB':>7} |"
          f" {'q8 step':>8} {'q4 step':>8} {'x':>5} |"
          + ("" if a.no_run else f" {'q8 run/T':>9} {'q4 run/T':>9} {'x':>5}"))
    for isa in isas:
        for cell in a.cells:
            for nl in a.stacked:
                for h in a.hidden:
                    m = layer(cell, h, nl)
                    e8, e4 = rc.compile(m, "q8"), rc.compile(m, "q4")
                    e8.set_isa(isa)
                    e4.set_isa(isa)
                    s8, s4 = step_us(e8, h, a.repeats), step_us(e4, h, a.repeats)
                    line = (f"{isa:10} {cell:5} {nl:2d} {h:5d} {e8.nbytes // 1024:7d} "
                            f"{e4.nbytes // 1024:7d} |"
                            f" {s8:8.2f} {s4:8.2f} {s8 / s4:5.2f} |")
                    if not a.no_run:
                        r8, r4 = run_us(e8, h, a.repeats), run_us(e4, h, a.repeats)
                        line += f" {r8:9.2f} {r4:9.2f} {r8 / r4:5.2f}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
