"""The maximum over time imported from Keras (``GlobalMaxPooling1D``) and PyTorch (``y.max(1).values``,
``torch.amax``, ``F.adaptive_max_pool1d(y, 1)``, ``nn.AdaptiveMaxPool1d(1)``, a packed ``forward(x,
lengths)``) as ``rc.nn.MaskedMax``: the imported NumPy model against Keras's / PyTorch's own outputs,
and each refusal named.

Keras's ``GlobalMaxPooling1D`` ignores the mask. After a unidirectional recurrent layer with
``zero_output_for_mask=False`` its padded steps repeat the last valid output (Keras's generic loop), so
the maximum is over the valid steps; a ``Bidirectional`` layer (zeros there) or no recurrent layer before
it is refused, and the tests show that Keras's result on a padded batch then differs from the maximum
over the valid steps (the same sequences unpadded). PyTorch's maximum over ``pad_packed_sequence``'s
zeros is ``max(valid maximum, 0)`` for a short sequence: refused, naming the module;
``padding_value=-inf`` imports.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import keras_lengths  # noqa: E402

L = keras.layers
# Keras warns that GlobalMaxPooling1D drops the mask it is given (what the tests are about)
pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")
F = torch.nn.functional
pack = torch.nn.utils.rnn.pack_padded_sequence
pad = torch.nn.utils.rnn.pad_packed_sequence


def _keras(layers, shape):
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input(shape)] + layers)


def _kcall(km, x):
    with warnings.catch_warnings():   # GlobalMaxPooling1D warns that it drops the mask
        warnings.simplefilter("ignore")
        return keras.ops.convert_to_numpy(km(x)).astype(np.float64)


def _padded(seed=0, B=4, T=9, F_=5, lengths=(9, 4, 1, 6)):
    """A batch padded with zeros (Masking's mask_value) past ``lengths``."""
    x = np.random.default_rng(seed).standard_normal((B, T, F_)).astype(np.float32)
    lengths = np.asarray(lengths)
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return x, lengths


def _alone(km, x, lengths):
    """Keras's output of each sequence alone, cut at its length: the maximum over its valid steps."""
    return np.concatenate([_kcall(km, x[b:b + 1, :n]) for b, n in enumerate(lengths)])


# -- Keras ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda: [L.GRU(6, return_sequences=True), L.GlobalMaxPooling1D(), L.Dense(3)],
    lambda: [L.LSTM(6, return_sequences=True, go_backwards=True), L.GlobalMaxPooling1D(), L.Dense(3)],
    # the merge Linear s [I I] stays before the maximum (a maximum is not linear)
    lambda: [L.Bidirectional(L.GRU(6, return_sequences=True), merge_mode="sum"), L.GlobalMaxPooling1D(),
             L.Dense(3)],
    lambda: [L.Conv1D(4, 3), L.SimpleRNN(6, return_sequences=True), L.LayerNormalization(),
             L.GlobalMaxPooling1D(), L.Dense(3, activation="tanh")],
], ids=["gru", "lstm_go_backwards", "bidirectional_sum", "conv_rnn_layernorm"])
def test_keras_global_max_pooling_unmasked(build):
    km = _keras(build(), (None, 5))
    model = rc.io.from_keras(km)
    assert "MaskedMax" in [type(m).__name__ for m in model]
    x = np.random.default_rng(1).standard_normal((3, 11, 5)).astype(np.float32)
    want = _kcall(km, x)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(model.forward(x.astype(np.float64)), want, rtol=0, atol=2e-6)


def test_keras_functional_global_max_pooling():
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, 5))
    y = L.GRU(6, return_sequences=True)(inp)
    out = L.Dense(2)(L.GlobalMaxPooling1D()(L.Dense(4, activation="relu")(y)))
    km = keras.Model(inp, out)
    model = rc.io.from_keras(km)
    x = np.random.default_rng(2).standard_normal((3, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x.astype(np.float64)), _kcall(km, x), rtol=0, atol=2e-6)


