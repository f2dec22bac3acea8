"""The C engine's log_mel record (kind 13, docs/rnc-format.md "Per-step records"): a
``LogMelSpectrogram(center=False)`` compiled as the first record of a model, one frame of
``n_fft`` samples per step. Checked against ``torch.stft`` with the mel filterbank and PyTorch's GRU
(an independent reference of the whole model: torchaudio's ``MelSpectrogram`` is
``|stft|^power @ fb``; the filterbank itself is checked against librosa's published values in
tests/test_melspec.py), against the NumPy reference, its own stream, ``.rnc`` round trips, refusals
in C and Python alike, and ``export-c`` built and run on this host.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env

import rnncore as rc
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.nn.melspec import window_function

nn = rc.nn
ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def model(seed: int = 0, **kw) -> nn.Sequential:
    """log-mel (64-sample frames, hop 32, 12 filters) -> GRU(16) -> Linear(3), float64."""
    args = dict(n_fft=64, hop_length=32, n_mels=12, f_min=50.0, center=False)
    args.update(kw)
    lm = nn.LogMelSpectrogram(SR, **args)
    return nn.Sequential(lm, nn.GRU(lm.n_mels, 16, seed=seed + 1), nn.Linear(16, 3, seed=seed + 2))


def signal(B: int, T: int, S: int, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    """``(B, T, S)`` samples: a chirp-like tone plus noise (frames with speech-like dynamics)."""
    rng = np.random.default_rng(seed)
    n = np.arange(T * S)
    tone = np.sin(2 * np.pi * (300 + 2000 * n / (T * S)) * n / SR)
    x = scale * (tone[None] * rng.uniform(0.2, 1.0, (B, 1)) + 0.3 * rng.standard_normal((B, T * S)))
    return x.reshape(B, T, S)


def torch_reference(m: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The whole model in float64 PyTorch: torch.stft (center=False), |X|^power, the filterbank,
    log / dB, torch.nn.GRU with the model's weights, the head."""
    lm, gru, head = list(m)
    B = x.shape[0]
    xt = torch.tensor(x.reshape(B, -1))
    win = torch.tensor(window_function(lm.window_name, lm.win_length, lm.win_length))
    X = torch.stft(xt, lm.n_fft, lm.hop_length, lm.win_length, window=win, center=False,
                   return_complex=True)
    mel = X.abs().pow(lm.power).transpose(1, 2) @ torch.tensor(np.asarray(lm.fb, np.float64))
    if lm.log == "log":
        feat = torch.log(mel + lm.log_offset)
    elif lm.log == "db":
        feat = 10 * torch.log10(torch.clamp(mel, min=lm.amin))
    else:
        feat = mel
    tg = torch.nn.GRU(lm.n_mels, 16, batch_first=True).double()
    tg.load_state_dict({k: torch.tensor(np.asarray(v, np.float64)) for k, v in gru.state_dict().items()})
    with torch.no_grad():
        h, _ = tg(feat)
        hs = {k: np.asarray(v, np.float64) for k, v in head.state_dict().items()}
        return (h.numpy() @ hs["weight"].T + hs["bias"])


CASES = [
    dict(),
    dict(power=1.0, log="db"),
    dict(win_length=48, window="hamming", log=None),
    dict(mel_scale="slaney", norm="slaney", log="db", amin=1e-6),   # librosa's filterbank
    dict(n_fft=50, hop_length=20, n_mels=7, log_offset=1e-3),       # odd bin count, even n_fft
    dict(n_fft=63, hop_length=21, n_mels=9),                         # odd n_fft
    dict(n_fft=56, hop_length=28, n_mels=10),                        # 28 = 4 * 7: the tables' product
    dict(n_fft=256, hop_length=128, n_mels=32),                      # the VAD showcase's FFT (4 4 4 2)
    dict(n_fft=400, hop_length=160, n_mels=40, log="db"),            # the KWS shape's FFT (4 2 5 5)
]


