"""Every README ```python snippet runs on its own, as a new user pastes it into a fresh interpreter.

Each block is executed alone in a new Python process, in an empty temporary directory (the
snippets save and load files), with nothing defined beforehand: a snippet that uses a name
it does not import or define fails here. The results themselves are tested elsewhere against
PyTorch, onnxruntime, Keras and finite differences; here a snippet has to run and print what
it says it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[tuple[str, str]]:
    """``(heading above the block, code)`` for every ```python block of README.md, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks, heading = [], "top"
    for m in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", text, flags=re.S | re.M):
        if m.group(1):
            heading = m.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, m.group(2)))
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_its_snippets():
    headings = [h for h, _ in BLOCKS]
    for h in ("Quick start", "Train a model (NumPy reference)", "Compiled engine (C core) quick start",
              "Import from PyTorch, Keras, ONNX"):
        assert h in headings, f"README section {h!r} lost its python block"


def run_block(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("RNNCORE_ISA", None)
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{i}-{h}" for i, (h, _) in enumerate(BLOCKS)])
def test_readme_snippet_runs_alone(index, tmp_path):
    heading, code = BLOCKS[index]
    r = run_block(code, tmp_path)
    assert r.returncode == 0, (
        f"README python block {index} ({heading}) failed alone:\n{code}\n{r.stderr[-3000:]}")
    if "check_module" in code:           # the gradient-check snippet prints its verdicts
        assert r.stdout.count("PASS") >= 2 and "FAIL" not in r.stdout, r.stdout
    if "evaluate(" in code:              # the training snippet prints (loss, accuracy) of a trained model
        loss, acc = map(float, re.findall(r"\(([-\d.e]+), ([-\d.e]+)\)", r.stdout)[-1])
        assert acc > 0.9 and loss < 0.5, r.stdout   # chance is 1/9
    if "history.csv" in code:
        assert (tmp_path / "history.csv").read_text().startswith("epoch,")
