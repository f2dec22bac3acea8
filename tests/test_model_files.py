"""Model files from disk are bounded: special files and files above the limit are refused before
they are read (rc.load, export_c, the importers, ``rnncore convert`` / ``export-c``)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from child_env import child_env

import rnncore as rc
from rnncore.io import from_keras, from_onnx
from rnncore.io.convert import load_any
from rnncore.io.export_c import export_c
from rnncore.io.files import MAX_MODEL_BYTES, read_file
from rnncore.io.rnc import write_rnc

ENDLESS = "/dev/zero"  # reading it whole never ends: the old rc.load ran into MemoryError


@pytest.fixture(scope="module")
def model_bytes():
    rng = np.random.default_rng(0)
    w = {"weight_ih": rng.standard_normal((6, 3)), "weight_hh": rng.standard_normal((6, 2))}
    return write_rnc({"precision": "f32", "input_size": 3, "layers": [{"kind": "gru", "weights": w}]})


def test_default_limit_is_2_gib():
    assert MAX_MODEL_BYTES == 2 * 1024**3


READERS = {"rc.load": rc.load, "export_c": export_c, "from_onnx": from_onnx, "from_keras": from_keras,
           "load_any (.pt)": load_any}


@pytest.mark.skipif(not os.path.exists(ENDLESS), reason="needs /dev/zero")
@pytest.mark.parametrize("reader", sorted(READERS))
def test_endless_character_device_is_refused_unread(reader, tmp_path):
    path = tmp_path / "zero.pt"
    os.symlink(ENDLESS, path)  # a link to /dev/zero named like a model: followed, then refused
    for p in (ENDLESS, path) if reader != "load_any (.pt)" else (path,):
        with pytest.raises(ValueError, match="expected a regular file, got a character device"):
            READERS[reader](p)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.rnc"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(ValueError, match=r"model.rnc: .rnc model file: expected a regular file, got a FIFO"):
        rc.load(fifo)
    with pytest.raises(ValueError, match="got a FIFO"):
        from_onnx(fifo)


def test_files_above_the_limit_are_refused_and_the_limit_can_be_raised(tmp_path, model_bytes):
    path = tmp_path / "m.rnc"
    path.write_bytes(model_bytes)
    n = len(model_bytes)
    with pytest.raises(ValueError, match=rf"m.rnc: .rnc model file of {n} bytes is larger than the limit "
                                         rf"max_bytes={n - 1}"):
        rc.load(path, max_bytes=n - 1)
    assert rc.load(path, max_bytes=n).data == model_bytes  # exactly at the limit: read
    with pytest.raises(ValueError, match=f"larger than the limit max_bytes={n - 1}"):
        export_c(path, max_bytes=n - 1)
    (tmp_path / "m.onnx").write_bytes(b"x" * 100)
    too_big = "ONNX model file of 100 bytes is larger than the limit max_bytes=99"
    with pytest.raises(ValueError, match=too_big):
        from_onnx(tmp_path / "m.onnx", max_bytes=99)
    with pytest.raises(ValueError, match="max_bytes: expected a positive int, got 0"):
        rc.load(path, max_bytes=0)


def test_read_file_never_reads_more_than_limit_plus_one(tmp_path, monkeypatch):
    """A file that grows between the size check and the read is cut and refused."""
    path = tmp_path / "grows.rnc"
    path.write_bytes(b"a" * 10)
    import rnncore.io.files as files

    monkeypatch.setattr(files, "check_file", lambda *a: 10)  # as if it was 10 bytes at the check
    path.write_bytes(b"a" * 1000)
    with pytest.raises(ValueError, match="grew past the limit max_bytes=10"):
        read_file(path, 10)


@pytest.mark.skipif(not os.path.exists(ENDLESS), reason="needs /dev/zero")
@pytest.mark.parametrize("argv,msg", [
    (["export-c", ENDLESS, "-o", "{tmp}/out.c"],
     "rnncore export-c: /dev/zero: .rnc model file: expected a regular file, got a character device"),
    (["export-c", "{tmp}/m.rnc", "-o", "{tmp}/out.c", "--max-bytes", "10"],
     "larger than the limit max_bytes=10"),
    (["convert", "{tmp}/zero.onnx", "-o", "{tmp}/out.rnc"],
     "zero.onnx: ONNX model file: expected a regular file, got a character device"),
])
def test_cli_prints_one_line_for_special_and_oversized_files(tmp_path, model_bytes, argv, msg):
    (tmp_path / "m.rnc").write_bytes(model_bytes)
    os.symlink(ENDLESS, tmp_path / "zero.onnx")
    argv = [a.format(tmp=tmp_path) for a in argv]
    r = subprocess.run([sys.executable, "-m", "rnncore", *argv], capture_output=True, text=True,
                       timeout=120, env=child_env())
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
    assert not (tmp_path / "out.c").exists() and not (tmp_path / "out.rnc").exists()
