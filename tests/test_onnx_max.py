"""Max pooling over time through ONNX: ``ReduceMax`` over the time axis and ``GlobalMaxPool`` of
channels-first data imported as ``rc.nn.MaskedMax`` (the chain importer, the whole-graph importer's
NumPy interpreter and the lowering ``rc.compile`` runs), and ``rc.io.to_onnx`` of ``MaskedMax``.

Independent reference: onnxruntime, on graphs written by ``torch.onnx.export`` (``x.max(1).values``,
``torch.amax``, ``F.adaptive_max_pool1d``) and by hand (opsets 13 and 18: ``axes`` an attribute, then
an input), with static and dynamic axes, batch 1 and 3. What stays refused is refused naming the node.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from _helpers import onnx_export_matches_numpy, q8_check, randn32, torch_onnx_export

import rnncore as rc
from rnncore.io.onnx_import import onnx_run
from rnncore.io.onnx_import._lower import lower_graph

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

F_IN, H, O = 4, 5, 3


def max_net(kind: str, cell: str = "GRU", bidirectional: bool = False, seed: int = 0):
    """``cell`` (batch first) -> a max over time written as ``kind`` -> ``Linear``; for
    torch_onnx_export."""
    import torch
    import torch.nn.functional as F

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.rnn = getattr(torch.nn, cell)(F_IN, H, batch_first=True, bidirectional=bidirectional)
            self.fc = torch.nn.Linear(H * (2 if bidirectional else 1), O)

        def forward(self, x):
            y = self.rnn(x)[0]
            if kind == "max":
                p = y.max(1).values
            elif kind == "amax":
                p = torch.amax(y, 1)
            elif kind == "amax_cf":          # over the last axis of channels-first (B, F, T)
                p = torch.amax(y.transpose(1, 2), 2)
            elif kind == "keepdim":
                p = y.max(1, keepdim=True).values.squeeze(1)
            elif kind == "adaptive":
                p = F.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(-1)
            elif kind == "adaptive_flatten":
                p = F.adaptive_max_pool1d(y.transpose(1, 2), 1).flatten(1)
            else:                            # adaptive_view
                p = F.adaptive_max_pool1d(y.transpose(1, 2), 1).view(y.shape[0], -1)
            return self.fc(p)

    return Net().eval()


def ort_run(data: bytes, feeds: dict) -> np.ndarray:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def check_against_ort(data: bytes, shapes=((1, 6), (3, 9)), engine_path: bool = True) -> list:
    """``from_onnx`` (the chain or the whole graph) and the lowering ``rc.compile`` runs equal
    onnxruntime on ``(B, T, F_IN)`` inputs of ``shapes``; returns the lowered model's layer names."""
    model = rc.io.from_onnx(data)
    graph = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    layers = None
    if engine_path:
        seq, info = lower_graph(graph)
        layers = [type(m).__name__ for m in seq]
        assert "MaskedMax" in layers and info["output_layout"] == "BF"
    for k, (B, T) in enumerate(shapes):
        X = randn32((B, T, F_IN), seed=k + 5)
        want = ort_run(data, {"x": X})
        assert np.abs(want).max() > 0.05
        got = onnx_run(model, {"x": X})["y"] if hasattr(model, "onnx_io") else model.run({"x": X})["y"]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(graph.run({"x": X})["y"], want, rtol=0, atol=2e-6)
        if engine_path:
            np.testing.assert_allclose(seq.forward(X.astype(np.float64)), want, rtol=0, atol=2e-6)
    return layers


# -- torch.onnx.export ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "amax", "amax_cf", "keepdim", "adaptive", "adaptive_flatten",
                                  "adaptive_view"])
def test_torch_exports_with_dynamic_axes(kind):
    data = torch_onnx_export("test_onnx_max:max_net", (kind,), (2, 7, F_IN), {0: "B", 1: "T"},
                             dynamo=False, opset=17)
    assert check_against_ort(data) == ["GRU", "MaskedMax", "Linear"]


