"""The independent int8 / fp32 floors of floor.c beside rnncore's q8 GRU / LSTM step, per H.

For each cell and H (I = H) it builds floor.c with the C core (as ``compare_peers.py`` does),
compiles an ``rc.nn.GRU`` / ``rc.nn.LSTM`` to q8, saves it to a temporary ``.rnc`` and runs
``floor --model`` on it, which times in C: the independent floor (one G*H x 2H product: 3H x 2H
for a GRU, 4H x 2H for an LSTM; the best variant of this CPU),
rnncore's own GEMM kernel rows for the same products, and ``rnc_step`` (no Python). It then times
the same engine's ``stream.step`` from Python. Prints a Markdown table (min over all calls, the
median in brackets) and the ratios to the floor::

    PYTHONPATH=$PWD python3 benchmarks/peers/floor_table.py [--hidden 32,64,128,256,512]
        [--cells gru,lstm] [--json F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from compare_peers import build_floor  # noqa: E402
from machine import cpu_name  # noqa: E402


def python_step_times(eng, H: int, calls: int = 20000) -> tuple[float, float]:
    """(min, median) seconds of ``stream.step(x, out=buf)`` at batch 1, each call timed alone."""
    st = eng.stream(batch=1)
    x = np.random.default_rng(0).uniform(-1, 1, (1, H)).astype(np.float32)
    buf = np.empty((1, H), np.float32)
    for _ in range(200):
        st.step(x, out=buf)
    pc = time.perf_counter_ns
    over = np.median([-(pc() - pc()) for _ in range(2001)])
    t = np.empty(calls)
    for i in range(calls):
        t0 = pc()
        st.step(x, out=buf)
        t[i] = pc() - t0
    t = (t - over) * 1e-9
    return float(t.min()), float(np.median(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="32,64,128,256,512")
    ap.add_argument("--cells", default="gru,lstm")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    import rnncore as rc

    tmp = Path(tempfile.mkdtemp(prefix="rnncore-floor-"))
    exe, why = build_floor(tmp)
    if exe is None:
        sys.exit(f"floor.c did not build: {why}")
    rows = []
    for cell in args.cells.split(","):
        layer = {"gru": rc.nn.GRU, "lstm": rc.nn.LSTM}[cell]
        for H in (int(h) for h in args.hidden.split(",")):
            eng = rc.compile(layer(input_size=H, hidden_size=H), precision="q8")
            path = tmp / f"{cell}{H}.rnc"
            eng.save(path)
            r = subprocess.run([str(exe), "--cell", cell, "--hidden", str(H), "--model", str(path)],
                               capture_output=True, text=True, timeout=300, check=True)
            fl = json.loads(r.stdout)
            fl["python_step_min_us"], fl["python_step_us"] = (v * 1e6 for v in python_step_times(eng, H))
            fl["engine_isa"] = eng.isa
            rows.append(fl)
    f0 = rows[0]
    print(f"CPU: {cpu_name()}; floor variant {f0['floor_variant']}; rnncore q8 path {f0['isa']}; "
          "I = H, batch 1. Times in us: min over all calls [median].\n")
    print("| cell | H | int8 floor (one G*H x 2H product) | rnncore q8 GEMV rows (C) | rnncore q8 step (C) "
          "| rnncore q8 step (Python) | C step / floor | Python step / floor | fp32 floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in rows:
        fm = f["q8_gemv_min_us"]

        def mm(key: str, f=f) -> str:
            d = 3 if f[key] < 1 else 2
            return f"{f[key.replace('_us', '_min_us')]:.{d}f} [{f[key]:.{d}f}]"

        print(f"| {f['cell'].upper()} | {f['hidden']} | {mm('q8_gemv_us')} | {mm('rnncore_q8_gemv_us')} | "
              f"{mm('rnncore_step_us')} | "
              f"{mm('python_step_us')} | {f['rnncore_step_min_us'] / fm:.2f}x | "
              f"{f['python_step_min_us'] / fm:.2f}x | {mm('f32_gemv_us')} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
