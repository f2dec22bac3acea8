"""Build and run the C core's own tests (csrc/tests), natively and under ASan/UBSan.

They check every kernel of every ISA this CPU runs against the generic one (exact int32 q8
accumulators), the activation error bound, models written by ``rnncore.io.rnc`` against the NumPy
references, and hostile/fuzzed model files (see csrc/tests/test_main.c).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from child_env import child_env

CSRC = Path(__file__).resolve().parents[1] / "csrc"


def _make(target: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is required to test the C core"
    proc = subprocess.run(
        ["make", "-C", str(CSRC), target, f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=child_env(),
    )
    out = proc.stdout + proc.stderr
    print(out[-4000:])
    assert proc.returncode == 0, out[-6000:]
    return out


@pytest.mark.parametrize("target", ["test", "test-sanitize"])
def test_c_core(target):
    out = _make(target)
    assert ", 0 failures" in out
    assert "ISA paths:" in out


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA groups")
def test_c_core_builds_without_optional_isa_groups(tmp_path):
    """A compiler that rejects -mavxvnni and -mamx-* (GCC < 11, clang < 12) still builds the C core:
    csrc/Makefile leaves those groups out (sources.mk OPTIONAL_GROUPS, -DRNC_NO_<GROUP>), the kernel
    table has no rows for them, and every other path passes the full C test suite."""
    cc = shutil.which("cc") or shutil.which("gcc")
    wrapper = tmp_path / "oldcc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -mavxvnni|-mamx-tile|-mamx-int8) '
        "echo \"oldcc: unrecognized option '$a'\" >&2; exit 1;; esac; done\n"
        f'exec {cc} "$@"\n')
    wrapper.chmod(0o755)
    proc = subprocess.run(
        ["make", "-C", str(CSRC), "test", f"PYTHON={sys.executable}", f"CC={wrapper}",
         f"BUILD={tmp_path / 'build'}"],
        capture_output=True, text=True, timeout=900, env=child_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # Not built either way; whether this CPU has the feature decides which of the two words print.
    for isa in ("avxvnni", "amx"):
        assert re.search(rf"\b{isa}\[(absent|CPU has it, not built)\]", out), out[-3000:]
    assert "avx512vnni[run]" in out or "avx2[run]" in out or "generic[run]" in out
    assert "AMX and/or AVX-VNNI left out" in out and ", 0 failures" in out


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA groups")
def test_c_core_leaves_out_groups_whose_flags_enable_nothing(tmp_path):
    """A compiler that accepts -mavxvnni / -mamx-* but does not announce the features with them (as
    clang 14 spelled AMX's macros __AMXTILE__ / __AMXINT8__, which the AMX files did not test) must
    not give a kernel table listing kernels whose files compiled to nothing (an undefined
    rnc_q8_gemm_amx at link time): the probe (src/kernels/isa_target.h) leaves those groups out."""
    cc = shutil.which("cc") or shutil.which("gcc")
    wrapper = tmp_path / "quietcc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do shift; case "$a" in -mavxvnni|-mamx-tile|-mamx-int8) ;; '
        '*) set -- "$@" "$a";; esac; done\n'
        f'exec {cc} "$@"\n')
    wrapper.chmod(0o755)
    build = tmp_path / "build"
    proc = subprocess.run(
        ["make", "-C", str(CSRC), f"CC={wrapper}", f"BUILD={build}", f"{build}/test_kernels"],
        capture_output=True, text=True, timeout=900, env=child_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "-DRNC_NO_X86_AVXVNNI" in out and "-DRNC_NO_X86_AMX" in out, out[-3000:]
    run = subprocess.run([str(build / "test_kernels")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and ", 0 failed" in run.stdout + run.stderr, run.stdout[-3000:]
    assert "avxvnni" not in run.stdout and "amx" not in run.stdout


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA groups")
@pytest.mark.parametrize("cc", ["cc", "clang"])
@pytest.mark.parametrize("src, group, symbol", [
    ("q8_gemm_amx.c", "X86_AMX", "rnc_q8_gemm_amx"), ("cells_amx.c", "X86_AMX", "rnc_q8_lstm_step_amx"),
    ("q8_gemm_avxvnni.c", "X86_AVXVNNI", "rnc_q8_gemm_avxvnni"),
    ("cells_avxvnni.c", "X86_AVXVNNI", "rnc_q8_gru_step_avxvnni")])
def test_group_file_without_its_features_is_an_error(cc, src, group, symbol, tmp_path):
    """A group's file compiled for the library without its features stops the build (#error)
    instead of compiling to nothing; with -DRNC_NO_<GROUP> (the group left out) it compiles; with
    the group's flags (sources.mk) it defines its kernels, whichever compiler (GCC and clang spell
    the AMX macros differently)."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    mk = (CSRC / "sources.mk").read_text()
    flags = re.search(rf"^{group}_FLAGS = (.*)$", mk, re.M).group(1).split()
    obj = tmp_path / "k.o"
    base = [cc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-Iinclude", "-c", f"src/kernels/{src}",
            "-o", str(obj)]
    bare = subprocess.run(base, cwd=CSRC, capture_output=True, text=True)
    assert bare.returncode != 0 and f"{src} needs" in bare.stderr, bare.stderr[-2000:]
    left_out = subprocess.run(base + [f"-DRNC_NO_{group}"], cwd=CSRC, capture_output=True, text=True)
    assert left_out.returncode == 0, left_out.stderr[-2000:]
    ok = subprocess.run(base + flags, cwd=CSRC, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    syms = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True, text=True).stdout
    assert re.search(rf" T {symbol}$", syms, re.M), syms[-2000:]


