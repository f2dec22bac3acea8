"""The 16 x 16 frame_conv in the C engine (``rc.compile(model, "q8", front_bits=16)``;
docs/q8-contract.md, "A 16-bit product in the frame convolutions"; rnc_layout.h, fconvq16): the
engine equals the NumPy spec (rnncore.quant.front.frame_conv_q16) bit for bit on every ISA path of
this CPU for random frame_conv geometries, streams and restores its state, the file reads back and
writes the same bytes (weights by quantize_weights16), both loaders refuse a damaged tail or
weight alike, the option refuses what it cannot do; and Silero VAD v6 compiled so meets the
issue's decision target against onnxruntime on eight variants of a real recording."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from _helpers import assert_stream_restores, c_equals_q8_reference, stream_steps

import rnncore as rc
from rnncore.io.rnc import RncFormatError, read_rnc, write_rnc
from rnncore.io.rnc_layout import LAYOUT
from rnncore.nn import GRU, LSTM, FrameConv1d, LayerNorm, Linear, Magnitude, ReLU, Sequential
from rnncore.quant.front import frame_conv_q16
from rnncore.quant.scheme import quantize_weights16

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from rnc_mutations import fix_crc  # noqa: E402
from test_engine_front_q8 import _front_model  # noqa: E402

ISAS = rc.isa()["available"]


def _geometries(n, seed):
    """Random frame_conv geometries: channels, groups, kernel, stride, dilation, zero or reflect
    padding (reflect pads < L), long kernels (the memcpy path) and 1 x 1 ones."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        g = int(rng.choice([1, 2, 3]))
        ci, co = g * int(rng.integers(1, 5)), g * int(rng.integers(1, 7))
        k, st, dl = int(rng.choice([1, 2, 3, 5, 20, 40])), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        L = int(rng.integers(max(2, dl * (k - 1) + 1), 80))
        reflect = bool(rng.integers(2))
        pl, pr = (int(rng.integers(0, min(L - 1, 4) + 1)) for _ in range(2))
        out.append(dict(ci=ci, co=co, k=k, L=L, stride=st, dilation=dl, groups=g, pad=(pl, pr),
                        mode="reflect" if reflect else "zeros"))
    return out


@pytest.mark.parametrize("geom", _geometries(8, 0),
                         ids=lambda g: "ci{ci}co{co}k{k}L{L}s{stride}d{dilation}g{groups}{mode}".format(**g))
def test_q16_frame_conv_equals_the_numpy_spec_bit_for_bit_on_every_isa(geom):
    conv = FrameConv1d(geom["ci"], geom["co"], geom["k"], frame_length=geom["L"], stride=geom["stride"],
                       padding=geom["pad"], padding_mode=geom["mode"], dilation=geom["dilation"],
                       groups=geom["groups"], seed=3)
    lout = (geom["L"] + sum(geom["pad"]) - geom["dilation"] * (geom["k"] - 1) - 1) // geom["stride"] + 1
    model = Sequential(conv, ReLU(), GRU(geom["co"] * lout, 8, seed=4), Linear(8, 2, seed=5))
    e = rc.compile(model, precision="q8", front_bits=16)
    d = read_rnc(e.data)
    rec = d["front"][0]
    assert rec.get("bits") == 16 and rec["tensors"]["qweight"].dtype == np.int16
    # the stored weights are quantize_weights16 of the model's (per output channel)
    w = np.asarray(conv.params["weight"], np.float32)
    wq, sw = quantize_weights16(w.reshape(w.shape[0], -1))
    np.testing.assert_array_equal(rec["tensors"]["qweight"].reshape(wq.shape), wq)
    np.testing.assert_array_equal(rec["tensors"]["scale"], sw)
    rng = np.random.default_rng(6)
    X = (rng.standard_normal((3, 4, geom["ci"] * geom["L"])) * rng.choice([1e-3, 1.0, 300.0], (3, 4, 1))
         ).astype(np.float32)
    X[1, 2] = 0                                     # an all-zero row: scale 0, codes 0
    X[2, 1, 0] = 1e30                               # one huge sample: the others' codes round to 0
    c_equals_q8_reference(e, X, np.array([4, 3, 2]))
    # the engine's frame_conv output itself: the spec's, bit for bit (a model of the conv alone)
    alone = rc.compile(Sequential(conv, GRU(geom["co"] * lout, 4, seed=7)), precision="q8", front_bits=16)
    ra = read_rnc(alone.data)["front"][0]
    y = frame_conv_q16({**ra, "qweight": ra["tensors"]["qweight"], "scale": ra["tensors"]["scale"],
                        "bias": ra["tensors"]["bias"]}, X.reshape(-1, X.shape[-1]))
    assert y.shape == (12, geom["co"] * lout)
    c_equals_q8_reference(alone, X)


