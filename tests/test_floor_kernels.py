"""The independent floor kernels of benchmarks/peers/floor.c compute the exact products.

floor.c built stand-alone (no C core) runs its self-test: every variant this CPU runs (AVX-512
VNNI, AVX2, plain C; int8 and fp32) against a plain row-major C loop on random and extreme data,
exact int32 / float equality. The test also checks that a broken kernel is caught."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FLOOR = Path(__file__).resolve().parent.parent / "benchmarks" / "peers" / "floor.c"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler on PATH")


def build(tmp_path: Path, src: Path, name: str) -> Path:
    exe = tmp_path / name
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-DFLOOR_STANDALONE", str(src),
                    "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


def test_floor_self_test_exact(tmp_path):
    exe = build(tmp_path, FLOOR, "floor")
    r = subprocess.run([str(exe), "--self-test"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("self-test")]
    assert any(ln.split()[1] == "c" and ln.endswith("exact)") and ": ok" in ln for ln in lines), r.stdout
    assert "FAIL" not in r.stdout


def test_floor_self_test_catches_a_wrong_kernel(tmp_path):
    """The plain C kernel with one input group dropped must fail the self-test."""
    src = FLOOR.read_text()
    bad = src.replace("for (long k = 0; k < nk; ++k) {\n            const int8_t *xk",
                      "for (long k = 0; k < nk - 1; ++k) {\n            const int8_t *xk")
    assert bad != src
    p = tmp_path / "floor_bad.c"
    p.write_text(bad)
    exe = build(tmp_path, p, "floor_bad")
    r = subprocess.run([str(exe), "--self-test"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "self-test c         : FAIL" in r.stdout


def test_floor_standalone_times_json(tmp_path):
    import json

    exe = build(tmp_path, FLOOR, "floor")
    r = subprocess.run([str(exe), "--cell", "gru", "--hidden", "32", "--variant", "c"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["floor_variant"] == "c" and d["macs"] == 3 * 32 * 64
    assert {"q8_gemv_us", "q8_gemv_min_us", "f32_gemv_us", "f32_gemv_min_us", "peak"} <= set(d)
