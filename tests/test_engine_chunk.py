"""The layers of a chunk front-end (rnncore/nn/chunk.py: LogAffine, SmoothedMeanSubtract,
FrameConcat, FrameResidual, ChunkPositions / ChunkMean with one position) compiled to the C engine:
the pointwise kind log_affine (``rnc_logf(alpha x + beta)``) and the concat record (kind 15,
``y = [u ; x]``), the others lowered to frame_conv / residual / concat records
(rnncore/spec.py ``_chunk_records``; docs/rnc-format.md).

Against the NumPy model in float64 (f32), the NumPy q8 spec bit for bit on every ISA (q8), the
stream step by step against the run, ``.rnc`` round trips, and both loaders' refusals of mutated
records. Silero VAD v4 against onnxruntime: tests/test_onnx_chunk.py.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from _helpers import assert_stream_restores, c_equals_q8_reference, randn32, refused_alike
from rnc_mutations import fix_crc

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.nn.chunk import (
    ChunkMean,
    ChunkPositions,
    FrameConcat,
    FrameResidual,
    LogAffine,
    SmoothedMeanSubtract,
)

nn = rc.nn


def _conv(ci, co, k, L, seed, stride=1, padding=0, mode="zeros"):
    return nn.FrameConv1d(ci, co, k, frame_length=L, stride=stride, padding=padding, padding_mode=mode,
                          seed=seed)


def chunk_model(P: int = 1, seed: int = 0) -> nn.Sequential:
    """A small Silero-v4-like chunk model: a 64-sample frame -> STFT-like conv (2*5 channels over 4
    positions) -> magnitude -> [x ; log(..) - smoothed mean] -> residual blocks (with and without
    a projection) -> P positions -> LSTM -> per-position head -> mean over the positions."""
    L = 4
    sm = _conv(1, 1, 3, L, seed + 1, padding=1, mode="reflect")
    return nn.Sequential(
        _conv(1, 10, 16, 64, seed, stride=16, padding=(6, 6), mode="reflect"),   # 10 x 4
        nn.Magnitude(),                                                            # 5 x 4
        FrameConcat(nn.Sequential(LogAffine(1024.0, 1.0), SmoothedMeanSubtract(5, L, sm))),   # 10 x 4
        FrameResidual(nn.Sequential(_conv(10, 10, 3, L, seed + 2, padding=1), nn.ReLU(),
                                    _conv(10, 6, 1, L, seed + 3)),
                      nn.Sequential(_conv(10, 6, 1, L, seed + 4))),                # 6 x 4
        nn.ReLU(),
        _conv(6, 6, 1, L, seed + 5, stride=4 // P),                                # 6 x P
        FrameResidual(nn.Sequential(_conv(6, 6, 3, P, seed + 6, padding=1), nn.ReLU())),
        nn.ReLU(),
        ChunkPositions(6, P),
        nn.LSTM(6, 8, seed=seed + 7),
        nn.ReLU(),
        nn.Linear(8, 1, seed=seed + 8),
        nn.Sigmoid(),
        ChunkMean(P),
    )


def _audio(B: int, N: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(N * 64) / 16000.0
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (x[None] + 0.05 * rng.standard_normal((B, N * 64))).reshape(B, N, 64).astype(np.float32)


def test_chunk_layers_compile_to_records_and_match_the_numpy_model():
    m = chunk_model()
    e = rc.compile(m)
    d = read_rnc(e.data)
    kinds = [(r["kind"], r.get("span")) for r in d["front"]]
    assert kinds[:16] == [("frame_conv1d", None), ("magnitude", None), ("log_affine", None),
                          ("frame_conv1d", None), ("frame_conv1d", None), ("frame_conv1d", None),
                          ("frame_conv1d", None), ("residual", 4), ("concat", 6),
                          ("frame_conv1d", None), ("relu", None), ("frame_conv1d", None), ("concat", 3),
                          ("frame_conv1d", None), ("relu", None), ("frame_conv1d", None)]
    assert d["front"][2] == {"kind": "log_affine", "scale": 1024.0, "offset": 1.0}
    assert write_rnc(d) == e.data
    X = _audio(2, 40)
    want = m.forward(X.astype(np.float64))
    Y = e.run(X)
    np.testing.assert_allclose(Y, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(rc.load(e.data).run(X), Y)
    assert_stream_restores(e, X, Y, 17)


def test_chunk_front_end_in_float_equals_float_step_records():
    """The records the layers lower to, run in float64 by rnncore.quant.front.float_step_records
    (calibration's float model), equal the layers' own forward."""
    from rnncore.quant.front import float_step_records
    from rnncore.spec import spec_from_model

    m = chunk_model(seed=5)
    spec = spec_from_model(m)
    X = _audio(1, 12, seed=6).astype(np.float64)
    front = nn.Sequential(*list(m)[:8])
    np.testing.assert_allclose(float_step_records(spec.front, X), front.forward(X), rtol=1e-12, atol=1e-12)


def test_q8_chunk_model_equals_the_numpy_spec_bit_for_bit_on_every_isa():
    m = chunk_model(seed=2)
    e = rc.compile(m, precision="q8")
    X = _audio(3, 25, seed=7)
    ref = c_equals_q8_reference(e, X)
    np.testing.assert_allclose(ref, m.forward(X.astype(np.float64)), rtol=0, atol=0.05)
    assert_stream_restores(e, X, ref, 9)
    assert write_rnc(read_rnc(e.data)) == e.data


@pytest.mark.parametrize("P", [2, 4])
def test_chunk_model_of_several_positions_matches_the_numpy_model(P):
    """P positions per chunk (a positions record): f32 within 1e-5 of the layers in float64, the
    file written back as it was, run == stream bit for bit (its state saved and restored mid-way),
    lengths zeroing the chunks past them; q8 bit for bit with the NumPy q8 spec on every ISA."""
    m = chunk_model(P=P, seed=P)
    e = rc.compile(m)
    d = read_rnc(e.data)
    assert d["positions"] == P and write_rnc(d) == e.data
    X = _audio(2, 30, seed=P)
    Y = e.run(X)
    np.testing.assert_allclose(Y, m.forward(X.astype(np.float64)), rtol=0, atol=1e-5)
    assert_stream_restores(e, X, Y, 11)
    YL = e.run(X, np.array([30, 13], np.int32))
    np.testing.assert_array_equal(YL[0], Y[0])
    np.testing.assert_array_equal(YL[1, :13], e.run(X[1:, :13])[0])
    assert not YL[1, 13:].any()
    q = rc.compile(m, precision="q8")
    ref = c_equals_q8_reference(q, X, np.array([30, 13], np.int32))
    assert_stream_restores(q, X[:1], ref[:1], 7)


def test_frame_residual_projection_other_than_a_1x1_conv_is_refused_by_name():
    body = nn.Sequential(_conv(1, 2, 3, 8, 0, padding=1), nn.ReLU())
    proj = _conv(1, 2, 3, 8, 2, padding=1)
    m = nn.Sequential(_conv(1, 1, 1, 8, 1), FrameResidual(body, proj), nn.GRU(16, 4))
    with pytest.raises(ValueError, match=r"module '1.proj' \(FrameConv1d\): the C core runs a FrameResidual "
                                         r"projection that is one FrameConv1d of kernel_size 1"):
        rc.compile(m)


def test_concat_outside_the_front_end_is_refused():
    spec = {"precision": "f32", "input_size": 4,
            "front": [{"kind": "relu"}, {"kind": "concat", "span": 2}],
            "layers": [{"kind": "lstm", "weights": {"weight_ih": np.ones((12, 8)),
                                                   "weight_hh": np.ones((12, 3))}}]}
    with pytest.raises(ValueError, match=r"front\[1\] \(concat\): span must be 1..1"):
        write_rnc(spec)
    spec["front"] = []
    spec["layers"][0]["weights"]["weight_ih"] = np.ones((12, 4))
    spec["post"] = [{"kind": "relu"}, {"kind": "concat", "span": 1}]
    with pytest.raises(ValueError, match=r"post\[1\] \(concat\): span must be 1..1 .*concat stands in the "
                                         r"front-end only"):
        write_rnc(spec)


def _edit(data: bytes, record: int, at: int, value: int, fmt: str = "<I") -> bytes:
    """data with the field at byte `at` of record `record` set, the checksum fixed."""
    b = bytearray(data)
    pos = 64
    for _ in range(record):
        pos += struct.unpack_from("<I", b, pos + 4)[0]
    struct.pack_into(fmt, b, pos + at, value)
    return fix_crc(b)


def _small() -> bytes:
    """layer_norm > log_affine > concat(span 1) > gru: widths 4 -> 4 -> 8 -> 3."""
    m = nn.Sequential(nn.LayerNorm(4), FrameConcat(LogAffine(2.0, 9.0)), nn.GRU(8, 3, seed=1))
    return rc.compile(m).data


@pytest.mark.parametrize("record, at, value, fmt, status, want", [
    (2, 12, 0, "<I", "CORRUPT", "record 2 (concat): span: 0, expected 1..2 (the per-step and "
                                "recurrent records right before this one)"),
    (2, 12, 3, "<I", "CORRUPT", "record 2 (concat): span: 3, expected 1..2"),
    (2, 8, 5, "<I", "CORRUPT", "record 2 (concat): features: 5, expected 4"),
    (1, 20, float("nan"), "<f", "CORRUPT", "record 1 (pointwise): beta:"),
    (1, 16, float("inf"), "<f", "CORRUPT", "record 1 (pointwise): alpha:"),
    (1, 12, 15, "<I", "CORRUPT", "record 1 (pointwise): activation: 15, expected 0..14"),
])
def test_mutated_concat_and_log_affine_records_are_refused_alike(record, at, value, fmt, status, want):
    data = _small()
    e = rc.load(data)
    assert e.describe() == "layer_norm > pointwise > concat > gru(3)"
    X = randn32((1, 3, 4), seed=1)
    refused_alike(_edit(data, record, at, value, fmt), want, status)
    np.testing.assert_array_equal(e.run(X), rc.load(data).run(X))


def test_a_concat_after_a_recurrent_record_is_refused_alike():
    data = rc.compile(nn.Sequential(nn.GRU(4, 4, seed=0), nn.ReLU(), nn.Linear(4, 1))).data
    data = _edit(data, 1, 0, 15)   # records gru, relu, linear: the relu's kind made 15
    refused_alike(data, "record 1: kind: kind 15 (concat) cannot come after a recurrent record")
