"""A trained polyphone-disambiguation BiLSTM from a PyPI wheel: g2pM 0.1.2.5 (Apache-2.0, a
1.7 MB wheel; ``.ci/run`` installs it ``--no-deps``; it needs only NumPy).

The package runs its model in NumPy (``g2pM/g2pM.py``, the weights a PyTorch state dict in
``np_ckpt.pkl``): ``Embedding(5398, 64) -> bidirectional LSTM(32) -> Linear(64, 32) -> ReLU ->
Linear(32, 876)`` per character, the logits read at each polyphonic character. Rebuilt as a
PyTorch module from the state dict, imported with ``rc.io.from_torch`` and compiled (f32, q8);
checked against the package's own NumPy model (its logits and its pinyin) and PyTorch.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("g2pM") is None,
                                reason="g2pM not installed (.ci/run installs g2pM==0.1.2.5)")

import rnncore as rc  # noqa: E402

SENTENCES = ["然而，他红了20年以后，他竟退出了大家的视线。", "银行行长说他长大了会还钱。",
             "这个地方的重要性不言而喻。", "他觉得睡觉的时候音乐很好听。"]


class Net(torch.nn.Module):
    def __init__(self, sd):
        super().__init__()
        self.embedding = torch.nn.Embedding(5398, 64)
        self.lstm = torch.nn.LSTM(64, 32, batch_first=True, bidirectional=True)
        lin = torch.nn.Linear
        self.logit_layer = torch.nn.Sequential(lin(64, 32), torch.nn.ReLU(), lin(32, 876))
        self.load_state_dict({k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in sd.items()})

    def forward(self, ids):
        return self.logit_layer(self.lstm(self.embedding(ids))[0])


@pytest.fixture(scope="module")
def g2pm():
    import pickle

    from g2pM import G2pM
    from g2pM import g2pM as module

    package = G2pM()
    with open(module.__file__.replace("g2pM.py", "np_ckpt.pkl"), "rb") as f:
        net = Net(pickle.load(f)).eval()
    return package, net


def _package_logits(package, sentence):
    """The package's ids, polyphone positions, logits at them and pinyin (its own ``__call__``,
    the logits caught at its ``fc_layer``)."""
    caught = []
    fc = package.fc_layer
    package.fc_layer = lambda h: caught.append(fc(h)) or caught[-1]
    try:
        pinyin = package(sentence, char_split=True)
    finally:
        del package.fc_layer
    ids = [package.char2idx.get(c, package.char2idx["<UNK>"]) for c in sentence]
    poly = [i + 1 for i, c in enumerate(sentence) if len(package.cedict.get(c, [])) > 1]
    ids = np.array([[package.char2idx["시"], *ids, package.char2idx["끝"]]], np.int64)
    return ids, poly, caught[0], pinyin


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_imports_compiles_and_matches_the_packages_numpy_model(g2pm, precision):
    package, net = g2pm
    model = rc.io.from_torch(net, dtype="float32")
    assert [type(m).__name__ for m in model] == ["Embedding", "LSTM", "Linear", "ReLU", "Linear"]
    eng = rc.compile(model, precision=precision)
    polys = flips = 0
    for sentence in SENTENCES:
        ids, poly, want, pinyin = _package_logits(package, sentence)
        assert poly and want.shape == (len(poly), 876)
        with torch.no_grad():
            np.testing.assert_allclose(net(torch.as_tensor(ids))[0, poly].numpy(), want, rtol=0,
                                       atol=1e-6 * np.abs(want).max())   # float32 against float64
        got = eng.run(ids)[0, poly]
        picked = [package.idx2class[int(k)] for k in got.argmax(1)]
        polys += len(poly)
        if precision == "f32":
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
            assert picked == [pinyin[p - 1] for p in poly]
        else:
            flips += sum(a != pinyin[p - 1] for a, p in zip(picked, poly, strict=True))
            assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
    assert polys >= 12 and flips <= 1
