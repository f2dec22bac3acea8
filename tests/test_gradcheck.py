"""The finite-difference checker itself, on functions with known derivatives."""

import numpy as np
import pytest

from rnncore.gradcheck import max_relative_error, numerical_gradient


def test_numerical_gradient_of_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    num = numerical_gradient(lambda: float(np.sum(np.sin(x) * x**2)), x)
    exact = np.cos(x) * x**2 + 2 * x * np.sin(x)
    assert max_relative_error(exact, num) < 1e-7


def test_detects_a_wrong_gradient():
    x = np.linspace(-1, 1, 5)
    num = numerical_gradient(lambda: float(np.sum(x**3)), x)
    assert max_relative_error(2 * x**2, num) > 0.1


def test_rejects_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))
