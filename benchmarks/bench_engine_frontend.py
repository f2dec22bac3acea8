"""Time of one streaming step of the C engine (f32) from Python: a VAD model against its recurrent
layer alone.

Rows: Silero VAD v6 (its ONNX sequence graph lowered by ``rc.compile(from_onnx(...))``: the STFT
as a 258 x 256 frame convolution over 4 positions, its magnitude, four frame convolutions with
ReLU, LSTM(128), ReLU, Linear(128 -> 1), Sigmoid), and that model's LSTM(128) compiled alone (the
recurrent layer's own step, the same weights); ``Stream.step(x, out=out)`` on one frame (batch 1),
the median over ``--steps`` steps after a warm-up, and the ratio of the two (and of their
multiply-adds). Also the whole sequence (``engine.run``) per frame, in CPU time.

    python benchmarks/bench_engine_frontend.py [--steps 2000] [--isa avx512vnni] [--precision q8]

``--precision q8``: both models in q8 (the frame convolutions int8, docs/q8-contract.md);
``--front-f32 2 3``: with ``--precision q8``, those frame convolutions kept in float32;
``--front-bits 16``: with ``--precision q8``, the frame convolutions 16 x 16 (rc.compile's front_bits);
``--profile``: also the step time of the model cut after each front-end record (its front-end
prefix alone, a 1-unit LSTM behind it), to see where the front-end's time goes.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import time

import numpy as np
from machine import cpu_name

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.onnx_import._lower import lower_graph

# multiply-adds per frame: the STFT 258 x 256 taps x 4 positions, the encoder convolutions
# 128 x 387 x 4, 64 x 384 x 2, 64 x 192, 128 x 192, the LSTM 4 x 128 x (128 + 128), the head 128
MACS_LSTM = 4 * 128 * 256
MACS_VAD = 258 * 256 * 4 + 128 * 387 * 4 + 64 * 384 * 2 + 64 * 192 + 128 * 192 + MACS_LSTM + 128


def median_step(stream, x, out, steps: int) -> float:
    """Seconds of one ``stream.step(x, out=out)``: the median of ``steps`` after 50 to warm up."""
    for _ in range(50):
        stream.step(x, out=out)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        stream.step(x, out=out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--isa", default=None, help="an ISA path (rc.isa()); default: the best")
    ap.add_argument("--precision", default="f32", choices=["f32", "q8"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--front-f32", type=int, nargs="*", default=None, metavar="N",
                    help="q8: the frame_convs (0 = the STFT) kept in float32 (rc.compile's front_f32)")
    ap.add_argument("--front-bits", type=int, default=8, choices=[8, 16],
                    help="q8: the frame_convs' weight and input code bits (rc.compile's front_bits)")
    args = ap.parse_args()
    spec = importlib.util.find_spec("silero_vad")
    if spec is None:
        raise SystemExit("silero_vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    path = pathlib.Path(spec.origin).parent / "data" / "silero_vad_16k_sequence.onnx"
    g = from_onnx(path.read_bytes())
    model, _ = lower_graph(g)
    vad = rc.compile(g, precision=args.precision, front_f32=args.front_f32, front_bits=args.front_bits)
    lstm = rc.compile([m for m in model.children() if type(m[1]).__name__ == "LSTM"][0][1],
                      precision=args.precision)
    if args.isa:
        vad.set_isa(args.isa)
        lstm.set_isa(args.isa)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 576)) * 0.1).astype(np.float32)
    xh = (rng.standard_normal((1, 128)) * 0.5).astype(np.float32)
    t_vad = median_step(vad.stream(), x, np.empty((1, 1), np.float32), args.steps)
    t_lstm = median_step(lstm.stream(), xh, np.empty((1, 128), np.float32), args.steps)
    X = (rng.standard_normal((1, 500, 576)) * 0.1).astype(np.float32)
    vad.run(X)
    t_run = []
    for _ in range(5):   # CPU time of this process: a shared machine's other load is not counted
        t0 = time.process_time()
        vad.run(X)
        t_run.append(time.process_time() - t0)
    t_run = min(t_run) / 500
    kept = f" (frame_convs {args.front_f32} f32)" if args.front_f32 else ""
    kept += " (frame_convs 16 x 16)" if args.front_bits == 16 else ""
    print(f"# {cpu_name()}, isa {vad.isa}, {args.precision}{kept}, batch 1, median of {args.steps} steps, "
          f"model {len(vad.data):,} bytes")
    print(f"silero VAD step        {t_vad * 1e6:8.1f} us")
    print(f"its LSTM(128) step     {t_lstm * 1e6:8.1f} us")
    print(f"ratio                  {t_vad / t_lstm:8.2f}x (multiply-adds: {MACS_VAD / MACS_LSTM:.2f}x)")
    print(f"silero VAD run / frame {t_run * 1e6:8.1f} us (500 frames, CPU time)")
    if args.profile:
        _profile(vad, x, args)


def _profile(vad, x, args) -> None:
    """The step time of the front-end cut after each record (a 1-unit LSTM behind it)."""
    from rnncore.io.rnc import read_rnc, write_rnc

    d = read_rnc(vad.data)
    rng = np.random.default_rng(1)
    prev = 0.0
    for n in range(1, len(d["front"]) + 1):
        cut = dict(d, front=d["front"][:n], post=[], post_pooled=[], head=None)
        width = _width(cut)
        w = {"weight_ih": rng.standard_normal((4, width)).astype(np.float32) * 0.01,
             "weight_hh": np.zeros((4, 1), np.float32), "bias_ih": np.zeros(4, np.float32),
             "bias_hh": np.zeros(4, np.float32)}
        cut["layers"] = [{"kind": "lstm", "input_size": width, "hidden_size": 1, "bidirectional": False,
                          "weights": w}]
        cut.pop("output_size", None)
        e = rc.Engine(write_rnc(cut))
        if args.isa:
            e.set_isa(args.isa)
        t = median_step(e.stream(), x, np.empty((1, 1), np.float32), args.steps)
        r = d["front"][n - 1]
        print(f"  + front[{n - 1}] {r['kind']:<13} -> {width:5d} features: {t * 1e6:7.2f} us "
              f"(+{(t - prev) * 1e6:6.2f})")
        prev = t


def _width(d) -> int:
    """The features per step the front-end records of description d leave."""
    from rnncore.spec import _front_width

    return _front_width(d["front"], d["input_size"])


if __name__ == "__main__":
    main()
