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


def test_parameters_are_the_live_arrays_in_state_dict_order():
    m = make_tree()
    assert [p.shape for p in m.parameters()] == [(3, 2), (3,), (3, 2), (3,)]
    assert next(m.parameters()) is m._modules["0"].params["weight"]


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
    with pytest.raises(ValueError, match=r"missing keys \['1.weight'\].*unexpected keys \['2.weight'\]"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["0.bias"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"'0.bias' expected shape \(3,\), got \(4,\)"):
        m.load_state_dict(sd)


def test_load_state_dict_rejects_non_mappings_and_non_numbers():
    m = make_tree()
    with pytest.raises(TypeError, match=r"state_dict: expected a mapping .* got list"):
        m.load_state_dict([np.zeros((3, 2))])
    sd = {k: np.zeros(v.shape, complex) for k, v in m.state_dict().items()}
    with pytest.raises(TypeError, match=r"0.weight: expected real numbers, got .*complex128"):
        m.load_state_dict(sd)


def test_load_state_dict_takes_a_torch_modules_own_state_dict_and_parameters():
    """Tensors straight from torch: float32 into float64 (cast like Tensor.copy_), requires_grad
    parameters, bfloat16 (no numpy dtype)."""
    torch = pytest.importorskip("torch")
    import rnncore as rc

    tm = torch.nn.GRU(3, 4, batch_first=True)
    ours = rc.nn.GRU(3, 4)
    for source in (tm.state_dict(), dict(tm.named_parameters())):
        ours.load_state_dict(source)
        for k, v in tm.state_dict().items():
            np.testing.assert_array_equal(ours.params[k], v.numpy().astype(np.float64))
    ours.load_state_dict(tm.to(torch.bfloat16).state_dict())
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(ours.params[k], v.float().numpy().astype(np.float64))


def test_resolve_dtype():
    assert resolve_dtype("float32") == np.float32
    assert resolve_dtype(np.float64) == np.float64
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")
    with pytest.raises(ValueError, match=r"dtype: expected 'float64' or 'float32', got 'nonsense'"):
        resolve_dtype("nonsense")
    torch = pytest.importorskip("torch")
    assert resolve_dtype(torch.float32) == np.float32 and resolve_dtype(torch.float64) == np.float64
    with pytest.raises(ValueError, match=r"dtype: expected 'float64' or 'float32', got torch.float16"):
        resolve_dtype(torch.float16)
