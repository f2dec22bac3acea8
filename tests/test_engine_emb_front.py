"""A front-end over time after an Embedding: ``Embedding -> Conv1d -> ReLU -> MaxPool1d / AvgPool1d
-> GRU / LSTM`` (Keras's ``imdb_cnn_lstm``; PyTorch ``emb(x).transpose(1, 2) -> Conv1d -> ...``;
its ONNX export ``Gather -> Transpose -> Conv -> Relu -> MaxPool -> ...``).
The C engine looks each id's row up and runs the front-end on those rows as on input features
(docs/rnc-format.md).

Against PyTorch, Keras and onnxruntime (f32), the NumPy q8 spec bit for bit on every ISA path of
this CPU (q8), the engine's own run (the stream, step by step, and its saved state), and the
loaders' refusals of a file whose widths disagree between the embedding and the front-end.
"""

from __future__ import annotations

import os
import re
import struct

import numpy as np
import pytest
from _helpers import c_equals_q8_reference
from rnc_mutations import fix_crc
from stream_drive import drive

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, write_rnc
from rnncore.io.rnc_layout import LAYOUT
from rnncore.spec import build_rnc, spec_from_model, to_rnc_spec

torch = pytest.importorskip("torch")

V, E = 40, 8


class _Net(torch.nn.Module):
    """``Embedding -> transpose -> Conv1d -> ReLU -> pool -> transpose -> GRU/LSTM -> [last] -> Linear``."""

    def __init__(self, k=3, stride=1, padding=0, dilation=1, k2=2, pool="max", cell="gru", bi=False,
                 last=True, padding_idx=0, channels=6, hidden=7):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E, padding_idx=padding_idx)
        self.conv = torch.nn.Conv1d(E, channels, k, stride=stride, padding=padding, dilation=dilation)
        self.pool = torch.nn.MaxPool1d(k2) if pool == "max" else torch.nn.AvgPool1d(k2)
        rnn = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
        self.rnn = rnn(channels, hidden, batch_first=True, bidirectional=bi)
        self.fc = torch.nn.Linear(hidden * (2 if bi else 1), 3)
        self.last = last

    def forward(self, ids):
        y = self.pool(torch.relu(self.conv(self.emb(ids).transpose(1, 2)))).transpose(1, 2)
        y = self.rnn(y)[0]
        return self.fc(y[:, -1] if self.last else y)


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, V, shape).astype(np.int32)


def _torch(net, ids):
    with torch.no_grad():
        return net(torch.as_tensor(ids, dtype=torch.long)).numpy()


def _out_steps(T, k, stride, padding, dilation, k2):
    """PyTorch's output length of the conv, then of the pooling (stride = kernel)."""
    t = (T + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    return (t - k2) // k2 + 1 if t >= k2 else 0


CASES = {
    "gru max last": dict(),
    "lstm avg every step": dict(cell="lstm", pool="avg", last=False),
    "gru bi max last, stride 2 pad 1": dict(bi=True, stride=2, padding=1),
    "lstm bi avg every step, dilation 2": dict(cell="lstm", bi=True, pool="avg", dilation=2, last=False,
                                               padding_idx=None),
    "gru max3 every step, k5 pad 2": dict(k=5, padding=2, k2=3, last=False),
}


@pytest.mark.parametrize("name", CASES)
def test_torch_twin_matches_pytorch_at_batch_1_and_3_and_lengths(name):
    cfg = CASES[name]
    torch.manual_seed(1)
    net = _Net(**cfg).eval()
    eng = rc.compile(rc.io.from_torch(net))
    assert eng.describe().startswith("embedding(40x8) > conv_time > pointwise > pool_time > ")
    ids = _ids((3, 23), seed=2)
    for b in (1, 3):
        want = _torch(net, ids[:b])
        np.testing.assert_allclose(eng.run(ids[:b]), want, rtol=1e-5, atol=1e-6)
    # per-row lengths: a row of length L is the module on its first L tokens (PyTorch pads none)
    k, s, p, d, k2 = (cfg.get(n, v) for n, v in (("k", 3), ("stride", 1), ("padding", 0), ("dilation", 1),
                                                 ("k2", 2)))
    L = np.array([23, 17, 9], np.int32)
    got = eng.run(ids, lengths=L)
    for b in range(3):
        n = _out_steps(int(L[b]), k, s, p, d, k2)
        assert n > 0
        want = _torch(net, ids[b:b + 1, :L[b]])[0]
        if cfg.get("last", True):
            np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6, err_msg=f"row {b}")
        else:
            np.testing.assert_allclose(got[b, :n], want, rtol=1e-5, atol=1e-6, err_msg=f"row {b}")
            np.testing.assert_array_equal(got[b, n:], 0)


