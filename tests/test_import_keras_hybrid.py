"""rc.io.from_keras of hybrid models (issue 16) against Keras 3 itself (torch backend):
Conv1D (valid/same/causal, strides, dilation, groups), MaxPooling1D / AveragePooling1D,
LayerNormalization, BatchNormalization (inference), Dense per step and TimeDistributed(Dense),
activations, around (Bidirectional) recurrent layers, Sequential and functional."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnncore.io.keras_import import from_keras  # noqa: E402

L = keras.layers
RNG = np.random.default_rng(1604)


def _randomise(model):
    """Non-trivial weights everywhere: biases, BatchNorm statistics, LayerNorm gamma/beta."""
    g = np.random.default_rng(5)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights(_bn_weights(layer, g, ws[0].shape[0]))
            continue
        layer.set_weights([w + g.uniform(-0.2, 0.2, w.shape).astype(w.dtype) for w in ws])
    return model


def _bn_weights(layer, g, n):
    out = []
    if layer.scale:
        out.append(g.uniform(0.5, 1.5, n))
    if layer.center:
        out.append(g.uniform(-0.3, 0.3, n))
    return out + [g.uniform(-0.5, 0.5, n), g.uniform(0.5, 2.0, n)]


def _check(model, F, dtype="float32", lengths=(17, 12), **kw):
    ours = from_keras(model, dtype=dtype, **kw)
    for B, T in zip((2, 3), lengths, strict=True):
        x = RNG.standard_normal((B, T, F)).astype(np.float32)
        ref = keras.ops.convert_to_numpy(model(x))
        y = ours.forward(x.astype(dtype))
        y = y[0] if isinstance(y, tuple) else y
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    return ours


def _structure(m):
    return [type(x).__name__ for x in m]


SEQUENTIAL = {
    "conv_same_bn_relu_gru": (lambda: [L.Conv1D(6, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                                       L.GRU(5)],
                              ["Conv1d", "BatchNorm1d", "ReLU", "GRU", "LastStep"]),
    "conv_causal_dilated_tanh_lstm_seq": (lambda: [L.Conv1D(4, 3, padding="causal", dilation_rate=2,
                                                            activation="tanh"),
                                                   L.LSTM(5, return_sequences=True), L.Dense(2)],
                                          ["Conv1d", "Tanh", "LSTM", "Linear"]),
    "conv_valid_strided_groups_maxpool": (lambda: [L.Conv1D(6, 2, strides=2, groups=3), L.MaxPooling1D(2),
                                                   L.GRU(4, return_sequences=True)],
                                          ["Conv1d", "MaxPool1d", "GRU"]),
    "avgpool_same_layernorm_bigru": (lambda: [L.AveragePooling1D(3, strides=1, padding="same"),
                                              L.LayerNormalization(),
                                              L.Bidirectional(L.GRU(4, return_sequences=True)),
                                              L.TimeDistributed(L.Dense(3, activation="sigmoid"))],
                                     ["AvgPool1d", "LayerNorm", "GRU", "Linear", "Sigmoid"]),
    "maxpool_same_stride2_dense_relu_lstm": (lambda: [L.MaxPooling1D(2, padding="same"),
                                                      L.Dense(5, activation="relu"), L.LSTM(4),
                                                      L.Dense(3, activation="gelu"), L.BatchNormalization()],
                                             ["MaxPool1d", "Linear", "ReLU", "LSTM", "LastStep", "Linear",
                                              "GELU", "BatchNorm1d"]),
    "avgpool_valid_stride_activation_layers": (lambda: [L.AveragePooling1D(3, strides=2),
                                                        L.Activation("hard_sigmoid"), L.SimpleRNN(4),
                                                        L.Activation("tanh")],
                                               ["AvgPool1d", "HardSigmoid", "RNN", "LastStep", "Tanh"]),
    "avgpool2_same_odd_lengths": (lambda: [L.AveragePooling1D(2, padding="same"),
                                           L.GRU(3, return_sequences=True)],
                                  ["AvgPool1d", "GRU"]),
}


@pytest.mark.parametrize("name", list(SEQUENTIAL))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_hybrid_matches_keras(name, dtype):
    keras.utils.set_random_seed(0)
    layers, structure = SEQUENTIAL[name]
    model = _randomise(keras.Sequential([keras.Input((None, 6))] + layers()))
    ours = _check(model, 6, dtype, lengths=(17, 12) if "odd" not in name else (17, 13))
    assert _structure(ours) == structure


def test_functional_model_matches_keras():
    keras.utils.set_random_seed(1)
    inp = keras.Input((None, 5))
    z = L.Conv1D(8, 5, padding="causal", activation="relu")(inp)
    z = L.LayerNormalization(epsilon=1e-5)(z)
    z = L.Bidirectional(L.LSTM(6, return_sequences=True))(z)
    z = L.MaxPooling1D(3, strides=1, padding="same")(z)
    z = L.GRU(4)(z)
    out = L.Dense(2)(z)
    model = _randomise(keras.Model(inp, out))
    ours = _check(model, 5)
    assert _structure(ours) == ["Conv1d", "ReLU", "LayerNorm", "LSTM", "MaxPool1d", "GRU", "LastStep",
                                "Linear"]


def test_causal_front_end_streams_like_the_whole_sequence():
    keras.utils.set_random_seed(2)
    model = _randomise(keras.Sequential([keras.Input((None, 3)), L.Conv1D(4, 3, padding="causal"),
                                         L.LayerNormalization(), L.GRU(5, return_sequences=True),
                                         L.Dense(2)]))
    ours = from_keras(model, dtype="float32")
    x = RNG.standard_normal((2, 10, 3)).astype(np.float32)
    state, outs = None, []
    for t in range(10):
        y, state = ours.stream(x[:, t:t + 1], state)
        outs.append(y)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers,match", [
    (lambda: [L.AveragePooling1D(3, padding="same"), L.GRU(3)], "padding='same' with strides=3"),
    (lambda: [L.GRU(3, return_sequences=True), L.UpSampling1D(2)],
     r"'up_sampling1d.*UpSampling1D\); supported"),
    (lambda: [L.Dense(3, activation="selu"), L.GRU(3)], "activation 'selu'"),
    (lambda: [L.LayerNormalization(rms_scaling=True), L.GRU(3)], "rms_scaling"),
    (lambda: [L.Masking(0.0), L.Conv1D(3, 2), L.GRU(3)], "after a mask"),
    (lambda: [L.GRU(3), L.RepeatVector(2)], "after the sequence was pooled"),
])
def test_refusals_name_the_layer(layers, match):
    model = keras.Sequential([keras.Input((None, 4))] + layers())
    with pytest.raises(ValueError, match=match):
        from_keras(model)


def test_channels_first_is_refused():
    model = keras.Sequential([keras.Input((4, 9)), L.Conv1D(3, 2, data_format="channels_first"),
                              L.Permute((2, 1)), L.GRU(3)])
    with pytest.raises(ValueError, match="data_format='channels_first'"):
        from_keras(model)
