"""``rc.io.from_torch`` of a ``forward(x, lengths)`` that packs its input (``pack_padded_sequence``, which
torch.fx cannot trace: the importer runs the module and keeps the interpretation whose output matches)
and ends with a softmax / log_softmax: ``torch.softmax(fc(h), -1)``, ``F.log_softmax(..., dim=-1)``,
``nn.Softmax`` / ``nn.LogSoftmax`` modules. These were refused ("could not tell how ... combines", 44
of 1,000 examples of the torch fuzz at seed 11). Checked against PyTorch: the NumPy model in float64,
the engine in f32 with lengths (packed sequences) and q8 bit for bit against the NumPy q8 reference
(``_check`` of tests/test_torch_random_models.py); a softmax over time stays refused."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnncore as rc
from rnncore.io import from_torch

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import q8_reference_with_libm  # noqa: E402
from test_torch_random_models import _TOL_F32, _arch, _check, _matches_torch  # noqa: E402

pack = torch.nn.utils.rnn.pack_padded_sequence
pad = torch.nn.utils.rnn.pad_packed_sequence


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("out_act", ["softmax", "log_softmax"])
@pytest.mark.parametrize("cell,pool,bidirectional", [
    ("gru", "hn", False), ("lstm", "hn", True), ("rnn", "hn_fwd", True), ("gru", "hn_cat", True),
])
def test_a_packed_classifier_ending_in_softmax_imports(cell, pool, bidirectional, out_act):
    """``torch.softmax(fc(h_n[...]), -1)`` / ``torch.log_softmax`` after a packed recurrent layer."""
    arch = _arch(packed=True, cell=cell, nonlinearity="relu" if cell == "rnn" else None, pool=pool,
                 bidirectional=bidirectional, layers=2, head_out=5, out_act=out_act)
    _matches_torch(arch)
    assert _check(arch) == "compiled"


class Classifier(torch.nn.Module):
    """``forward(x, lengths)``: packed GRU, ``fc(h_n[-1])`` then the final op ``final``: a function of
    the logits or ``"module"`` (the registered ``self.out``)."""

    def __init__(self, final, out=None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = torch.nn.GRU(3, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 4)
        self.out = out
        self.final = final

    def forward(self, x, lengths):
        _, h = self.rnn(pack(x, lengths, batch_first=True, enforce_sorted=False))
        z = self.fc(h[-1])
        return self.out(z) if self.final == "module" else self.final(z)


def _same_as_torch(net: torch.nn.Module) -> None:
    """The imported model with ``lengths=`` equals the float64 module on a batch of unsorted lengths;
    its engine (f32) the float32 module within the fuzz's limit; q8 the NumPy q8 reference bit for bit."""
    net = net.double().eval()
    x = np.random.default_rng(3).standard_normal((3, 9, 3))
    lengths = np.array([4, 9, 7])

    def module(dtype):
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=dtype), torch.as_tensor(lengths)).numpy()

    model = from_torch(net)
    got = model.forward(x, lengths=lengths)
    got = got[0] if isinstance(got, tuple) else got
    np.testing.assert_allclose(got, module(torch.float64), rtol=1e-9, atol=1e-12)
    net.float()
    want = module(torch.float32)
    got = rc.compile(model).run(x.astype(np.float32), lengths)
    assert np.abs(got - want).max() < _TOL_F32 * max(1.0, float(np.abs(want).max()))
    q = q8_reference_with_libm(rc.compile(model, precision="q8"), x.astype(np.float32), lengths)
    assert np.abs(q - want).max() < 0.5 * max(1.0, float(np.abs(want).max())), "q8 far from f32"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("final,out", [
    (lambda z: F.softmax(z, dim=-1), None),
    (lambda z: F.log_softmax(z, dim=1), None),       # dim=1 of a (B, C) output: its features
    (lambda z: z.softmax(-1), None),
    ("module", torch.nn.Softmax(dim=-1)),
    ("module", torch.nn.LogSoftmax(dim=1)),
], ids=["F.softmax", "F.log_softmax_dim1", "method", "nn.Softmax", "nn.LogSoftmax"])
def test_the_forms_of_a_final_softmax_import(final, out):
    _same_as_torch(Classifier(final, out))


