"""One streaming step of a written-out cell graph (``nn.GRUCell`` / ``nn.LSTMCell`` exported by
``torch.onnx``, ``(x, h[, c]) -> (y, h'[, c'])``, 64 features, 128 units, a Linear + sigmoid head):
onnxruntime (one thread, the state fed back through ``session.run``) against the compiled
engine's ``stream.step`` in f32 and q8. Process CPU time per step, min over rounds of 200 steps,
the three alternated round by round.

    PYTHONPATH=$PWD python3 benchmarks/bench_onnx_cell.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from machine import cpu_name

import rnncore as rc
from rnncore.io import from_onnx

F, H, STEPS = 64, 128, 200


class Cell(torch.nn.Module):
    def __init__(self, lstm: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = lstm
        self.cell = torch.nn.LSTMCell(F, H) if lstm else torch.nn.GRUCell(F, H)
        self.out = torch.nn.Linear(H, 1)

    def forward(self, x, *st):
        if self.lstm:
            h, c = self.cell(x, st)
            return torch.sigmoid(self.out(h)), h, c
        h = self.cell(x, st[0])
        return torch.sigmoid(self.out(h)), h


def bench(lstm: bool, X: np.ndarray, rounds: int) -> None:
    names = ["x", "h", "c"] if lstm else ["x", "h"]
    f = io.BytesIO()
    args = (torch.zeros(1, F),) + (torch.zeros(1, H),) * (len(names) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Cell(lstm).eval(), args, f, input_names=names,
                          output_names=["y", "hn", "cn"][:len(names)], opset_version=17, dynamo=False)
    blob = f.getvalue()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    g = from_onnx(blob, input_shapes={n: (1, F if n == "x" else H) for n in names})
    streams = {p: rc.compile(g, precision=p).stream() for p in ("f32", "q8")}

    def run_ort():
        st = [np.zeros((1, H), np.float32)] * (len(names) - 1)
        for x in X:
            out = sess.run(None, dict(zip(names, [x[None]] + st, strict=True)))
            st = out[1:]

    def run_stream(s):
        s.reset()
        for x in X:
            s.step(x[None])

    runs = {"onnxruntime": run_ort, "f32 stream.step": lambda: run_stream(streams["f32"]),
            "q8 stream.step": lambda: run_stream(streams["q8"])}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for k, fn in runs.items():
            t = time.process_time()
            fn()
            best[k] = min(best[k], (time.process_time() - t) / len(X))
    what = "nn.LSTMCell" if lstm else "nn.GRUCell"
    print(f"{what} {F}->{H}: " + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in best.items())
          + f"; onnxruntime / f32 {best['onnxruntime'] / best['f32 stream.step']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}; {STEPS} steps per round, min of {a.rounds} rounds, process CPU time")
    X = np.random.default_rng(1).standard_normal((STEPS, F)).astype(np.float32)
    for lstm in (False, True):
        bench(lstm, X, a.rounds)


if __name__ == "__main__":
    main()
