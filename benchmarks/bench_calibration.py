"""q8 error against f32 with dynamic and with static (calibrated) activation scales.

For each model, the same test inputs run through the C engine in f32 and in q8 compiled with
each calibration below; the table gives the q8 output's error against the f32 output (max and
mean |q8 - f32| over all outputs, relative to the f32 outputs' max |y|), the q8 accuracy where
the model is a classifier, and the time of one ``engine.run`` over the test set (best of
``--repeat`` interleaved rounds).

* ``dynamic``: ``calibration=None``, one scale per vector per step, measured at run time;
* ``dynamic x, bounded h``: ``state_scale="bounded"``: the inputs dynamic, the hidden states with
  the fixed scale 1/127 (they lie in [-1, 1]);
* ``static x, bounded h``: calibrated input scales and the bounded state scale;
* ``static: ordinary``: calibrated on the training inputs (the normal use);
* ``static: all zeros``, ``static: tiny (x 1e-3)``, ``static: 2 sequences``, ``static:
  constant``: degenerate calibration data (``compile`` warns on each since issue 14).

Models: the demo's GRU(12 -> 64) -> last step -> Linear(64 -> 9) trained 12 epochs on
JapaneseVowels (needs the ``demo`` extra, aeon), and a random 2-layer LSTM(8 -> 32 -> 32) on
standard-normal inputs.

    python benchmarks/bench_calibration.py [--repeat 9] [--no-trained]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from machine import cpu_name

import rnncore as rc

F32 = np.float32


def cases(X_cal: np.ndarray, lengths_cal):
    """(label, calibration, state_scale) of every engine compared."""
    L = lengths_cal
    yield "dynamic", None, None
    yield "dynamic x, bounded h", None, "bounded"
    yield "static: ordinary", (X_cal, L), None
    yield "static x, bounded h", (X_cal, L), "bounded"
    yield "static: all zeros", (np.zeros_like(X_cal), L), None
    yield "static: tiny (x 1e-3)", (X_cal * F32(1e-3), L), None
    yield "static: 2 sequences", (X_cal[:2], None if L is None else L[:2]), None
    yield "static: constant", (np.broadcast_to(X_cal[:1, :1], X_cal.shape).copy(), L), None


def measure(name, model, X_cal, L_cal, X, L, y_true, repeat):
    f32 = rc.compile(model, "f32").run(X, L)
    scale = float(np.max(np.abs(f32)))
    engines = []
    for label, cal, state_scale in cases(X_cal, L_cal):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            eng = rc.compile(model, "q8", calibration=cal, state_scale=state_scale)
        engines.append((label, eng, any(issubclass(x.category, rc.quant.CalibrationWarning) for x in w)))
    best = [np.inf] * len(engines)
    for _ in range(repeat):                       # interleaved rounds, best of each
        for i, (_, eng, _) in enumerate(engines):
            t0 = time.perf_counter()
            eng.run(X, L)
            best[i] = min(best[i], time.perf_counter() - t0)
    rows = []
    for (label, eng, warned), t in zip(engines, best, strict=True):
        y = eng.run(X, L)
        err = np.abs(y.astype(np.float64) - f32)
        acc = float(np.mean(np.argmax(y, -1) == y_true)) if y_true is not None else None
        rows.append((label, err.max() / scale, err.mean() / scale, acc, t * 1e3, warned))
    print(f"\n{name}  (max |y_f32| = {scale:.3g})")
    print(f"{'calibration':<24}{'max err/max|y|':>15}{'mean err/max|y|':>16}{'q8 acc':>8}{'run ms':>9}"
          "  warns")
    if y_true is not None:
        acc32 = float(np.mean(np.argmax(f32, -1) == y_true))
        print(f"{'(f32)':<24}{'':>15}{'':>16}{acc32:>8.3f}")
    for label, mx, mean, acc, ms, warned in rows:
        a = f"{acc:>8.3f}" if acc is not None else f"{'':>8}"
        print(f"{label:<24}{mx:>15.4f}{mean:>16.5f}{a}{ms:>9.2f}  {'yes' if warned else 'no'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--no-trained", action="store_true", help="skip the trained JapaneseVowels model")
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}; ISA path {rc.isa()['in_use']}")
    if not a.no_trained:
        from rnncore.datasets import japanese_vowels
        from rnncore.demo import single_thread_blas
        from rnncore.nn.train import fit

        ds = japanese_vowels()
        Xtr, Xte = ds.X_train.astype(F32), ds.X_test.astype(F32)
        model = rc.nn.Sequential(rc.nn.GRU(12, 64, seed=0, dtype="float32"), rc.nn.LastStep(),
                                 rc.nn.Linear(64, 9, seed=1, dtype="float32"))
        with single_thread_blas():
            fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), Xtr, ds.y_train, ds.len_train,
                epochs=12, batch_size=16, clip=1.0, seed=0, verbose=False)
        measure("GRU(12->64) + last step + Linear(64->9), trained on JapaneseVowels (270 train / 370 test)",
                model, Xtr, ds.len_train, Xte, ds.len_test, ds.y_test, a.repeat)
    rng = np.random.default_rng(0)
    lstm = rc.nn.LSTM(8, 32, num_layers=2, seed=0, dtype="float32")
    Xc = rng.standard_normal((256, 50, 8)).astype(F32)
    Xt = rng.standard_normal((256, 50, 8)).astype(F32)
    measure("random LSTM(8->32, 2 layers), N(0, 1) inputs, 256 x 50 steps", lstm, Xc, None, Xt, None, None,
            a.repeat)


if __name__ == "__main__":
    main()
