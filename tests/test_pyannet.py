"""pyannote's speaker-segmentation model (PyanNet: SincNet + 4 x BiLSTM), the VAD whisperx uses.

The trained weights are whisperx 3.3.1's ``whisperx/assets/pytorch_model.bin`` (a Lightning
checkpoint), read out of the wheel (``.ci/run`` downloads it: ``pip download --no-deps
whisperx==3.3.1``; ``$RNNCORE_WHISPERX_WHEEL`` names it). Its ``state_dict`` is read with an
unpickler that stubs pyannote's classes (pyannote itself cannot be imported here: its dependencies
pull other torch versions). The independent reference is the module rebuilt in plain PyTorch with
asteroid-filterbanks' real ``Encoder(ParamSincFB(80, 251, stride=10))`` (as pyannote.audio 3.3.2's
``SincNet`` and ``PyanNet`` build it), and onnxruntime on its ONNX export.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from test_onnx_graph import _speech_like

WHEEL = "whisperx-3.3.1-py3-none-any.whl"
ASSET = "whisperx/assets/pytorch_model.bin"
SAMPLES = 80000   # pyannote's 5 s window at 16 kHz


def _wheel() -> str:
    for w in (os.environ.get("RNNCORE_WHISPERX_WHEEL", ""), f"/tmp/wheels/{WHEEL}", f"/work/wheels/{WHEEL}"):
        if w and os.path.isfile(w):
            return w
    pytest.fail(f"{WHEEL} not found: pip download --no-deps whisperx==3.3.1 -d /tmp/wheels (.ci/run does), "
                "or set RNNCORE_WHISPERX_WHEEL")


class _Stub:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.__dict__["_state"] = state


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _Stub   # pyannote's, lightning's ... classes: not needed for the state_dict


class _PickleModule:
    Unpickler = _Unpickler
    load = staticmethod(pickle.load)


def checkpoint(data: bytes | None = None) -> dict:
    """The Lightning checkpoint (``state_dict``, ``hyper_parameters`` ...): ``data`` the bytes of
    ``pytorch_model.bin``, None to read them out of the whisperx wheel."""
    if data is None:
        with zipfile.ZipFile(_wheel()) as z:
            data = z.read(ASSET)
    return torch.load(io.BytesIO(data), map_location="cpu", pickle_module=_PickleModule, weights_only=False)


class SincNet(torch.nn.Module):
    """pyannote.audio 3.3.2's SincNet block (blocks/sincnet.py), stride 10."""

    def __init__(self) -> None:
        super().__init__()
        from asteroid_filterbanks import Encoder, ParamSincFB

        self.wav_norm1d = torch.nn.InstanceNorm1d(1, affine=True)
        self.conv1d = torch.nn.ModuleList([
            Encoder(ParamSincFB(80, 251, stride=10, sample_rate=16000, min_low_hz=50, min_band_hz=50)),
            torch.nn.Conv1d(80, 60, 5), torch.nn.Conv1d(60, 60, 5)])
        self.pool1d = torch.nn.ModuleList([torch.nn.MaxPool1d(3, 3) for _ in range(3)])
        self.norm1d = torch.nn.ModuleList([torch.nn.InstanceNorm1d(n, affine=True) for n in (80, 60, 60)])

    def forward(self, waveforms):
        out = self.wav_norm1d(waveforms)
        for c, (conv, pool, norm) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d, strict=True)):
            out = conv(out)
            if c == 0:
                out = torch.abs(out)
            out = torch.nn.functional.leaky_relu(norm(pool(out)))
        return out


