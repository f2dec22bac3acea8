"""The recurrent models users copy from the well-known tutorials and examples, written as the tutorials
write them (same layer calls, same ``forward``), with random weights and tiny sizes: imported with
``rc.io.from_torch`` / ``from_keras`` / ``from_onnx`` and compared with the framework (the NumPy model
in float64 against PyTorch in float64 within 1e-9, against Keras's and onnxruntime's float32 within
1e-4 / 1e-5 of ``max(1, |ref|)``), compiled with ``rc.compile`` (f32 within 1e-4 of the framework, q8
bit for bit the NumPy q8 spec on every ISA path of this CPU), or refused with a message that names the
module / layer and says what is expected. docs/importers.md ("Tutorial architectures") lists what
stays refused.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from _helpers import q8_check  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import keras_lengths  # noqa: E402
from rnncore.io.onnx_import import OnnxGraph  # noqa: E402

nn, F = torch.nn, torch.nn.functional
L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _close(got, want, tol: float, what: str = "") -> None:
    """``|got - want| <= tol * max(1, max |want|)``."""
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * max(1.0, float(np.max(np.abs(want)))), f"{what}: difference {err:.3g}"


def _compiled(model, x, want, lengths=None) -> None:
    """``rc.compile(model)`` (f32) runs ``x`` as the framework (``want``) within 1e-4; its q8 engine
    is the NumPy q8 spec of its file bit for bit on every ISA path."""
    e32 = rc.compile(model)
    _close(e32.run(x, lengths), want, 1e-4, "f32 engine")
    q8_check(rc.compile(model, precision="q8"), e32, x, lengths)


def _t(a):
    return torch.as_tensor(np.asarray(a))


# -- PyTorch -----------------------------------------------------------------------------------------
class RNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py ``RNNModel`` (its code, the Transformer left out)."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


class RNNModelNoState(RNNModel):
    """``RNNModel`` with the ``forward`` rnncore imports: no ``hidden`` argument (a zero initial state),
    the decoded ``(T, B, ntoken)`` kept in its axes."""

    def forward(self, input):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb)
        output = self.drop(output)
        decoded = self.decoder(output)
        return F.log_softmax(decoded, dim=-1)


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH"])
def test_word_language_model(rnn_type):
    """pytorch/examples ``word_language_model``: Embedding -> Dropout -> 2-layer LSTM/GRU/RNN_TANH ->
    Dropout -> Linear decoder with tied weights, ``forward(input, hidden)`` on ``(T, B)`` tokens
    returning ``(log_softmax(decoded.view(-1, ntoken)), hidden)``: imported as ``forward(input,
    hidden=None)`` (a zero initial state; rnncore's ``state=`` gives another), the ``(T * B, ntoken)``
    rows read as the steps' outputs (rnncore returns them ``(B, T, ntoken)``)."""
    torch.manual_seed(1)
    net = RNNModel(rnn_type, 20, 8, 8, 2, dropout=0.2, tie_weights=True).double().eval()
    assert net.decoder.weight is net.encoder.weight
    model = rc.io.from_torch(net)
    assert model.torch_zero_state == "hidden"
    tok = np.random.default_rng(2).integers(0, 20, (4, 7))            # rnncore's (B, T)
    with torch.no_grad():
        want, hidden = net(_t(tok.T), net.init_hidden(4))
        want = want.view(7, 4, 20).transpose(0, 1).numpy()
        # the next batch of the same streams, from the state the first one left (truncated BPTT)
        want2 = net(_t(tok.T), hidden)[0].view(7, 4, 20).transpose(0, 1).numpy()
    _close(model.forward(tok), want, 1e-9, "numpy")
    state = [tuple(a.numpy() for a in hidden) if rnn_type == "LSTM" else hidden.numpy()]
    _close(model.forward(tok, state=state), want2, 1e-9, "numpy from hidden")
    _compiled(model, tok, want)


def test_word_language_model_state_argument_that_is_not_a_state_is_refused():
    """A second argument named like a state that ``forward`` cannot take as ``None``: refused, saying
    how it was run."""

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(4, 5)
            self.fc = nn.Linear(5, 2)

        def forward(self, x, state):
            return self.fc(self.rnn(x)[0] + state)

    with pytest.raises(ValueError, match=r"\(run as TwoInputs.forward\(x, state=None\): a zero initial "
                                         r"state\)"):
        rc.io.from_torch(TwoInputs())


class CharRNN(nn.Module):
    """PyTorch tutorial "NLP From Scratch: Classifying Names with a Character-Level RNN" (current)."""

    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        rnn_out, hidden = self.rnn(line_tensor)
        output = self.h2o(hidden[0])
        output = self.softmax(output)
        return output


def test_char_rnn_name_classification():
    """The char-RNN name classification tutorial: ``nn.RNN(n_letters, 128)`` on ``(T, B, n_letters)``
    one-hot letters, ``self.h2o(hidden[0])`` (the one layer's final state), LogSoftmax."""
    torch.manual_seed(3)
    net = CharRNN(10, 12, 4).double().eval()
    model = rc.io.from_torch(net)
    assert model.torch_layout == ("TBF", "BF")
    x = np.eye(10)[np.random.default_rng(4).integers(0, 10, (3, 6))]       # (B, T, n_letters) one-hot
    with torch.no_grad():
        want = net(_t(x.transpose(1, 0, 2))).numpy()
    _close(model.forward(x), want, 1e-9, "numpy")
    _compiled(model, x.astype(np.float32), want)


class OldCharRNN(nn.Module):
    """The same tutorial's first version: a hand-written cell on ``torch.cat((input, hidden), 1)``."""

    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


def test_char_rnn_hand_written_cell_is_refused():
    """The old char-RNN tutorial's cell, stepped by a Python loop outside the module: refused, naming the
    module and its ``hidden`` argument."""
    with pytest.raises(ValueError, match=r"OldCharRNN.forward\(input, hidden\) needs the argument 'hidden' "
                                         r".*OldCharRNN holds no nn.RNN/GRU/LSTM or cell module: its forward "
                                         r"is one step of a hand-written cell.*build the rnncore model with "
                                         r"rc.nn.Sequential"):
        rc.io.from_torch(OldCharRNN(10, 12, 4))


class SentimentLSTM(nn.Module):
    """bentrevett/pytorch-sentiment-analysis "Upgraded Sentiment Analysis" ``RNN``."""

    def __init__(self, vocab_size, embedding_dim, hidden_dim, output_dim, n_layers, bidirectional, dropout,
                 pad_idx):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_idx)
        self.rnn = nn.LSTM(embedding_dim, hidden_dim, num_layers=n_layers, bidirectional=bidirectional,
                           dropout=dropout)
        self.fc = nn.Linear(hidden_dim * 2, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, text, text_lengths):
        embedded = self.dropout(self.embedding(text))
        packed_embedded = nn.utils.rnn.pack_padded_sequence(embedded, text_lengths.to("cpu"))
        packed_output, (hidden, cell) = self.rnn(packed_embedded)
        output, output_lengths = nn.utils.rnn.pad_packed_sequence(packed_output)
        hidden = self.dropout(torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1))
        return self.fc(hidden)


