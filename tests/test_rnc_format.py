"""The .rnc writer/reader: round trips, the q8 weight quantisation, the packing, hostile bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.io.rnc import (
    pack_f32,
    pack_q8,
    quantize_rows,
    read_rnc,
    unpack_f32,
    unpack_q8,
    write_rnc,
)

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def make_spec(rng, kind="gru", sizes=((3, 5),), bidirectional=False, precision="f32", head=None,
              embedding=None, nonlinearity="tanh", reset_after=True):
    layers = []
    feat = sizes[0][0]
    for li, (_, h) in enumerate(sizes):
        g = GATES[kind]
        w = {}
        for suf in ([""] + (["_reverse"] if bidirectional else [])):
            w[f"weight_ih_l{li}{suf}"] = rng.standard_normal((g * h, feat)).astype(np.float32)
            w[f"weight_hh_l{li}{suf}"] = rng.standard_normal((g * h, h)).astype(np.float32)
            w[f"bias_ih_l{li}{suf}"] = rng.standard_normal(g * h).astype(np.float32)
            w[f"bias_hh_l{li}{suf}"] = rng.standard_normal(g * h).astype(np.float32)
        layers.append({"kind": kind, "bidirectional": bidirectional, "weights": w,
                       "nonlinearity": nonlinearity, "reset_after": reset_after})
        feat = h * (2 if bidirectional else 1)
    spec = {"precision": precision, "layers": layers, "input_size": sizes[0][0]}
    if head:
        spec["head"] = {"weight": rng.standard_normal((head, feat)).astype(np.float32),
                        "bias": rng.standard_normal(head).astype(np.float32), "activation": "tanh"}
    if embedding:
        spec["embedding"] = {"weight": rng.standard_normal((embedding, sizes[0][0])).astype(np.float32)}
    return spec


def direct_quant(w):
    """Straight from docs/q8-contract.md, row by row, in float32 scalars."""
    w = np.asarray(w, np.float32)
    q = np.zeros(w.shape, np.int8)
    s = np.zeros(w.shape[0], np.float32)
    for r in range(w.shape[0]):
        m = np.float32(np.max(np.abs(w[r])))
        s[r] = m / np.float32(127)
        if m == 0:
            continue
        for k in range(w.shape[1]):
            q[r, k] = int(np.clip(np.rint(np.float32(w[r, k] / s[r])), -127, 127))
    return q, s


@settings(max_examples=30, deadline=None)
@given(r=st.integers(1, 20), k=st.integers(1, 20), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]))
def test_quantize_rows_matches_direct(r, k, seed, scale):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((r, k)) * scale).astype(np.float32)
    w[rng.random((r, k)) < 0.1] = 0
    if r > 1:
        w[0] = 0  # an all-zero row
    q, s = quantize_rows(w)
    q2, s2 = direct_quant(w)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(s, s2)
    assert q.min() >= -127 and q.max() <= 127
    assert s.dtype == np.float32


def test_quantize_rounds_half_to_even():
    # max 127 -> scale 1 exactly, so w / s = w: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0
    w = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -127.0]], np.float32)
    q, s = quantize_rows(w)
    assert s[0] == 1.0
    assert q.tolist() == [[127, 0, 2, 2, 0, -2, -127]]


def test_pack_layouts_index_formulas():
    rng = np.random.default_rng(1)
    rp, kp = 32, 12
    w = rng.integers(-127, 128, (rp, kp)).astype(np.int8)
    p = pack_q8(w)
    for b in range(rp // 16):
        for g in range(kp // 4):
            for r in range(16):
                for j in range(4):
                    assert p[(b * kp // 4 + g) * 64 + r * 4 + j] == w[16 * b + r, 4 * g + j]
    np.testing.assert_array_equal(unpack_q8(p, rp, kp), w)
    wf = rng.standard_normal((rp, 7)).astype(np.float32)
    pf = pack_f32(wf)
    for b in range(rp // 16):
        for k in range(7):
            for r in range(16):
                assert pf[(b * 7 + k) * 16 + r] == wf[16 * b + r, k]
    np.testing.assert_array_equal(unpack_f32(pf, rp, 7), wf)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_round_trip(kind, precision, bidirectional):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{precision}{bidirectional}".encode()))
    spec = make_spec(rng, kind, sizes=((3, 5), (0, 17)), bidirectional=bidirectional,
                     precision=precision, head=4, embedding=9)
    data = write_rnc(spec)
    assert data[:4] == b"RNCM"
    assert struct.unpack_from("<I", data, 12)[0] == zlib.crc32(data[16:])
    back = read_rnc(data)
    assert back["precision"] == precision
    assert back["output_size"] == 4
    np.testing.assert_array_equal(back["embedding"]["weight"], spec["embedding"]["weight"])
    for li, (lw, lb) in enumerate(zip(spec["layers"], back["layers"], strict=True)):
        assert lb["kind"] == kind and lb["bidirectional"] == bidirectional
        for name, w in lw["weights"].items():
            short = name.replace(f"_l{li}", "")
            got = lb["weights"][short]
            if precision == "f32" or name.startswith("bias"):
                np.testing.assert_array_equal(got, w)
            else:
                q, s = direct_quant(w)
                np.testing.assert_array_equal(lb["qweights"][short], q)
                np.testing.assert_array_equal(lb["scales"][short], s)
                np.testing.assert_array_equal(got, q.astype(np.float32) * s[:, None])
    head = back["head"]
    assert head["activation"] == "tanh"
    np.testing.assert_array_equal(head["bias"], spec["head"]["bias"])
    if precision == "q8":
        q, s = direct_quant(spec["head"]["weight"])
        np.testing.assert_array_equal(head["qweight"], q)
        np.testing.assert_array_equal(head["scale"], s)
    else:
        np.testing.assert_array_equal(head["weight"], spec["head"]["weight"])


def test_tensors_aligned_and_padding_zero():
    rng = np.random.default_rng(3)
    data = write_rnc(make_spec(rng, "lstm", sizes=((3, 5),), precision="q8"))
    refs = struct.unpack_from("<12I", data, 128 + 32)
    for j in range(6):
        off, n = refs[2 * j], refs[2 * j + 1]
        assert off % 64 == 0 and n > 0 and off + n <= len(data)
    # w_hh of the LSTM: 4 gates x 16 rows x round4(5)=8 inputs; rows 5..15 of each gate are zero
    off = refs[2]
    wq = unpack_q8(np.frombuffer(data, np.int8, 64 * 8, off), 64, 8)
    for g in range(4):
        assert not wq[g * 16 + 5:(g + 1) * 16].any()
    assert not wq[:, 5:].any()


def test_bad_inputs_raise():
    rng = np.random.default_rng(4)
    spec = make_spec(rng, "gru")
    spec["layers"][0]["weights"]["weight_hh_l0"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError):
        write_rnc(spec)
    spec = make_spec(rng, "gru")
    spec["layers"][0]["weights"]["weight_ih_l0"][0, 0] = np.nan
    with pytest.raises(ValueError):
        write_rnc(spec)
    with pytest.raises(ValueError):
        write_rnc({**make_spec(rng, "gru"), "precision": "i4"})
    with pytest.raises(ValueError):
        write_rnc(make_spec(rng, "rnn", nonlinearity="sigmoid"))
    good = write_rnc(make_spec(rng, "gru"))
    with pytest.raises(ValueError):
        read_rnc(good[:-1])
    bad = bytearray(good)
    bad[200] ^= 1
    with pytest.raises(ValueError):
        read_rnc(bytes(bad))
    bad = bytearray(good)
    bad[4] = 2
    with pytest.raises(ValueError):
        read_rnc(bytes(bad))
    with pytest.raises(ValueError):
        read_rnc(b"XXXX" + good[4:])


def test_static_scales_and_pooling_round_trip():
    rng = np.random.default_rng(5)
    spec = make_spec(rng, "gru", sizes=((3, 5),), bidirectional=True, precision="q8", head=2)
    spec["layers"][0]["x_scale"] = 0.25
    spec["layers"][0]["h_scale"] = [0.01, 0.02]
    spec["head"]["in_scale"] = 0.5
    spec["last_step"] = True
    spec["last_step_bidirectional"] = True
    back = read_rnc(write_rnc(spec))
    assert back["last_step"] and back["last_step_bidirectional"]
    layer = back["layers"][0]
    assert layer["x_scale"] == np.float32(0.25)
    assert layer["h_scale"] == [np.float32(0.01), np.float32(0.02)]
    assert back["head"]["in_scale"] == 0.5
    spec["precision"] = "f32"
    with pytest.raises(ValueError):
        write_rnc(spec)  # static scales exist only in q8 files


def test_reader_rejects_mutations_with_value_error():
    """Random byte mutations (half with the checksum fixed so parsing goes deep): the reader
    either returns a description or raises ValueError, nothing else."""
    rng = np.random.default_rng(6)
    data = write_rnc(make_spec(rng, "lstm", sizes=((3, 5), (0, 7)), bidirectional=True, precision="q8",
                               head=3, embedding=4))
    outcomes = {"ok": 0, "ValueError": 0}
    for it in range(400):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, 256 if it % 2 else len(b)))] = int(rng.integers(0, 256))
        if it % 3:
            struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])))
        try:
            read_rnc(bytes(b))
            outcomes["ok"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    assert outcomes["ValueError"] > 100
