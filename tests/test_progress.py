"""The progress line of long calibrations: shown with verbose=True or on a terminal, silent
otherwise, counting every time step of every layer direction; the scales do not change."""

from __future__ import annotations

import io

import numpy as np

import rnncore as rc
from rnncore.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_calibrate_verbose_prints_progress_and_gives_the_same_scales(capsys):
    m = rc.nn.GRU(3, 5, num_layers=2, bidirectional=True, seed=0)
    X = np.random.default_rng(0).standard_normal((6, 7, 3)).astype(np.float32)
    quiet = rc.quant.calibrate(m, X, verbose=False)
    assert capsys.readouterr().err == ""
    loud = rc.quant.calibrate(m, X, verbose=True)
    err = capsys.readouterr().err
    assert loud == quiet
    total = 7 * 2 * 2                                   # T x (2 layers x 2 directions)
    assert err.startswith("\rcalibrating on 6 sequences: ") and err.endswith(" done\n")
    assert f"100% ({total}/{total} steps)" in err.splitlines()[-1]
    assert err.count("\n") == 1                         # one line, redrawn in place


def test_silent_when_stderr_is_not_a_terminal(capsys):
    m = rc.nn.LSTM(3, 4, seed=0)
    X = np.random.default_rng(1).standard_normal((4, 5, 3)).astype(np.float32)
    rc.quant.calibrate(m, X)                             # verbose=None, stderr captured: not a TTY
    rc.compile(m, precision="q8", calibration=X)
    assert capsys.readouterr().err == ""


def test_on_a_terminal_after_the_delay():
    tty = FakeTTY()
    with Progress("converting", stream=tty, delay=0.0, interval=0.0) as p:
        for i in range(1, 4):
            p.update(i, 3)
    out = tty.getvalue()
    assert out.count("\rconverting:") == 4 and "100% (3/3 steps)" in out and out.endswith(" done\n")
    slow = FakeTTY()
    with Progress("converting", stream=slow, delay=3600.0) as p:   # finishes before the delay
        p.update(1, 1)
    assert slow.getvalue() == ""
    never = FakeTTY()
    with Progress("converting", verbose=False, stream=never, delay=0.0) as p:
        p.update(1, 1)
    assert never.getvalue() == ""
