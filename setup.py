"""Build script: pure-Python package plus the Cython binding of the C core.

Everything static lives in pyproject.toml; this file only declares compiled extensions,
because they need numpy's include path and per-file compiler flags.

The C sources and their flags come from ``csrc/sources.mk`` (the same lists csrc/Makefile
uses): every ``<NAME>_SRCS`` list is compiled with ``COMMON_CFLAGS`` plus its own
``<NAME>_FLAGS`` only, so each ISA's file gets just that ISA's flags; ``X86_*`` lists are
built on x86-64 only and ``ARM_*`` / ``AARCH64_*`` lists on ARM only. The objects are
linked into the ``rnncore._engine`` extension.

The ``.rnc`` byte layout ``csrc/src/rnc_layout.h`` is also read by the Python writer/reader
(``rnncore/io/rnc_layout.py``); ``build_py`` copies it into the package so that installed
wheels, which carry no ``csrc/``, find it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from sysconfig import get_platform

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def _read_sources_mk() -> dict[str, str]:
    """``NAME = value`` assignments of csrc/sources.mk (continuation lines joined)."""
    path = os.path.join(CSRC, "sources.mk")
    if not os.path.exists(path):
        return {}
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Z0-9_]+)\s*[:+]?=\s*(.*?)\s*(#.*)?$", line)
        if m:
            out[m.group(1)] = (out.get(m.group(1), "") + " " + m.group(2)).strip() if "+=" in line \
                else m.group(2)
    return out


def _machine() -> str:
    m = platform.machine().lower()
    if m in ("x86_64", "amd64"):
        return "x86"
    if m.startswith(("aarch64", "arm64")):
        return "aarch64"
    if m.startswith("arm"):
        return "arm"
    return m


def source_groups() -> list[tuple[str, list[str], list[str]]]:
    """``[(group name, sources, extra flags), ...]`` for this machine, from csrc/sources.mk."""
    mk = _read_sources_mk()
    machine = _machine()
    groups = []
    for name, value in mk.items():
        if not name.endswith("_SRCS"):
            continue
        stem = name[: -len("_SRCS")]
        if stem.startswith("X86_") and machine != "x86":
            continue
        if stem.startswith("AARCH64_") and machine != "aarch64":
            continue
        if stem.startswith("ARMV7_") and machine != "arm":
            continue
        if stem.startswith("ARM_") and machine not in ("arm", "aarch64"):
            continue
        flags = mk.get(f"{stem}_FLAGS", "").split()
        if machine == "arm" and mk.get(f"{stem}_FLAGS_ARMV7"):
            flags = mk[f"{stem}_FLAGS_ARMV7"].split()
        srcs = [os.path.join("csrc", s) for s in value.split()]
        if srcs:
            groups.append((stem, srcs, flags))
    return groups


class BuildExt(build_ext):
    """build_ext that compiles each C source group with its own flags before the extension.

    Groups listed in sources.mk's ``OPTIONAL_GROUPS`` are kept when the compiler accepts their
    flags and, with them, announces their features (``csrc/src/kernels/isa_target.h`` defines
    ``RNC_TARGET_<GROUP>`` from GCC's and clang's macro spellings, the same probe as
    csrc/Makefile's); otherwise they are left out and ``-DRNC_NO_<GROUP>`` is passed to every
    file, so the kernel table has no rows for them; ``rc.isa()`` then lists them as not compiled.

    An undefined symbol fails the build instead of the first ``import rnncore``: the C core's
    objects are linked alone with ``-Wl,--no-undefined`` (Linux; they need only libc and libm),
    and the finished extension is loaded with every symbol bound at once (``RTLD_NOW``).
    """

    def _group_ok(self, stem: str, flags: list[str]) -> bool:
        import tempfile

        from setuptools.errors import CompileError

        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "rnc_probe.c")
            with open(src, "w", encoding="utf-8") as f:
                f.write(f'#include "isa_target.h"\n#ifndef RNC_TARGET_{stem}\n'
                        f'#error "{stem}: these flags do not enable its features"\n#endif\n'
                        "int rnc_probe;\n")
            try:
                self.compiler.compile([src], output_dir=tmp, extra_postargs=flags,
                                      include_dirs=[os.path.join(CSRC, "src", "kernels")])
            except CompileError:
                return False
        return True

    def _check_core_links(self, objects: list[str]) -> None:
        """Link the C core's objects into a throwaway shared object with -Wl,--no-undefined."""
        import tempfile

        from setuptools.errors import LinkError

        if not sys.platform.startswith("linux"):
            return
        with tempfile.TemporaryDirectory() as tmp:
            try:
                self.compiler.link_shared_object(
                    objects, os.path.join(tmp, "librnncore_check.so"), libraries=["m"],
                    extra_postargs=["-Wl,--no-undefined"])
            except LinkError as e:
                raise LinkError(f"rnncore: the C core references symbols none of its objects "
                                f"define (see the linker's message above): {e}") from e

    def build_extension(self, ext: Extension) -> None:
        groups = getattr(ext, "rnc_groups", [])
        mk = _read_sources_mk()
        common = mk.get("COMMON_CFLAGS", "-std=c99 -O3 -fPIC").split()
        optional = set(mk.get("OPTIONAL_GROUPS", "").split())
        kept, no_isa = [], []
        for stem, srcs, flags in groups:
            if stem in optional and not self._group_ok(stem, flags):
                no_isa.append(f"-DRNC_NO_{stem}")
                print(f"rnncore: leaving out {stem} (the compiler rejects {' '.join(flags)} "
                      "or does not enable its features with them)")
                continue
            kept.append((srcs, flags))
        # one compiler process per source, as many at once as there are CPUs (the compiler
        # object only spawns them); objects keep the sources' order
        from concurrent.futures import ThreadPoolExecutor

        jobs = [(src, flags) for srcs, flags in kept for src in srcs]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            done = pool.map(lambda job: self.compiler.compile(
                [job[0]], output_dir=self.build_temp, include_dirs=ext.include_dirs,
                extra_postargs=common + no_isa + job[1], depends=ext.depends), jobs)
            objects = [obj for objs in done for obj in objs]
        self._check_core_links(objects)
        ext.extra_compile_args = list(ext.extra_compile_args or []) + no_isa
        ext.extra_objects = objects + list(ext.extra_objects or [])
        # build_ext relinks only when the .pyx or a depends entry is newer than the extension:
        # without the objects here, an edited C source was recompiled but the old .so kept
        ext.depends = list(ext.depends or []) + objects
        super().build_extension(ext)
        if not self.plat_name or self.plat_name == get_platform():  # not a cross build
            import ctypes

            path = self.get_ext_fullpath(ext.name)
            try:
                ctypes.CDLL(path, mode=os.RTLD_NOW)
            except OSError as e:
                raise RuntimeError(f"rnncore: the built extension {path} does not load: {e}") from e


def c_extensions() -> list:
    """The Cython extensions wrapping ``csrc/`` (empty when csrc/ is absent)."""
    groups = source_groups()
    if not groups or not all(os.path.exists(os.path.join(HERE, f)) for _, srcs, _ in groups for f in srcs):
        return []  # no (complete) C core in this tree: pure-Python install
    import numpy as np
    from Cython.Build import cythonize

    inc = [os.path.join("csrc", "include"), os.path.join("csrc", "src"), np.get_include()]
    headers = [os.path.join(d, f) for d in ("csrc/include", "csrc/src", "csrc/src/kernels")
               if os.path.isdir(os.path.join(HERE, d)) for f in os.listdir(os.path.join(HERE, d))
               if f.endswith(".h")]
    # _engine: models and streams; _kernels: the kernel table's entry points and the peak-rate
    # loops (tests, benchmarks). Both link the C core's objects (compiled once: build_ext skips
    # up-to-date objects).
    exts = [Extension(name, [f"rnncore/{name.split('.')[1]}.pyx"], include_dirs=inc, depends=headers,
                      define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
            for name in ("rnncore._engine", "rnncore._kernels")]
    exts = cythonize(exts, language_level=3, quiet=True)
    for e in exts:
        e.rnc_groups = groups
    return exts


class BuildPy(build_py):
    """build_py that also puts csrc/src/rnc_layout.h next to rnncore/io/rnc_layout.py."""

    def run(self) -> None:
        super().run()
        src = os.path.join(CSRC, "src", "rnc_layout.h")
        if os.path.exists(src) and not self.editable_mode:
            self.copy_file(src, os.path.join(self.build_lib, "rnncore", "io", "rnc_layout.h"))


setup(ext_modules=c_extensions(), cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
