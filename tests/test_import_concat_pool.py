"""Concatenated poolings over time imported as ``rc.nn.ConcatPool``: PyTorch through ``torch.fx``
(``torch.cat([y.mean(1), y.max(1).values], 1)``, the Kaggle ``F.adaptive_avg_pool1d`` /
``F.adaptive_max_pool1d`` form, fastai's ``[last, max, mean]``, ``h_n[-1]`` and
``torch.cat((h_n[-2], h_n[-1]), -1)`` next to a pooling), Keras functional models
(``concatenate([GlobalAveragePooling1D()(x), GlobalMaxPooling1D()(x)])``, masked or not) and
``torch.onnx.export`` graphs lowered for ``rc.compile`` (``Concat`` of ``ReduceMean`` / ``ReduceMax`` /
the last-step ``Gather``).

Independent references only: PyTorch in float64 (1e-9 relative), Keras (float32: 1e-4 relative),
onnxruntime (float32: 1e-5 relative); with per-row lengths, each row against the framework on that
row alone, cut at its length. Every refusal names the node / layer.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import rnncore as rc  # noqa: E402
from rnncore.io.keras_import import keras_lengths  # noqa: E402

F = torch.nn.functional
L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")


def _kinds(model) -> list:
    """The poolings of the model's ConcatPool, in order (``"last2"``: ``LastStep(bidirectional=True)``)."""
    cp = next(m for m in model if type(m).__name__ == "ConcatPool")
    return [("last2" if p.bidirectional else "last") if type(p).__name__ == "LastStep"
            else {"MaskedMean": "mean", "MaskedMax": "max"}[type(p).__name__] for p in cp.pools]


# -- PyTorch (torch.fx) ----------------------------------------------------------------------------------
HEADS = {   # name -> (head(y, h_n), the poolings expected, in order)
    "mean_max": (lambda y, h: torch.cat([y.mean(1), y.max(1).values], 1), ["mean", "max"]),
    "kaggle_adaptive": (lambda y, h: torch.cat((F.adaptive_avg_pool1d(y.transpose(1, 2), 1).squeeze(-1),
                                                F.adaptive_max_pool1d(y.transpose(1, 2), 1).flatten(1)), 1),
                        ["mean", "max"]),
    "torch_max_tuple": (lambda y, h: torch.cat((torch.mean(y, 1), torch.max(y, 1)[0]), -1), ["mean", "max"]),
    "fastai_last_max_mean": (lambda y, h: torch.cat([y[:, -1], torch.amax(y, 1), y.mean(dim=1)], 1),
                             ["last", "max", "mean"]),
    "h_last_hstack": (lambda y, h: torch.hstack([h[-1], y.mean(1), y.max(1).values]),
                      ["last", "mean", "max"]),
    "max_mean_concat": (lambda y, h: torch.concat([y.max(dim=1).values, y.mean(1)], dim=-1), ["max", "mean"]),
}


