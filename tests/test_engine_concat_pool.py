"""Concatenated poolings over time in the C engine (``rc.nn.ConcatPool`` of ``LastStep``,
``MaskedMean``, ``MaskedMax``: the last_step record with the mean / max flags and the last-step part
flag 0x10, docs/rnc-format.md): the engine computes the parts in the fixed order
``[last | mean | max]``, and ``rc.compile`` permutes the next Linear's input columns when the model's
order differs.

f32 against a PyTorch twin (``torch.cat`` of the last valid step, the masked mean and
``masked_fill(~mask, -inf).max(1).values`` -> ``nn.Linear``, the weights copied from the rc model)
in every part combination and several orders; the pooled rows bit for bit against
``ConcatPool.forward`` of the engine's own per-step outputs (last and max exact, the mean as the
mean tests check it); q8 against the NumPy q8 spec bit for bit on every ISA path of this CPU; the
stream against the run of the first t + 1 steps, its state saved and restored; both loaders'
refusals of bad flag combinations.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import re
import struct
import sys

import numpy as np
import pytest
from _helpers import fix_crc, randn32, record_at
from export_c_run import exported_outputs
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

nn = rc.nn
ISAS = rc.isa()["available"]
POOLS = {"last": nn.LastStep, "mean": nn.MaskedMean, "max": nn.MaskedMax}
# every combination of parts, each in the canonical order and (for 2 or 3 parts) a permuted one
ORDERS = [("mean", "max"), ("max", "mean"), ("last", "mean"), ("mean", "last"), ("last", "max"),
          ("max", "last"), ("last", "mean", "max"), ("max", "mean", "last"), ("mean", "last", "max"),
          ("mean",), ("max",), ("last",)]


def concat_model(order, cell=nn.GRU, seed=0, bidirectional=False, H=8, relu=False):
    """cell(6, H) ConcatPool(order) [ReLU] Linear(parts * H * dirs, 3)."""
    F = H * (2 if bidirectional else 1)
    pools = [nn.LastStep(bidirectional=bidirectional) if p == "last" else POOLS[p]() for p in order]
    mods = [cell(6, H, bidirectional=bidirectional, seed=seed), nn.ConcatPool(*pools)]
    mods += [nn.ReLU()] if relu else []
    return nn.Sequential(*mods, nn.Linear(len(order) * F, 3, seed=seed + 3))


def _torch_twin(model, order, relu=False):
    """The PyTorch twin: the same weights, the poolings written as PyTorch users write them."""
    import torch

    cell, fc = model[0], model[-1]
    rnn = getattr(torch.nn, type(cell).__name__)(cell.input_size, cell.hidden_size, batch_first=True,
                                                 bidirectional=cell.bidirectional)
    rnn.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in cell.state_dict().items()})
    lin = torch.nn.Linear(fc.in_features, fc.out_features)
    lin.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in fc.state_dict().items()})

    def run(X, lengths):
        with torch.no_grad():
            x, n = torch.as_tensor(X), torch.as_tensor(lengths)
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, n, batch_first=True, enforce_sorted=False)
            y = torch.nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True,
                                                       total_length=x.shape[1])[0]
            mask = (torch.arange(x.shape[1])[None, :] < n[:, None])[..., None]
            H = y.shape[2] // 2
            last = y[torch.arange(len(n)), n - 1]
            if cell.bidirectional:   # the backward direction ends at t = 0
                last = torch.cat([last[:, :H], y[:, 0, H:]], 1)
            part = {"last": last, "mean": (y * mask).sum(1) / n[:, None].to(y.dtype),
                    "max": y.masked_fill(~mask, float("-inf")).max(1).values}
            z = torch.cat([part[p] for p in order], -1)
            return lin(torch.relu(z) if relu else z).numpy()

    return run


def _canonical(order):
    return "|".join(p for p in ("last", "mean", "max") if p in order)


# -- f32: independent references ------------------------------------------------------------------
@pytest.mark.parametrize("order", ORDERS)
def test_f32_every_combination_and_order_matches_a_pytorch_twin(order):
    m = concat_model(order, seed=1, relu=len(order) == 3)
    e = rc.compile(m)
    if len(order) > 1:
        assert e.describe() == f"gru(8) > concat_pool({_canonical(order)}) > " + (
            "pointwise > " if len(order) == 3 else "") + "linear(" + str(8 * len(order)) + "->3)"
    X = randn32((4, 9, 6), seed=2)
    lengths = np.array([9, 4, 1, 7])
    want = _torch_twin(m, order, relu=len(order) == 3)(X, lengths)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(e.run(X, lengths), m.forward(X.astype(np.float64), lengths=lengths),
                               rtol=0, atol=1e-5)
    mask = np.arange(9)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(e.run(X, mask=mask), e.run(X, lengths))


@pytest.mark.parametrize("cell", [nn.LSTM, nn.RNN])
@pytest.mark.parametrize("order", [("max", "mean"), ("last", "max", "mean")])
def test_f32_lstm_and_rnn(cell, order):
    m = concat_model(order, cell=cell, seed=4)
    X, lengths = randn32((3, 7, 6), seed=5), np.array([7, 2, 5])
    np.testing.assert_allclose(rc.compile(m).run(X, lengths), _torch_twin(m, order)(X, lengths),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("order", [("mean", "max"), ("max", "last", "mean"), ("last", "max")])
def test_bidirectional_lstm_matches_torch_f32_and_q8_the_spec(order):
    m = concat_model(order, cell=nn.LSTM, seed=6, bidirectional=True, H=5)
    X, lengths = randn32((3, 7, 6), seed=7), np.array([7, 2, 5])
    np.testing.assert_allclose(rc.compile(m).run(X, lengths), _torch_twin(m, order)(X, lengths),
                               rtol=0, atol=1e-5)
    e = rc.compile(m, precision="q8")
    ref = _q8_reference(e, X, lengths)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)


@pytest.mark.parametrize("order", [("max", "mean"), ("last", "mean", "max")])
def test_per_step_layers_before_the_pooling(order):
    """``GRU > Linear > ReLU > ConcatPool > Linear``: the Linear right after the recurrent layer is a
    per-step record (not the head) once a pooling follows it, as for a single pooling; f32 against
    PyTorch, q8 against the NumPy q8 spec on every ISA path."""
    import torch

    H, P = 8, 5
    pools = [POOLS[p]() for p in order]
    m = nn.Sequential(nn.GRU(6, H, seed=11), nn.Linear(H, P, seed=12), nn.ReLU(), nn.ConcatPool(*pools),
                      nn.Linear(len(order) * P, 3, seed=13))
    e = rc.compile(m)
    assert e.describe().startswith("gru(8) > frame_conv > pointwise > concat_pool(")
    X, lengths = randn32((3, 7, 6), seed=14), np.array([7, 2, 5])
    rnn = torch.nn.GRU(6, H, batch_first=True)
    rnn.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in m[0].state_dict().items()})
    lins = []
    for lin in (m[1], m[4]):
        t = torch.nn.Linear(lin.in_features, lin.out_features)
        t.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)) for k, v in lin.state_dict().items()})
        lins.append(t)
    with torch.no_grad():
        x, n = torch.as_tensor(X), torch.as_tensor(lengths)
        z = torch.relu(lins[0](rnn(x)[0]))
        mask = (torch.arange(7)[None, :] < n[:, None])[..., None]
        part = {"last": z[torch.arange(3), n - 1], "mean": (z * mask).sum(1) / n[:, None].to(z.dtype),
                "max": z.masked_fill(~mask, float("-inf")).max(1).values}
        want = lins[1](torch.cat([part[p] for p in order], -1)).numpy()
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-5)
    e8 = rc.compile(m, precision="q8")
    ref = _q8_reference(e8, X, lengths)
    for isa in ISAS:
        e8.set_isa(isa)
        np.testing.assert_array_equal(e8.run(X, lengths), ref, err_msg=isa)


# -- the pooled rows against ConcatPool.forward -----------------------------------------------------
def _pooled_and_per_step(order, cell, F, seed, bidirectional=False):
    pools = [nn.LastStep(bidirectional=bidirectional) if p == "last" else POOLS[p]() for p in order]
    rnn = cell(3, F, seed=seed, bidirectional=bidirectional)
    return (rc.compile(nn.Sequential(rnn, nn.ConcatPool(*pools))), rc.compile(nn.Sequential(rnn)),
            nn.ConcatPool(*pools))


def _check_pool_bits(order, pooled, per_step, cp, X, lengths):
    """The canonical-order engine's pooled rows: ConcatPool.forward (float32) of the per-step
    engine's outputs, last and max bit for bit, the mean to float32 rounding (the engine adds in
    step order then divides, numpy's einsum weights each step by 1/len); zeros without a step."""
    got = pooled.run(X, lengths)
    y = per_step.run(X, lengths)
    F = y.shape[2]
    live = lengths > 0
    assert got.shape == (len(X), len(order) * F)
    if live.any():
        want = cp.forward(y[live], lengths=lengths[live])
        assert want.dtype == np.float32
        for k, part in enumerate(order):
            g, w = got[live][:, k * F:(k + 1) * F], want[:, k * F:(k + 1) * F]
            if part == "mean":
                np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-7)
            else:
                np.testing.assert_array_equal(g, w, err_msg=part)
    np.testing.assert_array_equal(got[~live], 0)


