"""docs/integer.md quotes real code: every backticked line in its equation tables is in the file
its column names (NumPy spec or C step: int_cells.c, or the header its table's heading names)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "fixedpoint": ROOT / "rnncore" / "quant" / "fixedpoint.py",
    "integer": ROOT / "rnncore" / "quant" / "integer.py",
    "c": ROOT / "csrc" / "src" / "int" / "int_cells.c",
    "table": ROOT / "csrc" / "src" / "int" / "s16_table.h",
    "common": ROOT / "csrc" / "src" / "int" / "int_step_common.h",
}


def _rows():
    doc = (ROOT / "docs" / "integer.md").read_text()
    spec, c_files = FILES["integer"], [FILES["c"]]
    for line in doc.splitlines():
        if line.startswith("| equation") and "s16_table.h`)" in line:
            c_files = [FILES["table"]]
        elif line.startswith("| equation") and "int_step_common.h`" in line:
            c_files = [FILES["common"], FILES["c"]]
        elif line.startswith("| equation") and "int_cells.c`)" in line:
            c_files = [FILES["c"]]
        if "fixedpoint.py`)" in line and line.startswith("| equation"):
            spec = FILES["fixedpoint"]
        elif "integer.py`)" in line and line.startswith("| equation"):
            spec = FILES["integer"]
        if not line.startswith("| ") or line.startswith("| equation") or line.count("|") < 4:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 3:
            continue
        yield spec, c_files, cells[1], cells[2]


def test_every_quoted_line_is_in_its_file():
    checked = 0
    for spec, c_files, py, c in _rows():
        for text, paths in ((py, [spec]), (c, c_files)):
            m = re.fullmatch(r"`(.+)`", text)
            if not m:
                continue
            assert any(m.group(1) in p.read_text() for p in paths), \
                f"{[p.name for p in paths]}: {m.group(1)!r} not found"
            checked += 1
    assert checked >= 36
