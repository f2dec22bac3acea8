"""rc.io.from_torch against PyTorch itself: outputs and final states of imported models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnncore.io.torch_import import from_torch

CONFIGS = [
    # mode, kwargs
    ("RNN", dict(nonlinearity="tanh")),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=2, bidirectional=True, dropout=0.3)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=3)),
    ("LSTM", dict(proj_size=2, num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False)),
    ("RNN", dict(bidirectional=True)),
]


def _torch_layer(mode, kw, batch_first, dtype):
    torch.manual_seed(0)
    m = getattr(torch.nn, mode)(input_size=4, hidden_size=5, batch_first=batch_first, **kw)
    return m.to(dtype).eval()


def _states(h):
    return [np.asarray(t.detach() if hasattr(t, "detach") else t)
            for t in (h if isinstance(h, tuple) else (h,))]


@pytest.mark.parametrize("mode,kw", CONFIGS)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_recurrent_matches_torch(mode, kw, batch_first, precision):
    tdt = torch.float32 if precision == "float32" else torch.float64
    tol = 1e-5 if precision == "float32" else 1e-10
    m = _torch_layer(mode, kw, batch_first, tdt)
    x = np.random.default_rng(1).standard_normal((3, 6, 4))
    xt = torch.as_tensor(x, dtype=tdt)
    with torch.no_grad():
        y_t, h_t = m(xt if batch_first else xt.transpose(0, 1))
    y_t = y_t.numpy() if batch_first else y_t.transpose(0, 1).numpy()
    ours = from_torch(m, dtype=precision)
    y, h = ours.forward(x.astype(precision))
    assert y.dtype == np.dtype(precision)
    np.testing.assert_allclose(y, y_t, rtol=tol, atol=tol)
    for a, b in zip(_states(h), _states(h_t), strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode,kw", [c for c in CONFIGS if "bias" not in c[1]])
def test_variable_lengths_match_packed_sequences(mode, kw):
    m = _torch_layer(mode, kw, True, torch.float64)
    x = np.random.default_rng(2).standard_normal((4, 7, 4))
    lengths = np.array([7, 3, 1, 5])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        y_p, h_t = m(packed)
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(y_p, batch_first=True, total_length=7)
    y, h = from_torch(m).forward(x, lengths=lengths)
    np.testing.assert_allclose(y, y_t.numpy(), rtol=1e-10, atol=1e-10)
    for a, b in zip(_states(h), _states(h_t), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_initial_state_is_used():
    m = _torch_layer("LSTM", dict(num_layers=2), True, torch.float64)
    g = np.random.default_rng(3)
    x, h0, c0 = g.standard_normal((2, 4, 4)), g.standard_normal((2, 2, 5)), g.standard_normal((2, 2, 5))
    with torch.no_grad():
        y_t, (h_t, c_t) = m(torch.as_tensor(x), (torch.as_tensor(h0), torch.as_tensor(c0)))
    y, (h, c) = from_torch(m).forward(x, state=(h0, c0))
    np.testing.assert_allclose(y, y_t.numpy(), atol=1e-10)
    np.testing.assert_allclose(c, c_t.numpy(), atol=1e-10)


@pytest.mark.parametrize("mode,kw", [c for c in CONFIGS if "bias" not in c[1] and c[0] != "RNN"])
def test_state_dict_import_infers_the_layer(mode, kw):
    m = _torch_layer(mode, kw, True, torch.float64)
    x = np.random.default_rng(4).standard_normal((2, 5, 4))
    with torch.no_grad():
        y_t, _ = m(torch.as_tensor(x))
    ours = from_torch(m.state_dict())
    np.testing.assert_allclose(ours.forward(x)[0], y_t.numpy(), atol=1e-10)


def test_state_dict_of_relu_rnn_needs_the_nonlinearity():
    m = _torch_layer("RNN", dict(nonlinearity="relu"), True, torch.float64)
    x = np.random.default_rng(5).standard_normal((2, 5, 4)) * 3
    with torch.no_grad():
        y_t, _ = m(torch.as_tensor(x))
    assert not np.allclose(from_torch(m.state_dict()).forward(x)[0], y_t.numpy())
    np.testing.assert_allclose(from_torch(m.state_dict(), nonlinearity="relu").forward(x)[0], y_t.numpy(),
                               atol=1e-10)


def test_state_dict_with_foreign_keys_is_refused():
    sd = _torch_layer("GRU", {}, True, torch.float64).state_dict()
    sd["fc.weight"] = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="fc.weight"):
        from_torch(sd)


# -- the forward-only ExtendedRecurrent (target of ONNX-only options) on the default paths --
@pytest.mark.parametrize("mode,kw", [c for c in CONFIGS if "bias" not in c[1]])
def test_extended_recurrent_matches_torch(mode, kw):
    from rnncore.nn.extended import ExtendedRecurrent

    m = _torch_layer(mode, kw, True, torch.float64)
    x = np.random.default_rng(6).standard_normal((3, 6, 4))
    lengths = np.array([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        y_p, h_t = m(packed)
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(y_p, batch_first=True, total_length=6)
    acts = [kw["nonlinearity"]] if mode == "RNN" and "nonlinearity" in kw else None
    ours = ExtendedRecurrent(mode, 4, 5, kw.get("num_layers", 1), kw.get("bidirectional", False),
                             kw.get("proj_size", 0), activations=acts)
    ours.load_state_dict(m.state_dict())
    y, h = ours.forward(x, lengths=lengths)
    np.testing.assert_allclose(y, y_t.numpy(), atol=1e-10)
    for a, b in zip(_states(h), _states(h_t), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


# -- containers ---------------------------------------------------------------------------
class _Tagger(torch.nn.Module):
    """Embedding -> bidirectional GRU -> Linear on every step."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(11, 4, padding_idx=0)
        self.rnn = torch.nn.GRU(4, 5, batch_first=True, bidirectional=True)
        self.drop = torch.nn.Dropout(0.5)
        self.out = torch.nn.Linear(10, 3)

    def forward(self, ids):
        y, _ = self.rnn(self.emb(ids))
        return self.out(self.drop(y))


