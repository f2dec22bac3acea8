"""rnncore's own engine figures, per ISA path (pytest-benchmark; not part of the test run).

    python -m pytest benchmarks/bench_engine.py -q -s          # or: python benchmarks/bench_engine.py
    RNNCORE_BENCH_QUICK=1 ...                                  # fewer sizes, shorter runs
    python benchmarks/bench_engine.py --plot step_latency.png  # + the step latency against H (matplotlib)
                                                               # (under pytest: RNNCORE_BENCH_PLOT=path)

Measured, one thread, every ISA path this CPU runs:

* streaming step, batch 1, GRU and LSTM, H = 32 ... 512 (input size = H), f32 and q8:
  ``stream.step(x, out)`` through Python, and the same step in a C loop (``time_step``);
* whole sequences T = 100 at batch 1 and batch 64 (``engine.run``);
* Python call overhead: ``step(x, out)`` at H = 4 minus the C loop's time per step;
* the fraction of this machine's multiply-accumulate peak reached by the step (C loop), with
  the peak measured in the same run by tight loops in the extension (AVX2 int8:
  vpmaddubsw + vpmaddwd + vpaddd = 32 MACs with the weights loaded from L1, as a GEMV streams
  them; AVX2 f32: 8-wide FMA, the better of an L1-load loop and a register-only loop;
  AVX-512 VNNI: vpdpbusd = 64 MACs; AVX-512 f32: 16-wide FMA), at the start and the end of the
  run (the larger counts). A step does G*H*(I + H) MACs (G = 3 GRU, 4 LSTM).

A table is printed at the end (with the CPU model); ratios compare only within one run.
"""

from __future__ import annotations

import os
import timeit

import numpy as np
import pytest
from machine import cpu_name

import rnncore as rc
from rnncore import _engine, _kernels

QUICK = bool(os.environ.get("RNNCORE_BENCH_QUICK"))
PLOT = os.environ.get("RNNCORE_BENCH_PLOT")
HS = [32, 128, 256] if QUICK else [32, 64, 128, 256, 512]
SEQ_HS = [64, 256]
ISAS = [t["name"] for t in _engine.isa_table() if t["available"]]
STEP_ISAS = sorted({k["isa"] for k in _kernels.kernels() if k["op"].endswith("_step")} & set(ISAS),
                   key=ISAS.index)
RESULTS: dict = {"step": {}, "c_step": {}, "seq": {}, "bytes": {}}
F32 = np.float32


_ENGINES: dict = {}


def engine(cell: str, h: int, precision: str, i: int | None = None):
    key = (cell, h, precision, i)
    if key not in _ENGINES:
        i = h if i is None else i
        m = rc.nn.GRU(i, h, seed=0) if cell == "gru" else rc.nn.LSTM(i, h, seed=0)
        _ENGINES[key] = rc.compile(m, precision=precision)
    return _ENGINES[key]


def macs(cell: str, h: int, i: int) -> int:
    return (3 if cell == "gru" else 4) * h * (i + h)


def c_time_step(eng, isa: str, batch: int = 1, n: int | None = None) -> float:
    """Seconds per step in a C loop (min of 9 short windows: the machine may be shared)."""
    eng.set_isa(isa)
    s = eng.stream(batch)
    x = np.random.default_rng(0).standard_normal((batch, eng.input_size)).astype(F32)
    out = np.empty((batch, eng.output_size), F32)
    per = s.time_step(x, out, 10)
    n = n or max(20, min(100000, int(0.02 / max(per, 1e-8))))
    return min(s.time_step(x, out, n) for _ in range(9))


def test_00_peaks_first():
    _measure_peaks()


@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("isa", STEP_ISAS)
def test_step_batch1(benchmark, isa, cell, precision, h):
    eng = engine(cell, h, precision)
    eng.set_isa(isa)
    s = eng.stream(1)
    x = np.random.default_rng(0).standard_normal((1, h)).astype(F32)
    out = np.empty((1, eng.output_size), F32)
    benchmark.extra_info.update(isa=isa, cell=cell, precision=precision, H=h)
    benchmark(s.step, x, out)
    RESULTS["step"][(isa, cell, precision, h)] = benchmark.stats.stats.min
    RESULTS["c_step"][(isa, cell, precision, h)] = c_time_step(eng, isa)
    RESULTS["bytes"][(cell, precision, h)] = eng.nbytes


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("h", SEQ_HS)
@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("isa", STEP_ISAS)
def test_sequence_T100(benchmark, isa, cell, precision, h, batch):
    eng = engine(cell, h, precision)
    eng.set_isa(isa)
    x = np.random.default_rng(1).standard_normal((batch, 100, h)).astype(F32)
    benchmark.extra_info.update(isa=isa, cell=cell, precision=precision, H=h, batch=batch)
    benchmark.pedantic(eng.run, args=(x,), rounds=3 if batch == 64 else 20, iterations=1, warmup_rounds=1)
    RESULTS["seq"][(isa, cell, precision, h, batch)] = benchmark.stats.stats.min


