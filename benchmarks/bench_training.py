"""Training time: rnncore's NumPy reference vs PyTorch (CPU, one thread each) on JapaneseVowels.

The same model (GRU(12 -> H) -> last valid step -> Linear(H -> 9)), the same data
(per-channel normalised, padded, with lengths), the same hyper-parameters (Adam,
gradient clipping at 1.0, mini-batches shuffled the same way) and the same number of
epochs, trained by both; prints a table with wall time and test accuracy.

    python benchmarks/bench_training.py [--epochs 12] [--hidden 64] [--batch-size 16] [--lr 5e-3]
                                        [--seeds 0 1 2] [--threads 1] [--repeat 3]

PyTorch consumes the variable lengths through ``pack_padded_sequence`` (its standard,
fastest route for a GRU classifier on variable-length sequences); rnncore through
``lengths=``. Both trim each batch to its longest sequence. numpy's BLAS is limited to one
thread (threadpoolctl) for rnncore, as torch is with ``set_num_threads(1)``. Times are
the fastest of ``--repeat`` interleaved runs (training is deterministic per seed, so the
accuracy does not change between repeats).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from machine import cpu_name


def train_rnncore(ds, epochs, hidden, batch_size, lr, seed):
    import rnncore as rc
    from rnncore.demo import single_thread_blas
    from rnncore.nn.train import evaluate, fit

    dt = str(ds.X_train.dtype)
    model = rc.nn.Sequential(rc.nn.GRU(12, hidden, seed=seed, dtype=dt), rc.nn.LastStep(),
                             rc.nn.Linear(hidden, ds.num_classes, seed=seed + 1, dtype=dt))
    opt = rc.nn.Adam(model, lr=lr)
    loss = rc.nn.CrossEntropy()
    with single_thread_blas():                 # one core, like torch.set_num_threads(1)
        t0 = time.perf_counter()
        fit(model, loss, opt, ds.X_train, ds.y_train, ds.len_train, epochs=epochs, batch_size=batch_size,
            clip=1.0, seed=seed, verbose=False)
        elapsed = time.perf_counter() - t0
    _, acc = evaluate(model, loss, ds.X_test, ds.y_test, ds.len_test)
    return elapsed, acc


def train_torch(ds, epochs, hidden, batch_size, lr, seed):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(12, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, ds.num_classes)

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, h_n = self.gru(packed)
            return self.head(h_n[-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    X, y, L = (torch.tensor(ds.X_train, dtype=torch.float32), torch.tensor(ds.y_train),
               torch.tensor(ds.len_train))
    rng = np.random.default_rng(seed)
    N = X.shape[0]
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(N)
        for s in range(0, N, batch_size):
            idx = torch.tensor(order[s: s + batch_size])
            lb = L[idx]
            xb = X[idx, : int(lb.max())]
            opt.zero_grad()
            out = net(xb, lb)
            torch.nn.functional.cross_entropy(out, y[idx]).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    elapsed = time.perf_counter() - t0
    with torch.no_grad():
        pred = net(torch.tensor(ds.X_test, dtype=torch.float32), torch.tensor(ds.len_test)).argmax(1).numpy()
    return elapsed, float(np.mean(pred == ds.y_test))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3,
                    help="train each (engine, seed) this many times, interleaved; report the fastest")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rnncore.datasets import japanese_vowels

    ds64, ds32 = japanese_vowels(dtype="float64"), japanese_vowels(dtype="float32")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); torch {torch.__version__} with "
          f"{torch.get_num_threads()} thread(s); numpy {np.__version__}")
    print(f"JapaneseVowels: {len(ds64.y_train)} train / {len(ds64.y_test)} test, GRU(12->{args.hidden}) -> "
          f"LastStep -> Linear({args.hidden}->9), Adam lr={args.lr}, clip 1.0, batch {args.batch_size}, "
          f"{args.epochs} epochs\n")
    hp = (args.epochs, args.hidden, args.batch_size, args.lr)
    engines = {
        "rnncore float64": lambda seed: train_rnncore(ds64, *hp, seed),
        "rnncore float32": lambda seed: train_rnncore(ds32, *hp, seed),
        "torch float32": lambda seed: train_torch(ds32, *hp, seed),
    }
    rows = []
    for seed in args.seeds:
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):                     # interleaved, so load changes hit all alike
            for name, train in engines.items():
                t, acc = train(seed)
                if name not in best or t < best[name][0]:
                    best[name] = (t, acc)
        rows += [(name, seed, *best[name]) for name in engines]
    print(f"{'engine':<18}{'seed':>5}{'train time (s)':>16}{'test accuracy':>15}")
    for name, seed, t, acc in rows:
        print(f"{name:<18}{seed:>5}{t:>16.2f}{acc:>15.4f}")
    print()
    med = {}
    for name in dict.fromkeys(r[0] for r in rows):
        ts = [r[2] for r in rows if r[0] == name]
        accs = [r[3] for r in rows if r[0] == name]
        med[name] = float(np.median(ts))
        print(f"{name:<18} median time {med[name]:6.2f} s   mean accuracy {np.mean(accs):.4f}")
    for name in ("rnncore float64", "rnncore float32"):
        print(f"{name} / torch time ratio: {med[name] / med['torch float32']:.2f}x")


if __name__ == "__main__":
    main()
