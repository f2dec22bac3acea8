"""The C engine's residual add (kind 12, docs/rnc-format.md) and the q8 conv_time (a causal Conv1d
over time with int8 weights, docs/q8-contract.md).

residual: ``Residual(f)`` of the NumPy reference compiled, before the recurrent layers, after them
and after last_step, nested, f32 and q8: against the NumPy model (float64) and a hand-written
PyTorch module (independent), the stream frame by frame against the run (bit for bit), the state
saved and restored, both loaders' refusals of a mutated file, ``.rnc`` round trips and
``export-c`` built and run on this host.

q8 conv_time: the engine equals the NumPy q8 spec (rnncore.quant.front.conv_time_q8) bit for bit on
every ISA path of this CPU, streams with the bits of its run, saves/restores its window, is close to
the f32 model, reads back and writes the same bytes, and refuses a mutated file as the reader does.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from _helpers import assert_stream_restores, c_equals_q8_reference, randn32, refused_alike
from export_c_run import exported_outputs
from rnc_mutations import fix_crc

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc

nn = rc.nn
ISAS = rc.isa()["available"]


def _ln(n, seed):
    ln = nn.LayerNorm(n)
    rng = np.random.default_rng(seed)
    ln.params["weight"][:] = rng.standard_normal(n)
    ln.params["bias"][:] = rng.standard_normal(n)
    return ln


def hybrid(seed: int = 0, cell=nn.GRU, last_step: bool = False, exact: bool = False) -> nn.Sequential:
    """Causal convolutions with residual blocks (one nested) before a recurrent layer, residual
    activations after it (and after last-step pooling), a head. exact: activations whose float32
    form is exact in NumPy (hard sigmoid, ReLU; tanh, GELU, sigmoid call the C library's tanhf,
    erff, expf in the engine), for the q8 bit-for-bit comparisons."""
    body = [
        nn.Conv1d(5, 6, 3, padding="causal", seed=seed),
        nn.Residual(nn.Sequential(
            nn.Conv1d(6, 6, 2, padding="causal", dilation=2, seed=seed + 1),
            nn.ReLU(),
            nn.Residual(_ln(6, seed + 2)),
        )),
        nn.Residual(nn.Conv1d(6, 6, 3, padding="causal", groups=2, seed=seed + 3)),
        nn.HardSigmoid() if exact else nn.Tanh(),
        cell(6, 8, seed=seed + 4),
        nn.Residual(nn.HardSigmoid() if exact else nn.Tanh()),
        nn.Residual(nn.Sequential(_ln(8, seed + 5), nn.ReLU() if exact else nn.GELU())),
    ]
    if last_step:
        body += [nn.LastStep(), nn.Residual(nn.Sigmoid())]
    return nn.Sequential(*body, nn.Linear(8, 3, seed=seed + 6))


KINDS = ("conv_time > conv_time > pointwise > layer_norm > residual > residual > conv_time > residual > "
         "pointwise > ")


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_residual_run_matches_the_numpy_model_and_the_stream_gives_the_same_bits(cell):
    m = hybrid(cell=cell)
    X = randn32((3, 15, 5))
    lengths = np.array([15, 9, 1])
    ref = m.forward(X.astype(np.float64), lengths=None)
    eng = rc.compile(m)
    assert eng.describe() == KINDS + f"{cell.__name__.lower()}(8) > pointwise > residual > layer_norm > " \
        "pointwise > residual > linear(8->3)"
    Y = eng.run(X)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-5)
    Yl = eng.run(X, lengths)
    np.testing.assert_array_equal(Yl[1, :9], Y[1, :9])   # causal: a shorter sequence, the same steps
    assert np.all(Yl[1, 9:] == 0) and np.all(Yl[2, 1:] == 0)
    for isa in ISAS:
        eng.set_isa(isa)
        Yi = eng.run(X)
        np.testing.assert_allclose(Yi, ref, rtol=0, atol=1e-5, err_msg=isa)
        st = eng.stream(batch=3)
        steps = [st.step(X[:, t]) for t in range(8)]
        saved = st.state
        steps += [st.step(X[:, t]) for t in range(8, 15)]
        np.testing.assert_array_equal(np.stack(steps, 1), Yi, err_msg=isa)
        st.state = saved
        np.testing.assert_array_equal(np.stack([st.step(X[:, t]) for t in range(8, 15)], 1), Yi[:, 8:])


def test_residual_after_last_step_pooling():
    m = hybrid(seed=3, last_step=True)
    X = randn32((4, 7, 5), seed=1)
    lengths = np.array([7, 3, 5, 1])
    eng = rc.compile(m)
    assert eng.describe().endswith("last_step > pointwise > residual > linear(8->3)")
    np.testing.assert_allclose(eng.run(X, lengths), m.forward(X.astype(np.float64), lengths=lengths),
                               rtol=0, atol=1e-5)


def test_residual_against_a_hand_written_pytorch_module():
    """x + conv(x) and h + tanh(h) in PyTorch, the same weights loaded into rc.nn."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 4, 3, dilation=2)
            self.gru = torch.nn.GRU(4, 6, batch_first=True)
            self.head = torch.nn.Linear(6, 2)

        def forward(self, x):
            y = x + self.conv(F.pad(x.transpose(1, 2), (4, 0))).transpose(1, 2)
            h = self.gru(y)[0]
            return self.head(h + torch.tanh(h))

    tm = Net().eval()
    m = nn.Sequential(nn.Residual(nn.Conv1d(4, 4, 3, padding="causal", dilation=2)), nn.GRU(4, 6),
                      nn.Residual(nn.Tanh()), nn.Linear(6, 2))
    m[0].fn.load_state_dict(tm.conv.state_dict())
    m[1].load_state_dict(tm.gru.state_dict())
    m[3].load_state_dict(tm.head.state_dict())
    X = randn32((2, 12, 4), seed=4)
    with torch.no_grad():
        want = tm(torch.as_tensor(X)).numpy()
    eng = rc.compile(m)
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    st = eng.stream(2)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(12)], 1), want, rtol=0, atol=1e-5)


