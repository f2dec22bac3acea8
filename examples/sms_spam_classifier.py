"""Spam or not: ``Embedding(V, 128) -> Bidirectional(GRU(64), dropout 0.2) -> Dense(1, sigmoid)``
trained with the NumPy reference on the SMS Spam Collection, then run by the C engine in f32 and q8.

    python examples/sms_spam_classifier.py            # full run (about a minute of training)
    python examples/sms_spam_classifier.py --quick    # a subset, two epochs (the test runs this)
    python examples/sms_spam_classifier.py --out DIR  # also write model_f32.rnc / model_q8.rnc there

The corpus ships inside rnncore (``rnncore.datasets.sms_spam``; provenance and licence in
``rnncore/data/README.md``): 5171 distinct English text messages, 653 of them spam. They are split
once, stratified, into 70% training, 10% validation (early stopping) and 20% held-out test.
The script prints accuracy, F1 (spam = positive) and ROC AUC on the held-out test split for the
NumPy model and the compiled f32 and q8 engines, the ``.rnc`` sizes, and the latency of one
sentence through the C engine (``Engine.run`` on one message, batch 1). docs/showcase-text.md has
the figures.

The model in Keras terms is ``Embedding(V, 128)``, ``Bidirectional(GRU(64, dropout=0.2))``,
``Dense(1, activation="sigmoid")``; here the sigmoid sits in the loss (``BCEWithLogits``, as
PyTorch's ``BCEWithLogitsLoss``), Keras' GRU input dropout is a ``Dropout(0.2)`` on the embedded
tokens, and ``LastStep(bidirectional=True)`` takes the forward direction at each message's last
token and the backward direction at its first, as Keras' ``Bidirectional`` does without
``return_sequences``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import rnncore as rc
from rnncore.datasets import sms_spam
from rnncore.nn.train import fit, predict

MAX_TOKENS = 48  # longer messages (69 of 5171) keep their first 48 tokens
PAD, UNK = 0, 1


def tokenize(text: str) -> list[str]:
    """Lower-case words, numbers with every digit written 0 (phone numbers and prices share a
    shape), and the symbols that carry meaning in texts (``£ $ & ! ?``)."""
    return re.findall(r"[a-z0-9']+|[£$&!?]", re.sub(r"\d", "0", text.lower()))


def build_vocab(token_lists: list[list[str]], min_count: int = 2) -> dict[str, int]:
    """Token -> id for tokens seen at least ``min_count`` times; 0 = padding, 1 = unknown."""
    counts = Counter(t for toks in token_lists for t in toks)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return {w: i + 2 for i, w in enumerate(words)}


def encode(token_lists: list[list[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``ids (N, MAX_TOKENS)`` int64 padded with 0 and ``lengths (N,)`` (at least 1: an empty
    message is one unknown token)."""
    ids = np.zeros((len(token_lists), MAX_TOKENS), np.int64)
    lengths = np.zeros(len(token_lists), np.int64)
    for i, toks in enumerate(token_lists):
        row = [vocab.get(t, UNK) for t in toks[:MAX_TOKENS]] or [UNK]
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    return ids, lengths


def split(labels: np.ndarray, seed: int = 0, fractions=(0.7, 0.1)) -> tuple[np.ndarray, ...]:
    """Stratified ``(train, validation, test)`` index arrays."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = int(round(fractions[0] * len(idx)))
        b = a + int(round(fractions[1] * len(idx)))
        for p, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:]), strict=True):
            p.append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


# --8<-- [start:classifier]
def classifier(vocab_size: int, seed: int = 0) -> rc.nn.Sequential:
    """``ids (B, T) -> logits (B, 1)``."""
    return rc.nn.Sequential(
        rc.nn.Embedding(vocab_size, 128, seed=seed),
        rc.nn.Dropout(0.2, seed=seed + 1),
        rc.nn.GRU(128, 64, bidirectional=True, seed=seed + 2),
        rc.nn.LastStep(bidirectional=True),
        rc.nn.Linear(128, 1, seed=seed + 3),
    )
# --8<-- [end:classifier]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative),
    ties counting one half (the Mann-Whitney U statistic / (n_pos n_neg), with average ranks)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel()
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average rank over each run of equal scores
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (spam = positive, threshold logit 0 = probability 0.5), AUC."""
    logits, labels = np.asarray(logits, np.float64).ravel(), np.asarray(labels).ravel()
    pred = logits > 0
    tp = int(np.sum(pred & (labels == 1)))
    fp = int(np.sum(pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(pred == (labels == 1))), "precision": precision, "recall": recall,
            "f1": f1, "auc": roc_auc(logits, labels)}


