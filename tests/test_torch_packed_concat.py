"""``rc.io.from_torch`` of a ``forward(x, lengths)`` that packs its input (``pack_padded_sequence``, which
torch.fx cannot trace: the importer runs the module on random batches and keeps the interpretation whose
output matches) and whose head reads concatenated poolings over time (``rc.nn.ConcatPool``): Kaggle's
``torch.cat([masked mean, masked max], 1)``, fastai's ``masked_concat_pool`` ``[last, max, mean]``,
``torch.cat([h_n[-2], h_n[-1], mean], 1)``, each into a Linear (and a softmax); and one direction's final
state as the output (``return h_n[-1]``, ``h_n[-2]``, ``fc(norm(h_n[-1]))``:
``rc.nn.LastStep(bidirectional=True, direction=...)``).

Checked against PyTorch on a batch of unsorted lengths: the NumPy model in float64 (1e-9 of
``max(1, max |y|)``, the fuzz's limit), the f32 engine against the float32 module (1e-5 of the same
scale: the largest error measured on these modules is 6e-8, AMD EPYC Zen 4), q8 bit for bit against
the NumPy q8 spec on every ISA path of this CPU (``_helpers.q8_reference_with_libm``). A module the
probe cannot decide (a maximum that equals the last step on every batch) and a maximum over
``pad_packed_sequence``'s zero padding inside a concatenation are refused by name."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.io import from_torch

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import q8_reference_with_libm  # noqa: E402

pack = torch.nn.utils.rnn.pack_padded_sequence
pad = torch.nn.utils.rnn.pad_packed_sequence
pytestmark = pytest.mark.filterwarnings("ignore")


class ConcatNet(torch.nn.Module):
    """``forward(x, lengths)``: packed ``cell``, the output padded back, the parts ``parts`` of
    ``"mean"`` (over the valid steps), ``"max"`` (the valid steps' maximum, padding ``padding``: -inf,
    or 0.0 for pad_packed_sequence's default), ``"last"`` (the output at the last valid step, fastai's) and
    ``"hn"`` (``h_n[-1]``, or ``torch.cat([h_n[-2], h_n[-1]], 1)`` after a bidirectional layer)
    concatenated, a Linear, optionally a softmax."""

    def __init__(self, cell: str, layers: int, bidirectional: bool, parts: tuple, softmax: bool = False,
                 hidden: int = 6, padding: float = float("-inf"), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = getattr(torch.nn, cell)(3, hidden, layers, batch_first=True, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(hidden * (2 if bidirectional else 1) * len(parts), 4)
        self.parts, self.softmax, self.padding = parts, softmax, padding

    def forward(self, x, lengths):
        out, h = self.rnn(pack(x, lengths, batch_first=True, enforce_sorted=False))
        h = h[0] if isinstance(h, tuple) else h
        y, _ = pad(out, batch_first=True, total_length=x.shape[1])
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        part = {"mean": (y * mask).sum(1) / lengths[:, None].to(y.dtype),
                "max": (y.masked_fill(~mask, self.padding) if self.padding != 0.0 else y).max(1).values,
                "last": y[torch.arange(len(lengths)), lengths - 1],
                "hn": torch.cat([h[-2], h[-1]], 1) if self.rnn.bidirectional else h[-1]}
        z = self.fc(torch.cat([part[p] for p in self.parts], 1))
        return torch.softmax(z, -1) if self.softmax else z


X = np.random.default_rng(7).standard_normal((5, 8, 3))
LENGTHS = np.array([3, 8, 5, 1, 6])      # unsorted (enforce_sorted=False)


def _torch(net: torch.nn.Module, dtype) -> np.ndarray:
    with torch.no_grad():
        return net.to(dtype)(torch.as_tensor(X, dtype=dtype), torch.as_tensor(LENGTHS)).numpy()


def _same_as_torch(net: torch.nn.Module):
    """The imported model (float64) equals the float64 module; its f32 engine the float32 module; its q8
    engine the NumPy q8 spec bit for bit on every ISA path. Returns the model."""
    net = net.double().eval()
    model = from_torch(net)
    want = _torch(net, torch.float64)
    got = model.forward(X, lengths=LENGTHS)
    got = got[0] if isinstance(got, tuple) else got
    assert np.abs(got - want).max() <= 1e-9 * max(1.0, float(np.abs(want).max()))
    want = _torch(net, torch.float32)
    x32 = X.astype(np.float32)
    got = rc.compile(model).run(x32, LENGTHS)
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
    q = q8_reference_with_libm(rc.compile(model, precision="q8"), x32, LENGTHS)
    assert np.all(np.isfinite(q))
    assert np.abs(q - want).max() < 0.5 * max(1.0, float(np.abs(want).max())), "q8 far from f32"
    return model


CASES = [
    ("GRU", 1, False, ("mean", "max"), False),             # Kaggle
    ("LSTM", 2, True, ("max", "mean"), True),
    ("GRU", 2, True, ("last", "max", "mean"), False),      # fastai masked_concat_pool
    ("LSTM", 1, False, ("last", "max", "mean"), True),
    ("GRU", 1, True, ("hn", "mean"), False),               # torch.cat([h_n[-2], h_n[-1], mean], 1)
    ("LSTM", 2, True, ("hn", "mean"), True),
    ("RNN", 1, True, ("mean", "last"), False),
]


@pytest.mark.parametrize("cell,layers,bidirectional,parts,softmax", CASES,
                         ids=["-".join([c, str(n), "bi" if b else "uni", *p] + (["softmax"] if s else []))
                              for c, n, b, p, s in CASES])
def test_a_packed_concatenation_of_poolings_imports(cell, layers, bidirectional, parts, softmax):
    model = _same_as_torch(ConcatNet(cell, layers, bidirectional, parts, softmax))
    pools = [type(p).__name__ for m in model if isinstance(m, rc.nn.ConcatPool) for p in m.pools]
    assert pools == [{"mean": "MaskedMean", "max": "MaskedMax"}.get(p, "LastStep") for p in parts]


def test_a_maximum_over_zero_padding_in_a_concatenation_is_refused_by_name():
    """``pad_packed_sequence``'s default ``padding_value=0.0``, then ``y.max(1)``: ``max(valid maximum, 0)``
    for a short sequence, which ``MaskedMax`` is not."""
    net = ConcatNet("GRU", 1, False, ("mean", "max"), padding=0.0).double().eval()
    with pytest.raises(ValueError, match=r"ConcatNet\.forward concatenates poolings .*padding_value"):
        from_torch(net)


class Monotone(ConcatNet):
    """A one-unit ReLU RNN that ignores its input, ``h_t = relu(1 + 0.5 h_{t-1})``: increasing, so that its
    maximum over the valid steps is its last valid step on every batch; ``cat(mean, max)`` and
    ``cat(mean, last)`` are one function of the input here, and the probe cannot tell which the module
    computes."""

    def __init__(self) -> None:
        super().__init__("RNN", 1, False, ("mean", "max"), hidden=1)
        self.rnn = torch.nn.RNN(3, 1, batch_first=True, nonlinearity="relu")
        with torch.no_grad():
            self.rnn.weight_ih_l0.zero_()
            self.rnn.weight_hh_l0.fill_(0.5)
            self.rnn.bias_ih_l0.fill_(1.0)
            self.rnn.bias_hh_l0.zero_()


def test_an_ambiguous_concatenation_is_refused_by_name():
    with pytest.raises(ValueError, match=r"Monotone\.forward concatenates poolings over time, but on 16 "
                                         r"random batches .*'cat\(mean,last\)', 'cat\(mean,max\)'"):
        from_torch(Monotone().double().eval())


class Half(torch.nn.Module):
    """A packed bidirectional ``cell``'s final state of one direction, ``h_n[which]``, returned, or through
    ``norm`` (an nn.LayerNorm) and a Linear (and a softmax)."""

    def __init__(self, which: int, cell: str = "GRU", layers: int = 1, norm: bool = False,
                 softmax: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.rnn = getattr(torch.nn, cell)(3, 5, layers, batch_first=True, bidirectional=True)
        self.norm = torch.nn.LayerNorm(5) if norm else None
        self.fc = torch.nn.Linear(5, 4) if norm else None
        if norm:
            with torch.no_grad():     # not the identity LayerNorm of PyTorch's init
                self.norm.weight.uniform_(0.5, 1.5)
                self.norm.bias.uniform_(-0.5, 0.5)
        self.which, self.softmax = which, softmax

    def forward(self, x, lengths):
        _, h = self.rnn(pack(x, lengths, batch_first=True, enforce_sorted=False))
        z = (h[0] if isinstance(h, tuple) else h)[self.which]
        if self.norm is not None:
            z = self.fc(self.norm(z))
        return torch.softmax(z, -1) if self.softmax else z


@pytest.mark.parametrize("which,cell,layers,norm,softmax", [
    (-1, "GRU", 1, False, False), (-2, "GRU", 2, False, False), (-1, "LSTM", 2, False, False),
    (-1, "GRU", 1, True, False), (-2, "LSTM", 1, True, True),
])
def test_one_directions_final_state_of_a_packed_forward_imports(which, cell, layers, norm, softmax):
    """``return h_n[-1]`` / ``h_n[-2]`` / ``fc(norm(h_n[-1]))``: ``LastStep(bidirectional=True,
    direction="backward" / "forward")``, the NumPy model, the f32 engine and q8 as above."""
    model = _same_as_torch(Half(which, cell, layers, norm, softmax))
    last = [m for m in model if isinstance(m, rc.nn.LastStep)]
    assert [m.direction for m in last] == ["backward" if which == -1 else "forward"]


@pytest.mark.parametrize("parts,bidirectional", [(("mean", "max"), False), (("last", "max", "mean"), True),
                                                 (("hn", "mean"), True)])
def test_a_saturated_softmax_after_a_concatenation_is_decided_by_the_logits(parts, bidirectional):
    """A confident head (weights x 3e4): the softmax is one-hot on the probe's batch for several orders of
    the parts alike; the output of the module's Linear, captured by the probe, decides. The imported
    chain without its softmax is PyTorch's logits (captured here by a hook) on another batch."""
    net = ConcatNet("GRU", 1, bidirectional, parts, softmax=True).double().eval()
    with torch.no_grad():
        net.fc.weight.mul_(3e4)
    model = from_torch(net)
    logits = []
    hook = net.fc.register_forward_hook(lambda m, i, o: logits.append(o.detach().numpy()))
    _torch(net, torch.float64)
    hook.remove()
    got = rc.nn.Sequential(*list(model)[:-1]).forward(X, lengths=LENGTHS)
    assert isinstance(list(model)[-1], rc.nn.Softmax)
    assert np.abs(got - logits[0]).max() <= 1e-9 * max(1.0, float(np.abs(logits[0]).max()))


