"""pyannote's PyanNet (whisperx 3.3.1's segmentation model) in q8 against f32: error against PyTorch
float64, decisions (p > 0.5 per class, speech activity: any class) and ``engine.run`` time.

The model is rebuilt in PyTorch (tests/test_pyannet.py), exported to ONNX at (1, 1, 160000) and
compiled with ``rc.compile`` (f32) and ``rc.compile(..., precision="q8")`` (its instance_norm
records float32, the convolutions, LSTMs and heads int8: docs/q8-contract.md, "instance_norm").
Input: the first three 10 s windows of pyannote-audio 3.3.2's ``sample.wav`` (as tests/conftest.py
reads it). Time: process CPU time of one ``run`` of the batch of three windows, and of one window,
the minimum of ``--repeat`` runs, the engines alternating, on the ISA the engine picks.

``--front-f32 conv_time:0`` adds a q8 engine with those convolutions kept float32
(``rc.compile(..., front_f32=["conv_time:0"])``: the sinc convolution on the waveform); repeat the
option for more such engines; ``--choose`` adds the one :func:`rnncore.quant.choose_front_f32`
picks on the first window (its table printed).

    python benchmarks/bench_pyannet_q8.py --repeat 7 [--front-f32 conv_time:0 [--front-f32 conv_time:0
        conv_time:1 conv_time:2]] [--choose]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

WINDOW = 160000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--front-f32", nargs="+", action="append", default=[], metavar="ITEM",
                    help="a q8 engine with these convolutions kept float32 (rc.compile's front_f32: "
                         "conv_time:N, or a frame_conv number); repeatable")
    ap.add_argument("--choose", action="store_true",
                    help="a q8 engine with the convolutions choose_front_f32 keeps (on the first window)")
    args = ap.parse_args()

    import torch
    from bench_vad_q8 import recording
    from machine import cpu_name
    from test_engine_pyannet import _export
    from test_pyannet import PyanNet, checkpoint

    import rnncore as rc
    from rnncore.io import from_onnx

    g = from_onnx(_export(False), dtype="float32")
    engines = {"f32": rc.compile(g), "q8": rc.compile(g, precision="q8")}
    x = np.ascontiguousarray(recording()[:3 * WINDOW].reshape(3, WINDOW, 1), dtype=np.float32)
    for keep in args.front_f32:
        keep = [int(k) if k.isdigit() else k for k in keep]
        engines[f"q8 front_f32={keep}"] = rc.compile(g, precision="q8", front_f32=keep)
    if args.choose:
        from rnncore.quant import choose_front_f32

        ch = choose_front_f32(g, x[:1])
        print(ch)
        engines[f"q8 front_f32={ch.keep} (chosen)"] = rc.compile(g, precision="q8", front_f32=ch.keep)
    m = PyanNet()
    m.load_state_dict(checkpoint()["state_dict"], strict=True)
    with torch.no_grad():
        r64 = m.eval().double()(torch.from_numpy(x.transpose(0, 2, 1).astype(np.float64))).numpy()
    print(f"PyanNet on sample.wav's first three 10 s windows (3 x 589 frames x 3 classes); {cpu_name()}, "
          f"ISA {rc.isa()['in_use']}")
    d64 = r64 > 0.5
    out = {}
    for name, e in engines.items():
        y = e.run(x)
        out[name] = y
        err = np.abs(y - r64)
        d = y > 0.5
        print(f"  {name}: {len(e.data):,} bytes; vs PyTorch float64 max {err.max():.3g} "
              f"mean {err.mean():.3g}; "
              f"class decisions differing {int((d != d64).sum())} of {d.size}, speech activity "
              f"{int((d.any(-1) != d64.any(-1)).sum())} of {d.shape[0] * d.shape[1]} frames")
        for b in range(len(x)):
            db = d[b] != d64[b]
            print(f"    window {b}: max {err[b].max():.3g} mean {err[b].mean():.3g}; class decisions "
                  f"differing {int(db.sum())}, speech frames {int((d[b].any(-1) != d64[b].any(-1)).sum())}")
    d32 = out["f32"] > 0.5
    for name in engines:
        if name != "f32":
            d8 = out[name] > 0.5
            print(f"  {name} vs f32 engine: max {np.abs(out[name] - out['f32']).max():.3g}; class decisions "
                  f"differing {int((d8 != d32).sum())}, speech activity "
                  f"{int((d8.any(-1) != d32.any(-1)).sum())}")
    for label, xb in (("3 windows", x), ("1 window", np.ascontiguousarray(x[:1]))):
        best = {k: float("inf") for k in engines}
        for _ in range(args.repeat):
            for k, e in engines.items():
                t0 = time.process_time()
                e.run(xb)
                best[k] = min(best[k], time.process_time() - t0)
        times = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in best.items())
        print(f"  run, {label}: {times} CPU (min of {args.repeat}); q8 / f32 {best['q8'] / best['f32']:.2f}")


if __name__ == "__main__":
    main()
