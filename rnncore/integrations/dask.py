"""Batch scoring of variable-length sequences with a compiled engine, on Dask.

The dataset is a ``dask.bag`` of ``(id, x)`` records, one per recording: ``x`` is the recording
as ``(T_i, input_size)`` floats (or ``(T_i,)`` integer token ids for a model with an embedding),
``T_i`` its own length. Scoring gives a bag of ``(id, y)``: ``y`` is ``(output_size,)`` for a
model with last-step pooling, else ``(T_i, output_size)``. A partition is a list of records;
each is scored by sorting its records by length, cutting them into batches of ``batch_size``,
padding each batch to its longest record and calling ``engine.run(X, lengths=...)`` once per
batch (:func:`score_records`), so padding costs little and every call is a whole batch::

    import dask.bag as db
    from rnncore.integrations.dask import score_bag

    records = db.from_sequence(recordings, npartitions=64)   # (id, x (T_i, F)) records
    scores = score_bag(engine, records).compute()            # [(id, y), ...], same order

The engine travels as its ``.rnc`` bytes (an :class:`EngineScorer` pickles to them, never a
path), is a single graph dependency, so a worker receives it once, and is built into an
:class:`~rnncore.Engine` once per worker process. An engine call runs in C on the calling
thread only; with ``threads_per_worker=1`` a worker runs one call at a time on one thread (and
Dask's nanny starts workers with ``OMP/MKL/OPENBLAS_NUM_THREADS=1``).

Per-record results do not depend on how records are grouped: on x86 the f32 and q8 outputs of a
record are bit-identical whatever the batch it runs in, its padding or the partitioning (q8 on
every ISA: exact integer sums, docs/q8-contract.md). ``docs/distributed.md`` has the example,
the choice of a bag and the measured throughput.

``dask`` is imported only by :func:`score_bag`; :func:`score_records` and
:class:`EngineScorer` need nothing but numpy and serve any engine with a per-partition map
(Ray Data's ``map_batches``, Spark's ``mapPartitions``, a ``multiprocessing.Pool``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rnncore.engine import Engine

__all__ = ["WORKER_CONFIG", "EngineScorer", "score_bag", "score_records"]

WORKER_CONFIG: dict[str, Any] = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask configuration for clusters that score: ``dask.config.set(WORKER_CONFIG)`` before the first
worker of the process starts (``LocalCluster``), or on the workers' machines
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` before ``dask worker``.

Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back
to the OS). glibc's malloc then gives back the blocks of every engine call (state, scratch,
outputs) and the next call faults their pages in again: on the Zen 4 machine of
docs/distributed.md, about 11,000 page faults per 2,500 sequences and a worker 1.5-2x slower
than one process, with any value of the variable tried (65536 to 64 MiB, with or without
``MALLOC_MMAP_THRESHOLD_``); without it, no faults after the first partition. This setting leaves
the variable unset. The nanny's other variables (``OMP/MKL/OPENBLAS_NUM_THREADS=1``) stay."""

# Engines built in this process, by (SHA-256 of the .rnc bytes, isa): a scorer unpickled again
# for every task (the multiprocessing scheduler, Spark) builds its engine once per process.
_ENGINES: dict[tuple[str, str | None], Engine] = {}


def score_records(engine: Engine, records: Iterable[tuple[Any, np.ndarray]],
                  batch_size: int = 64) -> list[tuple[Any, np.ndarray]]:
    """Score ``(id, x)`` records with ``engine``, batching them by length.

    Parameters
    ----------
    engine : the compiled model
    records : ``(id, x)`` pairs; ``x`` is ``(T_i, input_size)`` real numbers, or ``(T_i,)``
        integer token ids when ``engine.uses_ids``; ``T_i`` may differ per record (0 allowed)
    batch_size : records per ``engine.run`` call (the records sorted by length, each batch padded
        to its longest)

    Returns
    -------
    ``[(id, y), ...]`` in the order of ``records``: ``y (output_size,)`` float32 for a model with
    last-step pooling, else ``y (T_i, output_size)`` float32. Each ``y`` equals the record's row of
    ``engine.run`` over all records padded together.

    Raises
    ------
    TypeError / ValueError naming the record (its position and id) for a record that is not an
    ``(id, x)`` pair or whose ``x`` has the wrong shape or dtype, or NaN/Inf values.
    """
    if not isinstance(engine, Engine):
        raise TypeError(f"engine: expected an rnncore Engine, got {type(engine).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    ids: list[Any] = []
    xs: list[np.ndarray] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, tuple | list) or len(rec) != 2:
            raise TypeError(f"records[{i}]: expected an (id, x) pair, got {type(rec).__name__}"
                            + (f" of length {len(rec)}" if isinstance(rec, tuple | list) else ""))
        ids.append(rec[0])
        xs.append(_check_record(engine, i, rec[0], rec[1]))
    if not xs:
        return []
    lengths = np.array([x.shape[0] for x in xs], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    out: list[np.ndarray | None] = [None] * len(xs)
    # one padding buffer for the partition, as large as its longest batch (no allocation per
    # batch, see WORKER_CONFIG). Padding past a length may hold anything the engine accepts (an
    # earlier record's values); it never reaches an output.
    feat = xs[0].shape[1:]
    buf = np.zeros(min(int(batch_size), len(xs)) * int(lengths.max()) * int(np.prod(feat)), xs[0].dtype)
    for start in range(0, len(order), int(batch_size)):
        idx = order[start:start + int(batch_size)]
        lens = lengths[idx]
        T = int(lens.max())
        X = buf[:len(idx) * T * int(np.prod(feat))].reshape((len(idx), T) + feat)
        for row, j in enumerate(idx):
            X[row, :lengths[j]] = xs[j]
        try:
            Y = engine.run(X, lengths=lens)
        except ValueError as e:  # e.g. a token id out of range: say which records were in the call
            shown = ", ".join(repr(ids[j]) for j in idx[:5]) + (", ..." if len(idx) > 5 else "")
            raise ValueError(f"records with ids {shown}: {e}") from None
        pooled = Y.ndim == 2  # (B, output_size): last-step pooling; else (B, T, output_size)
        for row, j in enumerate(idx):
            out[j] = Y[row].copy() if pooled else Y[row, :lengths[j]].copy()
    return list(zip(ids, out, strict=True))


def _check_record(engine: Engine, i: int, rid: Any, x: Any) -> np.ndarray:
    where = f"records[{i}] (id {rid!r})"
    x = np.asarray(x)
    if engine.uses_ids:
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{where}: expected (T,) integer token ids for this embedding model, "
                             f"got shape {x.shape} dtype {x.dtype}")
        n = engine._model.embed_num
        if x.size and (x.min() < 0 or x.max() >= n):
            raise ValueError(f"{where}: token ids must be in [0, {n}), got [{x.min()}, {x.max()}]")
        return x.astype(np.int64, copy=False)
    if x.ndim != 2 or x.shape[1] != engine.input_size:
        raise ValueError(f"{where}: expected x of shape (T, {engine.input_size}) (time, features), "
                         f"got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{where}: expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: contains NaN or Inf")
    return x


