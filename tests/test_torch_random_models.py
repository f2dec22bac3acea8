"""Differential fuzz of ``rc.io.from_torch``: random PyTorch modules (a front-end, recurrent layers, a
head) imported directly (no ONNX) and run against PyTorch itself.

hypothesis draws an architecture (:func:`architectures`): the input as ``(B, T, F)``, ``(T, B, F)``
or ``(B, C, T)``, or token ids through an ``nn.Embedding``; up to three front-end pieces (Conv1d
with stride / padding / dilation / groups / bias or a causal ``F.pad``, BatchNorm1d in eval with
random statistics, LayerNorm, an activation, MaxPool1d / AvgPool1d with padding, ``ceil_mode``,
``count_include_pad``, a per-step Linear), with the transposes between ``(B, C, T)`` and ``(B, T,
C)`` they need; an ``nn.GRU`` / ``nn.LSTM`` (with or without ``proj_size``) / ``nn.RNN`` (tanh or
relu) with 1-2 layers, bidirectional or not, batch first or not, ``bias=False``, ``dropout`` (the
module in eval); up to two activations / LayerNorms / per-step Linears after it and (one in four) a
second recurrent module; a head: every step, ``y[:, -1]``, ``y.mean(1)``, the maximum over time
(``y.max(1).values``, ``torch.max(y, 1)[0]``, ``torch.amax(y, 1)`` or
``F.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(-1)``), attention pooling,
``h_n[-1]``, or ``h_n`` of both directions concatenated, or 2-3 of a last step (``y[:, -1]``,
``h_n[-1]`` / ``torch.cat((h_n[-2], h_n[-1]), -1)``), the mean and the maximum concatenated over the
features (``rc.nn.ConcatPool``), then a Linear, then Softmax / LogSoftmax.
One module in five instead is a ``forward(x, lengths)`` that packs its input
(``pack_padded_sequence``) and returns every step, its final state or the maximum over time of
``pad_packed_sequence(..., padding_value=-inf)``. Weights are random (not
PyTorch's default init), scaled so that the gates and activations are not all saturated.

The checks (:func:`_check`):

a. ``from_torch(net)`` (float64) against the module in float64 within ``_TOL_NUMPY``;
b. ``rc.compile`` of it against the module in float32 within ``_TOL_F32`` at batch 1 and 3, and with
   per-row lengths (a packed module: its own ``lengths``; otherwise a row of length ``L`` is the module
   on its first ``L`` steps);
c. ``precision="q8"`` (where accepted) equals the NumPy q8 reference of its file bit for bit on every
   ISA path (``_helpers.c_equals_q8_reference``);
d. a refusal (of the import or of ``rc.compile``) is a ``ValueError`` / ``NotImplementedError`` whose
   message names a submodule, a module class or an argument of the net; any other exception fails.

Limits, from measurement (docs/fuzzing.md): errors relative to ``max(1, max |reference|)``; the
largest over 3,960 examples (seeds 1 to 11) were 5.6e-14 for float64 and 2.3e-5 for f32 (an
exploding ReLU RNN; 6.6e-6 otherwise). The
limits (1e-9 and 1e-4) leave a margin of orders of magnitude; an error of a wrong import (a dropped
bias, a reversed direction, a wrong state) is of the order of the output itself.

``RNNCORE_FUZZ_EXAMPLES`` sets the number of examples (150 by default: ~9 s here),
``RNNCORE_FUZZ_SEED`` a seed (``derandomize`` otherwise);
``python3 tests/test_torch_random_models.py EXAMPLES SEED`` is a long run that prints every failure
and goes on.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, seed, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore.io import from_torch

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import fuzz_campaign, q8_check  # noqa: E402

_TOL_NUMPY = 1e-9
_TOL_F32 = 1e-4
_EXAMPLES = int(os.environ.get("RNNCORE_FUZZ_EXAMPLES", "150"))
_SEED = os.environ.get("RNNCORE_FUZZ_SEED")

_ACTS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid", "silu", "abs", "hardtanh", "elu")
_CELLS = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The modules are tiny: torch's intra-op threads only add overhead (on the 2 shared cores here,
    80 examples took 40 s of CPU with them, 6.5 s without)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _Abs(torch.nn.Module):
    def forward(self, x):
        return torch.abs(x)


class _CausalPad(torch.nn.Module):
    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    def forward(self, x):
        return torch.nn.functional.pad(x, (self.left, 0))


def _act(name: str) -> torch.nn.Module:
    if name == "abs":
        return _Abs()
    return {"relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(0.1), "gelu": torch.nn.GELU(),
            "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid(), "silu": torch.nn.SiLU(),
            "hardtanh": torch.nn.Hardtanh(-0.5, 1.5), "elu": torch.nn.ELU(0.7)}[name]


def _rnn(arch: dict, c: int) -> torch.nn.Module:
    kw = {"num_layers": arch["layers"], "bidirectional": arch["bidirectional"],
          "batch_first": arch["batch_first"], "bias": arch["bias"], "dropout": arch["dropout"]}
    if arch["cell"] == "rnn":
        kw["nonlinearity"] = arch["nonlinearity"]
    if arch["cell"] == "lstm" and arch["proj"]:
        kw["proj_size"] = arch["proj"]
    return _CELLS[arch["cell"]](c, arch["hidden"], **kw)


def _out_size(arch: dict) -> int:
    h = arch["proj"] if arch["cell"] == "lstm" and arch["proj"] else arch["hidden"]
    return h * (2 if arch["bidirectional"] else 1)


class RandomNet(torch.nn.Module):
    """The module an architecture ``arch`` (a dict drawn by :func:`architectures`) describes; its
    output is batch first: ``(B, T, F)`` or ``(B, F)``."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = arch
        self.front = torch.nn.ModuleList()
        self.front_layout = []          # "BCT" or "BTC": the layout each piece reads (None: either)
        c = arch["features"]
        if arch.get("embed"):           # token ids (B, T) -> (B, T, features), registered first
            self.emb = torch.nn.Embedding(arch["embed"], c, padding_idx=arch.get("padding_idx"))
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
                self.front.append(torch.nn.BatchNorm1d(c))
                self.front_layout.append("BCT")
            elif kind == "ln":
                self.front.append(torch.nn.LayerNorm(c))
                self.front_layout.append("BTC")
            elif kind == "act":
                self.front.append(_act(p["act"]))
                self.front_layout.append(None)
            elif kind == "pool":
                cls = torch.nn.MaxPool1d if p["max"] else torch.nn.AvgPool1d
                kw = {} if p["max"] else {"count_include_pad": p["count_include_pad"]}
                self.front.append(cls(p["kernel"], stride=p["stride"], padding=p["padding"],
                                      ceil_mode=p["ceil_mode"], **kw))
                self.front_layout.append("BCT")
            elif kind == "linear":
                self.front.append(torch.nn.Linear(c, p["out"]))
                self.front_layout.append("BTC")
                c = p["out"]
        self.rnn = _rnn(arch, c)
        h = _out_size(arch)
        if arch["pool"] in ("hn", "hn_fwd", "hn_cat"):
            h = h // (2 if arch["bidirectional"] else 1) * (2 if arch["pool"] == "hn_cat" else 1)
        if arch["pool"] == "concat":                 # each pooling of the whole output, side by side
            h *= len(arch["concat"])
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
            self.rnn2 = _CELLS[r2["cell"]](h, r2["hidden"], bidirectional=r2["bidirectional"],
                                           batch_first=True)
            h = r2["hidden"] * (2 if r2["bidirectional"] else 1)
        if arch["pool"] == "attn":                   # e = v(tanh(W(y))), a = softmax(e, time), sum(a * y)
            self.att_w = torch.nn.Linear(h, 4)
            self.att_v = torch.nn.Linear(4, 1)
        self.fc = torch.nn.Linear(h, arch["head_out"]) if arch["head_out"] else None
        self._randomize(arch["seed"], arch["gain"])

    def _randomize(self, seed_: int, gain: float) -> None:
        """Random weights ``N(0, gain^2 / fan_in)`` and biases ``N(0, 0.5^2)``; random BatchNorm
        statistics."""
        g = torch.Generator().manual_seed(seed_)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    fan_in = int(np.prod(p.shape[1:]))
                    p.copy_(torch.randn(p.shape, generator=g) * gain / fan_in ** 0.5)
                else:
                    centre = 1.0 if name.endswith("weight") else 0.0      # a norm's scale, or a bias
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5 + centre)
            for m in self.modules():
                if isinstance(m, torch.nn.BatchNorm1d):
                    m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                    m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)

    def _front(self, x):
        lay = self.arch["input"]                  # "BTC", "TBC" or "BCT"
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
        return x

    def _head(self, y, post: bool = True):
        for m in self.post if post else ():
            y = m(y)
        if self.fc is not None:
            y = self.fc(y)
        if self.arch["out_act"] == "softmax":
            y = torch.softmax(y, -1)
        elif self.arch["out_act"] == "log_softmax":
            y = torch.log_softmax(y, -1)
        return y

    def _max(self, y):
        form = self.arch.get("max_form", "values")
        return y.max(1).values if form == "values" else torch.max(y, 1)[0] if form == "index" else \
            torch.amax(y, 1) if form == "amax" else \
            torch.nn.functional.adaptive_max_pool1d(y.transpose(1, 2), 1).squeeze(-1)

    def forward(self, x):
        arch = self.arch
        if arch.get("embed"):
            x = self.emb(x)
        x = self._front(x)
        if not arch["batch_first"]:
            x = x.transpose(0, 1)                 # (T, B, C)
        y, h = self.rnn(x)
        if arch["cell"] == "lstm":
            h = h[0]
        if not arch["batch_first"]:
            y = y.transpose(0, 1)                 # (B, T, H)
        if self.rnn2 is not None:
            for m in self.post:
                y = m(y)
            y, _ = self.rnn2(y)
        if arch["pool"] == "last":
            y = y[:, -1]
        elif arch["pool"] == "mean":
            y = y.mean(1)
        elif arch["pool"] == "max":                   # its PyTorch spellings (arch["max_form"])
            y = self._max(y)
        elif arch["pool"] == "concat":                # torch.cat([y.mean(1), y.max(1).values, ...], 1)
            parts = {"last": lambda: y[:, -1], "mean": lambda: y.mean(1), "max": lambda: self._max(y),
                     "hn": lambda: h[-1], "hn_cat": lambda: torch.cat((h[-2], h[-1]), -1)}
            y = torch.cat([parts[k]() for k in arch["concat"]], 1)
        elif arch["pool"] == "hn":
            y = h[-1]
        elif arch["pool"] == "hn_fwd":                # not drawn: the explicit examples below
            y = h[-2]
        elif arch["pool"] == "hn_cat":
            y = torch.cat((h[-2], h[-1]), -1)
        elif arch["pool"] == "attn":
            a = torch.softmax(self.att_v(torch.tanh(self.att_w(y))), dim=1)
            y = (a * y).sum(dim=1)
        return self._head(y, post=self.rnn2 is None)


