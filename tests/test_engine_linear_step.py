"""A per-step ``Linear`` in the C engine's front-end (before the recurrent layers): compiled as a
frame_conv record of frame_length = kernel_size = 1 (rnncore.spec.linear_step_record). f32 against
PyTorch (an independent reference) and the NumPy model; q8 against the NumPy q8 reference
(rnncore.quant.reference) bit for bit on every ISA path of this CPU; the stream step by step equals
the run, its state saves and restores; what stays unsupported is refused naming the module."""

import numpy as np
import pytest
from _helpers import c_equals_q8_reference, randn32, stream_steps

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc

nn = rc.nn
ISAS = rc.isa()["available"]


def projection_model(bias=True, cell=nn.GRU, seed=0):
    return nn.Sequential(nn.Linear(6, 12, bias=bias, seed=seed), nn.Tanh(), cell(12, 8, seed=seed + 1),
                         nn.LastStep(), nn.Linear(8, 2, seed=seed + 2))


@pytest.mark.parametrize("bias", [True, False])
def test_projection_before_the_gru_matches_torch(bias):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    lin, gru = torch.nn.Linear(6, 12, bias=bias), torch.nn.GRU(12, 8, batch_first=True)
    head = torch.nn.Linear(8, 2)
    X = randn32((3, 11, 6), seed=1)
    with torch.no_grad():
        want = head(gru(torch.tanh(lin(torch.as_tensor(X))))[0][:, -1]).numpy()
    m = projection_model(bias)
    m[0].load_state_dict(lin.state_dict())
    m[2].load_state_dict(gru.state_dict())
    m[4].load_state_dict(head.state_dict())
    eng = rc.compile(m)
    assert eng.describe().startswith("frame_conv > pointwise > gru(8)")
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)


def test_per_step_output_lengths_and_the_stream_equal_the_run():
    m = nn.Sequential(nn.Linear(5, 7, seed=0), nn.ReLU(), nn.Linear(7, 7, bias=False, seed=1),
                      nn.LSTM(7, 6, seed=2), nn.Linear(6, 3, seed=3))
    eng = rc.compile(m)
    X = randn32((2, 9, 5), seed=2)
    L = np.array([9, 4])
    Y = eng.run(X, lengths=L)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64), lengths=L), rtol=0, atol=1e-5)
    assert not Y[1, 4:].any()
    Y = eng.run(X)
    st = eng.stream(batch=2)
    got = [st.step(X[:, t]) for t in range(4)]
    saved = st.state
    got += [st.step(X[:, t]) for t in range(4, 9)]
    np.testing.assert_array_equal(np.stack(got, 1), Y)
    st.state = saved
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(4, 9)], 1), Y[:, 4:])


