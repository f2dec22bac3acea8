"""``rc.io.to_onnx``: exported models run in onnxruntime and give the NumPy references' outputs.

Every model's weights are float32 values (the exported file stores float32), so the float64
references compute exactly the exported network and the only differences left are
onnxruntime's float32 arithmetic: each step's pre-activation is a dot product of at most
``I + H <= 24`` terms (float32 rounding ``u = 6e-8``, so a relative error of a few ``1e-7``)
and its sigmoid/tanh approximations (a few ulp); the recurrences here are contractive (weights
in ``±1/sqrt(H)``), so over ``T <= 7`` steps the error stays below ``1e-6`` of the values'
scale. ``rtol=1e-5, atol=1e-6`` allows that with a margin: over this file's grid and 200
random models the largest difference was 3.2e-7 and no value used more than 20% of the
tolerance (onnxruntime 1.32, AMD EPYC Zen 4; ``python tests/test_onnx_export.py`` measures it).

Round trips: ``to_onnx`` -> ``from_onnx`` gives back the same weights bit for bit and the same
outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnncore as rc
from rnncore.quant.reference import float_forward
from rnncore.spec import LinearSpec, ModelSpec, spec_from_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-5, 1e-6
CELLS = ("rnn_tanh", "rnn_relu", "gru", "gru_before", "lstm")


def _module(cell: str, i: int, h: int, layers: int, bidir: bool, seed: int):
    kw = dict(num_layers=layers, bidirectional=bidir, seed=seed)
    if cell.startswith("rnn"):
        return rc.nn.RNN(i, h, nonlinearity=cell[4:], **kw)
    if cell.startswith("gru"):
        return rc.nn.GRU(i, h, reset_after=cell == "gru", **kw)
    return rc.nn.LSTM(i, h, **kw)


def _f32_weights(m):
    """Round every parameter to float32 (what the file stores), kept in float64."""
    m.load_state_dict({k: np.asarray(v, np.float32).astype(np.float64) for k, v in m.state_dict().items()})
    return m


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _states(rng, spec: ModelSpec, B: int) -> list:
    """Random initial state, one entry per (layer, direction): h (B, H) or (h, c)."""
    out = []
    for ls in spec.layers:
        for _ in range(ls.num_directions):
            h = rng.standard_normal((B, ls.hidden_size)) * 0.5
            out.append((h, rng.standard_normal((B, ls.hidden_size)) * 0.5) if ls.cell == "lstm" else h)
    return out


def _uniform(spec: ModelSpec) -> bool:
    return (len({ls.hidden_size for ls in spec.layers}) == 1
            and len({ls.cell == "lstm" for ls in spec.layers}) == 1)


def _state_feeds(spec: ModelSpec, entries: list, prefix: str) -> dict:
    """Entries (per layer and direction) as the graph's state tensors ``h0``/``c0`` (or
    ``h0_l{k}``...), or the final states as ``h_n``/``c_n`` for comparison."""
    h = [e[0] if isinstance(e, tuple) else e for e in entries]
    c = [e[1] if isinstance(e, tuple) else None for e in entries]
    out, k = {}, 0
    if _uniform(spec):
        out[f"h{prefix}"] = np.stack(h)
        if spec.layers[0].cell == "lstm":
            out[f"c{prefix}"] = np.stack(c)
        return out
    for li, ls in enumerate(spec.layers):
        D = ls.num_directions
        out[f"h{prefix}_l{li}"] = np.stack(h[k:k + D])
        if ls.cell == "lstm":
            out[f"c{prefix}_l{li}"] = np.stack(c[k:k + D])
        k += D
    return out


def _check(spec: ModelSpec, *, lengths: bool, state: bool, rng, B=5, T=7, zero_length=True, module=None,
           opset=None):
    """Export, check the file, run it in onnxruntime and compare with the references."""
    kw = {} if opset is None else {"opset": opset}
    proto = rc.io.to_onnx(module if module is not None else spec, None, lengths=lengths,
                          initial_state=state, **kw)
    onnx.checker.check_model(proto, full_check=True)
    if spec.embedding is not None:
        X = rng.integers(0, spec.embedding.shape[0], (B, T))
        feeds = {"tokens": X.astype(np.int64)}
    else:
        X = rng.standard_normal((B, T, spec.input_size))
        X = X.astype(np.float32).astype(np.float64)
        feeds = {"x": X.astype(np.float32)}
    L = None
    if lengths:
        L = rng.integers(0 if zero_length else 1, T + 1, B)
        L[0] = T                              # the full length and (with zero_length) an empty one
        if zero_length:
            L[1] = 0
        feeds["lengths"] = L.astype(np.int32)
    S = None
    if state:
        S = _states(rng, spec, B)
        S = [tuple(np.float32(a).astype(np.float64) for a in e) if isinstance(e, tuple)
             else e.astype(np.float32).astype(np.float64) for e in S]
        feeds.update({k: v.astype(np.float32) for k, v in _state_feeds(spec, S, "0").items()})
    names = [o.name for o in proto.graph.output]
    got = dict(zip(names, _session(proto).run(None, feeds), strict=True))
    y, final = float_forward(spec, X, L, S)
    np.testing.assert_allclose(got["y"], y, rtol=RTOL, atol=ATOL)
    if state:
        for k, v in _state_feeds(spec, final, "_n").items():
            np.testing.assert_allclose(got[k], v, rtol=RTOL, atol=ATOL, err_msg=k)
    else:
        assert names == ["y"]
    if module is not None and (L is None or L.min() >= 1):
        # the rc.nn module's own forward (it takes lengths >= 1), the model users train
        mstate = None
        if S is not None:
            mstate, k = [], 0
            for m in module.recurrent_modules:
                n = m.num_layers * (2 if m.bidirectional else 1)
                part = S[k:k + n]
                k += n
                mstate.append((np.stack([e[0] for e in part]), np.stack([e[1] for e in part]))
                              if isinstance(part[0], tuple) else np.stack(part))
        ym = module.forward(X, lengths=L, state=mstate)
        np.testing.assert_allclose(got["y"], ym, rtol=RTOL, atol=ATOL)
    return proto, got, feeds


# -- every cell, depth, direction, with/without lengths and states -----------------------------
@pytest.mark.parametrize("state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_stack_matches_reference(cell, layers, bidir, lengths, state):
    rng = np.random.default_rng([CELLS.index(cell), layers, bidir, lengths, state])
    layer = _module(cell, 4, 6, layers, bidir, seed=int(rng.integers(1 << 30)))
    model = rc.nn.Sequential(_f32_weights(layer))
    _check(spec_from_model(model), lengths=lengths, state=state, rng=rng)
    _check(spec_from_model(model), lengths=lengths, state=state, rng=rng, zero_length=False, module=model)


def test_bare_layer_and_its_node():
    """A bare rc.nn.GRU exports as one GRU node with the gate order and the GRU form of ONNX."""
    gru = _f32_weights(rc.nn.GRU(3, 5, reset_after=False, seed=3))
    proto = rc.io.to_onnx(gru, None)
    node = next(n for n in proto.graph.node if n.op_type == "GRU")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["linear_before_reset"] == 0 and attrs["hidden_size"] == 5
    W = onnx.numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == node.input[1]))
    w = gru.params["weight_ih_l0"]
    # ONNX gate blocks z, r, h against PyTorch's r, z, n
    np.testing.assert_array_equal(W[0], np.concatenate([w[5:10], w[0:5], w[10:15]]).astype(np.float32))
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    (y,) = _session(proto).run(None, {"x": x})
    np.testing.assert_allclose(y, gru.forward(x.astype(np.float64))[0], rtol=RTOL, atol=ATOL)


def test_lstm_gate_order():
    lstm = _f32_weights(rc.nn.LSTM(2, 3, seed=4))
    proto = rc.io.to_onnx(lstm, None)
    W = onnx.numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "layer0.W"))[0]
    i, f, g, o = np.split(lstm.params["weight_ih_l0"], 4)
    np.testing.assert_array_equal(W, np.concatenate([i, o, f, g]).astype(np.float32))   # ONNX i, o, f, c


# -- whole models: embedding, pooling, heads, mixed stacks (random) -----------------------------
def _random_model(seed: int):
    """A random Sequential / ModelSpec: [Embedding] + 1-2 recurrent modules + [LastStep] + [Linear]
    (+ a head activation in the spec)."""
    rng = np.random.default_rng(seed)
    mods, size = [], int(rng.integers(2, 6))
    if rng.random() < 0.4:
        mods.append(rc.nn.Embedding(int(rng.integers(3, 12)), size, seed=seed))
    for _ in range(int(rng.integers(1, 3))):
        cell = CELLS[int(rng.integers(len(CELLS)))]
        h, bidir, n = int(rng.integers(2, 8)), bool(rng.random() < 0.5), int(rng.integers(1, 3))
        mods.append(_module(cell, size, h, n, bidir, seed=int(rng.integers(1 << 30))))
        size = h * (2 if bidir else 1)
    last = rng.random() < 0.6
    if last:
        mods.append(rc.nn.LastStep(bidirectional=bool(rng.random() < 0.5) and size % 2 == 0))
    head = rng.random() < 0.7
    if head:
        mods.append(rc.nn.Linear(size, int(rng.integers(1, 6)), bias=bool(rng.random() < 0.8),
                                 seed=int(rng.integers(1 << 30))))
    model = rc.nn.Sequential(*[_f32_weights(m) for m in mods])
    spec = spec_from_model(model)
    act = str(rng.choice(["none", "relu", "sigmoid", "tanh", "softmax"])) if head else "none"
    spec.head = None if spec.head is None else LinearSpec(spec.head.weight, spec.head.bias, act)
    return model, spec, rng


@pytest.mark.parametrize("seed", range(60))
def test_random_models_match_reference(seed):
    model, spec, rng = _random_model(seed)
    lengths, state = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    _check(spec, lengths=lengths, state=state, rng=rng)
    if spec.head is None or spec.head.activation == "none":
        _check(spec, lengths=lengths, state=state, rng=rng, zero_length=False, module=model)


@pytest.mark.parametrize("act", ["none", "relu", "sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("pool", ["per_step", "last_step"])
def test_head_activations(act, pool):
    rng = np.random.default_rng(["none", "relu", "sigmoid", "tanh", "softmax"].index(act))
    pooling = [rc.nn.LastStep(True)] if pool == "last_step" else []
    mods = [rc.nn.GRU(3, 6, bidirectional=True, seed=1)] + pooling + [rc.nn.Linear(12, 4, seed=2)]
    model = rc.nn.Sequential(*[_f32_weights(m) for m in mods])
    spec = spec_from_model(model)
    spec.head.activation = act
    spec.head.bias = spec.head.bias * 4          # make the head's bias matter past the lengths
    proto, _, _ = _check(spec, lengths=True, state=False, rng=rng)
    ops = [n.op_type for n in proto.graph.node]
    want = {"none": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}[act]
    assert want is None or want in ops


@pytest.mark.parametrize("opset", [14, 17, 21])
def test_opsets(opset):
    model, spec, rng = _random_model(7)
    proto, _, _ = _check(spec, lengths=True, state=True, rng=rng, opset=opset)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))


def test_dynamic_batch_and_time_and_file(tmp_path):
    lstm = _f32_weights(rc.nn.LSTM(3, 4, num_layers=2, seed=5))
    path = tmp_path / "m.onnx"
    rc.io.to_onnx(lstm, path, initial_state=True)
    proto = onnx.load(str(path))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
    assert [i.name for i in proto.graph.input] == ["x", "h0", "c0"]
    assert dims == [["batch", "time", 3], [2, "batch", 4], [2, "batch", 4]]
    assert [o.name for o in proto.graph.output] == ["y", "h_n", "c_n"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for B, T in ((1, 1), (3, 9), (8, 2)):
        x = rng.standard_normal((B, T, 3)).astype(np.float32)
        z = np.zeros((2, B, 4), np.float32)
        y, h, c = sess.run(None, {"x": x, "h0": z, "c0": z})
        ry, (rh, rc_) = lstm.forward(x.astype(np.float64))
        np.testing.assert_allclose(y, ry, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(h, rh, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(c, rc_, rtol=RTOL, atol=ATOL)


def test_streaming_through_final_state():
    """h_n fed back as h0 continues the sequence: two halves equal the whole."""
    gru = _f32_weights(rc.nn.GRU(3, 5, num_layers=2, seed=6))
    sess = _session(rc.io.to_onnx(gru, None, initial_state=True))
    x = np.random.default_rng(1).standard_normal((2, 8, 3)).astype(np.float32)
    h = np.zeros((2, 2, 5), np.float32)
    y1, h = sess.run(None, {"x": x[:, :5], "h0": h})
    y2, h = sess.run(None, {"x": x[:, 5:], "h0": h})
    ry, rh = gru.forward(x.astype(np.float64))
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), ry, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(h, rh, rtol=RTOL, atol=ATOL)


# -- round trips through from_onnx ------------------------------------------------------------
def _importable(spec: ModelSpec, lengths: bool, state: bool) -> bool:
    """What rc.io.from_onnx reads back of what to_onnx writes (docs/importers.md); a final
    Softmax/Sigmoid comes back with ``strip_final_activation=True``, Relu/Tanh heads not at all."""
    if spec.head is not None and spec.head.activation in ("relu", "tanh"):
        return False
    if lengths and state:
        return False                       # Where (length-0 rows keep their state)
    if lengths and spec.head is not None and not spec.last_step:
        return False                       # Where (zeros past the lengths after the head's bias)
    if spec.last_step:
        D = spec.layers[-1].num_directions
        if spec.last_step_bidirectional != (D == 2) and (lengths or spec.last_step_bidirectional):
            return False                   # GatherND / halves of the features
    return True


@pytest.mark.parametrize("seed", range(60))
def test_round_trip_through_from_onnx(seed):
    model, spec, rng = _random_model(seed)
    lengths, state = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    # where the random model has a form from_onnx does not read, round-trip the nearest one
    if spec.head is not None and spec.head.activation in ("relu", "tanh"):
        spec.head.activation = "none"
    if spec.last_step and spec.last_step_bidirectional and spec.layers[-1].num_directions == 1:
        spec.last_step_bidirectional = False
    if not _importable(spec, lengths, state):
        lengths = state = False
    assert _importable(spec, lengths, state)
    act = "none" if spec.head is None else spec.head.activation
    proto = rc.io.to_onnx(spec, None, lengths=lengths, initial_state=state)
    back = rc.io.from_onnx(proto, strip_final_activation=act != "none")
    assert back.onnx_io.stripped == ([] if act == "none" else [{"softmax": "Softmax"}.get(act, act.title())])
    got = spec_from_model(back)
    # weights: bit for bit
    assert len(got.layers) == len(spec.layers)
    for a, b in zip(got.layers, spec.layers, strict=True):
        assert (a.cell, a.hidden_size, a.num_directions, a.reset_after if a.cell == "gru" else None) == \
            (b.cell, b.hidden_size, b.num_directions, b.reset_after if b.cell == "gru" else None)
        for wa, wb in zip(a.directions, b.directions, strict=True):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                np.testing.assert_array_equal(getattr(wa, name), getattr(wb, name))
    for x, y in ((got.embedding, spec.embedding),):
        assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))
    if spec.head is not None:
        np.testing.assert_array_equal(got.head.weight, spec.head.weight)
        want_b = np.zeros(spec.head.weight.shape[0]) if spec.head.bias is None else spec.head.bias
        np.testing.assert_array_equal(got.head.bias if got.head.bias is not None else 0 * want_b, want_b)
    # outputs: the imported model run with the ONNX feeds equals onnxruntime and the original
    from rnncore.io.onnx_import import onnx_run

    B, T = 3, 6
    X = (rng.integers(0, spec.embedding.shape[0], (B, T)) if spec.embedding is not None
         else rng.standard_normal((B, T, spec.input_size)).astype(np.float32))
    feeds = {"tokens" if spec.embedding is not None else "x": X}
    if lengths:
        feeds["lengths"] = np.array([T, 2, 5], np.int32)
    if state:
        s0 = _state_feeds(spec, _states(rng, spec, B), "0")
        feeds.update({k: v.astype(np.float32) for k, v in s0.items()})
    ref = dict(zip([o.name for o in proto.graph.output], _session(proto).run(None, feeds), strict=True))
    mine = onnx_run(back, feeds)
    if act != "none":
        from rnncore.quant.reference import _act

        mine["y"] = _act(act, mine["y"])
    for k, v in ref.items():
        np.testing.assert_allclose(mine[k], v, rtol=RTOL, atol=ATOL, err_msg=k)
    if spec.last_step and spec.head is not None:   # the pooling comes back as LastStep
        assert got.last_step and got.last_step_bidirectional == spec.last_step_bidirectional


# -- refusals -----------------------------------------------------------------------------------
def test_refuses_what_onnx_cannot_express():
    with pytest.raises(ValueError, match=r"to_onnx: LSTM has proj_size=2; the ONNX LSTM operator has no"):
        rc.io.to_onnx(rc.nn.LSTM(3, 4, proj_size=2), None)
    with pytest.raises(ValueError, match=r"to_onnx: module '0' \(LSTM\) has proj_size=2"):
        rc.io.to_onnx(rc.nn.Sequential(rc.nn.LSTM(3, 4, proj_size=2)), None)
    with pytest.raises(ValueError, match=r"to_onnx: per-step record 0 \('layer_norm', after the recurrent "
                                         r"layers\) does not export: ONNX LayerNormalization needs opset >= "
                                         r"17, got opset=16"):
        rc.io.to_onnx(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.LayerNorm(4), rc.nn.Linear(4, 2)), None,
                      opset=16)
    from rnncore.nn.extended import ExtendedRecurrent

    ext = ExtendedRecurrent("GRU", 3, 4, clip=1.0)
    with pytest.raises(ValueError, match=r"to_onnx: module '0' \(ExtendedRecurrent\) is not supported"):
        rc.io.to_onnx(rc.nn.Sequential(ext, rc.nn.LastStep()), None)
    with pytest.raises(ValueError, match=r"to_onnx: opset: expected an integer in \[14, "):
        rc.io.to_onnx(rc.nn.GRU(3, 4), None, opset=11)
    with pytest.raises(TypeError, match=r"to_onnx: lengths: expected a bool"):
        rc.io.to_onnx(rc.nn.GRU(3, 4), None, lengths="yes")
    with pytest.raises(ValueError, match=r"to_onnx: expected an rc.nn recurrent layer or Sequential, got "):
        rc.io.to_onnx(object(), None)


def test_missing_onnx_package_is_named(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"to_onnx needs the 'onnx' package"):
        rc.io.to_onnx(rc.nn.GRU(3, 4), None)


# -- the importer's side of the last-step pooling ------------------------------------------------
def _gather_last_step_graph(with_lengths: bool):
    """x -> GRU [sequence_lens] -> y (B, T, H) -> y[:, -1], written by hand."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 9, 2)).astype(np.float32)
    R = rng.standard_normal((1, 9, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["xt", "W", "R", "", "len" if with_lengths else ""], ["Y"],
                              hidden_size=3, linear_before_reset=1),
             helper.make_node("Transpose", ["Y"], ["Yb"], perm=[2, 0, 1, 3]),
             helper.make_node("Reshape", ["Yb", "shape"], ["Yf"]),
             helper.make_node("Gather", ["Yf", "last"], ["y"], axis=1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 2])]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("len", TensorProto.INT32, ["B"]))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
             numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"),
             numpy_helper.from_array(np.array(-1, np.int64), "last")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_importer_refuses_the_padded_last_step():
    """With sequence_lens, y[:, -1] is zero for the shorter sequences (onnxruntime), which is not
    rnncore's LastStep: from_onnx must refuse it rather than import a different model."""
    from rnncore.io.onnx_import import onnx_run

    x = np.random.default_rng(1).standard_normal((3, 4, 2)).astype(np.float32)
    proto = _gather_last_step_graph(True)
    y = _session(proto).run(None, {"x": x, "len": np.array([4, 2, 1], np.int32)})[0]
    assert not y[1:].any()                                  # the padding, not the last valid step
    with pytest.raises(ValueError, match=r"\(Gather\): the last time step of outputs computed with seq"):
        rc.io.from_onnx(proto, graph=False)
    # the whole-graph import runs ONNX's semantics: the padded step, zeros for the shorter ones
    g = rc.io.from_onnx(proto)
    np.testing.assert_allclose(g(x, np.array([4, 2, 1], np.int32)), y, rtol=RTOL, atol=ATOL)
    proto = _gather_last_step_graph(False)                  # without lengths it is the last step
    np.testing.assert_allclose(onnx_run(rc.io.from_onnx(proto), {"x": x})["y"],
                               _session(proto).run(None, {"x": x})[0], rtol=RTOL, atol=ATOL)