class PyanNet(torch.nn.Module):
    """pyannote.audio 3.3.2's PyanNet (segmentation/PyanNet.py) with the checkpoint's
    hyper-parameters: monolithic LSTM(60, 128, 4 layers, bidirectional), 2 x Linear 128, 3 classes,
    sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.sincnet = SincNet()
        self.lstm = torch.nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
        self.linear = torch.nn.ModuleList([torch.nn.Linear(256, 128), torch.nn.Linear(128, 128)])
        self.classifier = torch.nn.Linear(128, 3)

    def forward(self, waveforms):
        out, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for lin in self.linear:
            out = torch.nn.functional.leaky_relu(lin(out))
        return torch.sigmoid(self.classifier(out))


@pytest.fixture(scope="module")
def pyannet() -> PyanNet:
    if importlib.util.find_spec("asteroid_filterbanks") is None:   # missing: a failure, not a skip
        pytest.fail("asteroid-filterbanks is not installed: pip install --no-deps "
                    "asteroid-filterbanks==0.4.0 "
                    "(.ci/run does)")
    m = PyanNet()
    sd = checkpoint()["state_dict"]
    m.load_state_dict(sd, strict=True)
    return m.eval()


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return _speech_like(SAMPLES / 16000, seed=3)[None, None, :SAMPLES]   # (1, 1, 80000)


@pytest.fixture(scope="module")
def onnx_bytes(pyannet) -> bytes:
    f = io.BytesIO()
    torch.onnx.export(pyannet, (torch.zeros(1, 1, SAMPLES),), f, input_names=["waveforms"],
                      output_names=["scores"], opset_version=17, dynamo=False,
                      dynamic_axes={"waveforms": {0: "batch", 2: "samples"},
                                    "scores": {0: "batch", 1: "frames"}})
    return f.getvalue()


def test_checkpoint_reads_and_the_reference_is_pyannotes(pyannet, audio):
    ck = checkpoint()
    hp = ck["hyper_parameters"]
    assert hp["sincnet"]["stride"] == 10 and hp["lstm"]["num_layers"] == 4
    assert hp["lstm"]["bidirectional"] and hp["linear"] == {"hidden_size": 128, "num_layers": 2}
    with torch.no_grad():
        y = pyannet(torch.from_numpy(audio)).numpy()
    assert y.shape == (1, 293, 3)       # pyannote's num_frames(80000) = 293
    assert 0 < y.min() and y.max() < 1


def test_the_sinc_filters_are_folded_at_import(onnx_bytes):
    """The classic exporter keeps the filterbank's computation (Sin, Cos, MatMul ... on low_hz_,
    band_hz_): the whole-graph import evaluates that parameter-only sub-graph once, leaving no
    Sin/Cos to run per call."""
    import onnx

    from rnncore.io import from_onnx

    ops = [n.op_type for n in onnx.load_from_string(onnx_bytes).graph.node]
    assert ops.count("InstanceNormalization") == 4 and {"Sin", "Cos", "Abs"} <= set(ops)
    g = from_onnx(onnx_bytes, dtype="float32")
    assert not {"Sin", "Cos"} & set(g.op_types)
    assert [s.op for s in g.steps].count("InstanceNormalization") == 4


def test_onnx_graph_import_matches_torch_and_onnxruntime(onnx_bytes, pyannet, audio):
    """Float64: the graph equals PyTorch's module in float64 to 1e-6 (measured 1.3e-8). Float32 is
    the limit of every engine on this model: on this window PyTorch float32 is 2.6e-4 from its own
    float64 result and onnxruntime (float32 only: it has no double InstanceNormalization) 1.1e-4;
    rnncore float32 is within 1e-4 of PyTorch float32 (measured 3.2e-5) and within 2e-4 of
    onnxruntime (measured 1.8e-4; 3e-5 .. 6e-5 on other windows)."""
    import onnxruntime as ort

    from rnncore.io import from_onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    ref_ort = sess.run(None, {"waveforms": audio})[0]
    with torch.no_grad():
        ref_32 = pyannet(torch.from_numpy(audio)).numpy()
        ref_64 = pyannet.double()(torch.from_numpy(audio).double()).numpy()
        pyannet.float()
    y64 = from_onnx(onnx_bytes, dtype="float64")(audio)
    y32 = from_onnx(onnx_bytes, dtype="float32")(audio)
    assert y64.shape == y32.shape == (1, 293, 3) and y32.dtype == np.float32
    e64 = float(np.abs(y64 - ref_64).max())
    e32, eo = float(np.abs(y32 - ref_32).max()), float(np.abs(y32 - ref_ort).max())
    print(f"PyanNet window: OnnxGraph float64 vs torch float64 {e64:.2e}; float32 vs torch float32 "
          f"{e32:.2e}, "
          f"vs onnxruntime {eo:.2e}")
    assert e64 < 1e-6 and e32 < 1e-4 and eo < 2e-4
    # the model reacts to the synthetic speech: its speaker-activity scores move over the window
    assert ref_64.max() - ref_64.min() > 0.3


def test_compile_lowers_the_instance_norms_to_records(pyannet):
    """rc.compile lowers the sequence chain to the C engine: each InstanceNormalization is an
    instance_norm record of the front-end (tests/test_engine_pyannet.py runs it against
    onnxruntime); in q8 too, the records kept float32 (docs/q8-contract.md, "instance_norm";
    tests/test_engine_q8_instance_norm.py runs it)."""
    import rnncore as rc
    from rnncore.engine import _step_record_kinds
    from rnncore.io import from_onnx

    f = io.BytesIO()
    torch.onnx.export(pyannet, (torch.zeros(1, 1, 16000),), f, input_names=["waveforms"],
                      output_names=["scores"], opset_version=17, dynamo=False)
    g = from_onnx(f.getvalue(), dtype="float32")
    front = _step_record_kinds(rc.compile(g).data)[0]
    assert front.count("instance_norm") == 4 and front[0] == "instance_norm"
    front = _step_record_kinds(rc.compile(g, precision="q8").data)[0]
    assert front.count("instance_norm") == 4 and front[0] == "instance_norm"


def _frozen(pyannet: PyanNet) -> PyanNet:
    """The same function with the filterbank's filters computed once into a plain nn.Conv1d."""
    import copy

    m = copy.deepcopy(pyannet)
    conv = torch.nn.Conv1d(1, 80, 251, stride=10, bias=False)
    with torch.no_grad():
        conv.weight.copy_(pyannet.sincnet.conv1d[0].filterbank.filters())
    m.sincnet.conv1d[0] = conv
    return m.eval()


def test_from_torch_names_the_filterbank_and_imports_the_frozen_module(pyannet, audio):
    from rnncore.io import from_torch
    from rnncore.nn import Abs, InstanceNorm1d, LeakyReLU

    with pytest.raises(ValueError, match=r"inside the submodule 'sincnet\.conv1d\.0' \(Encoder\), at "
                                         r"enc_dec\.py:\d+ in multishape_conv1d .*from_onnx"):
        from_torch(pyannet)
    frozen = _frozen(pyannet)
    model = from_torch(frozen)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("InstanceNorm1d") == 4 and kinds.count("LeakyReLU") == 5 and kinds[2] == "Abs"
    assert isinstance(model[0], InstanceNorm1d) and isinstance(model[2], Abs)
    assert isinstance(model[5], LeakyReLU)
    y = model.forward(audio.transpose(0, 2, 1).astype(np.float64))     # (B, T, F): samples as steps
    with torch.no_grad():   # the same module in float64 (the filters frozen in float32 in both)
        ref = frozen.double()(torch.from_numpy(audio).double()).numpy()
    err = float(np.abs(y - ref).max())
    print(f"PyanNet window: from_torch float64 vs torch float64 {err:.2e}")
    assert y.shape == (1, 293, 3) and err < 1e-6