@settings(max_examples=int(os.environ.get("RNC_CONCATPOOL_EXAMPLES", "12")), deadline=None, derandomize=True)
@given(B=st.integers(1, 5), T=st.integers(1, 8), F=st.integers(1, 7), seed=st.integers(0, 2**31 - 1),
       cell=st.sampled_from([nn.GRU, nn.LSTM, nn.RNN]),
       parts=st.sampled_from([o for o in ORDERS if len(o) > 1 and o == tuple(_canonical(o).split("|"))]))
def test_random_lengths_pool_bit_for_bit(B, T, F, seed, cell, parts):
    """Random shapes and lengths (0 included), the canonical orders (RNC_CONCATPOOL_EXAMPLES sets
    the examples for a long local run; 12 in CI)."""
    pooled, per_step, cp = _pooled_and_per_step(parts, cell, F, seed % 1000)
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((B, T, 3)) * 2).astype(np.float32)
    _check_pool_bits(parts, pooled, per_step, cp, X, rng.integers(0, T + 1, B))


def test_bidirectional_last_part_pools_bit_for_bit():
    order = ("last", "mean", "max")
    pooled, per_step, cp = _pooled_and_per_step(order, nn.GRU, 4, 3, bidirectional=True)
    X = randn32((4, 6, 3), seed=9, scale=2.0)
    _check_pool_bits(order, pooled, per_step, cp, X, np.array([6, 1, 0, 3]))


