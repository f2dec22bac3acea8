"""Block-sparse q8 on ARM without the dot product: executed instructions per step under qemu.

    python benchmarks/bench_sparse_arm.py            # GRU/LSTM, H = 128, 256, Cortex-A53

For a random GRU/LSTM (I = H) pruned to block density d (rnncore.nn.BlockPruning, 16 x 4 blocks,
W_ih and W_hh) and compiled with ``sparse=...``, the aarch64 ``rnncore-bench`` (``make -C csrc
build/cross/aarch64/rnncore-bench``) runs batch-1 steps under ``qemu-aarch64 -cpu cortex-a53``
(NEON, no ``sdot``) with the qemu-icount plugin (../shared/tools/qemu-icount, built into a
temporary directory); the count per step is the difference of two runs (N and 2N steps). Rows:
the dense model on the ``neon`` path, the sparse model on ``generic`` and on ``neon``. qemu models
no timing: these are instruction counts, not cycles.

With ``--shared`` every gate of a matrix keeps the same blocks (bench_sparse.py's ``pruned_layer``,
one mask per matrix) and the same weights are compiled dense, per-gate sparse
(``shared_gates=False``) and gate-shared; rows: each on ``--isa`` (``neon`` on the Cortex-A53,
``neondot`` on the A76), and the gate-shared file on ``generic`` (what the ARM paths ran before
they had gate-shared rows).

    python benchmarks/bench_sparse_arm.py --shared --cpu cortex-a76 --isa neondot --hidden 256 \
        --densities 0.5 0.25
"""
import argparse
import sys
import tempfile
from pathlib import Path

from arm_icount import DEFAULT_DIR, aarch64_bench, load_icount
from bench_sparse import pruned_layer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import rnncore as rc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.5, 0.3, 0.2])
    ap.add_argument("--cpu", default="cortex-a53")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--icount-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--isa", default="neon", help="the path of the dense and sparse rows")
    ap.add_argument("--shared", action="store_true",
                    help="one block mask for all gates; dense, per-gate and gate-shared layouts")
    a = ap.parse_args()
    bench = aarch64_bench()
    with tempfile.TemporaryDirectory() as d:
        ic = load_icount(a.icount_dir, d)
        if a.shared:
            shared_rows(a, bench, ic, d)
            return
        print(f"{a.cpu}, q8, batch 1, I = H: executed instructions per step (qemu; no timing)")
        print("| cell | H | d | dense, neon | sparse, generic | sparse, neon | dense / sparse neon |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        for cell in ("gru", "lstm"):
            for H in a.hidden:
                def count(path: str, isa: str) -> float:
                    argv = [bench, "--model", path, "--isa", isa, "--steps", "{N}", "--repeat", "1",
                            "--warmup", "0"]
                    return ic.per_step(a.cpu, a.steps, argv)[0]
                m = getattr(rc.nn, cell.upper())(H, H)
                dense_path = str(Path(d) / "dense.rnc")
                rc.compile(m, "q8").save(dense_path)
                dense = count(dense_path, "neon")
                for dens in a.densities:
                    rc.nn.BlockPruning(m, density=dens, start_epoch=0, end_epoch=1).update(m, None, epoch=2.0)
                    path = str(Path(d) / "sparse.rnc")
                    rc.compile(m, "q8", sparse={"max_density": dens + 0.01, "block_rows": 16}).save(path)
                    g, n = count(path, "generic"), count(path, "neon")
                    print(f"| {cell.upper()} | {H} | {dens} | {dense:,.0f} | {g:,.0f} | {n:,.0f} "
                          f"| {dense / n:.2f}x |")


def shared_rows(a, bench: str, ic, d: str) -> None:
    """dense / per-gate / gate-shared on ``a.isa``, gate-shared on generic (instructions per step)"""
    print(f"{a.cpu}, q8, batch 1, I = H, one block mask per matrix: executed instructions per step (qemu)")
    print(f"| cell | H | d | dense, {a.isa} | per-gate, {a.isa} | gate-shared, generic "
          f"| gate-shared, {a.isa} | dense / per-gate | dense / shared | per-gate / shared |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for cell in ("gru", "lstm"):
        for H in a.hidden:
            for dens in a.densities:
                m = pruned_layer(cell, H, dens, 16, shared=True)
                paths = []
                for name, sparse in (("dense", None), ("pg", {"max_density": 1.0, "shared_gates": False}),
                                     ("sh", {"max_density": 1.0, "shared_gates": True})):
                    p = str(Path(d) / f"{name}.rnc")
                    rc.compile(m, "q8", sparse=sparse).save(p)
                    paths.append(p)

                def count(path: str, isa: str) -> float:
                    argv = [bench, "--model", path, "--isa", isa, "--steps", "{N}", "--repeat", "1",
                            "--warmup", "0"]
                    return ic.per_step(a.cpu, a.steps, argv)[0]
                dn, pg, sg, sh = (count(paths[0], a.isa), count(paths[1], a.isa), count(paths[2], "generic"),
                                  count(paths[2], a.isa))
                print(f"| {cell.upper()} | {H} | {dens} | {dn:,.0f} | {pg:,.0f} | {sg:,.0f} | {sh:,.0f} "
                      f"| {dn / pg:.2f}x | {dn / sh:.2f}x | {pg / sh:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
