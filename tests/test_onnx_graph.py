"""Whole-graph ONNX import (rnncore.io.onnx_import._graph.OnnxGraph) against onnxruntime and PyTorch.

Real models: Silero VAD v6's sequence graph (the ``silero-vad`` wheel, which ``.ci/run``
installs with ``pip install --no-deps silero-vad==6.2.3``) and the CRNN recurrent tail
(crnn.pytorch's ``BidirectionalLSTM``) exported by both torch exporters.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _helpers import torch_onnx_export

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.onnx_import import OnnxGraph


def _speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like audio made here: voiced syllables (a 100-220 Hz glottal pulse train with
    gliding pitch through three vowel formant resonators, syllable-rate amplitude envelope),
    separated by pauses, in low background noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    t0 = int(0.3 * sr)
    formants = [(730, 1090, 2440), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240), (530, 1840, 2480)]
    while t0 < n - sr // 2:
        dur = int(rng.uniform(0.15, 0.35) * sr)
        f0 = rng.uniform(100, 220) * (1 + 0.15 * np.linspace(-1, 1, dur) * rng.choice([-1, 1]))
        phase = np.cumsum(f0 / sr)
        pulses = np.diff(np.floor(phase), prepend=0.0)            # one impulse per period
        sig = pulses.copy()
        for fc in formants[rng.integers(len(formants))]:
            r, w = np.exp(-np.pi * 80 / sr), 2 * np.pi * fc / sr   # two-pole resonator
            y = np.zeros(dur)
            a1, a2 = 2 * r * np.cos(w), r * r
            for k in range(dur):
                y[k] = sig[k] + a1 * (y[k - 1] if k else 0) - a2 * (y[k - 2] if k > 1 else 0)
            sig = y / (np.abs(y).max() + 1e-9)
        env = np.sin(np.pi * np.linspace(0, 1, dur)) ** 0.7
        out[t0:t0 + dur] += 0.5 * sig * env
        t0 += dur + int(rng.choice([0.05, 0.08, 0.6, 1.0]) * sr)
    out += 0.003 * rng.standard_normal(n)
    return out.astype(np.float32)


def _silero_frames(audio: np.ndarray) -> np.ndarray:
    """Silero's 16 kHz input: 512-sample chunks, each with the previous 64 samples in front."""
    n = len(audio) // 512
    padded = np.concatenate([np.zeros(64, np.float32), audio[:n * 512]])
    return np.stack([padded[k * 512:k * 512 + 576] for k in range(n)])


def test_silero_vad_sequence_graph_matches_onnxruntime(silero):
    g = from_onnx(silero)
    assert isinstance(g, OnnxGraph)
    assert g.input_names == ["input", "h", "c"] and g.output_names == ["speech_probs", "hn", "cn"]
    frames = _silero_frames(_speech_like(8.0))
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    sess = ort.InferenceSession(silero, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": frames, "h": h, "c": c})
    got = g(frames, h, c)
    assert got[0].shape == ref[0].shape == (len(frames),)
    np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[1], ref[1], rtol=0, atol=1e-4)   # final hn
    np.testing.assert_allclose(got[2], ref[2], rtol=0, atol=1e-4)   # final cn
    # the audio is speech-like enough for the detector: it fires on the syllables, not the pauses
    assert (ref[0] > 0.5).mean() > 0.2 and (ref[0] < 0.5).mean() > 0.1
    # frame by frame, the state fed back: the same probabilities as the whole run
    hs, cs, probs = h, c, []
    for f in frames[:60]:
        p, hs, cs = g(input=f[None], h=hs, c=cs)
        probs.append(p[0])
    np.testing.assert_allclose(probs, ref[0][:60], rtol=0, atol=1e-4)
    # float32 model: the same tolerance
    g32 = from_onnx(silero, dtype="float32")
    np.testing.assert_allclose(g32(frames, h, c)[0], ref[0], rtol=0, atol=1e-4)


def test_silero_vad_is_refused_by_the_engine_path_with_the_node_named(silero):
    with pytest.raises(ValueError, match=r"node '/stft/padding/.*' \((ConstantOfShape|Concat|Pad|Reshape)\)"):
        from_onnx(silero, as_spec=True)