@pytest.mark.parametrize("build", [
    lambda: [L.Masking(0.0), L.GRU(6, return_sequences=True), L.GlobalMaxPooling1D(), L.Dense(3)],
    lambda: [L.Masking(0.0), L.LSTM(6, return_sequences=True), L.Dense(4, activation="tanh"),
             L.LayerNormalization(), L.GlobalMaxPooling1D()],
    lambda: [L.Masking(0.0), L.GRU(6, return_sequences=True), L.SimpleRNN(5, return_sequences=True),
             L.GlobalMaxPooling1D(), L.Dense(2)],
], ids=["gru", "lstm_dense_layernorm", "stacked"])
def test_keras_masked_max_after_a_recurrent_layer_is_the_max_over_the_valid_steps(build):
    km = _keras(build(), (None, 5))
    model = rc.io.from_keras(km)
    x, lengths = _padded()
    np.testing.assert_array_equal(keras_lengths(model, x), lengths)
    want = _kcall(km, x)
    # Keras's padded steps repeat the last valid output: its maximum is over the valid steps ...
    np.testing.assert_allclose(_alone(km, x, lengths), want, rtol=0, atol=2e-6)
    # ... which is the imported model's with the lengths
    np.testing.assert_allclose(model.forward(x.astype(np.float64), lengths=lengths), want, rtol=0, atol=2e-6)


def test_keras_embedding_mask_zero_max():
    km = _keras([L.Embedding(12, 5, mask_zero=True), L.SimpleRNN(6, return_sequences=True),
                 L.GlobalMaxPooling1D(), L.Dense(3)], (None,))
    model = rc.io.from_keras(km)
    tok = np.random.default_rng(4).integers(1, 12, (3, 8))
    tok[1, 5:] = 0
    tok[2, 2:] = 0
    lengths = keras_lengths(model, tok)
    np.testing.assert_array_equal(lengths, [8, 5, 2])
    np.testing.assert_allclose(model.forward(tok, lengths=lengths), _kcall(km, tok), rtol=0, atol=2e-6)


@pytest.mark.parametrize("build,why", [
    (lambda: [L.Masking(0.0), L.Bidirectional(L.GRU(6, return_sequences=True)), L.GlobalMaxPooling1D()],
     "writes zeros at the masked steps"),
    (lambda: [L.Masking(0.0), L.GRU(6, return_sequences=True, zero_output_for_mask=True),
              L.GlobalMaxPooling1D()], "writes zeros at the masked steps"),
    (lambda: [L.Masking(0.0), L.GRU(6, return_sequences=True, go_backwards=True), L.GlobalMaxPooling1D()],
     "go_backwards=True"),
    (lambda: [L.Masking(0.0), L.Dense(6), L.GRU(6), L.Dense(6)], None),   # no maximum: imports
], ids=["bidirectional", "zero_output_for_mask", "go_backwards", "control"])
def test_keras_masked_max_that_is_not_the_max_over_the_valid_steps_is_refused(build, why):
    km = _keras(build(), (None, 5))
    if why is None:
        rc.io.from_keras(km)
        return
    with pytest.raises(ValueError, match=rf"GlobalMaxPooling1D 'global_max_pooling1d\w*' after a mask: "
                                         rf".*{why}"):
        rc.io.from_keras(km)
    # the refusal is needed: Keras's maximum over the padded batch is not the valid steps' maximum
    x, lengths = _padded(seed=6)
    assert np.abs(_kcall(km, x) - _alone(km, x, lengths)).max() > 1e-3


def test_keras_masked_max_of_the_padding_itself_is_refused():
    km = _keras([L.Masking(0.0), L.Dense(6), L.GlobalMaxPooling1D(), L.Dense(2)], (None, 5))
    with pytest.raises(ValueError, match="no recurrent layer comes before it"):
        rc.io.from_keras(km, check=False)


