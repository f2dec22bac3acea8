"""rc.plot.history: the saved figure's panels, labels and line data are the history's; a CSV
written by fit plots the same; without matplotlib the error says how to install it."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")   # the plot extra, in the test extra
matplotlib.use("Agg")

import rnncore as rc  # noqa: E402
from rnncore.nn.train import fit  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5, 3))
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)
    m = rc.nn.Sequential(rc.nn.GRU(3, 6, seed=0), rc.nn.LastStep(), rc.nn.Linear(6, 2, seed=1))
    csv = tmp_path_factory.mktemp("h") / "h.csv"
    h = fit(m, rc.nn.CrossEntropy(), rc.nn.Adam(m, lr=1e-2), X[:30], y[:30], epochs=4, batch_size=10,
            validation=(X[30:], y[30:]), verbose=False, history_csv=csv)
    return h, csv


def lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def check_figure(fig, h):
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, name in zip(fig.axes, ["loss", "accuracy"], strict=True):
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == name
        ls = lines(ax)
        assert ls["train"].get_xdata().tolist() == h["epoch"] == [1, 2, 3, 4]
        assert ls["train"].get_ydata().tolist() == h[name]
        assert ls["validation"].get_ydata().tolist() == h["val_" + name]
        assert ls[f"best epoch ({h['best_epoch']})"].get_xdata()[0] == h["best_epoch"]


def test_history_figure_is_saved_with_the_history_data(trained, tmp_path):
    h, _ = trained
    path = tmp_path / "curves.png"
    fig = rc.plot.history(h, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    check_figure(fig, h)
    import matplotlib.image

    assert matplotlib.image.imread(path).shape[:2] == (360, 900)   # 2 panels of 4.5 x 3.6 in at 100 dpi


def test_history_from_the_csv_fit_wrote(trained, tmp_path):
    h, csv = trained
    fig = rc.plot.history(csv, tmp_path / "c.svg")
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    h_no_best = {k: v for k, v in h.items() if k != "best_epoch"}
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, name in zip(fig.axes, ["loss", "accuracy"], strict=True):
        assert lines(ax)["train"].get_ydata().tolist() == h_no_best[name]


def test_metric_selection_and_errors(trained):
    h, _ = trained
    fig = rc.plot.history(h, metrics=["loss"])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "loss"
    with pytest.raises(ValueError, match="'f1' is not in the history"):
        rc.plot.history(h, metrics=["f1"])
    with pytest.raises(TypeError, match="history: expected the dict fit"):
        rc.plot.history([1, 2])


def test_without_matplotlib_the_error_says_what_to_install(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)   # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "rnncore\[plot\]"'):
        rc.plot.history(trained[0])


def test_importing_rnncore_does_not_import_matplotlib():
    import subprocess

    code = "import sys, rnncore; print('matplotlib' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_latency_lines_are_the_measurements(tmp_path):
    series = {"GRU": {"f32 avx2": {64: 2e-6, 32: 1e-6, 128: 5e-6}, "q8 avx2": {32: 0.5e-6, 64: 1e-6}},
              "LSTM": {"f32 avx2": {32: 1.5e-6}}}
    fig = rc.plot.latency(series, tmp_path / "lat.png", panel="panels", title="t")
    assert (tmp_path / "lat.png").read_bytes()[:4] == b"\x89PNG"
    assert [ax.get_title() for ax in fig.axes] == ["GRU", "LSTM"]
    gru = lines(fig.axes[0])
    assert gru["f32 avx2"].get_xdata().tolist() == [32, 64, 128]
    assert gru["f32 avx2"].get_ydata().tolist() == pytest.approx([1.0, 2.0, 5.0], rel=1e-12)   # microseconds
    assert gru["q8 avx2"].get_ydata().tolist() == pytest.approx([0.5, 1.0], rel=1e-12)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    one = rc.plot.latency({"a": {1: 1.0}}, unit=1e3)
    assert len(one.axes) == 1 and lines(one.axes[0])["a"].get_ydata().tolist() == [1000.0]
    with pytest.raises(ValueError, match="series"):
        rc.plot.latency({})


def test_peer_benchmark_redraws_its_figure_from_results_json(tmp_path):
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = root / "benchmarks" / "peers" / "results" / "epyc-zen4" / "results.json"
    shutil.copy(results, tmp_path / "results.json")
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "peers" / "compare_peers.py"),
                        "--replot", str(tmp_path / "results.json")], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "step_latency.png").read_bytes()[:4] == b"\x89PNG"
