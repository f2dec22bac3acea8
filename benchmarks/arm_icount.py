"""The qemu-icount set-up the ARM benchmarks share: the plugin built into a directory of the caller's,
its helper module loaded, and the static aarch64 ``rnncore-bench`` it runs.

The plugin's sources live in ``../shared/tools/qemu-icount`` beside the repository, or where
``$RNNCORE_QEMU_ICOUNT`` points (``--icount-dir`` of each benchmark). QEMU models no timing: what it
gives is executed instructions.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = Path(os.environ.get("RNNCORE_QEMU_ICOUNT", ROOT.parent / "shared" / "tools" / "qemu-icount"))


def load_icount(icount_dir: Path, build_dir: str) -> ModuleType:
    """The qemu-icount helper module (``per_step``), with its plugin built into ``build_dir``."""
    subprocess.run(["bash", str(icount_dir / "build.sh"), build_dir], check=True, capture_output=True)
    os.environ["ICOUNT_PLUGIN"] = str(Path(build_dir) / "libicount.so")
    spec = importlib.util.spec_from_file_location("icount", icount_dir / "icount.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def aarch64_bench(target: str = "aarch64") -> str:
    """Path of the static aarch64 ``rnncore-bench`` (built by make if out of date): ``target``
    ``aarch64`` is the cross gcc's build, ``aarch64-clang`` clang's (csrc/toolchains/cross.mk)."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"build/cross/{target}/rnncore-bench"],
                   check=True)
    return str(ROOT / "csrc" / "build" / "cross" / target / "rnncore-bench")