class EveryStep(torch.nn.Module):
    """Packed GRU, every step padded back, ``fc``, a softmax over ``dim``, zero past the lengths."""

    def __init__(self, dim: int, zero: bool = True) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.rnn = torch.nn.GRU(3, 5, batch_first=True)
        self.fc = torch.nn.Linear(5, 4)
        self.dim, self.zero = dim, zero

    def forward(self, x, lengths):
        y, _ = self.rnn(pack(x, lengths, batch_first=True, enforce_sorted=False))
        y, _ = pad(y, batch_first=True, total_length=x.shape[1])
        p = torch.softmax(self.fc(y), self.dim)
        valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        return p * valid[..., None] if self.zero else p


@pytest.mark.filterwarnings("ignore")
def test_a_softmax_over_the_features_of_every_step_imports_and_over_time_is_refused():
    _same_as_torch(EveryStep(-1))
    # softmax(fc(0)) past the lengths, where the imported model writes zeros: refused, saying so
    with pytest.raises(ValueError, match="past each sequence's length is not zero"):
        from_torch(EveryStep(-1, zero=False).eval())
    for dim in (1, 0):
        with pytest.raises(ValueError, match="EveryStep"):
            from_torch(EveryStep(dim).eval())


@pytest.mark.filterwarnings("ignore")
def test_a_softmax_over_the_batch_is_refused():
    with pytest.raises(ValueError, match="could not tell how Classifier.forward combines"):
        from_torch(Classifier(lambda z: torch.softmax(z, 0)).eval())


class _MeanClassifier(torch.nn.Module):
    """A packed GRU, the mean (``pool="last"``: the last valid step, ``"max"``: the maximum) over each
    sequence's valid steps, a Linear scaled by ``gain``, softmax. ``pool="twice"``: the mean, and the
    Linear also applied to the last step (an auxiliary head whose output is dropped); ``"aux"``: the
    mean through ``F.linear`` with the Linear's weights, the Linear module itself called once on the
    first step (its output is not the softmax's input); ``"sum"``: the sum over time (which no
    interpretation is; saturated, the softmax matches the last step's and the mean's); ``"temperature"``:
    the mean, the softmax of the Linear's output divided by 2."""

    def __init__(self, gain: float, pool: str = "mean") -> None:
        super().__init__()
        self.pool = pool
        torch.manual_seed(0)
        self.gru = torch.nn.GRU(3, 8, batch_first=True)
        self.fc = torch.nn.Linear(8, 4)
        with torch.no_grad():
            self.fc.weight.mul_(gain)

    def forward(self, x, lengths):
        if self.pool == "max":     # padded with -inf: the maximum over the valid steps
            packed = self.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))[0]
            y, _ = pad(packed, batch_first=True, padding_value=float("-inf"))
            return torch.softmax(self.fc(y.max(1).values), -1)
        if self.pool == "last":
            _, h = self.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))
            return torch.softmax(self.fc(h[-1]), -1)
        y, _ = pad(self.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True)
        if self.pool == "sum":
            return torch.softmax(self.fc(y.sum(1)), -1)
        if self.pool == "twice":
            self.fc(y[torch.arange(len(lengths)), lengths - 1])
        if self.pool == "aux":      # the Linear module on the first step; the softmax's logits computed apart
            self.fc(y[:, 0])
            return torch.softmax(F.linear(y.sum(1) / lengths[:, None].to(y.dtype), self.fc.weight,
                                          self.fc.bias), -1)
        if self.pool == "temperature":
            return torch.softmax(self.fc(y.sum(1) / lengths[:, None].to(y.dtype)) / 2.0, -1)
        return torch.softmax(self.fc(y.sum(1) / lengths[:, None].to(y.dtype)), -1)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("pool", ["mean", "last", "max"])
