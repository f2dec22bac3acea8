"""rnncore.quant: the exact q8 rules, the quantised reference, and its accuracy against float.

Independent references: hand-computed quantisation cases, Python integer arithmetic for the
accumulators, PyTorch (float64) for RNN/GRU/LSTM, and a float64 formula written out here for
GRU(reset_after=False), which PyTorch lacks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore import quant as Q
from rnncore.spec import layers_from_state_dict

F32 = np.float32


# ------------------------------------------------------------------------------------------
# the quantisation rules, hand-constructed


def test_weight_quantisation_ties_round_half_to_even_and_scale_is_max_over_127():
    w = np.array([[127.0, 0.5, 1.5, 2.5, -2.5, -0.5, 126.5]], F32)  # max 127 -> scale exactly 1
    wq, s = Q.quantize_weights(w)
    assert s.dtype == np.float32 and s[0] == F32(1.0)
    assert wq.dtype == np.int8
    assert wq.tolist() == [[127, 0, 2, 2, -2, 0, 126]]


def test_weight_quantisation_never_gives_minus_128_and_zero_rows_have_zero_scale():
    w = np.array([[-1.0, 0.3, 1e-3], [0.0, 0.0, 0.0], [-2.0, 2.0, -2.0]], F32)
    wq, s = Q.quantize_weights(w)
    assert wq.min() >= -127
    assert wq[0, 0] == -127 and wq[2].tolist() == [-127, 127, -127]
    assert s[1] == 0 and wq[1].tolist() == [0, 0, 0]
    assert s[0] == F32(1.0) / F32(127.0)
    # 0.3 / (1/127) = 38.1 -> 38 ; 1e-3 * 127 = 0.127 -> 0
    assert wq[0, 1] == 38 and wq[0, 2] == 0


def test_weight_quantisation_matches_the_formula_on_random_rows():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((37, 53)).astype(F32)
    wq, s = Q.quantize_weights(w)
    for r in range(w.shape[0]):
        m = F32(np.max(np.abs(w[r])))
        assert s[r] == m / F32(127)
        expect = [int(np.clip(np.rint(F32(v) / s[r]), -127, 127)) for v in w[r]]
        assert wq[r].tolist() == expect
    err = np.abs(wq * s[:, None] - w)
    assert np.all(err <= s[:, None] / 2 * (1 + 1e-5))


def _contract_quantise(w):
    """docs/q8-contract.md's weight rule written out row by row in float32 scalars."""
    q = np.zeros(w.shape, np.int8)
    s = np.zeros(w.shape[0], F32)
    for r in range(w.shape[0]):
        m = F32(np.max(np.abs(w[r]))) if w.shape[1] else F32(0)
        s[r] = m / F32(127)
        if s[r] == 0:
            continue
        for k in range(w.shape[1]):
            q[r, k] = int(np.clip(np.rint(F32(w[r, k]) / s[r]), -127, 127))
    return q, s


@settings(max_examples=200, deadline=None)
@given(r=st.integers(1, 12), k=st.integers(0, 12), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([0.0, 1e-45, 1e-40, 1e-38, 1e-30, 1e-3, 1.0, 1e3, 1e30, 3e38]),
       e=st.integers(-140, 120))
def test_the_one_weight_quantiser_follows_the_contract_on_edge_cases(r, k, seed, scale, e):
    """``quantize_weights`` (which ``write_rnc`` uses too, as ``rnc.quantize_rows``) against the
    contract written out: zero rows, subnormal maxima (whose scale underflows to 0), huge values,
    exact ties, empty rows."""
    rng = np.random.default_rng(seed)
    w = (rng.uniform(-1.0, 1.0, (r, k)) * scale).astype(F32)
    if k:
        w[rng.random((r, k)) < 0.2] = 0
        w[0] = 0
    if r > 2 and k:  # exact ties w / s = n + 0.5 (power-of-two factors keep them exact)
        w[-1] = np.resize(np.array([127.0, 0.5, 2.5, -1.5, -126.5], F32), k) * F32(2.0 ** e)
    q1, s1 = Q.quantize_weights(w)
    q2, s2 = _contract_quantise(w)
    assert q1.dtype == np.int8 and s1.dtype == np.float32
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(s1.view(np.uint32), s2.view(np.uint32))


