"""Fully-integer models in ``.rnc`` files (precision 3): the writer and reader give back the same
``IntModel`` (every array and number, so bit-identical integer outputs); ``rnncore quantize
--precision int8`` writes what the Python API writes; ``rnncore export-c --target cortex-m`` of
the integer file writes byte for byte the C of the float file + calibration, which runs the NumPy
spec bit for bit under qemu; the host engine loads the file (its runs: tests/test_engine_int.py),
and so does the host export-c program."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import fix_crc
from child_env import child_env

import rnncore as rc
from rnncore.io.rnc import check_rnc, read_rnc
from rnncore.io.rnc_int import read_int_rnc, write_int_rnc
from rnncore.quant import integer as qi
from rnncore.spec import build_rnc, spec_from_model, spec_from_rnc

ROOT = Path(__file__).resolve().parents[1]


def _float_model(which: str):
    if which == "gru2_head":
        return rc.nn.Sequential(rc.nn.GRU(5, 12, num_layers=2, seed=0), rc.nn.LastStep(),
                                rc.nn.Linear(12, 4, seed=1))
    if which == "lstm":
        return rc.nn.Sequential(rc.nn.LSTM(5, 10, seed=2))
    if which == "gru_before_relu":
        return rc.nn.Sequential(rc.nn.GRU(5, 8, seed=3, reset_after=False),
                                rc.nn.RNN(8, 6, nonlinearity="relu", seed=4), rc.nn.LastStep(),
                                rc.nn.Linear(6, 3, seed=5))
    return rc.nn.Sequential(rc.nn.RNN(5, 7, seed=6))


def _calibration(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((24, 9, 5))


def _int_model(which: str, activation: str = "gemmlowp") -> qi.IntModel:
    spec = spec_from_model(_float_model(which))
    return qi.quantize_int_model(spec, qi.calibrate_int(spec, _calibration()), activation=activation)


def _assert_same_model(a: qi.IntModel, b: qi.IntModel) -> None:
    assert len(a.layers) == len(b.layers) and a.last_step == b.last_step
    pairs = list(zip(a.layers, b.layers, strict=True))
    if a.head is not None or b.head is not None:
        pairs.append((a.head, b.head))
    for x, y in pairs:
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert u.shape == v.shape and np.array_equal(u.astype(np.int64), v.astype(np.int64)), f.name
            else:
                assert u == v and type(u) is type(v), (f.name, u, v)


@pytest.mark.parametrize("which,activation", [("gru2_head", "table"), ("gru2_head", "gemmlowp"),
                                              ("lstm", "gemmlowp"), ("gru_before_relu", "table"),
                                              ("rnn_tanh", "gemmlowp")])
def test_round_trip_gives_the_same_integer_model_and_outputs(which, activation):
    qm = _int_model(which, activation)
    if which == "lstm":
        qm.layers[0].cell_clip = 3000   # a clip the writer must keep (it changes the outputs)
    data = write_int_rnc(qm)
    back = read_int_rnc(data)
    _assert_same_model(qm, back)
    assert write_int_rnc(back) == data
    x = np.random.default_rng(9).standard_normal((6, 11, 5)) * 1.5
    y0, h0 = qi.int_forward(qm, x)
    y1, h1 = qi.int_forward(back, x)
    assert np.array_equal(h0, h1) and np.array_equal(y0, y1)
    d = read_rnc(data)
    assert d["precision"] == "int8" and d["input_size"] == 5
    assert [lay["kind"] for lay in d["layers"]] == [c.cell for c in qm.layers]
    assert d["output_size"] == (qm.head.out_features if qm.head else qm.layers[-1].hidden_size)


def test_the_engine_and_check_rnc_accept_an_integer_file():
    qm = _int_model("gru2_head")
    data = write_int_rnc(qm)
    check_rnc(data)
    eng = rc.load(data)
    assert eng.precision == "int8" and eng.input_size == 5 and eng.output_size == qm.head.out_features
    assert eng.describe() == "gru(12) > gru(12) > last_step > linear(12->4)"


def test_the_writer_refuses_what_the_format_cannot_hold():
    qm = _int_model("gru_before_relu")
    qm.layers[1].x_zp = (qm.layers[0].h_zp + 1) % 128
    with pytest.raises(ValueError, match=r"layer 1 x_scale / x_zp: expected the previous layer's"):
        write_int_rnc(qm)
    qm = _int_model("gru2_head")
    qm.head.activation = "relu"
    with pytest.raises(ValueError, match=r"head activation: expected one of \('none', 'softmax'\), got 'rel"):
        write_int_rnc(qm)
    with pytest.raises(ValueError, match="expected an integer"):
        read_int_rnc(build_rnc(spec_from_model(_float_model("lstm")), "f32")[0])


@pytest.mark.parametrize("which,field,exp", [("rnn", "h_scale", 119), ("gru2_head", "out_scale", 96)])
def test_scales_whose_dequantised_values_would_overflow_float32_are_refused_alike(which, field, exp):
    """The engine's float32 outputs are h_scale (h8 - zp) (|h8 - zp| <= 255) or out_scale y_q
    (|y_q| <= 2^31): the largest scale that keeps them finite (2^119, 2^96) loads and runs to finite
    outputs; anything above it is refused by the C loader and the Python reader with one message."""
    import struct

    from rnc_mutations import fix_crc, verdicts

    qm = _int_model(which)
    target = qm.layers[-1] if field == "h_scale" else qm.head
    X = 50 * _calibration(1)[:4]
    setattr(target, field, 2.0 ** exp)
    data = write_int_rnc(qm)
    y = rc.load(data).run(X.astype(np.float32))
    assert verdicts(data) == (None, None)
    assert np.isfinite(y).all() and np.abs(y).max() > 2.0 ** (exp - 8)
    at = data.index(struct.pack("<d", 2.0 ** exp))
    for s in (float(np.nextafter(2.0 ** exp, np.inf)), 1e300):
        b = bytearray(data)
        struct.pack_into("<d", b, at, s)
        py, c = verdicts(fix_crc(b))
        assert py is not None and f"expected a finite value > 0 and at most 2^{exp}" in py, py
        assert c is not None and py in c, (py, c)
        setattr(target, field, s)
        with pytest.raises(ValueError, match=rf"{field}: .* at most 2\^{exp}"):
            write_int_rnc(qm)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnncore", *args], capture_output=True, text=True,
                          timeout=300, env=child_env())


@pytest.fixture
def files(tmp_path):
    spec = spec_from_model(_float_model("gru2_head"))
    (tmp_path / "m.rnc").write_bytes(build_rnc(spec, "f32")[0])
    np.save(tmp_path / "x.npy", _calibration().astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("activation", ["gemmlowp", "table"])
def test_cli_quantize_int8_writes_the_api_model(files, activation):
    t = files
    extra = [] if activation == "gemmlowp" else ["--activation", "table"]
    r = _cli("quantize", str(t / "m.rnc"), "-o", str(t / "q.rnc"), "--precision", "int8", "--calibration",
             str(t / "x.npy"), *extra)
    assert r.returncode == 0, r.stderr
    assert f"int8 (fully-integer, {activation} activations)" in r.stdout
    spec = spec_from_rnc(read_rnc((t / "m.rnc").read_bytes()))   # what the command reads: float32 weights
    x = np.load(t / "x.npy")
    want = qi.quantize_int_model(spec, qi.calibrate_int(spec, x), activation=activation)
    assert (t / "q.rnc").read_bytes() == write_int_rnc(want)


def test_cli_quantize_int8_errors(files):
    t = files
    base = ["quantize", str(t / "m.rnc"), "-o", str(t / "q.rnc")]
    r = _cli(*base, "--precision", "int8")
    assert r.returncode == 1 and "--precision int8 needs --calibration X.npy" in r.stderr
    r = _cli(*base, "--precision", "int8", "--calibration", str(t / "x.npy"), "--state-scale", "bounded")
    assert r.returncode == 1 and "--state-scale bounded: q8 and q4 only" in r.stderr
    r = _cli(*base, "--activation", "table")
    assert r.returncode == 1
    assert "--activation table: the integer sigmoid/tanh exists only for --precision int8" in r.stderr
    np.save(t / "ids.npy", np.zeros((4, 3), np.int64))
    r = _cli(*base, "--precision", "int8", "--calibration", str(t / "ids.npy"))
    assert r.returncode == 1 and "expected floats of shape (B, T, F)" in r.stderr
    assert not (t / "q.rnc").exists()
    ok = _cli(*base, "--precision", "int8", "--calibration", str(t / "x.npy"))
    assert ok.returncode == 0, ok.stderr
    again = _cli("quantize", str(t / "q.rnc"), "-o", str(t / "q2.rnc"), "--precision", "int8",
                 "--calibration", str(t / "x.npy"))
    assert again.returncode == 1 and "already int8; quantize reads an f32 model" in again.stderr


@pytest.mark.parametrize("activation", ["gemmlowp", "table"])
def test_export_c_of_the_integer_file_is_the_c_of_float_plus_calibration(files, activation):
    t = files
    extra = [] if activation == "gemmlowp" else ["--activation", "table"]
    r = _cli("quantize", str(t / "m.rnc"), "-o", str(t / "q.rnc"), "--precision", "int8", "--calibration",
             str(t / "x.npy"), *extra)
    assert r.returncode == 0, r.stderr
    (t / "a").mkdir()
    (t / "b").mkdir()
    a = _cli("export-c", str(t / "m.rnc"), "-o", str(t / "a" / "kws.c"), "--target", "cortex-m",
             "--calibration", str(t / "x.npy"), *extra)
    b = _cli("export-c", str(t / "q.rnc"), "-o", str(t / "b" / "kws.c"), "--target", "cortex-m")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout.split(":", 1)[1] == b.stdout.split(":", 1)[1]   # the same budget and activations
    for name in ("kws.c", "kws.h"):
        assert (t / "a" / name).read_bytes() == (t / "b" / name).read_bytes(), name
    bad = _cli("export-c", str(t / "q.rnc"), "-o", str(t / "c.c"), "--target", "cortex-m", "--calibration",
               str(t / "x.npy"))
    assert bad.returncode == 1 and "is already an integer model" in bad.stderr
    assert not (t / "c.c").exists()
    host = _cli("export-c", str(t / "q.rnc"), "-o", str(t / "h.c"))   # the host engine's C program
    assert host.returncode == 0 and (t / "h.c").is_file(), host.stderr


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc or qemu-system-arm not installed")
def test_exported_integer_file_runs_the_spec_under_qemu(files):
    """quantize --precision int8, then export-c of that file: on a Cortex-M4 (DSP rows) under qemu,
    every step's h8 and logits are the NumPy spec's of the model read back from the file."""
    from test_export_int_c import run_exported_under_qemu

    t = files
    r = _cli("quantize", str(t / "m.rnc"), "-o", str(t / "q.rnc"), "--precision", "int8", "--calibration",
             str(t / "x.npy"), "--activation", "table")
    assert r.returncode == 0, r.stderr
    qm = read_int_rnc((t / "q.rnc").read_bytes())
    (t / "run").mkdir()
    e = _cli("export-c", str(t / "q.rnc"), "-o", str(t / "run" / "m.c"), "--target", "cortex-m")
    assert e.returncode == 0, e.stderr
    from rnncore.io.export_int_c import export_int_c

    budget = export_int_c(qm, t / "budget.c")   # the numbers the command printed
    assert f"{budget['flash_bytes']} bytes const" in e.stdout
    run_exported_under_qemu(t / "run", qm, "cortex-m4", budget)


def test_info_describes_an_integer_file(files):
    import json
    import struct

    from rnc_mutations import fix_crc

    t = files
    assert _cli("quantize", str(t / "m.rnc"), "-o", str(t / "q.rnc"), "--precision", "int8", "--calibration",
                str(t / "x.npy")).returncode == 0
    qm = read_int_rnc((t / "q.rnc").read_bytes())
    from rnncore.io.export_int_c import export_int_c

    budget = export_int_c(qm, t / "budget.c")
    r = _cli("info", str(t / "q.rnc"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["precision"] == "int8" and info["cortex_m"] == budget and info["output_size"] == 4
    got = [(la["kind"], la["input_size"], la["hidden_size"], la["h_zero_point"]) for la in info["layers"]]
    assert got == [(c.cell, c.input_size, c.hidden_size, c.h_zp) for c in qm.layers]
    assert info["input"] == {"features": 5, "scale": qm.x_scale, "zero_point": qm.x_zp}
    text = _cli("info", str(t / "q.rnc"))
    assert text.returncode == 0 and f"Cortex-M: {budget['flash_bytes']} bytes const (flash)" in text.stdout
    bad = bytearray((t / "q.rnc").read_bytes())
    struct.pack_into("<I", bad, 64 + 20, 0)   # layer 0 hidden_size
    (t / "bad.rnc").write_bytes(fix_crc(bad))
    r = _cli("info", str(t / "bad.rnc"))
    assert r.returncode == 1
    assert "record 0 (recurrent, layer 0): hidden_size: 0, expected 1..32768" in r.stderr


def test_spec_from_rnc_refuses_an_integer_file_with_a_pointer():
    d = read_rnc(write_int_rnc(_int_model("rnn_tanh")))
    with pytest.raises(ValueError, match=r"holds an integer model \(read_rnc\(...\)\['int_model'\]"):
        spec_from_rnc(d)


def _refused_alike(bad: bytes, want: str) -> None:
    """check_rnc (Python) and the C loader refuse ``bad`` with the same line."""
    import re

    from rnncore.io.rnc import RncFormatError

    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(bad)
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(bad)


def test_int16_input_round_trip_and_refusals():
    """The int16 input is one cellint flag (RNC_CELLINT_INPUT_S16, layer 0 only, x_zp 0, the int32
    accumulation bound on every W_ih row): a file with it reads back as the same model; the C
    loader and read_rnc refuse it on a deeper layer, with a zero point, or past the bound, with
    the same message; a file without it (every file written before) reads as an int8 input."""
    import struct

    from rnncore.io.rnc_layout import LAYOUT

    spec = spec_from_model(_float_model("gru2_head"))
    qm = qi.quantize_int_model(spec, qi.calibrate_int(spec, _calibration(), input_dtype="int16"))
    assert qm.input_dtype == "int16" and qm.x_zp == 0 and qm.layers[1].input_dtype == "int8"
    data = write_int_rnc(qm)
    back = read_int_rnc(data)
    _assert_same_model(qm, back)
    x = np.random.default_rng(9).standard_normal((4, 7, 5)) * 3
    assert np.array_equal(qi.int_forward(qm, x)[0], qi.int_forward(back, x)[0])
    assert np.array_equal(rc.load(data).run(x.astype(np.float32)),
                          qi.int_forward(qm, x)[0].astype(np.float32))
    assert read_int_rnc(write_int_rnc(_int_model("gru2_head"))).input_dtype == "int8"

    C = LAYOUT.constants
    rec_size = C["REC_RECURRENT_DIR0"] + LAYOUT["cellw"].size + LAYOUT["cellint"].size
    rec0 = LAYOUT["hdr2"].size
    q0 = rec0 + C["REC_RECURRENT_DIR0"] + LAYOUT["cellw"].size
    q1 = q0 + rec_size
    flags = LAYOUT["cellint"].fields["flags"].offset
    x_zp = LAYOUT["cellint"].fields["x_zp"].offset
    assert struct.unpack_from("<I", data, q0 + flags)[0] == C["CELLINT_INPUT_S16"]
    b = bytearray(data)
    struct.pack_into("<I", b, q1 + flags, C["CELLINT_INPUT_S16"])
    _refused_alike(fix_crc(b), "record 1 (recurrent, layer 1): flags: 0x2: an int16 input (0x2) is for "
                                "the first layer only")
    b = bytearray(data)
    struct.pack_into("<I", b, q0 + flags, C["CELLINT_INPUT_S16"] | 4)
    _refused_alike(fix_crc(b), "record 0 (recurrent, layer 0): flags: ")
    b = bytearray(data)
    struct.pack_into("<i", b, q0 + x_zp, 3)
    _refused_alike(fix_crc(b), "record 0 (recurrent, layer 0): x_zp: 3, expected 0")
    # past the bound: a GRU of 300 inputs whose W_ih rows are all +-127 (300 127 2^15 =
    # 1,248,460,800), then b_ih[2] = 2^30 - 1 (a valid bias) in the file
    rng = np.random.default_rng(2)
    w_ih = np.where(rng.random((12, 300)) < 0.5, -1.0, 1.0)
    cell = qi.quantize_cell("gru", w_ih, rng.standard_normal((12, 4)), None, None, x_range=(-1.0, 1.0),
                            h_range=(-1.0, 1.0), input_dtype="int16")
    big = write_int_rnc(qi.IntModel([cell]))
    cw = LAYOUT["cellw"].unpack(big, rec0 + C["REC_RECURRENT_DIR0"])
    b = bytearray(big)
    struct.pack_into("<i", b, cw["b_ih"][0] + 4 * 2, 2**30 - 1)   # (offset, nbytes)
    total = 2**30 - 1 + 32768 * 300 * 127
    _refused_alike(fix_crc(b), f"record 0 (recurrent, layer 0): dir0.w_ih: row 2: |b_ih| + 2^15 sum |w_ih| "
                                f"is {total}, expected <= 2147483647")


def test_int16_input_bound_in_the_spec_and_the_writer():
    """IntCell.validate refuses a W_ih row whose int16 sums could leave int32: I = 600 inputs of
    +-127 reach 600 127 2^15 > 2^31 - 1; 500 stay within."""
    rng = np.random.default_rng(1)
    for n_in, ok in ((500, True), (600, False)):
        w = np.where(rng.random((3 * 4, n_in)) < 0.5, -1.0, 1.0)
        cell = qi.quantize_cell("gru", w, rng.standard_normal((12, 4)), None, None, x_range=(-1.0, 1.0),
                                h_range=(-1.0, 1.0), input_dtype="int8")
        cell.input_dtype, cell.x_zp = "int16", 0
        cell.b_ih = np.zeros_like(cell.b_ih)
        if ok:
            cell.validate()
        else:
            with pytest.raises(ValueError, match=r"IntCell.w_ih: an int16 input needs .* row 0 has 24969"):
                cell.validate()
    with pytest.raises(ValueError, match="input_dtype expected one of"):
        qi.calibrate_int(_float_model("lstm"), _calibration(), input_dtype="int32")
