"""docs/integer.md quotes real code: every backticked line in its equation tables is in the file
its column names (NumPy spec or C step)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "fixedpoint": ROOT / "rnncore" / "quant" / "fixedpoint.py",
    "integer": ROOT / "rnncore" / "quant" / "integer.py",
    "c": ROOT / "csrc" / "src" / "int" / "int_cells.c",
}


def _rows():
    doc = (ROOT / "docs" / "integer.md").read_text()
    spec = FILES["integer"]
    for line in doc.splitlines():
        if "fixedpoint.py`)" in line and line.startswith("| equation"):
            spec = FILES["fixedpoint"]
        elif "integer.py`)" in line and line.startswith("| equation"):
            spec = FILES["integer"]
        if not line.startswith("| ") or line.startswith("| equation") or line.count("|") < 4:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 3:
            continue
        yield spec, cells[1], cells[2]


def test_every_quoted_line_is_in_its_file():
    checked = 0
    for spec, py, c in _rows():
        for text, path in ((py, spec), (c, FILES["c"])):
            m = re.fullmatch(r"`(.+)`", text)
            if not m:
                continue
            assert m.group(1) in path.read_text(), f"{path.name}: {m.group(1)!r} not found"
            checked += 1
    assert checked >= 28
