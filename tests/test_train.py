"""Training loop and truncated BPTT: determinism, learning on real data, torch equivalence."""

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.datasets import japanese_vowels
from rnncore.demo import single_thread_blas
from rnncore.nn.train import accuracy, evaluate, fit, predict, truncated_bptt


@pytest.fixture(scope="module")
def jv():
    return japanese_vowels()


def gru_classifier(hidden=64, seed=0, dtype="float64"):
    return rc.nn.Sequential(rc.nn.GRU(12, hidden, seed=seed, dtype=dtype), rc.nn.LastStep(),
                            rc.nn.Linear(hidden, 9, seed=seed + 1, dtype=dtype))


def test_dataset_shapes_and_normalisation(jv):
    assert jv.X_train.shape == (270, 29, 12) and jv.X_test.shape == (370, 29, 12)
    assert jv.len_train.min() >= 7 and max(jv.len_train.max(), jv.len_test.max()) == 29
    assert sorted(set(jv.y_train)) == list(range(9)) and jv.classes == [str(i) for i in range(1, 10)]
    valid = np.arange(29)[None, :] < jv.len_train[:, None]
    np.testing.assert_allclose(jv.X_train[valid].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(jv.X_train[valid].std(0), 1, atol=1e-12)
    assert np.all(jv.X_train[~valid] == 0)
    assert np.all(jv.X_test[np.arange(29)[None] >= jv.len_test[:, None]] == 0)


def run_fit(jv, epochs=3, **kw):
    model = gru_classifier(hidden=16, seed=3)
    lines = []
    hist = fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), jv.X_train, jv.y_train, jv.len_train,
               epochs=epochs, batch_size=32, clip=1.0, seed=7, validation=(jv.X_test, jv.y_test, jv.len_test),
               print_fn=lines.append, **kw)
    return model, hist, lines


def test_fit_is_deterministic_and_reports_progress(jv):
    m1, h1, lines = run_fit(jv)
    m2, h2, _ = run_fit(jv)
    for k in h1:
        if k != "time":
            assert h1[k] == h2[k], k
    for k, v in m1.state_dict().items():
        np.testing.assert_array_equal(v, m2.state_dict()[k])
    assert len(lines) == 3
    assert all(s.startswith(f"epoch   {i + 1}/3  loss ") and "accuracy" in s and "val_loss" in s
               and "val_accuracy" in s and s.endswith("s") for i, s in enumerate(lines))
    keys = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "grad_norm", "best_epoch"}
    assert set(h1) >= keys
    # a different seed shuffles differently
    model = gru_classifier(hidden=16, seed=3)
    h3 = fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), jv.X_train, jv.y_train, jv.len_train,
             epochs=1, batch_size=32, clip=1.0, seed=8, verbose=False)
    assert h3["loss"][0] != h1["loss"][0]


def test_short_training_decreases_the_loss(jv):
    _, h, _ = run_fit(jv, epochs=4)
    assert all(b < a for a, b in zip(h["loss"], h["loss"][1:], strict=False))
    assert h["loss"][-1] < 0.8 * h["loss"][0]
    assert h["val_loss"][-1] < h["val_loss"][0]
    assert h["accuracy"][-1] > h["accuracy"][0]


def test_trimming_batches_changes_nothing(jv):
    _, a, _ = run_fit(jv, epochs=1, trim=True)
    _, b, _ = run_fit(jv, epochs=1, trim=False)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-10)
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_configuration_reaches_94_percent(jv, seed):
    """The demo's configuration: GRU(12->64), Adam 5e-3, clip 1.0, batch 16, 12 epochs."""
    model = gru_classifier(64, seed=seed)
    with single_thread_blas():
        fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), jv.X_train, jv.y_train, jv.len_train,
            epochs=12, batch_size=16, clip=1.0, seed=seed, verbose=False)
    _, acc = evaluate(model, rc.nn.CrossEntropy(), jv.X_test, jv.y_test, jv.len_test)
    assert acc >= 0.94
    np.testing.assert_allclose(accuracy(predict(model, jv.X_test, jv.len_test), jv.y_test), acc)