# -- q8: the NumPy q8 spec, bit for bit on every ISA ---------------------------------------------
def _q8_reference(e, X, lengths):
    return gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(e.data)), X, lengths)[0]


@pytest.mark.parametrize("order", [("mean", "max"), ("max", "mean", "last"), ("last", "max")])
@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_q8_equals_the_numpy_q8_spec_on_every_isa(cell, order):
    m = concat_model(order, cell=cell, seed=7, relu=True)
    X = randn32((5, 9, 6), seed=8, scale=2.0)
    lengths = np.array([9, 3, 0, 1, 6])
    e = rc.compile(m, precision="q8")
    ref = _q8_reference(e, X, lengths)
    assert np.abs(ref).max() > 0.05
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)
        np.testing.assert_array_equal(e.run(X[:2], lengths[:2]), ref[:2], err_msg=isa)
    y32 = rc.compile(m).run(X, lengths)
    assert 0 < np.abs(ref - y32).max() < 0.1 * np.abs(y32).max()   # quantised: close, not equal
    np.testing.assert_array_equal(write_rnc(read_rnc(e.data)), e.data)


# -- streaming -----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [("max", "mean"), ("last", "mean", "max"), ("max", "last")])
@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_step_is_the_run_of_the_steps_so_far_and_the_state_saves_and_restores(precision, order):
    e = rc.compile(concat_model(order, seed=9), precision=precision)
    X = randn32((3, 8, 6), seed=10)
    keys = {"recurrent"} | ({"mean_sum", "mean_steps"} if "mean" in order else set()) | (
        {"max_value", "max_seen"} if "max" in order else set())
    for isa in ISAS if precision == "q8" else ISAS[-1:]:
        e.set_isa(isa)
        st_ = e.stream(3)
        got = [st_.step(X[:, t].copy()) for t in range(8)]
        for t in range(8):
            np.testing.assert_array_equal(got[t], e.run(X[:, :t + 1]), err_msg=f"{isa} t={t}")
        saved = st_.state
        assert set(saved) == keys
        if "mean" in order:
            assert (saved["mean_steps"] == 8).all() and saved["mean_sum"].shape == (3, 8)
        if "max" in order:
            assert saved["max_seen"].all() and saved["max_value"].shape == (3, 8)
        st2 = e.stream(3)
        st2.state = saved
        more = randn32((3, 2, 6), seed=11, scale=3.0)
        whole = e.run(np.concatenate([X, more], 1))
        np.testing.assert_array_equal(st2.step(more[:, 0].copy()), e.run(np.concatenate([X, more[:, :1]], 1)))
        np.testing.assert_array_equal(st2.step(more[:, 1].copy()), whole)
        st3 = e.stream(3)   # run continues a stream as step does
        st3.run(X[:, :5])
        np.testing.assert_array_equal(st3.run(np.concatenate([X[:, 5:], more], 1)), whole, err_msg=isa)
        st_.state = saved["recurrent"]   # the recurrent state alone: the poolings start afresh
        fresh = st_.state
        assert all(not fresh[k].any() for k in keys - {"recurrent"})


