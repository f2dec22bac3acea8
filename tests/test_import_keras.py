"""rc.io.from_keras against Keras 3 itself (torch backend): outputs of imported models."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import from_keras, keras_lengths  # noqa: E402

L = keras.layers
TOL = dict(rtol=1e-5, atol=1e-5)

MODELS = {
    # name: (layers after Input((None, 3)), expected rnncore structure)
    "gru_reset_after_last": (lambda: [L.GRU(5)], ["GRU", "LastStep"]),
    "gru_reset_before_seq": (lambda: [L.GRU(5, reset_after=False, return_sequences=True)], ["GRU"]),
    "gru_reset_before_no_bias": (lambda: [L.GRU(4, reset_after=False, use_bias=False)], ["GRU", "LastStep"]),
    "lstm_stack_dense": (lambda: [L.LSTM(5, return_sequences=True), L.LSTM(5, return_sequences=True),
                                  L.Dense(3)], ["LSTM", "Linear"]),
    "lstm_lstm_last_dense": (lambda: [L.LSTM(5, return_sequences=True), L.LSTM(4), L.Dense(3)],
                             ["LSTM", "LSTM", "LastStep", "Linear"]),
    "simplernn_relu": (lambda: [L.SimpleRNN(5, activation="relu", return_sequences=True)], ["RNN"]),
    "simplernn_tanh_last": (lambda: [L.SimpleRNN(5)], ["RNN", "LastStep"]),
    "bidirectional_gru_stack": (lambda: [L.Bidirectional(L.GRU(4, return_sequences=True)),
                                         L.Bidirectional(L.GRU(3)), L.Dense(2)],
                                ["GRU", "GRU", "LastStep", "Linear"]),
    "bidirectional_lstm_seq": (lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True))], ["LSTM"]),
    "bidirectional_gru_reset_before": (lambda: [L.Bidirectional(L.GRU(4, reset_after=False))],
                                       ["GRU", "LastStep"]),
    "go_backwards_seq": (lambda: [L.GRU(4, go_backwards=True, return_sequences=True)],
                         ["ReverseTime", "GRU"]),
    "go_backwards_last": (lambda: [L.LSTM(4, go_backwards=True)], ["ReverseTime", "LSTM", "LastStep"]),
    "hard_sigmoid_gate": (lambda: [L.GRU(4, recurrent_activation="hard_sigmoid", return_sequences=True)],
                          ["ExtendedRecurrent"]),
    "lstm_relu_activation": (lambda: [L.LSTM(4, activation="relu")], ["ExtendedRecurrent", "LastStep"]),
    "dropout_ignored_mean_pool": (lambda: [L.GRU(4, return_sequences=True, dropout=0.3), L.Dropout(0.5),
                                           L.GlobalAveragePooling1D(), L.Dense(2)],
                                  ["GRU", "MaskedMean", "Linear"]),
}


def _structure(m):
    return [type(x).__name__ for x in m] if hasattr(m, "__iter__") else [type(m).__name__]


def _build(name):
    keras.utils.set_random_seed(0)
    layers, structure = MODELS[name]
    return keras.Sequential([keras.Input((None, 3))] + layers()), structure


@pytest.mark.parametrize("name", list(MODELS))
def test_sequential_model_matches_keras(name):
    model, structure = _build(name)
    # non-zero biases, so that every bias path is exercised
    for w in model.weights:
        if "bias" in w.path:
            w.assign(np.random.default_rng(1).uniform(-0.5, 0.5, w.shape).astype("float32"))
    ours = from_keras(model, check=False)
    assert _structure(ours) == structure
    x = np.random.default_rng(2).standard_normal((3, 7, 3)).astype(np.float32)
    ref = keras.ops.convert_to_numpy(model(x))
    y = ours.forward(x.astype(np.float64))
    y = y[0] if isinstance(y, tuple) else y
    np.testing.assert_allclose(y, ref, **TOL)


def test_functional_model_and_saved_file(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, 3))
    h = L.Bidirectional(L.LSTM(4, return_sequences=True))(inp)
    h = L.GRU(5, reset_after=False)(h)
    out = L.Dense(2)(h)
    model = keras.Model(inp, out)
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.random.default_rng(4).standard_normal((2, 6, 3)).astype(np.float32)
    ref = keras.ops.convert_to_numpy(model(x))
    for source in (model, str(path)):
        ours = from_keras(source, dtype="float32")
        assert _structure(ours) == ["LSTM", "GRU", "LastStep", "Linear"]
        np.testing.assert_allclose(ours.forward(x), ref, **TOL)


def test_masking_becomes_lengths():
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((None, 3)), L.Masking(0.0), L.LSTM(4, return_sequences=True),
                              L.Bidirectional(L.GRU(3)), L.Dense(2)])
    ours = from_keras(model)
    x = np.random.default_rng(6).standard_normal((3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    np.testing.assert_array_equal(keras_lengths(ours, x), lengths)
    ref = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(ours.forward(x.astype(np.float64), lengths=lengths), ref, **TOL)
    # without the lengths the padding would be read as data
    assert not np.allclose(ours.forward(x.astype(np.float64)), ref, atol=1e-3)


def test_embedding_mask_zero_sequence_output():
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(12, 3, mask_zero=True),
                              L.GRU(4, return_sequences=True), L.Dense(2)])
    ours = from_keras(model)
    assert _structure(ours) == ["Embedding", "GRU", "Linear"]
    ids = np.random.default_rng(8).integers(1, 12, (3, 6))
    ids[1, 3:] = 0
    ids[2, 5:] = 0
    lengths = keras_lengths(ours, ids)
    np.testing.assert_array_equal(lengths, [6, 3, 5])
    ref = keras.ops.convert_to_numpy(model(ids))
    y = ours.forward(ids, lengths=lengths)
    valid = np.arange(6)[None, :] < lengths[:, None]
    # on the valid steps the outputs agree; on padding Keras repeats the last output, rnncore's
    # recurrent layer gives zeros (then the Dense layer adds its bias)
    np.testing.assert_allclose(y[valid], ref[valid], **TOL)


def test_final_softmax_imports_and_compiles_or_strips():
    """A classifier's final softmax (in the Dense or as a Softmax / Activation layer) imports as
    rc.nn.Softmax, which rc.compile runs as the softmax head; strip_final_activation=True still
    drops it and returns the logits."""
    keras.utils.set_random_seed(9)
    x = np.random.default_rng(10).standard_normal((4, 5, 3)).astype(np.float32)
    for head in ([L.Dense(3, activation="softmax")], [L.Dense(3), L.Softmax()],
                 [L.Dense(3), L.Activation("softmax")]):
        model = keras.Sequential([keras.Input((None, 3)), L.GRU(4)] + head)
        ref = keras.ops.convert_to_numpy(model(x))
        ours = from_keras(model)
        assert _structure(ours)[-1] == "Softmax"
        np.testing.assert_allclose(ours.forward(x.astype(np.float64)), ref, **TOL)
        np.testing.assert_allclose(rc.compile(ours, "f32").run(x), ref, rtol=1e-5, atol=1e-6)
        stripped = from_keras(model, strip_final_activation=True)
        assert stripped.keras_stripped == "softmax" and _structure(stripped)[-1] == "Linear"
        logits = stripped.forward(x.astype(np.float64))
        p = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(p / p.sum(1, keepdims=True), ref, **TOL)


def test_softmax_over_time_is_refused():
    model = keras.Sequential([keras.Input((None, 3)), L.GRU(4, return_sequences=True), L.Dense(3),
                              L.Softmax(axis=1)])
    with pytest.raises(ValueError, match="Softmax .* has axis=1; expected the features axis, -1 or 2"):
        from_keras(model)


@pytest.mark.parametrize("layers,match", [
    (lambda: [L.Bidirectional(L.GRU(4), merge_mode=None, name="bi")],
     "Bidirectional 'bi' has merge_mode=None; rnncore imports 'concat' .* 'sum' and 'ave' .* 'mul' .*None "
     "\\(two outputs\\) is supported only in a functional model"),
    # a backward_layer of another form (go_backwards=True inside Bidirectional with a forward
    # backward_layer is imported: tests/test_keras_suite.py)
    (lambda: [L.Bidirectional(L.GRU(4), backward_layer=L.GRU(4, activation="relu", go_backwards=True),
                              name="bi")],
     "Bidirectional 'bi': backward_layer 'gru\\w*' has activation 'relu'; expected the forward layer's "
     "'tanh'"),
    # Dense(relu) and Conv1D are imported since issue 16 (tests/test_import_keras_hybrid.py)
    (lambda: [L.GRU(4), L.Dense(3, activation="selu")], "activation 'selu'"),   # elu: imported (per-step ELU)
    (lambda: [L.UpSampling1D(2), L.GRU(3)], "UpSampling1D"),
    (lambda: [L.GRU(4, activation="gelu")], "has activation='gelu'; expected one of"),
])
def test_refusals_name_the_layer(layers, match):
    model = keras.Sequential([keras.Input((None, 3))] + layers())
    with pytest.raises(ValueError, match=match):
        from_keras(model)


MERGE_MODELS = {
    # name: (layers after Input((None, 3)) for a merge_mode, expected rnncore structure): "sum" /
    # "ave" is the Linear s [I I] after the [forward | backward] output, folded into a following
    # recurrent layer's input weights or Dense head
    "seq": (lambda m: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=m)], ["GRU", "Linear"]),
    "last": (lambda m: [L.Bidirectional(L.LSTM(4), merge_mode=m)], ["LSTM", "LastStep", "Linear"]),
    "stacked_rnn": (lambda m: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=m),
                               L.GRU(3, return_sequences=True)], ["GRU", "GRU"]),
    "stacked_bidirectional": (lambda m: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=m),
                                         L.Bidirectional(L.GRU(3), merge_mode=m)],
                              ["GRU", "GRU", "LastStep", "Linear"]),
    # the same hidden size: the folded layer stacks with the first (PyTorch's 2-layer bidirectional)
    "stacked_same_size_dense": (lambda m: [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=m),
                                           L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=m),
                                           L.Dense(2)], ["LSTM", "Linear"]),
    "last_dense": (lambda m: [L.Bidirectional(L.GRU(4), merge_mode=m), L.Dense(2)],
                   ["GRU", "LastStep", "Linear"]),
    "seq_dense": (lambda m: [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=m), L.Dense(2)],
                  ["LSTM", "Linear"]),
    "then_go_backwards": (lambda m: [L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=m),
                                     L.GRU(3, go_backwards=True)], ["GRU", "ReverseTime", "GRU", "LastStep"]),
}


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("name", list(MERGE_MODELS))
@pytest.mark.parametrize("mode", ["sum", "ave"])
def test_bidirectional_sum_and_ave_match_keras_and_compile(mode, name, masked):
    """Bidirectional merge_mode "sum" / "ave": the NumPy model and the f32 engine within 1e-5 of
    Keras predict (float32), the q8 engine within 3 % of the largest output; with Masking on the
    valid steps (on padding a plain Keras recurrent layer repeats its last output)."""
    keras.utils.set_random_seed(21)
    layers, structure = MERGE_MODELS[name]
    model = keras.Sequential([keras.Input((None, 3))] + ([L.Masking(0.0)] if masked else []) + layers(mode))
    for w in model.weights:
        if "bias" in w.path:
            w.assign(np.random.default_rng(1).uniform(-0.5, 0.5, w.shape).astype("float32"))
    x = np.random.default_rng(22).standard_normal((3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4] if masked else [6, 6, 6])
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    ref = model.predict(x, verbose=0)
    ours = from_keras(model, dtype="float32")
    assert _structure(ours) == structure
    np.testing.assert_array_equal(keras_lengths(ours, x), lengths)
    valid = (np.arange(6)[None, :] < lengths[:, None]) if ref.ndim == 3 else slice(None)
    np.testing.assert_allclose(ours.forward(x, lengths=lengths)[valid], ref[valid], **TOL)
    np.testing.assert_allclose(rc.compile(ours, "f32").run(x, lengths=lengths)[valid], ref[valid], **TOL)
    q8 = rc.compile(ours, "q8").run(x, lengths=lengths)[valid]
    err = np.abs(q8 - ref[valid]).max() / np.abs(ref[valid]).max()
    assert 0 < err < 0.03, err   # measured 0.13 % to 0.96 % (Zen 4, AVX-512)


@pytest.mark.parametrize("mode", ["sum", "ave"])
def test_bidirectional_sum_before_mean_pool_folds_into_the_dense(mode):
    """The merge commutes with the (masked) mean over time: it folds into the Dense after it."""
    keras.utils.set_random_seed(23)
    model = keras.Sequential([keras.Input((None, 3)), L.Masking(0.0),
                              L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=mode),
                              L.GlobalAveragePooling1D(), L.Dense(2)])
    x = np.random.default_rng(24).standard_normal((3, 6, 3)).astype(np.float32)
    x[1, 2:] = 0.0
    ours = from_keras(model, dtype="float32")
    assert _structure(ours) == ["GRU", "MaskedMean", "Linear"]
    np.testing.assert_allclose(ours.forward(x, lengths=keras_lengths(ours, x)), model.predict(x, verbose=0),
                               **TOL)


@pytest.mark.parametrize("layers", [
    lambda: [L.GRU(4, go_backwards=True)],
    lambda: [L.Bidirectional(L.LSTM(4))],
    lambda: [L.SimpleRNN(3, return_sequences=True), L.GlobalAveragePooling1D()],
    lambda: [L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False)),
             L.GRU(3, go_backwards=True)],
], ids=["go_backwards", "bidirectional", "masked_mean", "bidir_then_backwards"])
def test_masked_pooled_outputs_match(layers):
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((None, 3)), L.Masking(0.0)] + layers())
    ours = from_keras(model)
    x = np.random.default_rng(12).standard_normal((3, 6, 3)).astype(np.float32)
    for b, n in enumerate([6, 2, 4]):
        x[b, n:] = 0.0
    ref = keras.ops.convert_to_numpy(model(x))
    y = ours.forward(x.astype(np.float64), lengths=keras_lengths(ours, x))
    np.testing.assert_allclose(y[0] if isinstance(y, tuple) else y, ref, **TOL)


def test_time_distributed_dense_and_final_softmax_layer():
    keras.utils.set_random_seed(13)
    model = keras.Sequential([keras.Input((None, 3)), L.LSTM(4, return_sequences=True),
                              L.TimeDistributed(L.Dense(5)), L.Softmax()])
    ref = keras.ops.convert_to_numpy(model(np.zeros((1, 2, 3), np.float32)))
    np.testing.assert_allclose(from_keras(model).forward(np.zeros((1, 2, 3))), ref, **TOL)
    ours = from_keras(model, strip_final_activation=True)
    assert _structure(ours) == ["LSTM", "Linear"]
    x = np.random.default_rng(14).standard_normal((2, 6, 3)).astype(np.float32)
    logits = ours.forward(x.astype(np.float64))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(-1, keepdims=True), keras.ops.convert_to_numpy(model(x)), **TOL)


def test_bad_paths_and_objects_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="from_keras: no such file: .*nope.keras"):
        from_keras(tmp_path / "nope.keras")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a .keras file"):
        from_keras(garbage)
    with pytest.raises(TypeError, match="from_keras: expected a keras model .* got int"):
        from_keras(3)


def test_missing_keras_backend_gets_a_hint(tmp_path):
    """Keras' default backend is TensorFlow; without it and without KERAS_BACKEND the user is told
    what to set (checked in a fresh interpreter, since keras is already imported here)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: keras imports with its default backend")
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((None, 3)), L.GRU(2)]).save(path)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)  # no ~/.keras/keras.json choosing a backend
    code = f"import rnncore as rc; rc.io.from_keras({str(path)!r})"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "set KERAS_BACKEND=torch" in r.stderr, r.stderr[-2000:]


