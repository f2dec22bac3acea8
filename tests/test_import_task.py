"""Task level: PyTorch-trained GRU/LSTM classifiers on JapaneseVowels keep their predictions after import
(reference and f32 engine identical, q8 engine within half a point)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "import_japanese_vowels.py"


def _example():
    spec = importlib.util.spec_from_file_location("import_japanese_vowels", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def data():
    from rnncore.datasets import japanese_vowels

    return japanese_vowels(dtype="float32")


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_trained_classifier_predicts_the_same_after_import(kind, data):
    r = _example().evaluate(kind, data, hidden=16, epochs=25, seed=0, engines=True)
    assert r["structure"] == [kind, "LastStep", "Linear"]
    acc = r["accuracy"]
    assert acc["torch"]["accuracy"] > 0.85          # a real model, not noise (chance is 1/9)
    scale = max(1.0, float(np.abs(r["torch"]).max()))
    for runtime in ("reference", "engine_f32"):     # float32 both: same predictions, same logits
        assert acc[runtime]["differ_from_torch"] == 0
        assert acc[runtime]["max_logit_diff"] <= 1e-5 * scale
    # int8: at most half a point of test accuracy lost
    assert acc["engine_q8"]["accuracy"] >= acc["torch"]["accuracy"] - 0.005
