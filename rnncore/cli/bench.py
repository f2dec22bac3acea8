"""``rnncore bench MODEL.rnc``: latency and throughput of a model on the C core, and its accuracy.

What TFLite's ``benchmark_model`` and ``onnxruntime_perf_test`` measure, for a recurrent model:

* **streaming steps** (``stream.step(x, out=buf)``, the state carried): every call timed on its
  own (``time.perf_counter_ns``) after warm-up calls; min, p50, p90, p99, mean, max in
  microseconds, per batch size of the sweep; and the same step in a C loop (``Stream.time_step``:
  no Python between calls; the mean per step of the best of 5 windows) for float-input models;
* **whole sequences** (``engine.run``, T steps): every run timed, the same percentiles, and
  sequences / steps per second;
* **N streams on N threads** (one stream each, the first batch size of the sweep; the engine
  releases the GIL while it computes): wall time of the slowest thread, aggregate steps per
  second and the speed-up over one thread, from Python calls and from C loops;
* **peak RSS** of the process (``getrusage``), and what it was before the model was loaded;
* **accuracy on the same inputs**: a q8 model's outputs against the NumPy q8 reference (the
  C kernels' contract is bit-exactness) and against the f32 model (``--compare F32.rnc``, or the
  float model of its dequantised weights); an f32 model's against the float64 NumPy reference
  and against its q8 version (``--compare Q8.rnc``, or quantised here, with ``--calibration``
  for static scales). The maximum absolute error is reported.

Inputs are ``--input X.npy`` — ``(B, T, F)`` floats, ``(T, F)`` one sequence, ``(B, T)`` /
``(T,)`` token ids for a model with an embedding; rows are repeated for larger batches — or
random (N(0, 1) floats, uniform token ids; ``--seed``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

import numpy as np

from rnncore.cli._common import (
    CLIError,
    batch_list,
    int_list,
    load_engine,
    load_npy,
    non_negative_int,
    positive_float,
    positive_int,
)
from rnncore.cli.quantize import add_calibration_arguments, build, load_calibration


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .rnc file")
    p.add_argument("--input", default=None, metavar="X.npy",
                   help="inputs (B, T, F) / (T, F) floats or (B, T) / (T,) token ids (default: random)")
    p.add_argument("--lengths", default=None, metavar="L.npy",
                   help="valid steps per --input sequence (B,), for whole-sequence runs and the check")
    p.add_argument("--seq-len", type=positive_int, default=100, metavar="T",
                   help="steps per random sequence (default 100)")
    p.add_argument("--batch", type=batch_list, default=[1, 8, 64], metavar="B[,B...]",
                   help="batch sizes to sweep (default 1,8,64)")
    p.add_argument("--threads", type=int_list, default=None, metavar="N[,N...]",
                   help="thread counts, one stream per thread (default 1 and this machine's CPU count)")
    p.add_argument("--steps", type=positive_int, default=2000,
                   help="timed streaming steps per batch size and per thread (default 2000)")
    p.add_argument("--runs", type=positive_int, default=20,
                   help="timed whole-sequence runs per batch size (default 20)")
    p.add_argument("--min-time", type=positive_float, default=0.2, metavar="SECONDS",
                   help="each thread of the thread sweep steps at least this long (default 0.2)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=200,
                   help="untimed steps first (default 200)")
    p.add_argument("--warmup-runs", type=non_negative_int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--isa", default=None, help="force an ISA path (default: RNNCORE_ISA or the best here)")
    p.add_argument("--compare", default=None, metavar="OTHER.rnc",
                   help="the same model in the other precision, for the q8-vs-f32 check")
    add_calibration_arguments(p)
    p.add_argument("--no-check", action="store_true", help="skip the accuracy check")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)  # Linux: KiB, macOS: bytes


def stats_us(ns: np.ndarray) -> dict:
    """min, p50, p90, p99, mean, max (microseconds) of durations in nanoseconds."""
    a = np.asarray(ns, np.float64) / 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"min": float(a.min()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "mean": float(a.mean()), "max": float(a.max()), "n": int(a.size)}


# -- inputs -----------------------------------------------------------------------------------


def make_inputs(engine, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The bench inputs ``X`` (B, T, F) float32 or (B, T) int32 ids, their lengths (or None) and
    a description; B is at least the largest batch of the sweep (rows repeated)."""
    bmax = max(args.batch)
    if args.input is None:
        if args.lengths is not None:
            raise CLIError("--lengths needs --input")
        g = np.random.default_rng(args.seed)
        if engine.uses_ids:
            X = g.integers(0, engine._model.embed_num, (bmax, args.seq_len)).astype(np.int32)
            what = f"random token ids < {engine._model.embed_num}"
        else:
            X = g.standard_normal((bmax, args.seq_len, engine.input_size)).astype(np.float32)
            what = "random N(0, 1)"
        return X, None, f"{what}, T={args.seq_len}, seed {args.seed}"
    X = load_npy(args.input, "--input")
    if engine.uses_ids:
        if X.dtype.kind not in "iu":
            raise CLIError(f"--input {args.input}: expected integer token ids (B, T) for this model "
                           f"(it starts with an embedding), got dtype {X.dtype}")
        X = X[None] if X.ndim == 1 else X
        if X.ndim != 2:
            raise CLIError(f"--input {args.input}: expected token ids (B, T) or (T,), got shape {X.shape}")
        if X.size and (X.min() < 0 or X.max() >= engine._model.embed_num):
            raise CLIError(f"--input {args.input}: token ids must be in [0, {engine._model.embed_num}), "
                           f"got [{X.min()}, {X.max()}]")
        X = X.astype(np.int32)
    else:
        if X.dtype.kind not in "fiu":
            raise CLIError(f"--input {args.input}: expected real numbers, got dtype {X.dtype}")
        X = X[None] if X.ndim == 2 else X
        if X.ndim != 3 or X.shape[2] != engine.input_size:
            raise CLIError(f"--input {args.input}: expected shape (B, T, {engine.input_size}) or "
                           f"(T, {engine.input_size}) (the model's input size is {engine.input_size}), "
                           f"got {X.shape}")
        X = X.astype(np.float32)
        if not np.all(np.isfinite(X)):
            raise CLIError(f"--input {args.input}: contains NaN or Inf")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"--input {args.input}: no sequences or no steps (shape {X.shape})")
    lengths = None
    if args.lengths is not None:
        lengths = load_npy(args.lengths, "--lengths")
        if lengths.dtype.kind not in "iu" or lengths.shape != (X.shape[0],):
            raise CLIError(f"--lengths {args.lengths}: expected {X.shape[0]} integers (one per --input "
                           f"sequence), got shape {lengths.shape}, dtype {lengths.dtype}")
        if lengths.min() < 0 or lengths.max() > X.shape[1]:
            raise CLIError(f"--lengths {args.lengths}: expected values in [0, {X.shape[1]}], got "
                           f"[{lengths.min()}, {lengths.max()}]")
        lengths = lengths.astype(np.int64)
    return X, lengths, f"{args.input} {tuple(X.shape)}"