def test_torch_dynamo_export_of_adaptive_max_pool():
    """The dynamo exporter (opset 18) writes ``adaptive_max_pool1d(y, 1)`` as ``Unsqueeze`` to
    ``(B, F, 1, T)``, ``ReduceMax`` over the last two axes (keepdims=1) and two ``Squeeze``."""
    data = torch_onnx_export("test_onnx_max:max_net", ("adaptive",), (2, 7, F_IN), {0: "B", 1: "T"},
                             dynamo=True, opset=18)
    import onnx

    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert "Unsqueeze" in ops and "ReduceMax" in ops
    assert check_against_ort(data) == ["GRU", "MaskedMax", "Linear"]


@pytest.mark.parametrize("cell,bidirectional", [("LSTM", False), ("GRU", True), ("RNN", True)])
def test_torch_exports_of_other_cells(cell, bidirectional):
    data = torch_onnx_export("test_onnx_max:max_net", ("max", cell, bidirectional), (2, 7, F_IN),
                             {0: "B", 1: "T"}, dynamo=False, opset=17)
    assert check_against_ort(data) == [cell, "MaskedMax", "Linear"]
    model = rc.io.from_onnx(data)
    assert [type(m).__name__ for m in model] == [cell, "MaskedMax", "Linear"]    # the chain importer


@pytest.mark.parametrize("kind", ["max", "amax", "keepdim"])
def test_torch_static_exports_run_at_their_shape(kind):
    """A static export (batch 3, time 9) is the same graph: at its own shape it equals onnxruntime."""
    data = torch_onnx_export("test_onnx_max:max_net", (kind,), (3, 9, F_IN), {}, dynamo=False, opset=17)
    assert check_against_ort(data, shapes=((3, 9),)) == ["GRU", "MaskedMax", "Linear"]


def test_torch_static_adaptive_max_pool_is_refused_for_the_engine():
    """torch writes ``adaptive_max_pool1d(y, 1)`` on a fixed time axis as a ``MaxPool`` whose kernel is
    that axis: a max over time at that length only. The NumPy graph runs it; the lowering refuses it
    naming the node and the dynamic export."""
    data = torch_onnx_export("test_onnx_max:max_net", ("adaptive",), (3, 9, F_IN), {}, dynamo=False,
                             opset=17)
    check_against_ort(data, shapes=((3, 9),), engine_path=False)
    g = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    with pytest.raises(ValueError, match=r"node '/MaxPool' \(MaxPool\) is a convolution or pooling over time "
                                         r"after a recurrent layer.*adaptive_max_pool1d.*dynamic time axis"):
        lower_graph(g)


