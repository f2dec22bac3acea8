"""Where Silero VAD v6's q8 decision flips come from: the front-end in float64 (NumPy) with one
convolution's int8 weights and/or int8 input row at a time, the q8 engine's LSTM and head behind it.

For each configuration, on the three variants of pyannote-audio's ``sample.wav`` of
``bench_vad_q8.py`` (2811 frames) against onnxruntime: the flips of the p > 0.5 decision, the mean
and largest |p - p_ort|, the frames with |p - p_ort| > 0.05, and each convolution's output error
(RMS of the difference over RMS of the float64 output, before its ReLU / the LSTM).

* weights "int8": the file's per-row int8 weights times their scales (exact in float64);
* input "int8": the row quantised as the q8 engine does (one dynamic max-abs scale per step,
  ``rnncore.quant.scheme.quantize_activation``), then dequantised.

    python benchmarks/bench_vad_q8_layers.py [--seconds S]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from bench_vad_q8 import frames, more_variants, recording, silero_bytes, variants

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.rnc import read_rnc, write_rnc
from rnncore.quant.front import _window_index
from rnncore.quant.scheme import quantize_activation


def conv(rec: dict, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A frame_conv in float64: ``x (N, C_in*L)`` -> ``(N, C_out*L_out)``, weights ``w``."""
    ci, co, k, L = (int(rec[f]) for f in ("in_channels", "out_channels", "kernel_size", "frame_length"))
    idx, lout = _window_index(L, k, int(rec["stride"]), int(rec["dilation"]), int(rec["pad_left"]),
                              int(rec["pad_right"]), rec["padding_mode"] in ("reflect", 1))
    N = x.shape[0]
    xf = np.concatenate([x.reshape(N, ci, L), np.zeros((N, ci, 1))], axis=2)
    cols = xf[:, :, np.where(idx < 0, L, idx)]                       # (N, C_in, L_out, k)
    y = np.einsum("nclk,ock->nol", cols, w) + np.asarray(rec["tensors"]["bias"], np.float64)[None, :, None]
    return y.reshape(N, co * lout)


def dequantised_input(x: np.ndarray) -> np.ndarray:
    q, s = quantize_activation(x.astype(np.float32))
    return q.astype(np.float64) * s.astype(np.float64)[:, None]


def int8_weight(rec: dict) -> np.ndarray:
    """A q8 frame_conv record's int8 weights times their per-row scales, ``(C_out, C_in, k)`` float64."""
    t = rec["tensors"]
    return np.asarray(t["qweight"], np.float64) * np.asarray(t["scale"], np.float64)[:, None, None]


def run_front(d8: dict, d32: dict, x: np.ndarray,
              conv_i: Callable[[int, dict, dict, np.ndarray], np.ndarray]) -> tuple[np.ndarray, list]:
    """The front-end in float64, frame convolution ``i`` (q8 record ``r8``, f32 record ``r32``) on
    ``x (N, K)`` computed by ``conv_i(i, r8, r32, x)``. Returns the output and every convolution's
    output."""
    x = np.asarray(x, np.float64)
    outs = []
    for r8, r32 in zip(d8["front"], d32["front"], strict=True):
        if r8["kind"] == "frame_conv1d":
            x = conv_i(len(outs), r8, r32, x)
            outs.append(x)
        elif r8["kind"] == "magnitude":
            M = x.shape[1] // 2
            x = np.sqrt(x[:, :M] ** 2 + x[:, M:] ** 2)
        elif r8["kind"] == "relu":
            x = np.maximum(x, 0)
        else:
            raise ValueError(f"unexpected front-end record {r8['kind']}")
    return x, outs


def front(d8: dict, d32: dict, x: np.ndarray, wq: set, xq: set):
    """The front-end in float64; convolution ``i`` with int8 weights if ``i in wq``, an int8 input
    row if ``i in xq``. Returns the output and every convolution's output."""
    def conv_i(i, r8, r32, x):
        w = int8_weight(r8) if i in wq else np.asarray(r32["tensors"]["weight"], np.float64)
        return conv(r8, w, dequantised_input(x) if i in xq else x)

    return run_front(d8, d32, x, conv_i)