def test_state_assignment_checks_both_parts_and_the_mean_count_limit():
    e = rc.compile(concat_model(("max", "mean"), seed=12))
    st_ = e.stream(2)
    st_.step(randn32((2, 6), seed=13))
    s = st_.state
    with pytest.raises(ValueError, match=r"expected the keys 'recurrent' and 'mean_sum' and 'mean_steps' and "
                                         r"'max_value' and 'max_seen'"):
        st_.state = {"recurrent": s["recurrent"], "mean_sum": s["mean_sum"], "mean_steps": s["mean_steps"]}
    with pytest.raises(ValueError, match=r"state\['max_value'\]: expected shape \(2, 8\), got \(2, 7\)"):
        st_.state = {**s, "max_value": s["max_value"][:, :7]}
    with pytest.raises(ValueError, match=r"state\['max_seen'\]: expected values in \[0, 1\]"):
        st_.state = {**s, "max_seen": np.array([0, 2])}
    # the mean's count sits before the max's row: at 2^24 steps the step is refused and named
    st_.state = {**s, "mean_steps": np.array([1, 1 << 24])}
    with pytest.raises(ValueError, match=r"step: the mean pooling has counted 2\*\*24 steps"):
        st_.step(randn32((2, 6), seed=14))
    st_.state = s
    for k in s:
        np.testing.assert_array_equal(st_.state[k], s[k])


# -- compile: what is refused, by name -------------------------------------------------------------
def test_compile_refuses_what_the_engine_does_not_compute():
    with pytest.raises(ValueError, match=r"module '1' \(ConcatPool\) has MaskedMean twice \(pools\[0\] and "
                                         r"pools\[1\]\)"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.ConcatPool(nn.MaskedMean(), nn.MaskedMean()),
                                 nn.Linear(16, 2)))
    cp = nn.ConcatPool(nn.MaskedMean(), nn.MaskedMax())
    cp.pools = (cp.pools[0], nn.AttentionPool(8, 2))   # past the constructor's own check
    with pytest.raises(ValueError, match=r"module '1' \(ConcatPool\) pools\[1\] is AttentionPool"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), cp, nn.Linear(16, 2)))
    with pytest.raises(ValueError, match=r"module '1' \(ConcatPool\) pools in the order \['max', 'mean'\] "
                                         r"and no Linear follows.*use the order \['mean', 'max'\]"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.ConcatPool(nn.MaskedMax(), nn.MaskedMean())))
    with pytest.raises(ValueError, match=r"module '1' \(ConcatPool\) pools in the order \['max', 'last'\].*"
                                         r"module '2' \(LayerNorm\) comes before any Linear"):
        rc.compile(nn.Sequential(nn.GRU(4, 8), nn.ConcatPool(nn.MaskedMax(), nn.LastStep()),
                                 nn.LayerNorm(16), nn.Linear(16, 2)))
    with pytest.raises(ValueError, match="integer model: mean pooling over time"):
        rc.compile(concat_model(("mean", "max")), precision="int8", calibration=randn32((2, 5, 6)))
    with pytest.raises(ValueError, match="stream: the model has a bidirectional layer"):
        rc.compile(concat_model(("last", "max"), bidirectional=True)).stream(1)
    # the canonical order needs no Linear after it
    e = rc.compile(nn.Sequential(nn.GRU(4, 8), nn.ConcatPool(nn.MaskedMean(), nn.MaskedMax())))
    assert e.output_size == 16


def test_cli_info_names_the_parts(tmp_path):
    from rnncore.cli.info import describe, format_text

    path = tmp_path / "concat.rnc"
    path.write_bytes(rc.compile(concat_model(("max", "last", "mean"))).data)
    info = describe(str(path), [1], 4)
    assert info["last_step"] == "concat(last|mean|max)"
    format_text(info)


# -- the file -------------------------------------------------------------------------------------
def _flags_at(data: bytes) -> int:
    return record_at(data, "last_step") + 8


def _both_refuse(data: bytes, flags: int, want: str, status: str = "CORRUPT") -> None:
    b = bytearray(data)
    struct.pack_into("<I", b, _flags_at(data), flags)
    bad = fix_crc(b)
    with pytest.raises(RncFormatError, match=re.escape(want)) as py:
        check_rnc(bad)
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bad)
    assert py.value.status == status


