"""ONNX Runtime's own RNN/GRU/LSTM operator tests, run through rnncore (issue 16).

``tests/data/ort_rnn_cases.json`` holds every case of onnxruntime's
``onnxruntime/test/providers/cpu/rnn/{deep_cpu_gru_op_test,deep_cpu_lstm_op_test,rnn_op_test}.cc``
(MIT licence, Copyright (c) Microsoft Corporation), transcribed by ``tools/ort_rnn_cases.py``:
the node's attributes, its inputs and the expected outputs written in the C++ source — values
computed outside rnncore (numpy/CNTK/Lotus scripts by ONNX Runtime's authors). For each case the
ONNX node is built with ``onnx.helper`` (weights as initializers), imported with
``rnncore.io.from_onnx`` and run

* by the NumPy reference (float64 and float32),
* by the C engine, ``rc.compile(model, precision="f32")``,
* by onnxruntime on the same model (a check of the transcription and of the expected values),

and every output is compared with the C++ test's expected values at the tolerance ``OpTester``
uses (``|got - want| <= atol + rtol * |want|``: 1e-5 + 1e-4·|want| for GRU/RNN, 1e-4 + 1e-4·|want|
for LSTM, whose harness sets ``SetOutputTolerance(0.0001f)``). Cases ONNX Runtime expects to fail
must fail in rnncore with an error that says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rnncore as rc
from rnncore.io.onnx_import import from_onnx, onnx_run

DATA = json.loads((Path(__file__).parent / "data" / "ort_rnn_cases.json").read_text())
CASES = DATA["cases"]
RUNS = [c for c in CASES if "expect_failure" not in c]
FAILURES = [c for c in CASES if "expect_failure" in c]
F32 = np.float32

INPUT_ORDER = {
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
}
WEIGHTS = ("W", "R", "B", "P")


def _array(t: dict) -> np.ndarray:
    return np.asarray(t["data"], dtype=t["dtype"]).reshape(t["shape"])


def build(case: dict, opset: int = 22):
    """The case's node in a one-node ONNX model; returns ``(model, feeds)``.

    ``OpTester`` runs a node at the operator's latest opset (22 for RNN/GRU/LSTM, which added
    bfloat16); 14 is the first with ``layout``.
    """
    from onnx import TensorProto, helper, numpy_helper

    op, ins, outs = case["op"], case["inputs"], case["outputs"]
    names = [n if n in ins else "" for n in INPUT_ORDER[op]]
    while names[-1] == "":
        names.pop()
    out_names = [o if o in outs else "" for o in ("Y", "Y_h", "Y_c")[: 3 if op == "LSTM" else 2]]
    while out_names[-1] == "":
        out_names.pop()
    node = helper.make_node(op, names, out_names, **case["attributes"])
    dt = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32}
    feeds = {n: _array(t) for n, t in ins.items() if n not in WEIGHTS}
    graph = helper.make_graph(
        [node],
        case["name"].replace(".", "_").replace("/", "_"),
        [helper.make_tensor_value_info(n, dt[ins[n]["dtype"]], ins[n]["shape"]) for n in names if n in feeds],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, outs[o]["shape"]) for o in out_names if o],
        initializer=[numpy_helper.from_array(_array(ins[n]), n) for n in WEIGHTS if n in ins],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10 if opset >= 21 else 8
    )
    return model, feeds


class _EngineAsModule:
    """The imported module with ``forward`` run by the compiled f32 engine (what onnx_run calls)."""

    def __init__(self, module):
        self._m = module
        self.engine = rc.compile(module, precision="f32")

    def __getattr__(self, name):
        return getattr(self._m, name)

    def forward(self, x, state=None, lengths=None):
        return self.engine.run(np.asarray(x, F32), lengths=lengths, state=state, return_state=True)


def _check(got: dict, case: dict, who: str) -> float:
    """Compare every requested output with the C++ test's values; returns the largest |difference|."""
    assert set(got) == set(case["outputs"]), f"{who}: outputs {sorted(got)} != {sorted(case['outputs'])}"
    tol, worst = case["tolerance"], 0.0
    for name, t in case["outputs"].items():
        want = _array(t)
        have = np.asarray(got[name])
        assert have.shape == want.shape, f"{who}: {name} shape {have.shape} != {want.shape}"
        np.testing.assert_allclose(
            have, want, rtol=tol["rtol"], atol=tol["atol"], err_msg=f"{case['name']}: {who} {name}"
        )
        worst = max(worst, float(np.abs(have.astype(np.float64) - want).max(initial=0.0)))
    return worst


