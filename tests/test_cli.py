"""The ``rnncore`` command, invoked for real: ``info``, ``bench``, ``quantize``, ``convert``'s
flags and hints, ``--version``, one-line user errors; and the modules' and engines' ``repr``.

Numbers are checked against independent computations: the model's own sizes and parameter
counts, ``zlib``/``hashlib`` of the file, the kernel table's rows and ranges, ``rc.compile``'s
bytes, and errors computed here from the engines and the NumPy reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import rnncore as rc
from rnncore.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32 = np.float32


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "rnncore", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def one_line_error(r: subprocess.CompletedProcess, status: int = 1) -> str:
    """A user error: the status, no traceback, and (for status 1) exactly one line on stderr."""
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "_Refused" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    if status == 1:
        assert len(lines) == 1, r.stderr
    return lines[-1]


def main_error(args: list[str]) -> str:
    """``main(args)`` ends with a user error: ``SystemExit`` with one line (what stderr shows)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    msg = info.value.code
    assert isinstance(msg, str) and "\n" not in msg and "_Refused" not in msg, msg
    return msg


def classifier(seed: int = 0, hidden: int = 16, features: int = 5, classes: int = 3):
    return rc.nn.Sequential(rc.nn.GRU(features, hidden, seed=seed), rc.nn.LastStep(),
                            rc.nn.Linear(hidden, classes, seed=seed + 1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A GRU classifier (f32 and calibrated q8 files), its calibration inputs, and a bidirectional
    LSTM stack with an embedding (q8, dynamic scales)."""
    d = tmp_path_factory.mktemp("cli")
    model = classifier()
    X = np.random.default_rng(1).standard_normal((6, 9, 5)).astype(F32)
    np.save(d / "X.npy", X)
    rc.compile(model, "f32").save(d / "m32.rnc")
    rc.compile(model, "q8", calibration=X).save(d / "m8.rnc")
    bi = rc.nn.Sequential(rc.nn.Embedding(20, 4, seed=2), rc.nn.LSTM(4, 6, num_layers=2, bidirectional=True,
                                                                      seed=3),
                          rc.nn.LastStep(bidirectional=True), rc.nn.Linear(12, 2, seed=4))
    rc.compile(bi, "q8").save(d / "bi.rnc")
    return {"dir": d, "model": model, "X": X, "bi": bi}


# -- --version, repr ----------------------------------------------------------------------------


def test_version_flag_and_command():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"rnncore {rc.__version__}"
    r = cli("version")
    assert r.returncode == 0 and r.stdout.strip() == rc.__version__


def test_module_repr_nests_like_pytorch():
    m = rc.nn.Sequential(rc.nn.Embedding(10, 4, padding_idx=0), rc.nn.Dropout(0.25),
                         rc.nn.GRU(4, 8, bidirectional=True), rc.nn.LastStep(bidirectional=True),
                         rc.nn.Linear(16, 3, bias=False))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Embedding(10, 4, padding_idx=0, dtype='float64')\n"
        "  (1): Dropout(p=0.25)\n"
        "  (2): GRU(input_size=4, hidden_size=8, num_layers=1, bias=True, dropout=0.0, "
        "bidirectional=True, reset_after=True, dtype='float64')\n"
        "  (3): LastStep(bidirectional=True)\n"
        "  (4): Linear(in_features=16, out_features=3, bias=False, dtype='float64')\n"
        ")")
    att = rc.nn.Sequential(rc.nn.LSTM(3, 4), rc.nn.AttentionPool(4, 5), rc.nn.MaskedMean())
    assert repr(att).splitlines()[2:6] == [
        "  (1): AttentionPool(",
        "    input_size=4, attention_size=5",
        "    (proj): Linear(in_features=4, out_features=5, bias=True, dtype='float64')",
        "    (score): Linear(in_features=5, out_features=1, bias=False, dtype='float64')"]
    assert "object at 0x" not in repr(rc.nn.Adam(m, lr=0.01)) and "lr=0.01" in repr(rc.nn.Adam(m, lr=0.01))
    spec = rc.quant.spec_from_model(m)
    assert repr(spec) == "ModelSpec(embedding(10x4) > grux2(8) > last_step > linear(16->3))"
    assert repr(spec.layers[0]) == "LayerSpec('gru', input_size=4, hidden_size=8, directions=2)"
    q = rc.compile(m, "q8").reference()
    assert repr(q) == "QModel(embedding(10x4) > grux2(8) > last_step > linear(16->3), int8 weights, " \
        "dynamic activation scales)"
    assert repr(q.layers[0].directions[0].w_hh) == "QMatrix(shape=(24, 8), int8, per-row float32 scales)"


def test_engine_and_stream_repr(files):
    e = rc.load(files["dir"] / "bi.rnc")
    assert repr(e) == (f"Engine(embedding(20x4) > lstmx2(6) > lstmx2(6) > last_step > linear(12->2), "
                       f"precision='q8', in=1, out=2, bytes={e.nbytes}, isa={e.isa!r})")
    s = rc.load(files["dir"] / "m32.rnc").stream(3)
    assert repr(s) == f"Stream(batch=3, in=(3, 5), out=(3, 3), precision='f32', isa={e.isa!r})"
    assert "object at 0x" not in repr(s._s) and "batch=3" in repr(s._s)
    assert "gru(16)" in repr(rc.load(files["dir"] / "m8.rnc")._model)


# -- info ----------------------------------------------------------------------------------------

# the fallback chains of docs/c-api.md ("The plan")
_CHAIN = {"amx": ["amx", "avx512vnni", "avx512", "avx2", "generic"],
          "avx512vnni": ["avx512vnni", "avx512", "avx2", "generic"], "avx512": ["avx512", "avx2", "generic"],
          "avxvnni": ["avxvnni", "avx2", "generic"], "avx2": ["avx2", "generic"], "generic": ["generic"],
          "neondot": ["neondot", "neon", "generic"], "neon": ["neon", "generic"]}


def _check_row(name: str, op: str, precision: str, isa: str, mode: str, batch: int) -> None:
    """``name`` is a kernel-table row that may serve ``op`` at ``batch`` on ``isa``."""
    from rnncore import _kernels

    rows = {k["name"]: k for k in _kernels.kernels()}
    k = rows[name]
    assert k["op"] == op and k["precision"] == precision, (name, op, precision)
    assert k["isa"] in _CHAIN[isa], (name, isa)
    assert k["input"] in (mode, "any"), (name, mode)
    assert k["min_batch"] <= batch and (k["max_batch"] is None or batch <= k["max_batch"]), (name, batch)


@pytest.mark.parametrize("which", ["m8", "m32", "bi"])
def test_info_json_against_the_model(files, which):
    path = files["dir"] / f"{which}.rnc"
    r = cli("info", str(path), "--json", "--batch", "1,3,16", "--seq-len", "7")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    data = path.read_bytes()
    model = files["bi"] if which == "bi" else files["model"]
    assert info["file_bytes"] == len(data) == os.path.getsize(path)
    assert info["crc32"] == f"{zlib.crc32(data[16:]) & 0xFFFFFFFF:08x}" and info["crc32_ok"]
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["format_version"] == 2
    assert info["precision"] == ("f32" if which == "m32" else "q8")
    assert info["parameters"] == model.num_parameters()
    if which == "bi":
        assert info["input"] == {"token_ids": True, "vocabulary": 20, "embedding_dim": 4}
        assert [(L["kind"], L["input_size"], L["hidden_size"], L["directions"]) for L in info["layers"]] == \
            [("lstm", 4, 6, 2), ("lstm", 12, 6, 2)]
        assert info["last_step"] == "bidirectional" and info["head"]["in_features"] == 12
        assert all(L["scales"] == "dynamic" for L in info["layers"])
    else:
        assert info["input"] == {"token_ids": False, "features": 5}
        assert [(L["kind"], L["input_size"], L["hidden_size"], L["gru_form"]) for L in info["layers"]] == \
            [("gru", 5, 16, "reset_after")]
        gru = next(m for _, m in model.children())
        assert info["layers"][0]["parameters"] == gru.num_parameters()
        assert info["head"] == {"in_features": 16, "out_features": 3, "activation": "none", "parameters": 51,
                                **({"scales": "static"} if which == "m8" else {})}
        if which == "m8":
            assert info["layers"][0]["scales"] == "static"
    assert info["output_size"] == info["head"]["out_features"]
    isa = info["isa"]["in_use"]
    assert isa == rc.isa()["in_use"] and info["isa"]["available"] == rc.isa()["available"]
    engine = rc.load(path)
    prec = info["precision"]
    for row in info["batches"]:
        b = row["batch"]
        # the C state holds at least every h (and c) float of every layer and direction
        floats = sum(L["directions"] * b * L["hidden_size"] * (2 if L["kind"] == "lstm" else 1)
                     for L in info["layers"])
        assert row["state_bytes"] == engine.state_bytes(b) >= 4 * floats
        assert row["run_scratch_bytes"] == engine.run_scratch_bytes(b, 7) > 0
        cell = info["layers"][0]["kind"] + "_step"
        run = row["plan"]["run"]
        mode = "x" if b >= 4 else "gi"
        for name in run["cells"]:
            _check_row(name, cell, prec, isa, mode, b)
        if b < 4:
            _check_row(run["projection"], "gemm_deq" if prec == "q8" else "gemv", prec, isa, "x", b * 7)
        else:
            assert "projection" not in run
        _check_row(run["head"], "gemv", prec, isa, "x", b)  # after last-step pooling: b rows
        if prec == "q8":
            _check_row(run["quantize"], "quantize", "q8", isa, "x", 1)
        if which == "bi":
            assert "step" not in row["plan"]  # bidirectional: whole sequences only
        else:
            for name in row["plan"]["step"]["cells"]:
                _check_row(name, cell, prec, isa, "x", b)


def test_info_text_and_forced_isa(files):
    r = cli("info", str(files["dir"] / "m8.rnc"), "--isa", "generic", "--batch", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "model: gru(16) > last_step > linear(16->3)" in out
    assert "layer 0: gru 5 -> 16, reset_after, static activation scales" in out
    assert "ISA path: generic" in out
    plan = out[out.index("kernel-table rows the plan picks on generic"):].splitlines()[1:]
    assert plan[0] == "  batch 1, one step (rnc_step):"
    rows = [line.split()[-1] for line in plan if line.startswith("    ")]
    assert len(rows) == 3 + 4 and all(w.startswith("rnc_q8_") and w.endswith("_generic") for w in rows), plan


# -- quantize --------------------------------------------------------------------------------------


def test_quantize_equals_compile_q8_bitwise(files, tmp_path):
    d, model, X = files["dir"], files["model"], files["X"]
    out = tmp_path / "q.rnc"
    assert main(["quantize", str(d / "m32.rnc"), "-o", str(out), "--calibration", str(d / "X.npy")]) == 0
    assert out.read_bytes() == rc.compile(model, "q8", calibration=X).data
    r = cli("quantize", str(d / "m32.rnc"), "-o", str(tmp_path / "dyn.rnc"))
    assert r.returncode == 0, r.stderr
    assert "dynamic activation scales" in r.stdout
    assert (tmp_path / "dyn.rnc").read_bytes() == rc.compile(model, "q8").data
    lengths = np.array([9, 3, 1, 9, 5, 2])
    np.save(tmp_path / "L.npy", lengths)
    assert main(["quantize", str(d / "m32.rnc"), "-o", str(out), "--calibration", str(d / "X.npy"),
                 "--calibration-lengths", str(tmp_path / "L.npy")]) == 0
    assert out.read_bytes() == rc.compile(model, "q8", calibration=(X, lengths)).data


def test_quantize_errors_are_one_line_and_blame_the_right_file(files, tmp_path):
    d = files["dir"]
    e = one_line_error(cli("quantize", str(d / "m8.rnc"), "-o", str(tmp_path / "x.rnc")))
    assert e == f"rnncore quantize: {d / 'm8.rnc'}: already q8; quantize reads an f32 model"
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4), F32))
    e = one_line_error(cli("quantize", str(d / "m32.rnc"), "-o", str(tmp_path / "x.rnc"),
                           "--calibration", str(tmp_path / "bad.npy")))
    assert e == (f"rnncore quantize: --calibration {tmp_path / 'bad.npy'}: expected X of shape "
                 "(batch, T, 5) (input_size 5), got (2, 3, 4)")
    np.save(tmp_path / "badlen.npy", np.array([1, 2]))
    e = one_line_error(cli("quantize", str(d / "m32.rnc"), "-o", str(tmp_path / "x.rnc"),
                           "--calibration", str(d / "X.npy"), "--calibration-lengths",
                           str(tmp_path / "badlen.npy")))
    assert e.startswith(f"rnncore quantize: --calibration-lengths {tmp_path / 'badlen.npy'}: "
                        "expected 6 integers")
    (tmp_path / "notes.txt").write_text("hello")
    e = one_line_error(cli("quantize", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "x.rnc")))
    assert "notes.txt: not an .rnc file" in e and "rnncore convert" in e
    e = one_line_error(cli("quantize", str(d / "m32.rnc"), "-o", str(tmp_path / "no" / "dir" / "x.rnc")))
    assert "does not exist" in e
    e = one_line_error(cli("quantize", str(d / "m32.rnc"), "-o", "x.rnc", "--precision", "q2"), status=2)
    assert "argument --precision: invalid choice: 'q2'" in e


# -- bench -----------------------------------------------------------------------------------------

QUICK = ["--steps", "60", "--runs", "3", "--warmup-steps", "5", "--warmup-runs", "1", "--min-time", "0.01"]


def _check_stats(s: dict, n: int) -> None:
    assert s["n"] == n
    assert 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["min"] <= s["mean"] <= s["max"]


def test_bench_f32_model_with_npy_input(files, tmp_path):
    d, model, X = files["dir"], files["model"], files["X"]
    r = cli("bench", str(d / "m32.rnc"), "--input", str(d / "X.npy"), "--batch", "1,4", "--threads", "1,2",
            "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["precision"] == "f32" and res["seq_len"] == 9 and res["isa"] == rc.isa()["in_use"]
    assert [e["batch"] for e in res["step"]] == [1, 4] and [e["batch"] for e in res["run"]] == [1, 4]
    eng = rc.load(d / "m32.rnc")
    for e in res["step"]:
        _check_stats(e["us"], 60)
        assert e["c_loop_us"] > 0 and e["state_bytes"] == eng.state_bytes(e["batch"])
        assert e["steps_per_s"] == pytest.approx(e["batch"] / (e["us"]["mean"] * 1e-6))
    for e in res["run"]:
        _check_stats(e["us"], 3)
        assert e["sequences_per_s"] == pytest.approx(e["batch"] / (e["us"]["mean"] * 1e-6))
        assert e["steps_per_s"] == pytest.approx(9 * e["sequences_per_s"])
    assert [t["threads"] for t in res["threads"]] == [1, 2]
    for t in res["threads"]:
        _check_stats(t["us"], t["threads"] * res["thread_steps"])
        assert t["steps_per_s"] == pytest.approx(t["threads"] * res["thread_steps"] / (t["wall_ms"] / 1e3))
        assert t["c_loop_steps_per_s"] > 0
    assert res["threads"][0]["speedup"] == 1.0
    assert res["peak_rss_bytes"] >= res["rss_before_model_bytes"] > 0
    # the check, recomputed here: all 6 sequences of the file, q8 quantised with dynamic scales
    ck = res["check"]
    assert ck["inputs"] == [6, 9, 5]
    y32 = eng.run(X)
    q8_err = float(np.abs(rc.compile(model, "q8").run(X) - y32).max())
    assert ck["q8_vs_f32"]["max_abs_err"] == q8_err > 0
    assert ck["q8_vs_f32"]["other"] == "q8 quantised here, dynamic scales"
    ref = model.forward(X.astype(np.float64))
    ref = ref[0] if isinstance(ref, tuple) else ref
    f32_err = float(np.abs(y32 - ref).max())
    assert ck["vs_reference"]["max_abs_err"] == pytest.approx(f32_err, abs=1e-6) and f32_err < 1e-5
    # static scales from a calibration file change the q8 side exactly as rc.compile's do
    r = cli("bench", str(d / "m32.rnc"), "--input", str(d / "X.npy"), "--batch", "2", "--threads", "1",
            "--calibration", str(d / "X.npy"), "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    cal_err = float(np.abs(rc.compile(model, "q8", calibration=X).run(X) - y32).max())
    assert json.loads(r.stdout)["check"]["q8_vs_f32"]["max_abs_err"] == cal_err


def test_bench_q8_model_against_its_f32_file_and_text_output(files):
    d, X = files["dir"], files["X"]
    r = cli("bench", str(d / "m8.rnc"), "--input", str(d / "X.npy"), "--compare", str(d / "m32.rnc"),
            "--batch", "2", "--threads", "1", "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    ck = json.loads(r.stdout)["check"]
    y8, y32 = rc.load(d / "m8.rnc").run(X), rc.load(d / "m32.rnc").run(X)
    assert ck["q8_vs_f32"]["max_abs_err"] == float(np.abs(y8 - y32).max()) > 0
    assert ck["q8_vs_f32"]["max_abs_f32_output"] == float(np.abs(y32).max())
    assert ck["q8_vs_f32"]["argmax_agreement"] == float(np.mean(y8.argmax(1) == y32.argmax(1)))
    # against the NumPy q8 reference built here from the float model and its calibration
    from rnncore import quant as Q

    spec = Q.spec_from_model(files["model"])
    ref = Q.q8_forward(Q.quantize_model(spec, Q.calibrate(spec, X)), X)[0]
    assert ck["vs_reference"]["max_abs_err"] == pytest.approx(float(np.abs(y8 - ref).max()), abs=1e-7)
    assert ck["vs_reference"]["bit_exact"] == bool(np.array_equal(y8, ref))
    r = cli("bench", str(d / "m8.rnc"), "--batch", "1", "--threads", "1", "--seq-len", "5", *QUICK)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ("streaming step (stream.step(x, out=buf), each of 60 calls timed), microseconds:",
                 "whole sequences (engine.run, T=5, 3 runs), microseconds:", "N streams on N threads",
                 "peak RSS", "q8 vs f32 (f32 engine of the dequantised q8 weights): max abs error",
                 "input random N(0, 1), T=5, seed 0"):
        assert want in out, (want, out)


def test_bench_bidirectional_token_ids_and_one_sequence_input(files, tmp_path):
    d = files["dir"]
    r = cli("bench", str(d / "bi.rnc"), "--batch", "1,2", "--seq-len", "6", "--json", *QUICK)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["step"] == [] and res["threads"] == [] and len(res["run"]) == 2  # whole sequences only
    assert res["input"].startswith("random token ids < 20")
    assert res["check"]["inputs"] == [2, 6]
    np.save(tmp_path / "one.npy", files["X"][0])  # (T, F): one sequence
    r = cli("bench", str(d / "m32.rnc"), "--input", str(tmp_path / "one.npy"), "--batch", "3",
            "--threads", "1",
            "--json", "--no-check", *QUICK)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["check"] is None and res["input"].endswith("(1, 9, 5)") and res["run"][0]["batch"] == 3


def test_bench_errors_are_one_line(files, tmp_path):
    d = files["dir"]
    e = one_line_error(cli("bench", str(d / "m32.rnc"), "--isa", "bogus"))
    assert e.startswith("rnncore bench: --isa bogus: isa: expected one of")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 4), F32))
    e = one_line_error(cli("bench", str(d / "m32.rnc"), "--input", str(tmp_path / "wrong.npy")))
    assert e == (f"rnncore bench: --input {tmp_path / 'wrong.npy'}: expected shape (B, T, 5) or (T, 5) "
                 "(the model's input size is 5), got (2, 3, 4)")
    e = one_line_error(cli("bench", str(d / "m8.rnc"), "--compare", str(d / "bi.rnc"), *QUICK))
    assert "--compare" in e and "expected a f32 model" in e
    e = one_line_error(cli("bench", str(tmp_path / "missing.rnc")))
    assert e == f"rnncore bench: {tmp_path / 'missing.rnc'}: No such file or directory"
    (tmp_path / "notes.txt").write_text("hello")
    e = main_error(["info", tmp_path / "notes.txt"])
    assert e == (f"rnncore info: {tmp_path / 'notes.txt'}: invalid .rnc model: not an .rnc model "
                 "(bad magic): header: magic: 0x6c6c6568, expected 0x4d434e52 (RNCM) (rnc_status 2); "
                 "a PyTorch/Keras/ONNX model becomes an .rnc file with `rnncore convert`")
    (tmp_path / "cut.rnc").write_bytes((d / "m32.rnc").read_bytes()[:100])
    e = one_line_error(cli("info", str(tmp_path / "cut.rnc")))
    assert e.startswith(f"rnncore info: {tmp_path / 'cut.rnc'}: ")
    e = one_line_error(cli("bench", str(d / "m32.rnc"), "--batch", "0"), status=2)
    assert e.endswith("argument --batch: expected a positive integer, got 0")
    e = one_line_error(cli("bench", str(d / "m32.rnc"), "--threads", "two"), status=2)
    assert e.endswith("argument --threads: expected a positive integer, got 'two'")
    e = main_error(["bench", d / "m8.rnc", "--calibration", d / "X.npy", *QUICK])
    assert e.endswith("here " + str(d / "m8.rnc") + " is already q8")
    e = main_error(["bench", d / "m32.rnc", "--calibration", tmp_path / "wrong.npy", "--batch", "1",
                    "--threads", "1", *QUICK])
    assert e.startswith(f"rnncore bench: --calibration {tmp_path / 'wrong.npy'}: expected X of shape")
    e = one_line_error(cli("info", str(d / "m32.rnc"), "--batch", "1,99999999"), status=2)
    assert e.endswith("argument --batch: batch sizes are at most 16777216 (2**24), got 99999999")
    r = cli("--debug", "bench", str(tmp_path / "missing.rnc"))
    assert r.returncode == 1 and "Traceback" in r.stderr


# -- demo and convert: argument and user errors ----------------------------------------------------


def test_demo_bad_arguments_are_argparse_errors(tmp_path):
    e = one_line_error(cli("demo", "--lr", "-1", cwd=tmp_path), status=2)
    assert e == "rnncore demo: error: argument --lr: expected a positive finite number, got -1"
    e = one_line_error(cli("demo", "--seed", "-3", cwd=tmp_path), status=2)
    assert e.endswith("argument --seed: expected an integer >= 0, got -3")
    e = one_line_error(cli("demo", "--epochs", "x", cwd=tmp_path), status=2)
    assert "argument --epochs: invalid int value: 'x'" in e


def _net():
    """A PyTorch container: GRU -> last step -> Linear."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(4, 5, batch_first=True)
            self.fc = torch.nn.Linear(5, 3)

        def forward(self, x):
            return self.fc(self.gru(x)[0][:, -1])

    torch.manual_seed(0)
    return Net()


def test_convert_container_state_dict_and_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    net = _net()
    torch.save(net.state_dict(), tmp_path / "container.pt")
    torch.save({"epoch": 3, "model_state_dict": net.state_dict()}, tmp_path / "ckpt.pt")
    for e in (one_line_error(cli("convert", str(tmp_path / "container.pt"), "-o", str(tmp_path / "x.rnc"))),
              main_error(["convert", tmp_path / "ckpt.pt", "-o", tmp_path / "x.rnc"])):
        assert "state_dict of a container module (submodules 'gru', 'fc')" in e, e
        assert "rc.io.from_torch(module)" in e and "torch.onnx.export" in e
    # a checkpoint whose entry is one recurrent layer's state_dict converts
    torch.save({"epoch": 1, "state_dict": net.gru.state_dict()}, tmp_path / "gru_ckpt.pt")
    assert main(["convert", str(tmp_path / "gru_ckpt.pt"), "-o", str(tmp_path / "g.rnc")]) == 0
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(F32)
    with torch.no_grad():
        ref = net.gru(torch.as_tensor(x))[0].numpy()
    assert np.abs(rc.load(tmp_path / "g.rnc").run(x) - ref).max() < 1e-5


def test_convert_trust_pickle_missing_class_is_one_line(tmp_path):
    pytest.importorskip("torch")
    code = ("import torch\n"
            "class Net(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__(); self.gru = torch.nn.GRU(3, 4, batch_first=True)\n"
            "    def forward(self, x): return self.gru(x)[0]\n"
            f"torch.save(Net(), {str(tmp_path / 'whole.pt')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    e = one_line_error(cli("convert", str(tmp_path / "whole.pt"), "-o", str(tmp_path / "w.rnc"),
                           "--trust-pickle"))
    assert "class 'Net'" in e and "__main__" in e and "state_dict()" in e


def test_convert_calibration_errors_blame_the_calibration_file(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    torch.save(torch.nn.GRU(4, 5, batch_first=True).state_dict(), tmp_path / "sd.pt")
    np.save(tmp_path / "cal.npy", np.zeros((2, 3, 7), F32))
    e = one_line_error(cli("convert", str(tmp_path / "sd.pt"), "-o", str(tmp_path / "x.rnc"),
                           "--precision", "q8",
                           "--calibration", str(tmp_path / "cal.npy")))
    assert e == (f"rnncore convert: --calibration {tmp_path / 'cal.npy'}: expected X of shape (batch, T, 4) "
                 "(input_size 4), got (2, 3, 7)")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    e = main_error(["convert", tmp_path / "sd.pt", "-o", tmp_path / "x.rnc", "--precision", "q8",
                    "--calibration", tmp_path / "junk.npy"])
    assert e == (f"rnncore convert: --calibration {tmp_path / 'junk.npy'}: not a .npy file "
                 "(save the array with numpy.save)")


def test_convert_onnx_refusal_names_no_private_class(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3])])
    onnx.save(helper.make_model(g), tmp_path / "relu.onnx")
    e = main_error(["convert", tmp_path / "relu.onnx", "-o", tmp_path / "x.rnc"])
    assert e.startswith(f"rnncore convert: {tmp_path / 'relu.onnx'}: from_onnx: ")


