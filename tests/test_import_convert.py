"""``rnncore convert``: model files from PyTorch, Keras and ONNX to .rnc, run on the C engine."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.cli import main


def _close(got, ref, tol=1e-5):
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


@pytest.mark.filterwarnings("ignore")
def test_convert_onnx_f32_and_q8(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    m = _Net().eval()
    x = np.random.default_rng(0).standard_normal((3, 7, 4)).astype(np.float32)
    src = tmp_path / "net.onnx"
    torch.onnx.export(m, (torch.as_tensor(x),), str(src), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    out = tmp_path / "net.rnc"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    _close(rc.load(out).run(x), ref)
    # q8 with a calibration file: the same bytes as compiling the imported model by hand
    np.save(tmp_path / "calib.npy", x)
    out8 = tmp_path / "net_q8.rnc"
    assert main(["convert", str(src), "-o", str(out8), "--precision", "q8",
                 "--calibration", str(tmp_path / "calib.npy")]) == 0
    by_hand = rc.compile(rc.io.from_onnx(src, dtype="float32"), precision="q8", calibration=x)
    by_hand.save(tmp_path / "by_hand.rnc")
    assert out8.read_bytes() == (tmp_path / "by_hand.rnc").read_bytes()


def test_convert_keras_file(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(5, return_sequences=True),
                              keras.layers.GRU(4, reset_after=False), keras.layers.Dense(2)])
    src = tmp_path / "net.keras"
    model.save(src)
    x = np.random.default_rng(1).standard_normal((2, 6, 4)).astype(np.float32)
    out = tmp_path / "net.rnc"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    _close(rc.load(out).run(x), keras.ops.convert_to_numpy(model(x)))


def test_convert_torch_state_dict_and_refuse_pickles_by_default(tmp_path):
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True)
    torch.save(lstm.state_dict(), tmp_path / "sd.pt")
    x = np.random.default_rng(2).standard_normal((2, 6, 4)).astype(np.float32)
    with torch.no_grad():
        ref = lstm(torch.as_tensor(x))[0].numpy()
    assert main(["convert", str(tmp_path / "sd.pt"), "-o", str(tmp_path / "sd.rnc")]) == 0
    _close(rc.load(tmp_path / "sd.rnc").run(x), ref)
    torch.save(lstm, tmp_path / "whole.pt")
    with pytest.raises(SystemExit, match="not a plain state_dict .*--trust-pickle"):
        main(["convert", str(tmp_path / "whole.pt"), "-o", str(tmp_path / "whole.rnc")])
    assert main(["convert", str(tmp_path / "whole.pt"), "-o", str(tmp_path / "whole.rnc"),
                 "--trust-pickle"]) == 0
    _close(rc.load(tmp_path / "whole.rnc").run(x), ref)


def test_convert_command_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"rnncore convert: .*nope.onnx: no such file"):
        main(["convert", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "x.rnc")])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SystemExit, match=r"unknown model file type '.txt'"):
        main(["convert", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "x.rnc")])
    (tmp_path / "bad.onnx").write_bytes(b"\x00\xff" * 10)
    with pytest.raises(SystemExit, match=r"bad.onnx: from_onnx: not a readable ONNX model"):
        main(["convert", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "x.rnc")])


def test_convert_needs_no_compiled_extension(tmp_path):
    """``rnncore convert`` writes the file in Python (ModelSpec -> write_rnc): with the C extension
    unimportable it still runs, and its bytes are those rc.compile loads."""
    import subprocess
    import sys

    torch.manual_seed(3)
    gru = torch.nn.GRU(4, 5, batch_first=True)
    torch.save(gru.state_dict(), tmp_path / "sd.pt")
    x = np.random.default_rng(3).standard_normal((2, 6, 4)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    code = ("import sys; sys.modules['rnncore._engine'] = None\n"   # any import of it now fails
            "from rnncore.cli import main\n"
            f"main(['convert', {str(tmp_path / 'sd.pt')!r}, '-o', {str(tmp_path / 'sd.rnc')!r}, "
            f"'--precision', 'q8', '--calibration', {str(tmp_path / 'calib.npy')!r}])\n"
            "import rnncore as rc\n"
            "try:\n    rc.load(sys.argv[1])\nexcept ImportError:\n    print('no engine')\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sd.rnc")], capture_output=True,
                         text=True, env=dict(os.environ), check=True).stdout
    assert "no engine" in out and "precision='q8'" in out
    by_hand = rc.compile(rc.io.from_torch(gru.state_dict(), dtype="float32"), precision="q8", calibration=x)
    by_hand.save(tmp_path / "by_hand.rnc")
    assert (tmp_path / "sd.rnc").read_bytes() == (tmp_path / "by_hand.rnc").read_bytes()
    with torch.no_grad():
        ref = gru(torch.as_tensor(x))[0].numpy()
    assert np.abs(rc.load(tmp_path / "sd.rnc").run(x) - ref).max() < 0.05


@pytest.mark.filterwarnings("ignore")
def test_the_importers_emit_the_one_model_description(tmp_path):
    """``as_spec=True``: from_torch / from_keras / from_onnx return a ModelSpec, which the float
    reference runs to the source framework's outputs and which build_rnc writes."""
    import onnxruntime as ort

    from rnncore import quant as Q
    from rnncore.spec import ModelSpec, build_rnc

    torch.manual_seed(4)
    m = _Net().eval()
    x = np.random.default_rng(4).standard_normal((3, 7, 4)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.as_tensor(x)).numpy()
    lstm = torch.nn.LSTM(4, 5, batch_first=True)
    with torch.no_grad():
        ref_lstm = lstm(torch.as_tensor(x))[0].numpy()
    src = tmp_path / "net.onnx"
    torch.onnx.export(m, (torch.as_tensor(x),), str(src), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    ref_onnx = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(5)
    km = keras.Sequential([keras.Input((None, 4)), keras.layers.GRU(6, reset_after=False),
                           keras.layers.Dense(2)])
    ref_keras = keras.ops.convert_to_numpy(km(x))
    cases = [(rc.io.from_torch(lstm, as_spec=True), ref_lstm),
             (rc.io.from_onnx(src, as_spec=True), ref_onnx),
             (rc.io.from_keras(km, as_spec=True), ref_keras)]
    for spec, want in cases:
        assert isinstance(spec, ModelSpec)
        got, _ = Q.float_forward(spec, x)
        _close(got, want)
        data, spec2 = build_rnc(spec, "q8")
        assert spec2 is spec and data[:4] == b"RNCM"
    assert cases[1][0].last_step and cases[1][0].head is not None and ref.shape == ref_onnx.shape