class _Net(torch.nn.Module):
    """``cell`` (batch first) -> ``head(y, h_n)`` -> Linear, in float64."""

    def __init__(self, head, k: int, cell: str = "GRU", bidirectional: bool = False, seed: int = 0,
                 norm: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.head, self.cell = head, cell
        self.rnn = getattr(torch.nn, cell)(4, 6, batch_first=True, bidirectional=bidirectional)
        D = 2 if bidirectional else 1
        self.norm = torch.nn.LayerNorm(4) if norm else None
        self.fc = torch.nn.Linear(k * 6 * D, 3)
        self.double().eval()

    def forward(self, x):
        if self.norm is not None:
            x = self.norm(x)
        y, h = self.rnn(x)
        if self.cell == "LSTM":
            h = h[0]
        return self.fc(self.head(y, h))


def _torch(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(x)).numpy()


def _torch_alone(net, x, lengths):
    """Each row alone, cut at its length (what the engine's per-row lengths mean)."""
    return np.concatenate([_torch(net, x[b:b + 1, :n]) for b, n in enumerate(lengths)])


# h_n[-1] of a bidirectional layer is one direction: refused (test_torch_refusals)
@pytest.mark.parametrize("head,cell,bidirectional", [
    (h, c, b) for h in HEADS for c, b in (("GRU", False), ("LSTM", False), ("RNN", True))
    if not (h == "h_last_hstack" and b)])
def test_torch_concatenated_poolings(head, cell, bidirectional):
    fn, kinds = HEADS[head]
    net = _Net(fn, len(kinds), cell, bidirectional, seed=len(head))
    model = rc.io.from_torch(net)
    assert _kinds(model) == kinds
    g = np.random.default_rng(1)
    x = g.standard_normal((3, 9, 4))
    np.testing.assert_allclose(model.forward(x), _torch(net, x), rtol=1e-9, atol=1e-12)
    lengths = np.array([9, 4, 1])
    np.testing.assert_allclose(model.forward(x, lengths=lengths), _torch_alone(net, x, lengths),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_torch_bidirectional_final_states_next_to_a_pooling(cell):
    """``torch.cat([torch.cat((h_n[-2], h_n[-1]), -1), y.max(1).values], 1)``: ``LastStep(bidirectional=
    True)`` then ``MaskedMax``; with lengths the backward final state is its output at step 0."""
    net = _Net(lambda y, h: torch.cat([torch.cat((h[-2], h[-1]), -1), y.max(1).values], 1), 2, cell,
               True, seed=3, norm=True)        # a LayerNorm: read with torch.fx
    model = rc.io.from_torch(net)
    assert _kinds(model) == ["last2", "max"]
    x = np.random.default_rng(2).standard_normal((3, 8, 4))
    np.testing.assert_allclose(model.forward(x), _torch(net, x), rtol=1e-9, atol=1e-12)
    lengths = np.array([3, 8, 1])
    np.testing.assert_allclose(model.forward(x, lengths=lengths), _torch_alone(net, x, lengths),
                               rtol=1e-9, atol=1e-12)


class _Attn(torch.nn.Module):
    """An attention pooling next to a mean: refused inside a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = torch.nn.GRU(4, 6, batch_first=True)
        self.W, self.v = torch.nn.Linear(6, 5), torch.nn.Linear(5, 1)
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        a = torch.softmax(self.v(torch.tanh(self.W(y))), dim=1)
        return self.fc(torch.cat([(a * y).sum(1), y.mean(1)], 1))


@pytest.mark.parametrize("head,bidirectional,match", [
    (lambda y, h: torch.cat([y.mean(1), y.mean(1)], 1), False, r"node 'cat'.*the same pooling twice"),
    (lambda y, h: torch.cat([y.mean(1), torch.relu(y).max(1).values], 1), False,
     r"node 'cat'.*poolings of different tensors"),
    (lambda y, h: torch.cat([y.mean(1), y.max(1).values], 0), False, r"node 'cat'.*over dim=0"),
    (lambda y, h: torch.cat([y.mean(1), y.sum(1)], 1), False,
     r"node 'cat'.*'sum_1' \(sum\) is not a pooling"),
    (lambda y, h: torch.cat([h[-1], y.mean(1)], 1), True, r"node 'getitem_2'.*h_n\[-1\] of a one-direction"),
    (lambda y, h: torch.cat([y.mean(1, keepdim=True), y.max(1).values], 1), False,
     r"node 'cat'.*'mean': mean with keepdim=True"),
], ids=["twice", "different_tensors", "batch_axis", "sum", "one_direction", "keepdim"])
def test_torch_refusals(head, bidirectional, match):
    net = _Net(head, 2 if not bidirectional else 1, "GRU", bidirectional)
    if bidirectional:
        net.fc = torch.nn.Linear(18, 3).double()
    with pytest.raises(ValueError, match=match):
        rc.io.from_torch(net)


def test_torch_attention_inside_a_concatenation_is_refused():
    with pytest.raises(ValueError, match=r"node 'cat'.*attention pooling"):
        rc.io.from_torch(_Attn().eval())


# -- Keras (functional) -------------------------------------------------------------------------------
def _kcall(km, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.ops.convert_to_numpy(km(x)).astype(np.float64)


def _toxic(mask_zero: bool, cell=L.GRU, bidirectional=True, order=("mean", "max")):
    """The toxic-comment head: Embedding -> [Bidirectional] GRU (sequences) -> concatenate(
    [GlobalAveragePooling1D, GlobalMaxPooling1D]) -> Dense."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((None,), dtype="int32")
    x = L.Embedding(30, 8, mask_zero=mask_zero)(inp)
    rnn = cell(6, return_sequences=True)
    y = (L.Bidirectional(rnn) if bidirectional else rnn)(x)
    pools = {"mean": L.GlobalAveragePooling1D(), "max": L.GlobalMaxPooling1D()}
    z = L.concatenate([pools[k](y) for k in order])
    return keras.Model(inp, L.Dense(3)(L.Dense(8, activation="relu")(z)))


def _tokens(seed=0, B=4, T=10, lengths=(10, 6, 1, 3)):
    tok = np.random.default_rng(seed).integers(1, 30, (B, T))
    tok[np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return tok, np.asarray(lengths)


@pytest.mark.parametrize("cell", [L.GRU, L.LSTM])
def test_keras_toxic_comment_model_unmasked(cell):
    km = _toxic(False, cell)
    model = rc.io.from_keras(km)
    assert _kinds(model) == ["mean", "max"]
    tok, _ = _tokens()
    np.testing.assert_allclose(model.forward(tok), _kcall(km, tok), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cell,order", [(L.GRU, ("mean", "max")), (L.GRU, ("max", "mean")),
                                        (L.LSTM, ("max", "mean")), (L.SimpleRNN, ("mean", "max"))])
def test_keras_masked_unidirectional(cell, order):
    """After a unidirectional layer (zero_output_for_mask=False) Keras's maximum is over the valid
    steps and its mean is the masked mean: ConcatPool with the mask's lengths, also each row alone."""
    km = _toxic(True, cell, bidirectional=False, order=order)
    model = rc.io.from_keras(km)
    assert _kinds(model) == list(order)
    tok, lengths = _tokens(seed=2)
    np.testing.assert_array_equal(keras_lengths(model, tok), lengths)
    want = _kcall(km, tok)
    alone = np.concatenate([_kcall(km, tok[b:b + 1, :n]) for b, n in enumerate(lengths)])
    np.testing.assert_allclose(alone, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.forward(tok, lengths=lengths), want, rtol=1e-4, atol=1e-6)


def test_keras_masked_mean_alone_after_a_bidirectional_layer():
    """A masked mean in the concatenation after a Bidirectional layer is fine; the masked maximum is
    not (Keras's maximum reads the zeros there): refused naming the GlobalMaxPooling1D."""
    km = _toxic(True, L.GRU, bidirectional=True)
    with pytest.raises(ValueError, match=r"GlobalMaxPooling1D 'global_max_pooling1d.*' after a mask"):
        rc.io.from_keras(km)


def _functional(build):
    keras.utils.set_random_seed(1)
    inp = keras.Input((None, 4))
    return keras.Model(inp, build(inp))


@pytest.mark.parametrize("build,match", [
    (lambda x: L.concatenate([L.GlobalAveragePooling1D()(y := L.GRU(5, return_sequences=True)(x)),
                              L.GlobalMaxPooling1D()(L.Dense(5)(y))]), r"Concatenate .*different tensors"),
    (lambda x: L.concatenate([L.GlobalMaxPooling1D()(y := L.GRU(5, return_sequences=True)(x)),
                              L.GlobalMaxPooling1D()(y)]), r"Concatenate .*the same pooling twice"),
    (lambda x: L.concatenate([L.GlobalAveragePooling1D()(y := L.GRU(5, return_sequences=True)(x)),
                              L.Dense(5)(L.GlobalMaxPooling1D()(y))]),
     r"Concatenate .*'dense.*' \(Dense\) is not"),
], ids=["different_tensors", "twice", "not_a_pooling"])
def test_keras_refusals(build, match):
    with pytest.raises(ValueError, match=match):
        rc.io.from_keras(_functional(build))


# -- ONNX (torch.onnx.export, lowered for rc.compile) ------------------------------------------------------
ONNX_HEADS = {"mean_max": ["mean", "max"], "last_max_mean": ["last", "max", "mean"],
              "mean_max_last": ["mean", "max", "last"], "adaptive_max_mean": ["max", "mean"]}


def concat_net(kind: str, cell: str = "GRU", bidirectional: bool = False, seed: int = 0):
    """``cell`` (batch first) -> the concatenated poolings ``kind`` -> Linear; for torch_onnx_export."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.rnn = getattr(torch.nn, cell)(4, 5, batch_first=True, bidirectional=bidirectional)
            k = len(ONNX_HEADS.get(kind, "xx"))
            self.fc = torch.nn.Linear(5 * (2 if bidirectional else 1) * k, 3)

        def forward(self, x):
            y = self.rnn(x)[0]
            if kind == "mean_max":
                z = torch.cat([y.mean(1), y.max(1).values], 1)
            elif kind == "last_max_mean":
                z = torch.cat([y[:, -1], torch.amax(y, 1), y.mean(1)], 1)
            elif kind == "mean_max_last":
                z = torch.cat([y.mean(1), y.max(1).values, y[:, -1]], 1)
            elif kind == "adaptive_max_mean":
                z = torch.cat([F.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(-1), y.mean(1)], 1)
            elif kind == "twice":
                z = torch.cat([y.mean(1), y.mean(1)], 1)
            else:                                   # different tensors
                z = torch.cat([y.mean(1), torch.relu(y).max(1).values], 1)
            return self.fc(z)

    return Net().eval()


def _ort(data, X):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]


def _export(kind, cell="GRU", bidirectional=False):
    from _helpers import torch_onnx_export

    return torch_onnx_export("test_import_concat_pool:concat_net", (kind, cell, bidirectional), (2, 7, 4),
                             {0: "B", 1: "T"}, dynamo=False, opset=17)


@pytest.mark.parametrize("cell,bidirectional", [("GRU", False), ("LSTM", True)])
@pytest.mark.parametrize("kind", list(ONNX_HEADS))
def test_onnx_lowered_concatenation_matches_onnxruntime(kind, cell, bidirectional):
    from _helpers import randn32

    from rnncore.io.onnx_import._lower import lower_graph

    data = _export(kind, cell, bidirectional)
    seq, info = lower_graph(rc.io.from_onnx(data, inputs=["x"], outputs=["y"]))
    assert [type(m).__name__ for m in seq] == [cell, "ConcatPool", "Linear"] and info["output_layout"] == "BF"
    assert _kinds(seq) == ONNX_HEADS[kind]
    for k, (B, T) in enumerate(((1, 6), (3, 9))):
        X = randn32((B, T, 4), seed=k + 5)
        np.testing.assert_allclose(seq.forward(X.astype(np.float64)), _ort(data, X), rtol=1e-5, atol=1e-6)
    X, lengths = randn32((3, 10, 4), seed=30), np.array([10, 4, 1])
    got = seq.forward(X.astype(np.float64), lengths=lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(got[b:b + 1], _ort(data, X[b:b + 1, :n]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,match", [
    ("twice", r"node '/Concat' \(Concat\) concatenates the output of '/ReduceMean' twice"),
    ("different", r"node '/Concat' \(Concat\) concatenates poolings of different tensors"),
])
def test_onnx_lowering_refusals_name_the_node(kind, match):
    data = _export(kind)
    graph = rc.io.from_onnx(data, inputs=["x"], outputs=["y"])
    with pytest.raises(ValueError, match=match):
        rc.compile(graph)


# -- rc.compile: f32 against the framework (1e-4 relative), q8 against the NumPy q8 spec ---------------------
def _rel(got, want) -> float:
    return float(np.abs(got - want).max() / max(1e-6, float(np.abs(want).max())))


@pytest.mark.parametrize("head,cell,bidirectional", [
    ("fastai_last_max_mean", "LSTM", False), ("kaggle_adaptive", "GRU", True),
    ("h_last_hstack", "GRU", False)])
def test_torch_concatenation_compiles(head, cell, bidirectional):
    from _helpers import q8_check

    fn, kinds = HEADS[head]
    net = _Net(fn, len(kinds), cell, bidirectional, seed=7).float()
    model = rc.io.from_torch(net, dtype="float32")
    e32 = rc.compile(model)
    assert "concat_pool" in e32.describe()
    x = np.random.default_rng(10).standard_normal((4, 9, 4)).astype(np.float32)
    lengths = np.array([9, 3, 1, 6])
    with torch.no_grad():
        want = net(torch.as_tensor(x)).numpy()
        alone = np.concatenate([net(torch.as_tensor(x[b:b + 1, :n])).numpy() for b, n in enumerate(lengths)])
    assert _rel(e32.run(x), want) < 1e-4
    assert _rel(e32.run(x, lengths), alone) < 1e-4
    q8_check(rc.compile(model, precision="q8"), e32, x, lengths)


def test_keras_toxic_comment_model_compiles(tmp_path):
    from _helpers import q8_check

    km = _toxic(True, L.GRU, bidirectional=False)
    km.save(tmp_path / "toxic.keras")
    model = rc.io.from_keras(str(tmp_path / "toxic.keras"), dtype="float32")
    e32 = rc.compile(model)
    assert "concat_pool" in e32.describe()
    tok, lengths = _tokens(seed=4)
    assert _rel(e32.run(tok, lengths), _kcall(km, tok)) < 1e-4
    q8_check(rc.compile(model, precision="q8"), e32, tok, lengths)


@pytest.mark.parametrize("kind,cell,bidirectional", [("last_max_mean", "GRU", True),
                                                     ("mean_max", "LSTM", False)])
def test_onnx_concatenation_compiles(kind, cell, bidirectional):
    from _helpers import q8_check, randn32

    data = _export(kind, cell, bidirectional)
    eng = rc.compile(rc.io.from_onnx(data))
    assert "concat_pool" in eng.describe()
    for k, (B, T) in enumerate(((1, 6), (3, 9))):
        X = randn32((B, T, 4), seed=k + 21)
        assert _rel(eng.run(X), _ort(data, X)) < 1e-4
    X, lengths = randn32((3, 10, 4), seed=30), np.array([10, 4, 1])
    got = eng.run(X, lengths)
    for b, n in enumerate(lengths):
        assert _rel(got[b:b + 1], _ort(data, X[b:b + 1, :n])) < 1e-4
    q8_check(rc.compile(rc.io.from_onnx(data), precision="q8"), eng, X, lengths)