def test_torch_fx_imports_x_plus_f_of_x_as_a_residual_and_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv0 = torch.nn.Conv1d(5, 6, 2)
            self.conv = torch.nn.Conv1d(6, 6, 3, dilation=2)
            self.ln = torch.nn.LayerNorm(6)
            self.gru = torch.nn.GRU(6, 7, batch_first=True)
            self.head = torch.nn.Linear(7, 2)

        def forward(self, x):                       # x (B, T, 5)
            x = self.conv0(F.pad(x.transpose(1, 2), (1, 0)))
            x = x + torch.relu(self.conv(F.pad(x, (4, 0))))          # (B, F, T): a residual block
            x = x.transpose(1, 2)
            x = x + self.ln(x)                      # (B, T, F)
            h = self.gru(x)[0]
            h = torch.tanh(h) + h                   # f(x) + x
            return self.head(h)

    torch.manual_seed(5)
    tm = Block().eval()
    m = rc.io.from_torch(tm)
    assert [type(c).__name__ for _, c in m.children()] == ["Conv1d", "Residual", "Residual", "GRU",
                                                           "Residual", "Linear"]
    X = randn32((2, 10, 5), seed=6)
    with torch.no_grad():
        want = tm(torch.as_tensor(X)).numpy()
    eng = rc.compile(m)
    assert eng.describe() == ("conv_time > conv_time > pointwise > residual > layer_norm > residual > "
                              "gru(7) > pointwise > residual > linear(7->2)")
    np.testing.assert_allclose(eng.run(X), want, rtol=0, atol=1e-5)
    st = eng.stream(2)
    np.testing.assert_allclose(np.stack([st.step(X[:, t]) for t in range(10)], 1), want, rtol=0, atol=1e-5)

    class NotAChain(torch.nn.Module):   # y = relu(x); z = tanh(x); y + z: two branches of x
        def __init__(self) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(4, 4, batch_first=True)
            self.ln = torch.nn.LayerNorm(4)

        def forward(self, x):
            h = self.gru(x)[0]
            return torch.relu(h) + self.ln(h)

    with pytest.raises(ValueError, match=r"node 'ln'.*reads the data of an earlier point of the chain"):
        rc.io.from_torch(NotAChain())


