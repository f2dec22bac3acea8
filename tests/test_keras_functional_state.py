"""Keras functional models that read a recurrent layer's final states (``return_state=True``) or the
two outputs of ``Bidirectional(merge_mode=None)``, through ``rc.from_keras``: ``out, h = GRU(...)(x)``
then ``h`` (the output of the last valid step: rnncore's last-step pooling), ``Concatenate`` /
``Add`` / ``Average`` / ``Multiply`` of ``[fh, bh]`` or ``[f, b]`` (rnncore's bidirectional merges;
``[b, f]`` concatenated is the halves swapped). The NumPy model and the f32 engine against Keras
``predict`` (1e-5, float32, torch backend), without and with ``Masking`` (trailing padding, compared
on the valid steps); the q8 engine bit for bit with the NumPy q8 spec on every ISA path of this CPU.
One direction alone is that direction's layer. What no rnncore model computes (the cell state
``c``, the backward sequence alone, two outputs read apart, a state fed to ``initial_state``) is
refused, naming the layer and what reads which output."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _helpers import c_equals_q8_reference  # noqa: E402
from test_keras_suite import LENGTHS, T, _padded, _randomise  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import from_keras, keras_lengths  # noqa: E402

L = keras.layers
TOL = dict(rtol=1e-5, atol=1e-5)


def _bi(cell, seq=False, **kw):
    return L.Bidirectional(getattr(L, cell)(4, return_sequences=seq, return_state=kw.pop("state", False)),
                           **kw)


# name: (the function of the (masked) input, does rnncore pool the sequence (LastStep)?)
STATES = {
    # out, h = layer(x): h is the output of the last valid step
    "gru_h_of_sequence": (lambda x: L.Dense(2)(L.GRU(4, return_sequences=True, return_state=True)(x)[1]),
                          True),
    "gru_reset_before_h": (lambda x: L.Dense(2)(L.GRU(4, reset_after=False, return_state=True)(x)[1]), True),
    "lstm_h_of_sequence": (lambda x: L.Dense(2)(L.LSTM(4, return_sequences=True, return_state=True)(x)[1]),
                           True),
    "lstm_h_is_the_output": (lambda x: L.LSTM(4, return_state=True)(x)[1], True),
    "simplernn_backwards_h": (lambda x: L.Dense(2)(L.SimpleRNN(4, go_backwards=True, return_sequences=True,
                                                               return_state=True)(x)[1]), True),
    "gru_output_with_return_state": (lambda x: L.Dense(2)(L.GRU(4, return_sequences=True,
                                                                return_state=True)(x)[0]), False),
    "gru_h_residual_head": (lambda x: (lambda h: L.Add()([h, L.Dense(4)(h)]))(
        L.GRU(4, return_sequences=True, return_state=True)(x)[1]), True),
    "stacked_cells_output_with_return_state": (lambda x: L.Dense(2)(L.RNN(
        [L.GRUCell(3), L.LSTMCell(4)], return_sequences=True, return_state=True)(x)[0]), False),
    # out, fh, [fc,] bh, [bc] = Bidirectional(..., return_state=True)(x)
    "bidir_lstm_concat_fh_bh": (lambda x: (lambda o, fh, fc, bh, bc: L.Dense(2)(L.Concatenate()([fh, bh])))(
        *_bi("LSTM", seq=True, state=True)(x)), True),
    "bidir_gru_concat_bh_fh": (lambda x: (lambda o, fh, bh: L.Dense(2)(L.Concatenate()([bh, fh])))(
        *_bi("GRU", state=True)(x)), True),
    "bidir_gru_concat_bh_fh_no_head": (lambda x: (lambda o, fh, bh: L.Concatenate(axis=1)([bh, fh]))(
        *_bi("GRU", seq=True, state=True)(x)), True),
    "bidir_simplernn_add_fh_bh": (lambda x: (lambda o, fh, bh: L.Add()([fh, bh]))(
        *_bi("SimpleRNN", state=True)(x)), True),
    "bidir_lstm_average_bh_fh": (lambda x: (lambda o, fh, fc, bh, bc: L.Dense(2)(L.Average()([bh, fh])))(
        *_bi("LSTM", seq=True, state=True)(x)), True),
    "bidir_gru_multiply_fh_bh": (lambda x: (lambda o, fh, bh: L.Multiply()([fh, bh]))(
        *_bi("GRU", state=True)(x)), True),
    "bidir_swapped_concat_fh_bh": (lambda x: (lambda o, fh, bh: L.Dense(2)(L.Concatenate()([fh, bh])))(
        *L.Bidirectional(L.GRU(4, go_backwards=True, return_state=True),
                         backward_layer=L.GRU(4, return_state=True))(x)), True),
    "bidir_output_with_return_state": (lambda x: L.Dense(2)(_bi("LSTM", seq=True, state=True)(x)[0]), False),
    # f, b = Bidirectional(..., merge_mode=None)(x)
    "none_gru_concat": (lambda x: L.Dense(2)(L.Concatenate()(_bi("GRU", seq=True, merge_mode=None)(x))),
                        False),
    "none_gru_reset_before_concat_b_f": (lambda x: (lambda f, b: L.Dense(2)(L.Concatenate()([b, f])))(
        *L.Bidirectional(L.GRU(4, reset_after=False, return_sequences=True), merge_mode=None)(x)), False),
    "none_lstm_concat_b_f_no_head": (lambda x: (lambda f, b: L.Concatenate()([b, f]))(
        *_bi("LSTM", seq=True, merge_mode=None)(x)), False),
    "none_lstm_add_last": (lambda x: L.Dense(2)(L.Add()(_bi("LSTM", merge_mode=None)(x))), True),
    "none_simplernn_average_b_f": (lambda x: (lambda f, b: L.Average()([b, f]))(
        *_bi("SimpleRNN", seq=True, merge_mode=None)(x)), False),
    "none_lstm_multiply": (lambda x: L.Multiply()(_bi("LSTM", seq=True, merge_mode=None)(x)), False),
    "none_gru_multiply_b_f_last": (lambda x: (lambda f, b: L.Dense(2)(L.Multiply()([b, f])))(
        *_bi("GRU", merge_mode=None)(x)), True),
    "none_gru_concat_then_gru": (
        lambda x: L.GRU(3)(L.Concatenate()(_bi("GRU", seq=True, merge_mode=None)(x))), True),
    # one direction alone: that direction's layer
    "bidir_forward_h_alone": (lambda x: L.Dense(2)(_bi("LSTM", seq=True, state=True)(x)[1]), True),
    "bidir_backward_h_alone": (lambda x: L.Dense(2)(_bi("GRU", seq=True, state=True)(x)[2]), True),
    "none_forward_sequence_alone": (lambda x: L.Dense(2)(_bi("GRU", seq=True, merge_mode=None)(x)[0]), False),
    "none_backward_output_alone": (lambda x: _bi("SimpleRNN", merge_mode=None)(x)[1], True),
    "none_states_concat": (lambda x: (lambda f, b, fh, bh: L.Dense(2)(L.Concatenate()([fh, bh])))(
        *_bi("GRU", seq=True, merge_mode=None, state=True)(x)), True),
}


def _model(name, masked):
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 3))
    x = L.Masking(0.0)(inp) if masked else inp
    model = _randomise(keras.Model(inp, STATES[name][0](x)))
    lengths = LENGTHS if masked else np.full(3, T)
    x = _padded(lengths=lengths)
    ref = model.predict(x, verbose=0)
    valid = (np.arange(T)[None, :] < lengths[:, None]) if ref.ndim == 3 else slice(None)
    return model, x, lengths, ref, valid


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("name", list(STATES))
def test_functional_states_and_merges_match_predict(name, masked):
    """The NumPy model and the f32 engine within 1e-5 of Keras predict."""
    model, x, lengths, ref, valid = _model(name, masked)
    ours = from_keras(model, dtype="float32")
    assert ("LastStep" in [type(m).__name__ for m in ours]) == STATES[name][1]
    np.testing.assert_array_equal(keras_lengths(ours, x), lengths)
    np.testing.assert_allclose(ours.forward(x, lengths=lengths)[valid], ref[valid], **TOL)
    np.testing.assert_allclose(rc.compile(ours, "f32").run(x, lengths=lengths)[valid], ref[valid], **TOL)


@pytest.mark.parametrize("name", list(STATES))
def test_functional_states_and_merges_q8_is_the_q8_spec(name):
    """The q8 engine bit for bit with the NumPy q8 spec on every ISA path of this CPU, on a padded
    batch, and within 3 % of Keras's largest output on the valid steps."""
    model, x, lengths, ref, valid = _model(name, True)
    got = c_equals_q8_reference(rc.compile(from_keras(model, dtype="float32"), "q8"), x, lengths)
    err = np.abs(got[valid] - ref[valid]).max() / np.abs(ref[valid]).max()
    assert err < 0.03, err   # measured 0.12 % to 1.3 % (AMD EPYC Zen 4, AVX-512)


