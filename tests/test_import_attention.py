"""Attention pooling over a recurrent layer's outputs, written in PyTorch as keyword-spotting /
speech-emotion / text classifiers write it (``e = v(tanh(W(out)))``, ``a = softmax(e, time)``,
``y = (a * out).sum(time)`` or ``torch.bmm(a.transpose(1, 2), out).squeeze(1)``), imported with
``rc.io.from_torch`` (torch.fx) and with ``rc.compile(rc.io.from_onnx(...))`` (classic and dynamo exports)
into ``rc.nn.AttentionPool``. References: the PyTorch module's own output and onnxruntime; the
compiled ``run`` and ``Stream.step`` against them; unrecognised variants refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import torch_onnx_export

import rnncore as rc

torch = pytest.importorskip("torch")
tnn = torch.nn
F = torch.nn.functional


class AttnNet(tnn.Module):
    """rnn -> [Linear, ReLU per step] -> attention pooling (one of the written forms) -> [MLP] head."""

    def __init__(self, cell="GRU", form="mul", bidirectional=False, batch_first=True, v_bias=False,
                 w_bias=True, post=False, mlp=False, module_tanh=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.form, self.batch_first, self.post, self.mlp = form, batch_first, post, mlp
        self.rnn = getattr(tnn, cell)(6, 8, batch_first=batch_first, bidirectional=bidirectional)
        H = 16 if bidirectional else 8
        if post:
            self.lin = tnn.Linear(H, 10)
            H = 10
        self.W = tnn.Linear(H, 5, bias=w_bias)
        self.act = tnn.Tanh() if module_tanh else None
        self.v = tnn.Linear(5, 1, bias=v_bias)
        if mlp:
            self.fc1 = tnn.Linear(H, 7)
            H = 7
        self.fc = tnn.Linear(H, 3)
        with torch.no_grad():   # scores large enough that the attention is far from uniform
            self.W.weight.mul_(4.0)
            self.v.weight.mul_(6.0)

    def forward(self, x):
        out, _ = self.rnn(x)
        if self.post:
            out = torch.relu(self.lin(out))
        t = 1 if self.batch_first else 0
        if self.form == "relu":         # not attention pooling: relu, not tanh, in the scores
            e = self.v(torch.relu(self.W(out)))
        else:
            e = self.v(self.act(self.W(out)) if self.act is not None else torch.tanh(self.W(out)))
        if self.form == "mul":
            a = torch.softmax(e, dim=t)
            y = (a * out).sum(dim=t)
        elif self.form == "squeeze":
            a = F.softmax(e.squeeze(-1), dim=t)
            y = torch.sum(a.unsqueeze(-1) * out, t)
        elif self.form == "bmm":
            a = torch.softmax(e, dim=1)
            y = torch.bmm(a.transpose(1, 2), out).squeeze(1)
        elif self.form == "mean":       # not attention pooling: a mean of the weighted steps
            a = torch.softmax(e, dim=t)
            y = (a * out).mean(dim=t)
        else:
            a = torch.softmax(e, dim=t)
            y = (a * out).sum(dim=t)
        if self.mlp:
            y = torch.relu(self.fc1(y))
        return self.fc(y)


def _x(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _torch_out(net, X):
    xt = torch.as_tensor(X)
    if not net.batch_first:
        xt = xt.transpose(0, 1)
    with torch.no_grad():
        return net.eval()(xt).numpy()


CASES = {
    "gru_mul": {},
    "lstm_squeeze_vbias": {"cell": "LSTM", "form": "squeeze", "v_bias": True},
    "gru_bmm_nobias_w": {"form": "bmm", "w_bias": False, "module_tanh": True},
    "bigru_time_first_mlp": {"bidirectional": True, "batch_first": False, "mlp": True},
    "bilstm_post_bmm": {"cell": "LSTM", "bidirectional": True, "post": True, "form": "bmm", "v_bias": True},
    "rnn_post_squeeze_mlp": {"cell": "RNN", "post": True, "form": "squeeze", "mlp": True},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_from_torch_matches_the_module_in_numpy_run_and_step(name):
    kw = CASES[name]
    net = AttnNet(seed=len(name), **kw)
    m = rc.io.from_torch(net, dtype="float32")
    kinds = [type(k).__name__ for k in m]
    assert "AttentionPool" in kinds and kinds[-1] == "Linear"
    pool = m[kinds.index("AttentionPool")]
    if kw.get("v_bias"):
        assert abs(float(net.v.bias.detach())) > 0   # not in the AttentionPool: it cancels in the softmax
    X = _x((4, 9, 6), seed=1, dtype=np.float32)
    want = _torch_out(net, X)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(m.forward(X), want, rtol=0, atol=1e-5)
    a = pool.attention
    assert (a.max(1) - a.min(1)).min() > 0.02   # not the mean: attention that picks steps
    e = rc.compile(m)
    assert "attention" in e.describe()
    np.testing.assert_allclose(e.run(X), want, rtol=0, atol=1e-5)
    if kw.get("bidirectional"):
        return   # a bidirectional layer does not stream
    s = e.stream(4)
    for t in range(9):
        y = s.step(X[:, t].copy())
        np.testing.assert_allclose(y, _torch_out(net, X[:, :t + 1]), rtol=0, atol=1e-5)


def _net(name):
    return AttnNet(seed=len(name), **(CASES | ONNX_CASES)[name]).eval()


ONNX_CASES = {
    "gru_mean_is_not_attention": {"form": "mean"},
}


def _onnx_export(name, dynamo):
    """The ``torch.onnx.export`` of case ``name`` (time axis and batch dynamic): classic at opset 17,
    dynamo at opset 18."""
    batch_first = _net(name).batch_first
    return torch_onnx_export("test_import_attention:_net", (name,), (2, 5, 6) if batch_first else (5, 2, 6),
                             {0: "b", 1: "T"} if batch_first else {0: "T", 1: "b"},
                             dynamo=dynamo, opset=18 if dynamo else 17)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("name", "dynamo"), [(n, False) for n in sorted(CASES)]
                         + [("gru_mul", True), ("bilstm_post_bmm", True)])
def test_onnx_export_compiles_to_attention_pooling_against_onnxruntime(name, dynamo):
    import onnxruntime as ort

    blob = _onnx_export(name, dynamo)
    g = rc.io.from_onnx(blob)
    e = rc.compile(g)
    assert "attention" in e.describe()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    net = _net(name)
    for B, T in ((2, 5), (3, 11), (1, 1)):
        X = _x((B, T, 6), seed=B + T)
        want = sess.run(None, {"x": X if net.batch_first else X.transpose(1, 0, 2).copy()})[0]
        np.testing.assert_allclose(want, _torch_out(net, X), rtol=0, atol=1e-5)   # the export is the net
        np.testing.assert_allclose(e.run(X), want, rtol=0, atol=1e-5)
        feed = X if net.batch_first else X.transpose(1, 0, 2)   # the graph op by op (its ReduceSum)
        np.testing.assert_allclose(g.run({"x": feed.astype(np.float64)})["y"], want, rtol=0, atol=1e-5)


def test_near_uniform_attention_is_read_from_forward_not_taken_for_a_mean():
    # W ~ 0: on any batch the weights are uniform within ~1e-5 and the output the mean over time
    # within from_torch's check of a container's guesses; the traced forward says what it is
    net = AttnNet(seed=3)
    with torch.no_grad():
        net.W.weight.mul_(1e-5)
    m = rc.io.from_torch(net, dtype="float32")
    assert [type(k).__name__ for k in m] == ["GRU", "AttentionPool", "Linear"]
    X = _x((2, 30, 6), seed=4)
    np.testing.assert_allclose(m.forward(X), _torch_out(net, X), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("form", "why"), [
    ("mean", r"node 'softmax' .*only over the features; over time, the importer recognises attention "
             r"pooling .*the weighted steps a \* x \('mul'\) are not summed over time"),
    ("relu", r"node 'softmax' .*but here the scores e are not v\(tanh\(W\(x\)\)\): v reads 'relu' \(relu\), "
             r"expected a tanh"),
])
def test_from_torch_refuses_what_is_not_attention_pooling_by_name(form, why):
    with pytest.raises(ValueError, match=why):
        rc.io.from_torch(AttnNet(form=form))


@pytest.mark.filterwarnings("ignore")
def test_onnx_refuses_a_mean_of_the_weighted_steps_by_name():
    blob = _onnx_export("gru_mean_is_not_attention", False)
    g = rc.io.from_onnx(blob)
    why = (r"node '/ReduceMean' \(ReduceMean\) reads a \* x \(from Softmax over time\): expected attention "
           r"pooling: scores e = v\(tanh\(W x\)\)")
    with pytest.raises(ValueError, match=why):
        rc.compile(g)


class MaskedAttnNet(tnn.Module):
    """Attention pooling over the steps a mask input marks valid (masked_fill(-inf) before the softmax)."""

    def __init__(self):
        super().__init__()
        self.rnn, self.W = tnn.GRU(6, 8, batch_first=True), tnn.Linear(8, 5)
        self.v, self.fc = tnn.Linear(5, 1), tnn.Linear(8, 3)

    def forward(self, x, mask):
        out, _ = self.rnn(x)
        e = self.v(torch.tanh(self.W(out))).squeeze(-1)
        a = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        return self.fc((a.unsqueeze(-1) * out).sum(1))


@pytest.mark.filterwarnings("ignore")
def test_onnx_refuses_a_mask_input_naming_the_node_and_lengths():
    import io

    f = io.BytesIO()
    torch.onnx.export(MaskedAttnNet().eval(), (torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)), f,
                      input_names=["x", "mask"], output_names=["y"], dynamo=False, opset_version=17,
                      dynamic_axes={"x": {0: "b", 1: "T"}, "mask": {0: "b", 1: "T"}})
    with pytest.raises(ValueError, match=r"node '/Not' \(Not\) reads the graph input 'mask', which is not a "
                                         r"recurrent layer's state .*engine.run\(x, lengths\)"):
        rc.compile(rc.io.from_onnx(f.getvalue()))
