"""Shared pytest hooks and fixtures."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import zipfile

import numpy as np
import pytest

BENCHMARKS = str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks")


# -- Silero VAD v6 and the recording it is measured on (missing: a failure, not a skip; .ci/run installs both)
@pytest.fixture(scope="session")
def silero() -> bytes:
    """Silero VAD v6's sequence graph, ``silero_vad_16k_sequence.onnx`` of the installed silero-vad,
    or read out of a ``silero_vad-6.2.3`` wheel (``$RNNCORE_SILERO_WHEEL`` or ``/tmp/sv``)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is not None and spec.origin:
        p = pathlib.Path(spec.origin).parent / "data" / "silero_vad_16k_sequence.onnx"
        if p.is_file():
            return p.read_bytes()
    for w in (os.environ.get("RNNCORE_SILERO_WHEEL", ""), "/tmp/sv/silero_vad-6.2.3-py3-none-any.whl"):
        if w and os.path.isfile(w):
            with zipfile.ZipFile(w) as z:
                return z.read("silero_vad/data/silero_vad_16k_sequence.onnx")
    pytest.fail("silero-vad 6.2.3 is not installed: pip install --no-deps silero-vad==6.2.3 (.ci/run does)")


@pytest.fixture(scope="session")
def sample_audio() -> np.ndarray:
    """pyannote-audio's sample.wav as benchmarks/bench_vad_q8.py reads it: ``(480000,)`` float32 in
    [-1, 1), read-only."""
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    from bench_vad_q8 import recording

    try:
        audio = recording()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")
    audio.flags.writeable = False
    return audio


# -- C core: which ISA paths and kernels ran, and which this CPU lacks (tests/test_kernels_property.py)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    try:
        from engine_report import RAN

        from rnncore import _engine, _kernels
    except ImportError:
        return
    if not RAN["kernels"]:
        return
    table = _engine.isa_table()
    kernels = _kernels.kernels()
    tr = terminalreporter
    tr.section("rnncore C kernels by ISA")
    for t in table:
        ks = [k["name"] for k in kernels if k["isa"] == t["name"]]
        ran = [k for k in ks if k in RAN["kernels"]]
        if t["available"]:
            status = f"RAN {len(ran)}/{len(ks)} kernels"
        elif t["compiled"]:
            status = "compiled, NOT supported by this CPU: not run"
        else:
            status = "not in this build"
        tr.write_line(f"  {t['name']:<12} {status}")
