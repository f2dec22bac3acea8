"""benchmarks/bench_auto_grid.py on its smallest grid with --quick: one row per grid point with a
column per variant, the best forced ISA is the fastest printed one and auto / best is their ratio,
and bad arguments are one-line errors naming the argument. No time is asserted (the benchmark
prints them; docs/performance.md holds the figures)."""

from __future__ import annotations

import pathlib
import sys

import pytest

import rnncore as rc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_auto_grid  # noqa: E402

FORCED = [i for i in rc.isa()["available"] if i != "generic"] or ["generic"]


def test_quick_grid_table(capsys: pytest.CaptureFixture[str]) -> None:
    bench_auto_grid.main(["--quick", "--self", "--cells", "gru", "lstm", "--hidden", "8",
                          "--batch", "step", "2", "--precision", "q8", "f32"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("CPU ") and "load average" in out[0]
    head = next(i for i, line in enumerate(out) if line.startswith("prec"))
    names = out[head].split("|")[1].split()
    assert names == ["auto", "auto'"] + FORCED
    rows = out[head + 1:-1]
    assert len(rows) == 2 * 2 * 2  # precision x cell x batch
    seen = set()
    for row in rows:
        left, figures, right = row.split("|")
        prec, cell, h, batch = left.split()
        seen.add((prec, cell, batch))
        assert h == "8"
        us = dict(zip(names, map(float, figures.split()), strict=True))
        best, ratio, noise = right.split()[:3]
        assert not ratio.endswith("r")  # no --recheck: no point timed again
        forced = {n: us[n] for n in FORCED}
        assert forced[best] == min(forced.values())
        assert float(ratio) == pytest.approx(us["auto"] / us[best], rel=0.02, abs=0.002)
        assert float(noise) == pytest.approx(us["auto"] / us["auto'"], rel=0.02, abs=0.002)
        assert row.endswith("<<") == (float(ratio) > 1.03)
    assert seen == {(p, c, b) for p in ("q8", "f32") for c in ("gru", "lstm") for b in ("step", "2")}
    assert out[-1].startswith(f"{len(rows)} points; auto / best: max ")


def test_recheck_times_again_the_points_behind(capsys: pytest.CaptureFixture[str]) -> None:
    # a tolerance of -50 %: every point looks behind, so every point is timed again ("r")
    bench_auto_grid.main(["--quick", "--recheck", "1", "--tolerance", "-0.5", "--cells", "gru",
                          "--hidden", "8", "--batch", "step", "1"])
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("prec"))
    rows = out[head + 1:-1]
    assert len(rows) == 2
    for row in rows:
        assert row.split("|")[2].split()[1].endswith("r") and row.endswith("<<")


def test_split_variant(capsys: pytest.CaptureFixture[str]) -> None:
    # --split 2 at batch 3: run as calls of 2 + 1 sequences (the benchmark checks their bits)
    bench_auto_grid.main(["--quick", "--split", "2", "--cells", "lstm", "--hidden", "8",
                          "--batch", "3"])
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("prec"))
    names = out[head].split("|")[1].split()
    assert names == ["auto", "auto/2"] + FORCED
    left, figures, right = out[head + 1].split("|")
    us = dict(zip(names, map(float, figures.split()), strict=True))
    one_split = float(right.split()[2])
    assert one_split == pytest.approx(us["auto"] / us["auto/2"], rel=0.02, abs=0.002)


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch: expected 'step' or a positive integer, got '0'"),
    (["--hidden", "0"], "--hidden: expected positive integers, got 0"),
    (["--isa", "avx9"], "--isa: 'avx9' is not a path this machine/build runs"),
    (["--split", "-1"], "--split: expected a positive number of sequences per call, got -1"),
])
def test_bad_arguments_name_the_argument(args: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        bench_auto_grid.main(["--quick", *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
