"""Format versions 1 and 2 of one model: same description, same outputs bit for bit, on every path.

``write_rnc(spec, version=1)`` and ``write_rnc(spec)`` (version 2, an ordered list of layer
records) store the same tensors; the C loader fills the same in-memory model from both, so every
output (``run`` with lengths, ``step`` streams, final states) must be byte-identical. The v2
outputs are also checked against the NumPy references (float64 for f32, the q8 reference for q8),
so the comparison is not only "v2 equals v1".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore as rc
from rnncore.engine import Engine
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.quant import reference
from rnncore.quant.reference import qmodel_from_rnc
from rnncore.quant.spec import spec_from_rnc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

F32 = np.float32


def make_spec(seed: int, kind: str, sizes: list[int], precision: str, **kw) -> dict:
    """A random model description (the C test vectors' builder, csrc/tests/gen_vectors.py);
    ``sizes`` = [input, hidden_0, hidden_1, ...]."""
    return gen_vectors.make_spec(np.random.default_rng(seed), kind, sizes, precision, **kw)


CASES = {
    "gru_f32": dict(kind="gru", sizes=[3, 5], precision="f32"),
    "gru_q8_head_softmax": dict(kind="gru", sizes=[4, 17, 9], precision="q8", head=3, head_act="softmax"),
    "gru_reset_before_q8_static": dict(kind="gru", sizes=[5, 33], precision="q8", reset_after=False,
                                       scales=(0.03, 0.009), head=4, head_act="tanh"),
    "gru_reset_before_f32_bidir": dict(kind="gru", sizes=[4, 19], precision="f32", reset_after=False,
                                       bidirectional=True),
    "lstm_q8_bidir_head": dict(kind="lstm", sizes=[3, 8, 5], precision="q8", bidirectional=True, head=3,
                               head_act="tanh"),
    "lstm_f32_stack_head_sigmoid": dict(kind="lstm", sizes=[4, 17, 9], precision="f32", head=2,
                                        head_act="sigmoid"),
    "rnn_relu_f32_embedding_head_relu": dict(kind="rnn", sizes=[6, 20], precision="f32",
                                             nonlinearity="relu", embedding=11, head=2, head_act="relu"),
    "rnn_tanh_q8_embedding_last_step": dict(kind="rnn", sizes=[5, 12], precision="q8", embedding=9,
                                            last_step=True, head=3, head_act="softmax"),
    "rnn_relu_q8": dict(kind="rnn", sizes=[7, 16], precision="q8", nonlinearity="relu"),
    "gru_q8_bidir_last_step_bidir": dict(kind="gru", sizes=[4, 6], precision="q8", bidirectional=True,
                                         head=2, last_step=True, last_bidir=True),
    "lstm_f32_last_step_no_head": dict(kind="lstm", sizes=[5, 12], precision="f32", last_step=True),
}


def _inputs(spec: dict, batch: int, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    if spec.get("embedding") is not None:
        return rng.integers(0, spec["embedding"]["weight"].shape[0], (batch, steps)).astype(np.int64)
    return rng.standard_normal((batch, steps, spec["input_size"])).astype(F32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_v1_and_v2_files_give_identical_outputs(name):
    spec = make_spec(sorted(CASES).index(name), **CASES[name])
    v1, v2 = write_rnc(spec, version=1), write_rnc(spec)
    assert v1[4] == 1 and v2[4] == 2 and v1 != v2
    e1, e2 = Engine(v1), Engine(v2)
    for attr in ("precision", "input_size", "output_size", "uses_ids", "bidirectional", "layers"):
        assert getattr(e1, attr) == getattr(e2, attr), attr
    assert e1.state_bytes(3) == e2.state_bytes(3)
    X = _inputs(spec, 4, 6, 1)
    lengths = np.array([6, 0, 3, 1])
    y1, s1 = e1.run(X, lengths, return_state=True)
    y2, s2 = e2.run(X, lengths, return_state=True)
    np.testing.assert_array_equal(y2, y1)
    _assert_same(s1, s2, "final state")
    # against the NumPy reference of the file's own weights (independent code)
    d = read_rnc(v2)
    if spec["precision"] == "q8":
        ref, _ = reference.q8_forward(qmodel_from_rnc(d), X, lengths)
        np.testing.assert_allclose(y2, ref, atol=2e-5, rtol=1e-4)
    else:
        ref, _ = reference.float_forward(spec_from_rnc(d), X, lengths, dtype=np.float64)
        np.testing.assert_allclose(y2, ref, atol=2e-5, rtol=1e-4)
    if not e1.bidirectional:  # the step path, one step at a time
        st1, st2 = e1.stream(2), e2.stream(2)
        for t in range(X.shape[1]):
            xt = X[:2, t] if e1.uses_ids else np.ascontiguousarray(X[:2, t])
            if e1.uses_ids:
                xt = xt.astype(np.int32)
            np.testing.assert_array_equal(st2.step(xt), st1.step(xt))


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_rnc_gives_the_same_description_for_both_versions(name):
    spec = make_spec(sorted(CASES).index(name), **CASES[name])
    _assert_same(read_rnc(write_rnc(spec, version=1)), read_rnc(write_rnc(spec, version=2)), name)


def _assert_same(a, b, where):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def test_compiled_models_write_v2_and_load_both(tmp_path):
    m = rc.nn.Sequential(rc.nn.GRU(3, 5, num_layers=2, seed=0), rc.nn.layers.Linear(5, 2, seed=1))
    for precision in ("f32", "q8"):
        eng = rc.compile(m, precision=precision)
        assert eng.data[4] == 2
        path = tmp_path / f"m_{precision}.rnc"
        eng.save(path)
        v1 = write_rnc(read_rnc(eng.data), version=1)
        x = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(F32)
        np.testing.assert_array_equal(rc.load(v1).run(x), rc.load(path).run(x))


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_write_rnc_takes_the_model_spec(precision):
    """``write_rnc`` takes the one model description (a ModelSpec, as importers give it) and
    writes the same bytes as the model's own path (``build_rnc``); precision is required for it
    and refused for a dict."""
    from rnncore.spec import build_rnc, spec_from_model, to_rnc_spec

    m = rc.nn.Sequential(rc.nn.LSTM(5, 9, num_layers=2, seed=1), rc.nn.LastStep(), rc.nn.Linear(9, 3, seed=2))
    data, spec = build_rnc(m, precision)
    assert write_rnc(spec_from_model(m), precision=precision) == data
    with pytest.raises(ValueError, match="precision"):
        write_rnc(spec)
    with pytest.raises(ValueError, match="precision"):
        write_rnc(to_rnc_spec(spec, precision), precision=precision)
