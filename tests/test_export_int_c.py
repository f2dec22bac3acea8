"""``export-c --target cortex-m``: the generated C model (const arrays + static arena) computes the
NumPy integer spec bit for bit (host compiler), and compiles freestanding for a Cortex-M4 with
the weights in .rodata and only the arena in .bss."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rnncore.io.export_int_c import export_int_c
from rnncore.quant import integer as qi
from rnncore.spec import LinearSpec, ModelSpec, layers_from_state_dict

ROOT = Path(__file__).resolve().parents[1]
INT = ROOT / "csrc" / "src" / "int"
CC = shutil.which("cc") or shutil.which("gcc")
ARM = shutil.which("arm-none-eabi-gcc")

DRIVER = r"""
#include <stdio.h>
#include "m.h"
#if M_INPUT_BITS == 16
typedef int16_t m_in_t;
#else
typedef int8_t m_in_t;
#endif
int main(void) {
    m_in_t x[M_INPUT_SIZE] = {0};
    int steps;
    if (scanf("%d", &steps) != 1) return 2;
    if (m_step(x) != -1) return 6; /* before the reset: RNC_INT_E_ARG, nothing run */
    if (m_reset()) return 5;
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < M_INPUT_SIZE; i++) {
            int v;
            if (scanf("%d", &v) != 1) return 2;
            x[i] = (m_in_t)v;
        }
        if (m_step(x)) return 3;
        const int8_t *h = m_output();
        for (int k = 0; k < M_HIDDEN_SIZE; k++) printf("%d ", h[k]);
#ifdef M_NUM_LOGITS
        int32_t y[M_NUM_LOGITS];
        if (m_head(y)) return 4;
        for (int k = 0; k < M_NUM_LOGITS; k++) printf("%ld ", (long)y[k]);
#endif
        printf("\n");
    }
    return 0;
}
"""


def _inputs(qm, rng, steps: int) -> np.ndarray:
    """Full-range integer inputs of the model's input type (int8, or int16 with -32768)."""
    n_in = qm.layers[0].input_size
    if qm.input_dtype == "int16":
        return rng.integers(-32768, 32768, (steps, n_in)).astype(np.int16)
    return rng.integers(-128, 128, (steps, n_in)).astype(np.int8)


def _model(kind: str, layers: int, head: bool, seed: int = 0, input_dtype: str = "int8"):
    torch.manual_seed(seed)
    cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}.get(kind, torch.nn.RNN)
    kw = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    m = cls(6, 20, num_layers=layers, batch_first=True, **kw).double()
    spec = ModelSpec(layers_from_state_dict(kind, m.state_dict(), layers, False))
    if head:
        spec.last_step = True
        spec.head = LinearSpec(np.random.default_rng(seed).standard_normal((5, 20)), np.full(5, 0.1))
    rng = np.random.default_rng(seed + 1)
    return qi.quantize_int_model(spec, qi.calibrate_int(spec, rng.standard_normal((32, 20, 6)),
                                                        input_dtype=input_dtype))


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("kind,layers,head,input_dtype", [
    ("gru", 2, True, "int8"), ("lstm", 1, True, "int8"), ("rnn_relu", 2, False, "int8"),
    ("gru", 2, True, "int16"), ("lstm", 1, False, "int16")])
def test_exported_model_is_bit_exact_to_the_spec(tmp_path, kind, layers, head, input_dtype):
    qm = _model(kind, layers, head, input_dtype=input_dtype)
    budget = export_int_c(qm, tmp_path / "m.c")
    assert budget["arena_bytes"] == budget["state_bytes"] + budget["scratch_bytes"]
    (tmp_path / "main.c").write_text(DRIVER)
    exe = tmp_path / "m"
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{INT}", f"-I{tmp_path}",
                    str(tmp_path / "main.c"), str(tmp_path / "m.c"), str(INT / "int_cells.c"),
                    str(INT / "s8_matvec_generic.c"), "-o", str(exe)], check=True)
    x8 = _inputs(qm, np.random.default_rng(5), 15)
    if input_dtype == "int16":
        assert "#define M_INPUT_BITS 16" in (tmp_path / "m.h").read_text()
        assert "int m_step(const int16_t *x);" in (tmp_path / "m.h").read_text()
    stdin = f"{len(x8)}\n" + "\n".join(" ".join(map(str, row)) for row in x8)
    run = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = np.array([[int(v) for v in line.split()] for line in run.stdout.splitlines()])
    h = x8[None]
    for cell in qm.layers:
        h, _ = qi.int_cell_sequence(cell, h)
    want = h[0].astype(np.int64)
    if head:
        want = np.concatenate([want, qi.int_linear(qm.head, h[0])], axis=1)
    assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.skipif(ARM is None, reason="arm-none-eabi-gcc not installed")
