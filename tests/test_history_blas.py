"""fit's history as CSV (Keras CSVLogger columns, exact values, written as each epoch ends) and
fit's BLAS thread limit (read back through threadpoolctl, an independent reader)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import rnncore as rc
from rnncore.blas import blas_thread_info, blas_threads
from rnncore.nn.history import CSVLogger, read_history_csv
from rnncore.nn.train import fit

threadpoolctl = pytest.importorskip("threadpoolctl")   # in the test extra


def data(n=24, T=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 3))
    lengths = rng.integers(1, T + 1, n)
    y = (X[:, 0, 0] > 0).astype(np.int64)
    return X, y, lengths


def model_opt(seed=0):
    m = rc.nn.Sequential(rc.nn.GRU(3, 5, seed=seed), rc.nn.LastStep(), rc.nn.Linear(5, 2, seed=seed + 1))
    return m, rc.nn.Adam(m, lr=1e-2)


def train(csv_target, epochs=3, validation=True, **kw):
    X, y, L = data()
    m, opt = model_opt()
    val = (X[:8], y[:8], L[:8]) if validation else None
    return fit(m, rc.nn.CrossEntropy(), opt, X, y, L, epochs=epochs, batch_size=8, clip=1.0, seed=1,
               validation=val, verbose=False, history_csv=csv_target, **kw)


def test_csv_has_keras_columns_and_exactly_the_history(tmp_path):
    path = tmp_path / "h.csv"
    h = train(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    # Keras' CSVLogger: "epoch" then the logs' keys sorted
    assert rows[0] == ["epoch", "accuracy", "grad_norm", "loss", "skipped", "time", "val_accuracy",
                       "val_loss"]
    assert len(rows) == 1 + 3
    for i, row in enumerate(rows[1:]):
        assert int(row[0]) == h["epoch"][i] == i + 1
        for k, v in zip(rows[0][1:], row[1:], strict=True):
            assert float(v) == h[k][i], (k, i)          # shortest round-trip repr: exact
    back = read_history_csv(path)
    assert back == {k: h[k] for k in rows[0]}


def test_csv_rows_are_written_as_each_epoch_ends(tmp_path):
    path = tmp_path / "h.csv"
    seen = []

    def rows_so_far(out, y, lengths):          # called during training, once per batch
        seen.append(sum(1 for _ in open(path)) - 1)
        return 0.0

    train(path, epochs=3, validation=False, metric=rows_so_far)
    batches = 3                                 # 24 sequences / batch 8
    assert seen == [0] * batches + [1] * batches + [2] * batches


def test_csv_append_separator_and_errors(tmp_path):
    path = tmp_path / "h.csv"
    h1 = train(path, epochs=2)
    h2 = train(CSVLogger(path, append=True), epochs=3)
    back = read_history_csv(path)
    assert back["epoch"] == [1, 2, 1, 2, 3] and back["loss"] == h1["loss"] + h2["loss"]
    train(CSVLogger(path), epochs=1)            # append=False overwrites
    assert read_history_csv(path)["epoch"] == [1]
    with pytest.raises(ValueError, match="has the columns"):
        train(CSVLogger(path, append=True), epochs=1, validation=False)
    semi = tmp_path / "s.csv"
    h = train(CSVLogger(semi, separator=";"), epochs=2)
    assert open(semi).readline().strip() == "epoch;accuracy;grad_norm;loss;skipped;time;val_accuracy;val_loss"
    assert read_history_csv(semi, separator=";")["val_loss"] == h["val_loss"]
    with pytest.raises(TypeError, match="history_csv: expected a path or a CSVLogger, got int"):
        train(3)
    with pytest.raises(ValueError, match="separator"):
        CSVLogger(semi, separator=";;")


def blas_counts():
    return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if not blas_counts() or max(blas_counts()) < 2:
            pytest.skip("this BLAS runs one thread only")   # e.g. a single-core machine
        yield


@pytest.mark.parametrize("use_threadpoolctl", [True, False])
def test_blas_threads_limits_and_restores(two_blas_threads, use_threadpoolctl):
    before = blas_counts()
    with blas_threads(1, use_threadpoolctl=use_threadpoolctl):
        assert blas_counts() == [1] * len(before)
    assert blas_counts() == before


def test_the_ctypes_path_finds_numpys_blas(two_blas_threads):
    ours = {d["path"]: d["num_threads"] for d in blas_thread_info()}
    theirs = {d["filepath"]: d["num_threads"] for d in threadpoolctl.threadpool_info()
              if d["user_api"] == "blas"}
    assert ours and set(ours) <= set(theirs) and all(ours[p] == theirs[p] for p in ours)


def test_fit_trains_with_one_blas_thread_unless_told_otherwise(two_blas_threads):
    during = []

    def probe(out, y, lengths):
        during.append(max(blas_counts()))
        return 0.0

    X, y, L = data()
    for limit, expected in ((1, 1), (None, 2), (2, 2)):
        during.clear()
        m, opt = model_opt()
        kw = {} if limit == 1 else {"blas_threads": limit}      # 1 is the default
        fit(m, rc.nn.CrossEntropy(), opt, X, y, L, epochs=1, batch_size=8, verbose=False, metric=probe, **kw)
        assert set(during) == {expected}
        assert max(blas_counts()) == 2                             # restored
    with pytest.raises(ValueError, match="blas_threads: expected a positive int or None, got 0"):
        fit(m, rc.nn.CrossEntropy(), opt, X, y, L, epochs=1, blas_threads=0)
