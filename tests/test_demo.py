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
    assert lines[0].startswith("JapaneseVowels (UCI, shipped with rnncore): 270 train / 370 test")
    assert "GRU(12 -> 8) -> LastStep -> Linear(8 -> 9)" in lines[1]
    epochs = [s for s in lines if s.startswith("epoch")]
    assert len(epochs) == 2
    for i, s in enumerate(epochs, 1):
        assert re.fullmatch(rf"epoch +{i}/2  loss \d+\.\d{{4}}  accuracy \d\.\d{{4}}  \d+\.\d+s", s), s
    m = re.search(r"test accuracy: (\d\.\d{4}) \((\d+)/370\)", r.stdout)
    assert m and 0 <= float(m.group(1)) <= 1 and int(m.group(2)) == round(float(m.group(1)) * 370)
    assert any(s.startswith("saved model weights") and f"to {out}" in s for s in lines)
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


def test_demo_runs_the_trained_model_on_the_c_engine_and_saves_it(tmp_path):
    # The printed engine accuracies are recomputed here from the saved files: the f32 engine
    # must predict what the NumPy reference (rebuilt from the saved weights) predicts, and the
    # saved q8 .rnc must reproduce the printed q8 accuracy.
    import rnncore as rc
    from rnncore.datasets import japanese_vowels
    from rnncore.demo import build_model

    out = tmp_path / "m.npz"
    r = run("--epochs", "3", "--hidden", "16", "--seed", "1", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.search(r"C engine \((\w+)\): test accuracy f32 (\d\.\d{4}), q8 (\d\.\d{4}); "
                  r"q8 streaming step \d+\.\d+ us", r.stdout)
    assert m, r.stdout
    assert m.group(1) in rc.isa()["available"]
    ds = japanese_vowels()
    model = build_model(16, seed=1)
    model.load_state_dict(dict(np.load(out)))
    ref_pred = model.forward(ds.X_test, lengths=ds.len_test).argmax(1)
    f32_pred = rc.compile(model, precision="f32").run(ds.X_test.astype(np.float32), ds.len_test).argmax(1)
    assert np.array_equal(f32_pred, ref_pred)
    assert float(m.group(2)) == round(float(np.mean(ref_pred == ds.y_test)), 4)
    q8 = rc.load(tmp_path / "m.rnc")
    assert q8.precision == "q8"
    q8_acc = np.mean(q8.run(ds.X_test.astype(np.float32), ds.len_test).argmax(1) == ds.y_test)
    assert float(m.group(3)) == round(float(q8_acc), 4)
