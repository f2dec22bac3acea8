"""rnncore-bench --breakdown (csrc/bench/rnncore_bench.c): every part printed, the kernel-table rows
it times are the ones the model's plan runs (asked through the Python binding), figures positive.
No time is asserted (benchmarks/bench_fixed_cost.py reports them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import rnncore as rc
from rnncore import _engine, _kernels

CSRC = Path(__file__).resolve().parents[1] / "csrc"
PARTS = ["step", "quantise_x", "quantise_h", "products", "cell", "store", "update", "rest"]
TIMED = ["step", "quantise_x", "quantise_h", "products", "cell", "store"]
ISAS = [t["name"] for t in _engine.isa_table() if t["available"]]
QUICK = ["--steps", "20", "--repeat", "2", "--warmup", "2"]


@pytest.fixture(scope="module")
def bench() -> str:
    if not shutil.which("make") or not shutil.which("cc"):
        pytest.skip("make and a C compiler are needed to build rnncore-bench")
    r = subprocess.run(["make", "-s", "-C", str(CSRC), "bench"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(CSRC / "build" / "rnncore-bench")


def _model(tmp_path: Path, cell: str, h: int, precision: str):
    cls = {"gru": rc.nn.GRU, "lstm": rc.nn.LSTM, "rnn": rc.nn.RNN}[cell]
    path = tmp_path / f"{cell}{h}{precision}.rnc"
    rc.save(cls(h, h, seed=1), path, precision=precision)
    return path, rc.load(path)


def _run(bench: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([bench, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("isa", [ISAS[0], ISAS[-1]] if len(ISAS) > 1 else ISAS)
@pytest.mark.parametrize(("cell", "precision"), [("gru", "q8"), ("lstm", "q8"), ("rnn", "f32")])
def test_breakdown_rows_are_the_plans(bench: str, tmp_path: Path, cell: str, precision: str,
                                      isa: str) -> None:
    path, eng = _model(tmp_path, cell, 24, precision)
    eng.set_isa(isa)
    r = _run(bench, "--model", str(path), "--isa", isa, "--breakdown", "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["isa"], out["precision"], out["cell"], out["hidden"], out["input"]) == (
        isa, precision, "rnn_tanh" if cell == "rnn" else cell, 24, 24)
    parts = {p["part"]: p for p in out["parts"]}
    assert [p["part"] for p in out["parts"]] == PARTS
    table = _kernels.kernels()
    q8 = precision == "q8"
    op = {"gru": "gru_step", "lstm": "lstm_step", "rnn": "rnn_step"}[cell]
    expect = {"cell": eng._model.plan_row(0, op, 1, "x", sums=q8),
              "products": eng._model.plan_row(-1, "gemv", 1)}
    if q8:
        expect["quantise_x"] = expect["quantise_h"] = eng._model.plan_row(-1, "quantize", 1)
    for part, name in expect.items():
        assert parts[part]["row"] == name
        assert table[parts[part]["row_index"]]["name"] == name
        assert table[parts[part]["row_index"]]["precision"] == precision
    assert table[parts["cell"]["row_index"]]["op"] == op
    assert table[parts["products"]["row_index"]]["op"] == "gemv"
    for part in TIMED:
        if q8 or part not in ("quantise_x", "quantise_h"):
            assert parts[part]["us"] > 0, part
    if not q8:
        assert parts["quantise_x"]["us"] == parts["quantise_h"]["us"] == 0
        assert parts["quantise_x"]["row"] == "-"
    assert parts["step"]["share"] == 1.0


def test_breakdown_text_table_and_single_part(bench: str, tmp_path: Path) -> None:
    path, _ = _model(tmp_path, "gru", 16, "q8")
    r = _run(bench, "--model", str(path), "--isa", "generic", "--breakdown", *QUICK)
    assert r.returncode == 0, r.stderr
    for label in ("step (rnc_step)", "quantise x", "quantise h", "products W_ih x + W_hh h",
                  "cell (whole row)", "state store", "cell update (by difference)", "rest: checks"):
        assert label in r.stdout, label
    assert "rnc_q8_gru_step_generic" in r.stdout and "rnc_q8_quantize_generic" in r.stdout
    for part in TIMED:
        r = _run(bench, "--model", str(path), "--breakdown", "--part", part, "--json", *QUICK)
        assert r.returncode == 0, r.stderr
        one = json.loads(r.stdout)
        assert one["part"] == part and one["us"] > 0


def test_breakdown_refusals(bench: str, tmp_path: Path) -> None:
    path, _ = _model(tmp_path, "gru", 16, "q8")
    r = _run(bench, "--model", str(path), "--breakdown", "--part", "update", *QUICK)
    assert r.returncode == 2 and "usage" in r.stderr  # a derived part is not timed alone
    r = _run(bench, "--model", str(path), "--breakdown", "--batch", "2", *QUICK)
    assert r.returncode == 1 and "batch 1" in r.stderr


@pytest.mark.parametrize("isa", [ISAS[0], ISAS[-1]] if len(ISAS) > 1 else ISAS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_breakdown_of_a_block_sparse_layer_times_the_sparse_rows(bench: str, tmp_path: Path, cell: str,
                                                                 isa: str) -> None:
    """A layer with block-sparse weights: the products part is the plan's SPGEMV row (on both
    matrices), the cell its *_sparse row; every timed part positive."""
    m = {"gru": rc.nn.GRU, "lstm": rc.nn.LSTM}[cell](32, 32, seed=2)
    rc.nn.BlockPruning(m, density=0.25, end_epoch=1).update(m, None, epoch=1.0)
    path = tmp_path / f"{cell}_sparse.rnc"
    eng = rc.compile(m, "q8", sparse=True)
    eng.save(path)
    eng = rc.load(path)
    eng.set_isa(isa)
    r = _run(bench, "--model", str(path), "--isa", isa, "--breakdown", "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    parts = {p["part"]: p for p in json.loads(r.stdout)["parts"]}
    table = _kernels.kernels()
    op = f"{cell}_step_sparse"
    assert parts["cell"]["row"] == eng._model.plan_row(0, op, 1, "x")
    assert table[parts["cell"]["row_index"]]["op"] == op
    assert parts["products"]["row"] == eng._model.plan_row(-1, "spgemv", 1)
    assert table[parts["products"]["row_index"]]["op"] == "spgemv"
    for part in TIMED:
        assert parts[part]["us"] > 0, part
