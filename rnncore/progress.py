"""A one-line progress display on stderr for long loops (calibration, conversion).

Shown when ``verbose=True``, or with ``verbose=None`` (the default of the functions that use
it) when stderr is a terminal and the work has already taken ``delay`` seconds, so short
calls and scripts, logs and CI stay silent. The line is redrawn in place (``\\r``) at most
every ``interval`` seconds and ends with a newline when the work is done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``Progress(label, verbose)``; call ``update(done, total)`` as work is done, ``close()`` at the end.

    Parameters
    ----------
    label : what is being done, e.g. ``"calibrating on 4096 sequences"``
    verbose : True: always show; False: never; None: only on a terminal, after ``delay`` seconds
    stream : where to write (default ``sys.stderr``)
    delay, interval : seconds before the first line (``verbose=None`` only) and between redraws
    """

    def __init__(self, label: str, verbose: bool | None = None, stream: TextIO | None = None,
                 delay: float = 1.0, interval: float = 0.2) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        if verbose is None:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty and isatty())
            self.delay = delay
        else:
            self.enabled, self.delay = bool(verbose), 0.0
        self.interval = interval
        self.t0 = time.perf_counter()
        self._last = -float("inf")
        self._shown = False
        self._state = (0, 0)

    def _line(self, done: int, total: int, now: float) -> str:
        pct = f"{100 * done / total:3.0f}%" if total else "   "
        return f"\r{self.label}: {pct} ({done}/{total} steps) {now - self.t0:.1f}s"

    def update(self, done: int, total: int) -> None:
        """Record progress; redraw the line if it is due."""
        self._state = (done, total)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.t0 < self.delay or now - self._last < self.interval:
            return
        self._last, self._shown = now, True
        self.stream.write(self._line(done, total, now))
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (only if a line was shown, or ``verbose=True``)."""
        if self.enabled and (self._shown or self.delay == 0.0):
            self.stream.write(self._line(*self._state, time.perf_counter()) + " done\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
