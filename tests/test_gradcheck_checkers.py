"""check_module / check_loss: they pass correct backwards and catch wrong ones."""

import numpy as np
import pytest
from fake_recurrent import FakeRNN

from rnncore.gradcheck import GradcheckReport, check_loss, check_module
from rnncore.nn.layers import Linear
from rnncore.nn.losses import MSE


class WrongLinear(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["bias"] *= 1.5                       # a deliberately wrong bias gradient
        return dx


def test_check_module_flags_only_the_wrong_tensor():
    rep = check_module(WrongLinear(3, 2, seed=0), np.random.default_rng(0).standard_normal((4, 3)))
    assert not rep.ok
    assert rep.errors["bias"] > 0.1 and rep.errors["weight"] < 1e-7 and rep.errors["input"] < 1e-7
    text = str(rep)
    assert "bias" in text and "FAIL" in text and "(2,)" in text


def test_check_module_checks_initial_state_and_final_state_of_recurrent_modules():
    rng = np.random.default_rng(1)
    rep = check_module(FakeRNN(2, 3), rng.standard_normal((2, 4, 2)), state=rng.standard_normal((1, 2, 3)),
                       lengths=np.array([4, 2]))
    assert rep.ok, rep
    assert set(rep.errors) == {"input", "state", "weight_ih_l0", "weight_hh_l0"}
    assert "PASS" in str(rep)


def test_check_loss_flags_a_wrong_gradient():
    class HalfMSE(MSE):
        def backward(self):
            return super().backward() * 0.5

    x, y = np.random.default_rng(2).standard_normal((2, 3)), np.zeros((2, 3))
    assert check_loss(MSE(), x, y).ok
    bad = check_loss(HalfMSE(), x, y)
    assert not bad.ok and isinstance(bad, GradcheckReport)


def test_checkers_need_float64():
    with pytest.raises(TypeError, match="float64"):
        check_module(Linear(2, 2, dtype="float32"), np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="inputs: expected a float64"):
        check_loss(MSE(), np.zeros(3, np.float32), np.zeros(3, np.float32))


def test_check_module_on_the_real_recurrent_layers_with_state_pairs():
    import rnncore as rc

    rng = np.random.default_rng(4)
    x, lengths = rng.standard_normal((3, 5, 3)), np.array([5, 2, 4])
    h0, c0 = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    rep = check_module(rc.nn.LSTM(3, 2, num_layers=2, bidirectional=True, seed=0), x, lengths=lengths,
                       state=(h0, c0))
    assert rep.ok, rep
    assert {"input", "state[0]", "state[1]", "weight_hh_l1_reverse"} <= set(rep.errors)
    rep = check_module(rc.nn.GRU(3, 4, seed=1), x, lengths=lengths)
    assert rep.ok and rep.max_error < 1e-7, rep


def test_scaled_error_ignores_finite_difference_noise_on_zero_gradients():
    from rnncore.gradcheck import max_relative_error, scaled_error

    exact = np.array([1.0, 0.0, 2e-9])
    noisy = exact + np.array([1e-10, 3e-10, -2e-10])        # rounding noise of a finite difference
    assert scaled_error(exact, noisy) < 1e-9 < max_relative_error(exact, noisy)
    assert scaled_error(exact, np.array([1.0, 0.01, 0.0])) > 1e-3  # a real error is still seen
