"""`python -m rnncore demo` end to end, in a subprocess, with few epochs."""

import re
import subprocess
import sys

import numpy as np


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnncore", "demo", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_trains_prints_progress_and_saves(tmp_path):
    out = tmp_path / "m.npz"
    r = run("--epochs", "2", "--hidden", "8", "--seed", "3", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("JapaneseVowels (from aeon): 270 train / 370 test")
    assert "GRU(12 -> 8) -> LastStep -> Linear(8 -> 9)" in lines[1]
    epochs = [s for s in lines if s.startswith("epoch")]
    assert len(epochs) == 2
    for i, s in enumerate(epochs, 1):
        assert re.fullmatch(rf"epoch +{i}/2  loss \d+\.\d{{4}}  accuracy \d\.\d{{4}}  \d+\.\d+s", s), s
    m = re.search(r"test accuracy: (\d\.\d{4}) \((\d+)/370\)", r.stdout)
    assert m and 0 <= float(m.group(1)) <= 1 and int(m.group(2)) == round(float(m.group(1)) * 370)
    assert f"to {out}" in lines[-1]
    sd = np.load(out)
    assert sorted(sd.files) == sorted(["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0",
                                       "2.weight", "2.bias"])
    assert sd["0.weight_ih_l0"].shape == (24, 12) and sd["2.weight"].shape == (9, 8)


def test_demo_default_output_path_and_bad_option(tmp_path):
    r = run("--epochs", "1", "--hidden", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo_model.npz").exists()
    bad = run("--epochs", "0", cwd=tmp_path)
    assert bad.returncode != 0 and "--epochs must be a positive integer, got 0" in bad.stderr
    bad = run("--out", str(tmp_path / "no" / "such" / "dir" / "m.npz"), cwd=tmp_path)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