@pytest.mark.parametrize("kw,match", [
    ({"keepdims": True}, "keepdims=True"),
    ({"data_format": "channels_first"}, "data_format='channels_first'"),
])
def test_keras_global_max_pooling_options_refused(kw, match):
    km = _keras([L.GRU(6, return_sequences=True), L.GlobalMaxPooling1D(**kw)], (7, 5))
    with pytest.raises(ValueError, match=rf"GlobalMaxPooling1D 'global_max_pooling1d\w*' has {match}"):
        rc.io.from_keras(km)


# -- PyTorch through torch.fx and the probe --------------------------------------------------------
FORMS = {
    "max_0": lambda y: y.max(1)[0],
    "max_values": lambda y: y.max(dim=1).values,
    "torch_max_0": lambda y: torch.max(y, 1)[0],
    "torch_max_values": lambda y: torch.max(y, dim=1).values,
    "amax": lambda y: torch.amax(y, 1),
    "method_amax": lambda y: y.amax(dim=(1,)),
    "adaptive": lambda y: F.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(-1),
    "adaptive_flatten": lambda y: F.adaptive_max_pool1d(y.transpose(1, 2), output_size=1).flatten(1),
}


class _Net(torch.nn.Module):
    """GRU [LayerNorm (a front-end layer: read with torch.fx)] -> ``form`` over time -> Linear."""

    def __init__(self, form, norm: bool, module_pool: bool = False) -> None:
        super().__init__()
        self.form = form
        self.rnn = torch.nn.GRU(4, 6, batch_first=True)
        self.norm = torch.nn.LayerNorm(6) if norm else None
        self.pool = torch.nn.AdaptiveMaxPool1d(1) if module_pool else None
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        if self.norm is not None:
            y = self.norm(y)
        z = self.pool(y.transpose(1, 2)).flatten(1) if self.pool is not None else self.form(y)
        return self.fc(z)


def _torch_check(net, x):
    model = rc.io.from_torch(net)
    assert "MaskedMax" in [type(m).__name__ for m in model]
    with torch.no_grad():
        want = net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=0, atol=1e-6)
    return model


@pytest.mark.parametrize("norm", [True, False], ids=["fx", "probe"])
@pytest.mark.parametrize("form", list(FORMS))
def test_torch_max_over_time_forms(form, norm):
    torch.manual_seed(2)
    _torch_check(_Net(FORMS[form], norm).eval(), np.random.default_rng(3).standard_normal((3, 10, 4)))


def test_torch_adaptive_max_pool_module():
    torch.manual_seed(4)
    x = np.random.default_rng(5).standard_normal((2, 8, 4))
    _torch_check(_Net(None, True, module_pool=True).eval(), x)


@pytest.mark.parametrize("form,match", [
    (lambda y: y.max(1, keepdim=True)[0].squeeze(1), "max with keepdim=True"),
    (lambda y: y.amax(1, keepdim=True).squeeze(1), "amax with keepdim=True"),
    (lambda y: y.max(1)[1].float(), "reads the indices of torch.max over time"),
    (lambda y: y.max(dim=1).indices.float(), "reads the indices of torch.max over time"),
    (lambda y: y.amax(0), r"reads its data as \('T', 'B', 'F'\)"),
    (lambda y: y.max() + y[:, -1], "max without a time dim"),
    (lambda y: F.adaptive_max_pool1d(y.transpose(1, 2), 2).flatten(1)[:, :6], "output_size=2"),
    (lambda y: F.adaptive_max_pool1d(y.transpose(1, 2), 1, return_indices=True)[0].squeeze(-1),
     "return_indices=True"),
    (lambda y: F.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(), r"squeeze\(\) of the \(B, F, 1\)"),
])
def test_torch_max_refusals_are_named(form, match):
    torch.manual_seed(2)
    with pytest.raises(ValueError, match=match):
        rc.io.from_torch(_Net(form, True).eval())