def test_layers_after_the_front_end_are_not_folded_into_the_table():
    """A per-step Linear right after the Embedding folds into its table; one after the pooling runs
    in the front-end on the pooled rows (a fold there would be wrong: the rows are no token's)."""
    torch.manual_seed(3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, 5)
            self.pre = torch.nn.Linear(5, E)
            self.conv = torch.nn.Conv1d(E, 6, 3)
            self.pool = torch.nn.MaxPool1d(2)
            self.post = torch.nn.Linear(6, 4)
            self.gru = torch.nn.GRU(4, 7, batch_first=True)

        def forward(self, ids):
            y = self.pool(self.conv(torch.tanh(self.pre(self.emb(ids))).transpose(1, 2))).transpose(1, 2)
            return self.gru(torch.relu(self.post(y)))[0]

    net = Net().eval()
    spec = spec_from_model(rc.io.from_torch(net))
    assert np.shape(spec.embedding) == (V, E) and spec.front_input == E
    assert [r["kind"] for r in spec.front] == ["conv1d", "max_pool1d", "frame_conv1d", "relu"]
    eng = rc.compile(spec)
    ids = _ids((2, 20), seed=4)
    np.testing.assert_allclose(eng.run(ids), _torch(net, ids), rtol=1e-5, atol=1e-6)


def test_keras_imdb_cnn_lstm_matches_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    km = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(V, E),
        keras.layers.Dropout(0.25),
        keras.layers.Conv1D(64, 5, padding="valid", activation="relu", strides=1),
        keras.layers.MaxPooling1D(pool_size=4),
        keras.layers.LSTM(70),
        keras.layers.Dense(1),
        keras.layers.Activation("sigmoid"),
    ])
    ids = _ids((3, 30), seed=5)
    want = np.asarray(km.predict(ids, verbose=0))
    path = tmp_path / "imdb_cnn_lstm.keras"
    km.save(path)
    eng = rc.compile(rc.io.from_keras(str(path)))
    np.testing.assert_allclose(eng.run(ids), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eng.run(ids[:1]), want[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", [dict(cell="lstm", pool="avg", last=False),
                                 dict(cell="gru", pool="max", k=4)])
