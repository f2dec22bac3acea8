"""A streaming voice-activity detector: log-mel -> 1x1 conv -> GRU -> per-frame speech probability,
trained with the NumPy reference on speech synthesised here by espeak-ng and mixed with noise.

    python examples/vad_espeak.py            # full run (a few minutes on one core)
    python examples/vad_espeak.py --quick    # fewer clips and epochs (the test runs this)
    python examples/vad_espeak.py --plot docs/figures/showcase_vad.png   # also draw a held-out clip

Needs the ``espeak-ng`` program (Debian: ``apt-get install espeak-ng``); nothing is downloaded.

**Data.** Each clip is 4 s at 11025 Hz: noise (white, pink or brown, at a random level) and one
utterance of espeak-ng reading one message (20-80 characters) of the SMS Spam Collection
(``rnncore.datasets``), in a random voice variant, speed and pitch, starting at a random time,
mixed at a random signal-to-noise ratio in [-5, 20] dB (speech power over its active frames
against the noise). espeak-ng synthesises at 22050 Hz; the clips are low-pass filtered and decimated by 2.
**Labels** come from the synthesis, before any noise is added: a frame is speech when the energy
of the clean synthesised signal in that frame's window is within 40 dB of the utterance's
loudest frame (espeak-ng writes digital silence between words and sentences). Held-out clips use
other messages *and* voice variants that training never hears.

**Model.** ``LogMelSpectrogram(11025, n_fft=256, hop 128 = 11.6 ms, 32 mels, center=False)``
-> ``FrameConv1d(32, 32, 1, frame_length=1)`` (a 1x1 convolution: each frame's 32 mel values to
32 channels) -> ReLU -> ``GRU(32, 48)`` -> ``Linear(48, 1)`` -> sigmoid (in the loss,
``BCEWithLogits``). Every layer is causal, so the model runs frame by frame: each call of
``Sequential.stream`` with 128 new samples returns that step's output.

**C engine.** :func:`c_engine_stream` is the only code that touches the engine: ``rc.compile``
turns the whole model into one engine (f32: the log-mel spectrogram is its first record) whose
step takes one frame of 256 samples -- the last 128 samples and the 128 new ones -- and returns
that frame's logit. If the compiler refuses the front-end (q8: the log-mel record is f32-only),
it compiles the longest tail it accepts (q8: the 1x1 frame convolution, ReLU, GRU and head) and
runs the layers before it frame by frame in NumPy, and says so. docs/showcase-vad.md has the
figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

import rnncore as rc
from rnncore.datasets import sms_spam
from rnncore.nn.train import fit, predict

SR_SYNTH, SR = 22050, 11025
HOP, N_FFT, N_MELS = 128, 256, 32
CLIP_S = 4.0
STEPS = int(CLIP_S * SR) // HOP  # 344 hops of 128 samples per clip
FRAMES = (STEPS * HOP - N_FFT) // HOP + 1  # 343 log-mel frames (the first needs two hops)
TRAIN_VOICES = ["en-us", "en-us+m1", "en-us+m3", "en-us+f1", "en-us+f2", "en-gb+m2", "en-gb+f4", "en-us+m5"]
TEST_VOICES = ["en-us+f3", "en-gb+m4", "en-us+m7", "en-gb+f5"]


def espeak(text: str, voice: str, speed: int, pitch: int, path: str) -> np.ndarray:
    """espeak-ng's 22050 Hz mono waveform of ``text``, as float64 in [-1, 1]."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text],
                   check=True, capture_output=True)
    with wave.open(path) as w:
        if w.getframerate() != SR_SYNTH or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise RuntimeError(f"espeak-ng: expected 22050 Hz mono 16-bit, got {w.getparams()}")
        return np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0


def decimate2(x: np.ndarray) -> np.ndarray:
    """22050 -> 11025 Hz: a 63-tap windowed-sinc low-pass at 5 kHz, then every second sample."""
    n = np.arange(63) - 31
    h = np.sinc(2 * 5000 / SR_SYNTH * n) * np.hamming(63)
    return np.convolve(x, h / h.sum(), mode="same")[::2]


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white, pink (1/f) or brown (1/f^2) noise of ``n`` samples."""
    w = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(w)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spec /= np.sqrt(f) if kind == "pink" else f
        w = np.fft.irfft(spec, n)
    return w / np.sqrt(np.mean(w * w))


def frame_energy(x: np.ndarray) -> np.ndarray:
    """Energy of each log-mel frame's window: ``(FRAMES,)`` for a clip of ``STEPS * HOP`` samples."""
    idx = np.arange(FRAMES)[:, None] * HOP + np.arange(N_FFT)[None, :]
    return np.sum(x[idx] ** 2, axis=1)