class _Packed(torch.nn.Module):
    """``forward(x, lengths)``: packed LSTM, padded back with ``padding_value``, maximum over time, Linear
    [softmax]."""

    def __init__(self, padding_value: float, softmax: bool = False, bidirectional: bool = False,
                 hidden: int = 5, rnn=None) -> None:
        super().__init__()
        self.rnn = rnn or torch.nn.LSTM(4, hidden, batch_first=True, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(hidden * (2 if bidirectional else 1), 3)
        self.padding_value, self.softmax = padding_value, softmax

    def forward(self, x, lengths):
        y, _ = pad(self.rnn(pack(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True,
                   padding_value=self.padding_value, total_length=x.shape[1])
        z = self.fc(torch.max(y, 1).values)
        return torch.softmax(z, -1) if self.softmax else z


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_packed_max_padded_with_minus_inf_imports(bidirectional, softmax):
    torch.manual_seed(6)
    net = _Packed(float("-inf"), softmax, bidirectional).double().eval()
    model = rc.io.from_torch(net)
    assert "MaskedMax" in [type(m).__name__ for m in model]
    x = np.random.default_rng(7).standard_normal((4, 9, 4))
    lengths = np.array([4, 9, 1, 7])
    with torch.no_grad():
        want = net(torch.as_tensor(x), torch.as_tensor(lengths)).numpy()
    np.testing.assert_allclose(model.forward(x, lengths=lengths), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hidden", [5, 1])    # 1: the short rows' one maximum is mostly positive
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("softmax", [False, True])
def test_torch_packed_max_over_zero_padding_is_refused(softmax, seed, hidden):
    torch.manual_seed(seed)
    net = _Packed(0.0, softmax, hidden=hidden).double().eval()
    match = ("takes the maximum over time of a padded batch whose padded steps are zeros" if not softmax else
             "takes the maximum over time of a padded batch whose padded steps are zeros|saturated")
    with pytest.raises(ValueError, match=f"_Packed.forward ({match})"):
        rc.io.from_torch(net)
    # the refusal is needed: with lengths < T, PyTorch's result is max(valid maximum, 0), not the maximum
    # over the valid steps (the same sequences alone); inputs of scale 8, as the probe's later draws
    # (a one-unit layer's outputs are positive on most standard normal inputs)
    x = np.random.default_rng(8).standard_normal((4, 9, 4)) * 8
    lengths = np.array([9, 2, 1, 3])
    with torch.no_grad():
        padded = net(torch.as_tensor(x), torch.as_tensor(lengths)).numpy()
        alone = np.concatenate([net(torch.as_tensor(x[b:b + 1, :n]), torch.as_tensor([n])).numpy()
                                for b, n in enumerate(lengths)])
    assert np.abs(padded - alone).max() > 1e-6


# -- end to end: rc.compile (f32 against the framework, q8 against the NumPy q8 spec) -------------------
def _engines(model32):
    from _helpers import q8_check

    e32 = rc.compile(model32)
    assert "masked_max" in e32.describe()
    e8 = rc.compile(model32, precision="q8")
    return e32, e8, q8_check


def test_keras_masked_gru_max_compiles(tmp_path):
    km = _keras([L.Masking(0.0), L.GRU(6, return_sequences=True), L.Dense(6, activation="relu"),
                 L.GlobalMaxPooling1D(), L.Dense(3)], (None, 5))
    km.save(tmp_path / "max.keras")
    model = rc.io.from_keras(str(tmp_path / "max.keras"), dtype="float32")
    e32, e8, q8_check = _engines(model)
    x, lengths = _padded(seed=9)
    want = _kcall(km, x)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(e32.run(x, lengths), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(e32.run(x[:1]), _kcall(km, x[:1]), rtol=0, atol=1e-5)
    q8_check(e8, e32, x, lengths)


@pytest.mark.parametrize("form", ["max_values", "amax", "adaptive"])
def test_torch_max_compiles(form):
    torch.manual_seed(7)
    net = _Net(FORMS[form], True).eval()
    model = rc.io.from_torch(net, dtype="float32")
    e32, e8, q8_check = _engines(model)
    x = np.random.default_rng(10).standard_normal((4, 9, 4)).astype(np.float32)
    lengths = np.array([9, 3, 1, 6])
    with torch.no_grad():
        want = net(torch.as_tensor(x)).numpy()
        # each sequence alone, cut at its length: the maximum over its valid steps
        alone = np.concatenate([net(torch.as_tensor(x[b:b + 1, :n])).numpy() for b, n in enumerate(lengths)])
    np.testing.assert_allclose(e32.run(x), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(e32.run(x, lengths), alone, rtol=0, atol=1e-5)
    q8_check(e8, e32, x, lengths)


def test_torch_packed_max_compiles():
    torch.manual_seed(8)
    net = _Packed(float("-inf"), bidirectional=True).eval()
    model = rc.io.from_torch(net, dtype="float32")
    e32, e8, q8_check = _engines(model)
    x = np.random.default_rng(11).standard_normal((4, 9, 4)).astype(np.float32)
    lengths = np.array([4, 9, 1, 7])
    with torch.no_grad():
        want = net(torch.as_tensor(x), torch.as_tensor(lengths)).numpy()
    np.testing.assert_allclose(e32.run(x, lengths), want, rtol=0, atol=1e-5)
    q8_check(e8, e32, x, lengths)


def test_torch_packed_max_over_zero_padding_of_nonnegative_outputs_imports():
    """A ReLU RNN's outputs are >= 0, so the padding zeros never exceed a valid maximum: PyTorch's
    maximum over the zero-padded batch is the maximum over the valid steps, and it imports (no batch
    of the probe tells the two apart, and none could)."""
    torch.manual_seed(9)
    rnn = torch.nn.RNN(4, 5, nonlinearity="relu", batch_first=True)
    net = _Packed(0.0, rnn=rnn).double().eval()
    model = rc.io.from_torch(net)
    x = np.random.default_rng(12).standard_normal((4, 9, 4))
    lengths = np.array([9, 2, 1, 5])
    with torch.no_grad():
        want = net(torch.as_tensor(x), torch.as_tensor(lengths)).numpy()
    np.testing.assert_allclose(model.forward(x, lengths=lengths), want, rtol=0, atol=1e-12)


def test_torch_packed_max_the_probe_cannot_tell_is_refused():
    """An LSTM whose outputs are positive whatever its input (its cell gate ``g`` a positive constant:
    ``c`` and ``h = o tanh(c)`` stay positive): the maximum over zero padding and over the valid steps
    agree on every batch, so the probe cannot tell which ``forward`` computes; refused, saying how to
    build it."""
    torch.manual_seed(10)
    net = _Packed(float("-inf"), hidden=3).double().eval()
    g = slice(6, 9)      # the rows of g in PyTorch's gate order i, f, g, o
    with torch.no_grad():
        net.rnn.weight_ih_l0[g] = 0.0
        net.rnn.weight_hh_l0[g] = 0.0
        net.rnn.bias_ih_l0[g] = 1.0
        net.rnn.bias_hh_l0[g] = 0.0
    with pytest.raises(ValueError, match=r"_Packed.forward takes a maximum over time, but on 16 random "
                                         r"batches .*rc.nn.MaskedMax\(\)"):
        rc.io.from_torch(net)


@pytest.mark.parametrize("cell,seed", [("gru", 12), ("gru", 33), ("lstm", 18)])
def test_torch_packed_zero_padded_max_that_matches_the_last_step_is_refused(cell, seed):
    """A one-unit layer's output often rises monotonically, so on the probe's batch the maximum over
    zero padding equals the last valid step: the probe took 'last' (LastStep, 0.1 to 0.3 off PyTorch on
    other inputs). An interpretation that a maximum also reproduces is decided on another batch now."""
    torch.manual_seed(seed)
    rnn = torch.nn.GRU(4, 1, batch_first=True) if cell == "gru" else None
    net = _Packed(0.0, hidden=1, rnn=rnn).double().eval()
    with pytest.raises(ValueError, match="_Packed.forward takes (the|a) maximum over time"):
        rc.io.from_torch(net)
