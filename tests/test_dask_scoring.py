"""Batch scoring on Dask (rnncore.integrations.dask, docs/distributed.md).

The reference for every record is its row of ``engine.run`` over the whole dataset padded
into one batch; the scorer groups records by length into other batches, pads them less and,
on the cluster, runs them in two worker processes. The C core computes each batch row on its own
(q8: exact integer sums; f32 on x86: each row's products and cell in the same order whatever
the batch), so the results must be bit-identical; ARM's NEON f32 GEMM may sum a batch of
columns in another order than one column (docs/c-api.md, "Running"), so there f32 is compared
to float rounding.
"""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore as rc
from rnncore.integrations import dask as rcd

ROOT = Path(__file__).resolve().parents[1]
X86 = platform.machine().lower() in ("x86_64", "amd64")
I = 5


def make_records(n: int, seed: int, ids: bool = False, max_len: int = 40):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, max_len + 1, n)
    lens[:3] = [0, 1, max_len]
    if ids:
        return [(f"dev{i:05d}", rng.integers(0, 30, int(t))) for i, t in enumerate(lens)]
    return [(f"dev{i:05d}", rng.standard_normal((int(t), I))) for i, t in enumerate(lens)]


def whole_run(engine: rc.Engine, records) -> list[np.ndarray]:
    """Every record's output from one engine.run over all records padded together."""
    lens = np.array([len(x) for _, x in records])
    first = np.asarray(records[0][1])
    X = np.zeros((len(records), lens.max()) + first.shape[1:], np.int64 if engine.uses_ids else np.float32)
    for i, (_, x) in enumerate(records):
        X[i, :lens[i]] = x
    Y = engine.run(X, lengths=lens)
    return [Y[i] if Y.ndim == 2 else Y[i, :lens[i]] for i in range(len(records))]


def assert_same(engine: rc.Engine, got, records, want) -> None:
    assert [r[0] for r in got] == [r[0] for r in records]
    for (rid, y), w in zip(got, want, strict=True):
        assert y.dtype == np.float32 and y.shape == w.shape, rid
        if engine.precision == "q8" or X86:
            assert np.array_equal(y, w), rid
        else:
            np.testing.assert_allclose(y, w, rtol=1e-5, atol=1e-6, err_msg=str(rid))


MODELS = {
    "gru2-seq": lambda: rc.nn.GRU(I, 24, num_layers=2, seed=0),
    "lstm-head": lambda: rc.nn.Sequential(rc.nn.LSTM(I, 20, seed=0), rc.nn.LastStep(),
                                          rc.nn.Linear(20, 3, seed=1)),
    "bigru-seq": lambda: rc.nn.GRU(I, 16, bidirectional=True, seed=2),
    "rnn-seq": lambda: rc.nn.RNN(I, 17, seed=3),
    "embed-gru-head": lambda: rc.nn.Sequential(rc.nn.Embedding(30, 8, seed=4), rc.nn.GRU(8, 16, seed=5),
                                               rc.nn.LastStep(), rc.nn.Linear(16, 4, seed=6)),
}


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_records_equals_one_whole_run(name, precision):
    engine = rc.compile(MODELS[name](), precision)
    records = make_records(150, seed=len(name), ids=name.startswith("embed"))
    for isa in rc.isa()["available"]:
        engine.set_isa(isa)
        want = whole_run(engine, records)
        for batch_size in (1, 3, 16, 1000):
            assert_same(engine, rcd.score_records(engine, records, batch_size), records, want)
        # a partition's records in another order and grouping: the same outputs per record
        perm = np.random.default_rng(1).permutation(len(records))
        got = rcd.score_records(engine, [records[j] for j in perm], 7)
        assert_same(engine, got, [records[j] for j in perm], [want[j] for j in perm])


def test_score_records_follows_the_reference():
    # independent of the C core: the f32 engine's outputs against the NumPy reference layers
    model = MODELS["lstm-head"]()
    records = make_records(40, seed=9)
    got = rcd.score_records(rc.compile(model, "f32"), records, batch_size=8)
    for (rid, y), (_, x) in zip(got, records, strict=True):
        if len(x) == 0:  # the reference layers take lengths >= 1
            continue
        ref = model.forward(np.asarray(x, np.float32).astype(np.float64)[None], lengths=np.array([len(x)]))
        np.testing.assert_allclose(y, np.asarray(ref)[0], rtol=1e-4, atol=1e-5, err_msg=rid)


