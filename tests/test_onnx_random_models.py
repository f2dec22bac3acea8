"""Differential fuzz of the ONNX importer and lowering: random PyTorch models (a front-end, a
recurrent layer, a head) exported by ``torch.onnx.export`` and run three ways against onnxruntime.

hypothesis draws an architecture (:func:`architectures`): the input as ``(B, T, F)``, ``(T, B, F)``
or ``(B, C, T)``; up to three front-end pieces (Conv1d with stride / padding / dilation / groups or a
causal ``F.pad``, BatchNorm1d in eval, LayerNorm, an activation, MaxPool1d / AvgPool1d with padding,
``ceil_mode``, ``count_include_pad``, a per-step Linear), with the transposes between ``(B, C, T)``
and ``(B, T, C)`` that they need; a GRU / LSTM / RNN (1-2 layers, bidirectional or not, batch-first
or not); up to two activations / LayerNorms / per-step Linears after it and a second recurrent
module; a head (every step, the last step, the mean or the maximum over time -- ``y.max(1).values``
or ``F.adaptive_max_pool1d`` --, or 2-3 of the last step, the mean and the maximum concatenated --; a
Linear, Softmax / LogSoftmax).
The module is exported (classic exporter, opset 17) with the batch and time axes dynamic, or static
at batch 1.

The checks (``_check``), all against onnxruntime running the same bytes:

a. the NumPy graph ``from_onnx(blob)`` (float64) within ``_TOL_NUMPY`` of onnxruntime;
b. ``rc.compile(from_onnx(blob))`` compiles (its f32 output within ``_TOL_F32`` at batch 1 and 3,
   and with per-row lengths where the axes are dynamic: a row of length ``L`` equals onnxruntime on
   its first ``L`` steps) or refuses with a ValueError / NotImplementedError naming a node or an op
   of the graph; any other exception, or a mismatch, fails;
c. where it compiles, ``precision="q8"`` (when accepted) equals the NumPy q8 reference of its file
   bit for bit on every ISA path (``_helpers.c_equals_q8_reference``) and is within a loose bound of
   f32 (the q8 error is not the subject here; its bit-exactness is).

Limits, from measurement: errors are taken relative to ``max(1, max |reference|)``; over 800
examples (``RNNCORE_FUZZ_SEED`` 2, 3, 4; docs/fuzzing.md) the largest were 5.1e-6 for the NumPy graph
(float64) and 5.3e-6 for the engine (f32), both against onnxruntime's float32. The limits are 1e-4
for both (about 20 times that): an error of a wrong lowering (a dropped bias, a transposed weight, a
reversed direction, a misplaced pad) is of the order of the output itself.

``RNNCORE_FUZZ_EXAMPLES`` sets the number of examples (100 by default: ~30 s here), ``RNNCORE_FUZZ_SEED``
a seed (``derandomize`` otherwise); ``python3 tests/test_onnx_random_models.py EXAMPLES SEED`` is a
long run that prints every failure and goes on, then the refusals counted by message (:func:`_campaign`).
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, seed, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.onnx_import import onnx_run

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import fuzz_campaign, q8_check  # noqa: E402

_TOL_NUMPY = 1e-4
_TOL_F32 = 1e-4
_EXAMPLES = int(os.environ.get("RNNCORE_FUZZ_EXAMPLES", "100"))
_SEED = os.environ.get("RNNCORE_FUZZ_SEED")

_ACTS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid", "silu", "abs")


def _act(name: str) -> torch.nn.Module:
    if name == "abs":
        return _Abs()
    return {"relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(0.1), "gelu": torch.nn.GELU(),
            "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid(), "silu": torch.nn.SiLU()}[name]


class _Abs(torch.nn.Module):
    def forward(self, x):
        return torch.abs(x)


class _CausalPad(torch.nn.Module):
    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    def forward(self, x):
        return torch.nn.functional.pad(x, (self.left, 0))


class RandomNet(torch.nn.Module):
    """The module an architecture ``arch`` (a dict drawn by :func:`architectures`) describes."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = arch
        self.front = torch.nn.ModuleList()
        self.front_layout = []          # "BCT" or "BTC": the layout each piece reads
        c = arch["features"]
        for p in arch["front"]:
            kind = p["kind"]
            if kind == "conv":
                mods = []
                pad = p["padding"]
                if p["causal"]:
                    mods.append(_CausalPad(p["dilation"] * (p["kernel"] - 1)))
                    pad = 0
                mods.append(torch.nn.Conv1d(c, p["out"], p["kernel"], stride=p["stride"], padding=pad,
                                            dilation=p["dilation"], groups=p["groups"], bias=p["bias"]))
                self.front.append(torch.nn.Sequential(*mods))
                self.front_layout.append("BCT")
                c = p["out"]
            elif kind == "bn":
                bn = torch.nn.BatchNorm1d(c)
                g = torch.Generator().manual_seed(p["seed"])
                bn.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                bn.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                bn.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                bn.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
                self.front.append(bn)
                self.front_layout.append("BCT")
            elif kind == "ln":
                self.front.append(torch.nn.LayerNorm(c))
                self.front_layout.append("BTC")
            elif kind == "act":
                self.front.append(_act(p["act"]))
                self.front_layout.append(None)       # either layout: stays where it is
            elif kind == "pool":
                cls = torch.nn.MaxPool1d if p["max"] else torch.nn.AvgPool1d
                kw = {} if p["max"] else {"count_include_pad": p.get("count_include_pad", True)}
                self.front.append(cls(p["kernel"], stride=p["stride"], padding=p["padding"],
                                      ceil_mode=p.get("ceil_mode", False), **kw))
                self.front_layout.append("BCT")
            elif kind == "linear":
                self.front.append(torch.nn.Linear(c, p["out"]))
                self.front_layout.append("BTC")
                c = p["out"]
        cell = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[arch["cell"]]
        kw = {"nonlinearity": arch["nonlinearity"]} if arch["cell"] == "rnn" else {}
        self.rnn = cell(c, arch["hidden"], num_layers=arch["layers"], bidirectional=arch["bidirectional"],
                        batch_first=arch["batch_first"], **kw)
        h = arch["hidden"] * (2 if arch["bidirectional"] else 1)
        self.post = torch.nn.ModuleList()
        for p in arch["post"]:
            if p == "ln":
                self.post.append(torch.nn.LayerNorm(h))
            elif p.startswith("linear"):             # "linear<out>": a per-step Linear
                self.post.append(torch.nn.Linear(h, int(p[6:])))
                h = int(p[6:])
            else:
                self.post.append(_act(p))
        r2 = arch.get("rnn2")                        # a second recurrent module after them (CRNN)
        self.rnn2 = None
        if r2 is not None:
            cell = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[r2["cell"]]
            self.rnn2 = cell(h, r2["hidden"], bidirectional=r2["bidirectional"], batch_first=True)
            h = r2["hidden"] * (2 if r2["bidirectional"] else 1)
        if arch.get("concat"):                       # the poolings side by side
            h *= len(arch["concat"])
        self.fc = torch.nn.Linear(h, arch["head_out"]) if arch["head_out"] else None

    def forward(self, x):
        arch = self.arch
        lay = arch["input"]                       # "BTC", "TBC" or "BCT"
        if lay == "TBC":
            x = x.transpose(0, 1)
            lay = "BTC"
        for m, want in zip(self.front, self.front_layout, strict=True):
            if want is not None and want != lay:
                x = x.transpose(1, 2)
                lay = want
            x = m(x)
        if lay == "BCT":
            x = x.transpose(1, 2)                 # (B, T, C)
        if not arch["batch_first"]:
            x = x.transpose(0, 1)                 # (T, B, C)
        y, _ = self.rnn(x)
        if not arch["batch_first"]:
            y = y.transpose(0, 1)                 # (B, T, H)
        for m in self.post:
            y = m(y)
        if self.rnn2 is not None:
            y, _ = self.rnn2(y)
        if arch["pool"] == "last":
            y = y[:, -1]
        elif arch["pool"] == "mean":
            y = y.mean(1)
        elif arch["pool"] == "max":
            y = y.max(1).values
        elif arch["pool"] == "adaptive_max":      # GlobalMaxPool + Flatten (a static export: MaxPool)
            y = torch.nn.functional.adaptive_max_pool1d(y.transpose(1, 2), 1).flatten(1)
        elif arch["pool"] == "concat":            # Concat of ReduceMean / ReduceMax / the last-step Gather
            parts = {"last": lambda: y[:, -1], "mean": lambda: y.mean(1), "max": lambda: y.max(1).values}
            y = torch.cat([parts[k]() for k in arch["concat"]], 1)
        if self.fc is not None:
            y = self.fc(y)
        if arch["out_act"] == "softmax":
            y = torch.softmax(y, -1)
        elif arch["out_act"] == "log_softmax":
            y = torch.log_softmax(y, -1)
        return y


