"""Executed instructions (and llvm-mca cycle estimates) per call of the bare-metal bench images.

For every core and every work its image lists, the image runs under qemu-system-arm twice, with
REPS = 1 and REPS = 1 + N, with the instruction-counting TCG plugin (/work/shared/tools/qemu-icount
style: ``-plugin libicount.so,out=FILE,hist=FILE``, per-address counts). The difference / N is the
work's count per call, start-up and set-up cancelled. qemu models no timing: these are
instructions, not cycles.

Cycle estimate (``--mca``, cores LLVM has a scheduling model for): the per-address counts are cut
into straight blocks (same count, split after branches), each block's steady-state cycles per
execution come from llvm-mca (``-iterations=100``, cycles / 100), and the estimate is the sum of
count x cycles. It ignores branch penalties and memory wait states (flash at 80 MHz usually has
none with the cache / accelerator on), so it is a lower bound for the core's pipeline.
``--functions`` adds each work's instructions and cycles summed per function of the image.

    python3 bench_cortex_m.py --icount libicount.so --build build/mcu cortex-m4:mps2-an386 ...
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile

# llvm-mca CPU names with a scheduling model in LLVM 14 (cortex-m55: scalar timings only,
# MVE instructions rejected as unsupported)
MCA_CPUS = {"cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7"}
TRIPLE = {"cortex-m4": "thumbv7em", "cortex-m7": "thumbv7em", "cortex-m55": "thumbv8.1m.main"}


def run(qemu: str, machine: str, elf: str, text: str, plugin: str | None, hist: str | None,
        timeout: int = 600) -> str:
    cmd = [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
           "-kernel", elf, "-append", text]
    if plugin:
        with tempfile.NamedTemporaryFile(suffix=".count") as out:
            cmd += ["-plugin", f"{plugin},out={out.name}" + (f",hist={hist}" if hist else "")]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    else:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{elf} '{text}': exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def read_hist(path: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    with open(path) as f:
        for line in f:
            a, c = line.split()
            counts[int(a, 16)] = int(c)
    return counts


def disassemble(elf: str, core: str, objdump: str) -> list[tuple[int, str]]:
    """(address, instruction text) of every instruction, in address order."""
    args = [objdump, "-d", "--no-show-raw-insn", f"--triple={TRIPLE[core]}", f"--mcpu={core}"]
    if core == "cortex-m55":
        args.append("--mattr=+mve")
    out = subprocess.run(args + [elf], capture_output=True, text=True, check=True).stdout
    insns = []
    for line in out.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(\S.*)$", line)
        if m and not m.group(2).startswith((".word", ".short", ".byte")):
            text = re.sub(r"\s*@.*$", "", m.group(2)).strip()
            insns.append((int(m.group(1), 16), text))
    return insns


COND = r"(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)"


def strip_it(block: list[str]) -> list[str]:
    """The block without IT instructions and with the condition dropped from the instructions
    they predicate (LLVM 14's Cortex-M7 model has no timing for IT): each then counts as
    executed, which is what the core's pipeline does with it in flight."""
    out, pending = [], 0
    for t in block:
        op, rest = (t.split(None, 1) + [""])[:2]
        if re.fullmatch(r"it[te]{0,3}", op):
            pending = len(op) - 1
            continue
        if pending:
            op = re.sub(COND + r"(\.w|\.n)?$", r"\2", op, count=1) if len(op) > 3 else op
            pending -= 1
        out.append(f"{op} {rest}".strip())
    return out


def mca_cycles(block: list[str], cpu: str, triple: str, mca: str) -> float:
    for attempt in (block, strip_it(block)):
        src = "\n".join(re.sub(r"0x[0-9a-f]+ <[^>]*>", "#0", t) for t in attempt) + "\n"
        p = subprocess.run([mca, f"-mtriple={triple}", f"-mcpu={cpu}", "-iterations=100"],
                           input=src, capture_output=True, text=True)
        m = re.search(r"Total Cycles:\s+(\d+)", p.stdout)
        if p.returncode == 0 and m:
            return int(m.group(1)) / 100.0
    raise RuntimeError(f"llvm-mca failed on:\n{src}\n{p.stderr}")


def is_branch(text: str) -> bool:
    op = text.split()[0]
    return (op.startswith(("b", "cb", "le", "wls", "dls", "pop", "ldm")) and op not in (
        "bic", "bic.w", "bics", "bfi", "bfc", "bkpt")) or "pc" in text.split(",")[0]


def estimate(per_addr: dict[int, float], insns: list[tuple[int, str]], cpu: str, triple: str,
             mca: str, blocks: list[tuple[int, float, float]] | None = None) -> float:
    """Sum of count x llvm-mca cycles over the straight blocks; with `blocks`, each block's
    (first address, executions per call, cycles per execution) is appended to it."""
    total, block, bcount, start = 0.0, [], None, 0

    def close() -> float:
        cyc = mca_cycles(block, cpu, triple, mca)
        if blocks is not None:
            blocks.append((start, bcount, cyc))
        return bcount * cyc

    for addr, text in insns + [(-1, "")]:
        c = per_addr.get(addr, 0.0)
        if block and (c != bcount or addr < 0):
            total += close()
            block = []
        if addr < 0:
            break
        if c > 0:
            if not block:
                start = addr
            block.append(text)
            bcount = c
            if is_branch(text):
                total += close()
                block = []
    return total


def functions(elf: str, nm: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of the image's functions (FUNC symbols, Thumb bit cleared)."""
    out = subprocess.run([nm, "-S", "--defined-only", elf], capture_output=True, text=True,
                         check=True).stdout
    funcs = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "Tt":
            a, n = int(f[0], 16) & ~1, int(f[1], 16)
            funcs.append((a, a + n, f[3]))
    return sorted(funcs)


def by_function(per_addr: dict[int, float], blocks: list[tuple[int, float, float]],
                funcs: list[tuple[int, int, str]]) -> dict[str, list[float]]:
    """Instructions and est. cycles per call summed per function: name -> [instructions,
    cycles]."""
    def name(addr: int) -> str:
        for a, b, n in funcs:
            if a <= addr < b:
                return n
        return "?"

    out: dict[str, list[float]] = {}
    for addr, c in per_addr.items():
        if c:
            out.setdefault(name(addr), [0.0, 0.0])[0] += c
    for start, count, cyc in blocks:
        out.setdefault(name(start), [0.0, 0.0])[1] += count * cyc
    return out


def map_sections(path: str) -> dict[str, int]:
    """Input sections of a GNU ld map file (-ffunction-sections / -fdata-sections: one per
    function or array) -> size in bytes."""
    out: dict[str, int] = {}
    pending = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^ (\.(?:text|rodata|data|bss)\.\S+)"
                         r"(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\S+)?\s*$", line)
            if m and m.group(2):
                out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(3), 16)
                pending = None
            elif m:
                pending = m.group(1)
            elif pending:
                m2 = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\S+", line)
                if m2:
                    out[pending] = out.get(pending, 0) + int(m2.group(2), 16)
                pending = None
    return out