class PackedNet(RandomNet):
    """``forward(x, lengths)``: ``pack_padded_sequence`` -> recurrent layers -> every step (padded back
    to the input's length) or the final state ``h_n``; a Linear head."""

    def forward(self, x, lengths):
        arch = self.arch
        rnn_utils = torch.nn.utils.rnn
        if arch.get("embed"):
            x = self.emb(x)
        packed = rnn_utils.pack_padded_sequence(x, lengths, batch_first=arch["batch_first"],
                                                enforce_sorted=False)
        y, h = self.rnn(packed)
        if arch["cell"] == "lstm":
            h = h[0]
        if arch["pool"] == "steps":
            y, _ = rnn_utils.pad_packed_sequence(y, batch_first=arch["batch_first"],
                                                 total_length=x.shape[1 if arch["batch_first"] else 0])
            return y if arch["batch_first"] else y.transpose(0, 1)
        if arch["pool"] == "max":     # padded with -inf: the maximum over each sequence's valid steps
            y, _ = rnn_utils.pad_packed_sequence(y, batch_first=True, padding_value=float("-inf"))
            return self._head(y.max(1).values)
        y = h[-1] if arch["pool"] == "hn" else h[-2] if arch["pool"] == "hn_fwd" else \
            torch.cat((h[-2], h[-1]), -1)
        return self._head(y)