def test_the_rnc_writer_quantises_with_the_reference_quantiser():
    """One implementation: the writer's ``quantize_rows`` is ``quantize_weights`` (not a copy
    that could drift), and a non-finite weight is refused the same way."""
    from rnncore.io import rnc

    w = np.random.default_rng(3).standard_normal((5, 7)).astype(F32)
    for a, b in zip(rnc.quantize_rows(w), Q.quantize_weights(w), strict=True):
        np.testing.assert_array_equal(a, b)
    w[2, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        rnc.quantize_rows(w)


def test_dynamic_activation_quantisation_hand_cases():
    v = np.array([[127.0, 0.5, 1.5, -2.5, 2.5, -126.5], [0, 0, 0, 0, 0, 0]], F32)
    q, s = Q.quantize_activation(v)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert q[0].tolist() == [127, 0, 2, -2, 2, -126]
    assert s[0] == F32(1.0)
    assert q[1].tolist() == [0] * 6 and s[1] == 0  # zero vector: q = 0, s = 0


def test_dynamic_activation_uses_float32_product_with_inverse():
    # inv = 127/m is rounded to float32 and the product v*inv too, before rint.
    rng = np.random.default_rng(1)
    v = rng.standard_normal((5, 33)).astype(F32)
    q, s = Q.quantize_activation(v)
    for b in range(5):
        m = F32(np.max(np.abs(v[b])))
        inv = F32(127.0) / m
        expect = [int(np.clip(np.rint(F32(x * inv)), -127, 127)) for x in v[b]]
        assert q[b].tolist() == expect
        assert s[b] == m / F32(127.0)
        assert np.abs(q[b]).max() == 127


def test_static_activation_scale_clips_to_127():
    v = np.array([100.0, -100.0, 0.25, 0.75, 63.25, -0.0], F32)
    q, s = Q.quantize_activation(v, scale=0.5)  # inv = 2
    assert q.tolist() == [127, -127, 0, 2, 126, 0]
    assert s == F32(0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_are_an_error(bad):
    with pytest.raises(ValueError, match="NaN or Inf"):
        Q.quantize_activation(np.array([[1.0, bad]], F32))


def test_subnormal_max_quantises_without_nan():
    v = np.array([1e-45, 0.0, -1e-45], F32)  # 127/m overflows to inf in float32
    q, s = Q.quantize_activation(v)
    assert q.tolist() == [127, 0, -127]


# ------------------------------------------------------------------------------------------
# accumulators


def test_int_matmul_equals_python_integers_including_all_127_extremes():
    rng = np.random.default_rng(2)
    for k in (1, 3, 64, 1001):
        wq = rng.integers(-127, 128, (7, k)).astype(np.int8)
        q = rng.integers(-127, 128, (3, k)).astype(np.int8)
        wq[0] = 127
        wq[1] = -127
        q[0] = 127
        q[1] = -127
        acc = Q.int_matmul(q, wq)
        assert acc.dtype == np.int32
        for b in range(3):
            for r in range(7):
                assert acc[b, r] == sum(int(a) * int(c) for a, c in zip(q[b], wq[r], strict=True))
        assert acc[0, 0] == 127 * 127 * k and acc[1, 0] == -127 * 127 * k


def test_dequantised_accumulators_are_close_to_the_float_products():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((40, 70)).astype(F32)
    x = (rng.standard_normal((6, 70)) * 3).astype(F32)
    wq, sw = Q.quantize_weights(w)
    qx, sx = Q.quantize_activation(x)
    approx = Q.epilogue(Q.int_matmul(qx, wq), sx, sw, None).astype(np.float64)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    # |x.w - (qx sx).(wq sw)| <= sum_k |x_k| sw/2 + |w_k| sx/2 + sx sw/4 (rounding errors <= half a step)
    xsum = np.abs(x).astype(np.float64).sum(1)[:, None]
    wsum = np.abs(w).astype(np.float64).sum(1)[None, :]
    bound = xsum * sw[None, :] / 2 + sx[:, None] * wsum / 2 + 70 * sx[:, None] * sw[None, :] / 4
    assert np.all(np.abs(approx - exact) <= bound * 1.001 + 1e-5)


# ------------------------------------------------------------------------------------------
# the q8 reference vs float


def _torch_layers(kind: str, i: int, h: int, layers: int, bidir: bool, seed: int, **kw):
    torch.manual_seed(seed)
    cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}.get(kind, torch.nn.RNN)
    if kind.startswith("rnn"):
        kw["nonlinearity"] = kind[4:]
    m = cls(i, h, num_layers=layers, bidirectional=bidir, batch_first=True, **kw).double()
    spec = Q.ModelSpec(layers_from_state_dict(kind, m.state_dict(), layers, bidir))
    return m, spec


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("bidir", [False, True])
def test_float_reference_equals_torch(kind, bidir):
    m, spec = _torch_layers(kind, 5, 7, 2, bidir, seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 9, 5))
    lengths = np.array([9, 4, 1])
    y, st = Q.float_forward(spec, x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        yt, ht = m(packed)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=True, total_length=9)
    np.testing.assert_allclose(y, yt.numpy(), atol=1e-12)
    hn = np.stack([s[0] if isinstance(s, tuple) else s for s in st])
    np.testing.assert_allclose(hn, (ht[0] if kind == "lstm" else ht).numpy(), atol=1e-12)