@pytest.mark.parametrize("cell", [GRU, LSTM])
def test_q16_front_model_bit_for_bit_streams_and_restores(cell):
    e = rc.compile(_front_model(cell, seed=3), precision="q8", front_bits=16)
    assert [r.get("bits") for r in read_rnc(e.data)["front"] if r["kind"] == "frame_conv1d"] == [16] * 3
    X = (np.random.default_rng(2).standard_normal((2, 9, 20)) * 2).astype(np.float32)
    whole = c_equals_q8_reference(e, X)
    e8 = rc.compile(_front_model(cell, seed=3), precision="q8")
    assert np.abs(e8.run(X) - whole).max() > 0     # a different product than the int8 one
    for isa in ISAS:
        e.set_isa(isa)
        assert_stream_restores(e, X, whole, 5, err_msg=isa)


def test_q16_file_reads_back_writes_the_same_bytes_and_its_size():
    model = _front_model(GRU)
    e16, e8 = rc.compile(model, precision="q8", front_bits=16), rc.compile(model, precision="q8")
    d = read_rnc(e16.data)
    np.testing.assert_array_equal(write_rnc(d), e16.data)
    assert rc.compile(model, precision="q8", front_bits=8).data == e8.data   # 8: the default's bytes
    pos = LAYOUT["hdr2"].size
    assert int.from_bytes(e16.data[pos + 4:pos + 8], "little") == 80        # 64 + fconvq8 + fconvq16
    assert int.from_bytes(e8.data[pos + 4:pos + 8], "little") == 72
    assert int.from_bytes(e16.data[pos + 72:pos + 76], "little") == 16      # bits
    # front_f32 keeps its frame_conv in float32, the others 16 x 16
    mixed = read_rnc(rc.compile(model, precision="q8", front_bits=16, front_f32=[1]).data)
    convs = [r for r in mixed["front"] if r["kind"] == "frame_conv1d"]
    assert [c.get("bits") for c in convs] == [16, None, 16] and convs[1].get("precision") == "f32"


def _mutated(data, at, value, nbytes=4):
    bad = bytearray(data)
    bad[at:at + nbytes] = int(value).to_bytes(nbytes, "little", signed=value < 0)
    return fix_crc(bad)


def test_q16_loaders_refuse_a_damaged_tail_or_weight_alike():
    e = rc.compile(_front_model(GRU), precision="q8", front_bits=16)
    pos = LAYOUT["hdr2"].size
    wref = LAYOUT["rec_frame_conv"].unpack(e.data[pos:pos + 64])["weight"]
    cases = [
        (_mutated(e.data, pos + 72, 12), r"record 0 \(frame_conv\): bits: 12, expected 16"),
        (_mutated(e.data, pos + 76, 1),
         r"record 0 \(frame_conv\): reserved: byte 4 of the 8-byte structure is 0x1"),
        (_mutated(e.data, wref[0] + 2 * 1, -32768, 2), r"weight: value 1 is -32768"),
        # conv 0: 2 groups, 4 outputs a group (16 rows), C_g k = 3 inputs of 16: input 5 of row 0
        (_mutated(e.data, wref[0] + 2 * 5, 7, 2), r"weight: row 0: nonzero weight at input 5 >= 3 inputs"),
    ]
    for bad, msg in cases:
        with pytest.raises(RncFormatError, match=msg):
            read_rnc(bad)
        with pytest.raises(ValueError, match=msg):
            rc.Engine(bad)