def test_score_records_errors_name_the_record():
    engine = rc.compile(MODELS["gru2-seq"](), "f32")
    good = np.zeros((4, I))
    with pytest.raises(ValueError, match=r"records\[1\] \(id 'b'\): expected x of shape \(T, 5\).*\(4, 3\)"):
        rcd.score_records(engine, [("a", good), ("b", np.zeros((4, 3)))])
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"records\[0\] \(id 7\): contains NaN"):
        rcd.score_records(engine, [(7, bad)])
    with pytest.raises(TypeError, match=r"records\[0\]: expected an \(id, x\) pair, got ndarray"):
        rcd.score_records(engine, [good])
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got 0"):
        rcd.score_records(engine, [("a", good)], batch_size=0)
    with pytest.raises(TypeError, match="engine: expected an rnncore Engine, got GRU"):
        rcd.score_records(MODELS["gru2-seq"](), [("a", good)])
    ids_engine = rc.compile(MODELS["embed-gru-head"](), "q8")
    with pytest.raises(ValueError, match=r"records\[0\] \(id 'a'\): expected \(T,\) integer token ids"):
        rcd.score_records(ids_engine, [("a", good)])
    with pytest.raises(ValueError, match=r"records\[1\] \(id 'b'\): token ids must be in \[0, 30\), got \[3"):
        rcd.score_records(ids_engine, [("a", np.array([1, 2])), ("b", np.array([3, 99]))])
    assert rcd.score_records(engine, []) == []


def test_scorer_pickles_as_the_model_bytes(tmp_path):
    engine = rc.compile(MODELS["lstm-head"](), "q8")
    path = tmp_path / "m.rnc"
    rc.save(engine, path)
    scorer = rcd.EngineScorer(rc.load(path), batch_size=5)
    blob = pickle.dumps(scorer)
    assert str(tmp_path).encode() not in blob and engine.data in blob
    assert len(blob) < len(engine.data) + 500  # the bytes, not the float spec or a built engine
    back = pickle.loads(blob)
    assert back.batch_size == 5 and back.digest == scorer.digest and back._engine is None
    records = make_records(20, seed=3)
    assert_same(engine, back(records), records, whole_run(engine, records))
    assert back.engine is rcd.EngineScorer(engine.data).engine  # one engine per model and process
    with pytest.raises(TypeError, match="engine: expected an rnncore Engine or .rnc bytes, got str"):
        rcd.EngineScorer(str(path))


# -- on a real local cluster: two worker processes, one thread each ----------------------------

dask = pytest.importorskip("dask")  # the test extra installs dask and distributed
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with dask.config.set(rcd.WORKER_CONFIG), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _worker_engines():
    from rnncore.integrations import dask as rcd_worker

    return sorted((digest, len(eng.data)) for (digest, _), eng in rcd_worker._ENGINES.items())


def test_score_bag_on_two_worker_processes_equals_engine_run(client):
    import dask.bag as db

    records = make_records(3000, seed=11, max_len=60)
    bag = db.from_sequence(records, npartitions=12)
    for precision in ("q8", "f32"):
        engine = rc.compile(MODELS["gru2-seq"]() if precision == "f32" else MODELS["lstm-head"](), precision)
        scored = rcd.score_bag(engine, bag, batch_size=32).persist()
        futures = distributed.futures_of(scored)
        distributed.wait(futures)
        holders = {w for ws in client.who_has(futures).values() for w in ws}
        got = scored.compute()
        assert_same(engine, got, records, whole_run(engine, records))
        assert len(holders) == 2, f"the partitions ran on {holders} only"
    # each worker process built each engine once, from the bytes it was sent
    per_worker = client.run(_worker_engines)
    assert len(per_worker) == 2
    for engines in per_worker.values():
        assert len(engines) == 2 and len({d for d, _ in engines}) == 2
    # the workers run one engine call at a time on one thread, BLAS limited to one thread, and
    # without MALLOC_TRIM_THRESHOLD_ (WORKER_CONFIG)
    info = client.run(lambda dask_worker: (dask_worker.state.nthreads, _environ("OPENBLAS_NUM_THREADS"),
                                           _environ("MALLOC_TRIM_THRESHOLD_")))
    assert list(info.values()) == [(1, "1", None)] * 2


def _environ(name: str):
    import os

    return os.environ.get(name)


def test_score_bag_checks_its_arguments():
    import dask.bag as db

    engine = rc.compile(MODELS["rnn-seq"]())
    with pytest.raises(TypeError, match="bag: expected a dask.bag.Bag of \\(id, x\\) records, got list"):
        rcd.score_bag(engine, [("a", np.zeros((2, I)))])
    bag = db.from_sequence([("a", np.zeros((2, I)))])
    with pytest.raises(ValueError, match="batch_size, isa: an EngineScorer has its own"):
        rcd.score_bag(rcd.EngineScorer(engine), bag, batch_size=8)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got -1"):
        rcd.score_bag(engine, bag, batch_size=-1)


def test_the_example_runs_on_two_workers():
    # docs/distributed.md includes examples/dask_scoring.py; it asserts its own results
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "dask_scoring.py"), "--recordings", "2000",
                          "--partitions", "4"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2000 recordings scored; the first 5 equal engine.run bit for bit" in res.stdout