@st.composite
def architectures(draw) -> dict:
    features = draw(st.integers(2, 8))
    packed = draw(st.integers(0, 4)) == 0
    front = []
    c = features
    for _ in range(0 if packed else draw(st.integers(0, 3))):
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
    hidden = draw(st.integers(2, 9))
    layers = draw(st.integers(1, 2))
    bidirectional = draw(st.booleans())
    pools = ("steps", "hn", "max") + (("hn_cat",) if bidirectional else ())
    if not packed:
        pools += ("last", "mean", "attn", "concat")
    pool = draw(st.sampled_from(pools))
    concat = None
    if pool == "concat":     # 2 or 3 of a last step (y[:, -1] or h_n), the mean, the maximum, in any order
        last = draw(st.sampled_from(("last", "hn_cat" if bidirectional else "hn")))
        concat = draw(st.permutations((last, "mean", "max")))[:draw(st.integers(2, 3))]
    max_form = draw(st.sampled_from(("values", "index", "amax", "adaptive"))) \
        if pool == "max" or "max" in (concat or ()) else None
    rnn2 = None
    if pool in ("steps", "last", "mean", "max", "attn") and not packed and draw(st.integers(0, 3)) == 0:
        rnn2 = {"cell": draw(st.sampled_from(("gru", "lstm", "rnn"))), "hidden": draw(st.integers(2, 6)),
                "bidirectional": draw(st.booleans())}
    post = [] if packed else draw(st.lists(st.sampled_from(("ln", "linear3", "linear6") + _ACTS), max_size=2))
    head_out = 0 if packed and pool == "steps" else draw(st.sampled_from((0, 3, 5)))
    embed = draw(st.sampled_from((0, 0, 0, 12)))
    return {
        "embed": embed, "padding_idx": draw(st.sampled_from((None, 0))) if embed else None,
        "packed": packed,
        "input": "BTC" if packed or embed else draw(st.sampled_from(("BTC", "TBC", "BCT"))),
        "features": features, "front": front, "cell": cell,
        "nonlinearity": draw(st.sampled_from(("tanh", "relu"))) if cell == "rnn" else None,
        "hidden": hidden, "layers": layers, "bidirectional": bidirectional,
        "batch_first": True if packed else draw(st.booleans()), "bias": draw(st.booleans()),
        "dropout": draw(st.sampled_from((0.0, 0.3))) if layers > 1 else 0.0,
        "proj": draw(st.sampled_from((0, 0, 1, hidden - 1))) if cell == "lstm" else 0,
        "post": post, "rnn2": rnn2, "pool": pool, "concat": concat, "max_form": max_form,
        "head_out": head_out,
        "out_act": draw(st.sampled_from((None, "softmax", "log_softmax"))) if head_out else None,
        "gain": draw(st.sampled_from((0.5, 1.0, 2.0))), "seed": draw(st.integers(0, 2**16)),
    }