def test_front_bits_refusals():
    model = _front_model(GRU)
    with pytest.raises(ValueError, match=r"front_bits: expected 8 or 16 .*got 12"):
        rc.compile(model, precision="q8", front_bits=12)
    with pytest.raises(ValueError, match=r"front_bits: expected 8 or 16 .*got True"):
        rc.compile(model, precision="q8", front_bits=True)
    with pytest.raises(ValueError, match=r"front_bits: 16-bit frame_convs exist only for precision='q8', "
                                         r"got precision='f32'"):
        rc.compile(model, front_bits=16)
    with pytest.raises(ValueError, match=r"front_bits: 16 applies to frame_conv records .*has none"):
        rc.compile(Sequential(GRU(4, 8, seed=0), Linear(8, 2, seed=1)), precision="q8", front_bits=16)
    with pytest.raises(ValueError, match=r"front_bits: expected 8 for precision='int8'.*got 16"):
        rc.compile(Sequential(GRU(4, 8, seed=0)), precision="int8", front_bits=16,
                   calibration=np.zeros((1, 2, 4), np.float32))
    # a front-end without a frame_conv (a LayerNorm, a magnitude) neither
    with pytest.raises(ValueError, match="the model has none"):
        rc.compile(Sequential(LayerNorm(4), Magnitude(), GRU(2, 4, seed=0)), precision="q8", front_bits=16)


# ---- Silero VAD v6 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def silero():
    spec = importlib.util.find_spec("silero_vad")
    if spec is None:
        pytest.fail("silero-vad 6.2.3 is not installed: pip install --no-deps silero-vad==6.2.3 "
                    "(.ci/run does)")
    return (pathlib.Path(spec.origin).parent / "data" / "silero_vad_16k_sequence.onnx").read_bytes()


def test_silero_q16_equals_its_reference_bit_for_bit_and_streams(silero):
    from rnncore.io import from_onnx

    e = rc.compile(from_onnx(silero), precision="q8", front_bits=16)
    assert sum(r.get("bits") == 16 for r in read_rnc(e.data)["front"]) == 5
    X = (np.random.default_rng(5).standard_normal((2, 12, 576)) * 0.1).astype(np.float32)
    ref = c_equals_q8_reference(e, X)
    s = e.stream(2)
    np.testing.assert_array_equal(stream_steps(s, X), ref)


def test_silero_q16_engine_meets_the_target_on_every_variant(silero):
    """The issue's target (at most 1 decision flip p > 0.5 per 500 frames against onnxruntime) in
    each of the eight 937-frame variants of pyannote's sample.wav, by the engine compiled with
    front_bits=16 (the all-int8 default flips 22 at gain 0.1: docs/q8-contract.md); the file is
    below half the f32 file's size."""
    import onnxruntime as ort
    from bench_vad_q8 import frames, more_variants, recording, variants

    from rnncore.io import from_onnx

    try:
        audio = recording()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")
    g = from_onnx(silero)
    e = rc.compile(g, precision="q8", front_bits=16)
    assert len(e.data) < 0.45 * len(rc.compile(g).data)
    sess = ort.InferenceSession(silero, providers=["CPUExecutionProvider"])
    z = np.zeros((1, 1, 128), np.float32)
    flips = {}
    for name, a in {**variants(audio), **more_variants(audio)}.items():
        fr = frames(a)
        assert len(fr) >= 900
        p_ort = sess.run(None, {"input": fr, "h": z, "c": z})[0].reshape(-1)
        p = e.run(fr[None])[0, :, 0]
        flips[name] = int(((p > 0.5) != (p_ort > 0.5)).sum())
    assert len(flips) == 8 and all(f <= 1 for f in flips.values()), flips
    assert sum(flips.values()) <= 7496 / 500 / 2, flips


def test_export_c_carries_the_q16_file(tmp_path):
    """export-c embeds the .rnc bytes after the C loader's checks: a front_bits=16 file passes them
    and is embedded whole; its damaged form is refused there."""
    from rnncore.io.export_c import export_c

    e = rc.compile(_front_model(GRU), precision="q8", front_bits=16)
    src = export_c(e.data, tmp_path / "vad16.c")
    assert f"{len(e.data)}" in src
    pos = LAYOUT["hdr2"].size
    with pytest.raises(ValueError, match=r"not a valid \.rnc model: .*bits: 12, expected 16"):
        export_c(_mutated(e.data, pos + 72, 12), tmp_path / "bad.c")