def _onnxruntime(model, feeds, case) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def test_the_fixture_holds_every_test_of_the_three_files():
    """67 TESTs (29 GRU, 27 LSTM, 11 RNN) in 139 distinct cases, 3 of them expected failures."""
    tests = {c["test"] for c in CASES}
    assert len(tests) == 67
    assert sum(t.startswith("GRUTest.") for t in tests) == 29
    assert sum(t.startswith("LSTMTest.") for t in tests) == 27
    assert sum(t.startswith("RNNTest.") for t in tests) == 11
    assert len(CASES) == 139 and len(FAILURES) == 3
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("opset", [22, 14])
@pytest.mark.parametrize("case", RUNS, ids=lambda c: c["name"])
def test_ort_case_numpy_engine_and_onnxruntime_match_the_cpp_expected_values(case, opset):
    model, feeds = build(case, opset)
    onnx.checker.check_model(model)
    _check(_onnxruntime(model, feeds, case), case, "onnxruntime")
    for dtype in ("float64", "float32"):
        _check(onnx_run(from_onnx(model, dtype=dtype), feeds), case, f"numpy {dtype}")
    _check(onnx_run(_EngineAsModule(from_onnx(model, dtype="float32")), feeds), case, "f32 engine")


def test_an_invalid_activation_is_refused_at_import_like_onnxruntime():
    (case,) = [c for c in FAILURES if c["test"].endswith("RNN_with_invalid_activation_load_failure")]
    model, feeds = build(case)
    with pytest.raises(Exception, match="Invalid_activation"):
        _onnxruntime(model, feeds, case)
    with pytest.raises(ValueError, match="Invalid_activation"):
        from_onnx(model, dtype="float32")


@pytest.mark.parametrize(
    "case", [c for c in FAILURES if "sequence_lens" in c["expect_failure"]], ids=lambda c: c["name"]
)
def test_invalid_sequence_lens_are_refused_like_onnxruntime(case):
    model, feeds = build(case)
    with pytest.raises(Exception, match="sequence_lens"):
        _onnxruntime(model, feeds, case)
    numpy_model = from_onnx(model, dtype="float32")
    engine_model = _EngineAsModule(from_onnx(model, dtype="float32"))
    for m in (numpy_model, engine_model):
        with pytest.raises(ValueError, match="lengths"):
            onnx_run(m, feeds)


def test_a_value_off_by_more_than_the_tolerance_fails_the_comparison():
    """Guard against a comparison that cannot fail: one expected value moved by 3x the tolerance."""
    case = json.loads(
        json.dumps(next(c for c in RUNS if c["test"].endswith("ONNXRuntime_TestLSTMForwardClip")))
    )
    model, feeds = build(case)
    got = onnx_run(_EngineAsModule(from_onnx(model, dtype="float32")), feeds)
    _check(got, case, "f32 engine")
    t = case["outputs"]["Y_h"]
    t["data"][1] += 3 * (case["tolerance"]["atol"] + case["tolerance"]["rtol"] * abs(t["data"][1]))
    with pytest.raises(AssertionError, match="Y_h"):
        _check(got, case, "f32 engine")


@pytest.mark.parametrize(
    "test", ["GRUTest.ONNXRuntime_TestGRUOpZeroSeqInMiddle", "LSTMTest.ONNXRuntime_TestLSTMZeroSeqInMiddle"]
)
def test_lengths_of_0_reach_a_plain_layer(test):
    """These cases import as plain rc.nn layers (which refuse length 0 themselves): onnx_run's ONNX rule is
    what the comparison above checks for them."""
    case = next(c for c in RUNS if c["test"] == test)
    model, feeds = build(case)
    assert 0 in feeds["sequence_lens"]
    assert type(from_onnx(model, dtype="float64")) in (rc.nn.GRU, rc.nn.LSTM)