# Stated bound: over 100 steps, |h_q8 - h_f64| <= 0.05 for these small-weight (PyTorch default
# init, |w| <= 1/sqrt(H)) models with unit-variance inputs. The per-step quantisation error of a
# gate pre-activation is about sqrt(K) * (s_x s_w / sqrt(12)) ~ 1e-3..1e-2; the recurrence of
# these contractive models does not amplify it.
Q8_BOUND_100 = 0.05


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_q8_stream_over_100_steps_stays_close_to_float64(kind):
    m, spec = _torch_layers(kind, 16, 32, 2, False, seed=6)
    qm = Q.quantize_model(spec)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 100, 16))
    with torch.no_grad():
        yt, _ = m(torch.from_numpy(x))
    state = None
    worst = 0.0
    for t in range(100):
        y, state = Q.model_step(qm, x[:, t].astype(F32), state)
        assert y.dtype == np.float32
        worst = max(worst, float(np.abs(y - yt[:, t].numpy()).max()))
    assert worst <= Q8_BOUND_100, worst
    # and the whole-sequence path gives the step path's result exactly
    yseq, _ = Q.q8_forward(qm, x.astype(F32))
    ystep = []
    state = None
    for t in range(100):
        y, state = Q.model_step(qm, x[:, t].astype(F32), state)
        ystep.append(y)
    np.testing.assert_array_equal(yseq, np.stack(ystep, axis=1))


def _gru_reset_before_f64(spec_layer, x, h):
    w = spec_layer.directions[0]
    hs = spec_layer.hidden_size

    def sig(a):
        return 1 / (1 + np.exp(-a))

    gi = x @ w.weight_ih.T + w.bias_ih
    gh = h @ w.weight_hh.T + w.bias_hh
    r = sig(gi[:, :hs] + gh[:, :hs])
    z = sig(gi[:, hs:2 * hs] + gh[:, hs:2 * hs])
    n = np.tanh(gi[:, 2 * hs:] + (r * h) @ w.weight_hh[2 * hs:].T + w.bias_hh[2 * hs:])
    return (1 - z) * n + z * h


def test_gru_reset_before_q8_and_float_against_the_written_out_formula():
    rng = np.random.default_rng(8)
    i, hs = 6, 24
    sd = {"weight_ih_l0": rng.uniform(-0.2, 0.2, (3 * hs, i)),
          "weight_hh_l0": rng.uniform(-0.2, 0.2, (3 * hs, hs)),
          "bias_ih_l0": rng.uniform(-0.2, 0.2, 3 * hs), "bias_hh_l0": rng.uniform(-0.2, 0.2, 3 * hs)}
    spec = Q.ModelSpec(layers_from_state_dict("gru", sd, 1, False, reset_after=False))
    qm = Q.quantize_model(spec)
    x = rng.standard_normal((3, 100, i))
    h = np.zeros((3, hs))
    sf = sq = None
    worst = 0.0
    for t in range(100):
        h = _gru_reset_before_f64(spec.layers[0], x[:, t], h)
        yf, sf = Q.model_step(spec, x[:, t], sf)
        yq, sq = Q.model_step(qm, x[:, t].astype(F32), sq)
        np.testing.assert_allclose(yf, h, atol=1e-12)
        worst = max(worst, float(np.abs(yq - h).max()))
    assert worst <= Q8_BOUND_100, worst


