"""Where a small step's time goes: the fixed cost of one batch-1 q8 step, per ISA path, from C.

    python benchmarks/bench_fixed_cost.py                     # GRU/LSTM/RNN, H = 16 32 64 128, every ISA
    python benchmarks/bench_fixed_cost.py --cells gru --hidden 64 --isa avx2 avx512vnni
    python benchmarks/bench_fixed_cost.py --arm               # + aarch64 instruction counts under qemu
    python benchmarks/bench_fixed_cost.py --arm-only --arm-cells gru lstm --arm-hidden 16 32 64 128
    python benchmarks/bench_fixed_cost.py --arm-only --arm-compiler clang   # aarch64 build by clang
    python benchmarks/bench_fixed_cost.py --cells gru --scales dynamic bounded static   # scale settings

For each model (input size = H, one layer, written as a ``.rnc`` file) and each ISA path this CPU
runs, ``rnncore-bench --breakdown`` (csrc/bench/rnncore_bench.c, built here with
``make -C csrc bench`` unless ``--bench`` names one) times in C loops, each through the kernel-table
row the model's plan runs: the whole ``rnc_step``, the quantisation of x and of h (the QUANTIZE
row), the products W_ih x and W_hh h (the GEMV row), the cell row, the state store (h' copied to
y), and by difference the cell update (cell - products - quantise h) and the rest of the step
(checks and dispatch). Figures are the minimum per call over ``--repeat`` interleaved windows (the
machine may be shared). Where the cell row is fused (the AVX-512 VNNI ``b1`` kernels interleave
their products with the update), the separate GEMV call is not the cell's own product loop, so the
update "by difference" is an estimate of what the cell adds beyond a plain GEMV.

``--arm`` cross-builds the static aarch64 ``rnncore-bench`` (``make -C csrc
build/cross/aarch64/rnncore-bench``: Debian ``gcc-aarch64-linux-gnu``) and counts executed
instructions per step under ``qemu-aarch64`` (Debian ``qemu-user``) with the qemu-icount plugin
(``--icount-dir``, default ``../shared/tools/qemu-icount`` beside the repository or
``$RNNCORE_QEMU_ICOUNT``): per function of the step (N and 2N steps, the difference / N) and per
breakdown part, on a Cortex-A76 (``neondot``: sdot) and a Cortex-A53 (``neon``), for each of
``--arm-cells`` and ``--arm-hidden``, then one summary table: the step and the cell update's own
function (the fused q8 loops ``rnc_neon_gru_q8_main`` / ``rnc_neon_lstm_q8_main``, else the
general ``rnc_neon_q8_update_any``) per hidden unit. ``--arm-compiler clang`` counts the aarch64
build made with clang instead (``make -C csrc build/cross/aarch64-clang/rnncore-bench``: ``clang
--target=aarch64-linux-gnu``). Skipped with a message when the toolchain, qemu or the plugin's
sources are missing. QEMU models no timing: these are instructions, not
cycles.

The C bench is also the driver to time an independent implementation beside rnncore: it loads any
``.rnc`` and prints µs per step (``rnncore-bench --model F.rnc --isa avx2 --breakdown --part step``);
``benchmarks/peers/opus_gru.c`` times Opus's int8 GRU interleaved with ``rnc_step`` (benchmarks/README.md,
"How to compare against Opus").
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from arm_icount import DEFAULT_DIR, aarch64_bench, load_icount
from machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTS = ["step", "quantise_x", "quantise_h", "products", "cell", "store", "update", "rest"]
ARM_TARGETS = [("cortex-a76", "neondot"), ("cortex-a53", "neon")]


def build_bench() -> Path:
    """The host rnncore-bench (``make -C csrc bench``)."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), "bench"], check=True)
    return ROOT / "csrc" / "build" / "rnncore-bench"


#: ``--scales``: how the q8 activation scales of the timed model are set (docs/q8-contract.md)
SCALES = {"dynamic": "x and h: max-abs per vector and step",
          "bounded": "x dynamic, h the bounded state scale 1/127 (state_scale='bounded')",
          "static": "x calibrated, h 1/127 (calibration=X, state_scale='bounded')",
          "calibrated": "x and h calibrated (calibration=X)"}


