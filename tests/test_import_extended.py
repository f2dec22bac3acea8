"""ExtendedRecurrent (the ONNX-only cell options): backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.gradcheck import check_module
from rnncore.nn.extended import ExtendedRecurrent, ReverseTime

CASES = {
    "rnn_relu_clip": dict(mode="RNN", activations=["Relu"], clip=1.0),
    "rnn_bidir_scaledtanh_softsign": dict(mode="RNN", bidirectional=True,
                                          activations=[("ScaledTanh", 1.3, 0.6), "Softsign"]),
    "gru_after_hardsigmoid_elu_clip": dict(mode="GRU", activations=[("HardSigmoid", 0.2, 0.5), ("Elu", 0.7)],
                                           clip=1.5),
    "gru_before_two_layers_reverse": dict(mode="GRU", reset_after=False, num_layers=2, reverse=True),
    "gru_before_bidir_leaky_softplus": dict(mode="GRU", reset_after=False, bidirectional=True,
                                            activations=["Sigmoid", ("LeakyRelu", 0.1)]),
    "lstm_peepholes_clip": dict(mode="LSTM", peepholes=True, clip=1.2),
    "lstm_input_forget_peepholes_bidir": dict(mode="LSTM", input_forget=True, peepholes=True,
                                              bidirectional=True),
    "lstm_proj_two_layers_affine": dict(mode="LSTM", proj_size=2, num_layers=2,
                                        activations=["Sigmoid", ("Affine", 0.8, 0.1), "Softsign"]),
}


def _layer(cfg, seed=0):
    m = ExtendedRecurrent(input_size=3, hidden_size=4, **cfg)
    g = np.random.default_rng(seed)
    for v in m.params.values():
        v[...] = 0.5 * g.standard_normal(v.shape)
    return m


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_matches_finite_differences(name, with_lengths):
    m = _layer(CASES[name])
    g = np.random.default_rng(1)
    B, T = 3, 5
    x = g.standard_normal((B, T, 3))
    kw = {"lengths": np.array([5, 2, 4])} if with_lengths else {}
    LD = m.num_layers * (2 if m.bidirectional else 1)
    P = m.proj_size or m.hidden_size
    h0 = 0.3 * g.standard_normal((LD, B, P))
    kw["state"] = (h0, 0.3 * g.standard_normal((LD, B, 4))) if m.mode == "LSTM" else h0
    report = check_module(m, x, **kw)
    assert report.ok, str(report)


def test_train_forward_is_the_inference_forward():
    m = _layer(CASES["lstm_input_forget_peepholes_bidir"])
    x = np.random.default_rng(2).standard_normal((2, 4, 3))
    y0, (h0, c0) = m.forward(x, lengths=np.array([4, 3]))
    y1, (h1, c1) = m.forward(x, lengths=np.array([4, 3]), train=True)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(c0, c1)


def test_reverse_time_reverses_within_lengths():
    x = np.arange(2 * 4).reshape(2, 4, 1).astype(float)
    y = ReverseTime().forward(x, lengths=np.array([4, 2]))
    np.testing.assert_array_equal(y[:, :, 0], [[3, 2, 1, 0], [5, 4, 6, 7]])


def test_lengths_and_masks_are_validated_not_rounded():
    """Fractional lengths and non-prefix masks would silently give other numbers: refused."""
    m = _layer(CASES["gru_after_hardsigmoid_elu_clip"])
    x = np.zeros((2, 5, 3))
    with pytest.raises(TypeError, match=r"lengths: expected an integer array .* float64"):
        m.forward(x, lengths=[2.7, 5.0])
    with pytest.raises(TypeError, match="mask: expected a boolean array"):
        m.forward(x, mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="mask: expected a prefix mask"):
        m.forward(x, mask=np.array([[1, 0, 1, 0, 0], [1, 1, 1, 1, 1]], bool))
    with pytest.raises(TypeError, match="x: expected a floating-point array"):
        m.forward(np.ones((2, 5, 3), int))
    with pytest.raises(TypeError, match="train: expected a bool"):
        m.forward(x, train="no")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(m.forward(x, mask=mask)[0], m.forward(x, lengths=[2, 5])[0])
    with pytest.raises(TypeError, match="lengths: expected an integer array"):
        ReverseTime().forward(x, lengths=[1.5, 2.0])


def test_the_former_module_path_still_imports_the_same_classes():
    """docs/importers.md named ``rnncore.io.extended`` before the layer moved to ``rnncore.nn``."""
    import rnncore.io.extended as old
    import rnncore.nn.extended as new

    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name)
