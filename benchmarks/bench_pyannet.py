"""pyannote's PyanNet (whisperx 3.3.1's speaker segmentation model) on three 10 s windows in one
call: rnncore f32 (``rc.compile`` of the ONNX export), onnxruntime (1 thread) and PyTorch (1 thread)
side by side, interleaved in one process (one call of each per round), process CPU time, the
minimum over ``--repeats`` rounds. The model and its weights as tests/test_engine_pyannet.py builds
them (tests/test_pyannet.py: the whisperx wheel, asteroid-filterbanks); the audio pyannote-audio's
sample.wav (benchmarks/bench_vad_q8.py), its first three 10 s windows (3, 1, 160000).

    python benchmarks/bench_pyannet.py [--repeats 9] [--isa avx2]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import time

import numpy as np
from machine import cpu_name

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

WINDOW = 160000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--isa", default=None, help="an ISA path (rc.isa()); default: the best")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch
    from bench_vad_q8 import recording
    from test_pyannet import PyanNet, checkpoint

    import rnncore as rc
    from rnncore.io import from_onnx

    torch.set_num_threads(1)
    net = PyanNet()
    net.load_state_dict(checkpoint()["state_dict"], strict=True)
    net.eval()
    def export(dynamic: bool) -> bytes:
        f = io.BytesIO()
        axes = ({"waveforms": {0: "batch", 2: "samples"}, "scores": {0: "batch", 1: "frames"}} if dynamic
                else None)
        torch.onnx.export(net, (torch.zeros(1, 1, WINDOW),), f, input_names=["waveforms"],
                          output_names=["scores"], opset_version=17, dynamo=False, dynamic_axes=axes)
        return f.getvalue()

    x = np.ascontiguousarray(recording()[:3 * WINDOW].reshape(3, 1, WINDOW), dtype=np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 2, 1))      # (B, T, 1): the engine's samples as steps
    # rc.compile takes the fixed-shape export (tests/test_engine_pyannet.py: asteroid's channel test
    # folds there) and runs any batch; onnxruntime the one with a dynamic batch
    eng = rc.compile(from_onnx(export(False), dtype="float32"))
    if args.isa:
        eng.set_isa(args.isa)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(export(True), so, providers=["CPUExecutionProvider"])
    xtorch = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            return net(xtorch).numpy()

    fns = {"rnncore f32": lambda: eng.run(xt),
           "onnxruntime (1 thread)": lambda: sess.run(None, {"waveforms": x})[0],
           "PyTorch (1 thread)": run_torch}
    outs = {k: fn() for k, fn in fns.items()}                # warm-up, and the outputs compared below
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(args.repeats):
        for k, fn in fns.items():
            t = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - t)
    print(f"# {cpu_name()}, rnncore isa {eng.isa}; 3 windows (3, 1, {WINDOW}) -> (3, 589, 3) in one call; "
          f"process CPU time, min of {args.repeats} interleaved rounds")
    ref = outs["PyTorch (1 thread)"]
    for k in fns:
        print(f"{k:24s} {best[k] * 1e3:8.1f} ms   max |y - PyTorch f32| {np.abs(outs[k] - ref).max():.1e}")


if __name__ == "__main__":
    main()