def test_build_without_sparse_and_q4_refuses_their_files(tmp_path):
    """-DRNC_NO_SPARSE -DRNC_NO_Q4 -DRNC_NO_INT -DRNC_NO_FFT -DRNC_NO_TIMEPAD -DRNC_NO_POST_CONV
    -DRNC_NO_MEAN -DRNC_NO_ATTN -DRNC_NO_PW_EXT -DRNC_NO_CHUNK -DRNC_NO_EMB_FRONT (the dense deploy build
    that docs/deploy-raspberry-pi.md sizes; RNC_NO_PW_EXT: the pointwise kinds from 8, hardtanh ..
    softsign; RNC_NO_EMB_FRONT: front-end records after an embedding): the
    kernel table has no block-sparse, q4 or FFT rows, the loader has no fully-integer checks, padding
    over time, frame_conv after the recurrent layers (a per-step Linear there) nor mean, max or
    attention pooling, and it refuses such files with one line naming
    what the build leaves out (not a plan without kernels); dense files still run, a
    log-mel model too (its spectrum by the tables' product, equal to the NumPy float64 model within
    the log-mel tests' tolerance)."""
    import rnncore as rc

    build = tmp_path / "build"
    proc = subprocess.run(
        ["make", "-C", str(CSRC), "bench", "lib", f"BUILD={build}",
         "EXTRA_CFLAGS=-DRNC_NO_SPARSE -DRNC_NO_Q4 -DRNC_NO_INT -DRNC_NO_FFT -DRNC_NO_TIMEPAD "
         "-DRNC_NO_POST_CONV -DRNC_NO_MEAN -DRNC_NO_ATTN -DRNC_NO_PW_EXT -DRNC_NO_CHUNK -DRNC_NO_EMB_FRONT"],
        capture_output=True, text=True, timeout=900, env=child_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    bench = build / "rnncore-bench"
    gru = rc.nn.GRU(32, 32)
    rc.nn.BlockPruning(gru, density=0.25, start_epoch=0, end_epoch=1).update(gru, None, epoch=2.0)
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    mel = rc.nn.LogMelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=20, center=False)
    logmel = rc.nn.Sequential(mel, rc.nn.GRU(20, 8), rc.nn.Linear(8, 1))
    padded = rc.nn.Sequential(rc.nn.Conv1d(4, 6, 3, padding=1, seed=0), rc.nn.GRU(6, 5, seed=1))
    files = {"dense": rc.compile(gru, "q8").data, "q4": rc.compile(gru, "q4").data,
             "logmel": rc.compile(logmel).data,
             "sparse": rc.compile(gru, "q8", sparse=True).data,
             "timepad": rc.compile(padded).data, "timepad_q8": rc.compile(padded, "q8").data,
             "front_linear": rc.compile(rc.nn.Sequential(rc.nn.Linear(3, 4), rc.nn.GRU(4, 4))).data,
             "post_linear": rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.Linear(4, 6), rc.nn.ReLU(),
                                                        rc.nn.Linear(6, 2))).data,
             "mean": rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.MaskedMean(),
                                                 rc.nn.Linear(4, 2))).data,
             "max": rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.MaskedMax(),
                                                rc.nn.Linear(4, 2))).data,
             "attn": rc.compile(rc.nn.Sequential(rc.nn.GRU(3, 4), rc.nn.AttentionPool(4, 3),
                                                 rc.nn.Linear(4, 2))).data,
             "relu": rc.compile(rc.nn.Sequential(rc.nn.Linear(3, 4), rc.nn.ReLU(), rc.nn.GRU(4, 4))).data,
             "hardtanh": rc.compile(rc.nn.Sequential(rc.nn.Linear(3, 4), rc.nn.ReLU6(),
                                                     rc.nn.GRU(4, 4))).data,
             "instance_norm": rc.compile(rc.nn.Sequential(rc.nn.InstanceNorm1d(3), rc.nn.GRU(3, 4))).data,
             "emb_front": rc.compile(rc.nn.Sequential(rc.nn.Embedding(9, 3), rc.nn.Conv1d(3, 4, 2),
                                                      rc.nn.GRU(4, 4))).data,
             "int": write_int_rnc(qi.quantize_int_model(rc.nn.Sequential(rc.nn.GRU(3, 4, seed=0)),
                                                        qi.IntCalibration([(-2.0, 2.0)], [(-0.9, 0.95)],
                                                                          [3.0], [4.0])))}
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.rnc"
        path.write_bytes(data)
        r = subprocess.run([str(bench), "--model", str(path), "--steps", "10", "--repeat", "1"],
                           capture_output=True, text=True, timeout=120, env=child_env())
        out[name] = (r.returncode, r.stdout + r.stderr)
    assert out["dense"][0] == 0, out["dense"][1][-2000:]
    assert out["logmel"][0] == 0, out["logmel"][1][-2000:]
    assert out["front_linear"][0] == 0, out["front_linear"][1][-2000:]
    assert out["post_linear"][0] != 0 and "kind 5 (frame_conv) cannot come after a recurrent record" in \
        out["post_linear"][1], out["post_linear"][1][-2000:]
    assert out["mean"][0] != 0 and "flags: 0x2 has unknown bits (known: 0x1)" in out["mean"][1], \
        out["mean"][1][-2000:]
    assert out["max"][0] != 0 and "flags: 0x8 has unknown bits (known: 0x1)" in out["max"][1], \
        out["max"][1][-2000:]
    assert out["attn"][0] != 0 and "record 1 (last_step): size: 48, expected 16" in out["attn"][1], \
        out["attn"][1][-2000:]
    assert out["relu"][0] == 0, out["relu"][1][-2000:]
    assert out["hardtanh"][0] != 0 and "activation: 8: a kind from 8 (hardtanh, silu, hardswish, " \
        "softplus, softsign: RNC_NO_PW_EXT; log_affine: RNC_NO_CHUNK), which this build of the C core " \
        "leaves out" in \
        out["hardtanh"][1], out["hardtanh"][1][-2000:]
    # RNC_NO_CHUNK: no instance_norm record (a whole-sequence normalisation, PyanNet's)
    assert out["instance_norm"][0] != 0 and "record 0: kind: kind 16 (unknown) cannot come first" in \
        out["instance_norm"][1], out["instance_norm"][1][-2000:]
    # RNC_NO_EMB_FRONT: no front-end record after an embedding (Keras's imdb_cnn_lstm)
    assert out["emb_front"][0] != 0 and "record 1: kind: kind 10 (conv_time) cannot come after an embedding" \
        in out["emb_front"][1], out["emb_front"][1][-2000:]
    from export_c_run import exported_outputs

    x = np.random.default_rng(3).standard_normal((1, 14, 160))   # 14 hops of 160 samples: 12 frames of 400
    frames = mel.frames(x)[0].astype(np.float32)
    got = exported_outputs(tmp_path, files["logmel"], frames, "logmel_nofft", lib=build / "librnncore.a")
    want = logmel.forward(x)[0]
    for mode in ("step", "run"):
        np.testing.assert_allclose(got[mode], want, rtol=0, atol=2e-6, err_msg=mode)
    assert out["q4"][0] != 0 and "precision: 2: q4 weights (built with RNC_NO_Q4), which this build " \
        "of the C core leaves out" in out["q4"][1], out["q4"][1][-2000:]
    assert out["sparse"][0] != 0 and "block-sparse weights (built with RNC_NO_SPARSE), which this " \
        "build of the C core leaves out" in out["sparse"][1], out["sparse"][1][-2000:]
    for name in ("timepad", "timepad_q8"):
        assert out[name][0] != 0 and "timepad.right: 1: padding over time (built with RNC_NO_TIMEPAD), " \
            "which this build of the C core leaves out" in out[name][1], out[name][1][-2000:]
    assert out["int"][0] != 0 and "precision: 3: fully-integer models (built with RNC_NO_INT), which " \
        "this build of the C core leaves out" in out["int"][1], out["int"][1][-2000:]
