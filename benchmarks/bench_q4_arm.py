"""q4 against q8 on ARM: executed instructions per step under qemu (batch 1, I = H).

    python benchmarks/bench_q4_arm.py            # GRU/LSTM, H = 256, 512; Cortex-A53 and A76

For a random GRU/LSTM compiled q8 and q4, the aarch64 ``rnncore-bench`` (``make -C csrc
build/cross/aarch64/rnncore-bench``) runs batch-1 steps under ``qemu-aarch64 -cpu CPU`` with the
qemu-icount plugin (../shared/tools/qemu-icount, built into a temporary directory); the count per
step is the difference of two runs (N and 2N steps). Rows: on the Cortex-A53 (NEON, no ``sdot``)
both precisions on the ``neon`` path (q4: ``rnc_q4_*_neon``, nibbles unpacked with and/ushr and
multiplied with smlal), on the Cortex-A76 on ``neondot``. qemu models no timing and no memory:
these are instruction counts, not cycles, and q4's halved weight bytes show in neither.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from arm_icount import DEFAULT_DIR, aarch64_bench, load_icount

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import rnncore as rc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    ap.add_argument("--cpus", nargs="+", default=["cortex-a53:neon", "cortex-a76:neondot"],
                    help="CPU:ISA pairs")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--icount-dir", type=Path, default=DEFAULT_DIR)
    a = ap.parse_args()
    bench = aarch64_bench()
    with tempfile.TemporaryDirectory() as d:
        ic = load_icount(a.icount_dir, d)
        print("batch 1, I = H: executed instructions per step (qemu; no timing)")
        print("| CPU | ISA | cell | H | q8 | q4 | q8 / q4 |")
        print("|---|---|---|--:|--:|--:|--:|")
        for cpu_isa in a.cpus:
            cpu, isa = cpu_isa.split(":")
            for cell in a.cells:
                for h in a.hidden:
                    m = getattr(rc.nn, cell.upper())(h, h, seed=0)
                    counts = {}
                    for prec in ("q8", "q4"):
                        path = str(Path(d) / f"{prec}.rnc")
                        rc.compile(m, prec).save(path)
                        argv = [bench, "--model", path, "--isa", isa, "--steps", "{N}", "--repeat", "1",
                                "--warmup", "0"]
                        counts[prec] = ic.per_step(cpu, a.steps, argv)[0]
                    q8, q4 = counts["q8"], counts["q4"]
                    row = f"| {cpu} | {isa} | {cell.upper()} | {h} | {q8:,.0f} | {q4:,.0f} | {q8 / q4:.2f}x |"
                    print(row, flush=True)


if __name__ == "__main__":
    main()