@st.composite
def architectures(draw) -> dict:
    features = draw(st.integers(2, 8))
    front = []
    c = features
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(("conv", "bn", "ln", "act", "pool", "linear")))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
            out = groups * draw(st.integers(1, 4))
            k = draw(st.integers(1, 4))
            d = draw(st.integers(1, 2))
            causal = draw(st.booleans())
            p = {"kind": kind, "out": out, "kernel": k, "stride": draw(st.integers(1, 2)),
                 "dilation": d, "groups": groups, "causal": causal, "bias": draw(st.booleans()),
                 "padding": 0 if causal else draw(st.integers(0, d * (k - 1)))}
            c = out
        elif kind == "bn":
            p = {"kind": kind, "seed": draw(st.integers(0, 99))}
        elif kind == "act":
            p = {"kind": kind, "act": draw(st.sampled_from(_ACTS))}
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            p = {"kind": kind, "max": draw(st.booleans()), "kernel": k, "stride": draw(st.integers(1, 2)),
                 "padding": draw(st.integers(0, k // 2)), "ceil_mode": draw(st.booleans()),
                 "count_include_pad": draw(st.booleans())}
        elif kind == "linear":
            p = {"kind": kind, "out": draw(st.integers(2, 8))}
            c = p["out"]
        else:
            p = {"kind": kind}
        front.append(p)
    cell = draw(st.sampled_from(("gru", "lstm", "rnn")))
    post = draw(st.lists(st.sampled_from(("ln", "linear3", "linear6") + _ACTS), max_size=2))
    rnn2 = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "cell": st.sampled_from(("gru", "lstm", "rnn")), "hidden": st.integers(2, 6),
        "bidirectional": st.booleans()})))
    pool = draw(st.sampled_from(("steps", "last", "mean", "max", "adaptive_max", "concat")))
    concat = draw(st.permutations(("last", "mean", "max")))[:draw(st.integers(2, 3))] if pool == "concat" \
        else None
    head_out = draw(st.sampled_from((0, 3, 5)))
    return {
        "input": draw(st.sampled_from(("BTC", "TBC", "BCT"))),
        "features": features, "front": front, "cell": cell,
        "nonlinearity": draw(st.sampled_from(("tanh", "relu"))) if cell == "rnn" else None,
        "hidden": draw(st.integers(2, 9)), "layers": draw(st.integers(1, 2)),
        "bidirectional": draw(st.booleans()), "batch_first": draw(st.booleans()),
        "post": post, "rnn2": rnn2, "pool": pool, "concat": concat, "head_out": head_out,
        "out_act": draw(st.sampled_from((None, "softmax", "log_softmax"))) if head_out else None,
        "dynamic": draw(st.booleans()), "seed": draw(st.integers(0, 2**16)),
    }