class SentimentLSTMUnpacked(SentimentLSTM):
    """The same without packing (what ``torch.onnx.export`` traces)."""

    def forward(self, text):
        embedded = self.dropout(self.embedding(text))
        output, (hidden, cell) = self.rnn(embedded)
        hidden = self.dropout(torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1))
        return self.fc(hidden)


def _sentiment_batch():
    """``(B, T)`` tokens padded with ``pad_idx`` 1 past ``lengths`` (sorted longest first, as
    ``pack_padded_sequence`` wants by default)."""
    tok = np.random.default_rng(6).integers(2, 20, (4, 8))
    lengths = np.array([8, 6, 3, 1])
    tok[np.arange(8)[None, :] >= lengths[:, None]] = 1
    return tok, lengths


def test_sentiment_packed_bidirectional_lstm():
    """bentrevett's pytorch-sentiment-analysis LSTM: Embedding(padding_idx) -> packed 2-layer
    bidirectional LSTM with dropout -> ``torch.cat((hidden[-2], hidden[-1]), 1)`` -> Dropout -> Linear,
    ``forward(text, text_lengths)`` on ``(T, B)`` tokens."""
    torch.manual_seed(5)
    net = SentimentLSTM(20, 6, 5, 1, 2, True, 0.3, 1).double().eval()
    model = rc.io.from_torch(net)
    tok, lengths = _sentiment_batch()
    with torch.no_grad():
        want = net(_t(tok.T), _t(lengths)).numpy()
    _close(model.forward(tok, lengths=lengths), want, 1e-9, "numpy")
    _compiled(model, tok, want, lengths)


