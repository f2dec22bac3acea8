"""Fuzz tests of the Python model readers: ``read_rnc``, ``from_onnx`` and ``from_keras``.

Mutated inputs (hypothesis, a bounded number of examples, derandomized so CI is reproducible)
must either raise the reader's documented exception type with a message, or give a model that is
right by an independent check; never another exception, a crash or a hang:

- ``read_rnc`` (``ValueError``): the mutated ``.rnc`` bytes get a valid checksum most of the time
  so the mutations reach the field checks; an accepted file must describe a model within the
  documented limits (sizes, finite weights, q8 values in [-127, 127], positive scales) whose
  weights have the shapes its sizes give, and an f32 one must survive ``write_rnc`` / ``read_rnc``
  unchanged.
- ``from_onnx`` (``ValueError``, protobuf errors included): byte mutations of serialized models
  and edits of their attributes and weight tensors; an accepted model must run in onnxruntime
  and give its outputs.
- ``from_keras`` (``ValueError`` / ``FileNotFoundError``): edits of a ``.keras`` file's
  config.json and byte mutations of the archive; an accepted model must give Keras's outputs.

The C loader has its own libFuzzer harness (csrc/fuzz/fuzz_model.c, docs/fuzzing.md).
"""

from __future__ import annotations

import io
import os
import signal
import struct
import sys
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from rnncore.io.rnc import read_rnc, write_rnc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_FEATURES, MAX_HIDDEN = 1 << 20, 65536
CRC_START = 16  # docs/rnc-format.md: the CRC32 covers bytes [16, file_size)


@contextmanager
def no_hang(seconds: int = 60):
    """Fail (instead of hanging the suite) if the block runs for more than ``seconds``."""
    def fail(*_):
        raise AssertionError(f"the reader did not return within {seconds} s (a hang)")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------- .rnc files

def _rnc_seeds() -> list[bytes]:
    """Small models of every kind: f32/q8, RNN tanh/relu, GRU both forms, LSTM, bidirectional,
    embeddings, heads, last-step pooling, static scales; versions 2 and 1."""
    rng = np.random.default_rng(14)
    specs = [
        dict(kind="gru", sizes=[3, 5], precision="f32"),
        dict(kind="gru", sizes=[3, 5], precision="q8", reset_after=False, scales=(0.03, 0.01), head=2,
             head_act="tanh"),
        dict(kind="lstm", sizes=[2, 4, 3], precision="q8", bidirectional=True, head=2, head_act="softmax"),
        dict(kind="lstm", sizes=[2, 3], precision="f32", head=2, head_act="sigmoid"),
        dict(kind="rnn", sizes=[4, 6], precision="q8", embedding=5, last_step=True, head=3,
             head_act="softmax"),
        dict(kind="rnn", sizes=[4, 6], precision="f32", nonlinearity="relu", bidirectional=True,
             last_step=True, last_bidir=True),
    ]
    out = []
    for i, kw in enumerate(specs):
        spec = gen_vectors.make_spec(rng, **kw)
        out.append(write_rnc(spec, version=2))
        if i % 2 == 0:
            out.append(write_rnc(spec, version=1))
    return out


RNC_SEEDS = _rnc_seeds()
_U32 = [0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 127, 128, 255, 1024, 0x7FFF, 65536, 65537, MAX_FEATURES,
        MAX_FEATURES + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF,
        0x7F800000, 0xFF800000, 0x7FC00000, 0x3F800000, 0xBF800000, 0x00000001]


def _fix_crc(b: bytearray) -> None:
    (size,) = struct.unpack_from("<I", b, 8)
    if CRC_START <= size <= len(b):
        struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[CRC_START:size])) & 0xFFFFFFFF)


