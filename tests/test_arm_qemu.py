"""The C core cross-compiled for ARM and run under qemu-user (CPU models with and without the
dot-product extension): every kernel-table row against the generic one, the models written by the
NumPy references, hostile files and fuzzing (csrc/tests/test_main.c), on

* ``qemu-aarch64 -cpu cortex-a53`` (ARMv8.0: NEON, no dot product),
* ``qemu-aarch64 -cpu cortex-a76`` (ARMv8.2 with ``sdot``),
* ``qemu-arm -cpu cortex-a7`` (32-bit ARMv7-A hard-float with NEON),
* ``qemu-arm -cpu cortex-r5f`` (ARMv7 with VFP but no NEON: the generic fallback),

plus run-time dispatch (``getauxval``) and forcing with ``RNNCORE_ISA`` through ``rnncore-bench``;
and the aarch64 build made with clang (``clang --target=aarch64-linux-gnu``) on both aarch64 CPUs.
The toolchains are Debian packages installed by ``.ci/run`` (gcc-aarch64-linux-gnu,
gcc-arm-linux-gnueabihf, qemu-user): a machine without them fails here, it does not skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from child_env import child_env

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
TOOLS = ("aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "qemu-aarch64", "qemu-arm")
# (target, qemu, cpu, best ISA the dispatcher must pick, ISAs the CPU can run)
CPUS = [
    ("aarch64", "qemu-aarch64", "cortex-a53", "neon", {"generic", "neon"}),
    ("aarch64", "qemu-aarch64", "cortex-a76", "neondot", {"generic", "neon", "neondot"}),
    ("armhf", "qemu-arm", "cortex-a7", "neon", {"generic", "neon"}),
    # ARMv7 with VFPv3-D16 and no NEON (HWCAP_NEON absent): the same binary falls back to generic
    ("armhf", "qemu-arm", "cortex-r5f", "generic", {"generic"}),
]


def _require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"ARM toolchain/emulator missing: {missing} (apt-get install gcc-aarch64-linux-gnu "
                    "gcc-arm-linux-gnueabihf qemu-user; .ci/run does this)")


def _make(*targets: str) -> str:
    r = subprocess.run(["make", "-C", str(CSRC), "-j2", *targets], capture_output=True, text=True,
                       env=child_env())
    assert r.returncode == 0, f"make {' '.join(targets)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def cross_build() -> Path:
    """Static + shared libraries, rnncore-bench and the C tests for aarch64 and armhf
    (-Wall -Wextra -Werror), and the test vectors of the NumPy references."""
    _require_tools()
    _make("cross", "vectors")
    out = CSRC / "build" / "cross"
    for t in ("aarch64", "armhf"):
        for f in ("librnncore.a", "librnncore.so", "rnncore-bench", "tests/test_main", "tests/test_kernels",
                  "tests/test_sparse"):
            assert (out / t / f).is_file(), f"{t}/{f} not built"
    return out


def _qemu(qemu: str, cpu: str, args: list[str], env: dict | None = None, timeout: int = 600):
    return subprocess.run([qemu, "-cpu", cpu, *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(**(env or {})), cwd=CSRC)


def test_cross_libraries_are_arm(cross_build: Path) -> None:
    """The libraries are for the right machine (the shared one too)."""
    for t, machine in (("aarch64", "AArch64"), ("armhf", "ARM")):
        r = subprocess.run(["readelf", "-h", str(cross_build / t / "librnncore.so")], capture_output=True,
                           text=True, check=True)
        assert re.search(rf"Machine:\s+{machine}\b", r.stdout), r.stdout


@pytest.mark.parametrize("target,qemu,cpu,best,runs", CPUS, ids=[c[2] for c in CPUS])
def test_c_tests_under_qemu(cross_build: Path, target, qemu, cpu, best, runs) -> None:
    """csrc/tests/test_main.c on the emulated CPU: every ISA path the CPU has against the generic
    kernels (q8 accumulators and cells bit for bit, f32 within the bound) and every model of
    gen_vectors.py against the NumPy references, on every available path."""
    _check_c_tests(cross_build / target, qemu, cpu, best, runs)


@pytest.fixture(scope="module")
def clang_build(cross_build: Path) -> Path:
    """The aarch64 library, test_main and test_kernels built with clang (``clang
    --target=aarch64-linux-gnu``, -Wall -Wextra -Werror; csrc/toolchains/cross.mk aarch64-clang):
    the NEON files take clang's forms of their loops (epilogue_neon.h)."""
    if shutil.which("clang") is None:
        pytest.fail("clang missing (apt-get install clang; .ci/run does this)")
    out = cross_build / "aarch64-clang"
    _make(*(f"build/cross/aarch64-clang/{f}"
            for f in ("librnncore.a", "tests/test_main", "tests/test_kernels", "tests/test_sparse")))
    r = subprocess.run(["aarch64-linux-gnu-readelf", "-p", ".comment", str(out / "tests" / "test_kernels")],
                       capture_output=True, text=True)
    assert "clang version" in r.stdout, r.stdout + r.stderr  # made by clang, not the cross gcc
    return out


