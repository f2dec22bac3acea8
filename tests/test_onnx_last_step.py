"""rc.compile of ONNX graphs that pool a recurrent layer's last step by slicing its output.

Keras' ``Bidirectional(LSTM(H))`` (``return_sequences=False``) converted by tf2onnx, and the
PyTorch idiom ``cat(y[-1, :, :H], y[0, :, H:])``, take one direction and one time step of the
recurrent output with ``Slice`` / ``Gather`` + ``Squeeze`` and join them with ``Concat``; tf2onnx
also builds the zero initial states as ``Expand(0, (B, H))`` + ``Unsqueeze`` + ``Concat`` per
direction. The sequence lowering (``rnncore/io/onnx_import/_lower.py``) reads these as
``LastStep(bidirectional=True)`` / ``LastStep()`` and the direction concat. References: onnxruntime
on the same bytes, PyTorch for the exported modules.

* a graph built here node for node in tf2onnx's form (random weights, LSTM and GRU);
* PyTorch modules exported by the classic and the dynamo exporter;
* a real trained model: openWakeWord 0.4.0's ``hey_mycroft_v0.1.onnx`` (a Keras model converted
  by tf2onnx: two bidirectional LSTMs, a sigmoid unit; ``.ci/run`` installs the wheel with
  ``pip install --no-deps openwakeword==0.4.0``; its models are CC BY-NC-SA 4.0, read from the
  installed package, not copied), fed openWakeWord's own features (its ``melspectrogram.onnx`` and
  ``embedding_model.onnx`` run by onnxruntime) of speech synthesised by ``espeak-ng``.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _helpers import torch_onnx_export
from onnx import TensorProto, helper, numpy_helper

import rnncore as rc
from rnncore.io import from_onnx


def _ort(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


# -- tf2onnx's form of Keras Bidirectional(LSTM/GRU) -> Bidirectional(..., last step) -> Dense ------
def _tf2onnx_graph(cell: str, F: int, H1: int, H2: int, seed: int) -> bytes:
    """input_1 (B, T, F) -> Transpose -> cell(H1, bidirectional; zero states Expand + Unsqueeze +
    Concat) -> Slice/Squeeze per direction -> Concat(axis 2) -> cell(H2, bidirectional) -> the
    forward direction's last step and the backward's first (Slice + Squeeze) -> Concat(axis 1) ->
    MatMul + Add -> Sigmoid, as tf2onnx writes a Keras model (hey_mycroft_v0.1.onnx)."""
    rng = np.random.default_rng(seed)
    G = 4 if cell == "LSTM" else 3
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    const("ax0", np.array([0], np.int64))
    const("one", np.array([1], np.int64))
    const("two", np.array([2], np.int64))
    const("m1", np.array([-1], np.int64))
    const("big", np.array([2 ** 31 - 1], np.int64))
    const("zero_f", np.array(0.0, np.float32))
    nodes.append(helper.make_node("Transpose", ["input_1"], ["xt"], perm=[1, 0, 2]))

    def layer(k, x, shape_src, gather_perm, I, H):
        # zeros (B, H): Shape -> [Gather perm] -> Cast -> Slice [0:1] -> Concat [H] -> Cast -> Expand
        src = f"shape{k}"
        nodes.append(helper.make_node("Shape", [shape_src], [src]))
        if gather_perm:
            const(f"perm{k}", np.array([1, 0, 2], np.int64))
            nodes.append(helper.make_node("Gather", [src, f"perm{k}"], [f"shp{k}"]))
            src = f"shp{k}"
        nodes.append(helper.make_node("Cast", [src], [f"sc{k}"], to=TensorProto.INT32))
        nodes.append(helper.make_node("Slice", [f"sc{k}", "ax0", "one", "ax0"], [f"b{k}"]))
        const(f"h{k}", np.array([H], np.int32))
        nodes.append(helper.make_node("Concat", [f"b{k}", f"h{k}"], [f"bh{k}"], axis=0))
        nodes.append(helper.make_node("Cast", [f"bh{k}"], [f"bh64_{k}"], to=TensorProto.INT64))
        nodes.append(helper.make_node("Expand", ["zero_f", f"bh64_{k}"], [f"z{k}"]))
        nodes.append(helper.make_node("Unsqueeze", [f"z{k}", "ax0"], [f"zu{k}"]))
        nodes.append(helper.make_node("Concat", [f"zu{k}", f"zu{k}"], [f"zs{k}"], axis=0))
        s = 1.0 / np.sqrt(H)
        W = const(f"W{k}", rng.uniform(-s, s, (2, G * H, I)).astype(np.float32))
        R = const(f"R{k}", rng.uniform(-s, s, (2, G * H, H)).astype(np.float32))
        B = const(f"B{k}", rng.uniform(-s, s, (2, 2 * G * H)).astype(np.float32))
        ins = [x, W, R, B, "", f"zs{k}"] + ([f"zs{k}"] if cell == "LSTM" else [])
        extra = {} if cell == "LSTM" else {"linear_before_reset": 1}
        outs = [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if cell == "LSTM" else [])
        nodes.append(helper.make_node(cell, ins, outs, direction="bidirectional", hidden_size=H, **extra))
        return f"Y{k}"

    y1 = layer(1, "xt", "input_1", False, F, H1)
    for d, lo, hi in ((0, "ax0", "one"), (1, "one", "two")):   # Y (T, 2, B, H): one direction each
        nodes.append(helper.make_node("Slice", [y1, lo, hi, "one"], [f"y1d{d}"]))
        nodes.append(helper.make_node("Squeeze", [f"y1d{d}", "one"], [f"y1s{d}"]))
    nodes.append(helper.make_node("Concat", ["y1s0", "y1s1"], ["y1c"], axis=2))
    y2 = layer(2, "y1c", "y1c", True, 2 * H1, H2)
    nodes.append(helper.make_node("Slice", [y2, "one", "two", "one"], ["y2b"]))       # backward
    nodes.append(helper.make_node("Squeeze", ["y2b", "one"], ["y2bs"]))
    nodes.append(helper.make_node("Slice", ["y2bs", "ax0", "one", "ax0"], ["y2b0"]))  # its t = 0
    nodes.append(helper.make_node("Squeeze", ["y2b0", "ax0"], ["bwd"]))
    nodes.append(helper.make_node("Slice", [y2, "ax0", "one", "one"], ["y2f"]))       # forward
    nodes.append(helper.make_node("Squeeze", ["y2f", "one"], ["y2fs"]))
    nodes.append(helper.make_node("Slice", ["y2fs", "m1", "big", "ax0"], ["y2fl"]))   # its last step
    nodes.append(helper.make_node("Squeeze", ["y2fl", "ax0"], ["fwd"]))
    nodes.append(helper.make_node("Concat", ["fwd", "bwd"], ["feat"], axis=1))
    const("Wd", rng.standard_normal((2 * H2, 1)).astype(np.float32) * 0.3)
    const("bd", np.array([0.1], np.float32))
    nodes.append(helper.make_node("MatMul", ["feat", "Wd"], ["mm"]))
    nodes.append(helper.make_node("Add", ["mm", "bd"], ["logit"]))
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["dense"]))
    g = helper.make_graph(nodes, "keras_bidirectional", [
        helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["b", 16, F])],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["b", 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_tf2onnx_keras_bidirectional_last_step_compiles(cell):
    blob = _tf2onnx_graph(cell, F=12, H1=10, H2=6, seed=3)
    g = from_onnx(blob)
    eng = rc.compile(g)
    assert "lstmx2" in repr(eng) or "grux2" in repr(eng)
    assert "last_step" in repr(eng)
    assert eng.graph_io["input_layout"] == "BTF" and eng.graph_io["output_layout"] == "BF"
    X = np.random.default_rng(0).standard_normal((5, 16, 12)).astype(np.float32)
    (want,) = _ort(blob).run(None, {"input_1": X})
    assert want.shape == (5, 1)
    np.testing.assert_allclose(g.forward(X.astype(np.float64)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eng.run(X), want, rtol=1e-5, atol=1e-6)
    # the backward direction's first step matters: LastStep() (its last padded step) differs
    spec = rc.spec.spec_from_model(rc.io.onnx_import._lower.lower_graph(g)[0])
    assert spec.last_step and spec.last_step_bidirectional
    q = rc.compile(g, precision="q8")
    assert np.abs(q.run(X) - want).max() < 0.02


def test_tf2onnx_form_refuses_a_single_direction():
    """The backward direction's step alone into the head: refused naming the node."""
    m = onnx.load_from_string(_tf2onnx_graph("LSTM", F=12, H1=10, H2=6, seed=3))
    for n in m.graph.node:
        if n.op_type == "Concat" and list(n.output) == ["feat"]:
            n.input[:] = ["bwd", "bwd"]
    blob = m.SerializeToString()
    with pytest.raises(ValueError, match=r"node .* \(Concat\) concatenates parts of recurrent outputs"):
        rc.compile(from_onnx(blob))


