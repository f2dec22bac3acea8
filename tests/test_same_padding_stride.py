"""TensorFlow's / ONNX's "same" padding at a stride over time: ``rc.nn.Conv1d`` / ``MaxPool1d`` /
``AvgPool1d(padding="same" | "same_lower")``, the Keras and ONNX importers, and the paths that need
a fixed padding (the C engine, a stream), which refuse it by name.

The references: TensorFlow's rule written out here (:func:`_tf_pads`, independent of
``rnncore.nn.conv.same_padding``) with a direct loop over the windows (:func:`_direct`); Keras'
layers (``KERAS_BACKEND=torch``); onnxruntime; finite differences (``check_module``).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
from _helpers import c_equals_q8_reference  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.gradcheck import check_module  # noqa: E402
from rnncore.io import from_keras, from_onnx  # noqa: E402
from rnncore.nn.conv import AvgPool1d, Conv1d, MaxPool1d  # noqa: E402

L = keras.layers
RNG = np.random.default_rng(21)


def _tf_pads(T: int, k: int, s: int, d: int, lower: bool = False) -> tuple[int, int]:
    """tf.nn.conv1d / max_pool1d "SAME" (TensorFlow's get_windowed_output_size_verbose): the output
    has ceil(T / s) steps, the padding is what makes the last window end at or past the input."""
    out = (T + s - 1) // s
    need = (out - 1) * s + d * (k - 1) + 1
    total = need - T if need > T else 0
    half = total // 2
    return (total - half, half) if lower else (half, total - half)


def _direct(x: np.ndarray, k: int, s: int, d: int, lower: bool, op: str, w=None, b=None) -> np.ndarray:
    """The windows one by one on ``x (B, T, C)``: a convolution (``w (O, C, k)``, ``b (O,)``), a max
    over the real inputs of each window, or their mean (pad steps left out of the count)."""
    B, T, _ = x.shape
    left, _ = _tf_pads(T, k, s, d, lower)
    out = []
    for t in range((T + s - 1) // s):
        taps = [t * s + j * d - left for j in range(k)]
        inside = [(j, p) for j, p in enumerate(taps) if 0 <= p < T]
        if op == "conv":
            y = b + sum(x[:, p] @ w[:, :, j].T for j, p in inside)
        elif op == "max":
            y = np.max(np.stack([x[:, p] for _, p in inside]), axis=0)
        else:
            y = np.mean(np.stack([x[:, p] for _, p in inside]), axis=0)
        out.append(y)
    return np.stack(out, axis=1)


# -- the NumPy layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("s", [2, 3])
def test_layers_follow_tensorflows_rule(s, lower):
    pad = "same_lower" if lower else "same"
    for T in range(5, 41, 3):
        x = RNG.standard_normal((2, T, 3))
        for k in range(1, 6):
            for d in (1, 2):
                conv = Conv1d(3, 4, k, stride=s, padding=pad, dilation=d, seed=k)
                ref = _direct(x, k, s, d, lower, "conv", conv.params["weight"], conv.params["bias"])
                np.testing.assert_allclose(conv.forward(x), ref, rtol=1e-12, atol=1e-12)
                assert conv.pads_for(T) == _tf_pads(T, k, s, d, lower)
            for cls, op, kw in ((MaxPool1d, "max", {}), (AvgPool1d, "mean", {"count_include_pad": False})):
                got = cls(k, 3, stride=s, padding=pad, **kw).forward(x)
                np.testing.assert_allclose(got, _direct(x, k, s, 1, lower, op), rtol=1e-12, atol=1e-12)


def test_layers_match_keras():
    """Keras' Conv1D / MaxPooling1D / AveragePooling1D(padding="same", strides 2, 3). Keras' torch
    backend pads an average with an uneven split by repeating the edge step (TensorFlow leaves the
    padding out, as rnncore and onnxruntime do): the average is compared where the split is even."""
    for T in range(5, 41, 5):
        x = RNG.standard_normal((2, T, 3)).astype(np.float32)
        for s in (2, 3):
            for k in range(1, 6):
                kl = L.Conv1D(4, k, strides=s, padding="same")
                ref = keras.ops.convert_to_numpy(kl(x))
                conv = Conv1d(3, 4, k, stride=s, padding="same")
                w, b = kl.get_weights()
                conv.params["weight"], conv.params["bias"] = w.transpose(2, 1, 0).astype(np.float64), b
                np.testing.assert_allclose(conv.forward(x), ref, rtol=1e-5, atol=1e-5)
                ref = keras.ops.convert_to_numpy(L.MaxPooling1D(k, strides=s, padding="same")(x))
                np.testing.assert_allclose(MaxPool1d(k, 3, stride=s, padding="same").forward(x), ref,
                                           rtol=1e-6, atol=1e-6)
                left, right = _tf_pads(T, k, s, 1)
                if left == right:
                    ref = keras.ops.convert_to_numpy(L.AveragePooling1D(k, strides=s, padding="same")(x))
                    got = AvgPool1d(k, 3, stride=s, padding="same", count_include_pad=False).forward(x)
                    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def _layers(lower: bool):
    pad = "same_lower" if lower else "same"
    return [Conv1d(3, 2, 4, stride=2, padding=pad, seed=1), Conv1d(3, 2, 3, stride=3, padding=pad, dilation=2,
                                                                  seed=2),
            MaxPool1d(3, 3, stride=2, padding=pad), AvgPool1d(4, 3, stride=3, padding=pad,
                                                              count_include_pad=False)]


@pytest.mark.parametrize("lower", [False, True])
def test_backward_matches_finite_differences(lower):
    for m in _layers(lower):
        for T in (7, 8):
            rep = check_module(m, RNG.standard_normal((2, T, 3)))
            assert rep.ok, (m, T, rep)
        rep = check_module(m, RNG.standard_normal((3, 9, 3)), lengths=np.array([9, 6, 5]))
        assert rep.ok, (m, "lengths", rep)


@pytest.mark.parametrize("lower", [False, True])
def test_per_row_lengths_are_each_row_run_alone(lower):
    lengths = np.array([11, 6, 7, 1])
    x = RNG.standard_normal((4, 11, 3))
    for m in _layers(lower):
        y = m.forward(x, lengths=lengths)
        s = m.stride
        assert y.shape[1] == -(-11 // s)
        for b, lb in enumerate(lengths):
            n = -(-lb // s)
            np.testing.assert_allclose(y[b, :n], m.forward(x[b:b + 1, :lb])[0], rtol=1e-12, atol=1e-12)
            assert not y[b, n:].any()
        np.testing.assert_array_equal(m.output_lengths(lengths), -(-lengths // s))


def test_a_sequential_carries_the_strided_lengths_to_the_gru():
    """Conv1d(same, stride 2) -> GRU -> Linear with lengths: the GRU stops at ceil(L / 2) per row."""
    model = rc.nn.Sequential(Conv1d(3, 5, 3, stride=2, padding="same", seed=0), rc.nn.GRU(5, 4, seed=1),
                             rc.nn.Linear(4, 2, seed=2))
    x = RNG.standard_normal((3, 13, 3))
    lengths = np.array([13, 8, 5])
    y = model.forward(x, lengths=lengths)
    for b, lb in enumerate(lengths):
        n = -(-lb // 2)
        np.testing.assert_allclose(y[b, :n], model.forward(x[b:b + 1, :lb])[0], rtol=1e-12, atol=1e-12)
        assert not y[b, n:].any()


def test_what_needs_a_fixed_padding_refuses_it_by_name():
    conv = Conv1d(3, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError,
                       match=r"Conv1d: streaming needs a fixed padding; padding='same' at stride=2"):
        conv.stream_state(1)
    with pytest.raises(ValueError, match=r"Conv1d\(padding='same', stride=2\) pads by an amount"):
        conv.record()
    with pytest.raises(ValueError, match=r"count_include_pad: padding='same' at stride=2"):
        AvgPool1d(3, 2, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"ceil_mode: padding='same_lower' at stride=2"):
        MaxPool1d(3, 2, stride=2, padding="same_lower", ceil_mode=True)
    model = rc.nn.Sequential(conv, rc.nn.GRU(2, 3))
    with pytest.raises(ValueError, match=r"Conv1d\(padding='same', stride=2\)"):
        rc.compile(model)
    with pytest.raises(TypeError, match=r"modules\[0\]: Conv1d: streaming needs a fixed padding"):
        model.stream_state(1)


def test_stride_one_same_lower_is_a_fixed_split():
    m = Conv1d(2, 2, 4, padding="same_lower")
    assert (m.pad_left, m.pad_right) == (2, 1) == _tf_pads(9, 4, 1, 1, lower=True)


# -- Keras -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: [L.Conv1D(5, 3, strides=2, padding="same"), L.GRU(4, return_sequences=True), L.Dense(2)],
    lambda: [L.Conv1D(5, 4, strides=3, padding="same", activation="relu"),
             L.MaxPooling1D(3, strides=2, padding="same"), L.LSTM(4), L.Dense(2)],
    lambda: [L.MaxPooling1D(3, strides=2, padding="same"), L.Conv1D(4, 5, strides=2, padding="same"),
             L.GRU(3, return_sequences=True)],
])
def test_keras_models_import(make):
    model = keras.Sequential([keras.Input((None, 3))] + make())
    ours = from_keras(model)     # its own check against Keras at 24 steps
    for T in (5, 6, 13, 24, 31):
        x = RNG.standard_normal((2, T, 3)).astype(np.float32)
        ref = keras.ops.convert_to_numpy(model(x))
        np.testing.assert_allclose(ours.forward(x.astype(np.float64)), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"padding='same', stride=[23]\) pads by an amount"):
        rc.compile(from_keras(model, dtype="float32", check=False))


@pytest.mark.parametrize("s", [2, 3])
def test_a_window_of_two_steps_compiles(s):
    """Conv1D(kernel_size=2, strides=s, padding="same") never pads on the left (the total is at most
    d(k-1) = 1): its record is the fixed padding (0, 1), which the engine runs; f32 against Keras at
    odd and even T, per-row lengths against the NumPy model, q8 bit for bit against its spec."""
    model = keras.Sequential([keras.Input((None, 3)), L.Conv1D(5, 2, strides=s, padding="same"),
                              L.GRU(4, return_sequences=True), L.Dense(2)])
    ours = from_keras(model, dtype="float32")
    eng = rc.compile(ours)
    for T in (5, 6, 7, 12, 13):
        x = RNG.standard_normal((2, T, 3)).astype(np.float32)
        ref = keras.ops.convert_to_numpy(model(x))
        np.testing.assert_allclose(eng.run(x), ref, rtol=1e-5, atol=1e-5)
    x = RNG.standard_normal((3, 13, 3)).astype(np.float32)
    lengths = np.array([13, 8, 5])
    got, want = eng.run(x, lengths), ours.forward(x, lengths=lengths)
    for b, lb in enumerate(lengths):
        n = -(-lb // s)
        np.testing.assert_allclose(got[b, :n], want[b, :n], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[b, :n], eng.run(x[b:b + 1, :lb])[0], rtol=1e-6, atol=1e-6)
    c_equals_q8_reference(rc.compile(ours, precision="q8"), x[:, :12], None)


def test_keras_average_pooling_under_the_torch_backend_is_refused():
    model = keras.Sequential([keras.Input((None, 3)), L.AveragePooling1D(3, strides=2, padding="same"),
                              L.GRU(3)])
    with pytest.raises(ValueError, match=r"AveragePooling1D 'average_pooling1d.*' has padding='same' with "
                                         r"strides=2 .* torch backend"):
        from_keras(model)


# -- ONNX ------------------------------------------------------------------------------------------
def _onnx_model(op: str, auto: str, k: int, s: int, C: int = 3, O: int = 4) -> bytes:
    inits, ins = [], ["x"]
    attrs = {"kernel_shape": [k], "strides": [s], "auto_pad": auto}
    if op == "Conv":
        W = RNG.standard_normal((O, C, k)).astype(np.float32)
        B = RNG.standard_normal(O).astype(np.float32)
        inits = [onnx.numpy_helper.from_array(W, "W"), onnx.numpy_helper.from_array(B, "B")]
        ins += ["W", "B"]
    node = helper.make_node(op, ins, ["y"], name="n", **attrs)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", O if op == "Conv" else C, "M"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, "T"])],
                          [out], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


@pytest.mark.parametrize("auto", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("op", ["Conv", "MaxPool", "AveragePool"])
def test_onnx_auto_pad_at_a_stride_matches_onnxruntime(op, auto):
    for k, s in ((3, 2), (4, 2), (5, 3), (2, 2), (4, 1)):   # at stride 1 a fixed split
        blob = _onnx_model(op, auto, k, s)
        sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        ours = from_onnx(blob)
        for T in (5, 8, 11, 16):
            x = RNG.standard_normal((2, 3, T)).astype(np.float32)
            np.testing.assert_allclose(ours(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def _conv_gru(auto: str) -> bytes:
    """Conv(auto_pad, strides 2) over (N, C, T) -> GRU over time -> Y (N, T', H), dynamic N and T."""
    C, O, H, k = 3, 4, 5, 3
    arr = onnx.numpy_helper.from_array
    inits = [arr(RNG.standard_normal((O, C, k)).astype(np.float32), "W"),
             arr(RNG.standard_normal(O).astype(np.float32), "B"),
             arr((RNG.standard_normal((1, 3 * H, O)) / 2).astype(np.float32), "Wg"),
             arr((RNG.standard_normal((1, 3 * H, H)) / 2).astype(np.float32), "Rg"),
             arr((RNG.standard_normal((1, 6 * H)) / 2).astype(np.float32), "Bg"),
             arr(np.array([1], np.int64), "ax1")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[k], strides=[2],
                              auto_pad=auto),
             helper.make_node("Transpose", ["c"], ["ct"], perm=[2, 0, 1]),
             helper.make_node("GRU", ["ct", "Wg", "Rg", "Bg"], ["yg"], name="gru", hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["yg", "ax1"], ["ys"]),
             helper.make_node("Transpose", ["ys"], ["y"], perm=[1, 0, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, "T"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "M", H])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


@pytest.mark.parametrize("auto", ["SAME_UPPER", "SAME_LOWER"])
def test_onnx_conv_gru_matches_onnxruntime_and_the_engine_refuses_it(auto):
    blob = _conv_gru(auto)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    ours = from_onnx(blob)
    for T in (6, 9, 14):
        x = RNG.standard_normal((2, 3, T)).astype(np.float32)
        np.testing.assert_allclose(ours(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=rf"node 'conv' \(Conv\).*auto_pad '{auto}' with strides \[2\]"):
        rc.compile(from_onnx(blob, dtype="float32"))
