"""Two ONNX graphs PyTorch users export every day, through ``from_onnx`` and ``rc.compile``:

* pytorch/examples ``word_language_model`` (``Embedding -> LSTM/GRU(batch_first=False) -> Linear`` on
  token ids ``(T, B)``): the embedding ``Gather`` looks the ids up along a time-major axis; the lowering
  ``rc.compile(OnnxGraph)`` runs reports ``graph_io["input_layout"] == "TBF"`` (the caller passes
  ``ids.T``) and the graph's output layout (``"TBF"``, or ``"(TB)F"`` for the example's
  ``decoded.view(-1, ntoken)``);
* ``GlobalAveragePool``: torch's ``nn.AdaptiveAvgPool1d(1)`` of channels-first recurrent output
  ``(B, F, T)`` exported with a dynamic time axis (``rc.nn.MaskedMean`` in the chain importer and the
  lowering; the mean over axes 2.. in the NumPy graph, so a 2-D squeeze-excitation block runs too).

Independent reference: onnxruntime (float32; the compiled f32 engine within 1e-5 absolute, the limit of
the other ONNX engine tests: float32 rounding of the same arithmetic in another order, measured at most
~5e-7 here); q8 equal to the NumPy q8 spec bit for bit on every ISA path of the CPU.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from _helpers import q8_check, randn32

import rnncore as rc
from rnncore.io.onnx_import import OnnxGraph

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn
F = torch.nn.functional

V, E = 20, 8


def ort_run(data: bytes, feeds: dict) -> list:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def export(net, args: tuple, inputs: list, outputs: list, axes: dict | None) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, f, input_names=inputs, output_names=outputs, dynamo=False,
                          opset_version=17, dynamic_axes=axes)
    return f.getvalue()


# -- pytorch/examples word_language_model ------------------------------------------------------------------
class RNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py ``RNNModel`` (LSTM / GRU; its code). ``merged``:
    its ``forward`` as written, ``log_softmax(decoded.view(-1, ntoken), dim=1)``; else the decoded
    ``(T, B, ntoken)`` kept in its axes."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=False, merged=False):
        super().__init__()
        self.ntoken, self.merged = ntoken, merged
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
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
        if self.merged:
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden
        return F.log_softmax(decoded, dim=-1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def wlm_export(rnn_type, nlayers, tie, dynamic, merged=False, seed=0, T=7, B=3):
    """The model exported as the example does (``(tokens, hidden)`` in, ``(y, hidden)`` out; dropout 0
    in eval), with dynamic ``T`` and ``B`` axes or static ones."""
    torch.manual_seed(seed)
    net = RNNModel(rnn_type, V, E, E if tie else 6, nlayers, 0.0, tie_weights=tie, merged=merged).eval()
    lstm = rnn_type == "LSTM"
    states = ["h0", "c0"] if lstm else ["h0"]
    finals = ["hn", "cn"] if lstm else ["hn"]
    axes = None
    if dynamic:
        axes = {"tokens": {0: "T", 1: "B"}, "y": {0: "TB"} if merged else {0: "T", 1: "B"}}
        axes.update({n: {1: "B"} for n in states + finals})
    tok = torch.zeros((T, B), dtype=torch.int64)
    data = export(net, (tok, net.init_hidden(B)), ["tokens", *states], ["y", *finals], axes)
    return data, states, net


def wlm_feeds(states, nlayers, nhid, T, B, seed, zero=False):
    g = np.random.default_rng(seed)
    feeds = {"tokens": g.integers(0, V, (T, B))}
    for n in states:
        feeds[n] = np.zeros((nlayers, B, nhid), np.float32) if zero else \
            (g.standard_normal((nlayers, B, nhid)) * 0.5).astype(np.float32)
    return feeds


@pytest.mark.parametrize("rnn_type,nlayers,tie", [("LSTM", 2, True), ("LSTM", 1, False), ("GRU", 2, False),
                                                  ("GRU", 1, True)])
def test_word_language_model_compiles_with_time_major_ids(rnn_type, nlayers, tie):
    """Dynamic ``T`` and ``B``: the whole graph (``OnnxGraph``) and the compiled engine equal
    onnxruntime at other sizes than the export's, from non-zero states; per-row lengths: a row of
    length ``L`` equals onnxruntime on its first ``L`` steps; q8 equals the NumPy q8 spec."""
    data, states, net = wlm_export(rnn_type, nlayers, tie, True, seed=nlayers)
    graph = rc.io.from_onnx(data, inputs=["tokens", *states], outputs=["y", *net_finals(states)])
    assert isinstance(graph, OnnxGraph)
    eng = rc.compile(graph)
    io_ = eng.graph_io
    assert io_["input_layout"] == io_["output_layout"] == "TBF" and io_["state_inputs"] == states
    assert eng.uses_ids and eng.describe().startswith("embedding(20x8)")
    nhid = net.nhid
    for k, (T, B) in enumerate(((5, 1), (9, 4))):
        feeds = wlm_feeds(states, nlayers, nhid, T, B, seed=k + 3)
        want = ort_run(data, feeds)
        np.testing.assert_allclose(graph.run(feeds)["y"], want[0], rtol=0, atol=2e-6)
        st = tuple(feeds[n] for n in states)
        y, fin = eng.run(feeds["tokens"].T, state=st if len(st) == 2 else st[0], return_state=True)
        np.testing.assert_allclose(y.transpose(1, 0, 2), want[0], rtol=0, atol=1e-5)
        for got, w in zip(fin if len(st) == 2 else (fin,), want[1:], strict=True):
            np.testing.assert_allclose(got, w, rtol=0, atol=1e-5)
    feeds = wlm_feeds(states, nlayers, nhid, 8, 3, seed=9, zero=True)
    ids, lengths = feeds["tokens"].T.copy(), np.array([8, 3, 1])
    got = eng.run(ids, lengths)
    for b, L in enumerate(lengths):
        one = wlm_feeds(states, nlayers, nhid, L, 1, seed=0, zero=True)
        one["tokens"] = feeds["tokens"][:L, b:b + 1]
        np.testing.assert_allclose(got[b, :L], ort_run(data, one)[0][:, 0], rtol=0, atol=1e-5)
    q8_check(rc.compile(graph, precision="q8"), eng, ids, lengths)


def net_finals(states):
    return ["hn", "cn"] if len(states) == 2 else ["hn"]


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_word_language_model_static_export(rnn_type):
    """A static export (``T = 7``, ``B = 3``, as the example's ``export_onnx``): at its own shape the
    compiled engine equals onnxruntime; the default import (the chain importer, or the whole graph)
    compiles to the same numbers; q8 equals the NumPy q8 spec."""
    data, states, net = wlm_export(rnn_type, 2, True, False, seed=5)
    feeds = wlm_feeds(states, 2, net.nhid, 7, 3, seed=6)
    want = ort_run(data, feeds)
    st = tuple(feeds[n] for n in states)
    for model in (rc.io.from_onnx(data), rc.io.from_onnx(data, inputs=["tokens", *states],
                                                         outputs=["y", *net_finals(states)])):
        eng = rc.compile(model)
        y = eng.run(feeds["tokens"].T, state=st if len(st) == 2 else st[0])
        np.testing.assert_allclose(y.transpose(1, 0, 2), want[0], rtol=0, atol=1e-5)
    q8_check(rc.compile(model, precision="q8"), eng, feeds["tokens"].T.copy())


@pytest.mark.parametrize("rnn_type,dynamic", [("LSTM", True), ("GRU", True), ("LSTM", False)])
def test_word_language_model_as_written_merges_the_steps_into_rows(rnn_type, dynamic):
    """The example's ``log_softmax(decoded.view(-1, ntoken), dim=1)``: the graph output ``(T * B,
    ntoken)``, time-major rows, is the engine's ``(B, T, ntoken)`` read back as
    ``y.transpose(1, 0, 2).reshape(-1, ntoken)`` (``output_layout == "(TB)F"``)."""
    data, states, net = wlm_export(rnn_type, 2, True, dynamic, merged=True, seed=11)
    graph = rc.io.from_onnx(data)
    assert isinstance(graph, OnnxGraph)
    eng = rc.compile(graph)
    assert eng.graph_io["input_layout"] == "TBF" and eng.graph_io["output_layout"] == "(TB)F"
    T, B = (9, 2) if dynamic else (7, 3)
    feeds = wlm_feeds(states, 2, net.nhid, T, B, seed=12)
    want = ort_run(data, feeds)
    st = tuple(feeds[n] for n in states)
    y = eng.run(feeds["tokens"].T, state=st if len(st) == 2 else st[0])
    np.testing.assert_allclose(y.transpose(1, 0, 2).reshape(-1, V), want[0], rtol=0, atol=1e-5)
    if dynamic:
        q8_check(rc.compile(graph, precision="q8"), eng, feeds["tokens"].T.copy(), np.array([T, 4]))


class MergedRows(nn.Module):
    """Batch-major ids ``(B, T)`` -> Embedding -> GRU(batch_first) -> Linear -> ``reshape(-1, V)`` ->
    ``log_softmax`` over ``dim``."""

    def __init__(self, dim):
        super().__init__()
        torch.manual_seed(1)
        self.dim = dim
        self.emb, self.rnn, self.fc = nn.Embedding(V, E), nn.GRU(E, 6, batch_first=True), nn.Linear(6, V)

    def forward(self, ids):
        return F.log_softmax(self.fc(self.rnn(self.emb(ids))[0]).reshape(-1, V), dim=self.dim)


def test_batch_major_rows_merged_and_a_softmax_over_them():
    """``(B * T, V)`` rows of batch-major ids are ``output_layout == "(BT)F"`` (the engine's output
    reshaped); a ``LogSoftmax`` over the merged rows (``dim=0``) is no per-step layer: refused naming
    it (the NumPy graph runs it)."""
    axes = {"tokens": {0: "B", 1: "T"}, "y": {0: "BT"}}
    tok = np.random.default_rng(0).integers(0, V, (2, 9))
    data = export(MergedRows(1).eval(), (torch.zeros((3, 7), dtype=torch.int64),), ["tokens"], ["y"], axes)
    eng = rc.compile(rc.io.from_onnx(data))
    assert eng.graph_io["input_layout"] == "BTF" and eng.graph_io["output_layout"] == "(BT)F"
    np.testing.assert_allclose(eng.run(tok).reshape(-1, V), ort_run(data, {"tokens": tok})[0], rtol=0,
                               atol=1e-5)
    data = export(MergedRows(0).eval(), (torch.zeros((3, 7), dtype=torch.int64),), ["tokens"], ["y"], axes)
    graph = rc.io.from_onnx(data)
    np.testing.assert_allclose(graph.run({"tokens": tok})["y"], ort_run(data, {"tokens": tok})[0], rtol=0,
                               atol=2e-6)
    with pytest.raises(ValueError, match=r"node '/LogSoftmax' \(LogSoftmax\) normalises over axis 0: "
                                         r"expected the features \(axis 1\)"):
        rc.compile(graph)


# -- GlobalAveragePool ---------------------------------------------------------------------------------------
F_IN, H, O = 4, 5, 3


class AvgNet(nn.Module):
    """``cell(batch_first) -> transpose(1, 2) -> AdaptiveAvgPool1d(1) -> flatten / squeeze / view ->
    Linear``."""

    def __init__(self, cell="GRU", kind="flatten", bidirectional=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.kind = kind
        self.rnn = getattr(nn, cell)(F_IN, H, batch_first=True, bidirectional=bidirectional)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), O)

    def forward(self, x):
        y = self.rnn(x)[0]
        if self.kind == "functional":
            p = F.adaptive_avg_pool1d(y.transpose(1, 2), 1).squeeze(-1)
        else:
            p = self.pool(y.transpose(1, 2))
            p = p.flatten(1) if self.kind == "flatten" else p.squeeze(-1) if self.kind == "squeeze" \
                else p.view(p.shape[0], -1)
        return self.fc(p)


def avg_export(cell, kind, bidirectional=False, dynamic=True) -> bytes:
    net = AvgNet(cell, kind, bidirectional, seed=3).eval()
    return export(net, (torch.randn(2, 7, F_IN),), ["x"], ["y"], {"x": {0: "B", 1: "T"}} if dynamic else None)


@pytest.mark.parametrize("cell,kind,bidirectional", [("GRU", "flatten", False), ("LSTM", "squeeze", False),
                                                     ("GRU", "view", True), ("LSTM", "functional", True)])
def test_global_average_pool_of_recurrent_output(cell, kind, bidirectional):
    """The chain importer (``Flatten`` / ``Squeeze``; the ``view(B, -1)``'s shape arithmetic makes it a
    whole graph), the NumPy graph and ``rc.compile`` (f32 at batch 1 and 3, per-row lengths, q8)."""
    import onnx

    data = avg_export(cell, kind, bidirectional)
    assert "GlobalAveragePool" in [n.op_type for n in onnx.load_from_string(data).graph.node]
    model = rc.io.from_onnx(data)
    graph = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    if kind != "view":
        assert [type(m).__name__ for m in model] == [cell, "MaskedMean", "Linear"]
    eng = rc.compile(model)
    assert "masked_mean" in eng.describe()
    assert rc.compile(graph).graph_io["output_layout"] == "BF"
    for k, (B, T) in enumerate(((1, 6), (3, 9))):
        X = randn32((B, T, F_IN), seed=k + 1)
        want = ort_run(data, {"x": X})[0]
        np.testing.assert_allclose(graph.run({"x": X})["y"], want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(model.forward(X.astype(np.float64)) if kind != "view"
                                   else model.run({"x": X})["y"], want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(rc.compile(graph).run(X), want, rtol=0, atol=1e-5)
    X, lengths = randn32((3, 10, F_IN), seed=7), np.array([10, 4, 1])
    got = eng.run(X, lengths)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(got[b:b + 1], ort_run(data, {"x": X[b:b + 1, :L]})[0], rtol=0, atol=1e-5)
    q8_check(rc.compile(model, precision="q8"), eng, X, lengths)


@pytest.mark.parametrize("kind", ["flatten", "functional"])
def test_static_export_is_a_global_average_pool_too(kind):
    """Unlike ``adaptive_max_pool1d`` (a ``MaxPool`` of the traced length), torch writes
    ``adaptive_avg_pool1d(y, 1)`` on a fixed time axis as ``GlobalAveragePool`` as well: the model
    compiles and equals onnxruntime at the export's shape (and at any other: it is a mean over time)."""
    import onnx

    data = avg_export("GRU", kind, dynamic=False)
    assert "GlobalAveragePool" in [n.op_type for n in onnx.load_from_string(data).graph.node]
    X = randn32((2, 7, F_IN), seed=2)
    eng = rc.compile(rc.io.from_onnx(data))
    np.testing.assert_allclose(eng.run(X), ort_run(data, {"x": X})[0], rtol=0, atol=1e-5)