def test_exported_model_compiles_for_cortex_m4_with_weights_in_rodata(tmp_path):
    qm = _model("gru", 1, True)
    budget = export_int_c(qm, tmp_path / "kws.c")
    obj = tmp_path / "kws.o"
    subprocess.run([ARM, "-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-ffreestanding", "-Wall",
                    "-Wextra", "-Werror", f"-I{INT}", "-c", str(tmp_path / "kws.c"), "-o", str(obj)],
                   check=True)
    size = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True)
    sections = {p[0]: int(p[1]) for p in (line.split() for line in size.stdout.splitlines()) if len(p) >= 2
                and p[1].isdigit()}
    assert sections[".bss"] == budget["ram_bytes"] == budget["arena_bytes"] + 4
    assert sections.get(".data", 0) == 0
    assert sections[".rodata"] >= budget["flash_bytes"]


def test_cli_export_c_target_cortex_m(tmp_path):
    import sys

    from rnncore.spec import build_rnc
    torch.manual_seed(3)
    m = torch.nn.GRU(6, 12, batch_first=True)
    spec = ModelSpec(layers_from_state_dict("gru", m.state_dict(), 1, False))
    data, _ = build_rnc(spec, "f32")
    (tmp_path / "m.rnc").write_bytes(data)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((32, 10, 6)).astype(np.float32))
    cmd = [sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o",
           str(tmp_path / "kws.c"), "--target", "cortex-m"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "needs --calibration" in bad.stderr
    ok = subprocess.run(cmd + ["--calibration", str(tmp_path / "x.npy")], capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0, ok.stderr
    assert "static arena" in ok.stdout
    assert "#define RNC_INT_RUN RNC_INT_CELL_RUN" in (tmp_path / "kws.c").read_text()
    assert "#define KWS_ARENA_BYTES" in (tmp_path / "kws.h").read_text()
    host = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o",
                           str(tmp_path / "h.c"), "--calibration", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=env)
    assert host.returncode == 1 and "only with --target cortex-m" in host.stderr
    # --activation table: the cell struct's activation field says RNC_INT_ACT_TABLE (1); the default
    # 0; its last field, the input type, RNC_INT_IN_S8 by default
    assert "gemmlowp activations" in ok.stdout and "int8 input" in ok.stdout
    cells = re.search(r"_cells\[1\] = \{\n(.*)\n\};", (tmp_path / "kws.c").read_text()).group(1)
    assert cells.rstrip().endswith(", 0, RNC_INT_IN_S8}")
    x16 = subprocess.run(cmd + ["--calibration", str(tmp_path / "x.npy"), "--input-dtype", "int16"],
                         capture_output=True, text=True, env=env)
    assert x16.returncode == 0, x16.stderr
    assert "int16 input" in x16.stdout
    cells = re.search(r"_cells\[1\] = \{\n(.*)\n\};", (tmp_path / "kws.c").read_text()).group(1)
    assert cells.rstrip().endswith(", 0, RNC_INT_IN_S16}")
    assert "int kws_step(const int16_t *x);" in (tmp_path / "kws.h").read_text()
    host = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o",
                           str(tmp_path / "h.c"), "--input-dtype", "int16"], capture_output=True, text=True,
                          env=env)
    assert host.returncode == 1 and "--input-dtype int16: only with --target cortex-m" in host.stderr
    tab = subprocess.run(cmd + ["--calibration", str(tmp_path / "x.npy"), "--activation", "table"],
                         capture_output=True, text=True, env=env)
    assert tab.returncode == 0, tab.stderr
    assert "table activations" in tab.stdout
    cells = re.search(r"_cells\[1\] = \{\n(.*)\n\};", (tmp_path / "kws.c").read_text()).group(1)
    assert cells.rstrip().endswith(", 1, RNC_INT_IN_S8}")
    host = subprocess.run([sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "m.rnc"), "-o",
                           str(tmp_path / "h.c"), "--activation", "table"], capture_output=True, text=True,
                          env=env)
    assert host.returncode == 1 and "--activation: only with --target cortex-m" in host.stderr


MCU = ROOT / "csrc" / "mcu"
QEMU = shutil.which("qemu-system-arm")
CORES = {"cortex-m4": ("mps2-an386", "mps2.ld", "dsp"), "cortex-m7": ("mps2-an500", "mps2.ld", "dsp"),
         "cortex-m55": ("mps3-an547", "mps3.ld", "mve")}
INT_SRCS = ["int_cells.c", "int_cells_dsp.c", "int_cells_mve.c", "s8_matvec_generic.c", "s8_matvec_dsp.c",
            "s8_matvec_mve.c", "s16_act_mve.c"]


def _kws_model(seed: int = 7, activation: str = "gemmlowp", input_dtype: str = "int8"):
    """The keyword-spotting-sized cell of issue 18: GRU I = 16, H = 64, with a 12-logit head."""
    torch.manual_seed(seed)
    m = torch.nn.GRU(16, 64, batch_first=True).double()
    spec = ModelSpec(layers_from_state_dict("gru", m.state_dict(), 1, False))
    spec.last_step = True
    spec.head = LinearSpec(np.random.default_rng(seed).standard_normal((12, 64)) * 0.3, np.zeros(12))
    x = np.random.default_rng(seed + 1).standard_normal((32, 25, 16))
    return qi.quantize_int_model(spec, qi.calibrate_int(spec, x, input_dtype=input_dtype),
                                 activation=activation)


