"""Cortex-A53 estimates for the showcase models: executed aarch64 instructions under qemu, turned into
time with a stated clock and IPC range (docs/showcase-text.md, docs/showcase-vad.md).

    python benchmarks/bench_showcase_arm.py --seq MODEL.rnc 16 33   # a whole sequence of T steps (rnc_run)
    python benchmarks/bench_showcase_arm.py --step MODEL.rnc        # one streaming step (rnc_step)

The static aarch64 ``rnncore-bench`` (``make -C csrc build/cross/aarch64/rnncore-bench``: Debian
``gcc-aarch64-linux-gnu``) runs the model under ``qemu-aarch64 -cpu cortex-a53`` (Debian ``qemu-user``)
with the qemu-icount plugin (``--icount-dir``, default ``../shared/tools/qemu-icount`` beside the
repository or ``$RNNCORE_QEMU_ICOUNT``), N and 2N times; the difference / N is the instructions of one
sequence (or step), load and set-up cancelled. QEMU models no timing: the time is an estimate,
instructions / (IPC x clock), printed for IPC 0.5 and 1.0 (the A53 issues at most two instructions per
cycle, in order; ``llvm-mca``'s A53 model gives 0.84 for the q8 NEON product loop, docs/edge-estimates.md)
at 1.2 GHz (Raspberry Pi 3B). Caches, DRAM and the operating system are not in it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from arm_icount import DEFAULT_DIR, aarch64_bench, load_icount

ROOT = Path(__file__).resolve().parents[1]
CLOCK_HZ = 1.2e9
IPCS = (0.5, 1.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--seq", nargs="+", metavar=("MODEL", "T"), help="a .rnc file and sequence lengths")
    g.add_argument("--step", metavar="MODEL", help="a .rnc file: one streaming step")
    ap.add_argument("--cpu", default="cortex-a53")
    ap.add_argument("--isa", default="neon")
    ap.add_argument("--n", type=int, default=20, help="sequences (steps) in the shorter run")
    ap.add_argument("--icount-dir", type=Path,
                    default=DEFAULT_DIR)
    a = ap.parse_args(argv)
    bench = aarch64_bench()
    with tempfile.TemporaryDirectory() as d:
        icount = load_icount(a.icount_dir, d)
        if a.step:
            model, runs = a.step, [("step", [bench, "--model", a.step, "--isa", a.isa, "--steps", "{N}",
                                             "--warmup", "0", "--repeat", "0"])]
        else:
            model = a.seq[0]
            runs = [(f"sequence T={t}", [bench, "--model", model, "--isa", a.isa, "--steps", "0",
                                         "--warmup", "0", "--seq", t, "--repeat", "{N}"]) for t in a.seq[1:]]
        print(f"{model}: executed aarch64 instructions under qemu-aarch64 -cpu {a.cpu}, ISA path {a.isa}")
        for what, args in runs:
            n_instr = icount.per_step(a.cpu, a.n, args)[0]
            est = ", ".join(f"{n_instr / (ipc * CLOCK_HZ) * 1e6:,.1f} µs at IPC {ipc}" for ipc in IPCS)
            print(f"  {what}: {n_instr:,.0f} instructions -> {est} ({CLOCK_HZ / 1e9:.1f} GHz)")


if __name__ == "__main__":
    main(sys.argv[1:])
