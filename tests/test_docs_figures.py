"""docs/figures/gradient_flow.py: its dL/dh_t (the reference's backward) equals finite differences of
the loss, and the script writes its figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "gradient_flow.py"


def script():
    spec = importlib.util.spec_from_file_location("gradient_flow", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CASES = [("RNN", 0.0), ("GRU", 0.0), ("GRU", 3.0), ("LSTM", 0.0), ("LSTM", 3.0)]


@pytest.mark.parametrize("kind,bias", CASES)
def test_gradient_equals_finite_differences(kind, bias):
    gf = script()
    T, t, b, j, eps = 9, 3, 2, 5, 1e-6
    layer, x, w = gf.make_case(kind, bias, I=4, H=7, B=3, T=T, seed=2)
    g = gf.grad_at(layer, x, w, t)
    state = gf.state_at(layer, x, t)
    parts = list(state) if isinstance(state, tuple) else [state]
    grads = list(g) if isinstance(g, tuple) else [g]
    for k in range(len(parts)):                       # h, and for the LSTM c too
        def loss(delta, k=k):
            s = [p.copy() for p in parts]
            s[k][0, b, j] += delta
            return gf.loss_from(layer, x, w, t, tuple(s) if len(s) == 2 else s[0])
        fd = (loss(eps) - loss(-eps)) / (2 * eps)
        assert abs(fd) > 1e-8                          # a point where the gradient is not vanishingly small
        assert grads[k][0, b, j] == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_script_writes_the_figure(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "g.png"
    norms = script().main(["--T", "6", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for (kind, bias), n in norms.items():
        gf = script()
        _, _, w = gf.make_case(kind, bias, T=6)
        assert n.shape == (7,)
        # at t = T the gradient is w for each of the 16 sequences
        assert n[-1] == pytest.approx(np.sqrt(16) * np.linalg.norm(w), rel=1e-12)
    # the vanilla RNN's gradient shrinks going back; a +3 update-gate bias keeps the GRU's larger
    assert norms[("RNN", 0.0)][0] < norms[("RNN", 0.0)][-1]
    assert norms[("GRU", 3.0)][0] / norms[("GRU", 3.0)][-1] > norms[("GRU", 0.0)][0] / norms[("GRU", 0.0)][-1]