@pytest.mark.parametrize("gain", [1.0, 3e3, 3e4])
def test_a_saturated_softmax_is_not_matched_by_another_pooling(gain, pool):
    """With a large head (a confident classifier) the softmax is one-hot on the probe's random batch for
    the last step and the mean over time alike: the probe took 'last' (the first candidate) for this
    mean-over-time model, 1.0 off PyTorch on other inputs, then refused such a tie. Now the output of
    the module's nn.Linear, captured during the probe, decides which interpretation's logits it is: the
    model imports, equal to PyTorch on other inputs, saturated or not, for the mean, the last valid step
    and the maximum over the valid steps (``padding_value=-inf``)."""
    net = _MeanClassifier(gain, pool).double().eval()
    model = from_torch(net)
    x = np.random.default_rng(5).standard_normal((6, 9, 3))
    lengths = np.array([9, 7, 5, 3, 2, 8])
    ref = net(torch.as_tensor(x), torch.as_tensor(lengths)).detach().numpy()
    y = model.forward(x, lengths=lengths)
    np.testing.assert_allclose(y[0] if isinstance(y, tuple) else y, ref, rtol=1e-9, atol=1e-12)
    # and on a batch where the softmax is not saturated (small inputs, the head divided back by the gain):
    # the logits themselves are PyTorch's, so the pooling imported is the module's
    with torch.no_grad():
        net.fc.weight.div_(gain)
    model = from_torch(net)  # unsaturated: the probe decides without the captured logits
    y = model.forward(x, lengths=lengths)
    ref = net(torch.as_tensor(x), torch.as_tensor(lengths)).detach().numpy()
    np.testing.assert_allclose(y[0] if isinstance(y, tuple) else y, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore")
def test_a_saturated_softmax_imported_reads_pytorchs_own_logits():
    """The saturated mean-over-time import's chain without its softmax is PyTorch's logits,
    ``fc(mean)``, on fresh inputs (not only its one-hot outputs)."""
    net = _MeanClassifier(3e4).double().eval()
    model = from_torch(net)
    assert isinstance(model[-1], rc.nn.Softmax)
    x = np.random.default_rng(7).standard_normal((5, 8, 3))
    lengths = np.array([8, 6, 4, 2, 1])
    y, _ = pad(net.gru(pack(torch.as_tensor(x), torch.as_tensor(lengths), batch_first=True,
                            enforce_sorted=False))[0], batch_first=True)
    with torch.no_grad():
        want = net.fc(y.sum(1) / torch.as_tensor(lengths)[:, None].double()).numpy()
    got = rc.nn.Sequential(*list(model)[:-1]).forward(x, lengths=lengths)
    np.testing.assert_allclose(got[0] if isinstance(got, tuple) else got, want, rtol=1e-9, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("pool,why", [
    ("twice", "calls its last one more than once"),
    ("aux", "output is not the softmax's input"),
    ("sum", "is the logits of none of them"),
])
def test_a_saturated_softmax_the_linear_does_not_decide_stays_refused(pool, why):
    """Saturated, 'last' and 'mean' both reproduce the output; the Linear's output does not decide: it is
    called twice, it is not the softmax's input, or it is the logits of no interpretation (the sum over
    time): refused, naming both and why. Unsaturated (gain 1), the same modules show what a guess would
    cost: PyTorch's output on a fresh batch is not the softmax of its last step's logits."""
    net = _MeanClassifier(3e4, pool).double().eval()
    with pytest.raises(ValueError, match=f"saturated.*'last' and 'mean'.*{why}"):
        from_torch(net)
    net = _MeanClassifier(1.0, pool).double().eval()
    x = torch.as_tensor(np.random.default_rng(5).standard_normal((4, 9, 3)))
    lengths = torch.as_tensor([9, 7, 3, 2])
    with torch.no_grad():
        y, _ = pad(net.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True)
        last = torch.softmax(net.fc(y[torch.arange(4), lengths - 1]), -1)
        assert (net(x, lengths) - last).abs().max() > 1e-3


@pytest.mark.filterwarnings("ignore")
def test_a_saturated_softmax_behind_a_temperature_is_refused():
    """``softmax(fc(mean) / 2)``: saturated, its outputs are one-hot like ``softmax(fc(mean))``'s, and the
    captured logits are the mean's, so the probe's match alone would import the model without its
    temperature. The probe runs the module again with the Linear's output scaled down, where the softmax
    is not saturated, and refuses. Unsaturated (gain 1), PyTorch shows what that import would cost."""
    net = _MeanClassifier(3e4, "temperature").double().eval()
    with pytest.raises(ValueError, match="saturated.*something .a temperature, a scale. stands between"):
        from_torch(net)
    net = _MeanClassifier(1.0, "temperature").double().eval()
    x = torch.as_tensor(np.random.default_rng(5).standard_normal((4, 9, 3)))
    lengths = torch.as_tensor([9, 7, 3, 2])
    with torch.no_grad():
        y, _ = pad(net.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True)
        plain = torch.softmax(net.fc(y.sum(1) / lengths[:, None].double()), -1)
        assert (net(x, lengths) - plain).abs().max() > 1e-3
