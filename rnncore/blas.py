"""Limit the threads of numpy's BLAS for a block of code, without a dependency.

The NumPy reference multiplies small matrices (batch 16 x hidden 64 for the demo): a
multi-threaded BLAS spends more time waking and synchronising its threads than computing,
and is several times slower again when the other cores are busy. ``fit`` therefore runs
with one BLAS thread by default (``fit(..., blas_threads=None)`` leaves BLAS alone).

``blas_threads(n)`` uses ``threadpoolctl`` when it is installed (it knows every BLAS and
OpenMP runtime). Otherwise it calls the BLAS library's own thread setter through
``ctypes``: OpenBLAS (what numpy's wheels ship, under any of its symbol prefixes), MKL and
BLIS, found among the shared libraries already loaded by this process. Where neither finds a
library (e.g. Apple's Accelerate, which has no thread setter) it does nothing; the
environment variable ``OPENBLAS_NUM_THREADS=1`` (set before numpy is imported) always works.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["blas_threads", "blas_thread_info"]

# (api, getter, setter) candidates per library family; OpenBLAS's symbols carry the prefix
# and suffix of its build (numpy >= 2 wheels: scipy_openblas..64_).
_OPENBLAS = [(f"{p}openblas_get_num_threads{s}", f"{p}openblas_set_num_threads{s}")
             for p in ("", "scipy_") for s in ("", "64_")]
_FAMILIES = {
    "openblas": _OPENBLAS,
    "mkl": [("MKL_Get_Max_Threads", "MKL_Set_Num_Threads")],
    "blis": [("bli_thread_get_num_threads", "bli_thread_set_num_threads")],
}


@dataclass
class _Lib:
    path: str
    api: str
    get: ctypes._CFuncPtr
    set: ctypes._CFuncPtr

    @property
    def num_threads(self) -> int:
        return int(self.get())


def _family(path: str) -> str | None:
    name = os.path.basename(path).lower()
    if "openblas" in name:
        return "openblas"
    if name.startswith(("libmkl_rt", "mkl_rt")):
        return "mkl"
    if name.startswith(("libblis", "blis")):
        return "blis"
    return None


def _loaded_paths() -> list[str]:
    """Shared libraries this process has loaded (Linux), else the ones bundled with numpy's wheel."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    paths.append(parts[5].strip())
    except OSError:
        pass
    if not paths:  # macOS / Windows: the wheel's own BLAS, already loaded by numpy
        import numpy as np

        root = os.path.dirname(np.__file__)
        for d in (os.path.join(root, ".dylibs"), root + ".libs"):
            paths += glob.glob(os.path.join(d, "*"))
    return list(dict.fromkeys(paths))


def _libraries() -> list[_Lib]:
    import numpy  # noqa: F401 - numpy loads its BLAS on import

    libs = []
    for path in _loaded_paths():
        family = _family(path)
        if family is None:
            continue
        try:
            mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL if sys.platform != "win32" else 0
            dll = ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        for get_name, set_name in _FAMILIES[family]:
            getter, setter = getattr(dll, get_name, None), getattr(dll, set_name, None)
            if getter is not None and setter is not None:
                getter.restype, getter.argtypes = ctypes.c_int, []
                setter.restype, setter.argtypes = None, [ctypes.c_int]
                libs.append(_Lib(path, family, getter, setter))
                break
    return libs


def blas_thread_info() -> list[dict]:
    """The BLAS libraries the ``ctypes`` path found: ``[{"path", "api", "num_threads"}]``."""
    return [{"path": lib.path, "api": lib.api, "num_threads": lib.num_threads} for lib in _libraries()]


@contextlib.contextmanager
def _ctypes_limit(limit: int) -> Iterator[None]:
    libs = _libraries()
    before = [lib.num_threads for lib in libs]
    try:
        for lib, n in zip(libs, before, strict=True):
            if n > limit:
                lib.set(limit)
        yield
    finally:
        for lib, n in zip(libs, before, strict=True):
            lib.set(n)


def blas_threads(limit: int | None, *, use_threadpoolctl: bool = True) -> contextlib.AbstractContextManager:
    """A context manager that runs its block with at most ``limit`` BLAS threads.

    Parameters
    ----------
    limit : maximum number of threads (>= 1), or None to leave BLAS as it is
    use_threadpoolctl : use ``threadpoolctl`` if it is installed (False: always the
        built-in ``ctypes`` path)

    The previous thread counts are restored on exit. Example::

        with rnncore.blas.blas_threads(1):
            history = fit(...)
    """
    if limit is None:
        return contextlib.nullcontext()
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"blas_threads: expected a positive int or None, got {limit!r}")
    if use_threadpoolctl:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            return threadpool_limits(limits=limit, user_api="blas")
    return _ctypes_limit(limit)