def test_the_file_round_trips_and_both_loaders_refuse_the_same_bad_flags():
    e = rc.compile(concat_model(("max", "mean", "last"), seed=16), precision="q8")
    d = read_rnc(e.data)
    assert d["last_step"] and d["last_step_max"] and d["last_step_mean"] and d["last_step_last"]
    assert struct.unpack_from("<I", e.data, _flags_at(e.data))[0] == 0x1a
    assert e._model.last_step_last and e._model.last_step_mean and e._model.last_step_max
    np.testing.assert_array_equal(write_rnc(d), e.data)
    for flags, want in ((0x10, "flags: 0x10: the last-step part (0x10) needs mean (0x2) and/or max (0x8)"),
                        (0x11, "flags: 0x11: the last-step part (0x10) needs mean (0x2)"),
                        (0x3, "flags: 0x3: mean pooling (0x2) with the bidirectional flag (0x1)"),
                        (0x9, "flags: 0x9: max pooling (0x8) with the attention flag (0x4), or with the "
                              "bidirectional flag (0x1) without the last-step part (0x10)"),
                        (0x1b, "flags: 0x1b: bidirectional last-step pooling needs a bidirectional last"),
                        (0x20, "flags: 0x20 has unknown bits (known: 0x1f)")):
        _both_refuse(e.data, flags, want)
    # the widths follow the flags: [mean | max] of a file written for [last | mean | max] is refused
    _both_refuse(e.data, 0xa, "in_features: 24", "CORRUPT")
    # the attention record (48 bytes) with the last-step part
    attn = rc.compile(nn.Sequential(nn.GRU(6, 8, seed=0), nn.AttentionPool(8, 3, seed=1), nn.Linear(8, 3)))
    _both_refuse(attn.data, 0x14, "flags: 0x14: the last-step part (0x10) needs mean (0x2) and/or max (0x8) "
                                  "pooling and no attention (0x4)")
    with pytest.raises(ValueError, match="last_step_last: the last step as a part"):
        write_rnc({**d, "last_step_mean": False, "last_step_max": False})


def test_an_integer_file_with_the_last_part_flag_is_refused_by_both():
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    m = nn.Sequential(nn.GRU(3, 4, seed=0), nn.LastStep(), nn.Linear(4, 2, seed=1))
    cal = qi.IntCalibration([(-2.0, 2.0)], [(-0.9, 0.95)], [3.0], [4.0], "int8")
    data = write_int_rnc(qi.quantize_int_model(m, cal, "gemmlowp"))
    _both_refuse(data, 0x1a, "flags: 0x1a: mean pooling (0x2) in an integer file", "UNSUPPORTED")
    _both_refuse(data, 0x18, "flags: 0x18: max pooling (0x8) in an integer file", "UNSUPPORTED")


@pytest.mark.parametrize("order", list(itertools.permutations(("last", "mean", "max"), 2)))
def test_the_numpy_q8_spec_follows_the_permuted_linear_in_f32_too(order):
    """The spec of the compiled file (canonical parts, permuted columns) in float equals the model."""
    m = concat_model(order, seed=12)
    e = rc.compile(m)
    X, lengths = randn32((3, 5, 6), seed=13), np.array([5, 2, 3])
    np.testing.assert_allclose(e.run(X, lengths), m.forward(X.astype(np.float64), lengths=lengths),
                               rtol=0, atol=1e-5)


# -- to_onnx: a Concat of the poolings -------------------------------------------------------------
@pytest.mark.parametrize("order", [("max", "mean"), ("last", "mean", "max"), ("mean", "last")])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_to_onnx_exports_a_concat_of_the_poolings(order, bidirectional):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m = concat_model(order, seed=14, bidirectional=bidirectional, H=4)
    proto = rc.io.to_onnx(m, None, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    assert any(n.op_type == "Concat" and n.name == "concat_pool" for n in proto.graph.node)
    X, lengths = randn32((4, 6, 6), seed=15), np.array([6, 1, 4, 3], np.int32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": X, "lengths": lengths})[0]
    np.testing.assert_allclose(got, _torch_twin(m, order)(X, lengths.astype(np.int64)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_steps_the_running_parts_and_runs_the_pooled_ones(tmp_path, precision):
    e = rc.compile(concat_model(("max", "last", "mean"), seed=19), precision=precision)
    X = randn32((6, 6), seed=20)
    out = exported_outputs(tmp_path, e.data, X, "concat")
    assert out["run"].shape == (1, 3) and out["step"].shape == (6, 3)
    want = np.concatenate([e.run(X[None, :t + 1]) for t in range(6)])
    np.testing.assert_allclose(out["step"], want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["run"], want[-1:], rtol=0, atol=1e-6)