def write_model(cell: str, h: int, precision: str, path: Path, scales: str = "dynamic") -> None:
    """A one-layer model of ``cell`` with input size = hidden size = ``h`` (seeded), as ``.rnc``;
    q8 activation scales as ``scales`` (:data:`SCALES`; calibrated on seeded N(0, 1) inputs)."""
    import warnings

    import numpy as np

    import rnncore as rc

    cls = {"gru": rc.nn.GRU, "lstm": rc.nn.LSTM, "rnn": rc.nn.RNN}[cell]
    m = cls(h, h, seed=0)
    if scales == "dynamic":
        rc.save(m, path, precision=precision)
        return
    X = np.random.default_rng(1).standard_normal((32, 20, h)).astype(np.float32)
    cal = X if scales in ("static", "calibrated") else None
    with warnings.catch_warnings():   # 32 sequences: fewer than calibrate's advice, enough here
        warnings.simplefilter("ignore", rc.quant.CalibrationWarning)
        rc.compile(m, precision, calibration=cal,
                   state_scale=None if scales == "calibrated" else "bounded").save(path)


def available_isas() -> list[str]:
    from rnncore import _engine

    return [t["name"] for t in _engine.isa_table() if t["available"]]


def breakdown(bench: Path, model: Path, isa: str, steps: int, repeat: int) -> dict:
    """``rnncore-bench --breakdown --json`` for one model and ISA: its parsed JSON."""
    out = subprocess.run([str(bench), "--model", str(model), "--isa", isa, "--breakdown", "--json",
                          "--steps", str(steps), "--repeat", str(repeat), "--warmup", "100"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _share(p: dict, step: float, *keys: str) -> str:
    us = sum(p[k] for k in keys)
    return f"{us:.3f} ({100 * us / step:.0f}%)"


def format_table(results: list[dict]) -> str:
    """One Markdown table: µs per step and each part's µs (share of the step)."""
    head = ("| cell | H | ISA | step µs | quantise x + h | products | cell update | state store "
            "| checks, dispatch |")
    lines = [head, "|" + "---|" * 9]
    for r in results:
        p = {q["part"]: q["us"] for q in r["parts"]}
        step = p["step"]
        cells = [_share(p, step, *keys) for keys in
                 (("quantise_x", "quantise_h"), ("products",), ("update",), ("store",), ("rest",))]
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['isa']} | {step:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_scales(bench: Path, a: argparse.Namespace, isas: list[str]) -> list[dict]:
    """Every (cell, H, ISA) with each of ``a.scales``: the minimum step and quantisation µs over
    ``a.rounds`` rounds, the models of one (cell, H, ISA) run one after the other in each round."""
    rows: dict = {}
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for cell in a.cells:
            for h in a.hidden:
                for s in a.scales:
                    paths[cell, h, s] = Path(d) / f"{cell}{h}_{s}.rnc"
                    write_model(cell, h, "q8", paths[cell, h, s], s)
        for _ in range(a.rounds):
            for cell in a.cells:
                for h in a.hidden:
                    for isa in isas:
                        for s in a.scales:
                            p = {q["part"]: q["us"] for q in
                                 breakdown(bench, paths[cell, h, s], isa, a.steps, a.repeat)["parts"]}
                            new = {"cell": cell, "hidden": h, "isa": isa, "scales": s, "step": 1e9,
                                   "quantise": 1e9}
                            r = rows.setdefault((cell, h, isa, s), new)
                            r["step"] = min(r["step"], p["step"])
                            r["quantise"] = min(r["quantise"], p["quantise_x"] + p["quantise_h"])
    return list(rows.values())


def format_scales(rows: list[dict], scales: list[str]) -> str:
    """One Markdown table: per (cell, H, ISA) the step µs of each scale setting (quantisation µs in
    parentheses) and each setting's step time relative to the first."""
    by = {(r["cell"], r["hidden"], r["isa"], r["scales"]): r for r in rows}
    keys = sorted({k[:3] for k in by}, key=lambda k: (k[0], k[2], k[1]))
    head = "| cell | H | ISA | " + " | ".join(f"{s} µs (quantise)" for s in scales) + " | " + \
        " | ".join(f"{s} / {scales[0]}" for s in scales[1:]) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(scales) - 1)]
    for k in keys:
        base = by[k + (scales[0],)]["step"]
        cells = [f"{by[k + (s,)]['step']:.3f} ({by[k + (s,)]['quantise']:.3f})" for s in scales]
        ratios = [f"{by[k + (s,)]['step'] / base:.2f}" for s in scales[1:]]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ ARM: instructions under qemu