# -- running the module on (B, T, F) data -----------------------------------------------------------
def _module_x(arch: dict, x_btf: np.ndarray) -> np.ndarray:
    """(B, T, F) data in the module input's layout."""
    if arch["input"] == "TBC":
        return np.ascontiguousarray(x_btf.transpose(1, 0, 2))
    if arch["input"] == "BCT":
        return np.ascontiguousarray(x_btf.transpose(0, 2, 1))
    return x_btf


def _torch(net: torch.nn.Module, arch: dict, x_btf: np.ndarray, dtype, lengths=None) -> np.ndarray:
    """The module on (B, T, F) data, in ``dtype``; its (batch-first) output as float64."""
    x = torch.as_tensor(_module_x(arch, x_btf), dtype=torch.int64 if arch.get("embed") else dtype)
    with torch.no_grad():
        if arch["packed"]:
            L = np.full(x_btf.shape[0], x_btf.shape[1]) if lengths is None else lengths
            y = net(x, torch.as_tensor(L, dtype=torch.int64))
        else:
            y = net(x)
    return y.numpy().astype(np.float64)


def _inputs(rng: np.random.Generator, arch: dict, B: int, T: int) -> np.ndarray:
    """Random inputs: (B, T, F) standard normal float32, or (B, T) token ids for an embedding."""
    if arch.get("embed"):
        return rng.integers(0, arch["embed"], (B, T))
    return rng.standard_normal((B, T, arch["features"])).astype(np.float32)


