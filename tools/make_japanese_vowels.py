"""Build ``rnncore/data/japanese_vowels.npz`` from the JapaneseVowels ``.ts`` files.

The ``.ts`` files are the UEA/UCR archive's copy of the UCI Japanese Vowels data (the one
``aeon`` bundles, e.g. ``<site-packages>/aeon/datasets/data/JapaneseVowels``)::

    python tools/make_japanese_vowels.py DIR_WITH_TS_FILES [-o rnncore/data/japanese_vowels.npz]

Every value in the files has at most six decimals, so it is stored exactly as an int32
count of 1e-6 (``value = stored / 1e6``: the division is correctly rounded, so it gives the
same float64 as parsing the decimal text). Arrays in the ``.npz`` (no pickles):

* ``{split}_values`` (steps, 12) int32: the utterances' frames, one after another
* ``{split}_lengths`` (N,) int16: frames per utterance (they partition ``{split}_values``)
* ``{split}_labels`` (N,) int8: index into ``classes``
* ``classes`` (9,) str: the speakers' labels as in the ``.ts`` files, ``"1"`` .. ``"9"``
* ``scale`` () float64: 1e6
"""

from __future__ import annotations

import argparse
import os
from decimal import Decimal

import numpy as np


def parse_ts(path: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """``(utterances as (T_i, 12) int micro-units, labels, declared class labels)`` of one .ts file."""
    seqs, labels, classes = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.lower().startswith("@classlabel"):
                classes = line.split()[2:]
            if not line or line.startswith(("#", "@")):
                continue
            *channels, label = line.split(":")
            rows = []
            for ch in channels:
                micro = [Decimal(v) * 1_000_000 for v in ch.split(",")]
                if any(m != m.to_integral_value() for m in micro):
                    raise ValueError(f"{path}: a value has more than six decimals")
                rows.append([int(m) for m in micro])
            seqs.append(np.array(rows, np.int64).T)             # (channels, T) -> (T, channels)
            labels.append(label)
    return seqs, labels, classes


def write_npz(ts_dir: str, name: str, output: str, pack) -> dict[str, np.ndarray]:
    """Parse ``{name}_TRAIN.ts`` / ``{name}_TEST.ts`` in ``ts_dir`` and write ``output``: per split,
    ``pack(seqs)`` (a dict of arrays keyed without the split prefix) plus ``labels``, then
    ``classes`` and ``scale``. Returns the arrays written."""
    arrays: dict[str, np.ndarray] = {}
    classes: list[str] = []
    for split in ("train", "test"):
        seqs, labels, classes = parse_ts(os.path.join(ts_dir, f"{name}_{split.upper()}.ts"))
        for key, value in pack(seqs).items():
            arrays[f"{split}_{key}"] = value
        arrays[f"{split}_labels"] = np.array([classes.index(c) for c in labels], np.int8)
    arrays["classes"] = np.array(classes)
    arrays["scale"] = np.array(1e6)
    np.savez_compressed(output, **arrays)
    print(f"wrote {output} ({os.path.getsize(output)} bytes): "
          f"{len(arrays['train_labels'])} train / {len(arrays['test_labels'])} test recordings")
    return arrays


def pack(seqs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The utterances one after another (steps, 12) and their lengths (N,)."""
    values = np.concatenate(seqs, axis=0)
    assert np.abs(values).max() < 2**31
    return {"values": values.astype(np.int32), "lengths": np.array([s.shape[0] for s in seqs], np.int16)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ts_dir", help="directory with JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts")
    p.add_argument("-o", "--output", default=os.path.join("rnncore", "data", "japanese_vowels.npz"))
    args = p.parse_args()
    write_npz(args.ts_dir, "JapaneseVowels", args.output, pack)

if __name__ == "__main__":
    main()