# -- model files and engines -------------------------------------------------------------------
def test_f32_rnc_file_and_engine_export(tmp_path):
    """An f32 .rnc (path, bytes) or an rc.Engine exports; onnxruntime matches the C engine."""
    from rnncore.spec import build_rnc

    model = rc.nn.Sequential(*[_f32_weights(m) for m in (
        rc.nn.Embedding(7, 4, seed=1), rc.nn.LSTM(4, 5, bidirectional=True, seed=2), rc.nn.LastStep(True),
        rc.nn.Linear(10, 3, seed=3))])
    data, spec = build_rnc(model, "f32")
    path = tmp_path / "m.rnc"
    path.write_bytes(data)
    tokens = np.random.default_rng(2).integers(0, 7, (4, 6))
    L = np.array([6, 1, 3, 5])
    want, _ = float_forward(spec, tokens, L)
    for src in (path, str(path), data):
        proto = rc.io.to_onnx(src, None, lengths=True)
        got = _session(proto).run(None, {"tokens": tokens, "lengths": L.astype(np.int32)})[0]
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    pytest.importorskip("rnncore._engine", reason="the compiled extension is not built")
    engine = rc.compile(model, precision="f32")
    proto = rc.io.to_onnx(engine, None, lengths=True)
    got = _session(proto).run(None, {"tokens": tokens, "lengths": L.astype(np.int32)})[0]
    np.testing.assert_allclose(got, engine.run(tokens, lengths=L), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"to_onnx: engine has precision 'q8'; only f32 models export"):
        rc.io.to_onnx(rc.compile(model, precision="q8"), None)
    with pytest.raises(ValueError,
                       match=r"to_onnx: model bytes: header: magic: 0x62726167, expected 0x4d434e52"):
        rc.io.to_onnx(b"garbage", None)