def _runs(net: torch.nn.Module, arch: dict, T: int) -> bool:
    """True when the module runs on ``T`` steps (its front-end leaves at least one)."""
    try:
        _torch(net, arch, _inputs(np.random.default_rng(0), arch, 1, T), torch.float32)
    except RuntimeError:
        return False
    return True


def _err(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max() / max(1.0, float(np.abs(ref).max())))


_ARGUMENTS = ("ceil_mode", "padding", "stride", "dilation", "groups", "kernel_size", "count_include_pad",
              "proj_size", "bidirectional", "nonlinearity", "batch_first", "dim")


def _names_the_module(msg: str, net: torch.nn.Module, ours=None) -> bool:
    """True when a refusal's message names a submodule (quoted: ``'rnn'``, ``'front.0.1'``), a module
    class (``GRU``, ``Conv1d``) of the net, or an argument of one (``ceil_mode``); for ``rc.compile``
    also a layer class of the import ``ours`` (``ConcatPool``, a layer the net has no module for), as
    the Keras fuzz accepts."""
    words = {f"'{n}'" for n, _ in net.named_modules() if n} | {type(m).__name__ for m in net.modules()}
    if ours is not None:
        words |= {type(m).__name__ for m in (ours if hasattr(ours, "__iter__") else [ours])}
    return any(re.search(r"(?<![\w.-])" + re.escape(w) + r"(?![\w.-])", msg) for w in words | set(_ARGUMENTS))


def _refused(exc: BaseException, net: torch.nn.Module, what: str, ours=None) -> str:
    msg = str(exc)
    assert _names_the_module(msg, net, ours), f"{what} refusal names no submodule / class of the net: {msg}"
    return f"refused: {msg}"


