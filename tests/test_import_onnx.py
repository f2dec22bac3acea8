"""rc.io.from_onnx: ONNX's own backend node tests, onnxruntime-checked cases, torch.onnx exports."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_cases.backend import collect

from rnncore.io.onnx_import import from_onnx, onnx_run

BACKEND_CASES = [c for op in ("rnn", "gru", "lstm") for c in collect(op)]


def test_every_backend_generator_was_captured():
    # the installed onnx 1.x ships 6 RNN, 6 GRU and 6 LSTM cases; if a release adds some, they run too
    names = {c.name for c in BACKEND_CASES}
    assert len(names) == len(BACKEND_CASES) >= 18
    assert {"test_lstm_with_peepholes", "test_gru_batchwise", "test_simple_rnn_reverse"} <= names


@pytest.mark.parametrize("case", BACKEND_CASES, ids=lambda c: c.name)
def test_onnx_backend_node_case(case):
    model = from_onnx(case.model)
    got = onnx_run(model, case.feeds)
    assert set(got) == set(case.expected)
    for name, want in case.expected.items():
        # onnx's backend runner uses rtol=1e-3, atol=1e-7; the float64 reference is far closer
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=f"{case.name}: {name}")