def test_residual_linear_in_the_front_end():
    m = nn.Sequential(nn.Linear(4, 6, seed=0), nn.Residual(nn.Sequential(nn.Linear(6, 6, seed=1), nn.Tanh())),
                      nn.GRU(6, 5, seed=2))
    eng = rc.compile(m)
    assert eng.describe().startswith("frame_conv > frame_conv > pointwise > residual > gru(5)")
    X = randn32((2, 8, 4), seed=3)
    np.testing.assert_allclose(eng.run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_q8_front_linear_equals_the_numpy_q8_reference_on_every_isa_and_streams(cell):
    m = nn.Sequential(nn.Linear(6, 12, seed=4), nn.Tanh(), nn.Linear(12, 12, bias=False, seed=5),
                      cell(12, 8, seed=6), nn.Linear(8, 2, seed=7))
    e = rc.compile(m, precision="q8")
    X = randn32((3, 7, 6), seed=4) * 2
    lengths = np.array([7, 3, 1])
    ref = c_equals_q8_reference(e, X, lengths)
    assert np.all(ref[1, 3:] == 0) and np.abs(ref[0]).max() > 0
    y32 = rc.compile(m).run(X, lengths)
    assert 0 < np.abs(ref - y32).max() < 0.1 * np.abs(y32).max()   # quantised: close, not equal
    # the int8 weights are the per-row rule of the recurrent layers
    from rnncore.quant.scheme import quantize_weights

    d = read_rnc(e.data)
    wq, s = quantize_weights(np.asarray(m[0].params["weight"], np.float32))
    np.testing.assert_array_equal(d["front"][0]["tensors"]["qweight"].reshape(12, 6), wq)
    np.testing.assert_array_equal(d["front"][0]["tensors"]["scale"], s)
    np.testing.assert_array_equal(write_rnc(d), e.data)
    whole = e.run(X)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(stream_steps(e.stream(3), X), whole, err_msg=isa)


def _torch_weights(m, mods):
    for k, tm in mods.items():
        m[k].load_state_dict(tm.state_dict())


def test_mlp_head_per_step_matches_torch_and_streams():
    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    gru, l1, l2 = torch.nn.GRU(6, 8, batch_first=True), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)
    X = randn32((3, 10, 6), seed=6)
    with torch.no_grad():
        want = l2(torch.relu(l1(gru(torch.as_tensor(X))[0]))).numpy()
    m = nn.Sequential(nn.GRU(6, 8), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    _torch_weights(m, {0: gru, 1: l1, 3: l2})
    eng = rc.compile(m)
    assert "gru(8) > frame_conv > pointwise > linear" in eng.describe()
    Y = eng.run(X)
    assert Y.shape == (3, 10, 2) and np.abs(want).max() > 0.05
    np.testing.assert_allclose(Y, want, rtol=0, atol=1e-5)
    st = eng.stream(3)
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(10)], 1), Y)
    L = np.array([10, 5, 1])
    YL = eng.run(X, lengths=L)
    np.testing.assert_allclose(YL, m.forward(X.astype(np.float64), lengths=L), rtol=0, atol=1e-5)
    assert not YL[1, 5:].any() and not YL[2, 1:].any()
    assert not eng.run(X, lengths=np.array([10, 0, 3]))[1].any()   # an empty sequence: zero rows


@pytest.mark.parametrize("batch", [1, 5])   # 5: the per-step projection of rnc_run (>= 4 rows)
def test_widening_post_linear_without_a_head_and_residual_linear(batch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    lstm, wide, res, l2 = (torch.nn.LSTM(6, 8, batch_first=True), torch.nn.Linear(8, 24),
                           torch.nn.Linear(24, 24), torch.nn.Linear(24, 2))
    X = randn32((batch, 9, 6), seed=7)
    with torch.no_grad():
        u = torch.tanh(wide(lstm(torch.as_tensor(X))[0]))
        want_wide = u.numpy()
        want = l2(u + res(u)).numpy()
    m = nn.Sequential(nn.LSTM(6, 8), nn.Linear(8, 24), nn.Tanh())
    _torch_weights(m, {0: lstm, 1: wide})
    eng = rc.compile(m)   # the last record a Linear's per-step record: the output is 24 wide
    np.testing.assert_allclose(eng.run(X), want_wide, rtol=0, atol=1e-5)
    m = nn.Sequential(nn.LSTM(6, 8), nn.Linear(8, 24), nn.Tanh(), nn.Residual(nn.Linear(24, 24)),
                      nn.Linear(24, 2))
    _torch_weights(m, {0: lstm, 1: wide, 4: l2})
    m[3].fn.load_state_dict(res.state_dict())
    eng = rc.compile(m)
    assert "lstm(8) > frame_conv > pointwise > frame_conv > residual > linear" in eng.describe()
    Y = eng.run(X)
    np.testing.assert_allclose(Y, want, rtol=0, atol=1e-5)
    st = eng.stream(batch)
    np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(9)], 1), Y)


