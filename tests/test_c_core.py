"""Build and run the C core's own tests (csrc/tests), natively and under ASan/UBSan.

They check every kernel of every ISA this CPU runs against the generic one (exact int32 q8
accumulators), the activation error bound, models written by ``rnncore.io.rnc`` against the NumPy
references, and hostile/fuzzed model files (see csrc/tests/test_main.c).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"


def _make(target: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is required to test the C core"
    proc = subprocess.run(
        ["make", "-C", str(CSRC), target, f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    print(out[-4000:])
    assert proc.returncode == 0, out[-6000:]
    return out


@pytest.mark.parametrize("target", ["test", "test-sanitize"])
def test_c_core(target):
    out = _make(target)
    assert ", 0 failures" in out
    assert "ISA paths:" in out
