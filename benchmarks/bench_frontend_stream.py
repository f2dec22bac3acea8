"""Time of one streaming step of the NumPy reference: a VAD-shaped model against its recurrent layer alone.

The model is Silero-shaped: 576-sample frames -> FrameConv1d (the STFT by Conv: 2x65 filters of
128 taps, stride 64, reflect padding 64 on the right) -> Magnitude -> Conv1d(65*9 -> 64, k=3,
causal) -> ReLU -> GRU or LSTM(64 -> 64) -> Linear(64 -> 1) -> Sigmoid; and the log-mel variant
(LogMelSpectrogram(n_fft=400, hop=160, 40 mels) -> the same from the Conv1d on). Each row is the
median time of ``Sequential.stream`` on one frame (batch 1) over ``--steps`` steps, against the
median of the recurrent layer's own ``forward`` on one step with its state carried.

This is the reference (NumPy) and measures Python overhead as much as arithmetic; the issue's
"within 2x of the recurrent step" target is for the C engine.

    python benchmarks/bench_frontend_stream.py [--steps 300] [--dtype float32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from machine import cpu_name

from rnncore.nn import (
    GRU,
    LSTM,
    Conv1d,
    FrameConv1d,
    Linear,
    LogMelSpectrogram,
    Magnitude,
    ReLU,
    Sequential,
    Sigmoid,
)


def _median_step(fn, x, steps: int) -> float:
    times = []
    for t in range(steps):
        t0 = time.perf_counter()
        fn(x[:, t % x.shape[1]: t % x.shape[1] + 1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times[steps // 10:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    dt = args.dtype
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_name()}; dtype {dt}; batch 1; median of {args.steps} steps")
    print(f"{'model':<44}{'stream step':>14}{'recurrent step':>16}{'ratio':>8}")
    for cell in (GRU, LSTM):
        rec = cell(64, 64, dtype=dt, seed=3)
        fronts = {
            "frames 576 -> STFT-conv -> |.| -> Conv1d": (
                [FrameConv1d(1, 130, 128, frame_length=576, stride=64, padding=(0, 64),
                             padding_mode="reflect", bias=False, dtype=dt, seed=1), Magnitude(),
                 Conv1d(65 * 9, 64, 3, padding="causal", dtype=dt, seed=2)],
                rng.standard_normal((1, 64, 576))),
            "hop 160 -> log-mel(400, 40) -> Conv1d": (
                [LogMelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40, center=False, dtype=dt),
                 Conv1d(40, 64, 3, padding="causal", dtype=dt, seed=2)],
                rng.standard_normal((1, 64, 160))),
        }
        for name, (front, x) in fronts.items():
            x = x.astype(dt)
            model = Sequential(*front, ReLU(), rec, Linear(64, 1, dtype=dt, seed=4), Sigmoid())
            state = [model.stream_state(1)]

            def step(chunk, model=model, state=state):
                _, state[0] = model.stream(chunk, state[0])

            for t in range(8):                                    # fill the buffers
                step(x[:, t:t + 1])
            t_model = _median_step(step, x, args.steps)
            h = [rec.zero_state(1)]
            xr = rng.standard_normal((1, 64, 64)).astype(dt)

            def rstep(chunk, rec=rec, h=h):
                _, h[0] = rec.forward(chunk, state=h[0])

            t_rec = _median_step(rstep, xr, args.steps)
            print(f"{name + ' + ' + cell.__name__:<44}{t_model * 1e6:>11.0f} us{t_rec * 1e6:>13.0f} us"
                  f"{t_model / t_rec:>8.1f}")


if __name__ == "__main__":
    main()
