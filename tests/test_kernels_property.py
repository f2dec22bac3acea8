"""Property tests of every kernel in the C kernel table, on every ISA path this CPU runs.

The table (``rnncore._kernels.kernels()``) drives the parametrisation: each row whose ISA is
available here is tested; rows of ISAs this CPU lacks are listed in the session summary
("rnncore C kernels by ISA", from tests/conftest.py).

* GEMV q8: int32 accumulators **exactly** equal to ``rnncore.quant.int_matmul`` of the same int8
  values (including all +-127, which would saturate a 16-bit ``maddubs`` sum);
  GEMV f32: within the float32 summation bound ``(K + 2) * 2^-24 * sum_k |w_k x_k|`` of float64.
* Fused steps (RNN/GRU both forms/LSTM): one step from the *same* state (read back from C) as
  the reference:
  - f32 vs the float64 reference ``rc.nn`` (float32-representable weights):
    ``|dh| <= F32_STEP_TOL + (K + 2) * 2^-24 * sum|w x|`` with ``F32_STEP_TOL = 2e-6``
    (the C core's fast activations are within 4.1e-7 (tanh) and 2.3e-7 (sigmoid) of the
    true functions (csrc/src/kernels/activations.h); a cell update combines at most three such
    terms with factors <= 2, plus a few float32 roundings of values <= 1);
  - q8 vs the quantised reference ``rnncore.quant.q8_cell_step`` on the stored ints, within
    ``Q8_STEP_TOL = 2e-6`` (relative to max(1, |h|)): the same integer accumulators, and the
    same activation-error budget as f32 (the reference uses exact float32 tanh/sigmoid).
    GRU(reset_after=False) quantises ``r*h``, where r comes from the fast sigmoid: one element
    of ``q(r*h)`` may round the other way, which moves the n pre-activation by at most
    ``max_r |Wq_n[r, :]|_inf * s_rh * s_w[r]``; that term is added.
* The activation quantisation ``rnc_quantize_q8`` is bit-exact with ``quantize_activation``.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_report import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore import _kernels
from rnncore import quant as Q

F32 = np.float32
F32_STEP_TOL = 2e-6
Q8_STEP_TOL = 2e-6
U = 2.0 ** -24

AVAILABLE = set(rc.isa()["available"])
KERNELS = _kernels.kernels()
RUNNABLE = [k for k in KERNELS if k["isa"] in AVAILABLE]
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ids(kern):
    return kern["name"]


def _round_up(n, m):
    return (n + m - 1) // m * m


def pack_q8(w: np.ndarray) -> np.ndarray:
    """The contract's q8 layout, written out: block b of 16 rows, group g of 4 inputs = 64 bytes,
    ``byte[(b*Kp/4 + g)*64 + r*4 + j] = W[16b + r, 4g + j]``."""
    rp, kp = w.shape
    out = np.zeros(rp * kp, np.int8)
    for b in range(rp // 16):
        for g in range(kp // 4):
            base = (b * (kp // 4) + g) * 64
            out[base:base + 64] = w[16 * b:16 * b + 16, 4 * g:4 * g + 4].reshape(-1)
    return out


def pack_f32(w: np.ndarray) -> np.ndarray:
    """``float[(b*K + k)*16 + r] = W[16b + r, k]``."""
    rp, k = w.shape
    out = np.zeros(rp * k, F32)
    for b in range(rp // 16):
        for kk in range(k):
            base = (b * k + kk) * 16
            out[base:base + 16] = w[16 * b:16 * b + 16, kk]
    return out


def _int8_matrix(rng, shape, mode):
    if mode == "random":
        return rng.integers(-127, 128, shape).astype(np.int8)
    if mode == "+127":
        return np.full(shape, 127, np.int8)
    if mode == "-127":
        return np.full(shape, -127, np.int8)
    if mode == "alternating":
        a = np.full(shape, 127, np.int8)
        a.reshape(-1)[1::2] = -127
        return a
    return np.zeros(shape, np.int8)


MODES = st.sampled_from(["random", "+127", "-127", "alternating", "zeros"])


# ------------------------------------------------------------------------------------------
# GEMV kernels


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] == "gemv" and k["precision"] == "q8"],
                         ids=_ids)
@HYP
@given(r=st.integers(1, 80), k=st.integers(1, 90), b=st.integers(1, 5), wmode=MODES, xmode=MODES,
       seed=st.integers(0, 2**31))
def test_q8_gemv_accumulators_are_exact(kern, r, k, b, wmode, xmode, seed):
    b += kern["min_batch"] - 1  # within the row's columns (AMX tiles: 16 and more)
    rng = np.random.default_rng(seed)
    rp, kp = _round_up(r, 16), _round_up(k, 4)
    w = np.zeros((rp, kp), np.int8)
    w[:r, :k] = _int8_matrix(rng, (r, k), wmode)
    x = np.zeros((b, kp), np.int8)
    x[:, :k] = _int8_matrix(rng, (b, k), xmode)
    acc = _kernels.q8_gemv(kern["isa"], pack_q8(w), rp, kp, x)
    np.testing.assert_array_equal(acc, Q.int_matmul(x, w))
    record(kern["name"], kern["isa"])


def test_q8_gemv_all_127_has_no_16_bit_saturation():
    k = 1024
    w = np.full((16, k), 127, np.int8)
    w[1] = -127
    x = np.full((2, k), 127, np.int8)
    x[1] = -127
    for kern in (k_ for k_ in RUNNABLE if k_["op"] == "gemv" and k_["precision"] == "q8"):
        acc = _kernels.q8_gemv(kern["isa"], pack_q8(w), 16, k, x)
        assert acc[0, 0] == 127 * 127 * k and acc[0, 1] == -127 * 127 * k
        assert acc[1, 0] == -127 * 127 * k and acc[1, 1] == 127 * 127 * k


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] == "gemv" and k["precision"] == "f32"],
                         ids=_ids)
@HYP
@given(r=st.integers(1, 80), k=st.integers(1, 90), b=st.integers(1, 5),
       scale=st.sampled_from([0.0, 1e-3, 1.0, 1e3]), seed=st.integers(0, 2**31))
def test_f32_gemv_within_float32_summation_bound(kern, r, k, b, scale, seed):
    b += kern["min_batch"] - 1  # within the row's columns
    rng = np.random.default_rng(seed)
    rp = _round_up(r, 16)
    w = np.zeros((rp, k), F32)
    w[:r] = rng.standard_normal((r, k)) * scale
    x = rng.standard_normal((b, k)).astype(F32)
    y = _kernels.f32_gemv(kern["isa"], pack_f32(w), rp, k, x)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    bound = (k + 2) * U * (np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T)
    assert np.all(np.abs(y - ref) <= bound + 1e-30)
    record(kern["name"], kern["isa"])


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] == "gemv" and k["precision"] == "f32"],
                         ids=_ids)
@HYP
@given(r=st.integers(1, 80), k=st.integers(1, 300), b=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_f32_gemv_column_does_not_depend_on_the_column_count(kern, r, k, b, seed):
    """Each column of a product over b columns is bit for bit that column's product alone: the
    engine's frame products (a conv_time over a whole sequence, Linear layers over blocks of rows,
    a batch's recurrent product) give the step path's bits only so."""
    b += kern["min_batch"] - 1
    rng = np.random.default_rng(seed)
    rp = _round_up(r, 16)
    w = np.zeros((rp, k), F32)
    w[:r] = rng.standard_normal((r, k))
    x = rng.standard_normal((b, k)).astype(F32)
    y = _kernels.f32_gemv(kern["isa"], pack_f32(w), rp, k, x)
    for j in range(b):
        np.testing.assert_array_equal(y[j], _kernels.f32_gemv(kern["isa"], pack_f32(w), rp, k, x[j:j + 1])[0])
    record(kern["name"], kern["isa"])


@HYP
@given(n=st.integers(1, 100), scale=st.sampled_from([0.0, 1e-40, 1e-30, 1e-3, 1.0, 1e6, 1e37]),
       static=st.booleans(),
       seed=st.integers(0, 2**31))
def test_c_activation_quantisation_is_bit_exact(n, scale, static, seed):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal(n) * scale).astype(F32)
    s_static = float(F32(max(np.abs(v).max(), 1e-20) / 100)) if static else None
    q, s = _kernels.quantize_q8(v, s_static or 0.0)
    q_ref, s_ref = Q.quantize_activation(v, s_static)
    np.testing.assert_array_equal(q, q_ref)
    assert s == s_ref


# ------------------------------------------------------------------------------------------
# fused step kernels, through a one-layer model with the ISA forced

_CELLS = {"rnn_step": ["rnn_tanh", "rnn_relu"], "gru_step": ["gru", "gru_rb"], "lstm_step": ["lstm"]}


def _layer(kind, i, h, seed, wscale):
    if kind.startswith("rnn"):
        m = rc.nn.RNN(i, h, nonlinearity=kind[4:], seed=seed)
    elif kind.startswith("gru"):
        m = rc.nn.GRU(i, h, reset_after=(kind == "gru"), seed=seed)
    else:
        m = rc.nn.LSTM(i, h, seed=seed)
    for _, v in m.named_parameters():
        v[...] = (v * wscale).astype(F32)
    return m


def _sum_abs(m, x, h):
    """sum_k |w_rk x_k| + |w_rk h_k| + |b| per row, for the float32 summation bound."""
    sd = m.state_dict()
    return (np.abs(x) @ np.abs(sd["weight_ih_l0"]).T + np.abs(h) @ np.abs(sd["weight_hh_l0"]).T
            + np.abs(sd["bias_ih_l0"]) + np.abs(sd["bias_hh_l0"]))


def _kinds(kern):
    """The cell kinds a row serves (rows flagged not to serve GRU reset_after=False skip gru_rb)."""
    return [k for k in _CELLS[kern["op"]] if kern["gru_rb"] or k != "gru_rb"]


def _reach(eng, kern, inputs=("x", "gi")):
    """(input, batch, sums) at which the plan of ``eng`` (ISA forced to the row's) runs row
    ``kern``, or None: first with W_hh's kernel sums (what a q8 v2 file carries), then without
    (a v1 file: :func:`_compile` with ``sums=False``). Whole-sequence runs give the cells their
    projection ("gi") only below 4 sequences."""
    lo = kern["min_batch"]
    hi = min(kern["max_batch"] or lo + 20, lo + 20)
    for sums in (True, False):
        for inp in inputs:
            if kern["input"] not in ("any", inp):
                continue
            for b in range(lo, (min(hi, 3) if inp == "gi" else hi) + 1):
                if eng._model.plan_row(0, kern["op"], b, inp, sums=sums) == kern["name"]:
                    return inp, b, sums
    return None


def _compile(m, precision, sums=True, state_scale=None):
    """The engine of ``m``; for q8 without kernel sums (``sums=False``) from a version 1 file,
    which has none, so the plan runs the rows that compute W_hh's offset correction themselves.
    ``state_scale="bounded"``: the bounded state scale 1/127 (q8 only)."""
    if precision == "f32":
        return rc.compile(m, precision=precision)
    if sums:
        return rc.compile(m, precision=precision, state_scale=state_scale)
    from rnncore.io.rnc import write_rnc
    from rnncore.spec import build_rnc, to_rnc_spec

    _, spec = build_rnc(m, precision, None)
    return rc.load(write_rnc(to_rnc_spec(spec, precision, state_scale=state_scale), 1))


def _state_scales(kind, precision):
    """The q8 state scales a cell kind can use: dynamic, and bounded where its state is."""
    return [None, "bounded"] if precision != "f32" and kind != "rnn_relu" else [None]


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] in _CELLS], ids=_ids)
def test_every_cell_row_is_reached_by_the_plan(kern):
    """Each cell row of an ISA this CPU runs is the plan's choice for some batch and input mode
    (the tests below then run it there): no row of the table is dead."""
    for kind in _kinds(kern):
        eng = rc.compile(_layer(kind, 5, 7, 0, 1.0), precision=kern["precision"])
        eng.set_isa(kern["isa"])
        assert _reach(eng, kern) is not None, f"{kern['name']} ({kind}) is never chosen by the plan"


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] in _CELLS and k["input"] != "gi"], ids=_ids)
@HYP
@given(data=st.data(), i=st.integers(1, 40), h=st.integers(1, 40), extra=st.integers(0, 2),
       wscale=st.sampled_from([0.5, 1.0, 4.0]), xscale=st.sampled_from([0.0, 1.0, 30.0]),
       seed=st.integers(0, 2**31))
def test_step_kernel_one_step_from_the_same_state(kern, data, i, h, extra, wscale, xscale, seed):
    """Steps (the input vector given) at a batch where the plan runs this row (the row's first
    such batch, plus 0-2 rows where the plan still picks it), against the NumPy references."""
    kind = data.draw(st.sampled_from(_kinds(kern)))
    state_scale = data.draw(st.sampled_from(_state_scales(kind, kern["precision"])))
    m = _layer(kind, i, h, seed % 1000, wscale)
    eng = rc.compile(m, precision=kern["precision"])
    eng.set_isa(kern["isa"])
    _, b, sums = _reach(eng, kern, ("x",))
    eng = _compile(m, kern["precision"], sums, state_scale)
    eng.set_isa(kern["isa"])
    assert eng.isa == kern["isa"]
    if eng._model.plan_row(0, kern["op"], b + extra, "x", sums=sums) == kern["name"]:
        b += extra
    assert eng._model.plan_row(0, kern["op"], b, "x", sums=sums) == kern["name"]
    rng = np.random.default_rng(seed)
    s = eng.stream(batch=b)
    ref = eng.reference() if kern["precision"] != "f32" else None  # q8, q4: the stored ints
    for _t in range(3):
        x = (rng.standard_normal((b, i)) * xscale).astype(F32)
        st0 = s.state
        h0 = st0[0][0] if isinstance(st0, tuple) else st0[0]
        y = s.step(x).copy()
        if kern["precision"] == "f32":
            if isinstance(st0, tuple):
                state64 = tuple(a.astype(np.float64) for a in st0)
            else:
                state64 = st0.astype(np.float64)
            y_ref, _ = m.forward(x[:, None].astype(np.float64), state=state64)
            y_ref = y_ref[:, 0]
            tol = F32_STEP_TOL + (i + h + 2) * U * 4 * _sum_abs(m, x, h0).max()
            if kind == "lstm":
                tol *= 4
        else:
            layer = ref.layers[0]
            c0 = st0[1][0] if isinstance(st0, tuple) else None
            y_ref, _ = Q.q8_cell_step(layer, 0, x, h0, c0)
            tol = Q8_STEP_TOL * max(1.0, float(np.abs(y_ref).max()))
            if kind == "gru_rb":
                w = layer.directions[0].w_hh
                hs = layer.hidden_size
                s_rh = Q.quantize_activation(np.abs(h0).max(axis=1, keepdims=True), layer.h_scale[0])[1]
                tol += float(s_rh.max() * (np.abs(w.q[2 * hs:]).max(axis=1) * w.scale[2 * hs:]).max())
        np.testing.assert_allclose(y, y_ref, atol=tol, rtol=0, err_msg=f"{kern['name']} {kind}")
    record(kern["name"], kern["isa"])


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] in _CELLS and k["precision"] in ("q8", "q4")
                                  and k["input"] != "x" and k["isa"] != "generic"], ids=_ids)
@HYP
@given(data=st.data(), i=st.integers(1, 40), h=st.integers(1, 40), t=st.integers(4, 9),
       seed=st.integers(0, 2**31))
def test_sequence_rows_bit_identical_to_generic(kern, data, i, h, t, seed):
    """Whole-sequence runs (the projection given) at a batch where the plan runs this row: outputs
    and final state bit-identical to the generic path's (the q8 contract), with lengths. (The
    generic rows are held against the NumPy q8 reference: test_random_stacks_with_lengths_on_every_isa.)"""
    kind = data.draw(st.sampled_from(_kinds(kern)))
    state_scale = data.draw(st.sampled_from(_state_scales(kind, "q8")))
    m = _layer(kind, i, h, seed % 1000, 1.0)
    eng = rc.compile(m, precision=kern["precision"])
    eng.set_isa(kern["isa"])
    reach = _reach(eng, kern, ("gi",))
    if reach is None:  # an "any" row the plan runs only with the input vector given: the step
        assert _reach(eng, kern, ("x",)) is not None, kern["name"]  # test above covers it there
        return
    b = reach[1]
    eng = _compile(m, kern["precision"], reach[2], state_scale)
    eng.set_isa(kern["isa"])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, i)).astype(F32)
    lengths = rng.integers(1, t + 1, b)
    lengths[0] = t
    y, s = eng.run(x, lengths, return_state=True)
    eng.set_isa("generic")
    y0, s0 = eng.run(x, lengths, return_state=True)
    np.testing.assert_array_equal(y, y0, err_msg=f"{kern['name']} {kind}")
    for a, a0 in zip(s if isinstance(s, tuple) else (s,), s0 if isinstance(s0, tuple) else (s0,),
                         strict=True):
        np.testing.assert_array_equal(a, a0)
    record(kern["name"], kern["isa"])


@pytest.mark.parametrize("isa", sorted(AVAILABLE))
@pytest.mark.parametrize("precision", ["f32", "q8", "q4"])
def test_run_with_lengths_and_batch_on_every_isa(isa, precision):
    """The whole-sequence path (input projection for all steps at once) equals stepping the C core."""
    m = rc.nn.GRU(7, 19, num_layers=2, seed=1)
    eng = rc.compile(m, precision=precision)
    eng.set_isa(isa)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 11, 7)).astype(F32)
    lengths = np.array([11, 5, 1])
    y = eng.run(x, lengths)
    s = eng.stream(3)
    ys = np.stack([s.step(x[:, t]).copy() for t in range(11)], axis=1)
    for bi, n in enumerate(lengths):
        np.testing.assert_allclose(y[bi, :n], ys[bi, :n], atol=2e-6, rtol=0)
        assert np.all(y[bi, n:] == 0)


# Sequence level (the run path: input projection for all steps at once, then the recurrence),
# random stacks with variable lengths, per available ISA. f32 against rc.nn in float64 within
# 1e-5 * max(1, |y|) (the per-step bound above, 2e-6, over <= 9 steps); q8 against the quantised
# reference within 5e-3 * max(1, |y|): the two follow each other to ~1e-6 per step, but such a
# difference can move one element of a later q(h) across a rounding boundary, which changes a
# pre-activation by at most max|h| * max|W| / 127 (<= 4e-3 * max(1, |h|) for |W| <= 0.5).
# (Observed over 150 random cases: no flip, differences ~2e-7; the tight checks are the
# per-step ones above and the exact accumulators.)
# Derandomised: a fixed set of examples, so the (legitimate) flip allowance can never flake.
SEQ = settings(max_examples=12, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("isa", sorted(AVAILABLE))
@pytest.mark.parametrize("precision", ["f32", "q8", "q4"])
@SEQ
@given(data=st.data())
def test_random_stacks_with_lengths_on_every_isa(isa, precision, data):
    kind = data.draw(st.sampled_from(["rnn_tanh", "rnn_relu", "gru", "gru_rb", "lstm"]))
    i, h = data.draw(st.integers(1, 24)), data.draw(st.integers(4, 33))
    layers, bidir = data.draw(st.integers(1, 2)), data.draw(st.booleans())
    b, t = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 9))
    lengths = np.array(data.draw(st.lists(st.integers(1, t), min_size=b, max_size=b)))
    seed = data.draw(st.integers(0, 2**16))
    state_scale = data.draw(st.sampled_from(_state_scales(kind, precision)))
    if kind.startswith("rnn"):
        m = rc.nn.RNN(i, h, layers, nonlinearity=kind[4:], bidirectional=bidir, seed=seed)
    elif kind.startswith("gru"):
        m = rc.nn.GRU(i, h, layers, bidirectional=bidir, reset_after=(kind == "gru"), seed=seed)
    else:
        m = rc.nn.LSTM(i, h, layers, bidirectional=bidir, seed=seed)
    for _, v in m.named_parameters():
        v[...] = v.astype(F32)
    x = np.random.default_rng(seed).standard_normal((b, t, i)).astype(F32)
    eng = _compile(m, precision, True, state_scale)
    eng.set_isa(isa)
    y, st_c = eng.run(x, lengths, return_state=True)
    if precision == "f32":
        ref, _ = m.forward(x.astype(np.float64), lengths=lengths)
        tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
    else:
        ref, _ = Q.q8_forward(eng.reference(), x, lengths)
        tol = 5e-3 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(y, ref, atol=tol, rtol=0, err_msg=f"{isa} {precision} {kind}")
    valid = np.arange(t)[None, :] < lengths[:, None]
    assert np.all(y[~valid] == 0)
    # the rows this run took (the plan's, not every row of the ISA): each layer's cell, and for
    # q8 the activation quantiser and (below 4 sequences) the projection
    mode, op = "gi" if b < 4 else "x", {"r": "rnn_step", "g": "gru_step", "l": "lstm_step"}[kind[0]]
    for layer in range(layers):
        record(eng._model.plan_row(layer, op, b, mode, sums=True), isa)
    if precision != "f32":
        record(eng._model.plan_row(-1, "quantize", 1), isa)
        if b < 4:  # q4: the q4 product, then the dequantisation
            record(eng._model.plan_row(-1, "gemm_deq" if precision == "q8" else "gemv", b * t), isa)


# ------------------------------------------------------------------------------------------
# the model-wide q8 rows (activation quantiser, dequantising projection),
# through a model whose plan runs them

_MODEL_OPS = ("quantize", "gemm_deq")


@pytest.mark.parametrize("kern", [k for k in RUNNABLE if k["op"] in _MODEL_OPS and k["isa"] != "generic"],
                         ids=_ids)
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("state_scale", [None, "bounded"])
def test_model_rows_bit_identical_to_generic(kern, kind, state_scale):
    """A q8 stack with a head, ISA forced to the row's, at a batch and length where the plan runs
    the row (checked with plan_row): outputs and final state bit-identical to the generic path's.
    (The generic rows are held against the NumPy q8 reference in the random-stack test.)"""
    m = rc.nn.Sequential(_layer(kind, 9, 21, 3, 1.0), rc.nn.Linear(21, 5, seed=4))
    eng = rc.compile(m, precision="q8", state_scale=state_scale)
    eng.set_isa(kern["isa"])
    b, t = 2, max(8, kern["min_batch"])  # whole-sequence mode: one projection of b*t columns
    assert eng._model.plan_row(-1, kern["op"], b * t) == kern["name"]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((b, t, 9)).astype(F32)
    y, s = eng.run(x, np.array([t, t - 3]), return_state=True)
    eng.set_isa("generic")
    y0, s0 = eng.run(x, np.array([t, t - 3]), return_state=True)
    np.testing.assert_array_equal(y, y0)
    for a, a0 in zip(s if isinstance(s, tuple) else (s,), s0 if isinstance(s0, tuple) else (s0,),
                         strict=True):
        np.testing.assert_array_equal(a, a0)
    record(kern["name"], kern["isa"])


def test_the_references_sigmoid_has_the_c_cores_form():
    """``rnncore.nn.functional.sigmoid`` (the one sigmoid of the float, q8 and ONNX-option
    references) and the C core's ``rnc_sigmoidf`` are both ``0.5 + 0.5 tanh(0.5 x)`` in float32,
    so they differ only through the C core's tanh approximation (docs/q8-contract.md)."""
    from rnncore.nn.functional import sigmoid

    f32 = np.float32
    x = np.concatenate([np.linspace(-30, 30, 20001, dtype=f32),
                        np.array([0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 1e30, -1e30], f32)])
    half = f32(0.5)
    np.testing.assert_array_equal(_kernels.fast_sigmoid(x), half + half * _kernels.fast_tanh(half * x))
    y = sigmoid(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, half + half * np.tanh(half * x))
    with np.errstate(over="ignore"):  # exp(1e30) = inf gives the exact 0
        exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    assert np.abs(y - exact).max() < 1.2e-7  # within two float32 ulps of the true sigmoid
    assert np.abs(_kernels.fast_sigmoid(x) - y).max() <= 2.3e-7 + 1.2e-7  # the documented budgets
