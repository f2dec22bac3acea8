"""The two showcases of docs/showcase-text.md and docs/showcase-vad.md: their quick modes end to end,
and the pieces they are built from (the shipped SMS corpus, the metrics, the synthesised labels).

The VAD example needs the ``espeak-ng`` program: CI installs it (``.ci/run``), so a missing one is a
failure here, not a skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rnncore.datasets import sms_spam

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


text = _example("sms_spam_classifier")
vad = _example("vad_espeak")


def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng not found (apt-get install espeak-ng; .ci/run does this)")


# -- the corpus and the metrics ------------------------------------------------------------------

def test_sms_spam_corpus_counts_and_first_messages():
    texts, labels = sms_spam(deduplicate=False)
    # the UCI description: 5574 messages, 4827 ham and 747 spam
    assert len(texts) == 5574 and int(labels.sum()) == 747
    assert texts[0].startswith("Go until jurong point, crazy..") and labels[0] == 0
    assert texts[2].startswith("Free entry in 2 a wkly comp to win FA Cup final tkts") and labels[2] == 1
    assert texts[-1] == "Rofl. Its true to its name" and labels[-1] == 0
    # rows that swallowed original "label<TAB>text" lines give them back as messages of their own
    assert not any("\n" in t or "\t" in t for t in texts)
    i = next(i for i, t in enumerate(texts) if t.startswith("For your chance to WIN a FREE Bluetooth"))
    j = next(j for j, t in enumerate(texts) if t.startswith("Life is nothing wen v get everything"))
    assert labels[i] == 1 and labels[j] == 0 and texts[j].endswith("only in their absence.... gud mrng")
    dtexts, dlabels = sms_spam()
    assert len(dtexts) == len(set(dtexts)) == 5171 and int(dlabels.sum()) == 653
    assert set(np.unique(dlabels).tolist()) == {0, 1}


def test_tokenize_vocab_and_split():
    assert text.tokenize("Call 09061701461 now! Win £900 & it's FREE?") == [
        "call", "00000000000", "now", "!", "win", "£", "000", "&", "it's", "free", "?"]
    vocab = text.build_vocab([["a", "b", "a"], ["b", "c", "a"]])
    assert vocab == {"a": 2, "b": 3}  # c seen once: unknown; ids by count, then alphabetically
    ids, lengths = text.encode([["a", "c", "b"], [], ["b"] * 60], vocab)
    assert ids[0, :3].tolist() == [2, 1, 3] and lengths.tolist() == [3, 1, text.MAX_TOKENS]
    assert ids[1, 0] == text.UNK and not ids[0, 3:].any()
    labels = np.array([0] * 90 + [1] * 10)
    tr, va, te = text.split(labels)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    assert [int(labels[p].sum()) for p in (tr, va, te)] == [7, 1, 2]  # stratified


def test_roc_auc_and_f1_by_hand():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs ordered right
    assert text.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert text.roc_auc(np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1])) == 0.75  # a tie counts 1/2
    s = text.scores(np.array([-1.0, 2.0, 3.0, -0.5, 0.2]), np.array([0, 1, 1, 1, 0]))
    # tp = 2, fp = 1, fn = 1: precision 2/3, recall 2/3
    assert s["accuracy"] == 0.6 and s["precision"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3)
    v = vad.frame_scores(np.array([[1.0, -1.0, 1.0, -1.0]]), np.array([[1.0, 1.0, 0.0, 0.0]]))
    assert v == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}


# -- the text classifier ---------------------------------------------------------------------------

def test_text_classifier_quick_mode(tmp_path, capsys):
    r = text.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "held-out test (1034 messages, 131 spam)" in out
    # 131 of 1034 are spam: always saying "ham" scores 0.873 and an AUC of 0.5
    assert r["numpy"]["accuracy"] > 0.9 and r["numpy"]["auc"] > 0.9 and r["numpy"]["f1"] > 0.5
    # the f32 engine computes the NumPy model's logits (float32 against float64)
    assert r["f32"]["max_abs_diff_logit"] < 1e-4 and r["f32"]["agree"] == 1.0
    assert r["f32"]["accuracy"] == r["numpy"]["accuracy"]
    # q8: the same decisions on nearly every message, the same quality within a point
    assert r["q8"]["agree"] >= 0.98 and abs(r["q8"]["accuracy"] - r["numpy"]["accuracy"]) <= 0.01
    assert abs(r["q8"]["auc"] - r["numpy"]["auc"]) <= 0.01
    rest_f32 = r["f32"]["bytes"] - r["embedding_bytes"]
    rest_q8 = r["q8"]["bytes"] - r["embedding_bytes"]
    assert 3.5 < rest_f32 / rest_q8 < 4.1  # int8 GRU and head weights, float32 embedding table
    import rnncore as rc
    eng = rc.load(tmp_path / "model_q8.rnc")
    assert eng.precision == "q8" and eng.nbytes == r["q8"]["bytes"]


# -- the voice-activity detector ---------------------------------------------------------------------

def test_vad_clip_labels_follow_the_synthesis(tmp_path):
    _need_espeak()
    x, y = vad.make_clip("Hello there. See you at eight.", "en-us", np.random.default_rng(5),
                         str(tmp_path / "u.wav"))
    assert x.shape == (vad.STEPS * vad.HOP,) and y.shape == (vad.FRAMES,)
    rng = np.random.default_rng(5)  # make_clip draws the speed, the pitch, then the start
    rng.integers(130, 200), rng.integers(25, 75)
    start = int(rng.uniform(0.0, 1.5) * vad.SR)
    first = int(np.argmax(y > 0))
    # the first speech frame is the first window that reaches the utterance's start
    assert (start - vad.N_FFT) // vad.HOP <= first <= start // vad.HOP + 3
    assert not y[: max(first, 0)].any() and 0.1 < y.mean() < 0.9
    assert set(np.unique(y).tolist()) == {0.0, 1.0}
    assert 0 < np.max(np.abs(x)) <= 1.0


def test_vad_quick_mode(capsys):
    _need_espeak()
    r = vad.main(["--quick"])
    out = capsys.readouterr().out
    majority = max(r["speech_share"], 1 - r["speech_share"])
    assert r["numpy"]["accuracy"] > majority + 0.1 and r["numpy"]["f1"] > 0.7
    # streaming hop by hop gives the whole-clip outputs
    assert r["numpy"]["stream_max_abs_diff"] < 1e-9
    # the C engine (f32) runs the same model; q8 keeps the frame accuracy within 3 points
    assert r["f32"]["max_abs_diff"] < 1e-4 and r["f32"]["accuracy"] == r["f32"]["numpy_on_same"]
    assert abs(r["q8"]["accuracy"] - r["q8"]["numpy_on_same"]) <= 0.03
    assert "C engine:" in out and ("whole model in C" in out or "front-end" in out)


def test_vad_c_engine_runs_the_model_frame_by_frame():
    # no espeak-ng needed: an untrained model on noise; f32: the whole model (log-mel first) in C,
    # one frame of N_FFT samples per step
    model = vad.vad_model(seed=3)
    engine, front, note = vad.compile_tail(model, "f32")
    assert front is None and "whole model in C" in note
    assert engine.describe() == "log_mel > frame_conv > pointwise > gru(48) > linear(48->1)"
    clips = np.random.default_rng(0).standard_normal((2, vad.STEPS, vad.HOP)) * 0.1
    ref = model.forward(clips)[..., 0]  # (2, FRAMES)
    out, per_hop, note2, _ = vad.c_engine_stream(model, clips, "f32")
    assert out.shape == ref.shape == (2, vad.FRAMES) and note2 == note
    assert np.max(np.abs(out - ref)) < 1e-5 and per_hop["total"] >= per_hop["step"] > 0   # measured 8e-8
    engine, front, note = vad.compile_tail(model, "q8")
    # q8: the whole model in C too (log_mel in float32, then the int8 frame_conv, GRU and head)
    assert engine.describe() == "log_mel > frame_conv > pointwise > gru(48) > linear(48->1)"
    assert front is None and "whole model in C" in note
    out, _, _, _ = vad.c_engine_stream(model, clips, "q8")
    assert np.max(np.abs(out - ref)) < 0.1