@pytest.mark.parametrize("target,qemu,cpu,best,runs", CPUS[:2], ids=[c[2] for c in CPUS[:2]])
def test_clang_c_tests_under_qemu(clang_build: Path, target, qemu, cpu, best, runs) -> None:
    """The same C tests of the aarch64 build made with clang: its NEON / sdot rows against the
    generic ones bit for bit, and the models against the NumPy references."""
    _check_c_tests(clang_build, qemu, cpu, best, runs)


def _check_c_tests(build: Path, qemu: str, cpu: str, best: str, runs: set) -> None:
    r = _qemu(qemu, cpu, [str(build / "tests" / "test_main"), "build/vectors", "--fuzz"])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert re.search(r"^\d+ checks, 0 failures$", r.stdout, re.M), r.stdout[-3000:]
    paths = dict(re.findall(r" (\w+)\[([^\]]+)\]", r.stdout.split("\n", 2)[1]))
    ran = {isa for isa, how in paths.items() if how == "run"}
    assert ran == runs, paths
    assert f"best path: {best}" in r.stdout
    assert "vectors: " in r.stdout and "models vs the NumPy references on every available ISA" in r.stdout
    # the kernel table's cell rows (csrc/tests/test_kernels.c): every row of the paths this CPU
    # has against its generic twin; rows of paths it lacks reported by name
    r = _qemu(qemu, cpu, [str(build / "tests" / "test_kernels")])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    got = re.search(r"^kernel-table cells: (\d+) passed, 0 failed$", r.stdout, re.M)
    assert got and (int(got.group(1)) > 0) == bool(runs - {"generic"}), r.stdout[-3000:]
    for isa, how in paths.items():  # built for a CPU that lacks it: its rows named as skipped
        if how == "compiled, CPU lacks it":
            assert re.search(rf"^skipped: rnc_q8_gru_step_{isa} ", r.stdout, re.M), r.stdout
    # the block-sparse rows, per-gate and gate-shared (csrc/tests/test_sparse.c): every row of the
    # paths this CPU has against the dense generic product and cells, bit for bit
    r = _qemu(qemu, cpu, [str(build / "tests" / "test_sparse")])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert re.search(r"^sparse kernels: [1-9]\d* passed, 0 failed$", r.stdout, re.M), r.stdout[-3000:]
    for isa, how in paths.items():
        if how == "absent":  # not built for this target (x86 paths): no rows
            continue
        ran = re.search(rf"^skipped: rnc_q8_gemm_spshared_{isa} ", r.stdout, re.M) is None
        assert ran == (how == "run"), (isa, how, r.stdout[-3000:])


