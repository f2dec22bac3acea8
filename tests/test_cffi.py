"""The standalone shared library through cffi (ABI mode): the C API exactly as an embedded user
sees it, with the declarations taken from csrc/include/rnncore.h itself. Outputs must equal the
Cython engine's bit for bit (same sources, same flags, same ISA), on every ISA this CPU runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cffi
import numpy as np
import pytest

import rnncore as rc
from rnncore.io.rnc import write_rnc

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"


@pytest.fixture(scope="module")
def api():
    r = subprocess.run(["make", "-C", str(CSRC), "shared"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    header = subprocess.run(["cc", "-E", "-P", f"-I{CSRC / 'include'}", "-"], input='#include "rnncore.h"\n',
                            capture_output=True, text=True, check=True).stdout
    ffi = cffi.FFI()
    ffi.cdef(header[header.index("typedef enum rnc_status"):])  # the API, without libc's headers
    lib = ffi.dlopen(str(CSRC / "build" / "librnncore.so"))
    return ffi, lib


def _aligned(ffi, nbytes: int):
    """Caller memory, 64-byte aligned (kept alive by the returned owner)."""
    owner = ffi.new("char[]", nbytes + 64)
    addr = int(ffi.cast("uintptr_t", owner))
    return owner, ffi.cast("char *", owner) + (-addr % 64)


class CModel:
    """A model, a batch-1 state and run() scratch, all in memory this test owns."""

    def __init__(self, ffi, lib, data: bytes, isa: str | None = None) -> None:
        self.ffi, self.lib = ffi, lib
        self._buf, buf = _aligned(ffi, len(data))
        ffi.memmove(buf, data, len(data))
        self.m = ffi.new("rnc_model *")
        self._check(lib.rnc_model_init(self.m, buf, len(data)))
        if isa is not None:
            code = ffi.new("rnc_isa *")
            self._check(lib.rnc_isa_from_name(isa.encode(), code))
            self._check(lib.rnc_model_set_isa(self.m, code[0]))
        self.info = ffi.new("rnc_model_info *")
        self._check(lib.rnc_model_get_info(self.m, self.info))
        size = ffi.new("size_t *")
        self._check(lib.rnc_state_size(self.m, 1, size))
        self._state_mem, mem = _aligned(ffi, size[0])
        self.s = ffi.new("rnc_state *")
        self._check(lib.rnc_state_init(self.m, 1, mem, size[0], self.s))

    def _check(self, status: int) -> None:
        assert status == 0, self.ffi.string(self.lib.rnc_status_str(status)).decode()

    def isa(self) -> str:
        code = self.ffi.new("rnc_isa *")
        name = self.ffi.new("char **")
        self._check(self.lib.rnc_model_get_isa(self.m, code))
        self._check(self.lib.rnc_isa_name(code[0], self.ffi.cast("const char **", name)))
        return self.ffi.string(name[0]).decode()

    def steps(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], self.info.output_size), np.float32)
        y = self.ffi.new("float[]", self.info.output_size)
        for t in range(x.shape[0]):
            xt = np.ascontiguousarray(x[t], np.float32)
            self._check(self.lib.rnc_step(self.m, self.s, self.ffi.from_buffer("float[]", xt), y))
            out[t] = np.frombuffer(self.ffi.buffer(y), np.float32)
        return out

    def run(self, x: np.ndarray) -> np.ndarray:
        steps = x.shape[0]
        self._check(self.lib.rnc_state_reset(self.s))
        size = self.ffi.new("size_t *")
        self._check(self.lib.rnc_run_scratch_size(self.m, 1, steps, size))
        _owner, scratch = _aligned(self.ffi, size[0])
        xs = np.ascontiguousarray(x, np.float32)
        y = np.zeros((steps, self.info.output_size), np.float32)
        ffi = self.ffi
        self._check(self.lib.rnc_run(self.m, self.s, ffi.from_buffer("float[]", xs), ffi.NULL, steps,
                                     ffi.from_buffer("float[]", y), scratch, size[0]))
        return y


def _spec(precision: str, kind: str, rng) -> dict:
    g = {"gru": 3, "lstm": 4, "rnn": 1}[kind]
    h, i = 37, 11

    def w(rows, cols):
        return rng.uniform(-0.4, 0.4, (rows, cols))

    return {"precision": precision, "input_size": i,
            "layers": [{"kind": kind, "weights": {"weight_ih": w(g * h, i), "weight_hh": w(g * h, h),
                                                  "bias_ih": rng.uniform(-0.1, 0.1, g * h),
                                                  "bias_hh": rng.uniform(-0.1, 0.1, g * h)}},
                       {"kind": kind, "weights": {"weight_ih": w(g * 16, h), "weight_hh": w(g * 16, 16)}}],
            "head": {"weight": w(4, 16), "bias": rng.uniform(-0.1, 0.1, 4), "activation": "softmax"}}


@pytest.mark.parametrize("precision", ["q8", "f32"])
@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_cffi_equals_engine(api, precision: str, kind: str) -> None:
    ffi, lib = api
    rng = np.random.default_rng(3)
    data = write_rnc(_spec(precision, kind, rng))
    x = rng.uniform(-2, 2, (19, 11)).astype(np.float32)
    eng = rc.load(data)
    for isa in rc.isa()["available"]:
        m = CModel(ffi, lib, data, isa)
        assert m.isa() == isa
        eng.set_isa(isa)
        stream = eng.stream(1)
        want_steps = np.stack([stream.step(x[t:t + 1])[0] for t in range(len(x))])
        want_run = eng.run(x[None])[0]
        np.testing.assert_array_equal(m.steps(x), want_steps, err_msg=f"{kind} {precision} {isa} step")
        np.testing.assert_array_equal(m.run(x), want_run, err_msg=f"{kind} {precision} {isa} run")
        np.testing.assert_allclose(want_run.sum(axis=1), 1.0, rtol=1e-5)  # softmax head


def test_cffi_errors(api) -> None:
    """Bad input comes back as a status, never a crash."""
    ffi, lib = api
    m = ffi.new("rnc_model *")
    owner, buf = _aligned(ffi, 256)
    assert lib.rnc_model_init(m, buf, 256) == lib.RNC_E_MAGIC
    assert lib.rnc_model_init(m, ffi.NULL, 0) != 0
    assert ffi.string(lib.rnc_status_str(lib.RNC_E_CHECKSUM)) != b""
    rng = np.random.default_rng(0)
    data = bytearray(write_rnc(_spec("q8", "gru", rng)))
    data[200] ^= 0xFF
    owner, buf = _aligned(ffi, len(data))
    ffi.memmove(buf, bytes(data), len(data))
    assert lib.rnc_model_init(m, buf, len(data)) == lib.RNC_E_CHECKSUM
