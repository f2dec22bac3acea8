"""Silero VAD v6: would a 16-bit-class product in the frame convolutions meet the q8 target
(at most 1 decision flip, p > 0.5, per 500 frames against onnxruntime)? A simulation, before
anything is built.

The front-end in float64 (NumPy), each frame convolution with its weights and its input row
quantised to ``b`` bits (or kept float64), dequantised, the q8 engine's LSTM and head behind it
(as ``bench_vad_q8_layers.py``):

* input row, ``b`` bits: one dynamic max-abs scale per step, as the q8 engine's int8 row,
  ``Q = 2**(b-1) - 1``, ``s = max|x| / Q``, ``q = rint(x / s)`` (TFLite's / CMSIS-NN's 16x8
  scheme has symmetric int16 activations; it takes a calibrated static scale, this is the
  data-free dynamic one);
* weights, ``b`` bits: one scale per output channel, ``s_w = max|W[o]| / Q``,
  ``Wq = rint(W / s_w)`` (b = 8: the file's own int8 weights).

Every configuration on the eight variants of pyannote-audio's ``sample.wav`` of
``bench_vad_q8.py`` (the three the choice sees and the five it does not; 7496 frames): flips per
variant, the total and per 500 frames, the mean and largest ``|p - p_ort|``, and the bytes of
the five convolutions' weights (float32: 4 per weight, 9 to 16 bits: 2, int8: 1).

    python benchmarks/bench_vad_q8_16x8.py [--seconds S] [--engine]

``--engine``: instead of the simulation, the C engine's compiles (``rc.compile(g, "q8", ...)``:
the all-int8 default, ``front_bits=16``, ``front_f32=[0, 1, 2, 3, 4]`` and ``[2, 3]``, and f32) on
the same variants, with their file sizes.
"""

from __future__ import annotations

import numpy as np
from bench_vad_q8 import silero_bytes
from bench_vad_q8_layers import conv, int8_weight, recording_args, run_front, setup

import rnncore as rc
from rnncore.io import from_onnx


def quantised_input(x: np.ndarray, bits: int | None) -> np.ndarray:
    """``x (N, K)`` with one dynamic max-abs scale per row, ``bits``-bit codes, dequantised."""
    if bits is None:
        return x
    Q = 2.0 ** (bits - 1) - 1
    m = np.max(np.abs(x), axis=1, keepdims=True)
    s = np.where(m > 0, m / Q, 1.0)
    return np.clip(np.rint(x / s), -Q, Q) * s


def quantised_weight(w32: np.ndarray, w8: np.ndarray, bits: int | None) -> np.ndarray:
    """``w (C_out, C_in, k)`` per output channel to ``bits`` bits, dequantised (8: the file's)."""
    if bits is None:
        return np.asarray(w32, np.float64)
    if bits == 8:
        return w8
    Q = 2.0 ** (bits - 1) - 1
    w = np.asarray(w32, np.float64)
    m = np.max(np.abs(w), axis=(1, 2), keepdims=True)
    s = np.where(m > 0, m / Q, 1.0)
    return np.clip(np.rint(w / s), -Q, Q) * s


def front(d8: dict, d32: dict, x: np.ndarray, bits: list) -> np.ndarray:
    """The front-end in float64; frame convolution ``i`` with ``bits[i] = (weight bits, input
    bits)`` (None: float64)."""
    def conv_i(i, r8, r32, x):
        wb, xb = bits[i]
        w = quantised_weight(r32["tensors"]["weight"], int8_weight(r8), wb)
        return conv(r8, w, quantised_input(x, xb))

    return run_front(d8, d32, x, conv_i)[0]