def make_clip(text: str, voice: str, rng: np.random.Generator, tmp: str) -> tuple[np.ndarray, np.ndarray]:
    """``(samples (STEPS * HOP,), labels (FRAMES,))`` of one noisy clip (module docstring)."""
    n = STEPS * HOP
    speech = decimate2(espeak(text, voice, int(rng.integers(130, 200)), int(rng.integers(25, 75)), tmp))
    start = int(rng.uniform(0.0, 1.5) * SR)
    clean = np.zeros(n)
    seg = speech[: n - start]
    clean[start : start + len(seg)] = seg
    e = frame_energy(clean)
    labels = (e > e.max() * 1e-4).astype(np.float64)  # within 40 dB of the loudest frame
    active = frame_energy(clean)[labels > 0].mean() / N_FFT  # speech power over its active frames
    snr_db = rng.uniform(-5, 20)
    kind = rng.choice(["white", "pink", "brown"])
    mix = clean + noise(kind, n, rng) * np.sqrt(active / 10 ** (snr_db / 10))
    mix *= 10 ** (rng.uniform(-30, 0) / 20) / max(np.max(np.abs(mix)), 1e-9)  # random level, no clipping
    return mix, labels


def make_set(texts: list[str], voices: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X (n, STEPS, HOP)`` (128 new samples per step) and ``y (n, FRAMES, 1)``."""
    rng = np.random.default_rng(seed)
    X, Y = np.empty((n, STEPS, HOP)), np.empty((n, FRAMES, 1))
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            text = texts[int(rng.integers(len(texts)))]
            x, y = make_clip(text, voices[i % len(voices)], rng, os.path.join(d, "u.wav"))
            X[i], Y[i, :, 0] = x.reshape(STEPS, HOP), y
    return X, Y


# --8<-- [start:model]
def vad_model(seed: int = 0) -> rc.nn.Sequential:
    """``x (B, T, 128 samples) -> logits (B, T - 1, 1)`` (one per log-mel frame)."""
    return rc.nn.Sequential(
        rc.nn.LogMelSpectrogram(SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=50.0, center=False),
        rc.nn.FrameConv1d(N_MELS, 32, 1, frame_length=1, seed=seed),  # 1x1: per frame, mels -> 32
        rc.nn.ReLU(),
        rc.nn.GRU(32, 48, seed=seed + 1),
        rc.nn.Linear(48, 1, seed=seed + 2),
    )
# --8<-- [end:model]


def frame_scores(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Frame accuracy, precision, recall and F1 (speech = positive, probability 0.5)."""
    pred, true = np.ravel(logits) > 0, np.ravel(y) > 0.5
    tp, fp, fn = np.sum(pred & true), np.sum(pred & ~true), np.sum(~pred & true)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": float(np.mean(pred == true)), "precision": float(p), "recall": float(r),
            "f1": float(2 * p * r / (p + r)) if p + r else 0.0}


def numpy_stream(model: rc.nn.Sequential, clip: np.ndarray) -> tuple[np.ndarray, float]:
    """Run one clip ``(STEPS, HOP)`` hop by hop through ``Sequential.stream``; returns the logits
    ``(FRAMES,)`` and the mean seconds per hop."""
    state, out = model.stream_state(1), []
    t0 = time.perf_counter()
    for t in range(clip.shape[0]):
        y, state = model.stream(clip[None, t : t + 1], state)
        out.append(y[0, :, 0])
    return np.concatenate(out), (time.perf_counter() - t0) / clip.shape[0]


def compile_tail(model: rc.nn.Sequential, precision: str) -> tuple[rc.Engine, rc.nn.Sequential | None, str]:
    """``rc.compile`` the whole model, or else the longest tail of it that ``rc.compile`` accepts.

    Returns the engine, the front part left to NumPy (None when the whole model compiled) and a
    note saying what runs where. q8 uses dynamic activation scales."""
    mods, refused = list(model), None
    for k in range(len(mods)):
        try:
            engine = rc.compile(model if k == 0 else rc.nn.Sequential(*mods[k:]), precision)
        except (ValueError, TypeError) as e:
            refused = refused or str(e).splitlines()[0]
            continue
        if k == 0:
            return engine, None, "the whole model in C"
        names = ", ".join(type(m).__name__ for m in mods[:k])
        return engine, rc.nn.Sequential(*mods[:k]), (
            f"front-end ({names}) in NumPy, {engine.describe()} in C; rc.compile refused the whole "
            f"model: {refused}")
    raise ValueError(f"model: rc.compile accepts no tail of it; the whole model: {refused}")


