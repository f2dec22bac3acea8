#!/usr/bin/env python3
"""Edge estimates for the ARM kernels: llvm-mca cycles of the inner loops and qemu instruction counts.

Everything here is an *estimate* from static scheduling models (llvm-mca) or an exact count of
executed instructions under emulation (qemu -singlestep); nothing is measured on a board.

    python tools/arm_estimates.py mca            # llvm-mca table (Markdown) for docs/edge-estimates.md
    python tools/arm_estimates.py count BENCH    # qemu instruction counts per step (neon vs neondot)

Needs: aarch64-linux-gnu-gcc, llvm-mca (Debian `llvm`; `llvm-19` for the Neoverse-N1 model used
for the Cortex-A76), qemu-aarch64 (Debian `qemu-user`).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rnncore.io.rnc import write_rnc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "csrc" / "src" / "kernels"
CFLAGS = ["-std=c99", "-O3", "-ffp-contract=off", "-fno-strict-aliasing", f"-I{KERNELS}"]
# (core, llvm-mca -mcpu, typical clock GHz, board)
CORES = [
    ("Cortex-A53", "cortex-a53", 1.2, "Raspberry Pi 3B (1.2 GHz; Pi 3B+ 1.4, Zero 2 W 1.0)"),
    ("Cortex-A55", "cortex-a55", 1.8, "RK3566/RK3568 boards (1.8-2.0 GHz)"),
    ("Cortex-A72", "cortex-a72", 1.5, "Raspberry Pi 4 (1.5 GHz; 1.8 on later boards)"),
    ("Cortex-A76", "neoverse-n1", 2.4, "Raspberry Pi 5 (2.4 GHz)"),
]
BRANCH = re.compile(r"^\s+(b\.\w+|bne|beq|bgt|blt|bge|ble|bhi|bls|bcc|bcs|cbnz|cbz|tbnz|tbz)\s"
                    r".*?(\.L\w+)\s*$")
LABEL = re.compile(r"^(\.L\w+):")


def llvm_mca() -> str:
    """Newest llvm-mca available (LLVM >= 15 has the Neoverse-N1 model that stands in for the A76)."""
    for v in (22, 19, 16, 15):
        p = f"/usr/lib/llvm-{v}/bin/llvm-mca"
        if os.path.exists(p):
            return p
    p = shutil.which("llvm-mca")
    if not p:
        sys.exit("llvm-mca not found (apt-get install llvm)")
    return p


def compile_asm(src: Path, extra: list[str]) -> str:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "k.s"
        subprocess.run(["aarch64-linux-gnu-gcc", *CFLAGS, *extra, "-S", str(src), "-o", str(out)],
                       check=True)
        return out.read_text()


def hot_loop(asm: str, function: str, marker: str) -> list[str]:
    """Innermost backward-branch loop of `function` with the most `marker` instructions."""
    lines = asm.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(function + ":"))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\s+\.size\s+" + function, lines[i])),
               len(lines))
    body = lines[start:end]
    labels = {m.group(1): i for i, l in enumerate(body) if (m := LABEL.match(l))}
    best: list[str] = []
    best_key = (0, 0)
    for j, l in enumerate(body):
        m = BRANCH.match(l)
        if not m or m.group(2) not in labels or labels[m.group(2)] >= j:
            continue
        i = labels[m.group(2)]
        seg = [x.split("//")[0].rstrip() for x in body[i + 1:j + 1]
               if x.startswith("\t") and not x.strip().startswith(".")]
        inner = any(BRANCH.match(x) for x in body[i + 1:j])
        n_marker = sum(1 for x in seg if x.split()[0].startswith(marker))
        key = (n_marker, -len(seg))
        if not inner and n_marker and key > best_key:
            best, best_key = seg, key
    if not best:
        raise RuntimeError(f"no loop with {marker} in {function}")
    return best


def mca_cycles(loop: list[str], mcpu: str, mattr: str) -> tuple[float, int]:
    """Steady-state cycles per iteration (llvm-mca, 500 iterations) and instructions per iteration."""
    text = "\n".join(loop) + "\n"
    r = subprocess.run([llvm_mca(), "-mtriple=aarch64-linux-gnu", f"-mcpu={mcpu}", f"-mattr={mattr}",
                        "-iterations=500"], input=text, capture_output=True, text=True, check=True)
    total = int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1))
    return total / 500.0, len(loop)


def loops() -> dict[str, tuple[list[str], str]]:
    neon = compile_asm(KERNELS / "gemm_neon.c", [])
    dot = compile_asm(KERNELS / "q8_gemm_neondot.c", ["-march=armv8.2-a+dotprod"])
    return {
        "f32 neon": (hot_loop(neon, "rnc_f32_gemv_neon", "fmla"), "+neon"),
        "q8 neon": (hot_loop(neon, "rnc_q8_gemv_neon", "smlal"), "+neon"),
        "q8 neondot": (hot_loop(dot, "rnc_q8_gemv_neondot", "sdot"), "+neon,+dotprod"),
    }


# multiply-accumulates per instruction of each kind (sdot: 16 int8 products; smull/smlal(2): 8;
# fmla .4s: 4): the work of one loop iteration follows from its instructions
MACS_PER_INSN = {"sdot": 16, "smull": 8, "smull2": 8, "smlal": 8, "smlal2": 8, "fmla": 4}


def loop_macs(loop: list[str]) -> int:
    return sum(MACS_PER_INSN.get(line.split()[0], 0) for line in loop)


def mca_table(h_list: list[int]) -> str:
    ls = loops()
    out = []
    version = subprocess.run([llvm_mca(), "--version"], capture_output=True, text=True).stdout.splitlines()
    out.append(f"llvm-mca: `{llvm_mca()}` ({version[1].strip() if len(version) > 1 else '?'})")
    out.append("")
    out.append("### Inner loops (cycles per iteration, steady state)")
    out.append("")
    out.append("| loop | instructions / iter | MACs / iter | " + " | ".join(c[0] for c in CORES) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(CORES))
    cyc: dict[tuple[str, str], float] = {}
    for name, (loop, mattr) in ls.items():
        row = [name, str(len(loop)), str(loop_macs(loop))]
        for core, mcpu, _, _ in CORES:
            if name == "q8 neondot" and mcpu in ("cortex-a53", "cortex-a72"):
                row.append("n/a (no sdot)")
                continue
            c, _ = mca_cycles(loop, mcpu, mattr)
            cyc[(name, core)] = c / loop_macs(loop)  # cycles per multiply-accumulate
            row.append(f"{c:.2f}")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for cell, gates in (("GRU", 3), ("LSTM", 4)):
        out.append(f"### {cell} step, batch 1, input size = H: products only (inner-loop cycles per MAC x "
                   "MACs), estimated")
        out.append("")
        out.append("| H | MACs | path | " + " | ".join(f"{c[0]} @ {c[2]} GHz" for c in CORES) + " |")
        out.append("|---:|---:|---|" + "---:|" * len(CORES))
        for h in h_list:
            macs = gates * h * 2 * h
            for name in ls:
                row = [str(h), str(macs), name]
                for core, _, ghz, _ in CORES:
                    if (name, core) not in cyc:
                        row.append("—")
                        continue
                    c = cyc[(name, core)] * macs
                    row.append(f"{c / (ghz * 1e3):.2f} µs ({c / 1e3:.1f} kcyc)")
                out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def mac_limit_a53(macs: int) -> float:
    """Cycles of the multiplies alone on the Cortex-A53 model: plain NEON needs MACs/8 SMULL/SMLAL
    (8 int8 products each, exact in 16 bits); 8 independent ones per iteration (no dependency
    chain), at the throughput llvm-mca's A53 model gives them."""
    text = "".join(f"smull v{i}.8h, v{i + 8}.8b, v{i + 16}.8b\n" for i in range(4)) + \
        "".join(f"smlal2 v{i}.8h, v{i + 8}.16b, v{i + 16}.16b\n" for i in range(4, 8))
    r = subprocess.run([llvm_mca(), "-mtriple=aarch64-linux-gnu", "-mcpu=cortex-a53", "-iterations=1000"],
                       input=text, capture_output=True, text=True, check=True)
    per_mul = int(re.search(r"Total Cycles:\s+(\d+)", r.stdout).group(1)) / 8000.0
    return per_mul * macs / 8


