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
    """A packed GRU, the mean (or ``pool="max"``: the maximum) over each sequence's valid steps, a Linear
    scaled by ``gain``, softmax."""

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
        y, _ = pad(self.gru(pack(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True)
        return torch.softmax(self.fc(y.sum(1) / lengths[:, None].to(y.dtype)), -1)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("pool", ["mean", "max"])
@pytest.mark.parametrize("gain", [1.0, 3e4])
def test_a_saturated_softmax_is_not_matched_by_another_pooling(gain, pool):
    """With a large head (a confident classifier) the softmax is one-hot on the probe's random batch for
    the last step and the mean over time alike: the probe took 'last' (the first candidate) for this
    mean-over-time model, 1.0 off PyTorch on other inputs. Now such a tie is refused, naming both; an
    unsaturated head still imports as the mean, equal to PyTorch. The same with the maximum over the
    valid steps (``padding_value=-inf``) imports, saturated or not."""
    net = _MeanClassifier(gain, pool).double().eval()
    # the saturated maximum's one-hot classes differ from the last step's and the mean's on the probe's
    # batch (only 'max' matches): it imports, equal to PyTorch on other batches
    if gain > 1 and pool == "mean":
        with pytest.raises(ValueError, match="saturated.*'last' and 'mean'"):
            from_torch(net)
        return
    model = from_torch(net)
    x = np.random.default_rng(5).standard_normal((6, 9, 3))
    lengths = np.array([9, 7, 5, 3, 2, 8])
    ref = net(torch.as_tensor(x), torch.as_tensor(lengths)).detach().numpy()
    y = model.forward(x, lengths=lengths)
    np.testing.assert_allclose(y[0] if isinstance(y, tuple) else y, ref, rtol=1e-9, atol=1e-12)