class TimeSeriesLSTM(nn.Module):
    """The time-series forecasting LSTM of the tutorials: explicit zero ``h0, c0`` made in ``forward``,
    ``self.fc(out[:, -1, :])``; ``device=True`` the variant with ``.requires_grad_()`` / ``.to(x.device)``
    and ``.detach()``."""

    def __init__(self, input_size, hidden_size, num_layers, output_size, device=False):
        super().__init__()
        self.hidden_size, self.num_layers, self.device = hidden_size, num_layers, device
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        if self.device:
            h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).requires_grad_().to(x.device)
            c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).requires_grad_().to(x.device)
            out, _ = self.lstm(x, (h0.detach(), c0.detach()))
        else:
            h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
            c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
            out, _ = self.lstm(x, (h0, c0))
        out = self.fc(out[:, -1, :])
        return out


@pytest.mark.parametrize("device", [False, True], ids=["zeros", "to_device"])
def test_time_series_lstm(device):
    """The time-series LSTM (``batch_first=True``, zero ``h0, c0`` in ``forward``, the last step's
    Linear). Its ``torch.zeros`` are float32 (the default dtype): the float64 comparison runs with
    float64 as PyTorch's default dtype, as a user would to run it in double."""
    torch.manual_seed(7)
    x = np.random.default_rng(8).standard_normal((3, 9, 4))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        net = TimeSeriesLSTM(4, 6, 2, 2, device).eval()
        model = rc.io.from_torch(net)
        with torch.no_grad():
            want = net(_t(x)).numpy()
    finally:
        torch.set_default_dtype(default)
    _close(model.forward(x), want, 1e-9, "numpy")
    net32 = net.float()
    model32 = rc.io.from_torch(net32, dtype="float32")      # the float32 module imports as well
    with torch.no_grad():
        want32 = net32(_t(x.astype(np.float32))).numpy()
    _close(model32.forward(x.astype(np.float32)), want32, 1e-5, "numpy f32")
    _compiled(model, x.astype(np.float32), want)


class EncoderRNN(nn.Module):
    """PyTorch tutorial "NLP From Scratch: Translation with a Sequence to Sequence Network and
    Attention", ``EncoderRNN``."""

    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


def test_seq2seq_encoder_rnn():
    """The seq2seq tutorial's ``EncoderRNN`` (Embedding -> Dropout -> GRU(batch_first=True)) returning
    ``(output, hidden)``: imported as the per-step outputs; the final ``hidden`` is their last step."""
    torch.manual_seed(9)
    net = EncoderRNN(20, 8).double().eval()
    model = rc.io.from_torch(net)
    tok = np.random.default_rng(10).integers(0, 20, (3, 6))
    with torch.no_grad():
        output, hidden = (a.numpy() for a in net(_t(tok)))
    y = model.forward(tok)
    _close(y, output, 1e-9, "numpy")
    _close(y[:, -1], hidden[0], 1e-9, "hidden")
    _compiled(model, tok, output)