def _check(arch: dict, stats: dict | None = None) -> str:
    """Run the checks a-d of the module docstring on ``arch``; return "compiled" or the refusal."""
    net = (PackedNet if arch["packed"] else RandomNet)(arch).eval()
    T0 = 13
    assume(_runs(net, arch, T0))
    t_min = next(t for t in range(1, T0 + 1) if _runs(net, arch, t))
    rng = np.random.default_rng(arch["seed"])

    def stat(key, e):
        if stats is not None:
            stats[key] = max(stats.get(key, 0.0), e)

    # a. the NumPy model (float64) against the module in float64
    try:
        model = from_torch(net)
    except (ValueError, NotImplementedError) as exc:
        return _refused(exc, net, "from_torch")
    net64 = net.double()
    for B, T in [(1, T0), (3, max(9, t_min))]:
        x = _inputs(rng, arch, B, T).astype(np.float64 if not arch.get("embed") else np.int64)
        want = _torch(net64, arch, x, torch.float64)
        y = model.forward(x)
        y = y[0] if isinstance(y, tuple) else y
        e = _err(np.asarray(y), want)
        stat("numpy", e)
        assert e < _TOL_NUMPY, f"NumPy model vs torch float64 at B={B}, T={T}: {e:.3g}"
    net.float()

    # b. rc.compile: f32 against the module in float32, at batch 1 and 3, then with lengths
    try:
        eng = rc.compile(model)
    except (ValueError, NotImplementedError) as exc:
        return _refused(exc, net, "rc.compile", model)
    for B, T in [(1, T0), (3, T0), (3, 21)]:
        x = _inputs(rng, arch, B, T)
        e = _err(eng.run(x), _torch(net, arch, x, torch.float32))
        stat("f32", e)
        assert e < _TOL_F32, f"engine f32 vs torch at B={B}, T={T}: {e:.3g}\n{eng.describe()}"
    T = 17
    lengths = np.array([max(11, t_min), T, max(6, t_min)])
    x = _inputs(rng, arch, 3, T)
    try:
        got = eng.run(x, lengths)
    except (ValueError, NotImplementedError) as exc:
        got = None
        note(f"lengths refused: {exc}")
    if got is not None:
        for b, L in enumerate(lengths):
            if arch["packed"]:
                want = _torch(net, arch, x[b:b + 1], torch.float32, np.array([L]))
                row = got[b:b + 1]
            else:
                want = _torch(net, arch, x[b:b + 1, :L], torch.float32)
                row = got[b:b + 1, :want.shape[1]] if got.ndim == 3 else got[b:b + 1]
            e = _err(row, want)
            stat("f32", e)
            assert e < _TOL_F32, f"engine f32 with lengths, row {b} (L={L}): {e:.3g}\n{eng.describe()}"

    # c. q8: the NumPy q8 reference bit for bit on every ISA path, and near f32
    try:
        e8 = rc.compile(model, precision="q8")
    except (ValueError, NotImplementedError) as exc:
        note(f"q8 refused: {exc}")
        return "compiled"
    x = _inputs(rng, arch, 3, 15)
    L8 = np.array([15, 8, max(3, t_min)])
    q8_check(e8, eng, x, L8)
    return "compiled"


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=_EXAMPLES, deadline=None, derandomize=_SEED is None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arch=architectures())
def test_random_torch_modules_import_as_torch_runs_them(arch):
    note(f"architecture: {arch}")
    _check(arch)


if _SEED is not None:
    test_random_torch_modules_import_as_torch_runs_them = seed(int(_SEED))(
        test_random_torch_modules_import_as_torch_runs_them)


def _campaign(examples: int, seed_: int) -> None:
    """The long local run (:func:`_helpers.fuzz_campaign`), torch on one thread."""
    torch.set_num_threads(1)
    fuzz_campaign(_check, architectures(), examples, seed_, lambda msg: msg[:300])


if __name__ == "__main__":      # python3 tests/test_torch_random_models.py EXAMPLES SEED
    _campaign(int(sys.argv[1]), int(sys.argv[2]))


# -- what the fuzz found, each as an explicit example ---------------------------------------------
def _arch(**kw) -> dict:
    base = {"packed": False, "input": "BTC", "features": 3, "front": [], "cell": "gru", "nonlinearity": None,
            "hidden": 4, "layers": 1, "bidirectional": False, "batch_first": True, "bias": True,
            "dropout": 0.0, "proj": 0, "post": [], "pool": "steps", "head_out": 3, "out_act": None,
            "gain": 1.0, "seed": 0}
    return {**base, **kw}