def test_silero_sub_graph_between_named_tensors(silero):
    """The LSTM and its head alone, from the encoder's output on (inputs=/outputs=)."""
    g = from_onnx(silero, inputs=["/Transpose_output_0", "h", "c"], outputs=["speech_probs", "hn"])
    assert g.input_names == ["/Transpose_output_0", "h", "c"]
    model = onnx.load_from_string(silero)
    # onnxruntime's value for the cut tensor: expose it as an extra output
    model.graph.output.append(onnx.helper.make_tensor_value_info("/Transpose_output_0", 1, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    frames = _silero_frames(_speech_like(2.0, seed=1))
    z = np.zeros((1, 1, 128), np.float32)
    probs, hn, _, feat = sess.run(None, {"input": frames, "h": z, "c": z})
    got_p, got_h = g(feat, z, z)
    np.testing.assert_allclose(got_p, probs, atol=1e-5)
    np.testing.assert_allclose(got_h, hn, atol=1e-5)


def test_sub_graph_names_are_checked(silero):
    with pytest.raises(ValueError, match=r"inputs: 'nope' is no tensor of the graph"):
        from_onnx(silero, inputs=["nope"], outputs=["speech_probs"])
    with pytest.raises(ValueError, match=r"tensor 'input' is needed .*add it to inputs"):
        from_onnx(silero, inputs=["h", "c"], outputs=["speech_probs"])


# -- the CRNN recurrent tail -----------------------------------------------------------------
class BidirectionalLSTM(torch.nn.Module):
    """crnn.pytorch's models/crnn.py BidirectionalLSTM, verbatim in its forward."""

    def __init__(self, nIn: int, nHidden: int, nOut: int) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(nIn, nHidden, bidirectional=True)
        self.embedding = torch.nn.Linear(nHidden * 2, nOut)

    def forward(self, input):
        recurrent, _ = self.rnn(input)
        T, b, h = recurrent.size()
        t_rec = recurrent.view(T * b, h)
        output = self.embedding(t_rec)  # [T * b, nOut]
        output = output.view(T, b, -1)
        return output


def _crnn_tail() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(BidirectionalLSTM(32, 24, 24), BidirectionalLSTM(24, 24, 37)).eval()


def _export(dynamo: bool, opset: int) -> bytes:
    """crnn.pytorch's recurrent tail (``_crnn_tail``), exported on (T, B, F) data with T and B dynamic."""
    return torch_onnx_export("test_onnx_graph:_crnn_tail", (), (7, 3, 32), {0: "T", 1: "b"},
                             dynamo=dynamo, opset=opset)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamo,opset", [(False, 11), (False, 13), (False, 14), (False, 17), (True, 18)])
def test_crnn_recurrent_tail_imports_and_matches_onnxruntime(dynamo, opset):
    net = _crnn_tail()
    blob = _export(dynamo, opset)
    proto = onnx.load_from_string(blob)
    ops = {n.op_type for n in proto.graph.node}
    assert "LSTM" in ops and "Reshape" in ops
    # time and batch are dynamic in the exported graph (the test runs other sizes)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_param") for d in dims] == [True, True, False]
    g = from_onnx(blob)
    assert isinstance(g, OnnxGraph)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    for T, B in ((7, 3), (15, 5), (1, 1)):        # not only the export's example sizes
        x = np.random.default_rng(T).standard_normal((T, B, 32)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        got = g(x)
        assert got.shape == ref.shape == (T, B, 37)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(got, net(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_crnn_old_messages_are_gone():
    """The issue's misleading refusals ("element-wise arithmetic on the model's data", "reshape of
    data") no longer reach the user: the tail imports."""
    for dynamo, opset in ((False, 14), (True, 18)):
        from_onnx(_export(dynamo, opset))


def test_unsupported_node_is_named_with_what_to_do():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Atan", ["r"], ["y"], name="the_atan")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    with pytest.raises(ValueError, match=r"node 'the_atan' \(Atan\): operator not supported .*"
                                         r"from_onnx\(path, inputs=\[\.\.\.\], outputs=\[\.\.\.\]\)"):
        from_onnx(model)
    # the part before it imports
    g = from_onnx(model, outputs=["r"])
    v = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    np.testing.assert_array_equal(g(v), np.maximum(v, 0))


def test_conv_front_end_graph_matches_onnxruntime():
    """Conv1d (stride, padding, dilation, groups) -> BatchNorm -> ReLU -> GRU with a state input ->
    LayerNorm -> Linear, exported by torch, against onnxruntime."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 8, 3, stride=2, padding=2, dilation=2, groups=2)
            self.bn = torch.nn.BatchNorm1d(8)
            self.gru = torch.nn.GRU(8, 16, batch_first=True)
            self.ln = torch.nn.LayerNorm(16)
            self.fc = torch.nn.Linear(16, 3)

        def forward(self, x, h):
            z = torch.relu(self.bn(self.conv(x.transpose(1, 2)))).transpose(1, 2)
            y, hn = self.gru(z, h)
            return torch.sigmoid(self.fc(self.ln(y))), hn

    torch.manual_seed(0)
    net = Net()
    net.bn.running_mean.uniform_(-0.5, 0.5)
    net.bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    x, h = torch.randn(2, 11, 4), torch.randn(1, 2, 16)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x, h), f, input_names=["x", "h"], output_names=["p", "hn"], dynamo=False,
                          dynamic_axes={"x": {0: "B", 1: "T"}, "h": {1: "B"}}, opset_version=17)
    g = from_onnx(f.getvalue())
    assert isinstance(g, OnnxGraph) and g.output_names == ["p", "hn"]
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for B, T in ((2, 11), (3, 20)):
        xv = np.random.default_rng(B).standard_normal((B, T, 4)).astype(np.float32)
        hv = np.random.default_rng(T).standard_normal((1, B, 16)).astype(np.float32)
        ref = sess.run(None, {"x": xv, "h": hv})
        got = g(x=xv, h=hv)
        for r, o in zip(ref, got, strict=True):
            np.testing.assert_allclose(o, r, rtol=0, atol=1e-5)


def test_silero_vad_compiles_to_the_c_engine_and_matches_onnxruntime(silero):
    """rc.compile(from_onnx(silero)): the graph lowered to per-step records + LSTM + head (f32);
    run and the stream frame by frame within 1e-4 of onnxruntime, the final hn / cn as the
    engine's state."""
    from rnncore.io.onnx_import._lower import lower_graph

    g = from_onnx(silero)
    model, info = lower_graph(g)
    assert info == {"data_input": "input", "data_output": "speech_probs", "state_inputs": ["h", "c"],
                    "state_outputs": ["hn", "cn"]}
    eng = rc.compile(g)
    frames = _silero_frames(_speech_like(8.0))
    rng = np.random.default_rng(3)
    h0 = (rng.standard_normal((1, 1, 128)) * 0.1).astype(np.float32)
    c0 = (rng.standard_normal((1, 1, 128)) * 0.1).astype(np.float32)
    sess = ort.InferenceSession(silero, providers=["CPUExecutionProvider"])
    probs, hn, cn = sess.run(None, {"input": frames, "h": h0, "c": c0})
    Y, (h, c) = eng.run(frames[None], state=(h0, c0), return_state=True)
    assert Y.shape == (1, len(frames), 1)
    np.testing.assert_allclose(Y[0, :, 0], probs, rtol=0, atol=1e-4)
    np.testing.assert_allclose(h, hn, rtol=0, atol=1e-4)
    np.testing.assert_allclose(c, cn, rtol=0, atol=1e-4)
    assert ((probs > 0.5) != (Y[0, :, 0] > 0.5)).sum() == 0
    st = eng.stream()
    st.state = (h0, c0)
    out = np.empty((1, 1), np.float32)
    got = []
    for f in frames:
        st.step(f[None], out=out)
        got.append(out[0, 0])
    np.testing.assert_allclose(got, probs, rtol=0, atol=1e-4)
    np.testing.assert_allclose(st.state[0], hn, rtol=0, atol=1e-4)
    # the lowered chain in NumPy (float64, zero initial state) against the engine (float32)
    np.testing.assert_allclose(eng.run(frames[None]), model.forward(frames[None].astype(np.float64)),
                               rtol=0, atol=1e-5)


def test_silero_lowering_refuses_q4_and_names_what_it_cannot_follow(silero):
    g = from_onnx(silero)
    with pytest.raises(ValueError, match=r"the C core runs per-step records in f32 and q8 files only"):
        rc.compile(g, precision="q4")
    sub = from_onnx(silero, inputs=["/stft/Sqrt_output_0", "h", "c"],
                    outputs=["speech_probs", "hn", "cn"])
    # its data input (the magnitudes, (N, C, L), read by the encoder's Conv) is taken channels
    # first, the encoder runs over L; the LSTM then steps over the chunks, another axis
    with pytest.raises(ValueError, match=r"node '/recurrent/LSTM' \(LSTM\) runs over the batch axis of the "
                                         r"data the layers before it ran over in time"):
        rc.compile(sub)


class _HeadAct(torch.nn.Module):
    """GRU -> an element-wise op of torch that exports to an op the whole-graph import runs in NumPy
    (``Clip``, ``Softplus``, ``Selu``, ``Reciprocal``, ``ReduceMax``; softsign as ``Abs``, ``Add``,
    ``Div``) -> Linear."""

    FORMS = {"hardtanh": torch.nn.Hardtanh(-0.3, 0.2), "relu6": lambda y: torch.nn.functional.relu6(4 * y),
             "clip_min": lambda y: torch.clamp(y, min=-0.1), "softplus": torch.nn.Softplus(),
             "softsign": torch.nn.Softsign(), "selu": torch.nn.SELU(), "reciprocal": lambda y: 1 / (y + 3),
             "amax_time": lambda y: y.amax(0, keepdim=True) - y}

    def __init__(self, form: str) -> None:
        super().__init__()
        torch.manual_seed(len(form))
        self.form, self.rnn, self.out = form, torch.nn.GRU(4, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.out(self.FORMS[self.form](self.rnn(x)[0]))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("form", "opset"), [(f, o) for f in sorted(_HeadAct.FORMS) for o in (10, 11, 17)
                                             if (f, o) != ("clip_min", 10)])   # one bound: opset 11 on
def test_elementwise_ops_after_a_recurrent_node_against_onnxruntime(form, opset):
    """The whole-graph import runs them as onnxruntime does (opset 10's ``Clip`` takes its bounds as
    attributes, opset 11's as inputs); ``rc.compile`` compiles ``Clip`` (rc.nn.Hardtanh), ``Softplus``
    and softsign (rc.nn.Softplus / Softsign pointwise records) within 1e-5 of onnxruntime, and refuses
    the others naming the node (no C per-step layer)."""
    net = _HeadAct(form).eval()
    blob = torch_onnx_export("test_onnx_graph:_HeadAct", (form,), (5, 2, 4), {0: "T", 1: "b"},
                             dynamo=False, opset=opset)
    ops = {n.op_type for n in onnx.load_from_string(blob).graph.node}
    want_op = {"hardtanh": "Clip", "relu6": "Clip", "clip_min": "Clip", "softplus": "Softplus",
               "softsign": "Abs", "selu": "Selu", "reciprocal": "Reciprocal", "amax_time": "ReduceMax"}
    assert want_op[form] in ops, ops
    g = from_onnx(blob)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    for T, B in ((5, 2), (9, 3)):
        x = np.random.default_rng(T).standard_normal((T, B, 4)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(g(x), ref, rtol=0, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(g(x), net(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-5)
    if form in ("selu", "reciprocal", "amax_time"):
        with pytest.raises(ValueError, match=r"rc.compile\(OnnxGraph\): node '[^']+' \("):
            rc.compile(g)
        return
    e = rc.compile(g)
    assert "pointwise" in e.describe(), e.describe()
    for T, B in ((5, 2), (9, 3)):
        x = np.random.default_rng(T).standard_normal((T, B, 4)).astype(np.float32)
        want = sess.run(None, {"x": x})[0].transpose(1, 0, 2)
        np.testing.assert_allclose(e.run(x.transpose(1, 0, 2)), want, rtol=0, atol=1e-5)


def test_softsign_node_against_onnxruntime():
    """``Softsign`` as a node (torch writes ``x / (1 + |x|)`` as three): after a GRU node."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    W, R = (numpy_helper.from_array(rng.standard_normal((1, 9, k)).astype(np.float32) * 0.5, n)
            for n, k in (("W", 4), ("R", 3)))
    nodes = [helper.make_node("GRU", ["x", "W", "R"], ["y"], hidden_size=3),
             helper.make_node("Softsign", ["y"], ["s"], name="the_softsign")]
    vis = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 2, 4]),
          helper.make_tensor_value_info("s", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", vis[:1], vis[1:], [W, R])
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = rng.standard_normal((6, 2, 4)).astype(np.float32)
    want = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(from_onnx(blob)(x), want, rtol=0, atol=1e-6)