class KWSGRU(nn.Module):
    """A keyword-spotting GRU on MFCCs ``(B, n_mfcc, T)``: Conv1d + BatchNorm1d + ReLU front-end,
    ``transpose(1, 2)``, GRU, the last step's Linear."""

    def __init__(self, n_mfcc=10, channels=8, hidden=12, n_classes=5):
        super().__init__()
        self.conv = nn.Conv1d(n_mfcc, channels, kernel_size=3, stride=1, padding=1)
        self.bn = nn.BatchNorm1d(channels)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = x.transpose(1, 2)
        out, _ = self.gru(x)
        return self.fc(out[:, -1, :])


def _kws_net():
    torch.manual_seed(11)
    net = KWSGRU().eval()
    with torch.no_grad():                    # trained-looking BatchNorm statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def test_kws_conv_gru():
    """A speech-command / keyword-spotting GRU (Conv1d front-end on ``(B, C, T)`` MFCCs, GRU, Linear on
    ``out[:, -1, :]``)."""
    net = _kws_net().double()
    model = rc.io.from_torch(net)
    assert model.torch_layout == ("BFT", "BF")
    x = np.random.default_rng(12).standard_normal((3, 10, 16))            # PyTorch's (B, C, T)
    with torch.no_grad():
        want = net(_t(x)).numpy()
    _close(model.forward(x.transpose(0, 2, 1)), want, 1e-9, "numpy")
    _compiled(model, x.transpose(0, 2, 1).astype(np.float32), want)


# -- Keras -------------------------------------------------------------------------------------------
def _kcall(km, x):
    return keras.ops.convert_to_numpy(km(x)).astype(np.float64)


def test_keras_imdb_bidirectional_lstm():
    """keras.io "Bidirectional LSTM on IMDB": ``Input(shape=(None,), dtype="int32")`` -> Embedding ->
    Bidirectional(LSTM(return_sequences=True)) -> Bidirectional(LSTM) -> Dense(1, "sigmoid")."""
    keras.utils.set_random_seed(13)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = L.Embedding(30, 8)(inputs)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(6))(x)
    outputs = L.Dense(1, activation="sigmoid")(x)
    km = keras.Model(inputs, outputs)
    model = rc.io.from_keras(km)
    tok = np.random.default_rng(14).integers(0, 30, (3, 9)).astype(np.int32)
    want = _kcall(km, tok)
    _close(model.forward(tok), want, 1e-4, "numpy")
    _compiled(model, tok, want)


def test_keras_weather_forecasting_lstm():
    """keras.io "Timeseries forecasting for weather prediction": ``Input((T, F))`` (a fixed number of
    steps) -> LSTM(32) -> Dense(1)."""
    keras.utils.set_random_seed(15)
    inputs = keras.layers.Input(shape=(12, 5))
    lstm_out = keras.layers.LSTM(8)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)
    km = keras.Model(inputs=inputs, outputs=outputs)
    model = rc.io.from_keras(km)
    x = np.random.default_rng(16).standard_normal((3, 12, 5)).astype(np.float32)
    want = _kcall(km, x)
    _close(model.forward(x.astype(np.float64)), want, 1e-4, "numpy")
    _compiled(model, x, want)


def test_keras_lstm_text_generation():
    """keras.io ``lstm_text_generation``: ``Input((maxlen, len(chars)))`` -> LSTM(128) ->
    Dense(len(chars), "softmax")."""
    keras.utils.set_random_seed(17)
    km = keras.Sequential([keras.Input(shape=(10, 7)), L.LSTM(8), L.Dense(7, activation="softmax")])
    model = rc.io.from_keras(km)
    x = np.eye(7, dtype=np.float32)[np.random.default_rng(18).integers(0, 7, (3, 10))]
    want = _kcall(km, x)
    _close(model.forward(x.astype(np.float64)), want, 1e-4, "numpy")
    _compiled(model, x, want)