def _overhead(isa: str, precision: str) -> tuple[float, float, float]:
    eng = engine("gru", 4, precision)
    eng.set_isa(isa)
    s = eng.stream(1)
    x = np.ones((1, 4), F32)
    out = np.empty((1, 4), F32)
    step = s.step
    t = timeit.Timer("step(x, out)", globals={"step": step, "x": x, "out": out})
    base = timeit.Timer("pass")
    n = 5000
    py = c = base_t = float("inf")
    for _ in range(40):  # interleaved, min of each: robust to other load on the machine
        py = min(py, t.timeit(n) / n)
        base_t = min(base_t, base.timeit(n) / n)
        c = min(c, s.time_step(x, out, n))
    py -= base_t
    return py, c, py - c


def test_targets_interleaved():
    """The issue-8 target figures measured interleaved (f32 step, q8 step, peaks in turn, 15
    rounds; min time / max peak), so that other load on a shared machine hits all alike."""
    if "avx2" not in STEP_ISAS:
        return
    rows = {}
    for cell in ("gru", "lstm"):
        for h in (256, 512):
            tf = tq = float("inf")
            pi = pf = 0.0
            streams = {}
            for p in ("f32", "q8"):
                eng = engine(cell, h, p)
                eng.set_isa("avx2")
                s = eng.stream(1)
                streams[p] = (s, np.ones((1, h), F32), np.empty((1, h), F32))
            n = 300 if h == 256 else 100
            for _ in range(15):
                tf = min(tf, streams["f32"][0].time_step(streams["f32"][1], streams["f32"][2], n))
                tq = min(tq, streams["q8"][0].time_step(streams["q8"][1], streams["q8"][2], n))
                pi = max(pi, _kernels.peak_macs("i8_avx2", 0.01))
                pf = max(pf, _kernels.peak_macs("f32_avx2", 0.01), _kernels.peak_macs("f32_avx2_reg", 0.01))
            rows[(cell, h)] = (tf, tq, pi, pf)
    RESULTS["targets"] = rows


def test_python_overhead():
    RESULTS["overhead"] = {(isa, p): _overhead(isa, p) for isa in STEP_ISAS for p in ("f32", "q8")}


PEAK_KINDS = ("i8_avx2", "f32_avx2", "f32_avx2_reg", "i8_avx512", "i8_avx512vnni", "f32_avx512",
              "f32_avx512_reg")


def _measure_peaks() -> None:
    """Peaks at the start and the end of the run; the larger counts (the machine may be shared)."""
    old = RESULTS.setdefault("peaks", {})
    for k in PEAK_KINDS:
        old[k] = max(old.get(k, 0.0), _kernels.peak_macs(k))