def count_step(bench: str, qemu_cpu: str, isa: str, extra: list[str], lib_syms: set[str],
               steps: int = 4) -> dict[str, int]:
    """Instructions executed inside the library per step (qemu -singlestep exec log, by symbol)."""
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "exec.log"
        args = [bench, "--isa", isa, "--steps", str(steps), "--warmup", "0", "--repeat", "0", *extra]
        subprocess.run(["qemu-aarch64", "-cpu", qemu_cpu, "-singlestep", "-d", "exec,nochain", "-D",
                        str(log), *args], check=True, capture_output=True)
        syms = []
        nm = subprocess.run(["aarch64-linux-gnu-nm", "-S", "--defined-only", bench], capture_output=True,
                            text=True, check=True).stdout
        for line in nm.splitlines():
            p = line.split()
            if len(p) == 4 and p[2] in "tTwW":
                syms.append((int(p[0], 16), int(p[1], 16), p[3]))
        syms.sort()
        starts = [s[0] for s in syms]
        counts: collections.Counter[str] = collections.Counter()
        pat = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")
        with open(log) as f:
            for line in f:
                m = pat.search(line)
                if not m:
                    continue
                a = int(m.group(1), 16)
                k = bisect.bisect_right(starts, a) - 1
                if k >= 0 and a < syms[k][0] + syms[k][1] and syms[k][2] in lib_syms:
                    counts[syms[k][2]] += 1
    # the model build and the state init run once; report per step of the rest
    return {k: v for k, v in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mca", help="llvm-mca estimate tables (Markdown)")
    m.add_argument("--hidden", type=int, nargs="*", default=[64, 128, 256, 512])
    c = sub.add_parser("count", help="qemu instruction counts per step, neon vs neondot")
    c.add_argument("bench", help="aarch64 rnncore-bench binary (static)")
    c.add_argument("lib", help="aarch64 librnncore.a (its symbols are counted)")
    c.add_argument("--hidden", type=int, default=256)
    c.add_argument("--cell", default="gru")
    a = ap.parse_args()
    if a.cmd == "mca":
        print(mca_table(a.hidden))
        macs = 3 * 128 * 2 * 128
        loop = loops()["q8 neon"][0]
        est = mca_cycles(loop, "cortex-a53", "+neon")[0] / loop_macs(loop) * macs
        floor = mac_limit_a53(macs)
        print(f"\nCortex-A53, q8 GRU step at H=128 ({macs} MACs): products {est:.0f} cycles "
              f"({est / 1200:.1f} µs at 1.2 GHz); multiply floor (SMULL/SMLAL .8b alone, 8 MACs each, "
              f"independent) {floor:.0f} cycles ({floor / 1200:.1f} µs); ratio {est / floor:.2f}")
    else:
        nm = subprocess.run(["aarch64-linux-gnu-nm", "--defined-only", a.lib], capture_output=True, text=True,
                            check=True).stdout
        lib_syms = {p.split()[2] for p in nm.splitlines() if len(p.split()) == 3}
        res = {}
        gates = {"gru": 3, "lstm": 4, "rnn_tanh": 1, "rnn_relu": 1}[a.cell]
        rng = np.random.default_rng(0)
        h = a.hidden
        spec = {"precision": "q8", "input_size": h,
                "layers": [{"kind": a.cell.split("_")[0], "nonlinearity": a.cell.split("_")[-1],
                            "weights": {"weight_ih": rng.uniform(-0.1, 0.1, (gates * h, h)),
                                        "weight_hh": rng.uniform(-0.1, 0.1, (gates * h, h))}}]}
        tmp = tempfile.NamedTemporaryFile(suffix=".rnc", delete=False)
        tmp.write(write_rnc(spec))
        tmp.close()
        for isa in ("neon", "neondot"):
            n_steps = 4
            c1 = count_step(a.bench, "cortex-a76", isa, ["--model", tmp.name], lib_syms, steps=n_steps)
            c0 = count_step(a.bench, "cortex-a76", isa, ["--model", tmp.name], lib_syms, steps=0)
            per = (sum(c1.values()) - sum(c0.values())) / n_steps
            res[isa] = per
            top = collections.Counter({k: (c1[k] - c0.get(k, 0)) / n_steps for k in c1}).most_common(4)
            print(f"{isa}: {per:.0f} instructions per q8 {a.cell} step at H={a.hidden} (batch 1); top: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in top))
        os.unlink(tmp.name)
        print(f"ratio neon / neondot: {res['neon'] / res['neondot']:.2f}")


if __name__ == "__main__":
    main()