def test_keras_addition_rnn_repeat_vector_is_refused():
    """keras.io ``addition_rnn``: LSTM(128) -> RepeatVector(D) -> LSTM(128, return_sequences=True) ->
    Dense(V, "softmax"). RepeatVector makes a new time axis of D steps: refused, naming it; the split it
    proposes (the encoder, and the decoder fed the repeated vector) reproduces Keras."""
    keras.utils.set_random_seed(19)
    enc, dec, head = L.LSTM(8), L.LSTM(8, return_sequences=True), L.Dense(12, activation="softmax")
    km = keras.Sequential([keras.Input(shape=(7, 12)), enc, L.RepeatVector(4), dec, head])
    with pytest.raises(ValueError, match=r"layer 'repeat_vector\w*' \(RepeatVector\) after the sequence "
                                         r"was pooled repeats the pooled vector as a new sequence of 4 steps"
                                         r".*keep the input's time axis"):
        rc.io.from_keras(km)
    x = np.eye(12, dtype=np.float32)[np.random.default_rng(20).integers(0, 12, (3, 7))]
    encoder = rc.io.from_keras(keras.Sequential([keras.Input(shape=(7, 12)), enc]))
    decoder = rc.io.from_keras(keras.Sequential([keras.Input(shape=(None, 8)), dec, head]))
    code = encoder.forward(x.astype(np.float64))
    got = decoder.forward(np.repeat(code[:, None], 4, axis=1))
    _close(got, _kcall(km, x), 1e-4, "encoder + decoder")


def _masked_batch():
    x = np.random.default_rng(21).standard_normal((4, 8, 5)).astype(np.float32)
    lengths = np.array([8, 5, 2, 6])
    x[np.arange(8)[None, :] >= lengths[:, None]] = 0.0
    return x, lengths


@pytest.mark.parametrize("recurrent", ["gru_reset_before", "simple_rnn"])
def test_keras_masking_time_distributed(recurrent):
    """A Sequential with ``Masking`` -> ``GRU(reset_after=False)`` / ``SimpleRNN`` (return_sequences) ->
    ``TimeDistributed(Dense)``, on a zero-padded batch: the valid steps as Keras (Keras's masked steps
    repeat the previous output, rnncore's are left to the caller: compared on the valid steps)."""
    keras.utils.set_random_seed(22)
    rnn = L.GRU(6, reset_after=False, return_sequences=True) if recurrent == "gru_reset_before" else \
        L.SimpleRNN(6, return_sequences=True)
    km = keras.Sequential([keras.Input(shape=(None, 5)), L.Masking(0.0), rnn,
                           L.TimeDistributed(L.Dense(3, activation="softmax"))])
    model = rc.io.from_keras(km)
    x, lengths = _masked_batch()
    np.testing.assert_array_equal(keras_lengths(model, x), lengths)
    want = _kcall(km, x)
    valid = np.arange(8)[None, :] < lengths[:, None]
    got = model.forward(x.astype(np.float64), lengths=lengths)
    _close(got[valid], want[valid], 1e-4, "numpy")
    e32 = rc.compile(model)
    _close(e32.run(x, lengths)[valid], want[valid], 1e-4, "f32 engine")
    q8_check(rc.compile(model, precision="q8"), e32, x, lengths)


# -- ONNX (torch.onnx.export, opset 17, dynamic batch and time) ---------------------------------------
def _export(net, x, name: str, axes: dict, out_axes: dict) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=[name], output_names=["y"], dynamo=False,
                          opset_version=17, dynamic_axes={name: axes, "y": out_axes})
    return f.getvalue()


def _ort(proto: bytes, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)


