"""Streaming step of an LSTM with cell options (the variant cell) against the plain fused cell.

    python benchmarks/bench_variants.py [--hidden 128] [--input 64] [--steps 3000]

Prints the time per ``stream.step(x, out=buf)`` at batch 1 (minimum of 7 repeats) for the plain
LSTM and for peepholes, clip + hard-sigmoid gates and ``proj_size = H/2``, the layer-normalised
LSTM (``rnncore.nn.LayerNormLSTM``, per gate and joint), then the plain GRU and the
layer-normalised GRU, in f32 and q8, on the default (best) ISA path. Figures in
docs/performance.md ("Cell options", "Layer-normalised cells").
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore as rc
from rnncore.nn.extended import ExtendedRecurrent
from rnncore.nn.lncells import LayerNormGRU, LayerNormLSTM


def _model(opts: dict, inputs: int, hidden: int, rng, mode: str = "LSTM"):
    if "ln" in opts:   # a layer-normalised cell: {"ln": True, "per_gate": ...}
        cls = LayerNormLSTM if mode == "LSTM" else LayerNormGRU
        m = cls(inputs, hidden, dtype="float32", per_gate=opts["per_gate"])
    else:
        m = ExtendedRecurrent(mode, inputs, hidden, dtype="float32", **opts)
    for v in m.params.values():
        v[...] = rng.standard_normal(v.shape) * 0.1
    return m


def step_us(engine, inputs: int, steps: int, rng) -> float:
    s = engine.stream(1)
    x = rng.standard_normal((1, inputs)).astype(np.float32)
    out = np.empty((1, engine.output_size), np.float32)
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(steps):
            s.step(x, out=out)
        best = min(best, (time.perf_counter() - t) / steps)
    return best * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--steps", type=int, default=3000)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    cases = {"plain (fused row)": {}, "peepholes": {"peepholes": True},
             "clip + hardsigmoid": {"clip": 3.0, "activations": [("hardsigmoid", 0.2, 0.5), "tanh", "tanh"]},
             f"proj_size={a.hidden // 2}": {"proj_size": a.hidden // 2},
             "layer norm, per gate": {"ln": True, "per_gate": True},
             "layer norm, joint": {"ln": True, "per_gate": False}}
    gru = {"plain (fused row)": {}, "layer norm, per gate": {"ln": True, "per_gate": True},
           "layer norm, joint": {"ln": True, "per_gate": False}}
    for mode, table in (("LSTM", cases), ("GRU", gru)):
        print(f"{mode} I={a.input} H={a.hidden}, batch 1, isa {rc.isa()['in_use']}")
        for name, opts in table.items():
            m = _model(opts, a.input, a.hidden, rng, mode)
            for prec in ("f32", "q8"):
                us = step_us(rc.compile(m, precision=prec), a.input, a.steps, rng)
                print(f"  {name:22s} {prec}: {us:8.2f} us/step")


if __name__ == "__main__":
    main()