class EngineScorer:
    """A picklable callable that scores a partition of ``(id, x)`` records.

    ``scorer(records)`` is :func:`score_records` with an engine built from the ``.rnc`` bytes
    once per process (the first call there), so the object can be handed to any per-partition
    map: it pickles as the model bytes, the batch size and the ISA, never as a path or a built
    engine.

    Parameters
    ----------
    engine : an :class:`~rnncore.Engine`, or ``.rnc`` bytes
    batch_size : records per ``engine.run`` call
    isa : ISA path for the workers' engines (None: each worker's best). f32 outputs can differ by
        float rounding between ISA paths of different machines; pin one (``"avx2"``,
        ``"generic"``) on a mixed cluster if that matters. q8 outputs are identical on every path.
    """

    def __init__(self, engine: Engine | bytes, batch_size: int = 64, isa: str | None = None) -> None:
        if isinstance(engine, Engine):
            data = engine.data
        elif isinstance(engine, bytes | bytearray | memoryview):
            data = bytes(engine)
        else:
            raise TypeError(f"engine: expected an rnncore Engine or .rnc bytes, got {type(engine).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if isa is not None and not isinstance(isa, str):
            raise TypeError(f"isa: expected a string or None, got {type(isa).__name__}")
        self.data = data
        self.batch_size = int(batch_size)
        self.isa = isa
        self.digest = hashlib.sha256(data).hexdigest()
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """This process's engine (built on first use, shared by the scorers of the same model)."""
        if self._engine is None:
            key = (self.digest, self.isa)
            eng = _ENGINES.get(key)
            if eng is None:
                eng = Engine(self.data)
                if self.isa is not None:
                    eng.set_isa(self.isa)
                _ENGINES[key] = eng
            self._engine = eng
        return self._engine

    def __call__(self, records: Sequence[tuple[Any, np.ndarray]]) -> list[tuple[Any, np.ndarray]]:
        return score_records(self.engine, records, self.batch_size)

    def __reduce__(self):
        return (EngineScorer, (self.data, self.batch_size, self.isa))

    def __dask_tokenize__(self):
        return ("rnncore.EngineScorer", self.digest, self.batch_size, self.isa)

    def __repr__(self) -> str:
        return (f"EngineScorer(model={self.digest[:12]}, bytes={len(self.data)}, "
                f"batch_size={self.batch_size}, isa={self.isa!r})")


def _score_partition(records, scorer: EngineScorer) -> list[tuple[Any, np.ndarray]]:
    return scorer(list(records))


def score_bag(engine: Engine | EngineScorer, bag, batch_size: int | None = None, isa: str | None = None):
    """Score a ``dask.bag`` of ``(id, x)`` records with a compiled engine (lazily).

    Parameters
    ----------
    engine : an :class:`~rnncore.Engine`, or an :class:`EngineScorer` (which has its settings)
    bag : ``dask.bag.Bag`` of ``(id, x)`` records as :func:`score_records` takes them
    batch_size, isa : as :class:`EngineScorer` (None: 64 rows, each worker's best path)

    Returns
    -------
    ``dask.bag.Bag`` of ``(id, y)``, partition for partition and in the input's order; call
    ``.compute()``, or write it out (``.map(...).to_textfiles``, ``to_dataframe``) without
    collecting. The model is one delayed value that every partition depends on: the scheduler
    ships its bytes once to each worker, where the engine is built once.
    """
    import dask
    import dask.bag as db

    if not isinstance(bag, db.Bag):
        raise TypeError(f"bag: expected a dask.bag.Bag of (id, x) records, got {type(bag).__name__}")
    if isinstance(engine, EngineScorer):
        if batch_size is not None or isa is not None:
            raise ValueError("batch_size, isa: an EngineScorer has its own; give them to EngineScorer, "
                             "or pass the engine")
        scorer = engine
    else:
        scorer = EngineScorer(engine, 64 if batch_size is None else batch_size, isa)
    model = dask.delayed(scorer, pure=True, traverse=False)
    return bag.map_partitions(_score_partition, model)
