"""q4 weights (precision 2): int4 in -7..7 with one float32 scale per row, two per byte in the q8
tile order (docs/q8-contract.md "q4 weights", docs/rnc-format.md).

* the quantiser on hand-computed rows (round half to even, the zero row) and the nibble layout on a
  hand-built byte;
* a q4 engine on every ISA path this CPU runs: outputs and states bit-identical to the generic
  path's, and to the NumPy quantised reference of the file's stored ints within the q8 contract's
  activation-error budget (the C core's fast tanh/sigmoid);
* the file: ``read_rnc`` returns the stored ints, the C loader and the Python reader refuse the same
  corrupt nibbles with the same line, version 1 and cell options are refused;
* the CLI (convert / quantize --precision q4, info) and the accuracy on JapaneseVowels (q4 within
  1 point of f32: docs/q8-contract.md measures it per model).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import rnncore as rc
from rnncore.io.rnc import check_rnc, pack_q4, read_rnc, unpack_q4, write_rnc
from rnncore.quant import q8_forward, quantize_weights_q4

F32 = np.float32


def test_quantize_weights_q4_hand_computed():
    w = np.array([[7.0, -3.5, 2.5, 0.5], [0, 0, 0, 0], [-2.0, 0.5, 0.75, 1.5]], F32)
    q, s = quantize_weights_q4(w)
    # row 0: s = 7/7 = 1, rint half to even: -3.5 -> -4, 2.5 -> 2, 0.5 -> 0
    assert q[0].tolist() == [7, -4, 2, 0] and s[0] == F32(1.0)
    assert q[1].tolist() == [0, 0, 0, 0] and s[1] == 0          # an all-zero row: scale 0
    # row 2: s = 2/7; w/s = -7, 1.75, 2.625, 5.25 -> -7, 2, 3, 5
    assert q[2].tolist() == [-7, 2, 3, 5] and s[2] == F32(2.0) / F32(7.0)
    assert q.min() >= -7 and q.max() <= 7
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_weights_q4(np.array([[np.nan]]))


def test_pack_q4_layout_by_hand():
    wq = np.zeros((16, 8), np.int8)
    wq[3, 1], wq[3, 5] = -7, 6          # row 3, inputs 1 (low nibble) and 5 (high nibble), j = 1
    p = pack_q4(wq)
    assert p.shape == (64,) and p.dtype == np.uint8
    assert p[3 * 4 + 1] == ((-7 + 8) | ((6 + 8) << 4)) == 0xE1
    assert np.all(np.delete(p, 13) == 0x88)               # every other weight 0: nibbles 8
    rng = np.random.default_rng(0)
    big = rng.integers(-7, 8, (48, 24)).astype(np.int8)
    np.testing.assert_array_equal(unpack_q4(pack_q4(big), 48, 24), big)


def _model(kind, i=13, h=37, layers=1, bidir=False, reset_after=True, head=True, seed=1):
    if kind == "lstm":
        rec = rc.nn.LSTM(i, h, layers, bidirectional=bidir, seed=seed)
    elif kind == "gru":
        rec = rc.nn.GRU(i, h, layers, bidirectional=bidir, reset_after=reset_after, seed=seed)
    else:
        rec = rc.nn.RNN(i, h, layers, nonlinearity=kind[4:], bidirectional=bidir, seed=seed)
    if not head:
        return rec
    d = 2 * h if bidir else h
    return rc.nn.Sequential(rec, rc.nn.Linear(d, 5, seed=seed + 1))


CASES = [("gru", {}), ("gru", {"reset_after": False, "layers": 2}), ("lstm", {"bidir": True}),
         ("rnn_tanh", {"layers": 2}), ("rnn_relu", {"head": False}), ("lstm", {"i": 3, "h": 130})]


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_engine_bit_identical_across_isas_and_equal_to_the_reference(kind, kw):
    m = _model(kind, **kw)
    eng = rc.compile(m, "q4")
    assert eng.precision == "q4"
    i = kw.get("i", 13)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 9, i)).astype(F32)
    lengths = np.array([9, 4, 1, 9, 7])
    ref, _ = q8_forward(eng.reference(), X, lengths)
    eng.set_isa("generic")
    y0, s0 = eng.run(X, lengths, return_state=True)
    # the fast activations' budget per step (docs/q8-contract.md), over <= 9 steps and 2 layers
    np.testing.assert_allclose(y0, ref, atol=5e-3 * max(1.0, float(np.abs(ref).max())), rtol=0)
    assert np.abs(y0 - ref).max() < 1e-4   # in practice a few float32 ulps
    for isa in rc.isa()["available"]:
        eng.set_isa(isa)
        y, s = eng.run(X, lengths, return_state=True)
        np.testing.assert_array_equal(y, y0, err_msg=isa)
        for a, b in zip(s if isinstance(s, tuple) else (s,), s0 if isinstance(s0, tuple) else (s0,),
                        strict=True):
            np.testing.assert_array_equal(a, b, err_msg=isa)
        if not eng.bidirectional:   # streaming steps: the same bits as the run's steps
            st = eng.stream(2)
            ys = np.stack([st.step(X[:2, t]).copy() for t in range(9)], axis=1)
            np.testing.assert_array_equal(ys[0], y0[0], err_msg=isa)


def test_q4_is_the_q8_arithmetic_on_int4_weights():
    """The reference of a q4 file is the q8 reference with the file's int4 values: its ints are
    the quantiser's, its activations and epilogue q8's (the C test test_q4.c checks every q4 cell
    against the q8 cell on the same ints bit for bit)."""
    m = _model("gru", head=False)
    d = read_rnc(rc.compile(m, "q4").data)
    assert d["precision"] == "q4"
    sd = m.state_dict()
    for name in ("weight_ih", "weight_hh"):
        q, s = quantize_weights_q4(np.asarray(sd[name + "_l0"], F32))
        np.testing.assert_array_equal(d["layers"][0]["qweights"][name], q)
        np.testing.assert_array_equal(d["layers"][0]["scales"][name], s)
        np.testing.assert_array_equal(d["layers"][0]["weights"][name], q.astype(F32) * s[:, None])


def test_file_is_half_the_q8_weights_and_head_is_q8():
    m = rc.nn.Sequential(rc.nn.GRU(64, 256, seed=0), rc.nn.LastStep(), rc.nn.Linear(256, 9, seed=1))
    n8, n4 = len(rc.compile(m, "q8").data), len(rc.compile(m, "q4").data)
    w8 = 2 * 768 * 64 + 768 * 256 * 2 + 768 * 4 * 2 * 2   # W_ih + W_hh bytes (+ kernel sums) and scales
    assert n8 - n4 > 0.45 * (768 * 64 + 768 * 256) and n4 < n8 and w8 > 0
    d = read_rnc(rc.compile(m, "q4").data)
    assert np.abs(d["head"]["qweight"]).max() == 127     # the head keeps int8 weights


def _patch(data: bytes, off: int, val: int) -> bytes:
    b = bytearray(data)
    b[off] = val
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def _w_ih_offset(data: bytes) -> int:
    from rnncore.io.rnc_layout import LAYOUT

    rec = 64   # the first record (recurrent), after the v2 header
    cw = LAYOUT["rec_recurrent"].size
    return LAYOUT["cellw"].unpack(data, rec + cw)["w_ih"][0]


def test_loader_and_reader_refuse_the_same_corrupt_nibbles():
    m = _model("gru", i=5, h=16, head=False)       # W_ih: 5 inputs -> inputs 5..7 are padding
    data = rc.compile(m, "q4").data
    off = _w_ih_offset(data)
    cases = {"nibble 0 (-8)": (_patch(data, off + 2, data[off + 2] & 0xF0), "byte 2 holds nibble 0"),
             "padding weight": (_patch(data, off + 1, (data[off + 1] & 0x0F) | 0x90),
                                "input 5 >= 5 inputs is not 0")}
    for what, (bad, text) in cases.items():
        with pytest.raises(ValueError) as c_err:
            rc.load(bad)
        with pytest.raises(ValueError) as py_err:
            check_rnc(bad)
        assert text in str(py_err.value), what
        assert str(py_err.value) in str(c_err.value), (what, str(c_err.value), str(py_err.value))


def test_q4_refusals():
    m = _model("gru", head=False)
    with pytest.raises(ValueError, match="version 2 files only"):
        from rnncore.spec import spec_from_model, to_rnc_spec
        write_rnc(to_rnc_spec(spec_from_model(m), "q4"), 1)
    # a v1 q8 file relabelled q4: both readers refuse precision 2 in version 1
    v1 = bytearray(write_rnc(to_rnc_spec(spec_from_model(m), "q8"), 1))
    struct.pack_into("<I", v1, 20, 2)
    struct.pack_into("<I", v1, 12, zlib.crc32(bytes(v1[16:])) & 0xFFFFFFFF)
    for load in (rc.load, check_rnc):
        with pytest.raises(ValueError, match="q4 needs version 2"):
            load(bytes(v1))
    from rnncore.nn.extended import ExtendedRecurrent
    ext = ExtendedRecurrent("gru", 4, 8, clip=2.0)
    with pytest.raises(ValueError, match="without cell options"):
        rc.compile(ext, "q4")
    with pytest.raises(ValueError, match="block-sparse weights exist only for precision='q8'"):
        rc.compile(m, "q4", sparse=True)


def test_calibrated_and_bounded_q4():
    m = _model("lstm", head=True)
    X = np.random.default_rng(0).standard_normal((40, 12, 13)).astype(F32)
    for kw in ({"calibration": X}, {"state_scale": "bounded"}):
        eng = rc.compile(m, "q4", **kw)
        ref, _ = q8_forward(eng.reference(), X[:3])
        y = eng.run(X[:3])
        assert np.abs(y - ref).max() < 1e-4, kw


def test_cli_convert_quantize_info(tmp_path):
    import torch

    torch.manual_seed(0)
    src = tmp_path / "gru.pt"
    torch.save(torch.nn.GRU(6, 20, batch_first=True).state_dict(), src)
    out = tmp_path / "gru_q4.rnc"
    r = subprocess.run([sys.executable, "-m", "rnncore", "convert", str(src), "-o", str(out),
                        "--precision", "q4"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert rc.load(out.read_bytes()).precision == "q4"
    f32 = tmp_path / "gru_f32.rnc"
    subprocess.run([sys.executable, "-m", "rnncore", "convert", str(src), "-o", str(f32)], check=True)
    q4 = tmp_path / "gru_q4b.rnc"
    r = subprocess.run([sys.executable, "-m", "rnncore", "quantize", str(f32), "-o", str(q4),
                        "--precision", "q4"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert q4.read_bytes() == out.read_bytes()
    r = subprocess.run([sys.executable, "-m", "rnncore", "info", str(q4)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "q4" in r.stdout and "rnc_q4_gru_step" in r.stdout


def test_japanese_vowels_q4_within_one_point_of_f32():
    """The demo's GRU(12 -> 64) classifier (12 epochs, seed 0): q4 accuracy on the 370 test
    utterances at most 1 point below f32 (docs/q8-contract.md, "q4 weights": the table per model)."""
    from rnncore.datasets import japanese_vowels
    from rnncore.demo import build_model
    from rnncore.nn.train import fit

    jv = japanese_vowels()
    model = build_model(64, seed=0)
    fit(model, rc.nn.CrossEntropy(), rc.nn.Adam(model, lr=5e-3), jv.X_train, jv.y_train, jv.len_train,
        epochs=12, batch_size=16, clip=1.0, seed=0, verbose=False)
    acc = {}
    for p in ("f32", "q4"):
        y = rc.compile(model, p).run(jv.X_test.astype(F32), lengths=jv.len_test)
        acc[p] = float(np.mean(y.argmax(1) == jv.y_test))
    assert acc["f32"] > 0.95
    assert acc["q4"] >= acc["f32"] - 0.01, acc
