"""Test accuracy of fully-integer models (rnncore.quant.integer) against their float models.

    python benchmarks/bench_int_accuracy.py [--epochs N] [--dataset japanese_vowels|basic_motions|all]
    python benchmarks/bench_int_accuracy.py --seeds 6 [--dataset ...]

Trains classifiers with the NumPy reference (the demo's recipe: Adam lr 5e-3, clip 1.0; 12
epochs of batch 16 on JapaneseVowels, 60 epochs of batch 4 on BasicMotions' 40 recordings;
features normalised as ``rnncore.datasets`` does) on JapaneseVowels (speakers) and BasicMotions
(activities), then calibrates on the training set (``calibrate_int``, its default least-squared-error
input range), quantises
(``quantize_int_model``) with each activation family (gemmlowp's, the default, and the
interpolated tables, GRU and RNN only) and scores the test set in float64 and in integer
arithmetic. Prints a Markdown table per dataset (docs/integer.md, "Accuracy"): float and integer
test accuracy, the difference in points, and the float/integer argmax agreement; the last
columns are the same model with an int16 input (``calibrate_int(..., input_dtype="int16")``,
symmetric, gemmlowp activations).

``--seeds N``: the input-type study of docs/integer.md ("An int16 input"): GRU I->64, GRU I->16,
LSTM I->64 and RNN ReLU I->64 trained with seeds 1..N (init and batch order), each quantised with
an int8 input (least-squared-error and min/max ranges) and an int16 input (the same two recipes);
prints, per model kind and in total, the test predictions that differ from the float model's and
the test accuracy change.
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


def _train(model, ds, epochs, batch, seed=0):
    with single_thread_blas():
        fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), ds.X_train, ds.y_train,
            ds.len_train, epochs=epochs, batch_size=batch, clip=1.0, seed=seed, verbose=False)


def _score(qm, ds, yf):
    yq, _ = qi.int_forward(qm, ds.X_test, ds.len_test)
    return float(np.mean(yq.argmax(-1) == ds.y_test)), float(np.mean(yf.argmax(-1) == yq.argmax(-1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=0, help="override the dataset's epochs")
    p.add_argument("--dataset", default="all", choices=["all", *DATASETS])
    p.add_argument("--seeds", type=int, default=0, help="the input-type study over seeds 1..N")
    args = p.parse_args()
    if args.seeds:
        return seeds_study(args)
    for key in DATASETS if args.dataset == "all" else [args.dataset]:
        title, load, epochs, batch = DATASETS[key]
        epochs = args.epochs or epochs
        ds = load()
        print(f"\n| model ({title}) | float acc. | integer acc. (gemmlowp) | change (points) "
              "| integer acc. (table) | change (points) | argmax agreement (gemmlowp / table) "
              "| int16 input: integer acc. | change (points) | argmax agreement |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, model in models(ds):
            t0 = time.perf_counter()
            _train(model, ds, epochs, batch)
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
            cal16 = qi.calibrate_int(model, ds.X_train, ds.len_train, input_dtype="int16")
            a16, agree16 = _score(qi.quantize_int_model(model, cal16), ds, yf)
            print(f"| {name} | {100 * af:.2f} % | {100 * aq:.2f} % | {100 * (aq - af):+.2f} | {at_text} "
                  f"| {dt_text} | {100 * agree:.2f} % / {agree_t} | {100 * a16:.2f} % "
                  f"| {100 * (a16 - af):+.2f} | {100 * agree16:.2f} % |", flush=True)
            print(f"<!-- {name}: {time.perf_counter() - t0:.1f} s -->", flush=True)


RECIPES = [("int8", "mse"), ("int8", "minmax"), ("int16", "mse"), ("int16", "minmax")]


def seeds_study(args) -> None:
    """Changed test predictions (against float) per input type and range recipe over seeds."""
    for key in DATASETS if args.dataset == "all" else [args.dataset]:
        title, load, epochs, batch = DATASETS[key]
        epochs = args.epochs or epochs
        ds = load()
        i, c = ds.num_features, ds.num_classes
        kinds = {f"GRU {i}->64": lambda s, i=i: rc.nn.GRU(i, 64, seed=s),
                 f"GRU {i}->16": lambda s, i=i: rc.nn.GRU(i, 16, seed=s),
                 f"LSTM {i}->64": lambda s, i=i: rc.nn.LSTM(i, 64, seed=s),
                 f"RNN ReLU {i}->64": lambda s, i=i: rc.nn.RNN(i, 64, nonlinearity="relu", seed=s)}
        total = {r: [0, 0.0] for r in RECIPES}
        print(f"\n{title}: test predictions changed against float (and summed accuracy change, points), "
              f"seeds 1..{args.seeds}")
        print("| model | " + " | ".join(f"{d} input, {r}" for d, r in RECIPES) + " |")
        print("|---|" + "---|" * len(RECIPES))
        for name, make in kinds.items():
            row = {r: [0, 0.0] for r in RECIPES}
            for seed in range(1, args.seeds + 1):
                h = 16 if "->16" in name else 64
                model = rc.nn.Sequential(make(seed), rc.nn.LastStep(), rc.nn.Linear(h, c, seed=seed + 100))
                _train(model, ds, epochs, batch, seed)
                yf = qi.float_sequence(model, ds.X_test, ds.len_test)
                af = float(np.mean(yf.argmax(-1) == ds.y_test))
                for d, r in RECIPES:
                    cal = qi.calibrate_int(model, ds.X_train, ds.len_train, input_range=r, input_dtype=d)
                    yq, _ = qi.int_forward(qi.quantize_int_model(model, cal), ds.X_test, ds.len_test)
                    row[(d, r)][0] += int(np.sum(yq.argmax(-1) != yf.argmax(-1)))
                    row[(d, r)][1] += 100 * (float(np.mean(yq.argmax(-1) == ds.y_test)) - af)
            for k in RECIPES:
                total[k][0] += row[k][0]
                total[k][1] += row[k][1]
            print(f"| {name} | " + " | ".join(f"{row[k][0]} ({row[k][1]:+.2f})" for k in RECIPES) + " |",
                  flush=True)
        print("| all | " + " | ".join(f"{total[k][0]} ({total[k][1]:+.2f})" for k in RECIPES) + " |",
              flush=True)


if __name__ == "__main__":
    main()