def c_engine_stream(model: rc.nn.Sequential, clips: np.ndarray, precision: str = "f32"
                    ) -> tuple[np.ndarray, dict, str, rc.Engine]:
    """Run clips ``(N, STEPS, HOP)`` hop by hop through the C engine: ``rc.compile`` then one
    ``stream.step`` per frame. Returns the logits ``(N, FRAMES)``, the mean seconds per hop
    (``{"total": ..., "step": ...}``: everything, and the C ``stream.step`` calls alone), a note
    saying what ran in C, and the engine.

    The whole compiled model's step takes one log-mel frame of ``N_FFT`` samples (the log_mel
    record, docs/rnc-format.md): the loop keeps the last ``N_FFT - HOP`` samples, and from the
    second hop on (the first frame needs two hops) each hop completes one frame, one
    ``stream.step``. If ``rc.compile`` refuses the front-end, the longest tail of the model that it
    accepts runs in C (the GRU and the head) and the layers before it run frame by frame in NumPy
    (``Sequential.stream``), feeding each new frame to ``stream.step``."""
    engine, front, note = compile_tail(model, precision)
    out_all = np.empty((clips.shape[0], FRAMES))
    step_out = np.empty((1, engine.output_size), np.float32)
    t_step = 0.0
    t0 = time.perf_counter()
    for n, clip in enumerate(clips):
        stream = engine.stream(batch=1)
        fstate = front.stream_state(1) if front is not None else None
        frame = np.zeros((1, N_FFT), np.float32)  # the samples of the frame the next hop completes
        f = 0
        for t in range(clip.shape[0]):
            if front is None:
                frame[0, : N_FFT - HOP] = frame[0, HOP:]
                frame[0, N_FFT - HOP :] = clip[t]
                if t < N_FFT // HOP - 1:
                    continue  # the first frame needs N_FFT samples
                ts = time.perf_counter()
                stream.step(frame, out=step_out)  # one frame of samples in, its logit out
                t_step += time.perf_counter() - ts
                frames = step_out[:, None]
            else:
                feats, fstate = front.stream(clip[None, t : t + 1], fstate)  # (1, 0 or 1, 32)
                if feats.shape[1] == 0:
                    continue
                x = feats[:, 0].astype(np.float32)
                ts = time.perf_counter()
                stream.step(x, out=step_out)
                t_step += time.perf_counter() - ts
                frames = step_out[:, None]
            out_all[n, f : f + frames.shape[1]] = frames[0, :, 0]
            f += frames.shape[1]
    hops = clips.shape[0] * clips.shape[1]
    return out_all, {"total": (time.perf_counter() - t0) / hops, "step": t_step / hops}, note, engine