def test_random_packed_concatenations_import_equal_to_pytorch_or_are_refused_by_name():
    """Seeded draws of the modules above (cell, 1-2 layers, one or two directions, 1-3 units: small
    layers make the parts agree by chance, 2 or 3 parts in any order, h_n or the output's last step,
    the maximum over -inf or zero padding, softmax or not): each imports equal to PyTorch on five other
    batches (lengths drawn, inputs 0.5 to 8 standard deviations), or is refused naming the module.
    ``RNNCORE_FUZZ_EXAMPLES`` sets the number of draws (12 by default; 200 locally: 152 imported, 48
    refused, 42 of them for a maximum over zero padding, 6 undecidable one- and two-unit layers)."""
    for i in range(int(os.environ.get("RNNCORE_FUZZ_EXAMPLES", "12"))):
        g = np.random.default_rng(i)
        cell = ("GRU", "LSTM", "RNN")[g.integers(3)]
        bidirectional, layers, hidden = bool(g.integers(2)), int(g.integers(1, 3)), int(g.integers(1, 4))
        k = int(g.integers(2, 4))
        parts = tuple(g.permutation(["last" if g.integers(2) else "hn", "mean", "max"])[:k])
        padding = 0.0 if g.integers(4) == 0 else float("-inf")
        net = ConcatNet(cell, layers, bidirectional, parts, softmax=bool(g.integers(2)), hidden=hidden,
                        padding=padding, seed=i).double().eval()
        try:
            model = from_torch(net)
        except ValueError as e:
            assert str(e).startswith("from_torch: ConcatNet.forward"), str(e)
            continue
        for j in range(5):
            gg = np.random.default_rng(1000 + j)
            T = int(gg.integers(2, 10))
            x = gg.standard_normal((6, T, 3)) * (0.5, 1, 2, 4, 8)[j]
            lengths = gg.integers(1, T + 1, 6)
            lengths[0] = T
            with torch.no_grad():
                want = net(torch.as_tensor(x), torch.as_tensor(lengths)).numpy()
            got = model.forward(x, lengths=lengths)
            assert np.abs(got - want).max() <= 1e-9 * max(1.0, float(np.abs(want).max())), (i, j, parts)
