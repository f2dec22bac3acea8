"""The log-mel front-end's cost per streaming step on aarch64: executed instructions under qemu.

A keyword-spotting shape (16 kHz, 25 ms Hann window in n_fft 512, hop 160, 40 mels -> GRU(64) ->
Linear(64 -> 12); ``--n-fft`` for other sizes) and the same model without its front-end (the GRU
and the head, the same weights) are written as f32 ``.rnc`` files and stepped by the static aarch64
``rnncore-bench`` (``--model F --steps N``, batch 1) under ``qemu-aarch64 -cpu CPU`` with the
qemu-icount plugin, N and 2N steps: the difference / N is one step, set-up cancelled. The
front-end's cost is the whole model's step minus the tail's, and the FFT's share is read from the
plugin's per-function counts (``rnc_f32_rfft_power_*`` and the passes it calls). QEMU models no
timing: these are instructions, not cycles.

    python benchmarks/bench_logmel_arm.py [--n-fft 512 400 256] [--cpus cortex-a53 cortex-a76]
        [--isas generic neon] [--bench PATH] [--icount-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from arm_icount import DEFAULT_DIR, aarch64_bench, load_icount

import rnncore as rc

nn = rc.nn


def kws(n_fft: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The KWS shape at this n_fft (window: 25 ms at 16 kHz, at most n_fft) and its tail."""
    m = nn.Sequential(
        nn.LogMelSpectrogram(16000, n_fft=n_fft, win_length=min(400, n_fft), hop_length=160, n_mels=40,
                             center=False),
        nn.GRU(40, 64, seed=3), nn.Linear(64, 12, seed=4))
    return m, nn.Sequential(*list(m)[1:])


def fft_share(breakdown) -> float:
    """Instructions per step in the FFT's functions (the row, its passes, window and split)."""
    keys = ("rfft", "fft_pass", "pass", "first4", "window_", "split_", "bf")
    return sum(v for k, v in breakdown if any(s in k for s in keys))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-fft", type=int, nargs="+", default=[512, 400, 256])
    ap.add_argument("--cpus", nargs="+", default=["cortex-a53", "cortex-a76"])
    ap.add_argument("--isas", nargs="+", default=["generic", "neon"])
    ap.add_argument("--n", type=int, default=20, help="steps in the shorter run")
    ap.add_argument("--bench", default=None, help="a static aarch64 rnncore-bench (default: built here)")
    ap.add_argument("--icount-dir", type=Path, default=DEFAULT_DIR)
    a = ap.parse_args(argv)
    bench = a.bench or aarch64_bench()
    print(f"# {bench}: executed aarch64 instructions per batch-1 step under qemu-aarch64 (f32 files)")
    print("| n_fft | CPU | ISA path | whole step | GRU + head step | log-mel (difference) | in the FFT |")
    print("|---:|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        icount = load_icount(a.icount_dir, d)
        for n_fft in a.n_fft:
            whole, tail = kws(n_fft)
            paths = {}
            for name, m in (("whole", whole), ("tail", tail)):
                paths[name] = str(Path(d) / f"{name}{n_fft}.rnc")
                rc.compile(m).save(paths[name])
            for cpu in a.cpus:
                for isa in a.isas:
                    got = {}
                    for name, path in paths.items():
                        args = [bench, "--model", path, "--isa", isa, "--steps", "{N}", "--warmup", "0",
                                "--repeat", "0"]
                        n_instr, _, _, brk = icount.per_step(cpu, a.n, args, hist=name == "whole")
                        got[name] = (n_instr, brk)
                    fft = fft_share(got["whole"][1])
                    print(f"| {n_fft} | {cpu} | {isa} | {got['whole'][0]:,.0f} | {got['tail'][0]:,.0f} | "
                          f"{got['whole'][0] - got['tail'][0]:,.0f} | {fft:,.0f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