def test_leakyrelu_elu_layers_and_activation_elu_import_and_compile():
    """Keras' LeakyReLU (negative_slope 0.3 default) / ELU layers and Activation("elu") / Dense(elu)
    import as rc.nn.LeakyReLU / ELU and compile, within 1e-5 of Keras."""
    keras.utils.set_random_seed(11)
    x = np.random.default_rng(12).standard_normal((3, 6, 4)).astype(np.float32) * 2
    model = keras.Sequential([keras.Input((None, 4)), L.Dense(6), L.LeakyReLU(),
                              L.GRU(5, return_sequences=True), L.ELU(alpha=0.7), L.Dense(4, activation="elu"),
                              L.LeakyReLU(negative_slope=0.1),
                              L.Dense(3), L.Activation("elu")])
    ref = keras.ops.convert_to_numpy(model(x))
    ours = from_keras(model)
    acts = [(type(m).__name__, m.alpha) for m in ours if type(m).__name__ in ("LeakyReLU", "ELU")]
    assert acts == [("LeakyReLU", pytest.approx(0.3)), ("ELU", 0.7), ("ELU", 1.0),
                    ("LeakyReLU", pytest.approx(0.1)), ("ELU", 1.0)]
    assert (ref < 0).any()
    np.testing.assert_allclose(ours.forward(x.astype(np.float64)), ref, **TOL)
    np.testing.assert_allclose(rc.compile(ours, "f32").run(x), ref, rtol=0, atol=1e-5)


