"""Batch-scoring throughput: one process against a local Dask cluster, on the same data.

The data: ``--sequences`` synthetic sensor recordings of ``--features`` channels, lengths uniform
in ``[--min-len, --max-len]``, as ``(id, x (T_i, F))`` records in ``--partitions`` partitions.
The model: the demo's shape, GRU(F -> H) -> last valid step -> Linear(H -> 9), random weights,
compiled f32 and q8. Three ways to score every record (rnncore.integrations.dask):

* ``1 process``: ``score_records`` over each partition in turn, in this process;
* ``dask 1x1`` / ``dask 2x1``: ``score_bag`` on a ``LocalCluster`` of 1 / 2 worker processes with
  one thread each and ``WORKER_CONFIG`` (``--dask-env``: also 2 workers in Dask's default
  environment); the input partitions made on the workers and kept in their memory (``persist``,
  as if the workers had read them from storage), the outputs left there (``persist`` + ``wait``);
  the ``+gather`` column adds bringing every ``(id, y)`` back to this process.

Sequences/s and steps/s (sum of the lengths) are the best of ``--repeat`` runs. ``cpu s`` is the
CPU time (user + system) the scoring took: this process's for ``1 process``, the worker processes'
(summed) for Dask, whose scheduler and client (this process) took ``sched s``. On a machine shared
with other jobs the CPU times say more than the wall times. Every way's outputs are checked equal
to the first's.

    python benchmarks/bench_dask.py [--sequences 40000] [--hidden 64] [--batch-size 64] [--repeat 3]
                                    [--dask-env]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from machine import cpu_name


def make_partition(part: int, n: int, features: int, min_len: int, max_len: int, seed: int):
    rng = np.random.default_rng([seed, part])
    lens = rng.integers(min_len, max_len + 1, n)
    return [(part * n + i, rng.standard_normal((int(t), features)).astype(np.float32))
            for i, t in enumerate(lens)]


def _cpu() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Run:
    """An EngineScorer whose graph keys differ per run: persisting the same graph again would
    only reuse the results still held by the previous run's futures."""

    def __new__(cls, engine, batch_size: int, run: int):
        from rnncore.integrations.dask import EngineScorer

        class Scorer(EngineScorer):
            def __dask_tokenize__(self):
                return (super().__dask_tokenize__(), run)

        return Scorer(engine, batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=40000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--features", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--min-len", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dask-env", action="store_true",
                    help="also 2 workers in Dask's default worker environment (without WORKER_CONFIG)")
    args = ap.parse_args()

    import dask
    import dask.bag as db
    import distributed

    import rnncore as rc
    from rnncore.integrations.dask import WORKER_CONFIG, score_bag, score_records

    per = args.sequences // args.partitions
    parts = [make_partition(p, per, args.features, args.min_len, args.max_len, args.seed)
             for p in range(args.partitions)]
    n = per * args.partitions
    steps = sum(len(x) for part in parts for _, x in part)
    model = rc.nn.Sequential(rc.nn.GRU(args.features, args.hidden, seed=args.seed), rc.nn.LastStep(),
                             rc.nn.Linear(args.hidden, 9, seed=args.seed + 1))
    engines = {p: rc.compile(model, p) for p in ("f32", "q8")}

    print(f"CPU: {cpu_name()}; isa {rc.isa()['in_use']}; {n} sequences, {steps} steps "
          f"(lengths {args.min_len}..{args.max_len}), {args.partitions} partitions, "
          f"GRU({args.features}->{args.hidden}) + last step + Linear({args.hidden}->9), "
          f"batch_size {args.batch_size}; best of {args.repeat}")
    print(f"{'precision':<10}{'way':<26}{'seconds':>8}{'seq/s':>8}{'steps/s':>10}{'cpu s':>7}"
          f"{'sched s':>8}{'+gather s':>10}")

    results: dict[str, list] = {}

    def show(prec, way, sec, cpu, sched=None, gather=None):
        opt = [f"{v:8.2f}" if v is not None else f"{'':>8}" for v in (sched, gather)]
        print(f"{prec:<10}{way:<26}{sec:8.2f}{n / sec:8.0f}{steps / sec:10.3g}{cpu:7.2f}{opt[0]}{opt[1]:>10}",
              flush=True)

    for prec, engine in engines.items():
        best = (float("inf"), 0.0)
        for _ in range(args.repeat):
            c0, t0 = _cpu(), time.perf_counter()
            out = [score_records(engine, part, args.batch_size) for part in parts]
            best = min(best, (time.perf_counter() - t0, _cpu() - c0))
        results[prec] = [y for part in out for _, y in part]
        show(prec, "1 process", *best)

    # Dask's default worker environment last: its nanny leaves MALLOC_TRIM_THRESHOLD_ in this
    # process's environment, which every later worker would inherit
    ways = [(w, True) for w in (1, 2)] + ([(2, False)] if args.dask_env else [])
    for workers, tuned in ways:
        with dask.config.set(WORKER_CONFIG if tuned else {}), \
                distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            # the input made on the workers (as if read from storage there) and kept in their memory
            bag = db.from_delayed([dask.delayed(make_partition)(p, per, args.features, args.min_len,
                                                                args.max_len, args.seed)
                                   for p in range(args.partitions)]).persist()
            distributed.wait(distributed.futures_of(bag))
            for prec, engine in engines.items():
                best = (float("inf"), 0.0, 0.0, 0.0)
                for rep in range(args.repeat):
                    w0, c0, t0 = sum(client.run(_cpu).values()), _cpu(), time.perf_counter()
                    scored = score_bag(_Run(engine, args.batch_size, run=rep), bag).persist()
                    distributed.wait(distributed.futures_of(scored))
                    t1, c1, w1 = time.perf_counter(), _cpu(), sum(client.run(_cpu).values())
                    got = scored.compute()
                    t2 = time.perf_counter()
                    best = min(best, (t1 - t0, w1 - w0, c1 - c0, t2 - t0))
                    del scored
                assert all(np.array_equal(y, w) for (_, y), w in zip(got, results[prec], strict=True))
                show(prec, f"dask {workers}x1" + ("" if tuned else " (Dask's default env)"), *best)

if __name__ == "__main__":
    main()