# -- layouts: the arrays the graph takes / gives and the (B, T, .) ones the engine takes / gives -----
def _graph_x(arch: dict, x_btf: np.ndarray) -> np.ndarray:
    """(B, T, F) data in the graph input's layout."""
    if arch["input"] == "TBC":
        return np.ascontiguousarray(x_btf.transpose(1, 0, 2))
    if arch["input"] == "BCT":
        return np.ascontiguousarray(x_btf.transpose(0, 2, 1))
    return x_btf


def _layouts(model, eng: rc.Engine) -> tuple[str, str]:
    """The graph's input and output layouts the compiled ``model`` says it has: ``engine.graph_io``
    for an ``OnnxGraph``, the ``onnx_io`` signature for a chain of layers (batch and time only)."""
    if eng.graph_io is not None:
        return eng.graph_io["input_layout"], eng.graph_io["output_layout"]
    sig = model.onnx_io
    out = "".join(sig.outputs[0][2]).replace("H", "F")
    return sig.input_layout + "F", out


def _engine_run(eng: rc.Engine, arch: dict, layouts: tuple, x_btf: np.ndarray, lengths=None) -> np.ndarray:
    """The engine on (B, T, F) data (engine.run takes (B, T, F) whatever the graph's layout), its
    output (RandomNet's is batch first); the layouts the import reports must be the graph's."""
    assert {"TBF": "TBC", "BTF": "BTC", "BFT": "BCT"}[layouts[0]] == arch["input"], layouts
    assert layouts[1] in ("BTF", "BF"), layouts
    return eng.run(np.ascontiguousarray(x_btf), lengths)


