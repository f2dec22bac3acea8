"""q8 files with log_mel and pooling over time: the KWS shape log-mel > Conv1d over time > pooling >
GRU > Linear compiled with ``rc.compile(model, "q8")`` (docs/q8-contract.md, "Per-step records in a
q8 file"). The log_mel and pool_time records run in float32 as in an f32 file, before the int8
layers; the C output equals the NumPy q8 reference (``rnncore.quant.front``: the C core's FFT
operation by operation) bit for bit on every ISA path of this machine, the stream gives the bits of
``run`` (``None`` at the steps a pooling leaves out), the state saves and restores, calibration
measures after the records, and the q8 model stays close to the f32 one.

The reference itself is checked against independent ones: its power spectrum against a float64 DFT
(numpy.fft) and its log-mel rows against the float64 log-mel of the rc.nn layer, its pooling
against PyTorch's.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from export_c_run import exported_outputs

import rnncore as rc
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.quant import front
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

nn = rc.nn
ISAS = rc.isa()["available"]
SR = 16000


def kws(n_fft: int = 64, log: str = "log", seed: int = 0, last_step: bool = False) -> nn.Sequential:
    """log-mel (12 bands) > causal Conv1d(12 -> 8, k 3) > ReLU > MaxPool1d(2, stride 2) >
    AvgPool1d(3, stride 1) > GRU(10) > Linear(3)."""
    mods = [nn.LogMelSpectrogram(SR, n_fft=n_fft, hop_length=n_fft // 2, n_mels=12, center=False, log=log),
            nn.Conv1d(12, 8, 3, padding="causal", seed=seed + 1), nn.ReLU(),
            nn.MaxPool1d(2, channels=8, stride=2), nn.AvgPool1d(3, channels=8, stride=1),
            nn.GRU(8, 10, seed=seed + 2)]
    if last_step:
        mods.append(nn.LastStep())
    return nn.Sequential(*mods, nn.Linear(10, 3, seed=seed + 3))


def frames(B: int, T: int, n_fft: int, seed: int = 0) -> np.ndarray:
    """``(B, T, n_fft)`` frames (hop n_fft / 2) of a tone in noise whose level changes per sequence."""
    rng = np.random.default_rng(seed)
    hop = n_fft // 2
    n = hop * (T - 1) + n_fft
    t = np.arange(n) / SR
    sig = [(0.3 + 0.5 * (b % 4)) * np.sin(2 * np.pi * (300 + 200 * b) * t) + 0.1 * rng.standard_normal(n)
           for b in range(B)]
    return np.stack([np.stack([s[i * hop:i * hop + n_fft] for i in range(T)]) for s in sig]).astype(
        np.float32)


def _reference(e, X, lengths=None):
    return gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(e.data)), X, lengths)[0]


@pytest.mark.parametrize("n_fft, log", [(64, "log"), (256, "log"), (48, "db"), (40, "log"), (30, None)])
def test_q8_kws_equals_the_numpy_reference_bit_for_bit_on_every_isa(n_fft, log):
    """n_fft 64 (radix 4, 4, 2), 256 (the AVX-512 row's first radix-4 pass), 48 (4, 2, 3),
    40 (4, 5), 30 (3, 5); log, dB and no log; lengths (one sequence with no output at all)."""
    m = kws(n_fft, log, seed=n_fft)
    e = rc.compile(m, "q8")
    assert e.precision == "q8"
    assert e.describe() == "log_mel > conv_time > pointwise > pool_time > pool_time > gru(10) > linear(10->3)"
    X = frames(3, 23, n_fft, seed=n_fft)
    L = np.array([23, 9, 3])   # 23 -> 11 -> 9 steps; 9 -> 4 -> 2; 3 -> 1 -> 0
    ref = _reference(e, X, L)
    assert ref.shape == (3, 9, 3)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, L), ref, err_msg=isa)
    assert not ref[1, 2:].any() and not ref[2].any() and np.abs(ref[0]).max() > 0.05
    # the q8 model is the f32 one quantised: close, not equal
    y32 = rc.compile(m).run(X, L)
    err = np.abs(ref - y32).max() / np.abs(y32).max()
    assert 0 < err < 0.05, err   # measured 0.6 % (n_fft 30, no log) .. 4.0 % (48, dB)


def test_q8_kws_streams_with_the_bits_of_its_run_and_restores_its_windows():
    e = rc.compile(kws(seed=3), "q8")
    X = frames(2, 30, 64, seed=1)
    whole = e.run(X)
    assert whole.shape == (2, 13, 3)   # 30 -> 15 (max k2 s2) -> 13 (avg k3 s1)
    for isa in ISAS:
        e.set_isa(isa)
        s = e.stream(2)
        outs = [s.step(X[:, t].copy()) for t in range(11)]
        saved = s.state
        outs += [s.step(X[:, t].copy()) for t in range(11, 30)]
        # outputs after the 2 + 2 x 2 inputs the windows need, then every second step
        assert [t for t, o in enumerate(outs) if o is not None] == list(range(5, 30, 2)), isa
        np.testing.assert_array_equal(np.stack([o for o in outs if o is not None], 1), whole, err_msg=isa)
        s.state = saved
        again = [o for o in (s.step(X[:, t].copy()) for t in range(11, 30)) if o is not None]
        np.testing.assert_array_equal(np.stack(again, 1), whole[:, -len(again):], err_msg=isa)
        s.reset()
        assert s.step(X[:, 0].copy()) is None


def test_q8_kws_last_step_and_its_stream():
    m = kws(seed=5, last_step=True)
    e = rc.compile(m, "q8")
    X = frames(3, 20, 64, seed=2)
    L = np.array([20, 7, 4])   # 4 -> 2 -> 0 output steps: the head of a zero vector
    ref = _reference(e, X, L)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, L), ref, err_msg=isa)
    np.testing.assert_array_equal(ref[2], e.run(X[2:3], lengths=np.array([0]))[0])


def test_the_reference_log_mel_is_the_float_log_mel_and_its_fft_the_dft():
    """power_spectrum against numpy.fft in float64, log_mel_rows against the float64 record (= the
    rc.nn layer, test_engine_residual); and it is not a float64 computation in disguise: it differs
    from the float64 values rounded to float32 in the last bits."""
    for n_fft in (64, 256, 48, 40, 30):
        rec = read_rnc(rc.compile(kws(n_fft), "q8").data)["front"][0]
        x = frames(1, 40, n_fft, seed=n_fft)[0] * 4
        t = rec["tensors"]
        radix = front.fft_plan(n_fft, t["cos"], t["sin"])
        assert radix is not None and int(np.prod(radix)) == n_fft // 2
        p = front.power_spectrum(x, t["window"], t["cos"], t["sin"], 2, radix)
        want = np.abs(np.fft.rfft(x.astype(np.float64) * t["window"].astype(np.float64), axis=1)) ** 2
        np.testing.assert_allclose(p, want, rtol=2e-5, atol=2e-5 * want.max())
        y = front.log_mel_rows(rec, x)
        y64 = front.float_step_records([rec], x)
        np.testing.assert_allclose(y, y64, rtol=0, atol=2e-5 * np.abs(y64).max())
        assert (y != y64.astype(np.float32)).any()


def test_a_log_mel_by_the_tables_product_runs_in_q8_but_has_no_bit_exact_reference():
    """n_fft 28 (14 = 2 x 7): the C core takes the DFT tables' product (the ISA's f32 GEMM row)."""
    m = kws(28, seed=7)
    e = rc.compile(m, "q8")
    X = frames(2, 12, 28, seed=3)
    y, y32 = e.run(X), rc.compile(m).run(X)
    assert np.abs(y - y32).max() < 0.03 * np.abs(y32).max()
    with pytest.raises(ValueError, match=r"log_mel: n_fft 28 runs by the tables' product in the C core"):
        _reference(e, X)


def test_pool_time_seq_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 17, 4)).astype(np.float32)
    for kind, k, st, dl in (("max_pool1d", 3, 2, 1), ("avg_pool1d", 2, 2, 1), ("max_pool1d", 2, 3, 2),
                            ("avg_pool1d", 4, 1, 1)):
        y = front.pool_time_seq({"kind": kind, "kernel_size": k, "stride": st, "dilation": dl}, x)
        u = torch.from_numpy(x).transpose(1, 2)
        if kind == "max_pool1d":
            want = torch.nn.functional.max_pool1d(u, k, st, dilation=dl)
        else:
            want = torch.nn.functional.avg_pool1d(u, k, st)
        np.testing.assert_allclose(y, want.transpose(1, 2).numpy(), rtol=0, atol=1e-6)
        rec = {"kind": kind, "kernel_size": k, "stride": st, "dilation": dl}
        assert front.out_lengths([rec], np.array([17]))[0] == y.shape[1]


def test_calibrated_q8_kws_measures_after_log_mel_and_pooling():
    m = kws(seed=9)
    X = frames(16, 24, 64, seed=4)
    e = rc.compile(m, "q8", calibration=X)
    d = read_rnc(e.data)
    assert d["layers"][0]["x_scale"] > 0 and d["head"]["in_scale"] > 0
    # the input scale is the pooled features' max |x| / 127 (float model, float32 as calibrate runs it)
    from rnncore.spec import spec_from_model

    spec_front = spec_from_model(m).front
    feats = front.float_step_records(spec_front, X)
    assert feats.shape == (16, 10, 8)
    np.testing.assert_allclose(d["layers"][0]["x_scale"], np.abs(feats).max() / 127, rtol=1e-5)
    ref = _reference(e, X)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X), ref, err_msg=isa)
    y32 = rc.compile(m).run(X)
    assert 0 < np.abs(ref - y32).max() < 0.05 * np.abs(y32).max()


def test_q8_kws_file_round_trip():
    e = rc.compile(kws(seed=11), "q8")
    d = read_rnc(e.data)
    assert [r["kind"] for r in d["front"]] == ["log_mel", "conv1d", "relu", "max_pool1d", "avg_pool1d"]
    assert write_rnc(d) == e.data
    X = frames(1, 16, 64, seed=5)
    np.testing.assert_array_equal(rc.load(e.data).run(X), e.run(X))


def test_export_c_of_the_q8_kws_model_runs_on_this_host(tmp_path):
    eng = rc.compile(kws(seed=13), "q8")
    X = frames(1, 25, 64, seed=6)[0]
    want = eng.run(X[None])[0]
    assert want.shape == (10, 3)
    for mode, y in exported_outputs(tmp_path, eng.data, X, "kws").items():
        np.testing.assert_array_equal(y, want, err_msg=mode)


def test_rnncore_quantize_takes_an_f32_kws_file(tmp_path):
    from child_env import child_env

    from rnncore.spec import spec_from_rnc

    m = kws(seed=15)
    src, out = tmp_path / "kws.rnc", tmp_path / "kws_q8.rnc"
    src.write_bytes(rc.compile(m).data)
    X = frames(16, 20, 64, seed=7)
    np.save(tmp_path / "x.npy", X)
    f32 = spec_from_rnc(read_rnc(src.read_bytes()))   # the model as the file holds it (float32)
    root = pathlib.Path(__file__).resolve().parents[1]
    for extra in ([], ["--calibration", str(tmp_path / "x.npy")]):
        r = subprocess.run([sys.executable, "-m", "rnncore", "quantize", str(src), "-o", str(out), *extra],
                           capture_output=True, text=True, cwd=root, env=child_env())
        assert r.returncode == 0, r.stderr
        want = rc.compile(f32, "q8", calibration=X if extra else None)
        assert out.read_bytes() == want.data
        assert read_rnc(out.read_bytes())["front"][0]["kind"] == "log_mel"
        assert (read_rnc(out.read_bytes())["layers"][0]["x_scale"] is None) == (not extra)


def test_the_reference_log_is_the_c_cores_logf_bit_for_bit(tmp_path):
    """``front.rnc_logf`` against kernels/logf.h's ``rnc_logf`` compiled here (-ffp-contract=off as
    the C core): every 997th float32 bit pattern (normals, subnormals, zeros, negatives, inf,
    NaNs), and the values near 1 and near FLT_MIN where the exponent split changes."""
    from child_env import child_env

    root = pathlib.Path(__file__).resolve().parents[1]
    src = tmp_path / "logsweep.c"
    src.write_text('#include <stdio.h>\n#include <stdint.h>\n#include <string.h>\n#include "kernels/logf.h"\n'
                   "int main(void) { uint32_t b; float x, r;\n"
                   "  while (fread(&b, 4, 1, stdin) == 1) { memcpy(&x, &b, 4); r = rnc_logf(x);"
                   " fwrite(&r, 4, 1, stdout); }\n  return 0; }\n")
    exe = tmp_path / "logsweep"
    r = subprocess.run(["cc", "-std=c99", "-O2", "-ffp-contract=off", f"-I{root / 'csrc' / 'src'}", str(src),
                        "-lm", "-o", str(exe)], capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    near = np.concatenate([np.arange(0x3F340000, 0x3F360000), np.arange(0x3F7F0000, 0x3F810000),
                           np.arange(0x007F0000, 0x00810000)]).astype(np.uint32)
    bits = np.concatenate([np.arange(0, 2**32, 997, dtype=np.uint64).astype(np.uint32), near,
                           np.array([0x7F800000, 0xFF800000, 0x80000000, 0x7FC00000, 1], np.uint32)])
    out = subprocess.run([str(exe)], input=bits.tobytes(), capture_output=True, timeout=300).stdout
    c = np.frombuffer(out, np.float32)
    py = front.rnc_logf(bits.view(np.float32))
    assert c.size == bits.size
    same = (py.view(np.uint32) == c.view(np.uint32)) | (np.isnan(py) & np.isnan(c))
    assert same.all(), bits[~same][:10]
    ref = np.log(bits.view(np.float32)[(bits < 0x7F800000) & (bits > 0)].astype(np.float64))
    got = py[(bits < 0x7F800000) & (bits > 0)].astype(np.float64)
    assert np.all(np.abs(got - ref) <= np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64) + 1e-45)
