"""Test accuracy of fully-integer models (rnncore.quant.integer) against their float models.

    python benchmarks/bench_int_accuracy.py [--epochs N] [--dataset japanese_vowels|basic_motions|all]

Trains classifiers with the NumPy reference (the demo's recipe: Adam lr 5e-3, clip 1.0; 12
epochs of batch 16 on JapaneseVowels, 60 epochs of batch 4 on BasicMotions' 40 recordings;
features normalised as ``rnncore.datasets`` does) on JapaneseVowels (speakers) and BasicMotions
(activities), then calibrates on the training set (``calibrate_int``, its default least-squared-error
input range), quantises
(``quantize_int_model``) with each activation family (gemmlowp's, the default, and the
interpolated tables, GRU and RNN only) and scores the test set in float64 and in integer
arithmetic. Prints a Markdown table per dataset (docs/integer.md, "Accuracy"): float and integer
test accuracy, the difference in points, and the float/integer argmax agreement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore as rc
from rnncore.datasets import basic_motions, japanese_vowels
from rnncore.demo import single_thread_blas
from rnncore.nn.train import fit
from rnncore.quant import integer as qi


def models(ds):
    i, c = ds.num_features, ds.num_classes
    seq = rc.nn.Sequential
    return [
        (f"GRU {i}->64" + (" (the demo's)" if i == 12 else ""),
         seq(rc.nn.GRU(i, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, c, seed=1))),
        (f"GRU {i}->64 reset_after=False", seq(rc.nn.GRU(i, 64, reset_after=False, seed=0), rc.nn.LastStep(),
                                             rc.nn.Linear(64, c, seed=1))),
        (f"GRU {i}->16", seq(rc.nn.GRU(i, 16, seed=0), rc.nn.LastStep(), rc.nn.Linear(16, c, seed=1))),
        (f"GRU {i}->32 x2 layers", seq(rc.nn.GRU(i, 32, num_layers=2, seed=0), rc.nn.LastStep(),
                                     rc.nn.Linear(32, c, seed=1))),
        (f"LSTM {i}->64", seq(rc.nn.LSTM(i, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, c, seed=1))),
        (f"RNN tanh {i}->64", seq(rc.nn.RNN(i, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, c, seed=1))),
        (f"RNN ReLU {i}->64", seq(rc.nn.RNN(i, 64, nonlinearity="relu", seed=0), rc.nn.LastStep(),
                                rc.nn.Linear(64, c, seed=1))),
    ]


# dataset: (title, loader, epochs, batch size); BasicMotions has 40 training recordings, so it
# takes more epochs of smaller batches for as many updates
DATASETS = {"japanese_vowels": ("JapaneseVowels, 370 test utterances", japanese_vowels, 12, 16),
            "basic_motions": ("BasicMotions, 40 test recordings", basic_motions, 60, 4)}


def _score(qm, ds, yf):
    yq, _ = qi.int_forward(qm, ds.X_test, ds.len_test)
    return float(np.mean(yq.argmax(-1) == ds.y_test)), float(np.mean(yf.argmax(-1) == yq.argmax(-1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=0, help="override the dataset's epochs")
    p.add_argument("--dataset", default="all", choices=["all", *DATASETS])
    args = p.parse_args()
    for key in DATASETS if args.dataset == "all" else [args.dataset]:
        title, load, epochs, batch = DATASETS[key]
        epochs = args.epochs or epochs
        ds = load()
        print(f"\n| model ({title}) | float acc. | integer acc. (gemmlowp) | change (points) "
              "| integer acc. (table) | change (points) | argmax agreement (gemmlowp / table) |")
        print("|---|---|---|---|---|---|---|")
        for name, model in models(ds):
            t0 = time.perf_counter()
            with single_thread_blas():
                fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), ds.X_train, ds.y_train,
                    ds.len_train, epochs=epochs, batch_size=batch, clip=1.0, seed=0, verbose=False)
            yf = qi.float_sequence(model, ds.X_test, ds.len_test)
            af = float(np.mean(yf.argmax(-1) == ds.y_test))
            cal = qi.calibrate_int(model, ds.X_train, ds.len_train)
            aq, agree = _score(qi.quantize_int_model(model, cal), ds, yf)
            if "LSTM" in name:
                at_text, dt_text, agree_t = "n/a", "n/a", "n/a"
            else:
                at, agree_t = _score(qi.quantize_int_model(model, cal, activation="table"), ds, yf)
                at_text, dt_text = f"{100 * at:.2f} %", f"{100 * (at - af):+.2f}"
                agree_t = f"{100 * agree_t:.2f} %"
            print(f"| {name} | {100 * af:.2f} % | {100 * aq:.2f} % | {100 * (aq - af):+.2f} | {at_text} "
                  f"| {dt_text} | {100 * agree:.2f} % / {agree_t} |", flush=True)
            print(f"<!-- {name}: {time.perf_counter() - t0:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
