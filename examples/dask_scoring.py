"""Score variable-length sensor recordings on a Dask cluster with a compiled rnncore engine.

A fleet's recordings, each ``(T_i, 12)`` floats of its own length, become a ``dask.bag`` of
``(recording id, x)`` records. The workers build each partition themselves (here a stand-in for
reading one file of recordings), score it with the engine and keep the scores; the script then
checks a sample of them against ``engine.run`` in this process. On a real cluster replace
``LocalCluster(...)`` with the scheduler's address: ``Client("tcp://scheduler:8786")``.

    pip install "rnncore[dask]"
    python examples/dask_scoring.py [--recordings 20000] [--workers 2]
"""

from __future__ import annotations

import argparse

import numpy as np


def read_recordings(part: int, n: int) -> list[tuple[str, np.ndarray]]:
    """One partition of recordings (stands for reading a file of them): ``[(id, x (T_i, 12))]``."""
    rng = np.random.default_rng(part)
    return [(f"truck{part:04d}-{i:05d}", rng.standard_normal((int(rng.integers(20, 200)), 12), np.float32))
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import dask
    import dask.bag as db
    from distributed import Client, LocalCluster

    import rnncore as rc
    from rnncore.integrations.dask import WORKER_CONFIG, score_bag

    # the model: a GRU classifier with 9 classes (load yours with rc.load("model.rnc"))
    model = rc.nn.Sequential(rc.nn.GRU(12, 64, seed=0), rc.nn.LastStep(), rc.nn.Linear(64, 9, seed=1))
    engine = rc.compile(model, precision="q8")

    per = args.recordings // args.partitions
    with dask.config.set(WORKER_CONFIG), \
            LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster, Client(cluster):
        recordings = db.from_delayed([dask.delayed(read_recordings)(p, per) for p in range(args.partitions)])
        scores = score_bag(engine, recordings, batch_size=64)       # a bag of (id, logits (9,))
        labels = scores.map(lambda r: (r[0], int(np.argmax(r[1]))))   # keep working on the cluster...
        counts = labels.pluck(1).frequencies().compute()            # ...and bring back only a summary
        sample = scores.take(5, npartitions=1)                      # or a few records
    print("predicted class counts:", dict(sorted(counts)))

    # the same numbers as one engine.run in this process (q8: bit for bit)
    ids, xs = zip(*read_recordings(0, per)[:5], strict=True)
    lengths = np.array([len(x) for x in xs])
    X = np.zeros((len(xs), lengths.max(), 12), np.float32)
    for i, x in enumerate(xs):
        X[i, :len(x)] = x
    expected = engine.run(X, lengths=lengths)
    assert [r[0] for r in sample] == list(ids)
    assert all(np.array_equal(r[1], e) for r, e in zip(sample, expected, strict=True))
    print(f"{sum(c for _, c in counts)} recordings scored; the first 5 equal engine.run bit for bit")


if __name__ == "__main__":
    main()
