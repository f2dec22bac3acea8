"""Build script: pure-Python package plus (when present) the Cython binding of the C core.

Everything static lives in pyproject.toml; this file only declares compiled extensions,
because they need numpy's include path and per-file compiler flags.
"""

from setuptools import setup


def c_extensions() -> list:
    """The Cython extension(s) wrapping ``csrc/``; empty until the C core lands."""
    return []


setup(ext_modules=c_extensions())
