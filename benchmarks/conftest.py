"""``python -m pytest benchmarks/bench_engine.py`` needs pytest-benchmark (the ``bench`` extra):
without it, one line that says how to install it instead of an error per benchmark."""

import pytest


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("benchmark"):
        raise pytest.UsageError(
            "benchmarks/bench_engine.py needs pytest-benchmark, which is in the `bench` extra: "
            "pip install -e '.[bench]' (or pip install pytest-benchmark==5.2.3). "
            "`rnncore bench MODEL.rnc` needs nothing extra.")