class _Classifier(torch.nn.Module):
    """LSTM (time-major) -> last step -> two Linear layers."""

    def __init__(self, pool="last", bidirectional=False):
        super().__init__()
        self.pool = pool
        self.rnn = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=bidirectional)
        D = 2 if bidirectional else 1
        self.fc1 = torch.nn.Linear(6 * D, 5)
        self.fc2 = torch.nn.Linear(5, 2)

    def forward(self, x):                      # x (T, B, F)
        y, (h, _) = self.rnn(x)
        if self.pool == "last":
            z = y[-1]
        elif self.pool == "mean":
            z = y.mean(dim=0)
        elif self.pool == "h_n":
            z = torch.cat([h[-2], h[-1]], dim=1)
        elif self.pool == "max":
            z = y.max(dim=0).values
        else:
            z = y.min(dim=0).values
        return self.fc2(self.fc1(z))


def _run_torch(m, x):
    with torch.no_grad():
        return m(x).numpy()


def test_container_embedding_gru_linear_per_step():
    torch.manual_seed(0)
    m = _Tagger().double().eval()
    ids = np.random.default_rng(7).integers(0, 11, (3, 8))
    ref = _run_torch(m, torch.as_tensor(ids))
    ours = from_torch(m)
    assert [type(x).__name__ for x in ours] == ["Embedding", "GRU", "Linear"]
    np.testing.assert_allclose(ours.forward(ids), ref, atol=1e-10)


@pytest.mark.parametrize("pool,bidirectional,expected", [
    ("last", False, "LastStep"), ("mean", False, "MaskedMean"), ("h_n", True, "LastStep"),
    ("last", True, "LastStep"), ("max", False, "MaskedMax"), ("max", True, "MaskedMax"),
])
def test_container_pooling_is_identified(pool, bidirectional, expected):
    torch.manual_seed(1)
    m = _Classifier(pool, bidirectional).eval()
    x = np.random.default_rng(8).standard_normal((4, 9, 4)).astype(np.float32)
    ref = _run_torch(m, torch.as_tensor(x).transpose(0, 1))
    ours = from_torch(m, dtype="float32")
    assert type(ours[1]).__name__ == expected
    np.testing.assert_allclose(ours.forward(x), ref, rtol=1e-5, atol=1e-5)


def test_container_with_unknown_pooling_is_refused():
    m = _Classifier("min").eval()
    with pytest.raises(ValueError, match="could not tell how _Classifier.forward"):
        from_torch(m)


