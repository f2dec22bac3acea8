"""Time of one streaming step of the C engine (f32) from Python with a log-mel front-end (record
kind 13), against the recurrent layer and head alone.

Rows: the VAD showcase's model (examples/vad_espeak.py: 256-sample frames at 11025 Hz -> log-mel,
32 mels -> 1x1 FrameConv1d(32 -> 32) -> ReLU -> GRU(48) -> Linear(48 -> 1)) and a 16-kHz
keyword-spotting shape (n_fft 400 = 25 ms, 40 mels -> GRU(64) -> Linear(64 -> 12)), the same with
the 25 ms window in n_fft 512; each against
the same model without its front-end (the GRU and the head, the same weights). ``Stream.step(x,
out=out)`` on one frame (batch 1): the minimum over ``--repeat`` runs of the median of ``--steps``
steps (the machine is shared); the ratio of the two is taken within each run and the median
ratio printed. Also ``engine.run`` per frame in CPU time (the minimum of 5). Weights are untrained
(timing does not depend on them).

    python benchmarks/bench_engine_logmel.py [--steps 2000] [--repeat 5] [--isa avx512vnni]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_engine_frontend import median_step
from machine import cpu_name

import rnncore as rc

nn = rc.nn


def models() -> dict[str, tuple[nn.Sequential, int]]:
    """name -> (the whole model, the index where the recurrent layer starts)."""
    vad = nn.Sequential(
        nn.LogMelSpectrogram(11025, n_fft=256, hop_length=128, n_mels=32, f_min=50.0, center=False),
        nn.FrameConv1d(32, 32, 1, frame_length=1, seed=0), nn.ReLU(),
        nn.GRU(32, 48, seed=1), nn.Linear(48, 1, seed=2))
    kws = nn.Sequential(
        nn.LogMelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40, center=False),
        nn.GRU(40, 64, seed=3), nn.Linear(64, 12, seed=4))
    kws512 = nn.Sequential(
        nn.LogMelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160, n_mels=40, center=False),
        nn.GRU(40, 64, seed=3), nn.Linear(64, 12, seed=4))
    return {"vad showcase (n_fft 256, 32 mels, GRU 48)": (vad, 3),
            "kws shape (n_fft 400, 40 mels, GRU 64)": (kws, 1),
            "kws shape (n_fft 512, 25 ms window, 40 mels, GRU 64)": (kws512, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--isa", default=None, help="an ISA path (rc.isa()); default: the best")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"# {cpu_name()}, f32, batch 1, min over {args.repeat} runs of the median of {args.steps} steps")
    for name, (m, k) in models().items():
        whole, tail = rc.compile(m), rc.compile(nn.Sequential(*list(m)[k:]))
        if args.isa:
            whole.set_isa(args.isa)
            tail.set_isa(args.isa)
        x = (rng.standard_normal((1, whole.input_size)) * 0.1).astype(np.float32)
        xt = (rng.standard_normal((1, tail.input_size))).astype(np.float32)
        out = np.empty((1, whole.output_size), np.float32)
        tw, tt, ratio = [], [], []
        for _ in range(args.repeat):
            tw.append(median_step(whole.stream(), x, out, args.steps))
            tt.append(median_step(tail.stream(), xt, out, args.steps))
            ratio.append(tw[-1] / tt[-1])
        X = (rng.standard_normal((1, 500, whole.input_size)) * 0.1).astype(np.float32)
        t_run = []
        for _ in range(5):   # CPU time of this process: a shared machine's other load is not counted
            t0 = time.process_time()
            whole.run(X)
            t_run.append(time.process_time() - t0)
        print(f"{name}  [{whole.isa}]")
        print(f"  whole model step       {min(tw) * 1e6:8.2f} us   ({whole.describe()})")
        print(f"  recurrent + head step  {min(tt) * 1e6:8.2f} us   ({tail.describe()})")
        print(f"  ratio                  {float(np.median(ratio)):8.2f}x")
        print(f"  whole model run/frame  {min(t_run) / 500 * 1e6:8.2f} us (500 frames, CPU time)")


if __name__ == "__main__":
    main()