def plot_clip(path: Path, clip: np.ndarray, labels: np.ndarray, logits: np.ndarray, title: str) -> None:
    """Draw one clip: the waveform, the synthesis' speech frames and the model's speech probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wave_ = clip.reshape(-1)
    t_wave = np.arange(len(wave_)) / SR
    t_frame = (np.arange(FRAMES) * HOP + N_FFT) / SR  # a frame is known once its last sample is in
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True)
    ax0.plot(t_wave, wave_, lw=0.4, color="0.3")
    ax0.set_ylabel("waveform")
    ax0.set_title(title, fontsize=9)
    ax1.fill_between(t_frame, 0, labels, step="post", color="tab:green", alpha=0.3,
                     label="speech (from the synthesis)")
    ax1.plot(t_frame, 1 / (1 + np.exp(-logits)), color="tab:blue", lw=1.2, label="model: P(speech)")
    ax1.axhline(0.5, color="0.5", lw=0.6, ls=":")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_xlabel("time (s)")
    ax1.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="48 training clips, 3 epochs")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the compiled vad_f32.rnc / vad_q8.rnc here")
    ap.add_argument("--plot", type=Path, default=None,
                    help="draw the first held-out clips (matplotlib) into this PNG")
    a = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng: not found (Debian: apt-get install espeak-ng)")
    n_train, n_val, n_test = (48, 12, 24) if a.quick else (320, 40, 80)
    epochs = a.epochs or (3 if a.quick else 25)

    texts, labels = sms_spam()
    ham = [t for t, c in zip(texts, labels, strict=True) if c == 0 and 20 <= len(t) <= 80]
    half = len(ham) // 2  # training clips read the first half of the messages, held-out clips the second
    t0 = time.perf_counter()
    Xtr, ytr = make_set(ham[:half], TRAIN_VOICES, n_train, a.seed)
    Xva, yva = make_set(ham[:half], TRAIN_VOICES, n_val, a.seed + 1)
    Xte, yte = make_set(ham[half:], TEST_VOICES, n_test, a.seed + 2)
    print(f"synthesised {n_train + n_val + n_test} clips of {CLIP_S:.0f} s "
          f"in {time.perf_counter() - t0:.1f} s; "
          f"speech frames: train {ytr.mean():.2f}, test {yte.mean():.2f}")

    model = vad_model(a.seed)
    t0 = time.process_time()
    history = fit(model, rc.nn.BCEWithLogits(), rc.nn.Adam(model, lr=3e-3), Xtr, ytr, epochs=epochs,
                  batch_size=8, clip=1.0, seed=a.seed, validation=(Xva, yva), early_stopping=4)
    train_cpu = time.process_time() - t0
    print(f"trained {len(history['epoch'])} epochs (best {history['best_epoch']}) in {train_cpu:.1f} s CPU")

    ref = predict(model, Xte)[:, :FRAMES, 0]  # (N, FRAMES), whole clips (predict pads to STEPS)
    result = {"numpy": frame_scores(ref, yte), "train_cpu_s": train_cpu, "speech_share": float(yte.mean())}
    streamed, np_hop = numpy_stream(model, Xte[0])
    result["numpy"]["stream_max_abs_diff"] = float(np.max(np.abs(streamed - ref[0])))
    result["numpy"]["s_per_hop"] = np_hop
    n_c = min(8, n_test)
    for precision in ("f32", "q8"):
        out, per_hop, note, engine = c_engine_stream(model, Xte[:n_c], precision)  # q8: dynamic scales
        if a.out is not None:
            a.out.mkdir(parents=True, exist_ok=True)
            engine.save(a.out / f"vad_{precision}.rnc")
        r = frame_scores(out, yte[:n_c])
        r["numpy_on_same"] = frame_scores(ref[:n_c], yte[:n_c])["accuracy"]
        r["max_abs_diff"] = float(np.max(np.abs(out - ref[:n_c])))
        r["s_per_hop"], r["s_per_step_c"], r["note"] = per_hop["total"], per_hop["step"], note
        result[precision] = r

    hop_ms = HOP / SR * 1e3
    print(f"\nheld-out: {n_test} clips, other messages and voices ({', '.join(TEST_VOICES)}); "
          f"{result['speech_share']:.2f} of frames are speech")
    r = result["numpy"]
    print(f"numpy (whole clips)  frame accuracy {r['accuracy']:.4f}  F1 {r['f1']:.3f}  "
          f"precision {r['precision']:.3f}  recall {r['recall']:.3f}")
    print(f"numpy Sequential.stream: {r['s_per_hop'] * 1e6:.0f} µs per {HOP}-sample hop "
          f"({hop_ms:.1f} ms of audio); "
          f"max |stream - whole| {r['stream_max_abs_diff']:.1e}")
    for precision in ("f32", "q8"):
        r = result[precision]
        print(f"C engine {precision} on {n_c} held-out clips: frame accuracy {r['accuracy']:.4f} "
              f"(NumPy on the same clips {r['numpy_on_same']:.4f}), F1 {r['f1']:.3f}, "
              f"{r['s_per_hop'] * 1e6:.0f} µs per hop ({r['s_per_step_c'] * 1e6:.1f} µs in stream.step), "
              f"max |engine - numpy| {r['max_abs_diff']:.1e}")
    print(f"C engine: {result['f32']['note']}")
    if a.plot is not None:
        i = int(np.argmin(np.abs(yte[:, :, 0].mean(axis=1) - 0.5)))  # a clip with speech and pauses
        plot_clip(a.plot, Xte[i], yte[i, :, 0], ref[i],
                  f"held-out clip {i} ({TEST_VOICES[i % len(TEST_VOICES)]}, unseen voice and text); "
                  f"frame accuracy {frame_scores(ref[i], yte[i])['accuracy']:.3f}")
        print(f"wrote {a.plot}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