def test_q8_step_accumulators_are_exact_products_of_the_stored_ints():
    rng = np.random.default_rng(9)
    for kind, reset_after in (("gru", True), ("gru", False), ("lstm", True), ("rnn_tanh", True)):
        g = 5 * {"lstm": 4, "gru": 3}.get(kind, 1)
        sd = {"weight_ih_l0": rng.standard_normal((g, 3)), "weight_hh_l0": rng.standard_normal((g, 5))}
        spec = Q.ModelSpec(layers_from_state_dict(kind, sd, 1, False, reset_after=reset_after))
        layer = Q.quantize_model(spec).layers[0]
        x = rng.standard_normal((2, 3)).astype(F32)
        h = rng.uniform(-1, 1, (2, 5)).astype(F32)
        c = rng.standard_normal((2, 5)).astype(F32) if kind == "lstm" else None
        h2, c2, acc = Q.q8_cell_step(layer, 0, x, h, c, return_acc=True)
        qx, _ = Q.quantize_activation(x)
        qh, _ = Q.quantize_activation(h)
        wih, whh = layer.directions[0].w_ih.q, layer.directions[0].w_hh.q
        for b in range(2):
            assert acc["ih"][b].tolist() == [sum(int(a) * int(w) for a, w in zip(qx[b], wih[r], strict=True))
                                             for r in range(g)]
            rows = range(g) if reset_after or kind != "gru" else range(10)
            assert [acc["hh"][b][r] for r in rows] == [
                sum(int(a) * int(w) for a, w in zip(qh[b], whh[r], strict=True)) for r in rows]
        if kind == "gru" and not reset_after:
            # rows 2H..3H multiply q(r*h): check against r recomputed from the accumulators
            w = layer.directions[0]
            gi = Q.epilogue(acc["ih"], acc["x_scale"], w.w_ih.scale, w.bias_ih)
            gh = Q.epilogue(acc["hh"][:, :10], acc["h_scale"], w.w_hh.scale[:10], w.bias_hh[:10])
            r = (1 / (1 + np.exp(-(gi[:, :5] + gh[:, :5])))).astype(F32)
            qrh, _ = Q.quantize_activation(r * h)
            ref = Q.int_matmul(qrh, whh[10:])
            assert np.abs(acc["hh"][:, 10:] - ref).max() <= 127 * 5  # r may differ in its last ulp
        assert h2.dtype == np.float32


def test_bidirectional_embedding_and_head_q8_close_to_float():
    rng = np.random.default_rng(10)
    m, spec = _torch_layers("gru", 8, 16, 2, True, seed=11)
    spec.embedding = rng.standard_normal((20, 8))
    spec.head = Q.LinearSpec(rng.standard_normal((4, 32)) * 0.2, rng.standard_normal(4) * 0.1, "softmax")
    spec.last_step = True
    tokens = rng.integers(0, 20, (5, 30))
    lengths = np.array([30, 12, 1, 7, 0])
    yf, _ = Q.float_forward(spec, tokens, lengths)
    yq, _ = Q.q8_forward(Q.quantize_model(spec), tokens, lengths)
    assert yq.shape == (5, 4)
    # independent: torch GRU + linear + softmax
    emb = torch.from_numpy(spec.embedding[tokens])
    with torch.no_grad():
        yt, _ = m(emb)
    idx = np.clip(lengths - 1, 0, None)
    last = yt.numpy()[np.arange(5), idx]
    last[lengths == 0] = 0
    logits = last @ spec.head.weight.T + spec.head.bias
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    # the backward direction at lengths-1 only saw one step, so take it from a per-sequence run
    for b in range(5):
        if lengths[b] == 0:
            continue
        with torch.no_grad():
            yb, _ = m(emb[b:b + 1, :lengths[b]])
        lg = yb.numpy()[0, -1] @ spec.head.weight.T + spec.head.bias
        e = np.exp(lg - lg.max())
        ref[b] = e / e.sum()
    np.testing.assert_allclose(yf, ref, atol=1e-12)
    assert np.abs(yq - ref).max() <= Q8_BOUND_100


def test_calibration_gives_max_abs_over_127_and_static_q8_runs():
    m, spec = _torch_layers("lstm", 4, 8, 2, False, seed=12)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 50, 4)).astype(F32)
    lengths = np.array([50, 20, 5, 1])
    x[1, 20:] = 1000.0  # padding must be ignored
    cal = Q.calibrate(spec, x, lengths)
    valid = np.arange(50)[None, :] < lengths[:, None]
    assert cal.x_scale[0] == pytest.approx(np.abs(x[valid]).max() / 127, rel=1e-6)
    y, _ = Q.float_forward(spec, x, lengths, dtype=np.float32)
    assert cal.h_scale[1][0] == pytest.approx(np.abs(y).max() / 127, rel=1e-6)
    qm = Q.quantize_model(spec, cal)
    assert qm.layers[0].x_scale == cal.x_scale[0]
    yq, _ = Q.q8_forward(qm, x, lengths)
    y64, _ = Q.float_forward(spec, x, lengths)
    assert np.abs(yq - y64).max() <= Q8_BOUND_100