def _map_sections(map_text: str, obj_name: str) -> list[tuple[str, int, int]]:
    """(input section, address, size) of every section the image keeps from ``obj_name`` (the
    map after "Linker script and memory map"; the sections --gc-sections discarded come before)."""
    out, pending = [], None
    kept = map_text[map_text.index("Linker script and memory map"):]
    for line in kept.splitlines():
        p = line.split()
        if len(p) == 1 and p[0].startswith("."):
            pending = p[0]
            continue
        if pending and len(p) == 3 and p[0].startswith("0x") and p[2].endswith(obj_name):
            out.append((pending, int(p[0], 16), int(p[1], 16)))
        elif len(p) == 4 and p[0].startswith(".") and p[1].startswith("0x") and p[3].endswith(obj_name):
            out.append((p[0], int(p[1], 16), int(p[2], 16)))
        pending = None
    return out


@pytest.mark.skipif(ARM is None or QEMU is None, reason="arm-none-eabi-gcc or qemu-system-arm not installed")
@pytest.mark.parametrize("core", sorted(CORES))
@pytest.mark.parametrize("which", ["gru_kws", "gru_kws_table", "lstm2", "gru_kws_x16", "lstm2_x16"])
def test_exported_model_on_cortex_m_under_qemu(tmp_path, core, which):
    """The generated code, built for the core with its best step and products rows (DSP on M4/M7,
    MVE on M55), computes every step's h8 and logits of the NumPy spec bit for bit under
    qemu-system-arm; the linker map puts the model's const arrays in FLASH and only the arena in
    RAM."""
    qm = (_kws_model() if which == "gru_kws" else _kws_model(activation="table") if which == "gru_kws_table"
          else _kws_model(input_dtype="int16") if which == "gru_kws_x16"
          else _model("lstm", 2, True, input_dtype="int16") if which == "lstm2_x16"
          else _model("lstm", 2, True))
    budget = export_int_c(qm, tmp_path / "m.c")
    run_exported_under_qemu(tmp_path, qm, core, budget)


def run_exported_under_qemu(tmp_path: Path, qm, core: str, budget: dict) -> None:
    """Build ``tmp_path/m.c`` (exported from ``qm``) for ``core``, run it under qemu-system-arm and
    check every step's h8 and logits against the NumPy spec and the linker map's placement."""
    machine, ld, isa = CORES[core]
    steps = 12
    x8 = _inputs(qm, np.random.default_rng(11), steps)
    (tmp_path / "m_inputs.h").write_text(
        f"#define M_STEPS {steps}\nstatic const {x8.dtype}_t m_inputs[{x8.size}] = {{"
        + ", ".join(str(int(v)) for v in x8.ravel()) + "};\n")
    cflags = [f"-mcpu={core}", "-std=c99", "-O3", "-mthumb", "-mfloat-abi=hard", "-ffreestanding",
              "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror", f"-I{MCU}", f"-I{INT}",
              f"-I{tmp_path}"]
    subprocess.run([ARM, *cflags, "-c", str(tmp_path / "m.c"), "-o", str(tmp_path / "m.o")], check=True)
    elf, map_file = tmp_path / "m.elf", tmp_path / "m.map"
    subprocess.run([ARM, *cflags, "-nostdlib", f"-L{MCU}", "-Wl,--gc-sections", f"-T{ld}",
                    f"-Wl,-Map={map_file}", str(MCU / "startup.c"), str(MCU / "run_exported.c"),
                    str(tmp_path / "m.o"), *[str(INT / f) for f in INT_SRCS], "-lgcc", "-o", str(elf)],
                   check=True)
    run = subprocess.run(["timeout", "300", QEMU, "-M", machine, "-nographic", "-monitor", "none",
                          "-serial", "none", "-chardev", "stdio,id=sh0",
                          "-semihosting-config", "enable=on,target=native,chardev=sh0", "-kernel", str(elf)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"rows rnc_int_cell_run_{isa} rnc_s8_matvec_{isa}"
    got = np.array([[int(v) for v in line.split()] for line in lines[1:]])
    h = x8[None]
    for cell in qm.layers:
        h, _ = qi.int_cell_sequence(cell, h)
    want = np.concatenate([h[0].astype(np.int64), qi.int_linear(qm.head, h[0])], axis=1)
    assert got.shape == want.shape and np.array_equal(got, want)

    # placement: m.o's const arrays in FLASH (below 0x20000000), its arena and the reset's flag
    # the only RAM it takes
    secs = _map_sections(map_file.read_text(), "m.o")
    rodata = [s for s in secs if s[0].startswith(".rodata") and s[2]]
    ram = [s for s in secs if s[0].startswith((".bss", ".data")) and s[2]]
    assert rodata and all(addr < 0x20000000 for _, addr, _ in rodata)
    assert sum(size for _, _, size in rodata) >= budget["flash_bytes"]
    assert sorted(s[0] for s in ram) == [".bss.m_arena", ".bss.m_checked"]
    assert all(addr >= 0x20000000 for _, addr, _ in ram)
    assert {s[0]: s[2] for s in ram} == {".bss.m_arena": budget["arena_bytes"], ".bss.m_checked": 4}
