"""A trained grapheme-to-phoneme GRU from a PyPI wheel: g2p_en 2.1.0's ``checkpoint20.npz``
(Apache-2.0, a 3.1 MB wheel; ``.ci/run`` installs it ``--no-deps``: only the weights file is
read, the package, which needs nltk, is not imported).

The package's own source (``g2p_en/g2p.py``) gives the architecture, PyTorch's GRU written out in
NumPy: an encoder ``Embedding(29, 256) -> GRU(256)`` over the word's letters and ``</s>``, its last
state starting a decoder ``Embedding(74, 256) -> GRUCell(256) -> Linear(256, 74)`` run greedily
from ``<s>`` (token 2) until ``</s>`` (token 3), at most 20 steps. Both halves are rebuilt as
PyTorch modules from the weights, imported with ``rc.io.from_torch`` and compiled (f32, q8); the
decoder runs one step per ``engine.run`` with the state fed back. Checked against PyTorch (the
logits of every step, the phonemes) and the words' CMUdict pronunciations, which the model was
trained on.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnncore as rc  # noqa: E402

_SPEC = importlib.util.find_spec("g2p_en")
pytestmark = pytest.mark.skipif(_SPEC is None, reason="g2p_en not installed (.ci/run installs g2p_en==2.1.0)")

# CMUdict 0.7b pronunciations (the model's training data)
WORDS = {"speech": "S P IY1 CH", "network": "N EH1 T W ER2 K", "recurrent": "R IH0 K ER1 AH0 N T",
         "water": "W AO1 T ER0", "computer": "K AH0 M P Y UW1 T ER0", "model": "M AA1 D AH0 L",
         "phone": "F OW1 N", "music": "M Y UW1 Z IH0 K"}


def _package():
    root = pathlib.Path(next(iter(_SPEC.submodule_search_locations)))
    tree = ast.parse((root / "g2p.py").read_text())
    vocab = {}
    for node in ast.walk(tree):          # self.graphemes = [...] + list("..."), self.phonemes = [...]
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) \
                and node.targets[0].attr in ("graphemes", "phonemes"):
            vocab[node.targets[0].attr] = eval(compile(ast.Expression(node.value), "g2p.py", "eval"),  # noqa: S307
                                               {"__builtins__": {}, "list": list})
    return np.load(root / "checkpoint20.npz"), vocab["graphemes"], vocab["phonemes"]


def _load_gru(gru, w, prefix):
    for ours, theirs in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"),
                         ("bias_hh_l0", "b_hh")):
        getattr(gru, ours).data = torch.as_tensor(w[prefix + theirs])


class Encoder(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.emb = torch.nn.Embedding.from_pretrained(torch.as_tensor(w["enc_emb"]))
        self.gru = torch.nn.GRU(256, 256, batch_first=True)
        _load_gru(self.gru, w, "enc_")

    def forward(self, ids):
        return self.gru(self.emb(ids))[0][:, -1]


class Decoder(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.emb = torch.nn.Embedding.from_pretrained(torch.as_tensor(w["dec_emb"]))
        self.gru = torch.nn.GRU(256, 256, batch_first=True)
        _load_gru(self.gru, w, "dec_")
        self.fc = torch.nn.Linear(256, 74)
        self.fc.weight.data, self.fc.bias.data = torch.as_tensor(w["fc_w"]), torch.as_tensor(w["fc_b"])

    def forward(self, ids):
        return self.fc(self.gru(self.emb(ids))[0])

    def step(self, tok: int, h):
        y, h = self.gru(self.emb(torch.tensor([[tok]])), h)
        return self.fc(y)[0, 0].numpy(), h


def _decode(step, h, limit=20):
    """Greedy decoding as g2p_en's ``predict``: ``step(token, h) -> (logits (74,), h)``."""
    tok, out, logits = 2, [], []
    for _ in range(limit):
        z, h = step(tok, h)
        logits.append(z)
        tok = int(np.argmax(z))
        if tok == 3:
            break
        out.append(tok)
    return out, np.array(logits)


def _ids(word, graphemes):
    return np.array([[graphemes.index(c) for c in word] + [graphemes.index("</s>")]], np.int64)


@pytest.fixture(scope="module")
def g2p():
    w, graphemes, phonemes = _package()
    enc, dec = Encoder(w).eval(), Decoder(w).eval()
    return w, graphemes, phonemes, enc, dec


def test_torch_rebuild_is_the_packages_numpy_model(g2p):
    """The PyTorch modules rebuilt from the weights are g2p_en's NumPy GRU (its ``grucell``
    equations, written here from g2p.py) on the word 'speech', and decode the CMUdict
    pronunciations."""
    w, graphemes, phonemes, enc, dec = g2p

    def cell(x, h, p):
        gi, gh = x @ w[p + "w_ih"].T + w[p + "b_ih"], h @ w[p + "w_hh"].T + w[p + "b_hh"]
        r = 1 / (1 + np.exp(-(gi[:, :256] + gh[:, :256])))
        z = 1 / (1 + np.exp(-(gi[:, 256:512] + gh[:, 256:512])))
        n = np.tanh(gi[:, 512:] + r * gh[:, 512:])
        return (1 - z) * n + z * h

    ids = _ids("speech", graphemes)
    h = np.zeros((1, 256), np.float32)
    for t in range(ids.shape[1]):
        h = cell(w["enc_emb"][ids[:, t]], h, "enc_")
    with torch.no_grad():
        np.testing.assert_allclose(enc(torch.as_tensor(ids)).numpy(), h, rtol=0, atol=1e-5)
        for word, want in WORDS.items():
            got, _ = _decode(dec.step, enc(torch.as_tensor(_ids(word, graphemes)))[None])
            assert " ".join(phonemes[i] for i in got) == want, word


@pytest.mark.parametrize("precision,tol", [("f32", 2e-5), ("q8", None)])
def test_imports_compiles_and_decodes_as_torch(g2p, precision, tol):
    """``from_torch`` of both halves, compiled: the encoder's last state and every decoder step's
    logits (state fed back through ``engine.run(state=...)``) against PyTorch's; f32 decodes
    every word to PyTorch's phonemes, q8 most of them."""
    w, graphemes, phonemes, enc, dec = g2p
    r_enc, r_dec = rc.io.from_torch(enc, dtype="float32"), rc.io.from_torch(dec, dtype="float32")
    assert [type(m).__name__ for m in r_enc] == ["Embedding", "GRU", "LastStep"]
    assert [type(m).__name__ for m in r_dec] == ["Embedding", "GRU", "Linear"]
    e_enc = rc.compile(r_enc, precision=precision)
    e_dec = rc.compile(r_dec, precision=precision)

    def step(tok, h):
        y, h = e_dec.run(np.array([[tok]], np.int64), state=h, return_state=True)
        return y[0, 0], h

    same = 0
    for word in WORDS:
        ids = _ids(word, graphemes)
        with torch.no_grad():
            h_ref = enc(torch.as_tensor(ids)).numpy()
            want, z_ref = _decode(dec.step, torch.as_tensor(h_ref)[None])
        h = e_enc.run(ids)
        got, z = _decode(step, h[None])
        if precision == "f32":
            np.testing.assert_allclose(h, h_ref, rtol=0, atol=tol)
            assert got == want, word
            np.testing.assert_allclose(z, z_ref, rtol=0, atol=5 * tol)     # logits up to 29
        same += got == want
    if precision == "q8":
        assert same >= len(WORDS) - 1, same
