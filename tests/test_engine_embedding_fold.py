"""Per-step layers right after an Embedding (Linear, activations, LayerNorm, BatchNorm): each maps a
token's row alone, so ``rc.compile`` runs them once over the embedding table and the engine looks
the result up (rnncore.spec._fold_into_table). Checked against PyTorch, Keras and the NumPy model
(f32), and bit for bit against the NumPy q8 reference on every ISA this CPU runs (q8)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import c_equals_q8_reference

import rnncore as rc

nn = rc.nn


def _ids(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int32)


def test_torch_embedding_linear_relu_gru_via_from_torch():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(30, 6)
            self.proj = torch.nn.Linear(6, 10)
            self.gru = torch.nn.GRU(10, 8, batch_first=True)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, ids):
            return self.fc(self.gru(torch.relu(self.proj(self.emb(ids))))[0])

    torch.manual_seed(0)
    net = Net().eval()
    model = rc.io.from_torch(net)
    eng = rc.compile(model)
    # the Linear and the ReLU live in the table: 30 rows of 10
    assert eng.describe() == "embedding(30x10) > gru(8) > linear(8->3)"
    ids = _ids((4, 9), 30, seed=1)
    with torch.no_grad():
        want = net(torch.as_tensor(ids, dtype=torch.long)).numpy()
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(ids), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(eng.run(ids), model.forward(ids), rtol=0, atol=1e-6)


def test_keras_embedding_dense_tanh_lstm_via_from_keras(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    km = keras.Sequential([keras.Input((7,), dtype="int32"), keras.layers.Embedding(25, 5),
                           keras.layers.Dense(9, activation="tanh"), keras.layers.LSTM(6),
                           keras.layers.Dense(2)])
    ids = _ids((5, 7), 25, seed=2)
    want = np.asarray(km.predict(ids, verbose=0))
    model = rc.io.from_keras(km)
    eng = rc.compile(model)
    assert eng.describe().startswith("embedding(25x9) > lstm(6) > last_step")
    np.testing.assert_allclose(eng.run(ids), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("after", [
    lambda: [nn.Linear(6, 10, seed=2)],
    lambda: [nn.ReLU(), nn.LayerNorm(6)],
    lambda: [nn.Linear(6, 10, seed=2), nn.Tanh(), nn.Dropout(0.3), nn.Linear(10, 7, seed=4), nn.GELU()],
    lambda: [nn.BatchNorm1d(6)],
])
def test_rc_nn_layers_after_an_embedding_f32_and_q8(after):
    mods = after()
    width = next((m.out_features for m in reversed(mods) if type(m).__name__ == "Linear"), 6)
    if type(mods[0]).__name__ == "BatchNorm1d":   # statistics other than the initial ones
        g = np.random.default_rng(5)
        mods[0].buffers["running_mean"][...] = g.standard_normal(6)
        mods[0].buffers["running_var"][...] = g.uniform(0.5, 2.0, 6)
    model = nn.Sequential(nn.Embedding(20, 6, seed=1), *mods, nn.GRU(width, 8, seed=3), nn.LastStep(),
                          nn.Linear(8, 3, seed=5))
    ids = _ids((3, 11), 20, seed=6)
    lengths = np.array([11, 4, 1])
    eng = rc.compile(model)
    assert eng.describe() == f"embedding(20x{width}) > gru(8) > last_step > linear(8->3)"
    np.testing.assert_allclose(eng.run(ids, lengths), model.forward(ids, lengths=lengths), rtol=0, atol=1e-6)
    q = rc.compile(model, "q8")
    c_equals_q8_reference(q, ids, lengths)


def test_a_layer_after_an_embedding_that_mixes_steps_runs_in_the_front_end_not_in_the_table():
    """A Conv1d mixes steps: it is no fold of the table but a front-end on the looked-up rows
    (tests/test_engine_emb_front.py); an InstanceNorm1d (whole sequences) stays refused."""
    model = nn.Sequential(nn.Embedding(20, 6, seed=1), nn.Conv1d(6, 6, 3, seed=2), nn.GRU(6, 4, seed=3))
    eng = rc.compile(model)
    assert eng.describe() == "embedding(20x6) > conv_time > gru(4)"
    ids = _ids((2, 9), 20, seed=3)
    np.testing.assert_allclose(eng.run(ids), model.forward(ids), rtol=0, atol=1e-5)
    norm = nn.Sequential(nn.Embedding(20, 6, seed=1), nn.InstanceNorm1d(6), nn.GRU(6, 4, seed=3))
    with pytest.raises(ValueError, match=r"module '1' \(InstanceNorm1d\) is not supported at this position"):
        rc.compile(norm)
