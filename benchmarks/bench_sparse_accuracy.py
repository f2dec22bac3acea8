"""Accuracy of block-pruned models: the ``rnncore demo`` GRU classifier trained dense and with
``rc.nn.BlockPruning`` to a block density (16 x 4 blocks, every gate of W_ih and W_hh) ramped
over the first ``--ramp`` epochs and fine-tuned for the rest; test accuracy of the NumPy model
and of the C core's q8 engine (dense file and block-sparse file: the same outputs, checked).

Datasets (``--dataset``), each with the recipe of the test suite / docs/integer.md:

* ``japanese_vowels``: GRU(12 -> 64) -> LastStep -> Linear(64 -> 9), Adam lr 5e-3, clip 1,
  batch 16, 370 test utterances (one = 0.27 points);
* ``basic_motions``: GRU(6 -> 64) -> LastStep -> Linear(64 -> 4), Adam lr 5e-3, clip 1,
  batch 4, 60 epochs (40 training recordings), 40 test recordings (one = 2.5 points).

    python3 benchmarks/bench_sparse_accuracy.py [--dataset japanese_vowels|basic_motions]
        [--densities 1 0.5 0.3] [--seeds 0 1 2] [--epochs N] [--ramp R] [--shared-gates]
"""

from __future__ import annotations

import argparse

import numpy as np

import rnncore as rc
from rnncore.datasets import basic_motions, japanese_vowels
from rnncore.demo import build_model, single_thread_blas
from rnncore.nn.train import evaluate, fit

# dataset: (loader, default epochs, default ramp, batch size)
DATASETS = {"japanese_vowels": (japanese_vowels, 12, 6.0, 16),
            "basic_motions": (basic_motions, 60, 24.0, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="japanese_vowels", choices=list(DATASETS))
    ap.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=0, help="0: the dataset's default")
    ap.add_argument("--ramp", type=float, default=0.0, help="0: the dataset's default")
    ap.add_argument("--keep-diagonal", action="store_true")
    ap.add_argument("--shared-gates", action="store_true",
                    help="one block mask for every gate of a matrix (BlockPruning(shared_gates=True))")
    a = ap.parse_args()
    load, epochs, ramp, batch = DATASETS[a.dataset]
    epochs, ramp = a.epochs or epochs, a.ramp or ramp
    ds = load()
    X = ds.X_test.astype(np.float32)
    print(f"{a.dataset}: {epochs} epochs, batch {batch}, ramp over {ramp} epochs"
          + (", one mask shared by the gates" if a.shared_gates else ""))
    print(f"{'density':>7} {'seed':>4} | {'numpy f64':>9} {'C q8 dense':>10} {'C q8 sparse':>11} |"
          " blocks kept")
    for d in a.densities:
        for seed in a.seeds:
            model = build_model(64, ds.num_classes, ds.num_features, seed)
            opt = rc.nn.Adam(model, lr=5e-3)
            pr = None if d >= 1.0 else rc.nn.BlockPruning(model, d, end_epoch=ramp,
                                                            keep_diagonal=a.keep_diagonal,
                                                            shared_gates=a.shared_gates)
            with single_thread_blas():
                fit(model, rc.nn.CrossEntropy(), opt, ds.X_train, ds.y_train, ds.len_train,
                    epochs=epochs, batch_size=batch, clip=1.0, seed=seed, verbose=False, prune=pr)
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
