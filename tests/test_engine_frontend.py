"""The C engine's per-step records (docs/rnc-format.md, "Per-step records"): a front-end of
FrameConv1d / Magnitude / activations before the recurrent layers and activations after them,
compiled from ``rc.nn.Sequential`` models, against the NumPy reference (float64), PyTorch's
conv1d, the engine's own stream (step by step), saved and restored states, ``.rnc`` round trips
and ``export-c`` built and run on this host.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from _helpers import randn32
from export_c_run import exported_outputs

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.spec import spec_from_model, spec_from_rnc, to_rnc_spec

nn = rc.nn
ROOT = Path(__file__).resolve().parents[1]


def vad_like(seed: int = 0, cell=nn.LSTM, frame: int = 40) -> nn.Sequential:
    """Silero VAD's shape in small: the STFT by a strided frame conv (reflect padding, no bias),
    its magnitude, frame convs with activations, a recurrent layer, ReLU, a 1x1 head, sigmoid."""
    return nn.Sequential(
        nn.FrameConv1d(1, 18, 16, frame_length=frame, stride=8, padding=(0, 8), padding_mode="reflect",
                       bias=False, seed=seed),
        nn.Magnitude(),
        nn.FrameConv1d(9, 8, 3, frame_length=(frame + 8 - 16) // 8 + 1, padding=1, seed=seed + 1),
        nn.ReLU(),
        nn.FrameConv1d(8, 6, 3, frame_length=(frame + 8 - 16) // 8 + 1, padding=1, stride=2, seed=seed + 2),
        nn.ReLU(),
        cell(18, 16, seed=seed + 3),
        nn.ReLU(),
        nn.Linear(16, 1, seed=seed + 4),
        nn.Sigmoid(),
    )


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_vad_shaped_model_runs_as_the_numpy_model(cell):
    m = vad_like(cell=cell)
    X = randn32((3, 11, 40))
    ref = m.forward(X.astype(np.float64))
    eng = rc.compile(m)
    assert eng.describe().startswith("frame_conv > magnitude > frame_conv > pointwise > frame_conv")
    Y = eng.run(X)
    assert Y.shape == ref.shape == (3, 11, 1)
    assert np.abs(ref - 0.5).max() > 0.05   # the model is not flat
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-6)


def test_stream_step_by_step_equals_the_run_and_state_restores():
    eng = rc.compile(vad_like(seed=3))
    X = randn32((2, 9, 40), seed=1)
    Y = eng.run(X)
    st = eng.stream(batch=2)
    got = [st.step(X[:, t]) for t in range(5)]
    saved = st.state
    got += [st.step(X[:, t]) for t in range(5, 9)]
    np.testing.assert_allclose(np.stack(got, 1), Y, rtol=0, atol=1e-6)
    st.state = saved   # back to after step 5: the same last four outputs again
    again = np.stack([st.step(X[:, t]) for t in range(5, 9)], 1)
    np.testing.assert_array_equal(again, np.stack(got[5:], 1))
    st.reset()
    np.testing.assert_array_equal(st.step(X[:, 0]), got[0])


def test_lengths_zero_past_each_length_and_match_the_numpy_model_within():
    m = vad_like(seed=5)
    X = randn32((3, 8, 40), seed=2)
    lengths = np.array([8, 5, 1])
    ref = m.forward(X.astype(np.float64))   # per-step layers and a causal recurrent layer:
    Y = rc.compile(m).run(X, lengths=lengths)   # the valid steps do not see the padding
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(Y[b, :n], ref[b, :n], rtol=0, atol=1e-6)
        assert not Y[b, n:].any()


@pytest.mark.parametrize("act", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.HardSigmoid(),
                                 nn.HardSigmoid(alpha=0.2, beta=0.5), nn.GELU(), nn.GELU("tanh"),
                                 nn.LeakyReLU(), nn.LeakyReLU(0.3), nn.ELU(), nn.ELU(0.7),
                                 nn.Hardtanh(), nn.ReLU6(), nn.Hardtanh(-float("inf"), 0.5), nn.SiLU(),
                                 nn.Hardswish(), nn.Softplus(), nn.Softplus(2.0, 0.5), nn.Softsign()],
                         ids=["relu", "sigmoid", "tanh", "hardsigmoid_torch", "hardsigmoid_onnx", "gelu",
                              "gelu_tanh", "leakyrelu", "leakyrelu_0.3", "elu", "elu_0.7",
                              "hardtanh", "relu6", "hardtanh_-inf_0.5", "silu", "hardswish", "softplus",
                              "softplus_2_0.5", "softsign"])
def test_every_activation_before_and_after_the_recurrent_layer(act):
    m = nn.Sequential(nn.FrameConv1d(2, 3, 2, frame_length=4, seed=1), act,
                      nn.GRU(9, 7, seed=2), act, nn.Linear(7, 2, seed=3))
    X = randn32((2, 6, 8), seed=4, scale=2.0)
    np.testing.assert_allclose(rc.compile(m).run(X), m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)


def test_activations_after_last_step():
    m = nn.Sequential(nn.FrameConv1d(1, 4, 3, frame_length=6, seed=0), nn.LSTM(16, 5, seed=1), nn.Tanh(),
                      nn.LastStep(), nn.GELU(), nn.Linear(5, 3, seed=2))
    m2 = nn.Sequential(nn.FrameConv1d(1, 4, 3, frame_length=6, seed=0), nn.LSTM(16, 5, seed=1), nn.Tanh(),
                       nn.LastStep(), nn.Sigmoid(), nn.Linear(5, 3, seed=2))
    X = randn32((4, 7, 6), seed=3)
    lengths = np.array([7, 3, 1, 2])
    for model in (m, m2):
        eng = rc.compile(model)
        assert eng.describe() == "frame_conv > lstm(5) > pointwise > last_step > pointwise > linear(5->3)"
        np.testing.assert_allclose(eng.run(X, lengths=lengths),
                                   model.forward(X.astype(np.float64), lengths=lengths), rtol=0, atol=1e-6)
    # an empty sequence pools a zero vector (docs/c-api.md), then the activation and the head:
    # sigmoid(0) = 0.5 reaches the head
    y0 = eng.run(X, lengths=np.array([7, 0, 1, 2]))[1]
    np.testing.assert_allclose(y0, m2[5].forward(np.full((1, 5), 0.5))[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(in_channels=4, out_channels=6, kernel_size=3, frame_length=9, stride=2, padding=(2, 1), groups=2),
    dict(in_channels=3, out_channels=3, kernel_size=2, frame_length=8, dilation=3, groups=3, padding=1),
    dict(in_channels=2, out_channels=40, kernel_size=5, frame_length=11, padding=(4, 3),
         padding_mode="reflect", stride=3),
    dict(in_channels=1, out_channels=2, kernel_size=4, frame_length=70, stride=1, bias=False),  # 67 positions
    # one-sample frames through a 1x1 kernel (the VAD showcase's): x's channels are the column
    dict(in_channels=32, out_channels=32, kernel_size=1, frame_length=1),
    dict(in_channels=6, out_channels=4, kernel_size=1, frame_length=1, groups=2),
    dict(in_channels=3, out_channels=2, kernel_size=1, frame_length=1, padding=(0, 1)),  # 2 positions
])
def test_frame_conv_matches_torch_conv1d(kw):
    """The engine's frame_conv against torch.nn.functional.conv1d on each step's frame."""
    torch = pytest.importorskip("torch")
    conv = nn.FrameConv1d(**kw, seed=7, dtype="float32")
    feat = conv.out_features
    m = nn.Sequential(conv, nn.RNN(feat, 3, seed=1))
    eng = rc.compile(m)
    X = randn32((2, 3, conv.in_features), seed=8)
    # the front-end's output as the RNN sees it: W_ih of an identity-sized probe is not
    # available, so compare the whole model with torch doing the conv and the NumPy RNN the rest
    frames = torch.from_numpy(X.reshape(6, kw["in_channels"], kw["frame_length"]).astype(np.float64))
    pl, pr = conv.pad_left, conv.pad_right
    frames = torch.nn.functional.pad(frames, (pl, pr), mode=kw.get("padding_mode", "constant").replace(
        "zeros", "constant"))
    w = torch.from_numpy(conv.params["weight"].astype(np.float64))
    b = None if "bias" not in conv.params else torch.from_numpy(conv.params["bias"].astype(np.float64))
    y = torch.nn.functional.conv1d(frames, w, b, stride=conv.stride, dilation=conv.dilation,
                                   groups=conv.groups).numpy().reshape(2, 3, feat)
    rnn = nn.RNN(feat, 3, seed=1)
    want = rnn.forward(y)[0]
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=2e-6)


def test_rnc_round_trip_and_loaded_engine():
    m = vad_like(seed=2)
    eng = rc.compile(m)
    d = read_rnc(eng.data)
    assert [r["kind"] for r in d["front"]] == ["frame_conv1d", "magnitude", "frame_conv1d", "relu",
                                               "frame_conv1d", "relu"]
    assert d["post"] == [{"kind": "relu"}] and d["post_pooled"] == []
    assert d["front"][0]["padding_mode"] == "reflect" and not d["front"][0]["tensors"]["bias"].any()
    np.testing.assert_array_equal(d["front"][2]["tensors"]["weight"],
                                  m[2].params["weight"].astype(np.float32))
    # read -> spec -> write gives the same bytes
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data
    X = randn32((1, 4, 40))
    np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


def test_q4_and_misplaced_records_are_refused_naming_what():
    m = vad_like()
    with pytest.raises(ValueError, match=r"front\[0\] \(frame_conv1d\): the C core runs per-step records in "
                                         r"f32 and q8 files only"):
        rc.compile(m, precision="q4")
    # a "valid" Conv1d over time runs (a look-ahead of 2 steps, tests/test_engine_lookahead.py);
    # padding beyond its window does not
    with pytest.raises(ValueError, match=r"front\[1\] \(conv1d\): padding \(1, 1\); the C core runs "
                                         r"Conv1d over time with each side's zero padding in "):
        rc.compile(nn.Sequential(nn.FrameConv1d(1, 2, 2, frame_length=4), nn.Conv1d(6, 6, 1, padding=1),
                                 nn.GRU(6, 4)))
    with pytest.raises(ValueError, match=r"module '2' \(Embedding\) is not supported at this position"):
        rc.compile(nn.Sequential(nn.GRU(3, 4), nn.Linear(4, 2), nn.Embedding(3, 2)))
    # element-wise layers reading the input keep its width: the recurrent layer's input size
    relu_first = nn.Sequential(nn.ReLU(), nn.GRU(3, 4))
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(rc.compile(relu_first).run(x), relu_first.forward(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="a front-end must start with a layer that gives the input width"):
        rc.compile(nn.Sequential(nn.MulHalves(), nn.GRU(3, 4)))
    # a q4 file with a per-step record: refused by the C loader and the reader with one line; in a
    # q8 file a frame_conv record carries the 8-byte fconvq8 tail (tests/test_engine_front_q8.py)
    spec = to_rnc_spec(spec_from_model(m), "f32")
    for precision, want in ((2, "record 0 (frame_conv): kind: kind 5 (frame_conv) in a q4 file"),
                            (1, "record 0 (frame_conv): size: 64, expected 72")):
        data = bytearray(write_rnc(spec))
        struct.pack_into("<I", data, 20, precision)   # header precision
        struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
        with pytest.raises(RncFormatError, match=re.escape(want)):
            check_rnc(bytes(data))
        with pytest.raises(ValueError, match=re.escape(want)):
            rc.load(bytes(data))


def _front_spec(**conv) -> dict:
    rng = np.random.default_rng(0)
    c = {"kind": "frame_conv1d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "frame_length": 5}
    c.update(conv)
    c["tensors"] = {"weight": rng.standard_normal((4, 2, c["kernel_size"])), "bias": None}
    return {"precision": "f32", "input_size": 10, "front": [c],
            "layers": [{"kind": "gru", "weights": {"weight_ih": rng.standard_normal((12, 12)),
                                                   "weight_hh": rng.standard_normal((12, 4))}}]}


@pytest.mark.parametrize("offset, value, want", [
    (8, 3, "record 0 (frame_conv): frame_length: 15, expected 10"),               # in_channels
    (32, 3, "record 0 (frame_conv): groups: 3 does not divide in_channels 2 and out_channels 4"),
    (16, 9, "record 0 (frame_conv): kernel_size: frame of 5 samples + padding (0, 0) is shorter than one "
            "window of 9"),
    (44, 2, "record 0 (frame_conv): padding_mode: 2, expected 0..1"),
    (24, 0, "record 0 (frame_conv): stride: 0, expected 1..65536"),
    (20, 0, "record 0 (frame_conv): frame_length: 0, expected 1..1048576"),
])
def test_corrupted_frame_conv_records_are_refused_alike(offset, value, want):
    data = bytearray(write_rnc(_front_spec()))
    struct.pack_into("<I", data, 64 + offset, value)
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(bytes(data))
    assert e.value.status == "CORRUPT"
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bytes(data))


def test_reflect_padding_longer_than_the_frame_is_refused():
    spec = _front_spec(pad_left=5, kernel_size=8, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"reflect padding must be < frame_length 5"):
        write_rnc(spec)
    data = bytearray(write_rnc(_front_spec(pad_left=4, kernel_size=7, padding_mode="reflect")))
    struct.pack_into("<I", data, 64 + 36, 5)   # pad_left 5 (the weights' size does not depend on it)
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    with pytest.raises(ValueError, match=re.escape("pad_left: padding (5, 0): reflect padding must be < "
                                                   "frame_length 5")):
        rc.load(bytes(data))


def test_front_end_overflow_is_a_floating_point_error_not_a_number():
    m = nn.Sequential(nn.FrameConv1d(1, 2, 2, frame_length=4, seed=0), nn.Magnitude(), nn.GRU(3, 4, seed=1))
    eng = rc.compile(m)
    X = np.full((1, 2, 4), 3e38, np.float32)   # finite input, |re|^2 overflows
    with pytest.raises(FloatingPointError, match=r"run: the front-end's output .* is NaN/Inf"):
        eng.run(X)
    st = eng.stream()
    with pytest.raises(FloatingPointError, match=r"step: the front-end's output"):
        st.step(X[:, 0])


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_of_a_front_end_model_runs_on_this_host(tmp_path, precision):
    """The exported program (the .rnc as a const array, linked with the C core) gives the Python
    engine's outputs, f32 and q8 (int8 frame convolutions), by step and by run."""
    eng = rc.compile(vad_like(seed=9), precision)
    X = randn32((13, 40), seed=11)
    want = eng.run(X[None])[0]
    for mode, y in exported_outputs(tmp_path, eng.data, X, "vad").items():
        np.testing.assert_allclose(y, want, rtol=0, atol=1e-6, err_msg=mode)