def test_early_stopping_restores_best_weights():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3, 2)), rng.standard_normal((64, 1))

    def model_and_opt():
        m = rc.nn.Sequential(rc.nn.MaskedMean(), rc.nn.Linear(2, 1, seed=1))
        return m, rc.nn.SGD(m, lr=3.0)                       # far too large: the loss grows

    m, opt = model_and_opt()
    lines = []
    h = fit(m, rc.nn.MSE(), opt, X, y, epochs=20, batch_size=64, metric=None, early_stopping=2,
            validation=(X, y), print_fn=lines.append, shuffle=False)
    assert h["epoch"] == [1, 2, 3] and h["best_epoch"] == 1 and "early stopping" in lines[-1]
    ref, ref_opt = model_and_opt()
    fit(ref, rc.nn.MSE(), ref_opt, X, y, epochs=1, batch_size=64, metric=None, verbose=False, shuffle=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)


def test_fit_per_step_targets_with_lengths_and_custom_metric():
    rng = np.random.default_rng(1)
    N, T = 48, 9
    X = rng.standard_normal((N, T, 3))
    lengths = rng.integers(2, T + 1, N)
    y = (np.cumsum(X[..., 0], axis=1) > 0).astype(np.int64)   # needs memory: sign of a running sum
    model = rc.nn.Sequential(rc.nn.GRU(3, 12, seed=0), rc.nn.Linear(12, 2, seed=1))
    seen = []

    def valid_fraction(out, yb, lb):
        seen.append(out.shape)
        return float(np.mean(lb)) / out.shape[1]

    h = fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=0.02), X, y, lengths, epochs=15, batch_size=16,
            metric=valid_fraction, verbose=False)
    assert h["loss"][-1] < 0.5 * h["loss"][0] and "valid_fraction" in h
    assert all(len(s) == 3 for s in seen)
    h2 = fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=1e-9), X, y, lengths, epochs=1, verbose=False)
    assert h2["accuracy"][0] > 0.8                               # per valid step


def test_fit_bad_arguments(jv):
    m = gru_classifier(8)
    opt = rc.nn.Adam(m)
    args = (m, rc.nn.CrossEntropy(), opt)
    with pytest.raises(ValueError, match="epochs: expected a positive int, got 0"):
        fit(*args, jv.X_train, jv.y_train, jv.len_train, epochs=0)
    with pytest.raises(ValueError, match=r"y: expected 270 targets"):
        fit(*args, jv.X_train, jv.y_train[:5], jv.len_train)
    with pytest.raises(ValueError, match=r"lengths: expected every length in 1..29"):
        fit(*args, jv.X_train, jv.y_train, jv.len_train + 5)
    with pytest.raises(ValueError, match="validation: expected"):
        fit(*args, jv.X_train, jv.y_train, jv.len_train, validation=jv.X_test)
    with pytest.raises(ValueError, match="metric"):
        fit(*args, jv.X_train, jv.y_train, jv.len_train, metric="f1")


# -- truncated BPTT ----------------------------------------------------------------------------
def seq_model(seed=0):
    return rc.nn.Sequential(rc.nn.GRU(3, 5, seed=seed), rc.nn.Linear(5, 2, seed=seed + 1))


