"""``rnncore demo``: train a GRU speaker classifier on JapaneseVowels with the NumPy reference.

The data ships inside rnncore (``rnncore/data/``, UCI Japanese Vowels), so nothing is downloaded
and nothing but numpy is needed.
Model: ``GRU(12 -> H)`` -> output at each utterance's last valid step -> ``Linear(H -> 9)``,
trained with Adam and global gradient-norm clipping at 1.0 on per-channel normalised,
variable-length sequences. Prints one progress line per epoch and the test accuracy,
then saves the weights (``np.savez`` of the ``state_dict``, PyTorch names). Then runs the
trained model on the compiled C engine in f32 and q8, times a streaming step and saves the q8
model as ``.rnc`` next to the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Sequence

import numpy as np

DEFAULTS = dict(epochs=12, hidden=64, seed=0, lr=5e-3, batch_size=16, out="demo_model.npz", dtype="float64")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--epochs", type=int, default=d["epochs"],
                        help=f"passes over the data (default {d['epochs']})")
    parser.add_argument("--hidden", type=int, default=d["hidden"],
                        help=f"GRU hidden size (default {d['hidden']})")
    from rnncore.cli._common import non_negative_int, positive_float

    parser.add_argument("--seed", type=non_negative_int, default=d["seed"],
                        help="seed of initialisation and shuffling")
    parser.add_argument("--lr", type=positive_float, default=d["lr"],
                        help=f"Adam learning rate (default {d['lr']})")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"], help="sequences per step")
    parser.add_argument("--dtype", choices=["float64", "float32"], default=d["dtype"])
    parser.add_argument("--out", default=d["out"], help=f"where to save the weights (default ./{d['out']})")


def single_thread_blas() -> contextlib.AbstractContextManager:
    """Limit numpy's BLAS to one thread (:func:`rnncore.blas.blas_threads`, no dependency).

    The matrices of this model are small (batch 16 x hidden 64): a multi-threaded BLAS
    spends more time synchronising than computing, and is several times slower when the
    other cores are busy. (``fit`` does this itself; the evaluation runs in it too.)
    """
    from rnncore.blas import blas_threads

    return blas_threads(1)


def build_model(hidden: int, num_classes: int = 9, input_size: int = 12, seed: int = 0,
                dtype: str = "float64"):
    """``Sequential(GRU(input_size -> hidden), LastStep(), Linear(hidden -> num_classes))``."""
    import rnncore as rc

    return rc.nn.Sequential(
        rc.nn.GRU(input_size, hidden, seed=seed, dtype=dtype),
        rc.nn.LastStep(),
        rc.nn.Linear(hidden, num_classes, seed=seed + 1, dtype=dtype),
    )


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate and save; returns a summary dict (accuracy, times, path, history)."""
    import rnncore as rc
    from rnncore.datasets import japanese_vowels
    from rnncore.nn.train import evaluate, fit

    for name in ("epochs", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"rnncore demo: --{name.replace('_', '-')} must be a positive integer, "
                             f"got {getattr(args, name)}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise SystemExit(f"rnncore demo: --out {args.out}: the directory {out_dir} does not exist")
    t_start = time.perf_counter()
    ds = japanese_vowels(dtype=args.dtype)
    print(f"JapaneseVowels (UCI, shipped with rnncore): {len(ds.y_train)} train / {len(ds.y_test)} test "
          "utterances, "
          f"{ds.num_features} channels, lengths {ds.len_train.min()}..{ds.len_train.max()}, "
          f"{ds.num_classes} speakers")
    model = build_model(args.hidden, ds.num_classes, ds.num_features, args.seed, args.dtype)
    print(f"model: GRU({ds.num_features} -> {args.hidden}) -> LastStep -> Linear({args.hidden} -> "
          f"{ds.num_classes}), {model.num_parameters()} parameters, {args.dtype}; Adam lr={args.lr}, "
          f"clip 1.0, batch {args.batch_size}, {args.epochs} epochs")
    loss = rc.nn.CrossEntropy()
    opt = rc.nn.Adam(model, lr=args.lr)
    with single_thread_blas():
        history = fit(model, loss, opt, ds.X_train, ds.y_train, ds.len_train, epochs=args.epochs,
                      batch_size=args.batch_size, clip=1.0, seed=args.seed)
        test_loss, test_acc = evaluate(model, loss, ds.X_test, ds.y_test, ds.len_test)
    train_time = history["time"][-1]
    n_ok = int(round(test_acc * len(ds.y_test)))
    print(f"test accuracy: {test_acc:.4f} ({n_ok}/{len(ds.y_test)})  test loss {test_loss:.4f}  "
          f"training time {train_time:.1f}s")
    sd = model.state_dict()
    np.savez(args.out, **sd)
    print(f"saved model weights ({len(sd)} arrays, state_dict names) to {args.out}")
    summary = {"test_accuracy": test_acc, "test_loss": test_loss, "train_time": train_time,
               "out": args.out, "history": history}
    summary.update(compiled(model, ds, os.path.splitext(args.out)[0] + ".rnc"))
    summary["total_time"] = time.perf_counter() - t_start
    return summary


def compiled(model, ds, rnc_path: str) -> dict:
    """Run the trained model on the C core (f32 and q8), time one streaming step, save the q8 model.

    Returns the engines' test accuracies, the q8 step latency and the saved path; prints them.
    Without the compiled extension (a pure-Python install) it says so and returns ``{}``.
    """
    import rnncore as rc

    try:
        isa = rc.isa()["in_use"]
    except ImportError as e:  # the C extension was not built
        print(f"C engine: not available in this install ({e})")
        return {}
    X = ds.X_test.astype(np.float32)
    acc = {}
    for precision in ("f32", "q8"):
        engine = rc.compile(model, precision=precision)
        acc[precision] = float(np.mean(engine.run(X, ds.len_test).argmax(1) == ds.y_test))
    stream = engine.stream(batch=1)
    x, out = np.ascontiguousarray(X[:1, 0]), np.empty((1, engine.output_size), np.float32)
    n, best = 2000, float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            stream.step(x, out=out)
        best = min(best, (time.perf_counter() - t0) / n)
    print(f"C engine ({isa}): test accuracy f32 {acc['f32']:.4f}, q8 {acc['q8']:.4f}; "
          f"q8 streaming step {best * 1e6:.2f} us (batch 1, from Python)")
    engine.save(rnc_path)
    print(f"saved the q8 engine ({os.path.getsize(rnc_path)} bytes) to {rnc_path}; "
          f"rnncore.load() or the C API runs it")
    return {"engine_accuracy": acc, "q8_step_seconds": best, "rnc": rnc_path}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnncore demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
