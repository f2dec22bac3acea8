"""Test accuracy of fully-integer models (rnncore.quant.integer) against their float models.

    python benchmarks/bench_int_accuracy.py [--epochs 12]

Trains JapaneseVowels speaker classifiers with the NumPy reference (the demo's recipe: Adam
lr 5e-3, clip 1.0, batch 16; features normalised as ``rnncore.datasets.japanese_vowels``), then
calibrates on the training set (``calibrate_int``), quantises (``quantize_int_model``) and
scores the test set in float64 and in integer arithmetic. Prints a Markdown table
(docs/integer.md, "Accuracy"): float and integer test accuracy, the difference in points, and
the float/integer argmax agreement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore as rc
from rnncore.datasets import japanese_vowels
from rnncore.demo import single_thread_blas
from rnncore.nn.train import fit
from rnncore.quant import integer as qi


def models(ds):
    i, c = ds.num_features, ds.num_classes
    seq = rc.nn.Sequential
    return [
        ("GRU 12->64 (the demo's)", seq(rc.nn.GRU(i, 64, seed=0), rc.nn.LastStep(),
                                        rc.nn.Linear(64, c, seed=1))),
        ("GRU 12->64 reset_after=False", seq(rc.nn.GRU(i, 64, reset_after=False, seed=0), rc.nn.LastStep(),
                                             rc.nn.Linear(64, c, seed=1))),
        ("GRU 12->16", seq(rc.nn.GRU(i, 16, seed=0), rc.nn.LastStep(), rc.nn.Linear(16, c, seed=1))),
        ("GRU 12->32 x2 layers", seq(rc.nn.GRU(i, 32, num_layers=2, seed=0), rc.nn.LastStep(),
                                     rc.nn.Linear(32, c, seed=1))),
        ("LSTM 12->64", seq(rc.nn.LSTM(i, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, c, seed=1))),
        ("RNN tanh 12->64", seq(rc.nn.RNN(i, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, c, seed=1))),
        ("RNN ReLU 12->64", seq(rc.nn.RNN(i, 64, nonlinearity="relu", seed=0), rc.nn.LastStep(),
                                rc.nn.Linear(64, c, seed=1))),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    args = p.parse_args()
    ds = japanese_vowels()
    print("| model (JapaneseVowels, 370 test utterances) | float acc. | integer acc. | change (points) "
          "| argmax agreement |")
    print("|---|---|---|---|---|")
    for name, model in models(ds):
        t0 = time.perf_counter()
        with single_thread_blas():
            fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), ds.X_train, ds.y_train, ds.len_train,
                epochs=args.epochs, batch_size=16, clip=1.0, seed=0, verbose=False)
        yf = qi.float_sequence(model, ds.X_test, ds.len_test)
        qm = qi.quantize_int_model(model, qi.calibrate_int(model, ds.X_train, ds.len_train))
        yq, _ = qi.int_forward(qm, ds.X_test, ds.len_test)
        af = float(np.mean(yf.argmax(-1) == ds.y_test))
        aq = float(np.mean(yq.argmax(-1) == ds.y_test))
        agree = float(np.mean(yf.argmax(-1) == yq.argmax(-1)))
        print(f"| {name} | {100 * af:.2f} % | {100 * aq:.2f} % | {100 * (aq - af):+.2f} "
              f"| {100 * agree:.2f} % |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - t0:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
