"""Silero VAD v6 in q8 against f32 and onnxruntime on a real recording: decision flips (p > 0.5).

The recording is ``pyannote/audio/sample/sample.wav`` from the ``pyannote-audio`` 3.3.2 wheel
(MIT; 30 s of a two-speaker conversation, 16 kHz; ``pip install --no-deps pyannote-audio==3.3.2``,
or ``RNNCORE_PYANNOTE_WHEEL=<the .whl>``). Variants: the recording, at gain 0.25 and with white
noise at 20 dB SNR (seed 0). Columns: the f32 engine, q8 with every frame convolution int8, q8
with the first (the STFT on raw samples) kept in float32, and q8 with all five frame convolutions
in float32 (the LSTM and the head int8), and q8 with the frame_convs that
:func:`rnncore.quant.choose_front_f32` picks on the first 10 s of each variant kept in float32
(``rc.compile(..., front_f32=...)``); each against onnxruntime, per variant: flips of the p > 0.5
decision, the largest |p - p_ort|; then the flips in all 2811 frames, in the 20 s after the first 10
(the frames the choice did not see; the state runs on from the start), and the model bytes.

    python benchmarks/bench_vad_q8.py
"""

from __future__ import annotations

import importlib.util
import io
import os
import pathlib
import wave
import zipfile

import numpy as np

import rnncore as rc
from rnncore.io import from_onnx

SAMPLE = "pyannote/audio/sample/sample.wav"


def recording() -> np.ndarray:
    """The pyannote sample (float32 in [-1, 1)), from the installed package or a wheel."""
    spec = importlib.util.find_spec("pyannote")
    raw = None
    if spec is not None and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            p = pathlib.Path(base) / "audio" / "sample" / "sample.wav"
            if p.exists():
                raw = p.read_bytes()
    whl = os.environ.get("RNNCORE_PYANNOTE_WHEEL", "")
    if raw is None and whl and pathlib.Path(whl).exists():
        with zipfile.ZipFile(whl) as z:
            raw = z.read(SAMPLE)
    if raw is None:
        raise FileNotFoundError("pyannote-audio 3.3.2 is not installed (pip install --no-deps "
                                "pyannote-audio==3.3.2)")
    with wave.open(io.BytesIO(raw)) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return (pcm / 32768.0).astype(np.float32)


def variants(audio: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(audio)).astype(np.float32)
    noise *= np.sqrt(np.mean(audio ** 2) / 100.0)   # 20 dB SNR
    return {"recording": audio, "gain 0.25": audio * np.float32(0.25), "noise 20 dB": audio + noise}


def more_variants(audio: np.ndarray) -> dict:
    """Variants the choice never sees: gains 0.5 and 0.1, white noise at 10, 20 and 30 dB SNR
    (seeds 1, 2, 3)."""
    def noisy(snr: float, seed: int) -> np.ndarray:
        n = np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)
        return audio + n * np.float32(np.sqrt(np.mean(audio ** 2) / 10 ** (snr / 10)))

    return {"gain 0.5": audio * np.float32(0.5), "gain 0.1": audio * np.float32(0.1),
            "noise 10 dB (seed 1)": noisy(10, 1), "noise 20 dB (seed 2)": noisy(20, 2),
            "noise 30 dB (seed 3)": noisy(30, 3)}


def frames(audio: np.ndarray) -> np.ndarray:
    """Silero's 16 kHz input: 512-sample chunks, each with the previous 64 samples in front."""
    n = len(audio) // 512
    padded = np.concatenate([np.zeros(64, np.float32), audio[:n * 512]])
    return np.stack([padded[k * 512:k * 512 + 576] for k in range(n)]).astype(np.float32)


def silero_bytes() -> bytes:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None:
        raise SystemExit("silero_vad is not installed (pip install --no-deps silero-vad==6.2.3)")
    return (pathlib.Path(spec.origin).parent / "data" / "silero_vad_16k_sequence.onnx").read_bytes()


def keep_f32(e8: rc.Engine, e32: rc.Engine, which: list[int]) -> rc.Engine:
    """The q8 engine with its frame_conv records number ``which`` (0: the first) in float32 (the
    per-record f32 form of a q8 file, docs/rnc-format.md), from the f32 engine of the same model."""
    from rnncore.io.rnc import read_rnc, write_rnc

    d8, d32 = read_rnc(e8.data), read_rnc(e32.data)
    convs = [i for i, r in enumerate(d8["front"]) if r["kind"] == "frame_conv1d"]
    for n in which:
        i = convs[n]
        d8["front"][i] = {**d8["front"][i], "tensors": dict(d32["front"][i]["tensors"]), "precision": "f32"}
    return rc.Engine(write_rnc(d8))