# -- PyTorch: cat(y[-1, :, :H], y[0, :, H:]) and y[-1] ---------------------------------------------
class BiLastStep(torch.nn.Module):
    """(T, B, F) -> bidirectional LSTM -> [forward at T-1 | backward at 0] -> Linear -> sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.H = 8
        self.rnn = torch.nn.LSTM(12, self.H, bidirectional=True)
        self.fc = torch.nn.Linear(2 * self.H, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        last = torch.cat([y[-1, :, :self.H], y[0, :, self.H:]], dim=-1)
        return torch.sigmoid(self.fc(last))


class UniLastStep(torch.nn.Module):
    """(B, T, F) -> 2-layer GRU (batch_first) -> y[:, -1] -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(12, 8, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


def _module(name: str) -> torch.nn.Module:
    torch.manual_seed(5)
    return {"bi": BiLastStep, "uni": UniLastStep}[name]().eval()


def _export(name: str, dynamo: bool, opset: int) -> bytes:
    axes = {0: "T", 1: "b"} if name == "bi" else {0: "b", 1: "T"}
    return torch_onnx_export("test_onnx_last_step:_module", (name,), (7, 2, 12), axes, dynamo=dynamo,
                             opset=opset, output="p")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["bi", "uni"])
@pytest.mark.parametrize("dynamo,opset", [(False, 11), (False, 17), (True, 18)])
def test_torch_last_step_idioms_compile(name, dynamo, opset):
    blob = _export(name, dynamo, opset)
    g = from_onnx(blob)
    if dynamo and name == "bi":    # torch 2.13's dynamo writes the direction concat with T fixed
        with pytest.raises(ValueError, match=r"\(Reshape\) reshapes \(X0, X1, 2, 8\) to \(7, -1, 16\)"
                                             ".*export's sizes"):
            rc.compile(g)
        return
    eng = rc.compile(g)
    assert "last_step" in repr(eng)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 11, 12)).astype(np.float32)      # (B, T, F), sizes not the export's
    x = X.transpose(1, 0, 2).copy() if name == "bi" else X
    (want,) = _ort(blob).run(None, {"x": x})
    with torch.no_grad():
        np.testing.assert_allclose(_module(name)(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    if name == "bi":       # an OnnxGraph lowered; the y[:, -1] GRU is a chain (rc.nn.Sequential) already
        assert eng.graph_io["output_layout"] == "BF" and eng.graph_io["input_layout"] == "TBF"
    np.testing.assert_allclose(eng.run(X), want, rtol=1e-5, atol=1e-6)
    if name == "uni":    # one direction streams: the last step's output is the stream's last output
        st = eng.stream(batch=3)
        for t in range(X.shape[1]):
            out = st.step(np.ascontiguousarray(X[:, t]))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


# -- a real trained model: openWakeWord 0.4.0's hey_mycroft_v0.1.onnx ------------------------------
_OWW = importlib.util.find_spec("openwakeword")
_MODELS = None if _OWW is None else pathlib.Path(_OWW.origin).parent / "resources" / "models"


def _say(text: str, voice: str) -> np.ndarray:
    """espeak-ng's speech at 16 kHz (linear interpolation from its 22.05 kHz)."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", p, text], check=True, capture_output=True)
        with wave.open(p) as w:
            sr, a = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    t = np.arange(int(len(a) * 16000 / sr)) / 16000
    return np.interp(t, np.arange(len(a)) / sr, a.astype(np.float64))


def oww_windows(models: pathlib.Path) -> np.ndarray:
    """openWakeWord's classifier inputs for 8 s of speech and pauses: its melspectrogram model
    (``/10 + 2``), its embedding model on 76-frame windows every 8 frames, 16 embeddings per input
    (openwakeword/utils.py's AudioFeatures), all run by onnxruntime. Returns (N, 16, 96) float32."""
    rng = np.random.default_rng(0)

    def sil(s):
        return rng.normal(0, 30, int(16000 * s))

    audio = np.concatenate([sil(1.0), _say("hey mycroft", "en"), sil(0.8),
                            _say("what is the weather today", "en"), sil(0.8), _say("hey mycroft", "en-us"),
                            sil(1.0)])
    x = np.clip(audio, -32768, 32767).astype(np.int16).astype(np.float32)[None]

    def sess(f):
        return ort.InferenceSession(str(models / f), providers=["CPUExecutionProvider"])

    mel = np.squeeze(sess("melspectrogram.onnx").run(None, {"input": x})[0]) / 10 + 2
    wins = np.array([mel[i:i + 76] for i in range(0, mel.shape[0] - 75, 8)])[..., None].astype(np.float32)
    emb = sess("embedding_model.onnx").run(None, {"input_1": wins})[0].squeeze()
    return np.array([emb[i:i + 16] for i in range(emb.shape[0] - 15)]).astype(np.float32)


@pytest.mark.skipif(_OWW is None, reason="openwakeword 0.4.0 not installed (.ci/run installs it)")
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (.ci/run installs it)")
def test_openwakeword_hey_mycroft_compiles_and_matches_onnxruntime():
    path = str(_MODELS / "hey_mycroft_v0.1.onnx")
    X = oww_windows(_MODELS)
    assert X.shape[1:] == (16, 96) and len(X) > 50
    (want,) = _ort(pathlib.Path(path).read_bytes()).run(None, {"input_1": X})
    g = from_onnx(path)
    eng = rc.compile(g)
    assert repr(eng).startswith("Engine(lstmx2(64) > lstmx2(32) > last_step > linear(64->1)")
    np.testing.assert_allclose(g.forward(X), want, rtol=1e-4, atol=1e-6)   # probabilities: absolute
    np.testing.assert_allclose(eng.run(X), want, rtol=1e-4, atol=1e-6)
    # the logits (the graph up to the Dense's bias add): relative agreement where they are large
    logit = "model/dense/BiasAdd:0"
    sub = from_onnx(path, inputs=["input_1"], outputs=[logit])
    m = onnx.load(path)
    m.graph.output.append(helper.make_tensor_value_info(logit, TensorProto.FLOAT, None))
    (_, want_z) = _ort(m.SerializeToString()).run(None, {"input_1": X})
    z = rc.compile(sub).run(X)
    assert np.abs(want_z).max() > 1.0
    np.testing.assert_allclose(z, want_z, rtol=1e-4, atol=1e-4 * np.abs(want_z).max())
    q = rc.compile(g, precision="q8", calibration=X)
    assert np.abs(q.run(X) - want).max() < 0.02


@pytest.mark.skipif(_OWW is None, reason="openwakeword 0.4.0 not installed (.ci/run installs it)")
@pytest.mark.parametrize("name", ["alexa_v0.1", "hey_jarvis_v0.1", "hey_marvin_v0.1", "timer_v0.1",
                                  "weather_v0.1"])
def test_openwakeword_mlp_classifiers_run_in_numpy_and_compile_refuses_them_by_reason(name):
    """The wheel's other wake-word classifiers are MLPs over the flattened window (Flatten → Gemm,
    hey_jarvis a LayerNorm written out and an ``If`` on ``GreaterOrEqual``): the imported NumPy graph
    runs them as onnxruntime does, and ``rc.compile`` says the graph has no recurrent node."""
    path = str(_MODELS / f"{name}.onnx")
    sess = _ort(pathlib.Path(path).read_bytes())
    (inp,) = sess.get_inputs()
    X = np.random.default_rng(1).standard_normal((1,) + tuple(inp.shape[1:])).astype(np.float32)
    (want,) = sess.run(None, {inp.name: X})
    g = from_onnx(path)
    np.testing.assert_allclose(g.forward(X), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"the graph has no recurrent node \(LSTM, GRU, RNN\) and no state "
                                         rf"input besides its data input '{re.escape(inp.name)}'"):
        rc.compile(g)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
