"""Per-step records between two recurrent layers (docs/rnc-format.md, "Which sequences run"):
``GRU -> Linear -> ReLU -> GRU``, ``LSTM -> LayerNorm -> LSTM``, ``GRU -> tanh -> GRU`` as PyTorch
writes them, imported with ``from_torch`` and run by the C engine. f32 against PyTorch's outputs
(an independent reference) and the NumPy model; q8 bit for bit against the NumPy q8 reference
(rnncore.quant.reference) on every ISA path of this CPU; the stream step by step equals the run,
its state saves and restores; lengths and bidirectional layers; what stays unsupported is refused
naming the module."""

import ctypes
import ctypes.util
import pathlib
import sys

import numpy as np
import pytest
from _helpers import randn32

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.io.torch_import import from_torch
from rnncore.quant.reference import forward, qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

torch = pytest.importorskip("torch")
nn = rc.nn
ISAS = rc.isa()["available"]


_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.tanhf.restype, _LIBM.tanhf.argtypes = ctypes.c_float, [ctypes.c_float]


class _NpWithLibmTanh:
    """numpy, except tanh of float32 is the C library's tanhf, which the engine's pointwise tanh
    record calls (its last bit may differ from NumPy's: rnncore.quant.front's docstring)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def tanh(x):
        x = np.asarray(x)
        if x.dtype != np.float32:
            return np.tanh(x)
        return np.vectorize(_LIBM.tanhf, otypes=[np.float32])(x).astype(np.float32)


def _q8_reference(eng, X, lengths=None):
    """The NumPy q8 reference of the compiled file (the C library's tanh / sigmoid in its cells
    and in a pointwise tanh record)."""
    import rnncore.quant.front as front

    saved = front.np
    front.np = _NpWithLibmTanh()
    try:
        return gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(eng.data)), X, lengths)[0]
    finally:
        front.np = saved


class GruLinearReluGru(torch.nn.Module):   # GRU -> Dropout -> Linear -> ReLU -> GRU -> Linear
    def __init__(self, bidirectional=False):
        super().__init__()
        d = 2 if bidirectional else 1
        self.g1 = torch.nn.GRU(5, 8, batch_first=True, bidirectional=bidirectional)
        self.drop = torch.nn.Dropout(0.3)
        self.lin = torch.nn.Linear(8 * d, 6)
        self.g2 = torch.nn.GRU(6, 7, batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Linear(7 * d, 3)

    def forward(self, x):
        y = self.g1(x)[0]
        y = torch.relu(self.lin(self.drop(y)))
        return self.head(self.g2(y)[0])


class LstmNormLstm(torch.nn.Module):   # LSTM -> LayerNorm -> LSTM (layer-normalised stacks)
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.LSTM(5, 9, batch_first=True)
        self.norm = torch.nn.LayerNorm(9)
        self.l2 = torch.nn.LSTM(9, 6, batch_first=True)

    def forward(self, x):
        return self.l2(self.norm(self.l1(x)[0]))[0]


class GruTanhGru(torch.nn.Module):   # GRU -> tanh -> GRU
    def __init__(self):
        super().__init__()
        self.g1 = torch.nn.GRU(5, 8, batch_first=True)
        self.g2 = torch.nn.GRU(8, 4, batch_first=True)

    def forward(self, x):
        return self.g2(torch.tanh(self.g1(x)[0]))[0]


def _torch_model(cls, seed=0, **kw):
    torch.manual_seed(seed)
    m = cls(**kw).eval()
    with torch.no_grad():   # LayerNorm's affine away from 1 / 0, so that it counts
        for name, p in m.named_parameters():
            if name.startswith("norm."):
                p.add_(torch.randn_like(p) * 0.3)
    return m


CASES = [(GruLinearReluGru, {}, "gru(8) > frame_conv > pointwise > gru(7) > linear(7->3)"),
         (LstmNormLstm, {}, "lstm(9) > layer_norm > lstm(6)"),
         (GruTanhGru, {}, "gru(8) > pointwise > gru(4)")]
MID_KINDS = {GruLinearReluGru: ["frame_conv1d", "relu"], LstmNormLstm: ["layer_norm"], GruTanhGru: ["tanh"]}


@pytest.mark.parametrize("cls, kw, text", CASES)
def test_f32_matches_torch_and_the_numpy_model(cls, kw, text):
    m = _torch_model(cls, **kw)
    X = randn32((3, 9, 5), seed=1)
    with torch.no_grad():
        want = m(torch.as_tensor(X)).numpy()
    model = from_torch(m)
    eng = rc.compile(model)
    assert eng.describe() == text
    assert np.abs(want).max() > 0.05
    got = eng.run(X)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    np.testing.assert_allclose(got, model.forward(X.astype(np.float64)), rtol=0, atol=2e-6)
    # the NumPy spec of the compiled model (its records between the layers) gives the same
    np.testing.assert_allclose(forward(eng.spec, X)[0], want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("cls, kw, text", CASES)
def test_the_records_sit_between_the_layers_in_the_file(cls, kw, text):
    eng = rc.compile(from_torch(_torch_model(cls, **kw)))
    d = read_rnc(eng.data)
    assert len(d["mid"]) == 1 and d["mid"][0] and not d["post"] and not d["front"]
    assert write_rnc(d) == eng.data   # read back, written again: the same bytes
    assert [r["kind"] for r in d["mid"][0]] == MID_KINDS[cls]


def test_lengths_zero_the_steps_past_each_length():
    m = _torch_model(GruLinearReluGru)
    X = randn32((3, 9, 5), seed=2)
    L = np.array([9, 4, 0])
    eng = rc.compile(from_torch(m))
    Y = eng.run(X, lengths=L)
    for b, n in enumerate(L):
        if n == 0:
            assert not Y[b].any()
            continue
        with torch.no_grad():
            want = m(torch.as_tensor(X[b:b + 1, :n])).numpy()[0]
        np.testing.assert_allclose(Y[b, :n], want, rtol=0, atol=2e-6)
        assert not Y[b, n:].any()


def test_bidirectional_layers_see_the_concatenated_output():
    m = _torch_model(GruLinearReluGru, bidirectional=True)
    X = randn32((2, 8, 5), seed=3)
    with torch.no_grad():
        want = m(torch.as_tensor(X)).numpy()
    for prec in ("f32", "q8"):
        eng = rc.compile(from_torch(m), prec)
        assert eng.describe() == "grux2(8) > frame_conv > pointwise > grux2(7) > linear(14->3)"
        if prec == "f32":
            np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=2e-6)
        else:
            np.testing.assert_array_equal(eng.run(X), _q8_reference(eng, X))


@pytest.mark.parametrize("cls, kw, text", CASES)
@pytest.mark.parametrize("prec", ["f32", "q8"])
def test_stream_equals_run_and_state_restores(cls, kw, text, prec):
    eng = rc.compile(from_torch(_torch_model(cls, **kw)), prec)
    X = randn32((2, 10, 5), seed=4)
    Y = eng.run(X)
    st = eng.stream(batch=2)
    got = [st.step(X[:, t]) for t in range(4)]
    saved = st.state
    got += [st.step(X[:, t]) for t in range(4, 10)]
    np.testing.assert_array_equal(np.stack(got, 1), Y)
    st.state = saved
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(4, 10)], 1), Y[:, 4:])


@pytest.mark.parametrize("cls, kw, text", CASES)
def test_q8_is_the_numpy_q8_reference_bit_for_bit_on_every_isa(cls, kw, text):
    m = _torch_model(cls, **kw)
    X = randn32((5, 8, 5), seed=5)
    L = np.array([8, 3, 8, 1, 6])
    with torch.no_grad():
        want = m(torch.as_tensor(X)).numpy()
    for calibration in (None, randn32((20, 8, 5), seed=9)):
        eng = rc.compile(from_torch(m), "q8", calibration=calibration)
        assert len(qmodel_from_rnc(read_rnc(eng.data)).mid) == 1
        ref, whole = _q8_reference(eng, X, L), _q8_reference(eng, X)
        for isa in ISAS:
            eng.set_isa(isa)
            np.testing.assert_array_equal(eng.run(X, lengths=L), ref, err_msg=isa)
            st = eng.stream(5)
            np.testing.assert_array_equal(np.stack([st.step(X[:, t].copy()) for t in range(8)], 1), whole,
                                          err_msg=isa)
        # q8 stays an approximation of the float model (the records between the layers run on floats)
        assert np.abs(eng.run(X) - want).max() < 0.05


def test_a_residual_between_the_layers():
    m = nn.Sequential(nn.GRU(5, 8, seed=0), nn.Residual(nn.Sequential(nn.Linear(8, 8, seed=1), nn.Tanh())),
                      nn.GRU(8, 4, seed=2))
    X = randn32((2, 7, 5), seed=6)
    eng = rc.compile(m)
    assert eng.describe() == "gru(8) > frame_conv > pointwise > residual > gru(4)"
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=2e-6)
    q = rc.compile(m, "q8")
    np.testing.assert_array_equal(q.run(X), _q8_reference(q, X))


def test_three_layers_two_sections_and_a_post_section():
    m = nn.Sequential(nn.LSTM(5, 6, seed=0), _layer_norm(6, seed=1), nn.GRU(6, 7, seed=2), nn.Tanh(),
                      nn.GRU(7, 5, seed=3), nn.ReLU(), nn.LastStep(), nn.Linear(5, 2, seed=4))
    X = randn32((3, 6, 5), seed=7)
    eng = rc.compile(m)
    assert eng.describe() == ("lstm(6) > layer_norm > gru(7) > pointwise > gru(5) > pointwise > last_step > "
                              "linear(5->2)")
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=2e-6)
    d = read_rnc(eng.data)
    assert [[r["kind"] for r in s] for s in d["mid"]] == [["layer_norm"], ["tanh"]]
    assert [r["kind"] for r in d["post"]] == ["relu"]
    q = rc.compile(m, "q8")
    np.testing.assert_array_equal(q.run(X), _q8_reference(q, X))


def _layer_norm(n, seed):
    m = nn.LayerNorm(n)
    g = np.random.default_rng(seed)
    m.load_state_dict({"weight": g.uniform(0.5, 1.5, n), "bias": g.uniform(-0.5, 0.5, n)})
    return m


def test_what_does_not_run_between_the_layers_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"module '1' \(Conv1d\) is not supported at this position"):
        rc.compile(nn.Sequential(nn.GRU(6, 8), nn.Conv1d(8, 8, 3, padding="causal"), nn.GRU(8, 4)))
    with pytest.raises(ValueError, match=r"module '2' \(GRU\) is not supported at this position"):
        rc.compile(nn.Sequential(nn.GRU(6, 8), nn.LastStep(), nn.GRU(8, 4)))
    with pytest.raises(ValueError, match=r"module '3' \(GRU\) follows a softmax"):
        rc.compile(nn.Sequential(nn.GRU(6, 8), nn.Linear(8, 8), nn.Softmax(), nn.GRU(8, 4)))
    spec = {"precision": "f32", "layers": [{"kind": "gru", "weights": _gru_weights(4, 3, 0)},
                                           {"kind": "gru", "weights": _gru_weights(3, 2, 1)}],
            "mid": [[{"kind": "magnitude"}]]}
    with pytest.raises(ValueError, match=r"mid\[0\]\[0\]: only records that map each step alone"):
        write_rnc(spec)
    spec["mid"] = [[], []]
    with pytest.raises(ValueError, match=r"mid: 2 lists of per-step records, expected at most 1"):
        write_rnc(spec)


def _gru_weights(i, h, seed):
    g = np.random.default_rng(seed)
    return {"weight_ih": g.standard_normal((3 * h, i)).astype(np.float32),
            "weight_hh": g.standard_normal((3 * h, h)).astype(np.float32)}


def test_q4_refuses_the_records_between_the_layers():
    m = nn.Sequential(nn.GRU(5, 8, seed=0), nn.Tanh(), nn.GRU(8, 4, seed=2))
    with pytest.raises(ValueError, match=r"mid\[0\]\[0\] \(tanh\): the C core runs per-step records in f32 "
                                         r"and q8 files only"):
        rc.compile(m, "q4")


def test_info_lists_them_between_their_layers_and_onnx_exports_them(tmp_path):
    from rnncore.cli.info import describe, format_text
    from rnncore.io.onnx_export import to_onnx

    m = nn.Sequential(nn.GRU(5, 8, seed=0), nn.Tanh(), nn.GRU(8, 4, seed=2))
    path = tmp_path / "mid.rnc"
    path.write_bytes(rc.compile(m).data)
    lines = format_text(describe(str(path), [1], 4)).splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith(("  layer ", "  per step"))]
    assert [lines[i].split(":")[0].strip() for i in at] == ["layer 0", "per step, between layers", "layer 1"]
    assert "tanh" in lines[at[1]]
    ort = pytest.importorskip("onnxruntime")
    to_onnx(m, tmp_path / "m.onnx", lengths=True)   # the Tanh between the GRUs is a Tanh node
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    X, L = randn32((3, 6, 5), seed=4), np.array([6, 1, 4])
    got = sess.run(None, {"x": X, "lengths": L.astype(np.int32)})[0]
    np.testing.assert_allclose(got, m.forward(X.astype(np.float32).astype(np.float64), lengths=L),
                               rtol=1e-5, atol=1e-6)


def test_keras_lstm_layernorm_gru_dense_gru(tmp_path):
    """The same from a Keras model (from_keras): LSTM > LayerNormalization > GRU > Dense(relu) > GRU,
    against Keras' own outputs."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from rnncore.io.keras_import import from_keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((None, 5))
    y = keras.layers.LSTM(9, return_sequences=True)(inp)
    y = keras.layers.LayerNormalization(beta_initializer="random_normal",
                                        gamma_initializer="random_uniform")(y)
    y = keras.layers.GRU(6, return_sequences=True)(y)
    y = keras.layers.Dense(4, activation="relu")(y)
    y = keras.layers.GRU(3, return_sequences=True)(y)
    path = tmp_path / "m.keras"
    keras.Model(inp, y).save(path)
    km = keras.saving.load_model(path)
    X = randn32((2, 12, 5), seed=8) * 3
    want = keras.ops.convert_to_numpy(km(X))
    eng = rc.compile(from_keras(str(path)))
    assert eng.describe() == "lstm(9) > layer_norm > gru(6) > frame_conv > pointwise > gru(3)"
    assert np.abs(want).max() > 0.02
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=2e-6)
