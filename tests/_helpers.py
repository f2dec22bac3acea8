"""Helpers shared by the engine tests: seeded inputs, the q8 engine against the NumPy q8 reference on
every ISA path of this CPU, a stream's steps against the whole-sequence run, and a damaged file
refused alike by both loaders."""

from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import pytest

import rnncore as rc
from rnncore.io.rnc import RECORD_KINDS, RncFormatError, check_rnc, read_rnc
from rnncore.io.rnc_layout import v2_records
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402
from rnc_mutations import fix_crc  # noqa: E402,F401  (an edited file's checksum set again)

ISAS = rc.isa()["available"]


def randn32(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Standard normal samples of ``np.random.default_rng(seed)`` times ``scale``, as float32, of
    the given shape."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def c_equals_q8_reference(e: rc.Engine, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Assert that the q8 engine ``e`` runs ``X`` ``(batch, T, in)`` (with ``lengths`` ``(batch,)``
    or None) bit for bit as the NumPy q8 reference of its file does, on every ISA path of this CPU
    (the engine is left on the last one); return the reference output ``(batch, T, out)``."""
    qm = qmodel_from_rnc(read_rnc(e.data))
    ref, _ = gen_vectors.q8_reference_forward(qm, X, lengths)
    for isa in ISAS:
        e.set_isa(isa)
        np.testing.assert_array_equal(e.run(X, lengths), ref, err_msg=isa)
    return ref


def stream_steps(s, X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Steps ``start .. stop - 1`` of ``X`` ``(batch, T, in)`` (default: to the end), each a copy,
    through the stream ``s``; its outputs stacked ``(batch, stop - start, out)``."""
    stop = X.shape[1] if stop is None else stop
    return np.stack([s.step(X[:, t].copy()) for t in range(start, stop)], 1)


def assert_stream_restores(e: rc.Engine, X: np.ndarray, whole: np.ndarray, split: int, err_msg: str = ""):
    """A new stream of ``e`` fed ``X`` ``(batch, T, in)`` step by step equals ``whole`` (the run of
    ``X``, ``(batch, T, out)``) bit for bit; its state saved after ``split`` steps and restored at
    the end gives the steps from ``split`` on again. Return the stream."""
    s = e.stream(X.shape[0])
    steps = stream_steps(s, X, 0, split)
    saved = s.state
    steps = np.concatenate([steps, stream_steps(s, X, split)], 1)
    np.testing.assert_array_equal(steps, whole, err_msg=err_msg)
    s.state = saved
    np.testing.assert_array_equal(stream_steps(s, X, split), whole[:, split:], err_msg=err_msg)
    return s


def refused_alike(data: bytes, want: str, status: str | None = None, load=rc.load) -> None:
    """Both loaders refuse the file ``data`` with the message ``want``: the Python reader
    (``check_rnc``: an RncFormatError, of ``status`` when given) and the C loader through ``load``
    (``rc.load`` or ``rc.Engine``: a ValueError)."""
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(data)
    if status is not None:
        assert e.value.status == status
    with pytest.raises(ValueError, match=re.escape(want)):
        load(data)


def record_at(data: bytes, kind: str) -> int:
    """The byte offset of the first record of ``kind`` (a name of ``RECORD_KINDS``) in a v2 file."""
    for k, pos, _size in v2_records(data):
        if k == RECORD_KINDS[kind]:
            return pos
    raise AssertionError(f"no {kind} record")