def test_layer_norm_and_batch_norm_before_and_after_the_recurrent_layer():
    """LayerNorm (kind 8) and BatchNorm1d in inference as its scale and shift (kind 9, computed
    from the running statistics at compile time) against the NumPy layers, run and stream."""
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(6)
    bn.buffers["running_mean"][:] = rng.standard_normal(6)
    bn.buffers["running_var"][:] = rng.uniform(0.5, 2.0, 6)
    bn.params["weight"][:] = rng.standard_normal(6)
    bn.params["bias"][:] = rng.standard_normal(6)
    ln = nn.LayerNorm(6)
    ln.params["weight"][:] = rng.standard_normal(6)
    ln.params["bias"][:] = rng.standard_normal(6)
    m = nn.Sequential(ln, bn, nn.GELU(), nn.GRU(6, 7, seed=1),
                      nn.LayerNorm(7, eps=1e-3, elementwise_affine=False), nn.ReLU(), nn.Linear(7, 2, seed=2))
    X = (rng.standard_normal((3, 5, 6)) * 3).astype(np.float32)
    eng = rc.compile(m)
    assert eng.describe() == ("layer_norm > scale_shift > pointwise > gru(7) > layer_norm > pointwise > "
                              "linear(7->2)")
    Y = eng.run(X)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-6)
    st = eng.stream(batch=3)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(5)], 1), Y, rtol=0, atol=1e-6)
    d = read_rnc(eng.data)
    assert [r["kind"] for r in d["front"]] == ["layer_norm", "scale_shift", "gelu"]
    assert write_rnc(to_rnc_spec(spec_from_rnc(d), "f32")) == eng.data
    bad = bytearray(eng.data)
    struct.pack_into("<f", bad, 64 + 12, 0.0)   # the first record's eps
    struct.pack_into("<I", bad, 12, zlib.crc32(bytes(bad[16:])) & 0xFFFFFFFF)
    want = "record 0 (layer_norm): eps: bits 0x0: expected a finite value > 0"
    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(bytes(bad))
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bytes(bad))


def test_an_odd_width_before_a_magnitude_is_refused_alike():
    rng = np.random.default_rng(0)
    spec = {"precision": "f32", "input_size": 6, "front": [{"kind": "relu"}, {"kind": "magnitude"}],
            "layers": [{"kind": "rnn", "weights": {"weight_ih": rng.standard_normal((4, 3)),
                                                   "weight_hh": rng.standard_normal((4, 4))}}]}
    data = bytearray(write_rnc(spec))
    struct.pack_into("<I", data, 24, 5)        # header input_size 5
    struct.pack_into("<I", data, 64 + 8, 5)    # the pointwise record's features
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    want = "record 1 (magnitude): kind: 5 input features, expected an even number (re | im)"
    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(bytes(data))
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bytes(data))
