"""The environment for child processes that build or run other targets than this process's engine.

``RNNCORE_ISA`` names a path of *this* build on *this* CPU (e.g. ``amx``); a build with a compiler
that lacks some ISA groups, or a binary run under qemu for ARM, must not inherit it, or it refuses to
start (``init: ISA path unknown``)."""

from __future__ import annotations

import os


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without ``RNNCORE_ISA``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "RNNCORE_ISA"}
    env.update(extra)
    return env