def test_onnx_export_matches_onnxruntime(tmp_path, cfg):
    """``Gather -> Transpose -> Conv -> Relu -> MaxPool / AveragePool -> Transpose -> LSTM / GRU``
    through rc.io.from_onnx (the Gather of a constant table by the ids: an Embedding)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(6)
    net = _Net(**cfg).eval()
    ids = _ids((3, 21), seed=6)
    f = tmp_path / "emb_front.onnx"
    torch.onnx.export(net, (torch.as_tensor(ids, dtype=torch.long),), str(f), dynamo=False,
                      input_names=["ids"], output_names=["y"], opset_version=17,
                      dynamic_axes={"ids": {0: "b", 1: "t"}, "y": {0: "b", 1: "t"}})
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"ids": ids.astype(np.int64)})[0]
    eng = rc.compile(rc.io.from_onnx(str(f)))
    np.testing.assert_allclose(eng.run(ids), want, rtol=1e-5, atol=1e-6)


def _causal_net(seed=7, pool="max", cell="gru"):
    """Valid convolution and pooling: each output step reads tokens up to its own (streamable)."""
    torch.manual_seed(seed)
    return _Net(k=3, k2=2, pool=pool, cell=cell, last=False).eval()


@pytest.mark.parametrize("pool,cell", [("max", "gru"), ("avg", "lstm")])
def test_q8_equals_the_numpy_q8_spec_on_every_isa_and_streams_with_its_bits(pool, cell):
    net = _causal_net(pool=pool, cell=cell)
    model = rc.io.from_torch(net)
    ids = _ids((3, 19), seed=8)
    eng = rc.compile(model, precision="q8")
    L = np.array([19, 12, 5], np.int32)
    c_equals_q8_reference(eng, ids, L)
    Y = c_equals_q8_reference(eng, ids)
    # q8 stays close to PyTorch (the q8 error, not a bit-exact claim)
    np.testing.assert_allclose(Y, _torch(net, ids), atol=0.05)
    # static scales calibrated on the ids (the layers' inputs are the front-end's rows)
    c_equals_q8_reference(rc.compile(model, precision="q8", calibration=_ids((4, 30), seed=9)), ids, L)
    for isa in rc.isa()["available"]:
        eng.set_isa(isa)
        Y = eng.run(ids)
        st = eng.stream(3)
        got, none = drive(st, ids)
        np.testing.assert_array_equal(np.stack(got, 1), Y, err_msg=isa)
        # the stream at step t has the output of run on the first t + 1 tokens (its last)
        for t in (4, 9):
            if not none[t]:
                part = eng.run(ids[:, :t + 1])
                np.testing.assert_array_equal(st_out_at(eng, ids, t), part[:, -1], err_msg=isa)


def st_out_at(eng, ids, t):
    st = eng.stream(ids.shape[0])
    for j in range(t + 1):
        y = st.step(ids[:, j])
    return y


def test_f32_stream_state_save_restore_and_steps_equal_run():
    net = _causal_net(seed=9)
    eng = rc.compile(rc.io.from_torch(net))
    ids = _ids((2, 22), seed=10)
    Y = eng.run(ids)
    np.testing.assert_allclose(Y, _torch(net, ids), rtol=1e-5, atol=1e-6)
    st = eng.stream(2)
    first, _ = drive(st, ids, 0, 11)
    saved = st.state
    rest, _ = drive(st, ids, 11)
    np.testing.assert_array_equal(np.stack(first + rest, 1), Y)
    st.state = saved   # the conv's and pooling's windows are in the state: the same steps again
    again, _ = drive(st, ids, 11)
    np.testing.assert_array_equal(np.stack(again, 1), np.stack(rest, 1))


def _file(precision="f32"):
    torch.manual_seed(11)
    data, _ = build_rnc(rc.io.from_torch(_Net(last=False).eval()), precision)
    return data


def _edit_record1(data: bytes, struct_name: str, **fields: int) -> bytes:
    """Record 1 (after the embedding record) given the u32 ``fields``, the checksum fixed."""
    b = bytearray(data)
    at = LAYOUT["hdr2"].size + LAYOUT["rec_embedding"].size
    assert struct.unpack_from("<I", b, at)[0] == 10   # conv_time
    for name, value in fields.items():
        struct.pack_into("<I", b, at + LAYOUT[struct_name].fields[name].offset, value)
    return fix_crc(b)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_a_width_that_disagrees_with_the_embedding_is_refused_alike(precision):
    data = _edit_record1(_file(precision), "rec_conv_time", in_channels=E + 1)
    want = f"record 1 (conv_time): in_channels: {E + 1}, expected {E}"
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    assert e.value.status == "CORRUPT"
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def test_instance_norm_and_log_mel_after_an_embedding_are_refused_by_name():
    torch.manual_seed(12)
    spec = spec_from_model(rc.io.from_torch(_Net(last=False).eval()))
    d = to_rnc_spec(spec, "f32")
    norm = {"kind": "instance_norm", "features": E, "eps": 1e-5,
            "tensors": {"weight": np.ones(E, np.float32), "bias": np.zeros(E, np.float32)}}
    d["front"] = [norm] + d["front"]
    with pytest.raises(ValueError, match=re.escape("front[0] (instance_norm): cannot follow an embedding")):
        write_rnc(d)


def test_a_file_with_instance_norm_after_the_embedding_is_refused_alike(monkeypatch):
    """Such a file, written past the writer's refusal: both loaders refuse it by name (EMB_SEQ_NORM)."""
    import rnncore.io.rnc as rnc

    torch.manual_seed(12)
    d = to_rnc_spec(spec_from_model(rc.io.from_torch(_Net(last=False).eval())), "f32")
    norm = {"kind": "instance_norm", "features": E, "eps": 1e-5,
            "tensors": {"weight": np.ones(E, np.float32), "bias": np.zeros(E, np.float32)}}
    d["front"] = [norm] + d["front"]
    monkeypatch.setattr(rnc, "_check_emb_front", lambda front: None)
    data = write_rnc(d)
    want = "record 1 (instance_norm): kind: kind 16 (instance_norm) after an embedding"
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    assert e.value.status == "UNSUPPORTED"
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)


def test_export_c_of_an_embedding_front_end_model_runs(tmp_path):
    """``rnncore export-c`` of such a model: its program, stepped and run, prints PyTorch's outputs."""
    import subprocess
    import sys
    from pathlib import Path

    from child_env import child_env

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(["make", "-C", str(root / "csrc"), "lib"], capture_output=True, text=True, timeout=900,
                       env=child_env())
    assert r.returncode == 0, r.stderr[-2000:]
    net = _causal_net(seed=13, pool="avg", cell="lstm")
    (tmp_path / "m.rnc").write_bytes(rc.compile(rc.io.from_torch(net)).data)
    src = tmp_path / "m.c"
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o", str(src)],
                       capture_output=True, text=True, cwd=root, env=child_env())
    assert r.returncode == 0, r.stderr
    exe = tmp_path / "m"
    r = subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{root / 'csrc' / 'include'}", str(src),
                        str(root / "csrc" / "build" / "librnncore.a"), "-lm", "-o", str(exe)],
                       capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    ids = _ids((1, 17), seed=14)
    ids[0].astype("<i4").tofile(tmp_path / "ids.i32")
    want = _torch(net, ids)[0]
    assert want.shape == (7, 3)   # 17 -> 15 (conv k3) -> 7 (pool 2)
    for mode in ([], ["--run"]):
        r = subprocess.run([str(exe), *mode, str(tmp_path / "ids.i32")], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        got = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()], np.float32)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(mode))