def onnx_export_matches_numpy(m, seed: int = 23) -> None:
    """``rc.io.to_onnx`` of the float ``rc.nn`` model ``m`` (input size 6) and of its f32 ``.rnc``
    file, run by onnxruntime with ``lengths``: the NumPy model's outputs (rtol 1e-5, atol 1e-6)."""
    ort = pytest.importorskip("onnxruntime")
    m.load_state_dict({k: np.asarray(v, np.float32).astype(np.float64) for k, v in m.state_dict().items()})
    X, L = randn32((3, 7, 6), seed=seed), np.array([7, 2, 5])
    want = m.forward(X.astype(np.float64), lengths=L)
    for model in (m, rc.compile(m).data):
        proto = rc.io.to_onnx(model, None, lengths=True)
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": X, "lengths": L.astype(np.int32)})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def torch_onnx_export(factory: str, args: tuple, shape: tuple[int, ...], axes: dict[int, str], *,
                      dynamo: bool, opset: int, output: str = "y") -> bytes:
    """The ``torch.onnx.export`` bytes of the module ``factory(*args)`` on an example input of
    ``shape`` whose ``axes`` are dynamic; the input is named ``x``, the output ``output``.

    ``factory`` is ``"test_module:function"``, a module of tests/ (``args`` must be literals). The
    classic exporter runs in this process; the dynamo exporter in a fresh one: an in-process dynamo
    export leaves state behind that makes a later one in the same process specialise its time axis
    (torch 2.13)."""
    import importlib
    import io
    import subprocess
    import tempfile
    import warnings

    import torch

    module, function = factory.split(":")
    tests = str(pathlib.Path(__file__).resolve().parent)
    if not dynamo:
        if tests not in sys.path:
            sys.path.insert(0, tests)
        net = getattr(importlib.import_module(module), function)(*args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = io.BytesIO()
            torch.onnx.export(net, (torch.randn(shape),), f, input_names=["x"], output_names=[output],
                              dynamo=False, dynamic_axes={"x": axes}, opset_version=opset)
            return f.getvalue()
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "m.onnx"
        code = ("import importlib, logging, sys, warnings, torch; sys.path.insert(0, sys.argv[1]); "
                "warnings.simplefilter('ignore'); logging.getLogger('torch.onnx').setLevel(logging.ERROR); "
                f"net = importlib.import_module({module!r}).{function}(*{args!r}); "
                f"torch.onnx.export(net, (torch.randn({tuple(shape)!r}),), sys.argv[2], input_names=['x'], "
                f"output_names=[{output!r}], dynamo=True, dynamic_shapes=({axes!r},), opset_version={opset}, "
                "verbose=False, external_data=False)")
        subprocess.run([sys.executable, "-c", code, tests, str(out)], check=True, capture_output=True)
        return out.read_bytes()


def flat_state(st):
    """The engine's state (PyTorch's stacked form, or a list per layer and direction) as
    PyTorch's ``[h_n]`` / ``[h_n, c_n]``."""
    if isinstance(st, list):
        parts = [e if isinstance(e, tuple) else (e,) for e in st]
        return [np.stack([p[k] for p in parts]) for k in range(len(parts[0]))]
    return list(st) if isinstance(st, tuple) else [st]


def engine_state(template, torch_form):
    """``torch_form`` (``[h]`` or ``[h, c]``, PyTorch's stacked order) in the form the engine's
    state ``template`` has."""
    if isinstance(template, list):
        return [tuple(a[i].astype(np.float32) for a in torch_form) if len(torch_form) == 2
                else torch_form[0][i].astype(np.float32) for i in range(len(template))]
    st = tuple(a.astype(np.float32) for a in torch_form)
    return st if len(st) == 2 else st[0]


def libm_f32(name: str):
    """The C library's float function ``name`` (``"expf"``, ``"log1pf"``, ...) on one float32."""
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    f = getattr(libm, name)
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


class NpWithLibm:
    """numpy with the C library's ``<name>f`` for each of ``names`` on float32 arrays: the functions
    docs/q8-contract.md leaves to the C library (e.g. the pointwise records' sigmoid, tanh, silu,
    softplus, and the head's softmax / log-softmax), whose last bit may differ from NumPy's; other
    dtypes and every other attribute are numpy's."""

    def __init__(self, names: tuple[str, ...] = ("exp", "log1p")) -> None:
        self._fns = {n: libm_f32(n + "f") for n in names}

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._fns:
            return getattr(np, name)
        fn, f = self._fns[name], getattr(np, name)

        def call(x):
            x = np.asarray(x)
            if x.dtype != np.float32:
                return f(x)
            return np.asarray([fn(float(v)) for v in x.reshape(-1)], np.float32).reshape(x.shape)
        return call


class _MathWithLibmErf:
    """math with the C library's erff (front.py's GELU calls ``math.erf`` on each float32 value)."""

    def __init__(self) -> None:
        self.erf = libm_f32("erff")

    def __getattr__(self, name):
        import math

        return getattr(math, name)


def q8_reference_with_libm(e8: rc.Engine, x: np.ndarray, lengths=None) -> np.ndarray:
    """``c_equals_q8_reference`` with the C library's ``expf`` / ``logf`` / ``log1pf`` / ``tanhf`` /
    ``erff`` in the NumPy q8 spec (front.py's records and the head's softmax in reference.py, which
    gen_vectors runs with its own numpy), where docs/q8-contract.md leaves them to the C library."""
    from rnncore.quant import front

    names = ("exp", "log", "log1p", "tanh")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(front, "np", NpWithLibm(names))
        mp.setattr(front, "math", _MathWithLibmErf())
        mp.setattr(gen_vectors, "np", NpWithLibm(names))
        return c_equals_q8_reference(e8, x, lengths)


def q8_check(e8: rc.Engine, e32: rc.Engine, x: np.ndarray, lengths=None, near: bool = True) -> None:
    """A differential fuzz's q8 check: ``e8`` equals the NumPy q8 reference of its file bit for bit on
    every ISA path (:func:`q8_reference_with_libm`), its output is finite and, with ``near``, within
    half of ``max(1, max |y_f32|)`` of the f32 engine ``e32`` (the q8 error is not the subject of a
    fuzz, its bit-exactness is: the bound only catches a q8 file of another model)."""
    q = q8_reference_with_libm(e8, x, lengths)
    assert np.all(np.isfinite(q))
    if near:
        y32 = e32.run(x, lengths)
        assert np.abs(q - y32).max() < 0.5 * max(1.0, float(np.abs(y32).max())), "q8 far from f32"


def fuzz_campaign(check, strategy, examples: int, seed_: int, refusal_key=lambda msg: msg) -> None:
    """A differential fuzz's long local run that goes on past a failure (``python3
    tests/test_*_random_models.py EXAMPLES SEED``): ``check(arch, stats)`` on ``examples`` draws of
    ``strategy`` from ``seed_``, returning ``"compiled"`` or a refusal's message; each failure (a
    mismatch or a crash) printed with its architecture and traceback (not shrunk), then the
    refusals by kind (``refusal_key`` of the message, most common first), the counts and the
    largest errors ``check`` recorded in ``stats``."""
    import traceback
    import warnings
    from collections import Counter

    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.errors import UnsatisfiedAssumption

    stats: dict = {}
    counts: Counter = Counter()
    refusals: Counter = Counter()

    @seed(seed_)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(arch=strategy)
    def run(arch):
        try:
            r = check(arch, stats)
            counts["compiled" if r == "compiled" else "refused"] += 1
            if r != "compiled":
                refusals[refusal_key(r)] += 1
        except UnsatisfiedAssumption:
            raise
        except Exception:  # noqa: BLE001 - a mismatch or a crash is a finding: print it and go on
            counts["failed"] += 1
            print(f"FAILED {arch}\n{traceback.format_exc()}", flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    for msg, n in refusals.most_common():
        print(f"{n:5d} {msg}")
    print(dict(counts), {k: f"{v:.2g}" if isinstance(v, float) else v for k, v in stats.items()})