def _matches_torch(arch: dict) -> None:
    """from_torch of ``arch``'s module (float64) equals the module on a random batch."""
    net = (PackedNet if arch["packed"] else RandomNet)(arch).eval().double()
    x = np.random.default_rng(1).standard_normal((2, 11, arch["features"]))
    y = from_torch(net).forward(x)
    y = y[0] if isinstance(y, tuple) else y
    np.testing.assert_allclose(y, _torch(net, arch, x, torch.float64), rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("packed", [False, True])
def test_an_empty_module_list_is_no_layer(packed):
    """A container with an empty ``nn.ModuleList`` (an optional stage left out: no front-end here)
    was refused ("unsupported module 'front' of type ...ModuleList"): an empty container holds no
    layer and is skipped."""
    arch = _arch(packed=packed, pool="hn" if packed else "steps", cell="lstm")
    _matches_torch(arch)
    assert _check(arch) == "compiled"


_ACT_FIRST = {"kind": "act", "act": "tanh"}
_POOL = {"kind": "pool", "max": True, "kernel": 2, "stride": 2, "padding": 1, "ceil_mode": False,
         "count_include_pad": True}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("front", [
    [_ACT_FIRST],                                                       # an activation reads the input
    [_ACT_FIRST, {"kind": "ln"}],
    [_POOL],                                                            # a pooling reads the input
    [{**_POOL, "max": False, "stride": 1, "count_include_pad": False}, {"kind": "linear", "out": 5}],
    [_ACT_FIRST, _POOL, {"kind": "bn"}],
], ids=["act", "act_ln", "maxpool", "avgpool_linear", "act_pool_bn"])
@pytest.mark.parametrize("input_", ["BTC", "BCT"])
def test_a_module_whose_input_is_read_by_an_activation_or_a_pooling_imports(front, input_):
    """A chain whose first layer has no input size (an activation, a pooling) was refused: "cannot
    tell the input's feature size" (the first layer's size was asked for), and a pooling reading the
    input took its channel count from the first nn.Conv1d of the module ("the number of channels
    before the pooling is unknown" without one). Both are the input size of the first layer that
    has one now; and ``rc.compile`` refused a front-end that starts with an activation ("a front-end
    must start with a layer that gives the input width"): element-wise records keep the width, so the
    first sized record's input size, or the recurrent layer's, is the model's."""
    arch = _arch(input=input_, front=front, bidirectional=True, batch_first=False)
    _matches_torch(arch)
    assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("packed", [False, True])
def test_one_direction_final_state_of_a_bidirectional_layer_into_a_linear_imports(cell, layers, packed):
    """``fc(h_n[-1])`` of a bidirectional layer (the last layer's backward direction's final state
    alone, two thirds of the fuzz's refusals) was refused ("could not tell how ... combines", or with
    torch.fx "reads h_n[-2] or h_n[-1] of a bidirectional layer"). It is ``LastStep(bidirectional=True)``
    then the Linear with zero weights on the forward half (``[0 | W]``); ``fc(h_n[-2])`` the same with
    ``[W | 0]``. _check compares the NumPy model (float64), the engine (f32, with lengths: packed
    sequences for PackedNet) with the module, and the q8 engine bit for bit with the NumPy q8 spec."""
    for pool in ("hn", "hn_fwd"):
        arch = _arch(packed=packed, pool=pool, bidirectional=True, cell=cell, layers=layers,
                     proj=3 if cell == "lstm" and layers == 2 else 0)
        _matches_torch(arch)
        assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_one_direction_final_state_through_activations_into_a_linear_imports(cell):
    """``fc(act(h_n[-1]))`` (read with torch.fx): the element-wise activations run on both directions'
    final states, whose other half stays finite and meets the zero weights of the Linear: exact. A
    LayerNorm (not element-wise) or no Linear after it (the state itself as the output) reads one
    direction's final state (``LastStep(bidirectional=True, direction=...)``,
    tests/test_engine_half_state.py)."""
    for post, front in ((["silu", "linear3"], []), (["tanh"], [{"kind": "ln"}]), (["gelu", "elu"], [])):
        arch = _arch(pool="hn", bidirectional=True, cell=cell, layers=2, post=post, front=front,
                     batch_first=False)
        _matches_torch(arch)
        assert _check(arch) == "compiled"
    for post, head_out in ((["ln"], 3), (["tanh"], 0)):
        arch = _arch(pool="hn", bidirectional=True, cell=cell, post=post, head_out=head_out)
        _matches_torch(arch)
        assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
def test_h_n_of_an_earlier_layer_stays_refused():
    """``fc(h_n[0])`` of a two-layer bidirectional GRU is the first layer's forward final state,
    which the imported model does not keep: refused (the importer's candidates do not match it)."""

    class FirstLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            _, h = self.rnn(x)
            return self.fc(h[0])

    with pytest.raises(ValueError, match="FirstLayer"):
        from_torch(FirstLayer().eval())


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_both_directions_final_states_concatenated_import(cell, layers):
    """``torch.cat((h_n[-2], h_n[-1]), -1)`` of a bidirectional layer (with a front-end, read with
    torch.fx) was refused ("indexing -2 of State"): it is the last layer's forward direction at its
    last step and backward direction at its first, ``rc.nn.LastStep(bidirectional=True)``."""
    arch = _arch(cell=cell, layers=layers, bidirectional=True, pool="hn_cat", batch_first=False,
                 front=[{"kind": "ln"}], post=["tanh"])
    _matches_torch(arch)
    assert _check(arch) == "compiled"
    one_way = _arch(cell=cell, layers=2, pool="hn_cat", front=[{"kind": "ln"}])
    one_way["bidirectional"] = False      # h_n[-2] is then the first layer's state: refused
    net = RandomNet({**one_way, "bidirectional": True}).eval()
    net.rnn = _rnn(one_way, 3)
    with pytest.raises(ValueError, match="indexing -2 of State"):
        from_torch(net)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("max_", [True, False])
def test_a_pooling_after_an_embedding_has_its_features(max_):
    """``Embedding -> transpose -> MaxPool1d / AvgPool1d``: the pooling's channel count was looked for
    in the module's first nn.Conv1d (refused without one: "the number of channels before the pooling
    is unknown"), then, with a pooling reading the input taking the input's, given 1 (the token ids
    have no feature axis) and the importer's own check raised "x: expected shape (batch, time, 1)". It
    is the embedding's dimension. (rc.compile refused the pooling after the embedding, naming it;
    the C core runs it on the looked-up rows now: the fuzz's checks a-d pass.)"""
    arch = _arch(embed=12, padding_idx=0, features=6, front=[{**_POOL, "max": max_}, {"kind": "ln"}])
    net = RandomNet(arch).eval().double()
    ids = np.random.default_rng(1).integers(0, 12, (2, 11))
    np.testing.assert_allclose(from_torch(net).forward(ids), _torch(net, arch, ids, torch.float64),
                               rtol=1e-9, atol=1e-12)
    assert _check(arch) == "compiled"


@pytest.mark.filterwarnings("ignore")
def test_a_module_with_large_outputs_is_not_refused_by_the_importers_own_check():
    """A two-layer bidirectional ReLU RNN with large weights (outputs up to ~3e7) was refused: "the
    chain read from RandomNet.forward does not reproduce its output on a random batch (difference
    93.2)". The importer compares its float64 chain with the float32 module element by element
    (``allclose``, rtol = atol = 1e-4), and the module's rounding, ~1e-7 of the largest output, is in
    every element, the small ones too. The comparison is relative to the output's scale now (an error
    of a wrong chain is of the order of the output)."""
    arch = _arch(input="BCT", features=4, cell="rnn", nonlinearity="relu", hidden=8, layers=2,
                 bidirectional=True, batch_first=False, bias=False, dropout=0.3, pool="hn_cat", head_out=0,
                 gain=2.0, seed=46601)
    _matches_torch(arch)
    assert _check(arch) == "compiled"
