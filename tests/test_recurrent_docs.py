"""docs/equations.md points at real code: every referenced line shows the quoted code.

References look like ``[`qualname`, rnncore/nn/cells.py:L57](...): `code` ``. For the
cell and activation files the line number must be exact; for ``recurrent.py`` (which other
parts extend) the quoted code must be inside the named function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = re.compile(r"\[`([\w.]+)`, (rnncore/nn/\w+\.py):L(\d+)\]\([^)]*\): `([^`]+)`")


def _functions(path: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.FunctionDef | ast.ClassDef):
                out[prefix + ch.name] = (ch.lineno, ch.end_lineno)
                visit(ch, prefix + ch.name + ".")

    visit(ast.parse(path.read_text()), "")
    return out


def test_equation_references_point_at_the_quoted_code():
    doc = (ROOT / "docs" / "equations.md").read_text()
    refs = REF.findall(doc)
    assert len(refs) > 50
    for qualname, path, line, code in refs:
        src = (ROOT / path).read_text().splitlines()
        first, last = _functions(ROOT / path)[qualname]
        if path.endswith("recurrent.py"):
            assert any(code in s for s in src[first - 1: last]), (qualname, code)
        else:
            n = int(line)
            assert first <= n <= last and code in src[n - 1], (path, n, code)