@pytest.mark.parametrize("kw", CASES)
def test_engine_equals_torch_stft_mel_gru_and_the_numpy_model(kw):
    m = model(**kw)
    lm = m[0]
    x = signal(3, 24, lm.hop_length)
    ref_np = m.forward(x)                       # float64 NumPy reference
    ref_torch = torch_reference(m, x)           # independent: torch.stft + torch GRU
    np.testing.assert_allclose(ref_np, ref_torch, rtol=0, atol=1e-9)
    eng = rc.compile(m)
    assert eng.describe().startswith("log_mel > gru")
    frames = lm.frames(x).astype(np.float32)    # (B, F, n_fft): the engine's steps
    assert frames.shape == (3, (24 * lm.hop_length - lm.n_fft) // lm.hop_length + 1, lm.n_fft)
    Y = eng.run(frames)
    assert Y.shape == ref_torch.shape
    assert np.std(ref_torch) > 0.05             # the outputs move
    # float32 FFT (or DFT) and log in C against float64: max differences measured 8e-8 .. 4e-7
    np.testing.assert_allclose(Y, ref_torch, rtol=0, atol=2e-6)
    st = eng.stream(batch=3)
    steps = np.stack([st.step(frames[:, t]) for t in range(frames.shape[1])], 1)
    np.testing.assert_array_equal(steps, Y)     # the same row code in step and run


@pytest.mark.parametrize("n_fft", [256, 400, 512, 56])
def test_every_isa_path_streams_the_run_bit_for_bit_within_the_torch_tolerance(n_fft):
    """The FFT's kernel-table rows (rnc_f32_rfft_power_*; 56: the tables' product) on every path this
    CPU runs: ``step`` gives ``run``'s bits, and both stay within the float64 torch reference's
    tolerance."""
    m = model(seed=7, n_fft=n_fft, hop_length=n_fft // 2, n_mels=16)
    lm = m[0]
    x = signal(2, 16, lm.hop_length, seed=8)
    want = torch_reference(m, x)
    frames = lm.frames(x).astype(np.float32)
    for isa in rc.isa()["available"]:
        eng = rc.compile(m)
        eng.set_isa(isa)
        Y = eng.run(frames)
        np.testing.assert_allclose(Y, want, rtol=0, atol=2e-6, err_msg=isa)
        st = eng.stream(batch=2)
        np.testing.assert_array_equal(np.stack([st.step(frames[:, t]) for t in range(frames.shape[1])], 1), Y,
                                      err_msg=isa)


def test_stream_frames_at_the_hop_with_state_save_and_restore():
    """Streaming as a device does: 32 new samples per hop, the frame is the last 64 samples; a
    frame exists from the second hop on. State saved mid-stream restores the same outputs."""
    m = model(seed=4)
    lm = m[0]
    x = signal(1, 30, 32, seed=5)
    want = rc.compile(m).run(lm.frames(x).astype(np.float32))[0]
    eng = rc.compile(m)
    st = eng.stream(batch=1)
    ring = np.zeros(lm.n_fft, np.float32)
    got, saved = [], None
    for t in range(30):
        ring = np.concatenate([ring[lm.hop_length:], x[0, t].astype(np.float32)])
        if t >= lm.n_fft // lm.hop_length - 1:
            got.append(st.step(ring[None])[0])
        if t == 14:
            saved, ring_saved, n_saved = st.state, ring.copy(), len(got)
    np.testing.assert_array_equal(np.stack(got), want)
    st.state = saved
    ring = ring_saved
    again = []
    for t in range(15, 30):
        ring = np.concatenate([ring[lm.hop_length:], x[0, t].astype(np.float32)])
        again.append(st.step(ring[None])[0])
    np.testing.assert_array_equal(np.stack(again), want[n_saved:])


def test_silence_gives_the_log_floor():
    for kw, floor in ((dict(), np.log(1e-6)), (dict(log="db", amin=1e-10), -100.0)):
        m = model(**kw)
        eng = rc.compile(m)
        x = np.zeros((1, 6, 32))
        np.testing.assert_allclose(eng.run(m[0].frames(x).astype(np.float32)), m.forward(x),
                                   rtol=0, atol=2e-6)
        # the features themselves: every filter at the floor (GRU input constant over time)
        assert np.allclose(m[0].forward(x), floor, rtol=0, atol=1e-12)


def test_rnc_round_trip_and_a_front_end_after_the_log_mel():
    lm = nn.LogMelSpectrogram(SR, n_fft=64, hop_length=32, n_mels=12, center=False, log="db")
    m = nn.Sequential(lm, nn.LayerNorm(12), nn.ReLU(), nn.LSTM(12, 8, seed=2), nn.Linear(8, 2, seed=3))
    eng = rc.compile(m)
    assert eng.describe().startswith("log_mel > layer_norm > pointwise > lstm")
    data = eng.data
    d = read_rnc(data)
    assert write_rnc(d) == data
    r = d["front"][0]
    assert (r["kind"], r["n_fft"], r["hop_length"], r["n_mels"], r["log"]) == ("log_mel", 64, 32, 12, "db")
    np.testing.assert_array_equal(r["tensors"]["fb"], lm.fb.astype(np.float32))
    np.testing.assert_array_equal(r["tensors"]["window"], lm.window.astype(np.float32))
    x = signal(2, 12, 32, seed=8)
    fr = lm.frames(x).astype(np.float32)
    np.testing.assert_array_equal(rc.load(data).run(fr), eng.run(fr))
    np.testing.assert_allclose(eng.run(fr), m.forward(x), rtol=0, atol=2e-6)


def test_the_filterbank_is_stored_as_spans():
    """Only each filter's nonzero span is stored: 40 filters over 257 bins hold ~2 x 257 weights,
    not 40 x 257."""
    lm = nn.LogMelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=40, center=False)
    eng = rc.compile(nn.Sequential(lm, nn.GRU(40, 8), nn.Linear(8, 1)))
    d = read_rnc(eng.data)
    fb = lm.fb
    nnz = int((fb > 0).sum())
    from rnncore.io.rnc import mel_spans
    span, w = mel_spans(fb)
    assert nnz <= w.size <= nnz + 2 * 40 and w.size < 3 * 257
    assert np.all(span[:, 0] + span[:, 1] <= 257)
    np.testing.assert_array_equal(d["front"][0]["tensors"]["fb"], fb.astype(np.float32))


def _fix(b: bytearray) -> bytes:
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def _both(b: bytes) -> tuple[str, str]:
    with pytest.raises(RncFormatError) as e:
        check_rnc(b)
    with pytest.raises(ValueError) as c:
        rc.load(b)
    return str(e.value), str(c.value)


@pytest.mark.parametrize("offset,value,want", [
    (8, 32, "n_fft: 32, expected 64"),
    (12, 0, "hop_length: 0, expected 1..65536"),
    (16, 0, "n_mels: 0, expected 1..1048576"),
    (20, 3, "power: 3, expected 1..2"),
    (24, 3, "log: 3, expected 0..2"),
    (28, 0, "log_offset: bits 0x0: expected a finite value > 0"),
    (32, 0x3F800000, "amin: bits 0x3f800000: expected 0 (unused with log = 1)"),
    (36, 1, "reserved: byte 36 of the 72-byte structure is 0x1"),
])
def test_corrupted_log_mel_records_are_refused_alike(offset, value, want):
    data = bytearray(rc.compile(model()).data)
    rec = 64   # the log_mel record follows the v2 header
    struct.pack_into("<I", data, rec + offset, value)
    py, c = _both(_fix(data))
    assert f"record 0 (log_mel): {want}" in py, py
    assert f"record 0 (log_mel): {want}" in c, c


def test_a_filter_span_past_the_bins_and_a_negative_weight_are_refused_alike():
    data = rc.compile(model()).data
    d = read_rnc(data)
    base = bytearray(data)
    span_off = struct.unpack_from("<I", base, 64 + 56)[0]
    b = bytearray(base)
    struct.pack_into("<I", b, span_off + 8 * 3, 33)   # filter 3 starts at bin 33 of 0..32
    py, c = _both(_fix(b))
    first, last = d["front"][0]["tensors"]["fb"][:, 3].nonzero()[0][[0, -1]]
    want = f"fb_span: filter 3 spans bins 33..{33 + last - first + 1}, past the 33 frequency bins"
    assert want in py and want in c, (py, c)
    w_off = struct.unpack_from("<I", base, 64 + 64)[0]
    b = bytearray(base)
    struct.pack_into("<f", b, w_off + 4 * 2, -0.5)
    py, c = _both(_fix(b))
    assert "fb_weight: value 2 is negative" in py and "fb_weight: value 2 is negative" in c, (py, c)


def test_misplaced_centred_and_q4_log_mels_are_refused_naming_what():
    lm = nn.LogMelSpectrogram(SR, n_fft=64, hop_length=32, n_mels=12, center=False)
    with pytest.raises(ValueError, match=r"center=True pads the whole signal.*center=False"):
        rc.compile(nn.Sequential(nn.LogMelSpectrogram(SR, n_fft=64, n_mels=12), nn.GRU(12, 4)))
    # q8 runs it (tests/test_engine_q8_kws.py); q4 files hold no per-step records
    with pytest.raises(ValueError, match=r"runs per-step records in f32 and q8 files only"):
        rc.compile(nn.Sequential(lm, nn.GRU(12, 4)), "q4")
    # a q4 file holding one: the loader and the reader refuse it alike
    data = bytearray(rc.compile(nn.Sequential(lm, nn.GRU(12, 4))).data)
    struct.pack_into("<I", data, 20, 2)     # the header's precision: q4
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    want = "kind 13 (log_mel) in a q4 file: the C core runs the per-step records in f32 and q8 files only"
    data = bytes(data)
    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(data)
    with pytest.raises(ValueError, match=re.escape(want)):
        rc.load(data)
    # a log_mel after another front-end record: the writer, the reader and the loader refuse it
    spec = read_rnc(rc.compile(nn.Sequential(lm, nn.GRU(12, 4))).data)
    # tables that are not the DFT's would be stored folded, a different model: refused
    bad = dict(spec["front"][0], tensors=dict(spec["front"][0]["tensors"]))
    bad["tensors"]["sin"] = -bad["tensors"]["sin"]
    with pytest.raises(ValueError, match=r"cos, sin must be the DFT tables of n_fft=64"):
        write_rnc({**spec, "front": [bad]})
    with pytest.raises(ValueError, match=r"front\[1\] \(log_mel\): a log_mel record must be the first"):
        write_rnc({**spec, "front": [{"kind": "relu", "features": 64}] + spec["front"]})
    data = bytearray(write_rnc({**spec, "front": [spec["front"][0], {"kind": "relu"}]}))
    # swap the two records: pointwise (24 bytes) first, then the log_mel
    recs = bytes(data[64:64 + 72 + 24])
    data[64:64 + 24] = recs[72:]
    data[64 + 24:64 + 96] = recs[:72]
    py, c = _both(_fix(data))
    want = "record 1: kind: kind 13 (log_mel) cannot come after a front-end record"
    assert want in py and want in c, (py, c)


def test_export_c_of_a_log_mel_model_runs_on_this_host(tmp_path):
    r = subprocess.run(["make", "-C", str(ROOT / "csrc"), "lib"], capture_output=True, text=True, timeout=600,
                       env=child_env())
    assert r.returncode == 0, r.stderr[-2000:]
    m = model(seed=9, log="db", power=1.0)
    eng = rc.compile(m)
    path = tmp_path / "mel.rnc"
    path.write_bytes(eng.data)
    src = tmp_path / "mel.c"
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(path), "-o", str(src)],
                       capture_output=True, text=True, cwd=ROOT, env=child_env())
    assert r.returncode == 0, r.stderr
    exe = tmp_path / "mel"
    r = subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{ROOT / 'csrc' / 'include'}", str(src),
                        str(ROOT / "csrc" / "build" / "librnncore.a"), "-lm", "-o", str(exe)],
                       capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    x = signal(1, 20, 32, seed=11)
    frames = m[0].frames(x).astype(np.float32)[0]
    inp = tmp_path / "x.f32"
    frames.astype("<f4").tofile(inp)
    want = torch_reference(m, x)[0]
    for mode in ([], ["--run"]):
        r = subprocess.run([str(exe), *mode, str(inp)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        got = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()], np.float32)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6, err_msg=str(mode))