def test_zz_print_table(capsys):
    _measure_peaks()
    peaks = dict(RESULTS["peaks"])
    peaks["f32_avx2"] = max(peaks.pop("f32_avx2"), peaks.pop("f32_avx2_reg"))
    # a wider path can always run the narrower one's loop: its peak is at least that
    peaks["f32_avx512"] = max(peaks.pop("f32_avx512"), peaks.pop("f32_avx512_reg"), peaks["f32_avx2"])
    peaks["i8_avx512"] = max(peaks["i8_avx512"], peaks["i8_avx2"])
    peaks["i8_avx512vnni"] = max(peaks["i8_avx512vnni"], peaks["i8_avx512"])
    peak_for = {("avx2", "q8"): peaks["i8_avx2"], ("avx2", "f32"): peaks["f32_avx2"],
                ("avx512", "f32"): peaks["f32_avx512"], ("avx512", "q8"): peaks["i8_avx512"],
                ("avx512vnni", "q8"): peaks["i8_avx512vnni"], ("avx512vnni", "f32"): peaks["f32_avx512"]}
    lines = [f"CPU: {cpu_name()}   rnncore ISA paths available: {ISAS}; step kernels: {STEP_ISAS}",
             "peak MAC/s (measured now): " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in peaks.items() if v),
             "",
             "streaming step, batch 1, I = H "
             "(us per step: Python step(x, out) / C loop; MAC rate; % of peak)",
             f"{'isa':<11}{'cell':<5}{'H':>5} | {'f32 py':>8}{'f32 C':>8}{'GMAC/s':>7}{'%pk':>5} | "
             f"{'q8 py':>8}{'q8 C':>8}{'GMAC/s':>7}{'%pk':>5} | {'f32/q8':>6}"]
    for isa in STEP_ISAS:
        for cell in ("gru", "lstm"):
            for h in HS:
                row = f"{isa:<11}{cell:<5}{h:>5} |"
                tc = {}
                for p in ("f32", "q8"):
                    key = (isa, cell, p, h)
                    if key not in RESULTS["step"]:
                        row += " " * 28 + " |"
                        continue
                    tp, tc[p] = RESULTS["step"][key], RESULTS["c_step"][key]
                    rate = macs(cell, h, h) / tc[p]
                    pk = peak_for.get((isa, p))
                    row += f"{tp * 1e6:8.2f}{tc[p] * 1e6:8.2f}{rate / 1e9:7.1f}"
                    row += f"{100 * rate / pk:5.0f}" if pk else "    -"
                    row += " |"
                if len(tc) == 2:
                    row += f"{tc['f32'] / tc['q8']:6.2f}x"
                lines.append(row)
    lines += ["", "whole sequences T = 100 (ms per call, engine.run)",
              f"{'isa':<11}{'cell':<5}{'H':>5}{'batch':>6} | {'f32':>9}{'q8':>9}"]
    for isa in STEP_ISAS:
        for cell in ("gru", "lstm"):
            for h in SEQ_HS:
                for b in (1, 64):
                    f = RESULTS["seq"].get((isa, cell, "f32", h, b))
                    q = RESULTS["seq"].get((isa, cell, "q8", h, b))
                    if f is None and q is None:
                        continue
                    lines.append(f"{isa:<11}{cell:<5}{h:>5}{b:>6} | "
                                 f"{(f or 0) * 1e3:9.3f}{(q or 0) * 1e3:9.3f}")
    if "targets" in RESULTS:
        lines += ["", "issue-8 targets, AVX2 path, batch 1, I = H, interleaved (C loop, us per step)",
                  f"{'cell':<5}{'H':>5} | {'f32':>8}{'q8':>8}{'f32/q8':>8} | {'q8 GMAC/s':>10}{'i8 peak':>9}"
                  f"{'% i8':>6} | {'f32 GMAC/s':>11}{'f32 peak':>9}{'% f32':>6}"]
        for (cell, h), (tf, tq, pi, pf) in RESULTS["targets"].items():
            m = macs(cell, h, h)
            lines.append(f"{cell:<5}{h:>5} | {tf * 1e6:8.2f}{tq * 1e6:8.2f}{tf / tq:7.2f}x | "
                         f"{m / tq / 1e9:10.1f}{pi / 1e9:9.1f}{100 * m / tq / pi:6.0f} | "
                         f"{m / tf / 1e9:11.1f}{pf / 1e9:9.1f}{100 * m / tf / pf:6.0f}")
    if "overhead" in RESULTS:
        lines += ["", "Python call overhead, GRU H=4 batch 1 (us): "
                  "step(x, out) via Python / C loop / difference"]
        for (isa, p), (py, c, d) in RESULTS["overhead"].items():
            lines.append(f"  {isa:<11}{p:<4} {py * 1e6:7.3f} {c * 1e6:7.3f} {d * 1e6:7.3f}")
    if RESULTS["bytes"]:
        lines += ["", "model bytes (q8 / f32)"]
        for cell in ("gru", "lstm"):
            for h in HS:
                f, q = RESULTS["bytes"].get((cell, "f32", h)), RESULTS["bytes"].get((cell, "q8", h))
                if f and q:
                    lines.append(f"  {cell:<5}{h:>5}  f32 {f:>9}  q8 {q:>9}  ratio {q / f:.3f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        if PLOT:
            plot_step_latency(PLOT)
            print(f"wrote {PLOT}")


def plot_step_latency(path: str) -> None:
    """The C-loop step latency (batch 1, I = H) against H: a panel per cell, a line per ISA and precision."""
    series: dict = {}
    for (isa, cell, p, h), t in RESULTS["c_step"].items():
        series.setdefault(cell.upper(), {}).setdefault(f"{p} {isa}", {})[h] = t
    rc.plot.latency(series, path, panel="panels", ylabel="step latency, batch 1, C loop (us, log scale)",
                    xlabel="hidden size H (= input size)",
                    title=f"rnncore streaming step, one thread: {cpu_name()}")


if __name__ == "__main__":
    import sys

    if "--plot" in sys.argv:
        os.environ["RNNCORE_BENCH_PLOT"] = sys.argv[sys.argv.index("--plot") + 1]
        PLOT = os.environ["RNNCORE_BENCH_PLOT"]
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider",
                                  "--benchmark-min-time=0.02", "--benchmark-max-time=0.3",
                                  "--benchmark-columns=min,median,rounds"]))