def arm_missing(icount_dir: Path, compiler: str = "gcc") -> str | None:
    """Why the ARM mode cannot run here (with the aarch64 build of ``compiler``), or None."""
    for tool in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-nm", "qemu-aarch64", "cc",
                 *(("clang",) if compiler == "clang" else ())):
        if not shutil.which(tool):
            return f"{tool} not found"
    for f in ("build.sh", "icount.py", "icount.c"):
        if not (icount_dir / f).exists():
            return f"{icount_dir / f} not found (--icount-dir)"
    return None


def arm_counts(icount_dir: Path, hidden: int, cell: str, n: int, scales: str = "dynamic",
               compiler: str = "gcc") -> list[dict]:
    """Executed instructions per q8 step (batch 1, I = H; activation scales as ``scales``) of the
    aarch64 build made by ``compiler`` (``gcc``: the cross gcc, ``clang``: clang
    ``--target=aarch64-linux-gnu``), per function and per breakdown part, for each of ARM_TARGETS."""
    bench = aarch64_bench("aarch64" if compiler == "gcc" else "aarch64-clang")
    out = []
    with tempfile.TemporaryDirectory() as d:
        icount = load_icount(icount_dir, d)
        model = Path(d) / "m.rnc"
        write_model(cell, hidden, "q8", model, scales)
        for cpu, isa in ARM_TARGETS:
            base = [str(bench), "--model", str(model), "--isa", isa, "--breakdown", "--steps", "{N}",
                    "--repeat", "1", "--warmup", "0", "--part"]
            total, _, _, funcs = icount.per_step(cpu, n, base + ["step"], hist=True)
            parts = {p: icount.per_step(cpu, n, base + [p])[0]
                     for p in ("quantise_x", "quantise_h", "products", "cell", "store")}
            parts["step"] = total
            parts["update"] = parts["cell"] - parts["products"] - parts["quantise_h"]
            out.append({"cpu": cpu, "isa": isa, "hidden": hidden, "cell": cell, "step": total,
                        "scales": scales, "compiler": compiler, "functions": funcs, "parts": parts})
    return out


def format_arm_scales(res: list[dict], scales: list[str]) -> str:
    """One Markdown table: instructions per step and for quantising x and h, per scale setting."""
    by = {(r["cpu"], r["isa"], r["scales"]): r for r in res}
    lines = ["| CPU (ISA) | scales | instructions per step | quantise x + h | step / " + scales[0] + " |",
             "|---|---|---|---|---|"]
    for cpu, isa in ARM_TARGETS:
        base = by[cpu, isa, scales[0]]["step"]
        for s in scales:
            r = by[cpu, isa, s]
            q = r["parts"]["quantise_x"] + r["parts"]["quantise_h"]
            lines.append(f"| {cpu} ({isa}) | {s} | {r['step']:,.0f} | {q:,.0f} | {r['step'] / base:.3f} |")
    return "\n".join(lines)


#: the functions that are the q8 cell update on aarch64 (epilogue_neon.h): the fused 8-unit loops,
#: the general loop (other cells, the last 1..7 units)
ARM_UPDATE_FUNCS = ("rnc_neon_gru_q8_main", "rnc_neon_lstm_q8_main", "rnc_neon_q8_update_any")


def format_arm_update(res: list[dict]) -> str:
    """One Markdown table: per cell, H and CPU the instructions per step and the cell update's
    functions (:data:`ARM_UPDATE_FUNCS`) per hidden unit."""
    lines = ["| cell | H | CPU (ISA) | instructions per step | update functions | update per hidden unit |",
             "|---|---|---|---|---|---|"]
    for r in res:
        upd = [(n, v) for n, v in r["functions"] if n in ARM_UPDATE_FUNCS and v >= 1]
        total = sum(v for _, v in upd)
        names = " + ".join(f"`{n}`" for n, _ in upd) or "(none)"
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['cpu']} ({r['isa']}) | {r['step']:,.0f} "
                     f"| {names} | {total / r['hidden']:.2f} |")
    return "\n".join(lines)


