"""Hostile input to the engine: bad .rnc files, wrong shapes/dtypes, NaN/Inf. Clear errors, no crash.

Every corrupted file must be rejected by the C loader with a ValueError naming the reason, or,
if a corruption happens to leave a valid model (a changed weight value with a fixed checksum),
run without crashing.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from _helpers import fix_crc

import rnncore as rc
from rnncore.engine import Engine
from rnncore.io.rnc import RECORD_KINDS, read_rnc, write_rnc
from rnncore.io.rnc_layout import LAYOUT

F32 = np.float32


@pytest.fixture(scope="module")
def model_bytes():
    m = rc.nn.Sequential(rc.nn.GRU(3, 5, num_layers=2, seed=0), rc.nn.layers.Linear(5, 2, seed=1))
    return {p: rc.compile(m, precision=p).data for p in ("f32", "q8")}


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_truncated_files_are_rejected(model_bytes, precision):
    data = model_bytes[precision]
    for n in sorted({0, 1, 4, 16, 127, 128, 200, 255, 256, len(data) // 2, len(data) - 64, len(data) - 1}):
        with pytest.raises(ValueError, match="rnc|empty"):
            rc.load(data[:n])


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_flipped_bytes_fail_the_checksum(model_bytes, precision):
    data = model_bytes[precision]
    rng = np.random.default_rng(2)
    for pos in rng.integers(16, len(data), 40):
        b = bytearray(data)
        b[pos] ^= 0x5A
        with pytest.raises(ValueError, match="(?i)checksum|crc"):
            rc.load(bytes(b))


def test_wrong_magic_and_version(model_bytes):
    b = bytearray(model_bytes["f32"])
    b[0:4] = b"XXXX"
    with pytest.raises(ValueError, match="(?i)magic"):
        rc.load(bytes(b))
    b = bytearray(model_bytes["f32"])
    struct.pack_into("<I", b, LAYOUT["hdr2"].fields["version"].offset, 3)
    with pytest.raises(ValueError, match="(?i)version"):
        rc.load(fix_crc(b))


def test_oversized_declared_size_and_counts(model_bytes):
    b = bytearray(model_bytes["q8"])
    struct.pack_into("<I", b, 8, len(b) + 64)  # file_size beyond the buffer
    with pytest.raises(ValueError, match="rnc"):
        rc.load(bytes(b))
    data = model_bytes["q8"]
    hdr = LAYOUT["hdr2"].fields
    head = _record(data, RECORD_KINDS["linear"]) + LAYOUT["rec_linear"].fields["out_features"].offset
    for off, val in ((hdr["num_records"].offset, 17), (hdr["num_records"].offset, 0),
                     (hdr["input_size"].offset, 2**30), (head, 2**31)):
        b = bytearray(data)
        struct.pack_into("<I", b, off, val)
        with pytest.raises(ValueError, match="rnc"):
            rc.load(fix_crc(b))
    # version 1 files too (layers, input_size, head_out)
    v1 = write_rnc(read_rnc(data), version=1)
    f1 = LAYOUT["hdr1"].fields
    for name, val in (("num_layers", 17), ("num_layers", 0), ("input_size", 2**30), ("head_out", 2**31)):
        b = bytearray(v1)
        struct.pack_into("<I", b, f1[name].offset, val)
        with pytest.raises(ValueError, match="rnc"):
            rc.load(fix_crc(b))
    # a longer buffer than the declared file size is fine (ignored tail)
    eng = rc.load(model_bytes["q8"] + b"\0" * 100)
    assert eng.output_size == 2


def _record(data: bytes, kind: int) -> int:
    """Offset of the first version 2 record of `kind`."""
    pos = LAYOUT["hdr2"].size
    while LAYOUT["rec"].unpack(data, pos)["kind"] != kind:
        pos += LAYOUT["rec"].unpack(data, pos)["size"]
    return pos


def test_v2_record_sequences_the_core_cannot_run_are_unsupported(model_bytes):
    """Unknown record kinds and known kinds out of order: 'not supported'; broken records:
    'inconsistent'."""
    data = model_bytes["f32"]  # recurrent, recurrent, linear
    lin = _record(data, RECORD_KINDS["linear"])
    for kind in (99, RECORD_KINDS["embedding"], RECORD_KINDS["recurrent"]):
        b = bytearray(data)
        # an unknown kind, an embedding after the layers (both: cannot run), a 48-byte "recurrent" record
        struct.pack_into("<I", b, lin, kind)
        with pytest.raises(ValueError, match="not supported" if kind != RECORD_KINDS["recurrent"]
                           else "inconsistent"):
            rc.load(fix_crc(b))
    b = bytearray(data)
    struct.pack_into("<I", b, LAYOUT["hdr2"].size, RECORD_KINDS["linear"])  # a head first
    with pytest.raises(ValueError, match="not supported"):
        rc.load(fix_crc(b))
    b = bytearray(data)
    struct.pack_into("<I", b, lin + 4, 40)  # a record size that no longer fills records_size
    with pytest.raises(ValueError, match="inconsistent"):
        rc.load(fix_crc(b))


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_structural_corruption_with_a_valid_checksum_never_crashes(model_bytes, precision):
    """Random bytes in the header and layer records, checksum fixed: reject or run, never crash."""
    data = model_bytes[precision]
    rng = np.random.default_rng(3)
    rejected = 0
    x = rng.standard_normal((1, 4, 3)).astype(F32)
    for _ in range(300):
        b = bytearray(data)
        for pos in rng.integers(16, 128 + 2 * 128, rng.integers(1, 4)):
            b[pos] = rng.integers(0, 256)
        try:
            eng = rc.load(fix_crc(b))
        except ValueError as e:
            assert str(e)
            rejected += 1
            continue
        try:
            eng.run(np.zeros((1, 4, eng.input_size), F32) if not eng.uses_ids else np.zeros((1, 4), int))
        except ValueError:
            pass
    assert rejected > 150
    rc.load(data).run(x)


def test_not_bytes_and_missing_file(tmp_path):
    with pytest.raises(TypeError):
        Engine(12345)
    with pytest.raises(FileNotFoundError):
        rc.load(tmp_path / "nope.rnc")


# ------------------------------------------------------------------------------------------
# wrong shapes, dtypes, values


@pytest.fixture(scope="module")
def stream_engine():
    return rc.compile(rc.nn.LSTM(4, 6, seed=4), precision="q8")


def test_step_wrong_shapes_and_dtypes_name_argument_expected_and_received(stream_engine):
    s = stream_engine.stream(batch=2)
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 4\).*got.*\(2, 5\)"):
        s.step(np.zeros((2, 5), F32))
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 4\)"):
        s.step(np.zeros((4,), F32))
    with pytest.raises(TypeError, match="x: expected a float32"):
        s.step(np.array([["a"] * 4] * 2))
    with pytest.raises(ValueError, match=r"out: expected .*float32.*\(2, 6\).*got"):
        s.step(np.zeros((2, 4), F32), out=np.zeros((2, 6), np.float64))
    with pytest.raises(ValueError, match="out: expected"):
        s.step(np.zeros((2, 4), F32), out=np.zeros((2, 7), F32))
    with pytest.raises(ValueError, match="out: expected"):
        s.step(np.zeros((2, 4), F32), out=np.zeros((6, 2), F32).T)
    # float64 / lists are converted
    y = s.step(np.zeros((2, 4)))
    assert y.shape == (2, 6) and y.dtype == F32
    s.step([[0.0] * 4] * 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_inputs_are_errors_and_leave_the_state(stream_engine, bad):
    s = stream_engine.stream(batch=1)
    s.step(np.ones((1, 4), F32))
    before = s.state
    x = np.ones((1, 4), F32)
    x[0, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.step(x)
    np.testing.assert_array_equal(s.state[0], before[0])
    X = np.zeros((1, 3, 4), F32)
    X[0, 1, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        stream_engine.run(X)


def test_run_wrong_shapes_lengths(stream_engine):
    with pytest.raises(ValueError, match=r"X: expected shape \(2, T, 4\)"):
        stream_engine.run(np.zeros((2, 3, 5), F32))
    with pytest.raises(ValueError, match="X: expected"):
        stream_engine.run(np.zeros((3,), F32))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, 3\]"):
        stream_engine.run(np.zeros((2, 3, 4), F32), lengths=[1, 4])
    with pytest.raises(ValueError, match="lengths: expected 2 integers"):
        stream_engine.run(np.zeros((2, 3, 4), F32), lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="lengths: expected 2 integers"):
        stream_engine.run(np.zeros((2, 3, 4), F32), lengths=[1.5, 2])


def test_state_setter_validates(stream_engine):
    s = stream_engine.stream(batch=2)
    good = s.state
    with pytest.raises(ValueError, match=r"the pair \(h, c\)"):
        s.state = good[0]
    with pytest.raises(ValueError, match=r"expected shape \(1, 2, 6\), got \(1, 3, 6\)"):
        s.state = (np.zeros((1, 3, 6), F32), np.zeros((1, 3, 6), F32))
    with pytest.raises(TypeError, match="float array"):
        s.state = (np.zeros((1, 2, 6), np.int32), np.zeros((1, 2, 6), F32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.state = (np.full((1, 2, 6), np.nan, F32), np.zeros((1, 2, 6), F32))
    s.state = (np.ones((1, 2, 6)), np.ones((1, 2, 6)))  # float64 accepted, stored as float32
    assert np.all(s.state[0] == 1)


def test_bidirectional_cannot_stream_and_token_errors():
    eng = rc.compile(rc.nn.GRU(3, 4, bidirectional=True, seed=5))
    with pytest.raises(ValueError, match="bidirectional"):
        eng.stream(1)
    model = rc.nn.Sequential(rc.nn.layers.Embedding(10, 3, seed=6), rc.nn.GRU(3, 4, seed=7))
    e2 = rc.compile(model, "q8")
    s = e2.stream(2)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 10\)"):
        s.step(np.array([1, 10]))
    with pytest.raises(TypeError, match="integer token ids"):
        s.step(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 10\)"):
        e2.run(np.array([[1, -1]]))
    assert s.step(np.array([1, 9])).shape == (2, 4)


def test_compile_rejects_what_the_c_core_cannot_run():
    with pytest.raises(ValueError, match="precision"):
        rc.compile(rc.nn.GRU(2, 3), precision="f16")
    assert rc.compile(rc.nn.LSTM(2, 4, proj_size=2)).output_size == 2   # compiles since issue 16
    # a Linear before the recurrent layers compiles (tests/test_engine_linear_step.py), a mean or a
    # max over time too (tests/test_engine_mean.py, test_engine_max.py), and attention pooling
    # (tests/test_engine_attention.py); a pooling after a pooling not
    with pytest.raises(ValueError, match=r"module '2' \(AttentionPool\) is not supported"):
        rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 3), rc.nn.MaskedMean(), rc.nn.AttentionPool(3),
                                    rc.nn.layers.Linear(3, 2)))
    with pytest.raises(ValueError, match=r"module '2' \(MaskedMean\) is not supported"):
        rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 3), rc.nn.MaskedMax(), rc.nn.MaskedMean(),
                                    rc.nn.layers.Linear(3, 2)))
    with pytest.raises(ValueError, match="calibration"):
        rc.compile(rc.nn.GRU(2, 3), precision="f32", calibration=np.zeros((1, 2, 2)))
