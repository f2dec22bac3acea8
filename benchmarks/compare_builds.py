"""Two builds of rnncore side by side: bit-equality of their outputs and their speed, interleaved.

    python benchmarks/compare_builds.py OLD_ROOT NEW_ROOT [--rounds 5] [--quick] [--cpu 1]
        [--clock wall|cpu] [--long T]

Each root is a checkout whose extension is built in place (``python setup.py build_ext
--inplace``). Each measurement runs in a child process importing that checkout's ``rnncore``,
pinned to one core (``--cpu``), old and new alternating for ``--rounds`` rounds; a case's figure is
its minimum over the rounds (the machine may be shared), the table gives new / old.

* bits: random models (RNN tanh/relu, GRU both forms, LSTM; 1-2 layers; uni/bidirectional; H not a
  multiple of 16), f32 and q8, every ISA path both builds run, batches 1, 2, 3, 4, 15, 16, 17, 64,
  random lengths, whole sequences and steps: SHA-256 of the outputs and final states must match;
* bits of long sequences: T and lengths just below, at and above the multiples of rnc_run's
  chunks of steps, every ISA, with and without lengths (outputs and final states);
* speed: the figures of benchmarks/bench_engine.py on the default (best) path: the step at batch
  1 in a C loop, and ``engine.run`` at batch 1/4/16/64 x T = 100, H = 32 ... 512, GRU and LSTM,
  q8 and f32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import timeit
import zlib

F32 = "float32"
HS = [32, 64, 128, 256, 512]
RUN_BATCHES = [1, 4, 16, 64]


def _extended(mode, i, h, **kw):
    """An ExtendedRecurrent (cell options: the variant cell) with random weights."""
    import numpy as np

    try:
        from rnncore.nn.extended import ExtendedRecurrent
    except ImportError:   # an old build (before issue 13) kept the layer in rnncore.io
        from rnncore.io.extended import ExtendedRecurrent

    m = ExtendedRecurrent(mode, i, h, dtype=F32, **kw)
    g = np.random.default_rng(h)
    for v in m.params.values():
        v[...] = g.standard_normal(v.shape) * 0.6
    return m


def _child_bits() -> dict:
    import numpy as np

    import rnncore as rc
    from rnncore import _engine

    isas = [t["name"] for t in _engine.isa_table() if t["available"]]
    out = {}
    rng = np.random.default_rng(0)
    kinds = ["rnn_tanh", "rnn_relu", "gru", "gru_rb", "lstm"]
    for case in range(40):
        kind = kinds[case % 5]
        layers, bidir = 1 + case % 2, case % 3 == 0
        i, h = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        h += h % 16 == 0
        if kind.startswith("rnn"):
            m = rc.nn.RNN(i, h, layers, nonlinearity=kind[4:], bidirectional=bidir, seed=case)
        elif kind.startswith("gru"):
            m = rc.nn.GRU(i, h, layers, bidirectional=bidir, reset_after=kind == "gru", seed=case)
        else:
            m = rc.nn.LSTM(i, h, layers, bidirectional=bidir, seed=case)
        for precision in ("f32", "q8"):
            eng = rc.compile(m, precision=precision)
            for b in (1, 2, 3, 4, 15, 16, 17, 64):
                t = int(rng.integers(1, 12))
                x = rng.standard_normal((b, t, i)).astype(F32)
                lengths = rng.integers(0, t + 1, b)
                for isa in isas:
                    eng.set_isa(isa)
                    y, st = eng.run(x, lengths, return_state=True)
                    parts = [y] + list(st if isinstance(st, tuple) else (st,))
                    if not bidir:
                        s = eng.stream(b)
                        parts += [s.step(x[:, k]).copy() for k in range(t)]
                    d = hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts))
                    out[f"{case}/{kind}/L{layers}/bi{int(bidir)}/{precision}/b{b}/{isa}"] = d.hexdigest()
    # the layers around the recurrent stack: embedding, last-step pooling (both forms), heads
    nn = rc.nn
    stacks = {
        "emb-lstm-head": lambda: nn.Sequential(nn.Embedding(30, 8, seed=1), nn.LSTM(8, 21, seed=2),
                                               nn.Linear(21, 5, seed=3)),
        "gru-last-head": lambda: nn.Sequential(nn.GRU(6, 19, num_layers=2, seed=4), nn.LastStep(),
                                               nn.Linear(19, 4, seed=5)),
        "bilstm-last": lambda: nn.Sequential(nn.LSTM(5, 17, bidirectional=True, seed=6),
                                             nn.LastStep(bidirectional=True)),
        "rnn-head": lambda: nn.Sequential(nn.RNN(7, 23, seed=7), nn.Linear(23, 3, seed=8)),
        # the variant cell (cell options): LSTM peepholes + clip, GRU r*h form, LSTM projection
        "opt-lstm-peep": lambda: _extended("LSTM", 6, 19, peepholes=True, clip=0.9),
        "opt-gru-rb": lambda: _extended("GRU", 6, 21, reset_after=False,
                                        activations=[("hardsigmoid", 0.2, 0.5), "tanh"]),
        "opt-lstm-proj": lambda: _extended("LSTM", 6, 18, proj_size=7),
    }
    for name, make in stacks.items():
        m = make()
        rng = np.random.default_rng(zlib.crc32(name.encode()))   # per model: a skipped model
        # (one the other build lacks) leaves the other models' inputs unchanged
        for precision in ("f32", "q8"):
            try:
                eng = rc.compile(m, precision=precision)
            except ValueError:   # a model kind this (older) build does not compile: no key, so
                continue         # main() reports it among the cases only one build has
            for b in (1, 2, 3, 5, 17):
                t = int(rng.integers(1, 12))
                lengths = rng.integers(0, t + 1, b)
                x = (rng.integers(0, 30, (b, t)).astype(np.int32) if name.startswith("emb")
                     else rng.standard_normal((b, t, eng.input_size)).astype(F32))
                for isa in isas:
                    eng.set_isa(isa)
                    y = eng.run(x, lengths)
                    parts = [y]
                    if "bi" not in name:
                        s = eng.stream(b)
                        parts += [s.step(x[:, k]).copy() for k in range(t)]
                    d = hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts))
                    out[f"{name}/{precision}/b{b}/{isa}"] = d.hexdigest()
    # long sequences: T and lengths around the multiples of rnc_run's chunks (128 steps below 4
    # sequences, 4096 // B from 4 on), every stack above and 2-layer bidirectional cells
    long_models = dict(stacks)
    long_models["bigru-2"] = lambda: nn.GRU(5, 19, num_layers=2, bidirectional=True, seed=9)
    long_models["bilstm-2"] = lambda: nn.LSTM(5, 17, num_layers=2, bidirectional=True, seed=10)
    long_models["birnn-relu-head"] = lambda: nn.Sequential(
        nn.RNN(4, 18, nonlinearity="relu", bidirectional=True, seed=11), nn.Linear(36, 3, seed=12))
    long_models["grurb"] = lambda: nn.GRU(6, 23, reset_after=False, seed=13)
    for name, make in long_models.items():
        m = make()
        rng = np.random.default_rng(zlib.crc32(b"long/" + name.encode()))
        for precision in ("f32", "q8"):
            try:
                eng = rc.compile(m, precision=precision)
            except ValueError:   # as above
                continue
            for b, t in ((1, 127), (1, 128), (1, 129), (2, 257), (3, 300), (4, 1025), (5, 1639),
                         (17, 482), (64, 129)):
                c = 128 if b < 4 else 4096 // b
                near = [n for k in range(1, t // c + 1) for n in (k * c - 1, k * c, k * c + 1)
                        if n <= t] + [t, 0]
                lengths = rng.choice(near, b)
                lengths[0] = t
                x = (rng.integers(0, 30, (b, t)).astype(np.int32) if name.startswith("emb")
                     else rng.standard_normal((b, t, eng.input_size)).astype(F32))
                for isa in isas:
                    eng.set_isa(isa)
                    for ln in (None, lengths):
                        y, st = eng.run(x, ln, return_state=True)
                        parts = [y] + list(st if isinstance(st, tuple) else (st,))
                        d = hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts))
                        form = "len" if ln is not None else "full"
                        out[f"long/{name}/{precision}/b{b}/T{t}/{form}/{isa}"] = d.hexdigest()
    return out


def _child_speed(quick: bool, clock: str = "wall", long_t: int = 0) -> dict:
    import time

    import numpy as np

    import rnncore as rc

    timer = time.thread_time if clock == "cpu" else time.perf_counter
    hs = [32, 128, 512] if quick else HS
    res = {}
    for cell in ("gru", "lstm"):
        for precision in ("q8", "f32"):
            for h in hs:
                m = rc.nn.GRU(h, h, seed=0) if cell == "gru" else rc.nn.LSTM(h, h, seed=0)
                eng = rc.compile(m, precision=precision)
                s = eng.stream(1)
                x = np.random.default_rng(0).standard_normal((1, h)).astype(F32)
                o = np.empty((1, eng.output_size), F32)
                per = s.time_step(x, o, 10)
                n = max(20, min(100000, int(0.02 / max(per, 1e-8))))
                res[f"step b1 {cell} {precision} H={h}"] = min(s.time_step(x, o, n) for _ in range(5))
                runs = [(b, 100) for b in RUN_BATCHES]
                if long_t:
                    runs += [(1, long_t), (3, long_t)]
                for b, t in runs:
                    xs = np.random.default_rng(1).standard_normal((b, t, h)).astype(F32)
                    eng.run(xs)
                    def run(eng=eng, xs=xs):
                        eng.run(xs)
                    once = timeit.timeit(run, number=1, timer=timer)
                    k = max(1, int(0.02 / max(once, 1e-7)))
                    res[f"run b{b} T={t} {cell} {precision} H={h}"] = min(
                        timeit.timeit(run, number=k, timer=timer) / k for _ in range(5))
    return res


def _spawn(root: str, what: str, cpu: int, quick: bool, clock: str = "wall", long_t: int = 0) -> dict:
    args = "" if what == "bits" else f"{quick}, {clock!r}, {long_t}"
    code = ("import sys, json, os; sys.path.insert(0, sys.argv[1]); "
            f"os.sched_setaffinity(0, {{{cpu}}}); "
            "import compare_builds as c; "
            f"print(json.dumps(c._child_{what}({args})))")
    env = {k: v for k, v in os.environ.items() if k not in ("RNNCORE_ISA", "PYTHONPATH")}
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
    env["OPENBLAS_NUM_THREADS"] = "1"
    r = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, env=env,
                       cwd=root)
    if r.returncode:
        raise SystemExit(f"{root}: {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=5, help="speed rounds (0: bits only)")
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time the runs by the wall clock or by the thread's CPU time (less "
                        "sensitive to other jobs preempting this one on a shared machine; the "
                        "step figures are the C loop's wall clock either way)")
    p.add_argument("--long", type=int, default=0, metavar="T",
                   help="also time runs of 1 and 3 sequences of T steps")
    p.add_argument("--no-bits", action="store_true")
    a = p.parse_args()
    from machine import cpu_name

    print(f"CPU: {cpu_name()}; pinned to core {a.cpu}")
    if not a.no_bits:
        b_old, b_new = _spawn(a.old, "bits", a.cpu, a.quick), _spawn(a.new, "bits", a.cpu, a.quick)
        common = sorted(set(b_old) & set(b_new))
        diff = [k for k in common if b_old[k] != b_new[k]]
        print(f"bits: {len(common)} (model, precision, batch, ISA) cases in both builds, "
              f"{len(diff)} differ" + (f": {diff[:10]}" if diff else " (all outputs and states identical)"))
        for which, only in (("old", set(b_old) - set(b_new)), ("new", set(b_new) - set(b_old))):
            if only:   # a model kind or an ISA one build lacks
                models = sorted({k.rsplit("/", 1)[0].split("/b")[0] for k in only})
                print(f"  {len(only)} cases only in the {which} build: {', '.join(models[:12])}")
    if a.rounds < 1:
        return
    best: dict = {"old": {}, "new": {}}
    for r in range(a.rounds):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            got = _spawn(getattr(a, which), "speed", a.cpu, a.quick, a.clock, a.long)
            for k, v in got.items():
                best[which][k] = min(v, best[which].get(k, v))
    print(f"{'case':<36} {'old us':>10} {'new us':>10} {'new/old':>8}")
    for k in best["old"]:
        o, n = best["old"][k], best["new"][k]
        print(f"{k:<36} {o * 1e6:10.2f} {n * 1e6:10.2f} {n / o:8.3f}")
    for label, keys in (("", list(best["old"])), (" (run)", [k for k in best["old"] if k.startswith("run")])):
        r = sorted(best["new"][k] / best["old"][k] for k in keys)
        if r:
            print(f"new/old over {len(r)} cases{label}: min {r[0]:.3f}, median {r[len(r) // 2]:.3f}, "
                  f"max {r[-1]:.3f}")


if __name__ == "__main__":
    main()
