"""rc.io.from_keras of functional models with ``Add()([x, f(x)])`` residuals (issue 16), read from
the model's wiring, against Keras 3 itself (torch backend): the NumPy model, the f32 engine's run
and stream, the q8 engine's error; other wirings are refused naming the layer."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _helpers import randn32  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import from_keras  # noqa: E402

L = keras.layers


def _randomise(model, seed=5):
    g = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([w + g.uniform(-0.2, 0.2, w.shape).astype(w.dtype) for w in ws])
    return model


def front_residual(order="x_first", dense=False):
    """Conv1D(causal) > [Conv1D(k 1) or Dense, ReLU > Conv1D(causal) > LayerNorm] + x > GRU > Dense
    per step."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, 5))
    h = L.Conv1D(6, 3, padding="causal", activation="relu")(inp)
    f = (L.Dense(6, activation="relu") if dense else L.Conv1D(6, 1, activation="relu"))(h)
    f = L.Dropout(0.3)(f)
    f = L.Conv1D(6, 2, padding="causal", dilation_rate=2)(f)
    f = L.LayerNormalization(epsilon=1e-5)(f)
    y = L.Add()([h, f] if order == "x_first" else [f, h])
    g = L.GRU(7, return_sequences=True)(y)
    return _randomise(keras.Model(inp, L.Dense(3)(g)))


def post_residual():
    """GRU > [LayerNorm > tanh] + x > Dense per step: a residual after the recurrent layer."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((None, 4))
    g = L.GRU(8, return_sequences=True)(inp)
    f = L.LayerNormalization(epsilon=1e-5)(g)
    f = L.Activation("tanh")(f)
    return _randomise(keras.Model(inp, L.Dense(2)(L.Add()([g, f]))), seed=6)


@pytest.mark.parametrize("order", ["x_first", "f_first"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dense", [False, True])
def test_functional_add_imports_as_a_residual_and_matches_keras(order, dtype, dense):
    model = front_residual(order, dense)
    ours = from_keras(model, dtype=dtype)
    assert [type(m).__name__ for m in ours] == ["Conv1d", "ReLU", "Residual", "GRU", "Linear"]
    first = "Linear" if dense else "Conv1d"
    assert [type(m).__name__ for m in ours[2].fn] == [first, "ReLU", "Conv1d", "LayerNorm"]
    X = randn32((2, 19, 5), seed=1)
    want = keras.ops.convert_to_numpy(model(X))
    np.testing.assert_allclose(ours.forward(X.astype(dtype)), want, rtol=0, atol=1e-5)


def test_the_engine_runs_and_streams_the_keras_residual_and_q8_stays_close(tmp_path):
    model = front_residual()
    path = tmp_path / "res.keras"
    model.save(path)
    spec = from_keras(str(path), as_spec=True)
    X = randn32((3, 23, 5), seed=2)
    want = keras.ops.convert_to_numpy(model(X))
    e = rc.compile(spec)
    assert e.describe() == ("conv_time > pointwise > conv_time > pointwise > conv_time > layer_norm > "
                            "residual > gru(7) > linear(7->3)")
    np.testing.assert_allclose(e.run(X), want, rtol=0, atol=1e-5)
    st = e.stream(3)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(23)], 1), want, rtol=0, atol=1e-5)
    q8 = rc.compile(spec, "q8").run(X)
    err = np.abs(q8 - want).max() / np.abs(want).max()
    assert 0 < err < 0.03, err   # measured 1.1 % of the largest output


def test_a_residual_after_the_recurrent_layer():
    model = post_residual()
    e = rc.compile(from_keras(model, as_spec=True))
    assert e.describe() == "gru(8) > layer_norm > pointwise > residual > linear(8->2)"
    X = randn32((2, 15, 4), seed=3)
    want = keras.ops.convert_to_numpy(model(X))
    np.testing.assert_allclose(e.run(X), want, rtol=0, atol=1e-5)
    st = e.stream(2)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(15)], 1), want, rtol=0, atol=1e-5)


def _model(build, F=4):
    inp = keras.Input((None, F))
    return keras.Model(inp, build(inp))


@pytest.mark.parametrize("build, match", [
    # x + GRU(GRU(x)): more than one recurrent layer between (x + GRU(x) is imported:
    # tests/test_keras_suite.py)
    (lambda x: L.Dense(2)(L.Add()([x, L.GRU(4, return_sequences=True)(L.GRU(4, return_sequences=True)(x))])),
     r"from_keras: Add 'add\w*' adds 'input_layer\w*' to the output of 'gru\w*', across 2 recurrent layers"),
    # two branches of x: the second Dense reads x, not the first Dense's output
    (lambda x: L.GRU(3)(L.Add()([L.Dense(4, name="a")(x), L.Dense(4, name="b")(x)])),
     r"from_keras: layer 'b' \(Dense\) reads \['input_layer\w*'\], not the output of the layer before it "
     r"\('a'\)"),
    # three values
    (lambda x: L.GRU(3)(L.Add()([x, x, L.Dense(4, name="c")(x)])),
     r"from_keras: Add 'add\w*' adds \['input_layer\w*', 'input_layer\w*', 'c'\]; rnncore imports a "
     r"residual x \+ f\(x\) of two values"),
    # x + x
    (lambda x: L.GRU(3)(L.Add()([x, x])), r"from_keras: Add 'add\w*' adds \['input_layer\w*', "
                                           r"'input_layer\w*'\]"),
    # a concatenation is not a residual
    (lambda x: L.GRU(3)(L.Concatenate()([x, L.Dense(4, name="d")(x)])),
     r"from_keras: layer 'concatenate\w*' \(Concatenate\) reads \['input_layer\w*', 'd'\], not the output "
     r"of the layer before it"),
])
def test_other_wirings_are_refused_naming_the_layer(build, match):
    keras.utils.set_random_seed(0)
    with pytest.raises(ValueError, match=match):
        from_keras(_model(build))


def test_a_shared_layer_is_refused():
    keras.utils.set_random_seed(0)
    dense = L.Dense(4, name="shared")
    with pytest.raises(ValueError, match=r"layer 'shared' \(Dense\) is called 2 times"):
        from_keras(_model(lambda x: L.GRU(3)(dense(dense(x)))))
