"""compile(..., calibration=X) warns on degenerate calibration data (issue 14).

All-zero, constant, tiny or too few calibration inputs used to give static q8 scales that
clip real data (q8 errors of 0.2-0.3 instead of ~0.01) without a word. The criteria are in
rnncore/quant/calibrate.py's docstring; the measured errors in docs/q8-contract.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnncore as rc
from rnncore.quant import CalibrationWarning, calibrate

F32 = np.float32


def model():
    return rc.nn.Sequential(rc.nn.GRU(4, 16, seed=0, dtype="float32"),
                            rc.nn.Linear(16, 3, seed=1, dtype="float32"))


def ordinary(n=32, T=10, seed=1):
    return np.random.default_rng(seed).standard_normal((n, T, 4)).astype(F32)


def test_ordinary_data_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc.compile(model(), "q8", calibration=ordinary())
        rc.compile(model(), "q8", calibration=(ordinary(), np.full(32, 4)))     # 128 vectors


@pytest.mark.parametrize("data, lengths, says", [
    (np.zeros((32, 10, 4), F32), None, r"X is all zeros"),
    (ordinary() * 1e-3, None, r"X has tiny magnitudes \(max \|x\| = 0\.00\d+ < 0\.01\)"),
    (np.broadcast_to(np.arange(4, dtype=F32), (32, 10, 4)).copy(), None, r"every input vector is the same"),
    (ordinary(n=3, T=10), None, r"only 3 sequences, 30 input vectors \(sequences x valid steps; at least "
                                r"16 sequences and 100 vectors expected\)"),
    (ordinary(n=8, T=50), None, r"only 8 sequences, 400 input vectors"),
    (ordinary(), np.full(32, 2), r"only 32 sequences, 64 input vectors"),
])
def test_degenerate_data_warns_naming_the_problem_and_the_remedy(data, lengths, says):
    cal = data if lengths is None else (data, lengths)
    with pytest.warns(CalibrationWarning, match=says) as rec:
        eng = rc.compile(model(), "q8", calibration=cal)
    msg = str(rec[0].message)
    assert "calibration=None for dynamic scales" in msg and "docs/q8-contract.md" in msg
    assert eng.precision == "q8"                   # a warning, not an error: the model is built


def test_all_zero_data_also_names_the_states_that_never_moved():
    m = rc.nn.GRU(4, 8, seed=0, dtype="float32")
    for name, p in m.named_parameters():
        if name.startswith("bias"):
            p[...] = 0
    with pytest.warns(CalibrationWarning, match=r"X is all zeros; layer 0's hidden state is 0 on all of it"):
        calibrate(m, np.zeros((40, 5, 4), F32))


def test_token_ids_all_the_same_warn():
    m = rc.nn.Sequential(rc.nn.Embedding(10, 4, seed=0, dtype="float32"),
                         rc.nn.GRU(4, 8, seed=1, dtype="float32"))
    with pytest.warns(CalibrationWarning, match="every token id is the same"):
        calibrate(m, np.full((20, 10), 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate(m, np.random.default_rng(0).integers(0, 10, (20, 10)))
    assert calibrate(m, np.random.default_rng(0).integers(0, 10, (20, 10))).x_scale[0] > 0


def test_non_finite_calibration_data_is_an_error():
    x = ordinary()
    x[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="calibrate: X contains NaN or Inf"):
        rc.compile(model(), "q8", calibration=x)
