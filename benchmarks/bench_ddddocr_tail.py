"""ddddocr 1.6.1's OCR recurrent tail on the C engine against onnxruntime: agreement and time.

The model (``ddddocr/common.onnx`` from the ``ddddocr`` wheel, MIT) is an image CNN whose output
``'227'`` ``(T, B, 512)`` goes through a bidirectional LSTM(512) and ``Gemm(1024 -> 8210)`` to
``'387'`` ``(T, B, 8210)``. onnxruntime runs the whole model on rendered text (Pillow's default
font when Pillow is installed, else glyph-like strokes drawn with NumPy) and gives the CNN's real
``'227'``; ``rc.compile(from_onnx(path, inputs=['227'], outputs=['387']))`` (f32 and q8) runs the
tail. Printed: the largest logit difference to onnxruntime, the share of steps whose class
(argmax) agrees, and one run of the tail per line (B = 1), process CPU time, min of ``--repeat``,
for onnxruntime (the tail sub-graph, one thread) and the two engines.

    python benchmarks/bench_ddddocr_tail.py [--model path/to/common.onnx] [--repeat 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import time

import numpy as np
from machine import cpu_name

import rnncore as rc

TEXTS = ["hello world", "ddddocr 2026", "rnncore CRNN", "Zen4 AVX512", "qwerty 8210", "abc123", "OCR"]


def _model_path(arg: str | None) -> str:
    if arg:
        return arg
    spec = importlib.util.find_spec("ddddocr")
    for d in (spec.submodule_search_locations or []) if spec else []:
        p = pathlib.Path(d) / "common.onnx"
        if p.is_file():
            return str(p)
    raise SystemExit("ddddocr is not installed: pip install --no-deps ddddocr==1.6.1, or --model PATH")


def _image(text: str, seed: int) -> np.ndarray:
    """(1, 1, 64, W) in [0, 1], ddddocr's input (grey, height 64, /255)."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        rng = np.random.default_rng(seed)
        im = np.ones((64, 24 * len(text)), np.float32)
        for _ in range(2 * len(text)):
            x0, y0 = int(rng.integers(4, im.shape[1] - 10)), int(rng.integers(8, 30))
            im[y0:y0 + int(rng.integers(12, 34)), x0:x0 + int(rng.integers(2, 7))] = 0.1
        return im[None, None]
    font = ImageFont.load_default(size=40)
    im = Image.new("L", (int(font.getlength(text)) + 20, 64), 255)
    ImageDraw.Draw(im).text((10, 8), text, fill=0, font=font)
    return np.asarray(im, np.float32)[None, None] / 255.0


def _best(f, n: int) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.process_time()
        f()
        best = min(best, time.process_time() - t0)
    return best * 1e3


def main() -> None:
    import onnx
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    path = _model_path(args.model)
    m = onnx.load(path)
    m.graph.output.insert(0, onnx.helper.make_tensor_value_info("227", onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    full = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sub = onnx.utils.Extractor(m).extract_model(["227"], ["387"])
    tail = ort.InferenceSession(sub.SerializeToString(), so, providers=["CPUExecutionProvider"])
    g = rc.io.from_onnx(path, inputs=["227"], outputs=["387"], dtype="float32")
    engines = {"f32": rc.compile(g), "q8": rc.compile(g, precision="q8")}
    print(f"# {cpu_name()}, isa {engines['f32'].isa}")
    steps, agree, err = 0, dict.fromkeys(engines, 0), dict.fromkeys(engines, 0.0)
    feats = [full.run(["227", "387"], {"input1": _image(t, k)}) for k, t in enumerate(TEXTS)]
    for f227, ref in feats:
        x = np.ascontiguousarray(f227.transpose(1, 0, 2))
        steps += ref.shape[0]
        for name, eng in engines.items():
            y = eng.run(x).transpose(1, 0, 2)
            err[name] = max(err[name], float(np.abs(y - ref).max()))
            agree[name] += int((y.argmax(-1) == ref.argmax(-1)).sum())
    for name, eng in engines.items():
        print(f"{name}: {eng.nbytes / 1e6:.1f} MB, max |logit - ORT| {err[name]:.3g}, "
              f"class agrees at {agree[name]}/{steps} steps")
    f227, _ = max(feats, key=lambda f: f[0].shape[0])
    x = np.ascontiguousarray(f227.transpose(1, 0, 2))
    print(f"one line, T = {x.shape[1]}, B = 1, ms of CPU time (min of {args.repeat}):")
    print(f"  onnxruntime tail {_best(lambda: tail.run(None, {'227': f227}), args.repeat):.2f}")
    for name, eng in engines.items():
        print(f"  engine {name} {_best(lambda eng=eng: eng.run(x), args.repeat):.2f}")


if __name__ == "__main__":
    main()