def test_average_pool_over_time_after_a_recurrent_layer_is_refused_naming_it():
    """An ``AveragePool`` over time after the recurrent layer (a kernel of a fixed length) is no mean
    over each sequence: the NumPy graph runs it, the lowering refuses it naming the node and the
    ``GlobalAveragePool`` a dynamic export writes."""
    from onnx import helper

    data = gap_graph(lengths=False, pool=helper.make_node("AveragePool", ["yc"], ["p"], kernel_shape=[4],
                                                          name="avg4"))
    graph = rc.io.from_onnx(data)
    assert isinstance(graph, OnnxGraph)
    X = randn32((4, 2, F_IN), seed=3)
    np.testing.assert_allclose(graph.run({"x": X})["y"], ort_run(data, {"x": X})[0], rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match=r"node 'avg4' \(AveragePool\) is a convolution or pooling over "
                                         r"time after a recurrent layer.*adaptive_avg_pool1d.*dynamic time "
                                         r"axis.*GlobalAveragePool"):
        rc.compile(graph)


class SqueezeExcite(nn.Module):
    """A 2-D squeeze-excitation block: ``Conv2d -> GlobalAveragePool -> Conv 1x1 -> ReLU -> Conv 1x1 ->
    Sigmoid -> Mul``."""

    def __init__(self, C=6, r=2):
        super().__init__()
        torch.manual_seed(9)
        self.conv = nn.Conv2d(3, C, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(C, C // r, 1), nn.Conv2d(C // r, C, 1)

    def forward(self, x):
        y = self.conv(x)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(y)))))
        return y * s