# -- hand-built graphs ---------------------------------------------------------------------------------
def recurrent_graph(opset: int, pool: str, *, layout: int = 0, cell: str = "GRU", D: int = 1,
                    keepdims: int = 0, axes=None, dynamic: bool = True, lens: bool = False,
                    relu_in: bool = False, head: bool = True, seed: int = 1):
    """x -> [Relu] -> ``cell`` node (``D`` directions) -> its output as ``(T, B, D*H)`` -> ``pool`` ->
    ``Gemm`` -> y; ``layout`` 1: the data is batch-first ``(B, T, .)``, transposed around the node.

    ``pool``: ``"reduce"`` (ReduceMax over ``axes``, default the time axis, ``keepdims``; with
    keepdims=1 a Squeeze of it follows), ``"reduce_cf"`` (Transpose to (B, D*H, T), ReduceMax over
    axis 2), ``"global"`` (Transpose to (B, D*H, T), GlobalMaxPool, Flatten), ``"global_squeeze"``
    (... Squeeze of axis 2), ``"argmax"`` (ArgMax over time, Cast, Gemm), ``"to_output"`` (ReduceMax,
    the output); ``head`` False: the pooled tensor is the output (no Gemm)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[cell]
    W = (rng.standard_normal((D, G * H, F_IN)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((D, G * H, H)) * 0.5).astype(np.float32)
    Bv = (rng.standard_normal((D, 2 * G * H)) * 0.2).astype(np.float32)
    Wf = rng.standard_normal((O, D * H)).astype(np.float32)
    bf = rng.standard_normal(O).astype(np.float32)
    inits = [numpy_helper.from_array(v, n)
             for v, n in ((W, "W"), (R, "R"), (Bv, "B"), (Wf, "Wf"), (bf, "bf"))]
    nodes = []

    def ints(name, *v):
        inits.append(numpy_helper.from_array(np.array(v, np.int64), name))
        return name

    x = "x"
    if relu_in:
        nodes.append(helper.make_node("Relu", ["x"], ["xr"], name="relu_in"))
        x = "xr"
    if layout == 1:       # (B, T, F) data around the node (onnxruntime runs layout=0 nodes only)
        nodes.append(helper.make_node("Transpose", [x], ["xt"], name="to_time_major", perm=[1, 0, 2]))
        x = "xt"
    ins = [x, "W", "R", "B"] + (["lens"] if lens else [])
    nodes.append(helper.make_node(cell, ins, ["Y"], name="rnn", hidden_size=H,
                                  direction="bidirectional" if D == 2 else "forward"))
    # Y (T, D, B, H) -> (T, B, D, H) or (B, T, D, H) -> (T, B, D*H) or (B, T, D*H)
    nodes.append(helper.make_node("Transpose", ["Y"], ["Yt"], name="y_dirs_last",
                                  perm=[0, 2, 1, 3] if layout == 0 else [2, 0, 1, 3]))
    nodes.append(helper.make_node("Reshape", ["Yt", ints("merge", 0, 0, -1)], ["seq"], name="merge"))
    t_axis = 0 if layout == 0 else 1
    perm_cf = [1, 2, 0] if layout == 0 else [0, 2, 1]

    def reduce_max(inp, out, ax, keep, name="max_time"):
        if opset < 18:
            nodes.append(helper.make_node("ReduceMax", [inp], [out], name=name, axes=ax, keepdims=keep))
        else:
            nodes.append(helper.make_node("ReduceMax", [inp, ints("max_axes", *ax)], [out], name=name,
                                          keepdims=keep))

    if pool == "reduce":
        ax = [t_axis] if axes is None else axes
        reduce_max("seq", "pooled" if not keepdims else "kept", ax, keepdims)
        if keepdims:
            nodes.append(helper.make_node("Squeeze", ["kept", ints("sq", t_axis)], ["pooled"],
                                          name="squeeze"))
    elif pool == "reduce_cf":
        nodes.append(helper.make_node("Transpose", ["seq"], ["cf"], name="to_cf", perm=perm_cf))
        reduce_max("cf", "pooled", [2] if axes is None else axes, 0)
    elif pool in ("global", "global_squeeze"):
        nodes.append(helper.make_node("Transpose", ["seq"], ["cf"], name="to_cf", perm=perm_cf))
        nodes.append(helper.make_node("GlobalMaxPool", ["cf"], ["gp"], name="global_max"))
        if pool == "global":
            nodes.append(helper.make_node("Flatten", ["gp"], ["pooled"], name="flatten", axis=1))
        else:
            nodes.append(helper.make_node("Squeeze", ["gp", ints("sq", 2)], ["pooled"], name="squeeze"))
    elif pool == "global_features":      # GlobalMaxPool of (T, B, D*H): over the features
        nodes.append(helper.make_node("GlobalMaxPool", ["seq"], ["pooled"], name="global_max"))
    elif pool == "argmax":
        nodes.append(helper.make_node("ArgMax", ["seq"], ["am"], name="argmax_time", axis=t_axis, keepdims=0))
        nodes.append(helper.make_node("Cast", ["am"], ["pooled"], name="cast", to=TensorProto.FLOAT))
    else:                 # the pooled value straight to the output
        reduce_max("seq", "y", [t_axis] if axes is None else axes, keepdims)
    if pool in ("reduce", "reduce_cf", "global", "global_squeeze", "argmax", "global_features"):
        nodes.append(helper.make_node("Gemm", ["pooled", "Wf", "bf"], ["y"], name="head", transB=1) if head
                     else helper.make_node("Identity", ["pooled"], ["y"], name="out"))
    B, T = ("B", "T") if dynamic else (3, 9)
    shape = [T, B, F_IN] if layout == 0 else [B, T, F_IN]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    if lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [B]))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "max_over_time", inputs, [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 18 else 9
    return m.SerializeToString()


def check_graph(data: bytes, layout: int, shapes=((1, 6), (3, 9))) -> None:
    """from_onnx (chain or whole graph) and the lowered model equal onnxruntime."""
    model = rc.io.from_onnx(data)
    graph = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    seq, info = lower_graph(graph)
    assert [type(m).__name__ for m in seq][-2:] == ["MaskedMax", "Linear"]
    assert info["input_layout"] == ("TBF" if layout == 0 else "BTF") and info["output_layout"] == "BF"
    for k, (B, T) in enumerate(shapes):
        X = randn32((B, T, F_IN), seed=k + 11)
        Xo = X.transpose(1, 0, 2).copy() if layout == 0 else X
        want = ort_run(data, {"x": Xo})
        assert np.abs(want).max() > 0.05
        got = onnx_run(model, {"x": Xo})["y"] if hasattr(model, "onnx_io") else model.run({"x": Xo})["y"]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(graph.run({"x": Xo})["y"], want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(seq.forward(X.astype(np.float64)), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("pool,keepdims", [("reduce", 0), ("reduce", 1), ("reduce_cf", 0), ("global", 1),
                                           ("global_squeeze", 1)])
def test_hand_built_max_over_time(opset, layout, pool, keepdims):
    data = recurrent_graph(opset, pool, layout=layout, keepdims=keepdims)
    check_graph(data, layout)


@pytest.mark.parametrize("cell,D", [("LSTM", 2), ("RNN", 1), ("GRU", 2)])
def test_hand_built_cells_directions_and_a_relu_before(cell, D):
    """A Relu on the input makes the graph no chain: the whole-graph importer and its lowering."""
    for relu in (False, True):
        check_graph(recurrent_graph(18, "reduce", cell=cell, D=D, relu_in=relu, seed=3), 0)


def test_static_hand_built_graph():
    check_graph(recurrent_graph(13, "global", dynamic=False), 0, shapes=((3, 9),))
    check_graph(recurrent_graph(18, "reduce", layout=1, dynamic=False), 1, shapes=((3, 9),))


# -- refusals --------------------------------------------------------------------------------------------
def refusals(data: bytes):
    """(the chain importer's refusal, the lowering's refusal) of a graph the whole-graph importer runs
    as onnxruntime does."""
    graph = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    X = randn32((2, 5, F_IN), seed=2).transpose(1, 0, 2).copy()
    np.testing.assert_allclose(graph.run({"x": X})["y"], ort_run(data, {"x": X}), rtol=0, atol=2e-6)
    with pytest.raises(ValueError) as chain:
        rc.io.from_onnx(data, graph=False)
    with pytest.raises(ValueError) as lowered:
        lower_graph(graph)
    return str(chain.value), str(lowered.value)


@pytest.mark.parametrize("opset", [13, 18])
def test_other_axes_are_refused_naming_the_node(opset):
    for axes in ([2], [0, 2], [1]):
        why = re.escape(f"over axes {axes}")
        chain, lowered = refusals(recurrent_graph(opset, "reduce", axes=axes, head=False))
        assert "node 'max_time' (ReduceMax)" in chain and "the time axis 'T' alone" in chain
        assert re.search(f"node 'max_time' \\(ReduceMax\\) takes the maximum {why}", lowered), lowered


def test_channels_first_other_axes_and_global_max_of_features_are_refused():
    chain, lowered = refusals(recurrent_graph(13, "reduce_cf", axes=[1], head=False))
    assert "node 'max_time' (ReduceMax)" in chain and "node 'max_time' (ReduceMax) takes the maximum over " \
        "axes [1]" in lowered
    chain, lowered = refusals(recurrent_graph(13, "global_features", head=False))
    assert "node 'global_max' (GlobalMaxPool): pools data with axes ('T', 'B', 'F')" in chain
    assert "node 'global_max' (GlobalMaxPool) pools data of shape (X0, X1, 5): expected channels-first" \
        in lowered


def test_noop_with_empty_axes_is_refused():
    import onnx
    from onnx import helper

    m = onnx.load_from_string(recurrent_graph(18, "reduce"))
    node = next(n for n in m.graph.node if n.op_type == "ReduceMax")
    node.attribute.append(helper.make_attribute("noop_with_empty_axes", 1))
    chain, lowered = refusals(m.SerializeToString())
    assert "node 'max_time' (ReduceMax): noop_with_empty_axes=1" in chain
    assert "node 'max_time' (ReduceMax) has noop_with_empty_axes=1" in lowered


@pytest.mark.parametrize("opset", [13, 18])
def test_keepdims_to_the_output_is_refused(opset):
    chain, lowered = refusals(recurrent_graph(opset, "to_output", keepdims=1))
    assert "node 'max_time' (ReduceMax/GlobalMaxPool) keeps the time axis (keepdims) to the output 'y'" \
        in chain
    assert "node 'max_time' (ReduceMax) keeps the time axis it pools (keepdims=1) to the output 'y'" \
        in lowered
    # keepdims=0 to the output: (B, D*H), the engine's pooled output
    data = recurrent_graph(opset, "to_output", keepdims=0)
    X = randn32((3, 6, F_IN), seed=4).transpose(1, 0, 2).copy()
    seq, info = lower_graph(rc.io.from_onnx(data, inputs=["x"], outputs=["y"]))
    np.testing.assert_allclose(seq.forward(X.transpose(1, 0, 2).astype(np.float64)),
                               ort_run(data, {"x": X}), rtol=0, atol=2e-6)


def test_argmax_over_time_is_refused_by_name():
    data = recurrent_graph(13, "argmax")
    with pytest.raises(ValueError, match=r"node 'argmax_time' \(ArgMax\)"):
        rc.io.from_onnx(data)


def test_max_over_outputs_with_sequence_lens_is_refused_and_the_graph_runs_as_onnxruntime():
    """ONNX's recurrent nodes write zeros past each ``sequence_lens`` length, and ReduceMax takes them:
    not rnncore's masked max (the engine's lengths: a row of length L is the graph on its first L
    steps). The chain importer refuses it naming the node; the graph imports and runs as onnxruntime."""
    data = recurrent_graph(13, "reduce", lens=True)
    with pytest.raises(ValueError, match=r"node 'max_time' \(ReduceMax/GlobalMaxPool\): the recurrent "
                                         r"nodes read sequence_lens 'lens', and the maximum over time takes "
                                         r"every step"):
        rc.io.from_onnx(data, graph=False)
    g = rc.io.from_onnx(data)
    X, lens = randn32((6, 3, F_IN), seed=8), np.array([6, 2, 4], np.int32)
    np.testing.assert_allclose(onnx_run(g, {"x": X, "lens": lens})["y"],
                               ort_run(data, {"x": X, "lens": lens}), rtol=0, atol=2e-6)


def test_the_graph_interpreter_runs_global_max_pool_of_any_rank():
    from onnx import TensorProto, helper

    node = helper.make_node("GlobalMaxPool", ["x"], ["y"], name="gmp")
    for shape in ((2, 3, 5), (2, 3, 4, 5)):
        g = helper.make_graph([node], "gmp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
        X = randn32(shape, seed=1)
        got = rc.io.from_onnx(data, inputs=["x"], outputs=["y"]).run({"x": X})["y"]
        np.testing.assert_array_equal(got, ort_run(data, {"x": X}))



# -- rc.compile: the C engine against onnxruntime ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "amax_cf", "adaptive_flatten", "adaptive_view"])
@pytest.mark.parametrize("cell,bidirectional", [("GRU", False), ("LSTM", True)])
def test_compiled_torch_export_matches_onnxruntime_with_per_row_lengths(kind, cell, bidirectional):
    """f32 at batch 1 and 3 against onnxruntime; with per-row lengths a row of length ``L`` equals
    onnxruntime on its first ``L`` steps; q8 equals the NumPy q8 spec on every ISA path."""
    data = torch_onnx_export("test_onnx_max:max_net", (kind, cell, bidirectional), (2, 7, F_IN),
                             {0: "B", 1: "T"}, dynamo=False, opset=17)
    eng = rc.compile(rc.io.from_onnx(data))
    assert "masked_max" in eng.describe()
    for k, (B, T) in enumerate(((1, 6), (3, 9))):
        X = randn32((B, T, F_IN), seed=k + 21)
        np.testing.assert_allclose(eng.run(X), ort_run(data, {"x": X}), rtol=0, atol=1e-5)
    X, lengths = randn32((3, 10, F_IN), seed=30), np.array([10, 4, 1])
    got = eng.run(X, lengths)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(got[b:b + 1], ort_run(data, {"x": X[b:b + 1, :L]}), rtol=0, atol=1e-5)
    q8_check(rc.compile(rc.io.from_onnx(data), precision="q8"), eng, X, lengths)


@pytest.mark.parametrize("pool,relu_in", [("global", False), ("reduce_cf", True), ("reduce", True)])
def test_compiled_hand_built_graph_matches_onnxruntime(pool, relu_in):
    """Time-major graphs (a Relu before the node makes them an OnnxGraph: rc.compile's lowering)."""
    data = recurrent_graph(18, pool, cell="LSTM", D=2, relu_in=relu_in, seed=4)
    model = rc.io.from_onnx(data)
    eng = rc.compile(model)
    if relu_in:
        assert type(model).__name__ == "OnnxGraph" and eng.graph_io["input_layout"] == "TBF"
    X, lengths = randn32((3, 8, F_IN), seed=31), np.array([8, 3, 1])
    want = ort_run(data, {"x": X.transpose(1, 0, 2).copy()})
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    got = eng.run(X, lengths)
    for b, L in enumerate(lengths):
        want = ort_run(data, {"x": X[b:b + 1, :L].transpose(1, 0, 2).copy()})
        np.testing.assert_allclose(got[b:b + 1], want, rtol=0, atol=1e-5)
    q8_check(rc.compile(model, precision="q8"), eng, X, lengths)


# -- to_onnx ----------------------------------------------------------------------------------------------
def max_model(cell=None, post=False, mlp=False, bidirectional=False, seed=0):
    nn = rc.nn
    cell = cell or nn.GRU
    D = 2 if bidirectional else 1
    mods = [cell(6, 8, bidirectional=bidirectional, seed=seed)]
    mods += [nn.Linear(8 * D, 8 * D, seed=seed + 1), nn.ReLU()] if post else []
    mods += [nn.MaskedMax()]
    mods += [nn.Linear(8 * D, 8, seed=seed + 2), nn.Tanh()] if mlp else []
    return nn.Sequential(*mods, nn.Linear(8 if mlp else 8 * D, 3, seed=seed + 3))


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
@pytest.mark.parametrize("post,mlp,bidirectional", [(False, False, False), (True, True, False),
                                                    (False, False, True)])
def test_to_onnx_of_masked_max_matches_the_numpy_model(cell, post, mlp, bidirectional):
    """The module and its f32 .rnc file, with lengths (steps past a length at -inf), by onnxruntime."""
    onnx_export_matches_numpy(max_model(getattr(rc.nn, cell), post, mlp, bidirectional))


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("post", [False, True])
def test_to_onnx_round_trip_without_lengths(opset, post):
    """to_onnx writes ReduceMax over time (axes an attribute at opset 17, an input at 18); from_onnx
    reads it back (the chain, or with per-step layers the whole graph, which rc.compile lowers) and
    the model, onnxruntime and the compiled import agree."""
    m = max_model(rc.nn.LSTM, post=post)
    m.load_state_dict({k: np.asarray(v, np.float32).astype(np.float64) for k, v in m.state_dict().items()})
    proto = rc.io.to_onnx(m, None, opset=opset)
    data = proto.SerializeToString()
    assert [n.op_type for n in proto.graph.node].count("ReduceMax") == 1
    back = rc.io.from_onnx(data)
    X = randn32((3, 7, 6), seed=9)
    want = m.forward(X.astype(np.float64))
    if post:
        assert type(back).__name__ == "OnnxGraph"
        assert [type(x).__name__ for x in lower_graph(back)[0]] == ["LSTM", "Linear", "ReLU", "MaskedMax",
                                                                     "Linear"]
        got = back.run({"x": X})["y"]
    else:
        assert [type(x).__name__ for x in back] == ["LSTM", "MaskedMax", "Linear"]
        got = back.forward(X.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ort_run(data, {"x": X}), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rc.compile(back).run(X), want, rtol=1e-5, atol=1e-5)