def test_the_ints_stored_in_an_rnc_file_are_the_reference_quantisation():
    from rnncore.io.rnc import read_rnc, write_rnc

    _, spec = _torch_layers("lstm", 5, 19, 2, True, seed=14)
    rng = np.random.default_rng(15)
    spec.head = Q.LinearSpec(rng.standard_normal((3, 38)), rng.standard_normal(3), "sigmoid")
    stored = Q.qmodel_from_rnc(read_rnc(write_rnc(Q.to_rnc_spec(spec, "q8"))))
    ours = Q.quantize_model(spec)
    for a, b in zip(stored.layers, ours.layers, strict=True):
        for da, db in zip(a.directions, b.directions, strict=True):
            for name in ("w_ih", "w_hh"):
                np.testing.assert_array_equal(getattr(da, name).q, getattr(db, name).q)
                np.testing.assert_array_equal(getattr(da, name).scale, getattr(db, name).scale)
    np.testing.assert_array_equal(stored.head.w.q, ours.head.w.q)
    x = rng.standard_normal((2, 6, 5)).astype(F32)
    np.testing.assert_array_equal(Q.q8_forward(stored, x)[0], Q.q8_forward(ours, x)[0])


@pytest.mark.parametrize("kind", ["rnn_relu", "gru", "gru_rb", "lstm"])
def test_q8_reference_over_100_steps_vs_rc_nn(kind):
    """The same bound against rnncore's own float64 reference (rc.nn), incl. GRU reset_after=False."""
    import rnncore as rc

    if kind.startswith("rnn"):
        m = rc.nn.RNN(10, 24, num_layers=2, nonlinearity="relu", seed=16)
    elif kind.startswith("gru"):
        m = rc.nn.GRU(10, 24, num_layers=2, reset_after=(kind == "gru"), seed=16)
    else:
        m = rc.nn.LSTM(10, 24, num_layers=2, seed=16)
    spec = Q.spec_from_model(m)
    x = np.random.default_rng(17).standard_normal((3, 100, 10))
    y64, _ = m.forward(x)
    yq, _ = Q.q8_forward(Q.quantize_model(spec), x.astype(F32))
    assert np.abs(yq - y64).max() <= Q8_BOUND_100
    yf, _ = Q.float_forward(spec, x)
    np.testing.assert_allclose(yf, y64, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "lstm"])
def test_the_reference_activations_can_be_replaced_as_the_c_vectors_do(kind, monkeypatch):
    """csrc/tests/gen_vectors.py swaps ``reference.sigmoid`` and ``reference.np`` for the C core's
    fast float32 activations to compare the C q8 outputs bit for bit: the q8 step must call
    the module's hooks, not a copy bound elsewhere."""
    from rnncore.quant import reference

    calls = []

    class _Np:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def tanh(x):
            calls.append("tanh")
            return np.tanh(x)

    def sig(a):
        calls.append("sigmoid")
        return F32(0.5) + F32(0.5) * np.tanh(F32(0.5) * a)

    rng = np.random.default_rng(7)
    g = {"rnn_tanh": 1, "gru": 3, "lstm": 4}[kind]
    sd = {"weight_ih_l0": rng.standard_normal((g * 4, 3)), "weight_hh_l0": rng.standard_normal((g * 4, 4))}
    qm = Q.quantize_model(Q.ModelSpec(layers_from_state_dict(kind, sd, 1, False)))
    x, h = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 4)).astype(F32)
    c = np.zeros_like(h) if kind == "lstm" else None
    want = Q.q8_cell_step(qm.layers[0], 0, x, h, c)
    monkeypatch.setattr(reference, "sigmoid", sig)
    monkeypatch.setattr(reference, "np", _Np())
    got = Q.q8_cell_step(qm.layers[0], 0, x, h, c)
    assert "tanh" in calls and (kind == "rnn_tanh" or "sigmoid" in calls)
    np.testing.assert_array_equal(got[0], want[0])  # the same functions, so the same numbers