def test_squeeze_excitation_block_through_the_numpy_graph():
    data = export(SqueezeExcite().eval(), (torch.randn(2, 3, 8, 5),), ["x"], ["y"],
                  {"x": {0: "N", 2: "H", 3: "W"}})
    import onnx

    assert "GlobalAveragePool" in [n.op_type for n in onnx.load_from_string(data).graph.node]
    model = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    for k, shape in enumerate(((1, 3, 8, 5), (2, 3, 6, 11))):
        X = randn32(shape, seed=k + 20)
        np.testing.assert_allclose(model.run({"x": X})["y"], ort_run(data, {"x": X})[0], rtol=0, atol=2e-6)


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 6), (2, 2, 3, 4, 5)])
def test_global_average_pool_node_of_any_rank(shape):
    """The graph op alone: the mean over axes 2.., kept as size 1, as onnxruntime."""
    from onnx import TensorProto, helper

    node = helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")
    g = helper.make_graph([node], "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    X = randn32(shape, seed=1)
    got = rc.io.from_onnx(data, inputs=["x"], outputs=["y"]).run({"x": X})["y"]
    want = ort_run(data, {"x": X})[0]
    assert got.shape == want.shape == shape[:2] + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def gap_graph(lengths: bool, transpose: bool = True, pool=None, opset: int = 17) -> bytes:
    """Hand-built: ``x (T, B, F)`` -> GRU (``sequence_lens`` from the input ``lens`` if ``lengths``) ->
    Squeeze -> Transpose to ``(B, H, T)`` -> ``GlobalAveragePool`` (named ``avg_time``; or ``pool``, a
    node or a list of them, ``yc`` to ``p``) -> Flatten -> Gemm. Without ``transpose`` the pool reads
    ``(T, B, H)`` and its flattened ``(T, B)`` is the output (no Gemm)."""
    from onnx import TensorProto, helper, numpy_helper

    g = np.random.default_rng(4)
    W, R, Bb = (g.standard_normal(s).astype(np.float32) * 0.5 for s in ((1, 3 * H, F_IN), (1, 3 * H, H),
                                                                         (1, 6 * H)))
    Wo, bo = g.standard_normal((O, H)).astype(np.float32), g.standard_normal(O).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bb, "B"), (Wo, "Wo"), (bo, "bo"),
                                                          (np.array([1], np.int64), "ax1"),
                                                          (np.array([2], np.int64), "ax2"),
                                                          (np.array([2, 3], np.int64), "ax23"))]
    nodes = [helper.make_node("GRU", ["x", "W", "R", "B", "lens" if lengths else ""], ["Y"], hidden_size=H,
                              name="gru"),
             helper.make_node("Squeeze", ["Y", "ax1"], ["y3"], name="sq"),
             helper.make_node("Transpose", ["y3"], ["yc"], perm=[1, 2, 0] if transpose else [0, 1, 2],
                              name="tr"),
             *(pool if isinstance(pool, list) else
               [pool or helper.make_node("GlobalAveragePool", ["yc"], ["p"], name="avg_time")]),
             helper.make_node("Flatten", ["p"], ["f" if transpose else "y"], axis=1, name="flat")]
    if transpose:
        nodes.append(helper.make_node("Gemm", ["f", "Wo", "bo"], ["y"], transB=1, name="head"))
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", F_IN])]
    if lengths:
        ins.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["B"]))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    gr = helper.make_graph(nodes, "gap_rnn", ins, [out], inits)
    return helper.make_model(gr, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def test_global_average_pool_after_sequence_lens_is_refused_by_name():
    """ONNX's zeros past each length take part in the mean (the sum of every step over ``T``); rnncore's
    masked mean divides the valid steps' sum by the length: the chain importer refuses it naming the
    node, and the default import is the whole graph, which runs it as onnxruntime does."""
    data = gap_graph(lengths=True)
    with pytest.raises(ValueError, match=r"node 'avg_time' \(GlobalAveragePool\): the recurrent nodes read "
                                         r"sequence_lens 'lens'.*ONNX divides the sum of every step"):
        rc.io.from_onnx(data, graph=False)
    model = rc.io.from_onnx(data)
    assert isinstance(model, OnnxGraph)
    X, lens = randn32((6, 3, F_IN), seed=5), np.array([6, 2, 4], np.int32)
    want = ort_run(data, {"x": X, "lens": lens})[0]
    np.testing.assert_allclose(model.run({"x": X, "lens": lens})["y"], want, rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match=r"node 'gru' \(GRU\) has sequence_lens"):
        rc.compile(model)


@pytest.mark.parametrize("opset", [17, 18])
def test_reduce_mean_over_time_and_an_axis_of_size_1(opset):
    """The dynamo exporter's form of ``adaptive_avg_pool1d(y, 1)`` (torch 2.13, opset 18), written by
    hand: ``Unsqueeze`` of ``(B, H, T)`` to ``(B, H, 1, T)``, ``ReduceMean`` over the last two axes
    (keepdims=1; ``axes`` an attribute before opset 18, an input from 18), then the graph's
    ``Flatten``: the lowering reads it as ``MaskedMean`` (f32 with per-row lengths, q8)."""
    from onnx import helper

    nodes = [helper.make_node("Unsqueeze", ["yc", "ax2"], ["u"], name="unsq")]
    if opset >= 18:
        nodes.append(helper.make_node("ReduceMean", ["u", "ax23"], ["p"], keepdims=1, name="mean_time"))
    else:
        nodes.append(helper.make_node("ReduceMean", ["u"], ["p"], axes=[2, 3], keepdims=1, name="mean_time"))
    data = gap_graph(lengths=False, pool=nodes, opset=opset)
    model = rc.io.from_onnx(data)
    assert isinstance(model, OnnxGraph)
    eng = rc.compile(model)
    assert "masked_mean" in eng.describe()
    X, lengths = randn32((3, 9, F_IN), seed=8), np.array([9, 5, 2])
    Xt = X.transpose(1, 0, 2).copy()
    want = ort_run(data, {"x": Xt})[0]
    np.testing.assert_allclose(model.run({"x": Xt})["y"], want, rtol=0, atol=2e-6)
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    got = eng.run(X, lengths)
    for b, L in enumerate(lengths):
        want = ort_run(data, {"x": X[b:b + 1, :L].transpose(1, 0, 2).copy()})[0]
        np.testing.assert_allclose(got[b:b + 1], want, rtol=0, atol=1e-5)
    q8_check(rc.compile(model, precision="q8"), eng, X, lengths)


def test_global_average_pool_of_time_major_data_and_of_other_axes():
    """Without lengths the hand-built time-major graph compiles (lengths per row, q8); a
    ``GlobalAveragePool`` of ``(T, B, H)`` (the last axis not time) is refused by name."""
    data = gap_graph(lengths=False)
    model = rc.io.from_onnx(data)
    assert [type(m).__name__ for m in model] == ["GRU", "MaskedMean", "Linear"]
    eng = rc.compile(model)
    X, lengths = randn32((3, 8, F_IN), seed=6), np.array([8, 3, 1])
    np.testing.assert_allclose(eng.run(X), ort_run(data, {"x": X.transpose(1, 0, 2).copy()})[0], rtol=0,
                               atol=1e-5)
    got = eng.run(X, lengths)
    for b, L in enumerate(lengths):
        want = ort_run(data, {"x": X[b:b + 1, :L].transpose(1, 0, 2).copy()})[0]
        np.testing.assert_allclose(got[b:b + 1], want, rtol=0, atol=1e-5)
    q8_check(rc.compile(model, precision="q8"), eng, X, lengths)
    bad = gap_graph(lengths=False, transpose=False)
    with pytest.raises(ValueError, match=r"node 'avg_time' \(GlobalAveragePool\).*pools data with axes "
                                         r"\('T', 'B', 'F'\): expected channels-first \(B, F, T\)"):
        rc.io.from_onnx(bad, graph=False)
    graph = rc.io.from_onnx(bad)
    Xt = X.transpose(1, 0, 2).copy()
    np.testing.assert_allclose(graph.run({"x": Xt})["y"], ort_run(bad, {"x": Xt})[0], rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match=r"node 'avg_time' \(GlobalAveragePool\) pools data of shape .*"
                                         r"expected channels-first \(B, F, T\)"):
        rc.compile(graph)
