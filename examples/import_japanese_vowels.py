"""Train GRU and LSTM classifiers in PyTorch on JapaneseVowels, import them into rnncore, compare.

The task-level check of the importers: a model trained on real, variable-length data
(JapaneseVowels, 9 speakers, 7-29 frames of 12 LPC coefficients, shipped in ``rnncore/data/``)
keeps its predictions after ``rc.io.from_torch`` — on the NumPy reference and on the
compiled C engine in f32 — and loses at most a fraction of a point in int8 (q8).

Run::

    python examples/import_japanese_vowels.py            # hidden 32, 60 epochs
    python examples/import_japanese_vowels.py --hidden 64 --epochs 80

Prints, for each model: test accuracy of PyTorch, the reference, the f32 and q8 engines, how
many test predictions differ from PyTorch's, and the largest logit difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_classifier(kind: str, input_size: int, hidden: int, classes: int):
    """A PyTorch module: recurrent layer -> final state of the last valid step -> Linear."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(input_size, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, classes)

        def forward(self, x, lengths=None):
            if lengths is not None:
                x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths).cpu(),
                                                            batch_first=True, enforce_sorted=False)
            _, h = self.rnn(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.head(h[-1])

    return Classifier()


def train_torch(kind: str, data, hidden: int = 32, epochs: int = 60, seed: int = 0, lr: float = 1e-2):
    """Train with Adam on mini-batches of 32; returns the module in eval mode."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    m = make_classifier(kind, data.num_features, hidden, data.num_classes)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train)
    lens = data.len_train
    g = np.random.default_rng(seed)
    for _ in range(epochs):
        order = g.permutation(len(X))
        for i in range(0, len(X), 32):
            idx = order[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(X[idx], lens[idx]), y[idx])
            loss.backward()
            opt.step()
    return m.eval()


def evaluate(kind: str, data, hidden: int = 32, epochs: int = 60, seed: int = 0,
             engines: bool = True) -> dict:
    """Train ``kind`` ("GRU"/"LSTM"), import it, and compare every runtime on the test split."""
    import torch

    import rnncore as rc

    t0 = time.perf_counter()
    m = train_torch(kind, data, hidden, epochs, seed)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        logits_t = m(torch.as_tensor(data.X_test, dtype=torch.float32), data.len_test).numpy()
    model = rc.io.from_torch(m, dtype="float32")
    out = {"kind": kind, "hidden": hidden, "epochs": epochs, "train_seconds": train_s,
           "structure": [type(x).__name__ for x in model], "torch": logits_t}
    out["reference"] = model.forward(data.X_test.astype(np.float32), lengths=data.len_test)
    if engines:
        out["engine_f32"] = rc.compile(model, precision="f32").run(data.X_test.astype(np.float32),
                                                                   lengths=data.len_test)
        calib = (data.X_train.astype(np.float32), data.len_train)
        out["engine_q8"] = rc.compile(model, precision="q8", calibration=calib).run(
            data.X_test.astype(np.float32), lengths=data.len_test)
    pred_t = logits_t.argmax(1)
    out["accuracy"] = {}
    for key in ("torch", "reference", "engine_f32", "engine_q8"):
        if key in out:
            pred = out[key].argmax(1)
            out["accuracy"][key] = {
                "accuracy": float((pred == data.y_test).mean()),
                "differ_from_torch": int((pred != pred_t).sum()),
                "max_logit_diff": float(np.abs(out[key] - logits_t).max()),
            }
    return out


def main(argv=None) -> None:
    import platform

    from rnncore.datasets import japanese_vowels

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-engine", action="store_true", help="skip the compiled engine (reference only)")
    a = p.parse_args(argv)
    data = japanese_vowels(dtype="float32")
    print(f"JapaneseVowels: {len(data.y_train)} train / {len(data.y_test)} test sequences, "
          f"{data.num_classes} classes; CPU {platform.processor() or platform.machine()}")
    for kind in ("GRU", "LSTM"):
        r = evaluate(kind, data, a.hidden, a.epochs, a.seed, engines=not a.no_engine)
        print(f"\n{kind} (hidden {a.hidden}, {a.epochs} epochs, trained in {r['train_seconds']:.1f} s), "
              f"imported as {r['structure']}")
        print(f"  {'runtime':<12} {'test acc':>9} {'preds != torch':>15} {'max |logit diff|':>17}")
        for key, v in r["accuracy"].items():
            print(f"  {key:<12} {100 * v['accuracy']:>8.2f}% {v['differ_from_torch']:>15d} "
                  f"{v['max_logit_diff']:>17.2e}")


if __name__ == "__main__":
    main()