def _export(net: torch.nn.Module, arch: dict, B: int, T: int) -> bytes:
    shape = {"BTC": (B, T, arch["features"]), "TBC": (T, B, arch["features"]),
             "BCT": (B, arch["features"], T)}[arch["input"]]
    axes = {"BTC": {0: "B", 1: "T"}, "TBC": {0: "T", 1: "B"}, "BCT": {0: "B", 2: "T"}}[arch["input"]]
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(shape),), f, input_names=["x"], output_names=["y"], dynamo=False,
                          opset_version=17, dynamic_axes={"x": axes} if arch["dynamic"] else None)
    return f.getvalue()


def _err(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max() / max(1.0, float(np.abs(ref).max())))


def _names_the_graph(msg: str, proto: onnx.ModelProto) -> bool:
    """True when a refusal's message names one of the graph's nodes, ops or tensors."""
    words = set()
    for n in proto.graph.node:
        words.update([n.name, n.op_type, *n.input, *n.output])
    words.update(i.name for i in proto.graph.input)
    words.discard("")
    return any(re.search(r"(?<![\w/.])" + re.escape(w) + r"(?![\w/.])", msg) for w in words)


def _runs(net: torch.nn.Module, arch: dict, T: int) -> bool:
    """True when the module runs on ``T`` steps (its front-end leaves at least one)."""
    x = torch.zeros(_graph_x(arch, np.zeros((1, T, arch["features"]), np.float32)).shape)
    try:
        with torch.no_grad():
            net(x)
    except RuntimeError:
        return False
    return True