def sentence_latency(engine: rc.Engine, ids: np.ndarray, lengths: np.ndarray, repeat: int = 5) -> float:
    """Minimum over ``repeat`` passes (the machine may be shared) of the mean time of
    ``engine.run`` on one message (batch 1, the message's own length), in seconds."""
    rows = [ids[i : i + 1, : lengths[i]] for i in range(len(ids))]
    engine.run(rows[0])  # warm-up
    means = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for r in rows:
            engine.run(r)
        means.append((time.perf_counter() - t0) / len(rows))
    return float(np.min(means))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1200 training messages, 2 epochs")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write model_f32.rnc and model_q8.rnc here")
    a = ap.parse_args(argv)
    epochs = a.epochs or (2 if a.quick else 12)

    texts, labels = sms_spam()
    tokens = [tokenize(t) for t in texts]
    tr, va, te = split(labels, a.seed)
    if a.quick:
        rng = np.random.default_rng(a.seed)
        tr = np.sort(rng.choice(tr, 1200, replace=False))
    vocab = build_vocab([tokens[i] for i in tr])
    V = len(vocab) + 2
    ids, lengths = encode(tokens, vocab)
    y = labels.astype(np.float64)[:, None]
    print(f"SMS Spam Collection: {len(texts)} messages ({int(labels.sum())} spam); train {len(tr)}, "
          f"validation {len(va)}, test {len(te)}; vocabulary {V} (with padding and unknown)")

    model = classifier(V, a.seed)
    loss, opt = rc.nn.BCEWithLogits(), rc.nn.Adam(model, lr=1e-3)
    t0 = time.process_time()
    history = fit(model, loss, opt, ids[tr], y[tr], lengths[tr], epochs=epochs, batch_size=32, clip=1.0,
                  seed=a.seed, validation=(ids[va], y[va], lengths[va]), early_stopping=2)
    train_cpu = time.process_time() - t0
    print(f"trained {len(history['epoch'])} epochs (best {history['best_epoch']}) in {train_cpu:.1f} s CPU")

    ref = predict(model, ids[te], lengths[te])[:, 0]
    result = {"numpy": scores(ref, labels[te]), "vocab": V, "train_cpu_s": train_cpu,
              "epochs_run": len(history["epoch"])}
    Xcal = (ids[tr[:256]], lengths[tr[:256]])
    engines = {"f32": rc.compile(model, "f32"), "q8": rc.compile(model, "q8", calibration=Xcal)}
    for name, eng in engines.items():
        out = eng.run(ids[te], lengths[te])[:, 0]
        result[name] = scores(out, labels[te])
        result[name]["bytes"] = eng.nbytes
        result[name]["max_abs_diff_logit"] = float(np.max(np.abs(out - ref)))
        result[name]["agree"] = float(np.mean((out > 0) == (ref > 0)))
        result[name]["latency_s"] = sentence_latency(eng, ids[te[:200]], lengths[te[:200]],
                                                     3 if a.quick else 5)
        if a.out is not None:
            a.out.mkdir(parents=True, exist_ok=True)
            eng.save(a.out / f"model_{name}.rnc")
    result["mean_tokens"] = float(lengths[te[:200]].mean())
    # q8 keeps the embedding table in float32 (docs/q8-contract.md); the rest is int8 weights
    result["embedding_bytes"] = V * 128 * 4

    print(f"\nheld-out test ({len(te)} messages, {int(labels[te].sum())} spam)")
    print(f"{'model':<12}{'accuracy':>9}{'F1':>7}{'AUC':>8}{'.rnc bytes':>12}{'ms / message':>14}"
          f"{'max |logit - numpy|':>21}")
    r = result["numpy"]
    print(f"{'numpy f64':<12}{r['accuracy']:>9.4f}{r['f1']:>7.3f}{r['auc']:>8.4f}")
    for name in ("f32", "q8"):
        r = result[name]
        print(f"{'engine ' + name:<12}{r['accuracy']:>9.4f}{r['f1']:>7.3f}{r['auc']:>8.4f}{r['bytes']:>12,}"
              f"{r['latency_s'] * 1e3:>14.3f}{r['max_abs_diff_logit']:>21.2e}")
    rest = {k: result[k]["bytes"] - result["embedding_bytes"] for k in ("f32", "q8")}
    print(f"q8 / f32 size: {result['q8']['bytes'] / result['f32']['bytes']:.3f} for the whole file; "
          f"the embedding table ({result['embedding_bytes']:,} bytes) is float32 in both, "
          f"the rest (GRU + head) is "
          f"{rest['f32']:,} / {rest['q8']:,} bytes = {rest['f32'] / rest['q8']:.2f}x smaller in q8")
    print(f"latency: engine.run on each of the first 200 "
          f"test messages (mean {result['mean_tokens']:.1f} tokens), batch 1, ISA {engines['q8'].isa}, "
          f"{os.cpu_count()} CPUs visible")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