@pytest.mark.filterwarnings("ignore")
def test_onnx_add_of_x_and_an_activation_of_it_compiles_and_matches_onnxruntime():
    """torch.onnx (classic) of x + relu(x) before a GRU and y + tanh(y) after it: a residual around
    per-step activations, against onnxruntime on the same bytes, and y + a Linear of y."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import io

    from rnncore.io import from_onnx

    class ResTail(torch.nn.Module):
        def __init__(self, linear_inside: bool = False) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(6, 8)
            self.fc = torch.nn.Linear(8, 3)
            self.inner = torch.nn.Linear(8, 8)
            self.linear_inside = linear_inside

        def forward(self, x):                    # x (T, B, 6)
            x = x + torch.relu(x)
            y, _ = self.gru(x)
            y = y + (self.inner(y) if self.linear_inside else torch.tanh(y))
            return self.fc(y)

    def export(net):
        f = io.BytesIO()
        torch.onnx.export(net.eval(), (torch.randn(5, 2, 6),), f, input_names=["x"], output_names=["y"],
                          dynamo=False, opset_version=14, dynamic_axes={"x": {0: "T", 1: "b"}})
        return f.getvalue()

    torch.manual_seed(2)
    blob = export(ResTail())
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == "pointwise > residual > gru(8) > pointwise > residual > linear(8->3)"
    x = randn32((9, 3, 6), seed=3)
    want = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = eng.run(np.ascontiguousarray(x.transpose(1, 0, 2))).transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # y + Linear(y): the Linear is a per-step record (tests/test_onnx_seq_linear.py), so it runs too
    blob = export(ResTail(linear_inside=True))
    eng = rc.compile(from_onnx(blob))
    want = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = eng.run(np.ascontiguousarray(x.transpose(1, 0, 2))).transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_residual_file_round_trip_and_the_description():
    for precision in ("f32", "q8"):
        eng = rc.compile(hybrid(seed=2), precision)
        d = read_rnc(eng.data)
        kinds = [(r["kind"], r.get("span")) for r in d["front"]]
        assert kinds == [("conv1d", None), ("conv1d", None), ("relu", None), ("layer_norm", None),
                         ("residual", 1), ("residual", 4), ("conv1d", None), ("residual", 1), ("tanh", None)]
        assert [(r["kind"], r.get("span")) for r in d["post"]] == [
            ("tanh", None), ("residual", 1), ("layer_norm", None), ("gelu", None), ("residual", 2)]
        assert write_rnc(d) == eng.data
        X = randn32((1, 6, 5))
        np.testing.assert_array_equal(rc.load(eng.data).run(X), eng.run(X))


def test_models_the_c_core_cannot_run_are_refused_naming_the_layer():
    # (a Linear inside a Residual is a per-step record: tests/test_engine_linear_step.py)
    with pytest.raises(ValueError, match=r"module '0' \(Residual\) wraps no per-step layer"):
        rc.compile(nn.Sequential(nn.Residual(nn.Dropout(0.1)), nn.GRU(4, 3)))
    with pytest.raises(ValueError, match=r"module '2.fn' \(Conv1d\) inside a Residual is not a per-step "
                                         r"layer the C core runs after the recurrent layers"):
        rc.compile(nn.Sequential(nn.GRU(4, 4), nn.ReLU(), nn.Residual(nn.Conv1d(4, 4, 1)), nn.Linear(4, 1)))
    spec = {"precision": "f32", "input_size": 4,
            "front": [{"kind": "relu"}, {"kind": "residual", "span": 2}],
            "layers": [{"kind": "gru", "weights": {"weight_ih": np.ones((12, 4)),
                                                   "weight_hh": np.ones((12, 3))}}]}
    with pytest.raises(ValueError, match=r"front\[1\] \(residual\): span must be 1..1"):
        write_rnc(spec)
    spec["front"] = [{"kind": "magnitude"}, {"kind": "residual", "span": 1}]
    spec["layers"][0]["weights"]["weight_ih"] = np.ones((12, 2))
    with pytest.raises(ValueError, match=r"front\[1\] \(residual\): the input of front\[0\] has 4 features, "
                                         r"f gives 2"):
        write_rnc(spec)


def _edit(data: bytes, record: int, at: int, value: int) -> bytes:
    """data with the u32 at byte `at` of record `record` set, the checksum fixed."""
    b = bytearray(data)
    pos = 64
    for _ in range(record):
        pos += struct.unpack_from("<I", b, pos + 4)[0]
    struct.pack_into("<I", b, pos + at, value)
    return fix_crc(b)


def _small() -> bytes:
    """magnitude > relu > residual(span 1) > gru: widths 8 -> 4 -> 4 -> 4."""
    return rc.compile(nn.Sequential(nn.LayerNorm(8), nn.Magnitude(), nn.Residual(nn.ReLU()),
                                    nn.GRU(4, 3, seed=1))).data


@pytest.mark.parametrize("record, at, value, status, want", [
    (3, 12, 0, "CORRUPT", "record 3 (residual): span: 0, expected 1..3 (the per-step and "
                          "recurrent records right before this one)"),
    (3, 12, 4, "CORRUPT", "record 3 (residual): span: 4, expected 1..3"),
    (3, 12, 2, "CORRUPT", "record 3 (residual): span: 2: the record that many back takes 8 features, "
                          "this one 4 (they must agree)"),
    (3, 8, 5, "CORRUPT", "record 3 (residual): features: 5, expected 4"),
])
def test_mutated_residual_records_are_refused_alike(record, at, value, status, want):
    data = _small()
    assert rc.load(data).describe() == "layer_norm > magnitude > pointwise > residual > gru(3)"
    refused_alike(_edit(data, record, at, value), want, status)


def test_a_residual_with_no_source_in_its_section_is_refused_alike():
    """Right after last_step (its source would be before it): the sequence check. (Right after a
    recurrent record it is a residual around that layer: tests/test_engine_residual_rnn.py.)"""
    data = rc.compile(nn.Sequential(nn.GRU(4, 4, seed=0), nn.LastStep(), nn.Residual(nn.ReLU()))).data
    data = _edit(data, 2, 0, 12)   # records gru, last_step, relu, residual: the relu's kind made 12
    refused_alike(data, "record 2: kind: kind 12 (residual) cannot come after last_step")


# ---- q8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_q8_conv_time_and_residual_equal_the_numpy_spec_bit_for_bit_on_every_isa(cell):
    m = hybrid(seed=4, cell=cell, exact=True)
    e = rc.compile(m, precision="q8")
    assert e.precision == "q8"
    d = read_rnc(e.data)
    conv = d["front"][1]["tensors"]
    assert conv["qweight"].dtype == np.int8 and conv["qweight"].shape == (6, 6, 2)
    assert np.abs(conv["qweight"]).max() == 127
    X = randn32((3, 11, 5), seed=5, scale=2.0)
    lengths = np.array([11, 6, 2])
    ref = c_equals_q8_reference(e, X, lengths)
    assert np.all(ref[1, 6:] == 0) and np.abs(ref[0]).max() > 0.1
    # the q8 model is the f32 one quantised: close, not equal
    y32 = rc.compile(m).run(X, lengths)
    err = np.abs(ref - y32).max()
    assert 0 < err < 0.02 * np.abs(y32).max(), err   # measured 0.84 % (GRU), 0.76 % (LSTM)


def test_q8_conv_time_streams_with_the_bits_of_its_run_and_restores_its_window():
    e = rc.compile(hybrid(seed=6, cell=nn.LSTM), precision="q8")
    X = randn32((2, 10, 5), seed=7)
    whole = e.run(X)
    for isa in ISAS:
        e.set_isa(isa)
        s = assert_stream_restores(e, X, whole, 4, err_msg=isa)
        s.reset()
        np.testing.assert_array_equal(s.step(X[:, 0].copy()), whole[:, 0], err_msg=isa)


def test_q8_conv_time_spec_by_hand():
    """conv_time_q8 against the definition written out for one step: the taps, one scale, int32 sums."""
    from rnncore.quant.front import conv_time_q8
    from rnncore.quant.scheme import quantize_weights

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 1, 3)).astype(np.float32)   # groups = 2: C_in 2, C_out 4
    wq, s = quantize_weights(w.reshape(4, 3))
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((1, 5, 2)).astype(np.float32)
    rec = {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "dilation": 2, "groups": 2,
           "qweight": wq.reshape(4, 1, 3), "scale": s, "bias": b}
    y = conv_time_q8(rec, x)
    t = 3   # taps x_{t-4}, x_{t-2}, x_t: x_{-1} = 0
    v = np.array([[0.0, x[0, 1, c], x[0, 3, c]] for c in range(2)], np.float32).reshape(-1)
    sx = np.float32(np.abs(v).max() / np.float32(127))
    q = np.rint(v * (np.float32(127) / np.abs(v).max())).astype(np.int64)
    for o in range(4):
        c = o // 2
        acc = int((wq[o].astype(np.int64) * q[c * 3:(c + 1) * 3]).sum())
        assert y[0, t, o] == np.float32(np.float32(acc) * np.float32(sx * s[o]) + b[o])
    # the float32 model it approximates
    full = np.concatenate([np.zeros((1, 4, 2), np.float32), x], 1)
    want = np.stack([np.array([sum(w[o, 0, j] * full[0, tt + 2 * j, o // 2] for j in range(3)) + b[o]
                               for o in range(4)]) for tt in range(5)])
    np.testing.assert_allclose(y[0], want, rtol=0, atol=0.05)


def test_q8_conv_time_file_round_trip_and_mutations():
    e8 = rc.compile(hybrid(seed=1), precision="q8")
    e32 = rc.compile(hybrid(seed=1))
    d = read_rnc(e8.data)
    assert write_rnc(d) == e8.data
    # a conv_time kept in float32 inside a q8 file (no scales): f32 weights, read back as such
    d32 = read_rnc(e32.data)
    d["front"][0] = {**d["front"][0], "tensors": dict(d32["front"][0]["tensors"]), "precision": "f32"}
    data = write_rnc(d)
    back = read_rnc(data)
    assert back["front"][0].get("precision") == "f32" and "qweight" not in back["front"][0]["tensors"]
    X = randn32((2, 6, 5), seed=3)
    y = rc.Engine(data).run(X)
    assert np.abs(y - e8.run(X)).max() > 0
    # the record is 56 bytes in a q8 file (the fconvq8 tail); without its scales the int8 weight
    # tensor's size is refused by both loaders (16 rows x 5 channels x 3 taps: 240 f32 floats)
    assert struct.unpack_from("<I", e8.data, 64 + 4)[0] == 56
    bad = bytearray(e8.data)
    bad[64 + 48:64 + 56] = bytes(8)
    refused_alike(fix_crc(bad), "record 0 (conv_time): weight: tensor of 256 bytes, expected 960",
                  load=rc.Engine)
    # an f32 file's 48-byte record read as q8: its size
    bad = bytearray(e32.data)
    struct.pack_into("<I", bad, 20, 1)
    refused_alike(fix_crc(bad), "record 0 (conv_time): size: 48, expected 56", load=rc.Engine)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_of_a_residual_conv_time_model_runs_on_this_host(tmp_path, precision):
    eng = rc.compile(hybrid(seed=8, cell=nn.LSTM), precision)
    X = randn32((12, 5), seed=9)
    want = eng.run(X[None])[0]
    for mode, y in exported_outputs(tmp_path, eng.data, X, "hybrid").items():
        np.testing.assert_allclose(y, want, rtol=0, atol=1e-6, err_msg=mode)


def test_calibrated_q8_models_with_per_step_records():
    """rc.compile(model, "q8", calibration=X) measures the recurrent layers' and the head's inputs
    after the per-step records: their float form (rnncore.quant.front.float_step_records) equals
    the rc.nn model (every record kind), and the calibrated engine equals its NumPy q8 reference
    bit for bit and stays close to the f32 engine."""
    from test_engine_frontend import vad_like

    from rnncore.quant.reference import forward
    from rnncore.spec import spec_from_model

    bn = nn.BatchNorm1d(6)
    bn.buffers["running_mean"][:] = np.arange(6) * 0.1
    mel = nn.Sequential(nn.LogMelSpectrogram(8000, n_fft=16, hop_length=8, n_mels=6, center=False, log="db"),
                        bn, nn.GELU("tanh"), nn.GRU(6, 4, seed=1), nn.Linear(4, 2, seed=2))
    cases = [(hybrid(seed=4, exact=True), randn32((4, 12, 5), seed=1)),
             (hybrid(seed=3, last_step=True), randn32((4, 12, 5), seed=2)),
             (vad_like(seed=1), randn32((2, 6, 40), seed=3)),
             (mel, randn32((2, 5, 16), seed=4))]
    for m, X in cases:
        y, _ = forward(spec_from_model(m), X, None, None, np.float64, per_step_float=True)
        if m is mel:   # the rc.nn layer frames a signal (hop 8): its frames are the engine's steps
            sig = randn32((2, 56, 1), seed=4)
            X = np.stack([sig[:, 8 * t:8 * t + 16, 0] for t in range(6)], 1)
            y, _ = forward(spec_from_model(m), X, None, None, np.float64, per_step_float=True)
            X = sig
        np.testing.assert_allclose(y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-12)
    m, X = cases[0]
    e = rc.compile(m, "q8", calibration=X)
    assert read_rnc(e.data)["layers"][0]["x_scale"] > 0   # a static input scale, measured after the front
    ref = c_equals_q8_reference(e, X, None)
    y32 = rc.compile(m).run(X)
    assert 0 < np.abs(ref - y32).max() < 0.02 * np.abs(y32).max()
