"""``rc.io.to_onnx`` of models with per-step layers (before, between and after the recurrent
layers, after the pooling) and mean / attention pooling: onnxruntime's outputs equal the NumPy
model's (``rc.nn`` forward, and the float spec with its per-step records), with and without
``lengths``; the exported file read back by ``rc.from_onnx`` and compiled gives them again.

Every parameter is a float32 value (what the file stores), so the float64 references compute
the exported network and the difference left is onnxruntime's float32 arithmetic: dot products
of at most 12 terms, a few ulp in tanh/sigmoid/erf, a LayerNormalization; over T <= 7 steps of
contractive recurrences that stays well under ``rtol=1e-5, atol=1e-6`` (the bound
tests/test_onnx_export.py derives for the same layers).
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc
from rnncore.quant.reference import forward
from rnncore.spec import spec_from_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

nn = rc.nn
RTOL, ATOL = 1e-5, 1e-6


def _bn(n: int):
    """A BatchNorm1d with non-trivial running statistics (a ``scale_shift`` record)."""
    b = nn.BatchNorm1d(n)
    rng = np.random.default_rng(n)
    b.buffers["running_mean"] = rng.standard_normal(n)
    b.buffers["running_var"] = rng.random(n) + 0.5
    b.params["weight"] = rng.standard_normal(n)
    b.params["bias"] = rng.standard_normal(n)
    return b


def _models() -> dict:
    """Sequentials with per-step layers at every place a ModelSpec holds them."""
    return {
        "front Linear Tanh > GRU > Linear per step": nn.Sequential(
            nn.Linear(3, 6, seed=1), nn.Tanh(), nn.GRU(6, 5, seed=2), nn.Linear(5, 2, seed=3)),
        "bi LSTM > MulHalves LayerNorm Residual > LastStep > MLP": nn.Sequential(
            nn.LSTM(3, 5, bidirectional=True, seed=4), nn.MulHalves(), nn.LayerNorm(5),
            nn.Residual(nn.Sequential(nn.Linear(5, 5, seed=5), nn.ReLU())), nn.LastStep(),
            nn.Linear(5, 4, seed=6), nn.Sigmoid(), nn.Linear(4, 2, seed=7)),
        "GRU > Tanh Linear > bi GRU > ReLU": nn.Sequential(
            nn.GRU(3, 6, seed=8), nn.Tanh(), nn.Linear(6, 4, seed=9),
            nn.GRU(4, 3, bidirectional=True, seed=10), nn.ReLU()),
        "RNN > GELU > MaskedMean > Linear": nn.Sequential(
            nn.RNN(3, 6, seed=11), nn.GELU(), nn.MaskedMean(), nn.Linear(6, 2, seed=12)),
        "front LayerNorm GELU(tanh) > bi GRU > HardSigmoid > MaskedMean > Linear": nn.Sequential(
            nn.LayerNorm(3), nn.GELU(approximate="tanh"), nn.GRU(3, 4, bidirectional=True, seed=13),
            nn.HardSigmoid(), nn.MaskedMean(), nn.Linear(8, 3, seed=14)),
        "bi GRU > Linear > AttentionPool > MLP": nn.Sequential(
            nn.GRU(3, 4, bidirectional=True, seed=15), nn.Linear(8, 6, seed=16),
            nn.AttentionPool(6, 4, seed=17), nn.Linear(6, 5, seed=18), nn.ReLU(), nn.Linear(5, 2, seed=19)),
        "bi LSTM > Residual(Tanh) Sigmoid > LastStep(bidirectional)": nn.Sequential(
            nn.LSTM(3, 4, bidirectional=True, seed=20), nn.Residual(nn.Tanh()), nn.Sigmoid(),
            nn.LastStep(bidirectional=True)),
        "front Linear Sigmoid > bi LSTM > MulHalves > Linear per step": nn.Sequential(
            nn.Linear(3, 4, seed=21), nn.Sigmoid(), nn.LSTM(4, 5, bidirectional=True, seed=22),
            nn.MulHalves(), nn.Linear(5, 2, seed=23)),
        "GRU > Residual(Linear ReLU) BatchNorm1d > Linear per step": nn.Sequential(
            nn.GRU(3, 6, seed=24), nn.Residual(nn.Sequential(nn.Linear(6, 6, seed=25), nn.ReLU())),
            _bn(6), nn.Linear(6, 2, seed=26)),
    }


#: what rc.compile(rc.io.from_onnx(file)) refuses (without lengths: its lowering refuses
#: sequence_lens): LastStep(bidirectional=True) after per-step records (the forward direction's last
#: step and the backward's first, of per-step layers of both)
NOT_COMPILED = {"bi LSTM > Residual(Tanh) Sigmoid > LastStep(bidirectional)":
                r"node 'first_step' \(Gather\) takes one time step of data that is not the last recurrent "
                r"layer's output"}
#: what rc.io.from_onnx reads with lengths (run by its onnx_run): not the GatherND of a LastStep at each
#: sequence's length
IMPORTS = tuple(n for n in _models() if "LastStep" not in n)


def _f32(m):
    m.load_state_dict({k: np.asarray(v, np.float32).astype(np.float64) for k, v in m.state_dict().items()})
    return m


def _run(proto, X, L):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": X.astype(np.float32)}
    if L is not None:
        feeds["lengths"] = L.astype(np.int32)
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("opset", [17, 18, 20])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", sorted(_models()))
def test_onnxruntime_equals_the_numpy_model(name, lengths, opset):
    m = _f32(_models()[name])
    spec = spec_from_model(m)
    assert spec.front or spec.post or spec.post_pooled or any(spec.mid) or spec.last_step_mean
    rng = np.random.default_rng(sum(map(ord, name)) + opset)
    B, T = 5, 7
    X = rng.standard_normal((B, T, 3)).astype(np.float32).astype(np.float64)
    L = np.array([T, 0, 3, 1, 6]) if lengths else None
    got = _run(rc.io.to_onnx(m, None, lengths=lengths, opset=opset), X, L)
    want, _ = forward(spec, X, L, per_step_float=True)            # the float spec, with a length of 0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    Lm = None if L is None else np.maximum(L, 1)                    # rc.nn modules take lengths >= 1
    got = _run(rc.io.to_onnx(m, None, lengths=lengths, opset=opset), X, Lm)
    np.testing.assert_allclose(got, m.forward(X, lengths=Lm), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(_models()))
def test_compiled_file_exports_the_same_graph_outputs(name):
    """The f32 .rnc file of the model (its ModelSpec read back) exports to the same outputs."""
    m = _f32(_models()[name])
    X = np.random.default_rng(3).standard_normal((4, 6, 3)).astype(np.float32)
    L = np.array([6, 2, 1, 5])
    a = _run(rc.io.to_onnx(m, None, lengths=True), X, L)
    b = _run(rc.io.to_onnx(rc.compile(m), None, lengths=True), X, L)
    np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(_models()))
def test_round_trip_through_from_onnx_and_compile(name):
    """The imported model (an OnnxGraph) and its compiled engine give onnxruntime's outputs on the file
    and the NumPy model's: every per-step layer to_onnx writes reads back."""
    m = _f32(_models()[name])
    X = np.random.default_rng(5).standard_normal((4, 6, 3)).astype(np.float32)
    proto = rc.io.to_onnx(m, None)
    ref, want = _run(proto, X, None), m.forward(X.astype(np.float64))
    imp = rc.io.from_onnx(proto)
    np.testing.assert_allclose(imp.forward(X), ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(imp.forward(X), want, rtol=RTOL, atol=ATOL)
    if name in NOT_COMPILED:
        with pytest.raises(ValueError, match=NOT_COMPILED[name]):
            rc.compile(imp)
        return
    eng = rc.compile(imp)
    np.testing.assert_allclose(eng.run(X), ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(eng.run(X), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", IMPORTS)
def test_round_trip_through_from_onnx_with_lengths(name):
    from rnncore.io.onnx_import import onnx_run

    m = _f32(_models()[name])
    X = np.random.default_rng(6).standard_normal((4, 6, 3)).astype(np.float32)
    feeds = {"x": X, "lengths": np.array([6, 2, 1, 4], np.int32)}     # onnx_run takes lengths >= 1
    proto = rc.io.to_onnx(m, None, lengths=True)
    got = onnx_run(rc.io.from_onnx(proto), feeds)["y"]
    np.testing.assert_allclose(got, _run(proto, X, feeds["lengths"]), rtol=RTOL, atol=ATOL)


def test_initial_and_final_state_with_per_step_layers():
    m = _f32(_models()["GRU > Tanh Linear > bi GRU > ReLU"])
    spec = spec_from_model(m)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((3, 5, 3)).astype(np.float32).astype(np.float64)
    L = np.array([5, 0, 2])
    h0 = [rng.standard_normal((3, 6)).astype(np.float32).astype(np.float64)] + [
        rng.standard_normal((3, 3)).astype(np.float32).astype(np.float64) for _ in range(2)]
    proto = rc.io.to_onnx(m, None, lengths=True, initial_state=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y, h0_n, h1_n = sess.run(None, {"x": X.astype(np.float32), "lengths": L.astype(np.int32),
                                     "h0_l0": h0[0][None].astype(np.float32),
                                     "h0_l1": np.stack(h0[1:]).astype(np.float32)})
    want, final = forward(spec, X, L, h0, per_step_float=True)
    np.testing.assert_allclose(y, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(h0_n[0], final[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(h1_n, np.stack(final[1:]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("state", [False, True], ids=["zero_state", "initial_state"])
def test_embedding_then_per_step_layers_and_mean_pooling(state):
    """Per-step layers right after an Embedding fold into its table (a Gather); ReLU and LayerNorm
    after the GRU, then MaskedMean, are nodes: onnxruntime == the float spec, states included."""
    m = _f32(nn.Sequential(nn.Embedding(10, 4, seed=1), nn.Linear(4, 4, seed=2), nn.Tanh(),
                           nn.GRU(4, 5, seed=3), nn.ReLU(), nn.LayerNorm(5), nn.MaskedMean(),
                           nn.Linear(5, 3, seed=4)))
    spec = spec_from_model(m)
    rng = np.random.default_rng(11)
    X, L = rng.integers(0, 10, (4, 6)), np.array([6, 0, 2, 5])
    feeds = {"tokens": X.astype(np.int64), "lengths": L.astype(np.int32)}
    h0 = rng.standard_normal((1, 4, 5)).astype(np.float32) if state else None
    if state:
        feeds["h0"] = h0
    proto = rc.io.to_onnx(m, None, lengths=True, initial_state=state)
    out = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    want, final = forward(spec, X, L, None if h0 is None else [h0[0].astype(np.float64)], per_step_float=True)
    np.testing.assert_allclose(out[0], want, rtol=RTOL, atol=ATOL)
    if state:
        np.testing.assert_allclose(out[1][0], final[0], rtol=RTOL, atol=ATOL)


def test_what_stays_refused_names_the_record_and_where():
    with pytest.raises(ValueError, match=r"to_onnx: per-step record 0 \('layer_norm', between recurrent "
                                         r"layers 0 and 1\) does not export: ONNX LayerNormalization needs "
                                         r"opset >= 17, got opset=16"):
        rc.io.to_onnx(nn.Sequential(nn.GRU(3, 4), nn.LayerNorm(4), nn.GRU(4, 2)), None, opset=16)
    with pytest.raises(ValueError, match=r"to_onnx: per-step record 1 \('magnitude', before the "
                                         r"recurrent layers\) does not export: the exporter writes the "
                                         r"per-step records"):
        rc.io.to_onnx(nn.Sequential(nn.Linear(3, 4), nn.Magnitude(), nn.GRU(2, 2)), None)
    # a Residual around a recurrent layer (y = x + GRU(x)): its span reaches before its list
    with pytest.raises(ValueError, match=r"to_onnx: per-step record 0 \('residual', after the recurrent "
                                         r"layers\) does not export: it adds the input of a record 1 back"):
        rc.io.to_onnx(nn.Sequential(nn.Residual(nn.GRU(4, 4)), nn.LastStep()), None)
