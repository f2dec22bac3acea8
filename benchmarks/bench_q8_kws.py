"""q8 against f32 on the KWS shape log-mel > causal Conv1d > ReLU > MaxPool1d(2, 2) > AvgPool1d(3, 1)
> GRU(10) > Linear(3) (tests/test_engine_q8_kws.py's ``kws`` models, untrained, on its tone-in-noise
frames): the q8 engine's error against the f32 engine (largest and mean |y_q8 - y_f32|, relative
to the f32 outputs' largest |y|), and the CPU time of one batch-1 ``Stream.step`` of each (the
minimum over ``--rounds`` alternating rounds of ``--steps`` steps, process CPU time).

    python benchmarks/bench_q8_kws.py [--steps 4000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from machine import cpu_name

import rnncore as rc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_engine_q8_kws import frames, kws  # noqa: E402

CASES = [(64, "log"), (256, "log"), (48, "db"), (40, "log"), (30, None)]


def _step_time(engine: rc.Engine, X: np.ndarray, steps: int) -> float:
    st = engine.stream(1)
    x = [np.ascontiguousarray(X[0, t:t + 1]) for t in range(X.shape[1])]
    out = np.empty((1, engine.output_size), np.float32)
    t0 = time.process_time()
    for t in range(steps):
        st.step(x[t % len(x)], out=out)
    return (time.process_time() - t0) / steps


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    print(f"CPU: {cpu_name()}, ISA path {rc.isa()['in_use']}")
    print("| n_fft, log | q8 max / mean error (of max |y_f32|) | step f32 (us) | step q8 (us) | q8 / f32 |")
    print("|---|---|---|---|---|")
    for n_fft, log in CASES:
        m = kws(n_fft, log, seed=n_fft)
        e32, e8 = rc.compile(m), rc.compile(m, "q8")
        X = frames(16, 40, n_fft, seed=1)
        y32, y8 = e32.run(X), e8.run(X)
        top = np.abs(y32).max()
        t32, t8 = [], []
        for _ in range(a.rounds):
            t32.append(_step_time(e32, X, a.steps))
            t8.append(_step_time(e8, X, a.steps))
        d = np.abs(y8 - y32)
        print(f"| {n_fft}, {log} | {d.max() / top:.4f} / {d.mean() / top:.4f} | "
              f"{min(t32) * 1e6:.2f} | {min(t8) * 1e6:.2f} | {min(t8) / min(t32):.2f} |")


if __name__ == "__main__":
    main()
