"""The datasets carried in rnncore/data/ (JapaneseVowels, BasicMotions): the descriptions'
counts, values as written in the archive's .ts text, exact float parsing; the files are package
data of the wheel and the sdist."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rnncore.datasets import basic_motions, basic_motions_raw, japanese_vowels, japanese_vowels_raw

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw():
    return japanese_vowels_raw()


def test_counts_match_the_uci_description(raw):
    # UCI: 270 training utterances, 30 per speaker; test blocks per speaker 31 35 88 44 29 24 40 50 29;
    # 12 coefficients per frame; 7-29 frames per utterance.
    seqs, labels = raw["train"]
    assert len(seqs) == 270 and [labels.count(str(k)) for k in range(1, 10)] == [30] * 9
    seqs_te, labels_te = raw["test"]
    assert [labels_te.count(str(k)) for k in range(1, 10)] == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    # each speaker's utterances are consecutive blocks, speaker 1 first
    assert labels == sorted(labels, key=int) and labels_te == sorted(labels_te, key=int)
    lengths = [s.shape[0] for s in seqs + seqs_te]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(s.shape[1] == 12 and s.dtype == np.float64 for s in seqs + seqs_te)


def test_values_are_the_archive_text(raw):
    # First and last frames of the first and last utterances, copied from the text of the
    # UEA archive's JapaneseVowels_TRAIN.ts / _TEST.ts; float() of the text must be exact.
    text = {
        ("train", 0, 0): "1.860936 -0.207383 0.261557 -0.214562 -0.171253 -0.118167 -0.277557 0.025668 "
                         "0.126701 -0.306756 -0.213076 0.088728",
        ("train", 0, -1): "1.261441 -0.63835 0.217443 0.263384 0.391115 -0.176897 -0.510697 0.020526 "
                          "-0.217709 -0.219071 -0.033314 -0.175986",
        ("train", -1, 0): "1.240598 -0.352572 0.202753 -0.819913 -0.0385 -0.385671 -0.021062 0.434753 "
                          "-0.200198 -0.184956 0.050853 0.061848",
        ("test", 0, 0): "1.635533 0.024848 0.432087 -0.361914 -0.074776 -0.693481 -0.229621 0.261503 "
                        "-0.089421 -0.020431 -0.008612 0.139754",
        ("test", -1, -1): "1.177449 -0.40408 0.052026 -0.284812 0.42984 -0.203484 -0.072393 -0.080955 "
                          "-0.244424 -0.001849 -0.016634 0.224688",
    }
    for (split, i, t), frame in text.items():
        got = raw[split][0][i][t]
        assert got.tolist() == [float(v) for v in frame.split()], (split, i, t)
    assert [raw["train"][0][0].shape[0], raw["train"][0][-1].shape[0],
            raw["test"][0][0].shape[0], raw["test"][0][-1].shape[0]] == [20, 9, 19, 11]
    assert raw["train"][1][-1] == "9" and raw["test"][1][0] == "1"


def test_padded_dataset_is_built_from_the_raw_utterances(raw):
    ds = japanese_vowels(normalize=False)
    for X, L, (seqs, labels), y in ((ds.X_train, ds.len_train, raw["train"], ds.y_train),
                                   (ds.X_test, ds.len_test, raw["test"], ds.y_test)):
        assert X.shape == (len(seqs), 29, 12) and L.tolist() == [s.shape[0] for s in seqs]
        for i, s in enumerate(seqs):
            assert np.array_equal(X[i, : len(s)], s) and not X[i, len(s):].any()
        assert (y + 1).tolist() == [int(c) for c in labels]


def test_sdist_carries_the_dataset_and_its_readme(tmp_path):
    r = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (sdist,) = tmp_path.glob("rnncore-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"rnncore/data/japanese_vowels.npz", "rnncore/data/basic_motions.npz",
            "rnncore/data/sms_spam.csv.gz", "rnncore/data/README.md", "tools/make_japanese_vowels.py",
            "tools/make_basic_motions.py"} <= names


def test_package_data_is_declared_for_the_wheel():
    # setuptools copies package-data into the wheel (and into build/ for editable installs).
    from setuptools.config.pyprojecttoml import read_configuration

    cfg = read_configuration(ROOT / "pyproject.toml")
    patterns = cfg["tool"]["setuptools"]["package-data"]["rnncore"]
    data = ROOT / "rnncore"
    matched = {p.relative_to(data).as_posix() for pat in patterns for p in data.glob(pat)}
    assert matched == {"data/japanese_vowels.npz", "data/basic_motions.npz", "data/sms_spam.csv.gz",
                       "data/README.md"}


def test_basic_motions_counts_and_values_are_the_archive_text():
    # the archive's description: 40 train / 40 test recordings of 100 steps, 6 channels, 10 per
    # activity per split; the first step of the first training recording and the last step of
    # the last test recording copied from the text of BasicMotions_TRAIN.ts / _TEST.ts
    raw = basic_motions_raw()
    (X, y), (Xt, yt) = raw["train"], raw["test"]
    assert X.shape == Xt.shape == (40, 100, 6) and X.dtype == np.float64
    for labels in (y, yt):
        assert sorted(set(labels)) == ["Badminton", "Running", "Standing", "Walking"]
        assert all(labels.count(c) == 10 for c in set(labels))
    assert X[0, 0].tolist() == [0.079106, 0.394032, 0.551444, 0.351565, 0.02397, 0.633883]
    assert X[0, :3, 0].tolist() == [0.079106, 0.079106, -0.903497]
    assert Xt[-1, -1].tolist() == [-2.074749, -6.892377, 4.848379, -1.35033, -1.203844, -1.77647]
    assert y[0] == "Standing" and yt[-1] == "Badminton"


def test_basic_motions_dataset_is_normalised_with_training_statistics():
    raw = basic_motions_raw()
    ds = basic_motions()
    assert ds.classes == ["Standing", "Running", "Walking", "Badminton"] and ds.num_features == 6
    assert [ds.classes[k] for k in ds.y_test] == raw["test"][1]
    assert ds.len_train.tolist() == [100] * 40 and ds.len_test.tolist() == [100] * 40
    flat = ds.X_train.reshape(-1, 6)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(flat.std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(ds.X_test * ds.std + ds.mean, raw["test"][0], rtol=0, atol=1e-12)
    assert np.array_equal(basic_motions(normalize=False).X_test, raw["test"][0])