@pytest.mark.parametrize("target,qemu,cpu,best,runs", CPUS, ids=[c[2] for c in CPUS])
def test_dispatch_and_forcing(cross_build: Path, target, qemu, cpu, best, runs) -> None:
    """rnncore-bench picks the dot-product path on the Cortex-A76 and NEON on the A53 / A7;
    RNNCORE_ISA forces a path the CPU has and refuses one it lacks (no crash)."""
    bench = str(cross_build / target / "rnncore-bench")
    args = [bench, "--cell", "gru", "--hidden", "40", "--input", "12", "--steps", "5", "--seq", "7",
            "--repeat", "2", "--json"]
    r = _qemu(qemu, cpu, args, env={"RNNCORE_ISA": ""})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["isa"] == best
    assert out["model"]["macs_per_step"] == 3 * 40 * (12 + 40)
    for isa in ("generic", "neon", "neondot"):
        r = _qemu(qemu, cpu, args, env={"RNNCORE_ISA": isa})
        if isa in runs:
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["isa"] == isa
        else:
            assert r.returncode == 1 and "rnc_model_init" in r.stderr, (r.returncode, r.stderr)
            assert "ISA" in r.stderr or "isa" in r.stderr


def test_bench_loads_a_model_file(cross_build: Path, tmp_path: Path) -> None:
    """rnncore-bench --model: a .rnc written by Python, run on the emulated Cortex-A53."""
    import numpy as np

    from rnncore.io.rnc import write_rnc

    rng = np.random.default_rng(5)
    h, i = 24, 9
    spec = {"precision": "q8", "input_size": i,
            "layers": [{"kind": "lstm", "weights": {"weight_ih": rng.normal(size=(4 * h, i)),
                                                    "weight_hh": rng.normal(size=(4 * h, h))}}],
            "head": {"weight": rng.normal(size=(3, h)), "bias": np.zeros(3), "activation": "none"}}
    data = write_rnc(spec)
    path = tmp_path / "m.rnc"
    path.write_bytes(data)
    bench = str(cross_build / "aarch64" / "rnncore-bench")
    r = _qemu("qemu-aarch64", "cortex-a53", [bench, "--model", str(path), "--steps", "3", "--seq", "4",
                                             "--repeat", "1", "--json"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"]["model_bytes"] == len(data)
    assert out["model"]["macs_per_step"] == 4 * h * (i + h) + 3 * h
    assert out["isa"] == "neon" and out["step"]["n"] == 3 and out["sequence"]["n"] == 1
    path.write_bytes(data[:-1])  # truncated: refused with a status, no crash
    r = _qemu("qemu-aarch64", "cortex-a53", [bench, "--model", str(path)])
    assert r.returncode == 1 and "rnc_model_init" in r.stderr
    r = _qemu("qemu-aarch64", "cortex-a53", [bench, "--model", str(tmp_path)])  # a directory
    assert r.returncode != 0 and "cannot read" in r.stderr and "Is a directory" in r.stderr


def test_aarch64_library_size(cross_build: Path) -> None:
    """Target: the aarch64 static library's code (its ``.text`` sections, as ``size -A`` lists
    them and docs/deploy-raspberry-pi.md reports) at -Os is at most 64 KiB for the dense deploy
    build (``-DRNC_NO_SPARSE -DRNC_NO_Q4``: every dense f32/q8 path, cell option, layer norm and
    per-step record; the optional block-sparse and q4 kernel groups left out). The full library's
    figure is printed beside it (docs/deploy-raspberry-pi.md). (``size``'s default "text" column
    adds ``.rodata`` and the ``.eh_frame`` unwind tables, which are not code.)"""
    _make("cross-size")

    def text_of(build: str) -> int:
        lib = CSRC / "build" / "cross" / build / "librnncore.a"
        r = subprocess.run(["aarch64-linux-gnu-size", "-A", str(lib)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        sizes = [int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", r.stdout, re.M)]
        assert len(sizes) >= 10, r.stdout[-2000:]   # one .text per object of the library
        return sum(sizes)

    full, dense = text_of("aarch64-Os"), text_of("aarch64-Os-dense")
    print(f"aarch64 -Os .text: full {full} bytes, dense (no sparse, no q4) {dense} bytes")
    assert dense < full                   # the groups are really left out
    assert 0 < dense <= 64 * 1024, f"aarch64 -Os dense .text = {dense} bytes"