def test_relu6_hardtanh_silu_hardswish_softplus_softsign_import_and_compile():
    """Keras' ReLU(max_value=...) layer and the relu6 / hard_tanh / silu (swish) / hard_silu
    (hard_swish) / softplus / softsign activations (Activation layers and Dense activations) import
    as rc.nn.Hardtanh / ReLU6 / SiLU / Hardswish / Softplus(threshold=inf) / Softsign and compile,
    within 1e-5 of Keras."""
    keras.utils.set_random_seed(13)
    x = np.random.default_rng(14).standard_normal((3, 6, 4)).astype(np.float32) * 3
    model = keras.Sequential([keras.Input((None, 4)), L.Dense(6), L.ReLU(max_value=0.5),
                              L.Dense(6, activation="relu6"), L.Activation("hard_tanh"),
                              L.GRU(5, return_sequences=True), L.Activation("swish"),
                              L.Dense(5, activation="hard_silu"), L.Dense(5, activation="softplus"),
                              L.Dense(4), L.Activation("softsign")])
    ref = keras.ops.convert_to_numpy(model(x))
    ours = from_keras(model)
    acts = [(type(m).__name__, m.record().get("alpha"), m.record().get("beta")) for m in ours
            if type(m).__name__ in ("Hardtanh", "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign")]
    assert acts == [("Hardtanh", 0.0, 0.5), ("ReLU6", 0.0, 6.0), ("Hardtanh", -1.0, 1.0),
                    ("SiLU", None, None), ("Hardswish", None, None), ("Softplus", 1.0, np.inf),
                    ("Softsign", None, None)], acts
    np.testing.assert_allclose(ours.forward(x.astype(np.float64)), ref, **TOL)
    np.testing.assert_allclose(rc.compile(ours, "f32").run(x), ref, rtol=0, atol=1e-5)
