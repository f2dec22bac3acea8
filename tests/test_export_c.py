"""``rnncore export-c``: the model as a const C array plus an example program, cross-built for
aarch64, run under qemu (with and without the dot-product extension), and compared with the
Python engine (the Cython binding of the same C core on this x86 host); one model with
block-sparse q8 weights (the neon sparse rows on the A53, the sdot ones on the A76), and one with
gate-shared block-sparse weights on every ARM path, compared with the NumPy q8 spec.

q8 outputs must be identical bit for bit: the int32 accumulators are exact on every ISA and the
float32 epilogue is the same IEEE operations everywhere (no FP contraction). f32 outputs agree to
float rounding (the products are summed in different orders on NEON and AVX).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from child_env import child_env

import rnncore as rc
from rnncore.io.export_c import export_c
from rnncore.io.rnc import write_rnc

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
TOOLS = ("aarch64-linux-gnu-gcc", "qemu-aarch64")


@pytest.fixture(scope="module")
def aarch64_lib() -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing} (apt-get install gcc-aarch64-linux-gnu qemu-user; .ci/run does this)")
    r = subprocess.run(["make", "-C", str(CSRC), "-j2", "cross-aarch64"], capture_output=True, text=True,
                       env=child_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return CSRC / "build" / "cross" / "aarch64" / "librnncore.a"


def _weights(rng, g: int, h: int, i: int, suffix: str = "") -> dict:
    return {f"weight_ih{suffix}": rng.uniform(-0.5, 0.5, (g * h, i)),
            f"weight_hh{suffix}": rng.uniform(-0.5, 0.5, (g * h, h)),
            f"bias_ih{suffix}": rng.uniform(-0.2, 0.2, g * h),
            f"bias_hh{suffix}": rng.uniform(-0.2, 0.2, g * h)}


def _models():
    rng = np.random.default_rng(7)
    gru = {"precision": "q8", "input_size": 7,
           "layers": [{"kind": "gru", "weights": _weights(rng, 3, 19, 7)},
                      {"kind": "gru", "reset_after": False, "weights": _weights(rng, 3, 21, 19)}],
           "head": {"weight": rng.uniform(-0.5, 0.5, (5, 21)), "bias": rng.uniform(-0.1, 0.1, 5),
                    "activation": "none"}}
    lstm = {"precision": "f32", "input_size": 6,
            "layers": [{"kind": "lstm", "weights": _weights(rng, 4, 33, 6)}],
            "head": {"weight": rng.uniform(-0.5, 0.5, (3, 33)), "bias": rng.uniform(-0.1, 0.1, 3),
                     "activation": "tanh"}}
    bi = {"precision": "q8", "input_size": 5,
          "layers": [{"kind": "lstm", "bidirectional": True,
                      "weights": {**_weights(rng, 4, 17, 5), **_weights(rng, 4, 17, 5, "_reverse")}}]}
    sparse = {"precision": "q8", "input_size": 9, "sparse": {"max_density": 0.9, "block_rows": 16},
              "layers": [{"kind": "lstm", "weights": _pruned(rng, _weights(rng, 4, 33, 9), 4, 33)},
                         {"kind": "gru", "weights": _pruned(rng, _weights(rng, 3, 20, 33), 3, 20)}],
              "head": {"weight": rng.uniform(-0.5, 0.5, (4, 20)), "bias": rng.uniform(-0.1, 0.1, 4),
                       "activation": "none"}}
    q4 = {"precision": "q4", "input_size": 11,  # int4 weights (both GRU forms), a q8 head
          "layers": [{"kind": "gru", "weights": _weights(rng, 3, 37, 11)},
                     {"kind": "gru", "reset_after": False, "weights": _weights(rng, 3, 18, 37)}],
          "head": {"weight": rng.uniform(-0.5, 0.5, (4, 18)), "bias": rng.uniform(-0.1, 0.1, 4),
                   "activation": "none"}}
    return {"gru_q8": gru, "lstm_f32": lstm, "bilstm_q8": bi, "sparse_q8": sparse, "gru_q4": q4}


def _pruned(rng, w: dict, g: int, h: int) -> dict:
    """The weight matrices with about 60 % of their 16 x 4 blocks (in the writer's gate-padded
    layout) zeroed: stored block-sparse by the writer, run by the sparse kernels."""
    out = dict(w)
    for key, v in w.items():
        if not key.startswith("weight"):
            continue
        k = v.shape[1]
        hp, kp = -(-h // 16) * 16, -(-k // 4) * 4
        keep = np.repeat(np.repeat(rng.random((g, hp // 16, kp // 4)) < 0.4, 16, axis=1), 4, axis=2)
        out[key] = (v.reshape(g, h, k) * keep[:, :h, :k]).reshape(g * h, k)
    return out


@pytest.mark.parametrize("name", ["gru_q8", "lstm_f32", "bilstm_q8", "sparse_q8", "gru_q4"])
def test_export_c_runs_on_aarch64(aarch64_lib: Path, tmp_path: Path, name: str) -> None:
    spec = _models()[name]
    data = write_rnc(spec)
    model = tmp_path / f"{name}.rnc"
    model.write_bytes(data)
    src = tmp_path / f"{name}.c"
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(model), "-o", str(src)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    text = src.read_text()
    assert f"{name}_data" in text and f"#define {name.upper()}_SIZE {len(data)}u" in text
    exe = tmp_path / name
    r = subprocess.run(["aarch64-linux-gnu-gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{CSRC / 'include'}", str(src), str(aarch64_lib), "-static", "-lm",
                        "-o", str(exe)],
                       capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr

    rng = np.random.default_rng(1)
    steps = 23
    x = rng.uniform(-2, 2, (steps, spec["input_size"])).astype(np.float32)
    inp = tmp_path / "x.f32"
    x.astype("<f4").tofile(inp)

    eng = rc.load(data)
    if spec["precision"] == "q4":  # the q4 cells run on aarch64 (neondot on the A76, neon on the A53)
        assert eng._model.plan_row(0, "gru_step", 1, "x").startswith("rnc_q4_gru_step")
    if "sparse" in spec:  # every layer's weights stored block-sparse (layer flags 4 | 8)
        assert all(eng._model.plan_row(li, op, 1, "x").startswith(f"rnc_q8_{op}")
                   for li, op in ((0, "lstm_step_sparse"), (1, "gru_step_sparse")))
    want = eng.run(x[None])[0]
    assert np.abs(want).max() > 0.05 and np.isfinite(want).all()
    modes = [["--run"]] if eng.bidirectional else [[], ["--run"]]
    for cpu in ("cortex-a53", "cortex-a76"):
        for mode in modes:
            r = subprocess.run(["qemu-aarch64", "-cpu", cpu, str(exe), *mode, str(inp)], capture_output=True,
                               text=True, timeout=300, env=child_env())
            assert r.returncode == 0, r.stderr
            got = np.array([[float(v) for v in line.split()] for line in r.stdout.splitlines()], np.float32)
            assert got.shape == want.shape, (got.shape, want.shape)
            if spec["precision"] != "f32":  # q8, q4: the x86 engine's bits
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {cpu} {mode}")
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6, err_msg=f"{name} {cpu} {mode}")


def _shared_pruned(rng, w: dict, g: int, h: int) -> dict:
    """The weight matrices with one random mask of 16 x 4 blocks (in the writer's gate-padded
    layout) zeroed in every gate alike (about 55 % of the blocks): stored gate-shared."""
    out = dict(w)
    for key, v in w.items():
        if not key.startswith("weight"):
            continue
        k = v.shape[1]
        hp, kp = -(-h // 16) * 16, -(-k // 4) * 4
        keep = rng.random((1, hp // 16, kp // 4)) < 0.45
        keep.flat[0] = False
        keep = np.repeat(np.repeat(keep, 16, axis=1), 4, axis=2)
        out[key] = (v.reshape(g, h, k) * keep[:, :h, :k]).reshape(g * h, k)
    return out


def test_gate_shared_model_on_aarch64_matches_the_numpy_spec(aarch64_lib: Path, tmp_path: Path) -> None:
    """A GRU -> LSTM model with gate-shared block-sparse weights (layer flags 32 | 64), exported,
    run under qemu on the A53 (neon, generic) and the A76 (neondot, neon, generic) with
    RNNCORE_ISA forcing each path, step by step and as one rnc_run: the NumPy q8 spec's outputs
    (csrc/tests/gen_vectors.py's q8_reference_forward), bit for bit."""
    sys.path.insert(0, str(CSRC / "tests"))
    import gen_vectors

    from rnncore.io.rnc import read_rnc
    from rnncore.quant.reference import qmodel_from_rnc

    rng = np.random.default_rng(17)
    spec = {"precision": "q8", "input_size": 10,
            "sparse": {"max_density": 0.9, "block_rows": 16, "shared_gates": True},
            "layers": [{"kind": "gru", "weights": _shared_pruned(rng, _weights(rng, 3, 35, 10), 3, 35)},
                       {"kind": "lstm", "weights": _shared_pruned(rng, _weights(rng, 4, 40, 35), 4, 40)}]}
    data = write_rnc(spec)
    eng = rc.load(data)
    for li, op in ((0, "gru_step_shared"), (1, "lstm_step_shared")):
        assert eng._model.plan_row(li, op, 1, "x").startswith(f"rnc_q8_{op[:-7]}_spshared_"), (li, op)
    x = rng.uniform(-2, 2, (19, spec["input_size"])).astype(np.float32)
    want = gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(data)), x[None], None)[0][0]
    assert np.abs(want).max() > 0.05 and np.array_equal(eng.run(x[None])[0], want)
    model, src, exe, inp = (tmp_path / n for n in ("shared.rnc", "shared.c", "shared", "x.f32"))
    model.write_bytes(data)
    x.astype("<f4").tofile(inp)
    r = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(model), "-o", str(src)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["aarch64-linux-gnu-gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        f"-I{CSRC / 'include'}", str(src), str(aarch64_lib), "-static", "-lm",
                        "-o", str(exe)], capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    for cpu, isas in (("cortex-a53", ("neon", "generic")), ("cortex-a76", ("neondot", "neon", "generic"))):
        for isa in isas:
            for mode in ([], ["--run"]):
                r = subprocess.run(["qemu-aarch64", "-cpu", cpu, str(exe), *mode, str(inp)],
                                   capture_output=True, text=True, timeout=300,
                                   env=child_env(RNNCORE_ISA=isa))
                assert r.returncode == 0, r.stderr
                got = np.array([[float(v) for v in ln.split()] for ln in r.stdout.splitlines()], np.float32)
                np.testing.assert_array_equal(got, want, err_msg=f"{cpu} {isa} {mode}")


def test_export_c_rejects_non_rnc(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="magic"):
        export_c(b"not a model", tmp_path / "x.c")


def test_export_c_identifier(tmp_path: Path) -> None:
    data = write_rnc(_models()["gru_q8"])
    text = export_c(data, tmp_path / "9-model.c")
    assert "model_9_model_data" in text
    # the array holds exactly the file's bytes
    body = text[text.index("= {{") + 4:text.index("}};")]
    got = bytes(int(v, 16) for v in body.replace(",", " ").split())
    assert got == data
