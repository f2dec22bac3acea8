"""The README's Python snippets run as written (a new user copies them first).

Every ```python block that imports rnncore (``import rnncore`` / ``from rnncore``) is
executed, in order, in one namespace (a later block may use what an earlier one
imported), inside a temporary directory (snippets may save files). Blocks without such an
import are fragments that need the user's own objects (e.g. ``torch_module``) and are
skipped. The results themselves are tested elsewhere against PyTorch and finite
differences; here a snippet only has to run and print what it says.
"""

from __future__ import annotations

import re
from pathlib import Path

import rnncore as rc

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in python_blocks() if re.search(r"^\s*(import rnncore|from rnncore)", b, re.M)]
    assert len(blocks) >= 3, "the README's quick start snippets were not found"
    ns: dict = {"__name__": "__readme__"}
    before = rc.isa()  # a snippet shows rc.set_isa("generic"): put it back afterwards
    try:
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"README.md python block {i}", "exec"), ns)
            except Exception as e:  # pragma: no cover - the message is the point
                raise AssertionError(
                    f"README python block {i} failed: {type(e).__name__}: {e}\n{block}") from e
    finally:
        rc.set_isa(None if before["in_use"] == before["best"] else before["in_use"])
    out = capsys.readouterr().out
    assert "PASS" in out  # the gradient-check snippet prints its verdict