def _check(arch: dict, stats: dict | None = None) -> str:
    """Run the checks a, b, c of the module docstring on ``arch``; return "compiled" or the refusal."""
    torch.manual_seed(arch["seed"])
    net = RandomNet(arch).eval()
    T0 = 13
    B0 = 2 if arch["dynamic"] else 1
    rng = np.random.default_rng(arch["seed"])
    assume(_runs(net, arch, T0))
    blob = _export(net, arch, B0, T0)
    proto = onnx.load_from_string(blob)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    F = arch["features"]

    def ref(x_btf):
        return sess.run(None, {"x": _graph_x(arch, x_btf)})[0]

    # the shortest input the front-end leaves a step of
    t_min = next(t for t in range(1, T0 + 1) if _runs(net, arch, t))

    # a. the NumPy graph (float64) against onnxruntime, at the export's sizes and others
    g = from_onnx(blob)
    sizes = [(B0, T0)] + ([(1, max(9, t_min)), (3, 21)] if arch["dynamic"] else [])
    for B, T in sizes:
        x = rng.standard_normal((B, T, F)).astype(np.float32)
        try:
            want = ref(x)
        except ort.capi.onnxruntime_pybind11_state.Fail as exc:
            # no reference: a static export onnxruntime cannot run (a MaxPool1d with ceil_mode and
            # padding on 13 steps: PyTorch and onnxruntime give 7 steps, the exporter's static
            # shapes 8 (ONNX's ceil_mode size without PyTorch's rule dropping a window that starts
            # in the right padding), so the Reshape it wrote from them fails)
            note(f"onnxruntime cannot run the export: {exc}")
            assume(False)
        with torch.no_grad():        # onnxruntime is itself checked against the module
            tw = net(torch.as_tensor(_graph_x(arch, x))).numpy()
        assert _err(tw, want) < _TOL_F32, "onnxruntime vs torch"
        e = _err(onnx_run(g, {"x": _graph_x(arch, x)})["y"], want)
        if stats is not None:
            stats["numpy"] = max(stats.get("numpy", 0), e)
        assert e < _TOL_NUMPY, f"NumPy graph vs onnxruntime at B={B}, T={T}: {e:.3g}"

    # b. rc.compile: compiles and matches, or refuses naming the graph's node / op
    try:
        model = from_onnx(blob)
        eng = rc.compile(model)
    except (ValueError, NotImplementedError) as exc:
        msg = str(exc)
        assert _names_the_graph(msg, proto), f"refusal names no node / op of the graph: {msg}"
        return f"refused: {msg}"
    layouts = _layouts(model, eng)
    # batch 1 and batch 3 (a static graph: rows of batch 1 one by one)
    for B, T in [(1, T0), (3, T0)] + ([(3, 21), (1, max(9, t_min))] if arch["dynamic"] else []):
        x = rng.standard_normal((B, T, F)).astype(np.float32)
        want = ref(x) if arch["dynamic"] else np.concatenate([ref(x[b:b + 1]) for b in range(B)], 0)
        got = _engine_run(eng, arch, layouts, x)
        e = _err(got, want)
        if stats is not None:
            stats["f32"] = max(stats.get("f32", 0), e)
        assert e < _TOL_F32, f"engine f32 vs onnxruntime at B={B}, T={T}: {e:.3g}\n{eng.describe()}"
    # with lengths: a row of length L is onnxruntime on its first L steps
    if arch["dynamic"]:
        T = 17
        x = rng.standard_normal((3, T, F)).astype(np.float32)
        lengths = np.array([T, 11, max(6, t_min)])
        try:
            got = _engine_run(eng, arch, layouts, x, lengths)
        except (ValueError, NotImplementedError) as exc:
            got = None
            note(f"lengths refused: {exc}")
        if got is not None:
            for b, L in enumerate(lengths):
                want = ref(x[b:b + 1, :L])
                row = got[b:b + 1, :want.shape[1]] if got.ndim == 3 else got[b:b + 1]
                e = _err(row, want)
                assert e < _TOL_F32, f"engine f32 with lengths, row {b} (L={L}): {e:.3g}\n{eng.describe()}"

    # c. q8: the NumPy q8 reference bit for bit, and near f32
    try:
        e8 = rc.compile(from_onnx(blob), precision="q8")
    except (ValueError, NotImplementedError) as exc:
        note(f"q8 refused: {exc}")
        return "compiled"
    x = rng.standard_normal((3, 15, F)).astype(np.float32)
    lengths = np.array([15, 8, 3]) if arch["dynamic"] else None
    q8_check(e8, eng, x, lengths)
    return "compiled"


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=_EXAMPLES, deadline=None, derandomize=_SEED is None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arch=architectures())
def test_random_torch_models_through_onnx_match_onnxruntime(arch):
    note(f"architecture: {arch}")
    _check(arch)


if _SEED is not None:
    test_random_torch_models_through_onnx_match_onnxruntime = seed(int(_SEED))(
        test_random_torch_models_through_onnx_match_onnxruntime)


def _campaign(examples: int, seed_: int) -> None:
    """The long local run (:func:`_helpers.fuzz_campaign`), refusals by message with the names in
    quotes and the numbers left out (one line per kind)."""
    fuzz_campaign(_check, architectures(), examples, seed_,
                  lambda msg: re.sub(r"\d+", "#", re.sub(r"'[^']*'", "'.'", msg))[:150])