class _SoftmaxClassifier(torch.nn.Module):
    """LSTM, last step, Linear, then a softmax over the classes in one of PyTorch's spellings."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.rnn = torch.nn.LSTM(4, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 3)
        self.sm = (torch.nn.Softmax(dim=-1) if form == "module" else torch.nn.LogSoftmax(dim=1)
                   if form == "log_module" else torch.nn.Identity())

    def forward(self, x):
        z = self.fc(self.rnn(x)[0][:, -1])
        if self.form == "function":
            return torch.softmax(z, dim=1)
        if self.form == "F":
            return torch.nn.functional.softmax(z, dim=-1)
        if self.form == "method":
            return z.softmax(-1)
        if self.form == "over_batch":
            return torch.softmax(z, dim=0)
        if self.form == "log_function":
            return torch.log_softmax(z, dim=-1)
        if self.form == "log_module":
            return self.sm(z)
        return self.sm(z)


@pytest.mark.parametrize("form", ["module", "function", "F", "method", "log_function", "log_module"])
def test_softmax_head_imports_and_compiles(form):
    """The (log-)softmax of a classifier becomes rc.nn.Softmax / LogSoftmax (the engine's head
    activation), whether it is a module or a function in forward (read with torch.fx when the
    container's interpretations do not reproduce the output)."""
    import rnncore as rc

    torch.manual_seed(2)
    m = _SoftmaxClassifier(form).eval()
    x = np.random.default_rng(9).standard_normal((3, 7, 4)).astype(np.float32)
    ref = _run_torch(m, torch.as_tensor(x))
    ours = from_torch(m, dtype="float32")
    last = "LogSoftmax" if form.startswith("log") else "Softmax"
    assert [type(x).__name__ for x in ours] == ["LSTM", "LastStep", "Linear", last]
    np.testing.assert_allclose(ours.forward(x), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rc.compile(ours, "f32").run(x), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rc.compile(ours, "q8").run(x), ref, atol=5e-3)


def test_softmax_over_the_batch_is_refused():
    m = _SoftmaxClassifier("over_batch").eval()
    with pytest.raises(ValueError, match=r"softmax over dim=0 of data \('B', 'F'\); only over the features"):
        from_torch(m)


def test_unsupported_module_is_named():
    m = torch.nn.Sequential(torch.nn.GRU(3, 3), torch.nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match=r"'1' of type torch.nn.modules.upsampling.Upsample"):
        from_torch(m)
    # Conv1d is imported (tests/test_import_torch_hybrid.py), but a Linear over its time axis is not
    m = torch.nn.Sequential(torch.nn.Conv1d(3, 3, 2), torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"node '_1' \(module '1', Linear\): reads the features on the last"):
        from_torch(m)
    with pytest.raises(ValueError, match="LayerNorm"):
        from_torch(torch.nn.LayerNorm(3))


@pytest.mark.parametrize("cell,kw", [("RNNCell", dict(nonlinearity="relu")), ("GRUCell", {}),
                                     ("LSTMCell", {})])
def test_cells_become_one_layer_networks(cell, kw):
    torch.manual_seed(0)
    m = getattr(torch.nn, cell)(4, 5, **kw).double()
    x = np.random.default_rng(9).standard_normal((2, 6, 4))
    h = c = torch.zeros(2, 5, dtype=torch.float64)
    ys = []
    with torch.no_grad():
        for t in range(6):
            if cell == "LSTMCell":
                h, c = m(torch.as_tensor(x[:, t]), (h, c))
            else:
                h = m(torch.as_tensor(x[:, t]), h)
            ys.append(h.numpy())
    y, _ = from_torch(m).forward(x)
    np.testing.assert_allclose(y, np.stack(ys, axis=1), atol=1e-10)


def test_container_driving_a_cell_in_its_own_loop():
    class Stepper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = torch.nn.GRUCell(4, 5)
            self.out = torch.nn.Linear(5, 2)

        def forward(self, x):                    # x (B, T, F)
            h = torch.zeros(x.shape[0], 5, dtype=x.dtype)
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
            return self.out(h)

    torch.manual_seed(3)
    m = Stepper().double().eval()
    ours = from_torch(m)
    assert [type(x).__name__ for x in ours] == ["GRU", "LastStep", "Linear"]
    x = np.random.default_rng(10).standard_normal((3, 7, 4))
    np.testing.assert_allclose(ours.forward(x), _run_torch(m, torch.as_tensor(x)), atol=1e-10)