def format_arm(res: list[dict]) -> str:
    lines = []
    for r in res:
        h, step = r["hidden"], r["step"]
        lines.append(f"\n{r['cpu']} ({r['isa']}), q8 {r['cell']} H = {h}, batch 1: "
                     f"{step:,.0f} instructions per step")
        lines.append("| function | instructions per step | share | per hidden unit |")
        lines.append("|---|---|---|---|")
        for name, v in r["functions"]:
            if v >= 1:
                lines.append(f"| `{name}` | {v:,.0f} | {100 * v / step:.1f}% | {v / h:.1f} |")
        lines.append("\n| breakdown part (--part) | instructions per call | share |")
        lines.append("|---|---|---|")
        for k in ("quantise_x", "quantise_h", "products", "cell", "update", "store"):
            v = r["parts"][k]
            lines.append(f"| {k}{' (cell - products - quantise h)' if k == 'update' else ''} | "
                         f"{v:,.0f} | {100 * v / step:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=["gru", "lstm", "rnn"], choices=["gru", "lstm", "rnn"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[16, 32, 64, 128])
    ap.add_argument("--precision", default="q8", choices=["q8", "f32"])
    ap.add_argument("--isa", nargs="+", help="ISA paths (default: every one this CPU runs)")
    ap.add_argument("--bench", type=Path, help="a built rnncore-bench (default: make -C csrc bench)")
    ap.add_argument("--steps", type=int, default=2000, help="calls per timed window")
    ap.add_argument("--repeat", type=int, default=30, help="windows per part (the minimum is kept)")
    ap.add_argument("--scales", nargs="+", default=["dynamic"], choices=list(SCALES),
                    help="q8 activation scales of the timed models (several: a table comparing "
                         "their step times, models timed in interleaved rounds)")
    ap.add_argument("--rounds", type=int, default=3, help="with several --scales: interleaved rounds")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--arm", action="store_true", help="aarch64 instruction counts under qemu")
    ap.add_argument("--arm-only", action="store_true", help="only the ARM counts")
    ap.add_argument("--arm-hidden", type=int, nargs="+", default=[64])
    ap.add_argument("--arm-cells", nargs="+", default=["gru"], choices=["gru", "lstm", "rnn"])
    ap.add_argument("--arm-compiler", default="gcc", choices=["gcc", "clang"],
                    help="the aarch64 build's compiler: the cross gcc, or clang --target=aarch64-linux-gnu")
    ap.add_argument("--icount-dir", type=Path,
                    default=DEFAULT_DIR)
    a = ap.parse_args(argv)
    results: dict = {"cpu": cpu_name(), "x86": [], "arm": []}
    if not a.arm_only:
        bench = a.bench or build_bench()
        isas = a.isa or available_isas()
        if len(a.scales) > 1:
            results["scales"] = compare_scales(bench, a, isas)
            print(f"CPU: {results['cpu']}; q8, batch 1, I = H, one layer; µs per step and for the "
                  f"quantisation of x and h (minimum over {a.rounds} interleaved rounds of {a.repeat} "
                  f"windows of {a.steps} calls)")
            for s in a.scales:
                print(f"  {s}: {SCALES[s]}")
            print()
            print(format_scales(results["scales"], a.scales))
        else:
            with tempfile.TemporaryDirectory() as d:
                for cell in a.cells:
                    for h in a.hidden:
                        model = Path(d) / f"{cell}{h}.rnc"
                        write_model(cell, h, a.precision, model, a.scales[0])
                        for isa in isas:
                            results["x86"].append(breakdown(bench, model, isa, a.steps, a.repeat))
            print(f"CPU: {results['cpu']}; {a.precision}, batch 1, I = H, one layer; µs per step "
                  f"(minimum of {a.repeat} windows of {a.steps} calls), each part's µs (share of the step)\n")
            print(format_table(results["x86"]))
    if a.arm or a.arm_only:
        why = arm_missing(a.icount_dir, a.arm_compiler)
        if why:
            print(f"\nARM instruction counts skipped: {why}")
        else:
            for s in a.scales:
                for cell in a.arm_cells:
                    for h in a.arm_hidden:
                        results["arm"] += arm_counts(a.icount_dir, h, cell, 200, s, a.arm_compiler)
            print("\nExecuted aarch64 instructions (qemu-aarch64 + qemu-icount, "
                  f"{a.arm_compiler} -O3 static build)")
            if len(a.scales) > 1:
                print(format_arm_scales(results["arm"], a.scales))
            else:
                print(format_arm(results["arm"]))
                print("\nThe cell update per hidden unit (its functions' instructions / H)")
                print(format_arm_update(results["arm"]))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