if __name__ == "__main__":      # python3 tests/test_onnx_random_models.py EXAMPLES SEED
    _campaign(int(sys.argv[1]), int(sys.argv[2]))


# -- what the fuzz found, each as an explicit example ---------------------------------------------
def _arch(**kw) -> dict:
    base = {"input": "BTC", "features": 3, "front": [], "cell": "gru", "nonlinearity": None, "hidden": 4,
            "layers": 1, "bidirectional": False, "batch_first": True, "post": [], "pool": "steps",
            "head_out": 3, "out_act": None, "dynamic": True, "seed": 0}
    return {**base, **kw}


_CONV = {"kind": "conv", "out": 4, "kernel": 3, "stride": 1, "dilation": 1, "groups": 1, "causal": False,
         "bias": True, "padding": 0}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamic", [True, False])
def test_a_channels_first_graph_pooled_over_time_reports_its_input_as_channels_first(dynamic):
    """Conv1d on (B, C, T) -> GRU -> mean over time -> Linear: ``graph_io["input_layout"]`` was
    "BTF" for a graph pooled over time (the channels-first case was only handled for sequence
    outputs), telling the caller to pass the graph's (B, C, T) array as it is."""
    arch = _arch(input="BCT", front=[_CONV], pool="mean", dynamic=dynamic)
    assert _check(arch) == "compiled"
    torch.manual_seed(0)
    blob = _export(RandomNet(arch).eval(), arch, 1, 13)
    eng = rc.compile(from_onnx(blob))
    assert eng.graph_io["input_layout"] == "BFT" and eng.graph_io["output_layout"] == "BF"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("first", [
    {**_CONV, "causal": True, "dilation": 2},                                # Pad, then Conv
    {"kind": "bn", "seed": 1},                                               # BatchNormalization
    {"kind": "pool", "max": True, "kernel": 2, "stride": 2, "padding": 1},   # MaxPool
    {"kind": "pool", "max": False, "kernel": 3, "stride": 1, "padding": 1, "count_include_pad": False},
    {"kind": "ln"},                                                          # Transpose, then per step
], ids=["pad_conv", "batchnorm", "maxpool", "avgpool", "transpose"])
def test_a_channels_first_input_read_by_other_than_a_conv_compiles(first):
    """(B, C, T) data read first by a Pad (a causal Conv1d), a BatchNormalization, a pooling or a
    Transpose were refused ("the data input 'x' is declared (None, C, None)"): channels first was
    recognised only from a Conv or an InstanceNormalization reading the input."""
    arch = _arch(input="BCT", front=[first], cell="lstm", bidirectional=True, batch_first=False)
    assert _check(arch) == "compiled"
    torch.manual_seed(0)
    eng = rc.compile(from_onnx(_export(RandomNet(arch).eval(), arch, 2, 13)))
    assert eng.graph_io["input_layout"] == "BFT"


def _pool(max_: bool, kernel: int, stride: int, padding: int, count_include_pad: bool = True) -> dict:
    return {"kind": "pool", "max": max_, "kernel": kernel, "stride": stride, "padding": padding,
            "ceil_mode": True, "count_include_pad": count_include_pad}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("pool, dynamic", [
    (_pool(True, 3, 2, 1), True), (_pool(True, 3, 2, 1), False), (_pool(True, 2, 3, 0), True),
    (_pool(False, 3, 2, 1, False), True), (_pool(False, 3, 2, 0, False), False),
    (_pool(False, 2, 2, 0, True), True), (_pool(False, 3, 3, 0, True), False),
], ids=["max k3 s2 p1", "max k3 s2 p1 static", "max k2 s3", "avg k3 s2 p1 excl", "avg k3 s2 excl static",
        "avg k2 s2", "avg k3 s3 static"])