# --- what rnncore does not compute: refused, naming the layer and what reads which output ----------

def _two_heads(x):
    o, h = L.GRU(4, return_sequences=True, return_state=True, name="g")(x)
    return [L.Dense(2)(o), L.Dense(2)(h)]


REFUSED = {
    "lstm_cell_state": (lambda x: L.Dense(2)(L.LSTM(4, return_state=True, name="g")(x)[2]),
                        r"LSTM 'g' \(return_state=True\) has outputs \['output', 'h', 'c'\], read as: "
                        r"'dense.*' reads \['c'\]; rnncore imports one of: .* not the cell state c"),
    "output_and_h_concatenated": (lambda x: L.Concatenate()(L.GRU(4, return_state=True, name="g")(x)),
                                  r"GRU 'g' \(return_state=True\) has outputs \['output', 'h'\], read as: "
                                  r"'concatenate.*' reads \['output', 'h'\]"),
    "output_and_h_read_apart": (_two_heads, r"GRU 'g' \(return_state=True\) .* read as: 'dense.*' reads "
                                            r"\['output'\]; 'dense.*' reads \['h'\]"),
    "backward_sequence_alone": (lambda x: L.Dense(2)(_bi("GRU", seq=True, merge_mode=None, name="g")(x)[1]),
                                r"Bidirectional 'g' \(Bidirectional\(merge_mode=None\)\) has outputs "
                                r"\['forward output', 'backward output'\], read as: 'dense.*' reads "
                                r"\['backward output'\]; .*\(not the backward sequence"),
    "swapped_forward_h_alone": (lambda x: L.Dense(2)(L.Bidirectional(
        L.GRU(4, go_backwards=True, return_state=True), backward_layer=L.GRU(4, return_state=True),
        name="g")(x)[1]), r"Bidirectional 'g' \(return_state=True\) has outputs \['output', 'forward h', "
                          r"'backward h'\], read as: 'dense.*' reads \['forward h'\]"),
    "forward_c_and_backward_c": (lambda x: (lambda o, fh, fc, bh, bc: L.Concatenate()([fc, bc]))(
        *_bi("LSTM", state=True, name="g")(x)), r"Bidirectional 'g' \(return_state=True\) .* reads "
                                                r"\['forward c', 'backward c'\]"),
    "forward_output_and_h": (lambda x: (lambda f, b, fh, bh: L.Concatenate()([f, bh]))(
        *_bi("GRU", merge_mode=None, state=True, name="g")(x)), r"reads \['forward output', 'backward h'\]"),
    "concatenated_over_time": (lambda x: L.Concatenate(axis=1)(_bi("GRU", seq=True, merge_mode=None,
                                                                   name="g")(x)),
                               r"Concatenate 'concatenate.*' joins the outputs of Bidirectional 'g' on "
                               r"axis 1; expected the features axis, -1 or 2"),
    "state_through_an_op": (lambda x: L.Dense(2)(keras.ops.tanh(L.GRU(4, return_state=True, name="g")(x)[1])),
                            r"GRU 'g' has outputs \['output', 'h'\], read by no layer of the model, only by "
                            r"the ops \['tanh.*'\]; rnncore imports a chain of layers"),
    "stacked_cells_state": (lambda x: L.Dense(2)(L.RNN([L.GRUCell(3), L.LSTMCell(4)], return_state=True,
                                                       name="g")(x)[1]),
                            r"RNN 'g' has return_state=True with a stack of 2 cells, whose states the model "
                            r"reads; rnncore imports the output of a stack, the states of one cell"),
    "state_into_initial_state": (lambda x: L.GRU(4)(x, initial_state=L.GRU(4, return_state=True)(x)[1]),
                                 r"layer 'gru.*' \(GRU\) is called with initial_state= the output of "
                                 r"\['gru.*'\]; expected no tensor keyword argument"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_no_rnncore_model_computes_is_refused_by_name(name):
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 3))
    build, words = REFUSED[name]
    with pytest.raises(ValueError, match=words):
        from_keras(keras.Model(inp, build(inp)))


def test_a_model_of_two_outputs_is_refused_by_name():
    inp = keras.Input((None, 3))
    h = L.GRU(4, name="g")(inp)
    with pytest.raises(ValueError, match=r"the model's outputs are \['g', 'd'\]; expected one, the output of "
                                         r"the chain of layers \('d'\)"):
        from_keras(keras.Model(inp, [h, L.Dense(2, name="d")(h)]))


def test_sequential_return_state_and_merge_mode_none_are_refused_by_name():
    """A Sequential model cannot say which output it reads: refused, pointing at the functional form."""
    for layer, words in ((L.GRU(4, return_state=True, name="g"),
                          r"GRU 'g' has return_state=True; expected return_state=False .* functional model"),
                         (L.Bidirectional(L.GRU(4), merge_mode=None, name="g"),
                          r"Bidirectional 'g' has merge_mode=None; .* only in a functional model")):
        with pytest.raises(ValueError, match=words):
            from_keras(keras.Sequential([keras.Input((T, 3)), layer]))