def configs(n: int = 5) -> dict:
    """name -> per-convolution (weight bits, input bits)."""
    def some(which, form, rest=(8, 8)):
        return [form if i in which else rest for i in range(n)]

    every = range(n)
    return {
        "front-end float64 (the floor: the q8 LSTM + head alone)": some(every, (None, None)),
        "every conv int8 x int8 (= the q8 engine today)": some(every, (8, 8)),
        "convs 2, 3 float64, the others int8 (= front_f32=[2, 3])": some({2, 3}, (None, None)),
        "every conv int16 input x int8 weight (16x8)": some(every, (8, 16)),
        "every conv int16 x int16": some(every, (16, 16)),
        "convs 1-4 16x8, the STFT int8": some({1, 2, 3, 4}, (8, 16)),
        "convs 2, 3 16x8, the others int8": some({2, 3}, (8, 16)),
        "convs 2, 3 int16 x int16, the others int8": some({2, 3}, (16, 16)),
        "convs 2, 3 int16 x int16, the others 16x8": some({2, 3}, (16, 16), (8, 16)),
        "convs 1-4 int16 x int16, the STFT 16x8": some({1, 2, 3, 4}, (16, 16), (8, 16)),
        "convs 1-4 int16 x int16, the STFT int8": some({1, 2, 3, 4}, (16, 16)),
        "every conv int8 input x int16 weight": some(every, (16, 8)),
        "every conv int12 x int12": some(every, (12, 12)),
        "every conv int16 input x int12 weight": some(every, (12, 16)),
        "every conv int16 input x float64 weight": some(every, (None, 16)),
    }


def main() -> None:
    audio, args = recording_args(__doc__, lambda ap: ap.add_argument(
        "--engine", action="store_true", help="the C engine's compiles instead of the simulation"))
    d8, d32, back, data = setup(silero_bytes(), audio, more=True)
    frames_all = sum(len(fr) for fr, _ in data.values())
    if args.engine:
        engine_table(from_onnx(silero_bytes()), data, frames_all)
        return
    print("| configuration (weight x input bits) | " + " | ".join(data) +
          f" | all {frames_all} frames (per 500) | mean | max | frame_conv weight bytes |")
    print("|---|" + "---|" * (len(data) + 4))
    sizes = [np.asarray(r["tensors"]["qweight"]).size for r in d8["front"] if r["kind"] == "frame_conv1d"]
    for name, bits in configs().items():
        flips, diffs = [], []
        for fr, p_ort in data.values():
            p = back.run(front(d8, d32, fr, bits).astype(np.float32)[None])[0, :, 0]
            flips.append(int(((p > 0.5) != (p_ort > 0.5)).sum()))
            diffs.append(np.abs(p - p_ort))
        d = np.concatenate(diffs)
        t = sum(flips)
        nbytes = sum(n * (4 if wb is None else (wb + 7) // 8) for n, (wb, _) in zip(sizes, bits, strict=True))
        print(f"| {name} | " + " | ".join(str(f) for f in flips) +
              f" | {t} ({t * 500 / frames_all:.2f}) | {d.mean():.4f} | {d.max():.3f} | {nbytes:,} |",
              flush=True)


def engine_table(g, data: dict, frames_all: int) -> None:
    """Flips per variant, mean and largest |p - p_ort| and file bytes of the C engine's compiles."""
    compiles = {
        "q8 (every frame_conv 8 x 8)": dict(precision="q8"),
        "q8 front_bits=16 (every frame_conv 16 x 16)": dict(precision="q8", front_bits=16),
        "q8 front_f32=[0, 1, 2, 3, 4]": dict(precision="q8", front_f32=[0, 1, 2, 3, 4]),
        "q8 front_f32=[2, 3]": dict(precision="q8", front_f32=[2, 3]),
        "f32": dict(precision="f32"),
    }
    print("| rc.compile(g, ...) | " + " | ".join(data) +
          f" | all {frames_all} frames (per 500) | mean | max | file bytes |")
    print("|---|" + "---|" * (len(data) + 4))
    for name, kw in compiles.items():
        e = rc.compile(g, **kw)
        flips, diffs = [], []
        for fr, p_ort in data.values():
            p = e.run(fr[None])[0, :, 0]
            flips.append(int(((p > 0.5) != (p_ort > 0.5)).sum()))
            diffs.append(np.abs(p - p_ort))
        d = np.concatenate(diffs)
        t = sum(flips)
        print(f"| {name} | " + " | ".join(str(f) for f in flips) +
              f" | {t} ({t * 500 / frames_all:.2f}) | {d.mean():.4f} | {d.max():.3f} | {len(e.data):,} |",
              flush=True)


if __name__ == "__main__":
    main()