def test_convert_strip_final_activation_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.GRU(6),
                              keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "soft.keras")
    x = np.random.default_rng(0).standard_normal((3, 7, 4)).astype(F32)
    probs = keras.ops.convert_to_numpy(model(x))
    # kept (the default, or asked for): the .rnc head applies the softmax, in f32 and in q8
    for precision, tol in (("f32", 1e-5), ("q8", 0.05)):
        for flag in ([], ["--keep-final-activation"]):
            out = tmp_path / f"k{precision}{len(flag)}.rnc"
            assert main(["convert", str(tmp_path / "soft.keras"), "-o", str(out), "--precision", precision,
                         *flag]) == 0
            np.testing.assert_allclose(rc.load(out).run(x), probs, atol=tol)
    assert main(["convert", str(tmp_path / "soft.keras"), "-o", str(tmp_path / "x.rnc"),
                 "--strip-final-activation"]) == 0
    logits = rc.load(tmp_path / "x.rnc").run(x)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, probs, atol=1e-5)
    assert not np.allclose(logits, probs, atol=1e-2)  # the stripped file outputs logits, not probabilities


def test_convert_final_activation_onnx(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    net = _net()
    x = np.random.default_rng(2).standard_normal((2, 6, 4)).astype(F32)
    for op, fn in (("sigmoid", torch.sigmoid), ("log_softmax", lambda v: torch.log_softmax(v, -1))):
        class Head(torch.nn.Module):
            def __init__(self, fn=fn):
                super().__init__()
                self.net, self.fn = net, fn

            def forward(self, v):
                return self.fn(self.net(v))

        src = tmp_path / f"{op}.onnx"
        torch.onnx.export(Head(), (torch.as_tensor(x),), str(src), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
        with torch.no_grad():
            want = Head()(torch.as_tensor(x)).numpy()
        out = tmp_path / f"{op}.rnc"
        if op == "sigmoid":
            for flag in ([], ["--keep-final-activation"]):   # kept by default, or asked for
                assert main(["convert", str(src), "-o", str(out), *flag]) == 0
                np.testing.assert_allclose(rc.load(out).run(x), want, atol=1e-5)
            assert main(["convert", str(src), "-o", str(out), "--strip-final-activation"]) == 0
            with torch.no_grad():
                np.testing.assert_allclose(rc.load(out).run(x), net(torch.as_tensor(x)).numpy(), atol=1e-5)
        else:  # the .rnc head computes the log-softmax too (activation 5)
            for flag in ([], ["--keep-final-activation"]):
                assert main(["convert", str(src), "-o", str(out), *flag]) == 0
                np.testing.assert_allclose(rc.load(out).run(x), want, atol=1e-5)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["convert", str(src), "-o", str(out), "--keep-final-activation", "--strip-final-activation"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_readme_command_line_block_runs(tmp_path):
    """Every command of the README's "Command line" block, run as written in a directory holding
    the files it names (a q8 and an f32 model, inputs, a PyTorch GRU's state_dict)."""
    import re
    import shlex

    import torch

    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"## Command line\n\n```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split(" #")[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c and not c.startswith("#")]
    assert len(commands) >= 7 and all(c.startswith("rnncore ") for c in commands), commands
    model = classifier(features=12)
    X = np.random.default_rng(0).standard_normal((32, 10, 12)).astype(F32)  # enough to calibrate on
    np.save(tmp_path / "X.npy", X)
    rc.compile(model, "q8", calibration=X).save(tmp_path / "model.rnc")
    rc.compile(model, "f32").save(tmp_path / "model_f32.rnc")
    torch.save(torch.nn.GRU(12, 8, batch_first=True).state_dict(), tmp_path / "gru.pt")
    for c in commands:
        r = cli(*shlex.split(c)[1:], cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.strip() and not r.stderr.strip(), (c, r.stdout, r.stderr)
    assert (tmp_path / "model_q8.rnc").read_bytes() == (tmp_path / "model.rnc").read_bytes()
    assert rc.load(tmp_path / "gru.rnc").precision == "q8" and (tmp_path / "model.c").exists()


def test_a_warning_is_one_line_named_like_errors(tmp_path):
    """Degenerate calibration data (4 sequences) warns: one stderr line, the command named."""
    model = classifier(features=12)
    rc.compile(model, "f32").save(tmp_path / "m.rnc")
    np.save(tmp_path / "X.npy", np.random.default_rng(0).standard_normal((4, 10, 12)).astype(F32))
    r = cli("quantize", "m.rnc", "-o", "q.rnc", "--calibration", "X.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("rnncore quantize: warning: calibrate: degenerate calibration data: only 4 ")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bench_engine_without_pytest_benchmark_says_how_to_install():
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:benchmark", "-p", "no:cacheprovider",
                        os.path.join(ROOT, "benchmarks", "bench_engine.py"), "-q"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 4, (r.stdout, r.stderr)  # pytest's usage error
    assert "needs pytest-benchmark" in r.stderr and "pip install -e '.[bench]'" in r.stderr
    assert "fixture 'benchmark' not found" not in r.stdout + r.stderr


def test_quantize_and_info_with_the_bounded_state_scale(files, tmp_path):
    d, model, X = files["dir"], files["model"], files["X"]
    out = tmp_path / "b.rnc"
    r = cli("quantize", str(d / "m32.rnc"), "-o", str(out), "--state-scale", "bounded")
    assert r.returncode == 0, r.stderr
    assert "dynamic activation scales, bounded state scales" in r.stdout
    assert out.read_bytes() == rc.compile(model, "q8", state_scale="bounded").data
    assert main(["quantize", str(d / "m32.rnc"), "-o", str(out), "--calibration", str(d / "X.npy"),
                 "--state-scale", "bounded"]) == 0
    assert out.read_bytes() == rc.compile(model, "q8", calibration=X, state_scale="bounded").data
    info = cli("info", str(out))
    assert info.returncode == 0, info.stderr
    assert "static input, bounded (1/127) state activation scales" in info.stdout
    assert "bounded (1/127) activation scales" in info.stdout         # the head's input
    e = one_line_error(cli("quantize", str(d / "m32.rnc"), "-o", str(out), "--state-scale", "fixed"),
                       status=2)
    assert "argument --state-scale: invalid choice: 'fixed'" in e


def test_the_bounded_state_scale_is_refused_for_a_relu_layer(tmp_path):
    src = tmp_path / "relu.rnc"
    rc.save(rc.nn.RNN(3, 4, nonlinearity="relu", seed=0), src)
    e = one_line_error(cli("quantize", str(src), "-o", str(tmp_path / "q.rnc"), "--state-scale", "bounded"))
    assert e.startswith("rnncore quantize: --state-scale bounded: layer 0 is a 'rnn_relu' layer, whose "
                        "state is unbounded")


def test_info_counts_cell_option_tensors_names_the_variant_cell_and_lists_per_step_records(tmp_path):
    """An LSTM with projection and peepholes runs through the variant cell: ``info`` counts its
    W_hr and peepholes (against PyTorch's / the model's own parameter count), names the options
    and the variant cell's product row instead of the plain cell row the plan never calls; the
    per-step records of a front-end model are listed with their parameters."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 16, proj_size=4, batch_first=True)
    p = tmp_path / "proj.rnc"
    rc.compile(rc.io.from_torch(lstm), "f32").save(p)
    info = json.loads(cli("info", str(p), "--json", "--batch", "1").stdout)
    assert info["parameters"] == sum(t.numel() for t in lstm.parameters()) == info["layers"][0]["parameters"]
    assert info["layers"][0]["options"] == ["proj"]
    step = info["batches"][0]["plan"]["step"]["cells"]
    assert step == [f"variant cell + {rc.load(p)._model.plan_row(-1, 'gemv', 1, precision='f32')}"]
    from rnncore.nn.extended import ExtendedRecurrent

    nn = rc.nn
    m = nn.Sequential(nn.FrameConv1d(1, 2, 2, frame_length=4, seed=0), nn.Magnitude(),
                      ExtendedRecurrent("LSTM", 3, 4, peepholes=True), nn.Tanh())
    p = tmp_path / "front.rnc"
    rc.compile(m, "f32").save(p)
    info = json.loads(cli("info", str(p), "--json", "--batch", "1").stdout)
    assert info["parameters"] == m.num_parameters()
    assert [(r["place"], r["kind"], r["parameters"]) for r in info["per_step"]] == [
        ("front", "frame_conv1d", m[0].num_parameters()), ("front", "magnitude", 0), ("post", "tanh", 0)]
    assert info["layers"][0]["options"] == ["peepholes"]
    out = cli("info", str(p)).stdout
    assert f"  front-end: frame_conv1d, {m[0].num_parameters()} parameters" in out, out
    assert "  per step: tanh, 0 parameters" in out, out