def rows(X: np.ndarray, lengths, b: int):
    """``b`` sequences of ``X`` (its rows repeated as needed), C-contiguous."""
    idx = np.arange(b) % X.shape[0]
    return np.ascontiguousarray(X[idx]), None if lengths is None else lengths[idx]


# -- measurements -----------------------------------------------------------------------------


def time_steps(engine, Xb: np.ndarray, n: int, warmup: int) -> tuple[np.ndarray, float | None]:
    """Per-call durations (ns) of ``n`` streaming steps of ``Xb``'s batch (its time steps in turn,
    state carried), and the mean seconds per step of the same in a C loop (None for token ids)."""
    b, T = Xb.shape[0], Xb.shape[1]
    s = engine.stream(b)
    xs = [np.ascontiguousarray(Xb[:, t]) for t in range(T)]
    out = np.empty((b, engine.output_size), np.float32)
    step, clock = s.step, time.perf_counter_ns
    for i in range(warmup):
        step(xs[i % T], out)
    ns = np.empty(n, np.int64)
    for i in range(n):
        t0 = clock()
        step(xs[i % T], out)
        ns[i] = clock() - t0
    # the C loop: the best of 5 windows of n / 5 steps (a window the OS interrupted is discarded)
    c_loop = None if engine.uses_ids else min(s.time_step(xs[0], out, max(1, n // 5)) for _ in range(5))
    return ns, c_loop


def time_runs(engine, Xb: np.ndarray, lengths, n: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        engine.run(Xb, lengths)
    ns = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        engine.run(Xb, lengths)
        ns[i] = clock() - t0
    return ns


def time_threads(engine, Xb: np.ndarray, nthreads: int, n: int, warmup: int, c_loop: bool) -> dict:
    """``nthreads`` threads, each with its own stream of ``Xb``'s batch, ``n`` steps each, started
    together. Returns the wall time (first start to last end) and every call's duration (ns);
    with ``c_loop`` the steps run as C loops (``time_step``), with no per-call durations."""
    b, T = Xb.shape[0], Xb.shape[1]
    streams = [engine.stream(b) for _ in range(nthreads)]
    xs = [np.ascontiguousarray(Xb[:, t]) for t in range(T)]
    outs = [np.empty((b, engine.output_size), np.float32) for _ in range(nthreads)]
    barrier = threading.Barrier(nthreads)
    starts, ends = [0] * nthreads, [0] * nthreads
    samples = [np.empty(0 if c_loop else n, np.int64) for _ in range(nthreads)]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            step, out, clock, ns = streams[k].step, outs[k], time.perf_counter_ns, samples[k]
            for i in range(warmup):
                step(xs[i % T], out)
            barrier.wait()
            starts[k] = clock()
            if c_loop:
                streams[k].time_step(xs[0], out, n)
            else:
                for i in range(n):
                    t0 = clock()
                    step(xs[i % T], out)
                    ns[i] = clock() - t0
            ends[k] = clock()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall = (max(ends) - min(starts)) / 1e9
    return {"wall_s": wall, "steps_per_s": nthreads * n * b / wall,
            "ns": None if c_loop else np.concatenate(samples)}


# -- accuracy -----------------------------------------------------------------------------------


def check(engine, data: bytes, X: np.ndarray, lengths, args: argparse.Namespace) -> dict:
    """This engine's outputs on ``X`` against the NumPy reference and against the other precision."""
    import rnncore as rc
    from rnncore.io.rnc import read_rnc
    from rnncore.quant.reference import float_forward, q8_forward, qmodel_from_rnc
    from rnncore.spec import spec_from_rnc

    d = read_rnc(data)
    y = engine.run(X, lengths)
    out: dict = {"inputs": list(X.shape)}
    other = None
    if args.compare is not None:
        _, other = load_engine(args.compare)
        want = "f32" if engine.precision != "f32" else "q8"
        if other.precision != want:
            raise CLIError(f"--compare {args.compare}: expected a {want} model (this one is "
                           f"{engine.precision}), got {other.precision}")
        if (other.input_size, other.output_size, other.uses_ids) != \
                (engine.input_size, engine.output_size, engine.uses_ids):
            raise CLIError(f"--compare {args.compare}: a different model ({other.describe()}; this one "
                           f"is {engine.describe()})")
    if engine.precision == "int8":  # fully-integer: the NumPy integer spec of the file, per sequence
        from rnncore.quant.integer import int_forward

        qm = d["int_model"]
        n = np.full(X.shape[0], X.shape[1]) if lengths is None else np.asarray(lengths)
        ref = np.zeros_like(y)
        for b in range(X.shape[0]):
            if n[b] > 0:
                r = int_forward(qm, X[b:b + 1, :n[b]].astype(np.float32))[0][0]
                if qm.last_step:
                    ref[b] = r
                else:
                    ref[b, :n[b]] = r
        out["vs_reference"] = {"reference": "NumPy integer spec (rnncore.quant.integer)",
                               "max_abs_err": float(np.abs(y - ref).max()),
                               "bit_exact": bool(np.array_equal(y, ref.astype(np.float32)))}
        if other is None:
            return out   # the file holds no float weights: --compare F32.rnc for the float model
        y32, y8 = other.run(X, lengths), y
        out["q8_vs_f32"] = {"other": f"f32 engine of {args.compare}",
                            "max_abs_err": float(np.abs(y8 - y32).max()),
                            "max_abs_f32_output": float(np.abs(y32).max())}
        if y32.ndim == 2 and y32.shape[1] > 1:
            out["q8_vs_f32"]["argmax_agreement"] = float(np.mean(y8.argmax(1) == y32.argmax(1)))
        return out
    if engine.precision != "f32":  # q8, q4: the NumPy quantised reference of the stored ints
        ref = q8_forward(qmodel_from_rnc(d), X, lengths)[0]
        out["vs_reference"] = {"reference": f"NumPy {engine.precision} reference (rnncore.quant), "
                                            "same integer weights",
                               "max_abs_err": float(np.abs(y - ref).max()),
                               "bit_exact": bool(np.array_equal(y, ref))}
        if other is None:
            other = rc.compile(spec_from_rnc(d), "f32")
            source = f"f32 engine of the dequantised {engine.precision} weights"
        else:
            source = f"f32 engine of {args.compare}"
        y32, y8 = other.run(X, lengths), y
    else:
        spec = spec_from_rnc(d)
        ref = float_forward(spec, X, lengths)[0]
        out["vs_reference"] = {"reference": "NumPy float64 reference",
                               "max_abs_err": float(np.abs(y - ref).max())}
        if other is None:
            cal = load_calibration(args, "q8")
            other = rc.Engine(build(spec, "q8", cal, args))
            source = ("q8 quantised here, " + (f"static scales from {args.calibration}" if cal is not None
                                                 else "dynamic scales"))
        else:
            source = f"q8 engine of {args.compare}"
        y32, y8 = y, other.run(X, lengths)
    out["q8_vs_f32"] = {"other": source, "max_abs_err": float(np.abs(y8 - y32).max()),
                        "max_abs_f32_output": float(np.abs(y32).max())}
    if y32.ndim == 2 and y32.shape[1] > 1:  # one vector per sequence (a classifier): same top-1?
        out["q8_vs_f32"]["argmax_agreement"] = float(np.mean(y8.argmax(1) == y32.argmax(1)))
    return out


# -- the command ----------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> dict:
    import rnncore as rc

    rss0 = peak_rss_bytes()
    data, engine = load_engine(args.model, args.isa)
    if args.calibration is not None and (engine.precision != "f32" or args.compare or args.no_check):
        why = ("the q8 side comes from --compare" if args.compare else "there is no check (--no-check)"
               if args.no_check else f"{args.model} is already {engine.precision}")
        raise CLIError(f"--calibration: it calibrates the q8 model the check quantises from an f32 model; "
                       f"here {why}")
    X, lengths, input_desc = make_inputs(engine, args)
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    res: dict = {"model": args.model, "describe": engine.describe(), "precision": engine.precision,
                 "file_bytes": len(data), "isa": engine.isa, "isa_available": rc.isa()["available"],
                 "cpu_count": os.cpu_count(), "input": input_desc, "seq_len": int(X.shape[1]),
                 "steps": args.steps, "runs": args.runs, "step": [], "run": [], "threads": []}
    for b in args.batch:
        Xb, lb = rows(X, lengths, b)
        if not engine.bidirectional:
            ns, c_loop = time_steps(engine, Xb, args.steps, args.warmup_steps)
            st = stats_us(ns)
            res["step"].append({"batch": b, "us": st, "c_loop_us": None if c_loop is None else c_loop * 1e6,
                                "steps_per_s": b / (st["mean"] / 1e6),
                                "state_bytes": engine.state_bytes(b)})
        ns = time_runs(engine, Xb, lb, args.runs, args.warmup_runs)
        st = stats_us(ns)
        T = Xb.shape[1]
        steps = int(lb.sum()) if lb is not None else b * T
        res["run"].append({"batch": b, "us": st, "sequences_per_s": b / (st["mean"] / 1e6),
                           "steps_per_s": steps / (st["mean"] / 1e6),
                           "scratch_bytes": engine.run_scratch_bytes(b, T)})
    if not engine.bidirectional:
        b0 = args.batch[0]
        Xb, _ = rows(X, None, b0)
        base = {}
        # long enough that starting the threads is noise: --min-time of one thread's steps
        one = time_steps(engine, Xb, min(args.steps, 500), args.warmup_steps)[0]
        n = max(args.steps, int(args.min_time / (np.median(one) / 1e9)))
        res["thread_steps"] = n
        for nt in threads:
            r = time_threads(engine, Xb, nt, n, args.warmup_steps, c_loop=False)
            entry = {"threads": nt, "batch": b0, "wall_ms": r["wall_s"] * 1e3,
                     "steps_per_s": r["steps_per_s"], "us": stats_us(r["ns"])}
            if not engine.uses_ids:
                rc_ = time_threads(engine, Xb, nt, n, 0, c_loop=True)
                entry["c_loop_steps_per_s"] = rc_["steps_per_s"]
            base.setdefault("py", entry["steps_per_s"])
            base.setdefault("c", entry.get("c_loop_steps_per_s"))
            entry["speedup"] = entry["steps_per_s"] / base["py"]
            if base["c"]:
                entry["c_loop_speedup"] = entry["c_loop_steps_per_s"] / base["c"]
            res["threads"].append(entry)
    res["check"] = None if args.no_check else check(engine, data, X, lengths, args)
    res["peak_rss_bytes"] = peak_rss_bytes()
    res["rss_before_model_bytes"] = rss0
    return res


def _rate(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.1f}"


def format_text(r: dict) -> str:
    o = [f"{r['model']}: {r['describe']}, {r['precision']}, {r['file_bytes']} bytes",
         f"ISA path {r['isa']} (available: {', '.join(r['isa_available'])}); {r['cpu_count']} CPUs; "
         f"input {r['input']}"]
    cols = f"{'min':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}"
    if r["step"]:
        o.append(f"streaming step (stream.step(x, out=buf), each of {r['steps']} calls timed), microseconds:")
        o.append(f"  {'batch':>5} {cols} {'C loop':>8} {'steps/s':>9}")
        for e in r["step"]:
            s = e["us"]
            c = "-" if e["c_loop_us"] is None else f"{e['c_loop_us']:.2f}"
            o.append(f"  {e['batch']:>5} {s['min']:>8.2f} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} "
                     f"{s['mean']:>8.2f} {c:>8} {_rate(e['steps_per_s']):>9}")
    o.append(f"whole sequences (engine.run, T={r['seq_len']}, {r['runs']} runs), microseconds:")
    o.append(f"  {'batch':>5} {cols} {'seq/s':>9} {'steps/s':>9}")
    for e in r["run"]:
        s = e["us"]
        o.append(f"  {e['batch']:>5} {s['min']:>8.1f} {s['p50']:>8.1f} {s['p90']:>8.1f} {s['p99']:>8.1f} "
                 f"{s['mean']:>8.1f} {_rate(e['sequences_per_s']):>9} {_rate(e['steps_per_s']):>9}")
    if r["threads"]:
        b0 = r["threads"][0]["batch"]
        o.append(f"N streams on N threads (batch {b0}, {r['thread_steps']} steps each; "
                 "Python calls / C loops):")
        o.append(f"  {'threads':>7} {'wall ms':>9} {'steps/s':>9} {'speedup':>7} {'p50 us':>8} {'p99 us':>8}"
                 f" {'C steps/s':>10} {'speedup':>7}")
        for e in r["threads"]:
            c = f"{_rate(e['c_loop_steps_per_s']):>10} {e['c_loop_speedup']:>6.2f}x" \
                if "c_loop_steps_per_s" in e else f"{'-':>10} {'-':>7}"
            o.append(f"  {e['threads']:>7} {e['wall_ms']:>9.1f} {_rate(e['steps_per_s']):>9} "
                     f"{e['speedup']:>6.2f}x {e['us']['p50']:>8.2f} {e['us']['p99']:>8.2f} {c}")
    o.append(f"peak RSS {r['peak_rss_bytes'] / 2**20:.1f} MiB "
             f"({r['rss_before_model_bytes'] / 2**20:.1f} MiB before the model was loaded)")
    ck = r["check"]
    if ck is not None:
        v = ck["vs_reference"]
        exact = "" if "bit_exact" not in v else " (bit-identical)" if v["bit_exact"] else \
            " (the C core's fast tanh/sigmoid, docs/q8-contract.md)"
        o.append(f"check on {ck['inputs'][0]} sequences of the input:")
        o.append(f"  {r['precision']} engine vs {v['reference']}: "
                 f"max abs error {v['max_abs_err']:.3g}{exact}")
        q = ck.get("q8_vs_f32")
        if q is not None:
            agree = "" if "argmax_agreement" not in q else \
                f"; same argmax on {q['argmax_agreement']:.2%} of sequences"
            o.append(f"  {'int8' if r['precision'] == 'int8' else 'q8'} vs f32 ({q['other']}): max abs "
                     f"error {q['max_abs_err']:.3g} (f32 outputs up to {q['max_abs_f32_output']:.3g}){agree}")
    return "\n".join(o)


def run(args: argparse.Namespace) -> None:
    try:
        r = bench(args)
    except MemoryError as e:
        raise CLIError(f"out of memory (batch sizes {args.batch}; try smaller ones): {e}") from e
    print(json.dumps(r, indent=2) if args.json else format_text(r))
