"""Build and run the C core's own tests (csrc/tests), natively and under ASan/UBSan.

They check every kernel of every ISA this CPU runs against the generic one (exact int32 q8
accumulators), the activation error bound, models written by ``rnncore.io.rnc`` against the NumPy
references, and hostile/fuzzed model files (see csrc/tests/test_main.c).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

CSRC = Path(__file__).resolve().parents[1] / "csrc"


def _make(target: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is required to test the C core"
    proc = subprocess.run(
        ["make", "-C", str(CSRC), target, f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=child_env(),
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


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA groups")
def test_c_core_builds_without_optional_isa_groups(tmp_path):
    """A compiler that rejects -mavxvnni and -mamx-* (GCC < 11, clang < 12) still builds the C core:
    csrc/Makefile leaves those groups out (sources.mk OPTIONAL_GROUPS, -DRNC_NO_<GROUP>), the kernel
    table has no rows for them, and every other path passes the full C test suite."""
    cc = shutil.which("cc") or shutil.which("gcc")
    wrapper = tmp_path / "oldcc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -mavxvnni|-mamx-tile|-mamx-int8) '
        "echo \"oldcc: unrecognized option '$a'\" >&2; exit 1;; esac; done\n"
        f'exec {cc} "$@"\n')
    wrapper.chmod(0o755)
    proc = subprocess.run(
        ["make", "-C", str(CSRC), "test", f"PYTHON={sys.executable}", f"CC={wrapper}",
         f"BUILD={tmp_path / 'build'}"],
        capture_output=True, text=True, timeout=900, env=child_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # Not built either way; whether this CPU has the feature decides which of the two words print.
    for isa in ("avxvnni", "amx"):
        assert re.search(rf"\b{isa}\[(absent|CPU has it, not built)\]", out), out[-3000:]
    assert "avx512vnni[run]" in out or "avx2[run]" in out or "generic[run]" in out
    assert "AMX and/or AVX-VNNI left out" in out and ", 0 failures" in out