def test_pooling_with_ceil_mode_at_a_stride_compiles(pool, dynamic):
    """MaxPool1d / AvgPool1d with ``ceil_mode=True`` at a stride were refused ("has ceil_mode 1 with
    strides [2]"); the C engine runs them as a pooling with more right padding
    (``rnncore.nn.conv.ceil_mode_padding``): f32 against onnxruntime (with lengths where dynamic),
    q8 bit for bit against the NumPy q8 spec (``_check``)."""
    arch = _arch(input="BCT", features=4, front=[_CONV, pool], dynamic=dynamic)
    assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
def test_an_average_with_ceil_mode_counting_its_pads_is_refused_naming_the_node():
    """AvgPool1d(ceil_mode=True, count_include_pad=True, padding > 0) at a stride: its last window
    divides by the steps inside the padded input, which one exclude flag of the C core's pool_time
    record cannot say; refused naming the node (the NumPy graph runs it)."""
    arch = _arch(input="BCT", features=4, front=[_pool(False, 3, 2, 1, True)])
    msg = _check(arch)
    assert re.search(r"node '/front\.0/AveragePool' \(AveragePool\) has ceil_mode 1 with "
                     r"count_include_pad 1, pads \[1, 1\] and strides \[2\]", msg), msg


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("front, cell, pool", [
    ([], "lstm", "last"), ([{"kind": "act", "act": "tanh"}], "gru", "steps"),
    ([{"kind": "ln"}], "rnn", "mean"),
    ([{"kind": "linear", "out": 5}, {"kind": "bn", "seed": 3}], "gru", "steps"),
], ids=["transpose", "act", "layernorm", "linear_bn"])
def test_a_static_channels_first_input_read_first_by_a_transpose_compiles(front, cell, pool):
    """A static export (batch 1, 13 steps) of (B, C, T) data whose first reader is a Transpose (to
    (B, T, C)) was lowered as (B, T, F) with 13 features ("node '/rnn/GRU' (GRU) reads data of shape
    (13, X0, X1)"): its declared (1, C, 13) says nothing of which axis is time. lower_sequence_graph
    now also reads such an input as channels first when the other reading is refused."""
    arch = _arch(input="BCT", features=4, front=front, cell=cell, pool=pool, bidirectional=True,
                 batch_first=False, dynamic=False, nonlinearity="relu" if cell == "rnn" else None)
    assert _check(arch) == "compiled"
    torch.manual_seed(0)
    eng = rc.compile(from_onnx(_export(RandomNet(arch).eval(), arch, 1, 13)))
    assert eng.graph_io["input_layout"] == "BFT"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("arch", [
    _arch(front=[{"kind": "ln"}], cell="lstm", bidirectional=True, batch_first=False, pool="last", head_out=0,
          dynamic=False),
    _arch(input="TBC", front=[{**_CONV, "stride": 2}], cell="lstm", bidirectional=True, batch_first=False,
          pool="last", head_out=0),
    _arch(input="TBC", front=[{**_CONV, "stride": 2}], cell="rnn", nonlinearity="tanh", pool="last",
          head_out=0, dynamic=False),
], ids=["static bilstm", "tbf strided conv", "tbf strided conv static"])
def test_the_last_step_as_the_graph_output_compiles(arch):
    """y[:, -1] of a recurrent layer as the graph's output (no Linear after it) stayed a part of
    the recurrent output ("the output 'y' is not a sequence"): it is now LastStep(), as when
    another node reads it."""
    assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("arch", [
    _arch(input="BCT", pool="adaptive_max", dynamic=False),
    _arch(input="BTC", pool="adaptive_max", dynamic=False, cell="lstm", bidirectional=True),
], ids=["static bct", "static btc"])
def test_a_static_adaptive_max_pool_is_refused_naming_its_maxpool(arch):
    """A static export of adaptive_max_pool1d(y, 1) is a MaxPool over the traced length after the
    recurrent layer: refused naming it. For a (B, C, T) input read first by a transpose the refusal
    named the recurrent node ("reads data of shape (13, X0, X1)"), the first of the two readings
    lower_sequence_graph tries; the reading that followed more of the graph now gives its refusal."""
    msg = _check(arch)
    assert re.search(r"node '/MaxPool' \(MaxPool\) is a convolution or pooling over time after a recurrent "
                     r"layer", msg), msg
