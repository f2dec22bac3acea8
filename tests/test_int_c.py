"""The C integer step (csrc/src/int) against the NumPy spec, bit for bit, on this machine.

csrc/tests/gen_int_vectors.py writes the spec's vectors as a C header; the C test runs every
case through ``rnc_int_cell_step`` with the generic int8 products. ``make -C csrc test`` runs
the same test; this one also checks that it detects a single wrong expected value.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def _build(tmp: Path, header: str) -> subprocess.CompletedProcess:
    (tmp / "int_vectors.h").write_text(header)
    exe = tmp / "test_int_cells"
    src = CSRC / "src" / "int"
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{src}", f"-I{tmp}",
                    str(CSRC / "tests" / "test_int_cells.c"), str(src / "int_cells.c"),
                    str(src / "s8_matvec_generic.c"), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True)


def test_c_integer_step_is_bit_exact_to_the_spec_and_the_check_can_fail(tmp_path):
    pytest.importorskip("ai_edge_litert")
    sys.path.insert(0, str(CSRC / "tests"))
    try:
        import gen_int_vectors
    finally:
        sys.path.pop(0)
    header = gen_int_vectors.header()
    ok = _build(tmp_path, header)
    assert ok.returncode == 0, ok.stdout
    assert "22 vectors" in ok.stdout and "bit-exact" in ok.stdout   # 13 int8-input + 9 int16-input cases
    # one expected h8 value of the GRU (linear_before_reset=0) case off by one: the test fails
    m = re.search(r"(static const int8_t v5_h8\[\] = \{)(-?\d+)", header)
    bad = header[:m.start(2)] + str(int(m.group(2)) + 1) + header[m.end(2):]
    ko = _build(tmp_path, bad)
    assert ko.returncode != 0 and "FAIL gru_lbr0_i8_h16: step 0" in ko.stdout
    # the same for an int16-input case: one expected h8 of x16_gru_i6_h64 off by one
    k = next(i for i, (name, _, _) in enumerate(gen_int_vectors.cases()) if name == "x16_gru_i6_h64")
    m = re.search(rf"(static const int8_t v{k}_h8\[\] = \{{)(-?\d+)", header)
    bad = header[:m.start(2)] + str(int(m.group(2)) + 1) + header[m.end(2):]
    ko = _build(tmp_path, bad)
    assert ko.returncode != 0 and "FAIL x16_gru_i6_h64: step 0" in ko.stdout


@pytest.mark.parametrize("seed", [1, 2])
def test_c_integer_step_is_bit_exact_on_random_cells(tmp_path, seed):
    sys.path.insert(0, str(CSRC / "tests"))
    try:
        import gen_int_vectors
    finally:
        sys.path.pop(0)
    cases = gen_int_vectors.random_cases(seed, 40)
    run = _build(tmp_path, gen_int_vectors.header(case_list=cases))
    assert run.returncode == 0, run.stdout
    assert "40 vectors" in run.stdout and "bit-exact" in run.stdout