@pytest.mark.parametrize("case", ["word_language_model", "sentiment_unpacked", "time_series", "kws"])
def test_onnx_exports_of_the_tutorial_models(case):
    """``torch.onnx.export`` (opset 17, dynamic batch and time) of the word language model (its
    ``forward(input)`` form), the sentiment LSTM without packing, the time-series LSTM and the KWS GRU:
    ``from_onnx`` against onnxruntime within 1e-5, the f32 engine within 1e-4."""
    torch.manual_seed(23)
    g = np.random.default_rng(24)
    if case == "word_language_model":
        net = RNNModelNoState("LSTM", 20, 8, 8, 2, 0.2, tie_weights=True).eval()
        tok = g.integers(0, 20, (3, 7))
        proto = _export(net, _t(tok.T), "tokens", {0: "T", 1: "B"}, {0: "T", 1: "B"})
        x_onnx, x_rc, lengths = tok.T.astype(np.int64), tok, None
    elif case == "sentiment_unpacked":
        net = SentimentLSTMUnpacked(20, 6, 5, 1, 2, True, 0.3, 1).eval()
        tok = g.integers(2, 20, (3, 7))
        proto = _export(net, _t(tok.T), "text", {0: "T", 1: "B"}, {0: "B"})
        x_onnx, x_rc, lengths = tok.T.astype(np.int64), tok, None
    elif case == "time_series":
        net = TimeSeriesLSTM(4, 6, 2, 2, device=True).eval()
        x = g.standard_normal((3, 9, 4)).astype(np.float32)
        proto = _export(net, _t(x), "x", {0: "B", 1: "T"}, {0: "B"})
        x_onnx, x_rc, lengths = x, x, None
    else:
        net = _kws_net()
        x = g.standard_normal((3, 10, 16)).astype(np.float32)
        proto = _export(net, _t(x), "x", {0: "B", 2: "T"}, {0: "B"})
        x_onnx, x_rc, lengths = x, x.transpose(0, 2, 1).copy(), None
    model = rc.io.from_onnx(proto)
    # a graph with a front-end is an OnnxGraph run in the graph's own layout (B, C, T); its engine and
    # the Sequential of a plain recurrent graph read rnncore's (B, T, F)
    x_np = x_onnx if isinstance(model, OnnxGraph) else x_rc
    want = _ort(proto, x_onnx)
    if case == "word_language_model":
        want = want.transpose(1, 0, 2)              # onnxruntime's (T, B, ntoken)
    _close(model.forward(x_np if x_np.dtype.kind == "i" else x_np.astype(np.float64)), want, 1e-5, "numpy")
    _compiled(model, x_rc, want, lengths)


