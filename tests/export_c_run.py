"""Build and run the program ``rnncore export-c`` makes of a model file, on this host.

``exported_outputs(tmp_path, data, X)`` writes the ``.rnc`` bytes, exports them as C (the model a
const array, a main that reads float32 steps), compiles that with ``-Wall -Wextra -Werror`` against
the C core's static library (``make -C csrc lib``) and runs it twice: step by step (``rnc_step``)
and as one sequence (``--run``). It returns both outputs, ``(T, O)`` float32 each, for the tests to
compare with the Python engine or the NumPy model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from child_env import child_env

ROOT = Path(__file__).resolve().parents[1]


def exported_outputs(tmp_path: Path, data: bytes, X: np.ndarray, name: str = "model",
                     lib: Path | None = None) -> dict[str, np.ndarray]:
    """``{"step": (T, O), "run": (T, O)}``: the exported program's outputs for the steps ``X (T, I)``,
    linked against ``lib`` (a ``librnncore.a`` built with other flags) or the default build's."""
    if lib is None:
        r = subprocess.run(["make", "-C", str(ROOT / "csrc"), "lib"], capture_output=True, text=True,
                           timeout=600, env=child_env())
        assert r.returncode == 0, r.stderr[-2000:]
        lib = ROOT / "csrc" / "build" / "librnncore.a"
    model = tmp_path / f"{name}.rnc"
    model.write_bytes(data)
    src = tmp_path / f"{name}.c"
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(model), "-o", str(src)],
                       capture_output=True, text=True, cwd=ROOT, env=child_env())
    assert r.returncode == 0, r.stderr
    exe = tmp_path / name
    r = subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{ROOT / 'csrc' / 'include'}", str(src),
                        str(lib), "-lm", "-o", str(exe)],
                       capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    inp = tmp_path / f"{name}.x.f32"
    np.asarray(X, "<f4").tofile(inp)
    out = {}
    for mode, args in (("step", []), ("run", ["--run"])):
        r = subprocess.run([str(exe), *args, str(inp)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out[mode] = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()], np.float32)
    return out