CHOICE_SECONDS = 10


def choice(onnx: bytes):
    """:func:`rnncore.quant.choose_front_f32` (the default budget) on the first ``CHOICE_SECONDS``
    s of each variant (a batch of 3): which frame_convs the q8 compile keeps in float32."""
    from rnncore.quant import choose_front_f32

    n = 16000 * CHOICE_SECONDS // 512
    X = np.stack([frames(a)[:n] for a in variants(recording()).values()])
    return choose_front_f32(from_onnx(onnx), X)


def engines(onnx: bytes, keep: list | None = None) -> dict:
    """f32; q8 (every frame_conv int8); q8 with the STFT in f32; q8 with every frame_conv in f32;
    q8 with the frame_convs ``keep`` in f32 (``rc.compile(..., front_f32=keep)``), if given."""
    g = from_onnx(onnx)
    e32, e8 = rc.compile(g), rc.compile(g, precision="q8")
    out = {"f32": e32, "q8": e8, "q8, STFT f32": keep_f32(e8, e32, [0]),
           "q8, convs f32": keep_f32(e8, e32, [0, 1, 2, 3, 4])}
    if keep is not None:
        out[f"q8, front_f32={keep}"] = rc.compile(g, precision="q8", front_f32=keep)
    return out


def main() -> None:
    import onnxruntime as ort

    onnx = silero_bytes()
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    ch = choice(onnx)
    print(ch, end="\n\n")
    es = engines(onnx, ch.keep)
    z = np.zeros((1, 1, 128), np.float32)
    print("| audio | frames | " + " | ".join(f"{k}: flips, max abs diff" for k in es) + " |")
    print("|---|---|" + "---|" * len(es))
    total, held = np.zeros(len(es), int), np.zeros(len(es), int)
    n_seen = 16000 * CHOICE_SECONDS // 512
    for name, a in variants(recording()).items():
        fr = frames(a)
        p_ort = sess.run(None, {"input": fr, "h": z, "c": z})[0].reshape(-1)
        cells = []
        for i, e in enumerate(es.values()):
            p = e.run(fr[None])[0, :, 0]
            total[i] += int(((p > 0.5) != (p_ort > 0.5)).sum())
            held[i] += int(((p[n_seen:] > 0.5) != (p_ort[n_seen:] > 0.5)).sum())
            cells.append(f"{int(((p > 0.5) != (p_ort > 0.5)).sum())}, {np.abs(p - p_ort).max():.4f}")
        print(f"| {name} | {len(fr)} (speech {np.mean(p_ort > 0.5):.2f}) | " + " | ".join(cells) + " |")
    print("| flips in all | | " + " | ".join(str(t) for t in total) + " |")
    print("| flips after 10 s | | " + " | ".join(str(t) for t in held) + " |")
    print("| model bytes | | " + " | ".join(f"{len(e.data):,}" for e in es.values()) + " |")
    print("\nVariants the choice did not see (flips, max abs diff):\n")
    print("| audio | frames | " + " | ".join(es) + " |")
    print("|---|---|" + "---|" * len(es))
    total[:] = 0
    n = 0
    for name, a in more_variants(recording()).items():
        fr = frames(a)
        n += len(fr)
        p_ort = sess.run(None, {"input": fr, "h": z, "c": z})[0].reshape(-1)
        cells = []
        for i, e in enumerate(es.values()):
            p = e.run(fr[None])[0, :, 0]
            total[i] += int(((p > 0.5) != (p_ort > 0.5)).sum())
            cells.append(f"{int(((p > 0.5) != (p_ort > 0.5)).sum())}, {np.abs(p - p_ort).max():.4f}")
        print(f"| {name} | {len(fr)} (speech {np.mean(p_ort > 0.5):.2f}) | " + " | ".join(cells) + " |")
    print(f"| all {n} frames | | " + " | ".join(f"{t} ({t * 500 / n:.2f} per 500)" for t in total) + " |")


if __name__ == "__main__":
    main()
