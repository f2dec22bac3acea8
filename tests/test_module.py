"""The Module base: PyTorch-style state_dict names, in-place loading and clear errors."""

import numpy as np
import pytest

from rnncore.nn.module import Module, resolve_dtype


class Affine(Module):
    def __init__(self) -> None:
        super().__init__()
        self.params["weight"] = np.zeros((3, 2))
        self.params["bias"] = np.zeros(3)


def make_tree() -> Module:
    root = Module()
    root.add_module("0", Affine())
    root.add_module("1", Affine())
    return root


def test_state_dict_keys_are_prefixed_like_torch_sequential():
    assert list(make_tree().state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_load_state_dict_writes_in_place_and_returns_copies():
    m = make_tree()
    live = m._modules["1"].params["weight"]
    sd = {k: np.full(v.shape, 2.5) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert np.all(live == 2.5)
    out = m.state_dict()
    out["1.weight"][...] = 0
    assert np.all(live == 2.5)


def test_load_state_dict_rejects_wrong_keys_and_shapes():
    m = make_tree()
    sd = m.state_dict()
    sd["2.weight"] = sd.pop("1.weight")
    with pytest.raises(KeyError, match=r"missing keys \['1.weight'\].*unexpected keys \['2.weight'\]"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["0.bias"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"'0.bias' expected shape \(3,\), got \(4,\)"):
        m.load_state_dict(sd)


def test_resolve_dtype():
    assert resolve_dtype("float32") == np.float32
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")