def test_tbptt_with_window_at_least_T_equals_full_bptt():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((4, 10, 3)), rng.standard_normal((4, 10, 2))
    lengths = np.array([10, 3, 7, 1])
    for window in (10, 25):
        m = seq_model()
        m.zero_grad()
        v, states = truncated_bptt(m, rc.nn.MSE(), X, y, window, lengths=lengths)
        full = seq_model()
        full.zero_grad()
        loss = rc.nn.MSE()
        fv = loss.forward(full.forward(X, lengths=lengths, train=True), y, lengths=lengths)
        full.backward(loss.backward())
        assert v == pytest.approx(fv, rel=1e-13)
        for k, g in full.all_grads().items():
            np.testing.assert_allclose(m.all_grads()[k], g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(states[0], full.final_states[0], atol=1e-14)


def test_tbptt_carries_state_exactly_and_cuts_gradients_like_torch_detach():
    rng = np.random.default_rng(3)
    B, T, k = 3, 11, 4
    X, y = rng.standard_normal((B, T, 3)), rng.standard_normal((B, T, 2))
    m = seq_model(5)
    m.zero_grad()
    loss = rc.nn.MSE(reduction="sum")
    total, states = truncated_bptt(m, loss, X, y, k)
    # torch: the same windows, the hidden state detached between them
    gru = torch.nn.GRU(3, 5, batch_first=True).double()
    head = torch.nn.Linear(5, 2).double()
    sd = m.state_dict()
    gru.load_state_dict({n[2:]: torch.tensor(v) for n, v in sd.items() if n.startswith("0.")})
    head.load_state_dict({n[2:]: torch.tensor(v) for n, v in sd.items() if n.startswith("1.")})
    h, ttotal = None, 0.0
    for s in range(0, T, k):
        out, h = gru(torch.tensor(X[:, s: s + k]), h)
        lv = ((head(out) - torch.tensor(y[:, s: s + k])) ** 2).sum()
        lv.backward()
        ttotal += lv.item() * B * min(k, T - s)
        h = h.detach()
    assert total * B * T == pytest.approx(ttotal, rel=1e-12)
    np.testing.assert_allclose(states[0], h.numpy(), atol=1e-13)
    for n, p in list(gru.named_parameters()):
        np.testing.assert_allclose(m.all_grads()["0." + n], p.grad.numpy(), rtol=1e-9, atol=1e-12)
    for n, p in list(head.named_parameters()):
        np.testing.assert_allclose(m.all_grads()["1." + n], p.grad.numpy(), rtol=1e-9, atol=1e-12)
    # and the truncation is real: the full-BPTT gradient differs
    full = seq_model(5)
    full.zero_grad()
    full.forward(X, train=True)
    full.backward(2 * (full.forward(X, train=True) - y))
    assert not np.allclose(full.all_grads()["0.weight_hh_l0"], m.all_grads()["0.weight_hh_l0"], rtol=1e-3)


def test_tbptt_with_lengths_keeps_ended_sequences_state_and_trains():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((3, 12, 3)), rng.standard_normal((3, 12, 2))
    lengths = np.array([12, 3, 6])
    m = seq_model(1)
    _, states = truncated_bptt(m, rc.nn.MSE(), X, y, 4, lengths=lengths)      # no optimizer: no change
    m.forward(X, lengths=lengths)
    np.testing.assert_allclose(states[0], m.final_states[0], atol=1e-14)
    # an LSTM state pair is carried too
    lstm = rc.nn.Sequential(rc.nn.LSTM(3, 4, seed=0), rc.nn.Linear(4, 2, seed=1))
    _, (hc,) = truncated_bptt(lstm, rc.nn.MSE(), X, y, 5, lengths=lengths)
    lstm.forward(X, lengths=lengths)
    for a, b in zip(hc, lstm.final_states[0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)
    opt = rc.nn.Adam(m, lr=0.01)
    first = truncated_bptt(m, rc.nn.MSE(), X, y, 4, lengths=lengths, optimizer=opt, clip=1.0)[0]
    for _ in range(30):
        last = truncated_bptt(m, rc.nn.MSE(), X, y, 4, lengths=lengths, optimizer=opt, clip=1.0)[0]
    assert last < first
    with pytest.raises(ValueError, match="window: expected a positive int"):
        truncated_bptt(m, rc.nn.MSE(), X, y, 0)


def test_fit_token_ids_through_embedding_attention_and_dropout_learns_and_is_deterministic():
    rng = np.random.default_rng(5)
    N, T, V = 160, 10, 8
    X = rng.integers(1, V, (N, T))
    lengths = rng.integers(3, T + 1, N)
    X[np.arange(T)[None, :] >= lengths[:, None]] = 0              # padding id
    y = np.any((X == 3) & (np.arange(T)[None, :] < lengths[:, None]), axis=1).astype(np.int64)

    def train():
        m = rc.nn.Sequential(rc.nn.Embedding(V, 6, padding_idx=0, seed=0), rc.nn.GRU(6, 12, seed=1),
                             rc.nn.Dropout(0.2, seed=2), rc.nn.AttentionPool(12, 8, seed=3),
                             rc.nn.Linear(12, 2, seed=4))
        h = fit(m, rc.nn.CrossEntropy(), rc.nn.AdamW(m, lr=0.02), X, y, lengths, epochs=12, batch_size=32,
                seed=1, verbose=False)
        return m, h

    m, h = train()
    _, h2 = train()
    assert h["loss"] == h2["loss"]
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    _, acc = evaluate(m, rc.nn.CrossEntropy(), X, y, lengths)
    assert acc > 0.9


def test_fit_takes_a_bare_recurrent_layer_and_matches_a_torch_sgd_step():
    """fit(GRU) trains on the layer's output y: one full-batch SGD step equals torch's."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 4))
    tm = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
    gru = rc.nn.GRU(3, 4)
    gru.load_state_dict(tm.state_dict())
    fit(gru, rc.nn.MSE(), rc.nn.SGD(gru, lr=0.1), X, Y, epochs=1, batch_size=4, shuffle=False,
        metric=None, verbose=False)
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(tm(torch.tensor(X))[0], torch.tensor(Y)).backward()
    opt.step()
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(gru.params[k], v.numpy(), rtol=0, atol=1e-12, err_msg=k)


def test_optimizer_of_another_model_is_refused():
    m, other = seq_model(0), seq_model(1)
    X, Y = np.zeros((2, 3, 3)), np.zeros((2, 3), int)
    with pytest.raises(ValueError, match="optimizer: built on a different model"):
        fit(m, rc.nn.CrossEntropy(), rc.nn.Adam(other), X, Y[:, 0], verbose=False)
    with pytest.raises(ValueError, match="optimizer: built on a different model"):
        truncated_bptt(m, rc.nn.CrossEntropy(), X, Y, 2, optimizer=rc.nn.SGD(other, lr=0.1))


# -- non-finite losses and gradients (issue 14: fit with one Inf in the data) ---------------------
def _toy(n=48, T=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 3))
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)
    return X, y


def _toy_model(seed=0):
    return rc.nn.Sequential(rc.nn.GRU(3, 8, seed=seed), rc.nn.LastStep(), rc.nn.Linear(8, 2, seed=seed + 1))


def test_fit_raises_on_one_inf_in_the_data_before_any_weight_turns_nan():
    from rnncore.nn.train import NonFiniteError

    X, y = _toy()
    X[20, 3, 1] = np.inf                           # batch 3 of 6 (batch_size 8, no shuffle)
    model = _toy_model()
    with pytest.raises(NonFiniteError, match=r"epoch 1, batch 3 of 6") as e:
        fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=1e-2), X, y, epochs=2, batch_size=8,
            shuffle=False, verbose=False)
    assert isinstance(e.value, FloatingPointError)
    assert (e.value.epoch, e.value.batch) == (1, 3)
    # the GRU saturates on the Inf (finite loss); its gradient is NaN
    assert not (np.isfinite(e.value.loss) and np.isfinite(e.value.grad_norm))
    assert "20" in str(e.value) and "on_nonfinite='skip'" in str(e.value)
    # the weights are exactly those after batches 1-2 (trained without the bad one)
    ref = _toy_model()
    fit(ref, rc.nn.CrossEntropy(), rc.nn.Adam(ref, lr=1e-2), X[:16], y[:16], epochs=1, batch_size=8,
        shuffle=False, verbose=False)
    for k, v in model.state_dict().items():
        assert np.all(np.isfinite(v)), k
        np.testing.assert_array_equal(v, ref.state_dict()[k], err_msg=k)


def test_fit_skip_leaves_the_bad_batch_out_with_a_warning():
    X, y = _toy()
    X[20, 3, 1] = np.inf
    model = _toy_model()
    with pytest.warns(RuntimeWarning, match=r"skipped the batch with non-finite .* epoch 1, batch 3"):
        hist = fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=1e-2), X, y, epochs=2, batch_size=8,
                   shuffle=False, verbose=False, on_nonfinite="skip")
    assert hist["skipped"] == [1, 1]
    assert all(np.isfinite(hist["loss"])) and all(np.isfinite(hist["accuracy"]))
    # exactly training without sequences 16..23 (the skipped batch): same updates in the same order
    keep = np.r_[0:16, 24:48]
    ref = _toy_model()
    href = fit(ref, rc.nn.CrossEntropy(), rc.nn.Adam(ref, lr=1e-2), X[keep], y[keep], epochs=2, batch_size=8,
               shuffle=False, verbose=False)
    for k, v in model.state_dict().items():
        assert np.all(np.isfinite(v)), k
        np.testing.assert_array_equal(v, ref.state_dict()[k], err_msg=k)
    np.testing.assert_allclose(hist["loss"], href["loss"], rtol=1e-12)


def test_fit_raises_when_the_logits_overflow():
    from rnncore.nn.train import NonFiniteError

    X, y = _toy(n=16)
    model = _toy_model()
    w = model[-1].params["weight"]
    w[0], w[1] = 1e308, -1e308                     # logits overflow to +-inf: loss inf or nan
    with pytest.raises(NonFiniteError, match=r"epoch 1, batch 1 of 2"):
        fit(model, rc.nn.CrossEntropy(), rc.nn.SGD(model, lr=1e-3), X, y, epochs=1, batch_size=8,
            shuffle=False, verbose=False)
    assert np.all(w[0] == 1e308) and np.all(w[1] == -1e308)   # not updated


def test_fit_on_nonfinite_is_checked():
    X, y = _toy(n=8)
    model = _toy_model()
    with pytest.raises(ValueError, match=r"on_nonfinite: expected 'raise' or 'skip', got 'ignore'"):
        fit(model, rc.nn.CrossEntropy(), rc.nn.SGD(model, lr=1e-3), X, y, on_nonfinite="ignore")


def test_evaluate_and_accuracy_report_nan_not_an_accuracy_on_nan_outputs():
    X, y = _toy(n=16)
    model = _toy_model()
    for _, p in model.named_parameters():          # weights NaN, as fit on one Inf used to leave them
        p[...] = np.nan
    loss, acc = evaluate(model, rc.nn.CrossEntropy(), X, y)
    assert np.isnan(loss) and np.isnan(acc)        # was (nan, accuracy of argmax(NaN) = class 0)
    out = np.array([[0.0, 1.0], [np.nan, 0.0]])
    assert np.isnan(accuracy(out, np.array([1, 0])))
    assert accuracy(out[:1], np.array([1])) == 1.0
    # per-step: a NaN past a length is not counted
    outs = np.zeros((1, 3, 2))
    outs[0, :, 1] = 1.0
    outs[0, 2] = np.nan
    assert accuracy(outs, np.array([[1, 1, 0]]), lengths=np.array([2])) == 1.0
    assert np.isnan(accuracy(outs, np.array([[1, 1, 0]]), lengths=np.array([3])))
    # binary logits
    assert np.isnan(accuracy(np.array([0.5, np.inf]), np.array([1.0, 1.0])))


def test_truncated_bptt_with_an_optimizer_stops_before_a_non_finite_update():
    from rnncore.nn.train import NonFiniteError

    rng = np.random.default_rng(0)
    model = rc.nn.Sequential(rc.nn.GRU(3, 4, seed=0), rc.nn.Linear(4, 2, seed=1))
    X = rng.standard_normal((2, 12, 3))
    y = rng.integers(0, 2, (2, 12))
    X[1, 7, 0] = np.inf                            # window 2 (steps 4..7)
    opt = rc.nn.SGD(model, lr=0.1)
    truncated_bptt(model, rc.nn.CrossEntropy(), X[:, :4], y[:, :4], window=4, optimizer=opt)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model2 = rc.nn.Sequential(rc.nn.GRU(3, 4, seed=0), rc.nn.Linear(4, 2, seed=1))
    with pytest.raises(NonFiniteError, match=r"window of steps 4\.\.7"):
        truncated_bptt(model2, rc.nn.CrossEntropy(), X, y, window=4, optimizer=rc.nn.SGD(model2, lr=0.1))
    for k, v in model2.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
