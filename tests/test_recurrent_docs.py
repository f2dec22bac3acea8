"""docs/equations.md and docs/layers.md point at real code: every referenced line shows the quoted code.

References look like ``[`qualname`, rnncore/nn/cells.py:L57](...): `code` ``. The line
number must be exact, inside the named function and past its docstring (so that an
equation never points at the docstring that repeats it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = re.compile(r"\[`([\w.]+)`, (rnncore/nn/\w+\.py):L(\d+)\]\([^)]*\): `([^`]+)`")


def _functions(path: Path) -> dict[str, tuple[int, int]]:
    """``qualname -> (first, last)`` line of each function's code (after its docstring)."""
    out: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.FunctionDef | ast.ClassDef):
                body = ch.body
                has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                       ast.Constant)
                start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
                out[prefix + ch.name] = (start, ch.end_lineno)
                visit(ch, prefix + ch.name + ".")

    visit(ast.parse(path.read_text()), "")
    return out


DOCS = {"equations.md": 50, "layers.md": 25}  # page -> at least this many references


@pytest.mark.parametrize("page", sorted(DOCS))
def test_equation_references_point_at_the_quoted_code(page):
    doc = (ROOT / "docs" / page).read_text()
    refs = REF.findall(doc)
    assert len(refs) > DOCS[page]
    for qualname, path, line, code in refs:
        src = (ROOT / path).read_text().splitlines()
        first, last = _functions(ROOT / path)[qualname]
        n = int(line)
        assert first <= n <= last and code in src[n - 1], (
            f"{path}:{n} is not `{code}` in the code of {qualname}; run python tests/test_recurrent_docs.py")


@pytest.mark.parametrize("page", sorted(DOCS))
def test_the_python_snippets_of_the_page_run_and_pass(capsys, page):
    """The pages' Python code runs as printed and the errors it prints are far below 1e-6."""
    doc = (ROOT / "docs" / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), {"__name__": "__doc_snippet__"})
    errors = [float(v) for v in capsys.readouterr().out.split()]
    assert errors and all(e < 1e-6 for e in errors)


def refresh_line_numbers(page: str = "equations.md") -> int:
    """Rewrite the line numbers of docs/<page> after the code moved; returns how many changed.

    Run ``python tests/test_recurrent_docs.py`` after editing the referenced files.
    """
    path = ROOT / "docs" / page
    doc = path.read_text()
    changed = 0

    def fix(m: re.Match) -> str:
        nonlocal changed
        qualname, file, line, code = m.groups()
        src = (ROOT / file).read_text().splitlines()
        first, last = _functions(ROOT / file)[qualname]
        hits = [i + 1 for i in range(first - 1, last) if code in src[i]]
        if not hits:
            raise SystemExit(f"{file}: `{code}` is no longer in {qualname}; edit docs/{page}")
        if hits[0] != int(line):
            changed += 1
        return f"[`{qualname}`, {file}:L{hits[0]}](../{file}#L{hits[0]}): `{code}`"

    path.write_text(REF.sub(fix, doc))
    return changed


if __name__ == "__main__":
    for page in sorted(DOCS):
        print(f"docs/{page}: {refresh_line_numbers(page)} line references updated")
