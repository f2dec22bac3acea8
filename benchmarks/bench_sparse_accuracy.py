"""Accuracy of block-pruned models: the ``rnncore demo`` GRU classifier (JapaneseVowels, GRU(12 ->
64) -> LastStep -> Linear(64 -> 9), Adam lr 5e-3, clip 1, batch 16) trained dense and with
``rc.nn.BlockPruning`` to a block density (16 x 4 blocks, every gate of W_ih and W_hh) ramped
over the first ``--ramp`` epochs and fine-tuned for the rest; test accuracy of the NumPy model
and of the C core's q8 engine (dense file and block-sparse file: the same outputs, checked).

    python3 benchmarks/bench_sparse_accuracy.py [--densities 1 0.5 0.3] [--seeds 0 1 2]
        [--epochs 12] [--ramp 6]
"""

from __future__ import annotations

import argparse

import numpy as np

import rnncore as rc
from rnncore.datasets import japanese_vowels
from rnncore.demo import build_model, single_thread_blas
from rnncore.nn.train import evaluate, fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--ramp", type=float, default=6.0)
    ap.add_argument("--keep-diagonal", action="store_true")
    a = ap.parse_args()
    ds = japanese_vowels()
    X = ds.X_test.astype(np.float32)
    print(f"{'density':>7} {'seed':>4} | {'numpy f64':>9} {'C q8 dense':>10} {'C q8 sparse':>11} |"
          " blocks kept")
    for d in a.densities:
        for seed in a.seeds:
            model = build_model(64, ds.num_classes, ds.num_features, seed)
            opt = rc.nn.Adam(model, lr=5e-3)
            pr = None if d >= 1.0 else rc.nn.BlockPruning(model, d, end_epoch=a.ramp,
                                                            keep_diagonal=a.keep_diagonal)
            with single_thread_blas():
                fit(model, rc.nn.CrossEntropy(), opt, ds.X_train, ds.y_train, ds.len_train,
                    epochs=a.epochs, batch_size=16, clip=1.0, seed=seed, verbose=False, prune=pr)
                _, acc = evaluate(model, rc.nn.CrossEntropy(), ds.X_test, ds.y_test, ds.len_test)
            dense = rc.compile(model, "q8")
            y0 = dense.run(X, ds.len_test)
            kept = ""
            if pr is not None:
                sp = rc.compile(model, "q8", sparse={"max_density": 1.0})
                y1 = sp.run(X, ds.len_test)
                assert np.array_equal(y0, y1)
                kept = " ".join(f"{n.split('.')[-1]} {np.round(v, 2).tolist()}"
                                for n, v in pr.block_density(model).items())
            else:
                y1 = y0
            a0 = float(np.mean(y0.argmax(1) == ds.y_test))
            a1 = float(np.mean(y1.argmax(1) == ds.y_test))
            print(f"{d:7.2f} {seed:4d} | {acc:9.4f} {a0:10.4f} {a1:11.4f} | {kept}", flush=True)


if __name__ == "__main__":
    main()