def test_docs_snippet_runs(tmp_path, monkeypatch, capsys):
    """The example of docs/importers.md ("Exporting to ONNX") runs on its own and agrees."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "importers.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Exporting to ONNX"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/importers.md (to_onnx)", "exec"), {"__name__": "__doc_snippet__"})
    assert float(capsys.readouterr().out.split()[-1]) < 1e-6


if __name__ == "__main__":
    # The error figures in this file's docstring: `PYTHONPATH=. python tests/test_onnx_export.py [N]`
    # runs the grid and N random models (default 200) and prints the largest differences.
    import itertools
    import sys

    worst = [0.0, 0.0]
    _assert = np.testing.assert_allclose

    def _record(a, b, rtol=0, atol=0, **kw):
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        worst[0] = max(worst[0], float(d.max(initial=0)))
        worst[1] = max(worst[1], float((d / (ATOL + RTOL * np.abs(np.asarray(b)))).max(initial=0)))
        _assert(a, b, rtol=rtol, atol=atol, **kw)

    np.testing.assert_allclose = _record
    for args in itertools.product(CELLS, [1, 2], [False, True], [False, True], [False, True]):
        test_recurrent_stack_matches_reference(*args)
    for s in range(int(sys.argv[1]) if len(sys.argv) > 1 else 200):
        test_random_models_match_reference(s)
    print(f"largest difference {worst[0]:.3g}; largest fraction of the tolerance used {worst[1]:.3g}")


def test_compiled_cell_options_and_per_step_layers_are_refused_not_dropped():
    """A compiled file whose layers carry cell options (peepholes, learned initial states, ...) or
    per-step front-end layers cannot be written as plain ONNX RNN/GRU/LSTM nodes: dropping them
    would export a different model, so to_onnx refuses, naming what it cannot write."""
    import sys
    from pathlib import Path

    from rnncore.nn.extended import ExtendedRecurrent
    sys.path.insert(0, str(Path(__file__).parent))
    from test_engine_frontend import vad_like

    with pytest.raises(ValueError, match=r"to_onnx: layer 0 \(LSTM\) has cell options \[.*'peepholes'.*\]"):
        rc.io.to_onnx(rc.compile(ExtendedRecurrent("LSTM", 4, 5, peepholes=True)), None)
    gru = rc.nn.GRU(4, 5)
    framed = r"per-step record 0 \('frame_conv1d', before the recurrent layers\) does not export: a " \
             r"convolution within each step's frame \(frame_length > 1\)"
    with pytest.raises(ValueError, match=framed):
        rc.io.to_onnx(rc.compile(vad_like()), None)
    with pytest.raises(ValueError, match=framed):
        rc.io.to_onnx(vad_like(), None)
    assert rc.io.to_onnx(rc.compile(gru), None) is not None     # a plain layer still exports