def memory_table(cores: list[str], build: str, image: str, name: str, vectors: str) -> None:
    """Flash (the model's const arrays) and RAM (state and scratch, the kws_* arrays of
    bench_step.c) of vector NAME, from each core's linker map."""
    text = open(vectors).read()
    m = re.search(r'\{"' + re.escape(name) + r'", \{[^,]+, \d+, \d+, \d+, (v\d+_)w_ih', text)
    if not m:
        raise SystemExit(f"--memory: no vector {name!r} in {vectors}")
    prefix = m.group(1)
    print(f"\nMemory of {name} (from the linker map; bytes):\n")
    print("| core | W_ih + W_hh (flash) | biases, multipliers, shifts (flash) | model in flash "
          "| state h8 + s16 (RAM) | scratch (RAM) | state + scratch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in cores:
        core = spec.split(":")[0]
        secs = map_sections(os.path.join(build, core, image.replace(".elf", ".map")))
        model = {k.split(".")[-1][len(prefix):]: v for k, v in secs.items()
                 if k.startswith(".rodata." + prefix)}
        weights = model.get("w_ih", 0) + model.get("w_hh", 0)
        rest = sum(model.get(k, 0) for k in ("b_ih", "b_hh", "m_ih", "m_hh", "e_ih", "e_hh"))
        state = secs.get(".bss.kws_h8", 0) + secs.get(".bss.kws_s16", 0)
        scratch = secs.get(".bss.kws_scratch", 0)
        print(f"| {core} | {weights:,} | {rest:,} | {weights + rest:,} | {state} | {scratch} "
              f"| {state + scratch} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cores", nargs="+", help="CORE:MACHINE, e.g. cortex-m4:mps2-an386")
    ap.add_argument("--icount", required=True, help="the instruction-counting plugin (.so)")
    ap.add_argument("--qemu", default="qemu-system-arm")
    ap.add_argument("--build", default="build/mcu")
    ap.add_argument("--image", default="bench_s8.elf")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--mca", default="llvm-mca-14")
    ap.add_argument("--objdump", default="llvm-objdump-14")
    ap.add_argument("--nm", default="arm-none-eabi-nm")
    ap.add_argument("--functions", action="store_true",
                    help="also each work's instructions and est. cycles per function")
    ap.add_argument("--mhz", type=float, default=80.0)
    ap.add_argument("--only", default="", help="comma-separated prefixes of the works to run")
    ap.add_argument("--memory", default="", help="a vector name: its flash and RAM from the map")
    ap.add_argument("--vectors", default="", help="the int_vectors.h the image was built with")
    a = ap.parse_args()
    if not a.icount or not os.path.exists(a.icount):
        ap.error(f"--icount: the plugin's .so is required, got {a.icount!r} "
                 "(build it with /work/shared/tools/qemu-icount/build.sh DIR)")
    print(f"| core | work | instructions / call | est. cycles (llvm-mca) | est. us @ {a.mhz:g} MHz |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in a.cores:
            core, machine = spec.split(":")
            elf = os.path.join(a.build, core, a.image)
            works = run(a.qemu, machine, elf, "list", None, None).split()
            insns = disassemble(elf, core, a.objdump) if core in MCA_CPUS else []
            only = tuple(p for p in a.only.split(",") if p)
            for work in works:
                if only and not work.startswith(only):
                    continue
                h = []
                for reps in (1, 1 + a.reps):
                    path = os.path.join(tmp, f"{reps}.hist")
                    run(a.qemu, machine, elf, f"{work} {reps}", a.icount, path)
                    h.append(read_hist(path))
                per_addr = {k: (h[1].get(k, 0) - h[0].get(k, 0)) / a.reps for k in h[1]}
                count = sum(per_addr.values())
                cyc = us = "n/a"
                blocks: list[tuple[int, float, float]] = []
                if core in MCA_CPUS:
                    c = estimate(per_addr, insns, MCA_CPUS[core], TRIPLE[core], a.mca, blocks)
                    cyc, us = f"{c:,.0f}", f"{c / a.mhz:,.1f}"
                print(f"| {core} | {work} | {count:,.0f} | {cyc} | {us} |", flush=True)
                if a.functions:
                    per_fn = by_function(per_addr, blocks, functions(elf, a.nm))
                    for fn, (n, cy) in sorted(per_fn.items(), key=lambda kv: -kv[1][0]):
                        cyc = us = "n/a"
                        if core in MCA_CPUS:
                            cyc, us = f"{cy:,.0f}", f"{cy / a.mhz:,.1f}"
                        print(f"|   | {fn} | {n:,.0f} | {cyc} | {us} |")
    if a.memory:
        memory_table(a.cores, a.build, a.image, a.memory, a.vectors)


if __name__ == "__main__":
    main()