def test_mlp_head_after_last_step_matches_torch_and_keeps_softmax():
    torch = pytest.importorskip("torch")
    torch.manual_seed(9)
    gru, l1, l2 = torch.nn.GRU(6, 8, batch_first=True), torch.nn.Linear(8, 16), torch.nn.Linear(16, 2)
    X = randn32((4, 7, 6), seed=8)
    with torch.no_grad():
        logits = l2(torch.relu(l1(gru(torch.as_tensor(X))[0][:, -1])))
        want, want_sm = logits.numpy(), torch.softmax(logits, -1).numpy()
    m = nn.Sequential(nn.GRU(6, 8), nn.LastStep(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    _torch_weights(m, {0: gru, 2: l1, 4: l2})
    eng = rc.compile(m)
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    spec = rc.spec.spec_from_model(m)
    assert [r["kind"] for r in spec.post_pooled] == ["frame_conv1d", "relu"] and spec.head is not None
    spec.head.activation = "softmax"
    e2 = rc.compile(spec)
    np.testing.assert_allclose(e2.run(X), want_sm, rtol=0, atol=1e-6)
    # a Linear per step, LastStep, a Linear: the first is a per-step record before the pooling
    m3 = nn.Sequential(nn.GRU(6, 8), nn.Linear(8, 16), nn.LastStep(), nn.Linear(16, 2))
    _torch_weights(m3, {0: gru, 1: l1, 3: l2})
    with torch.no_grad():
        want3 = l2(l1(gru(torch.as_tensor(X))[0])[:, -1]).numpy()
    np.testing.assert_allclose(rc.compile(m3).run(X), want3, rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_an_empty_sequence_pools_a_zero_vector_through_the_mlp_head(precision):
    # T = 0 (and length 0): the MLP sees the zero vector, relu(b1) W2^T + b2, in every row
    m = nn.Sequential(nn.GRU(6, 8, seed=1), nn.LastStep(), nn.Linear(8, 16, seed=5), nn.ReLU(),
                      nn.Linear(16, 3, seed=6))
    want = np.maximum(m[2].params["bias"], 0) @ m[4].params["weight"].T + m[4].params["bias"]
    e = rc.compile(m, precision=precision)
    tol = 1e-6 if precision == "f32" else 0.05   # q8: relu(b1) quantised with its own scale
    for y in (e.run(np.zeros((3, 0, 6), np.float32)), e.run(randn32((3, 2, 6)), lengths=np.array([0, 0, 0]))):
        np.testing.assert_allclose(y, np.broadcast_to(want, (3, 3)), rtol=0, atol=tol)
        np.testing.assert_array_equal(y, y[[0, 0, 0]])


def test_rnc_round_trip_of_post_linears():
    m = nn.Sequential(nn.GRU(6, 8, seed=1), nn.Linear(8, 12, seed=2), nn.ReLU(), nn.LastStep(),
                      nn.Linear(12, 16, bias=False, seed=3), nn.Tanh(), nn.Linear(16, 3, seed=4))
    for precision in ("f32", "q8"):
        eng = rc.compile(m, precision=precision)
        d = read_rnc(eng.data)
        assert [r["kind"] for r in d["post"]] == ["frame_conv1d", "relu"]
        assert [r["kind"] for r in d["post_pooled"]] == ["frame_conv1d", "tanh"]
        np.testing.assert_array_equal(write_rnc(d), eng.data)
        X = randn32((2, 5, 6))
        np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_q8_post_linears_equal_the_numpy_q8_reference_on_every_isa_and_stream(cell):
    per_step = nn.Sequential(cell(6, 8, seed=1), nn.Linear(8, 12, seed=2), nn.ReLU(),
                             nn.Residual(nn.Linear(12, 12, seed=3)), nn.Linear(12, 3, seed=4))
    pooled = nn.Sequential(cell(6, 8, seed=1), nn.LastStep(), nn.Linear(8, 16, seed=5), nn.ReLU(),
                           nn.Linear(16, 3, seed=6))
    X = randn32((5, 8, 6), seed=9) * 2
    lengths = np.array([8, 3, 1, 0, 6])
    for m in (per_step, pooled):
        e = rc.compile(m, precision="q8")
        ref = c_equals_q8_reference(e, X, lengths)
        y32 = rc.compile(m).run(X, lengths)
        assert 0 < np.abs(ref - y32).max() < 0.1 * np.abs(y32).max()
    e = rc.compile(per_step, precision="q8")
    whole = e.run(X)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(stream_steps(e.stream(5), X), whole, err_msg=isa)


def test_what_does_not_compile_is_refused_naming_the_module():
    # (a Linear after an Embedding is folded into its table: tests/test_engine_embedding_fold.py; a
    # Conv1d after it runs in the front-end: tests/test_engine_emb_front.py)
    with pytest.raises(ValueError, match=r"module '2' \(GRU\) is not supported at this position; "
                                         r"expected \[Embedding \[Linear, activations, LayerNorm\] "):
        rc.compile(nn.Sequential(nn.GRU(6, 8), nn.LastStep(), nn.GRU(8, 4)))
    with pytest.raises(ValueError, match=r"module '1.fn' \(Conv1d\) inside a Residual is not a per-step "
                                         r"layer the C core runs after the recurrent layers \(Linear, relu"):
        rc.compile(nn.Sequential(nn.GRU(6, 8), nn.Residual(nn.Conv1d(8, 8, 1, padding="causal"))))


def _torch_modules():
    torch = pytest.importorskip("torch")

    class ResidualHead(torch.nn.Module):   # y = gru(x)[0]; y + lin(y); a head per step
        def __init__(self):
            super().__init__()
            self.gru, self.lin, self.head = torch.nn.GRU(6, 8, batch_first=True), torch.nn.Linear(8, 8), \
                torch.nn.Linear(8, 2)

        def forward(self, x):
            y = self.gru(x)[0]
            return self.head(y + self.lin(y))

    class Projection(torch.nn.Module):   # lin -> tanh -> GRU(bidirectional) -> last step -> Linear
        def __init__(self, pool):
            super().__init__()
            self.pool = pool
            self.lin, self.gru, self.head = torch.nn.Linear(6, 12), torch.nn.GRU(12, 8, batch_first=True), \
                torch.nn.Linear(8, 2)

        def forward(self, x):
            y = self.gru(torch.tanh(self.lin(x)))[0]
            return self.head(y.mean(1) if self.pool == "mean" else y[:, -1])

    return torch, ResidualHead, Projection


def test_from_torch_reads_a_residual_linear_and_a_projection_and_compiles():
    torch, ResidualHead, Projection = _torch_modules()
    torch.manual_seed(11)
    X = randn32((3, 9, 6), seed=11)
    for mod in (ResidualHead(), Projection("last")):
        with torch.no_grad():
            want = mod(torch.as_tensor(X)).numpy()
        eng = rc.compile(rc.io.from_torch(mod))
        assert np.abs(want).max() > 0.05
        np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    # the mean over time (rc.nn.MaskedMean) compiles too (tests/test_engine_mean.py)
    mod = Projection("mean")
    with torch.no_grad():
        want = mod(torch.as_tensor(X)).numpy()
    eng = rc.compile(rc.io.from_torch(mod))
    assert "masked_mean" in eng.describe() and np.abs(want).max() > 0.05
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)


def test_from_keras_dense_before_and_time_distributed_dense_after_an_lstm_compile(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)
    X = randn32((2, 7, 6), seed=12)
    for name, layers in (
            ("before", [keras.layers.Dense(12, activation="tanh"), keras.layers.LSTM(8),
                        keras.layers.Dense(2)]),
            ("after", [keras.layers.LSTM(8, return_sequences=True),
                       keras.layers.TimeDistributed(keras.layers.Dense(8, activation="relu")),
                       keras.layers.Dense(2)])):
        km = keras.Sequential([keras.Input((None, 6)), *layers])
        want = np.asarray(km.predict(X, verbose=0))
        path = tmp_path / f"{name}.keras"
        km.save(path)
        eng = rc.compile(rc.io.from_keras(str(path)))
        assert "frame_conv" in eng.describe() and np.abs(want).max() > 0.05
        np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5, err_msg=name)
    # GlobalAveragePooling1D imports (rc.nn.MaskedMean) and compiles (tests/test_engine_mean.py)
    km = keras.Sequential([keras.Input((None, 6)), keras.layers.GRU(8, return_sequences=True),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    km.save(tmp_path / "gap.keras")
    want = np.asarray(km.predict(X, verbose=0))
    np.testing.assert_allclose(rc.compile(rc.io.from_keras(str(tmp_path / "gap.keras"))).run(X), want,
                               rtol=0, atol=1e-5)