@st.composite
def mutated_rnc(draw) -> bytes:
    b = bytearray(draw(st.sampled_from(RNC_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        # the headers, descriptors and records are at the front: mutate there more often
        pos = draw(st.one_of(st.integers(0, min(len(b), 320) - 1), st.integers(0, len(b) - 1)))
        how = draw(st.sampled_from(["byte", "bit", "u32", "copy"]))
        if how == "byte":
            b[pos] = draw(st.integers(0, 255))
        elif how == "bit":
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "u32":
            pos -= pos % 4
            if pos + 4 <= len(b):
                struct.pack_into("<I", b, pos, draw(st.sampled_from(_U32)))
        else:  # a block of the file copied elsewhere (references, records)
            src, n = draw(st.integers(0, len(b) - 1)), draw(st.sampled_from([4, 8, 16, 48]))
            chunk = b[src:src + n][: len(b) - pos]
            b[pos:pos + len(chunk)] = chunk
    end = draw(st.sampled_from(["keep", "keep", "cut", "grow"]))
    if end == "cut":
        del b[draw(st.integers(0, len(b) - 1)):]
    elif end == "grow":
        b += bytes(draw(st.integers(1, 128)))
        if draw(st.booleans()) and len(b) >= 16:
            struct.pack_into("<I", b, 8, len(b))
    if len(b) >= 16 and draw(st.integers(0, 9)) > 0:
        _fix_crc(b)
    return bytes(b)


def _check_description(d: dict) -> None:
    """What an accepted file must describe (docs/rnc-format.md, rnncore/io/rnc.py write_rnc)."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}
    assert d["precision"] in ("f32", "q8")
    assert 1 <= d["input_size"] <= MAX_FEATURES
    feat = d["input_size"]
    emb = d.get("embedding")
    if emb:
        w = np.asarray(emb["weight"])
        assert w.ndim == 2 and w.shape[1] == d["input_size"] and np.all(np.isfinite(w))
    assert 1 <= len(d["layers"]) <= 16
    for layer in d["layers"]:
        g, w = gates[layer["kind"]], layer["weights"]
        sufs = [""] + (["_reverse"] if layer["bidirectional"] else [])
        h = w["weight_hh"].shape[1]
        assert 1 <= h <= MAX_HIDDEN
        for s in sufs:
            assert w["weight_ih" + s].shape == (g * h, feat), (layer["kind"], w["weight_ih" + s].shape)
            assert w["weight_hh" + s].shape == (g * h, h)
            assert w["bias_ih" + s].shape == (g * h,) and w["bias_hh" + s].shape == (g * h,)
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                assert np.all(np.isfinite(w[k + s]))
        if d["precision"] == "q8":
            for k, q in layer["qweights"].items():
                assert q.dtype == np.int8 and q.min(initial=0) >= -127, k
            for k, s in layer["scales"].items():
                assert np.all(np.isfinite(s)) and np.all(s >= 0), k
        feat = h * len(sufs)
    head = d.get("head")
    if head:
        assert head["weight"].shape == (head["bias"].shape[0], feat)
        assert np.all(np.isfinite(head["weight"])) and np.all(np.isfinite(head["bias"]))


def _same(a, b, path="") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def test_rnc_seeds_are_read():
    """The seeds themselves are valid (else every mutation below would test only the refusals)."""
    for data in RNC_SEEDS:
        _check_description(read_rnc(data))


@FUZZ
@given(mutated_rnc())
def test_read_rnc_mutations_raise_valueerror_or_give_a_valid_model(data):
    with no_hang():
        try:
            d = read_rnc(data)
        except ValueError as e:
            assert str(e), "a refusal must say why"
            event("refused")
            return
    event("accepted")
    _check_description(d)
    if d["precision"] == "f32":
        _same(read_rnc(write_rnc(d, version=2)), d)


@FUZZ
@given(st.binary(max_size=512))
def test_read_rnc_random_bytes(data):
    with no_hang():
        with pytest.raises(ValueError):
            read_rnc(data)


# ---------------------------------------------------------------------------------------- ONNX

def _onnx_seeds() -> list:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:  # the test extra is not installed: the ONNX test below skips
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from onnx_cases.custom import make_case

    return [make_case("GRU", T=3, B=2, I=2, H=3, seed=1),
            make_case("LSTM", direction="bidirectional", T=3, B=2, I=2, H=2, seed=2),
            make_case("RNN", direction="reverse", T=3, B=2, I=3, H=2, seq_lens=[3, 1], seed=3,
                      activations=["Relu"]),
            make_case("GRU", T=3, B=2, I=2, H=2, linear_before_reset=1, initial=True, seed=4)]


@st.composite
def mutated_onnx(draw):
    import onnx
    from onnx import helper, numpy_helper

    model, feeds = draw(st.sampled_from(ONNX_SEEDS))
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = m.graph.node[0]
    how = draw(st.sampled_from(["bytes", "attribute", "tensor", "tensor", "io"]))
    if how == "attribute":
        # (not "layout": onnxruntime implements only layout 0)
        name = draw(st.sampled_from(["hidden_size", "direction", "activations", "clip",
                                     "linear_before_reset", "input_forget", "bogus"]))
        keep = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(keep)
        value = draw(st.one_of(st.integers(-2, 8), st.sampled_from(["forward", "reverse",
                                                                    "bidirectional", "sideways"]),
                               st.lists(st.sampled_from(["Tanh", "Relu", "Sigmoid", "Gelu"]),
                                        min_size=1, max_size=4),
                               st.sampled_from([-1.0, 0.0, 0.5, 3.0, float("nan"), float("inf")])))
        node.attribute.append(helper.make_attribute(name, value))
    elif how == "tensor":
        i = draw(st.integers(0, len(m.graph.initializer) - 1))
        t = numpy_helper.to_array(m.graph.initializer[i])
        edit = draw(st.sampled_from(["shape", "nan", "drop", "dtype"]))
        if edit == "shape":
            axis = draw(st.integers(0, t.ndim - 1))
            t = np.delete(t, 0, axis) if draw(st.booleans()) and t.shape[axis] > 1 else \
                np.concatenate([t, t.take([0], axis)], axis)
        elif edit == "nan":
            t = t.copy()
            t.flat[draw(st.integers(0, t.size - 1))] = draw(st.sampled_from([np.nan, np.inf, 1e30]))
        elif edit == "drop":
            t = t.reshape(-1)[: draw(st.integers(0, t.size - 1))]
        else:
            t = t.astype(draw(st.sampled_from([np.float64, np.int32, np.float16])))
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(t, m.graph.initializer[i].name))
    elif how == "io":
        ins = list(node.input)
        j = draw(st.integers(0, len(ins) - 1))
        ins[j] = draw(st.sampled_from(["", "W", "R", "B", "X", "nope"]))
        del node.input[:]
        node.input.extend(ins)
    data = m.SerializeToString()
    if how == "bytes":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            del b[draw(st.integers(0, len(b) - 1)):]
        data = bytes(b)
    return data, feeds


ONNX_SEEDS = _onnx_seeds()


def _ort(data: bytes, feeds: dict):
    """onnxruntime's outputs, or None when it refuses the model or these inputs."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        want = {i.name for i in sess.get_inputs()}
        return dict(zip(names, sess.run(names, {k: v for k, v in feeds.items() if k in want}),
                        strict=True))
    except Exception:  # noqa: BLE001 - any refusal by onnxruntime
        return None


@pytest.mark.skipif(not ONNX_SEEDS, reason="onnx and onnxruntime (the test extra) are not installed")
@FUZZ
@given(mutated_onnx())
def test_from_onnx_mutations_raise_valueerror_or_match_onnxruntime(case):
    from rnncore.io.onnx_import import from_onnx, onnx_run

    data, feeds = case
    with no_hang():
        try:
            model = from_onnx(data)
        except ValueError as e:
            assert str(e)
            event("refused")
            return
    event("accepted")
    ref = _ort(data, feeds)
    if ref is None:
        # onnxruntime supports fewer IR versions and opsets than the format allows: a model it
        # refuses only for those is compared with the versions set back to the seed's
        import onnx

        m = onnx.load_from_string(data)
        m.ir_version = 8
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 14
        ref = _ort(m.SerializeToString(), feeds)
    assert ref is not None, "from_onnx accepted a model onnxruntime refuses"
    # weights mutated into huge values overflow float32 onnxruntime where the float64 reference
    # does not (or both, with Inf against NaN): no comparison of importers there
    assume(all(np.all(np.abs(v) < 1e3) for v in ref.values()))
    got = onnx_run(model, feeds)
    for k in ref:
        if k in got:
            scale = max(1.0, float(np.abs(ref[k][np.isfinite(ref[k])]).max(initial=0)))
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5 * scale, err_msg=k)


# --------------------------------------------------------------------------------------- Keras

def _keras_seed(tmp: Path) -> bytes:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(7)
    L = keras.layers
    model = keras.Sequential([keras.Input((None, 3)), L.GRU(4, return_sequences=True),
                              L.LSTM(3), L.Dense(2)])
    path = tmp / "seed.keras"
    model.save(path)
    return path.read_bytes()


@st.composite
def mutated_keras(draw, seed: bytes) -> bytes:
    zin = zipfile.ZipFile(io.BytesIO(seed))
    files = {n: zin.read(n) for n in zin.namelist()}
    how = draw(st.sampled_from(["config", "config", "weights", "archive"]))
    if how == "config":
        cfg = bytearray(files["config.json"])
        for key, values in (
                (b'"units": ', [b"0", b"1", b"7", b"-3", b"1e9", b'"x"']),
                (b'"return_sequences": ', [b"true", b"false"]),
                (b'"reset_after": ', [b"true", b"false"]),
                (b'"activation": ', [b'"relu"', b'"softmax"', b'"gelu"', b'"nope"']),
                (b'"batch_shape": ', [b"[null, null, 4]", b"[null, null, 3]", b"[]"])):
            at = cfg.find(key)
            if at >= 0 and draw(st.booleans()):
                end = at + len(key)
                stop = min(i for i in (cfg.find(b",", end), cfg.find(b"}", end)) if i >= 0)
                if key == b'"batch_shape": ':
                    stop = cfg.find(b"]", end) + 1
                cfg[end:stop] = draw(st.sampled_from(values))
        files["config.json"] = bytes(cfg)
    elif how == "weights":
        w = bytearray(files["model.weights.h5"])
        for _ in range(draw(st.integers(1, 8))):
            w[draw(st.integers(0, len(w) - 1))] = draw(st.integers(0, 255))
        files["model.weights.h5"] = bytes(w)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    data = bytearray(out.getvalue())
    if how == "archive":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def test_from_keras_mutations_raise_valueerror_or_match_keras(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_fuzz")
    seed = _keras_seed(tmp)
    import keras

    from rnncore.io.keras_import import from_keras

    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32)

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(mutated_keras(seed))
    def check(data):
        path = tmp / "m.keras"
        path.write_bytes(data)
        with no_hang(120):
            try:
                ours = from_keras(str(path), dtype="float32")
            except ValueError as e:
                assert str(e)
                event("refused")
                return
        event("accepted")
        ref = keras.ops.convert_to_numpy(keras.saving.load_model(path, compile=False)(x))
        y = ours.forward(x)
        y = y[0] if isinstance(y, tuple) else y
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)

    check()