class _FinalState(nn.Module):
    """A GRU (with a LayerNorm before it: read with torch.fx) whose final state ``hidden`` is indexed by
    ``pick``, then a Linear."""

    def __init__(self, pick, num_layers: int, bidirectional: bool):
        super().__init__()
        self.pick = pick
        self.norm = nn.LayerNorm(4)
        self.gru = nn.GRU(4, 5, num_layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(10 if bidirectional else 5, 3)

    def forward(self, x):
        _, hidden = self.gru(self.norm(x))
        return self.fc(self.pick(hidden))


@pytest.mark.parametrize("pick,num_layers,bidirectional", [
    (lambda h: h[1], 2, False),                                   # h_n[L - 1]: the last layer's
    (lambda h: torch.cat((h[0], h[1]), dim=1), 1, True),          # h_n[0], h_n[1] of one bidirectional layer
    (lambda h: torch.cat((h[2, :, :], h[3, :, :]), dim=1), 2, True),
], ids=["last_layer_counted_from_the_front", "bidirectional_0_1", "bidirectional_2_3"])
def test_final_state_rows_counted_from_the_front(pick, num_layers, bidirectional):
    """``hidden[k]`` counted from the front (the char-RNN tutorial's ``hidden[0]``) is the row counted
    from the back that the importer reads (``h_n[-1]``, ``torch.cat((h_n[-2], h_n[-1]), 1)``)."""
    torch.manual_seed(25)
    net = _FinalState(pick, num_layers, bidirectional).double().eval()
    model = rc.io.from_torch(net)
    x = np.random.default_rng(26).standard_normal((3, 7, 4))
    with torch.no_grad():
        want = net(_t(x)).numpy()
    _close(model.forward(x), want, 1e-9, "numpy")


def test_final_state_of_a_first_layer_is_refused():
    """``hidden[0]`` of a 2-layer network is its first layer's final state: refused, naming the index."""
    with pytest.raises(ValueError, match=r"_FinalState: node 'getitem\w*' \(call_function getitem\): "
                                         r"indexing 0 of State"):
        rc.io.from_torch(_FinalState(lambda h: h[0], 2, False))


def test_onnx_word_language_model_exported_with_its_state_inputs():
    """The word language model exported as written, ``forward(input, hidden)`` with ``(h0, c0)`` inputs
    and ``(y, hn, cn)`` outputs (``y`` the ``(T * B, ntoken)`` of ``view(-1, ntoken)``): imported as an
    ``OnnxGraph`` (the chain importer refuses the ``Reshape`` by name), which runs it as onnxruntime
    does from non-zero states; ``rc.compile`` lowers it: time-major token ids ``(T, B)`` (passed as
    ``ids.T``), the states as the engine's, the ``(T * B, ntoken)`` output the engine's ``(B, T, ntoken)``
    read back as ``y.transpose(1, 0, 2).reshape(-1, ntoken)`` (``graph_io["output_layout"] == "(TB)F"``)."""
    torch.manual_seed(27)
    net = RNNModel("LSTM", 20, 8, 8, 2, 0.2, tie_weights=True).eval()
    g = np.random.default_rng(28)
    tok = g.integers(0, 20, (7, 3))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (_t(tok), net.init_hidden(3)), f, input_names=["tokens", "h0", "c0"],
                          output_names=["y", "hn", "cn"], dynamo=False, opset_version=17,
                          dynamic_axes={"tokens": {0: "T", 1: "B"}, "h0": {1: "B"}, "c0": {1: "B"},
                                        "y": {0: "TB"}, "hn": {1: "B"}, "cn": {1: "B"}})
    proto = f.getvalue()
    with pytest.raises(ValueError, match=r"node '/Reshape' \(Reshape\): reshape of data with axes "
                                         r"\('T', 'B', 'F'\) to \[-1, 20\]"):
        rc.io.from_onnx(proto, graph=False)
    graph = rc.io.from_onnx(proto)
    assert isinstance(graph, OnnxGraph)
    tok = g.integers(0, 20, (9, 4))            # other sizes than the export's
    feeds = {"tokens": tok, "h0": (g.standard_normal((2, 4, 8)) * 0.5).astype(np.float32),
             "c0": (g.standard_normal((2, 4, 8)) * 0.5).astype(np.float32)}
    ort = pytest.importorskip("onnxruntime")
    want = ort.InferenceSession(proto, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = graph.run(feeds)
    for name, w in zip(["y", "hn", "cn"], want, strict=True):
        _close(np.asarray(got[name], np.float64), w, 1e-5, name)
    eng = rc.compile(graph)
    assert eng.graph_io["input_layout"] == "TBF" and eng.graph_io["output_layout"] == "(TB)F"
    y, (hn, cn) = eng.run(tok.T.astype(np.int32), state=(feeds["h0"], feeds["c0"]), return_state=True)
    for name, got, w in [("y", y.transpose(1, 0, 2).reshape(-1, 20), want[0]), ("hn", hn, want[1]),
                         ("cn", cn, want[2])]:
        _close(np.asarray(got, np.float64), w, 1e-5, "engine " + name)