def setup(onnx: bytes, audio: np.ndarray, more: bool = False) -> tuple[dict, dict, rc.Engine, dict]:
    """Silero VAD v6 (``onnx``: its sequence graph) compiled q8 and f32 (their file dicts), the q8
    file's LSTM + head alone (an engine of 128 inputs), and for each variant of ``audio`` of
    ``bench_vad_q8.py`` (``more``: also the five the choice does not see) its frames ``(T, 576)``
    and onnxruntime's p ``(T,)``, by name."""
    import onnxruntime as ort

    g = from_onnx(onnx)
    d8, d32 = read_rnc(rc.compile(g, precision="q8").data), read_rnc(rc.compile(g).data)
    back = rc.Engine(write_rnc(dict(d8, front=[], input_size=128)))   # the q8 LSTM + head alone
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    z = np.zeros((1, 1, 128), np.float32)
    data = {}
    for name, a in {**variants(audio), **(more_variants(audio) if more else {})}.items():
        fr = frames(a)
        data[name] = (fr, sess.run(None, {"input": fr, "h": z, "c": z})[0].reshape(-1))
    return d8, d32, back, data


def recording_args(doc: str, more_options=None) -> tuple[np.ndarray, argparse.Namespace]:
    """The recording of ``bench_vad_q8.py``, or with ``--seconds S`` on the command line its first S
    seconds (a short run), and the parsed command line; ``doc``: the script's docstring, for
    ``--help``; ``more_options(parser)`` adds a script's own options."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help="only the first seconds of the recording")
    if more_options is not None:
        more_options(ap)
    args = ap.parse_args()
    audio = recording()
    return (audio if args.seconds is None else audio[:int(args.seconds * 16000)]), args


def recording_from_args(doc: str) -> np.ndarray:
    """:func:`recording_args`'s recording."""
    return recording_args(doc)[0]


def main() -> None:
    d8, d32, back, data = setup(silero_bytes(), recording_from_args(__doc__))
    n = 5
    every = set(range(n))
    configs = {"front-end float64 (the q8 LSTM + head alone)": (set(), set()),
               "every convolution int8 (weights and input row)": (every, every)}
    for i in range(n):
        configs[f"conv {i}: int8 weights and input"] = ({i}, {i})
        configs[f"conv {i}: int8 weights only"] = ({i}, set())
        configs[f"conv {i}: int8 input only"] = (set(), {i})
    configs["every input row int8, the weights float64"] = (set(), every)
    configs["every weight int8, the inputs float64"] = (every, set())
    configs["convs 2 and 3 float64, the others int8"] = (every - {2, 3}, every - {2, 3})
    print("| configuration | flips | mean | max | > 0.05 | conv output errors 0..4 (RMS rel.) |")
    print("|---|---|---|---|---|---|")
    for name, (wq, xq) in configs.items():
        flips, diffs, errs = 0, [], []
        for fr, p_ort in data.values():
            y, outs = front(d8, d32, fr, wq, xq)
            _, ref = front(d8, d32, fr, set(), set())
            p = back.run(y.astype(np.float32)[None])[0, :, 0]
            flips += int(((p > 0.5) != (p_ort > 0.5)).sum())
            diffs.append(np.abs(p - p_ort))
            errs.append([np.sum((o - r) ** 2) / np.sum(r ** 2) for o, r in zip(outs, ref, strict=True)])
        d = np.concatenate(diffs)
        rel = np.sqrt(np.mean(errs, axis=0))
        print(f"| {name} | {flips} | {d.mean():.4f} | {d.max():.3f} | {int((d > 0.05).sum())} | "
              + ", ".join(f"{e:.4f}" for e in rel) + " |")


if __name__ == "__main__":
    main()
